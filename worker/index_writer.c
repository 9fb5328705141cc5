/* index_writer: a FIFO of events applied by one thread with its own SQLite
 * connection (see index_writer.h).  The queue, its count and every
 * seg_ref.pending pointer are guarded by iw->lock; seg_ref.db_id is touched
 * by the writer thread only.  A busy or full DB keeps the event at the head
 * and is retried every RETRY_US; other errors drop the event, counted and
 * logged once per event (recovery rebuilds rows from the files). */
#include "worker/index_writer.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/time_util.h"
#include "db/db.h"

#define RETRY_US (100 * USEC_PER_MSEC)
#define DETAIL_MAX 128
#define REASON_MAX 32

enum ev_kind { EV_SEG_BEGIN, EV_SEG_UPDATE, EV_GAP, EV_CAMERA };

struct event {
        struct event *next;
        enum ev_kind kind;
        struct seg_ref *ref;
        struct seg_info info;
        void *blob;
        size_t len;
        char camera[CONFIG_ID_MAX], instance[CONFIG_ID_MAX], reason[REASON_MAX], detail[DETAIL_MAX];
        char *url;
        int64_t start_us, end_us;
        int enabled;
};

struct seg_ref {
        atomic_int refs;
        int64_t db_id;         /* writer thread only */
        struct event *pending; /* queued, unapplied update (iw->lock) */
};

struct index_writer {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct event *head, *tail;
        size_t n;
        bool stopping;
        int64_t drain_deadline_mono_us;
        struct db *db;
        pthread_t thread;
        struct index_writer_stats stats;
};

static void seg_ref_put(struct seg_ref *ref)
{
        if (ref && atomic_fetch_sub(&ref->refs, 1) == 1)
                free(ref);
}

void seg_ref_release(struct seg_ref *ref)
{
        seg_ref_put(ref);
}

static void event_free(struct event *ev)
{
        seg_ref_put(ev->ref);
        free(ev->blob);
        free(ev->url);
        free(ev);
}

/* ---- the writer thread ------------------------------------------------------------ */

static void db_segment_from(struct db_segment *d, const struct seg_info *s, int64_t id)
{
        *d = (struct db_segment){ .id = id,
                                  .camera_id = s->camera_id,
                                  .instance_id = s->instance_id,
                                  .path = s->path,
                                  .segment_num = s->segment_num,
                                  .start_us = s->start_us,
                                  .end_us = s->end_us,
                                  .frames = s->frames,
                                  .bytes = s->bytes,
                                  .keyframes = s->keyframes,
                                  .fragments = s->fragments,
                                  .status = s->status,
                                  .overlap_status = "unique",
                                  .time_source = s->time_source,
                                  .clock_offset_us = s->clock_offset_us,
                                  .video_codec = s->video_codec,
                                  .width = s->width,
                                  .height = s->height,
                                  .audio_codec = s->audio_codec,
                                  .pid = getpid(),
                                  .created_us = now_real_us(),
                                  .updated_us = now_real_us() };
}

static int apply(struct index_writer *iw, struct event *ev)
{
        struct db_segment d;
        int64_t now = now_real_us();
        int e;

        switch (ev->kind) {
        case EV_SEG_BEGIN:
        case EV_SEG_UPDATE:
                if (ev->ref->db_id == 0) {
                        db_segment_from(&d, &ev->info, 0);
                        if ((e = db_segment_begin(iw->db, &d, &ev->ref->db_id)) < 0)
                                return e;
                }
                if (ev->kind == EV_SEG_BEGIN)
                        return 0;
                db_segment_from(&d, &ev->info, ev->ref->db_id);
                return db_segment_update(iw->db, &d, ev->blob, ev->len);
        case EV_GAP:
                return db_gap_insert(iw->db, ev->camera, ev->instance, ev->start_us, ev->end_us, ev->reason,
                                     ev->detail, now);
        case EV_CAMERA:
                return db_camera_upsert(iw->db, ev->camera, ev->url, ev->enabled, now);
        }
        return -EINVAL;
}

static bool retryable(int e)
{
        return e == -EBUSY || e == -ENOSPC;
}

