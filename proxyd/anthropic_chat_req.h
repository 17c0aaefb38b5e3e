/* anthropic_chat_req.h - private to the request direction of anthropic_chat
 * (anthropic_chat_request.c, _messages.c, _tools.c): the translation in
 * progress and the small helpers its files share. Not for other modules. */
#ifndef PROXYD_ANTHROPIC_CHAT_REQ_H
#define PROXYD_ANTHROPIC_CHAT_REQ_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct anthropic_req {
    const json_t *chat; /* the OpenAI body, borrowed */
    json_t *out;        /* the Anthropic body being built, owned */
    const char *model;  /* the upstream model */
    bool drop;          /* drop_params */
    bool tool_blocks;   /* the turns hold tool_use / tool_result blocks */
    char *err;
    size_t errlen;
};

/* Fills the error buffer; always -1. */
__attribute__((format(printf, 2, 3))) static inline int req_fail(struct anthropic_req *r,
                                                                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, r->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* o[k] = v, taking v (a NULL v is an allocation that failed). */
static inline int req_put(struct anthropic_req *r, json_t *o, const char *k, json_t *v)
{
    if (v == NULL || json_object_set_new(o, k, v) < 0)
        return req_fail(r, "out of memory");
    return 0;
}

/* Appends v to a, taking v. */
static inline int req_push(struct anthropic_req *r, json_t *a, json_t *v)
{
    if (v == NULL || json_array_append_new(a, v) < 0)
        return req_fail(r, "out of memory");
    return 0;
}

/* v is the string s. */
static inline bool req_is(const json_t *v, const char *s)
{
    return json_is_string(v) && strcmp(json_string_value(v), s) == 0;
}

/* messages -> out's "messages" and "system" (anthropic_chat_messages.c). */
int anthropic_req_messages(struct anthropic_req *r);
/* tools, response_format, web_search_options, tool_choice and
 * parallel_tool_calls -> out's "tools" and "tool_choice"; run after the
 * messages (anthropic_chat_tools.c). */
int anthropic_req_tools(struct anthropic_req *r);

#endif
