/* fpcache: fingerprints memoized by exact statement text (see include/fpcache.h). */
#include "fpcache.h"
#include "fphash.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define FPC_AVX2 1
#endif

struct fpc_slot {
	uint64_t hash; /* fp_hash of the text; 0 with len 0 while the slot is empty */
	uint32_t len;  /* text length */
	uint32_t cap;  /* bytes allocated at text */
	char *text;    /* a copy of the text, not NUL-terminated */
	struct fp_stmt st;
};

struct fpc_shape {
	uint64_t key;         /* 0 while the slot is empty */
	uint32_t start, tail; /* st.start, and len - st.end: the same for every text of the shape */
	struct fp_stmt st;
	/* a text of the shape and its parts (fp_shape_hinted); none: tmpl NULL or parts.n too big */
	char *tmpl;
	uint32_t tlen, tcap;
	struct fp_parts parts;
	uint8_t lists; /* bit k: list_opens() before literal k, so it may be a list in a text */
};

struct fp_cache {
	struct fpc_slot *slots;   /* FPC_SLOTS, allocated on the first put */
	struct fpc_shape *shapes; /* FPC_SHAPES, allocated on the first shape put */
	uint64_t seed;
	size_t bytes;
	uint64_t hits, misses, tmpl_hits;
	bool avx2; /* the shape scan may read 32 bytes at a time */
};

struct fp_cache *fp_cache_new(uint64_t seed)
{
	struct fp_cache *c = calloc(1, sizeof(struct fp_cache));
	if (!c)
		return NULL;
	c->seed = seed;
#ifdef FPC_AVX2
	c->avx2 = __builtin_cpu_supports("avx2");
#endif
	return c;
}

void fp_cache_portable(struct fp_cache *c)
{
	c->avx2 = false;
}

void fp_cache_free(struct fp_cache *c)
{
	if (!c)
		return;
	if (c->slots)
		for (size_t i = 0; i < FPC_SLOTS; i++)
			free(c->slots[i].text);
	free(c->slots);
	if (c->shapes)
		for (size_t i = 0; i < FPC_SHAPES; i++)
			free(c->shapes[i].tmpl);
	free(c->shapes);
	free(c);
}

static struct fpc_slot *slot_of(const struct fp_cache *c, uint64_t h)
{
	return &c->slots[(h ^ (h >> 32)) & (FPC_SLOTS - 1)];
}

bool fp_cache_get(struct fp_cache *c, const char *sql, size_t len, struct fp_stmt *st)
{
	if (!c->slots || len == 0 || len > FPC_MAX_TEXT) {
		c->misses++;
		return false;
	}
	uint64_t h = fp_hash(sql, len);
	const struct fpc_slot *s = slot_of(c, h);
	if (s->hash != h || s->len != len || memcmp(s->text, sql, len) != 0) {
		c->misses++;
		return false;
	}
	*st = s->st;
	c->hits++;
	return true;
}

/*
 * Copy sql[0..len) into *text, grown in steps of 64 bytes so that texts of similar length
 * reuse the buffer (*cap bytes, counted in c->bytes). False when memory is short.
 */
static bool keep_text(struct fp_cache *c, char **text, uint32_t *cap, const char *sql, size_t len)
{
	if (*cap < len || !*text) {
		uint32_t want = len ? (uint32_t)((len + 63) & ~(size_t)63) : 64;
		char *t = realloc(*text, want);
		if (!t)
			return false;
		c->bytes += want - *cap;
		*text = t;
		*cap = want;
	}
	memcpy(*text, sql, len);
	return true;
}

void fp_cache_put(struct fp_cache *c, const char *sql, size_t len, const struct fp_stmt *st)
{
	if (len == 0 || len > FPC_MAX_TEXT)
		return;
	if (!c->slots) {
		c->slots = calloc(FPC_SLOTS, sizeof(*c->slots));
		if (!c->slots)
			return;
		c->bytes += FPC_SLOTS * sizeof(*c->slots);
	}
	uint64_t h = fp_hash(sql, len);
	struct fpc_slot *s = slot_of(c, h);
	if (!keep_text(c, &s->text, &s->cap, sql, len))
		return;
	s->hash = h;
	s->len = (uint32_t)len;
	s->st = *st;
}

