/* Unit tests of tests/framecheck/audio_judge.c: a clean sequence is clean with
 * the right content times; holes (one frame, 1 ms .. 12 s), overlaps and pts
 * gaps are told apart and sized; the A/V sync comes from the video offset;
 * the start is found from the video offset, or by the global search; noise,
 * a frame of zeros, short frames, other rates and file boundaries; the JSON
 * and text reports; and two minutes of 48 kHz judged quickly. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "audiocode.h"
#include "framecheck/audio_judge.h"

#define FRAME 1024                    /* samples in an AAC frame */

/* Where the next frame of a synthetic recording comes from: content sample c
 * (audiocode), shown at pts_s, of input file. */
struct feed {
        struct audio_judge *j;
        int rate, file;
        int64_t c;
        double pts_s;
        double noise;                 /* amplitude of uniform noise added, 0: none */
        uint64_t rng;
};

static struct audio_judge *new_judge(int rate, double tolerance_ms)
{
        struct audio_judge_config cfg = { .rate = rate, .tolerance_ms = tolerance_ms };
        struct audio_judge *j = NULL;

        assert_int_equal(audio_judge_new(&j, &cfg), 0);
        assert_non_null(j);
        return j;
}

static struct feed feed_at(struct audio_judge *j, int rate, double content_s, double pts_s)
{
        return (struct feed){ .j = j, .rate = rate, .c = llround(content_s * rate), .pts_s = pts_s,
                              .rng = 0x9e3779b97f4a7c15ull };
}

static float noise(struct feed *f)
{
        f->rng ^= f->rng << 13;
        f->rng ^= f->rng >> 7;
        f->rng ^= f->rng << 17;
        return (float)(f->noise * ((double)(f->rng >> 11) / (double)(1ull << 52) - 1.0));
}

/* One frame of n samples from the feed's position; the feed moves on. */
static void add_frame(struct feed *f, size_t n)
{
        int16_t *pcm = malloc(n * sizeof(*pcm));
        float *x = malloc(n * sizeof(*x));

        assert_non_null(pcm);
        assert_non_null(x);
        audiocode_fill(pcm, n, (uint64_t)f->c, f->rate);
        for (size_t i = 0; i < n; i++)
                x[i] = pcm[i] / 32768.0f + (f->noise > 0 ? noise(f) : 0);
        assert_int_equal(audio_judge_add(f->j, f->file, f->pts_s, x, n), 0);
        f->c += (int64_t)n;
        f->pts_s += (double)n / f->rate;
        free(pcm);
        free(x);
}

static void add_frames(struct feed *f, size_t frames, size_t n)
{
        for (size_t i = 0; i < frames; i++)
                add_frame(f, n);
}

/* A frame of n zeros (a decoder's concealment); content and pts move on. */
static void add_zeros(struct feed *f, size_t n)
{
        float *x = calloc(n, sizeof(*x));

        assert_non_null(x);
        assert_int_equal(audio_judge_add(f->j, f->file, f->pts_s, x, n), 0);
        f->c += (int64_t)n;
        f->pts_s += (double)n / f->rate;
        free(x);
}

static const struct audio_report *finish(struct audio_judge *j)
{
        const struct audio_report *r = NULL;

        assert_int_equal(audio_judge_finish(j, &r), 0);
        assert_non_null(r);
        return r;
}

static char *text_of(const struct audio_judge *j)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        assert_non_null(f);
        assert_int_equal(audio_report_print_text(j, f), 0);
        assert_int_equal(fclose(f), 0);
        return buf;
}

static void assert_near(double got, double want, double tol)
{
        if (fabs(got - want) > tol)
                fail_msg("%.9f is not %.9f +- %g", got, want, tol);
}

