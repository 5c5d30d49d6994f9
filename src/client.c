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
#include "auth.h"
#include "log.h"
#include "fingerprint.h"
#include "nplus1.h"
#include "prepared.h"
#include "proto.h"
#include "rq.h"
#include "server.h"
#include "stats.h"
#include "tls.h"
#include "worker.h"

/* Client messages larger than this are streamed through without being inspected. */
#define CLIENT_INSPECT_MAX (1024 * 1024)

/* Named prepared statements one client may hold: a bound on what one connection can make
 * pgtally keep. Drivers cache far fewer (psycopg 3: 100, JDBC: 256). */
#define CLIENT_MAX_PREPARED 10000

/* PostgreSQL drops a connection without a word for messages of 1 GB or more; say why here. */
#define PG_MAX_MESSAGE ((int64_t)0x3fffffff)

static void client_read_cb(evutil_socket_t fd, short what, void *arg);
static void client_write_cb(evutil_socket_t fd, short what, void *arg);

const char *client_describe(const struct client *c, char *buf, size_t len)
{
	char addr[INET6_ADDRSTRLEN] = "unix";
	int port = 0;

	if (c->addr.sa.sa_family == AF_INET) {
		const struct sockaddr_in *a = &c->addr.in;
		inet_ntop(AF_INET, &a->sin_addr, addr, sizeof(addr));
		port = ntohs(a->sin_port);
	} else if (c->addr.sa.sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = &c->addr.in6;
		inet_ntop(AF_INET6, &a->sin6_addr, addr, sizeof(addr));
		port = ntohs(a->sin6_port);
	}
	snprintf(buf, len, "C-%llu %s/%s@%s:%d", (unsigned long long)c->id,
		 c->db_name ? c->db_name : "(nodb)", c->user_name ? c->user_name : "(nouser)", addr,
		 port);
	return buf;
}

static struct nplus1_settings client_np_settings(const struct config *cfg)
{
	struct nplus1_settings ns = {
		.threshold = cfg->nplus1_threshold,
		.min_time = cfg->nplus1_min_time,
		.idle_gap = cfg->nplus1_idle_gap,
		.max_statements = cfg->nplus1_max_statements,
		.log_interval = cfg->nplus1_log_interval,
		.max_findings = cfg->nplus1_max_findings,
		.track_query_len = cfg->track_query_len,
	};
	return ns;
}

static struct nplus1_ctx client_np_ctx(const struct client *c)
{
	struct nplus1_ctx ctx = {
		.database = c->pool->db->name,
		.user = c->pool->user->name,
		.application_name = c->params[PARAM_APPLICATION_NAME],
	};
	return ctx;
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
	return true;
}

void client_set_state(struct client *c, enum client_state st)
{
	list_del(&c->node);
	c->state = st;
	list_append(client_state_list(c, st), &c->node);
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
	struct client *c = calloc(1, sizeof(*c));
	if (!c) {
		log_error("out of memory accepting a client");
		close(fd);
		return;
	}
	if (!is_unix) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
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
	sbuf_setup(w, &c->sb, fd, client_read_cb, client_write_cb, c);
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
			log_warning("%s pooler error: %s", client_describe(c, who, sizeof(who)), why);
		struct iobuf b = {0};
		proto_build_error(&b, false, "FATAL", sqlstate, why);
		if (pkt_ok(&b) && !sbuf_send(&c->sb, b.data, iobuf_avail(&b)))
			log_debug("could not send the error to the client");
		iobuf_release(&b);
	} else if (cfg->log_disconnections && c->state != CL_LOGIN) {
		log_info("%s closing because: %s (age=%llds)", client_describe(c, who, sizeof(who)), why,
			 (long long)((worker_now(c->w) - c->connect_time) / 1000000));
	} else {
		log_debug("%s closing because: %s", client_describe(c, who, sizeof(who)), why);
	}

	client_unlink_server(c);
	if (c->np) {
		struct nplus1_settings ns = client_np_settings(cfg);
		struct nplus1_ctx ctx = client_np_ctx(c);
		nplus1_unit_end(c->np, c->w->nplus1, &ns, &ctx, worker_now(c->w));
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
		free(c);
	}
}

/* ---- login ---- */

