/* test_ratelimit.c - proxyd's in-memory rate limits (proxyd/ratelimit.c):
 * a sliding window never holds more than the limit in any 60 s span (a
 * fixed minute would admit twice across its boundary), tokens settle to the
 * real count at their admission's time, parallel slots come back, a refusal
 * takes nothing from any bucket, retry times are exact, and swept buckets
 * go. Time is the caller's, so every case is exact. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "ratelimit.h"

#define W RATELIMIT_WINDOW_MS

static struct ratelimit_ask ask(const char *d, const char *v, int64_t rpm, int64_t tpm,
                                int64_t par)
{
    return (struct ratelimit_ask){d, v, {rpm, tpm, par}};
}

static int take1(struct ratelimit *rl, struct ratelimit_ask a, int64_t tokens, int64_t now,
                 struct ratelimit_hold *h, struct ratelimit_refusal *why)
{
    return ratelimit_take(rl, &a, 1, tokens, now, h, NULL, why);
}

/* rpm 30: requests spread over 100 s; every 60 s span (ms steps) holds <= 30,
 * and a request is refused only when the span ending at it already holds 30. */
static void sliding_requests(void)
{
    struct ratelimit *rl = ratelimit_new();
    struct ratelimit_ask a = ask("api_key", "k1", 30, RATELIMIT_NONE, RATELIMIT_NONE);
    int64_t admitted[400];
    size_t n = 0;
    int wrong = 0;
    for (int64_t t = 1000; t < 101000; t += 250) {
        struct ratelimit_hold h;
        struct ratelimit_refusal why;
        size_t in_window = 0;
        for (size_t i = 0; i < n; i++)
            in_window += admitted[i] > t - W;
        int rc = take1(rl, a, 0, t, &h, &why);
        wrong += (rc == 0) != (in_window < 30);
        if (rc == 0) {
            admitted[n++] = t;
            ratelimit_release(rl, &h);
        } else {
            /* the retry time is when the oldest counted request leaves */
            int64_t oldest = 0;
            for (size_t i = 0; i < n && oldest == 0; i++)
                if (admitted[i] > t - W)
                    oldest = admitted[i];
            wrong += why.kind != RL_REQUESTS || why.limit != 30 || why.used != 30 ||
                     why.retry_ms != oldest + W - t;
        }
    }
    CHECK(wrong == 0, "%d requests decided wrongly", wrong);
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        size_t in = 0;
        for (size_t j = i; j < n && admitted[j] < admitted[i] + W; j++)
            in++;
        worst = in > worst ? in : worst;
    }
    CHECK(worst == 30, "the busiest 60 s held %zu requests (limit 30)", worst);
    CHECK(n == 30 + 30, "%zu admitted over 100 s at rpm 30 (want 60)", n);
    ratelimit_free(rl);
}

/* A fixed minute would admit 30 at 59.9 s and 30 more at 60.1 s: the window does not. */
static void no_double_at_a_boundary(void)
{
    struct ratelimit *rl = ratelimit_new();
    struct ratelimit_ask a = ask("api_key", "k", 30, RATELIMIT_NONE, RATELIMIT_NONE);
    struct ratelimit_hold h;
    struct ratelimit_refusal why;
    int ok = 0;
    for (int i = 0; i < 30; i++)
        ok += take1(rl, a, 0, 59900, &h, &why) == 0;
    for (int i = 0; i < 30; i++)
        ok += take1(rl, a, 0, 60100, &h, &why) == 0;
    CHECK(ok == 30, "%d admitted across a minute boundary (limit 30)", ok);
    CHECK(take1(rl, a, 0, 119899, &h, &why) == 1, "still full 1 ms before the first leaves");
    CHECK(take1(rl, a, 0, 119900, &h, &why) == 0, "free when the first 30 leave");
    ratelimit_free(rl);
}

/* Tokens: an estimate is taken, settled to the real count at its time. */
static void tokens_settle(void)
{
    struct ratelimit *rl = ratelimit_new();
    struct ratelimit_ask a = ask("api_key", "k", RATELIMIT_NONE, 1000, RATELIMIT_NONE);
    struct ratelimit_hold h1, h2, h3;
    struct ratelimit_refusal why;
    CHECK(take1(rl, a, 600, 1000, &h1, &why) == 0, "600 of 1000");
    CHECK(take1(rl, a, 600, 2000, &h2, &why) == 1 && why.kind == RL_TOKENS && why.used == 600,
          "600 more do not fit");
    ratelimit_settle(rl, &h1, 150); /* the answer was short */
    CHECK(take1(rl, a, 600, 2000, &h2, &why) == 0, "after settling to 150, 600 more fit");
    CHECK(take1(rl, a, 300, 2000, &h3, &why) == 1 && why.used == 750, "750 used");
    ratelimit_settle(rl, &h1, 999); /* settles once only */
    ratelimit_release(rl, &h1);
    ratelimit_release(rl, &h2); /* never settled: nothing billed, 0 */
    CHECK(take1(rl, a, 850, 3000, &h3, &why) == 0, "h2 released unsettled counts 0");
    CHECK(take1(rl, a, 1, 3000, &h1, &why) == 1 && why.retry_ms == 1000 + W - 3000,
          "retry when h1's 150 leave (%lld)", (long long)why.retry_ms);
    CHECK(take1(rl, a, 1001, 3000, &h1, &why) == 1 && why.retry_ms == -1,
          "more than the limit never fits");
    ratelimit_release(rl, &h3);
    /* settling an entry that left the window changes nothing */
    CHECK(take1(rl, a, 10, 70000, &h1, &why) == 0, "a new window");
    struct ratelimit_hold old = {0};
    CHECK(take1(rl, a, 5, 70001, &old, &why) == 0, "5 more");
    CHECK(take1(rl, a, 985, 130001, &h2, &why) == 0, "the 10 and 5 left: 985 fit");
    ratelimit_settle(rl, &old, 500);
    CHECK(take1(rl, a, 15, 130001, &h3, &why) == 0, "a settled entry past the window adds nothing");
    ratelimit_free(rl);
}

