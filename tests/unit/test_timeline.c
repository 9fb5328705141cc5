/* Unit tests of worker/timeline.c: which clock a camera's frames get. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "worker/timeline.h"

#define S INT64_C(1000000)
#define NOW (INT64_C(1795540000) * S)

static void test_rtcp_when_the_report_comes(void **state)
{
        struct timeline t;

        timeline_init(&t);
        assert_false(timeline_observe(&t, 0, NOW, 10 * S, INT64_MIN));
        assert_false(timeline_observe(&t, 40000, NOW + 45000, 10 * S + 45000, INT64_MIN));
        assert_true(timeline_observe(&t, 80000, NOW + 90000, 10 * S + 90000, NOW - 3000));
        assert_int_equal(t.source, TIMELINE_RTCP);
        assert_true(timeline_time_us(&t, 0) == NOW - 3000);
}

static void test_receive_clock_after_the_wait(void **state)
{
        struct timeline t;

        timeline_init(&t);
        assert_false(timeline_observe(&t, 0, NOW + 20000, 10 * S, INT64_MIN));
        assert_false(timeline_observe(&t, 40000, NOW + 45000, 10 * S + 40000, INT64_MIN)); /* least delay: 5 ms */
        assert_true(timeline_observe(&t, 3 * S, NOW + 3 * S + 30000, 10 * S + TIMELINE_RTCP_WAIT_US, INT64_MIN));
        assert_int_equal(t.source, TIMELINE_RECEIVE);
        assert_true(timeline_time_us(&t, 40000) == NOW + 45000);
}

static void test_camera_without_ntp_falls_back(void **state)
{
        struct timeline t;

        timeline_init(&t);
        /* a camera that believes it is 1 January 2000 */
        assert_true(timeline_observe(&t, 0, NOW, 10 * S, INT64_C(946684800) * S));
        assert_int_equal(t.source, TIMELINE_RECEIVE);
        assert_true(t.rtcp_rejected);
        assert_true(timeline_time_us(&t, 0) == NOW);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rtcp_when_the_report_comes),
                cmocka_unit_test(test_receive_clock_after_the_wait),
                cmocka_unit_test(test_camera_without_ntp_falls_back),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
