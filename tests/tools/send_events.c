/* send_events.c - a test client that speaks proxyd's side of the ZeroMQ
 * protocol: it sends one UsageEvent to accountd several times (as proxyd
 * does when acks are lost) and waits for each ack. Used by the end-to-end
 * tests to show that a redelivered event is counted once.
 *
 * Usage: send-events ENDPOINT REQUEST_ID API_KEY_HASH MODEL PROMPT COMPLETION TIMES [START_MS]
 *                    [input_cost_per_token=D] [output_cost_per_token=D]
 * START_MS: when the request started, Unix milliseconds (default now), so a
 * test can send an event that started before a budget reset. The prices are
 * a deployment's custom ones, as exact decimal text (a forged event's, say).
 * With TG_CURVE_SECRET_FILE set it is a CURVE client (tool_curve.h).
 * Prints "acked N/TIMES" and exits 0 when every send was acknowledged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <zmq.h>

#include "events.pb-c.h"
#include "tool_curve.h"

#define ACK_TIMEOUT_MS 10000

static int send_and_wait(void *sock, const uint8_t *buf, size_t len, const char *request_id)
{
    if (zmq_send(sock, buf, len, 0) < 0)
        return -1;
    zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, ACK_TIMEOUT_MS) != 1)
        return -1;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    int rc = -1;
    if (zmq_msg_recv(&msg, sock, 0) >= 0) {
        Tollgate__EventAck *ack = tollgate__event_ack__unpack(NULL, zmq_msg_size(&msg),
                                                              zmq_msg_data(&msg));
        if (ack != NULL && ack->n_request_ids == 1 &&
            strcmp(ack->request_ids[0], request_id) == 0)
            rc = 0;
        tollgate__event_ack__free_unpacked(ack, NULL);
    }
    zmq_msg_close(&msg);
    return rc;
}

int main(int argc, char **argv)
{
    int nargs = argc;
    while (nargs > 8 && strchr(argv[nargs - 1], '=') != NULL) /* FIELD=VALUE at the end */
        nargs--;
    if (nargs != 8 && nargs != 9) {
        fprintf(stderr, "usage: send-events ENDPOINT REQUEST_ID API_KEY_HASH MODEL PROMPT "
                        "COMPLETION TIMES [START_MS] [input_cost_per_token=D] "
                        "[output_cost_per_token=D]\n");
        return 2;
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    Tollgate__UsageEvent e = TOLLGATE__USAGE_EVENT__INIT;
    Tollgate__UsageEvent *events[] = {&e};
    Tollgate__EventBatch batch = TOLLGATE__EVENT_BATCH__INIT;
    e.request_id = argv[2];
    e.call_type = "chat_completion";
    e.start_time_us = nargs == 9 ? atoll(argv[8]) * 1000 : (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
    e.end_time_us = e.start_time_us + 1000;
    e.api_key = argv[3];
    e.model_group = argv[4];
    e.model = argv[4];
    e.has_prompt_tokens = e.has_completion_tokens = e.has_total_tokens = 1;
    e.prompt_tokens = atoll(argv[5]);
    e.completion_tokens = atoll(argv[6]);
    e.total_tokens = e.prompt_tokens + e.completion_tokens;
    e.http_status = 200;
    for (int i = nargs; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        *eq = '\0';
        if (strcmp(argv[i], "input_cost_per_token") == 0)
            e.input_cost_per_token = eq + 1;
        else if (strcmp(argv[i], "output_cost_per_token") == 0)
            e.output_cost_per_token = eq + 1;
        else {
            fprintf(stderr, "send-events: unknown field %s\n", argv[i]);
            return 2;
        }
    }
    batch.n_events = 1;
    batch.events = events;
    int times = atoi(argv[7]), acked = 0;
    size_t len = tollgate__event_batch__get_packed_size(&batch);
    uint8_t *buf = malloc(len);
    void *ctx = zmq_ctx_new();
    void *sock = ctx != NULL ? zmq_socket(ctx, ZMQ_DEALER) : NULL;
    int linger = 0;
    if (buf == NULL || sock == NULL || zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger)) != 0 ||
        tool_curve_client(sock) != 0 || zmq_connect(sock, argv[1]) != 0) {
        fprintf(stderr, "send-events: setup failed: %s\n", zmq_strerror(zmq_errno()));
        return 1;
    }
    tollgate__event_batch__pack(&batch, buf);
    for (int i = 0; i < times; i++)
        acked += send_and_wait(sock, buf, len, argv[2]) == 0;
    printf("acked %d/%d\n", acked, times);
    free(buf);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    return acked == times ? 0 : 1;
}
