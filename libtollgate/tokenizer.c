/* tokenizer.c - tiktoken-compatible byte-pair encoding (o200k_base,
 * cl100k_base): pre-tokenizing regex, byte-pair merge, the load-once cache
 * of encodings and the model -> encoding map.
 *
 * Per call: PCRE2 finds the next piece from the current offset over the
 * whole text (so lookaheads see what follows); bytes skipped before a match
 * (only invalid UTF-8 can be skipped) become single-byte tokens. A piece
 * that is itself a token is one lookup; otherwise it is merged like
 * tiktoken's byte_pair_merge: repeatedly merge the adjacent pair whose
 * concatenation has the lowest rank, the leftmost on ties. Short pieces do
 * that with a scan over a parts array; long ones with a min-heap keyed by
 * (rank, position) with stale entries skipped, which picks the same pair at
 * every step in O(log n).
 *
 * PCRE2 runs JIT-compiled when it can (PCRE2_MATCH_INVALID_UTF, so invalid
 * UTF-8 never fails a match: it is simply never inside one). Without JIT the
 * interpreter matches in a growing window (see next_match) to stay linear.
 *
 * The split patterns are OpenAI's published ones. One adjustment: \s is
 * written [\s\x{85}] because tiktoken's regex engine (Rust) takes Unicode
 * White_Space for \s, which includes U+0085 (NEL), while PCRE2's \s does not.
 */
#include "tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "tokenizer_ranks.h"

#ifndef TOKENIZER_DATA_DIR
#define TOKENIZER_DATA_DIR "data/tokenizers"
#endif

#define MIN_RANK_COUNT 100000 /* a real rank file has more tokens than this */
#define SMALL_PIECE 256       /* pieces up to this many bytes merge by scanning */
#define BIG_JIT_STACK (256u << 20)
#define BIG_HEAP_LIMIT (1u << 30) /* KiB, for the interpreter when JIT is absent */

#define WS "\\s\\x{85}"
#define CONTRACTION "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
#define UPPER "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]"
#define LOWER "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]"

static const struct encoding_spec {
    const char *name;
    const char *pattern;
} specs[] = {
    [TOKENIZER_O200K] = {"o200k_base",
                         "[^\\r\\n\\p{L}\\p{N}]?" UPPER "*" LOWER "+" CONTRACTION "?"
                         "|[^\\r\\n\\p{L}\\p{N}]?" UPPER "+" LOWER "*" CONTRACTION "?"
                         "|\\p{N}{1,3}"
                         "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n/]*"
                         "|[" WS "]*[\\r\\n]+"
                         "|[" WS "]+(?![^" WS "])"
                         "|[" WS "]+"},
    [TOKENIZER_CL100K] = {"cl100k_base",
                          "'(?i:[sdmt]|ll|ve|re)"
                          "|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}++"
                          "|\\p{N}{1,3}+"
                          "| ?[^" WS "\\p{L}\\p{N}]++[\\r\\n]*+"
                          "|[" WS "]++$"
                          "|[" WS "]*[\\r\\n]"
                          "|[" WS "]+(?![^" WS "])"
                          "|[" WS "]"},
};
#define N_ENCODINGS (sizeof(specs) / sizeof(specs[0]))

struct tok_encoding {
    const char *name;
    struct tokenizer_ranks ranks;
    pcre2_code *re;
    bool jit;
};

/* The cache: filled once per encoding under g_lock, read lock-free after. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(struct tok_encoding *) g_encodings[N_ENCODINGS];
static char g_data_dir[4096]; /* guarded by g_lock; "" = TOKENIZER_DATA_DIR */
static bool g_data_dir_too_long;

const char *tokenizer_encoding_name(enum tokenizer_encoding enc)
{
    return (unsigned)enc < N_ENCODINGS ? specs[enc].name : "?";
}

const char *tokenizer_default_data_dir(void)
{
    return TOKENIZER_DATA_DIR;
}

void tokenizer_set_data_dir(const char *dir)
{
    pthread_mutex_lock(&g_lock);
    g_data_dir_too_long = dir != NULL && strlen(dir) >= sizeof(g_data_dir);
    snprintf(g_data_dir, sizeof(g_data_dir), "%s", dir && !g_data_dir_too_long ? dir : "");
    pthread_mutex_unlock(&g_lock);
}

static void encoding_free(struct tok_encoding *e)
{
    if (e == NULL)
        return;
    pcre2_code_free(e->re);
    tokenizer_ranks_free(&e->ranks);
    free(e);
}

