/* flac_enc: a small FLAC encoder (RFC 9639) for the sound the recorder
 * makes lossless (G.711 decoded to 16-bit PCM).  libavcodec's encoder holds
 * buffers for 8 channels of 65535 samples, zeroed: 6.8 MB resident per
 * camera, for 160 samples of mono at a time.  This one keeps 40 bytes.
 * Each frame is coded on its own (variable blocking strategy: the header
 * carries the number of the frame's first sample, so any block size is
 * valid), each channel as the best of a verbatim subframe and fixed
 * predictors of order 0-2 with one Rice partition.  Pure computation. */
#ifndef MWR_WORKER_FLAC_ENC_H
#define MWR_WORKER_FLAC_ENC_H

#include <stddef.h>
#include <stdint.h>

#define FLAC_STREAMINFO_BYTES 34
#define FLAC_ENC_MAX_CHANNELS 2
#define FLAC_ENC_MAX_BLOCK 4608 /* samples per channel in one frame */

struct flac_enc {
        int rate, channels;
        uint64_t next_sample;    /* number of the next frame's first sample */
        uint8_t streaminfo[FLAC_STREAMINFO_BYTES]; /* for the MP4 sample entry (dfLa) */
};

/* 0, or -EINVAL (rate 1..655350 Hz, 1-2 channels). */
int flac_enc_init(struct flac_enc *f, int rate, int channels);

/* Bytes a frame of n samples per channel can take at most. */
size_t flac_enc_frame_max(const struct flac_enc *f, int n);

/* Codes n samples per channel (interleaved, 1..FLAC_ENC_MAX_BLOCK) as one
 * frame into out; returns its length, -EINVAL or -ENOBUFS. */
int flac_enc_frame(struct flac_enc *f, const int16_t *samples, int n, uint8_t *out, size_t cap);

#endif
