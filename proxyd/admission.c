/* admission.c - budgets as proxyd enforces them (see admission.h).
 *
 * Design: each budget owner (key, user, team) has, on top of the spend in
 * its database row, two amounts only this proxyd knows:
 *   reserved  - worst-case costs of its requests in flight;
 *   unconfirmed - actual costs of finished requests the row may not include
 *                yet: `pending` until accountd acks them, then a queue of
 *                (ack time, running total) so that for a row fetched at T
 *                exactly the costs acked at or after T are added.
 * A request is admitted while row spend + unconfirmed + reserved is below
 * the max budget, and then reserves its worst case, so concurrent requests
 * overshoot a budget by at most one request. Acked costs older than the
 * oldest usable row are forgotten.
 */
#include "admission.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "strmap.h"

struct acked_cost {
    int64_t at_ms;
    money_t cum; /* running total including this cost */
};

#define OWNER_NAME_MAX 520 /* "m:" team id, a separator and a user id (255 bytes each) */

struct owner {
    char name[OWNER_NAME_MAX];
    money_t reserved, pending;
    struct acked_cost *q;
    size_t head, len, cap; /* q[head .. len) are live */
    money_t cum_total, cum_base; /* cum of all pushed / of all forgotten */
    bool has_pub;                /* spend from accountd's last update (PUB/SUB) */
    money_t pub_spend;
    int64_t pub_ms, pub_reset_at_us;
};

struct settled {
    money_t amount;
    struct owner *owners[ADMISSION_MAX_OWNERS];
    size_t n;
};

struct admission {
    int64_t stale_ms;
    int64_t last_ack_ms; /* updates are stamped after every ack before them */
    struct strmap *owners;  /* "k:token" / "u:id" / "t:id" -> struct owner */
    struct strmap *settled; /* request id -> struct settled, until acked */
};

static void owner_free(void *p)
{
    struct owner *o = p;
    free(o->q);
    free(o);
}

struct admission *admission_new(int64_t stale_ms)
{
    struct admission *a = calloc(1, sizeof(*a));
    if (a == NULL || (a->owners = strmap_new()) == NULL || (a->settled = strmap_new()) == NULL) {
        admission_free(a);
        return NULL;
    }
    a->stale_ms = stale_ms;
    return a;
}

void admission_free(struct admission *a)
{
    if (a == NULL)
        return;
    strmap_free(a->owners, owner_free);
    strmap_free(a->settled, free);
    free(a);
}

/* Forgets acked costs every usable row includes. */
static void forget_old(struct admission *a, struct owner *o, int64_t now)
{
    while (o->head < o->len && o->q[o->head].at_ms < now - a->stale_ms)
        o->cum_base = o->q[o->head++].cum;
    if (o->head > 0 && o->head == o->len)
        o->head = o->len = 0;
}

/* Costs a row fetched at fetched_ms does not include. */
static money_t unconfirmed(const struct owner *o, int64_t fetched_ms)
{
    size_t lo = o->head, hi = o->len; /* first entry acked at or after fetched_ms */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (o->q[mid].at_ms < fetched_ms)
            lo = mid + 1;
        else
            hi = mid;
    }
    money_t before = lo == o->head ? o->cum_base : o->q[lo - 1].cum;
    return o->pending + (o->cum_total - before);
}

/* The owner "kind:id" ("m:team\x1fuser" for a team member). */
static struct owner *owner_get(struct admission *a, char kind, const char *id, const char *user)
{
    char name[OWNER_NAME_MAX];
    int err;
    if (user != NULL)
        snprintf(name, sizeof(name), "%c:%s\x1f%s", kind, id, user);
    else
        snprintf(name, sizeof(name), "%c:%s", kind, id);
    struct owner *o = strmap_get(a->owners, name);
    if (o != NULL)
        return o;
    if ((o = calloc(1, sizeof(*o))) == NULL)
        return NULL;
    snprintf(o->name, sizeof(o->name), "%s", name);
    strmap_put(a->owners, name, o, &err);
    if (err < 0) {
        free(o);
        return NULL;
    }
    return o;
}

/* Drops an owner that holds nothing any more. */
static void owner_release(struct admission *a, struct owner *o)
{
    int64_t now = clock_ms();
    forget_old(a, o, now);
    if (o->reserved == 0 && o->pending == 0 && o->head == o->len &&
        (!o->has_pub || o->pub_ms < now - a->stale_ms))
        owner_free(strmap_del(a->owners, o->name));
}

