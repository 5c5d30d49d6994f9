/* auth: authenticating clients (trust, plain, md5, scram-sha-256) against auth_file. */
#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "log.h"
#include "md5auth.h"
#include "proto.h"
#include "pool.h"
#include "scram.h"
#include "server.h"
#include "userlist.h"
#include "worker.h"

struct client_auth {
	int method; /* enum auth_type actually used */
	bool admin;
	const char *stored; /* entry or looked_up, or NULL for an unknown user */
	char *entry;        /* a copy of the auth_file entry: a reload frees the file's */
	uint8_t md5_salt[4];
	char nonce[32]; /* the server's part of the SCRAM nonce: base64 of SCRAM_NONCE_RAW_LEN bytes */
	int sasl_step;
	struct scram_secret secret;
	struct scram_server scram;
	enum pwd_kind kind;         /* pwd_kind_of(stored), set with it */
	char *looked_up;            /* password found by auth_query */
	struct server *lookup_server; /* running our auth_query now */
	struct pool *lookup_pool;     /* queued for a server of this pool */
};

bool auth_in_progress(const struct client *c)
{
	return c->auth != NULL;
}

void auth_free(struct client *c)
{
	if (!c->auth)
		return;
	if (c->auth->lookup_pool)
		pool_auth_dequeue(c->auth->lookup_pool, c);
	if (c->auth->lookup_server)
		c->auth->lookup_server->auth_client = NULL;
	char *owned[] = {c->auth->looked_up, c->auth->entry};
	for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++) {
		if (owned[i]) {
			OPENSSL_cleanse(owned[i], strlen(owned[i]));
			free(owned[i]);
		}
	}
	/* the whole struct, SCRAM state included: explicit_bzero is memset's speed (kilobytes) */
	explicit_bzero(c->auth, sizeof(*c->auth));
	free(c->auth);
	c->auth = NULL;
}

static void auth_fail(struct client *c, const char *why)
{
	char who[160];
	log_warning("%s authentication failed: %s", client_describe(c, who, sizeof(who)), why);
	/* The same words whatever the reason, so the reply does not reveal whether a user exists. */
	client_close(c, "28P01", "password authentication failed for user \"%s\"", c->user_name);
}

static void auth_done(struct client *c, struct iobuf *b)
{
	bool admin = c->auth->admin;
	if (c->auth->looked_up) {
		/* Log in to servers with what auth_query found (md5 hash or SCRAM secret). */
		struct pool_user *u = pool_user_find(c->w, c->user_name, true);
		if (u && !u->password)
			u->password = strdup(c->auth->looked_up);
	}
	client_auth_ok(c, admin, b);
}

static bool auth_send(struct client *c, struct iobuf *b)
{
	bool ok = client_send(c, b);
	iobuf_release(b);
	return ok;
}

/* The SCRAM secret for a stored entry: parsed, or derived once from a plaintext password. */
static bool auth_scram_secret(struct client *c, struct scram_secret *out)
{
	struct client_auth *a = c->auth;
	if (!a->stored)
		return scram_mock_secret(c->user_name, c->w->scram_mock_key,
					 sizeof(c->w->scram_mock_key), out);
	switch (a->kind) {
	case PWD_SCRAM:
	case PWD_PLAIN: {
		/* Parsed or derived once per user, not at every login (cleared on reload). */
		struct pool_user *u = pool_user_find(c->w, c->user_name, true);
		if (!u)
			return false;
		if (!u->password || strcmp(u->password, a->stored) != 0) {
			/* Not the auth_file entry (auth_query): nothing to cache against. */
			if (a->kind == PWD_SCRAM)
				return scram_parse_secret(a->stored, out);
			uint8_t salt[16];
			RAND_bytes(salt, sizeof(salt));
			return scram_secret_from_password(a->stored, salt, sizeof(salt),
							  SCRAM_DEFAULT_ITERATIONS, out);
		}
		if (!u->scram_cache && a->kind == PWD_SCRAM) {
			struct scram_secret *s = calloc(1, sizeof(*s));
			if (!s || !scram_parse_secret(a->stored, s)) {
				free(s);
				return false;
			}
			u->scram_cache = s;
		}
		if (!u->scram_cache) {
			uint8_t salt[16];
			struct scram_secret *s = calloc(1, sizeof(*s));
			if (!s)
				return false;
			RAND_bytes(salt, sizeof(salt));
			if (!scram_secret_from_password(a->stored, salt, sizeof(salt),
							SCRAM_DEFAULT_ITERATIONS, s)) {
				free(s);
				return false;
			}
			u->scram_cache = s;
		}
		*out = *(struct scram_secret *)u->scram_cache;
		return true;
	}
	case PWD_MD5:
		return false;
	}
	return false;
}

static void auth_continue(struct client *c);

/*
 * No auth_file entry: when auth_user and auth_query are set, ask PostgreSQL over a pooled
 * connection of auth_user. Returns true when there is nothing to look up (go on now).
 */
