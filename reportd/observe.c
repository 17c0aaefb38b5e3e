/* observe.c - what each reportd request leaves behind: one access log line
 * and its counts in /metrics; plus the database errors and reloads counted
 * there.
 *
 * The route label is always a pattern from api.c's ROUTES (or "other"),
 * never the raw path, so clients cannot grow the metrics' series. The
 * access line names the method, route, status and duration only: the query
 * string and the body may hold keys (/key/info?key=sk-...) and are never
 * logged.
 */
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <string.h>

#include "ids.h"
#include "httpjson.h"
#include "log.h"
#include "metrics.h"
#include "ops.h"
#include "reportd.h"

int observe_init(struct observe *o, bool replica)
{
    if ((o->m = metrics_new()) == NULL)
        return -1;
    o->requests = metrics_counter(o->m, "tollgate_reportd_requests_total",
                                  "Requests answered, by route pattern (other: no route) and"
                                  " HTTP status", "route,status");
    o->duration = metrics_histogram(o->m, "tollgate_reportd_request_duration_seconds",
                                    "Time from a request's dispatch to its handler's return"
                                    " (authorization, queries, building the answer), by route"
                                    " pattern", "route", metrics_latency_buckets,
                                    metrics_latency_nbuckets);
    o->db_errors = metrics_counter(o->m, "tollgate_reportd_db_errors_total",
                                   "Failed MariaDB connections and queries, by database"
                                   " (primary, or the replica of read_database_url)", "database");
    o->reloads = metrics_counter(o->m, "tollgate_reportd_config_reloads_total",
                                 "Config reloads on SIGHUP, by result (applied or refused)",
                                 "result");
    if (o->requests < 0 || o->duration < 0 || o->db_errors < 0 || o->reloads < 0) {
        observe_fini(o);
        return -1;
    }
    /* the series a dashboard alerts on exist from the start, at 0 */
    metrics_add(o->m, o->db_errors, METRICS_LABELS("primary"), 0);
    if (replica)
        metrics_add(o->m, o->db_errors, METRICS_LABELS("replica"), 0);
    metrics_add(o->m, o->reloads, METRICS_LABELS("applied"), 0);
    metrics_add(o->m, o->reloads, METRICS_LABELS("refused"), 0);
    return 0;
}

void observe_fini(struct observe *o)
{
    metrics_free(o->m);
    o->m = NULL;
}

/* A client's id is kept when it is 1 to OBSERVE_ID_MAX printable ASCII bytes. */
static bool id_usable(const char *v)
{
    size_t n = 0;
    if (v == NULL)
        return false;
    for (; v[n] != '\0'; n++)
        if (n >= OBSERVE_ID_MAX || (unsigned char)v[n] < 0x20 || (unsigned char)v[n] > 0x7e)
            return false;
    return n > 0;
}

void observe_request_id(struct evhttp_request *req, char id[OBSERVE_ID_MAX + 1])
{
    const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), "x-request-id");
    if (id_usable(v))
        snprintf(id, OBSERVE_ID_MAX + 1, "%s", v);
    else if (ids_uuid4(id) < 0)
        snprintf(id, OBSERVE_ID_MAX + 1, "-");
    if (evhttp_add_header(evhttp_request_get_output_headers(req), "x-request-id", id) != 0)
        log_request(LOG_WARN, id, "cannot add the x-request-id header");
}

void observe_request(struct observe *o, struct evhttp_request *req, const char *request_id,
                     const char *route, double seconds)
{
    char status[16], ms[32];
    snprintf(status, sizeof(status), "%d", evhttp_request_get_response_code(req));
    snprintf(ms, sizeof(ms), "%.3f", seconds * 1000.0);
    metrics_add(o->m, o->requests, METRICS_LABELS(route, status), 1);
    metrics_observe(o->m, o->duration, METRICS_LABELS(route), seconds);
    log_fields(LOG_INFO,
               (const char *[]){"request_id", request_id, "method",
                                httpjson_method_name(evhttp_request_get_command(req)), "route", route,
                                "status", status, "duration_ms", ms, NULL},
               "request");
}

void observe_db_error(struct observe *o, bool replica)
{
    metrics_add(o->m, o->db_errors, METRICS_LABELS(replica ? "replica" : "primary"), 1);
}

void observe_reload(struct observe *o, bool applied)
{
    metrics_add(o->m, o->reloads, METRICS_LABELS(applied ? "applied" : "refused"), 1);
}

void ops_metrics(struct worker *w, struct evhttp_request *req, const struct caller *who)
{
    (void)who;
    metrics_reply(w->d->obs.m, req);
}
