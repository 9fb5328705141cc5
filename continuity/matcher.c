/* matcher: pair the frames two recordings have in common (see matcher.h).
 * Two passes over a hash table of a's signatures (size, hash): the first
 * collects the clock offsets every signature match would imply and takes the
 * densest cluster; the second pairs each b frame with the a frame of equal
 * signature at that offset, in decode order on both sides.  Cost is linear
 * in the frames plus the (capped) candidates per signature. */
#include "continuity/matcher.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CM_DEFAULT_MAX_SHIFT_US 5000000
#define CM_DEFAULT_FRAME_US 40000
#define CM_MAX_CANDIDATES 32 /* per b frame: a static scene repeats signatures */
#define CM_MIN_VOTES 3

struct table {
        size_t mask;
        int64_t *head; /* first a index per bucket, -1: none */
        int64_t *next; /* next a index with the same bucket */
};

static uint64_t sig(const struct cm_frame *f)
{
        return (uint64_t)f->size << 32 | f->hash;
}

static size_t bucket(uint64_t key, size_t mask)
{
        key ^= key >> 31;
        key *= UINT64_C(0x9e3779b97f4a7c15);
        return (size_t)(key >> 17) & mask;
}

static int table_build(struct table *t, const struct cm_frame *a, size_t na)
{
        size_t cap = 16;

        while (cap < 2 * na)
                cap <<= 1;
        t->mask = cap - 1;
        t->head = malloc(cap * sizeof(*t->head));
        t->next = malloc((na ? na : 1) * sizeof(*t->next));
        if (!t->head || !t->next) {
                free(t->head);
                free(t->next);
                return -ENOMEM;
        }
        memset(t->head, 0xff, cap * sizeof(*t->head));
        for (size_t i = na; i-- > 0;) { /* chains in increasing a order */
                size_t h = bucket(sig(&a[i]), t->mask);

                t->next[i] = t->head[h];
                t->head[h] = (int64_t)i;
        }
        return 0;
}

static void table_free(struct table *t)
{
        free(t->head);
        free(t->next);
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

int64_t cm_frame_duration(const struct cm_frame *f, size_t n)
{
        int64_t *t, *d, r = 0;
        size_t nd = 0;

        if (n < 2)
                return 0;
        t = malloc(n * sizeof(*t));
        d = malloc(n * sizeof(*d));
        if (t && d) {
                for (size_t i = 0; i < n; i++)
                        t[i] = f[i].t_us;
                qsort(t, n, sizeof(*t), cmp_i64);
                for (size_t i = 1; i < n; i++)
                        if (t[i] > t[i - 1])
                                d[nd++] = t[i] - t[i - 1];
                if (nd) {
                        qsort(d, nd, sizeof(*d), cmp_i64);
                        r = d[nd / 2];
                }
        }
        free(t);
        free(d);
        return r;
}

/* The offset most signature matches agree on, within +-tol: the densest
 * window of the sorted votes, and the median inside it. */
static int vote_shift(const struct cm_frame *a, const struct cm_frame *b, size_t nb, const struct table *t,
                      int64_t max_shift, int64_t tol, size_t min_votes, int64_t *shift, size_t *votes_out)
{
        size_t cap = 1024, n = 0, best = 0, best_lo = 0;
        int64_t *v = malloc(cap * sizeof(*v));

        if (!v)
                return -ENOMEM;
        for (size_t j = 0; j < nb; j++) {
                int seen = 0;

                for (int64_t i = t->head[bucket(sig(&b[j]), t->mask)]; i >= 0 && seen < CM_MAX_CANDIDATES;
                     i = t->next[i]) {
                        int64_t d = b[j].t_us - a[i].t_us;

                        if (sig(&a[i]) != sig(&b[j]) || abs64(d) > max_shift)
                                continue;
                        seen++;
                        if (n == cap) {
                                int64_t *nv = realloc(v, 2 * cap * sizeof(*v));

                                if (!nv) {
                                        free(v);
                                        return -ENOMEM;
                                }
                                v = nv;
                                cap *= 2;
                        }
                        v[n++] = d;
                }
        }
        qsort(v, n, sizeof(*v), cmp_i64);
        for (size_t lo = 0, hi = 0; hi < n; hi++) {
                while (v[hi] - v[lo] > tol)
                        lo++;
                if (hi - lo + 1 > best) {
                        best = hi - lo + 1;
                        best_lo = lo;
                }
        }
        *votes_out = best;
        if (best >= min_votes)
                *shift = v[best_lo + best / 2];
        free(v);
        return 0;
}

int cm_match(const struct cm_frame *a, size_t na, const struct cm_frame *b, size_t nb, int64_t max_shift_us,
             int64_t frame_us, struct cm_match *out)
{
        struct table t;
        size_t votes = 0, min_votes, last_a = 0, n = 0;
        int64_t shift = 0, track, tol, *diff;
        bool any = false;
        int e;

        memset(out, 0, sizeof(*out));
        if (frame_us <= 0)
                frame_us = cm_frame_duration(a, na);
        if (frame_us <= 0)
                frame_us = cm_frame_duration(b, nb);
        if (frame_us <= 0)
                frame_us = CM_DEFAULT_FRAME_US;
        out->frame_us = frame_us;
        if (na == 0 || nb == 0)
                return 0;
        if (max_shift_us <= 0)
                max_shift_us = CM_DEFAULT_MAX_SHIFT_US;
        /* neighbours are a frame apart: anything nearer than half is the same instant */
        tol = frame_us / 2 - 1;
        min_votes = na < nb ? na : nb;
        if (min_votes > CM_MIN_VOTES)
                min_votes = CM_MIN_VOTES;
        if ((e = table_build(&t, a, na)) < 0)
                return e;
        if ((e = vote_shift(a, b, nb, &t, max_shift_us, tol, min_votes, &shift, &votes)) < 0 || votes < min_votes) {
                table_free(&t);
                return e;
        }
        out->pairs = malloc(nb * sizeof(*out->pairs));
        diff = malloc(nb * sizeof(*diff));
        if (!out->pairs || !diff) {
                free(out->pairs);
                free(diff);
                out->pairs = NULL;
                table_free(&t);
                return -ENOMEM;
        }
        /* a slow drift between the clocks is followed, a frame's jitter is not */
        track = shift;
        for (size_t j = 0; j < nb; j++) {
                int64_t best = -1, best_err = tol + 1;

                for (int64_t i = t.head[bucket(sig(&b[j]), t.mask)]; i >= 0; i = t.next[i]) {
                        int64_t err = abs64(b[j].t_us - a[i].t_us - track);

                        if ((any && (size_t)i <= last_a) || sig(&a[i]) != sig(&b[j]))
                                continue;
                        if (err < best_err) {
                                best_err = err;
                                best = i;
                        }
                }
                if (best < 0)
                        continue;
                out->pairs[n] = (struct cm_pair){ .a = (size_t)best, .b = j };
                diff[n++] = b[j].t_us - a[best].t_us;
                track += (b[j].t_us - a[best].t_us - track) / 8;
                last_a = (size_t)best;
                any = true;
        }
        table_free(&t);
        out->n_pairs = n;
        if (n) {
                qsort(diff, n, sizeof(*diff), cmp_i64);
                out->shift_us = diff[n / 2];
        } else {
                free(out->pairs);
                out->pairs = NULL;
        }
        free(diff);
        return 0;
}

void cm_match_free(struct cm_match *m)
{
        free(m->pairs);
        m->pairs = NULL;
        m->n_pairs = 0;
}
