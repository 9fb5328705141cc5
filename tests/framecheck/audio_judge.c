/* audio_judge: where in camera time each decoded audio frame lies, and what
 * that says about the recording; see audio_judge.h.  The judge owns a copy of
 * every sample (one float buffer, capped by AUDIO_JUDGE_MAX_SAMPLES) and one
 * record per frame; audio_judge_finish locates the frames in sample order:
 *
 * - Local: the content predicted from the last located frame (its content
 *   sample + the samples since) is checked by normalised correlation
 *   rho(c) = sum x[i] r[c+i] / sqrt(sum x^2 sum r^2) with the reference r
 *   (audiocode_fill): at the prediction itself first (taken when rho >=
 *   RHO_SURE and neither neighbour is better: the usual, contiguous case costs
 *   three dot products), else over +-LOCAL_SEARCH_MS.  Located: best rho >=
 *   RHO_MIN, not on the edge of the searched range.
 * - Wide: otherwise a window of WIDE_BLOCKS blocks (160 ms) from the frame on
 *   is read as tone pairs (Goertzel on the middle half of each block, at the
 *   block phase, in eighths of a block, whose blocks are purest two-tone), and
 *   each block number within search_s of a prediction gets one vote per window
 *   block whose pair it carries (audiocode_tones): O(range), not a correlation
 *   per offset.  Predictions, in order: the last located frame advanced by
 *   the pts (same file), pts + the file's video offset, the last located frame
 *   advanced by the samples.  Without any, or when all fail: a global search
 *   over content 0 .. GLOBAL_SEARCH_S (24 h; beyond, only a prediction finds
 *   it); after a failed one the next waits 0, 1, 2, 4 ... windows, at most
 *   MAX_GLOBAL_SEARCHES per finish.  A winner needs MIN_VOTES (global:
 *   GLOBAL_MIN_VOTES) and VOTE_MARGIN more than any other block number; the
 *   window may start up to a window before content 0 (an encoder's priming).
 *   Then the frame itself is searched locally over +- a quarter block; a frame
 *   that still fails (a lossy codec mixes both sides of a splice) leaves the
 *   window's content as the prediction for the next frame.  A frame located
 *   with a jump (> JITTER_US) on either side and rho < RHO_SURE is a blend of
 *   the two sides of a splice and is taken back (unlocated).
 *
 * Between consecutive located frames A, B (sample order, across files too):
 * jump = (c_B - c_A) - (samples from A's start to B's) is a hole (> tolerance)
 * or an overlap (< -tolerance); within one file, the pts step minus the
 * content step, beyond tolerance + PTS_SLACK_MS, is a pts gap (signed ms: > 0
 * the timestamps moved further than the sound; pts of two files are not
 * compared, each may start at 0).  Clean: some frame located, no hole, no
 * overlap, and every unlocated frame excused: the first or last frame of its
 * input file (a decoder starts cold there, an encoder pads its last frame),
 * or one of the first SPLICE_FRAMES frames between two located frames whose
 * jump is more than JITTER_US, even within the tolerance.  Pts gaps do not
 * make it unclean: they move the A/V sync, which the sync figures show. */
#include "audio_judge.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audiocode.h"

#define AUDIO_JUDGE_MAX_FRAMES (1u << 25)  /* frame records: 97 h of 1024-sample frames at 48 kHz */
#define AUDIO_JUDGE_MAX_FILES 65536        /* same bound as JUDGE_MAX_FILES */
#define DEFAULT_TOLERANCE_MS 1.0
#define DEFAULT_SEARCH_S 10.0
#define RHO_MIN 0.8                        /* located; AAC at 32 kb/s: median 0.99, min 0.92 */
#define RHO_SURE 0.9                       /* the prediction taken without a search */
#define LOCAL_SEARCH_MS 3                  /* small jumps are found without a wide search */
#define LOCATE_MIN_MS 5                    /* shorter frames are correlated over this much */
#define MIN_POWER 1e-5                     /* mean square below this is silence: -50 dBFS */
#define WIDE_BLOCKS 16                     /* window of the wide search: 160 ms */
#define WIDE_PHASES 8                      /* block phases tried, each an eighth of a block */
#define MIN_VOTES 6                        /* 6 of 16 pairs by chance: 5e-6 within +-10 s */
#define GLOBAL_MIN_VOTES 8                 /* 8 of 16: 3e-6 within 24 h; rho checks the winner anyway */
#define VOTE_MARGIN 3                      /* over the runner-up */
#define PAIR_PURITY_MIN 0.5                /* share of a block's power in its two strongest tones */
#define PAIR_SECOND_MIN 0.1                /* share of the weaker of the two */
#define GLOBAL_SEARCH_S 86400.0
#define MAX_GLOBAL_SEARCHES 64             /* each hashes 8.6 M block numbers: ~0.1 s */
#define GLOBAL_BACKOFF_MAX 20              /* after n > 1 failures, wait 2^(n-2) windows */
#define VOTE_CHUNK 65536                   /* block numbers voted on at a time */
#define PTS_SLACK_MS 1.0                   /* timestamps rounded to 1 ms (Matroska) are no gap */
#define SPLICE_FRAMES 2                    /* unlocated frames excused at a jump (MDCT overlap) */
#define JITTER_US 50                       /* smaller jumps are location noise: 2 samples at 48 kHz, else 1 */

struct frame_rec {
        int64_t offset;               /* first sample in samples[] */
        int64_t c;                    /* content sample of the first sample, when located */
        double pts_s;                 /* NAN: unknown */
        float rho;
        uint32_t n;
        int32_t file;
        bool located;
};

struct file_rec {
        bool has_video_offset;
        double video_offset_s;
};

struct event_list {
        struct audio_event *v;        /* AUDIO_JUDGE_MAX_EVENTS, allocated on first use */
        size_t n;
        uint64_t total;
        double max_ms;
};

