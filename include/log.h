/* log: leveled logging to stderr, a logfile and/or syslog. */
#ifndef PGT_LOG_H
#define PGT_LOG_H

#include <stdbool.h>

enum log_level {
	LOG_LVL_FATAL = 0,
	LOG_LVL_ERROR,
	LOG_LVL_WARNING,
	LOG_LVL_INFO,  /* the default */
	LOG_LVL_DEBUG, /* verbose=1 */
	LOG_LVL_NOISE, /* verbose=2 */
};

/* The current level; messages above it are not formatted at all. */
extern int log_level_cur;

/*
 * Configure outputs. logfile may be NULL or "" (no file); to_stderr is false when
 * daemonized or quiet; syslog_ident non-NULL turns syslog on. Safe to call again on reload.
 */
void log_setup(const char *logfile, bool to_stderr, const char *syslog_ident, int level);

/*
 * Batching (log.c): while a thread's event loop runs, its LOG, DEBUG and NOISE lines wait in a
 * buffer; WARNING and worse, and lines from threads without a loop, are written at once, after
 * what waits. A loop calls log_flush_if_due() as its callbacks start (worker_tick), which writes
 * the buffer out once its first line is LOG_BATCH_USEC old. For a loop that has nothing more to
 * do, arm(arg) is called, in the thread, whenever one of its lines finds the buffer empty: it
 * must get log_flush() called from the thread's loop within LOG_IDLE_USEC, and calling it again
 * may push that time back (a timer added again), so that a busy loop never wakes for it.
 * log_batch_stop() ends batching for the thread and flushes.
 */
enum { LOG_BATCH_USEC = 10000, LOG_IDLE_USEC = 100000 };
void log_batch_start(void (*arm)(void *), void *arg);
void log_batch_stop(void);
void log_flush(void);

/* When the waiting lines are due (gettimeofday microseconds), 0 when none wait. */
extern unsigned long long log_due_usec;

static inline void log_flush_if_due(unsigned long long now_usec)
{
	unsigned long long due = __atomic_load_n(&log_due_usec, __ATOMIC_RELAXED);
	if (due && now_usec >= due)
		log_flush();
}

/* syslog facility by name (auth, authpriv, daemon, user, local0..local7); false if unknown.
 * Takes effect at the next log_setup(). */
bool log_set_syslog_facility(const char *name);

/*
 * v in decimal, written backwards so that it ends (NUL-terminated) just before end; returns
 * where it starts. end - 21 bytes are enough. For log lines built without snprintf.
 */
static inline char *log_fmt_uint(char *end, unsigned long long v)
{
	*--end = '\0';
	do
		*--end = (char)('0' + v % 10);
	while (v /= 10);
	return end;
}

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_at(lvl, ...)                                                                            \
	do {                                                                                           \
		if ((int)(lvl) <= log_level_cur)                                                       \
			log_msg((lvl), __VA_ARGS__);                                                   \
	} while (0)

#define log_fatal(...) log_at(LOG_LVL_FATAL, __VA_ARGS__)
#define log_error(...) log_at(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warning(...) log_at(LOG_LVL_WARNING, __VA_ARGS__)
#define log_info(...) log_at(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_noise(...) log_at(LOG_LVL_NOISE, __VA_ARGS__)

#endif