/* Where encoding `enc`'s rank file is read from: the directory set, else the
 * source tree's (a build run in place), else where `cmake --install` put the
 * files (installed daemons on a machine without the source tree). Called
 * with g_lock held. */
static void rank_path(enum tokenizer_encoding enc, char *path, size_t size)
{
    snprintf(path, size, "%s/%s.tiktoken.gz", g_data_dir[0] ? g_data_dir : TOKENIZER_DATA_DIR,
             specs[enc].name);
#ifdef TOKENIZER_INSTALLED_DIR
    if (g_data_dir[0] == '\0' && access(path, R_OK) != 0)
        snprintf(path, size, "%s/%s.tiktoken.gz", TOKENIZER_INSTALLED_DIR, specs[enc].name);
#endif
}

/* Called with g_lock held. */
static struct tok_encoding *encoding_load(enum tokenizer_encoding enc, char *err, size_t errlen)
{
    if (g_data_dir_too_long) {
        snprintf(err, errlen, "tokenizer data directory name too long");
        return NULL;
    }
    char path[sizeof(g_data_dir) + 64];
    rank_path(enc, path, sizeof(path));
    struct tok_encoding *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->name = specs[enc].name;
    if (tokenizer_ranks_load(&e->ranks, path, MIN_RANK_COUNT, err, errlen) < 0) {
        free(e);
        return NULL;
    }
    int code;
    PCRE2_SIZE at;
    e->re = pcre2_compile((PCRE2_SPTR)specs[enc].pattern, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY,
                          &code, &at, NULL);
    if (e->re == NULL) {
        char msg[256];
        pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof(msg));
        snprintf(err, errlen, "%s: split pattern, offset %zu: %s", specs[enc].name, (size_t)at,
                 msg);
        encoding_free(e);
        return NULL;
    }
#ifndef TOKENIZER_NO_JIT /* defined only to test the interpreter path */
    e->jit = pcre2_jit_compile(e->re, PCRE2_JIT_COMPLETE) == 0; /* else: interpreter */
#endif
    return e;
}

static const struct tok_encoding *encoding_get(enum tokenizer_encoding enc, char *err,
                                               size_t errlen)
{
    if ((unsigned)enc >= N_ENCODINGS) {
        snprintf(err, errlen, "unknown encoding %d", (int)enc);
        return NULL;
    }
    struct tok_encoding *e = atomic_load_explicit(&g_encodings[enc], memory_order_acquire);
    if (e != NULL)
        return e;
    pthread_mutex_lock(&g_lock);
    e = atomic_load_explicit(&g_encodings[enc], memory_order_relaxed);
    if (e == NULL) {
        e = encoding_load(enc, err, errlen);
        if (e != NULL)
            atomic_store_explicit(&g_encodings[enc], e, memory_order_release);
    }
    pthread_mutex_unlock(&g_lock);
    return e;
}

void tokenizer_cleanup(void)
{
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < N_ENCODINGS; i++)
        encoding_free(atomic_exchange(&g_encodings[i], NULL));
    pthread_mutex_unlock(&g_lock);
}

/* ---- output ---- */

/* Collects ids, or only counts them when ids is NULL. */
struct sink {
    uint32_t *ids;
    size_t n, cap;
    bool oom;
};

static bool sink_grow(struct sink *s)
{
    size_t cap = s->cap * 2;
    uint32_t *ids = realloc(s->ids, cap * sizeof(*ids));
    if (ids == NULL) {
        s->oom = true;
        return false;
    }
    s->ids = ids;
    s->cap = cap;
    return true;
}

static inline void sink_push(struct sink *s, uint32_t id)
{
    if (s->ids != NULL) {
        if (s->n == s->cap && !sink_grow(s))
            return;
        s->ids[s->n] = id;
    }
    s->n++;
}

/* ---- byte-pair merge ---- */

