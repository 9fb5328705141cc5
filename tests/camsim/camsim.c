/* camsim: a set of simulated IP cameras on GStreamer's RTSP server, for tests.
 *
 * Each encoder is a clock thread that paints frame n (framecode grid + a moving
 * bar + a noise patch) at start + n/fps, an x264 pipeline, and a fan-out that
 * copies each encoded access unit, with a per-camera SEI (camera id, n)
 * prepended, into the appsrc of every camera it feeds.  Frame numbers count
 * time since camsim started, so they continue across client connects and
 * disconnects like a real camera's; each mount is a shared media, so every
 * client of one camera receives the same encoded frames.  Cameras share
 * --encoders encoders round-robin (default 1: cheap, and the SEI still makes
 * every camera's payload unique).  Faults come over the control port
 * (control.h).  Invariant: camera->src is only touched under camera->lock. */
#include "control.h"
#include "framecode.h"

#include <errno.h>
#include <getopt.h>
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

#define CAMSIM_MAX_CAMERAS 64
#define CAMSIM_MAX_ENCODERS CAMSIM_MAX_CAMERAS
#define AU_MAX_BYTES (4u << 20) /* an access unit larger than this is dropped */
#define RTCP_MIN_INTERVAL_NS (1 * GST_SECOND) /* sender reports every second */

struct opts {
        int cameras, encoders, width, height, fps, bitrate_kbps, gop;
        int port, control_port;
        const char *bind;
};

struct encoder;

struct camera {
        char id[CAMSIM_CAMERA_ID_MAX];
        struct encoder *enc;
        GMutex lock;                /* guards everything below */
        GstElement *src;            /* appsrc of the live shared media, or NULL */
        GstClockTime outage_until;  /* no frames before this monotonic time */
        gboolean resume_at_key;     /* after an outage: restart at a keyframe, as a rebooted camera does */
        unsigned corrupt_left;      /* frames still to send as garbage */
        guint64 frames_sent;
        guint64 media_count;        /* medias created for this mount so far */
};

struct encoder {
        struct camsim *cs;
        GstElement *pipeline, *src, *sink;
        GThread *thread;
        struct camera *cams[CAMSIM_MAX_CAMERAS];
        int ncams;
        guint8 *background; /* I420 template */
        GMutex sprop_lock;
        gchar *sprop;       /* "SPS,PPS" in base64 for the SDP, once seen */
        gint key_requested; /* atomic: a forced keyframe is on its way */
        gsize frame_bytes;
        guint32 rng;
};

