/* fingerprint: one-pass SQL normalizer and 64-bit query fingerprints (FP_VERSION 1). */
#include "fingerprint.h"
#include "fphash.h"

#include <string.h>
#include <strings.h>

/*
 * The lexer follows PostgreSQL's scanner (src/backend/parser/scan.l) closely enough that
 * statement boundaries and token kinds agree with the server for valid SQL, but it never
 * fails: malformed input (unterminated quotes, stray bytes) still yields tokens and an id.
 * See doc/fingerprint.md for the rules; the comments here say why the code looks as it does.
 *
 * Speed matters: the pooler fingerprints every statement it forwards, usually with out ==
 * NULL, so the common cases avoid the general machinery:
 * - the text is never gathered in a buffer: each token goes into the hash as whole
 *   little-endian words held in registers (struct hot), and into out directly when given;
 * - keywords are recognized with one probe of a perfect hash on their lowercased words;
 * - fast_token() lexes and writes the tokens of plain SQL in one step, and copies runs of
 *   quoted names ("t"."a", "t"."b") whole, since they normalize to themselves;
 * - list_token() does the same inside list elements, and skip_element() reads the elements
 *   of IN/VALUES lists that repeat an earlier shape without writing them at all;
 * - everything else goes through stmt_token(), which holds all the rules.
 * The fast paths must give exactly what stmt_token() gives: a differential fuzzer against
 * the straightforward version compared ids, texts and every field of struct fp_stmt.
 * The sqlcommenter tag parser is in src/sqlcommenter.c.
 */

#define FP_INLINE static inline __attribute__((always_inline))
#define FP_NOINLINE static __attribute__((noinline))

/* ---- the hash (specified in doc/fingerprint.md; changing it means bumping FP_VERSION) ---- */

/* FP_P1, FP_P2, fp_round() and fmix64() are in fphash.h */
#define FP_SEED_ID 0x70677466702d6964ull     /* "pgtfp-id" */
#define FP_SEED_PARAMS 0x70677466702d7061ull /* "pgtfp-pa" */

/* Lowercase the ASCII letters among 8 bytes at once; other bytes are left alone. */
static inline uint64_t lower8(uint64_t x)
{
	uint64_t b7 = x & 0x7f7f7f7f7f7f7f7full;
	uint64_t ge_a = b7 + 0x3f3f3f3f3f3f3f3full; /* bit 7 set where byte >= 'A' */
	uint64_t gt_z = b7 + 0x2525252525252525ull; /* bit 7 set where byte > 'Z' */
	uint64_t upper = (ge_a ^ gt_z) & ~x & 0x8080808080808080ull;

	return x | (upper >> 2);
}

static inline uint64_t load_le64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

static inline void store_le64(unsigned char *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	memcpy(p, &v, 8);
}

uint64_t fp_hash(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = FP_SEED_ID, w = 0;
	size_t i = 0;

	for (; i + 8 <= len; i += 8)
		h = fp_round(h, load_le64(p + i));
	if (i < len) {
		for (size_t k = 0; i + k < len; k++)
			w |= (uint64_t)p[i + k] << (8 * k);
		h = fp_round(h, w);
	}
	return fmix64(h ^ len);
}

uint64_t fp_mix(uint64_t h, uint64_t v)
{
	return fmix64(fp_round(h, v));
}

void fp_hex(uint64_t id, char buf[FP_HEX_LEN])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 15; i >= 0; i--) {
		buf[i] = digits[id & 15];
		id >>= 4;
	}
	buf[16] = '\0';
}
/* ---- character classes and keywords (tables generated once, see doc/fingerprint.md) ---- */

enum cclass {
	C_WS = 0, /* also every other control byte and NUL */
	C_ID,     /* identifier start: letters, '_', bytes >= 0x80 */
	C_DIG,
	C_SQ,
	C_DQ,
	C_DOL,
	C_OP, /* PostgreSQL's op_chars */
	C_LP,
	C_RP,
	C_LB,
	C_RB,
	C_COM,
	C_SEMI,
	C_COL,
	C_DOT,
	C_OTH,
};
#define CC_CLASS 0x0f
#define CC_IDC 0x10 /* may continue an identifier */
#define CC_OPC 0x20 /* may be part of an operator */
#define CC_BLANK 0x40 /* whitespace, or may start a comment: - / */

/* clang-format off */
static const uint8_t cc[256] = {
	0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, /* 0x00 */
	0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, /* 0x08 */
	0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, /* 0x10 */
	0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, /* 0x18 */
	0x40, 0x26, 0x04, 0x26, 0x15, 0x26, 0x26, 0x03, /* 0x20 */
	0x07, 0x08, 0x26, 0x26, 0x0b, 0x66, 0x0e, 0x66, /* 0x28 */
	0x12, 0x12, 0x12, 0x12, 0x12, 0x12, 0x12, 0x12, /* 0x30 */
	0x12, 0x12, 0x0d, 0x0c, 0x26, 0x26, 0x26, 0x26, /* 0x38 */
	0x26, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0x40 */
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0x48 */
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0x50 */
	0x11, 0x11, 0x11, 0x09, 0x0f, 0x0a, 0x26, 0x11, /* 0x58 */
	0x26, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0x60 */
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0x68 */
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0x70 */
	0x11, 0x11, 0x11, 0x0f, 0x26, 0x0f, 0x26, 0x40, /* 0x78 */
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0x80 */
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0x88 */
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0x90 */
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0x98 */
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0xa0 */
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0xa8 */
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0xb0 */
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0xb8 */
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0xc0 */
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0xc8 */
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0xd0 */
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0xd8 */
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0xe0 */
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0xe8 */
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0xf0 */
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0xf8 */
};
/* clang-format on */

static inline bool is_digit(unsigned char c)
{
	return (unsigned)(c - '0') < 10u;
}

static inline bool is_hex(unsigned char c)
{
	return is_digit(c) || (unsigned)((c | 0x20) - 'a') < 6u;
}

/* Bytes [0..m) of a word (m <= 8); the others are zero. */
static inline uint64_t low_bytes(uint64_t x, size_t m)
{
	return m >= 8 ? x : x & ((1ull << (8 * m)) - 1);
}

/* m <= 8 bytes at p as a zero-padded little-endian word; avail >= m bytes are readable. */
static inline uint64_t load_upto(const unsigned char *p, size_t m, size_t avail)
{
	uint64_t x = 0;

	if (avail >= 8)
		return low_bytes(load_le64(p), m);
	for (size_t j = 0; j < m; j++)
		x |= (uint64_t)p[j] << (8 * j);
	return x;
}

/*
 * Bit 7 set in the bytes of x that may continue an identifier, as CC_IDC says: letters,
 * digits, '_', '$' and bytes >= 0x80. Each sum below stays under 0x100 in every byte, so no
 * carry crosses from one byte to the next.
 */
static inline uint64_t idc8(uint64_t x)
{
	const uint64_t ones = 0x0101010101010101ull, hi = ones << 7;
	uint64_t b = x & ~hi;
	uint64_t l = b | ones * 0x20;
	uint64_t letter = (l + ones * (0x80 - 'a')) & ~(l + ones * (0x80 - 'z' - 1));
	uint64_t digit = (b + ones * (0x80 - '0')) & ~(b + ones * (0x80 - '9' - 1));
	uint64_t under = ~((b ^ ones * '_') + ones * 0x7f);
	uint64_t dollar = ~((b ^ ones * '$') + ones * 0x7f);

	return (letter | digit | under | dollar | x) & hi;
}

/* The end of the identifier starting at p: eight bytes at a time while they can be read. */
static inline size_t ident_end(const unsigned char *s, size_t len, size_t p)
{
	for (p++; p + 8 <= len; p += 8) {
		uint64_t stop = ~idc8(load_le64(s + p)) & 0x8080808080808080ull;

		if (stop != 0)
			return p + ((unsigned)__builtin_ctzll(stop) >> 3);
	}
	while (p < len && (cc[s[p]] & CC_IDC))
		p++;
	return p;
}

/* Keywords the normalizer cares about; every other word is just an identifier. */
enum kw {
	KW_NONE,
	KW_ABORT,
	KW_ABSOLUTE,
	KW_ALL,
	KW_ALSO,
	KW_AND,
	KW_ANY,
	KW_ARRAY,
	KW_AS,
	KW_ATOMIC,
	KW_BACKWARD,
	KW_BEGIN,
	KW_BETWEEN,
	KW_BY,
	KW_CASE,
	KW_CHECK,
	KW_CLOSE,
	KW_COMMIT,
	KW_CONFLICT,
	KW_COPY,
	KW_CREATE,
	KW_DEALLOCATE,
	KW_DECLARE,
	KW_DEFAULT,
	KW_DELETE,
	KW_DISCARD,
	KW_DISTINCT,
	KW_DO,
	KW_ELSE,
	KW_END,
	KW_EXCEPT,
	KW_EXECUTE,
	KW_EXISTS,
	KW_FALSE,
	KW_FETCH,
	KW_FILTER,
	KW_FIRST,
	KW_FORWARD,
	KW_FROM,
	KW_GROUP,
	KW_HAVING,
	KW_ILIKE,
	KW_IN,
	KW_INSERT,
	KW_INTERSECT,
	KW_INTO,
	KW_IS,
	KW_JOIN,
	KW_KEY,
	KW_LAST,
	KW_LATERAL,
	KW_LIKE,
	KW_LIMIT,
	KW_LISTEN,
	KW_MERGE,
	KW_MOVE,
	KW_NEXT,
	KW_NOT,
	KW_NOTIFY,
	KW_NULL,
	KW_OFFSET,
	KW_ON,
	KW_OR,
	KW_OVER,
	KW_PREPARE,
	KW_PREPARED,
	KW_PRIOR,
	KW_REFERENCES,
	KW_RELATIVE,
	KW_RELEASE,
	KW_RESET,
	KW_RETURNING,
	KW_ROLLBACK,
	KW_SAVEPOINT,
	KW_SELECT,
	KW_SET,
	KW_SHOW,
	KW_SIMILAR,
	KW_SOME,
	KW_START,
	KW_TABLE,
	KW_THEN,
	KW_TO,
	KW_TRANSACTION,
	KW_TRUE,
	KW_UNION,
	KW_UNIQUE,
	KW_UNLISTEN,
	KW_UPDATE,
	KW_USING,
	KW_VALUES,
	KW_WHEN,
	KW_WHERE,
	KW_WITH,
	KW_WORK,
};
#define KWF_SP 1   /* a '(' after it gets a space: "in (", not a function call "in(" */
#define KWF_UN 2   /* a '-' right after it is a sign: "limit -1" */
#define KWF_SLOW 4 /* has a meaning of its own even in plain SQL (fp_next's fast path) */
#define KW_MAXLEN 11

