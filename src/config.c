/* config: loads pgtally.ini (PgBouncer's format) into a struct config, and SET/SHOW CONFIG. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * How the file is read. Debian's libinih is built with 200-byte lines, inline ";" comments
 * and indented continuation lines, none of which PgBouncer's format has (a connect_query or
 * a password may hold ";" and lines may be long), and its knobs are process-wide globals we
 * must not flip from a library that several threads use. So our ini_reader does the lexing
 * PgBouncer's way: it serves one physical line at a time (that is how every message gets its
 * file:line), expands %include, splits "name = value" itself and hands inih a canonical short
 * line; inih tracks the section and calls the handler, which takes the real name and value
 * from the context.
 */

#define MAX_INCLUDE_DEPTH 10
#define MAX_FILE_BYTES (16 * 1024 * 1024)
#define MAX_TOTAL_BYTES (64 * 1024 * 1024)
#define USEC_PER_SEC 1000000LL
#define TIME_MAX_SEC 1000000000000LL /* keeps every time well inside int64 microseconds */

/* ---- the option table ---- */

static const char *const auth_type_words[] = {"trust", "plain", "md5",  "scram-sha-256",
					      "any",   "hba",   "cert", NULL};
static const char *const pool_mode_words[] = {"session", "transaction", "statement", NULL};
static const char *const nplus1_action_words[] = {"log", "notice", "error", NULL};
static const char *const sslmode_words[] = {"disable",   "allow",       "prefer", "require",
					    "verify-ca", "verify-full", NULL};

#define OFF(field) offsetof(struct config, field)
#define O_INT(nm, def, chg, lo, hi)                                                                \
	{                                                                                          \
		.name = #nm, .default_value = def, .changeable = chg, .type = CONFIG_T_INT,        \
		.offset = OFF(nm), .min = lo, .max = hi                                            \
	}
#define O_BOOL(nm, def, chg)                                                                       \
	{                                                                                          \
		.name = #nm, .default_value = def, .changeable = chg, .type = CONFIG_T_BOOL,       \
		.offset = OFF(nm)                                                                  \
	}
#define O_STR(nm, def, chg)                                                                        \
	{                                                                                          \
		.name = #nm, .default_value = def, .changeable = chg, .type = CONFIG_T_STRING,     \
		.offset = OFF(nm)                                                                  \
	}
#define O_TIME(nm, def, chg)                                                                       \
	{                                                                                          \
		.name = #nm, .default_value = def, .changeable = chg, .type = CONFIG_T_TIME,       \
		.offset = OFF(nm)                                                                  \
	}
#define O_ENUM(nm, def, chg, w)                                                                    \
	{                                                                                          \
		.name = #nm, .default_value = def, .changeable = chg, .type = CONFIG_T_ENUM,       \
		.offset = OFF(nm), .words = w                                                      \
	}
#define O_KW(nm, def, chg, w)                                                                      \
	{                                                                                          \
		.name = #nm, .default_value = def, .changeable = chg, .type = CONFIG_T_KEYWORD,    \
		.offset = OFF(nm), .words = w                                                      \
	}

#define AUTH_QUERY_DEFAULT                                                                         \
	"SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END "          \
	"FROM pg_authid WHERE rolname=$1 AND rolcanlogin"

