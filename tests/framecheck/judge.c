/* judge: the verdict over a sequence of frame numbers; see judge.h.
 * Duplicates and out-of-order frames depend on playback order, so they are
 * decided in judge_add against a hash set of every number seen so far; the
 * missing ranges are found at judge_finish by sorting that set once.  Memory is
 * O(distinct numbers), whatever part of 0..2^32-1 they come from. */
#include "judge.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NUMSET_EMPTY UINT32_MAX     /* slot marker; the number itself is kept in has_max */
#define NUMSET_MIN_SLOTS 1024

/* Open-addressing set of uint32, linear probing, load factor <= 1/2. */
struct numset {
        uint32_t *slots;
        size_t n_slots;             /* power of two */
        size_t used;                /* occupied slots */
        bool has_max;               /* UINT32_MAX is in the set */
};

struct frame_rec {
        double pts_s;
        uint32_t number;
        int32_t file;
        bool readable;
};

struct judge {
        struct judge_config cfg;
        char camera[JUDGE_CAMERA_ID_MAX];
        struct numset seen;
        bool has_max_seen;
        uint32_t max_seen;          /* highest number seen so far in playback order */

        struct judge_file_summary *files;
        char **paths;
        size_t n_files, cap_files;

        uint32_t *dups;             /* JUDGE_MAX_DUPLICATE_NUMBERS, allocated on first use */
        struct frame_rec *frames;   /* when cfg.keep_frames */
        size_t n_frames, cap_frames;
        bool frames_truncated;

        struct judge_range *ranges;
        struct judge_report rep;    /* counters are kept current by judge_add */
        bool finished;
};

/* ---- number set ------------------------------------------------------------ */

static size_t numset_slot(const struct numset *s, uint32_t n)
{
        return (size_t)((n * UINT32_C(2654435761)) & (uint32_t)(s->n_slots - 1));
}

static bool numset_has(const struct numset *s, uint32_t n)
{
        if (n == NUMSET_EMPTY)
                return s->has_max;
        if (!s->slots)
                return false;
        for (size_t i = numset_slot(s, n);; i = (i + 1) & (s->n_slots - 1)) {
                if (s->slots[i] == n)
                        return true;
                if (s->slots[i] == NUMSET_EMPTY)
                        return false;
        }
}

static void numset_put(struct numset *s, uint32_t n)
{
        size_t i = numset_slot(s, n);

        while (s->slots[i] != NUMSET_EMPTY)
                i = (i + 1) & (s->n_slots - 1);
        s->slots[i] = n;
        s->used++;
}

static int numset_grow(struct numset *s)
{
        struct numset bigger = { .n_slots = s->n_slots ? s->n_slots * 2 : NUMSET_MIN_SLOTS,
                                 .has_max = s->has_max };

        bigger.slots = malloc(bigger.n_slots * sizeof(*bigger.slots));
        if (!bigger.slots)
                return -ENOMEM;
        memset(bigger.slots, 0xff, bigger.n_slots * sizeof(*bigger.slots));
        for (size_t i = 0; i < s->n_slots; i++)
                if (s->slots[i] != NUMSET_EMPTY)
                        numset_put(&bigger, s->slots[i]);
        free(s->slots);
        *s = bigger;
        return 0;
}

/* Caller checked that n is not in the set. */
static int numset_insert(struct numset *s, uint32_t n)
{
        if (n == NUMSET_EMPTY) {
                s->has_max = true;
                return 0;
        }
        if (2 * (s->used + 1) > s->n_slots) {
                int r = numset_grow(s);
                if (r < 0)
                        return r;
        }
        numset_put(s, n);
        return 0;
}

static size_t numset_size(const struct numset *s)
{
        return s->used + (s->has_max ? 1 : 0);
}

static int cmp_u32(const void *a, const void *b)
{
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

        return (x > y) - (x < y);
}

/* Every member, ascending, in a new array of numset_size() entries. */
static uint32_t *numset_sorted(const struct numset *s)
{
        size_t n = 0, size = numset_size(s);
        uint32_t *v = malloc((size ? size : 1) * sizeof(*v));

        if (!v)
                return NULL;
        for (size_t i = 0; i < s->n_slots; i++)
                if (s->slots[i] != NUMSET_EMPTY)
                        v[n++] = s->slots[i];
        qsort(v, n, sizeof(*v), cmp_u32);
        if (s->has_max)
                v[n++] = UINT32_MAX;
        return v;
}

