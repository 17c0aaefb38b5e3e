/* budget_manager_example.c - per-user budgets in an application with
 * Tollgate's BudgetManager (the README shows this program).
 *
 * Build against an installed Tollgate:
 *   cc budget_manager_example.c $(pkg-config --cflags --libs tollgate-budget)
 * Run: ./a.out [FILE]   (FILE defaults to ./example.user_cost.json)
 */
#include <stdio.h>
#include <tollgate/budget_manager.h>

/* What the provider answered (here a fixed OpenAI chat completion). */
static const char *const response =
    "{\"id\": \"chatcmpl-123\", \"object\": \"chat.completion\", \"model\": \"gpt-4o\","
    " \"choices\": [{\"index\": 0, \"message\": {\"role\": \"assistant\","
    " \"content\": \"Hello! How can I help?\"}, \"finish_reason\": \"stop\"}],"
    " \"usage\": {\"prompt_tokens\": 1000, \"completion_tokens\": 500, \"total_tokens\": 1500}}";

static void print_model(const char *model, double cost, void *arg)
{
    (void)arg;
    printf("  %s: $%.6f\n", model, cost);
}

int main(int argc, char **argv)
{
    struct tg_bm_options opt = {.client = TG_BM_LOCAL,
                                .path = argc > 1 ? argv[1] : "example.user_cost.json"};
    struct tg_bm *bm;
    char err[512];
    const char *user = "user-1234";
    const char *messages = "[{\"role\": \"user\", \"content\": \"Hey, how's it going?\"}]";

    if (tg_bm_open("example", &opt, &bm, err, sizeof(err)) != TG_BM_OK) {
        fprintf(stderr, "open: %s\n", err);
        return 1;
    }
    /* A new user gets $10 a day (the cost resets at midnight UTC). */
    if (!tg_bm_is_valid_user(bm, user) &&
        tg_bm_create_budget(bm, 10.0, user, TG_BM_DAILY, 0) != TG_BM_OK)
        goto fail;
    bool reset;
    if (tg_bm_reset_on_duration(bm, user, &reset) != TG_BM_OK)
        goto fail;

    /* Before the call: would its prompt still fit the budget? */
    double total, projected;
    bool estimated;
    if (tg_bm_get_total_budget(bm, user, &total) != TG_BM_OK ||
        tg_bm_projected_cost(bm, "gpt-4o", messages, user, &projected, &estimated) != TG_BM_OK)
        goto fail;
    if (projected > total) {
        printf("Sorry - no budget (projected $%.6f of $%.2f)\n", projected, total);
        tg_bm_close(bm);
        return 0;
    }
    printf("projected cost before the call: $%.6f%s\n", projected,
           estimated ? " (estimated tokens)" : "");

    /* ... call the model with `messages`, then charge its answer: */
    if (tg_bm_update_cost_response(bm, user, response) != TG_BM_OK)
        goto fail;

    double current;
    if (tg_bm_get_current_cost(bm, user, &current) != TG_BM_OK)
        goto fail;
    printf("%s has spent $%.6f of $%.2f today\n", user, current, total);
    if (tg_bm_get_model_cost(bm, user, print_model, NULL) != TG_BM_OK)
        goto fail;
    tg_bm_save_data(bm); /* local files are saved at every change already */
    tg_bm_close(bm);
    return 0;

fail:
    fprintf(stderr, "budget manager: %s\n", tg_bm_error(bm));
    tg_bm_close(bm);
    return 1;
}
