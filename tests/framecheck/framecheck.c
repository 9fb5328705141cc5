/* framecheck: the frame judge.  Decodes the first video stream of every input
 * (files, or .m3u8 HLS playlists) in argument order as one sequence, reads the
 * frame number the camera simulator painted into each picture and the number
 * and camera id of its SEI, and prints the judge's report (judge.c).
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

#include "framecode.h"
#include "judge.h"

#define EXIT_CLEAN 0
#define EXIT_DEFECTS 1
#define EXIT_USAGE 2
#define EXIT_INPUT 3
#define PARSE_OK -1                   /* parse_args: go on and judge */
#define RECEIVE_ERRORS_MAX 64         /* decoder errors tolerated in one receive loop */
#define HLS_PROTOCOLS "file,crypto,data"

struct options {
        bool json, frames, quiet;
        struct judge_config cfg;
        char **files;
        int n_files;
};

/* One open input: demuxer, decoder and the buffers that go with them. */
struct input {
        const char *path;
        int file;                     /* judge file index */
        AVFormatContext *fmt;
        AVCodecContext *dec;
        int stream;
        AVRational time_base;
        AVPacket *pkt;
        AVFrame *frame;
};

static void usage(FILE *out)
{
        fputs("usage: framecheck [--json] [--camera ID] [--expect-first N] [--expect-last N]\n"
              "                  [--frames] [--quiet] FILE...\n"
              "Judges the frame numbers painted by the camera simulator into every picture of\n"
              "FILE... (video files or .m3u8 playlists, decoded in order as one sequence).\n"
              "  --json            print the report as JSON instead of text\n"
              "  --camera ID       count frames whose SEI names another camera\n"
              "  --expect-first N  count missing numbers from N (default: lowest seen)\n"
              "  --expect-last N   count missing numbers up to N (default: highest seen)\n"
              "  --frames          list every frame (number, pts, file) in the report\n"
              "  --quiet           print no report and no decoder messages; exit code only\n"
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

static int open_decoder(struct input *in)
{
        const AVStream *st = in->fmt->streams[in->stream];
        const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
        int r;

        if (!codec)
                return AVERROR_DECODER_NOT_FOUND;
        in->dec = avcodec_alloc_context3(codec);
        if (!in->dec)
                return AVERROR(ENOMEM);
        r = avcodec_parameters_to_context(in->dec, st->codecpar);
        if (r < 0)
                return r;
        in->dec->thread_count = 0; /* auto */
        in->dec->skip_loop_filter = AVDISCARD_ALL; /* the code cells are flat: deblocking cannot matter */
        in->dec->pkt_timebase = st->time_base;
        in->time_base = st->time_base;
        return avcodec_open2(in->dec, codec, NULL);
}

/* Open path for decoding; on failure say why on stderr, naming the file. */
static int input_open(struct input *in, const char *path, int file)
{
        int r;

        *in = (struct input){ .path = path, .file = file, .stream = -1 };
        r = open_demuxer(in);
        if (r < 0) {
                fprintf(stderr, "framecheck: %s: cannot open: %s\n", path, av_err2str(r));
                return r;
        }
        in->stream = first_video_stream(in->fmt);
        if (in->stream < 0) {
                fprintf(stderr, "framecheck: %s: no video stream\n", path);
                return AVERROR_STREAM_NOT_FOUND;
        }
        r = open_decoder(in);
        if (r < 0) {
                fprintf(stderr, "framecheck: %s: cannot open the video decoder: %s\n", path, av_err2str(r));
                return r;
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

static int judge_decoded(const struct input *in, const AVFrame *fr, struct judge *j)
{
        char camera[FRAMECODE_CAMERA_ID_MAX] = "";
        int64_t ts = fr->best_effort_timestamp;
        struct judge_frame jf = {
                .file = in->file,
                .pts_s = ts == AV_NOPTS_VALUE ? NAN : (double)ts * av_q2d(in->time_base),
                .sei_camera = camera,
        };

        jf.readable = read_number(fr, &jf.number);
        read_sei(fr, &jf, camera);
        if (fr->decode_error_flags || (fr->flags & AV_FRAME_FLAG_CORRUPT))
                judge_add_decode_error(j);
        return judge_add(j, &jf);
}

/* ---- decoding ------------------------------------------------------------------- */

/* Every frame the decoder has ready.  Decoder errors are counted, never fatal;
 * a negative return is the judge's (out of memory, too many numbers). */
static int receive_frames(struct input *in, struct judge *j)
{
        int errors = 0;

        for (;;) {
                int r = avcodec_receive_frame(in->dec, in->frame);

                if (r == AVERROR(EAGAIN) || r == AVERROR_EOF)
                        return 0;
                if (r < 0) {
                        judge_add_decode_error(j);
                        if (++errors >= RECEIVE_ERRORS_MAX)
                                return 0;
                        continue;
                }
                r = judge_decoded(in, in->frame, j);
                av_frame_unref(in->frame);
                if (r < 0)
                        return r;
        }
}

/* pkt NULL drains the decoder. */
static int decode_packet(struct input *in, const AVPacket *pkt, struct judge *j)
{
        int r = avcodec_send_packet(in->dec, pkt);

        if (r == AVERROR(EAGAIN)) {
                r = receive_frames(in, j);
                if (r < 0)
                        return r;
                r = avcodec_send_packet(in->dec, pkt);
        }
        if (r < 0 && r != AVERROR_EOF)
                judge_add_decode_error(j);
        return receive_frames(in, j);
}

static int decode_input(struct input *in, struct judge *j, bool quiet)
{
        int r;

        while ((r = av_read_frame(in->fmt, in->pkt)) >= 0) {
                if (in->pkt->stream_index == in->stream)
                        r = decode_packet(in, in->pkt, j);
                av_packet_unref(in->pkt);
                if (r < 0)
                        return r;
        }
        if (r != AVERROR_EOF) {
                judge_add_decode_error(j);
                if (!quiet)
                        fprintf(stderr, "framecheck: %s: read error, rest of file skipped: %s\n", in->path,
                                av_err2str(r));
        }
        return decode_packet(in, NULL, j);
}

/* ---- main ------------------------------------------------------------------------- */

/* Register, open and decode one input; errors are said here, naming the file. */
static int judge_input(const struct options *o, const char *path, struct judge *j)
{
        struct input in;
        int file = judge_add_file(j, path);
        int r;

        if (file < 0) {
                fprintf(stderr, "framecheck: %s: %s\n", path, strerror(-file));
                return file;
        }
        r = input_open(&in, path, file);
        if (r == 0) {
                r = decode_input(&in, j, o->quiet);
                if (r < 0)
                        fprintf(stderr, "framecheck: %s: cannot judge: %s\n", path, strerror(-r));
        }
        input_close(&in);
        return r;
}

static int print_report(const struct options *o, const struct judge *j)
{
        int r = o->json ? judge_print_json(j, stdout) : judge_print_text(j, stdout);

        if (r == 0 && fflush(stdout) != 0)
                r = -EIO;
        if (r < 0)
                fprintf(stderr, "framecheck: cannot print the report: %s\n", strerror(-r));
        return r;
}

int main(int argc, char **argv)
{
        struct options o = { 0 };
        const struct judge_report *rep;
        struct judge *j = NULL;
        int r = parse_args(argc, argv, &o);

        if (r != PARSE_OK)
                return r;
        av_log_set_level(o.quiet ? AV_LOG_QUIET : AV_LOG_ERROR);
        r = judge_new(&j, &o.cfg);
        if (r < 0) {
                fprintf(stderr, "framecheck: %s\n", strerror(-r));
                return EXIT_INPUT;
        }
        for (int i = 0; i < o.n_files && r == 0; i++)
                r = judge_input(&o, o.files[i], j);
        if (r == 0 && (r = judge_finish(j, &rep)) < 0)
                fprintf(stderr, "framecheck: %s\n", strerror(-r));
        if (r == 0 && !o.quiet)
                r = print_report(&o, j);
        if (r < 0) {
                judge_free(j);
                return EXIT_INPUT;
        }
        r = rep->clean ? EXIT_CLEAN : EXIT_DEFECTS;
        judge_free(j);
        return r;
}
