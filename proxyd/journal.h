/* journal.h - the stream journal: what each open stream has sent so far,
 * on disk, so that a proxyd killed in the middle of streams still bills
 * each of them, cut, exactly once.
 *
 * While a stream runs, stream.c notes the usage event it would publish if
 * it were cut now (the prompt, the output tokens relayed so far), every
 * time content reaches the client; when its real event is in the spool,
 * the stream is closed. At start-up, streams noted and never closed are
 * handed back once (main.c publishes those the spool does not hold) and the
 * journal starts empty. */
#ifndef PROXYD_JOURNAL_H
#define PROXYD_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

struct journal;

/* Called by journal_open for each stream left open by the last run;
 * returns 1 when the journal must keep it (its event is not durable
 * elsewhere yet), 0 when it is done with it. */
typedef int (*journal_recover_cb)(const char *request_id, const uint8_t *event, size_t len,
                                  void *arg);

/* Opens dir's journal, hands back what the last run left open, and starts
 * it with only what the callback kept. NULL on error (err). */
struct journal *journal_open(const char *dir, journal_recover_cb cb, void *arg, char *err,
                             size_t errlen);
/* Empties the file when no stream is open. */
void journal_free(struct journal *j);

/* The stream's cut event as of now (replaces its previous note). -1 on a
 * write error or ENOMEM (logged). */
int journal_note(struct journal *j, const char *request_id, const uint8_t *event, size_t len);

/* The stream's real event is in the spool: forget it. */
void journal_close(struct journal *j, const char *request_id);

#endif
