/* background.c - the cost of a background response (the Responses API's
 * background: true), billed when a retrieve or cancel shows it ended.
 *
 * The request that created it is in the ledger at 0: its answer had no
 * usage yet. When proxyd relays an answer showing the response ended
 * (completed, incomplete, failed or cancelled) with its usage, it reads
 * that request's ledger row on the keystore's MariaDB thread and publishes
 * one usage event for the usage, owned as the row is (key, user, team, end
 * user, tags, metadata), whoever retrieved it. Its request id is derived
 * from the creating one, so however many retrieves show the ending, the
 * ledger keeps one row. When the row is not in the ledger yet (accountd
 * behind), it is looked for again every second for a minute; after that a
 * later retrieve bills it.
 */
#include "background.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "event.h"
#include "events.pb-c.h"
#include "keyhash.h"
#include "keystore.h"
#include "log.h"
#include "protocol.h"
#include "publish.h"
#include "reload.h"
#include "usage.h"

#define LOOKS_MAX 60
#define LOOK_AGAIN_MS 1000

static const char SQL_CREATOR[] =
    "SELECT api_key, key_alias, user, team_id, end_user, request_tags, metadata"
    " FROM spend_logs WHERE request_id = ?";

struct bill {
    struct keystore_job base; /* first: the worker queues it */
    struct proxy *px;
    struct generation *gen;   /* holds d */
    const struct deployment *d;
    char creator[IDS_UUID_LEN + 1];
    char request_id[IDS_UUID_LEN + 1];
    struct usage usage;
    int64_t start_us, end_us;
    bool found;
    char *cells[7];           /* the row's api_key ... metadata */
    struct event *again;
    int looks;
    struct bill *prev, *next; /* px->bills: the bills not settled yet */
};

static void bill_free(struct bill *b)
{
    if (b->prev != NULL)
        b->prev->next = b->next;
    else
        b->px->bills = b->next;
    if (b->next != NULL)
        b->next->prev = b->prev;
    for (size_t i = 0; i < 7; i++)
        free(b->cells[i]);
    if (b->again != NULL)
        event_free(b->again);
    generation_unref(b->gen);
    free(b);
}

/* Worker thread: the creating request's row. */
static void fetch_creator(struct keystore_job *base, MYSQL **db, const struct config *cfg)
{
    struct bill *b = (struct bill *)base;
    struct db_result *r = NULL;
    struct db_param p[] = {DB_STR(b->creator)};
    base->ok = false;
    if (keystore_query(db, cfg, SQL_CREATOR, p, 1, &r, base) < 0)
        return;
    base->ok = true;
    b->found = r->nrows == 1;
    for (size_t i = 0; b->found && i < 7; i++) {
        const char *v = db_cell(r, 0, i);
        free(b->cells[i]); /* a look again replaces what an earlier one read */
        b->cells[i] = NULL;
        if (v != NULL && (b->cells[i] = strdup(v)) == NULL) {
            base->ok = false;
            snprintf(base->error, sizeof(base->error), "out of memory");
        }
    }
    db_result_free(r);
}

/* The usage event, owned as the creating request's row. */
static void publish(struct bill *b)
{
    Tollgate__UsageEvent e = TOLLGATE__USAGE_EVENT__INIT;
    char in_price[MONEY_STR_MAX], out_price[MONEY_STR_MAX];
    json_t *tags = b->cells[5] != NULL ? json_loads(b->cells[5], 0, NULL) : NULL;
    size_t ntags = json_array_size(tags), n = 0;
    char *tagv[ntags ? ntags : 1];
    for (size_t i = 0; i < ntags; i++)
        if (json_is_string(json_array_get(tags, i)))
            tagv[n++] = (char *)json_string_value(json_array_get(tags, i));
    e.request_id = b->request_id;
    e.call_type = "responses";
    e.start_time_us = b->start_us;
    e.end_time_us = b->end_us;
    e.api_key = b->cells[0] != NULL ? b->cells[0] : "";
    e.key_alias = b->cells[1];
    e.user_id = b->cells[2];
    e.team_id = b->cells[3];
    e.end_user = b->cells[4];
    e.metadata_json = b->cells[6];
    e.n_tags = n;
    e.tags = tagv;
    e.model_group = b->d->model_name;
    event_fill_deployment(&e, b->d, in_price, out_price);
    event_fill_usage(&e, &b->usage);
    e.http_status = 200;
    size_t len = tollgate__usage_event__get_packed_size(&e);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL || (tollgate__usage_event__pack(&e, buf),
                        publisher_send(b->px->pub, b->request_id, buf, len)) < 0)
        log_error("request %s: out of memory queueing the background response's usage",
                  b->request_id);
    else
        log_request(LOG_INFO, b->request_id, "background response of request %s ended: "
                    "billed", b->creator);
    free(buf);
    json_decref(tags);
}

