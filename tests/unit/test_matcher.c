/* Unit tests of continuity/matcher.c on synthetic frame indexes: the cases
 * two recorders of one camera produce during an overlap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "continuity/matcher.h"

#define N 1000
#define FRAME_US 40000
#define T0 INT64_C(1795000000000000)

static uint32_t rng_state;

static uint32_t rnd(void)
{
        rng_state = rng_state * 1664525u + 1013904223u;
        return rng_state >> 8;
}

/* A camera's frames in decode order: 25 fps, keyframe every 50, P-frame
 * sizes 3-6 KB, 12-bit hashes.  With bframes, each P is sent before the two
 * B-frames shown ahead of it (I P B B P B B ... in decode order). */
static void camera(struct cm_frame *f, size_t n, bool bframes)
{
        rng_state = 12345;
        for (size_t i = 0; i < n; i++) {
                size_t shown = i;

                if (bframes && i % 50 != 0) {
                        size_t k = (i % 50 - 1) % 3; /* 0: the P, 1 and 2: the Bs before it */
                        size_t p = i - k + 2;        /* presentation index of that P */

                        shown = k == 0 ? (p < n && p / 50 == i / 50 ? p : i) : p - 3 + k;
                }
                f[i] = (struct cm_frame){ .t_us = T0 + (int64_t)shown * FRAME_US,
                                          .size = i % 50 == 0 ? 40000 + rnd() % 5000 : 3000 + rnd() % 3000,
                                          .hash = rnd() & 0xfff,
                                          .key = i % 50 == 0 };
        }
}

static struct cm_frame *copy_shifted(const struct cm_frame *a, size_t n, int64_t shift)
{
        struct cm_frame *b = malloc(n * sizeof(*b));

        assert_non_null(b);
        for (size_t i = 0; i < n; i++) {
                b[i] = a[i];
                b[i].t_us += shift;
        }
        return b;
}

/* every pair maps a frame to itself: b[j] is a[map[j]] */
static void assert_pairs(const struct cm_match *m, const size_t *map, size_t nb, size_t expect)
{
        assert_int_equal(m->n_pairs, expect);
        for (size_t k = 0; k < m->n_pairs; k++) {
                assert_true(m->pairs[k].b < nb);
                assert_int_equal(m->pairs[k].a, map[m->pairs[k].b]);
                if (k)
                        assert_true(m->pairs[k].a > m->pairs[k - 1].a && m->pairs[k].b > m->pairs[k - 1].b);
        }
}

static size_t *identity(size_t n)
{
        size_t *m = malloc(n * sizeof(*m));

        assert_non_null(m);
        for (size_t i = 0; i < n; i++)
                m[i] = i;
        return m;
}

static void test_identical(void **state)
{
        static struct cm_frame a[N];
        struct cm_match m;
        size_t *map = identity(N);

        camera(a, N, false);
        assert_int_equal(cm_match(a, N, a, N, 0, 0, &m), 0);
        assert_int_equal(m.shift_us, 0);
        assert_int_equal(m.frame_us, FRAME_US);
        assert_pairs(&m, map, N, N);
        cm_match_free(&m);
        free(map);
}

static void check_shift(int64_t shift)
{
        static struct cm_frame a[N];
        struct cm_frame *b;
        struct cm_match m;
        size_t *map = identity(N);

        camera(a, N, false);
        b = copy_shifted(a, N, shift);
        assert_int_equal(cm_match(a, N, b, N, 0, 0, &m), 0);
        assert_int_equal(m.shift_us, shift);
        assert_pairs(&m, map, N, N);
        cm_match_free(&m);
        free(b);
        free(map);
}

static void test_shifted_clocks(void **state)
{
        check_shift(2000000);
        check_shift(-2000000);
        check_shift(27000);   /* two RTCP timelines: tens of ms apart */
        check_shift(-19999);  /* just under half a frame */
        check_shift(1234567); /* not a multiple of the frame time */
}

/* b recorded only part of a, with 30 ms jitter-free offset, and lost frames
 * 300-349 (a reconnect): every frame it has is paired with its original */
static void test_missing_in_b(void **state)
{
        static struct cm_frame a[N], b[N];
        size_t map[N], nb = 0;
        struct cm_match m;

        camera(a, N, false);
        for (size_t i = 200; i < 800; i++) {
                if (i >= 300 && i < 350)
                        continue;
                b[nb] = a[i];
                b[nb].t_us += 30000;
                map[nb++] = i;
        }
        assert_int_equal(cm_match(a, N, b, nb, 0, 0, &m), 0);
        assert_int_equal(m.shift_us, 30000);
        assert_pairs(&m, map, nb, nb);
        cm_match_free(&m);
}

