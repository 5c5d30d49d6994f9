/* test_fingerprint_pgquery: pgtally's fingerprints against libpg_query's on the shared corpus. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pg_query.h>

#include "fingerprint.h"
#include "fp_corpus.h"

/*
 * The rule: whenever pgtally gives two statements the same id, pg_query_fingerprint must
 * too. The only exceptions are the classes below, where pg_query keeps a literal that
 * pgtally must not show (secrets, payloads). Every case where pgtally separates what
 * pg_query merges is listed in splits[] with its reason, and doc/fingerprint.md repeats
 * the list (FP_PRINT_DIVERGENCES=1 prints it as markdown). Both lists must be exact: an
 * unlisted divergence or a listed one that no longer happens fails the test.
 */
struct known_merge {
	const char *cls;
	const char *reason;
};

static const struct known_merge merges[] = {
	{"notify", "NOTIFY payload: pg_query keeps it as a plain string field; pgtally treats it "
		   "as any other constant, so that payloads never reach SHOW or the metrics"},
	{"comment_on", "COMMENT ON text: same as the NOTIFY payload"},
	{"create_user", "role passwords: pg_query hashes the password literal; pgtally must not "
			"keep secrets in the normalized text"},
	{"copy_file", "COPY file names: a string field to pg_query, a constant to pgtally"},
};

#define R_CAST "pg_query ignores the type of a constant (casts, typed literals, CAST)"
#define R_ALIAS "pg_query ignores alias names"
#define R_SORT "pg_query sorts and de-duplicates target lists, IN lists and arguments"
#define R_EQIN "pg_query hashes x = c, x IN (c, ...) and x = ANY(c) alike"
#define R_QUOTE "\"name\" and name are one identifier, but pgtally keeps the quotes"
#define R_SYN "synonyms are kept as written (END/COMMIT, ABORT/ROLLBACK)"
#define R_TXOPT "transaction options are constants to pg_query"
#define R_PREP "pgtally keeps prepared statement names: they run different statements"

struct known_split {
	const char *a, *b;
	const char *reason;
};

static const struct known_split splits[] = {
	{"abort", "rollback", R_SYN},
	{"commit", "end", R_SYN},
	{"begin", "begin_iso", R_TXOPT},
	{"alias_x", "alias_y", R_ALIAS},
	{"alias_x", "const", R_ALIAS},
	{"alias_y", "const", R_ALIAS},
	{"alias_x", "const_two", R_ALIAS "; " R_SORT},
	{"alias_y", "const_two", R_ALIAS "; " R_SORT},
	{"alias_x", "array_cast", R_ALIAS "; " R_CAST},
	{"alias_y", "array_cast", R_ALIAS "; " R_CAST},
	{"alias_x", "cast_fn", R_ALIAS "; " R_CAST},
	{"alias_y", "cast_fn", R_ALIAS "; " R_CAST},
	{"alias_x", "typed_date", R_ALIAS "; " R_CAST},
	{"alias_y", "typed_date", R_ALIAS "; " R_CAST},
	{"array_cast", "const", R_CAST},
	{"array_cast", "cast_fn", R_CAST},
	{"array_cast", "typed_date", R_CAST},
	{"cast_fn", "const", R_CAST},
	{"cast_fn", "typed_date", R_CAST},
	{"cast_interval", "typed_interval", R_CAST},
	{"const", "typed_date", R_CAST},
	{"array_cast", "const_two", R_CAST "; " R_SORT},
	{"cast_fn", "const_two", R_CAST "; " R_SORT},
	{"const_two", "typed_date", R_CAST "; " R_SORT},
	{"dj_bulk", "dj_bulk_params", R_CAST},
	{"in_cast", "in_two_shapes", R_CAST "; " R_SORT},
	{"const", "const_two", R_SORT},
	{"select_a", "select_aa", R_SORT},
	{"select_ab", "select_ba", R_SORT},
	{"in_col_first", "in_col_last", R_SORT},
	{"in_nested", "in_sub", R_EQIN},
	{"any_param", "eq_null", R_EQIN},
	{"any_param", "in_cast", R_EQIN "; " R_CAST},
	{"any_param", "in_two_shapes", R_EQIN "; " R_CAST},
	{"eq_null", "in_cast", R_EQIN "; " R_CAST},
	{"eq_null", "in_two_shapes", R_EQIN "; " R_CAST},
	{"ident_fold", "ident_quoted_lower", R_QUOTE},
	{"execute_p", "execute_q", R_PREP},
};

/* Corpus statements in PostgreSQL 16 syntax, which pg_query 15 rejects. */
static bool pg16_only(const char *sql)
{
	static const char *const list[] = {
		"SELECT 0x1F",
		"SELECT 1_000_000",
		"SELECT 0o17",
		"SELECT 0b101",
	};

	for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++) {
		if (strcmp(list[i], sql) == 0)
			return true;
	}
	return false;
}

#define NMERGES (sizeof(merges) / sizeof(merges[0]))
#define NSPLITS (sizeof(splits) / sizeof(splits[0]))

static const struct known_merge *find_merge(const char *cls)
{
	for (size_t i = 0; i < NMERGES; i++) {
		if (strcmp(merges[i].cls, cls) == 0)
			return &merges[i];
	}
	return NULL;
}

static int find_split(const char *a, const char *b)
{
	for (size_t i = 0; i < NSPLITS; i++) {
		if ((strcmp(splits[i].a, a) == 0 && strcmp(splits[i].b, b) == 0) ||
		    (strcmp(splits[i].a, b) == 0 && strcmp(splits[i].b, a) == 0))
			return (int)i;
	}
	return -1;
}