struct camsim {
        struct opts o;
        GstClockTime start_ns, frame_ns; /* frame n is due at start + n * frame_ns */
        gint stopping;                   /* atomic */
        GMainLoop *loop;
        GstRTSPServer *server;
        struct camera cams[CAMSIM_MAX_CAMERAS];
        struct encoder encs[CAMSIM_MAX_ENCODERS];
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

/* ---- picture ----------------------------------------------------------------- */

static void background_init(struct encoder *e, const struct opts *o)
{
        guint8 *y = e->background, *uv = y + (gsize)o->width * o->height;

        for (int r = 0; r < o->height; r++)
                for (int c = 0; c < o->width; c++)
                        y[(gsize)r * o->width + c] = (guint8)(60 + (c * 100) / o->width + (r * 40) / o->height);
        memset(uv, 128, e->frame_bytes - (gsize)o->width * o->height);
}

/* Frame n: background, a bar moving 4 px a frame, a noise patch sized so x264
 * has real work near the target bitrate, and the framecode grid. */
static void picture_paint(struct encoder *e, const struct opts *o, guint8 *frame, guint32 n)
{
        struct framecode_geom g;
        int bar_x = (int)((n * 4u) % (guint32)o->width), bar_w = o->width / 32;
        int nw = o->width / 4, nh = o->height / 4;

        memcpy(frame, e->background, e->frame_bytes);
        for (int r = o->height / 2; r < o->height; r++)
                memset(frame + (gsize)r * o->width + bar_x, 235, (gsize)MIN(bar_w, o->width - bar_x));
        for (int r = o->height - nh; r < o->height; r++) {
                guint8 *p = frame + (gsize)r * o->width + (o->width - nw);
                for (int c = 0; c < nw; c += 4) {
                        guint32 v = xorshift32(&e->rng);
                        memcpy(p + c, &v, (gsize)MIN(4, nw - c));
                }
        }
        if (framecode_geometry(o->width, o->height, &g) == 0)
                framecode_paint(frame, o->width, &g, n);
}

/* ---- fan-out to cameras ------------------------------------------------------- */

/* Garbage that keeps the start codes, so the stream still splits into NALs. */
static void payload_corrupt(guint8 *p, gsize len, guint32 seed)
{
        for (gsize i = 0; i + 4 < len; i++) {
                if (p[i] == 0 && p[i + 1] == 0 && p[i + 2] == 1) {
                        i += 4; /* start code and NAL header stay */
                        continue;
                }
                p[i] = (guint8)(xorshift32(&seed) | 1); /* never 0: no fake start codes */
        }
}

/* Offset of the first VCL NAL's start code in an Annex-B access unit. */
static gsize first_vcl_offset(const guint8 *p, gsize len)
{
        for (gsize i = 0; i + 3 < len; i++)
                if (p[i] == 0 && p[i + 1] == 0 && p[i + 2] == 1) {
                        int type = p[i + 3] & 0x1f;
                        gsize sc = (i > 0 && p[i - 1] == 0) ? i - 1 : i;
                        if (type == 1 || type == 5)
                                return sc;
                        i += 2;
                }
        return 0;
}

/* Asks x264 for an IDR soon (once per request window), so a camera coming
 * back from an outage does not wait a whole GOP.  The other cameras on the
 * encoder just get one more keyframe. */
static void encoder_request_keyframe(struct encoder *e)
{
        if (g_atomic_int_compare_and_exchange(&e->key_requested, 0, 1))
                gst_element_send_event(e->sink, gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE,
                                                                                           TRUE, 0));
}

static void camera_send(struct camsim *cs, struct camera *cam, const guint8 *au, gsize len, gboolean key,
                        guint32 n)
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
        if (!src)
                return;

        base = gst_element_get_base_time(src);
        if (GST_STATE(src) != GST_STATE_PLAYING || base == GST_CLOCK_TIME_NONE || due < base)
                goto out;

        sei_len = framecode_sei_build(sei, sizeof(sei), cam->id, n);
        if (sei_len < 0)
                goto out;
        vcl = first_vcl_offset(au, len);
        buf = gst_buffer_new_allocate(NULL, len + (gsize)sei_len, NULL);
        gst_buffer_map(buf, &map, GST_MAP_WRITE);
        memcpy(map.data, au, vcl);
        memcpy(map.data + vcl, sei, (gsize)sei_len);
        memcpy(map.data + vcl + sei_len, au + vcl, len - vcl);
        if (corrupt)
                payload_corrupt(map.data + vcl + sei_len, len - vcl, n * 2654435761u + 1);
        gst_buffer_unmap(buf, &map);
        GST_BUFFER_PTS(buf) = GST_BUFFER_DTS(buf) = due - base;
        GST_BUFFER_DURATION(buf) = cs->frame_ns;
        if (!key)
                GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_DELTA_UNIT);
        if (gst_app_src_push_buffer(GST_APP_SRC(src), buf) == GST_FLOW_OK) {
                g_mutex_lock(&cam->lock);
                cam->frames_sent++;
                g_mutex_unlock(&cam->lock);
        }
out:
        gst_object_unref(src);
}

/* Remember the first SPS and PPS, so each mount's SDP can carry them
 * (sprop-parameter-sets) as real cameras' do. */
static void encoder_note_sprop(struct encoder *e, const guint8 *p, gsize len)
{
        const guint8 *nal[2] = { NULL, NULL };
        gsize nal_len[2] = { 0, 0 };
        const guint8 *cur = NULL;
        int cur_type = 0;

        if (e->sprop)
                return;
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
                g_mutex_lock(&e->sprop_lock);
                e->sprop = g_strdup_printf("%s,%s", sps, pps);
                g_mutex_unlock(&e->sprop_lock);
                g_free(sps);
                g_free(pps);
        }
}

