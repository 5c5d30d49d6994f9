/* fingerprint: one-pass SQL normalizer, 64-bit query fingerprints and sqlcommenter tags. */
#include "fingerprint.h"

#include <string.h>

/*
 * The lexer follows PostgreSQL's scanner (src/backend/parser/scan.l) closely enough that
 * statement boundaries and token kinds agree with the server for valid SQL, but it never
 * fails: malformed input (unterminated quotes, stray bytes) still yields tokens and an id.
 * See doc/fingerprint.md for the rules; the comments here say why the code looks as it does.
 */

/* ---- the hash (specified in doc/fingerprint.md; changing it means bumping FP_VERSION) ---- */

#define FP_P1 0x9E3779B185EBCA87ull
#define FP_P2 0xC2B2AE3D27D4EB4Full
#define FP_SEED_ID 0x70677466702d6964ull     /* "pgtfp-id" */
#define FP_SEED_PARAMS 0x70677466702d7061ull /* "pgtfp-pa" */

static inline uint64_t rotl64(uint64_t x, unsigned r)
{
	return (x << r) | (x >> (64 - r));
}

static inline uint64_t fp_round(uint64_t h, uint64_t w)
{
	return rotl64(h ^ (w * FP_P2), 31) * FP_P1;
}

static inline uint64_t fmix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xFF51AFD7ED558CCDull;
	h ^= h >> 33;
	h *= 0xC4CEB9FE1A85EC53ull;
	h ^= h >> 33;
	return h;
}

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

