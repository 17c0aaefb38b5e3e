/* fuzz_spool.c - proxyd's spool recovery (spool_scan.c: spool_scan, what
 * spool_new replays every segment file with), checked against its promises.
 * The first byte of the input picks the mode:
 *
 * even: the rest is a segment file as found on disk. The scan must account
 *       for every byte once and in order (records and damaged ranges tile
 *       the input; two damaged ranges never touch), each record must be the
 *       bytes its own encoding gives (encoded here, independently of
 *       spool.c), and the valid records alone, as found or written again in
 *       format 2 (what recovery's rewrite of a damaged segment does), must
 *       scan again to the same records and no damage.
 * odd:  the rest describes a segment built here: its records (format 2, or
 *       format 1 with bit 1 of the first byte), then bytes to flip in it.
 *       Format 2: every record left intact comes back, unless a record
 *       made of damaged bytes (which needs a right CRC-32 over them) covers
 *       its start. Format 1, which has no magic to resynchronise on: the
 *       records before the first damaged one come back, nothing after it.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fuzz_common.h"
#include "spool_scan.h"

#define MAX_RECORDS 64
#define MAX_FLIPS 16

static const uint8_t MAGIC[4] = {0xff, 'T', 'G', 0xfe};

/* What a scan reported, in order. */
struct seen {
    size_t n, cap;
    struct item {
        bool damage;
        size_t off, len;
        char type;
        const char *id;
        size_t id_len;
        const uint8_t *body;
        size_t body_len;
    } *v;
};

static void seen_add(struct seen *s, struct item it)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->v = realloc(s->v, s->cap * sizeof(*s->v));
        if (s->v == NULL)
            abort();
    }
    s->v[s->n++] = it;
}

static void on_record(void *arg, const struct record *r, size_t off, size_t len)
{
    seen_add(arg, (struct item){false, off, len, r->type, r->id, r->id_len, r->body,
                                r->body_len});
}

static void on_damage(void *arg, size_t off, size_t len)
{
    seen_add(arg, (struct item){.damage = true, .off = off, .len = len});
}

static const struct spool_scan_ops OPS = {on_record, on_damage};

static int scan(const uint8_t *data, size_t len, struct seen *s)
{
    s->n = 0;
    return spool_scan(data, len, &OPS, s);
}

/* Appends one record in format 1 or 2 to out (room made by the caller);
 * returns its size. */
static size_t encode(int format, uint8_t *out, char type, const char *id, size_t id_len,
                     const uint8_t *body, size_t body_len)
{
    size_t head = format == SPOOL_FORMAT_2 ? 12 : 8, plen = 3 + id_len + body_len;
    uint8_t *p = out + head;
    p[0] = (uint8_t)type;
    p[1] = (uint8_t)(id_len >> 8);
    p[2] = (uint8_t)id_len;
    memcpy(p + 3, id, id_len);
    if (body_len > 0)
        memcpy(p + 3 + id_len, body, body_len);
    if (format == SPOOL_FORMAT_2) {
        memcpy(out, MAGIC, 4);
        put32(out + 4, (uint32_t)plen);
        put32(out + 8, (uint32_t)crc32(crc32(0L, out + 4, 4), p, (uInt)plen));
    } else {
        put32(out, (uint32_t)plen);
        put32(out + 4, (uint32_t)crc32(0L, p, (uInt)plen));
    }
    return head + plen;
}

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_spool: %s\n", what);
        abort();
    }
}

/* The valid records of s, concatenated (format 0: as they are in data). */
static size_t records_of(const struct seen *s, const uint8_t *data, int format, uint8_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++) {
        const struct item *it = &s->v[i];
        if (it->damage)
            continue;
        if (format == 0) {
            memcpy(out + n, data + it->off, it->len);
            n += it->len;
        } else {
            n += encode(format, out + n, it->type, it->id, it->id_len, it->body, it->body_len);
        }
    }
    return n;
}

/* Same records, same contents, no damage. */
static void check_same_records(const struct seen *a, const struct seen *b)
{
    size_t j = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (a->v[i].damage)
            continue;
        check(j < b->n && !b->v[j].damage, "a valid record was lost when scanned again");
        const struct item *x = &a->v[i], *y = &b->v[j++];
        check(x->type == y->type && x->id_len == y->id_len && x->body_len == y->body_len &&
                  memcmp(x->id, y->id, x->id_len) == 0 &&
                  (x->body_len == 0 || memcmp(x->body, y->body, x->body_len) == 0),
              "a record changed when scanned again");
    }
    check(j == b->n, "scanning the valid records again found more");
}

