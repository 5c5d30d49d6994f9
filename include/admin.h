/* admin: the console database (pgtally, alias pgbouncer): SHOW and control commands. */
#ifndef PGT_ADMIN_H
#define PGT_ADMIN_H

#include "iobuf.h"

struct client;

/* Login finished on the console: b holds AuthenticationOk; add parameters and send. */
void admin_welcome(struct client *c, struct iobuf *b);

/* Process buffered console input (simple Query messages). */
void admin_process(struct client *c);

#endif
