/* Unit tests of continuity/loader.c's tl_load on a real SQLite file under
 * /tmp: segments come with their frames at absolute times, corrupt ones are
 * left out, and (issue 12) a corrupt row in a full page of
 * DB_QUERY_LIMIT_MAX rows no longer ends the paging early, which silently
 * cut a long export after the first page.  One template row is written
 * through db/; the many rows of the long case are cloned from it with SQL in
 * one transaction, as 100000 commits would take minutes. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "continuity/loader.h"
#include "db/db.h"
#include "db/frame_index.h"

#define SEC_US INT64_C(1000000)
#define T0_US (INT64_C(1795000000) * SEC_US) /* somewhere in 2026 */
#define SEG_US SEC_US                        /* each test segment: 1 s, back to back */
#define FRAME_US (SEC_US / 25)
#define SEG_FRAMES 3
#define CAMERA "cam1"
#define CORRUPT_AT 10 /* position of the corrupt row: well inside the first page */

struct fixture {
        char dir[64];
        char path[96];
        struct db *db;
};

static int setup(void **state)
{
        struct fixture *fx = calloc(1, sizeof(*fx));

        if (!fx)
                return -1;
        snprintf(fx->dir, sizeof(fx->dir), "/tmp/mwr-test-loader-XXXXXX");
        if (!mkdtemp(fx->dir)) {
                free(fx);
                return -1;
        }
        snprintf(fx->path, sizeof(fx->path), "%s/index.db", fx->dir);
        if (db_open(fx->path, &fx->db) < 0) {
                rmdir(fx->dir);
                free(fx);
                return -1;
        }
        *state = fx;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *fx = *state;
        static const char *const suffixes[] = { "", "-wal", "-shm", "-journal" };
        char p[128];

        db_close(fx->db);
        for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
                snprintf(p, sizeof(p), "%s%s", fx->path, suffixes[i]);
                unlink(p);
        }
        rmdir(fx->dir);
        free(fx);
        return 0;
}

/* Segment number num of CAMERA, complete, SEG_FRAMES frames (a key first)
 * FRAME_US apart from its start.  Its row id. */
static int64_t seg_add(struct db *db, int64_t num)
{
        struct fi_encoder enc;
        const uint8_t *blob;
        size_t len;
        char path[64];
        int64_t id = -1;
        struct db_segment seg = {
                .camera_id = CAMERA, .instance_id = "a-1", .path = path, .segment_num = num,
                .start_us = T0_US + num * SEG_US, .end_us = T0_US + (num + 1) * SEG_US,
                .status = "complete", .time_source = "rtcp", .pid = 4242,
                .frames = SEG_FRAMES, .keyframes = 1, .created_us = T0_US, .updated_us = T0_US,
        };

        snprintf(path, sizeof(path), CAMERA "/seg-%06" PRId64 ".mp4", num);
        assert_int_equal(db_segment_begin(db, &seg, &id), 0);
        seg.id = id;
        fi_encoder_init(&enc);
        for (uint32_t k = 0; k < SEG_FRAMES; k++) {
                struct fi_frame f = { .offset_us = k * FRAME_US, .size = 1000 + k, .key = k == 0, .hash = k };

                assert_int_equal(fi_encoder_add(&enc, &f), 0);
        }
        assert_int_equal(fi_encoder_data(&enc, &blob, &len), 0);
        assert_int_equal(db_segment_update(db, &seg, blob, len), 0);
        fi_encoder_free(&enc);
        return id;
}

static void raw_exec(sqlite3 *s, const char *sql)
{
        char *err = NULL;

        if (sqlite3_exec(s, sql, NULL, NULL, &err) != SQLITE_OK)
                fail_msg("%s: %s", sql, err ? err : "?");
}

/* Segments 1 .. n-1 of CAMERA as copies of segment 0 (row template), each
 * SEG_US later, with the same frame index. */
