/* client: the client-side state machine: startup, authentication, forwarding, cancel. */
#ifndef PGT_CLIENT_H
#define PGT_CLIENT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "fpcache.h"
#include "list.h"
#include "nplus1.h"
#include "objcache.h"
#include "pool.h"
#include "prepared.h"
#include "sbuf.h"

struct server;
struct worker;
struct client_auth;
struct pstmt_map;
struct nplus1_unit;
struct fp_tags;

/* The unnamed portal: which statement it runs and with what parameter values. */
struct portal_info {
	uint64_t fp;
	uint64_t params;
	uint8_t kind;
};

/* Each state names the list the client is on. */
enum client_state {
	CL_LOGIN,         /* worker->login_clients: startup and authentication */
	CL_WELCOME_WAIT,  /* pool->login_clients: authenticated, waiting for server parameters */
	CL_IDLE,          /* pool->active_clients, no server: between transactions */
	CL_WAITING,       /* pool->waiting_clients: wants a server */
	CL_ACTIVE,        /* pool->active_clients, linked to a server */
	CL_ADMIN,         /* worker->admin_clients: on the console */
	CL_CLOSED,        /* worker->closed_clients: freed at the end of the loop iteration */
};

/*
 * The fields every transaction touches come first, packed into a few cache lines (the
 * client is allocated on a cache-line boundary: client_accept): after each system call the
 * kernel has pushed most of them out of the CPU's first-level cache, so every further line a
 * transaction reads costs a miss. The rest, used at login, by SHOW or on errors, follows the
 * socket's buffer.
 */
struct client {
	/* line 0 */
	struct list node;
	struct worker *w;
	struct pool *pool;
	struct server *server;
	enum client_state state;
	/* Streaming the rest of a large message to the server, or to nowhere when dropping. */
	uint32_t fwd_remaining;
	struct nplus1_unit *np; /* N+1 unit of work, once the client runs statements */
	struct fp_tags *tags;   /* sqlcommenter tags of the latest statement, when any */
	/* line 1; request_time: last activity */
	alignas(CACHE_LINE) usec_t request_time;
	usec_t wait_start;              /* when it started waiting for a server */
	usec_t xact_start;              /* first query of the current transaction */
	usec_t query_start;             /* current request sent */
	uint16_t shape_hint[FPC_HINTS]; /* the shapes of its last statements (fpcache.h) */
	bool in_txn;                    /* inside an explicit transaction, as far as we know */
	bool skip_to_sync;              /* pgtally failed a message: drop the rest up to Sync */
	bool fwd_drop;                  /* the fwd_remaining bytes go nowhere */
	bool closing;
	bool warned_sql_prepare;
	bool warned_session_state;
	struct pstmt_map *pstmts; /* NULL until the first named Parse */
	/* line 2: what the client expects on its server; bit i of params_own: params[i] is
	 * ours to free (else it points at the pool's default, shared by every client that
	 * kept it). */
	alignas(CACHE_LINE) const char *params[PARAM_COUNT];
	uint8_t params_own;
	/* line 3: extended protocol: what the unnamed statement/portal are. */
	alignas(CACHE_LINE) struct stmt_info unnamed_stmt;
	struct portal_info unnamed_portal;
	uint64_t id; /* (cold: fills the line) */
	uint32_t cancel_pid;
	uint32_t cancel_key;

	alignas(CACHE_LINE) struct sbuf sb;

	struct client *cancel_next; /* hash chain in worker->cancel_table */
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} addr; /* peer; sa_family AF_UNIX for the unix socket */
	bool is_unix;
	bool admin_may_control; /* admin_users (vs stats_users) */
	usec_t connect_time;
	char *db_name;             /* as the client asked for it */
	char *user_name;
	struct client_auth *auth; /* only during authentication */
	struct client *auth_next; /* pool->auth_head queue of auth_query waiters */
	/* Who runs the statements, for N+1 findings: kept current by client_sync_np_ctx() so
	 * that the per-statement path reads none of the strings. */
	struct nplus1_ctx np_ctx;
};

/* Part of a message has gone to the server and the rest is still to come. */
static inline bool client_mid_message(const struct client *c)
{
	return c->fwd_remaining && !c->fwd_drop;
}

/* Refresh c->np_ctx after its pool or application_name changed. */
void client_sync_np_ctx(struct client *c);

/* Accepted connection: takes ownership of fd. */
void client_accept(struct worker *w, int fd, const struct sockaddr *addr, socklen_t addrlen,
		   bool is_unix);

/* The one way out: log why, send an ErrorResponse when sqlstate is set, and free later. */
void client_close(struct client *c, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The client is linked to a server now: push its buffered request through. */
void client_linked(struct client *c);

/* Change state and move the client to the list that state means. */
void client_set_state(struct client *c, enum client_state st);

/* Send a locally built message buffer to the client; false when the client is gone. */
bool client_send(struct client *c, struct iobuf *b);

/* Send an ErrorResponse without closing. */
void client_send_error(struct client *c, const char *sqlstate, const char *msg);

/* Authentication succeeded: go on to the pool (or the console when admin). */
void client_auth_ok(struct client *c, bool admin, struct iobuf *b);

/* Pool's welcome parameters arrived: finish the login of a waiting client. */
void client_welcome(struct client *c, struct iobuf *b);

/* Called by the server side when it has data for the client / failed. */
void client_server_lost(struct client *c, const char *sqlstate, const char *msg);

/* Free clients whose close was requested (never inside their own callbacks). */
void client_reap(struct worker *w);

/* CancelRequest arriving on a fresh connection. */
void client_handle_cancel(struct worker *w, uint32_t pid, uint32_t key);

/* Set a tracked parameter to a copy of v (NULL clears it); false when out of memory. */
bool client_param_set(struct client *c, int id, const char *v);

/* Log prefix helper: "C-<id> db/user@addr:port". */
const char *client_describe(const struct client *c, char *buf, size_t len);

#endif
