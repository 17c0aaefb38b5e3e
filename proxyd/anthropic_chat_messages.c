/* anthropic_chat_messages.c - OpenAI chat messages -> Anthropic turns and
 * the top-level system, as LiteLLM's anthropic_messages_pt and
 * translate_system_message do it.
 *
 * system/developer messages leave for "system"; user and tool messages go
 * to user turns (a tool message is a tool_result block), assistant
 * messages to assistant turns. A turn is opened only when the role changes
 * and only for a message that adds blocks, so consecutive same-role
 * messages merge, as Anthropic requires alternating turns.
 */
#include "anthropic_chat.h"
#include "anthropic_chat_req.h"

#include <ctype.h>

/* ---- content blocks ---- */

static int copy_cache_control(struct anthropic_req *r, json_t *block, const json_t *from)
{
    const json_t *cc = json_object_get(from, "cache_control");
    if (!json_is_object(cc))
        return 0;
    return req_put(r, block, "cache_control", json_deep_copy(cc));
}

static json_t *text_block(const char *text)
{
    return json_pack("{s:s, s:s}", "type", "text", "text", text);
}

/* "data:image/png;base64,AAAA" -> base64 source (a PDF is a document, as
 * LiteLLM's factory makes it); http(s) URLs -> url source. format, when
 * given, names the media type. what names the field in errors. */
static json_t *image_block(struct anthropic_req *r, const json_t *image_url, const char *what)
{
    const json_t *url = json_is_object(image_url) ? json_object_get(image_url, "url") : image_url;
    const char *format = json_string_value(json_object_get(image_url, "format"));
    const char *u = json_string_value(url);
    json_t *b = NULL;
    if (u != NULL && strncmp(u, "data:", 5) == 0) {
        const char *sep = strstr(u, ";base64,");
        if (sep != NULL) {
            char media[128];
            snprintf(media, sizeof(media), "%.*s", (int)(sep - u - 5), u + 5);
            const char *type = format ? format : media;
            b = json_pack("{s:s, s:{s:s, s:s, s:s}}", "type",
                          strcmp(type, "application/pdf") == 0 ? "document" : "image", "source",
                          "type", "base64", "media_type", type, "data", sep + 8);
        }
    } else if (u != NULL && (strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0)) {
        b = json_pack("{s:s, s:{s:s, s:s}}", "type", "image", "source", "type", "url", "url", u);
    } else {
        req_fail(r, "%s must be a data:<media type>;base64,... URL or an http(s) URL", what);
        return NULL;
    }
    if (b == NULL)
        req_fail(r, "%s: a data: URL must read data:<media type>;base64,<data>", what);
    return b;
}

/* A "file" part: inline data -> a base64 document, an id -> a file (or url)
 * source, as LiteLLM's anthropic_process_openai_file_message. */
static json_t *file_block(struct anthropic_req *r, const json_t *part)
{
    const json_t *file = json_object_get(part, "file");
    const char *data = json_string_value(json_object_get(file, "file_data"));
    const char *id = json_string_value(json_object_get(file, "file_id"));
    if (data != NULL) {
        json_t *b = image_block(r, json_object_get(file, "file_data"), "file.file_data");
        const char *format = json_string_value(json_object_get(file, "format"));
        if (b != NULL &&
            (json_object_set_new(b, "type", json_string("document")) < 0 ||
             (format != NULL && json_object_set_new(json_object_get(b, "source"), "media_type",
                                                    json_string(format)) < 0))) {
            json_decref(b);
            req_fail(r, "out of memory");
            return NULL;
        }
        return b;
    }
    if (id == NULL) {
        req_fail(r, "a file part needs file.file_data or file.file_id");
        return NULL;
    }
    if (strncmp(id, "http", 4) == 0)
        return json_pack("{s:s, s:{s:s, s:s}}", "type", "document", "source", "type", "url", "url",
                         id);
    return json_pack("{s:s, s:{s:s, s:s}}", "type", "document", "source", "type", "file", "file_id",
                     id);
}