static void test_clean_sequence(void **state)
{
        struct audio_judge *j = new_judge(16000, 0);
        struct feed f = feed_at(j, 16000, 5.0, 0.0);
        const struct audio_report *r;
        char *text;

        add_frames(&f, 200, FRAME);
        assert_int_equal(audio_judge_set_video_offset(j, 0, 5.0), 0);
        r = finish(j);
        assert_true(r->clean);
        assert_int_equal(r->rate, 16000);
        assert_int_equal(r->frames, 200);
        assert_int_equal(r->samples, 200 * FRAME);
        assert_int_equal(r->located, 200);
        assert_int_equal(r->unlocated, 0);
        assert_true(r->has_content);
        assert_near(r->content_first_s, 5.0, 1e-9);
        assert_near(r->content_last_s, 5.0 + 199 * 0.064, 1e-9);
        assert_near(r->frame_ms, 64.0, 1e-9);
        assert_true(r->rho_min > 0.999);
        assert_int_equal(r->holes_total + r->overlaps_total + r->pts_gaps_total, 0);
        assert_true(r->has_sync);
        assert_near(r->sync_median_ms, 0, 1e-3);
        assert_near(r->sync_min_ms, 0, 1e-3);
        assert_near(r->sync_max_ms, 0, 1e-3);
        assert_int_equal(r->n_files, 1);
        assert_int_equal(r->files[0].located, 200);
        text = text_of(j);
        assert_non_null(strstr(text, "audio holes 0 "));
        assert_non_null(strstr(text, "audio verdict clean\n"));
        free(text);
        audio_judge_free(j);
}

static void test_hole_of_one_frame(void **state)
{
        struct audio_judge *j = new_judge(16000, 0);
        struct feed f = feed_at(j, 16000, 20.0, 0.0);
        const struct audio_report *r;
        double pts_after;
        char *text;

        add_frames(&f, 50, FRAME);
        f.c += FRAME; /* one frame never played: its pts are missing too */
        f.pts_s += FRAME / 16000.0;
        pts_after = f.pts_s;
        add_frames(&f, 50, FRAME);
        r = finish(j);
        assert_false(r->clean);
        assert_int_equal(r->located, 100);
        assert_int_equal(r->holes_total, 1);
        assert_int_equal(r->n_holes, 1);
        assert_near(r->holes[0].ms, 64.0, 1e-9);
        assert_near(r->holes[0].pts_s, pts_after, 1e-9);
        assert_near(r->holes[0].content_s, 20.0 + 51 * 0.064, 1e-9);
        assert_int_equal(r->holes[0].file, 0);
        assert_near(r->max_hole_ms, 64.0, 1e-9);
        assert_int_equal(r->overlaps_total, 0);
        assert_int_equal(r->pts_gaps_total, 0); /* the pts agree with the sound */
        text = text_of(j);
        assert_non_null(strstr(text, "audio hole file 0 pts 3.264000 content 23.264000: 64.000 ms\n"));
        assert_non_null(strstr(text, "audio verdict DEFECTS\n"));
        free(text);
        audio_judge_free(j);
}

/* Holes from 1 ms to 3 s: pts that follow the sound (no pts gap), and pts
 * that go on as if nothing was lost (a pts gap of minus the hole). */
static void test_holes_of_every_size(void **state)
{
        static const double hole_ms[] = { 1, 2.5, 5, 10, 20, 64, 100, 333, 1000, 3000 };

        for (size_t i = 0; i < sizeof(hole_ms) / sizeof(hole_ms[0]); i++) {
                for (int pts_follow = 0; pts_follow < 2; pts_follow++) {
                        struct audio_judge *j = new_judge(16000, 0.5);
                        struct feed f = feed_at(j, 16000, 60.0, 1.0);
                        int64_t hole = llround(hole_ms[i] * 16);
                        const struct audio_report *r;
                        double pts_after;

                        assert_int_equal(audio_judge_set_video_offset(j, 0, 59.0), 0);
                        add_frames(&f, 30, FRAME);
                        f.c += hole;
                        if (pts_follow)
                                f.pts_s += hole / 16000.0;
                        pts_after = f.pts_s;
                        add_frames(&f, 30, FRAME);
                        r = finish(j);
                        if (r->holes_total != 1 || r->located != 60)
                                fail_msg("hole %g ms: %d holes, %d located", hole_ms[i], (int)r->holes_total,
                                         (int)r->located);
                        assert_near(r->holes[0].ms, hole_ms[i], 1e-9);
                        assert_near(r->holes[0].pts_s, pts_after, 1e-9);
                        assert_near(r->holes[0].content_s, 60.0 + 30 * 0.064 + hole_ms[i] / 1000, 1e-9);
                        assert_int_equal(r->overlaps_total, 0);
                        if (pts_follow) {
                                assert_int_equal(r->pts_gaps_total, 0);
                        } else if (hole_ms[i] <= 0.5 + 1) {
                                assert_int_equal(r->pts_gaps_total, 0); /* within the timestamps' slack */
                        } else {
                                assert_int_equal(r->pts_gaps_total, 1);
                                assert_near(r->pts_gaps[0].ms, -hole_ms[i], 1e-3);
                        }
                        assert_false(r->clean);
                        audio_judge_free(j);
                }
        }
}

