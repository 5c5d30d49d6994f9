/* app: process-wide control shared by signals and the admin console. */
#ifndef PGT_APP_H
#define PGT_APP_H

#include <stdbool.h>
#include <stddef.h>

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

/* Re-read the config file and auth_file; false (with a message) when the new config is bad. */
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

/* mode: 0 immediate, 1 when servers are released (SIGINT), 2 when clients are gone (SIGTERM). */
void app_shutdown(struct worker *w, int mode);

#endif
