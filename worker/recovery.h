/* recovery: at worker start, repair what a crashed instance left behind.
 * Segments still 'recording' whose process is gone are truncated to their
 * last complete fragment, their end time and frame index read back from the
 * file, and marked 'partial'; a row whose file is gone becomes 'corrupt';
 * a recent segment file without a row is indexed from the file ('partial').
 * Nothing is deleted: every decision is logged. */
#ifndef MWR_WORKER_RECOVERY_H
#define MWR_WORKER_RECOVERY_H

#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"

struct db;

/* 0; 1 when something waits for the storage to come back (the disk guard
 * calls recovery_rows then); -errno when the DB cannot be opened (the
 * worker must not start). */
int recovery_run(const struct mwr_config *cfg, const char *instance_id);

/* Repairs the 'recording' rows no live process writes.  The rows left for
 * later (storage unavailable), or -errno. */
int recovery_rows(struct db *db, const char *storage_dir, bool require_mp, const char *instance_id);

/* What a segment's row says that its file cannot. */
struct recovery_hint {
        int64_t id; /* the row; 0: by path, inserted when there is none */
        const char *camera, *instance, *path, *time_source, *status;
        int64_t segment_num, start_us, clock_offset_us, pid;
        const char *video_codec, *audio_codec; /* for a new row */
        int width, height;
};

/* Indexes a segment from its file, cut back to its last whole fragment:
 * frames, end time, bytes and frame index.  0 (frames set), -ENODATA when
 * no whole fragment is in it, or -errno (the DB's message in db_errmsg). */
int recovery_index_file(struct db *db, const struct recovery_hint *h, int64_t *frames);

/* Indexes a segment file that has no row, from the file ("partial").
 * file is its name in its camera's day directory.  True when indexed. */
bool recovery_adopt(struct db *db, const char *camera, const char *path, const char *file);

/* The segment number the next segment of (camera, instance) gets: one more
 * than any this instance id ever wrote, so names never repeat. */
int64_t recovery_next_segment_num(const struct mwr_config *cfg, const char *camera_id, const char *instance_id);

#endif
