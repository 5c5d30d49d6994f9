/*
 * rq: the queue of requests a server connection still owes replies to, in the order they were
 * sent. Every forwarded message that gets a reply adds an entry; each reply completes the
 * entry at the head. This is how pgtally times statements, keeps its books through pipelines
 * and errors (after an ErrorResponse the server skips to Sync), hides the replies to messages
 * it injected, and slots replies it makes itself (ParseComplete for a statement the server
 * already has) into the right place of the stream.
 */
#ifndef PGT_RQ_H
#define PGT_RQ_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "config.h"

struct fp_entry;

enum rq_type {
	RQ_STMT,     /* one statement of a simple Query: CommandComplete/EmptyQuery/Error */
	RQ_QEND,     /* end of a simple Query: ReadyForQuery */
	RQ_PARSE,    /* ParseComplete */
	RQ_BIND,     /* BindComplete */
	RQ_DESCRIBE, /* [ParameterDescription] RowDescription | NoData */
	RQ_EXECUTE,  /* CommandComplete | EmptyQuery | PortalSuspended */
	RQ_CLOSE,    /* CloseComplete */
	RQ_SYNC,     /* ReadyForQuery */
	RQ_FUNC,     /* FunctionCall: FunctionCallResponse, ReadyForQuery */
	RQ_INTERNAL, /* pgtally's own simple query: every reply up to ReadyForQuery is hidden */
	RQ_SYNTH,    /* nothing sent: pgtally's own messages (data), sent when due */
	RQ_IGNORED,  /* a Sync that reached the server in COPY FROM STDIN: no reply comes */
};

#define RQF_SWALLOW 0x01 /* the reply is for a message pgtally injected: drop it */
#define RQF_SYNTH 0x02   /* no message was sent: pgtally sends `synth` when the entry is due */
#define RQF_IN_TXN 0x04  /* the statement ran inside an explicit transaction */
#define RQF_COUNTED 0x08 /* the statement counts for N+1 detection */

struct rq_entry {
	uint8_t type;  /* enum rq_type */
	uint8_t flags;
	uint8_t synth; /* message type to synthesize for RQF_SYNTH: '1', '2' or '3' */
	uint8_t kind;  /* enum fp_kind of the statement */
	uint32_t pstmt; /* RQ_PARSE: shared prepared statement id to forget when it fails */
	uint64_t fp;     /* RQ_STMT / RQ_EXECUTE: fingerprint (0: not fingerprinted) */
	uint64_t params; /* hash of the parameter values */
	usec_t sent;     /* when it went to the server */
	/* Owned, freed on pop: RQF_SYNTH with synth 0: whole messages to send when due;
	 * RQ_PARSE: the client's name for the statement (forgotten again if the Parse fails). */
	char *data;
	uint32_t data_len;
	uint32_t fe_gen;     /* fe is valid while the table's gen is this */
	struct fp_entry *fe; /* the statistics entry of fp, when known (stats.h) */
	uint32_t copy_ends;  /* the server's copy_ends when this was sent */
};

struct rq {
	struct rq_entry *e;
	uint32_t head;
	uint32_t count;
	uint32_t cap; /* a power of two */
};

static inline struct rq_entry *rq_head(struct rq *q)
{
	return q->count ? &q->e[q->head] : NULL;
}

static inline struct rq_entry *rq_at(struct rq *q, uint32_t i)
{
	return &q->e[(q->head + i) & (q->cap - 1)];
}

/*
 * Drop the head entry. An emptied queue starts again at slot 0, so that a server's request /
 * reply cycle keeps using the same cache line or two instead of walking the ring.
 */
static inline void rq_pop(struct rq *q)
{
	if (q->count) {
		if (q->e[q->head].data)
			free(q->e[q->head].data);
		q->count--;
		q->head = q->count ? (q->head + 1) & (q->cap - 1) : 0;
	}
}

/* Append an entry; NULL when out of memory. The entry is zeroed but for its type. */
static inline struct rq_entry *rq_push(struct rq *q, enum rq_type type)
{
	if (q->count == q->cap) {
		uint32_t cap = q->cap ? q->cap * 2 : 16;
		struct rq_entry *e = malloc(sizeof(*e) * cap);
		if (!e)
			return NULL;
		for (uint32_t i = 0; i < q->count; i++)
			e[i] = *rq_at(q, i);
		free(q->e);
		q->e = e;
		q->cap = cap;
		q->head = 0;
	}
	struct rq_entry *en = &q->e[(q->head + q->count) & (q->cap - 1)];
	q->count++;
	*en = (struct rq_entry){.type = (uint8_t)type};
	return en;
}

static inline void rq_clear(struct rq *q)
{
	while (q->count)
		rq_pop(q);
	q->head = 0;
}

static inline void rq_free(struct rq *q)
{
	rq_clear(q);
	free(q->e);
	q->e = NULL;
	q->head = q->count = q->cap = 0;
}

#endif
