/* reload.h - what SIGHUP re-reads: the config's model list, router settings,
 * master key and shutdown grace time, and the price file, as one generation.
 *
 * A request takes a reference to the current generation when it starts and
 * keeps using it (its deployment, retries and price) until it ends, so a
 * reload never changes a request half-way; the old generation is freed
 * when its last request ends. A new config that does not load, or whose
 * price file or router does not build, is refused and the old one stays.
 */
#ifndef PROXYD_RELOAD_H
#define PROXYD_RELOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "price.h"
#include "proxy.h"

struct generation {
    const struct config *cfg;
    struct config *owned;        /* cfg when this generation owns it (reloads) */
    struct price_table *prices;
    struct router *router;
    unsigned refs;
    unsigned number;             /* 1 at start, +1 per accepted reload */
};

/* The first generation, on the start-up config (not owned); its router works
 * on base's loop. NULL on error (err). */
struct generation *generation_first(const struct config *cfg, struct event_base *base,
                                    char *err, size_t errlen);
struct generation *generation_ref(struct generation *g);
void generation_unref(struct generation *g);

/* SIGHUP: loads px->cfg->path again; on success the new generation is
 * current, else the old one stays and an error line says why. 0 or -1. */
int reload_config(struct proxy *px);

#endif