/* Beyond search_s, with pts that hide the hole: found by the global search. */
static void test_hole_beyond_search_range(void **state)
{
        struct audio_judge *j = new_judge(8000, 0);
        struct feed f = feed_at(j, 8000, 100.0, 0.0);
        const struct audio_report *r;

        add_frames(&f, 40, 160);
        f.c += 12 * 8000;
        add_frames(&f, 40, 160);
        r = finish(j);
        assert_int_equal(r->located, 80);
        assert_int_equal(r->holes_total, 1);
        assert_near(r->holes[0].ms, 12000, 1e-9);
        assert_int_equal(r->pts_gaps_total, 1);
        audio_judge_free(j);
}

static void test_overlap(void **state)
{
        struct audio_judge *j = new_judge(16000, 0);
        struct feed f = feed_at(j, 16000, 30.0, 0.0);
        const struct audio_report *r;

        add_frames(&f, 40, FRAME);
        f.c -= 500;          /* 31.25 ms played twice ... */
        f.pts_s -= 500 / 16000.0; /* ... at pts that say so */
        add_frames(&f, 40, FRAME);
        f.c -= 2 * 16000;    /* two seconds again, pts going on */
        add_frames(&f, 40, FRAME);
        r = finish(j);
        assert_false(r->clean);
        assert_int_equal(r->located, 120);
        assert_int_equal(r->holes_total, 0);
        assert_int_equal(r->overlaps_total, 2);
        assert_near(r->overlaps[0].ms, 31.25, 1e-9);
        assert_near(r->overlaps[0].content_s, 30.0 + 40 * 0.064 - 500 / 16000.0, 1e-9);
        assert_near(r->overlaps[1].ms, 2000, 1e-9);
        assert_near(r->max_overlap_ms, 2000, 1e-9);
        assert_int_equal(r->pts_gaps_total, 1);
        assert_near(r->pts_gaps[0].ms, 2000, 1e-3); /* pts moved on 2 s further than the sound */
        audio_judge_free(j);
}

/* The timestamps jump, the sound does not: a pts gap, not a hole; not a
 * defect of the sound either (clean). */
static void test_pts_gap_is_not_a_hole(void **state)
{
        struct audio_judge *j = new_judge(16000, 0);
        struct feed f = feed_at(j, 16000, 40.0, 0.0);
        const struct audio_report *r;
        double pts_after;

        add_frames(&f, 40, FRAME);
        f.pts_s += 0.050;
        pts_after = f.pts_s;
        add_frames(&f, 20, FRAME);
        f.pts_s -= 0.020;
        add_frames(&f, 20, FRAME);
        f.pts_s += 0.0015; /* within tolerance + 1 ms of timestamp rounding */
        add_frames(&f, 20, FRAME);
        r = finish(j);
        assert_int_equal(r->located, 100);
        assert_int_equal(r->holes_total, 0);
        assert_int_equal(r->overlaps_total, 0);
        assert_int_equal(r->pts_gaps_total, 2);
        assert_near(r->pts_gaps[0].ms, 50, 1e-3);
        assert_near(r->pts_gaps[0].pts_s, pts_after, 1e-9);
        assert_near(r->pts_gaps[1].ms, -20, 1e-3);
        assert_true(r->clean);
        audio_judge_free(j);
}

