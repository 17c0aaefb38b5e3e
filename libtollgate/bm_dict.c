/* bm_dict.c - a project's users in LiteLLM's user_cost.json layout: checking
 * a document, applying one change to it, and writing it back as text.
 *
 * Entries are jansson objects; a change rewrites only the fields it owns,
 * so unknown fields written by other programs are kept. Amounts are read as
 * exact money through their shortest decimal (0.1 is 0.1), added exactly,
 * and stored as the nearest double, written in its shortest round-trip form.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bm_internal.h"

static const char *const duration_names[] = {NULL, "daily", "weekly", "monthly", "yearly"};

const char *bm_duration_name(enum tg_bm_duration d)
{
    return d > TG_BM_NONE && d <= TG_BM_YEARLY ? duration_names[d] : NULL;
}

int bm_duration_from_json(const json_t *v, enum tg_bm_duration *out)
{
    *out = TG_BM_NONE;
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_string(v)) {
        for (int d = TG_BM_DAILY; d <= TG_BM_YEARLY; d++)
            if (strcmp(json_string_value(v), duration_names[d]) == 0) {
                *out = (enum tg_bm_duration)d;
                return 0;
            }
        return -1;
    }
    if (!json_is_number(v)) /* LiteLLM's Python stores days: 1, 7, 28, 365 */
        return -1;
    double days = json_number_value(v);
    *out = days == 1 ? TG_BM_DAILY : days == 7 ? TG_BM_WEEKLY
         : days >= 28 && days <= 31 ? TG_BM_MONTHLY : days == 365 || days == 366 ? TG_BM_YEARLY
         : TG_BM_NONE;
    return *out == TG_BM_NONE ? -1 : 0;
}

static bool money_ok(const json_t *v)
{
    money_t m;
    return v == NULL || (json_is_number(v) && money_from_double(json_number_value(v), &m) == 0);
}

static bool time_ok(const json_t *v)
{
    return v == NULL || json_is_null(v) ||
           (json_is_number(v) && isfinite(json_number_value(v)) &&
            fabs(json_number_value(v)) < 1e15);
}

int bm_entry_check(const char *user, const json_t *entry, char *err, size_t errlen)
{
    static const char *const amounts[] = {"total_budget", "current_cost"};
    static const char *const times[] = {"created_at", "last_updated_at"};
    enum tg_bm_duration d;
    if (!json_is_object(entry)) {
        snprintf(err, errlen, "user \"%.100s\": entry is not an object", user);
        return -1;
    }
    for (size_t i = 0; i < 2; i++) {
        if (!money_ok(json_object_get(entry, amounts[i]))) {
            snprintf(err, errlen, "user \"%.100s\": %s is not an amount", user, amounts[i]);
            return -1;
        }
        if (!time_ok(json_object_get(entry, times[i]))) {
            snprintf(err, errlen, "user \"%.100s\": %s is not a Unix time", user, times[i]);
            return -1;
        }
    }
    if (bm_duration_from_json(json_object_get(entry, "duration"), &d) < 0) {
        snprintf(err, errlen, "user \"%.100s\": duration is not daily, weekly, monthly, "
                 "yearly or null", user);
        return -1;
    }
    const json_t *mc = json_object_get(entry, "model_cost");
    const char *model;
    json_t *v;
    if (mc != NULL && !json_is_object(mc)) {
        snprintf(err, errlen, "user \"%.100s\": model_cost is not an object", user);
        return -1;
    }
    json_object_foreach((json_t *)mc, model, v)
        if (!money_ok(v)) {
            snprintf(err, errlen, "user \"%.100s\": model_cost of \"%.100s\" is not an amount",
                     user, model);
            return -1;
        }
    return 0;
}

int bm_dict_check(const json_t *dict, char *err, size_t errlen)
{
    const char *user;
    json_t *entry;
    if (!json_is_object(dict)) {
        snprintf(err, errlen, "the document is not a JSON object of users");
        return -1;
    }
    json_object_foreach((json_t *)dict, user, entry)
        if (bm_entry_check(user, entry, err, errlen) < 0)
            return -1;
    return 0;
}

