/* tls: OpenSSL contexts from the *_tls_* options and non-blocking TLS sessions for sbuf. */
#include "tls.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"

struct tls_ctx {
	SSL_CTX *ssl_ctx;
	enum tls_sslmode mode;
};

struct tls_conn {
	SSL *ssl;
	enum tls_sslmode mode;
	bool established;
	bool broken;     /* a fatal error happened: no close_notify, no more I/O */
	bool want_write; /* the handshake or the last recv needs the socket writable */
	bool want_read;  /* the last send needs the socket readable */
	int deferred;    /* what recv saw after returning data: 0 nothing, 1 end, 2 error */
	bool has_error;
	char error[256];
};

/* ---- option words ---- */

static const char *const sslmode_words[] = {"disable",   "allow",       "prefer", "require",
					    "verify-ca", "verify-full", NULL};

int tls_parse_sslmode(const char *word)
{
	if (!word)
		return -1;
	for (int i = 0; sslmode_words[i]; i++)
		if (strcasecmp(word, sslmode_words[i]) == 0)
			return i;
	return -1;
}

bool tls_parse_protocols(const char *text, unsigned *versions, char *err, size_t errlen)
{
	char word[32];
	unsigned set = 0;
	const char *p = text ? text : "";

	for (;;) {
		while (*p == ',' || *p == ':' || *p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		size_t n = 0;
		while (p[n] && p[n] != ',' && p[n] != ':' && p[n] != ' ' && p[n] != '\t')
			n++;
		if (n >= sizeof(word)) {
			snprintf(err, errlen, "unknown TLS protocol \"%.*s\"", (int)n, p);
			return false;
		}
		memcpy(word, p, n);
		word[n] = '\0';
		p += n;
		if (strcasecmp(word, "secure") == 0)
			set |= 1u << 2 | 1u << 3;
		else if (strcasecmp(word, "all") == 0 || strcasecmp(word, "legacy") == 0)
			set |= 0xfu;
		else if (strcasecmp(word, "tlsv1") == 0 || strcasecmp(word, "tlsv1.0") == 0)
			set |= 1u << 0;
		else if (strcasecmp(word, "tlsv1.1") == 0)
			set |= 1u << 1;
		else if (strcasecmp(word, "tlsv1.2") == 0)
			set |= 1u << 2;
		else if (strcasecmp(word, "tlsv1.3") == 0)
			set |= 1u << 3;
		else {
			snprintf(err, errlen,
				 "unknown TLS protocol \"%s\" (use secure, all, or a list of "
				 "tlsv1.0, tlsv1.1, tlsv1.2, tlsv1.3)",
				 word);
			return false;
		}
	}
	if (!set) {
		snprintf(err, errlen, "no TLS protocol given");
		return false;
	}
	*versions = set;
	return true;
}

const char *tls_cipher_list(const char *text)
{
	/*
	 * PgBouncer's keywords once meant hand-picked lists; today they all mean "whatever the
	 * system's OpenSSL considers right", which also follows distribution security updates.
	 */
	static const char *const system_default[] = {"",     "default", "secure",
						     "fast", "normal",  NULL};
	if (!text)
		return NULL;
	for (int i = 0; system_default[i]; i++)
		if (strcasecmp(text, system_default[i]) == 0)
			return NULL;
	/* PgBouncer's wider lists: "compat"/"legacy" take anything not completely broken. */
	if (strcasecmp(text, "compat") == 0 || strcasecmp(text, "legacy") == 0)
		return "HIGH:+3DES:!aNULL";
	if (strcasecmp(text, "all") == 0 || strcasecmp(text, "insecure") == 0)
		return "ALL:!aNULL"; /* everything that still authenticates the server */
	return text;
}

/* ---- contexts ---- */

/* The options of one direction, so both are built by the same code. */
struct tls_side {
	const char *prefix; /* "client_tls" or "server_tls", for messages */
	bool as_server;     /* pgtally is the TLS server (accepting clients) */
	const char *sslmode, *key_file, *cert_file, *ca_file, *protocols, *ciphers;
};

static bool is_set(const char *s)
{
	return s && *s;
}

/* The reason of the oldest queued OpenSSL error, then the queue cleared. */
static const char *openssl_reason(char *buf, size_t len)
{
	unsigned long code = ERR_get_error();
	ERR_clear_error();
	if (!code) {
		snprintf(buf, len, "unknown OpenSSL error");
		return buf;
	}
	const char *r = ERR_reason_error_string(code);
	if (r)
		snprintf(buf, len, "%s", r);
	else
		ERR_error_string_n(code, buf, len);
	return buf;
}

/* A file OpenSSL is about to read: say plainly when it cannot be read at all. */
static bool check_readable(const char *opt, const char *path, char *err, size_t errlen)
{
	if (access(path, R_OK) == 0)
		return true;
	snprintf(err, errlen, "%s %s: %s", opt, path, strerror(errno));
	return false;
}

static bool set_protocols(SSL_CTX *ctx, const struct tls_side *side, char *err, size_t errlen)
{
	static const int version_of[4] = {TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION,
					  TLS1_3_VERSION};
	unsigned set = 0;
	char why[160];
	if (!tls_parse_protocols(is_set(side->protocols) ? side->protocols : "secure", &set, why,
				 sizeof(why))) {
		snprintf(err, errlen, "%s_protocols: %s", side->prefix, why);
		return false;
	}
	int lo = 0, hi = 3;
	while (!(set & (1u << lo)))
		lo++;
	while (!(set & (1u << hi)))
		hi--;
	if (!SSL_CTX_set_min_proto_version(ctx, version_of[lo]) ||
	    !SSL_CTX_set_max_proto_version(ctx, version_of[hi])) {
		snprintf(err, errlen, "%s_protocols: %s", side->prefix,
			 openssl_reason(why, sizeof(why)));
		return false;
	}
	/* min/max cannot leave a hole ("tlsv1.0,tlsv1.2"); the per-version switches can. */
	static const uint64_t no_version[4] = {SSL_OP_NO_TLSv1, SSL_OP_NO_TLSv1_1,
					       SSL_OP_NO_TLSv1_2, SSL_OP_NO_TLSv1_3};
	for (int v = lo + 1; v < hi; v++)
		if (!(set & (1u << v)))
			SSL_CTX_set_options(ctx, no_version[v]);
	return true;
}

static bool load_identity(SSL_CTX *ctx, const struct tls_side *side, char *err, size_t errlen)
{
	char why[160];
	if (is_set(side->cert_file) != is_set(side->key_file)) {
		snprintf(err, errlen, "%s_cert_file and %s_key_file must be set together",
			 side->prefix, side->prefix);
		return false;
	}
	if (!is_set(side->cert_file))
		return true;
	char opt[40];
	snprintf(opt, sizeof(opt), "%s_cert_file", side->prefix);
	if (!check_readable(opt, side->cert_file, err, errlen))
		return false;
	if (SSL_CTX_use_certificate_chain_file(ctx, side->cert_file) != 1) {
		snprintf(err, errlen, "%s %s: %s", opt, side->cert_file,
			 openssl_reason(why, sizeof(why)));
		return false;
	}
	snprintf(opt, sizeof(opt), "%s_key_file", side->prefix);
	if (!check_readable(opt, side->key_file, err, errlen))
		return false;
	if (SSL_CTX_use_PrivateKey_file(ctx, side->key_file, SSL_FILETYPE_PEM) != 1) {
		snprintf(err, errlen, "%s %s: %s", opt, side->key_file,
			 openssl_reason(why, sizeof(why)));
		return false;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "%s_key_file %s does not match %s_cert_file %s", side->prefix,
			 side->key_file, side->prefix, side->cert_file);
		ERR_clear_error();
		return false;
	}
	return true;
}

