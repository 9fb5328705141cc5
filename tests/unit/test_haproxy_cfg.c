/* Unit tests of proxy-config/haproxy_cfg.c: the generated haproxy.cfg names
 * the socket, both servers with their ports and the inactive one disabled,
 * the stats page and the frontend; values haproxy would misread are refused;
 * and, when /usr/sbin/haproxy is installed, `haproxy -c` accepts the text. */
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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/config.h"
#include "proxy-config/haproxy_cfg.h"

#ifndef HAPROXY_BIN /* -DHAPROXY_BIN=\"/nonexistent\" checks the skip path */
#define HAPROXY_BIN "/usr/sbin/haproxy"
#endif
#define CHECK_TIMEOUT_MS 10000 /* `haproxy -c` takes ~20 ms; bounds a wedged one */

static struct mwr_config *parse(const char *json)
{
        char err[CONFIG_ERR_MAX];
        struct mwr_config *c = NULL;

        if (config_parse(json, strlen(json), "test.json", &c, err) < 0)
                fail_msg("config: %s", err);
        return c;
}

/* A config with every haproxy key set away from its default. */
static struct mwr_config *sample(const char *socket, unsigned fport, unsigned sport, unsigned p0, unsigned p1)
{
        char json[1024];

        snprintf(json, sizeof(json),
                 "{\"storage_dir\":\"/r\",\"db_path\":\"/d.db\",\"cameras\":[],"
                 "\"worker\":{\"bind\":\"127.0.0.1\",\"ports\":[%u,%u]},"
                 "\"haproxy\":{\"socket\":\"%s\",\"backend\":\"cams\",\"servers\":[\"blue\",\"green\"],"
                 "\"frontend_port\":%u,\"stats_port\":%u}}",
                 p0, p1, socket, fport, sport);
        return parse(json);
}

/* The config text, malloc'ed. */
static char *render(const struct mwr_config *c, int active, int *rc)
{
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        assert_non_null(f);
        *rc = haproxy_cfg_write(c, active, f);
        assert_int_equal(fclose(f), 0);
        return text;
}

static void assert_contains(const char *text, const char *needle)
{
        if (!strstr(text, needle))
                fail_msg("missing \"%s\" in:\n%s", needle, text);
}

static void assert_lacks(const char *text, const char *needle)
{
        if (strstr(text, needle))
                fail_msg("unexpected \"%s\" in:\n%s", needle, text);
}

static void test_contract_lines(void **state)
{
        struct mwr_config *c = sample("/run/mwr/h.sock", 9000, 9404, 9080, 9081);
        int rc;
        char *text = render(c, 0, &rc);

        assert_int_equal(rc, 0);
        assert_contains(text, "\n        stats socket /run/mwr/h.sock mode 660 level admin expose-fd listeners\n");
        assert_contains(text, "\n        server-state-file /run/mwr/haproxy.state\n");
        assert_contains(text, "\n        load-server-state-from-file global\n");
        assert_contains(text, "\nfrontend mwr_front\n        bind 127.0.0.1:9000\n        default_backend cams\n");
        assert_contains(text, "\nbackend cams\n");
        assert_contains(text, "\n        option httpchk GET /health\n");
        assert_contains(text, "\n        http-check expect status 200\n");
        assert_contains(text, "\n        retry-on conn-failure empty-response 503\n");
        assert_contains(text, "\n        option redispatch\n");
        assert_contains(text, "\nlisten stats\n        bind 127.0.0.1:9404\n");
        assert_contains(text, "\n        stats uri /stats\n");
        free(text);
        config_free(c);
}

static void test_inactive_server_is_disabled(void **state)
{
        struct mwr_config *c = sample("/run/mwr/h.sock", 9000, 9404, 9080, 9081);
        int rc;
        char *t0 = render(c, 0, &rc), *t1;

        assert_int_equal(rc, 0);
        assert_contains(t0, "\n        server blue 127.0.0.1:9080 check\n");
        assert_contains(t0, "\n        server green 127.0.0.1:9081 check disabled\n");
        assert_lacks(t0, "server blue 127.0.0.1:9080 check disabled");
        t1 = render(c, 1, &rc);
        assert_int_equal(rc, 0);
        assert_contains(t1, "\n        server blue 127.0.0.1:9080 check disabled\n");
        assert_contains(t1, "\n        server green 127.0.0.1:9081 check\n");
        assert_lacks(t1, "server green 127.0.0.1:9081 check disabled");
        free(t0);
        free(t1);
        config_free(c);
}

