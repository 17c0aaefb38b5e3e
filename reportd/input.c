/* input.c - checked access to JSON bodies and query strings (see input.h). */
#include "input.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "httpjson.h"

#define QUERY_MAX_BYTES 8192

static int bad(struct evhttp_request *req, const char *name, const char *what)
{
    httpjson_error(req, 400, "invalid_request_error", name, "Invalid %s: %s", name, what);
    return -1;
}

int input_str(struct evhttp_request *req, json_t *body, const char *name, size_t max,
              const char **out)
{
    json_t *v = json_object_get(body, name);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return bad(req, name, "must be a string");
    size_t len = json_string_length(v);
    if (len == 0 || len > max || memchr(json_string_value(v), '\0', len) != NULL)
        return bad(req, name, "must be a non-empty string without NUL bytes, of bounded length");
    *out = json_string_value(v);
    return 0;
}

int input_money(struct evhttp_request *req, json_t *body, const char *name,
                char out[MONEY_STR_MAX], bool *present)
{
    json_t *v = json_object_get(body, name);
    money_t m;
    *present = false;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_number(v) || money_from_double(json_number_value(v), &m) < 0 || m < 0)
        return bad(req, name, "must be a non-negative number");
    money_format(m, out);
    *present = true;
    return 0;
}

int input_bool(struct evhttp_request *req, json_t *body, const char *name, bool *out)
{
    json_t *v = json_object_get(body, name);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return bad(req, name, "must be true or false");
    *out = json_is_true(v);
    return 0;
}

int input_int(struct evhttp_request *req, json_t *body, const char *name, int64_t min,
              int64_t max, int64_t *out, bool *present)
{
    json_t *v = json_object_get(body, name);
    *present = false;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        httpjson_error(req, 400, "invalid_request_error", name,
                       "Invalid %s: must be an integer from %lld to %lld", name, (long long)min,
                       (long long)max);
        return -1;
    }
    *out = json_integer_value(v);
    *present = true;
    return 0;
}

int input_id_list(struct evhttp_request *req, json_t *body, const char *name, size_t max,
                  json_t **out)
{
    json_t *v = json_object_get(body, name);
    bool ok = json_is_array(v) && json_array_size(v) > 0 && json_array_size(v) <= max;
    for (size_t i = 0; ok && i < json_array_size(v); i++) {
        json_t *item = json_array_get(v, i);
        ok = json_is_string(item) && json_string_length(item) > 0 &&
             json_string_length(item) <= INPUT_ID_MAX &&
             memchr(json_string_value(item), '\0', json_string_length(item)) == NULL;
    }
    if (!ok) {
        httpjson_error(req, 400, "invalid_request_error", name,
                       "Invalid %s: required, a list of 1 to %zu non-empty strings of at most %d"
                       " bytes", name, max, INPUT_ID_MAX);
        return -1;
    }
    *out = v;
    return 0;
}

int input_duration(struct evhttp_request *req, json_t *body, const char *name,
                   struct period *out, const char **text)
{
    *text = NULL;
    if (input_str(req, body, name, 16, text) < 0)
        return -1;
    if (*text != NULL && period_parse(*text, out) < 0) {
        *text = NULL;
        return bad(req, name, "must be a duration: Ns, Nm, Nh, Nd, Nw or Nmo (N >= 1)");
    }
    return 0;
}

int input_str_list(struct evhttp_request *req, json_t *body, const char *name, char **out)
{
    json_t *v = json_object_get(body, name), *item;
    size_t i;
    if (v == NULL || json_is_null(v)) {
        *out = strdup("[]");
        return *out != NULL ? 0 : bad(req, name, "out of memory");
    }
    if (!json_is_array(v))
        return bad(req, name, "must be a list of strings");
    json_array_foreach(v, i, item) {
        if (!json_is_string(item) || json_string_length(item) > INPUT_ID_MAX ||
            memchr(json_string_value(item), '\0', json_string_length(item)) != NULL)
            return bad(req, name, "must be a list of strings without NUL bytes, of bounded length");
    }
    *out = json_dumps(v, JSON_COMPACT);
    return *out != NULL ? 0 : bad(req, name, "out of memory");
}

