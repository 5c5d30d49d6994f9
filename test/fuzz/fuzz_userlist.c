/* fuzz_userlist: the auth_file parser, then a lookup of every name it found. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "userlist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	struct userlist *ul;

	err[0] = '\0';
	ul = userlist_parse((const char *)data, size, "fuzz", err, sizeof(err));
	if (!ul) {
		if (strncmp(err, "fuzz:", 5) != 0)
			__builtin_trap();
		return 0;
	}
	/* at most one user per line */
	size_t lines = 1;
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	if (userlist_count(ul) > lines)
		__builtin_trap();
	(void)userlist_find(ul, "postgres");
	(void)userlist_find(ul, "");
	userlist_free(ul);
	return 0;
}
