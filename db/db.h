/* db: the SQLite index of cameras, segments, per-segment frame indexes and
 * gaps, shared by both worker instances and the mwr tool (WAL mode).  The
 * schema migrates forward only by expansion (PRAGMA user_version), so an old
 * and a new binary can share one file during a deploy.  A struct db is one
 * connection with its prepared statements: one per thread, never shared.
 * Errors are negative errno; db_errmsg() has SQLite's words for the log. */
#ifndef MWR_DB_DB_H
#define MWR_DB_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DB_BUSY_TIMEOUT_MS 5000      /* wait for another writer before -EBUSY */
#define DB_SCHEMA_VERSION 8          /* the user_version this binary migrates to */
#define DB_ERRMSG_MAX 256
#define DB_TEXT_MAX 4096             /* any text argument: ids, paths, urls, details */
#define DB_BLOB_MAX (8u << 20)       /* a frame index blob */
#define DB_QUERY_LIMIT_MAX 100000    /* rows per range query; page with offset */
/* Longest segment the index accepts; range queries scan back this far only. */
#define DB_SEGMENT_SPAN_MAX_US (INT64_C(2) * 3600 * 1000000)

struct db;

/* One row of video_segments.  In callbacks the strings point into SQLite's
 * row buffers and are valid during the callback only: copy what you keep. */
struct db_segment {
        int64_t id;
        const char *camera_id;
        const char *instance_id;
        const char *path;
        int64_t segment_num;
        int64_t start_us, end_us; /* camera timeline, us since the Unix epoch */
        int64_t frames, bytes, keyframes, fragments;
        const char *status;         /* recording | complete | partial | corrupt */
        const char *overlap_status; /* unique | primary | duplicate | partial */
        const char *time_source;    /* rtcp | receive */
        int64_t clock_offset_us;
        int64_t pid;
        int64_t created_us, updated_us; /* wall clock, set by the caller */
        const char *video_codec;    /* "h264" | "hevc" ("" before schema 3) */
        int width, height;          /* of its frames (0 when unknown) */
        const char *audio_codec;    /* "aac", "flac" (G.711 made lossless), ... "" without sound */
};

/* One row of gaps; strings as in struct db_segment. */
struct db_gap {
        int64_t id;
        const char *camera_id;
        const char *instance_id;
        int64_t start_us, end_us;
        const char *reason; /* camera_down | recorder_start | recorder_stop | disk_full |
                             * clock_step | timestamp_jump | corrupt_input | crash |
                             * packet_loss | handover | storage_unavailable */
        const char *detail;
        int64_t created_us;
};

/* Non-zero stops the iteration and is returned by the query.  A callback may
 * write through the same db (not re-enter the same query: -EDEADLK), but
 * such a write fails with -EBUSY if another connection wrote since the query
 * started; collecting ids first and writing after is the safer pattern. */
typedef int (*db_segment_cb)(const struct db_segment *seg, void *ctx);
typedef int (*db_gap_cb)(const struct db_gap *gap, void *ctx);

/* Open (creating if needed) and migrate.  0; -EUCLEAN (not a database or
 * corrupt), -EPROTO (the schema lacks a column this binary uses), -EBUSY,
 * -EOPNOTSUPP (WAL unavailable on that file system), -ENOENT/-EACCES/...
 * from the OS, -ENOMEM, -EIO.  A DB at a higher user_version is accepted. */
int db_open(const char *path, struct db **out);
void db_close(struct db *db);

/* The message of the last error on this connection, SQLite's or the
 * argument check's ("" if none yet); not cleared by a success. */
const char *db_errmsg(const struct db *db);

/* How long to wait for another connection's write lock (tests shorten it). */
int db_set_busy_timeout_ms(struct db *db, int timeout_ms);

/* Cheap liveness query for health checks: 0 or negative errno. */
int db_check(struct db *db);

/* url already stripped of credentials by the caller. */
int db_camera_upsert(struct db *db, const char *id, const char *url, bool enabled, int64_t now_us);

/* Insert seg with status 'recording' (seg->status is ignored; a NULL
 * overlap_status means 'unique'); created_us and updated_us are taken from
 * seg.  *id gets the new row id.  -EEXIST if the path is already indexed,
 * -EINVAL for a value the schema refuses, -ERANGE unless 0 <= end_us -
 * start_us <= DB_SEGMENT_SPAN_MAX_US (the recorder rotates long before). */
int db_segment_begin(struct db *db, const struct db_segment *seg, int64_t *id);

/* In one transaction, update seg->id's end_us, frames, bytes, keyframes,
 * fragments, status (NULL: unchanged), clock_offset_us and updated_us, and
 * store the frame index blob (NULL: leave the stored one).  seg->start_us
 * must be the row's.  -ENOENT if no such segment, -E2BIG if len >
 * DB_BLOB_MAX, -ERANGE as for db_segment_begin. */
int db_segment_update(struct db *db, const struct db_segment *seg, const void *blob, size_t len);

int db_segment_set_status(struct db *db, int64_t id, const char *status); /* -ENOENT */
/* unique | primary | duplicate | partial (the continuity timeline's verdict);
 * -EINVAL for another value (the schema's CHECK), -ENOENT. */
int db_segment_set_overlap(struct db *db, int64_t id, const char *overlap_status);
int db_segment_delete(struct db *db, int64_t id); /* and its frame index; -ENOENT */
/* Deletes the n rows (and frame indexes) in one transaction; rows already
 * gone are not an error. */
int db_segments_delete(struct db *db, const int64_t *ids, size_t n);

