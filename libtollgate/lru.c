/* lru.c - bounded least-recently-used map; see lru.h.
 *
 * Design: a strmap (seeded hash, so clients cannot choose colliding keys)
 * from key to node, and a doubly linked list of the nodes, most recently
 * used at the head. A node carries its key so the tail can be removed from
 * the strmap when it is evicted. Every operation is O(1) expected.
 */
#include "lru.h"

#include <stdlib.h>
#include <string.h>

#include "strmap.h"

struct node {
    struct node *prev, *next;
    void *value;
    char key[]; /* NUL-terminated */
};

struct lru {
    struct strmap *map; /* key -> struct node */
    struct node *head, *tail;
    size_t max;
    uint64_t evictions;
    void (*free_value)(void *);
};

struct lru *lru_new(size_t max_entries, void (*free_value)(void *))
{
    struct lru *l = calloc(1, sizeof(*l));
    if (l == NULL || (l->map = strmap_new()) == NULL) {
        free(l);
        return NULL;
    }
    l->max = max_entries > 0 ? max_entries : 1;
    l->free_value = free_value;
    return l;
}

static void node_free(struct lru *l, struct node *n)
{
    if (l->free_value != NULL)
        l->free_value(n->value);
    free(n);
}

void lru_free(struct lru *l)
{
    if (l == NULL)
        return;
    for (struct node *n = l->head, *next; n != NULL; n = next) {
        next = n->next;
        node_free(l, n);
    }
    strmap_free(l->map, NULL);
    free(l);
}

static void unlink_node(struct lru *l, struct node *n)
{
    if (n->prev != NULL)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next != NULL)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
}

static void push_head(struct lru *l, struct node *n)
{
    n->prev = NULL;
    n->next = l->head;
    if (l->head != NULL)
        l->head->prev = n;
    else
        l->tail = n;
    l->head = n;
}

void *lru_get(struct lru *l, const char *key)
{
    struct node *n = strmap_get(l->map, key);
    if (n == NULL)
        return NULL;
    if (n != l->head) {
        unlink_node(l, n);
        push_head(l, n);
    }
    return n->value;
}

void *lru_peek(const struct lru *l, const char *key)
{
    struct node *n = strmap_get(l->map, key);
    return n != NULL ? n->value : NULL;
}

/* Forgets the least recently used entry. */
static void evict(struct lru *l)
{
    struct node *n = l->tail;
    unlink_node(l, n);
    strmap_del(l->map, n->key);
    node_free(l, n);
    l->evictions++;
}

int lru_put(struct lru *l, const char *key, void *value)
{
    struct node *n = strmap_get(l->map, key);
    int err;
    if (n != NULL) {
        if (l->free_value != NULL && n->value != value)
            l->free_value(n->value);
        n->value = value;
        lru_get(l, key);
        return 0;
    }
    size_t len = strlen(key);
    if ((n = malloc(sizeof(*n) + len + 1)) == NULL)
        return -1;
    memcpy(n->key, key, len + 1);
    n->value = value;
    if (strmap_count(l->map) >= l->max)
        evict(l); /* first, so the strmap never grows past max */
    strmap_put(l->map, key, n, &err);
    if (err < 0) {
        free(n);
        return -1;
    }
    push_head(l, n);
    return 0;
}

void lru_del(struct lru *l, const char *key)
{
    struct node *n = strmap_del(l->map, key);
    if (n == NULL)
        return;
    unlink_node(l, n);
    node_free(l, n);
}

size_t lru_count(const struct lru *l)
{
    return strmap_count(l->map);
}

uint64_t lru_evictions(const struct lru *l)
{
    return l->evictions;
}
