/*
 * forward: what pgtally does with each client message on its way to the server: the request
 * queue entries that replies will complete, statement fingerprints and N+1 checks, named
 * prepared statements rewritten to pgtally's shared ones, errors and replies pgtally makes
 * itself in pipeline order, and the SQL it answers locally (DEALLOCATE, DISCARD ALL).
 * client.c's processing loop calls these for the message at in->rpos.
 */
#ifndef PGT_FORWARD_H
#define PGT_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "nplus1.h"
#include "rq.h"

struct client;
struct server;

/* What a handler did with the message at in->rpos. */
enum fwd_action {
	FWD_FORWARD,  /* forward it unchanged (it joins the run) */
	FWD_CONSUMED, /* handled here: not forwarded */
	FWD_FAILED,   /* the client was closed */
	FWD_PREFIX,   /* its start went rewritten (*prefix bytes of the body): the rest streams */
};

/* Client messages larger than this are streamed through, not held whole and inspected. */
#define FWD_INSPECT_MAX (1024 * 1024)

/* How far into a Parse or Bind too large to hold whole pgtally looks for its names. */
#define FWD_NAMES_MAX 1024

/* Are the names at the start of a Parse or Bind body among the have bytes here? */
bool fwd_names_here(uint8_t type, const uint8_t *body, size_t have);

/* A Bind too large to hold whole (len bytes of body, have of them here, its names among them):
 * the start rewritten for a named statement (FWD_PREFIX), the rest as it comes. */
enum fwd_action fwd_bind_streamed(struct client *c, struct server *s, const uint8_t *body,
				  size_t have, size_t len, size_t *prefix, size_t *run_start,
				  usec_t now);

/* Send the bytes [*run_start, rpos) of the client's input to its server. */
bool fwd_flush_run(struct client *c, size_t *run_start);

/* Queue an entry for a reply the server owes; NULL (client closed) when out of memory. */
struct rq_entry *fwd_expect(struct client *c, struct server *s, enum rq_type type, usec_t now);

bool fwd_prepared_on(const struct client *c);

int fwd_query(struct client *c, struct server *s, const char *sql, size_t len, bool whole,
	      size_t *run_start, usec_t now);
enum fwd_action fwd_parse(struct client *c, struct server *s, const uint8_t *body, size_t len,
			  bool whole, size_t *run_start, usec_t now);
/* A Bind held whole (a larger one: fwd_bind_streamed). */
enum fwd_action fwd_bind(struct client *c, struct server *s, const uint8_t *body, size_t len,
			 size_t *run_start, usec_t now);
enum fwd_action fwd_describe(struct client *c, struct server *s, const uint8_t *body, size_t len,
			     bool whole, size_t *run_start, usec_t now);
enum fwd_action fwd_close(struct client *c, struct server *s, const uint8_t *body, size_t len,
			  bool whole, usec_t now);
enum fwd_action fwd_execute(struct client *c, struct server *s, const uint8_t *body, size_t len,
			    size_t *run_start, usec_t now);

/* The client ran DEALLOCATE ALL (or DISCARD ALL, discard_all): forget its prepared statements
 * (and parameters). */
void fwd_client_discarded(struct client *c, bool discard_all);

/* DEALLOCATE name|ALL or DISCARD ALL as the whole Query: answered here (true). */
bool fwd_local_command(struct client *c, const char *sql, size_t len, usec_t now);

/* A counted statement of c completed or failed: N+1 bookkeeping (query: its normalized
 * text from the statistics, or NULL). */
void fwd_statement_done(struct client *c, const struct rq_entry *e, const char *query,
			uint64_t rows, usec_t duration, bool failed, usec_t now);

#endif
