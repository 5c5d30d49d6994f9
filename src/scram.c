/* scram: SCRAM-SHA-256 secrets and both sides of the exchange, over caller-owned buffers. */
#include "scram.h"

#include <stdio.h>
#include <string.h>

#include <pthread.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define SECRET_PREFIX "SCRAM-SHA-256$"
/* Room for the three parts of an AuthMessage, each bounded by SCRAM_MAX_MESSAGE_LEN. */
#define AUTH_MSG_CAP (3 * SCRAM_MAX_MESSAGE_LEN + 4)

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* ---- base64 ---- */

bool scram_b64_encode(const uint8_t *in, size_t len, char *out, size_t outcap, size_t *outlen)
{
	size_t need = (len + 2) / 3 * 4;
	size_t o = 0;

	if (len > (SIZE_MAX / 4) - 3 || outcap < need + 1)
		return false;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		size_t rest = len - i;

		if (rest > 1)
			v |= (uint32_t)in[i + 1] << 8;
		if (rest > 2)
			v |= in[i + 2];
		out[o++] = b64_alphabet[(v >> 18) & 63];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = rest > 1 ? b64_alphabet[(v >> 6) & 63] : '=';
		out[o++] = rest > 2 ? b64_alphabet[v & 63] : '=';
	}
	out[o] = '\0';
	if (outlen)
		*outlen = o;
	return true;
}

/* Value of each byte as a base64 digit, -1 for a byte that is not one. */
/* clang-format off */
static const signed char b64_values[256] = {
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1, -1, 63,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
	-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, -1,
	-1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};
/* clang-format on */

bool scram_b64_decode(const char *in, size_t len, uint8_t *out, size_t outcap, size_t *outlen)
{
	size_t o = 0;

	if (len % 4 != 0)
		return false;
	for (size_t i = 0; i < len; i += 4) {
		const unsigned char *q = (const unsigned char *)in + i;
		/* '=' pads only the last group, in its last one or two places */
		int pad = i + 4 == len && q[3] == '=' ? (q[2] == '=' ? 2 : 1) : 0;
		int v0 = b64_values[q[0]], v1 = b64_values[q[1]];
		int v2 = pad == 2 ? 0 : b64_values[q[2]];
		int v3 = pad ? 0 : b64_values[q[3]];

		if ((v0 | v1 | v2 | v3) < 0)
			return false; /* not a digit, or a '=' anywhere else */
		uint32_t w =
			(uint32_t)v0 << 18 | (uint32_t)v1 << 12 | (uint32_t)v2 << 6 | (uint32_t)v3;
		size_t nbytes = 3 - (size_t)pad;

		/* spare bits must be zero, or two encodings would decode to the same bytes */
		if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))
			return false;
		if (o + nbytes > outcap)
			return false;
		out[o++] = (uint8_t)(w >> 16);
		if (nbytes > 1)
			out[o++] = (uint8_t)(w >> 8);
		if (nbytes > 2)
			out[o++] = (uint8_t)w;
	}
	*outlen = o;
	return true;
}

/* ---- primitives ---- */

/*
 * OpenSSL 3 looks an algorithm up through its providers on every one-shot HMAC() or
 * EVP_Digest(EVP_sha256()) call, which costs more than the hashing of a SCRAM login. Fetch
 * SHA-256 once per process and build HMAC (RFC 2104) on it.
 */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *sha256_get(void)
{
	pthread_once(&sha256_once, sha256_fetch);
	return sha256_md ? sha256_md : EVP_sha256();
}

static bool digest_parts(EVP_MD_CTX *ctx, const void *a, size_t alen, const void *b, size_t blen,
			 uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int olen = 0;
	return EVP_DigestInit_ex(ctx, sha256_get(), NULL) && EVP_DigestUpdate(ctx, a, alen) &&
	       (blen == 0 || EVP_DigestUpdate(ctx, b, blen)) &&
	       EVP_DigestFinal_ex(ctx, out, &olen) && olen == SCRAM_KEY_LEN;
}

