/* listener: listening sockets (TCP and unix), accept, and the file descriptor limit. */
#ifndef PGT_LISTENER_H
#define PGT_LISTENER_H

#include <stdbool.h>

struct worker;
struct config;

/*
 * Open the sockets the config asks for and start accepting on w: TCP on every worker
 * (SO_REUSEPORT when there are several), the unix socket on worker 0 only, which hands
 * connections round-robin to all workers. false when none opened.
 */
bool listener_start(struct worker *w, const struct config *cfg);

/* Stop accepting on w (shutdown) and close its sockets; removes the unix socket file. */
void listener_stop(struct worker *w);

/* Raise RLIMIT_NOFILE to cover max_client_conn plus the pools; warn when it cannot. */
void listener_raise_fd_limit(const struct config *cfg);

#endif
