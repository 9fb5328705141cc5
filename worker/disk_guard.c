/* disk_guard: see disk_guard.h.  Its DB connection and the orphan walk are
 * the guard thread's own; the limits are copied under g->lock, so a reload
 * never frees what a tick reads.  Deleting a file another instance already
 * deleted is not an error, a missing file on missing storage is not a
 * deletion. */
#include "worker/disk_guard.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/time_util.h"
#include "db/db.h"
#include "worker/recovery.h"
#include "worker/storage.h"

#define USEC_PER_DAY (86400 * USEC_PER_SEC)
#define TICK_US USEC_PER_SEC
#define TICK_UNAVAILABLE_US (200 * USEC_PER_MSEC) /* storage gone: look again soon, resume soon */
#define TICK_BEHIND_US (50 * USEC_PER_MSEC)       /* a sweep not done: go on after a breath */
#define GAPS_PRUNE_EVERY_US (3600 * USEC_PER_SEC)
#define GAPS_PRUNE_BATCH 10000
#define WALK_EVERY_US USEC_PER_DAY
#define WHY_MAX (PATH_MAX + 96)

struct limits {
        char storage_dir[PATH_MAX];
        bool require_mountpoint;
        uint64_t min_free_bytes, max_total_bytes;
        int retention_days;
};

/* The orphan walk: storage_dir/<camera>/<YYYY-MM-DD>/<file>.mp4, in any
 * order, one entry at a time. */
struct walk {
        DIR *top, *cam, *day;
        char cam_name[NAME_MAX + 1], day_dir[PATH_MAX];
        bool active;
        int64_t next_us; /* monotonic: the next pass */
        uint64_t files, adopted;
};

struct disk_guard {
        pthread_mutex_t lock; /* lim, recover_instance, why, stopping */
        pthread_cond_t cond;
        struct limits lim;
        char recover_instance[CONFIG_ID_MAX]; /* "" unless a recovery pass is owed */
        char why[WHY_MAX];
        bool stopping, started;
        pthread_t thread;

        struct db *db; /* the guard thread's (the caller's before start) */
        struct disk_state state;
        bool logged_full;
        int64_t total_bytes; /* SUM(bytes) at the tick's start, less what it deleted */
        int64_t next_prune_us;
        struct walk walk;
};

struct victim {
        int64_t id, bytes, end_us;
        char path[PATH_MAX];
};

struct victims {
        struct victim v[DISK_DELETE_BATCH];
        size_t n;
};

struct tick {
        struct limits lim;
        int64_t deadline_us; /* monotonic */
        bool behind;         /* budget ran out with work left */
        bool gone;           /* the storage went away during the tick ... */
        char gone_why[WHY_MAX]; /* ... and why, in the failed probe's words */
        int64_t round_bytes; /* of the files unlinked this round, rows not yet deleted */
};

static int collect(const struct db_segment *s, void *ctx)
{
        struct victims *vs = ctx;
        struct victim *v = &vs->v[vs->n++];

        v->id = s->id;
        v->bytes = s->bytes;
        v->end_us = s->end_us;
        snprintf(v->path, sizeof(v->path), "%s", s->path);
        return vs->n == DISK_DELETE_BATCH;
}

static void set_why(struct disk_guard *g, const char *why)
{
        pthread_mutex_lock(&g->lock);
        snprintf(g->why, sizeof(g->why), "%s", why);
        pthread_mutex_unlock(&g->lock);
}

static bool storage_ok(struct tick *t, uint64_t *free_b)
{
        if (storage_probe(t->lim.storage_dir, t->lim.require_mountpoint, free_b, t->gone_why, sizeof(t->gone_why)) ==
            0)
                return true;
        t->gone = true;
        return false;
}

/* The victim's file: 1 gone (unlinked, or already gone while the storage
 * is there); 0 still there (logged; the next round tries again); -ENODEV
 * the storage is gone: stop, the row stays. */
