/* test_anthropic_chat.c - the OpenAI chat <-> Anthropic Messages translator
 * (proxyd/anthropic_chat*.c) against golden cases, one JSON file per case.
 *
 * Usage: test_anthropic_chat DIR, where DIR holds
 *   request/NAME.json  {"model", "drop_params"?, "chat", "expect"}, or "error": text
 *                      the error must contain
 *   answer/NAME.json   {"model", "message", "expect"} ("expect": null: a malformed message)
 *   usage/NAME.json    {"usage", "expect"}
 *   error/NAME.json    {"status", "body", "expect"}
 *   stream/NAME.json   {"model", "id_hint"?, "events", "expect": the chunks, "usage"?: the
 *                      Anthropic usage at the end, "fail_at"?: the event refused with -1}
 * "created" is left out of expected answers and chunks: the test checks it
 * is now, and that one stream's chunks share it and their id.
 */
#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>
#include <time.h>

#include "anthropic_chat.h"
#include "check.h"

static time_t started;

static void show(const char *what, const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    fprintf(stderr, "  %s: %s\n", what, s ? s : "(null)");
    free(s);
}

/* CHECKs got == want, printing both when they differ. */
static void check_json(const char *name, const json_t *got, const json_t *want)
{
    bool same = got != NULL && want != NULL && json_equal(got, want);
    CHECK(same, "%s: translation differs", name);
    if (!same) {
        show("got ", got);
        show("want", want);
    }
}

/* Removes "created" from obj after checking it is the time of the run. */
static json_int_t take_created(const char *name, json_t *obj)
{
    json_t *c = json_object_get(obj, "created");
    json_int_t t = json_integer_value(c);
    CHECK(json_is_integer(c) && t >= started && t <= time(NULL) + 1, "%s: created %lld", name,
          (long long)t);
    json_object_del(obj, "created");
    return t;
}

static void request_case(const char *name, const json_t *c)
{
    const json_t *chat = json_object_get(c, "chat");
    const char *error = json_string_value(json_object_get(c, "error"));
    json_t *before = json_deep_copy(chat);
    char err[512] = "";
    json_t *got =
        anthropic_chat_request(chat, json_string_value(json_object_get(c, "model")),
                               json_is_true(json_object_get(c, "drop_params")), err, sizeof(err));
    if (error != NULL) {
        CHECK(got == NULL, "%s: should be refused", name);
        CHECK(strstr(err, error) != NULL, "%s: error '%s', want '%s'", name, err, error);
    } else {
        CHECK(got != NULL, "%s: refused: %s", name, err);
        check_json(name, got, json_object_get(c, "expect"));
    }
    CHECK(json_equal(before, chat), "%s: the request body was changed", name);
    json_decref(before);
    json_decref(got);
}

static void answer_case(const char *name, const json_t *c)
{
    const json_t *want = json_object_get(c, "expect");
    json_t *got = anthropic_chat_answer(json_object_get(c, "message"),
                                        json_string_value(json_object_get(c, "model")));
    if (json_is_null(want)) {
        CHECK(got == NULL, "%s: a malformed message should give NULL", name);
    } else if (got != NULL) {
        take_created(name, got);
        check_json(name, got, want);
    } else {
        CHECK(got != NULL, "%s: no answer", name);
    }
    json_decref(got);
}

static void usage_case(const char *name, const json_t *c)
{
    json_t *got = anthropic_chat_usage(json_object_get(c, "usage"));
    check_json(name, got, json_object_get(c, "expect"));
    json_decref(got);
}

static void error_case(const char *name, const json_t *c)
{
    json_t *got = anthropic_chat_error(json_object_get(c, "body"),
                                       (int)json_integer_value(json_object_get(c, "status")));
    check_json(name, got, json_object_get(c, "expect"));
    json_decref(got);
}

/* Checks every chunk shares the first one's id and created, then drops created. */
static void check_chunks(const char *name, json_t *chunks)
{
    size_t i;
    json_t *ch;
    const char *id = NULL;
    json_int_t created = 0;
    json_array_foreach(chunks, i, ch) {
        if (json_object_get(ch, "error") != NULL)
            continue; /* an in-stream error has no id */
        const char *cid = json_string_value(json_object_get(ch, "id"));
        json_int_t t = take_created(name, ch);
        if (id == NULL) {
            id = cid;
            created = t;
        }
        CHECK(cid != NULL && id != NULL && strcmp(cid, id) == 0 && t == created,
              "%s: chunk %zu has another id or created", name, i);
    }
}

