/* test_nplus1: unit tests of src/nplus1.c: unit-of-work boundaries, the rule, the table. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "nplus1.h"

#define T0 ((usec_t)1700000000000000LL) /* wall clock, usec since the epoch */
#define MS ((usec_t)1000)

#define FP_LIST 0x1111000000000001ULL
#define FP_ITEM 0x2222000000000002ULL
#define FP_OTHER 0x3333000000000003ULL

struct fx {
	struct nplus1_unit *u;
	struct nplus1_table *t;
	struct nplus1_settings s;
	struct nplus1_ctx ctx;
	usec_t now;
	int signals;     /* nplus1_before() returned true */
	int last_signal; /* 1-based number of the run() that got the last signal */
	int runs;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->u = nplus1_unit_new();
	f->t = nplus1_table_new();
	if (!f->u || !f->t)
		return -1;
	f->s = (struct nplus1_settings){
		.threshold = 5,
		.min_time = 0,
		.idle_gap = 500 * MS,
		.max_statements = 10000,
		.log_interval = 60 * 1000 * MS,
		.max_findings = 1000,
		.track_query_len = 1024,
	};
	f->ctx = (struct nplus1_ctx){"app", "appuser", "django"};
	f->now = T0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	nplus1_unit_free(f->u);
	nplus1_table_free(f->t);
	free(f);
	return 0;
}

static struct nplus1_stmt stmt(uint64_t fp, uint64_t params, enum fp_kind kind,
			       const struct fp_tags *tags)
{
	static const char *const texts[] = {"SELECT * FROM book",
					    "SELECT * FROM author WHERE id = $1",
					    "SELECT * FROM publisher WHERE id = $1", "other"};
	const char *q = fp == FP_LIST    ? texts[0]
			: fp == FP_ITEM  ? texts[1]
			: fp == FP_OTHER ? texts[2]
					 : texts[3];

	return (struct nplus1_stmt){fp, params, kind, q, tags};
}

/* One statement, before and done, 1 ms apart; returns what nplus1_before() said. */
static bool run_full(struct fx *f, const struct nplus1_stmt *st, uint64_t rows, usec_t dur,
		     bool failed, bool in_txn)
{
	bool sig = nplus1_before(f->u, f->t, &f->s, &f->ctx, st, in_txn, f->now);

	f->runs++;
	if (sig) {
		f->signals++;
		f->last_signal = f->runs;
	}
	f->now += dur;
	nplus1_done(f->u, f->t, &f->s, &f->ctx, st, rows, dur, failed, f->now);
	f->now += MS;
	return sig;
}

static bool run(struct fx *f, uint64_t fp, uint64_t params, enum fp_kind kind, uint64_t rows)
{
	struct nplus1_stmt st = stmt(fp, params, kind, NULL);

	return run_full(f, &st, rows, 100, false, false);
}

/* Like run(), then the client goes idle outside a transaction (autocommit, ReadyForQuery 'I'). */
static bool run_idle(struct fx *f, const struct nplus1_stmt *st, uint64_t rows)
{
	bool sig = run_full(f, st, rows, 100, false, false);

	nplus1_idle(f->u, f->now);
	return sig;
}

static void loop(struct fx *f, uint64_t fp, int n, bool distinct_params, enum fp_kind kind)
{
	for (int i = 0; i < n; i++)
		run(f, fp, distinct_params ? (uint64_t)i + 1 : 7, kind, 1);
}

static void end_unit(struct fx *f)
{
	nplus1_unit_end(f->u, f->t, &f->s, &f->ctx, f->now);
}

struct rows {
	int n;
	struct nplus1_finding f[16];
	char query[16][128], source_query[16][128], route[16][128];
};

static bool collect(const struct nplus1_finding *fd, void *arg)
{
	struct rows *r = arg;

	if (r->n < 16) {
		r->f[r->n] = *fd;
		snprintf(r->query[r->n], 128, "%s", fd->query);
		snprintf(r->source_query[r->n], 128, "%s", fd->source_query);
		snprintf(r->route[r->n], 128, "%s", fd->route);
	}
	r->n++;
	return true;
}

static struct rows findings(struct fx *f)
{
	struct rows r;

	memset(&r, 0, sizeof(r));
	nplus1_table_foreach(f->t, collect, &r);
	assert_int_equal((size_t)r.n, nplus1_table_count(f->t));
	return r;
}

static const struct nplus1_finding *find_fp(struct rows *r, uint64_t fp, int *idx)
{
	for (int i = 0; i < r->n && i < 16; i++)
		if (r->f[i].fp == fp) {
			if (idx)
				*idx = i;
			return &r->f[i];
		}
	return NULL;
}

/* ---------------------------------------------------------------- the rule */

