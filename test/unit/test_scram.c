/* test_scram: SCRAM-SHA-256 vectors (RFC 7677, libpq), exchanges, passthrough, bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "scram.h"

/* RFC 7677 section 3 */
#define RFC_CLIENT_NONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_SERVER_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SALT "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_CLIENT_FIRST "n,,n=user,r=" RFC_CLIENT_NONCE
#define RFC_SERVER_FIRST "r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE ",s=" RFC_SALT ",i=4096"
#define RFC_CLIENT_FINAL                                                                           \
	"c=biws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE                                              \
	",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

/* Made by libpq 15's PQencryptPasswordConn(conn, "pencil", "alice", "scram-sha-256"). */
#define PG_SECRET_PENCIL                                                                           \
	"SCRAM-SHA-256$4096:LLWVfCZRsBKx09bmMpXaCQ==$xy7qL3EaMzDAhF6L6C72oGzYvMwVRqW3WHEC8fiuGjU=" \
	":4St0rqnhgacwJkIZdPm1U4XXPRw8VoQSpHGgAlv8abw="
/* The same for "pässwörd" (UTF-8, precomposed: unchanged by SASLprep). */
#define PG_SECRET_UMLAUT                                                                           \
	"SCRAM-SHA-256$4096:W5FZZ0BDqfY0MVcGy2GLNQ==$Ik7eQFHQExBpxwBx6KmeNEcCd5T7SeinkE0ndgiMIw0=" \
	":jtRYyrWN1QjebeICiZEvKEvnIorhObFurXv6InUYjfU="

static void rfc_secret(struct scram_secret *s)
{
	uint8_t salt[64];
	size_t n;

	assert_true(scram_b64_decode(RFC_SALT, strlen(RFC_SALT), salt, sizeof(salt), &n));
	assert_int_equal(n, 16);
	assert_true(scram_secret_from_password("pencil", salt, n, 4096, s));
}

static void test_b64(void **state)
{
	static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *const enc[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
					  "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	static const char *const bad[] = {
		"Zg=",      "Zg",   "Z===",   "Zh==",  "Zm9=",     "Zm9v!A==", "=Zm9",
		"Zg==Zg==", "Zm=v", "Zm9v\n", "Zm 9v", "Zm9vYg=A", "-_-_"};
	char out[64];
	uint8_t dec[64];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		assert_true(scram_b64_encode((const uint8_t *)plain[i], strlen(plain[i]), out,
					     sizeof(out), &n));
		assert_string_equal(out, enc[i]);
		assert_int_equal(n, strlen(enc[i]));
		assert_true(scram_b64_decode(enc[i], strlen(enc[i]), dec, sizeof(dec), &n));
		assert_int_equal(n, strlen(plain[i]));
		assert_memory_equal(dec, plain[i], n);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(scram_b64_decode(bad[i], strlen(bad[i]), dec, sizeof(dec), &n));
	/* every byte value: a digit exactly when in the alphabet, with its place as value */
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (int c = 0; c < 256; c++) {
		char quad[4] = {(char)c, 'A', 'A', 'A'};
		const char *at = c ? memchr(alphabet, c, 64) : NULL;
		assert_int_equal(scram_b64_decode(quad, 4, dec, sizeof(dec), &n), at != NULL);
		if (at) {
			assert_int_equal(n, 3);
			assert_int_equal(dec[0] >> 2, at - alphabet);
		}
	}
	/* random strings of digits, '=' and a stranger: decoded exactly when canonical, that
	 * is when encoding the result gives the string back */
	srand(7);
	for (int t = 0; t < 200000; t++) {
		char in[12];
		size_t len = 4 * (size_t)(1 + rand() % 3);
		for (size_t i = 0; i < len; i++) {
			int r = rand() % 80;
			in[i] = r < 64 ? alphabet[r] : r < 78 ? '=' : '!';
		}
		char back[20];
		size_t bn;
		if (scram_b64_decode(in, len, dec, sizeof(dec), &n)) {
			assert_true(scram_b64_encode(dec, n, back, sizeof(back), &bn));
			assert_int_equal(bn, len);
			assert_memory_equal(back, in, len);
		}
	}
	/* and every encoding of 0..8 random bytes decodes back to them */
	for (int t = 0; t < 20000; t++) {
		uint8_t raw[8];
		size_t rn = (size_t)(t % 9);
		for (size_t i = 0; i < rn; i++)
			raw[i] = (uint8_t)rand();
		assert_true(scram_b64_encode(raw, rn, out, sizeof(out), &n));
		assert_true(scram_b64_decode(out, n, dec, sizeof(dec), &n));
		assert_int_equal(n, rn);
		assert_memory_equal(dec, raw, rn);
	}
	/* output limits */
	assert_false(scram_b64_encode((const uint8_t *)"foo", 3, out, 4, &n));
	assert_true(scram_b64_encode((const uint8_t *)"foo", 3, out, 5, &n));
	assert_false(scram_b64_decode("Zm9vYmFy", 8, dec, 5, &n));
}

