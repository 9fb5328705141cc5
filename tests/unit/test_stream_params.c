/* Unit tests of worker/stream_params.c: the parameter sets of a keyframe,
 * and the picture size libavcodec's parser reads from them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "worker/stream_params.h"

/* An H.264 IDR access unit of a 64x48 picture (x264, baseline; the slice is
 * cut after its header, which is all the parser reads): SPS, PPS, slice;
 * start codes of 4 and 3 bytes. */
static const uint8_t sps[] = { 0x67, 0x42, 0xc0, 0x0a, 0xd9, 0x04, 0x7b, 0x01, 0x10, 0x00, 0x00, 0x03,
                               0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x22, 0x64, 0x80 };
static const uint8_t pps[] = { 0x68, 0xcb, 0x83, 0xcb, 0x20 };
static const uint8_t idr[] = { 0x65, 0x88, 0x84, 0x0c, 0x7f, 0xe4, 0x5e, 0x52, 0xf1, 0x40, 0x00, 0xbf,
                               0x8a, 0x00, 0x60, 0x10, 0xd4, 0xda, 0x70, 0x1f, 0xf8, 0x01, 0x29, 0xd8 };

static size_t build_au(uint8_t *au)
{
        size_t n = 0;

        memcpy(au + n, "\0\0\0\1", 4);
        n += 4;
        memcpy(au + n, sps, sizeof(sps));
        n += sizeof(sps);
        memcpy(au + n, "\0\0\1", 3);
        n += 3;
        memcpy(au + n, pps, sizeof(pps));
        n += sizeof(pps);
        memcpy(au + n, "\0\0\0\1", 4);
        n += 4;
        memcpy(au + n, idr, sizeof(idr));
        return n + sizeof(idr);
}

static void test_extract_h264(void **state)
{
        uint8_t au[128], out[128];
        size_t len = build_au(au);
        int n = stream_params_extract(au, len, false, out, sizeof(out));

        assert_int_equal(n, 4 + (int)sizeof(sps) + 4 + (int)sizeof(pps));
        assert_memory_equal(out, "\0\0\0\1", 4);
        assert_memory_equal(out + 4, sps, sizeof(sps));
        assert_memory_equal(out + 4 + sizeof(sps), "\0\0\0\1", 4);
        assert_memory_equal(out + 8 + sizeof(sps), pps, sizeof(pps));
        /* a slice alone carries none */
        assert_int_equal(stream_params_extract(au + len - sizeof(idr) - 4, sizeof(idr) + 4, false, out, sizeof(out)), 0);
        /* too small a buffer says so */
        assert_int_equal(stream_params_extract(au, len, false, out, 10), -ENOBUFS);
}

/* Regression: a keyframe whose SPS was lost (UDP) gave its PPS alone as the
 * segment's parameters, and the file's avcC came out empty: unreadable.
 * Half a set is no set. */
static void test_half_a_set_is_none(void **state)
{
        uint8_t au[128], out[128];
        size_t len = build_au(au);

        /* from the PPS on: no SPS */
        assert_int_equal(stream_params_extract(au + 4 + sizeof(sps), len - 4 - sizeof(sps), false, out, sizeof(out)),
                         0);
}

/* The same bytes read as H.265 are no parameter sets (types 51, 52, 50). */
static void test_extract_is_codec_aware(void **state)
{
        uint8_t au[128], out[128];
        size_t len = build_au(au);
        static const uint8_t hevc[] = { 0, 0, 0, 1, 0x40, 0x01, 0x0c, 0x01, /* VPS */
                                        0, 0, 0, 1, 0x42, 0x01, 0x01, 0x01, /* SPS */
                                        0, 0, 0, 1, 0x44, 0x01, 0xc1, 0x72, /* PPS */
                                        0, 0, 0, 1, 0x26, 0x01, 0xaf, 0x09 /* IDR_N_LP slice */ };

        assert_int_equal(stream_params_extract(au, len, true, out, sizeof(out)), 0);
        assert_int_equal(stream_params_extract(hevc, sizeof(hevc), true, out, sizeof(out)), 24);
        assert_memory_equal(out, hevc, 24);
}

static void test_size_from_the_parser(void **state)
{
        uint8_t au[128];
        size_t len = build_au(au);
        int w = 0, h = 0;

        assert_int_equal(stream_params_size(AV_CODEC_ID_H264, au, len, &w, &h), 0);
        assert_int_equal(w, 64);
        assert_int_equal(h, 48);
        assert_int_equal(stream_params_size(AV_CODEC_ID_H264, idr, sizeof(idr), &w, &h), -EINVAL);
}

/* Regression: a busy probe left a camera without a picture size, and every
 * segment open failed; the recorder now reads it from the first keyframe
 * behind the SDP's parameter sets, when the keyframe carries none. */
static void test_size_from_sdp_sets_ahead_of_a_bare_keyframe(void **state)
{
        uint8_t au[128], buf[160];
        size_t len = build_au(au), sets = 4 + sizeof(sps) + 3 + sizeof(pps);
        int w = 0, h = 0;

        /* the keyframe alone: no size */
        assert_int_equal(stream_params_size(AV_CODEC_ID_H264, au + sets, len - sets, &w, &h), -EINVAL);
        /* behind the SDP's sets (extradata): 64x48 */
        memcpy(buf, au, sets);
        memcpy(buf + sets, au + sets, len - sets);
        assert_int_equal(stream_params_size(AV_CODEC_ID_H264, buf, len, &w, &h), 0);
        assert_int_equal(w, 64);
        assert_int_equal(h, 48);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_extract_h264),
                cmocka_unit_test(test_half_a_set_is_none),
                cmocka_unit_test(test_extract_is_codec_aware),
                cmocka_unit_test(test_size_from_the_parser),
                cmocka_unit_test(test_size_from_sdp_sets_ahead_of_a_bare_keyframe),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
