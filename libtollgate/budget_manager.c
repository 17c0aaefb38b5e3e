/* budget_manager.c - the BudgetManager's public API (tollgate/budget_manager.h):
 * opening a manager, its queries and changes, and pricing them.
 *
 * A change is described once (struct bm_change) and carried out where the
 * users live: under the file's lock (bm_local.c), on the loaded dict of a
 * LiteLLM server (sent by save_data), or as one atomic request to
 * Tollgate's reportd (bm_hosted.c). Costs are priced with the gateway's
 * price map (price.c) and tokens counted with its tokenizer (tokencount.c),
 * so a budget here agrees with the gateway's ledger to the last digit.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "bm_internal.h"
#include "price.h"
#include "tokencount.h"
#include "tokenizer.h"
#include "usage.h"

#define NAME_MAX_BYTES 255
#define RESET_TRIES 5

int bm_fail(struct tg_bm *m, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->err, sizeof(m->err), fmt, ap);
    va_end(ap);
    return status;
}

/* Unix time to the microsecond, as the hosted API stores it. */
static double wall_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)(ts.tv_nsec / 1000) / 1e6;
}

/* A user or model name: non-NULL, 1..255 bytes of valid UTF-8. */
static int check_name(struct tg_bm *m, const char *what, const char *s)
{
    if (s == NULL || s[0] == '\0' || strlen(s) > NAME_MAX_BYTES)
        return bm_fail(m, TG_BM_EINVAL, "%s must be 1 to %d bytes", what, NAME_MAX_BYTES);
    json_t *probe = json_string(s); /* jansson checks UTF-8: keys must be valid */
    if (probe == NULL)
        return bm_fail(m, TG_BM_EINVAL, "%s is not valid UTF-8", what);
    json_decref(probe);
    return TG_BM_OK;
}

/* Starts a call about one user: clears the last error, checks the name. */
static int begin(struct tg_bm *m, const char *user)
{
    m->err[0] = '\0';
    return check_name(m, "user", user);
}

/* The rank files: the caller's directory, else the build's own (the source
 * tree, as the daemons use), else where `cmake --install` put them. */
static void use_tokenizer_dir(const char *dir)
{
    char probe[4200];
    if (dir != NULL) {
        tokenizer_set_data_dir(dir);
        return;
    }
#ifdef TG_BM_INSTALLED_TOKENIZER_DIR
    snprintf(probe, sizeof(probe), "%s/o200k_base.tiktoken.gz", tokenizer_default_data_dir());
    if (access(probe, R_OK) != 0) {
        snprintf(probe, sizeof(probe), "%s/o200k_base.tiktoken.gz", TG_BM_INSTALLED_TOKENIZER_DIR);
        if (access(probe, R_OK) == 0)
            tokenizer_set_data_dir(TG_BM_INSTALLED_TOKENIZER_DIR);
    }
#else
    (void)probe;
#endif
}

int tg_bm_open(const char *project, const struct tg_bm_options *opt, struct tg_bm **out,
               char *err, size_t errlen)
{
    static const struct tg_bm_options defaults = {0};
    struct tg_bm *m = calloc(1, sizeof(*m));
    int rc = TG_BM_OK;
    if (out != NULL)
        *out = NULL;
    if (opt == NULL)
        opt = &defaults;
    if (m == NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "out of memory");
        return TG_BM_ENOMEM;
    }
    m->lock_fd = -1;
    m->now = wall_clock;
    m->client = opt->client;
    if (out == NULL || project == NULL || project[0] == '\0' || strlen(project) > BM_PROJECT_MAX)
        rc = bm_fail(m, TG_BM_EINVAL, "project must be 1 to %d bytes (and out not NULL)",
                     BM_PROJECT_MAX);
    else if (opt->client != TG_BM_LOCAL && opt->client != TG_BM_HOSTED)
        rc = bm_fail(m, TG_BM_EINVAL, "options.client is neither TG_BM_LOCAL nor TG_BM_HOSTED");
    else if ((m->project = strdup(project)) == NULL)
        rc = bm_fail(m, TG_BM_ENOMEM, "out of memory");
    if (rc == TG_BM_OK)
        rc = bm_zone_load(opt->timezone, &m->zone, m->err, sizeof(m->err));
    if (rc == TG_BM_OK &&
        (m->prices = price_table_open(opt->price_file, m->err, sizeof(m->err))) == NULL)
        rc = TG_BM_EIO;
    if (rc == TG_BM_OK)
        use_tokenizer_dir(opt->tokenizer_dir);
    if (rc == TG_BM_OK)
        rc = opt->client == TG_BM_LOCAL ? bm_local_open(m, opt->path) : bm_hosted_open(m, opt);
    if (rc != TG_BM_OK) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s", m->err);
        tg_bm_close(m);
        return rc;
    }
    *out = m;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    return TG_BM_OK;
}