/* Alphabetical, like PgBouncer's SHOW CONFIG. */
static const struct config_option options[] = {
	O_STR(admin_users, "", true),
	O_BOOL(application_name_add_host, "0", true),
	O_STR(auth_dbname, "", true),
	O_STR(auth_file, "", true),
	O_STR(auth_hba_file, "", true),
	O_STR(auth_query, AUTH_QUERY_DEFAULT, true),
	O_ENUM(auth_type, "md5", true, auth_type_words),
	O_STR(auth_user, "", true),
	O_TIME(cancel_wait_timeout, "10", true),
	O_TIME(client_idle_timeout, "0", true),
	O_TIME(client_login_timeout, "60", true),
	O_STR(client_tls_ca_file, "", true),
	O_STR(client_tls_cert_file, "", true),
	O_STR(client_tls_ciphers, "default", true),
	O_STR(client_tls_key_file, "", true),
	O_STR(client_tls_protocols, "secure", true),
	O_KW(client_tls_sslmode, "disable", true, sslmode_words),
	/* read-only: where the config came from (RELOAD reads it again) */
	{.name = "conffile",
	 .default_value = "",
	 .type = CONFIG_T_STRING,
	 .offset = OFF(config_file)},
	O_INT(default_pool_size, "20", true, 0, INT_MAX),
	O_BOOL(disable_pqexec, "0", false),
	O_TIME(dns_max_ttl, "15", true),
	O_TIME(dns_nxdomain_ttl, "15", true),
	O_BOOL(fingerprints, "1", true),
	O_TIME(idle_transaction_timeout, "0", true),
	O_STR(ignore_startup_parameters, "", true),
	O_STR(listen_addr, "", false),
	O_INT(listen_backlog, "4096", false, 1, INT_MAX),
	O_INT(listen_port, "6432", false, 1, 65535),
	O_BOOL(log_connections, "1", true),
	O_BOOL(log_disconnections, "1", true),
	O_BOOL(log_pooler_errors, "1", true),
	O_BOOL(log_stats, "1", true),
	O_STR(logfile, "", true),
	O_INT(max_client_conn, "100", true, 0, INT_MAX),
	O_INT(max_db_connections, "0", true, 0, INT_MAX),
	{.name = "max_packet_size",
	 .default_value = "2147483647",
	 .changeable = true,
	 .type = CONFIG_T_SIZE,
	 .offset = OFF(max_packet_size),
	 .min = 1,
	 .max = 4294967295LL},
	O_INT(max_prepared_statements, "200", true, 0, INT_MAX),
	O_INT(max_user_connections, "0", true, 0, INT_MAX),
	O_STR(metrics_listen, "", false),
	O_INT(min_pool_size, "0", true, 0, INT_MAX),
	O_ENUM(nplus1_action, "log", true, nplus1_action_words),
	{.name = "nplus1_idle_gap_ms",
	 .default_value = "500",
	 .changeable = true,
	 .type = CONFIG_T_TIME_MS,
	 .offset = OFF(nplus1_idle_gap)},
	O_TIME(nplus1_log_interval, "60", true),
	O_INT(nplus1_max_findings, "1000", false, 0, INT_MAX),
	O_INT(nplus1_max_statements, "10000", true, 1, INT_MAX),
	{.name = "nplus1_min_time_ms",
	 .default_value = "0",
	 .changeable = true,
	 .type = CONFIG_T_TIME_MS,
	 .offset = OFF(nplus1_min_time)},
	O_INT(nplus1_threshold, "5", true, 2, INT_MAX),
	O_STR(pidfile, "", false),
	O_INT(pkt_buf, "4096", false, 512, 16 * 1024 * 1024),
	O_ENUM(pool_mode, "transaction", true, pool_mode_words),
	O_TIME(query_timeout, "0", true),
	O_TIME(query_wait_timeout, "120", true),
	O_INT(reserve_pool_size, "0", true, 0, INT_MAX),
	O_TIME(reserve_pool_timeout, "5", true),
	O_STR(resolv_conf, "", false),
	O_INT(sbuf_loopcnt, "5", true, 0, INT_MAX),
	O_TIME(server_check_delay, "30", true),
	O_STR(server_check_query, "<empty>", true),
	O_TIME(server_connect_timeout, "15", true),
	O_TIME(server_idle_timeout, "600", true),
	O_TIME(server_lifetime, "3600", true),
	O_TIME(server_login_retry, "15", true),
	O_STR(server_reset_query, "DISCARD ALL", true),
	O_BOOL(server_reset_query_always, "0", true),
	O_BOOL(server_round_robin, "0", true),
	O_STR(server_tls_ca_file, "", true),
	O_STR(server_tls_cert_file, "", true),
	O_STR(server_tls_ciphers, "default", true),
	O_STR(server_tls_key_file, "", true),
	O_STR(server_tls_protocols, "secure", true),
	O_KW(server_tls_sslmode, "prefer", true, sslmode_words),
	O_BOOL(so_reuseport, "0", false),
	O_INT(stats_max_fingerprints, "5000", false, 0, 100000000),
	O_INT(stats_metrics_fingerprints, "100", true, 0, 100000000),
	O_TIME(stats_period, "60", true),
	O_STR(stats_users, "", true),
	O_TIME(suspend_timeout, "10", true),
	O_BOOL(syslog, "0", true),
	O_STR(syslog_facility, "daemon", true),
	O_STR(syslog_ident, "pgtally", true),
	O_INT(tcp_defer_accept, "1", true, 0, INT_MAX),
	O_BOOL(tcp_keepalive, "1", true),
	O_INT(tcp_keepcnt, "0", true, 0, 127),
	O_INT(tcp_keepidle, "0", true, 0, 32767),
	O_INT(tcp_keepintvl, "0", true, 0, 32767),
	O_INT(tcp_socket_buffer, "0", true, 0, INT_MAX),
	O_INT(tcp_user_timeout, "0", true, 0, INT_MAX),
	O_STR(track_extra_parameters, "IntervalStyle", false),
	O_INT(track_query_len, "1024", true, 0, 1024 * 1024),
	O_STR(unix_socket_dir, "/tmp", false),
	O_STR(unix_socket_group, "", false),
	O_INT(unix_socket_mode, "0777", false, 0, 07777),
	O_STR(user, "", false),
	O_INT(verbose, "0", true, 0, 3),
	O_INT(workers, "1", false, 1, 64),
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

/* PgBouncer's options that pgtally takes without complaint but does not act on. */
static const char *const ignored_options[] = {
	"auth_ident_file",
	"auth_ldap_options",
	"autodb_idle_timeout",
	"client_tls13_ciphers",
	"client_tls_dheparams",
	"client_tls_ecdhcurve",
	"dns_zone_check_period",
	"job_name",
	"max_db_client_connections",
	"max_user_client_connections",
	"peer_id",
	"query_wait_notify",
	"scram_iterations",
	"server_fast_close",
	"server_tls13_ciphers",
	"service_name",
	"transaction_timeout",
};

#define N_IGNORED (sizeof(ignored_options) / sizeof(ignored_options[0]))

const struct config_option *config_options(size_t *n)
{
	if (n)
		*n = N_OPTIONS;
	return options;
}

const char *const *config_ignored_options(size_t *n)
{
	if (n)
		*n = N_IGNORED;
	return ignored_options;
}

const struct config_option *config_find_option(const char *name)
{
	for (size_t i = 0; i < N_OPTIONS; i++) {
		if (strcasecmp(options[i].name, name) == 0)
			return &options[i];
	}
	return NULL;
}

static bool is_ignored_option(const char *name)
{
	for (size_t i = 0; i < N_IGNORED; i++) {
		if (strcasecmp(ignored_options[i], name) == 0)
			return true;
	}
	return false;
}

static bool is_conffile(const struct config_option *opt)
{
	return opt->offset == OFF(config_file);
}

/* ---- value parsing, shared by the file, the defaults and SET ---- */

static bool parse_int64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (!*s || isspace((unsigned char)*s))
		return false;
	errno = 0;
	v = strtoll(s, &end, 0);
	if (errno || end == s || *end)
		return false;
	*out = v;
	return true;
}

/* "12.5" with scale 3 -> 12500: a decimal without floating point, so the locale cannot bite. */
static bool parse_fixed(const char *s, int scale, int64_t limit, int64_t *out)
{
	int64_t whole = 0, frac = 0, unit = 1;
	int frac_digits = 0;
	const char *p = s;

	for (int i = 0; i < scale; i++)
		unit *= 10;
	if (*p == '+')
		p++;
	if (!isdigit((unsigned char)*p) && !(*p == '.' && isdigit((unsigned char)p[1])))
		return false;
	for (; isdigit((unsigned char)*p); p++) {
		whole = whole * 10 + (*p - '0');
		if (whole > limit)
			return false;
	}
	if (*p == '.') {
		for (p++; isdigit((unsigned char)*p); p++) {
			/* digits below the resolution are dropped, not rounded */
			if (frac_digits < scale) {
				frac = frac * 10 + (*p - '0');
				frac_digits++;
			}
		}
	}
	if (*p)
		return false;
	for (; frac_digits < scale; frac_digits++)
		frac *= 10;
	*out = whole * unit + frac;
	return true;
}

