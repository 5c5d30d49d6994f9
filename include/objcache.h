/*
 * objcache: a free list of equal-sized objects that start on cache lines, carved from blocks
 * (what PgBouncer's slabs do). Each worker keeps one for its clients and one for its servers:
 * no malloc per connection, no allocator header or alignment padding per object, and every
 * object starts on a line, which the layouts in client.h and server.h count on. Freed objects
 * stay for reuse until the cache is destroyed.
 *
 * Built with AddressSanitizer, every object is an allocation of its own instead, so that a
 * use after free is still reported.
 */
#ifndef PGT_OBJCACHE_H
#define PGT_OBJCACHE_H

#include <stdalign.h>
#include <stddef.h>

/* x86-64's cache line: the unit the hot structures lay their fields out in. */
#define CACHE_LINE 64
#define OBJCACHE_ALIGN CACHE_LINE

/* One zeroed object of size bytes on a cache line, or NULL; free() it. For the types laid out
 * with alignas(CACHE_LINE) that do not come from an objcache. */
void *cache_line_zalloc(size_t size);

struct objcache_block;

struct objcache {
	size_t size;    /* object size, a multiple of OBJCACHE_ALIGN */
	size_t per;     /* objects per block */
	void *free;     /* free objects, linked through their first word */
	size_t n_total; /* objects carved so far (or, with ASan, allocated and not freed) */
	size_t n_free;
	struct objcache_block *blocks;
};

/* size: the object's (rounded up to OBJCACHE_ALIGN). */
void objcache_init(struct objcache *oc, size_t size);

/* A zeroed object; NULL when out of memory. */
void *objcache_alloc(struct objcache *oc);

void objcache_free(struct objcache *oc, void *p);

/* Free the blocks: every object of the cache must have been freed to it before. */
void objcache_destroy(struct objcache *oc);

#endif
