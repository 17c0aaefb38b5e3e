/* config_redis.c - router_settings' Redis, through which usage-based routing
 * shares each deployment's requests and tokens of the minute among proxyd
 * (proxyd/usage_share.c): redis_host with redis_port (LiteLLM's Router uses
 * Redis only when both are set; here one without the other is an error),
 * redis_password, redis_db, or redis_url (redis://[[user]:password@]host[:port][/db],
 * as redis-py's from_url, user and password %-decoded), each a value or
 * os.environ/NAME. redis_url with any of the others is an error, as is
 * rediss:// (no TLS to Redis): a config that seems to share but would not.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_yaml.h"

#define REDIS_PORT 6379         /* redis_url without a port */
#define REDIS_DB_MAX 65535

/* Copies the n bytes of v into out (size bytes), %XX decoded when decode. */
static int copy_part(const char *v, size_t n, bool decode, char *out, size_t size)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = v[i], hex[3] = {0};
        if (decode && c == '%' && i + 2 < n && isxdigit((unsigned char)v[i + 1]) &&
            isxdigit((unsigned char)v[i + 2])) {
            memcpy(hex, v + i + 1, 2);
            c = (char)strtol(hex, NULL, 16);
            i += 2;
        }
        if (k + 1 >= size)
            return -1;
        out[k++] = c;
    }
    out[k] = '\0';
    return 0;
}

/* A whole number in [min, max] from its text; -1 when it is not one. */
static long number_of(const char *v, size_t n, long min, long max)
{
    char buf[24], *end;
    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, v, n);
    buf[n] = '\0';
    errno = 0;
    long x = strtol(buf, &end, 10);
    return *end != '\0' || errno != 0 || x < min || x > max || buf[0] == '-' || buf[0] == '+'
               ? -1 : x;
}

/* redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] into r. */
static int parse_redis_url(struct loader *ld, yaml_node_t *n, const char *url,
                           struct redis_config *r)
{
    const char *key = "router_settings.redis_url";
    const char *form = "must be redis://[[user]:password@]host[:port][/db]";
    if (strncmp(url, "rediss://", 9) == 0)
        return cy_fail(ld, n, key, "rediss:// (TLS) is not supported; use redis://");
    if (strncmp(url, "redis://", 8) != 0 || strchr(url, '?') != NULL)
        return cy_fail(ld, n, key, "%s", form);
    const char *auth = url + 8, *slash = strchr(auth, '/');
    const char *end = slash != NULL ? slash : auth + strlen(auth), *at = NULL;
    for (const char *c = auth; c < end; c++)
        at = *c == '@' ? c : at;
    const char *hp = at != NULL ? at + 1 : auth, *colon = NULL, *host_end;
    if (at != NULL) {
        const char *sep = memchr(auth, ':', (size_t)(at - auth));
        const char *user_end = sep != NULL ? sep : at;
        if (copy_part(auth, (size_t)(user_end - auth), true, r->user, sizeof(r->user)) < 0 ||
            (sep != NULL && copy_part(sep + 1, (size_t)(at - sep - 1), true, r->password,
                                      sizeof(r->password)) < 0))
            return cy_fail(ld, n, key, "the user or password is too long");
    }
    if (*hp == '[') { /* [IPv6] */
        const char *close = memchr(hp, ']', (size_t)(end - hp));
        if (close == NULL)
            return cy_fail(ld, n, key, "%s", form);
        host_end = close;
        hp++;
        colon = close + 1 < end && close[1] == ':' ? close + 1 : NULL;
        if (close + 1 < end && colon == NULL)
            return cy_fail(ld, n, key, "%s", form);
    } else {
        colon = memchr(hp, ':', (size_t)(end - hp));
        host_end = colon != NULL ? colon : end;
    }
    long port = colon != NULL ? number_of(colon + 1, (size_t)(end - colon - 1), 1, 65535)
                              : REDIS_PORT;
    long db = slash != NULL && slash[1] != '\0' ? number_of(slash + 1, strlen(slash + 1), 0,
                                                            REDIS_DB_MAX) : 0;
    if (host_end == hp || port < 0 || db < 0 ||
        copy_part(hp, (size_t)(host_end - hp), false, r->host, sizeof(r->host)) < 0)
        return cy_fail(ld, n, key, "%s (host, port 1-65535, db 0-%d)", form, REDIS_DB_MAX);
    r->port = (int)port;
    r->db = (int)db;
    return 0;
}

