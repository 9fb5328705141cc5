/* segment_writer: one fragmented-MP4 segment file, written with libavformat's
 * mp4 muxer in frag_custom mode so the caller decides where fragments end
 * (every keyframe and at least every FRAGMENT_MAX_US of media).  A flushed
 * fragment is on disk: a SIGKILL loses at most the fragment being built.
 * Stream copy only: packets go in as they came from the camera. */
#ifndef MWR_WORKER_SEGMENT_WRITER_H
#define MWR_WORKER_SEGMENT_WRITER_H

#include <stdint.h>

#include <libavformat/avformat.h>

#define SEGMENT_MAX_STREAMS 2 /* video, and audio when the camera has it */

struct segment_writer;

/* One track of the segment: what it holds and the time base of the packets
 * the caller writes to it under the key `in_index` (the input's stream index). */
struct segment_stream {
        const AVCodecParameters *par;
        AVRational time_base;
        int in_index; /* 0..63 */
        int64_t frame_us; /* video: the frame spacing, for decode times of B-frame streams; 0 otherwise */
        int reorder;      /* video: pictures shown after a later one, as seen (the larger of it and
                           * par->video_delay counts); 0: decode times as libavformat gives them */
};

/* Creates path (O_EXCL: an existing file is never overwritten: -EEXIST) and
 * writes the header. */
int segment_writer_open(struct segment_writer **out, const char *path, const struct segment_stream *streams,
                        int n_streams);

/* Adds one packet of input stream `in_index` whose presentation time is
 * pts_offset_us after the segment start.  The packet is not consumed. */
int segment_writer_write(struct segment_writer *w, const AVPacket *pkt, int in_index, int64_t pts_offset_us);

/* Ends the current fragment and pushes it to the kernel.  0 if there was
 * nothing to flush or it was flushed. */
int segment_writer_flush(struct segment_writer *w);

/* Flushes, writes the trailer, fsyncs and frees; *bytes gets the final file
 * size.  Returns the first error of the segment's life, if any (the file is
 * still closed and freed). */
int segment_writer_close(struct segment_writer *w, int64_t *bytes);

/* Frees without the trailer (after a write error); the file stays as is. */
void segment_writer_abort(struct segment_writer *w);

int64_t segment_writer_bytes(const struct segment_writer *w);
int segment_writer_fragments(const struct segment_writer *w);
int segment_writer_dts_fixes(const struct segment_writer *w);

#endif
