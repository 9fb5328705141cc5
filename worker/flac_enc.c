/* flac_enc: FLAC frames, one at a time; see flac_enc.h.  The bit writer
 * writes MSB first into a caller's buffer and notes an overflow instead of
 * writing past it. */
#include "worker/flac_enc.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define RICE_PARAM_MAX 14 /* 4-bit Rice parameters; 15 is the escape code */
#define FIXED_ORDER_MAX 2

struct bits {
        uint8_t *buf;
        size_t cap, pos; /* bytes written */
        uint64_t acc;
        int n;           /* bits in acc */
        bool overflow;
};

static void put(struct bits *b, uint32_t v, int n)
{
        b->acc = (b->acc << n) | (n < 32 ? v & ((UINT32_C(1) << n) - 1) : v);
        b->n += n;
        while (b->n >= 8) {
                b->n -= 8;
                if (b->pos < b->cap)
                        b->buf[b->pos] = (uint8_t)(b->acc >> b->n);
                else
                        b->overflow = true;
                b->pos++;
        }
}

static void align(struct bits *b)
{
        if (b->n)
                put(b, 0, 8 - b->n);
}

static uint8_t crc8(const uint8_t *p, size_t n)
{
        uint8_t c = 0;

        for (size_t i = 0; i < n; i++) {
                c ^= p[i];
                for (int k = 0; k < 8; k++)
                        c = (uint8_t)(c & 0x80 ? (c << 1) ^ 0x07 : c << 1);
        }
        return c;
}

static uint16_t crc16(const uint8_t *p, size_t n)
{
        uint16_t c = 0;

        for (size_t i = 0; i < n; i++) {
                c ^= (uint16_t)(p[i] << 8);
                for (int k = 0; k < 8; k++)
                        c = (uint16_t)(c & 0x8000 ? (c << 1) ^ 0x8005 : c << 1);
        }
        return c;
}

/* Sample rate code, and the bits that follow the header when it says so. */
static int rate_code(int rate, uint32_t *extra, int *extra_bits)
{
        static const int table[] = { 0, 88200, 176400, 192000, 8000, 16000, 22050, 24000,
                                     32000, 44100, 48000, 96000 };

        *extra_bits = 0;
        for (int i = 1; i < 12; i++)
                if (table[i] == rate)
                        return i;
        if (rate % 1000 == 0 && rate / 1000 <= 255) {
                *extra = (uint32_t)(rate / 1000);
                *extra_bits = 8;
                return 12;
        }
        if (rate <= 65535) {
                *extra = (uint32_t)rate;
                *extra_bits = 16;
                return 13;
        }
        *extra = (uint32_t)(rate / 10);
        *extra_bits = 16;
        return 14;
}

int flac_enc_init(struct flac_enc *f, int rate, int channels)
{
        struct bits b;

        if (rate < 1 || rate > 655350 || (rate > 65535 && rate % 10) || channels < 1 ||
            channels > FLAC_ENC_MAX_CHANNELS)
                return -EINVAL;
        memset(f, 0, sizeof(*f));
        f->rate = rate;
        f->channels = channels;
        b = (struct bits){ .buf = f->streaminfo, .cap = sizeof(f->streaminfo) };
        put(&b, 16, 16);                 /* min block size */
        put(&b, FLAC_ENC_MAX_BLOCK, 16); /* max block size */
        put(&b, 0, 24);                  /* min frame size: unknown */
        put(&b, 0, 24);                  /* max frame size: unknown */
        put(&b, (uint32_t)rate, 20);
        put(&b, (uint32_t)channels - 1, 3);
        put(&b, 15, 5);                  /* 16 bits per sample */
        put(&b, 0, 4);                   /* total samples (36 bits): unknown */
        put(&b, 0, 32);
        for (int i = 0; i < 4; i++)      /* MD5 of the audio: not computed */
                put(&b, 0, 32);
        return 0;
}

size_t flac_enc_frame_max(const struct flac_enc *f, int n)
{
        /* header 16 bytes at most, each channel verbatim (+1), CRC-16 */
        return 16 + (size_t)f->channels * ((size_t)n * 2 + 1) + 2;
}

/* The FLAC "UTF-8" coding of a frame's first sample number (36 bits max). */
static void put_coded_number(struct bits *b, uint64_t v)
{
        int extra;

        if (v < 0x80) {
                put(b, (uint32_t)v, 8);
                return;
        }
        extra = v < 0x800 ? 1 : v < 0x10000 ? 2 : v < 0x200000 ? 3 : v < 0x4000000 ? 4 : v < 0x80000000 ? 5 : 6;
        /* lead byte: extra+1 ones, a zero, then the top bits */
        put(b, (UINT32_C(1) << (extra + 1)) - 1, extra + 1);
        if (extra < 6) {
                put(b, 0, 1);
                put(b, (uint32_t)(v >> (6 * extra)), 6 - extra);
        } else {
                put(b, 0, 1);
        }
        for (int i = extra - 1; i >= 0; i--) {
                put(b, 2, 2);
                put(b, (uint32_t)(v >> (6 * i)) & 0x3f, 6);
        }
}