static void test_rfc7677_server(void **state)
{
	struct scram_secret secret;
	struct scram_server srv = {0};
	uint8_t stored[32];
	char out[512];
	size_t n;
	const char *err = NULL;

	(void)state;
	rfc_secret(&secret);
	srv.test_nonce = RFC_SERVER_NONCE;
	assert_true(scram_server_handle_first(&srv, &secret, RFC_CLIENT_FIRST,
					      strlen(RFC_CLIENT_FIRST), out, sizeof(out), &n,
					      &err));
	assert_string_equal(out, RFC_SERVER_FIRST);
	assert_int_equal(n, strlen(RFC_SERVER_FIRST));
	assert_false(srv.have_client_key);
	assert_true(scram_server_handle_final(&srv, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), out,
					      sizeof(out), &n, &err));
	assert_int_equal(n, strlen(RFC_SERVER_FINAL));
	out[n] = '\0';
	assert_string_equal(out, RFC_SERVER_FINAL);
	/* the recovered ClientKey hashes to StoredKey */
	assert_true(srv.have_client_key);
	SHA256(srv.client_key, 32, stored);
	assert_memory_equal(stored, secret.stored_key, 32);
	/* a second exchange must be refused on the same state */
	assert_false(scram_server_handle_final(&srv, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL),
					       out, sizeof(out), &n, &err));
	scram_server_clear(&srv);
	assert_false(srv.have_client_key);
}

static void test_rfc7677_client(void **state)
{
	struct scram_client cl = {0};
	char out[512];
	size_t n;
	const char *err = NULL;

	(void)state;
	cl.test_nonce = RFC_CLIENT_NONCE;
	cl.username = "user";
	assert_true(scram_client_first(&cl, out, sizeof(out), &n));
	assert_string_equal(out, RFC_CLIENT_FIRST);
	assert_int_equal(n, strlen(RFC_CLIENT_FIRST));
	assert_true(scram_client_final(&cl, "pencil", NULL, NULL, RFC_SERVER_FIRST,
				       strlen(RFC_SERVER_FIRST), out, sizeof(out), &n, &err));
	assert_string_equal(out, RFC_CLIENT_FINAL);
	assert_int_equal(n, strlen(RFC_CLIENT_FINAL));
	assert_true(
		scram_client_verify_final(&cl, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), &err));

	/* a server that does not know the secret gives another signature */
	memset(&cl, 0, sizeof(cl));
	cl.test_nonce = RFC_CLIENT_NONCE;
	cl.username = "user";
	assert_true(scram_client_first(&cl, out, sizeof(out), &n));
	assert_true(scram_client_final(&cl, "pencil", NULL, NULL, RFC_SERVER_FIRST,
				       strlen(RFC_SERVER_FIRST), out, sizeof(out), &n, &err));
	const char *forged = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=";
	err = NULL;
	assert_false(scram_client_verify_final(&cl, forged, strlen(forged), &err));
	assert_non_null(err);
	scram_client_clear(&cl);
}

/* Run one exchange between our two sides; returns whether both ends were satisfied. */
static bool exchange(struct scram_server *srv, const struct scram_secret *secret,
		     struct scram_client *cl, const char *password, const uint8_t *ck,
		     const uint8_t *sk)
{
	char c1[512], s1[512], c2[512], s2[512];
	size_t n1, n2, n3, n4;
	const char *err = NULL;

	if (!scram_client_first(cl, c1, sizeof(c1), &n1))
		return false;
	if (!scram_server_handle_first(srv, secret, c1, n1, s1, sizeof(s1), &n2, &err))
		return false;
	if (!scram_client_final(cl, password, ck, sk, s1, n2, c2, sizeof(c2), &n3, &err))
		return false;
	if (!scram_server_handle_final(srv, c2, n3, s2, sizeof(s2), &n4, &err)) {
		assert_non_null(err);
		return false;
	}
	return scram_client_verify_final(cl, s2, n4, &err);
}

