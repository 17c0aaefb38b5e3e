/* main.c - proxyd: wiring only (see proxy.h for the modules). */
#include <getopt.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>

#include "admission.h"
#include "background.h"
#include "call.h"
#include "db.h"
#include "drain.h"
#include "http_front.h"
#include "http_limits.h"
#include "journal.h"
#include "keystore.h"
#include "log.h"
#include "notify.h"
#include "owners.h"
#include "runtime.h"
#include "proxy.h"
#include "publish.h"
#include "relay.h"
#include "reload.h"
#include "spend_sub.h"
#include "stats.h"

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    log_info("signal %d: stopping", (int)sig);
    notify_stopping();
    drain_start(arg);
}

static void on_reload(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    notify_reloading();
    reload_config(arg);
    notify_ready(NULL);
}

/* systemd's watchdog: pinged from the event loop, so a stuck loop is seen. */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    notify_watchdog();
}

/* mkdir -p */
static int make_dirs(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0750) != 0 && errno != EEXIST ? -1 : 0;
}

static void on_ack(const char *request_id, void *arg)
{
    admission_acked(arg, request_id);
}

/* A stream the last run left open: billed, cut, unless its real event made
 * it into the spool (then that one is on its way). */
static int on_open_stream(const char *request_id, const uint8_t *event, size_t len, void *arg)
{
    struct publisher *pub = arg;
    if (publisher_has(pub, request_id))
        return 0;
    log_warn("request %s: its stream was cut by the last run's end; billed for what it "
             "relayed", request_id);
    int sent = publisher_send(pub, request_id, event, len);
    if (sent < 0)
        log_error("request %s: out of memory queueing its cut stream's event", request_id);
    return sent != 0; /* not in the spool: the journal keeps it */
}

static int build(struct proxy *px, char *err, size_t errlen)
{
    if (make_dirs(px->cfg->proxyd.spool_dir) < 0) {
        snprintf(err, errlen, "cannot create spool_dir %s: %s", px->cfg->proxyd.spool_dir,
                 strerror(errno));
        return -1;
    }
    if ((px->stats = stats_new()) == NULL || call_limits_start(px) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if ((px->gen = generation_first(px->cfg, px->base, err, errlen)) == NULL ||
        db_schema_check_at(&px->cfg->db, err, errlen) < 0 ||
        (px->relay = relay_new(px->base, err, errlen)) == NULL ||
        (px->pub = publisher_new(px->base, px->cfg, err, errlen)) == NULL ||
        (px->journal = journal_open(px->cfg->proxyd.spool_dir, on_open_stream, px->pub, err,
                                    errlen)) == NULL ||
        (px->keys = keystore_new(px->base, px->cfg, err, errlen)) == NULL ||
        (px->owners = owners_new(px->keys, px->cfg)) == NULL ||
        (px->admission = admission_new(KEYSTORE_STALE_MS(px->cfg->proxyd.key_cache_ttl_ms))) ==
            NULL ||
        http_front_start(px, err, errlen) < 0)
        return -1;
    if ((px->spend_sub = spend_sub_new(px->base, px->cfg, px->admission, err, errlen)) == NULL)
        return -1;
    publisher_on_ack(px->pub, on_ack, px->admission);
    return 0;
}

/* Teardown in dependency order: requests waiting on a key lookup are
 * answered (and may start transfers), transfers in flight are aborted
 * (answered 502 and their events queued), then the publisher and the HTTP
 * server that owns the requests go; the config generation and the metrics,
 * which every request uses until its end, go last. */
static void teardown(struct proxy *px)
{
    keystore_free(px->keys);
    call_limits_unshare(px);
    background_stop(px);
    relay_free(px->relay);
    journal_free(px->journal);
    publisher_free(px->pub);
    if (px->http != NULL)
        evhttp_free(px->http);
    http_limits_free(px->limits); /* after its evhttp */
    spend_sub_free(px->spend_sub);
    admission_free(px->admission);
    call_limits_stop(px); /* after every request has ended (relay_free, evhttp_free) */
    owners_free(px->owners);
    drain_free(px->drain);
    generation_unref(px->gen);
    stats_free(px->stats);
}

/* The event loop. The epoll changelist folds the several interest changes
 * one request makes to a socket between two epoll_waits (libevent's
 * evhttp and curl each toggle read and write) into one epoll_ctl. Its one
 * caveat, fds cloned by dup() registered with the loop, does not apply:
 * the spool's sync thread dups only its own segment fd. Priorities: proxy.h. */
static struct event_base *new_base(void)
{
    struct event_config *ec = event_config_new();
    struct event_base *base = NULL;
    if (ec != NULL && event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST) == 0 &&
        event_config_set_max_dispatch_interval(ec, NULL, PRIO_LOW_BATCH, PRIO_LOW) == 0)
        base = event_base_new_with_config(ec);
    if (ec != NULL)
        event_config_free(ec);
    if (base != NULL && event_base_priority_init(base, PRIO_LEVELS) != 0) {
        event_base_free(base);
        base = NULL;
    }
    return base;
}

