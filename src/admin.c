/*
 * admin: the console database (pgtally, alias pgbouncer): login, commands, control commands,
 * and the rows of every worker merged by name (admin.h) for SHOW and /metrics.
 */
#include "admin.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin_int.h"
#include "app.h"
#include "client.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "nplus1.h"
#include "pool.h"
#include "proto.h"
#include "server.h"
#include "stats.h"
#include "worker.h"

/*
 * With several workers the console acts on all of them: admin_process() and the poll of a
 * waiting command stop the world (app_world_stop) and then read and change every worker's
 * objects directly. With one worker that costs nothing.
 */

/* How often a command that waits (PAUSE, SUSPEND, WAIT_CLOSE) looks at the pools again. */
#define ADMIN_WAIT_POLL_USEC 20000

#define NCOLS ADMIN_NCOLS

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

/* ---- helpers over the workers' objects ---- */

void admin_error(struct iobuf *b, const char *sqlstate, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	proto_build_error(b, false, "ERROR", sqlstate, msg);
}

static bool is_admin_name(const char *db)
{
	return strcmp(db, "pgtally") == 0 || strcmp(db, "pgbouncer") == 0;
}

struct list *admin_pool_server_list(struct pool *p, int i)
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

static struct client *find_admin_client(struct worker *w, uint64_t id)
{
	for (struct list *pos = w->admin_clients.next; pos != &w->admin_clients; pos = pos->next) {
		struct client *c = container_of(pos, struct client, node);
		if (c->id == id)
			return c;
	}
	return NULL;
}

/* ---- merging the rows of every worker by name ---- */

bool admin_keymap_init(struct admin_keymap *m, size_t max_entries)
{
	size_t cap = 16;
	while (cap < max_entries * 2 + 1)
		cap *= 2;
	m->slot = calloc(cap, sizeof(*m->slot));
	m->mask = cap - 1;
	return m->slot != NULL;
}

void admin_keymap_free(struct admin_keymap *m)
{
	free(m->slot);
	m->slot = NULL;
}

size_t *admin_keymap_slot(struct admin_keymap *m, uint64_t h,
			  bool (*same)(const void *ctx, size_t i), const void *ctx)
{
	size_t i = (size_t)h & m->mask;
	while (m->slot[i] && !same(ctx, m->slot[i] - 1))
		i = (i + 1) & m->mask;
	return &m->slot[i];
}

uint64_t admin_hash_str(uint64_t h, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	do {
		h ^= *p;
		h *= 0x100000001b3ull;
	} while (*p++);
	return h;
}

uint64_t admin_hash_u64(uint64_t h, uint64_t v)
{
	for (int i = 0; i < 8; i++) {
		h ^= (v >> (8 * i)) & 0xff;
		h *= 0x100000001b3ull;
	}
	return h;
}