int input_object(struct evhttp_request *req, json_t *body, const char *name, char **out)
{
    json_t *v = json_object_get(body, name);
    if (v == NULL || json_is_null(v)) {
        *out = strdup("{}");
        return *out != NULL ? 0 : bad(req, name, "out of memory");
    }
    if (!json_is_object(v))
        return bad(req, name, "must be an object");
    *out = json_dumps(v, JSON_COMPACT);
    return *out != NULL ? 0 : bad(req, name, "out of memory");
}

/* Query parameters decoded by hand rather than by evhttp_parse_query_str,
 * which cuts a value at a %00 and keeps only the first of two. */
struct qparam {
    char *name, *value;
    size_t len; /* of value, which may hold NUL bytes */
};

struct query {
    struct qparam *p;
    size_t n;
};

/* Adds one name=value piece; -1 when it is malformed or out of memory. */
static int query_add(struct query *q, char *piece)
{
    char *eq = strchr(piece, '=');
    if (eq == NULL || eq == piece)
        return -1;
    *eq = '\0';
    struct qparam *grown = realloc(q->p, (q->n + 1) * sizeof(*q->p));
    if (grown == NULL)
        return -1;
    q->p = grown;
    struct qparam *p = &q->p[q->n];
    p->name = evhttp_uridecode(piece, 1, NULL);
    p->value = evhttp_uridecode(eq + 1, 1, &p->len);
    if (p->name == NULL || p->value == NULL) {
        free(p->name);
        free(p->value);
        return -1;
    }
    q->n++;
    return 0;
}

struct query *query_parse(struct evhttp_request *req)
{
    struct query *q = calloc(1, sizeof(*q));
    const char *uri = evhttp_request_get_uri(req);
    const char *qs = uri != NULL ? strchr(uri, '?') : NULL;
    char *copy = NULL, *save = NULL;
    if (q == NULL || (qs != NULL && (copy = strdup(qs + 1)) == NULL)) {
        free(q);
        httpjson_error(req, 500, "internal_error", NULL, "out of memory");
        return NULL;
    }
    if (copy != NULL && strlen(copy) > QUERY_MAX_BYTES) {
        httpjson_error(req, 414, "invalid_request_error", NULL, "Query string too long");
        goto fail;
    }
    char *end = copy != NULL ? strchr(copy, '#') : NULL;
    if (end != NULL)
        *end = '\0';
    for (char *piece = copy != NULL ? strtok_r(copy, "&", &save) : NULL; piece != NULL;
         piece = strtok_r(NULL, "&", &save)) {
        if (query_add(q, piece) < 0) {
            httpjson_error(req, 400, "invalid_request_error", NULL, "Malformed query string");
            goto fail;
        }
    }
    free(copy);
    return q;
fail:
    free(copy);
    query_free(q);
    return NULL;
}

void query_free(struct query *q)
{
    if (q == NULL)
        return;
    for (size_t i = 0; i < q->n; i++) {
        free(q->p[i].name);
        free(q->p[i].value);
    }
    free(q->p);
    free(q);
}

int query_str(struct evhttp_request *req, struct query *q, const char *name, size_t max,
              const char **out)
{
    const struct qparam *found = NULL;
    *out = NULL;
    for (size_t i = 0; i < q->n; i++) {
        if (strcmp(q->p[i].name, name) != 0)
            continue;
        if (found != NULL) /* which one would it be? */
            return bad(req, name, "given more than once");
        found = &q->p[i];
    }
    if (found == NULL || found->len == 0)
        return 0;
    if (memchr(found->value, '\0', found->len) != NULL)
        return bad(req, name, "must not contain NUL bytes");
    if (httpjson_utf8_prefix(found->value, found->len) != found->len)
        return bad(req, name, "must be UTF-8");
    if (found->len > max)
        return bad(req, name, "too long");
    *out = found->value;
    return 0;
}