/* s is zero-padded, so that it compares as two words with the word being looked up. */
struct kwent {
	char s[KW_MAXLEN + 1];
	uint8_t kw;
	uint8_t flags;
};

/*
 * kwslot[kw_slot(word)] is the index in kwtab of the only keyword that may be that word (0:
 * none). KW_HASH_MUL was searched offline so that no two keywords share a slot; adding a
 * keyword means searching again (doc/fingerprint.md).
 */
/* clang-format off */
#define KW_HASH_MUL 0x2375a7bc31b52855ull
static const struct kwent kwtab[95] = {
	{"", KW_NONE, 0},
	{"abort", KW_ABORT, 0}, {"absolute", KW_ABSOLUTE, KWF_UN},
	{"all", KW_ALL, KWF_SP | KWF_UN | KWF_SLOW}, {"also", KW_ALSO, KWF_SP},
	{"and", KW_AND, KWF_SP | KWF_UN}, {"any", KW_ANY, KWF_UN}, {"array", KW_ARRAY, 0},
	{"as", KW_AS, KWF_SP}, {"atomic", KW_ATOMIC, 0}, {"backward", KW_BACKWARD, KWF_UN},
	{"begin", KW_BEGIN, 0}, {"between", KW_BETWEEN, KWF_SP | KWF_UN},
	{"by", KW_BY, KWF_SP | KWF_UN}, {"case", KW_CASE, KWF_SP | KWF_UN},
	{"check", KW_CHECK, KWF_SP}, {"close", KW_CLOSE, 0}, {"commit", KW_COMMIT, 0},
	{"conflict", KW_CONFLICT, KWF_SP}, {"copy", KW_COPY, KWF_SP}, {"create", KW_CREATE, 0},
	{"deallocate", KW_DEALLOCATE, 0}, {"declare", KW_DECLARE, 0},
	{"default", KW_DEFAULT, KWF_UN}, {"delete", KW_DELETE, 0}, {"discard", KW_DISCARD, 0},
	{"distinct", KW_DISTINCT, KWF_SP | KWF_UN}, {"do", KW_DO, KWF_SP},
	{"else", KW_ELSE, KWF_SP | KWF_UN}, {"end", KW_END, 0}, {"except", KW_EXCEPT, KWF_SP},
	{"execute", KW_EXECUTE, 0}, {"exists", KW_EXISTS, KWF_SP}, {"false", KW_FALSE, KWF_SLOW},
	{"fetch", KW_FETCH, KWF_UN}, {"filter", KW_FILTER, KWF_SP}, {"first", KW_FIRST, 0},
	{"forward", KW_FORWARD, KWF_UN}, {"from", KW_FROM, KWF_SP}, {"group", KW_GROUP, KWF_SP},
	{"having", KW_HAVING, KWF_SP | KWF_UN}, {"ilike", KW_ILIKE, KWF_SP | KWF_UN},
	{"in", KW_IN, KWF_SP | KWF_UN}, {"insert", KW_INSERT, KWF_SP},
	{"intersect", KW_INTERSECT, KWF_SP}, {"into", KW_INTO, 0}, {"is", KW_IS, KWF_SP | KWF_UN},
	{"join", KW_JOIN, KWF_SP}, {"key", KW_KEY, KWF_SP}, {"last", KW_LAST, 0},
	{"lateral", KW_LATERAL, KWF_SP}, {"like", KW_LIKE, KWF_SP | KWF_UN},
	{"limit", KW_LIMIT, KWF_SP | KWF_UN}, {"listen", KW_LISTEN, 0}, {"merge", KW_MERGE, 0},
	{"move", KW_MOVE, KWF_UN}, {"next", KW_NEXT, 0}, {"not", KW_NOT, KWF_SP | KWF_UN},
	{"notify", KW_NOTIFY, 0}, {"null", KW_NULL, KWF_SLOW},
	{"offset", KW_OFFSET, KWF_SP | KWF_UN}, {"on", KW_ON, KWF_SP | KWF_UN},
	{"or", KW_OR, KWF_SP | KWF_UN}, {"over", KW_OVER, KWF_SP}, {"prepare", KW_PREPARE, 0},
	{"prepared", KW_PREPARED, 0}, {"prior", KW_PRIOR, 0},
	{"references", KW_REFERENCES, KWF_SP}, {"relative", KW_RELATIVE, KWF_UN},
	{"release", KW_RELEASE, 0}, {"reset", KW_RESET, 0},
	{"returning", KW_RETURNING, KWF_SP | KWF_UN}, {"rollback", KW_ROLLBACK, 0},
	{"savepoint", KW_SAVEPOINT, 0}, {"select", KW_SELECT, KWF_SP | KWF_UN},
	{"set", KW_SET, KWF_SP}, {"show", KW_SHOW, 0}, {"similar", KW_SIMILAR, KWF_SP | KWF_UN},
	{"some", KW_SOME, KWF_UN}, {"start", KW_START, 0}, {"table", KW_TABLE, KWF_SP},
	{"then", KW_THEN, KWF_SP | KWF_UN}, {"to", KW_TO, KWF_SP | KWF_UN},
	{"transaction", KW_TRANSACTION, 0}, {"true", KW_TRUE, KWF_SLOW},
	{"union", KW_UNION, KWF_SP}, {"unique", KW_UNIQUE, KWF_SP}, {"unlisten", KW_UNLISTEN, 0},
	{"update", KW_UPDATE, 0}, {"using", KW_USING, KWF_SP},
	{"values", KW_VALUES, KWF_SP | KWF_SLOW}, {"when", KW_WHEN, KWF_SP | KWF_UN},
	{"where", KW_WHERE, KWF_SP | KWF_UN}, {"with", KW_WITH, KWF_SP}, {"work", KW_WORK, 0},
};

static const uint8_t kwslot[512] = {
	 2,  0,  0,  0,  0,  0,  0,  0,  0,  0,  4,  0,  0,  0, 11,  0,
	 0,  0,  0,  0, 65,  0,  0,  0,  0,  0,  9,  0,  0,  0,  0,  0,
	19,  0, 29,  0,  0,  0, 26,  0,  0,  0, 82,  0,  0, 30,  0,  0,
	 0,  0, 42,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, 83, 44,
	79,  0,  0,  0,  0,  0,  0,  0,  0, 36,  0, 39,  0,  0,  0,  0,
	 0,  0,  0,  0, 49, 59,  0, 18,  0,  0,  0,  0,  0,  0, 13, 67,
	 0,  0,  0,  0,  0, 93,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
	 0,  0, 28,  0,  0, 16,  0, 68,  0,  0,  0, 15,  0,  0, 41,  0,
	 0,  0,  0, 57,  0,  0,  0,  0,  0,  0,  0,  6,  0,  0, 24,  0,
	 0,  0,  0,  8,  0,  0, 53,  0,  0,  0,  0,  0,  0,  0,  0,  0,
	 0,  0,  0,  0, 91, 60,  0,  7,  0, 70,  0,  0,  0,  0,  0,  0,
	 0, 69, 52,  0, 75,  0,  0, 47,  0,  0,  0, 77,  0, 84,  0,  0,
	 0,  0, 38, 32,  0, 71,  0,  0,  0,  0,  0, 46,  0,  0,  0,  0,
	 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
	 0, 66,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
	 0,  0,  0, 73,  0,  0,  0,  0,  0,  0, 21,  0,  0,  0, 25,  0,
	 0,  0,  0, 88,  0,  0,  5,  0, 85,  0, 48,  0, 34,  0,  0,  0,
	 0,  1,  0,  0,  0, 54,  0,  0,  0,  0,  0,  0, 56,  0,  0,  0,
	 0, 87,  0,  0,  0, 51,  0,  0, 37,  0,  0, 50, 20, 63, 10,  0,
	 0,  0,  0,  0,  0,  0,  0,  0, 78,  0,  0,  0,  0,  0,  0, 33,
	 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
	 0,  0,  0,  0,  0,  0, 74,  0,  0,  0, 55,  0,  0,  0,  0,  0,
	90,  0,  0,  0,  0,  0,  0,  0, 45,  0, 35,  0,  0,  0,  0,  0,
	 0, 89,  0,  0,  0,  0,  0,  0,  0, 40,  0,  0,  0,  0,  0,  0,
	17,  0,  0, 72,  0,  0,  0,  0,  0, 62,  0,  0,  0,  0,  0,  0,
	 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
	31,  0,  0, 86,  0,  0,  0,  0, 23,  0,  0,  3, 64,  0,  0,  0,
	 0,  0,  0,  0, 94,  0,  0,  0,  0,  0, 80, 27,  0,  0,  0, 92,
	58,  0,  0,  0,  0,  0,  0,  0, 14, 12,  0,  0,  0,  0,  0,  0,
	81,  0,  0,  0,  0,  0, 43,  0,  0,  0,  0,  0, 61,  0,  0, 76,
	 0,  0,  0,  0,  0,  0, 22,  0,  0,  0,  0,  0,  0,  0,  0,  0,
	 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
};
/* clang-format on */

static inline unsigned kw_slot(uint64_t w0, uint64_t w1)
{
	return (unsigned)(((w0 ^ w1) * KW_HASH_MUL) >> 55);
}

/*
 * The keyword whose letters are w0 (bytes 0-7) and w1 (bytes 8-10), lowercased and
 * zero-padded, or KW_NONE. lower8() only touches A-Z and keywords are plain letters, so a
 * match means the same letters in any case.
 */
FP_INLINE int kw_find(uint64_t w0, uint64_t w1, uint8_t *flags)
{
	const struct kwent *k = &kwtab[kwslot[kw_slot(w0, w1)]];

	if (load_le64((const unsigned char *)k->s) != w0 ||
	    load_upto((const unsigned char *)k->s + 8, 4, 4) != w1) {
		*flags = 0;
		return KW_NONE;
	}
	*flags = k->flags;
	return k->kw;
}

/* Keyword of the word s[0..len) (any case), or KW_NONE; avail >= len bytes are readable. */
FP_INLINE int kw_lookup(const unsigned char *s, size_t len, size_t avail, uint8_t *flags)
{
	if (len > KW_MAXLEN) {
		*flags = 0;
		return KW_NONE;
	}
	return kw_find(lower8(load_upto(s, len < 8 ? len : 8, avail)),
		       len > 8 ? lower8(load_upto(s + 8, len - 8, avail - 8)) : 0, flags);
}

/* ---- the lexer ---- */

enum tok {
	TK_NONE = 0, /* "nothing emitted yet" in prev */
	TK_END,
	TK_WORD,
	TK_QIDENT,
	TK_CONST,
	TK_OP,
	TK_LPAREN,
	TK_RPAREN,
	TK_LBRACK,
	TK_RBRACK,
	TK_COMMA,
	TK_SEMI,
	TK_DOT,
	TK_CAST,
	TK_COLON,
	TK_OTHER,
	TK_NUMRAW, /* a number written as is (FETCH counts): must not touch a '.' */
};

