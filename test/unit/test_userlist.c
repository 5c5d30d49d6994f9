/* test_userlist: auth_file parsing (quotes, comments, errors with line numbers), lookups. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "scram.h"
#include "userlist.h"

static struct userlist *parse(const char *text, char *err, size_t errlen)
{
	return userlist_parse(text, strlen(text), "users.txt", err, errlen);
}

static void test_basic(void **state)
{
	const char *text = "; a comment\n"
			   "# another\n"
			   "\n"
			   "   \t\n"
			   "\"alice\" \"md54d45974e13472b5a0be3533de4666414\"\n"
			   "  \"bob\"\t\"SCRAM-SHA-256$4096:c2FsdA==$a:b\"   trailing words\n"
			   "\"carol\" \"\"\r\n"
			   "  ; indented comment \"x\" \"y\"\n"
			   "\"dave\" \"plain text\"";
	char err[256] = "";
	struct userlist *ul = parse(text, err, sizeof(err));

	(void)state;
	assert_non_null(ul);
	assert_int_equal(userlist_count(ul), 4);
	assert_string_equal(userlist_find(ul, "alice"), "md54d45974e13472b5a0be3533de4666414");
	assert_string_equal(userlist_find(ul, "bob"), "SCRAM-SHA-256$4096:c2FsdA==$a:b");
	assert_string_equal(userlist_find(ul, "carol"), "");
	assert_string_equal(userlist_find(ul, "dave"), "plain text");
	assert_null(userlist_find(ul, "Alice"));
	assert_null(userlist_find(ul, "x"));
	assert_null(userlist_find(ul, ""));
	userlist_free(ul);
}

/* Each entry's kind is worked out at load, as pwd_kind_of() would at login. */
static void test_kinds(void **state)
{
	const char *text = "\"m\" \"md54d45974e13472b5a0be3533de4666414\"\n"
			   "\"s\" \"SCRAM-SHA-256$4096:c2FsdA==$"
			   "RkZGRkZGRkZGRkZGRkZGRkZGRkZGRkZGRkZGRkZGRkY=:"
			   "RkZGRkZGRkZGRkZGRkZGRkZGRkZGRkZGRkZGRkZGRkY=\"\n"
			   "\"bad\" \"SCRAM-SHA-256$4096:c2FsdA==$a:b\"\n"
			   "\"p\" \"plain text\"\n"
			   "\"m\" \"now plain\"\n";
	char err[256] = "";
	struct userlist *ul = parse(text, err, sizeof(err));
	const char *users[] = {"m", "s", "bad", "p"};
	int want[] = {PWD_PLAIN, PWD_SCRAM, PWD_PLAIN, PWD_PLAIN};
	int kind = -1;

	(void)state;
	assert_non_null(ul);
	for (size_t i = 0; i < 4; i++) {
		const char *pw = userlist_find_kind(ul, users[i], &kind);
		assert_non_null(pw);
		assert_ptr_equal(pw, userlist_find(ul, users[i]));
		assert_int_equal(kind, want[i]);
		assert_int_equal(kind, pwd_kind_of(pw));
	}
	kind = -1;
	assert_null(userlist_find_kind(ul, "nobody", &kind));
	assert_int_equal(kind, -1);
	userlist_free(ul);
	ul = parse("\"m\" \"md54d45974e13472b5a0be3533de4666414\"\n", err, sizeof(err));
	assert_non_null(userlist_find_kind(ul, "m", &kind));
	assert_int_equal(kind, PWD_MD5);
	userlist_free(ul);
}

static void test_quotes(void **state)
{
	const char *text = "\"we\"\"ird\" \"pa\"\"ss\"\"\"\n"
			   "\"\"\"\" \"quote\"\n"
			   "\"sp ace\" \"semi;colon # hash\"\n"
			   "\"\" \"empty user\"\n";
	char err[256] = "";
	struct userlist *ul = parse(text, err, sizeof(err));

	(void)state;
	assert_non_null(ul);
	assert_int_equal(userlist_count(ul), 4);
	assert_string_equal(userlist_find(ul, "we\"ird"), "pa\"ss\"");
	assert_string_equal(userlist_find(ul, "\""), "quote");
	assert_string_equal(userlist_find(ul, "sp ace"), "semi;colon # hash");
	assert_string_equal(userlist_find(ul, ""), "empty user");
	assert_null(userlist_find(ul, "weird"));
	userlist_free(ul);
}

