/* db: SQLite adapter.  Owns one connection and every prepared statement it
 * runs (all prepared at open, which also proves the schema has each column
 * this binary needs).  Migrations are a static array of expand-only steps,
 * each applied in its own BEGIN IMMEDIATE transaction after re-reading
 * user_version inside it, so concurrent openers never apply a step twice.
 * SQLite result codes become negative errno here, nowhere else. */
#include "db/db.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Version N of the schema is steps 1..N.  Expand only: add tables, columns
 * (with defaults), indexes; never drop or rename, since an older worker may
 * share the file during a deploy. */
static const char *const migrations[] = {
        /* 1 */
        "CREATE TABLE cameras("
        "  id TEXT PRIMARY KEY, url TEXT NOT NULL, enabled INTEGER NOT NULL, updated_us INTEGER NOT NULL);"
        "CREATE TABLE video_segments("
        "  id INTEGER PRIMARY KEY, camera_id TEXT NOT NULL, instance_id TEXT NOT NULL,"
        "  path TEXT NOT NULL UNIQUE, segment_num INTEGER NOT NULL,"
        "  start_us INTEGER NOT NULL, end_us INTEGER NOT NULL,"
        "  frames INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,"
        "  keyframes INTEGER NOT NULL DEFAULT 0, fragments INTEGER NOT NULL DEFAULT 0,"
        "  status TEXT NOT NULL CHECK(status IN ('recording','complete','partial','corrupt')),"
        "  overlap_status TEXT NOT NULL DEFAULT 'unique'"
        "    CHECK(overlap_status IN ('unique','primary','duplicate','partial')),"
        "  time_source TEXT NOT NULL CHECK(time_source IN ('rtcp','receive')),"
        "  clock_offset_us INTEGER NOT NULL DEFAULT 0, pid INTEGER NOT NULL DEFAULT 0,"
        "  created_us INTEGER NOT NULL, updated_us INTEGER NOT NULL);"
        "CREATE INDEX video_segments_camera_start ON video_segments(camera_id, start_us);"
        "CREATE INDEX video_segments_camera_end ON video_segments(camera_id, end_us);"
        "CREATE INDEX video_segments_status ON video_segments(status);"
        "CREATE TABLE segment_frames("
        "  segment_id INTEGER PRIMARY KEY REFERENCES video_segments(id) ON DELETE CASCADE,"
        "  blob BLOB NOT NULL);"
        "CREATE TABLE gaps("
        "  id INTEGER PRIMARY KEY, camera_id TEXT NOT NULL, instance_id TEXT NOT NULL,"
        "  start_us INTEGER NOT NULL, end_us INTEGER NOT NULL,"
        "  reason TEXT NOT NULL CHECK(reason IN ('camera_down','recorder_start','recorder_stop','disk_full',"
        "    'clock_step','timestamp_jump','corrupt_input','crash')),"
        "  detail TEXT NOT NULL DEFAULT '', created_us INTEGER NOT NULL);"
        "CREATE INDEX gaps_camera_start ON gaps(camera_id, start_us);",
        /* 2: the supervisor's slots (so a restarted supervisor adopts its
         * workers) and its deploy history */
        "CREATE TABLE supervisor_slots("
        "  name TEXT PRIMARY KEY, port INTEGER NOT NULL, pid INTEGER NOT NULL DEFAULT 0,"
        "  instance_id TEXT NOT NULL, binary TEXT NOT NULL DEFAULT '', version TEXT NOT NULL DEFAULT '',"
        "  state TEXT NOT NULL DEFAULT 'stopped', active INTEGER NOT NULL DEFAULT 0,"
        "  started_us INTEGER NOT NULL DEFAULT 0, updated_us INTEGER NOT NULL);"
        "CREATE TABLE deploys("
        "  id INTEGER PRIMARY KEY, started_us INTEGER NOT NULL, finished_us INTEGER NOT NULL DEFAULT 0,"
        "  from_slot TEXT NOT NULL, to_slot TEXT NOT NULL, binary TEXT NOT NULL, version TEXT NOT NULL DEFAULT '',"
        "  result TEXT NOT NULL DEFAULT 'running' CHECK(result IN ('running','ok','failed')),"
        "  reason TEXT NOT NULL DEFAULT '');",
        /* 3: what each segment holds (a camera can change its stream: each
         * segment has one parameter set), and gap reasons for damaged input
         * (packet_loss), a planned camera handover (handover) and storage
         * that was not there (storage_unavailable).  SQLite
         * cannot widen a CHECK in place: the gaps table is rebuilt with the
         * same columns in this step's transaction (the documented 12-step
         * way); an older worker's statements re-prepare against it. */
        "ALTER TABLE video_segments ADD COLUMN video_codec TEXT NOT NULL DEFAULT '';"
        "ALTER TABLE video_segments ADD COLUMN width INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE video_segments ADD COLUMN height INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE video_segments ADD COLUMN audio_codec TEXT NOT NULL DEFAULT '';"
        "CREATE TABLE gaps_v3("
        "  id INTEGER PRIMARY KEY, camera_id TEXT NOT NULL, instance_id TEXT NOT NULL,"
        "  start_us INTEGER NOT NULL, end_us INTEGER NOT NULL,"
        "  reason TEXT NOT NULL CHECK(reason IN ('camera_down','recorder_start','recorder_stop','disk_full',"
        "    'clock_step','timestamp_jump','corrupt_input','crash','packet_loss','handover',"
        "    'storage_unavailable')),"
        "  detail TEXT NOT NULL DEFAULT '', created_us INTEGER NOT NULL);"
        "INSERT INTO gaps_v3(id, camera_id, instance_id, start_us, end_us, reason, detail, created_us) "
        "  SELECT id, camera_id, instance_id, start_us, end_us, reason, detail, created_us FROM gaps;"
        "DROP TABLE gaps;"
        "ALTER TABLE gaps_v3 RENAME TO gaps;"
        "CREATE INDEX gaps_camera_start ON gaps(camera_id, start_us);",
        /* 4: the disk guard's oldest-first walk over all cameras and the
         * gap prune by end: without these each round sorted the whole table
         * (a sweep of 100 000 rows deleted ~420 rows/s, slower as it grew). */
        "CREATE INDEX video_segments_start ON video_segments(start_us, id);"
        "CREATE INDEX gaps_end ON gaps(end_us);",
        /* 5: who of our instances holds each camera's RTSP session, so two
         * of them never fight over a camera that allows one session
         * (worker/recorder.c: standby).  One row per camera and instance;
         * a live holder refreshes heartbeat_us every second. */
        "CREATE TABLE camera_leases("
        "  camera_id TEXT NOT NULL, instance_id TEXT NOT NULL,"
        "  state TEXT NOT NULL CHECK(state IN ('connecting','recording','standby','released')),"
        "  since_us INTEGER NOT NULL, last_frame_us INTEGER NOT NULL DEFAULT 0, heartbeat_us INTEGER NOT NULL,"
        "  PRIMARY KEY(camera_id, instance_id));",
        /* 6: a one-session camera is remembered, whichever instance learnt it */
        "ALTER TABLE camera_leases ADD COLUMN limited_us INTEGER NOT NULL DEFAULT 0;",
        /* 7: the bytes of every segment kept as a running total by triggers,
         * so the disk guard's disk.max_total_gb check reads one row instead
         * of summing the whole archive every tick (16 million rows for 64
         * cameras over 30 days).  Triggers fire for every writer, an older
         * binary's too. */
        "CREATE TABLE segment_bytes_total(id INTEGER PRIMARY KEY CHECK(id = 1), bytes INTEGER NOT NULL);"
        "INSERT INTO segment_bytes_total VALUES(1, (SELECT COALESCE(SUM(bytes), 0) FROM video_segments));"
        "CREATE TRIGGER video_segments_bytes_insert AFTER INSERT ON video_segments BEGIN"
        "  UPDATE segment_bytes_total SET bytes = bytes + NEW.bytes WHERE id = 1; END;"
        "CREATE TRIGGER video_segments_bytes_update AFTER UPDATE OF bytes ON video_segments"
        "  WHEN NEW.bytes != OLD.bytes BEGIN"
        "  UPDATE segment_bytes_total SET bytes = bytes + NEW.bytes - OLD.bytes WHERE id = 1; END;"
        "CREATE TRIGGER video_segments_bytes_delete AFTER DELETE ON video_segments BEGIN"
        "  UPDATE segment_bytes_total SET bytes = bytes - OLD.bytes WHERE id = 1; END;",
        /* 8: what an instance numbered, served from one index: at every
         * start each camera's next segment_num (MAX over camera and
         * instance), and recovery's check of the recent day directories
         * against the index (a range of numbers, start_us read from the
         * index).  Through video_segments_camera_start alone both read
         * every row of the camera: 24 s of start-up for 64 cameras over
         * three days (tests/bench/archive_month.py). */
        "CREATE INDEX video_segments_camera_instance_num ON video_segments(camera_id, instance_id, segment_num, "
        "start_us);",
};
_Static_assert(ARRAY_SIZE(migrations) == DB_SCHEMA_VERSION, "one migration step per schema version");

