/*
 * stats: what the pooler measures on the data path: pool counters for SHOW STATS, and the
 * per-statement hooks that feed fingerprint statistics and N+1 detection.
 */
#ifndef PGT_STATS_H
#define PGT_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct client;
struct server;

/* Client side: a simple Query, Parse, Bind, Execute forwarded to the server. */
void stats_client_query(struct client *c, const char *sql, size_t len, usec_t now);
void stats_client_parse(struct client *c, const uint8_t *body, size_t len);
void stats_client_bind(struct client *c, const uint8_t *body, size_t len);
void stats_client_execute(struct client *c, usec_t now);

/* Server side: CommandComplete (tag may be NULL for EmptyQueryResponse), ErrorResponse,
 * ReadyForQuery. */
void stats_command_complete(struct client *c, struct server *s, const char *tag, size_t len,
			    usec_t now);
void stats_error(struct client *c, struct server *s, const uint8_t *body, size_t len, usec_t now);
void stats_ready(struct client *c, struct server *s, char status, usec_t now);

#endif
