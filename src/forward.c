/* forward: each client message on its way to the server (see include/forward.h). */
#include "forward.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>
#include <sys/un.h>
#include <unistd.h>
#include "admin.h"
#include "auth.h"
#include "log.h"
#include "client.h"
#include "fingerprint.h"
#include "fpcache.h"
#include "nplus1.h"
#include "prepared.h"
#include "proto.h"
#include "rq.h"
#include "server.h"
#include "stats.h"
#include "tls.h"
#include "worker.h"

/* Named prepared statements one client may hold: a bound on what one connection can make
 * pgtally keep. Drivers cache far fewer (psycopg 3: 100, JDBC: 256). */
#define CLIENT_MAX_PREPARED 10000

/* Send the bytes [start, rpos) of the input buffer to the server. */
bool fwd_flush_run(struct client *c, size_t *run_start)
{
	struct iobuf *in = &c->sb.in;
	size_t n = in->rpos - *run_start;
	*run_start = in->rpos;
	if (n == 0 || !c->server)
		return true;
	c->pool->stats.bytes_received += n;
	if (!sbuf_send(&c->server->sb, in->data + in->rpos - n, n)) {
		struct server *s = c->server;
		client_close(c, "08006", "server connection lost while sending");
		server_close(s, "send to server failed");
		return false;
	}
	return true;
}

/* Queue an entry for a reply the server owes; closes the client when out of memory. */
struct rq_entry *fwd_expect(struct client *c, struct server *s, enum rq_type type, usec_t now)
{
	bool was_idle = s->rq.count == 0;
	struct rq_entry *e = rq_push(&s->rq, type);
	if (!e) {
		client_close(c, "53200", "out of memory tracking requests");
		return NULL;
	}
	e->sent = now;
	e->copy_ends = s->copy_ends;
	if (was_idle) {
		c->query_start = now;
		s->request_time = now;
		if (!c->xact_start)
			c->xact_start = now;
	}
	return e;
}

static bool fwd_synth(struct client *c, struct server *s, char type, struct iobuf *msg, usec_t now);

/*
 * SQL-level PREPARE/EXECUTE live in one server session: in transaction mode the next
 * transaction may run elsewhere. pgtally does not rewrite them; it says so, once per client.
 */
static bool fwd_warn_sql_prepare(struct client *c, struct server *s, usec_t now)
{
	char who[160];
	c->warned_sql_prepare = true;
	log_warning("%s uses SQL-level PREPARE/EXECUTE, which only works within one transaction "
		    "in transaction pooling; use protocol-level prepared statements",
		    client_describe(c, who, sizeof(who)));
	struct iobuf b = {0};
	proto_build_error(&b, true, "WARNING", "01000",
			  "pgtally: SQL-level PREPARE/EXECUTE only works within one transaction in "
			  "transaction pooling mode; use protocol-level prepared statements");
	bool ok = fwd_synth(c, s, 'N', &b, now);
	iobuf_release(&b);
	return ok;
}

static bool fwd_send_rewritten(struct client *c, struct server *s, size_t *run_start,
			       struct iobuf *b);

/*
 * Does this normalized statement leave state in the server session that transaction pooling
 * cannot carry (a session-level SET of a parameter pgtally does not track)? Names what in
 * `what`. (Cursors WITH HOLD, advisory locks, LISTEN and temporary tables keep the server:
 * fwd_note_held().)
 */
static bool session_state_leaks(const struct pool *pool, const char *q, char *what, size_t cap)
{
	if (strncmp(q, "set ", 4) != 0)
		return false;
	const char *p = q + 4;
	if (strncmp(p, "session ", 8) == 0 && strncmp(p, "session authorization", 21) != 0)
		p += 8;
	if (strncmp(p, "local ", 6) == 0 || strncmp(p, "transaction ", 12) == 0 ||
	    strncmp(p, "constraints ", 12) == 0 || strncmp(p, "time zone", 9) == 0)
		return false; /* transaction-scoped, or TimeZone, which pgtally tracks */
	size_t n = strcspn(p, " =");
	char name[64];
	if (n == 0 || n >= sizeof(name))
		return false;
	memcpy(name, p, n);
	name[n] = '\0';
	int id = param_lookup(name);
	if (id >= 0 && pool->welcome_params[id])
		return false; /* tracked: pgtally sets it again for this client */
	/* One the server does not report (search_path in PostgreSQL 15) is not followed. */
	snprintf(what, cap, "SET %s", name);
	return true;
}

/*
 * In transaction pooling the session a SET changes goes to other clients, and this
 * client's next transaction may run elsewhere. PgBouncer says nothing; pgtally says so, once.
 */
static bool fwd_warn_session_state(struct client *c, struct server *s, const char *what, usec_t now)
{
	char who[160], msg[300];
	c->warned_session_state = true;
	log_warning("%s runs %s outside a transaction: in transaction pooling it stays with the "
		    "server connection, not the client",
		    client_describe(c, who, sizeof(who)), what);
	snprintf(msg, sizeof(msg),
		 "pgtally: %s outside a transaction stays with the server connection in "
		 "transaction pooling: it is lost for this client and seen by others; use SET "
		 "LOCAL inside a transaction, or ALTER ROLE/DATABASE ... SET",
		 what);
	struct iobuf b = {0};
	proto_build_error(&b, true, "WARNING", "01000", msg);
	bool ok = fwd_synth(c, s, 'N', &b, now);
	iobuf_release(&b);
	return ok;
}

/*
 * A cursor declared WITH HOLD, a session-level advisory lock, LISTEN and a temporary table
 * outlive their transaction, in the server session, where the client's next transaction may
 * not run (Django's server-side cursors outside atomic() are such cursors). After a statement
 * that may take one, the client keeps its server until the server says none is left
 * (server.c asks at the end of each transaction that followed a statement which may have
 * taken or let go of one). set_config() is treated as a session-level SET.
 */
