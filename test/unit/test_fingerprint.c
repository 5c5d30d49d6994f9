/* test_fingerprint: the normalizer, its ids and texts, statement splitting and sqlcommenter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fingerprint.h"
#include "fp_corpus.h"
#include "fpcache.h"
#include "fp_shape_check.h"

/* Exact-size heap copy without a NUL, so that ASan catches any read past the end. */
static char *dup_exact(const char *s, size_t len)
{
	char *p = malloc(len ? len : 1);

	assert_non_null(p);
	memcpy(p, s, len);
	return p;
}

/* Normalize a single statement; fails the test when there is not exactly one. */
static struct fp_stmt norm1(const char *sql, char *out, size_t outcap)
{
	size_t len = strlen(sql), pos = 0;
	char *buf = dup_exact(sql, len);
	struct fp_stmt st, st2;

	assert_true(fp_next(buf, len, &pos, out, outcap, &st));
	assert_false(fp_next(buf, len, &pos, NULL, 0, &st2));
	assert_int_equal(pos, len);
	assert_int_equal(st2.kind, FP_KIND_EMPTY);
	free(buf);
	return st;
}

static void test_corpus_classes(void **state)
{
	static uint64_t ids[FP_CORPUS_LEN];
	char out[4096];
	unsigned bad = 0;

	(void)state;
	assert_true(FP_CORPUS_LEN >= 150);
	for (size_t i = 0; i < FP_CORPUS_LEN; i++) {
		const struct fp_case *c = &fp_corpus[i];
		struct fp_stmt st = norm1(c->sql, out, sizeof(out));

		ids[i] = st.id;
		if (c->norm != NULL && strcmp(c->norm, out) != 0) {
			print_error("%s: got   %s\n%s: want  %s\n", c->cls, out, c->cls, c->norm);
			bad++;
		}
		for (size_t j = 0; j < i; j++) {
			bool same_cls = strcmp(fp_corpus[j].cls, c->cls) == 0;

			if (same_cls != (ids[j] == st.id)) {
				print_error("%s / %s should %s:\n  %s\n  %s\n", fp_corpus[j].cls,
					    c->cls, same_cls ? "match" : "differ", fp_corpus[j].sql,
					    c->sql);
				bad++;
			}
		}
	}
	assert_int_equal(bad, 0);
}

/* The text is SQL that normalizes to itself: the same id can be recomputed from SHOW output. */
static void test_idempotent(void **state)
{
	char out[4096], again[4096];

	(void)state;
	for (size_t i = 0; i < FP_CORPUS_LEN; i++) {
		struct fp_stmt st = norm1(fp_corpus[i].sql, out, sizeof(out));
		struct fp_stmt st2 = norm1(out, again, sizeof(again));

		assert_string_equal(out, again);
		assert_true(st.id == st2.id);
		assert_int_equal(st.kind, st2.kind);
		assert_true(st.id == fp_hash(out, st.norm_len));
		assert_int_equal(st.norm_len, st.full_len);
		assert_int_equal(st.norm_len, strlen(out));
	}
}

static void test_out_null_and_truncation(void **state)
{
	static const size_t caps[] = {1, 2, 7, 16, 33};
	char full[4096], small[64];

	(void)state;
	for (size_t i = 0; i < FP_CORPUS_LEN; i++) {
		struct fp_stmt st = norm1(fp_corpus[i].sql, full, sizeof(full));
		struct fp_stmt st0 = norm1(fp_corpus[i].sql, NULL, 0);

		assert_true(st.id == st0.id);
		assert_true(st.params_hash == st0.params_hash);
		assert_int_equal(st.kind, st0.kind);
		assert_int_equal(st0.norm_len, 0);
		assert_int_equal(st0.full_len, st.full_len);
		for (size_t k = 0; k < sizeof(caps) / sizeof(caps[0]); k++) {
			struct fp_stmt stc;

			memset(small, 'Z', sizeof(small));
			stc = norm1(fp_corpus[i].sql, small, caps[k]);
			assert_true(stc.id == st.id); /* the id covers the full text */
			assert_true(stc.norm_len <= caps[k] - 1);
			assert_int_equal(stc.norm_len,
					 st.full_len < caps[k] - 1 ? st.full_len : caps[k] - 1);
			assert_int_equal(small[stc.norm_len], '\0');
			assert_memory_equal(small, full, stc.norm_len);
			assert_int_equal(small[caps[k]], 'Z'); /* nothing written past outcap */
		}
	}
}

/* Values computed by an independent implementation of doc/fingerprint.md's algorithm. */
static void test_hash_vectors(void **state)
{
	char hex[FP_HEX_LEN];

	(void)state;
	assert_true(fp_hash("", 0) == 0xe9c802f99ee93ccbull);
	assert_true(fp_hash("a", 1) == 0x815ac0ce7de81b10ull);
	assert_true(fp_hash("select $1", 9) == 0x31650eb737647df5ull);
	assert_true(fp_hash("select $1 from t", 16) == 0x97dae779292759baull);
	assert_true(fp_mix(1, 2) == 0x50f9899fd6023d42ull);
	fp_hex(0x31650eb737647df5ull, hex);
	assert_string_equal(hex, "31650eb737647df5");
	fp_hex(0x00000000000000abull, hex);
	assert_string_equal(hex, "00000000000000ab");

	struct fp_stmt st = norm1("SELECT 42", NULL, 0);

	assert_true(st.id == 0x31650eb737647df5ull);
	st = norm1(" BEGIN ", NULL, 0);
	assert_true(st.id == 0xd33e54573ec74737ull);
}

struct split_want {
	const char *norm;
	enum fp_kind kind;
	const char *raw; /* sql[start..end) */
};

static void check_split(const char *sql, const struct split_want *want, size_t n)
{
	size_t len = strlen(sql), pos = 0, i = 0;
	char *buf = dup_exact(sql, len);
	char out[512];
	struct fp_stmt st;

	while (fp_next(buf, len, &pos, out, sizeof(out), &st)) {
		assert_true(i < n);
		assert_string_equal(out, want[i].norm);
		assert_int_equal(st.kind, want[i].kind);
		assert_true(st.start <= st.end && st.end <= pos && pos <= len);
		assert_int_equal(st.end - st.start, strlen(want[i].raw));
		assert_memory_equal(buf + st.start, want[i].raw, st.end - st.start);
		i++;
	}
	assert_int_equal(i, n);
	assert_int_equal(pos, len);
	assert_int_equal(st.kind, FP_KIND_EMPTY);
	free(buf);
}

