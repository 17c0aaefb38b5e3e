/* config_curve.c - tollgate.curve and the curve_* keys of tollgate.proxyd and
 * tollgate.accountd: the keys with which proxyd and accountd authenticate
 * each other on ZeroMQ.
 *
 * CURVE is the default: a config that neither sets the four keys nor says
 * `curve: off` does not load, because an unauthenticated events endpoint
 * lets anyone bill any key. `curve: off` is refused unless every endpoint is
 * on this host. Only the syntax of keys is checked here (libtollgate does not
 * link libzmq); key files are read by the daemon that uses them, at start,
 * since one config serves hosts that each hold only their own secret.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_yaml.h"

#define Z85_KEY_LEN 40 /* a 32-byte CURVE key in Z85 */

static const char z85_chars[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

static bool z85_key_syntax(const char *s)
{
    return strlen(s) == Z85_KEY_LEN && strspn(s, z85_chars) == Z85_KEY_LEN;
}

/* Is a ZeroMQ endpoint on this host only? ipc:// and inproc:// are; tcp://
 * is when its host is 127.0.0.0/8, ::1, localhost or the lo interface. */
static bool endpoint_is_local(const char *ep)
{
    if (strncmp(ep, "ipc://", 6) == 0 || strncmp(ep, "inproc://", 9) == 0)
        return true;
    if (strncmp(ep, "tcp://", 6) != 0)
        return false;
    const char *host = ep + 6, *colon = strrchr(host, ':');
    size_t len = colon != NULL ? (size_t)(colon - host) : strlen(host);
    if (len == 5 && strncmp(host, "[::1]", 5) == 0)
        return true;
    if ((len == 9 && strncmp(host, "localhost", 9) == 0) || (len == 2 && strncmp(host, "lo", 2) == 0))
        return true;
    if (len < 7 || strncmp(host, "127.", 4) != 0)
        return false;
    for (size_t i = 4; i < len; i++) /* 127.a.b.c: digits and dots only */
        if ((host[i] < '0' || host[i] > '9') && host[i] != '.')
            return false;
    return true;
}

/* tollgate.curve: absent or on (CURVE), or off. */
static int parse_switch(struct loader *ld, yaml_node_t *tg, struct curve_config *c)
{
    yaml_node_t *n = cy_map_get(ld, tg, "curve");
    const char *v = cy_scalar(n);
    if (n == NULL)
        return 0;
    if (v != NULL && (strcmp(v, "off") == 0 || strcmp(v, "false") == 0))
        c->off = true;
    else if (v == NULL || (strcmp(v, "on") != 0 && strcmp(v, "true") != 0))
        return cy_fail(ld, n, "tollgate.curve", "must be on or off");
    return 0;
}

/* A list of Z85 public keys; absent: none. */
static int key_list(struct loader *ld, yaml_node_t *map, const char *name, const char *key,
                    char **out, size_t max, size_t *n)
{
    yaml_node_t *node = cy_map_get(ld, map, name);
    *n = 0;
    if (node == NULL)
        return 0;
    if (cy_str_list(ld, map, name, key, "", out, max, n) < 0)
        return -1;
    for (size_t i = 0; i < *n; i++)
        if (!z85_key_syntax(out[i]))
            return cy_fail(ld, node, key, "entry %zu is not a CURVE public key (40 characters of "
                           "Z85, as accountd --curve-keygen writes in its .pub file)", i + 1);
    return 0;
}

static int read_keys(struct loader *ld, yaml_node_t *tg, struct config *cfg)
{
    struct curve_config *c = &cfg->curve;
    yaml_node_t *acc = cy_map_get(ld, tg, "accountd"), *px = cy_map_get(ld, tg, "proxyd");
    if ((cy_map_get(ld, acc, "curve_secret_key_file") != NULL &&
         cy_str_list(ld, acc, "curve_secret_key_file", "tollgate.accountd.curve_secret_key_file",
                     "", c->server_secret_files, CONFIG_MAX_ACCOUNTD,
                     &c->n_server_secret_files) < 0) ||
        key_list(ld, acc, "curve_client_public_keys", "tollgate.accountd.curve_client_public_keys",
                 c->client_public_keys, CONFIG_MAX_CURVE_CLIENTS, &c->n_client_public_keys) < 0 ||
        cy_str(ld, px, "curve_secret_key_file", "tollgate.proxyd.curve_secret_key_file",
               &c->client_secret_file) < 0 ||
        key_list(ld, px, "curve_server_public_keys", "tollgate.proxyd.curve_server_public_keys",
                 c->server_public_keys, CONFIG_MAX_ACCOUNTD, &c->n_server_public_keys) < 0)
        return -1;
    size_t want = cfg->accountd.n_accountd;
    if (c->n_server_secret_files > 1 && c->n_server_secret_files != want)
        return cy_fail(ld, cy_map_get(ld, acc, "curve_secret_key_file"),
                       "tollgate.accountd.curve_secret_key_file", "names %zu files for %zu accountd "
                       "instances: one for all, or one each", c->n_server_secret_files, want);
    if (c->n_server_secret_files > 1 && c->n_server_public_keys == 1)
        return cy_fail(ld, cy_map_get(ld, px, "curve_server_public_keys"),
                       "tollgate.proxyd.curve_server_public_keys", "names one key for %zu "
                       "accountd secret key files: one public key each, in the same order",
                       c->n_server_secret_files);
    if (c->n_server_public_keys > 1 && c->n_server_public_keys != want)
        return cy_fail(ld, cy_map_get(ld, px, "curve_server_public_keys"),
                       "tollgate.proxyd.curve_server_public_keys", "names %zu keys for %zu accountd "
                       "instances: one for all, or one each", c->n_server_public_keys, want);
    return 0;
}

/* With CURVE on, each of the four keys must be there. */
static int check_complete(struct loader *ld, yaml_node_t *tg, const struct curve_config *c)
{
    const char *missing = c->n_server_secret_files == 0 ? "tollgate.accountd.curve_secret_key_file"
        : c->n_client_public_keys == 0                 ? "tollgate.accountd.curve_client_public_keys"
        : c->client_secret_file == NULL                ? "tollgate.proxyd.curve_secret_key_file"
        : c->n_server_public_keys == 0                 ? "tollgate.proxyd.curve_server_public_keys"
                                                       : NULL;
    if (missing == NULL)
        return 0;
    return cy_fail(ld, tg, missing, "is not set: proxyd and accountd authenticate each other with "
                   "CURVE keys (make a pair with `accountd --curve-keygen PREFIX`); for one host "
                   "only, `tollgate: {curve: off}` runs ZeroMQ unauthenticated on loopback");
}

/* With CURVE off, no endpoint may leave this host. */
static int check_local(struct loader *ld, yaml_node_t *tg, const struct config *cfg)
{
    for (size_t i = 0; i < cfg->accountd.n_accountd; i++) {
        const char *bad = !endpoint_is_local(cfg->accountd.events[i]) ? cfg->accountd.events[i]
                        : !endpoint_is_local(cfg->accountd.updates[i]) ? cfg->accountd.updates[i]
                                                                        : NULL;
        if (bad != NULL)
            return cy_fail(ld, cy_map_get(ld, tg, "curve"), "tollgate.curve",
                           "off is for a single host, but %s is not a loopback endpoint: anyone "
                           "who reaches it could bill any key or read every spend; set the "
                           "curve_* keys instead", bad);
    }
    return 0;
}

int config_parse_curve(struct loader *ld, yaml_node_t *tg, struct config *cfg)
{
    if (parse_switch(ld, tg, &cfg->curve) < 0 || read_keys(ld, tg, cfg) < 0)
        return -1;
    return cfg->curve.off ? check_local(ld, tg, cfg) : check_complete(ld, tg, &cfg->curve);
}

void config_curve_free(struct curve_config *c)
{
    for (size_t i = 0; i < CONFIG_MAX_ACCOUNTD; i++) {
        free(c->server_secret_files[i]);
        free(c->server_public_keys[i]);
    }
    for (size_t i = 0; i < c->n_client_public_keys; i++)
        free(c->client_public_keys[i]);
    free(c->client_secret_file);
    memset(c, 0, sizeof(*c));
}

static bool lists_differ(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return true;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return true;
    return false;
}

bool config_curve_differs(const struct curve_config *a, const struct curve_config *b)
{
    return a->off != b->off ||
           lists_differ(a->server_secret_files, a->n_server_secret_files, b->server_secret_files,
                        b->n_server_secret_files) ||
           lists_differ(a->client_public_keys, a->n_client_public_keys, b->client_public_keys,
                        b->n_client_public_keys) ||
           config_str_differs(a->client_secret_file, b->client_secret_file) ||
           lists_differ(a->server_public_keys, a->n_server_public_keys, b->server_public_keys,
                        b->n_server_public_keys);
}
