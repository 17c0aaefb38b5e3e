/* upstream_error.h - what an upstream's error answer says, as LiteLLM's
 * exception mapping reads it (litellm_core_utils/exception_mapping_utils.py:
 * ExceptionCheckers and the OpenAI, Azure and Anthropic maps): a prompt
 * longer than the model's context window, or content the provider's policy
 * refused. Each has fallbacks of its own (router.h's route_fallback). */
#ifndef PROXYD_UPSTREAM_ERROR_H
#define PROXYD_UPSTREAM_ERROR_H

#include <event2/buffer.h>

#include "router.h"

/* The fallback list an answer with this status and body sends a request to:
 * ROUTE_FALLBACK_CONTEXT_WINDOW, ROUTE_FALLBACK_CONTENT_POLICY, or
 * ROUTE_FALLBACK_ANY for any other answer (body may be NULL). */
enum route_fallback upstream_error_kind(long status, struct evbuffer *body);

#endif
