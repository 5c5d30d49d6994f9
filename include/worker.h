/*
 * worker: one event loop and everything it touches. No data-path state lives in globals, so
 * several workers can run side by side in threads.
 */
#ifndef PGT_WORKER_H
#define PGT_WORKER_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/time.h>
#include <time.h>

#include "config.h"
#include "list.h"
#include "log.h"
#include "objcache.h"
#include "prepared.h"
#include "stats.h"

struct client;
struct fp_cache;
struct inbox;
struct listener;
struct tls_ctx;
struct userlist;

#define CANCEL_TABLE_SIZE 4096

struct worker {
	int id;
	struct event_base *base;
	struct evdns_base *dns;       /* server host names (dns.h) */
	struct dns_name *dns_names;   /* what they resolved to */
	bool dns_closing;             /* dns_free() runs */
	struct config *cfg;          /* current config; replaced on reload */
	struct userlist *users_file; /* auth_file, or NULL */
	struct tls_ctx *tls_accept;  /* for clients (client_tls_*); NULL when disabled */
	struct tls_ctx *tls_connect; /* to PostgreSQL (server_tls_*); NULL when disabled */

	/* struct client and struct server objects, on cache lines (objcache.h) */
	struct objcache clients;
	struct objcache servers;

	/* Free list of SBUF_BUFSIZE buffers. */
	uint8_t **free_bufs;
	size_t n_free_bufs;
	size_t cap_free_bufs;

	struct list dbs;   /* struct pool_db */
	struct list users; /* struct pool_user */
	struct list pools; /* struct pool */

	struct list login_clients;
	struct list admin_clients;
	struct list closed_clients;
	struct list closed_servers;
	struct list cancel_conns; /* cancel requests being forwarded to PostgreSQL (server.c) */
	struct list admin_waits;  /* console commands that answer later (admin.c) */
	int n_clients; /* all client connections, for max_client_conn */
	int n_servers;

	struct client *cancel_table[CANCEL_TABLE_SIZE];
	struct fp_table fps; /* per-fingerprint statistics */
	struct pstmt_registry pstmts; /* shared prepared statements */
	struct fp_cache *fpcache;     /* fingerprints of Parse texts seen before */
	struct nplus1_table *nplus1;  /* N+1 findings */
	char np_message[256];         /* scratch: the N+1 finding being reported right now */
	uint8_t scram_mock_key[32]; /* random per worker: fake secrets for unknown users */
	uint8_t rand_pool[1024];    /* RAND_bytes output not handed out yet (worker_random) */
	size_t rand_left;

	struct listener *listeners; /* listener.c */
	struct inbox *inbox;        /* jobs from other workers (app.c); NULL with one worker */

	struct event *janitor;
	struct event *reaper; /* frees closed connections after the callbacks that closed them */
	struct event *log_flusher; /* writes out the log lines waiting in a batch (log.h) */
	uint64_t next_id;

	bool paused;        /* PAUSE: no new transactions */
	bool shutting_down; /* no new clients */
	int shutdown_mode;  /* 0 none, 1 wait for servers (SIGINT), 2 wait for clients (SIGTERM) */
	usec_t start_time;
	usec_t now; /* see worker_tick() */
};

/*
 * A new event loop with nothing on it; it registers itself with app (w->id). The config,
 * auth_file and TLS contexts are shared by all workers and owned by the caller.
 */
struct worker *worker_create(struct config *cfg);
void worker_free(struct worker *w);

/* Run w's loop until it ends, with log lines batched (log.h) meanwhile. In w's thread. */
void worker_run(struct worker *w);

uint8_t *worker_buf_get(struct worker *w);
void worker_buf_put(struct worker *w, uint8_t *buf);

/*
 * The time, read once per callback (worker_tick) so statement timing is precise without a
 * clock read per message. clock_gettime is a vDSO call: no system call. It is also where
 * batched log lines are written out once they are due (log.h).
 */
static inline usec_t worker_tick(struct worker *w)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	w->now = (usec_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	log_flush_if_due((unsigned long long)w->now); /* batched log lines (log.h) */
	return w->now;
}

static inline usec_t worker_now(struct worker *w)
{
	return w->now;
}

/*
 * n bytes from OpenSSL's CSPRNG, drawn 1 KiB at a time: OpenSSL 3 spends microseconds per
 * RAND_bytes call, and every login needs a cancel key and a nonce. false when the CSPRNG
 * fails (then buf is not to be used).
 */
bool worker_random(struct worker *w, void *buf, size_t n);

/* Ask the reaper to run at the end of this loop iteration. */
void worker_schedule_reap(struct worker *w);

/* Apply a newly loaded config (RELOAD / SIGHUP). */
void worker_apply_config(struct worker *w, struct config *cfg);

/* Start the periodic janitor (timeouts, pool maintenance). */
void worker_start_janitor(struct worker *w);

/* Drop SHUTDOWN when the conditions of the shutdown mode hold. */
void worker_check_shutdown(struct worker *w);

#endif