static bool str_eq(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

/* ---- pools and databases of all workers, merged ---- */

struct merge_ctx {
	const struct admin_merged *m;
	const char *a, *b;
};

static bool same_db(const void *arg, size_t i)
{
	const struct merge_ctx *x = arg;
	return strcmp(x->m->dbs[i].name, x->a) == 0;
}

static bool same_pool(const void *arg, size_t i)
{
	const struct merge_ctx *x = arg;
	const struct admin_pool_row *r = &x->m->pools[i];
	return strcmp(r->database, x->a) == 0 && strcmp(r->user, x->b) == 0;
}

static void add_stats(struct pool_stats *sum, const struct pool_stats *s)
{
	uint64_t *t = (uint64_t *)sum;
	const uint64_t *v = (const uint64_t *)s;
	for (size_t i = 0; i < METRICS_NSTATS; i++)
		t[i] += v[i];
}

static void add_hist(struct metrics_hist *sum, const struct metrics_hist *h)
{
	for (int i = 0; i < METRICS_NBUCKETS; i++)
		sum->bucket[i] += h->bucket[i];
	sum->count += h->count;
	sum->sum_us += h->sum_us;
}

/* The database row named name, added (from pdb, or from the config line cd) when new. */
static size_t merge_db(struct admin_merged *m, struct admin_keymap *km, const char *name,
		       const struct pool_db *pdb, const struct config_db *cd)
{
	struct merge_ctx x = {m, name, NULL};
	size_t *slot = admin_keymap_slot(km, admin_hash_str(ADMIN_HASH_SEED, name), same_db, &x);
	if (!*slot) {
		struct admin_db_row *r = &m->dbs[m->n_dbs];
		memset(r, 0, sizeof(*r));
		r->name = name;
		r->pdb = pdb;
		r->cfg = pdb ? &pdb->cfg : cd;
		r->removed = pdb && pdb->removed;
		*slot = ++m->n_dbs;
	}
	return *slot - 1;
}

static void merge_pool(struct admin_merged *m, struct admin_keymap *km, struct admin_keymap *dbmap,
		       struct pool *p, usec_t now)
{
	struct merge_ctx x = {m, p->db->name, p->user->name};
	size_t *slot = admin_keymap_slot(
		km, admin_hash_str(admin_hash_str(ADMIN_HASH_SEED, x.a), x.b), same_pool, &x);
	struct admin_pool_row *r;
	if (!*slot) {
		r = &m->pools[m->n_pools];
		memset(r, 0, sizeof(*r));
		r->database = p->db->name;
		r->user = p->user->name;
		r->pool_mode = p->pool_mode;
		r->db = merge_db(m, dbmap, p->db->name, p->db, NULL); /* found: added before */
		*slot = ++m->n_pools;
	} else {
		r = &m->pools[*slot - 1];
	}
	/* Clients still waiting for the pool's first server login wait too. */
	r->cl_active += list_count(&p->active_clients);
	r->cl_waiting += list_count(&p->waiting_clients) + list_count(&p->login_clients);
	r->sv_active += list_count(&p->active_servers);
	r->sv_idle += list_count(&p->idle_servers);
	r->sv_used += list_count(&p->used_servers);
	r->sv_tested += list_count(&p->tested_servers);
	r->sv_login += list_count(&p->login_servers);
	if (!list_empty(&p->waiting_clients)) {
		struct client *first = container_of(p->waiting_clients.next, struct client, node);
		if (first->wait_start && now > first->wait_start &&
		    now - first->wait_start > r->maxwait)
			r->maxwait = now - first->wait_start;
	}
	if (p->last_connect_failed > r->last_connect_failed) {
		r->last_connect_failed = p->last_connect_failed;
		r->last_error = p->last_error;
	}
	add_stats(&r->stats, &p->stats);
	struct pool_stats delta;
	usec_t len;
	metrics_period(p, &delta, &len);
	add_stats(&r->period_delta, &delta);
	if (len > r->period_len)
		r->period_len = len;

	struct admin_db_row *d = &m->dbs[r->db];
	d->n_pools++;
	add_stats(&d->stats, &p->stats);
	add_stats(&d->period_delta, &delta);
	if (len > d->period_len)
		d->period_len = len;
	add_hist(&d->query, &p->metrics.query);
	add_hist(&d->xact, &p->metrics.xact);
	add_hist(&d->wait, &p->metrics.wait);
}

bool admin_merge(struct admin_merged *m, usec_t now)
{
	struct worker *w, *w0 = app_worker(0);
	struct admin_keymap dbmap = {0}, poolmap = {0};
	size_t max_dbs = w0 ? w0->cfg->n_dbs : 0, max_pools = 0;
	memset(m, 0, sizeof(*m));
	for (int i = 0; (w = app_worker(i)); i++) {
		max_dbs += list_count(&w->dbs);
		max_pools += list_count(&w->pools);
	}
	/* A pool's database is on its worker's list; room for one per pool anyway. */
	max_dbs += max_pools;
	m->dbs = malloc((max_dbs ? max_dbs : 1) * sizeof(*m->dbs));
	m->pools = malloc((max_pools ? max_pools : 1) * sizeof(*m->pools));
	if (!m->dbs || !m->pools || !admin_keymap_init(&dbmap, max_dbs) ||
	    !admin_keymap_init(&poolmap, max_pools)) {
		admin_keymap_free(&dbmap);
		admin_merged_free(m);
		return false;
	}
	for (int i = 0; (w = app_worker(i)); i++) {
		for (struct list *pos = w->dbs.next; pos != &w->dbs; pos = pos->next) {
			struct pool_db *pdb = container_of(pos, struct pool_db, node);
			struct admin_db_row *r = &m->dbs[merge_db(m, &dbmap, pdb->name, pdb, NULL)];
			r->n_servers += pdb->n_servers;
			r->n_clients += pdb->n_clients;
			r->paused |= pdb->paused;
			r->disabled |= pdb->disabled;
		}
	}
	/* Configured databases nobody has connected to yet. */
	for (size_t i = 0; w0 && i < w0->cfg->n_dbs; i++) {
		const struct config_db *cd = &w0->cfg->dbs[i];
		if (strcmp(cd->name, "*") != 0)
			merge_db(m, &dbmap, cd->name, NULL, cd);
	}
	for (int i = 0; (w = app_worker(i)); i++) {
		for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next)
			merge_pool(m, &poolmap, &dbmap, container_of(pos, struct pool, node), now);
	}
	admin_keymap_free(&dbmap);
	admin_keymap_free(&poolmap);
	return true;
}