/* clang-format off */
static const uint8_t cc[256] = {
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 0x00 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 0x08 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 0x10 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 0x18 */
	0x00, 0x26, 0x04, 0x26, 0x15, 0x26, 0x26, 0x03, /* 0x20 */
	0x07, 0x08, 0x26, 0x26, 0x0b, 0x26, 0x0e, 0x26, /* 0x28 */
	0x12, 0x12, 0x12, 0x12, 0x12, 0x12, 0x12, 0x12, /* 0x30 */
	0x12, 0x12, 0x0d, 0x0c, 0x26, 0x26, 0x26, 0x26, /* 0x38 */
	0x26, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0x40 */
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0x48 */
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0x50 */
	0x11, 0x11, 0x11, 0x09, 0x0f, 0x0a, 0x26, 0x11, /* 0x58 */
	0x26, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0x60 */
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0x68 */
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, /* 0x70 */
	0x11, 0x11, 0x11, 0x0f, 0x26, 0x0f, 0x26, 0x00, /* 0x78 */
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

static inline unsigned char lower(unsigned char c)
{
	return (unsigned)(c - 'A') < 26u ? (unsigned char)(c + 32) : c;
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
#define KWF_SP 1 /* a '(' after it gets a space: "in (", not a function call "in(" */
#define KWF_UN 2 /* a '-' right after it is a sign: "limit -1" */
#define KW_MAXLEN 11

struct kwent {
	char s[KW_MAXLEN + 1];
	uint8_t len;
	uint8_t kw;
	uint8_t flags;
};

/* clang-format off */
#define KW_HASH_MUL 0x41c1602fu
static const struct kwent kwtab[94] = {
	{"first", 5, KW_FIRST, 0}, {"any", 3, KW_ANY, KWF_UN}, {"delete", 6, KW_DELETE, 0},
	{"savepoint", 9, KW_SAVEPOINT, 0}, {"distinct", 8, KW_DISTINCT, KWF_SP | KWF_UN},
	{"some", 4, KW_SOME, KWF_UN}, {"reset", 5, KW_RESET, 0},
	{"between", 7, KW_BETWEEN, KWF_SP | KWF_UN}, {"check", 5, KW_CHECK, KWF_SP},
	{"prepare", 7, KW_PREPARE, 0}, {"and", 3, KW_AND, KWF_SP | KWF_UN},
	{"join", 4, KW_JOIN, KWF_SP}, {"end", 3, KW_END, 0}, {"merge", 5, KW_MERGE, 0},
	{"unique", 6, KW_UNIQUE, KWF_SP}, {"when", 4, KW_WHEN, KWF_SP | KWF_UN},
	{"else", 4, KW_ELSE, KWF_SP | KWF_UN}, {"declare", 7, KW_DECLARE, 0},
	{"over", 4, KW_OVER, KWF_SP}, {"not", 3, KW_NOT, KWF_SP | KWF_UN},
	{"offset", 6, KW_OFFSET, KWF_SP | KWF_UN}, {"transaction", 11, KW_TRANSACTION, 0},
	{"except", 6, KW_EXCEPT, KWF_SP}, {"intersect", 9, KW_INTERSECT, KWF_SP},
	{"on", 2, KW_ON, KWF_SP | KWF_UN}, {"conflict", 8, KW_CONFLICT, KWF_SP},
	{"last", 4, KW_LAST, 0}, {"false", 5, KW_FALSE, 0}, {"work", 4, KW_WORK, 0},
	{"absolute", 8, KW_ABSOLUTE, KWF_UN}, {"as", 2, KW_AS, KWF_SP},
	{"case", 4, KW_CASE, KWF_SP | KWF_UN}, {"union", 5, KW_UNION, KWF_SP},
	{"by", 2, KW_BY, KWF_SP | KWF_UN}, {"array", 5, KW_ARRAY, 0},
	{"is", 2, KW_IS, KWF_SP | KWF_UN}, {"ilike", 5, KW_ILIKE, KWF_SP | KWF_UN},
	{"then", 4, KW_THEN, KWF_SP | KWF_UN}, {"abort", 5, KW_ABORT, 0},
	{"filter", 6, KW_FILTER, KWF_SP}, {"copy", 4, KW_COPY, KWF_SP},
	{"backward", 8, KW_BACKWARD, KWF_UN}, {"fetch", 5, KW_FETCH, KWF_UN},
	{"listen", 6, KW_LISTEN, 0}, {"into", 4, KW_INTO, 0},
	{"select", 6, KW_SELECT, KWF_SP | KWF_UN}, {"move", 4, KW_MOVE, KWF_UN},
	{"using", 5, KW_USING, KWF_SP}, {"show", 4, KW_SHOW, 0},
	{"limit", 5, KW_LIMIT, KWF_SP | KWF_UN}, {"group", 5, KW_GROUP, KWF_SP},
	{"create", 6, KW_CREATE, 0}, {"true", 4, KW_TRUE, 0}, {"do", 2, KW_DO, KWF_SP},
	{"all", 3, KW_ALL, KWF_SP | KWF_UN}, {"references", 10, KW_REFERENCES, KWF_SP},
	{"prior", 5, KW_PRIOR, 0}, {"start", 5, KW_START, 0}, {"notify", 6, KW_NOTIFY, 0},
	{"with", 4, KW_WITH, KWF_SP}, {"update", 6, KW_UPDATE, 0}, {"begin", 5, KW_BEGIN, 0},
	{"to", 2, KW_TO, KWF_SP | KWF_UN}, {"like", 4, KW_LIKE, KWF_SP | KWF_UN},
	{"insert", 6, KW_INSERT, KWF_SP}, {"in", 2, KW_IN, KWF_SP | KWF_UN},
	{"deallocate", 10, KW_DEALLOCATE, 0}, {"having", 6, KW_HAVING, KWF_SP | KWF_UN},
	{"key", 3, KW_KEY, KWF_SP}, {"rollback", 8, KW_ROLLBACK, 0},
	{"release", 7, KW_RELEASE, 0}, {"execute", 7, KW_EXECUTE, 0},
	{"or", 2, KW_OR, KWF_SP | KWF_UN}, {"atomic", 6, KW_ATOMIC, 0},
	{"default", 7, KW_DEFAULT, KWF_UN}, {"discard", 7, KW_DISCARD, 0},
	{"next", 4, KW_NEXT, 0}, {"close", 5, KW_CLOSE, 0}, {"lateral", 7, KW_LATERAL, KWF_SP},
	{"values", 6, KW_VALUES, KWF_SP}, {"exists", 6, KW_EXISTS, KWF_SP},
	{"forward", 7, KW_FORWARD, KWF_UN}, {"prepared", 8, KW_PREPARED, 0},
	{"returning", 9, KW_RETURNING, KWF_SP | KWF_UN}, {"also", 4, KW_ALSO, KWF_SP},
	{"table", 5, KW_TABLE, KWF_SP}, {"null", 4, KW_NULL, 0}, {"unlisten", 8, KW_UNLISTEN, 0},
	{"commit", 6, KW_COMMIT, 0}, {"set", 3, KW_SET, KWF_SP},
	{"similar", 7, KW_SIMILAR, KWF_SP | KWF_UN}, {"relative", 8, KW_RELATIVE, KWF_UN},
	{"where", 5, KW_WHERE, KWF_SP | KWF_UN}, {"from", 4, KW_FROM, KWF_SP},
};
static const uint8_t kwidx[129] = {
	0, 0, 1, 2, 3, 3, 4, 5, 5, 6, 7, 8, 8, 8, 9, 10,
	10, 11, 12, 12, 14, 14, 14, 14, 14, 16, 16, 17, 19, 19, 19, 20,
	21, 22, 22, 23, 23, 23, 24, 25, 25, 25, 26, 27, 28, 29, 31, 31,
	31, 32, 33, 33, 34, 36, 38, 38, 38, 39, 40, 40, 40, 41, 42, 44,
	44, 45, 45, 46, 47, 48, 49, 49, 50, 51, 51, 51, 53, 53, 54, 54,
	56, 57, 57, 57, 57, 58, 59, 59, 59, 60, 60, 61, 63, 63, 63, 64,
	65, 66, 67, 67, 67, 69, 69, 70, 71, 72, 73, 73, 74, 75, 76, 77,
	79, 79, 80, 81, 82, 82, 83, 84, 86, 88, 88, 89, 90, 91, 91, 93,
	94,
};
/* clang-format on */

static inline unsigned kw_bucket(uint32_t c0, uint32_t c1, uint32_t clast, uint32_t len)
{
	uint32_t key = c0 | (c1 << 8) | (clast << 16) | (len << 24);

	return (uint32_t)(key * KW_HASH_MUL) >> 25;
}

/* Keyword of the word s[0..len) (any case), or KW_NONE. */
static int kw_lookup(const unsigned char *s, size_t len, uint8_t *flags)
{
	*flags = 0;
	if (len < 2 || len > KW_MAXLEN)
		return KW_NONE;
	unsigned b = kw_bucket(lower(s[0]), lower(s[1]), lower(s[len - 1]), (uint32_t)len);
	for (unsigned i = kwidx[b]; i < kwidx[b + 1]; i++) {
		const struct kwent *k = &kwtab[i];
		size_t j;

		if (k->len != len)
			continue;
		/* keywords are all letters, so (c | 0x20) matches exactly their two cases */
		for (j = 0; j < len && (s[j] | 0x20) == (unsigned char)k->s[j]; j++)
			;
		if (j == len) {
			*flags = k->flags;
			return k->kw;
		}
	}
	return KW_NONE;
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

struct token {
	uint8_t type;
	uint8_t sub; /* for TK_CONST: enum csub; for TK_QIDENT: 1 when U&"..." */
	size_t s, e; /* sql[s..e) */
};

struct lexer {
	const unsigned char *s;
	size_t len;
	size_t p;
	size_t cstart; /* first comment of the last skip, SIZE_MAX if none */
	size_t cend;   /* end of the last comment seen */
};

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

static void skip_blank(struct lexer *lx)
{
	const unsigned char *s = lx->s;
	size_t p = lx->p, len = lx->len;

	lx->cstart = SIZE_MAX;
	while (p < len) {
		unsigned char c = s[p];

		if ((cc[c] & CC_CLASS) == C_WS) {
			p++;
		} else if (c == '-' && p + 1 < len && s[p + 1] == '-') {
			if (lx->cstart == SIZE_MAX)
				lx->cstart = p;
			for (p += 2; p < len && s[p] != '\n' && s[p] != '\r'; p++)
				;
			lx->cend = p;
		} else if (c == '/' && p + 1 < len && s[p + 1] == '*') {
			if (lx->cstart == SIZE_MAX)
				lx->cstart = p;
			p = skip_block_comment(s, len, p);
			lx->cend = p;
		} else {
			break;
		}
	}
	lx->p = p;
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
		const unsigned char *q = p < len ? memchr(s + p, '\'', len - p) : NULL;
		size_t r;

		if (q == NULL)
			return len;
		p = (size_t)(q - s) + 1;
		if (p < len && s[p] == '\'') {
			p++;
			continue;
		}
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
static size_t scan_qident(const unsigned char *s, size_t len, size_t p)
{
	for (;;) {
		const unsigned char *q = p < len ? memchr(s + p, '"', len - p) : NULL;

		if (q == NULL)
			return len;
		p = (size_t)(q - s) + 1;
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

static void lex(struct lexer *lx, struct token *t)
{
	const unsigned char *s = lx->s;
	size_t len = lx->len, p, r;
	unsigned char c;

	p = lx->p;
	/* most tokens follow one space or none: only go to skip_blank for more */
	if (p < len && s[p] == ' ')
		lx->p = ++p;
	if (p < len && ((cc[s[p]] & CC_CLASS) == C_WS || s[p] == '-' || s[p] == '/')) {
		skip_blank(lx);
		p = lx->p;
	} else {
		lx->cstart = SIZE_MAX;
	}
	t->s = p;
	t->sub = 0;
	if (p >= len) {
		t->type = TK_END;
		t->e = p;
		return;
	}
	c = s[p];
	switch (cc[c] & CC_CLASS) {
	case C_ID:
		if (p + 1 < len && s[p + 1] == '\'') {
			switch (c) {
			case 'e':
			case 'E':
				t->type = TK_CONST;
				t->sub = CS_STR;
				p = scan_estring(s, len, p + 2);
				goto done;
			case 'b':
			case 'B':
			case 'x':
			case 'X':
			case 'n':
			case 'N':
				t->type = TK_CONST;
				t->sub = CS_STR;
				p = scan_string(s, len, p + 2);
				goto done;
			default:
				break;
			}
		}
		if ((c == 'u' || c == 'U') && p + 2 < len && s[p + 1] == '&') {
			if (s[p + 2] == '\'') {
				t->type = TK_CONST;
				t->sub = CS_STR;
				p = scan_string(s, len, p + 3);
				goto done;
			}
			if (s[p + 2] == '"') {
				t->type = TK_QIDENT;
				t->sub = 1;
				p = scan_qident(s, len, p + 3);
				goto done;
			}
		}
		for (p++; p < len && (cc[s[p]] & CC_IDC); p++)
			;
		t->type = TK_WORD;
		break;
	case C_DIG:
		t->type = TK_CONST;
		t->sub = CS_NUM;
		p = scan_number(s, len, p);
		break;
	case C_DOT:
		if (p + 1 < len && is_digit(s[p + 1])) {
			t->type = TK_CONST;
			t->sub = CS_NUM;
			p = scan_number(s, len, p);
		} else {
			t->type = TK_DOT;
			p++;
		}
		break;
	case C_SQ:
		t->type = TK_CONST;
		t->sub = CS_STR;
		p = scan_string(s, len, p + 1);
		break;
	case C_DQ:
		t->type = TK_QIDENT;
		p = scan_qident(s, len, p + 1);
		break;
	case C_DOL:
		if (p + 1 < len && is_digit(s[p + 1])) {
			t->type = TK_CONST;
			t->sub = CS_PARAM;
			for (p++; p < len && is_digit(s[p]); p++)
				;
		} else if ((r = scan_dollar(s, len, p)) != 0) {
			t->type = TK_CONST;
			t->sub = CS_STR;
			p = r;
		} else {
			t->type = TK_OTHER;
			p++;
		}
		break;
	case C_OP:
		t->type = TK_OP;
		p = scan_op(s, len, p);
		break;
	case C_LP:
		t->type = TK_LPAREN;
		p++;
		break;
	case C_RP:
		t->type = TK_RPAREN;
		p++;
		break;
	case C_LB:
		t->type = TK_LBRACK;
		p++;
		break;
	case C_RB:
		t->type = TK_RBRACK;
		p++;
		break;
	case C_COM:
		t->type = TK_COMMA;
		p++;
		break;
	case C_SEMI:
		t->type = TK_SEMI;
		p++;
		break;
	case C_COL:
		if (p + 1 < len && s[p + 1] == ':') {
			t->type = TK_CAST;
			p += 2;
		} else if (p + 1 < len && s[p + 1] == '=') {
			t->type = TK_OP; /* ":=" of named arguments */
			p += 2;
		} else {
			t->type = TK_COLON;
			p++;
		}
		break;
	default:
		t->type = TK_OTHER;
		p++;
		break;
	}
done:
	lx->p = p;
	t->e = p;
}

/* ---- the normalizer ---- */

#define FP_LIST_MAX 4 /* nesting of collapsible lists; deeper ones are kept as written */
#define FP_WIN 256    /* normalized text gathered before it is hashed and copied out */
#define FP_SHAPES 8   /* distinct element shapes remembered per list */
#define EH_BASIS 0xcbf29ce484222325ull
#define EH_PRIME 0x100000001b3ull

enum list_type { L_IN, L_ARRAY, L_VALUES };

/* Everything a dropped list element may have changed, taken before its separating comma. */
struct snap {
	uint64_t h;
	size_t hashed, wl;
	uint64_t tail; /* the wl < 8 pending bytes */
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
	struct lexer lx;
	char *out;
	size_t lim; /* bytes of out usable for text (cap - 1), 0 without out */
	/*
	 * The text is gathered in win and hashed a word at a time when win fills up: text
	 * [0..hashed) went into h (and out), text [hashed..hashed+wl) is in win.
	 */
	uint64_t h;
	size_t hashed, wl;
	uint64_t ph; /* params_hash so far */
	unsigned nparam, nconst, ntok;
	uint8_t prev, prev_kw, prev_kwf;
	uint8_t mode;
	enum fp_kind kind;
	enum fp_txn txn;
	size_t depth;
	unsigned atomic; /* BEGIN ATOMIC / CASE nesting inside CREATE */
	int nl;
	struct lctx l[FP_LIST_MAX];
	struct snap rb; /* after "rollback", to rewrite ROLLBACK WORK TO as ROLLBACK TO */
	unsigned char win[FP_WIN + 8];
};

/* Hash and copy out the whole words of win; fewer than 8 bytes stay. */
static void flush(struct norm *n)
{
	size_t full = n->wl & ~(size_t)7;
	uint64_t h = n->h;

	for (size_t i = 0; i < full; i += 8)
		h = fp_round(h, load_le64(n->win + i));
	n->h = h;
	if (n->hashed < n->lim) {
		size_t room = n->lim - n->hashed;

		memcpy(n->out + n->hashed, n->win, full < room ? full : room);
	}
	n->hashed += full;
	n->wl -= full;
	if (full > 0)
		memcpy(n->win, n->win + full, 8);
}

/*
 * Append k bytes of text, eight at a time; avail >= k bytes may be read from p (8 or more
 * allows whole-word loads). Bytes of win past wl may hold anything.
 */
#define FP_INLINE static inline __attribute__((always_inline))

FP_INLINE void put_bytes(struct norm *n, const unsigned char *p, size_t k, size_t avail, bool fold)
{
	while (k > 0) {
		size_t m = k < 8 ? k : 8;
		uint64_t x = 0;

		if (n->wl > FP_WIN - 8)
			flush(n);
		if (avail >= 8) {
			x = load_le64(p);
		} else {
			for (size_t j = 0; j < m; j++)
				x |= (uint64_t)p[j] << (8 * j);
		}
		if (fold)
			x = lower8(x);
		store_le64(n->win + n->wl, x);
		n->wl += m;
		p += m;
		k -= m;
		avail -= m;
	}
}

FP_INLINE void put_space(struct norm *n)
{
	if (n->wl > FP_WIN - 8)
		flush(n);
	n->win[n->wl++] = ' ';
}

/* The pending bytes of win as a zero-padded word. */
static uint64_t tail_word(const struct norm *n)
{
	uint64_t x = load_le64(n->win);

	return n->wl ? x & (~0ull >> (64 - 8 * n->wl)) : 0;
}

static void take_snap(struct norm *n, struct snap *sn)
{
	flush(n);
	sn->h = n->h;
	sn->hashed = n->hashed;
	sn->wl = n->wl;
	sn->tail = tail_word(n);
	sn->nparam = n->nparam;
	sn->prev = n->prev;
	sn->prev_kw = n->prev_kw;
	sn->prev_kwf = n->prev_kwf;
	for (int i = 0; i < n->nl; i++)
		sn->eh[i] = n->l[i].eh;
}

/* Restore the text state, and the shapes of the first nl_keep lists. */
static void rewind_to(struct norm *n, const struct snap *sn, int nl_keep)
{
	n->h = sn->h;
	n->hashed = sn->hashed;
	n->wl = sn->wl;
	store_le64(n->win, sn->tail);
	n->nparam = sn->nparam;
	n->prev = sn->prev;
	n->prev_kw = sn->prev_kw;
	n->prev_kwf = sn->prev_kwf;
	for (int i = 0; i < nl_keep; i++)
		n->l[i].eh = sn->eh[i];
}

FP_INLINE bool need_space(const struct norm *n, uint8_t cur)
{
	if (cur == TK_NUMRAW)
		return n->prev != TK_NONE && n->prev != TK_LPAREN;
	switch (n->prev) {
	case TK_NUMRAW:
		return true;
	case TK_NONE:
	case TK_LPAREN:
	case TK_LBRACK:
	case TK_DOT:
	case TK_CAST:
		return false;
	case TK_COLON:
		/* ": =", ": :" must not become ":=", "::" */
		return cur == TK_OP || cur == TK_COLON || cur == TK_CAST;
	default:
		break;
	}
	switch (cur) {
	case TK_RPAREN:
	case TK_RBRACK:
	case TK_COMMA:
	case TK_DOT:
	case TK_CAST:
	case TK_COLON:
	case TK_SEMI:
		return false;
	case TK_LBRACK:
		return n->prev != TK_WORD && n->prev != TK_QIDENT && n->prev != TK_CONST &&
		       n->prev != TK_RPAREN && n->prev != TK_RBRACK;
	case TK_LPAREN:
		/* a function call keeps its parenthesis; "in (", "values (" do not */
		return n->prev != TK_WORD || (n->prev_kwf & KWF_SP);
	default:
		return true;
	}
}

/*
 * A quick hash of k bytes at p (avail >= k readable), a word at a time: used for list
 * element shapes and constant values, which are compared, never shown or specified.
 */
FP_INLINE uint64_t chunk_hash(const unsigned char *p, size_t k, size_t avail, bool fold)
{
	uint64_t th = EH_BASIS ^ k;

	while (k > 0) {
		size_t m = k < 8 ? k : 8;
		uint64_t x = 0;

		if (avail >= 8) {
			x = load_le64(p);
			if (m < 8)
				x &= (1ull << (8 * m)) - 1;
		} else {
			for (size_t j = 0; j < m; j++)
				x |= (uint64_t)p[j] << (8 * j);
		}
		if (fold)
			x = lower8(x);
		th = rotl64((th ^ x) * FP_P1, 29);
		p += m;
		k -= m;
		avail -= m;
	}
	return th;
}

/*
 * Write one token; avail >= sl bytes are readable at src. how: 0 raw bytes, 1 lowercased,
 * 2 placeholder. The lists being written see the token through their shape hash, in which
 * placeholders are unnumbered.
 */
FP_INLINE void emit(struct norm *n, uint8_t type, const unsigned char *src, size_t sl, size_t avail,
		    int how, int kw, uint8_t kwf)
{
	if (need_space(n, type))
		put_space(n);
	if (how == 2) {
		unsigned char buf[16] = {'$'};
		char num[12];
		size_t bl = 1;
		int k = 0;
		unsigned v = ++n->nparam;

		do {
			num[k++] = (char)('0' + v % 10);
			v /= 10;
		} while (v);
		while (k > 0)
			buf[bl++] = (unsigned char)num[--k];
		put_bytes(n, buf, bl, sizeof(buf), false);
	} else {
		put_bytes(n, src, sl, avail, how == 1);
	}
	if (n->nl > 0) {
		uint64_t th = how == 2 ? EH_PRIME : chunk_hash(src, sl, avail, how == 1);

		for (int i = 0; i < n->nl; i++)
			n->l[i].eh = (n->l[i].eh ^ th ^ type) * EH_PRIME;
	}
	n->prev = type;
	n->prev_kw = (uint8_t)kw;
	n->prev_kwf = kwf;
}

/* Write a word that is not in the input. */
static void emit_lit(struct norm *n, const char *text, int kw, uint8_t kwf)
{
	unsigned char buf[16] = {0};
	size_t l = strlen(text);

	memcpy(buf, text, l);
	emit(n, TK_WORD, buf, l, sizeof(buf), 0, kw, kwf);
}

static void list_push(struct norm *n, uint8_t type)
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
	c->depth = n->depth;
	c->eh = EH_BASIS;
}

/* The innermost list's current element is complete: drop it when it repeats a shape. */
static void list_finish(struct norm *n)
{
	struct lctx *c = &n->l[n->nl - 1];

	if (!c->has || !c->cst || c->pend)
		return;
	for (unsigned i = 0; i < c->nshapes; i++) {
		if (c->shapes[i] == c->eh) {
			if (!c->first)
				rewind_to(n, &c->snap, n->nl - 1);
			return;
		}
	}
	if (c->nshapes < FP_SHAPES)
		c->shapes[c->nshapes++] = c->eh;
}

static void list_pop(struct norm *n)
{
	list_finish(n);
	n->nl--;
}

/* Whether the token keeps each open list element "constants only". */
static void list_track(struct norm *n, uint8_t type, int kw)
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

/* The first token decides the statement kind and any special handling. */
static void stmt_first(struct norm *n, uint8_t type, int kw)
{
	n->kind = FP_KIND_OTHER;
	switch (kw) {
	case KW_SELECT:
	case KW_VALUES:
	case KW_TABLE:
		n->kind = FP_KIND_SELECT;
		break;
	case KW_WITH:
		n->mode = M_WITH;
		break;
	case KW_INSERT:
		n->kind = FP_KIND_INSERT;
		break;
	case KW_UPDATE:
		n->kind = FP_KIND_UPDATE;
		break;
	case KW_DELETE:
		n->kind = FP_KIND_DELETE;
		break;
	case KW_MERGE:
		n->kind = FP_KIND_MERGE;
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
 * Special handling of later tokens. Returns true when the token is consumed; sets *repl
 * when the token is to be written differently.
 */
static bool stmt_mode(struct norm *n, const struct token *t, int kw, enum repl *repl)
{
	bool second = n->ntok == 2;

	switch (n->mode) {
	case M_WITH:
		if (n->depth != 0 || t->type != TK_WORD)
			break;
		switch (kw) {
		case KW_SELECT:
		case KW_VALUES:
		case KW_TABLE:
			n->kind = FP_KIND_SELECT;
			break;
		case KW_INSERT:
			n->kind = FP_KIND_INSERT;
			break;
		case KW_UPDATE:
			n->kind = FP_KIND_UPDATE;
			break;
		case KW_DELETE:
			n->kind = FP_KIND_DELETE;
			break;
		case KW_MERGE:
			n->kind = FP_KIND_MERGE;
			break;
		default:
			return false;
		}
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
			rewind_to(n, &n->rb, 0);
			emit_lit(n, "to", KW_TO, KWF_SP | KWF_UN);
			emit_lit(n, "savepoint", KW_SAVEPOINT, 0);
			n->txn = FP_TXN_ROLLBACK_TO;
			n->mode = M_SUPPRESS;
			return true;
		}
		n->mode = M_NONE;
		break;
	case M_SUPPRESS:
		return true;
	case M_DECLARE:
		if (t->type == TK_QIDENT || t->type == TK_WORD)
			*repl = R_CURSOR;
		n->mode = M_NONE;
		break;
	case M_CLOSE:
		if (t->type == TK_QIDENT || (t->type == TK_WORD && kw != KW_ALL))
			*repl = R_CURSOR;
		n->mode = M_NONE;
		break;
	case M_FETCH:
		if (n->depth == 0 &&
		    (t->type == TK_QIDENT || (t->type == TK_WORD && !fetch_direction(kw))))
			*repl = R_CURSOR;
		break;
	case M_SET:
		if (n->depth == 0 && kw == KW_TO)
			*repl = R_EQ;
		break;
	case M_CREATE:
		if (t->type != TK_WORD)
			break;
		if (kw == KW_ATOMIC && n->prev_kw == KW_BEGIN)
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

static void feed_param(struct norm *n, const unsigned char *s, size_t l, size_t avail, bool fold)
{
	/* the length is part of chunk_hash, so "1", "23" and "12", "3" differ */
	n->ph = fp_round(n->ph, chunk_hash(s, l, avail, fold));
	n->nconst++;
}

/* Replacement tokens, padded for put_bytes()'s word loads. */
static const unsigned char lit_eq[8] = "=", lit_ne[8] = "<>", lit_cursor[8] = "_", lit_u[8] = "u";

static void stmt_token(struct norm *n, const struct token *t)
{
	const unsigned char *src = n->lx.s + t->s;
	size_t sl = t->e - t->s, avail = n->lx.len - t->s;
	uint8_t type = t->type, kwf = 0, prev_kw = n->prev_kw;
	int kw = KW_NONE, how = 0;
	enum repl repl = R_NONE;

	n->ntok++;
	if (type == TK_WORD)
		kw = kw_lookup(src, sl, &kwf);
	if (n->ntok == 1)
		stmt_first(n, type, kw);
	else if (n->mode != M_NONE && stmt_mode(n, t, kw, &repl)) {
		if (type == TK_LPAREN || type == TK_LBRACK)
			n->depth++;
		else if ((type == TK_RPAREN || type == TK_RBRACK) && n->depth > 0)
			n->depth--;
		return;
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
		} else if ((kw == KW_NULL || kw == KW_TRUE || kw == KW_FALSE) && prev_kw != KW_IS &&
			   prev_kw != KW_NOT) {
			/* "is null", "is not true" are predicates, not constants */
			type = TK_CONST;
		} else if (kw == KW_ALL && prev_kw == KW_LIMIT) {
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
	if (type == TK_CONST && t->sub == CS_NUM && n->mode == M_FETCH) {
		/* a FETCH count is the cursor's chunk size, part of the statement */
		type = TK_NUMRAW;
		how = 0;
	} else if (type == TK_CONST) {
		feed_param(n, src, sl, avail, t->type == TK_WORD);
		how = 2;
		kw = KW_NONE;
		kwf = 0;
	}

	/* a VALUES list ends at the first top-level token that does not continue it */
	while (n->nl > 0 && type != TK_COMMA && type != TK_LPAREN &&
	       n->l[n->nl - 1].type == L_VALUES && n->l[n->nl - 1].depth == n->depth)
		list_pop(n);
	if (type == TK_RPAREN || type == TK_RBRACK) {
		if (n->depth > 0)
			n->depth--;
		while (n->nl > 0 && n->l[n->nl - 1].depth > n->depth)
			list_pop(n);
	} else if (type == TK_COMMA && n->nl > 0 && n->l[n->nl - 1].depth == n->depth) {
		struct lctx *c = &n->l[n->nl - 1];

		list_finish(n);
		take_snap(n, &c->snap);
		emit(n, TK_COMMA, src, sl, avail, 0, KW_NONE, 0);
		c->first = false;
		c->has = false;
		c->cst = true;
		c->pend = false;
		c->cast = false;
		c->eh = EH_BASIS;
		return;
	}
	if (n->nl > 0)
		list_track(n, type, kw);

	if (type == TK_QIDENT && t->sub == 1) {
		/* U&"..." : only the prefix folds */
		emit(n, type, lit_u, 1, sizeof(lit_u), 0, KW_NONE, 0);
		n->prev = TK_DOT; /* no space between the prefix and its quote */
		emit(n, type, src + 1, sl - 1, avail - 1, 0, KW_NONE, 0);
	} else {
		emit(n, type, src, sl, avail, how, kw, kwf);
	}

	switch (type) {
	case TK_LPAREN:
		n->depth++;
		if (prev_kw == KW_IN)
			list_push(n, L_IN);
		break;
	case TK_LBRACK:
		n->depth++;
		if (prev_kw == KW_ARRAY)
			list_push(n, L_ARRAY);
		break;
	case TK_WORD:
		if (kw == KW_VALUES)
			list_push(n, L_VALUES);
		if (n->ntok == 1) {
			if (kw == KW_ROLLBACK) {
				take_snap(n, &n->rb);
			} else if (kw == KW_SAVEPOINT) {
				n->mode = M_SUPPRESS;
			} else if (kw == KW_RELEASE) {
				emit_lit(n, "savepoint", KW_SAVEPOINT, 0);
				n->mode = M_SUPPRESS;
			}
		}
		break;
	default:
		break;
	}
}

/* "-" where an operand is expected is a sign when a number follows. */
static bool sign_allowed(const struct norm *n)
{
	switch (n->prev) {
	case TK_NONE:
	case TK_OP:
	case TK_LPAREN:
	case TK_LBRACK:
	case TK_COMMA:
	case TK_COLON:
		return true;
	case TK_WORD:
		return (n->prev_kwf & KWF_UN) != 0;
	default:
		return false;
	}
}

bool fp_next(const char *sql, size_t len, size_t *pos, char *out, size_t outcap, struct fp_stmt *st)
{
	struct norm n;
	struct token t;
	bool started = false;
	size_t start = 0, end = 0, after, full;

	n.lx.s = (const unsigned char *)sql;
	n.lx.len = len;
	n.lx.p = *pos < len ? *pos : len;
	n.lx.cend = 0;
	n.out = out;
	n.lim = out != NULL && outcap > 0 ? outcap - 1 : 0;
	n.h = FP_SEED_ID;
	n.hashed = 0;
	n.wl = 0;
	n.ph = FP_SEED_PARAMS;
	n.nparam = n.nconst = n.ntok = 0;
	n.prev = TK_NONE;
	n.prev_kw = KW_NONE;
	n.prev_kwf = 0;
	n.mode = M_NONE;
	n.kind = FP_KIND_EMPTY;
	n.txn = FP_TXN_NONE;
	n.depth = 0;
	n.atomic = 0;
	n.nl = 0;

	for (;;) {
		lex(&n.lx, &t);
		if (n.lx.cstart != SIZE_MAX) {
			if (!started) {
				started = true;
				start = n.lx.cstart;
			}
			end = n.lx.cend;
		}
		if (t.type == TK_END)
			break;
		if (t.type == TK_SEMI && n.depth == 0 && n.atomic == 0) {
			if (n.ntok > 0)
				break;
			started = false; /* an empty statement */
			continue;
		}
		if (t.type == TK_OP && t.e - t.s == 1 && sql[t.s] == '-' && sign_allowed(&n)) {
			size_t save = n.lx.p;

			skip_blank(&n.lx);
			if (n.lx.p < len && (is_digit((unsigned char)sql[n.lx.p]) ||
					     (sql[n.lx.p] == '.' && n.lx.p + 1 < len &&
					      is_digit((unsigned char)sql[n.lx.p + 1])))) {
				t.type = TK_CONST;
				t.sub = CS_NUM;
				n.lx.p = scan_number(n.lx.s, len, n.lx.p);
				t.e = n.lx.p;
			} else {
				n.lx.p = save;
			}
		}
		if (!started) {
			started = true;
			start = t.s;
		}
		end = t.e;
		/* the bulk of ORM SQL: "table"."column", ... outside any list or special mode */
		if (n.nl == 0 && n.mode == M_NONE && n.ntok > 0 &&
		    ((t.type == TK_QIDENT && t.sub == 0) || t.type == TK_DOT ||
		     t.type == TK_COMMA)) {
			n.ntok++;
			emit(&n, t.type, n.lx.s + t.s, t.e - t.s, len - t.s, 0, KW_NONE, 0);
			continue;
		}
		stmt_token(&n, &t);
	}
	after = n.lx.p;
	while (n.nl > 0)
		list_pop(&n);

	flush(&n);
	full = n.hashed + n.wl;
	if (n.wl > 0) {
		n.h = fp_round(n.h, tail_word(&n));
		if (n.hashed < n.lim)
			memcpy(out + n.hashed, n.win,
			       n.wl < n.lim - n.hashed ? n.wl : n.lim - n.hashed);
	}
	st->id = fmix64(n.h ^ full);
	st->params_hash = fmix64(n.ph ^ n.nconst);
	st->kind = n.ntok > 0 ? n.kind : FP_KIND_EMPTY;
	st->txn = n.txn;
	st->nconst = n.nconst;
	st->full_len = full;
	st->norm_len = full < n.lim ? full : n.lim;
	if (out != NULL && outcap > 0)
		out[st->norm_len] = '\0';
	st->start = started ? start : after;
	st->end = started ? end : after;
	*pos = after;
	return n.ntok > 0;
}

/* ---- sqlcommenter ---- */

/* sqlcommenter comments are short; the backward search for a trailing one stops here. */
#define FP_TAG_SCAN_MAX 8192

static bool is_blank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int hexval(unsigned char c)
{
	if (is_digit(c))
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * Decode a raw tag value (between its quotes) into dst[cap]: backslash escapes, then %XX
 * and Django's %%XX (a statement without parameters keeps the doubled percent signs).
 * Control bytes become '?', and truncation never splits a UTF-8 sequence.
 */
static void tag_decode(const unsigned char *v, size_t n, char *dst, size_t cap)
{
	size_t o = 0, i = 0;
	bool cut = false;

	while (i < n) {
		unsigned char c = v[i++];

		if (c == '\\' && i < n) {
			c = v[i++];
		} else if (c == '%') {
			size_t j = i;

			if (j < n && v[j] == '%')
				j++;
			if (j + 1 < n && hexval(v[j]) >= 0 && hexval(v[j + 1]) >= 0) {
				c = (unsigned char)(hexval(v[j]) * 16 + hexval(v[j + 1]));
				i = j + 2;
			} else if (j > i) {
				i = j; /* "%%" alone is a percent sign */
			}
		}
		if (c < 0x20 || c == 0x7f)
			c = '?';
		if (o + 1 >= cap) {
			cut = true;
			break;
		}
		dst[o++] = (char)c;
	}
	if (cut && o > 0 && ((unsigned char)dst[o - 1] & 0x80)) {
		size_t k = o;

		while (k > 0 && ((unsigned char)dst[k - 1] & 0xc0) == 0x80)
			k--;
		if (k > 0) {
			unsigned char lead = (unsigned char)dst[k - 1];
			size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;

			if (k - 1 + need > o)
				o = k - 1;
		}
	}
	dst[o] = '\0';
}

static bool key_is(const char *key, size_t kl, const char *name)
{
	return strlen(name) == kl && memcmp(key, name, kl) == 0;
}

/* Parse the inside of a comment as key='value' pairs. */
static bool parse_pairs(const unsigned char *c, size_t n, struct fp_tags *tags)
{
	size_t i = 0;
	bool any = false, have_application = false;

	while (n > 0 && is_blank(c[n - 1]))
		n--;
	while (i < n && is_blank(c[i]))
		i++;
	if (i >= n)
		return false;
	for (;;) {
		char key[32];
		size_t ks = i, vs, kl;

		while (i < n && c[i] != '=' && c[i] != ',' && c[i] != '\'' && !is_blank(c[i]))
			i++;
		if (i == ks || i >= n || c[i] != '=')
			return false;
		tag_decode(c + ks, i - ks, key, sizeof(key));
		kl = strlen(key);
		i++;
		if (i >= n || c[i] != '\'')
			return false;
		vs = ++i;
		while (i < n && c[i] != '\'') {
			if (c[i] == '\\')
				i++;
			i++;
		}
		if (i >= n)
			return false;
		if (key_is(key, kl, "route"))
			tag_decode(c + vs, i - vs, tags->route, sizeof(tags->route));
		else if (key_is(key, kl, "controller"))
			tag_decode(c + vs, i - vs, tags->controller, sizeof(tags->controller));
		else if (key_is(key, kl, "action"))
			tag_decode(c + vs, i - vs, tags->action, sizeof(tags->action));
		else if (key_is(key, kl, "framework"))
			tag_decode(c + vs, i - vs, tags->framework, sizeof(tags->framework));
		else if (key_is(key, kl, "traceparent"))
			tag_decode(c + vs, i - vs, tags->traceparent, sizeof(tags->traceparent));
		else if (key_is(key, kl, "application")) {
			tag_decode(c + vs, i - vs, tags->application, sizeof(tags->application));
			have_application = true;
		} else if (key_is(key, kl, "app_name") && !have_application)
			tag_decode(c + vs, i - vs, tags->application, sizeof(tags->application));
		any = true;
		i++;
		while (i < n && is_blank(c[i]))
			i++;
		if (i >= n)
			return any;
		if (c[i] != ',')
			return false;
		i++;
		while (i < n && is_blank(c[i]))
			i++;
	}
}

static bool try_comment(const unsigned char *body, size_t n, struct fp_tags *tags)
{
	if (parse_pairs(body, n, tags))
		return true;
	memset(tags, 0, sizeof(*tags));
	return false;
}

bool fp_parse_tags(const char *sql, size_t len, struct fp_tags *tags)
{
	const unsigned char *s = (const unsigned char *)sql;
	size_t p = 0, q = len;

	memset(tags, 0, sizeof(*tags));
	while (p < len && is_blank(s[p]))
		p++;
	if (p + 1 < len && s[p] == '/' && s[p + 1] == '*') {
		for (size_t i = p + 2; i + 1 < len; i++) {
			if (s[i] == '*' && s[i + 1] == '/') {
				if (try_comment(s + p + 2, i - p - 2, tags))
					return true;
				break;
			}
		}
	}
	while (q > 0 && (is_blank(s[q - 1]) || s[q - 1] == ';'))
		q--;
	if (q >= 4 && s[q - 1] == '/' && s[q - 2] == '*') {
		size_t stop = q > FP_TAG_SCAN_MAX ? q - FP_TAG_SCAN_MAX : 0;

		/* the opening "/ *" must end before the closing "* /" starts */
		for (size_t i = q - 3; i-- > stop;) {
			if (s[i] == '/' && s[i + 1] == '*')
				return try_comment(s + i + 2, q - 2 - (i + 2), tags);
		}
	}
	return false;
}

bool fp_trace_id(const char *tp, char out[33])
{
	size_t n = strnlen(tp, 64);
	bool nonzero = false;

	if (n < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-')
		return false;
	if (!is_hex((unsigned char)tp[0]) || !is_hex((unsigned char)tp[1]) ||
	    ((tp[0] | 0x20) == 'f' && (tp[1] | 0x20) == 'f'))
		return false;
	/* version 00 has exactly four fields; later versions may append more */
	if (tp[0] == '0' && tp[1] == '0' ? n != 55 : (n > 55 && tp[55] != '-'))
		return false;
	for (int i = 36; i < 52; i++) {
		if (!is_hex((unsigned char)tp[i]))
			return false;
		nonzero |= tp[i] != '0';
	}
	if (!nonzero || !is_hex((unsigned char)tp[53]) || !is_hex((unsigned char)tp[54]))
		return false;
	nonzero = false;
	for (int i = 0; i < 32; i++) {
		unsigned char c = (unsigned char)tp[3 + i];

		if (!is_hex(c))
			return false;
		nonzero |= c != '0';
		out[i] = (char)lower(c);
	}
	out[32] = '\0';
	return nonzero;
}