/* Sync = (content - pts) of the audio minus that of the video, per file. */
static void test_sync_from_video_offset(void **state)
{
        struct audio_judge *j = new_judge(16000, 0);
        struct feed f = feed_at(j, 16000, 100.25, 0.0); /* audio 250 ms ahead of the picture */
        const struct audio_report *r;

        add_frames(&f, 30, FRAME);
        f = (struct feed){ .j = j, .rate = 16000, .file = 1, .c = f.c, .pts_s = 0.0 };
        add_frames(&f, 30, FRAME);
        assert_int_equal(audio_judge_set_video_offset(j, 0, 100.0), 0);
        /* file 1 starts at content 100.25 + 1.92 s, its video at 102.17 - 0.1 */
        assert_int_equal(audio_judge_set_video_offset(j, 1, 100.25 + 1.92 + 0.1), 0);
        r = finish(j);
        assert_true(r->clean);
        assert_true(r->has_sync);
        assert_int_equal(r->n_files, 2);
        assert_true(r->files[0].has_sync);
        assert_near(r->files[0].sync_median_ms, 250, 1e-3);
        assert_near(r->files[0].sync_min_ms, 250, 1e-3);
        assert_near(r->files[1].sync_median_ms, -100, 1e-3);
        assert_near(r->files[1].sync_max_ms, -100, 1e-3);
        assert_near(r->sync_min_ms, -100, 1e-3);
        assert_near(r->sync_max_ms, 250, 1e-3);
        assert_near(r->sync_median_ms, 75, 1e-3); /* 30 of each */
        assert_int_equal(r->pts_gaps_total, 0);   /* pts restart with a file: not compared */
        audio_judge_free(j);
}

static void test_other_rates_rejected(void **state)
{
        struct audio_judge_config cfg = { .rate = 22050 };
        struct audio_judge *j = NULL;
        float x[160] = { 0 };

        assert_int_equal(audio_judge_new(&j, &cfg), -EINVAL); /* not a multiple of 100 */
        assert_null(j);
        cfg.rate = 0;
        assert_int_equal(audio_judge_new(&j, &cfg), -EINVAL);
        cfg = (struct audio_judge_config){ .rate = 16000, .tolerance_ms = -1 };
        assert_int_equal(audio_judge_new(&j, &cfg), -EINVAL);
        j = new_judge(16000, 0);
        assert_int_equal(audio_judge_add_frame(j, 0, 0.0, 8000, x, 160), -EINVAL);
        assert_int_equal(audio_judge_add_frame(j, 0, 0.0, 48000, x, 160), -EINVAL);
        assert_int_equal(audio_judge_add_frame(j, 0, 0.0, 16000, x, 160), 0);
        assert_int_equal(finish(j)->frames, 1);
        audio_judge_free(j);
}

/* The audio starts 0.3 s and 7 s after the video, 28 h after camsim started:
 * beyond the global search, so the video offset is what finds it.  Either
 * its pts start that much later too (in sync), or at 0 like the video's
 * (the sound that late against the picture). */
static void test_start_found_from_video_offset(void **state)
{
        static const double late_s[] = { 0.3, 7.0 };
        const double video_offset_s = 100000.0;

        for (size_t i = 0; i < 2; i++) {
                for (int in_sync = 0; in_sync < 2; in_sync++) {
                        struct audio_judge *j = new_judge(16000, 0);
                        double pts0 = in_sync ? late_s[i] : 0.0;
                        struct feed f = feed_at(j, 16000, video_offset_s + late_s[i], pts0);
                        const struct audio_report *r;

                        add_frames(&f, 40, FRAME);
                        if (i == 0 && in_sync) {
                                r = finish(j);
                                assert_int_equal(r->located, 0); /* no hint: not found */
                                assert_false(r->clean);
                        }
                        assert_int_equal(audio_judge_set_video_offset(j, 0, video_offset_s), 0);
                        r = finish(j);
                        assert_true(r->clean);
                        assert_int_equal(r->located, 40);
                        assert_near(r->content_first_s, video_offset_s + late_s[i], 1e-9);
                        assert_near(r->sync_median_ms, in_sync ? 0 : late_s[i] * 1000, 1e-3);
                        audio_judge_free(j);
                }
        }
}

