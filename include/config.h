/*
 * config: pgtally.ini (PgBouncer-compatible) parsing with inih, the option table, the
 * [databases] connection strings and [users] lines, and --check diagnostics.
 *
 * A struct config is immutable once loaded: RELOAD loads a new one and swaps it in. All
 * strings are owned by the config and freed by config_free(). Times are microseconds.
 */
#ifndef PGT_CONFIG_H
#define PGT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef int64_t usec_t;

enum pool_mode { POOL_MODE_SESSION = 0, POOL_MODE_TRANSACTION = 1, POOL_MODE_STATEMENT = 2 };

enum auth_type {
	AUTH_TYPE_TRUST = 0,
	AUTH_TYPE_PLAIN,
	AUTH_TYPE_MD5,
	AUTH_TYPE_SCRAM,
	AUTH_TYPE_ANY, /* like trust, and the user name may be anything */
	AUTH_TYPE_HBA, /* accepted by the parser, refused at startup as unsupported */
	AUTH_TYPE_CERT,
};

enum nplus1_action { NPLUS1_ACTION_LOG = 0, NPLUS1_ACTION_NOTICE, NPLUS1_ACTION_ERROR };

/* load_balance_hosts: how a new server connection picks from a host list (PgBouncer 1.24+). */
enum lb_hosts {
	LB_HOSTS_ROUND_ROBIN = 0, /* each new connection takes the next host */
	LB_HOSTS_DISABLE,         /* stay on one host until a connection to it fails */
};

/* One [databases] line. Integer fields are -1 when not given on the line (use the global). */
struct config_db {
	char *name; /* "*" for the fallback entry */
	char *host; /* NULL: unix socket in /tmp, a value starting with '/' is a socket dir;
		     * or a comma-separated list of those (config_host_entry) */
	int port;   /* default 5432, for every host of the list */
	char *dbname;   /* NULL: same as name (or the client's database for "*") */
	char *user;     /* forced user, or NULL */
	char *password; /* or NULL */
	char *auth_user;
	char *auth_dbname;
	int pool_size;
	int min_pool_size;
	int reserve_pool;
	int max_db_connections;
	int pool_mode; /* enum pool_mode, or -1 */
	char *client_encoding;
	char *datestyle;
	char *timezone;
	char *application_name;
	char *connect_query;
	int nplus1_action; /* enum nplus1_action, or -1 */
	int load_balance_hosts; /* enum lb_hosts */
	int line;          /* line in the ini file, for messages */
};

/* One [users] line. */
struct config_user {
	char *name;
	int pool_mode; /* or -1 */
	int pool_size; /* or -1 */
	int max_user_connections; /* or -1 */
	int max_user_client_connections; /* or -1 */
};

/* The N+1 detector's settings (nplus1.h), from the config (the action comes per database). */
struct nplus1_settings {
	int threshold;       /* nplus1_threshold, >= 2 */
	usec_t min_time;     /* nplus1_min_time_ms, as usec */
	usec_t idle_gap;     /* nplus1_idle_gap_ms, as usec */
	int max_statements;  /* nplus1_max_statements */
	usec_t log_interval; /* nplus1_log_interval */
	int max_findings;    /* nplus1_max_findings: rows in the table */
	int track_query_len; /* cap on stored query texts */
};

struct config {
	char *config_file; /* absolute path of the main file, for RELOAD */

	/* [pgtally] / [pgbouncer] */
	char *logfile;
	char *pidfile;
	char *listen_addr; /* "" = no TCP, "*" = all addresses, else comma-separated list */
	int listen_port;
	char *unix_socket_dir; /* "" = no unix socket */
	int unix_socket_mode;
	char *unix_socket_group;
	char *user; /* -u / user=: drop privileges to this user */

	int auth_type; /* enum auth_type */
	char *auth_file;
	char *auth_hba_file;
	char *auth_user;
	char *auth_query;
	char *auth_dbname;