/* ---- lifetime and feeding ---------------------------------------------------- */

int judge_new(struct judge **out, const struct judge_config *cfg)
{
        struct judge *j;

        if (!out || !cfg || (cfg->camera && strlen(cfg->camera) >= JUDGE_CAMERA_ID_MAX))
                return -EINVAL;
        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->cfg = *cfg;
        if (cfg->camera) {
                strcpy(j->camera, cfg->camera);
                j->cfg.camera = j->camera;
        }
        *out = j;
        return 0;
}

void judge_free(struct judge *j)
{
        if (!j)
                return;
        for (size_t i = 0; i < j->n_files; i++)
                free(j->paths[i]);
        free(j->paths);
        free(j->files);
        free(j->seen.slots);
        free(j->dups);
        free(j->frames);
        free(j->ranges);
        free(j);
}

int judge_add_file(struct judge *j, const char *path)
{
        struct judge_file_summary *f;
        char *copy;

        if (j->n_files >= JUDGE_MAX_FILES)
                return -E2BIG;
        if (j->n_files == j->cap_files) {
                size_t cap = j->cap_files ? j->cap_files * 2 : 8;
                struct judge_file_summary *nf = realloc(j->files, cap * sizeof(*nf));
                char **np;

                if (!nf)
                        return -ENOMEM;
                j->files = nf;
                np = realloc(j->paths, cap * sizeof(*np));
                if (!np)
                        return -ENOMEM;
                j->paths = np;
                j->cap_files = cap;
        }
        copy = strdup(path ? path : "");
        if (!copy)
                return -ENOMEM;
        f = &j->files[j->n_files];
        memset(f, 0, sizeof(*f));
        j->paths[j->n_files] = copy;
        f->path = copy;
        j->finished = false;
        return (int)j->n_files++;
}

static int keep_frame(struct judge *j, const struct judge_frame *f)
{
        if (j->n_frames >= JUDGE_MAX_FRAME_LIST) {
                j->frames_truncated = true;
                return 0;
        }
        if (j->n_frames == j->cap_frames) {
                size_t cap = j->cap_frames ? j->cap_frames * 2 : 1024;
                struct frame_rec *nf = realloc(j->frames, cap * sizeof(*nf));

                if (!nf)
                        return -ENOMEM;
                j->frames = nf;
                j->cap_frames = cap;
        }
        j->frames[j->n_frames++] = (struct frame_rec){ .pts_s = f->pts_s, .number = f->number,
                                                       .file = f->file, .readable = f->readable };
        return 0;
}

static void note_duplicate(struct judge *j, uint32_t n)
{
        j->rep.duplicated++;
        if (!j->dups)
                j->dups = malloc(JUDGE_MAX_DUPLICATE_NUMBERS * sizeof(*j->dups));
        if (j->dups && j->rep.n_duplicate_numbers < JUDGE_MAX_DUPLICATE_NUMBERS)
                j->dups[j->rep.n_duplicate_numbers++] = n;
}

static void widen(bool *has, uint32_t *first, uint32_t *last, uint32_t n)
{
        if (!*has || n < *first)
                *first = n;
        if (!*has || n > *last)
                *last = n;
        *has = true;
}

/* Duplicate / out-of-order / new, decided against everything seen before. */
static int judge_number(struct judge *j, const struct judge_frame *f)
{
        struct judge_file_summary *fs = &j->files[f->file];
        uint32_t n = f->number;

        if (numset_has(&j->seen, n)) {
                note_duplicate(j, n);
        } else {
                int r;

                if (numset_size(&j->seen) >= JUDGE_MAX_DISTINCT)
                        return -E2BIG;
                r = numset_insert(&j->seen, n);
                if (r < 0)
                        return r;
                if (j->has_max_seen && n < j->max_seen)
                        j->rep.out_of_order++;
        }
        if (!j->has_max_seen || n > j->max_seen)
                j->max_seen = n;
        j->has_max_seen = true;
        j->rep.readable++;
        fs->readable++;
        widen(&fs->has_numbers, &fs->first, &fs->last, n);
        widen(&j->rep.has_numbers, &j->rep.first, &j->rep.last, n);
        return 0;
}

