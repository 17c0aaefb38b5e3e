/* background.h - billing a background response of the Responses API once
 * an answer shows it ended (background.c). */
#ifndef PROXYD_BACKGROUND_H
#define PROXYD_BACKGROUND_H

#include <jansson.h>

#include "config.h"
#include "proxy.h"

struct generation;

/* response: an answer of deployment d (of config generation gen, which the
 * bill holds while it runs) for the response that request
 * creator created ("" for none: nothing to do). Bills its usage once it
 * ended, as creator's ledger row is owned; anything else is left alone. */
void background_bill(struct proxy *px, struct generation *gen, const struct deployment *d,
                     const char *creator, const json_t *response);

/* Lets go of the bills still looking for their request (at exit, after
 * the keystore stopped). */
void background_stop(struct proxy *px);

#endif