enum csub { CS_OTHER = 0, CS_NUM, CS_STR, CS_PARAM };

/*
 * A token is passed around as separate values, not as a struct in memory: storing its
 * one-byte fields and reading them back as one word stalled store forwarding in fp_next.
 */

static size_t skip_block_comment(const unsigned char *s, size_t len, size_t p)
{
	size_t nest = 1;

	p += 2;
	while (p + 1 < len) {
		if (s[p] == '*' && s[p + 1] == '/') {
			p += 2;
			if (--nest == 0)
				return p;
		} else if (s[p] == '/' && s[p + 1] == '*') {
			nest++;
			p += 2;
		} else {
			p++;
		}
	}
	return len;
}

/*
 * Whitespace and comments from p; returns the next token's position. *cstart is the first
 * comment's start (SIZE_MAX when none), *cend the last one's end.
 */
static size_t skip_blank(const unsigned char *s, size_t len, size_t p, size_t *cstart,
			 size_t *cend)
{
	*cstart = SIZE_MAX;
	while (p < len) {
		unsigned char c = s[p];

		if ((cc[c] & CC_CLASS) == C_WS) {
			p++;
		} else if (c == '-' && p + 1 < len && s[p + 1] == '-') {
			if (*cstart == SIZE_MAX)
				*cstart = p;
			for (p += 2; p < len && s[p] != '\n' && s[p] != '\r'; p++)
				;
			*cend = p;
		} else if (c == '/' && p + 1 < len && s[p + 1] == '*') {
			if (*cstart == SIZE_MAX)
				*cstart = p;
			p = skip_block_comment(s, len, p);
			*cend = p;
		} else {
			break;
		}
	}
	return p;
}

/*
 * The first c in s[p..len), or len. Quoted names and literals are mostly short, where a word
 * at a time beats a call to memchr; long ones go to memchr after 32 bytes.
 */
static inline size_t find_byte(const unsigned char *s, size_t p, size_t len, unsigned char c)
{
	const uint64_t ones = 0x0101010101010101ull, pat = ones * c;
	size_t stop = len - p > 32 ? p + 32 : len;
	const unsigned char *m;

	for (; p + 8 <= stop; p += 8) {
		uint64_t x = load_le64(s + p) ^ pat;
		/* the lowest flagged byte is exact (borrows only spoil bytes above a zero) */
		uint64_t z = (x - ones) & ~x & (ones << 7);

		if (z != 0)
			return p + ((unsigned)__builtin_ctzll(z) >> 3);
	}
	if (stop == len) {
		for (; p < len; p++) {
			if (s[p] == c)
				return p;
		}
		return len;
	}
	m = memchr(s + p, c, len - p);
	return m != NULL ? (size_t)(m - s) : len;
}

/*
 * After a closing quote: PostgreSQL glues 'a' 'b' into one literal when only whitespace
 * containing a newline separates them. Returns the position after the next opening quote to
 * continue the literal, or 0 when the literal really ended.
 */
static size_t string_continues(const unsigned char *s, size_t len, size_t p)
{
	bool nl = false;

	for (; p < len; p++) {
		unsigned char c = s[p];

		if (c == '\n' || c == '\r')
			nl = true;
		else if (c != ' ' && c != '\t' && c != '\f')
			break;
	}
	return nl && p < len && s[p] == '\'' ? p + 1 : 0;
}

/* p is just after the opening quote of a standard string; returns the end of the literal. */
static size_t scan_string(const unsigned char *s, size_t len, size_t p)
{
	for (;;) {
		size_t r;

		p = find_byte(s, p, len, '\'');
		if (p >= len)
			return len;
		p++;
		if (p < len && s[p] == '\'') {
			p++;
			continue;
		}
		/* the common case, a literal followed by something else than whitespace */
		if (p >= len || (cc[s[p]] & CC_CLASS) != C_WS)
			return p;
		r = string_continues(s, len, p);
		if (r == 0)
			return p;
		p = r;
	}
}

/* Like scan_string for E'...': a backslash escapes the next byte. */
static size_t scan_estring(const unsigned char *s, size_t len, size_t p)
{
	while (p < len) {
		unsigned char c = s[p];
		size_t r;

		if (c == '\\') {
			p += 2;
			continue;
		}
		p++;
		if (c != '\'')
			continue;
		if (p < len && s[p] == '\'') {
			p++;
			continue;
		}
		r = string_continues(s, len, p);
		if (r == 0)
			return p;
		p = r;
	}
	return len;
}

/* p is just after the opening double quote. */
static inline size_t scan_qident(const unsigned char *s, size_t len, size_t p)
{
	for (;;) {
		p = find_byte(s, p, len, '"');
		if (p >= len)
			return len;
		p++;
		if (p < len && s[p] == '"') {
			p++;
			continue;
		}
		return p;
	}
}

/* Numbers: 42, 4.2, .42, 4e2, 4.2e-1, and PostgreSQL 16's 0x2A, 0o52, 0b101010, 1_000. */
static size_t scan_number(const unsigned char *s, size_t len, size_t p)
{
	if (s[p] == '0' && p + 2 < len) {
		unsigned char b = s[p + 1] | 0x20;
		unsigned char d = s[p + 2];

		if ((b == 'x' && is_hex(d)) || (b == 'o' && d >= '0' && d <= '7') ||
		    (b == 'b' && (d == '0' || d == '1'))) {
			for (p += 2; p < len && (is_hex(s[p]) || s[p] == '_'); p++)
				;
			return p;
		}
	}
	while (p < len && (is_digit(s[p]) || s[p] == '_'))
		p++;
	/* "1..5" is 1 followed by "..", as in the server */
	if (p < len && s[p] == '.' && !(p + 1 < len && s[p + 1] == '.')) {
		for (p++; p < len && (is_digit(s[p]) || s[p] == '_'); p++)
			;
	}
	if (p < len && (s[p] | 0x20) == 'e') {
		size_t q = p + 1;

		if (q < len && (s[q] == '+' || s[q] == '-'))
			q++;
		if (q < len && is_digit(s[q])) {
			for (p = q; p < len && is_digit(s[p]); p++)
				;
		}
	}
	return p;
}

/* scan_number() for the common plain integer, without a call. */
FP_INLINE size_t number_end(const unsigned char *s, size_t len, size_t p)
{
	size_t q = p;
	unsigned char c;

	while (q < len && is_digit(s[q]))
		q++;
	if (q >= len)
		return q;
	/* 1.5, 1e5, 1_000, 0x1F, 0o17, 0b101 */
	c = s[q] | 0x20;
	if (c == '.' || c == 0x7f || c == 'e' || c == 'x' || c == 'o' || c == 'b')
		return scan_number(s, len, p);
	return q;
}

/* p at '$' not followed by a digit: a $tag$...$tag$ literal, or 0 when it is not one. */
static size_t scan_dollar(const unsigned char *s, size_t len, size_t p)
{
	size_t q = p + 1, taglen, r;

	if (q < len && s[q] != '$') {
		if ((cc[s[q]] & CC_CLASS) != C_ID)
			return 0;
		while (q < len && (cc[s[q]] & CC_IDC) && s[q] != '$')
			q++;
	}
	if (q >= len || s[q] != '$')
		return 0;
	taglen = q - p + 1;
	for (r = q + 1; r < len;) {
		const unsigned char *m = memchr(s + r, '$', len - r);

		if (m == NULL)
			break;
		r = (size_t)(m - s);
		if (len - r >= taglen && memcmp(s + r, s + p, taglen) == 0)
			return r + taglen;
		r++;
	}
	return len;
}

/* Operators, cut like the server does: never across "--" or "/ *", and a trailing + or -
 * is split off ("=-1" is "=" then "-1") unless the operator has one of ~!@#^&|`?%. */
static size_t scan_op(const unsigned char *s, size_t len, size_t p)
{
	size_t q = p + 1, n;

	while (q < len && (cc[s[q]] & CC_OPC)) {
		if ((s[q] == '-' && s[q - 1] == '-') || (s[q] == '*' && s[q - 1] == '/')) {
			q--;
			break;
		}
		q++;
	}
	n = q - p;
	if (n > 1 && (s[q - 1] == '+' || s[q - 1] == '-')) {
		for (size_t i = p; i < q - 1; i++) {
			if (strchr("~!@#^&|`?%", s[i]) != NULL)
				return q;
		}
		while (n > 1 && (s[p + n - 1] == '+' || s[p + n - 1] == '-'))
			n--;
	}
	return p + n;
}

/*
 * The token at p (not a blank): returns its end and sets *type and *sub. p < len.
 */
FP_INLINE size_t lex(const unsigned char *s, size_t len, size_t p, uint8_t *type, uint8_t *sub)
{
	unsigned char c = s[p];
	size_t r;

	*sub = 0;
	switch (cc[c] & CC_CLASS) {
	case C_ID:
		if (p + 1 < len && s[p + 1] == '\'') {
			switch (c) {
			case 'e':
			case 'E':
				*type = TK_CONST;
				*sub = CS_STR;
				return scan_estring(s, len, p + 2);
			case 'b':
			case 'B':
			case 'x':
			case 'X':
			case 'n':
			case 'N':
				*type = TK_CONST;
				*sub = CS_STR;
				return scan_string(s, len, p + 2);
			default:
				break;
			}
		}
		if ((c == 'u' || c == 'U') && p + 2 < len && s[p + 1] == '&') {
			if (s[p + 2] == '\'') {
				*type = TK_CONST;
				*sub = CS_STR;
				return scan_string(s, len, p + 3);
			}
			if (s[p + 2] == '"') {
				*type = TK_QIDENT;
				*sub = 1;
				return scan_qident(s, len, p + 3);
			}
		}
		*type = TK_WORD;
		return ident_end(s, len, p);
	case C_DIG:
		*type = TK_CONST;
		*sub = CS_NUM;
		return number_end(s, len, p);
	case C_DOT:
		if (p + 1 < len && is_digit(s[p + 1])) {
			*type = TK_CONST;
			*sub = CS_NUM;
			return scan_number(s, len, p);
		}
		*type = TK_DOT;
		return p + 1;
	case C_SQ:
		*type = TK_CONST;
		*sub = CS_STR;
		return scan_string(s, len, p + 1);
	case C_DQ:
		*type = TK_QIDENT;
		return scan_qident(s, len, p + 1);
	case C_DOL:
		if (p + 1 < len && is_digit(s[p + 1])) {
			*type = TK_CONST;
			*sub = CS_PARAM;
			for (p++; p < len && is_digit(s[p]); p++)
				;
			return p;
		}
		if ((r = scan_dollar(s, len, p)) != 0) {
			*type = TK_CONST;
			*sub = CS_STR;
			return r;
		}
		*type = TK_OTHER;
		return p + 1;
	case C_OP:
		*type = TK_OP;
		return scan_op(s, len, p);
	case C_LP:
		*type = TK_LPAREN;
		return p + 1;
	case C_RP:
		*type = TK_RPAREN;
		return p + 1;
	case C_LB:
		*type = TK_LBRACK;
		return p + 1;
	case C_RB:
		*type = TK_RBRACK;
		return p + 1;
	case C_COM:
		*type = TK_COMMA;
		return p + 1;
	case C_SEMI:
		*type = TK_SEMI;
		return p + 1;
	case C_COL:
		if (p + 1 < len && s[p + 1] == ':') {
			*type = TK_CAST;
			return p + 2;
		}
		if (p + 1 < len && s[p + 1] == '=') {
			*type = TK_OP; /* ":=" of named arguments */
			return p + 2;
		}
		*type = TK_COLON;
		return p + 1;
	default:
		*type = TK_OTHER;
		return p + 1;
	}
}

