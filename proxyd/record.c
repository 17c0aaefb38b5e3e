/* record.c - framed, CRC-checked records on disk (see record.h). */
#include "record.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "grow.h"

uint8_t *record_put_payload(struct recbuf *buf, size_t header, char type, const char *id,
                            size_t idlen, const uint8_t *body, size_t len, size_t *plen)
{
    *plen = 3 + idlen + len;
    if (idlen > 0xffff || *plen > REC_MAX)
        return NULL;
    uint8_t *grown = grow_array(buf->data, &buf->cap, buf->len + header + *plen, 1, 4096);
    if (grown == NULL)
        return NULL;
    buf->data = grown;
    uint8_t *rec = buf->data + buf->len, *p = rec + header;
    p[0] = (uint8_t)type;
    p[1] = (uint8_t)(idlen >> 8);
    p[2] = (uint8_t)idlen;
    memcpy(p + 3, id, idlen);
    if (len > 0)
        memcpy(p + 3 + idlen, body, len);
    return rec;
}

int record_encode(struct recbuf *buf, char type, const char *id, const uint8_t *body,
                  size_t len)
{
    size_t plen;
    uint8_t *rec = record_put_payload(buf, REC_HEADER, type, id, strlen(id), body, len, &plen);
    if (rec == NULL)
        return -1;
    uint8_t *p = rec + REC_HEADER;
    put32(rec, (uint32_t)plen);
    put32(rec + 4, (uint32_t)crc32(0L, p, (uInt)plen));
    buf->len += REC_HEADER + plen;
    return 0;
}

int record_next(const uint8_t *data, size_t len, size_t *off, struct record *r)
{
    if (*off + REC_HEADER > len)
        return -1;
    const uint8_t *p = data + *off + REC_HEADER;
    uint32_t plen = get32(data + *off), crc = get32(data + *off + 4);
    if (plen < 3 || plen > REC_MAX || *off + REC_HEADER + plen > len ||
        crc32(0L, p, plen) != crc)
        return -1;
    size_t idlen = (size_t)p[1] << 8 | p[2];
    if (3 + idlen > plen)
        return -1;
    *r = (struct record){.type = (char)p[0], .id = (const char *)p + 3, .id_len = idlen,
                         .body = p + 3 + idlen, .body_len = plen - 3 - idlen};
    *off += REC_HEADER + plen;
    return 0;
}

int record_write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int record_read_file(const char *path, uint8_t **data, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    *data = NULL;
    if (fd < 0 || fstat(fd, &st) != 0 || (*data = malloc((size_t)st.st_size + 1)) == NULL) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, *data + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    *len = got;
    return 0;
}