/* Without any video offset the start is found by the global search. */
static void test_start_found_without_hint(void **state)
{
        static const int rates[] = { 8000, 16000, 48000 };

        for (size_t i = 0; i < 3; i++) {
                struct audio_judge *j = new_judge(rates[i], 0);
                struct feed f = feed_at(j, rates[i], 3000.0 + 1.234567, 12.5);
                const struct audio_report *r;

                add_frames(&f, 20, FRAME);
                r = finish(j);
                assert_true(r->clean);
                assert_int_equal(r->located, 20);
                assert_near(r->content_first_s, 3001.234567, 1.0 / rates[i]);
                assert_false(r->has_sync);
                audio_judge_free(j);
        }
}

/* An encoder's priming (silence), then camsim's very first sample: the
 * window searched starts before content 0. */
static void test_start_after_priming(void **state)
{
        struct audio_judge *j = new_judge(16000, 0);
        struct feed f = feed_at(j, 16000, 0.0, 0.0);
        const struct audio_report *r;

        f.c = -FRAME;
        add_zeros(&f, FRAME);
        add_frames(&f, 20, FRAME);
        r = finish(j);
        assert_true(r->clean);
        assert_int_equal(r->located, 20);
        assert_near(r->content_first_s, 0.0, 1e-9);
        audio_judge_free(j);
}

static double rms_of_code(int rate)
{
        int16_t pcm[16000];
        double e = 0;

        audiocode_fill(pcm, 16000, 0, rate);
        for (size_t i = 0; i < 16000; i++)
                e += (pcm[i] / 32768.0) * (pcm[i] / 32768.0);
        return sqrt(e / 16000);
}

/* Noise 30 dB below the signal, and a frame of zeros inside the window the
 * start is searched with. */
static void test_noisy_copy_located(void **state)
{
        struct audio_judge *j = new_judge(16000, 0);
        struct feed f = feed_at(j, 16000, 500.0, 0.0);
        const struct audio_report *r;

        /* uniform noise on [-a, a] has an rms of a / sqrt(3) */
        f.noise = rms_of_code(16000) * pow(10, -30 / 20.0) * sqrt(3);
        add_frames(&f, 100, FRAME);
        r = finish(j);
        assert_true(r->clean);
        assert_int_equal(r->located, 100);
        assert_near(r->content_first_s, 500.0, 2 / 16000.0);
        assert_true(r->rho_min > 0.99);
        audio_judge_free(j);

        j = new_judge(16000, 0);
        f = feed_at(j, 16000, 500.0, 0.0);
        f.noise = rms_of_code(16000) * pow(10, -30 / 20.0) * sqrt(3);
        add_frame(&f, FRAME);
        add_zeros(&f, FRAME);
        add_frames(&f, 60, FRAME);
        add_zeros(&f, FRAME);
        add_frames(&f, 10, FRAME);
        r = finish(j);
        assert_int_equal(r->located, 71);
        assert_int_equal(r->unlocated, 2);
        assert_int_equal(r->unlocated_unexpected, 2);
        assert_int_equal(r->holes_total + r->overlaps_total + r->pts_gaps_total, 0);
        assert_near(r->content_first_s, 500.0, 2 / 16000.0);
        assert_false(r->clean); /* sound missing inside a file, without a jump */
        audio_judge_free(j);
}

/* Two export parts: the second starts 125 ms of sound later, its pts at 0
 * again; its first frame is garbage (a decoder starting cold): excused. */