static bool auth_start_lookup(struct client *c)
{
	struct worker *w = c->w;
	struct config *cfg = w->cfg;
	struct pool_db *pdb = pool_db_find(w, c->db_name, true);
	if (!pdb)
		return true;
	const char *au = pdb->cfg.auth_user && *pdb->cfg.auth_user ? pdb->cfg.auth_user
								   : cfg->auth_user;
	if (!au || !*au || !cfg->auth_query || !*cfg->auth_query)
		return true;
	const char *adb = pdb->cfg.auth_dbname && *pdb->cfg.auth_dbname ? pdb->cfg.auth_dbname
									 : cfg->auth_dbname;
	struct pool_db *ldb = adb && *adb ? pool_db_find(w, adb, true) : pdb;
	struct pool_user *lu = ldb ? pool_user_find(w, au, true) : NULL;
	struct pool *lp = lu ? pool_get(w, ldb, lu) : NULL;
	if (!lp) {
		client_close(c, "08006", "auth_query: cannot reach database for auth_user %s", au);
		return false;
	}
	c->auth->lookup_pool = lp;
	pool_auth_enqueue(lp, c);
	return false;
}

void auth_lookup_started(struct client *c, struct server *s)
{
	c->auth->lookup_pool = NULL;
	c->auth->lookup_server = s;
}

void auth_lookup_result(struct client *c, const char *password)
{
	struct client_auth *a = c->auth;
	if (!a || a->looked_up || !password)
		return;
	a->looked_up = strdup(password);
}

void auth_lookup_done(struct client *c, const char *error)
{
	struct client_auth *a = c->auth;
	if (!a)
		return;
	a->lookup_server = NULL;
	if (error) {
		client_close(c, "08006", "auth_query failed: %s", error);
		return;
	}
	a->stored = a->looked_up;
	if (a->stored)
		a->kind = pwd_kind_of(a->stored);
	auth_continue(c);
}

void auth_begin(struct client *c, bool admin)
{
	struct worker *w = c->w;
	struct config *cfg = w->cfg;

	c->auth = calloc(1, sizeof(*c->auth));
	if (!c->auth) {
		client_close(c, "53200", "out of memory");
		return;
	}
	struct client_auth *a = c->auth;
	a->admin = admin;
	/* the userlist worked the kind out when it was loaded */
	int kind = PWD_PLAIN;
	const char *found =
		w->users_file ? userlist_find_kind(w->users_file, c->user_name, &kind) : NULL;
	if (found && !(a->entry = strdup(found))) {
		client_close(c, "53200", "out of memory");
		return;
	}
	a->stored = a->entry;
	a->kind = (enum pwd_kind)kind;
	if (admin) {
		bool is_admin = config_list_contains(cfg->admin_users, c->user_name);
		bool is_stats = config_list_contains(cfg->stats_users, c->user_name);
		if (!is_admin && !is_stats) {
			char who[160];
			log_warning("%s refused: not in admin_users or stats_users",
				    client_describe(c, who, sizeof(who)));
			client_close(c, "28000", "not allowed to connect to the admin console");
			return;
		}
		c->admin_may_control = is_admin;
	}
	if (!admin && !a->stored && !auth_start_lookup(c))
		return; /* the lookup goes on, or the client was closed */
	auth_continue(c);
}

/* Decide how to check the password, now that the stored secret is known. */
static void auth_continue(struct client *c)
{
	struct worker *w = c->w;
	struct config *cfg = w->cfg;
	struct client_auth *a = c->auth;
	struct iobuf b = {0};

	a->method = cfg->auth_type;
	switch (a->method) {
	case AUTH_TYPE_ANY:
		auth_done(c, &b);
		iobuf_release(&b);
		return;
	case AUTH_TYPE_TRUST:
		if (w->users_file && !a->stored) {
			auth_fail(c, "user not in auth_file (trust still needs an entry)");
			return;
		}
		auth_done(c, &b);
		iobuf_release(&b);
		return;
	case AUTH_TYPE_PLAIN:
		proto_build_auth(&b, 3, NULL, 0);
		(void)auth_send(c, &b);
		return;
	case AUTH_TYPE_MD5:
		if (a->stored && a->kind == PWD_SCRAM) {
			/* An md5 exchange cannot check a SCRAM secret: use SCRAM instead. */
			a->method = AUTH_TYPE_SCRAM;
			break;
		}
		if (!worker_random(c->w, a->md5_salt, sizeof(a->md5_salt))) {
			auth_fail(c, "cannot get random bytes for the salt");
			return;
		}
		proto_build_auth(&b, 5, a->md5_salt, sizeof(a->md5_salt));
		(void)auth_send(c, &b);
		return;
	case AUTH_TYPE_SCRAM:
		break;
	default:
		client_close(c, "28000", "auth_type %s is not supported by pgtally",
			     cfg->auth_type == AUTH_TYPE_HBA ? "hba" : "cert");
		return;
	}
	/* SASL: offer SCRAM-SHA-256 (no channel binding). */
	static const char mechs[] = "SCRAM-SHA-256\0";
	proto_build_auth(&b, 10, mechs, sizeof(mechs));
	(void)auth_send(c, &b);
}

