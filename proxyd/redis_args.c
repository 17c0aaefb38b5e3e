/* redis_args.c - a Redis command's arguments in the protocol, in one buffer
 * (see redis_args.h).
 */
#include "redis_args.h"

#include <stdlib.h>
#include <string.h>

#include "numtext.h"

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    size_t c = *cap != 0 ? *cap : 64;
    void *q;
    while (c < need)
        c *= 2;
    if (c == *cap)
        return 0;
    if ((q = realloc(*p, c * size)) == NULL)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* A RESP header, "$LEN\r\n" (a bulk string's) or "*N\r\n" (an array's), at p
 * (NUMTEXT_MAX + 3 bytes); its length. */
static size_t resp_head(char *p, char type, size_t n)
{
    size_t h = 1;
    p[0] = type;
    h += numtext_i64(p + 1, (int64_t)n);
    p[h++] = '\r';
    p[h++] = '\n';
    return h;
}

int redis_args_put(struct redis_args *a, const char *s, size_t len)
{
    char head[NUMTEXT_MAX + 3];
    size_t h = resp_head(head, '$', len);
    if (grow((void **)&a->arg, &a->max, a->n + 1, sizeof(*a->arg)) != 0 ||
        grow((void **)&a->text, &a->cap, a->len + h + len + 2, 1) != 0)
        return -1;
    memcpy(a->text + a->len, head, h);
    memcpy(a->text + a->len + h, s, len);
    memcpy(a->text + a->len + h + len, "\r\n", 2);
    a->arg[a->n++] = (struct redis_arg){a->len + h, len};
    a->len += h + len + 2;
    return 0;
}

int redis_args_str(struct redis_args *a, const char *s)
{
    return redis_args_put(a, s, strlen(s));
}

int redis_args_num(struct redis_args *a, int64_t v)
{
    char s[NUMTEXT_MAX];
    return redis_args_put(a, s, numtext_i64(s, v));
}

const char *redis_args_at(const struct redis_args *a, size_t i)
{
    return a->text + a->arg[i].at;
}

size_t redis_args_len(const struct redis_args *a, size_t i)
{
    return a->arg[i].len;
}

struct redis_args_mark redis_args_mark(const struct redis_args *a)
{
    return (struct redis_args_mark){a->len, a->n};
}

void redis_args_reset(struct redis_args *a, struct redis_args_mark m)
{
    a->len = m.len;
    a->n = m.n;
}

void redis_args_clear(struct redis_args *a)
{
    free(a->text);
    free(a->arg);
    memset(a, 0, sizeof(*a));
}

int redis_args_send(const struct redis_args *const *parts, size_t n, redisAsyncContext *ac,
                    redisCallbackFn *fn, void *priv)
{
    char head[NUMTEXT_MAX + 3];
    size_t h, args = 0, len = 0;
    char *cmd, *p;
    int rc;
    for (size_t i = 0; i < n; i++) {
        args += parts[i]->n;
        len += parts[i]->len;
    }
    if (args == 0)
        return -1;
    h = resp_head(head, '*', args);
    if ((cmd = malloc(h + len)) == NULL)
        return -1;
    memcpy(cmd, head, h);
    p = cmd + h;
    for (size_t i = 0; i < n; i++) {
        if (parts[i]->len > 0)
            memcpy(p, parts[i]->text, parts[i]->len);
        p += parts[i]->len;
    }
    rc = redisAsyncFormattedCommand(ac, fn, priv, cmd, h + len) == REDIS_OK ? 0 : -1;
    free(cmd);
    return rc;
}
