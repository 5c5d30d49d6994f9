/* server: connections to PostgreSQL: connect, login, relaying replies, release to the pool. */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth.h"
#include "client.h"
#include "dns.h"
#include "forward.h"
#include "listener.h"
#include "log.h"
#include "md5auth.h"
#include "metrics.h"
#include "nplus1.h"
#include "proto.h"
#include "scram.h"
#include "stats.h"
#include "worker.h"

static void server_read_cb(evutil_socket_t fd, short what, void *arg);
static void server_write_cb(evutil_socket_t fd, short what, void *arg);

/* Largest server message held whole (a RowDescription of 1,600 long column names fits). */
#define SERVER_WHOLE_MAX (1024 * 1024)

static struct list *server_state_list(struct server *s, enum server_state st)
{
	switch (st) {
	case SV_LOGIN:
		return &s->pool->login_servers;
	case SV_IDLE:
		return &s->pool->idle_servers;
	case SV_ACTIVE:
		return &s->pool->active_servers;
	case SV_USED:
		return &s->pool->used_servers;
	case SV_TESTED:
		return &s->pool->tested_servers;
	case SV_CLOSED:
		return &s->w->closed_servers;
	}
	return &s->w->closed_servers;
}

void server_set_state(struct server *s, enum server_state st)
{
	list_del(&s->node);
	s->state = st;
	list_append(server_state_list(s, st), &s->node);
}

static const char *default_socket_dir(void)
{
	return access("/var/run/postgresql", F_OK) == 0 ? "/var/run/postgresql" : "/tmp";
}

/* The unix socket of host (a directory, or none: the default one) and port; snprintf's count. */
static int unix_socket_path(const char *host, int port, char *buf, size_t cap)
{
	return snprintf(buf, cap, "%s/.s.PGSQL.%d", host && *host ? host : default_socket_dir(),
			port);
}

/* The entry of its database's host list s connected to; buf holds CONFIG_HOST_MAX bytes. */
static const char *server_host(const struct server *s, char *buf)
{
	return config_host_entry(s->pool->db->cfg.host, s->host_idx, buf);
}

