/* app: process-wide control shared by signals and the admin console. */
#ifndef PGT_APP_H
#define PGT_APP_H

#include <stdbool.h>
#include <stddef.h>

struct worker;

#define PGTALLY_VERSION "0.1.0"

/* Re-read the config file and auth_file; false (with a message) when the new config is bad. */
bool app_reload(struct worker *w, char *err, size_t errlen);

/* mode: 0 immediate, 1 when servers are released (SIGINT), 2 when clients are gone (SIGTERM). */
void app_shutdown(struct worker *w, int mode);

#endif