static void test_contract_defaults(void **state)
{
        struct mwr_config *c = parse("{\"storage_dir\":\"/r\",\"db_path\":\"/d.db\",\"cameras\":[]}");
        int rc;
        char *text = render(c, 0, &rc);

        assert_int_equal(rc, 0);
        assert_contains(text, "stats socket /run/mwr/haproxy.sock mode 660");
        assert_contains(text, "\n        server a 127.0.0.1:8080 check\n");
        assert_contains(text, "\n        server b 127.0.0.1:8081 check disabled\n");
        assert_contains(text, "bind 127.0.0.1:8000\n");
        assert_contains(text, "bind 127.0.0.1:8404\n");
        free(text);
        config_free(c);
}

static void test_ipv6_bind_is_bracketed(void **state)
{
        struct mwr_config *c = parse("{\"storage_dir\":\"/r\",\"db_path\":\"/d.db\",\"cameras\":[],"
                                     "\"worker\":{\"bind\":\"::1\"}}");
        int rc;
        char *text = render(c, 0, &rc);

        assert_int_equal(rc, 0);
        assert_contains(text, "server a [::1]:8080 check\n");
        assert_contains(text, "bind [::1]:8000\n");
        free(text);
        config_free(c);
}

static void test_state_path(void **state)
{
        static const struct {
                const char *socket, *want;
        } cases[] = {
                { "/run/mwr/haproxy.sock", "/run/mwr/haproxy.state" },
                { "/haproxy.sock", "/haproxy.state" },
                { "haproxy.sock", "./haproxy.state" },
                { "run/h.sock", "run/haproxy.state" },
        };
        char out[256];

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct mwr_config *c = sample(cases[i].socket, 9000, 9404, 9080, 9081);
                assert_int_equal(haproxy_cfg_state_path(c, out, sizeof(out)), 0);
                assert_string_equal(out, cases[i].want);
                config_free(c);
        }
        {
                struct mwr_config *c = sample("/run/mwr/haproxy.sock", 9000, 9404, 9080, 9081);
                /* exactly fits, then one byte short */
                assert_int_equal(haproxy_cfg_state_path(c, out, strlen("/run/mwr/haproxy.state") + 1), 0);
                assert_int_equal(haproxy_cfg_state_path(c, out, strlen("/run/mwr/haproxy.state")), -ENAMETOOLONG);
                config_free(c);
        }
}

/* Nothing is written when a value would change what haproxy parses. */
static void test_refuses_what_haproxy_would_misread(void **state)
{
        static const char *const bad[] = {
                "\"haproxy\":{\"socket\":\"/run/my dir/h.sock\"}",
                "\"haproxy\":{\"socket\":\"/run/mwr/h.sock#x\"}",
                "\"haproxy\":{\"backend\":\"my backend\"}",
                "\"haproxy\":{\"servers\":[\"a\",\"a\"]}",
                "\"haproxy\":{\"frontend_port\":8404}",
                "\"worker\":{\"ports\":[8000,8081]}",
                "\"worker\":{\"bind\":\"127.0.0.1 ssl\"}",
        };
        char json[512];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct mwr_config *c;
                char *text;
                int rc;

                snprintf(json, sizeof(json), "{\"storage_dir\":\"/r\",\"db_path\":\"/d.db\",\"cameras\":[],%s}", bad[i]);
                c = parse(json);
                text = render(c, 0, &rc);
                if (rc != -EINVAL || text[0])
                        fail_msg("case %zu: rc %d, text \"%.40s\"", i, rc, text);
                free(text);
                config_free(c);
        }
        {
                struct mwr_config *c = sample("/run/mwr/h.sock", 9000, 9404, 9080, 9081);
                int rc;
                char *text = render(c, 2, &rc);

                assert_int_equal(rc, -EINVAL);
                assert_string_equal(text, "");
                free(text);
                config_free(c);
        }
}