static void test_full_exchange(void **state)
{
	struct scram_secret secret;
	struct scram_server srv = {0};
	struct scram_client cl = {0};
	const uint8_t salt[16] = "0123456789abcdef";

	(void)state;
	assert_true(scram_secret_from_password("correct horse", salt, 16, 1000, &secret));
	assert_true(exchange(&srv, &secret, &cl, "correct horse", NULL, NULL));
	assert_true(srv.have_client_key);
	assert_int_equal(cl.stage, 3);

	/* wrong password: the server refuses, and keeps no key */
	memset(&srv, 0, sizeof(srv));
	memset(&cl, 0, sizeof(cl));
	assert_false(exchange(&srv, &secret, &cl, "correct horsf", NULL, NULL));
	assert_false(srv.have_client_key);

	/* right password but the caller doomed the exchange */
	memset(&srv, 0, sizeof(srv));
	memset(&cl, 0, sizeof(cl));
	srv.fail_final = true;
	assert_false(exchange(&srv, &secret, &cl, "correct horse", NULL, NULL));
	assert_false(srv.have_client_key);

	/* random nonces differ between runs */
	struct scram_client a = {0}, b = {0};
	char o1[128], o2[128];
	size_t n;
	assert_true(scram_client_first(&a, o1, sizeof(o1), &n));
	assert_true(scram_client_first(&b, o2, sizeof(o2), &n));
	assert_string_not_equal(o1, o2);
	assert_true(strlen(a.nonce) >= 24);
	/* a client state cannot be reused */
	assert_false(scram_client_first(&a, o1, sizeof(o1), &n));
}

static void test_real_pg_secret(void **state)
{
	struct scram_secret parsed, mine;
	struct scram_server srv = {0};
	struct scram_client cl = {0};
	char text[256];

	(void)state;
	assert_true(scram_parse_secret(PG_SECRET_PENCIL, &parsed));
	assert_int_equal(parsed.iterations, 4096);
	assert_int_equal(parsed.salt_len, 16);
	/* our derivation from the password gives libpq's keys */
	assert_true(
		scram_secret_from_password("pencil", parsed.salt, parsed.salt_len, 4096, &mine));
	assert_memory_equal(mine.stored_key, parsed.stored_key, 32);
	assert_memory_equal(mine.server_key, parsed.server_key, 32);
	assert_true(scram_secret_to_text(&mine, text, sizeof(text)));
	assert_string_equal(text, PG_SECRET_PENCIL);
	assert_false(scram_secret_to_text(&mine, text, 50));

	assert_true(scram_parse_secret(PG_SECRET_UMLAUT, &parsed));
	assert_true(scram_secret_from_password("p\xc3\xa4ssw\xc3\xb6rd", parsed.salt,
					       parsed.salt_len, parsed.iterations, &mine));
	assert_memory_equal(mine.stored_key, parsed.stored_key, 32);

	/* a client logs in against the stored secret */
	assert_true(scram_parse_secret(PG_SECRET_PENCIL, &parsed));
	assert_true(exchange(&srv, &parsed, &cl, "pencil", NULL, NULL));
	memset(&srv, 0, sizeof(srv));
	memset(&cl, 0, sizeof(cl));
	assert_false(exchange(&srv, &parsed, &cl, "Pencil", NULL, NULL));
}

