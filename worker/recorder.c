/* recorder: one camera's thread (see recorder.h).  A session is one RTSP
 * connection: open, hold packets until the timeline is known (timeline.h),
 * then write.  Video decides the boundaries: every keyframe ends a fragment,
 * and a segment starts at a keyframe's decode time, after segment_seconds or
 * when the stream's parameter sets change.  Sound is filed by its time, not
 * by when it arrived, so that every fragment holds the audio of its own span
 * (a playlist is whole fragments, from any instance's copy; the cut is
 * FMP4_AUDIO_CUT_US after the keyframe, see common/fmp4_index.h):
 *   - audio ahead of the video waits until video has passed its time;
 *   - audio behind it (a camera sends a packet after its last sample) is
 *     waited for: a keyframe boundary is held, with the video after it,
 *     until the sound reaches it (BOUNDARY_WAIT_US at most).
 * On stop the session drains: frames shown before the last frame written
 * (B-frames) are still read and written, and the sound up to the end of
 * the last frame (it comes after the pictures).  The current segment and its frame
 * index belong to this thread alone; the index writer gets copies. */
#include "worker/recorder.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libavformat/avformat.h>
#include <libavcodec/avcodec.h>

#include "common/fmp4_index.h"
#include "common/log.h"
#include "common/payload_hash.h"
#include "common/time_util.h"
#include "db/db.h"
#include "db/frame_index.h"
#include "worker/audio_transcode.h"
#include "worker/rtsp_error.h"
#include "worker/segment.h"
#include "worker/stream_params.h"
#include "worker/timeline.h"

#define HOLD_MAX_PACKETS 4096            /* packets held while waiting for RTCP... */
#define HOLD_MAX_BYTES (16u << 20)       /* ...and their bytes: then decide without it */
#define DEFAULT_FRAME_US (40 * USEC_PER_MSEC)
#define BACKOFF_MIN_US (250 * USEC_PER_MSEC)
#define GAP_MIN_FRAMES 1.5               /* a hole longer than this many frames is a gap */
#define SLEEP_SLICE_US (250 * USEC_PER_MSEC)
#define TEST_STALL_AFTER_FRAMES 100       /* MWR_TEST_STALL_CAMERA: hang after this many frames */
#define TEARDOWN_US (500 * USEC_PER_MSEC) /* cameras with a session limit need their TEARDOWN */
#define LEASE_READ_BUSY_MS 200          /* the leases are advisory: do not wait long for them */
#define JUMP_MAX_US (2 * USEC_PER_SEC)    /* a timestamp step larger than this: new timeline */
#define AUDIO_Q_MAX 256                   /* audio packets waiting for video to pass them */
#define AUDIO_AHEAD_MAX_US (2 * USEC_PER_SEC) /* audio this far ahead of video goes out anyway */
#define VIDEO_Q_MAX 128                  /* video held at a boundary, waiting for the sound... */
#define BOUNDARY_WAIT_US (1 * USEC_PER_SEC) /* ...at most this much of it */
/* A session's first keyframe waits for this many pictures when the probe
 * found no B-frames: libavformat's decode times for what it read while
 * probing are the pts, so the writer makes its own (segment_writer.c) and
 * must know the reorder depth before the first frame. */
#define REORDER_PROBE_PICTURES 8
#define REORDER_WINDOW 16 /* pictures looked back over for the depth */
#define DRAIN_MAX_US (700 * USEC_PER_MSEC) /* stop: how long to read the B-frames still due */
/* a camera without an early sender report: later sessions wait only this */
#define RTCP_WAIT_KNOWN_LATE_US (1 * USEC_PER_SEC)
#define UNRECORDED_MAX 256

/* One recorded stream of a session.  rs[0] is the video. */
struct rstream {
        int index;                     /* input stream index: the packets' key in the segment writer */
        bool video;
        AVCodecParameters *par;        /* what segments are opened with (owned; video: follows the camera) */
        AVRational tb;                 /* of the packets given to the segment writer */
        struct audio_transcode *xcode; /* audio the MP4 muxer refuses, made FLAC */
        char name[48];                 /* "h264", "aac", "flac (from pcm_alaw)" */
        int64_t nominal_frame_us;      /* video: the stream's declared frame spacing, 0 if none */
};

struct qaudio {
        AVPacket *pkt;
        int64_t t_us;
        int pos;
};

struct qvideo {
        AVPacket *pkt;
        int64_t t_us, d_us;
};

struct recorder {
        struct recorder_opts o;
        char *url, *storage_dir; /* own copies: a reload frees the config */
        pthread_t thread;
        atomic_bool stop;
        pthread_mutex_t sleep_lock;
        pthread_cond_t sleep_cond;
        struct recorder_stats stats;
        int64_t next_segment_num;
        struct segment_ctx sctx;
        pthread_mutex_t info_lock;       /* guards the two strings below */
        char unrecorded[UNRECORDED_MAX]; /* what this session does not record */
        char logged_unrecorded[UNRECORDED_MAX];
        char video_name[48], audio_name[48];
        char err_kind[32], err_text[192]; /* why the camera does not record (rtsp_error.h); "" while it does */
        int err_status;                   /* the camera's RTSP status code in err_text, 0: none */
        unsigned err_repeats;             /* sessions in a row that ended the same way (logged once) */
        struct rtsp_log avlog;            /* the session's share of libavformat's log (rtsp_error.h) */
        char held_by[CONFIG_ID_MAX];      /* under info_lock: in standby, the instance holding the camera */
        /* leases, this thread's */
        struct db *lease_db;              /* read connection, opened when first needed */
        bool lease_db_failed;
        bool limited;                     /* the camera refused or ended a session for another of ours */
        int64_t limited_us;               /* ...learnt then (by us, or remembered in the leases) */
        char handover_from[CONFIG_ID_MAX]; /* the instance the camera was last taken from */
        int64_t lease_since_us, lease_beat_mono_us, session_end_real_us;

        /* session state, this thread only */
        AVFormatContext *ic;
        struct rstream rs[SEGMENT_MAX_STREAMS];
        int n_rs;
        int nal_length_size;
        int hevc;
        int64_t io_deadline_mono_us;
        struct timeline tl;
        AVPacket *held[HOLD_MAX_PACKETS];
        uint8_t held_epoch[HOLD_MAX_PACKETS];
        int n_held;
        size_t held_bytes;
        struct segment *seg;
        struct qaudio aq[AUDIO_Q_MAX]; /* audio ahead of the video */
        int aq_n;
        struct qvideo vq[VIDEO_Q_MAX]; /* a keyframe boundary and the video after it, waiting for sound */
        int vq_n;
        bool reorder_probe;           /* the first keyframe is held to learn the reorder depth */
        int vq_pictures;              /* pictures among vq */
        int reorder_depth;            /* most earlier pictures shown after a later one, this session */
        int64_t recent_pts[REORDER_WINDOW];
        int n_recent;
        AVPacket *first_video;        /* the session's first video packet, until the next (first_video_place) */
        int first_video_epoch;
        bool video_placed;            /* ...it has been placed */
        int64_t audio_max_us;         /* latest audio time seen this session */
        int64_t last_video_us, frame_us, video_seen_us; /* decode time, spacing, latest decode time */
        int64_t max_video_pts_us;     /* latest presentation time written */
        int64_t last_end_us;          /* end of the last frame recorded, across sessions */
        uint64_t rtp_lost_seen;       /* rtp_lost at the last frame: loss since then explains a hole */
        bool draining;                /* stop asked: reading the frames still due */
        bool drain_video_done;        /* ...and they have all come: now the sound up to them */
        bool closing;                 /* in avformat_close_input: TEARDOWN on its way */
        int64_t drain_pts_us;         /* ...those shown before this */
        int64_t rtcp_wait_us;         /* how long the next session waits for a sender report */
        const char *gap_reason;       /* why the next hole happens: camera_down unless we dropped frames */
        bool test_stall;              /* MWR_TEST_STALL_CAMERA names this camera (watchdog tests only) */
};

#define DRAIN_DONE 1 /* packet_in: a frame shown after the last one written came: the drain is over */

/* The sound a drain keeps: what belongs with the last frame's fragment. */
static int64_t drain_audio_end(const struct recorder *r)
{
        return r->drain_pts_us + r->frame_us + FMP4_AUDIO_CUT_US;
}

/* The drain is over once the pictures due have come and the sound has
 * reached their end (a camera sends sound after its samples, so it lags
 * the pictures by up to a packet). */
static bool drain_done(const struct recorder *r)
{
        return r->drain_video_done && (r->n_rs < 2 || r->audio_max_us >= drain_audio_end(r));
}

