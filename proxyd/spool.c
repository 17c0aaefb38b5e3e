/* spool.c - the durable event spool (see spool.h).
 *
 * Design: append-only segment files spool_dir/NNNNNNNNNNNN.spool of
 * records of type E (event: the request id and the encoded event) or A
 * (ack: the request id). Appends are written at once and fdatasync'ed together every
 * spool_fsync_ms by the sync thread (spool_sync.c), off the event loop;
 * with 0 every append is synced before spool_append returns. So a killed
 * proxyd loses nothing and a lost machine at most that window.
 *
 * Each segment counts its events without an ack; a segment that is not the
 * one being appended to is deleted when the count reaches zero. At start
 * every segment is replayed in order, the events still unacknowledged are
 * handed back for delivery, and appends go to a fresh segment.
 *
 * Records: type, request id and body, framed with a magic, a length and a
 * CRC-32 (spool_scan.c has the formats, old and new, and the scan that
 * reads a segment back).
 *
 * Recovery keeps every good record: spool_scan resynchronises after a
 * damaged record on the next valid one. The skipped bytes are copied to
 * spool_dir/damaged/<segment>.<offset>.bin (0600; synced before the
 * rewrite below), logged (where, how much; never the bytes: they hold
 * request metadata) and counted (spool_damage); then the segment is
 * rewritten without them, so the next start does not report them again.
 *
 * Acks: valid records keep their order, so an ack still follows its event.
 * An A record lost to damage only means one more delivery of its event
 * (accountd dedupes on the request id); an E record lost to damage is not
 * delivered and stays in damaged/ for an operator.
 */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "grow.h"
#include "log.h"
#include "record.h"
#include "spool_scan.h"
#include "spool_sync.h"
#include "strmap.h"

#define NEAR_FULL_PERCENT 80
#define REWRITE_CHUNK (1u << 20)   /* a damaged segment's rewrite writes this much at a time */
#define ASIDE_TRIES 100            /* names tried for one damaged range's file */

struct spool_segment {
    uint64_t seq;
    uint64_t bytes;
    size_t unacked;
    struct spool_segment *next;
};

struct spool {
    const struct config *cfg;
    char dir[4096];
    struct spool_segment *segments; /* oldest first; the last is current */
    struct spool_segment *current;
    int fd;                         /* the current segment */
    uint64_t total_bytes;
    bool dirty, warned_near;        /* dirty: written since the last synchronous sync */
    struct spool_sync *sync;        /* the group fsync thread; NULL when spool_fsync_ms is 0 */
    struct recbuf rec;              /* the event record being written */
    struct recbuf acks;             /* ack records waiting for spool_flush_acks */
    struct spool_damage damage;     /* what recovery set aside */
};

static void seg_path(const struct spool *s, uint64_t seq, char *out, size_t len)
{
    snprintf(out, len, "%s/%012" PRIu64 ".spool", s->dir, seq);
}

static int sync_now(struct spool *s)
{
    if (!s->dirty)
        return 0;
    if (fdatasync(s->fd) != 0) {
        log_error("spool: fdatasync failed: %s", strerror(errno));
        return -1;
    }
    s->dirty = false;
    return 0;
}

/* Writes buf's records to the current segment and empties buf. */
static int write_records(struct spool *s, struct recbuf *buf)
{
    if (buf->len == 0)
        return 0;
    int rc = record_write_all(s->fd, buf->data, buf->len);
    if (rc < 0) {
        log_error("spool: write failed: %s", strerror(errno));
    } else {
        s->current->bytes += buf->len;
        s->total_bytes += buf->len;
        s->dirty = true;
        if (s->sync != NULL)
            spool_sync_dirty(s->sync);
    }
    buf->len = 0;
    return rc;
}

static struct spool_segment *seg_add(struct spool *s, uint64_t seq, uint64_t bytes)
{
    struct spool_segment *seg = calloc(1, sizeof(*seg)), **tail = &s->segments;
    if (seg == NULL)
        return NULL;
    seg->seq = seq;
    seg->bytes = bytes;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = seg;
    s->total_bytes += bytes;
    return seg;
}