/* One budget of the chain: which owner, its row, how LiteLLM words a refusal. */
struct budget_check {
    char kind;
    const char *id;
    const struct budget_row *row;
    int64_t fetched_ms;
    const char *user; /* 'm' (team member): the user; id is the team */
};

static void refusal(const struct budget_check *b, money_t spend, struct admission_refusal *why)
{
    char s[MONEY_STR_MAX], m[MONEY_STR_MAX], *msg = why->msg;
    size_t len = sizeof(why->msg);
    money_format(spend, s);
    money_format(b->row->max, m);
    why->kind = b->kind == 'k' ? "key" : b->kind == 't' ? "team" : b->kind == 'g' ? "tag"
              : b->kind == 'm' ? "team_member" : b->kind == 'c' ? "end_user"
              : b->kind == 'p' ? "proxy" : "user";
    why->spend = spend;
    if (b->kind == 'k' || b->kind == 'p') /* 'p': LiteLLM's proxy budget has the key's words */
        snprintf(msg, len, "Budget has been exceeded! Current cost: %s, Max budget: %s", s, m);
    else if (b->kind == 't')
        snprintf(msg, len, "Budget has been exceeded! Team=%s Current cost: %s, Max budget: %s",
                 b->id, s, m);
    else if (b->kind == 'g')
        snprintf(msg, len, "Budget has been exceeded! Tag=%s Current cost: %s, Max budget: %s",
                 b->id, s, m);
    else if (b->kind == 'm')
        snprintf(msg, len, "Budget has been exceeded! User=%s in Team=%s Current cost: %s,"
                 " Max budget: %s", b->user, b->id, s, m);
    else if (b->kind == 'c')
        snprintf(msg, len, "ExceededBudget: End User=%s over budget. Spend=%s, Budget=%s", b->id,
                 s, m);
    else
        snprintf(msg, len, "ExceededBudget: User=%s over budget. Spend=%s, Budget=%s", b->id, s, m);
}

/* The budgets to check: the key's chain (LiteLLM checks the user's only for
 * keys without a team; a team key's user also has its budget in the team),
 * then the end user and the tags. */
static size_t chain(const struct keyinfo *k, const struct budget_extra *extra, size_t n_extra,
                    struct budget_check out[ADMISSION_MAX_OWNERS])
{
    size_t n = 0;
    if (k != NULL) {
        out[n++] = (struct budget_check){'k', k->token, &k->key, k->fetched_ms, NULL};
        if (k->user_id != NULL && k->team_id == NULL)
            out[n++] = (struct budget_check){'u', k->user_id, &k->user, k->fetched_ms, NULL};
        if (k->team_id != NULL)
            out[n++] = (struct budget_check){'t', k->team_id, &k->team, k->fetched_ms, NULL};
        if (k->team_id != NULL && k->user_id != NULL) /* max_budget_in_team */
            out[n++] = (struct budget_check){'m', k->team_id, &k->member, k->fetched_ms,
                                             k->user_id};
    }
    for (size_t i = 0; i < n_extra && n < ADMISSION_MAX_OWNERS; i++)
        out[n++] = (struct budget_check){extra[i].kind, extra[i].id, extra[i].row,
                                         extra[i].fetched_ms, NULL};
    return n;
}

