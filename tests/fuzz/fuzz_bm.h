/* fuzz_bm.h - for the BudgetManager targets: one manager per process at a
 * fixed clock, and the calls an application makes on the users it holds.
 * Header-only: only fuzz_bm_local.c and fuzz_bm_hosted.c include it. */
#ifndef TG_FUZZ_BM_H
#define TG_FUZZ_BM_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bm_internal.h"
#include "fuzz_common.h"

#define FUZZ_BM_USERS 4

static char fuzz_bm_dir[64];
static char fuzz_bm_path[128];

static double fuzz_bm_clock(void)
{
    return 1733100000.5; /* 2024-12-02, a Monday: no clock in the fuzz targets */
}

static void fuzz_bm_cleanup(void)
{
    char lock[160];
    snprintf(lock, sizeof(lock), "%s.lock", fuzz_bm_path);
    (void)unlink(fuzz_bm_path);
    (void)unlink(lock);
    (void)rmdir(fuzz_bm_dir);
}

/* The manager, local on a file in a private directory (removed at exit). */
static struct tg_bm *fuzz_bm(void)
{
    static struct tg_bm *m;
    char err[512];
    if (m != NULL)
        return m;
    /* tmpfs when there is one: every change fsyncs the file */
    const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    snprintf(fuzz_bm_dir, sizeof(fuzz_bm_dir), "%.40s/tg-fuzz-bm-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(fuzz_bm_dir) == NULL)
        abort();
    snprintf(fuzz_bm_path, sizeof(fuzz_bm_path), "%s/fuzz.user_cost.json", fuzz_bm_dir);
    atexit(fuzz_bm_cleanup);
    struct tg_bm_options opt = {.client = TG_BM_LOCAL, .path = fuzz_bm_path};
    if (tg_bm_open("fuzz", &opt, &m, err, sizeof(err)) != TG_BM_OK) {
        fprintf(stderr, "tg_bm_open: %s\n", err);
        abort();
    }
    m->now = fuzz_bm_clock;
    return m;
}

struct fuzz_bm_users {
    char names[FUZZ_BM_USERS][256];
    size_t n;
};

static void fuzz_bm_collect(const char *user, void *arg)
{
    struct fuzz_bm_users *u = arg;
    if (u->n < FUZZ_BM_USERS)
        snprintf(u->names[u->n++], sizeof(u->names[0]), "%s", user);
}

static void fuzz_bm_model_cost(const char *model, double cost, void *arg)
{
    (void)model, (void)cost, (void)arg;
}

/* What an application asks of each user, then of all of them. */
static void fuzz_bm_calls(struct tg_bm *m, const char *response_json)
{
    struct fuzz_bm_users users = {.n = 0};
    double v;
    bool b;
    (void)tg_bm_get_users(m, fuzz_bm_collect, &users);
    for (size_t i = 0; i < users.n; i++) {
        const char *u = users.names[i];
        (void)tg_bm_is_valid_user(m, u);
        (void)tg_bm_get_total_budget(m, u, &v);
        (void)tg_bm_get_current_cost(m, u, &v);
        (void)tg_bm_get_model_cost(m, u, fuzz_bm_model_cost, NULL);
        (void)tg_bm_projected_cost(m, "gpt-4o", "[{\"role\":\"user\",\"content\":\"hi\"}]", u,
                                   &v, &b);
        (void)tg_bm_reset_on_duration(m, u, &b);
        if (response_json != NULL)
            (void)tg_bm_update_cost_response(m, u, response_json);
    }
    (void)tg_bm_update_budget_all_users(m);
    (void)tg_bm_create_budget(m, 10.0, "fuzz-user", TG_BM_MONTHLY, 0);
}

#endif
