/* httpjson.c - JSON replies and OpenAI-shaped errors over evhttp. */
#include "httpjson.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
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

size_t httpjson_utf8_prefix(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n = u[i] < 0x80 ? 1 : (u[i] & 0xE0) == 0xC0 ? 2 : (u[i] & 0xF0) == 0xE0 ? 3
                 : (u[i] & 0xF8) == 0xF0 ? 4 : 0;
        if (n == 0 || i + n > len)
            return i;
        uint32_t c = n == 1 ? u[i] : u[i] & (0x7F >> n);
        for (size_t k = 1; k < n; k++) {
            if ((u[i + k] & 0xC0) != 0x80)
                return i;
            c = (c << 6) | (u[i + k] & 0x3F);
        }
        /* overlong forms, UTF-16 surrogates and beyond U+10FFFF are not UTF-8 */
        if ((n == 2 && c < 0x80) || (n == 3 && c < 0x800) || (n == 4 && c < 0x10000) ||
            (c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF)
            return i;
        i += n;
    }
    return len;
}

/* Replaces each byte that does not start valid UTF-8 with '?'. */
static void utf8_scrub(char *s)
{
    size_t len = strlen(s), ok;
    while ((ok = httpjson_utf8_prefix(s, len)) < len) {
        s[ok] = '?';
        s += ok + 1;
        len -= ok + 1;
    }
}

const char *httpjson_anthropic_type(int status)
{
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 529: return "overloaded_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

static void error_va(struct evhttp_request *req, enum httpjson_shape shape, int status,
                     const char *type, const char *param, const char *fmt, va_list ap)
{
    char msg[1024], code[16];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    utf8_scrub(msg); /* a client's bytes or a cut message must not make it a 500 */
    snprintf(code, sizeof(code), "%d", status);
    json_t *err = shape == HTTPJSON_ANTHROPIC
                      ? json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type",
                                  httpjson_anthropic_type(status), "message", msg)
                      : json_pack("{s:{s:s, s:s, s:o, s:s}}", "error", "message", msg, "type",
                                  type, "param", param != NULL ? json_string(param) : json_null(),
                                  "code", code);
    httpjson_reply(req, status, err);
}

void httpjson_error(struct evhttp_request *req, int status, const char *type,
                    const char *param, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_va(req, HTTPJSON_OPENAI, status, type, param, fmt, ap);
    va_end(ap);
}

void httpjson_error_as(struct evhttp_request *req, enum httpjson_shape shape, int status,
                       const char *type, const char *param, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_va(req, shape, status, type, param, fmt, ap);
    va_end(ap);
}

static bool has_nul(json_t *v)
{
    const char *k;
    json_t *item;
    size_t i;
    if (json_is_string(v))
        return memchr(json_string_value(v), '\0', json_string_length(v)) != NULL;
    if (json_is_array(v)) {
        json_array_foreach(v, i, item) {
            if (has_nul(item))
                return true;
        }
    }
    if (json_is_object(v)) {
        json_object_foreach(v, k, item) {
            if (has_nul(item))
                return true;
        }
    }
    return false;
}

/* The name (malloc'd) of the top-level member holding the \u0000 jansson
 * refused, so the 400 can name the parameter; NULL when there is none. */
static char *nul_member(const char *data, size_t len)
{
    json_t *body = json_loadb(data, len, JSON_ALLOW_NUL, NULL), *v;
    const char *k;
    char *nul_key = NULL;
    if (json_is_object(body)) {
        json_object_foreach(body, k, v) {
            if (has_nul(v)) {
                nul_key = strdup(k);
                break;
            }
        }
    }
    json_decref(body);
    return nul_key;
}

json_t *httpjson_body_as(struct evhttp_request *req, size_t max_bytes, enum httpjson_shape shape)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > max_bytes) {
        httpjson_error_as(req, shape, 413, "request_too_large", NULL,
                       "Request body of %zu bytes exceeds the limit of %zu bytes", len, max_bytes);
        return NULL;
    }
    const unsigned char *data = evbuffer_pullup(in, -1);
    json_error_t jerr;
    json_t *body = data != NULL ? json_loadb((const char *)data, len, 0, &jerr) : NULL;
    if (body == NULL) {
        char *param = data != NULL && json_error_code(&jerr) == json_error_null_character
                                ? nul_member((const char *)data, len)
                                : NULL;
        if (param != NULL)
            httpjson_error_as(req, shape, 400, "invalid_request_error", param,
                           "Invalid %s: must not contain NUL bytes", param);
        else
            httpjson_error_as(req, shape, 400, "invalid_request_error", NULL, "Invalid JSON body: %s",
                           len == 0 ? "empty body" : jerr.text);
        free(param);
        return NULL;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        httpjson_error_as(req, shape, 400, "invalid_request_error", NULL,
                       "Invalid JSON body: expected an object");
        return NULL;
    }
    return body;
}

json_t *httpjson_body(struct evhttp_request *req, size_t max_bytes)
{
    return httpjson_body_as(req, max_bytes, HTTPJSON_OPENAI);
}

json_t *httpjson_buffer_parse(struct evbuffer *buf)
{
    size_t len = evbuffer_get_length(buf);
    const unsigned char *data = evbuffer_pullup(buf, -1);
    return data != NULL || len == 0 ? json_loadb((const char *)data, len, 0, NULL) : NULL;
}

int httpjson_buffer_set(struct evbuffer *buf, const json_t *doc, size_t flags)
{
    char *s = json_dumps(doc, flags);
    int rc = s != NULL && evbuffer_drain(buf, evbuffer_get_length(buf)) == 0 &&
             evbuffer_add(buf, s, strlen(s)) == 0 ? 0 : -1;
    free(s);
    return rc;
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
    if ((v = evhttp_find_header(h, "x-api-key")) != NULL && *v != '\0')
        return v; /* Anthropic's clients */
    return NULL;
}

const char *httpjson_method_name(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
    }
    return "?";
}

const void *httpjson_find_route(struct evhttp_request *req, const void *table, size_t n,
                                size_t stride)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    char allow[64] = "";
    if (path == NULL) {
        httpjson_error(req, 400, "invalid_request_error", NULL, "Malformed request URI");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const struct httpjson_route *r = (const void *)((const char *)table + i * stride);
        if (strcmp(r->path, path) != 0)
            continue;
        if (r->method == method)
            return r;
        size_t used = strlen(allow);
        snprintf(allow + used, sizeof(allow) - used, "%s%s", used > 0 ? ", " : "",
                 httpjson_method_name(r->method));
    }
    if (allow[0] != '\0') {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
        httpjson_error(req, 405, "invalid_request_error", NULL,
                       "Method %s not allowed for %.200s (allowed: %s)", httpjson_method_name(method),
                       path, allow);
    } else
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
