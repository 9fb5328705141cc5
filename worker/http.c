/* http: routes and renderers (see http.h).  Handlers run on a pool of
 * HTTP_THREADS MHD threads, so a long request (a 6-hour playlist) never
 * holds up /health; each thread has its own DB connection (hdb), request
 * counters are atomics. */
#include "worker/http.h"
#include "worker/http_query.h"
#include "worker/www.h"

#include <arpa/inet.h>
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <limits.h>
#include <pthread.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "common/time_util.h"
#include "common/timefmt.h"
#include "continuity/loader.h"
#include "db/db.h"
#include "worker/coverage.h"
#include "worker/exports.h"
#include "worker/hls.h"

enum { CODE_200, CODE_202, CODE_400, CODE_403, CODE_404, CODE_405, CODE_409, CODE_416, CODE_429, CODE_500, CODE_503, N_CODES };
static const int code_values[N_CODES] = { 200, 202, 400, 403, 404, 405, 409, 416, 429, 500, 503 };

struct http_server {
        struct MHD_Daemon *d;
        char db_path[PATH_MAX];
        pthread_key_t db_key; /* this thread's connection */
        char storage_dir[PATH_MAX]; /* resolved: media is served from below it only */
        http_snapshot_fn snapshot;
        void *ctx;
        struct exports *exports; /* the UI's downloads */
        _Atomic uint64_t requests[N_CODES];
};

static void db_key_close(void *db)
{
        db_close(db);
}

/* The calling HTTP thread's DB connection, opened on its first use; NULL
 * when the DB cannot be opened (the request then says 503). */
static struct db *hdb(struct http_server *h)
{
        struct db *db = pthread_getspecific(h->db_key);

        if (db)
                return db;
        if (db_open(h->db_path, &db) < 0)
                return NULL;
        db_set_busy_timeout_ms(db, HTTP_DB_BUSY_TIMEOUT_MS);
        if (pthread_setspecific(h->db_key, db)) {
                db_close(db);
                return NULL;
        }
        return db;
}

/* ---- who asks: the audit log and the camera list haproxy passes on ---------------- */

/* A footage request (playlist, segment bytes, segment list): logged once
 * when MHD is done with it, so an aborted download says so.  The handler
 * runs on one MHD thread from start to queue, so the record being filled is
 * this thread's `audit_now`. */
struct audit {
        char user[HTTP_AUDIT_FIELD], from[HTTP_AUDIT_FIELD], camera[CONFIG_ID_MAX], what[HTTP_AUDIT_FIELD],
                range[HTTP_AUDIT_FIELD];
        int status;
        uint64_t bytes;
};

static __thread struct audit *audit_now;

/* Only [A-Za-z0-9_.:,@+-] of a header or parameter reach the log line: no
 * spaces, quotes or newlines a client could forge a field with. */
static void audit_copy(char *dst, size_t len, const char *src)
{
        size_t i = 0;

        for (; src && *src && i + 1 < len; src++)
                dst[i++] = (strchr("_.:,@+-", *src) || (*src >= 'a' && *src <= 'z') || (*src >= 'A' && *src <= 'Z') ||
                            (*src >= '0' && *src <= '9'))
                                   ? *src
                                   : '?';
        if (i == 0 && len > 1)
                dst[i++] = '-';
        dst[i] = '\0';
}

