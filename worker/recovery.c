/* recovery: see recovery.h.  Runs before any recorder starts, on its own DB
 * connection, so it never races this instance's own writes; another live
 * instance's 'recording' rows are recognised by pid and left alone. */
#include "worker/recovery.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <dirent.h>
#include <fcntl.h>
#include <time.h>
#include <sys/file.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/time_util.h"
#include "db/db.h"
#include "db/frame_index.h"
#include "worker/fmp4_repair.h"
#include "worker/storage.h"

#define RECOVERY_MAX_ROWS 4096 /* rows repaired per start; the rest wait for the next */

struct pending {
        int64_t id, start_us, segment_num, pid, clock_offset_us;
        char camera[CONFIG_ID_MAX], instance[CONFIG_ID_MAX], path[PATH_MAX], time_source[16];
};

struct collect {
        struct pending *rows;
        size_t n;
};

static int collect_row(const struct db_segment *s, void *ctx)
{
        struct collect *c = ctx;
        struct pending *p;

        if (c->n == RECOVERY_MAX_ROWS)
                return 1;
        p = &c->rows[c->n++];
        p->id = s->id;
        p->start_us = s->start_us;
        p->segment_num = s->segment_num;
        p->pid = s->pid;
        p->clock_offset_us = s->clock_offset_us;
        snprintf(p->camera, sizeof(p->camera), "%s", s->camera_id);
        snprintf(p->instance, sizeof(p->instance), "%s", s->instance_id);
        snprintf(p->path, sizeof(p->path), "%s", s->path);
        snprintf(p->time_source, sizeof(p->time_source), "%s", s->time_source);
        return 0;
}

/* A live writer holds flock(LOCK_SH) on its segment file (segment_writer);
 * locks die with their process, so a lock we can take means nobody writes.
 * Unlike a pid check this survives pid reuse and pid namespaces. */
static bool file_in_use(const char *path)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        bool busy;

        if (fd < 0)
                return false;
        busy = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
        close(fd); /* drops our lock, if we got it */
        return busy;
}

/* false: storage unavailable, the row is left for later. */
static bool repair(struct db *db, const struct pending *p, const char *storage_dir, bool require_mp)
{
        struct fmp4_scan scan;
        struct fmp4_frames fr = { 0 };
        struct fi_encoder fi;
        struct db_segment seg;
        const uint8_t *blob = NULL;
        size_t len = 0;
        int e;

        if (access(p->path, F_OK) < 0) {
                uint64_t free_b;
                char why[PATH_MAX + 64];

                if (storage_probe(storage_dir, require_mp, &free_b, why, sizeof(why)) < 0) {
                        log_err("recovery: %s: storage unavailable (%s); row %" PRId64 " kept as it is", p->path,
                                why, p->id);
                        return false;
                }
                log_err("recovery: %s: file is gone; row %" PRId64 " marked corrupt", p->path, p->id);
                db_segment_set_status(db, p->id, "corrupt");
                return true;
        }
        e = fmp4_truncate(p->path, &scan);
        fi_encoder_init(&fi);
        if (e == 0)
                e = fmp4_read_frames(p->path, &fi, &fr);
        if (e < 0 || fr.frames == 0) {
                log_err("recovery: %s: no complete fragment (%s); row %" PRId64 " marked corrupt, file kept", p->path,
                        e < 0 ? strerror(-e) : "0 frames", p->id);
                db_segment_set_status(db, p->id, "corrupt");
                fi_encoder_free(&fi);
                return true;
        }
        fi_encoder_data(&fi, &blob, &len);
        seg = (struct db_segment){ .id = p->id,
                                   .camera_id = p->camera,
                                   .instance_id = p->instance,
                                   .path = p->path,
                                   .segment_num = p->segment_num,
                                   .start_us = p->start_us,
                                   .end_us = p->start_us + fr.end_offset_us,
                                   .frames = fr.frames,
                                   .bytes = scan.file_size,
                                   .keyframes = fr.keyframes,
                                   .fragments = scan.fragments,
                                   .status = "partial",
                                   .overlap_status = "unique",
                                   .time_source = p->time_source,
                                   .clock_offset_us = p->clock_offset_us,
                                   .pid = p->pid,
                                   .updated_us = now_real_us() };
        e = db_segment_update(db, &seg, blob, len);
        if (e < 0)
                log_err("recovery: %s: row %" PRId64 " not updated: %s", p->path, p->id, db_errmsg(db));
        else
                log_notice("recovery: %s: repaired to partial, %" PRId64 " frames in %d fragments (%.3f s)", p->path,
                           fr.frames, scan.fragments, (double)fr.end_offset_us / 1e6);
        fi_encoder_free(&fi);
        return true;
}

