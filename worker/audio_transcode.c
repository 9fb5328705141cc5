/* audio_transcode: decode, FIFO of 16-bit samples, FLAC; see the header.
 * The FIFO holds the samples of the frame being built and the camera time
 * of its first sample; a decoded frame that does not follow on (more than
 * FOLLOW_SLACK_US off) closes the encoder's run with a short last frame and
 * starts a new run, since FLAC takes a short frame only as the last. */
#include "worker/audio_transcode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/channel_layout.h>

#define FOLLOW_SLACK_US 2000 /* RTP timestamps are exact; 2 ms covers rounding */
#define MAX_CHANNELS 2

struct audio_transcode {
        AVCodecContext *dec, *enc;
        AVCodecParameters *par; /* of the output, kept for the segment writer */
        AVFrame *in, *out;
        AVPacket *pkt;
        int rate, channels, frame_size;
        int16_t *fifo;          /* frame_size * channels */
        int fifo_n;             /* samples per channel in the fifo */
        int64_t fifo_t_us;      /* camera time of the fifo's first sample */
        int64_t run_t_us;       /* camera time of the encoder run's sample 0 */
        int64_t run_samples;    /* samples sent to the encoder in this run */
        int last_frame_n;       /* samples of the frame sent last: FLAC gives a packet per frame */
        uint64_t errors;
};

static int av_err(int e)
{
        return e < 0 && e > -4096 ? e : -EIO;
}

bool audio_transcode_wanted(const AVCodecParameters *in, bool muxable)
{
        return !muxable && in->codec_type == AVMEDIA_TYPE_AUDIO && avcodec_find_decoder(in->codec_id) != NULL &&
               in->sample_rate > 0;
}

static int encoder_open(struct audio_transcode *x)
{
        const AVCodec *c = avcodec_find_encoder(AV_CODEC_ID_FLAC);
        int e;

        if (!c)
                return -ENOSYS;
        avcodec_free_context(&x->enc);
        if (!(x->enc = avcodec_alloc_context3(c)))
                return -ENOMEM;
        x->enc->sample_fmt = AV_SAMPLE_FMT_S16;
        x->enc->sample_rate = x->rate;
        av_channel_layout_default(&x->enc->ch_layout, x->channels);
        x->enc->time_base = (AVRational){ 1, x->rate };
        x->enc->frame_size = x->frame_size;
        x->enc->compression_level = 2; /* 8 kHz speech: higher levels buy little */
        if ((e = avcodec_open2(x->enc, c, NULL)) < 0)
                return av_err(e);
        x->run_samples = 0;
        return 0;
}

int audio_transcode_new(struct audio_transcode **out, const AVCodecParameters *in, AVRational in_tb)
{
        const AVCodec *d = avcodec_find_decoder(in->codec_id);
        struct audio_transcode *x;
        int e;

        if (!d)
                return -ENOSYS;
        if (!(x = calloc(1, sizeof(*x))))
                return -ENOMEM;
        x->rate = in->sample_rate;
        x->channels = in->ch_layout.nb_channels > 0 ? in->ch_layout.nb_channels : 1;
        if (x->channels > MAX_CHANNELS)
                x->channels = MAX_CHANNELS;
        x->frame_size = x->rate * FLAC_FRAME_MS / 1000;
        e = -ENOMEM;
        if (!(x->dec = avcodec_alloc_context3(d)) || !(x->in = av_frame_alloc()) || !(x->out = av_frame_alloc()) ||
            !(x->pkt = av_packet_alloc()) || !(x->par = avcodec_parameters_alloc()) ||
            !(x->fifo = calloc((size_t)x->frame_size * (size_t)x->channels, sizeof(int16_t))))
                goto fail;
        if ((e = avcodec_parameters_to_context(x->dec, in)) < 0)
                goto fail;
        x->dec->pkt_timebase = in_tb;
        if ((e = avcodec_open2(x->dec, d, NULL)) < 0 || (e = encoder_open(x)) < 0 ||
            (e = avcodec_parameters_from_context(x->par, x->enc)) < 0)
                goto fail;
        *out = x;
        return 0;
fail:
        audio_transcode_free(x);
        return av_err(e);
}

void audio_transcode_free(struct audio_transcode *x)
{
        if (!x)
                return;
        avcodec_free_context(&x->dec);
        avcodec_free_context(&x->enc);
        avcodec_parameters_free(&x->par);
        av_frame_free(&x->in);
        av_frame_free(&x->out);
        av_packet_free(&x->pkt);
        free(x->fifo);
        free(x);
}

const AVCodecParameters *audio_transcode_params(const struct audio_transcode *x)
{
        return x->par;
}

AVRational audio_transcode_time_base(const struct audio_transcode *x)
{
        return (AVRational){ 1, x->rate };
}

uint64_t audio_transcode_errors(const struct audio_transcode *x)
{
        return x->errors;
}

static int64_t samples_us(const struct audio_transcode *x, int64_t n)
{
        return n * 1000000 / x->rate;
}

