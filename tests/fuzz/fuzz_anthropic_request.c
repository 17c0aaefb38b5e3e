/* fuzz_anthropic_request.c - the OpenAI chat body to Anthropic Messages
 * translation (anthropic_chat_request.c, _messages.c, _tools.c) called
 * directly, with and without drop_params, and the translated stream's
 * events (anthropic_chat_answer.c) when the input is an array of them: a
 * deeper target than fuzz_request for the one parser that rebuilds a
 * client's whole body.
 *
 * Input: a JSON document; an object is a chat body, an array a list of
 * Anthropic stream events. */
#include <jansson.h>
#include <stdlib.h>

#include "anthropic_chat.h"
#include "fuzz_common.h"

static void stream_events(const json_t *events)
{
    struct anthropic_chat_stream *s = anthropic_chat_stream_new("my-claude", "hint");
    size_t i;
    json_t *ev;
    if (s == NULL)
        abort();
    json_t *chunks = json_array();
    if (chunks == NULL)
        abort();
    json_array_foreach(events, i, ev) {
        if (anthropic_chat_stream_event(s, ev, chunks) < 0)
            break;
        json_t *usage = json_deep_copy(anthropic_chat_stream_usage(s));
        (void)anthropic_chat_usage_merge(usage, json_object_get(ev, "usage"));
        json_decref(usage);
    }
    json_decref(chunks);
    anthropic_chat_stream_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *doc = json_loadb((const char *)data, size, 0, NULL);
    char err[512];
    if (json_is_object(doc)) {
        json_decref(anthropic_chat_request(doc, "claude-3-5-haiku-20241022", false, err,
                                           sizeof(err)));
        json_decref(anthropic_chat_request(doc, "claude-sonnet-4-5", true, err, sizeof(err)));
        json_decref(anthropic_chat_answer(doc, "my-claude"));
        json_decref(anthropic_chat_usage(json_object_get(doc, "usage")));
    } else if (json_is_array(doc)) {
        stream_events(doc);
    }
    json_decref(doc);
    return 0;
}
