/* redis_args.h - a Redis command's arguments built up in one buffer (no
 * allocation per argument), then sent by hiredis, which copies them.
 */
#ifndef PROXYD_REDIS_ARGS_H
#define PROXYD_REDIS_ARGS_H

#include <hiredis/async.h>
#include <stddef.h>
#include <stdint.h>

struct redis_args {
    char *text; /* the arguments one after another, each NUL-terminated */
    size_t len, cap;
    size_t *at; /* where each starts in text */
    size_t n, max;
};

/* Where the arguments stood, to go back to after a part failed. */
struct redis_args_mark {
    size_t len, n;
};

/* 0, or -1 on ENOMEM (nothing added). */
int redis_args_put(struct redis_args *a, const char *s, size_t len);
int redis_args_str(struct redis_args *a, const char *s);
int redis_args_num(struct redis_args *a, int64_t v);
int redis_args_append(struct redis_args *a, const struct redis_args *from);

const char *redis_args_at(const struct redis_args *a, size_t i);
size_t redis_args_len(const struct redis_args *a, size_t i);

struct redis_args_mark redis_args_mark(const struct redis_args *a);
void redis_args_reset(struct redis_args *a, struct redis_args_mark m);
void redis_args_clear(struct redis_args *a);

/* redisAsyncCommandArgv of them all: 0, or -1 (not sent). */
int redis_args_send(const struct redis_args *a, redisAsyncContext *ac, redisCallbackFn *fn,
                    void *priv);

#endif
