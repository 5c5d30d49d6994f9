/* fuzz_net.h: what the protocol fuzzers share: a worker, a client socketpair, a fake PostgreSQL. */
#ifndef PGT_FUZZ_NET_H
#define PGT_FUZZ_NET_H

/*
 * Each input gets a fresh worker (so a crash reproduces from that input alone) whose only
 * database is a unix socket this file listens on: server connections pgtally opens land on a
 * fake PostgreSQL here, which either answers what it is sent with canned replies or writes the
 * fuzz bytes. The client side is one end of a socketpair handed to client_accept(). The event
 * loop runs with EVLOOP_NONBLOCK until neither side moves any more bytes. worker_free() then
 * closes everything, so a leak on any path is an ASan report.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "client.h"
#include "config.h"
#include "log.h"
#include "proto.h"
#include "server.h"
#include "userlist.h"
#include "worker.h"

#define FZ_PG_BUF (256 * 1024)
#define FZ_MAX_ROUNDS 400

struct fz {
	struct config *cfg;
	struct worker *w;
	int cl;         /* our end of the client's socketpair */
	int pg;         /* the server connection pgtally opened to us, or -1 */
	bool pg_answer; /* reply to what pgtally sends (else stay silent) */
	bool pg_login;  /* answer the startup packet with a successful login */
	bool pg_started;
	bool pg_skip;   /* extended protocol after an error: skip to Sync */
	bool pg_copy;   /* COPY FROM STDIN running */
	char pg_txn;    /* transaction status we report */
	size_t pg_len;
	size_t moved; /* bytes our ends sent or received: progress */
	uint8_t pg_buf[FZ_PG_BUF];
};

/* The fake server's directory and listening socket live as long as the process. */
static char fz_dir[64];
static int fz_listen = -1;

static inline void fz_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		abort();
}

/* The socket and its directory go when the fuzzer exits normally. */
static void fz_cleanup(void)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/.s.PGSQL.5432", fz_dir);
	unlink(path);
	rmdir(fz_dir);
}

static inline void fz_init_once(void)
{
	if (fz_listen >= 0)
		return;
	/* Quiet, but every message still formatted: the log paths get fuzzed too. FZ_VERBOSE=1
	 * shows them when replaying a crash. */
	log_setup(NULL, getenv("FZ_VERBOSE") != NULL, NULL, LOG_LVL_NOISE);
	strcpy(fz_dir, "/tmp/pgtfz.XXXXXX");
	if (!mkdtemp(fz_dir))
		abort();
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/.s.PGSQL.5432", fz_dir);
	fz_listen = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fz_listen < 0 || bind(fz_listen, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    listen(fz_listen, 64) < 0)
		abort();
	fz_nonblock(fz_listen);
	atexit(fz_cleanup);
}

/*
 * A worker on a config built from extra_settings (lines for the [pgtally] section) and a
 * client on a socketpair. userlist_text may be NULL.
 */
