/* fpcache: fingerprints memoized by exact statement text (see include/fpcache.h). */
#include "fpcache.h"

#include <stdlib.h>
#include <string.h>

struct fpc_slot {
	uint64_t hash; /* fp_hash of the text; 0 with len 0 while the slot is empty */
	uint32_t len;  /* text length */
	uint32_t cap;  /* bytes allocated at text */
	char *text;    /* a copy of the text, not NUL-terminated */
	struct fp_stmt st;
};

struct fp_cache {
	struct fpc_slot *slots; /* FPC_SLOTS, allocated on the first put */
	size_t bytes;
	uint64_t hits, misses;
};

struct fp_cache *fp_cache_new(void)
{
	return calloc(1, sizeof(struct fp_cache));
}

void fp_cache_free(struct fp_cache *c)
{
	if (!c)
		return;
	if (c->slots)
		for (size_t i = 0; i < FPC_SLOTS; i++)
			free(c->slots[i].text);
	free(c->slots);
	free(c);
}

static struct fpc_slot *slot_of(const struct fp_cache *c, uint64_t h)
{
	return &c->slots[(h ^ (h >> 32)) & (FPC_SLOTS - 1)];
}

bool fp_cache_get(struct fp_cache *c, const char *sql, size_t len, struct fp_stmt *st)
{
	if (!c->slots || len == 0 || len > FPC_MAX_TEXT) {
		c->misses++;
		return false;
	}
	uint64_t h = fp_hash(sql, len);
	const struct fpc_slot *s = slot_of(c, h);
	if (s->hash != h || s->len != len || memcmp(s->text, sql, len) != 0) {
		c->misses++;
		return false;
	}
	*st = s->st;
	c->hits++;
	return true;
}

void fp_cache_put(struct fp_cache *c, const char *sql, size_t len, const struct fp_stmt *st)
{
	if (len == 0 || len > FPC_MAX_TEXT)
		return;
	if (!c->slots) {
		c->slots = calloc(FPC_SLOTS, sizeof(*c->slots));
		if (!c->slots)
			return;
		c->bytes += FPC_SLOTS * sizeof(*c->slots);
	}
	uint64_t h = fp_hash(sql, len);
	struct fpc_slot *s = slot_of(c, h);
	if (s->cap < len) {
		/* Room in steps of 64 bytes, so that texts of similar length reuse the slot. */
		uint32_t cap = (uint32_t)((len + 63) & ~(size_t)63);
		char *t = realloc(s->text, cap);
		if (!t)
			return;
		c->bytes += cap - s->cap;
		s->text = t;
		s->cap = cap;
	}
	memcpy(s->text, sql, len);
	s->hash = h;
	s->len = (uint32_t)len;
	s->st = *st;
}

size_t fp_cache_bytes(const struct fp_cache *c)
{
	return sizeof(*c) + c->bytes;
}

void fp_cache_counts(const struct fp_cache *c, uint64_t *hits, uint64_t *misses)
{
	*hits = c->hits;
	*misses = c->misses;
}
