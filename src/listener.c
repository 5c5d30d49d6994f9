/* listener: listening sockets (TCP and unix), accept, and the file descriptor limit. */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netdb.h>
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

struct listener {
	struct listener *next;
	struct event *ev;
	struct worker *w;
	int fd;
	bool is_unix;
	unsigned next_worker; /* unix socket with several workers: round-robin hand-off */
	char *path;
};

static void accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;
	(void)what;
	worker_tick(l->w);
	/* Take what is queued, but not forever: other connections need the loop too. */
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int cfd = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
			    errno == ECONNABORTED)
				return;
			if (errno == EMFILE || errno == ENFILE)
				log_warning("accept failed: %s (raise ulimit -n or lower "
					    "max_client_conn)",
					    strerror(errno));
			else
				log_warning("accept failed: %s", strerror(errno));
			return;
		}
		if (l->w->shutting_down) {
			close(cfd);
			continue;
		}
		/* Only worker 0 has the unix socket: it deals the connections out in turn. */
		int nw = app_nworkers();
		int target = l->is_unix && nw > 1 ? (int)(l->next_worker++ % (unsigned)nw) : l->w->id;
		if (target != l->w->id)
			app_post_adopt(target, cfd, (struct sockaddr *)&ss, len, true);
		else
			client_accept(l->w, cfd, (struct sockaddr *)&ss, len, l->is_unix);
	}
}

static bool add_listener(struct worker *w, int fd, bool is_unix, const char *path)
{
	struct listener *l = calloc(1, sizeof(*l));
	if (!l)
		return false;
	l->fd = fd;
	l->w = w;
	l->is_unix = is_unix;
	l->path = path ? strdup(path) : NULL;
	l->ev = event_new(w->base, fd, EV_READ | EV_PERSIST, accept_cb, l);
	event_add(l->ev, NULL);
	l->next = w->listeners;
	w->listeners = l;
	return true;
}

static int listen_tcp(struct worker *w, const char *host, int port, bool reuseport)
{
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
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
			log_error("cannot listen on %s:%d: %s", host, port, strerror(errno));
			close(fd);
			continue;
		}
		if (add_listener(w, fd, false, NULL))
			n_ok++;
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
			if (listen_tcp(w, h, cfg->listen_port, reuseport) > 0) {
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
			    listen(fd, 4096) < 0) {
				log_error("cannot listen on %s: %s", sun.sun_path, strerror(errno));
				close(fd);
			} else {
				chmod(sun.sun_path, (mode_t)cfg->unix_socket_mode);
				if (cfg->unix_socket_group && *cfg->unix_socket_group) {
					struct group *gr = getgrnam(cfg->unix_socket_group);
					if (!gr || chown(sun.sun_path, (uid_t)-1, gr->gr_gid) < 0)
						log_warning("cannot give %s to group %s", sun.sun_path,
							    cfg->unix_socket_group);
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
		int ps = cfg->dbs[i].pool_size >= 0 ? cfg->dbs[i].pool_size : cfg->default_pool_size;
		pools += (rlim_t)ps + (rlim_t)(cfg->reserve_pool_size > 0 ? cfg->reserve_pool_size : 0);
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
