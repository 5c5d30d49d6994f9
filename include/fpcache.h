/*
 * fpcache: a per-worker memo of fingerprints by exact statement text.
 *
 * Extended-protocol clients (pgbench -M extended, psycopg 3 server-side binding, JDBC, pgx)
 * send the same Parse text, with $n placeholders, for every execution of a statement:
 * normalizing it again each time is wasted work. The cache keeps up to FPC_SLOTS texts,
 * direct-mapped by a hash of the text, each with the fp_stmt fp_next() returned for its first
 * statement; a hit compares the whole text, so it never returns another statement's result.
 * Texts longer than FPC_MAX_TEXT are not kept. Owned by one worker thread, no locking.
 */
#ifndef PGTALLY_FPCACHE_H
#define PGTALLY_FPCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fingerprint.h"

#define FPC_SLOTS 1024
#define FPC_MAX_TEXT 1024

struct fp_cache;

struct fp_cache *fp_cache_new(void);
void fp_cache_free(struct fp_cache *c);

/* The first statement of sql[0..len) as fp_next() from position 0 gave it, if kept. */
bool fp_cache_get(struct fp_cache *c, const char *sql, size_t len, struct fp_stmt *st);

/* Keep st for sql[0..len); quietly does nothing when the text is too long or memory is short. */
void fp_cache_put(struct fp_cache *c, const char *sql, size_t len, const struct fp_stmt *st);

/* Bytes held, for SHOW MEM; hits and misses since start. */
size_t fp_cache_bytes(const struct fp_cache *c);
void fp_cache_counts(const struct fp_cache *c, uint64_t *hits, uint64_t *misses);

#endif
