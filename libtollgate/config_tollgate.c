/* config_tollgate.c - the `tollgate:` section: Tollgate's own settings,
 * every one with a default (documented in deploy/config.example.yaml). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_yaml.h"
#include "http_limits.h"
#include "log.h"

static int get_listen(struct loader *ld, yaml_node_t *map, const char *key,
                      const char *def, struct listen_addr *out)
{
    char *s;
    if (cy_str_default(ld, map, "listen", key, def, &s) < 0)
        return -1;
    int rc = config_parse_listen(s, out);
    free(s);
    if (rc < 0)
        return cy_fail(ld, cy_map_get(ld, map, "listen"), key, "must be HOST:PORT with a port from 1 to 65535");
    return 0;
}

/* max_header_bytes, max_headers, max_connections, header_timeout_ms,
 * idle_timeout_ms and body_timeout_ms of tollgate.<section> (http_limits.h). */
static int parse_http_limits(struct loader *ld, yaml_node_t *n, const char *section,
                             long connections, struct config_http_limits *out)
{
    static const char *const names[] = {"max_header_bytes", "max_headers", "max_connections",
                                        "header_timeout_ms", "idle_timeout_ms",
                                        "body_timeout_ms"};
    static const long min[] = {1024, 8, 1, 100, 100, 100};
    static const long max[] = {1L << 20, 10000, 1000000, 3600000, 86400000, 3600000};
    long v[] = {HTTP_LIMITS_HEADER_BYTES, HTTP_LIMITS_HEADERS, connections,
                HTTP_LIMITS_HEADER_TIMEOUT_MS, HTTP_LIMITS_IDLE_TIMEOUT_MS,
                HTTP_LIMITS_BODY_TIMEOUT_MS};
    char key[96];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(key, sizeof(key), "tollgate.%s.%s", section, names[i]);
        if (cy_int(ld, n, names[i], key, min[i], max[i], &v[i]) < 0)
            return -1;
    }
    *out = (struct config_http_limits){(size_t)v[0], (int)v[1], (int)v[2], (int)v[3], (int)v[4],
                                       (int)v[5]};
    return 0;
}

