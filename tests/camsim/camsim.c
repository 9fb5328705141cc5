/* camsim: a set of simulated IP cameras on GStreamer's RTSP server, for tests.
 *
 * Each video encoder is a clock thread that paints frame n (framecode grid +
 * a moving bar + a noise patch) at start + n/fps, an x264/x265 pipeline, and
 * a fan-out that copies each encoded access unit, with a per-camera SEI
 * (camera id, n) prepended, into the appsrc of every camera it feeds.  The
 * audio encoder (one, when --audio) does the same with time-coded sound
 * (audiocode.h): sample k is due at start + k/rate.  Frame and sample numbers
 * count time since camsim started, so they continue across client connects
 * and disconnects like a real camera's; each mount is a shared media, so
 * every client of one camera receives the same encoded bytes.  Cameras share
 * --encoders encoders round-robin (default 1: cheap, and the SEI still makes
 * every camera's payload unique).  Personalities (opts.h) change how the
 * stream looks and how the server talks; faults come over the control port
 * (control.h).  Like real cameras it can demand credentials (--auth) and
 * cap the RTSP sessions of each stream (--max-sessions, refusing or kicking),
 * and it keeps a log of each stream's sessions for the `sessions` command.
 * Invariants: camera->src/asrc/msrc are only touched under camera->lock; a
 * camera's session list, counters and events only under
 * camsim->sessions_lock (never held with a camera->lock). */
#include "aacpay.h"
#include "audiocode.h"
#include "control.h"
#include "framecode.h"
#include "opts.h"

#include <errno.h>
#include <gio/gio.h>
#include <glib-unix.h>
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>
#include <gst/rtsp-server/rtsp-server.h>
#include <gst/video/video.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CAMSIM_MAX_ENCODERS CAMSIM_MAX_CAMERAS
#define AU_MAX_BYTES (4u << 20) /* an access unit larger than this is dropped */
#define RTCP_MIN_INTERVAL_NS (1 * GST_SECOND) /* sender reports every second */
#define AUDIO_CAPS_WAIT_US (10 * G_USEC_PER_SEC) /* the audio encoder's first output, at start */
#define AAC_FRAME_SAMPLES 1024
#define AAC_BITRATE 32000
#define NO_BLOCK 0
#define BLOCK_FOREVER G_MAXUINT64
#define SESSION_ID_MAX 64 /* GStreamer's session ids are 16 characters; longer ones are cut */
#define SESSION_CLEANUP_S 2 /* how often sessions past their timeout (60 s without keep-alive) end */
#define CAMSIM_ROLE "viewer" /* the role --auth's user has on every mount: it may play */
#define CAMSIM_REALM "camsim"

struct encoder;

enum sess_event_kind { SESS_OPEN, SESS_CLOSE, SESS_REFUSED, SESS_KICKED, SESS_AUTH_FAILED };

struct sess_event {
        gint64 t_us;                /* realtime */
        enum sess_event_kind kind;
        char session[SESSION_ID_MAX]; /* "" when there is none (refused, auth_failed) */
};

/* An RTSP session a stream counts: from its first successful SETUP on the
 * stream until TEARDOWN, its connection closes, it times out, or it is
 * kicked. */
struct rtsp_sess {
        GstRTSPSession *session;    /* referenced */
        GstRTSPClient *client;      /* referenced: the connection that set it up */
        char id[SESSION_ID_MAX];
};

struct camera {
        char id[CAMSIM_CAMERA_ID_MAX];
        int index;
        struct encoder *enc;
        /* guarded by camsim->sessions_lock, not by lock: */
        GQueue sessions;            /* struct rtsp_sess on this stream, the oldest first */
        guint64 opened, refused, kicked, auth_failed;
        struct sess_event events[CAMSIM_SESSION_EVENTS_MAX]; /* a ring: the newest at next_event - 1 */
        unsigned n_events, next_event;
        GMutex lock;                /* guards everything below */
        GstElement *src, *asrc, *msrc; /* appsrcs of the live shared media, or NULL */
        GstClockTime outage_until;  /* no frames or sound before this monotonic time */
        gboolean resume_at_key;     /* after an outage: restart at a keyframe, as a rebooted camera does */
        unsigned corrupt_left;      /* frames still to send as garbage */
        guint64 frames_sent, audio_sent;
        gint64 media_first;         /* the number of the current media's first frame sent, -1: none yet */
        guint64 media_count;        /* medias created for this mount so far */
        GstClockTime media_start_ns;/* monotonic time the current media was prepared (npt 0) */
        GstClockTime sr_block_until;/* no RTCP sender report before this monotonic time */
        guint64 rtcp_dropped, rtp_dropped;
};

struct encoder {
        struct camsim *cs;
        GstElement *pipeline, *src, *sink;
        GThread *thread;
        struct camera *cams[CAMSIM_MAX_CAMERAS];
        int ncams;
        int width, height;  /* the picture now: the clock thread's alone */
        guint8 *background; /* I420 template of width x height */
        gsize frame_bytes;
        GMutex sprop_lock;
        gchar *sprop;       /* H.264 "SPS,PPS" in base64 for the SDP, the latest seen */
        gint key_requested; /* atomic: a forced keyframe is on its way */
        guint32 rng;
};

/* One audio encoder feeds every camera: the sound is the same everywhere
 * (the video's SEI tells cameras apart). */
struct audio_enc {
        struct camsim *cs;
        GstElement *pipeline, *src, *sink;
        GThread *thread;
        int frame_samples;  /* samples per pushed chunk: an AAC frame, or 20 ms of G.711 */
        GMutex lock;
        GCond caps_cond;
        GstCaps *caps;      /* the encoded caps (AAC's codec_data), once known */
};

struct camsim {
        struct opts o;
        GstClockTime start_ns, frame_ns; /* frame n is due at start + n * frame_ns */
        gint stopping;                   /* atomic */
        GMainLoop *loop;
        GstRTSPServer *server;
        GMutex sessions_lock;            /* every camera's sessions, counters and events */
        struct camera cams[CAMSIM_MAX_CAMERAS];
        struct encoder encs[CAMSIM_MAX_ENCODERS];
        struct audio_enc aenc;
};

static GstClockTime now_mono_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (GstClockTime)ts.tv_sec * GST_SECOND + (GstClockTime)ts.tv_nsec;
}

static guint32 xorshift32(guint32 *s)
{
        guint32 x = *s;

        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        return *s = x;
}

static void sleep_until_ns(GstClockTime due)
{
        struct timespec ts = { .tv_sec = (time_t)(due / GST_SECOND), .tv_nsec = (long)(due % GST_SECOND) };

        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                ;
}

/* ---- picture ----------------------------------------------------------------- */

static void background_init(struct encoder *e)
{
        guint8 *y = e->background, *uv = y + (gsize)e->width * e->height;

        for (int r = 0; r < e->height; r++)
                for (int c = 0; c < e->width; c++)
                        y[(gsize)r * e->width + c] = (guint8)(60 + (c * 100) / e->width + (r * 40) / e->height);
        memset(uv, 128, e->frame_bytes - (gsize)e->width * e->height);
}

static void picture_resize(struct encoder *e, int width, int height)
{
        e->width = width;
        e->height = height;
        e->frame_bytes = (gsize)width * height * 3 / 2;
        g_free(e->background);
        e->background = g_malloc(e->frame_bytes);
        background_init(e);
}

/* Frame n: background, a bar moving 4 px a frame, a noise patch sized so the
 * encoder has real work near the target bitrate, and the framecode grid. */
static void picture_paint(struct encoder *e, guint8 *frame, guint32 n)
{
        struct framecode_geom g;
        int w = e->width, h = e->height;
        int bar_x = (int)((n * 4u) % (guint32)w), bar_w = w / 32;
        int nw = w / 4, nh = h / 4;

        memcpy(frame, e->background, e->frame_bytes);
        for (int r = h / 2; r < h; r++)
                memset(frame + (gsize)r * w + bar_x, 235, (gsize)MIN(bar_w, w - bar_x));
        for (int r = h - nh; r < h; r++) {
                guint8 *p = frame + (gsize)r * w + (w - nw);
                for (int c = 0; c < nw; c += 4) {
                        guint32 v = xorshift32(&e->rng);
                        memcpy(p + c, &v, (gsize)MIN(4, nw - c));
                }
        }
        if (framecode_geometry(w, h, &g) == 0)
                framecode_paint(frame, w, &g, n);
}

/* ---- fan-out to cameras ------------------------------------------------------- */

static gboolean is_hevc(const struct camsim *cs)
{
        return cs->o.codec == CAMSIM_H265;
}

/* NAL type at a start code's payload. */
static int nal_type(const struct camsim *cs, const guint8 *nal)
{
        return is_hevc(cs) ? (nal[0] >> 1) & 0x3f : nal[0] & 0x1f;
}

static gboolean nal_is_vcl(const struct camsim *cs, int type)
{
        return is_hevc(cs) ? type < 32 : type == 1 || type == 5;
}

