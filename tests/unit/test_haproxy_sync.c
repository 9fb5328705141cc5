/* Unit tests of proxy-config/haproxy_sync.c's haproxy_save_state against a
 * fake haproxy (a forked child on a unix socket in a temp dir that answers
 * `show servers state` with a known text).  Issue 12: a short write of the
 * state file counted as success and the truncated file replaced the good
 * one.  RLIMIT_FSIZE with SIGXFSZ ignored makes the kernel write only part
 * of the text, then fail with EFBIG: the save must fail naming the errno,
 * remove its temp file and leave the old state file as it was. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/config.h"
#include "proxy-config/haproxy_sync.h"

#define ANSWER_LINES 2000   /* ~130 KB: many times the size limit below */
#define FSIZE_LIMIT 4096    /* bytes a file may grow to during the short-write test */
#define OLD_STATE "1\n# the state a previous save left\n"
#define CHILD_TIMEOUT_S 10  /* a fake haproxy nobody talks to does not outlive the test */

struct fixture {
        char dir[64];
        char sock[128], state[128], tmp[136];
        char *answer; /* what the fake haproxy says */
        struct mwr_config cfg;
};

static int setup(void **state)
{
        struct fixture *fx = calloc(1, sizeof(*fx));
        size_t len = 0, cap = 80 * (ANSWER_LINES + 2);

        if (!fx)
                return -1;
        snprintf(fx->dir, sizeof(fx->dir), "/tmp/mwr-test-hsync-XXXXXX");
        if (!(fx->answer = malloc(cap)) || !mkdtemp(fx->dir)) {
                free(fx->answer);
                free(fx);
                return -1;
        }
        snprintf(fx->sock, sizeof(fx->sock), "%s/haproxy.sock", fx->dir);
        snprintf(fx->state, sizeof(fx->state), "%s/haproxy.state", fx->dir);
        snprintf(fx->tmp, sizeof(fx->tmp), "%s.tmp", fx->state);
        len += (size_t)snprintf(fx->answer + len, cap - len, "1\n# be_id be_name srv_id srv_name srv_addr\n");
        for (int i = 0; i < ANSWER_LINES; i++)
                len += (size_t)snprintf(fx->answer + len, cap - len,
                                        "3 mwr %d srv%04d 127.0.0.1 2 0 1 1 12 1 0 2 0 0 0 0 - 8001 -\n", i, i);
        fx->cfg.haproxy.socket = fx->sock;
        *state = fx;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *fx = *state;

        unlink(fx->sock);
        unlink(fx->state);
        unlink(fx->tmp);
        rmdir(fx->dir);
        free(fx->answer);
        free(fx);
        return 0;
}

/* A child that answers one command on path with answer, then exits. */
static pid_t fake_haproxy(const char *path, const char *answer)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        pid_t pid;

        assert_true(lfd >= 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        unlink(path);
        assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(listen(lfd, 1), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                size_t off = 0, len = strlen(answer);
                char c;
                int fd;

                alarm(CHILD_TIMEOUT_S);
                if ((fd = accept(lfd, NULL, NULL)) < 0)
                        _exit(1);
                while (read(fd, &c, 1) == 1 && c != '\n')
                        ;
                while (off < len) {
                        ssize_t n = send(fd, answer + off, len - off, MSG_NOSIGNAL);

                        if (n <= 0)
                                _exit(1);
                        off += (size_t)n;
                }
                _exit(0);
        }
        close(lfd);
        return pid;
}

static void reap(pid_t pid)
{
        int status;

        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void write_file(const char *path, const char *text)
{
        FILE *f = fopen(path, "w");

        assert_non_null(f);
        assert_int_equal(fputs(text, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
}

/* The file's whole content, malloc'ed. */
static char *read_file(const char *path)
{
        FILE *f = fopen(path, "r");
        char *buf;
        long len;

        assert_non_null(f);
        assert_int_equal(fseek(f, 0, SEEK_END), 0);
        len = ftell(f);
        rewind(f);
        buf = calloc(1, (size_t)len + 1);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
        fclose(f);
        return buf;
}

/* The answer replaces the old state file, all of it. */
static void test_save_state_writes_whole_answer(void **state)
{
        struct fixture *fx = *state;
        char err[256] = "", *got;
        pid_t pid;
        int r;

        write_file(fx->state, OLD_STATE);
        pid = fake_haproxy(fx->sock, fx->answer);
        r = haproxy_save_state(&fx->cfg, err, sizeof(err));
        reap(pid);
        if (r != 0)
                fail_msg("haproxy_save_state: %d: %s", r, err);
        got = read_file(fx->state);
        assert_string_equal(got, fx->answer);
        free(got);
        assert_int_equal(access(fx->tmp, F_OK), -1);
}

/* The kernel writes FSIZE_LIMIT bytes (a short write), then refuses the
 * rest with EFBIG: an error, not a truncated state file. */
static void test_save_state_short_write_keeps_old_file(void **state)
{
        struct fixture *fx = *state;
        struct rlimit old_lim, lim;
        struct sigaction ign = { .sa_handler = SIG_IGN }, old_sa;
        char err[256] = "", want[256], *got;
        pid_t pid;
        int r;

        write_file(fx->state, OLD_STATE);
        pid = fake_haproxy(fx->sock, fx->answer); /* forked before the limit: not under it */
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &old_lim), 0);
        lim = (struct rlimit){ .rlim_cur = FSIZE_LIMIT, .rlim_max = old_lim.rlim_max };
        assert_int_equal(sigaction(SIGXFSZ, &ign, &old_sa), 0);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        r = haproxy_save_state(&fx->cfg, err, sizeof(err));
        /* lift the limit before any assert can print: cmocka's output may
         * be a file past FSIZE_LIMIT */
        setrlimit(RLIMIT_FSIZE, &old_lim);
        sigaction(SIGXFSZ, &old_sa, NULL);
        reap(pid);

        if (r != -EFBIG)
                fail_msg("haproxy_save_state: %d (%s), want %d (EFBIG)", r, err, -EFBIG);
        snprintf(want, sizeof(want), "%s: write: %s", fx->tmp, strerror(EFBIG));
        assert_string_equal(err, want);
        got = read_file(fx->state);
        assert_string_equal(got, OLD_STATE);
        free(got);
        assert_int_equal(access(fx->tmp, F_OK), -1);
}

/* rename fails (the target is a non-empty directory): the temp file goes. */
static void test_save_state_rename_failure_removes_temp(void **state)
{
        struct fixture *fx = *state;
        char err[256] = "", inner[160];
        pid_t pid;
        int r;

        snprintf(inner, sizeof(inner), "%s/keep", fx->state);
        assert_int_equal(mkdir(fx->state, 0700), 0);
        write_file(inner, "x");
        pid = fake_haproxy(fx->sock, fx->answer);
        r = haproxy_save_state(&fx->cfg, err, sizeof(err));
        reap(pid);
        unlink(inner);
        rmdir(fx->state);
        assert_true(r == -EISDIR || r == -ENOTEMPTY || r == -EEXIST);
        assert_non_null(strstr(err, ": rename: "));
        assert_int_equal(access(fx->tmp, F_OK), -1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_save_state_writes_whole_answer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_save_state_short_write_keeps_old_file, setup, teardown),
                cmocka_unit_test_setup_teardown(test_save_state_rename_failure_removes_temp, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
