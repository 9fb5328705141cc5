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
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_personalities),
                cmocka_unit_test(test_resolution_change_forms),
                cmocka_unit_test(test_refusals_name_the_option),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
