/* metrics: the Prometheus scrape endpoint (evhttp), latency histograms and stats_period upkeep. */
#include "metrics.h"

#include <dirent.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "admin.h"
#include "app.h"
#include "client.h"
#include "fingerprint.h"
#include "log.h"
#include "pool.h"
#include "server.h"
#include "worker.h"

_Static_assert(sizeof(struct pool_stats) == METRICS_NSTATS * sizeof(uint64_t),
	       "struct pool_stats must stay an array of METRICS_NSTATS uint64_t counters");

const usec_t metrics_bucket_bounds[METRICS_NBUCKETS] = {
	100,   250,    500,    1000,   2500,    5000,    10000,   25000,
	50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

/* Label values longer than this many characters are cut (the query of a fingerprint). */
#define METRICS_QUERY_CHARS 200
#define METRICS_NAME_CHARS 128 /* database, user, route */

/* How often the stats_period timer looks at the clock. */
#define METRICS_TICK_USEC 1000000

struct metrics {
	struct worker *w;
	struct evhttp *http;
	struct event *tick;
	usec_t last_period;
};

/* ---- histograms and periods ---- */

void metrics_hist_observe(struct metrics_hist *h, usec_t us)
{
	if (us < 0)
		us = 0;
	for (int i = 0; i < METRICS_NBUCKETS; i++) {
		if (us <= metrics_bucket_bounds[i]) {
			h->bucket[i]++;
			break;
		}
	}
	h->count++;
	h->sum_us += (uint64_t)us;
}

void metrics_observe_query(struct pool *p, usec_t us)
{
	metrics_hist_observe(&p->metrics.query, us);
}

void metrics_observe_xact(struct pool *p, usec_t us)
{
	metrics_hist_observe(&p->metrics.xact, us);
}

void metrics_observe_wait(struct pool *p, usec_t us)
{
	metrics_hist_observe(&p->metrics.wait, us);
}

void metrics_pool_reset(struct pool *p, usec_t now)
{
	memset(&p->metrics, 0, sizeof(p->metrics));
	memset(&p->stats_prev, 0, sizeof(p->stats_prev));
	p->metrics.period_start = now;
}

void metrics_period(const struct pool *p, struct pool_stats *delta, usec_t *len)
{
	memcpy(delta, p->metrics.period_delta, sizeof(*delta));
	*len = p->metrics.period_len;
}

void metrics_stats_period(struct worker *w, usec_t now)
{
	usec_t period = w->cfg->stats_period > 0 ? w->cfg->stats_period : 60000000;
	for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		const uint64_t *cur = (const uint64_t *)&p->stats;
		const uint64_t *prev = (const uint64_t *)&p->stats_prev;
		for (size_t i = 0; i < METRICS_NSTATS; i++)
			p->metrics.period_delta[i] = cur[i] >= prev[i] ? cur[i] - prev[i] : cur[i];
		/* A pool born during the period is measured as if it saw all of it. */
		usec_t start = p->metrics.period_start ? p->metrics.period_start : now - period;
		p->metrics.period_len = now > start ? now - start : 0;
		p->metrics.period_start = now;
		p->stats_prev = p->stats;
	}
}

/* log_stats: one line per (database, user), the pools of every worker added up. */
static void log_period(usec_t now)
{
	struct admin_merged m;
	if (!admin_merge(&m, now)) {
		log_warning("stats: out of memory");
		return;
	}
	for (size_t i = 0; i < m.n_pools; i++) {
		const struct admin_pool_row *p = &m.pools[i];
		const struct pool_stats *ds = &p->period_delta;
		double secs = p->period_len > 0 ? p->period_len / 1e6 : 1;
		log_info("stats: %s/%s %.0f xacts/s, %.0f queries/s, in %.0f B/s, out %.0f B/s, "
			 "xact %llu us, query %llu us, wait %llu us",
			 p->database, p->user, ds->xact_count / secs, ds->query_count / secs,
			 ds->bytes_received / secs, ds->bytes_sent / secs,
			 (unsigned long long)(ds->xact_count ? ds->xact_time / ds->xact_count : 0),
			 (unsigned long long)(ds->query_count ? ds->query_time / ds->query_count
							      : 0),
			 (unsigned long long)(ds->server_assignment_count
						      ? ds->wait_time / ds->server_assignment_count
						      : 0));
	}
	admin_merged_free(&m);
}

