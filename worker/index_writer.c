/* index_writer: a FIFO of events applied by one thread with its own SQLite
 * connection (see index_writer.h).  The queue, its count and bytes, the
 * re-index list and every seg_ref's pending/dirty are guarded by iw->lock;
 * seg_ref.db_id is touched by the writer thread only.  A busy or full DB
 * keeps the event at the head and is retried every RETRY_US; other errors
 * drop the event, counted and logged once per event (recovery rebuilds rows
 * from the files). */
#include "worker/index_writer.h"

#include <errno.h>
#include <inttypes.h>
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
#include "worker/recovery.h"

#define RETRY_US (100 * USEC_PER_MSEC)
#define DETAIL_MAX 128
#define REASON_MAX 32

enum ev_kind { EV_SEG_BEGIN, EV_SEG_UPDATE, EV_GAP, EV_CAMERA, EV_LEASE };

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
        char lease_state[12];
        int64_t last_frame_us, limited_us; /* EV_LEASE; start_us is its since_us */
};

struct seg_ref {
        atomic_int refs;
        int64_t db_id;         /* writer thread only */
        struct event *pending; /* queued, unapplied update (iw->lock) */
        bool dirty;            /* an event of it was dropped and none queued since (iw->lock) */
        bool listed;           /* on the re-index list (iw->lock) */
};

/* A segment whose row could not be queued: rebuilt from its file once the
 * camera has closed it and the queue is empty.  Small: the path is its own
 * allocation, not PATH_MAX. */
struct reindex {
        struct reindex *next;
        struct seg_ref *ref; /* holds a reference */
        char camera[CONFIG_ID_MAX], instance[CONFIG_ID_MAX], time_source[8], status[12];
        char video_codec[16], audio_codec[16];
        char *path;
        int64_t segment_num, start_us, clock_offset_us;
        int width, height;
};

struct index_writer {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct event *head, *tail;
        size_t n, bytes, max_bytes;
        struct reindex *rx; /* LIFO: order does not matter */
        size_t n_rx;
        bool stopping, overflowing;
        int64_t drain_deadline_mono_us;
        struct db *db;
        pthread_t thread;
        struct index_writer_stats stats;
};

static size_t event_cost(const struct event *ev)
{
        return sizeof(*ev) + ev->len + (ev->url ? strlen(ev->url) + 1 : 0);
}

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
        case EV_LEASE: {
                struct db_lease l = { .camera_id = ev->camera, .instance_id = ev->instance, .state = ev->lease_state,
                                      .since_us = ev->start_us, .last_frame_us = ev->last_frame_us,
                                      .heartbeat_us = now, .limited_us = ev->limited_us };

                return db_lease_put(iw->db, &l);
        }
        }
        return -EINVAL;
}

static bool retryable(int e)
{
        return e == -EBUSY || e == -ENOSPC;
}

/* The first listed segment its camera has closed (the list holds the last
 * reference), taken off the list; NULL when none.  iw->lock held. */
static struct reindex *rx_take_closed(struct index_writer *iw)
{
        for (struct reindex **pp = &iw->rx; *pp; pp = &(*pp)->next) {
                struct reindex *x = *pp;

                if (atomic_load(&x->ref->refs) == 1) {
                        *pp = x->next;
                        iw->n_rx--;
                        x->ref->listed = false;
                        return x;
                }
        }
        return NULL;
}

static void rx_free(struct reindex *x)
{
        seg_ref_put(x->ref);
        free(x->path);
        free(x);
}

/* Rebuilds x's row from its file, unless a later update of it was queued
 * (and so carried everything).  -EBUSY: the DB is busy again, try later. */
static int rx_apply(struct index_writer *iw, struct reindex *x, bool dirty)
{
        struct recovery_hint h = { .id = x->ref->db_id, .camera = x->camera, .instance = x->instance,
                                   .path = x->path, .time_source = x->time_source,
                                   .status = strcmp(x->status, "recording") ? x->status : "partial",
                                   .segment_num = x->segment_num, .start_us = x->start_us,
                                   .clock_offset_us = x->clock_offset_us, .pid = getpid(),
                                   .video_codec = x->video_codec, .audio_codec = x->audio_codec,
                                   .width = x->width, .height = x->height };
        int64_t frames = 0;
        int e;

        if (!dirty)
                return 0;
        e = recovery_index_file(iw->db, &h, &frames);
        if (retryable(e))
                return -EBUSY;
        pthread_mutex_lock(&iw->lock);
        if (e < 0) {
                iw->stats.db_errors++;
                iw->stats.last_error_mono_us = now_mono_us();
        } else {
                iw->stats.reindexed++;
        }
        pthread_mutex_unlock(&iw->lock);
        if (e < 0)
                log_err("index: %s: its row could not be queued and is not rebuilt from the file: %s (%s); "
                        "the next start's recovery does it",
                        x->path, strerror(-e), db_errmsg(iw->db));
        else
                log_notice("index: %s: row rebuilt from the file (%" PRId64 " frames) after the queue overflowed",
                           x->path, frames);
        return 0;
}

