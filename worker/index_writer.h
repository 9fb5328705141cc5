/* index_writer: the only thread of a worker that writes rows while it
 * records.  Camera threads hand it segment rows, progress, gaps and camera
 * rows through a queue and never wait on the database: a locked or full DB
 * delays the index, never the recording.  Events are applied in order; a
 * busy DB is retried, progress updates of one segment are coalesced while
 * queued.  The queue is bounded in bytes (INDEX_QUEUE_MAX_BYTES): past it
 * new events are dropped and counted, and a segment whose row could not be
 * queued is listed (at most INDEX_REINDEX_MAX) and rebuilt from its file
 * once its camera closed it and the queue is empty; beyond that list the
 * next start's recovery does it.  Nothing is lost silently. */
#ifndef MWR_WORKER_INDEX_WRITER_H
#define MWR_WORKER_INDEX_WRITER_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"

#define INDEX_QUEUE_MAX_BYTES (64u << 20) /* ~12 000 closed segments of 60 s at 25 fps */
#define INDEX_REINDEX_MAX 16384           /* segments listed for a rebuild; ~200 bytes each */

struct index_writer;
struct seg_ref; /* one segment's row, shared by its camera thread and the writer */

struct seg_info {
        char camera_id[CONFIG_ID_MAX];
        char instance_id[CONFIG_ID_MAX];
        char path[PATH_MAX];
        int64_t segment_num;
        int64_t start_us, end_us;
        int64_t frames, bytes, keyframes, fragments;
        const char *status;      /* "recording", "complete", "partial", "corrupt" */
        const char *time_source; /* "rtcp" or "receive" */
        int64_t clock_offset_us; /* camera time - local realtime */
        char video_codec[16];    /* "h264" | "hevc" */
        int width, height;
        char audio_codec[16];    /* "" without sound */
};

struct index_writer_stats {
        uint64_t queued, applied, dropped, db_errors;
        uint64_t reindexed;       /* rows rebuilt from their files after an overflow */
        uint64_t reindex_lost;    /* not listed (list full): left to the next start's recovery */
        uint64_t queue_len, queue_bytes; /* events waiting now, and their memory */
        uint64_t reindex_waiting; /* segments listed now */
        int64_t last_error_mono_us;
};

/* Opens its own connection to db_path (migrating it) and starts the thread. */
int index_writer_start(const char *db_path, struct index_writer **out, char *err, size_t errlen);

/* Drains the queue (waiting for a busy DB at most drain_timeout_us), stops
 * the thread and closes the DB.  Returns the events left unapplied. */
size_t index_writer_stop(struct index_writer *iw, int64_t drain_timeout_us);

/* Queues the insert of a 'recording' row; the caller owns the returned ref. */
struct seg_ref *index_writer_segment_begin(struct index_writer *iw, const struct seg_info *s);
/* Queues an update of the row and its frame index blob (copied). */
void index_writer_segment_update(struct index_writer *iw, struct seg_ref *ref, const struct seg_info *s,
                                 const void *blob, size_t len);
void seg_ref_release(struct seg_ref *ref);

void index_writer_gap(struct index_writer *iw, const char *camera_id, const char *instance_id, int64_t start_us,
                      int64_t end_us, const char *reason, const char *detail);
void index_writer_camera(struct index_writer *iw, const char *id, const char *url_redacted, int enabled);
/* This instance's hold on a camera (db_lease_put; the heartbeat is the
 * time the row is written). */
void index_writer_lease(struct index_writer *iw, const char *camera_id, const char *instance_id, const char *state,
                        int64_t since_us, int64_t last_frame_us, int64_t limited_us);

void index_writer_get_stats(struct index_writer *iw, struct index_writer_stats *out);

#endif
