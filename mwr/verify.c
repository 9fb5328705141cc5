/* verify: see verify.h.  Each file's video packets are read with libavformat
 * (no decoding); their pts go into one growing array, sorted once at the
 * end, so gaps and repeats are judged in presentation order whatever the
 * reordering of B-frames.  A file's report is printed before the next file
 * is opened: memory is one file's pts at a time. */
#include "mwr/verify.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>

/* 128 MB of pts; days of video at 25 fps, far beyond a segment file */
#define FRAMES_MAX (16u << 20)
/* 142 years: pts beyond are garbage, and keeping them out keeps every
 * difference and sum below far from overflow */
#define PTS_MAX_US (INT64_C(1) << 52)
#define ERROR_MAX 160

struct gap {
        int64_t start_us, end_us; /* the missing frames' span: after the earlier frame, up to the later */
        int64_t missing_frames;
};

struct report {
        const char *path;
        char error[ERROR_MAX];    /* "" when the whole file was read */
        uint64_t frames, keyframes, non_monotonic_dts, repeated_pts;
        int64_t *pts_us;          /* video pts, sorted once read */
        size_t n_pts, cap_pts;
        int64_t frame_us;         /* nominal frame duration; 0 with fewer than 2 distinct pts */
        struct gap *gaps;
        size_t n_gaps;
};

static void report_free(struct report *r)
{
        free(r->pts_us);
        free(r->gaps);
}

static void report_error(struct report *r, const char *what, int averr)
{
        snprintf(r->error, sizeof(r->error), "%s: %s", what, av_err2str(averr));
}

static const char *plural(uint64_t n)
{
        return n == 1 ? "" : "s";
}

static int pts_push(struct report *r, int64_t v)
{
        if (r->n_pts == r->cap_pts) {
                size_t cap = r->cap_pts ? 2 * r->cap_pts : 4096;
                int64_t *p;

                if (r->n_pts >= FRAMES_MAX)
                        return -E2BIG;
                p = realloc(r->pts_us, cap * sizeof(*p));
                if (!p)
                        return -ENOMEM;
                r->pts_us = p;
                r->cap_pts = cap;
        }
        r->pts_us[r->n_pts++] = v;
        return 0;
}

/* libavformat hides a file cut short: the demuxer's error is dropped when
 * the parser still holds packets (and all of it while probing a small
 * file), so the next read is a plain EOF.  What remains is a short last
 * packet (flagged corrupt) and samples that the moov/moof listed but were
 * never returned.  Formats without a full index list fewer entries than
 * packets, so they never trip the second test. */
static void check_cut_short(AVStream *st, uint64_t corrupt, struct report *r)
{
        int entries = avformat_index_get_entries_count(st);

        if (r->error[0])
                return;
        if (corrupt)
                snprintf(r->error, sizeof(r->error), "%" PRIu64 " packet%s cut short", corrupt, plural(corrupt));
        else if (entries > 0 && (uint64_t)entries > r->frames)
                snprintf(r->error, sizeof(r->error), "cut short: %" PRIu64 " of %d indexed frames read", r->frames,
                         entries);
}

/* Counts r's video packets and collects their pts.  A read error ends the
 * file early: what came before it is still reported. */
static void read_packets(AVFormatContext *ic, int v, struct report *r)
{
        AVStream *st = ic->streams[v];
        int64_t last_dts = AV_NOPTS_VALUE;
        AVPacket *pkt = av_packet_alloc();
        uint64_t corrupt = 0;
        int e;

        if (!pkt) {
                report_error(r, "read", AVERROR(ENOMEM));
                return;
        }
        while ((e = av_read_frame(ic, pkt)) >= 0) {
                if (pkt->stream_index != v) {
                        av_packet_unref(pkt);
                        continue;
                }
                r->frames++;
                r->keyframes += !!(pkt->flags & AV_PKT_FLAG_KEY);
                corrupt += !!(pkt->flags & AV_PKT_FLAG_CORRUPT);
                if (pkt->dts != AV_NOPTS_VALUE) {
                        r->non_monotonic_dts += last_dts != AV_NOPTS_VALUE && pkt->dts <= last_dts;
                        last_dts = pkt->dts;
                }
                /* pre-roll that an edit list hides is never shown */
                if (pkt->pts != AV_NOPTS_VALUE && !(pkt->flags & AV_PKT_FLAG_DISCARD)) {
                        int64_t pts_us = av_rescale_q(pkt->pts, st->time_base, AV_TIME_BASE_Q);

                        if (pts_us >= -PTS_MAX_US && pts_us <= PTS_MAX_US)
                                e = pts_push(r, pts_us);
                }
                av_packet_unref(pkt);
                if (e == -E2BIG) {
                        snprintf(r->error, sizeof(r->error), "more than %u frames, stopped there", FRAMES_MAX);
                        break;
                }
                if (e < 0) {
                        report_error(r, "read", AVERROR(-e));
                        break;
                }
        }
        if (e < 0 && e != AVERROR_EOF && !r->error[0])
                report_error(r, "read", e);
        check_cut_short(st, corrupt, r);
        av_packet_free(&pkt);
}

