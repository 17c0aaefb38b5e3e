/* generation.c - the config a request runs with.
 *
 * A generation is one reading of the config file and its price file. The
 * holder points at the current one and owns a reference to it; each request
 * takes a reference for as long as its handler runs (handlers are
 * synchronous, so nothing of a request outlives api_dispatch). A reload
 * swaps the pointer under the holder's mutex and drops the holder's
 * reference, so the old generation is freed by whichever thread ends the
 * last request that still uses it, never while one does. The mutex guards
 * only the pointer read and the increment: a request never waits for a
 * reload's file reading.
 */
#include <stdlib.h>

#include "ops.h"

struct generation *gen_new(struct config *cfg, struct price_table *prices)
{
    struct generation *g = malloc(sizeof(*g));
    if (g == NULL)
        return NULL;
    g->cfg = cfg;
    g->prices = prices;
    atomic_init(&g->refs, 1);
    return g;
}

int gen_holder_init(struct gen_holder *h, struct generation *first)
{
    h->cur = first;
    return pthread_mutex_init(&h->lock, NULL) == 0 ? 0 : -1;
}

void gen_holder_fini(struct gen_holder *h)
{
    gen_release(h->cur);
    h->cur = NULL;
    pthread_mutex_destroy(&h->lock);
}

struct generation *gen_acquire(struct gen_holder *h)
{
    pthread_mutex_lock(&h->lock);
    struct generation *g = h->cur;
    atomic_fetch_add(&g->refs, 1);
    pthread_mutex_unlock(&h->lock);
    return g;
}

void gen_release(struct generation *g)
{
    if (g == NULL || atomic_fetch_sub(&g->refs, 1) != 1)
        return;
    config_free(g->cfg);
    price_table_free(g->prices);
    free(g);
}

void gen_swap(struct gen_holder *h, struct generation *next)
{
    pthread_mutex_lock(&h->lock);
    struct generation *old = h->cur;
    h->cur = next;
    pthread_mutex_unlock(&h->lock);
    gen_release(old);
}