/*
 * Worker 0's timer closes the period of every worker at the same moment, so that their
 * deltas cover the same time and add up (SHOW STATS averages, log_stats).
 */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct metrics *m = arg;
	struct worker *w;
	(void)fd;
	(void)what;
	usec_t now = worker_tick(m->w);
	usec_t period = m->w->cfg->stats_period > 0 ? m->w->cfg->stats_period : 60000000;
	if (now - m->last_period < period)
		return;
	app_world_stop(m->w);
	for (int i = 0; (w = app_worker(i)); i++)
		metrics_stats_period(w, now);
	if (m->w->cfg->log_stats)
		log_period(now);
	app_world_resume(m->w);
	m->last_period = now;
}

/* ---- text format helpers ---- */

size_t metrics_utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t min;
	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2;
		min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	uint32_t cp = s[0] & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

char *metrics_label_escape(const char *v, size_t max_chars, char *out, size_t cap)
{
	const unsigned char *s = (const unsigned char *)(v ? v : "");
	size_t n = strlen((const char *)s);
	size_t o = 0, chars = 0;
	if (cap == 0)
		return out;
	for (size_t i = 0; i < n && chars < max_chars;) {
		size_t len = metrics_utf8_len(s + i, n - i);
		char esc[4];
		const char *src;
		size_t slen;
		if (len == 0) {
			/* Prometheus wants UTF-8: a byte that is not becomes '?'. */
			src = "?";
			slen = 1;
			len = 1;
		} else if (s[i] == '\\' || s[i] == '"') {
			esc[0] = '\\';
			esc[1] = (char)s[i];
			src = esc;
			slen = 2;
		} else if (s[i] == '\n') {
			src = "\\n";
			slen = 2;
		} else {
			src = (const char *)s + i;
			slen = len;
		}
		if (o + slen >= cap)
			break;
		memcpy(out + o, src, slen);
		o += slen;
		i += len;
		chars++;
	}
	out[o] = '\0';
	return out;
}

static void family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Up to three labels; NULL names end the list. Values are escaped here. */
struct labels {
	const char *k[4];
	const char *v[4];
	size_t max[4];
};

static void put_labels(struct evbuffer *out, const struct labels *l)
{
	char esc[4 * METRICS_QUERY_CHARS * 2 + 8];
	bool first = true;
	for (int i = 0; i < 4 && l->k[i]; i++) {
		size_t max = l->max[i] ? l->max[i] : METRICS_NAME_CHARS;
		metrics_label_escape(l->v[i], max, esc, sizeof(esc));
		evbuffer_add_printf(out, "%s%s=\"%s\"", first ? "{" : ",", l->k[i], esc);
		first = false;
	}
	if (!first)
		evbuffer_add(out, "}", 1);
}

static void sample_u64(struct evbuffer *out, const char *name, const struct labels *l, uint64_t v)
{
	evbuffer_add_printf(out, "%s", name);
	put_labels(out, l);
	evbuffer_add_printf(out, " %" PRIu64 "\n", v);
}

/* Microseconds as seconds, exactly. */
static void sample_us(struct evbuffer *out, const char *name, const struct labels *l, uint64_t us)
{
	evbuffer_add_printf(out, "%s", name);
	put_labels(out, l);
	evbuffer_add_printf(out, " %" PRIu64 ".%06" PRIu64 "\n", us / 1000000, us % 1000000);
}

/* ---- pools, stats, databases ---- */

enum pool_gauge {
	PG_CL_ACTIVE,
	PG_CL_WAITING,
	PG_SV_ACTIVE,
	PG_SV_IDLE,
	PG_SV_USED,
	PG_SV_TESTED,
	PG_SV_LOGIN,
	PG_MAXWAIT,
	PG_COUNT
};

static const struct {
	const char *name;
	const char *help;
} pool_gauges[PG_COUNT] = {
	{"pgtally_pools_client_active_connections", "Client connections linked to a server or idle "
						    "between transactions (SHOW POOLS cl_active)."},
	{"pgtally_pools_client_waiting_connections",
	 "Client connections waiting for a server (SHOW POOLS cl_waiting)."},
	{"pgtally_pools_server_active_connections",
	 "Server connections linked to a client (SHOW POOLS sv_active)."},
	{"pgtally_pools_server_idle_connections",
	 "Server connections idle and ready for a client (SHOW POOLS sv_idle)."},
	{"pgtally_pools_server_used_connections",
	 "Server connections released and not yet checked (SHOW POOLS sv_used)."},
	{"pgtally_pools_server_testing_connections",
	 "Server connections running a check or reset query (SHOW POOLS sv_tested)."},
	{"pgtally_pools_server_login_connections",
	 "Server connections logging in (SHOW POOLS sv_login)."},
	{"pgtally_pools_client_maxwait_seconds",
	 "How long the oldest waiting client has waited (SHOW POOLS maxwait)."},
};

