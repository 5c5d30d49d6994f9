/* worker: an event loop's context, its buffer free list, the janitor and the reaper. */
#include "worker.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "app.h"
#include "client.h"
#include "dns.h"
#include "log.h"
#include "nplus1.h"
#include "fpcache.h"
#include "pool.h"
#include "sbuf.h"
#include "server.h"

/* How often the janitor looks at timeouts. */
#define JANITOR_USEC 200000

/* Keep at most this many free buffers; more go back to malloc. */
#define MAX_FREE_BUFS 1024

uint8_t *worker_buf_get(struct worker *w)
{
	if (w->n_free_bufs)
		return w->free_bufs[--w->n_free_bufs];
	return malloc(SBUF_BUFSIZE);
}

void worker_buf_put(struct worker *w, uint8_t *buf)
{
	if (w->n_free_bufs == w->cap_free_bufs && w->cap_free_bufs < MAX_FREE_BUFS) {
		size_t cap = w->cap_free_bufs ? w->cap_free_bufs * 2 : 64;
		uint8_t **p = realloc(w->free_bufs, cap * sizeof(*p));
		if (p) {
			w->free_bufs = p;
			w->cap_free_bufs = cap;
		}
	}
	if (w->n_free_bufs < w->cap_free_bufs)
		w->free_bufs[w->n_free_bufs++] = buf;
	else
		free(buf);
}

bool worker_random(struct worker *w, void *buf, size_t n)
{
	uint8_t *out = buf;
	while (n > 0) {
		if (w->rand_left == 0) {
			if (RAND_bytes(w->rand_pool, sizeof(w->rand_pool)) != 1)
				return false;
			w->rand_left = sizeof(w->rand_pool);
		}
		size_t take = n < w->rand_left ? n : w->rand_left;
		uint8_t *from = w->rand_pool + sizeof(w->rand_pool) - w->rand_left;
		memcpy(out, from, take);
		OPENSSL_cleanse(from, take); /* handed out once only */
		w->rand_left -= take;
		out += take;
		n -= take;
	}
	return true;
}

static void reaper_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	(void)fd;
	(void)what;
	client_reap(w);
	server_reap(w);
}

void worker_schedule_reap(struct worker *w)
{
	event_active(w->reaper, EV_TIMEOUT, 0);
}

static void log_flusher_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	log_flush();
}

static void log_flusher_arm(void *arg)
{
	struct worker *w = arg;
	struct timeval tv = {0, LOG_IDLE_USEC};
	event_add(w->log_flusher, &tv); /* again if pending: pushed back, not woken for */
}

void worker_run(struct worker *w)
{
	log_batch_start(log_flusher_arm, w);
	event_base_dispatch(w->base);
	log_batch_stop();
}

struct worker *worker_create(struct config *cfg)
{
	struct worker *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	struct event_config *ec = event_config_new();
	/* Timers need no precision (the janitor); statement timing uses worker_tick(). */
	w->base = event_base_new_with_config(ec);
	event_config_free(ec);
	if (!w->base) {
		free(w);
		return NULL;
	}
	w->cfg = cfg;
	if (!dns_init(w)) {
		event_base_free(w->base);
		free(w);
		return NULL;
	}
	RAND_bytes(w->scram_mock_key, sizeof(w->scram_mock_key));
	objcache_init(&w->clients, sizeof(struct client));
	objcache_init(&w->servers, sizeof(struct server));
	list_init(&w->dbs);
	list_init(&w->users);
	list_init(&w->pools);
	list_init(&w->login_clients);
	list_init(&w->admin_clients);
	list_init(&w->closed_clients);
	list_init(&w->closed_servers);
	list_init(&w->cancel_conns);
	list_init(&w->admin_waits);
	w->reaper = event_new(w->base, -1, 0, reaper_cb, w);
	w->log_flusher = evtimer_new(w->base, log_flusher_cb, w);
	w->nplus1 = nplus1_table_new();
	uint64_t seed = 0;
	(void)RAND_bytes((unsigned char *)&seed, sizeof(seed)); /* 0 on failure: still works */
	w->fpcache = fp_cache_new(seed);
	if (!w->reaper || !w->log_flusher || !w->nplus1 || !w->fpcache || !app_worker_register(w)) {
		nplus1_table_free(w->nplus1);
		fp_cache_free(w->fpcache);
		if (w->reaper)
			event_free(w->reaper);
		if (w->log_flusher)
			event_free(w->log_flusher);
		dns_free(w);
		event_base_free(w->base);
		free(w);
		return NULL;
	}
	w->next_id = (uint64_t)w->id << 40; /* ids stay unique across workers */
	w->start_time = worker_tick(w);
	return w;
}