size_t fp_cache_bytes(const struct fp_cache *c)
{
	return sizeof(*c) + c->bytes;
}

void fp_cache_counts(const struct fp_cache *c, uint64_t *hits, uint64_t *misses)
{
	*hits = c->hits;
	*misses = c->misses;
}

uint64_t fp_cache_template_hits(const struct fp_cache *c)
{
	return c->tmpl_hits;
}

/* ------------------------------------------------------------------ shapes */

/*
 * Bytes [a, b) into h, eight at a time; the caller records b - a elsewhere. base is where the
 * text starts: a short tail is read as the last eight bytes before b when there are eight.
 */
static uint64_t sh_bytes(uint64_t h, const unsigned char *base, const unsigned char *a,
			 const unsigned char *b)
{
	uint64_t w;
	for (; b - a >= 8; a += 8) {
		memcpy(&w, a, 8);
		h = fp_round(h, w);
	}
	if (a < b) {
		size_t m = (size_t)(b - a);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		if (b - base >= 8) {
			memcpy(&w, b - 8, 8);
			return fp_round(h, w >> (8 * (8 - m)));
		}
#else
		(void)base;
#endif
		w = 0;
		memcpy(&w, a, m);
		h = fp_round(h, w);
	}
	return h;
}

enum { SC_PLAIN, SC_IDENT, SC_DIGIT, SC_DOLLAR, SC_DQUOTE, SC_QUOTE, SC_DASH, SC_SLASH, SC_DOT };
enum { PART_NUM = 1, PART_STR, PART_COMMENT, PART_END, PART_LIST };

/* Byte classes: letters, '_' and bytes >= 0x80 may be part of a name, as in PostgreSQL. */
/* clang-format off */
static const uint8_t sc[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x00 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
	0, 0, 4, 0, 3, 0, 0, 5, 0, 0, 0, 0, 0, 6, 8, 7, /* 0x20 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, /* 0x30 */
	0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, /* 0x50 */
	0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, /* 0x70 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x80 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x90 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xa0 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xb0 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xc0 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xd0 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xe0 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xf0 */
};
/* clang-format on */

struct shaper {
	const unsigned char *s;
	size_t run;     /* start of the text not yet hashed */
	uint64_t data;  /* the text outside literals and comments */
	uint64_t parts; /* the lengths between literals and comments, and their kinds */
	uint64_t lits;  /* the literals' contents */
	size_t first, last;
	bool comments;
	struct fp_parts *rec; /* where they are */
};

/* Note the part s[i, j) of the given kind, when there is room. */
static inline void parts_add(struct fp_parts *p, size_t i, size_t j, unsigned kind)
{
	if (p->n >= FPC_PARTS) {
		p->n = FPC_PARTS + 1;
		return;
	}
	p->at[p->n] = (uint16_t)i;
	p->end[p->n] = (uint16_t)j;
	p->kind[p->n] = (uint8_t)kind;
	p->n++;
}

/* No parts yet; none are noted for a text whose positions would not fit. */
static inline void parts_init(struct fp_parts *p, size_t len)
{
	p->n = len <= FPC_MAX_TEXT ? 0 : FPC_PARTS + 1;
}

/* Hash the text before a literal or comment at i, and note what comes. */
static void sh_part(struct shaper *x, size_t i, unsigned kind)
{
	if (kind != PART_END && x->first > i)
		x->first = i;
	if (kind == PART_COMMENT)
		x->comments = true;
	x->data = sh_bytes(x->data, x->s, x->s + x->run, x->s + i);
	x->parts = fp_round(x->parts, (uint64_t)(i - x->run) << 8 | kind);
}

/* May continue a name (letters, digits, '_', '$', bytes >= 0x80). */
static inline bool sc_name(unsigned char ch)
{
	return (unsigned)(sc[ch] - SC_IDENT) <= SC_DOLLAR - SC_IDENT;
}