/* Garbage that keeps the start codes and NAL headers, so the stream still
 * splits into NALs. */
static void payload_corrupt(const struct camsim *cs, guint8 *p, gsize len, guint32 seed)
{
        gsize header = is_hevc(cs) ? 5 : 4;

        for (gsize i = 0; i + header < len; i++) {
                if (p[i] == 0 && p[i + 1] == 0 && p[i + 2] == 1) {
                        i += header;
                        continue;
                }
                p[i] = (guint8)(xorshift32(&seed) | 1); /* never 0: no fake start codes */
        }
}

/* Offset of the first VCL NAL's start code in an Annex-B access unit. */
static gsize first_vcl_offset(const struct camsim *cs, const guint8 *p, gsize len)
{
        for (gsize i = 0; i + 3 < len; i++)
                if (p[i] == 0 && p[i + 1] == 0 && p[i + 2] == 1) {
                        gsize sc = (i > 0 && p[i - 1] == 0) ? i - 1 : i;
                        if (nal_is_vcl(cs, nal_type(cs, p + i + 3)))
                                return sc;
                        i += 2;
                }
        return 0;
}

/* Asks the encoder for an IDR soon (once per request window), so a camera
 * coming back from an outage does not wait a whole GOP.  The other cameras
 * on the encoder just get one more keyframe. */
static void encoder_request_keyframe(struct encoder *e)
{
        if (g_atomic_int_compare_and_exchange(&e->key_requested, 0, 1))
                gst_element_send_event(e->sink, gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE,
                                                                                           TRUE, 0));
}

/* The camera's appsrc to push to at camera time `due`, referenced, or NULL
 * (no client, an outage, not playing yet).  Sets *base to its base time. */
static GstElement *playing_src(GstElement *src, GstClockTime due, GstClockTime *base)
{
        if (!src)
                return NULL;
        *base = gst_element_get_base_time(src);
        if (GST_STATE(src) != GST_STATE_PLAYING || *base == GST_CLOCK_TIME_NONE || due < *base) {
                gst_object_unref(src);
                return NULL;
        }
        return src;
}

/* Frame n (decode order: dts_off before its presentation) to one camera. */
static void camera_send(struct camsim *cs, struct camera *cam, const guint8 *au, gsize len, gboolean key,
                        guint32 n, GstClockTime dts_off)
{
        GstClockTime due = cs->start_ns + (GstClockTime)n * cs->frame_ns, base;
        guint8 sei[FRAMECODE_SEI_MAX];
        GstElement *src = NULL;
        gboolean corrupt = FALSE;
        GstBuffer *buf;
        GstMapInfo map;
        gsize vcl;
        int sei_len;

        g_mutex_lock(&cam->lock);
        if (due < cam->outage_until) {
                cam->resume_at_key = TRUE;
        } else if (cam->resume_at_key && !key) {
                if (cam->src)
                        encoder_request_keyframe(cam->enc);
        } else if (cam->src) {
                cam->resume_at_key = FALSE;
                src = gst_object_ref(cam->src);
                if (cam->corrupt_left > 0) {
                        cam->corrupt_left--;
                        corrupt = TRUE;
                }
        }
        g_mutex_unlock(&cam->lock);
        if (!(src = playing_src(src, due, &base)))
                return;
        if (due - base < dts_off) /* decode time before the media began */
                goto out;

        sei_len = is_hevc(cs) ? framecode_sei_build_hevc(sei, sizeof(sei), cam->id, n)
                              : framecode_sei_build(sei, sizeof(sei), cam->id, n);
        if (sei_len < 0)
                goto out;
        vcl = first_vcl_offset(cs, au, len);
        buf = gst_buffer_new_allocate(NULL, len + (gsize)sei_len, NULL);
        gst_buffer_map(buf, &map, GST_MAP_WRITE);
        memcpy(map.data, au, vcl);
        memcpy(map.data + vcl, sei, (gsize)sei_len);
        memcpy(map.data + vcl + sei_len, au + vcl, len - vcl);
        if (corrupt)
                payload_corrupt(cs, map.data + vcl + sei_len, len - vcl, n * 2654435761u + 1);
        gst_buffer_unmap(buf, &map);
        GST_BUFFER_PTS(buf) = due - base;
        GST_BUFFER_DTS(buf) = due - base - dts_off;
        GST_BUFFER_DURATION(buf) = cs->frame_ns;
        if (!key)
                GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_DELTA_UNIT);
        if (gst_app_src_push_buffer(GST_APP_SRC(src), buf) == GST_FLOW_OK) {
                g_mutex_lock(&cam->lock);
                cam->frames_sent++;
                if (cam->media_first < 0)
                        cam->media_first = n;
                g_mutex_unlock(&cam->lock);
        }
out:
        gst_object_unref(src);
}

/* The encoded sound that starts at running time pts_rt to one camera. */
static void camera_send_audio(struct camsim *cs, struct camera *cam, GstBuffer *enc, GstClockTime pts_rt)
{
        GstClockTime due = cs->start_ns + pts_rt, base;
        GstElement *src = NULL;
        GstBuffer *buf;

        g_mutex_lock(&cam->lock);
        if (due >= cam->outage_until && cam->asrc)
                src = gst_object_ref(cam->asrc);
        g_mutex_unlock(&cam->lock);
        if (!(src = playing_src(src, due, &base)))
                return;
        buf = gst_buffer_copy(enc); /* shares the memory */
        GST_BUFFER_PTS(buf) = due - base;
        GST_BUFFER_DTS(buf) = GST_CLOCK_TIME_NONE;
        GST_BUFFER_OFFSET(buf) = GST_BUFFER_OFFSET_NONE;
        GST_BUFFER_OFFSET_END(buf) = GST_BUFFER_OFFSET_NONE;
        if (gst_app_src_push_buffer(GST_APP_SRC(src), buf) == GST_FLOW_OK) {
                g_mutex_lock(&cam->lock);
                cam->audio_sent++;
                g_mutex_unlock(&cam->lock);
        }
        gst_object_unref(src);
}

/* --metadata: an event document with each keyframe, as ONVIF cameras send
 * on a stream of their own (application data: a recorder must name it, it
 * cannot record it as footage). */
static void camera_send_metadata(struct camsim *cs, struct camera *cam, guint32 n)
{
        GstClockTime due = cs->start_ns + (GstClockTime)n * cs->frame_ns, base;
        GstElement *src = NULL;
        gchar *xml;
        GstBuffer *buf;

        g_mutex_lock(&cam->lock);
        if (due >= cam->outage_until && cam->msrc)
                src = gst_object_ref(cam->msrc);
        g_mutex_unlock(&cam->lock);
        if (!(src = playing_src(src, due, &base)))
                return;
        xml = g_strdup_printf("<tt:MetadataStream><tt:Event camera=\"%s\" frame=\"%u\"/></tt:MetadataStream>",
                              cam->id, n);
        buf = gst_buffer_new_wrapped(xml, strlen(xml));
        GST_BUFFER_PTS(buf) = due - base;
        gst_app_src_push_buffer(GST_APP_SRC(src), buf);
        gst_object_unref(src);
}

/* Keep the latest SPS and PPS (they change with the resolution), so each
 * new media's SDP carries them (sprop-parameter-sets) as real cameras' do. */
static void encoder_note_sprop(struct encoder *e, const guint8 *p, gsize len)
{
        const guint8 *nal[2] = { NULL, NULL };
        gsize nal_len[2] = { 0, 0 };
        const guint8 *cur = NULL;
        int cur_type = 0;

        for (gsize i = 0; i + 3 <= len; i++) {
                gboolean sc = i + 3 < len && p[i] == 0 && p[i + 1] == 0 && p[i + 2] == 1;
                if (!sc && i + 3 != len)
                        continue;
                if (cur && (cur_type == 7 || cur_type == 8)) {
                        gsize end = sc ? i : len;
                        while (end > (gsize)(cur - p) && p[end - 1] == 0)
                                end--;
                        nal[cur_type - 7] = cur;
                        nal_len[cur_type - 7] = end - (gsize)(cur - p);
                }
                if (sc) {
                        cur = p + i + 3;
                        cur_type = cur[0] & 0x1f;
                        i += 2;
                }
        }
        if (nal[0] && nal[1]) {
                gchar *sps = g_base64_encode(nal[0], nal_len[0]), *pps = g_base64_encode(nal[1], nal_len[1]);
                gchar *sprop = g_strdup_printf("%s,%s", sps, pps);

                g_mutex_lock(&e->sprop_lock);
                if (!e->sprop || strcmp(e->sprop, sprop)) {
                        g_free(e->sprop);
                        e->sprop = g_steal_pointer(&sprop);
                }
                g_mutex_unlock(&e->sprop_lock);
                g_free(sprop);
                g_free(sps);
                g_free(pps);
        }
}

