/* Unit tests of worker/timeline.c: the camera time of a session's packets,
 * whatever the server does with Range, sender reports, RTP wraps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "worker/timeline.h"

#define S INT64_C(1000000)
#define MS INT64_C(1000)
#define T0 (INT64_C(1795540000) * S) /* camera time of video frame 0 */
#define FRAME (40 * MS)
#define AFRAME (64 * MS)             /* 1024 samples at 16 kHz */
#define MONO0 (100 * S)
#define WRAP90K (INT64_C(4294967296) * S / 90000)

/* A simulated session: where pts start (npt, base), when reports start to
 * stamp packets, how late packets arrive, and how far our clock is from the
 * camera's. */
struct sim {
        int64_t npt_v_us, npt_a_us; /* media time of frame 0 / audio packet 0 */
        int64_t sr_from_us;         /* camera time from which packets carry a stamp; INT64_MAX: never */
        int64_t latency_us;         /* network delay */
        int64_t our_clock_us;       /* our clock - camera clock */
        int64_t stamp_error_us;     /* added to every stamp (a wrap) */
};

static const struct timeline_stream_cfg cfg2[2] = {
        { .prft_lags = true, .wrap_us = WRAP90K },
        { .audio = true, .wrap_us = INT64_C(4294967296) * S / 16000 },
};

static struct timeline_packet video(const struct sim *m, int k)
{
        int64_t cam = T0 + k * FRAME;
        /* the parser hands frame k the stamp of frame k+1 */
        int64_t stamped = cam + FRAME >= m->sr_from_us ? cam + FRAME + m->stamp_error_us : INT64_MIN;

        return (struct timeline_packet){ .stream = 0, .pts_us = m->npt_v_us + k * FRAME, .dts_us = m->npt_v_us + k * FRAME,
                                         .dur_us = 0, .prft_us = stamped,
                                         .recv_real_us = cam + m->latency_us + m->our_clock_us,
                                         .recv_mono_us = MONO0 + k * FRAME + m->latency_us };
}

static struct timeline_packet audio(const struct sim *m, int j)
{
        int64_t cam = T0 + j * AFRAME;

        return (struct timeline_packet){ .stream = 1, .pts_us = m->npt_a_us + j * AFRAME, .dts_us = m->npt_a_us + j * AFRAME,
                                         .dur_us = AFRAME,
                                         .prft_us = cam >= m->sr_from_us ? cam + m->stamp_error_us : INT64_MIN,
                                         /* sent once its last sample is captured */
                                         .recv_real_us = cam + AFRAME + m->latency_us + m->our_clock_us,
                                         .recv_mono_us = MONO0 + j * AFRAME + AFRAME + m->latency_us };
}

/* Feeds `seconds` of interleaved video and audio, deciding as it goes (as
 * the recorder does); returns the epochs of video frame `probe_v` and audio
 * packet `probe_a`. */
static void run(struct timeline *t, const struct sim *m, int64_t seconds, bool with_audio, int probe_v, int *ev,
                int probe_a, int *ea)
{
        int k = 0, j = 0;

        while (k * FRAME < seconds * S) {
                struct timeline_packet p;

                if (!with_audio || k * FRAME <= j * AFRAME + AFRAME) {
                        p = video(m, k);
                        int e = timeline_observe(t, &p);
                        if (k == probe_v && ev)
                                *ev = e;
                        k++;
                } else {
                        p = audio(m, j);
                        int e = timeline_observe(t, &p);
                        if (j == probe_a && ea)
                                *ea = e;
                        j++;
                }
                timeline_decide(t, p.recv_mono_us, false);
        }
}

static int64_t video_time(const struct timeline *t, const struct sim *m, int k, int epoch)
{
        return timeline_time_us(t, 0, epoch, m->npt_v_us + k * FRAME);
}

static int64_t audio_time(const struct timeline *t, const struct sim *m, int j, int epoch)
{
        return timeline_time_us(t, 1, epoch, m->npt_a_us + j * AFRAME);
}

/* Regression: a server that answers a late PLAY with Range: npt=27.27-
 * made libavformat's start_time_realtime + pts 27 s wrong; from the stamps
 * the npt cancels out. */
