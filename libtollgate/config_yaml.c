/* config_yaml.c - typed access to the loaded YAML document for config.c.
 *
 * Every getter knows the key path it reads, so an error is one line
 * "FILE:LINE: key.path: problem". String values may be `os.environ/NAME`,
 * resolved here; an unset variable is an error.
 */
#include "config_yaml.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_refused.h"

int cy_fail(struct loader *ld, const yaml_node_t *node, const char *key,
                const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    if (ld->refused)
        return -1; /* the refused key's error is the one the user sees */
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(ld->err, ld->errlen, "%s:%zu: %s: %s", ld->path,
             node != NULL ? node->start_mark.line + 1 : 1, key, msg);
    return -1;
}

void cy_warn_unknown(struct loader *ld, const yaml_node_t *node, const char *key)
{
    fprintf(stderr, "%s:%zu: warning: unknown key %s ignored\n", ld->path,
            node->start_mark.line + 1, key);
}

const char *cy_scalar(const yaml_node_t *n)
{
    return n != NULL && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* The value of key in mapping node map, or NULL. */
yaml_node_t *cy_map_get(struct loader *ld, yaml_node_t *map, const char *key)
{
    if (map == NULL || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const char *k = cy_scalar(yaml_document_get_node(&ld->doc, p->key));
        if (k != NULL && strcmp(k, key) == 0)
            return yaml_document_get_node(&ld->doc, p->value);
    }
    return NULL;
}

/* The section a key prefix names: its last part ("model_list[0].litellm_params."
 * -> "litellm_params"). */
static void section_of(const char *prefix, char *out, size_t len)
{
    size_t n = strlen(prefix);
    if (n > 0 && prefix[n - 1] == '.')
        n--;
    const char *start = prefix + n;
    while (start > prefix && start[-1] != '.')
        start--;
    snprintf(out, len, "%.*s", (int)(prefix + n - start), start);
}

/* A key Tollgate refuses (config_refused.h): the load fails, naming it. */
static bool refused(struct loader *ld, yaml_node_t *kn, const char *prefix, const char *k)
{
    char section[64], full[512];
    const char *affects = "";
    section_of(prefix, section, sizeof(section));
    const char *what = k != NULL ? config_refused_why(section, k, &affects) : NULL;
    if (what == NULL)
        return false;
    snprintf(full, sizeof(full), "%s%s", prefix, k);
    if (cy_fail(ld, kn, full, "LiteLLM's %s (%s) is not applied by Tollgate, and a key that "
                "decides %s is refused rather than ignored: remove it to start", k, what,
                affects) < 0)
        ld->refused = true;
    return true;
}

void cy_refuse_keys(struct loader *ld, yaml_node_t *map, const char *prefix)
{
    if (map == NULL || map->type != YAML_MAPPING_NODE)
        return;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(&ld->doc, p->key);
        (void)refused(ld, kn, prefix, cy_scalar(kn));
    }
}

/* Warns about keys of map not in allowed (a NULL-terminated list); refuses
 * the ones config_refused.h names. */
void cy_check_keys(struct loader *ld, yaml_node_t *map, const char *prefix,
                       const char *const *allowed)
{
    if (map == NULL || map->type != YAML_MAPPING_NODE)
        return;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(&ld->doc, p->key);
        const char *k = cy_scalar(kn);
        bool ok = false;
        for (size_t i = 0; k != NULL && allowed[i] != NULL && !ok; i++)
            ok = strcmp(k, allowed[i]) == 0;
        if (!ok && !refused(ld, kn, prefix, k)) {
            char full[512];
            snprintf(full, sizeof(full), "%s%s", prefix, k != NULL ? k : "(non-scalar key)");
            cy_warn_unknown(ld, kn, full);
        }
    }
}

int cy_want_map(struct loader *ld, yaml_node_t *n, const char *key)
{
    if (n != NULL && n->type != YAML_MAPPING_NODE)
        return cy_fail(ld, n, key, "must be a mapping");
    return 0;
}

const char *cy_env(struct loader *ld, const char *name)
{
    const char *v = cy_scalar(cy_map_get(ld, ld->env_vars, name));
    return v != NULL ? v : getenv(name);
}

/* The string of scalar node n into *out; resolves os.environ/NAME. */
static int str_of(struct loader *ld, yaml_node_t *n, const char *key, char **out)
{
    const char *v = cy_scalar(n);
    if (v == NULL)
        return cy_fail(ld, n, key, "must be a string");
    if (strncmp(v, "os.environ/", 11) == 0) {
        const char *env = cy_env(ld, v + 11);
        if (env == NULL)
            return cy_fail(ld, n, key, "environment variable %s is not set", v + 11);
        v = env;
    }
    if ((*out = strdup(v)) == NULL)
        return cy_fail(ld, n, key, "out of memory");
    return 0;
}