static void *writer_thread(void *arg)
{
        struct index_writer *iw = arg;
        int64_t last_busy_log = 0;

        pthread_mutex_lock(&iw->lock);
        for (;;) {
                struct event *ev;
                int e;

                if (!iw->head) {
                        struct reindex *x;

                        if (iw->overflowing) {
                                iw->overflowing = false;
                                log_notice("index: queue drained; %" PRIu64 " updates were dropped so far, "
                                           "%zu segments wait to be rebuilt from their files",
                                           iw->stats.dropped, iw->n_rx);
                        }
                        if (iw->stopping && now_mono_us() >= iw->drain_deadline_mono_us)
                                break;
                        if ((x = rx_take_closed(iw))) {
                                bool dirty = x->ref->dirty;

                                pthread_mutex_unlock(&iw->lock);
                                e = rx_apply(iw, x, dirty);
                                pthread_mutex_lock(&iw->lock);
                                if (e == -EBUSY) { /* back on the list, after a breath */
                                        x->next = iw->rx;
                                        iw->rx = x;
                                        iw->n_rx++;
                                        x->ref->listed = true;
                                        pthread_mutex_unlock(&iw->lock);
                                        usleep(RETRY_US);
                                        pthread_mutex_lock(&iw->lock);
                                } else {
                                        rx_free(x);
                                }
                                continue;
                        }
                        if (iw->stopping)
                                break;
                        if (iw->rx) { /* a camera closing a listed segment does not signal: look again */
                                struct timespec t;

                                clock_gettime(CLOCK_REALTIME, &t);
                                t.tv_sec += 1;
                                pthread_cond_timedwait(&iw->cond, &iw->lock, &t);
                        } else {
                                pthread_cond_wait(&iw->cond, &iw->lock);
                        }
                        continue;
                }
                if (iw->stopping && now_mono_us() >= iw->drain_deadline_mono_us)
                        break; /* what is left is counted by index_writer_stop */
                ev = iw->head;
                iw->head = ev->next;
                if (!iw->head)
                        iw->tail = NULL;
                iw->n--;
                iw->bytes -= event_cost(ev);
                if (ev->kind == EV_SEG_UPDATE && ev->ref->pending == ev)
                        ev->ref->pending = NULL;
                pthread_mutex_unlock(&iw->lock);

                e = apply(iw, ev);

                pthread_mutex_lock(&iw->lock);
                if (e < 0 && retryable(e) && (!iw->stopping || now_mono_us() < iw->drain_deadline_mono_us)) {
                        if (now_mono_us() - last_busy_log > 10 * USEC_PER_SEC) {
                                log_warn("index: database %s (%s), holding %zu updates (%.1f MB) and retrying",
                                         e == -EBUSY ? "busy" : "full", db_errmsg(iw->db), iw->n + 1,
                                         (double)(iw->bytes + event_cost(ev)) / 1e6);
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
                                iw->bytes += event_cost(ev); /* it was counted in: may go over by one */
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

/* ev does not fit: counted, and a segment's is listed for a rebuild from
 * its file.  The caller holds iw->lock and frees ev. */
static void overflow_locked(struct index_writer *iw, const struct event *ev)
{
        struct reindex *x;

        iw->stats.dropped++;
        if (!iw->overflowing) {
                iw->overflowing = true;
                log_err("index: %zu updates (%.1f MB) wait for the database: new ones are dropped and counted; "
                        "segments are rebuilt from their files once it answers",
                        iw->n, (double)iw->bytes / 1e6);
        }
        if (ev->kind != EV_SEG_BEGIN && ev->kind != EV_SEG_UPDATE)
                return; /* a gap or camera row: the timeline still shows the hole */
        ev->ref->dirty = true;
        if (ev->ref->listed)
                goto status;
        if (iw->n_rx >= INDEX_REINDEX_MAX || !(x = calloc(1, sizeof(*x))) || !(x->path = strdup(ev->info.path))) {
                if (iw->n_rx < INDEX_REINDEX_MAX)
                        free(x);
                if (iw->stats.reindex_lost++ == 0)
                        log_err("index: more than %d segments wait to be rebuilt: %s and later ones are left to the "
                                "next start's recovery",
                                INDEX_REINDEX_MAX, ev->info.path);
                return;
        }
        x->ref = ev->ref;
        atomic_fetch_add(&x->ref->refs, 1);
        snprintf(x->camera, sizeof(x->camera), "%s", ev->info.camera_id);
        snprintf(x->instance, sizeof(x->instance), "%s", ev->info.instance_id);
        snprintf(x->time_source, sizeof(x->time_source), "%s", ev->info.time_source);
        snprintf(x->video_codec, sizeof(x->video_codec), "%s", ev->info.video_codec);
        snprintf(x->audio_codec, sizeof(x->audio_codec), "%s", ev->info.audio_codec);
        x->segment_num = ev->info.segment_num;
        x->start_us = ev->info.start_us;
        x->clock_offset_us = ev->info.clock_offset_us;
        x->width = ev->info.width;
        x->height = ev->info.height;
        x->next = iw->rx;
        iw->rx = x;
        iw->n_rx++;
        ev->ref->listed = true;
status:
        for (x = iw->rx; x; x = x->next)
                if (x->ref == ev->ref)
                        snprintf(x->status, sizeof(x->status), "%s", ev->info.status ? ev->info.status : "recording");
}

/* Appends ev, or drops it when the queue would pass its byte bound; the
 * caller holds iw->lock. */
static bool enqueue_locked(struct index_writer *iw, struct event *ev)
{
        size_t cost = event_cost(ev);

        if (iw->bytes + cost > iw->max_bytes) {
                overflow_locked(iw, ev);
                event_free(ev);
                return false;
        }
        if (ev->kind == EV_SEG_UPDATE)
                ev->ref->dirty = false; /* it carries the whole row */
        if (iw->tail)
                iw->tail->next = ev;
        else
                iw->head = ev;
        iw->tail = ev;
        iw->n++;
        iw->bytes += cost;
        iw->stats.queued++;
        pthread_cond_signal(&iw->cond);
        return true;
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
        if (ref->pending) { /* coalesce: the queued update is not applied yet (one per segment: never dropped) */
                iw->bytes = iw->bytes - ref->pending->len + len;
                ref->pending->info = *s;
                free(ref->pending->blob);
                ref->pending->blob = copy;
                ref->pending->len = len;
                ref->dirty = false;
        } else if (ev) {
                ev->info = *s;
                ev->blob = copy;
                ev->len = len;
                ev->ref = ref;
                atomic_fetch_add(&ref->refs, 1);
                ref->pending = ev;
                if (!enqueue_locked(iw, ev)) /* dropped (and freed) */
                        ref->pending = NULL;
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

void index_writer_lease(struct index_writer *iw, const char *camera_id, const char *instance_id, const char *state,
                        int64_t since_us, int64_t last_frame_us, int64_t limited_us)
{
        struct event *ev = event_new(EV_LEASE);

        if (!ev)
                return;
        snprintf(ev->camera, sizeof(ev->camera), "%s", camera_id);
        snprintf(ev->instance, sizeof(ev->instance), "%s", instance_id);
        snprintf(ev->lease_state, sizeof(ev->lease_state), "%s", state);
        ev->start_us = since_us;
        ev->last_frame_us = last_frame_us;
        ev->limited_us = limited_us;
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
        out->queue_bytes = iw->bytes;
        out->reindex_waiting = iw->n_rx;
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
        iw->max_bytes = INDEX_QUEUE_MAX_BYTES;
        {
                const char *t = getenv("MWR_TEST_INDEX_QUEUE_BYTES"); /* tests only: a small bound */

                if (t && atol(t) > 0)
                        iw->max_bytes = (size_t)atol(t);
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
        while (iw->rx) {
                struct reindex *x = iw->rx;

                iw->rx = x->next;
                left += x->ref->dirty;
                rx_free(x);
        }
        db_close(iw->db);
        pthread_mutex_destroy(&iw->lock);
        pthread_cond_destroy(&iw->cond);
        free(iw);
        return left;
}