static void test_hole_at_file_boundary(void **state)
{
        struct audio_judge *j = new_judge(16000, 0);
        struct feed f = feed_at(j, 16000, 70.0, 0.0);
        const struct audio_report *r;
        float junk[FRAME];
        int64_t c1;

        add_frames(&f, 50, FRAME);
        c1 = f.c + 2000;
        f = (struct feed){ .j = j, .rate = 16000, .file = 1, .c = c1, .pts_s = 0.0, .rng = 1 };
        add_frames(&f, 50, FRAME);
        r = finish(j);
        assert_int_equal(r->holes_total, 1);
        assert_near(r->holes[0].ms, 125, 1e-9);
        assert_int_equal(r->holes[0].file, 1);
        assert_near(r->holes[0].pts_s, 0.0, 1e-9);
        assert_near(r->holes[0].content_s, (double)c1 / 16000, 1e-9);
        assert_int_equal(r->pts_gaps_total, 0);
        assert_int_equal(r->files[1].frames, 50);
        audio_judge_free(j);

        /* no hole, a cold first frame in file 1: clean */
        j = new_judge(16000, 0);
        f = feed_at(j, 16000, 70.0, 0.0);
        f.rng = 7;
        add_frames(&f, 50, FRAME);
        f.file = 1;
        f.pts_s = 0.0;
        f.noise = 0.5;
        for (size_t i = 0; i < FRAME; i++)
                junk[i] = noise(&f);
        assert_int_equal(audio_judge_add(j, 1, f.pts_s, junk, FRAME), 0);
        f.noise = 0;
        f.c += FRAME;
        f.pts_s += FRAME / 16000.0;
        add_frames(&f, 49, FRAME);
        r = finish(j);
        assert_int_equal(r->unlocated, 1);
        assert_int_equal(r->unlocated_unexpected, 0);
        assert_true(r->clean);
        audio_judge_free(j);
}

/* G.711 packets of 20 ms, frames shorter than a block, 48 kHz. */
static void test_frame_sizes_and_rates(void **state)
{
        struct audio_judge *j = new_judge(8000, 0);
        struct feed f = feed_at(j, 8000, 10.0, 0.0);
        const struct audio_report *r;

        add_frames(&f, 100, 160);
        f.c += 160;
        f.pts_s += 0.020;
        add_frames(&f, 100, 32); /* 4 ms: correlated over 5 ms */
        add_frames(&f, 100, 160);
        r = finish(j);
        assert_int_equal(r->located, 300);
        assert_int_equal(r->holes_total, 1);
        assert_near(r->holes[0].ms, 20, 1e-9);
        assert_near(r->frame_ms, 20, 1e-9);
        audio_judge_free(j);

        j = new_judge(48000, 0);
        f = feed_at(j, 48000, 10.0, 0.0);
        add_frames(&f, 100, FRAME);
        f.c += 960;
        f.pts_s += 0.020;
        add_frames(&f, 100, FRAME);
        r = finish(j);
        assert_int_equal(r->located, 200);
        assert_int_equal(r->holes_total, 1);
        assert_near(r->holes[0].ms, 20, 1e-9);
        audio_judge_free(j);
}

static const cJSON *item(const cJSON *o, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        if (!v)
                fail_msg("no key %s", key);
        return v;
}

static void test_json_report(void **state)
{
        static const char *const keys[] = {
                "rate", "frames", "samples", "located", "unlocated", "unlocated_unexpected", "decode_errors",
                "has_content", "content_first_s", "content_last_s", "frame_ms", "rho_median", "rho_min",
                "holes", "holes_total", "max_hole_ms", "overlaps", "overlaps_total", "max_overlap_ms",
                "pts_gaps", "pts_gaps_total", "has_sync", "sync_median_ms", "sync_min_ms", "sync_max_ms",
                "files", "clean",
        };
        struct audio_judge *j = new_judge(16000, 0);
        struct feed f = feed_at(j, 16000, 8.0, 0.5);
        const cJSON *h, *fl;
        cJSON *o;

        assert_null(audio_report_json(j)); /* not finished */
        add_frames(&f, 20, FRAME);
        f.c += 800;
        f.pts_s += 0.05;
        add_frames(&f, 20, FRAME);
        audio_judge_add_decode_error(j);
        finish(j);
        o = audio_report_json(j);
        assert_non_null(o);
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
                item(o, keys[i]);
        assert_int_equal(cJSON_GetArraySize(item(o, "holes")), 1);
        h = cJSON_GetArrayItem(item(o, "holes"), 0);
        assert_int_equal(item(h, "file")->valueint, 0);
        assert_near(item(h, "ms")->valuedouble, 50, 1e-9);
        assert_near(item(h, "pts_s")->valuedouble, 0.5 + 20 * 0.064 + 0.05, 1e-9);
        assert_near(item(h, "content_s")->valuedouble, 8.0 + 20 * 0.064 + 0.05, 1e-9);
        assert_true(cJSON_IsNull(item(o, "sync_median_ms")));
        assert_false(cJSON_IsTrue(item(o, "has_sync")));
        assert_false(cJSON_IsTrue(item(o, "clean")));
        assert_int_equal(item(o, "decode_errors")->valueint, 1);
        fl = cJSON_GetArrayItem(item(o, "files"), 0);
        assert_int_equal(item(fl, "frames")->valueint, 40);
        assert_true(cJSON_IsNull(item(fl, "video_offset_s")));
        cJSON_Delete(o);
        audio_judge_free(j);
}

