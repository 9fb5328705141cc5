/* audiocode: the simulator's time-coded sound; see audiocode.h. */
#include "audiocode.h"

#include <math.h>

static uint32_t mix32(uint64_t x)
{
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdull;
        x ^= x >> 33;
        x *= 0xc4ceb9fe1a85ec53ull;
        x ^= x >> 33;
        return (uint32_t)x;
}

void audiocode_tones(uint64_t block, int *t1, int *t2)
{
        uint32_t h = mix32(block + 0x9e3779b97f4a7c15ull);
        int a = (int)(h % AUDIOCODE_TONES);
        int b = (int)((h >> 8) % (AUDIOCODE_TONES - 1));

        *t1 = a;
        *t2 = b >= a ? b + 1 : b; /* distinct from a */
}

int16_t audiocode_sample(uint64_t n, int rate)
{
        int len = audiocode_block_samples(rate), edge = rate * AUDIOCODE_EDGE_MS / 1000;
        uint64_t block = n / (uint64_t)len;
        int j = (int)(n % (uint64_t)len), t1, t2;
        double w = 1.0, v;

        audiocode_tones(block, &t1, &t2);
        if (j < edge)
                w = 0.5 - 0.5 * cos(M_PI * (j + 0.5) / edge);
        else if (j >= len - edge)
                w = 0.5 - 0.5 * cos(M_PI * (len - j - 0.5) / edge);
        /* each tone starts at phase 0 with its block: a pure function of n */
        v = sin(2 * M_PI * (AUDIOCODE_TONE_LOW_HZ + AUDIOCODE_TONE_STEP_HZ * t1) * j / rate) +
            sin(2 * M_PI * (AUDIOCODE_TONE_LOW_HZ + AUDIOCODE_TONE_STEP_HZ * t2) * j / rate);
        return (int16_t)lrint(AUDIOCODE_AMPLITUDE * w * v);
}

void audiocode_fill(int16_t *out, size_t count, uint64_t first, int rate)
{
        for (size_t i = 0; i < count; i++)
                out[i] = audiocode_sample(first + i, rate);
}