static void raw_mode(const uint8_t *data, size_t len)
{
    struct seen s = {0}, again = {0};
    int format = scan(data, len, &s);
    check(format == SPOOL_FORMAT_1 || format == SPOOL_FORMAT_2, "unknown format");
    size_t at = 0;
    uint8_t *buf = malloc(len + 1);
    check(buf != NULL, "out of memory");
    for (size_t i = 0; i < s.n; i++) {
        const struct item *it = &s.v[i];
        check(it->off == at && it->len > 0 && it->len <= len - at, "ranges do not tile the input");
        check(!(it->damage && i > 0 && s.v[i - 1].damage), "two damaged ranges touch");
        if (!it->damage) {
            size_t n = encode(format, buf, it->type, it->id, it->id_len, it->body, it->body_len);
            check(n == it->len && memcmp(buf, data + it->off, n) == 0,
                  "a record is not what its encoding gives");
        }
        at += it->len;
    }
    check(at == len, "the ranges stop before the end");
    /* as found, and rewritten in format 2 (12 bytes of header for <= 8 of format 1) */
    uint8_t *kept = malloc(len + len / 2 + 16);
    check(kept != NULL, "out of memory");
    for (int f = 0; f <= SPOOL_FORMAT_2; f += SPOOL_FORMAT_2) {
        size_t n = records_of(&s, data, f, kept);
        scan(kept, n, &again);
        check_same_records(&s, &again);
    }
    free(kept);
    free(buf);
    free(s.v);
    free(again.v);
}

/* Odd mode: builds the segment the input describes, damages it, and checks
 * what comes back. Input: [n records][per record: id length, body length,
 * that many bytes][n flips][per flip: record, offset in it, xor mask]. */
static void built_mode(int format, const uint8_t *data, size_t len)
{
    size_t at = 0, off[MAX_RECORDS + 1] = {0};
    uint8_t *seg = malloc(MAX_RECORDS * (12 + 3 + 255 + 255)), flipped[MAX_RECORDS] = {0};
    check(seg != NULL, "out of memory");
    size_t n = len > 0 ? data[at++] % MAX_RECORDS + 1 : 1;
    for (size_t i = 0; i < n; i++) {
        char id[32];
        uint8_t body[255];
        size_t idl = (size_t)snprintf(id, sizeof(id), "req-%zu", i);
        size_t bl = at < len ? data[at++] : 0;
        if (bl > len - at)
            bl = len - at;
        for (size_t k = 0; k < bl; k++)
            body[k] = data[at + k] & 0x7f; /* text, as a client's: never the magic's bytes */
        off[i + 1] = off[i] + encode(format, seg + off[i], i % 3 ? 'E' : 'A', id, idl, body, bl);
        at += bl;
    }
    size_t size = off[n], flips = at < len ? data[at++] % (MAX_FLIPS + 1) : 0;
    uint8_t *orig = malloc(size);
    check(orig != NULL, "out of memory");
    memcpy(orig, seg, size);
    for (size_t k = 0; k < flips && len - at >= 3; k++, at += 3) {
        size_t r = data[at] % n;
        seg[off[r] + data[at + 1] % (off[r + 1] - off[r])] ^= data[at + 2];
    }
    for (size_t r = 0; r < n; r++) /* two flips of one byte may cancel out */
        flipped[r] = memcmp(seg + off[r], orig + off[r], off[r + 1] - off[r]) != 0;
    free(orig);
    struct seen s = {0};
    /* A format 1 segment whose first record is damaged reads as format 2
     * when a format 2 record can be made of its damaged bytes. */
    int found = scan(seg, size, &s);
    check(found == format || flipped[0], "the format was not recognised");
    size_t j = 0, first_flipped = n;
    for (size_t i = 0; i < n && first_flipped == n; i++)
        if (flipped[i])
            first_flipped = i;
    for (size_t i = 0; i < n; i++) {
        while (j < s.n && s.v[j].off + s.v[j].len <= off[i])
            j++;
        bool back = j < s.n && !s.v[j].damage && s.v[j].off == off[i];
        bool covered = j < s.n && !s.v[j].damage && s.v[j].off < off[i];
        if (found != format)
            break;
        if (format == SPOOL_FORMAT_1)
            check(back == (i < first_flipped), "format 1: a record before the damage was lost, "
                                               "or one after it came back");
        else if (!flipped[i])
            check(back || covered, "format 2: an intact record was lost");
    }
    free(s.v);
    free(seg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1)
        built_mode(data[0] & 2 ? SPOOL_FORMAT_1 : SPOOL_FORMAT_2, data + 1, size - 1);
    else
        raw_mode(data + 1, size - 1);
    return 0;
}