void tg_bm_close(struct tg_bm *m)
{
    if (m == NULL)
        return;
    bm_local_close(m);
    bm_hosted_close(m);
    price_table_free(m->prices);
    bm_zone_free(m->zone);
    free(m->project);
    free(m);
}

const char *tg_bm_error(const struct tg_bm *m)
{
    return m != NULL ? m->err : "no manager";
}

/* The users as they are now (local: the file again); caller decrefs. */
static int users_now(struct tg_bm *m, json_t **out)
{
    if (m->client == TG_BM_LOCAL)
        return bm_local_read(m, out);
    *out = json_incref(m->users);
    return TG_BM_OK;
}

/* The entry of user, with *users holding it alive (caller decrefs). */
static int user_entry(struct tg_bm *m, const char *user, json_t **users, json_t **entry)
{
    int rc = users_now(m, users);
    if (rc != TG_BM_OK)
        return rc;
    *entry = json_object_get(*users, user);
    return *entry != NULL ? TG_BM_OK
                          : bm_fail(m, TG_BM_ENOUSER, "user \"%.100s\" has no budget", user);
}

/* Carries out a change where the users live. */
static int change(struct tg_bm *m, struct bm_change *c)
{
    c->now = m->now();
    if (m->client == TG_BM_LOCAL)
        return bm_local_change(m, c);
    if (m->tollgate)
        return bm_hosted_change(m, c);
    return bm_apply(m, m->users, c);
}

int tg_bm_create_budget(struct tg_bm *m, double total_budget, const char *user,
                        enum tg_bm_duration duration, time_t created_at)
{
    if (m == NULL)
        return TG_BM_EINVAL;
    struct bm_change c = {.op = BM_OP_CREATE, .user = user, .duration = duration,
                          .created_at = (double)created_at};
    int rc = begin(m, user);
    if (rc != TG_BM_OK)
        return rc;
    if (!(total_budget >= 0) || money_from_double(total_budget, &c.amount) < 0)
        return bm_fail(m, TG_BM_EINVAL, "total_budget must be a finite amount >= 0");
    if (duration < TG_BM_NONE || duration > TG_BM_YEARLY)
        return bm_fail(m, TG_BM_EINVAL, "duration must be one of enum tg_bm_duration");
    if (created_at < 0)
        return bm_fail(m, TG_BM_EINVAL, "created_at must be >= 0 (0 = now)");
    return change(m, &c);
}

bool tg_bm_is_valid_user(struct tg_bm *m, const char *user)
{
    json_t *users = NULL, *entry = NULL;
    if (m == NULL || begin(m, user) != TG_BM_OK)
        return false;
    int rc = user_entry(m, user, &users, &entry);
    json_decref(users);
    if (rc == TG_BM_ENOUSER)
        m->err[0] = '\0'; /* not an error: the answer is "no" */
    return rc == TG_BM_OK;
}

/* A money field of user's entry as a double. */
static int get_amount(struct tg_bm *m, const char *user, const char *field, double *out)
{
    json_t *users = NULL, *entry = NULL;
    if (m == NULL)
        return TG_BM_EINVAL;
    int rc = begin(m, user);
    if (rc == TG_BM_OK && out == NULL)
        rc = bm_fail(m, TG_BM_EINVAL, "out is NULL");
    if (rc == TG_BM_OK && (rc = user_entry(m, user, &users, &entry)) == TG_BM_OK)
        *out = money_to_double(bm_entry_money(entry, field));
    json_decref(users);
    return rc;
}

