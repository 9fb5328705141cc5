/* Unit tests of supervisor/restart_policy.c: backoff and the crash-loop
 * window. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "supervisor/restart_policy.h"

#define S 1000000ULL

static void test_backoff_doubles_while_it_dies_young(void **state)
{
        struct restart_policy p = { 0 };

        assert_true(restart_policy_crash(&p, 100 * S, 30 * S) == 0); /* lived: at once */
        assert_true(restart_policy_crash(&p, 101 * S, 1 * S) == 500000);
        assert_true(restart_policy_crash(&p, 102 * S, 1 * S) == 1000000);
        assert_true(restart_policy_crash(&p, 104 * S, 1 * S) == 2000000);
        assert_true(restart_policy_crash(&p, 107 * S, 1 * S) == 4000000);
        assert_true(restart_policy_crash(&p, 112 * S, 1 * S) == SUP_RESTART_BACKOFF_MAX_US);
        assert_true(restart_policy_crash(&p, 200 * S, 20 * S) == 0); /* stable again */
        assert_true(restart_policy_spawn_failed(&p) == SUP_RESTART_BACKOFF_MIN_US);
}

/* Regression: "CRASH LOOP" tested a lifetime count, so five crashes in a
 * week reported a crash loop for ever after. */
static void test_a_crash_loop_is_five_crashes_within_the_window(void **state)
{
        struct restart_policy p = { 0 };
        uint64_t t = 1000 * S;

        for (int i = 0; i < 5; i++, t += 86400 * S) /* one a day */
                restart_policy_crash(&p, t, 1 * S);
        assert_false(restart_policy_in_loop(&p, t));
        assert_int_equal(restart_policy_recent(&p, t), 0);
        for (int i = 0; i < 4; i++)
                restart_policy_crash(&p, t + i * S, 1 * S);
        assert_false(restart_policy_in_loop(&p, t + 4 * S));
        restart_policy_crash(&p, t + 4 * S, 1 * S);
        assert_true(restart_policy_in_loop(&p, t + 4 * S));
        assert_int_equal(restart_policy_recent(&p, t + 4 * S), 5);
        /* a minute later it is over, with no crash needed to say so */
        assert_false(restart_policy_in_loop(&p, t + 4 * S + SUP_CRASH_LOOP_WINDOW_US));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_backoff_doubles_while_it_dies_young),
                cmocka_unit_test(test_a_crash_loop_is_five_crashes_within_the_window),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
