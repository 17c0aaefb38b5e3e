/* zmq_link.h - a proxyd socket's connections to every accountd instance. */
#ifndef PROXYD_ZMQ_LINK_H
#define PROXYD_ZMQ_LINK_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

struct config;
struct zmq_link;

/* Called when an accountd instance completes a handshake (up) or its
 * connection ends (!up). */
typedef void (*zmq_link_cb)(void *arg, bool up);

/* Connects sock (of ZeroMQ context ctx) to endpoints[i] of every accountd
 * instance i (CURVE unless `curve: off`) and watches the connections on
 * base. what names them in the log ("events", "spend updates"). cb may be
 * NULL. NULL on error (err). */
struct zmq_link *zmq_link_open(struct event_base *base, void *ctx, void *sock,
                               const struct config *cfg, char *const *endpoints,
                               const char *what, zmq_link_cb cb, void *arg, char *err,
                               size_t errlen);

/* Reads the monitor now (its fd is edge-triggered, and other ZeroMQ calls
 * may consume its edge), calling cb for what changed. */
void zmq_link_poll(struct zmq_link *l);

/* How many instances have a connection whose handshake succeeded. */
size_t zmq_link_up(const struct zmq_link *l);

/* Stops watching; before sock and ctx are closed. */
void zmq_link_close(struct zmq_link *l);

#endif