/* ---- the normalizer ---- */

#define FP_LIST_MAX 4 /* nesting of collapsible lists; deeper ones are kept as written */
#define FP_SHAPES 8   /* distinct element shapes remembered per list */
#define EH_BASIS 0xcbf29ce484222325ull
#define EH_PRIME 0x100000001b3ull

enum list_type { L_IN, L_ARRAY, L_VALUES };

/*
 * The state every token touches. fp_next() keeps it in a local variable whose address never
 * leaves the inlined code, so that the compiler holds it in registers; the few functions that
 * are not inlined get it through struct norm's copy (see COLD).
 */
struct hot {
	/*
	 * The text so far is tlen bytes: its whole words went into h, the last tlen % 8 bytes
	 * wait in acc (little-endian, zero above them). No copy of the text is kept: a rewind
	 * restores these three, and out is simply overwritten from tlen on.
	 */
	uint64_t h, acc;
	size_t tlen;
	char *out;
	size_t lim;  /* bytes of out usable for text (cap - 1), 0 without out */
	uint64_t ph; /* params_hash so far */
	unsigned nparam, nconst, ntok;
	size_t depth;    /* of parentheses and brackets */
	uint32_t spmask; /* token types that take a space after prev (bit 1 << type) */
	uint8_t prev, prev_kw, prev_kwf;
};

/* Everything a dropped list element may have changed, taken before its separating comma. */
struct snap {
	uint64_t h, acc;
	size_t tlen;
	unsigned nparam;
	uint8_t prev, prev_kw, prev_kwf;
	uint64_t eh[FP_LIST_MAX];
};

/* An IN (...), ARRAY[...] or VALUES list being written out. */
struct lctx {
	uint8_t type;
	bool first; /* in the first element */
	bool has;   /* the element has a token */
	bool cst;   /* the element is made only of constants so far */
	bool pend;  /* a word that is only allowed as the type of a typed literal: date '...' */
	bool cast;  /* after "::": type names allowed */
	uint8_t nshapes;
	size_t depth; /* IN/ARRAY: depth inside the bracket; VALUES: depth of the keyword */
	uint64_t eh;  /* shape of the element: its tokens with placeholders unnumbered */
	uint64_t shapes[FP_SHAPES];
	struct snap snap;
};

enum mode {
	M_NONE,
	M_WITH,     /* the statement kind comes from the first top-level DML keyword */
	M_START,    /* START [TRANSACTION] */
	M_PREPARE,  /* PREPARE name ... or PREPARE TRANSACTION */
	M_COMMIT,   /* COMMIT [PREPARED] */
	M_ROLLBACK, /* ROLLBACK [WORK|TRANSACTION] [TO ...|PREPARED] */
	M_SUPPRESS, /* the rest of the statement is ignored (savepoint names) */
	M_DECLARE,  /* cursor names become "_" */
	M_CLOSE,
	M_FETCH,
	M_CREATE, /* BEGIN ATOMIC ... END bodies contain ';' */
	M_SET,    /* SET x TO y is written SET x = y */
};

/* What stmt_mode() wants written instead of the token. */
enum repl { R_NONE, R_CURSOR, R_EQ };

struct norm {
	const unsigned char *s;
	size_t len;
	struct hot t; /* valid only around the calls to non-inlined functions */
	uint8_t mode;
	enum fp_kind kind;
	enum fp_txn txn;
	unsigned atomic; /* BEGIN ATOMIC / CASE nesting inside CREATE */
	int nl;
	bool skip;      /* the comma at skip_at is held back: see skip_element() */
	size_t skip_at;
	struct lctx l[FP_LIST_MAX];
	struct snap rb; /* after "rollback", to rewrite ROLLBACK WORK TO as ROLLBACK TO */
};

/* Call a function that works on nm->t (not inlined), from code holding the state in *hs. */
#define COLD(hs, nm, call) ((nm)->t = *(hs), (call), *(hs) = (nm)->t)

/*
 * Spacing (doc/fingerprint.md), as one bit mask per previous token: bit t set when a token of
 * type t gets a space before it. The only case that depends on more than the two types, a
 * '(' after a word, is added by set_prev() from the keyword's KWF_SP.
 */
#define B(t) (1u << (t))
#define SP_ALL (B(TK_NUMRAW + 1) - 1)
#define SP_NEVER                                                                                   \
	(B(TK_RPAREN) | B(TK_RBRACK) | B(TK_COMMA) | B(TK_DOT) | B(TK_CAST) | B(TK_COLON) |        \
	 B(TK_SEMI))
#define SP_OPERAND (SP_ALL & ~SP_NEVER & ~B(TK_LBRACK)) /* "a[1]", "f(x)[1]", "'{}'[1]" */
static const uint32_t sp_after[TK_NUMRAW + 1] = {
	[TK_NONE] = 0,
	[TK_END] = SP_ALL & ~SP_NEVER,
	[TK_WORD] = SP_OPERAND & ~B(TK_LPAREN), /* "count(": see set_prev() */
	[TK_QIDENT] = SP_OPERAND,
	[TK_CONST] = SP_OPERAND,
	[TK_OP] = SP_ALL & ~SP_NEVER,
	[TK_LPAREN] = 0,
	[TK_RPAREN] = SP_OPERAND,
	[TK_LBRACK] = B(TK_NUMRAW),
	[TK_RBRACK] = SP_OPERAND,
	[TK_COMMA] = SP_ALL & ~SP_NEVER,
	[TK_SEMI] = SP_ALL & ~SP_NEVER,
	[TK_DOT] = B(TK_NUMRAW),
	[TK_CAST] = B(TK_NUMRAW),
	[TK_COLON] = B(TK_OP) | B(TK_COLON) | B(TK_CAST) | B(TK_NUMRAW), /* not ":=", "::" */
	[TK_OTHER] = SP_ALL & ~SP_NEVER,
	[TK_NUMRAW] = SP_ALL,
};
#undef B

FP_INLINE void set_prev(struct hot *t, uint8_t type, uint8_t kw, uint8_t kwf)
{
	t->prev = type;
	t->prev_kw = kw;
	t->prev_kwf = kwf;
	t->spmask = sp_after[type] | (type == TK_WORD && (kwf & KWF_SP) ? 1u << TK_LPAREN : 0);
}

/* Append k (1..8) bytes, the low bytes of x (its other bytes are zero). */
FP_INLINE void put_word(struct hot *t, uint64_t x, size_t k)
{
	size_t len = t->tlen;
	unsigned a = (unsigned)(len & 7);

	if (len < t->lim) {
		if (t->lim - len >= 8) {
			store_le64((unsigned char *)t->out + len, x);
		} else {
			for (size_t j = 0; j < k && len + j < t->lim; j++)
				t->out[len + j] = (char)(x >> (8 * j));
		}
	}
	t->acc |= x << (8 * a);
	if (a + k >= 8) {
		t->h = fp_round(t->h, t->acc);
		/* the bytes of x that did not fit; a == 0 means none (and a shift by 64) */
		t->acc = a != 0 ? x >> (8 * (8 - a)) : 0;
	}
	t->tlen = len + k;
}

/* A placeholder, "$" and the parameter's number, after a space when space is set. */
FP_INLINE void put_param(struct hot *t, bool space)
{
	unsigned v = ++t->nparam;
	unsigned char buf[16];
	size_t k = 0;

	if (v < 10) {
		uint64_t w = '$' | (uint64_t)('0' + v) << 8;

		if (space)
			put_word(t, w << 8 | ' ', 3);
		else
			put_word(t, w, 2);
		return;
	}
	if (space)
		put_word(t, ' ', 1);
	do {
		buf[15 - k++] = (unsigned char)('0' + v % 10);
		v /= 10;
	} while (v);
	buf[15 - k++] = '$';
	for (size_t i = 16 - k; i < 16; i += 8) {
		size_t m = 16 - i < 8 ? 16 - i : 8;

		put_word(t, load_upto(buf + i, m, m), m);
	}
}

/*
 * A token outside lists: a space when prev asks for it, then its sl bytes, of which w holds
 * the first eight or fewer (lowercased when fold), the rest being read from src (avail >= sl
 * bytes readable). The space goes into the same word as a short token.
 */
FP_INLINE void put_tok(struct hot *t, uint8_t type, uint64_t w, const unsigned char *src,
		       size_t sl, size_t avail, bool fold)
{
	if ((t->spmask >> type) & 1) {
		if (sl < 8) {
			put_word(t, w << 8 | ' ', sl + 1);
			return;
		}
		put_word(t, ' ', 1);
	}
	put_word(t, w, sl < 8 ? sl : 8);
	for (size_t i = 8; i < sl; i += 8) {
		size_t m = sl - i < 8 ? sl - i : 8;
		uint64_t x = load_upto(src + i, m, avail - i);

		put_word(t, fold ? lower8(x) : x, m);
	}
}

FP_INLINE void take_snap(const struct hot *t, const struct norm *n, struct snap *sn)
{
	sn->h = t->h;
	sn->acc = t->acc;
	sn->tlen = t->tlen;
	sn->nparam = t->nparam;
	sn->prev = t->prev;
	sn->prev_kw = t->prev_kw;
	sn->prev_kwf = t->prev_kwf;
	for (int i = 0; i < n->nl; i++)
		sn->eh[i] = n->l[i].eh;
}

/* Restore the text state, and the shapes of the first nl_keep lists. */
FP_INLINE void rewind_to(struct hot *t, struct norm *n, const struct snap *sn, int nl_keep)
{
	t->h = sn->h;
	t->acc = sn->acc;
	t->tlen = sn->tlen;
	t->nparam = sn->nparam;
	set_prev(t, sn->prev, sn->prev_kw, sn->prev_kwf);
	for (int i = 0; i < nl_keep; i++)
		n->l[i].eh = sn->eh[i];
}

