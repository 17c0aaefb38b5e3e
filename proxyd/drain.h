/* drain.h - SIGTERM: a graceful stop.
 *
 * The listening socket closes at once (a load balancer's next connection
 * goes to another proxyd) and /health/readiness answers 503; requests on
 * connections already open are still served, each answer closing its
 * connection. Requests in flight get tollgate.proxyd.shutdown_grace_ms to
 * finish; those still running then are cut (their upstream transfer
 * aborted, the usage so far accounted like any stream cut short). Then
 * proxyd waits, a bounded time, for accountd to acknowledge every usage
 * event, and stops; events still unacknowledged stay in the durable spool
 * for the next start. A second SIGTERM cuts at once.
 */
#ifndef PROXYD_DRAIN_H
#define PROXYD_DRAIN_H

#include "proxy.h"

/* How long the drain waits for acks after the last request ended. */
#define DRAIN_ACK_WAIT_MS 10000

void drain_start(struct proxy *px);
void drain_free(struct drain *d);

#endif
