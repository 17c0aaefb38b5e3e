/*
 * fake_responses.c - fake-upstream's OpenAI Responses API: POST
 * /v1/responses (plain, "stream": true, or "background": true), and on a
 * stored response GET /v1/responses/ID, DELETE /v1/responses/ID, POST
 * /v1/responses/ID/cancel and GET /v1/responses/ID/input_items; also
 * without "/v1" and on Azure's /openai/responses...?api-version=V (the
 * router checks the api-version and the key).
 *
 * A create body needs model (a string) and input (a string or an array of
 * objects).  Besides the common mock_* fields (fake_upstream.c:
 * mock_content, mock_chunks, mock_status, the delays and the stall,
 * mock_usage_raw, and mock_answer_fields set on the response object), it
 * may hold:
 *   mock_usage {input_tokens, cached_tokens, output_tokens,
 *               reasoning_tokens}   (defaults: --prompt-tokens,
 *                                   0, --completion-tokens, 0)
 *   mock_web_search_calls N         N web_search_call items before the
 *                                   message
 *   mock_background_ms N            a background response completes N ms
 *                                   after its creation (default 200)
 *
 * Every response but those created with "store": false is kept, the last
 * STORE_MAX of them, for GET, DELETE, cancel and input_items (404 for an
 * unknown id).  A background response is answered at once as "queued"; it
 * shows "in_progress" until mock_background_ms have passed, then
 * "completed" with its output and usage (computed when asked, no timer).
 * Until then it can be cancelled, and stays "cancelled"; cancelling a
 * completed response is a 400, cancelling a cancelled one answers it again.
 * Queued, in_progress and cancelled responses have output [] and usage
 * null.  input_items lists the input as items (a string is one user
 * message; a role/content object a message item), newest first as OpenAI
 * does unless ?order=asc.
 *
 * A stream sends response.created, response.in_progress, for each web
 * search call response.output_item.added and .done, then for the message
 * response.output_item.added, response.content_part.added, one
 * response.output_text.delta per word, response.output_text.done,
 * response.content_part.done, response.output_item.done and
 * response.completed (the whole response); each event is "event: TYPE"
 * and data with its type and sequence_number, and there is no [DONE].
 * mock_stall_after_chunks counts the text deltas.
 */
#include "fake_responses.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/keyvalq_struct.h>

#include "fake_reply.h"

#define STORE_MAX 10000
#define DEFAULT_BACKGROUND_MS 200L
#define MAX_BACKGROUND_MS 3600000L
#define MAX_WEB_SEARCH_CALLS 100L

/* A response as created: its completed form and what its state depends on. */
struct stored {
    char id[64];
    json_t *response;   /* the completed form, owned */
    json_t *input;      /* the input items, owned */
    long long ready_ms; /* monotonic ms when a background response completes */
    int background;
    int cancelled;
};

/* The last STORE_MAX responses kept, in a ring. */
struct responses_store {
    struct stored *slots[STORE_MAX];
    size_t next; /* the slot the next response takes */
};

/* The usage of one response. */
struct usage {
    json_int_t input, cached, output, reasoning;
};

enum stage {
    RS_CREATED,
    RS_IN_PROGRESS,
    RS_CALLS, /* the web search calls' added and done events */
    RS_ITEM_ADDED,
    RS_PART_ADDED,
    RS_DELTA,
    RS_TEXT_DONE,
    RS_PART_DONE,
    RS_ITEM_DONE,
    RS_COMPLETED,
};

/* A response's SSE stream: what to send and how far it got. */
struct responses_stream {
    struct stream base; /* first: paced by fake_reply.c */
    json_t *response;   /* the completed form, owned */
    json_t *started;    /* the in_progress form, owned */
    json_t *message;    /* the message item (borrowed from `response`) */
    struct words words;
    long stall_after;
    json_int_t sequence;
    size_t calls;       /* web search calls */
    size_t call;        /* their events sent */
    enum stage stage;
};

static long long now_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return (long long)time(NULL) * 1000;
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- store */

static void stored_free(struct stored *r)
{
    if (!r)
        return;
    json_decref(r->response);
    json_decref(r->input);
    free(r);
}

void responses_store_free(struct responses_store *store)
{
    size_t i;

    if (!store)
        return;
    for (i = 0; i < STORE_MAX; i++)
        stored_free(store->slots[i]);
    free(store);
}

