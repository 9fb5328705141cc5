/* timeline: pick one copy of every GOP across instances (see timeline.h). */
#include "continuity/timeline.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TL_DEFAULT_FRAME_US 40000
#define TL_RUN_BREAK_US 1000000 /* a hole this long in one instance's footage starts a new copy */

struct inst {
        const char *id;
        size_t *segs; /* input indexes, by start_us */
        size_t n_segs;
        struct cm_frame *f; /* every frame of the copy, in decode order, own clock */
        size_t n;
        int64_t shift; /* reference clock = own clock - shift */
        bool aligned;
};

struct gop {
        size_t inst, seg, first, last, n;
        int64_t key_t, pts_min, pts_max; /* reference clock */
        uint64_t sig;
        bool key;     /* starts with a keyframe: only then can a piece start here */
        size_t cluster;
        bool chosen;
};

struct builder {
        const struct tl_segment *segs;
        size_t n_segs;
        struct inst *inst;
        size_t n_inst;
        struct gop *gops;
        size_t n_gops;
        struct tl_result *r;
        size_t cap_pieces, cap_holes;
};

const char *tl_overlap_name(enum tl_overlap o)
{
        switch (o) {
        case TL_PRIMARY:
                return "primary";
        case TL_DUPLICATE:
                return "duplicate";
        case TL_PARTIAL:
                return "partial";
        case TL_UNIQUE:
        default:
                return "unique";
        }
}

static int cmp_seg(const void *x, const void *y, void *segs)
{
        const struct tl_segment *a = (const struct tl_segment *)segs + *(const size_t *)x;
        const struct tl_segment *b = (const struct tl_segment *)segs + *(const size_t *)y;

        if (a->start_us != b->start_us)
                return a->start_us < b->start_us ? -1 : 1;
        return (a->id > b->id) - (a->id < b->id);
}

static int cmp_gop(const void *x, const void *y)
{
        const struct gop *a = x, *b = y;

        if (a->key_t != b->key_t)
                return a->key_t < b->key_t ? -1 : 1;
        return (a->inst > b->inst) - (a->inst < b->inst);
}

static int cmp_i64(const void *x, const void *y)
{
        int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;

        return (a > b) - (a < b);
}

static int64_t abs64(int64_t v)
{
        return v < 0 ? -v : v;
}

/* Segments by instance, recording process (run_key), start. */
static int cmp_seg_run(const void *x, const void *y, void *segs)
{
        const struct tl_segment *a = (const struct tl_segment *)segs + *(const size_t *)x;
        const struct tl_segment *b = (const struct tl_segment *)segs + *(const size_t *)y;
        int c = strcmp(a->instance_id, b->instance_id);

        if (c)
                return c;
        if (a->run_key != b->run_key)
                return a->run_key < b->run_key ? -1 : 1;
        return cmp_seg(x, y, segs);
}

static int64_t seg_last_t(const struct tl_segment *sg)
{
        int64_t t = INT64_MIN;

        for (size_t k = 0; k < sg->n; k++)
                if (sg->frames[k].t_us > t)
                        t = sg->frames[k].t_us;
        return t;
}

/* Cut the segments into copies with one clock each and concatenate each
 * copy's frames.  A copy is one recording session: the same instance and
 * process, without a hole.  Each RTSP session has its own RTCP mapping, so
 * a restarted or reconnected recorder can be tens of ms (after an outage,
 * up to a second) off its own earlier footage; copies are aligned one by one. */
