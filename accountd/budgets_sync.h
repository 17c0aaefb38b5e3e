/* budgets_sync.h - the config's budgets (proxy, provider, deployment) written
 * into the config_budgets table, where accountd counts and resets them. */
#ifndef ACCOUNTD_BUDGETS_SYNC_H
#define ACCOUNTD_BUDGETS_SYNC_H

#include <mysql.h>
#include <stddef.h>

#include "config.h"

/* Upserts one row per budget of cfg. -1 with err on a database error. */
int budgets_sync(MYSQL *db, const struct config *cfg, char *err, size_t errlen);

#endif
