/* auth: authenticating clients (trust, plain, md5, scram-sha-256) against auth_file. */
#ifndef PGT_AUTH_H
#define PGT_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct client;

/* Startup is done: ask for a password or accept. admin: the console database. */
void auth_begin(struct client *c, bool admin);

/* A PasswordMessage / SASLInitialResponse / SASLResponse body. */
void auth_handle_message(struct client *c, const uint8_t *body, size_t len);

/* Is an authentication exchange under way (so the next message is a password message)? */
bool auth_in_progress(const struct client *c);

void auth_free(struct client *c);

struct server;
/* auth_query: a server of auth_user's pool took up the lookup for c. */
void auth_lookup_started(struct client *c, struct server *s);
/* A row came back: the stored password (NULL when the row has none). */
void auth_lookup_result(struct client *c, const char *password);
/* The query finished (error NULL) or failed: go on with authentication, or close. */
void auth_lookup_done(struct client *c, const char *error);

#endif