static void fwd_note_held(struct client *c, struct server *s, int held)
{
	if (c->pool->pool_mode == POOL_MODE_SESSION)
		return;
	if (held & (FP_HELD_SETS | FP_HELD_UNREAD))
		s->set_dirty = true; /* like a session-level SET: RESET ALL on release */
	if (held & FP_HELD_UNREAD) {
		s->held_dirty = s->held_recheck = true; /* asked at the end of the transaction */
		return;
	}
	if (held & FP_HELD_RELEASES)
		s->held_recheck = s->held_dirty;
	if (!(held & FP_HELD_TAKES))
		return;
	s->held_dirty = s->held_recheck = true;
	if (!c->pool->logged_held) {
		char who[160];
		c->pool->logged_held = true;
		log_warning("%s took session state (a cursor WITH HOLD, a session advisory lock, "
			    "LISTEN or a temporary table): it keeps its server connection until it "
			    "lets go (said once per pool; in Django, DISABLE_SERVER_SIDE_CURSORS = "
			    "True avoids the cursors)",
			    client_describe(c, who, sizeof(who)));
	}
}

/*
 * A session-level SET of a parameter pgtally does not track stays with the server: the server
 * gets RESET ALL before it serves another client (server.c), and outside a transaction the
 * client is warned, once. false when the client closed.
 */
static bool fwd_note_set(struct client *c, struct server *s, const struct fp_entry *fe,
			 usec_t now)
{
	char what[96];
	if (c->pool->pool_mode == POOL_MODE_SESSION ||
	    !session_state_leaks(c->pool, fe->query, what, sizeof(what)))
		return true;
	s->set_dirty = true;
	if (c->in_txn || c->warned_session_state)
		return true;
	return fwd_warn_session_state(c, s, what, now);
}

/*
 * What the statements of sql[0..n) may leave in the server session, from their text alone
 * (for statements with no fingerprint entry: fingerprints = 0, stats_max_fingerprints = 0):
 * fp_session_effect() bits, with FP_HELD_SETS also for a session-level SET that leaks
 * (session_state_leaks(); only texts that may hold a SET are normalized for it).
 */
static int fwd_text_effect(const struct pool *pool, const char *sql, size_t n)
{
	int held = fp_session_effect(sql, n);
	if (held & FP_HELD_MAYBE_SET) {
		char norm[128], what[96];
		struct fp_stmt st;
		size_t pos = 0;
		while (fp_next(sql, n, &pos, norm, sizeof(norm), &st))
			if (st.kind == FP_KIND_SESSION &&
			    session_state_leaks(pool, norm, what, sizeof(what))) {
				held |= FP_HELD_SETS;
				break;
			}
	}
	return held & ~FP_HELD_MAYBE_SET;
}

/*
 * Before a statement with fingerprint entry fe goes out: what it may leave in the server
 * session (fwd_note_held(), fwd_note_set()). With no entry, its text sql[0..n) tells
 * (without the warning a SET gets). false when the client closed.
 */
static bool fwd_note_session(struct client *c, struct server *s, const struct fp_entry *fe,
			     int kind, const char *sql, size_t n, usec_t now)
{
	if (!fe) {
		int held = fwd_text_effect(c->pool, sql, n);
		if (held)
			fwd_note_held(c, s, held);
		return true;
	}
	if (fe->held)
		fwd_note_held(c, s, fe->held);
	return kind != FP_KIND_SESSION || fwd_note_set(c, s, fe, now);
}

/* sqlcommenter tags of the latest statement text, kept only when there are some. */
static void fwd_clear_tags(struct client *c)
{
	if (c->tags)
		c->tags->route[0] = c->tags->controller[0] = c->tags->traceparent[0] = '\0';
}

static void fwd_note_tags(struct client *c, const char *sql, size_t len)
{
	struct fp_tags tags;
	if (!fp_parse_tags(sql, len, &tags)) {
		fwd_clear_tags(c);
		return;
	}
	if (!c->tags && !(c->tags = malloc(sizeof(*c->tags))))
		return;
	*c->tags = tags;
}

/*
 * N+1 bookkeeping before a statement is sent. Returns the action to take when this execution
 * crosses the threshold: NPLUS1_ACTION_LOG (nothing to do here), NOTICE (already queued) or
 * ERROR (the caller refuses the statement, with c->w->np_message); -1 when the client closed.
 */
static int fwd_np_before(struct client *c, struct server *s, struct fp_entry *fe, uint64_t fp,
			 uint64_t params, uint8_t kind, usec_t now)
{
	struct worker *w = c->w;
	if (!fp || w->cfg->nplus1_threshold <= 0)
		return NPLUS1_ACTION_LOG;
	if (!c->np && !(c->np = nplus1_unit_new())) {
		client_close(c, "53200", "out of memory");
		return -1;
	}
	const struct nplus1_settings *ns = &w->cfg->np;
	struct nplus1_stmt st = {
		.fp = fp,
		.params_hash = params,
		.kind = kind,
		.tags = c->tags, /* .query: only nplus1_refused() reads it */
	};
	if (!nplus1_before(c->np, w->nplus1, ns, &c->np_ctx, &st, c->in_txn, now))
		return NPLUS1_ACTION_LOG;
	if (fe)
		fe->nplus1++;
	int action = c->pool->db->cfg.nplus1_action >= 0 ? c->pool->db->cfg.nplus1_action
							 : w->cfg->nplus1_action;
	struct nplus1_signal sig;
	if (action == NPLUS1_ACTION_LOG || !nplus1_unit_signal(c->np, &sig))
		return NPLUS1_ACTION_LOG;
	nplus1_signal_message(&sig, c->w->np_message, sizeof(c->w->np_message));
	if (action == NPLUS1_ACTION_NOTICE) {
		struct iobuf b = {0};
		proto_build_error(&b, true, "WARNING", NPLUS1_SQLSTATE, c->w->np_message);
		bool ok = fwd_synth(c, s, 'N', &b, now);
		iobuf_release(&b);
		return ok ? NPLUS1_ACTION_NOTICE : -1;
	}
	/* Recorded now: the statement will not run. */
	st.query = fe ? fe->query : NULL;
	nplus1_refused(c->np, w->nplus1, ns, &c->np_ctx, &st, now);
	return NPLUS1_ACTION_ERROR;
}

