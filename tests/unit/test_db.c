/* Unit tests of db/db.c on real SQLite files under /tmp: migrations (fresh,
 * repeated, concurrent, newer schema), every query, two connections writing
 * at once, -EBUSY after the busy timeout, a corrupt file refused, and the
 * modes of the files (no world bits whatever the umask). */
#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "db/db.h"
#include "db/frame_index.h"

#define SEC_US INT64_C(1000000)
#define T0_US (INT64_C(1795000000) * SEC_US) /* somewhere in 2026 */

struct fixture {
        char dir[64];
        char path[96];
};

static int setup(void **state)
{
        struct fixture *fx = calloc(1, sizeof(*fx));

        if (!fx)
                return -1;
        snprintf(fx->dir, sizeof(fx->dir), "/tmp/mwr-test-db-XXXXXX");
        if (!mkdtemp(fx->dir)) {
                free(fx);
                return -1;
        }
        snprintf(fx->path, sizeof(fx->path), "%s/index.db", fx->dir);
        *state = fx;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *fx = *state;
        static const char *const suffixes[] = { "", "-wal", "-shm", "-journal" };
        char p[128];

        for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
                snprintf(p, sizeof(p), "%s%s", fx->path, suffixes[i]);
                unlink(p);
        }
        rmdir(fx->dir);
        free(fx);
        return 0;
}

/* ---- helpers: a raw connection to look behind the module's back ---- */

static sqlite3 *raw_open(const char *path)
{
        sqlite3 *s = NULL;

        assert_int_equal(sqlite3_open(path, &s), SQLITE_OK);
        return s;
}

