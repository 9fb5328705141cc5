/* audio_judge: the verdict over the sound of a recording of the camera
 * simulator (tests/common/audiocode.h).  Fed every decoded audio frame in
 * playback order (mono samples, with the frame's presentation time and input
 * file), it finds for each frame the camera time its samples hold (content
 * time: sample number / rate since camsim started) by correlation with the
 * reference signal, then reports:
 *   - holes: the content jumps forward between two consecutive frames of the
 *     sample sequence (sound that was never played back), with their size;
 *   - overlaps: the content jumps backward (sound played twice);
 *   - pts gaps: the timestamps jump while the content does not, or the other
 *     way round (the two disagree: A/V sync changes there);
 *   - A/V sync: per input file, (content - pts) of the audio minus the same
 *     of the video (video content time = frame number / fps, given by the
 *     caller through audio_judge_set_video_offset), as median/min/max.
 * Pure computation, no libav: the caller decodes.  Inputs are judged as one
 * sequence, so a hole between two files (export parts) is found too. */
#ifndef MWR_TESTS_AUDIO_JUDGE_H
#define MWR_TESTS_AUDIO_JUDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#define AUDIO_JUDGE_MAX_SAMPLES (INT64_C(1) << 31) /* 12 h at 48 kHz: the cap on stored samples */
#define AUDIO_JUDGE_MAX_EVENTS 10000               /* holes/overlaps/pts gaps stored; counts stay exact */

struct audio_judge_config {
        int rate;               /* sample rate of the decoded audio (multiple of 100) */
        double tolerance_ms;    /* a jump at most this large is not a hole/overlap (0: 1 ms) */
        double search_s;        /* how far from the predicted content time to search (0: 10 s) */
};

struct audio_event {
        int file;               /* input of the frame after the jump */
        double pts_s;           /* its presentation time */
        double content_s;       /* its content time */
        double ms;              /* size: > 0; a hole skipped this much, an overlap repeats it */
};

/* One input file's share of the report (index as given to audio_judge_add). */
struct audio_file_summary {
        int file;
        uint64_t frames, samples, located;
        bool has_video_offset;
        double video_offset_s;
        bool has_sync;
        double sync_median_ms, sync_min_ms, sync_max_ms;
};

struct audio_report {
        int rate;
        uint64_t frames, samples;
        uint64_t located, unlocated; /* frames whose content time was found / not found */
        uint64_t unlocated_unexpected; /* unlocated, yet not at a file's start/end nor at a jump */
        uint64_t decode_errors;      /* reported by the caller, not a verdict by themselves */
        double rho_median, rho_min;  /* correlation of the located frames with the reference */
        bool has_content;
        double content_first_s, content_last_s; /* of the first and last located frame (its start) */
        double frame_ms;        /* median decoded frame length */
        const struct audio_event *holes, *overlaps, *pts_gaps; /* pts gaps: ms signed, see below */
        size_t n_holes, n_overlaps, n_pts_gaps;                       /* stored */
        uint64_t holes_total, overlaps_total, pts_gaps_total;         /* found */
        double max_hole_ms, max_overlap_ms;
        bool has_sync;          /* some file had both located audio and a video offset */
        double sync_median_ms, sync_min_ms, sync_max_ms; /* audio offset - video offset */
        const struct audio_file_summary *files; /* indexes 0 .. n_files-1 */
        size_t n_files;
        /* some frame located, no hole, no overlap, unlocated_unexpected == 0
         * (pts gaps do not count: see audio_judge.c) */
        bool clean;
};

/* A pts gap's ms is signed: the pts step minus the content step, > 0 when
 * the timestamps moved further than the sound (the audio plays later from
 * there on), < 0 when less. */

struct audio_judge;

/* 0, -EINVAL (bad rate), -ENOMEM.  cfg is copied. */
int audio_judge_new(struct audio_judge **out, const struct audio_judge_config *cfg);
void audio_judge_free(struct audio_judge *j);

/* One decoded frame: n mono samples (-1..1) of input `file` shown at pts_s
 * (NAN when unknown: then it follows the previous frame).  Copied; a frame of
 * no samples is ignored.  0, -EINVAL (file < 0 or >= 65536), -E2BIG (over
 * AUDIO_JUDGE_MAX_SAMPLES), -ENOMEM. */
int audio_judge_add(struct audio_judge *j, int file, double pts_s, const float *samples, size_t n);

/* The same for a frame decoded at `rate`: -EINVAL when that is not the
 * judge's rate (the inputs of one run share one rate). */
int audio_judge_add_frame(struct audio_judge *j, int file, double pts_s, int rate, const float *samples,
                          size_t n);

/* Count a packet the decoder refused. */
void audio_judge_add_decode_error(struct audio_judge *j);

/* The video's (content - pts) for `file`, in seconds: the median over its
 * readable frames of number / fps - pts_s.  Used for the A/V sync, and as
 * the first guess of where the audio's content lies. */
int audio_judge_set_video_offset(struct audio_judge *j, int file, double offset_s);

/* Locate every frame and compute the report; valid until the next call or
 * audio_judge_free.  0 or -ENOMEM. */
int audio_judge_finish(struct audio_judge *j, const struct audio_report **report);

/* The finished report as a cJSON object (keys as in struct audio_report,
 * without n_*; events as arrays of {file, pts_s, content_s, ms}; "files" as
 * an array of struct audio_file_summary; a value that does not apply, such
 * as sync_median_ms without has_sync, is null); NULL when not finished or
 * out of memory.  The text report: "audio ..." lines, ending in
 * "audio verdict clean" or "audio verdict DEFECTS".  0, -EINVAL (not
 * finished) or -EIO. */
cJSON *audio_report_json(const struct audio_judge *j);
int audio_report_print_text(const struct audio_judge *j, FILE *out);

#endif
