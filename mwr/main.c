/* mwr: the offline tool over the segment index and files.
 *   timeline  the pieces that make a camera's continuous recording
 *   gaps      what no copy holds, with the reason from the gap ledger
 *   export    one MP4 of a range, stitched across segments and instances
 *   dedup     mark overlapping copies (overlap_status) after a deploy; with
 *             --delete, delete the segments whose every frame another copy holds
 *   verify    timestamp continuity of media files
 * Exit 0 on success, 1 on a runtime failure (or a file that fails verify),
 * 2 on bad usage or config, always with a one-line reason on stderr. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <libavutil/log.h>

#include "common/config.h"
#include "common/timefmt.h"
#include "continuity/loader.h"
#include "continuity/timeline.h"
#include "db/db.h"
#include "mwr/export.h"
#include "mwr/verify.h"

#define EXIT_USAGE 2

struct args {
        const char *cmd, *config, *camera, *out;
        int64_t from_us, to_us;
        bool have_from, have_to, json, quiet, delete;
        double gap_frames;
};

static void usage(FILE *f)
{
        fprintf(f, "usage: mwr timeline --config FILE --camera ID --from T --to T [--json]\n"
                   "       mwr gaps     --config FILE [--camera ID] --from T --to T [--json] [--gap-frames X]\n"
                   "       mwr export   --config FILE --camera ID --from T --to T -o OUT.mp4 [--quiet]\n"
                   "       mwr dedup    --config FILE [--camera ID] --from T --to T [--json] [--delete]\n"
                   "       mwr verify   [--json] FILE...\n"
                   "T is RFC 3339 (2026-11-23T10:00:00Z) or unix seconds (may be fractional).\n"
                   "A gap is no frame for more than X frame durations (default %.1f).\n",
                TL_GAP_FRAMES_DEFAULT);
}

static int parse_time(const char *flag, const char *s, int64_t *us)
{
        if (timefmt_parse_us(s, us) < 0) {
                fprintf(stderr, "mwr: %s: not RFC 3339 or unix seconds: '%s'\n", flag, s);
                return -EINVAL;
        }
        return 0;
}

static int args_parse(int argc, char **argv, struct args *a)
{
        static const struct option lo[] = { { "config", required_argument, NULL, 'c' },
                                            { "camera", required_argument, NULL, 'C' },
                                            { "from", required_argument, NULL, 'f' },
                                            { "to", required_argument, NULL, 't' },
                                            { "json", no_argument, NULL, 'j' },
                                            { "quiet", no_argument, NULL, 'q' },
                                            { "delete", no_argument, NULL, 'D' },
                                            { "gap-frames", required_argument, NULL, 'g' },
                                            { "output", required_argument, NULL, 'o' },
                                            { "help", no_argument, NULL, 'h' },
                                            { "version", no_argument, NULL, 'V' },
                                            { 0 } };
        char *end;
        int c;

        *a = (struct args){ .gap_frames = TL_GAP_FRAMES_DEFAULT };
        if (argc >= 2 && argv[1][0] != '-') {
                a->cmd = argv[1];
                argv++;
                argc--;
        }
        while ((c = getopt_long(argc, argv, "o:", lo, NULL)) != -1) {
                switch (c) {
                case 'c': a->config = optarg; break;
                case 'C': a->camera = optarg; break;
                case 'f':
                        if (parse_time("--from", optarg, &a->from_us) < 0)
                                return -EINVAL;
                        a->have_from = true;
                        break;
                case 't':
                        if (parse_time("--to", optarg, &a->to_us) < 0)
                                return -EINVAL;
                        a->have_to = true;
                        break;
                case 'j': a->json = true; break;
                case 'q': a->quiet = true; break;
                case 'D': a->delete = true; break;
                case 'g':
                        a->gap_frames = strtod(optarg, &end);
                        if (*end || !(a->gap_frames >= 1.0 && a->gap_frames <= 1000.0)) {
                                fprintf(stderr, "mwr: --gap-frames must be 1..1000, got '%s'\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case 'o': a->out = optarg; break;
                case 'h': usage(stdout); exit(0);
                case 'V': printf("mwr %s (%s)\n", MWR_VERSION, MWR_COMMIT); exit(0);
                default: usage(stderr); return -EINVAL;
                }
        }
        if (!a->cmd) {
                usage(stderr);
                return -EINVAL;
        }
        if (strcmp(a->cmd, "verify") == 0) {
                if (optind >= argc) {
                        fprintf(stderr, "mwr verify: no FILE given\n");
                        return -EINVAL;
                }
                return optind;
        }
        if (strcmp(a->cmd, "timeline") && strcmp(a->cmd, "gaps") && strcmp(a->cmd, "export") &&
            strcmp(a->cmd, "dedup")) {
                fprintf(stderr, "mwr: unknown command '%s' (timeline, gaps, export, dedup, verify)\n", a->cmd);
                return -EINVAL;
        }
        if (optind < argc) {
                fprintf(stderr, "mwr %s: unexpected argument '%s'\n", a->cmd, argv[optind]);
                return -EINVAL;
        }
        if (!a->config || !a->have_from || !a->have_to) {
                fprintf(stderr, "mwr %s: --config, --from and --to are required\n", a->cmd);
                return -EINVAL;
        }
        if (a->to_us <= a->from_us) {
                fprintf(stderr, "mwr %s: --to must be after --from\n", a->cmd);
                return -EINVAL;
        }
        if (!a->camera && (!strcmp(a->cmd, "timeline") || !strcmp(a->cmd, "export"))) {
                fprintf(stderr, "mwr %s: --camera is required\n", a->cmd);
                return -EINVAL;
        }
        if (a->delete && strcmp(a->cmd, "dedup")) {
                fprintf(stderr, "mwr %s: --delete is an option of dedup only\n", a->cmd);
                return -EINVAL;
        }
        if (!strcmp(a->cmd, "export") && !a->out) {
                fprintf(stderr, "mwr export: -o OUT.mp4 is required\n");
                return -EINVAL;
        }
        return optind;
}

static char *rfc(int64_t us, char buf[TIMEFMT_RFC3339_MAX])
{
        timefmt_rfc3339(us, buf);
        return buf;
}

/* One camera's timeline over the range, ready to report. */
struct cam_view {
        const char *camera;
        struct tl_input in;
        struct tl_result r;
};

