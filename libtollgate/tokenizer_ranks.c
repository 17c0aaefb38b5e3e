/* tokenizer_ranks.c - loads a .tiktoken.gz rank file into the hash table
 * described in tokenizer_ranks.h.
 *
 * Each line is "base64(token) rank". zlib reads the gzip stream line by line
 * (gzgets); OpenSSL's EVP_DecodeBlock decodes the base64, which yields 3 bytes
 * per 4 characters including the '=' padding, so the padding count is taken
 * off its result. Anything unexpected (a long or malformed line, a damaged or
 * truncated stream, a duplicate token or rank, too few tokens, a missing
 * single-byte token) fails the load with a message naming the file and line.
 */
#include "tokenizer_ranks.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#define LINE_MAX_BYTES 1024
#define RANK_LIMIT (1u << 24) /* far above any real vocabulary */

struct load_entry {
    uint32_t off, len, rank;
};

struct load_state {
    struct load_entry *ents;
    size_t nents, cap;
    unsigned char *pool;
    size_t poolsize, poolcap;
};

/* Looks token bytes up in the slots, ignoring the single-byte shortcut
 * (used while byte_rank is being filled in). */
static uint32_t find_slot(const struct tokenizer_ranks *r, const unsigned char *p, size_t n,
                          uint32_t h, uint32_t *slot)
{
    for (uint32_t i = h & r->mask;; i = (i + 1) & r->mask) {
        const struct tokenizer_slot *s = &r->slots[i];
        if (s->rank1 == 0) {
            *slot = i;
            return TOKENIZER_NO_RANK;
        }
        if (s->hash == h) {
            uint32_t rank = s->rank1 - 1;
            if (r->len[rank] == n && memcmp(r->pool + r->off[rank], p, n) == 0) {
                *slot = i;
                return rank;
            }
        }
    }
}

static int add_entry(struct load_state *st, const unsigned char *tok, size_t n, uint32_t rank)
{
    if (st->nents == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 65536;
        struct load_entry *e = realloc(st->ents, cap * sizeof(*e));
        if (e == NULL)
            return -1;
        st->ents = e;
        st->cap = cap;
    }
    if (st->poolsize + n > st->poolcap) {
        size_t cap = st->poolcap ? st->poolcap * 2 : 1u << 20;
        while (cap < st->poolsize + n)
            cap *= 2;
        if (cap > UINT32_MAX)
            return -1;
        unsigned char *p = realloc(st->pool, cap);
        if (p == NULL)
            return -1;
        st->pool = p;
        st->poolcap = cap;
    }
    memcpy(st->pool + st->poolsize, tok, n);
    st->ents[st->nents++] = (struct load_entry){(uint32_t)st->poolsize, (uint32_t)n, rank};
    st->poolsize += n;
    return 0;
}

/* Parses one line (without its newline) into st. */
static int parse_line(struct load_state *st, char *line, size_t ll, const char *path,
                      unsigned long lineno, uint32_t *maxrank, char *err, size_t errlen)
{
    unsigned char tok[LINE_MAX_BYTES];
    char *sp = memchr(line, ' ', ll);
    size_t b64len = sp ? (size_t)(sp - line) : 0;
    if (sp == NULL || b64len == 0 || b64len % 4 != 0 || sp[1] == '\0') {
        snprintf(err, errlen, "%s:%lu: expected 'base64(token) rank'", path, lineno);
        return -1;
    }
    uint32_t rank = 0;
    for (const char *q = sp + 1; *q != '\0'; q++) {
        if (*q < '0' || *q > '9' || rank >= RANK_LIMIT / 10) {
            snprintf(err, errlen, "%s:%lu: bad rank '%s'", path, lineno, sp + 1);
            return -1;
        }
        rank = rank * 10 + (uint32_t)(*q - '0');
    }
    /* EVP_DecodeBlock counts the bytes '=' padding stands for: drop them. */
    int n = EVP_DecodeBlock(tok, (const unsigned char *)line, (int)b64len);
    int pad = (line[b64len - 1] == '=') + (line[b64len - 2] == '=');
    if (n < 0 || n - pad <= 0) {
        snprintf(err, errlen, "%s:%lu: bad base64 '%.*s'", path, lineno, (int)b64len, line);
        return -1;
    }
    if (add_entry(st, tok, (size_t)(n - pad), rank) < 0) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    if (rank > *maxrank)
        *maxrank = rank;
    return 0;
}

