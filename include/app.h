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

/* mode: 0 immediate, 1 when servers are released (SIGINT), 2 when clients are gone (SIGTERM). */
void app_shutdown(struct worker *w, int mode);

#endif