static void *writer_thread(void *arg)
{
        struct index_writer *iw = arg;
        int64_t last_busy_log = 0;

        pthread_mutex_lock(&iw->lock);
        for (;;) {
                struct event *ev;
                int e;

                while (!iw->head && !iw->stopping)
                        pthread_cond_wait(&iw->cond, &iw->lock);
                if (!iw->head || (iw->stopping && now_mono_us() >= iw->drain_deadline_mono_us))
                        break; /* what is left is counted by index_writer_stop */
                ev = iw->head;
                iw->head = ev->next;
                if (!iw->head)
                        iw->tail = NULL;
                iw->n--;
                if (ev->kind == EV_SEG_UPDATE && ev->ref->pending == ev)
                        ev->ref->pending = NULL;
                pthread_mutex_unlock(&iw->lock);

                e = apply(iw, ev);

                pthread_mutex_lock(&iw->lock);
                if (e < 0 && retryable(e) && (!iw->stopping || now_mono_us() < iw->drain_deadline_mono_us)) {
                        if (now_mono_us() - last_busy_log > 10 * USEC_PER_SEC) {
                                log_warn("index: database %s (%s), holding %zu updates and retrying",
                                         e == -EBUSY ? "busy" : "full", db_errmsg(iw->db), iw->n + 1);
                                last_busy_log = now_mono_us();
                        }
                        if (ev->kind == EV_SEG_UPDATE && ev->ref->pending) {
                                event_free(ev); /* a newer update of the same row is queued */
                        } else {
                                if (ev->kind == EV_SEG_UPDATE)
                                        ev->ref->pending = ev;
                                ev->next = iw->head;
                                iw->head = ev;
                                if (!iw->tail)
                                        iw->tail = ev;
                                iw->n++;
                        }
                        pthread_mutex_unlock(&iw->lock);
                        usleep(RETRY_US);
                        pthread_mutex_lock(&iw->lock);
                        continue;
                }
                if (e < 0) {
                        iw->stats.db_errors++;
                        iw->stats.last_error_mono_us = now_mono_us();
                        log_err("index: %s for %s dropped: %s (%s)", ev->kind == EV_GAP ? "gap" : "row",
                                ev->kind <= EV_SEG_UPDATE ? ev->info.path : ev->camera, strerror(-e), db_errmsg(iw->db));
                } else {
                        iw->stats.applied++;
                }
                event_free(ev);
        }
        pthread_mutex_unlock(&iw->lock);
        return NULL;
}

/* ---- queue side (camera threads) ---------------------------------------------------- */

/* Appends ev; the caller holds iw->lock.  Only gap and camera rows are ever
 * dropped (at INDEX_QUEUE_MAX): segment events are at most two per segment
 * (begin, plus one coalesced update), so they cannot grow without bound. */
static void enqueue_locked(struct index_writer *iw, struct event *ev)
{
        if (iw->n >= INDEX_QUEUE_MAX && (ev->kind == EV_GAP || ev->kind == EV_CAMERA)) {
                iw->stats.dropped++;
                event_free(ev);
                return;
        }
        if (iw->tail)
                iw->tail->next = ev;
        else
                iw->head = ev;
        iw->tail = ev;
        iw->n++;
        iw->stats.queued++;
        pthread_cond_signal(&iw->cond);
}

static void enqueue(struct index_writer *iw, struct event *ev)
{
        pthread_mutex_lock(&iw->lock);
        enqueue_locked(iw, ev);
        pthread_mutex_unlock(&iw->lock);
}

static struct event *event_new(enum ev_kind kind)
{
        struct event *ev = calloc(1, sizeof(*ev));

        if (ev)
                ev->kind = kind;
        else
                log_err("index: out of memory, one update lost");
        return ev;
}

struct seg_ref *index_writer_segment_begin(struct index_writer *iw, const struct seg_info *s)
{
        struct seg_ref *ref = calloc(1, sizeof(*ref));
        struct event *ev;

        if (!ref)
                return NULL;
        atomic_init(&ref->refs, 1);
        ev = event_new(EV_SEG_BEGIN);
        if (ev) {
                ev->info = *s;
                ev->ref = ref;
                atomic_fetch_add(&ref->refs, 1);
                enqueue(iw, ev);
        }
        return ref;
}

