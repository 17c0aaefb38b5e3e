/* redis_args.h - a Redis command's arguments written straight into the
 * protocol (RESP bulk strings) in one buffer: no allocation per argument,
 * and no formatting by hiredis (redisAsyncFormattedCommand sends it as is).
 */
#ifndef PROXYD_REDIS_ARGS_H
#define PROXYD_REDIS_ARGS_H

#include <hiredis/async.h>
#include <stddef.h>
#include <stdint.h>

struct redis_arg {
    size_t at, len; /* its bytes in text */
};

struct redis_args {
    char *text; /* "$LEN\r\nBYTES\r\n" one after another */
    size_t len, cap;
    struct redis_arg *arg;
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

const char *redis_args_at(const struct redis_args *a, size_t i);
size_t redis_args_len(const struct redis_args *a, size_t i);

struct redis_args_mark redis_args_mark(const struct redis_args *a);
void redis_args_reset(struct redis_args *a, struct redis_args_mark m);
void redis_args_clear(struct redis_args *a);

/* One command of the arguments of parts[0..n-1], in that order ("*N\r\n",
 * then each part's bytes as they are): 0, or -1 (not sent). */
int redis_args_send(const struct redis_args *const *parts, size_t n, redisAsyncContext *ac,
                    redisCallbackFn *fn, void *priv);

#endif
