/* Unit tests of supervisor/health.c against a libmicrohttpd server on a free
 * loopback port: results and errors of one check, the one-check-at-a-time
 * rule, cancel and free without a callback, a check started from the
 * callback, and the blocking variant.  Run under ASan, a leaked sd-event
 * source shows as a leaked loop. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <microhttpd.h>

#include "common/time_util.h"
#include "supervisor/health.h"

#define HEALTH_JSON "{\"status\":\"healthy\",\"recording\":true}"
#define BIG_BYTES (1024 * 1024)
#define SLOW_US (2 * USEC_PER_SEC)
#define WAIT_MAX_US (3 * USEC_PER_SEC) /* a check that has not ended by then never will */
#define URL_MAX 96

/* ---- the fake worker ------------------------------------------------------- */

struct server {
        struct MHD_Daemon *d;
        uint16_t port;
        atomic_bool stopping; /* cuts /slow's sleep short at teardown */
};

static char big_body[BIG_BYTES];

static enum MHD_Result reply(struct MHD_Connection *c, unsigned int status, const char *body)
{
        struct MHD_Response *resp =
                MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
        enum MHD_Result ret;

        MHD_add_response_header(resp, "Content-Type", "application/json");
        ret = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        return ret;
}

/* A body of unknown length (chunked): only the write callback's cap stops it. */
static ssize_t read_chunked(void *cls, uint64_t pos, char *buf, size_t max)
{
        size_t n;

        if (pos >= BIG_BYTES)
                return MHD_CONTENT_READER_END_OF_STREAM;
        n = BIG_BYTES - pos < max ? BIG_BYTES - pos : max;
        memset(buf, 'x', n);
        return (ssize_t)n;
}

static enum MHD_Result serve(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                             const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
        struct server *srv = cls;
        struct MHD_Response *resp;
        enum MHD_Result ret;

        if (!strcmp(url, "/health"))
                return reply(c, 200, HEALTH_JSON);
        if (!strcmp(url, "/notrec"))
                return reply(c, 200, "{\"recording\":false}");
        if (!strcmp(url, "/down"))
                return reply(c, 503, "{\"status\":\"unhealthy\",\"recording\":true}");
        if (!strcmp(url, "/slow")) {
                for (int64_t t = now_mono_us() + SLOW_US; now_mono_us() < t && !atomic_load(&srv->stopping);)
                        usleep(10 * 1000);
                return reply(c, 200, HEALTH_JSON);
        }
        if (!strcmp(url, "/big")) {
                resp = MHD_create_response_from_buffer(sizeof(big_body), big_body, MHD_RESPMEM_PERSISTENT);
        } else if (!strcmp(url, "/chunked")) {
                resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, read_chunked, NULL, NULL);
        } else if (!strcmp(url, "/redirect")) {
                resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
                MHD_add_response_header(resp, "Location", "/health");
                ret = MHD_queue_response(c, 302, resp);
                MHD_destroy_response(resp);
                return ret;
        } else {
                return reply(c, 404, "{}");
        }
        ret = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return ret;
}

static int server_start(void **state)
{
        static struct server srv;
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        const union MHD_DaemonInfo *info;

        memset(big_body, '{', sizeof(big_body)); /* not JSON either */
        /* a thread per connection: /slow must not hold up the next test */
        srv.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
                                 serve, &srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a, MHD_OPTION_END);
        if (!srv.d)
                return -1;
        info = MHD_get_daemon_info(srv.d, MHD_DAEMON_INFO_BIND_PORT);
        if (!info || !info->port)
                return -1;
        srv.port = info->port;
        *state = &srv;
        return 0;
}

static int server_stop(void **state)
{
        struct server *srv = *state;

        atomic_store(&srv->stopping, true);
        MHD_stop_daemon(srv->d);
        return 0;
}

/* A loopback port nobody listens on: bound, never listening, then closed. */
static uint16_t closed_port(void)
{
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
        close(fd);
        return ntohs(a.sin_port);
}