/* The pools of every worker, added up by (database, user). */
static void render_pools(const struct admin_merged *m, struct evbuffer *out)
{
	for (int g = 0; g < PG_COUNT; g++) {
		family(out, pool_gauges[g].name, "gauge", pool_gauges[g].help);
		for (size_t i = 0; i < m->n_pools; i++) {
			const struct admin_pool_row *p = &m->pools[i];
			struct labels l = {{"database", "user"}, {p->database, p->user}, {0}};
			uint64_t v = 0;
			switch (g) {
			case PG_CL_ACTIVE:
				v = p->cl_active;
				break;
			case PG_CL_WAITING:
				v = p->cl_waiting;
				break;
			case PG_SV_ACTIVE:
				v = p->sv_active;
				break;
			case PG_SV_IDLE:
				v = p->sv_idle;
				break;
			case PG_SV_USED:
				v = p->sv_used;
				break;
			case PG_SV_TESTED:
				v = p->sv_tested;
				break;
			case PG_SV_LOGIN:
				v = p->sv_login;
				break;
			default:
				sample_us(out, pool_gauges[g].name, &l, (uint64_t)p->maxwait);
				continue;
			}
			sample_u64(out, pool_gauges[g].name, &l, v);
		}
	}
}

static const struct {
	const char *name;
	const char *help;
	bool is_time;
} stat_counters[METRICS_NSTATS] = {
	{"pgtally_stats_server_assignments_total", "Times a server was assigned to a client.",
	 false},
	{"pgtally_stats_transactions_total", "Transactions pooled.", false},
	{"pgtally_stats_queries_total", "Queries pooled (requests answered by ReadyForQuery).",
	 false},
	{"pgtally_stats_received_bytes_total", "Bytes received from clients.", false},
	{"pgtally_stats_sent_bytes_total", "Bytes sent to clients.", false},
	{"pgtally_stats_transaction_duration_seconds_total", "Time spent in transactions, summed.",
	 true},
	{"pgtally_stats_query_duration_seconds_total", "Time spent in queries, summed.", true},
	{"pgtally_stats_client_wait_seconds_total", "Time clients waited for a server, summed.",
	 true},
	{"pgtally_stats_client_parses_total", "Parse messages from clients.", false},
	{"pgtally_stats_server_parses_total", "Parse messages sent to servers.", false},
	{"pgtally_stats_binds_total", "Bind messages from clients.", false},
	{"pgtally_stats_client_logins_total", "Client logins into the pool.", false},
};

static void render_stats(const struct admin_merged *m, struct evbuffer *out)
{
	for (size_t i = 0; i < METRICS_NSTATS; i++) {
		family(out, stat_counters[i].name, "counter", stat_counters[i].help);
		for (size_t j = 0; j < m->n_pools; j++) {
			const struct admin_pool_row *p = &m->pools[j];
			struct labels l = {{"database", "user"}, {p->database, p->user}, {0}};
			uint64_t v = ((const uint64_t *)&p->stats)[i];
			if (stat_counters[i].is_time)
				sample_us(out, stat_counters[i].name, &l, v);
			else
				sample_u64(out, stat_counters[i].name, &l, v);
		}
	}
}

enum db_gauge {
	DG_POOL_SIZE,
	DG_MIN_POOL_SIZE,
	DG_RESERVE_POOL_SIZE,
	DG_MAX_CONNECTIONS,
	DG_CURRENT_CONNECTIONS,
	DG_CURRENT_CLIENT_CONNECTIONS,
	DG_PAUSED,
	DG_DISABLED,
	DG_COUNT
};

static const struct {
	const char *name;
	const char *help;
} db_gauges[DG_COUNT] = {
	{"pgtally_databases_pool_size", "Configured pool size (SHOW DATABASES pool_size)."},
	{"pgtally_databases_min_pool_size", "Configured min_pool_size."},
	{"pgtally_databases_reserve_pool_size", "Configured reserve pool size."},
	{"pgtally_databases_max_connections",
	 "Server connection limit for the database, 0 = none (max_db_connections)."},
	{"pgtally_databases_current_connections", "Server connections to the database."},
	{"pgtally_databases_current_client_connections", "Client connections to the database."},
	{"pgtally_databases_paused", "1 when the database is paused (PAUSE db or KILL db)."},
	{"pgtally_databases_disabled", "1 when the database is disabled (DISABLE db)."},
};

