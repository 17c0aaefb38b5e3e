/* tool_curve.c - CURVE client setup for the test tools (send-events,
 * event-gen), from the environment the test harness sets. */
#include "tool_curve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "curve.h"

int tool_curve_client(void *sock)
{
    const char *file = getenv("TG_CURVE_SECRET_FILE"), *server = getenv("TG_CURVE_SERVER_KEY");
    struct curve_keypair kp;
    char err[512];
    if (file == NULL || *file == '\0')
        return 0;
    if (server == NULL || strlen(server) != CURVE_Z85_LEN) {
        fprintf(stderr, "TG_CURVE_SECRET_FILE is set, TG_CURVE_SERVER_KEY is not a Z85 key\n");
        return -1;
    }
    int rc = curve_read_secret(file, &kp, err, sizeof(err)) == 0 &&
                     curve_set_client(sock, &kp, server, err, sizeof(err)) == 0
                 ? 0
                 : -1;
    if (rc < 0)
        fprintf(stderr, "CURVE: %s\n", err);
    return rc;
}