static int group(struct builder *b)
{
        size_t *order = malloc((b->n_segs ? b->n_segs : 1) * sizeof(*order));
        int64_t prev_last = INT64_MIN;
        int e = 0;

        b->inst = calloc(b->n_segs ? b->n_segs : 1, sizeof(*b->inst));
        if (!b->inst || !order) {
                free(order);
                return -ENOMEM;
        }
        for (size_t s = 0; s < b->n_segs; s++)
                order[s] = s;
        qsort_r(order, b->n_segs, sizeof(*order), cmp_seg_run, (void *)b->segs);
        for (size_t k = 0; k < b->n_segs; k++) {
                const struct tl_segment *sg = &b->segs[order[k]];
                const struct tl_segment *pv = k ? &b->segs[order[k - 1]] : NULL;
                struct inst *in;

                if (!pv || strcmp(pv->instance_id, sg->instance_id) || pv->run_key != sg->run_key ||
                    (sg->n && prev_last != INT64_MIN && sg->frames[0].t_us - prev_last > TL_RUN_BREAK_US)) {
                        in = &b->inst[b->n_inst++];
                        in->id = sg->instance_id;
                        in->segs = malloc(b->n_segs * sizeof(size_t));
                        if (!in->segs) {
                                e = -ENOMEM;
                                break;
                        }
                        prev_last = INT64_MIN;
                }
                in = &b->inst[b->n_inst - 1];
                in->segs[in->n_segs++] = order[k];
                in->n += sg->n;
                if (sg->n)
                        prev_last = seg_last_t(sg);
        }
        free(order);
        for (size_t i = 0; i < b->n_inst && e == 0; i++) {
                struct inst *in = &b->inst[i];
                size_t k = 0;

                in->f = malloc((in->n ? in->n : 1) * sizeof(*in->f));
                if (!in->f)
                        return -ENOMEM;
                for (size_t s = 0; s < in->n_segs; s++) {
                        const struct tl_segment *sg = &b->segs[in->segs[s]];

                        memcpy(in->f + k, sg->frames, sg->n * sizeof(*in->f));
                        k += sg->n;
                }
        }
        return e;
}

/* Every copy's clock relative to the reference (the copy with most frames),
 * through whichever already aligned copy it shares the most frames with. */
static bool spans_meet(const struct inst *a, const struct inst *b, int64_t margin)
{
        return a->n && b->n && a->f[0].t_us - margin <= b->f[b->n - 1].t_us && b->f[0].t_us - margin <= a->f[a->n - 1].t_us;
}

/* The largest copy not aligned yet, preferring the reference's instance
 * (so a camera outage, after which no copy shares frames with any before,
 * keeps the times of the copy people think of as "the" recording). */
static size_t next_root(const struct builder *b, const char *prefer)
{
        size_t best = SIZE_MAX;

        for (size_t i = 0; i < b->n_inst; i++) {
                const struct inst *c = &b->inst[i];

                if (c->aligned)
                        continue;
                if (best == SIZE_MAX || (prefer && !strcmp(c->id, prefer)) > (prefer && !strcmp(b->inst[best].id, prefer)) ||
                    ((prefer && !strcmp(c->id, prefer)) == (prefer && !strcmp(b->inst[best].id, prefer)) &&
                     c->n > b->inst[best].n))
                        best = i;
        }
        return best;
}

/* Every copy's clock relative to its component's root: copies are aligned
 * through whichever aligned copy they share the most frames with; a group
 * of copies that shares none with the rest gets a root of its own. */
static int align(struct builder *b, int64_t frame_us, int64_t max_shift)
{
        const char *prefer = NULL;
        size_t root;

        if (max_shift <= 0)
                max_shift = 5000000;
        while ((root = next_root(b, prefer)) != SIZE_MAX) {
                bool progress = true;

                if (!prefer)
                        prefer = b->inst[root].id;
                b->inst[root].aligned = true;
                b->inst[root].shift = 0;
                while (progress) {
                        progress = false;
                        for (size_t u = 0; u < b->n_inst; u++) {
                                size_t best = 0;

                                if (b->inst[u].aligned)
                                        continue;
                                for (size_t a = 0; a < b->n_inst; a++) {
                                        struct cm_match m;
                                        int e;

                                        if (!b->inst[a].aligned || a == u ||
                                            !spans_meet(&b->inst[a], &b->inst[u], max_shift))
                                                continue;
                                        e = cm_match(b->inst[a].f, b->inst[a].n, b->inst[u].f, b->inst[u].n,
                                                     max_shift, frame_us, &m);
                                        if (e < 0)
                                                return e;
                                        if (m.n_pairs > best) {
                                                best = m.n_pairs;
                                                b->inst[u].shift = b->inst[a].shift + m.shift_us;
                                        }
                                        cm_match_free(&m);
                                }
                                if (best) {
                                        b->inst[u].aligned = true;
                                        progress = true;
                                }
                        }
                }
        }
        return 0;
}

