/* mwr-worker: one recording instance.  Parses the config once, repairs what a
 * crashed instance left, starts one recorder thread per enabled camera and
 * the index writer, then waits for signals in the main thread:
 * SIGTERM/SIGINT = finish every segment and exit 0; SIGHUP = reload the
 * camera list (untouched cameras keep recording).  Exit 2 = bad usage or
 * config, 1 = runtime failure. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavformat/avformat.h>
#include <libavutil/log.h>

#include "common/config.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/time_util.h"
#include <pthread.h>
#include <systemd/sd-daemon.h>

#include "worker/disk_guard.h"
#include "worker/http.h"
#include "worker/status.h"
#include "worker/timeline.h"
#include "worker/index_writer.h"
#include "worker/probe.h"
#include "worker/recorder.h"
#include "worker/rtsp_error.h"
#include "worker/recovery.h"

#define DRAIN_TIMEOUT_US (10 * USEC_PER_SEC) /* index rows still queued at exit */

struct args {
        const char *config, *instance_id;
        int port;
        bool check_config, probe;
};

struct camera_slot {
        struct config_camera cam; /* url owned by the config it came from */
        struct recorder *rec;
};

struct worker {
        struct args a;
        struct mwr_config *cfg;
        struct index_writer *iw;
        struct disk_guard *disk;
        struct http_server *http;
        pthread_rwlock_t slots_lock; /* slots/n_slots: written by reload, read by HTTP */
        struct camera_slot slots[CONFIG_MAX_CAMERAS];
        size_t n_slots;
        int64_t start_mono_us;
        pthread_mutex_t ready_lock;  /* ready_since_real_us: main thread and HTTP thread */
        int64_t ready_since_real_us;
        /* sd_notify, main thread only */
        bool ready_sent;
        char last_status[512];
        uint64_t watchdog_usec;
        int64_t next_watchdog_mono_us;
        uint64_t heartbeats[CONFIG_MAX_CAMERAS];
};

#define TICK_MS 250 /* main loop: signals, sd_notify, watchdog */
/* Hand freed heap back this often.  64 camera threads share glibc's arenas;
 * a fragment buffer, a probe's decoded pictures and an I-frame's packet are
 * freed in one arena and the next is taken in another, so freed pages
 * stayed resident: 64 cameras at 4 Mbit/s sat at 210 MB, 144 MB just after
 * a trim (docs/benchmarks.md). */
#define TRIM_EVERY_US (10 * INT64_C(1000000))

static void usage(FILE *f)
{
        fprintf(f, "usage: mwr-worker --config FILE --instance-id ID --port PORT\n"
                   "       mwr-worker --config FILE --check-config\n"
                   "       mwr-worker --config FILE --probe-cameras   (one line per enabled camera; exit 1 if any fails)\n"
                   "Records every enabled camera of FILE into fragmented-MP4 segments indexed in SQLite.\n"
                   "Signals: SIGTERM/SIGINT stop gracefully, SIGHUP reloads the camera list.\n");
}

static bool id_ok(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n >= CONFIG_ID_MAX)
                return false;
        return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

