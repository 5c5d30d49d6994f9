/* fingerprint: one-pass SQL normalizer, 64-bit query fingerprints and sqlcommenter tags. */
#ifndef PGT_FINGERPRINT_H
#define PGT_FINGERPRINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Version of the normalization rules and of the hash (doc/fingerprint.md). Any change that
 * can move an id bumps it, because ids are compared across machines and releases.
 */
#define FP_VERSION 1

/* Length of fp_hex()'s output including the NUL. */
#define FP_HEX_LEN 17

/* Statement class, from the first keyword(s). */
enum fp_kind {
	FP_KIND_EMPTY,  /* only whitespace/comments (set when fp_next() returns false) */
	FP_KIND_SELECT, /* SELECT, VALUES, TABLE, "(", WITH ... SELECT */
	FP_KIND_INSERT, /* also WITH ... INSERT, and so on for the next three */
	FP_KIND_UPDATE,
	FP_KIND_DELETE,
	FP_KIND_MERGE,
	FP_KIND_TXN,     /* BEGIN, START TRANSACTION, COMMIT, END, ROLLBACK, ABORT, SAVEPOINT,
			    RELEASE, PREPARE TRANSACTION, COMMIT/ROLLBACK PREPARED */
	FP_KIND_SESSION, /* SET, SHOW, RESET, DISCARD, DEALLOCATE */
	FP_KIND_LISTEN,  /* LISTEN, UNLISTEN, NOTIFY */
	FP_KIND_CURSOR,  /* DECLARE, FETCH, MOVE, CLOSE */
	FP_KIND_COPY,
	FP_KIND_PREPARE, /* PREPARE, EXECUTE (SQL-level) */
	FP_KIND_OTHER,   /* DDL, EXPLAIN and everything else */
};

/* Which transaction-control statement an FP_KIND_TXN statement is (FP_TXN_NONE otherwise). */
enum fp_txn {
	FP_TXN_NONE,
	FP_TXN_BEGIN,    /* BEGIN, START TRANSACTION */
	FP_TXN_COMMIT,   /* COMMIT, END (also ... AND CHAIN) */
	FP_TXN_ROLLBACK, /* ROLLBACK, ABORT */
	FP_TXN_SAVEPOINT,
	FP_TXN_RELEASE,
	FP_TXN_ROLLBACK_TO, /* ROLLBACK [WORK|TRANSACTION] TO [SAVEPOINT] */
	FP_TXN_PREPARE,     /* PREPARE TRANSACTION */
	FP_TXN_COMMIT_PREPARED,
	FP_TXN_ROLLBACK_PREPARED,
};

struct fp_stmt {
	uint64_t id;          /* the fingerprint: fp_hash() of the FULL normalized text */
	uint64_t params_hash; /* hash of the source text of every constant, in order (also those
				 dropped from collapsed lists); $n parameters count as their text,
				 so extended-protocol callers mix in the Bind values (fp_mix) */
	enum fp_kind kind;
	enum fp_txn txn;
	unsigned nconst;   /* constants and $n parameters seen (before list collapsing) */
	size_t norm_len;   /* bytes written to out, without the NUL; 0 when out is NULL */
	size_t full_len;   /* length of the full normalized text (> norm_len when truncated) */
	size_t start, end; /* sql[start..end): first to last token or comment, without ';' */
};

/*
 * Normalize the next statement of sql[*pos..len), which ends after a top-level ';' (outside
 * quotes, comments, parentheses and BEGIN ATOMIC bodies) or at len. Writes at most outcap-1
 * bytes of normalized text plus a NUL to out; out may be NULL (outcap is then ignored): the
 * id is computed all the same. Advances *pos past the statement and its ';'. Returns false,
 * with *pos = len and st->kind = FP_KIND_EMPTY, when nothing but whitespace, comments and ';'
 * remained. Never reads outside sql[0..len); sql need not be NUL-terminated. No allocation,
 * no global state: safe to call from several threads.
 */
bool fp_next(const char *sql, size_t len, size_t *pos, char *out, size_t outcap, struct fp_stmt *st)
	__attribute__((warn_unused_result));

/* The fingerprint hash (FP_VERSION) of a byte string: fp_hash(normalized text) == id. */
uint64_t fp_hash(const void *data, size_t len);

/* Fold v into h (order matters); e.g. Bind parameter hashes into params_hash. */
uint64_t fp_mix(uint64_t h, uint64_t v);

/* Bits: session state a statement may take or let go that outlives its transaction. */
enum fp_held {
	FP_HELD_TAKES = 1, /* DECLARE ... WITH HOLD, pg_advisory_lock(), pg_try_advisory_lock(),
			    * LISTEN, CREATE TEMP ..., SELECT ... INTO TEMP */
	FP_HELD_RELEASES = 2, /* CLOSE, DISCARD, ROLLBACK, pg_advisory_unlock(), UNLISTEN, DROP */
	FP_HELD_SETS = 4,     /* set_config(): may change a setting for the session */
	FP_HELD_MAYBE_SET = 8, /* a statement may begin with SET (fp_next() tells which) */
	FP_HELD_UNREAD = 16,   /* forward.c: a text too large to read may do any of the above */
};

/*
 * What sql[0..len) (raw text, one or several statements, or a normalized text) may do to
 * session state that outlives transactions: enum fp_held bits. One pass over the text, no
 * lexing: it errs towards too many bits (a keyword inside a literal or a comment counts),
 * never too few, for statements that name the state. Never reads outside sql[0..len).
 */
int fp_session_effect(const char *sql, size_t len);

/* Hex form of an id: 16 lowercase digits and a NUL. */
void fp_hex(uint64_t id, char buf[FP_HEX_LEN]);

/* sqlcommenter tags, url-decoded, truncated to fit, NUL-terminated, "" when absent. */
struct fp_tags {
	char route[128];
	char controller[128];
	char action[64];
	char framework[64];
	char application[64]; /* "application" or, failing that, "app_name" */
	char traceparent[64];
};

/* Where a trailing sqlcommenter comment would end: len without trailing blanks and ';'. */
size_t fp_tags_end(const char *sql, size_t len);

/*
 * Find a leading or trailing sqlcommenter comment (/ *key='value',...* /) in sql[0..len) and
 * fill tags (cleared first). A leading comment wins over a trailing one. Returns false, with
 * every tag an empty string, when neither is a well-formed sqlcommenter comment.
 */
bool fp_parse_tags(const char *sql, size_t len, struct fp_tags *tags)
	__attribute__((warn_unused_result));

/* The trace-id (32 lowercase hex digits) of a W3C traceparent "00-<trace>-<span>-<flags>". */
bool fp_trace_id(const char *traceparent, char out[33]) __attribute__((warn_unused_result));

#endif
