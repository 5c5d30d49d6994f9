/* iobuf: growth and release of the byte buffers behind socket I/O and message building. */
#include "iobuf.h"

bool iobuf_reserve(struct iobuf *b, size_t n)
{
	if (iobuf_free(b) >= n)
		return true;
	iobuf_compact(b);
	if (iobuf_free(b) >= n)
		return true;
	size_t need = b->wpos + n;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	uint8_t *p = realloc(b->data, cap);
	if (!p) {
		b->failed = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

bool iobuf_append(struct iobuf *b, const void *p, size_t n)
{
	if (n == 0) /* b->data may be NULL: no pointer arithmetic on it, no memcpy from NULL */
		return true;
	if (!iobuf_reserve(b, n))
		return false;
	memcpy(b->data + b->wpos, p, n);
	b->wpos += n;
	return true;
}

void iobuf_release(struct iobuf *b)
{
	free(b->data);
	b->data = NULL;
	b->rpos = b->wpos = b->cap = 0;
	b->failed = false;
}