static void judge_sei(struct judge *j, const struct judge_frame *f)
{
        if (f->sei_malformed) {
                j->rep.sei_mismatch++;
                return;
        }
        if (!f->has_sei)
                return;
        j->rep.sei_frames++;
        if (j->cfg.camera && (!f->sei_camera || strcmp(f->sei_camera, j->cfg.camera)))
                j->rep.camera_mismatch++;
        if (f->readable && f->sei_number != f->number)
                j->rep.sei_mismatch++;
}

int judge_add(struct judge *j, const struct judge_frame *f)
{
        int r;

        if (!f || f->file < 0 || (size_t)f->file >= j->n_files)
                return -EINVAL;
        j->finished = false;
        if (f->readable) {
                r = judge_number(j, f);
                if (r < 0)
                        return r;
        } else {
                j->rep.unreadable++;
        }
        j->rep.frames++;
        j->files[f->file].frames++;
        judge_sei(j, f);
        return j->cfg.keep_frames ? keep_frame(j, f) : 0;
}

void judge_add_decode_error(struct judge *j)
{
        j->rep.decode_errors++;
        j->finished = false;
}

/* ---- the report ---------------------------------------------------------------- */

static void add_range(struct judge *j, uint64_t first, uint64_t last)
{
        j->rep.missing += last - first + 1;
        j->rep.missing_ranges_total++;
        if (j->rep.n_missing_ranges < JUDGE_MAX_MISSING_RANGES)
                j->ranges[j->rep.n_missing_ranges++] =
                        (struct judge_range){ .first = (uint32_t)first, .last = (uint32_t)last };
}

/* Numbers in [lo, hi] never seen; bounds are the expected ones when given. */
static int find_missing(struct judge *j)
{
        bool has_lo = j->cfg.has_expect_first || j->rep.has_numbers;
        bool has_hi = j->cfg.has_expect_last || j->rep.has_numbers;
        uint64_t lo = j->cfg.has_expect_first ? j->cfg.expect_first : j->rep.first;
        uint64_t hi = j->cfg.has_expect_last ? j->cfg.expect_last : j->rep.last;
        uint64_t next;
        size_t n = numset_size(&j->seen);
        uint32_t *v;

        if (!has_lo || !has_hi || lo > hi)
                return 0;
        v = numset_sorted(&j->seen);
        if (!v)
                return -ENOMEM;
        next = lo;
        for (size_t i = 0; i < n && v[i] <= hi; i++) {
                if (v[i] < next)
                        continue;
                if (v[i] > next)
                        add_range(j, next, (uint64_t)v[i] - 1);
                next = (uint64_t)v[i] + 1;
        }
        if (next <= hi)
                add_range(j, next, hi);
        free(v);
        return 0;
}

int judge_finish(struct judge *j, const struct judge_report **report)
{
        struct judge_report *r = &j->rep;
        int e;

        if (!j->ranges) {
                j->ranges = malloc(JUDGE_MAX_MISSING_RANGES * sizeof(*j->ranges));
                if (!j->ranges)
                        return -ENOMEM;
        }
        r->missing = r->missing_ranges_total = 0;
        r->n_missing_ranges = 0;
        e = find_missing(j);
        if (e < 0)
                return e;
        r->missing_ranges = j->ranges;
        r->duplicate_numbers = j->dups;
        r->count = numset_size(&j->seen);
        r->files = j->files;
        r->n_files = j->n_files;
        r->clean = r->missing == 0 && r->duplicated == 0 && r->out_of_order == 0 && r->unreadable == 0 &&
                   r->camera_mismatch == 0 && r->sei_mismatch == 0 && r->frames > 0;
        j->finished = true;
        if (report)
                *report = r;
        return 0;
}

/* ---- text ---------------------------------------------------------------------- */

static void print_number(FILE *out, const char *key, bool has, uint32_t n)
{
        if (has)
                fprintf(out, "%s %" PRIu32 "\n", key, n);
        else
                fprintf(out, "%s -\n", key);
}

static void print_run(FILE *out, const char *what, uint64_t first, uint64_t last)
{
        uint64_t n = last - first + 1;

        fprintf(out, "%s %" PRIu64 "-%" PRIu64 " (%" PRIu64 " frame%s)\n", what, first, last, n,
                n == 1 ? "" : "s");
}

static void print_files_text(const struct judge_report *r, FILE *out)
{
        fprintf(out, "files %zu\n", r->n_files);
        for (size_t i = 0; i < r->n_files; i++) {
                const struct judge_file_summary *f = &r->files[i];

                fprintf(out, "file %zu %s: %" PRIu64 " frames, %" PRIu64 " readable", i, f->path, f->frames,
                        f->readable);
                if (f->has_numbers)
                        fprintf(out, ", first %" PRIu32 ", last %" PRIu32, f->first, f->last);
                fputc('\n', out);
        }
}