static void test_rtcp_time_ignores_the_play_range(void **state)
{
        struct sim m = { .npt_v_us = 27270 * MS, .npt_a_us = 27270 * MS, .sr_from_us = T0, .latency_us = 7 * MS };
        struct timeline t;
        int ev = -1, ea = -1;

        timeline_init(&t, 2, cfg2, TIMELINE_RTCP_WAIT_US);
        run(&t, &m, 10, true, 50, &ev, 20, &ea);
        assert_int_equal(t.source, TIMELINE_RTCP);
        assert_true(video_time(&t, &m, 50, ev) == T0 + 50 * FRAME);
        assert_true(audio_time(&t, &m, 20, ea) == T0 + 20 * AFRAME);
}

/* Two sessions of one camera, joined at different moments (different npt,
 * different pts origins): the same frame gets the same time. */
static void test_two_sessions_agree_on_a_frame(void **state)
{
        struct sim a = { .npt_v_us = 0, .npt_a_us = 0, .sr_from_us = T0, .latency_us = 3 * MS };
        struct sim b = { .npt_v_us = 31 * S - 200 * FRAME, .npt_a_us = 5 * S, .sr_from_us = T0 + 2 * S,
                         .latency_us = 12 * MS };
        struct timeline ta, tb;
        int ea = -1, eb = -1;

        timeline_init(&ta, 2, cfg2, TIMELINE_RTCP_WAIT_US);
        timeline_init(&tb, 2, cfg2, TIMELINE_RTCP_WAIT_US);
        run(&ta, &a, 10, true, 150, &ea, 0, NULL);
        run(&tb, &b, 10, true, 150, &eb, 0, NULL);
        assert_int_equal(ta.source, TIMELINE_RTCP);
        assert_int_equal(tb.source, TIMELINE_RTCP);
        assert_true(video_time(&ta, &a, 150, ea) == video_time(&tb, &b, 150, eb));
}

/* The first report comes 4.6 s after PLAY: still within the wait. */
static void test_a_late_first_report_is_waited_for(void **state)
{
        struct sim m = { .npt_v_us = 5 * S, .npt_a_us = 5 * S, .sr_from_us = T0 + 4600 * MS, .latency_us = 5 * MS };
        struct timeline t;
        int ev = -1;

        timeline_init(&t, 2, cfg2, TIMELINE_RTCP_WAIT_US);
        run(&t, &m, 10, true, 3, &ev, 0, NULL);
        assert_int_equal(t.source, TIMELINE_RTCP);
        assert_int_equal(ev, 0); /* held from before the report */
        assert_true(video_time(&t, &m, 3, ev) == T0 + 3 * FRAME);
}

/* No report at all: the receive clock, less the least delay seen; audio
 * also less its packet's length (it is sent after its last sample). */
static void test_no_report_falls_back_to_the_receive_clock(void **state)
{
        struct sim m = { .npt_v_us = 0, .npt_a_us = 0, .sr_from_us = INT64_MAX, .latency_us = 4 * MS };
        struct timeline t;
        int ev = -1, ea = -1;

        timeline_init(&t, 2, cfg2, TIMELINE_RTCP_WAIT_US);
        run(&t, &m, 10, true, 10, &ev, 10, &ea);
        assert_int_equal(t.source, TIMELINE_RECEIVE);
        assert_true(video_time(&t, &m, 10, ev) == T0 + 10 * FRAME + 4 * MS);
        assert_true(audio_time(&t, &m, 10, ea) == T0 + 10 * AFRAME + 4 * MS);
        assert_true(t.first_recv_mono_us + TIMELINE_RTCP_WAIT_US >= MONO0);
}

/* A camera whose clock is 40 s off ours: footage is filed by our clock, and
 * the reports still keep audio on video. */
static void test_a_camera_clock_far_off_is_not_trusted(void **state)
{
        struct sim m = { .npt_v_us = 0, .npt_a_us = 0, .sr_from_us = T0, .latency_us = 5 * MS,
                         .our_clock_us = 40 * S };
        struct timeline t;
        int ev = -1, ea = -1;

        timeline_init(&t, 2, cfg2, TIMELINE_RTCP_WAIT_US);
        run(&t, &m, 10, true, 25, &ev, 25, &ea);
        assert_int_equal(t.source, TIMELINE_RECEIVE);
        assert_true(t.rtcp_rejected);
        assert_true(t.skew_us < -39 * S && t.skew_us > -41 * S);
        assert_true(video_time(&t, &m, 25, ev) == T0 + 25 * FRAME + 40 * S + 5 * MS);
        /* sync from RTCP: the audio packet that starts with frame 25 is there too */
        assert_true(audio_time(&t, &m, 25, ea) - video_time(&t, &m, 25, ev) == 25 * AFRAME - 25 * FRAME);
}

