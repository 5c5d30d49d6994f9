/* listener: listening sockets (TCP and unix), accept, and the file descriptor limit. */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "app.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "worker.h"

/*
 * The TCP options a listening socket carries. Linux copies them to every socket accept()
 * returns, so a client connection costs no setsockopt: they are set here once, and again
 * when RELOAD or SET changes them. 0 in a keepalive field means "the system's value".
 */
struct tcp_applied {
	int defer_accept; /* seconds, 0 = off */
	int keepalive;
	int keep[3]; /* keep_fields order */
	int user_timeout;
};

/* The keepalive settings: option, config field, and the sysctl with the system's value. */
static const struct keep_field {
	int opt;
	size_t cfg_offset;
	const char *name;
	const char *sysctl;
	int fallback;
} keep_fields[3] = {
	{TCP_KEEPCNT, offsetof(struct config, tcp_keepcnt), "tcp_keepcnt", "tcp_keepalive_probes",
	 9},
	{TCP_KEEPIDLE, offsetof(struct config, tcp_keepidle), "tcp_keepidle", "tcp_keepalive_time",
	 7200},
	{TCP_KEEPINTVL, offsetof(struct config, tcp_keepintvl), "tcp_keepintvl",
	 "tcp_keepalive_intvl", 75},
};

static int keep_value(const struct config *cfg, const struct keep_field *k)
{
	return *(const int *)(const void *)((const char *)cfg + k->cfg_offset);
}

struct listener {
	struct listener *next;
	struct event *ev;
	struct event *retry; /* after an accept error: the listener back on (accept_resume_cb) */
	struct worker *w;
	int fd;
	bool is_unix;
	unsigned next_worker; /* unix socket with several workers: round-robin hand-off */
	char *path;
	struct tcp_applied tcp; /* TCP listeners only */
};

/* PgBouncer's tcp_defer_accept is a switch; the time it sets is 45 seconds. */
#define DEFER_ACCEPT_SECONDS 45

static bool set_int_opt(int fd, int level, int name, int value, const char *what)
{
	if (setsockopt(fd, level, name, &value, sizeof(value)) == 0)
		return true;
	log_warning("cannot set %s = %d on a socket: %s", what, value, strerror(errno));
	return false;
}

/* The system's value of a keepalive setting (net.ipv4.tcp_keepalive_*). */
static int system_keepalive(const struct keep_field *k)
{
	char path[96], buf[32];
	snprintf(path, sizeof(path), "/proc/sys/net/ipv4/%s", k->sysctl);
	FILE *f = fopen(path, "r");
	if (!f)
		return k->fallback;
	int v = fgets(buf, sizeof(buf), f) ? atoi(buf) : 0;
	fclose(f);
	return v > 0 ? v : k->fallback;
}

/* Set option to want on l unless it has it already; *applied remembers what it has. */
static void tune_one(struct listener *l, int *applied, int level, int opt, int want, int value,
		     const char *what)
{
	if (*applied != want && set_int_opt(l->fd, level, opt, value, what))
		*applied = want;
}

static void tune_listener(struct listener *l, const struct config *cfg)
{
	struct tcp_applied *a = &l->tcp;
	int defer = cfg->tcp_defer_accept ? DEFER_ACCEPT_SECONDS : 0;
	tune_one(l, &a->defer_accept, IPPROTO_TCP, TCP_DEFER_ACCEPT, defer, defer,
		 "tcp_defer_accept");
	tune_one(l, &a->keepalive, SOL_SOCKET, SO_KEEPALIVE, cfg->tcp_keepalive, cfg->tcp_keepalive,
		 "tcp_keepalive");
	for (size_t i = 0; i < 3; i++) {
		const struct keep_field *k = &keep_fields[i];
		int want = keep_value(cfg, k);
		/* 0 is "the system's value", which a listener set before must be given back */
		if (a->keep[i] != want)
			tune_one(l, &a->keep[i], IPPROTO_TCP, k->opt, want,
				 want > 0 ? want : system_keepalive(k), k->name);
	}
	tune_one(l, &a->user_timeout, IPPROTO_TCP, TCP_USER_TIMEOUT, cfg->tcp_user_timeout,
		 cfg->tcp_user_timeout, "tcp_user_timeout");
}