static bool parse_size(const char *s, int64_t *out)
{
	char num[32];
	const char *unit;
	size_t n;
	int shift;
	int64_t v;

	/* hex digits include b and e, so a 0x number takes no suffix */
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		n = strlen(s);
	else
		n = strspn(s, "+-0123456789");
	if (n == 0 || n >= sizeof(num))
		return false;
	memcpy(num, s, n);
	num[n] = '\0';
	for (unit = s + n; *unit == ' '; unit++)
		;
	if (!*unit || strcasecmp(unit, "b") == 0)
		shift = 0;
	else if (strcasecmp(unit, "k") == 0 || strcasecmp(unit, "kb") == 0)
		shift = 10;
	else if (strcasecmp(unit, "m") == 0 || strcasecmp(unit, "mb") == 0)
		shift = 20;
	else if (strcasecmp(unit, "g") == 0 || strcasecmp(unit, "gb") == 0)
		shift = 30;
	else
		return false;
	if (!parse_int64(num, &v) || v < 0 || v > (INT64_MAX >> shift))
		return false;
	*out = v << shift;
	return true;
}

static bool parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"1", "yes", "true", "on", NULL};
	static const char *const no[] = {"0", "no", "false", "off", NULL};

	for (int i = 0; yes[i]; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

static int find_word(const char *const *words, const char *s)
{
	for (int i = 0; words[i]; i++) {
		if (strcasecmp(words[i], s) == 0)
			return i;
	}
	return -1;
}

static void words_list(const char *const *words, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; words[i] && used < len; i++) {
		int n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", words[i]);
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

/*
 * Parse text for opt and store it in cfg. On failure cfg is untouched and err says why
 * (without repeating the value, which the caller prints). Strings are replaced, the old one
 * freed.
 */
static bool option_parse(struct config *cfg, const struct config_option *opt, const char *text,
			 char *err, size_t errlen)
{
	void *field = (char *)cfg + opt->offset;
	int64_t v;
	bool b;
	int w;
	char *s;
	char words[160];

	switch (opt->type) {
	case CONFIG_T_INT:
		if (!parse_int64(text, &v)) {
			snprintf(err, errlen, "not an integer");
			return false;
		}
		if (v < opt->min || v > opt->max) {
			snprintf(err, errlen, "out of range (%lld..%lld)", (long long)opt->min,
				 (long long)opt->max);
			return false;
		}
		*(int *)field = (int)v;
		return true;
	case CONFIG_T_SIZE:
		if (!parse_size(text, &v)) {
			snprintf(err, errlen, "not a size (bytes, or a number with kB, MB or GB)");
			return false;
		}
		if (v < opt->min || v > opt->max) {
			snprintf(err, errlen, "out of range (%lld..%lld)", (long long)opt->min,
				 (long long)opt->max);
			return false;
		}
		*(int64_t *)field = v;
		return true;
	case CONFIG_T_BOOL:
		if (!parse_bool(text, &b)) {
			snprintf(err, errlen,
				 "not a boolean (use 0/1, yes/no, true/false, on/off)");
			return false;
		}
		*(bool *)field = b;
		return true;
	case CONFIG_T_TIME:
		if (!parse_fixed(text, 6, TIME_MAX_SEC, &v)) {
			snprintf(err, errlen, "not a time in seconds (e.g. 30 or 0.5)");
			return false;
		}
		*(usec_t *)field = v;
		return true;
	case CONFIG_T_TIME_MS:
		if (!parse_fixed(text, 3, TIME_MAX_SEC, &v)) {
			snprintf(err, errlen, "not a time in milliseconds (e.g. 500 or 0.5)");
			return false;
		}
		*(usec_t *)field = v;
		return true;
	case CONFIG_T_ENUM:
		w = find_word(opt->words, text);
		if (w < 0) {
			words_list(opt->words, words, sizeof(words));
			snprintf(err, errlen, "must be one of: %s", words);
			return false;
		}
		*(int *)field = w;
		return true;
	case CONFIG_T_KEYWORD:
	case CONFIG_T_STRING:
		if (opt->type == CONFIG_T_KEYWORD) {
			w = find_word(opt->words, text);
			if (w < 0) {
				words_list(opt->words, words, sizeof(words));
				snprintf(err, errlen, "must be one of: %s", words);
				return false;
			}
			text = opt->words[w];
		}
		s = strdup(text);
		if (!s) {
			snprintf(err, errlen, "out of memory");
			return false;
		}
		free(*(char **)field);
		*(char **)field = s;
		return true;
	}
	snprintf(err, errlen, "unknown option type");
	return false;
}

/* Seconds or milliseconds as PgBouncer prints them: "120", "0.5". */
static void format_fixed(int64_t v, int scale, char *buf, size_t len)
{
	int64_t unit = 1;
	int64_t frac;
	char digits[24];
	int n;

	for (int i = 0; i < scale; i++)
		unit *= 10;
	frac = v % unit;
	if (frac == 0) {
		snprintf(buf, len, "%lld", (long long)(v / unit));
		return;
	}
	snprintf(digits, sizeof(digits), "%0*lld", scale, (long long)frac);
	for (n = scale; n > 0 && digits[n - 1] == '0'; n--)
		digits[n - 1] = '\0';
	snprintf(buf, len, "%lld.%s", (long long)(v / unit), digits);
}

void config_value_text(const struct config *cfg, const struct config_option *opt, char *buf,
		       size_t buflen)
{
	const void *field = (const char *)cfg + opt->offset;
	const char *s;
	int w;

	if (!buflen)
		return;
	switch (opt->type) {
	case CONFIG_T_INT:
		snprintf(buf, buflen, "%d", *(const int *)field);
		return;
	case CONFIG_T_SIZE:
		snprintf(buf, buflen, "%lld", (long long)*(const int64_t *)field);
		return;
	case CONFIG_T_BOOL:
		snprintf(buf, buflen, "%d", *(const bool *)field ? 1 : 0);
		return;
	case CONFIG_T_TIME:
		format_fixed(*(const usec_t *)field, 6, buf, buflen);
		return;
	case CONFIG_T_TIME_MS:
		format_fixed(*(const usec_t *)field, 3, buf, buflen);
		return;
	case CONFIG_T_ENUM:
		w = *(const int *)field;
		s = "INVALID";
		for (int i = 0; opt->words[i]; i++) {
			if (i == w)
				s = opt->words[i];
		}
		snprintf(buf, buflen, "%s", s);
		return;
	case CONFIG_T_STRING:
	case CONFIG_T_KEYWORD:
		s = *(char *const *)field;
		snprintf(buf, buflen, "%s", s ? s : "");
		return;
	}
	buf[0] = '\0';
}

/* The values other options are worked out from (struct config's derived fields). */
static void derive(struct config *cfg)
{
	cfg->np = (struct nplus1_settings){
		.threshold = cfg->nplus1_threshold,
		.min_time = cfg->nplus1_min_time,
		.idle_gap = cfg->nplus1_idle_gap,
		.max_statements = cfg->nplus1_max_statements,
		.log_interval = cfg->nplus1_log_interval,
		.max_findings = cfg->nplus1_max_findings,
		.track_query_len = cfg->track_query_len,
	};
}

bool config_set(struct config *cfg, const char *key, const char *value, char *err, size_t errlen)
{
	const struct config_option *opt = config_find_option(key);
	char why[256];

	if (!opt) {
		if (is_ignored_option(key))
			snprintf(err, errlen, "option \"%s\" has no effect in pgtally", key);
		else
			snprintf(err, errlen, "unknown option: %s", key);
		return false;
	}
	if (!opt->changeable) {
		snprintf(err, errlen, "option \"%s\" cannot be changed at runtime", opt->name);
		return false;
	}
	if (!option_parse(cfg, opt, value, why, sizeof(why))) {
		snprintf(err, errlen, "invalid value \"%s\" for %s: %s", value, opt->name, why);
		return false;
	}
	derive(cfg);
	return true;
}

/* ---- problems ---- */

enum section {
	SECT_NONE, /* before the first header */
	SECT_MAIN, /* [pgtally] or [pgbouncer] */
	SECT_DATABASES,
	SECT_USERS,
	SECT_SKIP, /* [peers] or a broken header: lines are ignored */
};

struct source {
	char *name; /* as written, for messages */
	char *data; /* whole file */
	size_t len;
	size_t pos;
	int line;
	dev_t dev; /* for include loops; 0/0 for memory */
	ino_t ino;
};

struct load_ctx {
	struct config *cfg;
	struct config_problems *probs;
	int n_errors;
	bool oom;

	struct source stack[MAX_INCLUDE_DEPTH + 1];
	int depth; /* entries used in stack */
	size_t total_bytes;

	/* the line being handled */
	const char *file;
	int line;
	enum section section;
	char *linebuf;
	size_t linecap;
	char *key; /* point into linebuf / keybuf */
	char *value;
};

static void problem(struct load_ctx *ctx, bool is_error, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void problem_add(struct config_problems *probs, const char *file, int line, bool is_error,
			const char *msg)
{
	struct config_problem *items;

	if (!probs)
		return;
	items = realloc(probs->items, (probs->n + 1) * sizeof(*items));
	if (!items)
		return;
	probs->items = items;
	items[probs->n].file = strdup(file ? file : "");
	items[probs->n].line = line;
	items[probs->n].is_error = is_error;
	items[probs->n].message = strdup(msg);
	if (!items[probs->n].file || !items[probs->n].message) {
		free(items[probs->n].file);
		free(items[probs->n].message);
		return;
	}
	probs->n++;
}

static void problem(struct load_ctx *ctx, bool is_error, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (is_error)
		ctx->n_errors++;
	problem_add(ctx->probs, ctx->file, ctx->line, is_error, msg);
}

void config_problems_free(struct config_problems *probs)
{
	if (!probs)
		return;
	for (size_t i = 0; i < probs->n; i++) {
		free(probs->items[i].file);
		free(probs->items[i].message);
	}
	free(probs->items);
	probs->items = NULL;
	probs->n = 0;
}

/* ---- [databases] and [users] lines ---- */

static char *ctx_strdup(struct load_ctx *ctx, const char *s)
{
	char *d = strdup(s);

	if (!d)
		ctx->oom = true;
	return d;
}

/*
 * Next key=value pair of a libpq-style connection string. Values may be single-quoted, with
 * '' or \' for a quote and \\ for a backslash. The string is modified in place. Returns
 * false at the end (*p at '\0') or on a syntax error (then *why is set).
 */
static bool cstr_next(char **p, char **key, char **val, const char **why)
{
	char *s = *p, *d;

	*why = NULL;
	while (isspace((unsigned char)*s))
		s++;
	if (!*s) {
		*p = s;
		return false;
	}
	*key = s;
	while (*s && *s != '=' && !isspace((unsigned char)*s))
		s++;
	d = s;
	while (isspace((unsigned char)*s))
		s++;
	if (*s != '=' || d == *key) {
		*why = "expected key=value";
		return false;
	}
	*d = '\0';
	s++;
	while (isspace((unsigned char)*s))
		s++;
	if (*s == '\'') {
		*val = d = ++s;
		for (;;) {
			if (!*s) {
				*why = "unterminated quoted value";
				return false;
			}
			if (*s == '\'' && s[1] == '\'') {
				*d++ = '\'';
				s += 2;
			} else if (*s == '\\' && (s[1] == '\'' || s[1] == '\\')) {
				*d++ = s[1];
				s += 2;
			} else if (*s == '\'') {
				s++;
				break;
			} else {
				*d++ = *s++;
			}
		}
		if (*s && !isspace((unsigned char)*s)) {
			*why = "text right after a closing quote";
			return false;
		}
		if (*s)
			s++;
		*d = '\0';
	} else {
		*val = s;
		while (*s && !isspace((unsigned char)*s))
			s++;
		if (*s)
			*s++ = '\0';
		if (!**val) {
			*why = "empty value";
			return false;
		}
	}
	*p = s;
	return true;
}

static bool cstr_int(struct load_ctx *ctx, const char *key, const char *val, int lo, int hi,
		     int *out)
{
	int64_t v;

	if (!parse_int64(val, &v) || v < lo || v > hi) {
		problem(ctx, true, "invalid value \"%s\" for %s: expected an integer %d..%d", val,
			key, lo, hi);
		return false;
	}
	*out = (int)v;
	return true;
}

static bool cstr_enum(struct load_ctx *ctx, const char *key, const char *val,
		      const char *const *words, int *out)
{
	char list[160];
	int w = find_word(words, val);

	if (w < 0) {
		words_list(words, list, sizeof(list));
		problem(ctx, true, "invalid value \"%s\" for %s: must be one of: %s", val, key,
			list);
		return false;
	}
	*out = w;
	return true;
}

static bool cstr_str(struct load_ctx *ctx, const char *val, char **out)
{
	char *s = ctx_strdup(ctx, val);

	if (!s)
		return false;
	free(*out);
	*out = s;
	return true;
}

static void db_free_fields(struct config_db *db)
{
	free(db->name);
	free(db->host);
	free(db->dbname);
	free(db->user);
	free(db->password);
	free(db->auth_user);
	free(db->auth_dbname);
	free(db->client_encoding);
	free(db->datestyle);
	free(db->timezone);
	free(db->application_name);
	free(db->connect_query);
}

/* Keys PgBouncer knows on a [databases] line that we accept without acting on them. */
static const char *const ignored_db_keys[] = {"max_db_client_connections", NULL};

static const char *const lb_hosts_words[] = {"round-robin", "disable", NULL};

bool config_host_is_unix(const char *host)
{
	return !host || !*host || host[0] == '/';
}

int config_host_count(const char *hosts)
{
	int n = 1;
	for (const char *p = hosts; p && *p; p++)
		n += *p == ',';
	return n;
}

const char *config_host_entry(const char *hosts, int i, char *buf)
{
	if (!hosts || !strchr(hosts, ','))
		return hosts;
	const char *p = hosts;
	for (i %= config_host_count(hosts); i > 0; i--)
		p = strchr(p, ',') + 1;
	p += strspn(p, " \t");
	size_t n = strcspn(p, ",");
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	if (n >= CONFIG_HOST_MAX)
		n = CONFIG_HOST_MAX - 1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return buf;
}

/* A host list's problem for the user, or NULL: no entry may be empty or too long. */
static const char *host_list_problem(const char *hosts)
{
	char buf[CONFIG_HOST_MAX];
	int n = config_host_count(hosts);
	if (n == 1)
		return NULL;
	if (n > CONFIG_HOSTS_MAX)
		return "more than 64 hosts in the list";
	for (int i = 0; i < n; i++) {
		const char *h = config_host_entry(hosts, i, buf);
		if (!*h)
			return "an entry of the host list is empty";
		if (strlen(h) >= CONFIG_HOST_MAX - 1)
			return "an entry of the host list is too long";
	}
	return NULL;
}

static void parse_database(struct load_ctx *ctx, const char *name, char *connstr)
{
	struct config_db db;
	struct config *cfg = ctx->cfg;
	char *p = connstr, *key, *val;
	const char *why = NULL;
	bool ok = true;
	char **str;

	if (strcmp(name, "pgbouncer") == 0) {
		problem(ctx, true, "database name \"%s\" is reserved for the admin console", name);
		return;
	}
	memset(&db, 0, sizeof(db));
	db.port = 5432;
	db.pool_size = db.min_pool_size = db.reserve_pool = db.max_db_connections = -1;
	db.pool_mode = db.nplus1_action = -1;
	db.line = ctx->line;

	while (ok && cstr_next(&p, &key, &val, &why)) {
		str = NULL;
		if (strcasecmp(key, "host") == 0)
			str = &db.host;
		else if (strcasecmp(key, "dbname") == 0)
			str = &db.dbname;
		else if (strcasecmp(key, "user") == 0)
			str = &db.user;
		else if (strcasecmp(key, "password") == 0)
			str = &db.password;
		else if (strcasecmp(key, "auth_user") == 0)
			str = &db.auth_user;
		else if (strcasecmp(key, "auth_dbname") == 0)
			str = &db.auth_dbname;
		else if (strcasecmp(key, "client_encoding") == 0)
			str = &db.client_encoding;
		else if (strcasecmp(key, "datestyle") == 0)
			str = &db.datestyle;
		else if (strcasecmp(key, "timezone") == 0)
			str = &db.timezone;
		else if (strcasecmp(key, "application_name") == 0)
			str = &db.application_name;
		else if (strcasecmp(key, "connect_query") == 0)
			str = &db.connect_query;
		else if (strcasecmp(key, "port") == 0)
			ok = cstr_int(ctx, key, val, 1, 65535, &db.port);
		else if (strcasecmp(key, "pool_size") == 0)
			ok = cstr_int(ctx, key, val, 0, INT_MAX, &db.pool_size);
		else if (strcasecmp(key, "min_pool_size") == 0)
			ok = cstr_int(ctx, key, val, 0, INT_MAX, &db.min_pool_size);
		else if (strcasecmp(key, "reserve_pool") == 0 ||
			 strcasecmp(key, "reserve_pool_size") == 0)
			ok = cstr_int(ctx, key, val, 0, INT_MAX, &db.reserve_pool);
		else if (strcasecmp(key, "max_db_connections") == 0)
			ok = cstr_int(ctx, key, val, 0, INT_MAX, &db.max_db_connections);
		else if (strcasecmp(key, "pool_mode") == 0)
			ok = cstr_enum(ctx, key, val, pool_mode_words, &db.pool_mode);
		else if (strcasecmp(key, "nplus1_action") == 0)
			ok = cstr_enum(ctx, key, val, nplus1_action_words, &db.nplus1_action);
		else if (strcasecmp(key, "load_balance_hosts") == 0)
			ok = cstr_enum(ctx, key, val, lb_hosts_words, &db.load_balance_hosts);
		else if (find_word(ignored_db_keys, key) < 0)
			problem(ctx, false, "database \"%s\": unknown parameter \"%s\", ignored",
				name, key);
		if (str)
			ok = cstr_str(ctx, val, str);
		const char *bad;
		if (ok && str == &db.host && (bad = host_list_problem(db.host))) {
			problem(ctx, true, "database \"%s\": host \"%s\": %s", name, db.host, bad);
			ok = false;
		}
	}
	if (ok && why) {
		problem(ctx, true, "database \"%s\": syntax error in connection string: %s", name,
			why);
		ok = false;
	}
	if (ok)
		db.name = ctx_strdup(ctx, name);
	if (!ok || !db.name) {
		db_free_fields(&db);
		return;
	}

	/* a later line for the same name replaces the earlier one, as in PgBouncer */
	for (size_t i = 0; i < cfg->n_dbs; i++) {
		if (strcmp(cfg->dbs[i].name, name) == 0) {
			db_free_fields(&cfg->dbs[i]);
			cfg->dbs[i] = db;
			return;
		}
	}
	struct config_db *dbs = realloc(cfg->dbs, (cfg->n_dbs + 1) * sizeof(*dbs));
	if (!dbs) {
		ctx->oom = true;
		db_free_fields(&db);
		return;
	}
	cfg->dbs = dbs;
	cfg->dbs[cfg->n_dbs++] = db;
}

static void parse_user(struct load_ctx *ctx, const char *name, char *settings)
{
	struct config_user u = {.pool_mode = -1,
				.pool_size = -1,
				.max_user_connections = -1,
				.max_user_client_connections = -1};
	struct config *cfg = ctx->cfg;
	char *p = settings, *key, *val;
	const char *why = NULL;
	bool ok = true;

	while (ok && cstr_next(&p, &key, &val, &why)) {
		if (strcasecmp(key, "pool_mode") == 0)
			ok = cstr_enum(ctx, key, val, pool_mode_words, &u.pool_mode);
		else if (strcasecmp(key, "pool_size") == 0)
			ok = cstr_int(ctx, key, val, 0, INT_MAX, &u.pool_size);
		else if (strcasecmp(key, "max_user_connections") == 0)
			ok = cstr_int(ctx, key, val, 0, INT_MAX, &u.max_user_connections);
		else if (strcasecmp(key, "max_user_client_connections") == 0)
			ok = cstr_int(ctx, key, val, 0, INT_MAX, &u.max_user_client_connections);
		else
			problem(ctx, false, "user \"%s\": unknown parameter \"%s\", ignored", name,
				key);
	}
	if (ok && why) {
		problem(ctx, true, "user \"%s\": syntax error: %s", name, why);
		ok = false;
	}
	if (!ok)
		return;
	u.name = ctx_strdup(ctx, name);
	if (!u.name)
		return;
	for (size_t i = 0; i < cfg->n_users; i++) {
		if (strcmp(cfg->users[i].name, name) == 0) {
			free(cfg->users[i].name);
			cfg->users[i] = u;
			return;
		}
	}
	struct config_user *users = realloc(cfg->users, (cfg->n_users + 1) * sizeof(*users));
	if (!users) {
		ctx->oom = true;
		free(u.name);
		return;
	}
	cfg->users = users;
	cfg->users[cfg->n_users++] = u;
}

/* ---- the [pgtally] section ---- */

static void set_main_option(struct load_ctx *ctx, const char *name, const char *value)
{
	const struct config_option *opt = config_find_option(name);
	char why[256];

	if (!opt) {
		if (!is_ignored_option(name))
			problem(ctx, false, "unknown option \"%s\", ignored", name);
		return;
	}
	if (is_conffile(opt)) {
		problem(ctx, false, "option \"%s\" is read-only, ignored", opt->name);
		return;
	}
	if (!option_parse(ctx->cfg, opt, value, why, sizeof(why)))
		problem(ctx, true, "invalid value \"%s\" for %s: %s", value, opt->name, why);
}

static int ini_handler_cb(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *ctx = user;

	(void)section; /* inih's copy of what ctx->section already says */
	(void)name;
	(void)value;
	switch (ctx->section) {
	case SECT_NONE:
		problem(ctx, true, "\"%s\" is not inside any section", ctx->key);
		break;
	case SECT_MAIN:
		set_main_option(ctx, ctx->key, ctx->value);
		break;
	case SECT_DATABASES:
		parse_database(ctx, ctx->key, ctx->value);
		break;
	case SECT_USERS:
		parse_user(ctx, ctx->key, ctx->value);
		break;
	case SECT_SKIP:
		break;
	}
	return 1;
}

/* ---- sources and the line reader ---- */

static bool read_whole_file(struct load_ctx *ctx, const char *path, struct source *src)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	struct stat st;
	size_t used = 0;
	char *data = NULL;

	if (fd < 0) {
		problem(ctx, true, "cannot open \"%s\": %s", path, strerror(errno));
		return false;
	}
	/* a FIFO or device could block or never end; PgBouncer's files are plain files */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		problem(ctx, true, "\"%s\" is not a regular file", path);
		close(fd);
		return false;
	}
	if (st.st_size > MAX_FILE_BYTES ||
	    ctx->total_bytes + (size_t)st.st_size > MAX_TOTAL_BYTES) {
		problem(ctx, true, "\"%s\" is too large", path);
		close(fd);
		return false;
	}
	data = malloc((size_t)st.st_size + 1);
	if (!data) {
		ctx->oom = true;
		close(fd);
		return false;
	}
	while (used < (size_t)st.st_size) {
		ssize_t n = read(fd, data + used, (size_t)st.st_size - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			problem(ctx, true, "cannot read \"%s\": %s", path, strerror(errno));
			free(data);
			close(fd);
			return false;
		}
		if (n == 0)
			break; /* shrank while we read: take what is there */
		used += (size_t)n;
	}
	close(fd);
	data[used] = '\0';
	ctx->total_bytes += used;
	src->data = data;
	src->len = used;
	src->dev = st.st_dev;
	src->ino = st.st_ino;
	return true;
}

static bool push_file(struct load_ctx *ctx, const char *path)
{
	struct source *src;
	struct stat st;

	if (ctx->depth > MAX_INCLUDE_DEPTH) {
		problem(ctx, true, "%%include nested too deeply (more than %d levels)",
			MAX_INCLUDE_DEPTH);
		return false;
	}
	if (stat(path, &st) == 0) {
		for (int i = 0; i < ctx->depth; i++) {
			if (ctx->stack[i].dev == st.st_dev && ctx->stack[i].ino == st.st_ino &&
			    ctx->stack[i].data && (st.st_dev || st.st_ino)) {
				problem(ctx, true, "%%include loop: \"%s\" includes itself", path);
				return false;
			}
		}
	}
	src = &ctx->stack[ctx->depth];
	memset(src, 0, sizeof(*src));
	if (!read_whole_file(ctx, path, src))
		return false;
	src->name = ctx_strdup(ctx, path);
	if (!src->name) {
		free(src->data);
		return false;
	}
	ctx->depth++;
	return true;
}

static void pop_source(struct load_ctx *ctx)
{
	struct source *src = &ctx->stack[--ctx->depth];

	free(src->name);
	free(src->data);
	memset(src, 0, sizeof(*src));
}

/* The next physical line into ctx->linebuf, or false at the end of every source. */
static bool next_physical_line(struct load_ctx *ctx)
{
	while (ctx->depth > 0) {
		struct source *src = &ctx->stack[ctx->depth - 1];
		const char *start, *nl;
		size_t n;

		if (src->pos >= src->len) {
			/* line numbers of the includer go on where they were */
			pop_source(ctx);
			continue;
		}
		start = src->data + src->pos;
		nl = memchr(start, '\n', src->len - src->pos);
		n = nl ? (size_t)(nl - start) : src->len - src->pos;
		src->pos += n + (nl ? 1 : 0);
		src->line++;
		if (n + 1 > ctx->linecap) {
			char *b = realloc(ctx->linebuf, n + 1);
			if (!b) {
				ctx->oom = true;
				return false;
			}
			ctx->linebuf = b;
			ctx->linecap = n + 1;
		}
		memcpy(ctx->linebuf, start, n);
		ctx->linebuf[n] = '\0';
		ctx->file = src->name;
		ctx->line = src->line;
		if (memchr(start, '\0', n)) {
			problem(ctx, true, "line contains a NUL byte");
			ctx->linebuf[0] = '\0';
		} else if (src->line == 1 && strncmp(ctx->linebuf, "\xEF\xBB\xBF", 3) == 0) {
			memmove(ctx->linebuf, ctx->linebuf + 3, n - 2);
		}
		return true;
	}
	return false;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		e--;
	*e = '\0';
	return s;
}

static void handle_directive(struct load_ctx *ctx, char *line)
{
	char *arg = line + 1;
	size_t wl = strcspn(arg, " \t");

	if (wl != 7 || strncasecmp(arg, "include", 7) != 0) {
		problem(ctx, true, "unknown directive \"%.*s\"", (int)(wl + 1), line);
		return;
	}
	arg = trim(arg + 7);
	if (!*arg) {
		problem(ctx, true, "%%include needs a file name");
		return;
	}
	/* as in PgBouncer, a relative name is relative to the working directory */
	(void)push_file(ctx, arg);
}

/* Returns the canonical section text for inih. */
static const char *handle_section(struct load_ctx *ctx, char *line)
{
	size_t n = strlen(line);
	char *name;

	if (line[n - 1] != ']') {
		problem(ctx, true, "syntax error: section header without closing \"]\"");
		ctx->section = SECT_SKIP;
		return "[skip]\n";
	}
	line[n - 1] = '\0';
	name = trim(line + 1);
	if (strcasecmp(name, "pgtally") == 0 || strcasecmp(name, "pgbouncer") == 0) {
		ctx->section = SECT_MAIN;
		return "[pgtally]\n";
	}
	if (strcasecmp(name, "databases") == 0) {
		ctx->section = SECT_DATABASES;
		return "[databases]\n";
	}
	if (strcasecmp(name, "users") == 0) {
		ctx->section = SECT_USERS;
		return "[users]\n";
	}
	ctx->section = SECT_SKIP;
	if (strcasecmp(name, "peers") == 0)
		problem(ctx, false, "section [peers] is not supported by pgtally, ignored");
	else
		problem(ctx, true, "unknown section [%s]", name);
	return "[skip]\n";
}

/* Splits "name = value" (name maybe "double-quoted") into ctx->key and ctx->value. */
static bool split_assignment(struct load_ctx *ctx, char *line)
{
	char *eq, *k;

	if (*line == '"') {
		char *s = line + 1, *d;
		k = d = line + 1;
		for (;;) {
			if (!*s) {
				problem(ctx, true, "syntax error: unterminated quoted name");
				return false;
			}
			if (*s == '"' && s[1] == '"') {
				*d++ = '"';
				s += 2;
			} else if (*s == '"') {
				s++;
				break;
			} else {
				*d++ = *s++;
			}
		}
		*d = '\0';
		while (isspace((unsigned char)*s))
			s++;
		if (*s != '=') {
			problem(ctx, true, "syntax error: expected \"=\" after the quoted name");
			return false;
		}
		eq = s;
	} else {
		eq = strchr(line, '=');
		if (!eq) {
			problem(ctx, true, "syntax error: expected \"name = value\"");
			return false;
		}
		*eq = '\0';
		k = trim(line);
	}
	if (!*k) {
		problem(ctx, true, "syntax error: empty name before \"=\"");
		return false;
	}
	ctx->key = k;
	ctx->value = trim(eq + 1);
	return true;
}

static char *ini_reader_cb(char *str, int num, void *stream)
{
	struct load_ctx *ctx = stream;
	const char *out = "\n";
	char *line;

	if (num < 16)
		return NULL;
	while (next_physical_line(ctx)) {
		line = trim(ctx->linebuf);
		if (!*line || *line == ';' || *line == '#')
			continue;
		if (*line == '%') {
			handle_directive(ctx, line);
			continue;
		}
		if (*line == '[')
			out = handle_section(ctx, line);
		else if (split_assignment(ctx, line))
			out = "v=\n";
		else
			continue;
		snprintf(str, (size_t)num, "%s", out);
		return str;
	}
	return NULL;
}

/* ---- loading ---- */

static bool apply_defaults(struct config *cfg)
{
	char why[256];

	for (size_t i = 0; i < N_OPTIONS; i++) {
		if (!option_parse(cfg, &options[i], options[i].default_value, why, sizeof(why)))
			return false;
	}
	return true;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < N_OPTIONS; i++) {
		if (options[i].type == CONFIG_T_STRING || options[i].type == CONFIG_T_KEYWORD)
			free(*(char **)((char *)cfg + options[i].offset));
	}
	for (size_t i = 0; i < cfg->n_dbs; i++)
		db_free_fields(&cfg->dbs[i]);
	free(cfg->dbs);
	for (size_t i = 0; i < cfg->n_users; i++)
		free(cfg->users[i].name);
	free(cfg->users);
	free(cfg);
}

