/* admin: the console database (pgtally, alias pgbouncer): SHOW and control commands. */
#include "admin.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "app.h"
#include "client.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "nplus1.h"
#include "proto.h"
#include "stats.h"
#include "server.h"
#include "worker.h"

#define PG_TYPE_BYTEA 17u

/* How often a command that waits (PAUSE, SUSPEND, WAIT_CLOSE) looks at the pools again. */
#define ADMIN_WAIT_POLL_USEC 20000

/* ---- the fingerprint statistics and N+1 findings, as rows ---- */

void admin_fingerprints_foreach(struct worker *w,
				void (*emit)(void *arg, const struct admin_fp_row *row), void *arg)
{
	size_t n = 0;
	struct fp_entry **all = stats_fp_sorted(&w->fps, &n);
	if (!all)
		return;
	for (size_t i = 0; i < n; i++) {
		const struct fp_entry *e = all[i];
		struct admin_fp_row row = {
			.database = e->pool->db->name,
			.user = e->pool->user->name,
			.fingerprint = e->fp,
			.query = e->query,
			.calls = e->calls,
			.rows = e->rows,
			.errors = e->errors,
			.total_time_us = e->total_time,
			.min_time_us = e->calls ? e->min_time : 0,
			.max_time_us = e->max_time,
			.calls_in_txn = e->calls_in_txn,
			.nplus1 = e->nplus1,
			.first_seen = e->first_seen,
			.last_seen = e->last_seen,
		};
		emit(arg, &row);
	}
	free(all);
}

struct np_visit {
	void (*emit)(void *arg, const struct admin_nplus1_row *row);
	void *arg;
};

static bool np_visit(const struct nplus1_finding *f, void *arg)
{
	struct np_visit *v = arg;
	struct admin_nplus1_row row = {
		.kind = nplus1_kind_name(f->kind),
		.database = f->database,
		.user = f->user,
		.application_name = f->application_name,
		.route = f->route,
		.fingerprint = f->fp,
		.query = f->query,
		.occurrences = f->bursts,
		.executions = f->total_calls,
		.max_executions = f->max_calls,
		.last_calls = f->last_calls,
		.total_time_us = f->total_time,
		.source_fingerprint = f->source_fp,
		.source_query = f->source_fp ? f->source_query : NULL,
		.source_rows = f->source_rows,
		.first_seen = f->first_seen,
		.last_seen = f->last_seen,
	};
	v->emit(v->arg, &row);
	return true;
}

void admin_nplus1_foreach(struct worker *w,
			  void (*emit)(void *arg, const struct admin_nplus1_row *row), void *arg)
{
	struct np_visit v = {emit, arg};
	nplus1_table_foreach(w->nplus1, np_visit, &v);
}

void admin_fingerprints_reset(struct worker *w)
{
	stats_fp_table_reset(&w->fps);
}

void admin_nplus1_reset(struct worker *w)
{
	nplus1_table_reset(w->nplus1);
}

/* ---- login ---- */

void admin_welcome(struct client *c, struct iobuf *b)
{
	proto_build_param_status(b, "server_version", PGTALLY_VERSION "/pgtally");
	proto_build_param_status(b, "client_encoding", "UTF8");
	proto_build_param_status(b, "server_encoding", "UTF8");
	proto_build_param_status(b, "DateStyle", "ISO");
	proto_build_param_status(b, "integer_datetimes", "on");
	proto_build_param_status(b, "standard_conforming_strings", "on");
	proto_build_param_status(b, "application_name", "pgtally");
	proto_build_backend_key(b, 0, 0);
	proto_build_ready(b, 'I');
	(void)client_send(c, b);
}

/* ---- result sets ---- */

#define MAX_COLS 32
#define CELL_LEN 64

struct col {
	const char *name;
	uint32_t type;
};

#define TXT PG_TYPE_TEXT
#define I4 PG_TYPE_INT4
#define I8 PG_TYPE_INT8
#define NUM PG_TYPE_NUMERIC

/* One row being built: values point into buf or at strings that outlive the row. */
struct row {
	size_t n;
	const char *v[MAX_COLS];
	char buf[MAX_COLS][CELL_LEN];
};

static void row_str(struct row *r, const char *s)
{
	r->v[r->n++] = s;
}

static void row_i64(struct row *r, long long v)
{
	snprintf(r->buf[r->n], CELL_LEN, "%lld", v);
	r->v[r->n] = r->buf[r->n];
	r->n++;
}

static void row_u64(struct row *r, uint64_t v)
{
	snprintf(r->buf[r->n], CELL_LEN, "%" PRIu64, v);
	r->v[r->n] = r->buf[r->n];
	r->n++;
}

static void row_hex(struct row *r, uint64_t v)
{
	snprintf(r->buf[r->n], CELL_LEN, "%016" PRIx64, v);
	r->v[r->n] = r->buf[r->n];
	r->n++;
}

/* PgBouncer shows times as local "YYYY-MM-DD HH:MM:SS TZ" text; NULL when never. */
static void row_time(struct row *r, usec_t t)
{
	if (t <= 0) {
		row_str(r, NULL);
		return;
	}
	time_t secs = (time_t)(t / 1000000);
	struct tm tm;
	if (!localtime_r(&secs, &tm) ||
	    strftime(r->buf[r->n], CELL_LEN, "%Y-%m-%d %H:%M:%S %Z", &tm) == 0) {
		row_str(r, NULL);
		return;
	}
	r->v[r->n] = r->buf[r->n];
	r->n++;
}

static void send_header(struct iobuf *b, const struct col *cols, size_t n)
{
	const char *names[MAX_COLS];
	uint32_t types[MAX_COLS];
	for (size_t i = 0; i < n && i < MAX_COLS; i++) {
		names[i] = cols[i].name;
		types[i] = cols[i].type;
	}
	proto_build_row_desc(b, names, types, n);
}

static void send_row(struct iobuf *b, const struct row *r)
{
	proto_build_data_row(b, r->v, r->n);
}

#define NCOLS(a) (sizeof(a) / sizeof((a)[0]))

static void admin_error(struct iobuf *b, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void admin_error(struct iobuf *b, const char *sqlstate, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	proto_build_error(b, false, "ERROR", sqlstate, msg);
}

static const char *const pool_mode_names[] = {"session", "transaction", "statement"};

static const char *pool_mode_name(int mode)
{
	return mode >= 0 && mode <= 2 ? pool_mode_names[mode] : NULL;
}

/* ---- helpers over the worker's objects ---- */

static bool is_admin_name(const char *db)
{
	return strcmp(db, "pgtally") == 0 || strcmp(db, "pgbouncer") == 0;
}

/* The server list of a pool by state, for walking all of them. */
static struct list *pool_server_list(struct pool *p, int i)
{
	switch (i) {
	case 0:
		return &p->active_servers;
	case 1:
		return &p->idle_servers;
	case 2:
		return &p->used_servers;
	case 3:
		return &p->tested_servers;
	default:
		return &p->login_servers;
	}
}

#define N_SERVER_LISTS 5

static struct client *find_admin_client(struct worker *w, uint64_t id)
{
	for (struct list *pos = w->admin_clients.next; pos != &w->admin_clients; pos = pos->next) {
		struct client *c = container_of(pos, struct client, node);
		if (c->id == id)
			return c;
	}
	return NULL;
}

static void sockaddr_text(const struct sockaddr_storage *sa, bool is_unix, char *addr,
			  size_t addrlen, int *port)
{
	*port = 0;
	snprintf(addr, addrlen, "unix");
	if (is_unix)
		return;
	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &a->sin_addr, addr, (socklen_t)addrlen);
		*port = ntohs(a->sin_port);
	} else if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &a->sin6_addr, addr, (socklen_t)addrlen);
		*port = ntohs(a->sin6_port);
	}
}

static void local_addr_text(int fd, char *addr, size_t addrlen, int *port)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa);
	memset(&sa, 0, sizeof(sa));
	if (fd < 0 || getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		snprintf(addr, addrlen, "unix");
		*port = 0;
		return;
	}
	sockaddr_text(&sa, sa.ss_family == AF_UNIX, addr, addrlen, port);
}

/* ---- SHOW commands ---- */

static void show_help(struct iobuf *b)
{
	static const char detail[] =
		"\n\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION\n"
		"\tSHOW FDS|LISTS|MEM|STATE\n"
		"\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS\n"
		"\tSHOW FINGERPRINTS|NPLUS1\n"
		"\tSET key = arg\n"
		"\tRELOAD\n"
		"\tPAUSE [<db>]\n"
		"\tRESUME [<db>]\n"
		"\tDISABLE <db>\n"
		"\tENABLE <db>\n"
		"\tRECONNECT [<db>]\n"
		"\tKILL [<db>]\n"
		"\tKILL_CLIENT <client_id>\n"
		"\tSUSPEND\n"
		"\tSHUTDOWN\n"
		"\tSHUTDOWN WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS\n"
		"\tWAIT_CLOSE [<db>]\n"
		"\tRESET STATS|FINGERPRINTS|NPLUS1";
	size_t s = pkt_begin(b, 'N');
	pkt_put_u8(b, 'S');
	pkt_put_str(b, "NOTICE");
	pkt_put_u8(b, 'V');
	pkt_put_str(b, "NOTICE");
	pkt_put_u8(b, 'C');
	pkt_put_str(b, "00000");
	pkt_put_u8(b, 'M');
	pkt_put_str(b, "Console usage");
	pkt_put_u8(b, 'D');
	pkt_put_str(b, detail);
	pkt_put_u8(b, 0);
	pkt_end(b, s);
}

