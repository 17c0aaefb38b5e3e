/* reserve.c - the worst-case cost a request reserves against its budgets
 * while it runs (see admission.c), so that concurrent requests overshoot a
 * budget by at most one request.
 *
 * The prompt's share: when the API can count it exactly for a model with
 * OpenAI's tokenizer (a plain chat: protocol.h's exact_prompt), that count —
 * what the provider will bill. Anything else keeps the safe bound of one
 * token per body byte (a token is at least a byte): tool
 * definitions, images and other providers' tokenizers are not counted here,
 * and a reservation must never be below the bill. The answer's share: the
 * request's max tokens as the deployment is sent them (its litellm_params
 * max_tokens default, its drops: shape.h), else the model's, times n.
 */
#include <event2/buffer.h>
#include <string.h>

#include "call_priv.h"
#include "usage.h"
#include "reload.h"
#include "router.h"
#include "shape.h"
#include "tokenizer.h"

#define DEFAULT_MAX_OUTPUT 16384 /* answer tokens assumed when neither request nor map says */

bool reserve_needed(const struct keyinfo *key, const struct budget_extra *extra, size_t n)
{
    bool any = key != NULL && (key->key.has_max || key->user.has_max || key->team.has_max ||
                               key->member.has_max);
    for (size_t i = 0; i < n && !any; i++)
        any = extra[i].row->has_max;
    return any;
}

/* Prompt tokens to reserve for deployment d's model: the exact chat count
 * when it is safe (counted once per encoding per request), else the bytes. */
static int64_t prompt_tokens(struct call *c, const struct deployment *d, int64_t bytes)
{
    bool estimate = false;
    enum tokenizer_encoding enc = tokenizer_for_model(d->model, &estimate);
    if (estimate)
        return bytes;
    if (!(c->prompt_counted & (1u << enc))) {
        c->prompt_count[enc] = c->front->exact_prompt(c->body, d->model);
        c->prompt_counted |= 1u << enc;
    }
    return c->prompt_count[enc] >= 0 && c->prompt_count[enc] < bytes ? c->prompt_count[enc]
                                                                     : bytes;
}

/* The answer tokens the request asks deployment d for: its max tokens as d
 * is sent them (its max_tokens default, its drops), else `fallback` (-1:
 * the model's maximum, else DEFAULT_MAX_OUTPUT), times n. 0 for the APIs
 * that generate no text. */
static int64_t output_tokens(struct call *c, const struct deployment *d, int64_t fallback)
{
    json_t *n = json_object_get(c->body, "n");
    if (!c->front->streams)
        return 0;
    json_t *sent = d->shape != NULL ? shape_request(c->body, c->api, d, false)
                                    : json_incref(c->body);
    int64_t out = sent != NULL ? c->front->max_output(sent) : 0;
    json_decref(sent);
    if (out <= 0 && fallback > 0)
        out = fallback;
    if (out <= 0)
        out = price_max_output(c->gen->prices, d->model, &d->price);
    if (out <= 0)
        out = DEFAULT_MAX_OUTPUT;
    if (json_is_integer(n) && json_integer_value(n) > 1 && json_integer_value(n) <= 128)
        out *= json_integer_value(n);
    return out;
}

static int64_t body_bytes(struct call *c)
{
    return (int64_t)evbuffer_get_length(evhttp_request_get_input_buffer(c->req));
}

/* The most this request can cost on deployment d. */
static money_t worst_case(struct call *c, const struct deployment *d)
{
    int64_t prompt = prompt_tokens(c, d, body_bytes(c));
    int64_t out = output_tokens(c, d, -1);
    char err[128];
    money_t cost = 0;
    struct usage u = {.prompt_tokens = prompt, .completion_tokens = out,
                      .total_tokens = prompt + out};
    if (usage_note_request(c->body, c->api == API_IMAGE, &u) < 0)
        u.images = 1; /* a malformed size or n is priced as one default image */
    if (price_cost(c->gen->prices, d->model, &d->price, &u, &cost, err, sizeof(err)) != PRICE_OK)
        cost = 0; /* unpriced: nothing to reserve, and nothing will be charged */
    return cost;
}

money_t reserve_for(struct call *c)
{
    money_t reserve = 0;
    struct route_state probe;
    const struct deployment *d = router_first(c->gen->router, c->model_group, &probe);
    for (; d != NULL; d = router_next(c->gen->router, &probe)) {
        money_t w = worst_case(c, d);
        if (w > reserve)
            reserve = w;
    }
    return reserve;
}

int64_t reserve_tokens(struct call *c, enum token_count count, int64_t output_default)
{
    int64_t most = 0;
    struct route_state probe;
    const struct deployment *d = router_first(c->gen->router, c->model_group, &probe);
    for (; d != NULL; d = router_next(c->gen->router, &probe)) {
        int64_t in = count != TOKENS_OUTPUT ? prompt_tokens(c, d, body_bytes(c)) : 0;
        int64_t out = count != TOKENS_INPUT ? output_tokens(c, d, output_default) : 0;
        if (in + out > most)
            most = in + out;
    }
    return most;
}
