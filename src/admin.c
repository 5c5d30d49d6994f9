/* admin: the console database (pgtally, alias pgbouncer): SHOW and control commands. */
#include "admin.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "client.h"
#include "log.h"
#include "pool.h"
#include "proto.h"
#include "server.h"
#include "worker.h"

void admin_welcome(struct client *c, struct iobuf *b)
{
	proto_build_param_status(b, "server_version", PGTALLY_VERSION "/pgtally");
	proto_build_param_status(b, "client_encoding", "UTF8");
	proto_build_param_status(b, "server_encoding", "UTF8");
	proto_build_param_status(b, "DateStyle", "ISO");
	proto_build_param_status(b, "integer_datetimes", "on");
	proto_build_param_status(b, "standard_conforming_strings", "on");
	proto_build_backend_key(b, 0, 0);
	proto_build_ready(b, 'I');
	(void)client_send(c, b);
}

struct result {
	struct iobuf *b;
	size_t ncols;
	size_t nrows;
};

static void result_begin(struct result *r, struct iobuf *b, const char *const *names,
			 const uint32_t *types, size_t n)
{
	r->b = b;
	r->ncols = n;
	r->nrows = 0;
	proto_build_row_desc(b, names, types, n);
}

static void result_row(struct result *r, const char *const *values)
{
	proto_build_data_row(r->b, values, r->ncols);
	r->nrows++;
}

static void result_end(struct result *r, const char *cmd)
{
	char tag[64];
	snprintf(tag, sizeof(tag), "%s", cmd);
	proto_build_command_complete(r->b, tag);
}

static void show_version(struct client *c, struct iobuf *b)
{
	(void)c;
	struct result r;
	static const char *const names[] = {"version"};
	static const uint32_t types[] = {PG_TYPE_TEXT};
	result_begin(&r, b, names, types, 1);
	const char *v[] = {"pgtally " PGTALLY_VERSION};
	result_row(&r, v);
	result_end(&r, "SHOW");
}

static void show_pools(struct client *c, struct iobuf *b)
{
	static const char *const names[] = {
		"database",	    "user",	     "cl_active",	  "cl_waiting",
		"cl_active_cancel_req", "cl_waiting_cancel_req", "sv_active", "sv_active_cancel",
		"sv_being_canceled", "sv_idle",	     "sv_used",		  "sv_tested",
		"sv_login",	    "maxwait",	     "maxwait_us",	  "pool_mode",
		"load_balance_hosts"};
	static const uint32_t types[] = {PG_TYPE_TEXT, PG_TYPE_TEXT, PG_TYPE_INT4, PG_TYPE_INT4,
					 PG_TYPE_INT4, PG_TYPE_INT4, PG_TYPE_INT4, PG_TYPE_INT4,
					 PG_TYPE_INT4, PG_TYPE_INT4, PG_TYPE_INT4, PG_TYPE_INT4,
					 PG_TYPE_INT4, PG_TYPE_INT4, PG_TYPE_INT4, PG_TYPE_TEXT,
					 PG_TYPE_TEXT};
	static const char *const modes[] = {"session", "transaction", "statement"};
	struct worker *w = c->w;
	struct result r;
	usec_t now = worker_now(w);
	result_begin(&r, b, names, types, 17);
	for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		char n[13][24];
		usec_t maxwait = 0;
		if (!list_empty(&p->waiting_clients)) {
			struct client *first =
				container_of(p->waiting_clients.next, struct client, node);
			if (first->wait_start)
				maxwait = now - first->wait_start;
		}
		snprintf(n[0], 24, "%zu", list_count(&p->active_clients));
		snprintf(n[1], 24, "%zu", list_count(&p->waiting_clients));
		snprintf(n[2], 24, "0");
		snprintf(n[3], 24, "0");
		snprintf(n[4], 24, "%zu", list_count(&p->active_servers));
		snprintf(n[5], 24, "0");
		snprintf(n[6], 24, "0");
		snprintf(n[7], 24, "%zu", list_count(&p->idle_servers));
		snprintf(n[8], 24, "%zu", list_count(&p->used_servers));
		snprintf(n[9], 24, "%zu", list_count(&p->tested_servers));
		snprintf(n[10], 24, "%zu", list_count(&p->login_servers));
		snprintf(n[11], 24, "%lld", (long long)(maxwait / 1000000));
		snprintf(n[12], 24, "%lld", (long long)(maxwait % 1000000));
		const char *v[] = {p->db->name, p->user->name, n[0], n[1], n[2], n[3], n[4], n[5],
				   n[6], n[7], n[8], n[9], n[10], n[11], n[12],
				   modes[p->pool_mode], NULL};
		result_row(&r, v);
	}
	result_end(&r, "SHOW");
}

static void for_each_pool_of(struct worker *w, const char *db, void (*fn)(struct pool *))
{
	for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		if (!db || strcmp(p->db->name, db) == 0)
			fn(p);
	}
}

static void resume_pool(struct pool *p)
{
	pool_maintain(p);
}

static void set_paused(struct worker *w, const char *db, bool paused)
{
	if (!db) {
		w->paused = paused;
	} else {
		struct pool_db *pdb = pool_db_find(w, db, false);
		if (pdb)
			pdb->paused = paused;
	}
	if (!paused)
		for_each_pool_of(w, db, resume_pool);
}