static void show_version(struct iobuf *b)
{
	static const struct col cols[] = {{"version", TXT}};
	struct row r = {0};
	send_header(b, cols, NCOLS(cols));
	row_str(&r, "pgtally " PGTALLY_VERSION);
	send_row(b, &r);
}

static void show_pools(struct worker *w, struct iobuf *b)
{
	static const struct col cols[] = {
		{"database", TXT},
		{"user", TXT},
		{"cl_active", I4},
		{"cl_waiting", I4},
		{"cl_active_cancel_req", I4},
		{"cl_waiting_cancel_req", I4},
		{"sv_active", I4},
		{"sv_active_cancel", I4},
		{"sv_being_canceled", I4},
		{"sv_idle", I4},
		{"sv_used", I4},
		{"sv_tested", I4},
		{"sv_login", I4},
		{"maxwait", I4},
		{"maxwait_us", I4},
		{"pool_mode", TXT},
		{"load_balance_hosts", TXT},
	};
	usec_t now = worker_now(w);
	send_header(b, cols, NCOLS(cols));
	for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		struct row r = {0};
		usec_t maxwait = 0;
		if (!list_empty(&p->waiting_clients)) {
			struct client *first =
				container_of(p->waiting_clients.next, struct client, node);
			if (first->wait_start && now > first->wait_start)
				maxwait = now - first->wait_start;
		}
		row_str(&r, p->db->name);
		row_str(&r, p->user->name);
		/* Clients still waiting for the pool's first server login wait too. */
		row_i64(&r, (long long)list_count(&p->active_clients));
		row_i64(&r, (long long)(list_count(&p->waiting_clients) +
					list_count(&p->login_clients)));
		row_i64(&r, 0);
		row_i64(&r, 0);
		row_i64(&r, (long long)list_count(&p->active_servers));
		row_i64(&r, 0);
		row_i64(&r, 0);
		row_i64(&r, (long long)list_count(&p->idle_servers));
		row_i64(&r, (long long)list_count(&p->used_servers));
		row_i64(&r, (long long)list_count(&p->tested_servers));
		row_i64(&r, (long long)list_count(&p->login_servers));
		row_i64(&r, (long long)(maxwait / 1000000));
		row_i64(&r, (long long)(maxwait % 1000000));
		row_str(&r, pool_mode_name(p->pool_mode));
		row_str(&r, NULL);
		send_row(b, &r);
	}
}

/* SHOW CLIENTS and SHOW SERVERS share their columns. */
static const struct col socket_cols[] = {
	{"type", TXT},
	{"user", TXT},
	{"database", TXT},
	{"replication", TXT},
	{"state", TXT},
	{"addr", TXT},
	{"port", I4},
	{"local_addr", TXT},
	{"local_port", I4},
	{"connect_time", TXT},
	{"request_time", TXT},
	{"wait", I4},
	{"wait_us", I4},
	{"close_needed", I4},
	{"ptr", TXT},
	{"link", TXT},
	{"remote_pid", I4},
	{"tls", TXT},
	{"application_name", TXT},
	{"prepared_statements", I4},
	{"id", I8},
};

static void client_row(struct iobuf *b, struct client *c, usec_t now)
{
	struct row r = {0};
	char addr[64], laddr[64], ptr[32], link[32];
	int port, lport;
	const char *state;
	usec_t since = 0;

	switch (c->state) {
	case CL_ACTIVE:
		state = "active";
		since = c->query_start;
		break;
	case CL_WAITING:
	case CL_WELCOME_WAIT:
		state = "waiting";
		since = c->wait_start;
		break;
	case CL_ADMIN:
		state = "active";
		break;
	default:
		state = "idle";
		break;
	}
	usec_t wait = since && now > since ? now - since : 0;
	struct sockaddr_storage ca = {0};
	memcpy(&ca, &c->addr, sizeof(c->addr));
	sockaddr_text(&ca, c->is_unix, addr, sizeof(addr), &port);
	local_addr_text(c->sb.fd, laddr, sizeof(laddr), &lport);
	snprintf(ptr, sizeof(ptr), "%p", (void *)c);
	if (c->server)
		snprintf(link, sizeof(link), "%p", (void *)c->server);
	else
		link[0] = '\0';

	row_str(&r, "C");
	row_str(&r, c->user_name ? c->user_name : "(nouser)");
	row_str(&r, c->db_name ? c->db_name : "(nodb)");
	row_str(&r, "none");
	row_str(&r, state);
	row_str(&r, addr);
	row_i64(&r, port);
	row_str(&r, laddr);
	row_i64(&r, lport);
	row_time(&r, c->connect_time);
	row_time(&r, c->request_time);
	row_i64(&r, (long long)(wait / 1000000));
	row_i64(&r, (long long)(wait % 1000000));
	row_i64(&r, 0);
	row_str(&r, ptr);
	row_str(&r, link);
	row_i64(&r, 0);
	char tls[128];
	sbuf_tls_describe(&c->sb, tls, sizeof(tls));
	row_str(&r, tls);
	row_str(&r, c->params[PARAM_APPLICATION_NAME] ? c->params[PARAM_APPLICATION_NAME] : "");
	row_i64(&r, (long long)pstmt_map_count(c->pstmts));
	row_u64(&r, c->id);
	send_row(b, &r);
}

static void clients_on(struct iobuf *b, struct list *l, usec_t now)
{
	for (struct list *pos = l->next; pos != l; pos = pos->next)
		client_row(b, container_of(pos, struct client, node), now);
}

static void show_clients(struct worker *w, struct iobuf *b)
{
	usec_t now = worker_now(w);
	send_header(b, socket_cols, NCOLS(socket_cols));
	for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		clients_on(b, &p->active_clients, now);
		clients_on(b, &p->waiting_clients, now);
		clients_on(b, &p->login_clients, now);
	}
	clients_on(b, &w->admin_clients, now);
}

static void server_row(struct iobuf *b, struct server *s, usec_t now)
{
	static const char *const states[] = {"new", "idle", "active", "used", "tested", "closed"};
	struct row r = {0};
	const struct pool_db *db = s->pool->db;
	char laddr[64], ptr[32], link[32];
	int lport;
	const char *host =
		db->cfg.host && *db->cfg.host && db->cfg.host[0] != '/' ? db->cfg.host : "unix";
	usec_t wait = s->state == SV_ACTIVE && s->rq.count > 0 && now > s->request_time
			      ? now - s->request_time
			      : 0;
	local_addr_text(s->sb.fd, laddr, sizeof(laddr), &lport);
	snprintf(ptr, sizeof(ptr), "%p", (void *)s);
	if (s->client)
		snprintf(link, sizeof(link), "%p", (void *)s->client);
	else
		link[0] = '\0';

	row_str(&r, "S");
	row_str(&r, db->cfg.user ? db->cfg.user : s->pool->user->name);
	row_str(&r, db->name);
	row_str(&r, "none");
	row_str(&r, states[s->state <= SV_CLOSED ? s->state : SV_CLOSED]);
	row_str(&r, host);
	row_i64(&r, db->cfg.port > 0 ? db->cfg.port : 5432);
	row_str(&r, laddr);
	row_i64(&r, lport);
	row_time(&r, s->connect_time);
	row_time(&r, s->request_time);
	row_i64(&r, (long long)(wait / 1000000));
	row_i64(&r, (long long)(wait % 1000000));
	row_i64(&r, s->close_needed ? 1 : 0);
	row_str(&r, ptr);
	row_str(&r, link);
	row_i64(&r, (long long)s->be_pid);
	char tls[128];
	sbuf_tls_describe(&s->sb, tls, sizeof(tls));
	row_str(&r, tls);
	row_str(&r, s->params[PARAM_APPLICATION_NAME] ? s->params[PARAM_APPLICATION_NAME] : "");
	row_i64(&r, (long long)s->pstmts.count);
	row_u64(&r, s->id);
	send_row(b, &r);
}

static void show_servers(struct worker *w, struct iobuf *b)
{
	usec_t now = worker_now(w);
	send_header(b, socket_cols, NCOLS(socket_cols));
	for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		for (int i = 0; i < N_SERVER_LISTS; i++) {
			struct list *l = pool_server_list(p, i);
			for (struct list *sp = l->next; sp != l; sp = sp->next)
				server_row(b, container_of(sp, struct server, node), now);
		}
	}
}

