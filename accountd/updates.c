/* updates.c - publishing committed spend to proxyd (see updates.h).
 *
 * After each commit the ledger hands over the spend of every owner its
 * transaction touched, read under the transaction's own row locks, and one
 * SpendUpdate goes out on the PUB socket with the batch's request ids.
 * After a reset, the reset owners' rows are read back here. proxyd uses
 * the updates to see spend committed through other proxyd instances within
 * milliseconds rather than at its next row refresh, and to say when a
 * refused budget resets.
 */
#include "updates.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "curve.h"
#include "db.h"
#include "grow.h"
#include "log.h"

#define CHUNK 100 /* ids per SELECT after a reset */

struct updates {
    void *pub;
};

/* One owner table after a reset: its prefix, rows, id column and the
 * column that holds the end of its period. */
struct owner_table {
    char prefix;
    const char *from, *id, *reset_at;
};

static const struct owner_table TABLES[] = {
    {'k', "api_keys", "token", "budget_reset_at"},
    {'u', "internal_users", "user_id", "budget_reset_at"},
    {'t', "teams", "team_id", "budget_reset_at"},
    {'c', "customers c LEFT JOIN budgets b ON b.budget_id = c.budget_id", "c.user_id",
     "b.budget_reset_at"},
    {'g', "tags", "tag", "budget_reset_at"},
    {'p', "config_budgets", "budget_key", "budget_reset_at"},
};
#define N_TABLES (sizeof(TABLES) / sizeof(TABLES[0]))

int spend_list_add(struct spend_list *l, char prefix, const char *id, const char *spend,
                   int64_t reset_at_us)
{
    Tollgate__OwnerSpend *v = grow_array(l->v, &l->cap, l->n + 1, sizeof(*l->v), 64);
    if (v == NULL)
        return -1;
    l->v = v;
    Tollgate__OwnerSpend *o = &l->v[l->n];
    size_t idlen = strlen(id);
    tollgate__owner_spend__init(o);
    o->owner = malloc(idlen + 3);
    o->spend = strdup(spend != NULL ? spend : "0");
    if (o->owner == NULL || o->spend == NULL) {
        free(o->owner);
        free(o->spend);
        return -1;
    }
    o->owner[0] = prefix;
    o->owner[1] = ':';
    memcpy(o->owner + 2, id, idlen + 1);
    o->has_reset_at_us = reset_at_us != 0;
    o->reset_at_us = reset_at_us;
    l->n++;
    return 0;
}

void spend_list_truncate(struct spend_list *l, size_t n)
{
    for (size_t i = n; i < l->n; i++) {
        free(l->v[i].owner);
        free(l->v[i].spend);
    }
    if (n < l->n)
        l->n = n;
}

void spend_list_free(struct spend_list *l)
{
    spend_list_truncate(l, 0);
    free(l->v);
    l->v = NULL;
    l->cap = 0;
}

struct updates *updates_new(void *ctx, const char *endpoint, const struct curve_keypair *server,
                            char *err, size_t errlen)
{
    struct updates *u = calloc(1, sizeof(*u));
    int linger = 0;
    if (u == NULL || (u->pub = zmq_socket(ctx, ZMQ_PUB)) == NULL ||
        zmq_setsockopt(u->pub, ZMQ_LINGER, &linger, sizeof(linger)) != 0) {
        snprintf(err, errlen, "ZeroMQ updates socket: %s", zmq_strerror(zmq_errno()));
        updates_free(u);
        return NULL;
    }
    /* CURVE here too: the updates carry every key's, team's and customer's spend. */
    if (curve_bind(u->pub, server, endpoint, err, errlen) < 0) {
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
    free(u);
}

/* Sends the list's owners with request ids rids (may be none). */
static void send_update(struct updates *u, const struct spend_list *l, char **rids, size_t nrids)
{
    Tollgate__SpendUpdate up = TOLLGATE__SPEND_UPDATE__INIT;
    Tollgate__OwnerSpend **owners = malloc((l->n ? l->n : 1) * sizeof(*owners));
    uint8_t *buf = NULL;
    if (owners == NULL)
        return;
    for (size_t i = 0; i < l->n; i++)
        owners[i] = &l->v[i];
    up.owners = owners;
    up.n_owners = l->n;
    up.request_ids = rids;
    up.n_request_ids = nrids;
    size_t len = tollgate__spend_update__get_packed_size(&up);
    if ((buf = malloc(len ? len : 1)) != NULL) {
        tollgate__spend_update__pack(&up, buf);
        if (zmq_send(u->pub, buf, len, ZMQ_DONTWAIT) < 0)
            log_warn("spend update not published: %s", zmq_strerror(zmq_errno()));
    }
    free(buf);
    free(owners);
}

void updates_publish(struct updates *u, const struct spend_list *l,
                     Tollgate__UsageEvent **events, size_t n)
{
    char **rids = malloc((n ? n : 1) * sizeof(*rids));
    if (rids == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        rids[i] = events[i]->request_id;
    if (l->n > 0 || n > 0)
        send_update(u, l, rids, n);
    free(rids);
}

/* Reads spend and period end of up to CHUNK ids of table t into l. */
static int read_chunk(MYSQL *db, const struct owner_table *t, const char **ids, size_t n,
                      struct spend_list *l)
{
    char sql[512 + CHUNK * 3], err[256];
    struct db_param p[CHUNK];
    struct db_result *r = NULL;
    int len = snprintf(sql, sizeof(sql),
                       "SELECT %s, spend, " DB_SQL_UNIX_US("%s") " FROM %s WHERE %s IN (",
                       t->id, t->reset_at, t->from, t->id);
    for (size_t i = 0; i < n; i++) {
        len += snprintf(sql + len, sizeof(sql) - (size_t)len, i ? ",?" : "?");
        p[i] = DB_STR(ids[i]);
    }
    snprintf(sql + len, sizeof(sql) - (size_t)len, ")");
    if (db_exec(db, sql, p, n, &r, NULL, NULL, err, sizeof(err)) < 0) {
        log_warn("spend update not published: %s", err);
        return -1;
    }
    for (size_t i = 0; i < r->nrows; i++)
        if (spend_list_add(l, t->prefix, db_cell(r, i, 0), db_cell(r, i, 1),
                           strtoll(db_cell(r, i, 2), NULL, 10)) < 0)
            break; /* out of memory: publish what fits */
    db_result_free(r);
    return 0;
}

void updates_publish_owners(struct updates *u, MYSQL *db, char prefix, struct strmap *ids)
{
    const struct owner_table *t = NULL;
    struct spend_list l = {0};
    const char *chunk[CHUNK], *id;
    size_t n = 0, pos = 0;
    void *v;
    for (size_t i = 0; i < N_TABLES; i++)
        if (TABLES[i].prefix == prefix)
            t = &TABLES[i];
    if (t == NULL)
        return;
    while (strmap_next(ids, &pos, &id, &v) == 0) {
        chunk[n++] = id;
        if (n == CHUNK) {
            if (read_chunk(db, t, chunk, n, &l) < 0)
                goto out;
            n = 0;
        }
    }
    if (n > 0 && read_chunk(db, t, chunk, n, &l) < 0)
        goto out;
    if (l.n > 0)
        send_update(u, &l, NULL, 0);
out:
    spend_list_free(&l);
}
