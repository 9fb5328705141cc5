/* framecheck: the frame judge.  Decodes the first video stream of every input
 * (files, or .m3u8 HLS playlists) in argument order as one sequence, reads the
 * frame number the camera simulator painted into each picture and the number
 * and camera id of its SEI, and prints the judge's report (judge.c).  The
 * first audio stream of every input is decoded too, channel 0 as float mono,
 * and judged by the camsim audio code (audio_judge.c), with each file's video
 * offset (median of number / fps - pts) as the A/V reference.  An input may
 * lack one of the two, not both.
 * Exit: 0 clean, 1 defects found, 2 bad usage, 3 an input cannot be judged. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/pixdesc.h>

#include "audio_judge.h"
#include "framecode.h"
#include "judge.h"

#define EXIT_CLEAN 0
#define EXIT_DEFECTS 1
#define EXIT_USAGE 2
#define EXIT_INPUT 3
#define PARSE_OK -1                   /* parse_args: go on and judge */
#define RECEIVE_ERRORS_MAX 64         /* decoder errors tolerated in one receive loop */
#define HLS_PROTOCOLS "file,crypto,data"
#define VIDEO_POINTS_MAX (1u << 24)   /* readable frames per input kept for its video offset */
#define ERR_SAID (-ECANCELED)         /* an error already explained on stderr */
#define FPS_SNAP 0.005                /* an estimated frame rate this close to a round one is that */
#define FPS_SPAN_MIN_S 1.0            /* frames this far apart give the rate from their numbers */

struct options {
        bool json, frames, quiet;
        bool no_audio, expect_audio;
        double fps;                   /* --fps; 0: from the stream */
        double audio_tolerance_ms;    /* 0: the audio judge's default */
        struct judge_config cfg;
        char **files;
        int n_files;
};

/* Readable video frames of one input: number and pts, for its video offset. */
struct video_point {
        uint32_t number;
        double pts_s;
};

/* One open input: demuxer, decoders and the buffers that go with them. */
struct input {
        const char *path;
        int file;                     /* judge file index */
        AVFormatContext *fmt;
        AVCodecContext *dec;          /* video; NULL without a video stream */
        int stream;                   /* -1: none */
        AVRational time_base;
        AVCodecContext *adec;         /* audio; NULL without one, or with --no-audio */
        int astream;
        AVRational atime_base;
        AVPacket *pkt;
        AVFrame *frame;
        struct video_point *points;
        size_t n_points, cap_points;
};

/* What one run carries from input to input. */
struct run {
        const struct options *o;
        struct judge *j;
        struct audio_judge *aj;       /* made with the first audio stream */
        const char *rate_path;        /* the input that set the audio rate */
        int audio_rate;
        float *mono;                  /* one decoded audio frame, channel 0 */
        size_t cap_mono;
        double *video_offset;         /* per input; NAN: none */
        bool any_video;
};

static void usage(FILE *out)
{
        fputs("usage: framecheck [--json] [--camera ID] [--expect-first N] [--expect-last N]\n"
              "                  [--frames] [--quiet] [--fps F] [--no-audio | --expect-audio]\n"
              "                  [--audio-tolerance-ms X] FILE...\n"
              "Judges the frame numbers painted by the camera simulator into every picture of\n"
              "FILE... (video files or .m3u8 playlists, decoded in order as one sequence), and\n"
              "the time code of their sound (the first audio stream of each input).\n"
              "  --json            print the report as JSON instead of text\n"
              "  --camera ID       count frames whose SEI names another camera\n"
              "  --expect-first N  count missing numbers from N (default: lowest seen)\n"
              "  --expect-last N   count missing numbers up to N (default: highest seen)\n"
              "  --frames          list every frame (number, pts, file) in the report\n"
              "  --quiet           print no report and no decoder messages; exit code only\n"
              "  --fps F           frame rate of the numbers, for the A/V sync (default: measured)\n"
              "  --no-audio        do not judge the audio\n"
              "  --expect-audio    an input without an audio stream cannot be judged (exit 3)\n"
              "  --audio-tolerance-ms X  a jump of the sound up to X ms is no hole/overlap (1)\n"
              "  --help, --version\n"
              "Exit: 0 clean, 1 defects found, 2 bad usage, 3 an input cannot be opened.\n",
              out);
}