static void stream_case(const char *name, const json_t *c)
{
    const json_t *events = json_object_get(c, "events");
    const json_t *fail_at = json_object_get(c, "fail_at");
    const json_t *want_usage = json_object_get(c, "usage");
    struct anthropic_chat_stream *s =
        anthropic_chat_stream_new(json_string_value(json_object_get(c, "model")),
                                  json_string_value(json_object_get(c, "id_hint")));
    json_t *chunks = json_array();
    size_t i;
    const json_t *ev;
    CHECK(s != NULL && anthropic_chat_stream_usage(s) == NULL, "%s: new stream", name);
    json_array_foreach(events, i, ev) {
        size_t n = json_array_size(chunks);
        int rc = anthropic_chat_stream_event(s, ev, chunks);
        if (json_is_integer(fail_at) && (json_int_t)i == json_integer_value(fail_at)) {
            CHECK(rc == -1, "%s: event %zu should be refused", name, i);
            CHECK(json_array_size(chunks) == n, "%s: a refused event added chunks", name);
            break;
        }
        CHECK(rc == 0, "%s: event %zu refused", name, i);
    }
    check_chunks(name, chunks);
    check_json(name, chunks, json_object_get(c, "expect"));
    if (want_usage != NULL)
        check_json(name, anthropic_chat_stream_usage(s), want_usage);
    json_decref(chunks);
    anthropic_chat_stream_free(s);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int json_file(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return n > 5 && strcmp(d->d_name + n - 5, ".json") == 0;
}

/* Runs every DIR/kind/NAME.json through fn; returns how many there were. */
static int run_dir(const char *dir, const char *kind, void (*fn)(const char *name, const json_t *c))
{
    char path[4096];
    struct dirent **names;
    snprintf(path, sizeof(path), "%s/%s", dir, kind);
    int n = scandir(path, &names, json_file, by_name);
    CHECK(n > 0, "%s: no cases", path);
    for (int i = 0; i < n; i++) {
        char file[8192], name[512];
        json_error_t jerr;
        snprintf(file, sizeof(file), "%s/%s", path, names[i]->d_name);
        snprintf(name, sizeof(name), "%s/%s", kind, names[i]->d_name);
        json_t *c = json_load_file(file, 0, &jerr);
        CHECK(c != NULL, "%s: %s (line %d)", file, jerr.text, jerr.line);
        if (c != NULL)
            fn(name, c);
        json_decref(c);
        free(names[i]);
    }
    free(names);
    return n;
}

/* What no data file can say: bad arguments, and the stream before it starts. */
static void edges(void)
{
    char err[256];
    json_t *arr = json_array(), *ev = json_pack("{s:s}", "type", "ping");
    CHECK(anthropic_chat_request(NULL, "m", false, err, sizeof(err)) == NULL, "NULL body");
    CHECK(anthropic_chat_answer(NULL, "m") == NULL, "NULL message");
    CHECK(anthropic_chat_stream_event(NULL, ev, arr) == -1, "NULL stream");
    struct anthropic_chat_stream *s = anthropic_chat_stream_new(NULL, NULL);
    CHECK(anthropic_chat_stream_event(s, ev, arr) == 0 && json_array_size(arr) == 0, "ping");
    CHECK(anthropic_chat_stream_event(s, ev, NULL) == -1, "chunks must be an array");
    CHECK(anthropic_chat_stream_usage(s) == NULL, "no usage before message_start");
    anthropic_chat_stream_free(s);
    anthropic_chat_stream_free(NULL);
    json_t *usage = anthropic_chat_usage(NULL);
    CHECK(json_integer_value(json_object_get(usage, "total_tokens")) == 0 &&
              json_integer_value(json_object_get(usage, "prompt_tokens")) == 0,
          "no usage counts zeros");
    json_decref(usage);
    json_decref(arr);
    json_decref(ev);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    started = time(NULL);
    int n = run_dir(argv[1], "request", request_case) + run_dir(argv[1], "answer", answer_case) +
            run_dir(argv[1], "usage", usage_case) + run_dir(argv[1], "error", error_case) +
            run_dir(argv[1], "stream", stream_case);
    edges();
    printf("%d case files\n", n);
    return check_summary("anthropic_chat");
}