static bool check_plain(struct client *c, const char *given)
{
	const char *stored = c->auth->stored;
	if (!stored)
		return false;
	switch (pwd_kind_of(stored)) {
	case PWD_PLAIN: {
		size_t a = strlen(stored), b = strlen(given);
		return a == b && CRYPTO_memcmp(stored, given, a) == 0;
	}
	case PWD_MD5: {
		char hash[MD5AUTH_LEN];
		md5auth_password_hash(c->user_name, given, hash);
		return CRYPTO_memcmp(hash, stored, MD5AUTH_LEN - 1) == 0;
	}
	case PWD_SCRAM: {
		struct scram_secret want, got;
		if (!scram_parse_secret(stored, &want))
			return false;
		if (!scram_secret_from_password(given, want.salt, want.salt_len, want.iterations,
						&got))
			return false;
		return CRYPTO_memcmp(want.stored_key, got.stored_key, sizeof(got.stored_key)) == 0 &&
		       CRYPTO_memcmp(want.server_key, got.server_key, sizeof(got.server_key)) == 0;
	}
	}
	return false;
}

static void auth_sasl(struct client *c, const uint8_t *body, size_t len)
{
	struct client_auth *a = c->auth;
	struct proto_reader r;
	struct iobuf b = {0};
	char out[SCRAM_MAX_MESSAGE_LEN];
	size_t outlen = 0;
	const char *err = NULL;

	proto_reader_init(&r, body, len);
	if (a->sasl_step == 0) {
		const char *mech = proto_get_str(&r);
		uint32_t dlen = proto_get_u32(&r);
		if (!mech || r.bad || strcmp(mech, "SCRAM-SHA-256") != 0) {
			client_close(c, "28000", "SASL mechanism not supported (use SCRAM-SHA-256)");
			return;
		}
		if (dlen == 0xffffffffu || dlen != (size_t)(r.end - r.p)) {
			client_close(c, "08P01", "malformed SASLInitialResponse");
			return;
		}
		if (!auth_scram_secret(c, &a->secret)) {
			if (a->stored && a->kind == PWD_MD5)
				auth_fail(c, "auth_file holds an md5 hash, which cannot do SCRAM");
			else
				auth_fail(c, "cannot build a SCRAM secret");
			return;
		}
		/* The server's nonce from the worker's random pool (scram.c would call RAND_bytes). */
		uint8_t raw[SCRAM_NONCE_RAW_LEN];
		if (!a->scram.test_nonce) {
			if (!worker_random(c->w, raw, sizeof(raw)) ||
			    !scram_b64_encode(raw, sizeof(raw), a->nonce, sizeof(a->nonce), NULL)) {
				auth_fail(c, "cannot get random bytes for the SCRAM nonce");
				return;
			}
			OPENSSL_cleanse(raw, sizeof(raw));
			a->scram.test_nonce = a->nonce;
		}
		if (!scram_server_handle_first(&a->scram, &a->secret, (const char *)r.p, dlen, out,
					       sizeof(out), &outlen, &err)) {
			client_close(c, "08P01", "bad SCRAM message: %s", err ? err : "?");
			return;
		}
		a->sasl_step = 1;
		proto_build_auth(&b, 11, out, outlen);
		(void)auth_send(c, &b);
		return;
	}
	if (!scram_server_handle_final(&a->scram, (const char *)body, len, out, sizeof(out),
				       &outlen, &err)) {
		auth_fail(c, a->stored ? (err ? err : "wrong password") : "no such user");
		return;
	}
	if (!a->stored) {
		auth_fail(c, "no such user");
		return;
	}
	/* Keep the keys so pgtally can log in to the server as this user (passthrough). */
	if (a->kind == PWD_SCRAM && a->scram.have_client_key) {
		struct pool_user *u = pool_user_find(c->w, c->user_name, true);
		if (u) {
			memcpy(u->scram_client_key, a->scram.client_key, 32);
			memcpy(u->scram_server_key, a->secret.server_key, 32);
			u->have_scram_keys = true;
		}
	}
	proto_build_auth(&b, 12, out, outlen);
	auth_done(c, &b);
	iobuf_release(&b);
}

void auth_handle_message(struct client *c, const uint8_t *body, size_t len)
{
	struct client_auth *a = c->auth;
	struct iobuf b = {0};

	if (!a) {
		client_close(c, "08P01", "unexpected password message");
		return;
	}
	if (a->method == AUTH_TYPE_SCRAM) {
		auth_sasl(c, body, len);
		return;
	}
	if (len == 0 || body[len - 1] != '\0') {
		client_close(c, "08P01", "malformed password message");
		return;
	}
	const char *given = (const char *)body;
	bool ok;
	if (a->method == AUTH_TYPE_PLAIN)
		ok = check_plain(c, given);
	else
		ok = a->stored && md5auth_check(a->stored, c->user_name, a->md5_salt, given);
	if (!ok) {
		auth_fail(c, a->stored ? "wrong password" : "no such user");
		return;
	}
	auth_done(c, &b);
	iobuf_release(&b);
}