static int parse_u32(const char *s, uint32_t *v)
{
        unsigned long long x;
        char *end;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        x = strtoull(s, &end, 10);
        if (errno || *end || x > UINT32_MAX)
                return -EINVAL;
        *v = (uint32_t)x;
        return 0;
}

/* A finite number >= min (> min when !inclusive). */
static int parse_double(const char *s, double min, bool inclusive, double *v)
{
        char *end;
        double x;

        if (!s || !*s)
                return -EINVAL;
        errno = 0;
        x = strtod(s, &end);
        if (errno || *end || !isfinite(x) || x < min || (!inclusive && x == min))
                return -EINVAL;
        *v = x;
        return 0;
}

static int bad_usage(const char *what, const char *arg)
{
        fprintf(stderr, "framecheck: %s%s%s\nTry 'framecheck --help'.\n", what, arg ? ": " : "",
                arg ? arg : "");
        return EXIT_USAGE;
}

/* One option; PARSE_OK to go on, or the exit code. */
static int parse_option(int c, const char *arg, struct options *o)
{
        switch (c) {
        case 'j': o->json = true; return PARSE_OK;
        case 'f': o->frames = true; return PARSE_OK;
        case 'q': o->quiet = true; return PARSE_OK;
        case 'c':
                if (!*arg || strlen(arg) >= FRAMECODE_CAMERA_ID_MAX)
                        return bad_usage("camera id empty or too long", arg);
                o->cfg.camera = arg;
                return PARSE_OK;
        case 'F':
                o->cfg.has_expect_first = true;
                return parse_u32(arg, &o->cfg.expect_first) ? bad_usage("bad --expect-first", arg) : PARSE_OK;
        case 'L':
                o->cfg.has_expect_last = true;
                return parse_u32(arg, &o->cfg.expect_last) ? bad_usage("bad --expect-last", arg) : PARSE_OK;
        case 'A': o->no_audio = true; return PARSE_OK;
        case 'E': o->expect_audio = true; return PARSE_OK;
        case 'r': return parse_double(arg, 0, false, &o->fps) ? bad_usage("bad --fps", arg) : PARSE_OK;
        case 't':
                return parse_double(arg, 0, true, &o->audio_tolerance_ms) ? bad_usage("bad --audio-tolerance-ms", arg)
                                                                          : PARSE_OK;
        case 'h': usage(stdout); return EXIT_CLEAN;
        case 'V': printf("framecheck " MWR_VERSION " (" MWR_COMMIT ")\n"); return EXIT_CLEAN;
        default: fputs("Try 'framecheck --help'.\n", stderr); return EXIT_USAGE;
        }
}

static int parse_args(int argc, char **argv, struct options *o)
{
        static const struct option longopts[] = {
                { "json", no_argument, NULL, 'j' },
                { "camera", required_argument, NULL, 'c' },
                { "expect-first", required_argument, NULL, 'F' },
                { "expect-last", required_argument, NULL, 'L' },
                { "frames", no_argument, NULL, 'f' },
                { "quiet", no_argument, NULL, 'q' },
                { "fps", required_argument, NULL, 'r' },
                { "no-audio", no_argument, NULL, 'A' },
                { "expect-audio", no_argument, NULL, 'E' },
                { "audio-tolerance-ms", required_argument, NULL, 't' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                { NULL, 0, NULL, 0 },
        };
        int c, r;

        while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1)
                if ((r = parse_option(c, optarg, o)) != PARSE_OK)
                        return r;
        o->cfg.keep_frames = o->frames;
        o->files = argv + optind;
        o->n_files = argc - optind;
        if (o->n_files < 1)
                return bad_usage("no input file", NULL);
        if (o->cfg.has_expect_first && o->cfg.has_expect_last && o->cfg.expect_first > o->cfg.expect_last)
                return bad_usage("--expect-first is above --expect-last", NULL);
        if (o->no_audio && o->expect_audio)
                return bad_usage("--no-audio and --expect-audio exclude each other", NULL);
        return PARSE_OK;
}