static int cut_gops(struct builder *b, const struct tl_options *o, int64_t frame_us)
{
        size_t cap = 0;

        for (size_t s = 0; s < b->n_segs; s++)
                cap += b->segs[s].n;
        b->gops = malloc((cap ? cap : 1) * sizeof(*b->gops));
        if (!b->gops)
                return -ENOMEM;
        for (size_t i = 0; i < b->n_inst; i++) {
                const struct inst *in = &b->inst[i];

                for (size_t s = 0; s < in->n_segs; s++) {
                        size_t si = in->segs[s];
                        const struct tl_segment *sg = &b->segs[si];
                        struct gop *g = NULL;

                        for (size_t k = 0; k < sg->n; k++) {
                                const struct cm_frame *f = &sg->frames[k];
                                int64_t t = f->t_us - in->shift;

                                if (!g || f->key) {
                                        if (g && !(g->pts_max + frame_us > o->from_us && g->pts_min < o->to_us))
                                                b->n_gops--; /* outside the range */
                                        g = &b->gops[b->n_gops++];
                                        *g = (struct gop){ .inst = i, .seg = si, .first = k, .key_t = t,
                                                           .pts_min = t, .pts_max = t, .key = f->key,
                                                           .sig = (uint64_t)f->size << 32 | f->hash };
                                }
                                g->last = k;
                                g->n++;
                                if (t < g->pts_min)
                                        g->pts_min = t;
                                if (t > g->pts_max)
                                        g->pts_max = t;
                        }
                        if (g && !(g->pts_max + frame_us > o->from_us && g->pts_min < o->to_us))
                                b->n_gops--;
                }
        }
        qsort(b->gops, b->n_gops, sizeof(*b->gops), cmp_gop);
        return 0;
}

static int add_piece(struct builder *b, const struct gop *g, int64_t frame_us)
{
        struct tl_result *r = b->r;
        struct tl_piece *p = r->n_pieces ? &r->pieces[r->n_pieces - 1] : NULL;

        if (p && p->seg == g->seg && p->last + 1 == g->first) {
                p->last = g->last;
                p->frames += g->n;
                if (g->pts_min < p->start_us)
                        p->start_us = g->pts_min;
                if (g->pts_max + frame_us > p->end_us)
                        p->end_us = g->pts_max + frame_us;
                return 0;
        }
        if (p && strcmp(b->segs[p->seg].instance_id, b->segs[g->seg].instance_id) != 0)
                r->switches++;
        if (r->n_pieces == b->cap_pieces) {
                size_t cap = b->cap_pieces ? 2 * b->cap_pieces : 16;
                struct tl_piece *np = realloc(r->pieces, cap * sizeof(*np));

                if (!np)
                        return -ENOMEM;
                r->pieces = np;
                b->cap_pieces = cap;
        }
        r->pieces[r->n_pieces++] = (struct tl_piece){ .seg = g->seg, .first = g->first, .last = g->last,
                                                      .frames = g->n, .start_us = g->pts_min,
                                                      .end_us = g->pts_max + frame_us,
                                                      .shift_us = b->inst[g->inst].shift };
        return 0;
}

static int add_hole(struct builder *b, int64_t start, int64_t end, size_t before, size_t after, bool inside)
{
        struct tl_result *r = b->r;

        if (r->n_holes == b->cap_holes) {
                size_t cap = b->cap_holes ? 2 * b->cap_holes : 8;
                struct tl_hole *nh = realloc(r->holes, cap * sizeof(*nh));

                if (!nh)
                        return -ENOMEM;
                r->holes = nh;
                b->cap_holes = cap;
        }
        r->holes[r->n_holes++] = (struct tl_hole){ .start_us = start, .end_us = end, .seg_before = before,
                                                   .seg_after = after, .inside_gop = inside };
        return 0;
}

