/* ids.h - random identifiers (request ids, default team and user ids). */
#ifndef TG_IDS_H
#define TG_IDS_H

#define IDS_UUID_LEN 36

/* A random (version 4) UUID, lower-case. -1 if the random generator fails. */
int ids_uuid4(char out[IDS_UUID_LEN + 1]);

#endif
