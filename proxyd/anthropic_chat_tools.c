/* anthropic_chat_tools.c - OpenAI tools, tool_choice, parallel_tool_calls,
 * response_format and web_search_options -> Anthropic's tools and
 * tool_choice, as LiteLLM's AnthropicConfig (_map_tools, _map_tool_choice,
 * map_response_format_to_anthropic_tool, map_web_search_tool) does it.
 */
#include "anthropic_chat.h"
#include "anthropic_chat_req.h"

/* A function's parameters -> input_schema: type forced to "object"
 * (Anthropic requires it), keys limited to LiteLLM's AnthropicInputSchema. */
static json_t *input_schema(const json_t *params)
{
    static const char *const keep[] = {"type",     "properties", "additionalProperties",
                                       "required", "$defs",      "strict"};
    json_t *s = json_object();
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
        const json_t *v = json_object_get(params, keep[i]);
        if (v != NULL && json_object_set_new(s, keep[i], json_deep_copy(v)) < 0)
            goto oom;
    }
    if (!req_is(json_object_get(s, "type"), "object") &&
        (json_object_set_new(s, "type", json_string("object")) < 0 ||
         (json_object_get(s, "properties") == NULL &&
          json_object_set_new(s, "properties", json_object()) < 0)))
        goto oom;
    return s;
oom:
    json_decref(s);
    return NULL;
}

static json_t *function_tool(struct anthropic_req *r, const json_t *tool)
{
    const json_t *fn = json_object_get(tool, "function");
    const json_t *params = json_object_get(fn, "parameters");
    const json_t *desc = json_object_get(fn, "description");
    const char *name = json_string_value(json_object_get(fn, "name"));
    if (name == NULL) {
        req_fail(r, "a function tool needs a string function.name");
        return NULL;
    }
    json_t *schema = json_is_object(params)
                         ? input_schema(params)
                         : json_pack("{s:s, s:{}}", "type", "object", "properties");
    json_t *t = json_pack("{s:s, s:o}", "name", name, "input_schema", schema);
    if (t != NULL && json_is_string(desc) &&
        json_object_set(t, "description", (json_t *)desc) < 0) {
        json_decref(t);
        t = NULL;
    }
    if (t == NULL)
        req_fail(r, "out of memory");
    return t;
}

/* computer_* tools carry their display size in function.parameters. */
static json_t *computer_tool(struct anthropic_req *r, const json_t *tool, const char *type)
{
    const json_t *fn = json_object_get(tool, "function");
    const json_t *params = json_object_get(fn, "parameters");
    const json_t *w = json_object_get(params, "display_width_px");
    const json_t *h = json_object_get(params, "display_height_px");
    const json_t *n = json_object_get(params, "display_number");
    const char *name = json_string_value(json_object_get(fn, "name"));
    if (!json_is_integer(w) || !json_is_integer(h)) {
        req_fail(r, "Missing required parameter: display_width_px or display_height_px");
        return NULL;
    }
    json_t *t = json_pack("{s:s, s:s, s:O, s:O}", "type", type, "name", name ? name : "computer",
                          "display_width_px", w, "display_height_px", h);
    if (t != NULL && json_is_integer(n) && json_object_set(t, "display_number", (json_t *)n) < 0) {
        json_decref(t);
        t = NULL;
    }
    if (t == NULL)
        req_fail(r, "out of memory");
    return t;
}

/* Anthropic's server tools (web_search_*, bash_*, ...) go up as written,
 * named by "name" or function.name. */
static json_t *hosted_tool(struct anthropic_req *r, const json_t *tool)
{
    const json_t *name = json_object_get(tool, "name");
    if (!json_is_string(name))
        name = json_object_get(json_object_get(tool, "function"), "name");
    if (!json_is_string(name)) {
        req_fail(r, "Missing required parameter: name");
        return NULL;
    }
    json_t *t = json_deep_copy(tool);
    if (t == NULL || json_object_set(t, "name", (json_t *)name) < 0) {
        json_decref(t);
        req_fail(r, "out of memory");
        return NULL;
    }
    return t;
}

/* Anthropic's server tool types LiteLLM passes on (ANTHROPIC_HOSTED_TOOLS). */
static bool hosted_type(const char *type)
{
    static const char *const hosted[] = {"web_search",  "web_fetch",      "bash",
                                         "text_editor", "code_execution", "memory"};
    for (size_t i = 0; i < sizeof(hosted) / sizeof(hosted[0]); i++)
        if (strncmp(type, hosted[i], strlen(hosted[i])) == 0)
            return true;
    return false;
}