/* A database's gauge: its settings, and its connections summed over the workers. */
static uint64_t db_gauge_value(const struct config *cfg, int g, const struct admin_db_row *d)
{
	const struct config_db *cd = d->cfg;
	switch (g) {
	case DG_POOL_SIZE:
		return (uint64_t)(cd->pool_size >= 0 ? cd->pool_size : cfg->default_pool_size);
	case DG_MIN_POOL_SIZE:
		return (uint64_t)(cd->min_pool_size >= 0 ? cd->min_pool_size : cfg->min_pool_size);
	case DG_RESERVE_POOL_SIZE:
		return (uint64_t)(cd->reserve_pool >= 0 ? cd->reserve_pool
							: cfg->reserve_pool_size);
	case DG_MAX_CONNECTIONS:
		return (uint64_t)(cd->max_db_connections >= 0 ? cd->max_db_connections
							      : cfg->max_db_connections);
	case DG_CURRENT_CONNECTIONS:
		return d->n_servers > 0 ? (uint64_t)d->n_servers : 0;
	case DG_CURRENT_CLIENT_CONNECTIONS:
		return d->n_clients > 0 ? (uint64_t)d->n_clients : 0;
	case DG_PAUSED:
		return d->paused;
	default:
		return d->disabled;
	}
}

/* Databases in use (on any worker), then those configured and never used. */
static void render_databases(const struct config *cfg, const struct admin_merged *m,
			     struct evbuffer *out)
{
	for (int g = 0; g < DG_COUNT; g++) {
		family(out, db_gauges[g].name, "gauge", db_gauges[g].help);
		for (size_t i = 0; i < m->n_dbs; i++) {
			const struct admin_db_row *d = &m->dbs[i];
			if (d->removed)
				continue;
			struct labels l = {{"database"}, {d->name}, {0}};
			sample_u64(out, db_gauges[g].name, &l, db_gauge_value(cfg, g, d));
		}
	}
}

/* Latency histograms per database: the pools of a database on every worker added up. */
static void render_histograms(const struct admin_merged *m, struct evbuffer *out)
{
	static const struct {
		const char *name;
		const char *help;
		size_t offset;
	} hists[] = {
		{"pgtally_query_duration_seconds",
		 "Query time: request sent to the server until its ReadyForQuery.",
		 offsetof(struct admin_db_row, query)},
		{"pgtally_transaction_duration_seconds",
		 "Transaction time: first query until the transaction ended.",
		 offsetof(struct admin_db_row, xact)},
		{"pgtally_client_wait_seconds", "Time a client waited for a server connection.",
		 offsetof(struct admin_db_row, wait)},
	};
	char name[96];
	for (size_t h = 0; h < sizeof(hists) / sizeof(hists[0]); h++) {
		family(out, hists[h].name, "histogram", hists[h].help);
		for (size_t d = 0; d < m->n_dbs; d++) {
			const struct admin_db_row *db = &m->dbs[d];
			if (!db->n_pools)
				continue;
			const struct metrics_hist *sum =
				(const struct metrics_hist *)((const char *)db + hists[h].offset);
			uint64_t cum = 0;
			char le[32];
			snprintf(name, sizeof(name), "%s_bucket", hists[h].name);
			for (int i = 0; i < METRICS_NBUCKETS; i++) {
				cum += sum->bucket[i];
				snprintf(le, sizeof(le), "%g",
					 (double)metrics_bucket_bounds[i] / 1000000.0);
				struct labels l = {{"database", "le"}, {db->name, le}, {0}};
				sample_u64(out, name, &l, cum);
			}
			struct labels inf = {{"database", "le"}, {db->name, "+Inf"}, {0}};
			sample_u64(out, name, &inf, sum->count);
			struct labels l = {{"database"}, {db->name}, {0}};
			snprintf(name, sizeof(name), "%s_sum", hists[h].name);
			sample_us(out, name, &l, sum->sum_us);
			snprintf(name, sizeof(name), "%s_count", hists[h].name);
			sample_u64(out, name, &l, sum->count);
		}
	}
}

/* ---- fingerprints: the top stats_metrics_fingerprints by total time ---- */

struct top_fp {
	uint64_t fingerprint;
	uint64_t calls, rows, errors, total_time_us;
	char database[METRICS_NAME_CHARS * 4 + 1];
	char user[METRICS_NAME_CHARS * 4 + 1];
	char query[METRICS_QUERY_CHARS * 4 + 1];
};

struct top_fps {
	struct top_fp *e;
	size_t n, cap, limit;
	bool oom;
};

static void copy_capped(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

static void fp_sift_down(struct top_fps *t, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < t->n && t->e[l].total_time_us < t->e[m].total_time_us)
			m = l;
		if (r < t->n && t->e[r].total_time_us < t->e[m].total_time_us)
			m = r;
		if (m == i)
			return;
		struct top_fp tmp = t->e[i];
		t->e[i] = t->e[m];
		t->e[m] = tmp;
		i = m;
	}
}

static void fp_fill(struct top_fp *e, const struct admin_fp_row *row)
{
	e->fingerprint = row->fingerprint;
	e->calls = row->calls;
	e->rows = row->rows;
	e->errors = row->errors;
	e->total_time_us = row->total_time_us;
	copy_capped(e->database, sizeof(e->database), row->database);
	copy_capped(e->user, sizeof(e->user), row->user);
	copy_capped(e->query, sizeof(e->query), row->query);
}