static uint32_t zigzag(int32_t e)
{
        return e < 0 ? ((uint32_t)-(e + 1) << 1) | 1 : (uint32_t)e << 1;
}

static int32_t residual(const int16_t *x, int stride, int i, int order)
{
        int32_t a = x[i * stride];

        if (order == 0)
                return a;
        if (order == 1)
                return a - x[(i - 1) * stride];
        return a - 2 * x[(i - 1) * stride] + x[(i - 2) * stride];
}

/* Bits of the fixed subframe of `order` with its best Rice parameter: the
 * best is within one of log2 of the mean residual, so three are tried. */
static uint64_t fixed_cost(const int16_t *x, int stride, int n, int order, int *param)
{
        uint64_t best = UINT64_MAX, sum = 0;
        int guess = 0;

        for (int i = order; i < n; i++)
                sum += zigzag(residual(x, stride, i, order));
        while (guess < RICE_PARAM_MAX && (sum >> (guess + 1)) >= (uint64_t)(n - order))
                guess++;
        for (int k = guess > 0 ? guess - 1 : 0; k <= guess + 1 && k <= RICE_PARAM_MAX; k++) {
                uint64_t bits = 8 + 16u * (unsigned)order + 2 + 4 + 4;

                for (int i = order; i < n; i++)
                        bits += (zigzag(residual(x, stride, i, order)) >> k) + 1 + (unsigned)k;
                if (bits < best) {
                        best = bits;
                        *param = k;
                }
        }
        return best;
}

static void put_subframe(struct bits *b, const int16_t *x, int stride, int n)
{
        uint64_t best = 8 + 16u * (unsigned)n; /* verbatim */
        int order = -1, param = 0;

        for (int o = 0; o <= FIXED_ORDER_MAX && o < n; o++) {
                int k = 0;
                uint64_t c = fixed_cost(x, stride, n, o, &k);

                if (c < best) {
                        best = c;
                        order = o;
                        param = k;
                }
        }
        if (order < 0) {
                put(b, 0x01 << 1, 8); /* zero bit, VERBATIM (000001), no wasted bits */
                for (int i = 0; i < n; i++)
                        put(b, (uint16_t)x[i * stride], 16);
                return;
        }
        put(b, (uint32_t)(0x08 | order) << 1, 8); /* FIXED, order */
        for (int i = 0; i < order; i++)
                put(b, (uint16_t)x[i * stride], 16);
        put(b, 0, 2);                     /* Rice, 4-bit parameters */
        put(b, 0, 4);                     /* partition order 0: one partition */
        put(b, (uint32_t)param, 4);
        for (int i = order; i < n; i++) {
                uint32_t u = zigzag(residual(x, stride, i, order)), q = u >> param;

                while (q >= 32) {
                        put(b, 0, 32);
                        q -= 32;
                }
                put(b, 1, (int)q + 1); /* q zeros, then a one */
                if (param)
                        put(b, u, param);
        }
}

int flac_enc_frame(struct flac_enc *f, const int16_t *samples, int n, uint8_t *out, size_t cap)
{
        struct bits b = { .buf = out, .cap = cap };
        uint32_t rate_extra = 0;
        int rate_bits, rc = rate_code(f->rate, &rate_extra, &rate_bits);
        uint16_t crc;

        if (n < 1 || n > FLAC_ENC_MAX_BLOCK)
                return -EINVAL;
        put(&b, 0xfff9, 16);                /* sync, reserved, variable block size */
        put(&b, n <= 256 ? 6 : 7, 4);       /* block size: 8 or 16 bits after the number */
        put(&b, (uint32_t)rc, 4);
        put(&b, (uint32_t)f->channels - 1, 4); /* independent channels */
        put(&b, 4, 3);                      /* 16 bits per sample */
        put(&b, 0, 1);
        /* libavcodec's decoder reads at most the 6-byte coding (31 bits):
         * the number wraps there (3 days at 8 kHz; MP4 times place the frames) */
        put_coded_number(&b, f->next_sample & 0x7fffffff);
        put(&b, (uint32_t)n - 1, n <= 256 ? 8 : 16);
        if (rate_bits)
                put(&b, rate_extra, rate_bits);
        if (b.overflow)
                return -ENOBUFS;
        put(&b, crc8(out, b.pos), 8);
        for (int c = 0; c < f->channels; c++)
                put_subframe(&b, samples + c, f->channels, n);
        align(&b);
        if (b.overflow || b.pos + 2 > cap)
                return -ENOBUFS;
        crc = crc16(out, b.pos);
        put(&b, crc, 16);
        f->next_sample += (uint64_t)n;
        return (int)b.pos;
}
