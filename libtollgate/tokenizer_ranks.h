/* tokenizer_ranks.h - internal to the tokenizer: the rank table of one
 * encoding (token bytes <-> rank), loaded from a gzip'd .tiktoken file.
 *
 * Lookups go through an open-addressing hash table (linear probing) whose
 * slots hold a 32-bit hash and rank + 1; the token bytes live once, back to
 * back, in a pool indexed by rank, which also serves decoding. Keys are
 * arbitrary byte strings (NUL included). The table is immutable once loaded,
 * so lookups need no locking.
 */
#ifndef TG_TOKENIZER_RANKS_H
#define TG_TOKENIZER_RANKS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define TOKENIZER_NO_RANK UINT32_MAX

struct tokenizer_slot {
    uint32_t hash;
    uint32_t rank1; /* rank + 1; 0 = empty */
};

struct tokenizer_ranks {
    unsigned char *pool;          /* token bytes, back to back */
    uint32_t *off;                /* by rank: offset into pool */
    uint32_t *len;                /* by rank: byte length, 0 = unused rank */
    uint32_t nranks;              /* highest rank + 1 */
    uint32_t count;               /* tokens loaded */
    uint32_t max_len;             /* longest token, in bytes */
    struct tokenizer_slot *slots; /* mask + 1 slots */
    uint32_t mask;
    uint32_t byte_rank[256]; /* rank of each single-byte token */
};

/* Reads path ("base64(token) rank" lines, gzip'd). Fails, with err set, on
 * I/O or format errors, duplicates, no more than min_count tokens or a missing
 * single-byte token. */
int tokenizer_ranks_load(struct tokenizer_ranks *r, const char *path, uint32_t min_count,
                         char *err, size_t errlen);
void tokenizer_ranks_free(struct tokenizer_ranks *r);

static inline uint32_t tokenizer_hash(const unsigned char *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)n * 0x100000001b3ull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    if (n > 0) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return (uint32_t)h;
}

/* The rank of the token p[0..n), or TOKENIZER_NO_RANK. */
static inline uint32_t tokenizer_rank(const struct tokenizer_ranks *r, const unsigned char *p,
                                      size_t n)
{
    if (n == 1)
        return r->byte_rank[p[0]];
    if (n > r->max_len)
        return TOKENIZER_NO_RANK;
    uint32_t h = tokenizer_hash(p, n);
    for (uint32_t i = h & r->mask;; i = (i + 1) & r->mask) {
        const struct tokenizer_slot *s = &r->slots[i];
        if (s->rank1 == 0)
            return TOKENIZER_NO_RANK;
        if (s->hash == h) {
            uint32_t rank = s->rank1 - 1;
            if (r->len[rank] == n && memcmp(r->pool + r->off[rank], p, n) == 0)
                return rank;
        }
    }
}

#endif