/* A bounded min-heap on total time: the root is the first to go. */
static void fp_collect(void *arg, const struct admin_fp_row *row)
{
	struct top_fps *t = arg;
	if (t->n < t->limit) {
		if (t->n == t->cap) {
			size_t cap = t->cap ? t->cap * 2 : 64;
			if (cap > t->limit)
				cap = t->limit;
			struct top_fp *e = realloc(t->e, cap * sizeof(*e));
			if (!e) {
				t->oom = true;
				return;
			}
			t->e = e;
			t->cap = cap;
		}
		size_t i = t->n++;
		fp_fill(&t->e[i], row);
		while (i > 0 && t->e[(i - 1) / 2].total_time_us > t->e[i].total_time_us) {
			struct top_fp tmp = t->e[i];
			t->e[i] = t->e[(i - 1) / 2];
			t->e[(i - 1) / 2] = tmp;
			i = (i - 1) / 2;
		}
		return;
	}
	if (t->n == 0 || row->total_time_us <= t->e[0].total_time_us)
		return;
	fp_fill(&t->e[0], row);
	fp_sift_down(t, 0);
}

static int fp_cmp_desc(const void *a, const void *b)
{
	const struct top_fp *x = a, *y = b;
	if (x->total_time_us != y->total_time_us)
		return x->total_time_us < y->total_time_us ? 1 : -1;
	return x->fingerprint < y->fingerprint ? -1 : x->fingerprint > y->fingerprint;
}

static bool render_fingerprints(struct worker *w, struct evbuffer *out)
{
	static const struct {
		const char *name;
		const char *help;
	} fams[] = {
		{"pgtally_fingerprint_calls_total", "Executions of the statement shape."},
		{"pgtally_fingerprint_time_seconds_total", "Time spent in the statement shape."},
		{"pgtally_fingerprint_rows_total",
		 "Rows returned or affected by the statement shape."},
		{"pgtally_fingerprint_errors_total",
		 "Executions of the statement shape that failed."},
	};
	struct top_fps t = {0};
	t.limit = w->cfg->stats_metrics_fingerprints > 0
			  ? (size_t)w->cfg->stats_metrics_fingerprints
			  : 0;
	if (t.limit)
		admin_fingerprints_foreach(w, fp_collect, &t);
	if (t.oom) {
		free(t.e);
		return false;
	}
	if (t.n)
		qsort(t.e, t.n, sizeof(*t.e), fp_cmp_desc);
	for (size_t f = 0; f < sizeof(fams) / sizeof(fams[0]); f++) {
		family(out, fams[f].name, "counter", fams[f].help);
		for (size_t i = 0; i < t.n; i++) {
			const struct top_fp *e = &t.e[i];
			char id[FP_HEX_LEN];
			snprintf(id, sizeof(id), "%016" PRIx64, e->fingerprint);
			struct labels l = {{"database", "user", "fingerprint", "query"},
					   {e->database, e->user, id, e->query},
					   {0, 0, 0, METRICS_QUERY_CHARS}};
			if (f == 0)
				sample_u64(out, fams[f].name, &l, e->calls);
			else if (f == 1)
				sample_us(out, fams[f].name, &l, e->total_time_us);
			else if (f == 2)
				sample_u64(out, fams[f].name, &l, e->rows);
			else
				sample_u64(out, fams[f].name, &l, e->errors);
		}
	}
	free(t.e);
	return true;
}

/* ---- N+1 findings, added up by kind, database and route ---- */

struct np_sum {
	char kind[16];
	char database[METRICS_NAME_CHARS * 4 + 1];
	char route[METRICS_NAME_CHARS * 4 + 1];
	uint64_t occurrences, executions;
};

struct np_sums {
	struct np_sum *e;
	size_t n, cap;
	bool oom;
};

static void np_collect(void *arg, const struct admin_nplus1_row *row)
{
	struct np_sums *l = arg;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct np_sum *e = realloc(l->e, cap * sizeof(*e));
		if (!e) {
			l->oom = true;
			return;
		}
		l->e = e;
		l->cap = cap;
	}
	struct np_sum *e = &l->e[l->n++];
	copy_capped(e->kind, sizeof(e->kind), row->kind);
	copy_capped(e->database, sizeof(e->database), row->database);
	/* Cut to the label length now, so routes that differ only past it add up. */
	metrics_label_escape(row->route, METRICS_NAME_CHARS, e->route, sizeof(e->route));
	e->occurrences = row->occurrences;
	e->executions = row->executions;
}

