/* tokencount.h - counting tokens the way providers bill them, for when an
 * upstream reports no usage (and for projected costs). */
#ifndef TG_TOKENCOUNT_H
#define TG_TOKENCOUNT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Tokens of a chat prompt in OpenAI's chat format: 3 per message, the
 * tokens of every string field (role, content, name; text parts of an
 * array content), 1 more for a name, and 3 to prime the reply. *estimate
 * is set when the model is not one of OpenAI's (cl100k stands in). -1 on
 * error (err). */
int64_t tokencount_chat(const char *model, const json_t *messages, bool *estimate,
                        char *err, size_t errlen);

/* Tokens of plain text (a completion prompt, or generated text). */
int64_t tokencount_text(const char *model, const char *text, size_t len, bool *estimate,
                        char *err, size_t errlen);

#endif