/* host:port, or the unix socket, of s: for error messages. */
/* Where host (an entry of a host list) and port are, for messages. */
static const char *host_where(const char *host, int port, char *buf, size_t cap)
{
	if (config_host_is_unix(host))
		(void)unix_socket_path(host, port, buf, cap);
	else
		snprintf(buf, cap, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
	return buf;
}

static const char *server_where(const struct server *s, char *buf, size_t cap)
{
	char hbuf[CONFIG_HOST_MAX];
	int port = s->pool->db->cfg.port > 0 ? s->pool->db->cfg.port : 5432;
	return host_where(server_host(s, hbuf), port, buf, cap);
}

/* A non-blocking socket connecting to addr, with cfg's TCP options; -1 on failure (err). */
static int connect_addr(const union dns_addr *addr, socklen_t len, const struct config *cfg,
			const char *where, char *err, size_t errlen)
{
	int fd = socket(addr->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (addr->sa.sa_family != AF_UNIX)
		tcp_tune_socket(fd, cfg, true);
	if (connect(fd, &addr->sa, len) < 0 && errno != EINPROGRESS && errno != EAGAIN) {
		snprintf(err, errlen, "connect to %s: %s", where, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * A socket connecting to entry host_idx of the database's host list, the address it goes to
 * in *addr (not for a unix socket: *len is then 0). -1 on failure (err), -2 while the host's
 * name is being looked up (dns.h: the pools are maintained again when it is done).
 */
static int server_connect_socket(struct worker *w, const struct pool_db *db, int host_idx,
				 union dns_addr *addr, socklen_t *len, char *err, size_t errlen)
{
	char hbuf[CONFIG_HOST_MAX], where[CONFIG_HOST_MAX + 16];
	const char *host = config_host_entry(db->cfg.host, host_idx, hbuf);
	int port = db->cfg.port > 0 ? db->cfg.port : 5432;
	*len = 0;
	if (config_host_is_unix(host)) {
		struct sockaddr_un sun;
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		int n = unix_socket_path(host, port, sun.sun_path, sizeof(sun.sun_path));
		if (n < 0 || (size_t)n >= sizeof(sun.sun_path)) {
			snprintf(err, errlen, "unix socket path too long");
			return -1;
		}
		return connect_addr((const union dns_addr *)(const void *)&sun, sizeof(sun), w->cfg,
				    sun.sun_path, err, errlen);
	}
	switch (dns_address(w, host, port, addr, len, err, errlen)) {
	case DNS_PENDING:
		return -2;
	case DNS_FAILED:
		return -1;
	case DNS_READY:
		break;
	}
	return connect_addr(addr, *len, w->cfg, host_where(host, port, where, sizeof(where)), err,
			    errlen);
}

static const char *server_login_user(const struct server *s)
{
	return s->pool->db->cfg.user ? s->pool->db->cfg.user : s->pool->user->name;
}

/* The password to log in with: the database line's, else the auth_file entry. */
static const char *server_password(const struct server *s)
{
	if (s->pool->db->cfg.password)
		return s->pool->db->cfg.password;
	return s->pool->user->password;
}

static void pool_fail_logins(struct pool *pool, const char *sqlstate, const char *msg)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &pool->login_clients)
	{
		struct client *c = container_of(pos, struct client, node);
		client_close(c, sqlstate, "%s", msg);
	}
}

/*
 * A server login failed (why), with no host of the list left to try: hold further attempts
 * for server_login_retry and fail the clients waiting for a login, unless another login is
 * still under way for them.
 */
static void pool_login_failed(struct pool *pool, const char *why, bool another_login)
{
	pool->last_connect_failed = worker_now(pool->w);
	free(pool->last_error);
	pool->last_error = strdup(why);
	if (another_login)
		return;
	char msg[600];
	snprintf(msg, sizeof(msg), "server login failed: %s", why);
	pool_fail_logins(pool, "08006", msg);
}

/* The entry of db's host list for a new connection: the next one, or with
 * load_balance_hosts = disable the current one. */
static int host_pick(struct pool_db *db)
{
	unsigned n = (unsigned)config_host_count(db->cfg.host);
	if (n == 1)
		return 0;
	unsigned i = db->host_next % n;
	if (db->cfg.load_balance_hosts == LB_HOSTS_ROUND_ROBIN)
		db->host_next = i + 1;
	return (int)i;
}

static int host_after(const struct pool_db *db, int idx)
{
	return (idx + 1) % config_host_count(db->cfg.host);
}

/*
 * A connection to entry idx of db's host list failed, after tries other hosts had failed for
 * it. With load_balance_hosts = disable the next connection goes to the next host. True while
 * some host of the list is left to try: then the next one is tried at once, without
 * server_login_retry's wait (PgBouncer waits).
 */
static bool host_failed(struct pool_db *db, int idx, unsigned tries)
{
	unsigned n = (unsigned)config_host_count(db->cfg.host);
	if (n == 1)
		return false;
	if (db->cfg.load_balance_hosts == LB_HOSTS_DISABLE && db->host_next % n == (unsigned)idx)
		db->host_next = (unsigned)idx + 1;
	return tries + 1 < n;
}

bool server_launch(struct pool *pool)
{
	struct worker *w = pool->w;
	char err[256];
	struct iobuf b = {0};
	int host_idx, fd;
	/* server_close asks for a retry on the host after the one that failed. */
	unsigned tries = pool->host_tries;
	host_idx = tries ? pool->host_retry : host_pick(pool->db);
	pool->host_tries = 0;
	union dns_addr addr = {0};
	socklen_t addr_len = 0;
	for (;;) {
		fd = server_connect_socket(w, pool->db, host_idx, &addr, &addr_len, err, sizeof(err));
		if (fd >= 0)
			break;
		if (fd == -2) {
			/* The lookup's end maintains the pool again; a host list's retry goes on. */
			if (tries) {
				pool->host_tries = tries;
				pool->host_retry = host_idx;
			}
			return false;
		}
		log_warning("S-new %s/%s: %s", pool->db->name, pool->user->name, err);
		if (host_failed(pool->db, host_idx, tries)) {
			host_idx = host_after(pool->db, host_idx);
			tries++;
			continue;
		}
		pool_login_failed(pool, err, false);
		return false;
	}
	struct server *s = objcache_alloc(&w->servers);
	if (!s) {
		close(fd);
		return false;
	}
	s->w = w;
	s->pool = pool;
	s->id = ++w->next_id;
	s->host_idx = (uint16_t)host_idx;
	s->host_tries = (uint16_t)tries;
	s->addr = addr;
	s->addr_len = addr_len;
	s->connect_time = s->request_time = worker_now(w);
	s->txn_status = 'I';
	list_init(&s->node);
	s->state = SV_LOGIN;
	list_append(&pool->login_servers, &s->node);
	pool->n_servers++;
	pool->db->n_servers++;
	pool->user->n_servers++;
	w->n_servers++;
	sbuf_setup(w, &s->sb, fd, server_read_cb, server_write_cb, s);
	s->sb.keep_in = true;
	/* SSLRequest first; the startup packet below waits in sb.out until TLS is settled. */
	char hbuf[CONFIG_HOST_MAX];
	const char *host = server_host(s, hbuf);
	/* PostgreSQL has no TLS on unix sockets */
	if (w->tls_connect && !config_host_is_unix(host) && !sbuf_request_tls(&s->sb, w->tls_connect, host)) {
		char where[300];
		server_close(s, "cannot start TLS with %s: %s", server_where(s, where, sizeof(where)),
			     sbuf_strerror(&s->sb, errno));
		return true; /* server_close told the pool */
	}

	const struct config_db *d = &pool->db->cfg;
	const char *kv[16];
	int i = 0;
	kv[i++] = "user";
	kv[i++] = server_login_user(s);
	kv[i++] = "database";
	kv[i++] = d->dbname ? d->dbname : pool->db->name;
	if (d->client_encoding) {
		kv[i++] = "client_encoding";
		kv[i++] = d->client_encoding;
	}
	if (d->datestyle) {
		kv[i++] = "DateStyle";
		kv[i++] = d->datestyle;
	}
	if (d->timezone) {
		kv[i++] = "TimeZone";
		kv[i++] = d->timezone;
	}
	kv[i++] = "application_name";
	kv[i++] = d->application_name ? d->application_name : "pgtally";
	kv[i] = NULL;
	proto_build_startup(&b, kv);
	if (!server_send(s, &b)) {
		iobuf_release(&b);
		return true; /* server_send closed it; the pool was told */
	}
	iobuf_release(&b);
	log_debug("S-%llu %s/%s: new connection", (unsigned long long)s->id, pool->db->name,
		  pool->user->name);
	return true;
}

bool server_send(struct server *s, struct iobuf *b)
{
	if (!pkt_ok(b)) {
		iobuf_reset(b);
		server_close(s, "out of memory building a message");
		return false;
	}
	bool ok = sbuf_send(&s->sb, b->data + b->rpos, iobuf_avail(b));
	iobuf_reset(b);
	if (!ok) {
		char where[300];
		server_close(s, "send to server %s failed: %s", server_where(s, where, sizeof(where)),
			     sbuf_strerror(&s->sb, errno));
		return false;
	}
	return true;
}

void server_close(struct server *s, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	if (s->state == SV_CLOSED)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);

	struct pool *pool = s->pool;
	struct worker *w = s->w;
	/*
	 * A login that failed, not a server closed right after its login finished (ready):
	 * given to another worker, lifetime over. Only a failed one delays the next connect by
	 * server_login_retry and fails the clients waiting for a login, once no host of a host
	 * list is left to try.
	 */
	bool was_login = s->state == SV_LOGIN && !s->ready;
	unsigned retry_tries = 0;
	log_at(was_login || s->client ? LOG_LVL_WARNING : LOG_LVL_INFO,
	       "S-%llu %s/%s: closing because: %s", (unsigned long long)s->id, pool->db->name,
	       pool->user->name, why);

	if (s->auth_client) {
		struct client *c = s->auth_client;
		s->auth_client = NULL;
		auth_lookup_done(c, "server connection lost during auth_query");
	}
	if (s->client) {
		struct client *c = s->client;
		s->client = NULL;
		char msg[600];
		snprintf(msg, sizeof(msg), "server connection lost: %s", why);
		client_server_lost(c, "08006", msg);
	}
	char hbuf[CONFIG_HOST_MAX];
	if (was_login) {
		/* Another address of the host's name, or with a host list the next host, is tried
		 * before anyone is told. */
		bool next_addr = s->addr_len && dns_address_failed(w, server_host(s, hbuf), &s->addr);
		if (next_addr || host_failed(pool->db, s->host_idx, s->host_tries)) {
			retry_tries = s->host_tries + !next_addr;
			pool->host_retry = next_addr ? s->host_idx : host_after(pool->db, s->host_idx);
			free(pool->last_error);
			pool->last_error = strdup(why);
		} else {
			pool_login_failed(pool, why, list_count(&pool->login_servers) > 1);
		}
	}
	if (s->ready) {
		struct iobuf b = {0};
		proto_build_terminate(&b);
		if (pkt_ok(&b) && sbuf_queued(&s->sb) == 0 &&
		    !sbuf_send(&s->sb, b.data, iobuf_avail(&b)))
			log_debug("could not send Terminate to the server");
		iobuf_release(&b);
	}
	sbuf_close(w, &s->sb);
	pool->n_servers--;
	pool->db->n_servers--;
	pool->user->n_servers--;
	w->n_servers--;
	pool_server_gone(pool);
	server_set_state(s, SV_CLOSED);
	worker_schedule_reap(w);
	if (!was_login || !pool->last_connect_failed) {
		pool->host_tries = retry_tries; /* for the launch pool_maintain may make */
		pool_maintain(pool);
		pool->host_tries = 0;
	}
}

void server_reap(struct worker *w)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &w->closed_servers)
	{
		struct server *s = container_of(pos, struct server, node);
		list_del(&s->node);
		for (int i = 0; i < PARAM_COUNT; i++)
			if (s->params_own & (1u << i))
				free((char *)s->params[i]);
		if (s->scram)
			scram_client_clear(s->scram);
		free(s->scram);
		free(s->login_error);
		iobuf_release(&s->login_params);
		rq_free(&s->rq);
		server_pstmts_free(&s->pstmts);
		sbuf_free(&s->sb);
		objcache_free(&w->servers, s);
	}
}