/* Deletes a fully acknowledged segment that is no longer appended to. */
static void seg_drop(struct spool *s, struct spool_segment *seg)
{
    char path[4200];
    struct spool_segment **p = &s->segments;
    seg_path(s, seg->seq, path, sizeof(path));
    if (unlink(path) != 0 && errno != ENOENT)
        log_warn("spool: cannot delete %s: %s", path, strerror(errno));
    while (*p != seg)
        p = &(*p)->next;
    *p = seg->next;
    s->total_bytes -= seg->bytes;
    free(seg);
}

/* Starts segment seq for appends (the previous one is synced first). */
static int open_segment(struct spool *s, uint64_t seq)
{
    char path[4200];
    seg_path(s, seq, path, sizeof(path));
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    struct spool_segment *seg = fd >= 0 ? seg_add(s, seq, 0) : NULL;
    if (seg == NULL) {
        log_error("spool: cannot open %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (s->sync != NULL)
        spool_sync_file(s->sync, fd);
    if (s->fd >= 0) {
        (void)sync_now(s);
        close(s->fd);
    }
    struct spool_segment *old = s->current;
    s->fd = fd;
    s->current = seg;
    if (old != NULL && old->unacked == 0)
        seg_drop(s, old);
    return 0;
}

/* An event read back from disk, waiting to see whether an ack follows. */
struct found {
    struct spool_segment *seg;
    uint8_t *data;
    size_t len;
};

static void found_free(void *p)
{
    struct found *f = p;
    free(f->data);
    free(f);
}

/* Applies one record read back from segment seg. */
static void replay_record(struct strmap *found, struct spool_segment *seg,
                          const struct record *r)
{
    char id[0x10000];
    int err;
    memcpy(id, r->id, r->id_len);
    id[r->id_len] = '\0';
    if (r->type == 'A') {
        struct found *f = strmap_del(found, id);
        if (f != NULL)
            found_free(f);
        return;
    }
    struct found *f = calloc(1, sizeof(*f));
    size_t len = r->body_len;
    if (f == NULL || (f->data = malloc(len ? len : 1)) == NULL) {
        free(f);
        log_error("spool: out of memory replaying %s", id);
        return;
    }
    memcpy(f->data, r->body, len);
    f->len = len;
    f->seg = seg;
    struct found *old = strmap_put(found, id, f, &err);
    if (err < 0)
        found_free(f);
    else if (old != NULL)
        found_free(old);
}

/* One segment file being replayed: its bytes mapped, and its damage. */
struct replay {
    struct spool *s;
    struct strmap *found;
    struct spool_segment *seg;
    const char *path;
    const uint8_t *data;
    size_t len;
    uint64_t ranges, bytes;
    bool aside_failed;
};

/* fsync of a directory, so that names created or renamed in it last; with
 * whole, syncfs: every file written on its filesystem too (one call for all
 * of a segment's damaged ranges, not a sync per range). */
static int sync_dir(const char *path, bool whole)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd >= 0 && (whole ? syncfs(fd) : fsync(fd)) == 0 ? 0 : -1;
    if (rc < 0)
        log_error("spool: cannot sync %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Creates the file for one damaged range (a new name: earlier ones are
 * never overwritten) and returns its fd, its name in out; -1 on error. */
static int aside_open(const struct replay *rp, size_t off, char *out, size_t outlen)
{
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/damaged", rp->s->dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -1;
    for (int k = 0; k < ASIDE_TRIES; k++) {
        if (k == 0)
            snprintf(out, outlen, "%s/%012" PRIu64 ".%zu.bin", dir, rp->seg->seq, off);
        else
            snprintf(out, outlen, "%s/%012" PRIu64 ".%zu.%d.bin", dir, rp->seg->seq, off, k);
        int fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    errno = EEXIST;
    return -1;
}

/* A byte range of the segment holding no valid record: kept aside, logged
 * (never its bytes: they may hold a request's metadata) and counted. */
static void replay_damage(void *arg, size_t off, size_t len)
{
    struct replay *rp = arg;
    char aside[4300] = "";
    int fd = aside_open(rp, off, aside, sizeof(aside));
    bool kept = fd >= 0 && record_write_all(fd, rp->data + off, len) == 0;
    if (fd >= 0 && close(fd) != 0)
        kept = false;
    if (!kept) {
        log_error("spool: %s: cannot keep %zu damaged bytes at offset %zu in %s: %s", rp->path,
                  len, off, aside[0] ? aside : "spool_dir/damaged", strerror(errno));
        rp->aside_failed = true;
    } else {
        log_warn("spool: %s: %zu bytes at offset %zu hold no valid record; %s; copied to %s",
                 rp->path, len, off,
                 off + len == rp->len ? "skipped to the end" : "skipped to the next valid record",
                 aside);
    }
    rp->ranges++;
    rp->bytes += len;
    rp->s->damage.ranges++;
    rp->s->damage.bytes += len;
}

static void replay_one(void *arg, const struct record *r, size_t off, size_t len)
{
    struct replay *rp = arg;
    (void)off;
    (void)len;
    replay_record(rp->found, rp->seg, r);
}

static const struct spool_scan_ops replay_ops = {replay_one, replay_damage};

/* A damaged segment's valid records, written again as format 2. */
struct rewrite {
    int fd;
    int rc;
    uint64_t bytes;
    struct recbuf buf;
};

static void rewrite_flush(struct rewrite *w)
{
    if (w->rc == 0 && record_write_all(w->fd, w->buf.data, w->buf.len) < 0)
        w->rc = -1;
    w->bytes += w->buf.len;
    w->buf.len = 0;
}

static void rewrite_one(void *arg, const struct record *r, size_t off, size_t len)
{
    struct rewrite *w = arg;
    (void)off;
    (void)len;
    if (w->rc == 0 &&
        spool_record_encode(&w->buf, r->type, r->id, r->id_len, r->body, r->body_len) < 0)
        w->rc = -1;
    if (w->buf.len >= REWRITE_CHUNK)
        rewrite_flush(w);
}

static void rewrite_skip(void *arg, size_t off, size_t len)
{
    (void)arg;
    (void)off;
    (void)len;
}

static const struct spool_scan_ops rewrite_ops = {rewrite_one, rewrite_skip};

/* Replaces the segment with its valid records alone: a new file, synced and
 * renamed over the old one (a crash leaves one or the other, whole). Only
 * once the damaged ranges are safely aside. -1 when it stays as it was. */
static int rewrite_segment(struct replay *rp, uint64_t *bytes)
{
    char tmp[4300], dir[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", rp->path);
    snprintf(dir, sizeof(dir), "%s/damaged", rp->s->dir);
    if (rp->aside_failed || sync_dir(dir, true) < 0)
        return -1;
    struct rewrite w = {.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)};
    if (w.fd < 0) {
        log_error("spool: cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    (void)spool_scan(rp->data, rp->len, &rewrite_ops, &w);
    rewrite_flush(&w);
    if (w.rc < 0 || fdatasync(w.fd) != 0)
        w.rc = -1;
    if (close(w.fd) != 0)
        w.rc = -1;
    if (w.rc == 0 && rename(tmp, rp->path) != 0)
        w.rc = -1;
    if (w.rc < 0) {
        log_error("spool: cannot rewrite %s without its damaged bytes: %s", rp->path,
                  strerror(errno));
        (void)unlink(tmp);
    } else {
        (void)sync_dir(rp->s->dir, false);
        *bytes = w.bytes;
    }
    free(w.buf.data);
    return w.rc;
}

/* After a segment's replay: says what its damage was, and rewrites it without. */
static void settle_damage(struct replay *rp, int format, uint64_t *bytes)
{
    log_warn("spool: %s: %" PRIu64 " damaged bytes in %" PRIu64 " ranges set aside; %s",
             rp->path, rp->bytes, rp->ranges,
             format == SPOOL_FORMAT_1
                 ? "this segment is of the previous format, which cannot resynchronise: its "
                   "events after the first damage are not delivered"
                 : "every valid record after them is still delivered");
    if (rewrite_segment(rp, bytes) < 0)
        log_error("spool: %s stays as it is; its damage is reported again at the next start",
                  rp->path);
}

/* Maps a segment file read-only (NULL for an empty one): recovery's memory
 * stays the events it keeps, not the files it reads. */
static int map_segment(const char *path, const uint8_t **data, size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    *data = NULL;
    *len = 0;
    if (fd < 0 || fstat(fd, &st) != 0) {
        log_error("spool: cannot read %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    void *m = st.st_size > 0 ? mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    if (m == MAP_FAILED) {
        log_error("spool: cannot map %s: %s", path, strerror(errno));
        return -1;
    }
    *data = m;
    *len = (size_t)st.st_size;
    return 0;
}

/* Replays one segment file, setting aside what is damaged in it. */
static int replay_segment(struct spool *s, uint64_t seq, struct strmap *found)
{
    char path[4200];
    seg_path(s, seq, path, sizeof(path));
    struct replay rp = {.s = s, .found = found, .path = path};
    if (map_segment(path, &rp.data, &rp.len) < 0)
        return -1;
    rp.seg = seg_add(s, seq, 0);
    if (rp.seg != NULL) {
        uint64_t bytes = rp.len;
        int format = spool_scan(rp.data, rp.len, &replay_ops, &rp);
        if (rp.ranges > 0)
            settle_damage(&rp, format, &bytes);
        rp.seg->bytes = bytes;
        s->total_bytes += bytes;
    }
    if (rp.len > 0 && munmap((void *)rp.data, rp.len) != 0)
        log_warn("spool: cannot unmap %s: %s", path, strerror(errno));
    return rp.seg != NULL ? 0 : -1;
}

static int seq_of(const char *name, uint64_t *seq)
{
    char *end;
    if (strlen(name) != 18 || strcmp(name + 12, ".spool") != 0)
        return -1;
    *seq = strtoull(name, &end, 10);
    return end == name + 12 ? 0 : -1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The segment numbers in the directory, sorted. */
static int list_segments(struct spool *s, uint64_t **seqs, size_t *n)
{
    DIR *d = opendir(s->dir);
    struct dirent *e;
    size_t cap = 0;
    *seqs = NULL;
    *n = 0;
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        uint64_t seq;
        if (seq_of(e->d_name, &seq) < 0)
            continue;
        if (*n == cap) {
            uint64_t *more = realloc(*seqs, (cap = cap ? cap * 2 : 16) * sizeof(*more));
            if (more == NULL) {
                closedir(d);
                return -1;
            }
            *seqs = more;
        }
        (*seqs)[(*n)++] = seq;
    }
    closedir(d);
    if (*n > 1)
        qsort(*seqs, *n, sizeof(**seqs), cmp_u64);
    return 0;
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Replays every segment and hands back the events without an ack. */
static int recover(struct spool *s, spool_recover_cb cb, void *arg, uint64_t *next_seq)
{
    uint64_t *seqs = NULL;
    size_t n = 0, pending = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct strmap *found = strmap_new();
    int rc = found != NULL && list_segments(s, &seqs, &n) == 0 ? 0 : -1;
    *next_seq = 1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = replay_segment(s, seqs[i], found);
        *next_seq = seqs[i] + 1;
    }
    size_t pos = 0;
    const char *id;
    void *v;
    while (rc == 0 && strmap_next(found, &pos, &id, &v) == 0) {
        struct found *f = v;
        f->seg->unacked++;
        cb(id, f->data, f->len, f->seg, arg);
        pending++;
    }
    for (struct spool_segment *seg = s->segments, *next; rc == 0 && seg != NULL; seg = next) {
        next = seg->next;
        if (seg->unacked == 0)
            seg_drop(s, seg);
    }
    if (rc == 0 && pending > 0)
        log_info("spool: %zu unacknowledged events recovered for delivery in %.1f ms", pending,
                 ms_since(&t0));
    strmap_free(found, found_free);
    free(seqs);
    return rc;
}

struct spool *spool_new(const struct config *cfg, spool_recover_cb cb, void *arg, char *err,
                        size_t errlen)
{
    struct spool *s = calloc(1, sizeof(*s));
    uint64_t next_seq;
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = cfg;
    s->fd = -1;
    snprintf(s->dir, sizeof(s->dir), "%s", cfg->proxyd.spool_dir);
    if (cfg->proxyd.spool_fsync_ms > 0 &&
        (s->sync = spool_sync_start(cfg->proxyd.spool_fsync_ms, err, errlen)) == NULL) {
        free(s);
        return NULL;
    }
    if (recover(s, cb, arg, &next_seq) < 0 || open_segment(s, next_seq) < 0) {
        snprintf(err, errlen, "spool %s: cannot recover or open (see the log)", s->dir);
        spool_free(s);
        return NULL;
    }
    return s;
}

void spool_free(struct spool *s)
{
    if (s == NULL)
        return;
    spool_sync_stop(s->sync);
    if (s->fd >= 0) {
        spool_flush_acks(s);
        (void)sync_now(s);
        close(s->fd);
    }
    while (s->segments != NULL) {
        struct spool_segment *next = s->segments->next;
        free(s->segments);
        s->segments = next;
    }
    free(s->rec.data);
    free(s->acks.data);
    free(s);
}

static void check_fill(struct spool *s)
{
    uint64_t cap = s->cfg->proxyd.spool_max_bytes;
    bool near = s->total_bytes * 100 >= cap * NEAR_FULL_PERCENT;
    if (near && !s->warned_near)
        log_warn("spool: %" PRIu64 " of %" PRIu64 " bytes used: accountd is not keeping up or "
                 "is unreachable; at the cap proxyd refuses requests", s->total_bytes, cap);
    else if (!near && s->warned_near)
        log_info("spool: back to %" PRIu64 " bytes", s->total_bytes);
    s->warned_near = near;
}

int spool_append(struct spool *s, const char *request_id, const uint8_t *event, size_t len,
                 struct spool_segment **seg)
{
    if (spool_full(s))
        return -1;
    spool_flush_acks(s); /* they belong to the segment being appended to */
    if (s->current->bytes >= s->cfg->proxyd.spool_segment_bytes &&
        open_segment(s, s->current->seq + 1) < 0)
        return -1;
    if (spool_record_encode(&s->rec, 'E', request_id, strlen(request_id), event, len) < 0) {
        s->rec.len = 0;
        log_error("spool: out of memory or oversized event %s", request_id);
        return -1;
    }
    if (write_records(s, &s->rec) < 0)
        return -1;
    if (s->cfg->proxyd.spool_fsync_ms == 0 && sync_now(s) < 0)
        return -1;
    s->current->unacked++;
    *seg = s->current;
    check_fill(s);
    return 0;
}

void spool_ack(struct spool *s, struct spool_segment *seg, const char *request_id)
{
    if (--seg->unacked == 0 && seg != s->current) {
        seg_drop(s, seg); /* nothing in it is needed any more: no ack record either */
        check_fill(s);
        return;
    }
    /* A lost ack record only means one more delivery, which accountd dedupes. */
    if (spool_record_encode(&s->acks, 'A', request_id, strlen(request_id), NULL, 0) < 0)
        log_warn("spool: cannot record the ack of %s", request_id);
}

void spool_flush_acks(struct spool *s)
{
    if (write_records(s, &s->acks) < 0)
        log_warn("spool: cannot record acks; those events are delivered once more after a restart");
}

uint64_t spool_bytes(const struct spool *s)
{
    return s->total_bytes;
}

bool spool_full(const struct spool *s)
{
    return s->total_bytes >= s->cfg->proxyd.spool_max_bytes;
}

void spool_damage(const struct spool *s, struct spool_damage *out)
{
    *out = s->damage;
}
