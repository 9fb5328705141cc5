/* audio_transcode: sound the MP4 muxer does not take (G.711 A-law/u-law,
 * and any other codec libavcodec decodes) made recordable without loss:
 * decoded to 16-bit PCM (libavcodec) and coded as FLAC (worker/flac_enc.c;
 * lossless; "fLaC" in MP4, which browsers play; Debian's ffmpeg 5.1 flags
 * FLAC-in-MP4 experimental, so the segment writer allows it).  Input
 * packets carry camera time; output packets get the camera time of their
 * first sample.  FLAC frames are FLAC_FRAME_MS long; a hole in the input (a
 * lost packet) ends a frame early, so no output frame spans a hole.  One
 * per camera session, on the camera's thread. */
#ifndef MWR_WORKER_AUDIO_TRANSCODE_H
#define MWR_WORKER_AUDIO_TRANSCODE_H

#include <stdbool.h>
#include <stdint.h>

#include <libavcodec/avcodec.h>

#define FLAC_FRAME_MS 20

struct audio_transcode;

/* Would this codec be transcoded (decodable, not muxable as it is)? */
bool audio_transcode_wanted(const AVCodecParameters *in, bool muxable);

/* 0, -ENOSYS (no decoder for in), -ENOMEM, or a negative errno from libav. */
int audio_transcode_new(struct audio_transcode **out, const AVCodecParameters *in, AVRational in_tb);
void audio_transcode_free(struct audio_transcode *x);

/* The output stream: FLAC codec parameters and its time base (1/rate). */
const AVCodecParameters *audio_transcode_params(const struct audio_transcode *x);
AVRational audio_transcode_time_base(const struct audio_transcode *x);

/* Called for each output packet: pts/dts in the output time base, pkt
 * borrowed; t_us is the camera time of its first sample.  Nonzero stops. */
typedef int (*audio_transcode_cb)(AVPacket *pkt, int64_t t_us, void *ctx);

/* Feeds one input packet whose first sample is at camera time t_us.
 * Undecodable input is skipped (counted); 0 or the callback's value. */
int audio_transcode_feed(struct audio_transcode *x, const AVPacket *pkt, int64_t t_us, audio_transcode_cb cb,
                         void *ctx);
/* Encodes what is buffered (session end, segment close). */
int audio_transcode_flush(struct audio_transcode *x, audio_transcode_cb cb, void *ctx);

uint64_t audio_transcode_errors(const struct audio_transcode *x);

#endif
