/* probe: see probe.h. */
#include "worker/probe.h"

#include <stdint.h>

#include <libavformat/avformat.h>

#include "common/time_util.h"
#include "worker/rtsp_error.h"

static int deadline_passed(void *opaque)
{
        return now_mono_us() > *(const int64_t *)opaque;
}

static void streams_text(const AVFormatContext *ic, char *buf, size_t len)
{
        size_t used = 0;

        buf[0] = '\0';
        for (unsigned i = 0; i < ic->nb_streams && used < len; i++) {
                const AVCodecParameters *p = ic->streams[i]->codecpar;
                const char *name = avcodec_get_name(p->codec_id);
                int n;

                if (p->codec_type == AVMEDIA_TYPE_VIDEO)
                        n = snprintf(buf + used, len - used, "%s%s %dx%d", used ? ", " : "", name, p->width,
                                     p->height);
                else
                        n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", name);
                if (n < 0)
                        break;
                used += (size_t)n;
        }
}

/* 0: it answered with streams; else the kind and text in why. */
static int probe_one(const struct config_camera *cam, char *what, size_t len)
{
        struct rtsp_log log = { 0 };
        AVFormatContext *ic = avformat_alloc_context();
        AVDictionary *opts = NULL;
        int64_t deadline = now_mono_us() + PROBE_TIMEOUT_US;
        char averr[128];
        int e;

        if (!ic) {
                snprintf(what, len, "out of memory");
                return -1;
        }
        ic->opaque = &log;
        ic->interrupt_callback = (AVIOInterruptCB){ .callback = deadline_passed, .opaque = &deadline };
        av_dict_set(&opts, "rtsp_transport", cam->transport == CONFIG_TRANSPORT_UDP ? "udp" : "tcp", 0);
        av_dict_set(&opts, "timeout", "5000000", 0);
        av_dict_set(&opts, "analyzeduration", "1000000", 0);
        e = avformat_open_input(&ic, cam->url, NULL, &opts);
        av_dict_free(&opts);
        if (e >= 0 && (e = avformat_find_stream_info(ic, NULL)) >= 0 && ic->nb_streams > 0) {
                streams_text(ic, what, len);
                avformat_close_input(&ic);
                return 0;
        }
        if (e >= 0)
                e = AVERROR_STREAM_NOT_FOUND;
        if (av_strerror(e, averr, sizeof(averr)) < 0)
                snprintf(averr, sizeof(averr), "error %d", e);
        if (e == AVERROR_EXIT)
                snprintf(averr, sizeof(averr), "no answer within %.0f s", (double)PROBE_TIMEOUT_US / 1e6);
        {
                char text[192];
                const char *kind = rtsp_error_describe(&log.answer, e, averr, false, text, sizeof(text));

                snprintf(what, len, "%s: %s", kind, text);
        }
        avformat_close_input(&ic);
        return -1;
}

int probe_cameras(const struct mwr_config *cfg, FILE *out)
{
        int failed = 0;

        for (size_t i = 0; i < cfg->n_cameras; i++) {
                const struct config_camera *cam = &cfg->cameras[i];
                char url[CONFIG_URL_MAX], what[256];
                int e;

                if (!cam->enabled)
                        continue;
                config_url_redact(cam->url, url, sizeof(url));
                e = probe_one(cam, what, sizeof(what));
                failed += e < 0;
                fprintf(out, "camera %s (%s): %s%s\n", cam->id, url, e < 0 ? "" : "ok: ", what);
                fflush(out);
        }
        return failed;
}