/* Keep `r` (taken over), forgetting the oldest if the store is full. */
static void store_put(struct app *app, struct stored *r)
{
    struct responses_store *store = app->responses;

    if (!store && !(store = app->responses = calloc(1, sizeof *store))) {
        fprintf(stderr, "fake-upstream: cannot keep response %s\n", r->id);
        stored_free(r);
        return;
    }
    stored_free(store->slots[store->next]);
    store->slots[store->next] = r;
    store->next = (store->next + 1) % STORE_MAX;
}

/* The slot holding `id`, or NULL. */
static struct stored **store_find(struct responses_store *store, const char *id)
{
    size_t i;

    for (i = 0; store && i < STORE_MAX; i++)
        if (store->slots[i] && strcmp(store->slots[i]->id, id) == 0)
            return &store->slots[i];
    return NULL;
}

static const char *stored_status(const struct stored *r)
{
    if (r->cancelled)
        return "cancelled";
    if (r->background && now_ms() < r->ready_ms)
        return "in_progress";
    return "completed";
}

/* `r` as a client sees it with `status`: only a completed response has its
 * output and usage.  A new reference, or NULL. */
static json_t *stored_view(const struct stored *r, const char *status)
{
    json_t *v;

    if (strcmp(status, "completed") == 0)
        return json_incref(r->response);
    v = json_copy(r->response); /* shallow: the members stay shared */
    if (!v || json_object_set_new(v, "status", json_string(status)) != 0
        || json_object_set_new(v, "output", json_array()) != 0
        || json_object_set_new(v, "usage", json_null()) != 0) {
        json_decref(v);
        return NULL;
    }
    return v;
}

/* ------------------------------------------------------------------ body */

/* Checks model and input; -1 (with `msg`) if bad. */
static int check_body(const json_t *body, char *msg, size_t size)
{
    const json_t *input = json_object_get(body, "input");
    const json_t *item;
    size_t i;

    if (!json_is_object(body))
        snprintf(msg, size, "The request body must be a JSON object.");
    else if (!json_is_string(json_object_get(body, "model")))
        snprintf(msg, size, "Missing required parameter: 'model' (a string).");
    else if (!json_is_string(input) && !json_is_array(input))
        snprintf(msg, size, "Missing required parameter: 'input' (a string or an array).");
    else
        msg[0] = '\0';
    json_array_foreach(json_is_array(input) && !msg[0] ? input : NULL, i, item) {
        if (!json_is_object(item)) {
            snprintf(msg, size, "Invalid type for 'input[%zu]': expected an object.", i);
            break;
        }
    }
    return msg[0] ? -1 : 0;
}

/* Fill `u` from the defaults and mock_usage; an error message or NULL. */
static const char *read_usage(const struct app *app, const json_t *body, struct usage *u)
{
    const json_t *mock = json_object_get(body, "mock_usage");
    const char *err;

    u->input = app->opt.prompt_tokens;
    u->cached = 0;
    u->output = app->opt.completion_tokens;
    u->reasoning = 0;
    if (!mock)
        return NULL;
    if (!json_is_object(mock))
        return "mock_usage must be an object";
    if ((err = mock_read_count(mock, "input_tokens", &u->input, NULL)) != NULL
        || (err = mock_read_count(mock, "cached_tokens", &u->cached, NULL)) != NULL
        || (err = mock_read_count(mock, "output_tokens", &u->output, NULL)) != NULL)
        return err;
    return mock_read_count(mock, "reasoning_tokens", &u->reasoning, NULL);
}

static json_t *usage_json(const struct usage *u)
{
    return json_pack("{s:I, s:{s:I}, s:I, s:{s:I}, s:I}", "input_tokens", u->input,
                     "input_tokens_details", "cached_tokens", u->cached, "output_tokens",
                     u->output, "output_tokens_details", "reasoning_tokens", u->reasoning,
                     "total_tokens", u->input + u->output);
}

/* A message item's content: a string becomes one text part. */
static json_t *message_content(const char *role, const json_t *content)
{
    if (json_is_string(content))
        return json_pack("[{s:s, s:O}]", "type",
                         strcmp(role, "assistant") == 0 ? "output_text" : "input_text", "text",
                         content);
    return content ? json_incref((json_t *)content) : json_array();
}