static int parse_proxyd(struct loader *ld, yaml_node_t *n, struct config *cfg)
{
    static const char *const known[] = {"listen", "spool_dir", "max_body_bytes",
        "upstream_timeout_ms", "key_cache_ttl_ms", "event_resend_ms", "reportd_url",
        "readiness_grace_ms", "spool_fsync_ms", "spool_max_bytes", "spool_segment_bytes",
        "shutdown_grace_ms", "curve_secret_key_file", "curve_server_public_keys",
        "key_cache_max_entries", "owner_cache_max_entries", "key_negative_ttl_ms",
        "key_negative_max_entries", "key_lookups_max", "max_header_bytes", "max_headers",
        "max_connections", "header_timeout_ms", "idle_timeout_ms", "body_timeout_ms",
        "max_metadata_bytes", "ratelimit_output_tokens", "ratelimit_fallback",
        "ratelimit_instances", "ratelimit_slot_ttl_ms", NULL};
    long body = 10L * 1024 * 1024, timeout = 600000, ttl = 1000, resend = 2000, grace = 10000;
    long key_max = 100000, owner_max = 100000, neg_ttl = 1000, neg_max = 10000, lookups = 64;
    long stop_grace = 30000, metadata = 8192;
    long fsync_ms = 5, spool_max = 1L << 30, segment = 64L << 20;
    if (cy_want_map(ld, n, "tollgate.proxyd") < 0)
        return -1;
    cy_check_keys(ld, n, "tollgate.proxyd.", known);
    if (get_listen(ld, n, "tollgate.proxyd.listen", "127.0.0.1:4000", &cfg->proxyd.listen) < 0 ||
        cy_str_default(ld, n, "spool_dir", "tollgate.proxyd.spool_dir", "var/spool",
                        &cfg->proxyd.spool_dir) < 0 ||
        cy_int(ld, n, "max_body_bytes", "tollgate.proxyd.max_body_bytes", 1024, 1L << 30, &body) < 0 ||
        cy_int(ld, n, "upstream_timeout_ms", "tollgate.proxyd.upstream_timeout_ms", 100, 3600000, &timeout) < 0 ||
        cy_int(ld, n, "key_cache_ttl_ms", "tollgate.proxyd.key_cache_ttl_ms", 0, 60000, &ttl) < 0 ||
        cy_int(ld, n, "key_cache_max_entries", "tollgate.proxyd.key_cache_max_entries", 1,
               100000000, &key_max) < 0 ||
        cy_int(ld, n, "owner_cache_max_entries", "tollgate.proxyd.owner_cache_max_entries", 1,
               100000000, &owner_max) < 0 ||
        cy_int(ld, n, "key_negative_ttl_ms", "tollgate.proxyd.key_negative_ttl_ms", 0, 60000,
               &neg_ttl) < 0 ||
        cy_int(ld, n, "key_negative_max_entries", "tollgate.proxyd.key_negative_max_entries", 1,
               100000000, &neg_max) < 0 ||
        cy_int(ld, n, "key_lookups_max", "tollgate.proxyd.key_lookups_max", 1, 100000,
               &lookups) < 0 ||
        cy_int(ld, n, "event_resend_ms", "tollgate.proxyd.event_resend_ms", 100, 600000, &resend) < 0 ||
        cy_int(ld, n, "readiness_grace_ms", "tollgate.proxyd.readiness_grace_ms", 0, 3600000, &grace) < 0 ||
        cy_int(ld, n, "shutdown_grace_ms", "tollgate.proxyd.shutdown_grace_ms", 0, 3600000,
               &stop_grace) < 0 ||
        cy_int(ld, n, "spool_fsync_ms", "tollgate.proxyd.spool_fsync_ms", 0, 1000, &fsync_ms) < 0 ||
        cy_int(ld, n, "spool_max_bytes", "tollgate.proxyd.spool_max_bytes", 1L << 20, 1L << 50,
                &spool_max) < 0 ||
        cy_int(ld, n, "spool_segment_bytes", "tollgate.proxyd.spool_segment_bytes", 1L << 16,
                1L << 32, &segment) < 0 ||
        cy_str(ld, n, "reportd_url", "tollgate.proxyd.reportd_url", &cfg->proxyd.reportd_url) < 0 ||
        cy_int(ld, n, "max_metadata_bytes", "tollgate.proxyd.max_metadata_bytes", 2, 1L << 20,
               &metadata) < 0 ||
        parse_http_limits(ld, n, "proxyd", 8192, &cfg->proxyd.http) < 0)
        return -1;
    cfg->proxyd.max_metadata_bytes = (size_t)metadata;
    if (cfg->proxyd.reportd_url != NULL &&
        cy_url(ld, cy_map_get(ld, n, "reportd_url"), "tollgate.proxyd.reportd_url",
                  cfg->proxyd.reportd_url) < 0)
        return -1;
    /* Only segments no longer appended to are deleted once acknowledged, so the one
     * being written must leave room under the cap, or a healthy stack fills it. */
    if (segment > spool_max / 4) {
        yaml_node_t *at = cy_map_get(ld, n, "spool_segment_bytes");
        return cy_fail(ld, at != NULL ? at : cy_map_get(ld, n, "spool_max_bytes"),
                       "tollgate.proxyd.spool_segment_bytes",
                       "%ld is more than a quarter of spool_max_bytes (%ld)", segment, spool_max);
    }
    cfg->proxyd.readiness_grace_ms = (int)grace;
    cfg->proxyd.shutdown_grace_ms = (int)stop_grace;
    cfg->proxyd.spool_fsync_ms = (int)fsync_ms;
    cfg->proxyd.spool_max_bytes = (uint64_t)spool_max;
    cfg->proxyd.spool_segment_bytes = (uint64_t)segment;
    cfg->proxyd.max_body_bytes = (size_t)body;
    cfg->proxyd.upstream_timeout_ms = (int)timeout;
    cfg->proxyd.key_cache_ttl_ms = (int)ttl;
    cfg->proxyd.key_cache_max_entries = (size_t)key_max;
    cfg->proxyd.owner_cache_max_entries = (size_t)owner_max;
    cfg->proxyd.key_negative_ttl_ms = (int)neg_ttl;
    cfg->proxyd.key_negative_max_entries = (size_t)neg_max;
    cfg->proxyd.key_lookups_max = (int)lookups;
    cfg->proxyd.event_resend_ms = (int)resend;
    return 0;
}

