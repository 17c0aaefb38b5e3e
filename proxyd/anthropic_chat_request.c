/* anthropic_chat_request.c - an OpenAI chat/completions body -> an Anthropic
 * Messages body, as LiteLLM's AnthropicConfig.map_openai_params,
 * transform_request and the prompt factory's anthropic_messages_pt do it.
 *
 * Design: the body's keys are sorted into refused (OpenAI parameters
 * Anthropic lacks: an error, or dropped under drop_params), ignored (the
 * gateway's own), mapped, and passed through (Anthropic-native keys such as
 * top_k, as LiteLLM passes unknown keys to the provider). Passed-through
 * keys are written first, so a mapped key of the same name wins. This file
 * owns the entry point and the scalar parameters; the messages are
 * anthropic_chat_messages.c's, the tools anthropic_chat_tools.c's, and
 * anthropic_chat_req.h holds the translation in progress they share.
 */
#include "anthropic_chat.h"
#include "anthropic_chat_req.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

/* LiteLLM's reasoning_effort -> thinking budgets (constants.py), its
 * DEFAULT_MAX_TOKENS added on top when thinking is on and max_tokens is not
 * given, and Anthropic's minimum budget (minimal is raised to it). */
#define BUDGET_MIN 1024
#define BUDGET_LOW 1024
#define BUDGET_MEDIUM 2048
#define BUDGET_HIGH 4096
#define BUDGET_XHIGH 8192
#define BUDGET_MAX 16384
#define THINKING_EXTRA_MAX_TOKENS 4096

static bool in_list(const char *k, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(k, list[i]) == 0)
            return true;
    return false;
}

/* OpenAI parameters Anthropic has no equivalent for, in the order LiteLLM's
 * DEFAULT_CHAT_COMPLETION_PARAM_VALUES lists them (its error names them so). */
static const char *const unsupported[] = {"functions",
                                          "function_call",
                                          "n",
                                          "modalities",
                                          "prediction",
                                          "audio",
                                          "presence_penalty",
                                          "frequency_penalty",
                                          "logit_bias",
                                          "seed",
                                          "logprobs",
                                          "top_logprobs",
                                          "verbosity",
                                          "service_tier",
                                          "safety_identifier",
                                          "prompt_cache_key",
                                          "prompt_cache_retention",
                                          "store"};
#define N_UNSUPPORTED (sizeof(unsupported) / sizeof(unsupported[0]))

/* Keys translated below, and the gateway's / LiteLLM's own that never go up. */
static const char *const handled[] = {"messages",
                                      "stream",
                                      "max_tokens",
                                      "max_completion_tokens",
                                      "temperature",
                                      "top_p",
                                      "stop",
                                      "tools",
                                      "tool_choice",
                                      "parallel_tool_calls",
                                      "response_format",
                                      "user",
                                      "reasoning_effort",
                                      "thinking",
                                      "web_search_options",
                                      "model",
                                      "metadata",
                                      "stream_options",
                                      "extra_headers",
                                      "max_retries",
                                      "drop_params",
                                      "allowed_openai_params",
                                      "additional_drop_params",
                                      "api_version"};
#define N_HANDLED (sizeof(handled) / sizeof(handled[0]))

/* A set, non-null parameter LiteLLM counts as given (n = 1 is let through,
 * "langchain sends n=1 as a default value"). */
static bool refused(const json_t *chat, const char *k)
{
    const json_t *v = json_object_get(chat, k);
    if (v == NULL || json_is_null(v))
        return false;
    return !(strcmp(k, "n") == 0 && json_is_integer(v) && json_integer_value(v) == 1);
}

/* LiteLLM's UnsupportedParamsError wording, or the parameters dropped. */
static int check_unsupported(struct anthropic_req *r)
{
    char names[512] = "";
    size_t len = 0;
    for (size_t i = 0; i < N_UNSUPPORTED; i++) {
        if (!refused(r->chat, unsupported[i]))
            continue;
        int n =
            snprintf(names + len, sizeof(names) - len, "%s'%s'", len ? ", " : "", unsupported[i]);
        if (n > 0 && (size_t)n < sizeof(names) - len)
            len += (size_t)n;
    }
    if (len == 0 || r->drop)
        return 0;
    return req_fail(r,
                    "anthropic does not support parameters: [%s], for model=%s. To drop these, set "
                    "`litellm_settings: drop_params: true`",
                    names, r->model);
}

/* ---- parameters ---- */

/* max_completion_tokens wins over max_tokens (LiteLLM maps them in that
 * order); a float is rounded, at least 1. *given says one was set. */