static void database_row(struct iobuf *b, struct worker *w, const char *name,
			 const struct config_db *cd, const struct pool_db *pdb)
{
	const struct config *cfg = w->cfg;
	struct row r = {0};
	const char *host = cd->host && *cd->host && cd->host[0] != '/' ? cd->host : NULL;
	int pool_size = cd->pool_size >= 0 ? cd->pool_size : cfg->default_pool_size;
	int min_pool = cd->min_pool_size >= 0 ? cd->min_pool_size : cfg->min_pool_size;
	int reserve = cd->reserve_pool >= 0 ? cd->reserve_pool : cfg->reserve_pool_size;
	int max_conn =
		cd->max_db_connections >= 0 ? cd->max_db_connections : cfg->max_db_connections;

	row_str(&r, name);
	row_str(&r, host);
	row_i64(&r, cd->port > 0 ? cd->port : 5432);
	row_str(&r, cd->dbname ? cd->dbname : name);
	row_str(&r, cd->user);
	row_i64(&r, pool_size);
	row_i64(&r, min_pool);
	row_i64(&r, reserve);
	row_i64(&r, (long long)(cfg->server_lifetime / 1000000));
	row_str(&r, pool_mode_name(cd->pool_mode));
	row_str(&r, NULL);
	row_i64(&r, max_conn);
	row_i64(&r, pdb ? pdb->n_servers : 0);
	row_i64(&r, 0);
	row_i64(&r, pdb ? pdb->n_clients : 0);
	row_i64(&r, pdb && pdb->paused ? 1 : 0);
	row_i64(&r, pdb && pdb->disabled ? 1 : 0);
	send_row(b, &r);
}

static void show_databases(struct worker *w, struct iobuf *b)
{
	static const struct col cols[] = {
		{"name", TXT},
		{"host", TXT},
		{"port", I4},
		{"database", TXT},
		{"force_user", TXT},
		{"pool_size", I4},
		{"min_pool_size", I4},
		{"reserve_pool_size", I4},
		{"server_lifetime", I4},
		{"pool_mode", TXT},
		{"load_balance_hosts", TXT},
		{"max_connections", I4},
		{"current_connections", I4},
		{"max_client_connections", I4},
		{"current_client_connections", I4},
		{"paused", I4},
		{"disabled", I4},
	};
	send_header(b, cols, NCOLS(cols));
	for (struct list *pos = w->dbs.next; pos != &w->dbs; pos = pos->next) {
		struct pool_db *pdb = container_of(pos, struct pool_db, node);
		if (!pdb->removed)
			database_row(b, w, pdb->name, &pdb->cfg, pdb);
	}
	/* Configured databases nobody has connected to yet. */
	for (size_t i = 0; i < w->cfg->n_dbs; i++) {
		const struct config_db *cd = &w->cfg->dbs[i];
		if (strcmp(cd->name, "*") == 0)
			continue;
		bool seen = false;
		for (struct list *pos = w->dbs.next; pos != &w->dbs && !seen; pos = pos->next)
			seen = strcmp(container_of(pos, struct pool_db, node)->name, cd->name) == 0;
		if (!seen)
			database_row(b, w, cd->name, cd, NULL);
	}
}

static void user_row(struct iobuf *b, struct worker *w, const char *name,
		     const struct pool_user *pu)
{
	const struct config_user *cu = config_find_user(w->cfg, name);
	struct row r = {0};
	char size[16] = "";
	int max_conn = cu && cu->max_user_connections >= 0 ? cu->max_user_connections
							   : w->cfg->max_user_connections;
	int max_cl =
		cu && cu->max_user_client_connections >= 0 ? cu->max_user_client_connections : 0;
	if (cu && cu->pool_size >= 0)
		snprintf(size, sizeof(size), "%d", cu->pool_size);
	row_str(&r, name);
	row_str(&r, size);
	row_str(&r, "");
	row_str(&r, cu ? pool_mode_name(cu->pool_mode) : NULL);
	row_i64(&r, max_conn);
	row_i64(&r, pu ? pu->n_servers : 0);
	row_i64(&r, max_cl);
	row_i64(&r, pu ? pu->n_clients : 0);
	send_row(b, &r);
}

static void show_users(struct worker *w, struct iobuf *b)
{
	static const struct col cols[] = {
		{"name", TXT},
		{"pool_size", TXT},
		{"reserve_pool_size", TXT},
		{"pool_mode", TXT},
		{"max_user_connections", I4},
		{"current_connections", I4},
		{"max_user_client_connections", I4},
		{"current_client_connections", I4},
	};
	send_header(b, cols, NCOLS(cols));
	for (struct list *pos = w->users.next; pos != &w->users; pos = pos->next) {
		struct pool_user *pu = container_of(pos, struct pool_user, node);
		user_row(b, w, pu->name, pu);
	}
	for (size_t i = 0; i < w->cfg->n_users; i++) {
		const char *name = w->cfg->users[i].name;
		if (!pool_user_find(w, name, false))
			user_row(b, w, name, NULL);
	}
}

/* Per-database sums of the pool counters and of the last stats_period. */
struct db_stats {
	struct pool_stats total;
	struct pool_stats delta;
	usec_t len;
};

static void db_stats_collect(struct worker *w, const struct pool_db *db, struct db_stats *out)
{
	memset(out, 0, sizeof(*out));
	uint64_t *t = (uint64_t *)&out->total, *d = (uint64_t *)&out->delta;
	for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		if (db && p->db != db)
			continue;
		struct pool_stats delta;
		usec_t len;
		metrics_period(p, &delta, &len);
		const uint64_t *pt = (const uint64_t *)&p->stats, *pd = (const uint64_t *)&delta;
		for (size_t i = 0; i < METRICS_NSTATS; i++) {
			t[i] += pt[i];
			d[i] += pd[i];
		}
		if (len > out->len)
			out->len = len;
	}
}

/* PgBouncer's averages: counts and bytes per second, times per query/transaction/wait. */
static void db_stats_avg(const struct db_stats *s, struct pool_stats *avg)
{
	const struct pool_stats *d = &s->delta;
	memset(avg, 0, sizeof(*avg));
	if (s->len <= 0)
		return;
	uint64_t len = (uint64_t)s->len;
#define RATE(f) avg->f = d->f * 1000000u / len
	RATE(server_assignment_count);
	RATE(xact_count);
	RATE(query_count);
	RATE(bytes_received);
	RATE(bytes_sent);
	RATE(client_parse_count);
	RATE(server_parse_count);
	RATE(bind_count);
	RATE(client_login_count);
#undef RATE
	avg->xact_time = d->xact_count ? d->xact_time / d->xact_count : 0;
	avg->query_time = d->query_count ? d->query_time / d->query_count : 0;
	avg->wait_time = d->server_assignment_count ? d->wait_time / d->server_assignment_count : 0;
}

static void row_stats(struct row *r, const struct pool_stats *s)
{
	const uint64_t *v = (const uint64_t *)s;
	for (size_t i = 0; i < METRICS_NSTATS; i++)
		row_u64(r, v[i]);
}

/* Which of the stats columns a SHOW prints. */
enum stats_kind { STATS_ALL, STATS_TOTALS, STATS_AVERAGES };

static void show_stats(struct worker *w, struct iobuf *b, enum stats_kind kind)
{
	static const struct col all[] = {
		{"database", TXT},
		{"total_server_assignment_count", NUM},
		{"total_xact_count", NUM},
		{"total_query_count", NUM},
		{"total_received", NUM},
		{"total_sent", NUM},
		{"total_xact_time", NUM},
		{"total_query_time", NUM},
		{"total_wait_time", NUM},
		{"total_client_parse_count", NUM},
		{"total_server_parse_count", NUM},
		{"total_bind_count", NUM},
		{"total_client_login_count", NUM},
		{"avg_server_assignment_count", NUM},
		{"avg_xact_count", NUM},
		{"avg_query_count", NUM},
		{"avg_recv", NUM},
		{"avg_sent", NUM},
		{"avg_xact_time", NUM},
		{"avg_query_time", NUM},
		{"avg_wait_time", NUM},
		{"avg_client_parse_count", NUM},
		{"avg_server_parse_count", NUM},
		{"avg_bind_count", NUM},
		{"avg_client_login_count", NUM},
	};
	static const struct col totals[] = {
		{"database", TXT},           {"server_assignment_count", NUM},
		{"xact_count", NUM},         {"query_count", NUM},
		{"bytes_received", NUM},     {"bytes_sent", NUM},
		{"xact_time", NUM},          {"query_time", NUM},
		{"wait_time", NUM},          {"client_parse_count", NUM},
		{"server_parse_count", NUM}, {"bind_count", NUM},
		{"client_login_count", NUM},
	};
	/* PgBouncer keeps the avg_ prefix on three of these; tools expect it. */
	static const struct col averages[] = {
		{"database", TXT},
		{"server_assignment_count", NUM},
		{"xact_count", NUM},
		{"query_count", NUM},
		{"bytes_received", NUM},
		{"bytes_sent", NUM},
		{"xact_time", NUM},
		{"query_time", NUM},
		{"wait_time", NUM},
		{"avg_client_parse_count", NUM},
		{"avg_server_parse_count", NUM},
		{"avg_bind_count", NUM},
		{"client_login_count", NUM},
	};
	if (kind == STATS_ALL)
		send_header(b, all, NCOLS(all));
	else
		send_header(b, kind == STATS_TOTALS ? totals : averages, NCOLS(totals));
	for (struct list *pos = w->dbs.next; pos != &w->dbs; pos = pos->next) {
		struct pool_db *db = container_of(pos, struct pool_db, node);
		bool has_pool = false;
		for (struct list *pp = w->pools.next; pp != &w->pools && !has_pool; pp = pp->next)
			has_pool = container_of(pp, struct pool, node)->db == db;
		if (!has_pool)
			continue;
		struct db_stats s;
		struct pool_stats avg;
		struct row r = {0};
		db_stats_collect(w, db, &s);
		db_stats_avg(&s, &avg);
		row_str(&r, db->name);
		if (kind != STATS_AVERAGES)
			row_stats(&r, &s.total);
		if (kind != STATS_TOTALS)
			row_stats(&r, &avg);
		send_row(b, &r);
	}
}