/* Reads an optional string; resolves os.environ/NAME. *out stays NULL if absent. */
int cy_str(struct loader *ld, yaml_node_t *map, const char *name,
                   const char *key, char **out)
{
    yaml_node_t *n = cy_map_get(ld, map, name);
    *out = NULL;
    return n == NULL ? 0 : str_of(ld, n, key, out);
}

int cy_str_list(struct loader *ld, yaml_node_t *map, const char *name, const char *key,
                const char *def, char **out, size_t max, size_t *n)
{
    yaml_node_t *node = cy_map_get(ld, map, name);
    *n = 0;
    if (node == NULL || node->type != YAML_SEQUENCE_NODE) {
        if (node != NULL && str_of(ld, node, key, &out[0]) < 0)
            return -1;
        if (node == NULL && (out[0] = strdup(def)) == NULL)
            return cy_fail(ld, map, key, "out of memory");
        *n = 1;
        return 0;
    }
    size_t len = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    if (len == 0 || len > max)
        return cy_fail(ld, node, key, "must be a string or a list of 1 to %zu strings", max);
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *item = yaml_document_get_node(&ld->doc, node->data.sequence.items.start[i]);
        if (str_of(ld, item, key, &out[i]) < 0)
            return -1;
        *n = i + 1;
    }
    return 0;
}

/* Reads an optional string into *out, keeping the default (a literal) when absent. */
int cy_str_default(struct loader *ld, yaml_node_t *map, const char *name,
                           const char *key, const char *def, char **out)
{
    if (cy_str(ld, map, name, key, out) < 0)
        return -1;
    if (*out == NULL && (*out = strdup(def)) == NULL)
        return cy_fail(ld, map, key, "out of memory");
    return 0;
}

int cy_int(struct loader *ld, yaml_node_t *map, const char *name,
                   const char *key, long min, long max, long *out)
{
    yaml_node_t *n = cy_map_get(ld, map, name);
    if (n == NULL)
        return 0;
    const char *v = cy_scalar(n);
    char *end;
    errno = 0;
    long x = v != NULL ? strtol(v, &end, 10) : 0;
    if (v == NULL || *v == '\0' || *end != '\0' || errno != 0 || x < min || x > max)
        return cy_fail(ld, n, key, "must be an integer from %ld to %ld", min, max);
    *out = x;
    return 0;
}

int cy_bool(struct loader *ld, yaml_node_t *map, const char *name, const char *key, bool *out)
{
    /* YAML 1.1's spellings, which LiteLLM's loader (PyYAML) reads as booleans */
    static const char *const YES[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On",
                                      "ON", NULL};
    static const char *const NO[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off",
                                     "OFF", NULL};
    yaml_node_t *n = cy_map_get(ld, map, name);
    const char *v = n != NULL ? cy_scalar(n) : NULL;
    if (n == NULL)
        return 0;
    for (size_t i = 0; v != NULL && YES[i] != NULL; i++) {
        if (strcmp(v, YES[i]) == 0 || strcmp(v, NO[i]) == 0) {
            *out = strcmp(v, YES[i]) == 0;
            return 1;
        }
    }
    return cy_fail(ld, n, key, "must be true or false");
}

/* Checks an http(s) URL with libcurl's parser. */
int cy_double(struct loader *ld, yaml_node_t *map, const char *name, const char *key,
              double min, double max, double *out)
{
    yaml_node_t *n = cy_map_get(ld, map, name);
    if (n == NULL)
        return 0;
    const char *v = cy_scalar(n);
    char *end;
    errno = 0;
    double x = v != NULL ? strtod(v, &end) : 0;
    if (v == NULL || *v == '\0' || *end != '\0' || errno != 0 || !(x >= min && x <= max))
        return cy_fail(ld, n, key, "must be a number from %g to %g", min, max);
    *out = x;
    return 0;
}

int cy_url(struct loader *ld, yaml_node_t *n, const char *key, const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    int rc = 0;
    if (u == NULL)
        return cy_fail(ld, n, key, "out of memory");
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
        rc = cy_fail(ld, n, key, "'%s' is not an http:// or https:// URL", url);
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

int cy_load_document(struct loader *ld)
{
    FILE *f = fopen(ld->path, "rb");
    yaml_parser_t parser;
    if (f == NULL) {
        snprintf(ld->err, ld->errlen, "%s: cannot open: %s", ld->path, strerror(errno));
        return -1;
    }
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        snprintf(ld->err, ld->errlen, "%s: out of memory", ld->path);
        return -1;
    }
    yaml_parser_set_input_file(&parser, f);
    int ok = yaml_parser_load(&parser, &ld->doc);
    if (!ok)
        snprintf(ld->err, ld->errlen, "%s:%zu: YAML syntax error: %s %s", ld->path,
                 parser.problem_mark.line + 1, parser.problem ? parser.problem : "",
                 parser.context ? parser.context : "");
    yaml_parser_delete(&parser);
    fclose(f);
    return ok ? 0 : -1;
}
