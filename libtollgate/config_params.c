/* config_params.c - loading a deployment's request shaping (config_params.h):
 * the litellm_params that LiteLLM sends with every call to the deployment.
 *
 * LiteLLM's router calls the provider with the deployment's litellm_params
 * merged under the request's own arguments (router.py _completion: {**data,
 * **kwargs}), so a temperature or max_tokens set here is a default the
 * request may override; additional_drop_params names parameters removed
 * before the call (utils.py _should_drop_param, and the nested paths of
 * litellm_core_utils/dot_notation_indexing.py); extra_headers go with the
 * call, organization as OpenAI's OpenAI-Organization header. Values are
 * checked here, so a typo stops the start instead of reaching an upstream.
 */
#include "config_params.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "config_yaml.h"

#define STOP_MAX 4 /* OpenAI takes up to 4 stop sequences */

/* The generation defaults honoured, with their ranges (OpenAI's). */
enum kind { NUMBER, INTEGER, STOP, WORD };
static const struct {
    const char *name;
    enum kind kind;
    double min, max;
} DEFAULTS[] = {
    {"temperature", NUMBER, 0, 2},
    {"top_p", NUMBER, 0, 1},
    {"presence_penalty", NUMBER, -2, 2},
    {"frequency_penalty", NUMBER, -2, 2},
    {"max_tokens", INTEGER, 1, 1e9},
    {"max_completion_tokens", INTEGER, 1, 1e9},
    {"seed", INTEGER, -9e18, 9e18},
    {"stop", STOP, 0, 0},
    /* money: n answers are n times the output; effort, reasoning tokens; tier, the price */
    {"n", INTEGER, 1, 128},
    {"reasoning_effort", WORD, 0, 0},
    {"service_tier", WORD, 0, 0},
};

/* What the request always carries: never dropped (not optional parameters
 * in LiteLLM either, so its drop list would not touch them). */
static const char *const KEPT[] = {"model", "messages", "input", "prompt", "stream", NULL};

/* Headers Tollgate writes itself for the transfer. */
static const char *const FRAMING[] = {"host", "content-length", "content-type", "transfer-encoding",
                                      "connection", "expect", NULL};

static bool in(const char *s, const char *const *list)
{
    for (size_t i = 0; list[i] != NULL; i++)
        if (strcasecmp(s, list[i]) == 0)
            return true;
    return false;
}

static int oom(struct loader *ld, yaml_node_t *n, const char *key)
{
    return cy_fail(ld, n, key, "out of memory");
}

/* ---- generation defaults ---- */

static int stop_value(struct loader *ld, yaml_node_t *params, yaml_node_t *n, const char *key,
                      json_t **out)
{
    char *s = NULL;
    if (n->type != YAML_SEQUENCE_NODE) {
        if (cy_str(ld, params, "stop", key, &s) < 0)
            return -1;
        *out = json_string(s);
        free(s);
        return *out != NULL ? 0 : oom(ld, n, key);
    }
    size_t len = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (len == 0 || len > STOP_MAX)
        return cy_fail(ld, n, key, "must be a string or a list of 1 to %d strings", STOP_MAX);
    if ((*out = json_array()) == NULL)
        return oom(ld, n, key);
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *item = yaml_document_get_node(&ld->doc, n->data.sequence.items.start[i]);
        const char *v = cy_scalar(item);
        if (v == NULL)
            return cy_fail(ld, n, key, "must be a string or a list of 1 to %d strings", STOP_MAX);
        if (json_array_append_new(*out, json_string(v)) < 0)
            return oom(ld, n, key);
    }
    return 0;
}

static int parse_defaults(struct loader *ld, yaml_node_t *params, const char *prefix,
                          json_t *defaults)
{
    char key[192];
    for (size_t k = 0; k < sizeof(DEFAULTS) / sizeof(DEFAULTS[0]); k++) {
        yaml_node_t *n = cy_map_get(ld, params, DEFAULTS[k].name);
        double x = 0;
        long l = 0;
        json_t *v = NULL;
        if (n == NULL)
            continue;
        snprintf(key, sizeof(key), "%s%s", prefix, DEFAULTS[k].name);
        if (DEFAULTS[k].kind == NUMBER) {
            if (cy_double(ld, params, DEFAULTS[k].name, key, DEFAULTS[k].min, DEFAULTS[k].max,
                          &x) < 0)
                return -1;
            v = json_real(x);
        } else if (DEFAULTS[k].kind == INTEGER) {
            if (cy_int(ld, params, DEFAULTS[k].name, key, (long)DEFAULTS[k].min,
                       (long)DEFAULTS[k].max, &l) < 0)
                return -1;
            v = json_integer(l);
        } else if (DEFAULTS[k].kind == WORD) {
            char *s = NULL;
            if (cy_str(ld, params, DEFAULTS[k].name, key, &s) < 0)
                return -1;
            if (s == NULL || s[0] == '\0' || strlen(s) > 32) {
                free(s);
                return cy_fail(ld, n, key, "must be a word such as low, medium or high");
            }
            v = json_string(s);
            free(s);
        } else if (stop_value(ld, params, n, key, &v) < 0) {
            json_decref(v);
            return -1;
        }
        if (json_object_set_new(defaults, DEFAULTS[k].name, v) < 0)
            return oom(ld, n, key);
    }
    return 0;
}