/* libavformat's blocking calls end when this says so.  On stop a read is
 * not cut at once: the B-frames still due must come in (a cut read also
 * makes the parser give up the frame it holds); it gets DRAIN_MAX_US, or
 * nothing when no segment is open.  TEARDOWN gets its TEARDOWN_US. */
static int interrupt_cb(void *opaque)
{
        struct recorder *r = opaque;
        /* libavformat calls this for every read of every RTP packet: a
         * coarse clock (a timeout may fire a tick late) costs no TSC read */
        int64_t now = now_mono_coarse_us();

        atomic_fetch_add(&r->stats.heartbeat, 1); /* called often while libavformat waits */
        if (!r->closing && atomic_load(&r->stop)) {
                if (!r->seg)
                        return 1;
                if (r->io_deadline_mono_us > now + DRAIN_MAX_US)
                        r->io_deadline_mono_us = now + DRAIN_MAX_US;
        }
        return now > r->io_deadline_mono_us;
}

/* Sleeps on the monotonic clock (a stepped wall clock must not stretch the
 * backoff); recorder_request_stop wakes it. */
static void sleep_interruptible(struct recorder *r, int64_t us)
{
        int64_t until = now_mono_us() + us;

        pthread_mutex_lock(&r->sleep_lock);
        while (!atomic_load(&r->stop) && now_mono_us() < until) {
                /* wake every SLEEP_SLICE_US so the heartbeat goes on while backing off */
                int64_t t = now_mono_us() + SLEEP_SLICE_US;
                struct timespec ts = { .tv_sec = (time_t)((t < until ? t : until) / USEC_PER_SEC),
                                       .tv_nsec = (long)((t < until ? t : until) % USEC_PER_SEC) * 1000 };

                atomic_fetch_add(&r->stats.heartbeat, 1);
                pthread_cond_timedwait(&r->sleep_cond, &r->sleep_lock, &ts);
        }
        pthread_mutex_unlock(&r->sleep_lock);
}

/* ---- segments ------------------------------------------------------------------- */

static void segment_end(struct recorder *r, struct segment **s, const char *why)
{
        if (*s)
                segment_close(*s, &r->sctx, why);
        *s = NULL;
}

static void write_failed(struct recorder *r, int e)
{
        atomic_fetch_add(&r->stats.write_errors, 1);
        atomic_store(&r->stats.last_write_error_mono_us, now_mono_us());
        log_err("camera %s: write failed: %s", r->o.camera.id, strerror(-e));
        segment_end(r, &r->seg, "write error");
        atomic_store(&r->stats.segment_has_key, 0);
        if (e == -ENOSPC) {
                atomic_store(&r->o.disk->full, true);
                r->gap_reason = "disk_full";
        } else if (e == -ENOENT || e == -ENOTDIR || e == -EIO || e == -ENODEV || e == -ESTALE || e == -ENOTCONN ||
                   e == -EROFS) {
                r->gap_reason = "storage_unavailable"; /* the disk guard looks within 200 ms - 1 s */
        }
}

static int segment_start(struct recorder *r, int64_t start_us, const uint8_t *params, size_t plen)
{
        struct segment_stream ss[SEGMENT_MAX_STREAMS];
        struct segment_desc d = { .time_source = timeline_source_name(r->tl.source),
                                  .video_codec = avcodec_get_name(r->rs[0].par->codec_id),
                                  .width = r->rs[0].par->width,
                                  .height = r->rs[0].par->height,
                                  .audio_codec = r->n_rs > 1 ? avcodec_get_name(r->rs[1].par->codec_id) : "" };
        int e;

        for (int i = 0; i < r->n_rs; i++)
                ss[i] = (struct segment_stream){ .par = r->rs[i].par, .time_base = r->rs[i].tb,
                                                 .in_index = r->rs[i].index,
                                                 .frame_us = !r->rs[i].video ? 0
                                                             : r->rs[i].nominal_frame_us ? r->rs[i].nominal_frame_us
                                                                                         : r->frame_us,
                                                 .reorder = r->rs[i].video ? r->reorder_depth : 0 };
        if ((e = segment_open(&r->seg, &r->sctx, start_us, ss, r->n_rs, &d, params, plen)) < 0)
                return e;
        atomic_fetch_add(&r->stats.segments, 1);
        return 0;
}

/* ---- audio: to the segment its time belongs to ------------------------------------ */

static void audio_write(struct recorder *r, int pos, AVPacket *pkt, int64_t t_us)
{
        struct segment *s = r->seg && t_us >= r->seg->info.start_us ? r->seg : NULL;
        int e;

        if (!s || atomic_load(&r->o.disk->full)) { /* before the first keyframe: nothing to belong to */
                atomic_fetch_add(&r->stats.audio_dropped, 1);
                return;
        }
        if ((e = segment_writer_write(s->w, pkt, r->rs[pos].index, t_us - s->info.start_us)) < 0) {
                write_failed(r, e);
                return;
        }
        atomic_fetch_add(&r->stats.audio_packets, 1);
        atomic_fetch_add(&r->stats.bytes, (uint64_t)pkt->size);
}

/* Writes the queued audio that starts before `until_us` (video has passed it:
 * no cut can come before it any more), in order. */
static void audio_release(struct recorder *r, int64_t until_us)
{
        int n = 0;

        while (n < r->aq_n && r->aq[n].t_us < until_us) {
                audio_write(r, r->aq[n].pos, r->aq[n].pkt, r->aq[n].t_us);
                av_packet_free(&r->aq[n].pkt);
                n++;
        }
        if (n > 0) {
                memmove(r->aq, r->aq + n, sizeof(r->aq[0]) * (size_t)(r->aq_n - n));
                r->aq_n -= n;
        }
}

static void audio_queue_clear(struct recorder *r)
{
        for (int i = 0; i < r->aq_n; i++)
                av_packet_free(&r->aq[i].pkt);
        r->aq_n = 0;
}

/* An audio packet at camera time t_us: written if video is past it, else
 * queued until it is.  The packet is not consumed. */
static int boundary_execute(struct recorder *r);

static void audio_take(struct recorder *r, int pos, const AVPacket *pkt, int64_t t_us)
{
        AVPacket *c;

        if (t_us > r->audio_max_us)
                r->audio_max_us = t_us;
        if (r->draining && t_us >= drain_audio_end(r))
                return; /* after the last frame kept */
        if (r->vq_n > 0) { /* a keyframe boundary waits for the sound */
                if (t_us < r->vq[0].t_us + FMP4_AUDIO_CUT_US) {
                        audio_write(r, pos, (AVPacket *)pkt, t_us); /* the fragment before it */
                        return;
                }
                if (!r->reorder_probe)
                        boundary_execute(r); /* the sound has reached it */
        }
        if (r->video_seen_us != INT64_MIN && t_us < r->video_seen_us + FMP4_AUDIO_CUT_US && r->aq_n == 0) {
                audio_write(r, pos, (AVPacket *)pkt, t_us);
                return;
        }
        if (r->aq_n == AUDIO_Q_MAX ||
            (r->aq_n > 0 && r->video_seen_us != INT64_MIN && t_us - r->video_seen_us > AUDIO_AHEAD_MAX_US))
                audio_release(r, r->aq[0].t_us + 1); /* video is not coming: do not wait for it */
        if (!(c = av_packet_clone(pkt))) {
                atomic_fetch_add(&r->stats.audio_dropped, 1);
                return;
        }
        r->aq[r->aq_n++] = (struct qaudio){ .pkt = c, .t_us = t_us, .pos = pos };
}

static int on_transcoded(AVPacket *pkt, int64_t t_us, void *ctx)
{
        struct recorder *r = ctx;

        audio_take(r, 1, pkt, t_us);
        return 0;
}

static void audio_packet(struct recorder *r, int pos, const AVPacket *pkt, int64_t t_us)
{
        struct rstream *rs = &r->rs[pos];

        if (!rs->xcode) {
                audio_take(r, pos, pkt, t_us);
                return;
        }
        audio_transcode_feed(rs->xcode, pkt, t_us, on_transcoded, r);
        atomic_store(&r->stats.audio_transcode_errors, audio_transcode_errors(rs->xcode));
}

/* ---- video ------------------------------------------------------------------------ */

/* A gap row from start_us to end_us, counted and logged: an alert past
 * RECORDER_GAP_ALERT_US unless `covered_by` (an instance of ours) recorded
 * those frames (the camera ended our session for its). */