static int map_tool(struct anthropic_req *r, const json_t *tool, json_t *tools)
{
    const char *type = json_string_value(json_object_get(tool, "type"));
    const json_t *cc = json_object_get(tool, "cache_control");
    json_t *t;
    if (!json_is_object(tool))
        return req_fail(r, "tools: each tool must be an object");
    if (json_object_get(tool, "input_schema") != NULL) /* already Anthropic's */
        return req_push(r, tools, json_deep_copy(tool));
    if (type == NULL)
        return req_fail(r, "tools: a tool needs a type");
    if (strcmp(type, "function") == 0 || strcmp(type, "custom") == 0)
        t = function_tool(r, tool);
    else if (strncmp(type, "computer_", 9) == 0)
        t = computer_tool(r, tool, type);
    else if (hosted_type(type))
        t = hosted_tool(r, tool);
    else
        return req_fail(r, "Unsupported tool type: %s", type);
    if (t == NULL || req_push(r, tools, t) < 0)
        return -1;
    if (!json_is_object(cc))
        cc = json_object_get(json_object_get(tool, "function"), "cache_control");
    return json_is_object(cc) ? req_put(r, t, "cache_control", json_deep_copy(cc)) : 0;
}

/* OpenAI's tool_choice -> Anthropic's, as LiteLLM's _map_tool_choice: auto,
 * required -> any, none, a named function -> tool ({"type": ...} objects
 * too). NULL with *bad set for anything else. */
static json_t *mapped_choice(const json_t *tc, bool *bad)
{
    const json_t *type = json_object_get(tc, "type");
    const char *name = json_string_value(json_object_get(json_object_get(tc, "function"), "name"));
    bool typed = json_is_object(tc) && name == NULL;
    *bad = false;
    if (req_is(tc, "auto") || (typed && req_is(type, "auto")))
        return json_pack("{s:s}", "type", "auto");
    if (req_is(tc, "required") || (typed && (req_is(type, "required") || req_is(type, "any"))))
        return json_pack("{s:s}", "type", "any");
    if (req_is(tc, "none") || (typed && req_is(type, "none")))
        return json_pack("{s:s}", "type", "none");
    if (name != NULL)
        return json_pack("{s:s, s:s}", "type", "tool", "name", name);
    *bad = tc != NULL && !json_is_null(tc);
    return NULL;
}

/* tool_choice + parallel_tool_calls -> tool_choice: parallel_tool_calls
 * false is disable_parallel_tool_use (on auto when no tool_choice was
 * given; never on none). forced, when not NULL, is the choice (taken). */
static int tool_choice_param(struct anthropic_req *r, json_t *forced)
{
    const json_t *tc = json_object_get(r->chat, "tool_choice");
    const json_t *ptc = json_object_get(r->chat, "parallel_tool_calls");
    bool bad;
    json_t *choice = forced ? forced : mapped_choice(tc, &bad);
    if (choice == NULL && bad)
        return req_fail(r, "tool_choice must be auto, required, none or {\"type\": \"function\", "
                           "\"function\": {\"name\": ...}}");
    if (json_is_boolean(ptc) && !req_is(tc, "none")) {
        if (choice == NULL && (choice = json_pack("{s:s}", "type", "auto")) == NULL)
            return req_fail(r, "out of memory");
        if (req_put(r, choice, "disable_parallel_tool_use", json_boolean(!json_is_true(ptc))) < 0) {
            json_decref(choice);
            return -1;
        }
    }
    return choice == NULL ? 0 : req_put(r, r->out, "tool_choice", choice);
}

/* response_format -> the forced json_tool_call tool. LiteLLM does this for
 * a generic model; for the newest ones (Sonnet 4.5, Opus 4.1+) it sends the
 * output_format beta field instead, which older models refuse, so the tool
 * is the one mapping that works everywhere. json_schema gives the tool its
 * schema; json_object an open object schema (LiteLLM's JSON mode, PR #6721);
 * "text", or a json_schema without a schema, maps to nothing. */
static int response_format_tool(struct anthropic_req *r, json_t **tool)
{
    const json_t *rf = json_object_get(r->chat, "response_format");
    const json_t *type = json_object_get(rf, "type");
    const json_t *schema = json_object_get(rf, "response_schema");
    json_t *input;
    *tool = NULL;
    if (rf == NULL || json_is_null(rf) || req_is(type, "text"))
        return 0;
    if (!json_is_object(rf))
        return req_fail(r, "response_format must be an object");
    if (schema == NULL)
        schema = json_object_get(json_object_get(rf, "json_schema"), "schema");
    if (req_is(type, "json_object") && !json_is_object(schema)) {
        input = json_pack("{s:s, s:b, s:{}}", "type", "object", "additionalProperties", 1,
                          "properties");
    } else if (json_is_object(schema)) {
        input = json_pack("{s:s}", "type", "object");
        if (input != NULL && json_object_update(input, (json_t *)schema) < 0) {
            json_decref(input);
            input = NULL;
        }
    } else if (req_is(type, "json_schema")) {
        return 0;
    } else {
        return req_fail(r, "response_format type must be text, json_object or json_schema");
    }
    *tool = json_pack("{s:s, s:o}", "name", ANTHROPIC_CHAT_JSON_TOOL, "input_schema", input);
    return *tool == NULL ? req_fail(r, "out of memory") : 0;
}

