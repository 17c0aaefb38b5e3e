/* spool_sync.h - the spool's group fsync on a thread of its own, so that an
 * fdatasync (often hundreds of microseconds on a real disk) never stalls
 * proxyd's event loop and the requests waiting on it. */
#ifndef PROXYD_SPOOL_SYNC_H
#define PROXYD_SPOOL_SYNC_H

#include <stddef.h>

struct spool_sync;

/* Starts the thread: every period_ms it fdatasyncs the file when it was
 * marked dirty since the last sync. NULL on error (err). */
struct spool_sync *spool_sync_start(int period_ms, char *err, size_t errlen);

/* From now on the thread syncs fd (-1: none). The caller keeps owning fd
 * and may close the previous one as soon as this returns. */
void spool_sync_file(struct spool_sync *ss, int fd);

/* Something was written to the file: sync it at the next tick. */
void spool_sync_dirty(struct spool_sync *ss);

/* Stops and joins the thread (what is dirty is the caller's to sync). */
void spool_sync_stop(struct spool_sync *ss);

#endif
