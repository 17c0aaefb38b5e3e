/* spool_scan.c - the spool's record formats and the scan that reads a
 * segment back (see spool_scan.h).
 *
 * Format 2 (written since issue 18): [magic FF 54 47 FE][u32 payload
 * length][u32 CRC-32 of the length's 4 bytes and the payload][payload],
 * big-endian; the payload is record.h's: [u8 type E or A][u16 id
 * length][request id][body]. Format 1 is record.h's framing without the
 * magic, which proxyd wrote before. A segment is all of one format (each
 * start appends to a new one), and the scan tells them apart: a format 2
 * segment starts with the magic, which a format 1 one never does (its
 * first byte is a length's top byte, at most 0x04).
 *
 * Resynchronisation: where a record fails its checks, the scan moves on
 * byte by byte (memchr for the magic's first byte) to the next offset where
 * the magic, a plausible length, type and id length, and the CRC all hold;
 * what lies between is one damaged range. The magic holds 0xFF and 0xFE,
 * never found in UTF-8, so no text a client put into an event (tags,
 * metadata, user) can plant a record for a resync to take. A format 1
 * segment has no magic: a search on length and CRC alone could take a
 * record planted in an event's text, so there the rest of the segment
 * from its first damage on is one damaged range, as before format 2
 * (when it was cut off).
 *
 * Cost: one pass, plus per magic-looking offset inside damage the cheap
 * header checks and, only when they hold, a CRC over the claimed length.
 * In a real segment those are the damaged records' own headers, so the
 * CRC work stays under twice the file; a file made to defeat that (a
 * plausible header every few bytes) meets RESYNC_WORK: past it, the rest
 * of the segment is one damaged range, so recovery stays linear.
 */
#include "spool_scan.h"

#include <stdbool.h>
#include <string.h>
#include <zlib.h>


#define HEADER2 12    /* format 2: magic, length, CRC */
#define RESYNC_WORK 8 /* resyncs may CRC this many times the segment's size */

static const uint8_t MAGIC[4] = {0xff, 'T', 'G', 0xfe};

/* Format 2's CRC: the length field's bytes, then the payload. */
static uint32_t rec2_crc(const uint8_t *length, const uint8_t *payload, size_t plen)
{
    uLong crc = crc32(0L, length, 4);
    return (uint32_t)crc32(crc, payload, (uInt)plen);
}

int spool_record_encode(struct recbuf *buf, char type, const char *id, size_t idlen,
                        const uint8_t *body, size_t len)
{
    size_t plen;
    uint8_t *rec = record_put_payload(buf, HEADER2, type, id, idlen, body, len, &plen);
    if (rec == NULL)
        return -1;
    memcpy(rec, MAGIC, sizeof(MAGIC));
    put32(rec + 4, (uint32_t)plen);
    put32(rec + 8, rec2_crc(rec + 4, rec + HEADER2, plen));
    buf->len += HEADER2 + plen;
    return 0;
}

/* Fills r from a payload; -1 when its type or id length is impossible. */
static int payload_parse(const uint8_t *p, size_t plen, struct record *r)
{
    size_t idlen = (size_t)p[1] << 8 | p[2];
    if ((p[0] != 'E' && p[0] != 'A') || 3 + idlen > plen)
        return -1;
    *r = (struct record){.type = (char)p[0], .id = (const char *)p + 3, .id_len = idlen,
                         .body = p + 3 + idlen, .body_len = plen - 3 - idlen};
    return 0;
}

/* The cheap checks of a format 2 record at data[off..len): its payload
 * length when they hold (r filled), else 0. */
static uint32_t rec2_plausible(const uint8_t *data, size_t len, size_t off, struct record *r)
{
    if (len - off < HEADER2 || memcmp(data + off, MAGIC, sizeof(MAGIC)) != 0)
        return 0;
    uint32_t plen = get32(data + off + 4);
    if (plen < 3 || plen > REC_MAX || plen > len - off - HEADER2 ||
        payload_parse(data + off + HEADER2, plen, r) < 0)
        return 0;
    return plen;
}

static bool rec2_crc_ok(const uint8_t *data, size_t off, uint32_t plen)
{
    return rec2_crc(data + off + 4, data + off + HEADER2, plen) == get32(data + off + 8);
}

/* The format 2 record at data[off..len): 0 with *end just past it, or -1. */
static int rec2_at(const uint8_t *data, size_t len, size_t off, struct record *r, size_t *end)
{
    uint32_t plen = rec2_plausible(data, len, off, r);
    if (plen == 0 || !rec2_crc_ok(data, off, plen))
        return -1;
    *end = off + HEADER2 + plen;
    return 0;
}

/* The record of the given format at data[off..len), as rec2_at. */
static int record_at(int format, const uint8_t *data, size_t len, size_t off, struct record *r,
                     size_t *end)
{
    struct record raw;
    size_t at = off;
    if (format == SPOOL_FORMAT_2)
        return rec2_at(data, len, off, r, end);
    if (record_next(data, len, &at, &raw) < 0 ||
        payload_parse(data + off + REC_HEADER, at - off - REC_HEADER, r) < 0)
        return -1;
    *end = at;
    return 0;
}

/* The offset of the first valid format 2 record at or after from; len when
 * none, or when the CRCs of the candidates would exceed *budget bytes. */
static size_t rec2_resync(const uint8_t *data, size_t len, size_t from, size_t *budget)
{
    struct record r;
    while (from < len && len - from >= HEADER2) {
        const uint8_t *hit = memchr(data + from, MAGIC[0], len - from - HEADER2 + 1);
        if (hit == NULL)
            break;
        from = (size_t)(hit - data);
        uint32_t plen = rec2_plausible(data, len, from, &r);
        if (plen > *budget)
            return len;
        *budget -= plen;
        if (plen > 0 && rec2_crc_ok(data, from, plen))
            return from;
        from++;
    }
    return len;
}

/* Which format a segment is in (see the top of the file). */
static int scan_format(const uint8_t *data, size_t len)
{
    struct record r;
    size_t end;
    if (len == 0 || (len >= sizeof(MAGIC) && memcmp(data, MAGIC, sizeof(MAGIC)) == 0))
        return SPOOL_FORMAT_2;
    if (record_at(SPOOL_FORMAT_1, data, len, 0, &r, &end) == 0)
        return SPOOL_FORMAT_1;
    size_t budget = len * RESYNC_WORK;
    return rec2_resync(data, len, 0, &budget) < len ? SPOOL_FORMAT_2 : SPOOL_FORMAT_1;
}

int spool_scan(const uint8_t *data, size_t len, const struct spool_scan_ops *ops, void *arg)
{
    int format = scan_format(data, len);
    struct record r;
    size_t off = 0, end, budget = len * RESYNC_WORK;
    while (off < len) {
        if (record_at(format, data, len, off, &r, &end) == 0) {
            ops->record(arg, &r, off, end - off);
        } else {
            end = format == SPOOL_FORMAT_2 ? rec2_resync(data, len, off + 1, &budget) : len;
            ops->damage(arg, off, end - off);
        }
        off = end;
    }
    return format;
}
