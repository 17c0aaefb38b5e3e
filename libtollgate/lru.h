/* lru.h - a string-keyed map with a fixed number of entries that forgets
 * the least recently used one to make room (proxyd's key and owner caches).
 *
 * The map owns its values: lru_free, lru_del, a replacing lru_put and an
 * eviction each call the destructor given to lru_new. A pointer returned by
 * lru_get stays valid until the next lru_put, lru_del or lru_free on the
 * same map, so a caller copies what it keeps past that. Not thread-safe:
 * one thread owns a map.
 */
#ifndef TG_LRU_H
#define TG_LRU_H

#include <stddef.h>
#include <stdint.h>

struct lru;

/* max_entries >= 1; free_value may be NULL. NULL on ENOMEM. */
struct lru *lru_new(size_t max_entries, void (*free_value)(void *));
void lru_free(struct lru *l);

/* The value of key (NULL: none) and marks it most recently used. */
void *lru_get(struct lru *l, const char *key);
/* Like lru_get without marking it used. */
void *lru_peek(const struct lru *l, const char *key);
/* Inserts or replaces key's value (the old one is freed) and marks it most
 * recently used; when the map is full, the least recently used entry is
 * freed first. Takes over value on success; -1 on ENOMEM (value not taken). */
int lru_put(struct lru *l, const char *key, void *value);
/* Frees key's entry, if any. */
void lru_del(struct lru *l, const char *key);

size_t lru_count(const struct lru *l);
/* Entries forgotten to make room, since lru_new. */
uint64_t lru_evictions(const struct lru *l);

#endif
