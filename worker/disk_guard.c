/* disk_guard: see disk_guard.h.  Its DB connection is its own (main thread);
 * deleting a file another instance already deleted is not an error. */
#include "worker/disk_guard.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/log.h"
#include "common/time_util.h"
#include "db/db.h"

#define USEC_PER_DAY (86400 * USEC_PER_SEC)

struct disk_guard {
        const struct mwr_config *cfg;
        struct db *db;
        struct disk_state state;
        bool logged_full;
};

struct victim {
        int64_t id, bytes, end_us;
        char path[PATH_MAX];
};

struct victims {
        struct victim v[DISK_DELETE_BATCH];
        size_t n;
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

static uint64_t free_bytes(const char *dir)
{
        struct statvfs st;

        if (statvfs(dir, &st) < 0)
                return 0;
        return (uint64_t)st.f_bavail * st.f_frsize;
}

static int delete_one(struct disk_guard *g, const struct victim *v, const char *why)
{
        if (unlink(v->path) < 0 && errno != ENOENT) {
                log_err("disk: cannot delete %s: %s", v->path, strerror(errno));
                return -errno;
        }
        if (db_segment_delete(g->db, v->id) < 0 && strcmp(db_errmsg(g->db), "") != 0)
                log_warn("disk: %s deleted but its row stays: %s", v->path, db_errmsg(g->db));
        atomic_fetch_add(&g->state.deleted_segments, 1);
        atomic_fetch_add(&g->state.deleted_bytes, (uint64_t)(v->bytes > 0 ? v->bytes : 0));
        log_notice("disk: deleted %s (%s)", v->path, why);
        return 0;
}

/* Deletes oldest-first while need() says so; returns segments deleted. */
static size_t delete_while(struct disk_guard *g, bool (*need)(struct disk_guard *, const struct victim *),
                           const char *why)
{
        size_t deleted = 0;

        for (;;) {
                struct victims vs = { .n = 0 };
                size_t round = 0;

                if (db_segments_oldest(g->db, DISK_DELETE_BATCH, collect, &vs) < 0 || vs.n == 0)
                        return deleted;
                for (size_t i = 0; i < vs.n; i++) {
                        if (!need(g, &vs.v[i]))
                                return deleted;
                        if (delete_one(g, &vs.v[i], why) == 0)
                                round++;
                }
                deleted += round;
                if (round == 0)
                        return deleted;
        }
}

static bool need_space(struct disk_guard *g, const struct victim *v)
{
        return free_bytes(g->cfg->storage_dir) < g->cfg->disk.min_free_bytes + DISK_RESUME_MARGIN;
}

static bool too_old(struct disk_guard *g, const struct victim *v)
{
        return v->end_us < now_real_us() - (int64_t)g->cfg->disk.retention_days * USEC_PER_DAY;
}

static bool too_big(struct disk_guard *g, const struct victim *v)
{
        int64_t total = 0;

        return db_segments_total_bytes(g->db, &total) == 0 && (uint64_t)total > g->cfg->disk.max_total_bytes;
}

void disk_guard_tick(struct disk_guard *g)
{
        const struct mwr_config *c = g->cfg;
        uint64_t free_b = free_bytes(c->storage_dir), resume = c->disk.min_free_bytes + DISK_RESUME_MARGIN;
        bool full = atomic_load(&g->state.full);

        if (c->disk.retention_days > 0)
                delete_while(g, too_old, "older than retention_days");
        if (c->disk.max_total_bytes > 0)
                delete_while(g, too_big, "over max_total_gb");
        if (free_b < c->disk.min_free_bytes) {
                delete_while(g, need_space, "free space under min_free_mb");
                free_b = free_bytes(c->storage_dir);
        }
        atomic_store(&g->state.free_bytes, free_b);
        if (!full && free_b < c->disk.min_free_bytes) {
                atomic_store(&g->state.full, true);
                full = true;
        } else if (full && free_b >= resume) {
                atomic_store(&g->state.full, false);
                log_notice("disk: %.1f MB free again, recording resumes", (double)free_b / 1e6);
                g->logged_full = false;
                return;
        }
        if (full && !g->logged_full) {
                log_err("disk: storage full (%.1f MB free, floor %.1f MB) and nothing left to delete: "
                        "recording paused until space returns",
                        (double)free_b / 1e6, (double)c->disk.min_free_bytes / 1e6);
                g->logged_full = true;
        }
}

int disk_guard_new(const struct mwr_config *cfg, struct disk_guard **out)
{
        struct disk_guard *g = calloc(1, sizeof(*g));
        int e;

        if (!g)
                return -ENOMEM;
        g->cfg = cfg;
        atomic_init(&g->state.full, false);
        atomic_init(&g->state.free_bytes, free_bytes(cfg->storage_dir));
        e = db_open(cfg->db_path, &g->db);
        if (e < 0) {
                free(g);
                return e;
        }
        *out = g;
        return 0;
}

void disk_guard_free(struct disk_guard *g)
{
        if (!g)
                return;
        db_close(g->db);
        free(g);
}

void disk_guard_set_config(struct disk_guard *g, const struct mwr_config *cfg)
{
        g->cfg = cfg;
}

struct disk_state *disk_guard_state(struct disk_guard *g)
{
        return &g->state;
}