/* ---- login ---- */

/*
 * Record a session parameter's value. Values equal to the pool's default share its string,
 * so the comparison at link time is usually a pointer comparison.
 */
/* The session's value of parameter id is its default (it was RESET). */
static void server_param_reset(struct server *s, int id)
{
	uint8_t bit = (uint8_t)(1u << id);
	if (s->params_own & bit)
		free((char *)s->params[id]);
	s->params_own &= (uint8_t)~bit;
	s->params[id] = s->pool->welcome_params[id];
}

static void server_param_put(struct server *s, int id, const char *value)
{
	if (s->params[id] == value)
		return;
	server_param_reset(s, id);
	const char *def = s->params[id];
	if (def && (value == def || strcmp(value, def) == 0))
		return;
	if ((s->params[id] = strdup(value)))
		s->params_own |= (uint8_t)(1u << id);
}

static void server_set_param(struct server *s, const char *key, const char *value)
{
	int id = param_lookup(key);
	if (id < 0)
		return;
	if (s->params[id] && strcmp(s->params[id], value) == 0)
		return;
	server_param_put(s, id, value);
}

static void server_login_done(struct server *s)
{
	struct pool *pool = s->pool;
	s->ready = true;
	pool->last_connect_failed = 0;
	if (!pool->have_welcome) {
		/* The first login's parameters become what new clients are told. */
		pool->have_welcome = true;
		iobuf_release(&pool->welcome);
		pool->welcome = s->login_params;
		memset(&s->login_params, 0, sizeof(s->login_params));
		for (int i = 0; i < PARAM_COUNT; i++) {
			if (s->params[i] && (pool->welcome_params[i] = strdup(s->params[i])))
				server_param_put(s, i, pool->welcome_params[i]);
		}
		pool_welcome_publish(pool);
	} else {
		/* Still record parameters so welcome includes everything the server reports. */
	}
	/*
	 * Clients waiting for the welcome: also when have_welcome came from another worker
	 * (pool_welcome_adopt() at a later login) while these were already waiting.
	 */
	pool_welcome_waiting(pool);
	log_debug("S-%llu %s/%s: login done, backend pid %u", (unsigned long long)s->id,
		  pool->db->name, pool->user->name, s->be_pid);
	pool_server_ready(pool, s);
}

static void server_handle_auth(struct server *s, const uint8_t *body, size_t len)
{
	struct proto_reader r;
	struct iobuf b = {0};
	const char *password = server_password(s);
	const struct pool_user *u = s->pool->user;

	proto_reader_init(&r, body, len);
	uint32_t code = proto_get_u32(&r);
	if (r.bad) {
		server_close(s, "bad authentication message from server");
		return;
	}
	switch (code) {
	case 0: /* AuthenticationOk */
		return;
	case 3: /* cleartext */
		if (!password || pwd_kind_of(password) != PWD_PLAIN) {
			server_close(s, "server asks for a cleartext password; no plaintext "
					"password for user \"%s\" in auth_file or the database line",
				     server_login_user(s));
			return;
		}
		proto_build_password(&b, password);
		break;
	case 5: { /* md5 */
		const uint8_t *salt = proto_get_bytes(&r, 4);
		char hash[36], resp[36];
		if (!salt) {
			server_close(s, "bad md5 request from server");
			return;
		}
		if (!password || pwd_kind_of(password) == PWD_SCRAM) {
			server_close(s, "server asks for md5; no usable password for user \"%s\"",
				     server_login_user(s));
			return;
		}
		if (pwd_kind_of(password) == PWD_MD5) {
			md5auth_salted(password, salt, resp);
		} else {
			md5auth_password_hash(server_login_user(s), password, hash);
			md5auth_salted(hash, salt, resp);
		}
		proto_build_password(&b, resp);
		break;
	}
	case 10: { /* SASL: list of mechanisms */
		bool have = false;
		const char *mech;
		while ((mech = proto_get_str(&r)) && *mech)
			if (strcmp(mech, "SCRAM-SHA-256") == 0)
				have = true;
		if (!have) {
			server_close(s, "server offers no SASL mechanism pgtally supports");
			return;
		}
		bool plain_ok = password && pwd_kind_of(password) == PWD_PLAIN;
		if (!plain_ok && !u->have_scram_keys) {
			server_close(s, "server asks for SCRAM; no plaintext password for user \"%s\" "
					"and no client has logged in with SCRAM yet to pass through",
				     server_login_user(s));
			return;
		}
		free(s->scram);
		s->scram = calloc(1, sizeof(*s->scram));
		char out[512];
		size_t outlen = 0;
		if (!s->scram || !scram_client_first(s->scram, out, sizeof(out), &outlen)) {
			server_close(s, "SCRAM client-first failed");
			return;
		}
		proto_build_sasl_initial(&b, "SCRAM-SHA-256", out, outlen);
		break;
	}
	case 11: { /* SASL continue: server-first-message */
		char out[512];
		size_t outlen = 0;
		const char *err = NULL;
		bool plain_ok = password && pwd_kind_of(password) == PWD_PLAIN;
		if (!s->scram) {
			server_close(s, "unexpected SASL continue from server");
			return;
		}
		bool ok = scram_client_final(s->scram, plain_ok ? password : NULL,
					     plain_ok ? NULL : u->scram_client_key,
					     plain_ok ? NULL : u->scram_server_key,
					     (const char *)r.p, (size_t)(r.end - r.p), out,
					     sizeof(out), &outlen, &err);
		if (!ok) {
			server_close(s, "SCRAM exchange with server failed: %s", err ? err : "?");
			return;
		}
		proto_build_sasl_response(&b, out, outlen);
		break;
	}
	case 12: { /* SASL final */
		const char *err = NULL;
		if (!s->scram || !scram_client_verify_final(s->scram, (const char *)r.p,
							    (size_t)(r.end - r.p), &err)) {
			server_close(s, "server's SCRAM signature is wrong: %s", err ? err : "?");
			return;
		}
		scram_client_clear(s->scram);
		free(s->scram);
		s->scram = NULL;
		return;
	}
	default:
		server_close(s, "server asks for an unsupported authentication method %u", code);
		return;
	}
	(void)server_send(s, &b);
	iobuf_release(&b);
}

/*
 * A ParameterStatus of the login, connect_query included: the first login's pairs
 * (key\0value\0) become the pool's welcome.
 */
