/* admin_show: the console's SHOW commands, over every worker (rows merged by name in admin.c). */
#include "admin.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "admin_int.h"
#include "app.h"
#include "fpcache.h"
#include "client.h"
#include "dns.h"
#include "metrics.h"
#include "nplus1.h"
#include "pool.h"
#include "proto.h"
#include "server.h"
#include "stats.h"
#include "worker.h"

#define PG_TYPE_BYTEA 17u

#define NCOLS ADMIN_NCOLS

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

static const char *const pool_mode_names[] = {"session", "transaction", "statement"};

static const char *pool_mode_name(int mode)
{
	return mode >= 0 && mode <= 2 ? pool_mode_names[mode] : NULL;
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
		"\tSHOW FDS|LISTS|MEM|STATE|WORKERS|DNS_HOSTS|DNS_ZONES\n"
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

/* SHOW's load_balance_hosts: NULL unless the database has a host list, as in PgBouncer. */
static const char *lb_hosts_name(const struct config_db *cd)
{
	if (config_host_count(cd->host) == 1)
		return NULL;
	return cd->load_balance_hosts == LB_HOSTS_DISABLE ? "disable" : "round-robin";
}

static void show_pools(const struct admin_merged *m, struct iobuf *b)
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
	send_header(b, cols, NCOLS(cols));
	for (size_t i = 0; i < m->n_pools; i++) {
		const struct admin_pool_row *p = &m->pools[i];
		struct row r = {0};
		row_str(&r, p->database);
		row_str(&r, p->user);
		row_i64(&r, (long long)p->cl_active);
		row_i64(&r, (long long)p->cl_waiting);
		row_i64(&r, 0);
		row_i64(&r, 0);
		row_i64(&r, (long long)p->sv_active);
		row_i64(&r, 0);
		row_i64(&r, 0);
		row_i64(&r, (long long)p->sv_idle);
		row_i64(&r, (long long)p->sv_used);
		row_i64(&r, (long long)p->sv_tested);
		row_i64(&r, (long long)p->sv_login);
		row_i64(&r, (long long)(p->maxwait / 1000000));
		row_i64(&r, (long long)(p->maxwait % 1000000));
		row_str(&r, pool_mode_name(p->pool_mode));
		row_str(&r, lb_hosts_name(m->dbs[p->db].cfg));
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

static void show_clients(usec_t now, struct iobuf *b)
{
	struct worker *w;
	send_header(b, socket_cols, NCOLS(socket_cols));
	for (int i = 0; (w = app_worker(i)); i++) {
		for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
			struct pool *p = container_of(pos, struct pool, node);
			clients_on(b, &p->active_clients, now);
			clients_on(b, &p->waiting_clients, now);
			clients_on(b, &p->login_clients, now);
		}
		clients_on(b, &w->admin_clients, now);
	}
}

static void server_row(struct iobuf *b, struct server *s, usec_t now)
{
	static const char *const states[] = {"new", "idle", "active", "used", "tested", "closed"};
	struct row r = {0};
	const struct pool_db *db = s->pool->db;
	char laddr[64], ptr[32], link[32];
	int lport;
	char hbuf[CONFIG_HOST_MAX];
	const char *host = config_host_entry(db->cfg.host, s->host_idx, hbuf);
	if (config_host_is_unix(host))
		host = "unix";
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

static void show_servers(usec_t now, struct iobuf *b)
{
	struct worker *w;
	send_header(b, socket_cols, NCOLS(socket_cols));
	for (int wi = 0; (w = app_worker(wi)); wi++) {
		for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
			struct pool *p = container_of(pos, struct pool, node);
			for (int i = 0; i < ADMIN_N_SERVER_LISTS; i++) {
				struct list *l = admin_pool_server_list(p, i);
				for (struct list *sp = l->next; sp != l; sp = sp->next)
					server_row(b, container_of(sp, struct server, node), now);
			}
		}
	}
}

static void database_row(struct iobuf *b, const struct config *cfg, const struct admin_db_row *d)
{
	const struct config_db *cd = d->cfg;
	struct row r = {0};
	/* NULL for a unix socket, as in PgBouncer; a host list as written */
	const char *host =
		config_host_count(cd->host) > 1 || !config_host_is_unix(cd->host) ? cd->host : NULL;
	int pool_size = cd->pool_size >= 0 ? cd->pool_size : cfg->default_pool_size;
	int min_pool = cd->min_pool_size >= 0 ? cd->min_pool_size : cfg->min_pool_size;
	int reserve = cd->reserve_pool >= 0 ? cd->reserve_pool : cfg->reserve_pool_size;
	int max_conn =
		cd->max_db_connections >= 0 ? cd->max_db_connections : cfg->max_db_connections;

	row_str(&r, d->name);
	row_str(&r, host);
	row_i64(&r, cd->port > 0 ? cd->port : 5432);
	row_str(&r, cd->dbname ? cd->dbname : d->name);
	row_str(&r, cd->user);
	row_i64(&r, pool_size);
	row_i64(&r, min_pool);
	row_i64(&r, reserve);
	row_i64(&r, (long long)(cfg->server_lifetime / 1000000));
	row_str(&r, pool_mode_name(cd->pool_mode));
	row_str(&r, lb_hosts_name(cd));
	row_i64(&r, max_conn);
	row_i64(&r, d->n_servers);
	row_i64(&r, 0);
	row_i64(&r, d->n_clients);
	row_i64(&r, d->paused ? 1 : 0);
	row_i64(&r, d->disabled ? 1 : 0);
	send_row(b, &r);
}

static void show_databases(const struct config *cfg, const struct admin_merged *m,
			   struct iobuf *b)
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
	/* Databases in use first, then the configured ones nobody has connected to yet. */
	for (size_t i = 0; i < m->n_dbs; i++)
		if (!m->dbs[i].removed)
			database_row(b, cfg, &m->dbs[i]);
}

