/* fp_corpus: statements with expected fingerprint classes, shared by the fingerprint tests. */
#ifndef PGT_FP_CORPUS_H
#define PGT_FP_CORPUS_H

#include <stddef.h>

/*
 * Two statements of the same class must get the same fingerprint, two statements of
 * different classes different ones. norm, when set, is the exact normalized text.
 * Every statement is valid PostgreSQL 15, except the PostgreSQL 16 number literals that
 * test_fingerprint_pgquery.c lists in pg16_only[].
 */
struct fp_case {
	const char *cls;
	const char *sql;
	const char *norm;
};

#define DJ_BOOK_COLS                                                                               \
	"SELECT \"library_book\".\"id\", \"library_book\".\"title\", "                             \
	"\"library_book\".\"author_id\", \"library_book\".\"published\" FROM \"library_book\" "

static const struct fp_case fp_corpus[] = {
	/* Django get(): constants, parameters, case, whitespace, comments */
	{"dj_get", DJ_BOOK_COLS "WHERE \"library_book\".\"id\" = 1 LIMIT 21",
	 "select \"library_book\".\"id\", \"library_book\".\"title\", "
	 "\"library_book\".\"author_id\", "
	 "\"library_book\".\"published\" from \"library_book\" where \"library_book\".\"id\" = $1 "
	 "limit $2"},
	{"dj_get", DJ_BOOK_COLS "WHERE \"library_book\".\"id\" = $1 LIMIT $2", NULL},
	{"dj_get", DJ_BOOK_COLS "WHERE \"library_book\".\"id\" = '42' LIMIT 21", NULL},
	{"dj_get", DJ_BOOK_COLS "WHERE \"library_book\".\"id\" = -7 LIMIT 1", NULL},
	{"dj_get",
	 "select \"library_book\".\"id\",\"library_book\".\"title\",\"library_book\".\"author_id\","
	 "\"library_book\".\"published\"\n\tfrom \"library_book\"\n\twhere "
	 "\"library_book\".\"id\"=9"
	 "\n\tlimit 21",
	 NULL},
	{"dj_get",
	 "/* hello */ " DJ_BOOK_COLS "WHERE \"library_book\".\"id\" = 1 -- why\n LIMIT 21 "
	 "/*controller='book',route='%%5Ebooks/%%3Cint%%3Apk%%3E/%%24'*/",
	 NULL},
	{"dj_get",
	 DJ_BOOK_COLS "WHERE \"library_book\".\"id\" = 1 /* a /* nested */ comment */ LIMIT 21",
	 NULL},

	/* IN lists collapse, whatever their length or the kind of their constants */
	{"dj_in", DJ_BOOK_COLS "WHERE \"library_book\".\"author_id\" IN (1)",
	 "select \"library_book\".\"id\", \"library_book\".\"title\", "
	 "\"library_book\".\"author_id\", "
	 "\"library_book\".\"published\" from \"library_book\" where "
	 "\"library_book\".\"author_id\" "
	 "in ($1)"},
	{"dj_in", DJ_BOOK_COLS "WHERE \"library_book\".\"author_id\" IN (1, 2, 3)", NULL},
	{"dj_in", DJ_BOOK_COLS "WHERE \"library_book\".\"author_id\" IN ($1, $2, $3)", NULL},
	{"dj_in", DJ_BOOK_COLS "WHERE \"library_book\".\"author_id\" IN ('a', 'b')", NULL},
	{"dj_in",
	 DJ_BOOK_COLS "WHERE \"library_book\".\"author_id\" IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, "
		      "12, 13, 14, 15, 16, 17, 18, 19, 20, -21, 22.5, 1e3, NULL)",
	 NULL},
	{"in_cast", "SELECT a FROM t WHERE b IN ('x'::text, 'y'::text, 'z'::text)",
	 "select a from t where b in ($1::text)"},
	{"in_cast", "SELECT a FROM t WHERE b IN ($1::text)", NULL},
	{"in_two_shapes", "SELECT a FROM t WHERE b IN (1, 'x'::text, 2, 'y'::text)",
	 "select a from t where b in ($1, $2::text)"},
	{"in_two_shapes", "SELECT a FROM t WHERE b IN ($1, $2::text)", NULL},
	{"in_sub", "SELECT a FROM t WHERE b IN (SELECT c FROM u WHERE d = 1)",
	 "select a from t where b in (select c from u where d = $1)"},
	{"in_sub", "select a from t where b in (select c from u where d = 'q')", NULL},
	{"not_in", "SELECT a FROM t WHERE NOT (b IN (1, 2))",
	 "select a from t where not (b in ($1))"},
	{"not_in", "SELECT a FROM t WHERE NOT (b IN (3))", NULL},
	{"in_nested", "SELECT a FROM t WHERE b IN (SELECT c FROM u WHERE d IN (1, 2, 3))", NULL},
	{"in_nested", "SELECT a FROM t WHERE b IN (SELECT c FROM u WHERE d IN ($1))", NULL},
	{"in_tuple", "SELECT a FROM t WHERE (b, c) IN ((1, 'x'), (2, 'y'), (3, 'z'))",
	 "select a from t where (b, c) in (($1, $2))"},
	{"in_tuple", "SELECT a FROM t WHERE (b, c) IN (($1, $2))", NULL},
	{"in_col_first", "SELECT a FROM t WHERE b IN (c, 1, 2)",
	 "select a from t where b in (c, $1)"},
	{"in_col_first", "SELECT a FROM t WHERE b IN (c, 1)", NULL},
	{"in_col_last", "SELECT a FROM t WHERE b IN (1, 2, c)",
	 "select a from t where b in ($1, c)"},
	{"in_col_last", "SELECT a FROM t WHERE b IN (1, c)", NULL},

	/* ARRAY[...] and array literals */
	{"any_array", "SELECT a FROM t WHERE b = ANY(ARRAY[1, 2, 3])",
	 "select a from t where b = any(array[$1])"},
	{"any_array", "SELECT a FROM t WHERE b = ANY(ARRAY[$1, $2])", NULL},
	{"any_array", "SELECT a FROM t WHERE b = any(array[7])", NULL},
	{"any_param", "SELECT a FROM t WHERE b = ANY($1)", "select a from t where b = any($1)"},
	{"any_param", "SELECT a FROM t WHERE b = ANY('{1,2,3}')", NULL},
	{"any_param", "SELECT a FROM t WHERE b = ANY('{4}')", NULL},
	{"array_2d", "SELECT ARRAY[[1, 2], [3, 4]]", "select array[[$1, $2], [$3, $4]]"},
	{"array_2d", "SELECT ARRAY[[5, 6], [7, 8]]", NULL},
	{"array_2d_one", "SELECT ARRAY[[5, 6]]", "select array[[$1, $2]]"},
	{"array_cast", "SELECT '{1,2}'::int[]", "select $1::int[]"},
	{"array_cast", "SELECT '{}'::int[]", NULL},

	/* VALUES rows collapse: bulk_create of any size */
	{"dj_bulk",
	 "INSERT INTO \"library_book\" (\"title\", \"author_id\", \"published\") VALUES "
	 "('Dune', 1, '1965-08-01'::date) RETURNING \"library_book\".\"id\"",
	 "insert into \"library_book\" (\"title\", \"author_id\", \"published\") values ($1, $2, "
	 "$3::date) returning \"library_book\".\"id\""},
	{"dj_bulk",
	 "INSERT INTO \"library_book\" (\"title\", \"author_id\", \"published\") VALUES "
	 "('Dune', 1, '1965-08-01'::date), ('Emma', 2, '1815-12-23'::date), "
	 "('Ulysses', 3, '1922-02-02'::date) RETURNING \"library_book\".\"id\"",
	 NULL},
	{"dj_bulk",
	 "INSERT INTO \"library_book\" (\"title\", \"author_id\", \"published\") VALUES "
	 "($1, $2, $3::date), ($4, $5, $6::date) RETURNING \"library_book\".\"id\"",
	 NULL},
	{"dj_bulk_params",
	 "INSERT INTO \"library_book\" (\"title\", \"author_id\", \"published\") VALUES "
	 "($1, $2, $3), ($4, $5, $6), ($7, $8, $9) RETURNING \"library_book\".\"id\"",
	 "insert into \"library_book\" (\"title\", \"author_id\", \"published\") values ($1, $2, "
	 "$3)"
	 " returning \"library_book\".\"id\""},
	{"dj_bulk_params",
	 "INSERT INTO \"library_book\" (\"title\", \"author_id\", \"published\") VALUES "
	 "('x', 1, NULL) RETURNING \"library_book\".\"id\"",
	 NULL},
	{"insert_default", "INSERT INTO t (id, v) VALUES (DEFAULT, 1), (DEFAULT, 2)",
	 "insert into t(id, v) values (default, $1)"},
	{"insert_default", "INSERT INTO t (id, v) VALUES (DEFAULT, 'z')", NULL},
	{"insert_default_values", "INSERT INTO t DEFAULT VALUES RETURNING id",
	 "insert into t default values returning id"},
	{"insert_mixed_rows", "INSERT INTO t (a, b) VALUES (1, now()), (2, now())",
	 "insert into t(a, b) values ($1, now()), ($2, now())"},
	{"insert_on_conflict",
	 "INSERT INTO t (k, v) VALUES ('a', 1), ('b', 2) ON CONFLICT (k) DO UPDATE SET v = "
	 "EXCLUDED.v",
	 "insert into t(k, v) values ($1, $2) on conflict (k) do update set v = excluded.v"},
	{"insert_on_conflict",
	 "INSERT INTO t (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = excluded.v", NULL},
	{"values_stmt", "VALUES (1, 'one'), (2, 'two'), (3, 'three')", "values ($1, $2)"},
	{"values_stmt", "values ($1, $2)", NULL},
	{"values_from", "SELECT * FROM (VALUES (1), (2), (3)) AS v (n)",
	 "select * from (values ($1)) as v(n)"},
	{"values_from", "SELECT * FROM (VALUES (9)) AS v (n)", NULL},
	{"pgbench_history",
	 "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (3, 1, 2431, -171, "
	 "CURRENT_TIMESTAMP)",
	 "insert into pgbench_history(tid, bid, aid, delta, mtime) values ($1, $2, $3, $4, "
	 "current_timestamp)"},
	{"pgbench_history",
	 "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, "
	 "CURRENT_TIMESTAMP);",
	 NULL},

	/* UPDATE / DELETE */
	{"dj_update",
	 "UPDATE \"library_book\" SET \"title\" = 'New', \"published\" = '2020-01-01'::date WHERE "
	 "\"library_book\".\"id\" = 3",
	 "update \"library_book\" set \"title\" = $1, \"published\" = $2::date where "
	 "\"library_book\".\"id\" = $3"},
	{"dj_update",
	 "UPDATE \"library_book\" SET \"title\" = $1, \"published\" = $2::date WHERE "
	 "\"library_book\".\"id\" = $3",
	 NULL},
	{"pgbench_update",
	 "UPDATE pgbench_accounts SET abalance = abalance + -4521 WHERE aid = 8713;",
	 "update pgbench_accounts set abalance = abalance + $1 where aid = $2"},
	{"pgbench_update", "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2",
	 NULL},
	{"pgbench_update", "update pgbench_accounts set abalance = abalance + 17 where aid = 5",
	 NULL},
	{"pgbench_select", "SELECT abalance FROM pgbench_accounts WHERE aid = 8713",
	 "select abalance from pgbench_accounts where aid = $1"},
	{"pgbench_select", "SELECT abalance FROM pgbench_accounts WHERE aid = $1;", NULL},
	{"minus_col", "SELECT a - 1 FROM t", "select a - $1 from t"},
	{"minus_col", "SELECT a-1 FROM t", NULL},
	{"minus_col", "SELECT a -1 FROM t", NULL},
	{"minus_col", "SELECT a - -1 FROM t", NULL},
	{"dj_delete", "DELETE FROM \"library_book\" WHERE \"library_book\".\"id\" IN (4, 5, 6)",
	 "delete from \"library_book\" where \"library_book\".\"id\" in ($1)"},
	{"dj_delete", "DELETE FROM \"library_book\" WHERE \"library_book\".\"id\" IN ($1)", NULL},
	{"delete_using", "DELETE FROM t USING u WHERE t.id = u.tid AND u.x = 1",
	 "delete from t using u where t.id = u.tid and u.x = $1"},

	/* LIMIT / OFFSET values are constants */
	{"limit_offset", "SELECT a FROM t ORDER BY a LIMIT 10 OFFSET 20",
	 "select a from t order by a limit $1 offset $2"},
	{"limit_offset", "SELECT a FROM t ORDER BY a LIMIT $1 OFFSET $2", NULL},
	{"limit_offset", "SELECT a FROM t ORDER BY a LIMIT ALL OFFSET 0", NULL},
	{"fetch_first", "SELECT a FROM t FETCH FIRST 5 ROWS ONLY",
	 "select a from t fetch first $1 rows only"},
	{"fetch_first", "SELECT a FROM t FETCH FIRST 50 ROWS ONLY", NULL},

	/* every literal kind is the same placeholder */
	{"const", "SELECT 1", "select $1"},
	{"const", "SELECT 1.5", NULL},
	{"const", "SELECT 1e5", NULL},
	{"const", "SELECT 2.5E-3", NULL},
	{"const", "SELECT .5", NULL},
	{"const", "SELECT 5.", NULL},
	{"const", "SELECT -5", NULL},
	{"const", "SELECT - 5", NULL},
	{"const", "SELECT 'text'", NULL},
	{"const", "SELECT 'it''s'", NULL},
	{"const", "SELECT ''", NULL},
	{"const", "SELECT E'line\\nbreak \\' quote'", NULL},
	{"const", "SELECT e'\\\\'", NULL},
	{"const", "SELECT B'1010'", NULL},
	{"const", "SELECT X'1F'", NULL},
	{"const", "SELECT N'national'", NULL},
	{"const", "SELECT U&'d\\0061t\\+000061'", NULL},
	{"const", "SELECT $$dollar ' quoted$$", NULL},
	{"const", "SELECT $tag$ has $$ and ; inside $tag$", NULL},
	{"const", "SELECT 'con'\n'tinued'", NULL},
	{"const", "SELECT $1", NULL},
	{"const", "SELECT $12", NULL},
	{"const", "SELECT TRUE", NULL},
	{"const", "SELECT false", NULL},
	{"const", "SELECT NULL", NULL},
	{"const", "select 1;", NULL},
	{"const", "  select   1  ;  ", NULL},
	{"const_two", "SELECT 1, 2", "select $1, $2"},
	{"const_two", "SELECT 'a', $1", NULL},
	{"const", "SELECT 0x1F", NULL},
	{"const", "SELECT 1_000_000", NULL},
	{"const", "SELECT 0o17", NULL},
	{"const", "SELECT 0b101", NULL},

	/* typed literals and casts keep their type */
	{"typed_interval", "SELECT now() - interval '1 day'", "select now() - interval $1"},
	{"typed_interval", "SELECT now() - INTERVAL '2 hours'", NULL},
	{"cast_interval", "SELECT now() - '1 day'::interval", "select now() - $1::interval"},
	{"cast_interval", "SELECT now() - $1::interval", NULL},
	{"typed_date", "SELECT date '2020-01-01'", "select date $1"},
	{"cast_fn", "SELECT CAST('1' AS integer)", "select cast($1 as integer)"},
	{"cast_fn", "SELECT cast(42 as integer)", NULL},
	{"cast_tz", "SELECT a FROM t WHERE d > '2024-01-01T00:00:00+00:00'::timestamptz",
	 "select a from t where d > $1::timestamptz"},
	{"cast_tz", "SELECT a FROM t WHERE d > $1::timestamptz", NULL},
	{"cast_col", "SELECT a::text FROM t", "select a::text from t"},
	{"cast_col", "SELECT a :: TEXT FROM t", NULL},
	{"cast_varchar", "SELECT a::varchar(10) FROM t", "select a::varchar($1) from t"},
	{"cast_varchar", "SELECT a::varchar(255) FROM t", NULL},

	/* identifiers: unquoted ones fold, quoted ones keep their case */
	{"ident_fold", "SELECT Title FROM Book WHERE Id = 1",
	 "select title from book where id = $1"},
	{"ident_fold", "select TITLE from BOOK where ID = 2", NULL},
	{"ident_quoted_upper", "SELECT \"Title\" FROM \"Book\" WHERE \"Id\" = 1",
	 "select \"Title\" from \"Book\" where \"Id\" = $1"},
	{"ident_quoted_lower", "SELECT \"title\" FROM \"book\" WHERE \"id\" = 1",
	 "select \"title\" from \"book\" where \"id\" = $1"},
	{"ident_escaped", "SELECT \"we\"\"ird\" FROM t", "select \"we\"\"ird\" from t"},
	{"ident_unicode", "SELECT U&\"d\\0061t\" FROM t", "select u&\"d\\0061t\" from t"},
	{"ident_dollar", "SELECT a$b FROM t", "select a$b from t"},
	{"ident_utf8", "SELECT \xc3\xa9t\xc3\xa9 FROM \xc3\xa9t\xc3\xa9s",
	 "select \xc3\xa9t\xc3\xa9 from \xc3\xa9t\xc3\xa9s"},
	{"ident_schema", "SELECT s.t.a FROM s.t", "select s.t.a from s.t"},
	{"ident_star", "SELECT t.* FROM t", "select t.* from t"},
	{"alias_x", "SELECT 1 AS \"x\"", "select $1 as \"x\""},
	{"alias_y", "SELECT 1 AS \"y\"", "select $1 as \"y\""},
	{"table_alias_t1", "SELECT t1.a FROM t t1", "select t1.a from t t1"},
	{"table_alias_t2", "SELECT t2.a FROM t t2", "select t2.a from t t2"},
	{"select_ab", "SELECT a, b FROM t", "select a, b from t"},
	{"select_ba", "SELECT b, a FROM t", "select b, a from t"},
	{"select_aa", "SELECT a, a FROM t", "select a, a from t"},
	{"select_a", "SELECT a FROM t", "select a from t"},

	/* operators */
	{"op_ne", "SELECT a FROM t WHERE b <> 1", "select a from t where b <> $1"},
	{"op_ne", "SELECT a FROM t WHERE b != 2", NULL},
	{"op_ge", "SELECT a FROM t WHERE b >= 1 AND c <= 2",
	 "select a from t where b >= $1 and c <= $2"},
	{"op_ge", "SELECT a FROM t WHERE b>=1 AND c<=-2", NULL},
	{"op_json", "SELECT data->>'name', data #> '{a,b}' FROM t WHERE data ? 'k' AND data @> $1",
	 "select data ->> $1, data #> $2 from t where data ? $3 and data @> $4"},
	{"op_json", "SELECT data->>$1, data#>$2 FROM t WHERE data?$3 AND data@>'{}'", NULL},
	{"op_concat", "SELECT a || 'x' FROM t", "select a || $1 from t"},
	{"op_regex", "SELECT a FROM t WHERE b ~* '^x' AND c !~ 'y'",
	 "select a from t where b ~* $1 and c !~ $2"},
	{"op_like", "SELECT a FROM t WHERE b LIKE 'abc%' ESCAPE '\\'",
	 "select a from t where b like $1 escape $2"},
	{"op_ilike", "SELECT a FROM t WHERE UPPER(b::text) ILIKE UPPER('%x%')",
	 "select a from t where upper(b::text) ilike upper($1)"},
	{"op_between", "SELECT a FROM t WHERE b BETWEEN 1 AND 10",
	 "select a from t where b between $1 and $2"},
	{"op_named_arg", "SELECT f(x := 1, y => 2)", "select f(x := $1, y => $2)"},

	/* NULL and booleans: constants, except in IS [NOT] predicates */
	{"is_null", "SELECT a FROM t WHERE b IS NULL", "select a from t where b is null"},
	{"is_null", "select a from t where b is null", NULL},
	{"is_not_null", "SELECT a FROM t WHERE b IS NOT NULL",
	 "select a from t where b is not null"},
	{"eq_null", "SELECT a FROM t WHERE b = NULL", "select a from t where b = $1"},
	{"eq_null", "SELECT a FROM t WHERE b = 5", NULL},
	{"eq_null", "SELECT a FROM t WHERE b = true", NULL},
	{"is_true", "SELECT a FROM t WHERE b IS TRUE", "select a from t where b is true"},
	{"is_not_false", "SELECT a FROM t WHERE b IS NOT FALSE",
	 "select a from t where b is not false"},

	/* Django joins, aggregates, ordering */
	{"dj_join",
	 "SELECT \"library_book\".\"id\", \"library_author\".\"name\" FROM \"library_book\" INNER "
	 "JOIN \"library_author\" ON (\"library_book\".\"author_id\" = \"library_author\".\"id\") "
	 "WHERE (\"library_author\".\"name\" LIKE 'A%' AND \"library_book\".\"published\" >= "
	 "'2000-01-01'::date) ORDER BY \"library_book\".\"published\" DESC",
	 "select \"library_book\".\"id\", \"library_author\".\"name\" from \"library_book\" inner "
	 "join "
	 "\"library_author\" on (\"library_book\".\"author_id\" = \"library_author\".\"id\") where "
	 "(\"library_author\".\"name\" like $1 and \"library_book\".\"published\" >= $2::date) "
	 "order "
	 "by \"library_book\".\"published\" desc"},
	{"dj_join_asc",
	 "SELECT \"library_book\".\"id\", \"library_author\".\"name\" FROM \"library_book\" INNER "
	 "JOIN \"library_author\" ON (\"library_book\".\"author_id\" = \"library_author\".\"id\") "
	 "WHERE (\"library_author\".\"name\" LIKE 'A%' AND \"library_book\".\"published\" >= "
	 "'2000-01-01'::date) ORDER BY \"library_book\".\"published\" ASC",
	 NULL},
	{"dj_left_join",
	 "SELECT \"a\".\"id\" FROM \"a\" LEFT OUTER JOIN \"b\" ON (\"a\".\"id\" = \"b\".\"a_id\") "
	 "WHERE \"b\".\"id\" IS NULL",
	 "select \"a\".\"id\" from \"a\" left outer join \"b\" on (\"a\".\"id\" = \"b\".\"a_id\") "
	 "where \"b\".\"id\" is null"},
	{"dj_count",
	 "SELECT COUNT(*) AS \"__count\" FROM \"library_book\" WHERE "
	 "\"library_book\".\"author_id\" = 3",
	 "select count(*) as \"__count\" from \"library_book\" where "
	 "\"library_book\".\"author_id\" = $1"},
	{"dj_count",
	 "SELECT COUNT(*) AS \"__count\" FROM \"library_book\" WHERE "
	 "\"library_book\".\"author_id\" = $1",
	 NULL},
	{"dj_exists",
	 "SELECT 1 AS \"a\" FROM \"library_book\" WHERE \"library_book\".\"title\" = 'Dune' LIMIT "
	 "1",
	 "select $1 as \"a\" from \"library_book\" where \"library_book\".\"title\" = $2 limit $3"},
	{"group_having", "SELECT a, count(*) FROM t GROUP BY a HAVING count(*) > 1 ORDER BY 2 DESC",
	 "select a, count(*) from t group by a having count(*) > $1 order by $2 desc"},
	{"group_having", "SELECT a, count(*) FROM t GROUP BY a HAVING count(*) > 5 ORDER BY 1 DESC",
	 NULL},
	{"window", "SELECT row_number() OVER (PARTITION BY a ORDER BY b) FROM t",
	 "select row_number() over (partition by a order by b) from t"},
	{"exists_sub", "SELECT a FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.id = t.id)",
	 "select a from t where exists (select $1 from u where u.id = t.id)"},
	{"case_when",
	 "SELECT CASE WHEN a = 1 THEN 'one' WHEN a = 2 THEN 'two' ELSE 'many' END FROM t",
	 "select case when a = $1 then $2 when a = $3 then $4 else $5 end from t"},
	{"for_update", "SELECT a FROM t WHERE id = 1 FOR UPDATE",
	 "select a from t where id = $1 for update"},
	{"for_update_skip", "SELECT a FROM t WHERE id = 1 FOR UPDATE SKIP LOCKED",
	 "select a from t where id = $1 for update skip locked"},
	{"generate_series", "SELECT * FROM generate_series(1, 10)",
	 "select * from generate_series($1, $2)"},
	{"generate_series", "SELECT * FROM generate_series(1, 1000)", NULL},
	{"slice", "SELECT a[1:2], b[3] FROM t", "select a[$1:$2], b[$3] from t"},
	{"table_stmt", "TABLE t", "table t"},
	{"union", "SELECT a FROM t UNION ALL SELECT a FROM u",
	 "select a from t union all select a from u"},
	{"paren_select", "(SELECT 1) UNION (SELECT 2)", "(select $1) union (select $2)"},
	{"with_select", "WITH x AS (SELECT 1 AS n) SELECT n FROM x",
	 "with x as (select $1 as n) select n from x"},
	{"with_insert", "WITH x AS (SELECT 1 AS n) INSERT INTO t SELECT n FROM x",
	 "with x as (select $1 as n) insert into t select n from x"},
	{"with_recursive",
	 "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT n "
	 "FROM r",
	 "with recursive r(n) as (select $1 union all select n + $2 from r where n < $3) select n "
	 "from "
	 "r"},
	{"merge",
	 "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT "
	 "MATCHED "
	 "THEN INSERT (id, v) VALUES (s.id, s.v)",
	 "merge into t using s on t.id = s.id when matched then update set v = s.v when not "
	 "matched "
	 "then insert (id, v) values (s.id, s.v)"},
	{"psycopg_types", "SELECT t.oid, typarray FROM pg_type t WHERE t.typname = 'hstore'",
	 "select t.oid, typarray from pg_type t where t.typname = $1"},
	{"psycopg_types", "SELECT t.oid, typarray FROM pg_type t WHERE t.typname = $1", NULL},
	{"dj_session",
	 "SELECT \"django_session\".\"session_key\", \"django_session\".\"session_data\", "
	 "\"django_session\".\"expire_date\" FROM \"django_session\" WHERE "
	 "(\"django_session\".\"expire_date\" > '2024-05-01T10:00:00.123456+00:00'::timestamptz "
	 "AND "
	 "\"django_session\".\"session_key\" = 'abcdef0123456789') LIMIT 21",
	 NULL},
	{"dj_session",
	 "SELECT \"django_session\".\"session_key\", \"django_session\".\"session_data\", "
	 "\"django_session\".\"expire_date\" FROM \"django_session\" WHERE "
	 "(\"django_session\".\"expire_date\" > $1::timestamptz AND "
	 "\"django_session\".\"session_key\" = $2) LIMIT 21",
	 NULL},

	/* transaction control: savepoint names do not matter */
	{"begin", "BEGIN", "begin"},
	{"begin", "begin;", NULL},
	{"begin_iso", "BEGIN ISOLATION LEVEL SERIALIZABLE", "begin isolation level serializable"},
	{"start_txn", "START TRANSACTION", "start transaction"},
	{"commit", "COMMIT", "commit"},
	{"commit", "commit", NULL},
	{"end", "END", "end"},
	{"rollback", "ROLLBACK", "rollback"},
	{"abort", "ABORT", "abort"},
	{"savepoint", "SAVEPOINT \"s140234_x1\"", "savepoint"},
	{"savepoint", "SAVEPOINT \"s140234_x2\"", NULL},
	{"savepoint", "savepoint sp", NULL},
	{"release", "RELEASE SAVEPOINT \"s140234_x1\"", "release savepoint"},
	{"release", "RELEASE sp", NULL},
	{"rollback_to", "ROLLBACK TO SAVEPOINT \"s140234_x1\"", "rollback to savepoint"},
	{"rollback_to", "ROLLBACK TO sp", NULL},
	{"rollback_to", "ROLLBACK WORK TO SAVEPOINT sp", NULL},
	{"prepare_txn", "PREPARE TRANSACTION 'gid-1'", "prepare transaction $1"},
	{"prepare_txn", "PREPARE TRANSACTION 'gid-2'", NULL},
	{"commit_prepared", "COMMIT PREPARED 'gid-1'", "commit prepared $1"},

	/* session and utility statements */
	{"set_timeout", "SET statement_timeout = 5000", "set statement_timeout = $1"},
	{"set_timeout", "SET statement_timeout TO 100", NULL},
	{"set_timeout", "set STATEMENT_TIMEOUT = '1s'", NULL},
	{"set_search_path", "SET search_path TO 'app', public", "set search_path = $1, public"},
	{"set_tz", "SET TIME ZONE 'UTC'", "set time zone $1"},
	{"set_local", "SET LOCAL lock_timeout = '2s'", "set local lock_timeout = $1"},
	{"show", "SHOW server_version", "show server_version"},
	{"reset_all", "RESET ALL", "reset all"},
	{"discard_all", "DISCARD ALL", "discard all"},
	{"listen", "LISTEN jobs", "listen jobs"},
	{"notify", "NOTIFY jobs, 'payload 1'", "notify jobs, $1"},
	{"notify", "NOTIFY jobs, 'payload 2'", NULL},
	{"declare",
	 "DECLARE \"_django_curs_140_sync_1\" NO SCROLL CURSOR WITH HOLD FOR SELECT a FROM t WHERE "
	 "b = 1",
	 "declare _ no scroll cursor with hold for select a from t where b = $1"},
	{"declare",
	 "DECLARE \"_django_curs_140_sync_2\" NO SCROLL CURSOR WITH HOLD FOR SELECT a FROM t WHERE "
	 "b = 2",
	 NULL},
	{"fetch", "FETCH FORWARD 2000 FROM \"_django_curs_140_sync_1\"",
	 "fetch forward 2000 from _"},
	{"fetch", "fetch forward 2000 from c2", NULL},
	{"fetch_100", "FETCH FORWARD 100 FROM c2", "fetch forward 100 from _"},
	{"move_back", "MOVE BACKWARD -1 IN c2", "move backward -1 in _"},
	{"close", "CLOSE \"_django_curs_140_sync_1\"", "close _"},
	{"close", "CLOSE c2", NULL},
	{"copy_from", "COPY t (a, b) FROM STDIN WITH (FORMAT csv)",
	 "copy t(a, b) from stdin with (format csv)"},
	{"copy_to", "COPY (SELECT * FROM t WHERE a > 1) TO STDOUT",
	 "copy (select * from t where a > $1) to stdout"},
	{"prepare_p", "PREPARE p (int) AS SELECT a FROM t WHERE b = $1",
	 "prepare p(int) as select a from t where b = $1"},
	{"execute_p", "EXECUTE p(1)", "execute p($1)"},
	{"execute_p", "EXECUTE p(2)", NULL},
	{"execute_q", "EXECUTE q(1)", "execute q($1)"},
	{"deallocate", "DEALLOCATE p", "deallocate p"},
	{"explain", "EXPLAIN ANALYZE SELECT a FROM t WHERE b = 1",
	 "explain analyze select a from t where b = $1"},

	/* DDL */
	{"create_table",
	 "CREATE TABLE t (id bigserial PRIMARY KEY, name varchar(100) NOT NULL DEFAULT '', n "
	 "numeric(10, 2))",
	 "create table t(id bigserial primary key, name varchar($1) not null default $2, n "
	 "numeric($3, $4))"},
	{"alter_table", "ALTER TABLE t ADD COLUMN x integer NULL",
	 "alter table t add column x integer $1"},
	{"create_index", "CREATE INDEX CONCURRENTLY t_a_idx ON t USING btree (a) WHERE b > 0",
	 "create index concurrently t_a_idx on t using btree(a) where b > $1"},
	{"drop_table", "DROP TABLE IF EXISTS t CASCADE", "drop table if exists t cascade"},
	{"create_function",
	 "CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql AS $$ SELECT x + 1; $$",
	 "create function f(x int) returns int language sql as $1"},
	{"create_function",
	 "CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql AS $body$ SELECT x + 2 $body$", NULL},
	{"create_atomic",
	 "CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN "
	 "true THEN 2 END; END",
	 "create function g() returns int language sql begin atomic select $1; select case when $2 "
	 "then $3 end; end"},
	{"create_rule", "CREATE RULE r AS ON INSERT TO t DO ALSO (NOTIFY t; NOTIFY u)",
	 "create rule r as on insert to t do also (notify t; notify u)"},
	{"comment_on", "COMMENT ON TABLE t IS 'x -- not a comment; /* nor this */'",
	 "comment on table t is $1"},
	{"comment_on", "COMMENT ON TABLE t IS 'other text'", NULL},
	{"create_user", "CREATE USER bob PASSWORD 'secret1'", "create user bob password $1"},
	{"create_user", "CREATE USER bob PASSWORD 'hunter2'", NULL},
	{"copy_file", "COPY t FROM '/tmp/a.csv'", "copy t from $1"},
	{"copy_file", "COPY t FROM '/tmp/b.csv'", NULL},
};

#define FP_CORPUS_LEN (sizeof(fp_corpus) / sizeof(fp_corpus[0]))

#endif
