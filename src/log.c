/* log: leveled logging to stderr, a logfile and/or syslog. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
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

/*
 * Outputs (stderr, the logfile) are used under the read side, so workers never wait for each
 * other's syslog(). The write side is log_setup's, so no line goes to a file descriptor it is
 * closing; it is preferred, so lines from busy workers cannot hold a reopen off.
 */
static pthread_rwlock_t log_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
static int log_fd = -1;
static bool log_to_stderr = true;
static bool log_to_syslog;

/*
 * Batches. A thread whose event loop runs (log_batch_start) leaves LOG, DEBUG and NOISE lines
 * in one buffer shared by all threads, in the order they were made, instead of writing each:
 * under connection-per-transaction load the two login and logout lines of every connection,
 * each written to stderr and the logfile, were four of a connection's 27 system calls. The
 * buffer goes out in one write() per output when a line would not fit, when a WARNING, ERROR or
 * FATAL line comes (before it: the order stays), when a thread without a loop logs, at
 * log_setup and log_flush, and when a loop's callback starts once the first line is
 * LOG_BATCH_USEC old (log_flush_if_due). A loop that has nothing to do would not get there, so
 * the thread whose line found the buffer empty also asks its loop for a flush within
 * LOG_IDLE_USEC (the arm callback: a timer, pushed back at every arming, so that it only fires
 * when the loop has gone quiet; a timer that fired every 10 ms cost a busy pooler's CPU more
 * than the writes it saved, each being a wake-up from idle). It is PIPE_BUF long, so a pipe
 * takes each batch whole.
 *
 * Adding a line takes buf_lock for a copy only. A flush takes write_lock, swaps the two
 * buffers under buf_lock and writes the full one with buf_lock released: a worker never waits
 * for another's write(), only a second flush does, and batches go out in the order they were
 * taken. Lock order: log_lock, write_lock, buf_lock.
 */
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t buf_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_bufs[2][4096];
static char *log_buf = log_bufs[0]; /* the one lines are added to */
static size_t log_buf_len;
unsigned long long log_due_usec;
static _Thread_local void (*batch_arm)(void *);
static _Thread_local void *batch_arm_arg;

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

/* Lines, whole: a short write to a file or pipe is continued, an error gives up. */
static void write_line(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return;
		p += k;
		n -= (size_t)k;
	}
}

/* To stderr and the logfile; under log_lock (read side) and write_lock. */
static void write_out(const char *p, size_t n)
{
	if (log_to_stderr)
		write_line(STDERR_FILENO, p, n);
	if (log_fd >= 0)
		write_line(log_fd, p, n);
}

/*
 * Under log_lock (either side) and write_lock: write out what waits, while new lines go to the
 * other buffer. That one is free: whoever swapped it out wrote it before releasing write_lock.
 */
static void flush_writing(void)
{
	pthread_mutex_lock(&buf_lock);
	char *full = log_buf;
	size_t n = log_buf_len;
	log_buf = full == log_bufs[0] ? log_bufs[1] : log_bufs[0];
	log_buf_len = 0;
	__atomic_store_n(&log_due_usec, 0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&buf_lock);
	if (n > 0)
		write_out(full, n);
}

static void flush_now(void)
{
	pthread_mutex_lock(&write_lock);
	flush_writing();
	pthread_mutex_unlock(&write_lock);
}

static const char *const level_names[] = {"FATAL", "ERROR", "WARNING", "LOG", "DEBUG", "NOISE"};
static const int level_syslog[] = {LOG_CRIT, LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG, LOG_DEBUG};