static void test_one_plus_n_selects(void **state)
{
	struct fx *f = *state;
	struct rows r;
	const struct nplus1_finding *x;
	int i;

	run(f, FP_LIST, 0, FP_KIND_SELECT, 12);
	loop(f, FP_ITEM, 12, true, FP_KIND_SELECT);
	assert_int_equal(f->signals, 1);
	assert_int_equal(f->last_signal, 1 + 5);

	r = findings(f);
	assert_int_equal(r.n, 1);
	x = find_fp(&r, FP_ITEM, &i);
	assert_non_null(x);
	assert_int_equal(x->kind, NPLUS1_KIND_NPLUS1);
	assert_string_equal(nplus1_kind_name(x->kind), "n+1");
	assert_true(x->source_fp == FP_LIST);
	assert_int_equal(x->source_rows, 12);
	assert_int_equal(x->bursts, 1);
	assert_int_equal(x->last_calls, 12);
	assert_int_equal(x->max_calls, 12);
	assert_int_equal(x->total_calls, 12);
	assert_int_equal(x->total_time, 12 * 100);
	assert_string_equal(x->database, "app");
	assert_string_equal(x->user, "appuser");
	assert_string_equal(x->application_name, "django");
	assert_string_equal(r.route[i], "");
	assert_string_equal(r.query[i], "SELECT * FROM author WHERE id = $1");
	assert_string_equal(r.source_query[i], "SELECT * FROM book");
	assert_true(x->first_seen >= T0 && x->first_seen <= x->last_seen && x->last_seen <= f->now);

	/* ending the unit settles nothing new: the row already follows the burst */
	end_unit(f);
	r = findings(f);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.f[0].bursts, 1);
	assert_int_equal(r.f[0].last_calls, 12);
}

static void test_two_loops_share_the_source(void **state)
{
	struct fx *f = *state;
	struct rows r;

	/* for book in books: book.author; book.publisher */
	run(f, FP_LIST, 0, FP_KIND_SELECT, 6);
	for (int i = 0; i < 6; i++) {
		run(f, FP_ITEM, (uint64_t)i, FP_KIND_SELECT, 1);
		run(f, FP_OTHER, (uint64_t)i, FP_KIND_SELECT, 1);
	}
	r = findings(f);
	assert_int_equal(r.n, 2);
	assert_true(find_fp(&r, FP_ITEM, NULL)->source_fp == FP_LIST);
	assert_int_equal(find_fp(&r, FP_ITEM, NULL)->source_rows, 6);
	assert_true(find_fp(&r, FP_OTHER, NULL)->source_fp == FP_ITEM);
	assert_int_equal(f->signals, 2);
}

static void test_no_source(void **state)
{
	struct fx *f = *state;
	struct rows r;

	loop(f, FP_ITEM, 5, true, FP_KIND_SELECT);
	r = findings(f);
	assert_int_equal(r.n, 1);
	assert_true(r.f[0].source_fp == 0);
	assert_int_equal(r.f[0].source_rows, 0);
	assert_string_equal(r.source_query[0], "");
}

static void test_duplicate(void **state)
{
	struct fx *f = *state;
	struct nplus1_signal sig;
	struct rows r;

	run(f, FP_LIST, 0, FP_KIND_SELECT, 3);
	loop(f, FP_ITEM, 5, false, FP_KIND_SELECT);
	r = findings(f);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.f[0].kind, NPLUS1_KIND_DUPLICATE);
	assert_string_equal(nplus1_kind_name(r.f[0].kind), "duplicate");
	assert_true(nplus1_unit_signal(f->u, &sig));
	assert_int_equal(sig.kind, NPLUS1_KIND_DUPLICATE);

	/* a duplicate INSERT is a duplicate too: the cache question comes first */
	end_unit(f);
	loop(f, FP_OTHER, 5, false, FP_KIND_INSERT);
	r = findings(f);
	assert_int_equal(r.n, 2);
	assert_int_equal(find_fp(&r, FP_OTHER, NULL)->kind, NPLUS1_KIND_DUPLICATE);
}

static void test_one_different_param_is_not_duplicate(void **state)
{
	struct fx *f = *state;
	struct rows r;

	for (int i = 0; i < 5; i++)
		run(f, FP_ITEM, i == 2 ? 9 : 7, FP_KIND_SELECT, 1);
	r = findings(f);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.f[0].kind, NPLUS1_KIND_NPLUS1);
}