static GstFlowReturn on_encoded(GstAppSink *sink, gpointer data)
{
        struct encoder *e = data;
        GstSample *sample = gst_app_sink_pull_sample(sink);
        const GstSegment *seg;
        GstClockTime pts, dts;
        GstBuffer *buf;
        GstMapInfo map;
        gboolean key;
        guint32 n;

        if (!sample)
                return GST_FLOW_EOS;
        buf = gst_sample_get_buffer(sample);
        seg = gst_sample_get_segment(sample);
        /* x264enc shifts its output segment (by 1000 h); running time is ours */
        pts = buf ? gst_segment_to_running_time(seg, GST_FORMAT_TIME, GST_BUFFER_PTS(buf)) : GST_CLOCK_TIME_NONE;
        dts = buf && GST_BUFFER_DTS_IS_VALID(buf) ? gst_segment_to_running_time(seg, GST_FORMAT_TIME, GST_BUFFER_DTS(buf))
                                                  : pts;
        if (pts != GST_CLOCK_TIME_NONE && gst_buffer_map(buf, &map, GST_MAP_READ)) {
                key = !GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_DELTA_UNIT);
                n = (guint32)((pts + e->cs->frame_ns / 2) / e->cs->frame_ns);
                if (key)
                        g_atomic_int_set(&e->key_requested, 0);
                if (key && !is_hevc(e->cs))
                        encoder_note_sprop(e, map.data, map.size);
                if (map.size <= AU_MAX_BYTES)
                        for (int i = 0; i < e->ncams; i++) {
                                camera_send(e->cs, e->cams[i], map.data, map.size, key, n,
                                            dts != GST_CLOCK_TIME_NONE && dts < pts ? pts - dts : 0);
                                if (key && e->cs->o.metadata)
                                        camera_send_metadata(e->cs, e->cams[i], n);
                        }
                gst_buffer_unmap(buf, &map);
        }
        gst_sample_unref(sample);
        return GST_FLOW_OK;
}

/* ---- video encoder ----------------------------------------------------------- */

static GstCaps *raw_caps(const struct encoder *e)
{
        return gst_caps_new_simple("video/x-raw", "format", G_TYPE_STRING, "I420", "width", G_TYPE_INT, e->width,
                                   "height", G_TYPE_INT, e->height, "framerate", GST_TYPE_FRACTION, e->cs->o.fps, 1,
                                   NULL);
}

/* Paints and pushes frame n at its due time; catches up without skipping a
 * number when it falls behind, so numbers never jump under load.  At
 * --resolution-change-at the picture changes size: the encoder starts over
 * with new parameter sets at an IDR, as a camera does when reconfigured. */
static gpointer encoder_clock_thread(gpointer data)
{
        struct encoder *e = data;
        struct camsim *cs = e->cs;
        guint32 change_at = cs->o.res_change_at_s >= 0 ? (guint32)(cs->o.res_change_at_s * cs->o.fps + 0.5)
                                                       : G_MAXUINT32;

        for (guint32 n = 0; !g_atomic_int_get(&cs->stopping); n++) {
                GstBuffer *buf;
                GstMapInfo map;

                sleep_until_ns(cs->start_ns + (GstClockTime)n * cs->frame_ns);
                if (n == change_at) {
                        GstCaps *caps;

                        picture_resize(e, cs->o.res_width, cs->o.res_height);
                        caps = raw_caps(e);
                        gst_app_src_set_caps(GST_APP_SRC(e->src), caps);
                        gst_caps_unref(caps);
                }
                buf = gst_buffer_new_allocate(NULL, e->frame_bytes, NULL);
                gst_buffer_map(buf, &map, GST_MAP_WRITE);
                picture_paint(e, map.data, n);
                gst_buffer_unmap(buf, &map);
                GST_BUFFER_PTS(buf) = (GstClockTime)n * cs->frame_ns;
                GST_BUFFER_DURATION(buf) = cs->frame_ns;
                if (gst_app_src_push_buffer(GST_APP_SRC(e->src), buf) != GST_FLOW_OK)
                        break;
        }
        return NULL;
}

/* x264/x265 as cameras use them: closed GOPs of --gop frames, no scene cuts,
 * --bframes B-frames (without them: zero latency). */
static gchar *encoder_description(const struct opts *o)
{
        if (o->codec == CAMSIM_H265)
                return g_strdup_printf(
                        "x265enc speed-preset=ultrafast %s bitrate=%d key-int-max=%d "
                        "option-string=\"scenecut=0:open-gop=0:repeat-headers=1:bframes=%d:b-adapt=0:pools=1:frame-threads=1\" "
                        "! video/x-h265,stream-format=byte-stream,alignment=au",
                        o->bframes ? "" : "tune=zerolatency", o->bitrate_kbps, o->gop, o->bframes);
        if (o->bframes)
                return g_strdup_printf("x264enc speed-preset=ultrafast threads=1 bitrate=%d key-int-max=%d "
                                       "bframes=%d b-adapt=false sync-lookahead=0 option-string=scenecut=0 "
                                       "! video/x-h264,stream-format=byte-stream,alignment=au",
                                       o->bitrate_kbps, o->gop, o->bframes);
        return g_strdup_printf("x264enc speed-preset=ultrafast tune=zerolatency threads=1 bitrate=%d key-int-max=%d "
                               "option-string=scenecut=0 ! video/x-h264,stream-format=byte-stream,alignment=au",
                               o->bitrate_kbps, o->gop);
}

