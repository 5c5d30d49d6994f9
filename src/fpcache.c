/* fpcache: fingerprints memoized by exact statement text (see include/fpcache.h). */
#include "fpcache.h"
#include "fphash.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#ifdef __SSE2__
#include <emmintrin.h>
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
};

struct fp_cache {
	struct fpc_slot *slots;   /* FPC_SLOTS, allocated on the first put */
	struct fpc_shape *shapes; /* FPC_SHAPES, allocated on the first shape put */
	uint64_t seed;
	size_t bytes;
	uint64_t hits, misses;
};

struct fp_cache *fp_cache_new(uint64_t seed)
{
	struct fp_cache *c = calloc(1, sizeof(struct fp_cache));
	if (c)
		c->seed = seed;
	return c;
}

void fp_cache_free(struct fp_cache *c)
{
	if (!c)
		return;
	if (c->slots)
		for (size_t i = 0; i < FPC_SLOTS; i++)
			free(c->slots[i].text);
	free(c->slots);
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
	if (s->cap < len) {
		/* Room in steps of 64 bytes, so that texts of similar length reuse the slot. */
		uint32_t cap = (uint32_t)((len + 63) & ~(size_t)63);
		char *t = realloc(s->text, cap);
		if (!t)
			return;
		c->bytes += cap - s->cap;
		s->text = t;
		s->cap = cap;
	}
	memcpy(s->text, sql, len);
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
};

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

/*
 * The end of the quoted text that starts at s[i] ('...' or "..."; doubled quotes stay inside),
 * or 0 when it does not end. Names and values are short: sixteen bytes at a time with SSE2.
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
 * The first i' >= i where s[i'] may matter to the shape: a quote of either kind, '$', or one of
 * "-./0123456789" (a comment, a number, a name's digits); '#', '%' and '&' come along, as they
 * sit between '"' and '\''. Sixteen bytes at a time where SSE2 is there (every x86-64).
 */
static inline size_t next_special(const unsigned char *s, size_t len, size_t i)
{
#ifdef __SSE2__
	const __m128i bias = _mm_set1_epi8((char)0x80);
	const __m128i lo1 = _mm_set1_epi8(0x22), n1 = _mm_set1_epi8((char)(6 ^ 0x80));
	const __m128i lo2 = _mm_set1_epi8(0x2d), n2 = _mm_set1_epi8((char)(13 ^ 0x80));
	for (; i + 16 <= len; i += 16) {
		__m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
		__m128i a = _mm_xor_si128(_mm_sub_epi8(x, lo1), bias);
		__m128i b = _mm_xor_si128(_mm_sub_epi8(x, lo2), bias);
		unsigned m = (unsigned)_mm_movemask_epi8(
			_mm_or_si128(_mm_cmplt_epi8(a, n1), _mm_cmplt_epi8(b, n2)));
		if (m)
			return i + (unsigned)__builtin_ctz(m);
	}
#endif
	for (; i < len; i++)
		if ((unsigned)(s[i] - 0x22) < 6u || (unsigned)(s[i] - 0x2d) < 13u)
			return i;
	return len;
}