#define SEGMENT_COLUMNS                                                                                 \
        "id, camera_id, instance_id, path, segment_num, start_us, end_us, frames, bytes, keyframes, " \
        "fragments, status, overlap_status, time_source, clock_offset_us, pid, created_us, updated_us, " \
        "video_codec, width, height, audio_codec"
#define GAP_COLUMNS "id, camera_id, instance_id, start_us, end_us, reason, detail, created_us"
/* [from, to) overlap; a zero-length row counts when it starts inside. */
#define OVERLAP "start_us < ?3 AND (end_us > ?2 OR start_us >= ?2)"

enum st {
        ST_BEGIN,
        ST_COMMIT,
        ST_ROLLBACK,
        ST_CHECK,
        ST_CAMERA_UPSERT,
        ST_SEGMENT_INSERT,
        ST_SEGMENT_UPDATE,
        ST_FRAMES_UPSERT,
        ST_SEGMENT_SET_STATUS,
        ST_SEGMENT_SET_OVERLAP,
        ST_SEGMENT_DELETE,
        ST_SEGMENTS_BY_STATUS,
        ST_SEGMENTS_RANGE,
        ST_SEGMENT_BY_PATH,
        ST_SEGMENT_BY_ID,
        ST_SEGMENT_FRAMES,
        ST_SEGMENT_MAX_NUM,
        ST_SEGMENT_NUMS,
        ST_SEGMENTS_OLDEST,
        ST_SEGMENTS_TOTAL_BYTES,
        ST_GAP_INSERT,
        ST_GAPS_PRUNE,
        ST_GAPS_RANGE_CAMERA,
        ST_GAPS_RANGE_ALL,
        ST_SLOT_SAVE,
        ST_SLOTS_ALL,
        ST_DEPLOY_BEGIN,
        ST_DEPLOY_FINISH,
        ST_DEPLOYS_RECENT,
        ST_LEASE_PUT,
        ST_LEASE_OTHER,
        ST_COUNT
};

static const char *const statements[ST_COUNT] = {
        [ST_BEGIN] = "BEGIN IMMEDIATE",
        [ST_COMMIT] = "COMMIT",
        [ST_ROLLBACK] = "ROLLBACK",
        [ST_CHECK] = "SELECT 1 FROM video_segments LIMIT 1",
        [ST_CAMERA_UPSERT] = "INSERT INTO cameras(id, url, enabled, updated_us) VALUES(?1, ?2, ?3, ?4) "
                             "ON CONFLICT(id) DO UPDATE SET url = excluded.url, enabled = excluded.enabled, "
                             "updated_us = excluded.updated_us",
        [ST_SEGMENT_INSERT] = "INSERT INTO video_segments(camera_id, instance_id, path, segment_num, start_us, "
                              "end_us, frames, bytes, keyframes, fragments, status, overlap_status, time_source, "
                              "clock_offset_us, pid, created_us, updated_us, video_codec, width, height, "
                              "audio_codec) "
                              "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'recording', ?11, ?12, ?13, ?14, "
                              "?15, ?16, ?17, ?18, ?19, ?20)",
        [ST_SEGMENT_UPDATE] = "UPDATE video_segments SET end_us = ?2, frames = ?3, bytes = ?4, keyframes = ?5, "
                              "fragments = ?6, status = COALESCE(?7, status), clock_offset_us = ?8, "
                              "updated_us = ?9 WHERE id = ?1 AND ?2 - start_us BETWEEN 0 AND ?10",
        [ST_FRAMES_UPSERT] = "INSERT INTO segment_frames(segment_id, blob) VALUES(?1, ?2) "
                             "ON CONFLICT(segment_id) DO UPDATE SET blob = excluded.blob",
        [ST_SEGMENT_SET_STATUS] = "UPDATE video_segments SET status = ?2 WHERE id = ?1",
        [ST_SEGMENT_SET_OVERLAP] = "UPDATE video_segments SET overlap_status = ?2 WHERE id = ?1",
        [ST_SEGMENT_DELETE] = "DELETE FROM video_segments WHERE id = ?1",
        [ST_SEGMENTS_BY_STATUS] = "SELECT " SEGMENT_COLUMNS " FROM video_segments WHERE status = ?1 "
                                  "ORDER BY start_us, id",
        [ST_SEGMENTS_RANGE] = "SELECT " SEGMENT_COLUMNS " FROM video_segments WHERE camera_id = ?1 AND "
                              "start_us >= ?6 AND " OVERLAP " ORDER BY start_us, id LIMIT ?4 OFFSET ?5",
        [ST_SEGMENT_BY_PATH] = "SELECT " SEGMENT_COLUMNS " FROM video_segments WHERE path = ?1",
        [ST_SEGMENT_BY_ID] = "SELECT " SEGMENT_COLUMNS " FROM video_segments WHERE id = ?1",
        [ST_SEGMENT_FRAMES] = "SELECT blob FROM segment_frames WHERE segment_id = ?1",
        [ST_SEGMENT_MAX_NUM] = "SELECT coalesce(max(segment_num), 0) FROM video_segments "
                               "WHERE camera_id = ?1 AND instance_id = ?2",
        [ST_SEGMENT_NUMS] = "SELECT segment_num, start_us FROM video_segments WHERE camera_id = ?1 AND "
                            "instance_id = ?2 AND segment_num BETWEEN ?3 AND ?4 ORDER BY segment_num "
                            "LIMIT ?5 OFFSET ?6",
        [ST_SEGMENTS_OLDEST] = "SELECT " SEGMENT_COLUMNS " FROM video_segments WHERE status != 'recording' "
                               "ORDER BY start_us, id LIMIT ?1",
        [ST_SEGMENTS_TOTAL_BYTES] = "SELECT bytes FROM segment_bytes_total WHERE id = 1",
        [ST_GAPS_PRUNE] = "DELETE FROM gaps WHERE rowid IN (SELECT rowid FROM gaps WHERE end_us < ?1 LIMIT ?2)",
        [ST_LEASE_PUT] = "INSERT INTO camera_leases(camera_id, instance_id, state, since_us, last_frame_us, heartbeat_us, "
                         "limited_us) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(camera_id, instance_id) DO UPDATE SET "
                         "state = excluded.state, since_us = excluded.since_us, "
                         "last_frame_us = MAX(last_frame_us, excluded.last_frame_us), heartbeat_us = excluded.heartbeat_us, "
                         "limited_us = CASE WHEN limited_us > 0 THEN limited_us ELSE excluded.limited_us END",
        /* the other instances' rows, a live holder first, then the latest */
        [ST_LEASE_OTHER] = "SELECT instance_id, state, since_us, last_frame_us, heartbeat_us, "
                           "(SELECT COALESCE(MIN(NULLIF(limited_us, 0)), 0) FROM camera_leases WHERE camera_id = ?1) "
                           "FROM camera_leases "
                           "WHERE camera_id = ?1 AND instance_id != ?2 ORDER BY "
                           "(state IN ('connecting','recording') AND heartbeat_us >= ?3) DESC, heartbeat_us DESC LIMIT 1",
        [ST_GAP_INSERT] = "INSERT INTO gaps(camera_id, instance_id, start_us, end_us, reason, detail, created_us) "
                          "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        [ST_GAPS_RANGE_CAMERA] = "SELECT " GAP_COLUMNS " FROM gaps WHERE camera_id = ?1 AND " OVERLAP
                                 " ORDER BY start_us, id LIMIT ?4 OFFSET ?5",
        [ST_SLOT_SAVE] = "INSERT INTO supervisor_slots(name, port, pid, instance_id, binary, version, state, active, "
                         "started_us, updated_us) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
                         "ON CONFLICT(name) DO UPDATE SET port = excluded.port, pid = excluded.pid, "
                         "instance_id = excluded.instance_id, binary = excluded.binary, version = excluded.version, "
                         "state = excluded.state, active = excluded.active, started_us = excluded.started_us, "
                         "updated_us = excluded.updated_us",
        [ST_SLOTS_ALL] = "SELECT name, port, pid, instance_id, binary, version, state, active, started_us, updated_us "
                         "FROM supervisor_slots ORDER BY name",
        [ST_DEPLOY_BEGIN] = "INSERT INTO deploys(started_us, from_slot, to_slot, binary, version) "
                            "VALUES(?1, ?2, ?3, ?4, ?5)",
        [ST_DEPLOY_FINISH] = "UPDATE deploys SET result = ?2, reason = ?3, finished_us = ?4 WHERE id = ?1",
        [ST_DEPLOYS_RECENT] = "SELECT id, started_us, finished_us, from_slot, to_slot, binary, version, result, reason "
                              "FROM deploys ORDER BY id DESC LIMIT ?1",
        /* end_us >= from lets gaps_end serve it (the OVERLAP's OR alone scans every gap) */
        [ST_GAPS_RANGE_ALL] = "SELECT " GAP_COLUMNS " FROM gaps WHERE end_us >= ?2 AND " OVERLAP
                              " ORDER BY start_us, id LIMIT ?4 OFFSET ?5",
};

