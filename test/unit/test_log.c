/* test_log: unit tests of src/log.c (levels, the logfile, reopening, long and concurrent lines,
 * batches). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define N_THREADS 4
#define LINES_PER_THREAD 500

struct logdir {
	char dir[64];
	char path[128];
};

static int setup_dir(void **state)
{
	struct logdir *d = calloc(1, sizeof(*d));

	if (!d)
		return -1;
	strcpy(d->dir, "/tmp/pgtally-test-log-XXXXXX");
	if (!mkdtemp(d->dir)) {
		free(d);
		return -1;
	}
	snprintf(d->path, sizeof(d->path), "%s/test.log", d->dir);
	*state = d;
	return 0;
}

static int teardown_dir(void **state)
{
	struct logdir *d = *state;

	/* Close our logfile before removing it, and leave the module as a fresh process has it. */
	log_setup(NULL, true, NULL, LOG_LVL_INFO);
	unlink(d->path);
	rmdir(d->dir);
	free(d);
	return 0;
}

/* The whole file as a NUL-terminated string (caller frees), or NULL when it does not exist. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long len;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
	buf[len] = '\0';
	fclose(f);
	return buf;
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (*s == '\n')
			n++;
	return n;
}

static void test_levels_filter(void **state)
{
	struct logdir *d = *state;
	char *text;

	log_setup(d->path, false, NULL, LOG_LVL_INFO);
	assert_int_equal(log_level_cur, LOG_LVL_INFO);
	log_info("info %d", 1);
	log_warning("warning %s", "two");
	log_error("error %d", 3);
	log_debug("debug must not appear");
	log_noise("noise must not appear");
	log_setup(NULL, false, NULL, LOG_LVL_INFO); /* closes, hence flushes, the file */

	text = slurp(d->path);
	assert_non_null(text);
	assert_non_null(strstr(text, " LOG info 1\n"));
	assert_non_null(strstr(text, " WARNING warning two\n"));
	assert_non_null(strstr(text, " ERROR error 3\n"));
	assert_null(strstr(text, "must not appear"));
	assert_int_equal(count_lines(text), 3);
	free(text);
}

static void test_line_format(void **state)
{
	struct logdir *d = *state;
	char expect[64];
	char *text;
	int year, mon, day, hh, mm, ss, ms, pid;
	char level[16], word[16];

	log_setup(d->path, false, NULL, LOG_LVL_INFO);
	log_info("hello");
	log_setup(NULL, false, NULL, LOG_LVL_INFO);

	text = slurp(d->path);
	assert_non_null(text);
	assert_int_equal(sscanf(text, "%4d-%2d-%2d %2d:%2d:%2d.%3d [%d] %15s %15s", &year, &mon,
				&day, &hh, &mm, &ss, &ms, &pid, level, word),
			 10);
	assert_true(year >= 2024);
	assert_in_range(mon, 1, 12);
	assert_in_range(ms, 0, 999);
	assert_int_equal(pid, (int)getpid());
	assert_string_equal(level, "LOG");
	assert_string_equal(word, "hello");
	snprintf(expect, sizeof(expect), "[%d] LOG hello\n", (int)getpid());
	assert_non_null(strstr(text, expect));
	free(text);
}

static void test_debug_level(void **state)
{
	struct logdir *d = *state;
	char *text;

	log_setup(d->path, false, NULL, LOG_LVL_DEBUG);
	log_debug("debug shown");
	log_noise("noise hidden");
	log_setup(d->path, false, NULL, LOG_LVL_NOISE);
	log_noise("noise shown");
	log_setup(NULL, false, NULL, LOG_LVL_INFO);

	text = slurp(d->path);
	assert_non_null(text);
	assert_non_null(strstr(text, " DEBUG debug shown\n"));
	assert_non_null(strstr(text, " NOISE noise shown\n"));
	assert_null(strstr(text, "noise hidden"));
	free(text);
}