static int args_parse(int argc, char **argv, struct args *a)
{
        static const struct option lo[] = { { "config", required_argument, NULL, 'c' },
                                            { "instance-id", required_argument, NULL, 'i' },
                                            { "port", required_argument, NULL, 'p' },
                                            { "check-config", no_argument, NULL, 'k' },
                                            { "probe-cameras", no_argument, NULL, 'P' },
                                            { "help", no_argument, NULL, 'h' },
                                            { "version", no_argument, NULL, 'V' },
                                            { 0 } };
        char *end;
        int c;

        *a = (struct args){ .port = 0 };
        while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
                switch (c) {
                case 'c': a->config = optarg; break;
                case 'i': a->instance_id = optarg; break;
                case 'p':
                        errno = 0;
                        a->port = (int)strtol(optarg, &end, 10);
                        if (errno || *end || a->port < 1 || a->port > 65535) {
                                fprintf(stderr, "mwr-worker: --port must be 1..65535, got '%s'\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case 'k': a->check_config = true; break;
                case 'P': a->probe = true; break;
                case 'h': usage(stdout); exit(0);
                case 'V': printf("mwr-worker %s (%s)\n", MWR_VERSION, MWR_COMMIT); exit(0);
                default: usage(stderr); return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "mwr-worker: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        if (!a->config) {
                fprintf(stderr, "mwr-worker: --config is required\n");
                return -EINVAL;
        }
        if (a->probe)
                a->check_config = true; /* needs no instance or port either */
        if (!a->check_config && (!a->instance_id || !id_ok(a->instance_id))) {
                fprintf(stderr, "mwr-worker: --instance-id must match [A-Za-z0-9_-]{1,31}\n");
                return -EINVAL;
        }
        if (!a->check_config && a->port == 0) {
                fprintf(stderr, "mwr-worker: --port is required\n");
                return -EINVAL;
        }
        return 0;
}

static int camera_start(struct worker *w, struct camera_slot *slot)
{
        char redacted[CONFIG_URL_MAX];
        struct recorder_opts o = { .camera = slot->cam,
                                   .storage_dir = w->cfg->storage_dir,
                                   .instance_id = w->a.instance_id,
                                   .db_path = w->cfg->db_path,
                                   .segment_seconds = w->cfg->segment_seconds,
                                   .first_segment_num = recovery_next_segment_num(w->cfg, slot->cam.id,
                                                                                  w->a.instance_id),
                                   .iw = w->iw,
                                   .disk = disk_guard_state(w->disk) };
        int e;

        config_url_redact(slot->cam.url, redacted, sizeof(redacted));
        index_writer_camera(w->iw, slot->cam.id, redacted, slot->cam.enabled);
        e = recorder_start(&slot->rec, &o);
        if (e < 0)
                log_err("camera %s: cannot start recorder: %s", slot->cam.id, strerror(-e));
        else
                log_info("camera %s: recording %s", slot->cam.id, redacted);
        return e;
}

static void camera_stop(struct camera_slot *slot)
{
        if (slot->rec) {
                recorder_request_stop(slot->rec);
                recorder_join(slot->rec);
                slot->rec = NULL;
        }
}

static bool camera_same(const struct config_camera *a, const struct config_camera *b)
{
        return !strcmp(a->id, b->id) && !strcmp(a->url, b->url) && a->enabled == b->enabled &&
               a->transport == b->transport;
}

/* Fills slots from cfg: slots[i].cam points into cfg. */
static void slots_from_config(struct worker *w)
{
        w->n_slots = 0;
        for (size_t i = 0; i < w->cfg->n_cameras; i++)
                if (w->cfg->cameras[i].enabled)
                        w->slots[w->n_slots++] = (struct camera_slot){ .cam = w->cfg->cameras[i] };
}

/* SIGHUP: cameras removed or changed stop (segments finished), added or
 * changed start; the rest keep their recorder and lose nothing.  The slots
 * lock is held only to swap arrays: joining a recorder (up to its drain and
 * segment close) and starting one (a DB lookup) happen outside it, so
 * /health never waits on a reload. */
static void worker_reload(struct worker *w)
{
        char err[CONFIG_ERR_MAX];
        struct mwr_config *next, *prev;
        struct camera_slot old[CONFIG_MAX_CAMERAS], fresh[CONFIG_MAX_CAMERAS];
        size_t n_old = w->n_slots, n_kept = 0, n_fresh = 0, started = 0, stopped = 0;

        if (config_load(w->a.config, &next, err) < 0) {
                log_err("reload refused, keeping the running config: %s", err);
                return;
        }
        memcpy(old, w->slots, sizeof(old)); /* this thread is the only one that changes slots */
        pthread_rwlock_wrlock(&w->slots_lock);
        prev = w->cfg;
        w->cfg = next;
        slots_from_config(w); /* every camera of next, no recorder yet */
        for (size_t i = 0; i < w->n_slots; i++)
                for (size_t j = 0; j < n_old; j++)
                        if (old[j].rec && camera_same(&w->slots[i].cam, &old[j].cam)) {
                                w->slots[i].rec = old[j].rec; /* kept */
                                old[j].rec = NULL;
                        }
        for (size_t i = 0; i < w->n_slots; i++) /* the new ones join once started */
                if (w->slots[i].rec)
                        w->slots[n_kept++] = w->slots[i];
                else
                        fresh[n_fresh++] = w->slots[i];
        w->n_slots = n_kept;
        pthread_rwlock_unlock(&w->slots_lock);
        disk_guard_set_config(w->disk, next);

        for (size_t j = 0; j < n_old; j++) /* removed or changed: all stop at once, then joined */
                if (old[j].rec)
                        recorder_request_stop(old[j].rec);
        for (size_t j = 0; j < n_old; j++)
                if (old[j].rec) {
                        camera_stop(&old[j]);
                        stopped++;
                }
        config_free(prev); /* recorders keep copies of what they use */
        for (size_t i = 0; i < n_fresh; i++)
                if (camera_start(w, &fresh[i]) == 0)
                        started++;
        pthread_rwlock_wrlock(&w->slots_lock);
        for (size_t i = 0; i < n_fresh; i++)
                if (fresh[i].rec)
                        w->slots[w->n_slots++] = fresh[i];
        pthread_rwlock_unlock(&w->slots_lock);
        log_notice("reloaded %s: %zu cameras kept, %zu started, %zu stopped", w->a.config, n_kept, started, stopped);
}

static void worker_stop(struct worker *w)
{
        int64_t t0 = now_mono_us();
        size_t left;

        for (size_t i = 0; i < w->n_slots; i++)
                if (w->slots[i].rec)
                        recorder_request_stop(w->slots[i].rec);
        for (size_t i = 0; i < w->n_slots; i++)
                camera_stop(&w->slots[i]);
        left = index_writer_stop(w->iw, DRAIN_TIMEOUT_US);
        if (left)
                log_err("%zu index updates could not be written; the next start indexes their files", left);
        log_notice("stopped: %zu cameras finalized in %.3f s", w->n_slots, (double)(now_mono_us() - t0) / 1e6);
}

static const char *camera_state(const struct recorder_stats *st, bool disk_full)
{
        int state = atomic_load(&st->state);

        if (disk_full && state == RECORDER_RECORDING)
                return "paused";
        return recorder_state_name(state);
}

/* Fills a status snapshot: called by the HTTP thread and the main loop. */
static void worker_snapshot(void *ctx, struct status_snapshot *s)
{
        struct worker *w = ctx;
        struct disk_state *d = disk_guard_state(w->disk);
        struct index_writer_stats ist;
        int64_t now = now_mono_us();

        memset(s, 0, sizeof(*s));
        s->instance_id = w->a.instance_id;
        s->now_real_us = now_real_us();
        s->uptime_us = now - w->start_mono_us;
        s->disk_full = atomic_load(&d->full);
        s->disk_unavailable = atomic_load(&d->unavailable);
        s->disk_unavailable_events = atomic_load(&d->unavailable_events);
        s->disk_adopted_files = atomic_load(&d->adopted_files);
        disk_guard_why(w->disk, s->disk_why, sizeof(s->disk_why));
        s->disk_free_bytes = atomic_load(&d->free_bytes);
        s->disk_deleted_segments = atomic_load(&d->deleted_segments);
        index_writer_get_stats(w->iw, &ist);
        s->db_queue = ist.queue_len;
        s->db_queue_bytes = ist.queue_bytes;
        s->db_dropped = ist.dropped;
        s->db_rebuilt = ist.reindexed;
        s->db_rebuild_waiting = ist.reindex_waiting;
        s->db_rebuild_lost = ist.reindex_lost;
        s->db_errors = ist.db_errors;
        s->db_ok = ist.db_errors == 0 || now - ist.last_error_mono_us > STATUS_DB_ERROR_WINDOW_US;
        status_read_process(&s->rss_bytes, &s->threads);
        pthread_rwlock_rdlock(&w->slots_lock);
        s->disk_min_free_bytes = w->cfg->disk.min_free_bytes;
        for (size_t i = 0; i < w->n_slots; i++) {
                const struct recorder_stats *st;
                struct status_camera *c;
                int64_t last;

                if (!w->slots[i].rec) /* it failed to start: logged then */
                        continue;
                st = recorder_stats(w->slots[i].rec);
                c = &s->cameras[s->n_cameras++];
                last = atomic_load(&st->last_frame_mono_us);

                snprintf(c->id, sizeof(c->id), "%s", w->slots[i].cam.id);
                config_url_redact(w->slots[i].cam.url, c->url, sizeof(c->url));
                c->state = camera_state(st, s->disk_full);
                c->frames = atomic_load(&st->frames);
                c->bytes = atomic_load(&st->bytes);
                c->segments = atomic_load(&st->segments);
                c->reconnects = atomic_load(&st->reconnects);
                c->ts_anomalies = atomic_load(&st->ts_anomalies);
                c->write_errors = atomic_load(&st->write_errors);
                c->dropped_prekey = atomic_load(&st->dropped_prekey);
                c->dropped_disk_full = atomic_load(&st->dropped_disk_full);
                c->dropped_storage = atomic_load(&st->dropped_storage);
                c->non_picture_packets = atomic_load(&st->non_picture_packets);
                c->last_frame_age_s = last ? (double)(now - last) / 1e6 : -1;
                c->gap_s_camera_down = (double)atomic_load(&st->gap_us_camera_down) / 1e6;
                c->gap_s_disk_full = (double)atomic_load(&st->gap_us_disk_full) / 1e6;
                c->gap_s_storage = (double)atomic_load(&st->gap_us_storage) / 1e6;
                c->gap_s_handover = (double)atomic_load(&st->gap_us_handover) / 1e6;
                c->gaps = atomic_load(&st->gaps);
                c->gap_alerts = atomic_load(&st->gap_alerts);
                c->audio_packets = atomic_load(&st->audio_packets);
                c->audio_dropped = atomic_load(&st->audio_dropped);
                c->audio_transcode_errors = atomic_load(&st->audio_transcode_errors);
                c->param_changes = atomic_load(&st->param_changes);
                c->rtp_lost = atomic_load(&st->rtp_lost);
                c->input_errors = atomic_load(&st->input_errors);
                c->unrecorded_streams = atomic_load(&st->unrecorded_streams);
                c->rtcp_rejected = atomic_load(&st->rtcp_rejected);
                c->rtcp_late = atomic_load(&st->rtcp_late);
                c->time_source = timeline_source_name(atomic_load(&st->time_source));
                c->width = atomic_load(&st->width);
                c->height = atomic_load(&st->height);
                recorder_codecs(w->slots[i].rec, c->video_codec, sizeof(c->video_codec), c->audio_codec,
                                sizeof(c->audio_codec));
                recorder_unrecorded(w->slots[i].rec, c->unrecorded, sizeof(c->unrecorded));
                recorder_error(w->slots[i].rec, c->error, sizeof(c->error), c->error_detail, sizeof(c->error_detail),
                               &c->rtsp_status);
                c->retry_in_s = (double)atomic_load(&st->retry_in_us) / 1e6;
                c->standby = atomic_load(&st->state) == RECORDER_STANDBY;
                recorder_held_by(w->slots[i].rec, c->held_by, sizeof(c->held_by));
                c->handovers = atomic_load(&st->handovers);
                c->session_limited = w->slots[i].cam.max_sessions == 1 || atomic_load(&st->session_limited);
                c->auth_failures = atomic_load(&st->auth_failures);
                c->session_refusals = atomic_load(&st->session_refusals);
                c->recording = atomic_load(&st->state) == RECORDER_RECORDING && atomic_load(&st->segment_has_key) &&
                               last && now - last < STATUS_FRESH_US && !s->disk_full;
                {
                        int64_t werr = atomic_load(&st->last_write_error_mono_us);
                        if (werr && now - werr < STATUS_DB_ERROR_WINDOW_US)
                                s->storage_error = true;
                }
                if (!c->recording && !strcmp(c->state, "recording"))
                        c->state = "stalled"; /* connected, but no frame for STATUS_FRESH_US */
        }
        pthread_rwlock_unlock(&w->slots_lock);
        pthread_mutex_lock(&w->ready_lock);
        status_evaluate(s, &w->ready_since_real_us);
        pthread_mutex_unlock(&w->ready_lock);
}

/* True when every recorder thread ran since the last look: a camera may be
 * down (its thread still loops), but a stuck thread stops the pings. */
static bool recorders_progress(struct worker *w)
{
        bool ok = true;

        for (size_t i = 0; i < w->n_slots; i++) {
                uint64_t hb;

                if (!w->slots[i].rec)
                        continue;
                hb = atomic_load(&recorder_stats(w->slots[i].rec)->heartbeat);
                if (hb == w->heartbeats[i])
                        ok = false;
                w->heartbeats[i] = hb;
        }
        return ok;
}

/* sd_notify to whoever owns $NOTIFY_SOCKET (systemd or the supervisor). */
static void worker_notify(struct worker *w)
{
        struct status_snapshot *s = malloc(sizeof(*s));
        char status[sizeof(w->last_status)];
        int64_t now = now_mono_us();
        size_t used;

        if (!s)
                return;
        worker_snapshot(w, s);
        used = (size_t)snprintf(status, sizeof(status), "%s: recording %zu/%zu cameras", s->status, s->running,
                                s->n_cameras);
        /* what keeps a camera from recording, so a deploy that waits for READY can name it */
        for (size_t i = 0; i < s->n_cameras && used < sizeof(status); i++) {
                const struct status_camera *c = &s->cameras[i];
                int n = 0;

                if (c->standby)
                        n = snprintf(status + used, sizeof(status) - used, "; %s standby (held by %s)", c->id,
                                     c->held_by);
                else if (!c->recording && c->error[0])
                        n = snprintf(status + used, sizeof(status) - used, "; %s %s: %s", c->id, c->error,
                                     c->error_detail);
                used += n > 0 ? (size_t)n : 0;
        }
        if (!w->ready_sent && s->http_code == 200) {
                sd_notifyf(0, "READY=1\nSTATUS=%s", status);
                w->ready_sent = true;
                log_notice("ready: %s", status);
        } else if (strcmp(status, w->last_status)) {
                sd_notifyf(0, "STATUS=%s", status);
        }
        snprintf(w->last_status, sizeof(w->last_status), "%s", status);
        free(s);
        if (w->watchdog_usec && now >= w->next_watchdog_mono_us) {
                pthread_rwlock_rdlock(&w->slots_lock);
                if (recorders_progress(w))
                        sd_notify(0, "WATCHDOG=1");
                else
                        log_err("watchdog: a recorder thread made no progress; not pinging");
                pthread_rwlock_unlock(&w->slots_lock);
                w->next_watchdog_mono_us = now + (int64_t)w->watchdog_usec / 2;
        }
}

/* The storage directory exists and we can write into it. */
static int mkdir_storage(const char *dir)
{
        int e = fs_mkdir_p(dir);

        return e < 0 ? e : access(dir, W_OK) < 0 ? -errno : 0;
}

static int worker_run(struct worker *w)
{
        sigset_t set;
        char err[256];
        int e, rec;

        /* Storage that is not there now may be soon (a remount, a stalled
         * disk): the worker starts, paused and unhealthy, naming it. */
        if (!w->cfg->disk.require_mountpoint && (e = mkdir_storage(w->cfg->storage_dir)) < 0)
                log_err("%s: cannot create the storage directory: %s", w->cfg->storage_dir, strerror(-e));
        if ((rec = recovery_run(w->cfg, w->a.instance_id)) < 0) {
                log_err("crash recovery failed: %s", strerror(-rec));
                return 1;
        }
        if ((e = disk_guard_new(w->cfg, &w->disk)) < 0) {
                log_err("%s: cannot open the index database: %s", w->cfg->db_path, strerror(-e));
                return 1;
        }
        if (rec > 0)
                disk_guard_recover(w->disk, w->a.instance_id);
        if ((e = index_writer_start(w->cfg->db_path, &w->iw, err, sizeof(err))) < 0) {
                log_err("%s", err);
                disk_guard_free(w->disk);
                return 1;
        }
        if ((e = disk_guard_start(w->disk)) < 0) {
                log_err("disk guard thread: %s", strerror(-e));
                index_writer_stop(w->iw, 0);
                disk_guard_free(w->disk);
                return 1;
        }
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        slots_from_config(w);
        for (size_t i = 0; i < w->n_slots; i++)
                camera_start(w, &w->slots[i]);
        if ((e = http_start(&w->http, w->cfg->worker.bind, w->a.port, w->cfg->db_path, w->cfg->storage_dir,
                            worker_snapshot, w, err, sizeof(err))) < 0) {
                log_err("http: %s", err);
                worker_stop(w);
                disk_guard_free(w->disk);
                return 1;
        }
        if (sd_watchdog_enabled(0, &w->watchdog_usec) <= 0)
                w->watchdog_usec = 0;
        log_notice("mwr-worker %s instance %s: %zu cameras, http %s:%d", MWR_VERSION, w->a.instance_id, w->n_slots,
                   w->cfg->worker.bind, w->a.port);
        for (int64_t trimmed_us = now_mono_us();;) {
                struct timespec tick = { .tv_nsec = TICK_MS * 1000000L };
                int sig = sigtimedwait(&set, NULL, &tick);

                if (sig == SIGHUP)
                        worker_reload(w);
                else if (sig == SIGTERM || sig == SIGINT)
                        break;
                worker_notify(w);
                if (now_mono_us() - trimmed_us >= TRIM_EVERY_US) {
                        malloc_trim(0);
                        trimmed_us = now_mono_us();
                }
        }
        sd_notify(0, "STOPPING=1\nSTATUS=stopping: finishing every segment");
        log_notice("stopping on signal: finishing every segment");
        http_stop(w->http);
        worker_stop(w);
        disk_guard_free(w->disk);
        return 0;
}

int main(int argc, char **argv)
{
        struct worker w = { 0 };
        char err[CONFIG_ERR_MAX];
        sigset_t set;
        int r;

        if (args_parse(argc, argv, &w.a) < 0)
                return 2;
        if (config_load(w.a.config, &w.cfg, err) < 0) {
                fprintf(stderr, "mwr-worker: %s\n", err);
                return 2;
        }
        if (w.a.probe) {
                int failed;

                av_log_set_level(AV_LOG_QUIET); /* each camera's outcome is its line */
                rtsp_log_install();
                avformat_network_init();
                failed = probe_cameras(w.cfg, stdout);
                config_free(w.cfg);
                return failed ? 1 : 0;
        }
        if (w.a.check_config) {
                printf("%s: ok, %zu cameras\n", w.a.config, w.cfg->n_cameras);
                config_free(w.cfg);
                return 0;
        }
        /* signals are taken by sigtimedwait in the main thread only */
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        sigaddset(&set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        av_log_set_level(AV_LOG_ERROR);
        rtsp_log_install(); /* before any recorder starts */
        avformat_network_init();
        setvbuf(stderr, NULL, _IOLBF, 0);

        w.start_mono_us = now_mono_us();
        pthread_rwlock_init(&w.slots_lock, NULL);
        pthread_mutex_init(&w.ready_lock, NULL);
        r = worker_run(&w);
        config_free(w.cfg);
        avformat_network_deinit();
        return r;
}