static int unlink_file(struct tick *t, const struct victim *v, const char *why)
{
        uint64_t free_b;

        if (unlink(v->path) == 0) {
                log_notice("disk: deleted %s (%s)", v->path, why);
                return 1;
        }
        if (errno != ENOENT) {
                log_err("disk: cannot delete %s: %s; its row stays", v->path, strerror(errno));
                return 0;
        }
        /* no file: deleted by another instance, or the storage is not there */
        if (!storage_ok(t, &free_b))
                return -ENODEV;
        log_notice("disk: %s was already gone: its row goes (%s)", v->path, why);
        return 1;
}

/* The rows of the files gone, in one transaction; counted when done. */
static void rows_delete(struct disk_guard *g, const struct victims *gone)
{
        int64_t ids[DISK_DELETE_BATCH], bytes = 0;

        if (gone->n == 0)
                return;
        for (size_t i = 0; i < gone->n; i++) {
                ids[i] = gone->v[i].id;
                bytes += gone->v[i].bytes > 0 ? gone->v[i].bytes : 0;
        }
        if (db_segments_delete(g->db, ids, gone->n) < 0) {
                log_warn("disk: %zu segment files deleted but their rows stay: %s (the next round retries)", gone->n,
                         db_errmsg(g->db));
                return;
        }
        g->total_bytes -= bytes;
        atomic_fetch_add(&g->state.deleted_segments, gone->n);
        atomic_fetch_add(&g->state.deleted_bytes, (uint64_t)bytes);
}

/* Deletes oldest-first while need() says so and the tick's budget lasts:
 * files one by one, then their rows in one transaction a round. */
static void delete_while(struct disk_guard *g, struct tick *t,
                         bool (*need)(struct disk_guard *, struct tick *, const struct victim *), const char *why)
{
        for (;;) {
                struct victims vs = { .n = 0 }, gone = { .n = 0 };
                bool stop = false;

                if (db_segments_oldest(g->db, DISK_DELETE_BATCH, collect, &vs) < 0 || vs.n == 0)
                        return;
                t->round_bytes = 0;
                for (size_t i = 0; i < vs.n && !stop; i++) {
                        int e;

                        if (!need(g, t, &vs.v[i]))
                                stop = true;
                        else if (now_mono_us() >= t->deadline_us)
                                stop = t->behind = true;
                        else if ((e = unlink_file(t, &vs.v[i], why)) < 0)
                                stop = true;
                        else if (e > 0) {
                                gone.v[gone.n++] = vs.v[i];
                                t->round_bytes += vs.v[i].bytes > 0 ? vs.v[i].bytes : 0;
                        }
                }
                rows_delete(g, &gone);
                t->round_bytes = 0;
                if (stop || gone.n == 0)
                        return;
        }
}

static bool need_space(struct disk_guard *g, struct tick *t, const struct victim *v)
{
        uint64_t free_b;

        return storage_ok(t, &free_b) && free_b < t->lim.min_free_bytes + DISK_RESUME_MARGIN;
}

static bool too_old(struct disk_guard *g, struct tick *t, const struct victim *v)
{
        return v->end_us < now_real_us() - (int64_t)t->lim.retention_days * USEC_PER_DAY;
}

static bool too_big(struct disk_guard *g, struct tick *t, const struct victim *v)
{
        int64_t total = g->total_bytes - t->round_bytes;

        return total > 0 && (uint64_t)total > t->lim.max_total_bytes;
}

/* ---- files without a row, in the older day directories ------------------------------ */

static void walk_close(struct walk *w)
{
        if (w->day)
                closedir(w->day);
        if (w->cam)
                closedir(w->cam);
        if (w->top)
                closedir(w->top);
        w->day = w->cam = w->top = NULL;
        w->active = false;
}

/* "YYYY-MM-DD" of yesterday (UTC): this day and later are recovery's. */
static void recent_day(char out[16])
{
        time_t t = time(NULL) - 86400;
        struct tm tm;

        gmtime_r(&t, &tm);
        if (!strftime(out, 16, "%Y-%m-%d", &tm))
                out[0] = '\0';
}

