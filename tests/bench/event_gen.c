/* event_gen.c - a load generator that speaks proxyd's side of the ZeroMQ
 * protocol to accountd, for the accountd benchmark (accountd_bench.py).
 *
 * It sends UsageEvent batches from a DEALER and counts the acks, like proxyd
 * but without HTTP: a population of --keys keys (key i belongs to internal
 * user bench-user-i and team bench-team-(i mod --teams); its hash is
 * SHA-256 of "bench-key-i"), --end-users end users (each the customer of
 * one application: end user u uses key u mod --keys) and --tags tags (each
 * event has one or two), priced as groq/llama-3.1-8b-instant.
 * --days D (default 1): each event starts on one of the last D UTC days,
 * drawn at random (today included), for report tests that need history.
 * --seed N: the draws' seed (default: the time), printed on stderr so a
 * test's failure can be drawn again.
 *
 *   --rate 0 (default): as fast as accountd acks, with at most --window
 *     events unacknowledged; prints the committed events per second.
 *   --rate R: R events per second for --seconds; prints the time from
 *     sending an event to its ack (accountd acks after the commit), p50/p99.
 *
 * Output: one JSON line on stdout. Exit 0 when every event was acked.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "events.pb-c.h"
#include "ids.h"
#include "keyhash.h"
#include "tool_curve.h"

#define ACK_WAIT_MS 30000 /* give up when no ack came for this long */

struct opts {
    const char *endpoint;
    long events, batch, window, rate, seconds, keys, teams, end_users, tags;
    long days;
};

struct gen {
    struct opts o;
    void *ctx, *sock;
    char (*tokens)[KEYHASH_HEX_LEN + 1];
    char **ids;           /* request id of each event, by sequence number */
    double *sent_at;      /* when each was sent (rate mode) */
    double *lag;          /* ack - send, per acked event (rate mode) */
    size_t n_lag;
    long sent, acked;
    unsigned rnd;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static unsigned next_rand(struct gen *g)
{
    g->rnd = g->rnd * 1103515245u + 12345u;
    return g->rnd >> 8;
}

/* Fills event number seq (strings point into static buffers of the caller). */
static void make_event(struct gen *g, long seq, Tollgate__UsageEvent *e, char *user, char *team,
                       char *end_user, char **tags, char tagbuf[2][32])
{
    /* an end user is a customer of one application: end user u uses key u mod --keys */
    long u = (long)(next_rand(g) % (unsigned)g->o.end_users), k = u % g->o.keys;
    tollgate__usage_event__init(e);
    e->request_id = g->ids[seq];
    e->call_type = "chat_completion";
    e->start_time_us = wall_us() - 1500;
    if (g->o.days > 1)
        e->start_time_us -= (int64_t)(next_rand(g) % (unsigned)g->o.days) * 86400 * 1000000;
    e->end_time_us = e->start_time_us + 1400;
    e->api_key = g->tokens[k];
    snprintf(user, 32, "bench-user-%ld", k);
    snprintf(team, 32, "bench-team-%ld", k % g->o.teams);
    snprintf(end_user, 32, "bench-customer-%ld", u);
    e->user_id = user;
    e->team_id = team;
    e->end_user = end_user;
    e->n_tags = 1 + next_rand(g) % 2;
    for (size_t t = 0; t < e->n_tags; t++) {
        snprintf(tagbuf[t], 32, "bench-tag-%u", next_rand(g) % (unsigned)g->o.tags);
        tags[t] = tagbuf[t];
    }
    e->tags = tags;
    e->metadata_json = "{}";
    e->model_group = "llama3";
    e->model = "groq/llama-3.1-8b-instant";
    e->api_base = "http://127.0.0.1/v1";
    e->has_prompt_tokens = e->has_completion_tokens = e->has_total_tokens = 1;
    e->prompt_tokens = 100 + next_rand(g) % 900;
    e->completion_tokens = 50 + next_rand(g) % 450;
    e->total_tokens = e->prompt_tokens + e->completion_tokens;
    e->http_status = next_rand(g) % 50 == 0 ? 500 : 200;
}

/* Sends events [seq, seq + n) as one EventBatch. */
static int send_batch(struct gen *g, long seq, long n)
{
    Tollgate__UsageEvent *ev = calloc((size_t)n, sizeof(*ev));
    Tollgate__UsageEvent **ptrs = calloc((size_t)n, sizeof(*ptrs));
    char (*users)[32] = calloc((size_t)n, 32), (*teams)[32] = calloc((size_t)n, 32),
         (*ends)[32] = calloc((size_t)n, 32), (*tagbuf)[2][32] = calloc((size_t)n, 64);
    char *(*tags)[2] = calloc((size_t)n, sizeof(*tags));
    int rc = -1;
    if (ev == NULL || ptrs == NULL || users == NULL || teams == NULL || ends == NULL ||
        tagbuf == NULL || tags == NULL)
        goto out;
    for (long i = 0; i < n; i++) {
        make_event(g, seq + i, &ev[i], users[i], teams[i], ends[i], tags[i], tagbuf[i]);
        ptrs[i] = &ev[i];
    }
    Tollgate__EventBatch b = TOLLGATE__EVENT_BATCH__INIT;
    b.n_events = (size_t)n;
    b.events = ptrs;
    size_t len = tollgate__event_batch__get_packed_size(&b);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL)
        goto out;
    tollgate__event_batch__pack(&b, buf);
    rc = zmq_send(g->sock, buf, len, 0) < 0 ? -1 : 0;
    free(buf);
    if (rc == 0 && g->sent_at != NULL)
        for (long i = 0; i < n; i++)
            g->sent_at[seq + i] = now_s();
out:
    free(ev);
    free(ptrs);
    free(users);
    free(teams);
    free(ends);
    free(tagbuf);
    free(tags);
    return rc;
}

