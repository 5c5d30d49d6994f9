/* fuzz_config: feeds arbitrary bytes to the ini loader as a whole pgtally.ini. */
#include <stddef.h>
#include <stdint.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config_problems probs = {0};
	struct config *cfg = config_load_string((const char *)data, size, "fuzz.ini", &probs);

	/* every problem must carry a message; rendering every value must not crash */
	for (size_t i = 0; i < probs.n; i++) {
		if (!probs.items[i].message || !probs.items[i].file)
			__builtin_trap();
	}
	if (cfg) {
		size_t n;
		const struct config_option *opts = config_options(&n);
		char buf[256];

		for (size_t i = 0; i < n; i++)
			config_value_text(cfg, &opts[i], buf, sizeof(buf));
		for (size_t i = 0; i < cfg->n_dbs; i++) {
			if (config_find_db(cfg, cfg->dbs[i].name, false) == NULL)
				__builtin_trap();
		}
		(void)config_find_db(cfg, "fuzz", true);
		(void)config_list_contains(cfg->admin_users, "fuzz");
		config_free(cfg);
	}
	config_problems_free(&probs);
	return 0;
}
