/* fp_shape_check: the shape cache's promise, checked by test_fingerprint.c and the fuzzer. */
#ifndef PGT_FP_SHAPE_CHECK_H
#define PGT_FP_SHAPE_CHECK_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fingerprint.h"
#include "fpcache.h"

/*
 * Two texts with the same shape key must normalize alike: the same fingerprint, kind and
 * transaction class, the same number of statements, and (for one statement) the same start
 * and the same distance from its end to the end of the text, so that a cached result fits
 * either. Returns 1 when the keys were equal and all of that held, 0 when the keys differ or
 * either text has no shape, -1 when the promise is broken.
 */
static int fp_shape_pair(const struct fp_cache *c, const char *a, size_t na, const char *b,
			 size_t nb)
{
	struct fp_shape sa, sb;
	struct fp_stmt x, y, x2, y2;
	size_t pa = 0, pb = 0;

	if (!fp_shape(c, a, na, &sa) || !fp_shape(c, b, nb, &sb) || sa.key != sb.key)
		return 0;
	bool ha = fp_next(a, na, &pa, NULL, 0, &x), hb = fp_next(b, nb, &pb, NULL, 0, &y);
	if (ha != hb)
		return -1;
	if (!ha)
		return 1;
	bool ma = fp_next(a, na, &pa, NULL, 0, &x2), mb = fp_next(b, nb, &pb, NULL, 0, &y2);
	if (ma != mb)
		return -1;
	if (ma || !fp_shape_fits(&sa, &x)) /* not kept: several statements, FETCH counts */
		return 1;
	if (x.id != y.id || x.kind != y.kind || x.txn != y.txn || x.start != y.start ||
	    na - x.end != nb - y.end)
		return -1;
	return 1;
}

/*
 * A text the shape says cannot carry sqlcommenter tags (fp_shape_may_have_tags) has none, so
 * forwarding may skip fp_parse_tags() for it. 1 when that held, -1 when it did not.
 */
static int fp_shape_tags_check(const struct fp_cache *c, const char *s, size_t n)
{
	struct fp_shape sh;
	struct fp_tags tags;

	if (!fp_shape(c, s, n, &sh) || fp_shape_may_have_tags(&sh, s, n))
		return 1;
	return fp_parse_tags(s, n, &tags) ? -1 : 1;
}

/*
 * Variants of a text that keep its shape when its digits are in literals: every digit moved
 * on by one (how 0), every digit doubled (1), or every number that follows a comma repeated
 * (2: "IN (1, 2)" becomes "IN (1, 2, 2)", a longer list). Writes into buf (at most 2 * n
 * bytes).
 */
static size_t fp_shape_variant(const char *s, size_t n, char *buf, int how)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (how == 2 && ch == ',') {
			size_t d = i + 1, e;
			while (d < n && s[d] == ' ')
				d++;
			for (e = d; e < n && s[e] >= '0' && s[e] <= '9'; e++)
				;
			/* ", 12" becomes ", 12, 12" when the number ends there and it fits */
			if (e > d && (e == n || s[e] == ',' || s[e] == ')' || s[e] == ' ') &&
			    o + 2 + (e - d) + (n - i) <= 2 * n) {
				buf[o++] = ',';
				buf[o++] = ' ';
				memcpy(buf + o, s + d, e - d);
				o += e - d;
			}
		}
		if (how < 2 && ch >= '0' && ch <= '9') {
			if (how == 0) {
				buf[o++] = ch == '9' ? '1' : (char)(ch + 1);
				continue;
			}
			buf[o++] = ch;
		}
		buf[o++] = ch;
	}
	return o;
}

/* Two results of fp_shape(), field by field, the parts too. */
static inline bool fp_shapes_equal(const struct fp_shape *a, const struct fp_shape *b)
{
	if (a->key != b->key || a->params != b->params || a->first != b->first ||
	    a->last != b->last || a->comments != b->comments || a->parts.n != b->parts.n)
		return false;
	for (unsigned k = 0; k < a->parts.n && k < FPC_PARTS; k++)
		if (a->parts.at[k] != b->parts.at[k] || a->parts.end[k] != b->parts.end[k] ||
		    a->parts.kind[k] != b->parts.kind[k])
			return false;
	return true;
}

/*
 * The shape scan reads 64-byte blocks with AVX2 where the CPU has it, 16 bytes at a time with
 * SSE2 otherwise (fp_cache_portable): c and portable, two caches with the same seed, must give
 * any text the same shape, to the bit. Returns whether they did.
 */
static inline bool fp_shape_scans_agree(const struct fp_cache *c, const struct fp_cache *portable,
					const char *s, size_t n)
{
	struct fp_shape a, b;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	bool ra = fp_shape(c, s, n, &a), rb = fp_shape(portable, s, n, &b);
	return ra == rb && (!ra || fp_shapes_equal(&a, &b));
}

/*
 * fp_shape_hinted() must give b what fp_shape() gives it, when b is compared with the
 * template of a, a text of the shape b often has (its literals drawn again). c keeps a's
 * shape, with a's text as template, first. Returns 1 when the template matched b and the
 * results agreed, 0 when it did not match (fp_shape() answered) or a has no shape, -1 when
 * the two results differ.
 */
static inline int fp_shape_template_check(struct fp_cache *c, const char *a, size_t na,
					  const char *b, size_t nb)
{
	struct fp_shape sa, sb, sh;
	uint16_t hint[FPC_HINTS] = {0};

	if (!fp_shape_hinted(c, hint, a, na, &sa))
		return 0;
	/* any statement that fits: only the template is under test here */
	struct fp_stmt st = {.id = sa.key, .kind = FP_KIND_SELECT, .start = 0, .end = na};
	fp_cache_shape_put(c, &sa, a, na, &st);
	memset(&sb, 0, sizeof(sb));
	memset(&sh, 0, sizeof(sh));
	uint64_t before = fp_cache_template_hits(c);
	bool rb = fp_shape(c, b, nb, &sb), rh = fp_shape_hinted(c, hint, b, nb, &sh);
	bool used = fp_cache_template_hits(c) != before;
	if (rb != rh || (rb && !fp_shapes_equal(&sb, &sh)))
		return -1;
	return used ? 1 : 0;
}

#endif
