/* spool_scan.h - the spool's record formats on disk, and the scan that
 * reads a segment file back and resynchronises after damage. Pure (no
 * I/O): for the spool's appends and recovery (spool.c) and the fuzzer. */
#ifndef PROXYD_SPOOL_SCAN_H
#define PROXYD_SPOOL_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

#define SPOOL_FORMAT_1 1 /* record.h's framing, written before issue 18 */
#define SPOOL_FORMAT_2 2 /* with a magic: written now */

/* Appends a format 2 record to buf (grown as needed). -1 on ENOMEM or a
 * record over REC_MAX. */
int spool_record_encode(struct recbuf *buf, char type, const char *id, size_t idlen,
                        const uint8_t *body, size_t len);

/* How spool_scan reports a segment's bytes, in file order: every byte is in
 * exactly one record or one damaged range, and two damaged ranges never
 * touch. r points into the scanned bytes. */
struct spool_scan_ops {
    void (*record)(void *arg, const struct record *r, size_t off, size_t len);
    void (*damage)(void *arg, size_t off, size_t len);
};

/* Reads one segment file's bytes, in either format, resynchronising after
 * damage on the next valid record. Returns the format found. */
int spool_scan(const uint8_t *data, size_t len, const struct spool_scan_ops *ops, void *arg);

#endif
