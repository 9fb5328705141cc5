/* recorder: one camera, one thread.  Connects with libavformat, holds the
 * first packets until the camera timeline is known, then writes every packet
 * (stream copy) into fragmented-MP4 segments cut at the first keyframe at or
 * after segment_seconds, indexes every video frame, and reconnects with
 * capped backoff; each outage becomes a gap row.  Nothing it does waits on
 * another camera or on the database. */
#ifndef MWR_WORKER_RECORDER_H
#define MWR_WORKER_RECORDER_H

#include <stdatomic.h>
#include <stdint.h>

#include "common/config.h"
#include "worker/disk_guard.h"
#include "worker/index_writer.h"

#define RECORDER_STALL_US (4 * INT64_C(1000000))   /* no packet this long: camera is down (< 5 s) */
#define RECORDER_OPEN_US (10 * INT64_C(1000000))   /* connect + describe + first packets */
#define RECORDER_BACKOFF_MAX_US (5 * INT64_C(1000000))
#define RECORDER_AUTH_BACKOFF_MIN_US (1 * INT64_C(1000000)) /* a refused login: then doubling to auth_retry_max_s */
#define FRAGMENT_MAX_US (INT64_C(250000)) /* bounds footage lost to SIGKILL, and the RAM a fragment holds */

enum recorder_state { RECORDER_CONNECTING, RECORDER_RECORDING, RECORDER_DOWN, RECORDER_STOPPED, RECORDER_STANDBY };

/* A camera that allows fewer sessions than we would open: another instance
 * of ours holds it (its lease row in the DB is live), so this one waits in
 * standby instead of fighting over it, and takes it at once when the holder
 * lets go.  See docs/worker.md "One-session cameras". */
#define RECORDER_LEASE_BEAT_US (1 * INT64_C(1000000))   /* a holder refreshes its lease this often */
#define RECORDER_LEASE_FRESH_US (3 * INT64_C(1000000))  /* a lease this recent: its holder is alive */
#define RECORDER_STANDBY_POLL_US (100 * INT64_C(1000))  /* standby looks at the holder's lease this often */
#define RECORDER_KICK_WINDOW_US (3 * INT64_C(1000000))  /* our session ended this soon after another began: kicked */

/* Counters read by other threads (health, metrics): atomics, no lock. */
struct recorder_stats {
        _Atomic int state;
        _Atomic uint64_t frames, bytes, segments, reconnects, ts_anomalies, dropped_prekey;
        _Atomic int64_t last_frame_mono_us;
        _Atomic int64_t segment_has_key;     /* 1 while a segment is open (each starts with a keyframe);
                                                kept across a rotation so health does not flicker */
        _Atomic uint64_t gap_us_camera_down, gap_us_disk_full, gap_us_storage, gap_us_handover;
        _Atomic uint64_t gaps, gap_alerts; /* gap rows; those over RECORDER_GAP_ALERT_US */
        _Atomic uint64_t write_errors, dropped_disk_full, dropped_storage;
        _Atomic int64_t last_write_error_mono_us; /* 0: none */
        _Atomic uint64_t non_picture_packets; /* SEI/parameter sets alone: stored, not frames */
        _Atomic uint64_t heartbeat; /* bumped whenever the thread runs its loop: the watchdog's evidence */
        _Atomic uint64_t audio_packets;       /* written */
        _Atomic uint64_t audio_dropped;       /* before the first keyframe of a session, or disk full */
        _Atomic uint64_t audio_transcode_errors; /* undecodable audio (G.711 -> FLAC) */
        _Atomic uint64_t param_changes;       /* new parameter sets in band: a new segment */
        _Atomic uint64_t rtp_lost;            /* RTP sequence gaps (libavformat: "missed N packets") */
        _Atomic uint64_t input_errors;        /* packets the demuxer flagged or refused */
        _Atomic uint64_t unrecorded_streams;  /* streams of this session that are not recorded */
        _Atomic uint64_t rtcp_rejected;       /* sessions whose RTCP clock was off ours (receive clock used) */
        _Atomic uint64_t rtcp_late;           /* sessions that decided without a sender report */
        _Atomic int time_source;              /* enum timeline_source of the current session */
        _Atomic int width, height;            /* the picture now */
        _Atomic uint64_t auth_failures;       /* sessions the camera refused the login of (401) */
        _Atomic uint64_t session_refusals;    /* sessions refused for the camera's session limit */
        _Atomic int session_limited;          /* the camera showed it allows one of our sessions at a time */
        _Atomic uint64_t handovers;           /* times this instance took the camera from a holder of ours */
        _Atomic int64_t retry_in_us;          /* waiting this long before the next attempt, 0: not waiting */
};

struct recorder_opts {
        struct config_camera camera; /* url is copied by recorder_start */
        const char *storage_dir;
        const char *instance_id;
        const char *db_path; /* read for the other instances' leases (NULL: no standby) */
        int segment_seconds;
        int64_t first_segment_num;
        struct index_writer *iw;
        struct disk_state *disk; /* shared; `full` pauses writing */
};

struct recorder;

int recorder_start(struct recorder **out, const struct recorder_opts *o);
/* Asks the thread to finish its segment and stop; does not wait. */
void recorder_request_stop(struct recorder *r);
/* Waits for the thread and frees everything. */
void recorder_join(struct recorder *r);

const struct recorder_stats *recorder_stats(const struct recorder *r);
/* The session's streams that are not recorded, e.g. "#2 audio g726 (no
 * decoder)"; "" when all are.  Copied under the recorder's lock. */
void recorder_unrecorded(struct recorder *r, char *buf, size_t len);
/* Why the camera does not record, as the last session ended: kind (see
 * rtsp_error.h, "" while it records), the text ("SETUP answered 453 Not
 * Enough Bandwidth") and the RTSP status (0: no answer). */
void recorder_error(struct recorder *r, char *kind, size_t klen, char *text, size_t tlen, int *status);
/* In standby: the instance holding the camera ("" otherwise). */
void recorder_held_by(struct recorder *r, char *instance, size_t len);
/* The codecs recorded now: "h264", and "aac" / "flac (from pcm_alaw)" or "". */
void recorder_codecs(struct recorder *r, char *video, size_t vlen, char *audio, size_t alen);

const char *recorder_camera_id(const struct recorder *r);
const char *recorder_url(const struct recorder *r);
const char *recorder_state_name(int state);

#define RECORDER_GAP_ALERT_US 1000000 /* a gap this long is logged as an alert */

#endif