static void test_duplicates(void **state)
{
	const char *text = "\"u\" \"first\"\n\"v\" \"x\"\n\"u\" \"second\"\n";
	struct userlist *ul = parse(text, NULL, 0);

	(void)state;
	assert_non_null(ul);
	assert_int_equal(userlist_count(ul), 2);
	assert_string_equal(userlist_find(ul, "u"), "second");
	userlist_free(ul);
}

/* len 0: strlen(text) */
static void expect_error(const char *text, size_t len, const char *want)
{
	char err[256] = "";
	struct userlist *ul =
		userlist_parse(text, len ? len : strlen(text), "users.txt", err, sizeof(err));

	if (ul) {
		userlist_free(ul);
		fail_msg("accepted: %s", text);
	}
	if (!strstr(err, want))
		fail_msg("error \"%s\", expected \"%s\"", err, want);
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("\"a\" \"b\"\n; ok\n\"c\" \"d\n\"e\" \"f\"\n", 0,
		     "users.txt:3: missing closing double quote");
	expect_error("\"a\" \"b\"\n\"unterminated\n", 0, "users.txt:2: missing closing");
	expect_error("alice \"secret\"\n", 0, "users.txt:1: expected a double-quoted user name");
	expect_error("\n\n\"alice\"\n", 0, "users.txt:3: missing password");
	expect_error("\"alice\"   \n", 0, "users.txt:1: missing password");
	expect_error("\"alice\" secret\n", 0, "users.txt:1: expected a double-quoted password");
	expect_error("\"a\"\"b\"\n", 0, "users.txt:1: missing password");
	expect_error("\"a\" \"b\0c\"\n", 10, "users.txt:1: NUL byte");
	expect_error("\"", 0, "users.txt:1: missing closing");
	/* the default name when none is given */
	char err[128] = "";
	assert_null(userlist_parse("x", 1, NULL, err, sizeof(err)));
	assert_string_equal(err, "auth_file:1: expected a double-quoted user name");
	/* no error buffer: still no crash */
	assert_null(userlist_parse("x", 1, NULL, NULL, 0));
}

static void test_empty_and_many(void **state)
{
	struct userlist *ul = userlist_parse("", 0, "e", NULL, 0);
	char *text, name[32], pass[32];
	size_t len = 0, cap = 64 * 3000;

	(void)state;
	assert_non_null(ul);
	assert_int_equal(userlist_count(ul), 0);
	assert_null(userlist_find(ul, "a"));
	userlist_free(ul);
	userlist_free(NULL);
	assert_null(userlist_find(NULL, "a"));

	text = malloc(cap);
	assert_non_null(text);
	for (int i = 0; i < 3000; i++)
		len += (size_t)snprintf(text + len, cap - len, "\"user%d\" \"pw%d\"\n", i, i * 7);
	ul = userlist_parse(text, len, "many", NULL, 0);
	free(text);
	assert_non_null(ul);
	assert_int_equal(userlist_count(ul), 3000);
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		snprintf(pass, sizeof(pass), "pw%d", i * 7);
		assert_string_equal(userlist_find(ul, name), pass);
	}
	assert_null(userlist_find(ul, "user3000"));
	userlist_free(ul);
}

static void test_load_file(void **state)
{
	char path[] = "/tmp/pgtally_userlist_XXXXXX";
	char err[512] = "";
	const char *text = "\"alice\" \"pw\"\n\"bob\" \"x\n";
	int fd = mkstemp(path);
	struct userlist *ul;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);

	ul = userlist_load(path, err, sizeof(err));
	assert_null(ul);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, ":2: missing closing double quote"));

	assert_int_equal(truncate(path, 13), 0);
	ul = userlist_load(path, err, sizeof(err));
	assert_non_null(ul);
	assert_int_equal(userlist_count(ul), 1);
	assert_string_equal(userlist_find(ul, "alice"), "pw");
	userlist_free(ul);

	assert_int_equal(chmod(path, 0600), 0);
	assert_false(userlist_is_world_readable(path));
	assert_int_equal(chmod(path, 0644), 0);
	assert_true(userlist_is_world_readable(path));
	unlink(path);

	assert_false(userlist_is_world_readable(path));
	assert_null(userlist_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, "cannot open"));
	assert_non_null(strstr(err, path));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),     cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_quotes),    cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_errors),    cmocka_unit_test(test_empty_and_many),
		cmocka_unit_test(test_load_file),
	};

	return cmocka_run_group_tests_name("userlist", tests, NULL, NULL);
}
