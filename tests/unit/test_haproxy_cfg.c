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
#include "proxy-config/users.h"

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
                 "\"frontend_port\":%u,\"stats_port\":%u,\"plain_http\":true,\"socket_user\":\"root\"},"
                 "\"auth\":{\"required\":false}}",
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
        *rc = haproxy_cfg_write(c, NULL, active, f, NULL);
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
        assert_contains(text, "\n        stats socket /run/mwr/h.sock mode 600 level admin user root expose-fd listeners\n");
        assert_contains(text, "\n        server-state-file /run/mwr/haproxy.state\n");
        assert_contains(text, "\n        load-server-state-from-file global\n");
        assert_contains(text, "\nfrontend mwr_front\n");
        assert_contains(text, "\n        bind 127.0.0.1:9000\n");
        assert_contains(text, "\n        http-request del-header X-Mwr-User\n");
        assert_contains(text, "\n        default_backend cams\n");
        assert_lacks(text, "userlist");
        assert_contains(text, "\nbackend cams\n");
        assert_contains(text, "\n        option httpchk GET /health\n");
        assert_contains(text, "\n        http-check expect status 200\n");
        assert_contains(text, "\n        retry-on conn-failure empty-response 503\n");
        assert_contains(text, "\n        option redispatch\n");
        assert_contains(text, "\nlisten stats\n");
        assert_contains(text, "\n        bind 127.0.0.1:9404\n");
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
        assert_lacks(t1, "_backstop");
        free(t0);
        free(t1);
        /* hot standby: both workers again as backups, haproxy's own failover */
        c->supervisor.hot_standby = true;
        t1 = render(c, 1, &rc);
        assert_int_equal(rc, 0);
        assert_contains(t1, "\n        server blue 127.0.0.1:9080 check disabled\n");
        assert_contains(t1, "\n        server blue_backstop 127.0.0.1:9080 check backup\n");
        assert_contains(t1, "\n        server green_backstop 127.0.0.1:9081 check backup\n");
        free(t1);
        config_free(c);
}

/* With every default the frontend would be plain HTTP without a user:
 * refused, with a reason naming the keys that decide it. */
static void test_contract_defaults(void **state)
{
        struct mwr_config *c = parse("{\"storage_dir\":\"/r\",\"db_path\":\"/d.db\",\"cameras\":[]}");
        struct users u = { 0 };
        const char *why = NULL;
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        assert_int_equal(haproxy_cfg_write(c, &u, 0, f, &why), -EINVAL);
        assert_non_null(why);
        assert_non_null(strstr(why, "haproxy.tls_cert"));
        assert_non_null(strstr(why, "haproxy.plain_http"));
        fclose(f);
        assert_string_equal(text, "");
        free(text);
        config_free(c);

        c = parse("{\"storage_dir\":\"/r\",\"db_path\":\"/d.db\",\"cameras\":[],\"haproxy\":{\"plain_http\":true}}");
        f = open_memstream(&text, &len);
        assert_int_equal(haproxy_cfg_write(c, &u, 0, f, &why), 0);
        fclose(f);
        assert_contains(text, "stats socket /run/mwr/haproxy.sock mode 600 level admin user mwr expose-fd");
        assert_contains(text, "\n        server a 127.0.0.1:8080 check\n");
        assert_contains(text, "\n        server b 127.0.0.1:8081 check disabled\n");
        assert_contains(text, "bind 127.0.0.1:8000\n");
        assert_contains(text, "bind 127.0.0.1:8404\n");
        /* auth is on by default: with no user nobody passes, and nobody is admin */
        assert_contains(text, "\nuserlist mwr_users\n");
        assert_contains(text, "\n        http-request auth realm mwr unless { var(txn.user) -m found }\n");
        assert_contains(text, "\n        acl mwr_admin always_false\n");
        free(text);
        config_free(c);
}