struct db {
        sqlite3 *sql;
        sqlite3_stmt *st[ST_COUNT];
        char errmsg[DB_ERRMSG_MAX];
        char *row_text; /* db_segment_by_path's strings */
        size_t row_text_cap;
};

/* ---- errors ----------------------------------------------------------------- */

static int db_fail_msg(struct db *db, int err, const char *msg)
{
        snprintf(db->errmsg, sizeof(db->errmsg), "%s", msg);
        return err;
}

/* Remember SQLite's message and turn its (extended) result code into -errno. */
static int db_fail(struct db *db, int rc)
{
        int sys;

        snprintf(db->errmsg, sizeof(db->errmsg), "%s", sqlite3_errmsg(db->sql));
        switch (rc & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EUCLEAN;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_CONSTRAINT:
                return rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY ? -EEXIST : -EINVAL;
        case SQLITE_TOOBIG:
                return -E2BIG;
        case SQLITE_READONLY:
                return -EROFS;
        case SQLITE_INTERRUPT:
                return -EINTR;
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return -EACCES;
        case SQLITE_CANTOPEN:
        case SQLITE_IOERR:
                sys = sqlite3_system_errno(db->sql);
                return sys > 0 ? -sys : -EIO;
        default:
                return -EIO;
        }
}

const char *db_errmsg(const struct db *db)
{
        return db->errmsg;
}

/* ---- statements ------------------------------------------------------------- */

static bool text_ok(const char *s)
{
        return s && strnlen(s, DB_TEXT_MAX + 1) <= DB_TEXT_MAX;
}

/* The cached statement i, unless a callback of the same query is running. */
static int st_get(struct db *db, enum st i, sqlite3_stmt **s)
{
        if (sqlite3_stmt_busy(db->st[i]))
                return db_fail_msg(db, -EDEADLK, "query re-entered from its own callback");
        *s = db->st[i];
        return 0;
}

static void st_release(sqlite3_stmt *s)
{
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
}

/* Step a bound statement that returns no rows, then release it. */
static int st_run(struct db *db, sqlite3_stmt *s)
{
        int rc = sqlite3_step(s), r = rc == SQLITE_DONE ? 0 : db_fail(db, rc);

        st_release(s);
        return r;
}

static int st_exec(struct db *db, enum st i)
{
        sqlite3_stmt *s;
        int r = st_get(db, i, &s);

        return r < 0 ? r : st_run(db, s);
}

static int bind_text(sqlite3_stmt *s, int i, const char *t)
{
        return t ? sqlite3_bind_text(s, i, t, -1, SQLITE_STATIC) : sqlite3_bind_null(s, i);
}

/* Bind errors are SQLITE_NOMEM or SQLITE_RANGE (a bug); release and map. */
static int bind_fail(struct db *db, sqlite3_stmt *s, int rc)
{
        int r = db_fail(db, rc);

        st_release(s);
        return r;
}

static int tx_begin(struct db *db)
{
        return st_exec(db, ST_BEGIN);
}

/* Commit when r is 0, else (or if the commit fails) roll back; returns r or
 * the commit error.  The first error's message stays in db_errmsg. */
static int tx_end(struct db *db, int r)
{
        if (r == 0)
                r = st_exec(db, ST_COMMIT);
        if (r < 0 && !sqlite3_get_autocommit(db->sql)) {
                sqlite3_stmt *s = db->st[ST_ROLLBACK];
                sqlite3_step(s); /* SQLite may have rolled back already; nothing to add */
                sqlite3_reset(s);
        }
        return r;
}

/* ---- open, migrate, close --------------------------------------------------- */

static int pragma_int(struct db *db, const char *sql, int64_t *v)
{
        sqlite3_stmt *s = NULL;
        int rc = sqlite3_prepare_v2(db->sql, sql, -1, &s, NULL), r = 0;

        if (rc != SQLITE_OK)
                return db_fail(db, rc);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW)
                *v = sqlite3_column_int64(s, 0);
        else
                r = db_fail(db, rc == SQLITE_DONE ? SQLITE_ERROR : rc);
        sqlite3_finalize(s);
        return r;
}

static int exec_sql(struct db *db, const char *sql)
{
        int rc = sqlite3_exec(db->sql, sql, NULL, NULL, NULL);

        return rc == SQLITE_OK ? 0 : db_fail(db, rc);
}

