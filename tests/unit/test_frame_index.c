/* Unit tests of db/frame_index.c: realistic and adversarial sequences round-trip
 * exactly, corrupt or truncated blobs are refused, and the bytes per
 * stream-minute of a realistic 25 fps stream are measured and printed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db/frame_index.h"

#define MINUTE_FRAMES 1500 /* 25 fps */
#define BUDGET_BYTES_PER_MINUTE 4096
#define REGRESSION_BYTES_PER_MINUTE 5300 /* fail if the code gets worse than this */

static uint64_t rnd(uint64_t *s)
{
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

static uint32_t rnd_range(uint64_t *s, uint32_t lo, uint32_t hi) /* [lo, hi] */
{
        return lo + (uint32_t)(rnd(s) % ((uint64_t)hi - lo + 1));
}

/* 25 fps, 40 ms steps, +-1 ms jitter on 10 % of the frames, GOP 50 with ~30 KB
 * keyframes, P-frames 3-6 KB uniformly random.  With cumulative jitter every
 * jittered step shifts the frames after it (receive-time clocks); otherwise
 * the jittered frame alone is off (camera clock, late packet). */
static void make_realistic(struct fi_frame *f, size_t n, uint64_t seed, int cumulative)
{
        uint64_t s = seed, t_us = 0;

        for (size_t i = 0; i < n; i++) {
                int64_t jitter_us = 0;
                if (rnd_range(&s, 0, 9) == 0)
                        jitter_us = (int64_t)rnd_range(&s, 0, 2000) - 1000;
                if (cumulative) {
                        f[i].offset_us = t_us;
                        t_us += (uint64_t)(40000 + jitter_us);
                } else {
                        f[i].offset_us = i * 40000 + (uint64_t)(i ? jitter_us : 0);
                }
                f[i].key = i % 50 == 0;
                f[i].size = f[i].key ? rnd_range(&s, 28000, 32000) : rnd_range(&s, 3000, 6000);
                f[i].hash = fi_hash_truncate(rnd(&s));
        }
}

/* Encode, decode, compare; returns the blob size. */
static size_t round_trip(const struct fi_frame *f, size_t n)
{
        struct fi_encoder enc;
        struct fi_frame *out = NULL;
        const uint8_t *blob;
        size_t len, n_out = 99;

        fi_encoder_init(&enc);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(fi_encoder_add(&enc, &f[i]), 0);
        assert_int_equal(fi_encoder_data(&enc, &blob, &len), 0);
        assert_int_equal(blob[0], FI_FORMAT_VERSION);
        assert_int_equal(fi_decode(blob, len, &out, &n_out), 0);
        assert_int_equal(n_out, n);
        for (size_t i = 0; i < n; i++) {
                assert_true(out[i].offset_us == f[i].offset_us);
                assert_int_equal(out[i].size, f[i].size);
                assert_int_equal(out[i].key, f[i].key);
                assert_int_equal(out[i].hash, f[i].hash);
        }
        free(out);
        fi_encoder_free(&enc);
        return len;
}

static void test_realistic_minute_budget(void **state)
{
        struct fi_frame f[MINUTE_FRAMES];
        size_t one_blob = 0, six_blobs = 0, cumulative = 0;

        for (uint64_t seed = 1; seed <= 10; seed++) {
                make_realistic(f, MINUTE_FRAMES, seed * 7919, 0);
                one_blob += round_trip(f, MINUTE_FRAMES);
                for (size_t i = 0; i < 6; i++) { /* six 10 s segments, offsets from their start */
                        struct fi_frame seg[250];
                        for (size_t j = 0; j < 250; j++) {
                                seg[j] = f[i * 250 + j];
                                seg[j].offset_us -= i * 250 * 40000;
                        }
                        six_blobs += round_trip(seg, 250);
                }
                make_realistic(f, MINUTE_FRAMES, seed * 7919, 1);
                cumulative += round_trip(f, MINUTE_FRAMES);
        }
        one_blob /= 10;
        six_blobs /= 10;
        cumulative /= 10;
        printf("frame_index: %zu bytes per stream-minute (one 60 s blob, %.2f bytes/frame); "
               "%zu as six 10 s segments; %zu with cumulative jitter; budget %d, hash %d bits\n",
               one_blob, (double)one_blob / MINUTE_FRAMES, six_blobs, cumulative, BUDGET_BYTES_PER_MINUTE,
               FI_HASH_BITS);
        assert_true(one_blob < REGRESSION_BYTES_PER_MINUTE);
        assert_true(six_blobs < REGRESSION_BYTES_PER_MINUTE);
        assert_true(cumulative < REGRESSION_BYTES_PER_MINUTE);
}

/* A perfectly regular stream costs little beyond size and hash. */
static void test_constant_stream_is_cheap(void **state)
{
        struct fi_frame f[MINUTE_FRAMES];

        for (size_t i = 0; i < MINUTE_FRAMES; i++)
                f[i] = (struct fi_frame){ .offset_us = i * 33333, .size = i % 30 ? 4000 : 30000,
                                          .key = i % 30 == 0, .hash = (uint32_t)i & FI_HASH_MASK };
        assert_true(round_trip(f, MINUTE_FRAMES) < MINUTE_FRAMES * 2 + 64); /* 12-bit hash + ~4 bits */
}

static void test_b_frames_and_jumps(void **state)
{
        /* decode order of an IBBP stream: presentation times go back and forth */
        static const uint64_t pattern_us[] = { 0, 120000, 40000, 80000, 240000, 160000, 200000 };
        struct fi_frame f[700];

        for (size_t i = 0; i < 700; i++) {
                f[i].offset_us = (i / 7) * 280000 + pattern_us[i % 7];
                f[i].key = i % 70 == 0;
                f[i].size = (uint32_t)(i * 37 % 9000);
                f[i].hash = (uint32_t)(i * 2654435761u) & FI_HASH_MASK;
        }
        f[300].offset_us += 5000000; /* jump forward, then the stream goes on from there */
        for (size_t i = 301; i < 700; i++)
                f[i].offset_us += 5000000;
        f[400].offset_us = 3; /* jump back */
        f[500].offset_us = UINT64_MAX;
        f[501].offset_us = 0;
        round_trip(f, 700);
}

static void test_rate_changes(void **state)
{
        struct fi_frame f[600];
        uint64_t t_us = 0;

        for (size_t i = 0; i < 600; i++) {
                f[i] = (struct fi_frame){ .offset_us = t_us, .size = 5000, .key = i % 25 == 0 };
                /* 25 fps, then 29.97 fps rounded to us (33367, 33367, 33366), then 5 fps */
                t_us += i < 200 ? 40000 : i < 400 ? (i % 3 == 2 ? 33366 : 33367) : 200000;
        }
        round_trip(f, 600);
}

static void test_extreme_values(void **state)
{
        struct fi_frame f[400];
        uint64_t s = 42;

        for (size_t i = 0; i < 400; i++) {
                f[i].offset_us = i < 100 ? rnd(&s) : i < 200 ? (i & 1 ? UINT64_MAX : 0) : i * 40000;
                f[i].size = i % 3 == 0 ? UINT32_MAX : i % 3 == 1 ? 0 : (uint32_t)rnd(&s);
                f[i].key = (rnd(&s) & 1) != 0;
                f[i].hash = i & 1 ? FI_HASH_MASK : 0;
        }
        round_trip(f, 400);
        for (size_t i = 0; i < 400; i++)
                f[i].size = 0;
        round_trip(f, 400);
        for (size_t i = 0; i < 400; i++)
                f[i].size = UINT32_MAX;
        round_trip(f, 400);
}

static void test_zero_and_one_frame(void **state)
{
        struct fi_frame one = { .offset_us = 123456789012, .size = 77, .key = false, .hash = 5 };
        struct fi_encoder enc;
        struct fi_frame *out = (struct fi_frame *)&enc;
        const uint8_t *blob;
        size_t len, n = 99;

        fi_encoder_init(&enc);
        assert_int_equal(fi_encoder_data(&enc, &blob, &len), 0);
        assert_int_equal(fi_decode(blob, len, &out, &n), 0);
        assert_int_equal(n, 0);
        assert_null(out);
        fi_encoder_free(&enc);
        round_trip(&one, 1);
        one.key = true;
        round_trip(&one, 1);
}

static void test_max_frames(void **state)
{
        struct fi_frame *f = calloc(FI_MAX_FRAMES, sizeof(*f));
        struct fi_frame extra = { 0 };
        struct fi_encoder enc;
        uint64_t s = 9;

        assert_non_null(f);
        make_realistic(f, FI_MAX_FRAMES, 3, 0);
        for (size_t i = 0; i < FI_MAX_FRAMES; i += 997)
                f[i].offset_us = rnd(&s); /* some escapes too */
        round_trip(f, FI_MAX_FRAMES);

        fi_encoder_init(&enc);
        for (size_t i = 0; i < FI_MAX_FRAMES; i++)
                assert_int_equal(fi_encoder_add(&enc, &f[i]), 0);
        assert_int_equal(fi_encoder_add(&enc, &extra), -E2BIG);
        fi_encoder_free(&enc);
        free(f);
}

static void test_bad_hash_refused(void **state)
{
        struct fi_frame f = { .hash = FI_HASH_MASK + 1 };
        struct fi_encoder enc;

        fi_encoder_init(&enc);
        assert_int_equal(fi_encoder_add(&enc, &f), -EINVAL);
        assert_int_equal(enc.n_frames, 0);
        fi_encoder_free(&enc);
}

/* The blob is valid after every add: a segment's index is rewritten per fragment. */
static void test_data_midway(void **state)
{
        struct fi_frame f[120], *out;
        struct fi_encoder enc;
        const uint8_t *blob;
        size_t len, n;

        make_realistic(f, 120, 5, 0);
        fi_encoder_init(&enc);
        for (size_t i = 0; i < 120; i++) {
                assert_int_equal(fi_encoder_add(&enc, &f[i]), 0);
                assert_int_equal(fi_encoder_data(&enc, &blob, &len), 0);
                assert_int_equal(fi_decode(blob, len, &out, &n), 0);
                assert_int_equal(n, i + 1);
                assert_true(out[i].offset_us == f[i].offset_us && out[i].size == f[i].size);
                free(out);
        }
        fi_encoder_free(&enc);
}

static size_t encode(const struct fi_frame *f, size_t n, uint8_t **blob)
{
        struct fi_encoder enc;
        const uint8_t *p;
        size_t len;

        fi_encoder_init(&enc);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(fi_encoder_add(&enc, &f[i]), 0);
        assert_int_equal(fi_encoder_data(&enc, &p, &len), 0);
        *blob = malloc(len);
        assert_non_null(*blob);
        memcpy(*blob, p, len);
        fi_encoder_free(&enc);
        return len;
}

static void test_truncated_refused(void **state)
{
        struct fi_frame f[300], *out;
        uint8_t *blob;
        size_t len, n;

        make_realistic(f, 300, 11, 0);
        len = encode(f, 300, &blob);
        for (size_t l = 0; l < len; l++) {
                uint8_t *copy = malloc(l ? l : 1); /* exact size: ASan sees any over-read */
                assert_non_null(copy);
                memcpy(copy, blob, l);
                assert_int_equal(fi_decode(copy, l, &out, &n), -EBADMSG);
                assert_null(out);
                assert_int_equal(n, 0);
                free(copy);
        }
        assert_int_equal(fi_decode(NULL, 0, &out, &n), -EBADMSG);
        free(blob);
}

static void test_corrupt_refused(void **state)
{
        struct fi_frame f[200], *out;
        uint8_t *blob, *longer;
        size_t len, n;

        make_realistic(f, 200, 13, 0);
        len = encode(f, 200, &blob);
        for (size_t bit = 0; bit < len * 8; bit++) { /* every single bit flip */
                blob[bit / 8] ^= (uint8_t)(1u << (bit % 8));
                assert_int_equal(fi_decode(blob, len, &out, &n), -EBADMSG);
                blob[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
        longer = malloc(len + 1); /* a trailing byte */
        assert_non_null(longer);
        memcpy(longer, blob, len);
        longer[len] = 0;
        assert_int_equal(fi_decode(longer, len + 1, &out, &n), -EBADMSG);
        blob[0] = FI_FORMAT_VERSION + 1;
        assert_int_equal(fi_decode(blob, len, &out, &n), -EBADMSG);
        free(longer);
        free(blob);
}

static uint32_t crc32_ref(const uint8_t *p, size_t n)
{
        uint32_t c = 0xffffffffu;

        for (size_t i = 0; i < n; i++) {
                c ^= p[i];
                for (int k = 0; k < 8; k++)
                        c = c & 1 ? (c >> 1) ^ 0xedb88320u : c >> 1;
        }
        return ~c;
}

static void crc_fix(uint8_t *blob, size_t len)
{
        uint32_t c = crc32_ref(blob, len - 4);

        for (int i = 0; i < 4; i++)
                blob[len - 4 + i] = (uint8_t)(c >> (8 * i));
}

/* Past the CRC: mutated bitstreams with a valid CRC exercise the parser itself
 * (ASan in the SAN build); it returns 0 or -EBADMSG, never crashes. */
static void test_parser_survives_garbage(void **state)
{
        struct fi_frame f[100], *out;
        uint8_t *blob, buf[512];
        size_t len, n;
        uint64_t s = 77;
        int ok = 0;

        make_realistic(f, 100, 17, 0);
        len = encode(f, 100, &blob);
        for (int iter = 0; iter < 20000; iter++) {
                memcpy(buf, blob, len);
                for (int k = 0, m = (int)rnd_range(&s, 1, 8); k < m; k++)
                        buf[rnd_range(&s, 2, (uint32_t)len - 5)] = (uint8_t)rnd(&s);
                crc_fix(buf, len);
                int r = fi_decode(buf, len, &out, &n);
                assert_true(r == 0 || r == -EBADMSG);
                if (r == 0) { /* the code is canonical: what parses re-encodes to the same bytes */
                        uint8_t *again;
                        assert_int_equal(encode(out, n, &again), len);
                        assert_memory_equal(again, buf, len);
                        free(again);
                        ok++;
                }
                free(out);
        }
        for (int iter = 0; iter < 20000; iter++) { /* random headers and lengths */
                size_t l = rnd_range(&s, 5, sizeof(buf));
                for (size_t i = 0; i < l; i++)
                        buf[i] = (uint8_t)rnd(&s);
                buf[0] = FI_FORMAT_VERSION;
                if (iter & 1)
                        buf[1] = (uint8_t)rnd_range(&s, 0, 0x7f);
                crc_fix(buf, l);
                int r = fi_decode(buf, l, &out, &n);
                assert_true(r == 0 || r == -EBADMSG);
                free(out);
        }
        printf("frame_index: %d of 20000 mutated blobs with a fixed-up CRC still parsed\n", ok);
        free(blob);
}

static void test_hash_truncate(void **state)
{
        unsigned hits[1u << FI_HASH_BITS] = { 0 };

        for (uint64_t i = 0; i < 64u << FI_HASH_BITS; i++) {
                uint32_t h = fi_hash_truncate(i << 20); /* a weak hash: low bits constant */
                assert_true(h <= FI_HASH_MASK);
                hits[h]++;
        }
        for (size_t i = 0; i < 1u << FI_HASH_BITS; i++)
                assert_true(hits[i] > 16 && hits[i] < 256); /* 64 expected per value */
        assert_int_not_equal(fi_hash_truncate(1), fi_hash_truncate(2));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_realistic_minute_budget),
                cmocka_unit_test(test_constant_stream_is_cheap),
                cmocka_unit_test(test_b_frames_and_jumps),
                cmocka_unit_test(test_rate_changes),
                cmocka_unit_test(test_extreme_values),
                cmocka_unit_test(test_zero_and_one_frame),
                cmocka_unit_test(test_max_frames),
                cmocka_unit_test(test_bad_hash_refused),
                cmocka_unit_test(test_data_midway),
                cmocka_unit_test(test_truncated_refused),
                cmocka_unit_test(test_corrupt_refused),
                cmocka_unit_test(test_parser_survives_garbage),
                cmocka_unit_test(test_hash_truncate),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