static int view_build(struct db *db, const struct args *a, const char *camera, struct cam_view *v)
{
        struct tl_options o = { .from_us = a->from_us, .to_us = a->to_us, .gap_frames = a->gap_frames };
        int e;

        v->camera = camera;
        if ((e = tl_load(db, camera, a->from_us, a->to_us, &v->in)) < 0) {
                fprintf(stderr, "mwr: reading %s's segments: %s (%s)\n", camera, strerror(-e), db_errmsg(db));
                return e;
        }
        if ((e = tl_build(v->in.segs, v->in.n, &o, &v->r)) < 0) {
                fprintf(stderr, "mwr: building %s's timeline: %s\n", camera, strerror(-e));
                tl_input_free(&v->in);
        }
        return e;
}

static void view_free(struct cam_view *v)
{
        tl_result_free(&v->r);
        tl_input_free(&v->in);
}

static cJSON *json_time(cJSON *o, const char *key, int64_t us)
{
        char b[TIMEFMT_RFC3339_MAX], k[64];

        cJSON_AddStringToObject(o, key, rfc(us, b));
        snprintf(k, sizeof(k), "%s_us", key);
        return cJSON_AddNumberToObject(o, k, (double)us);
}

static int print_json(cJSON *root)
{
        char *s = cJSON_Print(root);

        cJSON_Delete(root);
        if (!s) {
                fprintf(stderr, "mwr: out of memory\n");
                return 1;
        }
        puts(s);
        free(s);
        return 0;
}