static int np_cmp(const void *a, const void *b)
{
	const struct np_sum *x = a, *y = b;
	int c = strcmp(x->kind, y->kind);
	if (!c)
		c = strcmp(x->database, y->database);
	if (!c)
		c = strcmp(x->route, y->route);
	return c;
}

static bool render_nplus1(struct worker *w, struct evbuffer *out)
{
	struct np_sums l = {0};
	admin_nplus1_foreach(w, np_collect, &l);
	if (l.oom) {
		free(l.e);
		return false;
	}
	if (l.n)
		qsort(l.e, l.n, sizeof(*l.e), np_cmp);
	/* Merge equal keys in place. */
	size_t m = 0;
	for (size_t i = 0; i < l.n; i++) {
		if (m && np_cmp(&l.e[m - 1], &l.e[i]) == 0) {
			l.e[m - 1].occurrences += l.e[i].occurrences;
			l.e[m - 1].executions += l.e[i].executions;
		} else {
			l.e[m++] = l.e[i];
		}
	}
	family(out, "pgtally_nplus1_findings_total", "counter",
	       "Units of work in which an N+1, duplicate or write-loop burst was found.");
	for (size_t i = 0; i < m; i++) {
		/* The route is already escaped and cut; escaping again would double it. */
		evbuffer_add_printf(out, "pgtally_nplus1_findings_total{kind=\"%s\",database=\"",
				    l.e[i].kind);
		char esc[sizeof(l.e[i].database) * 2];
		metrics_label_escape(l.e[i].database, METRICS_NAME_CHARS, esc, sizeof(esc));
		evbuffer_add_printf(out, "%s\",route=\"%s\"} %" PRIu64 "\n", esc, l.e[i].route,
				    l.e[i].occurrences);
	}
	family(out, "pgtally_nplus1_statements_total", "counter",
	       "Statements that made up the N+1, duplicate or write-loop bursts.");
	for (size_t i = 0; i < m; i++) {
		evbuffer_add_printf(out, "pgtally_nplus1_statements_total{kind=\"%s\",database=\"",
				    l.e[i].kind);
		char esc[sizeof(l.e[i].database) * 2];
		metrics_label_escape(l.e[i].database, METRICS_NAME_CHARS, esc, sizeof(esc));
		evbuffer_add_printf(out, "%s\",route=\"%s\"} %" PRIu64 "\n", esc, l.e[i].route,
				    l.e[i].executions);
	}
	free(l.e);
	return true;
}

/* ---- process ---- */

static int count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory stream's own descriptor */
}

static long long resident_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long long size = 0, rss = 0;
	if (!f)
		return -1;
	int n = fscanf(f, "%lld %lld", &size, &rss);
	fclose(f);
	return n == 2 ? rss * sysconf(_SC_PAGESIZE) : -1;
}

static void render_process(struct worker *w, struct evbuffer *out)
{
	struct rusage ru;
	struct rlimit rl;
	struct labels none = {{0}, {0}, {0}};
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		uint64_t us =
			(uint64_t)ru.ru_utime.tv_sec * 1000000 + (uint64_t)ru.ru_utime.tv_usec +
			(uint64_t)ru.ru_stime.tv_sec * 1000000 + (uint64_t)ru.ru_stime.tv_usec;
		family(out, "pgtally_process_cpu_seconds_total", "counter",
		       "User and system CPU time of the pgtally process.");
		sample_us(out, "pgtally_process_cpu_seconds_total", &none, us);
	}
	long long rss = resident_bytes();
	if (rss >= 0) {
		family(out, "pgtally_process_resident_memory_bytes", "gauge",
		       "Resident memory of the pgtally process.");
		sample_u64(out, "pgtally_process_resident_memory_bytes", &none, (uint64_t)rss);
	}
	int fds = count_open_fds();
	if (fds >= 0) {
		family(out, "pgtally_process_open_fds", "gauge", "Open file descriptors.");
		sample_u64(out, "pgtally_process_open_fds", &none, (uint64_t)fds);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		family(out, "pgtally_process_max_fds", "gauge", "Limit on open file descriptors.");
		sample_u64(out, "pgtally_process_max_fds", &none, (uint64_t)rl.rlim_cur);
	}
	family(out, "pgtally_process_start_time_seconds", "gauge",
	       "Start time of the process since the Unix epoch.");
	sample_us(out, "pgtally_process_start_time_seconds", &none, (uint64_t)w->start_time);
}

