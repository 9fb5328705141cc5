/* loader: DB rows and frame index blobs into the timeline's input. */
#include "continuity/loader.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/frame_index.h"

struct row {
        int64_t id, start_us, end_us, pid;
        char *instance_id, *path, *status, *overlap;
        char audio[16]; /* audio_codec */
};

struct rows {
        struct row *v;
        size_t n, cap;
        size_t seen; /* rows the DB returned, kept or not: what a page is measured by */
        int error;
};

static int collect(const struct db_segment *seg, void *ctx)
{
        struct rows *r = ctx;
        struct row *x;

        r->seen++;
        if (strcmp(seg->status, "corrupt") == 0)
                return 0;
        if (r->n == r->cap) {
                size_t cap = r->cap ? 2 * r->cap : 64;
                struct row *nv = realloc(r->v, cap * sizeof(*nv));

                if (!nv)
                        return -ENOMEM;
                r->v = nv;
                r->cap = cap;
        }
        x = &r->v[r->n];
        *x = (struct row){ .id = seg->id, .start_us = seg->start_us, .end_us = seg->end_us, .pid = seg->pid,
                           .instance_id = strdup(seg->instance_id), .path = strdup(seg->path),
                           .status = strdup(seg->status), .overlap = strdup(seg->overlap_status) };
        snprintf(x->audio, sizeof(x->audio), "%s", seg->audio_codec ? seg->audio_codec : "");
        r->n++;
        if (!x->instance_id || !x->path || !x->status || !x->overlap)
                return -ENOMEM;
        return 0;
}

static void rows_free(struct rows *r, size_t from)
{
        for (size_t i = from; i < r->n; i++) {
                free(r->v[i].instance_id);
                free(r->v[i].path);
                free(r->v[i].status);
                free(r->v[i].overlap);
        }
        free(r->v);
}

int tl_load(struct db *db, const char *camera, int64_t from_us, int64_t to_us, struct tl_input *in)
{
        struct rows rows = { 0 };
        int64_t lo = from_us - TL_LOAD_MARGIN_US, hi = to_us + TL_LOAD_MARGIN_US;
        size_t i;
        int e;

        memset(in, 0, sizeof(*in));
        if (to_us <= from_us)
                return -EINVAL;
        /* The last page is the first one shorter than the limit in rows the
         * DB returned; counting only the rows kept would take a full page
         * with a corrupt row in it for the last and drop the rest. */
        for (int64_t offset = 0;; offset += DB_QUERY_LIMIT_MAX) {
                size_t before = rows.seen;

                e = db_segments_range(db, camera, lo, hi, DB_QUERY_LIMIT_MAX, offset, collect, &rows);
                if (e < 0)
                        goto fail;
                if (rows.seen - before < DB_QUERY_LIMIT_MAX)
                        break;
        }
        in->segs = calloc(rows.n ? rows.n : 1, sizeof(*in->segs));
        in->status = calloc(rows.n ? rows.n : 1, sizeof(*in->status));
        in->overlap = calloc(rows.n ? rows.n : 1, sizeof(*in->overlap));
        in->end_us = calloc(rows.n ? rows.n : 1, sizeof(*in->end_us));
        if (!in->segs || !in->status || !in->overlap || !in->end_us) {
                e = -ENOMEM;
                goto fail;
        }
        for (i = 0; i < rows.n; i++) {
                struct row *x = &rows.v[i];
                struct fi_frame *fi = NULL;
                struct cm_frame *f;
                void *blob;
                size_t len, n = 0;

                e = db_segment_frames(db, x->id, &blob, &len);
                if (e == -ENOENT) {
                        in->bad_index++;
                        goto skip;
                }
                if (e < 0)
                        goto fail_at;
                e = fi_decode(blob, len, &fi, &n);
                free(blob);
                if (e == -EBADMSG || (e == 0 && n == 0)) {
                        in->bad_index += e < 0;
                        goto skip;
                }
                if (e < 0)
                        goto fail_at;
                f = malloc(n * sizeof(*f));
                if (!f) {
                        free(fi);
                        e = -ENOMEM;
                        goto fail_at;
                }
                for (size_t k = 0; k < n; k++)
                        f[k] = (struct cm_frame){ .t_us = x->start_us + (int64_t)fi[k].offset_us,
                                                  .size = fi[k].size, .hash = fi[k].hash, .key = fi[k].key };
                free(fi);
                in->segs[in->n] = (struct tl_segment){ .id = x->id, .instance_id = x->instance_id,
                                                       .path = x->path, .start_us = x->start_us,
                                                       .frames = f, .n = n, .run_key = x->pid,
                                                       .recording = strcmp(x->status, "recording") == 0 };
                memcpy(in->segs[in->n].audio_codec, x->audio, sizeof(x->audio));
                in->status[in->n] = x->status;
                in->overlap[in->n] = x->overlap;
                in->end_us[in->n] = x->end_us;
                in->n++;
                continue;
skip:
                free(x->instance_id);
                free(x->path);
                free(x->status);
                free(x->overlap);
        }
        free(rows.v);
        return 0;
fail_at:
        rows_free(&rows, i);
        rows.v = NULL;
        tl_input_free(in);
        return e;
fail:
        rows_free(&rows, 0);
        tl_input_free(in);
        return e;
}

