/* spool.h - proxyd's durable event spool: usage events on local disk until
 * accountd has acknowledged them, so no crash loses a billable request. */
#ifndef PROXYD_SPOOL_H
#define PROXYD_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct spool;
struct spool_segment;

/* Called by spool_new for every event found on disk without an ack. */
typedef void (*spool_recover_cb)(const char *request_id, const uint8_t *event, size_t len,
                                 struct spool_segment *seg, void *arg);

/* Opens (creating) cfg->proxyd.spool_dir, replays what is there through cb,
 * and starts a new segment for appends. NULL on error (err). */
struct spool *spool_new(const struct config *cfg, spool_recover_cb cb, void *arg, char *err,
                        size_t errlen);
/* Syncs and closes; the files stay for the next start. */
void spool_free(struct spool *s);

/* Appends an event (written before this returns; synced now or within
 * spool_fsync_ms). *seg identifies where it lives, for spool_ack.
 * -1 on a write error or when the spool is full. */
int spool_append(struct spool *s, const char *request_id, const uint8_t *event, size_t len,
                 struct spool_segment **seg);

/* accountd acknowledged the event: it no longer needs to be on disk. The
 * ack's record is buffered; spool_flush_acks writes what is buffered in one
 * go (spool_append and spool_free do it too). */
void spool_ack(struct spool *s, struct spool_segment *seg, const char *request_id);
void spool_flush_acks(struct spool *s);

/* Bytes on disk, and whether appends are refused for reaching the cap. */
uint64_t spool_bytes(const struct spool *s);
bool spool_full(const struct spool *s);

/* What recovery at spool_new found damaged: byte ranges of segments that
 * held no valid record (each usually one damaged record), skipped and
 * copied to spool_dir/damaged/, and their bytes. */
struct spool_damage {
    uint64_t ranges, bytes;
};
void spool_damage(const struct spool *s, struct spool_damage *out);

#endif
