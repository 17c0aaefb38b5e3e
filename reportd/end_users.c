/* end_users.c - POST /global/spend/end_users: the end users with the highest
 * spend, in LiteLLM's shape [{"end_user", "total_count", "total_spend"}],
 * from the daily rollup (daily_spend), never the log rows.
 *
 * Body (optional, as in LiteLLM): api_key (raw or hash), startTime and
 * endTime (YYYY-MM-DD, or an RFC 3339 UTC time whose day is taken: the
 * rollup is daily, so whole UTC days are covered, the end day included);
 * the default range is the last 30 days through today, LiteLLM's. Bounded:
 * `limit` end users (1..1000, default 100, LiteLLM's fixed number). Requests
 * without an end user are no end user and are left out (LiteLLM lists them
 * as a null end user).
 */
#include <ctype.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "httpjson.h"
#include "input.h"
#include "keyhash.h"
#include "reportd.h"

#define BODY_MAX (64 * 1024)
#define LIMIT_MAX 1000
#define LIMIT_DEFAULT 100
#define DEFAULT_DAYS 30
#define DAY_S 86400

static int bad(struct evhttp_request *req, const char *name, const char *what)
{
    httpjson_error(req, 400, "invalid_request_error", name, "Invalid %s: %s", name, what);
    return -1;
}

/* Is s HH:MM:SS[.digits][Z|+00:00] (what may follow the date)? */
static bool utc_clock(const char *s)
{
    for (int i = 0; i < 8; i++)
        if ((i == 2 || i == 5) ? s[i] != ':' : !isdigit((unsigned char)s[i]))
            return false;
    s += 8;
    if (*s == '.') {
        if (!isdigit((unsigned char)*++s))
            return false;
        while (isdigit((unsigned char)*s))
            s++;
    }
    return strcmp(s, "") == 0 || strcmp(s, "Z") == 0 || strcmp(s, "+00:00") == 0;
}

/* The UTC day of a body time as Unix seconds at its midnight; def when absent. */
static int body_day(struct evhttp_request *req, json_t *body, const char *name, time_t def,
                    time_t *out)
{
    json_t *v = json_object_get(body, name);
    struct tm tm = {0}, check;
    char back[16];
    *out = def;
    if (v == NULL || json_is_null(v))
        return 0;
    const char *s = json_string_value(v);
    const char *end = s != NULL ? strptime(s, "%Y-%m-%d", &tm) : NULL;
    if (end == NULL || end - s != 10 ||
        (*end != '\0' && !((*end == 'T' || *end == ' ') && utc_clock(end + 1))))
        return bad(req, name, "must be a date (YYYY-MM-DD) or a UTC time (YYYY-MM-DDTHH:MM:SSZ)");
    *out = timegm(&tm);
    gmtime_r(out, &check);
    strftime(back, sizeof(back), "%Y-%m-%d", &check);
    if (strncmp(back, s, 10) != 0)
        return bad(req, name, "not a calendar date");
    return 0;
}

/* The body's filter: the days [from, to] as DATE text, the key's hash. */
struct end_user_filter {
    char from[16], to[16];
    char token[KEYHASH_HEX_LEN + 1];
    bool has_key;
    long limit;
};

static int read_body(struct evhttp_request *req, json_t *body, struct end_user_filter *f)
{
    time_t today = time(NULL) / DAY_S * DAY_S, start, end;
    const char *key = NULL;
    json_t *limit = json_object_get(body, "limit");
    if (input_str(req, body, "api_key", INPUT_ID_MAX, &key) < 0 ||
        body_day(req, body, "endTime", today, &end) < 0 ||
        body_day(req, body, "startTime", end - DEFAULT_DAYS * DAY_S, &start) < 0)
        return -1;
    if (start > end)
        return bad(req, "startTime", "must not be after endTime");
    f->limit = LIMIT_DEFAULT;
    if (limit != NULL && !json_is_null(limit)) {
        if (!json_is_integer(limit) || json_integer_value(limit) < 1 ||
            json_integer_value(limit) > LIMIT_MAX)
            return bad(req, "limit", "must be an integer from 1 to 1000");
        f->limit = (long)json_integer_value(limit);
    }
    if (key != NULL && keyhash_normalize(key, f->token) < 0) {
        httpjson_error(req, 500, "internal_error", NULL, "cannot hash the key");
        return -1;
    }
    f->has_key = key != NULL;
    strftime(f->from, sizeof(f->from), "%Y-%m-%d", gmtime_r(&start, &(struct tm){0}));
    strftime(f->to, sizeof(f->to), "%Y-%m-%d", gmtime_r(&end, &(struct tm){0}));
    return 0;
}

void spend_end_users(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    struct end_user_filter f = {0};
    struct db_result *r = NULL;
    char err[512];
    MYSQL *db;
    (void)who;
    /* no body at all is LiteLLM's default request */
    bool no_body = evbuffer_get_length(evhttp_request_get_input_buffer(req)) == 0;
    json_t *body = no_body ? json_object() : httpjson_body(req, BODY_MAX);
    if (body == NULL && no_body)
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
    if (body == NULL || read_body(req, body, &f) < 0 || (db = worker_db(w, req)) == NULL)
        goto out;
    struct db_param p[] = {DB_STR(f.from), DB_STR(f.to), DB_STR(f.has_key ? f.token : NULL),
                           DB_STR(f.has_key ? f.token : NULL), DB_I64(f.limit)};
    if (db_exec(db, "SELECT end_user, SUM(api_requests), SUM(spend) AS total FROM daily_spend"
                    " WHERE day >= ? AND day <= ? AND end_user IS NOT NULL"
                    " AND (? IS NULL OR api_key = ?)"
                    " GROUP BY end_user ORDER BY total DESC, end_user LIMIT ?",
                p, sizeof(p) / sizeof(p[0]), &r, NULL, NULL, err, sizeof(err)) < 0) {
        worker_db_failed(w, req, err);
        goto out;
    }
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < r->nrows; i++)
        json_array_append_new(list, json_pack("{s:s, s:o, s:o}", "end_user", db_cell(r, i, 0),
            "total_count", httpjson_int_text(db_cell(r, i, 1)),
            "total_spend", httpjson_money_text(db_cell(r, i, 2))));
    httpjson_reply(req, 200, list);
out:
    db_result_free(r);
    json_decref(body);
}
