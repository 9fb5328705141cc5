/* exports: `mwr export` for the web UI's downloads.  A job stitches one
 * camera's timeline over a range into MP4 files (mwr/export.h, the very
 * code of `mwr export`) on a thread of its own, into
 * storage_dir/.exports/ (a dot directory: no walk of the archive looks
 * there).  Its progress can be asked while it runs, its files are served
 * when it is done, and EXPORTS_KEEP_S after it ended it is forgotten and
 * its files deleted.  At most EXPORTS_RUNNING_MAX run at once. */
#ifndef MWR_WORKER_EXPORTS_H
#define MWR_WORKER_EXPORTS_H

#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#define EXPORTS_RUNNING_MAX 2
#define EXPORTS_JOBS_MAX 16      /* kept, running or done */
#define EXPORTS_KEEP_S 600       /* a finished job's files stay this long */
#define EXPORTS_RANGE_MAX_US (INT64_C(6) * 3600 * 1000000)

struct exports;

/* 0, -ENOMEM. */
int exports_new(const char *db_path, const char *storage_dir, struct exports **out);
/* Deletes the files of finished jobs; a job still running is left to the
 * process's exit (its files go at the next start).  NULL is fine. */
void exports_free(struct exports *x);

/* Starts a job; *id names it.  0, -EBUSY (EXPORTS_RUNNING_MAX run, or the
 * table is full), -EINVAL (range), -ENOMEM; err says which. */
int exports_start(struct exports *x, const char *camera, int64_t from_us, int64_t to_us, int64_t *id, char *err,
                  size_t errlen);

/* {id, camera, from_us, to_us, state: running|done|failed, frames_done,
 * frames_total, error, parts:[{part, frames, width, height, codec,
 * bytes}]}, or NULL when camera has no job id. */
cJSON *exports_status(struct exports *x, const char *camera, int64_t id);

/* An fd on part k (1-based) of a done job, and its size.  -ENOENT (no
 * such job or part), -EAGAIN (still running), or -errno of open. */
int exports_open(struct exports *x, const char *camera, int64_t id, int part, off_t *size);

#endif