/*
 * Write one token; avail >= sl bytes are readable at src. how: 0 raw bytes, 1 lowercased,
 * 2 placeholder. The lists being written see the token through their shape hash, in which
 * placeholders are unnumbered.
 */
FP_INLINE void emit(struct hot *t, struct norm *n, uint8_t type, const unsigned char *src,
		    size_t sl, size_t avail, int how, int kw, uint8_t kwf)
{
	uint64_t th;

	if (how == 2) {
		put_param(t, (t->spmask >> type) & 1);
		th = EH_PRIME;
	} else {
		if ((t->spmask >> type) & 1)
			put_word(t, ' ', 1);
		th = EH_BASIS ^ sl;
		while (sl > 0) {
			size_t m = sl < 8 ? sl : 8;
			uint64_t x = load_upto(src, m, avail);

			if (how == 1)
				x = lower8(x);
			put_word(t, x, m);
			if (n->nl > 0)
				th = rotl64((th ^ x) * FP_P1, 29);
			src += m;
			sl -= m;
			avail -= m;
		}
	}
	for (int i = 0; i < n->nl; i++)
		n->l[i].eh = (n->l[i].eh ^ th ^ type) * EH_PRIME;
	set_prev(t, type, (uint8_t)kw, kwf);
}

/* Write a word that is not in the input. */
FP_INLINE void emit_lit(struct hot *t, struct norm *n, const char *text, int kw, uint8_t kwf)
{
	unsigned char buf[16] = {0};
	size_t l = strlen(text);

	memcpy(buf, text, l);
	emit(t, n, TK_WORD, buf, l, sizeof(buf), 0, kw, kwf);
}

/*
 * A quick hash of k bytes at p (avail >= k readable), a word at a time: for list element
 * shapes and constant values, which are compared within one build, never shown or specified.
 */
FP_INLINE uint64_t chunk_hash(const unsigned char *p, size_t k, size_t avail, bool fold)
{
	uint64_t th = EH_BASIS ^ k;

	while (k > 0) {
		size_t m = k < 8 ? k : 8;
		uint64_t x = load_upto(p, m, avail);

		if (fold)
			x = lower8(x);
		th = rotl64((th ^ x) * FP_P1, 29);
		p += m;
		k -= m;
		avail -= m;
	}
	return th;
}

FP_INLINE void feed_param(struct hot *t, const unsigned char *p, size_t k, size_t avail,
			  bool fold)
{
	/* the length is part of chunk_hash, so "1", "23" and "12", "3" differ */
	t->ph = fp_round(t->ph, chunk_hash(p, k, avail, fold));
	t->nconst++;
}

FP_INLINE void list_push(const struct hot *t, struct norm *n, uint8_t type)
{
	struct lctx *c;

	if (n->nl >= FP_LIST_MAX)
		return;
	c = &n->l[n->nl++];
	c->type = type;
	c->first = true;
	c->has = false;
	c->cst = true;
	c->pend = false;
	c->cast = false;
	c->nshapes = 0;
	c->depth = t->depth;
	c->eh = EH_BASIS;
}

/* The innermost list's current element is complete: drop it when it repeats a shape. */
FP_INLINE void list_finish(struct hot *t, struct norm *n)
{
	struct lctx *c = &n->l[n->nl - 1];

	if (!c->has || !c->cst || c->pend)
		return;
	for (unsigned i = 0; i < c->nshapes; i++) {
		if (c->shapes[i] == c->eh) {
			if (!c->first)
				rewind_to(t, n, &c->snap, n->nl - 1);
			return;
		}
	}
	if (c->nshapes < FP_SHAPES)
		c->shapes[c->nshapes++] = c->eh;
}

FP_INLINE void list_pop(struct hot *t, struct norm *n)
{
	list_finish(t, n);
	n->nl--;
}

/* Whether the token keeps each open list element "constants only". */
FP_INLINE void list_track(struct norm *n, uint8_t type, int kw)
{
	for (int i = 0; i < n->nl; i++) {
		struct lctx *c = &n->l[i];

		c->has = true;
		if (!c->cst)
			continue;
		if (c->pend) {
			c->pend = false;
			if (type != TK_CONST) {
				c->cst = false;
				continue;
			}
		}
		switch (type) {
		case TK_CONST:
			c->cast = false;
			break;
		case TK_CAST:
			c->cast = true;
			break;
		case TK_WORD:
			if (!c->cast && kw != KW_ARRAY && kw != KW_DEFAULT)
				c->pend = true;
			break;
		case TK_QIDENT:
		case TK_DOT:
			if (!c->cast)
				c->cst = false;
			break;
		case TK_LBRACK:
			/* ARRAY[[1,2],[3,4]] has two sub-arrays, a different value than [[1,2]] */
			if (c->type == L_ARRAY)
				c->cst = false;
			break;
		case TK_LPAREN:
		case TK_RPAREN:
		case TK_RBRACK:
		case TK_COMMA:
			break;
		default:
			c->cst = false;
			break;
		}
	}
}

/* A new element of the list starts. */
FP_INLINE void list_element(struct lctx *c)
{
	c->has = false;
	c->cst = true;
	c->pend = false;
	c->cast = false;
	c->eh = EH_BASIS;
}

/* Whether list_finish() would drop the innermost list's element. */
FP_INLINE bool list_drops(const struct lctx *c)
{
	if (!c->has || !c->cst || c->pend || c->first)
		return false;
	for (unsigned i = 0; i < c->nshapes; i++) {
		if (c->shapes[i] == c->eh)
			return true;
	}
	return false;
}

/* The first token decides the statement kind and any special handling. */
/* The kind a data statement's keyword gives (also after WITH ...), or -1. */
static int dml_kind(int kw)
{
	switch (kw) {
	case KW_SELECT:
	case KW_VALUES:
	case KW_TABLE:
		return FP_KIND_SELECT;
	case KW_INSERT:
		return FP_KIND_INSERT;
	case KW_UPDATE:
		return FP_KIND_UPDATE;
	case KW_DELETE:
		return FP_KIND_DELETE;
	case KW_MERGE:
		return FP_KIND_MERGE;
	default:
		return -1;
	}
}

static void stmt_first(struct norm *n, uint8_t type, int kw)
{
	int dk = dml_kind(kw);
	n->kind = dk >= 0 ? (enum fp_kind)dk : FP_KIND_OTHER;
	switch (kw) {
	case KW_WITH:
		n->mode = M_WITH;
		break;
	case KW_BEGIN:
		n->kind = FP_KIND_TXN;
		n->txn = FP_TXN_BEGIN;
		break;
	case KW_START:
		n->mode = M_START;
		break;
	case KW_COMMIT:
		n->mode = M_COMMIT;
		/* fall through */
	case KW_END:
		n->kind = FP_KIND_TXN;
		n->txn = FP_TXN_COMMIT;
		break;
	case KW_ROLLBACK:
		n->mode = M_ROLLBACK;
		/* fall through */
	case KW_ABORT:
		n->kind = FP_KIND_TXN;
		n->txn = FP_TXN_ROLLBACK;
		break;
	case KW_SAVEPOINT:
		n->kind = FP_KIND_TXN;
		n->txn = FP_TXN_SAVEPOINT;
		break;
	case KW_RELEASE:
		n->kind = FP_KIND_TXN;
		n->txn = FP_TXN_RELEASE;
		break;
	case KW_PREPARE:
		n->mode = M_PREPARE;
		/* fall through */
	case KW_EXECUTE:
		n->kind = FP_KIND_PREPARE;
		break;
	case KW_SET:
		n->mode = M_SET;
		/* fall through */
	case KW_SHOW:
	case KW_RESET:
	case KW_DISCARD:
	case KW_DEALLOCATE:
		n->kind = FP_KIND_SESSION;
		break;
	case KW_LISTEN:
	case KW_UNLISTEN:
	case KW_NOTIFY:
		n->kind = FP_KIND_LISTEN;
		break;
	case KW_DECLARE:
		n->kind = FP_KIND_CURSOR;
		n->mode = M_DECLARE;
		break;
	case KW_FETCH:
	case KW_MOVE:
		n->kind = FP_KIND_CURSOR;
		n->mode = M_FETCH;
		break;
	case KW_CLOSE:
		n->kind = FP_KIND_CURSOR;
		n->mode = M_CLOSE;
		break;
	case KW_COPY:
		n->kind = FP_KIND_COPY;
		break;
	case KW_CREATE:
		n->mode = M_CREATE;
		break;
	default:
		if (type == TK_LPAREN)
			n->kind = FP_KIND_SELECT;
		break;
	}
}

static bool fetch_direction(int kw)
{
	switch (kw) {
	case KW_FORWARD:
	case KW_BACKWARD:
	case KW_NEXT:
	case KW_PRIOR:
	case KW_FIRST:
	case KW_LAST:
	case KW_ABSOLUTE:
	case KW_RELATIVE:
	case KW_ALL:
	case KW_FROM:
	case KW_IN:
		return true;
	default:
		return false;
	}
}


/*
 * Special handling of later tokens (cold: called with the state in n->t). Returns true when
 * the token is consumed; sets *repl when the token is to be written differently.
 */
