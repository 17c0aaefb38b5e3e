/* test_budget_manager_periods.h - part of test_budget_manager.c (included
 * there, so the CHECK counters are shared): calendar periods and resets.
 *
 * Zone offsets are compared with the C library's own tz code (TZ set in
 * this test process only) at random instants and around every hour; period
 * keys and reset_on_duration are checked on hand-picked boundaries. */

/* The offset glibc gives for t in zone tz. */
static long libc_offset(const char *tz, time_t t)
{
    struct tm tm;
    setenv("TZ", tz, 1);
    tzset();
    localtime_r(&t, &tm);
    return tm.tm_gmtoff;
}

static void zone_offsets(void)
{
    static const char *const zones[] = {"Europe/Berlin", "America/New_York", "Australia/Sydney",
                                        "Asia/Kolkata", "America/Sao_Paulo", "Pacific/Auckland",
                                        "Europe/London", "Etc/GMT+5", "America/Santiago"};
    char err[256];
    unsigned seed = 12345;
    for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
        struct bm_zone *z = NULL;
        CHECK(bm_zone_load(zones[i], &z, err, sizeof(err)) == 0 && z != NULL, "%s: %s",
              zones[i], err);
        if (z == NULL)
            continue;
        int bad = 0;
        for (int k = 0; k < 3000; k++) { /* 1990 .. 2070 */
            time_t t = (time_t)(631152000LL + (long long)(rand_r(&seed) % 2524608000LL));
            if (bm_zone_offset(z, t) != libc_offset(zones[i], t) && bad++ < 3)
                CHECK(0, "%s at %lld: %d, libc %ld", zones[i], (long long)t,
                      bm_zone_offset(z, t), libc_offset(zones[i], t));
        }
        for (time_t t = 1704067200; t < 1735689600; t += 3600) /* every hour of 2024 */
            if (bm_zone_offset(z, t) != libc_offset(zones[i], t) && bad++ < 3)
                CHECK(0, "%s at %lld", zones[i], (long long)t);
        CHECK(bad == 0, "%s: %d offsets differ from libc", zones[i], bad);
        bm_zone_free(z);
    }
    unsetenv("TZ");
    tzset();
    struct bm_zone *z = NULL;
    CHECK(bm_zone_load("../etc/passwd", &z, err, sizeof(err)) == TG_BM_EINVAL, "path refused");
    CHECK(bm_zone_load("UTC", &z, err, sizeof(err)) == 0 && z == NULL, "UTC is built in");
}

