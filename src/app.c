/* app: process-wide control shared by signals and the admin console: reload, shutdown. */
#include "app.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "client.h"

#include "config.h"
#include "listener.h"
#include "log.h"
#include "pool.h"
#include "server.h"
#include "tls.h"
#include "userlist.h"
#include "worker.h"

bool app_opt_quiet;
bool app_opt_daemon;
int app_opt_verbose;

void app_log_problems(const struct config_problems *probs)
{
	for (size_t i = 0; i < probs->n; i++) {
		const struct config_problem *p = &probs->items[i];
		if (p->is_error)
			log_error("%s:%d: %s", p->file, p->line, p->message);
		else
			log_warning("%s:%d: %s", p->file, p->line, p->message);
	}
}

struct userlist *app_load_userlist(const struct config *cfg, char *err, size_t errlen)
{
	if (!cfg->auth_file || !*cfg->auth_file)
		return NULL;
	struct userlist *ul = userlist_load(cfg->auth_file, err, errlen);
	if (ul && userlist_is_world_readable(cfg->auth_file))
		log_warning("auth_file %s is readable by other users; chmod 600 it", cfg->auth_file);
	return ul;
}

/* Point w's users at the new auth_file; the caller frees the old list once. */
static void apply_userlist(struct worker *w, struct userlist *ul)
{
	w->users_file = ul;
	for (struct list *pos = w->users.next; pos != &w->users; pos = pos->next) {
		struct pool_user *u = container_of(pos, struct pool_user, node);
		const char *pw = ul ? userlist_find(ul, u->name) : NULL;
		if ((pw == NULL) != (u->password == NULL) ||
		    (pw && u->password && strcmp(pw, u->password) != 0)) {
			free(u->password);
			u->password = pw ? strdup(pw) : NULL;
			free(u->scram_cache);
			u->scram_cache = NULL;
			u->have_scram_keys = false;
		}
	}
}

static int log_level_for(const struct config *cfg, int verbose_flags)
{
	int v = cfg->verbose > verbose_flags ? cfg->verbose : verbose_flags;
	int lvl = LOG_LVL_INFO + v;
	return lvl > LOG_LVL_NOISE ? LOG_LVL_NOISE : lvl;
}


void app_setup_logging(const struct config *cfg)
{
	if (cfg->syslog_facility && *cfg->syslog_facility &&
	    !log_set_syslog_facility(cfg->syslog_facility))
		log_warning("unknown syslog_facility %s; using daemon", cfg->syslog_facility);
	log_setup(cfg->logfile, !app_opt_quiet && !app_opt_daemon,
		  cfg->syslog ? (cfg->syslog_ident ? cfg->syslog_ident : "pgtally") : NULL,
		  log_level_for(cfg, app_opt_verbose));
}

static bool str_differs(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") != 0;
}

static bool server_tls_differs(const struct config *a, const struct config *b)
{
	return str_differs(a->server_tls_sslmode, b->server_tls_sslmode) ||
	       str_differs(a->server_tls_key_file, b->server_tls_key_file) ||
	       str_differs(a->server_tls_cert_file, b->server_tls_cert_file) ||
	       str_differs(a->server_tls_ca_file, b->server_tls_ca_file) ||
	       str_differs(a->server_tls_protocols, b->server_tls_protocols) ||
	       str_differs(a->server_tls_ciphers, b->server_tls_ciphers);
}

/* Changed server_tls_* settings: no server keeps running under the old ones (as PgBouncer). */
static void reconnect_all_servers(struct worker *w)
{
	for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next)
		pool_reconnect(container_of(pos, struct pool, node), "server TLS settings changed");
}

