/* metrics: the Prometheus scrape endpoint (evhttp), latency histograms and stats_period upkeep. */
#ifndef PGT_METRICS_H
#define PGT_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct evbuffer;
struct pool;
struct worker;

/*
 * Upper bounds of the latency histogram buckets, in microseconds (100us .. 10s); the +Inf
 * bucket is the total count. Fixed, so an observation never allocates.
 */
#define METRICS_NBUCKETS 16
extern const usec_t metrics_bucket_bounds[METRICS_NBUCKETS];

/*
 * One latency histogram; bucket[i] counts observations in (bound[i-1], bound[i]]. Three cache
 * lines; in a pool they start on one (pool.h). The count and sum share the first with the
 * buckets up to 2.5 ms, where most statements fall: an observation touches one line.
 */
struct metrics_hist {
	uint64_t count; /* all observations, the +Inf bucket included */
	uint64_t sum_us;
	uint64_t bucket[METRICS_NBUCKETS];
	uint64_t pad[6];
};

/* Number of uint64_t counters in struct pool_stats (checked at compile time in metrics.c). */
#define METRICS_NSTATS 12

/* A pool's share of the metrics, embedded in struct pool. */
struct metrics_pool {
	struct metrics_hist query; /* request sent .. ReadyForQuery */
	struct metrics_hist xact;  /* first query .. end of the transaction */
	struct metrics_hist wait;  /* client queued .. linked to a server */
	/* The last complete stats_period: counters moved by how much, over how long. */
	uint64_t period_delta[METRICS_NSTATS]; /* struct pool_stats as an array */
	usec_t period_len;                     /* 0 until a period has completed */
	usec_t period_start;                   /* when stats_prev was taken */
};

/* Count one observation; no allocation, no lock (the pool belongs to one worker). */
void metrics_hist_observe(struct metrics_hist *h, usec_t us);

/* Data-path hooks (see doc/metrics.md for where each is called). */
void metrics_observe_query(struct pool *p, usec_t us);
void metrics_observe_xact(struct pool *p, usec_t us);
void metrics_observe_wait(struct pool *p, usec_t us);

/* Zero a pool's histograms and period figures (RESET STATS). */
void metrics_pool_reset(struct pool *p, usec_t now);

/* The last complete stats_period of p: how much each counter moved (*delta) over *len us
 * (0 before the first period ends). */
struct pool_stats;
void metrics_period(const struct pool *p, struct pool_stats *delta, usec_t *len);

/*
 * Close a stats_period for every pool of w: remember the deltas, snapshot the counters. The
 * timer calls it for every worker with the same now (the world stopped), so that the deltas
 * of a (database, user) on different workers cover the same time and add up.
 */
void metrics_stats_period(struct worker *w, usec_t now);

/* The process's one instance: the stats_period timer and, when metrics_listen is set, the
 * endpoint, both on worker 0's loop. */
struct metrics;

/*
 * Start the stats_period timer and, unless metrics_listen is empty, the HTTP endpoint on
 * w's event loop (worker 0's: one instance serves every worker). The timer and the HTTP
 * handlers stop the world (app_world_stop) while they read the other workers. NULL (logged)
 * when the endpoint cannot be opened.
 */
struct metrics *metrics_start(struct worker *w) __attribute__((warn_unused_result));
void metrics_free(struct metrics *m);

/*
 * Append the whole exposition (text format 0.0.4) to out: every worker's pools merged by
 * (database, user), histograms added bucket by bucket; false when out of memory. w is the
 * caller's worker; call with the world stopped.
 */
bool metrics_render(struct worker *w, struct evbuffer *out) __attribute__((warn_unused_result));

/* Ready for traffic (/readyz), looking at every worker (world stopped)? When not, a short
 * reason is written to why. */
bool metrics_ready(struct worker *w, char *why, size_t whylen);

/* Write v into out (cap bytes) as a Prometheus label value: escaped, valid UTF-8, at most
 * max_chars characters of v. Returns out. */
char *metrics_label_escape(const char *v, size_t max_chars, char *out, size_t cap);

/* Length of the valid UTF-8 sequence at s (n > 0 bytes left), or 0 when it is not one. */
size_t metrics_utf8_len(const unsigned char *s, size_t n);

#endif