money_t bm_entry_money(const json_t *entry, const char *field)
{
    money_t m = 0;
    const json_t *v = json_object_get(entry, field);
    if (json_is_number(v) && money_from_double(json_number_value(v), &m) < 0)
        m = 0; /* bm_entry_check refused such documents */
    return m;
}

double bm_entry_time(const json_t *entry, const char *field)
{
    const json_t *v = json_object_get(entry, field);
    return json_is_number(v) ? json_number_value(v) : 0;
}

bool bm_period_changed(const struct tg_bm *m, const json_t *entry, double now)
{
    enum tg_bm_duration d;
    if (bm_duration_from_json(json_object_get(entry, "duration"), &d) < 0 || d == TG_BM_NONE)
        return false;
    double last = bm_entry_time(entry, "last_updated_at");
    return bm_period_key(m->zone, d, last) != bm_period_key(m->zone, d, now);
}

/* json_object_set_new that reports failure (ENOMEM) as -1. */
static int put(json_t *obj, const char *key, json_t *v)
{
    return v != NULL && json_object_set_new(obj, key, v) == 0 ? 0 : -1;
}

static int reset_entry(json_t *entry, double now)
{
    return put(entry, "current_cost", json_real(0)) | put(entry, "model_cost", json_object()) |
           put(entry, "last_updated_at", json_real(now));
}

static int create(struct tg_bm *m, json_t *dict, const struct bm_change *c)
{
    json_t *old = json_object_get(dict, c->user);
    json_t *e = old != NULL ? json_copy(old) : json_object();
    const char *dname = bm_duration_name(c->duration);
    double created = c->created_at > 0 ? c->created_at : c->now;
    int rc = e == NULL ? -1 : 0;
    rc |= put(e, "total_budget", json_real(money_to_double(c->amount)));
    rc |= put(e, "duration", dname != NULL ? json_string(dname) : json_null());
    rc |= put(e, "created_at", json_real(created));
    if (old == NULL) {
        rc |= put(e, "last_updated_at", json_real(created));
        rc |= put(e, "current_cost", json_real(0));
        rc |= put(e, "model_cost", json_object());
    }
    if (rc != 0 || json_object_set_new(dict, c->user, e) < 0)
        return bm_fail(m, TG_BM_ENOMEM, "out of memory");
    return TG_BM_OK;
}

static int add_cost(struct tg_bm *m, json_t *entry, const struct bm_change *c)
{
    money_t cur = bm_entry_money(entry, "current_cost"), model_cur = 0;
    json_t *mc = json_object_get(entry, "model_cost");
    if (json_is_number(json_object_get(mc, c->model)))
        model_cur = bm_entry_money(mc, c->model);
    if (money_add(cur, c->amount, &cur) < 0 || money_add(model_cur, c->amount, &model_cur) < 0)
        return bm_fail(m, TG_BM_EINVAL, "cost overflow for user \"%.100s\"", c->user);
    if (!json_is_object(mc) && (put(entry, "model_cost", json_object()) < 0 ||
                                (mc = json_object_get(entry, "model_cost")) == NULL))
        return bm_fail(m, TG_BM_ENOMEM, "out of memory");
    if ((put(entry, "current_cost", json_real(money_to_double(cur))) |
         put(mc, c->model, json_real(money_to_double(model_cur))) |
         put(entry, "last_updated_at", json_real(c->now))) != 0)
        return bm_fail(m, TG_BM_ENOMEM, "out of memory");
    return TG_BM_OK;
}

static int reset_all(struct tg_bm *m, json_t *dict, struct bm_change *c)
{
    const char *user;
    json_t *entry;
    json_object_foreach(dict, user, entry)
        if (bm_period_changed(m, entry, c->now)) {
            if (reset_entry(entry, c->now) != 0)
                return bm_fail(m, TG_BM_ENOMEM, "out of memory");
            c->did = true;
        }
    return TG_BM_OK;
}

