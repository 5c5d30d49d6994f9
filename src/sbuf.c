/* sbuf: socket I/O with pooled input buffers, direct sends, queued remainders, and TLS. */
#include "sbuf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"
#include "tls.h"
#include "worker.h"

/* ---- the transports ---- */

static ssize_t plain_recv(struct sbuf *sb, void *buf, size_t n)
{
	ssize_t r = recv(sb->fd, buf, n, 0);
	if (r >= 0)
		return r;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return -2;
	return -1;
}

static ssize_t plain_send(struct sbuf *sb, const void *p, size_t n)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = send(sb->fd, (const char *)p + done, n - done, MSG_NOSIGNAL);
		if (r > 0) {
			done += (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		return -1;
	}
	return (ssize_t)done;
}

static void plain_close(struct sbuf *sb)
{
	close(sb->fd);
}

static ssize_t tls_recv(struct sbuf *sb, void *buf, size_t n)
{
	ssize_t r = tls_conn_recv(sb->tls, buf, n);
	if (r == -1)
		errno = EPROTO;
	return r;
}

static ssize_t tls_send(struct sbuf *sb, const void *p, size_t n)
{
	ssize_t r = tls_conn_send(sb->tls, p, n);
	if (r < 0)
		errno = EPROTO;
	return r;
}

static void tls_close(struct sbuf *sb)
{
	tls_conn_free(sb->tls);
	sb->tls = NULL;
	close(sb->fd);
}

static const struct sbuf_io plain_io = {plain_recv, plain_send, plain_close};
static const struct sbuf_io tls_io = {tls_recv, tls_send, tls_close};

static const struct sbuf_io *io_of(const struct sbuf *sb)
{
	return sb->io ? sb->io : &plain_io;
}

/* ---- events ---- */

void sbuf_setup(struct worker *w, struct sbuf *sb, int fd, event_callback_fn read_cb,
		event_callback_fn write_cb, void *arg)
{
	sb->fd = fd;
	sb->io = &plain_io;
	sb->tls = NULL;
	sb->tls_phase = SBUF_PLAIN;
	sb->preamble = 0;
	event_assign(&sb->ev_read, w->base, fd, EV_READ | EV_PERSIST, read_cb, arg);
	sb->ev_write = NULL;
	sb->write_cb = write_cb;
	event_add(&sb->ev_read, NULL);
	sb->read_on = true;
	sb->write_on = false;
}

/* false (errno ENOMEM) when the write event cannot be made: the connection must go. */
static bool sbuf_want_write(struct sbuf *sb, bool on)
{
	if (on && !sb->write_on) {
		if (!sb->ev_write) {
			sb->ev_write = event_new(event_get_base(&sb->ev_read), sb->fd,
						 EV_WRITE | EV_PERSIST, sb->write_cb,
						 event_get_callback_arg(&sb->ev_read));
			if (!sb->ev_write) {
				errno = ENOMEM;
				return false;
			}
		}
		event_add(sb->ev_write, NULL);
		sb->write_on = true;
	} else if (!on && sb->write_on) {
		event_del(sb->ev_write);
		sb->write_on = false;
	}
	return true;
}

/* Does the TLS session hold something only another read call will deliver? */
static bool tls_read_due(const struct sbuf *sb)
{
	return sb->tls && sb->tls_phase == SBUF_TLS_ON &&
	       (tls_conn_has_pending(sb->tls) || tls_conn_wants_write(sb->tls));
}

/* Run the read callback as if the socket were readable (epoll will not say so). */
static void sbuf_kick_read(struct sbuf *sb)
{
	if (sb->read_on && sb->fd >= 0)
		event_active(&sb->ev_read, EV_READ, 0);
}

/* The write event is wanted while there is something the socket must take. */
static bool sbuf_update_write(struct sbuf *sb)
{
	bool on;
	switch (sb->tls_phase) {
	case SBUF_TLS_PREAMBLE:
		on = true;
		break;
	case SBUF_TLS_ANSWER:
		on = false;
		break;
	case SBUF_TLS_HANDSHAKE:
		on = tls_conn_wants_write(sb->tls);
		break;
	default:
		on = iobuf_avail(&sb->out) > 0;
		if (sb->tls) {
			/* A send waiting for input is retried from the read path, not here. */
			if (tls_conn_wants_read(sb->tls))
				on = false;
			if (tls_conn_wants_write(sb->tls) && sb->read_on)
				on = true;
		}
		break;
	}
	return sbuf_want_write(sb, on);
}