/* A reload calls log_setup() again on the same file: earlier lines must survive. */
static void test_reopen_appends(void **state)
{
	struct logdir *d = *state;
	char *text;

	log_setup(d->path, false, NULL, LOG_LVL_INFO);
	log_info("before reopen");
	log_setup(d->path, false, NULL, LOG_LVL_INFO);
	log_info("after reopen");
	log_setup(NULL, false, NULL, LOG_LVL_INFO);

	text = slurp(d->path);
	assert_non_null(text);
	assert_non_null(strstr(text, "before reopen"));
	assert_non_null(strstr(text, "after reopen"));
	assert_true(strstr(text, "before reopen") < strstr(text, "after reopen"));
	free(text);
}

/* A message longer than the internal buffer is cut, not overflowed, and still ends the line. */
static void test_long_message(void **state)
{
	struct logdir *d = *state;
	size_t len = 10000;
	char *big = malloc(len + 1);
	char *text, *start, *end;

	assert_non_null(big);
	memset(big, 'x', len);
	big[len] = '\0';
	log_setup(d->path, false, NULL, LOG_LVL_INFO);
	log_info("%s", big);
	log_info("next line");
	log_setup(NULL, false, NULL, LOG_LVL_INFO);

	text = slurp(d->path);
	assert_non_null(text);
	assert_int_equal(count_lines(text), 2);
	start = strstr(text, " LOG x");
	assert_non_null(start);
	end = strchr(start, '\n');
	assert_non_null(end);
	assert_true(end - start > 1000);
	assert_true((size_t)(end - start) < len);
	assert_non_null(strstr(text, " LOG next line\n"));
	free(text);
	free(big);
}

/* A logfile that cannot be opened is reported but does not stop logging elsewhere. */
static void test_unopenable_logfile(void **state)
{
	struct logdir *d = *state;
	char bad[192];

	snprintf(bad, sizeof(bad), "%s/no-such-dir/x.log", d->dir);
	log_setup(bad, false, NULL, LOG_LVL_WARNING);
	assert_int_equal(log_level_cur, LOG_LVL_WARNING);
	log_warning("goes nowhere, must not crash");
	log_setup(NULL, false, NULL, LOG_LVL_INFO);
	assert_int_equal(access(bad, F_OK), -1);
}

static void *writer(void *arg)
{
	int id = (int)(intptr_t)arg;

	for (int i = 0; i < LINES_PER_THREAD; i++)
		log_info("thread %d line %d end", id, i);
	return NULL;
}

/* N_THREADS threads running fn(thread number) logging to d's file; the file's text after. */
static char *run_writers(const struct logdir *d, void *(*fn)(void *))
{
	pthread_t th[N_THREADS];
	char *text;

	log_setup(d->path, false, NULL, LOG_LVL_INFO);
	for (int i = 0; i < N_THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, fn, (void *)(intptr_t)i), 0);
	for (int i = 0; i < N_THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	log_setup(NULL, false, NULL, LOG_LVL_INFO);
	text = slurp(d->path);
	assert_non_null(text);
	return text;
}

/* Worker threads log at once: every line must arrive whole, none interleaved. */
static void test_concurrent_lines_whole(void **state)
{
	struct logdir *d = *state;
	char *text = run_writers(d, writer), *line, *save = NULL;
	size_t n = 0;

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		int id, i;
		const char *msg = strstr(line, " LOG thread ");

		assert_non_null(msg);
		assert_int_equal(sscanf(msg, " LOG thread %d line %d end", &id, &i), 2);
		assert_in_range(id, 0, N_THREADS - 1);
		assert_in_range(i, 0, LINES_PER_THREAD - 1);
		assert_string_equal(line + strlen(line) - 4, " end");
		n++;
	}
	assert_int_equal(n, N_THREADS * LINES_PER_THREAD);
	free(text);
}

/* ---- batches (log_batch_start) ---- */

static int arms; /* calls of count_arm, the stand-in for a worker's flush timer */

static void count_arm(void *arg)
{
	assert_ptr_equal(arg, &arms);
	arms++;
}

/* The file's text now, "" when it is empty (caller frees). */
static char *now_text(const struct logdir *d)
{
	char *text = slurp(d->path);

	assert_non_null(text);
	return text;
}

/* Nothing in the file yet: the lines still wait in the batch. */
static void assert_nothing_written(const struct logdir *d)
{
	char *text = now_text(d);

	assert_string_equal(text, "");
	free(text);
}

