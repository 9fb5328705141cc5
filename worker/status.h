/* status: one consistent snapshot of what a worker is doing, and the rules
 * that turn it into starting / healthy / degraded / unhealthy.  main.c fills
 * the snapshot (it owns the recorders); http.c and sd_notify read it.
 * A camera counts as recording when a frame came in the last
 * STATUS_FRESH_US and its current segment holds a keyframe. */
#ifndef MWR_WORKER_STATUS_H
#define MWR_WORKER_STATUS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"

#define STATUS_FRESH_US (3 * INT64_C(1000000))        /* a frame this recent: the camera records */
#define STATUS_START_TIMEOUT_US (30 * INT64_C(1000000)) /* after this, ready even if some are down */
#define STATUS_DB_ERROR_WINDOW_US (60 * INT64_C(1000000)) /* a DB or write error this recent is critical */

struct status_camera {
        char id[CONFIG_ID_MAX];
        char url[CONFIG_URL_MAX]; /* credentials redacted */
        const char *state;        /* recording, connecting, down, paused, stopped */
        bool recording;
        bool standby;             /* another instance of ours holds the camera: this one waits (not an error) */
        char held_by[CONFIG_ID_MAX]; /* ...that instance */
        bool session_limited;     /* configured max_sessions 1, or the camera showed it */
        uint64_t frames, bytes, segments, reconnects, ts_anomalies, write_errors;
        uint64_t dropped_prekey, dropped_disk_full, dropped_storage, non_picture_packets;
        double last_frame_age_s;  /* -1 when no frame yet */
        double gap_s_camera_down, gap_s_disk_full, gap_s_storage, gap_s_handover;
        uint64_t gaps, gap_alerts;
        uint64_t audio_packets, audio_dropped, audio_transcode_errors, param_changes, rtp_lost, input_errors;
        uint64_t unrecorded_streams, rtcp_rejected, rtcp_late;
        const char *time_source;  /* rtcp, receive, unknown (not connected yet) */
        int width, height;
        char video_codec[48], audio_codec[48]; /* "" without sound */
        char unrecorded[256];     /* the streams not recorded, "" when none */
        char error[32];           /* why it does not record (worker/rtsp_error.h kinds), "" while it does */
        char error_detail[192];   /* "DESCRIBE answered 401 Unauthorized" */
        int rtsp_status;          /* the camera's status code in error_detail, 0: none */
        double retry_in_s;        /* waiting this long before the next attempt, 0: not waiting */
        uint64_t auth_failures, session_refusals, handovers;
};

struct status_snapshot {
        const char *status; /* starting, healthy, degraded, unhealthy */
        const char *reason; /* unhealthy: storage_unavailable, disk_full, write_error, database_error; else "" */
        int http_code;      /* 200 or 503 */
        const char *instance_id;
        int64_t now_real_us, uptime_us, ready_since_real_us; /* 0: not ready yet */
        size_t n_cameras, running;
        struct status_camera cameras[CONFIG_MAX_CAMERAS];
        bool db_ok;
        uint64_t db_queue, db_errors;
        uint64_t db_queue_bytes, db_dropped, db_rebuilt, db_rebuild_waiting, db_rebuild_lost;
        bool disk_full;       /* recording paused for the storage: full, or ... */
        bool disk_unavailable; /* ... not there at all */
        char disk_why[160];    /* the storage's state in words, naming the directory */
        uint64_t disk_unavailable_events, disk_adopted_files;
        bool storage_error;   /* a segment write failed within STATUS_DB_ERROR_WINDOW_US */
        uint64_t disk_free_bytes, disk_min_free_bytes, disk_deleted_segments;
        uint64_t rss_bytes;
        int threads;
};

/* Applies the rules to a filled snapshot (status, http_code, running).
 * ready_since_real_us is kept across calls by the caller. */
void status_evaluate(struct status_snapshot *s, int64_t *ready_since_real_us);

/* RSS and thread count of this process from /proc/self/status. */
void status_read_process(uint64_t *rss_bytes, int *threads);

#endif
