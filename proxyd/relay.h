/* relay.h - HTTP transfers to upstreams: libcurl's multi interface driven
 * by the libevent loop (no thread per request, nothing blocking). */
#ifndef PROXYD_RELAY_H
#define PROXYD_RELAY_H

#include <curl/curl.h>
#include <stdbool.h>
#include <event2/buffer.h>
#include <event2/event.h>

struct relay;
struct relay_transfer;

/* Called once per transfer, on the loop thread. result is CURLE_OK when an
 * HTTP answer arrived (whatever its status). The transfer is freed after. */
typedef void (*relay_done_cb)(struct relay_transfer *t, CURLcode result, void *arg);
/* Streaming: called for each piece of the response body as it arrives
 * (t->status and t->content_type are set by then). Return -1 to abort. */
typedef int (*relay_data_cb)(struct relay_transfer *t, const char *data, size_t len, void *arg);

struct relay_request {
    const char *method;         /* GET, POST, PUT, DELETE */
    const char *url;
    struct curl_slist *headers; /* taken */
    char *body;                 /* taken; NULL for none */
    size_t body_len;
    long timeout_ms;            /* the whole transfer; 0 = no limit */
    long idle_timeout_s;        /* abort after this long without a byte; 0 = no limit */
    relay_data_cb on_data;      /* NULL: the body is collected in t->response */
    relay_done_cb done;
    void *arg;
    bool tls_unchecked;         /* https: do not check the certificate (ssl_verify: false) */
    const char *ca_file;        /* https: the CA bundle; NULL: the system's */
};

struct relay_transfer {
    CURL *easy;
    struct curl_slist *headers;
    char *body;                 /* request body; owned */
    struct evbuffer *response;  /* response body (when not streamed) */
    long status;
    char content_type[128];
    char errbuf[CURL_ERROR_SIZE];
    relay_data_cb on_data;
    relay_done_cb done;
    void *arg;
    struct relay *relay;
    struct relay_transfer *prev, *next; /* the relay's transfers in flight */
};

struct relay *relay_new(struct event_base *base, char *err, size_t errlen);
/* Aborts transfers in flight (their callbacks run with CURLE_ABORTED_BY_CALLBACK). */
void relay_free(struct relay *r);

/* Starts a transfer. -1 on error: then nothing was taken and no callback
 * will run. *out (may be NULL) gets the transfer, for relay_cancel. */
int relay_start(struct relay *r, struct relay_request *rq, struct relay_transfer **out);

/* Aborts t now (not from inside its own callbacks): done runs with
 * CURLE_ABORTED_BY_CALLBACK, then t is freed. */
void relay_cancel(struct relay_transfer *t);

/* Aborts every transfer in flight, as relay_cancel does (a drain's cut). */
void relay_cancel_all(struct relay *r);

#endif