static int db_set_wal(struct db *db)
{
        sqlite3_stmt *s = NULL;
        const char *mode;
        int rc = sqlite3_prepare_v2(db->sql, "PRAGMA journal_mode=WAL", -1, &s, NULL), r = 0;

        if (rc != SQLITE_OK)
                return db_fail(db, rc);
        /* Switching a new file to WAL while another process opens it can
         * answer SQLITE_BUSY without consulting the busy handler (seen with
         * two workers started together): retry for the busy timeout. */
        for (int tries = 0; (rc = sqlite3_step(s)) == SQLITE_BUSY && tries < DB_BUSY_TIMEOUT_MS / 20; tries++) {
                sqlite3_reset(s);
                sqlite3_sleep(20);
        }
        if (rc != SQLITE_ROW) {
                r = db_fail(db, rc);
        } else {
                mode = (const char *)sqlite3_column_text(s, 0);
                if (!mode || (strcmp(mode, "wal") && strcmp(mode, "memory")))
                        r = db_fail_msg(db, -EOPNOTSUPP, "journal_mode=WAL refused (file system?)");
        }
        sqlite3_finalize(s);
        return r;
}

/* Apply step `version` unless another process did; one transaction. */
static int db_migrate_step(struct db *db, int64_t version)
{
        int64_t current;
        char sql[64];
        int r;

        if ((r = exec_sql(db, "BEGIN IMMEDIATE")) < 0)
                return r;
        if ((r = pragma_int(db, "PRAGMA user_version", &current)) == 0 && current < version) {
                snprintf(sql, sizeof(sql), "PRAGMA user_version = %lld", (long long)version);
                if (current != version - 1)
                        r = db_fail_msg(db, -EPROTO, "user_version went backwards during migration");
                else if ((r = exec_sql(db, migrations[version - 1])) == 0)
                        r = exec_sql(db, sql);
        }
        if (r == 0)
                r = exec_sql(db, "COMMIT");
        if (r < 0 && !sqlite3_get_autocommit(db->sql))
                sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
        return r;
}

static int db_migrate(struct db *db)
{
        int64_t current;
        int r;

        if ((r = pragma_int(db, "PRAGMA user_version", &current)) < 0)
                return r;
        for (int64_t v = current + 1; v <= DB_SCHEMA_VERSION; v++)
                if ((r = db_migrate_step(db, v)) < 0)
                        return r;
        return 0; /* a higher version is a newer binary's expansion: fine */
}

static int db_prepare_all(struct db *db)
{
        for (size_t i = 0; i < ST_COUNT; i++) {
                int rc = sqlite3_prepare_v3(db->sql, statements[i], -1, SQLITE_PREPARE_PERSISTENT, &db->st[i],
                                            NULL);
                if (rc != SQLITE_OK)
                        return (rc & 0xff) == SQLITE_ERROR ? db_fail_msg(db, -EPROTO, sqlite3_errmsg(db->sql))
                                                           : db_fail(db, rc);
        }
        return 0;
}

/* The index names every camera and recording: the group may read it, others
 * nothing.  SQLite would create the file 0644 & ~umask, and gives its -wal
 * and -shm the database's own mode, so the database's mode decides all three. */
#define DB_FILE_MODE 0640
#define DB_FILE_FORBIDDEN (S_IWGRP | S_IRWXO)

/* Takes the forbidden bits off one of our files that has them (made by an
 * older mwr, or by hand); another user's file is theirs to mind.  By path,
 * never through an fd of ours: closing one would drop the POSIX locks this
 * process's other connections hold on the file. */
static void db_file_restrict(const char *path)
{
        struct stat st;

        if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
            (st.st_mode & DB_FILE_FORBIDDEN))
                (void)chmod(path, st.st_mode & 07777 & ~DB_FILE_FORBIDDEN);
}

/* Creates the database DB_FILE_MODE if it is not there (an empty file is a
 * new database to SQLite; no connection can hold a lock on a file just
 * made), else restricts it, and its -wal and -shm, if they are wider.  Best
 * effort: what fails here is sqlite3_open_v2's to report, as it always did. */
static void db_files_prepare(const char *path)
{
        static const char *const sidecars[] = { "-wal", "-shm" };
        char p[PATH_MAX];
        int fd;

        if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, DB_FILE_MODE)) >= 0) {
                close(fd);
                return;
        }
        if (errno != EEXIST)
                return;
        db_file_restrict(path);
        for (size_t i = 0; i < ARRAY_SIZE(sidecars); i++)
                if (snprintf(p, sizeof(p), "%s%s", path, sidecars[i]) < (int)sizeof(p))
                        db_file_restrict(p);
}