static void test_write_loops(void **state)
{
	struct fx *f = *state;
	static const enum fp_kind kinds[] = {FP_KIND_INSERT, FP_KIND_UPDATE, FP_KIND_DELETE,
					     FP_KIND_MERGE};
	struct rows r;

	for (int k = 0; k < 4; k++) {
		loop(f, FP_ITEM + (uint64_t)k, 6, true, kinds[k]);
		end_unit(f);
	}
	r = findings(f);
	assert_int_equal(r.n, 4);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(r.f[i].kind, NPLUS1_KIND_WRITE_LOOP);
		assert_int_equal(r.f[i].last_calls, 6);
	}
	assert_string_equal(nplus1_kind_name(NPLUS1_KIND_WRITE_LOOP), "write-loop");

	/* OTHER (DDL, CALL...) counts as a read */
	loop(f, FP_OTHER + 100, 5, true, FP_KIND_OTHER);
	r = findings(f);
	assert_int_equal(find_fp(&r, FP_OTHER + 100, NULL)->kind, NPLUS1_KIND_NPLUS1);
}

static void test_below_threshold(void **state)
{
	struct fx *f = *state;

	run(f, FP_LIST, 0, FP_KIND_SELECT, 4);
	loop(f, FP_ITEM, 4, true, FP_KIND_SELECT);
	end_unit(f);
	assert_int_equal(f->signals, 0);
	assert_int_equal(nplus1_table_count(f->t), 0);
	assert_int_equal(nplus1_table_logged(f->t), 0);
}

static void test_exactly_threshold(void **state)
{
	struct fx *f = *state;
	struct nplus1_signal sig;
	struct rows r;
	char msg[256];

	run(f, FP_LIST, 0, FP_KIND_SELECT, 5);
	for (int i = 1; i <= 4; i++) {
		assert_false(run(f, FP_ITEM, (uint64_t)i, FP_KIND_SELECT, 1));
		assert_int_equal(nplus1_table_count(f->t), 0);
	}
	assert_false(nplus1_unit_signal(f->u, &sig));
	assert_true(run(f, FP_ITEM, 5, FP_KIND_SELECT, 1));
	assert_int_equal(nplus1_table_count(f->t), 1);
	assert_true(nplus1_unit_signal(f->u, &sig));
	assert_int_equal(sig.kind, NPLUS1_KIND_NPLUS1);
	assert_true(sig.fp == FP_ITEM);
	assert_int_equal(sig.calls, 5);
	assert_true(sig.source_fp == FP_LIST);
	assert_int_equal(sig.source_rows, 5);

	nplus1_signal_message(&sig, msg, sizeof(msg));
	assert_non_null(strstr(msg, "2222000000000002"));
	assert_non_null(strstr(msg, "1111000000000001"));
	assert_non_null(strstr(msg, "5 times"));
	assert_non_null(strstr(msg, "N+1"));
	nplus1_signal_message(&sig, msg, 10); /* cut, still terminated */
	assert_int_equal(strlen(msg), 9);
	assert_non_null(strstr(nplus1_kind_hint(NPLUS1_KIND_NPLUS1), "select_related"));

	/* no second signal in the same unit, however far it goes */
	for (int i = 6; i <= 20; i++)
		assert_false(run(f, FP_ITEM, (uint64_t)i, FP_KIND_SELECT, 1));
	assert_int_equal(f->signals, 1);
	r = findings(f);
	assert_int_equal(r.f[0].last_calls, 20);
	assert_int_equal(r.f[0].bursts, 1);

	/* a new unit signals again */
	end_unit(f);
	assert_false(nplus1_unit_signal(f->u, &sig));
	loop(f, FP_ITEM, 5, true, FP_KIND_SELECT);
	assert_int_equal(f->signals, 2);
}

static void test_failed_not_counted(void **state)
{
	struct fx *f = *state;
	struct nplus1_stmt st = stmt(FP_ITEM, 1, FP_KIND_SELECT, NULL);
	struct rows r;

	run(f, FP_LIST, 0, FP_KIND_SELECT, 5);
	loop(f, FP_ITEM, 3, true, FP_KIND_SELECT);
	assert_false(run_full(f, &st, 0, 100, true, false)); /* 4th, failed */
	assert_false(run_full(f, &st, 0, 100, true, false)); /* 5th, failed */
	assert_int_equal(nplus1_table_count(f->t), 0);
	assert_false(run(f, FP_ITEM, 10, FP_KIND_SELECT, 1)); /* 4 completed */
	assert_int_equal(nplus1_table_count(f->t), 0);
	assert_true(run(f, FP_ITEM, 11, FP_KIND_SELECT, 1)); /* 5 completed */
	r = findings(f);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.f[0].last_calls, 5);
	assert_int_equal(r.f[0].total_time, 5 * 100);
	assert_int_equal(f->signals, 1);

	/* the signalled execution fails: no finding until another one completes, no new signal */
	end_unit(f);
	nplus1_table_reset(f->t);
	loop(f, FP_ITEM, 4, true, FP_KIND_SELECT);
	assert_true(run_full(f, &st, 0, 100, true, false));
	assert_int_equal(nplus1_table_count(f->t), 0);
	assert_false(run(f, FP_ITEM, 12, FP_KIND_SELECT, 1));
	assert_int_equal(nplus1_table_count(f->t), 1);
	assert_int_equal(f->signals, 2);

	/* a failed statement is no source either */
	end_unit(f);
	run(f, FP_LIST, 0, FP_KIND_SELECT, 8);
	st = stmt(FP_OTHER, 1, FP_KIND_SELECT, NULL);
	run_full(f, &st, 0, 100, true, false);
	loop(f, FP_ITEM + 1, 5, true, FP_KIND_SELECT);
	r = findings(f);
	assert_true(find_fp(&r, FP_ITEM + 1, NULL)->source_fp == FP_LIST);
	assert_int_equal(find_fp(&r, FP_ITEM + 1, NULL)->source_rows, 8);
}

