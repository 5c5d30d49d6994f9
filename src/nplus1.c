/* nplus1: per-client units of work, N+1 / duplicate / write-loop bursts, the findings table. */
#include "nplus1.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "objcache.h"

/* Below this many distinct fingerprints a linear scan beats hashing (most requests). */
#define NP_LINEAR_MAX 8

/* Texts of the most recent distinct statements, kept to name a finding's source query. */
#define NP_TEXT_SLOTS 4

/* Caps on the escaped values of a log line, so that it fits log.c's 2 KB message. */
#define NP_LOG_SHORT 160
#define NP_LOG_ROUTE 260
#define NP_LOG_QUERY 700

/* ---------------------------------------------------------------- per-client unit of work */

struct np_entry {
	uint64_t fp;
	uint64_t params; /* parameter hash of the first execution */
	uint64_t src_fp; /* last statement completed before the first execution */
	uint64_t src_rows;
	usec_t time;       /* summed duration of the completed executions */
	uint32_t calls;    /* completed executions (failed ones excluded) */
	uint32_t inflight; /* sent, not yet completed */
	uint8_t fkind;     /* enum fp_kind */
	uint8_t kind;      /* enum nplus1_kind, once frozen */
	unsigned same : 1; /* every execution so far had the same parameters */
	unsigned has_src : 1;
	unsigned frozen : 1;    /* kind decided (at the signal or when flagged) */
	unsigned signalled : 1; /* nplus1_before() returned true for it */
	unsigned sig_open : 1;  /* ... and that execution has not completed yet */
	unsigned flagged : 1;   /* recorded in the table for this unit */
	/* The table row and counter a flagged entry feeds, valid while the table's epoch is. */
	struct np_row *row;
	struct np_counter *ctr;
	uint64_t epoch;
};

struct np_text {
	uint64_t fp;
	char *text; /* NULL when the slot is unused */
	size_t cap;
	uint32_t tick; /* for least-recently-used replacement */
};

/*
 * What every statement reads comes first, in as few cache lines as fit it (the unit is
 * allocated on a line boundary): after a system call most of them have left the CPU's
 * first-level cache, and each further line costs a miss.
 */
struct nplus1_unit {
	/* line 0 */
	alignas(CACHE_LINE) struct np_entry *entries; /* &one or malloc'd */
	uint16_t *index;          /* open addressing: entry index + 1; NULL while linear */
	uint32_t n, cap, mask;
	uint32_t statements; /* counted statements in the unit */
	uint32_t tick;
	bool idle; /* idle outside a transaction since the last statement */
	bool has_trace;
	bool has_last; /* the last completed counted statement */
	bool has_signal;
	usec_t idle_since;
	uint64_t route_key; /* hash of (route, controller), 0 when untagged */
	uint64_t last_fp;
	/* lines 1 and 2 */
	struct np_entry one; /* storage while a single fingerprint has run */
	uint64_t last_rows;
	struct np_text texts[NP_TEXT_SLOTS];
	/* the rest: read when a unit starts or ends, or a finding is made */
	char trace[33];
	char route[sizeof(((struct fp_tags *)0)->route)];
	struct nplus1_signal signal;
};

/* ---------------------------------------------------------------- findings table */

/* Intrusive node of a hash map whose entries also form a most-recently-used list. */
struct lru_node {
	struct lru_node *prev, *next; /* circular, around the map's head; head.next = newest */
	struct lru_node *hnext;       /* bucket chain */
	uint64_t hash;
};

struct lru_map {
	struct lru_node head;
	struct lru_node **buckets;
	size_t nbuckets; /* a power of two, or 0 */
	size_t count;
};

struct np_row {
	struct lru_node node; /* first: a node pointer is a row pointer */
	char *database, *user, *application_name, *route, *query, *source_query;
	enum nplus1_kind kind;
	uint64_t fp, source_fp, source_rows;
	uint64_t bursts, last_calls, max_calls, total_calls, total_time;
	usec_t first_seen, last_seen;
	bool logged_once;
	usec_t last_logged;
	uint64_t unlogged; /* bursts since the last log line */
};

struct np_counter {
	struct lru_node node;
	char *database, *route;
	enum nplus1_kind kind;
	uint64_t count;
	uint64_t statements;
};

struct nplus1_table {
	struct lru_map rows;
	struct lru_map counters;
	uint64_t epoch; /* moves on whenever a row or counter is freed: cached pointers die */
	uint64_t dropped;
	uint64_t logged;
};

/* ---------------------------------------------------------------- small helpers */

