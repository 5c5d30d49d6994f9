/* log: leveled logging to stderr, a logfile and/or syslog. */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

int log_level_cur = LOG_LVL_INFO;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_file;
static bool log_to_stderr = true;
static bool log_to_syslog;

static int log_facility = LOG_DAEMON;
static bool log_pid_stale; /* set by log_setup: a daemonized process has a new pid */

bool log_set_syslog_facility(const char *name)
{
	static const struct {
		const char *name;
		int facility;
	} names[] = {
		{"auth", LOG_AUTH},     {"authpriv", LOG_AUTHPRIV}, {"daemon", LOG_DAEMON},
		{"user", LOG_USER},     {"local0", LOG_LOCAL0},     {"local1", LOG_LOCAL1},
		{"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3},     {"local4", LOG_LOCAL4},
		{"local5", LOG_LOCAL5}, {"local6", LOG_LOCAL6},     {"local7", LOG_LOCAL7},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(name, names[i].name) == 0) {
			log_facility = names[i].facility;
			return true;
		}
	}
	return false;
}

static const char *const level_names[] = {"FATAL", "ERROR", "WARNING", "LOG", "DEBUG", "NOISE"};
static const int level_syslog[] = {LOG_CRIT, LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG, LOG_DEBUG};

void log_setup(const char *logfile, bool to_stderr, const char *syslog_ident, int level)
{
	pthread_mutex_lock(&log_lock);
	if (log_file) {
		fclose(log_file);
		log_file = NULL;
	}
	if (logfile && *logfile) {
		log_file = fopen(logfile, "a");
		if (log_file)
			setvbuf(log_file, NULL, _IOLBF, 0);
		else
			fprintf(stderr, "cannot open logfile %s: %s\n", logfile, strerror(errno));
	}
	log_to_stderr = to_stderr;
	if (log_to_syslog)
		closelog();
	log_to_syslog = syslog_ident != NULL;
	if (log_to_syslog)
		openlog(syslog_ident, LOG_PID, log_facility);
	log_level_cur = level;
	log_pid_stale = true;
	pthread_mutex_unlock(&log_lock);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	char msg[2048];
	char stamp[64];
	va_list ap;
	struct timeval tv;
	struct tm tm;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	/* The date and time to the second change once a second: format them once per thread. */
	static _Thread_local time_t stamp_sec = -1;
	static _Thread_local char stamp_base[32];
	static _Thread_local size_t stamp_len;
	gettimeofday(&tv, NULL);
	if (tv.tv_sec != stamp_sec) {
		localtime_r(&tv.tv_sec, &tm);
		stamp_len = strftime(stamp_base, sizeof(stamp_base), "%Y-%m-%d %H:%M:%S", &tm);
		stamp_sec = tv.tv_sec;
	}
	memcpy(stamp, stamp_base, stamp_len);
	int ms = (int)(tv.tv_usec / 1000);
	stamp[stamp_len] = '.';
	stamp[stamp_len + 1] = (char)('0' + ms / 100);
	stamp[stamp_len + 2] = (char)('0' + ms / 10 % 10);
	stamp[stamp_len + 3] = (char)('0' + ms % 10);
	stamp[stamp_len + 4] = '\0';

	/* getpid() is a system call; the pid only changes when -d forks before logging again. */
	static pid_t pid_cache;
	pid_t pid = __atomic_load_n(&pid_cache, __ATOMIC_RELAXED);
	if (!pid || log_pid_stale) {
		pid = getpid();
		__atomic_store_n(&pid_cache, pid, __ATOMIC_RELAXED);
		log_pid_stale = false;
	}
	pthread_mutex_lock(&log_lock);
	if (log_to_stderr)
		fprintf(stderr, "%s [%d] %s %s\n", stamp, (int)pid, level_names[lvl], msg);
	if (log_file)
		fprintf(log_file, "%s [%d] %s %s\n", stamp, (int)pid, level_names[lvl], msg);
	if (log_to_syslog)
		syslog(level_syslog[lvl], "%s %s", level_names[lvl], msg);
	pthread_mutex_unlock(&log_lock);
}