/* Runs the parse over whatever sources are on the stack; frees them; returns cfg or NULL. */
static struct config *run_parse(struct load_ctx *ctx)
{
	int rc = ini_parse_stream(ini_reader_cb, ctx, ini_handler_cb, ctx);

	while (ctx->depth > 0)
		pop_source(ctx);
	free(ctx->linebuf);
	ctx->file = ctx->cfg->config_file;
	ctx->line = 0;
	if (rc > 0)
		problem(ctx, true, "internal error: ini parser rejected canonical line %d", rc);
	else if (rc < 0)
		ctx->oom = true;
	if (ctx->oom)
		problem(ctx, true, "out of memory while loading the configuration");
	if (ctx->n_errors > 0 || ctx->oom) {
		config_free(ctx->cfg);
		return NULL;
	}
	derive(ctx->cfg);
	return ctx->cfg;
}

static struct config *new_config(struct load_ctx *ctx, const char *name,
				 struct config_problems *probs)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->file = name;
	ctx->probs = probs;
	ctx->cfg = calloc(1, sizeof(*ctx->cfg));
	if (!ctx->cfg || !apply_defaults(ctx->cfg)) {
		problem(ctx, true, "out of memory while loading the configuration");
		config_free(ctx->cfg);
		return NULL;
	}
	return ctx->cfg;
}

