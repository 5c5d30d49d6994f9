/*
 * train: the workload a profile-guided build of pgtally learns from (make; doc/hacking.md).
 *
 *     build/pgo/train PGTALLY DIR
 *
 * Starts PGTALLY, a build with -fprofile-generate, on a config written into DIR, in front of a
 * fake PostgreSQL that this program serves from its own threads, and drives it with clients
 * shaped like the bench cases: pgbench -S in the simple, extended and prepared protocols,
 * Django-shaped transactions (a list, then lookups by id, with sqlcommenter comments) and
 * connections that log in for one transaction. Then it stops PGTALLY with SIGINT, so that its
 * profile is written. Exits 0 when every query got its answer and PGTALLY exited cleanly; the
 * log of PGTALLY is DIR/pgtally.log.
 *
 * Messages are built with pgtally's own proto.c (linked plain, without the profile's counters).
 *
 * Only the steady-state paths are trained: errors, TLS, SCRAM and the admin console are not,
 * and are compiled as without a profile (-fprofile-partial-training). Nothing here is timed.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "iobuf.h"
#include "proto.h"

#define CLIENTS 8
#define POOL_SIZE 8   /* a server for every client, as in the bench's -c 20 cases */
#define LOOKUPS 20    /* per Django-shaped transaction, after its list query */
#define LIST_ROWS 20  /* rows the fake server returns for a list query */
#define IO_TIMEOUT 20 /* seconds any read or write may wait before the run fails */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("pgo train: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* ---- buffered protocol I/O over a blocking socket ---- */

struct conn {
	int fd;
	size_t pos, have;
	char in[65536];
	struct iobuf out; /* what conn_flush() sends */
};

