/* Unit tests of continuity/timeline.c: copies of one camera recorded by two
 * instances, as a deploy, a crash or an outage leave them.  Every test maps
 * the chosen frames back to the camera's frame numbers and requires each
 * recorded frame exactly once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>

#include <cmocka.h>

#include "continuity/timeline.h"

#define N 3000 /* 2 minutes at 25 fps */
#define GOP 50
#define SEG 250 /* frames per segment: 10 s */
#define FRAME_US 40000
#define T0 INT64_C(1795000000000000)

static struct cm_frame cam[N];

static uint32_t rng_state;

static uint32_t rnd(void)
{
        rng_state = rng_state * 1664525u + 1013904223u;
        return rng_state >> 8;
}

static int setup(void **state)
{
        rng_state = 99;
        for (size_t i = 0; i < N; i++)
                cam[i] = (struct cm_frame){ .t_us = T0 + (int64_t)i * FRAME_US,
                                            .size = i % GOP ? 3000 + rnd() % 3000 : 40000 + rnd() % 4000,
                                            .hash = rnd() & 0xfff,
                                            .key = i % GOP == 0 };
        return 0;
}

struct rec {
        struct tl_segment segs[64];
        size_t n;
        struct cm_frame *bufs[64];
};

/* instance id records camera frames [from, to) except those in skip[], on a
 * clock shift_us ahead, cutting a segment at the first keyframe after SEG
 * frames; a copy restarts at a keyframe after a skipped stretch. */
static void record(struct rec *r, const char *id, size_t from, size_t to, int64_t shift_us, size_t skip_from,
                   size_t skip_to)
{
        struct cm_frame *cur = NULL;
        size_t n = 0, seg_frames = 0;
        bool need_key = true;

        for (size_t i = from; i < to; i++) {
                if (i >= skip_from && i < skip_to) {
                        need_key = true; /* a restart: the next segment starts at a keyframe */
                        seg_frames = SEG;
                        continue;
                }
                if (need_key && !cam[i].key)
                        continue;
                need_key = false;
                if (!cur || (cam[i].key && seg_frames >= SEG)) {
                        assert_true(r->n < 64);
                        cur = calloc(SEG + GOP, sizeof(*cur));
                        r->bufs[r->n] = cur;
                        r->segs[r->n] = (struct tl_segment){ .id = (int64_t)r->n + 1, .instance_id = id,
                                                             .path = id, .start_us = cam[i].t_us + shift_us,
                                                             .frames = cur };
                        r->n++;
                        n = 0;
                        seg_frames = 0;
                }
                cur[n] = cam[i];
                cur[n].t_us += shift_us;
                r->segs[r->n - 1].n = ++n;
                seg_frames++;
        }
}

static void rec_free(struct rec *r)
{
        for (size_t i = 0; i < r->n; i++)
                free(r->bufs[i]);
}

/* How often the timeline holds each camera frame.  The reference clock is
 * one copy's; A's copy is on the camera's clock, so A's shift maps back. */
static void count(const struct rec *r, const struct tl_result *t, int *seen)
{
        int64_t to_cam = 0;

        for (size_t s = 0; s < r->n; s++)
                if (strcmp(r->segs[s].instance_id, "A") == 0) {
                        to_cam = t->shift_us[s];
                        break;
                }
        memset(seen, 0, N * sizeof(*seen));
        for (size_t p = 0; p < t->n_pieces; p++) {
                const struct tl_piece *pc = &t->pieces[p];

                assert_true(pc->seg < r->n);
                assert_true(r->segs[pc->seg].frames[pc->first].key);
                for (size_t k = pc->first; k <= pc->last; k++) {
                        int64_t ref = r->segs[pc->seg].frames[k].t_us - pc->shift_us + to_cam - T0;
                        int64_t i = (ref + FRAME_US / 2) / FRAME_US;

                        assert_true(i >= 0 && i < N);
                        assert_true(llabs(ref - i * FRAME_US) < FRAME_US / 2);
                        seen[i]++;
                }
        }
}

static void build(const struct rec *r, int64_t from, int64_t to, struct tl_result *t)
{
        struct tl_options o = { .from_us = from, .to_us = to };

        assert_int_equal(tl_build(r->segs, r->n, &o, t), 0);
        assert_int_equal(t->frame_us, FRAME_US);
}

static void assert_each_once(const int *seen, size_t from, size_t to)
{
        for (size_t i = from; i < to; i++)
                if (seen[i] != 1)
                        fail_msg("frame %zu taken %d times", i, seen[i]);
}

