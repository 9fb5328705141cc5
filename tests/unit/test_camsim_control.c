/* Unit tests of the camsim control protocol parser (tests/camsim/control.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "camsim/control.h"

static int parse(const char *s, struct camsim_cmd *c)
{
        char err[128];

        return camsim_cmd_parse(s, strlen(s), c, err, sizeof(err));
}

static void test_valid_commands(void **state)
{
        struct camsim_cmd c;

        assert_int_equal(parse("status", &c), 0);
        assert_int_equal(c.kind, CAMSIM_CMD_STATUS);
        assert_int_equal(parse("outage cam3 5.5\r", &c), 0);
        assert_int_equal(c.kind, CAMSIM_CMD_OUTAGE);
        assert_string_equal(c.camera, "cam3");
        assert_true(c.seconds > 5.49 && c.seconds < 5.51);
        assert_int_equal(parse("outage all 1", &c), 0);
        assert_string_equal(c.camera, "");
        assert_int_equal(parse("drop", &c), 0);
        assert_int_equal(c.kind, CAMSIM_CMD_DROP);
        assert_string_equal(c.camera, "");
        assert_int_equal(parse("  drop \t cam1 ", &c), 0);
        assert_string_equal(c.camera, "cam1");
        assert_int_equal(parse("corrupt cam2 25", &c), 0);
        assert_int_equal(c.kind, CAMSIM_CMD_CORRUPT);
        assert_int_equal(c.frames, 25);
}

/* sessions [CAM|all]: the session log of one camera or of every camera. */
static void test_sessions_command(void **state)
{
        struct camsim_cmd c;

        assert_int_equal(parse("sessions", &c), 0);
        assert_int_equal(c.kind, CAMSIM_CMD_SESSIONS);
        assert_string_equal(c.camera, "");
        assert_int_equal(parse("sessions all\r", &c), 0);
        assert_int_equal(c.kind, CAMSIM_CMD_SESSIONS);
        assert_string_equal(c.camera, "");
        assert_int_equal(parse(" sessions\tcam12 ", &c), 0);
        assert_string_equal(c.camera, "cam12");
        assert_int_equal(parse("sessions cam1 cam2", &c), -EINVAL);
        assert_int_equal(parse("sessions ../cam1", &c), -EINVAL);
        assert_int_equal(parse("session", &c), -EINVAL);
        assert_int_equal(parse("sessionsx", &c), -EINVAL);
}

static void test_invalid_commands(void **state)
{
        static const char *bad[] = { "", "   ", "reboot", "status now", "outage cam1", "outage cam1 0",
                                     "outage cam1 -3", "outage cam1 nan", "outage cam1 inf", "outage cam1 4000",
                                     "outage cam1 5s", "corrupt cam1 0", "corrupt cam1 -1", "corrupt cam1 1e3",
                                     "corrupt cam1 100001", "drop cam1 cam2", "drop ../cam1", "drop cam/1",
                                     "outage a b c d e" };
        struct camsim_cmd c;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_int_equal(parse(bad[i], &c), -EINVAL);
}

static void test_limits(void **state)
{
        char line[CAMSIM_CMD_LINE_MAX + 2], err[128];
        struct camsim_cmd c;

        memset(line, 'a', sizeof(line));
        assert_int_equal(camsim_cmd_parse(line, sizeof(line), &c, err, sizeof(err)), -E2BIG);
        /* a camera id of exactly the maximum is refused with a reason */
        strcpy(line, "drop ");
        memset(line + 5, 'c', CAMSIM_CAMERA_ID_MAX);
        line[5 + CAMSIM_CAMERA_ID_MAX] = '\0';
        assert_int_equal(camsim_cmd_parse(line, strlen(line), &c, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "too long"));
        /* embedded NUL */
        assert_int_equal(camsim_cmd_parse("drop\0x", 6, &c, err, sizeof(err)), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_valid_commands),
                cmocka_unit_test(test_invalid_commands),
                cmocka_unit_test(test_sessions_command),
                cmocka_unit_test(test_limits),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