int recovery_index_file(struct db *db, const struct recovery_hint *h, int64_t *frames)
{
        struct fmp4_scan scan;
        struct fmp4_frames fr = { 0 };
        struct fi_encoder fi;
        struct db_segment seg, old;
        const uint8_t *blob = NULL;
        size_t len = 0;
        int64_t id = h->id;
        int e;

        *frames = 0;
        fi_encoder_init(&fi);
        e = fmp4_truncate(h->path, &scan);
        if (e == 0)
                e = fmp4_read_frames(h->path, &fi, &fr);
        if (e == 0 && fr.frames == 0)
                e = -ENODATA;
        if (e < 0) {
                fi_encoder_free(&fi);
                return e;
        }
        fi_encoder_data(&fi, &blob, &len);
        seg = (struct db_segment){ .camera_id = h->camera, .instance_id = h->instance, .path = h->path,
                                   .segment_num = h->segment_num, .start_us = h->start_us,
                                   .end_us = h->start_us + fr.end_offset_us, .frames = fr.frames,
                                   .bytes = scan.file_size, .keyframes = fr.keyframes, .fragments = scan.fragments,
                                   .status = h->status, .overlap_status = "unique", .time_source = h->time_source,
                                   .clock_offset_us = h->clock_offset_us,
                                   .video_codec = h->video_codec ? h->video_codec : "",
                                   .audio_codec = h->audio_codec ? h->audio_codec : "", .width = h->width,
                                   .height = h->height, .pid = h->pid, .created_us = now_real_us(),
                                   .updated_us = now_real_us() };
        if (!id && db_segment_by_path(db, h->path, &old) == 0)
                id = old.id;
        if (!id && (e = db_segment_begin(db, &seg, &id)) < 0) {
                fi_encoder_free(&fi);
                return e;
        }
        seg.id = id;
        e = db_segment_update(db, &seg, blob, len);
        fi_encoder_free(&fi);
        if (e == 0)
                *frames = fr.frames;
        return e;
}

/* ---- files without rows ------------------------------------------------------------ */

/* "{start_ms}_{instance}_{num}.mp4" after the "{camera}_" prefix. */
static bool parse_rest(const char *rest, int64_t *start_ms, char instance[CONFIG_ID_MAX], int64_t *num)
{
        const char *u1 = strchr(rest, '_'), *dot = strrchr(rest, '.'), *u2;
        char *end;

        if (!u1 || !dot || strcmp(dot, ".mp4"))
                return false;
        for (u2 = dot - 1; u2 > u1 && *u2 != '_'; u2--)
                ;
        if (u2 <= u1 + 1 || u2 - u1 - 1 >= CONFIG_ID_MAX)
                return false;
        *start_ms = strtoll(rest, &end, 10);
        if (end != u1)
                return false;
        *num = strtoll(u2 + 1, &end, 10);
        if (end != dot)
                return false;
        memcpy(instance, u1 + 1, (size_t)(u2 - u1 - 1));
        instance[u2 - u1 - 1] = '\0';
        return true;
}

/* "{camera}_{start_ms}_{instance}_{num}.mp4": a segment file of camera. */
static bool parse_name(const char *camera, const char *file, int64_t *start_ms, char instance[CONFIG_ID_MAX],
                       int64_t *num)
{
        size_t cl = strlen(camera);

        return !strncmp(file, camera, cl) && file[cl] == '_' && parse_rest(file + cl + 1, start_ms, instance, num);
}

/* A segment file the index does not know (its row was still queued when the
 * process died, or the DB refused it): index it from the file itself. */