static bool day_name(const char *n)
{
        return strlen(n) == 10 && n[4] == '-' && n[7] == '-';
}

/* The next entry worth a look, or NULL when the pass is over. */
static struct dirent *walk_next(struct walk *w, const char *storage_dir)
{
        char recent[16], path[PATH_MAX];
        struct dirent *de;

        recent_day(recent);
        for (;;) {
                if (w->day) {
                        if ((de = readdir(w->day)))
                                return de;
                        closedir(w->day);
                        w->day = NULL;
                }
                if (w->cam) {
                        if (!(de = readdir(w->cam))) {
                                closedir(w->cam);
                                w->cam = NULL;
                                continue;
                        }
                        if (!day_name(de->d_name) || strcmp(de->d_name, recent) >= 0)
                                continue;
                        if (snprintf(w->day_dir, sizeof(w->day_dir), "%s/%s/%s", storage_dir, w->cam_name,
                                     de->d_name) >= (int)sizeof(w->day_dir))
                                continue;
                        w->day = opendir(w->day_dir);
                        continue;
                }
                if (!(de = readdir(w->top)))
                        return NULL;
                if (de->d_name[0] == '.' ||
                    snprintf(path, sizeof(path), "%s/%s", storage_dir, de->d_name) >= (int)sizeof(path))
                        continue;
                snprintf(w->cam_name, sizeof(w->cam_name), "%s", de->d_name);
                w->cam = opendir(path);
        }
}

static void walk_step(struct disk_guard *g, struct tick *t)
{
        struct walk *w = &g->walk;
        char path[PATH_MAX];
        struct db_segment seg;
        struct dirent *de;

        if (!w->active) {
                if (now_mono_us() < w->next_us)
                        return;
                if (!(w->top = opendir(t->lim.storage_dir)))
                        return;
                w->active = true;
                w->files = w->adopted = 0;
        }
        for (int n = 0; n < DISK_WALK_BUDGET && now_mono_us() < t->deadline_us; n++) {
                size_t len;

                if (!(de = walk_next(w, t->lim.storage_dir))) {
                        if (w->files)
                                log_notice("disk: %" PRIu64 " older segment files checked for a row, %" PRIu64
                                           " indexed",
                                           w->files, w->adopted);
                        walk_close(w);
                        w->next_us = now_mono_us() + WALK_EVERY_US;
                        return;
                }
                len = strlen(de->d_name);
                if (len < 5 || strcmp(de->d_name + len - 4, ".mp4") ||
                    snprintf(path, sizeof(path), "%s/%s", w->day_dir, de->d_name) >= (int)sizeof(path))
                        continue;
                w->files++;
                if (db_segment_by_path(g->db, path, &seg) == -ENOENT && recovery_adopt(g->db, w->cam_name, path,
                                                                                       de->d_name)) {
                        w->adopted++;
                        atomic_fetch_add(&g->state.adopted_files, 1);
                }
        }
        t->behind = true;
}

/* ---- a tick --------------------------------------------------------------------------- */

static void went_away(struct disk_guard *g, const struct tick *t)
{
        const char *why = t->gone_why; /* the probe that failed: not asked again */

        set_why(g, why);
        if (!atomic_load(&g->state.unavailable)) {
                atomic_fetch_add(&g->state.unavailable_events, 1);
                log_err("disk: storage unavailable (%s): recording paused, nothing deleted, until it is back", why);
        }
        atomic_store(&g->state.unavailable, true);
        atomic_store(&g->state.full, true);
        atomic_store(&g->state.free_bytes, 0);
        walk_close(&g->walk);
}

