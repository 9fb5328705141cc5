/* Unit tests of proxy-config/haproxy_runtime.c against a real haproxy (skipped
 * when /usr/sbin/haproxy is missing): one daemon per run in its own temp dir,
 * backend `mwr` with server a (checked against a port nobody listens on, so
 * it goes DOWN) and b (no check, starts disabled).  Fake unix servers cover
 * what haproxy cannot be made to do: refuse, stall, answer too much.  The
 * daemon is killed by the pid in its pidfile in the group teardown, or by
 * the SIGALRM watchdog if the run hangs. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/time_util.h"
#include "proxy-config/haproxy_runtime.h"

#ifndef HAPROXY_BIN /* -DHAPROXY_BIN=\"/nonexistent\" checks the skip path */
#define HAPROXY_BIN "/usr/sbin/haproxy"
#endif
#define START_TIMEOUT_MS 10000 /* `haproxy -D` returns in ~50 ms; its socket follows */
#define STOP_TIMEOUT_MS 3000   /* SIGTERM, then SIGKILL */
#define DOWN_TIMEOUT_MS 5000   /* server a is checked every 100 ms, fall 1 */
#define WATCHDOG_S 120         /* the whole run; the slowest test takes ~2 s */

struct fixture {
        bool skip;
        char dir[64];
        char sock[128], user_sock[128], cfg[128], pidfile[128], log[128];
        unsigned port_a, port_b;
        pid_t pid; /* the haproxy daemon, from its pidfile */
};

/* The daemon's pid for the watchdog handler, which has no other way to it. */
static volatile sig_atomic_t watchdog_pid;

static void on_watchdog(int sig)
{
        static const char msg[] = "test_haproxy_runtime: watchdog expired, killing haproxy\n";

        if (watchdog_pid > 0)
                kill((pid_t)watchdog_pid, SIGKILL);
        if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
                /* nothing left to report it to */
        }
        signal(sig, SIG_DFL);
        raise(sig);
}

static void sleep_ms(int ms)
{
        nanosleep(&(struct timespec){ .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L }, NULL);
}

static void print_file(const char *path)
{
        char line[512];
        FILE *f = fopen(path, "r");

        if (!f)
                return;
        while (fgets(line, sizeof(line), f))
                fprintf(stderr, "    %s", line);
        fclose(f);
}

/* n distinct loopback ports nobody listens on: bound together, then closed. */
static int free_ports(unsigned *ports, int n)
{
        int fds[4], r = 0;

        for (int i = 0; i < n && i < 4; i++) {
                struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                socklen_t len = sizeof(sa);

                fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
                    getsockname(fds[i], (struct sockaddr *)&sa, &len) < 0)
                        r = -1;
                ports[i] = ntohs(sa.sin_port);
        }
        for (int i = 0; i < n && i < 4; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
        return r;
}

static int write_cfg(const struct fixture *fx)
{
        FILE *f = fopen(fx->cfg, "w");

        if (!f)
                return -1;
        fprintf(f,
                "global\n"
                "        stats socket %s mode 600 level admin\n"
                "        stats socket %s mode 600 level user\n"
                "defaults\n"
                "        mode http\n"
                "        timeout connect 1s\n"
                "        timeout client 5s\n"
                "        timeout server 5s\n"
                "backend mwr\n"
                "        server a 127.0.0.1:%u check inter 100ms fall 1 rise 1\n"
                "        server b 127.0.0.1:%u disabled\n",
                fx->sock, fx->user_sock, fx->port_a, fx->port_b);
        return fclose(f) == 0 ? 0 : -1;
}

/* Runs `haproxy -f cfg -D -p pidfile` and waits (bounded) for the launcher,
 * which exits once the daemon is forked and the pidfile written. */
