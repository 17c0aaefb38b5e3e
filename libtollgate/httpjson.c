/* httpjson.c - JSON replies and OpenAI-shaped errors over evhttp. */
#include "httpjson.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* %.15g prints every amount of up to 15 significant digits as written. */
#define JSON_DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

void httpjson_reply_raw(struct evhttp_request *req, int status, const char *content_type,
                        const char *text, size_t len)
{
    struct evbuffer *out = evbuffer_new();
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    if (out == NULL || evbuffer_add(out, text, len) != 0 ||
        evhttp_add_header(h, "Content-Type", content_type) != 0) {
        evbuffer_free(out);
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    evhttp_send_reply(req, status, NULL, out);
    evbuffer_free(out);
}

void httpjson_reply(struct evhttp_request *req, int status, json_t *obj)
{
    char *text = obj != NULL ? json_dumps(obj, JSON_DUMP_FLAGS | JSON_ENCODE_ANY) : NULL;
    json_decref(obj);
    if (text == NULL) {
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":"
                                  "\"internal_error\",\"param\":null,\"code\":\"500\"}}";
        httpjson_reply_raw(req, 500, "application/json", oom, sizeof(oom) - 1);
        return;
    }
    httpjson_reply_raw(req, status, "application/json", text, strlen(text));
    free(text);
}

void httpjson_error(struct evhttp_request *req, int status, const char *type,
                    const char *param, const char *fmt, ...)
{
    char msg[1024], code[16];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(code, sizeof(code), "%d", status);
    json_t *err = json_pack("{s:{s:s, s:s, s:o, s:s}}", "error", "message", msg, "type", type,
                            "param", param != NULL ? json_string(param) : json_null(),
                            "code", code);
    httpjson_reply(req, status, err);
}

json_t *httpjson_body(struct evhttp_request *req, size_t max_bytes)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > max_bytes) {
        httpjson_error(req, 413, "request_too_large", NULL,
                       "Request body of %zu bytes exceeds the limit of %zu bytes", len, max_bytes);
        return NULL;
    }
    const unsigned char *data = evbuffer_pullup(in, -1);
    json_error_t jerr;
    json_t *body = data != NULL ? json_loadb((const char *)data, len, 0, &jerr) : NULL;
    if (body == NULL) {
        httpjson_error(req, 400, "invalid_request_error", NULL, "Invalid JSON body: %s",
                       len == 0 ? "empty body" : jerr.text);
        return NULL;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        httpjson_error(req, 400, "invalid_request_error", NULL,
                       "Invalid JSON body: expected an object");
        return NULL;
    }
    return body;
}

json_t *httpjson_money(money_t m)
{
    char buf[MONEY_STR_MAX];
    money_format(money_round(m, 10), buf);
    return json_real(strtod(buf, NULL));
}

json_t *httpjson_money_text(const char *decimal)
{
    money_t m;
    if (decimal == NULL)
        return json_null();
    if (money_parse(decimal, &m) < 0)
        return json_null();
    return httpjson_money(m);
}

const char *httpjson_request_key(struct evhttp_request *req)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const char *v = evhttp_find_header(h, "Authorization");
    if (v != NULL) {
        if (strncasecmp(v, "Bearer ", 7) != 0)
            return NULL;
        v += 7;
        while (*v == ' ')
            v++;
        return *v != '\0' ? v : NULL;
    }
    if ((v = evhttp_find_header(h, "x-litellm-api-key")) != NULL && *v != '\0')
        return v;
    if ((v = evhttp_find_header(h, "api-key")) != NULL && *v != '\0')
        return v;
    return NULL;
}

const void *httpjson_find_route(struct evhttp_request *req, const void *table, size_t n,
                                size_t stride)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    bool path_known = false;
    if (path == NULL) {
        httpjson_error(req, 400, "invalid_request_error", NULL, "Malformed request URI");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const struct httpjson_route *r = (const void *)((const char *)table + i * stride);
        if (strcmp(r->path, path) != 0)
            continue;
        path_known = true;
        if (r->method == method)
            return r;
    }
    if (path_known)
        httpjson_error(req, 405, "invalid_request_error", NULL, "Method not allowed for %.200s", path);
    else
        httpjson_error(req, 404, "not_found_error", NULL, "Route not found: %.200s", path);
    return NULL;
}

json_t *httpjson_str_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

json_t *httpjson_int_text(const char *s)
{
    return json_integer(s != NULL ? strtoll(s, NULL, 10) : 0);
}