static int encoder_start(struct camsim *cs, struct encoder *e, int index)
{
        const struct opts *o = &cs->o;
        GError *err = NULL;
        gchar *enc = encoder_description(o), *desc;
        GstCaps *caps;

        e->cs = cs;
        e->rng = 0x9e3779b9u + (guint32)index;
        picture_resize(e, o->width, o->height);
        desc = g_strdup_printf("appsrc name=src format=time is-live=false block=true max-bytes=%" G_GSIZE_FORMAT
                               " ! %s ! appsink name=sink sync=false max-buffers=8",
                               e->frame_bytes * 4, enc);
        g_free(enc);
        e->pipeline = gst_parse_launch(desc, &err);
        g_free(desc);
        if (!e->pipeline) {
                fprintf(stderr, "camsim: encoder pipeline: %s\n", err ? err->message : "?");
                g_clear_error(&err);
                return -EINVAL;
        }
        e->src = gst_bin_get_by_name(GST_BIN(e->pipeline), "src");
        e->sink = gst_bin_get_by_name(GST_BIN(e->pipeline), "sink");
        caps = raw_caps(e);
        gst_app_src_set_caps(GST_APP_SRC(e->src), caps);
        gst_caps_unref(caps);
        gst_app_sink_set_callbacks(GST_APP_SINK(e->sink),
                                   &(GstAppSinkCallbacks){ .new_sample = on_encoded }, e, NULL);
        if (gst_element_set_state(e->pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
                fprintf(stderr, "camsim: encoder %d does not start (is %s installed?)\n", index,
                        o->codec == CAMSIM_H265 ? "x265enc" : "x264enc");
                return -EIO;
        }
        e->thread = g_thread_new("camsim-clock", encoder_clock_thread, e);
        return 0;
}

static void pipeline_stop(GstElement **pipeline, GstElement **src, GstElement **sink, GThread **thread)
{
        if (!*pipeline)
                return;
        gst_app_src_end_of_stream(GST_APP_SRC(*src));
        if (*thread)
                g_thread_join(*thread);
        gst_element_set_state(*pipeline, GST_STATE_NULL);
        gst_object_unref(*src);
        gst_object_unref(*sink);
        gst_object_unref(*pipeline);
        *pipeline = NULL;
}

static void encoder_stop(struct encoder *e)
{
        pipeline_stop(&e->pipeline, &e->src, &e->sink, &e->thread);
        g_free(e->background);
        g_free(e->sprop);
}

/* ---- audio encoder --------------------------------------------------------------- */

static GstFlowReturn on_audio_encoded(GstAppSink *sink, gpointer data)
{
        struct audio_enc *a = data;
        struct camsim *cs = a->cs;
        GstSample *sample = gst_app_sink_pull_sample(sink);
        GstBuffer *buf;
        GstClockTime pts;

        if (!sample)
                return GST_FLOW_EOS;
        g_mutex_lock(&a->lock);
        if (!a->caps && gst_sample_get_caps(sample)) {
                a->caps = gst_caps_copy(gst_sample_get_caps(sample));
                g_cond_broadcast(&a->caps_cond);
        }
        g_mutex_unlock(&a->lock);
        buf = gst_sample_get_buffer(sample);
        pts = buf ? gst_segment_to_running_time(gst_sample_get_segment(sample), GST_FORMAT_TIME, GST_BUFFER_PTS(buf))
                  : GST_CLOCK_TIME_NONE;
        if (pts != GST_CLOCK_TIME_NONE)
                for (int i = 0; i < cs->o.cameras; i++)
                        camera_send_audio(cs, &cs->cams[i], buf, pts);
        gst_sample_unref(sample);
        return GST_FLOW_OK;
}

/* Chunk k holds samples [k*F, (k+1)*F): it is captured, so pushed, at the
 * due time of its last sample, stamped with that of its first. */
static gpointer audio_clock_thread(gpointer data)
{
        struct audio_enc *a = data;
        struct camsim *cs = a->cs;
        int rate = cs->o.audio_rate, f = a->frame_samples;

        for (guint64 k = 0; !g_atomic_int_get(&cs->stopping); k++) {
                guint64 first = k * (guint64)f;
                GstBuffer *buf = gst_buffer_new_allocate(NULL, (gsize)f * 2, NULL);
                GstMapInfo map;

                sleep_until_ns(cs->start_ns + gst_util_uint64_scale_int(first + (guint64)f, GST_SECOND, rate));
                gst_buffer_map(buf, &map, GST_MAP_WRITE);
                audiocode_fill((int16_t *)map.data, (size_t)f, first, rate);
                gst_buffer_unmap(buf, &map);
                GST_BUFFER_PTS(buf) = gst_util_uint64_scale_int(first, GST_SECOND, rate);
                GST_BUFFER_DURATION(buf) = gst_util_uint64_scale_int((guint64)f, GST_SECOND, rate);
                GST_BUFFER_OFFSET(buf) = first;
                GST_BUFFER_OFFSET_END(buf) = first + (guint64)f;
                if (gst_app_src_push_buffer(GST_APP_SRC(a->src), buf) != GST_FLOW_OK)
                        break;
        }
        return NULL;
}

static const char *audio_encoder_element(enum camsim_audio audio)
{
        switch (audio) {
        case CAMSIM_AUDIO_AAC: return "avenc_aac";
        case CAMSIM_AUDIO_PCMA: return "alawenc";
        case CAMSIM_AUDIO_PCMU: return "mulawenc";
        default: return NULL;
        }
}

static int audio_start(struct camsim *cs)
{
        struct audio_enc *a = &cs->aenc;
        const struct opts *o = &cs->o;
        GError *err = NULL;
        gchar *desc;
        gint64 deadline;

        a->cs = cs;
        g_mutex_init(&a->lock);
        g_cond_init(&a->caps_cond);
        a->frame_samples = o->audio == CAMSIM_AUDIO_AAC ? AAC_FRAME_SAMPLES : 8000 * CAMSIM_G711_FRAME_MS / 1000;
        desc = g_strdup_printf("appsrc name=src format=time is-live=false block=true max-bytes=%d "
                               "caps=audio/x-raw,format=S16LE,layout=interleaved,rate=%d,channels=1 "
                               "! audioconvert ! %s %s ! appsink name=sink sync=false max-buffers=16",
                               a->frame_samples * 2 * 8, o->audio_rate, audio_encoder_element(o->audio),
                               o->audio == CAMSIM_AUDIO_AAC ? "bitrate=" G_STRINGIFY(AAC_BITRATE) : "");
        a->pipeline = gst_parse_launch(desc, &err);
        g_free(desc);
        if (!a->pipeline) {
                fprintf(stderr, "camsim: audio pipeline: %s (is gstreamer1.0-libav installed?)\n",
                        err ? err->message : "?");
                g_clear_error(&err);
                return -EINVAL;
        }
        a->src = gst_bin_get_by_name(GST_BIN(a->pipeline), "src");
        a->sink = gst_bin_get_by_name(GST_BIN(a->pipeline), "sink");
        gst_app_sink_set_callbacks(GST_APP_SINK(a->sink),
                                   &(GstAppSinkCallbacks){ .new_sample = on_audio_encoded }, a, NULL);
        if (gst_element_set_state(a->pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
                fprintf(stderr, "camsim: the %s audio encoder does not start\n", camsim_audio_name(o->audio));
                return -EIO;
        }
        a->thread = g_thread_new("camsim-audio", audio_clock_thread, a);
        /* every media's appsrc needs the encoded caps (AAC: its codec_data) */
        deadline = g_get_monotonic_time() + AUDIO_CAPS_WAIT_US;
        g_mutex_lock(&a->lock);
        while (!a->caps && g_cond_wait_until(&a->caps_cond, &a->lock, deadline))
                ;
        g_mutex_unlock(&a->lock);
        if (!a->caps) {
                fprintf(stderr, "camsim: the %s audio encoder gave no output\n", camsim_audio_name(o->audio));
                return -EIO;
        }
        return 0;
}

static void audio_stop(struct audio_enc *a)
{
        pipeline_stop(&a->pipeline, &a->src, &a->sink, &a->thread);
        if (a->caps)
                gst_caps_unref(a->caps);
}

/* ---- RTSP mounts --------------------------------------------------------------- */

static void on_media_unprepared(GstRTSPMedia *media, gpointer data)
{
        struct camera *cam = data;
        GstElement *bin = gst_rtsp_media_get_element(media);
        GstElement *src = gst_bin_get_by_name(GST_BIN(bin), "src");
        GstElement *asrc = gst_bin_get_by_name(GST_BIN(bin), "asrc");
        GstElement *msrc = gst_bin_get_by_name(GST_BIN(bin), "msrc");

        g_mutex_lock(&cam->lock);
        if (cam->src == src)
                g_clear_pointer(&cam->src, gst_object_unref);
        if (asrc && cam->asrc == asrc)
                g_clear_pointer(&cam->asrc, gst_object_unref);
        if (msrc && cam->msrc == msrc)
                g_clear_pointer(&cam->msrc, gst_object_unref);
        g_mutex_unlock(&cam->lock);
        gst_object_unref(src);
        if (asrc)
                gst_object_unref(asrc);
        if (msrc)
                gst_object_unref(msrc);
        gst_object_unref(bin);
}

#define RTCP_SETTLE_NS (2 * GST_SECOND) /* a new stream's reports are held back this long */

struct rtcp_watch {
        struct camera *cam;
        GstClockTime since; /* monotonic: the stream's first RTCP packet */
};

/* RTCP leaving the server: sender reports are held back while the camera
 * says so (--no-rtcp, --first-sr-delay).  A new stream's reports of its
 * first RTCP_SETTLE_NS are never sent: rtpbin maps RTP time to NTP in them
 * tens of milliseconds off its later reports (measured 12-71 ms, longest on
 * a busy start), which shows as a step in every client's timestamps when
 * the mapping settles; a real camera's clock does not jump like that. */
static GstPadProbeReturn rtcp_probe(GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
        struct rtcp_watch *w = data;
        struct camera *cam = w->cam;
        GstPadProbeReturn r = GST_PAD_PROBE_OK;
        GstClockTime now = now_mono_ns();

        g_mutex_lock(&cam->lock);
        if (w->since == 0)
                w->since = now;
        if (now - w->since < RTCP_SETTLE_NS || (cam->sr_block_until != NO_BLOCK && now < cam->sr_block_until)) {
                cam->rtcp_dropped++;
                r = GST_PAD_PROBE_DROP;
        }
        g_mutex_unlock(&cam->lock);
        return r;
}

static void rtcp_watch_pad(GstElement *rtpbin, GstPad *pad, gpointer data)
{
        struct rtcp_watch *w;

        if (!g_str_has_prefix(GST_PAD_NAME(pad), "send_rtcp_src"))
                return;
        w = g_new0(struct rtcp_watch, 1);
        w->cam = data;
        gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST, rtcp_probe, w, g_free);
}

static gboolean rtcp_watch_existing_pad(GstElement *rtpbin, GstPad *pad, gpointer data)
{
        rtcp_watch_pad(rtpbin, pad, data);
        return TRUE;
}

struct loss_state {
        struct camera *cam;
        guint32 rng, threshold; /* drop when the next random number is below */
};

static GstPadProbeReturn loss_probe(GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
        struct loss_state *l = data;

        if (xorshift32(&l->rng) >= l->threshold)
                return GST_PAD_PROBE_OK;
        g_mutex_lock(&l->cam->lock);
        l->cam->rtp_dropped++;
        g_mutex_unlock(&l->cam->lock);
        return GST_PAD_PROBE_DROP;
}

static void loss_attach(struct camsim *cs, struct camera *cam, GstElement *bin, const char *pay_name, int stream)
{
        GstElement *pay = gst_bin_get_by_name(GST_BIN(bin), pay_name);
        struct loss_state *l;
        GstPad *pad;

        if (!pay)
                return;
        l = g_new0(struct loss_state, 1);
        l->cam = cam;
        l->rng = (cs->o.seed * 2654435761u) ^ ((guint32)cam->index << 8) ^ (guint32)stream ^ 0x5bd1e995u;
        if (!l->rng)
                l->rng = 1;
        l->threshold = (guint32)(cs->o.loss_pct / 100.0 * 4294967295.0);
        pad = gst_element_get_static_pad(pay, "src");
        gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, loss_probe, l, g_free);
        gst_object_unref(pad);
        gst_object_unref(pay);
}

/* Real cameras send an RTCP sender report every few seconds; ask for one a
 * second so recorders learn the wall-clock mapping quickly.  And sync the
 * report on capture time, not send time: it then maps a frame's RTP time to
 * the NTP time it was captured, the same for every client however late its
 * first report comes. */
