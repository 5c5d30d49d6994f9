/*
 * pool: (database, user) pools of server connections, their limits, the FIFO of clients
 * waiting for a server, and the counters behind SHOW POOLS / SHOW STATS.
 */
#ifndef PGT_POOL_H
#define PGT_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "iobuf.h"
#include "list.h"
#include "metrics.h"
#include "objcache.h"

struct app_counter;
struct client;
struct server;
struct worker;

/* Parameters pgtally keeps equal between a client and the server it is given. */
enum param_id {
	PARAM_CLIENT_ENCODING,
	PARAM_DATESTYLE,
	PARAM_TIMEZONE,
	PARAM_INTERVALSTYLE,
	PARAM_STANDARD_CONFORMING_STRINGS,
	PARAM_APPLICATION_NAME,
	PARAM_SEARCH_PATH,
	PARAM_COUNT
};
extern const char *const param_names[PARAM_COUNT];
/* Index of a tracked parameter by name (case-insensitive), or -1. */
int param_lookup(const char *name);

/* Counters for SHOW STATS; times in microseconds. */
struct pool_stats {
	uint64_t server_assignment_count;
	uint64_t xact_count;
	uint64_t query_count;
	uint64_t bytes_received;
	uint64_t bytes_sent;
	uint64_t xact_time;
	uint64_t query_time;
	uint64_t wait_time;
	uint64_t client_parse_count;
	uint64_t server_parse_count;
	uint64_t bind_count;
	uint64_t client_login_count;
};

/* A database as configured, with its runtime switches. */
struct pool_db {
	struct list node; /* worker->dbs */
	char *name;
	struct config_db cfg; /* a deep copy; strings owned here */
	bool paused;
	bool disabled;
	bool auto_created; /* made from the "*" entry */
	bool removed;      /* gone from the config after a reload */
	int n_servers;     /* across all users, on this worker */
	int n_clients;
	struct app_counter *shared; /* servers over all workers, for max_db_connections */
	unsigned host_next; /* the host list's entry for the next connection (mod its length) */
};

/* A user known to the pooler: the stored secret and SCRAM passthrough keys. */
struct pool_user {
	struct list node; /* worker->users */
	char *name;
	char *password; /* from auth_file, or NULL */
	bool have_scram_keys;
	uint8_t scram_client_key[32];
	uint8_t scram_server_key[32];
	void *scram_cache; /* struct scram_secret derived from a plaintext password */
	int n_servers;     /* on this worker */
	int n_clients;
	struct app_counter *shared; /* servers over all workers, for max_user_connections */
};

struct pool {
	struct list node; /* worker->pools */
	struct worker *w;
	struct pool_db *db;
	struct pool_user *user;
	int pool_mode; /* enum pool_mode */

	/* Clients, by state. */
	struct list active_clients;  /* linked to a server or idle between transactions */
	struct list waiting_clients; /* FIFO, waiting for a server */
	struct list login_clients;   /* logged in, waiting for the welcome parameters */

	/* Servers, by state. */
	struct list active_servers;
	struct list idle_servers; /* most recently used last */
	struct list used_servers; /* need a check before reuse */
	struct list tested_servers;
	struct list login_servers;

	int n_servers; /* all states, on this worker */
	struct app_counter *shared; /* servers over all workers, for pool_size */

	/* ParameterStatus messages from the first server login, sent to every new client. */
	struct iobuf welcome;
	bool have_welcome;
	char *welcome_params[PARAM_COUNT]; /* defaults for clients that do not set them */

	usec_t last_connect_failed; /* 0 = none: wait server_login_retry before trying again */
	bool logged_held; /* said once that a client kept its server for held session state */
	/* For the next launch, a retry after a failed login: the hosts of the list tried so far,
	 * and the one to try next. */
	unsigned host_tries;
	int host_retry;
	char *last_error;

	/* Clients waiting for an auth_query over this pool's servers (FIFO via auth_next). */
	struct client *auth_head;
	struct client *auth_tail;

	struct pool_stats stats;
	struct pool_stats stats_prev; /* at the last stats_period, for averages */
	usec_t maxwait_start;       /* oldest waiting client's wait start, from the FIFO */
	/* latency histograms and the last stats_period, from a line of their own */
	alignas(CACHE_LINE) struct metrics_pool metrics;
};

/* Find or make the pool; NULL when out of memory. */
struct pool *pool_get(struct worker *w, struct pool_db *db, struct pool_user *user);

/* Set pool->pool_mode from the config: the user's pool_mode, else the database's, else the
 * global one (PgBouncer's order). */
void pool_update_mode(struct pool *pool);

/* Client wants a server: link one now or queue the client. */
void pool_request_server(struct pool *pool, struct client *c);

/* A server finished its work (login, release, check): hand it to a waiter or make it idle. */
void pool_server_ready(struct pool *pool, struct server *s);

/* Launch server connections while the pool has waiters or is below min_pool_size. */
void pool_maintain(struct pool *pool);

/* pool_maintain() for each pool of w (a lookup ended, RESUME). */
void pool_maintain_all(struct worker *w);

/*
 * The welcome (ParameterStatus set) of a pool is shared with the same pool on the other
 * workers, so a client there logs in without waiting for a server of its own.
 * publish: after the first login filled pool->welcome. adopt: true when pool has one now;
 * clients already waiting for it (pool->login_clients) are welcomed.
 */
void pool_welcome_publish(struct pool *pool);
bool pool_welcome_adopt(struct pool *pool);
/* Send the pool's welcome (it has one: have_welcome) to the clients that logged in and
 * wait for it. */
void pool_welcome_waiting(struct pool *pool);

/* A server of pool closed: give its slot back to the counts over all workers. */
void pool_server_gone(struct pool *pool);

/*
 * With several workers: close idle servers other workers need more (they hit pool_size
 * with clients waiting) and retry this worker's waiters. Run when another worker asks.
 */
void pool_rebalance(struct worker *w);

/* min_pool_size for pool, and its server connections over all workers (which min counts). */
int pool_min_servers(const struct pool *pool);
int pool_total_servers(const struct pool *pool);

/* Find or create pool_db/pool_user entries. */
struct pool_db *pool_db_find(struct worker *w, const char *name, bool create_from_fallback);
struct pool_user *pool_user_find(struct worker *w, const char *name, bool create);

/* Refresh a database's settings from the config (at creation and on reload). */
void pool_db_configure(struct pool_db *db, const struct config_db *cfg, bool from_fallback);

/* Would a server of db be made differently under cd (address, database, user, password,
 * startup parameters, connect_query)? Then a reload replaces its connections. */
bool pool_db_conn_changed(const struct pool_db *db, const struct config_db *cd);

/* Mark every server of pool close_needed and close the idle ones now (RECONNECT, reload). */
void pool_reconnect(struct pool *pool, const char *why);

/*
 * The forced user of pool's database changed on a reload: pool becomes user's, with its
 * clients and servers counted there, as PgBouncer renames its forced user in place. False
 * when out of memory (pool unchanged).
 */
bool pool_set_user(struct pool *pool, struct pool_user *user) __attribute__((warn_unused_result));

/* auth_query waiters: queue, remove (client gone), and hand out to a ready server. */
void pool_auth_enqueue(struct pool *pool, struct client *c);
void pool_auth_dequeue(struct pool *pool, struct client *c);

/* Free everything a pool owns once it has no connections. */
void pool_free(struct pool *pool);

#endif
