/* Unit tests of tests/common/framecode.c: the frame number grid survives a
 * round trip, blur and noise, and misreads are refused, not misreported. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "framecode.h"

#define W 640
#define H 360

static uint8_t luma[W * H];

static void test_geometry(void **state)
{
        struct framecode_geom g;

        assert_int_equal(framecode_geometry(640, 360, &g), 0);
        assert_int_equal(g.cell_px, 40);
        assert_int_equal(g.height_px, 120);
        assert_int_equal(framecode_geometry(320, 180, &g), 0);
        assert_int_equal(g.cell_px, 20);
        assert_int_equal(framecode_geometry(100, 100, &g), -EINVAL); /* cells under 8 px */
        assert_int_equal(framecode_geometry(640, 100, &g), -EINVAL); /* grid taller than picture */
}

static void test_round_trip(void **state)
{
        static const uint32_t ns[] = { 0, 1, 2, 24, 25, 65535, 65536, 0x7fffffff, 0x80000000u, 0xffffffffu,
                                       123456789 };
        struct framecode_geom g;
        uint32_t n;

        assert_int_equal(framecode_geometry(W, H, &g), 0);
        for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
                memset(luma, 90, sizeof(luma));
                framecode_paint(luma, W, &g, ns[i]);
                assert_int_equal(framecode_read(luma, W, &g, &n), 0);
                assert_int_equal(n, ns[i]);
        }
}