static void test_refused(void **state)
{
	struct fx *f = *state;
	struct nplus1_stmt st = stmt(FP_ITEM, 99, FP_KIND_SELECT, NULL);
	struct rows r;

	run(f, FP_LIST, 0, FP_KIND_SELECT, 5);
	loop(f, FP_ITEM, 4, true, FP_KIND_SELECT);
	/* nplus1_action = error: the 5th is signalled and never sent */
	assert_true(nplus1_before(f->u, f->t, &f->s, &f->ctx, &st, false, f->now));
	nplus1_refused(f->u, f->t, &f->s, &f->ctx, &st, f->now);
	r = findings(f);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.f[0].last_calls, 5);
	assert_int_equal(r.f[0].total_time, 4 * 100);
	assert_int_equal(nplus1_table_logged(f->t), 1);

	/* a caller that neither completes nor refuses it: the finding is made at unit end */
	end_unit(f);
	nplus1_table_reset(f->t);
	loop(f, FP_ITEM, 4, true, FP_KIND_SELECT);
	assert_true(nplus1_before(f->u, f->t, &f->s, &f->ctx, &st, false, f->now));
	assert_int_equal(nplus1_table_count(f->t), 0);
	end_unit(f);
	r = findings(f);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.f[0].last_calls, 5);
}

static void test_uncounted_kinds(void **state)
{
	struct fx *f = *state;
	static const enum fp_kind kinds[] = {FP_KIND_TXN,    FP_KIND_SESSION, FP_KIND_LISTEN,
					     FP_KIND_CURSOR, FP_KIND_COPY,    FP_KIND_PREPARE,
					     FP_KIND_EMPTY};
	struct rows r;

	run(f, FP_LIST, 0, FP_KIND_SELECT, 7);
	for (int k = 0; k < 7; k++)
		for (int i = 0; i < 10; i++)
			assert_false(run(f, 0x9000 + (uint64_t)k, (uint64_t)i, kinds[k], 1));
	assert_int_equal(nplus1_table_count(f->t), 0);

	/* SAVEPOINT / RELEASE around each write (atomic() in a loop) leave the loop intact */
	for (int i = 0; i < 5; i++) {
		run(f, 0x9000, 0, FP_KIND_TXN, 0);
		run(f, FP_ITEM, (uint64_t)i, FP_KIND_UPDATE, 1);
		run(f, 0x9001, 0, FP_KIND_TXN, 0);
	}
	r = findings(f);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.f[0].kind, NPLUS1_KIND_WRITE_LOOP);
	assert_true(r.f[0].source_fp == FP_LIST);
	assert_int_equal(r.f[0].source_rows, 7);
}

/* ---------------------------------------------------------------- unit boundaries */

static void test_idle_gap_splits(void **state)
{
	struct fx *f = *state;
	struct nplus1_stmt st = stmt(FP_ITEM, 1, FP_KIND_SELECT, NULL);

	for (int i = 0; i < 3; i++)
		run_idle(f, &st, 1);
	f->now += 600 * MS;
	for (int i = 0; i < 3; i++)
		run_idle(f, &st, 1);
	assert_int_equal(nplus1_table_count(f->t), 0);

	/* gaps shorter than idle_gap keep the unit */
	f->now += 600 * MS;
	for (int i = 0; i < 5; i++) {
		run_idle(f, &st, 1);
		f->now += 400 * MS;
	}
	assert_int_equal(nplus1_table_count(f->t), 1);
}

static void test_idle_gap_not_inside_txn(void **state)
{
	struct fx *f = *state;
	struct nplus1_stmt st = stmt(FP_ITEM, 1, FP_KIND_SELECT, NULL);

	/* BEGIN; then a slow loop: the client sits "idle in transaction" between statements */
	for (int i = 0; i < 5; i++) {
		run_full(f, &st, 1, 100, false, true);
		f->now += 2000 * MS;
	}
	assert_int_equal(nplus1_table_count(f->t), 1);
	assert_int_equal(f->signals, 1);
}