static bool hmac_sha256(const uint8_t *key, size_t keylen, const void *data, size_t len,
			uint8_t out[SCRAM_KEY_LEN])
{
	enum { BLOCK = 64 };
	uint8_t k[BLOCK] = {0}, pad[BLOCK], inner[SCRAM_KEY_LEN];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx != NULL;

	if (ok && keylen > BLOCK)
		ok = digest_parts(ctx, key, keylen, NULL, 0, k); /* long keys are hashed first */
	else if (ok)
		memcpy(k, key, keylen);
	for (int i = 0; ok && i < BLOCK; i++)
		pad[i] = k[i] ^ 0x36;
	ok = ok && digest_parts(ctx, pad, BLOCK, data, len, inner);
	for (int i = 0; ok && i < BLOCK; i++)
		pad[i] = k[i] ^ 0x5c;
	ok = ok && digest_parts(ctx, pad, BLOCK, inner, sizeof(inner), out);
	EVP_MD_CTX_free(ctx);
	OPENSSL_cleanse(k, sizeof(k));
	OPENSSL_cleanse(pad, sizeof(pad));
	OPENSSL_cleanse(inner, sizeof(inner));
	return ok;
}

static bool sha256(const uint8_t *data, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx && digest_parts(ctx, data, len, NULL, 0, out);
	EVP_MD_CTX_free(ctx);
	return ok;
}

/*
 * SASLprep (RFC 4013) is applied only as far as it is the identity: ASCII passwords are used
 * unchanged, which is also what PostgreSQL does (printable ASCII maps to itself, and a
 * password with control characters fails SASLprep, upon which PostgreSQL uses the raw bytes).
 * NOT covered for non-ASCII: mapping of non-ASCII spaces to U+0020, removal of the "mapped to
 * nothing" code points, NFKC normalisation and the prohibited/bidi checks. Non-ASCII passwords
 * are used as raw bytes, which agrees with PostgreSQL when the UTF-8 text is already in NFKC
 * form without such code points (e.g. precomposed accented letters), or is not valid UTF-8.
 */
static const char *saslprep_password(const char *password)
{
	return password;
}

static bool keys_from_password(const char *password, const uint8_t *salt, size_t salt_len,
			       int iterations, uint8_t client_key[SCRAM_KEY_LEN],
			       uint8_t server_key[SCRAM_KEY_LEN])
{
	static const char ck_label[] = "Client Key";
	static const char sk_label[] = "Server Key";
	uint8_t salted[SCRAM_KEY_LEN];
	const char *pw = saslprep_password(password);
	bool ok;

	if (iterations < 1 || iterations > SCRAM_MAX_ITERATIONS || salt_len > INT32_MAX)
		return false;
	ok = PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), salt, (int)salt_len, iterations, sha256_get(),
			       SCRAM_KEY_LEN, salted) == 1 &&
	     hmac_sha256(salted, sizeof(salted), ck_label, strlen(ck_label), client_key) &&
	     hmac_sha256(salted, sizeof(salted), sk_label, strlen(sk_label), server_key);
	OPENSSL_cleanse(salted, sizeof(salted));
	return ok;
}

/* A decimal count in [1, max]: no sign, no spaces. */
static bool parse_count(const char *s, size_t n, int max, int *out)
{
	long v = 0;

	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
		if (v > max)
			return false;
	}
	if (v < 1)
		return false;
	*out = (int)v;
	return true;
}

/* RFC 5802 printable, minus ','. */
static bool nonce_chars_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x21 || c > 0x7e || c == ',')
			return false;
	}
	return true;
}

static bool make_nonce(const char *preset, char *out, size_t outcap)
{
	uint8_t raw[SCRAM_NONCE_RAW_LEN];
	bool ok;

	if (preset) {
		size_t n = strlen(preset);

		if (n == 0 || n >= outcap || n > SCRAM_MAX_NONCE_LEN || !nonce_chars_ok(preset, n))
			return false;
		memcpy(out, preset, n + 1);
		return true;
	}
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return false;
	ok = scram_b64_encode(raw, sizeof(raw), out, outcap, NULL);
	OPENSSL_cleanse(raw, sizeof(raw));
	return ok;
}

