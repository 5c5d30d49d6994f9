/* test_md5auth: PostgreSQL md5 hashes and salted responses against known values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "md5auth.h"
#include "scram.h"

/*
 * Known values, computed outside pgtally:
 *   echo -n 'passworduser' | md5sum            -> 4d45974e13472b5a0be3533de4666414
 *   libpq PQencryptPasswordConn("s3cr3t pass!", "bob", "md5")
 *                                              -> md50b1249ad9a687d03d0e3528b611f1ffa
 *   python3 hashlib.md5(hex + salt bytes) for the salted responses below
 */
static const uint8_t salt1[4] = {1, 2, 3, 4};
static const uint8_t salt2[4] = {0xde, 0xad, 0xbe, 0xef};

static void test_password_hash(void **state)
{
	char out[MD5AUTH_LEN];

	(void)state;
	md5auth_password_hash("user", "password", out);
	assert_string_equal(out, "md54d45974e13472b5a0be3533de4666414");
	md5auth_password_hash("bob", "s3cr3t pass!", out);
	assert_string_equal(out, "md50b1249ad9a687d03d0e3528b611f1ffa");
	/* the user name is the salt: order matters */
	md5auth_password_hash("password", "user", out);
	assert_string_not_equal(out, "md54d45974e13472b5a0be3533de4666414");
}

static void test_salted(void **state)
{
	char out[MD5AUTH_LEN];

	(void)state;
	md5auth_salted("md50b1249ad9a687d03d0e3528b611f1ffa", salt1, out);
	assert_string_equal(out, "md5682912ab080f3cb1df666a45d09019f8");
	md5auth_salted("md54d45974e13472b5a0be3533de4666414", salt2, out);
	assert_string_equal(out, "md51b9db6132a24afffa2977ba84e4b389b");
	/* not a hash: empty output, which no response equals */
	md5auth_salted("md5abc", salt1, out);
	assert_string_equal(out, "");
}

static void test_check(void **state)
{
	(void)state;
	/* stored plaintext */
	assert_true(
		md5auth_check("s3cr3t pass!", "bob", salt1, "md5682912ab080f3cb1df666a45d09019f8"));
	/* stored md5 hash */
	assert_true(md5auth_check("md50b1249ad9a687d03d0e3528b611f1ffa", "bob", salt1,
				  "md5682912ab080f3cb1df666a45d09019f8"));
	assert_true(md5auth_check("md54d45974e13472b5a0be3533de4666414", "user", salt2,
				  "md51b9db6132a24afffa2977ba84e4b389b"));
	/* wrong salt, user, password, truncated or longer response, uppercase digits */
	assert_false(
		md5auth_check("s3cr3t pass!", "bob", salt2, "md5682912ab080f3cb1df666a45d09019f8"));
	assert_false(md5auth_check("s3cr3t pass!", "bobby", salt1,
				   "md5682912ab080f3cb1df666a45d09019f8"));
	assert_false(
		md5auth_check("s3cr3t pass?", "bob", salt1, "md5682912ab080f3cb1df666a45d09019f8"));
	assert_false(
		md5auth_check("s3cr3t pass!", "bob", salt1, "md5682912ab080f3cb1df666a45d09019f"));
	assert_false(md5auth_check("s3cr3t pass!", "bob", salt1,
				   "md5682912ab080f3cb1df666a45d09019f88"));
	assert_false(
		md5auth_check("s3cr3t pass!", "bob", salt1, "md5682912AB080F3CB1DF666A45D09019F8"));
	assert_false(md5auth_check("s3cr3t pass!", "bob", salt1, ""));
	/* a client sending the stored hash itself does not get in */
	assert_false(md5auth_check("md50b1249ad9a687d03d0e3528b611f1ffa", "bob", salt1,
				   "md50b1249ad9a687d03d0e3528b611f1ffa"));
	/* a SCRAM secret cannot check an md5 response */
	assert_false(md5auth_check("SCRAM-SHA-256$4096:LLWVfCZRsBKx09bmMpXaCQ==$xy7qL3EaMzDAhF6L6"
				   "C72oGzYvMwVRqW3WHEC8fiuGjU=:4St0rqnhgacwJkIZdPm1U4XXPRw8VoQS"
				   "pHGgAlv8abw=",
				   "alice", salt1, "md5682912ab080f3cb1df666a45d09019f8"));
}

static void test_kind(void **state)
{
	(void)state;
	assert_int_equal(pwd_kind_of(""), PWD_PLAIN);
	assert_int_equal(pwd_kind_of("md5"), PWD_PLAIN);
	assert_int_equal(pwd_kind_of("md54d45974e13472b5a0be3533de4666414"), PWD_MD5);
	assert_int_equal(pwd_kind_of("md54d45974e13472b5a0be3533de466641z"), PWD_PLAIN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_password_hash),
		cmocka_unit_test(test_salted),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_kind),
	};

	return cmocka_run_group_tests_name("md5auth", tests, NULL, NULL);
}
