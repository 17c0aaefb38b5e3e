/* config_strategy.c - router_settings.routing_strategy, its
 * routing_strategy_args and default_max_parallel_requests, with LiteLLM's
 * names and defaults (litellm/router_strategy/: lowest_latency.py's
 * RoutingArgs ttl 1 h, lowest_latency_buffer 0, max_latency_list_size 10;
 * lowest_tpm_rpm(_v2).py's ttl 60 s). proxyd/router_pick.c applies them.
 *
 * LiteLLM ignores an argument its strategy does not know; here it is an
 * error naming the file, line and key, as is a strategy name LiteLLM does
 * not have: a misspelt argument would otherwise route differently than its
 * author believes.
 *
 * router_settings' redis_* (the Redis through which usage-based routing shares
 * its counts) are config_redis.c's; config_parse_strategy reads them too.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "config_yaml.h"

#define LATENCY_TTL_S 3600      /* lowest_latency.py: RoutingArgs.ttl */
#define USAGE_TTL_S 60          /* lowest_tpm_rpm_v2.py: RoutingArgs.ttl */
#define LATENCY_LIST_SIZE 10    /* lowest_latency.py: max_latency_list_size */
#define LATENCY_LIST_MAX 1000

static const struct {
    const char *name;
    enum route_strategy strategy;
    const char *args; /* the routing_strategy_args it takes, for the error */
} STRATEGIES[] = {
    {"simple-shuffle", ROUTE_SIMPLE_SHUFFLE, NULL},
    {"least-busy", ROUTE_LEAST_BUSY, NULL},
    {"usage-based-routing-v2", ROUTE_USAGE_BASED, "ttl"},
    {"usage-based-routing", ROUTE_USAGE_BASED, "ttl"},
    {"latency-based-routing", ROUTE_LATENCY_BASED,
     "ttl, lowest_latency_buffer, max_latency_list_size"},
    {"cost-based-routing", ROUTE_COST_BASED, NULL},
};

#define N_STRATEGIES (sizeof(STRATEGIES) / sizeof(STRATEGIES[0]))

/* The index of name in STRATEGIES, or -1. */
static int strategy_index(const char *name)
{
    for (size_t i = 0; i < N_STRATEGIES; i++) {
        if (strcmp(STRATEGIES[i].name, name) == 0)
            return (int)i;
    }
    return -1;
}

/* Does the strategy at index take the argument arg? */
static bool takes(int index, const char *arg)
{
    const char *args = STRATEGIES[index].args;
    size_t len = strlen(arg);
    for (const char *p = args; p != NULL && (p = strstr(p, arg)) != NULL; p += len) {
        if ((p == args || p[-1] == ' ') && (p[len] == ',' || p[len] == '\0'))
            return true;
    }
    return false;
}

/* Each key of routing_strategy_args must be one the strategy takes. */
static int check_args(struct loader *ld, yaml_node_t *args, int index)
{
    for (yaml_node_pair_t *p = args->data.mapping.pairs.start; p < args->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(&ld->doc, p->key);
        const char *k = cy_scalar(kn);
        char key[160];
        snprintf(key, sizeof(key), "router_settings.routing_strategy_args.%s",
                 k != NULL ? k : "(non-scalar key)");
        if (k == NULL || !takes(index, k))
            return cy_fail(ld, kn, key, "not an argument of %s, which takes %s",
                           STRATEGIES[index].name,
                           STRATEGIES[index].args != NULL ? STRATEGIES[index].args : "none");
    }
    return 0;
}

/* The values of routing_strategy_args (keys already checked). */
static int read_args(struct loader *ld, yaml_node_t *args, enum route_strategy s,
                     struct router_config *rc)
{
    const char *k = "router_settings.routing_strategy_args.";
    char key[160];
    double ttl = s == ROUTE_LATENCY_BASED ? LATENCY_TTL_S : USAGE_TTL_S, buffer = 0;
    long usage_ttl = USAGE_TTL_S, list = LATENCY_LIST_SIZE;
    snprintf(key, sizeof(key), "%sttl", k);
    if (s == ROUTE_USAGE_BASED) { /* an int in LiteLLM's RoutingArgs */
        if (cy_int(ld, args, "ttl", key, 1, 86400, &usage_ttl) < 0)
            return -1;
        ttl = (double)usage_ttl;
    } else if (cy_double(ld, args, "ttl", key, 0.001, 24 * 86400, &ttl) < 0) { /* ms fit an int */
        return -1;
    }
    snprintf(key, sizeof(key), "%slowest_latency_buffer", k);
    if (cy_double(ld, args, "lowest_latency_buffer", key, 0, 1000, &buffer) < 0)
        return -1;
    snprintf(key, sizeof(key), "%smax_latency_list_size", k);
    if (cy_int(ld, args, "max_latency_list_size", key, 1, LATENCY_LIST_MAX, &list) < 0)
        return -1;
    rc->strategy_ttl_ms = (int)(ttl * 1000);
    rc->latency_buffer = buffer;
    rc->latency_list_size = (int)list;
    return 0;
}

int config_parse_strategy(struct loader *ld, yaml_node_t *rs, struct router_config *rc)
{
    const char *key = "router_settings.routing_strategy";
    yaml_node_t *name = cy_map_get(ld, rs, "routing_strategy");
    yaml_node_t *args = cy_map_get(ld, rs, "routing_strategy_args");
    int index = 0;
    long parallel = 0;
    if (name != NULL && (cy_scalar(name) == NULL || (index = strategy_index(cy_scalar(name))) < 0))
        return cy_fail(ld, name, key, "%s is not one of LiteLLM's routing strategies: "
                       "simple-shuffle, least-busy, usage-based-routing-v2, "
                       "usage-based-routing, latency-based-routing, cost-based-routing",
                       cy_scalar(name) != NULL ? cy_scalar(name) : "(not a name)");
    if (cy_want_map(ld, args, "router_settings.routing_strategy_args") < 0 ||
        (args != NULL && check_args(ld, args, index) < 0))
        return -1;
    rc->strategy = STRATEGIES[index].strategy;
    if (read_args(ld, args, rc->strategy, rc) < 0)
        return -1;
    if (cy_int(ld, rs, "default_max_parallel_requests",
               "router_settings.default_max_parallel_requests", 1, 1000000, &parallel) < 0)
        return -1;
    rc->default_max_parallel = (int)parallel;
    return config_parse_redis(ld, rs, rc);
}
