/* Unit tests of worker/audio_transcode.c: G.711 made FLAC without loss,
 * with the camera time of every output packet, across a hole. */
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

#include "worker/audio_transcode.h"

#define RATE 8000
#define PKT_SAMPLES 160 /* 20 ms */
#define T0 INT64_C(1795540000000000)
#define MAX_OUT 512

struct out {
        int n;
        int64_t t_us[MAX_OUT], dur[MAX_OUT];
        int16_t pcm[MAX_OUT * PKT_SAMPLES * 2];
        int pcm_n;
        AVCodecContext *flac;
        AVFrame *f;
};

/* Decodes each FLAC packet as it comes, so the test can compare samples. */
static int on_packet(AVPacket *pkt, int64_t t_us, void *ctx)
{
        struct out *o = ctx;

        assert_true(o->n < MAX_OUT);
        o->t_us[o->n] = t_us;
        o->dur[o->n++] = pkt->duration;
        assert_int_equal(avcodec_send_packet(o->flac, pkt), 0);
        while (avcodec_receive_frame(o->flac, o->f) == 0) {
                const int16_t *s = (const int16_t *)o->f->data[0];
                for (int i = 0; i < o->f->nb_samples; i++)
                        o->pcm[o->pcm_n++] = o->f->format == AV_SAMPLE_FMT_S16 ? s[i]
                                                                               : (int16_t)(((int32_t *)o->f->data[0])[i] >> 16);
        }
        return 0;
}

static void out_init(struct out *o, const AVCodecParameters *par)
{
        const AVCodec *c = avcodec_find_decoder(AV_CODEC_ID_FLAC);

        memset(o, 0, sizeof(*o));
        o->flac = avcodec_alloc_context3(c);
        assert_int_equal(avcodec_parameters_to_context(o->flac, par), 0);
        assert_int_equal(avcodec_open2(o->flac, c, NULL), 0);
        o->f = av_frame_alloc();
}

static void out_free(struct out *o)
{
        avcodec_free_context(&o->flac);
        av_frame_free(&o->f);
}

/* A-law of a ramp, and what it decodes to (G.711 is not lossless itself). */
static void alaw_packet(AVCodecContext *enc, AVCodecContext *dec, int k, AVPacket *pkt, int16_t *decoded)
{
        AVFrame *f = av_frame_alloc();

        f->format = AV_SAMPLE_FMT_S16;
        f->nb_samples = PKT_SAMPLES;
        f->sample_rate = RATE;
        av_channel_layout_default(&f->ch_layout, 1);
        assert_int_equal(av_frame_get_buffer(f, 0), 0);
        for (int i = 0; i < PKT_SAMPLES; i++)
                ((int16_t *)f->data[0])[i] = (int16_t)(((k * PKT_SAMPLES + i) * 97) % 20000 - 10000);
        assert_int_equal(avcodec_send_frame(enc, f), 0);
        assert_int_equal(avcodec_receive_packet(enc, pkt), 0);
        av_frame_unref(f);
        assert_int_equal(avcodec_send_packet(dec, pkt), 0);
        assert_int_equal(avcodec_receive_frame(dec, f), 0);
        memcpy(decoded, f->data[0], PKT_SAMPLES * sizeof(int16_t));
        av_frame_free(&f);
}

static void codecs(AVCodecContext **enc, AVCodecContext **dec, AVCodecParameters *par)
{
        const AVCodec *e = avcodec_find_encoder(AV_CODEC_ID_PCM_ALAW), *d = avcodec_find_decoder(AV_CODEC_ID_PCM_ALAW);

        *enc = avcodec_alloc_context3(e);
        (*enc)->sample_fmt = AV_SAMPLE_FMT_S16;
        (*enc)->sample_rate = RATE;
        av_channel_layout_default(&(*enc)->ch_layout, 1);
        assert_int_equal(avcodec_open2(*enc, e, NULL), 0);
        assert_int_equal(avcodec_parameters_from_context(par, *enc), 0);
        *dec = avcodec_alloc_context3(d);
        assert_int_equal(avcodec_parameters_to_context(*dec, par), 0);
        assert_int_equal(avcodec_open2(*dec, d, NULL), 0);
}

