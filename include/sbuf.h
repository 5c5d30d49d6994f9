/*
 * sbuf: one connection's socket, its libevent events and its input/output buffers.
 *
 * Reads land in `in`; the owner parses whole messages out of it. Writes go straight to the
 * socket when nothing is queued; only what the kernel does not take is copied to `out` and
 * sent when the socket turns writable. The read event stays added for the connection's life
 * (no epoll_ctl per round trip); the write event is added only while `out` is not empty.
 * Input buffers of idle connections go back to the worker's free list, so an idle client
 * holds no buffer memory.
 *
 * TLS sits behind a recv/send/close table (struct sbuf_io): once a connection is encrypted,
 * the same sbuf_read/sbuf_send/sbuf_flush move plaintext and the owner's protocol code does
 * not change. sbuf also runs PostgreSQL's TLS negotiation (SSLRequest, the one-byte answer,
 * the handshake) from the connection's own events; whatever the owner sends meanwhile waits
 * in `out` until the session is up. Decrypted bytes OpenSSL still holds do not wake epoll,
 * so sbuf re-activates the read event itself (with EV_READ) while reading is on.
 */
#ifndef PGT_SBUF_H
#define PGT_SBUF_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdbool.h>
#include <sys/types.h>

#include "iobuf.h"

struct worker;
struct sbuf;
struct tls_ctx;
struct tls_conn;

/* Size of the pooled I/O buffers. */
#define SBUF_BUFSIZE 16384
/* Above this much queued output, stop reading from the peer that produces it. */
#define SBUF_HIGH_WATER (256 * 1024)

/* How bytes cross the socket: plain system calls, or through a TLS session. */
struct sbuf_io {
	/* >0 bytes read, 0 at end of file, -1 on error, -2 nothing available yet. */
	ssize_t (*recv)(struct sbuf *sb, void *buf, size_t n);
	/* Bytes taken (0 when the socket is full), or -1 on a broken connection. */
	ssize_t (*send)(struct sbuf *sb, const void *buf, size_t n);
	/* Release the transport and close the socket. */
	void (*close)(struct sbuf *sb);
};

/* Where a connection stands with TLS. */
enum sbuf_tls_phase {
	SBUF_PLAIN = 0,     /* no TLS */
	SBUF_TLS_PREAMBLE,  /* sending the plain negotiation bytes ('S' or an SSLRequest) */
	SBUF_TLS_ANSWER,    /* SSLRequest sent to a server: waiting for 'S' or 'N' */
	SBUF_TLS_HANDSHAKE, /* handshake running; the owner's output waits */
	SBUF_TLS_ON,        /* encrypted */
};

/* The read event first: it starts on a cache line when its owner's fields before it fill
 * whole lines (client.h), so the event loop's reads of it take two lines, not three. */
struct sbuf {
	struct event ev_read;
	int fd;
	bool read_on;      /* ev_read is added */
	bool write_on;     /* ev_write is added */
	bool keep_in;      /* keep the input buffer when empty (server connections) */
	uint8_t tls_phase; /* enum sbuf_tls_phase */
	uint8_t tls_next;  /* the phase after the preamble */
	uint8_t preamble;  /* plain bytes at the head of `out` still to send */
	const struct sbuf_io *io;
	struct iobuf in;
	struct iobuf out;
	struct tls_conn *tls; /* from the negotiation on, else NULL */
	/* Made the first time output has to wait for the socket, which most connections never
	 * do: 128 bytes less per idle client. */
	struct event *ev_write;
	event_callback_fn write_cb;
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

/* Delete the events, close the socket (after close_notify on TLS), free the buffers. */
void sbuf_close(struct worker *w, struct sbuf *sb);

/* After sbuf_close, outside the sbuf's callbacks: free what remains (the write event). */
void sbuf_free(struct sbuf *sb);

/*
 * A client's SSLRequest was just read: answer 'S' and run the server side of the handshake.
 * false (nothing sent) when the input buffer still holds bytes, which arrived in plain text
 * after the request and must not be taken as if they had been encrypted, or when the
 * session cannot be created.
 */
bool sbuf_accept_tls(struct sbuf *sb, struct tls_ctx *ctx) __attribute__((warn_unused_result));

/*
 * A fresh connection to PostgreSQL: send an SSLRequest, then on 'S' run the handshake
 * (checking the certificate against host for verify-full); on 'N' go on in plain text when
 * ctx's mode allows it, else fail the connection. Call before sending the startup packet.
 */
bool sbuf_request_tls(struct sbuf *sb, struct tls_ctx *ctx, const char *host)
	__attribute__((warn_unused_result));

/* Is the connection encrypted (handshake done)? */
bool sbuf_is_tls(const struct sbuf *sb);

/* "TLSv1.3" etc. when encrypted, else NULL. */
const char *sbuf_tls_version(const struct sbuf *sb);

/* For SHOW CLIENTS/SERVERS: "TLSv1.3/TLS_AES_256_GCM_SHA384", or "" when plain. */
void sbuf_tls_describe(const struct sbuf *sb, char *buf, size_t len);

/* Why the connection failed: the TLS error when there is one, else strerror(errnum). */
const char *sbuf_strerror(const struct sbuf *sb, int errnum);

#endif