/*
 * A cursor over one SCRAM message: attributes are "x=value" separated by ','. The messages
 * were checked to contain no NUL, but all scanning is bounded by the length anyway.
 */
struct cursor {
	const char *p;
	const char *end;
};

static bool msg_ok(const char *msg, size_t len)
{
	return msg && len <= SCRAM_MAX_MESSAGE_LEN && memchr(msg, '\0', len) == NULL;
}

/* Read "<attr>=value" up to the next ',' or the end; leaves the cursor on the ',' or end. */
static bool read_attr(struct cursor *c, char attr, const char **val, size_t *vlen)
{
	const char *comma;

	if (c->end - c->p < 2 || c->p[0] != attr || c->p[1] != '=')
		return false;
	c->p += 2;
	comma = memchr(c->p, ',', (size_t)(c->end - c->p));
	*val = c->p;
	*vlen = (size_t)((comma ? comma : c->end) - c->p);
	c->p += *vlen;
	return true;
}

/* Same, for any attribute letter (extensions); the letter is returned in *attr. */
static bool read_any_attr(struct cursor *c, char *attr, const char **val, size_t *vlen)
{
	char a;

	if (c->end - c->p < 2)
		return false;
	a = c->p[0];
	if (!((a >= 'a' && a <= 'z') || (a >= 'A' && a <= 'Z')))
		return false;
	*attr = a;
	return read_attr(c, a, val, vlen);
}

static bool skip_comma(struct cursor *c)
{
	if (c->p >= c->end || *c->p != ',')
		return false;
	c->p++;
	return true;
}

/* Optional trailing ",x=..." extensions, which we do not support and so ignore. */
static bool skip_extensions(struct cursor *c)
{
	while (c->p < c->end) {
		char a;
		const char *v;
		size_t n;

		if (!skip_comma(c) || !read_any_attr(c, &a, &v, &n))
			return false;
	}
	return true;
}

static bool append(char *buf, size_t cap, size_t *len, const char *s, size_t n)
{
	if (n >= cap - *len)
		return false;
	memcpy(buf + *len, s, n);
	*len += n;
	buf[*len] = '\0';
	return true;
}

static bool append_str(char *buf, size_t cap, size_t *len, const char *s)
{
	return append(buf, cap, len, s, strlen(s));
}

static bool set_err(const char **err, const char *msg)
{
	if (err)
		*err = msg;
	return false;
}

/* ---- secrets ---- */

enum pwd_kind pwd_kind_of(const char *stored)
{
	struct scram_secret tmp;

	if (strlen(stored) == 35 && strncmp(stored, "md5", 3) == 0 &&
	    strspn(stored + 3, "0123456789abcdef") == 32)
		return PWD_MD5;
	if (strncmp(stored, SECRET_PREFIX, strlen(SECRET_PREFIX)) == 0 &&
	    scram_parse_secret(stored, &tmp)) {
		OPENSSL_cleanse(&tmp, sizeof(tmp));
		return PWD_SCRAM;
	}
	return PWD_PLAIN;
}

bool scram_parse_secret(const char *text, struct scram_secret *out)
{
	const char *p, *colon, *dollar, *colon2;
	size_t n;
	struct scram_secret s;

	memset(&s, 0, sizeof(s));
	if (strncmp(text, SECRET_PREFIX, strlen(SECRET_PREFIX)) != 0)
		return false;
	p = text + strlen(SECRET_PREFIX);
	colon = strchr(p, ':');
	if (!colon || !parse_count(p, (size_t)(colon - p), SCRAM_MAX_ITERATIONS, &s.iterations))
		return false;
	p = colon + 1;
	dollar = strchr(p, '$');
	if (!dollar ||
	    !scram_b64_decode(p, (size_t)(dollar - p), s.salt, sizeof(s.salt), &s.salt_len) ||
	    s.salt_len == 0)
		return false;
	p = dollar + 1;
	colon2 = strchr(p, ':');
	if (!colon2 ||
	    !scram_b64_decode(p, (size_t)(colon2 - p), s.stored_key, sizeof(s.stored_key), &n) ||
	    n != SCRAM_KEY_LEN)
		goto fail;
	p = colon2 + 1;
	if (!scram_b64_decode(p, strlen(p), s.server_key, sizeof(s.server_key), &n) ||
	    n != SCRAM_KEY_LEN)
		goto fail;
	*out = s;
	OPENSSL_cleanse(&s, sizeof(s));
	return true;
fail:
	OPENSSL_cleanse(&s, sizeof(s));
	return false;
}