static void gap_file(struct recorder *r, int64_t start_us, int64_t end_us, const char *reason, const char *detail,
                     const char *covered_by)
{
        int64_t hole = end_us - start_us;

        index_writer_gap(r->o.iw, r->o.camera.id, r->o.instance_id, start_us, end_us, reason, detail);
        atomic_fetch_add(!strcmp(reason, "disk_full")             ? &r->stats.gap_us_disk_full
                         : !strcmp(reason, "storage_unavailable") ? &r->stats.gap_us_storage
                         : !strcmp(reason, "handover")            ? &r->stats.gap_us_handover
                                                                  : &r->stats.gap_us_camera_down,
                         (uint64_t)(hole > 0 ? hole : 0));
        atomic_fetch_add(&r->stats.gaps, 1);
        if (covered_by) {
                log_warn("camera %s: gap of %.3f s in our recording (%s): instance %s records it", r->o.camera.id,
                         (double)hole / 1e6, reason, covered_by);
        } else if (hole > RECORDER_GAP_ALERT_US) {
                atomic_fetch_add(&r->stats.gap_alerts, 1);
                log_at(SD_ALERT, "camera %s: ALERT footage gap of %.3f s (%s)", r->o.camera.id, (double)hole / 1e6,
                       reason);
        } else {
                log_warn("camera %s: gap of %.3f s (%s)", r->o.camera.id, (double)hole / 1e6, reason);
        }
}

/* Called for every video frame: a hole of more than GAP_MIN_FRAMES frame
 * durations since the end of the previous frame (in this connection or the
 * one before) is a gap row.  The camera sent nothing, we could not reach
 * it, we dropped frames (disk_full), or RTP packets were lost on the way. */
static void gap_check(struct recorder *r, int64_t t_us)
{
        int64_t hole = t_us - r->last_end_us;
        uint64_t lost = atomic_load(&r->stats.rtp_lost);
        const char *reason = r->gap_reason;
        char detail[64];

        if (r->last_end_us == 0 || hole <= (int64_t)((GAP_MIN_FRAMES - 1) * (double)r->frame_us)) {
                r->rtp_lost_seen = lost;
                return;
        }
        if (lost > r->rtp_lost_seen && !strcmp(reason, "camera_down") && hole < RECORDER_STALL_US) {
                reason = "packet_loss";
                snprintf(detail, sizeof(detail), "%" PRIu64 " RTP packets lost", lost - r->rtp_lost_seen);
        } else if (!strcmp(reason, "handover")) {
                snprintf(detail, sizeof(detail), "taken from instance %s", r->handover_from);
        } else {
                snprintf(detail, sizeof(detail), "after %" PRIu64 " reconnects", atomic_load(&r->stats.reconnects));
        }
        r->rtp_lost_seen = lost;
        gap_file(r, r->last_end_us, t_us, reason, detail, NULL);
        r->gap_reason = "camera_down";
}

/* Tracks decode-order time of video: the frame duration, and steps larger
 * than JUMP_MAX_US (a camera clock step, an encoder restart): those end the
 * connection so the next one learns a fresh timeline.  -ESTALE then. */
static int video_clock(struct recorder *r, int64_t d_us)
{
        int64_t delta = r->last_video_us == INT64_MIN ? 0 : d_us - r->last_video_us;

        if (r->last_video_us != INT64_MIN && (delta > JUMP_MAX_US || delta < -JUMP_MAX_US)) {
                atomic_fetch_add(&r->stats.ts_anomalies, 1);
                log_warn("camera %s: timestamps stepped by %.3f s: reconnecting for a new timeline", r->o.camera.id,
                         (double)delta / 1e6);
                r->gap_reason = "timestamp_jump";
                return -ESTALE;
        }
        if (delta > 0 && delta < USEC_PER_SEC)
                r->frame_us = delta;
        else if (r->last_video_us != INT64_MIN)
                atomic_fetch_add(&r->stats.ts_anomalies, 1);
        r->last_video_us = d_us;
        return 0;
}

/* The probe can end without a picture size (a busy machine, a slow first
 * keyframe): the MP4 muxer needs one.  Read it from this keyframe, behind
 * the parameters the stream has (when the keyframe carries none). */
static void video_size_learn(struct recorder *r, const AVPacket *pkt)
{
        AVCodecParameters *par = r->rs[0].par;
        size_t n = (size_t)par->extradata_size + (size_t)pkt->size;
        uint8_t *buf = malloc(n);
        int w, h;

        if (!buf)
                return;
        if (par->extradata_size > 0)
                memcpy(buf, par->extradata, (size_t)par->extradata_size);
        memcpy(buf + par->extradata_size, pkt->data, (size_t)pkt->size);
        if (stream_params_size(par->codec_id, buf, n, &w, &h) == 0) {
                par->width = w;
                par->height = h;
                atomic_store(&r->stats.width, w);
                atomic_store(&r->stats.height, h);
        }
        free(buf);
}

/* A keyframe's parameter sets (params, plen) describe the frames from here
 * on: when they are not what the video's parameters say, take them (and the
 * picture size they give) for the segments to come.  Sets the parser cannot
 * read a size from are not taken (a damaged keyframe): false then. */
static bool video_params_follow(struct recorder *r, const AVPacket *pkt, const uint8_t *params, size_t plen)
{
        AVCodecParameters *par = r->rs[0].par;
        int w = 0, h = 0;
        uint8_t *x;

        if (par->width <= 0 || par->height <= 0)
                video_size_learn(r, pkt);
        if (plen == 0 || ((size_t)par->extradata_size == plen && !memcmp(par->extradata, params, plen)))
                return plen > 0;
        if (stream_params_size(par->codec_id, pkt->data, (size_t)pkt->size, &w, &h) < 0 ||
            !(x = av_mallocz(plen + AV_INPUT_BUFFER_PADDING_SIZE)))
                return false;
        memcpy(x, params, plen);
        av_freep(&par->extradata);
        par->extradata = x;
        par->extradata_size = (int)plen;
        if (w != par->width || h != par->height) {
                if (par->width > 0)
                        log_warn("camera %s: the stream changed from %dx%d to %dx%d: new segment", r->o.camera.id,
                                 par->width, par->height, w, h);
                par->width = w;
                par->height = h;
        }
        r->nal_length_size = payload_nal_length_size(par->extradata, (size_t)par->extradata_size, r->hevc);
        atomic_store(&r->stats.width, par->width);
        atomic_store(&r->stats.height, par->height);
        return true;
}

/* A keyframe at decode time d_us: does it start a segment?  -errno on a
 * failed open (the frame is then not written). */
static int video_cut(struct recorder *r, const AVPacket *pkt, int64_t d_us)
{
        uint8_t params[STREAM_PARAMS_MAX];
        int plen = stream_params_extract(pkt->data, (size_t)pkt->size, r->hevc, params, sizeof(params));
        bool changed, long_enough;

        if (plen < 0)
                plen = 0;
        /* only sets the parser reads a picture size from count (a damaged keyframe's do not) */
        if (plen > 0 && r->seg && ((size_t)plen != r->seg->params_len || memcmp(params, r->seg->params, (size_t)plen))) {
                int w, h;

                if (stream_params_size(r->rs[0].par->codec_id, pkt->data, (size_t)pkt->size, &w, &h) < 0)
                        plen = 0;
        }
        changed = r->seg && plen > 0 && ((size_t)plen != r->seg->params_len || memcmp(params, r->seg->params, (size_t)plen));
        long_enough = r->seg && d_us - r->seg->info.start_us >=
                                        (int64_t)r->o.segment_seconds * USEC_PER_SEC - r->frame_us / 2;
        if (r->seg && !changed && !long_enough)
                return 0;
        if (changed)
                atomic_fetch_add(&r->stats.param_changes, 1);
        segment_end(r, &r->seg, changed ? "stream changed" : "length reached");
        if (!video_params_follow(r, pkt, params, (size_t)plen)) /* the segment keeps the parameters it had */
                return segment_start(r, d_us, r->rs[0].par->extradata, (size_t)r->rs[0].par->extradata_size);
        return segment_start(r, d_us, params, (size_t)plen);
}

/* Writes one video frame at presentation time t_us, decode time d_us;
 * a keyframe ends the fragment, and may start a segment. */
