#include "worker/exports.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/time_util.h"
#include "continuity/loader.h"
#include "continuity/timeline.h"
#include "db/db.h"
#include "mwr/export.h"

enum state { J_FREE, J_RUNNING, J_DONE, J_FAILED };

struct job {
        struct exports *x;
        int64_t id;
        char camera[CONFIG_ID_MAX];
        int64_t from_us, to_us;
        _Atomic int state;
        _Atomic size_t done, total;
        int64_t ended_mono_us;
        char path[PATH_MAX]; /* part 1; the others are export_part_path's */
        char err[512];
        struct export_stats st;
        pthread_t thread;
};

struct exports {
        pthread_mutex_t lock; /* the table; a running job's fields below `state` are its thread's */
        char db_path[PATH_MAX], dir[PATH_MAX];
        int64_t next_id;
        struct job jobs[EXPORTS_JOBS_MAX];
};

/* What an earlier run left (a job cut short by the stop) goes. */
static void clean_dir(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *de;
        char p[PATH_MAX];

        if (!d)
                return;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.' && snprintf(p, sizeof(p), "%s/%s", dir, de->d_name) < (int)sizeof(p))
                        unlink(p);
        closedir(d);
}

int exports_new(const char *db_path, const char *storage_dir, struct exports **out)
{
        struct exports *x = calloc(1, sizeof(*x));

        if (!x)
                return -ENOMEM;
        pthread_mutex_init(&x->lock, NULL);
        snprintf(x->db_path, sizeof(x->db_path), "%s", db_path);
        snprintf(x->dir, sizeof(x->dir), "%s/.exports", storage_dir);
        x->next_id = 1;
        clean_dir(x->dir);
        *out = x;
        return 0;
}

static void remove_files(struct job *j)
{
        char p[PATH_MAX];

        for (size_t k = 0; k < EXPORT_MAX_PARTS; k++)
                if (export_part_path(j->path, k, p, sizeof(p)) == 0 && unlink(p) < 0 && errno == ENOENT && k > 0)
                        break;
}

static void progress(size_t done, size_t total, void *ctx)
{
        struct job *j = ctx;

        atomic_store(&j->done, done);
        atomic_store(&j->total, total);
}

static void *run(void *arg)
{
        struct job *j = arg;
        struct db *db = NULL;
        struct tl_input in = { 0 };
        struct tl_result r = { 0 };
        struct tl_options o = { .from_us = j->from_us, .to_us = j->to_us };
        struct export_piece *p = NULL;
        int e;

        if ((e = db_open(j->x->db_path, &db)) < 0) {
                snprintf(j->err, sizeof(j->err), "index %.300s: %s", j->x->db_path, strerror(-e));
                goto out;
        }
        if ((e = tl_load(db, j->camera, j->from_us, j->to_us, &in)) < 0) {
                snprintf(j->err, sizeof(j->err), "reading %s's segments: %s", j->camera, db_errmsg(db));
                goto out;
        }
        if ((e = tl_build(in.segs, in.n, &o, &r)) < 0) {
                snprintf(j->err, sizeof(j->err), "building %s's timeline: %s", j->camera, strerror(-e));
                goto out;
        }
        if (r.n_pieces == 0) {
                e = -ENOENT;
                snprintf(j->err, sizeof(j->err), "camera %s has no footage in that range", j->camera);
                goto out;
        }
        if (!(p = export_pieces(in.segs, &r))) {
                e = -ENOMEM;
                snprintf(j->err, sizeof(j->err), "out of memory");
                goto out;
        }
        atomic_store(&j->total, r.frames);
        if ((e = fs_mkdir_p(j->x->dir)) < 0)
                snprintf(j->err, sizeof(j->err), "%.300s: %s", j->x->dir, strerror(-e));
        else
                e = export_write(p, r.n_pieces, j->path, progress, j, j->err, sizeof(j->err), &j->st);
out:
        free(p);
        tl_result_free(&r);
        tl_input_free(&in);
        db_close(db);
        if (e < 0)
                log_warn("export %" PRId64 " of %s: %s", j->id, j->camera, j->err);
        else
                log_info("export %" PRId64 " of %s: %zu frames in %zu files", j->id, j->camera, j->st.frames,
                         j->st.n_parts);
        j->ended_mono_us = now_mono_us();
        atomic_store(&j->state, e < 0 ? J_FAILED : J_DONE);
        return NULL;
}

/* Forget finished jobs older than EXPORTS_KEEP_S (with the lock held). */
static void expire(struct exports *x)
{
        int64_t now = now_mono_us();

        for (size_t i = 0; i < EXPORTS_JOBS_MAX; i++) {
                struct job *j = &x->jobs[i];
                int st = atomic_load(&j->state);

                if ((st == J_DONE || st == J_FAILED) && now - j->ended_mono_us > (int64_t)EXPORTS_KEEP_S * 1000000) {
                        pthread_join(j->thread, NULL);
                        remove_files(j);
                        memset(j, 0, sizeof(*j));
                }
        }
}

