/* segment: one segment file of a camera and its DB row, from open to close.
 * Owns the segment writer, the frame index being built and the row as last
 * published.  Invariant: the row never counts a frame that is not in a
 * flushed fragment of the file; a failed write cuts the file back to its last
 * whole fragment and the row is rebuilt from it.  Used by one camera thread. */
#ifndef MWR_WORKER_SEGMENT_H
#define MWR_WORKER_SEGMENT_H

#include <stdint.h>

#include "db/frame_index.h"
#include "worker/index_writer.h"
#include "worker/segment_writer.h"

/* Where a camera's segments go and who hears of them. */
struct segment_ctx {
        const char *storage_dir, *camera_id, *instance_id;
        struct index_writer *iw;
        int64_t *next_num;       /* the camera's next segment number, advanced here */
};

/* What a segment holds, for its row and /api/segments. */
struct segment_desc {
        const char *time_source;  /* "rtcp" | "receive" */
        const char *video_codec;  /* "h264" | "hevc" */
        int width, height;
        const char *audio_codec;  /* "" without sound */
};

struct segment {
        struct segment_writer *w;
        struct seg_ref *ref;
        struct seg_info info;
        struct fi_encoder fi;
        int64_t frag_start_us;    /* camera time of the fragment's first packet */
        int64_t flushed_frames, flushed_keyframes, flushed_end_us;
        int64_t frames, keyframes, end_us;
        uint8_t *params;          /* the video parameter sets it was opened with (owned) */
        size_t params_len;
};

/* Creates {storage_dir}/{camera}/{YYYY-MM-DD}/{camera}_{start_ms}_{instance}_{num}.mp4
 * and its row.  params (may be NULL) are copied.  0 or a negative errno
 * (logged here, naming the file). */
int segment_open(struct segment **out, const struct segment_ctx *c, int64_t start_us,
                 const struct segment_stream *streams, int n_streams, const struct segment_desc *d,
                 const uint8_t *params, size_t params_len);

/* Ends the fragment being built; publishes the row when it grew. */
int segment_flush(struct segment *s, struct index_writer *iw);

/* Counts one video frame that ends at camera time end_us; its index entry f
 * (-ERANGE from the frame index: the frame is kept, its entry is not). */
int segment_add_frame(struct segment *s, const struct fi_frame *f, int64_t end_us);

/* Finalizes and frees: complete when every write and the trailer made it,
 * partial otherwise (the row then counts only the flushed fragments).
 * Returns the first write error of its life (logged here with `why`). */
int segment_close(struct segment *s, const struct segment_ctx *c, const char *why);

#endif