static void conn_init(struct conn *c, int fd)
{
	struct timeval tv = {.tv_sec = IO_TIMEOUT};
	int one = 1;
	c->fd = fd;
	c->pos = c->have = 0;
	c->out = (struct iobuf){0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static bool conn_flush(struct conn *c)
{
	if (!pkt_ok(&c->out))
		die("out of memory building a message");
	while (iobuf_avail(&c->out)) {
		ssize_t n =
			send(c->fd, c->out.data + c->out.rpos, iobuf_avail(&c->out), MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		c->out.rpos += (size_t)n;
	}
	iobuf_reset(&c->out);
	return true;
}

static void conn_close(struct conn *c)
{
	close(c->fd);
	iobuf_release(&c->out);
}

/* A message with no body: ParseComplete, BindComplete, CloseComplete, Sync. */
static void put_empty(struct conn *c, char type)
{
	pkt_end(&c->out, pkt_begin(&c->out, type));
}

/* Read exactly n bytes into p; false at EOF, an error or the timeout. */
static bool get(struct conn *c, void *p, size_t n)
{
	char *d = p;
	while (n) {
		if (c->pos == c->have) {
			ssize_t r = recv(c->fd, c->in, sizeof(c->in), 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return false;
			c->pos = 0;
			c->have = (size_t)r;
		}
		size_t k = c->have - c->pos < n ? c->have - c->pos : n;
		memcpy(d, c->in + c->pos, k);
		c->pos += k;
		d += k;
		n -= k;
	}
	return true;
}

/* The next typed message: its type, and its body (NUL-terminated) in body[0..*len). */
static bool get_msg(struct conn *c, char *type, char *body, size_t cap, size_t *len)
{
	uint32_t n;
	if (!get(c, type, 1) || !get(c, &n, 4))
		return false;
	n = ntohl(n);
	if (n < 4 || n - 4 >= cap)
		return false;
	*len = n - 4;
	body[*len] = '\0';
	return get(c, body, *len);
}

/* ---- the fake PostgreSQL ---- */

static void srv_ready(struct conn *c, bool in_txn)
{
	proto_build_ready(&c->out, in_txn ? 'T' : 'I');
}

static void srv_row_description(struct conn *c)
{
	static const char *const names[] = {"id", "name"};
	static const uint32_t types[] = {PG_TYPE_INT4, PG_TYPE_TEXT};
	proto_build_row_desc(&c->out, names, types, 2);
}

/* The rows of a SELECT and its CommandComplete: LIST_ROWS for a list query, else one. */
static void srv_rows(struct conn *c, const char *sql)
{
	int rows = strstr(sql, "ORDER BY") ? LIST_ROWS : 1;
	for (int r = 0; r < rows; r++) {
		char id[16], name[32];
		snprintf(id, sizeof(id), "%d", r + 1);
		snprintf(name, sizeof(name), "author number %d", r + 1);
		const char *const values[] = {id, name};
		proto_build_data_row(&c->out, values, 2);
	}
	char tag[32];
	snprintf(tag, sizeof(tag), "SELECT %d", rows);
	proto_build_command_complete(&c->out, tag);
}

/* A simple-protocol statement: BEGIN, COMMIT, other commands, or a SELECT with rows. */
static void srv_query(struct conn *c, const char *sql, bool *in_txn)
{
	if (!strncmp(sql, "BEGIN", 5)) {
		*in_txn = true;
		proto_build_command_complete(&c->out, "BEGIN");
	} else if (!strncmp(sql, "COMMIT", 6)) {
		*in_txn = false;
		proto_build_command_complete(&c->out, "COMMIT");
	} else if (strncmp(sql, "SELECT", 6) != 0 && strncmp(sql, "select", 6) != 0) {
		proto_build_command_complete(&c->out, "SET"); /* pgtally's own SET/RESET lines */
	} else {
		srv_row_description(c);
		srv_rows(c, sql);
	}
	srv_ready(c, *in_txn);
}

static void srv_startup(struct conn *c)
{
	static const char *const params[][2] = {
		{"server_version", "15.0 (pgo train)"},
		{"server_encoding", "UTF8"},
		{"client_encoding", "UTF8"},
		{"DateStyle", "ISO, MDY"},
		{"TimeZone", "UTC"},
		{"integer_datetimes", "on"},
		{"standard_conforming_strings", "on"},
		{"application_name", ""},
		{"IntervalStyle", "postgres"},
		{"is_superuser", "off"},
		{"session_authorization", "train"},
	};
	proto_build_auth(&c->out, 0, NULL, 0); /* AuthenticationOk */
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++)
		proto_build_param_status(&c->out, params[i][0], params[i][1]);
	proto_build_backend_key(&c->out, (uint32_t)getpid(), (uint32_t)c->fd);
	srv_ready(c, false);
}

/* The startup packet: false unless one arrives (after an SSLRequest, which is declined). */
static bool srv_read_startup(struct conn *c, char *buf, size_t cap)
{
	for (;;) {
		uint32_t len, code;
		if (!get(c, &len, 4) || !get(c, &code, 4))
			return false;
		len = ntohl(len);
		if (len < 8 || len - 8 > cap || !get(c, buf, len - 8))
			return false;
		if (ntohl(code) != PROTO_SSL_REQUEST)
			return true;
		pkt_put_u8(&c->out, 'N');
		if (!conn_flush(c))
			return false;
	}
}

/* Serve one server connection of pgtally until it closes it. */
static void *srv_thread(void *arg)
{
	struct conn *c = arg;
	size_t cap = 65536;
	char *buf = malloc(cap);
	bool in_txn = false, ok = buf && srv_read_startup(c, buf, cap);
	if (ok) {
		srv_startup(c);
		ok = conn_flush(c);
	}
	char type;
	size_t n;
	/* Extended protocol: the SQL of the last Parse, whatever its name (pgtally names them). */
	char sql[4096] = "";
	while (ok && get_msg(c, &type, buf, cap, &n)) {
		switch (type) {
		case 'Q':
			srv_query(c, buf, &in_txn);
			ok = conn_flush(c);
			break;
		case 'P': {
			const char *text = buf + strlen(buf) + 1;
			snprintf(sql, sizeof(sql), "%s", text < buf + n ? text : "");
			put_empty(c, '1');
			break;
		}
		case 'B':
			put_empty(c, '2');
			break;
		case 'D':
			if (buf[0] == 'S') { /* ParameterDescription: one int4 */
				size_t m = pkt_begin(&c->out, 't');
				pkt_put_u16(&c->out, 1);
				pkt_put_u32(&c->out, PG_TYPE_INT4);
				pkt_end(&c->out, m);
			}
			srv_row_description(c);
			break;
		case 'E':
			srv_rows(c, sql);
			break;
		case 'C':
			put_empty(c, '3');
			break;
		case 'S':
			srv_ready(c, in_txn);
			ok = conn_flush(c);
			break;
		case 'H':
			ok = conn_flush(c);
			break;
		case 'X':
			ok = false;
			break;
		default:
			fprintf(stderr, "pgo train: the fake server got a message '%c'\n", type);
			ok = false;
		}
	}
	conn_close(c);
	free(buf);
	free(c);
	return NULL;
}

static int listen_any(uint16_t *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) < 0)
		die("cannot listen on 127.0.0.1: %s", strerror(errno));
	*port = ntohs(a.sin_port);
	return fd;
}

static void *srv_accept_thread(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			die("accept: %s", strerror(errno));
		}
		struct conn *c = malloc(sizeof(*c));
		pthread_t t;
		if (!c)
			die("out of memory");
		conn_init(c, fd);
		if (pthread_create(&t, NULL, srv_thread, c) != 0)
			die("cannot start a server thread");
		pthread_detach(t);
	}
	return NULL;
}

