/* recorder: one camera's thread (see recorder.h).  A session is one RTSP
 * connection: open, hold packets until the timeline is known, then write.
 * The current segment and its frame index belong to this thread alone; the
 * index writer gets copies.  Invariant: the DB row of a segment never counts
 * a frame that is not in a flushed fragment of its file. */
#include "worker/recorder.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libavformat/avformat.h>
#include <libavcodec/avcodec.h>
#include <libavutil/time.h>

#include "common/fsutil.h"
#include "common/log.h"
#include "common/payload_hash.h"
#include "common/time_util.h"
#include "db/frame_index.h"
#include "worker/fmp4_repair.h"
#include "worker/segment_writer.h"
#include "worker/timeline.h"

#define HOLD_MAX_PACKETS 2048            /* packets held while waiting for RTCP */
#define DEFAULT_FRAME_US (40 * USEC_PER_MSEC)
#define BACKOFF_MIN_US (250 * USEC_PER_MSEC)
#define GAP_MIN_FRAMES 1.5               /* a hole longer than this many frames is a gap */
#define SLEEP_SLICE_US (250 * USEC_PER_MSEC)
#define TEST_STALL_AFTER_FRAMES 100       /* MWR_TEST_STALL_CAMERA: hang after this many frames */
#define TEARDOWN_US (500 * USEC_PER_MSEC) /* cameras with a session limit need their TEARDOWN */
#define JUMP_MAX_US (2 * USEC_PER_SEC)    /* a timestamp step larger than this: new timeline */

struct segment {
        struct segment_writer *w;
        struct seg_ref *ref;
        struct seg_info info;
        struct fi_encoder fi;
        int64_t frag_start_us;   /* camera time of the fragment's first packet */
        int64_t flushed_frames, flushed_keyframes, flushed_end_us;
        int64_t frames, keyframes, end_us;
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

        /* session state, this thread only */
        AVFormatContext *ic;
        int streams[SEGMENT_MAX_STREAMS], n_streams, video;
        int nal_length_size;
        int hevc;
        int64_t io_deadline_mono_us;
        struct timeline tl;
        AVPacket *held[HOLD_MAX_PACKETS];
        int64_t held_recv_real_us[HOLD_MAX_PACKETS];
        int n_held;
        struct segment *seg;
        int64_t last_video_us, frame_us;
        int64_t last_end_us;     /* end of the last frame recorded, across sessions */
        const char *gap_reason;  /* why the next hole happens: camera_down unless we dropped frames */
        bool test_stall;         /* MWR_TEST_STALL_CAMERA names this camera (watchdog tests only) */
};

