/* config_ratelimit.c - the settings of proxyd's rate limits (issue 19):
 * general_settings.token_rate_limit_type (which tokens a tpm limit counts,
 * as LiteLLM's) and tollgate.proxyd.ratelimit_output_tokens (the answer
 * tokens a request that sets no max_tokens is assumed to ask for when it
 * is admitted against a tpm limit; settled to the real count at its end).
 * The limits themselves are rows of the database (keys, ...).
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_yaml.h"

#define OUTPUT_TOKENS_DEFAULT 1024

static int parse_count(struct loader *ld, yaml_node_t *gs, struct config *cfg)
{
    static const char *const names[] = {[TOKENS_TOTAL] = "total", [TOKENS_INPUT] = "input",
                                        [TOKENS_OUTPUT] = "output"};
    const char *key = "general_settings.token_rate_limit_type";
    char *v = NULL;
    cfg->ratelimit.count = TOKENS_TOTAL;
    if (gs == NULL || cy_str(ld, gs, "token_rate_limit_type", key, &v) < 0)
        return gs == NULL ? 0 : -1;
    if (v == NULL)
        return 0;
    int found = -1;
    for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
        if (strcmp(v, names[i]) == 0)
            found = i;
    free(v);
    if (found < 0)
        return cy_fail(ld, cy_map_get(ld, gs, "token_rate_limit_type"), key,
                       "must be total, input or output");
    cfg->ratelimit.count = (enum token_count)found;
    return 0;
}

int config_parse_ratelimit(struct loader *ld, yaml_node_t *root, struct config *cfg)
{
    yaml_node_t *tg = cy_map_get(ld, root, "tollgate");
    yaml_node_t *px = tg != NULL ? cy_map_get(ld, tg, "proxyd") : NULL;
    long out = OUTPUT_TOKENS_DEFAULT;
    if (parse_count(ld, cy_map_get(ld, root, "general_settings"), cfg) < 0 ||
        (px != NULL && cy_int(ld, px, "ratelimit_output_tokens",
                              "tollgate.proxyd.ratelimit_output_tokens", 1, 10000000, &out) < 0))
        return -1;
    cfg->ratelimit.output_tokens = out;
    return 0;
}
