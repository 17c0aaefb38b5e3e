/* relay.h - HTTP transfers to upstreams: libcurl's multi interface driven
 * by the libevent loop (no thread per request, nothing blocking). */
#ifndef PROXYD_RELAY_H
#define PROXYD_RELAY_H

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>

struct relay;
struct relay_transfer;

/* Called once per transfer, on the loop thread. result is CURLE_OK when an
 * HTTP answer arrived (whatever its status). The transfer is freed after. */
typedef void (*relay_done_cb)(struct relay_transfer *t, CURLcode result, void *arg);

struct relay_transfer {
    CURL *easy;
    struct curl_slist *headers;
    char *body;                 /* request body; owned */
    struct evbuffer *response;  /* response body */
    long status;
    char content_type[128];
    char errbuf[CURL_ERROR_SIZE];
    relay_done_cb done;
    void *arg;
    struct relay *relay;
    struct relay_transfer *prev, *next; /* the relay's transfers in flight */
};

struct relay *relay_new(struct event_base *base, char *err, size_t errlen);
/* Aborts transfers in flight (their callbacks run with CURLE_ABORTED_BY_CALLBACK). */
void relay_free(struct relay *r);

/* Starts a POST of body (ownership taken) to url with headers (taken).
 * -1 on error, and then nothing was taken and no callback will run. */
int relay_post(struct relay *r, const char *url, struct curl_slist *headers, char *body,
               long timeout_ms, relay_done_cb done, void *arg);

#endif
