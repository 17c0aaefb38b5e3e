/* http_front.h - proxyd's HTTP server: listening and routing requests. */
#ifndef PROXYD_HTTP_FRONT_H
#define PROXYD_HTTP_FRONT_H

#include <stddef.h>

#include "proxy.h"

/* Binds cfg->proxyd.listen and routes requests. -1 on error (err). */
int http_front_start(struct proxy *px, char *err, size_t errlen);

#endif
