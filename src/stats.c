/* stats: pool counters and the per-statement hooks on the data path. */
#include "stats.h"

#include "client.h"
#include "pool.h"
#include "server.h"

void stats_client_query(struct client *c, const char *sql, size_t len, usec_t now)
{
	(void)c;
	(void)sql;
	(void)len;
	(void)now;
}

void stats_client_parse(struct client *c, const uint8_t *body, size_t len)
{
	(void)c;
	(void)body;
	(void)len;
}

void stats_client_bind(struct client *c, const uint8_t *body, size_t len)
{
	(void)c;
	(void)body;
	(void)len;
}

void stats_client_execute(struct client *c, usec_t now)
{
	(void)c;
	(void)now;
}

void stats_command_complete(struct client *c, struct server *s, const char *tag, size_t len,
			    usec_t now)
{
	(void)c;
	(void)s;
	(void)tag;
	(void)len;
	(void)now;
}

void stats_error(struct client *c, struct server *s, const uint8_t *body, size_t len, usec_t now)
{
	(void)c;
	(void)s;
	(void)body;
	(void)len;
	(void)now;
}

void stats_ready(struct client *c, struct server *s, char status, usec_t now)
{
	struct pool *pool = c->pool;
	(void)status;
	pool->stats.query_count++;
	if (c->query_start && now >= c->query_start)
		pool->stats.query_time += (uint64_t)(now - c->query_start);
	/* A pipelined request behind this one starts being timed now. */
	c->query_start = s->expect_rfq > 0 ? now : 0;
}
