/* zap.h - accountd's ZAP handler: which CURVE clients its sockets accept. */
#ifndef ACCOUNTD_ZAP_H
#define ACCOUNTD_ZAP_H

#include <stddef.h>

struct curve_config;
struct metrics;
struct zap;

/* Binds the ZAP endpoint of ctx and answers its requests on a thread of its
 * own: a CURVE client whose public key the config lists is accepted, every
 * other peer refused (counted and logged, at most once a second). Call
 * before binding the context's CURVE sockets. NULL on error (err). */
struct zap *zap_start(void *ctx, const struct curve_config *c, struct metrics *m, char *err,
                      size_t errlen);

/* Joins the thread; call after zmq_ctx_term(ctx), which ends it. */
void zap_join(struct zap *z);

#endif
