/* bm_local.c - the local BudgetManager file: LiteLLM's user_cost.json, safe
 * across processes and crashes.
 *
 * Every change holds an exclusive flock on "<path>.lock" while it re-reads
 * the file, applies itself and saves: the new text goes to
 * "<path>.tmp.<pid>", is fsync'd, renamed over the file, and the directory
 * is fsync'd, so the file is always a complete old or new state and no
 * process loses another's update. Readers need no lock (rename is atomic).
 * A file that is not a user_cost.json document is reported, never
 * overwritten. Temp files left by a killed saver are removed at open, under
 * the lock (while it is held nobody else is writing one).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bm_internal.h"

#define FILE_MAX ((size_t)1 << 30)

static int open_lock(struct tg_bm *m)
{
    char lock[4096];
    if (m->lock_fd >= 0 && m->lock_pid == getpid())
        return TG_BM_OK;
    if (m->lock_fd >= 0)
        close(m->lock_fd); /* inherited over fork: the parent's lock, not ours */
    m->lock_fd = -1;
    snprintf(lock, sizeof(lock), "%s.lock", m->path);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return bm_fail(m, TG_BM_EIO, "%s: %s", lock, strerror(errno));
    m->lock_fd = fd;
    m->lock_pid = getpid();
    return TG_BM_OK;
}

static int lock(struct tg_bm *m)
{
    int rc = open_lock(m);
    if (rc != TG_BM_OK)
        return rc;
    while (flock(m->lock_fd, LOCK_EX) < 0)
        if (errno != EINTR)
            return bm_fail(m, TG_BM_EIO, "%s.lock: flock: %s", m->path, strerror(errno));
    return TG_BM_OK;
}

static void unlock(struct tg_bm *m)
{
    (void)flock(m->lock_fd, LOCK_UN); /* closing the fd would release it too */
}

/* The directory part of path, for fsync and the temp-file sweep. */
static void dir_of(const char *path, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s", path);
    char *d = dirname(out);
    if (d != out)
        memmove(out, d, strlen(d) + 1);
}

/* Removes "<name>.tmp.*" beside the file: savers that died mid-save. */
static void sweep_temps(const struct tg_bm *m)
{
    char dir[4096], base[4096], prefix[4200];
    dir_of(m->path, dir, sizeof(dir));
    snprintf(base, sizeof(base), "%s", m->path);
    snprintf(prefix, sizeof(prefix), "%s.tmp.", basename(base));
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    size_t plen = strlen(prefix);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, plen) == 0 &&
            strspn(e->d_name + plen, "0123456789") == strlen(e->d_name + plen))
            (void)unlinkat(dirfd(d), e->d_name, 0); /* best effort: a leftover is harmless */
    closedir(d);
}

int bm_local_open(struct tg_bm *m, const char *path)
{
    m->lock_fd = -1;
    if (path != NULL) {
        m->path = strdup(path);
    } else {
        if (strchr(m->project, '/') != NULL)
            return bm_fail(m, TG_BM_EINVAL, "project name contains '/': give options.path");
        if (asprintf(&m->path, "%s.user_cost.json", m->project) < 0)
            m->path = NULL;
    }
    if (m->path == NULL)
        return bm_fail(m, TG_BM_ENOMEM, "out of memory");
    if (m->path[0] == '\0' || strlen(m->path) > 4000)
        return bm_fail(m, TG_BM_EINVAL, "options.path is empty or too long");
    int rc = lock(m);
    if (rc != TG_BM_OK)
        return rc;
    sweep_temps(m);
    unlock(m);
    json_t *users = NULL;
    rc = bm_local_read(m, &users); /* a damaged file fails the open */
    json_decref(users);
    return rc;
}

void bm_local_close(struct tg_bm *m)
{
    if (m->lock_fd >= 0)
        close(m->lock_fd);
    m->lock_fd = -1;
    free(m->path);
    m->path = NULL;
}

static int read_file(struct tg_bm *m, char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    int fd = open(m->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? TG_BM_OK : bm_fail(m, TG_BM_EIO, "%s: %s", m->path,
                                                     strerror(errno));
    struct stat st;
    const char *why = NULL;
    if (fstat(fd, &st) < 0)
        why = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        why = "not a regular file";
    else if ((size_t)st.st_size > FILE_MAX)
        why = "larger than 1 GiB";
    if (why != NULL) {
        close(fd);
        return bm_fail(m, TG_BM_EIO, "%s: %s", m->path, why);
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf != NULL && got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            free(buf);
            close(fd);
            return bm_fail(m, TG_BM_EIO, "%s: read: %s", m->path, strerror(e));
        }
        got += (size_t)n;
    }
    close(fd);
    if (buf == NULL)
        return bm_fail(m, TG_BM_ENOMEM, "out of memory");
    buf[got] = '\0';
    *text = buf;
    *len = got;
    return TG_BM_OK;
}

int bm_local_read(struct tg_bm *m, json_t **out)
{
    char *text;
    size_t len;
    char why[300];
    json_error_t jerr;
    *out = NULL;
    int rc = read_file(m, &text, &len);
    if (rc != TG_BM_OK)
        return rc;
    if (len == 0) { /* missing or empty: no users yet */
        free(text);
        *out = json_object();
        return *out != NULL ? TG_BM_OK : bm_fail(m, TG_BM_ENOMEM, "out of memory");
    }
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (doc == NULL)
        return bm_fail(m, TG_BM_ECORRUPT, "%s is not a user_cost.json document (line %d, "
                       "column %d: %s); it was left as it is", m->path, jerr.line,
                       jerr.column, jerr.text);
    if (bm_dict_check(doc, why, sizeof(why)) < 0) {
        json_decref(doc);
        return bm_fail(m, TG_BM_ECORRUPT, "%s is not a user_cost.json document: %s; it was "
                       "left as it is", m->path, why);
    }
    *out = doc;
    return TG_BM_OK;
}

static int write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes text to the temp file, fsyncs it, renames it over the file and
 * fsyncs the directory so the rename itself is durable. */
static int save(struct tg_bm *m, const char *text)
{
    char tmp[4200], dir[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", m->path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return bm_fail(m, TG_BM_EIO, "%s: %s", tmp, strerror(errno));
    if (write_all(fd, text, strlen(text)) < 0 || fsync(fd) < 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return bm_fail(m, TG_BM_EIO, "%s: write: %s", tmp, strerror(e));
    }
    if (close(fd) < 0 || rename(tmp, m->path) < 0) {
        int e = errno;
        unlink(tmp);
        return bm_fail(m, TG_BM_EIO, "%s: %s", m->path, strerror(e));
    }
    dir_of(m->path, dir, sizeof(dir));
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0) {
        int e = errno;
        if (dfd >= 0)
            close(dfd);
        return bm_fail(m, TG_BM_EIO, "%s: fsync: %s", dir, strerror(e));
    }
    close(dfd);
    return TG_BM_OK;
}

int bm_local_change(struct tg_bm *m, struct bm_change *c)
{
    json_t *users = NULL;
    int rc = lock(m);
    if (rc != TG_BM_OK)
        return rc;
    rc = bm_local_read(m, &users);
    if (rc == TG_BM_OK)
        rc = bm_apply(m, users, c);
    if (rc == TG_BM_OK && (c->op != BM_OP_RESET_ALL || c->did) &&
        (c->op != BM_OP_RESET_PERIOD || c->did)) {
        char *text = bm_json_text(users);
        rc = text != NULL ? save(m, text) : bm_fail(m, TG_BM_ENOMEM, "out of memory");
        free(text);
    }
    unlock(m);
    json_decref(users);
    return rc;
}