static GstFlowReturn on_encoded(GstAppSink *sink, gpointer data)
{
        struct encoder *e = data;
        GstSample *sample = gst_app_sink_pull_sample(sink);
        GstBuffer *buf;
        GstClockTime pts;
        GstMapInfo map;
        guint32 n;

        if (!sample)
                return GST_FLOW_EOS;
        buf = gst_sample_get_buffer(sample);
        /* x264enc shifts its output segment (by 1000 h); running time is ours */
        pts = buf ? gst_segment_to_running_time(gst_sample_get_segment(sample), GST_FORMAT_TIME,
                                                GST_BUFFER_PTS(buf))
                  : GST_CLOCK_TIME_NONE;
        if (pts != GST_CLOCK_TIME_NONE && gst_buffer_map(buf, &map, GST_MAP_READ)) {
                n = (guint32)((pts + e->cs->frame_ns / 2) / e->cs->frame_ns);
                if (!GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_DELTA_UNIT))
                        g_atomic_int_set(&e->key_requested, 0);
                encoder_note_sprop(e, map.data, map.size);
                if (map.size <= AU_MAX_BYTES)
                        for (int i = 0; i < e->ncams; i++)
                                camera_send(e->cs, e->cams[i], map.data, map.size,
                                            !GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_DELTA_UNIT), n);
                gst_buffer_unmap(buf, &map);
        }
        gst_sample_unref(sample);
        return GST_FLOW_OK;
}

/* ---- encoder ----------------------------------------------------------------- */

/* Paints and pushes frame n at its due time; catches up without skipping a
 * number when it falls behind, so numbers never jump under load. */
static gpointer encoder_clock_thread(gpointer data)
{
        struct encoder *e = data;
        struct camsim *cs = e->cs;

        for (guint32 n = 0; !g_atomic_int_get(&cs->stopping); n++) {
                GstClockTime due = cs->start_ns + (GstClockTime)n * cs->frame_ns;
                struct timespec ts = { .tv_sec = (time_t)(due / GST_SECOND),
                                       .tv_nsec = (long)(due % GST_SECOND) };
                GstBuffer *buf;
                GstMapInfo map;

                while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                        ;
                buf = gst_buffer_new_allocate(NULL, e->frame_bytes, NULL);
                gst_buffer_map(buf, &map, GST_MAP_WRITE);
                picture_paint(e, &cs->o, map.data, n);
                gst_buffer_unmap(buf, &map);
                GST_BUFFER_PTS(buf) = (GstClockTime)n * cs->frame_ns;
                GST_BUFFER_DURATION(buf) = cs->frame_ns;
                if (gst_app_src_push_buffer(GST_APP_SRC(e->src), buf) != GST_FLOW_OK)
                        break;
        }
        return NULL;
}

