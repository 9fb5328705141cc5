/* fmp4_index: where the fragments of a fragmented MP4 file are (top-level
 * box walk, no decoding), so an HLS playlist can address the init section
 * and each fragment of a segment file by byte range. */
#ifndef MWR_COMMON_FMP4_INDEX_H
#define MWR_COMMON_FMP4_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a fragment holds (the recorder writes it so, playlists and exports
 * rely on it): every keyframe starts a fragment, and a fragment holds the
 * sound that starts from FMP4_AUDIO_CUT_US after its keyframe is shown up
 * to that long after the next one is (B-frames: not its decode time; a
 * fragment cut between keyframes, after a second of media, cuts at its
 * first frame's decode time).  Two instances must file every sound packet in
 * the same fragment (a playlist switches copies at a keyframe), but each
 * maps the camera's RTP clocks to time through its own sender reports, a
 * sample or so apart (125 us at 8 kHz); many cameras start a sound packet
 * exactly on a frame's time, so a cut exactly at the keyframe is a coin toss
 * per instance.  2 ms is off the grid of common packet and frame lengths
 * (20, 64 and 21.3 ms sound; 25 and 30 fps): 0.67 ms or more from any packet
 * start such a camera makes.  After the keyframe, not before it: the sound
 * of a segment's first fragment never starts before the segment.  A
 * recording's very first fragment (nothing before it) keeps its first 2 ms:
 * sound is not dropped for the rule's sake. */
#define FMP4_AUDIO_CUT_US 2000

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