/* camera frame numbers of a segment's first and last frame */
static int64_t frame_no(const struct tl_segment *sg, size_t k, int64_t shift)
{
        return (sg->frames[k].t_us - shift - T0 + FRAME_US / 2) / FRAME_US;
}

/* A deploy: A records 0..1520 (stopped mid-GOP), B from keyframe 1000 on
 * with its clock 25 ms off.  One switch, every frame once, no hole; the
 * segments only one copy has are unique, the others are marked. */
static void test_handover(void **state)
{
        struct rec r = { 0 };
        struct tl_result t;
        static int seen[N];

        record(&r, "A", 0, 1521, 0, 0, 0);
        record(&r, "B", 1000, N, 25000, 0, 0);
        build(&r, T0, T0 + N * FRAME_US, &t);
        count(&r, &t, seen);
        assert_each_once(seen, 0, N);
        assert_int_equal(t.frames, N);
        assert_int_equal(t.n_holes, 0);
        assert_int_equal(t.switches, 1);
        assert_int_equal(t.duplicate_frames, 521);
        for (size_t s = 0; s < r.n; s++) {
                const struct tl_segment *sg = &r.segs[s];
                int64_t shift = sg->instance_id[0] == 'B' ? 25000 : 0;
                int64_t first = frame_no(sg, 0, shift), last = frame_no(sg, sg->n - 1, shift);

                if (last < 1000 || first > 1520)
                        assert_int_equal(t.overlap[s], TL_UNIQUE);
                else
                        assert_int_not_equal(t.overlap[s], TL_UNIQUE);
                assert_int_equal(t.shift_us[s] - t.shift_us[0], shift); /* segment 0 is A's */
        }
        tl_result_free(&t);
        rec_free(&r);
}

/* B was killed inside the overlap and restarted: frames 1100-1149 missing
 * in B.  A holds them: nothing is missing, nothing repeated. */
static void test_hole_in_one_copy(void **state)
{
        struct rec r = { 0 };
        struct tl_result t;
        static int seen[N];

        record(&r, "A", 0, 1600, 0, 0, 0);
        record(&r, "B", 1000, N, -30000, 1100, 1150);
        build(&r, T0, T0 + N * FRAME_US, &t);
        count(&r, &t, seen);
        assert_each_once(seen, 0, N);
        assert_int_equal(t.n_holes, 0);
        tl_result_free(&t);
        rec_free(&r);
}

/* The same, with A the copy that restarted (1200-1290 lost, back at the
 * keyframe 1300) while B has been recording since 1000. */
static void test_old_copy_restarted(void **state)
{
        struct rec r = { 0 };
        struct tl_result t;
        static int seen[N];

        record(&r, "A", 0, 1700, 0, 1200, 1290);
        record(&r, "B", 1000, N, 10000, 0, 0);
        build(&r, T0, T0 + N * FRAME_US, &t);
        count(&r, &t, seen);
        assert_each_once(seen, 0, N);
        assert_int_equal(t.n_holes, 0);
        tl_result_free(&t);
        rec_free(&r);
}

/* A camera outage: both copies lack 2000-2149 (back at keyframe 2150).
 * One hole, from just after frame 1999 to frame 2150. */
static void test_outage(void **state)
{
        struct rec r = { 0 };
        struct tl_result t;
        static int seen[N];

        record(&r, "A", 0, 2500, 0, 2000, 2120);
        record(&r, "B", 1000, N, 20000, 2000, 2120);
        build(&r, T0, T0 + N * FRAME_US, &t);
        count(&r, &t, seen);
        assert_each_once(seen, 0, 2000);
        assert_each_once(seen, 2150, N);
        for (size_t i = 2000; i < 2150; i++)
                assert_int_equal(seen[i], 0);
        assert_int_equal(t.n_holes, 1);
        assert_int_equal(t.holes[0].start_us, T0 + 2000 * FRAME_US);
        assert_int_equal(t.holes[0].end_us, T0 + 2150 * FRAME_US);
        assert_false(t.holes[0].inside_gop);
        tl_result_free(&t);
        rec_free(&r);
}

/* A lost one frame inside a GOP (a dropped packet); B has that GOP whole
 * and is taken for it.  With only A, the loss is a hole inside the GOP. */