static void read_file(struct report *r)
{
        AVFormatContext *ic = NULL;
        int e, v;

        e = avformat_open_input(&ic, r->path, NULL, NULL);
        if (e < 0) {
                report_error(r, "open", e);
                return;
        }
        e = avformat_find_stream_info(ic, NULL);
        if (e < 0) {
                report_error(r, "stream info", e);
                goto out;
        }
        v = av_find_best_stream(ic, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
        if (v < 0) {
                report_error(r, "no video stream", v);
                goto out;
        }
        read_packets(ic, v, r);
        if (r->frames == 0 && !r->error[0])
                snprintf(r->error, sizeof(r->error), "no video packets");
out:
        avformat_close_input(&ic);
}

static int cmp_i64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

        return (x > y) - (x < y);
}

/* Median of the positive differences between consecutive sorted pts:
 * repeated pts do not pull it to 0, a few gaps do not move it. */
static int nominal_frame_us(const struct report *r, int64_t *frame_us)
{
        int64_t *d = malloc((r->n_pts ? r->n_pts : 1) * sizeof(*d));
        size_t n = 0;

        if (!d)
                return -ENOMEM;
        for (size_t i = 1; i < r->n_pts; i++)
                if (r->pts_us[i] > r->pts_us[i - 1])
                        d[n++] = r->pts_us[i] - r->pts_us[i - 1];
        qsort(d, n, sizeof(*d), cmp_i64);
        *frame_us = n ? d[n / 2] : 0;
        free(d);
        return 0;
}

/* Sorts the pts; finds repeats, the nominal frame duration and the gaps,
 * where the next frame comes more than 1.5 frame durations later. */
static int analyse(struct report *r)
{
        int e;

        if (r->n_pts == 0)
                return 0;
        qsort(r->pts_us, r->n_pts, sizeof(*r->pts_us), cmp_i64);
        e = nominal_frame_us(r, &r->frame_us);
        if (e < 0)
                return e;
        for (size_t i = 1; i < r->n_pts; i++) {
                int64_t diff = r->pts_us[i] - r->pts_us[i - 1];
                struct gap *g;

                r->repeated_pts += diff == 0;
                if (r->frame_us == 0 || 2 * diff <= 3 * r->frame_us)
                        continue;
                /* at most one gap per frame: realloc at powers of two */
                if ((r->n_gaps & (r->n_gaps - 1)) == 0) {
                        g = realloc(r->gaps, (r->n_gaps ? 2 * r->n_gaps : 1) * sizeof(*g));
                        if (!g)
                                return -ENOMEM;
                        r->gaps = g;
                }
                g = &r->gaps[r->n_gaps++];
                g->start_us = r->pts_us[i - 1] + r->frame_us;
                g->end_us = r->pts_us[i];
                g->missing_frames = llround((double)diff / (double)r->frame_us) - 1;
        }
        return 0;
}

static bool report_ok(const struct report *r)
{
        return !r->error[0] && r->n_gaps == 0 && r->repeated_pts == 0 && r->non_monotonic_dts == 0;
}

static double seconds(int64_t us)
{
        return (double)us / 1e6;
}

static void print_text(const struct report *r, FILE *out)
{
        if (r->frames == 0) {
                fprintf(out, "%s: error: %s\n", r->path, r->error);
                return;
        }
        fprintf(out, "%s: %s, %" PRIu64 " frame%s (%" PRIu64 " keyframe%s)", r->path,
                report_ok(r) ? "ok" : "NOT OK", r->frames, plural(r->frames), r->keyframes, plural(r->keyframes));
        if (r->n_pts)
                fprintf(out, ", %.3f-%.3f s", seconds(r->pts_us[0]), seconds(r->pts_us[r->n_pts - 1]));
        if (r->frame_us)
                fprintf(out, ", %.2f fps", 1e6 / (double)r->frame_us);
        fprintf(out, ", %zu gap%s", r->n_gaps, plural(r->n_gaps));
        if (r->repeated_pts)
                fprintf(out, ", %" PRIu64 " repeated pts", r->repeated_pts);
        if (r->non_monotonic_dts)
                fprintf(out, ", %" PRIu64 " non-increasing dts", r->non_monotonic_dts);
        fputc('\n', out);
        if (r->error[0])
                fprintf(out, "    error: %s\n", r->error);
        for (size_t i = 0; i < r->n_gaps; i++)
                fprintf(out, "    gap %.6f-%.6f s, %" PRId64 " frame%s missing\n", seconds(r->gaps[i].start_us),
                        seconds(r->gaps[i].end_us), r->gaps[i].missing_frames,
                        plural((uint64_t)r->gaps[i].missing_frames));
}