/* One user over all workers. */
struct user_sum {
	const char *name;
	int n_servers, n_clients;
};

static void user_row(struct iobuf *b, const struct config *cfg, const struct user_sum *u)
{
	const struct config_user *cu = config_find_user(cfg, u->name);
	struct row r = {0};
	char size[16] = "";
	int max_conn = cu && cu->max_user_connections >= 0 ? cu->max_user_connections
							   : cfg->max_user_connections;
	int max_cl =
		cu && cu->max_user_client_connections >= 0 ? cu->max_user_client_connections : 0;
	if (cu && cu->pool_size >= 0)
		snprintf(size, sizeof(size), "%d", cu->pool_size);
	row_str(&r, u->name);
	row_str(&r, size);
	row_str(&r, "");
	row_str(&r, cu ? pool_mode_name(cu->pool_mode) : NULL);
	row_i64(&r, max_conn);
	row_i64(&r, u->n_servers);
	row_i64(&r, max_cl);
	row_i64(&r, u->n_clients);
	send_row(b, &r);
}

struct user_key {
	const struct user_sum *users;
	const char *name;
};

static bool same_user(const void *arg, size_t i)
{
	const struct user_key *k = arg;
	return strcmp(k->users[i].name, k->name) == 0;
}

/* One row per name: the pool_user objects of every worker, then configured users not seen. */
static bool show_users(const struct config *cfg, struct iobuf *b)
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
	struct worker *w;
	size_t max = cfg->n_users, n = 0;
	for (int i = 0; (w = app_worker(i)); i++)
		max += list_count(&w->users);
	struct user_sum *users = malloc((max ? max : 1) * sizeof(*users));
	struct admin_keymap km = {0};
	if (!users || !admin_keymap_init(&km, max)) {
		free(users);
		admin_error(b, "53200", "out of memory");
		return false;
	}
	for (int i = 0; (w = app_worker(i)); i++) {
		for (struct list *pos = w->users.next; pos != &w->users; pos = pos->next) {
			struct pool_user *pu = container_of(pos, struct pool_user, node);
			struct user_key k = {users, pu->name};
			size_t *slot = admin_keymap_slot(
				&km, admin_hash_str(ADMIN_HASH_SEED, pu->name), same_user, &k);
			if (!*slot) {
				users[n] = (struct user_sum){pu->name, 0, 0};
				*slot = ++n;
			}
			users[*slot - 1].n_servers += pu->n_servers;
			users[*slot - 1].n_clients += pu->n_clients;
		}
	}
	for (size_t i = 0; i < cfg->n_users; i++) {
		struct user_key k = {users, cfg->users[i].name};
		size_t *slot = admin_keymap_slot(&km, admin_hash_str(ADMIN_HASH_SEED, k.name),
						 same_user, &k);
		if (!*slot) {
			users[n] = (struct user_sum){k.name, 0, 0};
			*slot = ++n;
		}
	}
	admin_keymap_free(&km);
	send_header(b, cols, NCOLS(cols));
	for (size_t i = 0; i < n; i++)
		user_row(b, cfg, &users[i]);
	free(users);
	return true;
}

