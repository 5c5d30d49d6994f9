/* listener: listening sockets (TCP and unix), accept, and the file descriptor limit. */
#ifndef PGT_LISTENER_H
#define PGT_LISTENER_H

#include <stdbool.h>

struct worker;
struct config;

/* Open every socket the config asks for and start accepting on w. false when none opened. */
bool listener_start(struct worker *w, const struct config *cfg);

/* Stop accepting (shutdown) and close the sockets; removes the unix socket file. */
void listener_stop(void);

/* Raise RLIMIT_NOFILE to cover max_client_conn plus the pools; warn when it cannot. */
void listener_raise_fd_limit(const struct config *cfg);

#endif