static int max_tokens_param(struct anthropic_req *r, json_int_t *out, bool *given)
{
    const json_t *v = json_object_get(r->chat, "max_completion_tokens");
    if (v == NULL || json_is_null(v))
        v = json_object_get(r->chat, "max_tokens");
    *given = v != NULL && !json_is_null(v);
    if (!*given)
        return 0;
    if (json_is_integer(v))
        *out = json_integer_value(v);
    else if (json_is_real(v) && isfinite(json_real_value(v)) && fabs(json_real_value(v)) < 1e15)
        *out = (json_int_t)fmax(1.0, round(json_real_value(v)));
    else
        return req_fail(r, "max_tokens must be a number");
    return 0;
}

static bool blank(const char *s)
{
    if (*s == '\0')
        return false; /* Python's "".isspace() */
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return false;
    return true;
}

/* stop (string or list) -> stop_sequences; whitespace-only ones are dropped
 * under drop_params (Anthropic refuses them). */
static int stop_param(struct anthropic_req *r)
{
    const json_t *stop = json_object_get(r->chat, "stop");
    json_t *seq = json_array();
    if (seq == NULL)
        return req_fail(r, "out of memory");
    if (json_is_string(stop)) {
        if (!(r->drop && blank(json_string_value(stop))) &&
            req_push(r, seq, json_incref((json_t *)stop)) < 0) {
            json_decref(seq);
            return -1;
        }
    } else if (json_is_array(stop)) {
        size_t i;
        const json_t *v;
        json_array_foreach(stop, i, v) {
            if (!json_is_string(v)) {
                json_decref(seq);
                return req_fail(r, "stop must be a string or a list of strings");
            }
            if (!(r->drop && blank(json_string_value(v))) &&
                req_push(r, seq, json_incref((json_t *)v)) < 0) {
                json_decref(seq);
                return -1;
            }
        }
    }
    if (json_array_size(seq) == 0) {
        json_decref(seq);
        return 0;
    }
    return req_put(r, r->out, "stop_sequences", seq);
}

/* user -> metadata.user_id, unless it looks like an email or a phone
 * number (LiteLLM's _valid_user_id: Anthropic refuses those). */
static bool is_email(const char *s)
{
    const char *at = strchr(s, '@'), *dot, *p;
    if (at == NULL || at == s || strchr(at + 1, '@') != NULL)
        return false;
    for (p = s; p < at; p++)
        if (!isalnum((unsigned char)*p) && strchr("._%+-", *p) == NULL)
            return false;
    for (p = at + 1; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-')
            return false;
    dot = strrchr(at + 1, '.');
    if (dot == NULL || dot == at + 1 || strlen(dot + 1) < 2)
        return false;
    for (p = dot + 1; *p; p++)
        if (!isalpha((unsigned char)*p))
            return false;
    return true;
}

static bool is_phone(const char *s)
{
    size_t n = 0;
    if (*s == '+')
        s++;
    for (; *s; s++, n++)
        if (!isdigit((unsigned char)*s) && !isspace((unsigned char)*s) && strchr("()-", *s) == NULL)
            return false;
    return n >= 7;
}

static int user_param(struct anthropic_req *r)
{
    const char *user = json_string_value(json_object_get(r->chat, "user"));
    if (user == NULL || is_email(user) || is_phone(user))
        return 0;
    return req_put(r, r->out, "metadata", json_pack("{s:s}", "user_id", user));
}

/* A 1-2 digit version number at p (a longer run is a date), or -1. */
static long version_part(const char *p, const char **end)
{
    size_t n = 0;
    long v = 0;
    while (isdigit((unsigned char)p[n]) && n < 3)
        v = v * 10 + (p[n++] - '0');
    *end = p + n;
    return n >= 1 && n <= 2 ? v : -1;
}

/* Claude 4.6+ Opus/Sonnet (and any 5.x) take adaptive thinking with an
 * output_config effort, as LiteLLM's model map marks them. Dates are not
 * versions: "claude-sonnet-4-20250514" is 4.0, "claude-3-7-sonnet-2025..."
 * names its version before the family (and is older anyway). */
static bool adaptive_model(const char *model)
{
    static const char *const families[] = {"opus-", "sonnet-", "haiku-"};
    for (size_t f = 0; f < 3; f++) {
        const char *p = strstr(model, families[f]), *end;
        if (p == NULL)
            continue;
        long major = version_part(p + strlen(families[f]), &end), minor = 0;
        if (major < 0)
            continue;
        if (*end == '-' || *end == '.' || *end == '_')
            minor = version_part(end + 1, &end);
        if (major >= 5 || (f < 2 && major == 4 && minor >= 6))
            return true;
    }
    return false;
}

/* reasoning_effort -> thinking (and output_config.effort on adaptive models). */
static int reasoning_param(struct anthropic_req *r)
{
    static const struct {
        const char *effort, *adaptive;
        int budget;
    } map[] = {{"minimal", "low", BUDGET_MIN},      {"low", "low", BUDGET_LOW},
               {"medium", "medium", BUDGET_MEDIUM}, {"high", "high", BUDGET_HIGH},
               {"xhigh", "xhigh", BUDGET_XHIGH},    {"max", "max", BUDGET_MAX}};
    const json_t *thinking = json_object_get(r->chat, "thinking");
    const char *effort = json_string_value(json_object_get(r->chat, "reasoning_effort"));
    if (json_is_object(thinking)) /* given as Anthropic spells it: wins */
        return req_put(r, r->out, "thinking", json_deep_copy(thinking));
    if (effort == NULL || strcmp(effort, "none") == 0)
        return 0;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(effort, map[i].effort) != 0)
            continue;
        if (adaptive_model(r->model))
            return req_put(r, r->out, "thinking", json_pack("{s:s}", "type", "adaptive")) < 0
                       ? -1
                       : req_put(r, r->out, "output_config",
                                 json_pack("{s:s}", "effort", map[i].adaptive));
        return req_put(r, r->out, "thinking",
                       json_pack("{s:s, s:i}", "type", "enabled", "budget_tokens", map[i].budget));
    }
    return req_fail(r,
                    "Unmapped reasoning effort: '%s'. Must be one of: 'minimal', 'low', 'medium', "
                    "'high', 'xhigh', 'max', 'none'.",
                    effort);
}

