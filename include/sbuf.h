/*
 * sbuf: one connection's socket, its libevent events and its input/output buffers.
 *
 * Reads land in `in`; the owner parses whole messages out of it. Writes go straight to the
 * socket when nothing is queued; only what the kernel does not take is copied to `out` and
 * sent when the socket turns writable. The read event stays added for the connection's life
 * (no epoll_ctl per round trip); the write event is added only while `out` is not empty.
 * Input buffers of idle connections go back to the worker's free list, so an idle client
 * holds no buffer memory.
 */
#ifndef PGT_SBUF_H
#define PGT_SBUF_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdbool.h>
#include <sys/types.h>

#include "iobuf.h"

struct worker;

/* Size of the pooled I/O buffers. */
#define SBUF_BUFSIZE 16384
/* Above this much queued output, stop reading from the peer that produces it. */
#define SBUF_HIGH_WATER (256 * 1024)

struct sbuf {
	int fd;
	bool read_on;  /* ev_read is added */
	bool write_on; /* ev_write is added */
	bool keep_in;  /* keep the input buffer when empty (server connections) */
	struct event ev_read;
	struct event ev_write;
	struct iobuf in;
	struct iobuf out;
};

/* Set up events for fd; the read event is added at once. */
void sbuf_setup(struct worker *w, struct sbuf *sb, int fd, event_callback_fn read_cb,
		event_callback_fn write_cb, void *arg);

/* Read into sb->in: >0 bytes read, 0 at end of file, -1 on error (errno set), -2 nothing yet. */
ssize_t sbuf_read(struct worker *w, struct sbuf *sb);

/* Send n bytes, queueing what the socket does not take. false on a broken connection. */
bool sbuf_send(struct sbuf *sb, const void *p, size_t n) __attribute__((warn_unused_result));

/* Try to send what is queued. false on a broken connection. */
bool sbuf_flush(struct sbuf *sb) __attribute__((warn_unused_result));

static inline size_t sbuf_queued(const struct sbuf *sb)
{
	return iobuf_avail(&sb->out);
}

void sbuf_pause_read(struct sbuf *sb);
void sbuf_resume_read(struct sbuf *sb);

/* Drop the input buffer back to the worker's free list when it holds nothing. */
void sbuf_trim(struct worker *w, struct sbuf *sb);

/* Schedule the read callback without reading (what == EV_TIMEOUT), to process buffered input. */
void sbuf_kick(struct sbuf *sb);

/* Delete the events, close the socket, free the buffers. */
void sbuf_close(struct worker *w, struct sbuf *sb);

#endif