static void print_missing_text(const struct judge_report *r, FILE *out)
{
        fprintf(out, "missing %" PRIu64 "\n", r->missing);
        for (size_t i = 0; i < r->n_missing_ranges; i++)
                print_run(out, "missing", r->missing_ranges[i].first, r->missing_ranges[i].last);
        if (r->missing_ranges_total > r->n_missing_ranges)
                fprintf(out, "missing ranges truncated: %zu of %" PRIu64 " listed\n", r->n_missing_ranges,
                        r->missing_ranges_total);
}

/* Duplicates in playback order, consecutive numbers folded into one line. */
static void print_duplicates_text(const struct judge_report *r, FILE *out)
{
        const uint32_t *d = r->duplicate_numbers;
        size_t i = 0;

        fprintf(out, "duplicated %" PRIu64 "\n", r->duplicated);
        while (i < r->n_duplicate_numbers) {
                size_t k = i;

                while (k + 1 < r->n_duplicate_numbers && d[k] != UINT32_MAX && d[k + 1] == d[k] + 1)
                        k++;
                print_run(out, "duplicate", d[i], d[k]);
                i = k + 1;
        }
        if (r->duplicated > r->n_duplicate_numbers)
                fprintf(out, "duplicates truncated: %zu of %" PRIu64 " listed\n", r->n_duplicate_numbers,
                        r->duplicated);
}

static void print_frames_text(const struct judge *j, FILE *out)
{
        for (size_t i = 0; i < j->n_frames; i++) {
                const struct frame_rec *f = &j->frames[i];

                fprintf(out, "frame %zu file %" PRId32 " pts ", i, f->file);
                if (isfinite(f->pts_s))
                        fprintf(out, "%.6f", f->pts_s);
                else
                        fputc('-', out);
                if (f->readable)
                        fprintf(out, " n %" PRIu32 "\n", f->number);
                else
                        fputs(" n unreadable\n", out);
        }
        if (j->frames_truncated)
                fprintf(out, "frame list truncated at %u frames\n", JUDGE_MAX_FRAME_LIST);
}

int judge_print_text(const struct judge *j, FILE *out)
{
        const struct judge_report *r = &j->rep;

        if (!j->finished)
                return -EINVAL;
        print_files_text(r, out);
        fprintf(out, "frames %" PRIu64 "\nreadable %" PRIu64 "\nunreadable %" PRIu64 "\n", r->frames,
                r->readable, r->unreadable);
        print_number(out, "first", r->has_numbers, r->first);
        print_number(out, "last", r->has_numbers, r->last);
        fprintf(out, "count %" PRIu64 "\n", r->count);
        print_missing_text(r, out);
        print_duplicates_text(r, out);
        fprintf(out, "out_of_order %" PRIu64 "\ncamera_mismatch %" PRIu64 "\nsei_mismatch %" PRIu64 "\n",
                r->out_of_order, r->camera_mismatch, r->sei_mismatch);
        fprintf(out, "sei_frames %" PRIu64 "\ndecode_errors %" PRIu64 "\n", r->sei_frames, r->decode_errors);
        if (j->cfg.keep_frames)
                print_frames_text(j, out);
        fprintf(out, "verdict %s\n", r->clean ? "clean" : "DEFECTS");
        return ferror(out) ? -EIO : 0;
}

/* ---- JSON ------------------------------------------------------------------------ */

/* cJSON numbers are doubles: exact for every uint32 and any count below 2^53. */
static cJSON *add_num(cJSON *o, const char *key, double v)
{
        return cJSON_AddNumberToObject(o, key, v);
}

static cJSON *add_num_or_null(cJSON *o, const char *key, bool has, double v)
{
        return has ? cJSON_AddNumberToObject(o, key, v) : cJSON_AddNullToObject(o, key);
}

