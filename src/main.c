/* main: command line, config loading, daemonizing, signals and the event loop. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "config.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "tls.h"
#include "userlist.h"
#include "worker.h"

static void usage(FILE *out)
{
	fprintf(out,
		"pgtally " PGTALLY_VERSION " - a PostgreSQL connection pooler that counts queries\n"
		"\n"
		"Usage: pgtally [OPTION]... CONFIG_FILE\n"
		"\n"
		"  -d, --daemon      run in the background (needs logfile or syslog)\n"
		"  -q, --quiet       do not log to stderr\n"
		"  -v, --verbose     log more (repeat for even more)\n"
		"  -u, --user=USER   run as USER (when started as root)\n"
		"      --check       check CONFIG_FILE, report every problem, and exit\n"
		"  -V, --version     print the version and exit\n"
		"  -h, --help        print this help and exit\n"
		"\n"
		"Signals: SIGHUP reload, SIGINT safe shutdown, SIGTERM wait for clients (twice:\n"
		"immediate), SIGQUIT immediate, SIGUSR1 pause, SIGUSR2 resume.\n");
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct worker *w = arg;
	char err[256];
	(void)what;
	worker_tick(w);
	switch (sig) {
	case SIGHUP:
		log_info("got SIGHUP, reloading");
		(void)app_reload(w, err, sizeof(err));
		break;
	case SIGINT:
		log_info("got SIGINT");
		app_shutdown(w, w->shutdown_mode == 1 ? 0 : 1);
		break;
	case SIGTERM:
		log_info("got SIGTERM");
		app_shutdown(w, w->shutdown_mode == 2 ? 0 : 2);
		break;
	case SIGQUIT:
		log_info("got SIGQUIT");
		app_shutdown(w, 0);
		break;
	case SIGUSR1:
		log_info("got SIGUSR1, pausing");
		app_set_paused(w, true);
		break;
	case SIGUSR2:
		log_info("got SIGUSR2, resuming");
		app_set_paused(w, false);
		break;
	default:
		break;
	}
}

static bool drop_privileges(const char *user)
{
	struct passwd *pw = getpwnam(user);
	if (!pw) {
		log_fatal("unknown user %s", user);
		return false;
	}
	if (getuid() == pw->pw_uid)
		return true;
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		log_fatal("cannot become user %s: %s", user, strerror(errno));
		return false;
	}
	return true;
}

static bool daemonize(void)
{
	pid_t pid = fork();
	if (pid < 0)
		return false;
	if (pid > 0)
		_exit(0);
	setsid();
	pid = fork();
	if (pid < 0)
		return false;
	if (pid > 0)
		_exit(0);
	int fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	return true;
}

/* The pid in a pidfile, or 0 when there is none (no file, or not a number). */
static pid_t read_pidfile(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	long pid = 0;
	if (fscanf(f, "%ld", &pid) != 1 || pid <= 0)
		pid = 0;
	fclose(f);
	return (pid_t)pid;
}

/*
 * As PgBouncer: refuse to start while the pidfile names a running process (another pgtally
 * with the same file); a stale one is taken over.
 */
static bool check_pidfile(const char *path)
{
	pid_t pid = read_pidfile(path);
	if (pid <= 0 || pid == getpid())
		return true;
	if (kill(pid, 0) == 0 || errno == EPERM) {
		log_fatal("pidfile %s names process %d, which is running: another instance? "
			  "(remove the file if it is not pgtally)",
			  path, (int)pid);
		return false;
	}
	log_info("pidfile %s is stale (process %d is gone); taking it over", path, (int)pid);
	return true;
}

static bool write_pidfile(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		log_fatal("cannot write pidfile %s: %s", path, strerror(errno));
		return false;
	}
	fprintf(f, "%d\n", (int)getpid());
	fclose(f);
	return true;
}

/* auth_type hba and cert load (they are PgBouncer's) but pgtally cannot serve them. */
static bool auth_type_supported(const struct config *cfg, char *err, size_t errlen)
{
	if (cfg->auth_type != AUTH_TYPE_HBA && cfg->auth_type != AUTH_TYPE_CERT)
		return true;
	snprintf(err, errlen, "auth_type %s is not supported by pgtally",
		 cfg->auth_type == AUTH_TYPE_HBA ? "hba" : "cert");
	return false;
}

