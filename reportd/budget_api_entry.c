/* budget_api_entry.c - the hosted BudgetManager's entries: names, amounts,
 * times and durations read from requests and checked, /set_budget's whole
 * user_dict, and an entry as the JSON of LiteLLM's user_cost.json (see
 * budget_api.h). Amounts stay decimal text from the request to the column.
 */
#include "budget_api.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "httpjson.h"

static const char *const DURATIONS[] = {"daily", "weekly", "monthly", "yearly"};

static int bad(struct evhttp_request *req, const char *name, const char *what)
{
    httpjson_error(req, 400, "invalid_request_error", name, "Invalid %s: %s", name, what);
    return -1;
}

void bm_now(char out[BM_TIME_STR_MAX])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(out, BM_TIME_STR_MAX, "%lld.%06ld", (long long)ts.tv_sec, ts.tv_nsec / 1000);
}

static bool id_ok(const char *s, size_t len)
{
    return len > 0 && len <= BM_ID_MAX && memchr(s, '\0', len) == NULL;
}

/* An amount >= 0 that DECIMAL(38,20) holds, as exact decimal text. */
static bool money_ok(json_t *v, char out[MONEY_STR_MAX])
{
    money_t m;
    if (!json_is_number(v) || money_from_double(json_number_value(v), &m) < 0 || m < 0)
        return false;
    money_format(m, out);
    return true;
}

/* Unix seconds, rounded to microseconds as the DECIMAL(20,6) columns keep them. */
static bool time_ok(json_t *v, char out[BM_TIME_STR_MAX])
{
    double d = json_is_number(v) ? json_number_value(v) : -1;
    if (!isfinite(d) || d < 0 || d > BM_TIME_MAX)
        return false;
    snprintf(out, BM_TIME_STR_MAX, "%.6f", d);
    return true;
}

/* NULL for null; one of DURATIONS, or "" when v is anything else. */
static const char *duration_of(json_t *v)
{
    if (v == NULL || json_is_null(v))
        return NULL;
    for (size_t i = 0; json_is_string(v) && i < sizeof(DURATIONS) / sizeof(DURATIONS[0]); i++) {
        if (strcmp(json_string_value(v), DURATIONS[i]) == 0 &&
            json_string_length(v) == strlen(DURATIONS[i]))
            return DURATIONS[i];
    }
    return "";
}

int bm_required_id(struct evhttp_request *req, json_t *body, const char *name, const char **out)
{
    json_t *v = json_object_get(body, name);
    if (v == NULL || json_is_null(v))
        return bad(req, name, "required");
    if (!json_is_string(v) || !id_ok(json_string_value(v), json_string_length(v)))
        return bad(req, name, "must be a string of 1 to 255 bytes without NUL bytes");
    *out = json_string_value(v);
    return 0;
}

int bm_required_money(struct evhttp_request *req, json_t *body, const char *name,
                      char out[MONEY_STR_MAX])
{
    json_t *v = json_object_get(body, name);
    if (v == NULL || json_is_null(v))
        return bad(req, name, "required");
    if (!money_ok(v, out))
        return bad(req, name, "must be a finite number >= 0 (USD, at most 20 decimals)");
    return 0;
}

int bm_time_param(struct evhttp_request *req, json_t *body, const char *name,
                  char out[BM_TIME_STR_MAX], bool *present)
{
    json_t *v = json_object_get(body, name);
    *present = false;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!time_ok(v, out))
        return bad(req, name, "must be a time in Unix seconds (a number from 0 to 253402300799)");
    *present = true;
    return 0;
}

int bm_duration_param(struct evhttp_request *req, json_t *body, const char *name,
                      const char **out)
{
    *out = duration_of(json_object_get(body, name));
    if (*out != NULL && (*out)[0] == '\0')
        return bad(req, name, "must be \"daily\", \"weekly\", \"monthly\", \"yearly\" or null");
    return 0;
}

/* A refusal of one entry of user_dict: the param is user_dict, the message
 * says which user and field. */
static int bad_entry(struct evhttp_request *req, const char *user, const char *field,
                     const char *what)
{
    httpjson_error(req, 400, "invalid_request_error", "user_dict",
                   "Invalid user_dict: user '%s': %s %s", user, field, what);
    return -1;
}

