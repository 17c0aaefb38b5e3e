/* event_check.c - the checks of a usage event's values, before it is priced.
 *
 * Events come from proxyd over an authenticated socket, but accountd still
 * trusts none of their values: a bug, a bad spool record or a stolen client
 * key must not be able to credit a key (a negative price or count), write
 * a row no report can show (a time in 1970 or next year), or collide with
 * another request's id. What fails goes to rejected_events with the reason,
 * never silently into the ledger. Column widths are ledger_rows.c's misfit().
 */
#include "event_check.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "money.h"

#define COUNT_MAX 1000000000000LL          /* 10^12 tokens or images: beyond any request */
#define TIME_MIN_US 946684800000000LL      /* 2000-01-01T00:00:00Z */
#define FUTURE_SLACK_US (86400LL * 1000000) /* clocks of proxyd and accountd may differ */
#define DURATION_MAX_US (7LL * 86400 * 1000000) /* a request (or background response) */

/* Request ids are proxyd's UUIDs or a client's id: letters, digits and ._:- */
static bool id_form(const char *s)
{
    static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-";
    return s[0] != '\0' && s[strspn(s, ok)] == '\0';
}

/* A key hash is SHA-256 in lowercase hex; "" is the master key. */
static bool key_form(const char *s)
{
    return s == NULL || s[0] == '\0' ||
           (strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64);
}

static const char *counts_check(const Tollgate__UsageEvent *e)
{
    const struct {
        int64_t v;
        const char *why;
    } counts[] = {
#define COUNT(f) {e->f, #f " is negative or above 10^12"}
        COUNT(prompt_tokens), COUNT(completion_tokens), COUNT(total_tokens),
        COUNT(cache_read_tokens), COUNT(cache_creation_tokens), COUNT(cache_creation_1h_tokens),
        COUNT(prompt_audio_tokens), COUNT(prompt_image_tokens), COUNT(reasoning_tokens),
        COUNT(completion_audio_tokens), COUNT(completion_image_tokens),
        COUNT(web_search_requests), COUNT(images), COUNT(image_width), COUNT(image_height),
#undef COUNT
    };
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        if (counts[i].v < 0 || counts[i].v > COUNT_MAX)
            return counts[i].why;
    return NULL;
}

/* A custom price must be what the config loader accepts: a non-negative decimal. */
static bool price_ok(const char *s)
{
    money_t m;
    return s == NULL || (money_parse(s, &m) == 0 && m >= 0);
}

const char *event_check(const Tollgate__UsageEvent *e, int64_t now_us)
{
    const char *why = counts_check(e);
    if (why != NULL)
        return why;
    if (!price_ok(e->input_cost_per_token) || !price_ok(e->output_cost_per_token))
        return "a custom price per token is negative or not a decimal";
    if (!id_form(e->request_id))
        return "request_id has characters other than letters, digits and ._:-";
    if (!key_form(e->api_key))
        return "api_key is not a SHA-256 hex digest";
    if (e->start_time_us < TIME_MIN_US || e->start_time_us > now_us + FUTURE_SLACK_US)
        return "start_time is before 2000 or more than a day ahead of accountd's clock";
    /* start is bounded above, so start + DURATION_MAX_US cannot overflow */
    if (e->end_time_us < e->start_time_us || e->end_time_us > e->start_time_us + DURATION_MAX_US)
        return "end_time is before start_time or more than 7 days after it";
    if (e->metadata_json != NULL && strlen(e->metadata_json) > EVENT_METADATA_MAX)
        return "metadata is larger than 1 MiB";
    if (e->n_tags > EVENT_TAGS_MAX)
        return "more than 256 tags";
    return NULL;
}
