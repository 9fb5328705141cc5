/* export: see export.h.  Each piece is read twice: a scan that checks the
 * frame range against the file and learns the piece's time span, then the
 * copy, which needs that span up front to pick the audio (the demuxer hands
 * out a fragment's audio after its video).  Every timestamp goes through the
 * piece's output clock (µs), so pieces from different files line up and a
 * hole between them stays a hole.  The output exists under its own name only
 * once it is complete. */
#include "mwr/export.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

#include "common/avio_fd.h"
#include "common/fmp4_index.h"
#include "common/fsutil.h"
#include "common/payload_hash.h"
#include "common/time_util.h"
#include "continuity/timeline.h"

#define DEFAULT_FRAME_US 40000 /* a frame's length when the file does not say (25 fps) */
#define VIDEO_TIMESCALE 90000  /* RTP's video clock: camera timestamps map onto it exactly */
#define PROGRESS_EVERY_US USEC_PER_SEC
/* exports are long sequential writes; faststart rewrites the file once more */
#define EXPORT_IO_BUFFER (256 * 1024)

struct export_ctx {
        AVFormatContext *oc;  /* the part being written */
        int fd;               /* its .part file, created O_EXCL; the output goes through it */
        char tmp_path[EXPORT_PATH_MAX + 8];
        const char *out_path;
        int vo, ao;           /* output stream indexes; ao is -1 without audio */
        int nls;              /* NAL length size of the output's video sample entry */
        int64_t origin_us;    /* output clock of the part's time 0 */
        int64_t last_dts[2];  /* per output stream, its own time base */
        int64_t last_audio_dur;
        int64_t audio_end_us; /* output clock where the audio written so far ends (INT64_MIN: none) */
        int64_t audio_step_us;/* the last piece's audio packet length, for a piece that cannot tell */
        size_t total;         /* frames to write, for progress */
        int64_t next_progress_us;
        export_progress_cb cb;
        void *cb_ctx;
        char *err;
        size_t errlen;
        struct export_stats st;
};

/* One open segment file. */
struct input {
        AVFormatContext *ic;
        const struct export_piece *p;
        int v, a;  /* stream indexes; a is -1 when no audio is taken from this file */
        int nls, hevc;
};

/* What the scan learns about a piece before it is copied. */
struct piece_span {
        int64_t lead_us;          /* lowest DTS clock of the video packets copied */
        int64_t start_us, end_us; /* presentation span of its frames; audio inside it is copied */
        int64_t frame_us;         /* the file's frame duration, for packets that carry none */
        int64_t audio_frame_us;   /* its audio packets' length (0: unknown); MP4's are read without one */
};

static int av_to_errno(int e)
{
        return e < 0 && e > -4096 ? e : -EIO; /* AVERROR(e) is -e; AVERROR_EOF and friends are tags */
}

/* Records the first error's reason; later ones are consequences of it. */
__attribute__((format(printf, 3, 4))) static int fail(struct export_ctx *x, int r, const char *fmt, ...)
{
        va_list ap;

        if (x->err && x->errlen > 0 && x->err[0] == '\0') {
                va_start(ap, fmt);
                vsnprintf(x->err, x->errlen, fmt, ap);
                va_end(ap);
        }
        return r;
}

static int fail_av(struct export_ctx *x, int e, const char *path, const char *what)
{
        char msg[AV_ERROR_MAX_STRING_SIZE];

        av_strerror(e, msg, sizeof(msg));
        return fail(x, av_to_errno(e), "%s: %s: %s", path, what, msg);
}

static int64_t clock_of(const struct export_piece *p, int64_t ts, AVRational tb)
{
        return p->seg_start_us + av_rescale_q(ts, tb, AV_TIME_BASE_Q) - p->shift_us;
}

static bool is_picture(const struct input *in, const AVPacket *pkt)
{
        return payload_has_picture(pkt->data, (size_t)pkt->size, in->nls, in->hevc);
}

static void input_close(struct input *in)
{
        avformat_close_input(&in->ic);
}