static void test_idle_gap_before_next_txn(void **state)
{
	struct fx *f = *state;
	struct nplus1_stmt st = stmt(FP_ITEM, 1, FP_KIND_SELECT, NULL);

	/* ATOMIC_REQUESTS: two requests, each BEGIN; 3 x SELECT; COMMIT, a second apart */
	for (int req = 0; req < 2; req++) {
		for (int i = 0; i < 3; i++)
			run_full(f, &st, 1, 100, false, true);
		nplus1_idle(f->u, f->now); /* after COMMIT */
		f->now += 1000 * MS;
	}
	assert_int_equal(nplus1_table_count(f->t), 0);
}

static void test_route_change_splits(void **state)
{
	struct fx *f = *state;
	struct fp_tags a, b, c;
	struct nplus1_stmt st;
	struct rows r;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&c, 0, sizeof(c));
	strcpy(a.route, "/books/");
	strcpy(b.route, "/authors/");
	strcpy(c.controller, "BookView");
	for (int i = 0; i < 8; i++) { /* alternating routes: never 5 in a row */
		st = stmt(FP_ITEM, (uint64_t)i, FP_KIND_SELECT, i % 4 < 2 ? &a : &b);
		run_full(f, &st, 1, 100, false, false);
	}
	assert_int_equal(nplus1_table_count(f->t), 0);

	/* not inside a transaction */
	for (int i = 0; i < 5; i++) {
		st = stmt(FP_ITEM, (uint64_t)i, FP_KIND_SELECT, i % 2 ? &a : &b);
		run_full(f, &st, 1, 100, false, true);
	}
	assert_int_equal(nplus1_table_count(f->t), 1);
	end_unit(f);

	/* the route, else the controller, names the finding */
	st = stmt(FP_LIST, 0, FP_KIND_SELECT, &a);
	run_full(f, &st, 5, 100, false, false);
	for (int i = 0; i < 5; i++) {
		st = stmt(FP_OTHER, (uint64_t)i, FP_KIND_SELECT, &a);
		run_full(f, &st, 1, 100, false, false);
	}
	for (int i = 0; i < 5; i++) {
		st = stmt(FP_OTHER, (uint64_t)i, FP_KIND_SELECT, &c);
		run_full(f, &st, 1, 100, false, false);
	}
	r = findings(f);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.route[0], "BookView");
	assert_string_equal(r.route[1], "/books/");
	assert_true(r.f[1].source_fp == FP_LIST);
	assert_true(r.f[0].source_fp == 0); /* the previous unit's statements are no source */
}

static void set_trace(struct fp_tags *t, const char *route, char digit)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->route, sizeof(t->route), "%s", route);
	snprintf(t->traceparent, sizeof(t->traceparent), "00-%032d-00f067aa0ba902b7-01", 0);
	t->traceparent[3 + 31] = digit;
}

static void test_trace_id(void **state)
{
	struct fx *f = *state;
	struct fp_tags t1, t2, t1b;
	struct nplus1_stmt st;
	struct rows r;

	set_trace(&t1, "/books/", '1');
	set_trace(&t2, "/books/", '2');
	set_trace(&t1b, "/other/", '1');
	/* two requests on one route back to back, told apart only by their trace-ids */
	for (int i = 0; i < 6; i++) {
		st = stmt(FP_ITEM, (uint64_t)i, FP_KIND_SELECT, i < 3 ? &t1 : &t2);
		run_full(f, &st, 1, 100, false, false);
	}
	assert_int_equal(nplus1_table_count(f->t), 0);

	/* one trace across idle gaps (and a route change) stays one unit */
	end_unit(f);
	for (int i = 0; i < 5; i++) {
		st = stmt(FP_ITEM, (uint64_t)i, FP_KIND_SELECT, i == 4 ? &t1b : &t1);
		run_idle(f, &st, 1);
		f->now += 10000 * MS;
	}
	r = findings(f);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.route[0], "/books/");
	assert_int_equal(r.f[0].last_calls, 5);

	/* untraced statements run on into the first traced one: one unit, that trace's */
	end_unit(f);
	nplus1_table_reset(f->t);
	memset(&t2, 0, sizeof(t2));
	strcpy(t2.route, "/books/");
	for (int i = 0; i < 5; i++) {
		st = stmt(FP_ITEM, (uint64_t)i, FP_KIND_SELECT, i < 2 ? &t2 : &t1);
		run_full(f, &st, 1, 100, false, false);
	}
	assert_int_equal(nplus1_table_count(f->t), 1);
	st = stmt(FP_OTHER, 0, FP_KIND_SELECT, &t1);
	run_idle(f, &st, 1);
	f->now += 10000 * MS;
	for (int i = 0; i < 5; i++) { /* same trace after the gap: still the same unit */
		st = stmt(FP_OTHER, (uint64_t)i + 1, FP_KIND_SELECT, &t1);
		run_full(f, &st, 1, 100, false, false);
	}
	assert_int_equal(nplus1_table_count(f->t), 2);

	/* an invalid traceparent is no trace: the idle gap applies */
	end_unit(f);
	nplus1_table_reset(f->t);
	strcpy(t2.traceparent, "00-zz");
	for (int i = 0; i < 5; i++) {
		st = stmt(FP_ITEM, (uint64_t)i, FP_KIND_SELECT, &t2);
		run_idle(f, &st, 1);
		f->now += 10000 * MS;
	}
	assert_int_equal(nplus1_table_count(f->t), 0);
}

