/* export: stitch pieces of segment files into one MP4, stream copy only
 * (`mwr export`).  The pieces come from the continuity timeline: each starts
 * at a keyframe, none repeats a frame of another, and a hole between two
 * pieces stays a hole in time in the output (never closed up). */
#ifndef MWR_MWR_EXPORT_H
#define MWR_MWR_EXPORT_H

#include <stddef.h>
#include <stdint.h>

struct export_piece {
        const char *path;     /* segment file: fragmented MP4, possibly truncated after SIGKILL */
        int64_t seg_start_us; /* the segment's start_us: file time 0 is this camera time */
        size_t first, last;   /* frame indexes, inclusive, 0-based, counting the file's video
                               * packets that hold a picture (payload_has_picture), in file order */
        int64_t shift_us;     /* output clock = seg_start_us + file time - shift_us */
};

#define EXPORT_MAX_PARTS 64 /* files of one export: stream changes in the range + 1 */
#define EXPORT_PATH_MAX 4096

/* One output file: the stream changed (codec, picture size) before the next. */
struct export_part {
        char path[EXPORT_PATH_MAX];
        size_t frames;
        int64_t first_us, last_us; /* output clock of its first and last video frame (pts) */
        int width, height;
        const char *codec;    /* "h264" | "hevc" (static) */
};

struct export_stats {
        size_t frames;        /* video frames written */
        size_t pieces;
        size_t audio_packets;
        int64_t first_us, last_us; /* output clock of the first and last video frame (pts) */
        size_t dts_fixes;     /* DTS nudged forward to keep the muxer's order */
        size_t n_parts;
        struct export_part parts[EXPORT_MAX_PARTS];
};

/* done/total are video frames; called at most about once per second of output. */
typedef void (*export_progress_cb)(size_t done, size_t total, void *ctx);

/* Write out_path (a regular MP4, moov first) from the pieces in order.
 * Output time 0 is the first written frame's output clock; every later packet
 * keeps its distance from it, so a gap between pieces stays a gap.  Audio is
 * footage too: each piece's audio continues where the previous piece's
 * ended (segments meet at a keyframe's decode time, their pictures at its
 * presentation time) up to the end of the piece's video, so the sound has
 * no hole and no overlap where the pictures have none.
 * A piece whose video cannot share the output's sample entry (the camera
 * changed codec or picture size) starts a new file: OUT.2.mp4, OUT.3.mp4,
 * ... (before the extension), each with its own time 0; the audio goes on
 * across them.  Every file is written to a temporary name next to its path
 * and all are renamed at the end: on error nothing is left at any path.
 * 0, or a negative errno with a one-line reason in err (naming the file). */
int export_write(const struct export_piece *pieces, size_t n, const char *out_path, export_progress_cb cb,
                 void *ctx, char *err, size_t errlen, struct export_stats *st);

struct tl_segment;
struct tl_result;

/* The continuity timeline's pieces (continuity/timeline.h) of segs as
 * export pieces, calloc'ed; NULL on ENOMEM or with no piece. */
struct export_piece *export_pieces(const struct tl_segment *segs, const struct tl_result *r);

/* The path of part k (0-based) of an export to out_path: part 0 is out_path,
 * part 1 "OUT.2.mp4".  -ENAMETOOLONG when it does not fit. */
int export_part_path(const char *out_path, size_t k, char *buf, size_t len);

#endif