bool scram_secret_to_text(const struct scram_secret *secret, char *out, size_t outcap)
{
	char salt[SCRAM_MAX_SALT_LEN * 2], sk[64], vk[64];
	int n;
	bool ok = false;

	if (scram_b64_encode(secret->salt, secret->salt_len, salt, sizeof(salt), NULL) &&
	    scram_b64_encode(secret->stored_key, SCRAM_KEY_LEN, sk, sizeof(sk), NULL) &&
	    scram_b64_encode(secret->server_key, SCRAM_KEY_LEN, vk, sizeof(vk), NULL)) {
		n = snprintf(out, outcap, SECRET_PREFIX "%d:%s$%s:%s", secret->iterations, salt, sk,
			     vk);
		ok = n > 0 && (size_t)n < outcap;
	}
	OPENSSL_cleanse(sk, sizeof(sk));
	OPENSSL_cleanse(vk, sizeof(vk));
	return ok;
}

bool scram_secret_from_password(const char *password, const uint8_t *salt, size_t salt_len,
				int iterations, struct scram_secret *out)
{
	uint8_t client_key[SCRAM_KEY_LEN];
	struct scram_secret s;
	bool ok;

	if (!password || salt_len == 0 || salt_len > SCRAM_MAX_SALT_LEN)
		return false;
	memset(&s, 0, sizeof(s));
	s.iterations = iterations;
	memcpy(s.salt, salt, salt_len);
	s.salt_len = salt_len;
	ok = keys_from_password(password, salt, salt_len, iterations, client_key, s.server_key) &&
	     sha256(client_key, sizeof(client_key), s.stored_key);
	if (ok)
		*out = s;
	OPENSSL_cleanse(client_key, sizeof(client_key));
	OPENSSL_cleanse(&s, sizeof(s));
	return ok;
}

bool scram_mock_secret(const char *username, const uint8_t *key, size_t keylen,
		       struct scram_secret *out)
{
	/* One subkey per field, so that no field reveals another; all depend on the name. */
	static const char *const labels[] = {"pgtally mock salt", "pgtally mock stored key",
					     "pgtally mock server key"};
	uint8_t sub[SCRAM_KEY_LEN], v[3][SCRAM_KEY_LEN];
	bool ok = true;

	if (!username || !key || keylen == 0)
		return false;
	for (int i = 0; i < 3 && ok; i++)
		ok = hmac_sha256(key, keylen, labels[i], strlen(labels[i]), sub) &&
		     hmac_sha256(sub, sizeof(sub), username, strlen(username), v[i]);
	if (ok) {
		memset(out, 0, sizeof(*out));
		out->iterations = SCRAM_DEFAULT_ITERATIONS;
		out->salt_len = 16; /* the length PostgreSQL uses, so a mock looks like the rest */
		memcpy(out->salt, v[0], out->salt_len);
		memcpy(out->stored_key, v[1], SCRAM_KEY_LEN);
		memcpy(out->server_key, v[2], SCRAM_KEY_LEN);
	}
	OPENSSL_cleanse(sub, sizeof(sub));
	OPENSSL_cleanse(v, sizeof(v));
	return ok;
}

/* ---- server side ---- */