/* Both texts are in the file, first before second. */
static void assert_in_order(const struct logdir *d, const char *first, const char *second)
{
	char *text = now_text(d);
	const char *a = strstr(text, first), *b = strstr(text, second);

	assert_non_null(a);
	assert_non_null(b);
	assert_true(a < b);
	free(text);
}

/* The logfile at d, and this thread logging as a running loop's would. */
static void batch_begin(const struct logdir *d, int level)
{
	log_setup(d->path, false, NULL, level);
	arms = 0;
	log_batch_start(count_arm, &arms);
}

/* LOG lines wait until a flush; the first one into the empty buffer arms the flush, once. */
static void test_batch_waits_for_flush(void **state)
{
	struct logdir *d = *state;
	char *text;

	batch_begin(d, LOG_LVL_DEBUG);
	log_info("first");
	log_debug("second");
	assert_nothing_written(d);
	assert_int_equal(arms, 1);

	log_flush();
	assert_in_order(d, " LOG first\n", " DEBUG second\n");

	log_info("third"); /* the buffer was empty again: a new flush is due */
	assert_int_equal(arms, 2);
	log_batch_stop(); /* flushes */
	text = now_text(d);
	assert_int_equal(count_lines(text), 3);
	assert_non_null(strstr(text, " LOG third\n"));
	free(text);

	log_info("unbatched"); /* no loop in this thread any more: written at once */
	assert_int_equal(arms, 2);
	text = now_text(d);
	assert_non_null(strstr(text, " LOG unbatched\n"));
	free(text);
}

/* A WARNING (or worse) is written at once, after the lines that waited: the order stays. */
static void test_batch_warning_writes_at_once(void **state)
{
	struct logdir *d = *state;
	char *text;

	batch_begin(d, LOG_LVL_INFO);
	log_info("before");
	log_warning("trouble");
	assert_in_order(d, " LOG before\n", " WARNING trouble\n");
	log_info("after");
	log_error("worse");
	assert_in_order(d, " LOG after\n", " ERROR worse\n");
	text = now_text(d);
	assert_int_equal(count_lines(text), 4);
	free(text);
	assert_int_equal(arms, 2);
	log_batch_stop();
}

/* A full buffer goes out by itself, whole lines only; nothing is lost or reordered. */
static void test_batch_full_buffer(void **state)
{
	struct logdir *d = *state;
	char *text, *line, *save = NULL;
	int want = 0;

	batch_begin(d, LOG_LVL_INFO);
	for (int i = 0; i < 200; i++) /* ~60 bytes each: about three buffers' worth */
		log_info("line %03d of the batch", i);
	text = now_text(d);
	size_t written = count_lines(text);
	assert_true(written > 0 && written < 200);
	free(text);
	assert_true(arms >= 2); /* each flush emptied the buffer: the next line armed again */
	log_batch_stop();

	text = now_text(d);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		int i;
		const char *msg = strstr(line, " LOG line ");

		assert_non_null(msg);
		assert_int_equal(sscanf(msg, " LOG line %d of the batch", &i), 1);
		assert_int_equal(i, want);
		want++;
	}
	assert_int_equal(want, 200);
	free(text);
}

/* A reopen (reload) writes what waited to the file it was logged for, not the next one. */
static void test_batch_reopen_flushes_to_old_file(void **state)
{
	struct logdir *d = *state;
	char other[192];
	char *text;

	snprintf(other, sizeof(other), "%s/other.log", d->dir);
	batch_begin(d, LOG_LVL_INFO);
	log_info("for the first file");
	log_setup(other, false, NULL, LOG_LVL_INFO);
	log_info("for the second file");
	log_batch_stop();
	log_setup(NULL, false, NULL, LOG_LVL_INFO);

	text = now_text(d);
	assert_non_null(strstr(text, "for the first file"));
	assert_null(strstr(text, "for the second file"));
	free(text);
	text = slurp(other);
	assert_non_null(text);
	assert_non_null(strstr(text, "for the second file"));
	assert_null(strstr(text, "for the first file"));
	free(text);
	unlink(other);
}