FP_NOINLINE bool stmt_mode(struct norm *n, uint8_t ttype, int kw, enum repl *repl)
{
	bool second = n->t.ntok == 2;

	switch (n->mode) {
	case M_WITH:
		if (n->t.depth != 0 || ttype != TK_WORD)
			break;
		if (dml_kind(kw) < 0)
			return false;
		n->kind = (enum fp_kind)dml_kind(kw);
		n->mode = M_NONE;
		break;
	case M_START:
		if (second && kw == KW_TRANSACTION) {
			n->kind = FP_KIND_TXN;
			n->txn = FP_TXN_BEGIN;
		}
		n->mode = M_NONE;
		break;
	case M_PREPARE:
		if (second && kw == KW_TRANSACTION) {
			n->kind = FP_KIND_TXN;
			n->txn = FP_TXN_PREPARE;
		}
		n->mode = M_NONE;
		break;
	case M_COMMIT:
		if (second && kw == KW_PREPARED)
			n->txn = FP_TXN_COMMIT_PREPARED;
		n->mode = M_NONE;
		break;
	case M_ROLLBACK:
		if (second && kw == KW_PREPARED) {
			n->txn = FP_TXN_ROLLBACK_PREPARED;
		} else if (kw == KW_WORK || kw == KW_TRANSACTION) {
			return false;
		} else if (kw == KW_TO) {
			/* one text for ROLLBACK [WORK|TRANSACTION] TO [SAVEPOINT] name */
			rewind_to(&n->t, n, &n->rb, 0);
			emit_lit(&n->t, n, "to", KW_TO, KWF_SP | KWF_UN);
			emit_lit(&n->t, n, "savepoint", KW_SAVEPOINT, 0);
			n->txn = FP_TXN_ROLLBACK_TO;
			n->mode = M_SUPPRESS;
			return true;
		}
		n->mode = M_NONE;
		break;
	case M_SUPPRESS:
		return true;
	case M_DECLARE:
		if (ttype == TK_QIDENT || ttype == TK_WORD)
			*repl = R_CURSOR;
		n->mode = M_NONE;
		break;
	case M_CLOSE:
		if (ttype == TK_QIDENT || (ttype == TK_WORD && kw != KW_ALL))
			*repl = R_CURSOR;
		n->mode = M_NONE;
		break;
	case M_FETCH:
		if (n->t.depth == 0 &&
		    (ttype == TK_QIDENT || (ttype == TK_WORD && !fetch_direction(kw))))
			*repl = R_CURSOR;
		break;
	case M_SET:
		if (n->t.depth == 0 && kw == KW_TO)
			*repl = R_EQ;
		break;
	case M_CREATE:
		if (ttype != TK_WORD)
			break;
		if (kw == KW_ATOMIC && n->t.prev_kw == KW_BEGIN)
			n->atomic++;
		else if (n->atomic > 0 && kw == KW_CASE)
			n->atomic++;
		else if (n->atomic > 0 && kw == KW_END)
			n->atomic--;
		break;
	default:
		break;
	}
	return false;
}


/* Replacement tokens, padded for emit()'s word loads. */
static const unsigned char lit_eq[8] = "=", lit_ne[8] = "<>", lit_cursor[8] = "_", lit_u[8] = "u";

/* Whether a number starts at q (after a "-" that may be its sign). */
FP_INLINE bool number_at(const unsigned char *s, size_t len, size_t q)
{
	return q < len && (is_digit(s[q]) || (s[q] == '.' && q + 1 < len && is_digit(s[q + 1])));
}

/* NULL, TRUE, FALSE and LIMIT ALL are constants; "is null", "is not true" are predicates. */
FP_INLINE bool kw_is_const(int kw, int prev_kw)
{
	if (kw == KW_NULL || kw == KW_TRUE || kw == KW_FALSE)
		return prev_kw != KW_IS && prev_kw != KW_NOT;
	return kw == KW_ALL && prev_kw == KW_LIMIT;
}

/*
 * One token sql[ts..te) of the lexer's type ttype (and sub), in general: statement modes,
 * lists, keywords with a meaning of their own. kw/kwf: its keyword, when a word. Works on
 * n->t: it is out of line, to keep fp_next()'s loop small.
 */
FP_NOINLINE void stmt_token(struct norm *n, uint8_t ttype, uint8_t sub, size_t ts, size_t te,
			    int kw, uint8_t kwf)
{
	struct hot *t = &n->t;
	const unsigned char *src = n->s + ts;
	size_t sl = te - ts, avail = n->len - ts;
	uint8_t type = ttype, prev_kw = t->prev_kw;
	int how = 0;
	enum repl repl = R_NONE;

	t->ntok++;
	if (t->ntok == 1) {
		stmt_first(n, type, kw);
	} else if (n->mode != M_NONE) {
		if (stmt_mode(n, ttype, kw, &repl)) {
			if (type == TK_LPAREN || type == TK_LBRACK)
				t->depth++;
			else if ((type == TK_RPAREN || type == TK_RBRACK) && t->depth > 0)
				t->depth--;
			return;
		}
	}

	if (repl == R_EQ) {
		type = TK_OP;
		src = lit_eq;
		avail = sizeof(lit_eq);
		sl = 1;
		kw = KW_NONE;
		kwf = 0;
	} else if (type == TK_WORD) {
		how = 1;
		if (repl == R_CURSOR) {
			src = lit_cursor;
			avail = sizeof(lit_cursor);
			sl = 1;
			kw = KW_NONE;
			kwf = 0;
		} else if (kw_is_const(kw, prev_kw)) {
			type = TK_CONST;
		}
	} else if (type == TK_QIDENT && repl == R_CURSOR) {
		type = TK_WORD;
		src = lit_cursor;
		avail = sizeof(lit_cursor);
		sl = 1;
		how = 1;
	}
	if (type == TK_OP && sl == 2 && src[0] == '!' && src[1] == '=') {
		src = lit_ne; /* the server's lexer does the same */
		avail = sizeof(lit_ne);
	}
	if (type == TK_CONST && sub == CS_NUM && n->mode == M_FETCH) {
		/* a FETCH count is the cursor's chunk size, part of the statement */
		type = TK_NUMRAW;
		how = 0;
	} else if (type == TK_CONST) {
		feed_param(t, src, sl, avail, ttype == TK_WORD);
		how = 2;
		kw = KW_NONE;
		kwf = 0;
	}

	/* a VALUES list ends at the first top-level token that does not continue it */
	while (n->nl > 0 && type != TK_COMMA && type != TK_LPAREN &&
	       n->l[n->nl - 1].type == L_VALUES && n->l[n->nl - 1].depth == t->depth)
		list_pop(t, n);
	if (type == TK_RPAREN || type == TK_RBRACK) {
		if (t->depth > 0)
			t->depth--;
		while (n->nl > 0 && n->l[n->nl - 1].depth > t->depth)
			list_pop(t, n);
	} else if (type == TK_COMMA && n->nl > 0 && n->l[n->nl - 1].depth == t->depth) {
		struct lctx *c = &n->l[n->nl - 1];

		list_finish(t, n);
		take_snap(t, n, &c->snap);
		c->first = false;
		if (n->nl == 1 && c->nshapes > 0 && n->mode == M_NONE) {
			/* the next element may well repeat a shape: see skip_element() */
			n->skip = true;
			n->skip_at = ts;
		} else {
			emit(t, n, TK_COMMA, src, sl, avail, 0, KW_NONE, 0);
		}
		list_element(c);
		return;
	}
	if (n->nl > 0)
		list_track(n, type, kw);

	if (type == TK_QIDENT && sub == 1) {
		/* U&"..." : only the prefix folds */
		emit(t, n, type, lit_u, 1, sizeof(lit_u), 0, KW_NONE, 0);
		set_prev(t, TK_DOT, KW_NONE, 0); /* no space between the prefix and its quote */
		emit(t, n, type, src + 1, sl - 1, avail - 1, 0, KW_NONE, 0);
	} else {
		emit(t, n, type, src, sl, avail, how, kw, kwf);
	}

	switch (type) {
	case TK_LPAREN:
		t->depth++;
		if (prev_kw == KW_IN)
			list_push(t, n, L_IN);
		break;
	case TK_LBRACK:
		t->depth++;
		if (prev_kw == KW_ARRAY)
			list_push(t, n, L_ARRAY);
		break;
	case TK_WORD:
		if (kw == KW_VALUES)
			list_push(t, n, L_VALUES);
		if (t->ntok == 1) {
			if (kw == KW_ROLLBACK) {
				take_snap(t, n, &n->rb);
			} else if (kw == KW_SAVEPOINT) {
				n->mode = M_SUPPRESS;
			} else if (kw == KW_RELEASE) {
				emit_lit(t, n, "savepoint", KW_SAVEPOINT, 0);
				n->mode = M_SUPPRESS;
			}
		}
		break;
	default:
		break;
	}
}

/* "-" where an operand is expected is a sign when a number follows. */
FP_INLINE bool sign_allowed(const struct hot *t)
{
	switch (t->prev) {
	case TK_NONE:
	case TK_OP:
	case TK_LPAREN:
	case TK_LBRACK:
	case TK_COMMA:
	case TK_COLON:
		return true;
	case TK_WORD:
		return (t->prev_kwf & KWF_UN) != 0;
	default:
		return false;
	}
}

/*
 * For skip_element(): the tokens of constant rows, which keep an element constant-only, with
 * list_track() and the shape hash done for the one list c. Works on local copies of the
 * counters: stores through t or c would make the compiler reload everything after each
 * (sql is a char pointer, which may alias anything). Returns where it stopped: at a token it
 * leaves to the general code, which also sees the element's end, after blanks.
 */
FP_INLINE size_t skip_consts(struct hot *t, struct lctx *c, const unsigned char *s, size_t len,
			     size_t p, size_t *endp, uint8_t *prevp)
{
	size_t depth = t->depth, end = *endp, e;
	uint64_t eh = c->eh, ph = t->ph;
	unsigned nconst = t->nconst, ntok = t->ntok;
	bool cast = c->cast, has = c->has, in_values = c->type == L_VALUES;
	uint8_t prev = *prevp, type;

	for (;;) {
		unsigned char ch;

		if (p < len && s[p] == ' ')
			p++;
		if (p >= len || (cc[s[p]] & CC_BLANK))
			break;
		ch = s[p];
		switch (cc[ch] & CC_CLASS) {
		case C_DIG:
			e = number_end(s, len, p);
			goto constant;
		case C_SQ:
			e = scan_string(s, len, p + 1);
		constant:
			ph = fp_round(ph, chunk_hash(s + p, e - p, len - p, false));
			nconst++;
			eh = (eh ^ EH_PRIME ^ TK_CONST) * EH_PRIME;
			cast = false;
			type = TK_CONST;
			goto next;
		case C_COM:
			if (depth == c->depth)
				goto stop; /* the element's end */
			type = TK_COMMA;
			break;
		case C_LP:
			if (prev == TK_WORD)
				goto stop; /* "in (" starts a list */
			type = TK_LPAREN;
			depth++;
			break;
		case C_RP:
			if (depth == c->depth)
				goto stop; /* the list's end */
			type = TK_RPAREN;
			depth--; /* > c->depth >= 0 */
			break;
		case C_COL:
			if (p + 1 >= len || s[p + 1] != ':')
				goto stop;
			e = p + 2;
			eh = (eh ^ chunk_hash((const unsigned char *)"::", 2, 2, false) ^ TK_CAST) *
			     EH_PRIME;
			cast = true;
			type = TK_CAST;
			goto next;
		default:
			goto stop;
		}
		e = p + 1;
		eh = (eh ^ rotl64((EH_BASIS ^ 1 ^ ch) * FP_P1, 29) ^ type) * EH_PRIME;
	next:
		has = true;
		prev = type;
		ntok++;
		end = e;
		p = e;
		if (in_values && depth == c->depth)
			break; /* only '(' or ',' may continue the element: left to the caller */
	}
stop:
	t->depth = depth;
	t->ph = ph;
	t->nconst = nconst;
	t->ntok = ntok;
	c->eh = eh;
	c->cast = cast;
	c->has = has;
	*endp = end;
	*prevp = prev;
	return p;
}