/* PgBouncer's averages: counts and bytes per second, times per query/transaction/wait. */
static void stats_avg(const struct pool_stats *d, usec_t period_len, struct pool_stats *avg)
{
	memset(avg, 0, sizeof(*avg));
	if (period_len <= 0)
		return;
	uint64_t len = (uint64_t)period_len;
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

static void show_stats(const struct admin_merged *m, struct iobuf *b, enum stats_kind kind)
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
	/* Databases that have a pool on some worker (a removed one too, while it lasts). */
	for (size_t i = 0; i < m->n_dbs; i++) {
		const struct admin_db_row *d = &m->dbs[i];
		if (!d->n_pools)
			continue;
		struct pool_stats avg;
		struct row r = {0};
		stats_avg(&d->period_delta, d->period_len, &avg);
		row_str(&r, d->name);
		if (kind != STATS_AVERAGES)
			row_stats(&r, &d->stats);
		if (kind != STATS_TOTALS)
			row_stats(&r, &avg);
		send_row(b, &r);
	}
}

static void show_totals(const struct admin_merged *m, struct iobuf *b)
{
	static const struct col cols[] = {{"name", TXT}, {"value", NUM}};
	static const char *const names[] = {
		"total_server_assignment_count",
		"total_xact_count",
		"total_query_count",
		"total_client_bytes", /* SHOW STATS' total_received, named as PgBouncer names it */
		"total_server_bytes", /* total_sent */
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
		"avg_client_bytes",
		"avg_server_bytes",
		"avg_xact_time",
		"avg_query_time",
		"avg_wait_time",
		"avg_client_parse_count",
		"avg_server_parse_count",
		"avg_bind_count",
		"avg_client_login_count",
	};
	struct pool_stats total = {0}, delta = {0}, avg;
	uint64_t *t = (uint64_t *)&total, *d = (uint64_t *)&delta;
	usec_t len = 0;
	for (size_t i = 0; i < m->n_dbs; i++) {
		const uint64_t *dt = (const uint64_t *)&m->dbs[i].stats;
		const uint64_t *dd = (const uint64_t *)&m->dbs[i].period_delta;
		for (size_t k = 0; k < METRICS_NSTATS; k++) {
			t[k] += dt[k];
			d[k] += dd[k];
		}
		if (m->dbs[i].period_len > len)
			len = m->dbs[i].period_len;
	}
	stats_avg(&delta, len, &avg);
	const uint64_t *a = (const uint64_t *)&avg;
	send_header(b, cols, NCOLS(cols));
	for (size_t i = 0; i < NCOLS(names); i++) {
		struct row r = {0};
		row_str(&r, names[i]);
		row_u64(&r, i < METRICS_NSTATS ? t[i] : a[i - METRICS_NSTATS]);
		send_row(b, &r);
	}
}

static void show_config(const struct config *cfg, struct iobuf *b)
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
		config_value_text(cfg, o, value, sizeof(value));
		/* Never print a secret, even to admin_users: logs of psql sessions leak. */
		bool secret = o->secret || strstr(o->name, "password") != NULL;
		row_str(&r, o->name);
		row_str(&r, secret && *value ? "********" : value);
		row_str(&r, o->default_value);
		row_str(&r, o->changeable ? "yes" : "no");
		send_row(b, &r);
	}
}