/* Seconds, or null when there is no such time. */
static void json_add_s(cJSON *o, const char *key, bool known, int64_t us)
{
        if (known)
                cJSON_AddNumberToObject(o, key, seconds(us));
        else
                cJSON_AddNullToObject(o, key);
}

static cJSON *report_json(const struct report *r)
{
        cJSON *o = cJSON_CreateObject(), *gaps;
        bool have_pts = r->n_pts > 0;
        int64_t first = have_pts ? r->pts_us[0] : 0, last = have_pts ? r->pts_us[r->n_pts - 1] : 0;

        if (!o)
                return NULL;
        cJSON_AddStringToObject(o, "path", r->path);
        cJSON_AddBoolToObject(o, "ok", report_ok(r));
        if (r->error[0])
                cJSON_AddStringToObject(o, "error", r->error);
        else
                cJSON_AddNullToObject(o, "error");
        cJSON_AddNumberToObject(o, "frames", (double)r->frames);
        cJSON_AddNumberToObject(o, "keyframes", (double)r->keyframes);
        json_add_s(o, "first_pts", have_pts, first);
        json_add_s(o, "last_pts", have_pts, last);
        /* the span the frames cover: the last one lasts a frame too */
        json_add_s(o, "duration", have_pts, last - first + r->frame_us);
        json_add_s(o, "frame_duration", r->frame_us > 0, r->frame_us);
        if (r->frame_us > 0)
                cJSON_AddNumberToObject(o, "fps", 1e6 / (double)r->frame_us);
        else
                cJSON_AddNullToObject(o, "fps");
        gaps = cJSON_AddArrayToObject(o, "gaps");
        for (size_t i = 0; gaps && i < r->n_gaps; i++) {
                cJSON *g = cJSON_CreateObject();

                if (!g || !cJSON_AddItemToArray(gaps, g)) {
                        cJSON_Delete(g);
                        cJSON_Delete(o);
                        return NULL;
                }
                cJSON_AddNumberToObject(g, "start", seconds(r->gaps[i].start_us));
                cJSON_AddNumberToObject(g, "end", seconds(r->gaps[i].end_us));
                cJSON_AddNumberToObject(g, "missing_frames", (double)r->gaps[i].missing_frames);
        }
        cJSON_AddNumberToObject(o, "non_monotonic_dts", (double)r->non_monotonic_dts);
        cJSON_AddNumberToObject(o, "repeated_pts", (double)r->repeated_pts);
        return o;
}

/* One file, read, judged and reported (text) or added to files (JSON). */
static bool verify_one(const char *path, bool json, cJSON *files, FILE *out, bool *oom)
{
        struct report r = { .path = path };
        bool ok;

        read_file(&r);
        if (analyse(&r) < 0)
                report_error(&r, "analysis", AVERROR(ENOMEM));
        ok = report_ok(&r);
        if (!json) {
                print_text(&r, out);
        } else {
                cJSON *o = report_json(&r);

                if (!o || !cJSON_AddItemToArray(files, o)) {
                        cJSON_Delete(o);
                        *oom = true;
                }
        }
        report_free(&r);
        return ok;
}

int verify_files(char *const *paths, int n, bool json, FILE *out)
{
        cJSON *doc = NULL, *files = NULL;
        bool all_ok = true, oom = false;

        /* libav's own messages would repeat ours; a caller that chose a
         * level other than the default keeps it */
        if (av_log_get_level() == AV_LOG_INFO)
                av_log_set_level(AV_LOG_ERROR);
        if (json) {
                doc = cJSON_CreateObject();
                files = doc ? cJSON_AddArrayToObject(doc, "files") : NULL;
                oom = !files;
        }
        for (int i = 0; i < n && !oom; i++)
                all_ok &= verify_one(paths[i], json, files, out, &oom);
        if (json) {
                char *s = NULL;

                if (!oom && cJSON_AddBoolToObject(doc, "ok", all_ok))
                        s = cJSON_Print(doc);
                if (s)
                        fprintf(out, "%s\n", s);
                else
                        fprintf(out, "{\"files\":[],\"ok\":false,\"error\":\"out of memory\"}\n");
                all_ok &= s != NULL;
                cJSON_free(s);
                cJSON_Delete(doc);
        }
        return all_ok ? 0 : 1;
}
