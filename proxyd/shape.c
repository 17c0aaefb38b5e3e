/* shape.c - what the config adds to or removes from a request (shape.h).
 *
 * LiteLLM's router calls the provider with a deployment's litellm_params
 * under the request's own arguments (router.py _completion: {**data,
 * **kwargs}): a default is sent when the request has no value of its own.
 * Then the parameters additional_drop_params names are removed: top-level
 * names from the request as the client wrote it (utils.py _should_drop_param,
 * before any translation), nested paths from what goes upstream
 * (get_optional_params' last step, dot_notation_indexing.py's
 * delete_nested_value: "[*]" walks every item of a list, "[N]" one, a name
 * one member; a step that does not fit the data does nothing).
 *
 * The defaults are LiteLLM's names (OpenAI's chat parameters); each API gets
 * the ones it has a parameter for, under its own name: max_tokens is the
 * Responses API's max_output_tokens, stop the Messages API's stop_sequences.
 * Embeddings and images take none. The request's own max output, under any
 * of its API's names, keeps both max defaults away.
 */
#include "shape.h"

#include <stdlib.h>
#include <string.h>

#include "config_params.h"

#define N_APIS (API_COUNT_TOKENS + 1)

/* Where each default goes, per API (NULL: the API has no such parameter). */
static const struct {
    const char *name;
    bool max_output; /* one of the max-output pair */
    const char *as[N_APIS];
} WHERE[] = {
    {"temperature", false, {[API_CHAT] = "temperature", [API_COMPLETION] = "temperature",
                            [API_RESPONSES] = "temperature", [API_MESSAGES] = "temperature"}},
    {"top_p", false, {[API_CHAT] = "top_p", [API_COMPLETION] = "top_p",
                      [API_RESPONSES] = "top_p", [API_MESSAGES] = "top_p"}},
    {"presence_penalty", false, {[API_CHAT] = "presence_penalty",
                                 [API_COMPLETION] = "presence_penalty"}},
    {"frequency_penalty", false, {[API_CHAT] = "frequency_penalty",
                                  [API_COMPLETION] = "frequency_penalty"}},
    {"seed", false, {[API_CHAT] = "seed", [API_COMPLETION] = "seed"}},
    {"stop", false, {[API_CHAT] = "stop", [API_COMPLETION] = "stop",
                     [API_MESSAGES] = "stop_sequences"}},
    {"n", false, {[API_CHAT] = "n", [API_COMPLETION] = "n"}},
    {"reasoning_effort", false, {[API_CHAT] = "reasoning_effort"}},
    {"service_tier", false, {[API_CHAT] = "service_tier", [API_RESPONSES] = "service_tier"}},
    {"max_tokens", true, {[API_CHAT] = "max_tokens", [API_COMPLETION] = "max_tokens",
                          [API_RESPONSES] = "max_output_tokens", [API_MESSAGES] = "max_tokens"}},
    {"max_completion_tokens", true,
     {[API_CHAT] = "max_completion_tokens", [API_COMPLETION] = "max_tokens",
      [API_RESPONSES] = "max_output_tokens", [API_MESSAGES] = "max_tokens"}},
};
#define N_WHERE (sizeof(WHERE) / sizeof(WHERE[0]))

/* Does the request say how long the answer may be, under any name of api's? */
static bool has_max_output(const json_t *body, enum api api)
{
    for (size_t i = 0; i < N_WHERE; i++)
        if (WHERE[i].max_output && WHERE[i].as[api] != NULL &&
            json_object_get(body, WHERE[i].as[api]) != NULL)
            return true;
    return false;
}

/* The value as api takes it: the Messages API's stop_sequences is a list. */
static json_t *value_for(const char *as, json_t *v)
{
    if (strcmp(as, "stop_sequences") == 0 && json_is_string(v))
        return json_pack("[O]", v);
    return json_incref(v);
}

static int add_defaults(json_t *out, const json_t *body, enum api api, const json_t *defaults)
{
    bool own_max = has_max_output(body, api);
    for (size_t i = 0; i < N_WHERE; i++) {
        const char *as = WHERE[i].as[api];
        json_t *v = json_object_get(defaults, WHERE[i].name);
        if (v == NULL || as == NULL || (WHERE[i].max_output && own_max) ||
            json_object_get(out, as) != NULL) /* the request's own, or an earlier default */
            continue;
        if (json_object_set_new(out, as, value_for(as, v)) < 0)
            return -1;
    }
    return 0;
}

/* One step of a nested drop on data the caller owns (LiteLLM's walk). */
static void drop_at(json_t *node, const struct drop_path *p, size_t i)
{
    const char *seg = p->seg[i];
    json_t *item;
    size_t k;
    if (seg[0] == '[') { /* never the last step (config_params.c) */
        if (seg[1] != '*') {
            item = json_array_get(node, strtoul(seg + 1, NULL, 10));
            if (json_is_object(item) || json_is_array(item))
                drop_at(item, p, i + 1);
            return;
        }
        json_array_foreach(node, k, item) {
            if (json_is_object(item) || json_is_array(item))
                drop_at(item, p, i + 1);
        }
        return;
    }
    if (!json_is_object(node))
        return;
    if (i + 1 == p->n) {
        json_object_del(node, seg);
        return;
    }
    item = json_object_get(node, seg);
    if (p->seg[i + 1][0] == '[' ? json_is_array(item) : json_is_object(item))
        drop_at(item, p, i + 1);
}

int shape_drop_nested(json_t *body, const struct deployment *d)
{
    const struct deployment_shape *s = d->shape;
    for (size_t i = 0; s != NULL && i < s->n_paths; i++) {
        const struct drop_path *p = &s->paths[i];
        json_t *top = json_object_get(body, p->seg[0]);
        if (top == NULL)
            continue;
        /* body may share its members with the client's body: copy the branch */
        json_t *own = json_deep_copy(top);
        if (own == NULL || json_object_set_new(body, p->seg[0], own) < 0)
            return -1;
        drop_at(body, p, 0);
    }
    return 0;
}

json_t *shape_request(const json_t *body, enum api api, const struct deployment *d, bool nested)
{
    const struct deployment_shape *s = d->shape;
    json_t *out = json_copy((json_t *)body);
    if (out == NULL || s == NULL)
        return out;
    if (add_defaults(out, body, api, s->defaults) < 0 ||
        (nested && shape_drop_nested(out, d) < 0)) {
        json_decref(out);
        return NULL;
    }
    for (size_t i = 0; i < s->n_drop; i++)
        json_object_del(out, s->drop[i]);
    return out;
}

struct curl_slist *shape_headers(const struct deployment *d, struct curl_slist *h)
{
    const struct deployment_shape *s = d->shape;
    for (size_t i = 0; h != NULL && s != NULL && i < s->n_headers; i++) {
        struct curl_slist *more = curl_slist_append(h, s->headers[i]);
        if (more == NULL)
            curl_slist_free_all(h);
        h = more;
    }
    return h;
}