/* --check refuses what the start refuses: the auth_type, and the TLS contexts it builds. */
static bool check_startup(const struct config *cfg, char *err, size_t errlen)
{
	if (!auth_type_supported(cfg, err, errlen))
		return false;
	struct tls_ctx *acc = NULL, *con = NULL;
	char why[224];
	if (!tls_ctx_load(cfg, &acc, &con, why, sizeof(why))) {
		snprintf(err, errlen, "TLS: %s", why);
		return false;
	}
	tls_ctx_free(acc);
	tls_ctx_free(con);
	return true;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"daemon", no_argument, NULL, 'd'},  {"quiet", no_argument, NULL, 'q'},
		{"verbose", no_argument, NULL, 'v'}, {"user", required_argument, NULL, 'u'},
		{"version", no_argument, NULL, 'V'}, {"help", no_argument, NULL, 'h'},
		{"check", no_argument, NULL, 'C'},   {"reboot", no_argument, NULL, 'R'},
		{NULL, 0, NULL, 0},
	};
	const char *run_as = NULL;
	bool check = false;
	int opt;

	while ((opt = getopt_long(argc, argv, "dqvu:VhR", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			app_opt_daemon = true;
			break;
		case 'q':
			app_opt_quiet = true;
			break;
		case 'v':
			app_opt_verbose++;
			break;
		case 'u':
			run_as = optarg;
			break;
		case 'V':
			printf("pgtally %s\n", PGTALLY_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		case 'C':
			check = true;
			break;
		case 'R':
			fprintf(stderr, "pgtally: -R (online restart) is not supported\n");
			return 1;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 1;
	}
	const char *cfgpath = argv[optind];
	if (check)
		return config_check_file_with(cfgpath, stdout, check_startup);

	log_setup(NULL, !app_opt_quiet, NULL, LOG_LVL_INFO + app_opt_verbose);
	struct config_problems probs = {0};
	struct config *cfg = config_load(cfgpath, &probs);
	app_log_problems(&probs);
	config_problems_free(&probs);
	if (!cfg) {
		log_fatal("cannot load config file %s", cfgpath);
		return 1;
	}

	/* From here on every way out goes through `out`, which frees what was made. */
	int rc = 1;
	char err[256] = "";
	struct userlist *ul = NULL;
	struct tls_ctx *tls_accept = NULL, *tls_connect = NULL;
	struct worker *w = NULL; /* worker 0: signals, the unix socket, metrics */
	struct metrics *metrics = NULL;
	struct event *sigev[6] = {0};
	static const int sigs[] = {SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGUSR1, SIGUSR2};

	if (app_opt_daemon && (!cfg->logfile || !*cfg->logfile) && !cfg->syslog) {
		log_fatal("in daemon mode, set logfile or syslog in the config");
		goto out;
	}
	app_setup_logging(cfg);
	if (cfg->auth_file && *cfg->auth_file) {
		ul = app_load_userlist(cfg, err, sizeof(err));
		if (!ul) {
			log_fatal("cannot load auth_file: %s", err);
			goto out;
		}
	}
	if (!auth_type_supported(cfg, err, sizeof(err))) {
		log_fatal("%s", err);
		goto out;
	}
	/* Before dropping privileges: key files are often readable by root only. */
	if (!tls_ctx_load(cfg, &tls_accept, &tls_connect, err, sizeof(err))) {
		log_fatal("TLS: %s", err);
		goto out;
	}

	signal(SIGPIPE, SIG_IGN);
	listener_raise_fd_limit(cfg);
	if (cfg->pidfile && *cfg->pidfile && !check_pidfile(cfg->pidfile))
		goto out;
	if (app_opt_daemon) {
		if (!daemonize()) {
			log_fatal("cannot daemonize: %s", strerror(errno));
			goto out;
		}
		app_setup_logging(cfg); /* a new pid, and the log file as seen from here */
	}

	/* The workers share the config, the auth_file and the TLS contexts. */
	for (int i = 0; i < cfg->workers; i++) {
		struct worker *wk = worker_create(cfg);
		if (!wk) {
			log_fatal("cannot create event loop %d", i);
			goto out;
		}
		wk->users_file = ul;
		wk->tls_accept = tls_accept;
		wk->tls_connect = tls_connect;
	}
	w = app_worker(0);
	ul = NULL; /* the workers own them now */
	tls_accept = tls_connect = NULL;
	/* Worker 0 must listen; the others may have nothing (unix socket only: hand-offs). */
	for (int i = 0; i < cfg->workers; i++) {
		if (!listener_start(app_worker(i), cfg) && i == 0) {
			log_fatal("no listening socket could be opened");
			goto out;
		}
	}
	metrics = metrics_start(w);
	if (!metrics) {
		log_fatal("cannot start the metrics endpoint (metrics_listen)");
		goto out;
	}
	const char *user = run_as ? run_as : (cfg->user && *cfg->user ? cfg->user : NULL);
	if (user && getuid() == 0 && !drop_privileges(user))
		goto out;
	if (cfg->pidfile && *cfg->pidfile && !write_pidfile(cfg->pidfile))
		goto out;

	for (int i = 0; i < 6; i++) {
		sigev[i] = evsignal_new(w->base, sigs[i], signal_cb, w);
		event_add(sigev[i], NULL);
	}
	for (int i = 0; i < cfg->workers; i++)
		worker_start_janitor(app_worker(i));
	log_info("pgtally %s started with %d worker%s", PGTALLY_VERSION, cfg->workers,
		 cfg->workers == 1 ? "" : "s");
	if (app_run())
		rc = 0;

out:
	for (int i = 0; i < app_nworkers(); i++)
		listener_stop(app_worker(i));
	for (int i = 0; i < 6; i++)
		if (sigev[i])
			event_free(sigev[i]);
	metrics_free(metrics);
	if (w) {
		cfg = w->cfg; /* RELOAD may have replaced it, and the TLS contexts */
		if (w->users_file)
			userlist_free(w->users_file);
		tls_accept = w->tls_accept;
		tls_connect = w->tls_connect;
	}
	/* Last first: worker_free renumbers the ones after it. */
	while (app_nworkers() > 0)
		worker_free(app_worker(app_nworkers() - 1));
	app_counters_free();
	if (ul)
		userlist_free(ul);
	tls_ctx_free(tls_accept);
	tls_ctx_free(tls_connect);
	if (rc == 0 && cfg->pidfile && *cfg->pidfile && read_pidfile(cfg->pidfile) == getpid())
		unlink(cfg->pidfile); /* only our own */
	config_free(cfg);
	if (rc == 0)
		log_info("pgtally stopped");
	return rc;
}