static void period_keys(void)
{
    static const struct {
        enum tg_bm_duration d;
        const char *tz, *a, *b;
        bool same;
    } cases[] = {
        {TG_BM_DAILY, NULL, "2024-01-31T00:00:00Z", "2024-01-31T23:59:59Z", true},
        {TG_BM_DAILY, NULL, "2024-01-31T23:59:59Z", "2024-02-01T00:00:00Z", false},
        {TG_BM_MONTHLY, NULL, "2024-01-31T23:59:59Z", "2024-02-01T00:00:00Z", false},
        {TG_BM_MONTHLY, NULL, "2024-02-01T00:00:00Z", "2024-02-29T23:59:59Z", true},
        {TG_BM_MONTHLY, NULL, "2024-02-29T23:59:59Z", "2024-03-01T00:00:00Z", false},
        {TG_BM_MONTHLY, NULL, "2023-02-28T23:59:59Z", "2023-03-01T00:00:00Z", false},
        {TG_BM_MONTHLY, NULL, "2024-01-01T00:00:00Z", "2024-01-29T00:00:00Z", true}, /* > 28 d */
        {TG_BM_MONTHLY, NULL, "2024-12-31T23:59:59Z", "2025-01-01T00:00:00Z", false},
        {TG_BM_YEARLY, NULL, "2024-12-31T23:59:59Z", "2025-01-01T00:00:00Z", false},
        {TG_BM_YEARLY, NULL, "2024-01-01T00:00:00Z", "2024-12-31T23:59:59Z", true},
        {TG_BM_YEARLY, NULL, "2000-02-29T12:00:00Z", "2000-12-31T12:00:00Z", true},
        {TG_BM_WEEKLY, NULL, "2024-12-29T23:59:59Z", "2024-12-30T00:00:00Z", false}, /* Sun|Mon */
        {TG_BM_WEEKLY, NULL, "2024-12-30T00:00:00Z", "2025-01-05T23:59:59Z", true}, /* spans NY */
        {TG_BM_WEEKLY, NULL, "2026-11-30T00:00:00Z", "2026-12-01T10:00:00Z", true}, /* Mon, Tue */
        {TG_BM_WEEKLY, NULL, "2021-01-03T12:00:00Z", "2021-01-04T12:00:00Z", false},
        {TG_BM_WEEKLY, NULL, "1970-01-01T00:00:00Z", "1970-01-04T23:59:59Z", true}, /* Thu..Sun */
        {TG_BM_WEEKLY, NULL, "1969-12-28T12:00:00Z", "1969-12-29T00:00:00Z", false},
        /* Berlin is UTC+1 in winter, +2 in summer. */
        {TG_BM_MONTHLY, "Europe/Berlin", "2024-01-31T22:00:00Z", "2024-01-31T23:30:00Z", false},
        {TG_BM_MONTHLY, NULL, "2024-01-31T22:00:00Z", "2024-01-31T23:30:00Z", true},
        {TG_BM_DAILY, "Europe/Berlin", "2024-07-31T21:30:00Z", "2024-07-31T22:30:00Z", false},
        {TG_BM_DAILY, "Europe/Berlin", "2024-07-31T22:30:00Z", "2024-08-01T21:59:59Z", true},
        {TG_BM_YEARLY, "America/New_York", "2024-12-31T23:30:00Z", "2025-01-01T04:59:59Z", true},
        {TG_BM_YEARLY, "America/New_York", "2025-01-01T04:59:59Z", "2025-01-01T05:00:00Z", false},
        {TG_BM_WEEKLY, "Australia/Sydney", "2024-12-29T12:59:59Z", "2024-12-29T13:00:00Z", false},
        {TG_BM_DAILY, "Asia/Kolkata", "2024-03-10T18:29:59Z", "2024-03-10T18:30:00Z", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct bm_zone *z = NULL;
        char err[256];
        bm_zone_load(cases[i].tz, &z, err, sizeof(err));
        bool same = bm_period_key(z, cases[i].d, utc(cases[i].a)) ==
                    bm_period_key(z, cases[i].d, utc(cases[i].b));
        CHECK(same == cases[i].same, "case %zu: %s %s in %s: same=%d", i, cases[i].a,
              cases[i].b, cases[i].tz ? cases[i].tz : "UTC", same);
        bm_zone_free(z);
    }
}

static void periods(void)
{
    zone_offsets();
    period_keys();
}

/* reset_on_duration resets exactly when the period of last_updated_at
 * differs from now's; update_budget_all_users does it for all. */
static void resets(void)
{
    struct tg_bm *m = open_local("resets.json", NULL);
    bool did = true;
    if (m == NULL)
        return;
    fake_now = utc("2024-01-31T10:00:00Z");
    tg_bm_create_budget(m, 5, "day", TG_BM_DAILY, (time_t)utc("2024-01-31T09:00:00Z"));
    tg_bm_create_budget(m, 5, "month", TG_BM_MONTHLY, 0);
    tg_bm_create_budget(m, 5, "year", TG_BM_YEARLY, 0);
    tg_bm_create_budget(m, 5, "forever", TG_BM_NONE, (time_t)utc("2020-01-01T00:00:00Z"));
    const char *users[] = {"day", "month", "year", "forever"};
    for (int i = 0; i < 4; i++)
        tg_bm_update_cost_response(m, users[i], RESP("gpt-4o", 1000, 500));
    fake_now = utc("2024-01-31T23:59:59Z") + 0.999;
    CHECK(tg_bm_reset_on_duration(m, "day", &did) == TG_BM_OK && !did, "same day");
    fake_now = utc("2024-02-01T00:00:00Z");
    CHECK(tg_bm_reset_on_duration(m, "day", &did) == TG_BM_OK && did, "next day resets");
    CHECK(current(m, "day") == 0, "day cost 0");
    CHECK(tg_bm_reset_on_duration(m, "day", &did) == TG_BM_OK && !did, "reset once");
    CHECK(tg_bm_reset_on_duration(m, "forever", &did) == TG_BM_OK && !did, "none never resets");
    /* all users: month resets (Jan -> Feb), year and forever keep their cost */
    CHECK(tg_bm_update_budget_all_users(m) == TG_BM_OK, "all users: %s", tg_bm_error(m));
    CHECK(current(m, "month") == 0, "month reset on Feb 1");
    check_amount(current(m, "year"), expect_cost("gpt-4o", 1000, 500), "year kept");
    check_amount(current(m, "forever"), expect_cost("gpt-4o", 1000, 500), "forever kept");
    fake_now = utc("2024-12-31T23:59:59Z");
    CHECK(tg_bm_update_budget_all_users(m) == TG_BM_OK, "all users in Dec");
    check_amount(current(m, "year"), expect_cost("gpt-4o", 1000, 500), "year kept on Dec 31");
    fake_now = utc("2025-01-01T00:00:00Z");
    CHECK(tg_bm_update_budget_all_users(m) == TG_BM_OK && current(m, "year") == 0,
          "year reset on Jan 1");
    tg_bm_close(m);
    /* The same instants in New York (UTC-5): Feb 1 00:00 UTC is still Jan 31. */
    m = open_local("resets_ny.json", "America/New_York");
    if (m == NULL)
        return;
    fake_now = utc("2024-01-31T10:00:00Z");
    tg_bm_create_budget(m, 5, "month", TG_BM_MONTHLY, 0);
    tg_bm_update_cost_response(m, "month", RESP("gpt-4o", 1000, 500));
    fake_now = utc("2024-02-01T04:59:59Z");
    CHECK(tg_bm_reset_on_duration(m, "month", &did) == TG_BM_OK && !did, "NY: still Jan 31");
    fake_now = utc("2024-02-01T05:00:00Z");
    CHECK(tg_bm_reset_on_duration(m, "month", &did) == TG_BM_OK && did, "NY: Feb 1 00:00");
    tg_bm_close(m);
}
