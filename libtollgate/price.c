/* price.c - price map loading, model name resolution and cost arithmetic.
 *
 * Name resolution follows LiteLLM: the name as written ("groq/llama-3.1-8b-
 * instant"), then the part after the provider prefix ("gpt-4o" for
 * "openai/gpt-4o"). A deployment's base_model replaces the name, and custom
 * per-token prices replace the map's.
 *
 * Usage is split into disjoint buckets, each priced once: uncached input,
 * cache read, cache write, output.
 */
#include "price.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedded.h"
#include "strmap.h"

struct price_model {
    money_t input, output, cache_read, cache_write;
    bool has_input, has_output, has_cache_read, has_cache_write;
    int64_t max_output_tokens;
};

struct price_table {
    struct strmap *models; /* name -> struct price_model */
};

static int read_price(json_t *spec, const char *field, money_t *out, bool *has,
                      const char *model, char *err, size_t errlen)
{
    json_t *v = json_object_get(spec, field);
    *has = false;
    if (v == NULL)
        return 0;
    if (!json_is_string(v) || money_parse(json_string_value(v), out) < 0) {
        snprintf(err, errlen, "model %s: %s is not an exact decimal string", model, field);
        return -1;
    }
    *has = true;
    return 0;
}

static struct price_model *parse_model(const char *name, json_t *spec, char *err, size_t errlen)
{
    struct price_model *pm = calloc(1, sizeof(*pm));
    if (pm == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!json_is_object(spec) ||
        read_price(spec, "input_cost_per_token", &pm->input, &pm->has_input, name, err, errlen) < 0 ||
        read_price(spec, "output_cost_per_token", &pm->output, &pm->has_output, name, err, errlen) < 0 ||
        read_price(spec, "cache_read_input_token_cost", &pm->cache_read, &pm->has_cache_read, name, err, errlen) < 0 ||
        read_price(spec, "cache_creation_input_token_cost", &pm->cache_write, &pm->has_cache_write, name, err, errlen) < 0) {
        if (!json_is_object(spec))
            snprintf(err, errlen, "model %s: entry is not an object", name);
        free(pm);
        return NULL;
    }
    json_t *max_out = json_object_get(spec, "max_output_tokens");
    pm->max_output_tokens = json_is_integer(max_out) && json_integer_value(max_out) > 0
                                ? json_integer_value(max_out) : 0;
    return pm;
}