/* Every packet the encoder has ready, to cb with its camera time. */
static int drain(struct audio_transcode *x, audio_transcode_cb cb, void *ctx)
{
        int e;

        while ((e = avcodec_receive_packet(x->enc, x->pkt)) >= 0) {
                int r;

                if (x->pkt->size == 0) { /* the final STREAMINFO as side data: nothing to record */
                        av_packet_unref(x->pkt);
                        continue;
                }
                if (x->pkt->duration <= 0) /* the muxer needs it: the last sample's end */
                        x->pkt->duration = x->last_frame_n;
                r = cb(x->pkt, x->run_t_us + samples_us(x, x->pkt->pts), ctx);

                av_packet_unref(x->pkt);
                if (r)
                        return r;
        }
        return e == AVERROR(EAGAIN) || e == AVERROR_EOF ? 0 : av_err(e);
}

/* Sends the fifo (full, or short when `last`) as one frame. */
static int send_fifo(struct audio_transcode *x, bool last, audio_transcode_cb cb, void *ctx)
{
        int e;

        if (x->fifo_n == 0)
                return 0;
        if (x->run_samples == 0)
                x->run_t_us = x->fifo_t_us;
        av_frame_unref(x->out);
        x->out->format = AV_SAMPLE_FMT_S16;
        x->out->sample_rate = x->rate;
        x->out->nb_samples = x->fifo_n;
        av_channel_layout_default(&x->out->ch_layout, x->channels);
        if ((e = av_frame_get_buffer(x->out, 0)) < 0)
                return av_err(e);
        memcpy(x->out->data[0], x->fifo, (size_t)x->fifo_n * (size_t)x->channels * sizeof(int16_t));
        x->out->pts = x->run_samples;
        x->run_samples += x->fifo_n;
        x->last_frame_n = x->fifo_n;
        x->fifo_n = 0;
        if ((e = avcodec_send_frame(x->enc, x->out)) < 0)
                return av_err(e);
        if ((e = drain(x, cb, ctx)) != 0)
                return e;
        if (last) { /* a short frame ends the run: drain and start a new one */
                avcodec_send_frame(x->enc, NULL);
                if ((e = drain(x, cb, ctx)) != 0)
                        return e;
                return encoder_open(x);
        }
        return 0;
}

static int16_t sample_s16(const AVFrame *f, int ch, int i)
{
        int chans = f->ch_layout.nb_channels;
        double v;

        switch (f->format) {
        case AV_SAMPLE_FMT_S16: return ((const int16_t *)f->data[0])[i * chans + ch];
        case AV_SAMPLE_FMT_S16P: return ((const int16_t *)f->data[ch])[i];
        case AV_SAMPLE_FMT_S32: return (int16_t)(((const int32_t *)f->data[0])[i * chans + ch] >> 16);
        case AV_SAMPLE_FMT_S32P: return (int16_t)(((const int32_t *)f->data[ch])[i] >> 16);
        case AV_SAMPLE_FMT_FLT: v = ((const float *)f->data[0])[i * chans + ch]; break;
        case AV_SAMPLE_FMT_FLTP: v = ((const float *)f->data[ch])[i]; break;
        case AV_SAMPLE_FMT_U8: return (int16_t)((f->data[0][i * chans + ch] - 128) << 8);
        default: return 0;
        }
        v = v > 1 ? 1 : v < -1 ? -1 : v;
        return (int16_t)(v * 32767);
}

/* One decoded frame starting at camera time t_us into the fifo. */
static int take_frame(struct audio_transcode *x, const AVFrame *f, int64_t t_us, audio_transcode_cb cb, void *ctx)
{
        int chans = f->ch_layout.nb_channels > 0 ? f->ch_layout.nb_channels : 1, e;

        if (x->fifo_n > 0) {
                int64_t expect = x->fifo_t_us + samples_us(x, x->fifo_n);
                if (t_us > expect + FOLLOW_SLACK_US || t_us < expect - FOLLOW_SLACK_US)
                        if ((e = send_fifo(x, true, cb, ctx)) != 0)
                                return e;
        } else if (x->run_samples > 0 && llabs(t_us - (x->run_t_us + samples_us(x, x->run_samples))) > FOLLOW_SLACK_US) {
                /* a hole right at a frame boundary: the run ends here too */
                avcodec_send_frame(x->enc, NULL);
                if ((e = drain(x, cb, ctx)) != 0 || (e = encoder_open(x)) != 0)
                        return e;
        }
        for (int i = 0; i < f->nb_samples; i++) {
                if (x->fifo_n == 0)
                        x->fifo_t_us = t_us + samples_us(x, i);
                for (int c = 0; c < x->channels; c++)
                        x->fifo[x->fifo_n * x->channels + c] = sample_s16(f, c < chans ? c : 0, i);
                if (++x->fifo_n == x->frame_size && (e = send_fifo(x, false, cb, ctx)) != 0)
                        return e;
        }
        return 0;
}

int audio_transcode_feed(struct audio_transcode *x, const AVPacket *pkt, int64_t t_us, audio_transcode_cb cb,
                         void *ctx)
{
        int64_t at = t_us;
        int e = avcodec_send_packet(x->dec, pkt);

        if (e < 0) {
                x->errors++;
                return 0;
        }
        while ((e = avcodec_receive_frame(x->dec, x->in)) >= 0) {
                int r = take_frame(x, x->in, at, cb, ctx);

                at += samples_us(x, x->in->nb_samples);
                av_frame_unref(x->in);
                if (r)
                        return r;
        }
        if (e != AVERROR(EAGAIN) && e != AVERROR_EOF)
                x->errors++;
        return 0;
}

int audio_transcode_flush(struct audio_transcode *x, audio_transcode_cb cb, void *ctx)
{
        return send_fifo(x, true, cb, ctx);
}
