/* stream_params: the parameter sets a video keyframe carries in band
 * (H.264 SPS/PPS, H.265 VPS/SPS/PPS), so the recorder notices a camera that
 * changed its stream (resolution, profile) and starts a segment whose init
 * data says what the frames really are.  Cameras repeat them before every
 * IDR; one that sends them only in the SDP is never seen changing, which is
 * also what a player would see. */
#ifndef MWR_WORKER_STREAM_PARAMS_H
#define MWR_WORKER_STREAM_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libavcodec/avcodec.h>

#define STREAM_PARAMS_MAX 4096 /* bytes of parameter sets kept; larger sets are not compared */

/* The parameter-set NALs of an Annex-B access unit, concatenated with
 * 4-byte start codes into out (the form the mp4 muxer takes as extradata).
 * Returns their length: 0 when the AU has none or not a whole set (H.264:
 * an SPS and a PPS; H.265: VPS, SPS, PPS: one lost to UDP describes
 * nothing), -ENOBUFS when over cap. */
int stream_params_extract(const uint8_t *au, size_t len, bool hevc, uint8_t *out, size_t cap);

/* The picture size the keyframe au (with its parameter sets) decodes to,
 * read by libavcodec's parser.  0 or -EINVAL (no size found), -ENOMEM. */
int stream_params_size(enum AVCodecID codec, const uint8_t *au, size_t len, int *width, int *height);

#endif