/* Object counts are summed over the workers (each has its own databases, users and pools). */
static void show_lists(struct iobuf *b)
{
	static const struct col cols[] = {{"list", TXT}, {"items", I4}};
	size_t dbs = 0, users = 0, pools = 0, clients = 0, login = 0, servers = 0;
	size_t clients_free = 0, servers_free = 0, dns_names = 0, dns_queries = 0;
	struct worker *w;
	for (int i = 0; (w = app_worker(i)); i++) {
		int names, queries;
		dns_counts(w, &names, &queries); /* each worker resolves on its own */
		dns_names += (size_t)names;
		dns_queries += (size_t)queries;
		for (struct list *pos = w->dbs.next; pos != &w->dbs; pos = pos->next)
			dbs += !container_of(pos, struct pool_db, node)->removed;
		users += list_count(&w->users);
		pools += list_count(&w->pools);
		clients += (size_t)w->n_clients;
		login += list_count(&w->login_clients);
		servers += (size_t)w->n_servers;
		clients_free += w->clients.n_free; /* kept in the object caches for reuse */
		servers_free += w->servers.n_free;
	}
	const struct {
		const char *name;
		size_t n;
	} items[] = {
		{"databases", dbs},
		{"users", users},
		{"peers", 0},
		{"pools", pools},
		{"peer_pools", 0},
		{"free_clients", clients_free},
		{"used_clients", clients},
		{"login_clients", login},
		{"free_servers", servers_free},
		{"used_servers", servers},
		{"dns_names", dns_names},
		{"dns_zones", 0},
		{"dns_queries", dns_queries},
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

struct dns_rows {
	struct iobuf *b;
	const char *seen[256]; /* names already shown (each worker keeps its own) */
	size_t n_seen;
};

static void dns_host_row(void *arg, const char *name, long long ttl, const char *addrs)
{
	struct dns_rows *d = arg;
	for (size_t i = 0; i < d->n_seen; i++)
		if (strcmp(d->seen[i], name) == 0)
			return;
	if (d->n_seen < NCOLS(d->seen))
		d->seen[d->n_seen++] = name;
	struct row r = {0};
	row_str(&r, name);
	row_i64(&r, ttl);
	row_str(&r, addrs);
	send_row(d->b, &r);
}

/* The server host names looked up (dns.h), each once; what the first worker has. */
static void show_dns_hosts(struct iobuf *b)
{
	static const struct col cols[] = {{"hostname", TXT}, {"ttl", I8}, {"addrs", TXT}};
	struct dns_rows d = {.b = b};
	send_header(b, cols, NCOLS(cols));
	struct worker *w;
	for (int i = 0; (w = app_worker(i)); i++)
		dns_each(w, dns_host_row, &d);
}

/* No zones are watched (dns_zone_check_period has no effect): the header only. */
static void show_dns_zones(struct iobuf *b)
{
	static const struct col cols[] = {{"zonename", TXT}, {"serial", I8}, {"count", I4}};
	send_header(b, cols, NCOLS(cols));
}

static void show_mem(struct iobuf *b)
{
	static const struct col cols[] = {
		{"name", TXT}, {"size", I4}, {"used", I4}, {"free", I4}, {"memtotal", I4}};
	size_t clients = 0, clients_free = 0, servers = 0, servers_free = 0;
	size_t pools = 0, dbs = 0, users = 0;
	size_t bufs_used = 0, bufs_free = 0, fpc_bytes = 0;
	struct worker *w;
	for (int wi = 0; (w = app_worker(wi)); wi++) {
		fpc_bytes += fp_cache_bytes(w->fpcache);
		/* The object caches: in use (closed ones not yet freed included), and kept free. */
		clients += w->clients.n_total - w->clients.n_free;
		clients_free += w->clients.n_free;
		servers += w->servers.n_total - w->servers.n_free;
		servers_free += w->servers.n_free;
		pools += list_count(&w->pools);
		dbs += list_count(&w->dbs);
		users += list_count(&w->users);
		bufs_free += w->n_free_bufs;
		/* Connections hold a pooled buffer only while they have unread input. */
		for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
			struct pool *p = container_of(pos, struct pool, node);
			for (int i = 0; i < ADMIN_N_SERVER_LISTS; i++) {
				struct list *l = admin_pool_server_list(p, i);
				for (struct list *sp = l->next; sp != l; sp = sp->next)
					bufs_used +=
						container_of(sp, struct server, node)->sb.in.data !=
						NULL;
			}
		}
	}
	const struct {
		const char *name;
		size_t size, used, free;
	} items[] = {
		{"client_cache", sizeof(struct client), clients, clients_free},
		{"server_cache", sizeof(struct server), servers, servers_free},
		{"pool_cache", sizeof(struct pool), pools, 0},
		{"db_cache", sizeof(struct pool_db), dbs, 0},
		{"user_cache", sizeof(struct pool_user), users, 0},
		{"iobuf_cache", SBUF_BUFSIZE, bufs_used, bufs_free},
		{"fp_text_cache", 1, fpc_bytes, 0}, /* texts, shapes, templates, fingerprints */
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

/* PAUSE and SUSPEND apply to every worker alike: worker 0 tells. */
static void show_state(struct iobuf *b)
{
	static const struct col cols[] = {{"key", TXT}, {"value", TXT}};
	struct worker *w0 = app_worker(0);
	bool paused = w0 && w0->paused;
	bool suspended = admin_is_suspended();
	const char *const rows[][2] = {
		{"active", paused ? "no" : "yes"},
		{"paused", paused && !suspended ? "yes" : "no"},
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

/* pgtally's own: how the connections and tables spread over the workers. */
static void show_workers(struct iobuf *b)
{
	static const struct col cols[] = {
		{"worker", I4},	      {"clients", I4},	   {"servers", I4},
		{"pools", I4},	      {"fingerprints", I4}, {"nplus1_findings", I4},
	};
	struct worker *w;
	send_header(b, cols, NCOLS(cols));
	for (int i = 0; (w = app_worker(i)); i++) {
		struct row r = {0};
		row_i64(&r, i);
		row_i64(&r, w->n_clients);
		row_i64(&r, w->n_servers);
		row_i64(&r, (long long)list_count(&w->pools));
		row_i64(&r, (long long)w->fps.count);
		row_i64(&r, (long long)(w->nplus1 ? nplus1_table_count(w->nplus1) : 0));
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

static void fds_of_pool(struct iobuf *b, struct pool *p)
{
	struct list *cl[] = {&p->active_clients, &p->waiting_clients};
	for (size_t i = 0; i < NCOLS(cl); i++) {
		for (struct list *cp = cl[i]->next; cp != cl[i]; cp = cp->next) {
			struct client *c = container_of(cp, struct client, node);
			uint64_t key = ((uint64_t)c->cancel_pid << 32) | c->cancel_key;
			struct sockaddr_storage ca = {0};
			memcpy(&ca, &c->addr, sizeof(c->addr));
			fd_row(b, c->sb.fd, "client", c->user_name, p->db->name, &ca, c->is_unix,
			       key, c->server ? c->server->sb.fd : 0, c->params);
		}
	}
	for (int i = 0; i < ADMIN_N_SERVER_LISTS; i++) {
		struct list *l = admin_pool_server_list(p, i);
		for (struct list *sp = l->next; sp != l; sp = sp->next) {
			struct server *s = container_of(sp, struct server, node);
			struct sockaddr_storage sa;
			socklen_t len = sizeof(sa);
			memset(&sa, 0, sizeof(sa));
			if (s->sb.fd < 0 || getpeername(s->sb.fd, (struct sockaddr *)&sa, &len) < 0)
				sa.ss_family = AF_UNIX;
			uint64_t key = ((uint64_t)s->be_pid << 32) | s->be_key;
			fd_row(b, s->sb.fd, "server",
			       p->db->cfg.user ? p->db->cfg.user : p->user->name, p->db->name, &sa,
			       sa.ss_family == AF_UNIX, key, s->client ? s->client->sb.fd : 0,
			       (const char *const *)s->params);
		}
	}
}

static void show_fds(struct iobuf *b)
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
	struct worker *w;
	send_header(b, cols, NCOLS(cols));
	for (int i = 0; (w = app_worker(i)); i++) {
		for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next)
			fds_of_pool(b, container_of(pos, struct pool, node));
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

static void fp_emit(void *arg, const struct admin_fp_row *f)
{
	struct iobuf *b = arg;
	struct row r = {0};
	row_str(&r, f->database);
	row_str(&r, f->user);
	row_hex(&r, f->fingerprint);
	row_u64(&r, f->calls);
	row_u64(&r, f->rows);
	row_u64(&r, f->total_time_us);
	row_u64(&r, f->calls ? f->total_time_us / f->calls : 0);
	row_u64(&r, f->min_time_us);
	row_u64(&r, f->max_time_us);
	row_u64(&r, f->errors);
	row_u64(&r, f->calls_in_txn);
	row_u64(&r, f->nplus1);
	row_time(&r, f->first_seen);
	row_time(&r, f->last_seen);
	char *q;
	row_str(&r, clean_utf8(f->query, &q));
	send_row(b, &r);
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
	send_header(b, cols, NCOLS(cols));
	admin_fingerprints_foreach(w, fp_emit, b);
}

static void nplus1_emit(void *arg, const struct admin_nplus1_row *f)
{
	struct iobuf *b = arg;
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
	row_u64(&r, f->total_time_us);
	row_time(&r, f->first_seen);
	row_time(&r, f->last_seen);
	row_str(&r, clean_utf8(f->query, &q));
	row_str(&r, clean_utf8(f->source_query, &sq));
	row_u64(&r, f->source_rows);
	row_u64(&r, f->executions);
	send_row(b, &r);
	free(app);
	free(route);
	free(q);
	free(sq);
}

/* N+1 findings, one row per (database, user, application_name, route, kind, fingerprint). */
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
	send_header(b, cols, NCOLS(cols));
	admin_nplus1_foreach(w, nplus1_emit, b);
}

/* The SHOW items rendered from the merged pools and databases. */
enum merged_item { M_POOLS, M_DATABASES, M_STATS, M_STATS_TOTALS, M_STATS_AVERAGES, M_TOTALS };

static bool show_merged(struct worker *w, enum merged_item item, struct iobuf *b)
{
	struct admin_merged m;
	if (!admin_merge(&m, worker_now(w))) {
		admin_error(b, "53200", "out of memory");
		return false;
	}
	switch (item) {
	case M_POOLS:
		show_pools(&m, b);
		break;
	case M_DATABASES:
		show_databases(w->cfg, &m, b);
		break;
	case M_STATS:
		show_stats(&m, b, STATS_ALL);
		break;
	case M_STATS_TOTALS:
		show_stats(&m, b, STATS_TOTALS);
		break;
	case M_STATS_AVERAGES:
		show_stats(&m, b, STATS_AVERAGES);
		break;
	case M_TOTALS:
		show_totals(&m, b);
		break;
	}
	admin_merged_free(&m);
	return true;
}

bool admin_show(struct client *c, const char *arg, struct iobuf *b)
{
	static const struct {
		const char *name;
		enum merged_item item;
	} merged[] = {
		{"pools", M_POOLS},
		{"databases", M_DATABASES},
		{"stats", M_STATS},
		{"stats_totals", M_STATS_TOTALS},
		{"stats_averages", M_STATS_AVERAGES},
		{"totals", M_TOTALS},
	};
	struct worker *w = c->w;
	usec_t now = worker_now(w);
	if (!arg) {
		admin_error(b, "42601", "SHOW what? See SHOW HELP");
		return false;
	}
	for (size_t i = 0; i < NCOLS(merged); i++) {
		if (strcasecmp(arg, merged[i].name) != 0)
			continue;
		if (!show_merged(w, merged[i].item, b))
			return false;
		proto_build_command_complete(b, "SHOW");
		return true;
	}
	if (strcasecmp(arg, "help") == 0) {
		show_help(b);
	} else if (strcasecmp(arg, "version") == 0) {
		show_version(b);
	} else if (strcasecmp(arg, "config") == 0) {
		show_config(w->cfg, b);
	} else if (strcasecmp(arg, "clients") == 0) {
		show_clients(now, b);
	} else if (strcasecmp(arg, "servers") == 0) {
		show_servers(now, b);
	} else if (strcasecmp(arg, "users") == 0) {
		if (!show_users(w->cfg, b))
			return false;
	} else if (strcasecmp(arg, "lists") == 0) {
		show_lists(b);
	} else if (strcasecmp(arg, "mem") == 0) {
		show_mem(b);
	} else if (strcasecmp(arg, "dns_hosts") == 0) {
		show_dns_hosts(b);
	} else if (strcasecmp(arg, "dns_zones") == 0) {
		show_dns_zones(b);
	} else if (strcasecmp(arg, "state") == 0) {
		show_state(b);
	} else if (strcasecmp(arg, "workers") == 0) {
		show_workers(b);
	} else if (strcasecmp(arg, "fingerprints") == 0) {
		show_fingerprints(w, b);
	} else if (strcasecmp(arg, "nplus1") == 0) {
		show_nplus1(w, b);
	} else if (strcasecmp(arg, "fds") == 0) {
		/* Cancel keys of every connection: admin_users only, as in PgBouncer. */
		if (!c->admin_may_control) {
			admin_error(b, "42501", "SHOW FDS is for admin_users only");
			return false;
		}
		show_fds(b);
	} else {
		admin_error(b, "42601", "unknown SHOW item \"%s\"; see SHOW HELP", arg);
		return false;
	}
	proto_build_command_complete(b, "SHOW");
	return true;
}
