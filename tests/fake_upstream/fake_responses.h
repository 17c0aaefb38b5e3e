/*
 * fake_responses.h - fake-upstream's OpenAI Responses API (/v1/responses
 * and the stored responses under it); see fake_responses.c.
 */
#ifndef FAKE_RESPONSES_H
#define FAKE_RESPONSES_H

#include <event2/http.h>

#include "fake_common.h"

/* POST /v1/responses: a response, plain, streamed or in the background.
 * The router has checked the key, the api-version on Azure and that the
 * body is JSON. */
void responses_handle_create(struct exchange *ex);

/* GET or DELETE /v1/responses/ID, POST .../ID/cancel, GET
 * .../ID/input_items; `rest` is what follows "/responses/". */
void responses_handle_item(struct exchange *ex, enum evhttp_cmd_type method, const char *rest);

/* Free the stored responses (NULL is fine). */
void responses_store_free(struct responses_store *store);

#endif