int admission_admit(struct admission *a, const struct keyinfo *k,
                    const struct budget_extra *extra, size_t n_extra, money_t reserve,
                    struct reservation *r, struct admission_refusal *why)
{
    struct budget_check checks[ADMISSION_MAX_OWNERS];
    size_t n = chain(k, extra, n_extra, checks);
    int64_t now = clock_ms();
    *r = (struct reservation){.amount = reserve};
    for (size_t i = 0; i < n; i++) {
        if (!checks[i].row->has_max)
            continue;
        struct owner *o = owner_get(a, checks[i].kind, checks[i].id, checks[i].user);
        if (o == NULL) {
            *why = (struct admission_refusal){.kind = "out_of_memory", .msg = "out of memory"};
            return -1;
        }
        forget_old(a, o, now);
        /* the newer of the row and accountd's last update is the base */
        bool pub = o->has_pub && o->pub_ms > checks[i].fetched_ms;
        money_t known = pub ? o->pub_spend : checks[i].row->spend, total;
        money_t unconf = unconfirmed(o, pub ? o->pub_ms : checks[i].fetched_ms);
        if (money_add(known, unconf, &known) < 0 ||
            money_add(known, o->reserved, &total) < 0 || total >= checks[i].row->max) {
            /* Costs not yet acked may already be in the base, and so may costs acked
             * after a row was read (committed before the read, acked after it):
             * then ask again later, with the row read afresh. An update (pub) is
             * stamped after the acks of its batch, so only pending ones are unsure. */
            money_t unsure = pub ? o->pending : unconf;
            int rc = total - unsure < checks[i].row->max ? ADMISSION_UNSURE : -1;
            refusal(&checks[i], known, why);
            why->reset_at_us = pub ? o->pub_reset_at_us : checks[i].row->reset_at_us;
            owner_release(a, o);
            for (size_t k2 = 0; k2 < r->n; k2++)
                owner_release(a, r->owners[k2]);
            r->n = 0;
            return rc;
        }
        r->owners[r->n++] = o;
    }
    for (size_t i = 0; i < r->n; i++)
        r->owners[i]->reserved += reserve;
    return 0;
}

void admission_settle(struct admission *a, struct reservation *r, money_t actual,
                      const char *request_id)
{
    struct settled *s = r->n > 0 ? calloc(1, sizeof(*s)) : NULL;
    int err = 0;
    for (size_t i = 0; i < r->n; i++) {
        r->owners[i]->reserved -= r->amount;
        if (s != NULL) {
            r->owners[i]->pending += actual;
            s->owners[s->n++] = r->owners[i];
        }
    }
    if (s != NULL) {
        s->amount = actual;
        strmap_put(a->settled, request_id, s, &err);
    }
    if (r->n > 0 && (s == NULL || err < 0)) {
        /* Out of memory: forget the cost; the next row refresh carries it. */
        log_warn("request %s: out of memory tracking its cost for budgets", request_id);
        for (size_t i = 0; s != NULL && i < s->n; i++)
            s->owners[i]->pending -= actual;
        free(s);
    }
    for (size_t i = 0; i < r->n; i++)
        if (s == NULL || err < 0)
            owner_release(a, r->owners[i]);
    r->n = 0;
}

/* Appends an acked cost to an owner's queue. */
static void push_acked(struct owner *o, money_t amount, int64_t now)
{
    if (o->len == o->cap) {
        if (o->head > 0) { /* reuse the forgotten front */
            memmove(o->q, o->q + o->head, (o->len - o->head) * sizeof(*o->q));
            o->len -= o->head;
            o->head = 0;
        }
        if (o->len == o->cap) {
            size_t cap = o->cap ? o->cap * 2 : 16;
            struct acked_cost *q = realloc(o->q, cap * sizeof(*q));
            if (q == NULL) { /* keep counting it as pending: safe, only conservative */
                log_warn("out of memory: a confirmed cost stays counted");
                return;
            }
            o->q = q;
            o->cap = cap;
        }
    }
    o->pending -= amount;
    o->cum_total += amount;
    o->q[o->len++] = (struct acked_cost){now, o->cum_total};
}

void admission_acked(struct admission *a, const char *request_id)
{
    struct settled *s = strmap_del(a->settled, request_id);
    if (s == NULL)
        return;
    int64_t now = clock_ms();
    a->last_ack_ms = now;
    for (size_t i = 0; i < s->n; i++) {
        push_acked(s->owners[i], s->amount, now);
        owner_release(a, s->owners[i]);
    }
    free(s);
}

void admission_release(struct admission *a, struct reservation *r)
{
    for (size_t i = 0; i < r->n; i++) {
        r->owners[i]->reserved -= r->amount;
        owner_release(a, r->owners[i]);
    }
    r->n = 0;
}

void admission_spend_update(struct admission *a, const char *owner, money_t spend,
                            int64_t reset_at_us)
{
    struct owner *o = strmap_get(a->owners, owner);
    if (o == NULL)
        return; /* not a budget this proxyd is using: its next row read is fresh */
    int64_t now = clock_ms();
    o->has_pub = true;
    o->pub_spend = spend;
    o->pub_reset_at_us = reset_at_us;
    /* strictly after the acks handled so far: costs acked before it are in it */
    o->pub_ms = now > a->last_ack_ms ? now : a->last_ack_ms + 1;
}
