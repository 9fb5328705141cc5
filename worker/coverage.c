#include "worker/coverage.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/timefmt.h"

struct span {
        int64_t s, e;
};

struct spans {
        struct span *v;
        size_t n, cap;
};

struct copy {
        char instance[CONFIG_ID_MAX];
        struct spans sp;
};

struct ledger_gap {
        int64_t s, e;
        char reason[32], detail[128], instance[CONFIG_ID_MAX];
};

struct acc {
        int64_t from, to;
        struct copy copies[COVERAGE_COPIES_MAX + 1]; /* the last: every other instance */
        size_t n_copies, rows;
        struct spans all;
        struct ledger_gap *gaps;
        size_t n_gaps, cap_gaps;
        bool oom;
};

/* Adds [s, e) to sp, joined to the last span when they meet (rows come by start). */
static int spans_add(struct spans *sp, int64_t s, int64_t e)
{
        if (sp->n && s <= sp->v[sp->n - 1].e + COVERAGE_JOIN_US) {
                if (e > sp->v[sp->n - 1].e)
                        sp->v[sp->n - 1].e = e;
                return 0;
        }
        if (sp->n == sp->cap) {
                size_t cap = sp->cap ? sp->cap * 2 : 64;
                struct span *v = realloc(sp->v, cap * sizeof(*v));

                if (!v)
                        return -ENOMEM;
                sp->v = v;
                sp->cap = cap;
        }
        sp->v[sp->n++] = (struct span){ s, e };
        return 0;
}

static int on_segment(const struct db_segment *seg, void *ctx)
{
        struct acc *a = ctx;
        int64_t s = seg->start_us < a->from ? a->from : seg->start_us;
        int64_t e = seg->end_us > a->to ? a->to : seg->end_us;
        size_t k;

        a->rows++;
        if (e < s)
                return 0;
        for (k = 0; k < a->n_copies && strcmp(a->copies[k].instance, seg->instance_id); k++)
                ;
        if (k == a->n_copies) {
                if (k == COVERAGE_COPIES_MAX)
                        k = COVERAGE_COPIES_MAX; /* the rest share one row */
                else
                        a->n_copies++;
                if (!a->copies[k].instance[0])
                        snprintf(a->copies[k].instance, sizeof(a->copies[k].instance), "%s",
                                 k == COVERAGE_COPIES_MAX ? "(others)" : seg->instance_id);
        }
        if (spans_add(&a->copies[k].sp, s, e) < 0 || spans_add(&a->all, s, e) < 0) {
                a->oom = true;
                return -ENOMEM;
        }
        return 0;
}

static int on_gap(const struct db_gap *g, void *ctx)
{
        struct acc *a = ctx;
        struct ledger_gap *x;

        if (a->n_gaps == a->cap_gaps) {
                size_t cap = a->cap_gaps ? a->cap_gaps * 2 : 32;
                struct ledger_gap *v = realloc(a->gaps, cap * sizeof(*v));

                if (!v) {
                        a->oom = true;
                        return -ENOMEM;
                }
                a->gaps = v;
                a->cap_gaps = cap;
        }
        x = &a->gaps[a->n_gaps++];
        x->s = g->start_us;
        x->e = g->end_us;
        snprintf(x->reason, sizeof(x->reason), "%s", g->reason);
        snprintf(x->detail, sizeof(x->detail), "%s", g->detail ? g->detail : "");
        snprintf(x->instance, sizeof(x->instance), "%s", g->instance_id ? g->instance_id : "");
        return 0;
}

static cJSON *spans_json(const struct spans *sp)
{
        cJSON *arr = cJSON_CreateArray();

        for (size_t i = 0; i < sp->n; i++) {
                cJSON *p = cJSON_CreateArray();

                cJSON_AddItemToArray(p, cJSON_CreateNumber((double)sp->v[i].s));
                cJSON_AddItemToArray(p, cJSON_CreateNumber((double)sp->v[i].e));
                cJSON_AddItemToArray(arr, p);
        }
        return arr;
}

static void add_time(cJSON *o, const char *key, int64_t us)
{
        char b[TIMEFMT_RFC3339_MAX];

        timefmt_rfc3339(us, b);
        cJSON_AddStringToObject(o, key, b);
}