/* One input item as OpenAI lists it: a role/content object becomes a
 * message item, other items are kept; each has an id. */
static json_t *input_item(struct app *app, const json_t *e)
{
    const char *type = json_string_value(json_object_get(e, "type"));
    const char *role = json_string_value(json_object_get(e, "role"));
    const char *given = json_string_value(json_object_get(e, "id"));
    json_t *item;
    char id[64];

    mock_new_id(app, "msg_", id, sizeof id);
    if (type && strcmp(type, "message") != 0) {
        item = json_copy((json_t *)e);
        if (item && !json_object_get(item, "id")
            && json_object_set_new(item, "id", json_string(id)) != 0) {
            json_decref(item);
            item = NULL;
        }
        return item;
    }
    role = role ? role : "user";
    return json_pack("{s:s, s:s, s:s, s:s, s:o}", "type", "message", "id", given ? given : id,
                     "status", "completed", "role", role, "content",
                     message_content(role, json_object_get(e, "content")));
}

/* The input as a list of items; NULL if out of memory. */
static json_t *input_items(struct app *app, const json_t *input)
{
    json_t *items = json_array();
    json_t *one = json_is_string(input) ? json_pack("{s:s, s:O}", "role", "user", "content",
                                                    input)
                                        : NULL;
    const json_t *e;
    size_t i;

    if (one && items && json_array_append_new(items, input_item(app, one)) != 0) {
        json_decref(items);
        items = NULL;
    }
    json_decref(one);
    json_array_foreach(json_is_array(input) && items ? input : NULL, i, e) {
        if (json_array_append_new(items, input_item(app, e)) != 0) {
            json_decref(items);
            return NULL;
        }
    }
    return items;
}

/* ------------------------------------------------------------- responses */

/* The output items: `calls` web search calls, then the message of `a`. */
static json_t *output_json(struct app *app, long calls, const struct answer *a)
{
    json_t *output = json_array();
    size_t len = 0;
    char *text = mock_answer_text(a, &len);
    char id[64];
    long i;

    for (i = 0; output && i < calls; i++) {
        mock_new_id(app, "ws_", id, sizeof id);
        if (json_array_append_new(output, json_pack("{s:s, s:s, s:s, s:{s:s, s:s}}", "type",
                                                    "web_search_call", "id", id, "status",
                                                    "completed", "action", "type", "search",
                                                    "query", "q"))
            != 0) {
            json_decref(output);
            output = NULL;
        }
    }
    mock_new_id(app, "msg_", id, sizeof id);
    if (output
        && (!text
            || json_array_append_new(output,
                                     json_pack("{s:s, s:s, s:s, s:s, s:[{s:s, s:s%, s:[]}]}",
                                               "type", "message", "id", id, "status",
                                               "completed", "role", "assistant", "content",
                                               "type", "output_text", "text", text, len,
                                               "annotations"))
                   != 0)) {
        json_decref(output);
        output = NULL;
    }
    free(text);
    return output;
}

/* The body's `name` if it has one, else `fallback` (stolen). */
static json_t *echo(const json_t *body, const char *name, json_t *fallback)
{
    json_t *value = json_object_get(body, name);

    if (!value)
        return fallback;
    json_decref(fallback);
    return json_incref(value);
}

/* The completed response object; `output` and `usage` are stolen. */
static json_t *response_json(const struct exchange *ex, const char *id, json_t *output,
                             json_t *usage)
{
    const json_t *b = ex->body;
    json_t *r = json_pack(
        "{s:s, s:s, s:I, s:s, s:b, s:n, s:n, s:o, s:o, s:O, s:o, s:b, s:o, s:{s:n, s:n},"
        " s:b, s:o, s:{s:{s:s}}, s:s, s:o, s:o, s:s, s:o, s:n, s:o}",
        "id", id, "object", "response", "created_at", (json_int_t)time(NULL), "status",
        "completed", "background", json_is_true(json_object_get(b, "background")), "error",
        "incomplete_details", "instructions", echo(b, "instructions", json_null()),
        "max_output_tokens", echo(b, "max_output_tokens", json_null()), "model",
        json_object_get(b, "model"), "output", output, "parallel_tool_calls", 1,
        "previous_response_id", echo(b, "previous_response_id", json_null()), "reasoning",
        "effort", "summary", "store", !json_is_false(json_object_get(b, "store")),
        "temperature", echo(b, "temperature", json_real(1.0)), "text", "format", "type", "text",
        "tool_choice", "auto", "tools", echo(b, "tools", json_array()), "top_p",
        echo(b, "top_p", json_real(1.0)), "truncation", "disabled", "usage", usage, "user",
        "metadata", echo(b, "metadata", json_object()));

    return answer_extras_add_fields(&ex->extras, r);
}