static void server_login_param(struct server *s, const uint8_t *body, size_t len)
{
	struct proto_reader r;
	proto_reader_init(&r, body, len);
	const char *k = proto_get_str(&r);
	const char *v = proto_get_str(&r);
	if (!k || !v) {
		server_close(s, "bad ParameterStatus from server");
		return;
	}
	server_set_param(s, k, v);
	if (!s->pool->have_welcome && (!iobuf_append(&s->login_params, k, strlen(k) + 1) ||
				       !iobuf_append(&s->login_params, v, strlen(v) + 1)))
		server_close(s, "out of memory");
}

/* Send one of pgtally's own queries; its replies are hidden (an RQ_INTERNAL entry). */
static void server_send_internal(struct server *s, struct iobuf *b)
{
	struct rq_entry *e = rq_push(&s->rq, RQ_INTERNAL);
	if (!e) {
		iobuf_reset(b);
		server_close(s, "out of memory");
		return;
	}
	e->sent = worker_now(s->w);
	(void)server_send(s, b);
}

/* One of pgtally's own simple queries (sql), its replies hidden. */
static void server_internal_query(struct server *s, const char *sql)
{
	struct iobuf b = {0};
	proto_build_query(&b, sql);
	server_send_internal(s, &b);
	iobuf_release(&b);
}

/*
 * The database's connect_query, once per new connection before any client may use it, as
 * in PgBouncer; its replies go through server_internal_message(). false when there is none.
 */
static bool server_run_connect_query(struct server *s)
{
	const char *q = s->pool->db->cfg.connect_query;
	if (!q || !*q)
		return false;
	s->in_connect_query = true;
	server_internal_query(s, q);
	return true;
}

/* A login-phase message. */
static void server_login_message(struct server *s, uint8_t type, const uint8_t *body, size_t len)
{
	struct proto_reader r;
	proto_reader_init(&r, body, len);
	switch (type) {
	case 'R':
		server_handle_auth(s, body, len);
		break;
	case 'S':
		server_login_param(s, body, len);
		break;
	case 'K':
		s->be_pid = proto_get_u32(&r);
		s->be_key = proto_get_u32(&r);
		break;
	case 'E': {
		struct proto_error e;
		if (proto_parse_error(body, len, &e) && e.message) {
			char msg[512];
			snprintf(msg, sizeof(msg), "%s", e.message);
			/* Tell waiting clients what PostgreSQL said, with its SQLSTATE. */
			struct pool *pool = s->pool;
			if (list_count(&pool->login_servers) <= 1)
				pool_fail_logins(pool, e.sqlstate ? e.sqlstate : "08006", msg);
			server_close(s, "login failed: %s", msg);
		} else {
			server_close(s, "login failed with a malformed error");
		}
		break;
	}
	case 'N':
	case 'v':
		break;
	case 'Z':
		if (!server_run_connect_query(s))
			server_login_done(s);
		break;
	default:
		server_close(s, "unexpected message '%c' during login", type);
		break;
	}
}

/* ---- linking and release ---- */

static void append_quoted(struct iobuf *b, const char *v)
{
	pkt_put_bytes(b, "'", 1);
	for (const char *p = v; *p; p++) {
		if (*p == '\'')
			pkt_put_bytes(b, "'", 1);
		pkt_put_bytes(b, p, 1);
	}
	pkt_put_bytes(b, "'", 1);
}

void server_link(struct server *s, struct client *c)
{
	struct iobuf b = {0};
	size_t start = 0;
	bool any = false;

	s->client = c;
	c->server = s;
	s->link_time = worker_now(s->w);
	server_set_state(s, SV_ACTIVE);
	client_set_state(c, CL_ACTIVE);

	/* Make the session look like the client's own: SET what differs, hide the replies. */
	for (int i = 0; i < PARAM_COUNT; i++) {
		const char *want = c->params[i];
		if (want == s->params[i] || (want && s->params[i] && strcmp(s->params[i], want) == 0))
			continue;
		/* No value (one the server does not report, such as search_path, that this client
		 * did not set) means the default: RESET what an earlier client SET. */
		if (!want && s->params[i] == s->pool->welcome_params[i])
			continue;
		if (!any) {
			start = pkt_begin(&b, 'Q');
			any = true;
		}
		if (want) {
			pkt_put_bytes(&b, "SET ", 4);
			pkt_put_bytes(&b, param_names[i], strlen(param_names[i]));
			pkt_put_bytes(&b, "=", 1);
			append_quoted(&b, want);
			server_param_put(s, i, want);
		} else {
			pkt_put_bytes(&b, "RESET ", 6);
			pkt_put_bytes(&b, param_names[i], strlen(param_names[i]));
			server_param_reset(s, i);
		}
		pkt_put_bytes(&b, ";", 1);
	}
	if (!any)
		return; /* nothing was allocated */
	pkt_put_u8(&b, 0);
	pkt_end(&b, start);
	server_send_internal(s, &b);
	iobuf_release(&b);
}

void server_run_auth_query(struct server *s, struct client *c)
{
	struct iobuf b = {0};
	const char *user = c->user_name;
	/* Extended protocol: the user name travels as a parameter, never inside the SQL. */
	size_t st = pkt_begin(&b, 'P');
	pkt_put_str(&b, "");
	pkt_put_str(&b, s->w->cfg->auth_query);
	pkt_put_u16(&b, 0);
	pkt_end(&b, st);
	st = pkt_begin(&b, 'B');
	pkt_put_str(&b, "");
	pkt_put_str(&b, "");
	pkt_put_u16(&b, 0);
	pkt_put_u16(&b, 1);
	pkt_put_u32(&b, (uint32_t)strlen(user));
	pkt_put_bytes(&b, user, strlen(user));
	pkt_put_u16(&b, 0);
	pkt_end(&b, st);
	st = pkt_begin(&b, 'E');
	pkt_put_str(&b, "");
	pkt_put_u32(&b, 0);
	pkt_end(&b, st);
	st = pkt_begin(&b, 'S');
	pkt_end(&b, st);
	s->auth_client = c;
	auth_lookup_started(c, s);
	server_set_state(s, SV_TESTED);
	server_send_internal(s, &b);
	iobuf_release(&b);
}

void server_start_check(struct server *s)
{
	const char *q = s->w->cfg->server_check_query;
	server_set_state(s, SV_TESTED);
	/* "<empty>" (the default) means an empty query: the cheapest round trip there is. */
	server_internal_query(s, strcmp(q, "<empty>") == 0 ? "" : q);
}

static bool server_clean(const struct server *s)
{
	return s->ready && s->txn_status == 'I' && s->rq.count == 0 && !s->ext_open && !s->copy_in && !s->copy_out && s->fwd_remaining == 0 &&
	       iobuf_avail(&s->sb.in) == 0 && sbuf_queued(&s->sb) == 0;
}

/*
 * Held session state (cursors WITH HOLD, session advisory locks, LISTEN, temporary tables;
 * fwd_note_held()): how much of it the session has, asked at the end of a transaction, and
 * how what a client left is cleaned up before anyone else gets the server.
 */
static const char held_check_sql[] =
	"SELECT (SELECT count(*) FROM pg_catalog.pg_cursors WHERE is_holdable) + "
	"(SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND "
	"pid = pg_catalog.pg_backend_pid()) + "
	"(SELECT count(*) FROM pg_catalog.pg_listening_channels()) + "
	"(SELECT count(*) FROM pg_catalog.pg_class WHERE "
	"relnamespace = pg_catalog.pg_my_temp_schema())";
