/* event.h - filling a usage event's common parts (event.c). */
#ifndef PROXYD_EVENT_H
#define PROXYD_EVENT_H

#include "config.h"
#include "events.pb-c.h"
#include "money.h"
#include "price.h"

/* The usage buckets and request facts the price depends on. */
void event_fill_usage(Tollgate__UsageEvent *e, const struct usage *u);

/* The deployment that served it: its model id and custom prices (written as
 * text into in_price / out_price, which must outlive e). */
void event_fill_deployment(Tollgate__UsageEvent *e, const struct deployment *d,
                           char in_price[MONEY_STR_MAX], char out_price[MONEY_STR_MAX]);

#endif