static void show_totals(struct worker *w, struct iobuf *b)
{
	static const struct col cols[] = {{"name", TXT}, {"value", NUM}};
	static const char *const names[] = {
		"total_server_assignment_count",
		"total_xact_count",
		"total_query_count",
		"total_received",
		"total_sent",
		"total_xact_time",
		"total_query_time",
		"total_wait_time",
		"total_client_parse_count",
		"total_server_parse_count",
		"total_bind_count",
		"total_client_login_count",
		"avg_server_assignment_count",
		"avg_xact_count",
		"avg_query_count",
		"avg_recv",
		"avg_sent",
		"avg_xact_time",
		"avg_query_time",
		"avg_wait_time",
		"avg_client_parse_count",
		"avg_server_parse_count",
		"avg_bind_count",
		"avg_client_login_count",
	};
	struct db_stats s;
	struct pool_stats avg;
	db_stats_collect(w, NULL, &s);
	db_stats_avg(&s, &avg);
	const uint64_t *t = (const uint64_t *)&s.total, *a = (const uint64_t *)&avg;
	send_header(b, cols, NCOLS(cols));
	for (size_t i = 0; i < NCOLS(names); i++) {
		struct row r = {0};
		row_str(&r, names[i]);
		row_u64(&r, i < METRICS_NSTATS ? t[i] : a[i - METRICS_NSTATS]);
		send_row(b, &r);
	}
}

static void show_config(struct worker *w, struct iobuf *b)
{
	static const struct col cols[] = {
		{"key", TXT}, {"value", TXT}, {"default", TXT}, {"changeable", TXT}};
	size_t n;
	const struct config_option *opts = config_options(&n);
	send_header(b, cols, NCOLS(cols));
	for (size_t i = 0; i < n; i++) {
		const struct config_option *o = &opts[i];
		char value[1024];
		struct row r = {0};
		config_value_text(w->cfg, o, value, sizeof(value));
		/* Never print a secret, even to admin_users: logs of psql sessions leak. */
		bool secret = o->secret || strstr(o->name, "password") != NULL;
		row_str(&r, o->name);
		row_str(&r, secret && *value ? "********" : value);
		row_str(&r, o->default_value);
		row_str(&r, o->changeable ? "yes" : "no");
		send_row(b, &r);
	}
}

static void show_lists(struct worker *w, struct iobuf *b)
{
	static const struct col cols[] = {{"list", TXT}, {"items", I4}};
	size_t dbs = 0;
	for (struct list *pos = w->dbs.next; pos != &w->dbs; pos = pos->next)
		dbs += !container_of(pos, struct pool_db, node)->removed;
	const struct {
		const char *name;
		size_t n;
	} items[] = {
		{"databases", dbs},
		{"users", list_count(&w->users)},
		{"peers", 0},
		{"pools", list_count(&w->pools)},
		{"peer_pools", 0},
		{"free_clients", 0},
		{"used_clients", (size_t)w->n_clients},
		{"login_clients", list_count(&w->login_clients)},
		{"free_servers", 0},
		{"used_servers", (size_t)w->n_servers},
		{"dns_names", 0},
		{"dns_zones", 0},
		{"dns_queries", 0},
		{"dns_pending", 0},
	};
	send_header(b, cols, NCOLS(cols));
	for (size_t i = 0; i < NCOLS(items); i++) {
		struct row r = {0};
		row_str(&r, items[i].name);
		row_i64(&r, (long long)items[i].n);
		send_row(b, &r);
	}
}

static void show_mem(struct worker *w, struct iobuf *b)
{
	static const struct col cols[] = {
		{"name", TXT}, {"size", I4}, {"used", I4}, {"free", I4}, {"memtotal", I4}};
	size_t pools = list_count(&w->pools);
	size_t bufs_used = 0;
	/* Connections hold a pooled buffer only while they have unread input. */
	for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		for (int i = 0; i < N_SERVER_LISTS; i++) {
			struct list *l = pool_server_list(p, i);
			for (struct list *sp = l->next; sp != l; sp = sp->next)
				bufs_used +=
					container_of(sp, struct server, node)->sb.in.data != NULL;
		}
	}
	const struct {
		const char *name;
		size_t size, used, free;
	} items[] = {
		{"client_cache", sizeof(struct client), (size_t)w->n_clients, 0},
		{"server_cache", sizeof(struct server), (size_t)w->n_servers, 0},
		{"pool_cache", sizeof(struct pool), pools, 0},
		{"db_cache", sizeof(struct pool_db), list_count(&w->dbs), 0},
		{"user_cache", sizeof(struct pool_user), list_count(&w->users), 0},
		{"iobuf_cache", SBUF_BUFSIZE, bufs_used, w->n_free_bufs},
	};
	send_header(b, cols, NCOLS(cols));
	for (size_t i = 0; i < NCOLS(items); i++) {
		struct row r = {0};
		row_str(&r, items[i].name);
		row_i64(&r, (long long)items[i].size);
		row_i64(&r, (long long)items[i].used);
		row_i64(&r, (long long)items[i].free);
		row_i64(&r, (long long)(items[i].size * (items[i].used + items[i].free)));
		send_row(b, &r);
	}
}

/*
 * SUSPEND leaves the worker paused with reading stopped on every pooled connection. struct
 * worker has no flag for it, so it is recognized by that: paused, and not one pooled
 * connection is being read.
 */
static bool is_suspended(struct worker *w)
{
	bool any = false;
	if (!w->paused)
		return false;
	for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		for (struct list *cp = p->active_clients.next; cp != &p->active_clients;
		     cp = cp->next) {
			if (container_of(cp, struct client, node)->sb.read_on)
				return false;
			any = true;
		}
		for (struct list *sp = p->idle_servers.next; sp != &p->idle_servers;
		     sp = sp->next) {
			if (container_of(sp, struct server, node)->sb.read_on)
				return false;
			any = true;
		}
	}
	return any;
}

static void show_state(struct worker *w, struct iobuf *b)
{
	static const struct col cols[] = {{"key", TXT}, {"value", TXT}};
	bool suspended = is_suspended(w);
	const char *const rows[][2] = {
		{"active", w->paused ? "no" : "yes"},
		{"paused", w->paused && !suspended ? "yes" : "no"},
		{"suspended", suspended ? "yes" : "no"},
	};
	send_header(b, cols, NCOLS(cols));
	for (size_t i = 0; i < NCOLS(rows); i++) {
		struct row r = {0};
		row_str(&r, rows[i][0]);
		row_str(&r, rows[i][1]);
		send_row(b, &r);
	}
}

static void fd_row(struct iobuf *b, int fd, const char *task, const char *user, const char *db,
		   const struct sockaddr_storage *sa, bool is_unix, uint64_t cancel, int link,
		   const char *const *params)
{
	struct row r = {0};
	char addr[64];
	int port;
	sockaddr_text(sa, is_unix, addr, sizeof(addr), &port);
	row_i64(&r, fd);
	row_str(&r, task);
	row_str(&r, user);
	row_str(&r, db);
	row_str(&r, addr);
	row_i64(&r, port);
	row_u64(&r, cancel);
	row_i64(&r, link);
	row_str(&r, params[PARAM_CLIENT_ENCODING]);
	row_str(&r, params[PARAM_STANDARD_CONFORMING_STRINGS]);
	row_str(&r, params[PARAM_DATESTYLE]);
	row_str(&r, params[PARAM_TIMEZONE]);
	/* Online restart does not exist in pgtally: never hand out secrets here. */
	row_str(&r, NULL);
	row_str(&r, NULL);
	row_str(&r, NULL);
	send_row(b, &r);
}