static const char held_cleanup_sql[] =
	"CLOSE ALL; SELECT pg_catalog.pg_advisory_unlock_all(); UNLISTEN *; DISCARD TEMP";
static const char set_cleanup_sql[] = "RESET ALL";

static void server_check_held(struct server *s)
{
	s->held_recheck = false;
	s->held_checking = true;
	s->held_none = false; /* until its row says 0 */
	server_internal_query(s, held_check_sql);
}

/* The held check's row: one count, as text; all that matters is whether it is 0. */
static void server_held_row(struct server *s, const uint8_t *body, size_t len)
{
	struct proto_reader r;
	proto_reader_init(&r, body, len);
	uint16_t ncol = proto_get_u16(&r);
	uint32_t l = proto_get_u32(&r);
	const uint8_t *v = ncol == 1 && l == 1 ? proto_get_bytes(&r, 1) : NULL;
	s->held_none = v && !r.bad && v[0] == '0';
}

/*
 * Before the server serves another client: undo what this one left (held state, session-level
 * SETs). false when there is nothing to undo; else the server is ready once it has answered.
 */
static bool server_clean_session(struct server *s)
{
	if (!s->held_dirty && !s->set_dirty)
		return false;
	char sql[sizeof(held_cleanup_sql) + sizeof(set_cleanup_sql) + 2];
	snprintf(sql, sizeof(sql), "%s%s%s", s->held_dirty ? held_cleanup_sql : "",
		 s->held_dirty && s->set_dirty ? "; " : "", s->set_dirty ? set_cleanup_sql : "");
	s->held_dirty = s->held_recheck = s->set_dirty = false;
	server_set_state(s, SV_TESTED);
	server_internal_query(s, sql);
	return true;
}

void server_release(struct server *s)
{
	struct worker *w = s->w;
	if (s->state == SV_CLOSED)
		return;
	s->client = NULL;
	if (!server_clean(s)) {
		server_close(s, "client left with the server in a transaction or mid-request");
		return;
	}
	const char *reset = w->cfg->server_reset_query;
	if (reset && *reset &&
	    (s->pool->pool_mode == POOL_MODE_SESSION || w->cfg->server_reset_query_always)) {
		server_set_state(s, SV_TESTED);
		server_internal_query(s, reset);
		return;
	}
	if (server_clean_session(s))
		return;
	pool_server_ready(s->pool, s);
}

/* End of a transaction-mode transaction: unlink and give the server back. */
static void server_txn_done(struct server *s)
{
	struct client *c = s->client;
	struct pool *pool = s->pool;
	usec_t now = worker_now(s->w);

	if (c->xact_start) {
		pool->stats.xact_count++;
		pool->stats.xact_time += (uint64_t)(now - c->xact_start);
		metrics_observe_xact(pool, now - c->xact_start);
		c->xact_start = 0;
	}
	if (pool->pool_mode == POOL_MODE_SESSION)
		return;
	c->server = NULL;
	s->client = NULL;
	client_set_state(c, CL_IDLE);
	if (!server_clean_session(s)) /* a session-level SET: RESET ALL first */
		pool_server_ready(pool, s);
}

void server_release_if_done(struct server *s)
{
	if (!s->client || s->rq.count != 0 || s->ext_open || s->copy_in || s->copy_out ||
	    s->txn_status != 'I' || client_mid_message(s->client))
		return;
	if (s->held_dirty) {
		/* Held state may be left: the client keeps its server while the server has some. */
		if (s->held_recheck)
			server_check_held(s);
		return;
	}
	server_txn_done(s);
}

/* ---- reading replies ---- */

static bool server_needs_whole(uint8_t type)
{
	switch (type) {
	case 'Z':
	case 'C':
	case 'E':
	case 'S':
	case 'G':
	case 'H':
	case 'W':
	case 'R':
	case 'K':
	case 'N':
	case 'A':
	case 'v':
	/* Completions pop the request queue and may be followed by pgtally's own replies at
	 * once, so they must have arrived whole (a RowDescription can be split across reads). */
	case '1':
	case '2':
	case '3':
	case 'n':
	case 'I':
	case 's':
	case 'T':
		return true;
	default:
		return false;
	}
}

static bool flush_to_client(struct server *s, size_t *run_start)
{
	struct iobuf *in = &s->sb.in;
	size_t n = in->rpos - *run_start;
	*run_start = in->rpos;
	if (n == 0)
		return true;
	if (!s->client)
		return true;
	s->pool->stats.bytes_sent += n;
	if (!sbuf_send(&s->client->sb, in->data + in->rpos - n, n)) {
		struct client *c = s->client;
		/* The client is gone; its server is dirty mid-reply. */
		client_close(c, NULL, "client connection broken on send");
		return false;
	}
	return true;
}

/* Send the replies pgtally makes itself (RQF_SYNTH entries) that are now due. */
static bool server_emit_synth(struct server *s, size_t *run_start)
{
	struct rq_entry *h;
	while ((h = rq_head(&s->rq)) && ((h->flags & RQF_SYNTH) || h->type == RQ_IGNORED)) {
		if (h->type == RQ_IGNORED) {
			rq_pop(&s->rq);
			continue;
		}
		uint8_t msg[5] = {h->synth, 0, 0, 0, 4};
		const void *p = h->data ? (const void *)h->data : msg;
		size_t n = h->data ? h->data_len : sizeof(msg);
		if (run_start && !flush_to_client(s, run_start))
			return false;
		bool ok = !s->client || sbuf_send(&s->client->sb, p, n);
		rq_pop(&s->rq);
		if (!ok) {
			client_close(s->client, NULL, "client connection broken on send");
			return false;
		}
	}
	return true;
}

void server_emit_due(struct server *s)
{
	(void)server_emit_synth(s, NULL);
}

/*
 * A Bind of shared statement id failed. When the server no longer has the statement (someone
 * ran DEALLOCATE on pgtally's name), forget that it had it: the next Bind prepares it again.
 * After DDL, a prepared statement's plan can no longer return what it did: PostgreSQL says so
 * once per session. Give the statement a new name so every server prepares it afresh and the
 * client sees the error only this once, as it would without a pooler.
 */
static void server_check_bind_error(struct server *s, uint32_t id, const uint8_t *body,
				    size_t len)
{
	struct proto_error e;
	if (!proto_parse_error(body, len, &e) || !e.sqlstate || !e.message)
		return;
	if (strcmp(e.sqlstate, "26000") == 0) {
		log_info("S-%llu: prepared statement PGT_%u is gone from the server; preparing it "
			 "again when next used",
			 (unsigned long long)s->id, id);
		server_pstmts_del(&s->pstmts, id);
		return;
	}
	if (strcmp(e.sqlstate, "0A000") != 0 || !strstr(e.message, "cached plan must not change"))
		return;
	if (pstmt_shared_renew(&s->w->pstmts, id))
		log_info("S-%llu: prepared statement PGT_%u has a stale plan; preparing it anew",
			 (unsigned long long)s->id, id);
}