/* The tone pairs read from a window: obs_mask[pair] has bit i set when window
 * block i carries that pair (block i starts at window sample phase + i*block). */
struct window_obs {
        int phase, blocks, confident;
        uint32_t obs_mask[AUDIOCODE_TONES * AUDIOCODE_TONES];
};

struct sync_val {
        int32_t file;
        double ms;
};

struct audio_judge {
        struct audio_judge_config cfg;
        int block;                    /* samples per audiocode block */
        double tol;                   /* tolerance in samples */

        float *samples;
        int64_t n_samples, cap_samples;
        struct frame_rec *frames;
        size_t n_frames, cap_frames;
        struct file_rec *files;
        size_t n_files;               /* highest file index seen + 1 */
        uint64_t decode_errors;

        float *ref;                   /* search scratch */
        double *ref_energy;           /* prefix sums of ref^2 */
        size_t cap_ref;
        uint8_t *votes;               /* VOTE_CHUNK */
        int global_searches, global_failures;
        int64_t global_next;          /* no global search for a window starting before this sample */

        struct event_list holes, overlaps, pts_gaps;
        struct audio_file_summary *summaries;
        struct audio_report rep;
        bool finished;
};

/* ---- setup and input -------------------------------------------------------- */

int audio_judge_new(struct audio_judge **out, const struct audio_judge_config *cfg)
{
        struct audio_judge *j;

        *out = NULL;
        if (!cfg || cfg->rate < 100 || cfg->rate % 100 || cfg->rate > 1000000 || !(cfg->tolerance_ms >= 0) ||
            !(cfg->search_s >= 0) || cfg->search_s > GLOBAL_SEARCH_S)
                return -EINVAL;
        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->cfg = *cfg;
        if (j->cfg.tolerance_ms == 0)
                j->cfg.tolerance_ms = DEFAULT_TOLERANCE_MS;
        if (j->cfg.search_s == 0)
                j->cfg.search_s = DEFAULT_SEARCH_S;
        j->block = audiocode_block_samples(cfg->rate);
        j->tol = j->cfg.tolerance_ms * cfg->rate / 1000.0;
        *out = j;
        return 0;
}

void audio_judge_free(struct audio_judge *j)
{
        if (!j)
                return;
        free(j->samples);
        free(j->frames);
        free(j->files);
        free(j->ref);
        free(j->ref_energy);
        free(j->votes);
        free(j->holes.v);
        free(j->overlaps.v);
        free(j->pts_gaps.v);
        free(j->summaries);
        free(j);
}

/* Make room for file index `file`. */
static int reserve_file(struct audio_judge *j, int file)
{
        size_t need = (size_t)file + 1;
        struct file_rec *f;

        if (file < 0 || file >= AUDIO_JUDGE_MAX_FILES)
                return -EINVAL;
        if (need <= j->n_files)
                return 0;
        f = realloc(j->files, need * sizeof(*f));
        if (!f)
                return -ENOMEM;
        memset(f + j->n_files, 0, (need - j->n_files) * sizeof(*f));
        j->files = f;
        j->n_files = need;
        return 0;
}

static int reserve_samples(struct audio_judge *j, size_t n)
{
        int64_t need = j->n_samples + (int64_t)n, cap = j->cap_samples ? j->cap_samples : 65536;
        float *s;

        if (n > (size_t)AUDIO_JUDGE_MAX_SAMPLES || need > AUDIO_JUDGE_MAX_SAMPLES)
                return -E2BIG;
        if (need <= j->cap_samples)
                return 0;
        while (cap < need)
                cap *= 2;
        if (cap > AUDIO_JUDGE_MAX_SAMPLES)
                cap = AUDIO_JUDGE_MAX_SAMPLES;
        s = realloc(j->samples, (size_t)cap * sizeof(*s));
        if (!s)
                return -ENOMEM;
        j->samples = s;
        j->cap_samples = cap;
        return 0;
}

static int reserve_frame(struct audio_judge *j)
{
        size_t cap = j->cap_frames ? j->cap_frames * 2 : 1024;
        struct frame_rec *f;

        if (j->n_frames >= AUDIO_JUDGE_MAX_FRAMES)
                return -E2BIG;
        if (j->n_frames < j->cap_frames)
                return 0;
        f = realloc(j->frames, cap * sizeof(*f));
        if (!f)
                return -ENOMEM;
        j->frames = f;
        j->cap_frames = cap;
        return 0;
}

int audio_judge_add_frame(struct audio_judge *j, int file, double pts_s, int rate, const float *samples,
                          size_t n)
{
        const struct frame_rec *prev;
        struct frame_rec *f;
        int r;

        if (rate != j->cfg.rate || (n && !samples))
                return -EINVAL;
        if ((r = reserve_file(j, file)) < 0)
                return r;
        if (n == 0)
                return 0;
        if (n > UINT32_MAX)
                return -E2BIG;
        if ((r = reserve_samples(j, n)) < 0 || (r = reserve_frame(j)) < 0)
                return r;
        prev = j->n_frames ? &j->frames[j->n_frames - 1] : NULL; /* after the realloc */
        if (!isfinite(pts_s) && prev && prev->file == file)
                pts_s = prev->pts_s + (double)prev->n / rate; /* NAN stays NAN */
        f = &j->frames[j->n_frames++];
        *f = (struct frame_rec){ .offset = j->n_samples, .pts_s = isfinite(pts_s) ? pts_s : NAN,
                                 .n = (uint32_t)n, .file = file };
        memcpy(j->samples + j->n_samples, samples, n * sizeof(*samples));
        j->n_samples += (int64_t)n;
        j->finished = false;
        return 0;
}

int audio_judge_add(struct audio_judge *j, int file, double pts_s, const float *samples, size_t n)
{
        return audio_judge_add_frame(j, file, pts_s, j->cfg.rate, samples, n);
}