static bool reload(struct worker *self, char *err, size_t errlen)
{
	struct config_problems probs = {0};
	struct config *cfg = config_load(self->cfg->config_file, &probs);
	app_log_problems(&probs);
	config_problems_free(&probs);
	if (!cfg) {
		snprintf(err, errlen, "config file has errors; keeping the old one");
		log_error("reload failed: %s", err);
		return false;
	}
	char uerr[256] = "";
	struct userlist *ul = NULL;
	if (cfg->auth_file && *cfg->auth_file) {
		ul = app_load_userlist(cfg, uerr, sizeof(uerr));
		if (!ul) {
			snprintf(err, errlen, "auth_file: %s", uerr);
			log_error("reload failed: %s", err);
			config_free(cfg);
			return false;
		}
	}
	/* Certificates are read again even when the file names did not change. */
	struct tls_ctx *tls_accept = NULL, *tls_connect = NULL;
	if (!tls_ctx_load(cfg, &tls_accept, &tls_connect, uerr, sizeof(uerr))) {
		snprintf(err, errlen, "TLS: %s", uerr);
		log_error("reload failed: %s", err);
		if (ul)
			userlist_free(ul);
		config_free(cfg);
		return false;
	}
	if (cfg->workers != app_nworkers())
		log_warning("workers changed to %d: takes effect at the next start", cfg->workers);
	/* All workers share the config, the auth_file and the TLS contexts. */
	struct config *old = self->cfg;
	struct userlist *old_ul = self->users_file;
	struct tls_ctx *old_accept = self->tls_accept, *old_connect = self->tls_connect;
	bool server_tls_changed = server_tls_differs(old, cfg);
	struct worker *w;
	for (int i = 0; (w = app_worker(i)); i++) {
		worker_apply_config(w, cfg);
		w->tls_accept = tls_accept;
		w->tls_connect = tls_connect;
		if (server_tls_changed)
			reconnect_all_servers(w);
		apply_userlist(w, ul);
	}
	listener_tune_all(cfg);
	if (server_tls_changed)
		log_info("server TLS settings changed: server connections will be replaced");
	tls_ctx_free(old_accept);
	tls_ctx_free(old_connect);
	if (old_ul)
		userlist_free(old_ul);
	app_setup_logging(cfg);
	config_free(old);
	log_info("configuration reloaded");
	return true;
}

bool app_reload(struct worker *self, char *err, size_t errlen)
{
	app_world_stop(self);
	bool ok = reload(self, err, errlen);
	app_world_resume(self);
	return ok;
}

void app_shutdown(struct worker *self, int mode)
{
	struct worker *w;
	app_world_stop(self);
	if (mode == 0)
		log_info("immediate shutdown");
	else
		log_info("shutdown requested: waiting for %s",
			 mode == 1 ? "servers to be released" : "clients to leave");
	for (int i = 0; (w = app_worker(i)); i++) {
		if (mode == 0) {
			event_base_loopbreak(w->base);
			continue;
		}
		w->shutting_down = true;
		w->shutdown_mode = mode;
		listener_stop(w);
	}
	for (int i = 0; mode != 0 && (w = app_worker(i)); i++)
		worker_check_shutdown(w);
	app_world_resume(self);
}

void app_set_paused(struct worker *self, bool paused)
{
	struct worker *w;
	app_world_stop(self);
	for (int i = 0; (w = app_worker(i)); i++) {
		w->paused = paused;
		if (!paused)
			pool_maintain_all(w);
	}
	app_world_resume(self);
}

/* ---- workers ---- */

static struct worker *workers[APP_MAX_WORKERS];
static int n_workers;
static pthread_t threads[APP_MAX_WORKERS];
static bool threads_running; /* worker threads were started: the world can be stopped */

bool app_worker_register(struct worker *w)
{
	if (n_workers >= APP_MAX_WORKERS)
		return false;
	w->id = n_workers;
	workers[n_workers++] = w;
	return true;
}

void app_worker_unregister(struct worker *w)
{
	for (int i = 0; i < n_workers; i++) {
		if (workers[i] != w)
			continue;
		for (int j = i; j + 1 < n_workers; j++) {
			workers[j] = workers[j + 1];
			workers[j]->id = j;
		}
		n_workers--;
		return;
	}
}