/* A loop's callback writes the batch out once its first line is LOG_BATCH_USEC old, not before. */
static void test_batch_due_at_callback(void **state)
{
	struct logdir *d = *state;
	char *text;

	batch_begin(d, LOG_LVL_INFO);
	assert_int_equal(log_due_usec, 0);
	log_info("due soon");
	unsigned long long due = log_due_usec;
	assert_true(due != 0);
	log_info("no new due time");
	assert_true(log_due_usec == due); /* the first line's age counts */
	log_flush_if_due(due - 1);
	assert_nothing_written(d);
	log_flush_if_due(due);
	assert_in_order(d, " LOG due soon\n", " LOG no new due time\n");
	assert_int_equal(log_due_usec, 0);
	log_flush_if_due(due + LOG_BATCH_USEC); /* nothing waits: nothing written twice */
	text = now_text(d);
	assert_int_equal(count_lines(text), 2);
	free(text);
	assert_int_equal(arms, 1);
	log_batch_stop();
}

static void *unbatched_writer(void *arg)
{
	(void)arg;
	log_info("from a thread without a loop");
	return NULL;
}

/* A thread without a loop writes at once, and what the others left waiting goes first. */
static void test_batch_other_thread_writes_through(void **state)
{
	struct logdir *d = *state;
	pthread_t th;

	batch_begin(d, LOG_LVL_INFO);
	log_info("waiting in the batch");
	assert_int_equal(pthread_create(&th, NULL, unbatched_writer, NULL), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_in_order(d, "waiting in the batch", "from a thread without a loop");
	assert_int_equal(arms, 1);
	log_batch_stop();
}

static void no_arm(void *arg)
{
	(void)arg; /* the flushes below stand in for the loops' timers */
}

static void *batched_writer(void *arg)
{
	int id = (int)(intptr_t)arg;

	log_batch_start(no_arm, NULL);
	for (int i = 0; i < LINES_PER_THREAD; i++) {
		log_info("thread %d line %d end", id, i);
		if (i % 7 == 0)
			log_flush_if_due(~0ULL); /* due or not: as a callback that comes late */
		if (i % 50 == 0)
			log_warning("thread %d warning %d end", id, i);
	}
	log_batch_stop();
	return NULL;
}

/* Threads batching, flushing and writing warnings at once: every line whole, none lost, and
 * each thread's lines in the order it made them. */
static void test_batch_concurrent(void **state)
{
	struct logdir *d = *state;
	int next[N_THREADS] = {0}, warnings = 0;
	char *text = run_writers(d, batched_writer), *line, *save = NULL;

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		int id, i;
		const char *msg = strstr(line, " LOG thread ");

		assert_string_equal(line + strlen(line) - 4, " end");
		if (!msg) {
			assert_non_null(strstr(line, " WARNING thread "));
			warnings++;
			continue;
		}
		assert_int_equal(sscanf(msg, " LOG thread %d line %d end", &id, &i), 2);
		assert_in_range(id, 0, N_THREADS - 1);
		assert_int_equal(i, next[id]);
		next[id]++;
	}
	for (int i = 0; i < N_THREADS; i++)
		assert_int_equal(next[i], LINES_PER_THREAD);
	assert_int_equal(warnings, N_THREADS * (LINES_PER_THREAD / 50));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_levels_filter, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_line_format, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_debug_level, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_reopen_appends, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_long_message, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_unopenable_logfile, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_concurrent_lines_whole, setup_dir,
						teardown_dir),
		cmocka_unit_test_setup_teardown(test_batch_waits_for_flush, setup_dir,
						teardown_dir),
		cmocka_unit_test_setup_teardown(test_batch_warning_writes_at_once, setup_dir,
						teardown_dir),
		cmocka_unit_test_setup_teardown(test_batch_full_buffer, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_batch_due_at_callback, setup_dir,
						teardown_dir),
		cmocka_unit_test_setup_teardown(test_batch_concurrent, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_batch_reopen_flushes_to_old_file, setup_dir,
						teardown_dir),
		cmocka_unit_test_setup_teardown(test_batch_other_thread_writes_through, setup_dir,
						teardown_dir),
	};

	return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
