/* iobuf: a growable byte buffer with a read and a write position, used for socket I/O. */
#ifndef PGT_IOBUF_H
#define PGT_IOBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct iobuf {
	uint8_t *data;
	size_t rpos; /* first unread byte */
	size_t wpos; /* first free byte */
	size_t cap;
	bool failed; /* an append ran out of memory (pkt_ok reports and clears it) */
};

static inline size_t iobuf_avail(const struct iobuf *b)
{
	return b->wpos - b->rpos;
}

static inline size_t iobuf_free(const struct iobuf *b)
{
	return b->cap - b->wpos;
}

static inline void iobuf_reset(struct iobuf *b)
{
	b->rpos = b->wpos = 0;
}

/* Move unread bytes to the front. */
static inline void iobuf_compact(struct iobuf *b)
{
	if (b->rpos == 0)
		return;
	size_t n = iobuf_avail(b);
	if (n)
		memmove(b->data, b->data + b->rpos, n);
	b->rpos = 0;
	b->wpos = n;
}

/* Make room for n more bytes after wpos, compacting or growing. */
bool iobuf_reserve(struct iobuf *b, size_t n) __attribute__((warn_unused_result));
bool iobuf_append(struct iobuf *b, const void *p, size_t n) __attribute__((warn_unused_result));
void iobuf_release(struct iobuf *b);

#endif
