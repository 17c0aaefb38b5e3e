/* settings.h - what accountd can change without a restart, and SIGHUP.
 *
 * A generation is one reading of the config file and of the price file it
 * names. Each batch is priced and committed with the generation that was
 * current when the main thread handed it to a writer: it holds a reference
 * until the main thread releases the writer, so a writer's prices never
 * change under it and every event of a batch is priced by one table.
 */
#ifndef ACCOUNTD_SETTINGS_H
#define ACCOUNTD_SETTINGS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "price.h"

struct settings {
    const struct config *cfg;   /* the reloadable settings are read from here */
    struct price_table *prices; /* owned */
    struct config *owned_cfg;   /* cfg when this generation owns it (NULL: main.c's) */
    atomic_int refs;
};

/* A generation of cfg and prices, with one reference; takes prices (and
 * cfg when owns_cfg). NULL on ENOMEM (nothing taken). */
struct settings *settings_new(const struct config *cfg, bool owns_cfg, struct price_table *prices);
struct settings *settings_ref(struct settings *s);
/* Drops a reference; the last one frees the generation. NULL is allowed. */
void settings_unref(struct settings *s);

/* SIGHUP: reads boot->path and the price file it names anew. Returns the
 * new generation (one reference), or NULL when the config or the price
 * file is bad (logged: the caller keeps the current one). Settings only a
 * restart applies (endpoints, database, writers, time zone) are compared
 * with boot, the config the process started with, and each difference is
 * logged. instance: this accountd's index in tollgate.accountd.events. */
struct settings *settings_reload(const struct config *boot, size_t instance);

#endif
