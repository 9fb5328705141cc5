/* Unit tests of worker/segment_writer.c: decode times of a B-frame stream.
 * Packets come as the camera's session gives them at its start: the pts of
 * I P B B P B B..., and libavformat's guessed decode time equal to the pts
 * (it reads them while probing, before it knows the stream reorders). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include <libavformat/avformat.h>

#include "worker/segment_writer.h"

#define FRAME_US 40000
static const int ORDER[] = { 0, 3, 1, 2, 6, 4, 5, 9, 7, 8 }; /* display index of each decoded frame */
#define N_FRAMES (int)(sizeof(ORDER) / sizeof(ORDER[0]))

static void write_gop(const char *path, int reorder, int video_delay)
{
        AVCodecParameters *par = avcodec_parameters_alloc();
        struct segment_stream ss;
        struct segment_writer *w;
        AVPacket *pkt = av_packet_alloc();
        uint8_t payload[64] = { 0 };
        int64_t bytes;

        par->codec_type = AVMEDIA_TYPE_VIDEO;
        par->codec_id = AV_CODEC_ID_MPEG4; /* the muxer does not look inside: the times are what is tested */
        par->width = 320;
        par->height = 240;
        par->video_delay = video_delay;
        ss = (struct segment_stream){ .par = par, .time_base = { 1, 90000 }, .in_index = 0, .frame_us = FRAME_US,
                                      .reorder = reorder };
        unlink(path);
        assert_int_equal(segment_writer_open(&w, path, &ss, 1), 0);
        for (int i = 0; i < N_FRAMES; i++) {
                int64_t pts = (int64_t)ORDER[i] * FRAME_US;

                pkt->data = payload;
                pkt->size = sizeof(payload);
                pkt->pts = pkt->dts = pts * 9 / 100; /* the guess: decode time = pts */
                pkt->duration = 3600;
                pkt->flags = i == 0 ? AV_PKT_FLAG_KEY : 0;
                assert_int_equal(segment_writer_write(w, pkt, 0, pts), 0);
        }
        assert_int_equal(segment_writer_close(w, &bytes), 0);
        av_packet_free(&pkt);
        avcodec_parameters_free(&par);
}

/* The shown times read back, sorted: every frame at its own time. */
static void assert_times_kept(const char *path)
{
        AVFormatContext *ic = NULL;
        AVPacket *pkt = av_packet_alloc();
        int64_t seen[N_FRAMES + 1] = { 0 };
        int n = 0;

        assert_int_equal(avformat_open_input(&ic, path, NULL, NULL), 0);
        while (av_read_frame(ic, pkt) >= 0) {
                assert_true(n < N_FRAMES);
                seen[n++] = av_rescale_q(pkt->pts, ic->streams[0]->time_base, AV_TIME_BASE_Q);
                av_packet_unref(pkt);
        }
        assert_int_equal(n, N_FRAMES);
        for (int i = 0; i < n; i++) /* in decode order: display index ORDER[i], one shift for all */
                assert_int_equal(seen[i] - seen[0], (int64_t)ORDER[i] * FRAME_US);
        avformat_close_input(&ic);
        av_packet_free(&pkt);
}

/* Regression: the B-frames after the first P got the P's time (their pts
 * bumped so decode times would rise): two frames at one time, 80 ms off. */
static void test_bframes_keep_their_times_when_the_reorder_is_seen(void **state)
{
        char path[] = "/tmp/mwr-test-segment-writer-XXXXXX.mp4";
        int fd = mkstemps(path, 4);

        assert_true(fd >= 0);
        close(fd);
        write_gop(path, 1, 0);
        assert_times_kept(path);
        write_gop(path, 0, 2); /* or as the probe found it */
        assert_times_kept(path);
        unlink(path);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_bframes_keep_their_times_when_the_reorder_is_seen),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