/* Split "WORD [ARG]" into lower-case word and optional argument (unquoted). */
static void split_cmd(char *cmd, char **word, char **arg)
{
	while (isspace((unsigned char)*cmd))
		cmd++;
	char *end = cmd + strlen(cmd);
	while (end > cmd && isspace((unsigned char)end[-1]))
		*--end = '\0';
	*word = cmd;
	char *sp = cmd;
	while (*sp && !isspace((unsigned char)*sp))
		sp++;
	if (*sp) {
		*sp++ = '\0';
		while (isspace((unsigned char)*sp))
			sp++;
		*arg = *sp ? sp : NULL;
	} else {
		*arg = NULL;
	}
	for (char *p = *word; *p; p++)
		*p = (char)tolower((unsigned char)*p);
}

static bool admin_command(struct client *c, char *cmd, struct iobuf *b)
{
	struct worker *w = c->w;
	char *word, *arg;
	char err[256];

	split_cmd(cmd, &word, &arg);
	if (!*word)
		return true;
	if (strcmp(word, "show") == 0) {
		if (!arg) {
			proto_build_error(b, false, "ERROR", "42601", "SHOW what? Try SHOW HELP");
			return false;
		}
		if (strcasecmp(arg, "version") == 0)
			show_version(c, b);
		else if (strcasecmp(arg, "pools") == 0)
			show_pools(c, b);
		else {
			snprintf(err, sizeof(err), "unknown SHOW item \"%s\"; see SHOW HELP", arg);
			proto_build_error(b, false, "ERROR", "42601", err);
			return false;
		}
		return true;
	}
	if (!c->admin_may_control) {
		proto_build_error(b, false, "ERROR", "42501",
				  "only admin_users may run this command (stats_users: SHOW only)");
		return false;
	}
	if (strcmp(word, "pause") == 0) {
		set_paused(w, arg, true);
		proto_build_command_complete(b, "PAUSE");
	} else if (strcmp(word, "resume") == 0) {
		set_paused(w, arg, false);
		proto_build_command_complete(b, "RESUME");
	} else if (strcmp(word, "reload") == 0) {
		if (!app_reload(w, err, sizeof(err))) {
			proto_build_error(b, false, "ERROR", "F0000", err);
			return false;
		}
		proto_build_command_complete(b, "RELOAD");
	} else if (strcmp(word, "shutdown") == 0) {
		int mode = 0;
		if (arg && strcasecmp(arg, "wait_for_servers") == 0)
			mode = 1;
		else if (arg && strcasecmp(arg, "wait_for_clients") == 0)
			mode = 2;
		proto_build_command_complete(b, "SHUTDOWN");
		app_shutdown(w, mode);
	} else {
		snprintf(err, sizeof(err), "unknown command \"%s\"; see SHOW HELP", word);
		proto_build_error(b, false, "ERROR", "42601", err);
		return false;
	}
	return true;
}

/* Split a query on top-level semicolons (quotes respected) and run each command. */
static void admin_query(struct client *c, char *sql, struct iobuf *b)
{
	char *start = sql;
	char quote = 0;
	bool any = false;
	for (char *p = sql;; p++) {
		if (*p && quote) {
			if (*p == quote)
				quote = 0;
			continue;
		}
		if (*p == '\'' || *p == '"') {
			quote = *p;
			continue;
		}
		if (*p == ';' || *p == '\0') {
			bool end = *p == '\0';
			*p = '\0';
			char *s = start;
			while (isspace((unsigned char)*s))
				s++;
			if (*s) {
				any = true;
				if (!admin_command(c, s, b))
					break;
			}
			if (end)
				break;
			start = p + 1;
		}
	}
	if (!any)
		proto_build_command_complete(b, "");
	proto_build_ready(b, 'I');
}

void admin_process(struct client *c)
{
	struct iobuf *in = &c->sb.in;
	struct iobuf b = {0};

	while (c->state == CL_ADMIN && iobuf_avail(in) >= 5) {
		const uint8_t *hdr = in->data + in->rpos;
		uint32_t len = proto_be32(hdr + 1);
		if (len < 4 || len > 1024 * 1024) {
			client_close(c, "08P01", "invalid message length on the console");
			break;
		}
		if (iobuf_avail(in) < (size_t)len + 1) {
			if (in->cap < (size_t)len + 1 && !iobuf_reserve(in, len + 1 - iobuf_avail(in)))
				client_close(c, "53200", "out of memory");
			break;
		}
		in->rpos += (size_t)len + 1;
		if (hdr[0] == 'X') {
			client_close(c, NULL, "console client sent Terminate");
			break;
		}
		if (hdr[0] != 'Q') {
			proto_build_error(&b, false, "ERROR", "0A000",
					  "the console speaks only the simple query protocol");
			if (hdr[0] == 'S')
				proto_build_ready(&b, 'I');
			continue;
		}
		char *sql = strndup((const char *)hdr + 5, len - 4);
		if (!sql) {
			client_close(c, "53200", "out of memory");
			break;
		}
		admin_query(c, sql, &b);
		free(sql);
	}
	if (c->state == CL_ADMIN && iobuf_avail(&b))
		(void)client_send(c, &b);
	iobuf_release(&b);
}