static void audit_begin(struct MHD_Connection *c, void **con_cls, const char *camera, const char *what,
                        const char *range)
{
        struct audit *a = calloc(1, sizeof(*a));
        const char *from = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Mwr-Client");
        char peer[INET6_ADDRSTRLEN] = "";

        if (!a)
                return; /* the request is still served; out of memory is logged by whoever meets it next */
        if (!from) {
                const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
                const struct sockaddr_in *sin = ci ? (const struct sockaddr_in *)ci->client_addr : NULL;
                if (sin && sin->sin_family == AF_INET)
                        inet_ntop(AF_INET, &sin->sin_addr, peer, sizeof(peer));
                from = peer;
        }
        audit_copy(a->user, sizeof(a->user), MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Mwr-User"));
        audit_copy(a->from, sizeof(a->from), from);
        audit_copy(a->camera, sizeof(a->camera), camera);
        audit_copy(a->what, sizeof(a->what), what);
        audit_copy(a->range, sizeof(a->range), range);
        *con_cls = a;
        audit_now = a;
}

static void audit_done(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
        struct audit *a = *con_cls;

        if (!a)
                return;
        log_info("audit: user=%s from=%s camera=%s request=%s range=%s status=%d bytes=%" PRIu64 " %s", a->user,
                 a->from, a->camera, a->what, a->range, a->status, a->bytes,
                 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "done" : "aborted");
        free(a);
        *con_cls = NULL;
}

static void audit_answer(int code, uint64_t bytes)
{
        if (audit_now) {
                audit_now->status = code;
                audit_now->bytes = bytes;
        }
}

/* The cameras haproxy says this user may see: NULL for every camera (the
 * header is "*", or absent: a request that did not come through the door,
 * which only loopback can send). */
static const char *camera_list(struct MHD_Connection *c)
{
        const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Mwr-Cameras");

        return v && strcmp(v, "*") ? v : NULL;
}

static bool camera_allowed(const char *list, const char *camera)
{
        size_t n = strlen(camera);

        if (!list)
                return true;
        for (const char *p = list; *p;) {
                size_t k = strcspn(p, ",");
                if (k == n && !strncmp(p, camera, n))
                        return true;
                p += k + (p[k] == ',');
        }
        return false;
}

/* ---- responses -------------------------------------------------------------------- */

/* Every answer's end: resp (taken) with its Content-Type queued, the audit
 * line told, the answer counted by code. */
static enum MHD_Result send_response(struct http_server *h, struct MHD_Connection *c, int code,
                                     struct MHD_Response *resp, const char *type, uint64_t len)
{
        enum MHD_Result ret;

        MHD_add_response_header(resp, "Content-Type", type);
        audit_answer(code, len);
        ret = MHD_queue_response(c, (unsigned)code, resp);
        MHD_destroy_response(resp);
        for (int i = 0; i < N_CODES; i++)
                if (code_values[i] == code)
                        atomic_fetch_add(&h->requests[i], 1);
        return ret;
}

static enum MHD_Result reply(struct http_server *h, struct MHD_Connection *c, int code, const char *type,
                             char *body /* malloc'd, taken */)
{
        struct MHD_Response *r;

        if (!body)
                return MHD_NO;
        r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
        if (!r) {
                free(body);
                return MHD_NO;
        }
        MHD_add_response_header(r, "Cache-Control", "no-store");
        return send_response(h, c, code, r, type, strlen(body));
}

/* len bytes of fd (taken) from off, as MP4; disposition NULL: inline. */
static enum MHD_Result reply_mp4(struct http_server *h, struct MHD_Connection *c, int fd, uint64_t off, uint64_t len,
                                 const char *disposition)
{
        struct MHD_Response *resp = MHD_create_response_from_fd_at_offset64(len, fd, off); /* takes fd */

        if (!resp) {
                close(fd);
                return MHD_NO;
        }
        if (disposition)
                MHD_add_response_header(resp, "Content-Disposition", disposition);
        return send_response(h, c, 200, resp, "video/mp4", len);
}

static enum MHD_Result reply_json(struct http_server *h, struct MHD_Connection *c, int code, cJSON *j)
{
        char *body = j ? cJSON_PrintUnformatted(j) : NULL;

        cJSON_Delete(j);
        if (!body)
                return reply(h, c, 500, "application/json", strdup("{\"error\":\"out of memory\"}"));
        return reply(h, c, code, "application/json", body);
}

static enum MHD_Result reply_error(struct http_server *h, struct MHD_Connection *c, int code, const char *msg)
{
        cJSON *j = cJSON_CreateObject();

        cJSON_AddStringToObject(j, "error", msg);
        return reply_json(h, c, code, j);
}

static void add_time(cJSON *o, const char *key, int64_t us)
{
        char buf[TIMEFMT_RFC3339_MAX];

        if (us <= 0) {
                cJSON_AddNullToObject(o, key);
                return;
        }
        timefmt_rfc3339(us, buf);
        cJSON_AddStringToObject(o, key, buf);
}

/* ---- status endpoints -------------------------------------------------------------- */

static enum MHD_Result health(struct http_server *h, struct MHD_Connection *c, const struct status_snapshot *s)
{
        cJSON *j = cJSON_CreateObject(), *cams = cJSON_CreateObject(), *errs = cJSON_CreateObject();

        cJSON_AddStringToObject(j, "status", s->status);
        if (*s->reason)
                cJSON_AddStringToObject(j, "reason", s->reason);
        cJSON_AddBoolToObject(j, "recording", s->running > 0);

        for (size_t i = 0; i < s->n_cameras; i++) {
                cJSON_AddStringToObject(cams, s->cameras[i].id, s->cameras[i].state);
                if (!s->cameras[i].recording && !s->cameras[i].standby && s->cameras[i].error[0])
                        cJSON_AddStringToObject(errs, s->cameras[i].id, s->cameras[i].error);
        }
        cJSON_AddItemToObject(j, "cameras", cams);
        cJSON_AddItemToObject(j, "camera_errors", errs);
        cJSON_AddNumberToObject(j, "uptime", (double)s->uptime_us / 1e6);
        cJSON_AddStringToObject(j, "instance_id", s->instance_id);
        add_time(j, "ready_since", s->ready_since_real_us);
        return reply_json(h, c, s->http_code, j);
}

static enum MHD_Result api_health(struct http_server *h, struct MHD_Connection *c, const struct status_snapshot *s)
{
        cJSON *j = cJSON_CreateObject(), *o;

        cJSON_AddStringToObject(j, "status", s->status);
        if (*s->reason)
                cJSON_AddStringToObject(j, "reason", s->reason);
        add_time(j, "timestamp", s->now_real_us);
        cJSON_AddStringToObject(j, "instance_id", s->instance_id);
        o = cJSON_AddObjectToObject(j, "recording");
        cJSON_AddStringToObject(o, "status", s->running == s->n_cameras ? "recording"
                                                 : s->running ? "degraded" : "stopped");
        cJSON_AddNumberToObject(o, "running_cameras", (double)s->running);
        cJSON_AddNumberToObject(o, "enabled_cameras", (double)s->n_cameras);
        o = cJSON_AddObjectToObject(j, "database");
        cJSON_AddStringToObject(o, "status", s->db_ok ? "connected" : "error");
        cJSON_AddNumberToObject(o, "queued_updates", (double)s->db_queue);
        cJSON_AddNumberToObject(o, "queued_bytes", (double)s->db_queue_bytes);
        cJSON_AddNumberToObject(o, "dropped_updates", (double)s->db_dropped);
        cJSON_AddNumberToObject(o, "rebuild_waiting", (double)s->db_rebuild_waiting);
        cJSON_AddNumberToObject(o, "errors", (double)s->db_errors);
        o = cJSON_AddObjectToObject(j, "disk");
        cJSON_AddStringToObject(o, "status", s->disk_unavailable ? "unavailable"
                                             : s->disk_full      ? "full"
                                             : s->storage_error  ? "write_error"
                                                                 : "ok");
        cJSON_AddStringToObject(o, "detail", s->disk_why);
        cJSON_AddNumberToObject(o, "free_bytes", (double)s->disk_free_bytes);
        cJSON_AddNumberToObject(o, "min_free_bytes", (double)s->disk_min_free_bytes);
        cJSON_AddNumberToObject(o, "deleted_segments", (double)s->disk_deleted_segments);
        o = cJSON_AddObjectToObject(j, "system");
        cJSON_AddNumberToObject(o, "memory_mb", (double)s->rss_bytes / (1024.0 * 1024.0));
        cJSON_AddNumberToObject(o, "threads", s->threads);
        cJSON_AddNumberToObject(o, "uptime", (double)s->uptime_us / 1e6);
        return reply_json(h, c, s->http_code, j);
}

/* "#2 audio g726 (no decoder), #3 data none (not audio or video)" as a list. */
static cJSON *unrecorded_json(const char *list)
{
        cJSON *a = cJSON_CreateArray();
        const char *p = list;

        while (p && *p) {
                const char *end = strstr(p, ", #");
                size_t len = end ? (size_t)(end - p) : strlen(p);

                char *v = strndup(p, len);

                if (v) {
                        cJSON_AddItemToArray(a, cJSON_CreateString(v));
                        free(v);
                }
                p = end ? end + 2 : NULL;
        }
        return a;
}

static enum MHD_Result api_cameras(struct http_server *h, struct MHD_Connection *c, const struct status_snapshot *s)
{
        cJSON *arr = cJSON_CreateArray();
        const char *list = camera_list(c);

        for (size_t i = 0; i < s->n_cameras; i++) {
                const struct status_camera *k = &s->cameras[i];
                cJSON *o;

                if (!camera_allowed(list, k->id))
                        continue; /* a user's own cameras only */
                o = cJSON_CreateObject();

                cJSON_AddStringToObject(o, "id", k->id);
                cJSON_AddStringToObject(o, "url", k->url);
                cJSON_AddStringToObject(o, "state", k->state);
                cJSON_AddNumberToObject(o, "frames", (double)k->frames);
                cJSON_AddNumberToObject(o, "segments", (double)k->segments);
                cJSON_AddNumberToObject(o, "reconnects", (double)k->reconnects);
                if (k->last_frame_age_s < 0)
                        cJSON_AddNullToObject(o, "last_frame_age_s");
                else
                        cJSON_AddNumberToObject(o, "last_frame_age_s", k->last_frame_age_s);
                cJSON_AddStringToObject(o, "time_source", k->time_source);
                cJSON_AddStringToObject(o, "video_codec", k->video_codec);
                cJSON_AddNumberToObject(o, "width", k->width);
                cJSON_AddNumberToObject(o, "height", k->height);
                cJSON_AddStringToObject(o, "audio_codec", k->audio_codec);
                cJSON_AddNumberToObject(o, "rtp_packets_lost", (double)k->rtp_lost);
                cJSON_AddItemToObject(o, "unrecorded_streams", unrecorded_json(k->unrecorded));
                cJSON_AddStringToObject(o, "error", k->error);
                cJSON_AddStringToObject(o, "error_detail", k->error_detail);
                if (k->rtsp_status)
                        cJSON_AddNumberToObject(o, "rtsp_status", k->rtsp_status);
                else
                        cJSON_AddNullToObject(o, "rtsp_status");
                cJSON_AddNumberToObject(o, "retry_in_s", k->retry_in_s);
                cJSON_AddStringToObject(o, "held_by", k->held_by);
                cJSON_AddBoolToObject(o, "session_limited", k->session_limited);
                cJSON_AddItemToArray(arr, o);
        }
        return reply_json(h, c, 200, arr);
}

/* The per-camera counters of /metrics: one series each, by camera. */
static const struct camera_counter {
        const char *name, *type, *help;
        size_t offset;                   /* of a uint64_t in struct status_camera */
} camera_counters[] = {
#define C(name, type, help, field) { name, type, help, offsetof(struct status_camera, field) }
        C("mwr_camera_frames_total", "counter", "Video frames recorded.", frames),
        C("mwr_camera_bytes_total", "counter", "Bytes of media recorded.", bytes),
        C("mwr_camera_segments_total", "counter", "Segment files started.", segments),
        C("mwr_camera_reconnects_total", "counter", "Sessions to the camera opened again after one ended.",
          reconnects),
        C("mwr_camera_timestamp_anomalies_total", "counter", "Non-increasing timestamps nudged forward.",
          ts_anomalies),
        C("mwr_camera_write_errors_total", "counter", "Failed writes of segment files.", write_errors),
        C("mwr_camera_non_picture_packets_total", "counter",
          "Packets with only SEI or parameter sets (stored, not frames).", non_picture_packets),
        C("mwr_camera_audio_packets_total", "counter", "Audio packets recorded.", audio_packets),
        C("mwr_camera_audio_dropped_total", "counter",
          "Audio packets not recorded (before a session's first keyframe, disk full).", audio_dropped),
        C("mwr_camera_audio_transcode_errors_total", "counter",
          "Audio packets the decoder refused (G.711 made FLAC).", audio_transcode_errors),
        C("mwr_camera_stream_changes_total", "counter", "New parameter sets in band (a new segment each).",
          param_changes),
        C("mwr_camera_rtp_packets_lost_total", "counter", "RTP sequence gaps (UDP loss).", rtp_lost),
        C("mwr_camera_input_errors_total", "counter", "Packets the demuxer flagged corrupt.", input_errors),
        C("mwr_camera_unrecorded_streams", "gauge", "Streams of the camera's session that are not recorded.",
          unrecorded_streams),
        C("mwr_camera_rtcp_rejected_total", "counter",
          "Sessions whose RTCP clock was too far off ours (our clock used).", rtcp_rejected),
        C("mwr_camera_rtcp_late_total", "counter", "Sessions timed without a sender report (receive clock).",
          rtcp_late),
        C("mwr_camera_auth_failures_total", "counter", "Sessions the camera refused the login of (401).",
          auth_failures),
        C("mwr_camera_session_refusals_total", "counter",
          "Sessions the camera refused for its session limit (453, or 403 naming a limit).", session_refusals),
        C("mwr_camera_handovers_total", "counter",
          "Times this instance took the camera from another instance of ours that held it.", handovers),
        C("mwr_gaps_total", "counter", "Gaps in a camera's footage (gap rows written).", gaps),
        C("mwr_gap_alerts_total", "counter", "Gaps longer than 1 s, each also logged at alert priority.",
          gap_alerts),
#undef C
};

static char *metrics_text(struct http_server *h, const struct status_snapshot *s)
{
        size_t cap = 8192 + s->n_cameras * 6144, n = 0;
        char *b = malloc(cap);

#define M(...) (n += (size_t)snprintf(b + n, n < cap ? cap - n : 0, __VA_ARGS__))
        if (!b)
                return NULL;
        for (size_t k = 0; k < sizeof(camera_counters) / sizeof(camera_counters[0]); k++) {
                const struct camera_counter *m = &camera_counters[k];

                M("# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, m->type);
                for (size_t i = 0; i < s->n_cameras; i++)
                        M("%s{camera=\"%s\"} %" PRIu64 "\n", m->name, s->cameras[i].id,
                          *(const uint64_t *)((const char *)&s->cameras[i] + m->offset));
        }
        M("# HELP mwr_camera_dropped_packets_total Packets not recorded (before a keyframe, disk full).\n"
          "# TYPE mwr_camera_dropped_packets_total counter\n");
        for (size_t i = 0; i < s->n_cameras; i++) {
                M("mwr_camera_dropped_packets_total{camera=\"%s\",reason=\"before_keyframe\"} %" PRIu64 "\n",
                  s->cameras[i].id, s->cameras[i].dropped_prekey);
                M("mwr_camera_dropped_packets_total{camera=\"%s\",reason=\"disk_full\"} %" PRIu64 "\n",
                  s->cameras[i].id, s->cameras[i].dropped_disk_full);
                M("mwr_camera_dropped_packets_total{camera=\"%s\",reason=\"storage_unavailable\"} %" PRIu64 "\n",
                  s->cameras[i].id, s->cameras[i].dropped_storage);
        }
        M("# HELP mwr_camera_last_frame_age_seconds Seconds since the last frame (-1: none yet).\n"
          "# TYPE mwr_camera_last_frame_age_seconds gauge\n");
        for (size_t i = 0; i < s->n_cameras; i++)
                M("mwr_camera_last_frame_age_seconds{camera=\"%s\"} %.3f\n", s->cameras[i].id,
                  s->cameras[i].last_frame_age_s);
        M("# HELP mwr_camera_recording 1 when the camera records now.\n# TYPE mwr_camera_recording gauge\n");
        for (size_t i = 0; i < s->n_cameras; i++)
                M("mwr_camera_recording{camera=\"%s\"} %d\n", s->cameras[i].id, s->cameras[i].recording);
        M("# HELP mwr_gap_seconds_total Seconds of footage missing, by reason.\n# TYPE mwr_gap_seconds_total counter\n");
        for (size_t i = 0; i < s->n_cameras; i++) {
                M("mwr_gap_seconds_total{camera=\"%s\",reason=\"camera_down\"} %.3f\n", s->cameras[i].id,
                  s->cameras[i].gap_s_camera_down);
                M("mwr_gap_seconds_total{camera=\"%s\",reason=\"disk_full\"} %.3f\n", s->cameras[i].id,
                  s->cameras[i].gap_s_disk_full);
                M("mwr_gap_seconds_total{camera=\"%s\",reason=\"storage_unavailable\"} %.3f\n", s->cameras[i].id,
                  s->cameras[i].gap_s_storage);
                M("mwr_gap_seconds_total{camera=\"%s\",reason=\"handover\"} %.3f\n", s->cameras[i].id,
                  s->cameras[i].gap_s_handover);
        }
        M("# HELP mwr_process_uptime_seconds Seconds since the worker started.\n"
          "# TYPE mwr_process_uptime_seconds gauge\nmwr_process_uptime_seconds %.3f\n", (double)s->uptime_us / 1e6);
        M("# HELP mwr_process_resident_memory_bytes Resident memory of the worker.\n"
          "# TYPE mwr_process_resident_memory_bytes gauge\nmwr_process_resident_memory_bytes %" PRIu64 "\n",
          s->rss_bytes);
        M("# HELP mwr_process_threads Threads of the worker.\n"
          "# TYPE mwr_process_threads gauge\nmwr_process_threads %d\n", s->threads);
        M("# HELP mwr_db_errors_total Failed writes to the index database.\n"
          "# TYPE mwr_db_errors_total counter\nmwr_db_errors_total %" PRIu64 "\n", s->db_errors);
        M("# HELP mwr_db_queued_updates Index updates waiting for the database.\n"
          "# TYPE mwr_db_queued_updates gauge\nmwr_db_queued_updates %" PRIu64 "\n", s->db_queue);
        M("# HELP mwr_db_queued_bytes Memory of the index updates waiting for the database.\n"
          "# TYPE mwr_db_queued_bytes gauge\nmwr_db_queued_bytes %" PRIu64 "\n", s->db_queue_bytes);
        M("# HELP mwr_db_dropped_updates_total Index updates dropped because the queue was full.\n"
          "# TYPE mwr_db_dropped_updates_total counter\nmwr_db_dropped_updates_total %" PRIu64 "\n", s->db_dropped);
        M("# HELP mwr_db_rebuilt_segments_total Segment rows rebuilt from their files after the queue overflowed.\n"
          "# TYPE mwr_db_rebuilt_segments_total counter\nmwr_db_rebuilt_segments_total %" PRIu64 "\n", s->db_rebuilt);
        M("# HELP mwr_db_rebuild_waiting Segment rows waiting to be rebuilt from their files.\n"
          "# TYPE mwr_db_rebuild_waiting gauge\nmwr_db_rebuild_waiting %" PRIu64 "\n", s->db_rebuild_waiting);
        M("# HELP mwr_db_rebuild_left_total Segments past the rebuild list: left to the next start's recovery.\n"
          "# TYPE mwr_db_rebuild_left_total counter\nmwr_db_rebuild_left_total %" PRIu64 "\n", s->db_rebuild_lost);
        M("# HELP mwr_disk_free_bytes Free space of the storage directory's file system.\n"
          "# TYPE mwr_disk_free_bytes gauge\nmwr_disk_free_bytes %" PRIu64 "\n", s->disk_free_bytes);
        M("# HELP mwr_disk_full 1 while free space is below disk.min_free_mb and nothing is left to delete: "
          "recording paused (0 while the storage is unavailable).\n"
          "# TYPE mwr_disk_full gauge\nmwr_disk_full %d\n", s->disk_full && !s->disk_unavailable);
        M("# HELP mwr_storage_unavailable 1 while the storage directory is not there (recording paused).\n"
          "# TYPE mwr_storage_unavailable gauge\nmwr_storage_unavailable %d\n", s->disk_unavailable);
        M("# HELP mwr_storage_unavailable_total Times the storage directory went away.\n"
          "# TYPE mwr_storage_unavailable_total counter\nmwr_storage_unavailable_total %" PRIu64 "\n",
          s->disk_unavailable_events);
        M("# HELP mwr_disk_adopted_files_total Segment files without a row indexed by the disk guard's walk.\n"
          "# TYPE mwr_disk_adopted_files_total counter\nmwr_disk_adopted_files_total %" PRIu64 "\n",
          s->disk_adopted_files);
        M("# HELP mwr_healthy 1 when /health answers 200.\n# TYPE mwr_healthy gauge\nmwr_healthy %d\n",
          s->http_code == 200);
        M("# HELP mwr_http_requests_total HTTP answers, by status code.\n# TYPE mwr_http_requests_total counter\n");
        for (int i = 0; i < N_CODES; i++)
                M("mwr_http_requests_total{code=\"%d\"} %" PRIu64 "\n", code_values[i], atomic_load(&h->requests[i]));
#undef M
        if (n >= cap) {
                free(b);
                return NULL;
        }
        return b;
}

/* ---- index queries ------------------------------------------------------------------ */

static int segment_json(const struct db_segment *s, void *ctx)
{
        cJSON *o = cJSON_CreateObject();

        cJSON_AddNumberToObject(o, "id", (double)s->id);
        cJSON_AddStringToObject(o, "camera_id", s->camera_id);
        cJSON_AddStringToObject(o, "instance_id", s->instance_id);
        cJSON_AddStringToObject(o, "path", s->path);
        cJSON_AddNumberToObject(o, "start_us", (double)s->start_us);
        cJSON_AddNumberToObject(o, "end_us", (double)s->end_us);
        add_time(o, "start", s->start_us);
        add_time(o, "end", s->end_us);
        cJSON_AddStringToObject(o, "video_codec", s->video_codec ? s->video_codec : "");
        cJSON_AddNumberToObject(o, "width", s->width);
        cJSON_AddNumberToObject(o, "height", s->height);
        cJSON_AddStringToObject(o, "audio_codec", s->audio_codec ? s->audio_codec : "");
        cJSON_AddNumberToObject(o, "frames", (double)s->frames);
        cJSON_AddNumberToObject(o, "bytes", (double)s->bytes);
        cJSON_AddStringToObject(o, "status", s->status);
        cJSON_AddStringToObject(o, "overlap_status", s->overlap_status);
        cJSON_AddStringToObject(o, "time_source", s->time_source);
        cJSON_AddItemToArray(ctx, o);
        return 0;
}

static int gap_json(const struct db_gap *g, void *ctx)
{
        cJSON *o = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "camera_id", g->camera_id);
        cJSON_AddStringToObject(o, "instance_id", g->instance_id);
        cJSON_AddNumberToObject(o, "start_us", (double)g->start_us);
        cJSON_AddNumberToObject(o, "end_us", (double)g->end_us);
        add_time(o, "start", g->start_us);
        add_time(o, "end", g->end_us);
        cJSON_AddNumberToObject(o, "duration_s", (double)(g->end_us - g->start_us) / 1e6);
        cJSON_AddStringToObject(o, "reason", g->reason);
        cJSON_AddStringToObject(o, "detail", g->detail);
        cJSON_AddItemToArray(ctx, o);
        return 0;
}

static enum MHD_Result api_index(struct http_server *h, struct MHD_Connection *c, bool gaps)
{
        struct http_query q;
        const char *bad = http_query_parse(MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "camera"),
                                           MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "from"),
                                           MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "to"),
                                           MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit"),
                                           MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "offset"), !gaps,
                                           now_real_us(), &q);
        cJSON *arr;
        int e;

        if (bad)
                return reply_error(h, c, 400, bad);
        if (camera_list(c) && !q.camera)
                return reply_error(h, c, 403, "name a camera: this user may see only some");
        if (q.camera && !camera_allowed(camera_list(c), q.camera))
                return reply_error(h, c, 403, "not one of this user's cameras");
        if (!hdb(h))
                return reply_error(h, c, 503, "index database not available");
        arr = cJSON_CreateArray();
        e = gaps ? db_gaps_range(hdb(h), q.camera, q.from_us, q.to_us, q.limit, q.offset, gap_json, arr)
                 : db_segments_range(hdb(h), q.camera, q.from_us, q.to_us, q.limit, q.offset, segment_json, arr);
        if (e < 0) {
                cJSON_Delete(arr);
                return reply_error(h, c, e == -EBUSY ? 503 : 500, db_errmsg(hdb(h)));
        }
        return reply_json(h, c, 200, arr);
}

