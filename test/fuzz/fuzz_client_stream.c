/* fuzz_client_stream: bytes a logged-in client sends, through the real client state machine. */
#include "fuzz_net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Input: a flags byte, then what the client sends after its login.
 *   bit 0: max_prepared_statements = 20 (named statements are renamed and tracked)
 *   bit 1: pool_mode = session
 *   bit 2: the fake server stays silent (requests pile up unanswered)
 *   bits 3-4: delivery in pieces of all / 1 / 7 / 64 bytes, the loop run between pieces
 *   bit 5: log in to the admin console instead of the database
 *   bit 6: server_check_delay = 0 (a check query before each reuse of a server)
 *   bit 7: fingerprints = 0
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t chunks[4] = {0, 1, 7, 64};
	char settings[512];

	if (size < 1 || size > 200000)
		return 0;
	uint8_t flags = data[0];
	snprintf(settings, sizeof(settings),
		 "auth_type = trust\n"
		 "max_prepared_statements = %d\n"
		 "pool_mode = %s\n"
		 "server_check_delay = %s\n"
		 "fingerprints = %d\n",
		 flags & 1 ? 20 : 0, flags & 2 ? "session" : "transaction",
		 flags & 0x40 ? "0" : "30", flags & 0x80 ? 0 : 1);
	struct fz *f = fz_start(settings, NULL);
	f->pg_login = true;
	f->pg_answer = !(flags & 4);
	fz_login(f, flags & 0x20 ? "pgtally" : "db");
	fz_client_send_chunked(f, data + 1, size - 1, chunks[(flags >> 3) & 3]);
	fz_settle(f);
	fz_finish(f);
	return 0;
}
