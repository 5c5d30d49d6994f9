/*
 * tls: OpenSSL contexts built from the client_tls_* and server_tls_* options, and one
 * connection's TLS session over a non-blocking socket.
 *
 * Nothing here touches libevent or protocol messages: sbuf drives a struct tls_conn from its
 * read and write events and is the only caller of the tls_conn_* functions. A struct tls_ctx
 * is read-only once built, so connections of several workers may share it; each session
 * holds its own reference to the OpenSSL context, so a context can be freed (RELOAD) while
 * sessions made from it are still open.
 */
#ifndef PGT_TLS_H
#define PGT_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct config;

/* The *_tls_sslmode values, weakest first (comparisons rely on the order). */
enum tls_sslmode {
	TLS_MODE_DISABLE = 0,
	TLS_MODE_ALLOW,
	TLS_MODE_PREFER,
	TLS_MODE_REQUIRE,
	TLS_MODE_VERIFY_CA,
	TLS_MODE_VERIFY_FULL,
};

struct tls_ctx;
struct tls_conn;

/* An sslmode keyword (case-insensitive); -1 when it is not one. */
int tls_parse_sslmode(const char *word);

/*
 * A *_tls_protocols value: "secure" (TLS 1.2 and 1.3), "all"/"legacy" (1.0 to 1.3), or a list
 * of tlsv1.0 (or tlsv1), tlsv1.1, tlsv1.2, tlsv1.3 separated by commas, colons or spaces.
 * Sets the bit (1 << minor) for each allowed TLS 1.minor. false with a message when invalid.
 */
bool tls_parse_protocols(const char *text, unsigned *versions, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * The OpenSSL cipher list for a *_tls_ciphers value: NULL for "default", "secure", "fast",
 * "normal" and "" (keep OpenSSL's own defaults), PgBouncer's wider lists for "compat" and
 * "legacy" (the same) and for "all" and "insecure" (the same), else the text itself.
 */
const char *tls_cipher_list(const char *text);

/*
 * Build the contexts the config asks for: accept for client connections (client_tls_*),
 * connect for connections to PostgreSQL (server_tls_*). Each pointer is set to NULL when its
 * sslmode is disable. Nothing is returned on failure: false with a message naming the option.
 */
bool tls_ctx_load(const struct config *cfg, struct tls_ctx **accept, struct tls_ctx **connect,
		  char *err, size_t errlen) __attribute__((warn_unused_result));
void tls_ctx_free(struct tls_ctx *ctx);

/* TLS_MODE_DISABLE for NULL. */
enum tls_sslmode tls_ctx_mode(const struct tls_ctx *ctx);

/* Does the mode refuse a connection without TLS (require, verify-ca, verify-full)? */
static inline bool tls_mode_requires_tls(enum tls_sslmode mode)
{
	return mode >= TLS_MODE_REQUIRE;
}

/*
 * A session on a connected socket: as the TLS server (accepting a client) or as the TLS
 * client (to PostgreSQL at host, which verify-full checks the certificate against; host may
 * be a name or an IP address). NULL with a message on failure.
 */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int fd, bool as_server, const char *host,
			      char *err, size_t errlen);

/* Send close_notify when the session is healthy (without waiting), then free it. */
void tls_conn_free(struct tls_conn *tc);

/* Drive the handshake: 1 done, 0 not yet (wait for the socket), -1 failed (see error). */
int tls_conn_handshake(struct tls_conn *tc);

/*
 * Decrypt up to n bytes into buf: >0 bytes, 0 when the peer closed, -1 on error (see
 * tls_conn_error), -2 when nothing is available yet. Reads until OpenSSL would block or buf
 * is full, so that nothing decrypted is left behind unless buf filled up.
 */
ssize_t tls_conn_recv(struct tls_conn *tc, void *buf, size_t n);

/*
 * Encrypt and send from buf: the number of bytes taken (possibly 0 when the socket is full),
 * or -1 on error. After a short count, call again with the rest (and possibly more) at any
 * address: the start of the data must be the same.
 */
ssize_t tls_conn_send(struct tls_conn *tc, const void *buf, size_t n);

/* The last handshake, recv or send stopped because OpenSSL must write / must read first. */
bool tls_conn_wants_write(const struct tls_conn *tc);
bool tls_conn_wants_read(const struct tls_conn *tc);

/* Bytes OpenSSL holds that the socket will not signal again (decrypted or buffered). */
bool tls_conn_has_pending(const struct tls_conn *tc);

/* Is the mode one where a refused SSLRequest ('N') means going on in plain text? */
bool tls_conn_may_fall_back(const struct tls_conn *tc);

bool tls_conn_established(const struct tls_conn *tc);

/* Why the last operation failed, or NULL when nothing failed. */
const char *tls_conn_error(const struct tls_conn *tc);

/* Record a failure found outside OpenSSL (e.g. the server refused TLS). */
void tls_conn_set_error(struct tls_conn *tc, const char *msg);

/* "TLSv1.3" etc. once established, else NULL. */
const char *tls_conn_version(const struct tls_conn *tc);

/* "TLSv1.3/TLS_AES_256_GCM_SHA384" (protocol/cipher) into buf, "" before the handshake. */
void tls_conn_describe(const struct tls_conn *tc, char *buf, size_t len);

#endif