static const char *nz(const char *s)
{
	return s ? s : "";
}

/* Length of s cut to max bytes without splitting a UTF-8 sequence. */
static size_t clip_len(const char *s, size_t max)
{
	size_t n = max == SIZE_MAX ? strlen(s) : strnlen(s, max + 1);

	if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	return n;
}

static char *dup_clip(const char *s, size_t max)
{
	size_t n = clip_len(nz(s), max);
	char *d = malloc(n + 1);

	if (d) {
		memcpy(d, nz(s), n);
		d[n] = '\0';
	}
	return d;
}

static size_t query_cap(const struct nplus1_settings *s)
{
	return s->track_query_len > 0 ? (size_t)s->track_query_len : 0;
}

static bool counted_kind(enum fp_kind k)
{
	switch (k) {
	case FP_KIND_SELECT:
	case FP_KIND_INSERT:
	case FP_KIND_UPDATE:
	case FP_KIND_DELETE:
	case FP_KIND_MERGE:
	case FP_KIND_OTHER:
		return true;
	default:
		return false;
	}
}

static enum nplus1_kind kind_of(const struct np_entry *e)
{
	if (e->same)
		return NPLUS1_KIND_DUPLICATE;
	switch ((enum fp_kind)e->fkind) {
	case FP_KIND_INSERT:
	case FP_KIND_UPDATE:
	case FP_KIND_DELETE:
	case FP_KIND_MERGE: /* a per-row MERGE is as much a bulk candidate as an INSERT */
		return NPLUS1_KIND_WRITE_LOOP;
	default:
		return NPLUS1_KIND_NPLUS1;
	}
}

static int threshold_of(const struct nplus1_settings *s)
{
	return s->threshold < 2 ? 2 : s->threshold;
}

const char *nplus1_kind_name(enum nplus1_kind kind)
{
	switch (kind) {
	case NPLUS1_KIND_NPLUS1:
		return "n+1";
	case NPLUS1_KIND_DUPLICATE:
		return "duplicate";
	case NPLUS1_KIND_WRITE_LOOP:
		return "write-loop";
	}
	return "?";
}

const char *nplus1_kind_hint(enum nplus1_kind kind)
{
	switch (kind) {
	case NPLUS1_KIND_NPLUS1:
		return "fetch the related rows with the first query: select_related() or "
		       "prefetch_related() in Django";
	case NPLUS1_KIND_DUPLICATE:
		return "the same query ran with the same parameters: reuse or cache its result";
	case NPLUS1_KIND_WRITE_LOOP:
		return "one write per row: use bulk_create(), bulk_update() or one "
		       "QuerySet.update()/delete()";
	}
	return "";
}

/* ---------------------------------------------------------------- lru_map */

static void lru_init(struct lru_map *m)
{
	memset(m, 0, sizeof(*m));
	m->head.prev = m->head.next = &m->head;
}

static struct lru_node *lru_bucket(const struct lru_map *m, uint64_t hash)
{
	return m->nbuckets ? m->buckets[hash & (m->nbuckets - 1)] : NULL;
}

static void lru_touch(struct lru_map *m, struct lru_node *n)
{
	if (m->head.next == n)
		return; /* newest already: a burst touches its row once per statement */
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = m->head.next;
	n->prev = &m->head;
	m->head.next->prev = n;
	m->head.next = n;
}

/* Links n (hash set) as the newest entry; false when the bucket array cannot grow. */
static bool lru_insert(struct lru_map *m, struct lru_node *n)
{
	if (m->count >= m->nbuckets) {
		size_t nb = m->nbuckets ? m->nbuckets * 2 : 16;
		struct lru_node **b = calloc(nb, sizeof(*b));

		if (!b)
			return false;
		for (size_t i = 0; i < m->nbuckets; i++) {
			struct lru_node *x = m->buckets[i], *next;

			for (; x; x = next) {
				next = x->hnext;
				x->hnext = b[x->hash & (nb - 1)];
				b[x->hash & (nb - 1)] = x;
			}
		}
		free(m->buckets);
		m->buckets = b;
		m->nbuckets = nb;
	}
	n->hnext = m->buckets[n->hash & (m->nbuckets - 1)];
	m->buckets[n->hash & (m->nbuckets - 1)] = n;
	n->next = m->head.next;
	n->prev = &m->head;
	m->head.next->prev = n;
	m->head.next = n;
	m->count++;
	return true;
}