static void test_split(void **state)
{
	(void)state;
	{
		static const struct split_want w[] = {
			{"begin", FP_KIND_TXN, "BEGIN"},
			{"select $1", FP_KIND_SELECT, "SELECT 'a;b'"},
			{"select $1", FP_KIND_SELECT, "/* ; */ SELECT $$;$$ -- ;"},
			{"update t set a = $1", FP_KIND_UPDATE, "update t set a = E'\\';'"},
			{"commit", FP_KIND_TXN, "COMMIT"},
		};
		check_split("BEGIN; SELECT 'a;b';;\n/* ; */ SELECT $$;$$ -- ;\n;update t set a = "
			    "E'\\';';COMMIT; /* trailing */ ;",
			    w, 5);
	}
	{
		static const struct split_want w[] = {
			{"select \"a;b\"", FP_KIND_SELECT, "select \"a;b\""},
			{"create function f() returns int language sql begin atomic select $1; end",
			 FP_KIND_OTHER,
			 "create function f() returns int language sql begin atomic "
			 "select 1; end"},
			{"select $1", FP_KIND_SELECT, "select 2"},
		};
		check_split("select \"a;b\";create function f() returns int language sql begin "
			    "atomic select 1; end;select 2",
			    w, 3);
	}
	{
		/* only blanks, comments and semicolons: no statement */
		const char *sql = "  ;; /* x; */ -- y\n ; ";
		size_t pos = 0;
		struct fp_stmt st;

		assert_false(fp_next(sql, strlen(sql), &pos, NULL, 0, &st));
		assert_int_equal(pos, strlen(sql));
		assert_int_equal(st.kind, FP_KIND_EMPTY);
		pos = 1000; /* a position past the end is the end */
		assert_false(fp_next(sql, strlen(sql), &pos, NULL, 0, &st));
		assert_int_equal(pos, strlen(sql));
		pos = 0;
		assert_false(fp_next("", 0, &pos, NULL, 0, &st));
	}
}

struct kind_want {
	const char *sql;
	enum fp_kind kind;
	enum fp_txn txn;
};

static void test_kinds(void **state)
{
	static const struct kind_want w[] = {
		{"select 1", FP_KIND_SELECT, FP_TXN_NONE},
		{"VALUES (1)", FP_KIND_SELECT, FP_TXN_NONE},
		{"table t", FP_KIND_SELECT, FP_TXN_NONE},
		{"(select 1)", FP_KIND_SELECT, FP_TXN_NONE},
		{"with x as (select 1) select * from x", FP_KIND_SELECT, FP_TXN_NONE},
		{"with x as (select 1), y as (insert into t values (1) returning *) "
		 "delete from t using x",
		 FP_KIND_DELETE, FP_TXN_NONE},
		{"WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", FP_KIND_INSERT, FP_TXN_NONE},
		{"with x as (select 1) update t set a = 1", FP_KIND_UPDATE, FP_TXN_NONE},
		{"with x as (select 1) merge into t using x on true when matched then delete",
		 FP_KIND_MERGE, FP_TXN_NONE},
		{"insert into t values (1)", FP_KIND_INSERT, FP_TXN_NONE},
		{"update t set a = 1", FP_KIND_UPDATE, FP_TXN_NONE},
		{"delete from t", FP_KIND_DELETE, FP_TXN_NONE},
		{"merge into t using u on true when matched then delete", FP_KIND_MERGE,
		 FP_TXN_NONE},
		{"BEGIN", FP_KIND_TXN, FP_TXN_BEGIN},
		{"begin isolation level serializable", FP_KIND_TXN, FP_TXN_BEGIN},
		{"START TRANSACTION READ ONLY", FP_KIND_TXN, FP_TXN_BEGIN},
		{"COMMIT", FP_KIND_TXN, FP_TXN_COMMIT},
		{"commit and chain", FP_KIND_TXN, FP_TXN_COMMIT},
		{"END", FP_KIND_TXN, FP_TXN_COMMIT},
		{"ROLLBACK", FP_KIND_TXN, FP_TXN_ROLLBACK},
		{"rollback work", FP_KIND_TXN, FP_TXN_ROLLBACK},
		{"ABORT", FP_KIND_TXN, FP_TXN_ROLLBACK},
		{"SAVEPOINT s1", FP_KIND_TXN, FP_TXN_SAVEPOINT},
		{"RELEASE SAVEPOINT s1", FP_KIND_TXN, FP_TXN_RELEASE},
		{"ROLLBACK TO SAVEPOINT s1", FP_KIND_TXN, FP_TXN_ROLLBACK_TO},
		{"rollback transaction to s1", FP_KIND_TXN, FP_TXN_ROLLBACK_TO},
		{"PREPARE TRANSACTION 'g'", FP_KIND_TXN, FP_TXN_PREPARE},
		{"COMMIT PREPARED 'g'", FP_KIND_TXN, FP_TXN_COMMIT_PREPARED},
		{"ROLLBACK PREPARED 'g'", FP_KIND_TXN, FP_TXN_ROLLBACK_PREPARED},
		{"SET a = 1", FP_KIND_SESSION, FP_TXN_NONE},
		{"show all", FP_KIND_SESSION, FP_TXN_NONE},
		{"RESET ALL", FP_KIND_SESSION, FP_TXN_NONE},
		{"DISCARD ALL", FP_KIND_SESSION, FP_TXN_NONE},
		{"DEALLOCATE ALL", FP_KIND_SESSION, FP_TXN_NONE},
		{"LISTEN c", FP_KIND_LISTEN, FP_TXN_NONE},
		{"UNLISTEN *", FP_KIND_LISTEN, FP_TXN_NONE},
		{"NOTIFY c", FP_KIND_LISTEN, FP_TXN_NONE},
		{"DECLARE c CURSOR FOR SELECT 1", FP_KIND_CURSOR, FP_TXN_NONE},
		{"FETCH 10 FROM c", FP_KIND_CURSOR, FP_TXN_NONE},
		{"MOVE 10 IN c", FP_KIND_CURSOR, FP_TXN_NONE},
		{"CLOSE c", FP_KIND_CURSOR, FP_TXN_NONE},
		{"COPY t FROM STDIN", FP_KIND_COPY, FP_TXN_NONE},
		{"PREPARE p AS SELECT 1", FP_KIND_PREPARE, FP_TXN_NONE},
		{"EXECUTE p", FP_KIND_PREPARE, FP_TXN_NONE},
		{"CREATE TABLE t (a int)", FP_KIND_OTHER, FP_TXN_NONE},
		{"explain select 1", FP_KIND_OTHER, FP_TXN_NONE},
		{"start", FP_KIND_OTHER, FP_TXN_NONE},
		{"vacuum", FP_KIND_OTHER, FP_TXN_NONE},
		{"/* only */ 42", FP_KIND_OTHER, FP_TXN_NONE},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		struct fp_stmt st = norm1(w[i].sql, NULL, 0);

		if (st.kind != w[i].kind || st.txn != w[i].txn)
			print_error("%s: kind %d txn %d\n", w[i].sql, st.kind, st.txn);
		assert_int_equal(st.kind, w[i].kind);
		assert_int_equal(st.txn, w[i].txn);
	}
}