static void seg_clone(const char *db_path, int64_t template_id, int64_t n)
{
        char sql[2048];
        sqlite3 *s = NULL;

        assert_int_equal(sqlite3_open(db_path, &s), SQLITE_OK);
        snprintf(sql, sizeof(sql),
                 "BEGIN;"
                 "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < %" PRId64 ") "
                 "INSERT INTO video_segments(camera_id, instance_id, path, segment_num, start_us, end_us,"
                 "  frames, bytes, keyframes, fragments, status, overlap_status, time_source, clock_offset_us,"
                 "  pid, created_us, updated_us) "
                 "SELECT camera_id, instance_id, printf('" CAMERA "/seg-%%06d.mp4', i), i,"
                 "  start_us + i * %" PRId64 ", end_us + i * %" PRId64 ", frames, bytes, keyframes, fragments,"
                 "  status, overlap_status, time_source, clock_offset_us, pid, created_us, updated_us "
                 "FROM video_segments, k WHERE id = %" PRId64 ";"
                 "INSERT INTO segment_frames(segment_id, blob) SELECT v.id, f.blob "
                 "FROM video_segments v, segment_frames f WHERE f.segment_id = %" PRId64 " AND v.id != %" PRId64 ";"
                 "COMMIT;",
                 n - 1, SEG_US, SEG_US, template_id, template_id, template_id);
        raw_exec(s, sql);
        sqlite3_close(s);
}

/* The id of segment number num, now marked corrupt. */
static int64_t seg_corrupt(struct db *db, int64_t num)
{
        struct db_segment seg;
        char path[64];

        snprintf(path, sizeof(path), CAMERA "/seg-%06" PRId64 ".mp4", num);
        assert_int_equal(db_segment_by_path(db, path, &seg), 0);
        assert_int_equal(db_segment_set_status(db, seg.id, "corrupt"), 0);
        return seg.id;
}

/* in holds segments 0 .. n-1 but skip, in order, each with its frames. */
static void assert_loaded(const struct tl_input *in, int64_t n, int64_t skip)
{
        size_t k = 0;

        if (in->n != (size_t)(n - 1))
                fail_msg("loaded %zu segments of %" PRId64 ", want all but the corrupt one", in->n, n);
        assert_int_equal(in->bad_index, 0);
        for (int64_t num = 0; num < n; num++) {
                const struct tl_segment *s = &in->segs[k];

                if (num == skip)
                        continue;
                if (s->start_us != T0_US + num * SEG_US)
                        fail_msg("segment %zu starts at %" PRId64 ", want segment %" PRId64, k, s->start_us, num);
                assert_int_equal(s->n, SEG_FRAMES);
                assert_int_equal(s->frames[SEG_FRAMES - 1].t_us, s->start_us + (SEG_FRAMES - 1) * FRAME_US);
                assert_true(s->frames[0].key);
                assert_string_equal(in->status[k], "complete");
                k++;
        }
}

/* A few rows: the corrupt one is left out, the others come with frames. */
static void test_corrupt_row_left_out(void **state)
{
        struct fixture *fx = *state;
        struct tl_input in;
        const int64_t n = 20;

        for (int64_t num = 0; num < n; num++)
                seg_add(fx->db, num);
        seg_corrupt(fx->db, CORRUPT_AT);
        assert_int_equal(tl_load(fx->db, CAMERA, T0_US, T0_US + n * SEG_US, &in), 0);
        assert_loaded(&in, n, CORRUPT_AT);
        tl_input_free(&in);
}

/* More rows than one page holds, one corrupt in the first page: every other
 * row is loaded, the second page's too. */
static void test_corrupt_row_does_not_end_paging(void **state)
{
        struct fixture *fx = *state;
        struct tl_input in;
        const int64_t n = DB_QUERY_LIMIT_MAX + 2;

        seg_clone(fx->path, seg_add(fx->db, 0), n);
        seg_corrupt(fx->db, CORRUPT_AT);
        assert_int_equal(tl_load(fx->db, CAMERA, T0_US, T0_US + n * SEG_US, &in), 0);
        assert_loaded(&in, n, CORRUPT_AT);
        tl_input_free(&in);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_corrupt_row_left_out, setup, teardown),
                cmocka_unit_test_setup_teardown(test_corrupt_row_does_not_end_paging, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