static void test_write_error_is_eio(void **state)
{
        struct mwr_config *c = sample("/run/mwr/h.sock", 9000, 9404, 9080, 9081);
        FILE *f = fopen("/dev/full", "w");

        if (!f)
                skip();
        assert_int_equal(haproxy_cfg_write(c, 0, f), -EIO);
        fclose(f);
        config_free(c);
}

/* ---- haproxy -c ------------------------------------------------------------ */

/* n distinct loopback ports nobody listens on now: all are bound at once
 * (port 0) before any is closed, so the kernel cannot hand one out twice. */
static void free_ports(unsigned *ports, int n)
{
        int fds[8];

        assert_true(n <= 8);
        for (int i = 0; i < n; i++) {
                struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                socklen_t len = sizeof(sa);

                fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                assert_true(fds[i] >= 0);
                assert_int_equal(bind(fds[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
                assert_int_equal(getsockname(fds[i], (struct sockaddr *)&sa, &len), 0);
                ports[i] = ntohs(sa.sin_port);
        }
        for (int i = 0; i < n; i++)
                close(fds[i]);
}

/* Runs `haproxy -c -f path` with its output in log; its exit status, or -1
 * if it did not finish within CHECK_TIMEOUT_MS (then it is killed). */
static int haproxy_check(const char *path, const char *log)
{
        pid_t pid = fork();
        int status;

        assert_true(pid >= 0);
        if (pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
                        _exit(127);
                execl(HAPROXY_BIN, "haproxy", "-c", "-f", path, (char *)NULL);
                _exit(127);
        }
        for (int waited_ms = 0; waited_ms < CHECK_TIMEOUT_MS; waited_ms += 10) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid)
                        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
                nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
        }
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return -1;
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

static void test_haproxy_accepts_it(void **state)
{
        char dir[] = "/tmp/mwr-test-haproxy-cfg-XXXXXX", sock[128], cfg_path[128], log[128];

        if (access(HAPROXY_BIN, X_OK) != 0) {
                fprintf(stderr, "    %s missing: haproxy -c not run\n", HAPROXY_BIN);
                skip();
        }
        assert_non_null(mkdtemp(dir));
        snprintf(sock, sizeof(sock), "%s/haproxy.sock", dir);
        snprintf(cfg_path, sizeof(cfg_path), "%s/haproxy.cfg", dir);
        snprintf(log, sizeof(log), "%s/check.log", dir);
        for (int active = 0; active < 2; active++) {
                unsigned p[4];
                struct mwr_config *c;
                FILE *f;
                int rc;

                free_ports(p, 4);
                c = sample(sock, p[0], p[1], p[2], p[3]);
                f = fopen(cfg_path, "w");

                assert_non_null(f);
                assert_int_equal(haproxy_cfg_write(c, active, f), 0);
                assert_int_equal(fclose(f), 0);
                config_free(c);
                rc = haproxy_check(cfg_path, log);
                if (rc != 0) {
                        fprintf(stderr, "    haproxy -c exit %d, config:\n", rc);
                        print_file(cfg_path);
                        fprintf(stderr, "    output:\n");
                        print_file(log);
                }
                unlink(cfg_path);
                unlink(log);
                if (rc != 0) {
                        rmdir(dir);
                        fail_msg("haproxy -c refused the config (active %d)", active);
                }
        }
        assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_contract_lines),
                cmocka_unit_test(test_inactive_server_is_disabled),
                cmocka_unit_test(test_contract_defaults),
                cmocka_unit_test(test_ipv6_bind_is_bracketed),
                cmocka_unit_test(test_state_path),
                cmocka_unit_test(test_refuses_what_haproxy_would_misread),
                cmocka_unit_test(test_write_error_is_eio),
                cmocka_unit_test(test_haproxy_accepts_it),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
