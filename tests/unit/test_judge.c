/* Unit tests of tests/framecheck/judge.c: each defect the frame judge knows
 * (gap, duplicate, reorder, unreadable, wrong camera, wrong SEI) is reported
 * exactly, a clean run is clean, the JSON report parses back with the agreed
 * keys, and a million frames are judged quickly. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "framecheck/judge.h"

static struct judge *new_judge(const struct judge_config *cfg)
{
        static const struct judge_config none = { 0 };
        struct judge *j = NULL;

        assert_int_equal(judge_new(&j, cfg ? cfg : &none), 0);
        assert_non_null(j);
        return j;
}

static void add_number(struct judge *j, int file, uint32_t n)
{
        struct judge_frame f = { .file = file, .pts_s = n / 25.0, .readable = true, .number = n };

        assert_int_equal(judge_add(j, &f), 0);
}

/* Numbers first..last (inclusive) in order. */
static void add_run(struct judge *j, int file, uint32_t first, uint32_t last)
{
        for (uint64_t n = first; n <= last; n++)
                add_number(j, file, (uint32_t)n);
}

static void add_unreadable(struct judge *j, int file)
{
        struct judge_frame f = { .file = file, .pts_s = NAN };

        assert_int_equal(judge_add(j, &f), 0);
}

static const struct judge_report *finish(struct judge *j)
{
        const struct judge_report *r = NULL;

        assert_int_equal(judge_finish(j, &r), 0);
        assert_non_null(r);
        return r;
}

/* The text report in a new string. */
static char *text_of(const struct judge *j)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        assert_non_null(f);
        assert_int_equal(judge_print_text(j, f), 0);
        assert_int_equal(fclose(f), 0);
        return buf;
}

/* The printed JSON report, parsed back. */
static cJSON *json_of(const struct judge *j)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        cJSON *o;

        assert_non_null(f);
        assert_int_equal(judge_print_json(j, f), 0);
        assert_int_equal(fclose(f), 0);
        o = cJSON_Parse(buf);
        free(buf);
        assert_non_null(o);
        return o;
}

static double num(const cJSON *o, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        assert_non_null(v);
        assert_true(cJSON_IsNumber(v));
        return v->valuedouble;
}

static void test_clean_sequence(void **state)
{
        struct judge *j = new_judge(NULL);
        const struct judge_report *r;
        char *text;

        assert_int_equal(judge_add_file(j, "a.mp4"), 0);
        add_run(j, 0, 1000, 1249);
        r = finish(j);
        assert_true(r->clean);
        assert_int_equal(r->frames, 250);
        assert_int_equal(r->readable, 250);
        assert_int_equal(r->unreadable, 0);
        assert_true(r->has_numbers);
        assert_int_equal(r->first, 1000);
        assert_int_equal(r->last, 1249);
        assert_int_equal(r->count, 250);
        assert_int_equal(r->missing, 0);
        assert_int_equal(r->n_missing_ranges, 0);
        assert_int_equal(r->duplicated, 0);
        assert_int_equal(r->out_of_order, 0);
        text = text_of(j);
        assert_non_null(strstr(text, "missing 0\n"));
        assert_non_null(strstr(text, "verdict clean\n"));
        free(text);
        judge_free(j);
}

static void test_gap_reports_exact_range(void **state)
{
        struct judge *j = new_judge(NULL);
        const struct judge_report *r;
        char *text;

        assert_int_equal(judge_add_file(j, "a.mp4"), 0);
        add_run(j, 0, 1000, 1199);
        add_run(j, 0, 1225, 1300);
        add_run(j, 0, 1302, 1310);
        r = finish(j);
        assert_false(r->clean);
        assert_int_equal(r->missing, 26);
        assert_int_equal(r->n_missing_ranges, 2);
        assert_int_equal(r->missing_ranges_total, 2);
        assert_int_equal(r->missing_ranges[0].first, 1200);
        assert_int_equal(r->missing_ranges[0].last, 1224);
        assert_int_equal(r->missing_ranges[1].first, 1301);
        assert_int_equal(r->missing_ranges[1].last, 1301);
        assert_int_equal(r->out_of_order, 0);
        assert_int_equal(r->duplicated, 0);
        text = text_of(j);
        assert_non_null(strstr(text, "missing 1200-1224 (25 frames)\n"));
        assert_non_null(strstr(text, "missing 1301-1301 (1 frame)\n"));
        assert_non_null(strstr(text, "verdict DEFECTS\n"));
        free(text);
        judge_free(j);
}

