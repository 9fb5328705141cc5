/* Unit tests of supervisor/control_cmd.c: what the control socket accepts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "supervisor/control_cmd.h"

static void test_accepts(void **state)
{
        struct ctl_cmd c;

        assert_null(ctl_cmd_parse("status", &c));
        assert_int_equal(c.kind, CTL_STATUS);
        assert_null(ctl_cmd_parse("metrics", &c));
        assert_int_equal(c.kind, CTL_METRICS);
        assert_null(ctl_cmd_parse("rollback", &c));
        assert_int_equal(c.kind, CTL_ROLLBACK);
        assert_null(ctl_cmd_parse("deploy - -1 -1", &c));
        assert_int_equal(c.kind, CTL_DEPLOY);
        assert_string_equal(c.binary, "");
        assert_int_equal(c.overlap_s, -1);
        assert_null(ctl_cmd_parse("deploy /opt/mwr/releases/2/bin/mwr-worker 30 20", &c));
        assert_string_equal(c.binary, "/opt/mwr/releases/2/bin/mwr-worker");
        assert_int_equal(c.overlap_s, 30);
        assert_int_equal(c.health_s, 20);
        assert_null(ctl_cmd_parse("upgrade /usr/local/bin/mwr-supervisor", &c));
        assert_int_equal(c.kind, CTL_UPGRADE);
        assert_null(ctl_cmd_parse("upgrade -", &c));
        assert_string_equal(c.binary, "");
}

static void test_refuses(void **state)
{
        struct ctl_cmd c;
        char huge[PATH_MAX + 20];
        const char *bad[] = {
                "", "   ", "stat", "statuses", "status now", "deploy", "deploy -", "deploy - 1",
                "deploy relative/path 1 1", "deploy - 3601 1", "deploy - -2 1", "deploy - 1 x",
                "deploy - 1 1 extra", "deploy - 99999999999999999999 1", "upgrade", "upgrade bin",
                "upgrade /a\tb", "rollback please", "DEPLOY - 1 1",
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (!ctl_cmd_parse(bad[i], &c))
                        fail_msg("accepted '%s'", bad[i]);
        memset(huge, 'a', sizeof(huge) - 1);
        huge[sizeof(huge) - 1] = '\0';
        memcpy(huge, "upgrade /", 9);
        assert_non_null(ctl_cmd_parse(huge, &c));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_accepts),
                cmocka_unit_test(test_refuses),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
