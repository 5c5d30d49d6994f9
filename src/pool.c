/* pool: (database, user) pools, limits, the FIFO of waiting clients, server launching. */
#include "pool.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "client.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "userlist.h"
#include "worker.h"

#define PARAM_NAMES(X)                                                                             \
	X("client_encoding")                                                                       \
	X("DateStyle")                                                                             \
	X("TimeZone")                                                                              \
	X("IntervalStyle")                                                                         \
	X("standard_conforming_strings")                                                           \
	X("application_name")                                                                      \
	X("search_path")
#define PARAM_NAME(s) s,
#define PARAM_LEN(s) sizeof(s) - 1,

const char *const param_names[PARAM_COUNT] = {PARAM_NAMES(PARAM_NAME)};
static const size_t param_lens[PARAM_COUNT] = {PARAM_NAMES(PARAM_LEN)};
_Static_assert(sizeof((const char *[]){PARAM_NAMES(PARAM_NAME)}) == sizeof(param_names),
	       "PARAM_NAMES and enum param_id must list the same parameters");

/* A login looks up every ParameterStatus it relays: the length rules out all but one. */
int param_lookup(const char *name)
{
	size_t n = strlen(name);
	for (int i = 0; i < PARAM_COUNT; i++)
		if (n == param_lens[i] && strcasecmp(name, param_names[i]) == 0)
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

static bool str_differs(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

bool pool_db_conn_changed(const struct pool_db *db, const struct config_db *cd)
{
	const struct config_db *o = &db->cfg;
	return str_differs(o->host, cd->host) || o->port != cd->port ||
	       str_differs(o->dbname, cd->dbname ? cd->dbname : db->name) ||
	       str_differs(o->user, cd->user) || str_differs(o->password, cd->password) ||
	       str_differs(o->client_encoding, cd->client_encoding) ||
	       str_differs(o->datestyle, cd->datestyle) || str_differs(o->timezone, cd->timezone) ||
	       str_differs(o->application_name, cd->application_name) ||
	       str_differs(o->connect_query, cd->connect_query) ||
	       str_differs(o->auth_dbname, cd->auth_dbname); /* PgBouncer counts it too */
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
	db->shared = app_counter_get('d', name, NULL);
	if (!db->shared) {
		free(db->name);
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
	u->shared = u->name ? app_counter_get('u', name, NULL) : NULL;
	if (!u->shared) {
		free(u->name);
		free(u);
		return NULL;
	}
	const char *pw = w->users_file ? userlist_find(w->users_file, name) : NULL;
	u->password = pw ? strdup(pw) : NULL;
	list_append(&w->users, &u->node);
	return u;
}

void pool_update_mode(struct pool *pool)
{
	const struct config *cfg = pool->w->cfg;
	const struct config_user *cu = config_find_user(cfg, pool->user->name);
	if (cu && cu->pool_mode >= 0)
		pool->pool_mode = cu->pool_mode;
	else if (pool->db->cfg.pool_mode >= 0)
		pool->pool_mode = pool->db->cfg.pool_mode;
	else
		pool->pool_mode = cfg->pool_mode;
}

struct pool *pool_get(struct worker *w, struct pool_db *db, struct pool_user *user)
{
	struct list *pos;
	for (pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		if (p->db == db && p->user == user)
			return p;
	}
	struct pool *p = cache_line_zalloc(sizeof(*p)); /* its metrics start a line: pool.h */
	if (!p)
		return NULL;
	p->w = w;
	p->db = db;
	p->user = user;
	p->shared = app_counter_get('p', db->name, user->name);
	if (!p->shared) {
		free(p);
		return NULL;
	}
	list_init(&p->active_clients);
	list_init(&p->waiting_clients);
	list_init(&p->login_clients);
	list_init(&p->active_servers);
	list_init(&p->idle_servers);
	list_init(&p->used_servers);
	list_init(&p->tested_servers);
	list_init(&p->login_servers);
	pool_update_mode(p);
	list_append(&w->pools, &p->node);
	return p;
}

void pool_reconnect(struct pool *pool, const char *why)
{
	struct list *lists[] = {&pool->active_servers, &pool->idle_servers, &pool->used_servers,
				&pool->tested_servers, &pool->login_servers};
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
		for (struct list *sp = lists[i]->next; sp != lists[i]; sp = sp->next)
			container_of(sp, struct server, node)->close_needed = true;
	/* Idle ones go now, so that no client is given one; the others when they come back. */
	struct list *sp, *tmp;
	list_for_each_safe(sp, tmp, &pool->idle_servers)
	{
		server_close(container_of(sp, struct server, node), "%s", why);
	}
}

bool pool_set_user(struct pool *pool, struct pool_user *user)
{
	struct app_counter *shared = app_counter_get('p', pool->db->name, user->name);
	if (!shared)
		return false;
	struct list *clients[] = {&pool->active_clients, &pool->waiting_clients,
				  &pool->login_clients};
	int n_clients = 0;
	for (size_t i = 0; i < sizeof(clients) / sizeof(clients[0]); i++)
		n_clients += (int)list_count(clients[i]);
	pool->user->n_clients -= n_clients;
	user->n_clients += n_clients;
	pool->user->n_servers -= pool->n_servers;
	user->n_servers += pool->n_servers;
	/* The slots its servers hold under pool_size and max_user_connections move with them. */
	atomic_fetch_sub(&pool->user->shared->n, pool->n_servers);
	atomic_fetch_add(&user->shared->n, pool->n_servers);
	atomic_fetch_sub(&pool->shared->n, pool->n_servers);
	atomic_fetch_add(&shared->n, pool->n_servers);
	pool->user = user;
	pool->shared = shared;
	for (size_t i = 0; i < sizeof(clients) / sizeof(clients[0]); i++)
		for (struct list *cp = clients[i]->next; cp != clients[i]; cp = cp->next)
			client_sync_np_ctx(container_of(cp, struct client, node));
	return true;
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

/* PgBouncer's order: the [users] line's pool_size, else the database's, else the global one. */
static int pool_effective_size(struct worker *w, const struct pool *pool)
{
	const struct config_user *cu = config_find_user(w->cfg, pool->user->name);
	if (cu && cu->pool_size >= 0)
		return cu->pool_size;
	if (pool->db->cfg.pool_size >= 0)
		return pool->db->cfg.pool_size;
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

static bool pool_should_yield(struct worker *w, struct pool *pool);

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
	if (pool_should_yield(w, pool)) {
		server_close(s, "given to another worker");
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

/* A pool's limits from the config; 0 means none for max_db / max_user. */
struct pool_limits {
	int size; /* pool_size, plus reserve_pool when the reserve may be used */
	int max_db;
	int max_user;
};

static void pool_limits(struct worker *w, const struct pool *pool, bool use_reserve,
			struct pool_limits *l)
{
	l->size = pool_effective_size(w, pool);
	if (use_reserve)
		l->size += pool->db->cfg.reserve_pool >= 0 ? pool->db->cfg.reserve_pool
							   : w->cfg->reserve_pool_size;
	l->max_db = pool->db->cfg.max_db_connections >= 0 ? pool->db->cfg.max_db_connections
							   : w->cfg->max_db_connections;
	const struct config_user *cu = config_find_user(w->cfg, pool->user->name);
	l->max_user = cu && cu->max_user_connections >= 0 ? cu->max_user_connections
							  : w->cfg->max_user_connections;
}

/* The tightest of a pool's limits: what the workers share. */
static int pool_cap(struct worker *w, const struct pool *pool)
{
	struct pool_limits l;
	pool_limits(w, pool, false, &l);
	int cap = l.size;
	if (l.max_db > 0 && l.max_db < cap)
		cap = l.max_db;
	if (l.max_user > 0 && l.max_user < cap)
		cap = l.max_user;
	return cap;
}

/* Which of a pool's limits l are reached over all workers. */
enum { FULL_SIZE = 1, FULL_DB = 2, FULL_USER = 4 };
static unsigned pool_full(const struct pool *pool, const struct pool_limits *l)
{
	unsigned full = 0;
	if (atomic_load_explicit(&pool->shared->n, memory_order_relaxed) >= l->size)
		full |= FULL_SIZE;
	if (l->max_db > 0 &&
	    atomic_load_explicit(&pool->db->shared->n, memory_order_relaxed) >= l->max_db)
		full |= FULL_DB;
	if (l->max_user > 0 &&
	    atomic_load_explicit(&pool->user->shared->n, memory_order_relaxed) >= l->max_user)
		full |= FULL_USER;
	return full;
}

/* Has any limit over all workers been reached, so no server may be opened for pool? */
static bool pool_limits_reached(struct worker *w, const struct pool *pool)
{
	struct pool_limits l;
	pool_limits(w, pool, false, &l);
	return pool_full(pool, &l) != 0;
}

/* Clients wait for a server: for a query, an auth_query, or the welcome of a first login. */
static bool pool_has_demand(const struct pool *pool)
{
	return !list_empty(&pool->waiting_clients) || pool->auth_head ||
	       (!pool->have_welcome && !list_empty(&pool->login_clients));
}

/* Workers other than pool's that have clients waiting and hit a limit. */
static uint64_t others_want(const struct pool *pool)
{
	if (app_nworkers() == 1)
		return 0; /* and the shared counter's line stays out of the cache */
	return atomic_load_explicit(&pool->shared->want, memory_order_relaxed) &
	       ~((uint64_t)1 << pool->w->id);
}

/* What one worker may keep of limit while others are short: an even share. */
static int fair_share(int limit)
{
	int n = app_nworkers();
	return n > 1 ? (limit + n - 1) / n : limit;
}

int pool_min_servers(const struct pool *pool)
{
	struct worker *w = pool->w;
	int min = pool->db->cfg.min_pool_size >= 0 ? pool->db->cfg.min_pool_size
						    : w->cfg->min_pool_size;
	return min > 0 ? min : 0;
}

int pool_total_servers(const struct pool *pool)
{
	return atomic_load_explicit(&pool->shared->n, memory_order_relaxed);
}

static bool pool_may_launch(struct worker *w, struct pool *pool, bool use_reserve)
{
	struct pool_limits l;
	pool_limits(w, pool, use_reserve, &l);
	if (pool_full(pool, &l))
		return false;
	/* Leave the free slots to the workers that are short, once we have our share. */
	if (others_want(pool) && pool->n_servers >= fair_share(pool_cap(w, pool)))
		return false;
	if (pool->last_connect_failed &&
	    worker_now(w) - pool->last_connect_failed < w->cfg->server_login_retry)
		return false;
	return true;
}

/*
 * Take a slot under every limit at once, over all workers; false (nothing taken) when full.
 * cap > 0 lowers the pool's limit (min_pool_size top-ups).
 */
static bool pool_take_slot(struct worker *w, struct pool *pool, bool use_reserve, int cap)
{
	struct pool_limits l;
	pool_limits(w, pool, use_reserve, &l);
	if (cap > 0 && cap < l.size)
		l.size = cap;
	if (!app_counter_take(pool->shared, l.size > 0 ? l.size : -1))
		return false;
	if (!app_counter_take(pool->db->shared, l.max_db)) {
		app_counter_put(pool->shared);
		return false;
	}
	if (!app_counter_take(pool->user->shared, l.max_user)) {
		app_counter_put(pool->db->shared);
		app_counter_put(pool->shared);
		return false;
	}
	return true;
}

void pool_server_gone(struct pool *pool)
{
	app_counter_put(pool->user->shared);
	app_counter_put(pool->db->shared);
	app_counter_put(pool->shared);
}

/* The shared form of a welcome: one block, freed with free(). */
struct shared_welcome {
	size_t len;
	const char *params[PARAM_COUNT]; /* into data, after the len bytes of messages */
	uint8_t data[];
};

void pool_welcome_publish(struct pool *pool)
{
	if (app_nworkers() < 2 || atomic_load(&pool->shared->welcome))
		return;
	size_t len = iobuf_avail(&pool->welcome), size = sizeof(struct shared_welcome) + len;
	for (int i = 0; i < PARAM_COUNT; i++)
		if (pool->welcome_params[i])
			size += strlen(pool->welcome_params[i]) + 1;
	struct shared_welcome *sw = calloc(1, size);
	if (!sw)
		return; /* the others log in for it themselves */
	sw->len = len;
	if (len > 0) /* a server may report no ParameterStatus: then welcome.data is NULL */
		memcpy(sw->data, pool->welcome.data + pool->welcome.rpos, len);
	char *p = (char *)sw->data + len;
	for (int i = 0; i < PARAM_COUNT; i++) {
		if (!pool->welcome_params[i])
			continue;
		size_t n = strlen(pool->welcome_params[i]) + 1;
		memcpy(p, pool->welcome_params[i], n);
		sw->params[i] = p;
		p += n;
	}
	void *expected = NULL;
	if (!atomic_compare_exchange_strong(&pool->shared->welcome, &expected, sw))
		free(sw);
}

bool pool_welcome_adopt(struct pool *pool)
{
	if (pool->have_welcome)
		return true;
	const struct shared_welcome *sw = atomic_load(&pool->shared->welcome);
	if (!sw)
		return false;
	iobuf_release(&pool->welcome);
	if (!iobuf_append(&pool->welcome, sw->data, sw->len))
		return false;
	for (int i = 0; i < PARAM_COUNT; i++) {
		free(pool->welcome_params[i]);
		pool->welcome_params[i] = sw->params[i] ? strdup(sw->params[i]) : NULL;
		if (sw->params[i] && !pool->welcome_params[i])
			return false;
	}
	pool->have_welcome = true;
	/* Clients that logged in before it came (they have had AuthenticationOk). */
	pool_welcome_waiting(pool);
	return true;
}

void pool_welcome_waiting(struct pool *pool)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &pool->login_clients)
	{
		struct client *c = container_of(pos, struct client, node);
		struct iobuf b = {0};
		client_welcome(c, &b);
		iobuf_release(&b);
	}
}

/*
 * As PgBouncer: when max_db_connections (or max_user_connections) keeps a pool with demand
 * from opening a server, close the longest-idle server of another pool of the same database
 * (user) on this worker, so that one pool's idle servers do not starve another's clients.
 * Idle servers of other workers are not taken.
 */
static bool pool_evict_for(struct worker *w, struct pool *pool, bool use_reserve)
{
	if (!pool_has_demand(pool) || !list_empty(&pool->login_servers))
		return false;
	struct pool_limits l;
	pool_limits(w, pool, use_reserve, &l);
	unsigned full = pool_full(pool, &l);
	/*
	 * Only the database's or only the user's limit: at its own size there is nothing to
	 * take from others, and with both one close cannot free a slot under both.
	 */
	if (full != FULL_DB && full != FULL_USER)
		return false;
	bool db_full = full == FULL_DB;
	struct server *victim = NULL;
	for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		if (p == pool || list_empty(&p->idle_servers) ||
		    (db_full ? p->db != pool->db : p->user != pool->user))
			continue;
		/* the list has the most recently used last */
		struct server *s = container_of(p->idle_servers.next, struct server, node);
		if (!victim || s->last_used < victim->last_used)
			victim = s;
	}
	if (!victim)
		return false;
	server_close(victim, "%s reached: the slot goes to %s/%s",
		     db_full ? "max_db_connections" : "max_user_connections", pool->db->name,
		     pool->user->name);
	return true;
}

static void pool_launch(struct worker *w, struct pool *pool)
{
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
	if (!pool_may_launch(w, pool, reserve) &&
	    !(pool_evict_for(w, pool, reserve) && pool_may_launch(w, pool, reserve)))
		return;
	int logins = (int)list_count(&pool->login_servers);
	int room = pool_effective_size(w, pool) + (reserve ? w->cfg->reserve_pool_size : 0) -
		   atomic_load_explicit(&pool->shared->n, memory_order_relaxed);
	int auth_waiters = 0;
	for (struct client *a = pool->auth_head; a; a = a->auth_next)
		auth_waiters++;
	int waiting = (int)list_count_upto(&pool->waiting_clients,
					   (size_t)(room > 0 ? room : 0) + (size_t)logins);
	int need = waiting + auth_waiters - logins;
	if (!pool->have_welcome && !list_empty(&pool->login_clients) && logins == 0 && need < 1)
		need = 1;
	while (need-- > 0 && pool_may_launch(w, pool, reserve)) {
		if (!pool_take_slot(w, pool, reserve, 0))
			break;
		if (!server_launch(pool)) {
			pool_server_gone(pool);
			break;
		}
	}
	/* min_pool_size counts servers over all workers: top up to it, never past it. */
	int min = pool_min_servers(pool);
	while (min > 0 && pool_total_servers(pool) < min && pool_may_launch(w, pool, false)) {
		if (!pool_take_slot(w, pool, false, min))
			break;
		if (!server_launch(pool)) {
			pool_server_gone(pool);
			break;
		}
	}
}

/*
 * Several workers: say whether this worker is short of servers (clients waiting, pool_size
 * reached over all workers), and wake the others the first time, so they give up what they
 * hold beyond their share (pool_rebalance, pool_server_ready).
 */
static void pool_note_demand(struct worker *w, struct pool *pool)
{
	uint64_t bit = (uint64_t)1 << w->id;
	uint64_t want = atomic_load_explicit(&pool->shared->want, memory_order_relaxed);
	bool short_of = pool_has_demand(pool) && pool_limits_reached(w, pool);
	if (short_of && !(want & bit)) {
		atomic_fetch_or(&pool->shared->want, bit);
		uint64_t all = app_nworkers() >= 64 ? ~(uint64_t)0
						    : ((uint64_t)1 << app_nworkers()) - 1;
		app_kick(all & ~bit);
	} else if (!short_of && (want & bit)) {
		atomic_fetch_and(&pool->shared->want, ~bit);
	}
}

void pool_maintain(struct pool *pool)
{
	struct worker *w = pool->w;

	/* Clients waiting for parameters another worker's login may already have got. */
	if (!pool->have_welcome && !list_empty(&pool->login_clients))
		pool_welcome_adopt(pool);

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
	pool_launch(w, pool);
	if (app_nworkers() > 1)
		pool_note_demand(w, pool);
}

void pool_maintain_all(struct worker *w)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &w->pools)
	{
		pool_maintain(container_of(pos, struct pool, node));
	}
}

/* Should a server of pool that just became free go to a worker that is short instead? */
static bool pool_should_yield(struct worker *w, struct pool *pool)
{
	uint64_t others = others_want(pool);
	if (__builtin_expect(others == 0, 1))
		return false;
	if (pool->n_servers <= fair_share(pool_cap(w, pool)))
		return false;
	app_kick(others);
	return true;
}

/* Idle servers not used for this long go to a worker that is short, whatever the shares. */
#define IDLE_GIVE_USEC 100000

void pool_rebalance(struct worker *w)
{
	usec_t now = worker_tick(w);
	for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		uint64_t others = others_want(p);
		if (others) {
			int share = fair_share(pool_cap(w, p));
			int min = pool_min_servers(p);
			bool gave = false;
			struct list *sp, *st;
			/* Least recently used first. */
			list_for_each_safe(sp, st, &p->idle_servers)
			{
				struct server *s = container_of(sp, struct server, node);
				if (pool_total_servers(p) <= min)
					break;
				if (p->n_servers <= share && now - s->last_used < IDLE_GIVE_USEC)
					break;
				server_close(s, "given to another worker");
				gave = true;
			}
			if (gave)
				app_kick(others);
		}
		pool_maintain(p);
	}
}
