/* fmp4_index: where the fragments of a fragmented MP4 file are (top-level
 * box walk, no decoding), so an HLS playlist can address the init section
 * and each fragment of a segment file by byte range. */
#ifndef MWR_COMMON_FMP4_INDEX_H
#define MWR_COMMON_FMP4_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fmp4_fragment {
        uint64_t offset, size;   /* from the moof through the end of its mdat */
        uint32_t first_sample;   /* index of its first video sample among the file's video samples */
        uint32_t samples;        /* video samples in it */
        int64_t first_pts;       /* video: tfdt + first sample's composition offset, track timescale */
        int64_t duration;        /* video: sum of its sample durations, track timescale */
};

struct fmp4_index {
        uint64_t init_size;      /* ftyp + moov (+ anything before the first moof), from offset 0 */
        uint32_t video_track_id;
        uint32_t timescale;      /* of the video track (mdhd) */
        struct fmp4_fragment *frags;
        size_t n_frags;
        bool truncated;          /* bytes after the last complete fragment were ignored */
};

/* 0; -ENOENT/-EACCES/... from the OS; -EBADMSG when the file is not a
 * fragmented MP4 with a video track (a box that overruns the file other than
 * at the end counts as truncation, not an error); -ENOMEM. */
int fmp4_index_read(const char *path, struct fmp4_index *out);
void fmp4_index_free(struct fmp4_index *ix);

#endif
