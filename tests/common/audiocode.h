/* audiocode: the sound the camera simulator sends, and the frame judge reads
 * back.  Shared by tests/camsim and tests/framecheck, like framecode.h.
 *
 * The signal is a pure function of the sample's number since camsim started
 * (sample n is due at start + n / rate, the same clock as video frame n at
 * start + n / fps), so any stretch of decoded audio says which camera time it
 * holds: the judge finds a hole, an overlap or an A/V offset of any size from
 * the samples themselves, whatever the timestamps say.
 *
 * Every AUDIOCODE_BLOCK_MS block carries two tones out of AUDIOCODE_TONES,
 * chosen by a hash of the block number, with short raised-cosine edges so a
 * lossy codec (AAC) keeps them.  Tones lie in 500..3500 Hz: G.711 at 8 kHz
 * and AAC at 16 or 48 kHz all carry them.  A window of a few blocks matches
 * the reference at exactly one offset (120 tone pairs a block). */
#ifndef MWR_TESTS_AUDIOCODE_H
#define MWR_TESTS_AUDIOCODE_H

#include <stddef.h>
#include <stdint.h>

#define AUDIOCODE_BLOCK_MS 10
#define AUDIOCODE_TONES 16
#define AUDIOCODE_TONE_LOW_HZ 500
#define AUDIOCODE_TONE_STEP_HZ 200
#define AUDIOCODE_EDGE_MS 1         /* raised-cosine fade at each block edge */
#define AUDIOCODE_AMPLITUDE 6000    /* per tone, of 32767: two tones peak at -8.7 dBFS */

/* Samples in one block at rate (rate must be a multiple of 100). */
static inline int audiocode_block_samples(int rate)
{
        return rate * AUDIOCODE_BLOCK_MS / 1000;
}

/* The two tone indexes (0 .. AUDIOCODE_TONES-1, distinct) of block b. */
void audiocode_tones(uint64_t block, int *t1, int *t2);

/* Sample n (n = 0 at camsim's start) as a 16-bit value. */
int16_t audiocode_sample(uint64_t n, int rate);

/* Fill out[0..count) with samples first .. first+count-1. */
void audiocode_fill(int16_t *out, size_t count, uint64_t first, int rate);

#endif