bool scram_server_handle_first(struct scram_server *st, const struct scram_secret *secret,
			       const char *msg, size_t len, char *out, size_t outcap,
			       size_t *outlen, const char **err)
{
	struct cursor c = {msg, msg + len};
	const char *bare, *val, *nonce;
	size_t vlen, nonce_len, n;
	char snonce[SCRAM_MAX_NONCE_LEN + 1];
	char num[16];

	if (st->stage != 0)
		return set_err(err, "unexpected SCRAM client-first-message");
	st->stage = 2; /* any failure ends the exchange */
	if (!msg_ok(msg, len))
		return set_err(err, "malformed SCRAM client-first-message: bad length or NUL byte");

	/* GS2 header */
	if (c.p < c.end && *c.p == 'p')
		return set_err(err, "client requires SCRAM channel binding, which is not offered");
	if (c.p >= c.end || (*c.p != 'n' && *c.p != 'y'))
		return set_err(err,
			       "malformed SCRAM client-first-message: bad channel binding flag");
	/*
	 * 'y' (the client could bind but believes the server cannot) is only acceptable because
	 * pgtally never offers SCRAM-SHA-256-PLUS; offering it over TLS would make 'y' a downgrade.
	 */
	st->cbind_flag = *c.p++;
	if (!skip_comma(&c))
		return set_err(err, "malformed SCRAM client-first-message: bad GS2 header");
	if (c.p < c.end && *c.p == 'a')
		return set_err(err, "SCRAM authorization identity is not supported");
	if (!skip_comma(&c))
		return set_err(err, "malformed SCRAM client-first-message: bad GS2 header");

	/* client-first-bare: the user name is ignored (the startup packet's one counts) */
	bare = c.p;
	if (c.p < c.end && *c.p == 'm')
		return set_err(err, "SCRAM mandatory extensions are not supported");
	if (!read_attr(&c, 'n', &val, &vlen) || !skip_comma(&c))
		return set_err(err, "malformed SCRAM client-first-message: missing user name");
	if (!read_attr(&c, 'r', &nonce, &nonce_len))
		return set_err(err, "malformed SCRAM client-first-message: missing nonce");
	if (nonce_len == 0 || nonce_len > SCRAM_MAX_NONCE_LEN || !nonce_chars_ok(nonce, nonce_len))
		return set_err(err, "malformed SCRAM client-first-message: invalid nonce");
	if (!skip_extensions(&c))
		return set_err(err, "malformed SCRAM client-first-message: garbage at the end");

	if (!make_nonce(st->test_nonce, snonce, sizeof(snonce)))
		return set_err(err, "could not generate a SCRAM nonce");

	st->secret = *secret;
	st->auth_msg_len = 0;
	if (!append(st->auth_msg, sizeof(st->auth_msg), &st->auth_msg_len, bare,
		    (size_t)(c.end - bare)) ||
	    !append_str(st->auth_msg, sizeof(st->auth_msg), &st->auth_msg_len, ","))
		return set_err(err, "SCRAM message too long");
	size_t sf_start = st->auth_msg_len;

	st->nonce_off = sf_start + 2;
	st->nonce_len = nonce_len + strlen(snonce);
	snprintf(num, sizeof(num), "%d", secret->iterations);
	{
		char salt[SCRAM_MAX_SALT_LEN * 2];
		char *am = st->auth_msg;
		size_t cap = sizeof(st->auth_msg);
		size_t *l = &st->auth_msg_len;

		if (secret->salt_len == 0 || secret->iterations < 1 ||
		    !scram_b64_encode(secret->salt, secret->salt_len, salt, sizeof(salt), NULL))
			return set_err(err, "invalid SCRAM secret");
		if (!append_str(am, cap, l, "r=") || !append(am, cap, l, nonce, nonce_len) ||
		    !append_str(am, cap, l, snonce) || !append_str(am, cap, l, ",s=") ||
		    !append_str(am, cap, l, salt) || !append_str(am, cap, l, ",i=") ||
		    !append_str(am, cap, l, num))
			return set_err(err, "SCRAM message too long");
	}
	n = st->auth_msg_len - sf_start;
	if (n >= outcap)
		return set_err(err, "output buffer too small");
	memcpy(out, st->auth_msg + sf_start, n);
	out[n] = '\0';
	if (outlen)
		*outlen = n;
	if (!append_str(st->auth_msg, sizeof(st->auth_msg), &st->auth_msg_len, ","))
		return set_err(err, "SCRAM message too long");
	st->stage = 1;
	return true;
}

