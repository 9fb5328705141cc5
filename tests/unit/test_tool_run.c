/* Unit tests of supervisor/tool_run.c with real processes on a real
 * sd-event loop: the output and the exit code come to done(), a kill is
 * 128 + 9, a missing binary is 127 with the reason, abort reaps without
 * done(), and a second start while one runs is refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "supervisor/tool_run.h"

struct res {
        sd_event *e;
        int status, calls;
};

static void done(void *ud, int status)
{
        struct res *r = ud;

        r->status = status;
        r->calls++;
}

static void wait_done(struct res *r)
{
        for (int i = 0; i < 100 && !r->calls; i++)
                assert_true(sd_event_run(r->e, 100000) >= 0);
}

static void run_to_end(struct tool_run *t, struct res *r, char *const argv[])
{
        assert_int_equal(tool_run_start(t, r->e, argv, done, r), 0);
        assert_true(t->pid > 0);
        wait_done(r);
        assert_int_equal(r->calls, 1);
        assert_int_equal(t->pid, 0);
}

static void test_output_and_exit_code(void **state)
{
        struct tool_run t;
        struct res r = { 0 };
        char *argv[] = { "/bin/sh", "-c", "echo out; echo err >&2; exit 3", NULL };

        assert_int_equal(sd_event_new(&r.e), 0);
        tool_run_init(&t);
        run_to_end(&t, &r, argv);
        assert_int_equal(r.status, 3);
        assert_non_null(strstr(t.out, "out\n"));
        assert_non_null(strstr(t.out, "err\n"));
        sd_event_unref(r.e);
}

static void test_kill_missing_busy_and_abort(void **state)
{
        struct tool_run t;
        struct res r = { 0 };
        char *sleeper[] = { "/bin/sleep", "30", NULL };
        char *missing[] = { "/nonexistent/mwr", "dedup", NULL };

        assert_int_equal(sd_event_new(&r.e), 0);
        tool_run_init(&t);
        assert_int_equal(tool_run_start(&t, r.e, sleeper, done, &r), 0);
        assert_int_equal(tool_run_start(&t, r.e, sleeper, done, &r), -EBUSY);
        tool_run_kill(&t);
        wait_done(&r);
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.status, 128 + 9);

        r.calls = 0;
        run_to_end(&t, &r, missing);
        assert_int_equal(r.status, 127);
        assert_non_null(strstr(t.out, "exec /nonexistent/mwr"));

        r.calls = 0;
        assert_int_equal(tool_run_start(&t, r.e, sleeper, done, &r), 0);
        tool_run_abort(&t);
        assert_int_equal(t.pid, 0);
        assert_true(sd_event_run(r.e, 100000) >= 0); /* nothing left to call done() */
        assert_int_equal(r.calls, 0);
        tool_run_abort(&t); /* idle: harmless */
        sd_event_unref(r.e);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_output_and_exit_code),
                cmocka_unit_test(test_kill_missing_busy_and_abort),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