bool recovery_adopt(struct db *db, const char *camera, const char *path, const char *file)
{
        char instance[CONFIG_ID_MAX];
        struct fmp4_scan scan;
        struct fmp4_frames fr = { 0 };
        struct fi_encoder fi;
        struct db_segment seg;
        const uint8_t *blob = NULL;
        size_t len = 0;
        int64_t start_ms, num, id = 0;

        if (!parse_name(camera, file, &start_ms, instance, &num)) {
                log_warn("recovery: %s: not a segment name, left alone", path);
                return false;
        }
        if (file_in_use(path))
                return false;
        fi_encoder_init(&fi);
        if (fmp4_truncate(path, &scan) < 0 || fmp4_read_frames(path, &fi, &fr) < 0 || fr.frames == 0) {
                log_err("recovery: %s has no row and no whole fragment; left alone", path);
                fi_encoder_free(&fi);
                return false;
        }
        fi_encoder_data(&fi, &blob, &len);
        seg = (struct db_segment){ .camera_id = camera, .instance_id = instance, .path = path, .segment_num = num,
                                   .start_us = start_ms * 1000, .end_us = start_ms * 1000 + fr.end_offset_us,
                                   .frames = fr.frames, .bytes = scan.file_size, .keyframes = fr.keyframes,
                                   .fragments = scan.fragments, .status = "partial", .overlap_status = "unique",
                                   .time_source = "receive", .created_us = now_real_us(),
                                   .updated_us = now_real_us() };
        if (db_segment_begin(db, &seg, &id) == 0)
                seg.id = id;
        if (!seg.id || db_segment_update(db, &seg, blob, len) < 0) {
                log_err("recovery: %s: cannot index it: %s", path, db_errmsg(db));
                seg.id = 0;
        } else {
                log_notice("recovery: %s had no row: indexed from the file as partial, %" PRId64 " frames", path,
                           fr.frames);
        }
        fi_encoder_free(&fi);
        return seg.id != 0;
}

/* Only the day directories of today and yesterday (UTC) are walked: rows go
 * missing only in the last moments of an instance, and a full walk of a
 * months-long archive at every start would cost minutes.  Even those two
 * hold 17 280 files a camera: asked one path at a time, 64 cameras took
 * 20 s before recording started.  So a directory is read in chunks, each
 * sorted by (instance, number) and matched against one index range of the
 * numbers the DB has (db_segment_nums); only a file without a match is
 * asked about by its path. */
#define RECOVERY_DIR_CHUNK 4096 /* file names held at a time */

struct dir_file {
        char name[NAME_MAX + 1];
        char instance[CONFIG_ID_MAX];
        int64_t start_ms, num;
        bool parsed, indexed;
};

struct dir_chunk {
        struct dir_file *f;
        size_t n;
        size_t at; /* the merge's cursor, within one instance's run [at, end) */
        size_t end;
        int64_t rows; /* of the current page */
};

static int dir_file_cmp(const void *a, const void *b)
{
        const struct dir_file *x = a, *y = b;
        int c = strcmp(x->instance, y->instance);

        return c ? c : (x->num > y->num) - (x->num < y->num);
}

/* One DB row of the instance, in number order: marks the files it indexes. */
static int match_num(int64_t num, int64_t start_us, void *ctx)
{
        struct dir_chunk *c = ctx;

        c->rows++;
        while (c->at < c->end && c->f[c->at].num < num)
                c->at++;
        for (size_t i = c->at; i < c->end && c->f[i].num == num; i++)
                if (c->f[i].start_ms == start_us / 1000)
                        c->f[i].indexed = true;
        return 0;
}

static void chunk_match(struct db *db, const char *camera, struct dir_chunk *c)
{
        size_t i = 0, j;

        qsort(c->f, c->n, sizeof(*c->f), dir_file_cmp);
        while (i < c->n) {
                for (j = i; j < c->n && c->f[j].parsed && !strcmp(c->f[j].instance, c->f[i].instance); j++)
                        ;
                if (j == i) { /* not a segment name: recovery_adopt says so */
                        i++;
                        continue;
                }
                c->at = i;
                c->end = j;
                for (int64_t off = 0;; off += DB_QUERY_LIMIT_MAX) {
                        c->rows = 0;
                        if (db_segment_nums(db, camera, c->f[i].instance, c->f[i].num, c->f[j - 1].num,
                                            DB_QUERY_LIMIT_MAX, off, match_num, c) < 0)
                                break; /* the files stay unmatched: each is asked by its path */
                        if (c->rows < DB_QUERY_LIMIT_MAX || c->at >= j)
                                break;
                }
                i = j;
        }
}

static void chunk_adopt(struct db *db, const char *camera, const char *dir, struct dir_chunk *c)
{
        char path[PATH_MAX];
        struct db_segment seg;

        chunk_match(db, camera, c);
        for (size_t i = 0; i < c->n; i++) {
                if (c->f[i].indexed ||
                    snprintf(path, sizeof(path), "%s/%s", dir, c->f[i].name) >= (int)sizeof(path))
                        continue;
                if (db_segment_by_path(db, path, &seg) == -ENOENT)
                        recovery_adopt(db, camera, path, c->f[i].name);
        }
        c->n = 0;
}