/*
 * COPY FROM STDIN began (the head entry). PostgreSQL ignores Sync in copy mode, so the Syncs
 * the client sent after the COPY, and before a CopyDone or CopyFail, will get no reply.
 */
static void server_copy_in_started(struct server *s)
{
	struct rq_entry *h = rq_head(&s->rq);
	if (!h)
		return;
	for (uint32_t i = 1; i < s->rq.count; i++) {
		struct rq_entry *e = rq_at(&s->rq, i);
		if (e->copy_ends != h->copy_ends)
			break;
		if (e->type == RQ_SYNC && !(e->flags & RQF_SYNTH))
			e->type = RQ_IGNORED;
	}
	s->copy_in_open = s->copy_ends == h->copy_ends;
}

/* Entries the server skipped after an error: a Parse among them defined nothing. */
static void server_forget_skipped(struct server *s, const struct rq_entry *e)
{
	if (e->type != RQ_PARSE || !e->pstmt)
		return;
	if (!(e->flags & RQF_SYNTH))
		server_pstmts_del(&s->pstmts, e->pstmt);
	if (e->data && s->client) {
		const struct stmt_info *si = pstmt_find(s->client->pstmts, e->data);
		if (si && si->shared && si->shared->id == e->pstmt)
			pstmt_forget(s->client->pstmts, &s->w->pstmts, e->data);
	}
}

/* The message at rpos completes the head entry: forward it, then any replies now due. */
static bool server_complete_head(struct server *s, size_t *run_start, size_t total)
{
	rq_pop(&s->rq);
	s->sb.in.rpos += total;
	return server_emit_synth(s, run_start);
}

/*
 * The session lost every prepared statement (DEALLOCATE ALL or DISCARD ALL in a form pgtally
 * does not answer itself, now complete at the head); DISCARD ALL also reset its parameters.
 * Parses queued behind it define their statements again.
 */
static void server_session_discarded(struct server *s, bool discard_all)
{
	server_pstmts_free(&s->pstmts);
	for (uint32_t i = 1; i < s->rq.count; i++) {
		const struct rq_entry *e = rq_at(&s->rq, i);
		if (e->type == RQ_PARSE && e->pstmt && !(e->flags & RQF_SYNTH) &&
		    !server_pstmts_add(&s->pstmts, e->pstmt))
			s->close_needed = true; /* out of memory: do not trust what it holds */
	}
	if (discard_all) {
		/* DISCARD ALL closed every cursor, lock, listen and table, and did RESET ALL */
		s->held_dirty = s->set_dirty = false;
		/* Reported parameters come back in ParameterStatus; the others are unknown. */
		for (int i = 0; i < PARAM_COUNT; i++)
			if (!s->pool->welcome_params[i])
				server_param_reset(s, i);
	}
	log_debug("S-%llu: session discarded by the client; prepared statements forgotten",
		  (unsigned long long)s->id);
	if (s->client)
		fwd_client_discarded(s->client, discard_all);
}

static bool tag_is(const char *tag, size_t taglen, const char *word)
{
	size_t n = strlen(word);
	return taglen == n + 1 && memcmp(tag, word, n + 1) == 0;
}

/* A statement completed (tag set), or failed: statistics and N+1 bookkeeping. */
static void server_statement_done(struct server *s, const struct rq_entry *e, const char *tag,
				  size_t taglen, bool failed)
{
	uint64_t rows = 0;
	if (tag && taglen && tag[taglen - 1] == '\0')
		rows = proto_command_rows(tag, taglen - 1);
	usec_t now = worker_now(s->w);
	usec_t start = e->sent > s->last_done ? e->sent : s->last_done;
	s->last_done = now;
	struct fp_entry *fe = stats_fp_record(s->w, s->pool, e, rows, now - start, failed);
	struct client *c = s->client;
	if (c && c->np && (e->flags & RQF_COUNTED))
		fwd_statement_done(c, e, fe ? fe->query : NULL, rows, now - start, failed, now);
}

/* A message for an internal query (parameter SET, reset, check): consumed here. */
static void server_internal_message(struct server *s, uint8_t type, const uint8_t *body,
				    size_t len)
{
	if (s->held_checking && (type == 'D' || type == 'E')) {
		if (type == 'D') {
			server_held_row(s, body, len);
			return;
		}
		struct proto_error e;
		bool ok = proto_parse_error(body, len, &e);
		log_warning("S-%llu %s/%s: the check for held cursors and locks failed: %s",
			    (unsigned long long)s->id, s->pool->db->name, s->pool->user->name,
			    ok && e.message ? e.message : "?");
		return; /* held_none stays false: the client keeps the server */
	}
	if (type == 'D' && s->auth_client) {
		/* auth_query row: (user name, password); a NULL password means no login. */
		struct proto_reader r;
		proto_reader_init(&r, body, len);
		uint16_t ncol = proto_get_u16(&r);
		uint32_t l1 = proto_get_u32(&r);
		if (ncol >= 2 && l1 != 0xffffffffu && proto_get_bytes(&r, l1)) {
			uint32_t l2 = proto_get_u32(&r);
			const uint8_t *pw = l2 != 0xffffffffu ? proto_get_bytes(&r, l2) : NULL;
			if (pw && !r.bad && l2 < 1024) {
				char buf[1024];
				memcpy(buf, pw, l2);
				buf[l2] = '\0';
				auth_lookup_result(s->auth_client, buf);
			}
		}
		return;
	}
	if (type == 'E') {
		if (s->auth_client) {
			struct proto_error e;
			struct client *c = s->auth_client;
			s->auth_client = NULL;
			bool ok = proto_parse_error(body, len, &e);
			auth_lookup_done(c, ok && e.message ? e.message : "error from server");
			/* The server stays: it answers ReadyForQuery next. */
			return;
		}
		struct proto_error e;
		bool ok = proto_parse_error(body, len, &e);
		/* A failed connect_query is logged and the connection used anyway, as in PgBouncer. */
		log_warning("S-%llu %s/%s: %s failed: %s", (unsigned long long)s->id,
			    s->pool->db->name, s->pool->user->name,
			    s->in_connect_query ? "connect_query" : "internal query",
			    ok && e.message ? e.message : "?");
		if (s->client) {
			/*
			 * The SET that makes this session match the client's parameters failed
			 * (e.g. a bad TimeZone in its startup options): PostgreSQL would have
			 * refused that connection, so do the same rather than run with other values.
			 */
			client_close(s->client, ok && e.sqlstate ? e.sqlstate : "22023",
				     "invalid connection parameter: %s",
				     ok && e.message ? e.message : "?");
		}
	} else if (type == 'S' && s->in_connect_query) {
		server_login_param(s, body, len);
	} else if (type == 'S') {
		struct proto_reader r;
		proto_reader_init(&r, body, len);
		const char *k = proto_get_str(&r);
		const char *v = proto_get_str(&r);
		if (k && v)
			server_set_param(s, k, v);
	} else if (type == 'Z') {
		rq_pop(&s->rq);
		s->txn_status = len ? (char)body[0] : 'I';
		if (s->held_checking) {
			s->held_checking = false;
			/* Not when a statement sent after the check may have taken some (held_recheck
			 * is set again then): the answer is older than that statement. */
			if (s->held_none && !s->held_recheck)
				s->held_dirty = false;
			server_release_if_done(s); /* a client that left during it closed the server */
			return;
		}
		if (s->auth_client) {
			struct client *c = s->auth_client;
			s->auth_client = NULL;
			auth_lookup_done(c, NULL);
		}
		if (s->in_connect_query && s->rq.count == 0) {
			s->in_connect_query = false;
			if (s->txn_status != 'I')
				server_close(s, "connect_query left the server in a transaction");
			else
				server_login_done(s);
		} else if (s->rq.count == 0 && !s->client &&
			   (s->state == SV_TESTED || s->state == SV_USED)) {
			if (s->txn_status != 'I')
				server_close(s, "check or reset query left the server in a transaction");
			else
				pool_server_ready(s->pool, s);
		}
	}
}