/* ---- additional_drop_params ---- */

/* Splits "tools[*].input_examples" into "tools", "[*]", "input_examples";
 * -1 when malformed (empty name, unclosed or non-numeric bracket). */
static int split_path(const char *p, struct drop_path *out)
{
    while (*p != '\0') {
        const char *end;
        if (*p == '[') {
            end = strchr(p, ']');
            if (end == NULL || end == p + 1)
                return -1;
            for (const char *c = p + 1; c < end; c++)
                if (!(end == p + 2 && *c == '*') && !isdigit((unsigned char)*c))
                    return -1;
            end++;
        } else {
            end = p + strcspn(p, ".[");
            if (end == p)
                return -1;
        }
        char **more = realloc(out->seg, (out->n + 1) * sizeof(*more));
        if (more == NULL)
            return -1;
        out->seg = more;
        if ((out->seg[out->n] = strndup(p, (size_t)(end - p))) == NULL)
            return -1;
        out->n++;
        p = end;
        if (*p == '.' && (p[1] == '\0' || p[1] == '.' || p[1] == '['))
            return -1;
        if (*p == '.')
            p++;
    }
    return out->n > 0 && out->seg[0][0] != '[' && out->seg[out->n - 1][0] != '[' ? 0 : -1;
}

static int add_drop(struct loader *ld, yaml_node_t *item, const char *key,
                    struct deployment_shape *s)
{
    const char *v = cy_scalar(item);
    if (v == NULL || v[0] == '\0')
        return cy_fail(ld, item, key, "must be a list of parameter names");
    if (strpbrk(v, ".[") == NULL) {
        if (in(v, KEPT))
            return cy_fail(ld, item, key, "'%s' cannot be dropped (every request carries it)", v);
        char **more = realloc(s->drop, (s->n_drop + 1) * sizeof(*more));
        if (more == NULL)
            return oom(ld, item, key);
        s->drop = more;
        return (s->drop[s->n_drop++] = strdup(v)) != NULL ? 0 : oom(ld, item, key);
    }
    struct drop_path *more = realloc(s->paths, (s->n_paths + 1) * sizeof(*more));
    if (more == NULL)
        return oom(ld, item, key);
    s->paths = more;
    struct drop_path *p = &s->paths[s->n_paths++];
    *p = (struct drop_path){0};
    if (split_path(v, p) < 0)
        return cy_fail(ld, item, key, "'%s' is not a parameter path such as "
                       "tools[*].input_examples, tools[0].cache_control or a.b", v);
    if (in(p->seg[0], KEPT))
        return cy_fail(ld, item, key, "'%s': %s cannot be changed (every request carries it)", v,
                       p->seg[0]);
    return 0;
}

static int parse_drops(struct loader *ld, yaml_node_t *params, const char *prefix,
                       struct deployment_shape *s)
{
    char key[192];
    yaml_node_t *n = cy_map_get(ld, params, "additional_drop_params");
    if (n == NULL)
        return 0;
    snprintf(key, sizeof(key), "%sadditional_drop_params", prefix);
    if (n->type != YAML_SEQUENCE_NODE)
        return cy_fail(ld, n, key, "must be a list of parameter names");
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++)
        if (add_drop(ld, yaml_document_get_node(&ld->doc, *it), key, s) < 0)
            return -1;
    return 0;
}

/* ---- headers ---- */

static bool token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && strchr("!#$%&'*+-.^_`|~", *s) == NULL)
            return false;
    return true;
}

/* Refuses a header Tollgate already writes for this deployment: framing, the
 * deployment's key (api_key), the anthropic-version (api_version). */
static const char *owned(const char *name, const struct deployment *d, bool org)
{
    if (in(name, FRAMING))
        return "Tollgate writes it for every transfer";
    const char *key_header = d->kind == UPSTREAM_AZURE       ? "api-key"
                             : d->kind == UPSTREAM_ANTHROPIC ? "x-api-key"
                                                             : "authorization";
    if (d->api_key != NULL && strcasecmp(name, key_header) == 0)
        return "the deployment's api_key sets it";
    if (d->kind == UPSTREAM_ANTHROPIC && strcasecmp(name, "anthropic-version") == 0)
        return "api_version sets it";
    if (org && strcasecmp(name, "openai-organization") == 0)
        return "organization sets it";
    return NULL;
}