/* Anthropic requires max_tokens; with a thinking budget and none given,
 * LiteLLM asks for the budget plus its DEFAULT_MAX_TOKENS. */
static int put_max_tokens(struct anthropic_req *r)
{
    json_int_t n = ANTHROPIC_CHAT_DEFAULT_MAX_TOKENS;
    bool given;
    if (max_tokens_param(r, &n, &given) < 0)
        return -1;
    const json_t *thinking = json_object_get(r->out, "thinking");
    const json_t *budget = json_object_get(thinking, "budget_tokens");
    if (!given && req_is(json_object_get(thinking, "type"), "enabled") && json_is_integer(budget))
        n = json_integer_value(budget) + THINKING_EXTRA_MAX_TOKENS;
    return req_put(r, r->out, "max_tokens", json_integer(n));
}

/* Anthropic-native keys LiteLLM would pass on as they are (top_k, ...). */
static int pass_through(struct anthropic_req *r)
{
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)r->chat, k, v) {
        if (in_list(k, handled, N_HANDLED) || in_list(k, unsupported, N_UNSUPPORTED))
            continue;
        if (req_put(r, r->out, k, json_deep_copy(v)) < 0)
            return -1;
    }
    return 0;
}

static int translate_params(struct anthropic_req *r)
{
    const json_t *temperature = json_object_get(r->chat, "temperature");
    const json_t *top_p = json_object_get(r->chat, "top_p");
    if (json_is_true(json_object_get(r->chat, "stream")) &&
        req_put(r, r->out, "stream", json_true()) < 0)
        return -1;
    if (temperature != NULL && !json_is_null(temperature) &&
        req_put(r, r->out, "temperature", json_deep_copy(temperature)) < 0)
        return -1;
    if (top_p != NULL && !json_is_null(top_p) &&
        req_put(r, r->out, "top_p", json_deep_copy(top_p)) < 0)
        return -1;
    if (stop_param(r) < 0 || user_param(r) < 0 || reasoning_param(r) < 0 ||
        anthropic_req_tools(r) < 0 || put_max_tokens(r) < 0)
        return -1;
    return 0;
}

json_t *anthropic_chat_request(const json_t *chat, const char *upstream_model, bool drop_params,
                               char *err, size_t errlen)
{
    struct anthropic_req r = {
        .chat = chat, .model = upstream_model ? upstream_model : "", .err = err, .errlen = errlen};
    if (!json_is_object(chat)) {
        req_fail(&r, "the request body must be a JSON object");
        return NULL;
    }
    r.drop = drop_params || json_is_true(json_object_get(chat, "drop_params"));
    if (check_unsupported(&r) < 0)
        return NULL;
    if ((r.out = json_object()) == NULL) {
        req_fail(&r, "out of memory");
        return NULL;
    }
    if (req_put(&r, r.out, "model", json_string(r.model)) < 0 || pass_through(&r) < 0 ||
        anthropic_req_messages(&r) < 0 || translate_params(&r) < 0) {
        json_decref(r.out);
        return NULL;
    }
    return r.out;
}