/* ---- per test: a loop, a checker, and what the callback saw ----------------- */

struct outcome {
        int calls;
        struct health_result r;
};

struct env {
        struct server *srv;
        sd_event *e;
        struct health_checker *h;
        struct outcome o;
};

static int env_new(void **state)
{
        struct env *t = calloc(1, sizeof(*t));

        if (!t)
                return -1;
        t->srv = *state;
        if (sd_event_new(&t->e) < 0 || health_checker_new(t->e, &t->h) < 0)
                return -1;
        *state = t;
        return 0;
}

static int env_free(void **state)
{
        struct env *t = *state;

        health_checker_free(t->h);
        sd_event_unref(t->e);
        free(t);
        return 0;
}

static void url_for(const struct env *t, const char *path, char *out)
{
        snprintf(out, URL_MAX, "http://127.0.0.1:%u%s", (unsigned int)t->srv->port, path);
}

static void on_result(struct health_checker *h, const struct health_result *r, void *userdata)
{
        struct outcome *o = userdata;

        o->calls++;
        o->r = *r;
}

static void run_for(sd_event *e, int64_t us)
{
        for (int64_t end = now_mono_us() + us; now_mono_us() < end;)
                assert_true(sd_event_run(e, 10 * 1000) >= 0);
}

/* Runs the loop until the callbacks were called `want` times, then checks
 * that the finished check left nothing behind in the loop. */
static void wait_calls(sd_event *e, const int *calls, int want)
{
        for (int64_t end = now_mono_us() + WAIT_MAX_US; *calls < want && now_mono_us() < end;)
                assert_true(sd_event_run(e, 50 * 1000) >= 0);
        assert_int_equal(*calls, want);
        assert_int_equal(sd_event_run(e, 0), 0);
}

static void check(struct env *t, const char *path, uint64_t timeout_us)
{
        char url[URL_MAX];

        url_for(t, path, url);
        assert_int_equal(health_check_start(t->h, url, timeout_us, on_result, &t->o), 0);
        wait_calls(t->e, &t->o.calls, 1);
}

/* ---- one check ------------------------------------------------------------- */

static void test_recording(void **state)
{
        struct env *t = *state;

        check(t, "/health", USEC_PER_SEC);
        assert_int_equal(t->o.r.error, 0);
        assert_int_equal(t->o.r.status, 200);
        assert_true(t->o.r.all_recording);
        assert_string_equal(t->o.r.body, HEALTH_JSON);
        assert_true(t->o.r.elapsed_us > 0 && t->o.r.elapsed_us < USEC_PER_SEC);
}

static void test_not_recording(void **state)
{
        struct env *t = *state;

        check(t, "/notrec", USEC_PER_SEC);
        assert_int_equal(t->o.r.error, 0);
        assert_int_equal(t->o.r.status, 200);
        assert_false(t->o.r.all_recording);
}

static void test_down_is_a_status_not_an_error(void **state)
{
        struct env *t = *state;

        check(t, "/down", USEC_PER_SEC);
        assert_int_equal(t->o.r.error, 0);
        assert_int_equal(t->o.r.status, 503);
        assert_non_null(strstr(t->o.r.body, "unhealthy"));
}

static void test_redirect_not_followed(void **state)
{
        struct env *t = *state;

        check(t, "/redirect", USEC_PER_SEC);
        assert_int_equal(t->o.r.error, 0);
        assert_int_equal(t->o.r.status, 302);
        assert_false(t->o.r.all_recording);
}

static void test_slow_times_out(void **state)
{
        struct env *t = *state;
        int64_t start_us = now_mono_us();

        check(t, "/slow", 300 * USEC_PER_MSEC);
        assert_int_equal(t->o.r.error, -ETIMEDOUT);
        assert_int_equal(t->o.r.status, 0);
        assert_false(t->o.r.all_recording);
        assert_true(t->o.r.elapsed_us >= 290 * USEC_PER_MSEC);
        assert_true(now_mono_us() - start_us < USEC_PER_SEC);
}