/* redis_port or redis_db: a number or os.environ/NAME; 1 when set, 0 when absent. */
static int redis_number(struct loader *ld, yaml_node_t *rs, const char *name, long min,
                        long max, int *out)
{
    char key[64], *v = NULL;
    snprintf(key, sizeof(key), "router_settings.%s", name);
    if (cy_str(ld, rs, name, key, &v) < 0)
        return -1;
    if (v == NULL)
        return 0;
    long x = number_of(v, strlen(v), min, max);
    free(v);
    if (x < 0)
        return cy_fail(ld, cy_map_get(ld, rs, name), key, "must be a whole number from %ld to %ld",
                       min, max);
    *out = (int)x;
    return 1;
}

/* The Redis settings once read: url, else host with port. */
static int redis_settle(struct loader *ld, yaml_node_t *rs, const char *url, const char *host,
                        const char *password, int has_port, int has_db, struct redis_config *r)
{
    if (url != NULL) {
        if (host != NULL || password != NULL || has_port || has_db)
            return cy_fail(ld, cy_map_get(ld, rs, "redis_url"), "router_settings.redis_url",
                           "set redis_url or redis_host/redis_port/redis_password/redis_db, "
                           "not both");
        return parse_redis_url(ld, cy_map_get(ld, rs, "redis_url"), url, r);
    }
    if (host == NULL) {
        const char *k = password != NULL ? "redis_password" : has_port ? "redis_port" : "redis_db";
        char key[64];
        snprintf(key, sizeof(key), "router_settings.%s", k);
        if (password != NULL || has_port || has_db)
            return cy_fail(ld, cy_map_get(ld, rs, k), key, "needs router_settings.redis_host "
                           "(or redis_url)");
        return 0;
    }
    yaml_node_t *hn = cy_map_get(ld, rs, "redis_host");
    if (!has_port)
        return cy_fail(ld, hn, "router_settings.redis_host", "needs redis_port (LiteLLM uses "
                       "Redis only when both are set)");
    if (host[0] == '\0' || strlen(host) >= sizeof(r->host))
        return cy_fail(ld, hn, "router_settings.redis_host", "must be a host name or address");
    if (password != NULL && strlen(password) >= sizeof(r->password))
        return cy_fail(ld, cy_map_get(ld, rs, "redis_password"), "router_settings.redis_password",
                       "is too long");
    strcpy(r->host, host);
    if (password != NULL)
        strcpy(r->password, password);
    return 0;
}

int config_parse_redis(struct loader *ld, yaml_node_t *rs, struct router_config *rc)
{
    char *url = NULL, *host = NULL, *password = NULL;
    int has_port = 0, has_db = 0, rv = -1;
    memset(&rc->redis, 0, sizeof(rc->redis));
    if (cy_str(ld, rs, "redis_url", "router_settings.redis_url", &url) == 0 &&
        cy_str(ld, rs, "redis_host", "router_settings.redis_host", &host) == 0 &&
        cy_str(ld, rs, "redis_password", "router_settings.redis_password", &password) == 0 &&
        (has_port = redis_number(ld, rs, "redis_port", 1, 65535, &rc->redis.port)) >= 0 &&
        (has_db = redis_number(ld, rs, "redis_db", 0, REDIS_DB_MAX, &rc->redis.db)) >= 0)
        rv = redis_settle(ld, rs, url, host, password, has_port, has_db, &rc->redis);
    free(url);
    free(host);
    free(password);
    if (rv < 0)
        memset(&rc->redis, 0, sizeof(rc->redis));
    return rv;
}