int db_open(const char *path, struct db **out)
{
        struct db *db;
        int rc, r;

        *out = NULL;
        if (!text_ok(path))
                return -EINVAL;
        if (!(db = calloc(1, sizeof(*db))))
                return -ENOMEM;
        db_files_prepare(path);
        rc = sqlite3_open_v2(path, &db->sql, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
        if (!db->sql) {
                free(db);
                return -ENOMEM;
        }
        if (rc != SQLITE_OK) {
                r = db_fail(db, rc);
                goto fail;
        }
        sqlite3_extended_result_codes(db->sql, 1);
        if ((r = db_set_busy_timeout_ms(db, DB_BUSY_TIMEOUT_MS)) < 0 || (r = db_set_wal(db)) < 0 ||
            (r = exec_sql(db, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON")) < 0 ||
            (r = db_migrate(db)) < 0 || (r = db_prepare_all(db)) < 0)
                goto fail;
        *out = db;
        return 0;
fail:
        db_close(db);
        return r;
}

void db_close(struct db *db)
{
        if (!db)
                return;
        for (size_t i = 0; i < ST_COUNT; i++)
                sqlite3_finalize(db->st[i]);
        sqlite3_close(db->sql);
        free(db->row_text);
        free(db);
}

int db_set_busy_timeout_ms(struct db *db, int timeout_ms)
{
        int rc;

        if (timeout_ms < 0)
                return -EINVAL;
        rc = sqlite3_busy_timeout(db->sql, timeout_ms);
        return rc == SQLITE_OK ? 0 : db_fail(db, rc);
}

int db_explain(struct db *db, size_t k, const char **sql, char *plan, size_t len)
{
        sqlite3_stmt *s;
        char q[1024];
        size_t used = 0;
        int rc;

        if (k >= ST_COUNT)
                return -ENOENT;
        *sql = statements[k];
        plan[0] = '\0';
        if (snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", statements[k]) >= (int)sizeof(q))
                return db_fail_msg(db, -ENAMETOOLONG, "statement too long to explain");
        if ((rc = sqlite3_prepare_v2(db->sql, q, -1, &s, NULL)) != SQLITE_OK)
                return db_fail(db, rc);
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                const unsigned char *d = sqlite3_column_text(s, 3);
                int n = snprintf(plan + used, len - used, "%s%s", used ? "; " : "", d ? (const char *)d : "");

                if (n < 0 || (size_t)n >= len - used)
                        break;
                used += (size_t)n;
        }
        sqlite3_finalize(s);
        return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : db_fail(db, rc);
}

int db_check(struct db *db)
{
        sqlite3_stmt *s;
        int rc, r;

        if ((r = st_get(db, ST_CHECK, &s)) < 0)
                return r;
        rc = sqlite3_step(s);
        r = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_fail(db, rc);
        st_release(s);
        return r;
}

/* ---- cameras ------------------------------------------------------------------ */

int db_camera_upsert(struct db *db, const char *id, const char *url, bool enabled, int64_t now_us)
{
        sqlite3_stmt *s;
        int rc, r;

        if (!text_ok(id) || !text_ok(url))
                return db_fail_msg(db, -EINVAL, "camera id or url missing or too long");
        if ((r = st_get(db, ST_CAMERA_UPSERT, &s)) < 0)
                return r;
        if ((rc = bind_text(s, 1, id)) || (rc = bind_text(s, 2, url)) || (rc = sqlite3_bind_int(s, 3, enabled)) ||
            (rc = sqlite3_bind_int64(s, 4, now_us)))
                return bind_fail(db, s, rc);
        return st_run(db, s);
}

/* ---- segments ----------------------------------------------------------------- */

static bool span_ok(int64_t start_us, int64_t end_us)
{
        return end_us >= start_us && (uint64_t)end_us - (uint64_t)start_us <= (uint64_t)DB_SEGMENT_SPAN_MAX_US;
}

int db_segment_begin(struct db *db, const struct db_segment *seg, int64_t *id)
{
        sqlite3_stmt *s;
        int rc, r;

        if (!text_ok(seg->camera_id) || !text_ok(seg->instance_id) || !text_ok(seg->path) ||
            !text_ok(seg->time_source) || (seg->overlap_status && !text_ok(seg->overlap_status)))
                return db_fail_msg(db, -EINVAL, "segment text field missing or too long");
        if (!span_ok(seg->start_us, seg->end_us))
                return db_fail_msg(db, -ERANGE, "segment end before start or beyond DB_SEGMENT_SPAN_MAX_US");
        if ((r = st_get(db, ST_SEGMENT_INSERT, &s)) < 0)
                return r;
        if ((rc = bind_text(s, 1, seg->camera_id)) || (rc = bind_text(s, 2, seg->instance_id)) ||
            (rc = bind_text(s, 3, seg->path)) || (rc = sqlite3_bind_int64(s, 4, seg->segment_num)) ||
            (rc = sqlite3_bind_int64(s, 5, seg->start_us)) || (rc = sqlite3_bind_int64(s, 6, seg->end_us)) ||
            (rc = sqlite3_bind_int64(s, 7, seg->frames)) || (rc = sqlite3_bind_int64(s, 8, seg->bytes)) ||
            (rc = sqlite3_bind_int64(s, 9, seg->keyframes)) || (rc = sqlite3_bind_int64(s, 10, seg->fragments)) ||
            (rc = bind_text(s, 11, seg->overlap_status ? seg->overlap_status : "unique")) ||
            (rc = bind_text(s, 12, seg->time_source)) || (rc = sqlite3_bind_int64(s, 13, seg->clock_offset_us)) ||
            (rc = sqlite3_bind_int64(s, 14, seg->pid)) || (rc = sqlite3_bind_int64(s, 15, seg->created_us)) ||
            (rc = sqlite3_bind_int64(s, 16, seg->updated_us)) ||
            (rc = bind_text(s, 17, seg->video_codec ? seg->video_codec : "")) ||
            (rc = sqlite3_bind_int64(s, 18, seg->width)) || (rc = sqlite3_bind_int64(s, 19, seg->height)) ||
            (rc = bind_text(s, 20, seg->audio_codec ? seg->audio_codec : "")))
                return bind_fail(db, s, rc);
        if ((r = st_run(db, s)) < 0)
                return r;
        *id = sqlite3_last_insert_rowid(db->sql);
        return 0;
}

static int segment_update_row(struct db *db, const struct db_segment *seg)
{
        sqlite3_stmt *s;
        int rc, r;

        if ((r = st_get(db, ST_SEGMENT_UPDATE, &s)) < 0)
                return r;
        if ((rc = sqlite3_bind_int64(s, 1, seg->id)) || (rc = sqlite3_bind_int64(s, 2, seg->end_us)) ||
            (rc = sqlite3_bind_int64(s, 3, seg->frames)) || (rc = sqlite3_bind_int64(s, 4, seg->bytes)) ||
            (rc = sqlite3_bind_int64(s, 5, seg->keyframes)) || (rc = sqlite3_bind_int64(s, 6, seg->fragments)) ||
            (rc = bind_text(s, 7, seg->status)) || (rc = sqlite3_bind_int64(s, 8, seg->clock_offset_us)) ||
            (rc = sqlite3_bind_int64(s, 9, seg->updated_us)) ||
            (rc = sqlite3_bind_int64(s, 10, DB_SEGMENT_SPAN_MAX_US)))
                return bind_fail(db, s, rc);
        if ((r = st_run(db, s)) < 0)
                return r;
        if (sqlite3_changes(db->sql) == 0)
                return db_fail_msg(db, -ENOENT, "no such segment, or seg->start_us is not its start");
        return 0;
}

static int segment_frames_store(struct db *db, int64_t id, const void *blob, size_t len)
{
        sqlite3_stmt *s;
        int rc, r;

        if ((r = st_get(db, ST_FRAMES_UPSERT, &s)) < 0)
                return r;
        if ((rc = sqlite3_bind_int64(s, 1, id)) || (rc = sqlite3_bind_blob(s, 2, blob, (int)len, SQLITE_STATIC)))
                return bind_fail(db, s, rc);
        return st_run(db, s);
}

int db_segment_update(struct db *db, const struct db_segment *seg, const void *blob, size_t len)
{
        int r;

        if (seg->status && !text_ok(seg->status))
                return db_fail_msg(db, -EINVAL, "segment status too long");
        if (!span_ok(seg->start_us, seg->end_us))
                return db_fail_msg(db, -ERANGE, "segment end before start or beyond DB_SEGMENT_SPAN_MAX_US");
        if (blob && len > DB_BLOB_MAX)
                return db_fail_msg(db, -E2BIG, "frame index larger than DB_BLOB_MAX");
        if ((r = tx_begin(db)) < 0)
                return r;
        r = segment_update_row(db, seg);
        if (r == 0 && blob)
                r = segment_frames_store(db, seg->id, blob, len);
        return tx_end(db, r);
}

/* Run a one-row statement on id; -ENOENT when it touched nothing. */
static int segment_change(struct db *db, enum st i, int64_t id, const char *text)
{
        sqlite3_stmt *s;
        int rc, r;

        if ((r = st_get(db, i, &s)) < 0)
                return r;
        if ((rc = sqlite3_bind_int64(s, 1, id)) || (text && (rc = bind_text(s, 2, text))))
                return bind_fail(db, s, rc);
        if ((r = st_run(db, s)) < 0)
                return r;
        return sqlite3_changes(db->sql) ? 0 : db_fail_msg(db, -ENOENT, "no such segment");
}

int db_segment_set_status(struct db *db, int64_t id, const char *status)
{
        if (!text_ok(status))
                return db_fail_msg(db, -EINVAL, "segment status missing or too long");
        return segment_change(db, ST_SEGMENT_SET_STATUS, id, status);
}

int db_segment_set_overlap(struct db *db, int64_t id, const char *overlap_status)
{
        if (!text_ok(overlap_status))
                return db_fail_msg(db, -EINVAL, "overlap status missing or too long");
        return segment_change(db, ST_SEGMENT_SET_OVERLAP, id, overlap_status);
}

int db_segment_delete(struct db *db, int64_t id)
{
        return segment_change(db, ST_SEGMENT_DELETE, id, NULL);
}

int db_segments_delete(struct db *db, const int64_t *ids, size_t n)
{
        int r = tx_begin(db);

        for (size_t i = 0; i < n && r == 0; i++)
                if ((r = segment_change(db, ST_SEGMENT_DELETE, ids[i], NULL)) == -ENOENT)
                        r = 0; /* another instance was first */
        return tx_end(db, r);
}

static const char *column_text(sqlite3_stmt *s, int i)
{
        const unsigned char *t = sqlite3_column_text(s, i);

        return t ? (const char *)t : "";
}

static void segment_from_row(sqlite3_stmt *s, struct db_segment *seg)
{
        *seg = (struct db_segment){
                .id = sqlite3_column_int64(s, 0),
                .camera_id = column_text(s, 1),
                .instance_id = column_text(s, 2),
                .path = column_text(s, 3),
                .segment_num = sqlite3_column_int64(s, 4),
                .start_us = sqlite3_column_int64(s, 5),
                .end_us = sqlite3_column_int64(s, 6),
                .frames = sqlite3_column_int64(s, 7),
                .bytes = sqlite3_column_int64(s, 8),
                .keyframes = sqlite3_column_int64(s, 9),
                .fragments = sqlite3_column_int64(s, 10),
                .status = column_text(s, 11),
                .overlap_status = column_text(s, 12),
                .time_source = column_text(s, 13),
                .clock_offset_us = sqlite3_column_int64(s, 14),
                .pid = sqlite3_column_int64(s, 15),
                .created_us = sqlite3_column_int64(s, 16),
                .updated_us = sqlite3_column_int64(s, 17),
                .video_codec = column_text(s, 18),
                .width = (int)sqlite3_column_int64(s, 19),
                .height = (int)sqlite3_column_int64(s, 20),
                .audio_codec = column_text(s, 21),
        };
}

static void gap_from_row(sqlite3_stmt *s, struct db_gap *gap)
{
        *gap = (struct db_gap){
                .id = sqlite3_column_int64(s, 0),
                .camera_id = column_text(s, 1),
                .instance_id = column_text(s, 2),
                .start_us = sqlite3_column_int64(s, 3),
                .end_us = sqlite3_column_int64(s, 4),
                .reason = column_text(s, 5),
                .detail = column_text(s, 6),
                .created_us = sqlite3_column_int64(s, 7),
        };
}

/* Step a bound query, handing each row to the segment or the gap callback. */
static int rows_each(struct db *db, sqlite3_stmt *s, db_segment_cb seg_cb, db_gap_cb gap_cb, void *ctx)
{
        int rc, r = 0;

        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                if (seg_cb) {
                        struct db_segment seg;
                        segment_from_row(s, &seg);
                        r = seg_cb(&seg, ctx);
                } else {
                        struct db_gap gap;
                        gap_from_row(s, &gap);
                        r = gap_cb(&gap, ctx);
                }
                if (r)
                        break;
        }
        if (!r && rc != SQLITE_DONE)
                r = db_fail(db, rc);
        st_release(s);
        return r;
}

int db_segments_by_status(struct db *db, const char *status, db_segment_cb cb, void *ctx)
{
        sqlite3_stmt *s;
        int rc, r;

        if (!text_ok(status) || !cb)
                return db_fail_msg(db, -EINVAL, "status or callback missing");
        if ((r = st_get(db, ST_SEGMENTS_BY_STATUS, &s)) < 0)
                return r;
        if ((rc = bind_text(s, 1, status)))
                return bind_fail(db, s, rc);
        return rows_each(db, s, cb, NULL, ctx);
}

static int range_check(struct db *db, int64_t from_us, int64_t to_us, int64_t limit, int64_t offset)
{
        if (from_us >= to_us)
                return db_fail_msg(db, -EINVAL, "empty time range");
        if (limit < 1 || limit > DB_QUERY_LIMIT_MAX || offset < 0)
                return db_fail_msg(db, -EINVAL, "limit outside 1..DB_QUERY_LIMIT_MAX or negative offset");
        return 0;
}

static int range_bind(sqlite3_stmt *s, int64_t from_us, int64_t to_us, int64_t limit, int64_t offset)
{
        int rc;

        if ((rc = sqlite3_bind_int64(s, 2, from_us)) || (rc = sqlite3_bind_int64(s, 3, to_us)) ||
            (rc = sqlite3_bind_int64(s, 4, limit)) || (rc = sqlite3_bind_int64(s, 5, offset)))
                return rc;
        return SQLITE_OK;
}

int db_segments_range(struct db *db, const char *camera_id, int64_t from_us, int64_t to_us, int64_t limit,
                      int64_t offset, db_segment_cb cb, void *ctx)
{
        int64_t lowest_us = from_us > INT64_MIN + DB_SEGMENT_SPAN_MAX_US ? from_us - DB_SEGMENT_SPAN_MAX_US
                                                                          : INT64_MIN;
        sqlite3_stmt *s;
        int rc, r;

        if (!text_ok(camera_id) || !cb)
                return db_fail_msg(db, -EINVAL, "camera id or callback missing");
        if ((r = range_check(db, from_us, to_us, limit, offset)) < 0 || (r = st_get(db, ST_SEGMENTS_RANGE, &s)) < 0)
                return r;
        if ((rc = bind_text(s, 1, camera_id)) || (rc = range_bind(s, from_us, to_us, limit, offset)) ||
            (rc = sqlite3_bind_int64(s, 6, lowest_us)))
                return bind_fail(db, s, rc);
        return rows_each(db, s, cb, NULL, ctx);
}

/* Copy the row's strings into db->row_text so the statement can be reset. */
static int segment_keep_strings(struct db *db, struct db_segment *seg)
{
        const char **fields[] = { &seg->camera_id, &seg->instance_id, &seg->path,
                                  &seg->status, &seg->overlap_status, &seg->time_source };
        size_t need = 0, pos = 0;

        for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
                need += strlen(*fields[i]) + 1;
        if (need > db->row_text_cap) {
                char *p = realloc(db->row_text, need);
                if (!p)
                        return db_fail_msg(db, -ENOMEM, "out of memory");
                db->row_text = p;
                db->row_text_cap = need;
        }
        for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
                size_t l = strlen(*fields[i]) + 1;
                memcpy(db->row_text + pos, *fields[i], l);
                *fields[i] = db->row_text + pos;
                pos += l;
        }
        return 0;
}

static int segment_one(struct db *db, sqlite3_stmt *s, struct db_segment *out)
{
        int rc = sqlite3_step(s), r;

        if (rc == SQLITE_ROW) {
                segment_from_row(s, out);
                r = segment_keep_strings(db, out);
        } else {
                r = rc == SQLITE_DONE ? db_fail_msg(db, -ENOENT, "no such segment") : db_fail(db, rc);
        }
        st_release(s);
        return r;
}

int db_segment_by_path(struct db *db, const char *path, struct db_segment *out)
{
        sqlite3_stmt *s;
        int rc, r;

        if (!text_ok(path))
                return db_fail_msg(db, -EINVAL, "path missing or too long");
        if ((r = st_get(db, ST_SEGMENT_BY_PATH, &s)) < 0)
                return r;
        if ((rc = bind_text(s, 1, path)))
                return bind_fail(db, s, rc);
        return segment_one(db, s, out);
}

int db_segment_by_id(struct db *db, int64_t id, struct db_segment *out)
{
        sqlite3_stmt *s;
        int rc, r;

        if ((r = st_get(db, ST_SEGMENT_BY_ID, &s)) < 0)
                return r;
        if ((rc = sqlite3_bind_int64(s, 1, id)))
                return bind_fail(db, s, rc);
        return segment_one(db, s, out);
}

int db_segment_frames(struct db *db, int64_t id, void **blob, size_t *len)
{
        sqlite3_stmt *s;
        const void *p;
        int rc, r = 0, n;

        *blob = NULL;
        *len = 0;
        if ((r = st_get(db, ST_SEGMENT_FRAMES, &s)) < 0)
                return r;
        if ((rc = sqlite3_bind_int64(s, 1, id)))
                return bind_fail(db, s, rc);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
                p = sqlite3_column_blob(s, 0);
                n = sqlite3_column_bytes(s, 0);
                if (n > 0 && !p)
                        r = db_fail(db, sqlite3_errcode(db->sql));
                else if ((size_t)n > DB_BLOB_MAX)
                        r = db_fail_msg(db, -E2BIG, "stored frame index larger than DB_BLOB_MAX");
                else if (!(*blob = malloc(n ? (size_t)n : 1)))
                        r = db_fail_msg(db, -ENOMEM, "out of memory");
                else {
                        if (n)
                                memcpy(*blob, p, (size_t)n);
                        *len = (size_t)n;
                }
        } else {
                r = rc == SQLITE_DONE ? db_fail_msg(db, -ENOENT, "segment has no frame index") : db_fail(db, rc);
        }
        st_release(s);
        return r;
}