/* The end of the name that goes on at s[i] (a digit or a dollar sign continues it). */
static inline size_t name_end(const unsigned char *s, size_t len, size_t i)
{
	while (i < len && sc_name(s[i]))
		i++;
	return i;
}

/*
 * The end of the quoted text that starts at s[i] ('...'; doubled quotes stay inside), or 0
 * when it does not end. Values are short: sixteen bytes at a time with SSE2.
 */
static size_t quoted_end(const unsigned char *s, size_t len, size_t i)
{
	const unsigned char q = s[i];
	size_t j = i + 1;
	for (;;) {
		size_t k = j;
#ifdef __SSE2__
		const __m128i qq = _mm_set1_epi8((char)q);
		for (; k + 16 <= len; k += 16) {
			unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(
				_mm_loadu_si128((const __m128i *)(const void *)(s + k)), qq));
			if (m) {
				k += (unsigned)__builtin_ctz(m);
				goto found;
			}
		}
#endif
		while (k < len && s[k] != q)
			k++;
		if (k >= len)
			return 0;
#ifdef __SSE2__
	found:
#endif
		if (k + 1 < len && s[k + 1] == q) {
			j = k + 2; /* a doubled quote */
			continue;
		}
		return k + 1;
	}
}

/*
 * Where the shape scan stops: the bytes outside quoted names that may matter to the shape,
 * one of ' $ - / or a digit. Quoted names ("...") are passed over whole, whatever they hold:
 * the scan reads 64 bytes at a time into two bit masks, '"' and stop bytes, and keeps the
 * parity of the '"' seen so far (a prefix XOR), so an ORM's "t"."a", "t"."b" costs no stop.
 * A stop is always outside any name; after one, the scan resumes where its token ends.
 */
struct stops {
	const unsigned char *s;
	size_t len;
	size_t base;   /* the block s[base, base + 64) */
	uint64_t mask; /* its stops not taken yet, bit k for s[base + k] */
	uint64_t in;   /* bit k: s[base + k] is inside a quoted name (or opens one) */
	uint64_t dq;   /* bit k: s[base + k] is a '"' */
	bool avx2;
};

/* The '"' and the stop bytes of the 16 bytes at p, as bit masks. */
static inline void chunk_masks(const unsigned char *p, unsigned *dq, unsigned *sp)
{
#ifdef __SSE2__
	const __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
	/* '-' (0x2d) to '9' (0x39) but '.': a signed compare of x - 0x2d, biased, with 13 */
	const __m128i r = _mm_cmplt_epi8(
		_mm_xor_si128(_mm_sub_epi8(x, _mm_set1_epi8(0x2d)), _mm_set1_epi8((char)0x80)),
		_mm_set1_epi8((char)(13 ^ 0x80)));
	const __m128i dot = _mm_cmpeq_epi8(x, _mm_set1_epi8('.'));
	const __m128i q = _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('\'')),
				       _mm_cmpeq_epi8(x, _mm_set1_epi8('$')));
	*sp = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_andnot_si128(dot, r), q));
	*dq = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')));
#else
	unsigned a = 0, b = 0;
	for (unsigned k = 0; k < 16; k++) {
		unsigned char ch = p[k];
		a |= (unsigned)(ch == '"') << k;
		b |= (unsigned)(ch == '\'' || ch == '$' || ch == '-' || ch == '/' ||
				(unsigned)(ch - '0') < 10u)
		     << k;
	}
	*dq = a;
	*sp = b;
#endif
}

#ifdef FPC_AVX2
/* chunk_masks for 32 bytes, with AVX2: the '"' mask, returned, and the stop mask. */
__attribute__((target("avx2"))) static inline uint64_t avx2_masks(const unsigned char *p,
								  uint32_t *sp)
{
	const __m256i x = _mm256_loadu_si256((const __m256i *)(const void *)p);
	const __m256i r =
		_mm256_cmpgt_epi8(_mm256_set1_epi8((char)(13 ^ 0x80)),
				  _mm256_xor_si256(_mm256_sub_epi8(x, _mm256_set1_epi8(0x2d)),
						   _mm256_set1_epi8((char)0x80)));
	const __m256i dot = _mm256_cmpeq_epi8(x, _mm256_set1_epi8('.'));
	const __m256i q = _mm256_or_si256(_mm256_cmpeq_epi8(x, _mm256_set1_epi8('\'')),
					  _mm256_cmpeq_epi8(x, _mm256_set1_epi8('$')));
	*sp = (uint32_t)_mm256_movemask_epi8(_mm256_or_si256(_mm256_andnot_si256(dot, r), q));
	return (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, _mm256_set1_epi8('"')));
}