/* Pieces up to SMALL_PIECE bytes: tiktoken's scan over a parts array. */
static void merge_small(const struct tokenizer_ranks *r, const unsigned char *p, size_t n,
                        struct sink *out)
{
    uint32_t start[SMALL_PIECE + 1]; /* start[i]: first byte of part i; start[m] = n */
    uint32_t tok[SMALL_PIECE];       /* rank of part i */
    uint32_t pair[SMALL_PIECE];      /* rank of parts i and i+1 together */
    size_t m = n;
    for (size_t i = 0; i < n; i++) {
        start[i] = (uint32_t)i;
        tok[i] = r->byte_rank[p[i]];
        pair[i] = i + 1 < n ? tokenizer_rank(r, p + i, 2) : TOKENIZER_NO_RANK;
    }
    start[n] = (uint32_t)n;
    while (m > 1) {
        uint32_t best = TOKENIZER_NO_RANK;
        size_t bi = 0;
        for (size_t i = 0; i + 1 < m; i++) {
            if (pair[i] < best) {
                best = pair[i];
                bi = i;
            }
        }
        if (best == TOKENIZER_NO_RANK)
            break;
        tok[bi] = best; /* part bi absorbs part bi + 1 */
        memmove(start + bi + 1, start + bi + 2, (m - bi - 1) * sizeof(start[0]));
        memmove(tok + bi + 1, tok + bi + 2, (m - bi - 2) * sizeof(tok[0]));
        memmove(pair + bi + 1, pair + bi + 2, (m - bi - 2) * sizeof(pair[0]));
        m--;
        pair[bi] = bi + 1 < m ? tokenizer_rank(r, p + start[bi], start[bi + 2] - start[bi])
                              : TOKENIZER_NO_RANK;
        if (bi > 0)
            pair[bi - 1] = tokenizer_rank(r, p + start[bi - 1], start[bi + 1] - start[bi - 1]);
    }
    for (size_t i = 0; i < m; i++)
        sink_push(out, tok[i]);
}

/* Min-heap of (rank << 32 | position). */
struct heap {
    uint64_t *a;
    size_t n, cap;
};

static bool heap_push(struct heap *h, uint64_t v)
{
    if (h->n == h->cap) {
        size_t cap = h->cap * 2;
        uint64_t *a = realloc(h->a, cap * sizeof(*a));
        if (a == NULL)
            return false;
        h->a = a;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0 && h->a[(i - 1) / 2] > v) {
        h->a[i] = h->a[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->a[i] = v;
    return true;
}

static uint64_t heap_pop(struct heap *h)
{
    uint64_t top = h->a[0], v = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->a[c + 1] < h->a[c])
            c++;
        if (h->a[c] >= v)
            break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n > 0)
        h->a[i] = v;
    return top;
}

/* Long pieces: the same merges driven by a heap. Parts are a linked list by
 * start byte; an entry is current iff its part is alive and still has that
 * pair rank (a rank names one byte string, so equal rank = same pair). */
static int merge_large(const struct tokenizer_ranks *r, const unsigned char *p, size_t n,
                       struct sink *out)
{
    if (n >= UINT32_MAX)
        return -1;
    uint32_t *nxt = malloc(n * sizeof(*nxt)), *prv = malloc(n * sizeof(*prv));
    uint32_t *tok = malloc(n * sizeof(*tok)), *pair = malloc(n * sizeof(*pair));
    struct heap h = {malloc(n * sizeof(uint64_t)), 0, n};
    int rc = -1;
    if (!nxt || !prv || !tok || !pair || !h.a)
        goto done;
    for (size_t i = 0; i < n; i++) {
        nxt[i] = (uint32_t)(i + 1);
        prv[i] = (uint32_t)(i - 1); /* unused for i = 0 */
        tok[i] = r->byte_rank[p[i]];
        pair[i] = i + 1 < n ? tokenizer_rank(r, p + i, 2) : TOKENIZER_NO_RANK;
        if (pair[i] != TOKENIZER_NO_RANK)
            h.a[h.n++] = (uint64_t)pair[i] << 32 | i; /* ascending i: heapified below */
    }
    for (size_t i = h.n / 2; i-- > 0;) { /* sift down: build the heap */
        uint64_t v = h.a[i];
        size_t j = i;
        for (;;) {
            size_t c = 2 * j + 1;
            if (c >= h.n)
                break;
            if (c + 1 < h.n && h.a[c + 1] < h.a[c])
                c++;
            if (h.a[c] >= v)
                break;
            h.a[j] = h.a[c];
            j = c;
        }
        h.a[j] = v;
    }
    while (h.n > 0) {
        uint64_t top = heap_pop(&h);
        uint32_t rank = (uint32_t)(top >> 32), i = (uint32_t)top;
        if (tok[i] == TOKENIZER_NO_RANK || pair[i] != rank)
            continue;
        uint32_t j = nxt[i];
        tok[i] = rank;
        tok[j] = TOKENIZER_NO_RANK;
        pair[j] = TOKENIZER_NO_RANK;
        nxt[i] = nxt[j];
        if (nxt[i] < n)
            prv[nxt[i]] = i;
        uint32_t k = nxt[i];
        pair[i] = k < n ? tokenizer_rank(r, p + i, nxt[k] - i) : TOKENIZER_NO_RANK;
        if (pair[i] != TOKENIZER_NO_RANK && !heap_push(&h, (uint64_t)pair[i] << 32 | i))
            goto done;
        if (i > 0) {
            uint32_t b = prv[i];
            pair[b] = tokenizer_rank(r, p + b, nxt[i] - b);
            if (pair[b] != TOKENIZER_NO_RANK && !heap_push(&h, (uint64_t)pair[b] << 32 | b))
                goto done;
        }
    }
    for (uint32_t i = 0; i < n; i = nxt[i])
        sink_push(out, tok[i]);
    rc = 0;
done:
    free(nxt);
    free(prv);
    free(tok);
    free(pair);
    free(h.a);
    return rc;
}