static void test_params_hash(void **state)
{
	struct fp_stmt a, b;

	(void)state;
	a = norm1("select * from t where id = 1", NULL, 0);
	b = norm1("SELECT * FROM t WHERE id=1 -- same values", NULL, 0);
	assert_true(a.id == b.id);
	assert_true(a.params_hash == b.params_hash);
	assert_int_equal(a.nconst, 1);
	b = norm1("select * from t where id = 2", NULL, 0);
	assert_true(a.id == b.id);
	assert_true(a.params_hash != b.params_hash);

	/* values dropped from a collapsed list still count */
	a = norm1("select * from t where id in (1, 2, 3)", NULL, 0);
	b = norm1("select * from t where id in (1, 2, 4)", NULL, 0);
	assert_true(a.id == b.id);
	assert_true(a.params_hash != b.params_hash);
	assert_int_equal(a.nconst, 3);
	b = norm1("select * from t where id in (1,2,3)", NULL, 0);
	assert_true(a.params_hash == b.params_hash);

	/* order matters, and constants do not run into each other */
	a = norm1("select 1, 23", NULL, 0);
	b = norm1("select 12, 3", NULL, 0);
	assert_true(a.id == b.id);
	assert_true(a.params_hash != b.params_hash);
	a = norm1("select true", NULL, 0);
	b = norm1("select TRUE", NULL, 0);
	assert_true(a.params_hash == b.params_hash);

	/* fp_mix: order-sensitive and not the identity */
	assert_true(fp_mix(fp_mix(7, 1), 2) != fp_mix(fp_mix(7, 2), 1));
	assert_true(fp_mix(7, 1) != 7);
}

static void test_collapse_large(void **state)
{
	size_t cap = 200000, n;
	char *sql = malloc(cap);
	char out[256];
	struct fp_stmt big, one;

	(void)state;
	assert_non_null(sql);
	/* 5,000-element IN list */
	n = (size_t)snprintf(sql, cap, "select * from t where id in (0");
	for (int i = 1; i < 5000; i++)
		n += (size_t)snprintf(sql + n, cap - n, ", %d", i);
	snprintf(sql + n, cap - n, ") and x = 1");
	big = norm1(sql, out, sizeof(out));
	assert_string_equal(out, "select * from t where id in ($1) and x = $2");
	one = norm1("select * from t where id in (7) and x = 2", NULL, 0);
	assert_true(big.id == one.id);
	assert_int_equal(big.nconst, 5001);

	/* bulk_create of 2,000 rows */
	n = (size_t)snprintf(sql, cap, "INSERT INTO \"t\" (\"a\", \"b\") VALUES ");
	for (int i = 0; i < 2000; i++)
		n += (size_t)snprintf(sql + n, cap - n, "%s(%d, 'v%d')", i ? ", " : "", i, i);
	snprintf(sql + n, cap - n, " RETURNING \"t\".\"id\"");
	big = norm1(sql, out, sizeof(out));
	assert_string_equal(
		out, "insert into \"t\" (\"a\", \"b\") values ($1, $2) returning \"t\".\"id\"");
	one = norm1("insert into \"t\" (\"a\", \"b\") values ($1, $2) returning \"t\".\"id\"", NULL,
		    0);
	assert_true(big.id == one.id);

	/* more distinct element shapes than are remembered: still deterministic */
	snprintf(sql, cap,
		 "select 1 where a in (1::t1, 2::t2, 3::t3, 4::t4, 5::t5, 6::t6, 7::t7, "
		 "8::t8, 9::t9, 10::t10, 11::t1, 12::t9, 13::t10)");
	big = norm1(sql, out, sizeof(out));
	assert_string_equal(out, "select $1 where a in ($2::t1, $3::t2, $4::t3, $5::t4, $6::t5, "
				 "$7::t6, $8::t7, $9::t8, $10::t9, $11::t10, $12::t9, $13::t10)");
	free(sql);
}

/* Nesting far past the list stack and unbalanced brackets are handled without recursion. */
static void test_deep_and_unbalanced(void **state)
{
	size_t n = 100000;
	char *sql = malloc(n * 2 + 16);
	char out[64];
	struct fp_stmt st;

	(void)state;
	assert_non_null(sql);
	memcpy(sql, "select ", 7);
	for (size_t i = 0; i < n; i++)
		sql[7 + i] = (i & 1) ? '(' : '[';
	sql[7 + n] = '\0';
	st = norm1(sql, out, sizeof(out));
	assert_int_equal(st.kind, FP_KIND_SELECT);
	assert_int_equal(st.full_len, 6 + n); /* "select[([(..." */
	free(sql);

	st = norm1("select a in (in (in (in (in (in (1, 2))))))", out, sizeof(out));
	assert_string_equal(out, "select a in (in (in (in (in (in ($1, $2))))))");
	st = norm1("select ))) ]] ( 1", out, sizeof(out));
	assert_string_equal(out, "select)))]] ($1");
	st = norm1("select a in (1, 2", out, sizeof(out));
	assert_string_equal(out, "select a in ($1");
}