static void on_media_prepared(GstRTSPMedia *media, gpointer data)
{
        struct camera *cam = data;
        GstElement *element = gst_rtsp_media_get_element(media);
        GstObject *pipeline = gst_object_get_parent(GST_OBJECT(element));
        GstIterator *it;
        GValue v = G_VALUE_INIT;

        g_mutex_lock(&cam->lock);
        cam->media_start_ns = now_mono_ns();
        g_mutex_unlock(&cam->lock);
        for (guint i = 0; i < gst_rtsp_media_n_streams(media); i++) {
                GObject *session = gst_rtsp_stream_get_rtpsession(gst_rtsp_media_get_stream(media, i));

                if (session) {
                        g_object_set(session, "rtcp-min-interval", (guint64)RTCP_MIN_INTERVAL_NS, NULL);
                        g_object_unref(session);
                }
        }
        if (pipeline && GST_IS_BIN(pipeline)) {
                it = gst_bin_iterate_recurse(GST_BIN(pipeline));
                while (gst_iterator_next(it, &v) == GST_ITERATOR_OK) {
                        GstElement *e = g_value_get_object(&v);
                        if (g_str_has_prefix(GST_OBJECT_NAME(e), "rtpbin")) {
                                g_object_set(e, "rtcp-sync-send-time", FALSE, NULL);
                                gst_element_foreach_src_pad(e, rtcp_watch_existing_pad, cam);
                                g_signal_connect(e, "pad-added", G_CALLBACK(rtcp_watch_pad), cam);
                        }
                        g_value_reset(&v);
                }
                g_value_unset(&v);
                gst_iterator_free(it);
        }
        if (pipeline)
                gst_object_unref(pipeline);
        gst_object_unref(element);
}

static void set_rtp_ts_start(const struct camsim *cs, GstElement *bin, const char *pay_name)
{
        GstElement *pay = gst_bin_get_by_name(GST_BIN(bin), pay_name);

        if (!pay)
                return;
        if (cs->o.rtp_ts_start >= 0)
                g_object_set(pay, "timestamp-offset", (guint)cs->o.rtp_ts_start, NULL);
        gst_object_unref(pay);
}

struct mount {
        struct camsim *cs;
        struct camera *cam;
};

static void on_media_configure(GstRTSPMediaFactory *factory, GstRTSPMedia *media, gpointer data)
{
        struct mount *m = data;
        struct camsim *cs = m->cs;
        struct camera *cam = m->cam;
        GstElement *bin = gst_rtsp_media_get_element(media);
        GstElement *src = gst_bin_get_by_name(GST_BIN(bin), "src");
        GstElement *asrc = gst_bin_get_by_name(GST_BIN(bin), "asrc");
        GstElement *msrc = gst_bin_get_by_name(GST_BIN(bin), "msrc");

        if (asrc) {
                g_mutex_lock(&cs->aenc.lock);
                g_object_set(asrc, "caps", cs->aenc.caps, NULL);
                g_mutex_unlock(&cs->aenc.lock);
        }
        g_mutex_lock(&cam->lock);
        if (cam->src)
                gst_object_unref(cam->src);
        cam->src = src; /* takes the reference */
        if (cam->asrc)
                gst_object_unref(cam->asrc);
        cam->asrc = asrc;
        if (cam->msrc)
                gst_object_unref(cam->msrc);
        cam->msrc = msrc;
        cam->media_count++;
        /* a new stream begins at a keyframe, so its SDP carries the parameter
         * sets (rtph265pay learns them from the stream) */
        cam->resume_at_key = TRUE;
        cam->media_first = -1;
        g_mutex_unlock(&cam->lock);
        g_mutex_lock(&cam->enc->sprop_lock);
        if (cam->enc->sprop) {
                GstElement *pay = gst_bin_get_by_name(GST_BIN(bin), "pay0");
                g_object_set(pay, "sprop-parameter-sets", cam->enc->sprop, NULL);
                gst_object_unref(pay);
        }
        g_mutex_unlock(&cam->enc->sprop_lock);
        set_rtp_ts_start(cs, bin, "pay0");
        set_rtp_ts_start(cs, bin, "pay1");
        if (cs->o.loss_pct > 0) {
                loss_attach(cs, cam, bin, "pay0", 0);
                loss_attach(cs, cam, bin, "pay1", 1);
        }
        g_signal_connect(media, "unprepared", G_CALLBACK(on_media_unprepared), cam);
        g_signal_connect(media, "prepared", G_CALLBACK(on_media_prepared), cam);
        gst_object_unref(bin);
}

/* The media of one camera: video, and the sound when --audio. */
static gchar *media_launch(const struct opts *o)
{
        GString *s = g_string_new("( appsrc name=src is-live=true format=time caps=");
        const char *pay;

        g_string_append(s, o->codec == CAMSIM_H265 ? "video/x-h265,stream-format=byte-stream,alignment=au "
                                                     "! rtph265pay name=pay0 pt=96 config-interval=0"
                                                   : "video/x-h264,stream-format=byte-stream,alignment=au "
                                                     "! rtph264pay name=pay0 pt=96 config-interval=0");
        if (o->audio != CAMSIM_AUDIO_NONE)
                g_string_append(s, " appsrc name=asrc is-live=true format=time ! ");
        if (o->audio == CAMSIM_AUDIO_AAC) {
                g_string_append_printf(s, "camsimaacpay name=pay1 pt=97 frames-per-packet=%d", o->audio_fpp);
        } else if (o->audio != CAMSIM_AUDIO_NONE) {
                gint64 ptime = (gint64)o->audio_fpp * CAMSIM_G711_FRAME_MS * GST_MSECOND;

                pay = o->audio == CAMSIM_AUDIO_PCMA ? "rtppcmapay name=pay1 pt=8" : "rtppcmupay name=pay1 pt=0";
                g_string_append_printf(s, "%s min-ptime=%" G_GINT64_FORMAT " max-ptime=%" G_GINT64_FORMAT, pay, ptime,
                                       ptime);
        }
        if (o->metadata)
                g_string_append(s, " appsrc name=msrc is-live=true format=time "
                                   "caps=application/x-camsim-metadata ! rtpgstpay name=pay2 pt=98");
        g_string_append(s, " )");
        return g_string_free(s, FALSE);
}

static void mount_cameras(struct camsim *cs)
{
        GstRTSPMountPoints *mounts = gst_rtsp_server_get_mount_points(cs->server);
        gchar *launch = media_launch(&cs->o);

        for (int i = 0; i < cs->o.cameras; i++) {
                struct camera *cam = &cs->cams[i];
                GstRTSPMediaFactory *f = gst_rtsp_media_factory_new();
                gchar *path = g_strdup_printf("/%s", cam->id);
                struct mount *m = g_new0(struct mount, 1); /* lives as long as the server */

                m->cs = cs;
                m->cam = cam;
                gst_rtsp_media_factory_set_launch(f, launch);
                gst_rtsp_media_factory_set_shared(f, TRUE);
                if (cs->o.auth != CAMSIM_AUTH_NONE) /* DESCRIBE and SETUP construct or reach the media */
                        gst_rtsp_media_factory_add_role(f, CAMSIM_ROLE, GST_RTSP_PERM_MEDIA_FACTORY_ACCESS,
                                                        G_TYPE_BOOLEAN, TRUE, GST_RTSP_PERM_MEDIA_FACTORY_CONSTRUCT,
                                                        G_TYPE_BOOLEAN, TRUE, NULL);
                if (cs->o.udp_only)
                        gst_rtsp_media_factory_set_protocols(f, GST_RTSP_LOWER_TRANS_UDP);
                g_signal_connect(f, "media-configure", G_CALLBACK(on_media_configure), m);
                gst_rtsp_mount_points_add_factory(mounts, path, f); /* takes f */
                g_free(path);
        }
        g_free(launch);
        g_object_unref(mounts);
}

/* ---- the server's side of a session: PLAY ---------------------------------------- */

/* The camera a request's URL names: "/cam3", "/cam3/", "/cam3/stream=1". */
static struct camera *camera_of(struct camsim *cs, const GstRTSPContext *ctx)
{
        const char *p = ctx && ctx->uri && ctx->uri->abspath ? ctx->uri->abspath : "";
        size_t len;

        while (*p == '/')
                p++;
        len = strcspn(p, "/");
        for (int i = 0; i < cs->o.cameras; i++)
                if (strlen(cs->cams[i].id) == len && !strncmp(cs->cams[i].id, p, len))
                        return &cs->cams[i];
        return NULL;
}

/* --first-sr-delay: as servers that report only every few seconds, a client
 * that just started gets its first sender report late. */
static void on_play_request(GstRTSPClient *client, GstRTSPContext *ctx, gpointer data)
{
        struct camsim *cs = data;
        struct camera *cam = camera_of(cs, ctx);

        if (cam && cs->o.keyframe_on_play)
                encoder_request_keyframe(cam->enc); /* the new session starts at once, in the worker's probe */
        if (!cam || cs->o.no_rtcp || cs->o.first_sr_delay_s <= 0)
                return;
        g_mutex_lock(&cam->lock);
        cam->sr_block_until = now_mono_ns() + (GstClockTime)(cs->o.first_sr_delay_s * GST_SECOND);
        g_mutex_unlock(&cam->lock);
}

