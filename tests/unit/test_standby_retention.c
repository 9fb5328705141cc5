/* Unit tests of supervisor/standby_retention.c's window: the first run
 * after a start looks back a day past the retention, later ones go on from
 * where the last ended less a margin (a segment is judged only wholly
 * inside one window), and nothing runs before new footage is of age. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "supervisor/standby_retention.h"

#define S INT64_C(1000000)
#define NOW (INT64_C(1795000000) * S)

static void test_window(void **state)
{
        int64_t from, to;

        assert_int_equal(sr_window(NOW, 3600 * S, 0, 60 * S, &from, &to), 0);
        assert_int_equal(to, NOW - 3600 * S);
        assert_int_equal(from, to - SR_BACKLOG_US);

        assert_int_equal(sr_window(NOW + 10 * S, 3600 * S, to, 60 * S, &from, &to), 0);
        assert_int_equal(to, NOW + 10 * S - 3600 * S);
        assert_int_equal(from, NOW - 3600 * S - 60 * S);

        assert_int_equal(sr_window(NOW + 10 * S, 3600 * S, to, 60 * S, &from, &to), -EAGAIN);
        assert_int_equal(sr_window(NOW - S, 3600 * S, NOW + 10 * S - 3600 * S, 60 * S, &from, &to), -EAGAIN);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_window),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