/* ---- inputs ------------------------------------------------------------------ */

static bool is_playlist(const char *path)
{
        size_t n = strlen(path);

        return n >= 5 && !strcasecmp(path + n - 5, ".m3u8");
}

static void input_close(struct input *in)
{
        avcodec_free_context(&in->dec);
        avcodec_free_context(&in->adec);
        free(in->points);
        avformat_close_input(&in->fmt);
        av_packet_free(&in->pkt);
        av_frame_free(&in->frame);
}

static int open_demuxer(struct input *in)
{
        AVDictionary *opts = NULL;
        int r;

        /* HLS segments are opened by the demuxer: allow local files and any extension */
        if (is_playlist(in->path)) {
                av_dict_set(&opts, "protocol_whitelist", HLS_PROTOCOLS, 0);
                av_dict_set(&opts, "allowed_extensions", "ALL", 0);
        }
        r = avformat_open_input(&in->fmt, in->path, NULL, &opts);
        av_dict_free(&opts);
        if (r < 0)
                return r;
        return avformat_find_stream_info(in->fmt, NULL);
}

static int first_video_stream(const AVFormatContext *fmt)
{
        for (unsigned i = 0; i < fmt->nb_streams; i++) {
                const AVStream *st = fmt->streams[i];

                if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO &&
                    !(st->disposition & AV_DISPOSITION_ATTACHED_PIC))
                        return (int)i;
        }
        return -1;
}

static int first_audio_stream(const AVFormatContext *fmt)
{
        for (unsigned i = 0; i < fmt->nb_streams; i++)
                if (fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO)
                        return (int)i;
        return -1;
}

/* A decoder for stream `stream` into *dec. */
static int open_decoder(struct input *in, int stream, AVCodecContext **dec)
{
        const AVStream *st = in->fmt->streams[stream];
        const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
        int r;

        if (!codec)
                return AVERROR_DECODER_NOT_FOUND;
        *dec = avcodec_alloc_context3(codec);
        if (!*dec)
                return AVERROR(ENOMEM);
        r = avcodec_parameters_to_context(*dec, st->codecpar);
        if (r < 0)
                return r;
        if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO) {
                (*dec)->thread_count = 0; /* auto */
                (*dec)->skip_loop_filter = AVDISCARD_ALL; /* the code cells are flat: deblocking cannot matter */
        }
        (*dec)->pkt_timebase = st->time_base;
        return avcodec_open2(*dec, codec, NULL);
}

/* The audio judge's rate is the first audio stream's; every other must match. */
static int check_audio_rate(struct run *run, const struct input *in)
{
        int rate = in->fmt->streams[in->astream]->codecpar->sample_rate;
        struct audio_judge_config cfg = { .rate = rate, .tolerance_ms = run->o->audio_tolerance_ms };
        int r;

        if (run->aj) {
                if (rate == run->audio_rate)
                        return 0;
                fprintf(stderr,
                        "framecheck: %s: audio sample rate %d Hz, but %d Hz in %s: the inputs of one run "
                        "must share one rate\n",
                        in->path, rate, run->audio_rate, run->rate_path);
                return ERR_SAID;
        }
        r = audio_judge_new(&run->aj, &cfg);
        if (r == -EINVAL)
                fprintf(stderr,
                        "framecheck: %s: audio sample rate %d Hz cannot be judged (a multiple of 100 Hz is "
                        "needed); --no-audio skips the audio\n",
                        in->path, rate);
        else if (r < 0)
                fprintf(stderr, "framecheck: %s\n", strerror(-r));
        run->rate_path = in->path;
        run->audio_rate = rate;
        return r < 0 ? ERR_SAID : 0;
}