/* --play-range-offset: media servers answer a client that joins a running
 * stream with the position in it (Range: npt=27.27-), not with npt=now-. */
static void on_send_message(GstRTSPClient *client, GstRTSPContext *ctx, GstRTSPMessage *msg, gpointer data)
{
        struct camsim *cs = data;
        GstRTSPMethod method;
        struct camera *cam;
        const gchar *uri;
        GstRTSPVersion ver;
        GstClockTime since;
        gchar *range;

        if (!cs->o.play_range_offset || !ctx || !ctx->request ||
            gst_rtsp_message_get_type(msg) != GST_RTSP_MESSAGE_RESPONSE ||
            gst_rtsp_message_parse_request(ctx->request, &method, &uri, &ver) != GST_RTSP_OK ||
            method != GST_RTSP_PLAY || !(cam = camera_of(cs, ctx)))
                return;
        g_mutex_lock(&cam->lock);
        since = cam->media_start_ns ? now_mono_ns() - cam->media_start_ns : 0;
        g_mutex_unlock(&cam->lock);
        range = g_strdup_printf("npt=%.3f-", (double)since / GST_SECOND);
        gst_rtsp_message_remove_header(msg, GST_RTSP_HDR_RANGE, -1);
        gst_rtsp_message_take_header(msg, GST_RTSP_HDR_RANGE, range);
}

/* ---- authentication and the sessions of each stream ------------------------------ */

/* --auth: one user whose token carries CAMSIM_ROLE, which every mount lets
 * play.  Without credentials, or with wrong ones, DESCRIBE and SETUP get
 * 401 with a challenge (GstRTSPAuth answers OPTIONS, and requests in an
 * existing session, without asking, as many cameras do).  Digest is
 * GStreamer's: MD5, no qop, a nonce bound to the first connection using it. */
static void auth_setup(struct camsim *cs)
{
        GstRTSPAuth *auth = gst_rtsp_auth_new();
        GstRTSPToken *token = gst_rtsp_token_new(GST_RTSP_TOKEN_MEDIA_FACTORY_ROLE, G_TYPE_STRING, CAMSIM_ROLE, NULL);

        gst_rtsp_auth_set_realm(auth, CAMSIM_REALM);
        if (cs->o.auth == CAMSIM_AUTH_BASIC) {
                gchar *basic = gst_rtsp_auth_make_basic(cs->o.auth_user, cs->o.auth_pass);

                gst_rtsp_auth_add_basic(auth, basic, token);
                gst_rtsp_auth_set_supported_methods(auth, GST_RTSP_AUTH_BASIC);
                g_free(basic);
        } else {
                gst_rtsp_auth_add_digest(auth, cs->o.auth_user, cs->o.auth_pass, token);
                gst_rtsp_auth_set_supported_methods(auth, GST_RTSP_AUTH_DIGEST);
        }
        gst_rtsp_token_unref(token);
        gst_rtsp_server_set_auth(cs->server, auth);
        g_object_unref(auth);
}

/* Appends an event to the camera's ring.  Under sessions_lock.  The id is
 * kept JSON-safe (GStreamer's ids are; anything else becomes '?'). */
static void sess_log(struct camera *cam, enum sess_event_kind kind, const char *id)
{
        struct sess_event *e = &cam->events[cam->next_event];
        size_t i;

        e->t_us = g_get_real_time();
        e->kind = kind;
        for (i = 0; id && id[i] && i + 1 < sizeof(e->session); i++)
                e->session[i] = (id[i] < 0x20 || id[i] == '"' || id[i] == '\\' || id[i] == 0x7f) ? '?' : id[i];
        e->session[i] = '\0';
        cam->next_event = (cam->next_event + 1) % CAMSIM_SESSION_EVENTS_MAX;
        if (cam->n_events < CAMSIM_SESSION_EVENTS_MAX)
                cam->n_events++;
}

static const char *session_id(GstRTSPSession *s)
{
        return s ? gst_rtsp_session_get_sessionid(s) : "";
}

/* The stream's entry for session s, or NULL.  Under sessions_lock. */
static GList *sess_find(struct camera *cam, const GstRTSPSession *s)
{
        for (GList *l = cam->sessions.head; l; l = l->next)
                if (((struct rtsp_sess *)l->data)->session == s)
                        return l;
        return NULL;
}

static void rtsp_sess_free(gpointer data)
{
        struct rtsp_sess *s = data;

        g_object_unref(s->session);
        g_object_unref(s->client);
        g_free(s);
}

/* --max-sessions with refuse: a SETUP that would open one session too many
 * on the stream is answered 453 Not Enough Bandwidth, as Hikvision and
 * Dahua cameras do.  A SETUP in a session the stream already counts (its
 * second stream, the same Session header) is no new session.  The check
 * here and the count in on_setup_request are one step: every client is
 * served by the server's one client thread (max-threads 1, set in main). */
static GstRTSPStatusCode on_pre_setup_request(GstRTSPClient *client, GstRTSPContext *ctx, gpointer data)
{
        struct camsim *cs = data;
        struct camera *cam = camera_of(cs, ctx);
        GstRTSPStatusCode code = GST_RTSP_STS_OK;

        if (!cam || cs->o.policy != CAMSIM_POLICY_REFUSE)
                return code;
        g_mutex_lock(&cs->sessions_lock);
        if (!(ctx->session && sess_find(cam, ctx->session)) &&
            g_queue_get_length(&cam->sessions) >= (guint)cs->o.max_sessions) {
                cam->refused++;
                sess_log(cam, SESS_REFUSED, session_id(ctx->session));
                code = GST_RTSP_STS_NOT_ENOUGH_BANDWIDTH;
        }
        g_mutex_unlock(&cs->sessions_lock);
        return code;
}

/* A SETUP succeeded (its 200 is sent): a session the stream did not count
 * yet opens.  With the kick policy the sessions past the limit end, the
 * oldest first, by closing their client's connection, as consumer cameras
 * do; a session of the client asking is never kicked (that would end its
 * own new one). */
static void on_setup_request(GstRTSPClient *client, GstRTSPContext *ctx, gpointer data)
{
        struct camsim *cs = data;
        struct camera *cam = camera_of(cs, ctx);
        GPtrArray *kicked = g_ptr_array_new_with_free_func(rtsp_sess_free);
        struct rtsp_sess *s;

        if (!cam || !ctx->session)
                goto out;
        g_mutex_lock(&cs->sessions_lock);
        if (!sess_find(cam, ctx->session)) {
                s = g_new0(struct rtsp_sess, 1);
                s->session = g_object_ref(ctx->session);
                s->client = g_object_ref(client);
                snprintf(s->id, sizeof(s->id), "%s", session_id(ctx->session));
                g_queue_push_tail(&cam->sessions, s);
                cam->opened++;
                sess_log(cam, SESS_OPEN, s->id);
        }
        for (GList *l = cam->sessions.head, *next; l && cs->o.policy == CAMSIM_POLICY_KICK &&
                                                   g_queue_get_length(&cam->sessions) > (guint)cs->o.max_sessions;
             l = next) {
                struct rtsp_sess *old = l->data;

                next = l->next;
                if (old->client == client)
                        continue;
                g_queue_delete_link(&cam->sessions, l);
                cam->kicked++;
                sess_log(cam, SESS_KICKED, old->id); /* its end: no close event follows */
                g_ptr_array_add(kicked, old);
        }
        g_mutex_unlock(&cs->sessions_lock);
        /* outside the lock: closing emits "closed" (on_client_closed) */
        for (guint i = 0; i < kicked->len; i++)
                gst_rtsp_client_close(((struct rtsp_sess *)g_ptr_array_index(kicked, i))->client);
out:
        g_ptr_array_unref(kicked);
}

/* Ends every session the streams count that matches: of `client` (its
 * connection closed), or `session` (TEARDOWN, or timed out). */
static void sessions_end(struct camsim *cs, const GstRTSPClient *client, const GstRTSPSession *session)
{
        GPtrArray *gone = g_ptr_array_new_with_free_func(rtsp_sess_free);

        g_mutex_lock(&cs->sessions_lock);
        for (int i = 0; i < cs->o.cameras; i++) {
                struct camera *cam = &cs->cams[i];

                for (GList *l = cam->sessions.head, *next; l; l = next) {
                        struct rtsp_sess *s = l->data;

                        next = l->next;
                        if ((client && s->client != client) || (session && s->session != session))
                                continue;
                        g_queue_delete_link(&cam->sessions, l);
                        sess_log(cam, SESS_CLOSE, s->id);
                        g_ptr_array_add(gone, s);
                }
        }
        g_mutex_unlock(&cs->sessions_lock);
        g_ptr_array_unref(gone); /* unreferences outside the lock */
}