static void test_duplicates(void **state)
{
        struct judge *j = new_judge(NULL);
        const struct judge_report *r;

        assert_int_equal(judge_add_file(j, "a.mp4"), 0);
        add_run(j, 0, 0, 9);
        add_number(j, 0, 9);  /* repeated last frame */
        add_number(j, 0, 9);
        add_number(j, 0, 3);  /* an old frame again: duplicate, not out of order */
        add_run(j, 0, 10, 12);
        r = finish(j);
        assert_false(r->clean);
        assert_int_equal(r->frames, 16);
        assert_int_equal(r->count, 13);
        assert_int_equal(r->duplicated, 3);
        assert_int_equal(r->n_duplicate_numbers, 3);
        assert_int_equal(r->duplicate_numbers[0], 9);
        assert_int_equal(r->duplicate_numbers[1], 9);
        assert_int_equal(r->duplicate_numbers[2], 3);
        assert_int_equal(r->out_of_order, 0);
        assert_int_equal(r->missing, 0);
        judge_free(j);
}

static void test_out_of_order(void **state)
{
        struct judge *j = new_judge(NULL);
        const struct judge_report *r;

        assert_int_equal(judge_add_file(j, "a.mp4"), 0);
        add_run(j, 0, 0, 4);
        add_number(j, 0, 6);
        add_number(j, 0, 5);  /* late, never seen: out of order */
        add_run(j, 0, 7, 9);
        add_number(j, 0, 5);  /* again: duplicate */
        r = finish(j);
        assert_false(r->clean);
        assert_int_equal(r->out_of_order, 1);
        assert_int_equal(r->duplicated, 1);
        assert_int_equal(r->missing, 0);
        assert_int_equal(r->count, 10);
        judge_free(j);
}

static void test_expected_range_adds_missing_ends(void **state)
{
        struct judge_config cfg = { .has_expect_first = true, .expect_first = 95,
                                    .has_expect_last = true, .expect_last = 206 };
        struct judge *j = new_judge(&cfg);
        const struct judge_report *r;

        assert_int_equal(judge_add_file(j, "a.mp4"), 0);
        add_run(j, 0, 100, 199);
        r = finish(j);
        assert_false(r->clean);
        assert_int_equal(r->missing, 12);
        assert_int_equal(r->n_missing_ranges, 2);
        assert_int_equal(r->missing_ranges[0].first, 95);
        assert_int_equal(r->missing_ranges[0].last, 99);
        assert_int_equal(r->missing_ranges[1].first, 200);
        assert_int_equal(r->missing_ranges[1].last, 206);
        assert_int_equal(r->first, 100);
        assert_int_equal(r->last, 199);
        judge_free(j);
}

/* Numbers outside the expected range are not missing; an empty run with an
 * expected range misses all of it. */
static void test_expected_range_edges(void **state)
{
        struct judge_config cfg = { .has_expect_first = true, .expect_first = 10,
                                    .has_expect_last = true, .expect_last = 19 };
        struct judge *j = new_judge(&cfg);
        const struct judge_report *r;

        assert_int_equal(judge_add_file(j, "a.mp4"), 0);
        add_run(j, 0, 5, 15);
        r = finish(j);
        assert_int_equal(r->missing, 4);
        assert_int_equal(r->missing_ranges[0].first, 16);
        assert_int_equal(r->missing_ranges[0].last, 19);
        judge_free(j);

        cfg = (struct judge_config){ .has_expect_first = true, .expect_first = 0,
                                     .has_expect_last = true, .expect_last = UINT32_MAX };
        j = new_judge(&cfg);
        assert_int_equal(judge_add_file(j, "empty.mp4"), 0);
        r = finish(j);
        assert_false(r->clean);
        assert_false(r->has_numbers);
        assert_int_equal(r->frames, 0);
        assert_true(r->missing == UINT64_C(1) << 32);
        assert_int_equal(r->n_missing_ranges, 1);
        assert_int_equal(r->missing_ranges[0].last, UINT32_MAX);
        judge_free(j);
}

