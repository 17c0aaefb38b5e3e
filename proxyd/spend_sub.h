/* spend_sub.h - accountd's spend updates (ZeroMQ SUB) for budget admission. */
#ifndef PROXYD_SPEND_SUB_H
#define PROXYD_SPEND_SUB_H

#include <event2/event.h>
#include <stddef.h>

#include "admission.h"
#include "config.h"

struct spend_sub;

struct spend_sub *spend_sub_new(struct event_base *base, const struct config *cfg,
                                struct admission *a, char *err, size_t errlen);
void spend_sub_free(struct spend_sub *s);

#endif
