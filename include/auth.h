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

#endif