static void test_unterminated(void **state)
{
	static const char *const cases[][2] = {
		{"select 'abc", "select $1"},
		{"select E'abc\\", "select $1"},
		{"select \"abc", "select \"abc"},
		{"select $$abc", "select $1"},
		{"select $a$abc$a", "select $1"},
		{"select 1 /* abc", "select $1"},
		{"select 1 /* a /* b */", "select $1"},
		{"select U&'x", "select $1"},
		{"select $", "select $"},
		{"select $a", "select $ a"},
		{"select 1e", "select $1 e"},
		{"select 1.e5x", "select $1 x"},
		{"select 1..2", "select $1.$2"},
		{"select \\ { }", "select \\ { }"},
		{"select\x01\x7f"
		 "1",
		 "select $1"},
	};
	char out[128];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		(void)norm1(cases[i][0], out, sizeof(out));
		if (strcmp(out, cases[i][1]) != 0)
			print_error("%s -> %s\n", cases[i][0], out);
		assert_string_equal(out, cases[i][1]);
	}
}

/* Every prefix of every corpus statement, in an exact-size buffer: no read past the end. */
static void test_prefixes(void **state)
{
	char out[256];

	(void)state;
	for (size_t i = 0; i < FP_CORPUS_LEN; i++) {
		size_t len = strlen(fp_corpus[i].sql);

		for (size_t k = 0; k <= len; k++) {
			char *buf = dup_exact(fp_corpus[i].sql, k);
			size_t pos = 0, last = 0;
			struct fp_stmt st;

			while (fp_next(buf, k, &pos, out, sizeof(out), &st)) {
				assert_true(pos > last && pos <= k);
				assert_true(st.start >= last && st.start < st.end && st.end <= pos);
				assert_true(st.norm_len < sizeof(out));
				last = pos;
			}
			assert_int_equal(pos, k);
			free(buf);
		}
	}
}