void listener_tune_all(const struct config *cfg)
{
	struct worker *w;
	for (int i = 0; (w = app_worker(i)); i++)
		for (struct listener *l = w->listeners; l; l = l->next)
			if (!l->is_unix)
				tune_listener(l, cfg);
}

void tcp_tune_socket(int fd, const struct config *cfg, bool connected)
{
	if (connected) {
		set_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
		if (cfg->tcp_keepalive)
			set_int_opt(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "tcp_keepalive");
		for (size_t i = 0; cfg->tcp_keepalive && i < 3; i++)
			if (keep_value(cfg, &keep_fields[i]) > 0)
				set_int_opt(fd, IPPROTO_TCP, keep_fields[i].opt,
					    keep_value(cfg, &keep_fields[i]), keep_fields[i].name);
		if (cfg->tcp_user_timeout > 0)
			set_int_opt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, cfg->tcp_user_timeout,
				    "tcp_user_timeout");
	}
	if (cfg->tcp_socket_buffer > 0) {
		set_int_opt(fd, SOL_SOCKET, SO_SNDBUF, cfg->tcp_socket_buffer, "tcp_socket_buffer");
		set_int_opt(fd, SOL_SOCKET, SO_RCVBUF, cfg->tcp_socket_buffer, "tcp_socket_buffer");
	}
}

/*
 * After accept4 failed for want of something (descriptors, memory), the connection is still
 * queued and the listener readable: trying again at every loop turn would spin and log each
 * time. The listener rests this long instead; the kernel keeps the connections queued.
 */
#define ACCEPT_RETRY_USEC 500000

static void accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;
	(void)fd;
	(void)what;
	event_add(l->ev, NULL);
}

/*
 * Errors of one connection rather than of the listener: accept(2) on Linux passes a pending
 * network error of the new connection as its own, to be treated like EAGAIN.
 */
static bool accept_error_transient(int e)
{
	switch (e) {
	case EAGAIN:
#if EWOULDBLOCK != EAGAIN
	case EWOULDBLOCK:
#endif
	case EINTR:
	case ECONNABORTED:
	case EPROTO:
	case ENOPROTOOPT:
	case EHOSTDOWN:
	case ENONET:
	case EHOSTUNREACH:
	case EOPNOTSUPP:
	case ENETDOWN:
	case ENETUNREACH:
	case EPERM: /* a firewall rule refused it */
		return true;
	default:
		return false;
	}
}

static void accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;
	(void)what;
	worker_tick(l->w);
	/*
	 * One connection per call. The listener is level-triggered: while more are queued, the
	 * next epoll_wait, which the loop makes anyway, reports it again. Taking all that are
	 * queued would end every call with an accept4 that fails with EAGAIN, and with clients
	 * that connect one at a time (CONN_MAX_AGE = 0) that was one system call per connection.
	 */
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int cfd = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0) {
		if (accept_error_transient(errno))
			return;
		if (errno == EMFILE || errno == ENFILE)
			log_warning("accept failed: %s (raise ulimit -n or lower max_client_conn)",
				    strerror(errno));
		else
			log_warning("accept failed: %s", strerror(errno));
		struct timeval tv = {0, ACCEPT_RETRY_USEC};
		event_del(l->ev);
		event_add(l->retry, &tv);
		return;
	}
	if (l->w->shutting_down) {
		close(cfd);
		return;
	}
	/* Only worker 0 has the unix socket: it deals the connections out in turn. */
	int nw = app_nworkers();
	int target = l->is_unix && nw > 1 ? (int)(l->next_worker++ % (unsigned)nw) : l->w->id;
	if (target != l->w->id)
		app_post_adopt(target, cfd, (struct sockaddr *)&ss, len, true);
	else
		client_accept(l->w, cfd, (struct sockaddr *)&ss, len, l->is_unix);
}

static bool add_listener(struct worker *w, int fd, bool is_unix, const char *path)
{
	struct listener *l = calloc(1, sizeof(*l));
	if (!l) {
		close(fd);
		return false;
	}
	l->fd = fd;
	l->w = w;
	l->is_unix = is_unix;
	l->path = path ? strdup(path) : NULL;
	l->ev = event_new(w->base, fd, EV_READ | EV_PERSIST, accept_cb, l);
	l->retry = evtimer_new(w->base, accept_resume_cb, l);
	if (!l->ev || !l->retry) {
		if (l->ev)
			event_free(l->ev);
		if (l->retry)
			event_free(l->retry);
		close(fd);
		free(l->path);
		free(l);
		return false;
	}
	event_add(l->ev, NULL);
	l->next = w->listeners;
	w->listeners = l;
	return true;
}