static bool json_files(cJSON *o, const struct judge_report *r)
{
        cJSON *a = cJSON_AddArrayToObject(o, "files");

        if (!a)
                return false;
        for (size_t i = 0; i < r->n_files; i++) {
                const struct judge_file_summary *f = &r->files[i];
                cJSON *e = cJSON_CreateObject();

                if (e && !cJSON_AddItemToArray(a, e)) {
                        cJSON_Delete(e);
                        return false;
                }
                if (!e || !cJSON_AddStringToObject(e, "path", f->path) ||
                    !add_num(e, "frames", (double)f->frames) ||
                    !add_num_or_null(e, "first", f->has_numbers, f->first) ||
                    !add_num_or_null(e, "last", f->has_numbers, f->last))
                        return false;
        }
        return true;
}

static bool json_lists(cJSON *o, const struct judge_report *r)
{
        cJSON *ranges = cJSON_AddArrayToObject(o, "missing_ranges");
        cJSON *dups;

        if (!ranges)
                return false;
        for (size_t i = 0; i < r->n_missing_ranges; i++) {
                const double pair[2] = { r->missing_ranges[i].first, r->missing_ranges[i].last };
                cJSON *e = cJSON_CreateDoubleArray(pair, 2);

                if (!e || !cJSON_AddItemToArray(ranges, e)) {
                        cJSON_Delete(e);
                        return false;
                }
        }
        dups = cJSON_AddArrayToObject(o, "duplicate_numbers");
        if (!dups)
                return false;
        for (size_t i = 0; i < r->n_duplicate_numbers; i++) {
                cJSON *e = cJSON_CreateNumber(r->duplicate_numbers[i]);

                if (!e || !cJSON_AddItemToArray(dups, e)) {
                        cJSON_Delete(e);
                        return false;
                }
        }
        return true;
}

static bool json_counts(cJSON *o, const struct judge_report *r)
{
        return add_num(o, "frames", (double)r->frames) && add_num(o, "readable", (double)r->readable) &&
               add_num(o, "unreadable", (double)r->unreadable) &&
               add_num_or_null(o, "first", r->has_numbers, r->first) &&
               add_num_or_null(o, "last", r->has_numbers, r->last) && add_num(o, "count", (double)r->count) &&
               add_num(o, "missing", (double)r->missing) &&
               add_num(o, "missing_ranges_total", (double)r->missing_ranges_total) &&
               add_num(o, "duplicated", (double)r->duplicated) &&
               add_num(o, "out_of_order", (double)r->out_of_order) &&
               add_num(o, "camera_mismatch", (double)r->camera_mismatch) &&
               add_num(o, "sei_mismatch", (double)r->sei_mismatch) &&
               add_num(o, "sei_frames", (double)r->sei_frames) &&
               add_num(o, "decode_errors", (double)r->decode_errors) &&
               cJSON_AddBoolToObject(o, "clean", r->clean);
}

cJSON *judge_report_json(const struct judge *j)
{
        cJSON *o;

        if (!j->finished)
                return NULL;
        o = cJSON_CreateObject();
        if (!o)
                return NULL;
        if (!json_files(o, &j->rep) || !json_counts(o, &j->rep) || !json_lists(o, &j->rep)) {
                cJSON_Delete(o);
                return NULL;
        }
        return o;
}

/* The frame list can hold millions of entries: written directly, not built
 * as a cJSON tree (which would cost ~200 bytes per frame). */
static void print_frames_json(const struct judge *j, FILE *out)
{
        fputs(",\"frame_list\":[", out);
        for (size_t i = 0; i < j->n_frames; i++) {
                const struct frame_rec *f = &j->frames[i];

                fputs(i ? ",{\"n\":" : "{\"n\":", out);
                if (f->readable)
                        fprintf(out, "%" PRIu32, f->number);
                else
                        fputs("null", out);
                if (isfinite(f->pts_s))
                        fprintf(out, ",\"pts\":%.6f", f->pts_s);
                else
                        fputs(",\"pts\":null", out);
                fprintf(out, ",\"file\":%" PRId32 "}", f->file);
        }
        fprintf(out, "],\"frame_list_truncated\":%s", j->frames_truncated ? "true" : "false");
}

int judge_print_json(const struct judge *j, FILE *out)
{
        cJSON *o = judge_report_json(j);
        char *s;
        size_t len;

        if (!o)
                return j->finished ? -ENOMEM : -EINVAL;
        s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!s)
                return -ENOMEM;
        len = strlen(s);
        /* the object ends in '}': reopen it to append the frame list */
        fwrite(s, 1, len - 1, out);
        cJSON_free(s);
        if (j->cfg.keep_frames)
                print_frames_json(j, out);
        fputs("}\n", out);
        return ferror(out) ? -EIO : 0;
}