static void close_clients_on(struct list *l, const char *sqlstate, const char *msg)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, l)
	{
		struct client *c = container_of(pos, struct client, node);
		client_close(c, sqlstate, "%s", msg);
	}
}

static void close_servers_on(struct list *l, const char *msg)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, l)
	{
		struct server *s = container_of(pos, struct server, node);
		server_close(s, "%s", msg);
	}
}

void worker_free(struct worker *w)
{
	struct list *pos, *tmp;
	close_clients_on(&w->login_clients, NULL, "shutdown");
	close_clients_on(&w->admin_clients, NULL, "shutdown");
	list_for_each_safe(pos, tmp, &w->pools)
	{
		struct pool *p = container_of(pos, struct pool, node);
		close_clients_on(&p->active_clients, NULL, "shutdown");
		close_clients_on(&p->waiting_clients, NULL, "shutdown");
		close_clients_on(&p->login_clients, NULL, "shutdown");
		close_servers_on(&p->active_servers, "shutdown");
		close_servers_on(&p->idle_servers, "shutdown");
		close_servers_on(&p->used_servers, "shutdown");
		close_servers_on(&p->tested_servers, "shutdown");
		close_servers_on(&p->login_servers, "shutdown");
	}
	client_reap(w);
	server_reap(w);
	server_cancels_free(w);
	admin_waits_free(w);
	stats_fp_table_free(&w->fps);
	pstmt_registry_free(&w->pstmts);
	nplus1_table_free(w->nplus1);
	fp_cache_free(w->fpcache);
	list_for_each_safe(pos, tmp, &w->pools)
	{
		pool_free(container_of(pos, struct pool, node));
	}
	list_for_each_safe(pos, tmp, &w->dbs)
	{
		struct pool_db *db = container_of(pos, struct pool_db, node);
		list_del(&db->node);
		pool_db_configure(db, &(struct config_db){0}, false);
		free(db->cfg.dbname);
		free(db->name);
		free(db);
	}
	list_for_each_safe(pos, tmp, &w->users)
	{
		struct pool_user *u = container_of(pos, struct pool_user, node);
		list_del(&u->node);
		free(u->name);
		free(u->password);
		free(u->scram_cache);
		free(u);
	}
	OPENSSL_cleanse(w->rand_pool, sizeof(w->rand_pool));
	for (size_t i = 0; i < w->n_free_bufs; i++)
		free(w->free_bufs[i]);
	free(w->free_bufs);
	objcache_destroy(&w->clients);
	objcache_destroy(&w->servers);
	if (w->janitor)
		event_free(w->janitor);
	event_free(w->reaper);
	event_free(w->log_flusher);
	/* After it, no loop runs: a lookup still under way never calls back (dns.c). */
	dns_free(w);
	event_base_free(w->base);
	app_worker_unregister(w);
	free(w);
}

/* ---- janitor: timeouts and pool upkeep ---- */

static void janitor_clients(struct worker *w, usec_t now)
{
	struct config *cfg = w->cfg;
	struct list *pos, *tmp;

	if (cfg->client_login_timeout > 0) {
		list_for_each_safe(pos, tmp, &w->login_clients)
		{
			struct client *c = container_of(pos, struct client, node);
			if (now - c->connect_time > cfg->client_login_timeout)
				client_close(c, "08P01", "client_login_timeout");
		}
	}
	list_for_each_safe(pos, tmp, &w->pools)
	{
		struct pool *p = container_of(pos, struct pool, node);
		struct list *cp, *ct;
		if (cfg->client_login_timeout > 0) {
			list_for_each_safe(cp, ct, &p->login_clients)
			{
				struct client *c = container_of(cp, struct client, node);
				if (now - c->connect_time > cfg->client_login_timeout)
					client_close(c, "08P01",
						     "client_login_timeout (server down?)%s%s",
						     p->last_error ? ": " : "",
						     p->last_error ? p->last_error : "");
			}
		}
		if (cfg->query_wait_timeout > 0) {
			list_for_each_safe(cp, ct, &p->waiting_clients)
			{
				struct client *c = container_of(cp, struct client, node);
				if (c->wait_start && now - c->wait_start <= cfg->query_wait_timeout)
					break; /* a FIFO: everyone behind waited less */
				client_close(c, "08P01", "query_wait_timeout%s%s",
					     p->last_error ? ": last server error: " : "",
					     p->last_error ? p->last_error : "");
			}
		}
		list_for_each_safe(cp, ct, &p->active_clients)
		{
			struct client *c = container_of(cp, struct client, node);
			struct server *s = c->server;
			if (!s) {
				if (cfg->client_idle_timeout > 0 &&
				    now - c->request_time > cfg->client_idle_timeout)
					client_close(c, "08P01", "client_idle_timeout");
				continue;
			}
			if (cfg->query_timeout > 0 && s->rq.count > 0 &&
			    now - s->request_time > cfg->query_timeout) {
				client_close(c, "57014", "query_timeout");
				continue;
			}
			if (cfg->idle_transaction_timeout > 0 && s->rq.count == 0 &&
			    s->txn_status != 'I' &&
			    now - c->request_time > cfg->idle_transaction_timeout)
				client_close(c, "25P03", "idle_transaction_timeout");
		}
	}
}

