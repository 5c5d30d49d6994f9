/* pool: (database, user) pools, limits, the FIFO of waiting clients, server launching. */
#include "pool.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "userlist.h"
#include "worker.h"

const char *const param_names[PARAM_COUNT] = {
	"client_encoding", "DateStyle",	       "TimeZone",    "IntervalStyle",
	"standard_conforming_strings", "application_name", "search_path",
};

int param_lookup(const char *name)
{
	for (int i = 0; i < PARAM_COUNT; i++)
		if (strcasecmp(name, param_names[i]) == 0)
			return i;
	return -1;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void config_db_copy(struct config_db *dst, const struct config_db *src)
{
	*dst = *src;
	dst->name = dup_or_null(src->name);
	dst->host = dup_or_null(src->host);
	dst->dbname = dup_or_null(src->dbname);
	dst->user = dup_or_null(src->user);
	dst->password = dup_or_null(src->password);
	dst->auth_user = dup_or_null(src->auth_user);
	dst->auth_dbname = dup_or_null(src->auth_dbname);
	dst->client_encoding = dup_or_null(src->client_encoding);
	dst->datestyle = dup_or_null(src->datestyle);
	dst->timezone = dup_or_null(src->timezone);
	dst->application_name = dup_or_null(src->application_name);
	dst->connect_query = dup_or_null(src->connect_query);
}

static void config_db_free_strings(struct config_db *d)
{
	free(d->name);
	free(d->host);
	free(d->dbname);
	free(d->user);
	free(d->password);
	free(d->auth_user);
	free(d->auth_dbname);
	free(d->client_encoding);
	free(d->datestyle);
	free(d->timezone);
	free(d->application_name);
	free(d->connect_query);
}

/* Refresh a database's settings from the config (at creation and on reload). */
void pool_db_configure(struct pool_db *db, const struct config_db *cfg, bool from_fallback)
{
	config_db_free_strings(&db->cfg);
	config_db_copy(&db->cfg, cfg);
	db->auto_created = from_fallback;
	if (from_fallback && !db->cfg.dbname)
		db->cfg.dbname = strdup(db->name);
	if (!db->cfg.dbname)
		db->cfg.dbname = strdup(db->name);
}

struct pool_db *pool_db_find(struct worker *w, const char *name, bool create_from_fallback)
{
	struct list *pos;
	for (pos = w->dbs.next; pos != &w->dbs; pos = pos->next) {
		struct pool_db *db = container_of(pos, struct pool_db, node);
		if (strcmp(db->name, name) == 0)
			return db->removed ? NULL : db;
	}
	const struct config_db *cfg = config_find_db(w->cfg, name, false);
	bool fallback = false;
	if (!cfg && create_from_fallback) {
		cfg = config_find_db(w->cfg, name, true);
		fallback = cfg != NULL;
	}
	if (!cfg)
		return NULL;
	struct pool_db *db = calloc(1, sizeof(*db));
	if (!db)
		return NULL;
	db->name = strdup(name);
	if (!db->name) {
		free(db);
		return NULL;
	}
	pool_db_configure(db, cfg, fallback);
	list_append(&w->dbs, &db->node);
	return db;
}

struct pool_user *pool_user_find(struct worker *w, const char *name, bool create)
{
	struct list *pos;
	for (pos = w->users.next; pos != &w->users; pos = pos->next) {
		struct pool_user *u = container_of(pos, struct pool_user, node);
		if (strcmp(u->name, name) == 0)
			return u;
	}
	if (!create)
		return NULL;
	struct pool_user *u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->name = strdup(name);
	const char *pw = w->users_file ? userlist_find(w->users_file, name) : NULL;
	u->password = pw ? strdup(pw) : NULL;
	list_append(&w->users, &u->node);
	return u;
}

struct pool *pool_get(struct worker *w, struct pool_db *db, struct pool_user *user)
{
	struct list *pos;
	for (pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		if (p->db == db && p->user == user)
			return p;
	}
	struct pool *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->w = w;
	p->db = db;
	p->user = user;
	list_init(&p->active_clients);
	list_init(&p->waiting_clients);
	list_init(&p->login_clients);
	list_init(&p->active_servers);
	list_init(&p->idle_servers);
	list_init(&p->used_servers);
	list_init(&p->tested_servers);
	list_init(&p->login_servers);
	const struct config_user *cu = config_find_user(w->cfg, user->name);
	if (db->cfg.pool_mode >= 0)
		p->pool_mode = db->cfg.pool_mode;
	else if (cu && cu->pool_mode >= 0)
		p->pool_mode = cu->pool_mode;
	else
		p->pool_mode = w->cfg->pool_mode;
	list_append(&w->pools, &p->node);
	return p;
}

void pool_free(struct pool *pool)
{
	list_del(&pool->node);
	iobuf_release(&pool->welcome);
	for (int i = 0; i < PARAM_COUNT; i++)
		free(pool->welcome_params[i]);
	free(pool->last_error);
	free(pool);
}

int pool_size_limit(const struct pool *pool)
{
	if (pool->db->cfg.pool_size >= 0)
		return pool->db->cfg.pool_size;
	return -1; /* caller applies user/global default */
}

static int pool_effective_size(struct worker *w, const struct pool *pool)
{
	int n = pool_size_limit(pool);
	if (n >= 0)
		return n;
	const struct config_user *cu = config_find_user(w->cfg, pool->user->name);
	if (cu && cu->pool_size >= 0)
		return cu->pool_size;
	return w->cfg->default_pool_size;
}

static bool pool_paused(struct worker *w, const struct pool *pool)
{
	return w->paused || pool->db->paused;
}

/* Does an idle server need server_check_query before it is given out? */
static bool pool_needs_check(struct worker *w, const struct server *s, usec_t now)
{
	const char *q = w->cfg->server_check_query;
	if (!q || !*q)
		return false;
	return w->cfg->server_check_delay <= 0 || now - s->last_used > w->cfg->server_check_delay;
}

/*
 * Take an idle server (most recently used first, so warm sessions get reused). Servers idle
 * for longer than server_check_delay are sent to be checked instead; they come back through
 * pool_server_ready().
 */
static struct server *pool_take_idle(struct pool *pool)
{
	struct worker *w = pool->w;
	usec_t now = worker_now(w);
	while (!list_empty(&pool->idle_servers)) {
		/* LIFO keeps few servers warm; server_round_robin spreads load over all of them. */
		struct list *pick = w->cfg->server_round_robin ? pool->idle_servers.next
							       : pool->idle_servers.prev;
		struct server *s = container_of(pick, struct server, node);
		if (!pool_needs_check(w, s, now))
			return s;
		server_start_check(s);
	}
	return NULL;
}

static void pool_link(struct worker *w, struct pool *pool, struct server *s, struct client *c)
{
	usec_t now = worker_now(w);
	usec_t waited = c->wait_start && now > c->wait_start ? now - c->wait_start : 0;
	pool->stats.wait_time += (uint64_t)waited;
	metrics_observe_wait(pool, waited);
	c->wait_start = 0;
	pool->stats.server_assignment_count++;
	server_link(s, c);
}

void pool_request_server(struct pool *pool, struct client *c)
{
	struct worker *w = c->w;
	if (!pool_paused(w, pool) && list_empty(&pool->waiting_clients)) {
		struct server *s = pool_take_idle(pool);
		if (s) {
			pool_link(w, pool, s, c);
			return;
		}
	}
	if (c->state != CL_WAITING)
		client_set_state(c, CL_WAITING);
	pool_maintain(pool);
}

void pool_auth_enqueue(struct pool *pool, struct client *c)
{
	c->auth_next = NULL;
	if (pool->auth_tail)
		pool->auth_tail->auth_next = c;
	else
		pool->auth_head = c;
	pool->auth_tail = c;
	pool_maintain(pool);
}

void pool_auth_dequeue(struct pool *pool, struct client *c)
{
	struct client **pp = &pool->auth_head;
	struct client *prev = NULL;
	while (*pp && *pp != c) {
		prev = *pp;
		pp = &(*pp)->auth_next;
	}
	if (!*pp)
		return;
	*pp = c->auth_next;
	if (pool->auth_tail == c)
		pool->auth_tail = prev;
	c->auth_next = NULL;
}

/* Give a ready server to the first auth_query waiter; false when there is none. */
static bool pool_serve_auth(struct pool *pool, struct server *s)
{
	struct client *c = pool->auth_head;
	if (!c)
		return false;
	pool_auth_dequeue(pool, c);
	server_run_auth_query(s, c);
	return true;
}

void pool_server_ready(struct pool *pool, struct server *s)
{
	struct worker *w = s->w;
	usec_t now = worker_now(w);

	if (s->close_needed || pool->db->removed ||
	    (w->cfg->server_lifetime > 0 && now - s->connect_time > w->cfg->server_lifetime &&
	     pool_effective_size(w, pool) > 0)) {
		server_close(s, s->close_needed ? "close needed" : "server lifetime over");
		return;
	}
	s->last_used = now;
	if (pool_serve_auth(pool, s))
		return;
	if (!pool_paused(w, pool) && !list_empty(&pool->waiting_clients)) {
		struct client *c = container_of(pool->waiting_clients.next, struct client, node);
		pool_link(w, pool, s, c);
		client_linked(c);
		return;
	}
	server_set_state(s, SV_IDLE);
}

static bool pool_may_launch(struct worker *w, struct pool *pool, bool use_reserve)
{
	int limit = pool_effective_size(w, pool);
	int reserve = pool->db->cfg.reserve_pool >= 0 ? pool->db->cfg.reserve_pool
						       : w->cfg->reserve_pool_size;
	if (use_reserve)
		limit += reserve;
	if (pool->n_servers >= limit)
		return false;
	int max_db = pool->db->cfg.max_db_connections >= 0 ? pool->db->cfg.max_db_connections
							    : w->cfg->max_db_connections;
	if (max_db > 0 && pool->db->n_servers >= max_db)
		return false;
	const struct config_user *cu = config_find_user(w->cfg, pool->user->name);
	int max_user = cu && cu->max_user_connections >= 0 ? cu->max_user_connections
							    : w->cfg->max_user_connections;
	if (max_user > 0 && pool->user->n_servers >= max_user)
		return false;
	if (pool->last_connect_failed &&
	    worker_now(w) - pool->last_connect_failed < w->cfg->server_login_retry)
		return false;
	return true;
}

void pool_maintain(struct pool *pool)
{
	struct worker *w = pool->w;

	/* Idle servers to auth_query lookups first: those clients cannot even log in yet. */
	while (pool->auth_head && !list_empty(&pool->idle_servers))
		pool_serve_auth(pool, container_of(pool->idle_servers.prev, struct server, node));

	/* Idle servers to waiting clients. */
	while (!pool_paused(w, pool) && !list_empty(&pool->waiting_clients) &&
	       !list_empty(&pool->idle_servers)) {
		struct server *s = pool_take_idle(pool);
		struct client *c = container_of(pool->waiting_clients.next, struct client, node);
		pool_link(w, pool, s, c);
		client_linked(c);
	}

	/*
	 * New servers: one per waiting client not covered by a login in progress. This runs
	 * every time a client has to wait, so it must not walk long queues: first ask whether
	 * any server may be opened at all, then count waiters only as far as could be served.
	 */
	bool reserve = false;
	if (!list_empty(&pool->waiting_clients)) {
		struct client *first = container_of(pool->waiting_clients.next, struct client, node);
		reserve = w->cfg->reserve_pool_timeout > 0 && first->wait_start &&
			  worker_now(w) - first->wait_start >= w->cfg->reserve_pool_timeout;
	}
	if (!pool_may_launch(w, pool, reserve))
		return;
	int logins = (int)list_count(&pool->login_servers);
	int room = pool_effective_size(w, pool) + (reserve ? w->cfg->reserve_pool_size : 0) -
		   pool->n_servers;
	int auth_waiters = 0;
	for (struct client *a = pool->auth_head; a; a = a->auth_next)
		auth_waiters++;
	int waiting = (int)list_count_upto(&pool->waiting_clients,
					   (size_t)(room > 0 ? room : 0) + (size_t)logins);
	int need = waiting + auth_waiters - logins;
	if (!pool->have_welcome && !list_empty(&pool->login_clients) && logins == 0 && need < 1)
		need = 1;
	int min = pool->db->cfg.min_pool_size >= 0 ? pool->db->cfg.min_pool_size
						    : w->cfg->min_pool_size;
	if (pool->n_servers < min && need < min - pool->n_servers)
		need = min - pool->n_servers;
	while (need-- > 0 && pool_may_launch(w, pool, reserve))
		if (!server_launch(pool))
			break;
}