static void test_errors_and_edges(void **state)
{
        struct audio_judge *j = new_judge(16000, 0);
        struct feed f = feed_at(j, 16000, 3.0, 0.0);
        const struct audio_report *r;
        float x[FRAME];
        int16_t pcm[FRAME];

        assert_int_equal(audio_report_print_text(j, stdout), -EINVAL); /* not finished */
        assert_int_equal(audio_judge_add(j, -1, 0.0, x, 0), -EINVAL);
        assert_int_equal(audio_judge_set_video_offset(j, 0, NAN), -EINVAL);
        r = finish(j); /* nothing at all: not clean */
        assert_int_equal(r->frames, 0);
        assert_false(r->has_content);
        assert_false(r->clean);
        add_frames(&f, 10, FRAME);
        /* unknown pts follow the previous frame */
        audiocode_fill(pcm, FRAME, (uint64_t)f.c, 16000);
        for (size_t i = 0; i < FRAME; i++)
                x[i] = pcm[i] / 32768.0f;
        assert_int_equal(audio_judge_add(j, 0, NAN, x, FRAME), 0);
        assert_int_equal(audio_judge_add(j, 0, 0.0, x, 0), 0); /* empty: ignored */
        f.c += FRAME;
        f.pts_s += FRAME / 16000.0;
        add_frames(&f, 10, FRAME);
        r = finish(j);
        assert_int_equal(r->frames, 21);
        assert_true(r->clean);
        assert_int_equal(r->pts_gaps_total, 0);
        audio_judge_free(j);
        audio_judge_free(NULL);
}

/* Two minutes of 48 kHz in 1024-sample frames, with a hole: a few seconds at
 * most even under ASan (about 0.4 s at -O2 without it). */
static void test_two_minutes_at_48k(void **state)
{
        struct audio_judge *j = new_judge(48000, 0);
        struct feed f = feed_at(j, 48000, 3600.0, 0.0);
        const struct audio_report *r;
        struct timespec a, b;
        double s;

        add_frames(&f, 2800, FRAME);
        f.c += 4800;
        f.pts_s += 0.1;
        add_frames(&f, 2825, FRAME);
        assert_int_equal(audio_judge_set_video_offset(j, 0, 3600.0), 0);
        clock_gettime(CLOCK_MONOTONIC, &a);
        r = finish(j);
        clock_gettime(CLOCK_MONOTONIC, &b);
        s = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
        print_message("2 min at 48 kHz judged in %.3f s\n", s);
        assert_true(s < 15);
        assert_int_equal(r->located, 5625);
        assert_int_equal(r->holes_total, 1);
        assert_near(r->holes[0].ms, 100, 1e-9);
        audio_judge_free(j);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_clean_sequence),
                cmocka_unit_test(test_hole_of_one_frame),
                cmocka_unit_test(test_holes_of_every_size),
                cmocka_unit_test(test_hole_beyond_search_range),
                cmocka_unit_test(test_overlap),
                cmocka_unit_test(test_pts_gap_is_not_a_hole),
                cmocka_unit_test(test_sync_from_video_offset),
                cmocka_unit_test(test_other_rates_rejected),
                cmocka_unit_test(test_start_found_from_video_offset),
                cmocka_unit_test(test_start_found_without_hint),
                cmocka_unit_test(test_start_after_priming),
                cmocka_unit_test(test_noisy_copy_located),
                cmocka_unit_test(test_hole_at_file_boundary),
                cmocka_unit_test(test_frame_sizes_and_rates),
                cmocka_unit_test(test_json_report),
                cmocka_unit_test(test_errors_and_edges),
                cmocka_unit_test(test_two_minutes_at_48k),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