/* A message while no client is linked and nothing is expected. */
static void server_unlinked_message(struct server *s, uint8_t type, const uint8_t *body,
				    size_t len)
{
	struct proto_error e;
	switch (type) {
	case 'S':
		server_internal_message(s, type, body, len);
		break;
	case 'N':
	case 'A': /* a NOTIFY for a LISTEN nobody is around for */
		break;
	case 'E':
		if (proto_parse_error(body, len, &e))
			server_close(s, "server error while idle: %s", e.message ? e.message : "?");
		else
			server_close(s, "server error while idle");
		break;
	default:
		server_close(s, "unexpected message '%c' from an idle server", type);
		break;
	}
}

void server_process(struct server *s)
{
	struct iobuf *in = &s->sb.in;
	size_t run_start = in->rpos;
	struct worker *w = s->w;

	while (iobuf_avail(in) > 0 && s->state != SV_CLOSED) {
		if (s->fwd_remaining) {
			size_t take = iobuf_avail(in);
			if (take > s->fwd_remaining)
				take = s->fwd_remaining;
			in->rpos += take;
			s->fwd_remaining -= (uint32_t)take;
			if (!s->client)
				run_start = in->rpos; /* the client left: drop */
			continue;
		}
		size_t avail = iobuf_avail(in);
		if (avail < 5)
			break;
		const uint8_t *hdr = in->data + in->rpos;
		uint8_t type = hdr[0];
		uint32_t len = proto_be32(hdr + 1);
		size_t total = (size_t)len + 1;
		bool whole = server_needs_whole(type) || s->state == SV_LOGIN || !s->client ||
			     (s->rq.count && rq_head(&s->rq)->type == RQ_INTERNAL);
		/* What is held whole is small from a real server: a huge length (or a peer that is
		 * not PostgreSQL) is a protocol error, never a reason to allocate that much. */
		if (len < 4 || (len > SERVER_WHOLE_MAX && whole)) {
			flush_to_client(s, &run_start);
			server_close(s, "bad message length %u from server (type '%c')", len, type);
			return;
		}
		if (whole && avail < total) {
			if (in->cap < total) {
				if (!flush_to_client(s, &run_start))
					return;
				if (!iobuf_reserve(in, total - avail)) {
					server_close(s, "out of memory for a server message");
					return;
				}
				run_start = in->rpos;
			}
			break;
		}
		const uint8_t *body = hdr + 5;
		size_t blen = len - 4;

		if (s->state == SV_LOGIN && !s->in_connect_query) {
			in->rpos += total;
			run_start = in->rpos;
			server_login_message(s, type, body, blen);
			continue;
		}
		if (s->rq.count && rq_head(&s->rq)->type == RQ_INTERNAL) {
			if (!flush_to_client(s, &run_start))
				return;
			in->rpos += total;
			run_start = in->rpos;
			server_internal_message(s, type, body, blen);
			continue;
		}
		if (!s->client) {
			in->rpos += total;
			run_start = in->rpos;
			server_unlinked_message(s, type, body, blen);
			continue;
		}

		struct client *c = s->client;
		struct rq_entry *h = rq_head(&s->rq);
		switch (type) {
		case 'Z': {
			in->rpos += total;
			if (!flush_to_client(s, &run_start))
				return;
			char st = blen ? (char)body[0] : 'I';
			s->txn_status = st;
			c->in_txn = st != 'I';
			if (st == 'I' && c->np)
				nplus1_idle(c->np, worker_now(w));
			/* Everything up to this request's end is answered (or was skipped). */
			while ((h = rq_head(&s->rq))) {
				uint8_t t = h->type;
				if (t != RQ_SYNC && t != RQ_QEND && t != RQ_FUNC)
					server_forget_skipped(s, h); /* skipped after an error */
				rq_pop(&s->rq);
				if (t == RQ_SYNC || t == RQ_QEND || t == RQ_FUNC)
					break;
			}
			stats_ready(c, s, st, worker_now(w));
			if (!server_emit_synth(s, &run_start))
				return;
			server_release_if_done(s);
			continue;
		}
		case '1':
		case '2':
		case '3':
			if (h && (h->type == RQ_PARSE || h->type == RQ_BIND || h->type == RQ_CLOSE)) {
				bool drop = h->flags & RQF_SWALLOW;
				rq_pop(&s->rq);
				if (drop) {
					if (!flush_to_client(s, &run_start))
						return;
					in->rpos += total;
					run_start = in->rpos;
				} else {
					in->rpos += total;
				}
				if (!server_emit_synth(s, &run_start))
					return;
				continue;
			}
			break;
		case 'T':
		case 'n':
			if (h && h->type == RQ_DESCRIBE) {
				if (!server_complete_head(s, &run_start, total))
					return;
				continue;
			}
			break;
		case 'C':
		case 'I':
		case 's':
			if (type == 'C')
				s->copy_in = s->copy_out = s->copy_in_open = false;
			if (h && (h->type == RQ_STMT || h->type == RQ_EXECUTE)) {
				if (type == 'C' && (tag_is((const char *)body, blen, "DISCARD ALL") ||
						    tag_is((const char *)body, blen, "DEALLOCATE ALL")))
					server_session_discarded(s, body[1] == 'I');
				if (type != 's')
					server_statement_done(s, h, type == 'C' ? (const char *)body : NULL,
							      blen, false);
				if (!server_complete_head(s, &run_start, total))
					return;
				continue;
			}
			break;
		case 'E':
			s->copy_in = s->copy_out = s->copy_in_open = false;
			if (h && h->type == RQ_STMT) {
				/* The rest of this Query's statements will not run. */
				server_statement_done(s, h, NULL, 0, true);
				while ((h = rq_head(&s->rq)) && h->type == RQ_STMT)
					rq_pop(&s->rq);
			} else if (h && h->type != RQ_SYNC && h->type != RQ_QEND && h->type != RQ_FUNC) {
				/* Extended protocol: the server skips everything up to Sync. */
				if (h->type == RQ_EXECUTE)
					server_statement_done(s, h, NULL, 0, true);
				if (h->type == RQ_BIND && h->pstmt)
					server_check_bind_error(s, h->pstmt, body, blen);
				while ((h = rq_head(&s->rq)) && h->type != RQ_SYNC) {
					server_forget_skipped(s, h);
					rq_pop(&s->rq);
				}
			}
			break;
		case 'S': {
			struct proto_reader r;
			proto_reader_init(&r, body, blen);
			const char *k = proto_get_str(&r);
			const char *v = proto_get_str(&r);
			if (k && v) {
				server_set_param(s, k, v);
				int id = param_lookup(k);
				if (id >= 0 && (!c->params[id] || strcmp(c->params[id], v) != 0))
					(void)client_param_set(c, id, v);
			}
			break;
		}
		case 'G':
			s->copy_in = true;
			server_copy_in_started(s);
			break;
		case 'H':
			s->copy_out = true;
			break;
		case 'W':
			s->copy_in = s->copy_out = true;
			server_copy_in_started(s);
			break;
		case 'c':
			s->copy_out = false;
			break;
		default:
			break;
		}
		if (avail >= total) {
			in->rpos += total;
		} else {
			in->rpos += avail;
			s->fwd_remaining = (uint32_t)(total - avail);
		}
	}
	if (s->state == SV_CLOSED)
		return;
	if (!flush_to_client(s, &run_start))
		return;
	if (s->client && sbuf_queued(&s->client->sb) > SBUF_HIGH_WATER)
		sbuf_pause_read(&s->sb);
	if (iobuf_avail(in) == 0)
		iobuf_reset(in);
}