bool scram_server_handle_final(struct scram_server *st, const char *msg, size_t len, char *out,
			       size_t outcap, size_t *outlen, const char **err)
{
	struct cursor c = {msg, msg + len};
	const char *val, *proof_start = NULL;
	size_t vlen, n;
	uint8_t cbind[SCRAM_MAX_MESSAGE_LEN];
	uint8_t proof[SCRAM_KEY_LEN + 1];
	uint8_t sig[SCRAM_KEY_LEN], key[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN];
	char auth_msg[AUTH_MSG_CAP];
	size_t am_len = 0;
	char attr = 0;
	char gs2[3];
	bool ok = false;

	if (st->stage != 1)
		return set_err(err, "unexpected SCRAM client-final-message");
	st->stage = 2;
	if (!msg_ok(msg, len))
		return set_err(err, "malformed SCRAM client-final-message: bad length or NUL byte");

	/* c= must echo the GS2 header of the client-first-message */
	if (!read_attr(&c, 'c', &val, &vlen) ||
	    !scram_b64_decode(val, vlen, cbind, sizeof(cbind), &n))
		return set_err(err, "malformed SCRAM client-final-message: bad channel binding");
	gs2[0] = st->cbind_flag;
	gs2[1] = gs2[2] = ',';
	if (n != sizeof(gs2) || memcmp(cbind, gs2, sizeof(gs2)) != 0)
		return set_err(err, "SCRAM channel binding data does not match the first message");

	if (!skip_comma(&c) || !read_attr(&c, 'r', &val, &vlen))
		return set_err(err, "malformed SCRAM client-final-message: missing nonce");
	if (vlen != st->nonce_len || memcmp(val, st->auth_msg + st->nonce_off, vlen) != 0)
		return set_err(err, "SCRAM nonce does not match");

	/* extensions, then the proof, which must come last */
	while (attr != 'p') {
		proof_start = c.p;
		if (!skip_comma(&c) || !read_any_attr(&c, &attr, &val, &vlen))
			return set_err(err, "malformed SCRAM client-final-message: missing proof");
	}
	if (c.p != c.end)
		return set_err(err, "malformed SCRAM client-final-message: garbage after proof");
	if (!scram_b64_decode(val, vlen, proof, sizeof(proof), &n) || n != SCRAM_KEY_LEN)
		return set_err(err, "malformed SCRAM client-final-message: bad proof");

	if (!append(auth_msg, sizeof(auth_msg), &am_len, st->auth_msg, st->auth_msg_len) ||
	    !append(auth_msg, sizeof(auth_msg), &am_len, msg, (size_t)(proof_start - msg)))
		return set_err(err, "SCRAM message too long");

	/* ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); H(ClientKey) == StoredKey? */
	if (!hmac_sha256(st->secret.stored_key, SCRAM_KEY_LEN, auth_msg, am_len, sig)) {
		set_err(err, "SCRAM computation failed");
		goto out;
	}
	for (int i = 0; i < SCRAM_KEY_LEN; i++)
		key[i] = proof[i] ^ sig[i];
	if (!sha256(key, sizeof(key), stored)) {
		set_err(err, "SCRAM computation failed");
		goto out;
	}
	if (CRYPTO_memcmp(stored, st->secret.stored_key, SCRAM_KEY_LEN) != 0 || st->fail_final) {
		set_err(err, "SCRAM authentication failed: wrong password or unknown user");
		goto out;
	}

	/* server-final-message */
	if (!hmac_sha256(st->secret.server_key, SCRAM_KEY_LEN, auth_msg, am_len, sig)) {
		set_err(err, "SCRAM computation failed");
		goto out;
	}
	if (outcap < 3 || !scram_b64_encode(sig, sizeof(sig), out + 2, outcap - 2, &n)) {
		set_err(err, "output buffer too small");
		goto out;
	}
	out[0] = 'v';
	out[1] = '=';
	if (outlen)
		*outlen = n + 2;
	memcpy(st->client_key, key, SCRAM_KEY_LEN);
	st->have_client_key = true;
	ok = true;
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(sig, sizeof(sig));
	OPENSSL_cleanse(proof, sizeof(proof));
	return ok;
}

