/* fuzz_proxyd.h - for the proxyd targets: one (API, deployment) pair of the
 * ten proxyd serves (protocol_for), picked by a byte of the input, as the
 * upstream_req a call would make for it. Header-only: only the proxyd
 * targets link protocol.c. */
#ifndef TG_FUZZ_PROXYD_H
#define TG_FUZZ_PROXYD_H

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz_common.h"
#include "protocol.h"

static const struct {
    enum api api;
    const char *group;
} FUZZ_ROUTES[] = {
    {API_CHAT, "gpt"},        {API_CHAT, "azure"},       {API_CHAT, "claude"},
    {API_COMPLETION, "gpt"},  {API_EMBEDDING, "azure"},  {API_IMAGE, "gpt"},
    {API_RESPONSES, "gpt"},   {API_RESPONSES, "azure"},  {API_MESSAGES, "claude"},
    {API_COUNT_TOKENS, "claude"},
};
#define FUZZ_N_ROUTES (sizeof(FUZZ_ROUTES) / sizeof(FUZZ_ROUTES[0]))

/* Fills r for route pick (any byte) and the client's body; the protocol
 * that serves it. */
static inline const struct protocol *fuzz_route(uint8_t pick, const json_t *body,
                                                struct upstream_req *r)
{
    const struct config *cfg = fuzz_config();
    size_t i = pick % FUZZ_N_ROUTES;
    const struct deployment *d = NULL;
    for (size_t k = 0; d == NULL && k < cfg->n_deployments; k++)
        if (strcmp(cfg->deployments[k].model_name, FUZZ_ROUTES[i].group) == 0)
            d = &cfg->deployments[k];
    const char *why;
    const struct protocol *p = d != NULL ? protocol_for(FUZZ_ROUTES[i].api, d, &why) : NULL;
    if (p == NULL)
        abort(); /* FUZZ_ROUTES names only pairs that are served */
    *r = (struct upstream_req){
        .api = FUZZ_ROUTES[i].api, .request_id = "req-fuzz-0001", .owner = "user-fuzz",
        .cfg = cfg, .d = d, .body = body, .client = NULL, .model_group = d->model_name,
        .stream = json_is_true(json_object_get(body, "stream")), .drop_params = pick & 0x80,
    };
    return p;
}

#endif
