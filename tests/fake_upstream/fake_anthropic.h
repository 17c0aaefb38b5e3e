/*
 * fake_anthropic.h - fake-upstream's Anthropic Messages API (POST
 * /v1/messages, /v1/messages/count_tokens); see fake_anthropic.c.
 */
#ifndef FAKE_ANTHROPIC_H
#define FAKE_ANTHROPIC_H

#include "fake_common.h"

/* POST /v1/messages: a message, plain or streamed.  The router has checked
 * x-api-key and that the body is JSON. */
void anthropic_handle_messages(struct exchange *ex);

/* POST /v1/messages/count_tokens: {"input_tokens": N}. */
void anthropic_handle_count_tokens(struct exchange *ex);

#endif
