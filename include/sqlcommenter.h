/* sqlcommenter: limits of the sqlcommenter tag parser (its API is in fingerprint.h). */
#ifndef PGT_SQLCOMMENTER_H
#define PGT_SQLCOMMENTER_H

/*
 * fp_parse_tags() and fp_trace_id() keep their fp_ names and declarations in fingerprint.h:
 * callers see one fingerprint API, while the tag parser lives apart from the normalizer's
 * hot path in src/sqlcommenter.c.
 */
#include "fingerprint.h"

/* sqlcommenter comments are short; the backward search for a trailing one stops here. */
#define SQLCOMMENTER_SCAN_MAX 8192

#endif
