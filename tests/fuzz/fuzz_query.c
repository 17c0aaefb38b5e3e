/* fuzz_query.c - reportd's request input (input.c): the query string
 * parser and its getters on any request URI, then the body getters on a
 * JSON body (the input's second piece, after "\n--\n").
 *
 * A libevent request cannot be given a URI without a connection, so this
 * file defines the two libevent calls input.c reaches that need one:
 * evhttp_request_get_uri answers the fuzz input, and (fuzz_common.c) the
 * reply functions only drop the answer. The parser's own code runs
 * unchanged. */
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "input.h"

static const char *fuzz_uri;

const char *evhttp_request_get_uri(const struct evhttp_request *req)
{
    (void)req;
    return fuzz_uri;
}

/* The getters the report routes call, on the parsed query. */
static void query_getters(struct evhttp_request *req, struct query *q)
{
    static const char *const known[] = {"start_date", "end_date", "page", "page_size",
                                        "user_id", "api_key", NULL};
    const char *s;
    time_t t;
    bool present;
    long n;
    char from[DB_DATETIME_MAX], to[DB_DATETIME_MAX];
    (void)query_str(req, q, "user_id", 255, &s);
    (void)query_str(req, q, "api_key", 8, &s);
    (void)query_date(req, q, "start_date", false, &t, &present);
    (void)query_date_range(req, q, false, from, to, &present);
    (void)query_date_range(req, q, true, from, to, &present);
    (void)query_int(req, q, "page", 1, 1000000, 1, &n);
    (void)query_int(req, q, "page_size", -5, 100, 50, &n);
    (void)query_only(req, q, known);
}

/* The getters the management routes call, on a JSON body. */
static void body_getters(struct evhttp_request *req, json_t *body)
{
    const char *s;
    char money[MONEY_STR_MAX], *dump;
    bool present, b;
    int64_t n;
    json_t *ids;
    struct period p;
    (void)input_str(req, body, "key_alias", INPUT_ID_MAX, &s);
    (void)input_money(req, body, "max_budget", money, &present);
    (void)input_bool(req, body, "blocked", &b);
    (void)input_int(req, body, "tpm_limit", 0, INT64_MAX, &n, &present);
    (void)input_id_list(req, body, "keys", 100, &ids);
    (void)input_duration(req, body, "budget_duration", &p, &s);
    if (input_str_list(req, body, "models", &dump) == 0)
        free(dump);
    if (input_object(req, body, "metadata", &dump) == 0)
        free(dump);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *piece;
    size_t len;
    fuzz_next_piece(&data, &size, &piece, &len);
    char *uri = fuzz_text(piece, len);
    struct evhttp_request *req = evhttp_request_new(NULL, NULL);
    if (req == NULL)
        abort();
    fuzz_uri = uri;
    struct query *q = query_parse(req);
    if (q != NULL)
        query_getters(req, q);
    query_free(q);
    json_t *body = size > 0 ? json_loadb((const char *)data, size, 0, NULL) : NULL;
    if (body != NULL)
        body_getters(req, body);
    json_decref(body);
    fuzz_uri = NULL;
    evhttp_request_free(req);
    free(uri);
    return 0;
}