/* Frames missing inside one GOP (lost packets): its shown times, sorted. */
static int holes_inside(struct builder *b, const struct gop *g, int64_t frame_us, int64_t gap_us)
{
        const struct tl_segment *sg = &b->segs[g->seg];
        int64_t *t = malloc(g->n * sizeof(*t)), shift = b->inst[g->inst].shift;
        int e = 0;

        if (!t)
                return -ENOMEM;
        for (size_t k = 0; k < g->n; k++)
                t[k] = sg->frames[g->first + k].t_us - shift;
        qsort(t, g->n, sizeof(*t), cmp_i64);
        for (size_t k = 1; k < g->n && e == 0; k++)
                if (t[k] - t[k - 1] > gap_us)
                        e = add_hole(b, t[k - 1] + frame_us, t[k], g->seg, g->seg, true);
        free(t);
        return e;
}

/* Is candidate c a better copy of a GOP than the current best? */
static bool better(const struct gop *c, const struct gop *best, size_t prev_inst)
{
        if (!best)
                return true;
        if (c->n != best->n)
                return c->n > best->n;
        if ((c->inst == prev_inst) != (best->inst == prev_inst))
                return c->inst == prev_inst; /* no switch without a reason */
        return c->key_t < best->key_t;
}

static int choose(struct builder *b, int64_t frame_us, int64_t gap_us)
{
        struct tl_result *r = b->r;
        const struct gop *last = NULL;
        int64_t tol = frame_us / 2;
        size_t prev_inst = SIZE_MAX, *members;
        int e;

        members = malloc((b->n_gops ? b->n_gops : 1) * sizeof(*members));
        if (!members)
                return -ENOMEM;
        for (size_t i = 0; i < b->n_gops;) {
                size_t j = i, n = 0;
                struct gop *best = NULL;

                /* one cluster: the same keyframe (signature and time) in every copy */
                while (j < b->n_gops && abs64(b->gops[j].key_t - b->gops[i].key_t) <= tol &&
                       b->gops[j].sig == b->gops[i].sig) {
                        b->gops[j].cluster = i;
                        members[n++] = j++;
                }
                for (size_t k = 0; k < n; k++) {
                        struct gop *c = &b->gops[members[k]];

                        if (c->key && better(c, best, prev_inst))
                                best = c;
                }
                /* a copy of frames already taken (a GOP the copies disagree
                 * on) is never taken twice */
                if (best && last && best->pts_min < last->pts_max + tol)
                        best = NULL;
                if (best) {
                        best->chosen = true;
                        if (last && best->pts_min - last->pts_max > gap_us &&
                            (e = add_hole(b, last->pts_max + frame_us, best->pts_min, last->seg, best->seg,
                                          false)) < 0)
                                goto out;
                        if ((e = add_piece(b, best, frame_us)) < 0 ||
                            (e = holes_inside(b, best, frame_us, gap_us)) < 0)
                                goto out;
                        r->frames += best->n;
                        r->used_frames[best->seg] += best->n;
                        last = best;
                        prev_inst = best->inst;
                }
                i = j;
        }
        e = 0;
out:
        free(members);
        return e;
}

/* Is every frame of g (not chosen) in c (chosen, same cluster): the same
 * size and hash at the same time on the reference clock? */
static bool gop_in(const struct builder *b, const struct gop *g, const struct gop *c, int64_t tol)
{
        const struct cm_frame *gf = b->segs[g->seg].frames, *cf = b->segs[c->seg].frames;
        int64_t gs = b->inst[g->inst].shift, cs = b->inst[c->inst].shift;

        /* the sound is footage too, and the frame index holds video only:
         * a copy with other sound (or none) covers nothing */
        if (b->segs[c->seg].recording || strcmp(b->segs[c->seg].audio_codec, b->segs[g->seg].audio_codec))
                return false;
        for (size_t k = g->first; k <= g->last; k++) {
                bool found = false;

                for (size_t m = c->first; m <= c->last && !found; m++)
                        found = gf[k].size == cf[m].size && gf[k].hash == cf[m].hash &&
                                abs64((gf[k].t_us - gs) - (cf[m].t_us - cs)) <= tol;
                if (!found)
                        return false;
        }
        return true;
}