/* One part of a user message's content list -> a block appended to content. */
static int user_part(struct anthropic_req *r, const json_t *m, json_t *content)
{
    const json_t *type = json_object_get(m, "type");
    json_t *b;
    if (req_is(type, "text")) {
        const char *text = json_string_value(json_object_get(m, "text"));
        if (text == NULL)
            return req_fail(r, "a text part needs a string text");
        b = text_block(text);
    } else if (req_is(type, "image_url")) {
        if ((b = image_block(r, json_object_get(m, "image_url"), "image_url")) == NULL)
            return -1;
    } else if (req_is(type, "document")) {
        b = json_deep_copy(m); /* already Anthropic's shape */
    } else if (req_is(type, "file")) {
        if ((b = file_block(r, m)) == NULL)
            return -1;
    } else {
        /* LiteLLM drops other parts silently; a turn missing part of what the
         * user sent is worse than a clear 400. */
        return req_fail(r, "content part type '%s' is not supported for anthropic",
                        json_is_string(type) ? json_string_value(type) : "?");
    }
    if (req_push(r, content, b) < 0)
        return -1;
    return copy_cache_control(r, b, m);
}

static int user_blocks(struct anthropic_req *r, const json_t *msg, json_t *content)
{
    const json_t *c = json_object_get(msg, "content");
    if (json_is_string(c)) {
        json_t *b = text_block(json_string_value(c));
        if (req_push(r, content, b) < 0)
            return -1;
        return copy_cache_control(r, b, msg);
    }
    if (json_is_array(c)) {
        size_t i;
        const json_t *m;
        json_array_foreach(c, i, m) {
            if (!json_is_object(m))
                return req_fail(r, "a content part must be an object");
            if (user_part(r, m, content) < 0)
                return -1;
        }
        return 0;
    }
    if (c != NULL && !json_is_null(c))
        return req_fail(r, "a user message's content must be a string or an array");
    return 0;
}

/* role "tool" -> {type tool_result, tool_use_id, content}. */
static int tool_result(struct anthropic_req *r, const json_t *msg, json_t *content)
{
    const char *id = json_string_value(json_object_get(msg, "tool_call_id"));
    const json_t *c = json_object_get(msg, "content");
    json_t *body;
    if (id == NULL)
        return req_fail(r, "a tool message needs a string tool_call_id");
    if (json_is_string(c)) {
        body = json_incref((json_t *)c);
    } else if (json_is_array(c)) {
        if ((body = json_array()) == NULL)
            return req_fail(r, "out of memory");
        size_t i;
        const json_t *m;
        json_array_foreach(c, i, m) {
            const json_t *type = json_object_get(m, "type");
            json_t *b = NULL;
            const char *text = json_string_value(json_object_get(m, "text"));
            if (req_is(type, "text"))
                b = text_block(text ? text : "");
            else if (req_is(type, "image_url") &&
                     (b = image_block(r, json_object_get(m, "image_url"), "image_url")) == NULL) {
                json_decref(body);
                return -1;
            }
            if (b != NULL && req_push(r, body, b) < 0) {
                json_decref(body);
                return -1;
            }
        }
    } else {
        body = json_string("");
    }
    json_t *b =
        json_pack("{s:s, s:s, s:o}", "type", "tool_result", "tool_use_id", id, "content", body);
    r->tool_blocks = true;
    if (req_push(r, content, b) < 0)
        return -1;
    return copy_cache_control(r, b, msg);
}

/* An assistant tool call -> tool_use; arguments are parsed as JSON ("" is {}). */
static int tool_use(struct anthropic_req *r, const json_t *call, json_t *content)
{
    const json_t *fn = json_object_get(call, "function");
    const char *id = json_string_value(json_object_get(call, "id"));
    const char *name = json_string_value(json_object_get(fn, "name"));
    const json_t *args = json_object_get(fn, "arguments");
    json_t *input;
    if (!json_is_object(call) || id == NULL || name == NULL)
        return req_fail(r, "an assistant tool call needs an id and a function.name");
    if (json_is_object(args)) {
        input = json_deep_copy(args);
    } else if (args == NULL || json_is_null(args) || req_is(args, "")) {
        input = json_object();
    } else if (json_is_string(args)) {
        json_error_t jerr;
        input = json_loads(json_string_value(args), JSON_DECODE_ANY, &jerr);
        if (!json_is_object(input)) {
            json_decref(input);
            return req_fail(r, "tool call %s: function.arguments is not a JSON object", id);
        }
    } else {
        return req_fail(r, "tool call %s: function.arguments must be a string", id);
    }
    json_t *b = json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use", "id", id, "name", name,
                          "input", input);
    r->tool_blocks = true;
    if (req_push(r, content, b) < 0)
        return -1;
    return copy_cache_control(r, b, call);
}