static void test_max_statements(void **state)
{
	struct fx *f = *state;

	f->s.max_statements = 4;
	loop(f, FP_ITEM, 8, true, FP_KIND_SELECT);
	assert_int_equal(nplus1_table_count(f->t), 0);
	end_unit(f);

	f->s.max_statements = 10;
	loop(f, FP_ITEM, 8, true, FP_KIND_SELECT);
	assert_int_equal(nplus1_table_count(f->t), 1);
	assert_int_equal(findings(f).f[0].last_calls, 8);
	loop(f, FP_ITEM, 6, true, FP_KIND_SELECT); /* 10 in the unit, then a new unit of 4 */
	end_unit(f);
	assert_int_equal(findings(f).f[0].last_calls, 10);
	assert_int_equal(findings(f).f[0].bursts, 1);
}

static void test_min_time(void **state)
{
	struct fx *f = *state;
	struct rows r;

	f->s.min_time = 1 * MS; /* the loop's executions take 100 us each */
	loop(f, FP_ITEM, 9, true, FP_KIND_SELECT);
	assert_int_equal(f->signals, 0);
	end_unit(f);
	assert_int_equal(nplus1_table_count(f->t), 0);

	for (int i = 1; i <= 9; i++)
		run(f, FP_ITEM, (uint64_t)i, FP_KIND_SELECT, 1);
	assert_int_equal(nplus1_table_count(f->t), 0);
	run(f, FP_ITEM, 10, FP_KIND_SELECT, 1); /* 1000 us summed */
	r = findings(f);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.f[0].total_time, 1000);
	/* the signal can only judge the time of finished executions: it comes with the 11th */
	assert_int_equal(f->signals, 0);
	assert_true(run(f, FP_ITEM, 11, FP_KIND_SELECT, 1));
}

static void test_bursts_per_unit(void **state)
{
	struct fx *f = *state;
	static const int sizes[] = {6, 9, 7};
	struct rows r;

	for (int u = 0; u < 3; u++) {
		run(f, FP_LIST, 0, FP_KIND_SELECT, (uint64_t)sizes[u]);
		loop(f, FP_ITEM, sizes[u], true, FP_KIND_SELECT);
		end_unit(f);
	}
	r = findings(f);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.f[0].bursts, 3);
	assert_int_equal(r.f[0].last_calls, 7);
	assert_int_equal(r.f[0].max_calls, 9);
	assert_int_equal(r.f[0].total_calls, 22);
	assert_int_equal(r.f[0].total_time, 22 * 100);
	assert_int_equal(r.f[0].source_rows, 7);
	assert_true(r.f[0].first_seen < r.f[0].last_seen);
	assert_int_equal(f->signals, 3);
}

static void test_distinct_cap_and_size(void **state)
{
	struct fx *f = *state;
	size_t base = nplus1_unit_size(f->u), big;
	struct rows r;

	for (uint64_t fp = 1; fp <= NPLUS1_MAX_TRACKED + 10; fp++)
		run(f, fp, 0, FP_KIND_SELECT, 1);
	big = nplus1_unit_size(f->u);
	assert_true(big > base);
	assert_true(big < 64 * 1024);
	/* fingerprints past the cap are not tracked in this unit; earlier ones are */
	loop(f, NPLUS1_MAX_TRACKED + 5, 6, true, FP_KIND_SELECT);
	loop(f, 3, 6, true, FP_KIND_SELECT);
	r = findings(f);
	assert_int_equal(r.n, 1);
	assert_true(r.f[0].fp == 3);
	assert_int_equal(r.f[0].last_calls, 7);
	end_unit(f);
	assert_int_equal(nplus1_unit_size(f->u), base);
}

/* ---------------------------------------------------------------- the table */