static int encoder_start(struct camsim *cs, struct encoder *e, int index)
{
        const struct opts *o = &cs->o;
        GError *err = NULL;
        gchar *desc;

        e->cs = cs;
        e->rng = 0x9e3779b9u + (guint32)index;
        e->frame_bytes = (gsize)o->width * o->height * 3 / 2;
        e->background = g_malloc(e->frame_bytes);
        background_init(e, o);
        desc = g_strdup_printf(
                "appsrc name=src format=time is-live=false block=true max-bytes=%" G_GSIZE_FORMAT
                " caps=video/x-raw,format=I420,width=%d,height=%d,framerate=%d/1 "
                "! x264enc speed-preset=ultrafast tune=zerolatency threads=1 bitrate=%d key-int-max=%d "
                "option-string=scenecut=0 "
                "! video/x-h264,stream-format=byte-stream,alignment=au "
                "! appsink name=sink sync=false max-buffers=8",
                e->frame_bytes * 4, o->width, o->height, o->fps, o->bitrate_kbps, o->gop);
        e->pipeline = gst_parse_launch(desc, &err);
        g_free(desc);
        if (!e->pipeline) {
                fprintf(stderr, "camsim: encoder pipeline: %s\n", err ? err->message : "?");
                g_clear_error(&err);
                return -EINVAL;
        }
        e->src = gst_bin_get_by_name(GST_BIN(e->pipeline), "src");
        e->sink = gst_bin_get_by_name(GST_BIN(e->pipeline), "sink");
        gst_app_sink_set_callbacks(GST_APP_SINK(e->sink),
                                   &(GstAppSinkCallbacks){ .new_sample = on_encoded }, e, NULL);
        if (gst_element_set_state(e->pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
                fprintf(stderr, "camsim: encoder %d does not start (is x264enc installed?)\n", index);
                return -EIO;
        }
        e->thread = g_thread_new("camsim-clock", encoder_clock_thread, e);
        return 0;
}

static void encoder_stop(struct encoder *e)
{
        if (!e->pipeline)
                return;
        gst_app_src_end_of_stream(GST_APP_SRC(e->src));
        if (e->thread)
                g_thread_join(e->thread);
        gst_element_set_state(e->pipeline, GST_STATE_NULL);
        gst_object_unref(e->src);
        gst_object_unref(e->sink);
        gst_object_unref(e->pipeline);
        g_free(e->background);
}

/* ---- RTSP mounts --------------------------------------------------------------- */

static void on_media_unprepared(GstRTSPMedia *media, gpointer data)
{
        struct camera *cam = data;
        GstElement *bin = gst_rtsp_media_get_element(media);
        GstElement *src = gst_bin_get_by_name(GST_BIN(bin), "src");

        g_mutex_lock(&cam->lock);
        if (cam->src == src)
                g_clear_pointer(&cam->src, gst_object_unref);
        g_mutex_unlock(&cam->lock);
        gst_object_unref(src);
        gst_object_unref(bin);
}

/* Real cameras send an RTCP sender report every few seconds; ask for one a
 * second so recorders learn the wall-clock mapping quickly.  And sync the
 * report on capture time, not send time: it then maps a frame's RTP time to
 * the NTP time it was captured, the same for every client however late its
 * first report comes. */
static void on_media_prepared(GstRTSPMedia *media, gpointer data)
{
        GstElement *element = gst_rtsp_media_get_element(media);
        GstObject *pipeline = gst_object_get_parent(GST_OBJECT(element));
        GstIterator *it;
        GValue v = G_VALUE_INIT;

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
                        if (g_str_has_prefix(GST_OBJECT_NAME(e), "rtpbin"))
                                g_object_set(e, "rtcp-sync-send-time", FALSE, NULL);
                        g_value_reset(&v);
                }
                g_value_unset(&v);
                gst_iterator_free(it);
        }
        if (pipeline)
                gst_object_unref(pipeline);
        gst_object_unref(element);
}

static void on_media_configure(GstRTSPMediaFactory *factory, GstRTSPMedia *media, gpointer data)
{
        struct camera *cam = data;
        GstElement *bin = gst_rtsp_media_get_element(media);
        GstElement *src = gst_bin_get_by_name(GST_BIN(bin), "src");

        g_mutex_lock(&cam->lock);
        if (cam->src)
                gst_object_unref(cam->src);
        cam->src = src; /* takes the reference */
        cam->media_count++;
        g_mutex_unlock(&cam->lock);
        g_mutex_lock(&cam->enc->sprop_lock);
        if (cam->enc->sprop) {
                GstElement *pay = gst_bin_get_by_name(GST_BIN(bin), "pay0");
                g_object_set(pay, "sprop-parameter-sets", cam->enc->sprop, NULL);
                gst_object_unref(pay);
        }
        g_mutex_unlock(&cam->enc->sprop_lock);
        g_signal_connect(media, "unprepared", G_CALLBACK(on_media_unprepared), cam);
        g_signal_connect(media, "prepared", G_CALLBACK(on_media_prepared), cam);
        gst_object_unref(bin);
}

