/* judge: the verdict over the frame numbers read back from a recording.
 * Fed one decoded frame at a time in playback order, it finds unreadable,
 * duplicated, out-of-order and missing numbers and SEI disagreements, then
 * renders one report as text or JSON.  Pure computation, no libav: the judge
 * owns every number it has seen (a hash set) and the report it computes. */
#ifndef MWR_TESTS_JUDGE_H
#define MWR_TESTS_JUDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#define JUDGE_MAX_FILES 65536              /* inputs of one run */
#define JUDGE_MAX_DISTINCT (1u << 26)      /* distinct numbers: 31 days at 25 fps, <= 512 MiB of set */
#define JUDGE_MAX_MISSING_RANGES 10000     /* ranges stored; the missing total stays exact */
#define JUDGE_MAX_DUPLICATE_NUMBERS 10000  /* duplicate numbers stored; the count stays exact */
#define JUDGE_MAX_FRAME_LIST (1u << 24)    /* frames kept for the frame list (--frames) */
#define JUDGE_CAMERA_ID_MAX 64             /* same bound as FRAMECODE_CAMERA_ID_MAX */

struct judge;

struct judge_config {
        const char *camera;            /* expected SEI camera id; NULL: not checked */
        bool has_expect_first;         /* missing counts from expect_first, not the lowest seen */
        uint32_t expect_first;
        bool has_expect_last;          /* missing counts up to expect_last, not the highest seen */
        uint32_t expect_last;
        bool keep_frames;              /* keep every frame for the frame list */
};

/* One decoded frame.  number is meaningful only when readable; sei_* only
 * when has_sei.  sei_malformed: the camsim SEI was there but unparsable. */
struct judge_frame {
        int file;                      /* index returned by judge_add_file */
        double pts_s;                  /* presentation time in seconds, NAN when unknown */
        bool readable;
        uint32_t number;
        bool has_sei;
        bool sei_malformed;
        uint32_t sei_number;
        const char *sei_camera;
};

struct judge_range {
        uint32_t first, last;          /* inclusive */
};

struct judge_file_summary {
        const char *path;
        uint64_t frames;               /* decoded, readable or not */
        uint64_t readable;
        bool has_numbers;              /* false: first/last are meaningless */
        uint32_t first, last;          /* lowest and highest readable number */
};

struct judge_report {
        uint64_t frames, readable, unreadable;
        bool has_numbers;
        uint32_t first, last;          /* lowest and highest readable number */
        uint64_t count;                /* distinct readable numbers */
        uint64_t missing;              /* exact, even when the range list is capped */
        const struct judge_range *missing_ranges;
        size_t n_missing_ranges;       /* stored */
        uint64_t missing_ranges_total; /* found */
        uint64_t duplicated;           /* frames whose number was seen before */
        const uint32_t *duplicate_numbers; /* in playback order, one per duplicated frame */
        size_t n_duplicate_numbers;    /* stored, <= JUDGE_MAX_DUPLICATE_NUMBERS */
        uint64_t out_of_order;         /* new numbers below the highest seen before */
        uint64_t camera_mismatch;      /* SEI camera id is not the expected one */
        uint64_t sei_mismatch;         /* SEI number differs from the picture, or SEI malformed */
        uint64_t sei_frames;           /* frames that carried the camsim SEI */
        uint64_t decode_errors;        /* reported by the caller, not a verdict by themselves */
        const struct judge_file_summary *files;
        size_t n_files;
        bool clean;
};

/* A judge for one run; cfg is copied.  0, -EINVAL or -ENOMEM. */
int judge_new(struct judge **out, const struct judge_config *cfg);
void judge_free(struct judge *j);

/* Register the next input; returns its index (0, 1, ...) or -E2BIG/-ENOMEM. */
int judge_add_file(struct judge *j, const char *path);

/* Feed one frame in playback order.  0, -EINVAL (unknown file), -E2BIG (too
 * many distinct numbers) or -ENOMEM. */
int judge_add(struct judge *j, const struct judge_frame *f);

/* Count a packet the decoder refused (corrupt input). */
void judge_add_decode_error(struct judge *j);

/* Compute the report; valid until the next judge_add, judge_add_file,
 * judge_finish or judge_free.
 * May be called again after more frames.  0 or -ENOMEM. */
int judge_finish(struct judge *j, const struct judge_report **report);

/* Render the finished report.  0, -EINVAL (not finished) or -EIO. */
int judge_print_text(const struct judge *j, FILE *out);
int judge_print_json(const struct judge *j, FILE *out);

/* The finished report as a cJSON object, without the frame list (which
 * judge_print_json streams).  NULL when not finished or out of memory. */
cJSON *judge_report_json(const struct judge *j);

#endif
