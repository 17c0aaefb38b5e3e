/* tool_curve.h - the test tools' side of CURVE: they talk to accountd as
 * proxyd does, with the client key the test harness made. */
#ifndef TG_TOOL_CURVE_H
#define TG_TOOL_CURVE_H

/* When TG_CURVE_SECRET_FILE is set, makes sock a CURVE client with that
 * key file's pair, trusting the server key TG_CURVE_SERVER_KEY (Z85); else
 * leaves it plain. Before zmq_connect. -1 (a message on stderr) on error. */
int tool_curve_client(void *sock);

#endif