static void test_parse_secret_bad(void **state)
{
	static const char *const bad[] = {
		"",
		"pencil",
		"SCRAM-SHA-256$",
		"SCRAM-SHA-1$4096:LLWVfCZRsBKx09bmMpXaCQ==$"
		"xy7qL3EaMzDAhF6L6C72oGzYvMwVRqW3WHEC8fiuGjU="
		":4St0rqnhgacwJkIZdPm1U4XXPRw8VoQSpHGgAlv8abw=",
		"SCRAM-SHA-256$0:LLWVfCZRsBKx09bmMpXaCQ==$"
		"xy7qL3EaMzDAhF6L6C72oGzYvMwVRqW3WHEC8fiuGjU="
		":4St0rqnhgacwJkIZdPm1U4XXPRw8VoQSpHGgAlv8abw=",
		"SCRAM-SHA-256$-1:LLWVfCZRsBKx09bmMpXaCQ==$"
		"xy7qL3EaMzDAhF6L6C72oGzYvMwVRqW3WHEC8fiuGjU="
		":4St0rqnhgacwJkIZdPm1U4XXPRw8VoQSpHGgAlv8abw=",
		"SCRAM-SHA-256$99999999999:LLWVfCZRsBKx09bmMpXaCQ==$"
		"xy7qL3EaMzDAhF6L6C72oGzYvMwVRqW3WHE"
		"C8fiuGjU=:4St0rqnhgacwJkIZdPm1U4XXPRw8VoQSpHGgAlv8abw=",
		"SCRAM-SHA-256$4096:$xy7qL3EaMzDAhF6L6C72oGzYvMwVRqW3WHEC8fiuGjU="
		":4St0rqnhgacwJkIZdPm1U4XXPRw8VoQSpHGgAlv8abw=",
		"SCRAM-SHA-256$4096:LLWVfCZRsBKx09bmMpXaC!==$"
		"xy7qL3EaMzDAhF6L6C72oGzYvMwVRqW3WHEC8fiuGjU="
		":4St0rqnhgacwJkIZdPm1U4XXPRw8VoQSpHGgAlv8abw=",
		/* StoredKey of 31 bytes */
		"SCRAM-SHA-256$4096:LLWVfCZRsBKx09bmMpXaCQ==$"
		"xy7qL3EaMzDAhF6L6C72oGzYvMwVRqW3WHEC8fiuGg=="
		":4St0rqnhgacwJkIZdPm1U4XXPRw8VoQSpHGgAlv8abw=",
		"SCRAM-SHA-256$4096:LLWVfCZRsBKx09bmMpXaCQ==$"
		"xy7qL3EaMzDAhF6L6C72oGzYvMwVRqW3WHEC8fiuGjU=",
		"SCRAM-SHA-256$4096:LLWVfCZRsBKx09bmMpXaCQ==$"
		"xy7qL3EaMzDAhF6L6C72oGzYvMwVRqW3WHEC8fiuGjU="
		":4St0rqnhgacwJkIZdPm1U4XXPRw8VoQSpHGgAlv8abw=x",
	};
	struct scram_secret s;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(scram_parse_secret(bad[i], &s));
		assert_int_equal(pwd_kind_of(bad[i]), PWD_PLAIN);
	}
	assert_int_equal(pwd_kind_of(PG_SECRET_PENCIL), PWD_SCRAM);
	assert_int_equal(pwd_kind_of("md50b1249ad9a687d03d0e3528b611f1ffa"), PWD_MD5);
	assert_int_equal(pwd_kind_of("md50B1249AD9A687D03D0E3528B611F1FFA"), PWD_PLAIN);
	assert_int_equal(pwd_kind_of("md50b1249ad9a687d03d0e3528b611f1ff"), PWD_PLAIN);
	assert_int_equal(pwd_kind_of("md50b1249ad9a687d03d0e3528b611f1ffag"), PWD_PLAIN);

	/* derivation refuses absurd parameters */
	assert_false(scram_secret_from_password("x", (const uint8_t *)"salt", 4, 0, &s));
	assert_false(scram_secret_from_password("x", (const uint8_t *)"salt", 4,
						SCRAM_MAX_ITERATIONS + 1, &s));
	assert_false(scram_secret_from_password("x", (const uint8_t *)"salt", 0, 4096, &s));
}