static void lru_unlink(struct lru_map *m, struct lru_node *n)
{
	struct lru_node **pp = &m->buckets[n->hash & (m->nbuckets - 1)];

	while (*pp != n)
		pp = &(*pp)->hnext;
	*pp = n->hnext;
	n->prev->next = n->next;
	n->next->prev = n->prev;
	m->count--;
}

static struct lru_node *lru_oldest(const struct lru_map *m)
{
	return m->count ? m->head.prev : NULL;
}

/* ---------------------------------------------------------------- rows and counters */

static uint64_t str_hash(const char *s)
{
	return fp_hash(s, strlen(s));
}

static uint64_t row_hash(const char *db, const char *user, const char *route, enum nplus1_kind kind,
			 uint64_t fp)
{
	uint64_t h = fp_mix(fp_mix(str_hash(db), str_hash(user)), str_hash(route));

	return fp_mix(fp_mix(h, (uint64_t)kind), fp);
}

static void row_free(struct np_row *r)
{
	free(r->database);
	free(r->user);
	free(r->application_name);
	free(r->route);
	free(r->query);
	free(r->source_query);
	free(r);
}

static void counter_free(struct np_counter *c)
{
	free(c->database);
	free(c->route);
	free(c);
}

static struct np_row *row_find(const struct nplus1_table *t, const char *db, const char *user,
			       const char *route, enum nplus1_kind kind, uint64_t fp)
{
	uint64_t h = row_hash(db, user, route, kind, fp);

	for (struct lru_node *n = lru_bucket(&t->rows, h); n; n = n->hnext) {
		struct np_row *r = (struct np_row *)n;

		if (n->hash == h && r->fp == fp && r->kind == kind && !strcmp(r->database, db) &&
		    !strcmp(r->user, user) && !strcmp(r->route, route))
			return r;
	}
	return NULL;
}

/* Evicts the least recently seen rows until one more fits under max; false when max is 0. */
static bool row_make_room(struct nplus1_table *t, int max)
{
	if (max <= 0)
		return false;
	while (t->rows.count >= (size_t)max) {
		struct np_row *old = (struct np_row *)lru_oldest(&t->rows);

		lru_unlink(&t->rows, &old->node);
		row_free(old);
		t->dropped++;
		t->epoch++;
	}
	return true;
}

static struct np_row *row_new(struct nplus1_table *t, const struct nplus1_settings *s,
			      const char *db, const char *user, const char *route,
			      enum nplus1_kind kind, uint64_t fp, usec_t now)
{
	struct np_row *r;

	if (!row_make_room(t, s->max_findings))
		return NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->database = strdup(db);
	r->user = strdup(user);
	r->route = strdup(route);
	r->application_name = strdup("");
	r->query = strdup("");
	r->source_query = strdup("");
	if (!r->database || !r->user || !r->route || !r->application_name || !r->query ||
	    !r->source_query)
		goto fail;
	r->kind = kind;
	r->fp = fp;
	r->first_seen = now;
	r->node.hash = row_hash(db, user, route, kind, fp);
	if (!lru_insert(&t->rows, &r->node))
		goto fail;
	return r;
fail:
	row_free(r);
	return NULL;
}

/* Replaces *dst by a copy of src when they differ; keeps the old text when out of memory. */
static void set_str(char **dst, const char *src, size_t max)
{
	size_t n = clip_len(nz(src), max);
	char *d;

	if (strlen(*dst) == n && !memcmp(*dst, nz(src), n))
		return;
	d = dup_clip(src, max);
	if (d) {
		free(*dst);
		*dst = d;
	}
}

/*
 * Adds bursts and statements to the (kind, database, route) counter, creating it if need be.
 * Returns it, or NULL when there is none.
 */
