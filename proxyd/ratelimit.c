/* ratelimit.c - sliding-window rate limits in memory (see ratelimit.h).
 *
 * A window is a ring of (time, amount) entries in time order, one per
 * millisecond at most (a request in the same millisecond adds to the last
 * entry), and their sum. Entries older than the window are dropped before
 * every look, so the sum is exactly what was admitted in the last
 * RATELIMIT_WINDOW_MS. One entry per millisecond bounds a window at 60,000
 * entries (960 KB) whatever the limit and the request rate; a settled
 * request finds its entry by time (binary search: the ring is sorted).
 */
#include "ratelimit.h"

#include <stdlib.h>
#include <string.h>

#include "strmap.h"

#define RING_MIN 8

struct slot {
    int64_t t_ms, amount;
};

struct window {
    struct slot *ring;
    size_t head, len, cap;
    int64_t sum;
};

struct rl_bucket {
    struct window w[2]; /* RL_REQUESTS, RL_TOKENS */
    int64_t in_flight;  /* RL_PARALLEL */
    size_t holds;       /* calls that will settle or release here */
};

struct ratelimit {
    struct strmap *buckets; /* "descriptor:value" -> struct rl_bucket */
};

static struct slot *at(const struct window *w, size_t i)
{
    return &w->ring[(w->head + i) % w->cap];
}

static void expire(struct window *w, int64_t now_ms)
{
    while (w->len > 0 && at(w, 0)->t_ms <= now_ms - RATELIMIT_WINDOW_MS) {
        w->sum -= at(w, 0)->amount;
        w->head = (w->head + 1) % w->cap;
        w->len--;
    }
}

/* Room for one more entry: -1 on ENOMEM. */
static int reserve_slot(struct window *w)
{
    if (w->len < w->cap)
        return 0;
    size_t cap = w->cap ? w->cap * 2 : RING_MIN;
    struct slot *ring = malloc(cap * sizeof(*ring));
    if (ring == NULL)
        return -1;
    for (size_t i = 0; i < w->len; i++)
        ring[i] = *at(w, i);
    free(w->ring);
    w->ring = ring;
    w->head = 0;
    w->cap = cap;
    return 0;
}

/* Adds amount at now_ms (after reserve_slot). */
static void push(struct window *w, int64_t now_ms, int64_t amount)
{
    struct slot *last = w->len > 0 ? at(w, w->len - 1) : NULL;
    if (last != NULL && last->t_ms >= now_ms)
        last->amount += amount; /* same millisecond */
    else {
        w->ring[(w->head + w->len) % w->cap] = (struct slot){now_ms, amount};
        w->len++;
    }
    w->sum += amount;
}

/* How long until `need` more fits under limit: the oldest entries leave first. */
static int64_t retry_ms(const struct window *w, int64_t need, int64_t limit, int64_t now_ms)
{
    if (need > limit)
        return -1;
    int64_t left = w->sum;
    for (size_t i = 0; i < w->len; i++) {
        left -= at(w, i)->amount;
        if (left + need <= limit)
            return at(w, i)->t_ms + RATELIMIT_WINDOW_MS - now_ms;
    }
    return 0;
}

static void status_of(const struct window *w, int64_t limit, int64_t now_ms,
                      struct ratelimit_status *st)
{
    st->limit = limit;
    st->remaining = limit - w->sum > 0 ? limit - w->sum : 0;
    st->reset_ms = w->len > 0 ? at(w, 0)->t_ms + RATELIMIT_WINDOW_MS - now_ms : 0;
}

struct ratelimit *ratelimit_new(void)
{
    struct ratelimit *rl = calloc(1, sizeof(*rl));
    if (rl != NULL && (rl->buckets = strmap_new()) == NULL) {
        free(rl);
        rl = NULL;
    }
    return rl;
}

static void bucket_free(void *p)
{
    struct rl_bucket *b = p;
    free(b->w[0].ring);
    free(b->w[1].ring);
    free(b);
}

void ratelimit_free(struct ratelimit *rl)
{
    if (rl == NULL)
        return;
    strmap_free(rl->buckets, bucket_free);
    free(rl);
}

/* The bucket named descriptor:value, created if need be (NULL: ENOMEM). */
static struct rl_bucket *bucket_for(struct ratelimit *rl, const struct ratelimit_ask *a)
{
    size_t dl = strlen(a->descriptor), vl = strlen(a->value);
    char *name = malloc(dl + vl + 2);
    if (name == NULL)
        return NULL;
    memcpy(name, a->descriptor, dl);
    name[dl] = ':';
    memcpy(name + dl + 1, a->value, vl + 1);
    struct rl_bucket *b = strmap_get(rl->buckets, name);
    int err = 0;
    if (b == NULL && (b = calloc(1, sizeof(*b))) != NULL) {
        strmap_put(rl->buckets, name, b, &err);
        if (err) {
            free(b);
            b = NULL;
        }
    }
    free(name);
    return b;
}