/* web_search_options -> Anthropic's web search server tool (LiteLLM's
 * map_web_search_tool: the approximate location, and search_context_size
 * as max_uses). */
static json_t *web_search_tool(const json_t *opts)
{
    static const char *const loc_keys[] = {"city", "country", "region", "timezone"};
    const json_t *approx = json_object_get(json_object_get(opts, "user_location"), "approximate");
    const json_t *size = json_object_get(opts, "search_context_size");
    int uses = req_is(size, "low") ? 1 : req_is(size, "medium") ? 5 : req_is(size, "high") ? 10 : 0;
    json_t *t = json_pack("{s:s, s:s}", "type", "web_search_20250305", "name", "web_search");
    json_t *loc = json_is_object(approx) ? json_pack("{s:s}", "type", "approximate") : NULL;
    for (size_t i = 0; loc != NULL && i < 4; i++) {
        json_t *v = json_object_get(approx, loc_keys[i]);
        if (v != NULL && json_object_set(loc, loc_keys[i], v) < 0)
            goto oom;
    }
    if (t == NULL || (json_is_object(approx) && json_object_set(t, "user_location", loc) < 0) ||
        (uses > 0 && json_object_set_new(t, "max_uses", json_integer(uses)) < 0))
        goto oom;
    json_decref(loc);
    return t;
oom:
    json_decref(loc);
    json_decref(t);
    return NULL;
}

/* LiteLLM's is_thinking_enabled: thinking on, or any reasoning_effort. */
static bool thinking_asked(const json_t *chat)
{
    const json_t *effort = json_object_get(chat, "reasoning_effort");
    return req_is(json_object_get(json_object_get(chat, "thinking"), "type"), "enabled") ||
           (effort != NULL && !json_is_null(effort));
}

/* tools, response_format's tool, web search and tool_choice. Anthropic
 * refuses tool_use / tool_result blocks without tools, so a history that
 * has them gets LiteLLM's dummy tool. */
int anthropic_req_tools(struct anthropic_req *r)
{
    const json_t *in = json_object_get(r->chat, "tools");
    const json_t *search = json_object_get(r->chat, "web_search_options");
    const json_t *tc = json_object_get(r->chat, "tool_choice");
    json_t *tools = json_array(), *json_tool, *forced = NULL;
    size_t i;
    const json_t *t;
    if (tools == NULL)
        return req_fail(r, "out of memory");
    if (in != NULL && !json_is_null(in) && !json_is_array(in)) {
        json_decref(tools);
        return req_fail(r, "tools must be an array");
    }
    json_array_foreach(in, i, t) {
        if (map_tool(r, t, tools) < 0) {
            json_decref(tools);
            return -1;
        }
    }
    if (response_format_tool(r, &json_tool) < 0 ||
        (json_tool != NULL && req_push(r, tools, json_tool) < 0) ||
        (json_is_object(search) && req_push(r, tools, web_search_tool(search)) < 0) ||
        (json_array_size(tools) == 0 && r->tool_blocks &&
         req_push(r, tools,
                  json_pack("{s:s, s:s, s:{s:s, s:{}}}", "name", "dummy_tool", "description",
                            "This is a dummy tool call", "input_schema", "type", "object",
                            "properties")) < 0)) {
        json_decref(tools);
        return -1;
    }
    if (json_array_size(tools) == 0)
        json_decref(tools);
    else if (req_put(r, r->out, "tools", tools) < 0)
        return -1;
    /* LiteLLM forces the JSON tool unless thinking is on (Anthropic refuses
     * a forced tool then) or the client named its own tool_choice. */
    if (json_tool != NULL && !thinking_asked(r->chat) && (tc == NULL || json_is_null(tc)) &&
        (forced = json_pack("{s:s, s:s}", "type", "tool", "name", ANTHROPIC_CHAT_JSON_TOOL)) ==
            NULL)
        return req_fail(r, "out of memory");
    return tool_choice_param(r, forced);
}