static struct np_counter *counter_bump(struct nplus1_table *t, const struct nplus1_settings *s,
				       const char *db, const char *route, enum nplus1_kind kind,
				       uint64_t bursts, uint64_t statements)
{
	uint64_t h = fp_mix(fp_mix(str_hash(db), str_hash(route)), (uint64_t)kind);
	struct np_counter *c;

	for (struct lru_node *n = lru_bucket(&t->counters, h); n; n = n->hnext) {
		c = (struct np_counter *)n;
		if (n->hash == h && c->kind == kind && !strcmp(c->database, db) &&
		    !strcmp(c->route, route)) {
			c->count += bursts;
			c->statements += statements;
			lru_touch(&t->counters, n);
			return c;
		}
	}
	/* Bounded like the rows: a client can make up any number of routes. */
	if (s->max_findings <= 0 || bursts == 0)
		return NULL;
	while (t->counters.count >= (size_t)s->max_findings) {
		struct np_counter *old = (struct np_counter *)lru_oldest(&t->counters);

		lru_unlink(&t->counters, &old->node);
		counter_free(old);
		t->epoch++;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->database = strdup(db);
	c->route = strdup(route);
	c->kind = kind;
	c->count = bursts;
	c->statements = statements;
	c->node.hash = h;
	if (!c->database || !c->route || !lru_insert(&t->counters, &c->node)) {
		counter_free(c);
		return NULL;
	}
	return c;
}

struct nplus1_table *nplus1_table_new(void)
{
	struct nplus1_table *t = calloc(1, sizeof(*t));

	if (t) {
		lru_init(&t->rows);
		lru_init(&t->counters);
	}
	return t;
}

static void rows_clear(struct nplus1_table *t)
{
	struct lru_node *n = t->rows.head.next, *next;

	for (; n != &t->rows.head; n = next) {
		next = n->next;
		row_free((struct np_row *)n);
	}
	free(t->rows.buckets);
	lru_init(&t->rows);
	t->epoch++;
}

void nplus1_table_free(struct nplus1_table *t)
{
	struct lru_node *n, *next;

	if (!t)
		return;
	rows_clear(t);
	for (n = t->counters.head.next; n != &t->counters.head; n = next) {
		next = n->next;
		counter_free((struct np_counter *)n);
	}
	free(t->counters.buckets);
	free(t);
}

/* RESET NPLUS1 empties SHOW NPLUS1; the metric counters are monotonic and stay. */
void nplus1_table_reset(struct nplus1_table *t)
{
	rows_clear(t);
	t->dropped = 0;
}

size_t nplus1_table_count(const struct nplus1_table *t)
{
	return t->rows.count;
}

uint64_t nplus1_table_dropped(const struct nplus1_table *t)
{
	return t->dropped;
}

uint64_t nplus1_table_logged(const struct nplus1_table *t)
{
	return t->logged;
}

void nplus1_table_foreach(const struct nplus1_table *t,
			  bool (*fn)(const struct nplus1_finding *f, void *arg), void *arg)
{
	for (const struct lru_node *n = t->rows.head.next; n != &t->rows.head; n = n->next) {
		const struct np_row *r = (const struct np_row *)n;
		struct nplus1_finding f = {
			.database = r->database,
			.user = r->user,
			.application_name = r->application_name,
			.route = r->route,
			.kind = r->kind,
			.fp = r->fp,
			.source_fp = r->source_fp,
			.source_rows = r->source_rows,
			.bursts = r->bursts,
			.last_calls = r->last_calls,
			.max_calls = r->max_calls,
			.total_calls = r->total_calls,
			.total_time = r->total_time,
			.first_seen = r->first_seen,
			.last_seen = r->last_seen,
			.query = r->query,
			.source_query = r->source_query,
		};

		if (!fn(&f, arg))
			return;
	}
}

void nplus1_table_foreach_counter(const struct nplus1_table *t,
				  bool (*fn)(const struct nplus1_counter *c, void *arg), void *arg)
{
	for (const struct lru_node *n = t->counters.head.next; n != &t->counters.head;
	     n = n->next) {
		const struct np_counter *c = (const struct np_counter *)n;
		struct nplus1_counter v = {c->database, c->route, c->kind, c->count, c->statements};

		if (!fn(&v, arg))
			return;
	}
}

/* ---------------------------------------------------------------- the log line */

static bool bare_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("/-_.:@+*,()[]~%#!?&;$", c));
}

/*
 * A key=value value: bare when it is non-empty and only holds harmless characters, else in
 * double quotes with \" \\ and \xNN escapes, so that one finding stays one parseable line.
 */
static void log_value(char *out, size_t cap, const char *v)
{
	size_t o = 0, i;
	bool bare = *v != '\0';

	for (i = 0; v[i] && bare; i++)
		bare = bare_char((unsigned char)v[i]);
	if (bare && strlen(v) < cap) {
		memcpy(out, v, strlen(v) + 1);
		return;
	}
	out[o++] = '"';
	for (i = 0; v[i]; i++) {
		unsigned char c = (unsigned char)v[i];
		char esc[5];
		size_t n;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			n = 2;
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\x%02x", c);
			n = 4;
		} else {
			esc[0] = (char)c;
			n = 1;
		}
		if (o + n + 5 > cap) { /* room for ...", NUL */
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(out + o, esc, n);
		o += n;
	}
	out[o++] = '"';
	out[o] = '\0';
}

