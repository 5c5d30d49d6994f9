/* app: process-wide control shared by signals and the admin console: reload, shutdown. */
#include "app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void apply_userlist(struct worker *w, struct userlist *ul)
{
	struct userlist *old = w->users_file;
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
	if (old)
		userlist_free(old);
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
	for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		struct list *lists[] = {&p->active_servers, &p->idle_servers, &p->used_servers,
					&p->tested_servers, &p->login_servers};
		for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
			for (struct list *sp = lists[i]->next; sp != lists[i]; sp = sp->next)
				container_of(sp, struct server, node)->close_needed = true;
	}
	log_info("server TLS settings changed: server connections will be replaced");
}

bool app_reload(struct worker *w, char *err, size_t errlen)
{
	struct config_problems probs = {0};
	struct config *cfg = config_load(w->cfg->config_file, &probs);
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
	struct config *old = w->cfg;
	bool server_tls_changed = server_tls_differs(old, cfg);
	worker_apply_config(w, cfg);
	tls_ctx_free(w->tls_accept);
	tls_ctx_free(w->tls_connect);
	w->tls_accept = tls_accept;
	w->tls_connect = tls_connect;
	if (server_tls_changed)
		reconnect_all_servers(w);
	apply_userlist(w, ul);
	app_setup_logging(cfg);
	config_free(old);
	log_info("configuration reloaded");
	return true;
}

void app_shutdown(struct worker *w, int mode)
{
	if (mode == 0) {
		log_info("immediate shutdown");
		event_base_loopbreak(w->base);
		return;
	}
	w->shutting_down = true;
	w->shutdown_mode = mode;
	listener_stop();
	log_info("shutdown requested: waiting for %s", mode == 1 ? "servers to be released"
								 : "clients to leave");
	worker_check_shutdown(w);
}


/* ---- workers ---- */

static struct worker *workers[APP_MAX_WORKERS];
static int n_workers;

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

void app_world_stop(struct worker *self)
{
	(void)self;
}

void app_world_resume(struct worker *self)
{
	(void)self;
}