static void test_g711_becomes_flac_losslessly(void **state)
{
        AVCodecParameters *par = avcodec_parameters_alloc();
        AVCodecContext *enc, *dec;
        struct audio_transcode *x;
        AVPacket *pkt = av_packet_alloc();
        static int16_t want[100 * PKT_SAMPLES];
        static struct out o;

        codecs(&enc, &dec, par);
        assert_true(audio_transcode_wanted(par, false));
        assert_false(audio_transcode_wanted(par, true));
        assert_int_equal(audio_transcode_new(&x, par, (AVRational){ 1, RATE }), 0);
        assert_int_equal(audio_transcode_params(x)->codec_id, AV_CODEC_ID_FLAC);
        assert_int_equal(audio_transcode_time_base(x).den, RATE);
        out_init(&o, audio_transcode_params(x));
        for (int k = 0; k < 100; k++) {
                alaw_packet(enc, dec, k, pkt, want + k * PKT_SAMPLES);
                assert_int_equal(audio_transcode_feed(x, pkt, T0 + k * 20000, on_packet, &o), 0);
                av_packet_unref(pkt);
        }
        assert_int_equal(audio_transcode_flush(x, on_packet, &o), 0);
        assert_int_equal(o.n, 100);
        for (int k = 0; k < o.n; k++) {
                assert_true(o.t_us[k] == T0 + k * 20000);
                assert_int_equal(o.dur[k], PKT_SAMPLES);
        }
        assert_int_equal(o.pcm_n, 100 * PKT_SAMPLES);
        assert_memory_equal(o.pcm, want, sizeof(want));
        assert_true(audio_transcode_errors(x) == 0);
        out_free(&o);
        audio_transcode_free(x);
        avcodec_free_context(&enc);
        avcodec_free_context(&dec);
        avcodec_parameters_free(&par);
        av_packet_free(&pkt);
}

/* A lost packet: no output frame spans the hole, and every frame has the
 * camera time of its first sample. */
static void test_a_hole_ends_a_frame(void **state)
{
        AVCodecParameters *par = avcodec_parameters_alloc();
        AVCodecContext *enc, *dec;
        struct audio_transcode *x;
        AVPacket *pkt = av_packet_alloc();
        int16_t dummy[PKT_SAMPLES];
        static struct out o;
        int64_t covered = 0;

        codecs(&enc, &dec, par);
        assert_int_equal(audio_transcode_new(&x, par, (AVRational){ 1, RATE }), 0);
        out_init(&o, audio_transcode_params(x));
        for (int k = 0; k < 30; k++) {
                alaw_packet(enc, dec, k, pkt, dummy);
                if (k != 11) /* lost */
                        assert_int_equal(audio_transcode_feed(x, pkt, T0 + k * 20000, on_packet, &o), 0);
                av_packet_unref(pkt);
        }
        assert_int_equal(audio_transcode_flush(x, on_packet, &o), 0);
        for (int k = 0; k < o.n; k++) {
                int64_t end = o.t_us[k] + o.dur[k] * 1000000 / RATE;
                /* no frame covers [T0 + 220 ms, T0 + 240 ms) */
                assert_false(o.t_us[k] < T0 + 240000 && end > T0 + 220000);
                if (k > 0 && o.t_us[k] != T0 + 240000)
                        assert_true(o.t_us[k] == o.t_us[k - 1] + o.dur[k - 1] * 1000000 / RATE);
                covered += o.dur[k];
        }
        assert_int_equal(covered, 29 * PKT_SAMPLES);
        out_free(&o);
        audio_transcode_free(x);
        avcodec_free_context(&enc);
        avcodec_free_context(&dec);
        avcodec_parameters_free(&par);
        av_packet_free(&pkt);
}

static void test_garbage_is_counted_not_fatal(void **state)
{
        AVCodecParameters *par = avcodec_parameters_alloc();
        struct audio_transcode *x;
        AVPacket *pkt = av_packet_alloc();
        static struct out o;

        par->codec_type = AVMEDIA_TYPE_AUDIO;
        par->codec_id = AV_CODEC_ID_ADPCM_G726;
        par->sample_rate = RATE;
        par->bits_per_coded_sample = 4;
        av_channel_layout_default(&par->ch_layout, 1);
        assert_int_equal(audio_transcode_new(&x, par, (AVRational){ 1, RATE }), 0);
        out_init(&o, audio_transcode_params(x));
        assert_int_equal(av_new_packet(pkt, 0), 0); /* an empty packet: the decoder refuses it */
        assert_int_equal(audio_transcode_feed(x, pkt, T0, on_packet, &o), 0);
        out_free(&o);
        audio_transcode_free(x);
        avcodec_parameters_free(&par);
        av_packet_free(&pkt);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_g711_becomes_flac_losslessly),
                cmocka_unit_test(test_a_hole_ends_a_frame),
                cmocka_unit_test(test_garbage_is_counted_not_fatal),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