/* Request ids are "<uuid7>" and map back to their sequence number by a
 * suffix we control: the last 12 hex digits are replaced by seq. */
static long seq_of(const char *id)
{
    size_t len = strlen(id);
    return len == IDS_UUID_LEN ? strtol(id + 24, NULL, 16) : -1;
}

/* Receives acks for up to wait_ms; returns how many events they acked. */
static long take_acks(struct gen *g, int wait_ms)
{
    zmq_pollitem_t item = {g->sock, 0, ZMQ_POLLIN, 0};
    long got = 0;
    while (zmq_poll(&item, 1, got == 0 ? wait_ms : 0) == 1) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, g->sock, 0) >= 0) {
            Tollgate__EventAck *ack = tollgate__event_ack__unpack(NULL, zmq_msg_size(&msg),
                                                                  zmq_msg_data(&msg));
            double t = now_s();
            for (size_t i = 0; ack != NULL && i < ack->n_request_ids; i++) {
                long s = seq_of(ack->request_ids[i]);
                if (s >= 0 && s < g->o.events && g->ids[s] != NULL && g->ids[s][0] != '\0') {
                    g->ids[s][0] = '\0'; /* acked once: a repeat ack counts nothing */
                    if (g->lag != NULL)
                        g->lag[g->n_lag++] = t - g->sent_at[s];
                    got++;
                }
            }
            tollgate__event_ack__free_unpacked(ack, NULL);
        }
        zmq_msg_close(&msg);
    }
    g->acked += got;
    return got;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    return n == 0 ? 0 : v[(size_t)((double)(n - 1) * p / 100.0)];
}

static int run(struct gen *g)
{
    double t0 = now_s(), last_ack = t0;
    long seq = 0;
    while (g->acked < g->o.events) {
        long room = g->o.window - (g->sent - g->acked);
        if (g->o.rate > 0) { /* paced: what is due by now */
            long due = (long)((now_s() - t0) * (double)g->o.rate) + 1;
            room = due - g->sent;
        }
        while (seq < g->o.events && room > 0) {
            long n = g->o.batch < room ? g->o.batch : room;
            n = n < g->o.events - seq ? n : g->o.events - seq;
            if (send_batch(g, seq, n) < 0)
                return -1;
            seq += n;
            g->sent += n;
            room -= n;
        }
        if (take_acks(g, g->o.rate > 0 ? 1 : 100) > 0)
            last_ack = now_s();
        else if (now_s() - last_ack > ACK_WAIT_MS / 1000.0)
            break;
    }
    double secs = now_s() - t0;
    printf("{\"sent\": %ld, \"acked\": %ld, \"seconds\": %.3f, \"events_per_s\": %.0f", g->sent,
           g->acked, secs, (double)g->acked / secs);
    if (g->lag != NULL) {
        qsort(g->lag, g->n_lag, sizeof(double), cmp_double);
        printf(", \"lag_p50_ms\": %.2f, \"lag_p99_ms\": %.2f, \"lag_max_ms\": %.2f",
               pct(g->lag, g->n_lag, 50) * 1000, pct(g->lag, g->n_lag, 99) * 1000,
               pct(g->lag, g->n_lag, 100) * 1000);
    }
    printf("}\n");
    return g->acked == g->o.events ? 0 : 1;
}

