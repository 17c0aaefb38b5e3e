/* strmap.c - string-keyed hash map; see strmap.h.
 *
 * SipHash-1-3 keyed with a random seed per map (getrandom), so a client
 * that chooses the keys (API keys, end-user ids, tags) cannot make them
 * collide into one long probe run; power-of-two capacity, load factor
 * <= 1/2, and backward shift deletion so there are no tombstones to clean up.
 */
#include "strmap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct slot {
    char *key; /* NULL = empty */
    void *value;
    uint64_t hash;
};

struct strmap {
    struct slot *slots;
    size_t cap; /* power of two */
    size_t count;
    uint64_t k0, k1; /* the hash's secret seed */
};

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND(v0, v1, v2, v3)                                                   \
    do {                                                                           \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                  \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                     \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                     \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                  \
    } while (0)

/* SipHash-1-3 (Aumasson and Bernstein; the variant Rust's and Python's
 * tables use) of the NUL-terminated s under the map's seed. */
static uint64_t hash_str(const struct strmap *m, const char *s)
{
    size_t len = strlen(s), i = 0;
    uint64_t v0 = m->k0 ^ 0x736f6d6570736575ULL, v1 = m->k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = m->k0 ^ 0x6c7967656e657261ULL, v3 = m->k1 ^ 0x7465646279746573ULL;
    uint64_t b = (uint64_t)len << 56, w;
    for (; i + 8 <= len; i += 8) {
        memcpy(&w, s + i, 8); /* little-endian hosts (x86-64, arm64) */
        v3 ^= w;
        SIPROUND(v0, v1, v2, v3);
        v0 ^= w;
    }
    for (size_t k = 0; i + k < len; k++)
        b |= (uint64_t)(unsigned char)s[i + k] << (8 * k);
    v3 ^= b;
    SIPROUND(v0, v1, v2, v3);
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

/* A fresh secret seed; -1 when the kernel gives no randomness. */
static int seed(struct strmap *m)
{
    uint64_t k[2];
    ssize_t n;
    do
        n = getrandom(k, sizeof(k), 0);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(k))
        return -1;
    m->k0 = k[0];
    m->k1 = k[1];
    return 0;
}

struct strmap *strmap_new(void)
{
    struct strmap *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    if (seed(m) < 0) {
        free(m);
        return NULL;
    }
    m->cap = 16;
    m->slots = calloc(m->cap, sizeof(*m->slots));
    if (m->slots == NULL) {
        free(m);
        return NULL;
    }
    return m;
}

void strmap_free(struct strmap *m, void (*free_value)(void *))
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key == NULL)
            continue;
        free(m->slots[i].key);
        if (free_value != NULL)
            free_value(m->slots[i].value);
    }
    free(m->slots);
    free(m);
}

static size_t find_slot(const struct strmap *m, const char *key, uint64_t h)
{
    size_t i = (size_t)h & (m->cap - 1);
    while (m->slots[i].key != NULL &&
           (m->slots[i].hash != h || strcmp(m->slots[i].key, key) != 0))
        i = (i + 1) & (m->cap - 1);
    return i;
}

void *strmap_get(const struct strmap *m, const char *key)
{
    size_t i = find_slot(m, key, hash_str(m, key));
    return m->slots[i].key != NULL ? m->slots[i].value : NULL;
}

static int grow(struct strmap *m)
{
    size_t old_cap = m->cap;
    struct slot *old = m->slots;
    struct slot *slots = calloc(old_cap * 2, sizeof(*slots));
    if (slots == NULL)
        return -1;
    m->slots = slots;
    m->cap = old_cap * 2;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].key != NULL)
            m->slots[find_slot(m, old[i].key, old[i].hash)] = old[i];
    }
    free(old);
    return 0;
}

void *strmap_put(struct strmap *m, const char *key, void *value, int *err)
{
    uint64_t h = hash_str(m, key);
    size_t i = find_slot(m, key, h);
    *err = 0;
    if (m->slots[i].key != NULL) {
        void *old = m->slots[i].value;
        m->slots[i].value = value;
        return old;
    }
    if ((m->count + 1) * 2 > m->cap) {
        if (grow(m) < 0) {
            *err = -1;
            return NULL;
        }
        i = find_slot(m, key, h);
    }
    char *copy = strdup(key);
    if (copy == NULL) {
        *err = -1;
        return NULL;
    }
    m->slots[i] = (struct slot){copy, value, h};
    m->count++;
    return NULL;
}

void *strmap_del(struct strmap *m, const char *key)
{
    size_t i = find_slot(m, key, hash_str(m, key));
    if (m->slots[i].key == NULL)
        return NULL;
    void *value = m->slots[i].value;
    free(m->slots[i].key);
    m->slots[i].key = NULL;
    m->count--;
    /* Shift later members of the probe run back into the hole. */
    for (size_t j = (i + 1) & (m->cap - 1); m->slots[j].key != NULL;
         j = (j + 1) & (m->cap - 1)) {
        size_t home = (size_t)m->slots[j].hash & (m->cap - 1);
        int between = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (between)
            continue;
        m->slots[i] = m->slots[j];
        m->slots[j].key = NULL;
        i = j;
    }
    return value;
}

size_t strmap_count(const struct strmap *m)
{
    return m->count;
}

int strmap_next(const struct strmap *m, size_t *pos, const char **key, void **value)
{
    for (; *pos < m->cap; (*pos)++) {
        if (m->slots[*pos].key != NULL) {
            *key = m->slots[*pos].key;
            *value = m->slots[*pos].value;
            (*pos)++;
            return 0;
        }
    }
    return -1;
}