static int video_write(struct recorder *r, AVPacket *pkt, int64_t t_us, int64_t d_us)
{
        bool key = pkt->flags & AV_PKT_FLAG_KEY;
        struct segment *s;
        int e;

        /* it can no longer move to a later fragment; a keyframe cuts the sound
         * where it is shown (B-frames: after its decode time, as the frames
         * before it are); before the first keyframe there is nothing to cut,
         * and the first 2 ms after it are the first fragment's */
        if (r->seg)
                audio_release(r, (key ? t_us : d_us) + FMP4_AUDIO_CUT_US);
        r->video_seen_us = d_us;
        if (atomic_load(&r->o.disk->full)) {
                bool gone = atomic_load(&r->o.disk->unavailable);

                segment_end(r, &r->seg, gone ? "storage unavailable" : "disk full");
                atomic_store(&r->stats.segment_has_key, 0);
                r->gap_reason = gone ? "storage_unavailable" : "disk_full";
                atomic_fetch_add(gone ? &r->stats.dropped_storage : &r->stats.dropped_disk_full, 1);
                return 0;
        }
        if (!r->seg && !key) {
                atomic_fetch_add(&r->stats.dropped_prekey, 1);
                return 0;
        }
        if (key && (e = video_cut(r, pkt, d_us)) < 0)
                goto fail;
        s = r->seg;
        if (t_us < s->info.start_us) { /* shown before the keyframe that starts the segment */
                atomic_fetch_add(&r->stats.ts_anomalies, 1);
                return 0;
        }
        /* a fragment cut between keyframes goes before a frame shown after
         * all before it: with B-frames, what is shown before that frame is
         * then in the fragment before the cut (a live playlist ending there
         * lacks no frame) */
        if (s->frames > s->flushed_frames &&
            (key || (d_us - s->frag_start_us >= FRAGMENT_MAX_US && t_us > r->max_video_pts_us))) {
                if ((e = segment_flush(s, r->o.iw)) < 0)
                        goto fail;
                s->frag_start_us = d_us;
        }
        if ((e = segment_writer_write(s->w, pkt, r->rs[0].index, t_us - s->info.start_us)) < 0)
                goto fail;
        {
                struct fi_frame f = { .offset_us = (uint64_t)(t_us - s->info.start_us), .key = key };

                gap_check(r, d_us);
                f.hash = fi_hash_truncate(payload_hash(pkt->data, (size_t)pkt->size, r->nal_length_size, &f.size));
                if (segment_add_frame(s, &f, t_us + r->frame_us) < 0)
                        atomic_fetch_add(&r->stats.ts_anomalies, 1);
        }
        r->last_end_us = d_us + r->frame_us;
        if (t_us > r->max_video_pts_us)
                r->max_video_pts_us = t_us;
        atomic_fetch_add(&r->stats.frames, 1);
        atomic_fetch_add(&r->stats.bytes, (uint64_t)pkt->size);
        atomic_store(&r->stats.last_frame_mono_us, now_mono_us());
        if (key)
                atomic_store(&r->stats.segment_has_key, 1);
        return 0;
fail:
        write_failed(r, e);
        return 0;
}

/* The held boundary and the video after it go out (the sound has reached
 * it, or waited long enough). */
static int boundary_execute(struct recorder *r)
{
        int n = r->vq_n, e = 0;

        r->vq_n = r->vq_pictures = 0;
        r->reorder_probe = false;
        for (int i = 0; i < n; i++) {
                if (e == 0)
                        e = video_write(r, r->vq[i].pkt, r->vq[i].t_us, r->vq[i].d_us);
                av_packet_free(&r->vq[i].pkt);
        }
        return e;
}

static int video_hold(struct recorder *r, const AVPacket *pkt, int64_t t_us, int64_t d_us)
{
        AVPacket *c = av_packet_clone(pkt);

        if (!c)
                return -ENOMEM;
        r->vq[r->vq_n++] = (struct qvideo){ .pkt = c, .t_us = t_us, .d_us = d_us };
        return 0;
}

/* The reorder depth: how many pictures decoded before this one are shown
 * after it (B-frames: 1 for I P B B, 2 with a B-pyramid). */
static void reorder_note(struct recorder *r, int64_t t_us)
{
        int later = 0, n = r->n_recent < REORDER_WINDOW ? r->n_recent : REORDER_WINDOW;

        for (int i = 0; i < n; i++)
                later += r->recent_pts[i] > t_us;
        if (later > r->reorder_depth)
                r->reorder_depth = later;
        r->recent_pts[r->n_recent++ % REORDER_WINDOW] = t_us;
}

/* One video packet: written, or held behind a keyframe boundary whose
 * sound has not come yet (the audio of a span arrives after its video),
 * or, a session's first keyframe, until the reorder depth is known. */
static int video_packet(struct recorder *r, AVPacket *pkt, int64_t t_us, int64_t d_us)
{
        bool key = pkt->flags & AV_PKT_FLAG_KEY;
        int e;

        /* a parser can split SEI or parameter sets into a packet of their own:
         * it is copied into the file like any packet, but it is not a frame */
        if (!payload_has_picture(pkt->data, (size_t)pkt->size, r->nal_length_size, r->hevc)) {
                atomic_fetch_add(&r->stats.non_picture_packets, 1);
                if (r->drain_video_done)
                        return 0; /* with a frame after the last one kept */
                if (r->vq_n > 0) {
                        video_hold(r, pkt, t_us, d_us); /* with the frame it comes with */
                        return 0;
                }
                if (r->seg && !atomic_load(&r->o.disk->full) && t_us >= r->seg->info.start_us &&
                    (e = segment_writer_write(r->seg->w, pkt, r->rs[0].index, t_us - r->seg->info.start_us)) < 0)
                        write_failed(r, e);
                return 0;
        }
        if (r->draining && t_us > r->drain_pts_us)
                return DRAIN_DONE; /* shown after the last frame written: the stop's boundary */
        if ((e = video_clock(r, d_us)) < 0)
                return e;
        reorder_note(r, t_us);
        if (r->vq_n > 0) {
                if ((e = video_hold(r, pkt, t_us, d_us)) < 0)
                        return e;
                r->vq_pictures++;
                if (r->vq_n == VIDEO_Q_MAX || d_us - r->vq[0].d_us >= BOUNDARY_WAIT_US)
                        return boundary_execute(r); /* the sound is not coming: do not wait for it */
                if (r->reorder_probe && r->vq_pictures >= REORDER_PROBE_PICTURES)
                        return boundary_execute(r); /* the depth is known: the first segment can start */
                return 0;
        }
        if (key && !r->seg && r->rs[0].par->video_delay == 0 && r->reorder_depth == 0 &&
            !atomic_load(&r->o.disk->full)) {
                r->reorder_probe = true;
                r->vq_pictures = 1;
                return video_hold(r, pkt, t_us, d_us);
        }
        if (key && r->seg && r->n_rs > 1 && r->audio_max_us < t_us + FMP4_AUDIO_CUT_US &&
            !atomic_load(&r->o.disk->full)) {
                audio_release(r, t_us + FMP4_AUDIO_CUT_US); /* what came before it belongs before it */
                return video_hold(r, pkt, t_us, d_us);
        }
        return video_write(r, pkt, t_us, d_us);
}

/* ---- packets in ------------------------------------------------------------------------ */

static int stream_pos(const struct recorder *r, int index)
{
        for (int i = 0; i < r->n_rs; i++)
                if (r->rs[i].index == index)
                        return i;
        return -1;
}

static int64_t to_us(int64_t ts, AVRational tb)
{
        return ts == AV_NOPTS_VALUE ? INT64_MIN : av_rescale_q(ts, tb, AV_TIME_BASE_Q);
}

/* The spacing of the video's frames so far (media time), or its nominal
 * rate's; 0 when neither is known. */
static int64_t video_spacing_us(const struct recorder *r)
{
        AVRational fr = r->ic->streams[r->rs[0].index]->r_frame_rate;

        if (r->tl.st[0].frame_us > 0)
                return r->tl.st[0].frame_us;
        if (r->frame_us > 0)
                return r->frame_us;
        return fr.num > 0 && fr.den > 0 ? av_rescale(USEC_PER_SEC, fr.den, fr.num) : 0;
}

/* The session's first video packet, now that the next one (decode time
 * next_d_us) is here.  libavformat's parser gives the first access unit no
 * time (it learns where a unit ends from the next one), or at times a guess
 * that lands after the frames that follow it: that keyframe would be lost,
 * or start a segment the next frames are filed before.  It goes a frame
 * before the next one then (shown after its decode by the stream's reorder
 * delay), else at its own time. */