static void show_fds(struct worker *w, struct iobuf *b)
{
	static const struct col cols[] = {
		{"fd", I4},
		{"task", TXT},
		{"user", TXT},
		{"database", TXT},
		{"addr", TXT},
		{"port", I4},
		{"cancel", I8},
		{"link", I4},
		{"client_encoding", TXT},
		{"std_strings", TXT},
		{"datestyle", TXT},
		{"timezone", TXT},
		{"password", TXT},
		{"scram_client_key", PG_TYPE_BYTEA},
		{"scram_server_key", PG_TYPE_BYTEA},
	};
	send_header(b, cols, NCOLS(cols));
	for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		struct list *cl[] = {&p->active_clients, &p->waiting_clients};
		for (size_t i = 0; i < NCOLS(cl); i++) {
			for (struct list *cp = cl[i]->next; cp != cl[i]; cp = cp->next) {
				struct client *c = container_of(cp, struct client, node);
				uint64_t key = ((uint64_t)c->cancel_pid << 32) | c->cancel_key;
				struct sockaddr_storage ca = {0};
				memcpy(&ca, &c->addr, sizeof(c->addr));
				fd_row(b, c->sb.fd, "client", c->user_name, p->db->name, &ca,
				       c->is_unix, key, c->server ? c->server->sb.fd : 0,
				       c->params);
			}
		}
		for (int i = 0; i < N_SERVER_LISTS; i++) {
			struct list *l = pool_server_list(p, i);
			for (struct list *sp = l->next; sp != l; sp = sp->next) {
				struct server *s = container_of(sp, struct server, node);
				struct sockaddr_storage sa;
				socklen_t len = sizeof(sa);
				memset(&sa, 0, sizeof(sa));
				if (s->sb.fd < 0 ||
				    getpeername(s->sb.fd, (struct sockaddr *)&sa, &len) < 0)
					sa.ss_family = AF_UNIX;
				uint64_t key = ((uint64_t)s->be_pid << 32) | s->be_key;
				fd_row(b, s->sb.fd, "server",
				       p->db->cfg.user ? p->db->cfg.user : p->user->name,
				       p->db->name, &sa, sa.ss_family == AF_UNIX, key,
				       s->client ? s->client->sb.fd : 0, (const char *const *)s->params);
			}
		}
	}
}

/*
 * Query texts come from clients and were cut at a byte limit: psql and drivers reject a
 * result that is not UTF-8, so bad bytes become '?'. Returns s itself when it is clean, else
 * a copy to free (*tofree), or NULL when out of memory.
 */
static const char *clean_utf8(const char *s, char **tofree)
{
	*tofree = NULL;
	if (!s)
		return NULL;
	size_t n = strlen(s), i = 0;
	while (i < n) {
		size_t len = metrics_utf8_len((const unsigned char *)s + i, n - i);
		if (!len)
			break;
		i += len;
	}
	if (i == n)
		return s;
	char *copy = strdup(s);
	if (!copy)
		return NULL;
	while (i < n) {
		size_t len = metrics_utf8_len((const unsigned char *)copy + i, n - i);
		if (!len) {
			copy[i] = '?';
			len = 1;
		}
		i += len;
	}
	*tofree = copy;
	return copy;
}

static void fmt_us(struct row *r, uint64_t us)
{
	row_u64(r, us);
}

struct fp_emit_ctx {
	struct iobuf *b;
};

static void fp_emit(void *arg, const struct admin_fp_row *f)
{
	struct fp_emit_ctx *ctx = arg;
	struct row r = {0};
	row_str(&r, f->database);
	row_str(&r, f->user);
	row_hex(&r, f->fingerprint);
	row_u64(&r, f->calls);
	row_u64(&r, f->rows);
	fmt_us(&r, f->total_time_us);
	fmt_us(&r, f->calls ? f->total_time_us / f->calls : 0);
	fmt_us(&r, f->min_time_us);
	fmt_us(&r, f->max_time_us);
	row_u64(&r, f->errors);
	row_u64(&r, f->calls_in_txn);
	row_u64(&r, f->nplus1);
	row_time(&r, f->first_seen);
	row_time(&r, f->last_seen);
	char *q;
	row_str(&r, clean_utf8(f->query, &q));
	send_row(ctx->b, &r);
	free(q);
}

/* pg_stat_statements at the pooler: ordered by total time, most first. */
static void show_fingerprints(struct worker *w, struct iobuf *b)
{
	static const struct col cols[] = {
		{"database", TXT},	{"user", TXT},	       {"fingerprint", TXT},
		{"calls", NUM},		{"rows", NUM},	       {"total_time_us", NUM},
		{"mean_time_us", NUM},	{"min_time_us", NUM},  {"max_time_us", NUM},
		{"errors", NUM},	{"calls_in_txn", NUM}, {"nplus1", NUM},
		{"first_seen", TXT},	{"last_seen", TXT},    {"query", TXT},
	};
	struct fp_emit_ctx ctx = {b};
	send_header(b, cols, NCOLS(cols));
	admin_fingerprints_foreach(w, fp_emit, &ctx);
}

static void nplus1_emit(void *arg, const struct admin_nplus1_row *f)
{
	struct fp_emit_ctx *ctx = arg;
	struct row r = {0};
	char *app, *route, *q, *sq;
	row_str(&r, f->database);
	row_str(&r, f->user);
	row_str(&r, clean_utf8(f->application_name, &app));
	row_str(&r, clean_utf8(f->route, &route));
	row_str(&r, f->kind);
	row_hex(&r, f->fingerprint);
	if (f->source_fingerprint)
		row_hex(&r, f->source_fingerprint);
	else
		row_str(&r, NULL);
	row_u64(&r, f->occurrences);
	row_u64(&r, f->last_calls);
	row_u64(&r, f->max_executions);
	fmt_us(&r, f->total_time_us);
	row_time(&r, f->first_seen);
	row_time(&r, f->last_seen);
	row_str(&r, clean_utf8(f->query, &q));
	row_str(&r, clean_utf8(f->source_query, &sq));
	row_u64(&r, f->source_rows);
	row_u64(&r, f->executions);
	send_row(ctx->b, &r);
	free(app);
	free(route);
	free(q);
	free(sq);
}

/* N+1 findings, one row per (database, user, route, kind, fingerprint). */
static void show_nplus1(struct worker *w, struct iobuf *b)
{
	static const struct col cols[] = {
		{"database", TXT},	     {"user", TXT},	     {"application_name", TXT},
		{"route", TXT},		     {"kind", TXT},	     {"fingerprint", TXT},
		{"source_fingerprint", TXT}, {"bursts", NUM},	     {"last_calls", NUM},
		{"max_calls", NUM},	     {"total_time_us", NUM}, {"first_seen", TXT},
		{"last_seen", TXT},	     {"query", TXT},	     {"source_query", TXT},
		{"source_rows", NUM},	     {"total_calls", NUM},
	};
	struct fp_emit_ctx ctx = {b};
	send_header(b, cols, NCOLS(cols));
	admin_nplus1_foreach(w, nplus1_emit, &ctx);
}

/* ---- commands that answer later ---- */

enum wait_kind { WAIT_PAUSE, WAIT_SUSPEND, WAIT_CLOSE };

/*
 * A console command that completes when the pools reach a state (PAUSE: no server in use;
 * WAIT_CLOSE: no server marked close_needed). The console stops reading meanwhile and picks
 * up the rest of the query string when it is done. Keyed by client id, not pointer, because
 * the client may leave while it waits.
 */
struct admin_wait {
	struct worker *w;
	uint64_t client_id;
	struct event *ev;
	enum wait_kind kind;
	char *db;   /* NULL: all databases */
	char *rest; /* commands after this one in the same query string */
	const char *tag;
};

static bool run_commands(struct client *c, char *sql, struct iobuf *b, bool *any);

static bool pool_in(const struct pool *p, const char *db)
{
	return !db || strcmp(p->db->name, db) == 0;
}

static bool wait_done(struct admin_wait *aw)
{
	struct worker *w = aw->w;
	for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		if (!pool_in(p, aw->db))
			continue;
		if (aw->kind != WAIT_CLOSE) {
			if (!list_empty(&p->active_servers))
				return false;
			continue;
		}
		for (int i = 0; i < N_SERVER_LISTS; i++) {
			struct list *l = pool_server_list(p, i);
			for (struct list *sp = l->next; sp != l; sp = sp->next)
				if (container_of(sp, struct server, node)->close_needed)
					return false;
		}
	}
	return true;
}