static int read_model_cost(struct evhttp_request *req, const char *user, json_t *mc,
                           size_t *models)
{
    const char *model;
    size_t len;
    json_t *v;
    char ignored[MONEY_STR_MAX];
    if (mc == NULL || json_is_null(mc))
        return 0;
    if (!json_is_object(mc))
        return bad_entry(req, user, "model_cost", "must be an object of model -> cost");
    json_object_keylen_foreach(mc, model, len, v) {
        if (!id_ok(model, len))
            return bad_entry(req, user, "model_cost",
                             "model names must be 1 to 255 bytes without NUL bytes");
        if (!money_ok(v, ignored))
            return bad_entry(req, user, "model_cost", "costs must be finite numbers >= 0");
        (*models)++;
    }
    return 0;
}

/* One entry: total_budget required; the rest default as a fresh budget. */
static int read_entry(struct evhttp_request *req, const char *user, json_t *v,
                      const char *now, struct bm_entry *e, size_t *models)
{
    json_t *f;
    e->user = user;
    if (!json_is_object(v))
        return bad_entry(req, user, "entry", "must be an object");
    if (!money_ok(json_object_get(v, "total_budget"), e->total_budget))
        return bad_entry(req, user, "total_budget", "is required: a finite number >= 0");
    e->duration = duration_of(json_object_get(v, "duration"));
    if (e->duration != NULL && e->duration[0] == '\0')
        return bad_entry(req, user, "duration",
                         "must be \"daily\", \"weekly\", \"monthly\", \"yearly\" or null");
    snprintf(e->created_at, sizeof(e->created_at), "%s", now);
    if ((f = json_object_get(v, "created_at")) != NULL && !json_is_null(f) &&
        !time_ok(f, e->created_at))
        return bad_entry(req, user, "created_at", "must be Unix seconds from 0 to 253402300799");
    snprintf(e->last_updated_at, sizeof(e->last_updated_at), "%s", e->created_at);
    if ((f = json_object_get(v, "last_updated_at")) != NULL && !json_is_null(f) &&
        !time_ok(f, e->last_updated_at))
        return bad_entry(req, user, "last_updated_at",
                         "must be Unix seconds from 0 to 253402300799");
    snprintf(e->current_cost, sizeof(e->current_cost), "0");
    if ((f = json_object_get(v, "current_cost")) != NULL && !json_is_null(f) &&
        !money_ok(f, e->current_cost))
        return bad_entry(req, user, "current_cost", "must be a finite number >= 0");
    e->model_cost = json_object_get(v, "model_cost");
    return read_model_cost(req, user, e->model_cost, models);
}

int bm_read_user_dict(struct evhttp_request *req, json_t *body, struct bm_entry **out,
                      size_t *n, size_t *models)
{
    json_t *dict = json_object_get(body, "user_dict"), *v;
    const char *user;
    size_t len, i = 0;
    char now[BM_TIME_STR_MAX];
    *out = NULL;
    *n = *models = 0;
    if (!json_is_object(dict))
        return bad(req, "user_dict", "required: an object of user -> entry");
    if (json_object_size(dict) > BM_USERS_MAX) {
        httpjson_error(req, 400, "invalid_request_error", "user_dict",
                       "Invalid user_dict: %zu users; a project holds at most %d (LiteLLM's"
                       " whole-dict API cannot page)", json_object_size(dict), BM_USERS_MAX);
        return -1;
    }
    struct bm_entry *e = calloc(json_object_size(dict) + 1, sizeof(*e));
    if (e == NULL) {
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
        return -1;
    }
    bm_now(now);
    json_object_keylen_foreach(dict, user, len, v) {
        if (!id_ok(user, len)) {
            free(e);
            return bad(req, "user_dict", "user names must be 1 to 255 bytes without NUL bytes");
        }
        if (read_entry(req, user, v, now, &e[i++], models) < 0) {
            free(e);
            return -1;
        }
    }
    *out = e;
    *n = i;
    return 0;
}

static json_t *time_json(const char *decimal)
{
    return decimal != NULL ? json_real(strtod(decimal, NULL)) : json_null();
}

json_t *bm_entry_json(const struct db_result *r, size_t i, size_t col)
{
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:{}}",
                     "total_budget", httpjson_money_text(db_cell(r, i, col)),
                     "duration", httpjson_str_or_null(db_cell(r, i, col + 1)),
                     "created_at", time_json(db_cell(r, i, col + 2)),
                     "last_updated_at", time_json(db_cell(r, i, col + 3)),
                     "current_cost", httpjson_money_text(db_cell(r, i, col + 4)),
                     "model_cost");
}

int bm_entry_add_model(json_t *entry, const char *model, const char *cost)
{
    json_t *mc = json_object_get(entry, "model_cost");
    return json_object_set_new(mc, model, httpjson_money_text(cost));
}