static void test_extreme_numbers(void **state)
{
        struct judge *j = new_judge(NULL);
        const struct judge_report *r;

        assert_int_equal(judge_add_file(j, "a.mp4"), 0);
        add_run(j, 0, UINT32_MAX - 3, UINT32_MAX);
        add_number(j, 0, UINT32_MAX);
        r = finish(j);
        assert_int_equal(r->count, 4);
        assert_int_equal(r->duplicated, 1);
        assert_int_equal(r->missing, 0);
        assert_int_equal(r->last, UINT32_MAX);
        judge_free(j);

        j = new_judge(NULL);
        assert_int_equal(judge_add_file(j, "a.mp4"), 0);
        add_number(j, 0, 0);
        add_number(j, 0, UINT32_MAX);
        r = finish(j);
        assert_true(r->missing == (UINT64_C(1) << 32) - 2);
        assert_int_equal(r->missing_ranges[0].first, 1);
        assert_int_equal(r->missing_ranges[0].last, UINT32_MAX - 1);
        judge_free(j);
}

static void test_unreadable_frames(void **state)
{
        struct judge *j = new_judge(NULL);
        const struct judge_report *r;

        assert_int_equal(judge_add_file(j, "a.mp4"), 0);
        add_run(j, 0, 0, 9);
        add_unreadable(j, 0);
        add_unreadable(j, 0);
        add_run(j, 0, 12, 20);
        r = finish(j);
        assert_false(r->clean);
        assert_int_equal(r->frames, 21);
        assert_int_equal(r->readable, 19);
        assert_int_equal(r->unreadable, 2);
        assert_int_equal(r->missing, 2); /* the unreadable pictures' numbers are unknown */
        assert_int_equal(r->files[0].frames, 21);
        assert_int_equal(r->files[0].readable, 19);
        judge_free(j);
}

static void test_camera_and_sei_mismatch(void **state)
{
        struct judge_config cfg = { .camera = "cam1" };
        struct judge *j = new_judge(&cfg);
        const struct judge_report *r;
        struct judge_frame f = { .file = 0, .readable = true, .has_sei = true };

        assert_int_equal(judge_add_file(j, "a.mp4"), 0);
        for (uint32_t n = 0; n < 10; n++) {
                f.number = f.sei_number = n;
                f.sei_camera = n == 4 || n == 7 ? "cam2" : "cam1";
                if (n == 5)
                        f.sei_number = 55;
                assert_int_equal(judge_add(j, &f), 0);
        }
        f = (struct judge_frame){ .file = 0, .readable = true, .number = 10 }; /* no SEI: fine */
        assert_int_equal(judge_add(j, &f), 0);
        f = (struct judge_frame){ .file = 0, .readable = true, .number = 11, .sei_malformed = true };
        assert_int_equal(judge_add(j, &f), 0);
        f = (struct judge_frame){ .file = 0, .number = 0, .has_sei = true, .sei_number = 12,
                                  .sei_camera = "cam1" }; /* unreadable: SEI number not compared */
        assert_int_equal(judge_add(j, &f), 0);
        r = finish(j);
        assert_false(r->clean);
        assert_int_equal(r->camera_mismatch, 2);
        assert_int_equal(r->sei_mismatch, 2);
        assert_int_equal(r->sei_frames, 11);
        assert_int_equal(r->missing, 0);
        judge_free(j);

        j = new_judge(NULL); /* no expected camera: any id is fine */
        assert_int_equal(judge_add_file(j, "a.mp4"), 0);
        f = (struct judge_frame){ .file = 0, .readable = true, .number = 1, .has_sei = true,
                                  .sei_number = 1, .sei_camera = "whatever" };
        assert_int_equal(judge_add(j, &f), 0);
        r = finish(j);
        assert_true(r->clean);
        judge_free(j);
}

static void test_files_summary(void **state)
{
        struct judge *j = new_judge(NULL);
        const struct judge_report *r;
        char *text;

        assert_int_equal(judge_add_file(j, "seg0.mp4"), 0);
        assert_int_equal(judge_add_file(j, "seg1.mp4"), 1);
        assert_int_equal(judge_add_file(j, "seg2.mp4"), 2);
        add_run(j, 0, 0, 49);
        add_run(j, 1, 50, 99);
        add_unreadable(j, 2);
        r = finish(j);
        assert_int_equal(r->n_files, 3);
        assert_string_equal(r->files[0].path, "seg0.mp4");
        assert_int_equal(r->files[0].frames, 50);
        assert_int_equal(r->files[0].first, 0);
        assert_int_equal(r->files[0].last, 49);
        assert_int_equal(r->files[1].frames, 50);
        assert_int_equal(r->files[1].first, 50);
        assert_int_equal(r->files[1].last, 99);
        assert_int_equal(r->files[2].frames, 1);
        assert_false(r->files[2].has_numbers);
        assert_int_equal(r->missing, 0);
        text = text_of(j);
        assert_non_null(strstr(text, "file 1 seg1.mp4: 50 frames, 50 readable, first 50, last 99\n"));
        free(text);
        judge_free(j);
}