static int open_audio(struct run *run, struct input *in)
{
        int r;

        in->astream = run->o->no_audio ? -1 : first_audio_stream(in->fmt);
        if (in->astream < 0) {
                if (run->o->expect_audio)
                        fprintf(stderr, "framecheck: %s: no audio stream (--expect-audio)\n", in->path);
                return run->o->expect_audio ? AVERROR_STREAM_NOT_FOUND : 0;
        }
        r = open_decoder(in, in->astream, &in->adec);
        if (r < 0) {
                fprintf(stderr, "framecheck: %s: cannot open the audio decoder: %s\n", in->path, av_err2str(r));
                return r;
        }
        in->atime_base = in->fmt->streams[in->astream]->time_base;
        return check_audio_rate(run, in);
}

/* Open path for decoding; on failure say why on stderr, naming the file. */
static int input_open(struct run *run, struct input *in, const char *path, int file)
{
        int r;

        *in = (struct input){ .path = path, .file = file, .stream = -1, .astream = -1 };
        r = open_demuxer(in);
        if (r < 0) {
                fprintf(stderr, "framecheck: %s: cannot open: %s\n", path, av_err2str(r));
                return r;
        }
        in->stream = first_video_stream(in->fmt);
        if ((r = open_audio(run, in)) < 0)
                return r;
        if (in->stream < 0 && in->astream < 0) {
                fprintf(stderr, "framecheck: %s: no video stream%s\n", path,
                        run->o->no_audio ? "" : " and no audio stream");
                return AVERROR_STREAM_NOT_FOUND;
        }
        if (in->stream >= 0 && (r = open_decoder(in, in->stream, &in->dec)) < 0) {
                fprintf(stderr, "framecheck: %s: cannot open the video decoder: %s\n", path, av_err2str(r));
                return r;
        }
        if (in->stream >= 0) {
                in->time_base = in->fmt->streams[in->stream]->time_base;
                run->any_video = true;
        }
        in->pkt = av_packet_alloc();
        in->frame = av_frame_alloc();
        if (!in->pkt || !in->frame) {
                fprintf(stderr, "framecheck: %s: out of memory\n", path);
                return AVERROR(ENOMEM);
        }
        return 0;
}

/* ---- one decoded frame ---------------------------------------------------------- */

/* Plane 0 must be 8-bit luma, one byte per pixel. */
static bool has_8bit_luma(const AVFrame *fr)
{
        const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(fr->format);

        return d && !(d->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_HWACCEL |
                                  AV_PIX_FMT_FLAG_BITSTREAM)) &&
               d->comp[0].plane == 0 && d->comp[0].step == 1 && d->comp[0].depth == 8 && fr->data[0] &&
               fr->linesize[0] > 0;
}

static bool read_number(const AVFrame *fr, uint32_t *n)
{
        struct framecode_geom g;

        return has_8bit_luma(fr) && framecode_geometry(fr->width, fr->height, &g) == 0 &&
               framecode_read(fr->data[0], fr->linesize[0], &g, n) == 0;
}

/* The camsim SEI, when libavcodec exported it as unregistered user data. */
static void read_sei(const AVFrame *fr, struct judge_frame *jf, char camera[FRAMECODE_CAMERA_ID_MAX])
{
        for (int i = 0; i < fr->nb_side_data; i++) {
                const AVFrameSideData *sd = fr->side_data[i];
                int r;

                if (sd->type != AV_FRAME_DATA_SEI_UNREGISTERED)
                        continue;
                r = framecode_sei_parse(sd->data, sd->size, camera, &jf->sei_number);
                if (r == 0)
                        jf->has_sei = true;
                else if (r == -EBADMSG)
                        jf->sei_malformed = true;
        }
}

/* Keep a readable frame's number and pts for the input's video offset. */
static int add_point(struct input *in, uint32_t number, double pts_s)
{
        if (!isfinite(pts_s) || in->n_points >= VIDEO_POINTS_MAX)
                return 0;
        if (in->n_points == in->cap_points) {
                size_t cap = in->cap_points ? 2 * in->cap_points : 1024;
                struct video_point *p = realloc(in->points, cap * sizeof(*p));

                if (!p)
                        return -ENOMEM;
                in->points = p;
                in->cap_points = cap;
        }
        in->points[in->n_points++] = (struct video_point){ .number = number, .pts_s = pts_s };
        return 0;
}