int tg_bm_get_total_budget(struct tg_bm *m, const char *user, double *out)
{
    return get_amount(m, user, "total_budget", out);
}

int tg_bm_get_current_cost(struct tg_bm *m, const char *user, double *out)
{
    return get_amount(m, user, "current_cost", out);
}

int tg_bm_get_model_cost(struct tg_bm *m, const char *user, tg_bm_model_cost_fn fn, void *arg)
{
    json_t *users = NULL, *entry = NULL;
    if (m == NULL)
        return TG_BM_EINVAL;
    int rc = begin(m, user);
    if (rc == TG_BM_OK && fn == NULL)
        rc = bm_fail(m, TG_BM_EINVAL, "fn is NULL");
    if (rc == TG_BM_OK && (rc = user_entry(m, user, &users, &entry)) == TG_BM_OK) {
        json_t *costs = json_object_get(entry, "model_cost"), *v;
        const char *model;
        json_object_foreach(costs, model, v)
            fn(model, money_to_double(bm_entry_money(costs, model)), arg);
    }
    json_decref(users);
    return rc;
}

int tg_bm_get_users(struct tg_bm *m, tg_bm_user_fn fn, void *arg)
{
    json_t *users = NULL;
    if (m == NULL)
        return TG_BM_EINVAL;
    m->err[0] = '\0';
    if (fn == NULL)
        return bm_fail(m, TG_BM_EINVAL, "fn is NULL");
    int rc = users_now(m, &users);
    if (rc == TG_BM_OK) {
        const char *user;
        json_t *entry;
        json_object_foreach(users, user, entry)
            fn(user, arg);
    }
    json_decref(users);
    return rc;
}

/* Prices usage of model into *cost (EMODEL when the map has no price). */
static int price(struct tg_bm *m, const char *model, const struct usage *u, money_t *cost)
{
    char why[256];
    enum price_status st = price_cost(m->prices, model, NULL, u, cost, why, sizeof(why));
    if (st == PRICE_UNPRICED)
        return bm_fail(m, TG_BM_EMODEL, "model \"%.100s\" has no price in the price map", model);
    if (st != PRICE_OK)
        return bm_fail(m, TG_BM_EINVAL, "usage of model \"%.100s\": %s", model, why);
    return TG_BM_OK;
}

static int add_cost(struct tg_bm *m, const char *user, const char *model, money_t cost)
{
    struct bm_change c = {.op = BM_OP_ADD_COST, .user = user, .model = model, .amount = cost};
    return change(m, &c);
}

int tg_bm_update_cost_response(struct tg_bm *m, const char *user, const char *response_json)
{
    if (m == NULL)
        return TG_BM_EINVAL;
    int rc = begin(m, user);
    if (rc != TG_BM_OK || response_json == NULL)
        return rc != TG_BM_OK ? rc : bm_fail(m, TG_BM_EINVAL, "response_json is NULL");
    json_error_t jerr;
    json_t *resp = json_loads(response_json, 0, &jerr);
    const json_t *model = json_object_get(resp, "model");
    struct usage u;
    money_t cost = 0;
    if (resp == NULL)
        rc = bm_fail(m, TG_BM_EINVAL, "response is not JSON: %s", jerr.text);
    else if (!json_is_string(model) || check_name(m, "response model", json_string_value(model)))
        rc = bm_fail(m, TG_BM_EINVAL, "response has no \"model\" name");
    else if (usage_from_json(json_object_get(resp, "usage"), &u) < 0)
        rc = bm_fail(m, TG_BM_EINVAL, "response has no \"usage\" object of token counts");
    else if ((usage_note_answer(resp, &u), rc = price(m, json_string_value(model), &u, &cost)) ==
             TG_BM_OK)
        rc = add_cost(m, user, json_string_value(model), cost);
    json_decref(resp);
    return rc;
}

