/* userlist: parse the auth_file into an immutable hash table of user -> stored password. */
#include "userlist.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "scram.h"

/* An auth_file larger than this is a mistake (a wrong path), not a list of users. */
#define USERLIST_MAX_FILE (64u * 1024 * 1024)

struct userlist_entry {
	char *user;
	char *password;
	int kind; /* enum pwd_kind of password: worked out at load, not at every login */
};

struct userlist {
	struct userlist_entry *entries; /* in file order, duplicates included */
	size_t n_entries;
	size_t n_users;  /* distinct names */
	uint32_t *slots; /* open addressing: entry index + 1, 0 = empty */
	size_t mask;     /* number of slots - 1 (a power of two) */
};

static uint64_t hash_name(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void userlist_free(struct userlist *ul)
{
	if (!ul)
		return;
	for (size_t i = 0; i < ul->n_entries; i++) {
		free(ul->entries[i].user);
		wipe_free(ul->entries[i].password);
	}
	free(ul->entries);
	free(ul->slots);
	free(ul);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/*
 * Read a double-quoted field starting at *pp (on the opening quote); "" stands for one quote.
 * On success *pp is just past the closing quote and *out a malloc'd copy.
 */
static bool read_quoted(const char **pp, const char *end, char **out, const char **why)
{
	const char *p = *pp + 1;
	char *buf = malloc((size_t)(end - p) + 1);
	size_t n = 0;

	if (!buf) {
		*why = "out of memory";
		return false;
	}
	for (;;) {
		if (p >= end) {
			*why = "missing closing double quote";
			break;
		}
		if (*p == '\0') {
			*why = "NUL byte inside a quoted field";
			break;
		}
		if (*p == '"') {
			if (p + 1 < end && p[1] == '"') {
				buf[n++] = '"';
				p += 2;
				continue;
			}
			buf[n] = '\0';
			*pp = p + 1;
			*out = buf;
			return true;
		}
		buf[n++] = *p++;
	}
	explicit_bzero(buf, n);
	free(buf);
	return false;
}

/* One line without its '\n'. Returns false on a syntax error; *user NULL for no entry. */
static bool parse_line(const char *p, const char *end, char **user, char **password,
		       const char **why)
{
	*user = *password = NULL;
	while (p < end && is_blank(*p))
		p++;
	if (p == end || *p == ';' || *p == '#')
		return true;
	if (*p != '"') {
		*why = "expected a double-quoted user name";
		return false;
	}
	if (!read_quoted(&p, end, user, why))
		return false;
	while (p < end && is_blank(*p))
		p++;
	if (p == end || *p != '"') {
		*why = p == end ? "missing password after the user name"
				: "expected a double-quoted password";
		free(*user);
		*user = NULL;
		return false;
	}
	if (!read_quoted(&p, end, password, why)) {
		free(*user);
		*user = NULL;
		return false;
	}
	/* anything after the password is ignored, as PgBouncer does */
	return true;
}

static bool add_entry(struct userlist *ul, size_t *cap, char *user, char *password)
{
	if (ul->n_entries == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct userlist_entry *ne;

		if (ncap > UINT32_MAX - 1)
			return false;
		ne = realloc(ul->entries, ncap * sizeof(*ne));
		if (!ne)
			return false;
		ul->entries = ne;
		*cap = ncap;
	}
	ul->entries[ul->n_entries].user = user;
	ul->entries[ul->n_entries].password = password;
	ul->entries[ul->n_entries].kind = (int)pwd_kind_of(password);
	ul->n_entries++;
	return true;
}

/* Index every entry; a later line for the same user replaces the earlier one. */
static bool build_index(struct userlist *ul)
{
	size_t nslots = 16;

	while (nslots < ul->n_entries * 2)
		nslots *= 2;
	ul->slots = calloc(nslots, sizeof(*ul->slots));
	if (!ul->slots)
		return false;
	ul->mask = nslots - 1;
	for (size_t i = 0; i < ul->n_entries; i++) {
		size_t s = (size_t)hash_name(ul->entries[i].user) & ul->mask;

		for (;; s = (s + 1) & ul->mask) {
			uint32_t v = ul->slots[s];

			if (v == 0) {
				ul->slots[s] = (uint32_t)(i + 1);
				ul->n_users++;
				break;
			}
			if (strcmp(ul->entries[v - 1].user, ul->entries[i].user) == 0) {
				ul->slots[s] = (uint32_t)(i + 1);
				break;
			}
		}
	}
	return true;
}

struct userlist *userlist_parse(const char *text, size_t len, const char *name_for_messages,
				char *err, size_t errlen)
{
	struct userlist *ul = calloc(1, sizeof(*ul));
	const char *p = text, *end = text + len;
	size_t cap = 0;
	int lineno = 0;
	const char *name = name_for_messages ? name_for_messages : "auth_file";

	if (!ul)
		goto oom;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *why = NULL;
		char *user, *password;

		if (!eol)
			eol = end;
		lineno++;
		if (!parse_line(p, eol, &user, &password, &why)) {
			if (err && errlen)
				snprintf(err, errlen, "%s:%d: %s", name, lineno, why);
			userlist_free(ul);
			return NULL;
		}
		if (user && !add_entry(ul, &cap, user, password)) {
			free(user);
			wipe_free(password);
			goto oom;
		}
		p = eol + 1;
	}
	if (!build_index(ul))
		goto oom;
	return ul;
oom:
	if (err && errlen)
		snprintf(err, errlen, "%s: out of memory", name);
	userlist_free(ul);
	return NULL;
}

struct userlist *userlist_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	struct userlist *ul = NULL;
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (!f) {
		if (err && errlen)
			snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		size_t got;

		if (cap - len < 4096) {
			char *nb;

			cap = cap ? cap * 2 : 8192;
			if (cap > USERLIST_MAX_FILE + 8192) {
				if (err && errlen)
					snprintf(err, errlen, "%s: file is too large", path);
				goto out;
			}
			nb = malloc(cap);
			if (!nb) {
				if (err && errlen)
					snprintf(err, errlen, "%s: out of memory", path);
				goto out;
			}
			/* copy by hand rather than realloc so no stale copy of secrets is left */
			if (buf) {
				memcpy(nb, buf, len);
				explicit_bzero(buf, len);
				free(buf);
			}
			buf = nb;
		}
		got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got == 0) {
			if (ferror(f)) {
				if (err && errlen)
					snprintf(err, errlen, "cannot read %s: %s", path,
						 strerror(errno));
				goto out;
			}
			break;
		}
	}
	ul = userlist_parse(buf ? buf : "", len, path, err, errlen);
