/* main.c - reportd: wiring only.
 *
 * Binds the listening socket once, then starts `workers` threads, each
 * with its own event loop, evhttp server (on a dup of that socket) and
 * MariaDB connections (see reportd.h), and its share of the connection cap
 * with the other HTTP limits (http_limits.h: tollgate.reportd.max_connections
 * is split evenly among the workers). The main thread waits for signals:
 * SIGHUP reloads the config (reload.c); SIGTERM or SIGINT drains the
 * workers (drain.c) and stops once they are done, or at a second signal.
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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "budget_period.h"
#include "db.h"
#include "http_limits.h"
#include "httpjson.h"
#include "log.h"
#include "notify.h"
#include "runtime.h"
#include "reportd.h"

#define CLIENT_TIMEOUT_S 60 /* a body or an answer making no progress */
/* evhttp's own cap, above the handlers' (at most 1 MiB), so that what a
 * client sees past a handler's limit is its JSON 413 (httpjson_body);
 * beyond this evhttp answers its own 413 and closes. */
#define MAX_BODY_BYTES (8 * 1024 * 1024)

/* While draining, how often the main thread looks whether the workers are done. */
#define DRAIN_POLL_MS 20

MYSQL *worker_db(struct worker *w, struct evhttp_request *req)
{
    char err[512];
    const struct config *boot = w->d->boot->cfg; /* databases change only at a restart */
    bool replica = w->replica && boot->reportd.read_db.host != NULL;
    MYSQL **conn = replica ? &w->read_db : &w->db;
    const struct db_config *where = replica ? &boot->reportd.read_db : &boot->db;
    if (*conn != NULL && mysql_ping(*conn) == 0)
        return *conn;
    if (*conn != NULL)
        mysql_close(*conn);
    if ((*conn = db_connect(where, err, sizeof(err))) == NULL) {
        log_request(LOG_ERROR, w->request_id, "%s%s", replica ? "read replica: " : "", err);
        observe_db_error(&w->d->obs, replica);
        httpjson_error(req, 503, "service_unavailable", NULL, "The database cannot be reached");
    }
    return *conn;
}

void worker_db_failed(struct worker *w, struct evhttp_request *req, const char *err)
{
    bool replica = w->replica && w->d->boot->cfg->reportd.read_db.host != NULL;
    log_request(LOG_ERROR, w->request_id, "query failed%s: %s",
                replica ? " on the read replica" : "", err);
    observe_db_error(&w->d->obs, replica);
    httpjson_error(req, 500, "internal_error", NULL, "Database error (see the reportd log)");
}

/* Waits for one of sigs, pinging systemd's watchdog meanwhile when the unit
 * has one. The signal, or 0 once timeout_ms (-1: none) has passed. */