/* Compression moves values toward grey and blurs edges: tolerate both. */
static void test_survives_noise_and_contrast_loss(void **state)
{
        struct framecode_geom g;
        uint32_t n, seed = 1;

        assert_int_equal(framecode_geometry(W, H, &g), 0);
        framecode_paint(luma, W, &g, 987654);
        for (size_t i = 0; i < sizeof(luma); i++) {
                int v = 128 + (luma[i] - 128) * 6 / 10; /* 40 % contrast loss */
                seed = seed * 1103515245u + 12345u;
                v += (int)((seed >> 16) % 21) - 10; /* +-10 noise */
                luma[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        assert_int_equal(framecode_read(luma, W, &g, &n), 0);
        assert_int_equal(n, 987654);
}

static void test_flipped_cell_is_refused(void **state)
{
        struct framecode_geom g;
        uint32_t n;

        assert_int_equal(framecode_geometry(W, H, &g), 0);
        for (int cell = 0; cell < FRAMECODE_COLS * FRAMECODE_ROWS; cell++) {
                int row = cell / FRAMECODE_COLS, col = cell % FRAMECODE_COLS;
                framecode_paint(luma, W, &g, 4242);
                for (int y = 0; y < g.cell_px; y++) {
                        uint8_t *p = luma + (size_t)(row * g.cell_px + y) * W + col * g.cell_px;
                        uint8_t v = p[0] == FRAMECODE_Y_WHITE ? FRAMECODE_Y_BLACK : FRAMECODE_Y_WHITE;
                        memset(p, v, (size_t)g.cell_px);
                }
                assert_int_equal(framecode_read(luma, W, &g, &n), -EBADMSG);
        }
}

/* A decoder concealing a lost reference applies frame b's cell changes onto
 * frame a's grid.  Such blends must read as unreadable, not as a number. */
static void test_concealment_blend_is_refused(void **state)
{
        static uint8_t prev[W * H], cur[W * H];
        struct framecode_geom g;
        int blends = 0, accepted = 0;
        uint32_t n;

        assert_int_equal(framecode_geometry(W, H, &g), 0);
        for (uint32_t a = 50; a < 150; a++)
                for (uint32_t b = 1000; b < 1040; b += 3) {
                        framecode_paint(luma, W, &g, a);
                        framecode_paint(prev, W, &g, b - 1);
                        framecode_paint(cur, W, &g, b);
                        for (size_t i = 0; i < sizeof(luma); i++)
                                if (prev[i] != cur[i])
                                        luma[i] = cur[i];
                        blends++;
                        if (framecode_read(luma, W, &g, &n) == 0 && n != a && n != b)
                                accepted++;
                }
        /* a 16-bit non-linear check lets about 1 in 65536 through */
        assert_true(accepted * 1000 <= blends);
}

static void test_grey_picture_is_unreadable(void **state)
{
        struct framecode_geom g;
        uint32_t n;

        assert_int_equal(framecode_geometry(W, H, &g), 0);
        memset(luma, 128, sizeof(luma));
        assert_int_equal(framecode_read(luma, W, &g, &n), -EBADMSG);
}

/* Undo emulation prevention (after a header of hdr bytes) and check the SEI
 * parses back. */
static void check_sei(const uint8_t *nal, int len, int hdr)
{
        uint8_t rbsp[FRAMECODE_SEI_MAX];
        char cam[FRAMECODE_CAMERA_ID_MAX];
        size_t r = 0;
        uint32_t n;

        for (int i = 4 + hdr, zeros = 0; i < len; i++) {
                if (zeros >= 2 && nal[i] == 3) {
                        zeros = 0;
                        continue;
                }
                rbsp[r++] = nal[i];
                zeros = nal[i] == 0 ? zeros + 1 : 0;
        }
        assert_int_equal(rbsp[0], 5);            /* user_data_unregistered */
        assert_int_equal(rbsp[1], r - 3);        /* size excludes type, size, trailing byte */
        assert_int_equal(rbsp[r - 1], 0x80);
        assert_int_equal(framecode_sei_parse(rbsp + 2, rbsp[1], cam, &n), 0);
        assert_string_equal(cam, "cam12");
        assert_int_equal(n, 77777);
}

static void test_sei_round_trip(void **state)
{
        uint8_t nal[FRAMECODE_SEI_MAX];
        int len = framecode_sei_build(nal, sizeof(nal), "cam12", 77777);

        assert_true(len > 5);
        assert_memory_equal(nal, "\0\0\0\1\x06", 5);
        check_sei(nal, len, 1);
}

/* H.265: the same message behind a two-byte PREFIX_SEI header (type 39). */
static void test_sei_round_trip_hevc(void **state)
{
        uint8_t nal[FRAMECODE_SEI_MAX];
        int len = framecode_sei_build_hevc(nal, sizeof(nal), "cam12", 77777);

        assert_true(len > 6);
        assert_memory_equal(nal, "\0\0\0\1", 4);
        assert_int_equal((nal[4] >> 1) & 0x3f, 39);
        assert_int_equal(nal[5], 1); /* layer 0, temporal id 0 + 1 */
        check_sei(nal, len, 2);
        assert_int_equal(framecode_sei_build_hevc(nal, 8, "cam1", 1), -ENOBUFS);
}

static void test_sei_rejects(void **state)
{
        char cam[FRAMECODE_CAMERA_ID_MAX];
        uint8_t buf[FRAMECODE_SEI_MAX];
        char long_id[FRAMECODE_CAMERA_ID_MAX + 1];
        uint32_t n;

        assert_int_equal(framecode_sei_parse((const uint8_t *)"x264 - core 164", 15, cam, &n), -ENOENT);
        assert_int_equal(framecode_sei_parse((const uint8_t *)FRAMECODE_SEI_UUID "cam=;n=1", 24, cam, &n),
                         -EBADMSG);
        assert_int_equal(framecode_sei_parse((const uint8_t *)FRAMECODE_SEI_UUID "cam=a;n=1x", 26, cam, &n),
                         -EBADMSG);
        assert_int_equal(framecode_sei_parse((const uint8_t *)FRAMECODE_SEI_UUID "cam=a;n=99999999999", 35,
                                             cam, &n),
                         -EBADMSG);
        memset(long_id, 'a', sizeof(long_id) - 1);
        long_id[sizeof(long_id) - 1] = '\0';
        assert_int_equal(framecode_sei_build(buf, sizeof(buf), long_id, 1), -EINVAL);
        assert_int_equal(framecode_sei_build(buf, 8, "cam1", 1), -ENOBUFS);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_geometry),
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_survives_noise_and_contrast_loss),
                cmocka_unit_test(test_flipped_cell_is_refused),
                cmocka_unit_test(test_concealment_blend_is_refused),
                cmocka_unit_test(test_grey_picture_is_unreadable),
                cmocka_unit_test(test_sei_round_trip),
                cmocka_unit_test(test_sei_round_trip_hevc),
                cmocka_unit_test(test_sei_rejects),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