/* ---- buffers ---- */

static bool sbuf_get_inbuf(struct worker *w, struct sbuf *sb)
{
	if (sb->in.data)
		return true;
	uint8_t *p = worker_buf_get(w);
	if (!p)
		return false;
	sb->in.data = p;
	sb->in.cap = SBUF_BUFSIZE;
	sb->in.rpos = sb->in.wpos = 0;
	return true;
}

void sbuf_trim(struct worker *w, struct sbuf *sb)
{
	if (!sb->in.data || iobuf_avail(&sb->in) || sb->keep_in)
		return;
	if (sb->in.cap == SBUF_BUFSIZE)
		worker_buf_put(w, sb->in.data);
	else
		free(sb->in.data);
	sb->in.data = NULL;
	sb->in.cap = sb->in.rpos = sb->in.wpos = 0;
}

static void out_consumed(struct sbuf *sb, size_t n)
{
	sb->out.rpos += n;
	if (iobuf_avail(&sb->out) == 0) {
		/* Drained: give large buffers back rather than keep them per connection. */
		if (sb->out.cap > SBUF_BUFSIZE)
			iobuf_release(&sb->out);
		else
			iobuf_reset(&sb->out);
	}
}

/* ---- TLS negotiation ---- */

/* Send the plain negotiation bytes at the head of `out`. */
static bool flush_preamble(struct sbuf *sb)
{
	ssize_t r = plain_send(sb, sb->out.data + sb->out.rpos, sb->preamble);
	if (r < 0)
		return false;
	out_consumed(sb, (size_t)r);
	sb->preamble -= (uint8_t)r;
	if (sb->preamble == 0)
		sb->tls_phase = sb->tls_next;
	return sbuf_update_write(sb);
}

static bool tls_start(struct sbuf *sb, struct tls_ctx *ctx, bool as_server, const char *host,
		      const void *preamble, size_t len)
{
	char err[256];
	if (sb->fd < 0 || sb->tls_phase != SBUF_PLAIN || sb->tls || !ctx)
		return false;
	/* Bytes already read arrived in plain text: they must not pass for encrypted ones. */
	if (iobuf_avail(&sb->in) || iobuf_avail(&sb->out)) {
		errno = EPROTO;
		return false;
	}
	struct tls_conn *tc = tls_conn_new(ctx, sb->fd, as_server, host, err, sizeof(err));
	if (!tc) {
		log_warning("cannot start TLS: %s", err);
		errno = EPROTO;
		return false;
	}
	if (!iobuf_append(&sb->out, preamble, len)) {
		tls_conn_free(tc);
		errno = ENOMEM;
		return false;
	}
	sb->tls = tc;
	sb->io = &tls_io;
	sb->preamble = (uint8_t)len;
	sb->tls_phase = SBUF_TLS_PREAMBLE;
	sb->tls_next = as_server ? SBUF_TLS_HANDSHAKE : SBUF_TLS_ANSWER;
	/* Most of the time the socket takes the preamble at once. */
	if (!sbuf_flush(sb))
		return false;
	return true;
}

bool sbuf_accept_tls(struct sbuf *sb, struct tls_ctx *ctx)
{
	return tls_start(sb, ctx, true, NULL, "S", 1);
}

bool sbuf_request_tls(struct sbuf *sb, struct tls_ctx *ctx, const char *host)
{
	uint8_t req[8];
	uint32_t code = PROTO_SSL_REQUEST;
	req[0] = 0, req[1] = 0, req[2] = 0, req[3] = 8;
	req[4] = (uint8_t)(code >> 24);
	req[5] = (uint8_t)(code >> 16);
	req[6] = (uint8_t)(code >> 8);
	req[7] = (uint8_t)code;
	return tls_start(sb, ctx, false, host, req, sizeof(req));
}

/* The handshake finished: release what the owner queued meanwhile. */
static bool tls_established(struct sbuf *sb)
{
	sb->tls_phase = SBUF_TLS_ON;
	if (tls_conn_has_pending(sb->tls))
		sbuf_kick_read(sb);
	return sbuf_flush(sb);
}