static int wait_signal(const sigset_t *sigs, int64_t timeout_ms)
{
    int64_t ping_ms = notify_watchdog_interval_ms();
    for (;;) {
        int64_t step = timeout_ms >= 0 ? timeout_ms : 3600 * 1000;
        if (ping_ms > 0) {
            notify_watchdog();
            step = step < ping_ms ? step : ping_ms;
        }
        struct timespec ts = {(time_t)(step / 1000), (long)(step % 1000) * 1000000};
        int sig = sigtimedwait(sigs, NULL, &ts);
        if (sig > 0)
            return sig;
        if (errno == EAGAIN && timeout_ms >= 0 && (timeout_ms -= step) <= 0)
            return 0;
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

/* A worker's HTTP server as evhttp calls it: the limits' look first. */
struct front {
    struct worker *w;
    struct http_limits *limits;
};

static void front_dispatch(struct evhttp_request *req, void *arg)
{
    struct front *f = arg;
    if (http_limits_admit_or_reply(f->limits, req))
        api_dispatch(req, f->w);
}

/* The limits of one worker's server: its share of the connection cap. */
static int worker_limits(struct front *f, const struct http_limits_metrics *hm, int index)
{
    char name[32], err[256];
    struct config_http_limits lim = f->w->d->boot->cfg->reportd.http;
    int n = f->w->d->boot->cfg->reportd.workers;
    lim.max_connections = (lim.max_connections + n - 1) / n;
    snprintf(name, sizeof(name), "reportd-%d", index);
    if ((f->limits = http_limits_new(f->w->http, f->w->base, &lim, name, hm, err, sizeof(err))) ==
        NULL) {
        log_error("%s", err);
        return -1;
    }
    return 0;
}

static int worker_init(struct worker *w, struct front *f, struct reportd *d, evutil_socket_t fd,
                       const struct http_limits_metrics *hm)
{
    w->d = d;
    f->w = w;
    atomic_init(&w->done, false);
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
    evhttp_set_gencb(w->http, front_dispatch, f);
    if (worker_limits(f, hm, (int)(w - d->workers)) < 0) {
        close(mine);
        return -1;
    }
    if ((w->bound = evhttp_accept_socket_with_handle(w->http, mine)) == NULL) {
        close(mine);
        return -1;
    }
    return 0;
}

static void worker_fini(struct worker *w, struct front *f)
{
    drain_fini(w);
    if (w->http != NULL)
        evhttp_free(w->http);
    http_limits_free(f->limits); /* after its evhttp */
    f->limits = NULL;
    if (w->base != NULL)
        event_base_free(w->base);
    if (w->db != NULL)
        mysql_close(w->db);
    if (w->read_db != NULL)
        mysql_close(w->read_db);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    mysql_thread_init();
    if (event_base_dispatch(w->base) < 0)
        log_error("event loop failed");
    if (w->db != NULL)
        mysql_close(w->db);
    if (w->read_db != NULL)
        mysql_close(w->read_db);
    w->db = w->read_db = NULL;
    mysql_thread_end();
    atomic_store(&w->done, true);
    return NULL;
}

/* Serves, reloading on SIGHUP, until SIGTERM or SIGINT; returns that signal. */
static int serve_until_stop(struct reportd *d, const sigset_t *sigs)
{
    for (;;) {
        int sig = wait_signal(sigs, -1);
        if (sig != SIGHUP)
            return sig;
        log_info("SIGHUP: reloading %s", d->config_path);
        notify_reloading();
        reload_config(d);
        notify_ready(NULL);
    }
}

static bool all_done(struct reportd *d)
{
    for (int i = 0; i < d->n_workers; i++)
        if (!atomic_load(&d->workers[i].done))
            return false;
    return true;
}

/* Drains the workers (drain.c) within the grace of the config in force;
 * a second SIGTERM/SIGINT stops them without waiting for their answers. */
static void drain_workers(struct reportd *d, const sigset_t *sigs)
{
    /* only the main thread swaps the generation, so it reads cur unlocked */
    int grace_ms = d->gens.cur->cfg->reportd.shutdown_grace_ms;
    bool forced = false;
    clock_gettime(CLOCK_MONOTONIC, &d->drain_deadline);
    d->drain_deadline.tv_sec += grace_ms / 1000;
    d->drain_deadline.tv_nsec += (long)(grace_ms % 1000) * 1000000L;
    if (d->drain_deadline.tv_nsec >= 1000000000L) {
        d->drain_deadline.tv_sec++;
        d->drain_deadline.tv_nsec -= 1000000000L;
    }
    drain_start(d);
    while (!all_done(d)) {
        int sig = wait_signal(sigs, DRAIN_POLL_MS);
        if (sig == SIGHUP) {
            log_info("SIGHUP while stopping: no reload");
        } else if (sig > 0 && !forced) {
            log_warn("signal %d while draining: stopping without waiting for answers", sig);
            for (int i = 0; i < d->n_workers; i++)
                event_base_loopbreak(d->workers[i].base);
            forced = true;
        }
    }
}

/* Runs the workers until SIGTERM/SIGINT (blocked here, taken by
 * sigtimedwait), then closes the listening socket *fd and drains them. */
static int serve(struct reportd *d, evutil_socket_t *fd, const sigset_t *sigs)
{
    const struct config *cfg = d->boot->cfg;
    int n = cfg->reportd.workers, rc = 1;
    struct http_limits_metrics hm;
    pthread_t *threads = calloc((size_t)n, sizeof(*threads));
    struct front *fronts = calloc((size_t)n, sizeof(*fronts));
    d->workers = calloc((size_t)n, sizeof(*d->workers));
    if (d->workers == NULL || threads == NULL || fronts == NULL ||
        http_limits_declare(d->obs.m, &hm) < 0)
        goto out;
    for (; d->n_workers < n; d->n_workers++) {
        struct worker *w = &d->workers[d->n_workers];
        if (worker_init(w, &fronts[d->n_workers], d, *fd, &hm) < 0 ||
            pthread_create(&threads[d->n_workers], NULL, worker_main, w) != 0) {
            log_error("cannot start worker %d", d->n_workers);
            worker_fini(w, &fronts[d->n_workers]);
            break;
        }
    }
    if (d->n_workers == n) {
        log_info("reportd ready on %s:%d with %d workers%s", cfg->reportd.listen.host,
                 cfg->reportd.listen.port, n,
                 cfg->reportd.read_db.host != NULL ? "; spend reports read the replica" : "");
        char status[320];
        snprintf(status, sizeof(status), "reportd serving on %s:%d", cfg->reportd.listen.host,
                 cfg->reportd.listen.port);
        notify_ready(status);
        log_info("signal %d: stopping", serve_until_stop(d, sigs));
        notify_stopping();
        rc = 0;
    }
    close(*fd); /* with the workers' copies gone too, new connections are refused */
    *fd = -1;
    if (rc == 0)
        drain_workers(d, sigs);
    else /* loopexit, unlike loopbreak, also stops a loop that has yet to start */
        for (int i = 0; i < d->n_workers; i++)
            event_base_loopexit(d->workers[i].base, NULL);
    for (int i = 0; i < d->n_workers; i++) {
        pthread_join(threads[i], NULL);
        worker_fini(&d->workers[i], &fronts[i]);
    }
out:
    free(fronts);
    free(d->workers);
    d->workers = NULL;
    d->n_workers = 0;
    free(threads);
    return rc;
}

/* The replica's schema, checked as the primary's. */
static int check_replica(const struct config *cfg, char *err, size_t errlen)
{
    char why[768];
    if (cfg->reportd.read_db.host == NULL ||
        db_schema_check_at(&cfg->reportd.read_db, why, sizeof(why)) == 0)
        return 0;
    snprintf(err, errlen, "read replica (tollgate.reportd.read_database_url): %s", why);
    return -1;
}

/* Reads the config and checks what serving needs: the time zone, both
 * databases' schema, the price file; then the first generation and the
 * metrics. -1 with err. */
static int setup(struct reportd *d, char *err, size_t errlen)
{
    struct price_table *prices = NULL;
    struct generation *g = NULL;
    struct config *cfg = config_load(d->config_path, err, errlen);
    if (cfg == NULL)
        return -1;
    log_configure(cfg->log_format, cfg->log_level);
    if (period_set_timezone(cfg->timezone) < 0) /* budget periods' calendar */
        snprintf(err, errlen, "time zone %s is not installed", cfg->timezone);
    else if (db_schema_check_at(&cfg->db, err, errlen) == 0 &&
             check_replica(cfg, err, errlen) == 0 &&
             (prices = price_table_open(cfg->price_file, err, errlen)) != NULL)
        g = gen_new(cfg, prices); /* prices: /spend/calculate's */
    if (g == NULL) {
        if (prices != NULL)
            snprintf(err, errlen, "out of memory");
        price_table_free(prices);
        config_free(cfg);
        return -1;
    }
    if (gen_holder_init(&d->gens, g) < 0) {
        gen_release(g);
        snprintf(err, errlen, "cannot initialise a mutex");
        return -1;
    }
    d->boot = gen_acquire(&d->gens);
    if (observe_init(&d->obs, d->boot->cfg->reportd.read_db.host != NULL) < 0) {
        snprintf(err, errlen, "out of memory declaring the metrics");
        return -1;
    }
    return 0;
}

static void teardown(struct reportd *d)
{
    observe_fini(&d->obs);
    if (d->boot != NULL) {
        gen_release(d->boot);
        gen_holder_fini(&d->gens);
    }
    park_fini(&d->park);
}

int main(int argc, char **argv)
{
    struct reportd d = {0};
    char err[1024];
    int c, rc = 1;
    sigset_t sigs;
    log_init("reportd");
    while ((c = getopt(argc, argv, "c:")) != -1) {
        if (c != 'c')
            break;
        d.config_path = optarg;
    }
    if (d.config_path == NULL || optind != argc) {
        fprintf(stderr, "usage: reportd -c CONFIG\n");
        return 2;
    }
    /* Block the signals in every thread; the main thread waits for them. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    if (runtime_init() < 0)
        return 1;
    if (park_init(&d.park) < 0) {
        log_error("cannot initialise a mutex");
        runtime_end();
        return 1;
    }
    evutil_socket_t fd = -1;
    if (setup(&d, err, sizeof(err)) < 0)
        log_error("%s", err);
    else if ((fd = listen_on(&d.boot->cfg->reportd.listen, err, sizeof(err))) < 0)
        log_error("%s", err);
    else
        rc = serve(&d, &fd, &sigs);
    if (fd >= 0)
        close(fd);
    teardown(&d);
    runtime_end();
    return rc;
}
