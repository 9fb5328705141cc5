/* Unit tests of camsim's command line (tests/camsim/opts.c): defaults, each
 * personality flag, and clear refusals that name the option. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "camsim/opts.h"

/* Parses a NULL-terminated argument list; the error text goes to err. */
static int parse(struct opts *o, char *err, size_t errlen, ...)
{
        char *argv[32] = { "camsim" };
        int argc = 1;
        va_list ap;
        FILE *f = fmemopen(err, errlen, "w");
        int r;

        va_start(ap, errlen);
        while (argc < 31 && (argv[argc] = va_arg(ap, char *)))
                argc++;
        va_end(ap);
        argv[argc] = NULL;
        memset(err, 0, errlen);
        r = camsim_opts_parse(argc, argv, o, f);
        fclose(f);
        return r;
}

static void test_defaults(void **state)
{
        struct opts o;
        char err[512];

        assert_int_equal(parse(&o, err, sizeof(err), (char *)NULL), 0);
        assert_int_equal(o.cameras, 1);
        assert_int_equal(o.codec, CAMSIM_H264);
        assert_int_equal(o.bframes, 0);
        assert_int_equal(o.audio, CAMSIM_AUDIO_NONE);
        assert_int_equal(o.gop, 50);
        assert_false(o.no_rtcp);
        assert_false(o.play_range_offset);
        assert_false(o.udp_only);
        assert_true(o.res_change_at_s < 0);
        assert_true(o.rtp_ts_start < 0);
        assert_true(o.loss_pct == 0);
        assert_int_equal(o.auth, CAMSIM_AUTH_NONE);
        assert_int_equal(o.max_sessions, 0);
        assert_int_equal(o.policy, CAMSIM_POLICY_NONE);
        assert_null(o.auth_secret);
}

static void test_personalities(void **state)
{
        struct opts o;
        char err[512];

        assert_int_equal(parse(&o, err, sizeof(err), "--codec", "h265", "--bframes", "2", "--audio", "aac",
                               "--audio-frames-per-packet", "3", "--first-sr-delay", "4.6", "--play-range-offset",
                               "--transport", "udp-only", "--rtp-ts-start", "4294000000", "--loss", "2.5", (char *)NULL),
                         0);
        assert_int_equal(o.codec, CAMSIM_H265);
        assert_int_equal(o.bframes, 2);
        assert_int_equal(o.audio, CAMSIM_AUDIO_AAC);
        assert_int_equal(o.audio_rate, 16000);
        assert_int_equal(o.audio_fpp, 3);
        assert_true(o.first_sr_delay_s > 4.59 && o.first_sr_delay_s < 4.61);
        assert_true(o.play_range_offset && o.udp_only);
        assert_true(o.rtp_ts_start == 4294000000LL);
        assert_true(o.loss_pct > 2.49 && o.loss_pct < 2.51);
        assert_int_equal(parse(&o, err, sizeof(err), "--audio", "pcmu", "--no-rtcp", "--metadata", (char *)NULL), 0);
        assert_int_equal(o.audio, CAMSIM_AUDIO_PCMU);
        assert_int_equal(o.audio_rate, 8000);
        assert_true(o.no_rtcp && o.metadata);
}

/* The issue spells it "--resolution-change-at SECONDS WxH": two words, or one. */
static void test_resolution_change_forms(void **state)
{
        struct opts o;
        char err[512];

        assert_int_equal(parse(&o, err, sizeof(err), "--resolution-change-at", "20", "1280x720", "--cameras", "2",
                               (char *)NULL),
                         0);
        assert_true(o.res_change_at_s > 19.9 && o.res_change_at_s < 20.1);
        assert_int_equal(o.res_width, 1280);
        assert_int_equal(o.res_height, 720);
        assert_int_equal(o.cameras, 2);
        assert_int_equal(parse(&o, err, sizeof(err), "--resolution-change-at", "5 320x240", (char *)NULL), 0);
        assert_int_equal(o.res_width, 320);
        assert_int_equal(parse(&o, err, sizeof(err), "--resolution-change-at", "5:640x480", (char *)NULL), 0);
        assert_int_equal(o.res_height, 480);
}

/* The credentials split at the first ':' only: passwords hold ':' and '@'. */
static void test_auth_forms(void **state)
{
        struct opts o;
        char err[512];

        assert_int_equal(parse(&o, err, sizeof(err), "--auth", "basic", "admin:secret", "--cameras", "2", (char *)NULL), 0);
        assert_int_equal(o.auth, CAMSIM_AUTH_BASIC);
        assert_string_equal(o.auth_user, "admin");
        assert_string_equal(o.auth_pass, "secret");
        assert_int_equal(o.cameras, 2);
        assert_int_equal(parse(&o, err, sizeof(err), "--auth", "digest", "admin:p@ss@word", (char *)NULL), 0);
        assert_int_equal(o.auth, CAMSIM_AUTH_DIGEST);
        assert_string_equal(o.auth_user, "admin");
        assert_string_equal(o.auth_pass, "p@ss@word");
        assert_int_equal(parse(&o, err, sizeof(err), "--auth", "basic admin:a:b", (char *)NULL), 0);
        assert_string_equal(o.auth_user, "admin");
        assert_string_equal(o.auth_pass, "a:b");
        assert_string_equal(o.auth_secret, "a:b"); /* where camsim blanks it from ps: inside argv */
        assert_int_equal(parse(&o, err, sizeof(err), "--auth", "digest:root:x y", (char *)NULL), 0);
        assert_int_equal(o.auth, CAMSIM_AUTH_DIGEST);
        assert_string_equal(o.auth_user, "root");
        assert_string_equal(o.auth_pass, "x y");
        assert_int_equal(parse(&o, err, sizeof(err), "--auth", "basic", "viewer:", (char *)NULL), 0);
        assert_string_equal(o.auth_pass, ""); /* an empty password is a password */
}

