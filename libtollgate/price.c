/* price.c - loading the price map and finding a model's entry in it.
 *
 * Name resolution follows LiteLLM: the name as written ("groq/llama-3.1-8b-
 * instant"), then the part after the provider prefix ("gpt-4o" for
 * "openai/gpt-4o"). A deployment's base_model replaces the name. What each
 * field means is price_fields.c's; the arithmetic is price_cost.c's.
 */
#include "price.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedded.h"
#include "price_model.h"
#include "strmap.h"

struct price_table {
    struct strmap *models; /* name -> struct price_model */
};

static int read_field(struct price_model *pm, const char *model, const char *field,
                      json_t *v, char *err, size_t errlen)
{
    money_t value;
    char why[192];
    if (!json_is_string(v) || money_parse(json_string_value(v), &value) < 0 || value < 0) {
        snprintf(err, errlen, "model %s: %s is not a non-negative exact decimal string",
                 model, field);
        return -1;
    }
    if (price_field_apply(pm, field, value, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "model %s: %s", model, why);
        return -1;
    }
    return 0;
}

static struct price_model *parse_model(const char *name, json_t *spec, char *err, size_t errlen)
{
    if (!json_is_object(spec)) {
        snprintf(err, errlen, "model %s: entry is not an object", name);
        return NULL;
    }
    struct price_model *pm = calloc(1, sizeof(*pm));
    if (pm == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const char *field;
    json_t *v;
    json_object_foreach(spec, field, v) {
        if (strcmp(field, "mode") == 0)
            continue;
        if (strcmp(field, "provider") == 0) {
            pm->xai = json_is_string(v) && strcmp(json_string_value(v), "xai") == 0;
        } else if (strcmp(field, "max_output_tokens") == 0) {
            pm->max_output_tokens = json_is_integer(v) && json_integer_value(v) > 0
                                        ? json_integer_value(v) : 0;
        } else if (read_field(pm, name, field, v, err, errlen) < 0) {
            price_model_free(pm);
            return NULL;
        }
    }
    price_model_finish(pm);
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
            price_model_free(pm);
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
    strmap_free(t->models, price_model_free);
    free(t);
}

size_t price_table_count(const struct price_table *t)
{
    return strmap_count(t->models);
}

const struct price_model *price_exact(const struct price_table *t, const char *name)
{
    return strmap_get(t->models, name);
}

/* LiteLLM's order: the full name, then without the provider prefix. */
const struct price_model *price_resolve(const struct price_table *t, const char *model)
{
    const struct price_model *pm = strmap_get(t->models, model);
    if (pm != NULL)
        return pm;
    const char *slash = strchr(model, '/');
    return slash != NULL ? strmap_get(t->models, slash + 1) : NULL;
}

const struct price_model *price_lookup(const struct price_table *t, const char *model,
                                       const struct price_custom *custom)
{
    if (custom != NULL && custom->base_model != NULL && custom->base_model[0] != '\0')
        return price_resolve(t, custom->base_model);
    return price_resolve(t, model);
}

int64_t price_max_output(const struct price_table *t, const char *model,
                         const struct price_custom *custom)
{
    const struct price_model *pm = price_lookup(t, model, custom);
    return pm != NULL ? pm->max_output_tokens : 0;
}
