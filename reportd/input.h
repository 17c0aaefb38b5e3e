/* input.h - validating request input for reportd's handlers.
 *
 * Each getter answers the 400 itself, naming the parameter, and returns -1;
 * 0 means the value (or its absence, for optional ones) is good.
 */
#ifndef REPORTD_INPUT_H
#define REPORTD_INPUT_H

#include <event2/http.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "budget_period.h"
#include "db.h"
#include "money.h"

#define INPUT_ID_MAX 255 /* ids, aliases, emails */

/* Body fields. *out is NULL/unchanged when the field is absent or null. */
int input_str(struct evhttp_request *req, json_t *body, const char *name, size_t max,
              const char **out);
int input_money(struct evhttp_request *req, json_t *body, const char *name,
                char out[MONEY_STR_MAX], bool *present);
int input_bool(struct evhttp_request *req, json_t *body, const char *name, bool *out);
/* An array of strings (each <= INPUT_ID_MAX), dumped as JSON; "[]" when absent. */
int input_str_list(struct evhttp_request *req, json_t *body, const char *name, char **out);
/* An object, dumped as JSON; "{}" when absent. */
int input_object(struct evhttp_request *req, json_t *body, const char *name, char **out);

/* A JSON integer in [min, max]; *present false when absent or null. */
int input_int(struct evhttp_request *req, json_t *body, const char *name, int64_t min,
              int64_t max, int64_t *out, bool *present);
/* A required, non-empty array of at most max ids (strings of 1..INPUT_ID_MAX
 * bytes); *out is borrowed from body. */
int input_id_list(struct evhttp_request *req, json_t *body, const char *name, size_t max,
                  json_t **out);

/* A duration ("30s", "1h", "7d", "2w", "1mo") as budget_duration takes
 * them, into *out; *text is NULL when absent. */
int input_duration(struct evhttp_request *req, json_t *body, const char *name,
                   struct period *out, const char **text);

/* Query string parameters of req, parsed once. */
struct query;
struct query *query_parse(struct evhttp_request *req);
void query_free(struct query *q);
/* The raw value or NULL; a parameter longer than max is a 400. */
int query_str(struct evhttp_request *req, struct query *q, const char *name, size_t max,
              const char **out);
/* YYYY-MM-DD as UTC midnight; *present false when absent (required -> 400). */
int query_date(struct evhttp_request *req, struct query *q, const char *name, bool required,
               time_t *out, bool *present);
/* start_date and end_date (together or neither; required -> 400 when
 * absent) as [from, to) DATETIME text: whole UTC days, from start_date 00:00
 * through the end of end_date (LiteLLM drops most of the end day). */
int query_date_range(struct evhttp_request *req, struct query *q, bool required,
                     char from[DB_DATETIME_MAX], char to[DB_DATETIME_MAX], bool *present);
/* For routes that refuse what they do not know: 400 naming the first
 * parameter of q whose name is not in names (NULL-ended). */
int query_only(struct evhttp_request *req, struct query *q, const char *const *names);
/* An integer in [min, max], def when absent. */
int query_int(struct evhttp_request *req, struct query *q, const char *name, long min,
              long max, long def, long *out);

#endif
