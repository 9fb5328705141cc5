/* Unit tests of common/payload_hash.c: one frame, one hash, in either form. */
#include <setjmp.h>
#include <stdarg.h>
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

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_same_frame_same_hash_in_both_forms),
                cmocka_unit_test(test_one_byte_changes_the_hash),
                cmocka_unit_test(test_malformed_input_is_hashed_not_crashed),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