static void test_ipv6_bind_is_bracketed(void **state)
{
        struct mwr_config *c = parse("{\"storage_dir\":\"/r\",\"db_path\":\"/d.db\",\"cameras\":[],"
                                     "\"worker\":{\"bind\":\"::1\"},\"haproxy\":{\"plain_http\":true},"
                                     "\"auth\":{\"required\":false}}");
        int rc;
        char *text = render(c, 0, &rc);

        assert_int_equal(rc, 0);
        assert_contains(text, "server a [::1]:8080 check\n");
        assert_contains(text, "bind [::1]:8000\n");
        free(text);
        config_free(c);
}

static void add_user(struct users *u, const char *name, enum user_role role, const char *const *cams, size_t n)
{
        char err[256];

        if (users_set(u, name, role, cams, n, "secret", err, sizeof(err)) < 0)
                fail_msg("users_set %s: %s", name, err);
}

/* alice: admin of every camera; bob: viewer of cam1 and cam-2; carol: viewer of none. */
static void three_users(struct users *u)
{
        static const char *const bob[] = { "cam1", "cam-2" };

        add_user(u, "alice", USER_ADMIN, NULL, 0);
        add_user(u, "bob", USER_VIEWER, bob, 2);
        add_user(u, "carol", USER_VIEWER, bob, 0);
}

static char *render_tls(const char *cert, const char *sock, const unsigned p[4], const struct users *u)
{
        char json[1024], *text = NULL;
        size_t len = 0;
        struct mwr_config *c;
        const char *why = NULL;
        FILE *f;

        snprintf(json, sizeof(json),
                 "{\"storage_dir\":\"/r\",\"db_path\":\"/d.db\",\"cameras\":[],"
                 "\"worker\":{\"ports\":[%u,%u]},\"haproxy\":{\"socket\":\"%s\",\"frontend_port\":%u,"
                 "\"stats_port\":%u,\"tls_cert\":\"%s\",\"bind\":\"0.0.0.0\",\"socket_user\":\"root\"}}",
                 p[2], p[3], sock, p[0], p[1], cert);
        c = parse(json);
        f = open_memstream(&text, &len);
        if (haproxy_cfg_write(c, u, 0, f, &why) < 0)
                fail_msg("haproxy_cfg_write: %s", why);
        fclose(f);
        config_free(c);
        return text;
}

static void test_tls_users_roles_and_cameras(void **state)
{
        static const unsigned p[4] = { 9000, 9404, 9080, 9081 };
        struct users u = { 0 };
        char *text;

        three_users(&u);
        text = render_tls("/etc/mwr/tls.pem", "/run/mwr/h.sock", p, &u);
        assert_contains(text, "\n        bind 0.0.0.0:9000 ssl crt /etc/mwr/tls.pem\n");
        assert_contains(text, "\n        bind 0.0.0.0:9404 ssl crt /etc/mwr/tls.pem\n");
        assert_contains(text, "server a 127.0.0.1:9080 check\n"); /* the workers stay on worker.bind */
        assert_contains(text, "\nuserlist mwr_users\n        user alice password $6$");
        assert_contains(text, "\n        user bob password $6$");
        assert_lacks(text, "secret");
        assert_contains(text, "\n        acl mwr_admin var(txn.user) -m str alice\n");
        assert_contains(text, "\n        acl mwr_all_cameras var(txn.user) -m str alice\n");
        assert_contains(text, "\n        http-request deny deny_status 403 if { path /metrics } !mwr_admin\n");
        assert_contains(text, "\n        http-request deny deny_status 403 if { var(txn.user) -m str bob } "
                              "{ var(txn.cam) -m found } !{ var(txn.cam) -m str cam1 cam-2 }\n");
        assert_contains(text, "\n        http-request deny deny_status 403 if { var(txn.user) -m str carol } "
                              "{ var(txn.cam) -m found }\n");
        assert_lacks(text, "-m str alice } { var(txn.cam)");
        assert_contains(text, "\n        http-request set-header X-Mwr-Cameras * if mwr_all_cameras\n");
        assert_contains(text, "\n        http-request set-header X-Mwr-Cameras cam1,cam-2 if { var(txn.user) -m str bob }\n");
        assert_contains(text, "\n        http-request set-header X-Mwr-Cameras , if { var(txn.user) -m str carol }\n");
        assert_contains(text, "\n        http-request deny deny_status 403 unless mwr_admin\n        stats enable\n");
        /* the client's own X-Mwr-* headers go before ours are set */
        assert_true(strstr(text, "del-header X-Mwr-User") < strstr(text, "set-header X-Mwr-User"));
        free(text);
        users_free(&u);
}