/* Thinking blocks first (Anthropic rejects a turn that starts otherwise when
 * thinking is on), then the text, then the tool calls. Empty texts are left
 * out: Anthropic refuses them. */
static int assistant_blocks(struct anthropic_req *r, const json_t *msg, json_t *content)
{
    const json_t *thinking = json_object_get(msg, "thinking_blocks");
    const json_t *c = json_object_get(msg, "content");
    const json_t *calls = json_object_get(msg, "tool_calls");
    size_t i;
    const json_t *m;
    if (json_object_get(msg, "function_call") != NULL &&
        !json_is_null(json_object_get(msg, "function_call")))
        return req_fail(r, "legacy function_call messages are not supported for anthropic; use "
                           "tool_calls");
    json_array_foreach(thinking, i, m) {
        if (req_push(r, content, json_deep_copy(m)) < 0)
            return -1;
    }
    if (json_is_string(c) && json_string_length(c) > 0) {
        json_t *b = text_block(json_string_value(c));
        if (req_push(r, content, b) < 0 || copy_cache_control(r, b, msg) < 0)
            return -1;
    }
    json_array_foreach(c, i, m) {
        const json_t *type = json_object_get(m, "type");
        const char *text = json_string_value(json_object_get(m, "text"));
        const char *think = json_string_value(json_object_get(m, "thinking"));
        if (req_is(type, "thinking") && think != NULL && *think != '\0') {
            if (req_push(r, content, json_deep_copy(m)) < 0)
                return -1;
        } else if (req_is(type, "text") && text != NULL && *text != '\0') {
            json_t *b = text_block(text);
            if (req_push(r, content, b) < 0 || copy_cache_control(r, b, m) < 0)
                return -1;
        }
    }
    if (calls != NULL && !json_is_null(calls) && !json_is_array(calls))
        return req_fail(r, "tool_calls must be an array");
    json_array_foreach(calls, i, m) {
        const json_t *type = json_object_get(m, "type");
        if (type != NULL && !req_is(type, "function"))
            continue; /* LiteLLM converts function calls only */
        if (tool_use(r, m, content) < 0)
            return -1;
    }
    return 0;
}

/* ---- turns and system ---- */

static bool is_system(const char *role)
{
    return strcmp(role, "system") == 0 || strcmp(role, "developer") == 0;
}

/* The content array of the turn a message of role goes to, opening a turn
 * when the role changes. */
static json_t *turn_for(struct anthropic_req *r, json_t *turns, const char *role)
{
    size_t n = json_array_size(turns);
    json_t *last = n ? json_array_get(turns, n - 1) : NULL;
    if (last != NULL && req_is(json_object_get(last, "role"), role))
        return json_object_get(last, "content");
    json_t *content = json_array();
    json_t *t = json_pack("{s:s, s:o}", "role", role, "content", content);
    if (req_push(r, turns, t) < 0)
        return NULL;
    return content;
}

/* The final assistant turn may not end in whitespace (Anthropic refuses it). */
static int rstrip_last_assistant(struct anthropic_req *r, json_t *turns)
{
    size_t n = json_array_size(turns), i;
    json_t *last = n ? json_array_get(turns, n - 1) : NULL, *b;
    if (!req_is(json_object_get(last, "role"), "assistant"))
        return 0;
    json_array_foreach(json_object_get(last, "content"), i, b) {
        const char *text = json_string_value(json_object_get(b, "text"));
        if (!req_is(json_object_get(b, "type"), "text") || text == NULL)
            continue;
        size_t len = strlen(text);
        while (len > 0 && isspace((unsigned char)text[len - 1]))
            len--;
        if (req_put(r, b, "text", json_stringn(text, len)) < 0)
            return -1;
    }
    return 0;
}