/* Prompt tokens of messages (a JSON array) for model; -1 with m->err. */
static int64_t prompt_tokens(struct tg_bm *m, const char *model, const json_t *messages,
                             bool *estimated)
{
    char why[256];
    int64_t n = tokencount_chat(model, messages, estimated, why, sizeof(why));
    if (n < 0)
        bm_fail(m, TG_BM_EIO, "tokenizer: %s", why);
    return n;
}

int tg_bm_update_cost_text(struct tg_bm *m, const char *user, const char *model,
                           const char *input_text, const char *output_text)
{
    if (m == NULL)
        return TG_BM_EINVAL;
    int rc = begin(m, user);
    if (rc == TG_BM_OK && (input_text == NULL || output_text == NULL))
        rc = bm_fail(m, TG_BM_EINVAL, "input_text and output_text must be set");
    if (rc == TG_BM_OK)
        rc = check_name(m, "model", model);
    if (rc != TG_BM_OK)
        return rc;
    /* Any bytes: the tokenizer counts invalid UTF-8 byte by byte. */
    json_t *msgs = json_pack("[{s:s,s:o}]", "role", "user", "content",
                             json_stringn_nocheck(input_text, strlen(input_text)));
    if (msgs == NULL)
        return bm_fail(m, TG_BM_ENOMEM, "out of memory");
    bool est;
    char why[256];
    struct usage u = {0};
    money_t cost;
    u.prompt_tokens = prompt_tokens(m, model, msgs, &est);
    json_decref(msgs);
    if (u.prompt_tokens < 0)
        return TG_BM_EIO;
    u.completion_tokens = tokencount_text(model, output_text, strlen(output_text), &est, why,
                                          sizeof(why));
    if (u.completion_tokens < 0)
        return bm_fail(m, TG_BM_EIO, "tokenizer: %s", why);
    u.total_tokens = u.prompt_tokens + u.completion_tokens;
    rc = price(m, model, &u, &cost);
    return rc != TG_BM_OK ? rc : add_cost(m, user, model, cost);
}

int tg_bm_projected_cost(struct tg_bm *m, const char *model, const char *messages_json,
                         const char *user, double *out, bool *estimated)
{
    if (m == NULL)
        return TG_BM_EINVAL;
    int rc = begin(m, user);
    if (rc == TG_BM_OK && (messages_json == NULL || out == NULL))
        rc = bm_fail(m, TG_BM_EINVAL, "messages_json and out must be set");
    if (rc == TG_BM_OK)
        rc = check_name(m, "model", model);
    if (rc != TG_BM_OK)
        return rc;
    json_error_t jerr;
    json_t *msgs = json_loads(messages_json, 0, &jerr), *users = NULL, *entry = NULL;
    bool est = false;
    struct usage u = {0};
    money_t prompt = 0, total;
    size_t i;
    json_t *msg;
    if (!json_is_array(msgs))
        rc = bm_fail(m, TG_BM_EINVAL, "messages is not a JSON array%s%s", msgs ? "" : ": ",
                     msgs ? "" : jerr.text);
    json_array_foreach(rc == TG_BM_OK ? msgs : NULL, i, msg)
        if (!json_is_object(msg) && rc == TG_BM_OK)
            rc = bm_fail(m, TG_BM_EINVAL, "messages[%zu] is not an object", i);
    if (rc == TG_BM_OK && (u.prompt_tokens = prompt_tokens(m, model, msgs, &est)) < 0)
        rc = TG_BM_EIO;
    u.total_tokens = u.prompt_tokens;
    if (rc == TG_BM_OK)
        rc = price(m, model, &u, &prompt);
    if (rc == TG_BM_OK)
        rc = user_entry(m, user, &users, &entry);
    if (rc == TG_BM_OK) {
        if (money_add(bm_entry_money(entry, "current_cost"), prompt, &total) < 0)
            rc = bm_fail(m, TG_BM_EINVAL, "projected cost overflow");
        else
            *out = money_to_double(total);
        if (estimated != NULL)
            *estimated = est;
    }
    json_decref(users);
    json_decref(msgs);
    return rc;
}

