/* Unit tests of supervisor/child_env.c (issue 12: no setenv between fork and
 * exec): the worker's environment is the parent's minus the variables
 * systemd set for the supervisor, in the parent's order, plus NOTIFY_SOCKET
 * and, with a watchdog, WATCHDOG_USEC and the child's own WATCHDOG_PID;
 * nothing else changes and the parent's environment is left as it was.
 * The last test execs env(1) with the result, as slot_spawn does. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "supervisor/child_env.h"

#define ENV_BIN "/usr/bin/env"

static size_t count(char *const *v)
{
        size_t n = 0;

        while (v[n])
                n++;
        return n;
}

/* want (NULL-terminated) is exactly got, in order. */
static void assert_env(char *const *got, const char *const *want)
{
        size_t i;

        for (i = 0; want[i]; i++) {
                if (!got[i])
                        fail_msg("entry %zu missing, want \"%s\"", i, want[i]);
                assert_string_equal(got[i], want[i]);
        }
        if (got[i])
                fail_msg("extra entry %zu: \"%s\"", i, got[i]);
}

/* Every stripped variable goes, wherever it is and however often; names
 * that only start like one, and entries without '=', stay. */
static void test_strips_and_adds(void **state)
{
        char *base[] = { "PATH=/usr/bin:/bin",
                         "NOTIFY_SOCKET=/run/systemd/notify",
                         "HOME=/home/mwr",
                         "WATCHDOG_USEC=30000000",
                         "WATCHDOG_PID=1",
                         "LISTEN_FDS=2",
                         "LISTEN_PID=1",
                         "NOTIFY_SOCKETS=keep",
                         "NOTIFY_SOCKE=keep",
                         "XLISTEN_FDS=keep",
                         "BARE",
                         "EMPTY=",
                         "NOTIFY_SOCKET=twice",
                         "LISTEN_FDNAMES=not-ours-to-strip",
                         NULL };
        static const char *const want[] = { "PATH=/usr/bin:/bin",
                                            "HOME=/home/mwr",
                                            "NOTIFY_SOCKETS=keep",
                                            "NOTIFY_SOCKE=keep",
                                            "XLISTEN_FDS=keep",
                                            "BARE",
                                            "EMPTY=",
                                            "LISTEN_FDNAMES=not-ours-to-strip",
                                            "NOTIFY_SOCKET=/run/mwr/notify-a.sock",
                                            "WATCHDOG_USEC=5000000",
                                            "WATCHDOG_PID=4242",
                                            NULL };
        struct child_env ce;

        assert_int_equal(child_env_build(&ce, base, "/run/mwr/notify-a.sock", 5000000), 0);
        child_env_set_pid(&ce, 4242);
        assert_env(ce.envp, want);
        child_env_free(&ce);
        assert_null(ce.envp);
}

/* Without a watchdog the worker must not see one, not even the parent's. */
static void test_no_watchdog(void **state)
{
        char *base[] = { "WATCHDOG_USEC=1", "TERM=dumb", "WATCHDOG_PID=7", NULL };
        static const char *const want[] = { "TERM=dumb", "NOTIFY_SOCKET=/n.sock", NULL };
        struct child_env ce;

        assert_int_equal(child_env_build(&ce, base, "/n.sock", 0), 0);
        child_env_set_pid(&ce, 99); /* no WATCHDOG_PID: nothing to write */
        assert_env(ce.envp, want);
        child_env_free(&ce);
}

static void test_empty_base(void **state)
{
        char *empty[] = { NULL };
        static const char *const want[] = { "NOTIFY_SOCKET=/n.sock", NULL };
        struct child_env ce;

        assert_int_equal(child_env_build(&ce, empty, "/n.sock", 0), 0);
        assert_env(ce.envp, want);
        child_env_free(&ce);
        assert_int_equal(child_env_build(&ce, NULL, "/n.sock", 0), 0);
        assert_env(ce.envp, want);
        child_env_free(&ce);
}

/* The pid slot holds the widest pid and a shorter one written after it. */
static void test_pid_rewritten(void **state)
{
        char *base[] = { NULL };
        struct child_env ce;
        char want[64];

        assert_int_equal(child_env_build(&ce, base, "/n.sock", UINT64_MAX), 0);
        assert_int_equal(count(ce.envp), 3);
        assert_string_equal(ce.envp[1], "WATCHDOG_USEC=18446744073709551615");
        assert_string_equal(ce.envp[2], "WATCHDOG_PID=0"); /* until the child sets it */
        child_env_set_pid(&ce, INT_MAX);
        snprintf(want, sizeof(want), "WATCHDOG_PID=%d", INT_MAX);
        assert_string_equal(ce.envp[2], want);
        child_env_set_pid(&ce, 1);
        assert_string_equal(ce.envp[2], "WATCHDOG_PID=1");
        child_env_free(&ce);
}

/* Copies, not aliases: the parent's strings and array stay as they were
 * and outlive the child environment. */
static void test_base_untouched(void **state)
{
        char path[] = "PATH=/bin", sock[] = "NOTIFY_SOCKET=/old";
        char *base[] = { path, sock, NULL };
        struct child_env ce;

        assert_int_equal(child_env_build(&ce, base, "/new", 1000), 0);
        assert_ptr_not_equal(ce.envp[0], path);
        child_env_set_pid(&ce, 12);
        child_env_free(&ce);
        assert_ptr_equal(base[0], path);
        assert_ptr_equal(base[1], sock);
        assert_null(base[2]);
        assert_string_equal(path, "PATH=/bin");
        assert_string_equal(sock, "NOTIFY_SOCKET=/old");
}

/* What a child exec'ed with envp sees: env(1)'s output, one line each. */
static void test_exec_sees_it(void **state)
{
        char *base[] = { "LANG=C", "LISTEN_PID=1", NULL };
        char out[1024] = "", want[256];
        struct child_env ce;
        size_t len = 0;
        int p[2], status;
        pid_t pid;
        ssize_t n;

        if (access(ENV_BIN, X_OK) != 0)
                skip();
        assert_int_equal(child_env_build(&ce, base, "/n.sock", 3000000), 0);
        assert_int_equal(pipe(p), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                char *const argv[] = { ENV_BIN, NULL };

                dup2(p[1], STDOUT_FILENO);
                child_env_set_pid(&ce, getpid());
                execve(argv[0], argv, ce.envp);
                _exit(127);
        }
        close(p[1]);
        while ((n = read(p[0], out + len, sizeof(out) - 1 - len)) > 0)
                len += (size_t)n;
        close(p[0]);
        child_env_free(&ce);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        snprintf(want, sizeof(want), "LANG=C\nNOTIFY_SOCKET=/n.sock\nWATCHDOG_USEC=3000000\nWATCHDOG_PID=%d\n",
                 (int)pid);
        assert_string_equal(out, want);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_strips_and_adds),
                cmocka_unit_test(test_no_watchdog),
                cmocka_unit_test(test_empty_base),
                cmocka_unit_test(test_pid_rewritten),
                cmocka_unit_test(test_base_untouched),
                cmocka_unit_test(test_exec_sees_it),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
