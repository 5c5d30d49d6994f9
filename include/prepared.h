/*
 * prepared: named prepared statements in transaction mode. A client's names map to shared
 * statements (by query text and parameter types) that servers hold under pgtally's own names
 * (PGT_<id>), at most max_prepared_statements per server, least recently used evicted.
 * Whichever server a client gets, pgtally prepares what the client's Bind needs first.
 */
#ifndef PGT_PREPARED_H
#define PGT_PREPARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "list.h"

struct pstmt_shared;

/* What pgtally knows of a statement: its fingerprint and kind, and for named ones the
 * shared statement behind the name. */
struct stmt_info {
	uint64_t fp;
	uint8_t kind; /* enum fp_kind */
	uint8_t held; /* enum fp_held bits, noted at each Bind (also with fingerprints off) */
	bool valid;
	struct pstmt_shared *shared;
};

/* One distinct statement, shared by every client that prepared the same text and types. */
struct pstmt_shared {
	struct pstmt_shared *next; /* registry hash chain */
	uint64_t key;
	uint32_t id;
	uint32_t refs; /* client names pointing here */
	char name[24]; /* PGT_<id>: the name servers know it by */
	size_t body_len;
	uint8_t *body; /* the Parse body after the name: query\0, ntypes, types */
};

/* Per worker: the shared statements. */
struct pstmt_registry {
	struct pstmt_shared **buckets;
	size_t nbuckets;
	size_t count;
	uint32_t next_id;
};

/* Find or add the statement of a Parse body (after its name); takes a reference. */
struct pstmt_shared *pstmt_shared_get(struct pstmt_registry *reg, const uint8_t *body,
				      size_t len);
void pstmt_shared_put(struct pstmt_registry *reg, struct pstmt_shared *ps);

/*
 * Give the statement with this id a new id and name, so every server prepares it afresh
 * (after "cached plan must not change result type"). False when no statement has the id.
 */
bool pstmt_shared_renew(struct pstmt_registry *reg, uint32_t id);
void pstmt_registry_free(struct pstmt_registry *reg);

/* A client's names. */
struct pstmt_map;

struct pstmt_map *pstmt_map_new(void);
/* Drop every name (releasing shared statements when reg is not NULL) and free the map. */
void pstmt_map_free(struct pstmt_map *m, struct pstmt_registry *reg);
size_t pstmt_map_count(const struct pstmt_map *m);
const struct stmt_info *pstmt_find(const struct pstmt_map *m, const char *name);
/* Define name; false when out of memory. The caller checked the name was free. */
bool pstmt_define(struct pstmt_map *m, const char *name, const struct stmt_info *info)
	__attribute__((warn_unused_result));
/* Forget name, releasing its shared statement; false when it was not defined. */
bool pstmt_forget(struct pstmt_map *m, struct pstmt_registry *reg, const char *name);
void pstmt_forget_all(struct pstmt_map *m, struct pstmt_registry *reg);

/* The statements one server holds, most recently used last. */
struct server_pstmts {
	struct list lru;
	struct sp_node **buckets;
	size_t nbuckets;
	size_t count;
};

bool server_pstmts_has(struct server_pstmts *sp, uint32_t id, bool touch);
/* Record that the server holds id; false when out of memory. */
bool server_pstmts_add(struct server_pstmts *sp, uint32_t id) __attribute__((warn_unused_result));
void server_pstmts_del(struct server_pstmts *sp, uint32_t id);
/* The least recently used id, or 0 when empty. */
uint32_t server_pstmts_oldest(const struct server_pstmts *sp);
void server_pstmts_free(struct server_pstmts *sp);

#endif