static void test_table_bound(void **state)
{
	struct fx *f = *state;
	struct rows r;

	f->s.max_findings = 3;
	for (uint64_t fp = 1; fp <= 5; fp++) {
		loop(f, fp, 5, true, FP_KIND_SELECT);
		end_unit(f);
	}
	r = findings(f);
	assert_int_equal(r.n, 3);
	assert_int_equal(nplus1_table_dropped(f->t), 2);
	/* newest first; the least recently seen went */
	assert_true(r.f[0].fp == 5 && r.f[1].fp == 4 && r.f[2].fp == 3);

	/* seeing 3 again saves it from the next eviction */
	loop(f, 3, 5, true, FP_KIND_SELECT);
	end_unit(f);
	loop(f, 6, 5, true, FP_KIND_SELECT);
	end_unit(f);
	r = findings(f);
	assert_int_equal(r.n, 3);
	assert_int_equal(nplus1_table_dropped(f->t), 3);
	assert_true(r.f[0].fp == 6 && r.f[1].fp == 3 && r.f[2].fp == 5);
	assert_int_equal(r.f[1].bursts, 2);

	/* 0 keeps nothing, and says so */
	f->s.max_findings = 0;
	nplus1_table_reset(f->t);
	loop(f, 7, 5, true, FP_KIND_SELECT);
	assert_int_equal(nplus1_table_count(f->t), 0);
	assert_int_equal(f->signals, 8);
}

static bool count_rows(const struct nplus1_finding *fd, void *arg)
{
	(void)fd;
	(*(int *)arg)++;
	return *(int *)arg < 2;
}

static void test_reset_and_foreach_stop(void **state)
{
	struct fx *f = *state;
	int n = 0;

	for (uint64_t fp = 1; fp <= 4; fp++)
		loop(f, fp, 5, true, FP_KIND_SELECT);
	assert_int_equal(nplus1_table_count(f->t), 4);
	nplus1_table_foreach(f->t, count_rows, &n);
	assert_int_equal(n, 2);

	nplus1_table_reset(f->t);
	assert_int_equal(nplus1_table_count(f->t), 0);
	assert_int_equal(findings(f).n, 0);
	/* the unit is not confused by the reset: more executions, a new row */
	loop(f, 2, 3, true, FP_KIND_SELECT);
	assert_int_equal(nplus1_table_count(f->t), 0);
	end_unit(f);
	loop(f, 2, 5, true, FP_KIND_SELECT);
	assert_int_equal(findings(f).f[0].bursts, 1);
}

struct ctr {
	int n;
	struct {
		char db[32], route[32];
		enum nplus1_kind kind;
		uint64_t count, statements;
	} c[8];
};

static bool collect_ctr(const struct nplus1_counter *c, void *arg)
{
	struct ctr *x = arg;

	if (x->n < 8) {
		snprintf(x->c[x->n].db, 32, "%s", c->database);
		snprintf(x->c[x->n].route, 32, "%s", c->route);
		x->c[x->n].kind = c->kind;
		x->c[x->n].count = c->count;
		x->c[x->n].statements = c->statements;
	}
	x->n++;
	return true;
}

static uint64_t ctr_get(const struct ctr *x, const char *db, const char *route,
			enum nplus1_kind kind, bool statements)
{
	for (int i = 0; i < x->n && i < 8; i++)
		if (!strcmp(x->c[i].db, db) && !strcmp(x->c[i].route, route) &&
		    x->c[i].kind == kind)
			return statements ? x->c[i].statements : x->c[i].count;
	return 0;
}

static void test_counters(void **state)
{
	struct fx *f = *state;
	struct fp_tags a;
	struct nplus1_stmt st;
	struct ctr x;

	memset(&a, 0, sizeof(a));
	strcpy(a.route, "/books/");
	for (int u = 0; u < 2; u++) { /* two n+1 units on /books/ in app, two fingerprints */
		for (int i = 0; i < 10; i++) {
			st = stmt(i % 2 ? FP_ITEM : FP_OTHER, (uint64_t)i, FP_KIND_SELECT, &a);
			run_full(f, &st, 1, 100, false, false);
		}
		end_unit(f);
	}
	f->ctx.database = "app2";
	loop(f, FP_ITEM, 7, true, FP_KIND_INSERT);
	end_unit(f);
	loop(f, FP_ITEM, 5, false, FP_KIND_SELECT);
	end_unit(f);

	memset(&x, 0, sizeof(x));
	nplus1_table_foreach_counter(f->t, collect_ctr, &x);
	assert_int_equal(x.n, 3);
	assert_int_equal(ctr_get(&x, "app", "/books/", NPLUS1_KIND_NPLUS1, false), 4);
	assert_int_equal(ctr_get(&x, "app", "/books/", NPLUS1_KIND_NPLUS1, true), 20);
	assert_int_equal(ctr_get(&x, "app2", "", NPLUS1_KIND_WRITE_LOOP, false), 1);
	assert_int_equal(ctr_get(&x, "app2", "", NPLUS1_KIND_WRITE_LOOP, true), 7);
	assert_int_equal(ctr_get(&x, "app2", "", NPLUS1_KIND_DUPLICATE, false), 1);
	assert_int_equal(ctr_get(&x, "app2", "", NPLUS1_KIND_DUPLICATE, true), 5);
	assert_int_equal(nplus1_table_count(f->t), 4);

	/* RESET NPLUS1 keeps the monotonic counters */
	nplus1_table_reset(f->t);
	memset(&x, 0, sizeof(x));
	nplus1_table_foreach_counter(f->t, collect_ctr, &x);
	assert_int_equal(ctr_get(&x, "app", "/books/", NPLUS1_KIND_NPLUS1, false), 4);
}

