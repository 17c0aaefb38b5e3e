/* usage.h - reading an upstream's usage object (OpenAI and Anthropic names). */
#ifndef TG_USAGE_H
#define TG_USAGE_H

#include <jansson.h>

#include "price.h"

/* Fills u from a "usage" JSON object. Missing counts are 0; -1 when a count
 * is present but not a non-negative integer. */
int usage_from_json(const json_t *usage, struct usage *u);

#endif
