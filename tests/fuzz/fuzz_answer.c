/* fuzz_answer.c - the usage in a whole (not streamed) upstream answer, for
 * each protocol proxyd speaks: OpenAI chat, completions, embeddings and
 * images (proto_openai.c), the Responses API (proto_responses.c), Anthropic
 * Messages (proto_anthropic.c), chat translated to Messages
 * (proto_chat_anthropic.c, anthropic_chat_answer.c); then the usage readers
 * of usage.c on the answer's usage object whatever its protocol, and the
 * error bodies the client gets instead of a non-2xx answer.
 *
 * Input: byte 0 picks the (API, deployment) pair (fuzz_proxyd.h), byte 1 an
 * error status; the rest is the answer's JSON, optionally followed by
 * "\n--\n" and the client's request body. */
#include <jansson.h>

#include "fuzz_proxyd.h"
#include "usage.h"

static const int STATUSES[] = {400, 401, 404, 413, 429, 500, 503, 529};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t pick = data[0], status = data[1];
    const uint8_t *piece;
    size_t len;
    data += 2;
    size -= 2;
    fuzz_next_piece(&data, &size, &piece, &len);
    json_t *answer = json_loadb((const char *)piece, len, JSON_DECODE_ANY, NULL);
    json_t *body = json_loadb((const char *)data, size, 0, NULL);
    if (body == NULL)
        body = json_pack("{s:s, s:[{s:s, s:s}]}", "model", "m", "messages", "role", "user",
                         "content", "hi");
    if (answer == NULL || body == NULL) {
        json_decref(answer);
        json_decref(body);
        return 0;
    }
    struct upstream_req r;
    const struct protocol *p = fuzz_route(pick, body, &r);
    struct usage u;
    json_t *client = NULL;
    if (json_is_object(answer)) {
        (void)p->answer(&r, answer, &u, &client);
        json_decref(client);
        usage_note_answer(answer, &u);
    }
    const json_t *usage = json_object_get(answer, "usage");
    (void)usage_from_json(usage, &u);
    (void)usage_from_anthropic(usage, &u);
    (void)usage_from_responses(usage, &u);
    (void)responses_usage(answer, &u);
    if (p->error != NULL)
        json_decref(p->error(&r, answer, STATUSES[status % 8]));
    json_decref(answer);
    json_decref(body);
    return 0;
}