static void space_limits(struct disk_guard *g, struct tick *t, uint64_t free_b)
{
        uint64_t resume = t->lim.min_free_bytes + DISK_RESUME_MARGIN;
        bool full = atomic_load(&g->state.full);

        atomic_store(&g->state.free_bytes, free_b);
        if (!full && free_b < t->lim.min_free_bytes) {
                atomic_store(&g->state.full, true);
                full = true;
        } else if (full && free_b >= resume) {
                atomic_store(&g->state.full, false);
                log_notice("disk: %.1f MB free again, recording resumes", (double)free_b / 1e6);
                g->logged_full = false;
                set_why(g, "ok");
                return;
        }
        if (full && !g->logged_full) {
                char why[128];

                log_err("disk: storage full (%.1f MB free, floor %.1f MB) and nothing left to delete: "
                        "recording paused until space returns",
                        (double)free_b / 1e6, (double)t->lim.min_free_bytes / 1e6);
                snprintf(why, sizeof(why), "%.1f MB free, floor %.1f MB", (double)free_b / 1e6,
                         (double)t->lim.min_free_bytes / 1e6);
                set_why(g, why);
                g->logged_full = true;
        }
}

static void recover_owed(struct disk_guard *g, struct tick *t)
{
        char instance[CONFIG_ID_MAX];

        pthread_mutex_lock(&g->lock);
        snprintf(instance, sizeof(instance), "%s", g->recover_instance);
        pthread_mutex_unlock(&g->lock);
        if (!instance[0] || recovery_rows(g->db, t->lim.storage_dir, t->lim.require_mountpoint, instance) != 0)
                return;
        pthread_mutex_lock(&g->lock);
        g->recover_instance[0] = '\0';
        pthread_mutex_unlock(&g->lock);
}

static void prune_gaps(struct disk_guard *g, struct tick *t)
{
        int64_t n = 0;

        if (t->lim.retention_days <= 0 || now_mono_us() < g->next_prune_us)
                return;
        g->next_prune_us = now_mono_us() + GAPS_PRUNE_EVERY_US;
        if (db_gaps_prune(g->db, now_real_us() - (int64_t)t->lim.retention_days * USEC_PER_DAY, GAPS_PRUNE_BATCH,
                          &n) < 0)
                log_warn("disk: gap rows older than retention_days not pruned: %s", db_errmsg(g->db));
        else if (n > 0)
                log_notice("disk: %" PRId64 " gap rows older than retention_days pruned", n);
        if (n == GAPS_PRUNE_BATCH)
                g->next_prune_us = 0; /* more: the next tick */
}

/* One round of the guard; true when it ran out of budget with work left. */
static bool guard_tick(struct disk_guard *g)
{
        struct tick t = { .deadline_us = now_mono_us() + DISK_TICK_BUDGET_US };
        uint64_t free_b;

        pthread_mutex_lock(&g->lock);
        t.lim = g->lim;
        pthread_mutex_unlock(&g->lock);
        atomic_fetch_add(&g->state.ticks, 1);
        if (!storage_ok(&t, &free_b)) {
                went_away(g, &t);
                return false;
        }
        if (atomic_load(&g->state.unavailable)) {
                log_notice("disk: storage %s is back (%.1f MB free): recording resumes", t.lim.storage_dir,
                           (double)free_b / 1e6);
                atomic_store(&g->state.unavailable, false);
                if (free_b >= t.lim.min_free_bytes) {
                        atomic_store(&g->state.full, false);
                        g->logged_full = false;
                }
                set_why(g, "ok");
        }
        recover_owed(g, &t);
        if (t.lim.retention_days > 0)
                delete_while(g, &t, too_old, "older than retention_days");
        if (t.lim.max_total_bytes > 0 && !t.gone && db_segments_total_bytes(g->db, &g->total_bytes) == 0)
                delete_while(g, &t, too_big, "over max_total_gb");
        if (!t.gone && free_b < t.lim.min_free_bytes)
                delete_while(g, &t, need_space, "free space under min_free_mb");
        if (t.gone || !storage_ok(&t, &free_b)) {
                went_away(g, &t);
                return false;
        }
        space_limits(g, &t, free_b);
        prune_gaps(g, &t);
        if (!t.behind)
                walk_step(g, &t);
        return t.behind;
}

