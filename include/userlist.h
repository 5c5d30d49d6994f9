/* userlist: the auth_file (PgBouncer format: "user" "password" per line), loaded read-only. */
#ifndef PGT_USERLIST_H
#define PGT_USERLIST_H

#include <stdbool.h>
#include <stddef.h>

/* Immutable once loaded, so worker threads may share one; a reload builds a new one. */
struct userlist;

/*
 * Read and parse an auth_file. NULL on failure, with a message in err naming path:line for a
 * syntax error. When a user appears twice the last line wins.
 */
struct userlist *userlist_load(const char *path, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The same over text in memory; name_for_messages stands in for the path in messages. */
struct userlist *userlist_parse(const char *text, size_t len, const char *name_for_messages,
				char *err, size_t errlen) __attribute__((warn_unused_result));

/* The stored password (plaintext, md5 hash or SCRAM secret) for user, or NULL. */
const char *userlist_find(const struct userlist *ul, const char *user);

/* The same, and the password's enum pwd_kind (from scram.h) in *kind when found. */
const char *userlist_find_kind(const struct userlist *ul, const char *user, int *kind);

size_t userlist_count(const struct userlist *ul);

/* Wipes the passwords before freeing. NULL is allowed. */
void userlist_free(struct userlist *ul);

/* Can anybody read the file? (for a warning at load time; false when stat fails) */
bool userlist_is_world_readable(const char *path);

#endif