static bool startup_param_allowed(struct client *c, const char *key)
{
	static const char *const handled[] = {"user", "database", "options", "replication",
					      "extra_float_digits", NULL};
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
			client_close(c, "08P01", "unsupported startup parameter in options: %s", kv);
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
		/* Bytes sent after the request, before the handshake, must not count as encrypted. */
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
		snprintf(name, sizeof(name), "%s%s%s", app && *app ? app : "", app && *app ? " - " : "",
			 host);
		if (!client_param_set(c, PARAM_APPLICATION_NAME, name)) {
			client_close(c, "53200", "out of memory");
			return;
		}
	}

	struct worker *w = c->w;
	if (w->n_clients > w->cfg->max_client_conn) {
		client_close(c, "53300", "no more connections allowed (max_client_conn)");
		return;
	}
	if (w->shutting_down) {
		client_close(c, "57P03", "pgtally is shutting down");
		return;
	}
	if (is_admin_db(w, db)) {
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
	pdb->n_clients++;
	pu->n_clients++;
	pool->stats.client_login_count++;
	if (w->cfg->log_connections) {
		char who[160];
		log_info("%s login: db=%s user=%s", client_describe(c, who, sizeof(who)),
			 c->db_name, c->user_name);
	}
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
	do {
		RAND_bytes((uint8_t *)&c->cancel_pid, sizeof(c->cancel_pid));
		c->cancel_pid &= 0x7fffffff;
	} while (c->cancel_pid == 0);
	RAND_bytes((uint8_t *)&c->cancel_key, sizeof(c->cancel_key));
	cancel_table_add(c);
	proto_build_backend_key(b, c->cancel_pid, c->cancel_key);
	proto_build_ready(b, 'I');
	client_set_state(c, CL_IDLE);
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

/* Send the bytes [start, rpos) of the input buffer to the server. */
static bool flush_run(struct client *c, size_t *run_start)
{
	struct iobuf *in = &c->sb.in;
	size_t n = in->rpos - *run_start;
	*run_start = in->rpos;
	if (n == 0 || !c->server)
		return true;
	c->pool->stats.bytes_received += n;
	if (!sbuf_send(&c->server->sb, in->data + in->rpos - n, n)) {
		struct server *s = c->server;
		client_close(c, "08006", "server connection lost while sending");
		server_close(s, "send to server failed");
		return false;
	}
	return true;
}

/* Queue an entry for a reply the server owes; closes the client when out of memory. */
static struct rq_entry *client_expect(struct client *c, struct server *s, enum rq_type type,
				      usec_t now)
{
	bool was_idle = s->rq.count == 0;
	struct rq_entry *e = rq_push(&s->rq, type);
	if (!e) {
		client_close(c, "53200", "out of memory tracking requests");
		return NULL;
	}
	e->sent = now;
	if (was_idle) {
		c->query_start = now;
		s->request_time = now;
		if (!c->xact_start)
			c->xact_start = now;
	}
	return e;
}

static bool client_synth(struct client *c, struct server *s, char type, struct iobuf *msg,
			 usec_t now);

/*
 * SQL-level PREPARE/EXECUTE live in one server session: in transaction mode the next
 * transaction may run elsewhere. pgtally does not rewrite them; it says so, once per client.
 */
static bool client_warn_sql_prepare(struct client *c, struct server *s, usec_t now)
{
	char who[160];
	c->warned_sql_prepare = true;
	log_warning("%s uses SQL-level PREPARE/EXECUTE, which only works within one transaction "
		    "in transaction pooling; use protocol-level prepared statements",
		    client_describe(c, who, sizeof(who)));
	struct iobuf b = {0};
	proto_build_error(&b, true, "WARNING", "01000",
			  "pgtally: SQL-level PREPARE/EXECUTE only works within one transaction in "
			  "transaction pooling mode; use protocol-level prepared statements");
	bool ok = client_synth(c, s, 'N', &b, now);
	iobuf_release(&b);
	return ok;
}

/* What a handler did with the message at in->rpos. */
enum msg_action {
	MSG_FORWARD,  /* forward it unchanged (it joins the run) */
	MSG_CONSUMED, /* handled here: not forwarded */
	MSG_FAILED,   /* the client was closed */
};

static bool client_send_rewritten(struct client *c, struct server *s, size_t *run_start,
				  struct iobuf *b);

/* sqlcommenter tags of the latest statement text, kept only when there are some. */
static void client_note_tags(struct client *c, const char *sql, size_t len)
{
	struct fp_tags tags;
	if (!fp_parse_tags(sql, len, &tags)) {
		if (c->tags)
			c->tags->route[0] = c->tags->controller[0] = c->tags->traceparent[0] = '\0';
		return;
	}
	if (!c->tags && !(c->tags = malloc(sizeof(*c->tags))))
		return;
	*c->tags = tags;
}

/*
 * N+1 bookkeeping before a statement is sent. Returns the action to take when this execution
 * crosses the threshold: NPLUS1_ACTION_LOG (nothing to do here), NOTICE (already queued) or
 * ERROR (the caller refuses the statement, with c->w->np_message); -1 when the client closed.
 */
static int client_np_before(struct client *c, struct server *s, struct fp_entry *fe,
			    uint64_t fp, uint64_t params, uint8_t kind, usec_t now)
{
	struct worker *w = c->w;
	if (!fp || w->cfg->nplus1_threshold <= 0)
		return NPLUS1_ACTION_LOG;
	if (!c->np && !(c->np = nplus1_unit_new())) {
		client_close(c, "53200", "out of memory");
		return -1;
	}
	struct nplus1_settings ns = client_np_settings(w->cfg);
	struct nplus1_ctx ctx = client_np_ctx(c);
	struct nplus1_stmt st = {
		.fp = fp, .params_hash = params, .kind = kind,
		.query = fe ? fe->query : NULL, .tags = c->tags,
	};
	if (!nplus1_before(c->np, w->nplus1, &ns, &ctx, &st, c->in_txn, now))
		return NPLUS1_ACTION_LOG;
	if (fe)
		fe->nplus1++;
	int action = c->pool->db->cfg.nplus1_action >= 0 ? c->pool->db->cfg.nplus1_action
							 : w->cfg->nplus1_action;
	struct nplus1_signal sig;
	if (action == NPLUS1_ACTION_LOG || !nplus1_unit_signal(c->np, &sig))
		return NPLUS1_ACTION_LOG;
	nplus1_signal_message(&sig, c->w->np_message, sizeof(c->w->np_message));
	if (action == NPLUS1_ACTION_NOTICE) {
		struct iobuf b = {0};
		proto_build_error(&b, true, "WARNING", NPLUS1_SQLSTATE, c->w->np_message);
		bool ok = client_synth(c, s, 'N', &b, now);
		iobuf_release(&b);
		return ok ? NPLUS1_ACTION_NOTICE : -1;
	}
	/* Recorded now: the statement will not run. */
	nplus1_refused(c->np, w->nplus1, &ns, &ctx, &st, now);
	return NPLUS1_ACTION_ERROR;
}

/* SQL that makes the server fail with the N+1 error, so a transaction aborts as it should. */
static void build_refusal_sql(struct iobuf *b, const char *msg)
{
	pkt_put_bytes(b, "DO $pgtally$BEGIN RAISE EXCEPTION USING ERRCODE = '", 51);
	pkt_put_bytes(b, NPLUS1_SQLSTATE, strlen(NPLUS1_SQLSTATE));
	pkt_put_bytes(b, "', MESSAGE = '", 14);
	for (const char *p = msg; *p; p++) {
		if (*p == '$')
			continue; /* cannot end the dollar quote early */
		if (*p == '\'')
			pkt_put_bytes(b, "'", 1);
		pkt_put_bytes(b, p, 1);
	}
	pkt_put_bytes(b, "'; END$pgtally$", 15);
	pkt_put_u8(b, 0);
}

#define QUERY_MAX_TRACKED 64

/*
 * A simple Query: one entry per statement (fingerprinted, N+1-checked), then one for
 * ReadyForQuery. Returns MSG_CONSUMED when pgtally sent a replacement (N+1 refusal).
 */
static int client_query(struct client *c, struct server *s, const char *sql, size_t len,
			bool whole, size_t *run_start, usec_t now)
{
	struct worker *w = c->w;
	struct {
		uint64_t fp, params;
		uint8_t kind, flags;
	} sts[QUERY_MAX_TRACKED];
	size_t n_sts = 0;
	bool refuse = false;

	if (whole && w->cfg->fingerprints) {
		size_t pos = 0;
		struct fp_stmt st;
		/* The text is NUL-terminated inside the message; never read past it. */
		size_t n = strnlen(sql, len);
		client_note_tags(c, sql, n);
		while (n_sts < QUERY_MAX_TRACKED && fp_next(sql, n, &pos, NULL, 0, &st)) {
			if (st.kind == FP_KIND_PREPARE && !c->warned_sql_prepare &&
			    !client_warn_sql_prepare(c, s, now))
				return MSG_FAILED;
			uint8_t flags = 0;
			if (st.txn == FP_TXN_BEGIN)
				c->in_txn = true;
			if (c->in_txn)
				flags |= RQF_IN_TXN;
			if (st.txn == FP_TXN_COMMIT || st.txn == FP_TXN_ROLLBACK ||
			    st.txn == FP_TXN_PREPARE)
				c->in_txn = false;
			struct fp_entry *fe =
				stats_fp_note(w, c->pool, st.id, st.kind, sql, st.start, st.end);
			int act = client_np_before(c, s, fe, st.id, st.params_hash, (uint8_t)st.kind,
						   now);
			if (act < 0)
				return MSG_FAILED;
			if (act == NPLUS1_ACTION_ERROR)
				refuse = true;
			sts[n_sts].fp = st.id;
			sts[n_sts].params = st.params_hash;
			sts[n_sts].kind = (uint8_t)st.kind;
			sts[n_sts].flags = flags;
			n_sts++;
		}
	}
	if (refuse) {
		struct iobuf b = {0};
		size_t start = pkt_begin(&b, 'Q');
		build_refusal_sql(&b, c->w->np_message);
		pkt_end(&b, start);
		bool ok = client_expect(c, s, RQ_STMT, now) && client_expect(c, s, RQ_QEND, now) &&
			  client_send_rewritten(c, s, run_start, &b);
		iobuf_release(&b);
		return ok ? MSG_CONSUMED : MSG_FAILED;
	}
	for (size_t i = 0; i < n_sts; i++) {
		struct rq_entry *e = client_expect(c, s, RQ_STMT, now);
		if (!e)
			return MSG_FAILED;
		e->fp = sts[i].fp;
		e->params = sts[i].params;
		e->kind = sts[i].kind;
		e->flags |= sts[i].flags | RQF_COUNTED;
	}
	return client_expect(c, s, RQ_QEND, now) ? MSG_FORWARD : MSG_FAILED;
}

static bool prepared_on(const struct client *c)
{
	return c->w->cfg->max_prepared_statements > 0;
}

/* Queue a reply pgtally makes itself, sent when the replies before it have been. */
static bool client_synth(struct client *c, struct server *s, char type, struct iobuf *msg,
			 usec_t now)
{
	struct rq_entry *e = client_expect(c, s, RQ_SYNC, now);
	if (!e)
		return false;
	e->type = type == '1' ? RQ_PARSE : type == '3' ? RQ_CLOSE : RQ_SYNC;
	e->flags |= RQF_SYNTH;
	if (msg) {
		if (!pkt_ok(msg)) {
			rq_pop(&s->rq);
			client_close(c, "53200", "out of memory");
			return false;
		}
		e->synth = 0;
		e->data = malloc(iobuf_avail(msg));
		if (!e->data) {
			client_close(c, "53200", "out of memory");
			return false;
		}
		memcpy(e->data, msg->data + msg->rpos, iobuf_avail(msg));
		e->data_len = (uint32_t)iobuf_avail(msg);
		e->type = RQ_SYNTH;
	} else {
		e->synth = (uint8_t)type;
	}
	if (s->rq.count == 1)
		server_emit_due(s);
	return true;
}

/*
 * Fail the current extended-protocol message the way PostgreSQL would: an ErrorResponse in
 * its place, and everything up to Sync skipped.
 */
static enum msg_action client_ext_error(struct client *c, struct server *s, const char *sqlstate,
					const char *msg, usec_t now)
{
	struct iobuf b = {0};
	proto_build_error(&b, false, "ERROR", sqlstate, msg);
	bool ok = client_synth(c, s, 'E', &b, now);
	iobuf_release(&b);
	if (!ok)
		return MSG_FAILED;
	c->skip_to_sync = true;
	return MSG_CONSUMED;
}

/* Send a message pgtally built to the server, after what the client sent before it. */
static bool client_send_rewritten(struct client *c, struct server *s, size_t *run_start,
				  struct iobuf *b)
{
	if (!flush_run(c, run_start))
		return false;
	if (!pkt_ok(b) || !sbuf_send(&s->sb, b->data + b->rpos, iobuf_avail(b))) {
		iobuf_reset(b);
		client_close(c, "08006", "server connection lost while sending");
		server_close(s, "send to server failed");
		return false;
	}
	iobuf_reset(b);
	return true;
}

/* Make room for one more statement on the server: Close the least recently used. */
static bool server_make_room(struct client *c, struct server *s, size_t *run_start, usec_t now)
{
	struct iobuf b = {0};
	while (s->pstmts.count >= (size_t)c->w->cfg->max_prepared_statements) {
		uint32_t old = server_pstmts_oldest(&s->pstmts);
		char name[24];
		snprintf(name, sizeof(name), "PGT_%u", old);
		size_t st = pkt_begin(&b, 'C');
		pkt_put_u8(&b, 'S');
		pkt_put_str(&b, name);
		pkt_end(&b, st);
		struct rq_entry *e = client_expect(c, s, RQ_CLOSE, now);
		if (!e) {
			iobuf_release(&b);
			return false;
		}
		e->flags |= RQF_SWALLOW;
		server_pstmts_del(&s->pstmts, old);
		if (!client_send_rewritten(c, s, run_start, &b)) {
			iobuf_release(&b);
			return false;
		}
	}
	iobuf_release(&b);
	return true;
}

/* Make sure the server holds ps: Parse it there first, hiding the ParseComplete. */
static bool server_ensure_pstmt(struct client *c, struct server *s, struct pstmt_shared *ps,
				size_t *run_start, usec_t now)
{
	if (server_pstmts_has(&s->pstmts, ps->id, true))
		return true;
	if (!server_make_room(c, s, run_start, now))
		return false;
	struct iobuf b = {0};
	size_t st = pkt_begin(&b, 'P');
	pkt_put_str(&b, ps->name);
	pkt_put_bytes(&b, ps->body, ps->body_len);
	pkt_end(&b, st);
	struct rq_entry *e = client_expect(c, s, RQ_PARSE, now);
	bool ok = e != NULL;
	if (ok) {
		e->flags |= RQF_SWALLOW;
		e->pstmt = ps->id;
		ok = server_pstmts_add(&s->pstmts, ps->id);
		if (!ok)
			client_close(c, "53200", "out of memory");
	}
	if (ok) {
		c->pool->stats.server_parse_count++;
		ok = client_send_rewritten(c, s, run_start, &b);
	}
	iobuf_release(&b);
	return ok;
}

/* Fingerprint a statement's text for the statistics. */
static void client_fingerprint(struct client *c, const char *sql, struct stmt_info *info)
{
	if (!c->w->cfg->fingerprints)
		return;
	struct fp_stmt st;
	size_t pos = 0, n = strlen(sql);
	if (fp_next(sql, n, &pos, NULL, 0, &st)) {
		info->fp = st.id;
		info->kind = (uint8_t)st.kind;
		info->valid = true;
		stats_fp_note(c->w, c->pool, st.id, st.kind, sql, st.start, st.end);
	}
}

/* Parse: remember what the statement is; named ones go to the server under pgtally's name. */
static enum msg_action client_parse(struct client *c, struct server *s, const uint8_t *body,
				    size_t len, bool whole, size_t *run_start, usec_t now)
{
	c->pool->stats.client_parse_count++;
	struct proto_reader r;
	proto_reader_init(&r, body, whole ? len : 0);
	const char *name = whole ? proto_get_str(&r) : NULL;
	const char *sql = name ? proto_get_str(&r) : NULL;
	struct stmt_info info = {0};
	if (sql) {
		client_fingerprint(c, sql, &info);
		if (c->w->cfg->fingerprints)
			client_note_tags(c, sql, strlen(sql));
	}
	if (!name || !*name || !prepared_on(c)) {
		/* Unnamed (or the feature is off): forwarded as it is. */
		if (name && !*name)
			c->unnamed_stmt = info;
		c->pool->stats.server_parse_count++;
		return client_expect(c, s, RQ_PARSE, now) ? MSG_FORWARD : MSG_FAILED;
	}
	if (!sql) {
		return client_ext_error(c, s, "08P01", "malformed Parse message", now);
	}
	if (pstmt_map_count(c->pstmts) >= CLIENT_MAX_PREPARED) {
		char msg[200];
		snprintf(msg, sizeof(msg),
			 "too many prepared statements for one connection (at most %d); "
			 "close or deallocate some",
			 CLIENT_MAX_PREPARED);
		return client_ext_error(c, s, "53400", msg, now);
	}
	if (pstmt_find(c->pstmts, name)) {
		char msg[200];
		snprintf(msg, sizeof(msg), "prepared statement \"%.100s\" already exists", name);
		return client_ext_error(c, s, "42P05", msg, now);
	}
	if (!c->pstmts && !(c->pstmts = pstmt_map_new())) {
		client_close(c, "53200", "out of memory");
		return MSG_FAILED;
	}
	const uint8_t *rest = (const uint8_t *)sql;
	info.shared = pstmt_shared_get(&c->w->pstmts, rest, (size_t)(body + len - rest));
	if (!info.shared || !pstmt_define(c->pstmts, name, &info)) {
		pstmt_shared_put(&c->w->pstmts, info.shared);
		client_close(c, "53200", "out of memory");
		return MSG_FAILED;
	}
	struct pstmt_shared *ps = info.shared;
	char *copy = strdup(name);
	if (!copy) {
		client_close(c, "53200", "out of memory");
		return MSG_FAILED;
	}
	if (server_pstmts_has(&s->pstmts, ps->id, true)) {
		/* The server has it already: answer ParseComplete ourselves, in order. */
		if (!client_synth(c, s, '1', NULL, now)) {
			free(copy);
			return MSG_FAILED;
		}
		/* If it is still queued, remember the name so a skip can undo it. */
		if (s->rq.count && (rq_at(&s->rq, s->rq.count - 1)->flags & RQF_SYNTH)) {
			struct rq_entry *e = rq_at(&s->rq, s->rq.count - 1);
			e->pstmt = ps->id;
			e->data = copy;
		} else {
			free(copy);
		}
		return MSG_CONSUMED;
	}
	if (!server_make_room(c, s, run_start, now)) {
		free(copy);
		return MSG_FAILED;
	}
	struct iobuf b = {0};
	size_t st = pkt_begin(&b, 'P');
	pkt_put_str(&b, ps->name);
	pkt_put_bytes(&b, ps->body, ps->body_len);
	pkt_end(&b, st);
	struct rq_entry *e = client_expect(c, s, RQ_PARSE, now);
	if (!e || !server_pstmts_add(&s->pstmts, ps->id)) {
		free(copy);
		iobuf_release(&b);
		if (e)
			client_close(c, "53200", "out of memory");
		return MSG_FAILED;
	}
	e->pstmt = ps->id;
	e->data = copy;
	c->pool->stats.server_parse_count++;
	bool ok = client_send_rewritten(c, s, run_start, &b);
	iobuf_release(&b);
	return ok ? MSG_CONSUMED : MSG_FAILED;
}

/* Bind: the portal runs a known statement with these parameter values. */
static enum msg_action client_bind(struct client *c, struct server *s, const uint8_t *body,
				   size_t len, bool whole, size_t *run_start, usec_t now)
{
	struct proto_reader r;
	proto_reader_init(&r, body, whole ? len : 0);
	const char *portal = whole ? proto_get_str(&r) : NULL;
	const char *stmt = portal ? proto_get_str(&r) : NULL;
	const uint8_t *rest = r.p;
	struct portal_info pi = {0};
	const struct stmt_info *si = NULL;
	if (stmt)
		si = *stmt ? pstmt_find(c->pstmts, stmt) : &c->unnamed_stmt;
	if (si && si->valid) {
		pi.fp = si->fp;
		pi.kind = si->kind;
		/* Parameter values: everything after the format codes, hashed as one. */
		uint16_t nfmt = proto_get_u16(&r);
		proto_get_bytes(&r, (size_t)nfmt * 2);
		if (!r.bad)
			pi.params = fp_hash(r.p, (size_t)(r.end - r.p));
	}
	/* Only the unnamed portal is tracked (what drivers use outside of cursors). */
	c->unnamed_portal = portal && !*portal ? pi : (struct portal_info){0};

	if (!stmt || !*stmt || !prepared_on(c))
		return client_expect(c, s, RQ_BIND, now) ? MSG_FORWARD : MSG_FAILED;
	if (!si || !si->shared) {
		char msg[200];
		snprintf(msg, sizeof(msg), "prepared statement \"%.100s\" does not exist", stmt);
		return client_ext_error(c, s, "26000", msg, now);
	}
	struct pstmt_shared *ps = si->shared;
	if (!server_ensure_pstmt(c, s, ps, run_start, now))
		return MSG_FAILED;
	struct iobuf b = {0};
	size_t st = pkt_begin(&b, 'B');
	pkt_put_str(&b, portal);
	pkt_put_str(&b, ps->name);
	pkt_put_bytes(&b, rest, (size_t)(body + len - rest));
	pkt_end(&b, st);
	struct rq_entry *e = client_expect(c, s, RQ_BIND, now);
	if (e)
		e->pstmt = ps->id;
	bool ok = e && client_send_rewritten(c, s, run_start, &b);
	iobuf_release(&b);
	return ok ? MSG_CONSUMED : MSG_FAILED;
}

/* Describe: statements by name need pgtally's name on the server. */
static enum msg_action client_describe_msg(struct client *c, struct server *s, const uint8_t *body,
				       size_t len, bool whole, size_t *run_start, usec_t now)
{
	if (!whole || len < 2 || body[0] != 'S' || body[1] == '\0' || !prepared_on(c))
		return client_expect(c, s, RQ_DESCRIBE, now) ? MSG_FORWARD : MSG_FAILED;
	struct proto_reader r;
	proto_reader_init(&r, body + 1, len - 1);
	const char *name = proto_get_str(&r);
	if (!name)
		return client_expect(c, s, RQ_DESCRIBE, now) ? MSG_FORWARD : MSG_FAILED;
	const struct stmt_info *si = pstmt_find(c->pstmts, name);
	if (!si || !si->shared) {
		char msg[200];
		snprintf(msg, sizeof(msg), "prepared statement \"%.100s\" does not exist", name);
		return client_ext_error(c, s, "26000", msg, now);
	}
	struct pstmt_shared *ps = si->shared;
	if (!server_ensure_pstmt(c, s, ps, run_start, now))
		return MSG_FAILED;
	struct iobuf b = {0};
	size_t st = pkt_begin(&b, 'D');
	pkt_put_u8(&b, 'S');
	pkt_put_str(&b, ps->name);
	pkt_end(&b, st);
	bool ok = client_expect(c, s, RQ_DESCRIBE, now) &&
		  client_send_rewritten(c, s, run_start, &b);
	iobuf_release(&b);
	return ok ? MSG_CONSUMED : MSG_FAILED;
}

/* Close of a named statement: forget the name, answer CloseComplete ourselves. */
static enum msg_action client_close_msg(struct client *c, struct server *s, const uint8_t *body,
					size_t len, bool whole, usec_t now)
{
	if (!whole || len < 2 || body[0] != 'S' || body[1] == '\0' || !prepared_on(c))
		return client_expect(c, s, RQ_CLOSE, now) ? MSG_FORWARD : MSG_FAILED;
	struct proto_reader r;
	proto_reader_init(&r, body + 1, len - 1);
	const char *name = proto_get_str(&r);
	if (!name)
		return client_expect(c, s, RQ_CLOSE, now) ? MSG_FORWARD : MSG_FAILED;
	/* Closing an unknown name is not an error in PostgreSQL either. */
	pstmt_forget(c->pstmts, &c->w->pstmts, name);
	return client_synth(c, s, '3', NULL, now) ? MSG_CONSUMED : MSG_FAILED;
}

/* Execute: runs the unnamed portal's statement, unless N+1 detection refuses it. */
static enum msg_action client_execute(struct client *c, struct server *s, const uint8_t *body,
				      size_t len, size_t *run_start, usec_t now)
{
	/* Only the unnamed portal is tracked (what drivers use outside of cursors). */
	bool tracked = len >= 1 && body[0] == '\0' && c->unnamed_portal.fp;
	if (tracked) {
		struct fp_entry *fe = stats_fp_find(&c->w->fps, c->pool, c->unnamed_portal.fp);
		int act = client_np_before(c, s, fe, c->unnamed_portal.fp, c->unnamed_portal.params,
					   c->unnamed_portal.kind, now);
		if (act < 0)
			return MSG_FAILED;
		if (act == NPLUS1_ACTION_ERROR) {
			/* Run a statement that fails in its place; hide its Parse/Bind replies. */
			struct iobuf b = {0};
			size_t st = pkt_begin(&b, 'P');
			pkt_put_str(&b, "");
			build_refusal_sql(&b, c->w->np_message);
			pkt_put_u16(&b, 0);
			pkt_end(&b, st);
			st = pkt_begin(&b, 'B');
			pkt_put_bytes(&b, "\0\0\0\0\0\0\0\0", 8); /* portal, stmt, 0 fmts, 0 params, 0 */
			pkt_end(&b, st);
			st = pkt_begin(&b, 'E');
			pkt_put_str(&b, "");
			pkt_put_u32(&b, 0);
			pkt_end(&b, st);
			struct rq_entry *p = client_expect(c, s, RQ_PARSE, now);
			struct rq_entry *bi = p ? client_expect(c, s, RQ_BIND, now) : NULL;
			bool ok = bi && client_expect(c, s, RQ_EXECUTE, now);
			if (ok) {
				p->flags |= RQF_SWALLOW;
				bi->flags |= RQF_SWALLOW;
				c->unnamed_stmt = (struct stmt_info){0};
				ok = client_send_rewritten(c, s, run_start, &b);
			}
			iobuf_release(&b);
			return ok ? MSG_CONSUMED : MSG_FAILED;
		}
	}
	struct rq_entry *e = client_expect(c, s, RQ_EXECUTE, now);
	if (!e)
		return MSG_FAILED;
	if (tracked) {
		e->fp = c->unnamed_portal.fp;
		e->params = c->unnamed_portal.params;
		e->kind = c->unnamed_portal.kind;
		e->flags |= RQF_COUNTED;
		if (c->in_txn)
			e->flags |= RQF_IN_TXN;
	}
	return MSG_FORWARD;
}

/* Skip spaces and match a keyword (case-insensitive) followed by a non-identifier byte. */
static bool eat_word(const char **p, const char *end, const char *word)
{
	const char *q = *p;
	while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
		q++;
	size_t n = strlen(word);
	if ((size_t)(end - q) < n || strncasecmp(q, word, n) != 0)
		return false;
	if (q + n < end && (isalnum((unsigned char)q[n]) || q[n] == '_'))
		return false;
	*p = q + n;
	return true;
}

enum sql_local { SQL_NONE, SQL_DEALLOCATE, SQL_DEALLOCATE_ALL, SQL_DISCARD_ALL };

/*
 * Is this Query exactly one DEALLOCATE [PREPARE] name|ALL or DISCARD ALL? Those act on the
 * client's names, which servers do not know, so pgtally answers them itself.
 */
static enum sql_local sql_local_command(const char *sql, size_t len, char *name, size_t namecap)
{
	const char *p = sql, *end = sql + strnlen(sql, len);
	enum sql_local what;
	if (eat_word(&p, end, "DISCARD")) {
		if (!eat_word(&p, end, "ALL"))
			return SQL_NONE;
		what = SQL_DISCARD_ALL;
	} else if (eat_word(&p, end, "DEALLOCATE")) {
		(void)eat_word(&p, end, "PREPARE");
		if (eat_word(&p, end, "ALL")) {
			what = SQL_DEALLOCATE_ALL;
		} else {
			while (p < end && isspace((unsigned char)*p))
				p++;
			size_t n = 0;
			if (p < end && *p == '"') {
				for (p++; p < end && *p != '"' && n + 1 < namecap; p++)
					name[n++] = *p;
				if (p >= end || *p != '"')
					return SQL_NONE;
				p++;
			} else {
				for (; p < end && (isalnum((unsigned char)*p) || *p == '_' || *p == '$') &&
				       n + 1 < namecap;
				     p++)
					name[n++] = (char)tolower((unsigned char)*p);
			}
			name[n] = '\0';
			if (n == 0)
				return SQL_NONE;
			what = SQL_DEALLOCATE;
		}
	} else {
		return SQL_NONE;
	}
	while (p < end && (isspace((unsigned char)*p) || *p == ';'))
		p++;
	return p == end ? what : SQL_NONE;
}

/*
 * Answer a DEALLOCATE / DISCARD ALL. Returns false when it must go to the server after all
 * (DISCARD ALL inside a transaction block fails there, as it should).
 */
static bool client_local_command(struct client *c, const char *sql, size_t len, usec_t now)
{
	char name[128];
	enum sql_local what = sql_local_command(sql, len, name, sizeof(name));
	if (what == SQL_NONE)
		return false;
	if (what == SQL_DISCARD_ALL && c->server && c->in_txn)
		return false;
	struct worker *w = c->w;
	if (what == SQL_DEALLOCATE) {
		/* psycopg sends the name unquoted; try it as sent too. */
		if (!pstmt_forget(c->pstmts, &w->pstmts, name)) {
			size_t n = strnlen(sql, len);
			const char *p = sql;
			(void)eat_word(&p, sql + n, "DEALLOCATE");
			(void)eat_word(&p, sql + n, "PREPARE");
			while (*p == ' ')
				p++;
			char raw[128];
			size_t k = 0;
			while (p < sql + n && !isspace((unsigned char)*p) && *p != ';' && k + 1 < sizeof(raw))
				raw[k++] = *p++;
			raw[k] = '\0';
			if (!pstmt_forget(c->pstmts, &w->pstmts, raw)) {
				/* PostgreSQL's answer for an unknown name. */
				struct iobuf b = {0};
				char msg[200];
				snprintf(msg, sizeof(msg), "prepared statement \"%.100s\" does not exist",
					 name);
				proto_build_error(&b, false, "ERROR", "26000", msg);
				proto_build_ready(&b, c->server ? c->server->txn_status : 'I');
				if (c->server) {
					if (c->server->txn_status == 'T')
						b.data[b.wpos - 1] = 'E';
					(void)client_synth(c, c->server, 'E', &b, now);
				} else {
					(void)client_send(c, &b);
				}
				iobuf_release(&b);
				return true;
			}
		}
	} else {
		pstmt_forget_all(c->pstmts, &w->pstmts);
		if (what == SQL_DISCARD_ALL) {
			/* Back to the server defaults: the next link SETs them. */
			for (int i = 0; i < PARAM_COUNT; i++) {
				client_param_set(c, i, NULL);
				c->params[i] = c->pool->welcome_params[i];
			}
		}
	}
	struct iobuf b = {0};
	proto_build_command_complete(&b, what == SQL_DISCARD_ALL ? "DISCARD ALL" : "DEALLOCATE");
	proto_build_ready(&b, c->server ? c->server->txn_status : 'I');
	if (c->server)
		(void)client_synth(c, c->server, 'E', &b, now);
	else
		(void)client_send(c, &b);
	iobuf_release(&b);
	return true;
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
			/* While skipping to Sync the rest of a message is dropped, not forwarded. */
			if (c->skip_to_sync)
				run_start = in->rpos;
			continue;
		}
		size_t avail = iobuf_avail(in);
		if (avail < 5)
			break;
		const uint8_t *hdr = in->data + in->rpos;
		uint8_t type = hdr[0];
		uint32_t len = proto_be32(hdr + 1);
		if (len < 4 || (int64_t)len > w->cfg->max_packet_size || (int64_t)len > PG_MAX_MESSAGE) {
			flush_run(c, &run_start);
			client_close(c, "08P01", "invalid message length %u for message type '%c'",
				     len, type);
			return;
		}
		if (!valid_client_type(type)) {
			flush_run(c, &run_start);
			client_close(c, "08P01", "unsupported message type '%c' (0x%02x)",
				     type >= 32 && type < 127 ? type : '?', type);
			return;
		}
		size_t total = (size_t)len + 1;
		bool whole = needs_whole(type) && total <= CLIENT_INSPECT_MAX;
		if (whole && avail < total) {
			if (in->cap < total) {
				/* Grow so the whole message fits; compacting first keeps the run. */
				if (!flush_run(c, &run_start))
					return;
				if (!iobuf_reserve(in, total - avail)) {
					client_close(c, "53200", "out of memory for a %zu byte message",
						     total);
					return;
				}
				run_start = in->rpos;
			}
			break;
		}

		if (type == 'X') {
			flush_run(c, &run_start);
			in->rpos += total;
			client_close(c, NULL, "client sent Terminate");
			return;
		}

		if (type == 'Q' && whole && prepared_on(c) && !c->skip_to_sync &&
		    client_local_command(c, (const char *)hdr + 5, len - 4, now)) {
			if (!flush_run(c, &run_start))
				return;
			in->rpos += total;
			run_start = in->rpos;
			continue;
		}

		if (!c->server) {
			/* Need a server for this message: everything before it has been sent. */
			if (!flush_run(c, &run_start))
				return;
			c->wait_start = now;
			pool_request_server(c->pool, c);
			if (!c->server)
				return; /* queued; reading goes on until the buffer fills */
			run_start = in->rpos;
		}

		struct server *s = c->server;
		bool ok = true;
		enum msg_action act = MSG_FORWARD;
		if (c->skip_to_sync && type != 'S') {
			/* After an error pgtally made, skip to Sync as PostgreSQL would. */
			if (!flush_run(c, &run_start))
				return;
			act = MSG_CONSUMED;
			type = 0;
		}
		switch (type) {
		case 0:
			break;
		case 'Q':
			act = (enum msg_action)client_query(c, s, (const char *)hdr + 5, len - 4,
							    whole, &run_start, now);
			break;
		case 'P':
			s->ext_open = true;
			act = client_parse(c, s, hdr + 5, len - 4, whole, &run_start, now);
			break;
		case 'B':
			s->ext_open = true;
			c->pool->stats.bind_count++;
			act = client_bind(c, s, hdr + 5, len - 4, whole, &run_start, now);
			break;
		case 'E':
			s->ext_open = true;
			act = client_execute(c, s, hdr + 5, avail >= 6 ? 1 : 0, &run_start, now);
			break;
		case 'D':
			s->ext_open = true;
			act = client_describe_msg(c, s, hdr + 5, len - 4, whole, &run_start, now);
			break;
		case 'C':
			s->ext_open = true;
			act = client_close_msg(c, s, hdr + 5, len - 4, whole, now);
			break;
		case 'H':
			s->ext_open = true;
			break;
		case 'S':
			s->ext_open = false;
			c->skip_to_sync = false;
			ok = client_expect(c, s, RQ_SYNC, now) != NULL;
			break;
		case 'F':
			ok = client_expect(c, s, RQ_FUNC, now) != NULL;
			break;
		default: /* d, c, f: COPY data flows as it comes */
			break;
		}
		if (act == MSG_FAILED || c->state == CL_CLOSED)
			return;
		if (act == MSG_CONSUMED) {
			/* Not forwarded: what came before it goes now, the run restarts after it. */
			if (!flush_run(c, &run_start))
				return;
			if (avail < total) {
				/* Only a skipped message can be partial here: drop the rest as it comes. */
				in->rpos += avail;
				c->fwd_remaining = (uint32_t)(total - avail);
			} else {
				in->rpos += total;
			}
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
		}
	}
	if (c->state == CL_CLOSED)
		return;
	if (!flush_run(c, &run_start))
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
			client_close(c, NULL, "client read failed: %s", sbuf_strerror(&c->sb, errno));
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

void client_np_done(struct client *c, const struct rq_entry *e, uint64_t rows, usec_t duration,
		    bool failed, usec_t now)
{
	struct worker *w = c->w;
	struct nplus1_settings ns = client_np_settings(w->cfg);
	struct nplus1_ctx ctx = client_np_ctx(c);
	struct fp_entry *fe = stats_fp_find(&w->fps, c->pool, e->fp);
	struct nplus1_stmt st = {
		.fp = e->fp, .params_hash = e->params, .kind = e->kind,
		.query = fe ? fe->query : NULL, .tags = NULL,
	};
	nplus1_done(c->np, w->nplus1, &ns, &ctx, &st, rows, duration, failed, now);
}