/* 1 done, 0 later, -1 failed. */
static int tls_step_handshake(struct sbuf *sb)
{
	int r = tls_conn_handshake(sb->tls);
	if (r < 0) {
		errno = EPROTO;
		return -1;
	}
	if (r == 0)
		return sbuf_update_write(sb) ? 0 : -1;
	return tls_established(sb) ? 1 : -1;
}

/* The server's answer to SSLRequest: like sbuf_read's results, or 1 to go on. */
static ssize_t tls_read_answer(struct sbuf *sb)
{
	char msg[160];
	uint8_t ch;
	/* One byte only: anything after it belongs to the handshake, never to plain text. */
	ssize_t r = recv(sb->fd, &ch, 1, 0);
	if (r == 0)
		return 0;
	if (r < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -2 : -1;
	if (ch == 'S') {
		sb->tls_phase = SBUF_TLS_HANDSHAKE;
		return 1;
	}
	if (ch == 'N' && tls_conn_may_fall_back(sb->tls)) {
		tls_conn_free(sb->tls);
		sb->tls = NULL;
		sb->io = &plain_io;
		sb->tls_phase = SBUF_PLAIN;
		return sbuf_flush(sb) ? 1 : -1;
	}
	if (ch == 'N')
		snprintf(msg, sizeof(msg),
			 "the server does not accept TLS connections and "
			 "server_tls_sslmode requires TLS");
	else
		snprintf(msg, sizeof(msg), "unexpected answer 0x%02x to the SSL request", ch);
	tls_conn_set_error(sb->tls, msg);
	errno = EPROTO;
	return -1;
}

/* Move the negotiation on from a read event: 1 once plain or encrypted, else like sbuf_read. */
static ssize_t tls_negotiate(struct sbuf *sb)
{
	for (;;) {
		switch (sb->tls_phase) {
		case SBUF_TLS_PREAMBLE:
			/* Readable before the preamble left: a reset socket shows up here. */
			if (!flush_preamble(sb))
				return -1;
			if (sb->tls_phase == SBUF_TLS_PREAMBLE)
				return -2;
			break;
		case SBUF_TLS_ANSWER: {
			ssize_t r = tls_read_answer(sb);
			if (r != 1)
				return r;
			break;
		}
		case SBUF_TLS_HANDSHAKE: {
			int h = tls_step_handshake(sb);
			if (h <= 0)
				return h < 0 ? -1 : -2;
			break;
		}
		default:
			return 1;
		}
	}
}

/* ---- reading and writing ---- */

ssize_t sbuf_read(struct worker *w, struct sbuf *sb)
{
	if (!sbuf_get_inbuf(w, sb)) {
		errno = ENOMEM;
		return -1;
	}
	if (sb->tls_phase != SBUF_PLAIN && sb->tls_phase != SBUF_TLS_ON) {
		ssize_t r = tls_negotiate(sb);
		if (r != 1)
			return r;
	}
	/* tls_phase first: it shares a cache line with fd and `in`, the pointer does not. */
	bool tls = sb->tls_phase != SBUF_PLAIN && sb->tls;
	/* A send that stopped for want of input can go on now. */
	if (tls && tls_conn_wants_read(sb->tls) && !sbuf_flush(sb))
		return -1;
	if (iobuf_free(&sb->in) < 512)
		iobuf_compact(&sb->in);
	if (iobuf_free(&sb->in) == 0) {
		if (tls_read_due(sb))
			sbuf_kick_read(sb);
		return -2; /* full: the owner must consume first */
	}
	ssize_t n = io_of(sb)->recv(sb, sb->in.data + sb->in.wpos, iobuf_free(&sb->in));
	if (tls) {
		if (!sbuf_update_write(sb))
			return -1;
		if (n > 0 && tls_conn_has_pending(sb->tls))
			sbuf_kick_read(sb);
	}
	if (n > 0)
		sb->in.wpos += (size_t)n;
	return n;
}

/* Is the owner's output held back while TLS is being negotiated? */
static bool output_held(const struct sbuf *sb)
{
	return sb->tls_phase != SBUF_PLAIN && sb->tls_phase != SBUF_TLS_ON;
}

bool sbuf_send(struct sbuf *sb, const void *p, size_t n)
{
	if (n == 0)
		return true;
	if (sb->fd < 0)
		return false;
	if (output_held(sb))
		return iobuf_append(&sb->out, p, n);
	if (iobuf_avail(&sb->out) == 0) {
		ssize_t r = io_of(sb)->send(sb, p, n);
		if (r < 0)
			return false;
		if ((size_t)r == n)
			return !sb->tls || sbuf_update_write(sb);
		p = (const char *)p + r;
		n -= (size_t)r;
	}
	if (!iobuf_append(&sb->out, p, n))
		return false;
	return sbuf_update_write(sb);
}

bool sbuf_flush(struct sbuf *sb)
{
	if (sb->fd < 0)
		return iobuf_avail(&sb->out) == 0;
	switch (sb->tls_phase) {
	case SBUF_TLS_PREAMBLE:
		if (!flush_preamble(sb))
			return false;
		/* The client speaks first in a handshake; the server's answer comes by read. */
		return true;
	case SBUF_TLS_ANSWER:
		return sbuf_update_write(sb);
	case SBUF_TLS_HANDSHAKE: {
		int h = tls_conn_handshake(sb->tls);
		if (h < 0) {
			errno = EPROTO;
			return false;
		}
		if (h == 0)
			return sbuf_update_write(sb);
		return tls_established(sb);
	}
	default:
		break;
	}
	/* Writable again: a TLS read that had to write first can be retried. */
	if (tls_read_due(sb) && tls_conn_wants_write(sb->tls))
		sbuf_kick_read(sb);
	size_t n = iobuf_avail(&sb->out);
	if (n == 0)
		return sbuf_update_write(sb);
	ssize_t r = io_of(sb)->send(sb, sb->out.data + sb->out.rpos, n);
	if (r < 0)
		return false;
	out_consumed(sb, (size_t)r);
	return sbuf_update_write(sb);
}

void sbuf_pause_read(struct sbuf *sb)
{
	if (sb->read_on) {
		event_del(&sb->ev_read);
		sb->read_on = false;
	}
}

void sbuf_resume_read(struct sbuf *sb)
{
	if (!sb->read_on && sb->fd >= 0) {
		event_add(&sb->ev_read, NULL);
		sb->read_on = true;
		if (tls_read_due(sb))
			sbuf_kick_read(sb);
	}
}

void sbuf_kick(struct sbuf *sb)
{
	if (sb->fd >= 0)
		event_active(&sb->ev_read, EV_TIMEOUT, 0);
}

void sbuf_free(struct sbuf *sb)
{
	if (sb->ev_write) {
		event_free(sb->ev_write);
		sb->ev_write = NULL;
	}
}

void sbuf_close(struct worker *w, struct sbuf *sb)
{
	if (sb->fd < 0)
		return;
	event_del(&sb->ev_read);
	if (sb->ev_write)
		event_del(sb->ev_write); /* freed by sbuf_free: this may be its callback */
	sb->read_on = sb->write_on = false;
	io_of(sb)->close(sb);
	sb->io = &plain_io;
	sb->tls_phase = SBUF_PLAIN;
	sb->fd = -1;
	sb->keep_in = false;
	iobuf_reset(&sb->in);
	sbuf_trim(w, sb);
	iobuf_release(&sb->in);
	iobuf_release(&sb->out);
}

/* ---- inspection ---- */

bool sbuf_is_tls(const struct sbuf *sb)
{
	return sb->tls && sb->tls_phase == SBUF_TLS_ON;
}

const char *sbuf_tls_version(const struct sbuf *sb)
{
	return sbuf_is_tls(sb) ? tls_conn_version(sb->tls) : NULL;
}

void sbuf_tls_describe(const struct sbuf *sb, char *buf, size_t len)
{
	if (!len)
		return;
	buf[0] = '\0';
	if (sbuf_is_tls(sb))
		tls_conn_describe(sb->tls, buf, len);
}

const char *sbuf_strerror(const struct sbuf *sb, int errnum)
{
	const char *e = sb->tls ? tls_conn_error(sb->tls) : NULL;
	return e ? e : strerror(errnum);
}