static void test_big_body_with_length(void **state)
{
        struct env *t = *state;

        check(t, "/big", USEC_PER_SEC);
        assert_int_equal(t->o.r.error, -E2BIG);
        assert_false(t->o.r.all_recording);
}

static void test_big_body_chunked(void **state)
{
        struct env *t = *state;

        check(t, "/chunked", USEC_PER_SEC);
        assert_int_equal(t->o.r.error, -E2BIG);
        assert_int_equal(t->o.r.status, 200);
        assert_int_equal(strlen(t->o.r.body), sizeof(t->o.r.body) - 1); /* truncated, terminated */
}

static void test_refused(void **state)
{
        struct env *t = *state;
        char url[URL_MAX];

        snprintf(url, sizeof(url), "http://127.0.0.1:%u/health", (unsigned int)closed_port());
        assert_int_equal(health_check_start(t->h, url, USEC_PER_SEC, on_result, &t->o), 0);
        wait_calls(t->e, &t->o.calls, 1);
        assert_int_equal(t->o.r.error, -ECONNREFUSED);
        assert_int_equal(t->o.r.status, 0);
        assert_string_equal(t->o.r.body, "");
}

static void test_bad_arguments(void **state)
{
        struct env *t = *state;
        char url[URL_MAX];

        url_for(t, "/health", url);
        assert_int_equal(health_check_start(t->h, url, 0, on_result, &t->o), -EINVAL);
        assert_int_equal(health_check_start(t->h, url, USEC_PER_SEC, NULL, &t->o), -EINVAL);
        assert_int_equal(health_check_start(t->h, NULL, USEC_PER_SEC, on_result, &t->o), -EINVAL);
        /* a refused start leaves the checker idle */
        check(t, "/health", USEC_PER_SEC);
        assert_int_equal(t->o.r.status, 200);
}

static void test_not_http(void **state)
{
        struct env *t = *state;
        char url[URL_MAX];

        snprintf(url, sizeof(url), "file:///etc/hostname");
        assert_int_equal(health_check_start(t->h, url, USEC_PER_SEC, on_result, &t->o), 0);
        wait_calls(t->e, &t->o.calls, 1);
        assert_int_equal(t->o.r.error, -EIO);
}

/* ---- one check at a time, cancel, free ----------------------------------------- */

static void test_busy_then_cancel(void **state)
{
        struct env *t = *state;
        char slow[URL_MAX], health[URL_MAX];

        url_for(t, "/slow", slow);
        url_for(t, "/health", health);
        assert_int_equal(health_check_start(t->h, slow, 5 * USEC_PER_SEC, on_result, &t->o), 0);
        run_for(t->e, 100 * USEC_PER_MSEC); /* connected, request sent */
        assert_int_equal(health_check_start(t->h, health, USEC_PER_SEC, on_result, &t->o), -EBUSY);
        health_checker_cancel(t->h);
        health_checker_cancel(t->h); /* idle: nothing to do */
        run_for(t->e, 100 * USEC_PER_MSEC);
        assert_int_equal(t->o.calls, 0);
        assert_int_equal(sd_event_run(t->e, 0), 0);

        check(t, "/health", USEC_PER_SEC);
        assert_int_equal(t->o.r.status, 200);
}

static void test_cancel_then_free(void **state)
{
        struct env *t = *state;
        char url[URL_MAX];

        url_for(t, "/slow", url);
        assert_int_equal(health_check_start(t->h, url, 5 * USEC_PER_SEC, on_result, &t->o), 0);
        run_for(t->e, 50 * USEC_PER_MSEC);
        health_checker_cancel(t->h);
        health_checker_free(t->h);
        t->h = NULL;
        run_for(t->e, 100 * USEC_PER_MSEC);
        assert_int_equal(t->o.calls, 0);
        assert_int_equal(sd_event_run(t->e, 0), 0);
        health_checker_free(NULL);
}