static bool load_ca(SSL_CTX *ctx, const struct tls_side *side, enum tls_sslmode mode, char *err,
		    size_t errlen)
{
	char why[160], opt[40];
	snprintf(opt, sizeof(opt), "%s_ca_file", side->prefix);
	if (!is_set(side->ca_file)) {
		if (mode < TLS_MODE_VERIFY_CA)
			return true;
		if (side->as_server) {
			snprintf(err, errlen,
				 "%s_sslmode = %s needs %s to check client certificates",
				 side->prefix, sslmode_words[mode], opt);
			return false;
		}
		/* Verifying PostgreSQL without a CA file of our own: trust the system's store. */
		if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
			snprintf(err, errlen,
				 "%s is not set and the system CA store cannot be used: %s", opt,
				 openssl_reason(why, sizeof(why)));
			return false;
		}
		return true;
	}
	if (!check_readable(opt, side->ca_file, err, errlen))
		return false;
	if (SSL_CTX_load_verify_locations(ctx, side->ca_file, NULL) != 1) {
		snprintf(err, errlen, "%s %s: %s", opt, side->ca_file,
			 openssl_reason(why, sizeof(why)));
		return false;
	}
	if (side->as_server) {
		/* Tell clients which issuers we accept, so they pick the right certificate. */
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(side->ca_file);
		if (names)
			SSL_CTX_set_client_CA_list(ctx, names);
		ERR_clear_error();
	}
	return true;
}