/* The gaps of one view as JSON objects (reason looked up in the ledger). */
static int gaps_json(struct db *db, const struct cam_view *v, cJSON *arr)
{
        for (size_t i = 0; i < v->r.n_holes; i++) {
                const struct tl_hole *h = &v->r.holes[i];
                cJSON *g = cJSON_CreateObject();
                char reason[32];
                int e = tl_hole_reason(db, v->camera, &v->in, h, reason, sizeof(reason));

                if (e < 0) {
                        cJSON_Delete(g);
                        fprintf(stderr, "mwr: reading the gap ledger: %s (%s)\n", strerror(-e), db_errmsg(db));
                        return e;
                }
                cJSON_AddStringToObject(g, "camera", v->camera);
                json_time(g, "start", h->start_us);
                json_time(g, "end", h->end_us);
                cJSON_AddNumberToObject(g, "duration_s", (double)(h->end_us - h->start_us) / 1e6);
                cJSON_AddNumberToObject(g, "missing_frames",
                                        (double)((h->end_us - h->start_us + v->r.frame_us / 2) / v->r.frame_us));
                cJSON_AddStringToObject(g, "reason", reason);
                cJSON_AddItemToArray(arr, g);
        }
        return 0;
}

static int cmd_timeline(struct db *db, const struct args *a)
{
        struct cam_view v = { 0 };
        char b1[TIMEFMT_RFC3339_MAX], b2[TIMEFMT_RFC3339_MAX];
        cJSON *root, *pieces, *gaps;
        int e;

        if (view_build(db, a, a->camera, &v) < 0)
                return 1;
        root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "camera", a->camera);
        json_time(root, "from", a->from_us);
        json_time(root, "to", a->to_us);
        cJSON_AddNumberToObject(root, "frame_duration_s", (double)v.r.frame_us / 1e6);
        cJSON_AddNumberToObject(root, "frames", (double)v.r.frames);
        cJSON_AddNumberToObject(root, "duplicate_frames", (double)v.r.duplicate_frames);
        cJSON_AddNumberToObject(root, "switches", (double)v.r.switches);
        pieces = cJSON_AddArrayToObject(root, "pieces");
        for (size_t i = 0; i < v.r.n_pieces; i++) {
                const struct tl_piece *p = &v.r.pieces[i];
                const struct tl_segment *s = &v.in.segs[p->seg];
                cJSON *o = cJSON_CreateObject();

                cJSON_AddNumberToObject(o, "segment_id", (double)s->id);
                cJSON_AddStringToObject(o, "instance_id", s->instance_id);
                cJSON_AddStringToObject(o, "path", s->path);
                cJSON_AddNumberToObject(o, "first_frame", (double)p->first);
                cJSON_AddNumberToObject(o, "last_frame", (double)p->last);
                cJSON_AddNumberToObject(o, "frames", (double)p->frames);
                json_time(o, "start", p->start_us);
                json_time(o, "end", p->end_us);
                cJSON_AddNumberToObject(o, "shift_us", (double)p->shift_us);
                cJSON_AddStringToObject(o, "overlap_status", tl_overlap_name(v.r.overlap[p->seg]));
                cJSON_AddItemToArray(pieces, o);
        }
        gaps = cJSON_AddArrayToObject(root, "gaps");
        if ((e = gaps_json(db, &v, gaps)) < 0) {
                cJSON_Delete(root);
                view_free(&v);
                return 1;
        }
        if (a->json) {
                view_free(&v);
                return print_json(root);
        }
        printf("%s %s .. %s: %zu frames in %zu pieces, %zu gaps, %zu switches between instances, "
               "%zu duplicate frames\n",
               a->camera, rfc(a->from_us, b1), rfc(a->to_us, b2), v.r.frames, v.r.n_pieces, v.r.n_holes,
               v.r.switches, v.r.duplicate_frames);
        for (size_t i = 0, g = 0; i < v.r.n_pieces; i++) {
                const struct tl_piece *p = &v.r.pieces[i];
                const struct tl_segment *s = &v.in.segs[p->seg];

                for (; g < v.r.n_holes && v.r.holes[g].start_us <= p->start_us; g++) {
                        cJSON *h = cJSON_GetArrayItem(gaps, (int)g);

                        printf("  GAP   %s .. %s  %.3f s  %s\n", rfc(v.r.holes[g].start_us, b1),
                               rfc(v.r.holes[g].end_us, b2),
                               (double)(v.r.holes[g].end_us - v.r.holes[g].start_us) / 1e6,
                               cJSON_GetStringValue(cJSON_GetObjectItem(h, "reason")));
                }
                printf("  %s .. %s  %5zu frames  %-12s %s [%zu..%zu]\n", rfc(p->start_us, b1), rfc(p->end_us, b2),
                       p->frames, s->instance_id, s->path, p->first, p->last);
        }
        cJSON_Delete(root);
        view_free(&v);
        return 0;
}