static const char *example(const char *cls)
{
	for (size_t i = 0; i < FP_CORPUS_LEN; i++) {
		if (strcmp(fp_corpus[i].cls, cls) == 0)
			return fp_corpus[i].sql;
	}
	return "?";
}

static void test_differential(void **state)
{
	static uint64_t ours[FP_CORPUS_LEN], theirs[FP_CORPUS_LEN];
	static bool parsed[FP_CORPUS_LEN];
	bool split_seen[NSPLITS] = {false}, merge_seen[NMERGES] = {false};
	unsigned bad = 0, compared = 0;

	(void)state;
	for (size_t i = 0; i < FP_CORPUS_LEN; i++) {
		const char *sql = fp_corpus[i].sql;
		size_t pos = 0;
		struct fp_stmt st;
		PgQueryFingerprintResult r;

		assert_true(fp_next(sql, strlen(sql), &pos, NULL, 0, &st));
		ours[i] = st.id;
		r = pg_query_fingerprint(sql);
		parsed[i] = r.error == NULL;
		if ((r.error != NULL) != pg16_only(sql)) {
			print_error("pg_query parse of %s: %s\n", sql,
				    r.error ? r.error->message : "ok");
			bad++;
		}
		theirs[i] = r.fingerprint;
		pg_query_free_fingerprint_result(r);
	}
	for (size_t i = 0; i < FP_CORPUS_LEN; i++) {
		for (size_t j = 0; j < i; j++) {
			const char *ci = fp_corpus[i].cls, *cj = fp_corpus[j].cls;

			if (!parsed[i] || !parsed[j])
				continue;
			compared++;
			if (ours[i] == ours[j] && theirs[i] != theirs[j]) {
				const struct known_merge *m =
					strcmp(ci, cj) == 0 ? find_merge(ci) : NULL;

				if (m == NULL) {
					print_error("false merge:\n  %s\n  %s\n", fp_corpus[j].sql,
						    fp_corpus[i].sql);
					bad++;
				} else {
					merge_seen[m - merges] = true;
				}
			} else if (ours[i] != ours[j] && theirs[i] == theirs[j]) {
				int k = find_split(ci, cj);

				if (k < 0) {
					print_error("undocumented split %s / %s:\n  %s\n  %s\n", cj,
						    ci, fp_corpus[j].sql, fp_corpus[i].sql);
					bad++;
				} else {
					split_seen[k] = true;
				}
			}
		}
	}
	for (size_t k = 0; k < NSPLITS; k++) {
		if (!split_seen[k]) {
			print_error("stale split entry %s / %s\n", splits[k].a, splits[k].b);
			bad++;
		}
	}
	for (size_t k = 0; k < NMERGES; k++) {
		if (!merge_seen[k]) {
			print_error("stale merge entry %s\n", merges[k].cls);
			bad++;
		}
	}
	if (getenv("FP_PRINT_DIVERGENCES") != NULL) {
		printf("| pgtally class | example | pgtally class | example | reason |\n");
		printf("|---|---|---|---|---|\n");
		for (size_t k = 0; k < NSPLITS; k++)
			printf("| %s | `%s` | %s | `%s` | %s |\n", splits[k].a,
			       example(splits[k].a), splits[k].b, example(splits[k].b),
			       splits[k].reason);
		printf("\n| class | example | reason |\n|---|---|---|\n");
		for (size_t k = 0; k < NMERGES; k++)
			printf("| %s | `%s` | %s |\n", merges[k].cls, example(merges[k].cls),
			       merges[k].reason);
	}
	assert_true(compared > 10000);
	assert_int_equal(bad, 0);
}

static uint64_t pgq_fp(const char *s, size_t len)
{
	char *one = strndup(s, len);
	PgQueryFingerprintResult r;
	uint64_t fp;

	assert_non_null(one);
	r = pg_query_fingerprint(one);
	if (r.error != NULL)
		print_error("%s: %s\n", one, r.error->message);
	assert_null(r.error);
	fp = r.fingerprint;
	pg_query_free_fingerprint_result(r);
	free(one);
	return fp;
}

/* Statement splitting agrees with PostgreSQL's parser (through pg_query's splitter). */
static void test_split_agrees(void **state)
{
	static const char *const multi[] = {
		"select 1; select 'a;b'; select $$;$$",
		"begin; update t set a = E'\\';' where b = 1; commit",
		"select 1 /* ; */; -- ;\n select 2;;",
		"create function g() returns int language sql begin atomic select 1; select case "
		"when true then 2 end; end; select 3",
		"create rule r as on insert to t do also (notify a; notify b); select \"x;\"",
		"select (1); values (2), (3); select array[4]",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(multi) / sizeof(multi[0]); i++) {
		size_t pos = 0, len = strlen(multi[i]);
		struct fp_stmt st;
		int n = 0;
		PgQuerySplitResult sr = pg_query_split_with_parser(multi[i]);

		assert_null(sr.error);
		while (fp_next(multi[i], len, &pos, NULL, 0, &st)) {
			const PgQuerySplitStmt *ps;

			assert_true(n < sr.n_stmts);
			ps = sr.stmts[n];
			assert_true(pgq_fp(multi[i] + st.start, st.end - st.start) ==
				    pgq_fp(multi[i] + ps->stmt_location, (size_t)ps->stmt_len));
			n++;
		}
		assert_int_equal(n, sr.n_stmts);
		pg_query_free_split_result(sr);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_differential),
		cmocka_unit_test(test_split_agrees),
	};

	return cmocka_run_group_tests_name("fingerprint_pgquery", tests, NULL, NULL);
}