int app_nworkers(void)
{
	return n_workers;
}

struct worker *app_worker(int i)
{
	return i >= 0 && i < n_workers ? workers[i] : NULL;
}

/* ---- counters shared by the workers ---- */

struct counter_entry {
	struct counter_entry *next;
	struct app_counter c;
	char key[];
};

static pthread_mutex_t counters_lock = PTHREAD_MUTEX_INITIALIZER;
static struct counter_entry *counters;
static _Atomic int client_total;

struct app_counter *app_counter_get(char kind, const char *a, const char *b)
{
	size_t la = strlen(a), lb = b ? strlen(b) : 0;
	size_t klen = 1 + la + 1 + lb + 1;
	struct counter_entry *e;
	pthread_mutex_lock(&counters_lock);
	for (e = counters; e; e = e->next)
		if (e->key[0] == kind && strcmp(e->key + 1, a) == 0 &&
		    strcmp(e->key + 2 + la, b ? b : "") == 0)
			break;
	if (!e) {
		e = calloc(1, sizeof(*e) + klen);
		if (e) {
			e->key[0] = kind;
			memcpy(e->key + 1, a, la + 1);
			memcpy(e->key + 2 + la, b ? b : "", lb + 1);
			e->next = counters;
			counters = e;
		}
	}
	pthread_mutex_unlock(&counters_lock);
	return e ? &e->c : NULL;
}

bool app_counter_take(struct app_counter *c, int limit)
{
	int n = atomic_load_explicit(&c->n, memory_order_relaxed);
	do {
		if (limit > 0 && n >= limit)
			return false;
	} while (!atomic_compare_exchange_weak(&c->n, &n, n + 1));
	return true;
}

void app_counter_put(struct app_counter *c)
{
	atomic_fetch_sub(&c->n, 1);
}

void app_counters_free(void)
{
	pthread_mutex_lock(&counters_lock);
	while (counters) {
		struct counter_entry *e = counters;
		counters = e->next;
		free(atomic_load(&e->c.welcome));
		free(e);
	}
	pthread_mutex_unlock(&counters_lock);
}

int app_clients_add(int d)
{
	return atomic_fetch_add_explicit(&client_total, d, memory_order_relaxed) + d;
}

/* ---- the inbox: jobs one worker posts to another, woken through an eventfd ---- */

enum job_kind { JOB_PARK, JOB_ADOPT, JOB_CANCEL, JOB_MAINTAIN };

struct job {
	enum job_kind kind;
	bool is_unix;
	int fd;
	uint32_t pid, key;
	socklen_t addrlen;
	struct sockaddr_storage addr;
};

struct inbox {
	pthread_mutex_t lock;
	struct job *jobs;
	size_t n, cap;
	bool maintain_posted; /* one JOB_MAINTAIN queued at a time */
	int efd;
	struct event *ev;
};