static int cmd_gaps(struct db *db, const struct mwr_config *cfg, const struct args *a)
{
        cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "gaps");
        char b1[TIMEFMT_RFC3339_MAX], b2[TIMEFMT_RFC3339_MAX];
        int n;

        for (size_t c = 0; c < cfg->n_cameras; c++) {
                const char *id = cfg->cameras[c].id;
                struct cam_view v = { 0 };

                if (a->camera && strcmp(a->camera, id) != 0)
                        continue;
                if (view_build(db, a, id, &v) < 0 || gaps_json(db, &v, arr) < 0) {
                        cJSON_Delete(root);
                        return 1;
                }
                view_free(&v);
        }
        n = cJSON_GetArraySize(arr);
        cJSON_AddNumberToObject(root, "count", n);
        if (a->json)
                return print_json(root);
        for (int i = 0; i < n; i++) {
                cJSON *g = cJSON_GetArrayItem(arr, i);

                printf("%s  %s .. %s  %8.3f s  %5d frames  %s\n",
                       cJSON_GetStringValue(cJSON_GetObjectItem(g, "camera")),
                       rfc((int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(g, "start_us")), b1),
                       rfc((int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(g, "end_us")), b2),
                       cJSON_GetNumberValue(cJSON_GetObjectItem(g, "duration_s")),
                       (int)cJSON_GetNumberValue(cJSON_GetObjectItem(g, "missing_frames")),
                       cJSON_GetStringValue(cJSON_GetObjectItem(g, "reason")));
        }
        printf("%d gaps\n", n);
        cJSON_Delete(root);
        return 0;
}

static void export_progress(size_t done, size_t total, void *ctx)
{
        const struct args *a = ctx;

        if (!a->quiet)
                fprintf(stderr, "mwr export: %zu/%zu frames (%.0f%%)\n", done, total,
                        total ? 100.0 * (double)done / (double)total : 100.0);
}

static int cmd_export(struct db *db, const struct args *a)
{
        struct cam_view v = { 0 };
        struct export_piece *p;
        struct export_stats st = { 0 };
        char err[512];
        int e;

        if (view_build(db, a, a->camera, &v) < 0)
                return 1;
        if (v.r.n_pieces == 0) {
                fprintf(stderr, "mwr export: camera %s has no footage in that range\n", a->camera);
                view_free(&v);
                return 1;
        }
        p = export_pieces(v.in.segs, &v.r);
        if (!p) {
                view_free(&v);
                fprintf(stderr, "mwr export: out of memory\n");
                return 1;
        }
        if (!a->quiet)
                fprintf(stderr, "mwr export: %s: %zu frames from %zu pieces, %zu gaps kept\n", a->camera,
                        v.r.frames, v.r.n_pieces, v.r.n_holes);
        e = export_write(p, v.r.n_pieces, a->out, export_progress, (void *)a, err, sizeof(err), &st);
        free(p);
        if (e < 0) {
                fprintf(stderr, "mwr export: %s\n", err);
                view_free(&v);
                return 1;
        }
        if (!a->quiet && st.n_parts == 1)
                fprintf(stderr, "mwr export: wrote %s: %zu frames, %.3f s, %zu gaps, %zu instance switches\n",
                        a->out, st.frames, (double)(st.last_us - st.first_us) / 1e6, v.r.n_holes,
                        v.r.switches);
        if (!a->quiet && st.n_parts > 1) {
                fprintf(stderr, "mwr export: the camera changed its stream in the range: wrote %zu files, one per "
                        "stream (%zu frames, %zu gaps, %zu instance switches in all):\n",
                        st.n_parts, st.frames, v.r.n_holes, v.r.switches);
                for (size_t k = 0; k < st.n_parts; k++) {
                        const struct export_part *pt = &st.parts[k];
                        char t1[TIMEFMT_RFC3339_MAX], t2[TIMEFMT_RFC3339_MAX];

                        timefmt_rfc3339(pt->first_us, t1);
                        timefmt_rfc3339(pt->last_us, t2);
                        fprintf(stderr, "mwr export: wrote %s: %s %dx%d, %zu frames, %s .. %s\n", pt->path, pt->codec,
                                pt->width, pt->height, pt->frames, t1, t2);
                }
        }
        view_free(&v);
        return 0;
}

