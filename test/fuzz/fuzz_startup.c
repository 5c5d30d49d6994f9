/* fuzz_startup: the startup packet and the authentication exchange of a new client. */
#include "fuzz_net.h"

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The parser on its own: whatever it accepts must point inside the packet. */
static void check_parser(const uint8_t *pkt, size_t len)
{
	struct proto_startup st;
	const char *err = NULL;
	if (!proto_parse_startup(pkt, len, &st, &err)) {
		if (!err)
			__builtin_trap();
		return;
	}
	if (st.n_params > PROTO_MAX_STARTUP_PARAMS)
		__builtin_trap();
	for (size_t i = 0; i < st.n_params; i++) {
		const uint8_t *k = (const uint8_t *)st.keys[i];
		const uint8_t *v = (const uint8_t *)st.values[i];
		if (k < pkt || k >= pkt + len || v < pkt || v >= pkt + len)
			__builtin_trap();
		if (!memchr(v, '\0', (size_t)(pkt + len - v)))
			__builtin_trap();
	}
}

/*
 * Input: a flags byte, then everything the client sends from the first byte on: the startup
 * packet (or SSLRequest, CancelRequest...), password messages, then anything.
 *   bits 0-1: auth_type trust / plain / md5 / scram-sha-256 (user "fuzz", password "pw")
 *   bit 2: the fake server stays silent (the login waits for a server that never answers)
 *   bits 3-4: delivery in pieces of all / 1 / 3 / 64 bytes, the loop run between pieces
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const auth[4] = {"trust", "plain", "md5", "scram-sha-256"};
	static const size_t chunks[4] = {0, 1, 3, 64};
	char settings[128];

	if (size < 1 || size > 100000)
		return 0;
	uint8_t flags = data[0];
	check_parser(data + 1, size - 1);
	snprintf(settings, sizeof(settings), "auth_type = %s\n", auth[flags & 3]);
	struct fz *f = fz_start(settings, "\"fuzz\" \"pw\"\n\"admin\" \"pw\"\n");
	f->pg_login = !(flags & 4);
	f->pg_answer = true;
	fz_client_send_chunked(f, data + 1, size - 1, chunks[(flags >> 3) & 3]);
	fz_settle(f);
	fz_finish(f);
	return 0;
}
