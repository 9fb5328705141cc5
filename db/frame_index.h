/* frame_index: the compact per-frame index of a segment (time offset, size,
 * keyframe flag, short payload hash), stored as a blob next to its row.
 * About 3.3 bytes per frame at 25 fps, mostly size and hash; any input
 * round-trips exactly (non-monotonic offsets, zero or huge sizes), and the
 * decoder refuses corrupt or truncated blobs with -EBADMSG, never reading
 * out of bounds. */
#ifndef MWR_DB_FRAME_INDEX_H
#define MWR_DB_FRAME_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FI_FORMAT_VERSION 1      /* first byte of every blob */
#define FI_HASH_BITS 12          /* with camera time, enough to match frames across recorders */
#define FI_HASH_MASK ((1u << FI_HASH_BITS) - 1)
#define FI_MAX_FRAMES (1u << 16) /* 18 min at 60 fps, 43 min at 25 fps: far above a segment */

struct fi_frame {
        uint64_t offset_us; /* presentation time minus segment start (mod 2^64) */
        uint32_t size;      /* payload bytes */
        bool key;
        uint32_t hash; /* truncated hash, <= FI_HASH_MASK (see fi_hash_truncate) */
};

/* ---- private to frame_index.c; here so an encoder can live on the stack ---- */

struct fi_rice { /* adaptive Rice parameter statistics of one context */
        uint64_t sum;
        uint32_t count;
};

struct fi_model { /* what encoder and decoder predict from; they evolve it in step */
        uint64_t grid_us;  /* predicted offset: last anchor + k * frame_us */
        uint64_t prev_us;  /* offset of the previous frame */
        uint64_t frame_us; /* nominal frame duration */
        uint32_t count;    /* frames seen */
        uint8_t misses;    /* consecutive frames off the grid */
        bool seen_key;
        uint32_t since_key; /* frames since the last keyframe */
        uint32_t gop;       /* distance between the last two keyframes, 0: unknown */
        struct fi_rice run_ctx, time_ctx;
        /* size part: advanced by a second pass in the decoder */
        uint8_t p_seen;   /* non-key frames seen, up to 8 */
        bool size_seen_key;
        uint64_t p_mean8; /* 8 x running mean of non-key sizes */
        uint32_t last_key_size;
        struct fi_rice p_ctx, key_ctx;
};

struct fi_bits {
        uint8_t *data; /* MSB first, zero beyond len_bits */
        size_t cap;    /* bytes */
        size_t len_bits;
};

struct fi_encoder {
        struct fi_model model;
        struct fi_bits ctrl;    /* runs of predicted frames and what the others missed */
        struct fi_bits payload; /* sizes and hashes */
        uint32_t run;           /* predicted frames not yet written to ctrl */
        bool run_has_local, run_local; /* the run's first frame follows a miss */
        struct fi_bits out;     /* last blob built by fi_encoder_data */
        size_t n_frames;
};

/* ---- API ---------------------------------------------------------------------- */

void fi_encoder_init(struct fi_encoder *enc);

/* Append one frame (decode order).  0, -EINVAL (hash wider than
 * FI_HASH_BITS), -E2BIG (FI_MAX_FRAMES reached), -ENOMEM.  On error the
 * encoder is unchanged. */
int fi_encoder_add(struct fi_encoder *enc, const struct fi_frame *f);

/* The blob of all frames added so far; may be called again after more adds.
 * *data belongs to the encoder and is valid until its next call.
 * 0 or -ENOMEM. */
int fi_encoder_data(struct fi_encoder *enc, const uint8_t **data, size_t *len);

void fi_encoder_free(struct fi_encoder *enc);

/* Decode a blob into a malloc'ed array the caller frees (NULL when *n is 0).
 * 0, -EBADMSG (wrong version, corrupt, truncated or trailing bytes),
 * -ENOMEM. */
int fi_decode(const uint8_t *blob, size_t len, struct fi_frame **frames, size_t *n);

/* The stored FI_HASH_BITS-wide hash of a 64-bit payload hash (mixed first,
 * so a weak 64-bit hash still spreads over all values). */
uint32_t fi_hash_truncate(uint64_t h);

#endif