static void test_passthrough(void **state)
{
	struct scram_secret secret;
	struct scram_server pooler = {0}, backend = {0};
	struct scram_client app = {0}, pgt = {0};
	const uint8_t salt[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	uint8_t ck[32], sk[32];

	(void)state;
	assert_true(scram_secret_from_password("s3cret", salt, 16, 4096, &secret));
	/* the application logs in to pgtally, which recovers its ClientKey */
	assert_true(exchange(&pooler, &secret, &app, "s3cret", NULL, NULL));
	assert_true(pooler.have_client_key);
	memcpy(ck, pooler.client_key, 32);
	memcpy(sk, pooler.secret.server_key, 32);
	scram_server_clear(&pooler);
	/* pgtally logs in to the backend, which holds the same secret, without the password */
	assert_true(exchange(&backend, &secret, &pgt, NULL, ck, sk));
	assert_true(backend.have_client_key);
	assert_memory_equal(backend.client_key, ck, 32);

	/* a backend with another salt (another secret for the same password) refuses */
	struct scram_secret other;
	const uint8_t salt2[16] = "another salt....";
	assert_true(scram_secret_from_password("s3cret", salt2, 16, 4096, &other));
	memset(&backend, 0, sizeof(backend));
	memset(&pgt, 0, sizeof(pgt));
	assert_false(exchange(&backend, &other, &pgt, NULL, ck, sk));

	/* neither password nor keys */
	char out[256];
	size_t n;
	const char *err = NULL;
	memset(&pgt, 0, sizeof(pgt));
	pgt.test_nonce = RFC_CLIENT_NONCE;
	assert_true(scram_client_first(&pgt, out, sizeof(out), &n));
	assert_false(scram_client_final(&pgt, NULL, NULL, NULL, RFC_SERVER_FIRST,
					strlen(RFC_SERVER_FIRST), out, sizeof(out), &n, &err));
	assert_non_null(err);
}

static void test_mock_secret(void **state)
{
	const uint8_t key[32] = "a random per-process key.......";
	const uint8_t key2[32] = "another per-process key........";
	struct scram_secret a, b, c, d;
	struct scram_server srv = {0};
	struct scram_client cl = {0};

	(void)state;
	assert_true(scram_mock_secret("ghost", key, sizeof(key), &a));
	assert_true(scram_mock_secret("ghost", key, sizeof(key), &b));
	assert_true(scram_mock_secret("phantom", key, sizeof(key), &c));
	assert_true(scram_mock_secret("ghost", key2, sizeof(key2), &d));
	assert_memory_equal(&a, &b, sizeof(a));
	assert_int_equal(a.salt_len, 16);
	assert_int_equal(a.iterations, SCRAM_DEFAULT_ITERATIONS);
	assert_memory_not_equal(a.salt, c.salt, 16);
	assert_memory_not_equal(a.salt, d.salt, 16);
	assert_memory_not_equal(a.stored_key, a.server_key, 32);
	/* the whole exchange runs, and fails only at the end */
	assert_false(exchange(&srv, &a, &cl, "guess", NULL, NULL));
	assert_int_equal(cl.stage, 2); /* the client did get to send its proof */
	assert_false(srv.have_client_key);
}

/* Feed a client-first-message that must be refused. */
static void first_fails(const char *msg, size_t len)
{
	struct scram_secret secret;
	struct scram_server srv = {0};
	char out[512];
	size_t n;
	const char *err = NULL;

	rfc_secret(&secret);
	if (!scram_server_handle_first(&srv, &secret, msg, len, out, sizeof(out), &n, &err))
		assert_non_null(err);
	else
		fail_msg("client-first accepted: %.*s", (int)len, msg);
	/* and the state refuses to go on */
	assert_false(scram_server_handle_final(&srv, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL),
					       out, sizeof(out), &n, &err));
}

static void test_bad_client_first(void **state)
{
	static const char *const bad[] = {
		"",
		"n",
		"n,",
		"n,,",
		"p=tls-server-end-point,,n=,r=abc",
		"n,a=bob,n=,r=abc",
		"x,,n=,r=abc",
		"n,,m=foo,n=,r=abc",
		"n,,n=,r=",
		"n,,n=,r=a b",
		"n,,n=user",
		"n,,r=abc",
		"n,,n=,r=abc,garbage",
		"n,,n=,r=abc,",
		"n,,n=,x=abc",
		"nn,,n=,r=abc",
	};
	char big[2100];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		first_fails(bad[i], strlen(bad[i]));
	first_fails("n,,n=,r=a\0bc", 12);
	/* a nonce over the limit, and a message over the limit */
	memset(big, 'x', sizeof(big));
	memcpy(big, "n,,n=,r=", 8);
	first_fails(big, 8 + SCRAM_MAX_NONCE_LEN + 1);
	first_fails(big, sizeof(big));

	/* accepted variants: 'y' flag, user names, extensions */
	static const char *const good[] = {"y,,n=,r=abc", "n,,n=bob,r=abc",
					   "n,,n=,r=abc,x=1,y=", ("n,,n=*,r=" RFC_CLIENT_NONCE)};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct scram_secret secret;
		struct scram_server srv = {0};
		char out[512];
		size_t n;
		const char *err = NULL;

		rfc_secret(&secret);
		assert_true(scram_server_handle_first(&srv, &secret, good[i], strlen(good[i]), out,
						      sizeof(out), &n, &err));
		assert_true(strncmp(out, "r=", 2) == 0);
	}
}

