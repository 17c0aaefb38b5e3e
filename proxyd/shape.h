/* shape.h - what the config adds to or removes from a request on its way to a
 * deployment: litellm_params defaults, additional_drop_params, extra_headers
 * and organization (loaded by libtollgate/config_params.c). */
#ifndef PROXYD_SHAPE_H
#define PROXYD_SHAPE_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>

#include "protocol.h"

/* The body d is sent for api: a shallow copy of body with d's defaults
 * where the request sets none of its own, without the parameters d drops;
 * with d's nested drops too when nested (false for a body a protocol still
 * translates: those apply to what it becomes, shape_drop_nested). Members
 * reached by a nested drop are copied, never changed in body. NULL when out
 * of memory. */
json_t *shape_request(const json_t *body, enum api api, const struct deployment *d, bool nested);

/* d's nested drops, in place, on a body that is the caller's own. -1 when
 * out of memory. */
int shape_drop_nested(json_t *body, const struct deployment *d);

/* h plus d's extra_headers and OpenAI-Organization. Takes h; NULL (h freed)
 * when out of memory. */
struct curl_slist *shape_headers(const struct deployment *d, struct curl_slist *h);

#endif