	int pool_mode; /* enum pool_mode, default POOL_MODE_TRANSACTION */
	int default_pool_size;
	int min_pool_size;
	int reserve_pool_size;
	usec_t reserve_pool_timeout;
	int max_client_conn;
	int max_db_connections;
	int max_user_connections;

	char *server_reset_query;
	bool server_reset_query_always;
	char *server_check_query;
	usec_t server_check_delay;
	usec_t server_lifetime;
	usec_t server_idle_timeout;
	usec_t server_connect_timeout;
	usec_t server_login_retry;
	usec_t dns_max_ttl;      /* how long a host name's addresses are kept (dns.h) */
	usec_t dns_nxdomain_ttl; /* how long a failed lookup is kept */
	char *resolv_conf;       /* the resolver's config file; "" for the system's */
	bool server_round_robin;

	usec_t query_timeout;
	usec_t query_wait_timeout;
	usec_t cancel_wait_timeout;
	usec_t client_idle_timeout;
	usec_t client_login_timeout;
	usec_t idle_transaction_timeout;
	usec_t suspend_timeout;

	int max_prepared_statements;
	int pkt_buf;
	int64_t max_packet_size;
	int sbuf_loopcnt;

	char *admin_users; /* comma-separated lists */
	char *stats_users;

	bool so_reuseport;
	int workers;
	int listen_backlog;

	/* TCP options of client and server sockets (as PgBouncer's); 0 = the system's value */
	int tcp_defer_accept; /* nonzero: the listener wakes only when data arrives (45 s) */
	bool tcp_keepalive;
	int tcp_keepcnt;
	int tcp_keepidle;   /* seconds */
	int tcp_keepintvl;  /* seconds */
	int tcp_user_timeout; /* milliseconds */
	int tcp_socket_buffer; /* bytes, SO_SNDBUF and SO_RCVBUF */

	char *client_tls_sslmode;
	char *client_tls_key_file;
	char *client_tls_cert_file;
	char *client_tls_ca_file;
	char *client_tls_protocols;
	char *client_tls_ciphers;
	char *server_tls_sslmode;
	char *server_tls_key_file;
	char *server_tls_cert_file;
	char *server_tls_ca_file;
	char *server_tls_protocols;
	char *server_tls_ciphers;

	char *track_extra_parameters;
	char *ignore_startup_parameters;
	bool application_name_add_host;
	bool disable_pqexec;

	bool syslog;
	char *syslog_ident;
	char *syslog_facility;
	bool log_connections;
	bool log_disconnections;
	bool log_pooler_errors;
	bool log_stats;
	int verbose;
	usec_t stats_period;

	/* pgtally's own */
	char *metrics_listen; /* "host:port", "" disables */
	int track_query_len;
	int stats_max_fingerprints;
	int stats_metrics_fingerprints;
	bool fingerprints;   /* track fingerprints and their statistics */
	int nplus1_threshold;
	usec_t nplus1_min_time;
	usec_t nplus1_idle_gap;
	int nplus1_max_statements;
	int nplus1_action; /* enum nplus1_action */
	usec_t nplus1_log_interval;
	int nplus1_max_findings;

	/* [databases] and [users] */
	struct config_db *dbs;
	size_t n_dbs;
	struct config_user *users;
	size_t n_users;
	/* Derived by config.c from the nplus1_* options and track_query_len, after every load
	 * and SET, so that the data path reads them without copying. */
	struct nplus1_settings np;
};

/* One problem found while loading. */
struct config_problem {
	char *file;
	int line;       /* 0 when not tied to a line */
	bool is_error;  /* false: warning (e.g. an unknown option) */
	char *message;
};

struct config_problems {
	struct config_problem *items;
	size_t n;
};

/*
 * Load a config file. Returns NULL when it cannot be used (file missing, a value that does
 * not parse, ...). Every problem, fatal or not, is appended to *probs (may be NULL) with
 * file:line; the caller logs or prints them.
 */
