/* fmp4_repair: bring a fragmented MP4 that a crash left behind back to its
 * last complete fragment, and read its frames back.  Pure file work (no DB):
 * the top-level boxes are walked by their sizes, a moof counts only with its
 * whole mdat, and the file is truncated right after the last complete one. */
#ifndef MWR_WORKER_FMP4_REPAIR_H
#define MWR_WORKER_FMP4_REPAIR_H

#include <stdbool.h>
#include <stdint.h>

#include "db/frame_index.h"

struct fmp4_scan {
        int64_t file_size;
        int64_t complete_end; /* bytes up to the end of the last complete box/fragment */
        int fragments;        /* complete moof+mdat pairs */
        bool has_moov;
};

/* Walks the top-level boxes.  0, or -errno. */
int fmp4_scan(const char *path, struct fmp4_scan *out);

/* Scans and truncates the file to complete_end when it is longer. */
int fmp4_truncate(const char *path, struct fmp4_scan *out);

struct fmp4_frames {
        int64_t frames, keyframes;
        int64_t end_offset_us; /* end of the last frame, from the segment start */
};

/* Reads every video frame of a (repaired) segment into fi, whose offsets are
 * the file's presentation times (the writer rebases them to the segment
 * start).  0, or -errno (-EBADMSG when the file cannot be demuxed). */
int fmp4_read_frames(const char *path, struct fi_encoder *fi, struct fmp4_frames *out);

#endif