/* explicit_bzero: as sure as OPENSSL_cleanse, at memset's speed for these kilobytes */
void scram_server_clear(struct scram_server *st)
{
	explicit_bzero(st, sizeof(*st));
}

/* ---- client side ---- */

bool scram_client_first(struct scram_client *st, char *out, size_t outcap, size_t *outlen)
{
	char *b = st->client_first_bare;
	size_t cap = sizeof(st->client_first_bare);
	size_t *l = &st->client_first_bare_len;
	int n;

	if (st->stage != 0)
		return false;
	if (!make_nonce(st->test_nonce, st->nonce, sizeof(st->nonce)))
		return false;
	*l = 0;
	if (!append_str(b, cap, l, "n="))
		return false;
	/* saslname: ',' and '=' are the only characters that need escaping */
	for (const char *u = st->username ? st->username : ""; *u; u++) {
		const char *esc = *u == ',' ? "=2C" : *u == '=' ? "=3D" : NULL;

		if (!(esc ? append_str(b, cap, l, esc) : append(b, cap, l, u, 1)))
			return false;
	}
	if (!append_str(b, cap, l, ",r=") || !append_str(b, cap, l, st->nonce))
		return false;
	n = snprintf(out, outcap, "n,,%s", b);
	if (n < 0 || (size_t)n >= outcap)
		return false;
	if (outlen)
		*outlen = (size_t)n;
	st->stage = 1;
	return true;
}