int db_segment_max_num(struct db *db, const char *camera_id, const char *instance_id, int64_t *num)
{
        sqlite3_stmt *s;
        int rc, r;

        if (!text_ok(camera_id) || !text_ok(instance_id))
                return db_fail_msg(db, -EINVAL, "camera or instance id missing or too long");
        if ((r = st_get(db, ST_SEGMENT_MAX_NUM, &s)) < 0)
                return r;
        if ((rc = bind_text(s, 1, camera_id)) || (rc = bind_text(s, 2, instance_id)))
                return bind_fail(db, s, rc);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW)
                *num = sqlite3_column_int64(s, 0);
        r = rc == SQLITE_ROW ? 0 : db_fail(db, rc);
        st_release(s);
        return r;
}

int db_segment_nums(struct db *db, const char *camera_id, const char *instance_id, int64_t lo_num, int64_t hi_num,
                    int64_t limit, int64_t offset, db_num_cb cb, void *ctx)
{
        sqlite3_stmt *s;
        int rc, r = 0;

        if (!text_ok(camera_id) || !text_ok(instance_id) || !cb)
                return db_fail_msg(db, -EINVAL, "camera or instance id missing or too long, or callback missing");
        if (limit < 1 || limit > DB_QUERY_LIMIT_MAX || offset < 0)
                return db_fail_msg(db, -EINVAL, "limit outside 1..DB_QUERY_LIMIT_MAX or negative offset");
        if ((r = st_get(db, ST_SEGMENT_NUMS, &s)) < 0)
                return r;
        if ((rc = bind_text(s, 1, camera_id)) || (rc = bind_text(s, 2, instance_id)) ||
            (rc = sqlite3_bind_int64(s, 3, lo_num)) || (rc = sqlite3_bind_int64(s, 4, hi_num)) ||
            (rc = sqlite3_bind_int64(s, 5, limit)) || (rc = sqlite3_bind_int64(s, 6, offset)))
                return bind_fail(db, s, rc);
        while ((rc = sqlite3_step(s)) == SQLITE_ROW)
                if ((r = cb(sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1), ctx)))
                        break;
        if (!r && rc != SQLITE_DONE)
                r = db_fail(db, rc);
        st_release(s);
        return r;
}

