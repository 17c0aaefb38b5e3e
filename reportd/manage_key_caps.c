/* manage_key_caps.c - the config's defaults and caps of the key and user
 * routes, with LiteLLM's meaning (config_keys.c has read and checked them):
 *
 * /key/generate (LiteLLM's _common_key_generate_helper and
 * _enforce_upperbound_key_params with fill_defaults): first
 * default_key_generate_params fills each of its fields the request leaves
 * out or null (models: also [], metadata: also {}; budget_duration only when
 * absent, since an explicit null asks for a budget that never resets); then
 * each upperbound_key_generate_params field the request still leaves out
 * takes the cap itself as its value, and a value over the cap is refused:
 * 400 "<field> is over max limit set in config - user_value=..;
 * max_value=..". Numbers compare exactly; durations by their length from
 * now (months on the calendar).
 * /key/update and /key/regenerate: only the refusal (fill_defaults off).
 * /user/new (internal_user_endpoints.py's _update_internal_new_user_params):
 * default_internal_user_params fills what the request leaves out unless it
 * asks for a proxy_admin; its teams when the request names none; then an
 * internal user gets max_internal_user_budget and
 * internal_user_budget_duration when it gives none. Tollgate rule: the role
 * checked is the user's own (the request's, else the default's, else
 * internal_user, which Tollgate stores when none is given), where LiteLLM
 * reads only the request's.
 *
 * Everything works on the request body before the route reads it, so the
 * route's own checks (types, teams that must exist) judge the result.
 * A body field of the wrong type is left to the route's 400.
 */
#include "manage_key_caps.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "httpjson.h"
#include "money.h"

static bool absent(json_t *v)
{
    return v == NULL || json_is_null(v);
}

/* Does the request leave `name` out, in LiteLLM's sense for the defaults? */
static bool left_out(json_t *body, const char *name)
{
    json_t *v = json_object_get(body, name);
    if (strcmp(name, "budget_duration") == 0)
        return v == NULL;
    if (strcmp(name, "models") == 0 && json_is_array(v))
        return json_array_size(v) == 0;
    if (strcmp(name, "metadata") == 0 && json_is_object(v))
        return json_object_size(v) == 0;
    return absent(v);
}

static int oom_reply(struct evhttp_request *req)
{
    httpjson_error(req, 500, "internal_error", NULL, "out of memory");
    return -1;
}

/* Copies into body each field of the JSON object `text` that want() says
 * the body leaves out. */
static int fill_from(struct evhttp_request *req, json_t *body, const char *text,
                     bool (*want)(json_t *, const char *))
{
    json_error_t jerr;
    json_t *defaults = text != NULL ? json_loads(text, 0, &jerr) : NULL, *v;
    const char *name;
    int rc = 0;
    if (text == NULL)
        return 0;
    if (defaults == NULL)
        return oom_reply(req);
    json_object_foreach(defaults, name, v) {
        if (want(body, name) && json_object_set(body, name, v) < 0) {
            rc = oom_reply(req);
            break;
        }
    }
    json_decref(defaults);
    return rc;
}

static int over_cap_reply(struct evhttp_request *req, const char *name, const char *user,
                          const char *max)
{
    httpjson_error(req, 400, "invalid_request_error", name,
                   "%s is over max limit set in config - user_value=%s; max_value=%s", name,
                   user, max);
    return -1;
}

/* max_budget: exact decimals; the request's as it wrote it. */
static int check_money(struct evhttp_request *req, json_t *v, money_t cap)
{
    char user[MONEY_STR_MAX], max[MONEY_STR_MAX];
    money_t m;
    if (!json_is_number(v) || money_from_double(json_number_value(v), &m) < 0 || m <= cap)
        return 0;
    money_format(m, user);
    money_format(cap, max);
    return over_cap_reply(req, "max_budget", user, max);
}