static int encode_piece(const struct tokenizer_ranks *r, const unsigned char *p, size_t n,
                        struct sink *out)
{
    uint32_t rank = tokenizer_rank(r, p, n);
    if (rank != TOKENIZER_NO_RANK) {
        sink_push(out, rank);
        return 0;
    }
    if (n <= SMALL_PIECE) {
        merge_small(r, p, n, out);
        return 0;
    }
    return merge_large(r, p, n, out);
}

/* ---- pre-tokenizing ---- */

struct matcher {
    const struct tok_encoding *e;
    const unsigned char *text;
    size_t len;
    pcre2_match_data *md;
    pcre2_match_context *mctx; /* only once a default limit was hit */
    pcre2_jit_stack *jstack;
};

/* pcre2_match over text[0, end) from offset; on hitting a JIT stack, heap or
 * match limit, retries once with generous limits. */
static int run_match(struct matcher *m, size_t end, size_t offset, uint32_t opts)
{
    const struct tok_encoding *e = m->e;
    for (;;) {
        int rc = e->jit ? pcre2_jit_match(e->re, m->text, end, offset, opts, m->md, m->mctx)
                        : pcre2_match(e->re, m->text, end, offset, opts, m->md, m->mctx);
        bool limit = rc == PCRE2_ERROR_JIT_STACKLIMIT || rc == PCRE2_ERROR_HEAPLIMIT ||
                     rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT;
        if (!limit || m->mctx != NULL)
            return rc;
        m->mctx = pcre2_match_context_create(NULL);
        if (m->mctx == NULL)
            return rc;
        if (e->jit) {
            m->jstack = pcre2_jit_stack_create(64u << 10, BIG_JIT_STACK, NULL);
            if (m->jstack != NULL)
                pcre2_jit_stack_assign(m->mctx, NULL, m->jstack);
        }
        pcre2_set_heap_limit(m->mctx, BIG_HEAP_LIMIT);
        pcre2_set_match_limit(m->mctx, UINT32_MAX);
        pcre2_set_depth_limit(m->mctx, UINT32_MAX);
    }
}

/* The next piece at or after offset: 1 with the piece [*s, *t) (bytes before
 * *s are not valid UTF-8), 0 if no piece starts before *s (skip to *s), -1
 * on error. With JIT the whole text is the subject. The interpreter, given
 * PCRE2_MATCH_INVALID_UTF, scans the rest of the subject for invalid UTF-8
 * on every call, which makes a long text quadratic; so it gets a window that
 * grows until the match neither ends at nor looks past the window's end
 * (PCRE2_PARTIAL_HARD reports any look at the end, $ and lookaheads
 * included). Windows end on a character boundary. */
static int next_match(struct matcher *m, size_t offset, size_t *s, size_t *t, char *err,
                      size_t errlen)
{
    size_t window = 256;
    for (;;) {
        size_t end = m->len;
        uint32_t opts = 0;
        if (!m->e->jit && m->len - offset > window) {
            end = offset + window;
            for (int k = 0; k < 3 && (m->text[end] & 0xc0) == 0x80; k++)
                end--; /* a 4th continuation byte would be invalid anyway */
            opts = PCRE2_PARTIAL_HARD;
        }
        int rc = run_match(m, end, offset, opts);
        if (rc == PCRE2_ERROR_PARTIAL) {
            window *= 2;
            continue;
        }
        if (rc >= 0) {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->md);
            *s = ov[0];
            *t = ov[1];
            if (*t > *s)
                return 1;
            *s = *s + 1; /* an empty match: impossible with these patterns */
            return 0;
        }
        if (rc == PCRE2_ERROR_NOMATCH) {
            *s = end;
            return 0;
        }
        char msg[256];
        pcre2_get_error_message(rc, (PCRE2_UCHAR *)msg, sizeof(msg));
        snprintf(err, errlen, "%s: split at offset %zu: %s", m->e->name, offset, msg);
        return -1;
    }
}