/* ---- clients ---- */

static uint16_t pooler_port;

struct client {
	struct conn c;
	int id;
	unsigned seed;
	bool prepared; /* the named statement of the prepared kind exists on this session */
	char body[65536];
};

static bool cl_connect(struct client *k)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(pooler_port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	conn_init(&k->c, fd);
	k->prepared = false;
	static const char *const startup[] = {
		"user", "train", "database", "train", "application_name", "pgo_train", NULL};
	proto_build_startup(&k->c.out, startup);
	if (conn_flush(&k->c))
		return true;
	conn_close(&k->c);
	return false;
}

static void cl_close(struct client *k)
{
	proto_build_terminate(&k->c.out);
	conn_flush(&k->c);
	conn_close(&k->c);
}

/* Flush what was queued and read up to ReadyForQuery; false on an ErrorResponse or EOF. */
static bool cl_await(struct client *k)
{
	char type;
	size_t n;
	bool ok = conn_flush(&k->c);
	while (ok && get_msg(&k->c, &type, k->body, sizeof(k->body), &n)) {
		if (type == 'E') {
			fprintf(stderr, "pgo train: client %d got an error from pgtally\n", k->id);
			ok = false;
		}
		if (type == 'Z')
			return ok;
	}
	return false;
}

static void cl_query(struct client *k, const char *sql)
{
	proto_build_query(&k->c.out, sql);
}

static const char PGBENCH_SQL[] = "SELECT abalance FROM pgbench_accounts WHERE aid = $1;";

static unsigned aid(struct client *k)
{
	return (unsigned)rand_r(&k->seed) % 100000 + 1;
}