/* chunk_masks for the 64 bytes at p, 32 at a time, where the CPU has AVX2. */
__attribute__((target("avx2"))) static void block_masks_avx2(const unsigned char *p, uint64_t *dq,
							     uint64_t *sp)
{
	uint32_t lo, hi;
	uint64_t a = avx2_masks(p, &lo), b = avx2_masks(p + 32, &hi);
	*dq = a | b << 32;
	*sp = lo | (uint64_t)hi << 32;
}
#endif

/*
 * The masks of s[b, b + 64), or of s[b, len) when the text ends before: bytes past the end
 * count as neither '"' nor stop. Nothing past s[len - 1] is read. AVX2 reads texts of 64 bytes
 * and more; shorter ones (pgbench's) are quicker in 16-byte chunks than copied out to 64.
 */
static inline void block_masks(const unsigned char *s, size_t len, size_t b, bool avx2,
			       uint64_t *dq, uint64_t *sp)
{
#ifdef FPC_AVX2
	if (avx2 && len >= 64) {
		/* a block that ends past the text: the text's last 64 bytes, those before b out */
		size_t at = b + 64 <= len ? b : len - 64;
		block_masks_avx2(s + at, dq, sp);
		*dq >>= b - at;
		*sp >>= b - at;
		return;
	}
#else
	(void)avx2;
#endif
	uint64_t a = 0, c = 0;
	unsigned x, y;
	size_t n = len - b < 64 ? len - b : 64;
	unsigned k = 0;
	for (; 16 * k + 16 <= n; k++) {
		chunk_masks(s + b + 16 * k, &x, &y);
		a |= (uint64_t)x << (16 * k);
		c |= (uint64_t)y << (16 * k);
	}
	size_t r = n - 16 * k; /* 0 to 15 bytes left */
	if (r) {
		if (len >= 16) {
			/* the last sixteen bytes of the text, without those already read */
			chunk_masks(s + len - 16, &x, &y);
			x >>= 16 - r;
			y >>= 16 - r;
		} else {
			unsigned char tail[16] = {0};
			memcpy(tail, s + b + 16 * k, r);
			chunk_masks(tail, &x, &y);
		}
		a |= (uint64_t)x << (16 * k);
		c |= (uint64_t)y << (16 * k);
	}
	*dq = a;
	*sp = c;
}

/* Read the block at b; carry: s[b - 1] is inside a quoted name. */
static void stops_block(struct stops *t, size_t b, uint64_t carry)
{
	uint64_t dq, sp;
	t->base = b;
	if (b >= t->len) {
		t->mask = t->in = t->dq = 0;
		return;
	}
	block_masks(t->s, t->len, b, t->avx2, &dq, &sp);
	/* in: the parity of the '"' up to and including each byte */
	uint64_t in = dq;
	in ^= in << 1;
	in ^= in << 2;
	in ^= in << 4;
	in ^= in << 8;
	in ^= in << 16;
	in ^= in << 32;
	in ^= 0 - carry;
	t->in = in;
	t->dq = dq;
	t->mask = sp & ~in;
}

/* The next stop, or len when there is none. */
static inline size_t stops_next(struct stops *t)
{
	while (!t->mask) {
		if (t->base + 64 >= t->len)
			return t->len;
		stops_block(t, t->base + 64, t->in >> 63);
	}
	return t->base + (unsigned)__builtin_ctzll(t->mask);
}

/*
 * The token s[p, i) at the last stop has been read: go on from i, outside any name. The masks
 * ahead still hold unless the token had a '"' in it (a string or a comment may).
 */