/*
 * Start the RFC exchange on the server, then feed a client-final-message that must fail, for
 * the reason named by a substring of the error (so a bad message is not merely caught later
 * by the proof check).
 */
static void final_fails(const char *first, const char *msg, const char *why)
{
	struct scram_secret secret;
	struct scram_server srv = {0};
	char out[512];
	size_t n;
	const char *err = NULL;

	rfc_secret(&secret);
	srv.test_nonce = RFC_SERVER_NONCE;
	assert_true(scram_server_handle_first(&srv, &secret, first, strlen(first), out, sizeof(out),
					      &n, &err));
	err = NULL;
	if (scram_server_handle_final(&srv, msg, strlen(msg), out, sizeof(out), &n, &err))
		fail_msg("client-final accepted: %s", msg);
	assert_non_null(err);
	if (!strstr(err, why))
		fail_msg("client-final %s: error \"%s\", expected \"%s\"", msg, err, why);
	assert_false(srv.have_client_key);
}

#define NONCE RFC_CLIENT_NONCE RFC_SERVER_NONCE
#define PROOF "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="

static void test_bad_client_final(void **state)
{
	static const struct {
		const char *msg, *why;
	} bad[] = {
		{"", "channel binding"},
		{"c=biws,r=" NONCE, "missing proof"},
		{"c=biws,r=" NONCE ",", "missing proof"},
		{"c=bi!s,r=" NONCE "," PROOF, "bad channel binding"},
		{"c=eSws,r=" NONCE "," PROOF, "does not match"}, /* "y,," after 'n' */
		{"c=cD10bHMtdW5pcXVlLCw=,r=" NONCE "," PROOF,
		 "does not match"}, /* "p=tls-unique" */
		{"c=biws,r=" RFC_CLIENT_NONCE "," PROOF, "nonce does not match"},
		{"c=biws,r=" NONCE "x," PROOF, "nonce does not match"},
		{"c=biws,r=X" NONCE "," PROOF, "nonce does not match"},
		{"c=biws," PROOF, "missing nonce"},
		{"r=" NONCE ",c=biws," PROOF, "channel binding"},
		{"c=biws,r=" NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndV==", "bad proof"},
		{"c=biws,r=" NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ", "bad proof"},
		{"c=biws,r=" NONCE "," PROOF ",x=1", "garbage after proof"},
		{"c=biws,r=" NONCE "," PROOF ",", "garbage after proof"},
		{"c=biws,r=" NONCE ",p=eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "failed"},
		/* an extension is allowed but changes the AuthMessage, so the RFC proof is wrong */
		{"c=biws,r=" NONCE ",x=1," PROOF, "failed"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		final_fails(RFC_CLIENT_FIRST, bad[i].msg, bad[i].why);
	/* the RFC's final message ("n,," in c=) after a first message with the 'y' flag */
	final_fails("y,,n=user,r=" RFC_CLIENT_NONCE, RFC_CLIENT_FINAL, "does not match");
	/* with the 'y' flag echoed, it gets as far as the proof, which then differs */
	final_fails("y,,n=user,r=" RFC_CLIENT_NONCE, "c=eSws,r=" NONCE "," PROOF, "failed");

	/* handle_final before handle_first */
	struct scram_server srv = {0};
	char out[256];
	size_t n;
	const char *err = NULL;
	assert_false(scram_server_handle_final(&srv, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL),
					       out, sizeof(out), &n, &err));
	assert_non_null(err);
}

/* The client side against a bad server-first-message. */
static void server_first_fails(const char *msg, int max_iterations)
{
	struct scram_client cl = {0};
	char out[512];
	size_t n;
	const char *err = NULL;

	cl.test_nonce = RFC_CLIENT_NONCE;
	cl.max_iterations = max_iterations;
	assert_true(scram_client_first(&cl, out, sizeof(out), &n));
	assert_string_equal(out, "n,,n=,r=" RFC_CLIENT_NONCE);
	if (scram_client_final(&cl, "pencil", NULL, NULL, msg, strlen(msg), out, sizeof(out), &n,
			       &err))
		fail_msg("server-first accepted: %s", msg);
	assert_non_null(err);
	/* and nothing follows */
	assert_false(
		scram_client_verify_final(&cl, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), &err));
}

static void test_bad_server_messages(void **state)
{
	static const char *const bad[] = {
		"",
		"r=" RFC_CLIENT_NONCE ",s=" RFC_SALT ",i=4096",    /* no server part */
		"r=abc" RFC_SERVER_NONCE ",s=" RFC_SALT ",i=4096", /* not our nonce */
		"r=" NONCE ",s=" RFC_SALT,                         /* no count */
		"r=" NONCE ",s=" RFC_SALT ",i=0",
		"r=" NONCE ",s=" RFC_SALT ",i=-4096",
		"r=" NONCE ",s=" RFC_SALT ",i=+4096",
		"r=" NONCE ",s=" RFC_SALT ",i=4k",
		"r=" NONCE ",s=" RFC_SALT ",i=10000001",
		"r=" NONCE ",s=" RFC_SALT ",i=99999999999999999999999",
		"r=" NONCE ",s=,i=4096",
		"r=" NONCE ",s=W22ZaJ0SNY7soEsUEjb6g,i=4096",
		"r=" NONCE ",i=4096,s=" RFC_SALT,
		"m=ext,r=" NONCE ",s=" RFC_SALT ",i=4096",
		"r=" NONCE ",s=" RFC_SALT ",i=4096,",
		"r=" NONCE " ,s=" RFC_SALT ",i=4096",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		server_first_fails(bad[i], 0);
	/* a caller-chosen cap below the built-in one */
	server_first_fails(RFC_SERVER_FIRST, 4095);

	/* server-final errors */
	static const char *const bad_final[] = {"e=invalid-proof", "v=", "v=!!!!", "x=1",
						"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4"};
	for (size_t i = 0; i < sizeof(bad_final) / sizeof(bad_final[0]); i++) {
		struct scram_client cl = {0};
		char out[512];
		size_t n;
		const char *err = NULL;

		cl.test_nonce = RFC_CLIENT_NONCE;
		cl.username = "user";
		assert_true(scram_client_first(&cl, out, sizeof(out), &n));
		assert_true(scram_client_final(&cl, "pencil", NULL, NULL, RFC_SERVER_FIRST,
					       strlen(RFC_SERVER_FIRST), out, sizeof(out), &n,
					       &err));
		assert_false(
			scram_client_verify_final(&cl, bad_final[i], strlen(bad_final[i]), &err));
		assert_non_null(err);
	}
}

static void test_username_escape(void **state)
{
	struct scram_client cl = {0};
	char out[256];
	size_t n;

	(void)state;
	cl.test_nonce = "abc";
	cl.username = "a,b=c";
	assert_true(scram_client_first(&cl, out, sizeof(out), &n));
	assert_string_equal(out, "n,,n=a=2Cb=3Dc,r=abc");
	/* too small an output buffer */
	memset(&cl, 0, sizeof(cl));
	cl.test_nonce = "abc";
	assert_false(scram_client_first(&cl, out, 8, &n));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64),
		cmocka_unit_test(test_rfc7677_server),
		cmocka_unit_test(test_rfc7677_client),
		cmocka_unit_test(test_full_exchange),
		cmocka_unit_test(test_real_pg_secret),
		cmocka_unit_test(test_parse_secret_bad),
		cmocka_unit_test(test_passthrough),
		cmocka_unit_test(test_mock_secret),
		cmocka_unit_test(test_bad_client_first),
		cmocka_unit_test(test_bad_client_final),
		cmocka_unit_test(test_bad_server_messages),
		cmocka_unit_test(test_username_escape),
	};

	return cmocka_run_group_tests_name("scram", tests, NULL, NULL);
}