/* Parse (when name is "" or the session lacks it), Bind, Describe, Execute, Sync. */
static void cl_extended(struct client *k, const char *name, bool parse)
{
	char param[16];
	int np = snprintf(param, sizeof(param), "%u", aid(k));
	struct iobuf *b = &k->c.out;
	size_t m;
	if (parse) {
		m = pkt_begin(b, 'P');
		pkt_put_str(b, name);
		pkt_put_str(b, PGBENCH_SQL);
		pkt_put_u16(b, 0); /* no parameter types */
		pkt_end(b, m);
	}
	m = pkt_begin(b, 'B');
	pkt_put_str(b, ""); /* the unnamed portal */
	pkt_put_str(b, name);
	pkt_put_u16(b, 0); /* text parameters */
	pkt_put_u16(b, 1);
	pkt_put_u32(b, (uint32_t)np);
	pkt_put_bytes(b, param, (size_t)np);
	pkt_put_u16(b, 0); /* text results */
	pkt_end(b, m);
	m = pkt_begin(b, 'D');
	pkt_put_u8(b, 'P');
	pkt_put_str(b, "");
	pkt_end(b, m);
	m = pkt_begin(b, 'E');
	pkt_put_str(b, "");
	pkt_put_u32(b, 0); /* all rows */
	pkt_end(b, m);
	put_empty(&k->c, 'S');
}

/* One list and LOOKUPS lookups by id in a transaction, as Django's ORM sends them. */
static bool cl_django(struct client *k, int round)
{
	char sql[512];
	const char *route = round % 2 ? "/books/" : "/authors/%3Cint%3Aid%3E/";
	cl_query(k, "BEGIN");
	if (!cl_await(k))
		return false;
	snprintf(
		sql, sizeof(sql),
		"SELECT \"books_book\".\"id\", \"books_book\".\"title\", "
		"\"books_book\".\"author_id\" "
		"FROM \"books_book\" WHERE \"books_book\".\"published\" >= '2020-01-%02d'::date "
		"ORDER BY \"books_book\".\"id\" ASC LIMIT 21 /*controller='book_list',route='%s'*/",
		round % 28 + 1, route);
	cl_query(k, sql);
	if (!cl_await(k))
		return false;
	for (int i = 0; i < LOOKUPS; i++) {
		snprintf(sql, sizeof(sql),
			 "SELECT \"books_author\".\"id\", \"books_author\".\"name\" FROM "
			 "\"books_author\" WHERE \"books_author\".\"id\" = %u LIMIT 21 "
			 "/*controller='book_list',route='%s'*/",
			 aid(k), route);
		cl_query(k, sql);
		if (!cl_await(k))
			return false;
	}
	cl_query(k, "COMMIT");
	return cl_await(k);
}

static bool cl_simple(struct client *k)
{
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT abalance FROM pgbench_accounts WHERE aid = %u;", aid(k));
	cl_query(k, sql);
	return cl_await(k);
}

/* A new connection for one transaction, as Django's CONN_MAX_AGE = 0 makes them. */
static bool cl_reconnect(struct client *k)
{
	cl_close(k);
	return cl_connect(k) && cl_await(k) && cl_simple(k);
}

/*
 * The phases every client runs in turn, with the transactions of each: the profile weighs
 * code by how often it ran, so these shares follow the bench's cases (test/bench/run.py),
 * a Django-shaped transaction being 23 statements.
 */
static const struct phase {
	const char *name;
	int txns;
} PHASES[] = {
	{"simple", 3000}, {"extended", 2000}, {"prepared", 1000}, {"django", 100}, {"connect", 100},
};

static bool cl_phase(struct client *k, int phase, int i)
{
	switch (phase) {
	case 0:
		return cl_simple(k);
	case 1:
		cl_extended(k, "", true);
		return cl_await(k);
	case 2:
		cl_extended(k, "P0_1", !k->prepared);
		k->prepared = true;
		return cl_await(k);
	case 3:
		return cl_django(k, i);
	default:
		return cl_reconnect(k);
	}
}

static void *cl_thread(void *arg)
{
	struct client *k = arg;
	bool ok = cl_connect(k) && cl_await(k);
	for (int p = 0; ok && p < (int)(sizeof(PHASES) / sizeof(PHASES[0])); p++) {
		for (int i = 0; ok && i < PHASES[p].txns; i++)
			ok = cl_phase(k, p, i);
		if (!ok)
			fprintf(stderr, "pgo train: client %d failed in the %s phase\n", k->id,
				PHASES[p].name);
	}
	if (ok)
		cl_close(k);
	return ok ? k : NULL;
}