/* Regression of libavformat's stamp across a 32-bit wrap (off by 2^32
 * ticks, 13 h at 90 kHz): folded back. */
static void test_stamps_across_an_rtp_wrap_are_folded(void **state)
{
        struct sim m = { .npt_v_us = 0, .npt_a_us = 0, .sr_from_us = T0, .latency_us = 5 * MS,
                         .stamp_error_us = -WRAP90K };
        struct timeline t;
        int ev = -1;

        timeline_init(&t, 1, cfg2, TIMELINE_RTCP_WAIT_US);
        run(&t, &m, 10, false, 30, &ev, 0, NULL);
        assert_int_equal(t.source, TIMELINE_RTCP);
        assert_true(video_time(&t, &m, 30, ev) == T0 + 30 * FRAME);
}

/* libavformat rebases a second stream onto the first one's report when its
 * own report arrives: its pts step.  The step is absorbed, the packets
 * before and after it are continuous. */
static void test_a_step_at_the_second_streams_report_is_absorbed(void **state)
{
        struct timeline_stream_cfg cfg[2] = { cfg2[0], cfg2[1] };
        struct timeline t;
        struct timeline_packet p;
        int e0, e1;

        timeline_init(&t, 2, cfg, TIMELINE_RTCP_WAIT_US);
        /* video reported from the start: B = T0 */
        for (int k = 0; k < 1 + TIMELINE_SYNC_PACKETS; k++) {
                p = (struct timeline_packet){ .stream = 0, .pts_us = k * FRAME, .dts_us = k * FRAME,
                                              .prft_us = T0 + (k + 1) * FRAME, .recv_real_us = T0 + k * FRAME,
                                              .recv_mono_us = MONO0 + k * FRAME };
                timeline_observe(&t, &p);
        }
        /* audio packet 0 without a report, on its own origin (0)... */
        p = (struct timeline_packet){ .stream = 1, .pts_us = 0, .dts_us = 0, .dur_us = AFRAME, .prft_us = INT64_MIN,
                                      .recv_real_us = T0 + 30 * MS + AFRAME, .recv_mono_us = MONO0 + 94 * MS };
        e0 = timeline_observe(&t, &p);
        /* ...then reported and rebased onto video's origin: the next packet,
         * 64 ms later, says 94 ms (the audio began 30 ms after the video) */
        p = (struct timeline_packet){ .stream = 1, .pts_us = AFRAME + 30 * MS, .dts_us = AFRAME + 30 * MS, .dur_us = AFRAME,
                                      .prft_us = T0 + 30 * MS + AFRAME, .recv_real_us = T0 + 30 * MS + 2 * AFRAME,
                                      .recv_mono_us = MONO0 + 158 * MS };
        e1 = timeline_observe(&t, &p);
        assert_true(timeline_decide(&t, MONO0 + 158 * MS, false));
        assert_int_equal(e0, 0);
        assert_int_equal(e1, 1);
        assert_int_equal(t.st[1].jump_us, 30 * MS);
        assert_true(timeline_time_us(&t, 1, 1, AFRAME + 30 * MS) == T0 + 30 * MS + AFRAME);
        assert_true(timeline_time_us(&t, 1, 0, 0) == T0 + 30 * MS);
}

/* Regression: audio's report came first, so libavformat rebased the video
 * (B-frames, 2 between references) 178 ms when its own arrived; a frame
 * before that step and one after it were 178 ms apart in camera time.
 * The step is now sized on the frame grid: every frame in place. */