/* GStreamer keeps a closed connection's sessions in its pool until they
 * time out; for the stream they end with the connection (their media is
 * stopped then: stop-on-disconnect). */
static void on_client_closed(GstRTSPClient *client, gpointer data)
{
        sessions_end(data, client, NULL);
}

static void on_session_removed(GstRTSPSessionPool *pool, GstRTSPSession *session, gpointer data)
{
        sessions_end(data, NULL, session);
}

/* Sessions without keep-alive for their timeout end (GStreamer's pool only
 * drops them when asked). */
static gboolean on_session_cleanup(gpointer data)
{
        GstRTSPSessionPool *pool = gst_rtsp_server_get_session_pool(((struct camsim *)data)->server);

        gst_rtsp_session_pool_cleanup(pool);
        g_object_unref(pool);
        return G_SOURCE_CONTINUE;
}

/* A 401 to a request that carried credentials is a failed attempt; a 401
 * to one without is the challenge every client gets first. */
static void on_auth_reply(GstRTSPClient *client, GstRTSPContext *ctx, GstRTSPMessage *msg, gpointer data)
{
        struct camsim *cs = data;
        GstRTSPStatusCode code;
        struct camera *cam;
        gchar *authz;

        if (!ctx || !ctx->request || gst_rtsp_message_get_type(msg) != GST_RTSP_MESSAGE_RESPONSE ||
            gst_rtsp_message_parse_response(msg, &code, NULL, NULL) != GST_RTSP_OK ||
            code != GST_RTSP_STS_UNAUTHORIZED ||
            gst_rtsp_message_get_header(ctx->request, GST_RTSP_HDR_AUTHORIZATION, &authz, 0) != GST_RTSP_OK ||
            !(cam = camera_of(cs, ctx)))
                return;
        g_mutex_lock(&cs->sessions_lock);
        cam->auth_failed++;
        sess_log(cam, SESS_AUTH_FAILED, session_id(ctx->session));
        g_mutex_unlock(&cs->sessions_lock);
}

static void on_client_connected(GstRTSPServer *server, GstRTSPClient *client, gpointer data)
{
        struct camsim *cs = data;

        g_signal_connect(client, "play-request", G_CALLBACK(on_play_request), data);
        g_signal_connect(client, "send-message", G_CALLBACK(on_send_message), data);
        g_signal_connect(client, "pre-setup-request", G_CALLBACK(on_pre_setup_request), data);
        g_signal_connect(client, "setup-request", G_CALLBACK(on_setup_request), data);
        g_signal_connect(client, "closed", G_CALLBACK(on_client_closed), data);
        if (cs->o.auth != CAMSIM_AUTH_NONE)
                g_signal_connect(client, "send-message", G_CALLBACK(on_auth_reply), data);
}

/* ---- control port ---------------------------------------------------------------- */

struct drop_ctx {
        char path[CAMSIM_CAMERA_ID_MAX + 1]; /* "" = every client */
        gboolean found;
};

static GstRTSPFilterResult session_has_path(GstRTSPClient *client, GstRTSPSession *sess, gpointer data)
{
        struct drop_ctx *d = data;
        gint matched;

        if (gst_rtsp_session_get_media(sess, d->path, &matched))
                d->found = TRUE;
        return GST_RTSP_FILTER_KEEP;
}

static GstRTSPFilterResult client_drop(GstRTSPServer *server, GstRTSPClient *client, gpointer data)
{
        struct drop_ctx *d = data;

        if (d->path[0]) {
                d->found = FALSE;
                gst_rtsp_client_session_filter(client, session_has_path, d);
                if (!d->found)
                        return GST_RTSP_FILTER_KEEP;
        }
        return GST_RTSP_FILTER_REMOVE;
}

struct drop_req {
        struct camsim *cs;
        struct drop_ctx ctx;
};

/* Runs in the main loop, which owns the RTSP server. */
static gboolean drop_idle(gpointer data)
{
        struct drop_req *r = data;

        gst_rtsp_server_client_filter(r->cs->server, client_drop, &r->ctx);
        g_free(r);
        return G_SOURCE_REMOVE;
}

static void camsim_drop(struct camsim *cs, const char *camera)
{
        struct drop_req *r = g_new0(struct drop_req, 1);

        r->cs = cs;
        if (camera[0])
                snprintf(r->ctx.path, sizeof(r->ctx.path), "/%s", camera);
        g_idle_add(drop_idle, r);
}

/* "open":..,"opened":..,"refused":..,"kicked":..,"auth_failed":.. of one
 * camera.  Under sessions_lock. */
static void sessions_counters_json(GString *s, const struct camera *c)
{
        g_string_append_printf(s,
                               "\"open\":%u,\"opened\":%" G_GUINT64_FORMAT ",\"refused\":%" G_GUINT64_FORMAT
                               ",\"kicked\":%" G_GUINT64_FORMAT ",\"auth_failed\":%" G_GUINT64_FORMAT,
                               g_queue_get_length((GQueue *)&c->sessions), c->opened, c->refused, c->kicked,
                               c->auth_failed);
}

/* `sessions [CAM]`: {"cam1":{"open":1,...,"events":[{"t":..,"event":"open","session":"id"},...]},...}
 * with each camera's last CAMSIM_SESSION_EVENTS_MAX events, the oldest first.
 * NULL when the camera named does not exist. */
static gchar *camsim_sessions_json(struct camsim *cs, const char *camera)
{
        static const char *const names[] = { "open", "close", "refused", "kicked", "auth_failed" };
        GString *s = g_string_new("{");
        int hits = 0;

        g_mutex_lock(&cs->sessions_lock);
        for (int i = 0; i < cs->o.cameras; i++) {
                const struct camera *c = &cs->cams[i];

                if (camera[0] && strcmp(camera, c->id))
                        continue;
                g_string_append_printf(s, "%s\"%s\":{", hits++ ? "," : "", c->id);
                sessions_counters_json(s, c);
                g_string_append(s, ",\"events\":[");
                for (unsigned k = 0; k < c->n_events; k++) {
                        const struct sess_event *e =
                                &c->events[(c->next_event + CAMSIM_SESSION_EVENTS_MAX - c->n_events + k) %
                                           CAMSIM_SESSION_EVENTS_MAX];

                        g_string_append_printf(s, "%s{\"t\":%.6f,\"event\":\"%s\",\"session\":\"%s\"}", k ? "," : "",
                                               (double)e->t_us / G_USEC_PER_SEC, names[e->kind], e->session);
                }
                g_string_append(s, "]}");
        }
        g_mutex_unlock(&cs->sessions_lock);
        g_string_append(s, "}");
        if (!hits) {
                g_string_free(s, TRUE);
                return NULL;
        }
        return g_string_free(s, FALSE);
}

static gchar *camsim_status_json(struct camsim *cs)
{
        GString *s = g_string_new(NULL);
        GstClockTime now = now_mono_ns();

        g_string_append_printf(s, "{\"frame\":%" G_GUINT64_FORMAT ",\"fps\":%d,\"audio_rate\":%d,\"cameras\":[",
                               now > cs->start_ns ? (now - cs->start_ns) / cs->frame_ns : 0, cs->o.fps,
                               cs->o.audio == CAMSIM_AUDIO_NONE ? 0 : cs->o.audio_rate);
        for (int i = 0; i < cs->o.cameras; i++) {
                struct camera *c = &cs->cams[i];
                GString *sess = g_string_new(NULL);

                g_mutex_lock(&cs->sessions_lock); /* not nested with c->lock */
                sessions_counters_json(sess, c);
                g_mutex_unlock(&cs->sessions_lock);
                g_mutex_lock(&c->lock);
                g_string_append_printf(s,
                                       "%s{\"id\":\"%s\",\"live\":%s,\"sent\":%" G_GUINT64_FORMAT
                                       ",\"audio_sent\":%" G_GUINT64_FORMAT ",\"media_first\":%" G_GINT64_FORMAT
                                       ",\"medias\":%" G_GUINT64_FORMAT
                                       ",\"outage_s\":%.3f,\"corrupt_left\":%u,\"rtp_dropped\":%" G_GUINT64_FORMAT
                                       ",\"rtcp_dropped\":%" G_GUINT64_FORMAT ",\"sessions\":{%s}}",
                                       i ? "," : "", c->id, c->src ? "true" : "false", c->frames_sent, c->audio_sent,
                                       c->media_first, c->media_count,
                                       c->outage_until > now ? (double)(c->outage_until - now) / GST_SECOND : 0.0,
                                       c->corrupt_left, c->rtp_dropped, c->rtcp_dropped, sess->str);
                g_mutex_unlock(&c->lock);
                g_string_free(sess, TRUE);
        }
        g_string_append(s, "]}");
        return g_string_free(s, FALSE);
}

