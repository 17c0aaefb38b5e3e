/* strmap.h - a string-keyed hash map (open addressing, linear probing).
 *
 * Used for the price table, model groups and proxyd's key cache. The map
 * copies keys; values are the caller's pointers (the map never frees them,
 * strmap_free takes an optional destructor for that).
 */
#ifndef TG_STRMAP_H
#define TG_STRMAP_H

#include <stddef.h>

struct strmap;

struct strmap *strmap_new(void);
/* Calls free_value (if not NULL) on every value, then frees the map. */
void strmap_free(struct strmap *m, void (*free_value)(void *));
void *strmap_get(const struct strmap *m, const char *key);
/* Inserts or replaces; returns the old value (or NULL). *err set on ENOMEM. */
void *strmap_put(struct strmap *m, const char *key, void *value, int *err);
/* Removes key and returns its value (or NULL). */
void *strmap_del(struct strmap *m, const char *key);
size_t strmap_count(const struct strmap *m);
/* Iteration: returns the next used slot at or after *pos, or -1 at the end. */
int strmap_next(const struct strmap *m, size_t *pos, const char **key, void **value);

#endif