void audio_judge_add_decode_error(struct audio_judge *j)
{
        j->decode_errors++;
}

int audio_judge_set_video_offset(struct audio_judge *j, int file, double offset_s)
{
        int r;

        if (!isfinite(offset_s))
                return -EINVAL;
        if ((r = reserve_file(j, file)) < 0)
                return r;
        j->files[file].has_video_offset = true;
        j->files[file].video_offset_s = offset_s;
        j->finished = false;
        return 0;
}

/* ---- correlation -------------------------------------------------------------- */

/* Eight partial sums, so the compiler can vectorise without -ffast-math. */
static double dot(const float *a, const float *b, size_t n)
{
        float s[8] = { 0 };
        double t = 0;
        size_t i = 0;

        for (; i + 8 <= n; i += 8)
                for (int k = 0; k < 8; k++)
                        s[k] += a[i + k] * b[i + k];
        for (; i < n; i++)
                t += (double)a[i] * b[i];
        for (int k = 0; k < 8; k++)
                t += s[k];
        return t;
}

/* Reference samples first .. first+count-1 into j->ref, and the prefix sums
 * of their squares into j->ref_energy.  first >= 0. */
static int fill_ref(struct audio_judge *j, int64_t first, size_t count)
{
        if (count + 1 > j->cap_ref) {
                size_t cap = count + 1 > 2 * j->cap_ref ? count + 1 : 2 * j->cap_ref;
                float *r = realloc(j->ref, cap * sizeof(*r));
                double *e;

                if (!r)
                        return -ENOMEM;
                j->ref = r;
                e = realloc(j->ref_energy, cap * sizeof(*e));
                if (!e)
                        return -ENOMEM;
                j->ref_energy = e;
                j->cap_ref = cap;
        }
        j->ref_energy[0] = 0;
        for (size_t i = 0; i < count; i++) {
                float v = audiocode_sample((uint64_t)first + i, j->cfg.rate) / 32768.0f;

                j->ref[i] = v;
                j->ref_energy[i + 1] = j->ref_energy[i] + (double)v * v;
        }
        return 0;
}

/* rho of x[0..m) against the reference at j->ref + at (filled by fill_ref). */
static double rho_at(const struct audio_judge *j, const float *x, size_t m, double ex, size_t at)
{
        double er = j->ref_energy[at + m] - j->ref_energy[at];

        return er > 0 ? dot(x, j->ref + at, m) / sqrt(ex * er) : 0;
}

/* The samples frame k is correlated over: the frame, or LOCATE_MIN_MS from
 * its start when it is shorter (and the buffer goes on). */
static size_t locate_len(const struct audio_judge *j, const struct frame_rec *f)
{
        int64_t min = (int64_t)j->cfg.rate * LOCATE_MIN_MS / 1000, left = j->n_samples - f->offset;
        int64_t m = f->n < min ? min : f->n;

        return (size_t)(m < left ? m : left);
}

static double energy(const float *x, size_t m)
{
        return dot(x, x, m);
}

/* The prediction alone: rho(pred) >= RHO_SURE and no neighbour better.
 * 1 taken, 0 not, or -ENOMEM. */
static int locate_quick(struct audio_judge *j, struct frame_rec *f, int64_t pred)
{
        const float *x = j->samples + f->offset;
        size_t m = locate_len(j, f);
        double ex = energy(x, m), r0, rm, rp;
        int r;

        if (pred < 1 || ex < MIN_POWER * (double)m)
                return 0;
        if ((r = fill_ref(j, pred - 1, m + 2)) < 0)
                return r;
        r0 = rho_at(j, x, m, ex, 1);
        if (r0 < RHO_SURE)
                return 0;
        rm = rho_at(j, x, m, ex, 0);
        rp = rho_at(j, x, m, ex, 2);
        if (rm > r0 || rp > r0)
                return 0;
        f->located = true;
        f->c = pred;
        f->rho = (float)r0;
        return 1;
}

/* Best rho over content pred-w .. pred+w.  1 located, 0 not, -ENOMEM. */
static int locate_near(struct audio_judge *j, struct frame_rec *f, int64_t pred, int64_t w)
{
        const float *x = j->samples + f->offset;
        size_t m = locate_len(j, f);
        double ex = energy(x, m), best = -2;
        int64_t lo = pred - w, hi = pred + w, best_c = 0;
        int r;

        if (hi < 0 || ex < MIN_POWER * (double)m)
                return 0;
        if (lo < 0)
                lo = 0;
        if ((r = fill_ref(j, lo, (size_t)(hi - lo) + m)) < 0)
                return r;
        for (int64_t c = lo; c <= hi; c++) {
                double rho = rho_at(j, x, m, ex, (size_t)(c - lo));

                if (rho > best) {
                        best = rho;
                        best_c = c;
                }
        }
        /* on the edge, the peak may lie outside: leave it to the wide search */
        if (best < RHO_MIN || (w > 0 && ((best_c == lo && lo > 0) || best_c == hi)))
                return 0;
        f->located = true;
        f->c = best_c;
        f->rho = (float)best;
        return 1;
}

/* ---- wide search: tone pairs and votes -------------------------------------------- */

static int pair_code(int t1, int t2)
{
        return t1 < t2 ? t1 * AUDIOCODE_TONES + t2 : t2 * AUDIOCODE_TONES + t1;
}

/* The tone pair of x[0..m) (middle of one block), or -1; *purity its share
 * of the power. */