/* Connection gauges are summed over the workers; pgtally_paused is worker 0's (all alike). */
static void render_global(struct worker *w, struct evbuffer *out)
{
	struct labels none = {{0}, {0}, {0}};
	struct worker *wk, *w0 = app_worker(0);
	uint64_t clients = 0, servers = 0;
	for (int i = 0; (wk = app_worker(i)); i++) {
		clients += wk->n_clients > 0 ? (uint64_t)wk->n_clients : 0;
		servers += wk->n_servers > 0 ? (uint64_t)wk->n_servers : 0;
	}
	char fpv[16];
	snprintf(fpv, sizeof(fpv), "%d", FP_VERSION);
	struct labels bl = {{"version", "fingerprint_version"}, {PGTALLY_VERSION, fpv}, {0}};
	family(out, "pgtally_build_info", "gauge", "Always 1; the labels say which pgtally runs.");
	sample_u64(out, "pgtally_build_info", &bl, 1);
	family(out, "pgtally_paused", "gauge", "1 while pgtally is paused (PAUSE, SIGUSR1).");
	sample_u64(out, "pgtally_paused", &none, (w0 ? w0 : w)->paused ? 1 : 0);
	family(out, "pgtally_client_connections", "gauge",
	       "Client connections, the console's included.");
	sample_u64(out, "pgtally_client_connections", &none, clients);
	family(out, "pgtally_max_client_connections", "gauge", "max_client_conn.");
	sample_u64(out, "pgtally_max_client_connections", &none,
		   w->cfg->max_client_conn > 0 ? (uint64_t)w->cfg->max_client_conn : 0);
	family(out, "pgtally_server_connections", "gauge", "Server connections.");
	sample_u64(out, "pgtally_server_connections", &none, servers);
}

bool metrics_render(struct worker *w, struct evbuffer *out)
{
	struct admin_merged m;
	if (!admin_merge(&m, worker_now(w)))
		return false;
	render_global(w, out);
	render_process(w, out);
	render_databases(w->cfg, &m, out);
	render_pools(&m, out);
	render_stats(&m, out);
	render_histograms(&m, out);
	admin_merged_free(&m);
	if (!render_fingerprints(w, out) || !render_nplus1(w, out))
		return false;
	return true;
}

/* ---- readiness ---- */

/* Has the (database, user) of p a server connection up on any worker? */
static bool pool_has_server(const struct pool *p)
{
	struct worker *w;
	for (int i = 0; (w = app_worker(i)); i++) {
		for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
			struct pool *q = container_of(pos, struct pool, node);
			if (strcmp(q->db->name, p->db->name) != 0 ||
			    strcmp(q->user->name, p->user->name) != 0)
				continue;
			if (!list_empty(&q->idle_servers) || !list_empty(&q->active_servers) ||
			    !list_empty(&q->used_servers) || !list_empty(&q->tested_servers))
				return true;
		}
	}
	return false;
}

/* The database name on any worker: paused or disabled there (flags are set on all alike). */
static bool db_refused(const char *name, char *why, size_t whylen)
{
	struct worker *w;
	for (int i = 0; (w = app_worker(i)); i++) {
		for (struct list *pos = w->dbs.next; pos != &w->dbs; pos = pos->next) {
			struct pool_db *db = container_of(pos, struct pool_db, node);
			if (strcmp(db->name, name) != 0 || (!db->paused && !db->disabled))
				continue;
			snprintf(why, whylen, "database %s is %s", name,
				 db->paused ? "paused" : "disabled");
			return true;
		}
	}
	return false;
}

bool metrics_ready(struct worker *w, char *why, size_t whylen)
{
	usec_t now = worker_now(w);
	usec_t retry = w->cfg->server_login_retry > 1000000 ? w->cfg->server_login_retry : 1000000;
	struct worker *w0 = app_worker(0) ? app_worker(0) : w, *wk;
	if (w0->shutting_down) {
		snprintf(why, whylen, "shutting down");
		return false;
	}
	if (w0->paused) {
		snprintf(why, whylen, "paused");
		return false;
	}
	for (size_t i = 0; i < w->cfg->n_dbs; i++) {
		const char *name = w->cfg->dbs[i].name;
		if (strcmp(name, "*") == 0)
			continue;
		if (db_refused(name, why, whylen))
			return false;
		/* Unreachable: the last login failed recently and no connection is up. */
		for (int k = 0; (wk = app_worker(k)); k++) {
			for (struct list *pos = wk->pools.next; pos != &wk->pools;
			     pos = pos->next) {
				struct pool *p = container_of(pos, struct pool, node);
				if (strcmp(p->db->name, name) != 0 || !p->last_connect_failed ||
				    now - p->last_connect_failed >= retry || pool_has_server(p))
					continue;
				snprintf(why, whylen, "database %s unreachable: %s", name,
					 p->last_error ? p->last_error : "login failed");
				return false;
			}
		}
	}
	return true;
}