static int setup(struct gen *g)
{
    g->tokens = calloc((size_t)g->o.keys, sizeof(*g->tokens));
    g->ids = calloc((size_t)g->o.events, sizeof(*g->ids));
    if (g->tokens == NULL || g->ids == NULL)
        return -1;
    for (long i = 0; i < g->o.keys; i++) {
        char raw[32];
        int n = snprintf(raw, sizeof(raw), "bench-key-%ld", i);
        if (keyhash_sha256_hex(raw, (size_t)n, g->tokens[i]) < 0)
            return -1;
    }
    for (long i = 0; i < g->o.events; i++) { /* uuid7, with seq in its last 12 digits */
        if ((g->ids[i] = malloc(IDS_UUID_LEN + 1)) == NULL || ids_uuid7(g->ids[i]) < 0)
            return -1;
        snprintf(g->ids[i] + 24, 13, "%012lx", (unsigned long)i & 0xffffffffffffUL);
    }
    if (g->o.rate > 0 && ((g->sent_at = calloc((size_t)g->o.events, sizeof(double))) == NULL ||
                          (g->lag = calloc((size_t)g->o.events, sizeof(double))) == NULL))
        return -1;
    int linger = 0;
    return (g->ctx = zmq_ctx_new()) != NULL && (g->sock = zmq_socket(g->ctx, ZMQ_DEALER)) != NULL &&
           zmq_setsockopt(g->sock, ZMQ_LINGER, &linger, sizeof(linger)) == 0 &&
           tool_curve_client(g->sock) == 0 && zmq_connect(g->sock, g->o.endpoint) == 0 ? 0 : -1;
}

/* Everything setup made (a leak-checked run must end clean). */
static void teardown(struct gen *g)
{
    if (g->sock != NULL)
        zmq_close(g->sock);
    if (g->ctx != NULL)
        zmq_ctx_term(g->ctx);
    for (long i = 0; g->ids != NULL && i < g->o.events; i++)
        free(g->ids[i]);
    free(g->ids);
    free(g->tokens);
    free(g->sent_at);
    free(g->lag);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"events", required_argument, NULL, 'n'}, {"batch", required_argument, NULL, 'b'},
        {"window", required_argument, NULL, 'w'}, {"rate", required_argument, NULL, 'r'},
        {"seconds", required_argument, NULL, 's'}, {"keys", required_argument, NULL, 'k'},
        {"teams", required_argument, NULL, 't'}, {"end-users", required_argument, NULL, 'e'},
        {"tags", required_argument, NULL, 'g'},
        {"days", required_argument, NULL, 'd'}, {"seed", required_argument, NULL, 'S'}, {0}};
    struct gen g = {.o = {.events = 100000, .batch = 500, .window = 20000, .keys = 1000,
                          .teams = 50, .end_users = 5000, .tags = 10,
                          .days = 1},
                    .rnd = (unsigned)time(NULL)};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        long v = optarg != NULL ? strtol(optarg, NULL, 10) : 0;
        switch (c) {
        case 'n': g.o.events = v; break;
        case 'b': g.o.batch = v; break;
        case 'w': g.o.window = v; break;
        case 'r': g.o.rate = v; break;
        case 's': g.o.seconds = v; break;
        case 'k': g.o.keys = v; break;
        case 't': g.o.teams = v; break;
        case 'e': g.o.end_users = v; break;
        case 'g': g.o.tags = v; break;
        case 'd': g.o.days = v; break;
        case 'S': g.rnd = (unsigned)strtoul(optarg, NULL, 10); break;
        default: return 2;
        }
    }
    if (optind + 1 != argc || g.o.batch < 1 || g.o.window < 1 || g.o.keys < 1 ||
        g.o.teams < 1 || g.o.end_users < 1 || g.o.tags < 1 || g.o.rate < 0 || g.o.days < 1) {
        fprintf(stderr, "usage: event-gen [--events N | --rate R --seconds S] [--batch B] "
                        "[--window W] [--keys K] [--teams T] [--end-users E] [--tags G] [--days D] "
                        "[--seed N] ENDPOINT\n");
        return 2;
    }
    g.o.endpoint = argv[optind];
    fprintf(stderr, "event-gen: seed %u\n", g.rnd);
    if (g.o.rate > 0 && g.o.seconds > 0)
        g.o.events = g.o.rate * g.o.seconds;
    int rc = 2;
    if (g.o.events < 1 || setup(&g) < 0)
        fprintf(stderr, "event-gen: cannot set up (%s)\n", zmq_strerror(zmq_errno()));
    else
        rc = run(&g);
    teardown(&g);
    return rc;
}