static void test_same_file_twice_is_all_duplicates(void **state)
{
        struct judge *j = new_judge(NULL);
        const struct judge_report *r;
        char *text;

        assert_int_equal(judge_add_file(j, "a.mp4"), 0);
        assert_int_equal(judge_add_file(j, "a.mp4"), 1);
        add_run(j, 0, 100, 174);
        add_run(j, 1, 100, 174);
        r = finish(j);
        assert_int_equal(r->duplicated, 75);
        assert_int_equal(r->out_of_order, 0);
        assert_int_equal(r->missing, 0);
        text = text_of(j);
        assert_non_null(strstr(text, "duplicate 100-174 (75 frames)\n"));
        free(text);
        judge_free(j);
}

static void test_json_report(void **state)
{
        struct judge_config cfg = { .keep_frames = true };
        struct judge *j = new_judge(&cfg);
        cJSON *o, *a, *e;

        assert_int_equal(judge_add_file(j, "cam1/seg \"0\".mp4"), 0);
        add_run(j, 0, 10, 19);
        add_run(j, 0, 25, 29);
        add_number(j, 0, 12);
        add_unreadable(j, 0);
        finish(j);
        o = json_of(j);

        a = cJSON_GetObjectItemCaseSensitive(o, "files");
        assert_true(cJSON_IsArray(a));
        assert_int_equal(cJSON_GetArraySize(a), 1);
        e = cJSON_GetArrayItem(a, 0);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "path")),
                            "cam1/seg \"0\".mp4");
        assert_true(num(e, "frames") == 17);
        assert_true(num(e, "first") == 10 && num(e, "last") == 29);

        assert_true(num(o, "frames") == 17 && num(o, "readable") == 16 && num(o, "unreadable") == 1);
        assert_true(num(o, "first") == 10 && num(o, "last") == 29 && num(o, "count") == 15);
        assert_true(num(o, "missing") == 5 && num(o, "duplicated") == 1 && num(o, "out_of_order") == 0);
        assert_true(num(o, "camera_mismatch") == 0 && num(o, "sei_mismatch") == 0);
        assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "clean")));

        a = cJSON_GetObjectItemCaseSensitive(o, "missing_ranges");
        assert_int_equal(cJSON_GetArraySize(a), 1);
        e = cJSON_GetArrayItem(a, 0);
        assert_int_equal(cJSON_GetArraySize(e), 2);
        assert_true(cJSON_GetArrayItem(e, 0)->valuedouble == 20);
        assert_true(cJSON_GetArrayItem(e, 1)->valuedouble == 24);
        a = cJSON_GetObjectItemCaseSensitive(o, "duplicate_numbers");
        assert_int_equal(cJSON_GetArraySize(a), 1);
        assert_true(cJSON_GetArrayItem(a, 0)->valuedouble == 12);

        a = cJSON_GetObjectItemCaseSensitive(o, "frame_list");
        assert_int_equal(cJSON_GetArraySize(a), 17);
        e = cJSON_GetArrayItem(a, 0);
        assert_true(num(e, "n") == 10 && num(e, "file") == 0 && fabs(num(e, "pts") - 0.4) < 1e-6);
        e = cJSON_GetArrayItem(a, 16);
        assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(e, "n")));
        assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(e, "pts")));
        cJSON_Delete(o);
        judge_free(j);
}

static void test_json_clean_and_empty(void **state)
{
        struct judge *j = new_judge(NULL);
        cJSON *o;

        assert_int_equal(judge_add_file(j, "a.mp4"), 0);
        add_run(j, 0, 0, 24);
        finish(j);
        o = json_of(j);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "clean")));
        assert_null(cJSON_GetObjectItemCaseSensitive(o, "frame_list")); /* only with keep_frames */
        cJSON_Delete(o);
        judge_free(j);

        j = new_judge(NULL); /* no frames at all: not clean, first/last null */
        assert_int_equal(judge_add_file(j, "a.mp4"), 0);
        finish(j);
        o = json_of(j);
        assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "clean")));
        assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "first")));
        assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "last")));
        assert_true(num(o, "missing") == 0);
        cJSON_Delete(o);
        judge_free(j);
}

