/* fuzz_fingerprint: libFuzzer target for the normalizer and the sqlcommenter parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fingerprint.h"
#include "fpcache.h"
#include "../unit/fp_shape_check.h"

/*
 * Invariants checked on every input, besides "no crash, no read outside the input" (ASan):
 * the text fits the buffer, a full-size text hashes to the id and normalizes to itself,
 * truncation and out == NULL leave the id alone, positions only move forward; a variant with
 * its digits moved on or doubled that keeps the shape key normalizes alike (fpcache.h), and
 * gets from the shape cache by the text's template what fp_shape() gives it.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BIG 65536

static void check(int cond)
{
	if (!cond)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char out[BIG], again[BIG], small[9];
	const char *sql = (const char *)data;
	size_t pos = 0, last = 0;
	struct fp_stmt st, st0, sts;
	struct fp_tags tags;
	char id[33], *tp;

	/* what a statement read alone may hold, the whole text holds too (fingerprints off) */
	int whole_effect = fp_session_effect(sql, size);
	while (fp_next(sql, size, &pos, out, sizeof(out), &st)) {
		size_t p0 = last, ps = last;

		check((fp_session_effect(sql + st.start, st.end - st.start) & ~whole_effect) == 0);

		check(pos > last && pos <= size);
		check(st.start >= last && st.start < st.end && st.end <= pos);
		check(st.norm_len < sizeof(out) && out[st.norm_len] == '\0');
		check(st.kind != FP_KIND_EMPTY);
		check(fp_next(sql, size, &p0, NULL, 0, &st0) && p0 == pos && st0.id == st.id);
		check(st0.params_hash == st.params_hash && st0.full_len == st.full_len);
		check(fp_next(sql, size, &ps, small, sizeof(small), &sts) && sts.id == st.id);
		check(sts.norm_len <= sizeof(small) - 1 && memcmp(small, out, sts.norm_len) == 0);
		if (st.full_len == st.norm_len) {
			size_t p2 = 0;
			struct fp_stmt st2;

			check(fp_hash(out, st.norm_len) == st.id);
			/* the text normalizes to itself (when it has no NUL from a quoted name) */
			if (memchr(out, '\0', st.norm_len) == NULL && st.norm_len > 0) {
				check(fp_next(out, st.norm_len, &p2, again, sizeof(again), &st2));
				check(st2.id == st.id && strcmp(again, out) == 0);
			}
		}
		last = pos;
	}
	check(pos == size);

	static struct fp_cache *cache, *portable;
	static char variant[2 * BIG];
	if (!cache) {
		cache = fp_cache_new(1);
		portable = fp_cache_new(1);
		if (portable)
			fp_cache_portable(portable);
	}
	if (cache && portable && size <= BIG) {
		check(fp_shape_scans_agree(cache, portable, sql, size));
		for (int how = 0; how < 3; how++) {
			size_t nv = fp_shape_variant(sql, size, variant, how);
			check(fp_shape_pair(cache, sql, size, variant, nv) != -1);
			check(fp_shape_template_check(cache, sql, size, variant, nv) != -1);
		}
		check(fp_shape_tags_check(cache, sql, size) == 1);
	}

	if (fp_parse_tags(sql, size, &tags)) {
		check(strlen(tags.route) < sizeof(tags.route));
		check(strlen(tags.traceparent) < sizeof(tags.traceparent));
		if (fp_trace_id(tags.traceparent, id))
			check(strlen(id) == 32);
	}
	tp = malloc(size + 1);
	if (tp != NULL) {
		memcpy(tp, data, size);
		tp[size] = '\0';
		if (fp_trace_id(tp, id))
			check(strlen(id) == 32);
		free(tp);
	}
	return 0;
}
