/* Unit tests of worker/flac_enc.c: every frame it codes is one libavcodec's
 * FLAC decoder (which checks both CRCs) gives back sample for sample. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <libavcodec/avcodec.h>
#include <libavutil/channel_layout.h>

#include "worker/flac_enc.h"

static AVCodecContext *decoder(const struct flac_enc *f)
{
        const AVCodec *c = avcodec_find_decoder(AV_CODEC_ID_FLAC);
        AVCodecContext *d = avcodec_alloc_context3(c);

        d->extradata = av_mallocz(FLAC_STREAMINFO_BYTES + AV_INPUT_BUFFER_PADDING_SIZE);
        memcpy(d->extradata, f->streaminfo, FLAC_STREAMINFO_BYTES);
        d->extradata_size = FLAC_STREAMINFO_BYTES;
        d->err_recognition = AV_EF_CRCCHECK | AV_EF_EXPLODE;
        assert_int_equal(avcodec_open2(d, c, NULL), 0);
        return d;
}

/* Codes x (n samples per channel) and decodes it back: the same samples. */
static size_t round_trip(struct flac_enc *f, AVCodecContext *d, const int16_t *x, int n)
{
        uint8_t buf[FLAC_ENC_MAX_BLOCK * 4 + 64];
        AVPacket *p = av_packet_alloc();
        AVFrame *fr = av_frame_alloc();
        int len = flac_enc_frame(f, x, n, buf, sizeof(buf));

        assert_true(len > 0);
        assert_true((size_t)len <= flac_enc_frame_max(f, n));
        assert_int_equal(av_new_packet(p, len), 0);
        memcpy(p->data, buf, (size_t)len);
        assert_int_equal(avcodec_send_packet(d, p), 0);
        assert_int_equal(avcodec_receive_frame(d, fr), 0);
        assert_int_equal(fr->nb_samples, n);
        assert_int_equal(fr->sample_rate, f->rate);
        for (int c = 0; c < f->channels; c++)
                for (int i = 0; i < n; i++) {
                        int16_t got = fr->format == AV_SAMPLE_FMT_S16P ? ((int16_t *)fr->data[c])[i]
                                                                       : ((int16_t *)fr->data[0])[i * f->channels + c];
                        if (got != x[i * f->channels + c])
                                fail_msg("channel %d sample %d of %d: %d, want %d", c, i, n, got,
                                         x[i * f->channels + c]);
                }
        av_frame_free(&fr);
        av_packet_free(&p);
        return (size_t)len;
}

static uint32_t rng = 12345;
static int16_t noise(void)
{
        rng = rng * 1664525u + 1013904223u;
        return (int16_t)(rng >> 16);
}

static void test_signals_round_trip(void **state)
{
        static int16_t x[FLAC_ENC_MAX_BLOCK];
        struct flac_enc f;
        AVCodecContext *d;
        size_t tone_bytes = 0;

        assert_int_equal(flac_enc_init(&f, 8000, 1), 0);
        d = decoder(&f);
        for (int i = 0; i < 160; i++)
                x[i] = 0;
        round_trip(&f, d, x, 160); /* silence */
        for (int i = 0; i < 160; i++)
                x[i] = (int16_t)(i * 409 - 32768); /* full-scale ramp */
        round_trip(&f, d, x, 160);
        for (int k = 0; k < 20; k++) { /* speech-like tones: smaller than raw */
                for (int i = 0; i < 160; i++)
                        x[i] = (int16_t)(6000 * __builtin_sin((k * 160 + i) * 0.3) + 3000 * __builtin_sin((k * 160 + i) * 0.07));
                tone_bytes += round_trip(&f, d, x, 160);
        }
        assert_true(tone_bytes < 20 * 160 * 2 * 3 / 4);
        for (int i = 0; i < 160; i++)
                x[i] = noise(); /* white noise: verbatim is best */
        round_trip(&f, d, x, 160);
        for (int i = 0; i < 160; i++)
                x[i] = i & 1 ? 32767 : -32768; /* the largest residuals */
        round_trip(&f, d, x, 160);
        avcodec_free_context(&d);
}

/* Short frames (before a hole), one sample, the largest, and numbers that
 * need the long sample-number codings. */
static void test_any_block_size(void **state)
{
        static const int sizes[] = { 1, 2, 3, 15, 16, 17, 100, 255, 256, 257, 1000, FLAC_ENC_MAX_BLOCK };
        static int16_t x[FLAC_ENC_MAX_BLOCK];
        struct flac_enc f;
        AVCodecContext *d;
        uint8_t buf[64];

        assert_int_equal(flac_enc_init(&f, 8000, 1), 0);
        d = decoder(&f);
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
                for (int i = 0; i < sizes[s]; i++)
                        x[i] = (int16_t)(i * 37 - 500);
                round_trip(&f, d, x, sizes[s]);
        }
        f.next_sample = UINT64_C(0x7fffff00); /* six bytes of number, then it wraps to one */
        round_trip(&f, d, x, 160);
        round_trip(&f, d, x, 160);
        assert_int_equal(flac_enc_frame(&f, x, 0, buf, sizeof(buf)), -EINVAL);
        assert_int_equal(flac_enc_frame(&f, x, FLAC_ENC_MAX_BLOCK + 1, buf, sizeof(buf)), -EINVAL);
        assert_int_equal(flac_enc_frame(&f, x, 160, buf, 8), -ENOBUFS);
        avcodec_free_context(&d);
}

static void test_rates_and_stereo(void **state)
{
        static const int rates[] = { 8000, 11025, 16000, 44100, 48000, 96000, 12000, 64000 };
        static int16_t x[2 * 960];
        struct flac_enc f;

        for (size_t r = 0; r < sizeof(rates) / sizeof(rates[0]); r++) {
                AVCodecContext *d;

                assert_int_equal(flac_enc_init(&f, rates[r], 2), 0);
                d = decoder(&f);
                for (int i = 0; i < 2 * 960; i++)
                        x[i] = (int16_t)(i & 1 ? noise() / 8 : i * 11);
                round_trip(&f, d, x, 960);
                avcodec_free_context(&d);
        }
        assert_int_equal(flac_enc_init(&f, 8000, 3), -EINVAL);
        assert_int_equal(flac_enc_init(&f, 0, 1), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_signals_round_trip),
                cmocka_unit_test(test_any_block_size),
                cmocka_unit_test(test_rates_and_stereo),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