/* SQL that makes the server fail with the N+1 error, so a transaction aborts as it should. */
static void build_refusal_sql(struct iobuf *b, const char *msg)
{
	pkt_put_bytes(b, "DO $pgtally$BEGIN RAISE EXCEPTION USING ERRCODE = '", 51);
	pkt_put_bytes(b, NPLUS1_SQLSTATE, strlen(NPLUS1_SQLSTATE));
	pkt_put_bytes(b, "', MESSAGE = '", 14);
	for (const char *p = msg; *p; p++) {
		if (*p == '$')
			continue; /* cannot end the dollar quote early */
		if (*p == '\'')
			pkt_put_bytes(b, "'", 1);
		pkt_put_bytes(b, p, 1);
	}
	pkt_put_bytes(b, "'; END$pgtally$", 15);
	pkt_put_u8(b, 0);
}

#define QUERY_MAX_TRACKED 64

/*
 * A simple Query: one entry per statement (fingerprinted, N+1-checked), then one for
 * ReadyForQuery. Returns FWD_CONSUMED when pgtally sent a replacement (N+1 refusal).
 */
int fwd_query(struct client *c, struct server *s, const char *sql, size_t len, bool whole,
	      size_t *run_start, usec_t now)
{
	struct worker *w = c->w;
	struct {
		uint64_t fp, params;
		struct fp_entry *fe;
		uint32_t fe_gen; /* a later statement's note may evict fe */
		uint8_t kind, flags;
	} sts[QUERY_MAX_TRACKED];
	size_t n_sts = 0;
	bool refuse = false;

	if (whole && w->cfg->fingerprints) {
		size_t pos = 0;
		struct fp_stmt st = {0}, next = {0};
		/* The text is NUL-terminated inside the message; never read past it. */
		size_t n = strnlen(sql, len);
		/*
		 * A one-statement text whose shape (the text but its literals) was seen before
		 * needs no normalizing: include/fpcache.h. Its parameter hash is the shape's, on
		 * the first execution too, so that executions compare alike. The client's last
		 * shapes are tried first, by their templates.
		 */
		struct fp_shape shape;
		bool shaped = fp_shape_hinted(w->fpcache, c->shape_hint, sql, n, &shape);
		/* sqlcommenter tags live in a comment: a text the shape saw none in has none */
		if (shaped && !fp_shape_may_have_tags(&shape, sql, n))
			fwd_clear_tags(c);
		else
			fwd_note_tags(c, sql, n);
		bool hit = shaped && fp_cache_shape_get(w->fpcache, &shape, n, &st);
		bool have = hit || fp_next(sql, n, &pos, NULL, 0, &st);
		while (n_sts < QUERY_MAX_TRACKED && have) {
			bool more = !hit && fp_next(sql, n, &pos, NULL, 0, &next);
			if (shaped && !hit && n_sts == 0 && !more) {
				st.params_hash = shape.params;
				fp_cache_shape_put(w->fpcache, &shape, sql, n, &st); /* if it fits */
			}
			if (st.kind == FP_KIND_PREPARE && !c->warned_sql_prepare &&
			    !fwd_warn_sql_prepare(c, s, now))
				return FWD_FAILED;
			uint8_t flags = 0;
			if (st.txn == FP_TXN_BEGIN)
				c->in_txn = true;
			if (c->in_txn)
				flags |= RQF_IN_TXN;
			if (st.txn == FP_TXN_COMMIT || st.txn == FP_TXN_ROLLBACK ||
			    st.txn == FP_TXN_PREPARE)
				c->in_txn = false;
			struct fp_entry *fe =
				stats_fp_note(w, c->pool, st.id, st.kind, sql, st.start, st.end);
			uint32_t fe_gen = w->fps.gen; /* fe is valid while this holds */
			if (!fwd_note_session(c, s, fe, st.kind, sql + st.start, st.end - st.start,
					      now))
				return FWD_FAILED;
			int act = fwd_np_before(c, s, fe, st.id, st.params_hash, (uint8_t)st.kind,
						now);
			if (act < 0)
				return FWD_FAILED;
			if (act == NPLUS1_ACTION_ERROR)
				refuse = true;
			sts[n_sts].fp = st.id;
			sts[n_sts].params = st.params_hash;
			sts[n_sts].fe = fe;
			sts[n_sts].fe_gen = fe_gen;
			sts[n_sts].kind = (uint8_t)st.kind;
			sts[n_sts].flags = flags;
			n_sts++;
			st = next;
			have = more;
		}
		/* Past the statements tracked one by one: the rest of the text, read as one. */
		if (have && !fwd_note_session(c, s, NULL, FP_KIND_EMPTY, sql + st.start,
					      n - st.start, now))
			return FWD_FAILED;
	} else if (whole) {
		(void)fwd_note_session(c, s, NULL, FP_KIND_EMPTY, sql, strnlen(sql, len), now);
	} else {
		fwd_note_held(c, s, FP_HELD_UNREAD); /* over FWD_INSPECT_MAX: not read */
	}
	if (refuse) {
		struct iobuf b = {0};
		size_t start = pkt_begin(&b, 'Q');
		build_refusal_sql(&b, c->w->np_message);
		pkt_end(&b, start);
		bool ok = fwd_expect(c, s, RQ_STMT, now) && fwd_expect(c, s, RQ_QEND, now) &&
			  fwd_send_rewritten(c, s, run_start, &b);
		iobuf_release(&b);
		return ok ? FWD_CONSUMED : FWD_FAILED;
	}
	for (size_t i = 0; i < n_sts; i++) {
		struct rq_entry *e = fwd_expect(c, s, RQ_STMT, now);
		if (!e)
			return FWD_FAILED;
		e->fp = sts[i].fp;
		e->params = sts[i].params;
		e->fe = sts[i].fe;
		e->fe_gen = sts[i].fe_gen;
		e->kind = sts[i].kind;
		e->flags |= sts[i].flags | RQF_COUNTED;
	}
	return fwd_expect(c, s, RQ_QEND, now) ? FWD_FORWARD : FWD_FAILED;
}