static int first_video_place(struct recorder *r, int64_t next_d_us)
{
        AVPacket *pkt = r->first_video;
        AVRational tb = r->ic->streams[pkt->stream_index]->time_base;
        int64_t pts = to_us(pkt->pts, tb), dts = to_us(pkt->dts, tb), f = video_spacing_us(r), t_us, d_us;
        int e;

        r->first_video = NULL;
        r->video_placed = true;
        if (pts == INT64_MIN)
                pts = dts;
        if (dts == INT64_MIN)
                dts = pts;
        t_us = pts == INT64_MIN ? INT64_MIN : timeline_time_us(&r->tl, 0, r->first_video_epoch, pts);
        d_us = dts == INT64_MIN ? INT64_MIN : timeline_time_us(&r->tl, 0, r->first_video_epoch, dts);
        if (f > 0 && (d_us == INT64_MIN || d_us > next_d_us - f / 2)) {
                int64_t shown = t_us != INT64_MIN && t_us >= d_us && t_us - d_us < USEC_PER_SEC
                                        ? t_us - d_us
                                        : (int64_t)r->rs[0].par->video_delay * f;

                if (d_us != INT64_MIN) {
                        atomic_fetch_add(&r->stats.ts_anomalies, 1);
                        log_warn("camera %s: its first frame was stamped %.3f s after the next one: placed a frame "
                                 "before it",
                                 r->o.camera.id, (double)(d_us - next_d_us) / 1e6);
                }
                d_us = next_d_us - f;
                t_us = d_us + shown;
        }
        if (d_us == INT64_MIN) {
                atomic_fetch_add(&r->stats.ts_anomalies, 1); /* no time, and no spacing to give it one */
                e = 0;
        } else {
                e = video_packet(r, pkt, t_us, d_us);
        }
        av_packet_free(&pkt);
        return e;
}

/* A packet whose timeline is known, on its stream's clock `epoch`. */
static int packet_at(struct recorder *r, AVPacket *pkt, int epoch)
{
        int pos = stream_pos(r, pkt->stream_index);
        AVRational tb = r->ic->streams[pkt->stream_index]->time_base;
        int64_t pts = to_us(pkt->pts, tb), dts = to_us(pkt->dts, tb);

        if (pos == 0 && !r->video_placed && !r->first_video) {
                /* placed once the next one is here */
                if (!(r->first_video = av_packet_clone(pkt)))
                        return -ENOMEM;
                r->first_video_epoch = epoch;
                return 0;
        }
        if (pts == INT64_MIN)
                pts = dts;
        if (pts == INT64_MIN) {
                atomic_fetch_add(&r->stats.ts_anomalies, 1); /* no time at all: cannot be placed */
                return 0;
        }
        if (dts == INT64_MIN)
                dts = pts;
        if (pos == 0) {
                int64_t t_us = timeline_time_us(&r->tl, 0, epoch, pts), d_us = timeline_time_us(&r->tl, 0, epoch, dts);
                int e;

                if (r->first_video && (e = first_video_place(r, d_us)) != 0)
                        return e;
                return video_packet(r, pkt, t_us, d_us);
        }
        audio_packet(r, pos, pkt, timeline_time_us(&r->tl, pos, epoch, pts));
        return 0;
}

static void held_release(struct recorder *r)
{
        for (int i = 0; i < r->n_held; i++)
                av_packet_free(&r->held[i]);
        r->n_held = 0;
        r->held_bytes = 0;
}

static void timeline_decided(struct recorder *r)
{
        const struct timeline *t = &r->tl;

        atomic_store(&r->stats.time_source, t->source);
        if (t->rtcp_rejected) {
                atomic_fetch_add(&r->stats.rtcp_rejected, 1);
                log_warn("camera %s: its RTCP clock is %.3f s off ours (more than %.0f s): footage is filed by our "
                         "clock",
                         r->o.camera.id, (double)t->skew_us / 1e6, (double)TIMELINE_RTCP_MAX_SKEW_US / 1e6);
        } else {
                log_info("camera %s: timeline from %s%s (video step %+.3f s%s, audio step %+.3f s%s)", r->o.camera.id,
                         timeline_source_name(t->source),
                         t->source == TIMELINE_RECEIVE && t->n_obs == 0 ? ", no RTCP sender report yet" : "",
                         (double)t->st[0].jump_us / 1e6, t->st[0].synced ? "" : " unsynced",
                         t->n_streams > 1 ? (double)t->st[1].jump_us / 1e6 : 0.0,
                         t->n_streams > 1 && !t->st[1].synced ? " unsynced" : "");
        }
        if (t->n_obs == 0 || t->rtcp_late)
                atomic_fetch_add(&r->stats.rtcp_late, 1);
        /* a camera that sent no report in the wait will not in the next session either */
        r->rtcp_wait_us = t->n_obs == 0 ? RTCP_WAIT_KNOWN_LATE_US : TIMELINE_RTCP_WAIT_US;
}

/* The timeline is decided: what was held goes out, in order. */
static int held_flush(struct recorder *r)
{
        int e = 0;

        timeline_decided(r);
        for (int i = 0; i < r->n_held && e == 0; i++)
                e = packet_at(r, r->held[i], r->held_epoch[i]);
        held_release(r);
        return e;
}

/* The session ends (stop, connection lost) while still waiting for a sender
 * report: what was held is footage all the same, filed by our clock. */
static void held_settle(struct recorder *r)
{
        if (r->tl.source != TIMELINE_UNKNOWN || r->n_held == 0 ||
            !timeline_decide(&r->tl, now_mono_us(), true))
                return;
        if (held_flush(r) < 0)
                log_warn("camera %s: footage held for the camera's first sender report not all written",
                         r->o.camera.id);
}

/* Until the timeline is known packets are held; then all go out in order. */
static int packet_in(struct recorder *r, AVPacket *pkt)
{
        int pos = stream_pos(r, pkt->stream_index), epoch, e = 0;
        AVRational tb = r->ic->streams[pkt->stream_index]->time_base;
        size_t sz;
        const AVProducerReferenceTime *prft =
                (const void *)av_packet_get_side_data(pkt, AV_PKT_DATA_PRFT, &sz);
        struct timeline_packet tp = { .stream = pos,
                                      .pts_us = to_us(pkt->pts, tb),
                                      .dts_us = to_us(pkt->dts, tb),
                                      .dur_us = pkt->duration > 0 ? av_rescale_q(pkt->duration, tb, AV_TIME_BASE_Q) : 0,
                                      .prft_us = prft && sz >= sizeof(*prft) ? prft->wallclock : INT64_MIN,
                                      .recv_real_us = now_real_us(),
                                      .recv_mono_us = now_mono_us() };

        if (pkt->flags & AV_PKT_FLAG_CORRUPT)
                atomic_fetch_add(&r->stats.input_errors, 1);
        epoch = timeline_observe(&r->tl, &tp);
        if (r->tl.source == TIMELINE_UNKNOWN) {
                bool full = r->n_held == HOLD_MAX_PACKETS || r->held_bytes >= HOLD_MAX_BYTES;

                if (!timeline_decide(&r->tl, tp.recv_mono_us, full)) {
                        if (!(r->held[r->n_held] = av_packet_clone(pkt)))
                                return -ENOMEM;
                        r->held_epoch[r->n_held++] = (uint8_t)epoch;
                        r->held_bytes += (size_t)pkt->size;
                        return 0;
                }
                if ((e = held_flush(r)) != 0)
                        return e;
        }
        return packet_at(r, pkt, epoch);
}

/* ---- session ----------------------------------------------------------------------- */

static void unrecorded_add(char *buf, size_t len, unsigned i, const AVCodecParameters *par, const char *why)
{
        size_t n = strlen(buf);

        snprintf(buf + n, len - n, "%s#%u %s %s (%s)", n ? ", " : "", i,
                 av_get_media_type_string(par->codec_type) ? av_get_media_type_string(par->codec_type) : "data",
                 avcodec_get_name(par->codec_id), why);
}

/* Takes stream i as rs: a copy of its parameters, and for audio the MP4
 * muxer refuses, a FLAC transcoder.  0, -ENOMEM, or the transcoder's error. */
static int stream_take(struct recorder *r, struct rstream *rs, unsigned i, bool muxable)
{
        const AVStream *st = r->ic->streams[i];
        int e;

        rs->index = (int)i;
        rs->video = st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO;
        rs->tb = st->time_base;
        if (!(rs->par = avcodec_parameters_alloc()) || avcodec_parameters_copy(rs->par, st->codecpar) < 0)
                return -ENOMEM;
        snprintf(rs->name, sizeof(rs->name), "%s", avcodec_get_name(st->codecpar->codec_id));
        if (rs->video || muxable)
                return 0;
        if ((e = audio_transcode_new(&rs->xcode, st->codecpar, st->time_base)) < 0) {
                log_err("camera %s: stream #%u (%s) cannot be made FLAC: %s", r->o.camera.id, i,
                        avcodec_get_name(st->codecpar->codec_id), strerror(-e));
                avcodec_parameters_free(&rs->par);
                return e;
        }
        if (avcodec_parameters_copy(rs->par, audio_transcode_params(rs->xcode)) < 0)
                return -ENOMEM;
        rs->tb = audio_transcode_time_base(rs->xcode);
        snprintf(rs->name, sizeof(rs->name), "flac (from %s)", avcodec_get_name(st->codecpar->codec_id));
        return 0;
}

/* The frame spacing the stream declares (the shorter of its average and
 * its base rate, 5 ms .. 1 s), 0 if neither is usable.  Decode times of a
 * B-frame stream are spaced by it (segment_writer.c): too short is safe. */
