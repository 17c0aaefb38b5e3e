/* test_reply.c - proxyd's hand-written answers (proxyd/reply.c) on a real
 * evhttp server over loopback: the bytes of an answer (status line, Date,
 * Content-Length, the lines, the body), two pipelined requests answered in
 * order on one connection that stays open, Connection: close and HTTP/1.0
 * closing it, the lines handed to evhttp's own writer, and header values
 * with CR or LF refused. The client is a thread with a blocking socket. */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "check.h"
#include "reply.h"

static int port;
static atomic_int client_done;

/* /ok: our writer; /evhttp: the lines through evhttp's; /drain: as proxyd
 * while draining (Connection: close among the output headers). */
static void handle(struct evhttp_request *req, void *arg)
{
    const char *uri = evhttp_request_get_uri(req);
    struct reply_head h = {0};
    struct evbuffer *body = evbuffer_new();
    (void)arg;
    CHECK(reply_head_add(&h, "x-a", "1") == 0 && reply_head_add(&h, "x-b", "two") == 0,
          "cannot add lines");
    CHECK(body != NULL && evbuffer_add(body, "hello", 5) == 0, "no body");
    if (strcmp(uri, "/evhttp") == 0) {
        reply_head_to_evhttp(&h, req);
        evhttp_send_reply(req, 200, "OK", body);
    } else {
        if (strcmp(uri, "/drain") == 0)
            evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
        reply_send(req, strcmp(uri, "/limited") == 0 ? 429 : 200, &h, body);
    }
    CHECK(h.len == 0, "the lines were not taken");
    reply_head_free(&h);
    evbuffer_free(body);
}

/* Sends `request`, reads until EOF or 1 s of silence into out; returns
 * whether the server closed the connection. */
static int exchange(const char *request, char *out, size_t cap)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {1, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0), closed = 0;
    size_t len = 0;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        write(fd, request, strlen(request)) != (ssize_t)strlen(request)) {
        perror("client");
        exit(2);
    }
    for (;;) {
        ssize_t n = read(fd, out + len, cap - 1 - len);
        if (n == 0)
            closed = 1;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    out[len] = '\0';
    close(fd);
    return closed;
}

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)) != NULL; p += strlen(what))
        n++;
    return n;
}

static void *client(void *arg)
{
    static char out[8192];
    (void)arg;
    /* two pipelined: both answered, in order, and the connection stays */
    int closed = exchange("GET /ok HTTP/1.1\r\nHost: t\r\n\r\nGET /limited HTTP/1.1\r\nHost: t\r\n"
                          "\r\n", out, sizeof(out));
    CHECK(!closed, "a keep-alive connection was closed");
    CHECK(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0, "first answer: %.40s", out);
    CHECK(strstr(out, "HTTP/1.1 429 Too Many Requests\r\n") > out, "second answer missing");
    CHECK(count(out, "Content-Length: 5\r\n") == 2 && count(out, "x-a: 1\r\nx-b: two\r\n") == 2 &&
              count(out, "\r\n\r\nhello") == 2 && count(out, " GMT\r\n") == 2 &&
              count(out, "Date: ") == 2,
          "answers: %s", out);
    closed = exchange("GET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", out,
                      sizeof(out));
    CHECK(closed && strstr(out, "Connection: close\r\n") != NULL, "close asked: %s", out);
    closed = exchange("GET /ok HTTP/1.0\r\n\r\n", out, sizeof(out));
    CHECK(closed && strstr(out, "\r\n\r\nhello") != NULL, "HTTP/1.0: %s", out);
    closed = exchange("GET /ok HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", out, sizeof(out));
    CHECK(!closed && strstr(out, "Connection: keep-alive\r\n") != NULL, "1.0 keep-alive: %s",
          out);
    closed = exchange("GET /drain HTTP/1.1\r\nHost: t\r\n\r\n", out, sizeof(out));
    CHECK(closed && count(out, "Connection: close\r\n") == 1, "draining: %s", out);
    closed = exchange("GET /evhttp HTTP/1.1\r\nHost: t\r\n\r\n", out, sizeof(out));
    CHECK(!closed && strstr(out, "x-a: 1\r\n") != NULL && strstr(out, "x-b: two\r\n") != NULL,
          "through evhttp: %s", out);
    atomic_store(&client_done, 1);
    return NULL;
}

static void poll_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    if (atomic_load(&client_done))
        event_base_loopbreak(arg);
}

int main(void)
{
    struct reply_head h = {0};
    CHECK(reply_head_add(&h, "x-model", "a\r\nset-cookie: x") == -1 && h.len == 0,
          "a CR LF value was taken");
    CHECK(reply_head_add(&h, "x-model", "a\nb") == -1 && h.len == 0, "an LF value was taken");
    CHECK(reply_head_add(&h, "x:\r\ny", "v") == -1 && h.len == 0, "a CR LF name was taken");
    CHECK(reply_head_add(&h, "x:y", "v") == -1 && h.len == 0, "a name with ':' was taken");
    CHECK(reply_head_add(&h, "x-ok", "fine") == 0 && h.len == 12, "len %zu", h.len);
    reply_head_free(&h);

    struct event_base *base = event_base_new();
    struct evhttp *http = base != NULL ? evhttp_new(base) : NULL;
    struct evhttp_bound_socket *bound =
        http != NULL ? evhttp_bind_socket_with_handle(http, "127.0.0.1", 0) : NULL;
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    if (bound == NULL ||
        getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&a, &alen) != 0) {
        fprintf(stderr, "cannot start the server\n");
        return 2;
    }
    port = ntohs(a.sin_port);
    evhttp_set_gencb(http, handle, NULL);
    struct event *tick = event_new(base, -1, EV_PERSIST, poll_done, base);
    struct timeval every = {0, 10000};
    pthread_t t;
    if (tick == NULL || event_add(tick, &every) != 0 ||
        pthread_create(&t, NULL, client, NULL) != 0) {
        fprintf(stderr, "cannot start the client\n");
        return 2;
    }
    event_base_dispatch(base);
    pthread_join(t, NULL);
    event_free(tick);
    evhttp_free(http);
    event_base_free(base);
    return check_summary("reply");
}
