/* Unit tests of common/timefmt.c: the contract's T arguments. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/timefmt.h"

static void test_parse(void **state)
{
        int64_t us;

        assert_int_equal(timefmt_parse_us("2026-11-23T10:00:00Z", &us), 0);
        assert_true(us == INT64_C(1795428000) * 1000000);
        assert_int_equal(timefmt_parse_us("2026-11-23T11:00:00.25+01:00", &us), 0);
        assert_true(us == INT64_C(1795428000) * 1000000 + 250000);
        assert_int_equal(timefmt_parse_us("1795428000.5", &us), 0);
        assert_true(us == INT64_C(1795428000) * 1000000 + 500000);
        assert_int_equal(timefmt_parse_us("0", &us), 0);
        assert_true(us == 0);
}

static void test_rejects(void **state)
{
        static const char *bad[] = { "", "x", "-5", "1e999", "nan", "2026-11-23T10:00:00", "2026-11-23T10:00:00Zjunk",
                                     "2026-13-23T10:00:00Z", "2026-11-23T10:00:00+1:00", "2026-11-23T10:00:00." };
        int64_t us;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (timefmt_parse_us(bad[i], &us) != -EINVAL)
                        fail_msg("accepted '%s'", bad[i]);
}

static void test_format_round_trip(void **state)
{
        char buf[TIMEFMT_RFC3339_MAX];
        int64_t us;

        timefmt_rfc3339(INT64_C(1795428000) * 1000000, buf);
        assert_string_equal(buf, "2026-11-23T10:00:00Z");
        timefmt_rfc3339(INT64_C(1795428000) * 1000000 + 123456, buf);
        assert_string_equal(buf, "2026-11-23T10:00:00.123456Z");
        assert_int_equal(timefmt_parse_us(buf, &us), 0);
        assert_true(us == INT64_C(1795428000) * 1000000 + 123456);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse),
                cmocka_unit_test(test_rejects),
                cmocka_unit_test(test_format_round_trip),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
