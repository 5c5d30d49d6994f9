/* sqlcommenter: fp_parse_tags() and fp_trace_id(), the tags Django's sqlcommenter adds. */
#include "sqlcommenter.h"

#include <string.h>

static bool is_digit(unsigned char c)
{
	return (unsigned)(c - '0') < 10u;
}

static bool is_hex(unsigned char c)
{
	return is_digit(c) || (unsigned)((c | 0x20) - 'a') < 6u;
}

static unsigned char lower(unsigned char c)
{
	return (unsigned)(c - 'A') < 26u ? (unsigned char)(c + 32) : c;
}

static bool is_blank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int hexval(unsigned char c)
{
	if (is_digit(c))
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * Decode a raw tag value (between its quotes) into dst[cap]: backslash escapes, then %XX
 * and Django's %%XX (a statement without parameters keeps the doubled percent signs).
 * Control bytes become '?', and truncation never splits a UTF-8 sequence.
 */
static void tag_decode(const unsigned char *v, size_t n, char *dst, size_t cap)
{
	size_t o = 0, i = 0;
	bool cut = false;

	while (i < n) {
		unsigned char c = v[i++];

		if (c == '\\' && i < n) {
			c = v[i++];
		} else if (c == '%') {
			size_t j = i;

			if (j < n && v[j] == '%')
				j++;
			if (j + 1 < n && hexval(v[j]) >= 0 && hexval(v[j + 1]) >= 0) {
				c = (unsigned char)(hexval(v[j]) * 16 + hexval(v[j + 1]));
				i = j + 2;
			} else if (j > i) {
				i = j; /* "%%" alone is a percent sign */
			}
		}
		if (c < 0x20 || c == 0x7f)
			c = '?';
		if (o + 1 >= cap) {
			cut = true;
			break;
		}
		dst[o++] = (char)c;
	}
	if (cut && o > 0 && ((unsigned char)dst[o - 1] & 0x80)) {
		size_t k = o;

		while (k > 0 && ((unsigned char)dst[k - 1] & 0xc0) == 0x80)
			k--;
		if (k > 0) {
			unsigned char lead = (unsigned char)dst[k - 1];
			size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;

			if (k - 1 + need > o)
				o = k - 1;
		}
	}
	dst[o] = '\0';
}

static bool key_is(const char *key, size_t kl, const char *name)
{
	return strlen(name) == kl && memcmp(key, name, kl) == 0;
}

/* Parse the inside of a comment as key='value' pairs. */
static bool parse_pairs(const unsigned char *c, size_t n, struct fp_tags *tags)
{
	size_t i = 0;
	bool any = false, have_application = false;

	while (n > 0 && is_blank(c[n - 1]))
		n--;
	while (i < n && is_blank(c[i]))
		i++;
	if (i >= n)
		return false;
	for (;;) {
		char key[32];
		size_t ks = i, vs, kl;

		while (i < n && c[i] != '=' && c[i] != ',' && c[i] != '\'' && !is_blank(c[i]))
			i++;
		if (i == ks || i >= n || c[i] != '=')
			return false;
		tag_decode(c + ks, i - ks, key, sizeof(key));
		kl = strlen(key);
		i++;
		if (i >= n || c[i] != '\'')
			return false;
		vs = ++i;
		while (i < n && c[i] != '\'') {
			if (c[i] == '\\')
				i++;
			i++;
		}
		if (i >= n)
			return false;
		if (key_is(key, kl, "route"))
			tag_decode(c + vs, i - vs, tags->route, sizeof(tags->route));
		else if (key_is(key, kl, "controller"))
			tag_decode(c + vs, i - vs, tags->controller, sizeof(tags->controller));
		else if (key_is(key, kl, "action"))
			tag_decode(c + vs, i - vs, tags->action, sizeof(tags->action));
		else if (key_is(key, kl, "framework"))
			tag_decode(c + vs, i - vs, tags->framework, sizeof(tags->framework));
		else if (key_is(key, kl, "traceparent"))
			tag_decode(c + vs, i - vs, tags->traceparent, sizeof(tags->traceparent));
		else if (key_is(key, kl, "application")) {
			tag_decode(c + vs, i - vs, tags->application, sizeof(tags->application));
			have_application = true;
		} else if (key_is(key, kl, "app_name") && !have_application)
			tag_decode(c + vs, i - vs, tags->application, sizeof(tags->application));
		any = true;
		i++;
		while (i < n && is_blank(c[i]))
			i++;
		if (i >= n)
			return any;
		if (c[i] != ',')
			return false;
		i++;
		while (i < n && is_blank(c[i]))
			i++;
	}
}

/* Every tag empty, cheaply: most statements carry no comment at all. */
static void tags_empty(struct fp_tags *tags)
{
	tags->route[0] = tags->controller[0] = tags->action[0] = '\0';
	tags->framework[0] = tags->application[0] = tags->traceparent[0] = '\0';
}

/* Clears tags and parses one comment body into them; all empty when it is not well-formed. */
static bool try_comment(const unsigned char *body, size_t n, struct fp_tags *tags)
{
	memset(tags, 0, sizeof(*tags));
	if (parse_pairs(body, n, tags))
		return true;
	tags_empty(tags);
	return false;
}

size_t fp_tags_end(const char *sql, size_t len)
{
	while (len > 0 && (is_blank((unsigned char)sql[len - 1]) || sql[len - 1] == ';'))
		len--;
	return len;
}

bool fp_parse_tags(const char *sql, size_t len, struct fp_tags *tags)
{
	const unsigned char *s = (const unsigned char *)sql;
	size_t p = 0, q;

	tags_empty(tags);
	while (p < len && is_blank(s[p]))
		p++;
	if (p + 1 < len && s[p] == '/' && s[p + 1] == '*') {
		for (size_t i = p + 2; i + 1 < len; i++) {
			if (s[i] == '*' && s[i + 1] == '/') {
				if (try_comment(s + p + 2, i - p - 2, tags))
					return true;
				break;
			}
		}
	}
	q = fp_tags_end(sql, len);
	if (q >= 4 && s[q - 1] == '/' && s[q - 2] == '*') {
		size_t stop = q > SQLCOMMENTER_SCAN_MAX ? q - SQLCOMMENTER_SCAN_MAX : 0;

		/* the opening "/ *" must end before the closing "* /" starts */
		for (size_t i = q - 3; i-- > stop;) {
			if (s[i] == '/' && s[i + 1] == '*')
				return try_comment(s + i + 2, q - 2 - (i + 2), tags);
		}
	}
	return false;
}

bool fp_trace_id(const char *tp, char out[33])
{
	size_t n = strnlen(tp, 64);
	bool nonzero = false;

	if (n < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-')
		return false;
	if (!is_hex((unsigned char)tp[0]) || !is_hex((unsigned char)tp[1]) ||
	    ((tp[0] | 0x20) == 'f' && (tp[1] | 0x20) == 'f'))
		return false;
	/* version 00 has exactly four fields; later versions may append more */
	if (tp[0] == '0' && tp[1] == '0' ? n != 55 : (n > 55 && tp[55] != '-'))
		return false;
	for (int i = 36; i < 52; i++) {
		if (!is_hex((unsigned char)tp[i]))
			return false;
		nonzero |= tp[i] != '0';
	}
	if (!nonzero || !is_hex((unsigned char)tp[53]) || !is_hex((unsigned char)tp[54]))
		return false;
	nonzero = false;
	for (int i = 0; i < 32; i++) {
		unsigned char c = (unsigned char)tp[3 + i];

		if (!is_hex(c))
			return false;
		nonzero |= c != '0';
		out[i] = (char)lower(c);
	}
	out[32] = '\0';
	return nonzero;
}