static int parse_reportd(struct loader *ld, yaml_node_t *n, struct config *cfg)
{
    static const char *const known[] = {"listen", "workers", "shutdown_grace_ms",
                                        "read_database_url", "max_header_bytes", "max_headers",
                                        "max_connections", "header_timeout_ms",
                                        "idle_timeout_ms", "body_timeout_ms", NULL};
    long workers = 4, stop_grace = 30000;
    char *url = NULL;
    if (cy_want_map(ld, n, "tollgate.reportd") < 0)
        return -1;
    cy_check_keys(ld, n, "tollgate.reportd.", known);
    if (get_listen(ld, n, "tollgate.reportd.listen", "127.0.0.1:4001", &cfg->reportd.listen) < 0 ||
        cy_int(ld, n, "workers", "tollgate.reportd.workers", 1, 64, &workers) < 0 ||
        cy_int(ld, n, "shutdown_grace_ms", "tollgate.reportd.shutdown_grace_ms", 0, 3600000,
               &stop_grace) < 0 ||
        cy_str(ld, n, "read_database_url", "tollgate.reportd.read_database_url", &url) < 0 ||
        parse_http_limits(ld, n, "reportd", 1024, &cfg->reportd.http) < 0)
        return -1;
    cfg->reportd.workers = (int)workers;
    cfg->reportd.shutdown_grace_ms = (int)stop_grace;
    int rc = url == NULL ? 0
                         : config_parse_db_url(ld, cy_map_get(ld, n, "read_database_url"),
                                               "tollgate.reportd.read_database_url", url,
                                               &cfg->reportd.read_db);
    free(url);
    return rc;
}

/* tollgate.accountd.metrics: absent, or HOST:PORT per accountd instance. */
static int parse_metrics(struct loader *ld, yaml_node_t *n, struct config *cfg)
{
    const char *key = "tollgate.accountd.metrics";
    yaml_node_t *node = cy_map_get(ld, n, "metrics");
    char *addrs[CONFIG_MAX_ACCOUNTD] = {0};
    size_t count = 0;
    int rc = 0;
    if (node == NULL)
        return 0;
    if (cy_str_list(ld, n, "metrics", key, "", addrs, CONFIG_MAX_ACCOUNTD, &count) < 0)
        rc = -1;
    else if (count != cfg->accountd.n_accountd)
        rc = cy_fail(ld, node, key, "names %zu addresses for %zu in tollgate.accountd.events: "
                     "one per accountd instance", count, cfg->accountd.n_accountd);
    for (size_t i = 0; rc == 0 && i < count; i++)
        if (config_parse_listen(addrs[i], &cfg->accountd.metrics[i]) < 0)
            rc = cy_fail(ld, node, key, "must be HOST:PORT with a port from 1 to 65535");
    if (rc == 0)
        cfg->accountd.n_metrics = count;
    for (size_t i = 0; i < count; i++)
        free(addrs[i]);
    return rc;
}