static int64_t raw_int(sqlite3 *s, const char *sql)
{
        sqlite3_stmt *st;
        int64_t v;

        assert_int_equal(sqlite3_prepare_v2(s, sql, -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return v;
}

/* True when SQLite's plan for sql names index. */
static bool plan_uses(sqlite3 *s, const char *sql, const char *index)
{
        char q[512];
        sqlite3_stmt *st;
        bool found = false;

        snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", sql);
        assert_int_equal(sqlite3_prepare_v2(s, q, -1, &st, NULL), SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW)
                found |= sqlite3_column_text(st, 3) && strstr((const char *)sqlite3_column_text(st, 3), index);
        sqlite3_finalize(st);
        return found;
}

static void raw_exec(sqlite3 *s, const char *sql)
{
        char *err = NULL;
        int rc = sqlite3_exec(s, sql, NULL, NULL, &err);

        if (rc != SQLITE_OK)
                fail_msg("%s: %s", sql, err ? err : "?");
}

static int64_t path_int(const char *path, const char *sql)
{
        sqlite3 *s = raw_open(path);
        int64_t v = raw_int(s, sql);

        sqlite3_close(s);
        return v;
}

static struct db_segment seg_make(const char *camera, const char *path, int64_t start_us, int64_t end_us)
{
        return (struct db_segment){
                .camera_id = camera,
                .instance_id = "a-1",
                .path = path,
                .segment_num = 1,
                .start_us = start_us,
                .end_us = end_us,
                .time_source = "rtcp",
                .pid = 4242,
                .created_us = T0_US,
                .updated_us = T0_US,
        };
}

static int64_t seg_add(struct db *db, const char *camera, const char *path, int64_t start_us, int64_t end_us)
{
        struct db_segment seg = seg_make(camera, path, start_us, end_us);
        int64_t id = -1;

        assert_int_equal(db_segment_begin(db, &seg, &id), 0);
        assert_true(id > 0);
        return id;
}

/* Collects what a query returns. */
#define LIST_MAX 64
struct list {
        int n;
        int64_t ids[LIST_MAX];
        char paths[LIST_MAX][64];
        int stop_after; /* 0: never */
};

static int list_segment(const struct db_segment *seg, void *ctx)
{
        struct list *l = ctx;

        assert_true(l->n < LIST_MAX);
        l->ids[l->n] = seg->id;
        snprintf(l->paths[l->n], sizeof(l->paths[0]), "%s", seg->path);
        l->n++;
        return l->stop_after && l->n == l->stop_after ? 77 : 0;
}

static int list_gap(const struct db_gap *gap, void *ctx)
{
        struct list *l = ctx;

        assert_true(l->n < LIST_MAX);
        l->ids[l->n] = gap->id;
        snprintf(l->paths[l->n], sizeof(l->paths[0]), "%s:%s", gap->camera_id, gap->reason);
        l->n++;
        return 0;
}

/* ---- tests ---- */

static void test_migrates_empty_file(void **state)
{
        struct fixture *fx = *state;
        struct db *db = NULL;
        sqlite3 *s;

        assert_int_equal(db_open(fx->path, &db), 0);
        assert_non_null(db);
        assert_string_equal(db_errmsg(db), "");
        assert_int_equal(db_check(db), 0);
        s = raw_open(fx->path);
        assert_int_equal(raw_int(s, "PRAGMA user_version"), DB_SCHEMA_VERSION);
        assert_int_equal(raw_int(s, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                                    "('cameras', 'video_segments', 'segment_frames', 'gaps')"),
                         4);
        assert_int_equal(raw_int(s, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND sql NOT NULL"), 7);
        /* regression: the disk guard's oldest-first query sorted the whole table each round */
        assert_true(plan_uses(s, "SELECT id FROM video_segments WHERE status != 'recording' ORDER BY start_us, id "
                                 "LIMIT 64", "video_segments_start"));
        assert_int_equal(raw_int(s, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);
        sqlite3_close(s);
        db_close(db);
}

static void test_reopen_is_idempotent(void **state)
{
        struct fixture *fx = *state;
        struct db *db;

        for (int i = 0; i < 3; i++) {
                assert_int_equal(db_open(fx->path, &db), 0);
                seg_add(db, "cam1", i == 0 ? "/r/0.mp4" : i == 1 ? "/r/1.mp4" : "/r/2.mp4", T0_US + i, T0_US + i);
                db_close(db);
        }
        assert_int_equal(path_int(fx->path, "PRAGMA user_version"), DB_SCHEMA_VERSION);
        assert_int_equal(path_int(fx->path, "SELECT count(*) FROM video_segments"), 3);
}

/* A newer worker added a column, a table and bumped user_version: this binary
 * still opens the file and writes to it (both run during a deploy). */
static void test_newer_schema_opens(void **state)
{
        struct fixture *fx = *state;
        struct db *db;
        struct db_segment seg;
        sqlite3 *s;
        int64_t id;

        assert_int_equal(db_open(fx->path, &db), 0);
        db_close(db);
        s = raw_open(fx->path);
        raw_exec(s, "ALTER TABLE video_segments ADD COLUMN codec TEXT NOT NULL DEFAULT 'h264';"
                    "CREATE TABLE future_things(x INTEGER); PRAGMA user_version = 9");
        sqlite3_close(s);

        assert_int_equal(db_open(fx->path, &db), 0);
        id = seg_add(db, "cam1", "/r/new.mp4", T0_US, T0_US);
        seg = seg_make("cam1", "/r/new.mp4", T0_US, T0_US + 10 * SEC_US);
        seg.id = id;
        seg.status = "complete";
        assert_int_equal(db_segment_update(db, &seg, "x", 1), 0);
        db_close(db);
        assert_int_equal(path_int(fx->path, "PRAGMA user_version"), 9);
        assert_int_equal(path_int(fx->path, "SELECT count(*) FROM video_segments WHERE codec = 'h264'"), 1);
}

/* A schema that lost a column (someone broke the expand-only rule) is refused. */
static void test_shrunk_schema_refused(void **state)
{
        struct fixture *fx = *state;
        struct db *db = (struct db *)fx;
        sqlite3 *s = raw_open(fx->path);

        raw_exec(s, "CREATE TABLE cameras(id TEXT PRIMARY KEY, url TEXT, enabled INTEGER, updated_us INTEGER);"
                    "CREATE TABLE video_segments(id INTEGER PRIMARY KEY, camera_id TEXT, path TEXT);"
                    "CREATE TABLE segment_frames(segment_id INTEGER PRIMARY KEY, blob BLOB);"
                    "CREATE TABLE gaps(id INTEGER PRIMARY KEY, camera_id TEXT, instance_id TEXT, start_us INTEGER,"
                    " end_us INTEGER, reason TEXT, detail TEXT, created_us INTEGER);"
                    "PRAGMA user_version = 9");
        sqlite3_close(s);
        assert_int_equal(db_open(fx->path, &db), -EPROTO);
        assert_null(db);
}

static void test_corrupt_file_refused(void **state)
{
        struct fixture *fx = *state;
        struct db *db = (struct db *)fx;
        uint8_t junk[65536];
        uint64_t x = 88172645463325252ull;
        FILE *f;
        int r;

        for (size_t i = 0; i < sizeof(junk); i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                junk[i] = (uint8_t)x;
        }
        f = fopen(fx->path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(junk, 1, sizeof(junk), f), sizeof(junk));
        fclose(f);
        r = db_open(fx->path, &db);
        assert_true(r < 0);
        assert_int_equal(r, -EUCLEAN);
        assert_null(db);

        assert_int_equal(db_open("/nonexistent-dir-mwr/x.db", &db), -ENOENT);
        assert_int_equal(db_open(NULL, &db), -EINVAL);
}

static void test_segment_lifecycle(void **state)
{
        struct fixture *fx = *state;
        struct fi_frame frames[100], *back;
        struct fi_encoder enc;
        struct db_segment seg, got;
        struct list l = { 0 };
        const uint8_t *blob;
        void *stored;
        size_t len, stored_len, n;
        struct db *db;
        int64_t id, id2;

        assert_int_equal(db_open(fx->path, &db), 0);
        seg = seg_make("cam1", "/r/cam1/a.mp4", T0_US, T0_US);
        seg.status = "complete"; /* ignored: a new segment is recording */
        assert_int_equal(db_segment_begin(db, &seg, &id), 0);
        assert_int_equal(db_segment_begin(db, &seg, &id2), -EEXIST);
        assert_string_not_equal(db_errmsg(db), "");

        fi_encoder_init(&enc);
        for (size_t i = 0; i < 100; i++) {
                frames[i] = (struct fi_frame){ .offset_us = i * 40000, .size = 4000 + (uint32_t)i, .key = i % 50 == 0,
                                               .hash = (uint32_t)i };
                assert_int_equal(fi_encoder_add(&enc, &frames[i]), 0);
        }
        assert_int_equal(fi_encoder_data(&enc, &blob, &len), 0);

        assert_int_equal(db_segment_frames(db, id, &stored, &stored_len), -ENOENT);
        seg.id = id;
        seg.end_us = T0_US + 4 * SEC_US;
        seg.frames = 100;
        seg.bytes = 412345;
        seg.keyframes = 2;
        seg.fragments = 4;
        seg.clock_offset_us = -1234;
        seg.updated_us = T0_US + 5 * SEC_US;
        seg.status = NULL; /* unchanged */
        assert_int_equal(db_segment_update(db, &seg, blob, len), 0);

        assert_int_equal(db_segment_by_path(db, "/r/cam1/a.mp4", &got), 0);
        assert_int_equal(got.id, id);
        assert_string_equal(got.camera_id, "cam1");
        assert_string_equal(got.instance_id, "a-1");
        assert_string_equal(got.status, "recording");
        assert_string_equal(got.overlap_status, "unique");
        assert_string_equal(got.time_source, "rtcp");
        assert_true(got.start_us == T0_US && got.end_us == T0_US + 4 * SEC_US);
        assert_int_equal(got.frames, 100);
        assert_int_equal(got.bytes, 412345);
        assert_int_equal(got.keyframes, 2);
        assert_int_equal(got.fragments, 4);
        assert_int_equal(got.clock_offset_us, -1234);
        assert_int_equal(got.pid, 4242);
        assert_true(got.created_us == T0_US && got.updated_us == T0_US + 5 * SEC_US);
        assert_int_equal(db_segment_by_path(db, "/r/none.mp4", &got), -ENOENT);

        assert_int_equal(db_segment_frames(db, id, &stored, &stored_len), 0);
        assert_int_equal(stored_len, len);
        assert_memory_equal(stored, blob, len);
        assert_int_equal(fi_decode(stored, stored_len, &back, &n), 0);
        assert_int_equal(n, 100);
        assert_int_equal(back[99].size, 4099);
        free(back);
        free(stored);

        /* the blob is replaced on the next update, kept when NULL */
        seg.status = "complete";
        assert_int_equal(db_segment_update(db, &seg, "abc", 3), 0);
        assert_int_equal(db_segment_update(db, &seg, NULL, 0), 0);
        assert_int_equal(db_segment_frames(db, id, &stored, &stored_len), 0);
        assert_int_equal(stored_len, 3);
        assert_memory_equal(stored, "abc", 3);
        free(stored);
        assert_int_equal(db_segment_by_path(db, "/r/cam1/a.mp4", &got), 0);
        assert_string_equal(got.status, "complete");

        /* status changes and queries by status */
        assert_int_equal(db_segment_set_status(db, id, "bogus"), -EINVAL);
        assert_int_equal(db_segment_set_status(db, id + 100, "partial"), -ENOENT);
        assert_int_equal(db_segment_set_status(db, id, "partial"), 0);
        assert_int_equal(db_segments_by_status(db, "partial", list_segment, &l), 0);
        assert_int_equal(l.n, 1);
        assert_int_equal(l.ids[0], id);

        /* errors leave the row alone */
        seg.id = id + 100;
        assert_int_equal(db_segment_update(db, &seg, "zz", 2), -ENOENT);
        seg.id = id;
        seg.end_us = T0_US - 1;
        assert_int_equal(db_segment_update(db, &seg, "zz", 2), -ERANGE);
        seg.end_us = T0_US + DB_SEGMENT_SPAN_MAX_US + 1;
        assert_int_equal(db_segment_update(db, &seg, "zz", 2), -ERANGE);
        seg.end_us = T0_US + 4 * SEC_US;
        seg.status = "nonsense";
        assert_int_equal(db_segment_update(db, &seg, "zz", 2), -EINVAL); /* CHECK: rolled back, blob kept */
        assert_int_equal(db_segment_update(db, &seg, "zz", (size_t)DB_BLOB_MAX + 1), -E2BIG);
        assert_int_equal(db_segment_frames(db, id, &stored, &stored_len), 0);
        assert_memory_equal(stored, "abc", 3);
        free(stored);
        seg = seg_make("cam1", "/r/cam1/b.mp4", T0_US, T0_US);
        seg.time_source = "sundial";
        assert_int_equal(db_segment_begin(db, &seg, &id2), -EINVAL);
        seg.time_source = NULL;
        assert_int_equal(db_segment_begin(db, &seg, &id2), -EINVAL);

        /* delete takes the frame index with it (foreign keys are on) */
        assert_int_equal(db_segment_delete(db, id), 0);
        assert_int_equal(db_segment_delete(db, id), -ENOENT);
        assert_int_equal(db_segment_frames(db, id, &stored, &stored_len), -ENOENT);
        assert_int_equal(path_int(fx->path, "SELECT count(*) FROM segment_frames"), 0);

        fi_encoder_free(&enc);
        db_close(db);
}

/* The continuity timeline's verdict, and lookups by id (the HLS media URLs). */
static void test_overlap_status_and_by_id(void **state)
{
        struct fixture *fx = *state;
        struct db_segment got;
        struct db *db;
        int64_t id;

        assert_int_equal(db_open(fx->path, &db), 0);
        id = seg_add(db, "cam1", "/r/cam1/o.mp4", T0_US, T0_US + SEC_US);
        assert_int_equal(db_segment_by_id(db, id, &got), 0);
        assert_string_equal(got.path, "/r/cam1/o.mp4");
        assert_string_equal(got.overlap_status, "unique");
        assert_int_equal(db_segment_set_overlap(db, id, "duplicate"), 0);
        assert_int_equal(db_segment_by_id(db, id, &got), 0);
        assert_string_equal(got.overlap_status, "duplicate");
        assert_string_equal(got.status, "recording"); /* nothing else changed */
        assert_int_equal(db_segment_set_overlap(db, id, "maybe"), -EINVAL); /* the schema's CHECK */
        assert_int_equal(db_segment_set_overlap(db, id + 1000, "primary"), -ENOENT);
        assert_int_equal(db_segment_by_id(db, id + 1000, &got), -ENOENT);
        db_close(db);
}

static int count_slot(const struct db_slot *sl, void *ctx)
{
        struct list *l = ctx;

        snprintf(l->paths[l->n], sizeof(l->paths[0]), "%s:%" PRId64 ":%s:%d", sl->name, sl->pid, sl->state,
                 sl->active);
        l->n++;
        return 0;
}

static int count_deploy(const struct db_deploy *d, void *ctx)
{
        struct list *l = ctx;

        snprintf(l->paths[l->n], sizeof(l->paths[0]), "%s>%s:%s:%s", d->from_slot, d->to_slot, d->result,
                 d->reason);
        l->n++;
        return 0;
}

/* The supervisor's slots survive it (adoption) and deploys are a history. */
static void test_supervisor_state(void **state)
{
        struct fixture *fx = *state;
        struct db_slot a = { .name = "a", .port = 8080, .pid = 100, .instance_id = "a", .binary = "/bin/w",
                             .version = "0.1.0", .state = "ready", .active = true, .updated_us = T0_US };
        struct db_deploy d = { .started_us = T0_US, .from_slot = "a", .to_slot = "b", .binary = "/bin/w2",
                               .version = "0.2.0" };
        struct list l = { 0 };
        struct db *db;
        int64_t id, id2;

        assert_int_equal(db_open(fx->path, &db), 0);
        assert_int_equal(db_slot_save(db, &a), 0);
        a.pid = 200;
        a.state = "stopping";
        assert_int_equal(db_slot_save(db, &a), 0); /* replaces */
        assert_int_equal(db_slots_each(db, count_slot, &l), 0);
        assert_int_equal(l.n, 1);
        assert_string_equal(l.paths[0], "a:200:stopping:1");
        assert_int_equal(db_deploy_begin(db, &d, &id), 0);
        assert_int_equal(db_deploy_finish(db, id, "ok", NULL, T0_US + SEC_US), 0);
        assert_int_equal(db_deploy_begin(db, &d, &id2), 0);
        assert_int_equal(db_deploy_finish(db, id2, "failed", "not healthy in 30 s", T0_US + SEC_US), 0);
        assert_int_equal(db_deploy_finish(db, id2 + 5, "ok", NULL, T0_US), -ENOENT);
        assert_int_equal(db_deploy_finish(db, id2, "great", NULL, T0_US), -EINVAL); /* CHECK */
        l.n = 0;
        assert_int_equal(db_deploys_recent(db, 10, count_deploy, &l), 0);
        assert_int_equal(l.n, 2);
        assert_string_equal(l.paths[0], "a>b:failed:not healthy in 30 s"); /* newest first */
        assert_string_equal(l.paths[1], "a>b:ok:");
        db_close(db);
}

static void test_segments_range(void **state)
{
        struct fixture *fx = *state;
        struct list l = { 0 };
        struct db *db;
        int64_t a, b, c, z, other;

        assert_int_equal(db_open(fx->path, &db), 0);
        /* inserted out of order; cam1: a [0,10) b [10,20) c [20,30), z zero-length at 30 */
        c = seg_add(db, "cam1", "/c", T0_US + 20 * SEC_US, T0_US + 30 * SEC_US);
        a = seg_add(db, "cam1", "/a", T0_US, T0_US + 10 * SEC_US);
        b = seg_add(db, "cam1", "/b", T0_US + 10 * SEC_US, T0_US + 20 * SEC_US);
        z = seg_add(db, "cam1", "/z", T0_US + 30 * SEC_US, T0_US + 30 * SEC_US);
        other = seg_add(db, "cam2", "/o", T0_US, T0_US + 30 * SEC_US);
        (void)other;

        assert_int_equal(db_segments_range(db, "cam1", T0_US, T0_US + 60 * SEC_US, 100, 0, list_segment, &l), 0);
        assert_int_equal(l.n, 4);
        assert_true(l.ids[0] == a && l.ids[1] == b && l.ids[2] == c && l.ids[3] == z);

        /* [10 s, 20 s) touches b only: a ends at 10, c starts at 20 */
        memset(&l, 0, sizeof(l));
        assert_int_equal(db_segments_range(db, "cam1", T0_US + 10 * SEC_US, T0_US + 20 * SEC_US, 100, 0,
                                           list_segment, &l), 0);
        assert_int_equal(l.n, 1);
        assert_int_equal(l.ids[0], b);

        /* a point inside a */
        memset(&l, 0, sizeof(l));
        assert_int_equal(db_segments_range(db, "cam1", T0_US + 5 * SEC_US, T0_US + 5 * SEC_US + 1, 100, 0,
                                           list_segment, &l), 0);
        assert_int_equal(l.n, 1);
        assert_int_equal(l.ids[0], a);

        /* limit and offset page through in order */
        memset(&l, 0, sizeof(l));
        assert_int_equal(db_segments_range(db, "cam1", T0_US, T0_US + 60 * SEC_US, 2, 1, list_segment, &l), 0);
        assert_int_equal(l.n, 2);
        assert_true(l.ids[0] == b && l.ids[1] == c);

        /* the callback stops the iteration and its value comes back */
        memset(&l, 0, sizeof(l));
        l.stop_after = 2;
        assert_int_equal(db_segments_range(db, "cam1", T0_US, T0_US + 60 * SEC_US, 100, 0, list_segment, &l), 77);
        assert_int_equal(l.n, 2);

        memset(&l, 0, sizeof(l));
        assert_int_equal(db_segments_range(db, "cam3", T0_US, T0_US + 60 * SEC_US, 100, 0, list_segment, &l), 0);
        assert_int_equal(l.n, 0);
        assert_int_equal(db_segments_range(db, "cam1", T0_US, T0_US, 100, 0, list_segment, &l), -EINVAL);
        assert_int_equal(db_segments_range(db, "cam1", T0_US, T0_US + 1, 0, 0, list_segment, &l), -EINVAL);
        assert_int_equal(db_segments_range(db, "cam1", T0_US, T0_US + 1, DB_QUERY_LIMIT_MAX + 1, 0, list_segment,
                                           &l), -EINVAL);
        assert_int_equal(db_segments_range(db, "cam1", INT64_MIN, INT64_MAX, 100, 0, list_segment, &l), 0);
        assert_int_equal(l.n, 4);

        /* by status, ordered by start */
        memset(&l, 0, sizeof(l));
        assert_int_equal(db_segments_by_status(db, "recording", list_segment, &l), 0);
        assert_int_equal(l.n, 5);
        assert_true(l.ids[0] == a || l.ids[0] == other);
        assert_int_equal(l.ids[4], z);
        db_close(db);
}

/* A restarted instance numbers its segments on from the highest it wrote. */
static void test_segment_max_num(void **state)
{
        struct fixture *fx = *state;
        struct db_segment seg;
        struct db *db;
        int64_t id, num = -1;

        assert_int_equal(db_open(fx->path, &db), 0);
        assert_int_equal(db_segment_max_num(db, "cam1", "a-1", &num), 0);
        assert_int_equal(num, 0);
        for (int i = 0; i < 3; i++) {
                char path[32];
                snprintf(path, sizeof(path), "/r/%d.mp4", i);
                seg = seg_make(i == 2 ? "cam2" : "cam1", path, T0_US, T0_US);
                seg.segment_num = 7 + i * 10; /* cam1: 7, 17; cam2: 27 */
                assert_int_equal(db_segment_begin(db, &seg, &id), 0);
        }
        seg = seg_make("cam1", "/r/other.mp4", T0_US, T0_US);
        seg.instance_id = "b-1";
        seg.segment_num = 99;
        assert_int_equal(db_segment_begin(db, &seg, &id), 0);
        assert_int_equal(db_segment_max_num(db, "cam1", "a-1", &num), 0);
        assert_int_equal(num, 17);
        assert_int_equal(db_segment_max_num(db, "cam2", "a-1", &num), 0);
        assert_int_equal(num, 27);
        assert_int_equal(db_segment_max_num(db, NULL, "a-1", &num), -EINVAL);
        db_close(db);
}

/* Collects db_segment_nums' rows. */
struct nums {
        int n;
        int64_t num[LIST_MAX], start_us[LIST_MAX];
};

static int list_num(int64_t num, int64_t start_us, void *ctx)
{
        struct nums *l = ctx;

        assert_true(l->n < LIST_MAX);
        l->num[l->n] = num;
        l->start_us[l->n++] = start_us;
        return 0;
}

/* Recovery's check of a day directory: one instance's numbers in a range,
 * in number order, another instance's and camera's rows left out. */
static void test_segment_nums(void **state)
{
        struct fixture *fx = *state;
        struct db_segment seg;
        struct nums l = { 0 };
        struct db *db;
        int64_t id;

        assert_int_equal(db_open(fx->path, &db), 0);
        for (int i = 0; i < 12; i++) {
                char path[32];
                snprintf(path, sizeof(path), "/r/%d.mp4", i);
                seg = seg_make(i % 4 == 3 ? "cam2" : "cam1", path, T0_US + (11 - i) * SEC_US, T0_US + (12 - i) * SEC_US);
                seg.instance_id = i % 2 ? "b" : "a";
                seg.segment_num = 100 - i; /* inserted newest number first */
                assert_int_equal(db_segment_begin(db, &seg, &id), 0);
        }
        /* cam1 "a": i = 0, 2, 4, 6, 8, 10 -> numbers 100, 98, 96, 94, 92, 90 */
        assert_int_equal(db_segment_nums(db, "cam1", "a", 92, 98, 100, 0, list_num, &l), 0);
        assert_int_equal(l.n, 4);
        assert_int_equal(l.num[0], 92);
        assert_int_equal(l.start_us[0], T0_US + 3 * SEC_US);
        assert_int_equal(l.num[3], 98);
        assert_int_equal(l.start_us[3], T0_US + 9 * SEC_US);
        l.n = 0;
        assert_int_equal(db_segment_nums(db, "cam1", "a", 0, 1000, 2, 3, list_num, &l), 0);
        assert_int_equal(l.n, 2);
        assert_int_equal(l.num[0], 96);
        assert_int_equal(l.num[1], 98);
        l.n = 0;
        /* cam2 "b": i = 3, 7, 11 -> 97, 93, 89 */
        assert_int_equal(db_segment_nums(db, "cam2", "b", 0, 1000, 100, 0, list_num, &l), 0);
        assert_int_equal(l.n, 3);
        assert_int_equal(l.num[0], 89);
        l.n = 0;
        assert_int_equal(db_segment_nums(db, "cam2", "a", 0, 1000, 100, 0, list_num, &l), 0);
        assert_int_equal(l.n, 0);
        assert_int_equal(db_segment_nums(db, "cam1", "a", 0, 1000, 0, 0, list_num, &l), -EINVAL);
        assert_int_equal(db_segment_nums(db, "cam1", NULL, 0, 1000, 1, 0, list_num, &l), -EINVAL);
        db_close(db);
}

/* What every start runs once per camera (the next segment_num) and over
 * the recent day directories (the numbers the index has) reads one index
 * range on camera and instance, never a row: through an index on camera_id
 * alone they read each of the camera's rows, 16.6 million at start for 64
 * cameras over 30 days (tests/bench/archive_month.py). */
static void test_start_queries_read_only_an_index(void **state)
{
        static const char *const wanted[] = { "max(segment_num)", "segment_num BETWEEN" };
        struct fixture *fx = *state;
        struct db *db;
        const char *sql;
        char plan[2048];
        size_t found = 0;
        int e;

        assert_int_equal(db_open(fx->path, &db), 0);
        for (size_t k = 0; (e = db_explain(db, k, &sql, plan, sizeof(plan))) != -ENOENT; k++) {
                assert_int_equal(e, 0);
                for (size_t w = 0; w < sizeof(wanted) / sizeof(wanted[0]); w++) {
                        if (!strstr(sql, wanted[w]))
                                continue;
                        found++;
                        if (!strstr(plan, "USING COVERING INDEX") || !strstr(plan, "camera_id=? AND instance_id=?") ||
                            strstr(plan, "TEMP B-TREE"))
                                fprintf(stderr, "    reads rows: %s\n      plan: %s\n", sql, plan);
                        assert_non_null(strstr(plan, "USING COVERING INDEX"));
                        assert_non_null(strstr(plan, "camera_id=? AND instance_id=?"));
                        assert_null(strstr(plan, "TEMP B-TREE"));
                }
        }
        assert_int_equal(found, 2);
        db_close(db);
}

/* Crash recovery marks leftover 'recording' rows from the query's callback. */
static int mark_partial(const struct db_segment *seg, void *ctx)
{
        return db_segment_set_status(ctx, seg->id, "partial");
}

static int reenter(const struct db_segment *seg, void *ctx)
{
        struct list l = { 0 };

        return db_segments_by_status(ctx, "recording", list_segment, &l);
}

static void test_callbacks_may_write(void **state)
{
        struct fixture *fx = *state;
        struct list l = { 0 };
        struct db *db;

        assert_int_equal(db_open(fx->path, &db), 0);
        for (int i = 0; i < 10; i++) {
                char path[32];
                snprintf(path, sizeof(path), "/r/%d.mp4", i);
                seg_add(db, "cam1", path, T0_US + i * 10 * SEC_US, T0_US + i * 10 * SEC_US);
        }
        assert_int_equal(db_segments_by_status(db, "recording", reenter, db), -EDEADLK);
        assert_int_equal(db_segments_by_status(db, "recording", mark_partial, db), 0);
        assert_int_equal(db_segments_by_status(db, "recording", list_segment, &l), 0);
        assert_int_equal(l.n, 0);
        assert_int_equal(db_segments_by_status(db, "partial", list_segment, &l), 0);
        assert_int_equal(l.n, 10);
        db_close(db);
}

static void test_gaps(void **state)
{
        struct fixture *fx = *state;
        struct list l = { 0 };
        struct db *db;

        assert_int_equal(db_open(fx->path, &db), 0);
        assert_int_equal(db_gap_insert(db, "cam1", "a-1", T0_US + 5 * SEC_US, T0_US + 9 * SEC_US, "camera_down",
                                       "RTSP timeout", T0_US), 0);
        assert_int_equal(db_gap_insert(db, "cam2", "a-1", T0_US, T0_US + 2 * SEC_US, "recorder_start", NULL, T0_US),
                         0);
        assert_int_equal(db_gap_insert(db, "cam1", "b-1", T0_US + 100 * SEC_US, T0_US + 101 * SEC_US, "crash", "",
                                       T0_US), 0);
        assert_int_equal(db_gap_insert(db, "cam1", "a-1", T0_US, T0_US + 1, "gremlins", "", T0_US), -EINVAL);
        assert_int_equal(db_gap_insert(db, "cam1", "a-1", T0_US, T0_US - 1, "crash", "", T0_US), -ERANGE);

        assert_int_equal(db_gaps_range(db, NULL, T0_US, T0_US + 10 * SEC_US, 100, 0, list_gap, &l), 0);
        assert_int_equal(l.n, 2);
        assert_string_equal(l.paths[0], "cam2:recorder_start");
        assert_string_equal(l.paths[1], "cam1:camera_down");

        memset(&l, 0, sizeof(l));
        assert_int_equal(db_gaps_range(db, "cam1", T0_US, T0_US + 1000 * SEC_US, 100, 0, list_gap, &l), 0);
        assert_int_equal(l.n, 2);
        assert_string_equal(l.paths[0], "cam1:camera_down");
        assert_string_equal(l.paths[1], "cam1:crash");

        memset(&l, 0, sizeof(l));
        assert_int_equal(db_gaps_range(db, "cam1", T0_US + 9 * SEC_US, T0_US + 100 * SEC_US, 100, 0, list_gap, &l),
                         0);
        assert_int_equal(l.n, 0); /* half-open on both sides */
        assert_int_equal(db_gaps_range(db, NULL, T0_US, T0_US + 10 * SEC_US, 1, 1, list_gap, &l), 0);
        assert_int_equal(l.n, 1);
        assert_string_equal(l.paths[0], "cam1:camera_down");
        assert_int_equal(path_int(fx->path, "SELECT count(*) FROM gaps WHERE detail = ''"), 2);
        db_close(db);
}

/* A file written by a schema-2 worker (its tables as that worker made them,
 * with a gap row): schema 3 adds the segment's codec and size, and gap
 * reasons packet_loss, handover and storage_unavailable, keeping every row. */
static void test_migration_3_keeps_rows_and_widens_gap_reasons(void **state)
{
        struct fixture *fx = *state;
        struct db_segment seg;
        struct list l = { 0 };
        struct db *db;
        sqlite3 *s = raw_open(fx->path);
        int64_t id;

        raw_exec(s, "CREATE TABLE cameras(id TEXT PRIMARY KEY, url TEXT NOT NULL, enabled INTEGER NOT NULL,"
                    " updated_us INTEGER NOT NULL);"
                    "CREATE TABLE video_segments(id INTEGER PRIMARY KEY, camera_id TEXT NOT NULL,"
                    " instance_id TEXT NOT NULL, path TEXT NOT NULL UNIQUE, segment_num INTEGER NOT NULL,"
                    " start_us INTEGER NOT NULL, end_us INTEGER NOT NULL, frames INTEGER NOT NULL DEFAULT 0,"
                    " bytes INTEGER NOT NULL DEFAULT 0, keyframes INTEGER NOT NULL DEFAULT 0,"
                    " fragments INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL, overlap_status TEXT NOT NULL"
                    " DEFAULT 'unique', time_source TEXT NOT NULL, clock_offset_us INTEGER NOT NULL DEFAULT 0,"
                    " pid INTEGER NOT NULL DEFAULT 0, created_us INTEGER NOT NULL, updated_us INTEGER NOT NULL);"
                    "CREATE TABLE segment_frames(segment_id INTEGER PRIMARY KEY, blob BLOB NOT NULL);"
                    "CREATE TABLE gaps(id INTEGER PRIMARY KEY, camera_id TEXT NOT NULL, instance_id TEXT NOT NULL,"
                    " start_us INTEGER NOT NULL, end_us INTEGER NOT NULL, reason TEXT NOT NULL CHECK(reason IN"
                    " ('camera_down','recorder_start','recorder_stop','disk_full','clock_step','timestamp_jump',"
                    "'corrupt_input','crash')), detail TEXT NOT NULL DEFAULT '', created_us INTEGER NOT NULL);"
                    "CREATE INDEX gaps_camera_start ON gaps(camera_id, start_us);"
                    "CREATE TABLE supervisor_slots(name TEXT PRIMARY KEY, port INTEGER NOT NULL, pid INTEGER NOT NULL"
                    " DEFAULT 0, instance_id TEXT NOT NULL, binary TEXT NOT NULL DEFAULT '', version TEXT NOT NULL"
                    " DEFAULT '', state TEXT NOT NULL DEFAULT 'stopped', active INTEGER NOT NULL DEFAULT 0,"
                    " started_us INTEGER NOT NULL DEFAULT 0, updated_us INTEGER NOT NULL);"
                    "CREATE TABLE deploys(id INTEGER PRIMARY KEY, started_us INTEGER NOT NULL, finished_us INTEGER"
                    " NOT NULL DEFAULT 0, from_slot TEXT NOT NULL, to_slot TEXT NOT NULL, binary TEXT NOT NULL,"
                    " version TEXT NOT NULL DEFAULT '', result TEXT NOT NULL DEFAULT 'running', reason TEXT NOT NULL"
                    " DEFAULT '');"
                    "INSERT INTO gaps(camera_id, instance_id, start_us, end_us, reason, detail, created_us)"
                    " VALUES('cam1', 'a-1', 5, 9, 'camera_down', 'old', 1);"
                    "INSERT INTO video_segments(camera_id, instance_id, path, segment_num, start_us, end_us, status,"
                    " time_source, created_us, updated_us) VALUES('cam1', 'a-1', '/r/old.mp4', 1, 5, 9, 'complete',"
                    " 'rtcp', 1, 1);"
                    "PRAGMA user_version = 2");
        sqlite3_close(s);
        assert_int_equal(db_open(fx->path, &db), 0);
        assert_int_equal(path_int(fx->path, "PRAGMA user_version"), DB_SCHEMA_VERSION);
        assert_int_equal(path_int(fx->path, "SELECT count(*) FROM gaps WHERE detail = 'old'"), 1);
        assert_int_equal(path_int(fx->path, "SELECT count(*) FROM video_segments WHERE video_codec = '' AND "
                                            "width = 0"),
                         1);
        assert_int_equal(db_gap_insert(db, "cam1", "a-1", 10, 11, "packet_loss", "3 RTP packets lost", 2), 0);
        assert_int_equal(db_gap_insert(db, "cam1", "a-1", 12, 13, "handover", "", 2), 0);
        assert_int_equal(db_gap_insert(db, "cam1", "a-1", 14, 15, "storage_unavailable", "", 2), 0);
        assert_int_equal(db_gap_insert(db, "cam1", "a-1", 12, 13, "gremlins", "", 2), -EINVAL);
        assert_int_equal(db_gaps_range(db, "cam1", 0, 100, 100, 0, list_gap, &l), 0);
        assert_int_equal(l.n, 4);
        assert_string_equal(l.paths[1], "cam1:packet_loss");
        seg = seg_make("cam1", "/r/new.mp4", T0_US, T0_US);
        seg.video_codec = "hevc";
        seg.width = 1280;
        seg.height = 720;
        seg.audio_codec = "flac";
        assert_int_equal(db_segment_begin(db, &seg, &id), 0);
        assert_int_equal(path_int(fx->path, "SELECT count(*) FROM video_segments WHERE video_codec = 'hevc' AND "
                                            "width = 1280 AND height = 720 AND audio_codec = 'flac'"),
                         1);
        db_close(db);
}

/* Schema 5: which of our instances holds a camera that allows one session. */
static void test_camera_leases(void **state)
{
        struct fixture *fx = *state;
        struct db_lease l;
        char who[32], st[16];
        struct db *db;

        assert_int_equal(db_open(fx->path, &db), 0);
        assert_int_equal(db_lease_other(db, "cam1", "b", T0_US, &l, who, sizeof(who), st, sizeof(st)), 0);
        assert_int_equal(db_lease_put(db, &(struct db_lease){ .camera_id = "cam1", .instance_id = "a",
                                                              .state = "recording", .since_us = T0_US,
                                                              .last_frame_us = T0_US + 5 * SEC_US,
                                                              .heartbeat_us = T0_US + 6 * SEC_US }),
                         0);
        assert_int_equal(db_lease_put(db, &(struct db_lease){ .camera_id = "cam1", .instance_id = "c",
                                                              .state = "released", .since_us = T0_US,
                                                              .heartbeat_us = T0_US + 9 * SEC_US }),
                         0);
        /* b sees a, the live holder, before c's later but released row; never itself */
        assert_int_equal(db_lease_other(db, "cam1", "b", T0_US + 4 * SEC_US, &l, who, sizeof(who), st, sizeof(st)),
                         1);
        assert_string_equal(who, "a");
        assert_string_equal(st, "recording");
        assert_int_equal(l.last_frame_us, T0_US + 5 * SEC_US);
        assert_int_equal(db_lease_other(db, "cam1", "a", T0_US, &l, who, sizeof(who), st, sizeof(st)), 1);
        assert_string_equal(who, "c");
        /* a stale heartbeat: the latest row comes first */
        assert_int_equal(db_lease_other(db, "cam1", "b", T0_US + 7 * SEC_US, &l, who, sizeof(who), st, sizeof(st)),
                         1);
        assert_string_equal(who, "c");
        /* released: last_frame_us never goes back */
        assert_int_equal(db_lease_put(db, &(struct db_lease){ .camera_id = "cam1", .instance_id = "a",
                                                              .state = "released", .since_us = T0_US + 7 * SEC_US,
                                                              .last_frame_us = 0, .heartbeat_us = T0_US + 10 * SEC_US }),
                         0);
        assert_int_equal(db_lease_other(db, "cam1", "b", T0_US, &l, who, sizeof(who), st, sizeof(st)), 1);
        assert_string_equal(who, "a");
        assert_string_equal(st, "released");
        assert_int_equal(l.last_frame_us, T0_US + 5 * SEC_US);
        assert_int_equal(l.limited_us, 0);
        /* c learnt the camera allows one session: every instance sees it, kept through c's later rows */
        assert_int_equal(db_lease_put(db, &(struct db_lease){ .camera_id = "cam1", .instance_id = "c",
                                                              .state = "standby", .since_us = T0_US,
                                                              .heartbeat_us = T0_US + 11 * SEC_US,
                                                              .limited_us = T0_US + 11 * SEC_US }),
                         0);
        assert_int_equal(db_lease_put(db, &(struct db_lease){ .camera_id = "cam1", .instance_id = "c",
                                                              .state = "released", .since_us = T0_US,
                                                              .heartbeat_us = T0_US + 12 * SEC_US }),
                         0);
        assert_int_equal(db_lease_other(db, "cam1", "b", T0_US, &l, who, sizeof(who), st, sizeof(st)), 1);
        assert_int_equal(l.limited_us, T0_US + 11 * SEC_US);
        assert_int_equal(db_lease_other(db, "cam1", "c", T0_US, &l, who, sizeof(who), st, sizeof(st)), 1);
        assert_string_equal(who, "a");
        assert_int_equal(l.limited_us, T0_US + 11 * SEC_US);
        assert_int_equal(db_lease_put(db, &(struct db_lease){ .camera_id = "cam2", .instance_id = "a",
                                                              .state = "recording", .heartbeat_us = T0_US }),
                         0);
        assert_int_equal(db_lease_other(db, "cam2", "b", T0_US, &l, who, sizeof(who), st, sizeof(st)), 1);
        assert_int_equal(l.limited_us, 0); /* per camera */
        assert_int_equal(db_lease_put(db, &(struct db_lease){ .camera_id = "cam1", .instance_id = "a",
                                                              .state = "sleeping", .heartbeat_us = T0_US }),
                         -EINVAL);
        db_close(db);
}

static void test_camera_upsert(void **state)
{
        struct fixture *fx = *state;
        struct db *db;

        assert_int_equal(db_open(fx->path, &db), 0);
        assert_int_equal(db_camera_upsert(db, "cam1", "rtsp://10.0.0.5/s", true, T0_US), 0);
        assert_int_equal(db_camera_upsert(db, "cam2", "rtsp://10.0.0.6/s", true, T0_US), 0);
        assert_int_equal(db_camera_upsert(db, "cam1", "rtsp://10.0.0.7/s", false, T0_US + 1), 0);
        assert_int_equal(db_camera_upsert(db, "cam1", NULL, false, T0_US + 1), -EINVAL);
        db_close(db);
        assert_int_equal(path_int(fx->path, "SELECT count(*) FROM cameras"), 2);
        assert_int_equal(path_int(fx->path, "SELECT enabled = 0 AND url = 'rtsp://10.0.0.7/s' AND updated_us = "
                                            "1795000000000001 FROM cameras WHERE id = 'cam1'"),
                         1);
}

/* Two workers during a deploy: two connections writing in turn. */
static void test_two_connections_interleaved(void **state)
{
        struct fixture *fx = *state;
        struct db *a, *b;

        assert_int_equal(db_open(fx->path, &a), 0);
        assert_int_equal(db_open(fx->path, &b), 0);
        for (int i = 0; i < 100; i++) {
                struct db *db = i & 1 ? b : a;
                struct db_segment seg;
                char path[32];
                int64_t id;

                snprintf(path, sizeof(path), "/r/%c/%d.mp4", i & 1 ? 'b' : 'a', i);
                seg = seg_make("cam1", path, T0_US + i * SEC_US, T0_US + i * SEC_US);
                seg.instance_id = i & 1 ? "b-1" : "a-1";
                assert_int_equal(db_segment_begin(db, &seg, &id), 0);
                seg.id = id;
                seg.end_us += 10 * SEC_US;
                seg.status = "complete";
                assert_int_equal(db_segment_update(i & 1 ? a : b, &seg, "blob", 4), 0); /* the other one */
                assert_int_equal(db_gap_insert(db, "cam1", seg.instance_id, seg.start_us, seg.start_us + 1, "crash",
                                               "", T0_US), 0);
        }
        db_close(a);
        db_close(b);
        assert_int_equal(path_int(fx->path, "SELECT count(*) FROM video_segments WHERE status = 'complete'"), 100);
        assert_int_equal(path_int(fx->path, "SELECT count(*) FROM segment_frames"), 100);
}

struct writer {
        const char *path;
        char instance[8];
        int result;
};

static void *writer_run(void *arg)
{
        struct writer *w = arg;
        struct db *db;
        int r;

        if ((r = db_open(w->path, &db)) < 0) {
                w->result = r;
                return NULL;
        }
        for (int i = 0; i < 200 && r == 0; i++) {
                char path[48];
                struct db_segment seg;
                int64_t id;

                snprintf(path, sizeof(path), "/r/%s/%d.mp4", w->instance, i);
                seg = seg_make("cam1", path, T0_US + i * SEC_US, T0_US + i * SEC_US);
                seg.instance_id = w->instance;
                if ((r = db_segment_begin(db, &seg, &id)) == 0) {
                        seg.id = id;
                        seg.end_us += SEC_US;
                        seg.status = "complete";
                        r = db_segment_update(db, &seg, path, strlen(path));
                }
        }
        w->result = r;
        db_close(db);
        return NULL;
}

/* Several threads open a fresh file at once: migrations run once, nobody
 * fails, and then they write concurrently without an error. */
static void test_concurrent_open_and_write(void **state)
{
        struct fixture *fx = *state;
        struct writer w[4];
        pthread_t t[4];

        for (int i = 0; i < 4; i++) {
                w[i] = (struct writer){ .path = fx->path, .result = 1 };
                snprintf(w[i].instance, sizeof(w[i].instance), "w%d", i);
                assert_int_equal(pthread_create(&t[i], NULL, writer_run, &w[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
                pthread_join(t[i], NULL);
                assert_int_equal(w[i].result, 0);
        }
        assert_int_equal(path_int(fx->path, "PRAGMA user_version"), DB_SCHEMA_VERSION);
        assert_int_equal(path_int(fx->path, "SELECT count(*) FROM video_segments WHERE status = 'complete'"), 800);
}

static int64_t mono_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_busy_after_timeout(void **state)
{
        struct fixture *fx = *state;
        struct db_segment seg = seg_make("cam1", "/r/busy.mp4", T0_US, T0_US);
        struct db *db;
        sqlite3 *holder;
        int64_t id, t0_ms;

        assert_int_equal(db_open(fx->path, &db), 0);
        assert_int_equal(db_set_busy_timeout_ms(db, 100), 0);
        holder = raw_open(fx->path);
        raw_exec(holder, "BEGIN IMMEDIATE");

        t0_ms = mono_ms();
        assert_int_equal(db_segment_begin(db, &seg, &id), -EBUSY);
        assert_true(mono_ms() - t0_ms >= 90);
        assert_string_not_equal(db_errmsg(db), "");
        seg.id = 1;
        assert_int_equal(db_segment_update(db, &seg, "x", 1), -EBUSY);
        assert_int_equal(db_gap_insert(db, "cam1", "a-1", T0_US, T0_US, "crash", "", T0_US), -EBUSY);
        assert_int_equal(db_check(db), 0); /* readers are not blocked in WAL mode */

        raw_exec(holder, "COMMIT");
        sqlite3_close(holder);
        assert_int_equal(db_segment_begin(db, &seg, &id), 0);
        db_close(db);
}

/* ---- file modes ---- */

static mode_t mode_of(const char *path, const char *suffix)
{
        char p[160];
        struct stat st;

        snprintf(p, sizeof(p), "%s%s", path, suffix);
        if (stat(p, &st) < 0)
                fail_msg("%s: %s", p, strerror(errno));
        return st.st_mode & 07777;
}

static void unlink_db(const char *path)
{
        static const char *const suffixes[] = { "", "-wal", "-shm", "-journal" };
        char p[160];

        for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
                snprintf(p, sizeof(p), "%s%s", path, suffixes[i]);
                unlink(p);
        }
}

/* Regression: SQLite made the database (and so its -wal and -shm, which
 * copy its mode) 0644 & ~umask: readable by every user on the host.  Now
 * 0640 under the usual umask and under none at all. */
static void test_new_files_are_0640_whatever_the_umask(void **state)
{
        struct fixture *fx = *state;
        static const mode_t masks[] = { 022, 0 };
        struct db *db;

        for (size_t i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
                mode_t old = umask(masks[i]);

                assert_int_equal(db_open(fx->path, &db), 0);
                umask(old);
                assert_int_equal(db_camera_upsert(db, "cam1", "rtsp://x/1", true, T0_US), 0);
                assert_int_equal(mode_of(fx->path, ""), 0640);
                assert_int_equal(mode_of(fx->path, "-wal"), 0640);
                assert_int_equal(mode_of(fx->path, "-shm"), 0640);
                db_close(db);
                unlink_db(fx->path);
        }
}

/* A database an older mwr made 0644 (and 0666 -wal/-shm, held open here by
 * another connection, as a running older worker would) loses group write and
 * the world bits at the next open; its rows and the other connection's are
 * untouched; a mode already narrower stays as it is. */
static void test_wide_files_are_restricted_at_open(void **state)
{
        struct fixture *fx = *state;
        char p[160];
        struct db *db;
        sqlite3 *older;

        older = raw_open(fx->path);
        raw_exec(older, "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1)");
        assert_int_equal(chmod(fx->path, 0644), 0);
        for (int i = 0; i < 2; i++) {
                snprintf(p, sizeof(p), "%s%s", fx->path, i ? "-shm" : "-wal");
                assert_int_equal(chmod(p, 0666), 0);
        }
        assert_int_equal(db_open(fx->path, &db), 0);
        assert_int_equal(mode_of(fx->path, ""), 0640);
        assert_int_equal(mode_of(fx->path, "-wal"), 0640);
        assert_int_equal(mode_of(fx->path, "-shm"), 0640);
        raw_exec(older, "INSERT INTO t VALUES (2)"); /* its locks survived our open */
        assert_int_equal(raw_int(older, "SELECT count(*) FROM t"), 2);
        assert_int_equal(db_camera_upsert(db, "cam1", "rtsp://x/1", true, T0_US), 0);
        db_close(db);
        sqlite3_close(older);

        assert_int_equal(chmod(fx->path, 0600), 0);
        assert_int_equal(db_open(fx->path, &db), 0);
        assert_int_equal(mode_of(fx->path, ""), 0600);
        db_close(db);
}

/* The running total of segment bytes (schema 7's triggers) follows
 * inserts, updates and deletes, and a database of an older schema starts
 * from the sum of what it holds. */
static void test_total_bytes_is_kept_by_triggers(void **state)
{
        struct fixture *fx = *state;
        struct db_segment seg;
        struct db *db;
        int64_t a, b, total = -1;

        assert_int_equal(db_open(fx->path, &db), 0);
        assert_int_equal(db_segments_total_bytes(db, &total), 0);
        assert_int_equal(total, 0);
        a = seg_add(db, "cam1", "/r/cam1/a.mp4", T0_US, T0_US + SEC_US);
        b = seg_add(db, "cam2", "/r/cam2/b.mp4", T0_US, T0_US + SEC_US);
        seg = seg_make("cam1", "/r/cam1/a.mp4", T0_US, T0_US + 2 * SEC_US);
        seg.id = a;
        seg.bytes = 1000;
        assert_int_equal(db_segment_update(db, &seg, "x", 1), 0);
        seg.bytes = 2500; /* a fragment more */
        assert_int_equal(db_segment_update(db, &seg, "x", 1), 0);
        seg = seg_make("cam2", "/r/cam2/b.mp4", T0_US, T0_US + 2 * SEC_US);
        seg.id = b;
        seg.bytes = 700;
        assert_int_equal(db_segment_update(db, &seg, "x", 1), 0);
        assert_int_equal(db_segments_total_bytes(db, &total), 0);
        assert_int_equal(total, 3200);
        assert_int_equal(db_segment_delete(db, a), 0);
        assert_int_equal(db_segments_total_bytes(db, &total), 0);
        assert_int_equal(total, 700);
        db_close(db);

        /* a schema-6 database: the step starts the total from the sum */
        {
                sqlite3 *h;

                assert_int_equal(sqlite3_open(fx->path, &h), SQLITE_OK);
                assert_int_equal(sqlite3_exec(h, "DROP TRIGGER video_segments_bytes_insert;"
                                                 "DROP TRIGGER video_segments_bytes_update;"
                                                 "DROP TRIGGER video_segments_bytes_delete;"
                                                 "DROP TABLE segment_bytes_total;"
                                                 "DROP INDEX video_segments_camera_instance_num;"
                                                 "UPDATE video_segments SET bytes = 4321;"
                                                 "PRAGMA user_version = 6;",
                                              NULL, NULL, NULL),
                                 SQLITE_OK);
                sqlite3_close(h);
        }
        assert_int_equal(db_open(fx->path, &db), 0);
        assert_int_equal(db_segments_total_bytes(db, &total), 0);
        assert_int_equal(total, 4321);
        db_close(db);
}

/* Every query of the index is served by an index, so its cost follows the
 * rows asked for, not the archive (issue 17): no plan may SCAN a table of
 * footage (video_segments, segment_frames, gaps, camera_leases) except
 * the statements listed here, each with why a scan is what it must do. */
static void test_every_query_uses_an_index(void **state)
{
        static const char *const allowed[] = {
                "SELECT 1 FROM video_segments LIMIT 1",  /* db_check: stops at the first row */
        };
        static const char *const tables[] = { "SCAN video_segments", "SCAN segment_frames", "SCAN gaps",
                                              "SCAN camera_leases" };
        struct fixture *fx = *state;
        struct db *db;
        const char *sql;
        char plan[2048];
        size_t k, bad = 0;
        int e;

        assert_int_equal(db_open(fx->path, &db), 0);
        for (k = 0; (e = db_explain(db, k, &sql, plan, sizeof(plan))) != -ENOENT; k++) {
                bool ok = true;

                assert_int_equal(e, 0);
                for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
                        if (strstr(plan, tables[t]) && !strstr(plan, "USING"))
                                ok = false;
                for (size_t a = 0; a < sizeof(allowed) / sizeof(allowed[0]); a++)
                        if (!strcmp(sql, allowed[a]))
                                ok = true;
                if (!ok) {
                        fprintf(stderr, "    full scan: %s\n      plan: %s\n", sql, plan);
                        bad++;
                }
        }
        assert_true(k > 20);
        assert_int_equal(bad, 0);
        db_close(db);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_migrates_empty_file, setup, teardown),
                cmocka_unit_test_setup_teardown(test_migration_3_keeps_rows_and_widens_gap_reasons, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reopen_is_idempotent, setup, teardown),
                cmocka_unit_test_setup_teardown(test_newer_schema_opens, setup, teardown),
                cmocka_unit_test_setup_teardown(test_shrunk_schema_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_corrupt_file_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_segment_lifecycle, setup, teardown),
                cmocka_unit_test_setup_teardown(test_segments_range, setup, teardown),
                cmocka_unit_test_setup_teardown(test_overlap_status_and_by_id, setup, teardown),
                cmocka_unit_test_setup_teardown(test_supervisor_state, setup, teardown),
                cmocka_unit_test_setup_teardown(test_segment_max_num, setup, teardown),
                cmocka_unit_test_setup_teardown(test_segment_nums, setup, teardown),
                cmocka_unit_test_setup_teardown(test_start_queries_read_only_an_index, setup, teardown),
                cmocka_unit_test_setup_teardown(test_callbacks_may_write, setup, teardown),
                cmocka_unit_test_setup_teardown(test_gaps, setup, teardown),
                cmocka_unit_test_setup_teardown(test_camera_upsert, setup, teardown),
                cmocka_unit_test_setup_teardown(test_camera_leases, setup, teardown),
                cmocka_unit_test_setup_teardown(test_two_connections_interleaved, setup, teardown),
                cmocka_unit_test_setup_teardown(test_concurrent_open_and_write, setup, teardown),
                cmocka_unit_test_setup_teardown(test_busy_after_timeout, setup, teardown),
                cmocka_unit_test_setup_teardown(test_new_files_are_0640_whatever_the_umask, setup, teardown),
                cmocka_unit_test_setup_teardown(test_wide_files_are_restricted_at_open, setup, teardown),
                cmocka_unit_test_setup_teardown(test_every_query_uses_an_index, setup, teardown),
                cmocka_unit_test_setup_teardown(test_total_bytes_is_kept_by_triggers, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
