/* admin: the console database (pgtally, alias pgbouncer): SHOW and control commands. */
#ifndef PGT_ADMIN_H
#define PGT_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "iobuf.h"
#include "metrics.h"
#include "pool.h"

struct client;
struct worker;

/* Login finished on the console: b holds AuthenticationOk; add parameters and send. */
void admin_welcome(struct client *c, struct iobuf *b);

/* Process buffered console input (simple Query messages); stops the world meanwhile. */
void admin_process(struct client *c);

/* At exit: free the console commands of worker w still waiting (PAUSE, WAIT_CLOSE...). */
void admin_waits_free(struct worker *w);

/*
 * Everything below reads or changes every worker: call it with the world stopped
 * (app_world_stop), as the console and the metrics endpoint do.
 */

/*
 * The pools and databases of all workers merged by name, for SHOW and /metrics. Each worker
 * has its own objects for a (database, user); their counts and counters are added up here.
 * Order: worker 0's objects in its list order, then those only later workers have; databases
 * configured but not yet used by any worker come last (pdb NULL).
 */
struct admin_db_row {
	const char *name;
	const struct pool_db *pdb;   /* the first worker's object; NULL: configured, never used */
	const struct config_db *cfg; /* its settings (pdb->cfg or the config line) */
	bool removed;                /* gone from the config after a reload (alike everywhere) */
	bool paused;                 /* PAUSE db / KILL db on any worker */
	bool disabled;
	int n_servers; /* summed over workers */
	int n_clients;
	size_t n_pools; /* pool objects of this database over all workers */
	struct pool_stats stats; /* SHOW STATS counters, summed */
	struct pool_stats period_delta; /* the last stats_period, summed */
	usec_t period_len;              /* 0 before the first period ended */
	struct metrics_hist query, xact, wait; /* latency histograms, added bucket by bucket */
};

struct admin_pool_row {
	const char *database;
	const char *user;
	size_t db; /* index of its database in admin_merged.dbs */
	int pool_mode;
	uint64_t cl_active, cl_waiting; /* cl_waiting includes clients waiting for a login */
	uint64_t sv_active, sv_idle, sv_used, sv_tested, sv_login;
	usec_t maxwait;             /* the longest a queued client has waited; 0 when none */
	usec_t last_connect_failed; /* the latest failed server login on any worker; 0 none */
	const char *last_error;     /* its message, may be NULL */
	struct pool_stats stats;
	struct pool_stats period_delta;
	usec_t period_len;
};

struct admin_merged {
	struct admin_db_row *dbs;
	size_t n_dbs;
	struct admin_pool_row *pools;
	size_t n_pools;
};

/* Fill m (strings point into the workers' objects); false when out of memory. */
bool admin_merge(struct admin_merged *m, usec_t now) __attribute__((warn_unused_result));
void admin_merged_free(struct admin_merged *m);

/*
 * Rows behind SHOW FINGERPRINTS and SHOW NPLUS1, and the per-fingerprint and N+1 metrics.
 * Strings are only valid during the emit call; the reader copies what it keeps.
 */
struct admin_fp_row {
	const char *database;
	const char *user;
	uint64_t fingerprint;
	const char *query; /* normalized text, at most track_query_len bytes */
	uint64_t calls;
	uint64_t rows;
	uint64_t errors;
	uint64_t total_time_us;
	uint64_t min_time_us;
	uint64_t max_time_us;
	uint64_t calls_in_txn;
	uint64_t nplus1; /* N+1 findings naming it */
	usec_t first_seen; /* wall clock, microseconds since the epoch */
	usec_t last_seen;
};

struct admin_nplus1_row {
	const char *kind; /* "n+1", "duplicate" or "write-loop" */
	const char *database;
	const char *user;
	const char *application_name;
	const char *route; /* sqlcommenter route (else controller), "" when none */
	uint64_t fingerprint;
	const char *query;
	uint64_t occurrences;    /* units of work in which it was found */
	uint64_t executions;     /* statements counted over those units */
	uint64_t max_executions; /* most in one unit */
	uint64_t last_calls;     /* in the last unit flagged */
	uint64_t total_time_us;
	uint64_t source_fingerprint; /* 0 when there was none */
	const char *source_query;    /* NULL when there was none */
	uint64_t source_rows;
	usec_t first_seen;
	usec_t last_seen;
};

/*
 * The provider interface: call emit once per row, in any order; each (database, user,
 * fingerprint) at most once, and each (kind, database, user, application_name, route,
 * fingerprint) at most once. Rows come from every worker (w is the caller's); the entries of
 * several workers with the same key are merged into one row (counts summed, min of mins, max
 * of maxes, the earliest first_seen and the latest last_seen). Fingerprints come most total
 * time first, N+1 findings most recent first. Nothing is emitted when out of memory.
 */
void admin_fingerprints_foreach(struct worker *w,
				void (*emit)(void *arg, const struct admin_fp_row *row), void *arg);
void admin_nplus1_foreach(struct worker *w,
			  void (*emit)(void *arg, const struct admin_nplus1_row *row), void *arg);
/* RESET FINGERPRINTS / RESET NPLUS1 of one worker's tables (the console resets them all). */
void admin_fingerprints_reset(struct worker *w);
void admin_nplus1_reset(struct worker *w);

#endif
