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

/* deploy, rollback and upgrade run a program as the service user: only
 * that user or root; status and metrics for anyone who can connect. */
static void test_permit(void **state)
{
        const uid_t svc = 998, other = 65534;
        const enum ctl_kind mutate[] = { CTL_DEPLOY, CTL_ROLLBACK, CTL_UPGRADE };
        char msg[160];
        const char *why;

        assert_null(ctl_cmd_permit(CTL_STATUS, other, svc, msg, sizeof(msg)));
        assert_null(ctl_cmd_permit(CTL_METRICS, CTL_UID_UNKNOWN, svc, msg, sizeof(msg)));
        for (size_t i = 0; i < sizeof(mutate) / sizeof(mutate[0]); i++) {
                assert_null(ctl_cmd_permit(mutate[i], svc, svc, msg, sizeof(msg)));
                assert_null(ctl_cmd_permit(mutate[i], 0, svc, msg, sizeof(msg)));
                assert_non_null(why = ctl_cmd_permit(mutate[i], other, svc, msg, sizeof(msg)));
                assert_non_null(strstr(why, ctl_kind_name(mutate[i])));
                assert_non_null(ctl_cmd_permit(mutate[i], CTL_UID_UNKNOWN, svc, msg, sizeof(msg)));
                assert_non_null(ctl_cmd_permit(mutate[i], svc + 1, svc, msg, sizeof(msg)));
        }
        why = ctl_cmd_permit(CTL_DEPLOY, other, svc, msg, sizeof(msg));
        assert_string_equal(why, "deploy refused: uid 65534 is neither the service user (uid 998) nor root");
        /* a root service: anyone else is refused */
        assert_non_null(ctl_cmd_permit(CTL_UPGRADE, 1000, 0, msg, sizeof(msg)));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_accepts),
                cmocka_unit_test(test_refuses),
                cmocka_unit_test(test_permit),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