/* ---- playback: HLS over the continuity timeline ------------------------------------- */

/* ?from=&to= of a range request: to defaults to now, from to default_us
 * before to.  NULL, or the 400's message. */
static const char *range_args(struct MHD_Connection *c, int64_t default_us, int64_t *from_us, int64_t *to_us)
{
        const char *from = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "from");
        const char *to = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "to");

        *to_us = now_real_us();
        if (to && timefmt_parse_us(to, to_us) < 0)
                return "to: not RFC 3339 or unix seconds";
        *from_us = *to_us - default_us;
        if (from && timefmt_parse_us(from, from_us) < 0)
                return "from: not RFC 3339 or unix seconds";
        return NULL;
}

static enum MHD_Result playlist(struct http_server *h, struct MHD_Connection *c, const char *camera)
{
        const char *bad;
        struct tl_options o = { 0 };
        struct tl_input in;
        struct tl_result r;
        char err[256], *text;
        int e;

        char prefix[sizeof("/api/cameras//segments/") + CONFIG_ID_MAX];

        if (!camera_allowed(camera_list(c), camera))
                return reply_error(h, c, 403, "not one of this user's cameras");
        if ((bad = range_args(c, HTTP_PLAYLIST_DEFAULT_US, &o.from_us, &o.to_us)))
                return reply_error(h, c, 400, bad);
        if (o.from_us >= o.to_us || o.to_us - o.from_us > HTTP_PLAYLIST_MAX_US)
                return reply_error(h, c, 400, "from must be before to, at most 6 hours apart");
        if (!hdb(h))
                return reply_error(h, c, 503, "index database not available");
        if ((e = tl_load(hdb(h), camera, o.from_us, o.to_us, &in)) < 0)
                return reply_error(h, c, e == -EBUSY ? 503 : 500, db_errmsg(hdb(h)));
        if ((e = tl_build(in.segs, in.n, &o, &r)) < 0) {
                tl_input_free(&in);
                return reply_error(h, c, 500, strerror(-e));
        }
        if (r.n_pieces == 0) {
                tl_result_free(&r);
                tl_input_free(&in);
                return reply_error(h, c, 404, "no footage of that camera in that range");
        }
        /* below the camera, so a proxy sees whose footage each URL is */
        snprintf(prefix, sizeof(prefix), "/api/cameras/%s/segments/", camera);
        e = hls_playlist(&in, &r, prefix, &text, err, sizeof(err));
        tl_result_free(&r);
        tl_input_free(&in);
        if (e < 0)
                return reply_error(h, c, 500, e == -ENOMEM ? "out of memory" : err);
        return reply(h, c, 200, "application/vnd.apple.mpegurl", text);
}