static int64_t nominal_frame_us(const AVStream *st)
{
        AVRational rates[2] = { st->avg_frame_rate, st->r_frame_rate };
        int64_t best = 0;

        for (int i = 0; i < 2; i++) {
                int64_t us;

                if (rates[i].num <= 0 || rates[i].den <= 0)
                        continue;
                us = av_rescale(USEC_PER_SEC, rates[i].den, rates[i].num);
                if (us >= 5 * USEC_PER_MSEC && us <= USEC_PER_SEC && (best == 0 || us < best))
                        best = us;
        }
        return best;
}

/* The streams to record: the best video, and the first audio the MP4
 * muxer takes as it is or that can be made FLAC.  The rest is named once in
 * the log, counted and shown in /api/cameras. */
static int streams_select(struct recorder *r)
{
        const AVOutputFormat *mp4 = av_guess_format("mp4", NULL, NULL);
        char unrec[UNRECORDED_MAX] = "";
        uint64_t n_unrec = 0;
        int v = av_find_best_stream(r->ic, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0), e;

        if (v < 0)
                return AVERROR_STREAM_NOT_FOUND;
        r->rs[0].nominal_frame_us = nominal_frame_us(r->ic->streams[v]);
        if (stream_take(r, &r->rs[0], (unsigned)v, true) < 0)
                return AVERROR(ENOMEM);
        r->n_rs = 1;
        for (unsigned i = 0; i < r->ic->nb_streams; i++) {
                const AVCodecParameters *par = r->ic->streams[i]->codecpar;
                bool muxable = avformat_query_codec(mp4, par->codec_id, FF_COMPLIANCE_NORMAL) == 1;
                const char *why = NULL;

                if ((int)i == v)
                        continue;
                if (par->codec_type != AVMEDIA_TYPE_AUDIO)
                        why = par->codec_type == AVMEDIA_TYPE_VIDEO ? "a second video stream" : "not audio or video";
                else if (r->n_rs > 1)
                        why = "a second audio stream";
                else if (!muxable && !audio_transcode_wanted(par, muxable))
                        why = "no decoder for it";
                else if ((e = stream_take(r, &r->rs[1], i, muxable)) == -ENOMEM)
                        return AVERROR(ENOMEM);
                else if (e < 0)
                        why = "cannot be made FLAC";
                else
                        r->n_rs = 2;
                if (why) {
                        unrecorded_add(unrec, sizeof(unrec), i, par, why);
                        n_unrec++;
                }
        }
        atomic_store(&r->stats.unrecorded_streams, n_unrec);
        pthread_mutex_lock(&r->info_lock);
        snprintf(r->unrecorded, sizeof(r->unrecorded), "%s", unrec);
        snprintf(r->video_name, sizeof(r->video_name), "%s", r->rs[0].name);
        snprintf(r->audio_name, sizeof(r->audio_name), "%s", r->n_rs > 1 ? r->rs[1].name : "");
        pthread_mutex_unlock(&r->info_lock);
        if (strcmp(unrec, r->logged_unrecorded)) { /* once, not at every reconnect */
                if (unrec[0])
                        log_warn("camera %s: not recorded: %s", r->o.camera.id, unrec);
                snprintf(r->logged_unrecorded, sizeof(r->logged_unrecorded), "%s", unrec);
        }
        return 0;
}

static void streams_free(struct recorder *r)
{
        for (int i = 0; i < SEGMENT_MAX_STREAMS; i++) {
                avcodec_parameters_free(&r->rs[i].par);
                audio_transcode_free(r->rs[i].xcode);
                r->rs[i] = (struct rstream){ 0 };
        }
        r->n_rs = 0;
}

static void session_timeline_init(struct recorder *r)
{
        struct timeline_stream_cfg cfg[SEGMENT_MAX_STREAMS];

        for (int i = 0; i < r->n_rs; i++) {
                const AVStream *st = r->ic->streams[r->rs[i].index];
                enum AVCodecID id = st->codecpar->codec_id;

                cfg[i] = (struct timeline_stream_cfg){
                        /* libavformat parses these from RTP; the parser moves side data back one packet */
                        .prft_lags = r->rs[i].video && (id == AV_CODEC_ID_H264 || id == AV_CODEC_ID_HEVC),
                        .audio = !r->rs[i].video,
                        .wrap_us = av_rescale_q(INT64_C(1) << 32, st->time_base, AV_TIME_BASE_Q),
                };
        }
        timeline_init(&r->tl, r->n_rs, cfg, r->rtcp_wait_us);
}

static int session_open(struct recorder *r)
{
        AVDictionary *opts = NULL;
        const AVCodecParameters *par;
        int e;

        r->ic = avformat_alloc_context();
        if (!r->ic)
                return -ENOMEM;
        r->ic->interrupt_callback = (AVIOInterruptCB){ .callback = interrupt_cb, .opaque = r };
        r->ic->opaque = &r->avlog; /* the log callback: refusals and RTP loss are logged with this context */
        r->io_deadline_mono_us = now_mono_us() + RECORDER_OPEN_US;
        av_dict_set(&opts, "rtsp_transport", r->o.camera.transport == CONFIG_TRANSPORT_UDP ? "udp" : "tcp", 0);
        av_dict_set(&opts, "timeout", "5000000", 0); /* socket I/O, µs */
        av_dict_set(&opts, "analyzeduration", "1000000", 0);
        e = avformat_open_input(&r->ic, r->url, NULL, &opts);
        av_dict_free(&opts);
        if (e < 0)
                return e;
        e = avformat_find_stream_info(r->ic, NULL);
        /* probing decoded frames: ~1.5 MB per camera, freed but kept by this
         * thread's malloc arena for good unless handed back */
        malloc_trim(0);
        if (e < 0)
                return e;
        if ((e = streams_select(r)) < 0)
                return e;
        par = r->rs[0].par;
        r->hevc = par->codec_id == AV_CODEC_ID_HEVC;
        r->nal_length_size = payload_nal_length_size(par->extradata, (size_t)par->extradata_size, r->hevc);
        atomic_store(&r->stats.width, par->width);
        atomic_store(&r->stats.height, par->height);
        session_timeline_init(r);
        return 0;
}

/* Everything still queued goes where it belongs, then the segments close. */
static void session_close(struct recorder *r, const char *why)
{
        held_settle(r);
        if (r->tl.source != TIMELINE_UNKNOWN) {
                if (r->n_rs > 1 && r->rs[1].xcode)
                        audio_transcode_flush(r->rs[1].xcode, on_transcoded, r);
                boundary_execute(r);
                audio_release(r, r->draining ? drain_audio_end(r) : INT64_MAX);
        }
        for (int i = 0; i < r->vq_n; i++)
                av_packet_free(&r->vq[i].pkt);
        r->vq_n = 0;
        av_packet_free(&r->first_video); /* a session of one frame: nothing to place it by */
        audio_queue_clear(r);
        segment_end(r, &r->seg, why);
        atomic_store(&r->stats.segment_has_key, 0);
        held_release(r);
        streams_free(r);
        r->io_deadline_mono_us = now_mono_us() + TEARDOWN_US; /* let TEARDOWN go out */
        r->closing = true;
        avformat_close_input(&r->ic);
        r->closing = false;
}

/* ---- leases: which of our instances holds the camera -------------------------------- */

static void lease_put(struct recorder *r, const char *state)
{
        int64_t last = r->last_end_us > r->frame_us ? r->last_end_us - r->frame_us : 0;

        index_writer_lease(r->o.iw, r->o.camera.id, r->o.instance_id, state, r->lease_since_us, last, r->limited_us);
        r->lease_beat_mono_us = now_mono_us();
}

static void lease_begin(struct recorder *r, const char *state)
{
        r->lease_since_us = now_real_us();
        lease_put(r, state);
}

/* The camera allows one of our sessions: kept in this instance's lease, so
 * every instance of ours knows it from then on (a deploy's new worker
 * stands by instead of kicking the old one off a "newest wins" camera). */
static void limit_learn(struct recorder *r, int64_t since_us)
{
        if (!r->limited)
                log_notice("camera %s: it allows one of our sessions%s", r->o.camera.id,
                           since_us ? " (learnt by an instance of ours before)" : "");
        r->limited = true;
        if (!r->limited_us)
                r->limited_us = since_us ? since_us : now_real_us();
        atomic_store(&r->stats.session_limited, 1);
}

/* 1: another instance holds the camera now (who, and its lease in *l),
 * 0: none does, -1: cannot tell (no database). */