bool fwd_prepared_on(const struct client *c)
{
	return c->w->cfg->max_prepared_statements > 0;
}

/* Queue a reply pgtally makes itself, sent when the replies before it have been. */
static bool fwd_synth(struct client *c, struct server *s, char type, struct iobuf *msg, usec_t now)
{
	struct rq_entry *e = fwd_expect(c, s, RQ_SYNC, now);
	if (!e)
		return false;
	e->type = type == '1' ? RQ_PARSE : type == '3' ? RQ_CLOSE : RQ_SYNC;
	e->flags |= RQF_SYNTH;
	if (msg) {
		if (!pkt_ok(msg)) {
			rq_pop(&s->rq);
			client_close(c, "53200", "out of memory");
			return false;
		}
		e->synth = 0;
		e->data = malloc(iobuf_avail(msg));
		if (!e->data) {
			client_close(c, "53200", "out of memory");
			return false;
		}
		memcpy(e->data, msg->data + msg->rpos, iobuf_avail(msg));
		e->data_len = (uint32_t)iobuf_avail(msg);
		e->type = RQ_SYNTH;
	} else {
		e->synth = (uint8_t)type;
	}
	if (s->rq.count == 1)
		server_emit_due(s);
	return true;
}

/*
 * Fail the current extended-protocol message the way PostgreSQL would: an ErrorResponse in
 * its place, and everything up to Sync skipped.
 */
static enum fwd_action fwd_ext_error(struct client *c, struct server *s, const char *sqlstate,
				     const char *msg, usec_t now)
{
	struct iobuf b = {0};
	proto_build_error(&b, false, "ERROR", sqlstate, msg);
	bool ok = fwd_synth(c, s, 'E', &b, now);
	iobuf_release(&b);
	if (!ok)
		return FWD_FAILED;
	c->skip_to_sync = true;
	return FWD_CONSUMED;
}

/* PostgreSQL's error for a statement name the client never prepared. */
static enum fwd_action fwd_unknown_stmt(struct client *c, struct server *s, const char *name,
					usec_t now)
{
	char msg[200];
	snprintf(msg, sizeof(msg), "prepared statement \"%.100s\" does not exist", name);
	return fwd_ext_error(c, s, "26000", msg, now);
}

/* Parse of a shared statement under the name servers know it by. */
static void build_shared_parse(struct iobuf *b, const struct pstmt_shared *ps)
{
	size_t st = pkt_begin(b, 'P');
	pkt_put_str(b, ps->name);
	pkt_put_bytes(b, ps->body, ps->body_len);
	pkt_end(b, st);
}

/* Send a message pgtally built to the server, after what the client sent before it. */
static bool fwd_send_rewritten(struct client *c, struct server *s, size_t *run_start,
			       struct iobuf *b)
{
	if (!fwd_flush_run(c, run_start))
		return false;
	if (!pkt_ok(b) || !sbuf_send(&s->sb, b->data + b->rpos, iobuf_avail(b))) {
		iobuf_reset(b);
		client_close(c, "08006", "server connection lost while sending");
		server_close(s, "send to server failed");
		return false;
	}
	iobuf_reset(b);
	return true;
}

/* Make room for one more statement on the server: Close the least recently used. */
static bool fwd_make_room(struct client *c, struct server *s, size_t *run_start, usec_t now)
{
	struct iobuf b = {0};
	while (s->pstmts.count >= (size_t)c->w->cfg->max_prepared_statements) {
		uint32_t old = server_pstmts_oldest(&s->pstmts);
		char name[24];
		snprintf(name, sizeof(name), "PGT_%u", old);
		size_t st = pkt_begin(&b, 'C');
		pkt_put_u8(&b, 'S');
		pkt_put_str(&b, name);
		pkt_end(&b, st);
		struct rq_entry *e = fwd_expect(c, s, RQ_CLOSE, now);
		if (!e) {
			iobuf_release(&b);
			return false;
		}
		e->flags |= RQF_SWALLOW;
		server_pstmts_del(&s->pstmts, old);
		if (!fwd_send_rewritten(c, s, run_start, &b)) {
			iobuf_release(&b);
			return false;
		}
	}
	iobuf_release(&b);
	return true;
}

/* Make sure the server holds ps: Parse it there first, hiding the ParseComplete. */
static bool fwd_ensure_pstmt(struct client *c, struct server *s, struct pstmt_shared *ps,
			     size_t *run_start, usec_t now)
{
	if (server_pstmts_has(&s->pstmts, ps->id, true))
		return true;
	if (!fwd_make_room(c, s, run_start, now))
		return false;
	struct iobuf b = {0};
	build_shared_parse(&b, ps);
	struct rq_entry *e = fwd_expect(c, s, RQ_PARSE, now);
	bool ok = e != NULL;
	if (ok) {
		e->flags |= RQF_SWALLOW;
		e->pstmt = ps->id;
		ok = server_pstmts_add(&s->pstmts, ps->id);
		if (!ok)
			client_close(c, "53200", "out of memory");
	}
	if (ok) {
		c->pool->stats.server_parse_count++;
		ok = fwd_send_rewritten(c, s, run_start, &b);
	}
	iobuf_release(&b);
	return ok;
}