int tg_bm_reset_cost(struct tg_bm *m, const char *user)
{
    if (m == NULL)
        return TG_BM_EINVAL;
    int rc = begin(m, user);
    if (rc != TG_BM_OK)
        return rc;
    struct bm_change c = {.op = BM_OP_RESET, .user = user};
    return change(m, &c);
}

/* Tollgate: resets user when its period changed, conditional on the
 * last_updated_at the decision was made on; a concurrent change makes the
 * server refuse, and the decision is taken again on the entry it answered. */
static int tollgate_reset_period(struct tg_bm *m, const char *user, double now, bool *did)
{
    *did = false;
    for (int i = 0; i < RESET_TRIES; i++) {
        json_t *entry = json_object_get(m->users, user);
        if (entry == NULL)
            return bm_fail(m, TG_BM_ENOUSER, "user \"%.100s\" has no budget", user);
        if (!bm_period_changed(m, entry, now))
            return TG_BM_OK;
        struct bm_change c = {.op = BM_OP_RESET, .user = user, .has_if_last = true,
                              .if_last = bm_entry_time(entry, "last_updated_at")};
        int rc = bm_hosted_change(m, &c);
        if (rc != TG_BM_OK || c.did) {
            *did = c.did;
            return rc;
        }
    }
    return bm_fail(m, TG_BM_EHTTP, "user \"%.100s\" kept changing during its reset", user);
}

int tg_bm_reset_on_duration(struct tg_bm *m, const char *user, bool *did_reset)
{
    bool did = false;
    if (m == NULL)
        return TG_BM_EINVAL;
    int rc = begin(m, user);
    if (rc != TG_BM_OK)
        return rc;
    struct bm_change c = {.op = BM_OP_RESET_PERIOD, .user = user};
    if (m->client == TG_BM_HOSTED && m->tollgate) {
        rc = tollgate_reset_period(m, user, m->now(), &did);
    } else {
        rc = change(m, &c);
        did = c.did;
    }
    if (did_reset != NULL)
        *did_reset = rc == TG_BM_OK && did;
    return rc;
}

/* Tollgate: loads every user again, then resets each whose period changed. */
static int tollgate_reset_all(struct tg_bm *m)
{
    int rc = bm_hosted_load(m);
    size_t n = json_object_size(m->users), k = 0;
    char **names = rc == TG_BM_OK ? calloc(n + 1, sizeof(*names)) : NULL;
    if (rc == TG_BM_OK && names == NULL)
        return bm_fail(m, TG_BM_ENOMEM, "out of memory");
    const char *user;
    json_t *entry;
    json_object_foreach(rc == TG_BM_OK ? m->users : NULL, user, entry)
        if (k < n && (names[k] = strdup(user)) != NULL)
            k++;
    double now = m->now();
    for (size_t i = 0; rc == TG_BM_OK && i < k; i++) {
        bool did;
        rc = tollgate_reset_period(m, names[i], now, &did);
    }
    for (size_t i = 0; i < k; i++)
        free(names[i]);
    free(names);
    if (rc == TG_BM_OK && k < n)
        rc = bm_fail(m, TG_BM_ENOMEM, "out of memory");
    return rc;
}

int tg_bm_update_budget_all_users(struct tg_bm *m)
{
    if (m == NULL)
        return TG_BM_EINVAL;
    m->err[0] = '\0';
    if (m->client == TG_BM_HOSTED && m->tollgate)
        return tollgate_reset_all(m);
    struct bm_change c = {.op = BM_OP_RESET_ALL};
    return change(m, &c);
}

int tg_bm_save_data(struct tg_bm *m)
{
    if (m == NULL)
        return TG_BM_EINVAL;
    m->err[0] = '\0';
    if (m->client == TG_BM_LOCAL || m->tollgate)
        return TG_BM_OK;
    return bm_hosted_save(m);
}
