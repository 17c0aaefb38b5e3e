/* journal.c - the stream journal (see journal.h).
 *
 * One file, spool_dir/streams.journal, of records (record.h): N (noted: the
 * request id and the usage event the stream would publish if it were cut
 * now) and C (closed: the request id; its real event is in the spool). A
 * note is one write() without fsync: the page cache outlives a killed
 * process, and a lost machine loses what the spool's fsync window loses.
 *
 * The latest note of each open stream is also kept in memory, so that when
 * the file passes COMPACT_BYTES it is rewritten with those alone (a new
 * file renamed over the old one: a kill in between leaves one or the
 * other, both whole).
 */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "record.h"
#include "strmap.h"

#define COMPACT_BYTES (8u * 1024 * 1024)
#define FILE_NAME "streams.journal"

struct note {
    uint8_t *data;
    size_t len;
};

struct journal {
    char path[4200], tmp[4210];
    int fd;
    uint64_t bytes;         /* the file's size */
    struct strmap *open;    /* request id -> struct note: streams not closed */
    struct recbuf rec;
};

static void note_free(void *v)
{
    struct note *n = v;
    if (n != NULL)
        free(n->data);
    free(n);
}

static struct note *note_new(const uint8_t *data, size_t len)
{
    struct note *n = malloc(sizeof(*n));
    if (n != NULL && (n->data = malloc(len ? len : 1)) == NULL) {
        free(n);
        return NULL;
    }
    if (n != NULL) {
        memcpy(n->data, data, len);
        n->len = len;
    }
    return n;
}

/* Reads the file back into j->open: notes replace notes, closes remove. */
static void replay(struct journal *j, const uint8_t *data, size_t len)
{
    struct record r;
    size_t off = 0;
    char id[0x10000];
    int err;
    while (record_next(data, len, &off, &r) == 0) {
        memcpy(id, r.id, r.id_len);
        id[r.id_len] = '\0';
        if (r.type != 'N') {
            note_free(strmap_del(j->open, id));
            continue;
        }
        struct note *n = note_new(r.body, r.body_len);
        if (n == NULL) {
            log_error("journal: out of memory replaying %s", id);
            continue;
        }
        note_free(strmap_put(j->open, id, n, &err));
        if (err < 0)
            note_free(n);
    }
    if (off < len)
        log_warn("journal: %s: ignoring %zu bytes of torn or corrupt tail", j->path, len - off);
}

/* Writes what is in j->rec to the file. */
static int flush_rec(struct journal *j)
{
    int rc = record_write_all(j->fd, j->rec.data, j->rec.len);
    if (rc < 0) {
        log_error("journal: write to %s failed: %s", j->path, strerror(errno));
        /* a torn record would hide every later one from the next start */
        if (ftruncate(j->fd, (off_t)j->bytes) != 0)
            log_error("journal: cannot cut %s back: %s", j->path, strerror(errno));
    } else
        j->bytes += j->rec.len;
    j->rec.len = 0;
    return rc;
}

/* A new file holding the open streams' notes alone, renamed over the old. */
static int rewrite(struct journal *j)
{
    size_t pos = 0;
    const char *id;
    void *v;
    int fd = open(j->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        log_error("journal: cannot create %s: %s", j->tmp, strerror(errno));
        return -1;
    }
    j->rec.len = 0;
    while (strmap_next(j->open, &pos, &id, &v) >= 0) {
        struct note *n = v;
        if (record_encode(&j->rec, 'N', id, n->data, n->len) < 0) {
            log_error("journal: out of memory rewriting %s; the old file stays", j->path);
            close(fd);
            j->rec.len = 0;
            return -1;
        }
    }
    if (record_write_all(fd, j->rec.data, j->rec.len) < 0 || rename(j->tmp, j->path) != 0) {
        log_error("journal: cannot rewrite %s: %s", j->path, strerror(errno));
        close(fd);
        j->rec.len = 0;
        return -1;
    }
    if (j->fd >= 0)
        close(j->fd);
    j->fd = fd;
    j->bytes = j->rec.len;
    j->rec.len = 0;
    return 0;
}

struct journal *journal_open(const char *dir, journal_recover_cb cb, void *arg, char *err,
                             size_t errlen)
{
    struct journal *j = calloc(1, sizeof(*j));
    uint8_t *data = NULL;
    size_t len = 0, pos = 0;
    const char *id;
    void *v;
    if (j == NULL || (j->open = strmap_new()) == NULL) {
        snprintf(err, errlen, "out of memory");
        journal_free(j);
        return NULL;
    }
    j->fd = -1;
    snprintf(j->path, sizeof(j->path), "%s/" FILE_NAME, dir);
    snprintf(j->tmp, sizeof(j->tmp), "%s.tmp", j->path);
    if (record_read_file(j->path, &data, &len) == 0)
        replay(j, data, len);
    else if (errno != ENOENT)
        log_error("journal: cannot read %s: %s", j->path, strerror(errno));
    free(data);
    struct strmap *left = j->open;
    if ((j->open = strmap_new()) == NULL) {
        snprintf(err, errlen, "out of memory");
        j->open = left;
        journal_free(j);
        return NULL;
    }
    while (strmap_next(left, &pos, &id, &v) >= 0) {
        int e;
        if (cb(id, ((struct note *)v)->data, ((struct note *)v)->len, arg) == 0)
            continue;
        note_free(strmap_put(j->open, id, v, &e)); /* kept: its event is in memory only */
        if (e == 0)
            strmap_put(left, id, NULL, &e); /* moved, not freed with `left` */
    }
    strmap_free(left, note_free);
    if (rewrite(j) < 0) {
        snprintf(err, errlen, "cannot start the stream journal %s", j->path);
        journal_free(j);
        return NULL;
    }
    return j;
}

int journal_note(struct journal *j, const char *request_id, const uint8_t *event, size_t len)
{
    int err;
    struct note *n = note_new(event, len);
    if (n == NULL || record_encode(&j->rec, 'N', request_id, event, len) < 0) {
        note_free(n);
        j->rec.len = 0;
        return -1;
    }
    note_free(strmap_put(j->open, request_id, n, &err));
    if (err < 0) {
        note_free(n);
        j->rec.len = 0;
        return -1;
    }
    if (flush_rec(j) < 0)
        return -1;
    return j->bytes > COMPACT_BYTES ? rewrite(j) : 0;
}

void journal_close(struct journal *j, const char *request_id)
{
    struct note *n = strmap_del(j->open, request_id);
    if (n == NULL)
        return; /* never noted */
    note_free(n);
    if (record_encode(&j->rec, 'C', request_id, NULL, 0) < 0 || flush_rec(j) < 0)
        log_error("journal: cannot close %s: a restart would send it again, cut, and "
                  "accountd keeps the first of the two (this one) in the ledger", request_id);
}

void journal_free(struct journal *j)
{
    if (j == NULL)
        return;
    /* Nothing open is left after a clean stop: the next start reads nothing. */
    if (j->open != NULL && strmap_count(j->open) == 0 && j->fd >= 0 && j->bytes > 0 &&
        ftruncate(j->fd, 0) != 0)
        log_warn("journal: cannot empty %s: %s", j->path, strerror(errno));
    if (j->fd >= 0)
        close(j->fd);
    strmap_free(j->open, note_free);
    free(j->rec.data);
    free(j);
}