/* Opens a segment file and finds its video (H.264/H.265) and audio streams.
 * No avformat_find_stream_info: the MP4 sample entries say all a stream
 * copy needs, and it would read packets only to throw them away. */
static int input_open(struct export_ctx *x, const struct export_piece *p, struct input *in)
{
        const AVCodecParameters *par;
        int e;

        memset(in, 0, sizeof(*in));
        in->p = p;
        e = avformat_open_input(&in->ic, p->path, NULL, NULL);
        if (e < 0)
                return fail_av(x, e, p->path, "cannot open");
        in->v = av_find_best_stream(in->ic, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
        if (in->v < 0) {
                input_close(in);
                return fail(x, -EBADMSG, "%s: no video stream", p->path);
        }
        par = in->ic->streams[in->v]->codecpar;
        if (par->codec_id != AV_CODEC_ID_H264 && par->codec_id != AV_CODEC_ID_HEVC) {
                input_close(in);
                return fail(x, -EMEDIUMTYPE, "%s: video is %s, not H.264 or H.265", p->path,
                            avcodec_get_name(par->codec_id));
        }
        in->hevc = par->codec_id == AV_CODEC_ID_HEVC;
        in->nls = payload_nal_length_size(par->extradata, (size_t)par->extradata_size, in->hevc);
        in->a = av_find_best_stream(in->ic, AVMEDIA_TYPE_AUDIO, -1, in->v, NULL, 0);
        if (in->a < 0)
                in->a = -1;
        return 0;
}

/* Only the streams we copy are read: the demuxer skips the others' data. */
static void input_select(struct input *in)
{
        for (unsigned i = 0; i < in->ic->nb_streams; i++)
                in->ic->streams[i]->discard = (int)i == in->v || (int)i == in->a ? AVDISCARD_DEFAULT : AVDISCARD_ALL;
}

/* 1 with a packet, 0 at the end of what can be read.  A read error ends the
 * file like EOF does, and so does a sample the file cuts short (the demuxer
 * flags it corrupt): segments can be cut off by a crash.  Only running out
 * of memory is our problem, not the file's. */
static int read_packet(struct export_ctx *x, struct input *in, AVPacket *pkt)
{
        int e = av_read_frame(in->ic, pkt);

        if (e == AVERROR(ENOMEM))
                return fail(x, -ENOMEM, "%s: out of memory", in->p->path);
        if (e >= 0 && (pkt->flags & AV_PKT_FLAG_CORRUPT)) {
                av_packet_unref(pkt);
                e = AVERROR_EOF;
        }
        return e < 0 ? 0 : 1;
}

static int short_file(struct export_ctx *x, const struct export_piece *p, size_t seen)
{
        return fail(x, -EBADMSG, "%s: only %zu frames readable, the index lists frame %zu: file and index disagree",
                    p->path, seen, p->last);
}

/* Pass one: checks that frame `first` is a keyframe and `last` exists, and
 * finds the piece's span.  Packets without a picture that come before frame
 * `first` (parameter sets, SEI) belong to it and are copied with it. */
static int piece_scan(struct export_ctx *x, const struct export_piece *p, struct piece_span *sp)
{
        struct input in;
        AVPacket *pkt = av_packet_alloc();
        size_t seen = 0; /* pictures read */
        int r;

        int64_t last_a = INT64_MIN, last_d = INT64_MIN, min_d = INT64_MAX;

        *sp = (struct piece_span){ INT64_MAX, INT64_MAX, INT64_MIN, DEFAULT_FRAME_US, 0 };
        if (!pkt)
                return fail(x, -ENOMEM, "%s: out of memory", p->path);
        if ((r = input_open(x, p, &in)) < 0)
                goto out;
        input_select(&in);
        while (seen <= p->last && (r = read_packet(x, &in, pkt)) > 0) {
                AVRational tb = in.ic->streams[in.v]->time_base;
                bool pic;

                /* the mov demuxer gives no packet durations: the least spacing is one */
                if (pkt->stream_index == in.a && pkt->pts != AV_NOPTS_VALUE) {
                        int64_t a = av_rescale_q(pkt->pts, in.ic->streams[in.a]->time_base, AV_TIME_BASE_Q);

                        if (last_a != INT64_MIN && a > last_a && (sp->audio_frame_us == 0 || a - last_a < sp->audio_frame_us))
                                sp->audio_frame_us = a - last_a;
                        last_a = a;
                }
                /* as the frame index does: a packet without pts is not a frame */
                if (pkt->stream_index != in.v || pkt->pts == AV_NOPTS_VALUE) {
                        av_packet_unref(pkt);
                        continue;
                }
                pic = is_picture(&in, pkt);
                if (pic && pkt->dts != AV_NOPTS_VALUE) {
                        int64_t d = av_rescale_q(pkt->dts, tb, AV_TIME_BASE_Q);

                        if (last_d != INT64_MIN && d > last_d && d - last_d < min_d)
                                min_d = d - last_d;
                        last_d = d;
                }
                if (pkt->duration > 0 && pic)
                        sp->frame_us = av_rescale_q(pkt->duration, tb, AV_TIME_BASE_Q);
                else if (pic && min_d != INT64_MAX)
                        sp->frame_us = min_d;
                if (seen >= p->first) {
                        int64_t d_us = clock_of(p, pkt->dts != AV_NOPTS_VALUE ? pkt->dts : pkt->pts, tb);

                        sp->lead_us = d_us < sp->lead_us ? d_us : sp->lead_us;
                }
                if (pic && seen == p->first && !(pkt->flags & AV_PKT_FLAG_KEY)) {
                        av_packet_unref(pkt);
                        r = fail(x, -EINVAL, "%s: frame %zu is not a keyframe", p->path, seen);
                        goto out;
                }
                if (pic && seen >= p->first) {
                        int64_t t_us = clock_of(p, pkt->pts, tb);

                        sp->start_us = t_us < sp->start_us ? t_us : sp->start_us;
                        sp->end_us = t_us + sp->frame_us > sp->end_us ? t_us + sp->frame_us : sp->end_us;
                }
                seen += pic;
                av_packet_unref(pkt);
        }
        if (r == 0 && seen <= p->last)
                r = short_file(x, p, seen);
out:
        input_close(&in);
        av_packet_free(&pkt);
        return r < 0 ? r : 0;
}

/* Creates the output's streams from the first piece's file and writes the
 * header: video, then its audio if the mp4 muxer takes that codec. */
static int part_tmp_path(struct export_ctx *x, size_t k)
{
        char path[EXPORT_PATH_MAX];

        if (export_part_path(x->out_path, k, path, sizeof(path)) < 0 ||
            snprintf(x->tmp_path, sizeof(x->tmp_path), "%s.part", path) >= (int)sizeof(x->tmp_path))
                return fail(x, -ENAMETOOLONG, "%s: name too long for part %zu", x->out_path, k + 1);
        snprintf(x->st.parts[k].path, sizeof(x->st.parts[k].path), "%s", path);
        return 0;
}

/* The next part's file: a stale .part is a dead export's, ours is created
 * fresh, never shared. */
static int part_create(struct export_ctx *x)
{
        size_t k = x->st.n_parts;
        int e;

        if (k == EXPORT_MAX_PARTS)
                return fail(x, -E2BIG, "%s: the stream changes more than %d times in the range: export a shorter one",
                            x->out_path, EXPORT_MAX_PARTS - 1);
        if ((e = part_tmp_path(x, k)) < 0)
                return e;
        if (unlink(x->tmp_path) < 0 && errno != ENOENT)
                return fail(x, -errno, "%s: cannot remove: %s", x->tmp_path, strerror(errno));
        /* recordings are not for every user on the host: the output is FS_FILE_MODE */
        x->fd = open(x->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, FS_FILE_MODE);
        if (x->fd < 0)
                return fail(x, -errno, "%s: cannot create: %s", x->tmp_path, strerror(errno));
        x->st.n_parts++;
        return 0;
}

static int output_open(struct export_ctx *x, const struct input *in)
{
        const AVStream *iv = in->ic->streams[in->v];
        AVDictionary *opts = NULL;
        AVStream *os;
        int e;

        if ((e = part_create(x)) < 0)
                return e;
        x->last_dts[0] = x->last_dts[1] = INT64_MIN;
        x->st.parts[x->st.n_parts - 1].width = iv->codecpar->width;
        x->st.parts[x->st.n_parts - 1].height = iv->codecpar->height;
        x->st.parts[x->st.n_parts - 1].codec = avcodec_get_name(iv->codecpar->codec_id);
        e = avformat_alloc_output_context2(&x->oc, NULL, "mp4", x->tmp_path);
        if (e < 0)
                return fail_av(x, e, x->tmp_path, "cannot set up the mp4 muxer");
        if (!(os = avformat_new_stream(x->oc, NULL)) || (e = avcodec_parameters_copy(os->codecpar, iv->codecpar)) < 0)
                return fail(x, -ENOMEM, "%s: out of memory", x->tmp_path);
        os->codecpar->codec_tag = 0;
        os->time_base = (AVRational){ 1, VIDEO_TIMESCALE };
        x->vo = os->index;
        x->nls = in->nls;
        x->ao = -1;
        if (in->a >= 0 && avformat_query_codec(x->oc->oformat, in->ic->streams[in->a]->codecpar->codec_id,
                                               FF_COMPLIANCE_NORMAL) == 1) {
                const AVStream *ia = in->ic->streams[in->a];

                if (!(os = avformat_new_stream(x->oc, NULL)) ||
                    (e = avcodec_parameters_copy(os->codecpar, ia->codecpar)) < 0)
                        return fail(x, -ENOMEM, "%s: out of memory", x->tmp_path);
                os->codecpar->codec_tag = 0;
                os->time_base = ia->codecpar->sample_rate > 0 ? (AVRational){ 1, ia->codecpar->sample_rate }
                                                              : ia->time_base;
                x->ao = os->index;
                /* G.711 is recorded as FLAC: standard in MP4, "experimental" to ffmpeg 5.1 */
                if (ia->codecpar->codec_id == AV_CODEC_ID_FLAC)
                        x->oc->strict_std_compliance = FF_COMPLIANCE_EXPERIMENTAL;
        }
        if (avio_fd_open(&x->fd, EXPORT_IO_BUFFER, &x->oc->pb) < 0)
                return fail(x, -ENOMEM, "%s: out of memory", x->tmp_path);
        /* faststart: the moov goes in front so players start before the end */
        av_dict_set(&opts, "movflags", "+faststart", 0);
        e = avformat_write_header(x->oc, &opts);
        av_dict_free(&opts);
        if (e < 0)
                return fail_av(x, e, x->tmp_path, "cannot write the header");
        return 0;
}

/* Can this piece's video go on in the part being written (one sample entry)? */
static bool video_fits(const struct export_ctx *x, const struct input *in)
{
        const AVCodecParameters *want = x->oc->streams[x->vo]->codecpar, *have = in->ic->streams[in->v]->codecpar;

        return have->codec_id == want->codec_id && have->width == want->width && have->height == want->height &&
               in->nls == x->nls;
}

/* The piece's audio must fit the output's track, else the piece is silent. */
static int input_check(struct export_ctx *x, struct input *in)
{
        const AVCodecParameters *want, *have;

        if (in->a >= 0 && x->ao >= 0) {
                want = x->oc->streams[x->ao]->codecpar;
                have = in->ic->streams[in->a]->codecpar;
                if (have->codec_id != want->codec_id || have->sample_rate != want->sample_rate ||
                    have->ch_layout.nb_channels != want->ch_layout.nb_channels)
                        in->a = -1; /* the audio track cannot change codec: this piece is silent */
        } else {
                in->a = -1;
        }
        return 0;
}

static void progress(struct export_ctx *x)
{
        int64_t now_us;

        if (!x->cb || (now_us = now_mono_us()) < x->next_progress_us)
                return;
        x->cb(x->st.frames, x->total, x->cb_ctx);
        x->next_progress_us = now_us + PROGRESS_EVERY_US;
}

/* Writes one packet of the piece at its output time and hands it to the
 * muxer (which takes the reference).  DTS stays strictly increasing per
 * stream; pts keeps its distance to dts. */
static int write_packet(struct export_ctx *x, const struct input *in, AVPacket *pkt, int oi, int64_t default_dur_us)
{
        const AVStream *is = in->ic->streams[pkt->stream_index], *os = x->oc->streams[oi];
        int64_t in_dts = pkt->dts != AV_NOPTS_VALUE ? pkt->dts : pkt->pts;
        int64_t d_us = clock_of(in->p, in_dts, is->time_base) - x->origin_us;
        int64_t dts = av_rescale_q(d_us, AV_TIME_BASE_Q, os->time_base);
        int64_t pts = dts + av_rescale_q(pkt->pts - in_dts, is->time_base, os->time_base);
        int e;

        if (dts <= x->last_dts[oi]) {
                dts = x->last_dts[oi] + 1;
                pts = pts < dts ? dts : pts;
                x->st.dts_fixes++;
        }
        x->last_dts[oi] = dts;
        pkt->duration = pkt->duration > 0 ? av_rescale_q(pkt->duration, is->time_base, os->time_base)
                                          : av_rescale_q(default_dur_us, AV_TIME_BASE_Q, os->time_base);
        pkt->dts = dts;
        pkt->pts = pts;
        pkt->stream_index = oi;
        pkt->pos = -1;
        if (oi == x->ao)
                x->last_audio_dur = pkt->duration;
        e = av_interleaved_write_frame(x->oc, pkt);
        if (e < 0)
                return fail_av(x, e, x->tmp_path, "cannot write");
        return 0;
}

/* Audio inside the piece's span is copied, unless it would replay sound the
 * previous piece already covered (pieces from different files overlap by up
 * to a frame).  The span's sound reaches FMP4_AUDIO_CUT_US past its end: the
 * recorder files a packet that starts that little after a keyframe before
 * it (common/fmp4_index.h), so the next piece's file may not hold it.
 * Returns 1 once the audio is past that: it comes in time order, so nothing
 * more of it belongs to the piece. */
static int copy_audio(struct export_ctx *x, const struct input *in, AVPacket *pkt, const struct piece_span *sp)
{
        AVRational tb = in->ic->streams[in->a]->time_base;
        int64_t t_us, lo, dur_us;
        int e;

        if (pkt->pts == AV_NOPTS_VALUE)
                return 0;
        t_us = clock_of(in->p, pkt->pts, tb);
        if (t_us >= sp->end_us + FMP4_AUDIO_CUT_US)
                return 1;
        dur_us = pkt->duration > 0      ? av_rescale_q(pkt->duration, tb, AV_TIME_BASE_Q)
                 : sp->audio_frame_us > 0 ? sp->audio_frame_us
                                          : x->audio_step_us;
        /* on from where the sound written so far ends; the first piece's from its first picture */
        lo = x->audio_end_us != INT64_MIN ? x->audio_end_us : sp->start_us;
        if (t_us + dur_us / 2 < lo)
                return 0;
        if ((e = write_packet(x, in, pkt, x->ao, dur_us)) < 0)
                return e;
        if (sp->audio_frame_us > 0)
                x->audio_step_us = sp->audio_frame_us; /* for a file with a single audio packet */
        x->audio_end_us = t_us + dur_us;
        x->st.audio_packets++;
        return 0;
}

/* Trailer (faststart moves the moov to the front here), then the data is
 * made durable; the name appears only when the whole export is done. */
static int part_finish(struct export_ctx *x)
{
        int e = av_write_trailer(x->oc);

        if (e < 0)
                return fail_av(x, e, x->tmp_path, "cannot write the trailer");
        avio_flush(x->oc->pb);
        if (x->oc->pb->error < 0)
                return fail_av(x, x->oc->pb->error, x->tmp_path, "cannot write");
        if (fsync(x->fd) < 0)
                return fail(x, -errno, "%s: fsync: %s", x->tmp_path, strerror(errno));
        return 0;
}

static void output_free(struct export_ctx *x)
{
        if (x->oc) {
                avio_fd_close(&x->oc->pb);
                avformat_free_context(x->oc);
                x->oc = NULL;
        }
        if (x->fd >= 0)
                close(x->fd);
        x->fd = -1;
}

/* The piece's video starts the export, or a new part when it cannot go on
 * in the current one: the output's clock starts again at the piece. */
static int part_for_piece(struct export_ctx *x, const struct input *in, const struct piece_span *sp)
{
        int e;

        if (x->oc && video_fits(x, in))
                return 0;
        if (x->oc) {
                if ((e = part_finish(x)) < 0)
                        return e;
                output_free(x);
        }
        x->origin_us = sp->lead_us; /* the first DTS is 0, none is negative */
        return output_open(x, in);
}

/* Pass two: copies frames [first, last] (with the packets without a picture
 * among them) and the audio of the span. */
static int piece_copy(struct export_ctx *x, const struct export_piece *p, const struct piece_span *sp)
{
        struct input in;
        AVPacket *pkt = av_packet_alloc();
        struct export_part *part;
        size_t seen = 0;
        bool audio_done = false;
        int r;

        if (!pkt)
                return fail(x, -ENOMEM, "%s: out of memory", p->path);
        if ((r = input_open(x, p, &in)) < 0)
                goto out;
        if ((r = part_for_piece(x, &in, sp)) < 0 || (r = input_check(x, &in)) < 0)
                goto out;
        part = &x->st.parts[x->st.n_parts - 1];
        input_select(&in);
        audio_done = in.a < 0;
        while ((seen <= p->last || !audio_done) && (r = read_packet(x, &in, pkt)) > 0) {
                if (pkt->stream_index == in.v && pkt->pts != AV_NOPTS_VALUE) {
                        bool pic = is_picture(&in, pkt);
                        int64_t t_us = clock_of(p, pkt->pts, in.ic->streams[in.v]->time_base);

                        if (seen >= p->first && seen <= p->last) {
                                if ((r = write_packet(x, &in, pkt, x->vo, pic ? sp->frame_us : 0)) < 0)
                                        goto out;
                                if (pic) { /* B-frames: first/last in presentation, not file order */
                                        if (x->st.frames == 0 || t_us < x->st.first_us)
                                                x->st.first_us = t_us;
                                        if (x->st.frames == 0 || t_us > x->st.last_us)
                                                x->st.last_us = t_us;
                                        if (part->frames == 0 || t_us < part->first_us)
                                                part->first_us = t_us;
                                        if (part->frames == 0 || t_us > part->last_us)
                                                part->last_us = t_us;
                                        part->frames++;
                                        x->st.frames++;
                                        progress(x);
                                }
                        }
                        seen += pic;
                } else if (pkt->stream_index == in.a && !audio_done) {
                        if ((r = copy_audio(x, &in, pkt, sp)) < 0)
                                goto out;
                        audio_done = r > 0;
                }
                av_packet_unref(pkt);
        }
        if (r == 0 && seen <= p->last)
                r = short_file(x, p, seen);
out:
        input_close(&in);
        av_packet_free(&pkt);
        return r < 0 ? r : 0;
}

static int check_args(struct export_ctx *x, const struct export_piece *pieces, size_t n, const char *out_path)
{
        if (n == 0 || !pieces)
                return fail(x, -EINVAL, "nothing to export");
        if (!out_path || !*out_path)
                return fail(x, -EINVAL, "no output file");
        for (size_t i = 0; i < n; i++) {
                if (!pieces[i].path)
                        return fail(x, -EINVAL, "piece %zu: no file", i);
                if (pieces[i].first > pieces[i].last)
                        return fail(x, -EINVAL, "%s: piece %zu: first frame %zu after last frame %zu", pieces[i].path,
                                    i, pieces[i].first, pieces[i].last);
                x->total += pieces[i].last - pieces[i].first + 1;
        }
        return 0;
}

int export_part_path(const char *out_path, size_t k, char *buf, size_t len)
{
        const char *slash = strrchr(out_path, '/'), *dot = strrchr(out_path, '.');
        int n;

        if (k == 0)
                n = snprintf(buf, len, "%s", out_path);
        else if (dot && (!slash || dot > slash + 1)) /* OUT.mp4 -> OUT.2.mp4 */
                n = snprintf(buf, len, "%.*s.%zu%s", (int)(dot - out_path), out_path, k + 1, dot);
        else
                n = snprintf(buf, len, "%s.%zu", out_path, k + 1);
        return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Every part, finished, gets its name. */
static int parts_publish(struct export_ctx *x)
{
        for (size_t k = 0; k < x->st.n_parts; k++) {
                char tmp[EXPORT_PATH_MAX + 8];

                snprintf(tmp, sizeof(tmp), "%s.part", x->st.parts[k].path);
                if (rename(tmp, x->st.parts[k].path) < 0)
                        return fail(x, -errno, "%s: cannot rename to %s: %s", tmp, x->st.parts[k].path,
                                    strerror(errno));
        }
        return 0;
}

static void parts_remove(struct export_ctx *x)
{
        for (size_t k = 0; k < x->st.n_parts; k++) {
                char tmp[EXPORT_PATH_MAX + 8];

                snprintf(tmp, sizeof(tmp), "%s.part", x->st.parts[k].path);
                unlink(tmp);
        }
}

int export_write(const struct export_piece *pieces, size_t n, const char *out_path, export_progress_cb cb,
                 void *ctx, char *err, size_t errlen, struct export_stats *st)
{
        struct export_ctx *x = calloc(1, sizeof(*x)); /* the part list is large */
        int r;

        if (err && errlen > 0)
                err[0] = '\0';
        if (!x) {
                if (err && errlen > 0)
                        snprintf(err, errlen, "%s: out of memory", out_path ? out_path : "export");
                return -ENOMEM;
        }
        *x = (struct export_ctx){ .fd = -1, .vo = -1, .ao = -1, .last_dts = { INT64_MIN, INT64_MIN },
                                  .audio_end_us = INT64_MIN, .cb = cb, .cb_ctx = ctx, .err = err, .errlen = errlen,
                                  .out_path = out_path };
        if ((r = check_args(x, pieces, n, out_path)) < 0)
                goto out;
        x->next_progress_us = now_mono_us() + PROGRESS_EVERY_US;
        for (size_t i = 0; i < n; i++) {
                struct piece_span sp;

                if ((r = piece_scan(x, &pieces[i], &sp)) < 0)
                        goto out;
                if ((r = piece_copy(x, &pieces[i], &sp)) < 0)
                        goto out;
                x->st.pieces++;
        }
        if ((r = part_finish(x)) < 0)
                goto out;
        output_free(x);
        if ((r = parts_publish(x)) < 0)
                goto out;
        if (cb)
                cb(x->total, x->total, ctx);
out:
        output_free(x);
        if (r < 0)
                parts_remove(x);
        if (st)
                *st = x->st;
        free(x);
        return r;
}

struct export_piece *export_pieces(const struct tl_segment *segs, const struct tl_result *r)
{
        struct export_piece *p = r->n_pieces ? calloc(r->n_pieces, sizeof(*p)) : NULL;

        for (size_t i = 0; p && i < r->n_pieces; i++) {
                const struct tl_piece *tp = &r->pieces[i];
                const struct tl_segment *s = &segs[tp->seg];

                p[i] = (struct export_piece){ .path = s->path, .seg_start_us = s->start_us, .first = tp->first,
                                              .last = tp->last, .shift_us = tp->shift_us };
        }
        return p;
}
