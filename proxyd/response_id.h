/* response_id.h - the Responses API ids the client sees.
 *
 * "resp_tg" + 8 hex digits naming the deployment (the start of
 * SHA-256 of its model, api_base and api_key), then, when it has them, the owner ("u" or
 * "t" + 12 hex digits of SHA-256 of the creating key's user or team) and
 * the creating request ("b" + its uuid's 32 hex digits, for a background
 * response), then a signature ("m" + 16 hex digits of HMAC-SHA256 under
 * the config's id_secret, over the rest of the id), then "_" and the
 * upstream's own id. So a retrieve, cancel or delete reaches the deployment
 * from any proxyd after any restart, a key of another user or team is
 * refused (LiteLLM's response id security), and an id whose parts were
 * changed or left out is not one of ours.
 */
#ifndef PROXYD_RESPONSE_ID_H
#define PROXYD_RESPONSE_ID_H

#include <jansson.h>
#include <stdbool.h>

#include "config.h"
#include "ids.h"

#define RESPONSE_OWNER_LEN 13 /* "u" or "t" + 12 hex digits */
#define RESPONSE_ID_PREFIX "resp_tg"

/* What a client's response id says. */
struct response_ref {
    const struct deployment *d;
    const char *upstream_id;                 /* points into the client's id */
    char owner[RESPONSE_OWNER_LEN + 1];      /* "" when the creator had no user or team */
    char creator[IDS_UUID_LEN + 1];          /* "" unless a background response */
};

/* The owner tag of a key: its user's, else its team's, else "". */
void response_id_owner(const char *user_id, const char *team_id,
                       char out[RESPONSE_OWNER_LEN + 1]);

/* The client's id for upstream_id on d of cfg; owner and creator may be
 * NULL or "". */
json_t *response_id_make(const struct config *cfg, const struct deployment *d,
                         const json_t *upstream_id, const char *owner, const char *creator);

/* May a key whose owner tag is `owner` use ref's response? Yes when the
 * response names no owner or the same one. */
bool response_id_owned(const struct response_ref *ref, const char *owner);

/* Reads a client's id against cfg's deployments. false: not one of ours
 * (or not signed by this config), or its deployment is no longer in it. */
bool response_id_parse(const struct config *cfg, const char *client_id, struct response_ref *ref);

#endif