/* Bytes of a segment file (an init section or a fragment), by DB id: only
 * files the index knows, only below storage_dir. */
static enum MHD_Result media(struct http_server *h, struct MHD_Connection *c, const char *camera, int64_t id,
                             uint64_t off, uint64_t len, bool whole)
{
        struct db_segment seg;
        char real[PATH_MAX];
        size_t dl = strlen(h->storage_dir);
        struct stat st;
        int fd, e;

        if (!hdb(h))
                return reply_error(h, c, 503, "index database not available");
        if ((e = db_segment_by_id(hdb(h), id, &seg)) < 0)
                return reply_error(h, c, e == -ENOENT ? 404 : 500, db_errmsg(hdb(h)));
        if (audit_now)
                audit_copy(audit_now->camera, sizeof(audit_now->camera), seg.camera_id);
        if (camera && strcmp(camera, seg.camera_id))
                return reply_error(h, c, 404, "no such segment of that camera");
        if (!camera_allowed(camera_list(c), seg.camera_id))
                return reply_error(h, c, 403, "not one of this user's cameras");
        if (!realpath(seg.path, real))
                return reply_error(h, c, 404, "segment file is gone");
        if (!dl || strncmp(real, h->storage_dir, dl) != 0 || real[dl] != '/')
                return reply_error(h, c, 403, "segment file outside storage_dir");
        fd = open(real, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0) {
                if (fd >= 0)
                        close(fd);
                return reply_error(h, c, 404, "segment file is gone");
        }
        if (whole) {
                off = 0;
                len = (uint64_t)st.st_size;
        }
        if (off > (uint64_t)st.st_size || len > (uint64_t)st.st_size - off) {
                close(fd);
                return reply_error(h, c, 416, "range beyond the end of the file");
        }
        return reply_mp4(h, c, fd, off, len, NULL);
}