static void log_finding(struct nplus1_table *t, const struct nplus1_settings *s, struct np_row *r,
			const struct nplus1_ctx *ctx, const char *route, enum nplus1_kind kind,
			const struct np_entry *e, const char *query, usec_t now)
{
	char db[NP_LOG_SHORT], user[NP_LOG_SHORT], app[NP_LOG_SHORT], rt[NP_LOG_ROUTE];
	char q[NP_LOG_QUERY], fp[FP_HEX_LEN], src[FP_HEX_LEN];
	uint64_t suppressed = 0;

	if (r) {
		if (r->logged_once && now - r->last_logged < s->log_interval) {
			r->unlogged++;
			return;
		}
		suppressed = r->unlogged;
		r->unlogged = 0;
		r->logged_once = true;
		r->last_logged = now;
	}
	t->logged++;
	if (log_level_cur < LOG_LVL_INFO)
		return;
	log_value(db, sizeof(db), nz(ctx->database));
	log_value(user, sizeof(user), nz(ctx->user));
	log_value(app, sizeof(app), nz(ctx->application_name));
	log_value(rt, sizeof(rt), route);
	log_value(q, sizeof(q), query);
	fp_hex(e->fp, fp);
	if (e->has_src)
		fp_hex(e->src_fp, src);
	else
		strcpy(src, "none");
	log_info("nplus1: kind=%s db=%s user=%s app=%s route=%s fingerprint=%s calls=%" PRIu32
		 " source=%s source_rows=%" PRIu64 " time_us=%" PRId64 " suppressed=%" PRIu64
		 " query=%s",
		 nplus1_kind_name(kind), db, user, app, rt, fp, e->calls, src,
		 e->has_src ? e->src_rows : 0, (int64_t)e->time, suppressed, q);
}

/* ---------------------------------------------------------------- unit internals */

static const char *text_of(const struct nplus1_unit *u, uint64_t fp)
{
	for (int i = 0; i < NP_TEXT_SLOTS; i++)
		if (u->texts[i].text && u->texts[i].fp == fp)
			return u->texts[i].text;
	return NULL;
}

/* Remember the text of a completed statement, replacing the least recently used slot. */
static void text_remember(struct nplus1_unit *u, const struct nplus1_settings *s, uint64_t fp,
			  const char *query)
{
	struct np_text *slot = NULL;
	size_t n;

	u->tick++;
	for (int i = 0; i < NP_TEXT_SLOTS; i++) {
		struct np_text *x = &u->texts[i];

		if (x->text && x->fp == fp) {
			x->tick = u->tick;
			return;
		}
		if (slot && !slot->text)
			continue; /* an unused slot beats any used one */
		if (!slot || !x->text || x->tick < slot->tick)
			slot = x;
	}
	n = clip_len(nz(query), query_cap(s));
	if (!slot->text || slot->cap < n + 1) {
		char *p = realloc(slot->text, n + 1);

		if (!p)
			return;
		slot->text = p;
		slot->cap = n + 1;
	}
	memcpy(slot->text, nz(query), n);
	slot->text[n] = '\0';
	slot->fp = fp;
	slot->tick = u->tick;
}

static struct np_entry *entry_find(const struct nplus1_unit *u, uint64_t fp)
{
	if (!u->index) {
		for (uint32_t i = 0; i < u->n; i++)
			if (u->entries[i].fp == fp)
				return &u->entries[i];
		return NULL;
	}
	for (uint32_t i = (uint32_t)fp & u->mask;; i = (i + 1) & u->mask) {
		uint16_t v = u->index[i];

		if (!v)
			return NULL;
		if (u->entries[v - 1].fp == fp)
			return &u->entries[v - 1];
	}
}

static void index_put(struct nplus1_unit *u, uint32_t idx)
{
	uint32_t i = (uint32_t)u->entries[idx].fp & u->mask;

	while (u->index[i])
		i = (i + 1) & u->mask;
	u->index[i] = (uint16_t)(idx + 1);
}