static void server_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	(void)fd;

	if (s->state == SV_CLOSED)
		return;
	worker_tick(s->w);
	if (what & EV_READ) {
		ssize_t n = sbuf_read(s->w, &s->sb);
		if (n == 0) {
			server_close(s, "server closed the connection");
			return;
		}
		if (n == -1) {
			server_close(s, "read from server failed: %s",
				     sbuf_strerror(&s->sb, errno));
			return;
		}
	}
	server_process(s);
}

static void server_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	(void)fd;
	(void)what;

	if (s->state == SV_CLOSED)
		return;
	worker_tick(s->w);
	if (!sbuf_flush(&s->sb)) {
		server_close(s, "send to server failed: %s", sbuf_strerror(&s->sb, errno));
		return;
	}
	if (sbuf_queued(&s->sb) == 0 && s->client) {
		sbuf_resume_read(&s->client->sb);
		if (iobuf_avail(&s->client->sb.in))
			sbuf_kick(&s->client->sb);
	}
}

/* ---- cancel ---- */

/*
 * A cancel request being forwarded: connect, send the 16 bytes, wait for PostgreSQL to close
 * the connection. cancel_wait_timeout bounds the whole of it (0: no bound); cancel requests are
 * not queued behind the pool, so there is no wait for a server as in PgBouncer.
 */
struct cancel_conn {
	struct list node; /* worker->cancel_conns */
	struct event ev;
	struct worker *w;
	int fd;
	uint8_t pkt[16];
	size_t sent;
	usec_t deadline; /* 0: none */
};

static void cancel_cb(evutil_socket_t fd, short what, void *arg);

/* Wait for what (EV_WRITE or EV_READ) until the deadline. */
static void cancel_wait(struct cancel_conn *cc, short what)
{
	struct timeval tv = {0, 0};
	if (cc->deadline) {
		usec_t now = worker_now(cc->w);
		usec_t left = cc->deadline > now ? cc->deadline - now : 0;
		tv.tv_sec = (time_t)(left / 1000000);
		tv.tv_usec = (suseconds_t)(left % 1000000);
	}
	event_assign(&cc->ev, cc->w->base, cc->fd, what | EV_PERSIST, cancel_cb, cc);
	event_add(&cc->ev, cc->deadline ? &tv : NULL);
}

static void cancel_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cancel_conn *cc = arg;
	if (cc->sent < sizeof(cc->pkt)) {
		if (what & EV_TIMEOUT) {
			log_warning("cancel request not sent within cancel_wait_timeout (%.3g s): "
				    "dropped",
				    (double)cc->w->cfg->cancel_wait_timeout / 1e6);
			goto done;
		}
		ssize_t n = send(fd, cc->pkt + cc->sent, sizeof(cc->pkt) - cc->sent, MSG_NOSIGNAL);
		if (n > 0)
			cc->sent += (size_t)n;
		if (n < 0 && (errno == EAGAIN || errno == EINPROGRESS))
			return;
		if (n > 0 && cc->sent < sizeof(cc->pkt))
			return;
		if (n <= 0) {
			log_warning("sending cancel request failed: %s", strerror(errno));
			goto done;
		}
		/* Sent: PostgreSQL closes the connection when done; wait for that. */
		event_del(&cc->ev);
		cancel_wait(cc, EV_READ);
		return;
	}
	{
		char buf[64];
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR) && !(what & EV_TIMEOUT))
			return;
		if (what & EV_TIMEOUT)
			log_info("cancel request sent, but PostgreSQL did not close the connection "
				 "within cancel_wait_timeout: closing it");
	}
done:
	list_del(&cc->node);
	event_del(&cc->ev);
	close(cc->fd);
	free(cc);
}

void server_cancels_free(struct worker *w)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &w->cancel_conns)
	{
		struct cancel_conn *cc = container_of(pos, struct cancel_conn, node);
		list_del(&cc->node);
		event_del(&cc->ev);
		close(cc->fd);
		free(cc);
	}
}

void server_send_cancel(struct server *s)
{
	char err[256];
	struct iobuf b = {0};
	/* To the address s is on (the backend to cancel is there), without a lookup. */
	union dns_addr addr;
	socklen_t len;
	int fd = s->addr_len ? connect_addr(&s->addr, s->addr_len, s->w->cfg, "the server", err,
					    sizeof(err))
			     : server_connect_socket(s->w, s->pool->db, s->host_idx, &addr, &len, err,
						     sizeof(err));
	if (fd < 0) {
		log_warning("cannot forward cancel request: %s", err);
		return;
	}
	struct cancel_conn *cc = calloc(1, sizeof(*cc));
	if (!cc) {
		close(fd);
		return;
	}
	proto_build_cancel(&b, s->be_pid, s->be_key);
	if (!pkt_ok(&b) || iobuf_avail(&b) != sizeof(cc->pkt)) {
		iobuf_release(&b);
		close(fd);
		free(cc);
		return;
	}
	memcpy(cc->pkt, b.data, sizeof(cc->pkt));
	iobuf_release(&b);
	cc->fd = fd;
	cc->w = s->w;
	usec_t wait = s->w->cfg->cancel_wait_timeout;
	cc->deadline = wait > 0 ? worker_now(s->w) + wait : 0;
	cancel_wait(cc, EV_WRITE);
	list_append(&s->w->cancel_conns, &cc->node);
	log_debug("S-%llu: forwarding cancel request", (unsigned long long)s->id);
}