static inline struct fz *fz_start(const char *extra_settings, const char *userlist_text)
{
	char ini[2048];
	fz_init_once();
	struct fz *f = calloc(1, sizeof(*f));
	if (!f)
		abort();
	f->pg = -1;
	f->pg_txn = 'I';
	int n = snprintf(ini, sizeof(ini),
			 "[databases]\n"
			 "db = host=%s port=5432\n"
			 "* = host=%s port=5432\n"
			 "[pgtally]\n"
			 "listen_addr =\n"
			 "unix_socket_dir =\n"
			 "admin_users = fuzz\n"
			 "stats_users = stats\n"
			 "default_pool_size = 2\n"
			 "max_client_conn = 10\n"
			 "%s\n",
			 fz_dir, fz_dir, extra_settings);
	if (n < 0 || (size_t)n >= sizeof(ini))
		abort();
	struct config_problems probs = {0};
	f->cfg = config_load_string(ini, (size_t)n, "fuzz.ini", &probs);
	config_problems_free(&probs);
	if (!f->cfg)
		abort();
	f->w = worker_create(f->cfg);
	if (!f->w)
		abort();
	if (userlist_text) {
		char err[128];
		f->w->users_file = userlist_parse(userlist_text, strlen(userlist_text), "fuzz",
						  err, sizeof(err));
		if (!f->w->users_file)
			abort();
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		abort();
	fz_nonblock(sv[0]);
	fz_nonblock(sv[1]);
	struct sockaddr_un peer = {.sun_family = AF_UNIX};
	client_accept(f->w, sv[0], (struct sockaddr *)&peer, sizeof(peer), true);
	f->cl = sv[1];
	return f;
}

static inline void fz_pg_send(struct fz *f, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (f->pg >= 0 && n > 0) {
		ssize_t r = send(f->pg, b, n, MSG_NOSIGNAL);
		if (r > 0) {
			b += r;
			n -= (size_t)r;
			f->moved += (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* pgtally must read first: let it. */
			event_base_loop(f->w->base, EVLOOP_NONBLOCK);
			continue;
		}
		close(f->pg);
		f->pg = -1;
	}
}

/* Append one backend message to out. */
static inline size_t fz_msg(uint8_t *out, char type, const void *body, size_t len)
{
	uint32_t l = (uint32_t)len + 4;
	out[0] = (uint8_t)type;
	out[1] = (uint8_t)(l >> 24);
	out[2] = (uint8_t)(l >> 16);
	out[3] = (uint8_t)(l >> 8);
	out[4] = (uint8_t)l;
	if (len)
		memcpy(out + 5, body, len);
	return len + 5;
}

static inline void fz_pg_reply(struct fz *f, char type, const void *body, size_t len)
{
	uint8_t buf[256];
	if (len + 5 > sizeof(buf))
		abort();
	fz_pg_send(f, buf, fz_msg(buf, type, body, len));
}

static inline void fz_pg_ready(struct fz *f)
{
	fz_pg_reply(f, 'Z', &f->pg_txn, 1);
}

static inline void fz_pg_error(struct fz *f)
{
	static const char err[] = "SERROR\0C42000\0Mfuzz error\0";
	fz_pg_reply(f, 'E', err, sizeof(err));
	if (f->pg_txn == 'T')
		f->pg_txn = 'E';
}

/* What a real server says after the startup packet when the password is not asked for. */
static inline void fz_pg_login(struct fz *f)
{
	static const uint8_t ok[4] = {0, 0, 0, 0};
	static const char p1[] = "client_encoding\0UTF8";
	static const char p2[] = "DateStyle\0ISO, MDY";
	static const char p3[] = "TimeZone\0UTC";
	static const char p4[] = "standard_conforming_strings\0on";
	static const char p5[] = "server_version\0" "15.0";
	static const uint8_t key[8] = {0, 0, 0x30, 0x39, 1, 2, 3, 4};
	fz_pg_reply(f, 'R', ok, sizeof(ok));
	fz_pg_reply(f, 'S', p1, sizeof(p1));
	fz_pg_reply(f, 'S', p2, sizeof(p2));
	fz_pg_reply(f, 'S', p3, sizeof(p3));
	fz_pg_reply(f, 'S', p4, sizeof(p4));
	fz_pg_reply(f, 'S', p5, sizeof(p5));
	fz_pg_reply(f, 'K', key, sizeof(key));
	fz_pg_ready(f);
}

static inline bool fz_starts(const uint8_t *body, size_t len, const char *word)
{
	size_t n = strlen(word);
	return len >= n && strncasecmp((const char *)body, word, n) == 0;
}

static inline bool fz_contains(const uint8_t *body, size_t len, const char *word)
{
	return memmem(body, len, word, strlen(word)) != NULL;
}

/* Canned answers, roughly what PostgreSQL would say; "ERR" in a statement makes it fail. */
static inline void fz_pg_answer(struct fz *f, uint8_t type, const uint8_t *body, size_t len)
{
	static const char sel[] = "SELECT 1";
	static const uint8_t row[] = {0, 1, 0, 0, 0, 1, '1'};
	static const uint8_t rowdesc[] = {0, 1, 'x', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 23, 0, 4,
					  0xff, 0xff, 0xff, 0xff, 0, 0};
	static const uint8_t no_params[] = {0, 0};
	static const uint8_t copy_in[] = {0, 0, 0};

	if (getenv("FZ_VERBOSE"))
		fprintf(stderr, "fake server got %c (%zu bytes)\n", type, len);
	if (f->pg_skip && type != 'S')
		return;
	switch (type) {
	case 'Q':
		if (len <= 1) {
			fz_pg_reply(f, 'I', NULL, 0);
		} else if (fz_contains(body, len, "ERR")) {
			fz_pg_error(f);
		} else if (fz_starts(body, len, "COPY") && fz_contains(body, len, "STDIN")) {
			fz_pg_reply(f, 'G', copy_in, sizeof(copy_in));
			f->pg_copy = true;
			return; /* ReadyForQuery after CopyDone / CopyFail */
		} else if (fz_starts(body, len, "COPY")) {
			fz_pg_reply(f, 'H', copy_in, sizeof(copy_in));
			fz_pg_reply(f, 'd', "1\n", 2);
			fz_pg_reply(f, 'c', NULL, 0);
			fz_pg_reply(f, 'C', "COPY 1", 7);
		} else {
			if (fz_starts(body, len, "BEGIN"))
				f->pg_txn = 'T';
			else if (fz_starts(body, len, "COMMIT") ||
				 fz_starts(body, len, "ROLLBACK") || fz_starts(body, len, "END"))
				f->pg_txn = 'I';
			fz_pg_reply(f, 'T', rowdesc, sizeof(rowdesc));
			fz_pg_reply(f, 'D', row, sizeof(row));
			fz_pg_reply(f, 'C', sel, sizeof(sel));
		}
		fz_pg_ready(f);
		break;
	case 'P':
		if (fz_contains(body, len, "ERR")) {
			fz_pg_error(f);
			f->pg_skip = true;
		} else {
			fz_pg_reply(f, '1', NULL, 0);
		}
		break;
	case 'B':
		fz_pg_reply(f, '2', NULL, 0);
		break;
	case 'D':
		if (len && body[0] == 'S')
			fz_pg_reply(f, 't', no_params, sizeof(no_params));
		fz_pg_reply(f, 'T', rowdesc, sizeof(rowdesc));
		break;
	case 'E':
		fz_pg_reply(f, 'D', row, sizeof(row));
		fz_pg_reply(f, 'C', sel, sizeof(sel));
		break;
	case 'C':
		fz_pg_reply(f, '3', NULL, 0);
		break;
	case 'S':
		f->pg_skip = false;
		fz_pg_ready(f);
		break;
	case 'F':
		fz_pg_reply(f, 'V', "\xff\xff\xff\xff", 4);
		fz_pg_ready(f);
		break;
	case 'c':
		if (f->pg_copy) {
			f->pg_copy = false;
			fz_pg_reply(f, 'C', "COPY 0", 7);
			fz_pg_ready(f);
		}
		break;
	case 'f':
		if (f->pg_copy) {
			f->pg_copy = false;
			fz_pg_error(f);
			fz_pg_ready(f);
		}
		break;
	case 'X':
		close(f->pg);
		f->pg = -1;
		break;
	default: /* H, d */
		break;
	}
}

/* Parse what pgtally sent us as a server; answer whole messages when asked to. */
static inline void fz_pg_consume(struct fz *f)
{
	size_t off = 0;
	while (f->pg >= 0) {
		uint8_t *p = f->pg_buf + off;
		size_t avail = f->pg_len - off;
		if (!f->pg_started) {
			if (avail < 4)
				break;
			uint32_t l = proto_be32(p);
			if (l < 8 || l > 10000)
				abort(); /* pgtally never sends such a startup packet */
			if (avail < l)
				break;
			off += l;
			f->pg_started = true;
			if (f->pg_login)
				fz_pg_login(f);
			continue;
		}
		if (avail < 5)
			break;
		uint32_t l = proto_be32(p + 1);
		if (l < 4)
			abort(); /* pgtally framed a message wrongly */
		if (l + 1 > FZ_PG_BUF) {
			/* Larger than we keep (a big COPY row): drop the connection. */
			close(f->pg);
			f->pg = -1;
			break;
		}
		if (avail < (size_t)l + 1)
			break;
		off += (size_t)l + 1;
		if (f->pg_answer)
			fz_pg_answer(f, p[0], p + 5, l - 4);
	}
	if (f->pg < 0) {
		f->pg_len = 0;
		return;
	}
	memmove(f->pg_buf, f->pg_buf + off, f->pg_len - off);
	f->pg_len -= off;
}

/* One round of the fake server: accept a new connection, read and answer. */
static inline void fz_pg_step(struct fz *f)
{
	if (f->pg < 0) {
		int fd = accept(fz_listen, NULL, NULL);
		if (fd >= 0) {
			fz_nonblock(fd);
			f->pg = fd;
			f->pg_started = f->pg_skip = f->pg_copy = false;
			f->pg_txn = 'I';
			f->pg_len = 0;
			f->moved++;
		}
	}
	while (f->pg >= 0 && f->pg_len < FZ_PG_BUF) {
		ssize_t r = recv(f->pg, f->pg_buf + f->pg_len, FZ_PG_BUF - f->pg_len, 0);
		if (r > 0) {
			f->pg_len += (size_t)r;
			f->moved += (size_t)r;
			fz_pg_consume(f);
			continue;
		}
		if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			/* pgtally closed the server connection: the next one may come. */
			close(f->pg);
			f->pg = -1;
			f->moved++;
		}
		break;
	}
}

/* Read and drop what pgtally sends the client. */
static inline void fz_client_drain(struct fz *f)
{
	uint8_t buf[65536];
	while (f->cl >= 0) {
		ssize_t r = recv(f->cl, buf, sizeof(buf), 0);
		if (r > 0) {
			f->moved += (size_t)r;
			continue;
		}
		if (r == 0) {
			close(f->cl);
			f->cl = -1;
			f->moved++;
		}
		break;
	}
}

/* Run the loop and both fake ends until nothing moves any more (or a bound is reached). */
static inline void fz_settle(struct fz *f)
{
	int quiet = 0;
	for (int i = 0; i < FZ_MAX_ROUNDS && quiet < 3; i++) {
		size_t before = f->moved;
		event_base_loop(f->w->base, EVLOOP_NONBLOCK);
		fz_pg_step(f);
		fz_client_drain(f);
		quiet = f->moved == before ? quiet + 1 : 0;
	}
}

/* Write to the client's socket, letting pgtally read when the socket buffer is full. */
static inline void fz_client_send(struct fz *f, const uint8_t *p, size_t n)
{
	int stuck = 0;
	while (f->cl >= 0 && n > 0 && stuck < 50) {
		ssize_t r = send(f->cl, p, n, MSG_NOSIGNAL);
		if (r > 0) {
			p += r;
			n -= (size_t)r;
			f->moved += (size_t)r;
			stuck = 0;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			size_t before = f->moved;
			event_base_loop(f->w->base, EVLOOP_NONBLOCK);
			fz_pg_step(f);
			fz_client_drain(f);
			stuck = f->moved == before ? stuck + 1 : 0;
			continue;
		}
		break; /* pgtally closed the client */
	}
}

/* Write in pieces of chunk bytes with the loop run after each (0: all at once). */
static inline void fz_client_send_chunked(struct fz *f, const uint8_t *p, size_t n, size_t chunk)
{
	if (chunk == 0)
		chunk = n;
	while (n > 0 && f->cl >= 0) {
		size_t k = n < chunk ? n : chunk;
		fz_client_send(f, p, k);
		p += k;
		n -= k;
		fz_settle(f);
	}
}

static inline void fz_startup_packet(uint8_t *out, size_t *len, const char *user, const char *db)
{
	size_t n = 8;
	size_t ul = strlen(user) + 1, dl = strlen(db) + 1;
	memcpy(out + n, "user", 5);
	n += 5;
	memcpy(out + n, user, ul);
	n += ul;
	memcpy(out + n, "database", 9);
	n += 9;
	memcpy(out + n, db, dl);
	n += dl;
	out[n++] = 0;
	out[0] = (uint8_t)(n >> 24);
	out[1] = (uint8_t)(n >> 16);
	out[2] = (uint8_t)(n >> 8);
	out[3] = (uint8_t)n;
	out[4] = 0;
	out[5] = 3;
	out[6] = 0;
	out[7] = 0;
	*len = n;
}

/* Log in over the client socket (trust), with the fake server completing the first login. */
static inline void fz_login(struct fz *f, const char *db)
{
	uint8_t pkt[128];
	size_t n;
	fz_startup_packet(pkt, &n, "fuzz", db);
	fz_client_send(f, pkt, n);
	fz_settle(f);
}

static inline void fz_finish(struct fz *f)
{
	if (f->cl >= 0)
		close(f->cl);
	if (f->pg >= 0)
		close(f->pg);
	/* RELOAD or SET on the console may have replaced the config or the auth_file. */
	struct userlist *ul = f->w->users_file;
	struct config *cfg = f->w->cfg;
	worker_free(f->w);
	userlist_free(ul);
	config_free(cfg);
	/* Connections pgtally opened that we never accepted. */
	int fd;
	while ((fd = accept(fz_listen, NULL, NULL)) >= 0)
		close(fd);
	free(f);
}

#endif