static int block_pair(const struct audio_judge *j, const float *x, int m, double *purity)
{
        double p[AUDIOCODE_TONES], e = energy(x, (size_t)m);
        int t1 = 0, t2 = 1;

        *purity = 0;
        if (e < MIN_POWER * m)
                return -1;
        for (int t = 0; t < AUDIOCODE_TONES; t++) {
                double f = AUDIOCODE_TONE_LOW_HZ + AUDIOCODE_TONE_STEP_HZ * t;
                double k = 2 * cos(2 * M_PI * f / j->cfg.rate), s1 = 0, s2 = 0;

                for (int i = 0; i < m; i++) {
                        double s = x[i] + k * s1 - s2;

                        s2 = s1;
                        s1 = s;
                }
                /* |X|^2 * 2 / m is a sinusoid's share of e, summed over samples */
                p[t] = (s1 * s1 + s2 * s2 - k * s1 * s2) * 2 / m / e;
        }
        if (p[t2] > p[t1])
                t1 = 1, t2 = 0;
        for (int t = 2; t < AUDIOCODE_TONES; t++) {
                if (p[t] > p[t1])
                        t2 = t1, t1 = t;
                else if (p[t] > p[t2])
                        t2 = t;
        }
        *purity = p[t1] + p[t2];
        return *purity >= PAIR_PURITY_MIN && p[t2] >= PAIR_SECOND_MIN ? pair_code(t1, t2) : -1;
}

/* Read the window x[0..n) at one block phase; returns the summed purity. */
static double read_phase(const struct audio_judge *j, const float *x, int64_t n, int phase,
                         struct window_obs *o)
{
        int len = j->block, m = len / 2;
        double score = 0;

        memset(o, 0, sizeof(*o));
        o->phase = phase;
        for (int i = 0; i < WIDE_BLOCKS && phase + (int64_t)(i + 1) * len <= n; i++) {
                double purity;
                int code = block_pair(j, x + phase + (int64_t)i * len + len / 4, m, &purity);

                o->blocks++;
                if (code < 0)
                        continue;
                o->obs_mask[code] |= UINT32_C(1) << i;
                o->confident++;
                score += purity;
        }
        return score;
}

/* The tone pairs of the window starting at frame f, at the purest phase. */
static void read_window(const struct audio_judge *j, const struct frame_rec *f, struct window_obs *best)
{
        int64_t n = j->n_samples - f->offset, max = (int64_t)(WIDE_BLOCKS + 1) * j->block;
        int step = j->block / WIDE_PHASES > 0 ? j->block / WIDE_PHASES : 1;
        double best_score = -1;
        struct window_obs o;

        best->confident = 0;
        if (n > max)
                n = max;
        for (int p = 0; p < j->block; p += step) {
                double s = read_phase(j, j->samples + f->offset, n, p, &o);

                if (s > best_score) {
                        best_score = s;
                        *best = o;
                }
        }
}

struct vote_result {
        int64_t block;                /* window block 0 is this content block */
        int best, second;
};

static int block_pair_code(int64_t b)
{
        int t1, t2;

        audiocode_tones((uint64_t)b, &t1, &t2);
        return pair_code(t1, t2);
}

/* Votes for window block 0 = block b0, b0 in [lo, lo+count), into res. */
static void vote_chunk(struct audio_judge *j, const struct window_obs *o, int64_t lo, int64_t count,
                       struct vote_result *res)
{
        memset(j->votes, 0, (size_t)count);
        for (int64_t b = lo > 0 ? lo : 0; b < lo + count + o->blocks - 1; b++) {
                uint32_t mask = o->obs_mask[block_pair_code(b)];

                while (mask) {
                        int i = __builtin_ctz(mask);
                        int64_t b0 = b - i;

                        mask &= mask - 1;
                        if (b0 >= lo && b0 < lo + count)
                                j->votes[b0 - lo]++;
                }
        }
        for (int64_t i = 0; i < count; i++) {
                int v = j->votes[i];

                if (v > res->best) {
                        res->second = res->best;
                        res->best = v;
                        res->block = lo + i;
                } else if (v > res->second) {
                        res->second = v;
                }
        }
}

/* Window block 0 among content blocks lo..hi; 1 found (*c_out: content of the
 * window's first sample), 0 not, -ENOMEM.  Block 0 may lie up to a window
 * before camsim's start (an encoder's priming, silence): the blocks after vote. */
static int vote_range(struct audio_judge *j, const struct window_obs *o, int64_t lo, int64_t hi, int need,
                      int64_t *c_out)
{
        struct vote_result res = { .block = -1 };

        if (lo < -WIDE_BLOCKS)
                lo = -WIDE_BLOCKS;
        if (hi < lo)
                return 0;
        if (!j->votes && !(j->votes = malloc(VOTE_CHUNK)))
                return -ENOMEM;
        for (int64_t a = lo; a <= hi; a += VOTE_CHUNK)
                vote_chunk(j, o, a, hi - a + 1 < VOTE_CHUNK ? hi - a + 1 : VOTE_CHUNK, &res);
        if (res.best < need || res.best < res.second + VOTE_MARGIN)
                return 0;
        *c_out = res.block * j->block - o->phase;
        return 1;
}

/* Window around a predicted content sample: 1 found, 0 not, -ENOMEM. */
static int vote_near(struct audio_judge *j, const struct window_obs *o, int64_t pred, int64_t *c_out)
{
        int64_t span = (int64_t)(j->cfg.search_s * 1000 / AUDIOCODE_BLOCK_MS) + 1;
        int64_t b = (pred + o->phase) / j->block;

        if (pred + o->phase < 0)
                b = (pred + o->phase - j->block + 1) / j->block;
        return vote_range(j, o, b - span, b + span, MIN_VOTES, c_out);
}

/* Where the previous located frame (and, after a failed frame, the window
 * content left for it) says frame k should be. */
struct locate_state {
        ssize_t last;                 /* last located frame, -1 none */
        bool has_hint;
        int64_t hint_c, hint_offset;  /* content at sample hint_offset, from a wide search */
};