/* ---- the web UI ---------------------------------------------------------------------- */

/* GET /api/cameras/ID/coverage?from=&to=: the timeline's data (coverage.h);
 * to defaults to now, from to a day before to. */
static enum MHD_Result coverage(struct http_server *h, struct MHD_Connection *c, const char *camera)
{
        const char *bad;
        int64_t from_us, to_us;
        char err[256];
        cJSON *j;
        int e;

        if (!camera_allowed(camera_list(c), camera))
                return reply_error(h, c, 403, "not one of this user's cameras");
        if ((bad = range_args(c, INT64_C(86400) * 1000000, &from_us, &to_us)))
                return reply_error(h, c, 400, bad);
        if (!hdb(h))
                return reply_error(h, c, 503, "index database not available");
        if ((e = coverage_json(hdb(h), camera, from_us, to_us, &j, err, sizeof(err))) < 0)
                return reply_error(h, c, e == -EINVAL || e == -E2BIG ? 400 : e == -EBUSY ? 503 : 500, err);
        return reply_json(h, c, 200, j);
}

static int deploy_json(const struct db_deploy *d, void *ctx)
{
        cJSON *o = cJSON_CreateObject();

        cJSON_AddNumberToObject(o, "id", (double)d->id);
        cJSON_AddNumberToObject(o, "started_us", (double)d->started_us);
        add_time(o, "started", d->started_us);
        cJSON_AddNumberToObject(o, "finished_us", (double)d->finished_us);
        add_time(o, "finished", d->finished_us);
        cJSON_AddStringToObject(o, "from_slot", d->from_slot);
        cJSON_AddStringToObject(o, "to_slot", d->to_slot);
        cJSON_AddStringToObject(o, "binary", d->binary);
        cJSON_AddStringToObject(o, "version", d->version);
        cJSON_AddStringToObject(o, "result", d->result);
        cJSON_AddStringToObject(o, "reason", d->reason);
        cJSON_AddItemToArray(ctx, o);
        return 0;
}