static int parse_accountd(struct loader *ld, yaml_node_t *n, struct config *cfg)
{
    static const char *const known[] = {"events", "updates", "metrics", "batch_max_events",
                                        "batch_wait_ms", "writers", "shutdown_grace_ms",
                                        "curve_secret_key_file", "curve_client_public_keys", NULL};
    long batch = 20000, wait = 5, writers = 2, stop_grace = 10000;
    if (cy_want_map(ld, n, "tollgate.accountd") < 0)
        return -1;
    cy_check_keys(ld, n, "tollgate.accountd.", known);
    size_t n_updates = 0;
    if (cy_str_list(ld, n, "events", "tollgate.accountd.events", "tcp://127.0.0.1:5555",
                    cfg->accountd.events, CONFIG_MAX_ACCOUNTD, &cfg->accountd.n_accountd) < 0 ||
        cy_str_list(ld, n, "updates", "tollgate.accountd.updates", "tcp://127.0.0.1:5556",
                    cfg->accountd.updates, CONFIG_MAX_ACCOUNTD, &n_updates) < 0)
        return -1;
    if (n_updates != cfg->accountd.n_accountd)
        return cy_fail(ld, cy_map_get(ld, n, "updates") ? cy_map_get(ld, n, "updates") : n,
                       "tollgate.accountd.updates",
                       "names %zu endpoints for %zu in tollgate.accountd.events: one each per "
                       "accountd instance", n_updates, cfg->accountd.n_accountd);
    if (parse_metrics(ld, n, cfg) < 0 ||
        cy_int(ld, n, "batch_max_events", "tollgate.accountd.batch_max_events", 1, 100000, &batch) < 0 ||
        cy_int(ld, n, "batch_wait_ms", "tollgate.accountd.batch_wait_ms", 0, 10000, &wait) < 0 ||
        cy_int(ld, n, "writers", "tollgate.accountd.writers", 1, 16, &writers) < 0 ||
        cy_int(ld, n, "shutdown_grace_ms", "tollgate.accountd.shutdown_grace_ms", 0, 3600000,
               &stop_grace) < 0)
        return -1;
    cfg->accountd.writers = (int)writers;
    cfg->accountd.shutdown_grace_ms = (int)stop_grace;
    cfg->accountd.batch_max_events = (int)batch;
    cfg->accountd.batch_wait_ms = (int)wait;
    return 0;
}

/* proxyd forwards to the reportd of this config unless told otherwise. */
static int default_reportd_url(struct loader *ld, yaml_node_t *tg, struct config *cfg)
{
    if (cfg->proxyd.reportd_url != NULL)
        return 0;
    const struct listen_addr *l = &cfg->reportd.listen;
    size_t len = strlen(l->host) + 32;
    if ((cfg->proxyd.reportd_url = malloc(len)) == NULL)
        return cy_fail(ld, tg, "tollgate.proxyd.reportd_url", "out of memory");
    snprintf(cfg->proxyd.reportd_url, len, strchr(l->host, ':') ? "http://[%s]:%d" : "http://%s:%d",
             l->host, l->port);
    return 0;
}

/* tollgate.log_format and tollgate.log_level, checked against log.c's names. */
static int parse_logging(struct loader *ld, yaml_node_t *tg, struct config *cfg)
{
    if (cy_str_default(ld, tg, "log_format", "tollgate.log_format", "logfmt", &cfg->log_format) < 0 ||
        cy_str_default(ld, tg, "log_level", "tollgate.log_level", "info", &cfg->log_level) < 0)
        return -1;
    if (log_format_parse(cfg->log_format) < 0)
        return cy_fail(ld, cy_map_get(ld, tg, "log_format"), "tollgate.log_format",
                       "must be logfmt or json");
    if (log_level_parse(cfg->log_level) < 0)
        return cy_fail(ld, cy_map_get(ld, tg, "log_level"), "tollgate.log_level",
                       "must be debug, info, warn or error");
    return 0;
}

/* The tollgate: section; absent sub-sections take all their defaults. */
int config_parse_tollgate(struct loader *ld, yaml_node_t *root, struct config *cfg)
{
    static const char *const known[] = {"proxyd", "reportd", "accountd", "price_file",
                                        "log_format", "log_level", "curve", NULL};
    yaml_node_t *tg = cy_map_get(ld, root, "tollgate");
    if (cy_want_map(ld, tg, "tollgate") < 0)
        return -1;
    cy_check_keys(ld, tg, "tollgate.", known);
    if (cy_str(ld, tg, "price_file", "tollgate.price_file", &cfg->price_file) < 0 ||
        parse_logging(ld, tg, cfg) < 0)
        return -1;
    if (parse_proxyd(ld, cy_map_get(ld, tg, "proxyd"), cfg) < 0 ||
        parse_reportd(ld, cy_map_get(ld, tg, "reportd"), cfg) < 0 ||
        parse_accountd(ld, cy_map_get(ld, tg, "accountd"), cfg) < 0 ||
        config_parse_curve(ld, tg, cfg) < 0)
        return -1;
    return default_reportd_url(ld, tg, cfg);
}
