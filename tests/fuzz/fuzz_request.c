/* fuzz_request.c - how proxyd reads a client's request body: the bytes
 * parsed as a JSON object (httpjson_body_as, as call.c does), then what the
 * API's front reads from it (protocol.c: end user, stream usage, max
 * output, the prompt's tokens, the Responses API's previous_response_id),
 * the request fields a price depends on (usage.c: usage_note_request), and
 * the body the protocol sends upstream (shape.c, proto_*.c, the chat to
 * Messages translation).
 *
 * Input: byte 0 picks the (API, deployment) pair (fuzz_proxyd.h); the rest
 * is the request body. */
#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdlib.h>

#include "fuzz_proxyd.h"
#include "usage.h"

#define BODY_MAX (1 << 20)

/* Everything proxyd reads from a parsed body before and while sending it. */
static void read_body(uint8_t pick, json_t *body)
{
    struct upstream_req r;
    const struct protocol *p = fuzz_route(pick, body, &r);
    const struct api_front *front = api_front(r.api);
    bool estimated;
    char err[512], url[4096];
    (void)front->end_user(body);
    (void)front->stream_usage(body);
    (void)front->max_output(body);
    (void)front->prompt_tokens(body, r.d->upstream_model, &estimated);
    (void)front->exact_prompt(body, r.d->upstream_model);
    if (front->pin != NULL) {
        const struct deployment *pinned;
        (void)front->pin(body, r.cfg, r.model_group, r.owner, pick & 0x40, &pinned, err,
                         sizeof(err));
    }
    struct usage u = {0};
    (void)usage_note_request(body, r.api == API_IMAGE, &u);
    (void)p->url(&r, url, sizeof(url));
    free(p->body(&r, err, sizeof(err)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct evhttp_request *req = evhttp_request_new(NULL, NULL);
    if (req == NULL || evbuffer_add(evhttp_request_get_input_buffer(req), data + 1, size - 1) != 0)
        abort();
    struct upstream_req r;
    fuzz_route(data[0], NULL, &r);
    json_t *body = httpjson_body_as(req, BODY_MAX, api_front(r.api)->errors);
    if (body != NULL)
        read_body(data[0], body);
    json_decref(body);
    evhttp_request_free(req);
    return 0;
}
