/* response_ops.h - retrieve, delete, cancel and input_items of a stored
 * Responses API response, relayed to the deployment that holds it. */
#ifndef PROXYD_RESPONSE_OPS_H
#define PROXYD_RESPONSE_OPS_H

#include <event2/http.h>
#include <stdbool.h>

#include "proxy.h"

/* Takes req when path is one of these calls (true), else leaves it (false). */
bool response_ops_start(struct proxy *px, struct evhttp_request *req, const char *path);

#endif