/* Room for one more entry: the inline one, then 8, 16, ... NPLUS1_MAX_TRACKED. */
static bool entries_grow(struct nplus1_unit *u)
{
	uint32_t cap = u->cap < NP_LINEAR_MAX ? NP_LINEAR_MAX : u->cap * 2;
	struct np_entry *e;
	uint16_t *index = NULL;

	if (u->cap >= NPLUS1_MAX_TRACKED)
		return false;
	if (cap > NPLUS1_MAX_TRACKED)
		cap = NPLUS1_MAX_TRACKED;
	e = malloc(cap * sizeof(*e));
	if (!e)
		return false;
	if (cap > NP_LINEAR_MAX) {
		index = calloc(cap * 2, sizeof(*index));
		if (!index) {
			free(e);
			return false;
		}
	}
	memcpy(e, u->entries, u->n * sizeof(*e));
	if (u->entries != &u->one)
		free(u->entries);
	free(u->index);
	u->entries = e;
	u->cap = cap;
	u->index = index;
	u->mask = index ? cap * 2 - 1 : 0;
	for (uint32_t i = 0; index && i < u->n; i++)
		index_put(u, i);
	return true;
}

static struct np_entry *entry_add(struct nplus1_unit *u, const struct nplus1_stmt *st)
{
	struct np_entry *e;

	if (u->n == u->cap && !entries_grow(u))
		return NULL;
	e = &u->entries[u->n];
	memset(e, 0, sizeof(*e));
	e->fp = st->fp;
	e->params = st->params_hash;
	e->same = 1;
	e->fkind = (uint8_t)st->kind;
	/* The statement whose rows usually drive the loop ran just before its first iteration. */
	if (u->has_last) {
		e->has_src = 1;
		e->src_fp = u->last_fp;
		e->src_rows = u->last_rows;
	}
	if (u->index)
		index_put(u, u->n);
	u->n++;
	return e;
}

/* The entry crossed the threshold (and min_time): one burst of its group. */
static void flag_entry(struct nplus1_unit *u, struct nplus1_table *t,
		       const struct nplus1_settings *s, const struct nplus1_ctx *ctx,
		       struct np_entry *e, const char *query, usec_t now)
{
	const char *db = nz(ctx->database), *user = nz(ctx->user);
	enum nplus1_kind kind;
	struct np_row *r;

	if (!e->frozen) {
		e->kind = (uint8_t)kind_of(e);
		e->frozen = 1;
	}
	kind = (enum nplus1_kind)e->kind;
	e->flagged = 1;
	if (!query || !*query)
		query = text_of(u, e->fp);
	r = row_find(t, db, user, u->route, kind, e->fp);
	if (!r)
		r = row_new(t, s, db, user, u->route, kind, e->fp, now);
	if (r) {
		r->bursts++;
		r->last_calls = e->calls;
		if (r->max_calls < e->calls)
			r->max_calls = e->calls;
		r->total_calls += e->calls;
		r->total_time += (uint64_t)e->time;
		r->last_seen = now;
		r->source_fp = e->has_src ? e->src_fp : 0;
		r->source_rows = e->has_src ? e->src_rows : 0;
		set_str(&r->source_query, e->has_src ? text_of(u, e->src_fp) : "", query_cap(s));
		if (query)
			set_str(&r->query, query, query_cap(s));
		set_str(&r->application_name, ctx->application_name, 256);
		lru_touch(&t->rows, &r->node);
	}
	e->ctr = counter_bump(t, s, db, u->route, kind, 1, e->calls);
	e->row = r;
	e->epoch = t->epoch;
	log_finding(t, s, r, ctx, u->route, kind, e, nz(query), now);
}

/* One more execution of a fingerprint already flagged in this unit: its row follows along. */
static void flagged_more(struct nplus1_unit *u, struct nplus1_table *t,
			 const struct nplus1_settings *s, const struct nplus1_ctx *ctx,
			 struct np_entry *e, usec_t duration, usec_t now)
{
	struct np_row *r;

	/* Every statement of a long burst comes here: look the row up only when it may be gone. */
	if (e->row && e->ctr && e->epoch == t->epoch) {
		r = e->row;
		e->ctr->statements++;
		lru_touch(&t->counters, &e->ctr->node);
	} else {
		r = row_find(t, nz(ctx->database), nz(ctx->user), u->route,
			     (enum nplus1_kind)e->kind, e->fp);
		e->ctr = counter_bump(t, s, nz(ctx->database), u->route, (enum nplus1_kind)e->kind,
				      0, 1);
		e->row = r;
		e->epoch = t->epoch;
	}
	if (!r) /* evicted meanwhile: the rest of this burst is lost with it */
		return;
	r->last_calls = e->calls;
	if (r->max_calls < e->calls)
		r->max_calls = e->calls;
	r->total_calls++;
	r->total_time += (uint64_t)duration;
	r->last_seen = now;
	lru_touch(&t->rows, &r->node);
}

