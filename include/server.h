/* server: connections to PostgreSQL: connect, login, response processing, release. */
#ifndef PGT_SERVER_H
#define PGT_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "dns.h"
#include "list.h"
#include "objcache.h"
#include "pool.h"
#include "prepared.h"
#include "rq.h"
#include "sbuf.h"

struct client;
struct worker;
struct scram_client;

/* Each state names the list the server is on. */
enum server_state {
	SV_LOGIN,  /* pool->login_servers: connecting and authenticating */
	SV_IDLE,   /* pool->idle_servers: clean, ready to be given out */
	SV_ACTIVE, /* pool->active_servers: linked to a client */
	SV_USED,   /* pool->used_servers: released, needs a check before reuse */
	SV_TESTED, /* pool->tested_servers: running the check or reset query */
	SV_CLOSED, /* worker->closed_servers: freed at the end of the loop iteration */
};

/* Laid out like struct client: what every transaction touches first (client.h). */
struct server {
	/* line 0 */
	struct list node;
	struct worker *w;
	struct pool *pool;
	struct client *client;
	struct rq rq; /* requests sent and not yet answered, in order */
	/* line 1 */
	alignas(CACHE_LINE) enum server_state state;
	uint32_t fwd_remaining; /* rest of a large message streamed to the client */
	usec_t connect_time;
	usec_t request_time; /* last request sent */
	usec_t last_used;    /* released to the pool */
	usec_t link_time;
	usec_t last_done; /* last statement completion: pipelined statements start then */
	bool ext_open;   /* extended-protocol messages sent since the last Sync */
	bool copy_in;    /* COPY FROM STDIN in progress */
	bool copy_out;   /* COPY TO STDOUT in progress */
	bool copy_in_open; /* COPY FROM STDIN and the client has not ended it: Syncs are ignored */
	uint32_t copy_ends; /* CopyDone and CopyFail messages forwarded, ever */
	char txn_status; /* from the last ReadyForQuery: I, T or E */
	bool ready;      /* login done */
	bool close_needed; /* e.g. after RECONNECT: close instead of reuse */
	bool closing;
	/* Session state that outlives a transaction (cursors WITH HOLD, session advisory locks,
	 * LISTEN, temporary tables) may be held: the client keeps the server until the server
	 * says none is left. */
	bool held_dirty;
	bool held_recheck;  /* a statement since the last check may have taken or let go some */
	bool held_checking; /* the check query is out */
	bool held_none;     /* its answer: none left */
	bool set_dirty;     /* a session-level SET pgtally does not track: RESET ALL on release */
	/* line 2 */
	alignas(CACHE_LINE) const char *params[PARAM_COUNT]; /* values this session has */
	uint8_t params_own;                /* bit i: params[i] is ours (else the pool's default) */
	/* line 3: the shared prepared statements this session holds */
	alignas(CACHE_LINE) struct server_pstmts pstmts;

	alignas(CACHE_LINE) struct sbuf sb;

	struct client *auth_client; /* running auth_query for this login */
	uint64_t id;
	uint32_t be_pid;
	uint32_t be_key;
	bool in_connect_query;      /* login done, the database's connect_query running */
	uint16_t host_idx;          /* the entry of the database's host list it connected to */
	uint16_t host_tries;        /* hosts of the list that failed before, for this connection */
	socklen_t addr_len;         /* 0: a unix socket */
	union dns_addr addr;        /* where it connected: cancel requests go there */
	struct scram_client *scram; /* during login */
	struct iobuf login_params;  /* ParameterStatus pairs seen during login */
	char *login_error;
};

/* Open a new connection for the pool (state SV_LOGIN). false when it cannot even start. */
bool server_launch(struct pool *pool);

/* Link to a client: state SV_ACTIVE; queue SETs for differing parameters. */
void server_link(struct server *s, struct client *c);

/* Run auth_query for c's user on this idle server (state SV_TESTED meanwhile). */
void server_run_auth_query(struct server *s, struct client *c);

/* Run server_check_query on an idle server (state SV_TESTED until it answers). */
void server_start_check(struct server *s);

/* Client went away or finished: clean up the session and return it to the pool, or close. */
void server_release(struct server *s);

/* A linked server that has answered everything and is idle again: end the transaction. */
void server_release_if_done(struct server *s);

void server_close(struct server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void server_set_state(struct server *s, enum server_state st);
void server_reap(struct worker *w);

/* Send a message buffer built by pgtally to the server. */
bool server_send(struct server *s, struct iobuf *b);

/* Forward a cancel for the query running on s, over a new connection. */
void server_send_cancel(struct server *s);

/* Drop the cancel requests still being forwarded (when the worker is freed). */
void server_cancels_free(struct worker *w);

/* Send pgtally's own replies that are due (from the client side, between messages). */
void server_emit_due(struct server *s);

/* Process server input; called from the read callback and after a link. */
void server_process(struct server *s);

#endif