bool scram_client_final(struct scram_client *st, const char *password, const uint8_t *client_key,
			const uint8_t *server_key, const char *server_first, size_t len, char *out,
			size_t outcap, size_t *outlen, const char **err)
{
	struct cursor c = {server_first, server_first + len};
	const char *nonce, *val;
	size_t nonce_len, vlen, n, own_len;
	uint8_t salt[256];
	size_t salt_len;
	int iterations;
	int max_iter = st->max_iterations > 0 && st->max_iterations < SCRAM_MAX_ITERATIONS
			       ? st->max_iterations
			       : SCRAM_MAX_ITERATIONS;
	uint8_t ck[SCRAM_KEY_LEN], sk[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN];
	char auth_msg[AUTH_MSG_CAP];
	size_t am_len = 0, without_proof_off;
	bool ok = false;

	if (st->stage != 1)
		return set_err(err, "unexpected SCRAM server-first-message");
	st->stage = 4; /* any failure ends the exchange */
	if (!msg_ok(server_first, len))
		return set_err(err, "malformed SCRAM server-first-message: bad length or NUL byte");
	if (c.p < c.end && *c.p == 'm')
		return set_err(err, "server requires an unsupported SCRAM extension");
	if (!read_attr(&c, 'r', &nonce, &nonce_len))
		return set_err(err, "malformed SCRAM server-first-message: missing nonce");
	own_len = strlen(st->nonce);
	if (nonce_len <= own_len || memcmp(nonce, st->nonce, own_len) != 0 ||
	    !nonce_chars_ok(nonce, nonce_len))
		return set_err(err, "SCRAM server nonce does not extend the client nonce");
	if (!skip_comma(&c) || !read_attr(&c, 's', &val, &vlen) ||
	    !scram_b64_decode(val, vlen, salt, sizeof(salt), &salt_len) || salt_len == 0)
		return set_err(err, "malformed SCRAM server-first-message: bad salt");
	if (!skip_comma(&c) || !read_attr(&c, 'i', &val, &vlen))
		return set_err(err,
			       "malformed SCRAM server-first-message: missing iteration count");
	if (!parse_count(val, vlen, max_iter, &iterations))
		return set_err(err,
			       "SCRAM iteration count from the server is invalid or too large");
	if (!skip_extensions(&c))
		return set_err(err, "malformed SCRAM server-first-message: garbage at the end");

	if (client_key && server_key) {
		memcpy(ck, client_key, SCRAM_KEY_LEN);
		memcpy(sk, server_key, SCRAM_KEY_LEN);
	} else if (password) {
		if (!keys_from_password(password, salt, salt_len, iterations, ck, sk)) {
			set_err(err, "SCRAM key derivation failed");
			goto out;
		}
	} else {
		return set_err(err, "no password or SCRAM keys to log in with");
	}

	/* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
	if (!append(auth_msg, sizeof(auth_msg), &am_len, st->client_first_bare,
		    st->client_first_bare_len) ||
	    !append_str(auth_msg, sizeof(auth_msg), &am_len, ",") ||
	    !append(auth_msg, sizeof(auth_msg), &am_len, server_first, len) ||
	    !append_str(auth_msg, sizeof(auth_msg), &am_len, ","))
		goto too_long;
	without_proof_off = am_len;
	/* "biws" is base64("n,,"): we never use channel binding */
	if (!append_str(auth_msg, sizeof(auth_msg), &am_len, "c=biws,r=") ||
	    !append(auth_msg, sizeof(auth_msg), &am_len, nonce, nonce_len))
		goto too_long;

	if (!sha256(ck, sizeof(ck), stored) ||
	    !hmac_sha256(stored, sizeof(stored), auth_msg, am_len, sig) ||
	    !hmac_sha256(sk, sizeof(sk), auth_msg, am_len, st->server_signature)) {
		set_err(err, "SCRAM computation failed");
		goto out;
	}
	for (int i = 0; i < SCRAM_KEY_LEN; i++)
		sig[i] ^= ck[i]; /* now the ClientProof */

	n = am_len - without_proof_off;
	if (n + 3 >= outcap)
		goto too_small;
	memcpy(out, auth_msg + without_proof_off, n);
	memcpy(out + n, ",p=", 3);
	if (!scram_b64_encode(sig, sizeof(sig), out + n + 3, outcap - n - 3, &vlen))
		goto too_small;
	if (outlen)
		*outlen = n + 3 + vlen;
	st->stage = 2;
	ok = true;
	goto out;
too_small:
	set_err(err, "output buffer too small");
	goto out;
too_long:
	set_err(err, "SCRAM message too long");
out:
	OPENSSL_cleanse(ck, sizeof(ck));
	OPENSSL_cleanse(sk, sizeof(sk));
	OPENSSL_cleanse(sig, sizeof(sig));
	return ok;
}

bool scram_client_verify_final(struct scram_client *st, const char *server_final, size_t len,
			       const char **err)
{
	struct cursor c = {server_final, server_final + len};
	const char *val;
	size_t vlen, n;
	uint8_t sig[SCRAM_KEY_LEN + 1];

	if (st->stage != 2)
		return set_err(err, "unexpected SCRAM server-final-message");
	st->stage = 4;
	if (!msg_ok(server_final, len))
		return set_err(err, "malformed SCRAM server-final-message: bad length or NUL byte");
	if (c.p < c.end && *c.p == 'e')
		return set_err(err, "server reported a SCRAM error");
	if (!read_attr(&c, 'v', &val, &vlen) || !skip_extensions(&c) ||
	    !scram_b64_decode(val, vlen, sig, sizeof(sig), &n) || n != SCRAM_KEY_LEN)
		return set_err(err, "malformed SCRAM server-final-message");
	if (CRYPTO_memcmp(sig, st->server_signature, SCRAM_KEY_LEN) != 0)
		return set_err(err, "SCRAM server signature is wrong: the server does not know "
				    "the secret");
	st->stage = 3;
	return true;
}

void scram_client_clear(struct scram_client *st)
{
	explicit_bzero(st, sizeof(*st));
}