static void *guard_thread(void *arg)
{
        struct disk_guard *g = arg;

        pthread_mutex_lock(&g->lock);
        while (!g->stopping) {
                struct timespec until;
                int64_t wait_us;
                bool behind;

                pthread_mutex_unlock(&g->lock);
                behind = guard_tick(g);
                wait_us = behind ? TICK_BEHIND_US : atomic_load(&g->state.unavailable) ? TICK_UNAVAILABLE_US : TICK_US;
                clock_gettime(CLOCK_MONOTONIC, &until);
                until.tv_sec += (time_t)(wait_us / USEC_PER_SEC);
                until.tv_nsec += (long)(wait_us % USEC_PER_SEC) * 1000;
                if (until.tv_nsec >= 1000000000L) {
                        until.tv_sec++;
                        until.tv_nsec -= 1000000000L;
                }
                pthread_mutex_lock(&g->lock);
                while (!g->stopping && pthread_cond_timedwait(&g->cond, &g->lock, &until) != ETIMEDOUT)
                        ;
        }
        pthread_mutex_unlock(&g->lock);
        return NULL;
}

/* ---- the worker's side ---------------------------------------------------------------- */

static void limits_from(struct limits *l, const struct mwr_config *cfg)
{
        snprintf(l->storage_dir, sizeof(l->storage_dir), "%s", cfg->storage_dir);
        l->require_mountpoint = cfg->disk.require_mountpoint;
        l->min_free_bytes = cfg->disk.min_free_bytes;
        l->max_total_bytes = cfg->disk.max_total_bytes;
        l->retention_days = cfg->disk.retention_days;
}

int disk_guard_new(const struct mwr_config *cfg, struct disk_guard **out)
{
        struct disk_guard *g = calloc(1, sizeof(*g));
        pthread_condattr_t ca;
        int e;

        if (!g)
                return -ENOMEM;
        limits_from(&g->lim, cfg);
        snprintf(g->why, sizeof(g->why), "ok");
        atomic_init(&g->state.full, false);
        atomic_init(&g->state.unavailable, false);
        e = db_open(cfg->db_path, &g->db);
        if (e < 0) {
                free(g);
                return e;
        }
        pthread_mutex_init(&g->lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&g->cond, &ca);
        pthread_condattr_destroy(&ca);
        g->walk.next_us = now_mono_us() + 10 * USEC_PER_SEC; /* not in the way of the start */
        guard_tick(g);
        *out = g;
        return 0;
}

int disk_guard_start(struct disk_guard *g)
{
        int e = pthread_create(&g->thread, NULL, guard_thread, g);

        if (e)
                return -e;
        g->started = true;
        return 0;
}

void disk_guard_free(struct disk_guard *g)
{
        if (!g)
                return;
        if (g->started) {
                pthread_mutex_lock(&g->lock);
                g->stopping = true;
                pthread_cond_signal(&g->cond);
                pthread_mutex_unlock(&g->lock);
                pthread_join(g->thread, NULL);
        }
        walk_close(&g->walk);
        db_close(g->db);
        pthread_cond_destroy(&g->cond);
        pthread_mutex_destroy(&g->lock);
        free(g);
}

void disk_guard_set_config(struct disk_guard *g, const struct mwr_config *cfg)
{
        pthread_mutex_lock(&g->lock);
        limits_from(&g->lim, cfg);
        pthread_cond_signal(&g->cond);
        pthread_mutex_unlock(&g->lock);
}

void disk_guard_recover(struct disk_guard *g, const char *instance_id)
{
        pthread_mutex_lock(&g->lock);
        snprintf(g->recover_instance, sizeof(g->recover_instance), "%s", instance_id);
        pthread_mutex_unlock(&g->lock);
}

struct disk_state *disk_guard_state(struct disk_guard *g)
{
        return &g->state;
}

void disk_guard_why(struct disk_guard *g, char *why, size_t len)
{
        pthread_mutex_lock(&g->lock);
        snprintf(why, len, "%s", g->why);
        pthread_mutex_unlock(&g->lock);
}