int exports_start(struct exports *x, const char *camera, int64_t from_us, int64_t to_us, int64_t *id, char *err,
                  size_t errlen)
{
        struct job *j = NULL;
        int running = 0, e;

        if (to_us <= from_us || to_us - from_us > EXPORTS_RANGE_MAX_US) {
                snprintf(err, errlen, "from must be before to, at most 6 hours apart");
                return -EINVAL;
        }
        pthread_mutex_lock(&x->lock);
        expire(x);
        for (size_t i = 0; i < EXPORTS_JOBS_MAX; i++) {
                int st = atomic_load(&x->jobs[i].state);

                running += st == J_RUNNING;
                if (st == J_FREE && !j)
                        j = &x->jobs[i];
        }
        if (running >= EXPORTS_RUNNING_MAX || !j) {
                pthread_mutex_unlock(&x->lock);
                snprintf(err, errlen, running >= EXPORTS_RUNNING_MAX ? "%d exports are running: try again when one is done"
                                                                      : "%d exports are kept: try again later",
                         running >= EXPORTS_RUNNING_MAX ? EXPORTS_RUNNING_MAX : EXPORTS_JOBS_MAX);
                return -EBUSY;
        }
        memset(j, 0, sizeof(*j));
        j->x = x;
        j->id = x->next_id++;
        snprintf(j->camera, sizeof(j->camera), "%s", camera);
        j->from_us = from_us;
        j->to_us = to_us;
        snprintf(j->path, sizeof(j->path), "%.3900s/%" PRId64 "-%s.mp4", x->dir, j->id, camera);
        atomic_store(&j->state, J_RUNNING);
        if ((e = pthread_create(&j->thread, NULL, run, j)) != 0) {
                atomic_store(&j->state, J_FREE);
                pthread_mutex_unlock(&x->lock);
                snprintf(err, errlen, "no thread for the export: %s", strerror(e));
                return -EBUSY;
        }
        *id = j->id;
        pthread_mutex_unlock(&x->lock);
        return 0;
}

static struct job *find(struct exports *x, const char *camera, int64_t id)
{
        for (size_t i = 0; i < EXPORTS_JOBS_MAX; i++)
                if (atomic_load(&x->jobs[i].state) != J_FREE && x->jobs[i].id == id &&
                    !strcmp(x->jobs[i].camera, camera))
                        return &x->jobs[i];
        return NULL;
}

cJSON *exports_status(struct exports *x, const char *camera, int64_t id)
{
        static const char *const names[] = { "free", "running", "done", "failed" };
        cJSON *o = NULL, *parts;
        struct job *j;
        int st;

        pthread_mutex_lock(&x->lock);
        expire(x);
        if (!(j = find(x, camera, id)))
                goto out;
        st = atomic_load(&j->state);
        o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)j->id);
        cJSON_AddStringToObject(o, "camera", j->camera);
        cJSON_AddNumberToObject(o, "from_us", (double)j->from_us);
        cJSON_AddNumberToObject(o, "to_us", (double)j->to_us);
        cJSON_AddStringToObject(o, "state", names[st]);
        cJSON_AddNumberToObject(o, "frames_done", (double)atomic_load(&j->done));
        cJSON_AddNumberToObject(o, "frames_total", (double)atomic_load(&j->total));
        cJSON_AddStringToObject(o, "error", st == J_FAILED ? j->err : "");
        parts = cJSON_AddArrayToObject(o, "parts");
        if (st == J_DONE)
                for (size_t k = 0; k < j->st.n_parts; k++) {
                        const struct export_part *pt = &j->st.parts[k];
                        cJSON *p = cJSON_CreateObject();
                        struct stat sb;

                        cJSON_AddNumberToObject(p, "part", (double)(k + 1));
                        cJSON_AddNumberToObject(p, "frames", (double)pt->frames);
                        cJSON_AddNumberToObject(p, "width", pt->width);
                        cJSON_AddNumberToObject(p, "height", pt->height);
                        cJSON_AddStringToObject(p, "codec", pt->codec ? pt->codec : "");
                        cJSON_AddNumberToObject(p, "bytes", stat(pt->path, &sb) == 0 ? (double)sb.st_size : 0);
                        cJSON_AddItemToArray(parts, p);
                }
out:
        pthread_mutex_unlock(&x->lock);
        return o;
}

int exports_open(struct exports *x, const char *camera, int64_t id, int part, off_t *size)
{
        struct job *j;
        struct stat sb;
        int fd = -ENOENT;

        pthread_mutex_lock(&x->lock);
        expire(x);
        if (!(j = find(x, camera, id)) || atomic_load(&j->state) == J_FAILED)
                goto out;
        if (atomic_load(&j->state) == J_RUNNING) {
                fd = -EAGAIN;
                goto out;
        }
        if (part < 1 || (size_t)part > j->st.n_parts)
                goto out;
        fd = open(j->st.parts[part - 1].path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                fd = -errno;
        else if (fstat(fd, &sb) < 0) {
                close(fd);
                fd = -EIO;
        } else {
                *size = sb.st_size;
        }
out:
        pthread_mutex_unlock(&x->lock);
        return fd;
}

/* A stop does not wait for a long export: a job still running keeps the
 * table (it is left to the exit), and the next start cleans its files. */
void exports_free(struct exports *x)
{
        bool running = false;

        if (!x)
                return;
        pthread_mutex_lock(&x->lock);
        for (size_t i = 0; i < EXPORTS_JOBS_MAX; i++) {
                struct job *j = &x->jobs[i];
                int st = atomic_load(&j->state);

                if (st == J_RUNNING) {
                        running = true;
                } else if (st != J_FREE) {
                        pthread_join(j->thread, NULL);
                        remove_files(j);
                }
        }
        pthread_mutex_unlock(&x->lock);
        if (running)
                return;
        pthread_mutex_destroy(&x->lock);
        free(x);
}
