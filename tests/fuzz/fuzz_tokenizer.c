/* fuzz_tokenizer.c - the BPE tokenizer (tokenizer.c) on any bytes, which
 * proxyd counts when an upstream reports no usage, and the chat counting
 * over a messages array (tokencount.c).
 *
 * The first byte picks the encoding; the rest is the text. Encoding must
 * succeed, agree with tokenizer_count, and decode back to the same bytes
 * (tokenizer.h promises both), so a wrong merge is a crash here too. When
 * the text is a JSON array it is also counted as chat messages. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "tokencount.h"
#include "tokenizer.h"

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "tokenizer: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    enum tokenizer_encoding enc = data[0] & 1 ? TOKENIZER_CL100K : TOKENIZER_O200K;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    char err[256];
    uint32_t *ids = NULL;
    size_t n = 0;
    check(tokenizer_encode(enc, text, len, &ids, &n, err, sizeof(err)) == 0, "encode failed");
    check(tokenizer_count(enc, text, len, err, sizeof(err)) == (int64_t)n, "count != encode");
    char *back = NULL;
    size_t back_len = 0;
    check(tokenizer_decode_bytes(enc, ids, n, &back, &back_len, err, sizeof(err)) == 0,
          "decode failed");
    check(back_len == len && memcmp(back, text, len) == 0, "decode(encode(x)) != x");
    free(back);
    free(ids);

    json_t *messages = json_loadb(text, len, 0, NULL);
    if (json_is_array(messages)) {
        bool estimate;
        (void)tokencount_chat(enc == TOKENIZER_O200K ? "gpt-4o" : "gpt-4", messages, &estimate,
                              err, sizeof(err));
        (void)tokencount_chat("claude-3-5-haiku", messages, &estimate, err, sizeof(err));
    }
    json_decref(messages);
    return 0;
}
