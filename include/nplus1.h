/*
 * nplus1: N+1 burst detection. Per client: the current unit of work and the fingerprints run
 * in it. Per worker: the bounded table of findings behind SHOW NPLUS1 and the metrics.
 *
 * The pooler calls, for each client:
 *   nplus1_before()   when a counted statement is about to be sent (may ask to act on it),
 *   nplus1_done()     when it completed (CommandComplete) or failed (ErrorResponse),
 *   nplus1_idle()     when the client goes idle outside a transaction (ReadyForQuery 'I'),
 *   nplus1_unit_end() at disconnect (and the module ends units itself on the other rules).
 * No I/O and no locking here: the caller owns the state and serializes access.
 */
#ifndef PGT_NPLUS1_H
#define PGT_NPLUS1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "fingerprint.h"

enum nplus1_kind { NPLUS1_KIND_NPLUS1 = 0, NPLUS1_KIND_DUPLICATE, NPLUS1_KIND_WRITE_LOOP };

/* "n+1", "duplicate", "write-loop". */
const char *nplus1_kind_name(enum nplus1_kind kind);

/* struct nplus1_settings, the N+1 detector's settings, is in config.h: the config keeps it. */

/* What the pooler knows about one statement. Strings need only live during the call. */
struct nplus1_stmt {
	uint64_t fp;          /* fingerprint */
	uint64_t params_hash; /* equal for equal parameter values */
	enum fp_kind kind;    /* statements of kinds other than SELECT/INSERT/UPDATE/DELETE/MERGE/
				 OTHER are not counted (TXN, SESSION, LISTEN, CURSOR, COPY, PREPARE) */
	/* normalized text, may be NULL (then "" is stored); nplus1_before() does not read it */
	const char *query;
	const struct fp_tags *tags; /* sqlcommenter tags of the statement, or NULL */
};

/* Where a finding belongs: copied into the table as needed. */
struct nplus1_ctx {
	const char *database;
	const char *user;
	const char *application_name;
};

/* Per-client state; small, created when the client first runs a statement. */
struct nplus1_unit;

struct nplus1_unit *nplus1_unit_new(void);
void nplus1_unit_free(struct nplus1_unit *u);

/* Bytes the unit holds now (for per-client caps and SHOW MEM). */
size_t nplus1_unit_size(const struct nplus1_unit *u);

struct nplus1_table;

struct nplus1_table *nplus1_table_new(void);
void nplus1_table_free(struct nplus1_table *t);
void nplus1_table_reset(struct nplus1_table *t);

/*
 * A statement is about to run. Applies the unit boundaries that depend on it (a new trace-id,
 * a changed route/controller, nplus1_max_statements, the idle gap since the last statement
 * when not in a transaction) and returns true when this execution is the one that makes its
 * fingerprint reach the threshold in the unit (the caller may then send a notice or make it
 * fail, per nplus1_action). in_txn: the client is inside an explicit transaction.
 */
bool nplus1_before(struct nplus1_unit *u, struct nplus1_table *t, const struct nplus1_settings *s,
		   const struct nplus1_ctx *ctx, const struct nplus1_stmt *st, bool in_txn,
		   usec_t now);

/*
 * The statement sent last for this fingerprint completed: rows from CommandComplete,
 * duration in usec, failed for an ErrorResponse (failed executions do not count). May record
 * or update a finding in t (and log it, at most once per group per log_interval).
 */
void nplus1_done(struct nplus1_unit *u, struct nplus1_table *t, const struct nplus1_settings *s,
		 const struct nplus1_ctx *ctx, const struct nplus1_stmt *st, uint64_t rows,
		 usec_t duration, bool failed, usec_t now);

/* The client is idle outside a transaction: remember when, for the idle-gap rule. */
void nplus1_idle(struct nplus1_unit *u, usec_t now);

/* End the unit now (disconnect): settle its findings into t. */
void nplus1_unit_end(struct nplus1_unit *u, struct nplus1_table *t,
		     const struct nplus1_settings *s, const struct nplus1_ctx *ctx, usec_t now);

/* One row of SHOW NPLUS1 (strings owned by the table; valid until it changes). */
struct nplus1_finding {
	const char *database;
	const char *user;
	const char *application_name;
	const char *route; /* sqlcommenter route, else controller, else "" */
	enum nplus1_kind kind;
	uint64_t fp;
	uint64_t source_fp; /* 0 when there was no earlier different statement in the unit */
	uint64_t source_rows;
	uint64_t bursts;     /* units flagged */
	uint64_t last_calls; /* executions in the last flagged unit */
	uint64_t max_calls;
	uint64_t total_calls; /* executions summed over the flagged units */
	uint64_t total_time; /* usec summed over the flagged executions */
	usec_t first_seen;   /* wall clock usec since the epoch */
	usec_t last_seen;
	const char *query;
	const char *source_query;
};

/* Visit the findings, most recent last_seen first; stop when fn returns false. */
void nplus1_table_foreach(const struct nplus1_table *t,
			  bool (*fn)(const struct nplus1_finding *f, void *arg), void *arg);
size_t nplus1_table_count(const struct nplus1_table *t);
uint64_t nplus1_table_dropped(const struct nplus1_table *t); /* evicted rows */

/* Findings counted by kind/database/route since start (for metrics); same visiting rules. */
struct nplus1_counter {
	const char *database;
	const char *route;
	enum nplus1_kind kind;
	uint64_t count;      /* units of work with a finding */
	uint64_t statements; /* executions in those bursts (addition) */
};
void nplus1_table_foreach_counter(const struct nplus1_table *t,
				  bool (*fn)(const struct nplus1_counter *c, void *arg), void *arg);

/* ---- additions for the data path and the tests (see doc/nplus1.md) ---- */

/* SQLSTATE of the error sent with nplus1_action = error (and of the notice). */
#define NPLUS1_SQLSTATE "PT001"

/* Distinct fingerprints tracked per unit of work; later ones are not counted in that unit. */
#define NPLUS1_MAX_TRACKED 256

/* What the last nplus1_before() that returned true flagged, for the notice or error. */
struct nplus1_signal {
	enum nplus1_kind kind;
	uint64_t fp;
	uint64_t calls;      /* executions so far in the unit, this one included */
	uint64_t source_fp;  /* 0 when none */
	uint64_t source_rows;
	const char *route;   /* "" when none; valid until the next call on the unit */
};

/* Fills sig and returns true when nplus1_before() returned true in the current unit. */
bool nplus1_unit_signal(const struct nplus1_unit *u, struct nplus1_signal *sig);

/* The message of the notice/error for sig (doc/nplus1.md), NUL-terminated, cut to cap. */
void nplus1_signal_message(const struct nplus1_signal *sig, char *buf, size_t cap);

/* A one-line hint for the notice/error (e.g. "use select_related() ..."). */
const char *nplus1_kind_hint(enum nplus1_kind kind);

/*
 * The statement nplus1_before() signalled was refused without being sent (nplus1_action =
 * error): count it as an execution anyway so that the finding is recorded. Call it instead
 * of nplus1_done() for that statement.
 */
void nplus1_refused(struct nplus1_unit *u, struct nplus1_table *t,
		    const struct nplus1_settings *s, const struct nplus1_ctx *ctx,
		    const struct nplus1_stmt *st, usec_t now);

/* Log lines written since the table was created (for tests of the rate limit). */
uint64_t nplus1_table_logged(const struct nplus1_table *t);

#endif