/* The ledger row that overlaps [s, e) most, or NULL. */
static const struct ledger_gap *why(const struct acc *a, int64_t s, int64_t e)
{
        const struct ledger_gap *best = NULL;
        int64_t most = 0;

        for (size_t i = 0; i < a->n_gaps; i++) {
                int64_t lo = a->gaps[i].s > s ? a->gaps[i].s : s, hi = a->gaps[i].e < e ? a->gaps[i].e : e;

                if (hi - lo > most || (!best && hi >= lo)) {
                        most = hi - lo;
                        best = &a->gaps[i];
                }
        }
        return best;
}

static cJSON *holes_json(const struct acc *a)
{
        cJSON *arr = cJSON_CreateArray();

        for (size_t i = 1; i < a->all.n; i++) {
                int64_t s = a->all.v[i - 1].e, e = a->all.v[i].s;
                const struct ledger_gap *g = why(a, s, e);
                cJSON *o = cJSON_CreateObject();

                cJSON_AddNumberToObject(o, "start_us", (double)s);
                cJSON_AddNumberToObject(o, "end_us", (double)e);
                add_time(o, "start", s);
                add_time(o, "end", e);
                cJSON_AddNumberToObject(o, "seconds", (double)(e - s) / 1e6);
                cJSON_AddStringToObject(o, "reason", g ? g->reason : "unknown");
                cJSON_AddStringToObject(o, "detail", g ? g->detail : "");
                cJSON_AddStringToObject(o, "instance_id", g ? g->instance : "");
                cJSON_AddItemToArray(arr, o);
        }
        return arr;
}

static void acc_free(struct acc *a)
{
        for (size_t k = 0; k <= COVERAGE_COPIES_MAX; k++)
                free(a->copies[k].sp.v);
        free(a->all.v);
        free(a->gaps);
}

int coverage_json(struct db *db, const char *camera, int64_t from_us, int64_t to_us, cJSON **out, char *err,
                  size_t errlen)
{
        struct acc *a = calloc(1, sizeof(*a));
        cJSON *root, *copies;
        int e = 0;

        *out = NULL;
        if (!a)
                return -ENOMEM;
        if (to_us <= from_us || to_us - from_us > COVERAGE_RANGE_MAX_US) {
                snprintf(err, errlen, "from must be before to, at most 48 hours apart");
                free(a);
                return -EINVAL;
        }
        a->from = from_us;
        a->to = to_us;
        for (int64_t off = 0; e == 0;) {
                size_t before = a->rows;

                e = db_segments_range(db, camera, from_us, to_us, DB_QUERY_LIMIT_MAX, off, on_segment, a);
                if (e == 0 && a->rows - before < DB_QUERY_LIMIT_MAX)
                        break;
                off += DB_QUERY_LIMIT_MAX;
                if (a->rows >= COVERAGE_SEGMENTS_MAX) {
                        snprintf(err, errlen, "more than %d segments: ask for a shorter range", COVERAGE_SEGMENTS_MAX);
                        e = -E2BIG;
                }
        }
        if (e == 0)
                e = db_gaps_range(db, camera, from_us, to_us, DB_QUERY_LIMIT_MAX, 0, on_gap, a);
        if (a->oom)
                e = -ENOMEM;
        if (e < 0) {
                if (e == -ENOMEM)
                        snprintf(err, errlen, "out of memory");
                else if (e != -E2BIG)
                        snprintf(err, errlen, "%s", db_errmsg(db));
                acc_free(a);
                free(a);
                return e;
        }
        root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "camera", camera);
        add_time(root, "from", from_us);
        add_time(root, "to", to_us);
        cJSON_AddNumberToObject(root, "from_us", (double)from_us);
        cJSON_AddNumberToObject(root, "to_us", (double)to_us);
        cJSON_AddNumberToObject(root, "segments", (double)a->rows);
        copies = cJSON_AddArrayToObject(root, "copies");
        for (size_t k = 0; k <= COVERAGE_COPIES_MAX; k++) {
                cJSON *o;

                if (!a->copies[k].instance[0])
                        continue;
                o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "instance_id", a->copies[k].instance);
                cJSON_AddItemToObject(o, "spans", spans_json(&a->copies[k].sp));
                cJSON_AddItemToArray(copies, o);
        }
        cJSON_AddItemToObject(root, "coverage", spans_json(&a->all));
        cJSON_AddItemToObject(root, "gaps", holes_json(a));
        acc_free(a);
        free(a);
        *out = root;
        return 0;
}
