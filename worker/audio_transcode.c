/* audio_transcode: decode, a FIFO of 16-bit samples, FLAC frames of
 * FLAC_FRAME_MS (worker/flac_enc.c); see the header.  The FIFO holds the
 * frame being built and the camera time of its first sample; a decoded
 * frame that does not follow on (more than FOLLOW_SLACK_US off) sends the
 * FIFO as a short frame first, so no FLAC frame spans a hole. */
#include "worker/audio_transcode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/channel_layout.h>

#include "worker/flac_enc.h"

#define FOLLOW_SLACK_US 2000 /* RTP timestamps are exact; 2 ms covers rounding */

struct audio_transcode {
        AVCodecContext *dec;
        AVCodecParameters *par; /* of the output, kept for the segment writer */
        AVFrame *in;
        AVPacket *pkt;
        struct flac_enc flac;
        int rate, channels, frame_size;
        int16_t *fifo;          /* frame_size * channels */
        int fifo_n;             /* samples per channel in the fifo */
        int64_t fifo_t_us;      /* camera time of the fifo's first sample */
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

/* The FLAC stream's parameters, as the mp4 muxer wants them (STREAMINFO as
 * extradata, for the dfLa box). */
static int output_params(struct audio_transcode *x)
{
        AVCodecParameters *p = x->par;

        p->codec_type = AVMEDIA_TYPE_AUDIO;
        p->codec_id = AV_CODEC_ID_FLAC;
        p->sample_rate = x->rate;
        p->format = AV_SAMPLE_FMT_S16;
        p->bits_per_raw_sample = 16;
        p->frame_size = x->frame_size;
        av_channel_layout_default(&p->ch_layout, x->channels);
        if (!(p->extradata = av_mallocz(FLAC_STREAMINFO_BYTES + AV_INPUT_BUFFER_PADDING_SIZE)))
                return -ENOMEM;
        memcpy(p->extradata, x->flac.streaminfo, FLAC_STREAMINFO_BYTES);
        p->extradata_size = FLAC_STREAMINFO_BYTES;
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
        if (x->channels > FLAC_ENC_MAX_CHANNELS)
                x->channels = FLAC_ENC_MAX_CHANNELS;
        x->frame_size = x->rate * FLAC_FRAME_MS / 1000;
        if (x->frame_size < 1 || x->frame_size > FLAC_ENC_MAX_BLOCK || flac_enc_init(&x->flac, x->rate, x->channels)) {
                free(x);
                return -EINVAL;
        }
        e = -ENOMEM;
        if (!(x->dec = avcodec_alloc_context3(d)) || !(x->in = av_frame_alloc()) || !(x->pkt = av_packet_alloc()) ||
            !(x->par = avcodec_parameters_alloc()) ||
            !(x->fifo = calloc((size_t)x->frame_size * (size_t)x->channels, sizeof(int16_t))))
                goto fail;
        if ((e = avcodec_parameters_to_context(x->dec, in)) < 0)
                goto fail;
        x->dec->pkt_timebase = in_tb;
        if ((e = avcodec_open2(x->dec, d, NULL)) < 0 || (e = output_params(x)) < 0)
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
        avcodec_parameters_free(&x->par);
        av_frame_free(&x->in);
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

/* The fifo (full, or short before a hole) as one FLAC packet, to cb. */
static int send_fifo(struct audio_transcode *x, audio_transcode_cb cb, void *ctx)
{
        int len, r;

        if (x->fifo_n == 0)
                return 0;
        if (av_new_packet(x->pkt, (int)flac_enc_frame_max(&x->flac, x->fifo_n)) < 0)
                return -ENOMEM;
        len = flac_enc_frame(&x->flac, x->fifo, x->fifo_n, x->pkt->data, (size_t)x->pkt->size);
        if (len < 0) {
                av_packet_unref(x->pkt);
                return len;
        }
        av_shrink_packet(x->pkt, len);
        x->pkt->pts = x->pkt->dts = (int64_t)x->flac.next_sample - x->fifo_n;
        x->pkt->duration = x->fifo_n;
        x->pkt->flags |= AV_PKT_FLAG_KEY;
        x->fifo_n = 0;
        r = cb(x->pkt, x->fifo_t_us, ctx);
        av_packet_unref(x->pkt);
        return r;
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

                if ((t_us > expect + FOLLOW_SLACK_US || t_us < expect - FOLLOW_SLACK_US) &&
                    (e = send_fifo(x, cb, ctx)) != 0) /* a hole: no frame spans it */
                        return e;
        }
        for (int i = 0; i < f->nb_samples; i++) {
                if (x->fifo_n == 0)
                        x->fifo_t_us = t_us + samples_us(x, i);
                for (int c = 0; c < x->channels; c++)
                        x->fifo[x->fifo_n * x->channels + c] = sample_s16(f, c < chans ? c : 0, i);
                if (++x->fifo_n == x->frame_size && (e = send_fifo(x, cb, ctx)) != 0)
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
        return send_fifo(x, cb, ctx);
}