static void test_a_video_step_with_bframes_is_absorbed(void **state)
{
        /* presentation order of the decode sequence I0 P3 B1 B2 P6 B4 B5 ... */
        static const int order[] = { 0, 3, 1, 2, 6, 4, 5, 9, 7, 8, 12, 10, 11, 15, 13, 14, 18, 16, 17, 21, 19, 20,
                                     24, 22, 23, 27, 25, 26, 30, 28, 29 };
        const int64_t step = 178367, sync_at = 10; /* the 11th packet is the first after the report */
        struct timeline t;
        int epoch[32];

        timeline_init(&t, 2, cfg2, TIMELINE_RTCP_WAIT_US);
        /* audio, reported from the start: B = T0 */
        for (int j = 0; j < 2; j++) {
                struct timeline_packet a = { .stream = 1, .pts_us = j * AFRAME, .dts_us = j * AFRAME, .dur_us = AFRAME,
                                             .prft_us = T0 + j * AFRAME,
                                             .recv_real_us = T0 + (j + 1) * AFRAME + 2 * MS,
                                             .recv_mono_us = MONO0 + j * AFRAME };
                timeline_observe(&t, &a);
        }
        for (int i = 0; i < 31; i++) {
                int k = order[i];
                bool post = i >= sync_at;
                int64_t pts = k * FRAME + (post ? 0 : -step); /* before: its own origin */
                struct timeline_packet v = {
                        .stream = 0, .pts_us = pts, .dts_us = (i - 1) * FRAME + (post ? 0 : -step),
                        /* lagged stamps: packet i carries packet i+1's */
                        .prft_us = i + 1 >= sync_at && i + 1 < 31 ? T0 + order[i + 1] * FRAME : INT64_MIN,
                        /* a reference is sent when captured; a B-frame after the reference it precedes */
                        .recv_real_us = T0 + (k > (i ? order[i - 1] : 0) || i == 0 ? k * FRAME : order[i - 1] * FRAME) +
                                        5 * MS + (i % 3) * 300,
                        .recv_mono_us = MONO0 + i * FRAME,
                };
                epoch[i] = timeline_observe(&t, &v);
                timeline_decide(&t, v.recv_mono_us, false);
        }
        assert_int_equal(t.source, TIMELINE_RTCP);
        assert_int_equal(t.st[0].jump_us, step);
        for (int i = 0; i < 31; i++) {
                int64_t pts = order[i] * FRAME + (i >= sync_at ? 0 : -step);
                assert_true(timeline_time_us(&t, 0, epoch[i], pts) == T0 + order[i] * FRAME);
        }
}

/* A stream that has sent nothing yet still holds the decision back (its
 * first packets would have nothing to be placed by), up to the wait. */
static void test_a_silent_stream_holds_the_decision_until_the_wait(void **state)
{
        struct timeline t;

        timeline_init(&t, 2, cfg2, TIMELINE_RTCP_WAIT_US);
        for (int j = 0; j < 10; j++) {
                struct timeline_packet a = { .stream = 1, .pts_us = j * AFRAME, .dts_us = j * AFRAME, .dur_us = AFRAME,
                                             .prft_us = T0 + j * AFRAME, .recv_real_us = T0 + (j + 1) * AFRAME,
                                             .recv_mono_us = MONO0 + j * AFRAME };
                timeline_observe(&t, &a);
                assert_false(timeline_decide(&t, a.recv_mono_us, false));
        }
        assert_true(timeline_decide(&t, MONO0 + TIMELINE_RTCP_WAIT_US, false));
        assert_int_equal(t.source, TIMELINE_RTCP);
}

/* Forced (the hold is full) before any report: the receive clock; a report
 * later does not move the session's time. */
static void test_forced_decision_and_a_report_after_it(void **state)
{
        struct sim m = { .npt_v_us = 0, .sr_from_us = T0 + 2 * S, .latency_us = 6 * MS };
        struct timeline t;
        struct timeline_packet p;
        int e;

        timeline_init(&t, 1, cfg2, TIMELINE_RTCP_WAIT_US);
        p = video(&m, 0);
        timeline_observe(&t, &p);
        assert_false(timeline_decide(&t, p.recv_mono_us, false));
        assert_true(timeline_decide(&t, p.recv_mono_us, true));
        assert_int_equal(t.source, TIMELINE_RECEIVE);
        for (int k = 1; k <= 80; k++) {
                p = video(&m, k);
                e = timeline_observe(&t, &p);
        }
        assert_int_equal(e, 1);
        assert_true(video_time(&t, &m, 80, e) == T0 + 80 * FRAME + 6 * MS);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rtcp_time_ignores_the_play_range),
                cmocka_unit_test(test_two_sessions_agree_on_a_frame),
                cmocka_unit_test(test_a_late_first_report_is_waited_for),
                cmocka_unit_test(test_no_report_falls_back_to_the_receive_clock),
                cmocka_unit_test(test_a_camera_clock_far_off_is_not_trusted),
                cmocka_unit_test(test_stamps_across_an_rtp_wrap_are_folded),
                cmocka_unit_test(test_a_step_at_the_second_streams_report_is_absorbed),
                cmocka_unit_test(test_a_video_step_with_bframes_is_absorbed),
                cmocka_unit_test(test_a_silent_stream_holds_the_decision_until_the_wait),
                cmocka_unit_test(test_forced_decision_and_a_report_after_it),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