out:
	if (buf) {
		explicit_bzero(buf, len);
		free(buf);
	}
	fclose(f);
	return ul;
}

static const struct userlist_entry *find_entry(const struct userlist *ul, const char *user)
{
	if (!ul || !user || !ul->slots)
		return NULL;
	for (size_t s = (size_t)hash_name(user) & ul->mask;; s = (s + 1) & ul->mask) {
		uint32_t v = ul->slots[s];

		if (v == 0)
			return NULL;
		if (strcmp(ul->entries[v - 1].user, user) == 0)
			return &ul->entries[v - 1];
	}
}

const char *userlist_find(const struct userlist *ul, const char *user)
{
	const struct userlist_entry *e = find_entry(ul, user);
	return e ? e->password : NULL;
}

const char *userlist_find_kind(const struct userlist *ul, const char *user, int *kind)
{
	const struct userlist_entry *e = find_entry(ul, user);
	if (e)
		*kind = e->kind;
	return e ? e->password : NULL;
}

size_t userlist_count(const struct userlist *ul)
{
	return ul ? ul->n_users : 0;
}

bool userlist_is_world_readable(const char *path)
{
	struct stat stbuf;

	if (stat(path, &stbuf) != 0)
		return false;
	return (stbuf.st_mode & S_IROTH) != 0;
}
