/* app: process-wide control shared by signals and the admin console. */
#ifndef PGT_APP_H
#define PGT_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct worker;
struct config;
struct config_problems;
struct userlist;

/* Command-line flags that outlive start-up (logging after a reload). */
extern bool app_opt_quiet;
extern bool app_opt_daemon;
extern int app_opt_verbose;

void app_log_problems(const struct config_problems *probs);
void app_setup_logging(const struct config *cfg);
/* Load auth_file (warning when others may read it); NULL with err on failure. */
struct userlist *app_load_userlist(const struct config *cfg, char *err, size_t errlen);

#define PGTALLY_VERSION "0.1.0"

/* Re-read the config file and auth_file for every worker (stopping the world); false (with a
 * message) when the new config is bad. */
bool app_reload(struct worker *w, char *err, size_t errlen);

/*
 * Workers (workers = N): event loops in threads. Each owns its clients, servers, pools,
 * fingerprint table and N+1 findings. Worker 0 runs in the main thread and also owns the
 * signals, the unix socket (it hands accepted connections round-robin to the others) and the
 * metrics endpoint; TCP listeners are opened by every worker with SO_REUSEPORT.
 */
#define APP_MAX_WORKERS 64

int app_nworkers(void);
/* worker_create/worker_free add and remove themselves; the index becomes w->id. */
bool app_worker_register(struct worker *w);
void app_worker_unregister(struct worker *w);
/* Worker i, or NULL when i is out of range: `for (i = 0; (w = app_worker(i)); i++)`. */
struct worker *app_worker(int i);

/*
 * Stop the world: every other worker parks between two callbacks until app_world_resume(),
 * so the caller may read and change any worker's state (the console, /metrics, reload,
 * signals). Costs a wake-up per worker; never use it on the data path. Nested calls are
 * not allowed. Both are no-ops with one worker.
 */
void app_world_stop(struct worker *self);
void app_world_resume(struct worker *self);

/* mode: 0 immediate, 1 when servers are released (SIGINT), 2 when clients are gone (SIGTERM).
 * Every worker; stops the world itself (nesting inside a stop is fine). */
void app_shutdown(struct worker *self, int mode);

/* PAUSE / RESUME (SIGUSR1, SIGUSR2) on every worker. */
void app_set_paused(struct worker *self, bool paused);

/*
 * Run the workers: start threads for workers 1..N-1, run worker 0 in this thread, and
 * return when every loop has ended. false when a thread could not be started.
 */
bool app_run(void);
/* Have all loops but worker 0's ended? (worker 0 ends last) */
bool app_others_ended(void);

/*
 * Server-connection counts over all workers, for pool_size, max_db_connections and
 * max_user_connections: one per pool ('p', db, user), database ('d', db, NULL) and user
 * ('u', user, NULL). Found or made once when the worker's object is made; kept until exit.
 */
struct app_counter {
	_Atomic int n;
	_Atomic uint64_t want; /* bit i: worker i has clients waiting and hit the limit */
	void *_Atomic welcome; /* pools: the first login's parameters, one malloc block (pool.c) */
};
struct app_counter *app_counter_get(char kind, const char *a, const char *b);
/* Add one if that stays within limit (limit <= 0: no limit); false when it would not. */
bool app_counter_take(struct app_counter *c, int limit);
void app_counter_put(struct app_counter *c);
void app_counters_free(void);

/* Client connections over all workers, for max_client_conn: add d, return the new total. */
int app_clients_add(int d);

/* Jobs for another worker, carried out in its loop. */
struct sockaddr;
void app_post_adopt(int target, int fd, const struct sockaddr *sa, unsigned len, bool is_unix);
void app_post_cancel(int target, uint32_t pid, uint32_t key);
/* Ask the workers in mask (bit i = worker i) to look at their pools again (pool_rebalance). */
void app_kick(uint64_t mask);

#endif
