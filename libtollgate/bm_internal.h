/* bm_internal.h - what the BudgetManager's files share (budget_manager.c,
 * bm_dict.c, bm_local.c, bm_hosted.c, bm_period.c). Not installed.
 *
 * The users of a project are kept as a jansson object in LiteLLM's
 * user_cost.json layout ({user: {total_budget, duration, created_at,
 * last_updated_at, current_cost, model_cost}}), so fields written by other
 * programs survive a save. Amounts in it are doubles; every change turns
 * them into exact money (money_from_double), adds exactly and stores the
 * nearest double again.
 */
#ifndef TG_BM_INTERNAL_H
#define TG_BM_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "money.h"
#include "tollgate/budget_manager.h"

#define BM_ERR_MAX 512
#define BM_PROJECT_MAX 255
#define BM_USERS_MAX 100000 /* the hosted API refuses bigger projects */

struct price_table;
struct bm_zone;
struct curl_slist;

/* One change to a project's users, applied under the project's lock (local),
 * to the loaded users (hosted on LiteLLM) or sent as one request (Tollgate). */
enum bm_op {
    BM_OP_CREATE,       /* user, amount = total budget, duration, created_at */
    BM_OP_ADD_COST,     /* user, model, amount = cost */
    BM_OP_RESET,        /* user */
    BM_OP_RESET_PERIOD, /* user: reset when the period changed (did) */
    BM_OP_RESET_ALL,    /* every user whose period changed */
};

struct bm_change {
    enum bm_op op;
    const char *user;
    const char *model;
    money_t amount;
    enum tg_bm_duration duration;
    double created_at;
    double now;
    bool has_if_last; /* Tollgate's reset_cost: only if last_updated_at is still... */
    double if_last;   /* ...this value (race-free calendar resets) */
    bool did;         /* out: a reset happened */
};

struct tg_bm {
    char *project;
    enum tg_bm_client client;
    char err[BM_ERR_MAX];
    struct price_table *prices;
    struct bm_zone *zone;          /* NULL = UTC */
    double (*now)(void);           /* the wall clock (tests replace it) */
    /* local */
    char *path;
    int lock_fd;
    pid_t lock_pid;                /* the process that opened lock_fd */
    /* hosted */
    char *api_base;
    struct curl_slist *headers;
    long timeout_ms;
    bool tollgate;                 /* the server sent x-tollgate-budget-manager: 1 */
    json_t *users;                 /* hosted: the users loaded and changed */
};

/* Sets m->err; returns status (for `return bm_fail(m, TG_BM_EINVAL, ...)`). */
int bm_fail(struct tg_bm *m, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* bm_dict.c: the user dict. */
const char *bm_duration_name(enum tg_bm_duration d); /* NULL for NONE */
/* A duration value as stored: null, a name, or LiteLLM's days (1, 7, 28-31,
 * 365/366). -1 when it is none of these. */
int bm_duration_from_json(const json_t *v, enum tg_bm_duration *out);
/* Checks one entry / the whole dict; -1 with err naming the bad field. */
int bm_entry_check(const char *user, const json_t *entry, char *err, size_t errlen);
int bm_dict_check(const json_t *dict, char *err, size_t errlen);
/* A field of an entry as money / a time (missing = 0). */
money_t bm_entry_money(const json_t *entry, const char *field);
double bm_entry_time(const json_t *entry, const char *field);
/* Applies c to dict at time c->now (ENOUSER, EINVAL on overflow). */
int bm_apply(struct tg_bm *m, json_t *dict, struct bm_change *c);
/* Does the user's period differ between last_updated_at and now? */
bool bm_period_changed(const struct tg_bm *m, const json_t *entry, double now);
/* A JSON document's text with doubles in their shortest round-trip form
 * (10.0, 0.0075, 1733100000.123); malloc'd, NULL on ENOMEM. */
char *bm_json_text(const json_t *v);

/* bm_period.c: calendar periods in UTC or an IANA zone (TZif files read
 * directly, so the process's TZ is never touched). */
int bm_zone_load(const char *name, struct bm_zone **out, char *err, size_t errlen);
void bm_zone_free(struct bm_zone *z);
/* The offset east of UTC in seconds at Unix time t. */
int32_t bm_zone_offset(const struct bm_zone *z, int64_t t);
/* A number naming the period that contains t: equal keys = same period
 * (day number, its ISO week's Monday day number, year*12+month, year). */
int64_t bm_period_key(const struct bm_zone *z, enum tg_bm_duration d, double t);

/* bm_local.c: the project file. */
int bm_local_open(struct tg_bm *m, const char *path);
void bm_local_close(struct tg_bm *m);
/* Reads the users (a missing file = none); *out owned by the caller. */
int bm_local_read(struct tg_bm *m, json_t **out);
/* Lock, read, apply c, save atomically, unlock. */
int bm_local_change(struct tg_bm *m, struct bm_change *c);

/* bm_hosted.c: a LiteLLM or Tollgate server. */
int bm_hosted_open(struct tg_bm *m, const struct tg_bm_options *opt);
void bm_hosted_close(struct tg_bm *m);
/* /get_budget into m->users (and m->tollgate from the answer's header). */
int bm_hosted_load(struct tg_bm *m);
/* Tollgate: one atomic request for c, its answer stored in m->users. */
int bm_hosted_change(struct tg_bm *m, struct bm_change *c);
/* /set_budget with m->users. */
int bm_hosted_save(struct tg_bm *m);

#endif