static inline bool sc_blank(unsigned char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

/* The end of the number at s[i]: digits, maybe '.' and digits. */
static size_t number_end(const unsigned char *s, size_t len, size_t i)
{
	size_t j = i;
	while (j < len && sc[s[j]] == SC_DIGIT)
		j++;
	if (j < len && s[j] == '.')
		for (j++; j < len && sc[s[j]] == SC_DIGIT; j++)
			;
	return j;
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
	size_t k = i;
	while (k > run && sc_blank(s[k - 1]))
		k--;
	if (k == run || s[k - 1] != '(')
		return 0;
	for (k--; k > run && sc_blank(s[k - 1]);)
		k--;
	if (k < run + 3 || (s[k - 1] | 0x20) != 'n' || (s[k - 2] | 0x20) != 'i' ||
	    !sc_blank(s[k - 3]) || !few_open_lists(s, k - 2))
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

/* s[i..j) is read as one literal of the given kind: its bytes go to lits, not to the key. */
static size_t sh_literal(struct shaper *x, size_t i, size_t j, unsigned kind, uint64_t tag)
{
	sh_part(x, i, kind);
	x->lits = fp_round(sh_bytes(x->lits, x->s, x->s + i, x->s + j), (j - i) | tag);
	x->run = x->last = j;
	return j;
}

bool fp_shape(const struct fp_cache *c, const char *sql, size_t len, struct fp_shape *sh)
{
	const unsigned char *s = (const unsigned char *)sql;
	struct shaper x = {s, 0, c->seed, ~c->seed, c->seed ^ FP_P2, len, 0, false};
	size_t i = 0, j;
	size_t after = 0; /* the end of the last token read whole: a name cannot go on past it */

	/*
	 * Everything that is not a plain literal or a comment stays in the text that is hashed:
	 * the reading jumps from one byte that may matter to the next. A digit or '$' right after
	 * a name character (and not right after a token read whole) continues that name.
	 */
	while ((i = next_special(s, len, i)) < len) {
		bool in_name = i > after && sc_name(s[i - 1]);
		switch (s[i]) {
		case '\'':
			if (in_name)
				return false; /* E'', B'', X'', N'' */
			if ((j = in_list_end(s, len, i, x.run))) {
				after = i = sh_literal(&x, i, j, PART_LIST, 2ull << 40);
				continue;
			}
			if (!(j = string_end(s, len, i)))
				return false;
			after = i = sh_literal(&x, i, j, PART_STR, 1ull << 40);
			continue;
		case '"':
			/*
			 * A quoted name stays in the key, whatever is inside. ORM column lists,
			 * "t"."a", "t"."b", are read as one run.
			 */
			for (;;) {
				if (!(i = quoted_end(s, len, i)))
					return false;
				if (i + 1 < len && s[i] == '.' && s[i + 1] == '"')
					i++;
				else if (i + 2 < len && s[i] == ',' && s[i + 1] == ' ' &&
					 s[i + 2] == '"')
					i += 2;
				else
					break;
			}
			after = i;
			continue;
		case '$':
			if (in_name) {
				i++;
				continue;
			}
			/*
			 * "$n" stays in the key. Nothing after it is taken as part of it: in
			 * "$1$a$" PostgreSQL sees $1 and then a dollar quote, which ends the
			 * reading here.
			 */
			if (!(i + 1 < len && sc[s[i + 1]] == SC_DIGIT))
				return false; /* a dollar quote */
			for (i++; i < len && sc[s[i]] == SC_DIGIT; i++)
				;
			after = i;
			continue;
		case '-':
			if (i + 1 < len && s[i + 1] == '-') {
				for (j = i + 2; j < len && s[j] != '\n' && s[j] != '\r'; j++)
					;
				sh_part(&x, i, PART_COMMENT);
				x.run = x.last = after = i = j;
				continue;
			}
			i++;
			continue;
		case '/':
			if (i + 1 < len && s[i + 1] == '*') {
				/* comments nest, as in PostgreSQL */
				unsigned depth = 1;
				for (j = i + 2; depth > 0; j++) {
					if (j + 1 >= len)
						return false;
					if (s[j] == '/' && s[j + 1] == '*') {
						depth++;
						j++;
					} else if (s[j] == '*' && s[j + 1] == '/') {
						depth--;
						j++;
					}
				}
				sh_part(&x, i, PART_COMMENT);
				x.run = x.last = after = i = j;
				continue;
			}
			i++;
			continue;
		case '.':
			/* ".5" keeps its digits in the key; what follows them is read on its own */
			for (i++; i < len && sc[s[i]] == SC_DIGIT; i++)
				;
			after = i;
			continue;
		case '#':
		case '%':
		case '&':
			i++;
			continue;
		default: /* a digit */
			if (in_name) {
				i++;
				continue;
			}
			if ((j = in_list_end(s, len, i, x.run))) {
				after = i = sh_literal(&x, i, j, PART_LIST, 2ull << 40);
				continue;
			}
			j = number_end(s, len, i);
			/* 1e5, 0x1F, 1_000, 1.2.3, 5'x': the normalizer's business */
			if (j < len && sc[s[j]] != SC_PLAIN && sc[s[j]] != SC_DASH &&
			    sc[s[j]] != SC_SLASH)
				return false;
			after = i = sh_literal(&x, i, j, PART_NUM, 0);
			continue;
		}
	}
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

static struct fpc_shape *shape_slot(const struct fp_cache *c, uint64_t key)
{
	return &c->shapes[(key ^ (key >> 29)) & (FPC_SHAPES - 1)];
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

void fp_cache_shape_put(struct fp_cache *c, const struct fp_shape *sh, size_t len,
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
}