static void unit_clear(struct nplus1_unit *u)
{
	if (u->entries != &u->one)
		free(u->entries);
	free(u->index);
	for (int i = 0; i < NP_TEXT_SLOTS; i++)
		free(u->texts[i].text);
	memset(u, 0, sizeof(*u));
	u->entries = &u->one;
	u->cap = 1;
}

/* End the unit: a refused or vanished signalled execution still makes its finding. */
static void unit_settle(struct nplus1_unit *u, struct nplus1_table *t,
			const struct nplus1_settings *s, const struct nplus1_ctx *ctx, usec_t now)
{
	for (uint32_t i = 0; i < u->n; i++) {
		struct np_entry *e = &u->entries[i];

		if (e->sig_open && !e->flagged) {
			e->calls++;
			flag_entry(u, t, s, ctx, e, NULL, now);
		}
	}
	unit_clear(u);
}

static uint64_t route_key_of(const struct fp_tags *tags)
{
	uint64_t h;

	if (!tags || (!tags->route[0] && !tags->controller[0]))
		return 0;
	h = fp_mix(str_hash(tags->route), str_hash(tags->controller));
	return h ? h : 1;
}

/* The rules that end an untraced run: idle gap outside a transaction, route/controller change. */
static bool run_ends(const struct nplus1_unit *u, const struct nplus1_settings *s,
		     uint64_t route_key, usec_t now)
{
	if (u->idle && now - u->idle_since >= s->idle_gap)
		return true;
	return route_key != u->route_key;
}

/* ---------------------------------------------------------------- public unit API */

struct nplus1_unit *nplus1_unit_new(void)
{
	struct nplus1_unit *u = cache_line_zalloc(sizeof(*u));

	if (u) {
		u->entries = &u->one;
		u->cap = 1;
	}
	return u;
}

void nplus1_unit_free(struct nplus1_unit *u)
{
	if (!u)
		return;
	unit_clear(u);
	free(u);
}

size_t nplus1_unit_size(const struct nplus1_unit *u)
{
	size_t n = sizeof(*u);

	if (u->entries != &u->one)
		n += u->cap * sizeof(*u->entries);
	if (u->index)
		n += (u->mask + 1) * sizeof(*u->index);
	for (int i = 0; i < NP_TEXT_SLOTS; i++)
		if (u->texts[i].text)
			n += u->texts[i].cap;
	return n;
}

bool nplus1_before(struct nplus1_unit *u, struct nplus1_table *t, const struct nplus1_settings *s,
		   const struct nplus1_ctx *ctx, const struct nplus1_stmt *st, bool in_txn,
		   usec_t now)
{
	const struct fp_tags *tags = st->tags;
	char trace[33];
	bool has_trace;
	uint64_t route_key;
	struct np_entry *e;

	if (!counted_kind(st->kind))
		return false;
	has_trace = tags && tags->traceparent[0] && fp_trace_id(tags->traceparent, trace);
	route_key = route_key_of(tags);

	if (u->statements > 0) {
		bool split;

		if (has_trace && u->has_trace)
			split = strcmp(trace, u->trace) != 0; /* one trace, one unit, gaps or not */
		else
			split = run_ends(u, s, route_key, now);
		if (s->max_statements > 0 && u->statements >= (uint32_t)s->max_statements)
			split = true;
		/*
		 * Never between two statements of one transaction. A client that went idle
		 * outside a transaction since the last statement is between transactions even
		 * when this statement opens the next one (ATOMIC_REQUESTS: BEGIN; SELECT ...).
		 */
		if (in_txn && !u->idle)
			split = false;
		if (split)
			unit_settle(u, t, s, ctx, now);
	}
	if (u->statements == 0) {
		u->route_key = route_key;
		if (tags)
			snprintf(u->route, sizeof(u->route), "%s",
				 tags->route[0] ? tags->route : tags->controller);
	}
	/* An untraced run that continues into a traced statement becomes that trace's unit. */
	if (has_trace && !u->has_trace) {
		u->has_trace = true;
		memcpy(u->trace, trace, sizeof(trace));
	}
	u->idle = false;
	if (u->statements < UINT32_MAX)
		u->statements++;

	e = entry_find(u, st->fp);
	if (!e) {
		e = entry_add(u, st);
		if (!e)
			return false;
	} else if (e->params != st->params_hash) {
		e->same = 0;
	}
	e->inflight++;
	if (e->signalled || e->calls + e->inflight < (uint32_t)threshold_of(s))
		return false;
	if (s->min_time > 0 && e->time < s->min_time)
		return false;
	/* The kind the client is told about is the kind the finding keeps. */
	e->signalled = 1;
	e->sig_open = 1;
	if (!e->frozen) {
		e->kind = (uint8_t)kind_of(e);
		e->frozen = 1;
	}
	u->has_signal = true;
	u->signal = (struct nplus1_signal){
		.kind = (enum nplus1_kind)e->kind,
		.fp = e->fp,
		.calls = (uint64_t)e->calls + e->inflight,
		.source_fp = e->has_src ? e->src_fp : 0,
		.source_rows = e->has_src ? e->src_rows : 0,
		.route = u->route,
	};
	return true;
}

