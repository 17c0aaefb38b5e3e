/* record.h - the framed records of proxyd's files on disk: the event spool
 * (spool.c) and the stream journal (journal.c).
 *
 * A record is [u32 payload length][u32 CRC-32 of the payload][payload]; the
 * payload is [u8 type][u16 id length][request id][body], big-endian. A
 * reader stops at the first torn or corrupt record: what follows it in the
 * file is cut off. */
#ifndef PROXYD_RECORD_H
#define PROXYD_RECORD_H

#include <stddef.h>
#include <stdint.h>

/* The big-endian 32-bit fields of records (lengths and CRCs), here and in
 * spool_scan.c's format. */
static inline void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#define REC_HEADER 8
#define REC_MAX (64u * 1024 * 1024)

/* Records being built, written with one write(). */
struct recbuf {
    uint8_t *data;
    size_t len, cap;
};

/* One record read back; id and body point into the file's bytes. */
struct record {
    char type;
    const char *id;
    size_t id_len;
    const uint8_t *body;
    size_t body_len;
};

/* Makes room in buf for a record of `header` bytes then the payload
 * [type][u16 id length][id][body], and writes the payload. Returns the
 * record's start (its header still to write) with *plen the payload's
 * length, or NULL on ENOMEM or a record over REC_MAX. Both record formats
 * (this file's and spool_scan.c's) are built on it. */
uint8_t *record_put_payload(struct recbuf *buf, size_t header, char type, const char *id,
                            size_t idlen, const uint8_t *body, size_t len, size_t *plen);

/* Appends a record to buf (grown as needed). -1 on ENOMEM or a record
 * over REC_MAX. */
int record_encode(struct recbuf *buf, char type, const char *id, const uint8_t *body,
                  size_t len);

/* Reads the record at *off of data[0..len) and moves *off past it; -1 at
 * the end or at a torn or corrupt record (*off stays there). */
int record_next(const uint8_t *data, size_t len, size_t *off, struct record *r);

/* write() until done (EINTR retried). -1 on error (errno). */
int record_write_all(int fd, const uint8_t *p, size_t len);

/* A whole file into *data (malloc'ed). -1 on error (errno). */
int record_read_file(const char *path, uint8_t **data, size_t *len);

#endif
