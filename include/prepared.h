/*
 * prepared: named prepared statements of a client, by name. Transaction mode hands a client a
 * different server for each transaction, so pgtally must know what each name means.
 */
#ifndef PGT_PREPARED_H
#define PGT_PREPARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What pgtally knows of a statement: its fingerprint and kind. */
struct stmt_info {
	uint64_t fp;
	uint8_t kind; /* enum fp_kind */
	bool valid;
};

struct pstmt_map;

struct pstmt_map *pstmt_map_new(void);
void pstmt_map_free(struct pstmt_map *m);
size_t pstmt_map_count(const struct pstmt_map *m);

/* The statement named name, or NULL. */
const struct stmt_info *pstmt_find(const struct pstmt_map *m, const char *name);

/* Define name (replacing an earlier definition); false when out of memory. */
bool pstmt_define(struct pstmt_map *m, const char *name, const struct stmt_info *info)
	__attribute__((warn_unused_result));

/* Forget name; false when it was not defined. */
bool pstmt_forget(struct pstmt_map *m, const char *name);

void pstmt_forget_all(struct pstmt_map *m);

#endif
