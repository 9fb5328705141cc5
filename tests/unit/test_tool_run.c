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
        assert_string_equal(t.out, "out\n"); /* stdout alone: a warning never spoils a tool's JSON */
        assert_string_equal(t.err, "err\n");
        assert_string_equal(tool_run_says(&t), "err\n");
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
        tool_run_kill(&t, "timed out");
        wait_done(&r);
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.status, 128 + 9);
        assert_string_equal(tool_run_says(&t), "killed: timed out");

        r.calls = 0;
        run_to_end(&t, &r, missing);
        assert_int_equal(r.status, 127);
        assert_non_null(strstr(t.err, "exec /nonexistent/mwr"));

        r.calls = 0;
        assert_int_equal(tool_run_start(&t, r.e, sleeper, done, &r), 0);
        tool_run_abort(&t);
        assert_int_equal(t.pid, 0);
        assert_true(sd_event_run(r.e, 100000) >= 0); /* nothing left to call done() */
        assert_int_equal(r.calls, 0);
        tool_run_abort(&t); /* idle: harmless */
        sd_event_unref(r.e);
}

/* More output than the caps: kept up to them, the rest read and dropped,
 * so the child never blocks on a full pipe and its exit comes. */
static void test_a_chatty_child_is_not_blocked(void **state)
{
        struct tool_run t;
        struct res r = { 0 };
        char *argv[] = { "/bin/sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x; head -c 300000 /dev/zero >&2; exit 0",
                         NULL };

        assert_int_equal(sd_event_new(&r.e), 0);
        tool_run_init(&t);
        run_to_end(&t, &r, argv);
        assert_int_equal(r.status, 0);
        assert_int_equal(t.out_len, TOOL_OUT_MAX);
        assert_int_equal(t.err_len, TOOL_ERR_MAX);
        sd_event_unref(r.e);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_output_and_exit_code),
                cmocka_unit_test(test_kill_missing_busy_and_abort),
                cmocka_unit_test(test_a_chatty_child_is_not_blocked),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