static size_t predictions(const struct audio_judge *j, const struct locate_state *st,
                          const struct frame_rec *f, int64_t pred[3])
{
        const struct frame_rec *l = st->last >= 0 ? &j->frames[st->last] : NULL;
        const struct file_rec *fi = &j->files[f->file];
        size_t n = 0;

        if (l && l->file == f->file && isfinite(l->pts_s) && isfinite(f->pts_s))
                pred[n++] = l->c + llround((f->pts_s - l->pts_s) * j->cfg.rate);
        if (fi->has_video_offset && isfinite(f->pts_s))
                pred[n++] = llround((f->pts_s + fi->video_offset_s) * j->cfg.rate);
        if (l)
                pred[n++] = l->c + (f->offset - l->offset);
        return n;
}

/* Content 0 .. GLOBAL_SEARCH_S.  A window that fails (content beyond, a tonal
 * sound that is not the code, a window across a jump) makes the next global
 * search wait 0, 1, 2, 4 ... windows, so unlocatable audio costs a few of them. */
static int search_global(struct audio_judge *j, const struct window_obs *o, const struct frame_rec *f,
                         int64_t *c_out)
{
        int64_t window = (int64_t)WIDE_BLOCKS * j->block;
        int r;

        if (o->confident < GLOBAL_MIN_VOTES || j->global_searches >= MAX_GLOBAL_SEARCHES ||
            f->offset < j->global_next)
                return 0;
        j->global_searches++;
        r = vote_range(j, o, -WIDE_BLOCKS, (int64_t)(GLOBAL_SEARCH_S * 1000 / AUDIOCODE_BLOCK_MS), GLOBAL_MIN_VOTES,
                       c_out);
        if (r == 0) {
                if (j->global_failures < GLOBAL_BACKOFF_MAX)
                        j->global_failures++;
                j->global_next = f->offset + (j->global_failures > 1 ? window << (j->global_failures - 2) : 0);
        }
        return r;
}

/* The content of frame f's first sample from a window search: 1, 0, -ENOMEM. */
static int search_wide(struct audio_judge *j, const struct locate_state *st, const struct frame_rec *f,
                       int64_t *c_out)
{
        struct window_obs o;
        int64_t pred[3];
        size_t n;
        int r;

        read_window(j, f, &o);
        if (o.confident < MIN_VOTES)
                return 0;
        n = predictions(j, st, f, pred);
        for (size_t i = 0; i < n; i++) {
                bool seen = false;

                for (size_t k = 0; k < i; k++)
                        seen |= llabs(pred[i] - pred[k]) < j->block; /* the same range again */
                if (!seen && (r = vote_near(j, &o, pred[i], c_out)) != 0)
                        return r;
        }
        return search_global(j, &o, f, c_out);
}

/* Locate frame k: 0 (located or not, in the record) or -ENOMEM. */
static int locate_frame(struct audio_judge *j, struct locate_state *st, size_t k)
{
        struct frame_rec *f = &j->frames[k];
        int64_t w = (int64_t)j->cfg.rate * LOCAL_SEARCH_MS / 1000, pred, c;
        int r = 0;

        f->located = false;
        if (st->has_hint || st->last >= 0) {
                pred = st->has_hint ? st->hint_c + (f->offset - st->hint_offset)
                                    : j->frames[st->last].c + (f->offset - j->frames[st->last].offset);
                r = locate_quick(j, f, pred);
                if (r == 0)
                        r = locate_near(j, f, pred, w);
        }
        if (r == 0) {
                r = search_wide(j, st, f, &c);
                if (r > 0) {
                        st->has_hint = true;
                        st->hint_c = c;
                        st->hint_offset = f->offset;
                        r = locate_near(j, f, c, j->block / 4);
                }
        }
        if (r < 0)
                return r;
        if (f->located) {
                st->last = (ssize_t)k;
                st->has_hint = false;
        }
        return 0;
}

/* ---- verdict ------------------------------------------------------------------------ */

/* Content samples skipped (> 0) or repeated (< 0) from located frame a to b. */
static int64_t jump_of(const struct frame_rec *a, const struct frame_rec *b)
{
        return (b->c - a->c) - (b->offset - a->offset);
}

/* More than the jitter of a lossy codec's location (AAC: +-1 sample). */
static bool is_jump(const struct audio_judge *j, int64_t jump)
{
        int64_t jitter = (int64_t)j->cfg.rate * JITTER_US / 1000000;

        return llabs(jump) > (jitter > 1 ? jitter : 1);
}

/* ms to the microsecond, without a negative zero: pts in seconds are binary fractions. */
static double round_us(double ms)
{
        return nearbyint(ms * 1000) / 1000 + 0.0;
}

static int add_event(struct event_list *l, const struct frame_rec *f, int rate, double ms)
{
        if (l->n < AUDIO_JUDGE_MAX_EVENTS) {
                if (!l->v && !(l->v = malloc(AUDIO_JUDGE_MAX_EVENTS * sizeof(*l->v))))
                        return -ENOMEM;
                l->v[l->n++] = (struct audio_event){ .file = f->file, .pts_s = f->pts_s,
                                                     .content_s = (double)f->c / rate, .ms = ms };
        }
        l->total++;
        if (fabs(ms) > l->max_ms)
                l->max_ms = fabs(ms);
        return 0;
}

/* The jump and the pts step from located frame a to located frame b;
 * *jumped: the content is not contiguous there. */
static int judge_step(struct audio_judge *j, const struct frame_rec *a, const struct frame_rec *b,
                      bool *jumped)
{
        double rate = j->cfg.rate, dn = (double)(b->offset - a->offset);
        double jump = (double)jump_of(a, b);
        int r = 0;

        *jumped = is_jump(j, (int64_t)jump); /* even within the tolerance: frames there may blend */
        if (jump > j->tol)
                r = add_event(&j->holes, b, j->cfg.rate, jump * 1000 / rate);
        else if (jump < -j->tol)
                r = add_event(&j->overlaps, b, j->cfg.rate, -jump * 1000 / rate);
        if (r == 0 && a->file == b->file && isfinite(a->pts_s) && isfinite(b->pts_s)) {
                double diff = (b->pts_s - a->pts_s) * rate - dn - jump;

                if (fabs(diff) > j->tol + PTS_SLACK_MS * rate / 1000)
                        r = add_event(&j->pts_gaps, b, j->cfg.rate, round_us(diff * 1000 / rate));
        }
        return r;
}