static void judge_overlap(struct builder *b, int64_t frame_us)
{
        struct tl_result *r = b->r;
        bool *shared = calloc(b->n_segs ? b->n_segs : 1, sizeof(*shared));
        size_t *in_range = calloc(b->n_segs ? b->n_segs : 1, sizeof(*in_range));

        if (!shared || !in_range) {
                free(shared);
                free(in_range);
                return;
        }
        for (size_t s = 0; s < b->n_segs; s++)
                r->covered[s] = !b->segs[s].recording;
        for (size_t i = 0; i < b->n_gops; i++) {
                const struct gop *g = &b->gops[i];
                bool others = (i > 0 && b->gops[i - 1].cluster == g->cluster) ||
                              (i + 1 < b->n_gops && b->gops[i + 1].cluster == g->cluster);

                in_range[g->seg] += g->n;
                if (others || !g->chosen)
                        shared[g->seg] = true;
                if (!g->chosen)
                        r->duplicate_frames += g->n;
                if (g->chosen) {
                        r->covered[g->seg] = false;
                } else if (r->covered[g->seg]) {
                        const struct gop *c = NULL;

                        for (size_t j = g->cluster; j < b->n_gops && b->gops[j].cluster == g->cluster && !c; j++)
                                if (b->gops[j].chosen)
                                        c = &b->gops[j];
                        r->covered[g->seg] = c && gop_in(b, g, c, frame_us / 2);
                }
        }
        for (size_t s = 0; s < b->n_segs; s++) {
                /* a GOP left out (outside the range) was not judged */
                if (in_range[s] != b->segs[s].n || !b->segs[s].n)
                        r->covered[s] = false;
                if (!shared[s])
                        r->overlap[s] = TL_UNIQUE;
                else if (r->used_frames[s] == 0)
                        r->overlap[s] = TL_DUPLICATE;
                else if (r->used_frames[s] == in_range[s])
                        r->overlap[s] = TL_PRIMARY;
                else
                        r->overlap[s] = TL_PARTIAL;
        }
        free(shared);
        free(in_range);
}

int tl_build(const struct tl_segment *segs, size_t n, const struct tl_options *o, struct tl_result *out)
{
        struct builder b = { .segs = segs, .n_segs = n, .r = out };
        double gap_frames = o->gap_frames > 0 ? o->gap_frames : TL_GAP_FRAMES_DEFAULT;
        int64_t frame_us = 0;
        size_t most = 0;
        int e;

        memset(out, 0, sizeof(*out));
        if (o->to_us <= o->from_us)
                return -EINVAL;
        out->overlap = calloc(n ? n : 1, sizeof(*out->overlap));
        out->used_frames = calloc(n ? n : 1, sizeof(*out->used_frames));
        out->covered = calloc(n ? n : 1, sizeof(*out->covered));
        out->shift_us = calloc(n ? n : 1, sizeof(*out->shift_us));
        if (!out->overlap || !out->used_frames || !out->covered || !out->shift_us) {
                e = -ENOMEM;
                goto out;
        }
        if ((e = group(&b)) < 0)
                goto out;
        for (size_t i = 0; i < b.n_inst; i++)
                if (b.inst[i].n > most) {
                        most = b.inst[i].n;
                        frame_us = cm_frame_duration(b.inst[i].f, b.inst[i].n);
                }
        if (frame_us <= 0)
                frame_us = TL_DEFAULT_FRAME_US;
        out->frame_us = frame_us;
        if ((e = align(&b, frame_us, o->max_shift_us)) < 0)
                goto out;
        for (size_t i = 0; i < b.n_inst; i++)
                for (size_t s = 0; s < b.inst[i].n_segs; s++)
                        out->shift_us[b.inst[i].segs[s]] = b.inst[i].shift;
        if ((e = cut_gops(&b, o, frame_us)) < 0 ||
            (e = choose(&b, frame_us, (int64_t)(gap_frames * (double)frame_us))) < 0)
                goto out;
        judge_overlap(&b, frame_us);
out:
        for (size_t i = 0; i < b.n_inst; i++) {
                free(b.inst[i].segs);
                free(b.inst[i].f);
        }
        free(b.inst);
        free(b.gops);
        if (e < 0)
                tl_result_free(out);
        return e;
}

void tl_result_free(struct tl_result *r)
{
        free(r->pieces);
        free(r->holes);
        free(r->overlap);
        free(r->used_frames);
        free(r->covered);
        free(r->shift_us);
        memset(r, 0, sizeof(*r));
}