static int judge_decoded(struct input *in, const AVFrame *fr, struct judge *j)
{
        char camera[FRAMECODE_CAMERA_ID_MAX] = "";
        int64_t ts = fr->best_effort_timestamp;
        struct judge_frame jf = {
                .file = in->file,
                .pts_s = ts == AV_NOPTS_VALUE ? NAN : (double)ts * av_q2d(in->time_base),
                .sei_camera = camera,
        };
        int r;

        jf.readable = read_number(fr, &jf.number);
        read_sei(fr, &jf, camera);
        if (fr->decode_error_flags || (fr->flags & AV_FRAME_FLAG_CORRUPT))
                judge_add_decode_error(j);
        if (jf.readable && (r = add_point(in, jf.number, jf.pts_s)) < 0)
                return r;
        return judge_add(j, &jf);
}

/* Channel 0 of fr as float into out[0 .. nb_samples); -ENOTSUP for a sample
 * format the judge does not convert. */
static int audio_channel0(const AVFrame *fr, float *out)
{
        int ch = fr->ch_layout.nb_channels > 0 ? fr->ch_layout.nb_channels : 1;
        size_t step = av_sample_fmt_is_planar(fr->format) ? 1 : (size_t)ch, n = (size_t)fr->nb_samples;
        const void *d = fr->extended_data[0]; /* plane 0: channel 0, or all channels interleaved */
        const uint8_t *u8 = d;
        const int16_t *s16 = d;
        const int32_t *s32 = d;
        const float *flt = d;
        const double *dbl = d;

        switch (av_get_packed_sample_fmt(fr->format)) {
        case AV_SAMPLE_FMT_U8:
                for (size_t i = 0; i < n; i++)
                        out[i] = (u8[i * step] - 128) / 128.0f;
                return 0;
        case AV_SAMPLE_FMT_S16:
                for (size_t i = 0; i < n; i++)
                        out[i] = s16[i * step] / 32768.0f;
                return 0;
        case AV_SAMPLE_FMT_S32:
                for (size_t i = 0; i < n; i++)
                        out[i] = (float)(s32[i * step] / 2147483648.0);
                return 0;
        case AV_SAMPLE_FMT_FLT:
                for (size_t i = 0; i < n; i++)
                        out[i] = flt[i * step];
                return 0;
        case AV_SAMPLE_FMT_DBL:
                for (size_t i = 0; i < n; i++)
                        out[i] = (float)dbl[i * step];
                return 0;
        default:
                return -ENOTSUP;
        }
}

static int audio_decoded(struct run *run, const struct input *in, const AVFrame *fr)
{
        int64_t ts = fr->best_effort_timestamp;
        double pts_s = ts == AV_NOPTS_VALUE ? NAN : (double)ts * av_q2d(in->atime_base);
        size_t n = fr->nb_samples > 0 ? (size_t)fr->nb_samples : 0;

        if (fr->sample_rate != run->audio_rate) {
                fprintf(stderr,
                        "framecheck: %s: audio sample rate %d Hz, but %d Hz before: the audio of one run "
                        "must keep one rate\n",
                        in->path, fr->sample_rate, run->audio_rate);
                return ERR_SAID;
        }
        if (n > run->cap_mono) {
                float *m = realloc(run->mono, n * sizeof(*m));

                if (!m)
                        return -ENOMEM;
                run->mono = m;
                run->cap_mono = n;
        }
        if (n && audio_channel0(fr, run->mono) < 0) {
                fprintf(stderr, "framecheck: %s: audio sample format %s is not converted\n", in->path,
                        av_get_sample_fmt_name(fr->format));
                return ERR_SAID;
        }
        if (fr->decode_error_flags || (fr->flags & AV_FRAME_FLAG_CORRUPT))
                audio_judge_add_decode_error(run->aj);
        return audio_judge_add_frame(run->aj, in->file, pts_s, fr->sample_rate, run->mono, n);
}