/* The response to `ex`, complete; NULL if out of memory. */
static struct stored *stored_new(struct exchange *ex, const struct answer *a,
                                 const struct usage *u, long calls, long background_ms)
{
    struct stored *r = calloc(1, sizeof *r);

    if (!r)
        return NULL;
    mock_new_id(ex->app, "resp_", r->id, sizeof r->id);
    r->background = json_is_true(json_object_get(ex->body, "background"));
    r->ready_ms = now_ms() + background_ms;
    r->input = input_items(ex->app, json_object_get(ex->body, "input"));
    r->response = response_json(ex, r->id, output_json(ex->app, calls, a),
                                answer_extras_usage(&ex->extras, usage_json(u)));
    if (!r->input || !r->response) {
        stored_free(r);
        return NULL;
    }
    return r;
}

/* ---------------------------------------------------------------- streams */

static void stream_free(struct stream *base)
{
    struct responses_stream *s = (struct responses_stream *)base;

    json_decref(s->response);
    json_decref(s->started);
    words_clear(&s->words);
    free(s);
}

/* Send `type` with the members of `fields` (stolen; NULL sends nothing). */
static void send_event(struct responses_stream *s, struct evhttp_request *req,
                       const char *type, json_t *fields)
{
    json_t *event = fields ? json_pack("{s:s, s:I}", "type", type, "sequence_number",
                                       s->sequence++)
                           : NULL;

    if (event && json_object_update(event, fields) != 0) {
        json_decref(event);
        event = NULL;
    }
    json_decref(fields);
    stream_send_event(req, event);
}

/* Send `type` about output item `index`, `item` (stolen). */
static void send_item_event(struct responses_stream *s, struct evhttp_request *req,
                            const char *type, size_t index, json_t *item)
{
    send_event(s, req, type,
               json_pack("{s:I, s:o}", "output_index", (json_int_t)index, "item", item));
}

/* Send `type` about the message's text part, with `name`: `value` (stolen). */
static void send_part_event(struct responses_stream *s, struct evhttp_request *req,
                            const char *type, const char *name, json_t *value)
{
    send_event(s, req, type,
               json_pack("{s:O, s:I, s:i, s:o}", "item_id", json_object_get(s->message, "id"),
                         "output_index", (json_int_t)s->calls, "content_index", 0, name,
                         value));
}

/* `item` as it is first announced: in progress, a message without content. */
static json_t *item_in_progress(const json_t *item)
{
    json_t *copy = json_copy((json_t *)item);

    if (!copy || json_object_set_new(copy, "status", json_string("in_progress")) != 0
        || (json_object_get(copy, "content")
            && json_object_set_new(copy, "content", json_array()) != 0)) {
        json_decref(copy);
        return NULL;
    }
    return copy;
}

/* A web search call's added or done event (two per call); 1 after the
 * last. */
static int send_call_event(struct responses_stream *s, struct evhttp_request *req)
{
    size_t index = s->call / 2;
    const json_t *item = json_array_get(json_object_get(s->response, "output"), index);

    if (s->call % 2 == 0)
        send_item_event(s, req, "response.output_item.added", index, item_in_progress(item));
    else
        send_item_event(s, req, "response.output_item.done", index,
                        json_incref((json_t *)item));
    return ++s->call >= 2 * s->calls;
}

/* Send the next text delta; 1 after the last. */
static int send_delta(struct responses_stream *s, struct evhttp_request *req)
{
    size_t len;
    const char *word = words_at(&s->words, s->base.sent, &len);

    send_part_event(s, req, "response.output_text.delta", "delta", json_stringn(word, len));
    return ++s->base.sent >= s->words.total;
}