int bm_apply(struct tg_bm *m, json_t *dict, struct bm_change *c)
{
    c->did = false;
    if (c->op == BM_OP_CREATE)
        return create(m, dict, c);
    if (c->op == BM_OP_RESET_ALL)
        return reset_all(m, dict, c);
    json_t *entry = json_object_get(dict, c->user);
    if (entry == NULL)
        return bm_fail(m, TG_BM_ENOUSER, "user \"%.100s\" has no budget", c->user);
    switch (c->op) {
    case BM_OP_ADD_COST:
        return add_cost(m, entry, c);
    case BM_OP_RESET_PERIOD:
        if (!bm_period_changed(m, entry, c->now))
            return TG_BM_OK;
        /* fall through */
    case BM_OP_RESET:
        if (reset_entry(entry, c->now) != 0)
            return bm_fail(m, TG_BM_ENOMEM, "out of memory");
        c->did = true;
        return TG_BM_OK;
    default:
        return bm_fail(m, TG_BM_EINVAL, "unknown change");
    }
}

/* ---- writing ---- */

struct text {
    char *buf;
    size_t len, cap;
    bool oom;
};

static void emit(struct text *t, const char *s, size_t n)
{
    if (t->oom)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *b = realloc(t->buf, cap);
        if (b == NULL) {
            t->oom = true;
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

/* The shortest %.Ng that reads back as d, with ".0" for whole numbers so
 * Python reads a float, as LiteLLM writes. Starting at 15 digits gives the
 * same text as starting at 1 (%g drops trailing zeros, and a double that a
 * shorter decimal reads back as rounds to that decimal at 15 digits), in at
 * most three tries: every change rewrites every user's numbers. */
static void emit_real(struct text *t, double d)
{
    char buf[40];
    if (!isfinite(d))
        d = 0; /* never stored: amounts and times are checked */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    if (strchr(buf, 'e') != NULL && fabs(d) >= 1 && fabs(d) < 1e17)
        snprintf(buf, sizeof(buf), "%.0f", d); /* "1e+01": a whole number, write 10.0 */
    if (strpbrk(buf, ".e") == NULL)
        strcat(buf, ".0");
    emit(t, buf, strlen(buf));
}

static void emit_string(struct text *t, const char *s, size_t n)
{
    json_t *js = json_stringn(s, n);
    char *q = js != NULL ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
    if (q == NULL)
        t->oom = true;
    else
        emit(t, q, strlen(q));
    free(q);
    json_decref(js);
}

static void emit_value(struct text *t, const json_t *v, int depth)
{
    if (json_is_real(v)) {
        emit_real(t, json_real_value(v));
    } else if (json_is_object(v)) {
        const char *key;
        json_t *child;
        bool first = true;
        emit(t, "{", 1);
        json_object_foreach((json_t *)v, key, child) {
            emit(t, first ? "\n" : ",\n", first ? 1 : 2);
            for (int i = 0; i <= depth; i++)
                emit(t, "    ", 4);
            emit_string(t, key, strlen(key));
            emit(t, ": ", 2);
            emit_value(t, child, depth + 1);
            first = false;
        }
        if (!first) {
            emit(t, "\n", 1);
            for (int i = 0; i < depth; i++)
                emit(t, "    ", 4);
        }
        emit(t, "}", 1);
    } else if (json_is_string(v)) {
        emit_string(t, json_string_value(v), json_string_length(v));
    } else {
        char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT); /* ints, arrays, literals */
        if (s == NULL)
            t->oom = true;
        else
            emit(t, s, strlen(s));
        free(s);
    }
}

char *bm_json_text(const json_t *v)
{
    struct text t = {0};
    emit_value(&t, v, 0);
    emit(&t, "\n", 1);
    if (t.oom) {
        free(t.buf);
        return NULL;
    }
    return t.buf;
}
