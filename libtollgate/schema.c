/* schema.c - schema versions and migrations.
 *
 * The numbered files of schema/ are built into every binary (embedded.c).
 * `accountd --migrate` applies the ones the database lacks, in order, each
 * recorded in schema_migrations; every daemon refuses to start on an older
 * schema. A named lock keeps two concurrent --migrate runs apart.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "embedded.h"

#define MIGRATE_LOCK_TIMEOUT_S 60

int db_schema_latest(void)
{
    int latest = 0;
    for (const struct embedded_migration *m = embedded_migrations; m->name != NULL; m++)
        latest = m->version;
    return latest;
}

int db_schema_version(MYSQL *db, char *err, size_t errlen)
{
    struct db_result *r = NULL;
    unsigned errnum;
    if (db_exec(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", NULL, 0, &r,
                NULL, &errnum, err, errlen) < 0)
        return errnum == 1146 /* ER_NO_SUCH_TABLE */ ? 0 : -1;
    int v = (r != NULL && r->nrows == 1) ? atoi(db_cell(r, 0, 0)) : 0;
    db_result_free(r);
    return v;
}

int db_schema_check(MYSQL *db, char *err, size_t errlen)
{
    char inner[512];
    int v = db_schema_version(db, inner, sizeof(inner));
    if (v < 0) {
        snprintf(err, errlen, "cannot read the schema version: %s", inner);
        return -1;
    }
    if (v < db_schema_latest()) {
        snprintf(err, errlen, "database schema is at version %d, this build needs %d: "
                 "run `accountd -c CONFIG --migrate` first", v, db_schema_latest());
        return -1;
    }
    if (v > db_schema_latest()) {
        snprintf(err, errlen, "database schema is at version %d, newer than this build (%d): "
                 "upgrade Tollgate", v, db_schema_latest());
        return -1;
    }
    return 0;
}

int db_schema_check_at(const struct db_config *cfg, char *err, size_t errlen)
{
    MYSQL *db = db_connect(cfg, err, errlen);
    int rc = db != NULL ? db_schema_check(db, err, errlen) : -1;
    if (db != NULL)
        mysql_close(db);
    return rc;
}

/* Runs a migration file (several statements) and drains all its results. */
static int run_script(MYSQL *db, const struct embedded_migration *m, char *err, size_t errlen)
{
    int rc = 0;
    if (mysql_set_server_option(db, MYSQL_OPTION_MULTI_STATEMENTS_ON) != 0) {
        snprintf(err, errlen, "enabling multi statements: %s", mysql_error(db));
        return -1;
    }
    if (mysql_real_query(db, m->sql, (unsigned long)strlen(m->sql)) != 0)
        rc = -1;
    while (rc == 0) {
        MYSQL_RES *res = mysql_store_result(db);
        if (res != NULL)
            mysql_free_result(res);
        int next = mysql_next_result(db);
        if (next > 0)
            rc = -1;
        if (next != 0)
            break;
    }
    if (rc < 0)
        snprintf(err, errlen, "%s: %s", m->name, mysql_error(db));
    if (mysql_set_server_option(db, MYSQL_OPTION_MULTI_STATEMENTS_OFF) != 0 && rc == 0) {
        snprintf(err, errlen, "disabling multi statements: %s", mysql_error(db));
        rc = -1;
    }
    return rc;
}

static int apply_pending(MYSQL *db, int *applied, char *err, size_t errlen)
{
    int current = db_schema_version(db, err, errlen);
    if (current < 0)
        return -1;
    for (const struct embedded_migration *m = embedded_migrations; m->name != NULL; m++) {
        if (m->version <= current)
            continue;
        struct db_param p[] = {DB_I64(m->version), DB_STR(m->name)};
        if (run_script(db, m, err, errlen) < 0 ||
            db_exec(db, "INSERT INTO schema_migrations (version, name, applied_at) "
                        "VALUES (?, ?, UTC_TIMESTAMP(6))", p, 2, NULL, NULL, NULL, err, errlen) < 0)
            return -1;
        (*applied)++;
    }
    return 0;
}

int db_migrate(MYSQL *db, int *applied, char *err, size_t errlen)
{
    struct db_result *r = NULL;
    struct db_param lock[] = {DB_STR("tollgate_migrate"), DB_I64(MIGRATE_LOCK_TIMEOUT_S)};
    *applied = 0;
    if (db_exec(db, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version INT NOT NULL PRIMARY KEY, name VARCHAR(255) NOT NULL,"
                    " applied_at DATETIME(6) NOT NULL) ENGINE=InnoDB",
                NULL, 0, NULL, NULL, NULL, err, errlen) < 0 ||
        db_exec(db, "SELECT GET_LOCK(?, ?)", lock, 2, &r, NULL, NULL, err, errlen) < 0)
        return -1;
    bool locked = r != NULL && r->nrows == 1 && db_cell(r, 0, 0) != NULL &&
                  strcmp(db_cell(r, 0, 0), "1") == 0;
    db_result_free(r);
    if (!locked) {
        snprintf(err, errlen, "another migration holds the lock; try again");
        return -1;
    }
    int rc = apply_pending(db, applied, err, errlen);
    char ignored[128];
    (void)db_exec(db, "SELECT RELEASE_LOCK(?)", lock, 1, NULL, NULL, NULL, ignored, sizeof(ignored));
    return rc;
}
