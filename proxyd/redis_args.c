/* redis_args.c - a Redis command's arguments in one buffer (see redis_args.h). */
#include "redis_args.h"

#include <stdlib.h>
#include <string.h>

#include "numtext.h"

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    size_t c = *cap != 0 ? *cap : 16;
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

int redis_args_put(struct redis_args *a, const char *s, size_t len)
{
    if (grow((void **)&a->at, &a->max, a->n + 1, sizeof(*a->at)) != 0 ||
        grow((void **)&a->text, &a->cap, a->len + len + 1, 1) != 0)
        return -1;
    memcpy(a->text + a->len, s, len);
    a->text[a->len + len] = '\0';
    a->at[a->n++] = a->len;
    a->len += len + 1;
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

int redis_args_append(struct redis_args *a, const struct redis_args *from)
{
    for (size_t i = 0; i < from->n; i++)
        if (redis_args_put(a, redis_args_at(from, i), redis_args_len(from, i)) != 0)
            return -1;
    return 0;
}

const char *redis_args_at(const struct redis_args *a, size_t i)
{
    return a->text + a->at[i];
}

size_t redis_args_len(const struct redis_args *a, size_t i)
{
    return (i + 1 < a->n ? a->at[i + 1] : a->len) - a->at[i] - 1;
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
    free(a->at);
    memset(a, 0, sizeof(*a));
}

int redis_args_send(const struct redis_args *a, redisAsyncContext *ac, redisCallbackFn *fn,
                    void *priv)
{
    const char **argv = malloc(a->n * sizeof(*argv));
    size_t *lens = malloc(a->n * sizeof(*lens));
    int rc = -1;
    if (argv != NULL && lens != NULL && a->n > 0 && a->n <= INT32_MAX) {
        for (size_t i = 0; i < a->n; i++) {
            argv[i] = redis_args_at(a, i);
            lens[i] = redis_args_len(a, i);
        }
        rc = redisAsyncCommandArgv(ac, fn, priv, (int)a->n, argv, lens) == REDIS_OK ? 0 : -1;
    }
    free(argv);
    free(lens);
    return rc;
}
