/* test_rtsp_error: libavformat's failure line is read back into the
 * camera's status code and reason, and each answer gets its kind. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <libavutil/error.h>

#include "worker/rtsp_error.h"

static void test_parses_the_failure_line(void **state)
{
        struct rtsp_answer a;

        assert_true(rtsp_answer_parse("method SETUP failed: 453 Not Enough Bandwidth\n", &a));
        assert_string_equal(a.method, "SETUP");
        assert_int_equal(a.status, 453);
        assert_string_equal(a.reason, "Not Enough Bandwidth");
        assert_true(rtsp_answer_parse("method DESCRIBE failed: 401Unauthorized", &a));
        assert_int_equal(a.status, 401);
        assert_string_equal(a.reason, "Unauthorized");
        assert_true(rtsp_answer_parse("method PLAY failed: 500\n", &a));
        assert_string_equal(a.reason, "");
        assert_false(rtsp_answer_parse("RTP: missed 3 packets\n", &a));
        assert_false(rtsp_answer_parse("method SETUP failed: abc\n", &a));
        assert_false(rtsp_answer_parse("method  failed: 453 x\n", &a));
        assert_false(rtsp_answer_parse("method AVERYLONGMETHODNAME failed: 453 x\n", &a));
}

static const char *kind(int status, const char *reason, int averr)
{
        struct rtsp_answer a = { .method = "SETUP", .status = status };
        char text[160];

        snprintf(a.reason, sizeof(a.reason), "%s", reason);
        return rtsp_error_describe(&a, averr, "libav text", false, text, sizeof(text));
}

static void test_kinds(void **state)
{
        char text[160];

        assert_string_equal(kind(401, "Unauthorized", AVERROR_HTTP_UNAUTHORIZED), RTSP_ERR_AUTH);
        assert_string_equal(kind(453, "Not Enough Bandwidth", AVERROR_HTTP_OTHER_4XX), RTSP_ERR_SESSION_LIMIT);
        assert_string_equal(kind(403, "online user amount has reached the threshold", AVERROR_HTTP_FORBIDDEN),
                            RTSP_ERR_SESSION_LIMIT);
        assert_string_equal(kind(403, "Forbidden", AVERROR_HTTP_FORBIDDEN), RTSP_ERR_FORBIDDEN);
        assert_string_equal(kind(404, "Stream Not Found", AVERROR_HTTP_NOT_FOUND), RTSP_ERR_NOT_FOUND);
        assert_string_equal(kind(461, "Unsupported transport", AVERROR(EPROTONOSUPPORT)), RTSP_ERR_TRANSPORT);
        assert_string_equal(kind(503, "Service Unavailable", AVERROR_HTTP_SERVER_ERROR), RTSP_ERR_RTSP);
        /* the text names the method, the code and the reason, not libavformat's mapping */
        {
                struct rtsp_answer a = { .method = "SETUP", .status = 461, .reason = "Unsupported transport" };

                rtsp_error_describe(&a, AVERROR(EPROTONOSUPPORT), "Protocol not supported", false, text,
                                    sizeof(text));
                assert_string_equal(text, "SETUP answered 461 Unsupported transport");
        }
        /* no RTSP answer: what libavformat says */
        assert_string_equal(rtsp_error_describe(NULL, AVERROR(ECONNREFUSED), "Connection refused", false, text,
                                                sizeof(text)),
                            RTSP_ERR_UNREACHABLE);
        assert_string_equal(text, "Connection refused");
        assert_string_equal(rtsp_error_describe(NULL, AVERROR_EOF, "End of file", true, text, sizeof(text)),
                            RTSP_ERR_ENDED);
        assert_string_equal(rtsp_error_describe(NULL, AVERROR_INVALIDDATA, "Invalid data", false, text,
                                                sizeof(text)),
                            RTSP_ERR_STREAM);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parses_the_failure_line),
                cmocka_unit_test(test_kinds),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