static void post(struct worker *w, const struct job *j)
{
	struct inbox *ib = w->inbox;
	if (!ib) {
		if (j->kind == JOB_ADOPT)
			close(j->fd);
		return;
	}
	bool wake = false, ok = true;
	pthread_mutex_lock(&ib->lock);
	if (j->kind == JOB_MAINTAIN && ib->maintain_posted) {
		pthread_mutex_unlock(&ib->lock);
		return;
	}
	if (ib->n == ib->cap) {
		size_t cap = ib->cap ? ib->cap * 2 : 16;
		struct job *p = realloc(ib->jobs, cap * sizeof(*p));
		if (p) {
			ib->jobs = p;
			ib->cap = cap;
		} else {
			ok = false;
		}
	}
	if (ok) {
		if (j->kind == JOB_MAINTAIN)
			ib->maintain_posted = true;
		wake = ib->n == 0;
		ib->jobs[ib->n++] = *j;
	}
	pthread_mutex_unlock(&ib->lock);
	if (!ok) {
		log_error("out of memory passing a job to worker %d", w->id);
		if (j->kind == JOB_ADOPT)
			close(j->fd);
		return;
	}
	if (wake) {
		uint64_t one = 1;
		if (write(ib->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			log_error("cannot wake worker %d: %s", w->id, strerror(errno));
	}
}

void app_post_adopt(int target, int fd, const struct sockaddr *sa, unsigned len, bool is_unix)
{
	struct job j = {.kind = JOB_ADOPT, .fd = fd, .is_unix = is_unix, .addrlen = len};
	if (len > sizeof(j.addr))
		j.addrlen = 0;
	else
		memcpy(&j.addr, sa, len);
	post(workers[target], &j);
}

void app_post_cancel(int target, uint32_t pid, uint32_t key)
{
	if (target < 0 || target >= n_workers)
		return;
	post(workers[target], &(struct job){.kind = JOB_CANCEL, .pid = pid, .key = key});
}

void app_kick(uint64_t mask)
{
	for (int i = 0; i < n_workers; i++)
		if (mask & ((uint64_t)1 << i))
			post(workers[i], &(struct job){.kind = JOB_MAINTAIN});
}

/* ---- stop the world ---- */

static pthread_mutex_t stw_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stw_cond = PTHREAD_COND_INITIALIZER;
static int stw_owner = -1;  /* the worker that stopped the world, -1 none */
static int stw_depth;       /* nested stops by the owner */
static int stw_parked;      /* workers parked for the owner */
static int stw_exited;      /* workers whose loop has ended: they count as parked */
static unsigned stw_gen;    /* bumped at every resume */

/* Under stw_lock: wait, parked, until the current owner resumes the world. */
static void park_locked(void)
{
	unsigned gen = stw_gen;
	stw_parked++;
	pthread_cond_broadcast(&stw_cond);
	while (stw_gen == gen)
		pthread_cond_wait(&stw_cond, &stw_lock);
}

void app_world_stop(struct worker *self)
{
	if (!threads_running)
		return;
	pthread_mutex_lock(&stw_lock);
	if (stw_owner == self->id) {
		stw_depth++;
		pthread_mutex_unlock(&stw_lock);
		return;
	}
	while (stw_owner != -1)
		park_locked(); /* somebody else stopped it first: serve them, then take our turn */
	stw_owner = self->id;
	stw_depth = 1;
	stw_parked = 0;
	pthread_mutex_unlock(&stw_lock);
	for (int i = 0; i < n_workers; i++)
		if (i != self->id)
			post(workers[i], &(struct job){.kind = JOB_PARK});
	pthread_mutex_lock(&stw_lock);
	while (stw_parked + stw_exited < n_workers - 1)
		pthread_cond_wait(&stw_cond, &stw_lock);
	pthread_mutex_unlock(&stw_lock);
}

void app_world_resume(struct worker *self)
{
	if (!threads_running)
		return;
	pthread_mutex_lock(&stw_lock);
	if (stw_owner == self->id && --stw_depth == 0) {
		stw_owner = -1;
		stw_gen++;
		pthread_cond_broadcast(&stw_cond);
	}
	pthread_mutex_unlock(&stw_lock);
}

static void park(struct worker *w)
{
	pthread_mutex_lock(&stw_lock);
	if (stw_owner != -1 && stw_owner != w->id)
		park_locked();
	pthread_mutex_unlock(&stw_lock);
}

static void inbox_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct inbox *ib = w->inbox;
	uint64_t v;
	(void)what;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("worker %d: eventfd read: %s", w->id, strerror(errno));
	pthread_mutex_lock(&ib->lock);
	struct job *jobs = ib->jobs;
	size_t n = ib->n;
	ib->jobs = NULL;
	ib->n = ib->cap = 0;
	ib->maintain_posted = false;
	pthread_mutex_unlock(&ib->lock);
	worker_tick(w);
	for (size_t i = 0; i < n; i++) {
		struct job *j = &jobs[i];
		switch (j->kind) {
		case JOB_PARK:
			park(w);
			worker_tick(w);
			break;
		case JOB_ADOPT:
			if (w->shutting_down)
				close(j->fd);
			else
				client_accept(w, j->fd, (struct sockaddr *)&j->addr, j->addrlen,
					      j->is_unix);
			break;
		case JOB_CANCEL:
			client_handle_cancel(w, j->pid, j->key);
			break;
		case JOB_MAINTAIN:
			pool_rebalance(w);
			break;
		}
	}
	free(jobs);
}

static bool inbox_start(struct worker *w)
{
	struct inbox *ib = calloc(1, sizeof(*ib));
	if (!ib)
		return false;
	pthread_mutex_init(&ib->lock, NULL);
	ib->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ib->efd >= 0)
		ib->ev = event_new(w->base, ib->efd, EV_READ | EV_PERSIST, inbox_cb, w);
	if (!ib->ev || event_add(ib->ev, NULL) < 0) {
		if (ib->efd >= 0)
			close(ib->efd);
		pthread_mutex_destroy(&ib->lock);
		free(ib);
		return false;
	}
	w->inbox = ib;
	return true;
}

