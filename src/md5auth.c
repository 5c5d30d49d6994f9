/* md5auth: PostgreSQL's MD5 password hashing and the salted challenge response. */
#include "md5auth.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "scram.h"

/* md5 of a + b as "md5" + lowercase hex. EVP_Digest*: MD5() itself is deprecated in 3.0. */
static void md5_hex2(const void *a, size_t alen, const void *b, size_t blen, char out[MD5AUTH_LEN])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
		  EVP_DigestUpdate(ctx, a, alen) == 1 && EVP_DigestUpdate(ctx, b, blen) == 1 &&
		  EVP_DigestFinal_ex(ctx, d, &dlen) == 1 && dlen == 16;

	EVP_MD_CTX_free(ctx);
	if (!ok) {
		/*
		 * Only when MD5 is unavailable (FIPS mode). An empty string never equals a
		 * 35-character response, so checks fail closed.
		 */
		out[0] = '\0';
		return;
	}
	memcpy(out, "md5", 3);
	for (int i = 0; i < 16; i++) {
		out[3 + 2 * i] = hex[d[i] >> 4];
		out[4 + 2 * i] = hex[d[i] & 15];
	}
	out[35] = '\0';
	OPENSSL_cleanse(d, sizeof(d));
}

void md5auth_password_hash(const char *user, const char *password, char out[MD5AUTH_LEN])
{
	md5_hex2(password, strlen(password), user, strlen(user), out);
}

void md5auth_salted(const char *md5hash, const uint8_t salt[4], char out[MD5AUTH_LEN])
{
	if (strlen(md5hash) != 35) {
		out[0] = '\0';
		return;
	}
	md5_hex2(md5hash + 3, 32, salt, 4, out);
}

bool md5auth_check(const char *stored, const char *user, const uint8_t salt[4],
		   const char *response)
{
	char hash[MD5AUTH_LEN], expect[MD5AUTH_LEN];
	bool ok;

	switch (pwd_kind_of(stored)) {
	case PWD_MD5:
		md5auth_salted(stored, salt, expect);
		break;
	case PWD_PLAIN:
		md5auth_password_hash(user, stored, hash);
		md5auth_salted(hash, salt, expect);
		OPENSSL_cleanse(hash, sizeof(hash));
		break;
	default:
		return false;
	}
	/* the length is public (always 35), only the digits must be compared in constant time */
	ok = strlen(expect) == 35 && strlen(response) == 35 &&
	     CRYPTO_memcmp(expect, response, 35) == 0;
	OPENSSL_cleanse(expect, sizeof(expect));
	return ok;
}