static inline void stops_from(struct stops *t, size_t p, size_t i)
{
	size_t k = i - t->base;
	if (k < 64 && !(t->dq & (~0ull << (p - t->base)) & ~(~0ull << k)))
		t->mask &= ~0ull << k;
	else
		stops_block(t, i, 0);
}

/* At the end of the text: is it inside a quoted name that never ends? */
static inline bool stops_open(const struct stops *t)
{
	return (t->in >> 63) != 0;
}

static inline bool sc_blank(unsigned char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

/* The end of the digits (maybe none) at s[i]. */
static inline size_t digits_end(const unsigned char *s, size_t len, size_t i)
{
	while (i < len && sc[s[i]] == SC_DIGIT)
		i++;
	return i;
}

/* The end of the number at s[i]: digits, maybe '.' and digits. */
static size_t number_end(const unsigned char *s, size_t len, size_t i)
{
	size_t j = digits_end(s, len, i);
	return j < len && s[j] == '.' ? digits_end(s, len, j + 1) : j;
}

/* The end of the plain '...' string at s[i]; 0 when it does not end or has a backslash. */
static size_t string_end(const unsigned char *s, size_t len, size_t i)
{
	size_t j = quoted_end(s, len, i);
	return j && !memchr(s + i, '\\', j - i) ? j : 0;
}

/*
 * The normalizer collapses lists nested at most FP_LIST_MAX (4) deep. Every list opens with a
 * '(' (IN), a '[' (ARRAY) or the word VALUES: when s[0..end) has at most three of those,
 * quoted or not, at most three lists can be open around a list that starts at end.
 */
static bool few_open_lists(const unsigned char *s, size_t end)
{
	unsigned n = 0;
	for (size_t i = 0; i < end; i++) {
		unsigned char ch = s[i];
		if (ch == '(' || ch == '[')
			n++;
		else if ((ch | 0x20) == 'v' && i + 6 <= end &&
			 strncasecmp((const char *)s + i, "values", 6) == 0)
			n++;
		if (n > 3)
			return false;
	}
	return true;
}

/*
 * Does " IN (" stand right before s[i] (blanks aside), after run? Returns where the "IN"
 * ends, or 0. Reads only s[run, i).
 */
static size_t list_opens(const unsigned char *s, size_t i, size_t run)
{
	size_t k = i;
	while (k > run && sc_blank(s[k - 1]))
		k--;
	if (k == run || s[k - 1] != '(')
		return 0;
	for (k--; k > run && sc_blank(s[k - 1]);)
		k--;
	if (k < run + 3 || (s[k - 1] | 0x20) != 'n' || (s[k - 2] | 0x20) != 'i' ||
	    !sc_blank(s[k - 3]))
		return 0;
	return k;
}

/*
 * Django's __in lookups and prefetch_related write "IN (1, 2, 3)" with as many values as the
 * page has: one shape per length would miss the cache at every new length. The normalizer
 * collapses a list of constants to one element (doc/fingerprint.md), so a list of plain
 * numbers and '...' strings, separated by commas, is read as one literal. The literal at s[i]
 * opens such a list when " IN (" stands right before it (blanks aside) and after run, the end
 * of the last literal or comment (an "IN (" in a comment is not one). Returns the end of the
 * last element, or 0 when this is not such a list (then the elements are read one by one).
 */
static size_t in_list_end(const unsigned char *s, size_t len, size_t i, size_t run)
{
	size_t k = list_opens(s, i, run);
	if (!k || !few_open_lists(s, k - 2))
		return 0;
	for (size_t j = i;;) {
		size_t e;
		if (s[j] == '\'')
			e = string_end(s, len, j);
		else if (sc[s[j]] == SC_DIGIT)
			e = number_end(s, len, j);
		else
			return 0;
		/* an element ends at a blank, ',' or ')' */
		if (!e || e >= len || !(sc_blank(s[e]) || s[e] == ',' || s[e] == ')'))
			return 0;
		for (j = e; j < len && sc_blank(s[j]); j++)
			;
		if (j < len && s[j] == ')')
			return e;
		if (j >= len || s[j] != ',')
			return 0;
		for (j++; j < len && sc_blank(s[j]); j++)
			;
		if (j >= len)
			return 0;
	}
}

/* The literal s[i, j) of the given kind into h, the hash of a text's literals. */
static inline uint64_t lit_round(uint64_t h, const unsigned char *s, size_t i, size_t j,
				 unsigned kind)
{
	uint64_t tag = kind == PART_STR ? 1ull << 40 : kind == PART_LIST ? 2ull << 40 : 0;
	return fp_round(sh_bytes(h, s, s + i, s + j), (j - i) | tag);
}

/* s[i..j) is read as one literal of the given kind: its bytes go to lits, not to the key. */
static size_t sh_literal(struct shaper *x, size_t i, size_t j, unsigned kind)
{
	sh_part(x, i, kind);
	parts_add(x->rec, i, j, kind);
	x->lits = lit_round(x->lits, x->s, i, j, kind);
	x->run = x->last = j;
	return j;
}

/*
 * The literal at the stop s[i], a '\'' or a digit, outside any quoted name; in_name: s[i]
 * would continue a name, run: the end of the last literal or comment; may_list false: no
 * list_opens() before it, known beforehand. Returns its kind with
 * its end in *end, 0 when the digit is no literal (it goes on a name, or ".5"), -1 when the
 * quick reading declines the text. fp_shape() and the template match both read literals here.
 */
static inline int read_literal(const unsigned char *s, size_t len, size_t i, size_t run,
			       bool in_name, bool may_list, size_t *end)
{
	size_t j;
	if (s[i] == '\'') {
		if (in_name)
			return -1; /* E'', B'', X'', N'' */
		if (may_list && (j = in_list_end(s, len, i, run))) {
			*end = j;
			return PART_LIST;
		}
		if (!(j = string_end(s, len, i)))
			return -1;
		*end = j;
		return PART_STR;
	}
	if (in_name || (i > 0 && s[i - 1] == '.'))
		return 0;
	if (may_list && (j = in_list_end(s, len, i, run))) {
		*end = j;
		return PART_LIST;
	}
	j = number_end(s, len, i);
	/* 1e5, 0x1F, 1_000, 1.2.3, 5'x': the normalizer's business */
	if (j < len && sc[s[j]] != SC_PLAIN && sc[s[j]] != SC_DASH && sc[s[j]] != SC_SLASH)
		return -1;
	*end = j;
	return PART_NUM;
}

/*
 * The comment at the stop s[i], a '-' or a '/': 1 with its end in *end, 0 when none starts
 * there, -1 when it does not end. Comments nest, as in PostgreSQL.
 */
static int read_comment(const unsigned char *s, size_t len, size_t i, size_t *end)
{
	size_t j;
	if (i + 1 >= len || s[i + 1] != (s[i] == '-' ? '-' : '*'))
		return 0;
	if (s[i] == '-') {
		for (j = i + 2; j < len && s[j] != '\n' && s[j] != '\r'; j++)
			;
		*end = j;
		return 1;
	}
	unsigned depth = 1;
	for (j = i + 2; depth > 0; j++) {
		if (j + 1 >= len)
			return -1;
		if (s[j] == '/' && s[j + 1] == '*') {
			depth++;
			j++;
		} else if (s[j] == '*' && s[j + 1] == '/') {
			depth--;
			j++;
		}
	}
	*end = j;
	return 1;
}

bool fp_shape(const struct fp_cache *c, const char *sql, size_t len, struct fp_shape *sh)
{
	const unsigned char *s = (const unsigned char *)sql;
	struct shaper x = {s, 0, c->seed, ~c->seed, c->seed ^ FP_P2, len, 0, false, &sh->parts};
	size_t i = 0, j;
	size_t after = 0; /* the end of the last token read whole: a name cannot go on past it */
	struct stops t = {s, len, 0, 0, 0, 0, c->avx2};
	int k;

	parts_init(&sh->parts, len);
	/*
	 * Everything that is not a plain literal or a comment stays in the text that is hashed:
	 * the reading jumps from one stop to the next (quoted names stay in the key, whatever
	 * they hold). A digit or '$' right after a name character (and not right after a token
	 * read whole) continues that name.
	 */
	stops_block(&t, 0, 0);
	while ((i = stops_next(&t)) < len) {
		const size_t p = i;
		bool in_name = i > after && sc_name(s[i - 1]);
		switch (s[i]) {
		case '$':
			if (in_name) {
				i = name_end(s, len, i + 1);
				break;
			}
			/*
			 * "$n" stays in the key. Nothing after it is taken as part of it: in
			 * "$1$a$" PostgreSQL sees $1 and then a dollar quote, which ends the
			 * reading here.
			 */
			if (!(i + 1 < len && sc[s[i + 1]] == SC_DIGIT))
				return false; /* a dollar quote */
			after = i = digits_end(s, len, i + 1);
			break;
		case '-':
		case '/':
			if ((k = read_comment(s, len, i, &j)) < 0)
				return false;
			if (!k) {
				i++;
				break;
			}
			sh_part(&x, i, PART_COMMENT);
			parts_add(x.rec, i, j, PART_COMMENT);
			x.run = x.last = after = i = j;
			break;
		default: /* '\'' or a digit (any other byte here would be a scan bug: step over it) */
			if (s[i] != '\'' && sc[s[i]] != SC_DIGIT) {
				i++;
				break;
			}
			if ((k = read_literal(s, len, i, x.run, in_name, true, &j)) < 0)
				return false;
			if (k > 0)
				after = i = sh_literal(&x, i, j, (unsigned)k);
			else if (in_name)
				i = name_end(s, len, i + 1);
			else /* ".5": its digits stay in the key, what follows is read apart */
				after = i = digits_end(s, len, i + 1);
			break;
		}
		stops_from(&t, p, i);
	}
	if (stops_open(&t))
		return false; /* a quoted name that does not end */
	sh_part(&x, len, PART_END);
	sh->key = fmix64(x.data ^ fmix64(x.parts));
	if (!sh->key)
		sh->key = 1;
	sh->params = fmix64(x.lits ^ sh->key);
	sh->first = x.first;
	sh->last = x.last;
	sh->comments = x.comments;
	return true;
}

/*
 * Is s[0..len) a text of e's shape, by its template? The bytes between the parts must equal
 * the template's, and at each part's place there must be a part of the same kind, read as
 * fp_shape() reads it. Why that is fp_shape()'s answer: after a literal or a comment the scan
 * is outside any name, with nothing carried over, whatever the part held; so the equal bytes
 * in between read the same, up to the next part. What they look ahead at, a part's first byte,
 * is checked where it matters: a comment must open with the same bytes; a literal is a '\''
 * or a digit, and read_literal() decides with in_name computed here, from the same prefix
 * (conservatively: a "$1" or ".5" right before makes it say no, where the scan would not).
 */
static bool tmpl_match(const struct fp_cache *c, const struct fpc_shape *e,
		       const unsigned char *s, size_t len, struct fp_shape *sh)
{
	const unsigned char *t = (const unsigned char *)e->tmpl;
	const struct fp_parts *tp = &e->parts;
	uint64_t lits = c->seed ^ FP_P2;
	size_t ps = 0, pt = 0; /* where the bytes not compared yet start, in s and in t */
	bool comments = false;

	parts_init(&sh->parts, len);
	for (unsigned k = 0; k < tp->n; k++) {
		size_t seg = tp->at[k] - pt, i = ps + seg, j = 0;
		unsigned kind = tp->kind[k];
		if (i >= len || memcmp(s + ps, t + pt, seg) != 0)
			return false;
		if (kind == PART_COMMENT) {
			if (s[i] != t[tp->at[k]] || read_comment(s, len, i, &j) != 1)
				return false;
			comments = true;
		} else {
			if (s[i] != '\'' && sc[s[i]] != SC_DIGIT)
				return false;
			bool in_name = i > ps && sc_name(s[i - 1]);
			bool may_list = (e->lists >> k) & 1;
			if (read_literal(s, len, i, ps, in_name, may_list, &j) != (int)kind)
				return false;
			lits = lit_round(lits, s, i, j, kind);
		}
		parts_add(&sh->parts, i, j, kind);
		ps = j;
		pt = tp->end[k];
	}
	if (len - ps != e->tlen - pt || memcmp(s + ps, t + pt, len - ps) != 0)
		return false;
	sh->key = e->key;
	sh->params = fmix64(lits ^ e->key);
	sh->first = tp->n ? tp->at[0] : len;
	sh->last = tp->n ? ps : 0;
	sh->comments = comments;
	return true;
}

static size_t shape_index(uint64_t key)
{
	return (key ^ (key >> 29)) & (FPC_SHAPES - 1);
}

/* Put slot number h (1-based) first in hint[], where it was or at the end, the rest after. */
static void hint_front(uint16_t hint[FPC_HINTS], uint16_t h)
{
	unsigned k = 0;
	while (k < FPC_HINTS - 1 && hint[k] != h)
		k++;
	for (; k > 0; k--)
		hint[k] = hint[k - 1];
	hint[0] = h;
}

bool fp_shape_hinted(struct fp_cache *c, uint16_t hint[FPC_HINTS], const char *sql, size_t len,
		     struct fp_shape *sh)
{
	uint16_t h;
	for (unsigned k = 0; c->shapes && k < FPC_HINTS && (h = hint[k]) != 0; k++) {
		const struct fpc_shape *e = &c->shapes[h - 1];
		if (e->tmpl && e->parts.n <= FPC_PARTS &&
		    tmpl_match(c, e, (const unsigned char *)sql, len, sh)) {
			c->tmpl_hits++;
			hint_front(hint, h);
			return true;
		}
	}
	if (!fp_shape(c, sql, len, sh))
		return false;
	hint_front(hint, (uint16_t)(shape_index(sh->key) + 1));
	return true;
}

static struct fpc_shape *shape_slot(const struct fp_cache *c, uint64_t key)
{
	return &c->shapes[shape_index(key)];
}

bool fp_cache_shape_get(struct fp_cache *c, const struct fp_shape *sh, size_t len,
			struct fp_stmt *st)
{
	const struct fpc_shape *e = c->shapes ? shape_slot(c, sh->key) : NULL;
	if (!e || e->key != sh->key || e->tail > len || e->start > len - e->tail) {
		c->misses++;
		return false;
	}
	*st = e->st;
	st->start = e->start;
	st->end = len - e->tail;
	st->params_hash = sh->params;
	c->hits++;
	return true;
}

void fp_cache_shape_put(struct fp_cache *c, const struct fp_shape *sh, const char *sql, size_t len,
			const struct fp_stmt *st)
{
	if (!fp_shape_fits(sh, st) || st->end > len || st->start > st->end || len > UINT32_MAX)
		return;
	if (!c->shapes) {
		c->shapes = calloc(FPC_SHAPES, sizeof(*c->shapes));
		if (!c->shapes)
			return;
		c->bytes += FPC_SHAPES * sizeof(*c->shapes);
	}
	struct fpc_shape *e = shape_slot(c, sh->key);
	e->key = sh->key;
	e->start = (uint32_t)st->start;
	e->tail = (uint32_t)(len - st->end);
	e->st = *st;
	e->parts.n = FPC_PARTS + 1; /* no template, unless this text can be one */
	if (sh->parts.n > FPC_PARTS || len > FPC_MAX_TEXT ||
	    !keep_text(c, &e->tmpl, &e->tcap, sql, len))
		return;
	e->tlen = (uint32_t)len;
	e->parts = sh->parts;
	/* list_opens() reads between two parts: alike in every text the template matches */
	e->lists = 0;
	for (unsigned k = 0, run = 0; k < sh->parts.n; run = sh->parts.end[k++])
		if (list_opens((const unsigned char *)sql, sh->parts.at[k], run))
			e->lists |= (uint8_t)(1u << k);
}
