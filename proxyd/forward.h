/* forward.h - management and report paths passed through to reportd, so
 * clients use one base URL, as they did with LiteLLM. */
#ifndef PROXYD_FORWARD_H
#define PROXYD_FORWARD_H

#include <stdbool.h>

#include "proxy.h"

/* Is path one of reportd's (/key/..., /team/..., /global/..., /ui, ...)? */
bool forward_wanted(const char *path);

/* Relays req to reportd and its answer back. */
void forward_to_reportd(struct proxy *px, struct evhttp_request *req);

#endif