static void test_session_limit(void **state)
{
        struct opts o;
        char err[512];

        assert_int_equal(parse(&o, err, sizeof(err), "--max-sessions", "2", (char *)NULL), 0);
        assert_int_equal(o.max_sessions, 2);
        assert_int_equal(o.policy, CAMSIM_POLICY_REFUSE); /* the default with a limit */
        assert_int_equal(parse(&o, err, sizeof(err), "--policy", "kick", "--max-sessions", "1", (char *)NULL), 0);
        assert_int_equal(o.max_sessions, 1);
        assert_int_equal(o.policy, CAMSIM_POLICY_KICK);
        assert_int_equal(parse(&o, err, sizeof(err), "--max-sessions", "1", "--policy", "refuse", (char *)NULL), 0);
        assert_int_equal(o.policy, CAMSIM_POLICY_REFUSE);
}

static void test_refusals_name_the_option(void **state)
{
        static const struct {
                const char *a, *b, *needle;
        } bad[] = {
                { "--codec", "vp8", "--codec" },
                { "--audio", "opus", "--audio" },
                { "--bframes", "9", "--bframes" },
                { "--audio-frames-per-packet", "0", "--audio-frames-per-packet" },
                { "--first-sr-delay", "-1", "--first-sr-delay" },
                { "--transport", "tcp-only", "--transport" },
                { "--rtp-ts-start", "4294967296", "--rtp-ts-start" },
                { "--loss", "nan", "--loss" },
                { "--resolution-change-at", "3", "--resolution-change-at" },
                { "--resolution-change-at", "3 641x480", "WxH" },
                { "--cameras", "0", "--cameras" },
                { "--width", "641", "even" },
                { "--auth", "md5 x:y", "--auth" },
                { "--auth", "basic nopassword", "USER:PASS" },
                { "--auth", "basic :secret", "user name" },
                { "--auth", "admin:secret", "--auth" },
                { "--auth", "basic", "--auth" },
                { "--max-sessions", "0", "--max-sessions" },
                { "--max-sessions", "-1", "--max-sessions" },
                { "--max-sessions", "1001", "--max-sessions" },
                { "--max-sessions", "two", "--max-sessions" },
                { "--policy", "drop", "--policy" },
                { "--policy", "kick", "--max-sessions" },
                { "--policy", "refuse", "--max-sessions" },
        };
        struct opts o;
        char err[512];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                assert_int_equal(parse(&o, err, sizeof(err), bad[i].a, bad[i].b, (char *)NULL), -EINVAL);
                if (!strstr(err, bad[i].needle))
                        fail_msg("%s %s: error '%s' does not name %s", bad[i].a, bad[i].b, err, bad[i].needle);
        }
        assert_int_equal(parse(&o, err, sizeof(err), "--audio", "pcma", "--audio-rate", "16000", (char *)NULL), -EINVAL);
        assert_non_null(strstr(err, "8000"));
        assert_int_equal(parse(&o, err, sizeof(err), "stray", (char *)NULL), -EINVAL);
        /* the two-word forms */
        assert_int_equal(parse(&o, err, sizeof(err), "--auth", "md5", "x:y", (char *)NULL), -EINVAL);
        assert_non_null(strstr(err, "--auth"));
        assert_non_null(strstr(err, "md5"));
        assert_int_equal(parse(&o, err, sizeof(err), "--auth", "basic", "nopassword", (char *)NULL), -EINVAL);
        assert_non_null(strstr(err, "USER:PASS"));
        assert_null(strstr(err, "nopassword")); /* credentials are never echoed */
        assert_int_equal(parse(&o, err, sizeof(err), "--auth", "basic", "admin:bad\npass", (char *)NULL), -EINVAL);
        assert_non_null(strstr(err, "control character"));
        {
                char big[CAMSIM_CREDENTIAL_MAX + 16] = "admin:";

                memset(big + 6, 'p', CAMSIM_CREDENTIAL_MAX + 1);
                big[6 + CAMSIM_CREDENTIAL_MAX + 1] = '\0';
                assert_int_equal(parse(&o, err, sizeof(err), "--auth", "digest", big, (char *)NULL), -EINVAL);
                assert_non_null(strstr(err, "password is longer"));
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_personalities),
                cmocka_unit_test(test_resolution_change_forms),
                cmocka_unit_test(test_auth_forms),
                cmocka_unit_test(test_session_limit),
                cmocka_unit_test(test_refusals_name_the_option),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
