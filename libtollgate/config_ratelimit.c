/* config_ratelimit.c - the settings of proxyd's rate limits (issue 19):
 * general_settings.token_rate_limit_type (which tokens a tpm limit counts,
 * as LiteLLM's) and tollgate.proxyd.ratelimit_output_tokens (the answer
 * tokens a request that sets no max_tokens is assumed to ask for when it
 * is admitted against a tpm limit; settled to the real count at its end).
 * With a Redis (router_settings.redis_*) the limits are shared through it;
 * while it cannot be reached each proxyd limits locally at limit /
 * tollgate.proxyd.ratelimit_instances, or admits everything with
 * ratelimit_fallback: open. tollgate.proxyd.ratelimit_slot_ttl_ms bounds how
 * long the parallel slots of a proxyd killed with -9 stay taken in Redis (its
 * heartbeat's life; default: upstream_timeout_ms plus a minute).
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

static int parse_fallback(struct loader *ld, yaml_node_t *px, struct config *cfg)
{
    const char *key = "tollgate.proxyd.ratelimit_fallback";
    char *v = NULL;
    if (px == NULL || cy_str(ld, px, "ratelimit_fallback", key, &v) < 0)
        return px == NULL ? 0 : -1;
    bool open = v != NULL && strcmp(v, "open") == 0, bad = v != NULL && !open &&
                                                         strcmp(v, "local") != 0;
    free(v);
    if (bad)
        return cy_fail(ld, cy_map_get(ld, px, "ratelimit_fallback"), key,
                       "must be local (limit / ratelimit_instances on each proxyd) or open");
    cfg->ratelimit.fail_open = open;
    return 0;
}

int config_parse_ratelimit(struct loader *ld, yaml_node_t *root, struct config *cfg)
{
    yaml_node_t *tg = cy_map_get(ld, root, "tollgate");
    yaml_node_t *px = tg != NULL ? cy_map_get(ld, tg, "proxyd") : NULL;
    long out = OUTPUT_TOKENS_DEFAULT, instances = 1;
    long ttl = (long)cfg->proxyd.upstream_timeout_ms + 60000;
    if (parse_count(ld, cy_map_get(ld, root, "general_settings"), cfg) < 0 ||
        parse_fallback(ld, px, cfg) < 0 ||
        (px != NULL && (cy_int(ld, px, "ratelimit_output_tokens",
                               "tollgate.proxyd.ratelimit_output_tokens", 1, 10000000, &out) < 0 ||
                        cy_int(ld, px, "ratelimit_instances",
                               "tollgate.proxyd.ratelimit_instances", 1, 10000, &instances) < 0 ||
                        cy_int(ld, px, "ratelimit_slot_ttl_ms",
                               "tollgate.proxyd.ratelimit_slot_ttl_ms", 1000, 86400000, &ttl) < 0)))
        return -1;
    cfg->ratelimit.output_tokens = out;
    cfg->ratelimit.instances = instances;
    cfg->ratelimit.slot_ttl_ms = ttl;
    return 0;
}
