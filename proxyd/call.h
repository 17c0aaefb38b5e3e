/* call.h - one relayed request, from the client's body to the usage event. */
#ifndef PROXYD_CALL_H
#define PROXYD_CALL_H

#include <event2/http.h>

#include "proxy.h"

/* The OpenAI routes proxyd relays. */
enum call_kind { CALL_CHAT, CALL_COMPLETION, CALL_EMBEDDING, CALL_IMAGE };

/* Takes over req: authenticates, routes, relays and answers it. path_model
 * is the model group named in an Azure-style path
 * (/openai/deployments/{model}/...), used when the body has no model. */
void call_start(struct proxy *px, struct evhttp_request *req, enum call_kind kind,
                const char *path_model);

#endif
