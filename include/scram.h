/* scram: SCRAM-SHA-256 (RFC 5802/7677, PostgreSQL's SASL flavour) for both sides, no I/O. */
#ifndef PGT_SCRAM_H
#define PGT_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCRAM_KEY_LEN 32      /* SHA-256 output */
#define SCRAM_MAX_SALT_LEN 64 /* PostgreSQL makes 16-byte salts */
#define SCRAM_DEFAULT_ITERATIONS 4096
#define SCRAM_MAX_ITERATIONS 10000000
#define SCRAM_NONCE_RAW_LEN 18  /* random bytes in a nonce before base64 */
#define SCRAM_MAX_NONCE_LEN 256 /* characters accepted in a peer's nonce */
#define SCRAM_MAX_MESSAGE_LEN 1024

/* What a stored password is: plaintext, "md5" + 32 lowercase hex, or a SCRAM secret. */
enum pwd_kind { PWD_PLAIN, PWD_MD5, PWD_SCRAM };

/* A parsed "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>" (as in pg_authid). */
struct scram_secret {
	int iterations;
	uint8_t salt[SCRAM_MAX_SALT_LEN];
	size_t salt_len;
	uint8_t stored_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
};

/*
 * Server side (pgtally authenticating a client). Zero it (memset or = {0}) before use and wipe
 * it with scram_server_clear() afterwards; all fields are private except where noted.
 */
struct scram_server {
	/* The server's part of the nonce, preset by the caller (auth.c draws it from the worker's
	 * random pool; tests and fuzzers fix it); NULL: scram.c makes a random one. */
	const char *test_nonce;
	/*
	 * The caller may set this at any time before the final step to make it fail exactly like a
	 * wrong password (unknown user run against a mock secret, expired password...).
	 */
	bool fail_final;

	int stage;       /* 0: expect client-first, 1: expect client-final, 2: done */
	char cbind_flag; /* 'n' or 'y' */
	struct scram_secret secret;
	/* client-first-bare "," server-first-message ",": the start of the AuthMessage */
	char auth_msg[2 * SCRAM_MAX_MESSAGE_LEN];
	size_t auth_msg_len;
	size_t nonce_off, nonce_len; /* the combined nonce, inside auth_msg */

	/* Public after a successful scram_server_handle_final(): for passthrough logins. */
	bool have_client_key;
	uint8_t client_key[SCRAM_KEY_LEN];
};

/*
 * Client side (pgtally logging in to a PostgreSQL server). Zero it before use, wipe it with
 * scram_client_clear() afterwards.
 */
struct scram_client {
	/* Tests may preset the client nonce; NULL: random. */
	const char *test_nonce;
	/* User name sent in the client-first-message; NULL sends "n=," like libpq (the server
	 * takes the name from the startup packet). */
	const char *username;
	/* Highest iteration count accepted from the server; 0 means SCRAM_MAX_ITERATIONS. */
	int max_iterations;

	int stage; /* 0: nothing sent, 1: first sent, 2: final sent, 3: verified, 4: failed */
	char nonce[SCRAM_MAX_NONCE_LEN + 1];
	char client_first_bare[SCRAM_MAX_MESSAGE_LEN];
	size_t client_first_bare_len;
	uint8_t server_signature[SCRAM_KEY_LEN];
};

/* Classify a stored auth_file/pg_authid password (a malformed SCRAM secret counts as plain). */
enum pwd_kind pwd_kind_of(const char *stored);

/* Parse a stored secret; false when text is not a well-formed SCRAM-SHA-256 secret. */
bool scram_parse_secret(const char *text, struct scram_secret *out)
	__attribute__((warn_unused_result));

/* Format a secret the way pg_authid stores it; false when outcap is too small. */
bool scram_secret_to_text(const struct scram_secret *secret, char *out, size_t outcap)
	__attribute__((warn_unused_result));

/*
 * Derive a secret from a plaintext password (PBKDF2-HMAC-SHA-256). The caller supplies a
 * random salt (RAND_bytes, 16 bytes like PostgreSQL) and caches the result.
 */
bool scram_secret_from_password(const char *password, const uint8_t *salt, size_t salt_len,
				int iterations, struct scram_secret *out)
	__attribute__((warn_unused_result));

/*
 * A deterministic fake secret for a user that does not exist, so that an exchange runs to the
 * end and fails like a wrong password, with the same salt on every attempt. key is a random
 * value the caller makes once per process and keeps for its lifetime.
 */
bool scram_mock_secret(const char *username, const uint8_t *key, size_t keylen,
		       struct scram_secret *out) __attribute__((warn_unused_result));

/* Server side: consume the client-first-message, produce the server-first-message. */
bool scram_server_handle_first(struct scram_server *st, const struct scram_secret *secret,
			       const char *msg, size_t len, char *out, size_t outcap,
			       size_t *outlen, const char **err)
	__attribute__((warn_unused_result));

/*
 * Server side: consume the client-final-message, verify the proof and produce the
 * server-final-message ("v=..."). On success st->client_key holds the client's ClientKey.
 * *err is a static string fit for the log; it never contains secret material.
 */
bool scram_server_handle_final(struct scram_server *st, const char *msg, size_t len, char *out,
			       size_t outcap, size_t *outlen, const char **err)
	__attribute__((warn_unused_result));

void scram_server_clear(struct scram_server *st);

/* Client side: produce the client-first-message (with the "n,," GS2 header). */
bool scram_client_first(struct scram_client *st, char *out, size_t outcap, size_t *outlen)
	__attribute__((warn_unused_result));

/*
 * Client side: consume the server-first-message and produce the client-final-message. Give
 * either the plaintext password, or client_key and server_key recovered from a client's own
 * SCRAM login (passthrough: works when the server holds the same salt and iteration count).
 */
bool scram_client_final(struct scram_client *st, const char *password, const uint8_t *client_key,
			const uint8_t *server_key, const char *server_first, size_t len, char *out,
			size_t outcap, size_t *outlen, const char **err)
	__attribute__((warn_unused_result));

/* Client side: check the server-final-message's signature (the server knows the secret). */
bool scram_client_verify_final(struct scram_client *st, const char *server_final, size_t len,
			       const char **err) __attribute__((warn_unused_result));

void scram_client_clear(struct scram_client *st);

/* Base64 (RFC 4648, with padding). encode writes a NUL-terminated string. */
bool scram_b64_encode(const uint8_t *in, size_t len, char *out, size_t outcap, size_t *outlen)
	__attribute__((warn_unused_result));
/* Strict: rejects characters outside the alphabet, bad padding and non-zero spare bits. */
bool scram_b64_decode(const char *in, size_t len, uint8_t *out, size_t outcap, size_t *outlen)
	__attribute__((warn_unused_result));

#endif
