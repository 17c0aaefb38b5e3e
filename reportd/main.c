/* main.c - reportd: wiring only.
 *
 * Binds the listening socket once, then starts `workers` threads, each
 * with its own event loop, evhttp server (on a dup of that socket) and
 * MariaDB connection (see reportd.h). The main thread waits for SIGTERM or
 * SIGINT and then stops the loops.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/util.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "budget_period.h"
#include "db.h"
#include "httpjson.h"
#include "log.h"
#include "notify.h"
#include "runtime.h"
#include "reportd.h"

#define CLIENT_TIMEOUT_S 60
/* evhttp's own cap, above the handlers' (at most 1 MiB), so that what a
 * client sees past a handler's limit is its JSON 413 (httpjson_body);
 * beyond this evhttp answers its own 413 and closes. */
#define MAX_BODY_BYTES (8 * 1024 * 1024)

MYSQL *worker_db(struct worker *w, struct evhttp_request *req)
{
    char err[512];
    if (w->db != NULL && mysql_ping(w->db) == 0)
        return w->db;
    if (w->db != NULL)
        mysql_close(w->db);
    if ((w->db = db_connect(&w->cfg->db, err, sizeof(err))) == NULL) {
        log_error("%s", err);
        httpjson_error(req, 503, "service_unavailable", NULL, "The database cannot be reached");
    }
    return w->db;
}

void worker_db_failed(struct worker *w, struct evhttp_request *req, const char *err)
{
    (void)w;
    log_error("query failed: %s", err);
    httpjson_error(req, 500, "internal_error", NULL, "Database error (see the reportd log)");
}

/* Waits for SIGTERM/SIGINT, pinging systemd's watchdog meanwhile when the
 * unit has one. */
static int wait_for_stop(const sigset_t *stop)
{
    int64_t ping_ms = notify_watchdog_interval_ms();
    int sig;
    if (ping_ms <= 0) {
        while (sigwait(stop, &sig) != 0)
            ;
        return sig;
    }
    struct timespec every = {(time_t)(ping_ms / 1000), (long)(ping_ms % 1000) * 1000000};
    for (;;) {
        notify_watchdog();
        if ((sig = sigtimedwait(stop, NULL, &every)) > 0)
            return sig;
    }
}

/* A non-blocking listening TCP socket on host:port. */
static evutil_socket_t listen_on(const struct listen_addr *l, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%d", l->port);
    int gai = getaddrinfo(l->host, port, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", l->host, gai_strerror(gai));
        return -1;
    }
    evutil_socket_t fd = socket(ai->ai_family, SOCK_STREAM, 0);
    int one = 1;
    /* Accepted sockets inherit TCP_NODELAY (Linux): an answer written in two
     * pieces must not wait for the client's delayed ACK (~40 ms with Nagle). */
    if (fd < 0 || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
        evutil_make_listen_socket_reuseable(fd) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0 ||
        evutil_make_socket_nonblocking(fd) < 0 || evutil_make_socket_closeonexec(fd) < 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", l->host, l->port, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

static int worker_init(struct worker *w, const struct config *cfg, evutil_socket_t fd)
{
    w->cfg = cfg;
    evutil_socket_t mine = dup(fd);
    if (mine < 0 || (w->base = event_base_new()) == NULL || (w->http = evhttp_new(w->base)) == NULL) {
        if (mine >= 0)
            close(mine);
        return -1;
    }
    evhttp_set_max_body_size(w->http, MAX_BODY_BYTES);
    /* every method reaches api_dispatch, which answers a JSON 405 */
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_timeout(w->http, CLIENT_TIMEOUT_S);
    evhttp_set_gencb(w->http, api_dispatch, w);
    if (evhttp_accept_socket(w->http, mine) != 0) {
        close(mine);
        return -1;
    }
    return 0;
}

static void worker_fini(struct worker *w)
{
    if (w->http != NULL)
        evhttp_free(w->http);
    if (w->base != NULL)
        event_base_free(w->base);
    if (w->db != NULL)
        mysql_close(w->db);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    mysql_thread_init();
    if (event_base_dispatch(w->base) < 0)
        log_error("event loop failed");
    if (w->db != NULL) {
        mysql_close(w->db);
        w->db = NULL;
    }
    mysql_thread_end();
    return NULL;
}

/* Runs the workers until SIGTERM/SIGINT (blocked here, taken by sigwait). */
static int serve(const struct config *cfg, evutil_socket_t fd, const sigset_t *stop)
{
    int n = cfg->reportd.workers, started = 0, sig, rc = 1;
    struct worker *workers = calloc((size_t)n, sizeof(*workers));
    pthread_t *threads = calloc((size_t)n, sizeof(*threads));
    if (workers == NULL || threads == NULL)
        goto out;
    for (; started < n; started++) {
        if (worker_init(&workers[started], cfg, fd) < 0 ||
            pthread_create(&threads[started], NULL, worker_main, &workers[started]) != 0) {
            log_error("cannot start worker %d", started);
            worker_fini(&workers[started]);
            goto stop;
        }
    }
    log_info("reportd ready on %s:%d with %d workers", cfg->reportd.listen.host,
             cfg->reportd.listen.port, n);
    char status[320];
    snprintf(status, sizeof(status), "reportd serving on %s:%d", cfg->reportd.listen.host,
             cfg->reportd.listen.port);
    notify_ready(status);
    sig = wait_for_stop(stop);
    log_info("signal %d: stopping", sig);
    notify_stopping();
    rc = 0;
stop:
    for (int i = 0; i < started; i++)
        event_base_loopexit(workers[i].base, NULL);
    for (int i = 0; i < started; i++) {
        pthread_join(threads[i], NULL);
        worker_fini(&workers[i]);
    }
out:
    free(workers);
    free(threads);
    return rc;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    char err[1024];
    int c, rc = 1;
    sigset_t stop;
    log_init("reportd");
    while ((c = getopt(argc, argv, "c:")) != -1) {
        if (c != 'c')
            break;
        path = optarg;
    }
    if (path == NULL || optind != argc) {
        fprintf(stderr, "usage: reportd -c CONFIG\n");
        return 2;
    }
    /* Block the stop signals in every thread; the main thread sigwaits for them. */
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    if (runtime_init() < 0)
        return 1;
    struct config *cfg = config_load(path, err, sizeof(err));
    evutil_socket_t fd = -1;
    if (cfg == NULL) {
        log_error("%s", err);
    } else if (log_configure(cfg->log_format, cfg->log_level),
               period_set_timezone(cfg->timezone) < 0) { /* budget periods' calendar */
        log_error("time zone %s is not installed", cfg->timezone);
    } else if (db_schema_check_at(&cfg->db, err, sizeof(err)) < 0) {
        log_error("%s", err);
    } else if (calculate_init(cfg, err, sizeof(err)) < 0) { /* /spend/calculate's prices */
        log_error("%s", err);
    } else {
        if ((fd = listen_on(&cfg->reportd.listen, err, sizeof(err))) < 0)
            log_error("%s", err);
        else
            rc = serve(cfg, fd, &stop);
    }
    if (fd >= 0)
        close(fd);
    calculate_fini();
    config_free(cfg);
    runtime_end();
    return rc;
}