static int read_file(struct load_state *st, const char *path, uint32_t *maxrank, char *err,
                     size_t errlen)
{
    errno = 0;
    gzFile gz = gzopen(path, "rb");
    if (gz == NULL) {
        snprintf(err, errlen, "%s: %s", path, errno ? strerror(errno) : "cannot open");
        return -1;
    }
    gzbuffer(gz, 1u << 17);
    char line[LINE_MAX_BYTES];
    unsigned long lineno = 0;
    int rc = 0;
    while (rc == 0 && gzgets(gz, line, sizeof(line)) != NULL) {
        lineno++;
        size_t ll = strlen(line);
        if (ll > 0 && line[ll - 1] == '\n') {
            line[--ll] = '\0';
        } else if (!gzeof(gz)) {
            snprintf(err, errlen, "%s:%lu: line too long or contains NUL", path, lineno);
            rc = -1;
            break;
        } else { /* last line: complete, or cut by a damaged stream? */
            int zerr = Z_OK;
            gzerror(gz, &zerr);
            if (zerr != Z_OK)
                break;
        }
        if (ll > 0 && line[ll - 1] == '\r')
            line[--ll] = '\0';
        if (ll > 0)
            rc = parse_line(st, line, ll, path, lineno, maxrank, err, errlen);
    }
    int zerr = Z_OK;
    const char *zmsg = gzerror(gz, &zerr);
    if (rc == 0 && zerr != Z_OK) {
        snprintf(err, errlen, "damaged gzip stream: %s", zmsg); /* zmsg names path */
        rc = -1;
    }
    if (gzclose(gz) != Z_OK && rc == 0) {
        snprintf(err, errlen, "%s: damaged gzip stream (close failed)", path);
        rc = -1;
    }
    return rc;
}

static int build_table(struct tokenizer_ranks *r, struct load_state *st, uint32_t maxrank,
                       const char *path, char *err, size_t errlen)
{
    r->nranks = maxrank + 1;
    r->count = (uint32_t)st->nents;
    r->pool = st->pool;
    st->pool = NULL;
    r->off = calloc(r->nranks, sizeof(*r->off));
    r->len = calloc(r->nranks, sizeof(*r->len));
    size_t nslots = 1;
    while (nslots < 2 * st->nents)
        nslots *= 2;
    r->slots = calloc(nslots, sizeof(*r->slots));
    r->mask = (uint32_t)(nslots - 1);
    if (r->off == NULL || r->len == NULL || r->slots == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    for (size_t i = 0; i < st->nents; i++) {
        const struct load_entry *e = &st->ents[i];
        if (r->len[e->rank] != 0) {
            snprintf(err, errlen, "%s: rank %u appears twice", path, e->rank);
            return -1;
        }
        r->off[e->rank] = e->off;
        r->len[e->rank] = e->len;
        if (e->len > r->max_len)
            r->max_len = e->len;
        const unsigned char *p = r->pool + e->off;
        uint32_t h = tokenizer_hash(p, e->len), slot;
        uint32_t dup = find_slot(r, p, e->len, h, &slot);
        if (dup != TOKENIZER_NO_RANK) {
            snprintf(err, errlen, "%s: ranks %u and %u have the same token", path, dup, e->rank);
            return -1;
        }
        r->slots[slot] = (struct tokenizer_slot){h, e->rank + 1};
    }
    for (unsigned b = 0; b < 256; b++) {
        unsigned char c = (unsigned char)b;
        uint32_t slot;
        r->byte_rank[b] = find_slot(r, &c, 1, tokenizer_hash(&c, 1), &slot);
        if (r->byte_rank[b] == TOKENIZER_NO_RANK) {
            snprintf(err, errlen, "%s: no token for the single byte 0x%02x", path, b);
            return -1;
        }
    }
    return 0;
}

int tokenizer_ranks_load(struct tokenizer_ranks *r, const char *path, uint32_t min_count,
                         char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    struct load_state st = {0};
    uint32_t maxrank = 0;
    int rc = read_file(&st, path, &maxrank, err, errlen);
    if (rc == 0 && st.nents <= min_count) {
        snprintf(err, errlen, "%s: %zu tokens, expected more than %u (truncated or not a "
                 "tiktoken rank file)", path, st.nents, min_count);
        rc = -1;
    }
    if (rc == 0)
        rc = build_table(r, &st, maxrank, path, err, errlen);
    free(st.ents);
    free(st.pool);
    if (rc < 0)
        tokenizer_ranks_free(r);
    return rc;
}

void tokenizer_ranks_free(struct tokenizer_ranks *r)
{
    free(r->pool);
    free(r->off);
    free(r->len);
    free(r->slots);
    memset(r, 0, sizeof(*r));
}