static void test_log_rate_limit(void **state)
{
	struct fx *f = *state;
	char dir[] = "/tmp/pgtally-test-nplus1-XXXXXX", path[64], line[2048];
	int lines = 0;
	bool seen = false;
	FILE *fp;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/log", dir);
	log_setup(path, false, NULL, LOG_LVL_INFO);

	for (int u = 0; u < 3; u++) { /* 3 bursts within a minute: one line */
		run(f, FP_LIST, 0, FP_KIND_SELECT, 6);
		loop(f, FP_ITEM, 6, true, FP_KIND_SELECT);
		end_unit(f);
		f->now += 10 * 1000 * MS;
	}
	assert_int_equal(nplus1_table_logged(f->t), 1);
	loop(f, FP_OTHER, 6, true, FP_KIND_SELECT); /* another group logs on its own */
	end_unit(f);
	assert_int_equal(nplus1_table_logged(f->t), 2);
	f->now += 60 * 1000 * MS;
	loop(f, FP_ITEM, 6, true, FP_KIND_SELECT);
	end_unit(f);
	assert_int_equal(nplus1_table_logged(f->t), 3);

	log_setup(NULL, false, NULL, LOG_LVL_INFO);
	fp = fopen(path, "r");
	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp)) {
		lines++;
		if (strstr(line, "nplus1: kind=n+1 db=app user=appuser app=django route=\"\" "
				 "fingerprint=2222000000000002 calls=5 source=1111000000000001 "
				 "source_rows=6 time_us=500 suppressed=0 "
				 "query=\"SELECT * FROM author WHERE id = $1\""))
			seen = true;
		if (lines == 3)
			assert_non_null(strstr(line, "suppressed=2"));
	}
	fclose(fp);
	unlink(path);
	rmdir(dir);
	assert_int_equal(lines, 3);
	assert_true(seen);
}

static void test_query_texts_capped(void **state)
{
	struct fx *f = *state;
	struct nplus1_stmt st = stmt(FP_ITEM, 0, FP_KIND_SELECT, NULL);
	struct rows r;

	f->s.track_query_len = 10;
	st.query = "SELECT 'h\xc3\xa9h\xc3\xa9h\xc3\xa9'"; /* 'é' straddles byte 10 */
	for (int i = 0; i < 5; i++) {
		st.params_hash = (uint64_t)i;
		run_full(f, &st, 1, 100, false, false);
	}
	r = findings(f);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.query[0], "SELECT 'h");

	/* NULL texts and names are stored as "" */
	end_unit(f);
	nplus1_table_reset(f->t);
	f->ctx = (struct nplus1_ctx){NULL, NULL, NULL};
	st.query = NULL;
	for (int i = 0; i < 5; i++)
		run_full(f, &st, 1, 100, false, false);
	r = findings(f);
	assert_string_equal(r.query[0], "");
	assert_string_equal(r.f[0].database, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
		T(test_one_plus_n_selects),
		T(test_two_loops_share_the_source),
		T(test_no_source),
		T(test_duplicate),
		T(test_one_different_param_is_not_duplicate),
		T(test_write_loops),
		T(test_below_threshold),
		T(test_exactly_threshold),
		T(test_failed_not_counted),
		T(test_refused),
		T(test_uncounted_kinds),
		T(test_idle_gap_splits),
		T(test_idle_gap_not_inside_txn),
		T(test_idle_gap_before_next_txn),
		T(test_route_change_splits),
		T(test_trace_id),
		T(test_max_statements),
		T(test_min_time),
		T(test_bursts_per_unit),
		T(test_distinct_cap_and_size),
		T(test_table_bound),
		T(test_reset_and_foreach_stop),
		T(test_counters),
		T(test_log_rate_limit),
		T(test_query_texts_capped),
#undef T
	};

	/* the findings' log lines would clutter the test output */
	log_setup(NULL, false, NULL, LOG_LVL_INFO);
	return cmocka_run_group_tests_name("nplus1", tests, NULL, NULL);
}