/* Executes one command line; returns the reply line (caller frees). */
static gchar *camsim_control_exec(struct camsim *cs, const char *line, size_t len)
{
        struct camsim_cmd cmd;
        char err[128];
        int hits = 0;

        if (camsim_cmd_parse(line, len, &cmd, err, sizeof(err)) < 0)
                return g_strdup_printf("err %s", err);
        if (cmd.kind == CAMSIM_CMD_STATUS)
                return camsim_status_json(cs);
        if (cmd.kind == CAMSIM_CMD_SESSIONS) {
                gchar *json = camsim_sessions_json(cs, cmd.camera);

                return json ? json : g_strdup_printf("err no camera %s", cmd.camera);
        }
        if (cmd.kind == CAMSIM_CMD_DROP) {
                camsim_drop(cs, cmd.camera);
                return g_strdup("ok");
        }
        for (int i = 0; i < cs->o.cameras; i++) {
                struct camera *c = &cs->cams[i];

                if (cmd.camera[0] && strcmp(cmd.camera, c->id))
                        continue;
                hits++;
                g_mutex_lock(&c->lock);
                if (cmd.kind == CAMSIM_CMD_OUTAGE)
                        c->outage_until = now_mono_ns() + (GstClockTime)(cmd.seconds * GST_SECOND);
                else
                        c->corrupt_left = cmd.frames;
                g_mutex_unlock(&c->lock);
        }
        return hits ? g_strdup("ok") : g_strdup_printf("err no camera %s", cmd.camera);
}

/* One thread per control connection (GThreadedSocketService).  A line longer
 * than CAMSIM_CMD_LINE_MAX gets one error reply and is skipped to its end. */
static void control_reply(GOutputStream *out, const char *reply)
{
        gchar *line = g_strconcat(reply, "\n", NULL);

        g_output_stream_write_all(out, line, strlen(line), NULL, NULL, NULL);
        g_free(line);
}

static gboolean on_control_run(GThreadedSocketService *svc, GSocketConnection *conn, GObject *source,
                               gpointer data)
{
        GInputStream *in = g_io_stream_get_input_stream(G_IO_STREAM(conn));
        GOutputStream *out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
        char buf[CAMSIM_CMD_LINE_MAX + 2] = { 0 };
        gboolean skipping = FALSE;
        gsize have = 0;

        for (;;) {
                gssize r = g_input_stream_read(in, buf + have, sizeof(buf) - have, NULL, NULL);
                char *nl;

                if (r <= 0)
                        break;
                have += (gsize)r;
                while ((nl = memchr(buf, '\n', have))) {
                        gsize l = (gsize)(nl - buf);

                        if (!skipping) {
                                gchar *reply = camsim_control_exec(data, buf, l);
                                control_reply(out, reply);
                                g_free(reply);
                        }
                        skipping = FALSE;
                        memmove(buf, nl + 1, have - l - 1);
                        have -= l + 1;
                }
                if (have == sizeof(buf)) {
                        if (!skipping)
                                control_reply(out, "err line too long");
                        skipping = TRUE;
                        have = 0;
                }
        }
        return TRUE;
}

static int control_start(struct camsim *cs, guint16 *port)
{
        GSocketService *svc = g_threaded_socket_service_new(8);
        GInetAddress *ia = g_inet_address_new_from_string(cs->o.bind);
        GSocketAddress *sa, *eff = NULL;
        GError *err = NULL;

        if (!ia) {
                fprintf(stderr, "camsim: --bind %s is not an IP address\n", cs->o.bind);
                return -EINVAL;
        }
        sa = g_inet_socket_address_new(ia, (guint16)cs->o.control_port);
        if (!g_socket_listener_add_address(G_SOCKET_LISTENER(svc), sa, G_SOCKET_TYPE_STREAM,
                                           G_SOCKET_PROTOCOL_TCP, NULL, &eff, &err)) {
                fprintf(stderr, "camsim: control port %d: %s\n", cs->o.control_port, err->message);
                g_error_free(err);
                return -EADDRINUSE;
        }
        *port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(eff));
        g_signal_connect(svc, "run", G_CALLBACK(on_control_run), cs);
        g_socket_service_start(svc);
        g_object_unref(eff);
        g_object_unref(sa);
        g_object_unref(ia);
        return 0;
}

/* ---- main ------------------------------------------------------------------------ */

/* The server's signals, its authentication, and one client thread for
 * every connection (GStreamer's default, made explicit: the session
 * limit's check-then-count relies on it). */
static void server_setup(struct camsim *cs)
{
        GstRTSPThreadPool *threads = gst_rtsp_server_get_thread_pool(cs->server);
        GstRTSPSessionPool *pool = gst_rtsp_server_get_session_pool(cs->server);

        gst_rtsp_thread_pool_set_max_threads(threads, 1);
        g_object_unref(threads);
        g_signal_connect(pool, "session-removed", G_CALLBACK(on_session_removed), cs);
        g_object_unref(pool);
        g_signal_connect(cs->server, "client-connected", G_CALLBACK(on_client_connected), cs);
        if (cs->o.auth != CAMSIM_AUTH_NONE)
                auth_setup(cs);
}

static gboolean on_quit_signal(gpointer data)
{
        g_main_loop_quit(((struct camsim *)data)->loop);
        return G_SOURCE_CONTINUE;
}

static gboolean on_drop_signal(gpointer data)
{
        camsim_drop(data, "");
        return G_SOURCE_CONTINUE;
}

int main(int argc, char **argv)
{
        static struct camsim cs; /* large; lives for the whole process */
        guint16 control_port = 0;
        gchar *service;
        int r;

        gst_init(&argc, &argv);
        r = camsim_opts_parse(argc, argv, &cs.o, stderr);
        if (r != 0)
                return r > 0 ? 0 : 2;
        /* the password stays in cs.o; ps and /proc/PID/cmdline show stars */
        if (cs.o.auth_secret)
                memset(cs.o.auth_secret, '*', strlen(cs.o.auth_secret));
        r = 1;
        if (!camsim_aacpay_register()) {
                fprintf(stderr, "camsim: cannot register the AAC payloader\n");
                return 1;
        }
        g_object_set(gst_system_clock_obtain(), "clock-type", GST_CLOCK_TYPE_MONOTONIC, NULL);
        cs.frame_ns = GST_SECOND / (GstClockTime)cs.o.fps;
        cs.start_ns = now_mono_ns() + 100 * GST_MSECOND;
        cs.loop = g_main_loop_new(NULL, FALSE);
        g_mutex_init(&cs.sessions_lock);

        for (int i = 0; i < cs.o.cameras; i++) {
                struct camera *c = &cs.cams[i];
                struct encoder *e = &cs.encs[i % cs.o.encoders];

                snprintf(c->id, sizeof(c->id), "cam%d", i + 1);
                c->index = i;
                g_mutex_init(&c->lock);
                c->media_first = -1;
                c->enc = e;
                c->sr_block_until = cs.o.no_rtcp ? BLOCK_FOREVER : NO_BLOCK;
                e->cams[e->ncams++] = c;
        }
        for (int i = 0; i < cs.o.encoders; i++)
                if (encoder_start(&cs, &cs.encs[i], i) < 0)
                        goto out;
        if (cs.o.audio != CAMSIM_AUDIO_NONE && audio_start(&cs) < 0)
                goto out;

        cs.server = gst_rtsp_server_new();
        service = g_strdup_printf("%d", cs.o.port);
        gst_rtsp_server_set_address(cs.server, cs.o.bind);
        gst_rtsp_server_set_service(cs.server, service);
        g_free(service);
        server_setup(&cs);
        mount_cameras(&cs);
        if (gst_rtsp_server_attach(cs.server, NULL) == 0) {
                fprintf(stderr, "camsim: cannot listen on %s:%d\n", cs.o.bind, cs.o.port);
                goto out;
        }
        if (control_start(&cs, &control_port) < 0)
                goto out;
        g_timeout_add_seconds(SESSION_CLEANUP_S, on_session_cleanup, &cs);
        g_unix_signal_add(SIGTERM, on_quit_signal, &cs);
        g_unix_signal_add(SIGINT, on_quit_signal, &cs);
        g_unix_signal_add(SIGUSR1, on_drop_signal, &cs);

        printf("camsim ready rtsp_port=%d control_port=%u cameras=%d fps=%d gop=%d encoders=%d codec=%s "
               "bframes=%d audio=%s audio_rate=%d auth=%s max_sessions=%d policy=%s\n",
               gst_rtsp_server_get_bound_port(cs.server), control_port, cs.o.cameras, cs.o.fps, cs.o.gop,
               cs.o.encoders, camsim_codec_name(cs.o.codec), cs.o.bframes, camsim_audio_name(cs.o.audio),
               cs.o.audio == CAMSIM_AUDIO_NONE ? 0 : cs.o.audio_rate, camsim_auth_name(cs.o.auth), cs.o.max_sessions,
               camsim_policy_name(cs.o.policy));
        fflush(stdout);
        g_main_loop_run(cs.loop);
        r = 0;
out:
        g_atomic_int_set(&cs.stopping, 1);
        for (int i = 0; i < cs.o.encoders; i++)
                encoder_stop(&cs.encs[i]);
        if (cs.o.audio != CAMSIM_AUDIO_NONE)
                audio_stop(&cs.aenc);
        return r;
}