/* Would this request pass ask a's limits in bucket b? 0, or 1 and why. */
static int check(const struct rl_bucket *b, const struct ratelimit_ask *a, int64_t tokens,
                 int64_t now_ms, struct ratelimit_refusal *why)
{
    for (int k = RL_REQUESTS; k <= RL_TOKENS; k++) {
        int64_t limit = a->limit[k], need = k == RL_REQUESTS ? 1 : tokens;
        if (limit != RATELIMIT_NONE && b->w[k].sum + need > limit) {
            *why = (struct ratelimit_refusal){.kind = k, .limit = limit, .used = b->w[k].sum,
                                              .retry_ms = retry_ms(&b->w[k], need, limit, now_ms)};
            return 1;
        }
    }
    if (a->limit[RL_PARALLEL] != RATELIMIT_NONE && b->in_flight >= a->limit[RL_PARALLEL]) {
        *why = (struct ratelimit_refusal){.kind = RL_PARALLEL, .limit = a->limit[RL_PARALLEL],
                                          .used = b->in_flight, .retry_ms = -1};
        return 1;
    }
    return 0;
}

int ratelimit_take(struct ratelimit *rl, const struct ratelimit_ask *asks, size_t n,
                   int64_t tokens, int64_t now_ms, struct ratelimit_hold *holds,
                   struct ratelimit_status (*status)[RL_KINDS], struct ratelimit_refusal *why)
{
    struct rl_bucket *b[RATELIMIT_MAX_ASKS];
    if (n > RATELIMIT_MAX_ASKS)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if ((b[i] = bucket_for(rl, &asks[i])) == NULL)
            return -1;
        expire(&b[i]->w[RL_REQUESTS], now_ms);
        expire(&b[i]->w[RL_TOKENS], now_ms);
        if (reserve_slot(&b[i]->w[RL_REQUESTS]) < 0 || reserve_slot(&b[i]->w[RL_TOKENS]) < 0)
            return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (check(b[i], &asks[i], tokens, now_ms, why)) {
            why->ask = i;
            return 1;
        }
    /* every bucket is distinct (one per owner), so each takes once */
    for (size_t i = 0; i < n; i++) {
        const struct ratelimit_ask *a = &asks[i];
        holds[i] = (struct ratelimit_hold){.bucket = b[i], .t_ms = now_ms};
        push(&b[i]->w[RL_REQUESTS], now_ms, 1);
        if (a->limit[RL_TOKENS] != RATELIMIT_NONE) {
            push(&b[i]->w[RL_TOKENS], now_ms, tokens);
            holds[i].tokens = tokens;
            holds[i].tokens_held = true;
        }
        if (a->limit[RL_PARALLEL] != RATELIMIT_NONE) {
            b[i]->in_flight++;
            holds[i].parallel_held = true;
        }
        b[i]->holds++;
        if (status == NULL)
            continue;
        status_of(&b[i]->w[RL_REQUESTS], a->limit[RL_REQUESTS], now_ms, &status[i][RL_REQUESTS]);
        status_of(&b[i]->w[RL_TOKENS], a->limit[RL_TOKENS], now_ms, &status[i][RL_TOKENS]);
        int64_t pl = a->limit[RL_PARALLEL];
        status[i][RL_PARALLEL] = (struct ratelimit_status){
            .limit = pl, .remaining = pl > b[i]->in_flight ? pl - b[i]->in_flight : 0};
    }
    return 0;
}

/* The entry at t_ms, or NULL if it has left the window. */
static struct slot *find(struct window *w, int64_t t_ms)
{
    size_t lo = 0, hi = w->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (at(w, mid)->t_ms < t_ms)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < w->len && at(w, lo)->t_ms == t_ms ? at(w, lo) : NULL;
}

void ratelimit_settle(struct ratelimit *rl, struct ratelimit_hold *h, int64_t tokens)
{
    (void)rl;
    if (h->bucket == NULL || !h->tokens_held || h->settled)
        return;
    h->settled = true;
    struct window *w = &h->bucket->w[RL_TOKENS];
    struct slot *s = find(w, h->t_ms);
    if (s == NULL)
        return; /* already out of the window: nothing of it is counted */
    s->amount += tokens - h->tokens;
    w->sum += tokens - h->tokens;
    h->tokens = tokens;
}

void ratelimit_release(struct ratelimit *rl, struct ratelimit_hold *h)
{
    if (h->bucket == NULL)
        return;
    ratelimit_settle(rl, h, 0); /* no-op once settled */
    if (h->parallel_held)
        h->bucket->in_flight--;
    h->bucket->holds--;
    *h = (struct ratelimit_hold){0};
}

void ratelimit_sweep(struct ratelimit *rl, int64_t now_ms)
{
    size_t pos = 0;
    const char *name;
    void *v;
    /* deleting while iterating moves entries (linear probing): collect, then delete */
    char **gone = NULL;
    size_t n = 0, cap = 0;
    while (strmap_next(rl->buckets, &pos, &name, &v) == 0) {
        struct rl_bucket *b = v;
        expire(&b->w[RL_REQUESTS], now_ms);
        expire(&b->w[RL_TOKENS], now_ms);
        if (b->holds > 0 || b->w[RL_REQUESTS].len > 0 || b->w[RL_TOKENS].len > 0)
            continue;
        if (n == cap) {
            char **more = realloc(gone, (cap ? cap * 2 : 16) * sizeof(*gone));
            if (more == NULL)
                break; /* the rest go next sweep */
            gone = more;
            cap = cap ? cap * 2 : 16;
        }
        if ((gone[n] = strdup(name)) != NULL)
            n++;
    }
    for (size_t j = 0; j < n; j++) {
        bucket_free(strmap_del(rl->buckets, gone[j]));
        free(gone[j]);
    }
    free(gone);
}

size_t ratelimit_buckets(const struct ratelimit *rl)
{
    return strmap_count(rl->buckets);
}
