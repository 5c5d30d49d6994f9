/* proto: parsing and building PostgreSQL v3 protocol messages over byte buffers (no I/O). */
#include "proto.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

bool proto_parse_startup(const uint8_t *pkt, size_t len, struct proto_startup *out,
			 const char **err)
{
	memset(out, 0, sizeof(*out));
	if (len < 8 || len > PROTO_MAX_STARTUP) {
		*err = "invalid startup packet length";
		return false;
	}
	if (proto_be32(pkt) != len) {
		*err = "startup packet length mismatch";
		return false;
	}
	out->code = proto_be32(pkt + 4);
	if (out->code == PROTO_SSL_REQUEST || out->code == PROTO_GSSENC_REQUEST) {
		if (len != 8) {
			*err = "invalid encryption request";
			return false;
		}
		return true;
	}
	if (out->code == PROTO_CANCEL_REQUEST) {
		if (len != 16) {
			*err = "invalid cancel request";
			return false;
		}
		out->cancel_pid = proto_be32(pkt + 8);
		out->cancel_key = proto_be32(pkt + 12);
		return true;
	}
	if ((out->code >> 16) != 3) {
		*err = "unsupported frontend protocol";
		return false;
	}
	/* key\0value\0 ... \0: the body must end with the terminating NUL. */
	const char *p = (const char *)pkt + 8;
	const char *end = (const char *)pkt + len;
	if (end[-1] != '\0') {
		*err = "startup packet is not terminated";
		return false;
	}
	while (p < end && *p) {
		const char *key = p;
		p += strlen(p) + 1;
		if (p >= end) {
			*err = "startup parameter without a value";
			return false;
		}
		const char *val = p;
		p += strlen(p) + 1;
		if (p > end) {
			*err = "startup parameter value is not terminated";
			return false;
		}
		if (out->n_params == PROTO_MAX_STARTUP_PARAMS) {
			*err = "too many startup parameters";
			return false;
		}
		out->keys[out->n_params] = key;
		out->values[out->n_params] = val;
		out->n_params++;
	}
	if (p != end - 1) {
		*err = "trailing data in startup packet";
		return false;
	}
	return true;
}

const char *proto_startup_get(const struct proto_startup *st, const char *key)
{
	for (size_t i = 0; i < st->n_params; i++)
		if (strcmp(st->keys[i], key) == 0)
			return st->values[i];
	return NULL;
}

uint8_t proto_get_u8(struct proto_reader *r)
{
	if (r->end - r->p < 1) {
		r->bad = true;
		return 0;
	}
	return *r->p++;
}

uint16_t proto_get_u16(struct proto_reader *r)
{
	if (r->end - r->p < 2) {
		r->bad = true;
		r->p = r->end;
		return 0;
	}
	uint16_t v = (uint16_t)((r->p[0] << 8) | r->p[1]);
	r->p += 2;
	return v;
}

uint32_t proto_get_u32(struct proto_reader *r)
{
	if (r->end - r->p < 4) {
		r->bad = true;
		r->p = r->end;
		return 0;
	}
	uint32_t v = proto_be32(r->p);
	r->p += 4;
	return v;
}

const char *proto_get_str(struct proto_reader *r)
{
	const uint8_t *nul = r->p < r->end ? memchr(r->p, 0, (size_t)(r->end - r->p)) : NULL;
	if (!nul) {
		r->bad = true;
		r->p = r->end;
		return NULL;
	}
	const char *s = (const char *)r->p;
	r->p = nul + 1;
	return s;
}