static int listen_tcp(struct worker *w, const struct config *cfg, const char *host, bool reuseport)
{
	int port = cfg->listen_port;
	struct addrinfo hints, *res = NULL, *ai;
	char portstr[16];
	int n_ok = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%d", port);
	int rc = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, portstr, &hints, &res);
	if (rc != 0) {
		log_error("cannot resolve listen_addr %s: %s", host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (reuseport)
			setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		/* inherited by every accepted socket, like the options tune_listener sets */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
		    listen(fd, cfg->listen_backlog) < 0) {
			log_error("cannot listen on %s:%d: %s", host, port, strerror(errno));
			close(fd);
			continue;
		}
		if (add_listener(w, fd, false, NULL)) {
			tune_listener(w->listeners, cfg);
			n_ok++;
		}
	}
	freeaddrinfo(res);
	return n_ok;
}

bool listener_start(struct worker *w, const struct config *cfg)
{
	int opened = 0;

	if (cfg->listen_addr && *cfg->listen_addr) {
		char *list = strdup(cfg->listen_addr);
		char *save = NULL;
		/* Several workers each listen on the port: the kernel spreads connections. */
		bool reuseport = cfg->so_reuseport || app_nworkers() > 1;
		for (char *h = strtok_r(list, ", ", &save); h; h = strtok_r(NULL, ", ", &save)) {
			if (listen_tcp(w, cfg, h, reuseport) > 0) {
				if (w->id == 0)
					log_info("listening on %s:%d", h, cfg->listen_port);
				opened++;
			}
		}
		free(list);
	}
	if (w->id == 0 && cfg->unix_socket_dir && *cfg->unix_socket_dir) {
		struct sockaddr_un sun;
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		int n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/.s.PGSQL.%d",
				 cfg->unix_socket_dir, cfg->listen_port);
		int fd = -1;
		if (n > 0 && (size_t)n < sizeof(sun.sun_path))
			fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd >= 0) {
			unlink(sun.sun_path);
			if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
			    listen(fd, cfg->listen_backlog) < 0) {
				log_error("cannot listen on %s: %s", sun.sun_path, strerror(errno));
				close(fd);
			} else {
				chmod(sun.sun_path, (mode_t)cfg->unix_socket_mode);
				if (cfg->unix_socket_group && *cfg->unix_socket_group) {
					struct group *gr = getgrnam(cfg->unix_socket_group);
					if (!gr || chown(sun.sun_path, (uid_t)-1, gr->gr_gid) < 0)
						log_warning("cannot give %s to group %s",
							    sun.sun_path, cfg->unix_socket_group);
				}
				if (add_listener(w, fd, true, sun.sun_path)) {
					log_info("listening on %s", sun.sun_path);
					opened++;
				}
			}
		}
	}
	return opened > 0;
}

void listener_stop(struct worker *w)
{
	while (w->listeners) {
		struct listener *l = w->listeners;
		w->listeners = l->next;
		event_free(l->ev);
		event_free(l->retry);
		close(l->fd);
		if (l->path)
			unlink(l->path);
		free(l->path);
		free(l);
	}
}

void listener_raise_fd_limit(const struct config *cfg)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	rlim_t pools = 0;
	for (size_t i = 0; i < cfg->n_dbs; i++) {
		int ps =
			cfg->dbs[i].pool_size >= 0 ? cfg->dbs[i].pool_size : cfg->default_pool_size;
		pools += (rlim_t)ps +
			 (rlim_t)(cfg->reserve_pool_size > 0 ? cfg->reserve_pool_size : 0);
	}
	rlim_t want = (rlim_t)cfg->max_client_conn + pools * 2 + 100;
	if (rl.rlim_cur >= want)
		return;
	rlim_t target = want;
	if (rl.rlim_max != RLIM_INFINITY && target > rl.rlim_max)
		target = rl.rlim_max;
	rl.rlim_cur = target;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || target < want)
		log_warning("cannot raise the open files limit to %llu (now %llu): clients beyond "
			    "it will be refused",
			    (unsigned long long)want, (unsigned long long)target);
}
