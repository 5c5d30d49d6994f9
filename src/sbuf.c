/* sbuf: socket I/O with pooled input buffers, direct sends and queued remainders. */
#include "sbuf.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "worker.h"

void sbuf_setup(struct worker *w, struct sbuf *sb, int fd, event_callback_fn read_cb,
		event_callback_fn write_cb, void *arg)
{
	sb->fd = fd;
	event_assign(&sb->ev_read, w->base, fd, EV_READ | EV_PERSIST, read_cb, arg);
	event_assign(&sb->ev_write, w->base, fd, EV_WRITE | EV_PERSIST, write_cb, arg);
	event_add(&sb->ev_read, NULL);
	sb->read_on = true;
	sb->write_on = false;
}

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

ssize_t sbuf_read(struct worker *w, struct sbuf *sb)
{
	if (!sbuf_get_inbuf(w, sb)) {
		errno = ENOMEM;
		return -1;
	}
	if (iobuf_free(&sb->in) < 512)
		iobuf_compact(&sb->in);
	if (iobuf_free(&sb->in) == 0)
		return -2; /* full: the owner must consume first */
	ssize_t n = recv(sb->fd, sb->in.data + sb->in.wpos, iobuf_free(&sb->in), 0);
	if (n > 0) {
		sb->in.wpos += (size_t)n;
		return n;
	}
	if (n == 0)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return -2;
	return -1;
}

static void sbuf_want_write(struct sbuf *sb, bool on)
{
	if (on && !sb->write_on) {
		event_add(&sb->ev_write, NULL);
		sb->write_on = true;
	} else if (!on && sb->write_on) {
		event_del(&sb->ev_write);
		sb->write_on = false;
	}
}

/* Send from p; returns bytes sent, or -1 on a broken connection. */
static ssize_t sbuf_raw_send(struct sbuf *sb, const void *p, size_t n)
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

bool sbuf_send(struct sbuf *sb, const void *p, size_t n)
{
	if (n == 0)
		return true;
	if (sb->fd < 0)
		return false;
	if (iobuf_avail(&sb->out) == 0) {
		ssize_t r = sbuf_raw_send(sb, p, n);
		if (r < 0)
			return false;
		if ((size_t)r == n)
			return true;
		p = (const char *)p + r;
		n -= (size_t)r;
	}
	if (!iobuf_append(&sb->out, p, n))
		return false;
	sbuf_want_write(sb, true);
	return true;
}

bool sbuf_flush(struct sbuf *sb)
{
	size_t n = iobuf_avail(&sb->out);
	if (n == 0) {
		sbuf_want_write(sb, false);
		return true;
	}
	if (sb->fd < 0)
		return false;
	ssize_t r = sbuf_raw_send(sb, sb->out.data + sb->out.rpos, n);
	if (r < 0)
		return false;
	sb->out.rpos += (size_t)r;
	if (iobuf_avail(&sb->out) == 0) {
		/* Drained: give large buffers back rather than keep them per connection. */
		if (sb->out.cap > SBUF_BUFSIZE)
			iobuf_release(&sb->out);
		else
			iobuf_reset(&sb->out);
		sbuf_want_write(sb, false);
	} else {
		sbuf_want_write(sb, true);
	}
	return true;
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
	}
}

void sbuf_kick(struct sbuf *sb)
{
	if (sb->fd >= 0)
		event_active(&sb->ev_read, EV_TIMEOUT, 0);
}

void sbuf_close(struct worker *w, struct sbuf *sb)
{
	if (sb->fd < 0)
		return;
	event_del(&sb->ev_read);
	event_del(&sb->ev_write);
	sb->read_on = sb->write_on = false;
	close(sb->fd);
	sb->fd = -1;
	sb->keep_in = false;
	iobuf_reset(&sb->in);
	sbuf_trim(w, sb);
	iobuf_release(&sb->in);
	iobuf_release(&sb->out);
}