int db_segments_oldest(struct db *db, int64_t limit, db_segment_cb cb, void *ctx)
{
        sqlite3_stmt *s;
        int rc, r;

        if (limit < 1 || limit > DB_QUERY_LIMIT_MAX || !cb)
                return db_fail_msg(db, -EINVAL, "limit outside 1..DB_QUERY_LIMIT_MAX or callback missing");
        if ((r = st_get(db, ST_SEGMENTS_OLDEST, &s)) < 0)
                return r;
        if ((rc = sqlite3_bind_int64(s, 1, limit)))
                return bind_fail(db, s, rc);
        return rows_each(db, s, cb, NULL, ctx);
}

int db_segments_total_bytes(struct db *db, int64_t *bytes)
{
        sqlite3_stmt *s;
        int rc, r;

        if ((r = st_get(db, ST_SEGMENTS_TOTAL_BYTES, &s)) < 0)
                return r;
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW)
                *bytes = sqlite3_column_int64(s, 0);
        r = rc == SQLITE_ROW ? 0 : db_fail(db, rc);
        st_release(s);
        return r;
}

/* ---- camera leases ------------------------------------------------------------------ */

int db_lease_put(struct db *db, const struct db_lease *l)
{
        sqlite3_stmt *s;
        int rc, r;

        if (!text_ok(l->camera_id) || !text_ok(l->instance_id) || !text_ok(l->state))
                return db_fail_msg(db, -EINVAL, "lease text field missing or too long");
        if ((r = st_get(db, ST_LEASE_PUT, &s)) < 0)
                return r;
        if ((rc = bind_text(s, 1, l->camera_id)) || (rc = bind_text(s, 2, l->instance_id)) ||
            (rc = bind_text(s, 3, l->state)) || (rc = sqlite3_bind_int64(s, 4, l->since_us)) ||
            (rc = sqlite3_bind_int64(s, 5, l->last_frame_us)) || (rc = sqlite3_bind_int64(s, 6, l->heartbeat_us)) ||
            (rc = sqlite3_bind_int64(s, 7, l->limited_us)))
                return bind_fail(db, s, rc);
        return st_run(db, s);
}

int db_lease_other(struct db *db, const char *camera_id, const char *self, int64_t fresh_after_us,
                   struct db_lease *out, char *instance, size_t ilen, char *state, size_t slen)
{
        sqlite3_stmt *s;
        int rc, r;

        if (!text_ok(camera_id) || !text_ok(self))
                return db_fail_msg(db, -EINVAL, "camera or instance id missing or too long");
        if ((r = st_get(db, ST_LEASE_OTHER, &s)) < 0)
                return r;
        if ((rc = bind_text(s, 1, camera_id)) || (rc = bind_text(s, 2, self)) ||
            (rc = sqlite3_bind_int64(s, 3, fresh_after_us)))
                return bind_fail(db, s, rc);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
                snprintf(instance, ilen, "%s", (const char *)sqlite3_column_text(s, 0));
                snprintf(state, slen, "%s", (const char *)sqlite3_column_text(s, 1));
                *out = (struct db_lease){ .camera_id = camera_id, .instance_id = instance, .state = state,
                                          .since_us = sqlite3_column_int64(s, 2),
                                          .last_frame_us = sqlite3_column_int64(s, 3),
                                          .heartbeat_us = sqlite3_column_int64(s, 4),
                                          .limited_us = sqlite3_column_int64(s, 5) };
                r = 1;
        } else {
                r = rc == SQLITE_DONE ? 0 : db_fail(db, rc);
        }
        st_release(s);
        return r;
}

/* ---- gaps --------------------------------------------------------------------- */