/* --delete: the segments of v wholly inside the range whose every frame is
 * in a copy the timeline uses (tl_result.covered).  Rows go first, then the
 * files: a crash between leaves a file without a row, a duplicate again,
 * never a row without its file.  A file that is not there is left with its
 * row (the storage may be away: a missing file proves nothing).  0 or -1. */
static int delete_covered(struct db *db, const struct args *a, const struct cam_view *v, size_t *n_out,
                          uint64_t *bytes_out)
{
        int64_t *ids = malloc((v->in.n ? v->in.n : 1) * sizeof(*ids));
        size_t *idx = malloc((v->in.n ? v->in.n : 1) * sizeof(*idx)), n = 0;
        uint64_t bytes = 0;
        int e;

        if (!ids || !idx) {
                free(ids);
                free(idx);
                fprintf(stderr, "mwr dedup: %s: out of memory\n", v->camera);
                return -1;
        }
        for (size_t s = 0; s < v->in.n; s++) {
                const struct tl_segment *sg = &v->in.segs[s];
                struct stat st;

                if (!v->r.covered[s] || sg->start_us < a->from_us || v->in.end_us[s] > a->to_us)
                        continue;
                if (stat(sg->path, &st) < 0) {
                        fprintf(stderr, "mwr dedup: %s: %s: %s; its row stays\n", v->camera, sg->path, strerror(errno));
                        continue;
                }
                bytes += (uint64_t)st.st_size;
                ids[n] = sg->id;
                idx[n++] = s;
        }
        if (n && (e = db_segments_delete(db, ids, n)) < 0) {
                fprintf(stderr, "mwr dedup: %s: deleting %zu duplicate segments' rows: %s (%s)\n", v->camera, n,
                        strerror(-e), db_errmsg(db));
                free(ids);
                free(idx);
                return -1;
        }
        for (size_t k = 0; k < n; k++)
                if (unlink(v->in.segs[idx[k]].path) < 0 && errno != ENOENT)
                        fprintf(stderr, "mwr dedup: %s: its row is deleted but %s stays: %s\n", v->camera,
                                v->in.segs[idx[k]].path, strerror(errno));
        free(ids);
        free(idx);
        *n_out = n;
        *bytes_out = bytes;
        return 0;
}

/* --delete: one deleter at a time on a DB.  Two that judged the same rows
 * at once could each keep a different copy and delete the other: the
 * second waits, then judges what the first left. */
static int dedup_lock(const char *db_path)
{
        char p[PATH_MAX];
        int fd;

        if (snprintf(p, sizeof(p), "%s.dedup-lock", db_path) >= (int)sizeof(p))
                return -ENAMETOOLONG;
        if ((fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0640)) < 0)
                return -errno;
        if (flock(fd, LOCK_EX) < 0) {
                int e = -errno;

                close(fd);
                return e;
        }
        return fd; /* held until exit */
}