static void inbox_free(struct worker *w)
{
	struct inbox *ib = w->inbox;
	if (!ib)
		return;
	for (size_t i = 0; i < ib->n; i++)
		if (ib->jobs[i].kind == JOB_ADOPT)
			close(ib->jobs[i].fd);
	free(ib->jobs);
	event_free(ib->ev);
	close(ib->efd);
	pthread_mutex_destroy(&ib->lock);
	free(ib);
	w->inbox = NULL;
}

/* ---- threads ---- */

static void loop_ended(struct worker *w)
{
	pthread_mutex_lock(&stw_lock);
	stw_exited++;
	pthread_cond_broadcast(&stw_cond);
	pthread_mutex_unlock(&stw_lock);
	if (w->id != 0)
		app_kick(1); /* worker 0 waits for the others before it ends the process */
}

bool app_others_ended(void)
{
	if (!threads_running)
		return true;
	pthread_mutex_lock(&stw_lock);
	int ended = stw_exited;
	pthread_mutex_unlock(&stw_lock);
	return ended >= n_workers - 1;
}

static void *thread_main(void *arg)
{
	struct worker *w = arg;
	worker_run(w);
	loop_ended(w);
	return NULL;
}

bool app_run(void)
{
	bool ok = true;
	int started = 1;
	if (n_workers > 1) {
		for (int i = 0; i < n_workers; i++)
			if (!inbox_start(workers[i])) {
				log_fatal("cannot set up worker %d: %s", i, strerror(errno));
				ok = false;
			}
		threads_running = ok;
		for (int i = 1; ok && i < n_workers; i++) {
			int rc = pthread_create(&threads[i], NULL, thread_main, workers[i]);
			if (rc != 0) {
				log_fatal("cannot start worker thread %d: %s", i, strerror(rc));
				ok = false;
				break;
			}
			started++;
		}
		if (!ok && threads_running) {
			/* The threads that never started count as ended; stop those that did. */
			pthread_mutex_lock(&stw_lock);
			stw_exited += n_workers - started;
			pthread_mutex_unlock(&stw_lock);
			app_world_stop(workers[0]);
			for (int i = 1; i < started; i++)
				event_base_loopbreak(workers[i]->base);
			app_world_resume(workers[0]);
		}
	}
	if (ok)
		worker_run(workers[0]);
	if (threads_running) {
		loop_ended(workers[0]);
		for (int i = 1; i < started; i++)
			pthread_join(threads[i], NULL);
		threads_running = false;
	}
	for (int i = 0; i < n_workers; i++)
		inbox_free(workers[i]);
	return ok;
}
