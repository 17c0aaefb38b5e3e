/* bm_cli.c - drives the BudgetManager library in hosted mode from the e2e
 * tests (tests/e2e/test_budget_manager_hosted.py), against a real reportd.
 *
 * Usage: bm-cli API_BASE KEY PROJECT COMMAND [ARGS]
 *   create USER TOTAL DURATION   (DURATION: none|daily|weekly|monthly|yearly)
 *   update USER N                N x update_cost from a gpt-4o response ($0.0075 each)
 *   cost USER                    prints the current cost
 *   reset-on-duration USER       prints "reset" or "kept"
 *   all-users                    update_budget_all_users
 *   save                         save_data
 * Exit status 0 on success; the library's error text on stderr otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tollgate/budget_manager.h>

static const char RESPONSE[] =
    "{\"model\": \"gpt-4o\", \"usage\": {\"prompt_tokens\": 1000, \"completion_tokens\": 500,"
    " \"total_tokens\": 1500}}";

static int duration_of(const char *s, enum tg_bm_duration *d)
{
    static const char *const NAMES[] = {"none", "daily", "weekly", "monthly", "yearly"};
    for (int i = 0; i < 5; i++) {
        if (strcmp(s, NAMES[i]) == 0) {
            *d = (enum tg_bm_duration)i;
            return 0;
        }
    }
    return -1;
}

static int run(struct tg_bm *bm, int argc, char **argv)
{
    const char *cmd = argv[0];
    enum tg_bm_duration d;
    if (strcmp(cmd, "create") == 0 && argc == 4 && duration_of(argv[3], &d) == 0)
        return tg_bm_create_budget(bm, atof(argv[2]), argv[1], d, 0);
    if (strcmp(cmd, "update") == 0 && argc == 3) {
        for (long i = 0, n = atol(argv[2]); i < n; i++) {
            int rc = tg_bm_update_cost_response(bm, argv[1], RESPONSE);
            if (rc != TG_BM_OK)
                return rc;
        }
        return TG_BM_OK;
    }
    if (strcmp(cmd, "cost") == 0 && argc == 2) {
        double c;
        int rc = tg_bm_get_current_cost(bm, argv[1], &c);
        if (rc == TG_BM_OK)
            printf("%.10f\n", c);
        return rc;
    }
    if (strcmp(cmd, "reset-on-duration") == 0 && argc == 2) {
        bool did;
        int rc = tg_bm_reset_on_duration(bm, argv[1], &did);
        if (rc == TG_BM_OK)
            printf("%s\n", did ? "reset" : "kept");
        return rc;
    }
    if (strcmp(cmd, "all-users") == 0 && argc == 1)
        return tg_bm_update_budget_all_users(bm);
    if (strcmp(cmd, "save") == 0 && argc == 1)
        return tg_bm_save_data(bm);
    fprintf(stderr, "bad command\n");
    return TG_BM_EINVAL;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s API_BASE KEY PROJECT COMMAND [ARGS]\n", argv[0]);
        return 2;
    }
    char auth[512], err[512];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", argv[2]);
    const char *headers[] = {auth, NULL};
    struct tg_bm_options opt = {.client = TG_BM_HOSTED, .api_base = argv[1], .headers = headers};
    struct tg_bm *bm;
    if (tg_bm_open(argv[3], &opt, &bm, err, sizeof(err)) != TG_BM_OK) {
        fprintf(stderr, "open: %s\n", err);
        return 1;
    }
    int rc = run(bm, argc - 4, argv + 4);
    if (rc != TG_BM_OK)
        fprintf(stderr, "%s: %s (%d)\n", argv[4], tg_bm_error(bm), rc);
    tg_bm_close(bm);
    return rc == TG_BM_OK ? 0 : 1;
}