void log_setup(const char *logfile, bool to_stderr, const char *syslog_ident, int level)
{
	pthread_rwlock_wrlock(&log_lock);
	flush_now(); /* what was logged before goes where it was meant to */
	if (log_fd >= 0) {
		close(log_fd);
		log_fd = -1;
	}
	if (logfile && *logfile) {
		log_fd = open(logfile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
		if (log_fd < 0)
			fprintf(stderr, "cannot open logfile %s: %s\n", logfile, strerror(errno));
	}
	log_to_stderr = to_stderr;
	if (log_to_syslog)
		closelog();
	log_to_syslog = syslog_ident != NULL;
	if (log_to_syslog)
		openlog(syslog_ident, LOG_PID, log_facility);
	log_level_cur = level;
	__atomic_store_n(&log_pid_stale, true, __ATOMIC_RELAXED);
	pthread_rwlock_unlock(&log_lock);
}

void log_flush(void)
{
	pthread_rwlock_rdlock(&log_lock);
	flush_now();
	pthread_rwlock_unlock(&log_lock);
}

void log_batch_start(void (*arm)(void *), void *arg)
{
	batch_arm = arm;
	batch_arm_arg = arg;
}

void log_batch_stop(void)
{
	batch_arm = NULL;
	batch_arm_arg = NULL;
	log_flush();
}

static size_t put_str(char *out, const char *s)
{
	size_t n = strlen(s);
	memcpy(out, s, n);
	return n;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	enum { MSG_MAX = 2048 };
	char line[128 + MSG_MAX];
	va_list ap;
	struct timeval tv;
	struct tm tm;

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
	/* getpid() is a system call; the pid only changes when -d forks before logging again. */
	static pid_t pid_cache;
	pid_t pid = __atomic_load_n(&pid_cache, __ATOMIC_RELAXED);
	if (!pid || __atomic_load_n(&log_pid_stale, __ATOMIC_RELAXED)) {
		pid = getpid();
		__atomic_store_n(&pid_cache, pid, __ATOMIC_RELAXED);
		__atomic_store_n(&log_pid_stale, false, __ATOMIC_RELAXED);
	}

	/* "2024-05-01 12:00:00.000 [pid] LEVEL message\n", built once for every output */
	size_t n = stamp_len;
	memcpy(line, stamp_base, n);
	int ms = (int)(tv.tv_usec / 1000);
	line[n++] = '.';
	line[n++] = (char)('0' + ms / 100);
	line[n++] = (char)('0' + ms / 10 % 10);
	line[n++] = (char)('0' + ms % 10);
	line[n++] = ' ';
	line[n++] = '[';
	char num[24];
	n += put_str(line + n, log_fmt_uint(num + sizeof(num), (unsigned long long)pid));
	line[n++] = ']';
	line[n++] = ' ';
	size_t level_at = n;
	n += put_str(line + n, level_names[lvl]);
	line[n++] = ' ';
	va_start(ap, fmt);
	int len = vsnprintf(line + n, MSG_MAX, fmt, ap);
	va_end(ap);
	if (len > 0)
		n += (size_t)len < MSG_MAX ? (size_t)len : MSG_MAX - 1;
	line[n++] = '\n';

	bool batched = lvl >= LOG_LVL_INFO && batch_arm;
	bool arm = false;
	pthread_rwlock_rdlock(&log_lock);
	if ((log_to_stderr || log_fd >= 0) && batched) {
		for (;;) { /* a line is at most 2,177 bytes: after a flush it fits, or soon will */
			pthread_mutex_lock(&buf_lock);
			bool fits = log_buf_len + n <= sizeof(log_bufs[0]);
			if (fits) {
				arm = log_buf_len == 0;
				if (arm)
					__atomic_store_n(&log_due_usec,
							 (unsigned long long)tv.tv_sec * 1000000 +
								 (unsigned long long)tv.tv_usec +
								 LOG_BATCH_USEC,
							 __ATOMIC_RELAXED);
				memcpy(log_buf + log_buf_len, line, n);
				log_buf_len += n;
			}
			pthread_mutex_unlock(&buf_lock);
			if (fits)
				break;
			flush_now();
		}
	} else if (log_to_stderr || log_fd >= 0) {
		pthread_mutex_lock(&write_lock);
		flush_writing(); /* what waits was made before this line */
		write_out(line, n);
		pthread_mutex_unlock(&write_lock);
	}
	if (log_to_syslog) {
		line[n - 1] = '\0';
		syslog(level_syslog[lvl], "%s", line + level_at);
	}
	pthread_rwlock_unlock(&log_lock);
	/* Whoever empties the buffer later, this loop flushes it if idle (early does no harm). */
	if (arm)
		batch_arm(batch_arm_arg);
}