/* Send the event of the current stage; 1 when the stage is done. */
static int send_stage(struct responses_stream *s, struct evhttp_request *req)
{
    json_t *part = json_array_get(json_object_get(s->message, "content"), 0);

    switch (s->stage) {
    case RS_CREATED:
    case RS_IN_PROGRESS:
        send_event(s, req, s->stage == RS_CREATED ? "response.created" : "response.in_progress",
                   json_pack("{s:O}", "response", s->started));
        break;
    case RS_CALLS: return send_call_event(s, req);
    case RS_ITEM_ADDED:
        send_item_event(s, req, "response.output_item.added", s->calls,
                        item_in_progress(s->message));
        break;
    case RS_PART_ADDED:
        send_part_event(s, req, "response.content_part.added", "part",
                        json_pack("{s:s, s:[], s:s}", "type", "output_text", "annotations",
                                  "text", ""));
        break;
    case RS_DELTA: return send_delta(s, req);
    case RS_TEXT_DONE:
        send_part_event(s, req, "response.output_text.done", "text",
                        json_incref(json_object_get(part, "text")));
        break;
    case RS_PART_DONE:
        send_part_event(s, req, "response.content_part.done", "part", json_incref(part));
        break;
    case RS_ITEM_DONE:
        send_item_event(s, req, "response.output_item.done", s->calls,
                        json_incref(s->message));
        break;
    case RS_COMPLETED:
        send_event(s, req, "response.completed", json_pack("{s:O}", "response", s->response));
        break;
    }
    return 1;
}

static enum stream_step stream_next(struct stream *base, struct evhttp_request *req)
{
    struct responses_stream *s = (struct responses_stream *)base;

    if (s->stage >= RS_DELTA && s->stall_after >= 0 && base->sent == (size_t)s->stall_after)
        return STREAM_STALLED;
    if (!send_stage(s, req))
        return STREAM_SENT;
    if (s->stage == RS_COMPLETED)
        return STREAM_OVER;
    s->stage = (enum stage)(s->stage + 1);
    if (s->stage == RS_CALLS && s->calls == 0)
        s->stage = RS_ITEM_ADDED;
    return STREAM_SENT;
}

/* The stream of `r`, whose text is `a`'s; NULL if out of memory. */
static struct stream *stream_new(const struct stored *r, const struct answer *a)
{
    struct responses_stream *s = calloc(1, sizeof *s);
    const json_t *output = json_object_get(r->response, "output");

    if (!s)
        return NULL;
    s->base.next = stream_next;
    s->base.release = stream_free;
    s->base.chunk_delay_ms = a->chunk_delay_ms;
    s->response = json_incref(r->response);
    s->started = stored_view(r, "in_progress");
    s->calls = json_array_size(output) - 1; /* the message is last */
    s->message = json_array_get(output, s->calls);
    s->stall_after = a->stall_after;
    s->stage = RS_CREATED;
    if (!s->started || !s->message || words_init(&s->words, a) != 0) {
        stream_free(&s->base);
        return NULL;
    }
    return &s->base;
}

/* -------------------------------------------------------------- handlers */

/* Read the create request; -1 (with `msg`) if it is bad. */
static int read_create(struct exchange *ex, struct answer *a, struct usage *u, long *calls,
                       long *background_ms, char *msg, size_t size)
{
    const char *err;

    *calls = 0;
    *background_ms = DEFAULT_BACKGROUND_MS;
    if (check_body(ex->body, msg, size) != 0 || mock_read_answer(ex->body, a, msg, size) != 0
        || mock_read_long(ex->body, "mock_web_search_calls", 0, MAX_WEB_SEARCH_CALLS, calls,
                          msg, size) != 0
        || mock_read_long(ex->body, "mock_background_ms", 0, MAX_BACKGROUND_MS, background_ms,
                          msg, size) != 0)
        return -1;
    if ((err = read_usage(ex->app, ex->body, u)) != NULL) {
        snprintf(msg, size, "%s", err);
        return -1;
    }
    return 0;
}

