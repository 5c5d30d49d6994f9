/* prepared: a client's named prepared statements, in a small chained hash table. */
#include "prepared.h"

#include <stdlib.h>
#include <string.h>

#include "fingerprint.h"

struct pstmt {
	struct pstmt *next;
	struct stmt_info info;
	char name[];
};

struct pstmt_map {
	struct pstmt **buckets;
	size_t nbuckets; /* a power of two */
	size_t count;
};

struct pstmt_map *pstmt_map_new(void)
{
	struct pstmt_map *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->nbuckets = 16;
	m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
	if (!m->buckets) {
		free(m);
		return NULL;
	}
	return m;
}

void pstmt_forget_all(struct pstmt_map *m)
{
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct pstmt *p = m->buckets[i];
		while (p) {
			struct pstmt *next = p->next;
			free(p);
			p = next;
		}
		m->buckets[i] = NULL;
	}
	m->count = 0;
}

void pstmt_map_free(struct pstmt_map *m)
{
	if (!m)
		return;
	pstmt_forget_all(m);
	free(m->buckets);
	free(m);
}

size_t pstmt_map_count(const struct pstmt_map *m)
{
	return m ? m->count : 0;
}

static size_t slot_of(const struct pstmt_map *m, const char *name)
{
	return (size_t)fp_hash(name, strlen(name)) & (m->nbuckets - 1);
}

const struct stmt_info *pstmt_find(const struct pstmt_map *m, const char *name)
{
	if (!m)
		return NULL;
	for (struct pstmt *p = m->buckets[slot_of(m, name)]; p; p = p->next)
		if (strcmp(p->name, name) == 0)
			return &p->info;
	return NULL;
}

static void grow(struct pstmt_map *m)
{
	size_t nb = m->nbuckets * 2;
	struct pstmt **b = calloc(nb, sizeof(*b));
	if (!b)
		return; /* keep the old table: longer chains, still correct */
	struct pstmt **old = m->buckets;
	size_t oldn = m->nbuckets;
	m->buckets = b;
	m->nbuckets = nb;
	for (size_t i = 0; i < oldn; i++) {
		struct pstmt *p = old[i];
		while (p) {
			struct pstmt *next = p->next;
			size_t s = slot_of(m, p->name);
			p->next = b[s];
			b[s] = p;
			p = next;
		}
	}
	free(old);
}

bool pstmt_define(struct pstmt_map *m, const char *name, const struct stmt_info *info)
{
	size_t s = slot_of(m, name);
	for (struct pstmt *p = m->buckets[s]; p; p = p->next) {
		if (strcmp(p->name, name) == 0) {
			p->info = *info;
			return true;
		}
	}
	size_t len = strlen(name);
	struct pstmt *p = malloc(sizeof(*p) + len + 1);
	if (!p)
		return false;
	memcpy(p->name, name, len + 1);
	p->info = *info;
	p->next = m->buckets[s];
	m->buckets[s] = p;
	if (++m->count > m->nbuckets * 2)
		grow(m);
	return true;
}

bool pstmt_forget(struct pstmt_map *m, const char *name)
{
	struct pstmt **pp = &m->buckets[slot_of(m, name)];
	while (*pp) {
		if (strcmp((*pp)->name, name) == 0) {
			struct pstmt *p = *pp;
			*pp = p->next;
			free(p);
			m->count--;
			return true;
		}
		pp = &(*pp)->next;
	}
	return false;
}