/*
 * Fingerprint a Parse text for the statistics. Extended-protocol clients send the same text
 * for every execution: it is normalized once per worker and then found in the cache.
 */
static void fwd_fingerprint(struct client *c, const char *sql, struct stmt_info *info)
{
	size_t pos = 0, n = strlen(sql);
	if (!c->w->cfg->fingerprints) {
		info->held = (uint8_t)fwd_text_effect(c->pool, sql, n);
		return;
	}
	struct fp_stmt st;
	bool ok = fp_cache_get(c->w->fpcache, sql, n, &st);
	if (!ok && (ok = fp_next(sql, n, &pos, NULL, 0, &st)))
		fp_cache_put(c->w->fpcache, sql, n, &st);
	if (ok) {
		info->fp = st.id;
		info->kind = (uint8_t)st.kind;
		info->valid = true;
		struct fp_entry *fe =
			stats_fp_note(c->w, c->pool, st.id, st.kind, sql, st.start, st.end);
		/* Kept with the statement: its entry may be gone by the time it runs. */
		char what[96];
		if (!fe)
			info->held = (uint8_t)fwd_text_effect(c->pool, sql, n);
		else if (st.kind == FP_KIND_SESSION &&
			 session_state_leaks(c->pool, fe->query, what, sizeof(what)))
			info->held = fe->held | FP_HELD_SETS; /* a SET that stays with the server */
		else
			info->held = fe->held;
	}
}

/* Parse: remember what the statement is; named ones go to the server under pgtally's name. */
enum fwd_action fwd_parse(struct client *c, struct server *s, const uint8_t *body, size_t len,
			  bool whole, size_t *run_start, usec_t now)
{
	c->pool->stats.client_parse_count++;
	if (!whole && body[0] != '\0' && fwd_prepared_on(c)) {
		/* Named, and too large to hold: pgtally could not tell its text from another's. */
		char msg[200];
		snprintf(msg, sizeof(msg),
			 "pgtally does not prepare a statement whose Parse message is over %d bytes "
			 "(this one has %zu); send it unnamed",
			 FWD_INSPECT_MAX, len + 5);
		return fwd_ext_error(c, s, "54000", msg, now);
	}
	struct proto_reader r;
	proto_reader_init(&r, body, whole ? len : 0);
	const char *name = whole ? proto_get_str(&r) : NULL;
	const char *sql = name ? proto_get_str(&r) : NULL;
	struct stmt_info info = {0};
	if (sql) {
		fwd_fingerprint(c, sql, &info);
		if (c->w->cfg->fingerprints)
			fwd_note_tags(c, sql, strlen(sql));
	}
	if (!name || !*name || !fwd_prepared_on(c)) {
		/* Unnamed (or the feature is off): forwarded as it is. */
		if (name && !*name)
			c->unnamed_stmt = info;
		else if (!whole && body[0] == '\0') /* too large to read: may hold anything */
			c->unnamed_stmt = (struct stmt_info){.held = FP_HELD_UNREAD};
		else if (!whole)
			fwd_note_held(c, s, FP_HELD_UNREAD);
		else if (info.held) /* named, not kept (max_prepared_statements = 0): now */
			fwd_note_held(c, s, info.held);
		c->pool->stats.server_parse_count++;
		return fwd_expect(c, s, RQ_PARSE, now) ? FWD_FORWARD : FWD_FAILED;
	}
	if (!sql) {
		return fwd_ext_error(c, s, "08P01", "malformed Parse message", now);
	}
	if (pstmt_map_count(c->pstmts) >= CLIENT_MAX_PREPARED) {
		char msg[200];
		snprintf(msg, sizeof(msg),
			 "too many prepared statements for one connection (at most %d); "
			 "close or deallocate some",
			 CLIENT_MAX_PREPARED);
		return fwd_ext_error(c, s, "53400", msg, now);
	}
	if (pstmt_find(c->pstmts, name)) {
		char msg[200];
		snprintf(msg, sizeof(msg), "prepared statement \"%.100s\" already exists", name);
		return fwd_ext_error(c, s, "42P05", msg, now);
	}
	if (!c->pstmts && !(c->pstmts = pstmt_map_new())) {
		client_close(c, "53200", "out of memory");
		return FWD_FAILED;
	}
	const uint8_t *rest = (const uint8_t *)sql;
	info.shared = pstmt_shared_get(&c->w->pstmts, rest, (size_t)(body + len - rest));
	if (!info.shared || !pstmt_define(c->pstmts, name, &info)) {
		pstmt_shared_put(&c->w->pstmts, info.shared);
		client_close(c, "53200", "out of memory");
		return FWD_FAILED;
	}
	struct pstmt_shared *ps = info.shared;
	char *copy = strdup(name);
	if (!copy) {
		client_close(c, "53200", "out of memory");
		return FWD_FAILED;
	}
	if (server_pstmts_has(&s->pstmts, ps->id, true)) {
		/* The server has it already: answer ParseComplete ourselves, in order. */
		if (!fwd_synth(c, s, '1', NULL, now)) {
			free(copy);
			return FWD_FAILED;
		}
		/* If it is still queued, remember the name so a skip can undo it. */
		if (s->rq.count && (rq_at(&s->rq, s->rq.count - 1)->flags & RQF_SYNTH)) {
			struct rq_entry *e = rq_at(&s->rq, s->rq.count - 1);
			e->pstmt = ps->id;
			e->data = copy;
		} else {
			free(copy);
		}
		return FWD_CONSUMED;
	}
	if (!fwd_make_room(c, s, run_start, now)) {
		free(copy);
		return FWD_FAILED;
	}
	struct iobuf b = {0};
	build_shared_parse(&b, ps);
	struct rq_entry *e = fwd_expect(c, s, RQ_PARSE, now);
	if (!e || !server_pstmts_add(&s->pstmts, ps->id)) {
		free(copy);
		iobuf_release(&b);
		if (e)
			client_close(c, "53200", "out of memory");
		return FWD_FAILED;
	}
	e->pstmt = ps->id;
	e->data = copy;
	c->pool->stats.server_parse_count++;
	bool ok = fwd_send_rewritten(c, s, run_start, &b);
	iobuf_release(&b);
	return ok ? FWD_CONSUMED : FWD_FAILED;
}