/* ---- pgtally ---- */

/* Mode 0600: pgtally warns about an auth_file others can read. */
static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	size_t n = strlen(text);
	if (fd < 0 || write(fd, text, n) != (ssize_t)n || close(fd) != 0)
		die("cannot write %s: %s", path, strerror(errno));
}

static pid_t start_pgtally(const char *binary, const char *dir, uint16_t server_port)
{
	char path[4096], ini[8192], log[4096];
	uint16_t port;
	close(listen_any(&port)); /* a free port, most likely still free a moment later */
	pooler_port = port;

	snprintf(path, sizeof(path), "%s/users.txt", dir);
	write_file(path, "\"train\" \"\"\n");
	snprintf(ini, sizeof(ini),
		 "[databases]\n"
		 "train = host=127.0.0.1 port=%u dbname=train\n"
		 "[pgtally]\n"
		 "listen_addr = 127.0.0.1\n"
		 "listen_port = %u\n"
		 "unix_socket_dir =\n"
		 "auth_type = trust\n"
		 "auth_file = %s\n"
		 "pool_mode = transaction\n"
		 "default_pool_size = %d\n"
		 "max_client_conn = 100\n"
		 "logfile =\n"
		 "pidfile =\n",
		 server_port, port, path, POOL_SIZE);
	snprintf(path, sizeof(path), "%s/pgtally.ini", dir);
	write_file(path, ini);
	snprintf(log, sizeof(log), "%s/pgtally.log", dir);

	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		FILE *f = freopen(log, "w", stderr);
		if (!f || dup2(fileno(stderr), STDOUT_FILENO) < 0)
			_exit(127);
		execl(binary, binary, path, (char *)NULL);
		fprintf(stderr, "cannot run %s: %s\n", binary, strerror(errno));
		_exit(127);
	}
	/* Wait until it listens (or exits). */
	for (int i = 0; i < 200; i++) {
		struct client probe = {.id = -1};
		if (waitpid(pid, NULL, WNOHANG) == pid)
			die("%s exited at start; see %s", binary, log);
		if (cl_connect(&probe)) {
			bool ok = cl_await(&probe);
			cl_close(&probe);
			if (ok)
				return pid;
		}
		usleep(50 * 1000);
	}
	kill(pid, SIGKILL);
	die("%s did not answer on port %u; see %s", binary, port, log);
}

static bool stop_pgtally(pid_t pid)
{
	int status;
	kill(pid, SIGINT);
	for (int i = 0; i < 400; i++) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return WIFEXITED(status) && WEXITSTATUS(status) == 0;
		usleep(25 * 1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return false;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s PGTALLY DIR\n", argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	uint16_t server_port;
	int lfd = listen_any(&server_port);
	pthread_t acceptor;
	if (pthread_create(&acceptor, NULL, srv_accept_thread, (void *)(intptr_t)lfd) != 0)
		die("cannot start the fake server");
	pthread_detach(acceptor);

	pid_t pid = start_pgtally(argv[1], argv[2], server_port);
	static struct client clients[CLIENTS];
	pthread_t threads[CLIENTS];
	int failed = 0;
	for (int i = 0; i < CLIENTS; i++) {
		clients[i].id = i;
		clients[i].seed = (unsigned)i * 7919u + 1;
		if (pthread_create(&threads[i], NULL, cl_thread, &clients[i]) != 0)
			die("cannot start a client thread");
	}
	for (int i = 0; i < CLIENTS; i++) {
		void *ok;
		pthread_join(threads[i], &ok);
		failed += ok == NULL;
	}
	bool clean = stop_pgtally(pid);
	if (failed)
		fprintf(stderr, "pgo train: %d of %d clients failed; see %s/pgtally.log\n", failed,
			CLIENTS, argv[2]);
	if (!clean)
		fprintf(stderr, "pgo train: %s did not exit cleanly on SIGINT\n", argv[1]);
	return failed || !clean;
}