void responses_handle_create(struct exchange *ex)
{
    struct answer a;
    struct usage u;
    struct stored *r;
    long calls, background_ms;
    char msg[256];

    if (read_create(ex, &a, &u, &calls, &background_ms, msg, sizeof msg) != 0) {
        reply_bad_request(ex, msg);
        return;
    }
    if (reply_if_mocked_error(ex))
        return;
    r = stored_new(ex, &a, &u, calls, background_ms);
    if (!r) {
        reply_error(ex, HTTP_INTERNAL, "cannot build the response", "server_error", NULL);
        return;
    }
    if (json_is_true(json_object_get(ex->body, "stream")))
        reply_stream(ex, stream_new(r, &a));
    else
        reply_json(ex, HTTP_OK, stored_view(r, r->background ? "queued" : "completed"));
    if (json_is_false(json_object_get(ex->body, "store")))
        stored_free(r);
    else
        store_put(ex->app, r);
}

static void cancel(struct exchange *ex, struct stored *r)
{
    if (strcmp(stored_status(r), "completed") == 0) {
        reply_bad_request(ex, "Cannot cancel a completed response.");
        return;
    }
    r->cancelled = 1;
    reply_json(ex, HTTP_OK, stored_view(r, "cancelled"));
}

/* True if the query asks for ?order=asc (OpenAI lists newest first). */
static int ascending(struct evhttp_request *req)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    struct evkeyvalq params;
    const char *order;
    int asc;

    if (!query)
        return 0;
    /* evhttp_parse_query_str initialises `params`, and empties it on error */
    if (evhttp_parse_query_str(query, &params) != 0) {
        evhttp_clear_headers(&params);
        return 0;
    }
    order = evhttp_find_header(&params, "order");
    asc = order && strcmp(order, "asc") == 0;
    evhttp_clear_headers(&params);
    return asc;
}

static void list_input(struct exchange *ex, const struct stored *r)
{
    size_t n = json_array_size(r->input), i;
    int asc = ascending(ex->req);
    json_t *data = json_array();

    for (i = 0; data && i < n; i++) {
        if (json_array_append(data, json_array_get(r->input, asc ? i : n - 1 - i)) != 0) {
            json_decref(data);
            data = NULL;
        }
    }
    reply_json(ex, HTTP_OK,
               data ? json_pack("{s:s, s:O, s:O?, s:O?, s:b}", "object", "list", "data", data,
                                "first_id", json_object_get(json_array_get(data, 0), "id"),
                                "last_id", json_object_get(json_array_get(data, n - 1), "id"),
                                "has_more", 0)
                    : NULL);
    json_decref(data);
}

/* True if `method` on ID/`action` is a route of a stored response. */
static int item_route(enum evhttp_cmd_type method, const char *action)
{
    if (!*action)
        return method == EVHTTP_REQ_GET || method == EVHTTP_REQ_DELETE;
    if (strcmp(action, "cancel") == 0)
        return method == EVHTTP_REQ_POST;
    return strcmp(action, "input_items") == 0 && method == EVHTTP_REQ_GET;
}

void responses_handle_item(struct exchange *ex, enum evhttp_cmd_type method, const char *rest)
{
    const char *slash = strchr(rest, '/');
    const char *action = slash ? slash + 1 : "";
    int len = (int)(slash ? (size_t)(slash - rest) : strlen(rest));
    struct stored **slot;
    char id[128], message[256];

    snprintf(id, sizeof id, "%.*s", len, rest);
    if (len == 0 || !item_route(method, action)) {
        snprintf(message, sizeof message, "Invalid URL (%.200s)", evhttp_request_get_uri(ex->req));
        reply_error(ex, HTTP_NOTFOUND, message, "not_found_error", NULL);
        return;
    }
    slot = store_find(ex->app->responses, id);
    if (!slot) {
        snprintf(message, sizeof message, "Response with id '%.100s' not found.", id);
        reply_error(ex, HTTP_NOTFOUND, message, "invalid_request_error", NULL);
    } else if (method == EVHTTP_REQ_GET && !*action) {
        reply_json(ex, HTTP_OK, stored_view(*slot, stored_status(*slot)));
    } else if (method == EVHTTP_REQ_DELETE) {
        reply_json(ex, HTTP_OK, json_pack("{s:s, s:s, s:b}", "id", id, "object", "response",
                                          "deleted", 1));
        stored_free(*slot);
        *slot = NULL;
    } else if (method == EVHTTP_REQ_POST) {
        cancel(ex, *slot);
    } else {
        list_input(ex, *slot);
    }
}