/* Stop reading on every pooled connection: nothing moves until RESUME. */
static void suspend_all(struct worker *w)
{
	for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		struct list *cl[] = {&p->active_clients, &p->waiting_clients, &p->login_clients};
		for (size_t i = 0; i < NCOLS(cl); i++)
			for (struct list *cp = cl[i]->next; cp != cl[i]; cp = cp->next)
				sbuf_pause_read(&container_of(cp, struct client, node)->sb);
		for (int i = 0; i < N_SERVER_LISTS; i++) {
			struct list *l = pool_server_list(p, i);
			for (struct list *sp = l->next; sp != l; sp = sp->next)
				sbuf_pause_read(&container_of(sp, struct server, node)->sb);
		}
	}
}

/* Undo suspend_all for the connections that read between requests. */
static void unsuspend_all(struct worker *w)
{
	for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		for (struct list *cp = p->active_clients.next; cp != &p->active_clients;
		     cp = cp->next) {
			struct client *c = container_of(cp, struct client, node);
			if (!c->sb.read_on) {
				sbuf_resume_read(&c->sb);
				if (iobuf_avail(&c->sb.in))
					sbuf_kick(&c->sb);
			}
		}
		for (int i = 0; i < N_SERVER_LISTS; i++) {
			struct list *l = pool_server_list(p, i);
			for (struct list *sp = l->next; sp != l; sp = sp->next) {
				struct server *s = container_of(sp, struct server, node);
				if (!s->sb.read_on) {
					sbuf_resume_read(&s->sb);
					if (iobuf_avail(&s->sb.in))
						sbuf_kick(&s->sb);
				}
			}
		}
	}
}

static void wait_free(struct admin_wait *aw)
{
	event_free(aw->ev);
	free(aw->db);
	free(aw->rest);
	free(aw);
}

static void wait_cb(evutil_socket_t fd, short what, void *arg)
{
	struct admin_wait *aw = arg;
	(void)fd;
	(void)what;
	worker_tick(aw->w);
	struct client *c = find_admin_client(aw->w, aw->client_id);
	if (!c) {
		wait_free(aw);
		return;
	}
	if (!wait_done(aw))
		return;
	if (aw->kind == WAIT_SUSPEND)
		suspend_all(aw->w);

	struct iobuf b = {0};
	bool any = true;
	proto_build_command_complete(&b, aw->tag);
	char *rest = aw->rest;
	aw->rest = NULL;
	wait_free(aw);
	bool deferred = rest && run_commands(c, rest, &b, &any);
	free(rest);
	if (!deferred)
		proto_build_ready(&b, 'I');
	if (c->state == CL_ADMIN && client_send(c, &b) && !deferred) {
		sbuf_resume_read(&c->sb);
		if (iobuf_avail(&c->sb.in))
			sbuf_kick(&c->sb);
	}
	iobuf_release(&b);
}

/* Answer later; false (with an error in b) when the wait cannot be set up. */
static bool defer(struct client *c, enum wait_kind kind, const char *db, const char *rest,
		  const char *tag, struct iobuf *b)
{
	struct admin_wait *aw = calloc(1, sizeof(*aw));
	if (!aw)
		goto oom;
	aw->w = c->w;
	aw->client_id = c->id;
	aw->kind = kind;
	aw->tag = tag;
	aw->db = db ? strdup(db) : NULL;
	aw->rest = rest ? strdup(rest) : NULL;
	aw->ev = event_new(c->w->base, -1, EV_PERSIST, wait_cb, aw);
	if ((db && !aw->db) || (rest && !aw->rest) || !aw->ev) {
		if (aw->ev)
			event_free(aw->ev);
		free(aw->db);
		free(aw->rest);
		free(aw);
		goto oom;
	}
	struct timeval tv = {0, ADMIN_WAIT_POLL_USEC};
	event_add(aw->ev, &tv);
	sbuf_pause_read(&c->sb);
	return true;
oom:
	admin_error(b, "53200", "out of memory");
	return false;
}

/* ---- control commands ---- */

static bool need_db(struct worker *w, const char *arg, bool create, struct pool_db **out,
		    struct iobuf *b)
{
	if (is_admin_name(arg) && !config_find_db(w->cfg, arg, false)) {
		admin_error(b, "55000", "the console database \"%s\" cannot be changed", arg);
		return false;
	}
	*out = pool_db_find(w, arg, create);
	if (!*out) {
		admin_error(b, "3D000", "no such database: %s", arg);
		return false;
	}
	return true;
}

/* Close every connection of the pools of db (NULL: all), clients first. */
static void kill_pools(struct worker *w, const char *db)
{
	for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		if (!pool_in(p, db))
			continue;
		struct list *cl[] = {&p->active_clients, &p->waiting_clients, &p->login_clients};
		for (size_t i = 0; i < NCOLS(cl); i++) {
			struct list *cp, *tmp;
			list_for_each_safe(cp, tmp, cl[i])
			{
				client_close(
					container_of(cp, struct client, node), "57P01",
					"database connections killed by an administrator (KILL)");
			}
		}
		for (int i = 0; i < N_SERVER_LISTS; i++) {
			struct list *sp, *tmp;
			list_for_each_safe(sp, tmp, pool_server_list(p, i))
			{
				server_close(container_of(sp, struct server, node), "KILL command");
			}
		}
	}
}

static void reconnect_pools(struct worker *w, const char *db)
{
	for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		if (!pool_in(p, db))
			continue;
		for (int i = 0; i < N_SERVER_LISTS; i++) {
			struct list *l = pool_server_list(p, i);
			for (struct list *sp = l->next; sp != l; sp = sp->next)
				container_of(sp, struct server, node)->close_needed = true;
		}
		/* Idle ones can go now; the others close when they come back. */
		struct list *sp, *tmp;
		list_for_each_safe(sp, tmp, &p->idle_servers)
		{
			server_close(container_of(sp, struct server, node), "RECONNECT command");
		}
	}
}

static void maintain_pools(struct worker *w, const char *db)
{
	for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		if (pool_in(p, db))
			pool_maintain(p);
	}
}

static bool db_has_active(struct worker *w, const char *db)
{
	for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		if (pool_in(p, db) && !list_empty(&p->active_servers))
			return true;
	}
	return false;
}

static bool any_db_paused(struct worker *w)
{
	for (struct list *pos = w->dbs.next; pos != &w->dbs; pos = pos->next)
		if (container_of(pos, struct pool_db, node)->paused)
			return true;
	return false;
}

/* Outcome of one command. */
enum cmd_result { CMD_OK, CMD_ERROR, CMD_DEFERRED };

static enum cmd_result cmd_pause(struct client *c, const char *arg, const char *rest,
				 struct iobuf *b)
{
	struct worker *w = c->w;
	struct pool_db *pdb = NULL;
	if (!arg) {
		if (w->paused) {
			admin_error(b, "55000", "already suspended/paused");
			return CMD_ERROR;
		}
		log_info("PAUSE command issued");
		w->paused = true;
	} else {
		if (!need_db(w, arg, true, &pdb, b))
			return CMD_ERROR;
		log_info("PAUSE '%s' command issued", arg);
		pdb->paused = true;
	}
	/* Like PgBouncer, answer once the transactions under way have finished. */
	if (!db_has_active(w, arg)) {
		proto_build_command_complete(b, "PAUSE");
		return CMD_OK;
	}
	return defer(c, WAIT_PAUSE, arg, rest, "PAUSE", b) ? CMD_DEFERRED : CMD_ERROR;
}

static enum cmd_result cmd_resume(struct client *c, const char *arg, struct iobuf *b)
{
	struct worker *w = c->w;
	if (!arg) {
		if (w->shutting_down) {
			admin_error(b, "55000", "pooler is shutting down");
			return CMD_ERROR;
		}
		if (!w->paused) {
			admin_error(b, "55000", "pooler is not paused/suspended");
			return CMD_ERROR;
		}
		log_info("RESUME command issued");
		bool suspended = is_suspended(w);
		w->paused = false;
		if (suspended)
			unsuspend_all(w);
	} else {
		struct pool_db *pdb = pool_db_find(w, arg, false);
		if (!pdb) {
			admin_error(b, "3D000", "no such database: %s", arg);
			return CMD_ERROR;
		}
		if (!pdb->paused) {
			admin_error(b, "55000", "database %s is not paused", arg);
			return CMD_ERROR;
		}
		log_info("RESUME '%s' command issued", arg);
		pdb->paused = false;
	}
	maintain_pools(w, arg);
	proto_build_command_complete(b, "RESUME");
	return CMD_OK;
}

static enum cmd_result cmd_suspend(struct client *c, const char *arg, const char *rest,
				   struct iobuf *b)
{
	struct worker *w = c->w;
	if (arg) {
		admin_error(b, "42601", "SUSPEND takes no argument; see SHOW HELP");
		return CMD_ERROR;
	}
	if (w->paused) {
		admin_error(b, "55000", "already suspended/paused");
		return CMD_ERROR;
	}
	if (any_db_paused(w)) {
		admin_error(b, "55000", "cannot suspend with paused databases");
		return CMD_ERROR;
	}
	log_info("SUSPEND command issued");
	w->paused = true;
	if (!db_has_active(w, NULL)) {
		suspend_all(w);
		proto_build_command_complete(b, "SUSPEND");
		return CMD_OK;
	}
	return defer(c, WAIT_SUSPEND, NULL, rest, "SUSPEND", b) ? CMD_DEFERRED : CMD_ERROR;
}

