/* auth.h - who is calling: the master key or a virtual key, and may it. */
#ifndef PROXYD_AUTH_H
#define PROXYD_AUTH_H

#include <event2/http.h>

#include "httpjson.h"
#include "keystore.h"
#include "proxy.h"

/* key is NULL for the master key. When the caller is refused, auth has
 * already answered the request and refused is the HTTP status it answered
 * (401, 403, 429 when too many unknown keys are being checked, 500, 503):
 * the caller only cleans up. */
typedef void (*auth_cb)(const struct keyinfo *key, int refused, void *arg);

/* Authenticates req and calls cb (possibly before returning); refusals are
 * answered in the envelope of shape. */
void auth_check(struct proxy *px, struct evhttp_request *req, enum httpjson_shape shape,
                auth_cb cb, void *arg);

/* Does a models list (a JSON array; NULL or [] = all, as is
 * all-proxy-models; anything else that is not an array = none) allow group? */
int auth_list_allows(const char *models_json, const char *group);

/* May this key use model group `group`? Its models and its team's must both
 * allow it (models [] or all-proxy-models = all). */
int auth_model_allowed(const struct keyinfo *key, const char *group);

#endif