static bool ctx_build(const struct tls_side *side, struct tls_ctx **out, char *err, size_t errlen)
{
	char why[160];
	*out = NULL;
	int mode = is_set(side->sslmode) ? tls_parse_sslmode(side->sslmode)
					 : (side->as_server ? TLS_MODE_DISABLE : TLS_MODE_PREFER);
	if (mode < 0) {
		snprintf(err, errlen, "%s_sslmode: unknown mode \"%s\"", side->prefix,
			 side->sslmode);
		return false;
	}
	if (mode == TLS_MODE_DISABLE)
		return true;
	if (side->as_server && (!is_set(side->cert_file) || !is_set(side->key_file))) {
		snprintf(err, errlen, "%s_sslmode = %s needs %s_cert_file and %s_key_file",
			 side->prefix, sslmode_words[mode], side->prefix, side->prefix);
		return false;
	}

	struct tls_ctx *tc = calloc(1, sizeof(*tc));
	if (!tc) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	tc->mode = (enum tls_sslmode)mode;
	ERR_clear_error();
	tc->ssl_ctx = SSL_CTX_new(side->as_server ? TLS_server_method() : TLS_client_method());
	if (!tc->ssl_ctx) {
		snprintf(err, errlen, "%s: %s", side->prefix, openssl_reason(why, sizeof(why)));
		free(tc);
		return false;
	}
	SSL_CTX *ctx = tc->ssl_ctx;
	uint64_t opts = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION;
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
	/* Clients routinely close without close_notify; that is an end of file, not an attack. */
	opts |= SSL_OP_IGNORE_UNEXPECTED_EOF;
#endif
	if (side->as_server)
		opts |= SSL_OP_CIPHER_SERVER_PREFERENCE;
	SSL_CTX_set_options(ctx, opts);
	/*
	 * Partial writes and a moving buffer fit sbuf: it retries from its own output queue,
	 * which grows but keeps its first bytes. Released buffers keep idle sessions small.
	 */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	if (side->as_server) {
		/* Poolers' clients reconnect rarely; resumption is not worth its state. */
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_num_tickets(ctx, 0);
	}
	if (!set_protocols(ctx, side, err, errlen))
		goto fail;
	const char *ciphers = tls_cipher_list(side->ciphers);
	if (ciphers && SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
		snprintf(err, errlen, "%s_ciphers \"%s\": %s", side->prefix, side->ciphers,
			 openssl_reason(why, sizeof(why)));
		goto fail;
	}
	if (!load_identity(ctx, side, err, errlen) || !load_ca(ctx, side, tc->mode, err, errlen))
		goto fail;
	if (tc->mode >= TLS_MODE_VERIFY_CA)
		SSL_CTX_set_verify(ctx,
				   side->as_server
					   ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
					   : SSL_VERIFY_PEER,
				   NULL);
	else
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	*out = tc;
	return true;
fail:
	tls_ctx_free(tc);
	return false;
}

