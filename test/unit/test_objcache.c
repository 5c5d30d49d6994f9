/* test_objcache: line-aligned, zeroed objects from blocks; reuse after free; every block freed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "objcache.h"

static void test_size_rounded_to_lines(void **state)
{
	(void)state;
	struct objcache oc;
	objcache_init(&oc, 1);
	assert_int_equal(oc.size, CACHE_LINE);
	objcache_init(&oc, 640);
	assert_int_equal(oc.size, 640);
	objcache_init(&oc, 641);
	assert_int_equal(oc.size, 704);
	assert_true(oc.per >= 1);
	objcache_destroy(&oc);
}

static void test_aligned_zeroed_distinct(void **state)
{
	(void)state;
	struct objcache oc;
	objcache_init(&oc, 200); /* 256-byte objects: several blocks for 300 of them */
	enum { N = 300 };
	unsigned char *objs[N];
	for (int i = 0; i < N; i++) {
		objs[i] = objcache_alloc(&oc);
		assert_non_null(objs[i]);
		assert_int_equal((uintptr_t)objs[i] % CACHE_LINE, 0);
		for (size_t b = 0; b < oc.size; b++)
			assert_int_equal(objs[i][b], 0);
		memset(objs[i], 0xA5, oc.size); /* an overlap would show in another object */
	}
	for (int i = 0; i < N; i++)
		for (int j = i + 1; j < N; j++) {
			uintptr_t a = (uintptr_t)objs[i], b = (uintptr_t)objs[j];
			assert_true(a + oc.size <= b || b + oc.size <= a);
		}
	assert_true(oc.n_total >= N);
	for (int i = 0; i < N; i++)
		objcache_free(&oc, objs[i]);
	objcache_destroy(&oc);
	assert_int_equal(oc.n_total, 0);
}

static void test_freed_object_comes_back_zeroed(void **state)
{
	(void)state;
	struct objcache oc;
	objcache_init(&oc, 640);
	unsigned char *a = objcache_alloc(&oc);
	assert_non_null(a);
	memset(a, 0x5A, oc.size);
	size_t total = oc.n_total;
	objcache_free(&oc, a);
	unsigned char *b = objcache_alloc(&oc);
	assert_non_null(b);
	assert_int_equal(oc.n_total, total); /* reused, not carved anew */
	for (size_t i = 0; i < oc.size; i++)
		assert_int_equal(b[i], 0);
	objcache_free(&oc, b);
	objcache_free(&oc, NULL);
	objcache_destroy(&oc);
}

static void test_cache_line_zalloc(void **state)
{
	(void)state;
	unsigned char *p = cache_line_zalloc(100); /* not a multiple of the line */
	assert_non_null(p);
	assert_int_equal((uintptr_t)p % CACHE_LINE, 0);
	for (size_t i = 0; i < 128; i++) /* rounded up to whole lines, all zeroed */
		assert_int_equal(p[i], 0);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size_rounded_to_lines),
		cmocka_unit_test(test_aligned_zeroed_distinct),
		cmocka_unit_test(test_freed_object_comes_back_zeroed),
		cmocka_unit_test(test_cache_line_zalloc),
	};

	return cmocka_run_group_tests_name("objcache", tests, NULL, NULL);
}
