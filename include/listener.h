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

/*
 * TCP options (tcp_defer_accept, tcp_keepalive, tcp_keep*, tcp_user_timeout) live on the
 * listening sockets, whose accepted sockets inherit them (and TCP_NODELAY): a client
 * connection needs no setsockopt. listener_tune_all brings every worker's listeners to cfg
 * after RELOAD or SET; call it with the world stopped. Connections already open keep theirs.
 */
void listener_tune_all(const struct config *cfg);

/*
 * Per-socket TCP options: a server connection (connected: TCP_NODELAY, keepalive, user
 * timeout) and tcp_socket_buffer, which is set on each socket, accepted or connected,
 * because a listener's buffer size could not be set back to automatic.
 */
void tcp_tune_socket(int fd, const struct config *cfg, bool connected);

/* Raise RLIMIT_NOFILE to cover max_client_conn plus the pools; warn when it cannot. */
void listener_raise_fd_limit(const struct config *cfg);

#endif