struct config *config_load(const char *path, struct config_problems *probs)
{
	struct load_ctx ctx;
	char *abs;

	if (!new_config(&ctx, path, probs))
		return NULL;
	if (!push_file(&ctx, path)) {
		if (ctx.oom)
			problem(&ctx, true, "out of memory while loading the configuration");
		config_free(ctx.cfg);
		return NULL;
	}
	abs = realpath(path, NULL);
	free(ctx.cfg->config_file);
	ctx.cfg->config_file = abs ? abs : strdup(path);
	if (!ctx.cfg->config_file)
		ctx.oom = true;
	return run_parse(&ctx);
}

struct config *config_load_string(const char *text, size_t len, const char *name,
				  struct config_problems *probs)
{
	struct load_ctx ctx;
	struct source *src;

	if (!name)
		name = "<string>";
	if (!new_config(&ctx, name, probs))
		return NULL;
	src = &ctx.stack[0];
	src->data = malloc(len + 1);
	src->name = strdup(name);
	free(ctx.cfg->config_file);
	ctx.cfg->config_file = strdup(name);
	if (!src->data || !src->name || !ctx.cfg->config_file) {
		free(src->data);
		free(src->name);
		problem(&ctx, true, "out of memory while loading the configuration");
		config_free(ctx.cfg);
		return NULL;
	}
	if (len)
		memcpy(src->data, text, len);
	src->data[len] = '\0';
	src->len = len;
	ctx.depth = 1;
	return run_parse(&ctx);
}

