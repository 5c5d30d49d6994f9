/*
 * fpcache: a per-worker memo of fingerprints by exact statement text.
 *
 * Extended-protocol clients (pgbench -M extended, psycopg 3 server-side binding, JDBC, pgx)
 * send the same Parse text, with $n placeholders, for every execution of a statement:
 * normalizing it again each time is wasted work. The cache keeps up to FPC_SLOTS texts,
 * direct-mapped by a hash of the text, each with the fp_stmt fp_next() returned for its first
 * statement; a hit compares the whole text, so it never returns another statement's result.
 * Texts longer than FPC_MAX_TEXT are not kept.
 *
 * Simple-protocol statements (Django's, with the values written into the text) differ from
 * one execution to the next only inside their literals. fp_shape() reads a text once, cheaply,
 * and hashes everything but the contents of its plain literals (numbers, '...' strings) and
 * comments into a key; texts with the same key differ only there, which the normalizer turns
 * into placeholders or drops, so they have the same fingerprint. A list of plain literals
 * after IN, "IN (1, 2, 3)", is one literal to the key whatever its length, as the normalizer
 * collapses it to one element. A second table maps keys to
 * fp_stmt results. The hashes are seeded per cache: collisions cannot be prepared in advance.
 * Anything the quick reading is not sure of (dollar quotes, E'' and other prefixed strings,
 * backslashes, 1e5 or 0x1F numbers, unterminated quotes or comments) makes fp_shape() decline,
 * and the caller normalizes as usual.
 *
 * A shape's slot also keeps the text it was first seen with, and where that text's literals
 * and comments are: a template. A client's next statement very often has the shape of one of
 * its last few (the N+1 loop is exactly that), so fp_shape_hinted() first compares the text
 * with the templates of the client's last shapes: the bytes between the literals must be equal,
 * and each literal must be read as the same kind of literal where the template has one. That
 * costs a memcmp and the literals' own bytes instead of a scan and a hash of the whole text,
 * and gives the very result fp_shape() would. Owned by one worker thread, no locking.
 */
#ifndef PGTALLY_FPCACHE_H
#define PGTALLY_FPCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fingerprint.h"

#define FPC_SLOTS 1024
#define FPC_MAX_TEXT 1024
#define FPC_SHAPES 1024
#define FPC_PARTS 8 /* literals and comments a template may have */
#define FPC_HINTS 4 /* shapes a client's statements are compared with first */

struct fp_cache;

/* Where a text's literals and comments are: s[at[k], end[k]) is one of kind[k]. */
struct fp_parts {
	uint8_t n; /* FPC_PARTS + 1: more than FPC_PARTS, or a text longer than FPC_MAX_TEXT */
	uint8_t kind[FPC_PARTS];
	uint16_t at[FPC_PARTS], end[FPC_PARTS];
};

/* What fp_shape() found. */
struct fp_shape {
	uint64_t key;    /* the text without its literals' contents and comments */
	uint64_t params; /* the literals' contents (and key): the statement's params_hash */
	size_t first;    /* where the first literal or comment starts (len when none) */
	size_t last;     /* where the last one ends (0 when none) */
	bool comments;   /* the text has a comment (without one it has no sqlcommenter tags) */
	struct fp_parts parts;
};

/*
 * Could fp_parse_tags() find sqlcommenter tags in sql[0..n), the text of shape sh? Tags sit in
 * a comment at the start or the end, and the shape saw every comment; a text ending in the
 * two bytes that close one (blanks and ';' aside) is left to fp_parse_tags() all the same, as
 * it would look for the opening inside a literal.
 */
static inline bool fp_shape_may_have_tags(const struct fp_shape *sh, const char *sql, size_t n)
{
	if (sh->comments)
		return true;
	n = fp_tags_end(sql, n);
	return n >= 2 && sql[n - 1] == '/' && sql[n - 2] == '*';
}

/*
 * Can st, the one statement of a text of shape sh, stand for every text of that shape? Only
 * when it starts before the first literal or comment and ends after the last: then its start
 * and the distance from its end to the end of the text are the same for all of them.
 */
static inline bool fp_shape_fits(const struct fp_shape *sh, const struct fp_stmt *st)
{
	return st->start <= sh->first && st->end >= sh->last && st->kind != FP_KIND_CURSOR;
}

/* seed: random bits, so that the shape keys of this cache cannot be predicted. */
struct fp_cache *fp_cache_new(uint64_t seed);
void fp_cache_free(struct fp_cache *c);
/* For tests: fp_shape() reads c's texts 16 bytes at a time (SSE2), as where there is no AVX2. */
void fp_cache_portable(struct fp_cache *c);

/* The first statement of sql[0..len) as fp_next() from position 0 gave it, if kept. */
bool fp_cache_get(struct fp_cache *c, const char *sql, size_t len, struct fp_stmt *st);

/* Keep st for sql[0..len); quietly does nothing when the text is too long or memory is short. */
void fp_cache_put(struct fp_cache *c, const char *sql, size_t len, const struct fp_stmt *st);

/*
 * Read sql[0..len) for its shape; false when the text has something the quick reading does not
 * handle (the caller then neither looks up nor keeps it).
 */
bool fp_shape(const struct fp_cache *c, const char *sql, size_t len, struct fp_shape *sh);

/*
 * fp_shape(), the same result, tried first against the templates of the shapes hint[] names
 * (a client's, zeroed at first): those are then updated, the shape found first.
 */
bool fp_shape_hinted(struct fp_cache *c, uint16_t hint[FPC_HINTS], const char *sql, size_t len,
		     struct fp_shape *sh);

/*
 * The statement of a one-statement text of this shape, as fp_next() from position 0 gave it,
 * with start and end moved to this text's len and params_hash = sh->params.
 */
bool fp_cache_shape_get(struct fp_cache *c, const struct fp_shape *sh, size_t len,
			struct fp_stmt *st);

/*
 * Keep st, fp_next()'s only statement of sql[0..len) of shape sh, if it fits; and the text as
 * the shape's template when it has at most FPC_PARTS literals and comments.
 */
void fp_cache_shape_put(struct fp_cache *c, const struct fp_shape *sh, const char *sql, size_t len,
			const struct fp_stmt *st);

/* Bytes held, for SHOW MEM; hits and misses since start (texts and shapes together). */
size_t fp_cache_bytes(const struct fp_cache *c);
void fp_cache_counts(const struct fp_cache *c, uint64_t *hits, uint64_t *misses);
/* Texts fp_shape_hinted() matched with a template (for tests and the benchmark). */
uint64_t fp_cache_template_hits(const struct fp_cache *c);

#endif
