/* config_params.h - what a deployment's litellm_params add to or remove from
 * every request sent to it (LiteLLM's router merges litellm_params into the
 * call's arguments, the request's own values winning): generation defaults
 * (temperature, max_tokens, ...), additional_drop_params, extra_headers and
 * organization. Loaded by config_params.c; applied by proxyd/shape.c. */
#ifndef TG_CONFIG_PARAMS_H
#define TG_CONFIG_PARAMS_H

#include <jansson.h>
#include <stddef.h>
#include <yaml.h>

/* One additional_drop_params path with a "." or "[" (LiteLLM's nested form,
 * e.g. tools[*].input_examples): its segments, a member name or "[*]" /
 * "[N]" for the items of a list. Always starts and ends with a name. */
struct drop_path {
    char **seg;
    size_t n;
};

struct deployment_shape {
    json_t *defaults;          /* {litellm name: value}, e.g. {"temperature": 0.2} */
    char **drop;               /* top-level parameters removed (additional_drop_params) */
    size_t n_drop;
    struct drop_path *paths;   /* nested ones */
    size_t n_paths;
    char **headers;            /* "Name: value" lines: extra_headers, OpenAI-Organization */
    size_t n_headers;
};

struct loader;
struct deployment;

/* Reads model_list[i].litellm_params's shaping keys into d->shape (NULL when
 * it sets none). -1 with the loader's error set. */
int config_parse_shape(struct loader *ld, yaml_node_t *params, size_t i, struct deployment *d);
void config_shape_free(struct deployment_shape *s);

#endif
