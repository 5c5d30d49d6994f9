/* fuzz_scram: the SCRAM server side's parsers (client-first, client-final) and the client's. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "scram.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Input: a mode byte, then messages separated by a NUL byte (the messages may not contain NUL
 * anyway). Mode even: server side, client-first then client-final. The server nonce is fixed
 * ("SNONCE") so that the fuzzer can build a client-final whose nonce matches. Mode odd: client
 * side, server-first then server-final, with the iteration count capped so one input stays
 * fast.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t salt[16] = "fuzzing salt....";
	struct scram_secret secret;
	char out[4096];
	size_t outlen, first_len;
	const char *first, *second, *nul, *err = NULL;
	size_t second_len = 0;

	if (size < 1)
		return 0;
	first = (const char *)data + 1;
	size--;
	nul = memchr(first, '\0', size);
	first_len = nul ? (size_t)(nul - first) : size;
	second = nul ? nul + 1 : NULL;
	if (second)
		second_len = size - first_len - 1;

	if (!(data[0] & 1)) {
		struct scram_server srv;

		memset(&srv, 0, sizeof(srv));
		srv.test_nonce = "SNONCE";
		if (!scram_secret_from_password("pencil", salt, sizeof(salt), 2, &secret))
			__builtin_trap();
		if (scram_server_handle_first(&srv, &secret, first, first_len, out, sizeof(out),
					      &outlen, &err)) {
			if (outlen >= sizeof(out) || out[outlen] != '\0')
				__builtin_trap();
			if (second && scram_server_handle_final(&srv, second, second_len, out,
								sizeof(out), &outlen, &err)) {
				if (!srv.have_client_key || outlen < 3)
					__builtin_trap();
			}
		} else if (!err) {
			__builtin_trap();
		}
		scram_server_clear(&srv);
	} else {
		struct scram_client cl;

		memset(&cl, 0, sizeof(cl));
		cl.test_nonce = "CNONCE";
		cl.max_iterations = 16;
		if (!scram_client_first(&cl, out, sizeof(out), &outlen))
			__builtin_trap();
		if (scram_client_final(&cl, "pencil", NULL, NULL, first, first_len, out,
				       sizeof(out), &outlen, &err)) {
			if (second && scram_client_verify_final(&cl, second, second_len, &err))
				__builtin_trap(); /* would need a forged signature */
		} else if (!err) {
			__builtin_trap();
		}
		scram_client_clear(&cl);
	}
	return 0;
}
