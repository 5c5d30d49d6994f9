/* prepared: shared prepared statements, clients' names for them, and servers' LRU sets. */
#include "prepared.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "fingerprint.h"

/* ---- the shared registry ---- */

struct pstmt_shared *pstmt_shared_get(struct pstmt_registry *reg, const uint8_t *body,
				      size_t len)
{
	uint64_t key = fp_hash(body, len);
	if (!reg->buckets) {
		reg->nbuckets = 256;
		reg->buckets = calloc(reg->nbuckets, sizeof(*reg->buckets));
		if (!reg->buckets)
			return NULL;
	}
	size_t slot = (size_t)key & (reg->nbuckets - 1);
	for (struct pstmt_shared *p = reg->buckets[slot]; p; p = p->next) {
		if (p->key == key && p->body_len == len && memcmp(p->body, body, len) == 0) {
			p->refs++;
			return p;
		}
	}
	struct pstmt_shared *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->body = malloc(len ? len : 1);
	if (!p->body) {
		free(p);
		return NULL;
	}
	memcpy(p->body, body, len);
	p->body_len = len;
	p->key = key;
	p->id = ++reg->next_id;
	p->refs = 1;
	snprintf(p->name, sizeof(p->name), "PGT_%u", p->id);
	p->next = reg->buckets[slot];
	reg->buckets[slot] = p;
	reg->count++;
	return p;
}

void pstmt_shared_put(struct pstmt_registry *reg, struct pstmt_shared *ps)
{
	if (!ps || --ps->refs > 0)
		return;
	/* Servers may still hold PGT_<id>; ids are never reused, and LRU eviction clears it. */
	struct pstmt_shared **pp = &reg->buckets[(size_t)ps->key & (reg->nbuckets - 1)];
	while (*pp && *pp != ps)
		pp = &(*pp)->next;
	if (*pp)
		*pp = ps->next;
	reg->count--;
	free(ps->body);
	free(ps);
}

bool pstmt_shared_renew(struct pstmt_registry *reg, uint32_t id)
{
	for (size_t i = 0; i < reg->nbuckets; i++) {
		for (struct pstmt_shared *p = reg->buckets[i]; p; p = p->next) {
			if (p->id == id) {
				p->id = ++reg->next_id;
				snprintf(p->name, sizeof(p->name), "PGT_%u", p->id);
				return true;
			}
		}
	}
	return false;
}

void pstmt_registry_free(struct pstmt_registry *reg)
{
	for (size_t i = 0; i < reg->nbuckets; i++) {
		struct pstmt_shared *p = reg->buckets[i];
		while (p) {
			struct pstmt_shared *next = p->next;
			free(p->body);
			free(p);
			p = next;
		}
	}
	free(reg->buckets);
	memset(reg, 0, sizeof(*reg));
}

/* ---- a client's names ---- */

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

void pstmt_forget_all(struct pstmt_map *m, struct pstmt_registry *reg)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct pstmt *p = m->buckets[i];
		while (p) {
			struct pstmt *next = p->next;
			if (reg)
				pstmt_shared_put(reg, p->info.shared);
			free(p);
			p = next;
		}
		m->buckets[i] = NULL;
	}
	m->count = 0;
}

void pstmt_map_free(struct pstmt_map *m, struct pstmt_registry *reg)
{
	if (!m)
		return;
	pstmt_forget_all(m, reg);
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
	size_t len = strlen(name);
	struct pstmt *p = malloc(sizeof(*p) + len + 1);
	if (!p)
		return false;
	memcpy(p->name, name, len + 1);
	p->info = *info;
	size_t s = slot_of(m, name);
	p->next = m->buckets[s];
	m->buckets[s] = p;
	if (++m->count > m->nbuckets * 2)
		grow(m);
	return true;
}

bool pstmt_forget(struct pstmt_map *m, struct pstmt_registry *reg, const char *name)
{
	if (!m)
		return false;
	struct pstmt **pp = &m->buckets[slot_of(m, name)];
	while (*pp) {
		if (strcmp((*pp)->name, name) == 0) {
			struct pstmt *p = *pp;
			*pp = p->next;
			if (reg)
				pstmt_shared_put(reg, p->info.shared);
			free(p);
			m->count--;
			return true;
		}
		pp = &(*pp)->next;
	}
	return false;
}

/* ---- what a server holds ---- */

struct sp_node {
	struct sp_node *chain;
	struct list lru;
	uint32_t id;
};

static struct sp_node **sp_slot(struct server_pstmts *sp, uint32_t id)
{
	return &sp->buckets[(id * 2654435761u) & (sp->nbuckets - 1)];
}

static struct sp_node *sp_find(struct server_pstmts *sp, uint32_t id)
{
	if (!sp->nbuckets)
		return NULL;
	for (struct sp_node *n = *sp_slot(sp, id); n; n = n->chain)
		if (n->id == id)
			return n;
	return NULL;
}

bool server_pstmts_has(struct server_pstmts *sp, uint32_t id, bool touch)
{
	struct sp_node *n = sp_find(sp, id);
	if (n && touch) {
		list_del(&n->lru);
		list_append(&sp->lru, &n->lru);
	}
	return n != NULL;
}

bool server_pstmts_add(struct server_pstmts *sp, uint32_t id)
{
	if (!sp->nbuckets) {
		sp->nbuckets = 64;
		sp->buckets = calloc(sp->nbuckets, sizeof(*sp->buckets));
		if (!sp->buckets) {
			sp->nbuckets = 0;
			return false;
		}
		list_init(&sp->lru);
	}
	if (sp_find(sp, id))
		return true;
	struct sp_node *n = calloc(1, sizeof(*n));
	if (!n)
		return false;
	n->id = id;
	struct sp_node **slot = sp_slot(sp, id);
	n->chain = *slot;
	*slot = n;
	list_append(&sp->lru, &n->lru);
	sp->count++;
	return true;
}

void server_pstmts_del(struct server_pstmts *sp, uint32_t id)
{
	if (!sp->nbuckets)
		return;
	struct sp_node **pp = sp_slot(sp, id);
	while (*pp) {
		if ((*pp)->id == id) {
			struct sp_node *n = *pp;
			*pp = n->chain;
			list_del(&n->lru);
			free(n);
			sp->count--;
			return;
		}
		pp = &(*pp)->chain;
	}
}

uint32_t server_pstmts_oldest(const struct server_pstmts *sp)
{
	if (!sp->nbuckets || list_empty(&sp->lru))
		return 0;
	return container_of(sp->lru.next, struct sp_node, lru)->id;
}

void server_pstmts_free(struct server_pstmts *sp)
{
	for (size_t i = 0; i < sp->nbuckets; i++) {
		struct sp_node *n = sp->buckets[i];
		while (n) {
			struct sp_node *next = n->chain;
			free(n);
			n = next;
		}
	}
	free(sp->buckets);
	memset(sp, 0, sizeof(*sp));
}