/* Builds the table from a parsed price file; takes no ownership of root. */
static struct price_table *build_table(json_t *root, char *err, size_t errlen)
{
    struct price_table *t = calloc(1, sizeof(*t));
    json_t *models = json_object_get(root, "models");
    if (t == NULL || (t->models = strmap_new()) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (!json_is_object(models)) {
        snprintf(err, errlen, "no \"models\" object");
        goto fail;
    }
    const char *name;
    json_t *spec;
    json_object_foreach(models, name, spec) {
        int perr;
        struct price_model *pm = parse_model(name, spec, err, errlen);
        if (pm == NULL)
            goto fail;
        strmap_put(t->models, name, pm, &perr);
        if (perr < 0) {
            free(pm);
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    return t;
fail:
    price_table_free(t);
    return NULL;
}

struct price_table *price_table_parse(const char *text, size_t len, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    if (root == NULL) {
        snprintf(err, errlen, "line %d: %s", jerr.line, jerr.text);
        return NULL;
    }
    struct price_table *t = build_table(root, err, errlen);
    json_decref(root);
    return t;
}

struct price_table *price_table_load(const char *path, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (root == NULL) {
        snprintf(err, errlen, "%s:%d: %s", path, jerr.line, jerr.text);
        return NULL;
    }
    char inner[256];
    struct price_table *t = build_table(root, inner, sizeof(inner));
    json_decref(root);
    if (t == NULL)
        snprintf(err, errlen, "%s: %s", path, inner);
    return t;
}

struct price_table *price_table_open(const char *path, char *err, size_t errlen)
{
    if (path != NULL)
        return price_table_load(path, err, errlen);
    size_t len;
    const char *text = embedded_prices(&len);
    char inner[256];
    struct price_table *t = price_table_parse(text, len, inner, sizeof(inner));
    if (t == NULL)
        snprintf(err, errlen, "built-in price map: %s", inner);
    return t;
}

void price_table_free(struct price_table *t)
{
    if (t == NULL)
        return;
    strmap_free(t->models, free);
    free(t);
}

size_t price_table_count(const struct price_table *t)
{
    return strmap_count(t->models);
}

/* LiteLLM's order: the full name, then without the provider prefix. */
static const struct price_model *resolve(const struct price_table *t, const char *model)
{
    const struct price_model *pm = strmap_get(t->models, model);
    if (pm != NULL)
        return pm;
    const char *slash = strchr(model, '/');
    return slash != NULL ? strmap_get(t->models, slash + 1) : NULL;
}

static const struct price_model *lookup(const struct price_table *t, const char *model,
                                        const struct price_custom *custom)
{
    if (custom != NULL && custom->base_model != NULL && custom->base_model[0] != '\0')
        return resolve(t, custom->base_model);
    return resolve(t, model);
}

bool price_known(const struct price_table *t, const char *model,
                 const struct price_custom *custom)
{
    if (custom != NULL && custom->has_input && custom->has_output)
        return true;
    const struct price_model *pm = lookup(t, model, custom);
    return pm != NULL && pm->has_input;
}

int64_t price_max_output(const struct price_table *t, const char *model,
                         const struct price_custom *custom)
{
    const struct price_model *pm = lookup(t, model, custom);
    return pm != NULL ? pm->max_output_tokens : 0;
}

/* Adds count * price to *sum; -1 on overflow. */
static int add_bucket(money_t *sum, int64_t count, money_t price)
{
    money_t part;
    if (money_mul_int(price, count, &part) < 0)
        return -1;
    return money_add(*sum, part, sum);
}

static int check_usage(const struct usage *u, char *err, size_t errlen)
{
    if (u->prompt_tokens < 0 || u->completion_tokens < 0 ||
        u->cache_read_tokens < 0 || u->cache_creation_tokens < 0) {
        snprintf(err, errlen, "negative token count");
        return -1;
    }
    if (u->cache_read_tokens + u->cache_creation_tokens > u->prompt_tokens) {
        snprintf(err, errlen, "cached tokens exceed prompt tokens");
        return -1;
    }
    return 0;
}

enum price_status price_cost(const struct price_table *t, const char *model,
                             const struct price_custom *custom,
                             const struct usage *u, money_t *cost,
                             char *err, size_t errlen)
{
    *cost = 0;
    if (check_usage(u, err, errlen) < 0)
        return PRICE_ERROR;
    const struct price_model *pm = lookup(t, model, custom);
    struct price_model p = pm != NULL ? *pm : (struct price_model){0};
    if (custom != NULL && custom->has_input) {
        p.input = custom->input_per_token;
        p.has_input = true;
    }
    if (custom != NULL && custom->has_output) {
        p.output = custom->output_per_token;
        p.has_output = true;
    }
    if (!p.has_input) {
        snprintf(err, errlen, "no price for model %s", model);
        return PRICE_UNPRICED;
    }
    /* Cached buckets fall back to the input rate when the map has none. */
    money_t read_rate = p.has_cache_read ? p.cache_read : p.input;
    money_t write_rate = p.has_cache_write ? p.cache_write : p.input;
    int64_t uncached = u->prompt_tokens - u->cache_read_tokens - u->cache_creation_tokens;
    money_t sum = 0;
    if (add_bucket(&sum, uncached, p.input) < 0 ||
        add_bucket(&sum, u->cache_read_tokens, read_rate) < 0 ||
        add_bucket(&sum, u->cache_creation_tokens, write_rate) < 0 ||
        add_bucket(&sum, u->completion_tokens, p.has_output ? p.output : 0) < 0) {
        snprintf(err, errlen, "cost overflow");
        return PRICE_ERROR;
    }
    *cost = sum;
    return PRICE_OK;
}