static void test_tags(void **state)
{
	struct fp_tags t;
	const char *sql;

	(void)state;
	sql = "SELECT 1 /*action='index',controller='book',framework='django%3A4.2',"
	      "route='%5Ebooks/%3Cint%3Apk%3E/"
	      "%24',traceparent='00-0af7651916cd43dd8448eb211c80319c-"
	      "b7ad6b7169203331-01'*/";
	assert_true(fp_parse_tags(sql, strlen(sql), &t));
	assert_string_equal(t.action, "index");
	assert_string_equal(t.controller, "book");
	assert_string_equal(t.framework, "django:4.2");
	assert_string_equal(t.route, "^books/<int:pk>/$");
	assert_string_equal(t.traceparent,
			    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
	assert_string_equal(t.application, "");

	/* Django without parameters leaves the percent signs doubled; trailing ';' and blanks */
	sql = "SELECT 1 /*controller='book',route='%%5Ebooks/%%24',x='50%%'*/ ;\n";
	assert_true(fp_parse_tags(sql, strlen(sql), &t));
	assert_string_equal(t.route, "^books/$");
	assert_string_equal(t.controller, "book");

	/* leading comment, escaped quote, spaces, application and app_name */
	sql = "  /* app_name='x', application='shop%20front', route='it\\'s' */ select 1";
	assert_true(fp_parse_tags(sql, strlen(sql), &t));
	assert_string_equal(t.application, "shop front");
	assert_string_equal(t.route, "it's");
	sql = "/*app_name='backoffice'*/ select 1";
	assert_true(fp_parse_tags(sql, strlen(sql), &t));
	assert_string_equal(t.application, "backoffice");

	/* a leading plain comment does not hide a trailing sqlcommenter one */
	sql = "/* just a comment */ select 1 /*route='r'*/";
	assert_true(fp_parse_tags(sql, strlen(sql), &t));
	assert_string_equal(t.route, "r");

	/* malformed or absent: false and empty tags */
	static const char *const bad[] = {
		"select 1",
		"select 1 /* plain comment */",
		"/*route='unterminated*/ select 1",
		"select 1 /*route=noquotes*/",
		"select 1 /*route='a' controller='b'*/",
		"select 1 /*='a'*/",
		"select 1 /**/",
		"select 1 /*/",
		"*/",
		"",
		"select 1 /*route='a'*/ -- trailing line comment",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *buf = dup_exact(bad[i], strlen(bad[i]));

		memset(&t, 'x', sizeof(t));
		assert_false(fp_parse_tags(buf, strlen(bad[i]), &t));
		assert_string_equal(t.route, "");
		assert_string_equal(t.controller, "");
		free(buf);
	}

	/* truncation keeps UTF-8 whole; control bytes are neutralized */
	char long_sql[600];
	size_t n = (size_t)snprintf(long_sql, sizeof(long_sql), "select 1 /*action='");
	for (int i = 0; i < 40; i++)
		n += (size_t)snprintf(long_sql + n, sizeof(long_sql) - n, "%%C3%%A9"); /* é */
	snprintf(long_sql + n, sizeof(long_sql) - n, "',route='a%%0Ab%%00c'*/");
	assert_true(fp_parse_tags(long_sql, strlen(long_sql), &t));
	assert_int_equal(strlen(t.action), 62); /* 31 whole "é" in 63 bytes */
	assert_string_equal(t.route, "a?b?c");
}

static void test_trace_id(void **state)
{
	char id[33];

	(void)state;
	assert_true(fp_trace_id("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", id));
	assert_string_equal(id, "0af7651916cd43dd8448eb211c80319c");
	assert_true(fp_trace_id("00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-00", id));
	assert_string_equal(id, "0af7651916cd43dd8448eb211c80319c");
	/* a later version may carry more fields */
	assert_true(fp_trace_id("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-xyz", id));

	static const char *const bad[] = {
		"",
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
		"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"00-00000000000000000000000000000000-b7ad6b7169203331-01",
		"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
		"00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",
		"00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0z",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(fp_trace_id(bad[i], id));
}

/* fp_next() from position 0 on the whole of sql. */
static bool first_stmt(const char *sql, struct fp_stmt *st)
{
	size_t pos = 0;

	return fp_next(sql, strlen(sql), &pos, NULL, 0, st);
}

static void assert_same_stmt(const struct fp_stmt *a, const struct fp_stmt *b)
{
	assert_int_equal(a->id, b->id);
	assert_int_equal(a->params_hash, b->params_hash);
	assert_int_equal(a->kind, b->kind);
	assert_int_equal(a->txn, b->txn);
	assert_int_equal(a->start, b->start);
	assert_int_equal(a->end, b->end);
}

static void test_cache(void **state)
{
	(void)state;
	struct fp_cache *c = fp_cache_new(42);
	struct fp_stmt st, got;
	const char *q = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";
	uint64_t hits, misses;

	assert_non_null(c);
	assert_false(fp_cache_get(c, q, strlen(q), &got));
	assert_true(first_stmt(q, &st));
	fp_cache_put(c, q, strlen(q), &st);
	memset(&got, 0, sizeof(got));
	assert_true(fp_cache_get(c, q, strlen(q), &got));
	assert_same_stmt(&st, &got);
	/* same length, one byte different; a prefix; a longer text */
	assert_false(fp_cache_get(c, "SELECT abalance FROM pgbench_accounts WHERE aid = $2",
				  strlen(q), &got));
	assert_false(fp_cache_get(c, q, strlen(q) - 1, &got));
	assert_false(fp_cache_get(c, "SELECT abalance FROM pgbench_accounts WHERE aid = $1 ",
				  strlen(q) + 1, &got));
	fp_cache_counts(c, &hits, &misses);
	assert_int_equal(hits, 1);
	assert_int_equal(misses, 4);

	/* Many texts through 1,024 slots: whatever is found is that text's own result. */
	char sql[200];
	for (int i = 0; i < 5000; i++) {
		snprintf(sql, sizeof(sql), "SELECT c%d FROM t%d WHERE id = $1", i % 97, i);
		assert_true(first_stmt(sql, &st));
		fp_cache_put(c, sql, strlen(sql), &st);
	}
	int found = 0;
	for (int i = 0; i < 5000; i++) {
		snprintf(sql, sizeof(sql), "SELECT c%d FROM t%d WHERE id = $1", i % 97, i);
		if (!fp_cache_get(c, sql, strlen(sql), &got))
			continue;
		found++;
		assert_true(first_stmt(sql, &st));
		assert_same_stmt(&st, &got);
	}
	assert_true(found > 300 && found <= FPC_SLOTS);

	/* too long to keep; the bytes held stay bounded */
	char *big = malloc(FPC_MAX_TEXT + 100);
	assert_non_null(big);
	memset(big, ' ', FPC_MAX_TEXT + 99);
	memcpy(big, "SELECT 1", 8);
	big[FPC_MAX_TEXT + 99] = '\0';
	assert_true(first_stmt(big, &st));
	fp_cache_put(c, big, strlen(big), &st);
	assert_false(fp_cache_get(c, big, strlen(big), &got));
	assert_true(fp_cache_bytes(c) <= FPC_SLOTS * (sizeof(struct fp_stmt) + 32 + FPC_MAX_TEXT));
	free(big);
	fp_cache_free(c);
}

/* Statements that must share a shape (first) with each other statement of their row. */
static const char *const same_shape[][3] = {
	{"SELECT * FROM t WHERE id = 5", "SELECT * FROM t WHERE id = 12345",
	 "SELECT * FROM t WHERE id = 0.5"},
	{"SELECT 'abc', x FROM t", "SELECT '', x FROM t", "SELECT 'it''s; -- no', x FROM t"},
	{"SELECT 1 /* a */;", "SELECT 22 /* bbb /* nested */ */;", "SELECT 3 /**/;"},
	{"SELECT a FROM t -- one\nWHERE b = 1", "SELECT a FROM t -- two two\nWHERE b = 2",
	 "SELECT a FROM t --\nWHERE b = 33"},
	{"SELECT \"t1\".\"c\" FROM \"t1\" WHERE \"t1\".\"id\" IN (1, 2, 3) LIMIT 21 "
	 "/*controller='book',route='%5Ebooks%2F',traceparent='00-0af7651916cd43dd8448eb211c80319c-"
	 "b7ad6b7169203331-01'*/",
	 "SELECT \"t1\".\"c\" FROM \"t1\" WHERE \"t1\".\"id\" IN (7, 8, 9) LIMIT 1 "
	 "/*controller='book',route='%5Ebooks%2F',traceparent='00-aaf7651916cd43dd8448eb211c80319c-"
	 "b7ad6b7169203331-01'*/",
	 "SELECT \"t1\".\"c\" FROM \"t1\" WHERE \"t1\".\"id\" IN (1000, 2, 3) LIMIT 5 /**/"},
	/* IN lists of constants: any length (Django's __in and prefetch_related) */
	{"SELECT \"b\".\"id\" FROM \"b\" WHERE \"b\".\"author_id\" IN (1, 2, 3)",
	 "SELECT \"b\".\"id\" FROM \"b\" WHERE \"b\".\"author_id\" IN (42)",
	 "SELECT \"b\".\"id\" FROM \"b\" WHERE \"b\".\"author_id\" IN (7,8,9,10,11,12)"},
	{"SELECT x FROM t WHERE s IN ('a', 'b') AND n NOT IN (1) LIMIT 3",
	 "SELECT x FROM t WHERE s IN ('c') AND n NOT IN (2, 3) LIMIT 30",
	 "SELECT x FROM t WHERE s IN ('d','e' , 'f') AND n NOT IN (4.5) LIMIT 1"},
};

/* Pairs that must not: names with digits, $n, spacing, lists of more than constants or not
 * after IN, comment or none. */
static const char *const other_shape[][2] = {
	{"SELECT * FROM t1", "SELECT * FROM t2"},
	{"SELECT $1", "SELECT $2"},
	{"SELECT 1", "SELECT 1 "},
	{"SELECT 1 FROM t WHERE a IN (1, 2)", "SELECT 1 FROM t WHERE a IN (1, b)"},
	{"SELECT 1 FROM t WHERE a IN (1, 2)", "SELECT 1 FROM t WHERE a IN (1, -2)"},
	{"SELECT 1 -- a IN (\n1, 2)", "SELECT 1 -- a IN (\n1, 2, 3)"},
	{"SELECT 1 FROM t JOIN (1, 2)", "SELECT 1 FROM t JOIN (1, 2, 3)"},
	{"SELECT 1 /* c */", "SELECT 1"},
	{"SELECT 1", "SELECT '1'"},
	{"SELECT a.b1 FROM t", "SELECT a.b2 FROM t"},
	{"SELECT 1; SELECT 2", "SELECT 1;"},
};

/* Texts the quick reading declines: the normalizer decides. */
static const char *const no_shape[] = {
	"SELECT $$a$$",          "SELECT $x$ 1 $x$", "SELECT E'a\\'b'",
	"SELECT 'a\\b'",         "SELECT B'0101'",   "SELECT 1e5",
	"SELECT 0x1F",           "SELECT 1_000",     "SELECT 'unterminated",
	"SELECT \"unterminated", "SELECT 1 /* open", "SELECT 1.2.3",
	"SELECT N'x'",           "SELECT 5'x'",
};

static void test_shapes(void **state)
{
	(void)state;
	struct fp_cache *c = fp_cache_new(7);
	struct fp_shape a, b;
	struct fp_stmt st, got, want;
	size_t pos;

	assert_non_null(c);
	for (size_t r = 0; r < sizeof(same_shape) / sizeof(same_shape[0]); r++) {
		const char *first = same_shape[r][0];
		assert_true(fp_shape(c, first, strlen(first), &a));
		pos = 0;
		assert_true(fp_next(first, strlen(first), &pos, NULL, 0, &st));
		fp_cache_shape_put(c, &a, first, strlen(first), &st);
		for (int i = 1; i < 3; i++) {
			const char *t = same_shape[r][i];
			assert_int_equal(fp_shape_pair(c, first, strlen(first), t, strlen(t)), 1);
			assert_true(fp_shape(c, t, strlen(t), &b));
			assert_int_equal(a.key, b.key);
			assert_true(a.params != b.params); /* other literals */
			assert_true(fp_cache_shape_get(c, &b, strlen(t), &got));
			pos = 0;
			assert_true(fp_next(t, strlen(t), &pos, NULL, 0, &want));
			assert_same_stmt(&want, &(struct fp_stmt){.id = got.id,
								  .params_hash = want.params_hash,
								  .kind = got.kind,
								  .txn = got.txn,
								  .start = got.start,
								  .end = got.end});
			assert_int_equal(got.params_hash, b.params);
		}
	}
	for (size_t r = 0; r < sizeof(other_shape) / sizeof(other_shape[0]); r++) {
		assert_true(fp_shape(c, other_shape[r][0], strlen(other_shape[r][0]), &a));
		assert_true(fp_shape(c, other_shape[r][1], strlen(other_shape[r][1]), &b));
		assert_true(a.key != b.key);
	}
	for (size_t r = 0; r < sizeof(no_shape) / sizeof(no_shape[0]); r++)
		assert_false(fp_shape(c, no_shape[r], strlen(no_shape[r]), &a));
	/* a statement that starts after a comment and an empty statement: not kept */
	const char *late = "/* 12 */ ; SELECT 2";
	assert_true(fp_shape(c, late, strlen(late), &a));
	pos = 0;
	assert_true(fp_next(late, strlen(late), &pos, NULL, 0, &st));
	assert_false(fp_shape_fits(&a, &st));
	fp_cache_shape_put(c, &a, late, strlen(late), &st);
	assert_false(fp_cache_shape_get(c, &a, strlen(late), &got));
	/* the same text, the same parameters; another seed, other keys */
	const char *q = "SELECT x FROM t WHERE id = 42";
	struct fp_cache *c2 = fp_cache_new(8);
	assert_true(fp_shape(c, q, strlen(q), &a) && fp_shape(c, q, strlen(q), &b));
	assert_int_equal(a.params, b.params);
	assert_true(fp_shape(c2, q, strlen(q), &b));
	assert_true(a.key != b.key);
	fp_cache_free(c2);

	/*
	 * Texts against the template of another text: the result is fp_shape()'s, whether the
	 * template matched (1) or not (0). Where a part's first byte could join the text before
	 * it, or a literal is not of the template's kind, it must not match.
	 */
	static const struct {
		const char *tmpl, *sql;
		int match;
	} tmpl_pairs[] = {
		{"SELECT \"a\" FROM t WHERE id = 5 LIMIT 21",
		 "SELECT \"a\" FROM t WHERE id = 123456 LIMIT 21", 1},
		{"SELECT 'it''s', 7", "SELECT 'x', 8.5", 1},
		{"SELECT x WHERE y IN ('a', 'b')", "SELECT x WHERE y IN (1, 2, 3)", 1},
		{"/*route='a'*/ SELECT 1", "/*route='b',traceparent='00-x'*/ SELECT 2", 1},
		{"BEGIN", "BEGIN", 1},
		{"SELECT 1 -/* c */", "SELECT 2 --- c", 0}, /* the '-' before opens "--" */
		{"SELECT 1 -- c", "SELECT 2 /* c */", 0},   /* same shape; the opener differs */
		{"SELECT $1'a'", "SELECT $1'b'", 0},        /* same shape, not matched */
		{"SELECT 5 /* c */", "SELECT 5 /* c", 0},
		{"SELECT 1", "SELECT 1e5", 0},
		{"SELECT 1 FROM t", "SELECT 0x1F FROM t", 0},
		{"SELECT 'a'", "SELECT 'a\\b'", 0},
		{"SELECT 'a'", "SELECT 'a", 0},
		{"SELECT 'a'", "SELECT 5", 0},
		{"WHERE x IN (1, 2)", "WHERE x IN (1, y)", 0},
		{"SELECT 1", "SELECT 1 ", 0},
		{"SELECT 1 FROM t", "SELECT  FROM t", 0}, /* no literal where it had one */
		{"SELECT 1,2,3,4,5,6,7,8,9", "SELECT 2,2,3,4,5,6,7,8,9", 0}, /* too many parts */
	};
	for (size_t r = 0; r < sizeof(tmpl_pairs) / sizeof(tmpl_pairs[0]); r++) {
		const char *t = tmpl_pairs[r].tmpl, *x = tmpl_pairs[r].sql;
		int m = fp_shape_template_check(c, t, strlen(t), x, strlen(x));
		if (m != tmpl_pairs[r].match)
			print_error("template [%s], text [%s]: %d\n", t, x, m);
		assert_int_equal(m, tmpl_pairs[r].match);
	}

	/* which texts may carry sqlcommenter tags: those with a comment, or ending like one */
	static const struct {
		const char *sql;
		bool may, tags;
	} tagged[] = {
		{"SELECT 1", false, false},
		{"SELECT 1 -- route='/a'", true, false},
		{"SELECT 1 /*route='%2Fa'*/", true, true},
		{"/*route='%2Fa'*/ SELECT 1;", true, true},
		{"SELECT '/*route=''%2Fa''*/'", false, false},
		{"SELECT \"/*route='x'*/\" FROM t", false, false},
		{"SELECT '/*route=''%2Fa''' */ ;\n", true, false},
	};
	for (size_t r = 0; r < sizeof(tagged) / sizeof(tagged[0]); r++) {
		const char *t = tagged[r].sql;
		struct fp_tags tg;
		assert_true(fp_shape(c, t, strlen(t), &a));
		assert_int_equal(fp_shape_may_have_tags(&a, t, strlen(t)), tagged[r].may);
		assert_int_equal(fp_parse_tags(t, strlen(t), &tg), tagged[r].tags);
		assert_int_equal(fp_shape_tags_check(c, t, strlen(t)), 1);
	}

	/*
	 * The whole corpus, against itself and against variants whose literal digits moved or
	 * doubled: equal keys always mean equal results; the variants mostly keep their key.
	 */
	char buf[8192];
	size_t equal = 0;
	struct fp_cache *portable = fp_cache_new(7);
	assert_non_null(portable);
	fp_cache_portable(portable);
	for (size_t i = 0; i < FP_CORPUS_LEN; i++) {
		const char *x = fp_corpus[i].sql;
		size_t nx = strlen(x);
		assert_true(fp_shape_scans_agree(c, portable, x, nx));
		for (size_t j = 0; j < FP_CORPUS_LEN; j++) {
			const char *y = fp_corpus[j].sql;
			assert_int_not_equal(fp_shape_pair(c, x, nx, y, strlen(y)), -1);
		}
		assert_int_equal(fp_shape_tags_check(c, x, nx), 1);
		for (int how = 0; how < 3; how++) {
			assert_true(2 * nx < sizeof(buf));
			size_t ny = fp_shape_variant(x, nx, buf, how);
			int r = fp_shape_pair(c, x, nx, buf, ny);
			if (r == -1)
				print_error("shape promise broken: [%s] vs [%.*s]\n", x, (int)ny,
					    buf);
			assert_int_not_equal(r, -1);
			equal += r == 1;
		}
	}
	assert_true(equal > FP_CORPUS_LEN / 2);
	fp_cache_free(portable);
	fp_cache_free(c);
}

/*
 * Random token soup: a text and its twin, whose numbers, strings and comments were drawn again
 * from the same lists. The tokens around them (dollar signs, quotes, comment marks, names)
 * often make the literals something else; equal keys must still mean equal results.
 */
static const char *const soup_tok[] = {
	"$",      "$a$",     "$1",       ".",     "e",         "E",       "x",      "'",
	"\"",     "\"\"",    "\n",       " ",     "_",         "a",       "IN",     "(",
	")",      ",",       ";",        "::",    "-",         "+",       "/",      "*",
	"<",      "=",       "!",        "\\",    "&",         "U&",      "VALUES", "SELECT",
	"FETCH",  "ARRAY[",  "]",        "\xdb",  "B",         "N",       "LIMIT",  "NULL",
	"IS",     "date",    "SET",      "BEGIN", "SAVEPOINT", "DECLARE", "AS",     "ATOMIC",
	"END",    "?",       ":",        "#",     "--",        "/*",      "*/",     "WITH",
	"CREATE", "PREPARE", "ROLLBACK", "TO",    "CLOSE",     "START",   "MOVE",   "ALL",
};
/* quoted names, which the scan passes over whole, with what would be stops inside */
static const char *const soup_name[] = {
	"\"t\".\"a\", \"t\".\"b\"", "\"a1.5\"", "\"it'\"", "\"--\"", "\"/*\"", "\"$1\"",
};
static const char *const soup_num[] = {"5", "12", "0", "1234567", "3.25", "7."};
static const char *const soup_str[] = {"'a'",  "'bc d'", "''",   "'it''s'",
				       "'--'", "'/*'",   "'$$'", "'\"'"};
static const char *const soup_com[] = {"/* c */", "/* d /* e */ */", "-- f\n",
				       "/**/",    "-- 'x\n",         "/* $$ */"};
/* IN lists of constants, read as one literal whatever their length, and lists that are not */
static const char *const soup_list[] = {
	" IN (1)",    " IN (1, 2, 3)", " in ('a','b')", " IN ( 12 ,\n'it''s' , 0.5 )",
	" IN (7, x)", " IN (5, -1)",   " IN (1, 2",     " IN ('a' 'b')",
	" IN (1) ",   " IN(1, 2)",     " IN (\n1,\n2)", " IN (1, 'a'::text)",
};
#define SOUP_N(a) (sizeof(a) / sizeof((a)[0]))

static uint32_t soup_rand(uint32_t *x)
{
	*x = *x * 1103515245u + 12345u;
	return *x >> 8;
}

static void test_shape_soup(void **state)
{
	(void)state;
	struct fp_cache *c = fp_cache_new(5);
	char t[4096], v[4096];
	uint32_t seed = 1;
	int equal = 0, matched = 0;

	struct fp_cache *portable = fp_cache_new(5);
	assert_non_null(portable);
	fp_cache_portable(portable);
	for (int it = 0; it < 200000; it++) {
		size_t o = 0, ov = 0;
		/* a few long enough for several 64-byte blocks */
		int k = 1 + (int)(soup_rand(&seed) % (it % 8 ? 25 : 90));
		for (int i = 0; i < k; i++) {
			uint32_t cls = soup_rand(&seed) % 7;
			const char *w, *wv;
			if (cls == 0) {
				w = soup_num[soup_rand(&seed) % SOUP_N(soup_num)];
				wv = soup_num[soup_rand(&seed) % SOUP_N(soup_num)];
			} else if (cls == 1) {
				w = soup_str[soup_rand(&seed) % SOUP_N(soup_str)];
				wv = soup_str[soup_rand(&seed) % SOUP_N(soup_str)];
			} else if (cls == 2) {
				w = soup_com[soup_rand(&seed) % SOUP_N(soup_com)];
				wv = soup_com[soup_rand(&seed) % SOUP_N(soup_com)];
			} else if (cls == 3) {
				w = soup_list[soup_rand(&seed) % SOUP_N(soup_list)];
				wv = soup_list[soup_rand(&seed) % SOUP_N(soup_list)];
			} else if (cls == 4) {
				w = wv = soup_name[soup_rand(&seed) % SOUP_N(soup_name)];
			} else {
				w = wv = soup_tok[soup_rand(&seed) % SOUP_N(soup_tok)];
			}
			size_t l = strlen(w), lv = strlen(wv);
			memcpy(t + o, w, l);
			memcpy(v + ov, wv, lv);
			o += l;
			ov += lv;
			if (soup_rand(&seed) % 2) {
				t[o++] = ' ';
				v[ov++] = ' ';
			}
		}
		int r = fp_shape_pair(c, t, o, v, ov);
		if (r == -1)
			print_error("shape promise broken: [%.*s] vs [%.*s]\n", (int)o, t, (int)ov,
				    v);
		/* the twin, by the text's template, as fp_shape() reads it */
		int tr = fp_shape_template_check(c, t, o, v, ov);
		if (tr == -1)
			print_error("template match differs: [%.*s] vs [%.*s]\n", (int)o, t,
				    (int)ov, v);
		assert_int_not_equal(tr, -1);
		matched += tr == 1;
		assert_int_equal(fp_shape_tags_check(c, t, o), 1);
		assert_int_not_equal(r, -1);
		equal += r == 1;
		/* the AVX2 and the SSE2 scan on the text, and on every prefix of one text in 128 */
		for (size_t m = it % 128 ? o : 0; m <= o; m++)
			assert_true(fp_shape_scans_agree(c, portable, t, m));
		/* and the text against itself with its digits moved on or doubled */
		for (int how = 0; how < 3; how++) {
			char d[2 * sizeof(t)];
			size_t nd = fp_shape_variant(t, o, d, how);
			r = fp_shape_pair(c, t, o, d, nd);
			if (r == -1)
				print_error("shape promise broken: [%.*s] vs [%.*s]\n", (int)o, t,
					    (int)nd, d);
			assert_int_not_equal(r, -1);
			if (how == 1 && fp_shape_template_check(c, t, o, d, nd) == -1) {
				print_error("template match differs: [%.*s] vs [%.*s]\n", (int)o,
					    t, (int)nd, d);
				fail();
			}
		}
	}
	printf("soup: %d of 200000 twins matched their text's template\n", matched);
	assert_true(matched > 10000);
	assert_true(equal > 15000); /* the soup does reach the cache's case (20,824 pairs) */
	fp_cache_free(c);
	fp_cache_free(portable);
}

/* fp_session_effect(): raw texts in any case and spacing, normalized texts, several statements. */
static void test_session_effect(void **state)
{
	(void)state;
	static const struct {
		const char *sql;
		int want;
	} cases[] = {
		{"DECLARE c CURSOR WITH HOLD FOR SELECT 1", FP_HELD_TAKES},
		{"declare \"c\" no scroll cursor\n  with\thold for select 1", FP_HELD_TAKES},
		{"/* c */ -- x\n DECLARE c CURSOR FOR SELECT 1", 0},
		{"SELECT pg_advisory_lock(1)", FP_HELD_TAKES},
		{"select PG_TRY_ADVISORY_LOCK($1)", FP_HELD_TAKES},
		{"SELECT pg_advisory_lock_shared(1), pg_try_advisory_lock_shared(2)", FP_HELD_TAKES},
		{"SELECT pg_advisory_xact_lock(1)", 0},
		{"SELECT pg_advisory_unlock(1)", FP_HELD_RELEASES},
		{"SELECT pg_advisory_unlock_all()", FP_HELD_RELEASES},
		{"UPDATE jobs SET taken = true WHERE id = (SELECT id FROM jobs WHERE "
		 "pg_try_advisory_lock(id) LIMIT 1)",
		 FP_HELD_TAKES},
		{"LISTEN jobs", FP_HELD_TAKES},
		{"unlisten *", FP_HELD_RELEASES},
		{"CREATE TEMP TABLE t (n int)", FP_HELD_TAKES},
		{"create global temporary table t (n int)", FP_HELD_TAKES},
		{"CREATE OR REPLACE TEMP VIEW v AS SELECT 1", FP_HELD_TAKES},
		{"CREATE TABLE temp_t (n int)", 0},
		{"CREATE TABLE t (temp int)", 0},
		{"SELECT * INTO TEMP t FROM x", FP_HELD_TAKES},
		{"SELECT * INTO t FROM x", 0},
		{"DROP TABLE t", FP_HELD_RELEASES},
		{"CLOSE ALL", FP_HELD_RELEASES},
		{"DISCARD TEMP", FP_HELD_RELEASES},
		{"ROLLBACK", FP_HELD_RELEASES},
		{"abort", FP_HELD_RELEASES},
		{"SELECT set_config('work_mem', '8MB', false)", FP_HELD_SETS},
		{"SELECT reset_val FROM pg_settings", 0},
		{"SET work_mem = '8MB'", FP_HELD_MAYBE_SET},
		{"BEGIN; set local work_mem = 1; DECLARE c CURSOR WITH HOLD FOR SELECT 1; COMMIT",
		 FP_HELD_MAYBE_SET | FP_HELD_TAKES},
		{"SELECT 1;\n  SELECT pg_advisory_lock(3)", FP_HELD_TAKES},
		{"SELECT author_id, book_id FROM books WHERE id = 1", 0},
		{"SELECT 'x' AS into_temp", 0},
		{"", 0},
		{"_", 0},
		{"set", FP_HELD_MAYBE_SET},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = fp_session_effect(cases[i].sql, strlen(cases[i].sql));
		if (got != cases[i].want)
			fail_msg("%s: %d, want %d", cases[i].sql, got, cases[i].want);
	}
	/* A cut text is read only as far as it goes: the lock call is past the cut. */
	const char *lock = "SELECT pg_advisory_lock(1)";
	assert_int_equal(fp_session_effect(lock, 20), 0);
	/* Every prefix of each case, for reads past the end (under ASan and valgrind). */
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = strlen(cases[i].sql);
		for (size_t k = 0; k <= n; k++) {
			char *copy = malloc(k ? k : 1);
			assert_non_null(copy);
			memcpy(copy, cases[i].sql, k);
			(void)fp_session_effect(copy, k);
			free(copy);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus_classes),
		cmocka_unit_test(test_idempotent),
		cmocka_unit_test(test_out_null_and_truncation),
		cmocka_unit_test(test_hash_vectors),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_params_hash),
		cmocka_unit_test(test_collapse_large),
		cmocka_unit_test(test_deep_and_unbalanced),
		cmocka_unit_test(test_unterminated),
		cmocka_unit_test(test_prefixes),
		cmocka_unit_test(test_tags),
		cmocka_unit_test(test_trace_id),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_shapes),
		cmocka_unit_test(test_shape_soup),
		cmocka_unit_test(test_session_effect),
	};

	return cmocka_run_group_tests_name("fingerprint", tests, NULL, NULL);
}