/* GET /api/deploys?limit=N: the supervisor's deploy history, newest first
 * (limit 1..500, default 50). */
static enum MHD_Result deploys(struct http_server *h, struct MHD_Connection *c)
{
        const char *ls = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
        char *end = NULL;
        long limit = ls ? strtol(ls, &end, 10) : 50;
        cJSON *j, *arr;
        int e;

        if (ls && (!*ls || *end || limit < 1 || limit > 500))
                return reply_error(h, c, 400, "limit: an integer 1..500");
        if (!hdb(h))
                return reply_error(h, c, 503, "index database not available");
        j = cJSON_CreateObject();
        arr = cJSON_AddArrayToObject(j, "deploys");
        if ((e = db_deploys_recent(hdb(h), limit, deploy_json, arr)) < 0) {
                cJSON_Delete(j);
                return reply_error(h, c, e == -EBUSY ? 503 : 500, db_errmsg(hdb(h)));
        }
        return reply_json(h, c, 200, j);
}

/* A POST a page of another site made the browser send (with the user's
 * cached password): its Origin names another host than the one asked, or
 * the browser says cross-site.  Without either header (curl, scripts) it
 * is the user's own. */
static bool cross_site(struct MHD_Connection *c, char *why, size_t whylen)
{
        const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
        const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
        const char *site = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
        const char *o;

        if (origin) {
                o = strstr(origin, "://");
                if (!o || !host || strcasecmp(o + 3, host)) {
                        snprintf(why, whylen, "cross-site request refused: Origin %.100s is not this host (%.100s)",
                                 origin, host ? host : "no Host header");
                        return true;
                }
        }
        if (site && !strcmp(site, "cross-site")) {
                snprintf(why, whylen, "cross-site request refused (Sec-Fetch-Site: cross-site)");
                return true;
        }
        return false;
}

