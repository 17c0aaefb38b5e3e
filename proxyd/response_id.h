/* response_id.h - the Responses API ids the client sees.
 *
 * "resp_tg" + 8 hex digits naming the deployment (the start of
 * SHA-256(model "\n" api_base)), then, when it has them, the owner ("u" or
 * "t" + 12 hex digits of SHA-256 of the creating key's user or team) and
 * the creating request ("b" + its uuid's 32 hex digits, for a background
 * response), then "_" and the upstream's own id. So a retrieve, cancel or
 * delete reaches the deployment from any proxyd after any restart, and a
 * key of another user or team is refused (LiteLLM's response id security).
 */
#ifndef PROXYD_RESPONSE_ID_H
#define PROXYD_RESPONSE_ID_H

#include <jansson.h>
#include <stdbool.h>

#include "config.h"
#include "ids.h"

#define RESPONSE_OWNER_LEN 13 /* "u" or "t" + 12 hex digits */

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

/* The client's id for upstream_id on d; owner and creator may be NULL or "". */
json_t *response_id_make(const struct deployment *d, const json_t *upstream_id,
                         const char *owner, const char *creator);

/* Reads a client's id against cfg's deployments. false: not one of ours,
 * or its deployment is no longer in the config. */
bool response_id_parse(const struct config *cfg, const char *client_id, struct response_ref *ref);

#endif
