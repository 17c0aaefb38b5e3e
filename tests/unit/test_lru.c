/* test_lru.c - the bounded LRU map (lru.c) and the seeded strmap under it:
 * eviction order, replacement and deletion free what they drop, the size
 * never passes its bound, and two maps hash the same keys differently. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lru.h"
#include "strmap.h"

static int freed;

static void count_free(void *p)
{
    freed++;
    free(p);
}

static char *val(int i)
{
    char *v = malloc(16);
    if (v != NULL)
        snprintf(v, 16, "v%d", i);
    return v;
}

static void put(struct lru *l, const char *key, int i)
{
    char *v = val(i);
    CHECK(v != NULL && lru_put(l, key, v) == 0, "put %s", key);
}

/* The least recently used entry goes first; a get makes an entry recent. */
static void eviction_order(void)
{
    struct lru *l = lru_new(3, count_free);
    freed = 0;
    put(l, "a", 1);
    put(l, "b", 2);
    put(l, "c", 3);
    CHECK_STR(lru_get(l, "a"), "v1"); /* order now b, c, a */
    put(l, "d", 4);                   /* evicts b */
    CHECK(lru_peek(l, "b") == NULL, "b evicted");
    CHECK(lru_peek(l, "a") != NULL && lru_peek(l, "c") != NULL, "a and c kept");
    CHECK(lru_count(l) == 3 && lru_evictions(l) == 1 && freed == 1, "count %zu evictions %llu",
          lru_count(l), (unsigned long long)lru_evictions(l));
    lru_peek(l, "c"); /* a peek does not make c recent: c is still the oldest */
    put(l, "e", 5);
    CHECK(lru_peek(l, "c") == NULL && lru_peek(l, "a") != NULL, "peek left c oldest");
    lru_free(l);
    CHECK(freed == 5, "lru_free frees the rest: %d", freed);
}

/* Replacing frees the old value and makes the key recent; del frees. */
static void replace_and_delete(void)
{
    struct lru *l = lru_new(2, count_free);
    freed = 0;
    put(l, "a", 1);
    put(l, "b", 2);
    put(l, "a", 3); /* replaces: a recent, b oldest */
    CHECK(freed == 1 && lru_count(l) == 2, "replace freed the old value");
    CHECK_STR(lru_peek(l, "a"), "v3");
    put(l, "c", 4);
    CHECK(lru_peek(l, "b") == NULL && lru_peek(l, "a") != NULL, "replace made a recent");
    lru_del(l, "a");
    lru_del(l, "missing");
    CHECK(freed == 3 && lru_count(l) == 1 && lru_peek(l, "a") == NULL, "del");
    put(l, "d", 5);
    put(l, "e", 6); /* the tail after a del is still right */
    CHECK(lru_peek(l, "c") == NULL && lru_count(l) == 2, "tail after del");
    lru_free(l);
    CHECK(freed == 6, "all freed: %d", freed);
}

/* Many random keys through a small map: the size stays at the bound and
 * the most recent keys are the ones kept. */
static void bounded(void)
{
    enum { MAX = 1000, N = 50000 };
    struct lru *l = lru_new(MAX, count_free);
    char key[32];
    freed = 0;
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "sk-%08x%d", (unsigned)rand(), i);
        put(l, key, i);
        if (lru_count(l) > MAX)
            break;
    }
    CHECK(lru_count(l) == MAX, "count %zu", lru_count(l));
    CHECK(lru_evictions(l) == N - MAX && freed == N - MAX, "evictions %llu",
          (unsigned long long)lru_evictions(l));
    CHECK_STR(lru_get(l, key), "v49999");
    lru_free(l);
}

/* strmap: growth and backward-shift deletion keep every key findable. */
static void strmap_grow_delete(void)
{
    struct strmap *m = strmap_new();
    char key[32];
    int err = 0, bad = 0;
    for (uintptr_t i = 0; i < 20000 && err == 0; i++) {
        snprintf(key, sizeof(key), "k%lu", (unsigned long)i);
        strmap_put(m, key, (void *)(i + 1), &err);
    }
    for (uintptr_t i = 0; i < 20000; i += 3) {
        snprintf(key, sizeof(key), "k%lu", (unsigned long)i);
        bad += strmap_del(m, key) != (void *)(i + 1);
    }
    for (uintptr_t i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "k%lu", (unsigned long)i);
        bad += strmap_get(m, key) != (i % 3 == 0 ? NULL : (void *)(i + 1));
    }
    CHECK(err == 0 && bad == 0 && strmap_count(m) == 20000 - 6667, "bad %d count %zu", bad,
          strmap_count(m));
    strmap_free(m, NULL);
}

/* The order of a map's slots depends on its seed: two maps holding the same
 * keys iterate them differently (a fixed hash gives the same order). */
static void strmap_seeded(void)
{
    struct strmap *a = strmap_new(), *b = strmap_new();
    char key[16];
    int err = 0, same = 0;
    for (int i = 0; i < 64; i++) {
        snprintf(key, sizeof(key), "end-user-%d", i);
        strmap_put(a, key, a, &err);
        strmap_put(b, key, b, &err);
    }
    size_t pa = 0, pb = 0;
    const char *ka, *kb;
    void *v;
    while (strmap_next(a, &pa, &ka, &v) == 0 && strmap_next(b, &pb, &kb, &v) == 0)
        same += strcmp(ka, kb) == 0;
    CHECK(err == 0 && same < 64, "two maps iterate %d of 64 keys in the same order", same);
    strmap_free(a, NULL);
    strmap_free(b, NULL);
}

int main(void)
{
    eviction_order();
    replace_and_delete();
    bounded();
    strmap_grow_delete();
    strmap_seeded();
    return check_summary("lru");
}