int db_gap_insert(struct db *db, const char *camera_id, const char *instance_id, int64_t start_us, int64_t end_us,
                  const char *reason, const char *detail, int64_t now_us)
{
        sqlite3_stmt *s;
        int rc, r;

        if (!text_ok(camera_id) || !text_ok(instance_id) || !text_ok(reason) || (detail && !text_ok(detail)))
                return db_fail_msg(db, -EINVAL, "gap text field missing or too long");
        if (end_us < start_us)
                return db_fail_msg(db, -ERANGE, "gap ends before it starts");
        if ((r = st_get(db, ST_GAP_INSERT, &s)) < 0)
                return r;
        if ((rc = bind_text(s, 1, camera_id)) || (rc = bind_text(s, 2, instance_id)) ||
            (rc = sqlite3_bind_int64(s, 3, start_us)) || (rc = sqlite3_bind_int64(s, 4, end_us)) ||
            (rc = bind_text(s, 5, reason)) || (rc = bind_text(s, 6, detail ? detail : "")) ||
            (rc = sqlite3_bind_int64(s, 7, now_us)))
                return bind_fail(db, s, rc);
        return st_run(db, s);
}

int db_gaps_prune(struct db *db, int64_t before_us, int64_t limit, int64_t *deleted)
{
        sqlite3_stmt *s;
        int rc, r;

        *deleted = 0;
        if ((r = st_get(db, ST_GAPS_PRUNE, &s)) < 0)
                return r;
        if ((rc = sqlite3_bind_int64(s, 1, before_us)) || (rc = sqlite3_bind_int64(s, 2, limit)))
                return bind_fail(db, s, rc);
        if ((r = st_run(db, s)) == 0)
                *deleted = sqlite3_changes(db->sql);
        return r;
}

int db_gaps_range(struct db *db, const char *camera_id, int64_t from_us, int64_t to_us, int64_t limit,
                  int64_t offset, db_gap_cb cb, void *ctx)
{
        sqlite3_stmt *s;
        int rc, r;

        if ((camera_id && !text_ok(camera_id)) || !cb)
                return db_fail_msg(db, -EINVAL, "camera id too long or callback missing");
        if ((r = range_check(db, from_us, to_us, limit, offset)) < 0 ||
            (r = st_get(db, camera_id ? ST_GAPS_RANGE_CAMERA : ST_GAPS_RANGE_ALL, &s)) < 0)
                return r;
        if ((camera_id && (rc = bind_text(s, 1, camera_id))) || (rc = range_bind(s, from_us, to_us, limit, offset)))
                return bind_fail(db, s, rc);
        return rows_each(db, s, NULL, cb, ctx);
}

/* ---- supervisor state -------------------------------------------------------------- */

int db_slot_save(struct db *db, const struct db_slot *sl)
{
        sqlite3_stmt *s;
        int rc, r;

        if (!text_ok(sl->name) || !text_ok(sl->instance_id) || !text_ok(sl->binary) || !text_ok(sl->version) ||
            !text_ok(sl->state))
                return db_fail_msg(db, -EINVAL, "slot text field missing or too long");
        if ((r = st_get(db, ST_SLOT_SAVE, &s)) < 0)
                return r;
        if ((rc = bind_text(s, 1, sl->name)) || (rc = sqlite3_bind_int64(s, 2, sl->port)) ||
            (rc = sqlite3_bind_int64(s, 3, sl->pid)) || (rc = bind_text(s, 4, sl->instance_id)) ||
            (rc = bind_text(s, 5, sl->binary)) || (rc = bind_text(s, 6, sl->version)) ||
            (rc = bind_text(s, 7, sl->state)) || (rc = sqlite3_bind_int(s, 8, sl->active)) ||
            (rc = sqlite3_bind_int64(s, 9, sl->started_us)) || (rc = sqlite3_bind_int64(s, 10, sl->updated_us)))
                return bind_fail(db, s, rc);
        return st_run(db, s);
}

int db_slots_each(struct db *db, db_slot_cb cb, void *ctx)
{
        sqlite3_stmt *s;
        int rc, r = 0;

        if ((r = st_get(db, ST_SLOTS_ALL, &s)) < 0)
                return r;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                struct db_slot sl = { .name = column_text(s, 0), .port = sqlite3_column_int64(s, 1),
                                      .pid = sqlite3_column_int64(s, 2), .instance_id = column_text(s, 3),
                                      .binary = column_text(s, 4), .version = column_text(s, 5),
                                      .state = column_text(s, 6), .active = sqlite3_column_int(s, 7) != 0,
                                      .started_us = sqlite3_column_int64(s, 8),
                                      .updated_us = sqlite3_column_int64(s, 9) };

                if ((r = cb(&sl, ctx)))
                        break;
        }
        if (!r && rc != SQLITE_DONE)
                r = db_fail(db, rc);
        st_release(s);
        return r;
}

int db_deploy_begin(struct db *db, const struct db_deploy *d, int64_t *id)
{
        sqlite3_stmt *s;
        int rc, r;

        if (!text_ok(d->from_slot) || !text_ok(d->to_slot) || !text_ok(d->binary) || !text_ok(d->version))
                return db_fail_msg(db, -EINVAL, "deploy text field missing or too long");
        if ((r = st_get(db, ST_DEPLOY_BEGIN, &s)) < 0)
                return r;
        if ((rc = sqlite3_bind_int64(s, 1, d->started_us)) || (rc = bind_text(s, 2, d->from_slot)) ||
            (rc = bind_text(s, 3, d->to_slot)) || (rc = bind_text(s, 4, d->binary)) ||
            (rc = bind_text(s, 5, d->version)))
                return bind_fail(db, s, rc);
        if ((r = st_run(db, s)) == 0)
                *id = sqlite3_last_insert_rowid(db->sql);
        return r;
}

int db_deploy_finish(struct db *db, int64_t id, const char *result, const char *reason, int64_t finished_us)
{
        sqlite3_stmt *s;
        int rc, r;

        if (!text_ok(result) || (reason && !text_ok(reason)))
                return db_fail_msg(db, -EINVAL, "deploy result missing or too long");
        if ((r = st_get(db, ST_DEPLOY_FINISH, &s)) < 0)
                return r;
        if ((rc = sqlite3_bind_int64(s, 1, id)) || (rc = bind_text(s, 2, result)) ||
            (rc = bind_text(s, 3, reason ? reason : "")) || (rc = sqlite3_bind_int64(s, 4, finished_us)))
                return bind_fail(db, s, rc);
        if ((r = st_run(db, s)) < 0)
                return r;
        return sqlite3_changes(db->sql) ? 0 : db_fail_msg(db, -ENOENT, "no such deploy");
}

int db_deploys_recent(struct db *db, int64_t limit, db_deploy_cb cb, void *ctx)
{
        sqlite3_stmt *s;
        int rc, r = 0;

        if (limit < 1 || limit > DB_QUERY_LIMIT_MAX)
                return db_fail_msg(db, -EINVAL, "limit outside 1..DB_QUERY_LIMIT_MAX");
        if ((r = st_get(db, ST_DEPLOYS_RECENT, &s)) < 0)
                return r;
        if ((rc = sqlite3_bind_int64(s, 1, limit)))
                return bind_fail(db, s, rc);
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                struct db_deploy d = { .id = sqlite3_column_int64(s, 0), .started_us = sqlite3_column_int64(s, 1),
                                       .finished_us = sqlite3_column_int64(s, 2), .from_slot = column_text(s, 3),
                                       .to_slot = column_text(s, 4), .binary = column_text(s, 5),
                                       .version = column_text(s, 6), .result = column_text(s, 7),
                                       .reason = column_text(s, 8) };

                if ((r = cb(&d, ctx)))
                        break;
        }
        if (!r && rc != SQLITE_DONE)
                r = db_fail(db, rc);
        st_release(s);
        return r;
}
