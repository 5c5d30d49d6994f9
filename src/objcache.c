/* objcache: equal-sized, line-aligned objects from blocks, with a free list. */
#include "objcache.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define OBJCACHE_DIRECT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OBJCACHE_DIRECT 1
#endif
#endif

/* About this many bytes per block: 21 clients or 23 servers. */
#define OBJCACHE_BLOCK 16384

struct objcache_block {
	struct objcache_block *next;
	/* the objects follow, from OBJCACHE_ALIGN bytes into the block */
};

void *cache_line_zalloc(size_t size)
{
	size = (size + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE; /* as aligned_alloc asks */
	void *p = aligned_alloc(CACHE_LINE, size);
	if (p)
		memset(p, 0, size);
	return p;
}

void objcache_init(struct objcache *oc, size_t size)
{
	memset(oc, 0, sizeof(*oc));
	if (size < sizeof(void *))
		size = sizeof(void *);
	oc->size = (size + OBJCACHE_ALIGN - 1) / OBJCACHE_ALIGN * OBJCACHE_ALIGN;
	oc->per = OBJCACHE_BLOCK / oc->size ? OBJCACHE_BLOCK / oc->size : 1;
}

#ifdef OBJCACHE_DIRECT

void *objcache_alloc(struct objcache *oc)
{
	void *p = cache_line_zalloc(oc->size);
	if (p)
		oc->n_total++;
	return p;
}

void objcache_free(struct objcache *oc, void *p)
{
	if (p) {
		free(p);
		oc->n_total--;
	}
}

void objcache_destroy(struct objcache *oc)
{
	oc->n_total = 0;
}

#else

/* Carve a new block into free objects. */
static bool objcache_grow(struct objcache *oc)
{
	struct objcache_block *b =
		aligned_alloc(OBJCACHE_ALIGN, OBJCACHE_ALIGN + oc->per * oc->size);
	if (!b)
		return false;
	b->next = oc->blocks;
	oc->blocks = b;
	char *objs = (char *)b + OBJCACHE_ALIGN;
	/* Linked last to first, so that they are handed out in address order. */
	for (size_t i = oc->per; i-- > 0;) {
		void *o = objs + i * oc->size;
		*(void **)o = oc->free;
		oc->free = o;
	}
	oc->n_total += oc->per;
	oc->n_free += oc->per;
	return true;
}

void *objcache_alloc(struct objcache *oc)
{
	if (!oc->free && !objcache_grow(oc))
		return NULL;
	void *p = oc->free;
	oc->free = *(void **)p;
	oc->n_free--;
	memset(p, 0, oc->size);
	return p;
}

void objcache_free(struct objcache *oc, void *p)
{
	if (!p)
		return;
	*(void **)p = oc->free;
	oc->free = p;
	oc->n_free++;
}

void objcache_destroy(struct objcache *oc)
{
	while (oc->blocks) {
		struct objcache_block *b = oc->blocks;
		oc->blocks = b->next;
		free(b);
	}
	oc->free = NULL;
	oc->n_total = oc->n_free = 0;
}

#endif