static enum cmd_result cmd_disable(struct client *c, const char *arg, bool disable, struct iobuf *b)
{
	struct pool_db *pdb;
	if (!arg) {
		admin_error(b, "42601", "a database is required; see SHOW HELP");
		return CMD_ERROR;
	}
	if (!need_db(c->w, arg, disable, &pdb, b))
		return CMD_ERROR;
	log_info("%s '%s' command issued", disable ? "DISABLE" : "ENABLE", arg);
	pdb->disabled = disable;
	proto_build_command_complete(b, disable ? "DISABLE" : "ENABLE");
	return CMD_OK;
}

static enum cmd_result cmd_kill(struct client *c, const char *arg, struct iobuf *b)
{
	struct worker *w = c->w;
	struct pool_db *pdb;
	if (!arg) {
		log_info("KILL command issued");
		/* New clients wait for RESUME, as with PgBouncer. */
		for (struct list *pos = w->dbs.next; pos != &w->dbs; pos = pos->next)
			container_of(pos, struct pool_db, node)->paused = true;
	} else {
		if (!need_db(w, arg, true, &pdb, b))
			return CMD_ERROR;
		log_info("KILL '%s' command issued", arg);
		pdb->paused = true;
	}
	kill_pools(w, arg);
	proto_build_command_complete(b, "KILL");
	return CMD_OK;
}

static enum cmd_result cmd_kill_client(struct client *c, const char *arg, struct iobuf *b)
{
	struct worker *w = c->w;
	char *end;
	if (!arg) {
		admin_error(b, "42601", "KILL_CLIENT needs a client id (SHOW CLIENTS, column id)");
		return CMD_ERROR;
	}
	unsigned long long id = strtoull(arg, &end, 10);
	if (*end || end == arg) {
		admin_error(b, "22023", "invalid client id: %s", arg);
		return CMD_ERROR;
	}
	for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		struct list *cl[] = {&p->active_clients, &p->waiting_clients, &p->login_clients};
		for (size_t i = 0; i < NCOLS(cl); i++) {
			for (struct list *cp = cl[i]->next; cp != cl[i]; cp = cp->next) {
				struct client *k = container_of(cp, struct client, node);
				if (k->id != id)
					continue;
				log_info("KILL_CLIENT %llu command issued", id);
				client_close(k, "57P01", "admin forced disconnect (KILL_CLIENT)");
				proto_build_command_complete(b, "KILL_CLIENT");
				return CMD_OK;
			}
		}
	}
	admin_error(b, "42704", "client not found: %s", arg);
	return CMD_ERROR;
}

static enum cmd_result cmd_reconnect(struct client *c, const char *arg, struct iobuf *b)
{
	struct pool_db *pdb;
	if (arg && !need_db(c->w, arg, true, &pdb, b))
		return CMD_ERROR;
	log_info("RECONNECT%s%s command issued", arg ? " " : "", arg ? arg : "");
	reconnect_pools(c->w, arg);
	maintain_pools(c->w, arg);
	proto_build_command_complete(b, "RECONNECT");
	return CMD_OK;
}

static enum cmd_result cmd_wait_close(struct client *c, const char *arg, const char *rest,
				      struct iobuf *b)
{
	struct pool_db *pdb;
	if (arg && !need_db(c->w, arg, true, &pdb, b))
		return CMD_ERROR;
	struct admin_wait probe = {.w = c->w, .kind = WAIT_CLOSE, .db = (char *)arg};
	if (wait_done(&probe)) {
		proto_build_command_complete(b, "WAIT_CLOSE");
		return CMD_OK;
	}
	return defer(c, WAIT_CLOSE, arg, rest, "WAIT_CLOSE", b) ? CMD_DEFERRED : CMD_ERROR;
}

static enum cmd_result cmd_reset(struct client *c, const char *arg, struct iobuf *b)
{
	struct worker *w = c->w;
	if (arg && strcasecmp(arg, "stats") == 0) {
		usec_t now = worker_now(w);
		for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
			struct pool *p = container_of(pos, struct pool, node);
			memset(&p->stats, 0, sizeof(p->stats));
			metrics_pool_reset(p, now);
		}
	} else if (arg && strcasecmp(arg, "fingerprints") == 0) {
		admin_fingerprints_reset(w);
	} else if (arg && strcasecmp(arg, "nplus1") == 0) {
		admin_nplus1_reset(w);
	} else {
		admin_error(b, "42601", "RESET what? STATS, FINGERPRINTS or NPLUS1; see SHOW HELP");
		return CMD_ERROR;
	}
	log_info("RESET %s command issued", arg);
	proto_build_command_complete(b, "RESET");
	return CMD_OK;
}

/* Session settings clients send on connect; accepted and ignored like PgBouncer does. */
static bool is_session_param(const char *key)
{
	static const char *const keys[] = {"client_encoding",
					   "datestyle",
					   "timezone",
					   "extra_float_digits",
					   "application_name",
					   "standard_conforming_strings",
					   "default_transaction_isolation",
					   NULL};
	for (int i = 0; keys[i]; i++)
		if (strcasecmp(key, keys[i]) == 0)
			return true;
	return false;
}

/* SET key = value | SET key TO value; value bare or 'quoted' ('' for a quote). */
static enum cmd_result cmd_set(struct client *c, char *arg, struct iobuf *b)
{
	struct worker *w = c->w;
	char err[300];
	if (!arg)
		goto syntax;
	char *key = arg;
	char *p = key;
	while (*p && (isalnum((unsigned char)*p) || *p == '_'))
		p++;
	char *key_end = p;
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '=')
		p++;
	else if (strncasecmp(p, "to", 2) == 0 && isspace((unsigned char)p[2]))
		p += 2;
	else
		goto syntax;
	*key_end = '\0';
	if (!*key)
		goto syntax;
	while (isspace((unsigned char)*p))
		p++;
	char *value = p;
	if (*p == '\'') {
		char *out = value;
		for (p++;; p++) {
			if (!*p)
				goto syntax;
			if (*p == '\'') {
				if (p[1] != '\'')
					break;
				p++;
			}
			*out++ = *p;
		}
		*out = '\0';
		p++;
		while (isspace((unsigned char)*p))
			p++;
		if (*p)
			goto syntax;
	}
	if (is_session_param(key)) {
		proto_build_error(b, true, "NOTICE", "00000", "SET ignored");
		proto_build_command_complete(b, "SET");
		return CMD_OK;
	}
	if (strncasecmp(key, "client_tls_", 11) == 0 || strncasecmp(key, "server_tls_", 11) == 0) {
		/* Certificates and contexts are rebuilt only by RELOAD, all or nothing. */
		admin_error(b, "55000", "%s: change TLS settings in the config file and RELOAD",
			    key);
		return CMD_ERROR;
	}
	if (!config_set(w->cfg, key, value, err, sizeof(err))) {
		admin_error(b, "22023", "%s", err);
		return CMD_ERROR;
	}
	log_info("SET %s = %s", key, value);
	/* Pool sizes and limits may have grown: waiting clients may get a server now. */
	maintain_pools(w, NULL);
	proto_build_command_complete(b, "SET");
	return CMD_OK;
syntax:
	admin_error(b, "42601", "SET needs: SET key = value; see SHOW HELP");
	return CMD_ERROR;
}

/* Strip double quotes from an identifier argument ("my db" -> my db, "" -> "). */
static void unquote_ident(char *s)
{
	size_t n = strlen(s);
	if (n < 2 || s[0] != '"' || s[n - 1] != '"')
		return;
	char *out = s;
	for (size_t i = 1; i + 1 < n; i++) {
		if (s[i] == '"' && s[i + 1] == '"')
			i++;
		*out++ = s[i];
	}
	*out = '\0';
}

/* Split "WORD [ARG]" into a lower-case word and an optional argument. */
static void split_cmd(char *cmd, char **word, char **arg)
{
	while (isspace((unsigned char)*cmd))
		cmd++;
	char *end = cmd + strlen(cmd);
	while (end > cmd && isspace((unsigned char)end[-1]))
		*--end = '\0';
	*word = cmd;
	char *sp = cmd;
	while (*sp && !isspace((unsigned char)*sp))
		sp++;
	if (*sp) {
		*sp++ = '\0';
		while (isspace((unsigned char)*sp))
			sp++;
		*arg = *sp ? sp : NULL;
	} else {
		*arg = NULL;
	}
	for (char *p = *word; *p; p++)
		*p = (char)tolower((unsigned char)*p);
}