/* ---- HTTP ---- */

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *body)
{
	struct evbuffer *buf = evbuffer_new();
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; charset=utf-8");
	if (buf)
		evbuffer_add(buf, body, strlen(body));
	evhttp_send_reply(req, code, reason, buf);
	if (buf)
		evbuffer_free(buf);
}

static void http_cb(struct evhttp_request *req, void *arg)
{
	struct metrics *m = arg;
	worker_tick(m->w);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	char why[300];

	if (!path || !*path)
		path = "/";
	bool is_metrics = strcmp(path, "/metrics") == 0;
	bool is_health = strcmp(path, "/healthz") == 0;
	bool is_ready = strcmp(path, "/readyz") == 0;
	if (!is_metrics && !is_health && !is_ready) {
		reply_text(req, 404, "Not Found", "not found; try /metrics, /healthz or /readyz\n");
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		reply_text(req, 405, "Method Not Allowed", "method not allowed\n");
		return;
	}
	if (is_health) {
		reply_text(req, 200, "OK", "ok\n");
		return;
	}
	if (is_ready) {
		app_world_stop(m->w);
		bool ready = metrics_ready(m->w, why, sizeof(why) - 1);
		app_world_resume(m->w);
		if (ready) {
			reply_text(req, 200, "OK", "ready\n");
		} else {
			strcat(why, "\n");
			reply_text(req, 503, "Service Unavailable", why);
		}
		return;
	}
	struct evbuffer *buf = evbuffer_new();
	bool rendered = false;
	if (buf) {
		app_world_stop(m->w);
		rendered = metrics_render(m->w, buf);
		app_world_resume(m->w);
	}
	if (!rendered) {
		if (buf)
			evbuffer_free(buf);
		reply_text(req, 500, "Internal Server Error", "out of memory\n");
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, 200, "OK", buf);
	evbuffer_free(buf);
}

/* "host:port", "[v6]:port", ":port" or "port" (127.0.0.1); false when it does not parse. */
static bool parse_listen(const char *spec, char *host, size_t hostlen, int *port)
{
	const char *colon;
	const char *h = spec;
	size_t hl;
	if (spec[0] == '[') {
		const char *end = strchr(spec, ']');
		if (!end || end[1] != ':')
			return false;
		h = spec + 1;
		hl = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(spec, ':');
		hl = colon ? (size_t)(colon - spec) : 0;
	}
	const char *ps = colon ? colon + 1 : spec;
	char *end;
	long p = strtol(ps, &end, 10);
	if (!*ps || *end || p < 1 || p > 65535 || hl >= hostlen)
		return false;
	if (hl == 0)
		snprintf(host, hostlen, "127.0.0.1");
	else if (hl == 1 && h[0] == '*')
		snprintf(host, hostlen, "0.0.0.0");
	else
		snprintf(host, hostlen, "%.*s", (int)hl, h);
	*port = (int)p;
	return true;
}

struct metrics *metrics_start(struct worker *w)
{
	struct metrics *m = calloc(1, sizeof(*m));
	if (!m) {
		log_error("metrics: out of memory");
		return NULL;
	}
	m->w = w;
	m->last_period = worker_now(w);
	m->tick = event_new(w->base, -1, EV_PERSIST, tick_cb, m);
	if (!m->tick) {
		log_error("metrics: cannot create the stats_period timer");
		free(m);
		return NULL;
	}
	struct timeval tv = {METRICS_TICK_USEC / 1000000, METRICS_TICK_USEC % 1000000};
	event_add(m->tick, &tv);

	const char *spec = w->cfg->metrics_listen;
	if (!spec || !*spec)
		return m;
	char host[256];
	int port;
	if (!parse_listen(spec, host, sizeof(host), &port)) {
		log_error("metrics_listen = %s: expected host:port", spec);
		metrics_free(m);
		return NULL;
	}
	m->http = evhttp_new(w->base);
	if (!m->http) {
		log_error("metrics: cannot create the HTTP server");
		metrics_free(m);
		return NULL;
	}
	/* Every method reaches http_cb, which answers 405 itself (evhttp would say 501). */
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
						    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
						    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
						    EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_timeout(m->http, 10);
	evhttp_set_max_headers_size(m->http, 16384);
	evhttp_set_max_body_size(m->http, 4096);
	evhttp_set_gencb(m->http, http_cb, m);
	if (!evhttp_bind_socket_with_handle(m->http, host, (ev_uint16_t)port)) {
		log_error("metrics: cannot listen on %s", spec);
		metrics_free(m);
		return NULL;
	}
	log_info("metrics endpoint listening on %s (GET /metrics, /healthz, /readyz)", spec);
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	if (m->http)
		evhttp_free(m->http);
	if (m->tick)
		event_free(m->tick);
	free(m);
}