void tl_input_free(struct tl_input *in)
{
        for (size_t i = 0; i < in->n; i++) {
                free((void *)in->segs[i].frames);
                free((void *)in->segs[i].instance_id);
                free((void *)in->segs[i].path);
                free(in->status[i]);
                free(in->overlap[i]);
        }
        free(in->segs);
        free(in->status);
        free(in->overlap);
        free(in->end_us);
        memset(in, 0, sizeof(*in));
}

int tl_store_overlap(struct db *db, const struct tl_input *in, const struct tl_result *r, int64_t from_us,
                     int64_t to_us, size_t *changed)
{
        size_t n = 0;

        for (size_t i = 0; i < in->n; i++) {
                const char *verdict = tl_overlap_name(r->overlap[i]);
                int e;

                if (in->segs[i].recording || in->segs[i].start_us < from_us || in->end_us[i] > to_us ||
                    strcmp(verdict, in->overlap[i]) == 0)
                        continue;
                if ((e = db_segment_set_overlap(db, in->segs[i].id, verdict)) < 0 && e != -ENOENT)
                        return e; /* -ENOENT: deleted meanwhile (retention) */
                n += e == 0;
        }
        if (changed)
                *changed = n;
        return 0;
}

struct best_gap {
        int64_t start_us, end_us, overlap;
        char reason[32];
};

static int best_gap_cb(const struct db_gap *g, void *ctx)
{
        struct best_gap *b = ctx;
        int64_t lo = g->start_us > b->start_us ? g->start_us : b->start_us;
        int64_t hi = g->end_us < b->end_us ? g->end_us : b->end_us;

        /* a ledger row on the other copy's clock may touch the hole only
         * at its edge: the nearest row still wins over none */
        if (hi - lo > b->overlap) {
                b->overlap = hi - lo;
                snprintf(b->reason, sizeof(b->reason), "%s", g->reason);
        }
        return 0;
}

int tl_hole_reason(struct db *db, const char *camera, const struct tl_input *in, const struct tl_hole *h,
                   char *reason, size_t len)
{
        /* the ledger is on the recording copy's clock; copies differ by well under a second */
        struct best_gap b = { .start_us = h->start_us, .end_us = h->end_us, .overlap = INT64_MIN };
        int e = db_gaps_range(db, camera, h->start_us - 1000000, h->end_us + 1000000, 100, 0, best_gap_cb, &b);

        if (e < 0)
                return e;
        if (b.overlap != INT64_MIN)
                snprintf(reason, len, "%s", b.reason);
        else if (h->inside_gop)
                snprintf(reason, len, "packet_loss");
        else if (h->seg_before < in->n && strcmp(in->status[h->seg_before], "partial") == 0)
                snprintf(reason, len, "crash");
        else
                snprintf(reason, len, "unknown");
        return 0;
}