bool tls_ctx_load(const struct config *cfg, struct tls_ctx **accept, struct tls_ctx **connect,
		  char *err, size_t errlen)
{
	const struct tls_side client_side = {
		.prefix = "client_tls",
		.as_server = true,
		.sslmode = cfg->client_tls_sslmode,
		.key_file = cfg->client_tls_key_file,
		.cert_file = cfg->client_tls_cert_file,
		.ca_file = cfg->client_tls_ca_file,
		.protocols = cfg->client_tls_protocols,
		.ciphers = cfg->client_tls_ciphers,
	};
	const struct tls_side server_side = {
		.prefix = "server_tls",
		.as_server = false,
		.sslmode = cfg->server_tls_sslmode,
		.key_file = cfg->server_tls_key_file,
		.cert_file = cfg->server_tls_cert_file,
		.ca_file = cfg->server_tls_ca_file,
		.protocols = cfg->server_tls_protocols,
		.ciphers = cfg->server_tls_ciphers,
	};
	struct tls_ctx *a = NULL, *c = NULL;
	if (!ctx_build(&client_side, &a, err, errlen))
		return false;
	if (!ctx_build(&server_side, &c, err, errlen)) {
		tls_ctx_free(a);
		return false;
	}
	*accept = a;
	*connect = c;
	return true;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
	if (!ctx)
		return;
	SSL_CTX_free(ctx->ssl_ctx); /* sessions still open keep their own reference */
	free(ctx);
}

enum tls_sslmode tls_ctx_mode(const struct tls_ctx *ctx)
{
	return ctx ? ctx->mode : TLS_MODE_DISABLE;
}

/* ---- sessions ---- */

static void conn_error(struct tls_conn *tc, const char *what, int ret)
{
	int e = SSL_get_error(tc->ssl, ret);
	int saved_errno = errno;
	unsigned long code = ERR_peek_error();
	char why[160];

	tc->broken = true;
	tc->has_error = true;
	if (e == SSL_ERROR_SYSCALL && code == 0) {
		snprintf(tc->error, sizeof(tc->error), "%s: %s", what,
			 saved_errno ? strerror(saved_errno) : "connection closed by peer");
		return;
	}
	openssl_reason(why, sizeof(why));
	long vr = SSL_get_verify_result(tc->ssl);
	if (vr != X509_V_OK)
		snprintf(tc->error, sizeof(tc->error), "%s: %s (%s)", what, why,
			 X509_verify_cert_error_string(vr));
	else
		snprintf(tc->error, sizeof(tc->error), "%s: %s", what, why);
}

struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int fd, bool as_server, const char *host,
			      char *err, size_t errlen)
{
	char why[160];
	struct tls_conn *tc = calloc(1, sizeof(*tc));
	if (!tc) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	tc->mode = ctx->mode;
	ERR_clear_error();
	tc->ssl = SSL_new(ctx->ssl_ctx);
	if (!tc->ssl || SSL_set_fd(tc->ssl, fd) != 1) {
		snprintf(err, errlen, "cannot create a TLS session: %s",
			 openssl_reason(why, sizeof(why)));
		goto fail;
	}
	if (as_server) {
		SSL_set_accept_state(tc->ssl);
		return tc;
	}
	SSL_set_connect_state(tc->ssl);
	if (is_set(host) && host[0] != '/') {
		unsigned char addr[16];
		bool is_ip =
			inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
		/* Server Name Indication is defined for host names only. */
		if (!is_ip)
			SSL_set_tlsext_host_name(tc->ssl, host);
		if (tc->mode == TLS_MODE_VERIFY_FULL) {
			X509_VERIFY_PARAM *param = SSL_get0_param(tc->ssl);
			int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host)
				       : X509_VERIFY_PARAM_set1_host(param, host, 0);
			if (ok != 1) {
				snprintf(err, errlen, "cannot check the certificate against %s: %s",
					 host, openssl_reason(why, sizeof(why)));
				goto fail;
			}
			if (!is_ip)
				X509_VERIFY_PARAM_set_hostflags(
					param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		}
	} else if (tc->mode == TLS_MODE_VERIFY_FULL) {
		snprintf(err, errlen,
			 "server_tls_sslmode = verify-full needs a host name to check");
		goto fail;
	}
	return tc;
fail:
	if (tc->ssl)
		SSL_free(tc->ssl);
	free(tc);
	return NULL;
}

