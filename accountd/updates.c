/* updates.c - publishing committed spend to proxyd (see updates.h).
 *
 * After each commit the owners of the batch are collected per table, their
 * spend is read back in chunks (prepared "WHERE id IN (?, ...)"), and one
 * SpendUpdate goes out on the PUB socket. proxyd uses it to see spend
 * committed through other proxyd instances within milliseconds rather than
 * at its next row refresh.
 */
#include "updates.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "db.h"
#include "log.h"
#include "strmap.h"

#define CHUNK 100 /* ids per SELECT */

struct updates {
    void *ctx, *pub;
};

/* One owner table: its prefix in update names and its id column. */
struct owner_table {
    char prefix;
    const char *table, *id;
};

static const struct owner_table TABLES[] = {
    {'k', "api_keys", "token"}, {'u', "internal_users", "user_id"}, {'t', "teams", "team_id"},
    {'c', "customers", "user_id"}, {'g', "tags", "tag"},
};
#define N_TABLES (sizeof(TABLES) / sizeof(TABLES[0]))

struct updates *updates_new(const char *endpoint, char *err, size_t errlen)
{
    struct updates *u = calloc(1, sizeof(*u));
    int linger = 0;
    if (u == NULL || (u->ctx = zmq_ctx_new()) == NULL ||
        (u->pub = zmq_socket(u->ctx, ZMQ_PUB)) == NULL ||
        zmq_setsockopt(u->pub, ZMQ_LINGER, &linger, sizeof(linger)) != 0 ||
        zmq_bind(u->pub, endpoint) != 0) {
        snprintf(err, errlen, "cannot bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
        updates_free(u);
        return NULL;
    }
    return u;
}

void updates_free(struct updates *u)
{
    if (u == NULL)
        return;
    if (u->pub != NULL)
        zmq_close(u->pub);
    if (u->ctx != NULL)
        zmq_ctx_term(u->ctx);
    free(u);
}

static void add_id(struct strmap *ids, const char *id)
{
    int err;
    if (id != NULL && id[0] != '\0' && strmap_get(ids, id) == NULL)
        strmap_put(ids, id, (void *)1, &err); /* a lost id only costs freshness */
}

/* The ids of table t that the events name. */
static void collect(const struct owner_table *t, Tollgate__UsageEvent **events, size_t n,
                    struct strmap *ids)
{
    for (size_t i = 0; i < n; i++) {
        const Tollgate__UsageEvent *e = events[i];
        switch (t->prefix) {
        case 'k': add_id(ids, e->api_key); break;
        case 'u': add_id(ids, e->user_id); break;
        case 't': add_id(ids, e->team_id); break;
        case 'c': add_id(ids, e->end_user); break;
        default:
            for (size_t k = 0; k < e->n_tags; k++)
                add_id(ids, e->tags[k]);
        }
    }
}

/* Reads spend for up to CHUNK ids and appends OwnerSpend entries. */
static int read_chunk(MYSQL *db, const struct owner_table *t, const char **ids, size_t n,
                      Tollgate__SpendUpdate *out)
{
    char sql[256 + CHUNK * 3], err[256];
    struct db_param p[CHUNK];
    struct db_result *r = NULL;
    int len = snprintf(sql, sizeof(sql), "SELECT %s, spend FROM %s WHERE %s IN (", t->id,
                       t->table, t->id);
    for (size_t i = 0; i < n; i++) {
        len += snprintf(sql + len, sizeof(sql) - (size_t)len, i ? ",?" : "?");
        p[i] = DB_STR(ids[i]);
    }
    snprintf(sql + len, sizeof(sql) - (size_t)len, ")");
    if (db_exec(db, sql, p, n, &r, NULL, NULL, err, sizeof(err)) < 0) {
        log_warn("spend update not published: %s", err);
        return -1;
    }
    for (size_t i = 0; i < r->nrows; i++) {
        Tollgate__OwnerSpend *o = malloc(sizeof(*o));
        const char *id = db_cell(r, i, 0), *spend = db_cell(r, i, 1);
        size_t idlen = strlen(id);
        if (o == NULL)
            break;
        tollgate__owner_spend__init(o);
        o->owner = malloc(idlen + 3);
        o->spend = strdup(spend != NULL ? spend : "0");
        if (o->owner == NULL || o->spend == NULL) {
            free(o->owner);
            free(o->spend);
            free(o);
            break;
        }
        snprintf(o->owner, idlen + 3, "%c:%s", t->prefix, id);
        out->owners[out->n_owners++] = o;
    }
    db_result_free(r);
    return 0;
}

/* Reads the spend of table t's ids into out (capacity reserved by the caller). */
static void read_table(MYSQL *db, const struct owner_table *t, struct strmap *ids,
                       Tollgate__SpendUpdate *out)
{
    const char *chunk[CHUNK];
    size_t n = 0, pos = 0;
    const char *id;
    void *v;
    while (strmap_next(ids, &pos, &id, &v) == 0) {
        chunk[n++] = id;
        if (n == CHUNK) {
            if (read_chunk(db, t, chunk, n, out) < 0)
                return;
            n = 0;
        }
    }
    if (n > 0)
        (void)read_chunk(db, t, chunk, n, out); /* logged inside */
}

static void send_update(struct updates *u, const Tollgate__SpendUpdate *up)
{
    size_t len = tollgate__spend_update__get_packed_size(up);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return;
    tollgate__spend_update__pack(up, buf);
    if (zmq_send(u->pub, buf, len, ZMQ_DONTWAIT) < 0)
        log_warn("spend update not published: %s", zmq_strerror(zmq_errno()));
    free(buf);
}

/* Reads the spend of the ids of each table and publishes it, with the
 * request ids it includes (may be none). */
static void publish_sets(struct updates *u, MYSQL *db, struct strmap *const *ids, char **rids,
                         size_t nrids)
{
    size_t total = 0;
    Tollgate__SpendUpdate up = TOLLGATE__SPEND_UPDATE__INIT;
    for (size_t t = 0; t < N_TABLES; t++)
        total += ids[t] != NULL ? strmap_count(ids[t]) : 0;
    if (total == 0 || (up.owners = calloc(total, sizeof(*up.owners))) == NULL)
        return;
    for (size_t t = 0; t < N_TABLES; t++)
        if (ids[t] != NULL)
            read_table(db, &TABLES[t], ids[t], &up);
    up.n_request_ids = nrids;
    up.request_ids = rids;
    if (up.n_owners > 0)
        send_update(u, &up);
    for (size_t i = 0; i < up.n_owners; i++) {
        free(up.owners[i]->owner);
        free(up.owners[i]->spend);
        free(up.owners[i]);
    }
    free(up.owners);
}

void updates_publish(struct updates *u, MYSQL *db, Tollgate__UsageEvent **events, size_t n)
{
    struct strmap *ids[N_TABLES] = {0};
    char **rids = malloc((n ? n : 1) * sizeof(*rids));
    for (size_t t = 0; t < N_TABLES; t++) {
        if ((ids[t] = strmap_new()) == NULL)
            goto out;
        collect(&TABLES[t], events, n, ids[t]);
    }
    for (size_t i = 0; rids != NULL && i < n; i++)
        rids[i] = events[i]->request_id;
    publish_sets(u, db, ids, rids, rids != NULL ? n : 0);
out:
    free(rids);
    for (size_t t = 0; t < N_TABLES; t++)
        strmap_free(ids[t], NULL);
}

void updates_publish_owners(struct updates *u, MYSQL *db, char prefix, struct strmap *ids)
{
    struct strmap *sets[N_TABLES] = {0};
    for (size_t t = 0; t < N_TABLES; t++)
        if (TABLES[t].prefix == prefix)
            sets[t] = ids;
    publish_sets(u, db, sets, NULL, 0);
}