static void test_free_while_running(void **state)
{
        struct env *t = *state;
        char url[URL_MAX];

        url_for(t, "/slow", url);
        /* before the first iteration: only curl's 0 ms timer is armed */
        assert_int_equal(health_check_start(t->h, url, 5 * USEC_PER_SEC, on_result, &t->o), 0);
        health_checker_free(t->h);
        t->h = NULL;
        run_for(t->e, 100 * USEC_PER_MSEC);
        assert_int_equal(t->o.calls, 0);
}

/* ---- the callback starts the next check or frees the checker ----------------- */

struct chain {
        struct env *t;
        int calls;
        int restart; /* health_check_start() from inside the first callback */
        struct health_result r[2];
};

static void on_chained(struct health_checker *h, const struct health_result *r, void *userdata)
{
        struct chain *c = userdata;
        char url[URL_MAX];

        c->r[c->calls++] = *r;
        if (c->calls == 1) {
                url_for(c->t, "/notrec", url);
                c->restart = health_check_start(h, url, USEC_PER_SEC, on_chained, c);
        }
}

static void test_second_check_from_callback(void **state)
{
        struct env *t = *state;
        struct chain c = { .t = t };
        char url[URL_MAX];

        url_for(t, "/health", url);
        assert_int_equal(health_check_start(t->h, url, USEC_PER_SEC, on_chained, &c), 0);
        wait_calls(t->e, &c.calls, 2);
        assert_int_equal(c.restart, 0);
        assert_true(c.r[0].all_recording);
        assert_int_equal(c.r[1].status, 200);
        assert_false(c.r[1].all_recording);
}

static void on_result_free(struct health_checker *h, const struct health_result *r, void *userdata)
{
        struct env *t = userdata;

        t->o.calls++;
        t->o.r = *r;
        health_checker_free(h);
        t->h = NULL;
}

static void test_free_from_callback(void **state)
{
        struct env *t = *state;
        char url[URL_MAX];

        url_for(t, "/down", url);
        assert_int_equal(health_check_start(t->h, url, USEC_PER_SEC, on_result_free, t), 0);
        wait_calls(t->e, &t->o.calls, 1);
        assert_null(t->h);
        assert_int_equal(t->o.r.status, 503);
}

/* ---- blocking ------------------------------------------------------------------ */

static void test_blocking(void **state)
{
        struct env *t = *state;
        struct health_result r;
        char url[URL_MAX];

        url_for(t, "/health", url);
        assert_int_equal(health_check_blocking(url, USEC_PER_SEC, &r), 0);
        assert_int_equal(r.status, 200);
        assert_true(r.all_recording);
        assert_string_equal(r.body, HEALTH_JSON);

        snprintf(url, sizeof(url), "http://127.0.0.1:%u/health", (unsigned int)closed_port());
        assert_int_equal(health_check_blocking(url, USEC_PER_SEC, &r), -ECONNREFUSED);
        assert_int_equal(r.error, -ECONNREFUSED);
        assert_int_equal(r.status, 0);

        url_for(t, "/big", url);
        assert_int_equal(health_check_blocking(url, USEC_PER_SEC, &r), -E2BIG);
        assert_int_equal(health_check_blocking(url, 0, &r), -EINVAL);
        assert_int_equal(r.error, -EINVAL);
}

#define T(f) cmocka_unit_test_setup_teardown(f, env_new, env_free)

int main(void)
{
        const struct CMUnitTest tests[] = {
                T(test_recording),
                T(test_not_recording),
                T(test_down_is_a_status_not_an_error),
                T(test_redirect_not_followed),
                T(test_slow_times_out),
                T(test_big_body_with_length),
                T(test_big_body_chunked),
                T(test_refused),
                T(test_bad_arguments),
                T(test_not_http),
                T(test_busy_then_cancel),
                T(test_cancel_then_free),
                T(test_free_while_running),
                T(test_second_check_from_callback),
                T(test_free_from_callback),
                T(test_blocking),
        };
        int failed = cmocka_run_group_tests(tests, server_start, server_stop);

        curl_global_cleanup(); /* health.c's curl_global_init(), for the leak checker */
        return failed;
}