/* `haproxy -c` on the TLS + users config, with a certificate made here. */
static int haproxy_check(const char *path, const char *log);
static void free_ports(unsigned *ports, int n);
static void print_file(const char *path);

static void test_haproxy_accepts_tls_and_users(void **state)
{
        char dir[] = "/tmp/mwr-test-haproxy-tls-XXXXXX", cmd[512], pem[128], sock[128], cfg_path[128], log[128];
        struct users u = { 0 };
        unsigned p[4];
        char *text;
        FILE *f;
        int rc;

        if (access(HAPROXY_BIN, X_OK) != 0 || access("/usr/bin/openssl", X_OK) != 0)
                skip();
        assert_non_null(mkdtemp(dir));
        snprintf(pem, sizeof(pem), "%s/tls.pem", dir);
        snprintf(sock, sizeof(sock), "%s/haproxy.sock", dir);
        snprintf(cfg_path, sizeof(cfg_path), "%s/haproxy.cfg", dir);
        snprintf(log, sizeof(log), "%s/check.log", dir);
        snprintf(cmd, sizeof(cmd),
                 "/usr/bin/openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
                 "-keyout %s/k -out %s/c >/dev/null 2>&1 && cat %s/c %s/k > %s",
                 dir, dir, dir, dir, pem);
        assert_int_equal(system(cmd), 0);
        three_users(&u);
        free_ports(p, 4);
        text = render_tls(pem, sock, p, &u);
        assert_non_null(f = fopen(cfg_path, "w"));
        fputs(text, f);
        assert_int_equal(fclose(f), 0);
        rc = haproxy_check(cfg_path, log);
        if (rc != 0) {
                print_file(cfg_path);
                print_file(log);
        }
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        assert_int_equal(system(cmd), 0);
        free(text);
        users_free(&u);
        assert_int_equal(rc, 0);
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
                /* two equal server names: the config itself refuses them now (test_config) */
                "\"haproxy\":{\"frontend_port\":8404}",
                "\"worker\":{\"ports\":[8000,8081]}",
                "\"worker\":{\"bind\":\"127.0.0.1 ssl\",\"allow_remote\":true}",
                "\"haproxy\":{\"plain_http\":true,\"tls_cert\":\"/etc/mwr/tls.pem\"}",
                "\"haproxy\":{\"tls_cert\":\"/etc/mwr/my cert.pem\"}",
                "\"haproxy\":{\"plain_http\":true,\"socket_user\":\"mwr;x\"}",
        };
        char json[512];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct mwr_config *c;
                char *text;
                int rc;

                snprintf(json, sizeof(json), "{\"storage_dir\":\"/r\",\"db_path\":\"/d.db\",\"cameras\":[],%s}", bad[i]);
                c = parse(json);
                if (!c->haproxy.tls_cert) /* so each case fails for its own reason */
                        c->haproxy.plain_http = true;
                c->auth.required = false;
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
        assert_int_equal(haproxy_cfg_write(c, NULL, 0, f, NULL), -EIO);
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
                c->supervisor.hot_standby = active == 1; /* with the backstop servers too */
                f = fopen(cfg_path, "w");

                assert_non_null(f);
                assert_int_equal(haproxy_cfg_write(c, NULL, active, f, NULL), 0);
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
                cmocka_unit_test(test_tls_users_roles_and_cameras),
                cmocka_unit_test(test_haproxy_accepts_tls_and_users),
                cmocka_unit_test(test_state_path),
                cmocka_unit_test(test_refuses_what_haproxy_would_misread),
                cmocka_unit_test(test_write_error_is_eio),
                cmocka_unit_test(test_haproxy_accepts_it),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