static int check_limit(struct evhttp_request *req, const char *name, json_t *v, int64_t cap)
{
    char user[32], max[32];
    if (!json_is_integer(v) || json_integer_value(v) <= cap)
        return 0;
    snprintf(user, sizeof(user), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    snprintf(max, sizeof(max), "%" PRId64, cap);
    return over_cap_reply(req, name, user, max);
}

static int check_duration(struct evhttp_request *req, const char *name, json_t *v,
                          const char *cap)
{
    long long now = (long long)time(NULL);
    long long s = json_is_string(v) ? config_duration_s(json_string_value(v), now) : -1;
    if (s < 0 || s <= config_duration_s(cap, now))
        return 0;
    return over_cap_reply(req, name, json_string_value(v), cap);
}

/* One capped field the body leaves out takes the cap (takes over cap):
 * 1 filled, 0 not (the value is to be checked), -1 answered. */
static int cap_fill(struct evhttp_request *req, json_t *body, const char *name, json_t *cap,
                    bool fill)
{
    if (fill && absent(json_object_get(body, name)))
        return json_object_set_new(body, name, cap) < 0 ? oom_reply(req) : 1;
    json_decref(cap);
    return 0;
}

/* The caps in the order LiteLLM's upperbound model lists them. */
static int apply_caps(struct evhttp_request *req, const struct key_caps *c, json_t *body,
                      bool fill)
{
    static const char *const limits[] = {"max_parallel_requests", "tpm_limit", "rpm_limit"};
    const bool has[] = {c->has_parallel, c->has_tpm, c->has_rpm};
    const int64_t caps[] = {c->parallel, c->tpm, c->rpm};
    int filled = 0;
    if (c->has_max_budget &&
        ((filled = cap_fill(req, body, "max_budget", json_real(money_to_double(c->max_budget)),
                            fill)) < 0 ||
         (filled == 0 && check_money(req, json_object_get(body, "max_budget"),
                                     c->max_budget) < 0)))
        return -1;
    if (c->budget_duration != NULL &&
        ((filled = cap_fill(req, body, "budget_duration", json_string(c->budget_duration),
                            fill)) < 0 ||
         (filled == 0 && check_duration(req, "budget_duration",
                                        json_object_get(body, "budget_duration"),
                                        c->budget_duration) < 0)))
        return -1;
    if (c->duration != NULL &&
        ((filled = cap_fill(req, body, "duration", json_string(c->duration), fill)) < 0 ||
         (filled == 0 && check_duration(req, "duration", json_object_get(body, "duration"),
                                        c->duration) < 0)))
        return -1;
    for (size_t i = 0; i < 3; i++)
        if (has[i] && ((filled = cap_fill(req, body, limits[i], json_integer(caps[i]), fill)) < 0 ||
                       (filled == 0 && check_limit(req, limits[i], json_object_get(body, limits[i]),
                                                   caps[i]) < 0)))
            return -1;
    return 0;
}

int key_caps_generate_and_reply(struct evhttp_request *req, const struct config *cfg,
                                json_t *body)
{
    if (fill_from(req, body, cfg->keys.key_defaults, left_out) < 0)
        return -1;
    return apply_caps(req, &cfg->keys.caps, body, true);
}

int key_caps_check_and_reply(struct evhttp_request *req, const struct config *cfg, json_t *body)
{
    return apply_caps(req, &cfg->keys.caps, body, false);
}

/* default_internal_user_params' fields: what the request leaves out (models
 * also when []); teams only when the request names none (null or absent). */
static bool user_left_out(json_t *body, const char *name)
{
    json_t *v = json_object_get(body, name);
    if (strcmp(name, "models") == 0 && json_is_array(v))
        return json_array_size(v) == 0;
    return absent(v);
}

static bool teams_left_out(json_t *body, const char *name)
{
    return strcmp(name, "teams") == 0 && absent(json_object_get(body, name));
}

static bool asks_admin(json_t *body)
{
    json_t *role = json_object_get(body, "user_role");
    return json_is_string(role) && strcmp(json_string_value(role), "proxy_admin") == 0;
}

int user_defaults_fill_or_reply(struct evhttp_request *req, const struct config *cfg,
                                json_t *body)
{
    const struct key_settings *k = &cfg->keys;
    if (fill_from(req, body, k->user_defaults, asks_admin(body) ? teams_left_out
                                                                 : user_left_out) < 0)
        return -1;
    json_t *role = json_object_get(body, "user_role");
    if (!absent(role) && !(json_is_string(role) &&
                           strcmp(json_string_value(role), "internal_user") == 0))
        return 0;
    if (k->has_user_budget && absent(json_object_get(body, "max_budget")) &&
        json_object_set_new(body, "max_budget", json_real(money_to_double(k->user_budget))) < 0)
        return oom_reply(req);
    if (k->user_budget_duration != NULL && absent(json_object_get(body, "budget_duration")) &&
        json_object_set_new(body, "budget_duration", json_string(k->user_budget_duration)) < 0)
        return oom_reply(req);
    return 0;
}