/* Send the Bind in b (freed) of shared statement ps, expecting its BindComplete. */
static bool fwd_send_bind(struct client *c, struct server *s, const struct pstmt_shared *ps,
			  struct iobuf *b, size_t *run_start, usec_t now)
{
	struct rq_entry *e = fwd_expect(c, s, RQ_BIND, now);
	if (e)
		e->pstmt = ps->id;
	bool ok = e && fwd_send_rewritten(c, s, run_start, b);
	iobuf_release(b);
	return ok;
}

/* Bind: the portal runs a known statement with these parameter values. */
enum fwd_action fwd_bind(struct client *c, struct server *s, const uint8_t *body, size_t len,
			 size_t *run_start, usec_t now)
{
	struct proto_reader r;
	proto_reader_init(&r, body, len);
	const char *portal = proto_get_str(&r);
	const char *stmt = portal ? proto_get_str(&r) : NULL;
	const uint8_t *rest = r.p;
	struct portal_info pi = {0};
	const struct stmt_info *si = NULL;
	if (stmt)
		si = *stmt ? pstmt_find(c->pstmts, stmt) : &c->unnamed_stmt;
	if (si && si->held)
		fwd_note_held(c, s, si->held); /* a named portal's too */
	if (si && si->valid) {
		pi.fp = si->fp;
		pi.kind = si->kind;
		/* Parameter values: everything after the format codes, hashed as one. */
		uint16_t nfmt = proto_get_u16(&r);
		proto_get_bytes(&r, (size_t)nfmt * 2);
		if (!r.bad)
			pi.params = fp_hash(r.p, (size_t)(r.end - r.p));
	}
	/* Only the unnamed portal is tracked (what drivers use outside of cursors). */
	c->unnamed_portal = portal && !*portal ? pi : (struct portal_info){0};

	if (!stmt || !*stmt || !fwd_prepared_on(c))
		return fwd_expect(c, s, RQ_BIND, now) ? FWD_FORWARD : FWD_FAILED;
	if (!si || !si->shared)
		return fwd_unknown_stmt(c, s, stmt, now);
	struct pstmt_shared *ps = si->shared;
	if (!fwd_ensure_pstmt(c, s, ps, run_start, now))
		return FWD_FAILED;
	struct iobuf b = {0};
	size_t st = pkt_begin(&b, 'B');
	pkt_put_str(&b, portal);
	pkt_put_str(&b, ps->name);
	pkt_put_bytes(&b, rest, (size_t)(body + len - rest));
	pkt_end(&b, st);
	return fwd_send_bind(c, s, ps, &b, run_start, now) ? FWD_CONSUMED : FWD_FAILED;
}

bool fwd_names_here(uint8_t type, const uint8_t *body, size_t have)
{
	if (type == 'P')
		return have >= 1; /* named or not is all it takes */
	const uint8_t *end = memchr(body, 0, have);
	return end && memchr(end + 1, 0, have - (size_t)(end + 1 - body));
}

enum fwd_action fwd_bind_streamed(struct client *c, struct server *s, const uint8_t *body,
				  size_t have, size_t len, size_t *prefix, size_t *run_start,
				  usec_t now)
{
	c->unnamed_portal = (struct portal_info){0};
	if (have > len)
		have = len;
	const uint8_t *end0 = memchr(body, 0, have);
	const uint8_t *end1 = end0 ? memchr(end0 + 1, 0, have - (size_t)(end0 + 1 - body)) : NULL;
	if (!end1)
		return fwd_ext_error(c, s, "08P01", "malformed Bind message", now);
	const char *portal = (const char *)body;
	const char *stmt = (const char *)end0 + 1;
	if (!*stmt || !fwd_prepared_on(c))
		return fwd_expect(c, s, RQ_BIND, now) ? FWD_FORWARD : FWD_FAILED;
	const struct stmt_info *si = pstmt_find(c->pstmts, stmt);
	if (!si || !si->shared)
		return fwd_unknown_stmt(c, s, stmt, now);
	if (si->held)
		fwd_note_held(c, s, si->held);
	if (!*portal && si->valid) {
		/* Statistics and N+1 detection see it; its parameter values pass unhashed. */
		c->unnamed_portal.fp = si->fp;
		c->unnamed_portal.kind = si->kind;
	}
	struct pstmt_shared *ps = si->shared;
	if (!fwd_ensure_pstmt(c, s, ps, run_start, now))
		return FWD_FAILED;
	size_t names = (size_t)(end1 + 1 - body);
	/* The length is the whole rewritten message's, most of which streams after this. */
	struct iobuf b = {0};
	pkt_put_u8(&b, 'B');
	pkt_put_u32(&b, (uint32_t)(4 + len - names + strlen(portal) + 1 + strlen(ps->name) + 1));
	pkt_put_str(&b, portal);
	pkt_put_str(&b, ps->name);
	*prefix = names;
	return fwd_send_bind(c, s, ps, &b, run_start, now) ? FWD_PREFIX : FWD_FAILED;
}