static int start_haproxy(struct fixture *fx)
{
        pid_t launcher = fork();
        int status = 0;
        FILE *f;
        long pid = 0;

        if (launcher < 0)
                return -1;
        if (launcher == 0) {
                int fd = open(fx->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
                        _exit(127);
                execl(HAPROXY_BIN, "haproxy", "-f", fx->cfg, "-D", "-p", fx->pidfile, (char *)NULL);
                _exit(127);
        }
        for (int ms = 0; waitpid(launcher, &status, WNOHANG) == 0; ms += 10) {
                if (ms >= START_TIMEOUT_MS) {
                        kill(launcher, SIGKILL);
                        waitpid(launcher, &status, 0);
                        return -1;
                }
                sleep_ms(10);
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return -1;
        if (!(f = fopen(fx->pidfile, "r")))
                return -1;
        if (fscanf(f, "%ld", &pid) != 1)
                pid = 0;
        fclose(f);
        if (pid <= 0)
                return -1;
        fx->pid = (pid_t)pid;
        watchdog_pid = (sig_atomic_t)pid;
        return 0;
}

/* Gone, or a zombie nobody has reaped yet (haproxy -D is not our child). */
static bool process_gone(pid_t pid)
{
        char path[64], buf[256], *paren;
        FILE *f;
        bool zombie = false;

        if (kill(pid, 0) < 0 && errno == ESRCH)
                return true;
        snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
        if (!(f = fopen(path, "r")))
                return true;
        if (fgets(buf, sizeof(buf), f) && (paren = strrchr(buf, ')')) && paren[1] == ' ')
                zombie = paren[2] == 'Z';
        fclose(f);
        return zombie;
}

static void stop_haproxy(struct fixture *fx)
{
        if (fx->pid <= 0)
                return;
        kill(fx->pid, SIGTERM);
        for (int ms = 0; !process_gone(fx->pid); ms += 10) {
                if (ms >= STOP_TIMEOUT_MS) {
                        kill(fx->pid, SIGKILL);
                        break;
                }
                sleep_ms(10);
        }
        fx->pid = 0;
        watchdog_pid = 0;
}

static int group_teardown(void **state)
{
        struct fixture *fx = *state;

        if (!fx)
                return 0;
        stop_haproxy(fx);
        if (fx->dir[0]) {
                const char *files[] = { fx->sock, fx->user_sock, fx->cfg, fx->pidfile, fx->log };
                for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
                        unlink(files[i]);
                if (rmdir(fx->dir) < 0)
                        fprintf(stderr, "    could not remove %s: %s\n", fx->dir, strerror(errno));
        }
        free(fx);
        alarm(0);
        return 0;
}

/* Creates the temp dir and config and starts haproxy; on failure prints
 * haproxy's output and leaves the cleanup to the caller. */
static int fixture_start(struct fixture *fx)
{
        unsigned ports[2];
        int64_t deadline_us;

        snprintf(fx->dir, sizeof(fx->dir), "/tmp/mwr-test-hap-XXXXXX");
        if (!mkdtemp(fx->dir)) {
                fx->dir[0] = '\0';
                return -1;
        }
        snprintf(fx->sock, sizeof(fx->sock), "%s/haproxy.sock", fx->dir);
        snprintf(fx->user_sock, sizeof(fx->user_sock), "%s/user.sock", fx->dir);
        snprintf(fx->cfg, sizeof(fx->cfg), "%s/haproxy.cfg", fx->dir);
        snprintf(fx->pidfile, sizeof(fx->pidfile), "%s/haproxy.pid", fx->dir);
        snprintf(fx->log, sizeof(fx->log), "%s/haproxy.log", fx->dir);
        if (free_ports(ports, 2) < 0)
                return -1;
        fx->port_a = ports[0];
        fx->port_b = ports[1];
        if (write_cfg(fx) < 0 || start_haproxy(fx) < 0) {
                fprintf(stderr, "    haproxy did not start; its output:\n");
                print_file(fx->log);
                return -1;
        }
        /* The pidfile comes before the socket is surely bound: wait for an answer. */
        deadline_us = now_mono_us() + START_TIMEOUT_MS * USEC_PER_MSEC;
        while (hap_command(fx->sock, "show info", NULL) < 0) {
                if (now_mono_us() > deadline_us) {
                        fprintf(stderr, "    no answer on %s; haproxy output:\n", fx->sock);
                        print_file(fx->log);
                        return -1;
                }
                sleep_ms(20);
        }
        return 0;
}

static int group_setup(void **state)
{
        struct fixture *fx = calloc(1, sizeof(*fx));

        if (!fx)
                return -1;
        *state = fx;
        if (access(HAPROXY_BIN, X_OK) != 0) {
                fprintf(stderr, "    %s missing: every test of haproxy_runtime is skipped\n", HAPROXY_BIN);
                fx->skip = true;
                return 0;
        }
        signal(SIGALRM, on_watchdog);
        alarm(WATCHDOG_S);
        if (fixture_start(fx) < 0) {
                group_teardown(state);
                *state = NULL;
                return -1;
        }
        return 0;
}

static struct fixture *fixture(void **state)
{
        struct fixture *fx = *state;

        if (fx->skip)
                skip();
        return fx;
}

/* ---- against haproxy ------------------------------------------------------- */

static void test_show_info(void **state)
{
        struct fixture *fx = fixture(state);
        char *ans = NULL;

        assert_int_equal(hap_command(fx->sock, "show info", &ans), 0);
        assert_non_null(ans);
        assert_non_null(strstr(ans, "Name: HAProxy"));
        free(ans);
        assert_int_equal(hap_command(fx->sock, "show info", NULL), 0);
}

static void test_show_servers_initial_states(void **state)
{
        struct fixture *fx = fixture(state);
        struct hap_server s[4];
        size_t n = 99;

        assert_int_equal(hap_show_servers(fx->sock, "mwr", s, 4, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(s[0].name, "a");
        assert_int_equal(s[0].admin, HAP_READY);
        assert_string_equal(s[1].name, "b");
        assert_int_equal(s[1].admin, HAP_MAINT);
        assert_string_equal(s[1].status, "MAINT");
        assert_false(s[1].check_ok);
        assert_int_equal(s[1].scur, 0);
        assert_int_equal(s[1].stot, 0);

        /* up to max */
        assert_int_equal(hap_show_servers(fx->sock, "mwr", s, 1, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(s[0].name, "a");
}

static void expect_admin(const struct fixture *fx, const char *server, enum hap_admin admin)
{
        struct hap_server s;

        assert_int_equal(hap_server_get(fx->sock, "mwr", server, &s), 0);
        assert_string_equal(s.name, server);
        if (s.admin != (int)admin)
                fail_msg("server %s: admin %d, want %d (status \"%s\")", server, s.admin, admin, s.status);
}

static void test_set_state_round_trips(void **state)
{
        static const enum hap_admin seq[] = { HAP_MAINT, HAP_DRAIN, HAP_READY, HAP_DRAIN, HAP_MAINT, HAP_READY };
        struct fixture *fx = fixture(state);
        static const char *const servers[] = { "a", "b" };
        char err[128];

        for (size_t i = 0; i < 2; i++)
                for (size_t k = 0; k < sizeof(seq) / sizeof(seq[0]); k++) {
                        assert_int_equal(hap_set_state(fx->sock, "mwr", servers[i], seq[k], err, sizeof(err)), 0);
                        assert_string_equal(err, "");
                        expect_admin(fx, servers[i], seq[k]);
                }
        /* b has no check: ready at once, and "no check" counts as passing */
        {
                struct hap_server s;
                assert_int_equal(hap_server_get(fx->sock, "mwr", "b", &s), 0);
                assert_string_equal(s.status, "no check");
                assert_true(s.check_ok);
        }
        assert_int_equal(hap_set_state(fx->sock, "mwr", "b", HAP_MAINT, NULL, 0), 0);
        expect_admin(fx, "b", HAP_MAINT);
}

/* The reason admin comes from `show servers state`: a drained server whose
 * check fails has the status "DOWN", and must still read as drained. */
static void test_drain_of_down_server_reads_drain(void **state)
{
        struct fixture *fx = fixture(state);
        int64_t deadline_us = now_mono_us() + DOWN_TIMEOUT_MS * USEC_PER_MSEC;
        struct hap_server s;

        for (;;) {
                assert_int_equal(hap_server_get(fx->sock, "mwr", "a", &s), 0);
                if (!strcmp(s.status, "DOWN"))
                        break;
                if (now_mono_us() > deadline_us)
                        fail_msg("server a never went DOWN (status \"%s\")", s.status);
                sleep_ms(50);
        }
        assert_false(s.check_ok);
        assert_int_equal(s.admin, HAP_READY);
        assert_int_equal(hap_set_state(fx->sock, "mwr", "a", HAP_DRAIN, NULL, 0), 0);
        assert_int_equal(hap_server_get(fx->sock, "mwr", "a", &s), 0);
        assert_string_equal(s.status, "DOWN");
        assert_int_equal(s.admin, HAP_DRAIN);
        assert_false(s.check_ok);
        assert_int_equal(hap_set_state(fx->sock, "mwr", "a", HAP_READY, NULL, 0), 0);
        expect_admin(fx, "a", HAP_READY);
}

static void test_unknown_server_and_backend(void **state)
{
        struct fixture *fx = fixture(state);
        struct hap_server s[2];
        char err[128];
        size_t n = 99;

        assert_int_equal(hap_set_state(fx->sock, "mwr", "zz", HAP_DRAIN, err, sizeof(err)), -ENOENT);
        assert_string_equal(err, "No such server.");
        assert_int_equal(hap_set_state(fx->sock, "nosuch", "a", HAP_DRAIN, err, sizeof(err)), -ENOENT);
        assert_string_equal(err, "No such backend.");
        assert_int_equal(hap_server_get(fx->sock, "mwr", "zz", s), -ENOENT);
        assert_int_equal(hap_server_get(fx->sock, "nosuch", "a", s), -ENOENT);
        assert_int_equal(hap_show_servers(fx->sock, "nosuch", s, 2, &n), -ENOENT);
        assert_int_equal(n, 0);
}

static void test_user_level_socket_is_eacces(void **state)
{
        struct fixture *fx = fixture(state);
        char err[128];

        assert_int_equal(hap_command(fx->user_sock, "show info", NULL), 0);
        assert_int_equal(hap_set_state(fx->user_sock, "mwr", "a", HAP_DRAIN, err, sizeof(err)), -EACCES);
        assert_string_equal(err, "Permission denied");
        expect_admin(fx, "a", HAP_READY);
}

static void test_unknown_command(void **state)
{
        struct fixture *fx = fixture(state);
        char *ans = (char *)"untouched";

        assert_int_equal(hap_command(fx->sock, "frobnicate the servers", &ans), -EOPNOTSUPP);
        assert_null(ans);
}

static void test_invalid_arguments(void **state)
{
        struct fixture *fx = fixture(state);
        char big[HAP_ANSWER_MAX / 64], *ans = NULL;

        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        assert_int_equal(hap_command(fx->sock, "show info\nshow stat", &ans), -EINVAL);
        assert_null(ans);
        assert_int_equal(hap_command(fx->sock, "show info\r", NULL), -EINVAL);
        assert_int_equal(hap_command(fx->sock, "", NULL), -EINVAL);
        assert_int_equal(hap_command(fx->sock, big, NULL), -EINVAL);
        assert_int_equal(hap_set_state(fx->sock, "mwr x", "a", HAP_DRAIN, NULL, 0), -EINVAL);
        assert_int_equal(hap_set_state(fx->sock, "mwr", "a;shutdown sessions", HAP_DRAIN, NULL, 0), -EINVAL);
        assert_int_equal(hap_set_state(fx->sock, "mwr", "a", (enum hap_admin)7, NULL, 0), -EINVAL);
        expect_admin(fx, "a", HAP_READY);
}

/* ---- without haproxy ----------------------------------------------------- */

static void test_missing_socket_is_enoent(void **state)
{
        struct fixture *fx = fixture(state);
        char path[160];

        snprintf(path, sizeof(path), "%s/nobody.sock", fx->dir);
        assert_int_equal(hap_command(path, "show info", NULL), -ENOENT);
}

/* A unix socket bound but never listened on: haproxy died and left its file. */
static void test_dead_socket_is_econnrefused(void **state)
{
        struct fixture *fx = fixture(state);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int r;

        assert_true(fd >= 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/dead.sock", fx->dir);
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        r = hap_command(sa.sun_path, "show info", NULL);
        close(fd);
        unlink(sa.sun_path);
        assert_int_equal(r, -ECONNREFUSED);
}

static int listen_unix(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(listen(fd, 4), 0);
        return fd;
}

/* A listener that never accepts: connect and write succeed (the backlog
 * takes them), the read must give up at HAP_TIMEOUT_MS. */
static void test_silent_peer_times_out(void **state)
{
        struct fixture *fx = fixture(state);
        char path[160];
        int fd, r;
        int64_t t0, elapsed_ms;

        snprintf(path, sizeof(path), "%s/silent.sock", fx->dir);
        fd = listen_unix(path);
        t0 = now_mono_us();
        r = hap_command(path, "show info", NULL);
        elapsed_ms = (now_mono_us() - t0) / USEC_PER_MSEC;
        close(fd);
        unlink(path);
        assert_int_equal(r, -ETIMEDOUT);
        if (elapsed_ms < HAP_TIMEOUT_MS - 50 || elapsed_ms > HAP_TIMEOUT_MS + 1000)
                fail_msg("timed out after %lld ms, want ~%d", (long long)elapsed_ms, HAP_TIMEOUT_MS);
}

/* A child that answers one command with len bytes of 'x' and exits. */
static pid_t fake_answer(int lfd, size_t len)
{
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
                char c, *buf = malloc(len + 1);
                int fd;
                size_t off = 0;

                signal(SIGALRM, SIG_DFL);
                alarm(10);
                if (!buf || (fd = accept(lfd, NULL, NULL)) < 0)
                        _exit(1);
                while (read(fd, &c, 1) == 1 && c != '\n')
                        ;
                memset(buf, 'x', len);
                while (off < len) {
                        ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
                        if (n <= 0)
                                _exit(0); /* the client gave up: expected past the cap */
                        off += (size_t)n;
                }
                _exit(0);
        }
        return pid;
}

static void reap(pid_t pid)
{
        int status;

        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
}

static void test_answer_cap(void **state)
{
        struct fixture *fx = fixture(state);
        char path[160], *ans = NULL;
        int fd, r;
        pid_t pid;

        snprintf(path, sizeof(path), "%s/chatty.sock", fx->dir);
        fd = listen_unix(path);

        pid = fake_answer(fd, HAP_ANSWER_MAX);
        r = hap_command(path, "show stat", &ans);
        reap(pid);
        assert_int_equal(r, 0);
        assert_int_equal(strlen(ans), HAP_ANSWER_MAX);
        free(ans);

        ans = NULL;
        pid = fake_answer(fd, HAP_ANSWER_MAX + 1);
        r = hap_command(path, "show stat", &ans);
        reap(pid);
        close(fd);
        unlink(path);
        assert_int_equal(r, -E2BIG);
        assert_null(ans);
}

/* Only haproxy's empty line is success: no answer, or any other text, is
 * -EPROTO with the text's first line in err. */
static void test_set_state_other_answers(void **state)
{
        struct fixture *fx = fixture(state);
        char path[160], err[16];
        int fd, r;
        pid_t pid;

        snprintf(path, sizeof(path), "%s/odd.sock", fx->dir);
        fd = listen_unix(path);
        pid = fake_answer(fd, 0);
        r = hap_set_state(path, "mwr", "a", HAP_READY, err, sizeof(err));
        reap(pid);
        assert_int_equal(r, -EPROTO);
        assert_string_equal(err, "");

        pid = fake_answer(fd, 40);
        r = hap_set_state(path, "mwr", "a", HAP_READY, err, sizeof(err));
        reap(pid);
        close(fd);
        unlink(path);
        assert_int_equal(r, -EPROTO);
        assert_string_equal(err, "xxxxxxxxxxxxxxx"); /* cut to errlen */
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_show_info),
                cmocka_unit_test(test_show_servers_initial_states),
                cmocka_unit_test(test_set_state_round_trips),
                cmocka_unit_test(test_drain_of_down_server_reads_drain),
                cmocka_unit_test(test_unknown_server_and_backend),
                cmocka_unit_test(test_user_level_socket_is_eacces),
                cmocka_unit_test(test_unknown_command),
                cmocka_unit_test(test_invalid_arguments),
                cmocka_unit_test(test_missing_socket_is_enoent),
                cmocka_unit_test(test_dead_socket_is_econnrefused),
                cmocka_unit_test(test_silent_peer_times_out),
                cmocka_unit_test(test_answer_cap),
                cmocka_unit_test(test_set_state_other_answers),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
