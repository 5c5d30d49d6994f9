/* client: the client-side state machine: startup packet, login, forwarding to a server. */
#include "client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin.h"
#include "app.h"
#include "auth.h"
#include "listener.h"
#include "log.h"
#include "fingerprint.h"
#include "forward.h"
#include "nplus1.h"
#include "prepared.h"
#include "proto.h"
#include "rq.h"
#include "server.h"
#include "stats.h"
#include "tls.h"
#include "worker.h"

/* PostgreSQL drops a connection without a word for messages of 1 GB or more; say why here. */
#define PG_MAX_MESSAGE ((int64_t)0x3fffffff)

static void client_read_cb(evutil_socket_t fd, short what, void *arg);
static void client_write_cb(evutil_socket_t fd, short what, void *arg);

/* Append s to buf[*n..len) as far as it fits (buf stays terminated). */
static void describe_put(char *buf, size_t len, size_t *n, const char *s)
{
	size_t k = strlen(s);
	if (*n + k >= len)
		k = len - 1 - *n;
	memcpy(buf + *n, s, k);
	*n += k;
	buf[*n] = '\0';
}

/* Two log lines per connection name the client: formatted by hand, not by snprintf. */
const char *client_describe(const struct client *c, char *buf, size_t len)
{
	char addr[INET6_ADDRSTRLEN] = "unix", num[24];
	int port = 0;
	size_t n = 0;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	if (c->addr.sa.sa_family == AF_INET) {
		const uint8_t *ip = (const uint8_t *)&c->addr.in.sin_addr;
		size_t k = 0;
		for (int i = 0; i < 4; i++) {
			const char *d = log_fmt_uint(num + sizeof(num), ip[i]);
			size_t dl = strlen(d);
			memcpy(addr + k, d, dl);
			k += dl;
			addr[k++] = i < 3 ? '.' : '\0';
		}
		port = ntohs(c->addr.in.sin_port);
	} else if (c->addr.sa.sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = &c->addr.in6;
		inet_ntop(AF_INET6, &a->sin6_addr, addr, sizeof(addr));
		port = ntohs(a->sin6_port);
	}
	describe_put(buf, len, &n, "C-");
	describe_put(buf, len, &n, log_fmt_uint(num + sizeof(num), c->id));
	describe_put(buf, len, &n, " ");
	describe_put(buf, len, &n, c->db_name ? c->db_name : "(nodb)");
	describe_put(buf, len, &n, "/");
	describe_put(buf, len, &n, c->user_name ? c->user_name : "(nouser)");
	describe_put(buf, len, &n, "@");
	describe_put(buf, len, &n, addr);
	describe_put(buf, len, &n, ":");
	describe_put(buf, len, &n, log_fmt_uint(num + sizeof(num), (unsigned)port));
	return buf;
}

static struct list *client_state_list(struct client *c, enum client_state st)
{
	struct worker *w = c->w;
	switch (st) {
	case CL_LOGIN:
		return &w->login_clients;
	case CL_WELCOME_WAIT:
		return &c->pool->login_clients;
	case CL_IDLE:
	case CL_ACTIVE:
		return &c->pool->active_clients;
	case CL_WAITING:
		return &c->pool->waiting_clients;
	case CL_ADMIN:
		return &w->admin_clients;
	case CL_CLOSED:
		return &w->closed_clients;
	}
	return &w->closed_clients;
}

bool client_param_set(struct client *c, int id, const char *v)
{
	uint8_t bit = (uint8_t)(1u << id);
	char *copy = NULL;
	if (v && !(copy = strdup(v)))
		return false;
	if (c->params_own & bit)
		free((char *)c->params[id]);
	c->params[id] = copy;
	if (copy)
		c->params_own |= bit;
	else
		c->params_own &= (uint8_t)~bit;
	if (id == PARAM_APPLICATION_NAME)
		client_sync_np_ctx(c);
	return true;
}

void client_sync_np_ctx(struct client *c)
{
	c->np_ctx = (struct nplus1_ctx){
		.database = c->pool ? c->pool->db->name : NULL,
		.user = c->pool ? c->pool->user->name : NULL,
		.application_name = c->params[PARAM_APPLICATION_NAME],
	};
}