/* Describe: statements by name need pgtally's name on the server. */
enum fwd_action fwd_describe(struct client *c, struct server *s, const uint8_t *body, size_t len,
			     bool whole, size_t *run_start, usec_t now)
{
	if (!whole || len < 2 || body[0] != 'S' || body[1] == '\0' || !fwd_prepared_on(c))
		return fwd_expect(c, s, RQ_DESCRIBE, now) ? FWD_FORWARD : FWD_FAILED;
	struct proto_reader r;
	proto_reader_init(&r, body + 1, len - 1);
	const char *name = proto_get_str(&r);
	if (!name)
		return fwd_expect(c, s, RQ_DESCRIBE, now) ? FWD_FORWARD : FWD_FAILED;
	const struct stmt_info *si = pstmt_find(c->pstmts, name);
	if (!si || !si->shared)
		return fwd_unknown_stmt(c, s, name, now);
	struct pstmt_shared *ps = si->shared;
	if (!fwd_ensure_pstmt(c, s, ps, run_start, now))
		return FWD_FAILED;
	struct iobuf b = {0};
	size_t st = pkt_begin(&b, 'D');
	pkt_put_u8(&b, 'S');
	pkt_put_str(&b, ps->name);
	pkt_end(&b, st);
	bool ok = fwd_expect(c, s, RQ_DESCRIBE, now) && fwd_send_rewritten(c, s, run_start, &b);
	iobuf_release(&b);
	return ok ? FWD_CONSUMED : FWD_FAILED;
}

/* Close of a named statement: forget the name, answer CloseComplete ourselves. */
enum fwd_action fwd_close(struct client *c, struct server *s, const uint8_t *body, size_t len,
			  bool whole, usec_t now)
{
	if (!whole || len < 2 || body[0] != 'S' || body[1] == '\0' || !fwd_prepared_on(c))
		return fwd_expect(c, s, RQ_CLOSE, now) ? FWD_FORWARD : FWD_FAILED;
	struct proto_reader r;
	proto_reader_init(&r, body + 1, len - 1);
	const char *name = proto_get_str(&r);
	if (!name)
		return fwd_expect(c, s, RQ_CLOSE, now) ? FWD_FORWARD : FWD_FAILED;
	/* Closing an unknown name is not an error in PostgreSQL either. */
	pstmt_forget(c->pstmts, &c->w->pstmts, name);
	return fwd_synth(c, s, '3', NULL, now) ? FWD_CONSUMED : FWD_FAILED;
}

/* Execute: runs the unnamed portal's statement, unless N+1 detection refuses it. */
enum fwd_action fwd_execute(struct client *c, struct server *s, const uint8_t *body, size_t len,
			    size_t *run_start, usec_t now)
{
	/* Only the unnamed portal is tracked (what drivers use outside of cursors). */
	bool tracked = len >= 1 && body[0] == '\0' && c->unnamed_portal.fp;
	struct fp_entry *fe = NULL;
	uint32_t fe_gen = c->w->fps.gen;
	if (tracked) {
		fe = stats_fp_find(&c->w->fps, c->pool, c->unnamed_portal.fp);
		/* What it may hold was noted at Bind; a SET is warned of here. */
		if (fe && fe->kind == FP_KIND_SESSION && !fwd_note_set(c, s, fe, now))
			return FWD_FAILED;
		int act = fwd_np_before(c, s, fe, c->unnamed_portal.fp, c->unnamed_portal.params,
					c->unnamed_portal.kind, now);
		if (act < 0)
			return FWD_FAILED;
		if (act == NPLUS1_ACTION_ERROR) {
			/* Run a statement that fails in its place; hide its Parse/Bind replies. */
			struct iobuf b = {0};
			size_t st = pkt_begin(&b, 'P');
			pkt_put_str(&b, "");
			build_refusal_sql(&b, c->w->np_message);
			pkt_put_u16(&b, 0);
			pkt_end(&b, st);
			st = pkt_begin(&b, 'B');
			pkt_put_bytes(&b, "\0\0\0\0\0\0\0\0",
				      8); /* portal, stmt, 0 fmts, 0 params, 0 */
			pkt_end(&b, st);
			st = pkt_begin(&b, 'E');
			pkt_put_str(&b, "");
			pkt_put_u32(&b, 0);
			pkt_end(&b, st);
			struct rq_entry *p = fwd_expect(c, s, RQ_PARSE, now);
			struct rq_entry *bi = p ? fwd_expect(c, s, RQ_BIND, now) : NULL;
			bool ok = bi && fwd_expect(c, s, RQ_EXECUTE, now);
			if (ok) {
				p->flags |= RQF_SWALLOW;
				bi->flags |= RQF_SWALLOW;
				c->unnamed_stmt = (struct stmt_info){0};
				ok = fwd_send_rewritten(c, s, run_start, &b);
			}
			iobuf_release(&b);
			return ok ? FWD_CONSUMED : FWD_FAILED;
		}
	}
	struct rq_entry *e = fwd_expect(c, s, RQ_EXECUTE, now);
	if (!e)
		return FWD_FAILED;
	if (tracked) {
		e->fp = c->unnamed_portal.fp;
		e->params = c->unnamed_portal.params;
		e->fe = fe;
		e->fe_gen = fe_gen;
		e->kind = c->unnamed_portal.kind;
		e->flags |= RQF_COUNTED;
		if (c->in_txn)
			e->flags |= RQF_IN_TXN;
	}
	return FWD_FORWARD;
}

