/* fuzz_events.c - accountd's intake of proxyd's events: an EventBatch
 * message decoded as intake.c decodes it (protobuf-c), then checked and
 * priced into ledger rows (ledger_rows.c: rows_prepare), which is all that
 * happens to an event before the database sees it. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "events.pb-c.h"
#include "fuzz_common.h"
#include "ledger.h"
#include "ledger_rows.h"
#include "price.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct price_table *prices;
    char err[256];
    if (prices == NULL && (prices = price_table_open(NULL, err, sizeof(err))) == NULL) {
        fprintf(stderr, "prices: %s\n", err);
        abort();
    }
    Tollgate__EventBatch *eb = tollgate__event_batch__unpack(NULL, size, data);
    if (eb == NULL)
        return 0;
    /* What the ledgers share, fresh per input: a model warned about as
     * unpriced in one input is warned about in the next too. */
    struct ledger_shared shared = {.warned = strmap_new()};
    struct ledger_row *rows = calloc(eb->n_events + 1, sizeof(*rows));
    if (shared.warned == NULL || rows == NULL || pthread_mutex_init(&shared.lock, NULL) != 0)
        abort();
    if (rows_prepare(rows, eb->events, eb->n_events, prices, &shared,
                     1700000000000000LL) == 0) /* a fixed retention horizon */
        rows_release(rows, eb->n_events);
    free(rows);
    pthread_mutex_destroy(&shared.lock);
    strmap_free(shared.warned, NULL);
    tollgate__event_batch__free_unpacked(eb, NULL);
    return 0;
}
