/* md5auth: PostgreSQL's MD5 password scheme (stored hashes and salted responses), no I/O. */
#ifndef PGT_MD5AUTH_H
#define PGT_MD5AUTH_H

#include <stdbool.h>
#include <stdint.h>

/* "md5" + 32 hex digits + NUL */
#define MD5AUTH_LEN 36

/* What pg_authid stores: "md5" + hex(md5(password || user)). */
void md5auth_password_hash(const char *user, const char *password, char out[MD5AUTH_LEN]);

/*
 * What a client answers to AuthenticationMD5Password: "md5" + hex(md5(hex || salt)), where hex
 * is the 32 digits after "md5" in md5hash.
 */
void md5auth_salted(const char *md5hash, const uint8_t salt[4], char out[MD5AUTH_LEN]);

/*
 * Check a client's response against a stored plaintext password or md5 hash, in constant
 * time. A SCRAM secret cannot verify an md5 response: false.
 */
bool md5auth_check(const char *stored, const char *user, const uint8_t salt[4],
		   const char *response) __attribute__((warn_unused_result));

#endif