static int run(const struct config *cfg)
{
    struct proxy px = {.cfg = cfg};
    struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL, *watchdog = NULL;
    char err[1024];
    int rc = 1;
    if ((px.base = new_base()) == NULL ||
        (sigterm = evsignal_new(px.base, SIGTERM, on_stop, &px)) == NULL ||
        (sigint = evsignal_new(px.base, SIGINT, on_stop, &px)) == NULL ||
        (sighup = evsignal_new(px.base, SIGHUP, on_reload, &px)) == NULL ||
        event_add(sigterm, NULL) != 0 || event_add(sigint, NULL) != 0 ||
        event_add(sighup, NULL) != 0) {
        log_error("cannot set up the event loop");
        goto out;
    }
    if (build(&px, err, sizeof(err)) < 0) {
        log_error("%s", err);
        goto out;
    }
    if (!cfg->ssl_verify)
        log_warn("litellm_settings.ssl_verify is false: upstream certificates are not checked");
    log_info("proxyd ready on %s:%d, %zu deployments, %zu priced models",
             cfg->proxyd.listen.host, cfg->proxyd.listen.port, cfg->n_deployments,
             price_table_count(px.gen->prices));
    int64_t ping_ms = notify_watchdog_interval_ms();
    struct timeval every = {(time_t)(ping_ms / 1000), (suseconds_t)(ping_ms % 1000) * 1000};
    if (ping_ms > 0 && ((watchdog = event_new(px.base, -1, EV_PERSIST, on_watchdog, NULL)) ==
                            NULL || event_add(watchdog, &every) != 0)) {
        log_error("cannot set up the systemd watchdog timer");
        goto out;
    }
    char status[320];
    snprintf(status, sizeof(status), "proxyd serving on %s:%d", cfg->proxyd.listen.host,
             cfg->proxyd.listen.port);
    notify_ready(status);
    rc = event_base_dispatch(px.base) < 0 ? 1 : 0;
out:
    teardown(&px);
    if (watchdog != NULL)
        event_free(watchdog);
    if (sigterm != NULL)
        event_free(sigterm);
    if (sigint != NULL)
        event_free(sigint);
    if (sighup != NULL)
        event_free(sighup);
    if (px.base != NULL)
        event_base_free(px.base);
    return rc;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    char err[1024];
    int c;
    log_init("proxyd");
    while ((c = getopt(argc, argv, "c:")) != -1) {
        if (c != 'c') {
            fprintf(stderr, "usage: proxyd -c CONFIG\n");
            return 2;
        }
        path = optarg;
    }
    if (path == NULL || optind != argc) {
        fprintf(stderr, "usage: proxyd -c CONFIG\n");
        return 2;
    }
    if (runtime_init() < 0)
        return 1;
    struct config *cfg = config_load(path, err, sizeof(err));
    int rc = 1;
    if (cfg == NULL) {
        log_error("%s", err);
    } else {
        log_configure(cfg->log_format, cfg->log_level);
        rc = run(cfg);
    }
    config_free(cfg);
    runtime_end();
    return rc;
}
