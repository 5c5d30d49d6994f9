/* fuzz_server_stream: bytes a server sends, through the real server state machine. */
#include "fuzz_net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Append a frontend message to out at *n. */
static void put_msg(uint8_t *out, size_t *n, char type, const char *body, size_t len)
{
	*n += fz_msg(out + *n, type, body, len);
}

#define PUT(out, n, type, lit) put_msg(out, n, type, lit, sizeof(lit) - 1)

/* The request the client makes before the server's fuzzed replies; simple and extended. */
static size_t build_request(uint8_t *out, int which)
{
	size_t n = 0;
	switch (which) {
	case 0:
		PUT(out, &n, 'Q', "SELECT 1\0");
		break;
	case 1:
		PUT(out, &n, 'Q', "BEGIN; SELECT 1; END\0");
		break;
	case 2:
		PUT(out, &n, 'P', "s1\0SELECT $1\0\0\0");
		PUT(out, &n, 'B', "\0s1\0\0\0\0\1\0\0\0\0011\0\0");
		PUT(out, &n, 'D', "P\0");
		PUT(out, &n, 'E', "\0\0\0\0\0");
		PUT(out, &n, 'S', "");
		break;
	default:
		PUT(out, &n, 'Q', "COPY t FROM STDIN\0");
		PUT(out, &n, 'd', "1\n");
		PUT(out, &n, 'c', "");
		break;
	}
	return n;
}

/*
 * Input: a flags byte, then what the server sends.
 *   bit 0: the bytes start right after pgtally's startup packet (the login is fuzzed);
 *          else a canned login comes first and the client's request reaches the server
 *   bits 1-2: the client's request: a Query, a transaction, an extended-protocol pipeline,
 *          COPY FROM STDIN
 *   bits 3-4: delivery in pieces of all / 1 / 5 / 64 bytes, the loop run between pieces
 *   bit 5: max_prepared_statements = 20
 *   bit 6: pool_mode = session
 *   bit 7: the client sends its request again afterwards (reuse of whatever state is left)
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t chunks[4] = {0, 1, 5, 64};
	char settings[256];

	if (size < 1 || size > 200000)
		return 0;
	uint8_t flags = data[0];
	snprintf(settings, sizeof(settings),
		 "auth_type = trust\n"
		 "max_prepared_statements = %d\n"
		 "pool_mode = %s\n",
		 flags & 0x20 ? 20 : 0, flags & 0x40 ? "session" : "transaction");
	struct fz *f = fz_start(settings, NULL);
	uint8_t req[256];
	size_t req_len = build_request(req, (flags >> 1) & 3);
	uint8_t pkt[128];
	size_t n;
	fz_startup_packet(pkt, &n, "fuzz", "db");

	f->pg_answer = false;
	if (flags & 1) {
		/* The request waits in pgtally until the login it is fuzzing completes. */
		f->pg_login = false;
		fz_client_send(f, pkt, n);
		fz_client_send(f, req, req_len);
		fz_settle(f);
	} else {
		f->pg_login = true;
		fz_client_send(f, pkt, n);
		fz_settle(f);
		fz_client_send(f, req, req_len);
		fz_settle(f);
	}
	size_t chunk = chunks[(flags >> 3) & 3];
	const uint8_t *p = data + 1;
	size_t left = size - 1;
	if (chunk == 0)
		chunk = left;
	while (left > 0 && f->pg >= 0) {
		size_t k = left < chunk ? left : chunk;
		fz_pg_send(f, p, k);
		p += k;
		left -= k;
		fz_settle(f);
	}
	if (flags & 0x80) {
		fz_client_send(f, req, req_len);
		fz_settle(f);
	}
	fz_finish(f);
	return 0;
}