static enum cmd_result cmd_show(struct client *c, const char *arg, struct iobuf *b)
{
	struct worker *w = c->w;
	if (!arg) {
		admin_error(b, "42601", "SHOW what? See SHOW HELP");
		return CMD_ERROR;
	}
	if (strcasecmp(arg, "help") == 0)
		show_help(b);
	else if (strcasecmp(arg, "version") == 0)
		show_version(b);
	else if (strcasecmp(arg, "config") == 0)
		show_config(w, b);
	else if (strcasecmp(arg, "databases") == 0)
		show_databases(w, b);
	else if (strcasecmp(arg, "pools") == 0)
		show_pools(w, b);
	else if (strcasecmp(arg, "clients") == 0)
		show_clients(w, b);
	else if (strcasecmp(arg, "servers") == 0)
		show_servers(w, b);
	else if (strcasecmp(arg, "users") == 0)
		show_users(w, b);
	else if (strcasecmp(arg, "stats") == 0)
		show_stats(w, b, STATS_ALL);
	else if (strcasecmp(arg, "stats_totals") == 0)
		show_stats(w, b, STATS_TOTALS);
	else if (strcasecmp(arg, "stats_averages") == 0)
		show_stats(w, b, STATS_AVERAGES);
	else if (strcasecmp(arg, "totals") == 0)
		show_totals(w, b);
	else if (strcasecmp(arg, "lists") == 0)
		show_lists(w, b);
	else if (strcasecmp(arg, "mem") == 0)
		show_mem(w, b);
	else if (strcasecmp(arg, "state") == 0)
		show_state(w, b);
	else if (strcasecmp(arg, "fingerprints") == 0)
		show_fingerprints(w, b);
	else if (strcasecmp(arg, "nplus1") == 0)
		show_nplus1(w, b);
	else if (strcasecmp(arg, "fds") == 0) {
		/* Cancel keys of every connection: admin_users only, as in PgBouncer. */
		if (!c->admin_may_control) {
			admin_error(b, "42501", "SHOW FDS is for admin_users only");
			return CMD_ERROR;
		}
		show_fds(w, b);
	} else {
		admin_error(b, "42601", "unknown SHOW item \"%s\"; see SHOW HELP", arg);
		return CMD_ERROR;
	}
	proto_build_command_complete(b, "SHOW");
	return CMD_OK;
}

/* One command; rest is what follows it in the query string (for commands that wait). */
static enum cmd_result admin_command(struct client *c, char *cmd, const char *rest, struct iobuf *b)
{
	struct worker *w = c->w;
	char *word, *arg;

	split_cmd(cmd, &word, &arg);
	if (strcmp(word, "show") == 0)
		return cmd_show(c, arg, b);
	static const char *const known[] = {
		"pause",     "resume",     "suspend", "disable",  "enable", "kill",  "kill_client",
		"reconnect", "wait_close", "reload",  "shutdown", "set",    "reset", NULL};
	bool is_known = false;
	for (int i = 0; known[i] && !is_known; i++)
		is_known = strcmp(word, known[i]) == 0;
	if (!is_known) {
		admin_error(b, "42601", "unknown command \"%s\"; see SHOW HELP", word);
		return CMD_ERROR;
	}
	if (strcmp(word, "set") == 0 && arg) {
		char key[64];
		size_t i = 0;
		while (i + 1 < sizeof(key) && (isalnum((unsigned char)arg[i]) || arg[i] == '_')) {
			key[i] = arg[i];
			i++;
		}
		key[i] = '\0';
		/* Clients' session SETs are harmless and allowed for stats_users too. */
		if (is_session_param(key))
			return cmd_set(c, arg, b);
	}
	if (!c->admin_may_control) {
		admin_error(b, "42501",
			    "admin access needed: only admin_users may run %s "
			    "(stats_users may only SHOW)",
			    word);
		return CMD_ERROR;
	}
	if (strcmp(word, "set") == 0)
		return cmd_set(c, arg, b);
	if (arg && strcmp(word, "reset") != 0)
		unquote_ident(arg);
	if (strcmp(word, "pause") == 0)
		return cmd_pause(c, arg, rest, b);
	if (strcmp(word, "resume") == 0)
		return cmd_resume(c, arg, b);
	if (strcmp(word, "suspend") == 0)
		return cmd_suspend(c, arg, rest, b);
	if (strcmp(word, "disable") == 0)
		return cmd_disable(c, arg, true, b);
	if (strcmp(word, "enable") == 0)
		return cmd_disable(c, arg, false, b);
	if (strcmp(word, "kill") == 0)
		return cmd_kill(c, arg, b);
	if (strcmp(word, "kill_client") == 0)
		return cmd_kill_client(c, arg, b);
	if (strcmp(word, "reconnect") == 0)
		return cmd_reconnect(c, arg, b);
	if (strcmp(word, "wait_close") == 0)
		return cmd_wait_close(c, arg, rest, b);
	if (strcmp(word, "reset") == 0)
		return cmd_reset(c, arg, b);
	if (strcmp(word, "reload") == 0) {
		char err[256];
		if (arg) {
			admin_error(b, "42601", "RELOAD takes no argument; see SHOW HELP");
			return CMD_ERROR;
		}
		log_info("RELOAD command issued");
		if (!app_reload(w, err, sizeof(err))) {
			admin_error(b, "F0000", "RELOAD failed: %s", err);
			return CMD_ERROR;
		}
		proto_build_command_complete(b, "RELOAD");
		return CMD_OK;
	}
	/* shutdown */
	int mode = 0;
	if (arg && strcasecmp(arg, "wait_for_servers") == 0) {
		mode = 1;
	} else if (arg && strcasecmp(arg, "wait_for_clients") == 0) {
		mode = 2;
	} else if (arg) {
		admin_error(b, "42601", "SHUTDOWN [WAIT_FOR_SERVERS | WAIT_FOR_CLIENTS]");
		return CMD_ERROR;
	}
	log_info("SHUTDOWN%s%s command issued", arg ? " " : "", arg ? arg : "");
	if (mode == 1)
		w->paused = true; /* no new transactions while the last ones finish */
	proto_build_command_complete(b, "SHUTDOWN");
	app_shutdown(w, mode);
	return CMD_OK;
}

/*
 * Run the commands of a query string split on top-level ';' (quotes respected). Returns true
 * when one of them answers later; it then owns the rest of the string. Stops at the first
 * error, like PostgreSQL does with a multi-statement query.
 */
static bool run_commands(struct client *c, char *sql, struct iobuf *b, bool *any)
{
	char *start = sql;
	char quote = 0;
	for (char *p = sql;; p++) {
		if (*p && quote) {
			if (*p == quote)
				quote = 0;
			continue;
		}
		if (*p == '\'' || *p == '"') {
			quote = *p;
			continue;
		}
		if (*p != ';' && *p != '\0')
			continue;
		bool end = *p == '\0';
		*p = '\0';
		char *s = start;
		while (isspace((unsigned char)*s))
			s++;
		if (*s) {
			*any = true;
			enum cmd_result res = admin_command(c, s, end ? NULL : p + 1, b);
			if (res == CMD_DEFERRED)
				return true;
			if (res == CMD_ERROR || c->state != CL_ADMIN)
				return false;
		}
		if (end)
			return false;
		start = p + 1;
	}
}

void admin_process(struct client *c)
{
	struct iobuf *in = &c->sb.in;
	struct iobuf b = {0};
	bool deferred = false;

	while (!deferred && c->state == CL_ADMIN && iobuf_avail(in) >= 5) {
		const uint8_t *hdr = in->data + in->rpos;
		uint32_t len = proto_be32(hdr + 1);
		if (len < 4 || len > 1024 * 1024) {
			client_close(c, "08P01", "invalid message length on the console");
			break;
		}
		if (iobuf_avail(in) < (size_t)len + 1) {
			if (in->cap < (size_t)len + 1 &&
			    !iobuf_reserve(in, len + 1 - iobuf_avail(in)))
				client_close(c, "53200", "out of memory");
			break;
		}
		in->rpos += (size_t)len + 1;
		if (hdr[0] == 'X') {
			client_close(c, NULL, "console client sent Terminate");
			break;
		}
		if (hdr[0] != 'Q') {
			/* Extended protocol: one error per Sync, like a server in an aborted
			 * pipeline. */
			if (hdr[0] == 'S') {
				proto_build_error(
					&b, false, "ERROR", "0A000",
					"the console speaks only the simple query protocol");
				proto_build_ready(&b, 'I');
			}
			continue;
		}
		char *sql = strndup((const char *)hdr + 5, len - 4);
		if (!sql) {
			client_close(c, "53200", "out of memory");
			break;
		}
		bool any = false;
		deferred = run_commands(c, sql, &b, &any);
		free(sql);
		if (deferred)
			break;
		if (!any) {
			size_t s = pkt_begin(&b, 'I'); /* EmptyQueryResponse */
			pkt_end(&b, s);
		}
		proto_build_ready(&b, 'I');
	}
	if (c->state == CL_ADMIN && iobuf_avail(&b))
		(void)client_send(c, &b);
	iobuf_release(&b);
}