void client_set_state(struct client *c, enum client_state st)
{
	/* Only when the list changes: idle and active share one, so the change every transaction
	 * makes touches no neighbour. */
	struct list *to = client_state_list(c, st);
	if (to != client_state_list(c, c->state)) {
		list_del(&c->node);
		list_append(to, &c->node);
	}
	c->state = st;
}

static void cancel_table_add(struct client *c)
{
	struct worker *w = c->w;
	size_t slot = c->cancel_pid % CANCEL_TABLE_SIZE;
	c->cancel_next = w->cancel_table[slot];
	w->cancel_table[slot] = c;
}

static void cancel_table_del(struct client *c)
{
	struct worker *w = c->w;
	struct client **pp = &w->cancel_table[c->cancel_pid % CANCEL_TABLE_SIZE];
	while (*pp) {
		if (*pp == c) {
			*pp = c->cancel_next;
			return;
		}
		pp = &(*pp)->cancel_next;
	}
}

void client_accept(struct worker *w, int fd, const struct sockaddr *addr, socklen_t addrlen,
		   bool is_unix)
{
	struct client *c = objcache_alloc(&w->clients);
	if (!c) {
		log_error("out of memory accepting a client");
		close(fd);
		return;
	}
	/* The other TCP options come with the socket from its listener (listener.c). */
	if (!is_unix && w->cfg->tcp_socket_buffer > 0)
		tcp_tune_socket(fd, w->cfg, false);
	c->w = w;
	c->id = ++w->next_id;
	c->is_unix = is_unix;
	if (addrlen <= sizeof(c->addr))
		memcpy(&c->addr, addr, addrlen);
	if (is_unix)
		c->addr.sa.sa_family = AF_UNIX;
	c->connect_time = c->request_time = worker_now(w);
	list_init(&c->node);
	c->state = CL_LOGIN;
	list_append(&w->login_clients, &c->node);
	w->n_clients++;
	app_clients_add(1);
	sbuf_setup(w, &c->sb, fd, client_read_cb, client_write_cb, c);
	/*
	 * Drivers send their first packet (SSLRequest or StartupMessage) as soon as the
	 * connection is up, so it is usually here already: reading now saves a trip through
	 * epoll_wait, a sleep and a wake-up, per connection (PgBouncer does the same).
	 */
	client_read_cb(fd, EV_READ, c);
}

bool client_send(struct client *c, struct iobuf *b)
{
	if (!pkt_ok(b)) {
		iobuf_reset(b);
		client_close(c, NULL, "out of memory building a message");
		return false;
	}
	bool ok = sbuf_send(&c->sb, b->data + b->rpos, iobuf_avail(b));
	iobuf_reset(b);
	if (!ok) {
		client_close(c, NULL, "client connection broken on send");
		return false;
	}
	return true;
}

void client_send_error(struct client *c, const char *sqlstate, const char *msg)
{
	struct iobuf b = {0};
	proto_build_error(&b, false, "ERROR", sqlstate, msg);
	(void)client_send(c, &b);
	iobuf_release(&b);
}

static void client_unlink_server(struct client *c)
{
	struct server *s = c->server;
	if (!s)
		return;
	c->server = NULL;
	s->client = NULL;
	if (client_mid_message(c)) {
		/* The server has part of a message: whatever came next would complete it. */
		server_close(s, "client left in the middle of a message");
		return;
	}
	server_release(s);
}

void client_close(struct client *c, const char *sqlstate, const char *fmt, ...)
{
	char why[512];
	char who[160];
	va_list ap;

	if (c->state == CL_CLOSED)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);

	struct config *cfg = c->w->cfg;
	if (sqlstate) {
		if (cfg->log_pooler_errors)
			log_warning("%s pooler error: %s", client_describe(c, who, sizeof(who)),
				    why);
		struct iobuf b = {0};
		proto_build_error(&b, false, "FATAL", sqlstate, why);
		if (pkt_ok(&b) && !sbuf_send(&c->sb, b.data, iobuf_avail(&b)))
			log_debug("could not send the error to the client");
		iobuf_release(&b);
	} else if (cfg->log_disconnections && c->state != CL_LOGIN) {
		log_info("%s closing because: %s (age=%llds)", client_describe(c, who, sizeof(who)),
			 why, (long long)((worker_now(c->w) - c->connect_time) / 1000000));
	} else {
		log_debug("%s closing because: %s", client_describe(c, who, sizeof(who)), why);
	}

	client_unlink_server(c);
	if (c->np) {
		nplus1_unit_end(c->np, c->w->nplus1, &c->w->cfg->np, &c->np_ctx, worker_now(c->w));
		nplus1_unit_free(c->np);
		c->np = NULL;
	}
	if (c->cancel_pid)
		cancel_table_del(c);
	if (c->pool) {
		c->pool->db->n_clients--;
		c->pool->user->n_clients--;
	}
	sbuf_close(c->w, &c->sb);
	c->w->n_clients--;
	app_clients_add(-1);
	client_set_state(c, CL_CLOSED);
	worker_schedule_reap(c->w);
}

