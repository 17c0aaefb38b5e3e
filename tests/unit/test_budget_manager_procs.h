/* test_budget_manager_procs.h - part of test_budget_manager.c (included
 * there, so the CHECK counters are shared): local mode across processes.
 *
 * Crash safety: a child saves continuously and is SIGKILLed at random
 * moments; after each kill the file must parse and hold a complete state
 * (a whole number of updates, no fewer than before, model costs adding up).
 * Concurrency: two processes update one user 500 times each; no update may
 * be lost. */

/* A child that updates `user` with the model's response until killed (n = 0)
 * or n times; exits 0 on success. */
static void child_updates(const char *file, const char *user, const char *resp, int n,
                          int ready_fd)
{
    char path[256], err[512];
    struct tg_bm *m = NULL;
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    struct tg_bm_options o = {.path = path, .tokenizer_dir = tokenizer_dir};
    if (tg_bm_open("proj", &o, &m, err, sizeof(err)) != TG_BM_OK)
        _exit(2);
    if (ready_fd >= 0 && write(ready_fd, "r", 1) != 1) /* opened: the kill clock starts */
        _exit(4);
    for (int i = 0; n == 0 || i < n; i++)
        if (tg_bm_update_cost_response(m, user, resp) != TG_BM_OK)
            _exit(3);
    tg_bm_close(m);
    _exit(0);
}

static int count_temps(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d != NULL && (e = readdir(d)) != NULL)
        n += strncmp(e->d_name, "crash.json.tmp.", 15) == 0;
    if (d != NULL)
        closedir(d);
    return n;
}

/* The number of unit-cost updates the crash file holds; -1 if torn: its
 * current_cost must be exactly k units for a whole k (the nearest double to
 * k x unit), and gpt-4o's model cost the same. */
static int64_t crash_state(pusd_t unit)
{
    char path[256], why[256], want[32];
    snprintf(path, sizeof(path), "%s/crash.json", dir);
    json_t *doc = json_load_file(path, 0, NULL);
    json_t *e = json_object_get(doc, "alice");
    const json_t *cur = json_object_get(e, "current_cost");
    const json_t *model = json_object_get(json_object_get(e, "model_cost"), "gpt-4o");
    int64_t k = -1;
    if (doc != NULL && bm_dict_check(doc, why, sizeof(why)) == 0 && json_is_number(cur) &&
        json_is_number(model)) {
        double c = json_number_value(cur);
        int64_t n = llround(c / ((double)unit / 1e12));
        if (n >= 0 && c == strtod(pusd_text(n * unit, want), NULL) &&
            json_number_value(model) == c)
            k = n;
    }
    json_decref(doc);
    return k;
}

static void crash_safety(void)
{
    struct tg_bm *m = open_local("crash.json", NULL);
    pusd_t unit = expect_cost("gpt-4o", 1000, 500);
    unsigned seed = 42;
    int64_t last = 0;
    int kills = 0, torn = 0, back = 0, temps = 0;
    if (m == NULL)
        return;
    tg_bm_create_budget(m, 1000, "alice", TG_BM_NONE, 0);
    tg_bm_close(m);
    for (int i = 0; i < 80; i++) {
        int fds[2];
        char c;
        if (pipe(fds) < 0)
            break;
        pid_t pid = fork();
        if (pid == 0)
            child_updates("crash.json", "alice", RESP("gpt-4o", 1000, 500), 0, fds[1]);
        close(fds[1]);
        CHECK(read(fds[0], &c, 1) == 1, "child %d did not open", i);
        close(fds[0]);
        usleep(rand_r(&seed) % 20000);
        int status = 0;
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        kills += WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
        int64_t k = crash_state(unit);
        torn += k < 0;
        back += k >= 0 && k < last;
        if (k > last)
            last = k;
        temps += count_temps() > 0;
    }
    CHECK(kills == 80, "%d of 80 children were killed (the others failed)", kills);
    CHECK(torn == 0 && back == 0, "%d torn states, %d lost updates", torn, back);
    CHECK(last >= 20 && temps > 0, "%lld saves in 80 runs, %d kills mid-save: the test did "
          "not exercise crashes", (long long)last, temps);
    printf("crash safety: 80 kills, %lld saves survived, %d kills left a temp file\n",
           (long long)last, temps);
    m = open_local("crash.json", NULL); /* open sweeps the dead savers' temp files */
    CHECK(count_temps() == 0, "temp files left after open");
    if (m != NULL)
        check_amount(current(m, "alice"), unit * last, "the last state survives");
    tg_bm_close(m);
}

static void concurrent_updates(void)
{
    struct tg_bm *m = open_local("shared.json", NULL);
    if (m == NULL)
        return;
    tg_bm_create_budget(m, 1000, "alice", TG_BM_MONTHLY, 0);
    pid_t a = fork();
    if (a == 0)
        child_updates("shared.json", "alice", RESP("gpt-4o", 1000, 500), 500, -1);
    pid_t b = fork();
    if (b == 0)
        child_updates("shared.json", "alice", RESP("gpt-4o-mini", 10000, 2000), 500, -1);
    int sa = -1, sb = -1;
    waitpid(a, &sa, 0);
    waitpid(b, &sb, 0);
    CHECK(WIFEXITED(sa) && WEXITSTATUS(sa) == 0 && WIFEXITED(sb) && WEXITSTATUS(sb) == 0,
          "children: %d %d", sa, sb);
    pusd_t wa = expect_cost("gpt-4o", 1000, 500) * 500;
    pusd_t wb = expect_cost("gpt-4o-mini", 10000, 2000) * 500;
    check_amount(current(m, "alice"), wa + wb, "2 x 500 concurrent updates");
    struct list l = {0};
    tg_bm_get_model_cost(m, "alice", collect_model, &l);
    CHECK(l.n == 2, "two models");
    for (int i = 0; i < l.n; i++)
        check_amount(l.costs[i], strcmp(l.names[i], "gpt-4o") == 0 ? wa : wb, l.names[i]);
    tg_bm_close(m);
}