/* a lost scattered frames (one in seven) and a whole second: pairs skip them */
static void test_missing_in_a(void **state)
{
        static struct cm_frame full[N], a[N];
        size_t orig[N] = { 0 }, na = 0, map[N], expect = 0;
        struct cm_frame *b;
        struct cm_match m;

        camera(full, N, false);
        for (size_t i = 0; i < N; i++)
                if (i % 7 != 3 && !(i >= 500 && i < 525)) {
                        orig[na] = i;
                        a[na++] = full[i];
                }
        b = copy_shifted(full, N, -1500000);
        for (size_t j = 0; j < N; j++) {
                map[j] = SIZE_MAX;
                for (size_t k = 0; k < na; k++)
                        if (orig[k] == j) {
                                map[j] = k;
                                expect++;
                                break;
                        }
        }
        assert_int_equal(cm_match(a, na, b, N, 0, 0, &m), 0);
        assert_int_equal(m.shift_us, -1500000);
        assert_pairs(&m, map, N, expect);
        cm_match_free(&m);
        free(b);
}

/* B-frames: decode order differs from presentation order; the copies agree
 * on both, and the frame duration comes from sorted times */
static void test_reordered_bframes(void **state)
{
        static struct cm_frame a[N], b[N];
        size_t map[N], nb = 0;
        struct cm_match m;

        camera(a, N, true);
        assert_int_equal(cm_frame_duration(a, N), FRAME_US);
        for (size_t i = 100; i < N; i++) {
                if (i == 405 || i == 406) /* two B-frames lost */
                        continue;
                b[nb] = a[i];
                b[nb].t_us -= 2000000;
                map[nb++] = i;
        }
        assert_int_equal(cm_match(a, N, b, nb, 0, 0, &m), 0);
        assert_int_equal(m.shift_us, -2000000);
        assert_pairs(&m, map, nb, nb);
        cm_match_free(&m);
}

/* A static scene: frames 600-629 repeat the payloads of 100-129 exactly
 * (same size and hash), 20 s later.  Each copy pairs with its own instant. */
static void test_equal_hashes_other_time(void **state)
{
        static struct cm_frame a[N];
        struct cm_frame *b;
        struct cm_match m;
        size_t *map = identity(N);

        camera(a, N, false);
        for (size_t i = 600; i < 630; i++) {
                a[i].size = a[i - 500].size;
                a[i].hash = a[i - 500].hash;
        }
        b = copy_shifted(a, N, 700000);
        assert_int_equal(cm_match(a, N, b, N, 0, 0, &m), 0);
        assert_int_equal(m.shift_us, 700000);
        assert_pairs(&m, map, N, N);
        cm_match_free(&m);
        /* b holds only the repeat: it must not pair with the first occurrence,
         * which is 20 s away, beyond any plausible clock offset */
        assert_int_equal(cm_match(a, 500, b + 600, 30, 0, 0, &m), 0);
        assert_int_equal(m.n_pairs, 0);
        cm_match_free(&m);
        free(b);
        free(map);
}

/* nothing in common: no pairs, not a guess */
static void test_disjoint(void **state)
{
        static struct cm_frame a[N];
        struct cm_frame *b;
        struct cm_match m;

        camera(a, N, false);
        b = copy_shifted(a, N, 0);
        for (size_t i = 0; i < N; i++)
                b[i].hash ^= 0x5a5;
        assert_int_equal(cm_match(a, N, b, N, 0, 0, &m), 0);
        assert_int_equal(m.n_pairs, 0);
        assert_null(m.pairs);
        assert_int_equal(cm_match(a, 0, b, N, 0, 0, &m), 0);
        assert_int_equal(m.n_pairs, 0);
        free(b);
}

/* beyond max_shift the offset is not searched */
static void test_shift_beyond_window(void **state)
{
        static struct cm_frame a[N];
        struct cm_frame *b;
        struct cm_match m;

        camera(a, N, false);
        b = copy_shifted(a, N, 8000000);
        assert_int_equal(cm_match(a, N, b, N, 5000000, 0, &m), 0);
        assert_int_equal(m.n_pairs, 0);
        assert_int_equal(cm_match(a, N, b, N, 10000000, 0, &m), 0);
        assert_int_equal(m.n_pairs, N);
        cm_match_free(&m);
        free(b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_identical),
                cmocka_unit_test(test_shifted_clocks),
                cmocka_unit_test(test_missing_in_b),
                cmocka_unit_test(test_missing_in_a),
                cmocka_unit_test(test_reordered_bframes),
                cmocka_unit_test(test_equal_hashes_other_time),
                cmocka_unit_test(test_disjoint),
                cmocka_unit_test(test_shift_beyond_window),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