void client_reap(struct worker *w)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &w->closed_clients)
	{
		struct client *c = container_of(pos, struct client, node);
		list_del(&c->node);
		auth_free(c);
		for (int i = 0; i < PARAM_COUNT; i++)
			client_param_set(c, i, NULL);
		free(c->db_name);
		free(c->user_name);
		pstmt_map_free(c->pstmts, &w->pstmts);
		free(c->tags);
		sbuf_free(&c->sb);
		objcache_free(&w->clients, c);
	}
}

/* ---- login ---- */

static bool startup_param_allowed(struct client *c, const char *key)
{
	static const char *const handled[] = {"user",        "database",           "options",
					      "replication", "extra_float_digits", NULL};
	for (int i = 0; handled[i]; i++)
		if (strcmp(key, handled[i]) == 0)
			return true;
	if (param_lookup(key) >= 0)
		return true;
	return config_list_contains(c->w->cfg->ignore_startup_parameters, key);
}

/* Parse libpq's "options" (-c name=value, --name=value) into tracked parameters. */
static bool client_parse_options(struct client *c, const char *opts)
{
	char buf[1024];
	if (strlen(opts) >= sizeof(buf)) {
		client_close(c, "08P01", "startup options too long");
		return false;
	}
	strcpy(buf, opts);
	char *save = NULL;
	bool expect_c = false;
	for (char *tok = strtok_r(buf, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		char *kv;
		if (strcmp(tok, "-c") == 0) {
			expect_c = true;
			continue;
		}
		if (expect_c)
			kv = tok;
		else if (strncmp(tok, "-c", 2) == 0)
			kv = tok + 2;
		else if (strncmp(tok, "--", 2) == 0)
			kv = tok + 2;
		else {
			client_close(c, "08P01", "unsupported startup option: %s", tok);
			return false;
		}
		expect_c = false;
		char *eq = strchr(kv, '=');
		if (!eq) {
			client_close(c, "08P01", "unsupported startup option: %s", kv);
			return false;
		}
		*eq = '\0';
		int id = param_lookup(kv);
		if (id >= 0) {
			if (!client_param_set(c, id, eq + 1)) {
				client_close(c, "53200", "out of memory");
				return false;
			}
		} else if (!config_list_contains(c->w->cfg->ignore_startup_parameters, kv)) {
			client_close(c, "08P01", "unsupported startup parameter in options: %s",
				     kv);
			return false;
		}
	}
	return true;
}

static bool is_admin_db(struct worker *w, const char *db)
{
	if (strcmp(db, "pgtally") != 0 && strcmp(db, "pgbouncer") != 0)
		return false;
	/* A real database of that name in [databases] wins. */
	return config_find_db(w->cfg, db, false) == NULL;
}

static void client_handle_startup(struct client *c, const uint8_t *pkt, size_t len)
{
	struct proto_startup st;
	const char *err = NULL;
	struct iobuf b = {0};

	if (!proto_parse_startup(pkt, len, &st, &err)) {
		client_close(c, "08P01", "bad startup packet: %s", err);
		return;
	}
	if (st.code == PROTO_SSL_REQUEST && c->w->tls_accept && !c->is_unix) {
		/* Bytes sent after the request, before the handshake, must not count as encrypted.
		 */
		if (iobuf_avail(&c->sb.in)) {
			client_close(c, "08P01", "received unencrypted data after SSL request");
			return;
		}
		/* 'S', then the handshake; the startup packet comes through TLS into sb.in. */
		if (!sbuf_accept_tls(&c->sb, c->w->tls_accept))
			client_close(c, NULL, "cannot start TLS: %s", sbuf_strerror(&c->sb, errno));
		return;
	}
	if (st.code == PROTO_SSL_REQUEST || st.code == PROTO_GSSENC_REQUEST) {
		/* Refuse encryption; the client may go on in plain text. */
		if (!sbuf_send(&c->sb, "N", 1))
			client_close(c, NULL, "send failed");
		return;
	}
	if (st.code == PROTO_CANCEL_REQUEST) {
		client_handle_cancel(c->w, st.cancel_pid, st.cancel_key);
		client_close(c, NULL, "cancel request handled");
		return;
	}
	/* client_tls_sslmode = require and up; unix sockets are local and stay allowed. */
	if (!c->is_unix && !sbuf_is_tls(&c->sb) &&
	    tls_mode_requires_tls(tls_ctx_mode(c->w->tls_accept))) {
		client_close(c, "08P01", "SSL required: this server accepts only TLS connections");
		return;
	}

	/* 3.x with x > 0, or _pq_ options: tell the client what we speak. */
	const char *unknown[PROTO_MAX_STARTUP_PARAMS];
	size_t n_unknown = 0;
	for (size_t i = 0; i < st.n_params; i++) {
		const char *k = st.keys[i];
		if (strncmp(k, "_pq_.", 5) == 0) {
			unknown[n_unknown++] = k;
			continue;
		}
		if (!startup_param_allowed(c, k)) {
			client_close(c, "08P01", "unsupported startup parameter: %s", k);
			return;
		}
	}
	if ((st.code & 0xffff) != 0 || n_unknown) {
		proto_build_negotiate_version(&b, 0, unknown, n_unknown);
		if (!client_send(c, &b)) {
			iobuf_release(&b);
			return;
		}
	}
	iobuf_release(&b);

	const char *user = proto_startup_get(&st, "user");
	const char *db = proto_startup_get(&st, "database");
	const char *repl = proto_startup_get(&st, "replication");
	if (!user || !*user) {
		client_close(c, "08P01", "no user name in startup packet");
		return;
	}
	if (!db || !*db)
		db = user;
	c->user_name = strdup(user);
	c->db_name = strdup(db);
	if (!c->user_name || !c->db_name) {
		client_close(c, "53200", "out of memory");
		return;
	}
	if (repl && strcmp(repl, "false") != 0 && strcmp(repl, "0") != 0 &&
	    strcmp(repl, "off") != 0) {
		client_close(c, "08P01", "replication connections are not supported");
		return;
	}
	for (size_t i = 0; i < st.n_params; i++) {
		int id = param_lookup(st.keys[i]);
		if (id >= 0 && !client_param_set(c, id, st.values[i])) {
			client_close(c, "53200", "out of memory");
			return;
		}
	}
	const char *opts = proto_startup_get(&st, "options");
	if (opts && *opts && !client_parse_options(c, opts))
		return;
	if (c->w->cfg->application_name_add_host && !c->is_unix) {
		/* "app - host:port", so SHOW CLIENTS and pg_stat_activity tell clients apart. */
		char who[160], host[INET6_ADDRSTRLEN + 8], name[256];
		client_describe(c, who, sizeof(who));
		const char *at = strrchr(who, '@');
		snprintf(host, sizeof(host), "%s", at ? at + 1 : "");
		const char *app = c->params[PARAM_APPLICATION_NAME];
		snprintf(name, sizeof(name), "%s%s%s", app && *app ? app : "",
			 app && *app ? " - " : "", host);
		if (!client_param_set(c, PARAM_APPLICATION_NAME, name)) {
			client_close(c, "53200", "out of memory");
			return;
		}
	}

	struct worker *w = c->w;
	bool admin = is_admin_db(w, db);
	/* The console stays reachable when clients are at the limit: that is when it is needed. */
	if (!admin && app_clients_add(0) > w->cfg->max_client_conn) {
		client_close(c, "53300", "no more connections allowed (max_client_conn)");
		return;
	}
	if (w->shutting_down) {
		client_close(c, "57P03", "pgtally is shutting down");
		return;
	}
	if (admin) {
		auth_begin(c, true);
		return;
	}
	struct pool_db *pdb = pool_db_find(w, db, true);
	if (!pdb) {
		client_close(c, "3D000", "no such database: %s", db);
		return;
	}
	if (pdb->disabled) {
		client_close(c, "57P03", "database \"%s\" is disabled", db);
		return;
	}
	if (w->cfg->auth_type == AUTH_TYPE_ANY && !pdb->cfg.user) {
		/* "any" checks nothing, so only a forced user may say who reaches PostgreSQL. */
		char who[160];
		log_error("%s auth_type = any needs a forced user, and database %s has no user=",
			  client_describe(c, who, sizeof(who)), db);
		client_close(c, "08P01", "pgtally config error: auth_type any without a forced user");
		return;
	}
	auth_begin(c, false);
}

/* Called by auth when the client proved who it is; b holds replies not yet sent. */
void client_auth_ok(struct client *c, bool admin, struct iobuf *b)
{
	struct worker *w = c->w;

	auth_free(c);
	proto_build_auth(b, 0, NULL, 0);
	if (admin) {
		client_set_state(c, CL_ADMIN);
		admin_welcome(c, b);
		return;
	}
	struct pool_db *pdb = pool_db_find(w, c->db_name, true);
	const char *pool_user_name = pdb && pdb->cfg.user ? pdb->cfg.user : c->user_name;
	struct pool_user *pu = pdb ? pool_user_find(w, pool_user_name, true) : NULL;
	struct pool *pool = pu ? pool_get(w, pdb, pu) : NULL;
	if (!pool) {
		iobuf_reset(b);
		client_close(c, "53200", "out of memory");
		return;
	}
	c->pool = pool;
	client_sync_np_ctx(c);
	pdb->n_clients++;
	pu->n_clients++;
	pool->stats.client_login_count++;
	if (w->cfg->log_connections) {
		char who[160];
		log_info("%s login: db=%s user=%s", client_describe(c, who, sizeof(who)),
			 c->db_name, c->user_name);
	}
	pool_welcome_adopt(pool); /* another worker's, when this one has none yet */
	client_set_state(c, CL_WELCOME_WAIT);
	if (pool->have_welcome) {
		client_welcome(c, b);
		return;
	}
	/* AuthenticationOk now; parameters once a server has told us them. */
	if (!client_send(c, b))
		return;
	pool_maintain(pool);
}

void client_welcome(struct client *c, struct iobuf *b)
{
	struct pool *pool = c->pool;

	/* Fill unset parameters from the server's defaults, then report ours. */
	for (int i = 0; i < PARAM_COUNT; i++)
		if (!c->params[i])
			c->params[i] = pool->welcome_params[i]; /* shared, not copied */
	client_sync_np_ctx(c);

	struct proto_reader r;
	proto_reader_init(&r, pool->welcome.data, iobuf_avail(&pool->welcome));
	while (r.p < r.end) {
		const char *k = proto_get_str(&r);
		const char *v = proto_get_str(&r);
		if (!k || !v)
			break;
		int id = param_lookup(k);
		if (id >= 0 && c->params[id])
			v = c->params[id];
		proto_build_param_status(b, k, v);
	}
	/* The worker's number in bits 24..30: a cancel request finds it from any worker. */
	uint32_t rnd[2] = {0, 0};
	do {
		if (!worker_random(c->w, rnd, sizeof(rnd))) {
			iobuf_reset(b);
			client_close(c, "58000", "cannot get random bytes for the cancel key");
			return;
		}
		c->cancel_pid = (rnd[0] & 0x00ffffff) | ((uint32_t)c->w->id << 24);
	} while (c->cancel_pid == 0);
	c->cancel_key = rnd[1];
	cancel_table_add(c);
	proto_build_backend_key(b, c->cancel_pid, c->cancel_key);
	proto_build_ready(b, 'I');
	client_set_state(c, CL_IDLE);
	/* idle from here: a login that waited for the pool's first server was not idle time */
	c->request_time = worker_now(c->w);
	if (client_send(c, b) && iobuf_avail(&c->sb.in)) {
		sbuf_resume_read(&c->sb);
		sbuf_kick(&c->sb);
	}
}

/* ---- forwarding ---- */

static bool needs_whole(uint8_t type)
{
	switch (type) {
	case 'Q':
	case 'P':
	case 'B':
	case 'D':
	case 'C':
	case 'X':
	case 'p':
		return true;
	default:
		return false;
	}
}

static bool valid_client_type(uint8_t type)
{
	switch (type) {
	case 'Q':
	case 'P':
	case 'B':
	case 'E':
	case 'D':
	case 'C':
	case 'H':
	case 'S':
	case 'F':
	case 'd':
	case 'c':
	case 'f':
	case 'X':
		return true;
	default:
		return false;
	}
}

/* Skip the message at rpos, of which avail bytes are here; the rest is dropped as it comes. */
static void client_drop_message(struct client *c, size_t avail, size_t total)
{
	struct iobuf *in = &c->sb.in;
	if (avail < total) {
		in->rpos += avail;
		c->fwd_remaining = (uint32_t)(total - avail);
		c->fwd_drop = true;
	} else {
		in->rpos += total;
	}
}

static void client_process(struct client *c)
{
	struct iobuf *in = &c->sb.in;
	struct worker *w = c->w;
	size_t run_start = in->rpos;
	usec_t now = worker_now(w);

	c->request_time = now;
	while (iobuf_avail(in) > 0 && c->state != CL_CLOSED) {
		if (c->fwd_remaining) {
			size_t take = iobuf_avail(in);
			if (take > c->fwd_remaining)
				take = c->fwd_remaining;
			in->rpos += take;
			c->fwd_remaining -= (uint32_t)take;
			if (c->fwd_drop) {
				run_start = in->rpos; /* dropped, not forwarded */
			} else if (!c->fwd_remaining && c->server) {
				/* The server may have answered everything while the message streamed. */
				if (!fwd_flush_run(c, &run_start))
					return;
				server_release_if_done(c->server);
				run_start = in->rpos;
			}
			continue;
		}
		size_t avail = iobuf_avail(in);
		if (avail < 5)
			break;
		const uint8_t *hdr = in->data + in->rpos;
		uint8_t type = hdr[0];
		uint32_t len = proto_be32(hdr + 1);
		if (len < 4 || (int64_t)len > w->cfg->max_packet_size ||
		    (int64_t)len > PG_MAX_MESSAGE) {
			fwd_flush_run(c, &run_start);
			client_close(c, "08P01", "invalid message length %u for message type '%c'",
				     len, type);
			return;
		}
		if (!valid_client_type(type)) {
			fwd_flush_run(c, &run_start);
			client_close(c, "08P01", "unsupported message type '%c' (0x%02x)",
				     type >= 32 && type < 127 ? type : '?', type);
			return;
		}
		if (type == 'Q' && w->cfg->disable_pqexec) {
			/*
			 * As PgBouncer: with disable_pqexec only the extended protocol is served
			 * (a simple Query may carry several statements, an SQL-injection risk);
			 * a client that sends one is disconnected. The admin console is not.
			 */
			fwd_flush_run(c, &run_start);
			client_close(c, "08P01", "PQexec disallowed (disable_pqexec is set)");
			return;
		}
		size_t total = (size_t)len + 1;
		bool whole = needs_whole(type) && total <= FWD_INSPECT_MAX;
		/* Held whole, or (a large Parse or Bind) until its names are here. */
		size_t hold = whole ? total
			      : (type == 'P' || type == 'B') && !fwd_names_here(type, hdr + 5, avail - 5)
				  ? 5 + FWD_NAMES_MAX
				  : 0;
		if (avail < hold) {
			if (in->cap < hold) {
				/* Grow so the whole message fits; compacting first keeps the run.
				 */
				if (!fwd_flush_run(c, &run_start))
					return;
				if (!iobuf_reserve(in, hold - avail)) {
					client_close(c, "53200",
						     "out of memory for a %zu byte message", total);
					return;
				}
				run_start = in->rpos;
			}
			break;
		}

		if (type == 'X') {
			fwd_flush_run(c, &run_start);
			in->rpos += total;
			client_close(c, NULL, "client sent Terminate");
			return;
		}

		if (type == 'Q' && whole && fwd_prepared_on(c) && !c->skip_to_sync &&
		    fwd_local_command(c, (const char *)hdr + 5, len - 4, now)) {
			if (!fwd_flush_run(c, &run_start))
				return;
			in->rpos += total;
			run_start = in->rpos;
			continue;
		}

		if (!c->server && (type == 'd' || type == 'c' || type == 'f')) {
			/*
			 * COPY data with no COPY running (the rest of one that failed): PostgreSQL
			 * ignores it, and so does pgtally, without taking a server for it.
			 */
			if (!fwd_flush_run(c, &run_start))
				return;
			client_drop_message(c, avail, total);
			run_start = in->rpos;
			continue;
		}
		if (!c->server) {
			/* Need a server for this message: everything before it has been sent. */
			if (!fwd_flush_run(c, &run_start))
				return;
			c->wait_start = now;
			pool_request_server(c->pool, c);
			if (!c->server)
				return; /* queued; reading goes on until the buffer fills */
			run_start = in->rpos;
		}

		struct server *s = c->server;
		bool ok = true;
		enum fwd_action act = FWD_FORWARD;
		size_t prefix = 0;
		if (c->skip_to_sync && type != 'S') {
			/* After an error pgtally made, skip to Sync as PostgreSQL would. */
			if (!fwd_flush_run(c, &run_start))
				return;
			act = FWD_CONSUMED;
			type = 0;
		}
		switch (type) {
		case 0:
			break;
		case 'Q':
			/* Its ReadyForQuery ends what came before it too (after an error in
			 * there, the server skips the Query and sends nothing until a Sync). */
			s->ext_open = false;
			act = (enum fwd_action)fwd_query(c, s, (const char *)hdr + 5, len - 4,
							 whole, &run_start, now);
			break;
		case 'P':
			s->ext_open = true;
			act = fwd_parse(c, s, hdr + 5, len - 4, whole, &run_start, now);
			break;
		case 'B':
			s->ext_open = true;
			c->pool->stats.bind_count++;
			act = whole ? fwd_bind(c, s, hdr + 5, len - 4, &run_start, now)
				    : fwd_bind_streamed(c, s, hdr + 5, avail - 5, len - 4, &prefix,
							&run_start, now);
			break;
		case 'E':
			s->ext_open = true;
			act = fwd_execute(c, s, hdr + 5, avail >= 6 ? 1 : 0, &run_start, now);
			break;
		case 'D':
			s->ext_open = true;
			act = fwd_describe(c, s, hdr + 5, len - 4, whole, &run_start, now);
			break;
		case 'C':
			s->ext_open = true;
			act = fwd_close(c, s, hdr + 5, len - 4, whole, now);
			break;
		case 'H':
			s->ext_open = true;
			break;
		case 'S':
			s->ext_open = false;
			c->skip_to_sync = false;
			/* In COPY FROM STDIN the server ignores Sync (libpq sends one anyway). */
			ok = fwd_expect(c, s, s->copy_in_open ? RQ_IGNORED : RQ_SYNC, now) != NULL;
			break;
		case 'F':
			ok = fwd_expect(c, s, RQ_FUNC, now) != NULL;
			break;
		default: /* d, c, f: COPY data flows as it comes */
			if (type != 'd') {
				s->copy_ends++;
				s->copy_in_open = false;
			}
			break;
		}
		if (act == FWD_FAILED || c->state == CL_CLOSED)
			return;
		if (act == FWD_PREFIX) {
			/* Its start went rewritten; the rest goes as it is, streamed. */
			in->rpos += 5 + prefix;
			run_start = in->rpos;
			avail -= 5 + prefix;
			total -= 5 + prefix;
			act = FWD_FORWARD;
		}
		if (act == FWD_CONSUMED) {
			/* Not forwarded: what came before it goes now, the run restarts after it.
			 */
			if (!fwd_flush_run(c, &run_start))
				return;
			client_drop_message(c, avail, total);
			run_start = in->rpos;
			continue;
		}
		if (!ok)
			return;
		if (avail >= total) {
			in->rpos += total;
		} else {
			/* Stream the rest of a large message as it arrives. */
			in->rpos += avail;
			c->fwd_remaining = (uint32_t)(total - avail);
			c->fwd_drop = false;
		}
	}
	if (c->state == CL_CLOSED)
		return;
	if (!fwd_flush_run(c, &run_start))
		return;
	/* Backpressure: the server is not taking what we send. */
	if (c->server && sbuf_queued(&c->server->sb) > SBUF_HIGH_WATER)
		sbuf_pause_read(&c->sb);
	if (iobuf_avail(in) == 0)
		sbuf_trim(w, &c->sb);
}

void client_linked(struct client *c)
{
	sbuf_resume_read(&c->sb);
	if (iobuf_avail(&c->sb.in))
		sbuf_kick(&c->sb);
}

static void client_handle_login_data(struct client *c)
{
	struct iobuf *in = &c->sb.in;
	while (c->state == CL_LOGIN && iobuf_avail(in) > 0) {
		size_t avail = iobuf_avail(in);
		const uint8_t *p = in->data + in->rpos;
		if (!auth_in_progress(c)) {
			/* Startup packet: length word first, no type byte. */
			if (avail < 4)
				return;
			uint32_t len = proto_be32(p);
			if (len < 8 || len > PROTO_MAX_STARTUP) {
				client_close(c, "08P01", "invalid startup packet length %u", len);
				return;
			}
			if (avail < len)
				return;
			in->rpos += len;
			client_handle_startup(c, p, len);
			continue;
		}
		if (avail < 5)
			return;
		uint32_t len = proto_be32(p + 1);
		if (p[0] != 'p') {
			client_close(c, "08P01", "expected a password message, got '%c'",
				     p[0] >= 32 && p[0] < 127 ? p[0] : '?');
			return;
		}
		if (len < 4 || len > 16384) {
			client_close(c, "08P01", "invalid password message length %u", len);
			return;
		}
		if (avail < (size_t)len + 1)
			return;
		in->rpos += (size_t)len + 1;
		auth_handle_message(c, p + 5, len - 4);
	}
}

static void client_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	(void)fd;

	if (c->state == CL_CLOSED)
		return;
	worker_tick(c->w);
	if (what & EV_READ) {
		ssize_t n = sbuf_read(c->w, &c->sb);
		if (n == 0) {
			if (c->state == CL_LOGIN)
				client_close(c, NULL, "client closed connection during login");
			else
				client_close(c, NULL, "client closed connection");
			return;
		}
		if (n == -1) {
			client_close(c, NULL, "client read failed: %s",
				     sbuf_strerror(&c->sb, errno));
			return;
		}
	}
	switch (c->state) {
	case CL_LOGIN:
		client_handle_login_data(c);
		break;
	case CL_ADMIN:
		admin_process(c);
		break;
	case CL_WELCOME_WAIT:
	case CL_WAITING:
		/*
		 * Not ours to process yet: keep what arrives (usually nothing: drivers wait for
		 * the answer). Stop reading only when the buffer is full, so waiting costs no
		 * epoll_ctl and a client that hangs up while waiting is noticed.
		 */
		if (iobuf_avail(&c->sb.in) >= c->sb.in.cap)
			sbuf_pause_read(&c->sb);
		break;
	case CL_IDLE:
	case CL_ACTIVE:
		client_process(c);
		break;
	case CL_CLOSED:
		break;
	}
	if (c->state != CL_CLOSED && iobuf_avail(&c->sb.in) == 0)
		sbuf_trim(c->w, &c->sb);
}

