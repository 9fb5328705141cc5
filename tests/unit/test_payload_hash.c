/* Unit tests of common/payload_hash.c: one frame, one hash, in either form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/payload_hash.h"

/* SEI (300 bytes: its 4-byte length starts 00 00 01, like a start code), slice */
static size_t build(uint8_t *out, int annexb, int four_byte_sc)
{
        static uint8_t sei[300], slice[1000];
        const uint8_t *nals[2] = { sei, slice };
        size_t lens[2] = { sizeof(sei), sizeof(slice) }, o = 0;

        for (size_t i = 0; i < sizeof(sei); i++)
                sei[i] = (uint8_t)(i * 7 + 1) | 0x80;
        sei[0] = 0x06;
        for (size_t i = 0; i < sizeof(slice); i++)
                slice[i] = (uint8_t)(i * 13 + 5) | 0x40;
        slice[0] = 0x41;
        for (int k = 0; k < 2; k++) {
                if (annexb) {
                        if (four_byte_sc)
                                out[o++] = 0;
                        memcpy(out + o, "\0\0\1", 3);
                        o += 3;
                } else {
                        out[o++] = (uint8_t)(lens[k] >> 24);
                        out[o++] = (uint8_t)(lens[k] >> 16);
                        out[o++] = (uint8_t)(lens[k] >> 8);
                        out[o++] = (uint8_t)lens[k];
                }
                memcpy(out + o, nals[k], lens[k]);
                o += lens[k];
        }
        return o;
}

static void test_same_frame_same_hash_in_both_forms(void **state)
{
        uint8_t a[2000], b[2000], c[2000];
        size_t la = build(a, 1, 0), lb = build(b, 1, 1), lc = build(c, 0, 0);
        uint32_t na, nb, nc;
        uint64_t ha = payload_hash(a, la, 0, &na);

        assert_true(ha == payload_hash(b, lb, 0, &nb));
        assert_true(ha == payload_hash(c, lc, 4, &nc));
        assert_int_equal(na, 1300);
        assert_int_equal(nb, 1300);
        assert_int_equal(nc, 1300);
}

static void test_one_byte_changes_the_hash(void **state)
{
        uint8_t a[2000];
        size_t la = build(a, 1, 0);
        uint64_t h = payload_hash(a, la, 0, NULL);

        a[la - 10] ^= 1;
        assert_true(h != payload_hash(a, la, 0, NULL));
}

static void test_malformed_input_is_hashed_not_crashed(void **state)
{
        static const uint8_t bad[] = { 0xff, 0xff, 0xff, 0xff, 1, 2, 3 };

        (void)payload_hash(bad, sizeof(bad), 4, NULL);
        (void)payload_hash(bad, 2, 4, NULL);
        (void)payload_hash(bad, 0, 0, NULL);
        (void)payload_hash((const uint8_t *)"\0\0\1", 3, 0, NULL);
}

/* A packet that holds only SEI or parameter sets is not a frame (found when
 * libavformat's parser split camsim's SEI from an IDR: the index counted one
 * frame more than the file decodes). */
static void test_picture_detection(void **state)
{
        static const uint8_t sei_only[] = { 0, 0, 0, 1, 0x06, 5, 1, 0x80 };
        static const uint8_t sps_pps[] = { 0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xce };
        static const uint8_t sei_idr[] = { 0, 0, 1, 0x06, 5, 1, 0x80, 0, 0, 1, 0x65, 0x88, 0x84 };
        static const uint8_t avcc_slice[] = { 0, 0, 0, 2, 0x41, 0x9a };
        static const uint8_t hevc_vps[] = { 0, 0, 1, 0x40, 0x01, 0x0c };  /* type 32: not a picture */
        static const uint8_t hevc_idr[] = { 0, 0, 1, 0x26, 0x01, 0xaf }; /* type 19: IDR_W_RADL */

        assert_false(payload_has_picture(sei_only, sizeof(sei_only), 0, 0));
        assert_false(payload_has_picture(sps_pps, sizeof(sps_pps), 0, 0));
        assert_true(payload_has_picture(sei_idr, sizeof(sei_idr), 0, 0));
        assert_true(payload_has_picture(avcc_slice, sizeof(avcc_slice), 4, 0));
        assert_false(payload_has_picture(hevc_vps, sizeof(hevc_vps), 0, 1));
        assert_true(payload_has_picture(hevc_idr, sizeof(hevc_idr), 0, 1));
}

/* A deterministic mix of start codes (3- and 4-byte), zero runs, 00 00 00
 * and 00 00 02 near misses, and random bytes. */
static void gen(uint8_t *d, size_t n, uint32_t seed)
{
        uint32_t x = seed;
        size_t i = 0;

        while (i < n) {
                uint32_t r;

                x = x * 1103515245u + 12345u;
                r = (x >> 16) & 0xff;
                if (r < 8 && i + 4 <= n) {
                        d[i++] = 0;
                        d[i++] = 0;
                        d[i++] = (r & 1) ? 1 : 0;
                        if (r & 2)
                                d[i++] = 1;
                } else if (r < 40) {
                        d[i++] = 0;
                } else if (r < 60) {
                        d[i++] = 1;
                } else {
                        d[i++] = (uint8_t)(x >> 8);
                }
        }
}

/* Every index on disk holds these hashes, and a second instance's copy is
 * matched by them: a faster scan must give the same values.  The values
 * are those of the byte-at-a-time scanner this replaced (b7752b1). */
static void test_hash_values_are_stable(void **state)
{
        static const struct {
                uint32_t seed;
                size_t n;
                uint64_t hash;
                uint32_t nal_bytes;
        } want[] = {
                { 1u, 997, UINT64_C(0x4f1564c1520e9e64), 882 },
                { 2u, 1994, UINT64_C(0x493e87e0623452f6), 1827 },
                { 3u, 2991, UINT64_C(0x2af72346b4751866), 2690 },
                { 4u, 3988, UINT64_C(0x0128ec64340861c1), 3629 },
                { 5u, 4985, UINT64_C(0x452e00aa03a53c3b), 4507 },
                { 6u, 65982, UINT64_C(0xbe22ecb72751d4b5), 60428 },
        };
        static uint8_t d[70000];

        (void)state;
        for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
                uint32_t nal_bytes = 0;

                gen(d, want[k].n, want[k].seed);
                assert_int_equal(payload_hash(d, want[k].n, 0, &nal_bytes), want[k].hash);
                assert_int_equal(nal_bytes, want[k].nal_bytes);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_same_frame_same_hash_in_both_forms),
                cmocka_unit_test(test_one_byte_changes_the_hash),
                cmocka_unit_test(test_malformed_input_is_hashed_not_crashed),
                cmocka_unit_test(test_picture_detection),
                cmocka_unit_test(test_hash_values_are_stable),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
