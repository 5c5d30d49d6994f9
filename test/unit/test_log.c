/* test_log: unit tests of src/log.c (levels, the logfile, reopening, long and concurrent lines). */
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

/* Worker threads log at once: every line must arrive whole, none interleaved. */
static void test_concurrent_lines_whole(void **state)
{
	struct logdir *d = *state;
	pthread_t th[N_THREADS];
	char *text, *line, *save = NULL;
	size_t n = 0;

	log_setup(d->path, false, NULL, LOG_LVL_INFO);
	for (int i = 0; i < N_THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, writer, (void *)(intptr_t)i), 0);
	for (int i = 0; i < N_THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	log_setup(NULL, false, NULL, LOG_LVL_INFO);

	text = slurp(d->path);
	assert_non_null(text);
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
	};

	return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