static void mount_cameras(struct camsim *cs)
{
        GstRTSPMountPoints *mounts = gst_rtsp_server_get_mount_points(cs->server);

        for (int i = 0; i < cs->o.cameras; i++) {
                struct camera *cam = &cs->cams[i];
                GstRTSPMediaFactory *f = gst_rtsp_media_factory_new();
                gchar *path = g_strdup_printf("/%s", cam->id);

                gst_rtsp_media_factory_set_launch(
                        f, "( appsrc name=src is-live=true format=time "
                           "caps=video/x-h264,stream-format=byte-stream,alignment=au "
                           "! rtph264pay name=pay0 pt=96 config-interval=-1 )");
                gst_rtsp_media_factory_set_shared(f, TRUE);
                g_signal_connect(f, "media-configure", G_CALLBACK(on_media_configure), cam);
                gst_rtsp_mount_points_add_factory(mounts, path, f); /* takes f */
                g_free(path);
        }
        g_object_unref(mounts);
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

static gchar *camsim_status_json(struct camsim *cs)
{
        GString *s = g_string_new(NULL);
        GstClockTime now = now_mono_ns();

        g_string_append_printf(s, "{\"frame\":%" G_GUINT64_FORMAT ",\"fps\":%d,\"cameras\":[",
                               (now - cs->start_ns) / cs->frame_ns, cs->o.fps);
        for (int i = 0; i < cs->o.cameras; i++) {
                struct camera *c = &cs->cams[i];

                g_mutex_lock(&c->lock);
                g_string_append_printf(s,
                                       "%s{\"id\":\"%s\",\"live\":%s,\"sent\":%" G_GUINT64_FORMAT
                                       ",\"medias\":%" G_GUINT64_FORMAT ",\"outage_s\":%.3f,\"corrupt_left\":%u}",
                                       i ? "," : "", c->id, c->src ? "true" : "false", c->frames_sent,
                                       c->media_count,
                                       c->outage_until > now ? (double)(c->outage_until - now) / GST_SECOND : 0.0,
                                       c->corrupt_left);
                g_mutex_unlock(&c->lock);
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

static void usage(FILE *f)
{
        fprintf(f,
                "usage: camsim [options]\n"
                "  --cameras N        cameras rtsp://BIND:PORT/cam1..camN (default 1, max %d)\n"
                "  --width W --height H --fps F     picture (default 640x360 at 25)\n"
                "  --bitrate KBPS     x264 target bitrate (default 1000)\n"
                "  --gop FRAMES       keyframe interval (default 2 s of frames)\n"
                "  --encoders K       encoders shared round-robin by the cameras (default 1)\n"
                "  --port P           RTSP port (default 8554; 0 picks a free one)\n"
                "  --control-port P   control port (default 0: a free one)\n"
                "  --bind ADDR        address for both ports (default 127.0.0.1)\n"
                "On start prints one line: 'camsim ready rtsp_port=P control_port=C cameras=N'.\n"
                "Control commands (one per line): outage CAM|all SECONDS, drop [CAM|all],\n"
                "corrupt CAM|all FRAMES, status.  SIGUSR1 drops every session.\n",
                CAMSIM_MAX_CAMERAS);
}

static int parse_int(const char *name, const char *s, int min, int max, int *out)
{
        char *end;
        long v;

        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || *end || end == s || v < min || v > max) {
                fprintf(stderr, "camsim: --%s must be an integer in [%d, %d], got '%s'\n", name, min, max, s);
                return -EINVAL;
        }
        *out = (int)v;
        return 0;
}

static int opts_parse(int argc, char **argv, struct opts *o)
{
        static const struct option longopts[] = {
                { "cameras", required_argument, NULL, 'c' },  { "width", required_argument, NULL, 'w' },
                { "height", required_argument, NULL, 'h' },   { "fps", required_argument, NULL, 'f' },
                { "bitrate", required_argument, NULL, 'b' },  { "gop", required_argument, NULL, 'g' },
                { "encoders", required_argument, NULL, 'e' }, { "port", required_argument, NULL, 'p' },
                { "control-port", required_argument, NULL, 'C' }, { "bind", required_argument, NULL, 'B' },
                { "help", no_argument, NULL, 'H' },           { "version", no_argument, NULL, 'V' },
                { 0 }
        };
        int c, r = 0;

        *o = (struct opts){ .cameras = 1, .encoders = 1, .width = 640, .height = 360, .fps = 25,
                            .bitrate_kbps = 1000, .gop = 0, .port = 8554, .control_port = 0,
                            .bind = "127.0.0.1" };
        while (r == 0 && (c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
                const char *name = longopts[0].name;
                for (const struct option *lo = longopts; lo->name; lo++)
                        if (lo->val == c)
                                name = lo->name;
                switch (c) {
                case 'c': r = parse_int(name, optarg, 1, CAMSIM_MAX_CAMERAS, &o->cameras); break;
                case 'w': r = parse_int(name, optarg, 128, 3840, &o->width); break;
                case 'h': r = parse_int(name, optarg, 64, 2160, &o->height); break;
                case 'f': r = parse_int(name, optarg, 1, 120, &o->fps); break;
                case 'b': r = parse_int(name, optarg, 50, 50000, &o->bitrate_kbps); break;
                case 'g': r = parse_int(name, optarg, 1, 1000, &o->gop); break;
                case 'e': r = parse_int(name, optarg, 1, CAMSIM_MAX_ENCODERS, &o->encoders); break;
                case 'p': r = parse_int(name, optarg, 0, 65535, &o->port); break;
                case 'C': r = parse_int(name, optarg, 0, 65535, &o->control_port); break;
                case 'B': o->bind = optarg; break;
                case 'H': usage(stdout); exit(0);
                case 'V': printf("camsim %s (%s)\n", MWR_VERSION, MWR_COMMIT); exit(0);
                default: usage(stderr); return -EINVAL;
                }
        }
        if (r == 0 && optind < argc) {
                fprintf(stderr, "camsim: unexpected argument '%s'\n", argv[optind]);
                r = -EINVAL;
        }
        if (r == 0 && ((o->width | o->height) & 1)) {
                fprintf(stderr, "camsim: --width and --height must be even\n");
                r = -EINVAL;
        }
        if (o->gop == 0)
                o->gop = 2 * o->fps;
        if (o->encoders > o->cameras)
                o->encoders = o->cameras;
        return r;
}

int main(int argc, char **argv)
{
        static struct camsim cs; /* large; lives for the whole process */
        guint16 control_port = 0;
        gchar *service;
        int r = 1;

        gst_init(&argc, &argv);
        if (opts_parse(argc, argv, &cs.o) < 0)
                return 2;
        g_object_set(gst_system_clock_obtain(), "clock-type", GST_CLOCK_TYPE_MONOTONIC, NULL);
        cs.frame_ns = GST_SECOND / (GstClockTime)cs.o.fps;
        cs.start_ns = now_mono_ns() + 100 * GST_MSECOND;
        cs.loop = g_main_loop_new(NULL, FALSE);

        for (int i = 0; i < cs.o.cameras; i++) {
                struct camera *c = &cs.cams[i];
                struct encoder *e = &cs.encs[i % cs.o.encoders];

                snprintf(c->id, sizeof(c->id), "cam%d", i + 1);
                g_mutex_init(&c->lock);
                c->enc = e;
                e->cams[e->ncams++] = c;
        }
        for (int i = 0; i < cs.o.encoders; i++)
                if (encoder_start(&cs, &cs.encs[i], i) < 0)
                        goto out;

        cs.server = gst_rtsp_server_new();
        service = g_strdup_printf("%d", cs.o.port);
        gst_rtsp_server_set_address(cs.server, cs.o.bind);
        gst_rtsp_server_set_service(cs.server, service);
        g_free(service);
        mount_cameras(&cs);
        if (gst_rtsp_server_attach(cs.server, NULL) == 0) {
                fprintf(stderr, "camsim: cannot listen on %s:%d\n", cs.o.bind, cs.o.port);
                goto out;
        }
        if (control_start(&cs, &control_port) < 0)
                goto out;
        g_unix_signal_add(SIGTERM, on_quit_signal, &cs);
        g_unix_signal_add(SIGINT, on_quit_signal, &cs);
        g_unix_signal_add(SIGUSR1, on_drop_signal, &cs);

        printf("camsim ready rtsp_port=%d control_port=%u cameras=%d fps=%d gop=%d encoders=%d\n",
               gst_rtsp_server_get_bound_port(cs.server), control_port, cs.o.cameras, cs.o.fps, cs.o.gop,
               cs.o.encoders);
        fflush(stdout);
        g_main_loop_run(cs.loop);
        r = 0;
out:
        g_atomic_int_set(&cs.stopping, 1);
        for (int i = 0; i < cs.o.encoders; i++)
                encoder_stop(&cs.encs[i]);
        return r;
}