void tls_conn_free(struct tls_conn *tc)
{
	if (!tc)
		return;
	if (tc->established && !tc->broken) {
		/* One try at close_notify; a full socket is no reason to wait. */
		ERR_clear_error();
		(void)SSL_shutdown(tc->ssl);
		ERR_clear_error();
	}
	SSL_free(tc->ssl);
	free(tc);
}

int tls_conn_handshake(struct tls_conn *tc)
{
	if (tc->established)
		return 1;
	if (tc->broken)
		return -1;
	ERR_clear_error();
	errno = 0;
	int r = SSL_do_handshake(tc->ssl);
	if (r == 1) {
		tc->established = true;
		tc->want_write = false;
		return 1;
	}
	switch (SSL_get_error(tc->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		tc->want_write = false;
		return 0;
	case SSL_ERROR_WANT_WRITE:
		tc->want_write = true;
		return 0;
	default:
		conn_error(tc, "TLS handshake failed", r);
		return -1;
	}
}

static int clamp_int(size_t n)
{
	return n > INT_MAX ? INT_MAX : (int)n;
}

ssize_t tls_conn_recv(struct tls_conn *tc, void *buf, size_t n)
{
	size_t got = 0;

	if (tc->deferred == 1)
		return 0;
	if (tc->deferred == 2 || tc->broken)
		return -1;
	tc->want_write = false;
	while (got < n) {
		ERR_clear_error();
		errno = 0;
		int r = SSL_read(tc->ssl, (char *)buf + got, clamp_int(n - got));
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		int e = SSL_get_error(tc->ssl, r);
		if (e == SSL_ERROR_WANT_READ)
			break;
		if (e == SSL_ERROR_WANT_WRITE) {
			tc->want_write = true;
			break;
		}
		if (e == SSL_ERROR_ZERO_RETURN) {
			/* The peer's close_notify: end of file now, or on the next call. */
			if (got) {
				tc->deferred = 1;
				break;
			}
			return 0;
		}
		conn_error(tc, "TLS read failed", r);
		if (got) {
			tc->deferred = 2;
			break;
		}
		return -1;
	}
	return got ? (ssize_t)got : -2;
}

ssize_t tls_conn_send(struct tls_conn *tc, const void *buf, size_t n)
{
	size_t done = 0;

	if (tc->broken)
		return -1;
	tc->want_read = false;
	while (done < n) {
		ERR_clear_error();
		errno = 0;
		int r = SSL_write(tc->ssl, (const char *)buf + done, clamp_int(n - done));
		if (r > 0) {
			done += (size_t)r;
			continue;
		}
		int e = SSL_get_error(tc->ssl, r);
		if (e == SSL_ERROR_WANT_WRITE)
			break;
		if (e == SSL_ERROR_WANT_READ) {
			tc->want_read = true;
			break;
		}
		conn_error(tc, "TLS write failed", r);
		return -1;
	}
	return (ssize_t)done;
}

bool tls_conn_wants_write(const struct tls_conn *tc)
{
	return tc->want_write;
}

bool tls_conn_wants_read(const struct tls_conn *tc)
{
	return tc->want_read;
}

bool tls_conn_has_pending(const struct tls_conn *tc)
{
	return tc->deferred != 0 || SSL_has_pending(tc->ssl) == 1;
}

bool tls_conn_may_fall_back(const struct tls_conn *tc)
{
	return !tls_mode_requires_tls(tc->mode);
}

bool tls_conn_established(const struct tls_conn *tc)
{
	return tc->established;
}

const char *tls_conn_error(const struct tls_conn *tc)
{
	return tc->has_error ? tc->error : NULL;
}

void tls_conn_set_error(struct tls_conn *tc, const char *msg)
{
	tc->broken = true;
	tc->has_error = true;
	snprintf(tc->error, sizeof(tc->error), "%s", msg);
}

const char *tls_conn_version(const struct tls_conn *tc)
{
	return tc->established ? SSL_get_version(tc->ssl) : NULL;
}

void tls_conn_describe(const struct tls_conn *tc, char *buf, size_t len)
{
	if (!len)
		return;
	buf[0] = '\0';
	if (!tc->established)
		return;
	const char *cipher = SSL_get_cipher_name(tc->ssl);
	snprintf(buf, len, "%s/%s", SSL_get_version(tc->ssl), cipher ? cipher : "?");
}
