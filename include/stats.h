/*
 * stats: what the pooler measures on the data path: pool counters for SHOW STATS, and the
 * per-(database, user, fingerprint) statistics behind SHOW FINGERPRINTS, bounded like
 * pg_stat_statements (least-called entries evicted, a dropped counter).
 */
#ifndef PGT_STATS_H
#define PGT_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "fingerprint.h"
#include "objcache.h"

struct client;
struct pool;
struct server;
struct worker;
struct rq_entry;

/*
 * Two cache lines (allocated on a line boundary): what a completed statement updates, then
 * what the lookup when it is sent reads. A statement's reply finds its entry through the
 * pointer its request kept (rq.h), so a transaction touches each line once.
 */
struct fp_entry {
	/* line 0: stats_fp_record() */
	alignas(CACHE_LINE) uint64_t calls;
	uint64_t rows;
	uint64_t calls_in_txn;
	uint64_t total_time; /* usec */
	uint64_t min_time;
	uint64_t max_time;
	usec_t last_seen; /* wall clock usec */
	char *query;      /* normalized text, capped at track_query_len */
	/* line 1: stats_fp_find() */
	struct fp_entry *next; /* hash chain */
	struct pool *pool;     /* database and user */
	uint64_t fp;
	uint64_t errors;
	uint64_t nplus1;   /* N+1 findings naming this fingerprint */
	usec_t first_seen; /* when it was first sent */
	uint8_t kind;      /* enum fp_kind */
	uint8_t held;      /* enum fp_held bits (fingerprint.h): fp_session_effect() */
};

struct fp_table {
	struct fp_entry **buckets;
	size_t nbuckets; /* a power of two */
	size_t count;
	uint64_t dropped;
	uint32_t gen; /* moves on whenever an entry is freed: fp_entry pointers kept in rq die */
};

void stats_fp_table_free(struct fp_table *t);
void stats_fp_table_reset(struct fp_table *t);

/* Look up an entry; NULL when absent. */
struct fp_entry *stats_fp_find(struct fp_table *t, const struct pool *pool, uint64_t fp);

/*
 * Make sure an entry exists for the statement sql[start..end) whose fingerprint is fp: when
 * absent, normalize the text again (with output this time) and add it, evicting the
 * least-called entries when stats_max_fingerprints is reached.
 */
struct fp_entry *stats_fp_note(struct worker *w, struct pool *pool, uint64_t fp, int kind,
			       const char *sql, size_t start, size_t end);

/* A statement completed (or failed: rows = 0, failed = true). Uses re->fe when still valid. */
struct fp_entry *stats_fp_record(struct worker *w, struct pool *pool, const struct rq_entry *e,
				 uint64_t rows, usec_t duration, bool failed);

/* Entries sorted by total time, descending; the caller frees the array. */
struct fp_entry **stats_fp_sorted(struct fp_table *t, size_t *n);

/* ReadyForQuery seen for a client request (Query, Sync, FunctionCall). */
void stats_ready(struct client *c, struct server *s, char status, usec_t now);

#endif