static int cmd_dedup(struct db *db, const struct mwr_config *cfg, const struct args *a)
{
        cJSON *root, *arr;
        int rc = 0, lock;

        if (a->delete && (lock = dedup_lock(cfg->db_path)) < 0) {
                fprintf(stderr, "mwr dedup: %s.dedup-lock: %s\n", cfg->db_path, strerror(-lock));
                return 1;
        }
        root = cJSON_CreateObject();
        arr = cJSON_AddArrayToObject(root, "cameras");

        for (size_t c = 0; c < cfg->n_cameras; c++) {
                const char *id = cfg->cameras[c].id;
                struct cam_view v = { 0 };
                size_t changed = 0, counts[4] = { 0 }, deleted = 0;
                uint64_t deleted_bytes = 0;
                cJSON *o;
                int e;

                if (a->camera && strcmp(a->camera, id) != 0)
                        continue;
                if (view_build(db, a, id, &v) < 0) {
                        rc = 1;
                        continue;
                }
                if ((e = tl_store_overlap(db, &v.in, &v.r, a->from_us, a->to_us, &changed)) < 0) {
                        fprintf(stderr, "mwr dedup: %s: storing overlap_status: %s (%s)\n", id, strerror(-e),
                                db_errmsg(db));
                        rc = 1;
                }
                for (size_t s = 0; s < v.in.n; s++)
                        if (v.in.segs[s].start_us >= a->from_us && v.in.end_us[s] <= a->to_us)
                                counts[v.r.overlap[s]]++;
                if (a->delete && delete_covered(db, a, &v, &deleted, &deleted_bytes) < 0)
                        rc = 1;
                o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "camera", id);
                cJSON_AddNumberToObject(o, "frames", (double)v.r.frames);
                cJSON_AddNumberToObject(o, "duplicate_frames", (double)v.r.duplicate_frames);
                cJSON_AddNumberToObject(o, "gaps", (double)v.r.n_holes);
                cJSON_AddNumberToObject(o, "segments_changed", (double)changed);
                for (int k = 0; k < 4; k++)
                        cJSON_AddNumberToObject(o, tl_overlap_name((enum tl_overlap)k), (double)counts[k]);
                if (a->delete) {
                        cJSON_AddNumberToObject(o, "deleted_segments", (double)deleted);
                        cJSON_AddNumberToObject(o, "deleted_bytes", (double)deleted_bytes);
                }
                cJSON_AddItemToArray(arr, o);
                if (!a->json)
                        printf("%s: %zu frames, %zu duplicate frames, %zu gaps; segments unique %zu, primary %zu, "
                               "duplicate %zu, partial %zu (%zu changed)\n",
                               id, v.r.frames, v.r.duplicate_frames, v.r.n_holes, counts[TL_UNIQUE],
                               counts[TL_PRIMARY], counts[TL_DUPLICATE], counts[TL_PARTIAL], changed);
                if (!a->json && a->delete)
                        printf("%s: deleted %zu segments (%.1f MB) whose every frame another copy holds\n", id,
                               deleted, (double)deleted_bytes / 1e6);
                view_free(&v);
        }
        if (a->json)
                return print_json(root) || rc;
        cJSON_Delete(root);
        return rc;
}

int main(int argc, char **argv)
{
        struct args a;
        struct mwr_config *cfg = NULL;
        struct db *db = NULL;
        char err[CONFIG_ERR_MAX];
        int e, rc;

        e = args_parse(argc, argv, &a);
        if (e < 0)
                return EXIT_USAGE;
        av_log_set_level(AV_LOG_ERROR);
        if (strcmp(a.cmd, "verify") == 0)
                return verify_files(argv + 1 + e, argc - 1 - e, a.json, stdout);
        if ((e = config_load(a.config, &cfg, err)) < 0) {
                fprintf(stderr, "mwr: %s\n", err);
                return EXIT_USAGE;
        }
        if (a.camera && !config_camera_find(cfg, a.camera)) {
                fprintf(stderr, "mwr: --camera %s is not in %s\n", a.camera, a.config);
                config_free(cfg);
                return EXIT_USAGE;
        }
        if (access(cfg->db_path, R_OK) < 0) { /* never create an empty index by looking */
                fprintf(stderr, "mwr: %s: %s\n", cfg->db_path, strerror(errno));
                config_free(cfg);
                return 1;
        }
        if ((e = db_open(cfg->db_path, &db)) < 0) {
                fprintf(stderr, "mwr: %s: %s\n", cfg->db_path, strerror(-e));
                config_free(cfg);
                return 1;
        }
        if (!strcmp(a.cmd, "timeline"))
                rc = cmd_timeline(db, &a);
        else if (!strcmp(a.cmd, "gaps"))
                rc = cmd_gaps(db, cfg, &a);
        else if (!strcmp(a.cmd, "export"))
                rc = cmd_export(db, &a);
        else
                rc = cmd_dedup(db, cfg, &a);
        db_close(db);
        config_free(cfg);
        return rc;
}
