/* config_db_tls.c - the TLS options of a database URL
 * (general_settings.database_url, tollgate.reportd.read_database_url), given
 * as query parameters in the spellings LiteLLM's database URLs use (Prisma's
 * and libpq's):
 *
 *   ssl=true|false          true: sslmode=require; false: sslmode=disable
 *   sslmode=disable|require|verify-ca|verify-full
 *   sslrootcert=FILE        CA certificates (PEM) the server's must chain to
 *   sslcert=FILE            a client certificate (PEM) ...
 *   sslkey=FILE             ... and its key: both or neither
 *
 * require encrypts without checking who answers (unless sslrootcert is set:
 * then the chain is checked, as libpq does); verify-ca checks the chain
 * against sslrootcert; verify-full checks the server's name (the URL's host)
 * too. Both verify modes need sslrootcert. Without any of these the
 * connection is plain, as before. Any other parameter, a value outside these,
 * a parameter given twice, ssl=false with a TLS mode, a file option without
 * TLS or a file that cannot be read fails the load: a typo must not leave a
 * connection silently unencrypted. db.c hands them to Connector/C.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "config_yaml.h"

static const char *const MODES[] = {[DB_TLS_OFF] = "disable", [DB_TLS_REQUIRE] = "require",
                                    [DB_TLS_VERIFY_CA] = "verify-ca",
                                    [DB_TLS_VERIFY_FULL] = "verify-full"};

/* What the query said, before the combination is checked. */
struct tls_args {
    int ssl;  /* -1 unset, 0 false, 1 true */
    int mode; /* -1 unset, else enum db_tls_mode */
};

/* *dst = value, once: a file parameter given twice is refused. */
static int take_file(struct loader *ld, yaml_node_t *n, const char *key, const char *name,
                     char *value, char **dst)
{
    if (*dst != NULL)
        return cy_fail(ld, n, key, "%s: given twice", name);
    if (value[0] == '\0')
        return cy_fail(ld, n, key, "%s: empty (a file name)", name);
    if (access(value, R_OK) != 0)
        return cy_fail(ld, n, key, "%s: cannot read %s: %s", name, value, strerror(errno));
    if ((*dst = strdup(value)) == NULL)
        return cy_fail(ld, n, key, "out of memory");
    return 0;
}

static int take_mode(struct loader *ld, yaml_node_t *n, const char *key, const char *value,
                     struct tls_args *a)
{
    if (a->mode >= 0)
        return cy_fail(ld, n, key, "sslmode: given twice");
    for (int m = DB_TLS_OFF; m <= DB_TLS_VERIFY_FULL; m++) {
        if (strcmp(value, MODES[m]) == 0) {
            a->mode = m;
            return 0;
        }
    }
    return cy_fail(ld, n, key, "sslmode: must be disable, require, verify-ca or verify-full"
                   " (not %s)", value);
}

static int take_ssl(struct loader *ld, yaml_node_t *n, const char *key, const char *value,
                    struct tls_args *a)
{
    if (a->ssl >= 0)
        return cy_fail(ld, n, key, "ssl: given twice");
    if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
        return cy_fail(ld, n, key, "ssl: must be true or false (not %s)", value);
    a->ssl = strcmp(value, "true") == 0;
    return 0;
}

/* One name=value of the query (value percent-decoded). */
static int take_param(struct loader *ld, yaml_node_t *n, const char *key, const char *name,
                      char *value, struct tls_args *a, struct db_tls *t)
{
    if (strcmp(name, "ssl") == 0)
        return take_ssl(ld, n, key, value, a);
    if (strcmp(name, "sslmode") == 0)
        return take_mode(ld, n, key, value, a);
    if (strcmp(name, "sslrootcert") == 0)
        return take_file(ld, n, key, name, value, &t->ca);
    if (strcmp(name, "sslcert") == 0)
        return take_file(ld, n, key, name, value, &t->cert);
    if (strcmp(name, "sslkey") == 0)
        return take_file(ld, n, key, name, value, &t->key);
    return cy_fail(ld, n, key, "unknown parameter %s (known: ssl, sslmode, sslrootcert, "
                   "sslcert, sslkey)", name);
}

/* Splits "name=value" in place and hands it on; -1 when refused. */
static int one_param(struct loader *ld, yaml_node_t *n, const char *key, char *piece,
                     struct tls_args *a, struct db_tls *t)
{
    char *eq = strchr(piece, '=');
    if (eq == NULL || eq == piece)
        return cy_fail(ld, n, key, "query parameter without name=value");
    *eq = '\0';
    int len = 0;
    char *value = curl_easy_unescape(NULL, eq + 1, 0, &len);
    if (value == NULL)
        return cy_fail(ld, n, key, "out of memory");
    int rc = strlen(value) != (size_t)len
                 ? cy_fail(ld, n, key, "%s: a NUL byte in the value", piece)
                 : take_param(ld, n, key, piece, value, a, t);
    curl_free(value);
    return rc;
}

/* The combination of what was given, into t->mode. */
static int settle(struct loader *ld, yaml_node_t *n, const char *key, const struct tls_args *a,
                  struct db_tls *t)
{
    if (a->ssl == 0 && a->mode > DB_TLS_OFF)
        return cy_fail(ld, n, key, "ssl=false contradicts sslmode=%s", MODES[a->mode]);
    t->mode = a->mode >= 0 ? (enum db_tls_mode)a->mode : a->ssl == 1 ? DB_TLS_REQUIRE
                                                                      : DB_TLS_OFF;
    if (t->mode == DB_TLS_OFF && (t->ca != NULL || t->cert != NULL || t->key != NULL))
        return cy_fail(ld, n, key, "sslrootcert, sslcert and sslkey need TLS (ssl=true or "
                       "sslmode=require, verify-ca or verify-full)");
    if (t->mode >= DB_TLS_VERIFY_CA && t->ca == NULL)
        return cy_fail(ld, n, key, "sslmode=%s needs sslrootcert (the CA file to verify "
                       "the server against)", MODES[t->mode]);
    if ((t->cert == NULL) != (t->key == NULL))
        return cy_fail(ld, n, key, "sslcert and sslkey go together");
    return 0;
}

int config_parse_db_tls(struct loader *ld, yaml_node_t *n, const char *key, const char *query,
                        struct db_tls *t)
{
    struct tls_args a = {.ssl = -1, .mode = -1};
    char *copy = strdup(query != NULL ? query : "");
    char *save = NULL;
    int rc = 0;
    if (copy == NULL)
        return cy_fail(ld, n, key, "out of memory");
    for (char *p = strtok_r(copy, "&", &save); rc == 0 && p != NULL;
         p = strtok_r(NULL, "&", &save))
        rc = one_param(ld, n, key, p, &a, t);
    free(copy);
    return rc < 0 ? -1 : settle(ld, n, key, &a, t);
}

const char *config_db_tls_mode_name(enum db_tls_mode m)
{
    return MODES[m];
}

void config_db_tls_free(struct db_tls *t)
{
    free(t->ca);
    free(t->cert);
    free(t->key);
    memset(t, 0, sizeof(*t));
}

bool config_db_tls_differs(const struct db_tls *a, const struct db_tls *b)
{
    return a->mode != b->mode || config_str_differs(a->ca, b->ca) ||
           config_str_differs(a->cert, b->cert) || config_str_differs(a->key, b->key);
}
