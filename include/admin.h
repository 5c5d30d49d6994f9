/* admin: the console database (pgtally, alias pgbouncer): SHOW and control commands. */
#ifndef PGT_ADMIN_H
#define PGT_ADMIN_H

#include <stdint.h>

#include "config.h"
#include "iobuf.h"

struct client;
struct worker;

/* Login finished on the console: b holds AuthenticationOk; add parameters and send. */
void admin_welcome(struct client *c, struct iobuf *b);

/* Process buffered console input (simple Query messages). */
void admin_process(struct client *c);

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
 * fingerprint) at most once, and each (kind, database, user, route, fingerprint) at most once.
 * admin.c holds stubs with no rows until the fingerprint table and the N+1 findings exist.
 */
void admin_fingerprints_foreach(struct worker *w,
				void (*emit)(void *arg, const struct admin_fp_row *row), void *arg);
void admin_nplus1_foreach(struct worker *w,
			  void (*emit)(void *arg, const struct admin_nplus1_row *row), void *arg);
/* RESET FINGERPRINTS / RESET NPLUS1. */
void admin_fingerprints_reset(struct worker *w);
void admin_nplus1_reset(struct worker *w);

#endif
