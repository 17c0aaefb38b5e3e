/* httpjson.h - JSON answers over libevent's evhttp, in OpenAI's error shape.
 *
 * Shared by proxyd and reportd so every error a client sees has the same
 * envelope: {"error": {"message", "type", "param", "code"}}.
 */
#ifndef TG_HTTPJSON_H
#define TG_HTTPJSON_H

#include <event2/http.h>
#include <jansson.h>
#include <stddef.h>

#include "money.h"

/* Sends obj (reference stolen) with status; Content-Type application/json. */
void httpjson_reply(struct evhttp_request *req, int status, json_t *obj);

/* Sends the error envelope. param may be NULL. */
/* Answers status with text of content_type (500 on out of memory). */
void httpjson_reply_raw(struct evhttp_request *req, int status, const char *content_type,
                        const char *text, size_t len);

void httpjson_error(struct evhttp_request *req, int status, const char *type,
                    const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* The envelope clients of an API expect: OpenAI's above, or Anthropic's
 * {"type":"error","error":{"type","message"}} (its type follows the status;
 * type and param are OpenAI's only). */
enum httpjson_shape { HTTPJSON_OPENAI, HTTPJSON_ANTHROPIC };
/* Anthropic's error type for a status (its API names errors by kind). */
const char *httpjson_anthropic_type(int status);
void httpjson_error_as(struct evhttp_request *req, enum httpjson_shape shape, int status,
                       const char *type, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* The length of the longest valid UTF-8 prefix of s[0..len). */
size_t httpjson_utf8_prefix(const char *s, size_t len);

/* Parses the request body as a JSON object, answering 400/413 itself and
 * returning NULL when it is not one. */
json_t *httpjson_body(struct evhttp_request *req, size_t max_bytes);
json_t *httpjson_body_as(struct evhttp_request *req, size_t max_bytes, enum httpjson_shape shape);

/* The key of a route table entry; a daemon's own route struct starts with it. */
struct httpjson_route {
    enum evhttp_cmd_type method;
    const char *path;
};

/* "GET", "POST", ... ("?" for none of evhttp's). */
const char *httpjson_method_name(enum evhttp_cmd_type m);

/* Finds req's route in table (n entries of `stride` bytes, each starting
 * with a struct httpjson_route). Answers 400/404/405 itself and returns
 * NULL when there is none. */
const void *httpjson_find_route(struct evhttp_request *req, const void *table, size_t n,
                                size_t stride);

/* The raw key of a request: Authorization: Bearer, x-litellm-api-key,
 * api-key (Azure clients) or x-api-key (Anthropic's). NULL when there is none. */
const char *httpjson_request_key(struct evhttp_request *req);

/* A relayed body as JSON (NULL when it is not JSON), and a body replaced by
 * doc's JSON (json_dumps flags); -1 when out of memory, the body then
 * possibly empty. */
struct evbuffer;
json_t *httpjson_buffer_parse(struct evbuffer *buf);
int httpjson_buffer_set(struct evbuffer *buf, const json_t *doc, size_t flags);

/* A money amount as a JSON number, rounded to 10 decimals (the contract). */
json_t *httpjson_money(money_t m);
/* Same, from a DECIMAL column's text; JSON null for NULL. */
json_t *httpjson_money_text(const char *decimal);

/* A result cell as JSON: a string or null; an integer (0 for NULL). */
json_t *httpjson_str_or_null(const char *s);
json_t *httpjson_int_text(const char *s);

#endif