/*
 * The elements after a held-back list comma (struct norm's skip), read without writing them:
 * most elements of long IN lists and bulk VALUES repeat the shape of an earlier one and are
 * dropped, so writing them only to rewind is wasted work. This does for each element what
 * stmt_token() does (list_track(), the shape hash, params_hash), up to the token that ends
 * it. A dropped element leaves the state as the rewind would; when a comma follows, it is
 * handled here as stmt_token() would (the next element is read the same way), else *p is left
 * at the token and stmt_token() finishes the element and the list as usual. Anything else (a
 * new shape, a token that is not a constant, a nested list) replays the element: the counters
 * go back, the comma is written and the element is read again the usual way. Only for a
 * single open list outside statement modes, which stmt_token() checks. Works on n->t.
 */
FP_NOINLINE void skip_element(struct norm *n, size_t *pp, size_t *endp)
{
	struct hot *t = &n->t;
	const unsigned char *s = n->s;
	size_t len = n->len, p = *pp, depth = t->depth;
	struct lctx *c = &n->l[0];
	uint64_t ph = t->ph;
	unsigned nconst = t->nconst, ntok = t->ntok;
	uint8_t prev = TK_COMMA, prev_kw = KW_NONE, prev_kwf = 0;

	n->skip = false;
	for (;;) {
		size_t ts, te, sl;
		uint8_t type, sub, kwf = 0;
		int kw = KW_NONE;
		uint64_t th;

		if (p < len && s[p] == ' ')
			p++;
		if (p < len && (cc[s[p]] & CC_BLANK)) {
			size_t cstart, cend = 0;

			p = skip_blank(s, len, p, &cstart, &cend);
			if (cstart != SIZE_MAX)
				*endp = cend;
		}
		ts = p;
		if (p >= len)
			goto ended;
		if (!c->pend && (t->depth != c->depth || c->type != L_VALUES)) {
			unsigned seen = t->ntok;
			size_t q = skip_consts(t, c, s, len, p, endp, &prev);

			if (t->ntok != seen) {
				prev_kw = KW_NONE;
				prev_kwf = 0;
			}
			if (q != p) {
				p = q;
				continue;
			}
		}
		te = lex(s, len, p, &type, &sub);
		if (type == TK_SEMI) {
			if (c->type == L_VALUES && t->depth == c->depth)
				goto ended;
			goto replay;
		}
		if (type == TK_OP && te - p == 1 && s[p] == '-' &&
		    (prev == TK_LPAREN || prev == TK_LBRACK || prev == TK_COMMA || prev == TK_OP ||
		     prev == TK_COLON || (prev == TK_WORD && (prev_kwf & KWF_UN)))) {
			size_t cs, ce, q = skip_blank(s, len, te, &cs, &ce);

			if (number_at(s, len, q)) {
				type = TK_CONST;
				sub = CS_NUM;
				te = scan_number(s, len, q);
			}
		}
		/* the tokens that end the element (stmt_token()'s list_pop() and comma) */
		if (t->depth == c->depth) {
			if (type == TK_COMMA) {
				if (!list_drops(c))
					goto replay;
				/* stmt_token() on this comma: rewind, snapshot change nothing */
				t->ntok++;
				*endp = te;
				n->skip_at = ts;
				ph = t->ph;
				nconst = t->nconst;
				ntok = t->ntok;
				prev = TK_COMMA;
				prev_kw = KW_NONE;
				prev_kwf = 0;
				list_element(c);
				p = te;
				continue;
			}
			if (c->type == L_VALUES ? type != TK_LPAREN
						: type == TK_RPAREN || type == TK_RBRACK)
				goto ended;
		}
		sl = te - p;
		if (type == TK_WORD) {
			kw = kw_lookup(s + p, sl, len - p, &kwf);
			if (kw == KW_VALUES)
				goto replay;
			if (kw_is_const(kw, prev_kw))
				type = TK_CONST;
		}
		if ((type == TK_QIDENT && sub != 0) || (type == TK_LPAREN && prev_kw == KW_IN) ||
		    (type == TK_LBRACK && prev_kw == KW_ARRAY))
			goto replay;
		list_track(n, type, kw);
		if (!c->cst)
			goto replay;
		if (type == TK_CONST) {
			feed_param(t, s + p, sl, len - p, kw != KW_NONE);
			th = EH_PRIME;
			kw = KW_NONE;
			kwf = 0;
		} else {
			size_t avail = len - p;

			th = EH_BASIS ^ sl;
			for (size_t i = 0; i < sl; i += 8) {
				size_t m = sl - i < 8 ? sl - i : 8;
				uint64_t x = load_upto(s + p + i, m, avail - i);

				th = rotl64((th ^ (type == TK_WORD ? lower8(x) : x)) * FP_P1, 29);
			}
		}
		c->eh = (c->eh ^ th ^ type) * EH_PRIME;
		if (type == TK_LPAREN || type == TK_LBRACK)
			t->depth++;
		else if ((type == TK_RPAREN || type == TK_RBRACK) && t->depth > 0)
			t->depth--;
		prev = type;
		prev_kw = (uint8_t)kw;
		prev_kwf = kwf;
		t->ntok++;
		*endp = te;
		p = te;
		continue;
	ended:
		if (!list_drops(c))
			goto replay;
		*pp = ts;
		return;
	}
replay:
	t->ph = ph;
	t->nconst = nconst;
	t->ntok = ntok;
	t->depth = depth;
	emit(t, n, TK_COMMA, s + n->skip_at, 1, len - n->skip_at, 0, KW_NONE, 0);
	list_element(c);
	*pp = n->skip_at + 1;
}

/*
 * The tokens inside a list element, outside statement modes: what stmt_token() does for them
 * minus what cannot happen. Returns the token's end, or 0 for the tokens that end an element
 * or a list, open a list, or need more thought (signs, special keywords): stmt_token() then.
 */
FP_INLINE size_t list_token(struct hot *t, struct norm *n, const unsigned char *s, size_t len,
			    size_t p)
{
	const struct lctx *c = &n->l[n->nl - 1];
	const unsigned char *src = s + p;
	size_t avail = len - p, e, sl;
	uint8_t type, sub, kwf = 0;
	int kw = KW_NONE, how = 0;

	e = lex(s, len, p, &type, &sub);
	sl = e - p;
	/* a VALUES list ends at the first top-level token that does not continue it */
	if (c->type == L_VALUES && c->depth == t->depth && type != TK_COMMA && type != TK_LPAREN)
		return 0;
	switch (type) {
	case TK_WORD:
		kw = kw_lookup(src, sl, avail, &kwf);
		if (kwf & KWF_SLOW)
			return 0;
		how = 1;
		break;
	case TK_QIDENT:
		if (sub != 0)
			return 0;
		break;
	case TK_CONST:
		feed_param(t, src, sl, avail, false);
		how = 2;
		break;
	case TK_OP:
		if (sl == 1 && *src == '-')
			return 0;
		if (sl == 2 && src[0] == '!' && src[1] == '=') {
			src = lit_ne;
			avail = sizeof(lit_ne);
		}
		break;
	case TK_LPAREN:
		if (t->prev_kw == KW_IN)
			return 0;
		break;
	case TK_LBRACK:
		if (t->prev_kw == KW_ARRAY)
			return 0;
		break;
	case TK_RPAREN:
	case TK_RBRACK:
		if (t->depth == 0 || c->depth >= t->depth)
			return 0;
		t->depth--;
		break;
	case TK_COMMA:
		if (c->depth == t->depth)
			return 0;
		break;
	case TK_SEMI:
		return 0;
	default:
		break;
	}
	list_track(n, type, kw);
	emit(t, n, type, src, sl, avail, how, kw, kwf);
	if (type == TK_LPAREN || type == TK_LBRACK)
		t->depth++;
	return e;
}

/*
 * The fast path for the commonest tokens of plain SQL (outside lists and statement modes;
 * the first token only when it is a word), lexed and written in one go. Returns the token's
 * end, or 0 when the token needs the general path (which then lexes it again).
 */
FP_INLINE size_t fast_token(struct hot *t, struct norm *n, const unsigned char *s, size_t len,
			    size_t p)
{
	const unsigned char *src = s + p;
	size_t avail = len - p, sl, e;
	unsigned char c = s[p];
	uint8_t type, kwf = 0;
	uint64_t w;
	int kw = KW_NONE;

	if (t->ntok == 0 && (cc[c] & CC_CLASS) != C_ID)
		return 0;
	switch (cc[c] & CC_CLASS) {
	case C_ID:
		/* E'...', B'...', U&'...', U&"..." are not words */
		if (p + 1 < len && (s[p + 1] == '\'' || s[p + 1] == '&'))
			return 0;
		e = ident_end(s, len, p);
		sl = e - p;
		w = lower8(load_upto(src, sl < 8 ? sl : 8, avail));
		if (sl <= KW_MAXLEN) {
			kw = kw_find(w, sl > 8 ? lower8(load_upto(src + 8, sl - 8, avail - 8)) : 0,
				     &kwf);
			if (kwf & KWF_SLOW)
				return 0;
		}
		if (t->ntok == 0) {
			/* these do more than set the kind: stmt_token() */
			if (kw == KW_ROLLBACK || kw == KW_SAVEPOINT || kw == KW_RELEASE)
				return 0;
			stmt_first(n, TK_WORD, kw);
		}
		put_tok(t, TK_WORD, w, src, sl, avail, true);
		set_prev(t, TK_WORD, (uint8_t)kw, kwf);
		return e;
	case C_DQ:
		e = scan_qident(s, len, p + 1);
		/*
		 * ORM column lists, "t"."a", "t"."b", normalize to themselves: a run of quoted
		 * names joined by "." or ", " is written whole.
		 */
		while (e + 2 < len) {
			if (s[e] == '.' && s[e + 1] == '"')
				e = scan_qident(s, len, e + 2);
			else if (s[e] == ',' && s[e + 1] == ' ' && s[e + 2] == '"')
				e = scan_qident(s, len, e + 3);
			else
				break;
			t->ntok += 2;
		}
		sl = e - p;
		w = load_upto(src, sl < 8 ? sl : 8, avail);
		put_tok(t, TK_QIDENT, w, src, sl, avail, false);
		set_prev(t, TK_QIDENT, KW_NONE, 0);
		return e;
	case C_DIG:
		e = number_end(s, len, p);
		goto constant;
	case C_SQ:
		e = scan_string(s, len, p + 1);
	constant:
		feed_param(t, src, e - p, avail, false);
		put_param(t, (t->spmask >> TK_CONST) & 1);
		set_prev(t, TK_CONST, KW_NONE, 0);
		return e;
	case C_COM:
		type = TK_COMMA;
		break;
	case C_DOT:
		if (p + 1 < len && is_digit(s[p + 1]))
			return 0;
		type = TK_DOT;
		break;
	case C_LP:
		if (t->prev_kw == KW_IN)
			return 0;
		t->depth++;
		type = TK_LPAREN;
		break;
	case C_RP:
		if (t->depth > 0)
			t->depth--;
		type = TK_RPAREN;
		break;
	case C_OP:
		if (c == '-')
			return 0; /* maybe a sign: fp_next() decides */
		e = scan_op(s, len, p);
		sl = e - p;
		w = load_upto(src, sl < 8 ? sl : 8, avail);
		if (w == ('!' | '=' << 8))
			w = '<' | '>' << 8; /* the server's lexer does the same */
		put_tok(t, TK_OP, w, src, sl, avail, false);
		set_prev(t, TK_OP, KW_NONE, 0);
		return e;
	case C_COL:
		if (p + 1 < len && s[p + 1] == ':') {
			put_tok(t, TK_CAST, ':' | ':' << 8, src, 2, avail, false);
			set_prev(t, TK_CAST, KW_NONE, 0);
			return p + 2;
		}
		return 0;
	default:
		return 0;
	}
	put_tok(t, type, c, src, 1, avail, false);
	set_prev(t, type, KW_NONE, 0);
	return p + 1;
}