static int add_message(struct anthropic_req *r, json_t *turns, const json_t *msg, const char *role)
{
    bool assistant = strcmp(role, "assistant") == 0;
    if (!assistant && strcmp(role, "user") != 0 && strcmp(role, "tool") != 0)
        return req_fail(r, "message role '%s' is not supported for anthropic", role);
    /* Build the blocks apart: a message that adds none opens no turn. */
    json_t *blocks = json_array();
    int rc = blocks == NULL              ? req_fail(r, "out of memory")
             : assistant                 ? assistant_blocks(r, msg, blocks)
             : strcmp(role, "tool") == 0 ? tool_result(r, msg, blocks)
                                         : user_blocks(r, msg, blocks);
    if (rc == 0 && json_array_size(blocks) > 0) {
        json_t *content = turn_for(r, turns, assistant ? "assistant" : "user");
        if (content == NULL || json_array_extend(content, blocks) < 0)
            rc = content == NULL ? -1 : req_fail(r, "out of memory");
    }
    json_decref(blocks);
    return rc;
}

/* A system/developer message's text(s) -> system blocks (empty texts left out). */
static int system_blocks(struct anthropic_req *r, const json_t *msg, json_t *system)
{
    const json_t *c = json_object_get(msg, "content");
    if (json_is_string(c)) {
        if (json_string_length(c) == 0)
            return 0;
        json_t *b = text_block(json_string_value(c));
        if (req_push(r, system, b) < 0)
            return -1;
        return copy_cache_control(r, b, msg);
    }
    size_t i;
    const json_t *m;
    json_array_foreach(c, i, m) {
        const json_t *type = json_object_get(m, "type");
        const char *text = json_string_value(json_object_get(m, "text"));
        if (!json_is_string(type) || text == NULL)
            return req_fail(r, "a system content part needs a type and a string text");
        if (req_is(type, "text") && *text == '\0')
            continue;
        json_t *b = json_pack("{s:O, s:s}", "type", type, "text", text);
        if (req_push(r, system, b) < 0 || copy_cache_control(r, b, m) < 0)
            return -1;
    }
    return 0;
}

/* One plain text is sent as a string; otherwise LiteLLM's list of blocks,
 * which keeps each message's cache_control. */
static int put_system(struct anthropic_req *r, json_t *system)
{
    size_t n = json_array_size(system);
    json_t *first = json_array_get(system, 0);
    if (n == 0) {
        json_decref(system);
        return 0;
    }
    if (n == 1 && json_object_get(first, "cache_control") == NULL &&
        req_is(json_object_get(first, "type"), "text")) {
        json_t *text = json_incref(json_object_get(first, "text"));
        json_decref(system);
        return req_put(r, r->out, "system", text);
    }
    return req_put(r, r->out, "system", system);
}

int anthropic_req_messages(struct anthropic_req *r)
{
    const json_t *messages = json_object_get(r->chat, "messages");
    json_t *turns = json_array(), *system = json_array();
    size_t i;
    const json_t *msg;
    if (!json_is_array(messages)) {
        json_decref(turns);
        json_decref(system);
        return req_fail(r, "messages must be an array");
    }
    if (req_put(r, r->out, "messages", turns) < 0 || system == NULL) {
        json_decref(system);
        return req_fail(r, "out of memory");
    }
    json_array_foreach(messages, i, msg) {
        const char *role = json_string_value(json_object_get(msg, "role"));
        int rc;
        if (!json_is_object(msg))
            rc = req_fail(r, "messages[%zu] must be an object", i);
        else if (role == NULL)
            rc = req_fail(r, "messages[%zu] has no role", i);
        else if (is_system(role))
            rc = system_blocks(r, msg, system);
        else
            rc = add_message(r, turns, msg, role);
        if (rc < 0) {
            if (strncmp(r->err, "messages[", 9) != 0) {
                char why[256];
                snprintf(why, sizeof(why), "%s", r->err);
                req_fail(r, "messages[%zu]: %s", i, why);
            }
            json_decref(system);
            return -1;
        }
    }
    if (json_array_size(turns) == 0) {
        json_decref(system);
        return req_fail(r, "anthropic requires at least one non-system message");
    }
    if (rstrip_last_assistant(r, turns) < 0) {
        json_decref(system);
        return -1;
    }
    return put_system(r, system);
}