/* One execution of e ended; counted unless it failed. */
static void entry_done(struct nplus1_unit *u, struct nplus1_table *t,
		       const struct nplus1_settings *s, const struct nplus1_ctx *ctx,
		       struct np_entry *e, const char *query, usec_t duration, bool failed,
		       usec_t now)
{
	if (e->inflight > 0)
		e->inflight--;
	e->sig_open = 0;
	if (failed)
		return;
	if (e->calls < UINT32_MAX)
		e->calls++;
	e->time += duration;
	if (e->flagged)
		flagged_more(u, t, s, ctx, e, duration, now);
	else if (e->calls >= (uint32_t)threshold_of(s) && e->time >= s->min_time)
		flag_entry(u, t, s, ctx, e, query, now);
}

void nplus1_done(struct nplus1_unit *u, struct nplus1_table *t, const struct nplus1_settings *s,
		 const struct nplus1_ctx *ctx, const struct nplus1_stmt *st, uint64_t rows,
		 usec_t duration, bool failed, usec_t now)
{
	struct np_entry *e;

	if (!counted_kind(st->kind))
		return;
	if (duration < 0)
		duration = 0;
	if (!failed) {
		/* the source of the next new fingerprint, whether or not this one is tracked */
		u->has_last = true;
		u->last_fp = st->fp;
		u->last_rows = rows;
		text_remember(u, s, st->fp, st->query);
	}
	e = entry_find(u, st->fp);
	if (e)
		entry_done(u, t, s, ctx, e, st->query, duration, failed, now);
}

void nplus1_refused(struct nplus1_unit *u, struct nplus1_table *t, const struct nplus1_settings *s,
		    const struct nplus1_ctx *ctx, const struct nplus1_stmt *st, usec_t now)
{
	struct np_entry *e;

	if (!counted_kind(st->kind))
		return;
	e = entry_find(u, st->fp);
	if (!e)
		return;
	if (e->sig_open && !e->flagged) {
		if (e->inflight > 0)
			e->inflight--;
		e->sig_open = 0;
		e->calls++;
		flag_entry(u, t, s, ctx, e, st->query, now);
	} else {
		entry_done(u, t, s, ctx, e, st->query, 0, true, now);
	}
}

void nplus1_idle(struct nplus1_unit *u, usec_t now)
{
	u->idle = true;
	u->idle_since = now;
}

void nplus1_unit_end(struct nplus1_unit *u, struct nplus1_table *t, const struct nplus1_settings *s,
		     const struct nplus1_ctx *ctx, usec_t now)
{
	unit_settle(u, t, s, ctx, now);
}

bool nplus1_unit_signal(const struct nplus1_unit *u, struct nplus1_signal *sig)
{
	if (!u->has_signal)
		return false;
	*sig = u->signal;
	return true;
}

void nplus1_signal_message(const struct nplus1_signal *sig, char *buf, size_t cap)
{
	static const char *const what[] = {"N+1 query", "duplicate query", "per-row write loop"};
	char fp[FP_HEX_LEN], src[FP_HEX_LEN];
	int n;

	if (!cap)
		return;
	fp_hex(sig->fp, fp);
	n = snprintf(buf, cap,
		     "pgtally: %s: statement %s ran %" PRIu64 " times in one unit of work",
		     what[sig->kind <= NPLUS1_KIND_WRITE_LOOP ? sig->kind : 0], fp, sig->calls);
	if (sig->source_fp && n >= 0 && (size_t)n < cap) {
		fp_hex(sig->source_fp, src);
		n += snprintf(buf + n, cap - (size_t)n, " after %s (%" PRIu64 " rows)", src,
			      sig->source_rows);
	}
	if (sig->route && sig->route[0] && n >= 0 && (size_t)n < cap)
		snprintf(buf + n, cap - (size_t)n, ", route %s", sig->route);
}
