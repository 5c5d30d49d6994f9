-- django_like.sql: a pgbench script shaped like a Django view with an N+1 inside
-- ATOMIC_REQUESTS: one list query, then one lookup by primary key per listed row (20), in a
-- transaction. The SQL is spelled the way Django's ORM writes it (quoted names, LIMIT 21 on
-- .get()); run it with -M simple, since psycopg 3 binds values on the client side for Django,
-- and with -s <scale> so :scale matches the pgbench_accounts table.
\set first random(1, 100000 * :scale - 20)
\set a1 random(1, 100000 * :scale)
\set a2 random(1, 100000 * :scale)
\set a3 random(1, 100000 * :scale)
\set a4 random(1, 100000 * :scale)
\set a5 random(1, 100000 * :scale)
\set a6 random(1, 100000 * :scale)
\set a7 random(1, 100000 * :scale)
\set a8 random(1, 100000 * :scale)
\set a9 random(1, 100000 * :scale)
\set a10 random(1, 100000 * :scale)
\set a11 random(1, 100000 * :scale)
\set a12 random(1, 100000 * :scale)
\set a13 random(1, 100000 * :scale)
\set a14 random(1, 100000 * :scale)
\set a15 random(1, 100000 * :scale)
\set a16 random(1, 100000 * :scale)
\set a17 random(1, 100000 * :scale)
\set a18 random(1, 100000 * :scale)
\set a19 random(1, 100000 * :scale)
\set a20 random(1, 100000 * :scale)
BEGIN;
SELECT "pgbench_accounts"."aid", "pgbench_accounts"."bid", "pgbench_accounts"."abalance" FROM "pgbench_accounts" WHERE "pgbench_accounts"."aid" >= :first ORDER BY "pgbench_accounts"."aid" ASC LIMIT 20;
SELECT "pgbench_accounts"."aid", "pgbench_accounts"."bid", "pgbench_accounts"."abalance", "pgbench_accounts"."filler" FROM "pgbench_accounts" WHERE "pgbench_accounts"."aid" = :a1 LIMIT 21;
SELECT "pgbench_accounts"."aid", "pgbench_accounts"."bid", "pgbench_accounts"."abalance", "pgbench_accounts"."filler" FROM "pgbench_accounts" WHERE "pgbench_accounts"."aid" = :a2 LIMIT 21;
SELECT "pgbench_accounts"."aid", "pgbench_accounts"."bid", "pgbench_accounts"."abalance", "pgbench_accounts"."filler" FROM "pgbench_accounts" WHERE "pgbench_accounts"."aid" = :a3 LIMIT 21;
SELECT "pgbench_accounts"."aid", "pgbench_accounts"."bid", "pgbench_accounts"."abalance", "pgbench_accounts"."filler" FROM "pgbench_accounts" WHERE "pgbench_accounts"."aid" = :a4 LIMIT 21;
SELECT "pgbench_accounts"."aid", "pgbench_accounts"."bid", "pgbench_accounts"."abalance", "pgbench_accounts"."filler" FROM "pgbench_accounts" WHERE "pgbench_accounts"."aid" = :a5 LIMIT 21;
SELECT "pgbench_accounts"."aid", "pgbench_accounts"."bid", "pgbench_accounts"."abalance", "pgbench_accounts"."filler" FROM "pgbench_accounts" WHERE "pgbench_accounts"."aid" = :a6 LIMIT 21;
SELECT "pgbench_accounts"."aid", "pgbench_accounts"."bid", "pgbench_accounts"."abalance", "pgbench_accounts"."filler" FROM "pgbench_accounts" WHERE "pgbench_accounts"."aid" = :a7 LIMIT 21;
SELECT "pgbench_accounts"."aid", "pgbench_accounts"."bid", "pgbench_accounts"."abalance", "pgbench_accounts"."filler" FROM "pgbench_accounts" WHERE "pgbench_accounts"."aid" = :a8 LIMIT 21;
SELECT "pgbench_accounts"."aid", "pgbench_accounts"."bid", "pgbench_accounts"."abalance", "pgbench_accounts"."filler" FROM "pgbench_accounts" WHERE "pgbench_accounts"."aid" = :a9 LIMIT 21;
SELECT "pgbench_accounts"."aid", "pgbench_accounts"."bid", "pgbench_accounts"."abalance", "pgbench_accounts"."filler" FROM "pgbench_accounts" WHERE "pgbench_accounts"."aid" = :a10 LIMIT 21;
SELECT "pgbench_accounts"."aid", "pgbench_accounts"."bid", "pgbench_accounts"."abalance", "pgbench_accounts"."filler" FROM "pgbench_accounts" WHERE "pgbench_accounts"."aid" = :a11 LIMIT 21;
SELECT "pgbench_accounts"."aid", "pgbench_accounts"."bid", "pgbench_accounts"."abalance", "pgbench_accounts"."filler" FROM "pgbench_accounts" WHERE "pgbench_accounts"."aid" = :a12 LIMIT 21;
SELECT "pgbench_accounts"."aid", "pgbench_accounts"."bid", "pgbench_accounts"."abalance", "pgbench_accounts"."filler" FROM "pgbench_accounts" WHERE "pgbench_accounts"."aid" = :a13 LIMIT 21;
SELECT "pgbench_accounts"."aid", "pgbench_accounts"."bid", "pgbench_accounts"."abalance", "pgbench_accounts"."filler" FROM "pgbench_accounts" WHERE "pgbench_accounts"."aid" = :a14 LIMIT 21;
SELECT "pgbench_accounts"."aid", "pgbench_accounts"."bid", "pgbench_accounts"."abalance", "pgbench_accounts"."filler" FROM "pgbench_accounts" WHERE "pgbench_accounts"."aid" = :a15 LIMIT 21;
SELECT "pgbench_accounts"."aid", "pgbench_accounts"."bid", "pgbench_accounts"."abalance", "pgbench_accounts"."filler" FROM "pgbench_accounts" WHERE "pgbench_accounts"."aid" = :a16 LIMIT 21;
SELECT "pgbench_accounts"."aid", "pgbench_accounts"."bid", "pgbench_accounts"."abalance", "pgbench_accounts"."filler" FROM "pgbench_accounts" WHERE "pgbench_accounts"."aid" = :a17 LIMIT 21;
SELECT "pgbench_accounts"."aid", "pgbench_accounts"."bid", "pgbench_accounts"."abalance", "pgbench_accounts"."filler" FROM "pgbench_accounts" WHERE "pgbench_accounts"."aid" = :a18 LIMIT 21;
SELECT "pgbench_accounts"."aid", "pgbench_accounts"."bid", "pgbench_accounts"."abalance", "pgbench_accounts"."filler" FROM "pgbench_accounts" WHERE "pgbench_accounts"."aid" = :a19 LIMIT 21;
SELECT "pgbench_accounts"."aid", "pgbench_accounts"."bid", "pgbench_accounts"."abalance", "pgbench_accounts"."filler" FROM "pgbench_accounts" WHERE "pgbench_accounts"."aid" = :a20 LIMIT 21;
COMMIT;
