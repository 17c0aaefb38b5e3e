/* calculate.c - POST /spend/calculate: what a request would cost, or what an
 * answered one cost, priced exactly as proxyd and accountd price requests
 * (libtollgate/price.c), answered as LiteLLM does: {"cost": n}.
 *
 *   {"model", "messages"}       the prompt's projected cost: its tokens
 *                               counted in OpenAI's chat format
 *                               (tokencount.c), no answer tokens;
 *   {"completion_response": {"model", "usage", ...}}  the cost of that usage.
 *
 * A model is a model group of the config (priced as its first deployment,
 * with the deployment's base_model and custom prices, as proxyd prices it;
 * LiteLLM also takes one of the group's deployments) or else a name of the
 * price map. A model without a price is refused, never priced at $0. The
 * model list and the price map are the request's config generation's
 * (w->cfg, w->prices: a SIGHUP reloads both).
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "httpjson.h"
#include "input.h"
#include "price.h"
#include "reportd.h"
#include "tokencount.h"
#include "usage.h"

#define BODY_MAX (1024 * 1024)
#define MESSAGES_MAX 10000

/* How a model is priced and which tokenizer counts its prompt. */
struct pricing {
    const char *model;
    const struct price_custom *custom; /* NULL for a price map name */
    const char *count_model;
};

/* model -> pricing; answers 400 naming param when it is unknown or unpriced. */
static int resolve(struct evhttp_request *req, const struct worker *w, const char *model,
                   const char *param, struct pricing *out)
{
    const struct config *cfg = w->cfg;
    *out = (struct pricing){model, NULL, model};
    for (size_t i = 0; i < cfg->n_deployments; i++) {
        const struct deployment *d = &cfg->deployments[i];
        if (strcmp(d->model_name, model) == 0) {
            *out = (struct pricing){d->model, &d->price,
                                    d->base_model != NULL ? d->base_model : d->model};
            break;
        }
    }
    if (price_known(w->prices, out->model, out->custom))
        return 0;
    httpjson_error(req, 400, "invalid_request_error", param,
                   out->custom != NULL ? "Invalid %s: model group %s has no price"
                                       : "Invalid %s: unknown model %s (neither a model group"
                                         " of the config nor a priced model)", param, model);
    return -1;
}

/* A model name: a non-empty string of bounded length. */
static const char *model_name(struct evhttp_request *req, const json_t *v, const char *param)
{
    if (json_is_string(v) && json_string_length(v) > 0 &&
        json_string_length(v) <= INPUT_ID_MAX && strlen(json_string_value(v)) ==
        json_string_length(v))
        return json_string_value(v);
    httpjson_error(req, 400, "invalid_request_error", param,
                   "Invalid %s: must be a model name (a non-empty string)", param);
    return NULL;
}

/* Chat messages: objects with a string role and string, parts or null content. */
static int check_messages(struct evhttp_request *req, const json_t *messages)
{
    size_t i, j;
    json_t *msg, *part;
    if (!json_is_array(messages) || json_array_size(messages) == 0 ||
        json_array_size(messages) > MESSAGES_MAX) {
        httpjson_error(req, 400, "invalid_request_error", "messages",
                       "Invalid messages: must be a list of 1 to %d messages", MESSAGES_MAX);
        return -1;
    }
    json_array_foreach(messages, i, msg) {
        const json_t *content = json_object_get(msg, "content");
        bool ok = json_is_object(msg) && json_is_string(json_object_get(msg, "role")) &&
                  (content == NULL || json_is_null(content) || json_is_string(content) ||
                   json_is_array(content));
        json_array_foreach(json_is_array(content) ? content : NULL, j, part)
            ok = ok && json_is_object(part);
        if (!ok) {
            httpjson_error(req, 400, "invalid_request_error", "messages",
                           "Invalid messages: message %zu must be an object with a string role"
                           " and a content that is a string, a list of parts or null", i);
            return -1;
        }
    }
    return 0;
}

/* The projected cost of a prompt: its tokens, priced as input. *estimate:
 * the model has no OpenAI tokenizer and cl100k stood in. */
static int prompt_cost(struct evhttp_request *req, const struct worker *w, json_t *body,
                       money_t *cost, int64_t *tokens_out, bool *estimate)
{
    const char *model = model_name(req, json_object_get(body, "model"), "model");
    json_t *messages = json_object_get(body, "messages");
    struct pricing pr;
    char err[256];
    if (model == NULL || check_messages(req, messages) < 0 ||
        resolve(req, w, model, "model", &pr) < 0)
        return -1;
    int64_t tokens = tokencount_chat(pr.count_model, messages, estimate, err, sizeof(err));
    if (tokens < 0) {
        httpjson_error(req, 500, "internal_error", NULL, "cannot count tokens: %s", err);
        return -1;
    }
    struct usage u = {.prompt_tokens = tokens, .total_tokens = tokens};
    *tokens_out = tokens;
    if (price_cost(w->prices, pr.model, pr.custom, &u, cost, err, sizeof(err)) != PRICE_OK) {
        httpjson_error(req, 500, "internal_error", NULL, "cannot price: %s", err);
        return -1;
    }
    return 0;
}

/* The cost of an answered request: its model and usage. */
static int response_cost(struct evhttp_request *req, const struct worker *w, json_t *body,
                         money_t *cost)
{
    json_t *resp = json_object_get(body, "completion_response");
    struct pricing pr;
    struct usage u;
    char err[256];
    if (!json_is_object(resp)) {
        httpjson_error(req, 400, "invalid_request_error", resp == NULL ? "model"
                                                                       : "completion_response",
                       resp == NULL ? "Either model (with messages) or completion_response is"
                                      " required"
                                    : "Invalid completion_response: must be an object");
        return -1;
    }
    const char *model = model_name(req, json_object_get(resp, "model"),
                                   "completion_response.model");
    if (model == NULL || resolve(req, w, model, "completion_response.model", &pr) < 0)
        return -1;
    if (usage_from_json(json_object_get(resp, "usage"), &u) < 0 ||
        (usage_note_answer(resp, &u), 0) ||
        price_cost(w->prices, pr.model, pr.custom, &u, cost, err, sizeof(err)) != PRICE_OK) {
        httpjson_error(req, 400, "invalid_request_error", "completion_response.usage",
                       "Invalid completion_response.usage: must be an object of non-negative"
                       " token counts, cached tokens within prompt_tokens");
        return -1;
    }
    return 0;
}

void spend_calculate(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    json_t *body = httpjson_body(req, BODY_MAX);
    json_t *model;
    money_t cost = 0;
    (void)who;
    if (body == NULL)
        return;
    model = json_object_get(body, "model");
    /* LiteLLM's order: a model (which needs messages) before a completion_response;
     * a projection also says how many prompt tokens it counted and whether they
     * are an estimate (not an OpenAI model: cl100k stood in). */
    if (model != NULL && !json_is_null(model)) {
        int64_t tokens = 0;
        bool estimate = false;
        if (prompt_cost(req, w, body, &cost, &tokens, &estimate) == 0)
            httpjson_reply(req, 200, json_pack("{s:o, s:I, s:b}", "cost", httpjson_money(cost),
                                               "prompt_tokens", (json_int_t)tokens,
                                               "estimated", estimate));
    } else if (response_cost(req, w, body, &cost) == 0) {
        httpjson_reply(req, 200, json_pack("{s:o}", "cost", httpjson_money(cost)));
    }
    json_decref(body);
}
