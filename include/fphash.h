/*
 * fphash: the mixing steps of the fingerprint hash (specified in doc/fingerprint.md; changing
 * them means bumping FP_VERSION), shared by fingerprint.c and fpcache.c.
 */
#ifndef PGT_FPHASH_H
#define PGT_FPHASH_H

#include <stdint.h>

#define FP_P1 0x9E3779B185EBCA87ull
#define FP_P2 0xC2B2AE3D27D4EB4Full

static inline uint64_t rotl64(uint64_t x, unsigned r)
{
	return (x << r) | (x >> (64 - r));
}

/* One word into the running hash h. */
static inline uint64_t fp_round(uint64_t h, uint64_t w)
{
	return rotl64(h ^ (w * FP_P2), 31) * FP_P1;
}

/* The finalizer: every bit of h moves every bit of the result. */
static inline uint64_t fmix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xFF51AFD7ED558CCDull;
	h ^= h >> 33;
	h *= 0xC4CEB9FE1A85EC53ull;
	h ^= h >> 33;
	return h;
}

#endif
