/*
 * admin_int: what the console's two files share. admin.c logs consoles in, splits their
 * queries into commands, runs the control commands and merges the rows of every worker;
 * admin_show.c renders SHOW. Everything here runs with the world stopped (app_world_stop).
 */
#ifndef PGT_ADMIN_INT_H
#define PGT_ADMIN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iobuf.h"

struct client;
struct list;
struct pool;

#define ADMIN_NCOLS(a) (sizeof(a) / sizeof((a)[0]))

/* An ErrorResponse (severity ERROR) into b. */
void admin_error(struct iobuf *b, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The server lists of a pool by state (i in 0 .. ADMIN_N_SERVER_LISTS-1), to walk them all. */
#define ADMIN_N_SERVER_LISTS 5
struct list *admin_pool_server_list(struct pool *p, int i);

/*
 * SUSPEND leaves every worker paused with reading stopped on every pooled connection; true
 * when that is the state now (paused, and not one pooled connection of any worker is read).
 */
bool admin_is_suspended(void);

/*
 * Merging rows by name: an open-addressing table of indexes into the caller's array, sized
 * once for at most max_entries (it never grows), and FNV-1a hashes to key it with.
 */
struct admin_keymap {
	size_t *slot; /* index + 1; 0 = empty */
	size_t mask;  /* capacity - 1; the capacity is a power of two, over twice the entries */
};
bool admin_keymap_init(struct admin_keymap *m, size_t max_entries)
	__attribute__((warn_unused_result));
void admin_keymap_free(struct admin_keymap *m);
/* The slot of the entry with hash h for which same(ctx, index) holds, or the empty slot where
 * it belongs (store index + 1 there). */
size_t *admin_keymap_slot(struct admin_keymap *m, uint64_t h,
			  bool (*same)(const void *ctx, size_t i), const void *ctx);
#define ADMIN_HASH_SEED 0xcbf29ce484222325ull
/* Hash s (NULL as "") and its terminator into h, so that ("ab", "c") and ("a", "bc") differ. */
uint64_t admin_hash_str(uint64_t h, const char *s);
uint64_t admin_hash_u64(uint64_t h, uint64_t v);

/* SHOW arg for console c: the rows and CommandComplete into b; false with an error in b. */
bool admin_show(struct client *c, const char *arg, struct iobuf *b);

#endif