static int held_elsewhere(struct recorder *r, struct db_lease *l, char *who, size_t wlen)
{
        char state[16];
        int e;

        *l = (struct db_lease){ 0 };
        if (!r->o.db_path || r->lease_db_failed)
                return -1;
        if (!r->lease_db) {
                if ((e = db_open(r->o.db_path, &r->lease_db)) < 0) {
                        log_warn("camera %s: cannot read the other instances' leases from %s: %s (no standby)",
                                 r->o.camera.id, r->o.db_path, strerror(-e));
                        r->lease_db_failed = true;
                        return -1;
                }
                /* read before every session: a locked DB must not hold up a camera's reconnect */
                db_set_busy_timeout_ms(r->lease_db, LEASE_READ_BUSY_MS);
        }
        e = db_lease_other(r->lease_db, r->o.camera.id, r->o.instance_id, now_real_us() - RECORDER_LEASE_FRESH_US, l,
                           who, wlen, state, sizeof(state));
        if (e <= 0)
                return e < 0 ? -1 : 0;
        return (!strcmp(state, "connecting") || !strcmp(state, "recording")) &&
               l->heartbeat_us >= now_real_us() - RECORDER_LEASE_FRESH_US;
}

static void set_held_by(struct recorder *r, const char *who)
{
        pthread_mutex_lock(&r->info_lock);
        snprintf(r->held_by, sizeof(r->held_by), "%s", who);
        pthread_mutex_unlock(&r->info_lock);
}

/* Another instance holds the camera: wait until it lets go (its lease
 * released or stale), then the next session's first frame writes the hole
 * since the holder's last frame as one 'handover' gap. */
static void standby(struct recorder *r, const char *who, const char *why)
{
        struct db_lease l;
        char holder[CONFIG_ID_MAX];
        int64_t t0 = now_mono_us();
        int held;

        log_notice("camera %s: %s; instance %s holds it: standing by until it lets go", r->o.camera.id, why, who);
        set_held_by(r, who);
        atomic_store(&r->stats.state, RECORDER_STANDBY);
        lease_begin(r, "standby");
        snprintf(holder, sizeof(holder), "%s", who);
        while (!atomic_load(&r->stop) && (held = held_elsewhere(r, &l, holder, sizeof(holder))) == 1) {
                if (now_mono_us() - r->lease_beat_mono_us >= RECORDER_LEASE_BEAT_US)
                        lease_put(r, "standby");
                sleep_interruptible(r, RECORDER_STANDBY_POLL_US);
        }
        set_held_by(r, "");
        if (atomic_load(&r->stop))
                return;
        /* the footage up to the holder's last frame exists: the hole starts there */
        if (held == 0 && l.last_frame_us > r->last_end_us) {
                r->last_end_us = l.last_frame_us + r->frame_us;
                r->gap_reason = "handover";
                snprintf(r->handover_from, sizeof(r->handover_from), "%s", holder);
        }
        atomic_fetch_add(&r->stats.handovers, 1);
        log_notice("camera %s: instance %s let go after %.1f s: taking the camera", r->o.camera.id, holder,
                   (double)(now_mono_us() - t0) / 1e6);
}

static void av_err_text(int e, char *buf, size_t len)
{
        if (av_strerror(e, buf, len) < 0)
                snprintf(buf, len, "error %d", e);
}

/* Stop asked: go on reading only for the frames shown before the last one
 * written (B-frames come after the reference they precede). */
static bool drain_begin(struct recorder *r)
{
        if (r->draining || !r->seg || r->max_video_pts_us == INT64_MIN)
                return false;
        r->draining = true;
        r->drain_video_done = false;
        r->drain_pts_us = r->max_video_pts_us;
        for (int i = 0; i < r->vq_n; i++) /* held at a boundary: as good as written */
                if (r->vq[i].t_us > r->drain_pts_us)
                        r->drain_pts_us = r->vq[i].t_us;
        if (r->io_deadline_mono_us > now_mono_us() + DRAIN_MAX_US)
                r->io_deadline_mono_us = now_mono_us() + DRAIN_MAX_US;
        return true;
}

/* One connection, until it fails or we are told to stop. */
/* The session failed: what the camera said, logged once while it keeps
 * saying it, and kept for /health and /api/cameras.  Returns the kind. */
static const char *session_failed(struct recorder *r, int averr, const char *averr_text, bool opened)
{
        char text[sizeof(r->err_text)];
        const char *kind = rtsp_error_describe(&r->avlog.answer, averr, averr_text, opened, text, sizeof(text));
        bool same;

        pthread_mutex_lock(&r->info_lock);
        same = !strcmp(text, r->err_text);
        snprintf(r->err_kind, sizeof(r->err_kind), "%s", kind);
        snprintf(r->err_text, sizeof(r->err_text), "%s", text);
        r->err_status = r->avlog.answer.status;
        pthread_mutex_unlock(&r->info_lock);
        if (!strcmp(kind, RTSP_ERR_AUTH))
                atomic_fetch_add(&r->stats.auth_failures, 1);
        else if (!strcmp(kind, RTSP_ERR_SESSION_LIMIT))
                atomic_fetch_add(&r->stats.session_refusals, 1);
        if (same) {
                r->err_repeats++;
                return kind;
        }
        r->err_repeats = 0;
        if (!strcmp(kind, RTSP_ERR_ENDED))
                log_warn("camera %s: connection ended: %s", r->o.camera.id, text);
        else
                log_warn("camera %s: %s (%s); retrying, logged again when it changes", r->o.camera.id, text, kind);
        return kind;
}

/* Frames again after failures: said once. */
static void session_recovered(struct recorder *r)
{
        char was[sizeof(r->err_text)];

        pthread_mutex_lock(&r->info_lock);
        snprintf(was, sizeof(was), "%s", r->err_text);
        r->err_kind[0] = r->err_text[0] = '\0';
        r->err_status = 0;
        pthread_mutex_unlock(&r->info_lock);
        if (was[0])
                log_info("camera %s: recording again (after %u attempts that ended: %s)", r->o.camera.id,
                         r->err_repeats + 1, was);
        r->err_repeats = 0;
}

static const char *session_run(struct recorder *r)
{
        AVPacket *pkt = av_packet_alloc();
        bool stalled = false, opened, recovered = false;
        const char *kind = NULL;
        char msg[128];
        int e;

        r->last_video_us = r->video_seen_us = r->max_video_pts_us = r->audio_max_us = INT64_MIN;
        r->draining = r->drain_video_done = false;
        r->reorder_probe = r->video_placed = false;
        r->vq_pictures = r->reorder_depth = r->n_recent = 0;
        atomic_store(&r->stats.state, RECORDER_CONNECTING);
        atomic_store(&r->stats.time_source, TIMELINE_UNKNOWN);
        r->avlog = (struct rtsp_log){ .rtp_lost = &r->stats.rtp_lost };
        /* before the camera hears of us: another of ours that it ends for this session knows why */
        lease_begin(r, "connecting");
        e = pkt ? session_open(r) : AVERROR(ENOMEM);
        opened = e >= 0;
        while (e >= 0) {
                if (atomic_load(&r->stop) && !r->draining) {
                        held_settle(r); /* then the drain: B-frames of what was held */
                        if (!drain_begin(r))
                                break;
                }
                if (!atomic_load(&r->stop)) /* after a stop the drain's deadline holds */
                        r->io_deadline_mono_us = now_mono_us() + RECORDER_STALL_US;
                e = av_read_frame(r->ic, pkt);
                /* An interrupted read can still return a packet: on any read
                 * error libavformat flushes its parser's last frame.  The stall
                 * is then seen here, after that frame is kept. */
                stalled = now_mono_us() > r->io_deadline_mono_us;
                if (e < 0)
                        break;
                atomic_fetch_add(&r->stats.heartbeat, 1);
                if (stream_pos(r, pkt->stream_index) >= 0) {
                        atomic_store(&r->stats.state, RECORDER_RECORDING);
                        e = packet_in(r, pkt); /* -ESTALE: timestamps stepped, start over */
                        if (!recovered && atomic_load(&r->stats.frames) > 0) {
                                session_recovered(r);
                                recovered = true;
                                lease_put(r, "recording");
                        }
                        if (now_mono_us() - r->lease_beat_mono_us >= RECORDER_LEASE_BEAT_US)
                                lease_put(r, recovered ? "recording" : "connecting");
                }
                if (r->test_stall && atomic_load(&r->stats.frames) > TEST_STALL_AFTER_FRAMES)
                        while (!atomic_load(&r->stop)) /* test hook: a stuck loop, no heartbeat */
                                usleep(10000);
                av_packet_unref(pkt);
                if (e == DRAIN_DONE) {
                        r->drain_video_done = true;
                        e = 0;
                }
                if (r->draining && (drain_done(r) || stalled))
                        break;
                if (stalled && e >= 0)
                        e = AVERROR_EXIT;
        }
        if (!atomic_load(&r->stop)) {
                av_err_text(e, msg, sizeof(msg));
                if (e == AVERROR_EXIT)
                        snprintf(msg, sizeof(msg), "no data for %.1f s", (double)RECORDER_STALL_US / 1e6);
                else if (e == -ESTALE)
                        snprintf(msg, sizeof(msg), "timestamp step");
                kind = session_failed(r, e, msg, opened);
                atomic_store(&r->stats.state, RECORDER_DOWN);
        }
        session_close(r, atomic_load(&r->stop) ? "stop" : "connection ended");
        r->session_end_real_us = now_real_us();
        lease_put(r, "released");
        av_packet_free(&pkt);
        return kind;
}