bool fp_next(const char *sql, size_t len, size_t *pos, char *out, size_t outcap, struct fp_stmt *st)
{
	const unsigned char *s = (const unsigned char *)sql;
	struct norm n;
	struct hot t;
	bool started = false, plain = true; /* no list, no statement mode */
	size_t p = *pos < len ? *pos : len, start = 0, end = 0;
	uint64_t h;

	n.s = s;
	n.len = len;
	n.mode = M_NONE;
	n.kind = FP_KIND_EMPTY;
	n.txn = FP_TXN_NONE;
	n.atomic = 0;
	n.nl = 0;
	n.skip = false;
	t.h = FP_SEED_ID;
	t.acc = 0;
	t.tlen = 0;
	t.out = out;
	t.lim = out != NULL && outcap > 0 ? outcap - 1 : 0;
	t.ph = FP_SEED_PARAMS;
	t.nparam = t.nconst = t.ntok = 0;
	t.depth = 0;
	set_prev(&t, TK_NONE, KW_NONE, 0);

	for (;;) {
		size_t ts, te;
		uint8_t type, sub, kwf = 0;
		int kw = KW_NONE;

		if (n.skip) {
			COLD(&t, &n, skip_element(&n, &p, &end));
			continue;
		}
		/* most tokens follow one space or none: only go to skip_blank for more */
		if (p < len && s[p] == ' ')
			p++;
		if (p < len && (cc[s[p]] & CC_BLANK)) {
			size_t cstart, cend = 0;

			p = skip_blank(s, len, p, &cstart, &cend);
			if (cstart != SIZE_MAX) {
				if (!started) {
					started = true;
					start = cstart;
				}
				end = cend;
			}
		}
		if (p >= len)
			break;
		if (plain && (te = fast_token(&t, &n, s, len, p)) != 0) {
			if (!started) {
				started = true;
				start = p;
			}
			t.ntok++;
			p = end = te;
			plain = n.mode == M_NONE; /* stmt_first() may set one */
			continue;
		}
		if (n.nl > 0 && n.mode == M_NONE && (te = list_token(&t, &n, s, len, p)) != 0) {
			t.ntok++;
			p = end = te;
			continue;
		}
		ts = p;
		te = lex(s, len, p, &type, &sub);
		p = te;
		if (type == TK_SEMI && t.depth == 0 && n.atomic == 0) {
			if (t.ntok > 0)
				break;
			started = false; /* an empty statement */
			continue;
		}
		if (type == TK_OP && te - ts == 1 && s[ts] == '-' && sign_allowed(&t)) {
			size_t cs, ce, q = skip_blank(s, len, p, &cs, &ce);

			if (number_at(s, len, q)) {
				type = TK_CONST;
				sub = CS_NUM;
				p = te = scan_number(s, len, q);
			}
		}
		if (!started) {
			started = true;
			start = ts;
		}
		end = te;
		if (type == TK_WORD)
			kw = kw_lookup(s + ts, te - ts, len - ts, &kwf);
		COLD(&t, &n, stmt_token(&n, type, sub, ts, te, kw, kwf));
		plain = n.nl == 0 && n.mode == M_NONE;
	}
	while (n.nl > 0)
		list_pop(&t, &n);

	h = t.h;
	if (t.tlen & 7)
		h = fp_round(h, t.acc);
	st->id = fmix64(h ^ t.tlen);
	st->params_hash = fmix64(t.ph ^ t.nconst);
	st->kind = t.ntok > 0 ? n.kind : FP_KIND_EMPTY;
	st->txn = n.txn;
	st->nconst = t.nconst;
	st->full_len = t.tlen;
	st->norm_len = t.tlen < t.lim ? t.tlen : t.lim;
	if (out != NULL && outcap > 0)
		out[st->norm_len] = '\0';
	st->start = started ? start : p;
	st->end = started ? end : p;
	*pos = p;
	return t.ntok > 0;
}

/* Whether s[p..len) starts with the word w (lowercase letters and '_'), in any case. */
static bool word_is(const unsigned char *s, size_t len, size_t p, const char *w)
{
	size_t n = strlen(w);
	if (len - p < n || strncasecmp((const char *)s + p, w, n) != 0)
		return false;
	return p + n == len || !(cc[s[p + n]] & CC_IDC);
}

/* The next word after the one at p (which ends where ident_end says), past blanks. */
static size_t next_word(const unsigned char *s, size_t len, size_t p)
{
	size_t cs, ce;
	return skip_blank(s, len, p < len ? ident_end(s, len, p) : len, &cs, &ce);
}

/* A word w at or after p before the statement's end (a ';', or len). */
static bool has_word(const unsigned char *s, size_t len, size_t p, const char *w)
{
	for (; p < len && s[p] != ';'; p++)
		if ((p == 0 || !(cc[s[p - 1]] & CC_IDC)) && word_is(s, len, p, w))
			return true;
	return false;
}

/* What the statement whose first word is at p says by its first words. */
static int session_effect_head(const unsigned char *s, size_t len, size_t p)
{
	if (p >= len)
		return 0;
	switch (s[p] | 0x20) {
	case 'a':
		return word_is(s, len, p, "abort") ? FP_HELD_RELEASES : 0;
	case 'c':
		if (word_is(s, len, p, "close"))
			return FP_HELD_RELEASES;
		if (!word_is(s, len, p, "create"))
			return 0;
		p = next_word(s, len, p);
		if (word_is(s, len, p, "or")) /* OR REPLACE TEMP VIEW */
			p = next_word(s, len, next_word(s, len, p));
		if (word_is(s, len, p, "global") || word_is(s, len, p, "local"))
			p = next_word(s, len, p);
		return word_is(s, len, p, "temp") || word_is(s, len, p, "temporary") ? FP_HELD_TAKES
										    : 0;
	case 'd':
		if (word_is(s, len, p, "declare")) /* WITHOUT HOLD counts too */
			return has_word(s, len, p, "hold") ? FP_HELD_TAKES : 0;
		return word_is(s, len, p, "drop") || word_is(s, len, p, "discard") ? FP_HELD_RELEASES
										    : 0;
	case 'l':
		return word_is(s, len, p, "listen") ? FP_HELD_TAKES : 0;
	case 'r':
		return word_is(s, len, p, "rollback") ? FP_HELD_RELEASES : 0;
	case 's':
		return word_is(s, len, p, "set") ? FP_HELD_MAYBE_SET : 0;
	case 'u':
		return word_is(s, len, p, "unlisten") ? FP_HELD_RELEASES : 0;
	default:
		return 0;
	}
}

/* Bit 7 set in the bytes of x that are c (exactly: no carry crosses bytes). */
static inline uint64_t bytes_eq(uint64_t x, unsigned char c)
{
	const uint64_t ones = 0x0101010101010101ull, hi = ones << 7;
	uint64_t y = x ^ (ones * c);
	return ~(((y & ~hi) + ~hi) | y) & hi;
}

/* What the byte at p may start: a next statement, a function name's part, INTO TEMP. */
static int session_effect_at(const unsigned char *s, size_t len, size_t p)
{
	size_t cs, ce;
	unsigned char c = s[p];
	if (c == ';') /* the next statement's first words (one too many in a literal) */
		return session_effect_head(s, len, skip_blank(s, len, p + 1, &cs, &ce));
	if (c == '_') {
		if (p + 1 == len)
			return 0;
		unsigned char d = s[p + 1] | 0x20;
		/* pg_[try_]advisory_[un]lock[_shared]; the _xact_ ones end with their transaction */
		if (d == 'a' && (word_is(s, len, p + 1, "advisory_lock") ||
				 word_is(s, len, p + 1, "advisory_lock_shared")))
			return FP_HELD_TAKES;
		if (d == 'a' && len - (p + 1) >= 15 &&
		    strncasecmp((const char *)s + p + 1, "advisory_unlock", 15) == 0)
			return FP_HELD_RELEASES;
		if (d == 'c' && p >= 3 && strncasecmp((const char *)s + p - 3, "set", 3) == 0 &&
		    word_is(s, len, p + 1, "config"))
			return FP_HELD_SETS; /* is_local is a parameter: assume false */
		return 0;
	}
	/* c is 'i' or 'I': SELECT ... INTO TEMP [TABLE] t */
	if (p + 1 == len || (s[p + 1] | 0x20) != 'n' || (p > 0 && (cc[s[p - 1]] & CC_IDC)) ||
	    !word_is(s, len, p, "into"))
		return 0;
	size_t q = next_word(s, len, p);
	return word_is(s, len, q, "temp") || word_is(s, len, q, "temporary") ? FP_HELD_TAKES : 0;
}

int fp_session_effect(const char *sql, size_t len)
{
	const unsigned char *s = (const unsigned char *)sql;
	size_t cs, ce, p = 0;
	int held = session_effect_head(s, len, skip_blank(s, len, 0, &cs, &ce));
	/* Eight bytes at a time to the next ';', '_', 'i' or 'I'. */
	for (; p + 8 <= len; p += 8) {
		uint64_t x = load_le64(s + p);
		uint64_t m = bytes_eq(x, ';') | bytes_eq(x, '_') | bytes_eq(x | 0x2020202020202020ull, 'i');
		while (m) {
			held |= session_effect_at(s, len, p + ((unsigned)__builtin_ctzll(m) >> 3));
			m &= m - 1;
		}
	}
	for (; p < len; p++)
		if (s[p] == ';' || s[p] == '_' || (s[p] | 0x20) == 'i')
			held |= session_effect_at(s, len, p);
	return held;
}
