/*
 * proto: the PostgreSQL v3 wire protocol over byte buffers: framing, parsing and building of
 * messages. Never touches a socket, so unit tests and fuzzers call it directly.
 */
#ifndef PGT_PROTO_H
#define PGT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iobuf.h"

#define PROTO_V3 196608u /* 3.0 */
#define PROTO_CANCEL_REQUEST 80877102u
#define PROTO_SSL_REQUEST 80877103u
#define PROTO_GSSENC_REQUEST 80877104u

/* Largest startup packet accepted (PostgreSQL uses 10000). */
#define PROTO_MAX_STARTUP 10000

#define PROTO_MAX_STARTUP_PARAMS 64

/* A parsed startup packet; strings point into the packet. */
struct proto_startup {
	uint32_t code; /* protocol version or one of the request codes */
	uint32_t cancel_pid;
	uint32_t cancel_key;
	size_t n_params;
	const char *keys[PROTO_MAX_STARTUP_PARAMS];
	const char *values[PROTO_MAX_STARTUP_PARAMS];
};

/*
 * Parse a startup-phase packet (length word included). Returns false with a reason in *err
 * when it is malformed.
 */
bool proto_parse_startup(const uint8_t *pkt, size_t len, struct proto_startup *out,
			 const char **err) __attribute__((warn_unused_result));
const char *proto_startup_get(const struct proto_startup *st, const char *key);

/* A cursor over a message body, for parsing. */
struct proto_reader {
	const uint8_t *p;
	const uint8_t *end;
	bool bad; /* set when a read ran past the end */
};

static inline void proto_reader_init(struct proto_reader *r, const uint8_t *p, size_t len)
{
	r->p = p;
	r->end = len ? p + len : p; /* p may be NULL for an empty buffer: no arithmetic on it */
	r->bad = false;
}

uint8_t proto_get_u8(struct proto_reader *r);
uint16_t proto_get_u16(struct proto_reader *r);
uint32_t proto_get_u32(struct proto_reader *r);
/* A NUL-terminated string inside the body, or NULL (and bad) when unterminated. */
const char *proto_get_str(struct proto_reader *r);
const uint8_t *proto_get_bytes(struct proto_reader *r, size_t n);

static inline uint32_t proto_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Fields of an ErrorResponse / NoticeResponse that pgtally looks at. */
struct proto_error {
	const char *severity; /* non-localized (V) when present, else S */
	const char *sqlstate;
	const char *message;
};
bool proto_parse_error(const uint8_t *body, size_t len, struct proto_error *out);

/*
 * Rows affected/returned from the CommandComplete tag tag[0..len) ("SELECT 5", "INSERT 0 3");
 * 0 if none.
 */
uint64_t proto_command_rows(const char *tag, size_t len);

/* Building messages into an iobuf. pkt_begin returns the offset to hand to pkt_end. */
size_t pkt_begin(struct iobuf *b, char type);
void pkt_end(struct iobuf *b, size_t start);
void pkt_put_u8(struct iobuf *b, uint8_t v);
void pkt_put_u16(struct iobuf *b, uint16_t v);
void pkt_put_u32(struct iobuf *b, uint32_t v);
void pkt_put_str(struct iobuf *b, const char *s);
void pkt_put_bytes(struct iobuf *b, const void *p, size_t n);
/* True when every append succeeded since the buffer was last checked (allocation failure). */
bool pkt_ok(struct iobuf *b);

void proto_build_error(struct iobuf *b, bool notice, const char *severity, const char *sqlstate,
		       const char *message);
void proto_build_auth(struct iobuf *b, uint32_t code, const void *data, size_t len);
void proto_build_param_status(struct iobuf *b, const char *key, const char *value);
void proto_build_backend_key(struct iobuf *b, uint32_t pid, uint32_t key);
void proto_build_ready(struct iobuf *b, char status);
void proto_build_query(struct iobuf *b, const char *sql);
void proto_build_cancel(struct iobuf *b, uint32_t pid, uint32_t key);
void proto_build_terminate(struct iobuf *b);
void proto_build_password(struct iobuf *b, const char *password);
void proto_build_sasl_initial(struct iobuf *b, const char *mech, const void *data, size_t len);
void proto_build_sasl_response(struct iobuf *b, const void *data, size_t len);
void proto_build_negotiate_version(struct iobuf *b, uint32_t newest_minor,
				   const char *const *unknown, size_t n_unknown);
/* Startup message from key/value pairs (NULL-terminated array of alternating strings). */
void proto_build_startup(struct iobuf *b, const char *const *kv);

/* Simple result sets, for the admin console. */
void proto_build_row_desc(struct iobuf *b, const char *const *names, const uint32_t *type_oids,
			  size_t n);
void proto_build_data_row(struct iobuf *b, const char *const *values, size_t n);
void proto_build_command_complete(struct iobuf *b, const char *tag);

#define PG_TYPE_TEXT 25u
#define PG_TYPE_INT4 23u
#define PG_TYPE_INT8 20u
#define PG_TYPE_NUMERIC 1700u
#define PG_TYPE_TIMESTAMPTZ 1184u

#endif