/* Statement k of the ones this module prepares (0, 1, ...): its SQL and
 * SQLite's EXPLAIN QUERY PLAN lines joined by "; " into plan.  0, -ENOENT
 * past the last, or a DB error.  For the test that every query is served
 * by an index. */
int db_explain(struct db *db, size_t k, const char **sql, char *plan, size_t len);

/* Segments with that status, by start_us, id. */
int db_segments_by_status(struct db *db, const char *status, db_segment_cb cb, void *ctx);

/* camera_id's segments overlapping [from_us, to_us) (a zero-length segment
 * counts if it starts inside), by start_us, id; at most limit (1 ..
 * DB_QUERY_LIMIT_MAX) rows after skipping offset.  -EINVAL for an empty range
 * or a bad limit. */
int db_segments_range(struct db *db, const char *camera_id, int64_t from_us, int64_t to_us, int64_t limit,
                      int64_t offset, db_segment_cb cb, void *ctx);

/* 0 or -ENOENT.  out's strings are valid until the next call on db. */
int db_segment_by_path(struct db *db, const char *path, struct db_segment *out);
int db_segment_by_id(struct db *db, int64_t id, struct db_segment *out);

/* The stored frame index, malloc'ed for the caller to free.  -ENOENT if the
 * segment has none. */
int db_segment_frames(struct db *db, int64_t id, void **blob, size_t *len);

/* The highest segment_num of camera_id recorded by instance_id, 0 if none
 * (a restarted instance numbers on from there). */
int db_segment_max_num(struct db *db, const char *camera_id, const char *instance_id, int64_t *num);

/* segment_num and start_us of camera_id's rows by instance_id whose
 * segment_num is in [lo_num, hi_num], by segment_num; at most limit (1 ..
 * DB_QUERY_LIMIT_MAX) after skipping offset.  Read from an index alone (no
 * row is visited): recovery checks a directory of files against it. */
typedef int (*db_num_cb)(int64_t segment_num, int64_t start_us, void *ctx);
int db_segment_nums(struct db *db, const char *camera_id, const char *instance_id, int64_t lo_num, int64_t hi_num,
                    int64_t limit, int64_t offset, db_num_cb cb, void *ctx);

/* detail may be NULL (stored as '').  -EINVAL for an unknown reason, -ERANGE
 * if end_us < start_us. */
/* Segments not being recorded, oldest first (the disk guard deletes from here). */
int db_segments_oldest(struct db *db, int64_t limit, db_segment_cb cb, void *ctx);
/* Bytes of every segment row. */
int db_segments_total_bytes(struct db *db, int64_t *bytes);

int db_gap_insert(struct db *db, const char *camera_id, const char *instance_id, int64_t start_us, int64_t end_us,
                  const char *reason, const char *detail, int64_t now_us);

/* Gaps of camera_id (NULL: every camera) overlapping [from_us, to_us), as
 * db_segments_range. */
/* Deletes at most limit gap rows that ended before before_us (retention). */
int db_gaps_prune(struct db *db, int64_t before_us, int64_t limit, int64_t *deleted);
int db_gaps_range(struct db *db, const char *camera_id, int64_t from_us, int64_t to_us, int64_t limit,
                  int64_t offset, db_gap_cb cb, void *ctx);

/* ---- the supervisor's state (schema 2) ---- */

/* One instance's hold on a camera's RTSP session (schema 5). */
struct db_lease {
        const char *camera_id, *instance_id;
        const char *state; /* connecting | recording | standby | released */
        int64_t since_us;      /* the state's start */
        int64_t last_frame_us; /* camera time of its last frame recorded, 0: none */
        int64_t heartbeat_us;  /* refreshed every second by a live holder */
        /* when this instance learnt the camera allows one of our sessions, 0:
         * not; db_lease_other gives the camera's earliest, from any instance */
        int64_t limited_us;
};

/* Upserts this instance's row (last_frame_us never goes back). */
int db_lease_put(struct db *db, const struct db_lease *l);

/* The row of another instance than self for the camera: a live holder
 * (connecting or recording, heartbeat at or after fresh_after_us) if there
 * is one, else the latest.  1 found (strings copied into instance/state),
 * 0 none, or a negative errno. */
int db_lease_other(struct db *db, const char *camera_id, const char *self, int64_t fresh_after_us,
                   struct db_lease *out, char *instance, size_t ilen, char *state, size_t slen);

/* A worker slot as the supervisor last saw it; strings as in db_segment. */
struct db_slot {
        const char *name; /* haproxy server name: "a", "b" */
        int64_t port, pid;
        const char *instance_id, *binary, *version;
        const char *state; /* stopped | starting | ready | stopping | failed */
        bool active;       /* takes the traffic */
        int64_t started_us, updated_us;
};

struct db_deploy {
        int64_t id, started_us, finished_us;
        const char *from_slot, *to_slot, *binary, *version;
        const char *result; /* running | ok | failed */
        const char *reason;
};

typedef int (*db_slot_cb)(const struct db_slot *s, void *ctx);
typedef int (*db_deploy_cb)(const struct db_deploy *d, void *ctx);

int db_slot_save(struct db *db, const struct db_slot *s); /* insert or replace by name */
int db_slots_each(struct db *db, db_slot_cb cb, void *ctx);

int db_deploy_begin(struct db *db, const struct db_deploy *d, int64_t *id);
int db_deploy_finish(struct db *db, int64_t id, const char *result, const char *reason, int64_t finished_us);
int db_deploys_recent(struct db *db, int64_t limit, db_deploy_cb cb, void *ctx); /* newest first */

#endif