/* Skip spaces and match a keyword (case-insensitive) followed by a non-identifier byte. */
static bool eat_word(const char **p, const char *end, const char *word)
{
	const char *q = *p;
	while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
		q++;
	size_t n = strlen(word);
	if ((size_t)(end - q) < n || strncasecmp(q, word, n) != 0)
		return false;
	if (q + n < end && (isalnum((unsigned char)q[n]) || q[n] == '_'))
		return false;
	*p = q + n;
	return true;
}

enum sql_local { SQL_NONE, SQL_DEALLOCATE, SQL_DEALLOCATE_ALL, SQL_DISCARD_ALL };

/*
 * Is this Query exactly one DEALLOCATE [PREPARE] name|ALL or DISCARD ALL? Those act on the
 * client's names, which servers do not know, so pgtally answers them itself.
 */
static enum sql_local sql_local_command(const char *sql, size_t len, char *name, size_t namecap)
{
	/* Cheap refusal first: nearly every Query starts with some other letter. */
	size_t i = 0;
	while (i < len && (sql[i] == ' ' || sql[i] == '\t' || sql[i] == '\n' || sql[i] == '\r'))
		i++;
	if (i == len || (sql[i] | 0x20) != 'd')
		return SQL_NONE;
	const char *p = sql, *end = sql + strnlen(sql, len);
	enum sql_local what;
	if (eat_word(&p, end, "DISCARD")) {
		if (!eat_word(&p, end, "ALL"))
			return SQL_NONE;
		what = SQL_DISCARD_ALL;
	} else if (eat_word(&p, end, "DEALLOCATE")) {
		(void)eat_word(&p, end, "PREPARE");
		if (eat_word(&p, end, "ALL")) {
			what = SQL_DEALLOCATE_ALL;
		} else {
			while (p < end && isspace((unsigned char)*p))
				p++;
			size_t n = 0;
			if (p < end && *p == '"') {
				for (p++; p < end && *p != '"' && n + 1 < namecap; p++)
					name[n++] = *p;
				if (p >= end || *p != '"')
					return SQL_NONE;
				p++;
			} else {
				for (; p < end &&
				       (isalnum((unsigned char)*p) || *p == '_' || *p == '$') &&
				       n + 1 < namecap;
				     p++)
					name[n++] = (char)tolower((unsigned char)*p);
			}
			name[n] = '\0';
			if (n == 0)
				return SQL_NONE;
			what = SQL_DEALLOCATE;
		}
	} else {
		return SQL_NONE;
	}
	while (p < end && (isspace((unsigned char)*p) || *p == ';'))
		p++;
	return p == end ? what : SQL_NONE;
}

void fwd_client_discarded(struct client *c, bool discard_all)
{
	pstmt_forget_all(c->pstmts, &c->w->pstmts);
	if (!discard_all)
		return;
	/* Back to the server defaults: the next link SETs them. */
	for (int i = 0; i < PARAM_COUNT; i++) {
		client_param_set(c, i, NULL);
		c->params[i] = c->pool->welcome_params[i];
	}
	client_sync_np_ctx(c);
}

/*
 * Answer a DEALLOCATE / DISCARD ALL. Returns false when it must go to the server after all
 * (DISCARD ALL inside a transaction block fails there, as it should).
 */
bool fwd_local_command(struct client *c, const char *sql, size_t len, usec_t now)
{
	char name[128];
	enum sql_local what = sql_local_command(sql, len, name, sizeof(name));
	if (what == SQL_NONE)
		return false;
	if (what == SQL_DISCARD_ALL && c->server && c->in_txn)
		return false;
	struct worker *w = c->w;
	if (what == SQL_DEALLOCATE) {
		/* psycopg sends the name unquoted; try it as sent too. */
		if (!pstmt_forget(c->pstmts, &w->pstmts, name)) {
			size_t n = strnlen(sql, len);
			const char *p = sql;
			(void)eat_word(&p, sql + n, "DEALLOCATE");
			(void)eat_word(&p, sql + n, "PREPARE");
			while (*p == ' ')
				p++;
			char raw[128];
			size_t k = 0;
			while (p < sql + n && !isspace((unsigned char)*p) && *p != ';' &&
			       k + 1 < sizeof(raw))
				raw[k++] = *p++;
			raw[k] = '\0';
			/* Not a protocol-level statement: an SQL-level PREPARE, which lives in
			 * the server session (or nowhere); the server answers. */
			if (!pstmt_forget(c->pstmts, &w->pstmts, raw))
				return false;
		}
	} else if (what == SQL_DEALLOCATE_ALL && c->server && c->in_txn) {
		/* This transaction's SQL-level PREPAREs are on the server: it deallocates them
		 * (and pgtally's statements there, which it then forgets, see server.c). */
		fwd_client_discarded(c, false);
		return false;
	} else {
		fwd_client_discarded(c, what == SQL_DISCARD_ALL);
	}
	struct iobuf b = {0};
	proto_build_command_complete(&b, what == SQL_DISCARD_ALL ? "DISCARD ALL" : "DEALLOCATE");
	proto_build_ready(&b, c->server ? c->server->txn_status : 'I');
	if (c->server)
		(void)fwd_synth(c, c->server, 'E', &b, now);
	else
		(void)client_send(c, &b);
	iobuf_release(&b);
	return true;
}

void fwd_statement_done(struct client *c, const struct rq_entry *e, const char *query,
			uint64_t rows, usec_t duration, bool failed, usec_t now)
{
	struct worker *w = c->w;
	struct nplus1_stmt st = {
		.fp = e->fp,
		.params_hash = e->params,
		.kind = e->kind,
		.query = query,
		.tags = NULL,
	};
	nplus1_done(c->np, w->nplus1, &w->cfg->np, &c->np_ctx, &st, rows, duration, failed, now);
}