static void test_packet_loss(void **state)
{
        struct rec r = { 0 };
        struct tl_result t;
        static int seen[N];
        const struct tl_segment *sg;
        struct cm_frame *f;

        record(&r, "A", 0, N, 0, 0, 0);
        /* drop camera frame 520 from A's segment holding it */
        for (size_t s = 0; s < r.n; s++) {
                sg = &r.segs[s];
                if (frame_no(sg, 0, 0) <= 520 && frame_no(sg, sg->n - 1, 0) >= 520) {
                        size_t k = (size_t)(520 - frame_no(sg, 0, 0));

                        f = r.bufs[s];
                        memmove(f + k, f + k + 1, (sg->n - k - 1) * sizeof(*f));
                        r.segs[s].n--;
                }
        }
        build(&r, T0, T0 + N * FRAME_US, &t);
        assert_int_equal(t.n_holes, 1);
        assert_true(t.holes[0].inside_gop);
        assert_int_equal(t.holes[0].start_us, T0 + 520 * FRAME_US);
        assert_int_equal(t.holes[0].end_us, T0 + 521 * FRAME_US);
        tl_result_free(&t);

        record(&r, "B", 400, 800, 0, 0, 0);
        build(&r, T0, T0 + N * FRAME_US, &t);
        count(&r, &t, seen);
        assert_each_once(seen, 0, N);
        assert_int_equal(t.n_holes, 0);
        tl_result_free(&t);
        rec_free(&r);
}

/* One copy on a receive clock 2 s off: aligned by the frames, still exact. */
static void test_clock_seconds_off(void **state)
{
        struct rec r = { 0 };
        struct tl_result t;
        static int seen[N];

        record(&r, "A", 0, 1800, 0, 0, 0);
        record(&r, "B", 900, N, 2000000, 0, 0);
        build(&r, T0 - 5000000, T0 + N * FRAME_US + 5000000, &t); /* the range is on the reference clock */
        count(&r, &t, seen);
        assert_each_once(seen, 0, N);
        assert_int_equal(t.n_holes, 0);
        tl_result_free(&t);
        rec_free(&r);
}

/* A range starts at the keyframe at or before `from` and ends with the GOP
 * holding the last frame before `to`. */
static void test_range(void **state)
{
        struct rec r = { 0 };
        struct tl_result t;
        static int seen[N];

        record(&r, "A", 0, 1521, 0, 0, 0);
        record(&r, "B", 1000, N, 25000, 0, 0);
        build(&r, T0 + 1010 * FRAME_US, T0 + 1260 * FRAME_US, &t);
        count(&r, &t, seen);
        assert_each_once(seen, 1000, 1300);
        for (size_t i = 0; i < N; i++)
                if (i < 1000 || i >= 1300)
                        assert_int_equal(seen[i], 0);
        tl_result_free(&t);
        rec_free(&r);
}

static void set_run(struct rec *r, size_t from, int64_t run)
{
        for (size_t s = from; s < r->n; s++)
                r->segs[s].run_key = run;
}

/* Regression (five deploys in a row lost 10 frames): each recording session
 * has its own RTCP mapping.  A's first process is on the camera clock, B
 * and A's second process 33 ms off; grouping A's two processes as one copy
 * mixed two clocks and split a GOP's two copies into different clusters. */
static void test_each_session_has_its_own_clock(void **state)
{
        struct rec r = { 0 };
        struct tl_result t;
        static int seen[N];
        size_t n0;

        record(&r, "A", 0, 1165, 0, 0, 0); /* stopped mid-GOP */
        set_run(&r, 0, 1);
        n0 = r.n;
        record(&r, "B", 1000, 2000, 33000, 0, 0);
        set_run(&r, n0, 7);
        n0 = r.n;
        record(&r, "A", 1900, N, 33000, 0, 0);
        set_run(&r, n0, 2);
        build(&r, T0 - 5000000, T0 + N * FRAME_US + 5000000, &t);
        count(&r, &t, seen);
        assert_each_once(seen, 0, N);
        assert_int_equal(t.n_holes, 0);
        assert_int_equal(t.switches, 2);
        tl_result_free(&t);
        rec_free(&r);
}

/* Hot standby: A and B record every frame.  The copy the timeline does not
 * use is covered, segment by segment, and deleting what is covered keeps
 * every frame once.  A segment with one frame the other copy lacks (a
 * different hash) is a duplicate by count but not covered; nor is one whose
 * other copy has other sound; a segment being recorded never covers another. */
