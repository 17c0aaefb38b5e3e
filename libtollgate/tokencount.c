/* tokencount.c - chat and text token counts on top of tokenizer.c.
 *
 * The chat overheads are OpenAI's documented ones (as LiteLLM's
 * token_counter applies them): every message costs 3 tokens plus its
 * fields, a name 1 more, and the reply is primed with 3. Output text is
 * counted as its content tokens only.
 */
#include "tokencount.h"

#include <string.h>

#include "tokenizer.h"

#define TOKENS_PER_MESSAGE 3
#define TOKENS_PER_NAME 1
#define REPLY_PRIMING 3

int64_t tokencount_text(const char *model, const char *text, size_t len, bool *estimate,
                        char *err, size_t errlen)
{
    enum tokenizer_encoding enc = tokenizer_for_model(model, estimate);
    return tokenizer_count(enc, text, len, err, errlen);
}

/* Tokens of one field value: a string, or the text parts of an array. */
static int64_t value_tokens(enum tokenizer_encoding enc, const json_t *v, char *err,
                            size_t errlen)
{
    if (json_is_string(v))
        return tokenizer_count(enc, json_string_value(v), json_string_length(v), err, errlen);
    int64_t total = 0;
    size_t i;
    json_t *part;
    json_array_foreach(v, i, part) {
        const json_t *text = json_object_get(part, "text");
        if (!json_is_string(text))
            continue; /* images and other parts are not text tokens */
        int64_t n = tokenizer_count(enc, json_string_value(text), json_string_length(text), err,
                                    errlen);
        if (n < 0)
            return -1;
        total += n;
    }
    return total;
}

int64_t tokencount_chat(const char *model, const json_t *messages, bool *estimate,
                        char *err, size_t errlen)
{
    enum tokenizer_encoding enc = tokenizer_for_model(model, estimate);
    int64_t total = REPLY_PRIMING;
    size_t i;
    json_t *msg;
    json_array_foreach(messages, i, msg) {
        const char *key;
        json_t *v;
        total += TOKENS_PER_MESSAGE;
        json_object_foreach((json_t *)msg, key, v) {
            int64_t n = value_tokens(enc, v, err, errlen);
            if (n < 0)
                return -1;
            total += n;
            if (strcmp(key, "name") == 0)
                total += TOKENS_PER_NAME;
        }
    }
    return total;
}