static int add_header(struct loader *ld, yaml_node_t *n, const char *key, const char *name,
                      const char *value, struct deployment_shape *s)
{
    size_t len = strlen(name) + strlen(value) + 3;
    char **more = realloc(s->headers, (s->n_headers + 1) * sizeof(*more));
    if (more == NULL)
        return oom(ld, n, key);
    s->headers = more;
    if ((s->headers[s->n_headers] = malloc(len)) == NULL)
        return oom(ld, n, key);
    snprintf(s->headers[s->n_headers++], len, "%s: %s", name, value);
    return 0;
}

static int parse_extra_headers(struct loader *ld, yaml_node_t *params, const char *prefix,
                               const struct deployment *d, bool org, struct deployment_shape *s)
{
    char key[192], hkey[320];
    yaml_node_t *n = cy_map_get(ld, params, "extra_headers");
    snprintf(key, sizeof(key), "%sextra_headers", prefix);
    if (n == NULL)
        return 0;
    if (n->type != YAML_MAPPING_NODE)
        return cy_fail(ld, n, key, "must map header names to values");
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const char *name = cy_scalar(yaml_document_get_node(&ld->doc, p->key));
        char *value = NULL;
        if (name == NULL || !token(name))
            return cy_fail(ld, n, key, "'%s' is not a header name", name != NULL ? name : "?");
        snprintf(hkey, sizeof(hkey), "%s.%s", key, name);
        const char *why = owned(name, d, org);
        if (why != NULL)
            return cy_fail(ld, n, hkey, "cannot be set here: %s", why);
        if (cy_str(ld, n, name, hkey, &value) < 0)
            return -1;
        int bad = strpbrk(value, "\r\n") != NULL;
        int rc = bad ? cy_fail(ld, n, hkey, "a header value cannot hold a line break")
                     : add_header(ld, n, hkey, name, value, s);
        free(value);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* organization: OpenAI's (and Azure OpenAI's) OpenAI-Organization header. */
static int parse_organization(struct loader *ld, yaml_node_t *params, const char *prefix,
                              const struct deployment *d, struct deployment_shape *s)
{
    char key[192], *org = NULL;
    snprintf(key, sizeof(key), "%sorganization", prefix);
    yaml_node_t *n = cy_map_get(ld, params, "organization");
    if (cy_str(ld, params, "organization", key, &org) < 0 || org == NULL)
        return org == NULL && n == NULL ? 0 : -1;
    int rc = 0;
    if (org[0] == '\0' || strpbrk(org, "\r\n") != NULL)
        rc = cy_fail(ld, n, key, "must be an organization id such as org-...");
    else if (d->kind == UPSTREAM_ANTHROPIC)
        fprintf(stderr, "%s:%zu: warning: %s is OpenAI's; %s/ deployments have none, ignored\n",
                ld->path, n->start_mark.line + 1, key, d->provider);
    else
        rc = add_header(ld, n, key, "OpenAI-Organization", org, s);
    free(org);
    return rc;
}

int config_parse_shape(struct loader *ld, yaml_node_t *params, size_t i, struct deployment *d)
{
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "model_list[%zu].litellm_params.", i);
    struct deployment_shape *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->defaults = json_object()) == NULL) {
        free(s);
        return oom(ld, params, prefix);
    }
    d->shape = s; /* config_free frees it, whatever happens below */
    bool org = cy_map_get(ld, params, "organization") != NULL;
    if (parse_defaults(ld, params, prefix, s->defaults) < 0 ||
        parse_drops(ld, params, prefix, s) < 0 ||
        parse_extra_headers(ld, params, prefix, d, org, s) < 0 ||
        parse_organization(ld, params, prefix, d, s) < 0)
        return -1;
    if (json_object_size(s->defaults) == 0 && s->n_drop == 0 && s->n_paths == 0 &&
        s->n_headers == 0) {
        config_shape_free(s);
        d->shape = NULL;
    }
    return 0;
}

void config_shape_free(struct deployment_shape *s)
{
    if (s == NULL)
        return;
    json_decref(s->defaults);
    for (size_t i = 0; i < s->n_drop; i++)
        free(s->drop[i]);
    free(s->drop);
    for (size_t i = 0; i < s->n_paths; i++) {
        for (size_t k = 0; k < s->paths[i].n; k++)
            free(s->paths[i].seg[k]);
        free(s->paths[i].seg);
    }
    free(s->paths);
    for (size_t i = 0; i < s->n_headers; i++)
        free(s->headers[i]);
    free(s->headers);
    free(s);
}