static void client_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	(void)fd;
	(void)what;

	if (c->state == CL_CLOSED)
		return;
	worker_tick(c->w);
	if (!sbuf_flush(&c->sb)) {
		client_close(c, NULL, "client connection broken on send");
		return;
	}
	if (sbuf_queued(&c->sb) == 0 && c->server && c->server->state == SV_ACTIVE) {
		sbuf_resume_read(&c->server->sb);
		if (iobuf_avail(&c->server->sb.in))
			sbuf_kick(&c->server->sb);
	}
	if (c->closing && sbuf_queued(&c->sb) == 0)
		client_close(c, NULL, "closed after last reply");
}

void client_server_lost(struct client *c, const char *sqlstate, const char *msg)
{
	c->server = NULL;
	client_close(c, sqlstate, "%s", msg);
}

/* ---- cancel ---- */

void client_handle_cancel(struct worker *w, uint32_t pid, uint32_t key)
{
	int owner = (int)(pid >> 24);
	if (owner != w->id) {
		if (owner < app_nworkers())
			app_post_cancel(owner, pid, key);
		else
			log_debug("cancel request with an unknown key ignored");
		return;
	}
	struct client *c = w->cancel_table[pid % CANCEL_TABLE_SIZE];
	while (c && !(c->cancel_pid == pid && c->cancel_key == key))
		c = c->cancel_next;
	if (!c) {
		log_debug("cancel request with an unknown key ignored");
		return;
	}
	if (!c->server || c->server->state != SV_ACTIVE) {
		log_debug("cancel request for an idle client ignored");
		return;
	}
	server_send_cancel(c->server);
}