static int encode_into(enum tokenizer_encoding enc, const char *text, size_t len,
                       struct sink *out, char *err, size_t errlen)
{
    const struct tok_encoding *e = encoding_get(enc, err, errlen);
    if (e == NULL)
        return -1;
    if (len == 0)
        return 0;
    const struct tokenizer_ranks *r = &e->ranks;
    struct matcher m = {e, (const unsigned char *)text, len, NULL, NULL, NULL};
    m.md = pcre2_match_data_create(1, NULL);
    int rc = 0;
    size_t pos = 0;
    while (m.md != NULL && rc == 0 && pos < len && !out->oom) {
        size_t s = len, t = len;
        int found = next_match(&m, pos, &s, &t, err, errlen);
        if (found < 0) {
            rc = -1;
            break;
        }
        for (; pos < s; pos++) /* bytes no piece covers: invalid UTF-8 */
            sink_push(out, r->byte_rank[m.text[pos]]);
        if (found > 0) {
            if (encode_piece(r, m.text + s, t - s, out) < 0)
                out->oom = true;
            pos = t;
        }
    }
    if (m.md == NULL || (rc == 0 && out->oom)) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    pcre2_match_data_free(m.md);
    pcre2_match_context_free(m.mctx);
    pcre2_jit_stack_free(m.jstack);
    return rc;
}

int tokenizer_encode(enum tokenizer_encoding enc, const char *text, size_t len, uint32_t **ids,
                     size_t *n, char *err, size_t errlen)
{
    struct sink out = {NULL, 0, len / 4 + 16, false};
    out.ids = malloc(out.cap * sizeof(*out.ids));
    *ids = NULL;
    *n = 0;
    if (out.ids == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (encode_into(enc, text, len, &out, err, errlen) < 0) {
        free(out.ids);
        return -1;
    }
    *ids = out.ids;
    *n = out.n;
    return 0;
}

int64_t tokenizer_count(enum tokenizer_encoding enc, const char *text, size_t len, char *err,
                        size_t errlen)
{
    struct sink out = {NULL, 0, 0, false};
    if (encode_into(enc, text, len, &out, err, errlen) < 0)
        return -1;
    return (int64_t)out.n;
}

int tokenizer_decode_bytes(enum tokenizer_encoding enc, const uint32_t *ids, size_t n, char **out,
                           size_t *outlen, char *err, size_t errlen)
{
    *out = NULL;
    *outlen = 0;
    const struct tok_encoding *e = encoding_get(enc, err, errlen);
    if (e == NULL)
        return -1;
    const struct tokenizer_ranks *r = &e->ranks;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= r->nranks || r->len[ids[i]] == 0) {
            snprintf(err, errlen, "%s: %u is not a token", specs[enc].name, ids[i]);
            return -1;
        }
        total += r->len[ids[i]];
    }
    char *buf = malloc(total + 1);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(buf + at, r->pool + r->off[ids[i]], r->len[ids[i]]);
        at += r->len[ids[i]];
    }
    buf[at] = '\0';
    *out = buf;
    *outlen = at;
    return 0;
}

/* ---- model names ---- */

static bool has_prefix(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

enum tokenizer_encoding tokenizer_for_model(const char *model, bool *estimate)
{
    static const char *const o200k[] = {"gpt-4o", "gpt-4.1", "gpt-4.5", "o1", "o3", "o4",
                                        "gpt-5", "chatgpt-4o"};
    static const char *const cl100k[] = {"gpt-4", "gpt-3.5", "gpt-35", "text-embedding-ada-002",
                                         "text-embedding-3-"};
    bool dummy;
    if (estimate == NULL)
        estimate = &dummy;
    *estimate = false;
    if (model != NULL) {
        const char *slash = strrchr(model, '/');
        const char *name = slash ? slash + 1 : model;
        if (has_prefix(name, "ft:"))
            name += 3;
        for (size_t i = 0; i < sizeof(o200k) / sizeof(o200k[0]); i++)
            if (has_prefix(name, o200k[i]))
                return TOKENIZER_O200K;
        for (size_t i = 0; i < sizeof(cl100k) / sizeof(cl100k[0]); i++)
            if (has_prefix(name, cl100k[i]))
                return TOKENIZER_CL100K;
    }
    *estimate = true;
    return TOKENIZER_CL100K;
}