/* ---- decoding ------------------------------------------------------------------- */

static bool is_audio(const struct input *in, const AVCodecContext *dec)
{
        return dec == in->adec;
}

static void count_decode_error(struct run *run, const struct input *in, const AVCodecContext *dec)
{
        if (is_audio(in, dec))
                audio_judge_add_decode_error(run->aj);
        else
                judge_add_decode_error(run->j);
}

/* Every frame the decoder has ready.  Decoder errors are counted, never fatal;
 * a negative return is a judge's (out of memory, too many numbers) or
 * ERR_SAID (audio that cannot be judged). */
static int receive_frames(struct run *run, struct input *in, AVCodecContext *dec)
{
        int errors = 0;

        for (;;) {
                int r = avcodec_receive_frame(dec, in->frame);

                if (r == AVERROR(EAGAIN) || r == AVERROR_EOF)
                        return 0;
                if (r < 0) {
                        count_decode_error(run, in, dec);
                        if (++errors >= RECEIVE_ERRORS_MAX)
                                return 0;
                        continue;
                }
                r = is_audio(in, dec) ? audio_decoded(run, in, in->frame) : judge_decoded(in, in->frame, run->j);
                av_frame_unref(in->frame);
                if (r < 0)
                        return r;
        }
}

/* pkt NULL drains the decoder. */
static int decode_packet(struct run *run, struct input *in, AVCodecContext *dec, const AVPacket *pkt)
{
        int r = avcodec_send_packet(dec, pkt);

        if (r == AVERROR(EAGAIN)) {
                r = receive_frames(run, in, dec);
                if (r < 0)
                        return r;
                r = avcodec_send_packet(dec, pkt);
        }
        if (r < 0 && r != AVERROR_EOF)
                count_decode_error(run, in, dec);
        return receive_frames(run, in, dec);
}

static int decode_input(struct run *run, struct input *in)
{
        int r;

        while ((r = av_read_frame(in->fmt, in->pkt)) >= 0) {
                if (in->dec && in->pkt->stream_index == in->stream)
                        r = decode_packet(run, in, in->dec, in->pkt);
                else if (in->adec && in->pkt->stream_index == in->astream)
                        r = decode_packet(run, in, in->adec, in->pkt);
                av_packet_unref(in->pkt);
                if (r < 0)
                        return r;
        }
        if (r != AVERROR_EOF) {
                judge_add_decode_error(run->j);
                if (!run->o->quiet)
                        fprintf(stderr, "framecheck: %s: read error, rest of file skipped: %s\n", in->path,
                                av_err2str(r));
        }
        if (in->dec && (r = decode_packet(run, in, in->dec, NULL)) < 0)
                return r;
        return in->adec ? decode_packet(run, in, in->adec, NULL) : 0;
}