/* Retries: BACKOFF_MIN_US doubling to RECORDER_BACKOFF_MAX_US, from the
 * start again after any frame.  A refused login doubles from
 * RECORDER_AUTH_BACKOFF_MIN_US up to the camera's auth_retry_max_s: a
 * camera that locks the account after a few failed logins must not see
 * one every 5 s. */
static void *recorder_thread(void *arg)
{
        struct recorder *r = arg;
        int64_t backoff = BACKOFF_MIN_US, auth_backoff = RECORDER_AUTH_BACKOFF_MIN_US;
        int64_t auth_max = (int64_t)r->o.camera.auth_retry_max_s * 1000000;

        while (!atomic_load(&r->stop)) {
                uint64_t frames = atomic_load(&r->stats.frames);
                const char *kind;
                struct db_lease l;
                char who[CONFIG_ID_MAX];
                int64_t wait;

                /* a camera known to allow one session: never take it from another of ours
                 * (known from its config, or learnt by any of ours unless the config says more) */
                if (r->o.camera.max_sessions <= 1 || r->limited) {
                        int held = held_elsewhere(r, &l, who, sizeof(who));

                        if (!r->limited && r->o.camera.max_sessions == 0 && l.limited_us > 0)
                                limit_learn(r, l.limited_us);
                        if (held == 1 && (r->o.camera.max_sessions == 1 || r->limited)) {
                                standby(r, who, r->limited ? "the camera allows one of our sessions"
                                                           : "the camera allows one session (max_sessions 1)");
                                continue;
                        }
                }
                kind = session_run(r);
                if (atomic_load(&r->stop))
                        break;
                /* refused for its session limit while another of ours holds it */
                if (kind && !strcmp(kind, RTSP_ERR_SESSION_LIMIT) && held_elsewhere(r, &l, who, sizeof(who)) == 1) {
                        limit_learn(r, 0);
                        standby(r, who, "the camera refused a second session");
                        continue;
                }
                atomic_fetch_add(&r->stats.reconnects, 1);
                backoff = atomic_load(&r->stats.frames) > frames ? BACKOFF_MIN_US : backoff;
                if (kind && !strcmp(kind, RTSP_ERR_AUTH)) {
                        wait = auth_backoff < auth_max || auth_max <= 0 ? auth_backoff : auth_max;
                        auth_backoff = wait * 2;
                } else {
                        wait = backoff;
                        backoff = backoff * 2 > RECORDER_BACKOFF_MAX_US ? RECORDER_BACKOFF_MAX_US : backoff * 2;
                        auth_backoff = RECORDER_AUTH_BACKOFF_MIN_US;
                }
                atomic_store(&r->stats.retry_in_us, wait);
                sleep_interruptible(r, wait);
                atomic_store(&r->stats.retry_in_us, 0);
                /* ended right after another session of ours began: the camera keeps one, the newest;
                 * taking it back would only kick that one (a kick storm): stand by instead */
                if (kind && !strcmp(kind, RTSP_ERR_ENDED) && !atomic_load(&r->stop) &&
                    held_elsewhere(r, &l, who, sizeof(who)) == 1 && l.since_us <= r->session_end_real_us &&
                    l.since_us >= r->session_end_real_us - RECORDER_KICK_WINDOW_US) {
                        limit_learn(r, 0);
                        if (r->last_end_us > 0) /* the hole in ours: from our last frame on */
                                gap_file(r, r->last_end_us, now_real_us(), "handover",
                                         "ended by the camera for another session", who);
                        r->last_end_us = 0;
                        standby(r, who, "the camera ended our session for another of ours");
                }
        }
        atomic_store(&r->stats.state, RECORDER_STOPPED);
        db_close(r->lease_db);
        return NULL;
}

int recorder_start(struct recorder **out, const struct recorder_opts *o)
{
        struct recorder *r = calloc(1, sizeof(*r));
        int e;

        if (!r || !(r->url = strdup(o->camera.url)) || !(r->storage_dir = strdup(o->storage_dir))) {
                if (r)
                        free(r->url);
                free(r);
                return -ENOMEM;
        }
        r->o = *o;
        r->o.camera.url = r->url;
        r->o.storage_dir = r->storage_dir;
        r->next_segment_num = o->first_segment_num;
        r->sctx = (struct segment_ctx){ .storage_dir = r->storage_dir, .camera_id = r->o.camera.id,
                                        .instance_id = r->o.instance_id, .iw = o->iw,
                                        .next_num = &r->next_segment_num };
        r->frame_us = DEFAULT_FRAME_US;
        r->rtcp_wait_us = TIMELINE_RTCP_WAIT_US;
        r->gap_reason = "camera_down";
        /* MWR_TEST_STALL_INSTANCE, when set, limits the stall to one instance (hot standby tests) */
        r->test_stall = getenv("MWR_TEST_STALL_CAMERA") && !strcmp(getenv("MWR_TEST_STALL_CAMERA"), o->camera.id) &&
                        (!getenv("MWR_TEST_STALL_INSTANCE") || !strcmp(getenv("MWR_TEST_STALL_INSTANCE"), o->instance_id));
        atomic_init(&r->stop, false);
        pthread_mutex_init(&r->sleep_lock, NULL);
        pthread_mutex_init(&r->info_lock, NULL);
        {
                pthread_condattr_t ca;

                pthread_condattr_init(&ca);
                pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
                pthread_cond_init(&r->sleep_cond, &ca);
                pthread_condattr_destroy(&ca);
        }
        e = pthread_create(&r->thread, NULL, recorder_thread, r);
        if (e) {
                free(r->url);
                free(r->storage_dir);
                free(r);
                return -e;
        }
        *out = r;
        return 0;
}

void recorder_request_stop(struct recorder *r)
{
        pthread_mutex_lock(&r->sleep_lock);
        atomic_store(&r->stop, true);
        pthread_cond_broadcast(&r->sleep_cond);
        pthread_mutex_unlock(&r->sleep_lock);
}

void recorder_join(struct recorder *r)
{
        pthread_join(r->thread, NULL);
        pthread_mutex_destroy(&r->sleep_lock);
        pthread_mutex_destroy(&r->info_lock);
        pthread_cond_destroy(&r->sleep_cond);
        free(r->url);
        free(r->storage_dir);
        free(r);
}

const struct recorder_stats *recorder_stats(const struct recorder *r)
{
        return &r->stats;
}

void recorder_unrecorded(struct recorder *r, char *buf, size_t len)
{
        pthread_mutex_lock(&r->info_lock);
        snprintf(buf, len, "%s", r->unrecorded);
        pthread_mutex_unlock(&r->info_lock);
}

void recorder_error(struct recorder *r, char *kind, size_t klen, char *text, size_t tlen, int *status)
{
        pthread_mutex_lock(&r->info_lock);
        snprintf(kind, klen, "%s", r->err_kind);
        snprintf(text, tlen, "%s", r->err_text);
        *status = r->err_status;
        pthread_mutex_unlock(&r->info_lock);
}

void recorder_held_by(struct recorder *r, char *instance, size_t len)
{
        pthread_mutex_lock(&r->info_lock);
        snprintf(instance, len, "%s", r->held_by);
        pthread_mutex_unlock(&r->info_lock);
}

void recorder_codecs(struct recorder *r, char *video, size_t vlen, char *audio, size_t alen)
{
        pthread_mutex_lock(&r->info_lock);
        snprintf(video, vlen, "%s", r->video_name);
        snprintf(audio, alen, "%s", r->audio_name);
        pthread_mutex_unlock(&r->info_lock);
}

const char *recorder_camera_id(const struct recorder *r)
{
        return r->o.camera.id;
}

const char *recorder_url(const struct recorder *r)
{
        return r->url;
}

const char *recorder_state_name(int state)
{
        static const char *const names[] = { "connecting", "recording", "down", "stopped", "standby" };

        return state >= 0 && state <= RECORDER_STANDBY ? names[state] : "unknown";
}