static void test_covered_copies_can_go(void **state)
{
        struct rec r = { 0 }, kept = { 0 };
        struct tl_result t;
        static int seen[N];
        size_t n_cov = 0, victim = SIZE_MAX;

        record(&r, "A", 0, N, 0, 0, 0);
        record(&r, "B", 0, N, 25000, 0, 0);
        build(&r, T0 - FRAME_US, T0 + (N + 1) * FRAME_US, &t);
        for (size_t s = 0; s < r.n; s++) {
                if (t.covered[s]) {
                        assert_int_equal(t.overlap[s], TL_DUPLICATE);
                        n_cov++;
                        if (victim == SIZE_MAX && s > 0 && t.overlap[s - 1] == TL_DUPLICATE)
                                victim = s;
                }
        }
        assert_int_equal(n_cov, r.n / 2); /* one whole copy */
        for (size_t s = 0; s < r.n; s++)
                if (!t.covered[s])
                        kept.segs[kept.n++] = r.segs[s];
        tl_result_free(&t);
        build(&kept, T0 - FRAME_US, T0 + (N + 1) * FRAME_US, &t);
        count(&kept, &t, seen);
        assert_each_once(seen, 0, N);
        assert_int_equal(t.duplicate_frames, 0);
        tl_result_free(&t);

        /* one frame of a covered segment differs from the other copy's */
        assert_true(victim != SIZE_MAX);
        r.bufs[victim][GOP + 3].hash ^= 0x5a5;
        build(&r, T0 - FRAME_US, T0 + (N + 1) * FRAME_US, &t);
        assert_int_equal(t.overlap[victim], TL_DUPLICATE);
        assert_false(t.covered[victim]);
        assert_true(t.covered[victim - 1]);
        tl_result_free(&t);
        r.bufs[victim][GOP + 3].hash ^= 0x5a5;

        /* the other copy has other sound (or none): it covers nothing */
        for (size_t s = 0; s < r.n; s++)
                snprintf(r.segs[s].audio_codec, sizeof(r.segs[s].audio_codec), "%s",
                         strcmp(r.segs[s].instance_id, r.segs[victim].instance_id) ? "" : "aac");
        build(&r, T0 - FRAME_US, T0 + (N + 1) * FRAME_US, &t);
        for (size_t s = 0; s < r.n; s++)
                assert_false(t.covered[s]);
        tl_result_free(&t);
        for (size_t s = 0; s < r.n; s++)
                snprintf(r.segs[s].audio_codec, sizeof(r.segs[s].audio_codec), "aac");
        build(&r, T0 - FRAME_US, T0 + (N + 1) * FRAME_US, &t);
        assert_true(t.covered[victim]);
        tl_result_free(&t);

        /* the copy it would be deleted for is still being recorded */
        for (size_t s = 0; s < r.n; s++)
                r.segs[s].recording = !strcmp(r.segs[s].instance_id, r.segs[victim].instance_id) ? false : true;
        build(&r, T0 - FRAME_US, T0 + (N + 1) * FRAME_US, &t);
        for (size_t s = 0; s < r.n; s++)
                assert_false(t.covered[s]);
        tl_result_free(&t);

        /* a range that cuts a segment: the cut one is not judged */
        build(&r, T0 + 10 * FRAME_US, T0 + (N + 1) * FRAME_US, &t);
        for (size_t s = 0; s < r.n; s++)
                if (r.segs[s].start_us < T0 + 10 * FRAME_US)
                        assert_false(t.covered[s]);
        tl_result_free(&t);
        rec_free(&r);
}

/* Nothing recorded in the range: no piece, no crash; an empty range is refused. */
static void test_empty(void **state)
{
        struct rec r = { 0 };
        struct tl_result t;
        struct tl_options o = { .from_us = T0, .to_us = T0 };

        build(&r, T0, T0 + 1000, &t);
        assert_int_equal(t.n_pieces, 0);
        tl_result_free(&t);
        assert_int_equal(tl_build(r.segs, 0, &o, &t), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_handover),
                cmocka_unit_test(test_hole_in_one_copy),
                cmocka_unit_test(test_old_copy_restarted),
                cmocka_unit_test(test_outage),
                cmocka_unit_test(test_packet_loss),
                cmocka_unit_test(test_clock_seconds_off),
                cmocka_unit_test(test_range),
                cmocka_unit_test(test_each_session_has_its_own_clock),
                cmocka_unit_test(test_covered_copies_can_go),
                cmocka_unit_test(test_empty),
        };

        return cmocka_run_group_tests(tests, setup, NULL);
}