static bool file_edge(const struct audio_judge *j, size_t k)
{
        const struct frame_rec *f = j->frames;

        return k == 0 || k + 1 == j->n_frames || f[k - 1].file != f[k].file || f[k + 1].file != f[k].file;
}

/* Unlocated frames not excused (see the opening comment), run by run. */
static uint64_t count_unexpected(const struct audio_judge *j, const bool *jump_before)
{
        uint64_t bad = 0;
        size_t s = 0;

        while (s < j->n_frames) {
                size_t e = s;
                bool at_jump;

                if (j->frames[s].located) {
                        s++;
                        continue;
                }
                while (e + 1 < j->n_frames && !j->frames[e + 1].located)
                        e++;
                at_jump = s > 0 && e + 1 < j->n_frames && jump_before[e + 1];
                for (size_t k = s; k <= e; k++)
                        if (!file_edge(j, k) && !(at_jump && k - s < SPLICE_FRAMES))
                                bad++;
                s = e + 1;
        }
        return bad;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;

        return x < y ? -1 : x > y;
}

static int cmp_sync(const void *a, const void *b)
{
        const struct sync_val *x = a, *y = b;

        if (x->file != y->file)
                return x->file < y->file ? -1 : 1;
        return cmp_double(&x->ms, &y->ms);
}