static void dir_adopt(struct db *db, const char *camera, const char *dir, struct dir_chunk *c)
{
        struct dirent *de;
        DIR *d;

        if (!(d = opendir(dir)))
                return;
        while ((de = readdir(d))) {
                size_t n = strlen(de->d_name);
                struct dir_file *f;

                if (n < 5 || strcmp(de->d_name + n - 4, ".mp4"))
                        continue;
                f = &c->f[c->n++];
                snprintf(f->name, sizeof(f->name), "%s", de->d_name);
                f->parsed = parse_name(camera, f->name, &f->start_ms, f->instance, &f->num);
                if (!f->parsed) {
                        f->instance[0] = '\0';
                        f->start_ms = f->num = 0;
                }
                f->indexed = false;
                if (c->n == RECOVERY_DIR_CHUNK)
                        chunk_adopt(db, camera, dir, c);
        }
        closedir(d);
        chunk_adopt(db, camera, dir, c);
}

static void adopt_orphans(struct db *db, const struct mwr_config *cfg)
{
        struct dir_chunk c = { .f = malloc(RECOVERY_DIR_CHUNK * sizeof(struct dir_file)) };

        if (!c.f) {
                log_err("recovery: out of memory: files without a row are left to the disk guard's walk");
                return;
        }
        for (size_t i = 0; i < cfg->n_cameras; i++)
                for (int back = 0; back < 2; back++) {
                        time_t t = time(NULL) - back * 86400;
                        struct tm tm;
                        char dir[PATH_MAX];

                        gmtime_r(&t, &tm);
                        snprintf(dir, sizeof(dir), "%s/%s/%04d-%02d-%02d", cfg->storage_dir, cfg->cameras[i].id,
                                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
                        dir_adopt(db, cfg->cameras[i].id, dir, &c);
                }
        free(c.f);
}

int recovery_rows(struct db *db, const char *storage_dir, bool require_mp, const char *instance_id)
{
        struct collect c = { .rows = calloc(RECOVERY_MAX_ROWS, sizeof(struct pending)) };
        size_t repaired = 0, kept = 0;
        int e;

        if (!c.rows)
                return -ENOMEM;
        e = db_segments_by_status(db, "recording", collect_row, &c);
        if (e < 0)
                log_err("recovery: cannot list segments: %s", db_errmsg(db));
        for (size_t i = 0; i < c.n; i++) {
                if (file_in_use(c.rows[i].path))
                        continue; /* an instance (maybe this one) is writing it right now */
                if (repair(db, &c.rows[i], storage_dir, require_mp))
                        repaired++;
                else
                        kept++;
        }
        if (repaired)
                log_notice("recovery: %zu segments left by a stopped instance repaired (this is %s)", repaired,
                           instance_id);
        free(c.rows);
        return e < 0 ? e : (int)kept;
}

int recovery_run(const struct mwr_config *cfg, const char *instance_id)
{
        uint64_t free_b;
        char why[PATH_MAX + 64];
        struct db *db;
        int e;

        e = db_open(cfg->db_path, &db);
        if (e < 0) {
                log_err("recovery: %s: %s", cfg->db_path, strerror(-e));
                return e;
        }
        if (storage_probe(cfg->storage_dir, cfg->disk.require_mountpoint, &free_b, why, sizeof(why)) < 0) {
                /* a missing file proves nothing now: the disk guard repairs once storage is back */
                log_err("recovery: storage unavailable (%s): repair waits for it", why);
                db_close(db);
                return 1;
        }
        e = recovery_rows(db, cfg->storage_dir, cfg->disk.require_mountpoint, instance_id);
        adopt_orphans(db, cfg);
        db_close(db);
        return e < 0 ? e : e > 0 ? 1 : 0;
}

int64_t recovery_next_segment_num(const struct mwr_config *cfg, const char *camera_id, const char *instance_id)
{
        struct db *db;
        int64_t num = 0;

        if (db_open(cfg->db_path, &db) == 0) {
                if (db_segment_max_num(db, camera_id, instance_id, &num) < 0)
                        num = 0;
                db_close(db);
        }
        return num + 1;
}