/* Parallel: slots in flight, given back at release. */
static void parallel_slots(void)
{
    struct ratelimit *rl = ratelimit_new();
    struct ratelimit_ask a = ask("api_key", "k", RATELIMIT_NONE, RATELIMIT_NONE, 2);
    struct ratelimit_hold h[3];
    struct ratelimit_refusal why;
    CHECK(take1(rl, a, 0, 1, &h[0], &why) == 0 && take1(rl, a, 0, 1, &h[1], &why) == 0, "2");
    CHECK(take1(rl, a, 0, 1, &h[2], &why) == 1 && why.kind == RL_PARALLEL && why.used == 2,
          "the third waits");
    ratelimit_release(rl, &h[0]);
    CHECK(take1(rl, a, 0, 2, &h[2], &why) == 0, "a slot came back");
    ratelimit_release(rl, &h[1]);
    ratelimit_release(rl, &h[2]);
    ratelimit_release(rl, &h[2]); /* a second release of a dropped hold is a no-op */
    CHECK(take1(rl, a, 0, 3, &h[0], &why) == 0 && take1(rl, a, 0, 3, &h[1], &why) == 0,
          "both slots free");
    ratelimit_release(rl, &h[0]);
    ratelimit_release(rl, &h[1]);
    ratelimit_free(rl);
}

/* All or nothing: the key has room, its team not; the key's count is untouched. */
static void all_or_nothing(void)
{
    struct ratelimit *rl = ratelimit_new();
    struct ratelimit_ask asks[2] = {ask("api_key", "k", 5, RATELIMIT_NONE, 1),
                                    ask("team", "t", 1, RATELIMIT_NONE, RATELIMIT_NONE)};
    struct ratelimit_hold h[2];
    struct ratelimit_status st[2][RL_KINDS];
    struct ratelimit_refusal why;
    CHECK(ratelimit_take(rl, asks, 2, 0, 10, h, st, &why) == 0, "first");
    CHECK(st[0][RL_REQUESTS].limit == 5 && st[0][RL_REQUESTS].remaining == 4 &&
              st[0][RL_REQUESTS].reset_ms == W && st[1][RL_REQUESTS].remaining == 0 &&
              st[0][RL_PARALLEL].remaining == 0 && st[0][RL_TOKENS].limit == RATELIMIT_NONE,
          "status after the first");
    ratelimit_release(rl, &h[0]);
    ratelimit_release(rl, &h[1]);
    for (int i = 0; i < 4; i++)
        CHECK(ratelimit_take(rl, asks, 2, 0, 20 + i, h, NULL, &why) == 1 && why.ask == 1,
              "the team refuses");
    struct ratelimit_ask key_only = asks[0];
    int ok = 0;
    for (int i = 0; i < 5; i++) {
        struct ratelimit_hold k;
        ok += take1(rl, key_only, 0, 30, &k, &why) == 0;
        ratelimit_release(rl, &k);
    }
    CHECK(ok == 4, "the team's refusals took none of the key's 5 (%d more fit)", ok);
    ratelimit_free(rl);
}

/* Entries coalesce per millisecond, and swept buckets go once empty and unheld. */
static void bounded_and_swept(void)
{
    struct ratelimit *rl = ratelimit_new();
    struct ratelimit_ask a = ask("user", "u", 1000000, 100000000, RATELIMIT_NONE);
    struct ratelimit_hold h, held;
    struct ratelimit_refusal why;
    int refused = 0;
    for (int i = 0; i < 100000; i++) { /* 1,000 a millisecond */
        if (take1(rl, a, 3, 5000 + i / 1000, &h, &why) != 0)
            refused++;
        else
            ratelimit_release(rl, &h);
    }
    CHECK(refused == 0, "%d of 100,000 refused", refused);
    CHECK(take1(rl, ask("user", "v", 10, RATELIMIT_NONE, RATELIMIT_NONE), 0, 6000, &held,
                &why) == 0, "another owner");
    CHECK(ratelimit_buckets(rl) == 2, "2 buckets");
    ratelimit_sweep(rl, 5000 + W + 100);
    CHECK(ratelimit_buckets(rl) == 1, "the empty one swept, the held one kept (%zu)",
          ratelimit_buckets(rl));
    ratelimit_release(rl, &held);
    ratelimit_sweep(rl, 6000 + W);
    CHECK(ratelimit_buckets(rl) == 0, "all swept (%zu)", ratelimit_buckets(rl));
    ratelimit_free(rl);
}

int main(void)
{
    sliding_requests();
    no_double_at_a_boundary();
    tokens_settle();
    parallel_slots();
    all_or_nothing();
    bounded_and_swept();
    return check_summary("ratelimit");
}