/* POST /api/cameras/ID/exports?from=&to= starts an export (202 and its
 * status); GET .../exports/N is its status; GET .../exports/N/K.mp4 part K. */
static enum MHD_Result export_req(struct http_server *h, struct MHD_Connection *c, const char *method,
                                  const char *camera, int64_t job, int64_t part)
{
        char err[256], name[CONFIG_ID_MAX + 64];
        off_t size = 0;
        cJSON *j;
        int fd, e;

        if (!camera_allowed(camera_list(c), camera))
                return reply_error(h, c, 403, "not one of this user's cameras");
        if (!job) {
                const char *from = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "from");
                const char *to = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "to");
                int64_t from_us, to_us, id;

                if (strcmp(method, "POST"))
                        return reply_error(h, c, 405, "POST starts an export");
                if (cross_site(c, err, sizeof(err)))
                        return reply_error(h, c, 403, err);
                if (!from || !to || timefmt_parse_us(from, &from_us) < 0 || timefmt_parse_us(to, &to_us) < 0)
                        return reply_error(h, c, 400, "from and to: RFC 3339 or unix seconds");
                if ((e = exports_start(h->exports, camera, from_us, to_us, &id, err, sizeof(err))) < 0)
                        return reply_error(h, c, e == -EINVAL ? 400 : e == -EBUSY ? 429 : 500, err);
                j = exports_status(h->exports, camera, id);
                return j ? reply_json(h, c, 202, j) : reply_error(h, c, 500, "export vanished");
        }
        if (strcmp(method, "GET") && strcmp(method, "HEAD"))
                return reply_error(h, c, 405, "only GET");
        if (!part) {
                j = exports_status(h->exports, camera, job);
                return j ? reply_json(h, c, 200, j) : reply_error(h, c, 404, "no such export of that camera");
        }
        if ((fd = exports_open(h->exports, camera, job, (int)part, &size)) < 0)
                return reply_error(h, c, fd == -EAGAIN ? 409 : 404,
                                   fd == -EAGAIN ? "the export is still running" : "no such export file");
        snprintf(name, sizeof(name), "attachment; filename=\"%s-export-%" PRId64 "-%" PRId64 ".mp4\"", camera, job,
                 part);
        return reply_mp4(h, c, fd, 0, (uint64_t)size, name);
}

/* The UI's static files, from the binary (www.h). */
static enum MHD_Result ui_file(struct http_server *h, struct MHD_Connection *c, const struct www_file *f)
{
        struct MHD_Response *resp = MHD_create_response_from_buffer(f->len, (void *)f->data, MHD_RESPMEM_PERSISTENT);

        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
        return send_response(h, c, 200, resp, f->type, f->len);
}

/* ---- routing ------------------------------------------------------------------------ */

/* `camera` twice would let a proxy that reads the first and a worker that
 * reads another disagree about whose footage it is: refused. */
static enum MHD_Result count_camera(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
        if (key && !strcmp(key, "camera"))
                ++*(int *)cls;
        return MHD_YES;
}