static void janitor_servers(struct worker *w, usec_t now)
{
	struct config *cfg = w->cfg;
	struct list *pos, *tmp;

	list_for_each_safe(pos, tmp, &w->pools)
	{
		struct pool *p = container_of(pos, struct pool, node);
		struct list *sp, *st;
		list_for_each_safe(sp, st, &p->login_servers)
		{
			struct server *s = container_of(sp, struct server, node);
			if (cfg->server_connect_timeout > 0 &&
			    now - s->connect_time > cfg->server_connect_timeout)
				server_close(s, "server_connect_timeout");
		}
		int min = pool_min_servers(p);
		list_for_each_safe(sp, st, &p->idle_servers)
		{
			struct server *s = container_of(sp, struct server, node);
			if (s->close_needed) {
				server_close(s, "close needed");
				continue;
			}
			if (cfg->server_lifetime > 0 && now - s->connect_time > cfg->server_lifetime &&
			    pool_total_servers(p) > min) {
				server_close(s, "server_lifetime");
				continue;
			}
			if (cfg->server_idle_timeout > 0 && now - s->last_used > cfg->server_idle_timeout &&
			    pool_total_servers(p) > min)
				server_close(s, "server_idle_timeout");
		}
		pool_maintain(p);
	}
	if (app_nworkers() > 1)
		pool_rebalance(w); /* idle servers other workers are short of */
}

static void janitor_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	(void)fd;
	(void)what;
	usec_t now = worker_tick(w);
	janitor_clients(w, now);
	janitor_servers(w, now);
	worker_check_shutdown(w);
}

void worker_start_janitor(struct worker *w)
{
	struct timeval tv = {0, JANITOR_USEC};
	w->janitor = event_new(w->base, -1, EV_PERSIST, janitor_cb, w);
	event_add(w->janitor, &tv);
}

static bool worker_has_active_servers(struct worker *w)
{
	struct list *pos;
	for (pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		if (!list_empty(&p->active_servers))
			return true;
	}
	return false;
}

void worker_check_shutdown(struct worker *w)
{
	if (w->shutdown_mode == 0)
		return;
	if (w->shutdown_mode == 1 && worker_has_active_servers(w))
		return;
	if (w->shutdown_mode == 2 && w->n_clients > (int)list_count(&w->admin_clients))
		return;
	if (w->id == 0 && !app_others_ended())
		return; /* the main thread's loop ends last */
	log_info("shutting down");
	event_base_loopbreak(w->base);
}

/* db's connection settings changed on a reload: its pools start over under them. */
static void worker_reconnect_db(struct worker *w, struct pool_db *db)
{
	struct pool_user *forced = db->cfg.user ? pool_user_find(w, db->cfg.user, true) : NULL;
	struct list *pos;
	for (pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		if (p->db != db)
			continue;
		/* A new forced user takes over the pools of the old one (or of the clients' own
		 * users, when there was none): one pool, its limits, its SHOW POOLS row. */
		if (forced && p->user != forced && !pool_set_user(p, forced))
			log_warning("out of memory: pool %s/%s keeps its user", db->name,
				    p->user->name);
		pool_reconnect(p, "database settings changed");
	}
}

void worker_apply_config(struct worker *w, struct config *cfg)
{
	struct list *pos;
	w->cfg = cfg;
	for (pos = w->dbs.next; pos != &w->dbs; pos = pos->next) {
		struct pool_db *db = container_of(pos, struct pool_db, node);
		const struct config_db *cd = config_find_db(cfg, db->name, false);
		bool fallback = false;
		if (!cd) {
			cd = config_find_db(cfg, db->name, true);
			fallback = cd != NULL;
		}
		if (!cd) {
			db->removed = true;
			continue;
		}
		/* Servers made with the old settings (address, database, user, parameters...) are
		 * replaced, so that every new transaction runs under the new ones. */
		bool changed = pool_db_conn_changed(db, cd);
		pool_db_configure(db, cd, fallback);
		db->removed = false;
		if (changed) {
			db->host_next = 0; /* a new host list starts at its first */
			worker_reconnect_db(w, db);
		}
	}
	for (pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		pool_update_mode(p);
		pool_maintain(p);
	}
}
