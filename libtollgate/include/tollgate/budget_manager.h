/* tollgate/budget_manager.h - per-user LLM budgets inside an application, as
 * LiteLLM's BudgetManager: "don't get crazy bills".
 *
 * A manager is opened for a project name, backed either by a local JSON file
 * (the default; LiteLLM's user_cost.json layout) or by a hosted server
 * (LiteLLM's /get_budget and /set_budget, or Tollgate's reportd, whose
 * per-user atomic endpoints are then used automatically). Costs are priced
 * with Tollgate's price map and tokens counted with its tiktoken-compatible
 * tokenizer, as the gateway does.
 *
 * Every function returns TG_BM_OK (0) or a negative TG_BM_E* code, and fills
 * the manager's last error text (tg_bm_error); nothing is printed, nothing
 * aborts. A manager is not thread-safe: use one per thread, or lock around
 * it. Local mode is safe across processes of one project: every change takes
 * the project's lock (a "<path>.lock" file, flock), re-reads what others
 * saved, applies itself and is saved at once (temp file + fsync + rename), so
 * two processes never lose each other's updates and a crash never leaves a
 * torn file. Hosted mode on Tollgate sends each change as one atomic request.
 *
 * Amounts are USD. In the API they are doubles (LiteLLM's floats); inside,
 * costs are added as exact decimals (1e-20 USD), and the file keeps them to
 * 17 significant digits.
 */
#ifndef TOLLGATE_BUDGET_MANAGER_H
#define TOLLGATE_BUDGET_MANAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

enum tg_bm_status {
    TG_BM_OK = 0,
    TG_BM_EINVAL = -1,     /* a bad argument (NULL, negative budget, unknown duration) */
    TG_BM_ENOUSER = -2,    /* the user has no budget */
    TG_BM_EIO = -3,        /* the file could not be read, locked or written */
    TG_BM_ECORRUPT = -4,   /* the file is not a user_cost.json document */
    TG_BM_EHTTP = -5,      /* the hosted server failed or answered an error */
    TG_BM_EMODEL = -6,     /* a model with no price (or no tokenizer fallback) */
    TG_BM_ENOMEM = -7,
};

enum tg_bm_client { TG_BM_LOCAL = 0, TG_BM_HOSTED = 1 };

/* LiteLLM's durations: calendar day, ISO week (Monday), calendar month,
 * calendar year, in UTC unless tg_bm_options.timezone says otherwise. */
enum tg_bm_duration {
    TG_BM_NONE = 0, TG_BM_DAILY, TG_BM_WEEKLY, TG_BM_MONTHLY, TG_BM_YEARLY
};

struct tg_bm_options {
    enum tg_bm_client client; /* TG_BM_LOCAL by default (zeroed options) */
    const char *path;         /* local: the JSON file; NULL = "<project>.user_cost.json"
                               * in the current directory */
    const char *api_base;     /* hosted: e.g. "http://localhost:4001" */
    const char *const *headers; /* hosted: NULL-terminated "Name: value" lines,
                               * e.g. "Authorization: Bearer sk-..." */
    const char *timezone;     /* IANA zone for durations; NULL = UTC */
    const char *price_file;   /* NULL = the price map built into the library */
    const char *tokenizer_dir; /* directory of the *.tiktoken.gz rank files; NULL =
                               * the build's (tokenizer_set_data_dir: process-wide,
                               * read before the first count) */
    long timeout_ms;          /* hosted: per request; 0 = 30 s */
};

struct tg_bm;

/* Local mode reads the file again for every query and change, so a manager
 * always sees what other processes saved. Hosted mode keeps the users it
 * loaded at open (and what each change answered); update_budget_all_users
 * loads them again on Tollgate's server. */

/* Opens the manager of `project` and loads its users (local: the file, which
 * may not exist yet; hosted: /get_budget). *out is NULL on failure, with the
 * reason in err (may be NULL). */
int tg_bm_open(const char *project, const struct tg_bm_options *opt, struct tg_bm **out,
               char *err, size_t errlen);
/* Saves nothing (call tg_bm_save_data first) and frees the manager. */
void tg_bm_close(struct tg_bm *m);
/* The last error's text ("" when none). */
const char *tg_bm_error(const struct tg_bm *m);

/* create_budget: user gets total_budget for `duration` periods starting at
 * created_at (0 = now); an existing user's budget is replaced, cost kept. */
int tg_bm_create_budget(struct tg_bm *m, double total_budget, const char *user,
                        enum tg_bm_duration duration, time_t created_at);
/* false also on an error (damaged file, server down): tg_bm_error says so. */
bool tg_bm_is_valid_user(struct tg_bm *m, const char *user);
int tg_bm_get_total_budget(struct tg_bm *m, const char *user, double *out);
int tg_bm_get_current_cost(struct tg_bm *m, const char *user, double *out);

/* get_model_cost: calls fn once per model the user spent on. */
typedef void (*tg_bm_model_cost_fn)(const char *model, double cost, void *arg);
int tg_bm_get_model_cost(struct tg_bm *m, const char *user, tg_bm_model_cost_fn fn, void *arg);

/* update_cost from an OpenAI-shaped completion response (JSON text: its
 * "model" and "usage" are priced). */
int tg_bm_update_cost_response(struct tg_bm *m, const char *user, const char *response_json);
/* update_cost from text: input_text counted as a prompt message, output_text
 * as its content tokens only (LiteLLM over-counts it by ~7 tokens). */
int tg_bm_update_cost_text(struct tg_bm *m, const char *user, const char *model,
                           const char *input_text, const char *output_text);

/* projected_cost: the user's current cost plus the prompt cost of messages
 * (a JSON array in OpenAI's chat format). *estimated is set when the model
 * is not OpenAI's and cl100k stood in. */
int tg_bm_projected_cost(struct tg_bm *m, const char *model, const char *messages_json,
                         const char *user, double *out, bool *estimated);

/* get_users: calls fn once per user. */
typedef void (*tg_bm_user_fn)(const char *user, void *arg);
int tg_bm_get_users(struct tg_bm *m, tg_bm_user_fn fn, void *arg);

int tg_bm_reset_cost(struct tg_bm *m, const char *user);
/* reset_on_duration: resets the user's cost when its period has changed
 * since last_updated_at; *did_reset says whether it did. */
int tg_bm_reset_on_duration(struct tg_bm *m, const char *user, bool *did_reset);
/* update_budget_all_users: reset_on_duration for every user. */
int tg_bm_update_budget_all_users(struct tg_bm *m);
/* save_data: local: nothing left to do (every change is saved at once);
 * hosted on a LiteLLM server: /set_budget with every user; on Tollgate:
 * nothing (each change was stored atomically). */
int tg_bm_save_data(struct tg_bm *m);

#ifdef __cplusplus
}
#endif

#endif
