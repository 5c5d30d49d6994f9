/* stats: pool counters and per-fingerprint statistics with bounded memory. */
#include "stats.h"

#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "fingerprint.h"
#include "metrics.h"
#include "pool.h"
#include "rq.h"
#include "server.h"
#include "worker.h"

static size_t fp_bucket(const struct fp_table *t, const struct pool *pool, uint64_t fp)
{
	uint64_t h = fp ^ ((uint64_t)(uintptr_t)pool * 0x9e3779b97f4a7c15ull);
	h ^= h >> 29;
	return (size_t)h & (t->nbuckets - 1);
}

struct fp_entry *stats_fp_find(struct fp_table *t, const struct pool *pool, uint64_t fp)
{
	if (!t->nbuckets)
		return NULL;
	for (struct fp_entry *e = t->buckets[fp_bucket(t, pool, fp)]; e; e = e->next)
		if (e->fp == fp && e->pool == pool)
			return e;
	return NULL;
}

static void fp_entry_unlink(struct fp_table *t, struct fp_entry *victim)
{
	struct fp_entry **pp = &t->buckets[fp_bucket(t, victim->pool, victim->fp)];
	while (*pp && *pp != victim)
		pp = &(*pp)->next;
	if (*pp)
		*pp = victim->next;
	free(victim->query);
	free(victim);
	t->count--;
	t->gen++;
}

static int cmp_calls(const void *a, const void *b)
{
	const struct fp_entry *x = *(const struct fp_entry *const *)a;
	const struct fp_entry *y = *(const struct fp_entry *const *)b;
	if (x->calls != y->calls)
		return x->calls < y->calls ? -1 : 1;
	return x->last_seen < y->last_seen ? -1 : x->last_seen > y->last_seen;
}

/* Drop the least-called 5% (at least one), as pg_stat_statements does. */
static void fp_evict(struct fp_table *t)
{
	size_t n = 0;
	struct fp_entry **all = malloc(sizeof(*all) * t->count);
	if (!all)
		return;
	for (size_t b = 0; b < t->nbuckets; b++)
		for (struct fp_entry *e = t->buckets[b]; e; e = e->next)
			all[n++] = e;
	qsort(all, n, sizeof(*all), cmp_calls);
	size_t drop = n / 20 ? n / 20 : 1;
	for (size_t i = 0; i < drop && i < n; i++)
		fp_entry_unlink(t, all[i]);
	t->dropped += drop;
	free(all);
}

struct fp_entry *stats_fp_note(struct worker *w, struct pool *pool, uint64_t fp, int kind,
			       const char *sql, size_t start, size_t end)
{
	struct fp_table *t = &w->fps;
	struct fp_entry *e = stats_fp_find(t, pool, fp);
	if (e)
		return e;
	int max = w->cfg->stats_max_fingerprints;
	if (max <= 0)
		return NULL;
	if (!t->nbuckets) {
		size_t nb = 64;
		while (nb < (size_t)max)
			nb *= 2;
		t->buckets = calloc(nb, sizeof(*t->buckets));
		if (!t->buckets)
			return NULL;
		t->nbuckets = nb;
	}
	while (t->count >= (size_t)max)
		fp_evict(t);
	e = cache_line_zalloc(sizeof(*e));
	if (!e)
		return NULL;
	size_t cap = w->cfg->track_query_len > 0 ? (size_t)w->cfg->track_query_len + 1 : 1025;
	e->query = malloc(cap);
	if (!e->query) {
		free(e);
		return NULL;
	}
	struct fp_stmt st;
	size_t pos = start;
	e->query[0] = '\0';
	if (!fp_next(sql, end, &pos, e->query, cap, &st))
		e->query[0] = '\0';
	e->pool = pool;
	e->fp = fp;
	e->kind = (uint8_t)kind;
	/* from the whole statement, not the text kept (track_query_len may cut it) */
	e->held = (uint8_t)(fp_session_effect(sql + start, end - start) & ~FP_HELD_MAYBE_SET);
	e->min_time = UINT64_MAX;
	e->first_seen = worker_now(w);
	size_t b = fp_bucket(t, pool, fp);
	e->next = t->buckets[b];
	t->buckets[b] = e;
	t->count++;
	return e;
}

struct fp_entry *stats_fp_record(struct worker *w, struct pool *pool, const struct rq_entry *re,
				 uint64_t rows, usec_t duration, bool failed)
{
	if (!re->fp)
		return NULL;
	struct fp_entry *e =
		re->fe && re->fe_gen == w->fps.gen ? re->fe : stats_fp_find(&w->fps, pool, re->fp);
	if (!e)
		return NULL;
	usec_t now = worker_now(w);
	uint64_t d = duration > 0 ? (uint64_t)duration : 0;
	e->last_seen = now;
	if (failed) {
		/* Like pg_stat_statements, failed executions are not calls. */
		e->errors++;
		return e;
	}
	e->calls++;
	e->rows += rows;
	e->total_time += d;
	if (d < e->min_time)
		e->min_time = d;
	if (d > e->max_time)
		e->max_time = d;
	if (re->flags & RQF_IN_TXN)
		e->calls_in_txn++;
	return e;
}

static int cmp_total(const void *a, const void *b)
{
	const struct fp_entry *x = *(const struct fp_entry *const *)a;
	const struct fp_entry *y = *(const struct fp_entry *const *)b;
	if (x->total_time != y->total_time)
		return x->total_time > y->total_time ? -1 : 1;
	return x->calls > y->calls ? -1 : x->calls < y->calls;
}

struct fp_entry **stats_fp_sorted(struct fp_table *t, size_t *n)
{
	*n = 0;
	struct fp_entry **all = malloc(sizeof(*all) * (t->count ? t->count : 1));
	if (!all)
		return NULL;
	for (size_t b = 0; b < t->nbuckets; b++)
		for (struct fp_entry *e = t->buckets[b]; e; e = e->next)
			if (e->calls || e->errors)
				all[(*n)++] = e;
	qsort(all, *n, sizeof(*all), cmp_total);
	return all;
}

void stats_fp_table_reset(struct fp_table *t)
{
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct fp_entry *e = t->buckets[b];
		while (e) {
			struct fp_entry *next = e->next;
			free(e->query);
			free(e);
			e = next;
		}
		t->buckets[b] = NULL;
	}
	t->count = 0;
	t->dropped = 0;
	t->gen++;
}

void stats_fp_table_free(struct fp_table *t)
{
	stats_fp_table_reset(t);
	free(t->buckets);
	t->buckets = NULL;
	t->nbuckets = 0;
}

void stats_ready(struct client *c, struct server *s, char status, usec_t now)
{
	struct pool *pool = c->pool;
	(void)status;
	pool->stats.query_count++;
	if (c->query_start && now >= c->query_start) {
		pool->stats.query_time += (uint64_t)(now - c->query_start);
		metrics_observe_query(pool, now - c->query_start);
	}
	/* A pipelined request behind this one starts being timed now. */
	c->query_start = s->rq.count ? now : 0;
}