/* Median of sorted v[0..n), n > 0. */
static double median_sorted(const double *v, size_t n)
{
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void reset_results(struct audio_judge *j)
{
        struct event_list *l[] = { &j->holes, &j->overlaps, &j->pts_gaps };

        for (size_t i = 0; i < 3; i++) {
                l[i]->n = 0;
                l[i]->total = 0;
                l[i]->max_ms = 0;
        }
        j->global_searches = 0;
        j->global_failures = 0;
        j->global_next = 0;
        j->finished = false;
        memset(&j->rep, 0, sizeof(j->rep));
}

/* A lossy codec can blend the two sides of a splice into a frame that
 * correlates best in between them: a located frame with a jump on either
 * side and rho < RHO_SURE is taken back (jumps less than a frame apart are
 * then reported as one, their sum). */
static void unlocate_blends(struct audio_judge *j)
{
        ssize_t a = -1, k = -1;

        for (size_t b = 0; b < j->n_frames; b++) {
                struct frame_rec *f = j->frames;

                if (!f[b].located)
                        continue;
                if (a >= 0 && f[k].rho < RHO_SURE && is_jump(j, jump_of(&f[a], &f[k])) &&
                    is_jump(j, jump_of(&f[k], &f[b])))
                        f[k].located = false; /* a stays the last located before b */
                else
                        a = k;
                k = (ssize_t)b;
        }
}

/* Locate every frame, then judge each step between located frames. */
static int locate_all(struct audio_judge *j, bool *jump_before)
{
        struct locate_state st = { .last = -1 };
        const struct frame_rec *prev = NULL;
        int r;

        for (size_t k = 0; k < j->n_frames; k++)
                if ((r = locate_frame(j, &st, k)) < 0)
                        return r;
        unlocate_blends(j);
        for (size_t k = 0; k < j->n_frames; k++) {
                const struct frame_rec *f = &j->frames[k];

                if (!f->located)
                        continue;
                if (prev && (r = judge_step(j, prev, f, &jump_before[k])) < 0)
                        return r;
                prev = f;
        }
        return 0;
}

/* Per-file and overall A/V sync: (content - pts) - video offset, in ms. */
static int compute_sync(struct audio_judge *j)
{
        struct sync_val *v = malloc((j->rep.located ? j->rep.located : 1) * sizeof(*v));
        double *all = malloc((j->rep.located ? j->rep.located : 1) * sizeof(*all));
        size_t n = 0;

        if (!v || !all) {
                free(v);
                free(all);
                return -ENOMEM;
        }
        for (size_t k = 0; k < j->n_frames; k++) {
                const struct frame_rec *f = &j->frames[k];
                const struct file_rec *fi = &j->files[f->file];

                if (f->located && isfinite(f->pts_s) && fi->has_video_offset)
                        v[n++] = (struct sync_val){
                                .file = f->file,
                                .ms = round_us(((double)f->c / j->cfg.rate - f->pts_s - fi->video_offset_s) *
                                               1000),
                        };
        }
        qsort(v, n, sizeof(*v), cmp_sync);
        for (size_t a = 0; a < n;) {
                struct audio_file_summary *s = &j->summaries[v[a].file];
                size_t b = a;

                while (b < n && v[b].file == v[a].file) {
                        all[b - a] = v[b].ms;
                        b++;
                }
                s->has_sync = true;
                s->sync_median_ms = median_sorted(all, b - a);
                s->sync_min_ms = all[0];
                s->sync_max_ms = all[b - a - 1];
                a = b;
        }
        for (size_t i = 0; i < n; i++)
                all[i] = v[i].ms;
        qsort(all, n, sizeof(*all), cmp_double);
        if (n) {
                j->rep.has_sync = true;
                j->rep.sync_median_ms = median_sorted(all, n);
                j->rep.sync_min_ms = all[0];
                j->rep.sync_max_ms = all[n - 1];
        }
        free(v);
        free(all);
        return 0;
}

/* Counts, content range, frame length and rho statistics. */
static int compute_stats(struct audio_judge *j)
{
        struct audio_report *r = &j->rep;
        double *len = malloc((j->n_frames ? j->n_frames : 1) * sizeof(*len));
        size_t nr = 0;

        if (!len)
                return -ENOMEM;
        for (size_t k = 0; k < j->n_frames; k++) {
                const struct frame_rec *f = &j->frames[k];
                struct audio_file_summary *s = &j->summaries[f->file];

                s->frames++;
                s->samples += f->n;
                len[k] = f->n;
                if (!f->located)
                        continue;
                s->located++;
                if (!r->has_content)
                        r->content_first_s = (double)f->c / j->cfg.rate;
                r->has_content = true;
                r->content_last_s = (double)f->c / j->cfg.rate;
                r->located++;
        }
        r->frames = j->n_frames;
        r->samples = (uint64_t)j->n_samples;
        r->unlocated = r->frames - r->located;
        qsort(len, j->n_frames, sizeof(*len), cmp_double);
        r->frame_ms = j->n_frames ? median_sorted(len, j->n_frames) * 1000 / j->cfg.rate : 0;
        for (size_t k = 0; k < j->n_frames; k++)
                if (j->frames[k].located)
                        len[nr++] = j->frames[k].rho;
        qsort(len, nr, sizeof(*len), cmp_double);
        r->rho_median = nr ? median_sorted(len, nr) : 0;
        r->rho_min = nr ? len[0] : 0;
        free(len);
        return 0;
}

static int make_summaries(struct audio_judge *j)
{
        free(j->summaries);
        j->summaries = calloc(j->n_files ? j->n_files : 1, sizeof(*j->summaries));
        if (!j->summaries)
                return -ENOMEM;
        for (size_t i = 0; i < j->n_files; i++) {
                j->summaries[i].file = (int)i;
                j->summaries[i].has_video_offset = j->files[i].has_video_offset;
                j->summaries[i].video_offset_s = j->files[i].video_offset_s;
        }
        return 0;
}

int audio_judge_finish(struct audio_judge *j, const struct audio_report **report)
{
        struct audio_report *r = &j->rep;
        bool *jump_before;
        int e;

        reset_results(j);
        jump_before = calloc(j->n_frames ? j->n_frames : 1, sizeof(*jump_before));
        if (!jump_before)
                return -ENOMEM;
        e = locate_all(j, jump_before);
        if (e == 0)
                e = make_summaries(j);
        if (e == 0)
                e = compute_stats(j);
        if (e == 0)
                e = compute_sync(j);
        if (e == 0)
                r->unlocated_unexpected = count_unexpected(j, jump_before);
        free(jump_before);
        if (e < 0)
                return e;
        r->rate = j->cfg.rate;
        r->decode_errors = j->decode_errors;
        r->holes = j->holes.v;
        r->n_holes = j->holes.n;
        r->holes_total = j->holes.total;
        r->max_hole_ms = j->holes.max_ms;
        r->overlaps = j->overlaps.v;
        r->n_overlaps = j->overlaps.n;
        r->overlaps_total = j->overlaps.total;
        r->max_overlap_ms = j->overlaps.max_ms;
        r->pts_gaps = j->pts_gaps.v;
        r->n_pts_gaps = j->pts_gaps.n;
        r->pts_gaps_total = j->pts_gaps.total;
        r->files = j->summaries;
        r->n_files = j->n_files;
        r->clean = r->located > 0 && r->holes_total == 0 && r->overlaps_total == 0 && r->unlocated_unexpected == 0;
        j->finished = true;
        if (report)
                *report = r;
        return 0;
}

/* ---- JSON ------------------------------------------------------------------------------ */

static bool add_num(cJSON *o, const char *key, double v)
{
        return cJSON_AddNumberToObject(o, key, v) != NULL;
}

/* NAN and infinities are not JSON: null. */
static bool add_num_or_null(cJSON *o, const char *key, bool has, double v)
{
        return has && isfinite(v) ? add_num(o, key, v) : cJSON_AddNullToObject(o, key) != NULL;
}

static bool json_events(cJSON *o, const char *key, const struct audio_event *ev, size_t n)
{
        cJSON *a = cJSON_AddArrayToObject(o, key);

        if (!a)
                return false;
        for (size_t i = 0; i < n; i++) {
                cJSON *e = cJSON_CreateObject();

                if (e && !cJSON_AddItemToArray(a, e)) {
                        cJSON_Delete(e);
                        return false;
                }
                if (!e || !add_num(e, "file", ev[i].file) || !add_num_or_null(e, "pts_s", true, ev[i].pts_s) ||
                    !add_num(e, "content_s", ev[i].content_s) || !add_num(e, "ms", ev[i].ms))
                        return false;
        }
        return true;
}

static bool json_sync(cJSON *o, bool has, double median, double min, double max)
{
        return cJSON_AddBoolToObject(o, "has_sync", has) && add_num_or_null(o, "sync_median_ms", has, median) &&
               add_num_or_null(o, "sync_min_ms", has, min) && add_num_or_null(o, "sync_max_ms", has, max);
}

static bool json_files(cJSON *o, const struct audio_report *r)
{
        cJSON *a = cJSON_AddArrayToObject(o, "files");

        if (!a)
                return false;
        for (size_t i = 0; i < r->n_files; i++) {
                const struct audio_file_summary *f = &r->files[i];
                cJSON *e = cJSON_CreateObject();

                if (e && !cJSON_AddItemToArray(a, e)) {
                        cJSON_Delete(e);
                        return false;
                }
                if (!e || !add_num(e, "file", f->file) || !add_num(e, "frames", (double)f->frames) ||
                    !add_num(e, "samples", (double)f->samples) || !add_num(e, "located", (double)f->located) ||
                    !add_num_or_null(e, "video_offset_s", f->has_video_offset, f->video_offset_s) ||
                    !json_sync(e, f->has_sync, f->sync_median_ms, f->sync_min_ms, f->sync_max_ms))
                        return false;
        }
        return true;
}

static bool json_counts(cJSON *o, const struct audio_report *r)
{
        return add_num(o, "rate", r->rate) && add_num(o, "frames", (double)r->frames) &&
               add_num(o, "samples", (double)r->samples) && add_num(o, "located", (double)r->located) &&
               add_num(o, "unlocated", (double)r->unlocated) &&
               add_num(o, "unlocated_unexpected", (double)r->unlocated_unexpected) &&
               add_num(o, "decode_errors", (double)r->decode_errors) &&
               cJSON_AddBoolToObject(o, "has_content", r->has_content) &&
               add_num_or_null(o, "content_first_s", r->has_content, r->content_first_s) &&
               add_num_or_null(o, "content_last_s", r->has_content, r->content_last_s) &&
               add_num(o, "frame_ms", r->frame_ms) &&
               add_num_or_null(o, "rho_median", r->located > 0, r->rho_median) &&
               add_num_or_null(o, "rho_min", r->located > 0, r->rho_min);
}

static bool json_defects(cJSON *o, const struct audio_report *r)
{
        return json_events(o, "holes", r->holes, r->n_holes) && add_num(o, "holes_total", (double)r->holes_total) &&
               add_num(o, "max_hole_ms", r->max_hole_ms) && json_events(o, "overlaps", r->overlaps, r->n_overlaps) &&
               add_num(o, "overlaps_total", (double)r->overlaps_total) &&
               add_num(o, "max_overlap_ms", r->max_overlap_ms) &&
               json_events(o, "pts_gaps", r->pts_gaps, r->n_pts_gaps) &&
               add_num(o, "pts_gaps_total", (double)r->pts_gaps_total);
}

cJSON *audio_report_json(const struct audio_judge *j)
{
        const struct audio_report *r = &j->rep;
        cJSON *o;

        if (!j->finished)
                return NULL;
        o = cJSON_CreateObject();
        if (!o)
                return NULL;
        if (!json_counts(o, r) || !json_defects(o, r) ||
            !json_sync(o, r->has_sync, r->sync_median_ms, r->sync_min_ms, r->sync_max_ms) || !json_files(o, r) ||
            !cJSON_AddBoolToObject(o, "clean", r->clean)) {
                cJSON_Delete(o);
                return NULL;
        }
        return o;
}

/* ---- text ------------------------------------------------------------------------------ */

static void print_events(FILE *out, const char *what, const struct audio_event *ev, size_t n, uint64_t total)
{
        for (size_t i = 0; i < n; i++) {
                fprintf(out, "audio %s file %d pts ", what, ev[i].file);
                if (isfinite(ev[i].pts_s))
                        fprintf(out, "%.6f", ev[i].pts_s);
                else
                        fputc('-', out);
                fprintf(out, " content %.6f: %.3f ms\n", ev[i].content_s, ev[i].ms);
        }
        if (total > n)
                fprintf(out, "audio %s list truncated: %zu of %" PRIu64 " listed\n", what, n, total);
}

static void print_sync(FILE *out, const char *prefix, bool has, double median, double min, double max)
{
        if (has)
                fprintf(out, "%s sync median %+.3f ms, min %+.3f ms, max %+.3f ms\n", prefix, median, min, max);
        else
                fprintf(out, "%s sync -\n", prefix);
}

static void print_files(const struct audio_report *r, FILE *out)
{
        for (size_t i = 0; i < r->n_files; i++) {
                const struct audio_file_summary *f = &r->files[i];
                char prefix[64];

                fprintf(out, "audio file %d: %" PRIu64 " frames, %" PRIu64 " samples, %" PRIu64 " located", f->file,
                        f->frames, f->samples, f->located);
                if (f->has_video_offset)
                        fprintf(out, ", video offset %.6f s", f->video_offset_s);
                fputc('\n', out);
                snprintf(prefix, sizeof(prefix), "audio file %d", f->file);
                print_sync(out, prefix, f->has_sync, f->sync_median_ms, f->sync_min_ms, f->sync_max_ms);
        }
}

int audio_report_print_text(const struct audio_judge *j, FILE *out)
{
        const struct audio_report *r = &j->rep;

        if (!j->finished)
                return -EINVAL;
        fprintf(out, "audio rate %d\naudio frames %" PRIu64 " (median %.3f ms)\naudio samples %" PRIu64 "\n",
                r->rate, r->frames, r->frame_ms, r->samples);
        print_files(r, out);
        fprintf(out, "audio located %" PRIu64 "\naudio unlocated %" PRIu64 " (%" PRIu64 " unexpected)\n",
                r->located, r->unlocated, r->unlocated_unexpected);
        if (r->located)
                fprintf(out, "audio rho median %.4f, min %.4f\n", r->rho_median, r->rho_min);
        if (r->has_content)
                fprintf(out, "audio content %.6f .. %.6f s\n", r->content_first_s, r->content_last_s);
        else
                fputs("audio content -\n", out);
        fprintf(out, "audio holes %" PRIu64 " (max %.3f ms)\n", r->holes_total, r->max_hole_ms);
        print_events(out, "hole", r->holes, r->n_holes, r->holes_total);
        fprintf(out, "audio overlaps %" PRIu64 " (max %.3f ms)\n", r->overlaps_total, r->max_overlap_ms);
        print_events(out, "overlap", r->overlaps, r->n_overlaps, r->overlaps_total);
        fprintf(out, "audio pts_gaps %" PRIu64 "\n", r->pts_gaps_total);
        print_events(out, "pts_gap", r->pts_gaps, r->n_pts_gaps, r->pts_gaps_total);
        print_sync(out, "audio", r->has_sync, r->sync_median_ms, r->sync_min_ms, r->sync_max_ms);
        fprintf(out, "audio decode_errors %" PRIu64 "\naudio verdict %s\n", r->decode_errors,
                r->clean ? "clean" : "DEFECTS");
        return ferror(out) ? -EIO : 0;
}