static void test_caps_keep_totals_exact(void **state)
{
        struct judge *j = new_judge(NULL);
        const struct judge_report *r;
        const uint32_t ranges = JUDGE_MAX_MISSING_RANGES + 500;

        assert_int_equal(judge_add_file(j, "a.mp4"), 0);
        for (uint32_t i = 0; i <= ranges; i++)
                add_number(j, 0, i * 3); /* two missing after each */
        for (uint32_t i = 0; i < JUDGE_MAX_DUPLICATE_NUMBERS + 7; i++)
                add_number(j, 0, 0);
        r = finish(j);
        assert_int_equal(r->missing, 2 * ranges);
        assert_int_equal(r->missing_ranges_total, ranges);
        assert_int_equal(r->n_missing_ranges, JUDGE_MAX_MISSING_RANGES);
        assert_int_equal(r->duplicated, JUDGE_MAX_DUPLICATE_NUMBERS + 7);
        assert_int_equal(r->n_duplicate_numbers, JUDGE_MAX_DUPLICATE_NUMBERS);
        judge_free(j);
}

static void test_errors(void **state)
{
        char camera[JUDGE_CAMERA_ID_MAX + 1];
        struct judge_config cfg = { .camera = camera };
        struct judge_frame f = { .file = 1, .readable = true };
        struct judge *j = NULL;

        memset(camera, 'c', JUDGE_CAMERA_ID_MAX);
        camera[JUDGE_CAMERA_ID_MAX] = '\0';
        assert_int_equal(judge_new(&j, &cfg), -EINVAL); /* no room for the NUL */
        assert_null(j);
        j = new_judge(NULL);
        assert_int_equal(judge_add(j, &f), -EINVAL); /* no such file */
        assert_int_equal(judge_print_text(j, stdout), -EINVAL); /* not finished */
        assert_int_equal(judge_print_json(j, stdout), -EINVAL);
        assert_int_equal(judge_add_file(j, "a.mp4"), 0);
        add_number(j, 0, 1);
        finish(j);
        add_number(j, 0, 3); /* more frames after a report: finish again */
        assert_int_equal(judge_print_text(j, stdout), -EINVAL);
        assert_int_equal(finish(j)->missing, 1);
        judge_free(j);
        judge_free(NULL);
}

/* A day at 25 fps is 2.16 M frames: a million must be judged in well under a second. */
static void test_million_frames(void **state)
{
        struct judge *j = new_judge(NULL);
        const struct judge_report *r;
        const uint32_t base = 3000000000u;

        assert_int_equal(judge_add_file(j, "a.mp4"), 0);
        for (uint32_t i = 0; i < 1000000; i++)
                if (i < 500000 || i >= 500010)
                        add_number(j, 0, base + i);
        add_number(j, 0, base + 500005); /* late */
        r = finish(j);
        assert_int_equal(r->frames, 999991);
        assert_int_equal(r->count, 999991);
        assert_int_equal(r->missing, 9);
        assert_int_equal(r->n_missing_ranges, 2);
        assert_int_equal(r->missing_ranges[0].first, base + 500000);
        assert_int_equal(r->missing_ranges[0].last, base + 500004);
        assert_int_equal(r->missing_ranges[1].first, base + 500006);
        assert_int_equal(r->missing_ranges[1].last, base + 500009);
        assert_int_equal(r->out_of_order, 1);
        assert_int_equal(r->first, base);
        assert_int_equal(r->last, base + 999999);
        judge_free(j);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_clean_sequence),
                cmocka_unit_test(test_gap_reports_exact_range),
                cmocka_unit_test(test_duplicates),
                cmocka_unit_test(test_out_of_order),
                cmocka_unit_test(test_expected_range_adds_missing_ends),
                cmocka_unit_test(test_expected_range_edges),
                cmocka_unit_test(test_extreme_numbers),
                cmocka_unit_test(test_unreadable_frames),
                cmocka_unit_test(test_camera_and_sei_mismatch),
                cmocka_unit_test(test_files_summary),
                cmocka_unit_test(test_same_file_twice_is_all_duplicates),
                cmocka_unit_test(test_json_report),
                cmocka_unit_test(test_json_clean_and_empty),
                cmocka_unit_test(test_caps_keep_totals_exact),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_million_frames),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