struct config *config_load(const char *path, struct config_problems *probs);
void config_free(struct config *cfg);
void config_problems_free(struct config_problems *probs);

/* Lookups. Return NULL when absent (config_find_db falls back to "*" only if fallback). */
const struct config_db *config_find_db(const struct config *cfg, const char *name, bool fallback);

/* The longest entry of a host list (a name, an address or a socket directory), and the most
 * entries a list may have. */
#define CONFIG_HOST_MAX 256
#define CONFIG_HOSTS_MAX 64 /* host_list_problem says 64 */

/* Is this host (an entry of a list) a unix socket: none (the default socket) or a directory? */
bool config_host_is_unix(const char *host);

/* The entries of a [databases] host value: 1 for NULL or a single host. */
int config_host_count(const char *hosts);

/*
 * Entry i of a host list, without the blanks around it: hosts itself when it is a single host,
 * else a copy in buf (CONFIG_HOST_MAX bytes). NULL for a NULL hosts (the default socket).
 */
const char *config_host_entry(const char *hosts, int i, char *buf);
const struct config_user *config_find_user(const struct config *cfg, const char *name);

/* Is name in a comma/space separated list (case-sensitive, "*" matches all)? */
bool config_list_contains(const char *list, const char *name);

/* How an option's text is parsed and where its value lives in struct config. */
enum config_type {
	CONFIG_T_INT,     /* int; decimal, 0x hex or 0 octal like PgBouncer */
	CONFIG_T_BOOL,    /* bool; 0/1, yes/no, true/false, on/off */
	CONFIG_T_STRING,  /* char *, never NULL; "" means not set */
	CONFIG_T_TIME,    /* usec_t; written in seconds, fractions allowed */
	CONFIG_T_TIME_MS, /* usec_t; written in milliseconds, fractions allowed */
	CONFIG_T_ENUM,    /* int; the index of the value in words[] */
	CONFIG_T_KEYWORD, /* char *; one of words[] (e.g. an sslmode) */
	CONFIG_T_SIZE,    /* int64_t bytes; optional kB/MB/GB suffix (1024-based) */
};

/* The option table, for SHOW CONFIG and SET. */
struct config_option {
	const char *name;
	const char *default_value; /* as text */
	bool changeable;           /* SET on the console and RELOAD change it without restart */
	bool secret;               /* value masked in SHOW CONFIG */
	enum config_type type;
	size_t offset;             /* of the field in struct config */
	const char *const *words;  /* NULL-terminated, CONFIG_T_ENUM and CONFIG_T_KEYWORD */
	int64_t min, max;          /* CONFIG_T_INT and CONFIG_T_SIZE */
};
const struct config_option *config_options(size_t *n);
/* An option by name (case-insensitive), or NULL. */
const struct config_option *config_find_option(const char *name);
/* PgBouncer options that are accepted in the file but have no effect in pgtally. */
const char *const *config_ignored_options(size_t *n);
/* The current value of an option as text (secrets not masked here). */
void config_value_text(const struct config *cfg, const struct config_option *opt, char *buf,
		       size_t buflen);
/* SET key = value on a live config; false with a message in err when refused. */
bool config_set(struct config *cfg, const char *key, const char *value, char *err,
		size_t errlen) __attribute__((warn_unused_result));

/* Like config_load, from memory (len bytes, NULs allowed); name is used in messages. */
struct config *config_load_string(const char *text, size_t len, const char *name,
				  struct config_problems *probs);

/*
 * pgtally --check FILE: load it, print every problem as "FILE:LINE: error|warning: message"
 * to out, then "ok" or a count. Returns the exit status: 0 only when there is no problem.
 */
int config_check_file(const char *path, FILE *out);

/*
 * The same, and when the file loads, extra(cfg) checks what only the start would find (what
 * OpenSSL makes of the TLS options); false counts its err as one more error.
 */
int config_check_file_with(const char *path, FILE *out,
			   bool (*extra)(const struct config *cfg, char *err, size_t errlen));

#endif