int config_check_file(const char *path, FILE *out)
{
	return config_check_file_with(path, out, NULL);
}

int config_check_file_with(const char *path, FILE *out,
			   bool (*extra)(const struct config *cfg, char *err, size_t errlen))
{
	struct config_problems probs = {0};
	struct config *cfg = config_load(path, &probs);
	size_t errors = 0, warnings = 0;

	for (size_t i = 0; i < probs.n; i++) {
		const struct config_problem *p = &probs.items[i];
		const char *kind = p->is_error ? "error" : "warning";

		if (p->is_error)
			errors++;
		else
			warnings++;
		if (p->line > 0)
			fprintf(out, "%s:%d: %s: %s\n", p->file, p->line, kind, p->message);
		else
			fprintf(out, "%s: %s: %s\n", p->file, kind, p->message);
	}
	/* a failed load always leaves at least one error behind; count one if it did not */
	if (!cfg && errors == 0) {
		fprintf(out, "%s: error: the configuration cannot be used\n", path);
		errors++;
	}
	char err[256] = "";
	if (cfg && extra && !extra(cfg, err, sizeof(err))) {
		fprintf(out, "%s: error: %s\n", path, err);
		errors++;
	}
	if (errors == 0 && warnings == 0)
		fprintf(out, "ok\n");
	else
		fprintf(out, "%zu error(s), %zu warning(s)\n", errors, warnings);
	config_free(cfg);
	config_problems_free(&probs);
	return errors == 0 && warnings == 0 ? 0 : 1;
}

/* ---- lookups ---- */

const struct config_db *config_find_db(const struct config *cfg, const char *name, bool fallback)
{
	const struct config_db *star = NULL;

	for (size_t i = 0; i < cfg->n_dbs; i++) {
		if (strcmp(cfg->dbs[i].name, name) == 0)
			return &cfg->dbs[i];
		if (strcmp(cfg->dbs[i].name, "*") == 0)
			star = &cfg->dbs[i];
	}
	return fallback ? star : NULL;
}

const struct config_user *config_find_user(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_users; i++) {
		if (strcmp(cfg->users[i].name, name) == 0)
			return &cfg->users[i];
	}
	return NULL;
}

bool config_list_contains(const char *list, const char *name)
{
	size_t nlen = strlen(name);
	const char *p = list;

	if (!p)
		return false;
	while (*p) {
		size_t n;

		p += strspn(p, ", \t");
		n = strcspn(p, ", \t");
		if (n == 0)
			break;
		if ((n == 1 && *p == '*') || (n == nlen && memcmp(p, name, n) == 0))
			return true;
		p += n;
	}
	return false;
}