/* ---- the video offset ---------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;

        return x < y ? -1 : x > y;
}

/* Sorts v; n > 0. */
static double median(double *v, size_t n)
{
        qsort(v, n, sizeof(*v), cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int cmp_point_pts(const void *a, const void *b)
{
        return cmp_double(&((const struct video_point *)a)->pts_s, &((const struct video_point *)b)->pts_s);
}

/* The rate the numbers advance at (camsim numbers follow its clock, even
 * across lost frames): the median slope number / pts between each frame and
 * the one half the file later, in pts order (a few frames with odd pts, as
 * an RTSP recording's first ones, do not move it); over less than
 * FPS_SPAN_MIN_S, 1 / the median pts step.  points is sorted; scratch holds
 * n_points. */
static double fps_estimate(struct input *in, double *scratch)
{
        const struct video_point *p = in->points;
        size_t n = in->n_points, h = n / 2, k = 0;

        qsort(in->points, n, sizeof(*in->points), cmp_point_pts);
        if (n >= 4 && p[n - 1].pts_s - p[0].pts_s >= FPS_SPAN_MIN_S) {
                for (size_t i = 0; i + h < n; i++) {
                        double dt = p[i + h].pts_s - p[i].pts_s;

                        if (dt > 0)
                                scratch[k++] = ((double)p[i + h].number - p[i].number) / dt;
                }
                return k ? median(scratch, k) : 0;
        }
        for (size_t i = 1; i < n; i++)
                if (p[i].pts_s > p[i - 1].pts_s)
                        scratch[k++] = p[i].pts_s - p[i - 1].pts_s;
        return k ? 1 / median(scratch, k) : 0;
}

/* --fps, else the estimate snapped to the closest of the stream's rates
 * (r_frame_rate, avg_frame_rate), a whole number and its NTSC x/1001 when
 * one is within FPS_SNAP: a number / fps of hours needs the exact rate, and
 * the containers' rates are guesses (avg_frame_rate of a 4 s mp4 of 25 fps
 * is 101/4, from its duration). */
static double video_fps(const struct options *o, struct input *in, double *scratch)
{
        const AVStream *st = in->fmt->streams[in->stream];
        double est = fps_estimate(in, scratch), best = 0, best_err = FPS_SNAP;
        double cand[4] = { av_q2d(st->r_frame_rate), av_q2d(st->avg_frame_rate), rint(est),
                           rint(est * 1.001) * 1000 / 1001 };

        if (o->fps > 0)
                return o->fps;
        if (!(est > 0) || !isfinite(est))
                return cand[0] > 0 && isfinite(cand[0]) ? cand[0] : 0;
        for (size_t i = 0; i < 4; i++) {
                double err = fabs(cand[i] - est) / est;

                if (cand[i] > 0 && isfinite(cand[i]) && err < best_err) {
                        best = cand[i];
                        best_err = err;
                }
        }
        return best > 0 ? best : est;
}

/* The input's video (content - pts): the median of number / fps - pts; NAN
 * without readable frames or a frame rate. */
static int video_offset(const struct options *o, struct input *in, double *out)
{
        double *v, fps;

        *out = NAN;
        if (in->stream < 0 || in->n_points == 0)
                return 0;
        v = malloc(in->n_points * sizeof(*v));
        if (!v)
                return -ENOMEM;
        fps = video_fps(o, in, v);
        if (fps > 0 && isfinite(fps)) {
                for (size_t i = 0; i < in->n_points; i++)
                        v[i] = in->points[i].number / fps - in->points[i].pts_s;
                *out = median(v, in->n_points);
        }
        free(v);
        return 0;
}

/* ---- main ------------------------------------------------------------------------- */

/* Register, open and decode one input; errors are said here, naming the file. */
static int judge_input(struct run *run, const char *path)
{
        struct input in;
        int file = judge_add_file(run->j, path);
        int r;

        if (file < 0) {
                fprintf(stderr, "framecheck: %s: %s\n", path, strerror(-file));
                return file;
        }
        r = input_open(run, &in, path, file);
        if (r == 0) {
                r = decode_input(run, &in);
                if (r == 0)
                        r = video_offset(run->o, &in, &run->video_offset[file]);
                if (r < 0 && r != ERR_SAID)
                        fprintf(stderr, "framecheck: %s: cannot judge: %s\n", path, strerror(-r));
        }
        input_close(&in);
        return r;
}

/* Both judges' verdicts; the audio one's with the video offsets. */
static int finish_run(struct run *run, const struct judge_report **rep, const struct audio_report **arep)
{
        int r = judge_finish(run->j, rep);

        *arep = NULL;
        for (int i = 0; r == 0 && run->aj && i < run->o->n_files; i++)
                if (isfinite(run->video_offset[i]))
                        r = audio_judge_set_video_offset(run->aj, i, run->video_offset[i]);
        if (r == 0 && run->aj)
                r = audio_judge_finish(run->aj, arep);
        if (r < 0)
                fprintf(stderr, "framecheck: %s\n", strerror(-r));
        return r;
}

/* Passes everything on to `out` but the last two bytes, the "}\n" that
 * judge_print_json closes its object with: the audio report goes before. */
struct held_tail {
        FILE *out;
        char tail[2];
        size_t n;
};

static ssize_t held_tail_write(void *cookie, const char *buf, size_t size)
{
        struct held_tail *h = cookie;

        if (size >= 2) {
                if (fwrite(h->tail, 1, h->n, h->out) != h->n || fwrite(buf, 1, size - 2, h->out) != size - 2)
                        return -1;
                memcpy(h->tail, buf + size - 2, 2);
                h->n = 2;
        } else if (size == 1) {
                if (h->n == 2) {
                        if (fputc(h->tail[0], h->out) == EOF)
                                return -1;
                        h->tail[0] = h->tail[1];
                        h->n = 1;
                }
                h->tail[h->n++] = buf[0];
        }
        return (ssize_t)size;
}

/* The video judge's JSON object with an "audio" key added at its end. */
static int print_json(const struct run *run)
{
        struct held_tail h = { .out = stdout };
        cookie_io_functions_t io = { .write = held_tail_write };
        FILE *f = fopencookie(&h, "w", io);
        cJSON *audio;
        char *s = NULL;
        int r;

        if (!f)
                return -errno;
        r = judge_print_json(run->j, f);
        if (fclose(f) != 0 && r == 0)
                r = -EIO;
        if (r < 0)
                return r;
        if (h.n != 2 || memcmp(h.tail, "}\n", 2))
                return -EPROTO;
        audio = run->aj ? audio_report_json(run->aj) : cJSON_CreateNull();
        if (audio)
                s = cJSON_PrintUnformatted(audio);
        cJSON_Delete(audio);
        if (!s)
                return -ENOMEM;
        fprintf(stdout, ",\"audio\":%s}\n", s);
        cJSON_free(s);
        return ferror(stdout) ? -EIO : 0;
}

static int print_text(const struct run *run)
{
        int r = judge_print_text(run->j, stdout);

        if (r == 0 && !run->any_video)
                fputs("video none: no input has a video stream, the verdict above does not count\n", stdout);
        if (r == 0 && run->aj)
                r = audio_report_print_text(run->aj, stdout);
        else if (r == 0 && !run->o->no_audio)
                fputs("audio none\n", stdout);
        return r;
}

static int print_report(const struct run *run)
{
        int r = run->o->json ? print_json(run) : print_text(run);

        if (r == 0 && fflush(stdout) != 0)
                r = -EIO;
        if (r < 0)
                fprintf(stderr, "framecheck: cannot print the report: %s\n", strerror(-r));
        return r;
}

static void run_free(struct run *run)
{
        judge_free(run->j);
        audio_judge_free(run->aj);
        free(run->mono);
        free(run->video_offset);
}

/* 0 judged (*clean set), or a negative error already said. */
static int judge_all(struct run *run, bool *clean)
{
        const struct judge_report *rep;
        const struct audio_report *arep;
        int r = judge_new(&run->j, &run->o->cfg);

        if (r == 0 && !(run->video_offset = malloc((size_t)run->o->n_files * sizeof(double))))
                r = -ENOMEM;
        if (r < 0) {
                fprintf(stderr, "framecheck: %s\n", strerror(-r));
                return r;
        }
        for (int i = 0; i < run->o->n_files; i++)
                run->video_offset[i] = NAN;
        for (int i = 0; i < run->o->n_files && r == 0; i++)
                r = judge_input(run, run->o->files[i]);
        if (r == 0)
                r = finish_run(run, &rep, &arep);
        if (r == 0 && !run->o->quiet)
                r = print_report(run);
        if (r < 0)
                return r;
        /* inputs without video (audio only) have no video verdict */
        *clean = (!run->any_video || rep->clean) && (!arep || arep->clean);
        return 0;
}

int main(int argc, char **argv)
{
        struct options o = { 0 };
        struct run run = { .o = &o };
        bool clean = false;
        int r = parse_args(argc, argv, &o);

        if (r != PARSE_OK)
                return r;
        av_log_set_level(o.quiet ? AV_LOG_QUIET : AV_LOG_ERROR);
        r = judge_all(&run, &clean);
        run_free(&run);
        if (r < 0)
                return EXIT_INPUT;
        return clean ? EXIT_CLEAN : EXIT_DEFECTS;
}