void index_writer_segment_update(struct index_writer *iw, struct seg_ref *ref, const struct seg_info *s,
                                 const void *blob, size_t len)
{
        struct event *ev = NULL;
        void *copy = NULL;

        if (!ref)
                return;
        if (len && !(copy = malloc(len))) {
                log_err("index: out of memory, update of %s lost", s->path);
                return;
        }
        if (len)
                memcpy(copy, blob, len);
        ev = event_new(EV_SEG_UPDATE); /* allocated outside the lock; freed if coalesced */
        pthread_mutex_lock(&iw->lock);
        if (ref->pending) { /* coalesce: the queued update is not applied yet */
                ref->pending->info = *s;
                free(ref->pending->blob);
                ref->pending->blob = copy;
                ref->pending->len = len;
        } else if (ev) {
                ev->info = *s;
                ev->blob = copy;
                ev->len = len;
                ev->ref = ref;
                atomic_fetch_add(&ref->refs, 1);
                ref->pending = ev;
                enqueue_locked(iw, ev);
                ev = NULL;
        } else {
                free(copy);
        }
        pthread_mutex_unlock(&iw->lock);
        if (ev)
                free(ev);
}

void index_writer_gap(struct index_writer *iw, const char *camera_id, const char *instance_id, int64_t start_us,
                      int64_t end_us, const char *reason, const char *detail)
{
        struct event *ev = event_new(EV_GAP);

        if (!ev)
                return;
        snprintf(ev->camera, sizeof(ev->camera), "%s", camera_id);
        snprintf(ev->instance, sizeof(ev->instance), "%s", instance_id);
        snprintf(ev->reason, sizeof(ev->reason), "%s", reason);
        snprintf(ev->detail, sizeof(ev->detail), "%s", detail ? detail : "");
        ev->start_us = start_us;
        ev->end_us = end_us;
        enqueue(iw, ev);
}

void index_writer_camera(struct index_writer *iw, const char *id, const char *url_redacted, int enabled)
{
        struct event *ev = event_new(EV_CAMERA);

        if (!ev)
                return;
        snprintf(ev->camera, sizeof(ev->camera), "%s", id);
        ev->url = strdup(url_redacted);
        ev->enabled = enabled;
        if (!ev->url) {
                event_free(ev);
                return;
        }
        enqueue(iw, ev);
}

void index_writer_get_stats(struct index_writer *iw, struct index_writer_stats *out)
{
        pthread_mutex_lock(&iw->lock);
        *out = iw->stats;
        out->queue_len = iw->n;
        pthread_mutex_unlock(&iw->lock);
}

int index_writer_start(const char *db_path, struct index_writer **out, char *err, size_t errlen)
{
        struct index_writer *iw = calloc(1, sizeof(*iw));
        int e;

        if (!iw)
                return -ENOMEM;
        e = db_open(db_path, &iw->db);
        if (e < 0) {
                snprintf(err, errlen, "%s: cannot open the index database: %s", db_path, strerror(-e));
                free(iw);
                return e;
        }
        pthread_mutex_init(&iw->lock, NULL);
        pthread_cond_init(&iw->cond, NULL);
        e = pthread_create(&iw->thread, NULL, writer_thread, iw);
        if (e) {
                snprintf(err, errlen, "index writer thread: %s", strerror(e));
                db_close(iw->db);
                free(iw);
                return -e;
        }
        *out = iw;
        return 0;
}

size_t index_writer_stop(struct index_writer *iw, int64_t drain_timeout_us)
{
        size_t left = 0;

        pthread_mutex_lock(&iw->lock);
        iw->stopping = true;
        iw->drain_deadline_mono_us = now_mono_us() + drain_timeout_us;
        pthread_cond_signal(&iw->cond);
        pthread_mutex_unlock(&iw->lock);
        pthread_join(iw->thread, NULL);
        while (iw->head) {
                struct event *ev = iw->head;
                iw->head = ev->next;
                event_free(ev);
                left++;
        }
        db_close(iw->db);
        pthread_mutex_destroy(&iw->lock);
        pthread_cond_destroy(&iw->cond);
        free(iw);
        return left;
}