static int camera_args(struct MHD_Connection *c)
{
        int n = 0;

        MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, count_camera, &n);
        return n;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
        struct http_server *h = cls;
        struct status_snapshot *s;
        enum MHD_Result r;

        char export_cam[CONFIG_ID_MAX];
        int64_t job, part;
        /* the exports are the one place with a POST (starting one): export_req checks their methods */
        bool export = http_path_export(url, export_cam, sizeof(export_cam), &job, &part);

        audit_now = NULL;
        if (!export && strcmp(method, "GET") && strcmp(method, "HEAD"))
                return reply_error(h, c, 405, "only GET");
        if (*upload_size)
                return reply_error(h, c, 400, "no request body expected");
        if (camera_args(c) > 1)
                return reply_error(h, c, 400, "camera: given more than once");
        if (export) {
                audit_begin(c, con_cls, export_cam, job ? "export" : "export-start", NULL);
                return export_req(h, c, method, export_cam, job, part);
        }
        if (!strcmp(url, "/api/segments")) {
                audit_begin(c, con_cls, MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "camera"), "segments",
                            NULL);
                return api_index(h, c, false);
        }
        if (!strcmp(url, "/api/gaps"))
                return api_index(h, c, true);
        if (!strcmp(url, "/api/deploys"))
                return deploys(h, c);
        if (!strncmp(url, "/ui", 3)) {
                const struct www_file *f = www_find(url);

                return f ? ui_file(h, c, f) : reply_error(h, c, 404, "no such page");
        }
        {
                char camera[CONFIG_ID_MAX], what[48], range[48];
                int64_t id;
                uint64_t off, len;
                bool whole, scoped = false;

                if (http_path_camera_leaf(url, "/coverage", camera, sizeof(camera))) {
                        audit_begin(c, con_cls, camera, "coverage", NULL);
                        return coverage(h, c, camera);
                }
                if (http_path_playlist(url, camera, sizeof(camera))) {
                        snprintf(range, sizeof(range), "%.20s..%.20s",
                                 MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "from") ?: "",
                                 MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "to") ?: "");
                        audit_begin(c, con_cls, camera, "playlist", range);
                        return playlist(h, c, camera);
                }
                if ((scoped = http_path_camera_media(url, camera, sizeof(camera), &id, &off, &len, &whole)) ||
                    http_path_media(url, &id, &off, &len, &whole)) {
                        snprintf(what, sizeof(what), "segment:%" PRId64, id);
                        if (whole)
                                snprintf(range, sizeof(range), "whole");
                        else
                                snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, off, len);
                        audit_begin(c, con_cls, scoped ? camera : NULL, what, range);
                        return media(h, c, scoped ? camera : NULL, id, off, len, whole);
                }
        }
        if (strcmp(url, "/health") && strcmp(url, "/api/health") && strcmp(url, "/metrics") &&
            strcmp(url, "/api/cameras"))
                return reply_error(h, c, 404, "no such endpoint");
        s = malloc(sizeof(*s));
        if (!s)
                return MHD_NO;
        h->snapshot(h->ctx, s);
        if (!hdb(h) || db_check(hdb(h)) < 0) { /* the DB must answer, not only accept writes */
                int64_t ready_since = s->ready_since_real_us;

                s->db_ok = false;
                status_evaluate(s, &ready_since);
        }
        if (!strcmp(url, "/health"))
                r = health(h, c, s);
        else if (!strcmp(url, "/api/health"))
                r = api_health(h, c, s);
        else if (!strcmp(url, "/api/cameras"))
                r = api_cameras(h, c, s);
        else
                r = reply(h, c, 200, "text/plain; version=0.0.4", metrics_text(h, s));
        free(s);
        return r;
}

int http_start(struct http_server **out, const char *bind, int port, const char *db_path, const char *storage_dir,
               http_snapshot_fn fn, void *ctx, char *err, size_t errlen)
{
        struct http_server *h = calloc(1, sizeof(*h));
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };

        if (!h)
                return -ENOMEM;
        if (inet_pton(AF_INET, bind, &sa.sin_addr) != 1) {
                snprintf(err, errlen, "worker.bind '%s' is not an IPv4 address", bind);
                free(h);
                return -EINVAL;
        }
        h->snapshot = fn;
        h->ctx = ctx;
        if (exports_new(db_path, storage_dir, &h->exports) < 0) {
                snprintf(err, errlen, "out of memory");
                free(h);
                return -ENOMEM;
        }
        if (!realpath(storage_dir, h->storage_dir))
                h->storage_dir[0] = '\0'; /* not there yet: no media until a restart creates it */
        snprintf(h->db_path, sizeof(h->db_path), "%s", db_path);
        if (pthread_key_create(&h->db_key, db_key_close)) {
                snprintf(err, errlen, "no thread key for the HTTP threads' DB connections");
                exports_free(h->exports);
                free(h);
                return -EAGAIN;
        }
        /* (a DB that cannot be opened makes /health say unhealthy; recording goes on) */
        h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, (uint16_t)port, NULL, NULL, handler, h,
                                MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT,
                                (unsigned)HTTP_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
                                (unsigned)HTTP_CONNECTION_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                (size_t)HTTP_CONNECTION_MEMORY, MHD_OPTION_THREAD_POOL_SIZE,
                                (unsigned)HTTP_THREADS, MHD_OPTION_NOTIFY_COMPLETED, audit_done, NULL,
                                MHD_OPTION_END);
        if (!h->d) {
                snprintf(err, errlen, "cannot listen on %s:%d (port in use?)", bind, port);
                pthread_key_delete(h->db_key);
                exports_free(h->exports);
                free(h);
                return -EADDRINUSE;
        }
        *out = h;
        return 0;
}

void http_stop(struct http_server *h)
{
        if (!h)
                return;
        MHD_stop_daemon(h->d); /* joins the threads: their connections close with them */
        exports_free(h->exports);
        pthread_key_delete(h->db_key);
        free(h);
}