static int interrupt_cb(void *opaque)
{
        struct recorder *r = opaque;

        atomic_fetch_add(&r->stats.heartbeat, 1); /* called often while libavformat waits */
        return atomic_load(&r->stop) || now_mono_us() > r->io_deadline_mono_us;
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

/* {storage_dir}/{camera}/{YYYY-MM-DD}/{camera}_{start_ms}_{instance}_{num}.mp4 */
static int segment_path(struct recorder *r, int64_t start_us, int64_t num, char *out, size_t outlen)
{
        time_t secs = (time_t)(start_us / USEC_PER_SEC);
        struct tm tm;
        char dir[PATH_MAX];
        int n, e;

        gmtime_r(&secs, &tm);
        n = snprintf(dir, sizeof(dir), "%s/%s/%04d-%02d-%02d", r->o.storage_dir, r->o.camera.id, tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday);
        if (n < 0 || (size_t)n >= sizeof(dir))
                return -ENAMETOOLONG;
        if ((e = fs_mkdir_p(dir)) < 0)
                return e;
        n = snprintf(out, outlen, "%s/%s_%" PRId64 "_%s_%" PRId64 ".mp4", dir, r->o.camera.id, start_us / 1000,
                     r->o.instance_id, num);
        return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

/* Sends the row as of the last flushed fragment, with its frame index. */
static void segment_publish(struct recorder *r, struct segment *s, const char *status)
{
        const uint8_t *blob = NULL;
        size_t len = 0;

        s->info.frames = s->flushed_frames;
        s->info.keyframes = s->flushed_keyframes;
        s->info.end_us = s->flushed_end_us;
        if (s->w) {
                s->info.fragments = segment_writer_fragments(s->w);
                s->info.bytes = segment_writer_bytes(s->w);
        }
        s->info.status = status;
        fi_encoder_data(&s->fi, &blob, &len);
        index_writer_segment_update(r->o.iw, s->ref, &s->info, blob, len);
}

static void segment_mark_flushed(struct segment *s)
{
        s->flushed_frames = s->frames;
        s->flushed_keyframes = s->keyframes;
        s->flushed_end_us = s->end_us;
}

static int segment_flush(struct recorder *r, struct segment *s)
{
        int e = segment_writer_flush(s->w);

        if (e < 0)
                return e;
        if (s->frames == s->flushed_frames)
                return 0;
        segment_mark_flushed(s);
        segment_publish(r, s, "recording");
        return 0;
}

/* After a failed write the file is the truth: cut it back to its last whole
 * fragment and take frames, end and index from what is really there, so the
 * row never counts a frame the file does not hold. */
static void segment_reread(struct segment *s)
{
        struct fmp4_scan scan;
        struct fmp4_frames fr = { 0 };
        struct fi_encoder fi;

        s->flushed_frames = s->flushed_keyframes = 0;
        s->flushed_end_us = s->info.start_us;
        s->info.fragments = 0;
        fi_encoder_init(&fi);
        if (fmp4_truncate(s->info.path, &scan) == 0) {
                s->info.bytes = scan.file_size;
                s->info.fragments = scan.fragments;
                if (fmp4_read_frames(s->info.path, &fi, &fr) == 0 && fr.frames > 0) {
                        s->flushed_frames = fr.frames;
                        s->flushed_keyframes = fr.keyframes;
                        s->flushed_end_us = s->info.start_us + fr.end_offset_us;
                }
        }
        fi_encoder_free(&s->fi);
        s->fi = fi; /* moved: fi_encoder holds no pointer to itself */
}

/* Finalizes the segment: complete when every write and the trailer made it,
 * partial otherwise (the row then counts only the flushed fragments). */
static void segment_close(struct recorder *r, const char *why)
{
        struct segment *s = r->seg;
        int e;

        if (!s)
                return;
        r->seg = NULL;
        e = segment_writer_flush(s->w);
        if (e == 0)
                segment_mark_flushed(s);
        s->info.fragments = segment_writer_fragments(s->w);
        s->info.bytes = segment_writer_bytes(s->w);
        if (e == 0) {
                e = segment_writer_close(s->w, &s->info.bytes);
        } else {
                segment_writer_abort(s->w);
                segment_reread(s);
        }
        s->w = NULL;
        /* no whole fragment made it (e.g. ENOSPC before the first): no footage */
        segment_publish(r, s, e == 0 ? "complete" : s->flushed_frames > 0 ? "partial" : "corrupt");
        if (e < 0)
                log_err("camera %s: segment %s closed with error (%s) after %" PRId64 " frames (%s)", r->o.camera.id,
                        s->info.path, strerror(-e), s->info.frames, why);
        seg_ref_release(s->ref);
        fi_encoder_free(&s->fi);
        free(s);
}

static int segment_open(struct recorder *r, int64_t start_us)
{
        struct segment *s = calloc(1, sizeof(*s));
        int e;

        if (!s)
                return -ENOMEM;
        for (;;) {
                int64_t num = r->next_segment_num++;

                e = segment_path(r, start_us, num, s->info.path, sizeof(s->info.path));
                if (e == 0)
                        e = segment_writer_open(&s->w, s->info.path, r->ic, r->streams, r->n_streams);
                if (e != -EEXIST) {
                        s->info.segment_num = num;
                        break;
                }
        }
        if (e < 0) {
                log_err("camera %s: cannot create segment %s: %s", r->o.camera.id, s->info.path, strerror(-e));
                free(s);
                return e;
        }
        snprintf(s->info.camera_id, sizeof(s->info.camera_id), "%s", r->o.camera.id);
        snprintf(s->info.instance_id, sizeof(s->info.instance_id), "%s", r->o.instance_id);
        s->info.start_us = s->info.end_us = start_us;
        s->info.status = "recording";
        s->info.time_source = timeline_source_name(r->tl.source);
        s->info.clock_offset_us = start_us - now_real_us(); /* camera clock vs ours, incl. latency */
        s->frag_start_us = start_us;
        s->flushed_end_us = s->end_us = start_us;
        fi_encoder_init(&s->fi);
        s->ref = index_writer_segment_begin(r->o.iw, &s->info);
        r->seg = s;
        atomic_fetch_add(&r->stats.segments, 1);
        return 0;
}

/* ---- packets ---------------------------------------------------------------------- */

static int64_t packet_media_us(const struct recorder *r, const AVPacket *pkt)
{
        const AVStream *st = r->ic->streams[pkt->stream_index];
        int64_t ts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;

        return ts == AV_NOPTS_VALUE ? INT64_MIN : av_rescale_q(ts, st->time_base, AV_TIME_BASE_Q);
}

static bool is_selected(const struct recorder *r, int index)
{
        for (int i = 0; i < r->n_streams; i++)
                if (r->streams[i] == index)
                        return true;
        return false;
}

/* Called for every video frame: a hole of more than GAP_MIN_FRAMES frame
 * durations since the end of the previous frame (in this connection or the
 * one before) is a gap row.  The camera sent nothing, or we could not reach
 * it; either way it is camera_down. */
static void gap_check(struct recorder *r, int64_t t_us)
{
        int64_t hole = t_us - r->last_end_us;
        char detail[64];

        if (r->last_end_us == 0 || hole <= (int64_t)((GAP_MIN_FRAMES - 1) * (double)r->frame_us))
                return;
        snprintf(detail, sizeof(detail), "after %" PRIu64 " reconnects", atomic_load(&r->stats.reconnects));
        index_writer_gap(r->o.iw, r->o.camera.id, r->o.instance_id, r->last_end_us, t_us, r->gap_reason, detail);
        atomic_fetch_add(strcmp(r->gap_reason, "disk_full") ? &r->stats.gap_us_camera_down : &r->stats.gap_us_disk_full,
                         (uint64_t)hole);
        atomic_fetch_add(&r->stats.gaps, 1);
        if (hole > RECORDER_GAP_ALERT_US) {
                atomic_fetch_add(&r->stats.gap_alerts, 1);
                log_at(SD_ALERT, "camera %s: ALERT footage gap of %.3f s (%s)", r->o.camera.id, (double)hole / 1e6,
                       r->gap_reason);
        } else {
                log_warn("camera %s: gap of %.3f s (%s)", r->o.camera.id, (double)hole / 1e6, r->gap_reason);
        }
        r->gap_reason = "camera_down";
}

/* A write failed: finish the segment as partial (whole fragments only) and
 * carry on with the next keyframe.  ENOSPC pauses every recorder. */
static void write_failed(struct recorder *r, int e)
{
        atomic_fetch_add(&r->stats.write_errors, 1);
        atomic_store(&r->stats.last_write_error_mono_us, now_mono_us());
        log_err("camera %s: write failed: %s", r->o.camera.id, strerror(-e));
        segment_close(r, "write error");
        atomic_store(&r->stats.segment_has_key, 0);
        if (e == -ENOSPC) {
                atomic_store(&r->o.disk->full, true);
                r->gap_reason = "disk_full";
        }
}

static int64_t packet_decode_us(const struct recorder *r, const AVPacket *pkt, int64_t pts_media_us)
{
        const AVStream *st = r->ic->streams[pkt->stream_index];

        if (pkt->dts == AV_NOPTS_VALUE)
                return pts_media_us;
        return av_rescale_q(pkt->dts, st->time_base, AV_TIME_BASE_Q);
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

/* Writes one packet whose timeline is known.  Write errors end the segment,
 * not the connection: the next keyframe starts a new one.  Segments start at
 * the keyframe's decode time, so B-frames that precede it in presentation
 * still fall inside; fragments and cuts follow decode time too. */
static int packet_record(struct recorder *r, AVPacket *pkt)
{
        int64_t media_us = packet_media_us(r, pkt), t_us, d_us;
        bool video = pkt->stream_index == r->video, key = video && (pkt->flags & AV_PKT_FLAG_KEY);
        struct segment *s;
        int e;

        /* a parser can split SEI or parameter sets into a packet of their own:
         * it is copied into the file like any packet, but it is not a frame */
        if (video && !payload_has_picture(pkt->data, (size_t)pkt->size, r->nal_length_size, r->hevc)) {
                atomic_fetch_add(&r->stats.non_picture_packets, 1);
                if (r->seg && !atomic_load(&r->o.disk->full) && media_us != INT64_MIN &&
                    timeline_time_us(&r->tl, media_us) >= r->seg->info.start_us &&
                    (e = segment_writer_write(r->seg->w, pkt, pkt->stream_index,
                                              timeline_time_us(&r->tl, media_us) - r->seg->info.start_us)) < 0)
                        write_failed(r, e);
                return 0;
        }

        if (media_us == INT64_MIN) {
                atomic_fetch_add(&r->stats.ts_anomalies, 1);
                return 0;
        }
        t_us = timeline_time_us(&r->tl, media_us);
        d_us = timeline_time_us(&r->tl, packet_decode_us(r, pkt, media_us));
        if (video && (e = video_clock(r, d_us)) < 0)
                return e;
        if (atomic_load(&r->o.disk->full)) {
                if (r->seg)
                        segment_close(r, "disk full");
                atomic_store(&r->stats.segment_has_key, 0);
                r->gap_reason = "disk_full";
                atomic_fetch_add(&r->stats.dropped_disk_full, 1);
                return 0;
        }
        if (!r->seg) {
                if (!key) {
                        atomic_fetch_add(&r->stats.dropped_prekey, 1);
                        return 0;
                }
                if ((e = segment_open(r, d_us)) < 0)
                        goto fail;
        } else if (key && d_us - r->seg->info.start_us >= (int64_t)r->o.segment_seconds * USEC_PER_SEC - r->frame_us / 2) {
                segment_close(r, "length reached");
                if ((e = segment_open(r, d_us)) < 0)
                        goto fail;
        }
        s = r->seg;
        if (t_us < s->info.start_us) { /* audio ahead of the first video frame */
                if (video)
                        atomic_fetch_add(&r->stats.ts_anomalies, 1);
                return 0;
        }
        if (s->frames > s->flushed_frames && (key || d_us - s->frag_start_us >= FRAGMENT_MAX_US)) {
                if ((e = segment_flush(r, s)) < 0)
                        goto fail;
                s->frag_start_us = d_us;
        }
        if ((e = segment_writer_write(s->w, pkt, pkt->stream_index, t_us - s->info.start_us)) < 0)
                goto fail;
        if (video) {
                struct fi_frame f = { .offset_us = (uint64_t)(t_us - s->info.start_us), .key = key };

                gap_check(r, d_us);
                f.hash = fi_hash_truncate(payload_hash(pkt->data, (size_t)pkt->size, r->nal_length_size, &f.size));
                if (fi_encoder_add(&s->fi, &f) < 0)
                        atomic_fetch_add(&r->stats.ts_anomalies, 1);
                s->frames++;
                s->keyframes += key;
                if (t_us + r->frame_us > s->end_us)
                        s->end_us = t_us + r->frame_us;
                r->last_end_us = d_us + r->frame_us;
                atomic_fetch_add(&r->stats.frames, 1);
                atomic_store(&r->stats.last_frame_mono_us, now_mono_us());
                if (key)
                        atomic_store(&r->stats.segment_has_key, 1);
        }
        atomic_fetch_add(&r->stats.bytes, (uint64_t)pkt->size);
        return 0;
fail:
        write_failed(r, e);
        return 0;
}

static void held_release(struct recorder *r)
{
        for (int i = 0; i < r->n_held; i++)
                av_packet_free(&r->held[i]);
        r->n_held = 0;
}

/* Until the timeline is known packets are held; then all go out in order. */
static int packet_in(struct recorder *r, AVPacket *pkt)
{
        int64_t media_us = packet_media_us(r, pkt), real = now_real_us();
        int64_t rtcp = r->ic->start_time_realtime == AV_NOPTS_VALUE ? INT64_MIN : r->ic->start_time_realtime;
        int e = 0;

        if (r->tl.source == TIMELINE_UNKNOWN && media_us == INT64_MIN) {
                atomic_fetch_add(&r->stats.ts_anomalies, 1); /* no time at all: cannot be placed */
                return 0;
        }
        if (r->tl.source == TIMELINE_UNKNOWN && !timeline_observe(&r->tl, media_us, real, now_mono_us(), rtcp)) {
                if (r->n_held == HOLD_MAX_PACKETS) {
                        av_packet_free(&r->held[0]);
                        memmove(r->held, r->held + 1, sizeof(r->held[0]) * (HOLD_MAX_PACKETS - 1));
                        r->n_held--;
                        atomic_fetch_add(&r->stats.dropped_prekey, 1);
                }
                r->held[r->n_held++] = av_packet_clone(pkt);
                return 0;
        }
        if (r->n_held > 0) {
                log_info("camera %s: timeline from %s%s", r->o.camera.id, timeline_source_name(r->tl.source),
                         r->tl.rtcp_rejected ? " (its RTCP clock is more than 5 min off ours)" : "");
                for (int i = 0; i < r->n_held && e == 0; i++)
                        if (r->held[i])
                                e = packet_record(r, r->held[i]);
                held_release(r);
                if (e < 0)
                        return e;
        }
        return packet_record(r, pkt);
}

/* ---- session ----------------------------------------------------------------------- */

static int session_open(struct recorder *r)
{
        AVDictionary *opts = NULL;
        const AVOutputFormat *mp4 = av_guess_format("mp4", NULL, NULL);
        int e;

        r->ic = avformat_alloc_context();
        if (!r->ic)
                return -ENOMEM;
        r->ic->interrupt_callback = (AVIOInterruptCB){ .callback = interrupt_cb, .opaque = r };
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
        r->video = av_find_best_stream(r->ic, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
        if (r->video < 0)
                return AVERROR_STREAM_NOT_FOUND;
        r->streams[0] = r->video;
        r->n_streams = 1;
        for (unsigned i = 0; i < r->ic->nb_streams; i++) {
                const AVCodecParameters *par = r->ic->streams[i]->codecpar;
                if (par->codec_type == AVMEDIA_TYPE_AUDIO &&
                    avformat_query_codec(mp4, par->codec_id, FF_COMPLIANCE_NORMAL) == 1) {
                        r->streams[r->n_streams++] = (int)i;
                        break;
                }
        }
        {
                const AVCodecParameters *par = r->ic->streams[r->video]->codecpar;
                r->hevc = par->codec_id == AV_CODEC_ID_HEVC;
                r->nal_length_size = payload_nal_length_size(par->extradata, (size_t)par->extradata_size, r->hevc);
        }
        return 0;
}

static void session_close(struct recorder *r, const char *why)
{
        segment_close(r, why);
        atomic_store(&r->stats.segment_has_key, 0);
        held_release(r);
        r->io_deadline_mono_us = now_mono_us() + TEARDOWN_US; /* let TEARDOWN go out */
        avformat_close_input(&r->ic);
}

static void av_err_text(int e, char *buf, size_t len)
{
        if (av_strerror(e, buf, len) < 0)
                snprintf(buf, len, "error %d", e);
}

/* One connection, until it fails or we are told to stop. */
static void session_run(struct recorder *r)
{
        AVPacket *pkt = av_packet_alloc();
        bool stalled = false;
        char msg[128];
        int e;

        timeline_init(&r->tl);
        r->last_video_us = INT64_MIN;
        atomic_store(&r->stats.state, RECORDER_CONNECTING);
        e = pkt ? session_open(r) : AVERROR(ENOMEM);
        while (e >= 0 && !atomic_load(&r->stop)) {
                r->io_deadline_mono_us = now_mono_us() + RECORDER_STALL_US;
                e = av_read_frame(r->ic, pkt);
                /* An interrupted read can still return a packet: on any read
                 * error libavformat flushes its parser's last frame.  The stall
                 * is then seen here, after that frame is kept. */
                stalled = now_mono_us() > r->io_deadline_mono_us;
                if (e < 0)
                        break;
                atomic_fetch_add(&r->stats.heartbeat, 1);
                if (is_selected(r, pkt->stream_index)) {
                        atomic_store(&r->stats.state, RECORDER_RECORDING);
                        e = packet_in(r, pkt); /* -ESTALE: timestamps stepped, start over */
                }
                if (r->test_stall && atomic_load(&r->stats.frames) > TEST_STALL_AFTER_FRAMES)
                        while (!atomic_load(&r->stop)) /* test hook: a stuck loop, no heartbeat */
                                usleep(10000);
                av_packet_unref(pkt);
                if (stalled && e >= 0)
                        e = AVERROR_EXIT;
        }
        if (!atomic_load(&r->stop)) {
                av_err_text(e, msg, sizeof(msg));
                if (e == AVERROR_EXIT)
                        snprintf(msg, sizeof(msg), "no data for %.1f s", (double)RECORDER_STALL_US / 1e6);
                else if (e == -ESTALE)
                        snprintf(msg, sizeof(msg), "timestamp step");
                log_warn("camera %s: connection ended: %s", r->o.camera.id, msg);
                atomic_store(&r->stats.state, RECORDER_DOWN);
        }
        session_close(r, atomic_load(&r->stop) ? "stop" : "connection ended");
        av_packet_free(&pkt);
}

static void *recorder_thread(void *arg)
{
        struct recorder *r = arg;
        int64_t backoff = BACKOFF_MIN_US;

        while (!atomic_load(&r->stop)) {
                uint64_t frames = atomic_load(&r->stats.frames);

                session_run(r);
                if (atomic_load(&r->stop))
                        break;
                atomic_fetch_add(&r->stats.reconnects, 1);
                backoff = atomic_load(&r->stats.frames) > frames ? BACKOFF_MIN_US : backoff;
                sleep_interruptible(r, backoff);
                backoff = backoff * 2 > RECORDER_BACKOFF_MAX_US ? RECORDER_BACKOFF_MAX_US : backoff * 2;
        }
        atomic_store(&r->stats.state, RECORDER_STOPPED);
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
        r->frame_us = DEFAULT_FRAME_US;
        r->gap_reason = "camera_down";
        r->test_stall = getenv("MWR_TEST_STALL_CAMERA") && !strcmp(getenv("MWR_TEST_STALL_CAMERA"), o->camera.id);
        atomic_init(&r->stop, false);
        pthread_mutex_init(&r->sleep_lock, NULL);
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
        pthread_cond_destroy(&r->sleep_cond);
        free(r->url);
        free(r->storage_dir);
        free(r);
}

const struct recorder_stats *recorder_stats(const struct recorder *r)
{
        return &r->stats;
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
        static const char *const names[] = { "connecting", "recording", "down", "stopped" };

        return state >= 0 && state <= RECORDER_STOPPED ? names[state] : "unknown";
}