void admin_merged_free(struct admin_merged *m)
{
	free(m->dbs);
	free(m->pools);
	memset(m, 0, sizeof(*m));
}

/* ---- the fingerprint statistics, merged over workers ---- */

static void fp_row_from(struct admin_fp_row *row, const struct fp_entry *e)
{
	*row = (struct admin_fp_row){
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
}

static void fp_row_merge(struct admin_fp_row *r, const struct fp_entry *e)
{
	/* An entry that only failed has no min: it must not pull the merged min to 0. */
	if (e->calls && (!r->calls || e->min_time < r->min_time_us))
		r->min_time_us = e->min_time;
	if (e->max_time > r->max_time_us)
		r->max_time_us = e->max_time;
	r->calls += e->calls;
	r->rows += e->rows;
	r->errors += e->errors;
	r->total_time_us += e->total_time;
	r->calls_in_txn += e->calls_in_txn;
	r->nplus1 += e->nplus1;
	if (e->first_seen && (!r->first_seen || e->first_seen < r->first_seen))
		r->first_seen = e->first_seen;
	if (e->last_seen > r->last_seen)
		r->last_seen = e->last_seen;
	if (!r->query)
		r->query = e->query;
}

struct fp_key {
	const struct admin_fp_row *rows;
	const struct fp_entry *e;
};

static bool same_fp(const void *arg, size_t i)
{
	const struct fp_key *k = arg;
	const struct admin_fp_row *r = &k->rows[i];
	return r->fingerprint == k->e->fp && strcmp(r->database, k->e->pool->db->name) == 0 &&
	       strcmp(r->user, k->e->pool->user->name) == 0;
}

/* Most total time first, then most calls (as stats_fp_sorted). */
static int fp_row_cmp(const void *a, const void *b)
{
	const struct admin_fp_row *x = a, *y = b;
	if (x->total_time_us != y->total_time_us)
		return x->total_time_us > y->total_time_us ? -1 : 1;
	return x->calls > y->calls ? -1 : x->calls < y->calls;
}

void admin_fingerprints_foreach(struct worker *w,
				void (*emit)(void *arg, const struct admin_fp_row *row), void *arg)
{
	size_t n = 0;
	if (app_nworkers() <= 1) {
		struct fp_entry **all = stats_fp_sorted(&w->fps, &n);
		if (!all)
			return;
		for (size_t i = 0; i < n; i++) {
			struct admin_fp_row row;
			fp_row_from(&row, all[i]);
			emit(arg, &row);
		}
		free(all);
		return;
	}
	size_t max = 0;
	struct worker *wk;
	for (int i = 0; (wk = app_worker(i)); i++)
		max += wk->fps.count;
	struct admin_fp_row *rows = malloc((max ? max : 1) * sizeof(*rows));
	struct admin_keymap km = {0};
	if (!rows || !admin_keymap_init(&km, max)) {
		free(rows);
		return;
	}
	for (int i = 0; (wk = app_worker(i)); i++) {
		const struct fp_table *t = &wk->fps;
		for (size_t b = 0; b < t->nbuckets; b++) {
			for (const struct fp_entry *e = t->buckets[b]; e; e = e->next) {
				if (!e->calls && !e->errors)
					continue; /* noted, never completed: as stats_fp_sorted */
				struct fp_key k = {rows, e};
				uint64_t h = admin_hash_str(
					admin_hash_str(admin_hash_u64(ADMIN_HASH_SEED, e->fp),
						       e->pool->db->name),
					e->pool->user->name);
				size_t *slot = admin_keymap_slot(&km, h, same_fp, &k);
				if (*slot) {
					fp_row_merge(&rows[*slot - 1], e);
				} else if (n < max) {
					fp_row_from(&rows[n], e);
					*slot = ++n;
				}
			}
		}
	}
	admin_keymap_free(&km);
	qsort(rows, n, sizeof(*rows), fp_row_cmp);
	for (size_t i = 0; i < n; i++)
		emit(arg, &rows[i]);
	free(rows);
}

void admin_fingerprints_reset(struct worker *w)
{
	stats_fp_table_reset(&w->fps);
}

/* ---- the N+1 findings, merged over workers ---- */

static void np_row_from(struct admin_nplus1_row *row, const struct nplus1_finding *f)
{
	*row = (struct admin_nplus1_row){
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
}

struct np_collect {
	void (*emit)(void *arg, const struct admin_nplus1_row *row); /* one worker: straight out */
	void *arg;
	struct admin_nplus1_row *rows; /* several: merged here */
	size_t n, max;
	struct admin_keymap km;
};

struct np_key {
	const struct admin_nplus1_row *rows;
	const struct admin_nplus1_row *row;
};

static bool same_np(const void *arg, size_t i)
{
	const struct np_key *k = arg;
	const struct admin_nplus1_row *r = &k->rows[i], *x = k->row;
	return r->fingerprint == x->fingerprint && strcmp(r->kind, x->kind) == 0 &&
	       str_eq(r->database, x->database) && str_eq(r->user, x->user) &&
	       str_eq(r->application_name, x->application_name) && str_eq(r->route, x->route);
}

static bool np_visit(const struct nplus1_finding *f, void *arg)
{
	struct np_collect *v = arg;
	struct admin_nplus1_row row;
	np_row_from(&row, f);
	if (v->emit) {
		v->emit(v->arg, &row);
		return true;
	}
	struct np_key key = {v->rows, &row};
	uint64_t h = admin_hash_u64(ADMIN_HASH_SEED, row.fingerprint);
	h = admin_hash_str(admin_hash_str(admin_hash_str(h, row.kind), row.database), row.user);
	h = admin_hash_str(admin_hash_str(h, row.application_name), row.route);
	size_t *slot = admin_keymap_slot(&v->km, h, same_np, &key);
	if (!*slot) {
		if (v->n < v->max) {
			v->rows[v->n] = row;
			*slot = ++v->n;
		}
		return true;
	}
	struct admin_nplus1_row *r = &v->rows[*slot - 1];
	r->occurrences += row.occurrences;
	r->executions += row.executions;
	r->total_time_us += row.total_time_us;
	if (row.max_executions > r->max_executions)
		r->max_executions = row.max_executions;
	if (row.last_seen > r->last_seen) {
		r->last_seen = row.last_seen;
		r->last_calls = row.last_calls;
		r->source_fingerprint = row.source_fingerprint;
		r->source_query = row.source_query;
		r->source_rows = row.source_rows;
	}
	if (row.first_seen && (!r->first_seen || row.first_seen < r->first_seen))
		r->first_seen = row.first_seen;
	if (!r->query)
		r->query = row.query;
	return true;
}

/* Most recent first, as nplus1_table_foreach visits one table. */
static int np_row_cmp(const void *a, const void *b)
{
	const struct admin_nplus1_row *x = a, *y = b;
	return x->last_seen > y->last_seen ? -1 : x->last_seen < y->last_seen;
}

void admin_nplus1_foreach(struct worker *w,
			  void (*emit)(void *arg, const struct admin_nplus1_row *row), void *arg)
{
	struct np_collect v = {.emit = emit, .arg = arg};
	struct worker *wk;
	if (app_nworkers() <= 1) {
		nplus1_table_foreach(w->nplus1, np_visit, &v);
		return;
	}
	v.emit = NULL;
	for (int i = 0; (wk = app_worker(i)); i++)
		v.max += nplus1_table_count(wk->nplus1);
	v.rows = malloc((v.max ? v.max : 1) * sizeof(*v.rows));
	if (!v.rows || !admin_keymap_init(&v.km, v.max)) {
		free(v.rows);
		return;
	}
	for (int i = 0; (wk = app_worker(i)); i++)
		nplus1_table_foreach(wk->nplus1, np_visit, &v);
	admin_keymap_free(&v.km);
	qsort(v.rows, v.n, sizeof(*v.rows), np_row_cmp);
	for (size_t i = 0; i < v.n; i++)
		emit(arg, &v.rows[i]);
	free(v.rows);
}

void admin_nplus1_reset(struct worker *w)
{
	nplus1_table_reset(w->nplus1);
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
	struct list node; /* in w->admin_waits */
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

/* Where a walk over the pools of every worker stands (for_each_pool). */
struct pool_iter {
	int wi;
	struct list *pos; /* NULL: at the start of worker wi's list */
};

/* The next pool of db (NULL: any) after it, over every worker; NULL at the end. */
static struct pool *pools_next(struct pool_iter *it, const char *db)
{
	struct worker *w;
	while ((w = app_worker(it->wi))) {
		it->pos = it->pos ? it->pos->next : w->pools.next;
		if (it->pos == &w->pools) {
			it->wi++;
			it->pos = NULL;
			continue;
		}
		struct pool *p = container_of(it->pos, struct pool, node);
		if (pool_in(p, db))
			return p;
	}
	return NULL;
}

/* Every pool of database db (NULL: all) on every worker; p may lose connections, not go. */
#define for_each_pool(p, db) for (struct pool_iter it_ = {0, NULL}; ((p) = pools_next(&it_, (db)));)

/* Has the state a waiting command waits for been reached on every worker? */
static bool wait_done(enum wait_kind kind, const char *db)
{
	struct pool *p;
	for_each_pool(p, db)
	{
		if (kind != WAIT_CLOSE) {
			if (!list_empty(&p->active_servers))
				return false;
			continue;
		}
		for (int i = 0; i < ADMIN_N_SERVER_LISTS; i++) {
			struct list *l = admin_pool_server_list(p, i);
			for (struct list *sp = l->next; sp != l; sp = sp->next)
				if (container_of(sp, struct server, node)->close_needed)
					return false;
		}
	}
	return true;
}

/* Stop reading on every pooled connection of every worker: nothing moves until RESUME. */
static void suspend_all(void)
{
	struct pool *p;
	for_each_pool(p, NULL)
	{
		struct list *cl[] = {&p->active_clients, &p->waiting_clients, &p->login_clients};
		for (size_t i = 0; i < NCOLS(cl); i++)
			for (struct list *cp = cl[i]->next; cp != cl[i]; cp = cp->next)
				sbuf_pause_read(&container_of(cp, struct client, node)->sb);
		for (int i = 0; i < ADMIN_N_SERVER_LISTS; i++) {
			struct list *l = admin_pool_server_list(p, i);
			for (struct list *sp = l->next; sp != l; sp = sp->next)
				sbuf_pause_read(&container_of(sp, struct server, node)->sb);
		}
	}
}

static void resume_read(struct sbuf *sb)
{
	if (sb->read_on)
		return;
	sbuf_resume_read(sb);
	if (iobuf_avail(&sb->in))
		sbuf_kick(sb);
}

/* Undo suspend_all for the connections that read between requests. */
static void unsuspend_all(void)
{
	struct pool *p;
	for_each_pool(p, NULL)
	{
		for (struct list *cp = p->active_clients.next; cp != &p->active_clients;
		     cp = cp->next)
			resume_read(&container_of(cp, struct client, node)->sb);
		for (int i = 0; i < ADMIN_N_SERVER_LISTS; i++) {
			struct list *l = admin_pool_server_list(p, i);
			for (struct list *sp = l->next; sp != l; sp = sp->next)
				resume_read(&container_of(sp, struct server, node)->sb);
		}
	}
}

bool admin_is_suspended(void)
{
	struct worker *w = app_worker(0);
	bool any = false;
	if (!w || !w->paused)
		return false;
	struct pool *p;
	for_each_pool(p, NULL)
	{
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

static void wait_free(struct admin_wait *aw)
{
	list_del(&aw->node);
	event_free(aw->ev);
	free(aw->db);
	free(aw->rest);
	free(aw);
}

/* The poll of a waiting command: the console's own worker runs it, stopping the world. */
static void wait_cb(evutil_socket_t fd, short what, void *arg)
{
	struct admin_wait *aw = arg;
	struct worker *w = aw->w;
	(void)fd;
	(void)what;
	worker_tick(w);
	struct client *c = find_admin_client(w, aw->client_id);
	if (!c) {
		wait_free(aw);
		return;
	}
	app_world_stop(w);
	if (!wait_done(aw->kind, aw->db)) {
		app_world_resume(w);
		return;
	}
	if (aw->kind == WAIT_SUSPEND)
		suspend_all();

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
	app_world_resume(w);
}

void admin_waits_free(struct worker *w)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &w->admin_waits)
	{
		wait_free(container_of(pos, struct admin_wait, node));
	}
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
	list_append(&c->w->admin_waits, &aw->node);
	struct timeval tv = {0, ADMIN_WAIT_POLL_USEC};
	event_add(aw->ev, &tv);
	sbuf_pause_read(&c->sb);
	return true;
oom:
	admin_error(b, "53200", "out of memory");
	return false;
}

/* ---- control commands: every one acts on all workers ---- */

/*
 * The database arg on the console's worker, made from the config (the "*" line too, when
 * create) if it has no object for it yet; false with an error in b.
 */
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

enum db_flag { DB_PAUSED, DB_DISABLED };

/*
 * Set a database's flag on every worker, making its object where need_db would, so that a
 * client of any worker sees it. Call after need_db() succeeded on the console's worker.
 */
static void set_db_flag(const char *name, enum db_flag flag, bool on)
{
	struct worker *w;
	for (int i = 0; (w = app_worker(i)); i++) {
		struct pool_db *pdb = pool_db_find(w, name, true);
		if (!pdb) {
			log_warning("worker %d: cannot make database %s (out of memory?)", i, name);
			continue;
		}
		if (flag == DB_PAUSED)
			pdb->paused = on;
		else
			pdb->disabled = on;
	}
}

/* Set or clear PAUSE on every worker (SUSPEND, SHUTDOWN WAIT_FOR_SERVERS, RESUME). */
static void set_paused(bool paused)
{
	struct worker *w;
	for (int i = 0; (w = app_worker(i)); i++)
		w->paused = paused;
}

/* Close every connection of the pools of db (NULL: all), clients first, on every worker. */
static void kill_pools(const char *db)
{
	struct pool *p;
	for_each_pool(p, db)
	{
		struct list *cl[] = {&p->active_clients, &p->waiting_clients, &p->login_clients};
		for (size_t i = 0; i < NCOLS(cl); i++) {
			struct list *cp, *tmp;
			list_for_each_safe(cp, tmp, cl[i])
			{
				client_close(container_of(cp, struct client, node), "57P01",
					     "database connections killed by an "
					     "administrator (KILL)");
			}
		}
		for (int i = 0; i < ADMIN_N_SERVER_LISTS; i++) {
			struct list *sp, *tmp;
			list_for_each_safe(sp, tmp, admin_pool_server_list(p, i))
			{
				server_close(container_of(sp, struct server, node), "KILL command");
			}
		}
	}
}

static void reconnect_pools(const char *db)
{
	struct pool *p;
	for_each_pool(p, db)
	{
		pool_reconnect(p, "RECONNECT command");
	}
}

static void maintain_pools(const char *db)
{
	struct pool *p;
	for_each_pool(p, db) pool_maintain(p);
}

static bool db_has_active(const char *db)
{
	return !wait_done(WAIT_PAUSE, db);
}

static bool any_db_paused(void)
{
	struct worker *w;
	for (int wi = 0; (w = app_worker(wi)); wi++) {
		for (struct list *pos = w->dbs.next; pos != &w->dbs; pos = pos->next)
			if (container_of(pos, struct pool_db, node)->paused)
				return true;
	}
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
		set_paused(true);
	} else {
		if (!need_db(w, arg, true, &pdb, b))
			return CMD_ERROR;
		log_info("PAUSE '%s' command issued", arg);
		set_db_flag(arg, DB_PAUSED, true);
	}
	/* Like PgBouncer, answer once the transactions under way have finished. */
	if (!db_has_active(arg)) {
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
		bool suspended = admin_is_suspended();
		set_paused(false);
		if (suspended)
			unsuspend_all();
	} else {
		bool found = false, paused = false;
		struct worker *wk;
		for (int i = 0; (wk = app_worker(i)); i++) {
			struct pool_db *pdb = pool_db_find(wk, arg, false);
			found |= pdb != NULL;
			paused |= pdb && pdb->paused;
		}
		if (!found) {
			admin_error(b, "3D000", "no such database: %s", arg);
			return CMD_ERROR;
		}
		if (!paused) {
			admin_error(b, "55000", "database %s is not paused", arg);
			return CMD_ERROR;
		}
		log_info("RESUME '%s' command issued", arg);
		for (int i = 0; (wk = app_worker(i)); i++) {
			struct pool_db *pdb = pool_db_find(wk, arg, false);
			if (pdb)
				pdb->paused = false;
		}
	}
	maintain_pools(arg);
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
	if (any_db_paused()) {
		admin_error(b, "55000", "cannot suspend with paused databases");
		return CMD_ERROR;
	}
	log_info("SUSPEND command issued");
	set_paused(true);
	if (!db_has_active(NULL)) {
		suspend_all();
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
	set_db_flag(arg, DB_DISABLED, disable);
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
		struct worker *wk;
		for (int i = 0; (wk = app_worker(i)); i++) {
			for (struct list *pos = wk->dbs.next; pos != &wk->dbs; pos = pos->next)
				container_of(pos, struct pool_db, node)->paused = true;
		}
	} else {
		if (!need_db(w, arg, true, &pdb, b))
			return CMD_ERROR;
		log_info("KILL '%s' command issued", arg);
		set_db_flag(arg, DB_PAUSED, true);
	}
	kill_pools(arg);
	proto_build_command_complete(b, "KILL");
	return CMD_OK;
}

/* Client ids are unique over all workers. */
static enum cmd_result cmd_kill_client(struct client *c, const char *arg, struct iobuf *b)
{
	char *end;
	(void)c;
	if (!arg) {
		admin_error(b, "42601", "KILL_CLIENT needs a client id (SHOW CLIENTS, column id)");
		return CMD_ERROR;
	}
	unsigned long long id = strtoull(arg, &end, 10);
	if (*end || end == arg) {
		admin_error(b, "22023", "invalid client id: %s", arg);
		return CMD_ERROR;
	}
	struct pool *p;
	for_each_pool(p, NULL)
	{
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
	reconnect_pools(arg);
	maintain_pools(arg);
	proto_build_command_complete(b, "RECONNECT");
	return CMD_OK;
}

static enum cmd_result cmd_wait_close(struct client *c, const char *arg, const char *rest,
				      struct iobuf *b)
{
	struct pool_db *pdb;
	if (arg && !need_db(c->w, arg, true, &pdb, b))
		return CMD_ERROR;
	if (wait_done(WAIT_CLOSE, arg)) {
		proto_build_command_complete(b, "WAIT_CLOSE");
		return CMD_OK;
	}
	return defer(c, WAIT_CLOSE, arg, rest, "WAIT_CLOSE", b) ? CMD_DEFERRED : CMD_ERROR;
}

static enum cmd_result cmd_reset(struct client *c, const char *arg, struct iobuf *b)
{
	struct worker *w;
	if (arg && strcasecmp(arg, "stats") == 0) {
		/* One moment for all, so the next stats_period starts alike everywhere. */
		usec_t now = worker_now(c->w);
		for (int i = 0; (w = app_worker(i)); i++) {
			for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
				struct pool *p = container_of(pos, struct pool, node);
				memset(&p->stats, 0, sizeof(p->stats));
				metrics_pool_reset(p, now);
			}
		}
	} else if (arg && strcasecmp(arg, "fingerprints") == 0) {
		for (int i = 0; (w = app_worker(i)); i++)
			admin_fingerprints_reset(w);
	} else if (arg && strcasecmp(arg, "nplus1") == 0) {
		for (int i = 0; (w = app_worker(i)); i++)
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
	if (strncasecmp(key, "tcp_", 4) == 0)
		listener_tune_all(w->cfg);
	/* Pool sizes and limits may have grown: waiting clients may get a server now. */
	maintain_pools(NULL);
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
	return admin_show(c, arg, b) ? CMD_OK : CMD_ERROR;
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
		set_paused(true); /* no new transactions while the last ones finish */
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
	struct worker *w = c->w;
	struct iobuf *in = &c->sb.in;
	struct iobuf b = {0};
	bool deferred = false;

	app_world_stop(w);

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
	app_world_resume(w);
}