static void on_again(evutil_socket_t fd, short what, void *arg)
{
    struct bill *b = arg;
    (void)fd, (void)what;
    keystore_submit(b->px->keys, &b->base);
}

/* Loop thread: the row arrived, is not there yet, or could not be read. */
static void finish(struct keystore_job *base)
{
    struct bill *b = (struct bill *)base;
    struct timeval tv = {LOOK_AGAIN_MS / 1000, (LOOK_AGAIN_MS % 1000) * 1000};
    if (base->ok && b->found) {
        publish(b);
        bill_free(b);
        return;
    }
    if (++b->looks < LOOKS_MAX && b->px->drain == NULL &&
        (b->again != NULL || (b->again = evtimer_new(b->px->base, on_again, b)) != NULL) &&
        evtimer_add(b->again, &tv) == 0)
        return;
    log_warn("request %s: its background response ended, but the request is %s; a later "
             "retrieve bills it", b->creator, base->ok ? "not in the ledger yet"
                                                       : "unreadable (database unreachable)");
    bill_free(b);
}

/* A uuid derived from the creating request's, for the billing event. */
static int derived_id(const char *creator, char out[IDS_UUID_LEN + 1])
{
    char seed[64], hex[KEYHASH_HEX_LEN + 1];
    int n = snprintf(seed, sizeof(seed), "background:%s", creator);
    if (keyhash_sha256_hex(seed, (size_t)n, hex) < 0)
        return -1;
    snprintf(out, IDS_UUID_LEN + 1, "%.8s-%.4s-8%.3s-%.4s-%.12s", hex, hex + 8, hex + 13,
             hex + 16, hex + 20);
    return 0;
}

static bool ended(const char *status)
{
    static const char *const ENDED[] = {"completed", "incomplete", "failed", "cancelled", NULL};
    for (size_t i = 0; status != NULL && ENDED[i] != NULL; i++)
        if (strcmp(status, ENDED[i]) == 0)
            return true;
    return false;
}

static int64_t unix_us(const json_t *v, int64_t fallback)
{
    return json_is_integer(v) && json_integer_value(v) > 0 ? json_integer_value(v) * 1000000
                                                            : fallback;
}

void background_bill(struct proxy *px, struct generation *gen, const struct deployment *d,
                     const char *creator, const json_t *response)
{
    struct timeval now;
    if (creator[0] == '\0' || !json_is_true(json_object_get(response, "background")) ||
        !ended(json_string_value(json_object_get(response, "status"))) ||
        !json_is_object(json_object_get(response, "usage")))
        return;
    struct bill *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        log_error("request %s: out of memory billing its background response", creator);
        return;
    }
    gettimeofday(&now, NULL);
    *b = (struct bill){.base = {.run = fetch_creator, .finish = finish, .ok = true},
                       .px = px, .gen = generation_ref(gen), .d = d};
    snprintf(b->creator, sizeof(b->creator), "%s", creator);
    int64_t now_us = (int64_t)now.tv_sec * 1000000 + now.tv_usec;
    b->start_us = unix_us(json_object_get(response, "created_at"), now_us);
    b->end_us = unix_us(json_object_get(response, "completed_at"), now_us);
    if (derived_id(creator, b->request_id) < 0 || responses_usage(response, &b->usage) < 0) {
        log_warn("request %s: its background response ended without usable usage", creator);
        generation_unref(b->gen); /* not linked yet: bill_free would unlink it */
        free(b);
        return;
    }
    usage_note_answer(response, &b->usage);
    b->next = px->bills;
    if (px->bills != NULL)
        px->bills->prev = b;
    px->bills = b;
    keystore_submit(px->keys, &b->base);
}

void background_stop(struct proxy *px)
{
    while (px->bills != NULL) {
        log_warn("request %s: stopping before its background response was billed; a later "
                 "retrieve bills it", px->bills->creator);
        bill_free(px->bills);
    }
}