int query_only(struct evhttp_request *req, struct query *q, const char *const *names)
{
    for (size_t i = 0; i < q->n; i++) {
        size_t k = 0;
        while (names[k] != NULL && strcmp(names[k], q->p[i].name) != 0)
            k++;
        if (names[k] == NULL) {
            /* the name is the client's: named back only when it is short UTF-8 */
            const char *name = q->p[i].name;
            size_t len = strlen(name);
            bool fit = len <= 100 && httpjson_utf8_prefix(name, len) == len;
            httpjson_error(req, 400, "invalid_request_error", fit ? name : NULL,
                           "Unknown parameter: %.100s", name);
            return -1;
        }
    }
    return 0;
}

int query_date(struct evhttp_request *req, struct query *q, const char *name, bool required,
               time_t *out, bool *present)
{
    const char *v;
    struct tm tm = {0};
    char back[16];
    *present = false;
    if (query_str(req, q, name, 10, &v) < 0)
        return -1;
    if (v == NULL)
        return required ? bad(req, name, "required, as YYYY-MM-DD") : 0;
    bool shape = strlen(v) == 10 && v[4] == '-' && v[7] == '-'; /* not 26-1-1 */
    for (size_t i = 0; shape && i < 10; i++)
        shape = i == 4 || i == 7 || (v[i] >= '0' && v[i] <= '9');
    const char *end = shape ? strptime(v, "%Y-%m-%d", &tm) : NULL;
    if (end == NULL || *end != '\0')
        return bad(req, name, "must be a date as YYYY-MM-DD");
    *out = timegm(&tm);
    struct tm check;
    gmtime_r(out, &check);
    strftime(back, sizeof(back), "%Y-%m-%d", &check);
    if (strcmp(back, v) != 0) /* 2024-02-30 and friends */
        return bad(req, name, "not a calendar date");
    *present = true;
    return 0;
}

int query_int(struct evhttp_request *req, struct query *q, const char *name, long min,
              long max, long def, long *out)
{
    const char *v;
    char *end;
    if (query_str(req, q, name, 20, &v) < 0)
        return -1;
    if (v == NULL) {
        *out = def;
        return 0;
    }
    errno = 0;
    long x = strtol(v, &end, 10);
    bool digits = (v[0] == '-' && v[1] >= '0' && v[1] <= '9') || (v[0] >= '0' && v[0] <= '9');
    if (!digits || *end != '\0' || errno != 0 || x < min || x > max) {
        httpjson_error(req, 400, "invalid_request_error", name,
                       "Invalid %s: must be an integer from %ld to %ld", name, min, max);
        return -1;
    }
    *out = x;
    return 0;
}

#define DAY_S 86400

static void sql_time(time_t t, char out[DB_DATETIME_MAX])
{
    db_datetime((int64_t)t * 1000000, out);
}

int query_date_range(struct evhttp_request *req, struct query *q, bool required,
                      char from[DB_DATETIME_MAX], char to[DB_DATETIME_MAX], bool *present)
{
    time_t start = 0, end = 0;
    bool has_start, has_end;
    if (query_date(req, q, "start_date", required, &start, &has_start) < 0 ||
        query_date(req, q, "end_date", required, &end, &has_end) < 0)
        return -1;
    if (has_start != has_end) {
        httpjson_error(req, 400, "invalid_request_error", has_start ? "end_date" : "start_date",
                       "start_date and end_date go together");
        return -1;
    }
    if (has_start && start > end) {
        httpjson_error(req, 400, "invalid_request_error", "start_date",
                       "start_date must not be after end_date");
        return -1;
    }
    *present = has_start;
    sql_time(start, from);
    sql_time(end + DAY_S, to);
    return 0;
}
