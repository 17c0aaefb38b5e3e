/* embedded.h - files built into the binaries (generated embedded.c). */
#ifndef TG_EMBEDDED_H
#define TG_EMBEDDED_H

#include <stddef.h>

struct embedded_migration {
    int version;      /* from the file name: 001_init.sql -> 1 */
    const char *name;
    const char *sql;  /* NUL-terminated */
};

/* schema/NNN_*.sql in order, ended by an entry with name NULL. */
extern const struct embedded_migration embedded_migrations[];

/* libtollgate/data/prices.json, NUL-terminated. */
const char *embedded_prices(size_t *len);

#endif
