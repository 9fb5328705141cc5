/* timeline: one continuous recording of a camera out of every copy of it.
 * During a deploy (and after a crash and restart) two instances record the
 * same camera; their segments overlap in time.  tl_build() aligns the copies'
 * clocks (matcher.h), cuts every copy into GOPs (a keyframe and the frames up
 * to the next one), groups the GOPs that are the same camera frames, and
 * picks one copy of each: the one with the most frames, staying on the
 * current copy when copies are equal.  So a switch between copies happens
 * only at a keyframe, no frame is taken twice, and a hole in one copy is
 * filled from another.  What no copy holds is a hole, reported with its
 * time.  Pure computation: continuity/loader.h reads the input from the DB. */
#ifndef MWR_CONTINUITY_TIMELINE_H
#define MWR_CONTINUITY_TIMELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "continuity/matcher.h"

#define TL_GAP_FRAMES_DEFAULT 1.5 /* no frame for longer than this many frame durations: a gap */

struct tl_segment {
        int64_t id;
        const char *instance_id;
        const char *path;
        int64_t start_us;
        const struct cm_frame *frames; /* decode order, t_us absolute on the copy's own clock */
        size_t n;
        bool recording; /* still being written: its status is not judged yet */
        int64_t run_key; /* the recording process (pid): each has clocks of its own */
        char audio_codec[16]; /* "" without sound: a copy covers another only with the same sound */
};

struct tl_options {
        int64_t from_us, to_us; /* GOPs with a frame shown in [from, to) are taken */
        double gap_frames;      /* 0: TL_GAP_FRAMES_DEFAULT */
        int64_t max_shift_us;   /* clock offset searched between copies, 0: the matcher's default */
};

/* Frames [first, last] (indexes into the segment's frames) of one segment. */
struct tl_piece {
        size_t seg;             /* index into the input */
        size_t first, last;
        size_t frames;
        int64_t start_us, end_us; /* first shown frame, last shown frame + one frame, reference clock */
        int64_t shift_us;       /* reference clock = the segment's clock - shift_us */
};

struct tl_hole {
        int64_t start_us, end_us; /* reference clock: after the last frame before, first frame after */
        size_t seg_before, seg_after; /* segments on either side, SIZE_MAX if none */
        bool inside_gop;            /* frames missing between two frames of one GOP (packet loss) */
};

enum tl_overlap { TL_UNIQUE, TL_PRIMARY, TL_DUPLICATE, TL_PARTIAL };

struct tl_result {
        struct tl_piece *pieces;
        size_t n_pieces;
        struct tl_hole *holes;
        size_t n_holes;
        int64_t frame_us;
        size_t frames;           /* in the pieces */
        size_t duplicate_frames; /* frames of copies that were not used because another copy was */
        size_t switches;         /* pieces that continue on another instance's copy */
        /* per input segment */
        enum tl_overlap *overlap; /* only meaningful for segments entirely inside the range */
        bool *covered;            /* every frame of it (all inside the range) is in a copy the timeline
                                   * uses, with the same size, hash and time, in a segment not being
                                   * recorded: deleting it loses no frame */
        size_t *used_frames;
        int64_t *shift_us;
};

/* 0, -EINVAL (empty range), -ENOMEM.  The reference clock is that of the
 * copy with the most frames. */
int tl_build(const struct tl_segment *segs, size_t n, const struct tl_options *o, struct tl_result *out);
void tl_result_free(struct tl_result *r);

const char *tl_overlap_name(enum tl_overlap o);

#endif