const uint8_t *proto_get_bytes(struct proto_reader *r, size_t n)
{
	if ((size_t)(r->end - r->p) < n) {
		r->bad = true;
		r->p = r->end;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	return p;
}

bool proto_parse_error(const uint8_t *body, size_t len, struct proto_error *out)
{
	struct proto_reader r;
	const char *sev_s = NULL, *sev_v = NULL;

	memset(out, 0, sizeof(*out));
	proto_reader_init(&r, body, len);
	for (;;) {
		uint8_t f = proto_get_u8(&r);
		if (r.bad)
			return false;
		if (f == 0)
			break;
		const char *v = proto_get_str(&r);
		if (!v)
			return false;
		switch (f) {
		case 'S':
			sev_s = v;
			break;
		case 'V':
			sev_v = v;
			break;
		case 'C':
			out->sqlstate = v;
			break;
		case 'M':
			out->message = v;
			break;
		default:
			break;
		}
	}
	out->severity = sev_v ? sev_v : sev_s;
	return true;
}

uint64_t proto_command_rows(const char *tag, size_t len)
{
	/* The row count is the last space-separated word, when it starts with a digit. */
	size_t i = len;
	while (i > 0 && tag[i - 1] != ' ')
		i--;
	if (i == 0)
		return 0; /* one word: no count */
	uint64_t n = 0;
	for (; i < len && (unsigned)(tag[i] - '0') < 10; i++) {
		unsigned d = (unsigned)(tag[i] - '0');
		if (n > (UINT64_MAX - d) / 10)
			return UINT64_MAX; /* as strtoull saturates */
		n = n * 10 + d;
	}
	return n;
}

size_t pkt_begin(struct iobuf *b, char type)
{
	size_t start = b->wpos;
	if (!iobuf_reserve(b, 5))
		return start;
	start = b->wpos; /* reserve may have compacted */
	b->data[b->wpos++] = (uint8_t)type;
	memset(b->data + b->wpos, 0, 4);
	b->wpos += 4;
	return start;
}

void pkt_end(struct iobuf *b, size_t start)
{
	if (b->failed || start + 5 > b->wpos)
		return;
	uint32_t len = (uint32_t)(b->wpos - start - 1);
	uint8_t *p = b->data + start + 1;
	p[0] = (uint8_t)(len >> 24);
	p[1] = (uint8_t)(len >> 16);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
}

void pkt_put_bytes(struct iobuf *b, const void *p, size_t n)
{
	if (!iobuf_append(b, p, n))
		b->failed = true;
}

void pkt_put_u8(struct iobuf *b, uint8_t v)
{
	pkt_put_bytes(b, &v, 1);
}

void pkt_put_u16(struct iobuf *b, uint16_t v)
{
	uint8_t p[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	pkt_put_bytes(b, p, 2);
}

void pkt_put_u32(struct iobuf *b, uint32_t v)
{
	uint8_t p[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	pkt_put_bytes(b, p, 4);
}

void pkt_put_str(struct iobuf *b, const char *s)
{
	pkt_put_bytes(b, s, strlen(s) + 1);
}

bool pkt_ok(struct iobuf *b)
{
	bool ok = !b->failed;
	b->failed = false;
	return ok;
}

void proto_build_error(struct iobuf *b, bool notice, const char *severity, const char *sqlstate,
		       const char *message)
{
	size_t s = pkt_begin(b, notice ? 'N' : 'E');
	pkt_put_u8(b, 'S');
	pkt_put_str(b, severity);
	pkt_put_u8(b, 'V');
	pkt_put_str(b, severity);
	pkt_put_u8(b, 'C');
	pkt_put_str(b, sqlstate);
	pkt_put_u8(b, 'M');
	pkt_put_str(b, message);
	pkt_put_u8(b, 0);
	pkt_end(b, s);
}

void proto_build_auth(struct iobuf *b, uint32_t code, const void *data, size_t len)
{
	size_t s = pkt_begin(b, 'R');
	pkt_put_u32(b, code);
	if (len)
		pkt_put_bytes(b, data, len);
	pkt_end(b, s);
}

void proto_build_param_status(struct iobuf *b, const char *key, const char *value)
{
	size_t s = pkt_begin(b, 'S');
	pkt_put_str(b, key);
	pkt_put_str(b, value);
	pkt_end(b, s);
}

void proto_build_backend_key(struct iobuf *b, uint32_t pid, uint32_t key)
{
	size_t s = pkt_begin(b, 'K');
	pkt_put_u32(b, pid);
	pkt_put_u32(b, key);
	pkt_end(b, s);
}

void proto_build_ready(struct iobuf *b, char status)
{
	size_t s = pkt_begin(b, 'Z');
	pkt_put_u8(b, (uint8_t)status);
	pkt_end(b, s);
}

void proto_build_query(struct iobuf *b, const char *sql)
{
	size_t s = pkt_begin(b, 'Q');
	pkt_put_str(b, sql);
	pkt_end(b, s);
}

void proto_build_cancel(struct iobuf *b, uint32_t pid, uint32_t key)
{
	pkt_put_u32(b, 16);
	pkt_put_u32(b, PROTO_CANCEL_REQUEST);
	pkt_put_u32(b, pid);
	pkt_put_u32(b, key);
}

void proto_build_terminate(struct iobuf *b)
{
	size_t s = pkt_begin(b, 'X');
	pkt_end(b, s);
}

void proto_build_password(struct iobuf *b, const char *password)
{
	size_t s = pkt_begin(b, 'p');
	pkt_put_str(b, password);
	pkt_end(b, s);
}

void proto_build_sasl_initial(struct iobuf *b, const char *mech, const void *data, size_t len)
{
	size_t s = pkt_begin(b, 'p');
	pkt_put_str(b, mech);
	pkt_put_u32(b, (uint32_t)len);
	pkt_put_bytes(b, data, len);
	pkt_end(b, s);
}

void proto_build_sasl_response(struct iobuf *b, const void *data, size_t len)
{
	size_t s = pkt_begin(b, 'p');
	pkt_put_bytes(b, data, len);
	pkt_end(b, s);
}

void proto_build_negotiate_version(struct iobuf *b, uint32_t newest_minor,
				   const char *const *unknown, size_t n_unknown)
{
	size_t s = pkt_begin(b, 'v');
	pkt_put_u32(b, (3u << 16) | newest_minor);
	pkt_put_u32(b, (uint32_t)n_unknown);
	for (size_t i = 0; i < n_unknown; i++)
		pkt_put_str(b, unknown[i]);
	pkt_end(b, s);
}

void proto_build_startup(struct iobuf *b, const char *const *kv)
{
	/* No type byte: length, version, pairs, terminator. */
	size_t start = b->wpos;
	pkt_put_u32(b, 0);
	if (b->failed)
		return;
	start = b->wpos - 4;
	pkt_put_u32(b, PROTO_V3);
	for (size_t i = 0; kv[i]; i += 2) {
		pkt_put_str(b, kv[i]);
		pkt_put_str(b, kv[i + 1]);
	}
	pkt_put_u8(b, 0);
	if (b->failed)
		return;
	uint32_t len = (uint32_t)(b->wpos - start);
	uint8_t *p = b->data + start;
	p[0] = (uint8_t)(len >> 24);
	p[1] = (uint8_t)(len >> 16);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
}

void proto_build_row_desc(struct iobuf *b, const char *const *names, const uint32_t *type_oids,
			  size_t n)
{
	size_t s = pkt_begin(b, 'T');
	pkt_put_u16(b, (uint16_t)n);
	for (size_t i = 0; i < n; i++) {
		pkt_put_str(b, names[i]);
		pkt_put_u32(b, 0); /* table oid */
		pkt_put_u16(b, 0); /* column number */
		pkt_put_u32(b, type_oids[i]);
		pkt_put_u16(b, type_oids[i] == PG_TYPE_INT8 ? 8 : type_oids[i] == PG_TYPE_INT4 ? 4 : 0xffff);
		pkt_put_u32(b, 0xffffffffu); /* typmod -1 */
		pkt_put_u16(b, 0);           /* text format */
	}
	pkt_end(b, s);
}

void proto_build_data_row(struct iobuf *b, const char *const *values, size_t n)
{
	size_t s = pkt_begin(b, 'D');
	pkt_put_u16(b, (uint16_t)n);
	for (size_t i = 0; i < n; i++) {
		if (!values[i]) {
			pkt_put_u32(b, 0xffffffffu);
			continue;
		}
		size_t len = strlen(values[i]);
		pkt_put_u32(b, (uint32_t)len);
		pkt_put_bytes(b, values[i], len);
	}
	pkt_end(b, s);
}

void proto_build_command_complete(struct iobuf *b, const char *tag)
{
	size_t s = pkt_begin(b, 'C');
	pkt_put_str(b, tag);
	pkt_end(b, s);
}
