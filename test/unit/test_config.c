/* test_config: unit tests for the config module (parsing, problems, SET, --check, the doc). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

/* ---- helpers ---- */

static struct config *load_text(const char *text, struct config_problems *probs)
{
	return config_load_string(text, strlen(text), "test.ini", probs);
}

/* Writes text to a new temp file; returns its malloc'd path. */
static char *write_temp(const char *text)
{
	char *path = strdup("/tmp/pgt_test_config_XXXXXX");
	int fd;
	size_t len = strlen(text);

	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

static void remove_temp(char *path)
{
	unlink(path);
	free(path);
}

/* The problem at index i must be at line with this severity and contain needle. */
static void expect_problem(const struct config_problems *probs, size_t i, int line, bool is_error,
			   const char *needle)
{
	assert_true(i < probs->n);
	assert_int_equal(probs->items[i].line, line);
	assert_int_equal(probs->items[i].is_error, is_error);
	if (!strstr(probs->items[i].message, needle))
		fail_msg("problem \"%s\" does not mention \"%s\"", probs->items[i].message, needle);
}

static void value_of(const struct config *cfg, const char *name, char *buf, size_t len)
{
	const struct config_option *opt = config_find_option(name);

	assert_non_null(opt);
	config_value_text(cfg, opt, buf, len);
}

/* ---- defaults ---- */

static void test_defaults(void **state)
{
	struct config_problems probs = {0};
	struct config *cfg = load_text("", &probs);

	(void)state;
	assert_non_null(cfg);
	assert_int_equal(probs.n, 0);
	assert_int_equal(cfg->pool_mode, POOL_MODE_TRANSACTION);
	assert_int_equal(cfg->auth_type, AUTH_TYPE_MD5);
	assert_int_equal(cfg->listen_port, 6432);
	assert_string_equal(cfg->listen_addr, "");
	assert_string_equal(cfg->unix_socket_dir, "/tmp");
	assert_int_equal(cfg->unix_socket_mode, 0777);
	assert_int_equal(cfg->default_pool_size, 20);
	assert_int_equal(cfg->max_client_conn, 100);
	assert_int_equal(cfg->min_pool_size, 0);
	assert_int_equal(cfg->reserve_pool_size, 0);
	assert_true(cfg->reserve_pool_timeout == 5 * 1000000LL);
	assert_string_equal(cfg->server_reset_query, "DISCARD ALL");
	assert_false(cfg->server_reset_query_always);
	assert_string_equal(cfg->server_check_query, "<empty>");
	assert_true(cfg->server_check_delay == 30 * 1000000LL);
	assert_true(cfg->server_lifetime == 3600 * 1000000LL);
	assert_true(cfg->server_idle_timeout == 600 * 1000000LL);
	assert_true(cfg->server_connect_timeout == 15 * 1000000LL);
	assert_true(cfg->server_login_retry == 15 * 1000000LL);
	assert_true(cfg->query_wait_timeout == 120 * 1000000LL);
	assert_true(cfg->query_timeout == 0);
	assert_true(cfg->client_login_timeout == 60 * 1000000LL);
	assert_true(cfg->cancel_wait_timeout == 10 * 1000000LL);
	assert_true(cfg->suspend_timeout == 10 * 1000000LL);
	assert_int_equal(cfg->max_prepared_statements, 200);
	assert_int_equal(cfg->pkt_buf, 4096);
	assert_true(cfg->max_packet_size == 2147483647LL);
	assert_int_equal(cfg->sbuf_loopcnt, 5);
	assert_string_equal(cfg->track_extra_parameters, "IntervalStyle");
	assert_true(cfg->log_connections && cfg->log_disconnections && cfg->log_pooler_errors &&
		    cfg->log_stats);
	assert_false(cfg->syslog);
	assert_true(cfg->stats_period == 60 * 1000000LL);
	assert_string_equal(cfg->syslog_ident, "pgtally");
	assert_string_equal(cfg->syslog_facility, "daemon");
	assert_string_equal(cfg->client_tls_sslmode, "disable");
	assert_string_equal(cfg->server_tls_sslmode, "prefer");
	assert_string_equal(cfg->client_tls_protocols, "secure");
	assert_string_equal(cfg->server_tls_ciphers, "default");
	assert_true(strncmp(cfg->auth_query, "SELECT rolname, CASE WHEN rolvaliduntil", 39) == 0);
	assert_string_equal(cfg->metrics_listen, "");
	assert_int_equal(cfg->track_query_len, 1024);
	assert_int_equal(cfg->stats_max_fingerprints, 5000);
	assert_int_equal(cfg->stats_metrics_fingerprints, 100);
	assert_true(cfg->fingerprints);
	assert_int_equal(cfg->nplus1_threshold, 5);
	assert_true(cfg->nplus1_min_time == 0);
	assert_true(cfg->nplus1_idle_gap == 500 * 1000LL);
	assert_int_equal(cfg->nplus1_max_statements, 10000);
	assert_int_equal(cfg->nplus1_action, NPLUS1_ACTION_LOG);
	assert_true(cfg->nplus1_log_interval == 60 * 1000000LL);
	assert_int_equal(cfg->nplus1_max_findings, 1000);
	assert_int_equal(cfg->workers, 1);
	assert_int_equal(cfg->n_dbs, 0);
	assert_int_equal(cfg->n_users, 0);
	assert_null(config_find_db(cfg, "x", true));
	config_free(cfg);
}

/* Every option's default renders, and the rendered text loads back to the same value. */
static void test_every_option_round_trips(void **state)
{
	struct config_problems probs = {0};
	struct config *def = load_text("", NULL);
	size_t n;
	const struct config_option *opts = config_options(&n);
	char text[1024], v1[512], v2[512];

	(void)state;
	assert_non_null(def);
	assert_true(n > 60);
	for (size_t i = 0; i < n; i++) {
		struct config *cfg;

		assert_non_null(opts[i].name);
		assert_non_null(opts[i].default_value);
		assert_ptr_equal(config_find_option(opts[i].name), &opts[i]);
		if (i > 0 && strcmp(opts[i - 1].name, opts[i].name) >= 0)
			fail_msg("table not sorted at %s", opts[i].name);
		if (strcmp(opts[i].name, "conffile") == 0)
			continue;
		config_value_text(def, &opts[i], v1, sizeof(v1));
		snprintf(text, sizeof(text), "[pgtally]\n%s = %s\n", opts[i].name, v1);
		cfg = load_text(text, &probs);
		if (!cfg)
			fail_msg("%s = %s does not load: %s", opts[i].name, v1,
				 probs.n ? probs.items[0].message : "?");
		assert_int_equal(probs.n, 0);
		config_value_text(cfg, &opts[i], v2, sizeof(v2));
		assert_string_equal(v1, v2);
		config_free(cfg);
	}
	config_free(def);
}

/* ---- value types ---- */

static void test_types(void **state)
{
	struct config_problems probs = {0};
	char buf[64];
	struct config *cfg = load_text("[pgtally]\n"
				       "listen_port = 0x1F90\n"
				       "unix_socket_mode = 0700\n"
				       "so_reuseport = yes\n"
				       "log_stats = off\n"
				       "syslog = TRUE\n"
				       "log_connections = 0\n"
				       "query_wait_timeout = 0.5\n"
				       "server_lifetime = 1.25\n"
				       "client_idle_timeout = .000001\n"
				       "nplus1_min_time_ms = 2.5\n"
				       "nplus1_idle_gap_ms = 1500\n"
				       "pool_mode = Session\n"
				       "auth_type = SCRAM-SHA-256\n"
				       "nplus1_action = error\n"
				       "client_tls_sslmode = VERIFY-FULL\n"
				       "max_packet_size = 1MB\n"
				       "logfile = /var/log/pgtally.log\n",
				       &probs);

	(void)state;
	assert_non_null(cfg);
	assert_int_equal(probs.n, 0);
	assert_int_equal(cfg->listen_port, 8080);
	assert_int_equal(cfg->unix_socket_mode, 0700);
	assert_true(cfg->so_reuseport);
	assert_false(cfg->log_stats);
	assert_true(cfg->syslog);
	assert_false(cfg->log_connections);
	assert_true(cfg->query_wait_timeout == 500000);
	assert_true(cfg->server_lifetime == 1250000);
	assert_true(cfg->client_idle_timeout == 1);
	assert_true(cfg->nplus1_min_time == 2500);
	assert_true(cfg->nplus1_idle_gap == 1500000);
	assert_int_equal(cfg->pool_mode, POOL_MODE_SESSION);
	assert_int_equal(cfg->auth_type, AUTH_TYPE_SCRAM);
	assert_int_equal(cfg->nplus1_action, NPLUS1_ACTION_ERROR);
	assert_string_equal(cfg->client_tls_sslmode, "verify-full");
	assert_true(cfg->max_packet_size == 1048576);
	assert_string_equal(cfg->logfile, "/var/log/pgtally.log");

	/* rendered the way SHOW CONFIG shows them */
	value_of(cfg, "query_wait_timeout", buf, sizeof(buf));
	assert_string_equal(buf, "0.5");
	value_of(cfg, "server_lifetime", buf, sizeof(buf));
	assert_string_equal(buf, "1.25");
	value_of(cfg, "client_idle_timeout", buf, sizeof(buf));
	assert_string_equal(buf, "0.000001");
	value_of(cfg, "server_idle_timeout", buf, sizeof(buf));
	assert_string_equal(buf, "600");
	value_of(cfg, "nplus1_min_time_ms", buf, sizeof(buf));
	assert_string_equal(buf, "2.5");
	value_of(cfg, "nplus1_idle_gap_ms", buf, sizeof(buf));
	assert_string_equal(buf, "1500");
	value_of(cfg, "so_reuseport", buf, sizeof(buf));
	assert_string_equal(buf, "1");
	value_of(cfg, "log_stats", buf, sizeof(buf));
	assert_string_equal(buf, "0");
	value_of(cfg, "pool_mode", buf, sizeof(buf));
	assert_string_equal(buf, "session");
	value_of(cfg, "auth_type", buf, sizeof(buf));
	assert_string_equal(buf, "scram-sha-256");
	value_of(cfg, "unix_socket_mode", buf, sizeof(buf));
	assert_string_equal(buf, "448"); /* decimal, as PgBouncer's SHOW CONFIG prints it */
	config_free(cfg);

	/* every auth_type word maps to its enum value */
	static const struct {
		const char *word;
		int value;
	} auth[] = {{"trust", AUTH_TYPE_TRUST}, {"plain", AUTH_TYPE_PLAIN},
		    {"md5", AUTH_TYPE_MD5},     {"scram-sha-256", AUTH_TYPE_SCRAM},
		    {"any", AUTH_TYPE_ANY},     {"hba", AUTH_TYPE_HBA},
		    {"cert", AUTH_TYPE_CERT}};
	for (size_t i = 0; i < sizeof(auth) / sizeof(auth[0]); i++) {
		char text[64];
		snprintf(text, sizeof(text), "[pgtally]\nauth_type=%s\n", auth[i].word);
		cfg = load_text(text, NULL);
		assert_non_null(cfg);
		assert_int_equal(cfg->auth_type, auth[i].value);
		config_free(cfg);
	}
}

static void test_bad_values_name_file_and_line(void **state)
{
	static const char *const bad[] = {
		"listen_port = abc",
		"listen_port = 70000",
		"listen_port = 12x",
		"listen_port =",
		"default_pool_size = -1",
		"so_reuseport = maybe",
		"query_wait_timeout = -1",
		"query_wait_timeout = 1s",
		"query_wait_timeout = abc",
		"query_wait_timeout = 1.2.3",
		"nplus1_min_time_ms = x",
		"pool_mode = sometimes",
		"auth_type = password",
		"nplus1_action = shout",
		"client_tls_sslmode = on",
		"max_packet_size = 1TB",
		"max_packet_size = 0",
		"workers = 0",
		"pkt_buf = 100",
		"nplus1_threshold = 1",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct config_problems probs = {0};
		char text[256];
		struct config *cfg;

		snprintf(text, sizeof(text), "; a comment\n[pgtally]\n\nlisten_port = 7000\n%s\n",
			 bad[i]);
		cfg = load_text(text, &probs);
		if (cfg)
			fail_msg("\"%s\" was accepted", bad[i]);
		assert_int_equal(probs.n, 1);
		assert_string_equal(probs.items[0].file, "test.ini");
		expect_problem(&probs, 0, 5, true, "invalid value");
		config_problems_free(&probs);
	}
}

/* ---- sections, names, unknown and ignored options ---- */

static void test_pgbouncer_alias_and_case(void **state)
{
	struct config_problems probs = {0};
	struct config *cfg = load_text("[PgBouncer]\n"
				       "  Listen_Port = 7001\n"
				       "[PGTALLY]\n"
				       "MAX_CLIENT_CONN=55\n"
				       "[ Databases ]\n"
				       "Db1 = host=h\n",
				       &probs);

	(void)state;
	assert_non_null(cfg);
	assert_int_equal(probs.n, 0);
	assert_int_equal(cfg->listen_port, 7001);
	assert_int_equal(cfg->max_client_conn, 55);
	/* database names keep their case */
	assert_non_null(config_find_db(cfg, "Db1", false));
	assert_null(config_find_db(cfg, "db1", false));
	config_free(cfg);
}

static void test_unknown_option_warns_and_continues(void **state)
{
	struct config_problems probs = {0};
	struct config *cfg = load_text("[pgtally]\n"
				       "listen_port = 7002\n"
				       "frobnicate = 3\n"
				       "max_client_conn = 7\n",
				       &probs);

	(void)state;
	assert_non_null(cfg);
	assert_int_equal(probs.n, 1);
	expect_problem(&probs, 0, 3, false, "frobnicate");
	assert_int_equal(cfg->listen_port, 7002);
	assert_int_equal(cfg->max_client_conn, 7);
	config_free(cfg);
	config_problems_free(&probs);
	assert_int_equal(probs.n, 0);
	assert_null(probs.items);
}

static void test_ignored_options_are_silent(void **state)
{
	struct config_problems probs = {0};
	size_t n;
	const char *const *ign = config_ignored_options(&n);
	char text[4096] = "[pgbouncer]\n";
	struct config *cfg;

	(void)state;
	assert_true(n > 10);
	for (size_t i = 0; i < n; i++) {
		/* an ignored option must not also be a real one */
		assert_null(config_find_option(ign[i]));
		strcat(text, ign[i]);
		strcat(text, " = 1\n");
	}
	cfg = load_text(text, &probs);
	assert_non_null(cfg);
	assert_int_equal(probs.n, 0);
	config_free(cfg);
}

static void test_syntax_errors(void **state)
{
	struct config_problems probs = {0};
	struct config *cfg = load_text("listen_port = 1\n"
				       "[pgtally\n"
				       "[nosuch]\n"
				       "x = 1\n"
				       "[pgtally]\n"
				       "just words\n"
				       "= 5\n"
				       "%bogus thing\n"
				       "[peers]\n"
				       "1 = host=x\n",
				       &probs);

	(void)state;
	assert_null(cfg);
	assert_int_equal(probs.n, 7);
	expect_problem(&probs, 0, 1, true, "not inside any section");
	expect_problem(&probs, 1, 2, true, "section header");
	expect_problem(&probs, 2, 3, true, "unknown section [nosuch]");
	expect_problem(&probs, 3, 6, true, "syntax error");
	expect_problem(&probs, 4, 7, true, "empty name");
	expect_problem(&probs, 5, 8, true, "unknown directive");
	expect_problem(&probs, 6, 9, false, "[peers]");
	config_problems_free(&probs);
}

/* Things inih's defaults would get wrong: ";" inside values, long lines, CRLF, a BOM. */
static void test_lexing_like_pgbouncer(void **state)
{
	struct config_problems probs = {0};
	char text[2048];
	char longq[600];
	struct config *cfg;

	(void)state;
	memset(longq, 'a', sizeof(longq) - 1);
	longq[sizeof(longq) - 1] = '\0';
	memcpy(longq, "SELECT ", 7);
	snprintf(text, sizeof(text),
		 "\xEF\xBB\xBF[pgtally]\r\n"
		 "server_check_query = select 1 ; select 2 # not a comment\r\n"
		 "# a comment\n"
		 "; another\n"
		 "server_reset_query = %s\n"
		 "admin_users = \"quoted\"\n",
		 longq);
	cfg = load_text(text, &probs);
	assert_non_null(cfg);
	assert_int_equal(probs.n, 0);
	assert_string_equal(cfg->server_check_query, "select 1 ; select 2 # not a comment");
	assert_string_equal(cfg->server_reset_query, longq);
	/* like PgBouncer, quotes in a plain option value are kept */
	assert_string_equal(cfg->admin_users, "\"quoted\"");
	config_free(cfg);

	/* a NUL byte is an error on its line, not a truncation of the file */
	static const char nul[] = "[pgtally]\nlisten_port = 1\0 2\nmax_client_conn = 9\n";
	cfg = config_load_string(nul, sizeof(nul) - 1, "nul.ini", &probs);
	assert_null(cfg);
	assert_int_equal(probs.n, 1);
	expect_problem(&probs, 0, 2, true, "NUL");
	config_problems_free(&probs);
}

/* ---- [databases] and [users] ---- */

static void test_databases(void **state)
{
	struct config_problems probs = {0};
	const struct config_db *db;
	struct config *cfg = load_text(
		"[databases]\n"
		"app = host=10.0.0.1 port=5433 dbname=realapp user=u1 password='it''s \\'x\\' "
		"\\\\ ok' pool_size=7 min_pool_size=2 reserve_pool=3 max_db_connections=40 "
		"pool_mode=session client_encoding=UTF8 datestyle=ISO timezone=UTC "
		"application_name=web connect_query='SET search_path = a; SELECT 1' "
		"auth_user=au auth_dbname=postgres nplus1_action=notice\n"
		"plain =\n"
		"\"odd name\" = host=/var/run/postgresql reserve_pool_size=4 wat=1 "
		"load_balance_hosts=disable\n"
		"* = host=fallback\n"
		"app2 = host=x port = 6000\n"
		"app2 = host=y\n",
		&probs);

	(void)state;
	assert_non_null(cfg);
	assert_int_equal(probs.n, 1);
	expect_problem(&probs, 0, 4, false, "wat");
	assert_int_equal(cfg->n_dbs, 5);

	db = config_find_db(cfg, "app", false);
	assert_non_null(db);
	assert_string_equal(db->name, "app");
	assert_string_equal(db->host, "10.0.0.1");
	assert_int_equal(db->port, 5433);
	assert_string_equal(db->dbname, "realapp");
	assert_string_equal(db->user, "u1");
	assert_string_equal(db->password, "it's 'x' \\ ok");
	assert_int_equal(db->pool_size, 7);
	assert_int_equal(db->min_pool_size, 2);
	assert_int_equal(db->reserve_pool, 3);
	assert_int_equal(db->max_db_connections, 40);
	assert_int_equal(db->pool_mode, POOL_MODE_SESSION);
	assert_string_equal(db->client_encoding, "UTF8");
	assert_string_equal(db->datestyle, "ISO");
	assert_string_equal(db->timezone, "UTC");
	assert_string_equal(db->application_name, "web");
	assert_string_equal(db->connect_query, "SET search_path = a; SELECT 1");
	assert_string_equal(db->auth_user, "au");
	assert_string_equal(db->auth_dbname, "postgres");
	assert_int_equal(db->nplus1_action, NPLUS1_ACTION_NOTICE);
	assert_int_equal(db->line, 2);

	db = config_find_db(cfg, "plain", false);
	assert_non_null(db);
	assert_null(db->host);
	assert_null(db->dbname);
	assert_null(db->password);
	assert_int_equal(db->port, 5432);
	assert_int_equal(db->pool_size, -1);
	assert_int_equal(db->min_pool_size, -1);
	assert_int_equal(db->reserve_pool, -1);
	assert_int_equal(db->max_db_connections, -1);
	assert_int_equal(db->pool_mode, -1);
	assert_int_equal(db->nplus1_action, -1);

	db = config_find_db(cfg, "odd name", false);
	assert_non_null(db);
	assert_string_equal(db->host, "/var/run/postgresql");
	assert_int_equal(db->reserve_pool, 4);
	assert_int_equal(db->load_balance_hosts, LB_HOSTS_DISABLE);
	assert_int_equal(config_find_db(cfg, "app", false)->load_balance_hosts,
			 LB_HOSTS_ROUND_ROBIN);

	/* spaces around "=" are fine; a later line replaces an earlier one */
	db = config_find_db(cfg, "app2", false);
	assert_non_null(db);
	assert_string_equal(db->host, "y");
	assert_int_equal(db->port, 5432);
	assert_int_equal(db->line, 7);

	/* the fallback */
	assert_null(config_find_db(cfg, "nosuch", false));
	db = config_find_db(cfg, "nosuch", true);
	assert_non_null(db);
	assert_string_equal(db->name, "*");
	assert_string_equal(db->host, "fallback");
	assert_string_equal(config_find_db(cfg, "app", true)->name, "app");
	config_free(cfg);
	config_problems_free(&probs);
}

static void test_host_list(void **state)
{
	char buf[CONFIG_HOST_MAX];
	const char *one = "10.0.0.1";
	(void)state;
	assert_int_equal(config_host_count(NULL), 1);
	assert_null(config_host_entry(NULL, 0, buf));
	assert_int_equal(config_host_count(one), 1);
	assert_ptr_equal(config_host_entry(one, 0, buf), one); /* no copy for a single host */
	const char *list = "a.example, /tmp ,[::1],b";
	assert_int_equal(config_host_count(list), 4);
	assert_string_equal(config_host_entry(list, 0, buf), "a.example");
	assert_string_equal(config_host_entry(list, 1, buf), "/tmp");
	assert_string_equal(config_host_entry(list, 2, buf), "[::1]");
	assert_string_equal(config_host_entry(list, 3, buf), "b");
	assert_string_equal(config_host_entry(list, 4, buf), "a.example"); /* wraps */

	struct config_problems probs = {0};
	struct config *cfg =
		load_text("[databases]\nok = host=h1,h2 load_balance_hosts=round-robin\n", &probs);
	assert_non_null(cfg);
	assert_int_equal(probs.n, 0);
	assert_string_equal(config_find_db(cfg, "ok", false)->host, "h1,h2");
	config_free(cfg);
	config_problems_free(&probs);
}

static void test_database_errors(void **state)
{
	static const struct {
		const char *line;
		const char *needle;
	} bad[] = {
		{"d = port=0", "port"},
		{"d = port=abc", "port"},
		{"d = pool_size=-2", "pool_size"},
		{"d = pool_mode=sometimes", "pool_mode"},
		{"d = nplus1_action=maybe", "nplus1_action"},
		{"d = host=h1,,h2", "empty"},
		{"d = host='h1, '", "empty"},
		{"d = load_balance_hosts=random", "round-robin"},
		{"d = host='unterminated", "unterminated"},
		{"d = host=", "empty value"},
		{"d = host", "key=value"},
		{"d = password='a'b", "quote"},
		{"pgbouncer = host=x", "reserved"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct config_problems probs = {0};
		char text[256];
		struct config *cfg;

		snprintf(text, sizeof(text), "[databases]\nok = host=x\n%s\n", bad[i].line);
		cfg = load_text(text, &probs);
		if (cfg)
			fail_msg("\"%s\" was accepted", bad[i].line);
		assert_int_equal(probs.n, 1);
		expect_problem(&probs, 0, 3, true, bad[i].needle);
		config_problems_free(&probs);
	}
}

static void test_users(void **state)
{
	struct config_problems probs = {0};
	const struct config_user *u;
	struct config *cfg =
		load_text("[users]\n"
			  "bob = pool_mode=statement pool_size=3 max_user_connections=9 "
			  "max_user_client_connections=11\n"
			  "alice =\n"
			  "carol = colour=blue\n"
			  "dave = pool_mode=never\n",
			  &probs);

	(void)state;
	assert_null(cfg); /* dave's pool_mode */
	assert_int_equal(probs.n, 2);
	expect_problem(&probs, 0, 4, false, "colour");
	expect_problem(&probs, 1, 5, true, "pool_mode");
	config_problems_free(&probs);

	cfg = load_text("[users]\n"
			"bob = pool_mode=statement pool_size=3 max_user_connections=9 "
			"max_user_client_connections=11\n"
			"alice =\n",
			&probs);
	assert_non_null(cfg);
	assert_int_equal(probs.n, 0);
	u = config_find_user(cfg, "bob");
	assert_non_null(u);
	assert_int_equal(u->pool_mode, POOL_MODE_STATEMENT);
	assert_int_equal(u->pool_size, 3);
	assert_int_equal(u->max_user_connections, 9);
	assert_int_equal(u->max_user_client_connections, 11);
	u = config_find_user(cfg, "alice");
	assert_non_null(u);
	assert_int_equal(u->pool_mode, -1);
	assert_int_equal(u->pool_size, -1);
	assert_int_equal(u->max_user_connections, -1);
	assert_int_equal(u->max_user_client_connections, -1);
	assert_null(config_find_user(cfg, "Bob"));
	config_free(cfg);
}

/* ---- files and %include ---- */

static void test_load_file_and_include(void **state)
{
	struct config_problems probs = {0};
	char *inc = write_temp("[databases]\n"
			       "included = host=inc\n"
			       "\n"
			       "bad = port=x\n");
	char *inc_ok = write_temp("listen_port = 7003\n");
	char main_text[512];
	char *main_path;
	struct config *cfg;

	(void)state;
	snprintf(main_text, sizeof(main_text),
		 "[pgtally]\n"
		 "%%include %s\n"
		 "max_client_conn = 3\n"
		 "%%include %s\n"
		 "[pgtally]\n"
		 "typo_option = 1\n",
		 inc_ok, inc);
	main_path = write_temp(main_text);
	cfg = config_load(main_path, &probs);
	assert_null(cfg);
	assert_int_equal(probs.n, 2);
	/* the problem inside the included file names that file and its line */
	assert_string_equal(probs.items[0].file, inc);
	expect_problem(&probs, 0, 4, true, "port");
	/* and lines of the includer go on being counted after the include */
	assert_string_equal(probs.items[1].file, main_path);
	expect_problem(&probs, 1, 6, false, "typo_option");
	config_problems_free(&probs);
	remove_temp(main_path);

	/* an include is textual: a file without a header continues the includer's section */
	snprintf(main_text, sizeof(main_text),
		 "[pgtally]\n"
		 "%%include %s\n"
		 "max_client_conn = 3\n",
		 inc_ok);
	main_path = write_temp(main_text);
	cfg = config_load(main_path, &probs);
	assert_non_null(cfg);
	assert_int_equal(probs.n, 0);
	assert_int_equal(cfg->listen_port, 7003);
	assert_int_equal(cfg->max_client_conn, 3);
	assert_string_equal(cfg->config_file, main_path); /* already absolute */
	config_free(cfg);
	remove_temp(main_path);
	remove_temp(inc);
	remove_temp(inc_ok);
}

static void test_include_errors(void **state)
{
	struct config_problems probs = {0};
	char text[256];
	char *self = write_temp("");
	FILE *f;
	struct config *cfg;

	(void)state;
	/* a file that includes itself */
	f = fopen(self, "w");
	assert_non_null(f);
	fprintf(f, "[pgtally]\n%%include %s\n", self);
	fclose(f);
	cfg = config_load(self, &probs);
	assert_null(cfg);
	assert_int_equal(probs.n, 1);
	expect_problem(&probs, 0, 2, true, "loop");
	config_problems_free(&probs);
	remove_temp(self);

	/* missing file, directory, empty name */
	snprintf(text, sizeof(text), "%%include /nonexistent/pgt.ini\n%%include /tmp\n%%include\n");
	cfg = load_text(text, &probs);
	assert_null(cfg);
	assert_int_equal(probs.n, 3);
	expect_problem(&probs, 0, 1, true, "cannot open");
	expect_problem(&probs, 1, 2, true, "not a regular file");
	expect_problem(&probs, 2, 3, true, "file name");
	config_problems_free(&probs);

	/* the main file itself */
	cfg = config_load("/nonexistent/pgtally.ini", &probs);
	assert_null(cfg);
	assert_int_equal(probs.n, 1);
	assert_string_equal(probs.items[0].file, "/nonexistent/pgtally.ini");
	assert_int_equal(probs.items[0].line, 0);
	assert_true(probs.items[0].is_error);
	config_problems_free(&probs);
}

static void test_config_file_is_absolute(void **state)
{
	char cwd[4096];
	char *path = write_temp("[pgtally]\n");
	struct config *cfg;

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir("/tmp"), 0);
	cfg = config_load(path + strlen("/tmp/"), NULL);
	assert_int_equal(chdir(cwd), 0);
	assert_non_null(cfg);
	assert_string_equal(cfg->config_file, path);
	config_free(cfg);
	remove_temp(path);
}

/* ---- SET and SHOW CONFIG text ---- */

static void test_set_and_value_text(void **state)
{
	struct config *cfg = load_text("[pgtally]\nquery_wait_timeout = 30\n", NULL);
	char err[256], buf[256];

	(void)state;
	assert_non_null(cfg);
	assert_true(config_set(cfg, "query_wait_timeout", "0.5", err, sizeof(err)));
	assert_true(cfg->query_wait_timeout == 500000);
	value_of(cfg, "query_wait_timeout", buf, sizeof(buf));
	assert_string_equal(buf, "0.5");

	assert_true(config_set(cfg, "DEFAULT_POOL_SIZE", "33", err, sizeof(err)));
	assert_int_equal(cfg->default_pool_size, 33);
	assert_true(config_set(cfg, "pool_mode", "statement", err, sizeof(err)));
	value_of(cfg, "pool_mode", buf, sizeof(buf));
	assert_string_equal(buf, "statement");
	assert_true(config_set(cfg, "server_reset_query", "DISCARD PLANS", err, sizeof(err)));
	assert_string_equal(cfg->server_reset_query, "DISCARD PLANS");
	assert_true(config_set(cfg, "nplus1_min_time_ms", "12", err, sizeof(err)));
	assert_true(cfg->nplus1_min_time == 12000);
	assert_true(config_set(cfg, "log_stats", "off", err, sizeof(err)));
	value_of(cfg, "log_stats", buf, sizeof(buf));
	assert_string_equal(buf, "0");

	/* refusals leave the value alone and say why */
	assert_false(config_set(cfg, "query_wait_timeout", "soon", err, sizeof(err)));
	assert_non_null(strstr(err, "query_wait_timeout"));
	assert_true(cfg->query_wait_timeout == 500000);
	assert_false(config_set(cfg, "listen_port", "7777", err, sizeof(err)));
	assert_non_null(strstr(err, "cannot be changed"));
	assert_int_equal(cfg->listen_port, 6432);
	assert_false(config_set(cfg, "conffile", "/etc/x", err, sizeof(err)));
	assert_false(config_set(cfg, "no_such_option", "1", err, sizeof(err)));
	assert_non_null(strstr(err, "unknown option"));
	assert_false(config_set(cfg, "server_fast_close", "1", err, sizeof(err)));
	assert_non_null(strstr(err, "no effect"));
	config_free(cfg);
}

/* ---- --check ---- */

static int check_text(const char *text, char *out, size_t outlen, char **path_out)
{
	char *path = write_temp(text);
	FILE *f = tmpfile();
	size_t n;
	int rc;

	assert_non_null(f);
	rc = config_check_file(path, f);
	rewind(f);
	n = fread(out, 1, outlen - 1, f);
	out[n] = '\0';
	fclose(f);
	*path_out = path;
	return rc;
}

static void test_check_file(void **state)
{
	char out[2048], expect[512];
	char *path;

	(void)state;
	assert_int_equal(check_text("[pgtally]\nlisten_port = 7004\n", out, sizeof(out), &path), 0);
	assert_string_equal(out, "ok\n");
	remove_temp(path);

	assert_int_equal(check_text("[pgtally]\n\nwhat = 1\n", out, sizeof(out), &path), 1);
	snprintf(expect, sizeof(expect),
		 "%s:3: warning: unknown option \"what\", ignored\n0 error(s), 1 warning(s)\n",
		 path);
	assert_string_equal(out, expect);
	remove_temp(path);

	assert_int_equal(check_text("[pgtally]\nlisten_port = x\nwhat = 1\n[databases]\n"
				    "d = port=0\n",
				    out, sizeof(out), &path),
			 1);
	snprintf(expect, sizeof(expect), "%s:2: error: invalid value \"x\" for listen_port", path);
	assert_non_null(strstr(out, expect));
	snprintf(expect, sizeof(expect), "%s:5: error: invalid value \"0\" for port", path);
	assert_non_null(strstr(out, expect));
	assert_non_null(strstr(out, "2 error(s), 1 warning(s)\n"));
	remove_temp(path);

	{
		FILE *f = tmpfile();
		assert_non_null(f);
		assert_int_equal(config_check_file("/nonexistent/x.ini", f), 1);
		rewind(f);
		out[fread(out, 1, sizeof(out) - 1, f)] = '\0';
		fclose(f);
		assert_non_null(strstr(out, "/nonexistent/x.ini: error: cannot open"));
	}
}

/* ---- lists ---- */

static void test_list_contains(void **state)
{
	(void)state;
	assert_true(config_list_contains("admin", "admin"));
	assert_true(config_list_contains("a, b,c  d", "c"));
	assert_true(config_list_contains("a, b,c  d", "d"));
	assert_true(config_list_contains(" a ,b", "a"));
	assert_false(config_list_contains("a, b", "ab"));
	assert_false(config_list_contains("abc", "ab"));
	assert_false(config_list_contains("a", "A"));
	assert_false(config_list_contains("", "a"));
	assert_false(config_list_contains(NULL, "a"));
	assert_false(config_list_contains(", ,", "a"));
	assert_true(config_list_contains("x, *", "anyone"));
	assert_false(config_list_contains("x*", "anyone"));
}

/* ---- doc/config.md matches the table ---- */

static char *read_doc(void)
{
	const char *dir = getenv("PGT_SRCDIR");
	char path[4096];
	FILE *f = fopen("doc/config.md", "r");
	char *buf;
	long len;

	if (!f && dir) {
		snprintf(path, sizeof(path), "%s/doc/config.md", dir);
		f = fopen(path, "r");
	}
	if (!f)
		fail_msg("doc/config.md not found (run from the repo root or set PGT_SRCDIR)");
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	buf = malloc((size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
	buf[len] = '\0';
	fclose(f);
	return buf;
}

/* The text between <!-- tag:begin --> and <!-- tag:end -->, cut in place. */
static char *doc_block(char *doc, const char *tag)
{
	char begin[64], end[64];
	char *b, *e;

	snprintf(begin, sizeof(begin), "<!-- %s:begin -->", tag);
	snprintf(end, sizeof(end), "<!-- %s:end -->", tag);
	b = strstr(doc, begin);
	if (!b)
		fail_msg("doc/config.md lacks %s", begin);
	e = strstr(b, end);
	if (!e)
		fail_msg("doc/config.md lacks %s", end);
	*e = '\0';
	return b + strlen(begin);
}

/*
 * Splits a table row "| `a` | b | c |" into cells (trimmed); returns the count. Rows whose
 * first cell is not `code` (header, separator) give 0.
 */
static int row_cells(char *line, char **cells, int max)
{
	int n = 0;
	char *p = line;

	if (*p != '|')
		return 0;
	p++;
	while (n < max) {
		char *bar = strchr(p, '|');
		char *s = p, *e;
		if (!bar)
			break;
		*bar = '\0';
		while (*s == ' ')
			s++;
		e = s + strlen(s);
		while (e > s && e[-1] == ' ')
			e--;
		*e = '\0';
		cells[n++] = s;
		p = bar + 1;
	}
	if (n == 0 || cells[0][0] != '`')
		return 0;
	return n;
}

static char *unbacktick(char *s)
{
	size_t n = strlen(s);

	if (n >= 2 && s[0] == '`' && s[n - 1] == '`') {
		s[n - 1] = '\0';
		return s + 1;
	}
	return s;
}

static void test_doc_lists_every_option(void **state)
{
	char *doc = read_doc();
	char *copy = strdup(doc);
	size_t n_opts, n_ign;
	const struct config_option *opts = config_options(&n_opts);
	const char *const *ign = config_ignored_options(&n_ign);
	bool *seen = calloc(n_opts, sizeof(bool));
	bool *seen_ign = calloc(n_ign, sizeof(bool));
	char *block, *line, *save;

	(void)state;
	assert_non_null(copy);
	assert_non_null(seen);
	assert_non_null(seen_ign);

	/* options table: | `name` | `default` or (empty) | yes/no | meaning | */
	block = doc_block(doc, "options");
	for (line = strtok_r(block, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *cells[8];
		const struct config_option *opt;
		const char *def;

		if (row_cells(line, cells, 8) < 4)
			continue;
		opt = config_find_option(unbacktick(cells[0]));
		if (!opt)
			fail_msg("doc/config.md documents unknown option %s", cells[0]);
		if (seen[opt - opts])
			fail_msg("doc/config.md documents %s twice", opt->name);
		seen[opt - opts] = true;
		def = strcmp(cells[1], "(empty)") == 0 ? "" : unbacktick(cells[1]);
		if (strcmp(def, opt->default_value) != 0)
			fail_msg("doc default of %s is \"%s\", table says \"%s\"", opt->name, def,
				 opt->default_value);
		if (strcmp(cells[2], opt->changeable ? "yes" : "no") != 0)
			fail_msg("doc says changeable=%s for %s", cells[2], opt->name);
		if (strlen(cells[3]) < 10)
			fail_msg("doc meaning of %s is missing", opt->name);
	}
	for (size_t i = 0; i < n_opts; i++) {
		if (!seen[i])
			fail_msg("option %s is not in doc/config.md", opts[i].name);
	}

	/* accepted-no-effect list: | `name` | ... | */
	block = doc_block(copy, "ignored");
	for (line = strtok_r(block, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *cells[4];
		const char *name;
		size_t i;

		if (row_cells(line, cells, 4) < 1)
			continue;
		name = unbacktick(cells[0]);
		for (i = 0; i < n_ign && strcmp(ign[i], name) != 0; i++)
			;
		if (i == n_ign)
			fail_msg("doc/config.md lists %s as no-effect, the code does not", name);
		seen_ign[i] = true;
	}
	for (size_t i = 0; i < n_ign; i++) {
		if (!seen_ign[i])
			fail_msg("no-effect option %s is not in doc/config.md", ign[i]);
	}
	free(seen);
	free(seen_ign);
	free(copy);
	free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_option_round_trips),
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_bad_values_name_file_and_line),
		cmocka_unit_test(test_pgbouncer_alias_and_case),
		cmocka_unit_test(test_unknown_option_warns_and_continues),
		cmocka_unit_test(test_ignored_options_are_silent),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_lexing_like_pgbouncer),
		cmocka_unit_test(test_databases),
		cmocka_unit_test(test_database_errors),
		cmocka_unit_test(test_users),
		cmocka_unit_test(test_load_file_and_include),
		cmocka_unit_test(test_include_errors),
		cmocka_unit_test(test_config_file_is_absolute),
		cmocka_unit_test(test_set_and_value_text),
		cmocka_unit_test(test_check_file),
		cmocka_unit_test(test_list_contains),
		cmocka_unit_test(test_host_list),
		cmocka_unit_test(test_doc_lists_every_option),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
