/* budget_manager_bench.c - BudgetManager local mode: update_cost operations
 * per second with durable saves (issue 6).
 *
 * Usage: budget-manager-bench DIR [SECONDS] [PROCS] [USERS]
 * Opens a local manager on DIR/bench.user_cost.json with USERS users (100),
 * then PROCS processes (1) each call tg_bm_update_cost_response for SECONDS
 * (5) on random users. Every call takes the project's lock, re-reads the
 * file, adds the cost and saves it (temp file + fsync + rename + fsync of the
 * directory), so this measures durable, multi-process-safe updates. Prints
 * one JSON line; the final current costs are checked to add up to exactly
 * what was charged.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <tollgate/budget_manager.h>
#include <unistd.h>

static const char RESPONSE[] =
    "{\"model\": \"gpt-4o\", \"usage\": {\"prompt_tokens\": 1000, \"completion_tokens\": 500,"
    " \"total_tokens\": 1500}}"; /* $0.0075 */
#define COST 0.0075

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int open_bm(const char *path, struct tg_bm **bm)
{
    struct tg_bm_options opt = {.client = TG_BM_LOCAL, .path = path};
    char err[512];
    if (tg_bm_open("bench", &opt, bm, err, sizeof(err)) != TG_BM_OK) {
        fprintf(stderr, "open %s: %s\n", path, err);
        return -1;
    }
    return 0;
}

/* One worker: updates until `seconds` pass; writes its count to fd. */
static int worker(const char *path, double seconds, int users, unsigned seed, int fd)
{
    struct tg_bm *bm;
    char user[32];
    long n = 0;
    if (open_bm(path, &bm) < 0)
        return 1;
    double end = now_s() + seconds;
    while (now_s() < end) {
        snprintf(user, sizeof(user), "user-%d", (int)(rand_r(&seed) % (unsigned)users));
        if (tg_bm_update_cost_response(bm, user, RESPONSE) != TG_BM_OK) {
            fprintf(stderr, "update_cost: %s\n", tg_bm_error(bm));
            tg_bm_close(bm);
            return 1;
        }
        n++;
    }
    tg_bm_close(bm);
    return write(fd, &n, sizeof(n)) == (ssize_t)sizeof(n) ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [SECONDS] [PROCS] [USERS]\n", argv[0]);
        return 2;
    }
    double seconds = argc > 2 ? atof(argv[2]) : 5.0;
    int procs = argc > 3 ? atoi(argv[3]) : 1, users = argc > 4 ? atoi(argv[4]) : 100;
    char path[4096], user[32];
    int fds[2];
    struct tg_bm *bm;
    snprintf(path, sizeof(path), "%s/bench.user_cost.json", argv[1]);
    unlink(path);
    if (procs < 1 || users < 1 || seconds <= 0 || open_bm(path, &bm) < 0 || pipe(fds) < 0)
        return 2;
    for (int i = 0; i < users; i++) {
        snprintf(user, sizeof(user), "user-%d", i);
        if (tg_bm_create_budget(bm, 1e9, user, TG_BM_MONTHLY, 0) != TG_BM_OK) {
            fprintf(stderr, "create_budget: %s\n", tg_bm_error(bm));
            return 1;
        }
    }
    double t0 = now_s();
    for (int p = 0; p < procs; p++) {
        pid_t pid = fork();
        if (pid < 0)
            return 1;
        if (pid == 0)
            _exit(worker(path, seconds, users, (unsigned)(p + 1) * 2654435761u, fds[1]));
    }
    long total = 0, n;
    int failed = 0, status;
    for (int p = 0; p < procs; p++) {
        if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed = 1;
    }
    double elapsed = now_s() - t0;
    close(fds[1]);
    while (read(fds[0], &n, sizeof(n)) == (ssize_t)sizeof(n))
        total += n;
    /* Every charge is in the file: the users' costs add up to total x COST. */
    double sum = 0, c;
    for (int i = 0; i < users; i++) {
        snprintf(user, sizeof(user), "user-%d", i);
        if (tg_bm_get_current_cost(bm, user, &c) != TG_BM_OK)
            failed = 1;
        sum += c;
    }
    double want = (double)total * COST;
    bool exact = sum > want - 1e-6 && sum < want + 1e-6;
    printf("{\"procs\": %d, \"users\": %d, \"updates\": %ld, \"seconds\": %.3f,"
           " \"updates_per_s\": %.1f, \"sum_matches\": %s}\n",
           procs, users, total, elapsed, (double)total / elapsed, exact ? "true" : "false");
    tg_bm_close(bm);
    return failed || !exact ? 1 : 0;
}
