/* ids.h - random identifiers (request ids, default team and user ids). */
#ifndef TG_IDS_H
#define TG_IDS_H

#include <stddef.h>

#define IDS_UUID_LEN 36

/* A random (version 4) UUID, lower-case. -1 if the random generator fails. */
int ids_uuid4(char out[IDS_UUID_LEN + 1]);

/* A time-ordered (version 7, RFC 9562) UUID: 48 bits of Unix milliseconds,
 * then 74 random bits. Request ids are these, so the ledger's primary key
 * grows at its end instead of splitting pages all over the table. */
int ids_uuid7(char out[IDS_UUID_LEN + 1]);

/* The n bytes of b as 2n lower-case hex digits + NUL into out. */
void ids_hex(const unsigned char *b, size_t n, char *out);

#endif
