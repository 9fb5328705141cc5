/* read_cost: what reading RTSP/TCP costs, by reader, for the next step of
 * issue 17 (the worker's CPU).  One thread per camera, as in the worker;
 * each reads its camera for SECONDS and counts access units and bytes.
 *   lavf  libavformat as the worker opens it (rtsp_transport tcp, probe,
 *         av_read_frame: three small reads per RTP packet, then the parser
 *         that joins NAL units into access units);
 *   own   libcurl does the RTSP requests (OPTIONS, DESCRIBE, SETUP of every
 *         track interleaved, PLAY); then the thread reads the socket itself,
 *         64 KiB at a time, splits the '$' frames and depacketises H.264
 *         (single NAL, STAP-A, FU-A) into one length-prefixed buffer per
 *         access unit, as a writer would take it.  RTCP and audio are
 *         skipped, not parsed: this measures the read, not a recorder.
 * Prints key=value lines: frames, bytes, lost packets (sequence gaps), and
 * the process's CPU (utime+stime) over the window (every thread reads from
 * its open on; the window starts 2 s after the last camera opened).
 * usage: read_cost lavf|own SECONDS URL...   (a bench tool, not a product) */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libavformat/avformat.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF (64 * 1024)
#define AU_MAX (4 * 1024 * 1024)

struct cam {
        const char *url;
        pthread_t th;
        uint64_t frames, bytes, lost, reads;
        char err[256];
};

static atomic_bool started_all;
static atomic_int opened;
static double window_s;
static int64_t t_end_us;

static int64_t mono_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- lavf ---------------------------------------------------------------- */

static void *lavf_thread(void *arg)
{
        struct cam *c = arg;
        AVFormatContext *ic = NULL;
        AVDictionary *opts = NULL;
        AVPacket *pkt = av_packet_alloc();
        int e;

        av_dict_set(&opts, "rtsp_transport", "tcp", 0);
        av_dict_set(&opts, "timeout", "5000000", 0);
        av_dict_set(&opts, "analyzeduration", "1000000", 0);
        if ((e = avformat_open_input(&ic, c->url, NULL, &opts)) < 0 || (e = avformat_find_stream_info(ic, NULL)) < 0) {
                snprintf(c->err, sizeof(c->err), "%s: %s", c->url, av_err2str(e));
                atomic_fetch_add(&opened, 1);
                goto out;
        }
        atomic_fetch_add(&opened, 1);
        while (mono_us() < t_end_us && av_read_frame(ic, pkt) >= 0) {
                if (atomic_load(&started_all) &&
                    ic->streams[pkt->stream_index]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO) {
                        c->frames++;
                        c->bytes += (uint64_t)pkt->size;
                }
                av_packet_unref(pkt);
        }
out:
        av_dict_free(&opts);
        av_packet_free(&pkt);
        avformat_close_input(&ic);
        return NULL;
}

/* ---- own ----------------------------------------------------------------- */

struct depay {
        uint8_t *au;
        size_t len;
        uint32_t ts;
        bool have_ts, in_fu, have_seq;
        size_t fu_len_at; /* where the FU's length prefix is */
        uint16_t seq;
};

static size_t sdp_cb(void *p, size_t sz, size_t n, void *ud)
{
        struct { char *buf; size_t len; } *s = ud;
        size_t add = sz * n;
        char *nb = realloc(s->buf, s->len + add + 1);

        if (!nb)
                return 0;
        memcpy(nb + s->len, p, add);
        s->len += add;
        nb[s->len] = '\0';
        s->buf = nb;
        return add;
}

static size_t discard_cb(void *p, size_t sz, size_t n, void *ud)
{
        (void)p, (void)ud;
        return sz * n;
}

static void au_emit(struct cam *c, struct depay *d)
{
        if (d->len && atomic_load(&started_all)) {
                c->frames++;
                c->bytes += d->len;
        }
        d->len = 0;
        d->in_fu = false;
}

static void nal_put(struct depay *d, const uint8_t *p, size_t n)
{
        if (d->len + 4 + n > AU_MAX)
                return;
        d->au[d->len] = (uint8_t)(n >> 24), d->au[d->len + 1] = (uint8_t)(n >> 16);
        d->au[d->len + 2] = (uint8_t)(n >> 8), d->au[d->len + 3] = (uint8_t)n;
        memcpy(d->au + d->len + 4, p, n);
        d->len += 4 + n;
}

/* One RTP packet of the video track (channel 0). */
static void rtp_video(struct cam *c, struct depay *d, const uint8_t *p, size_t n)
{
        size_t h = 12;
        uint16_t seq;
        uint32_t ts;
        bool marker;

        if (n < 12 || (p[0] >> 6) != 2)
                return;
        h += (size_t)(p[0] & 0x0f) * 4;
        if (p[0] & 0x10) {
                if (n < h + 4)
                        return;
                h += 4 + (size_t)((p[h + 2] << 8) | p[h + 3]) * 4;
        }
        if (p[0] & 0x20)
                n -= p[n - 1];
        if (n <= h)
                return;
        marker = p[1] & 0x80;
        seq = (uint16_t)((p[2] << 8) | p[3]);
        ts = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
        if (d->have_seq && seq != (uint16_t)(d->seq + 1)) {
                if (atomic_load(&started_all))
                        c->lost += (uint16_t)(seq - d->seq - 1);
                d->len = 0; /* the access unit is incomplete */
                d->in_fu = false;
        }
        d->seq = seq, d->have_seq = true;
        if (d->have_ts && ts != d->ts)
                au_emit(c, d);
        d->ts = ts, d->have_ts = true;
        p += h, n -= h;
        switch (p[0] & 0x1f) {
        case 24: /* STAP-A */
                for (size_t i = 1; i + 2 <= n;) {
                        size_t l = (size_t)(p[i] << 8 | p[i + 1]);

                        if (i + 2 + l > n)
                                break;
                        nal_put(d, p + i + 2, l);
                        i += 2 + l;
                }
                break;
        case 28: /* FU-A */
                if (n < 2)
                        break;
                if (p[1] & 0x80) {
                        uint8_t hdr = (uint8_t)((p[0] & 0xe0) | (p[1] & 0x1f));

                        if (d->len + 5 + n > AU_MAX)
                                break;
                        d->fu_len_at = d->len;
                        d->au[d->len + 4] = hdr;
                        d->len += 5;
                        d->in_fu = true;
                } else if (!d->in_fu) {
                        break;
                }
                if (d->len + n - 2 > AU_MAX)
                        break;
                memcpy(d->au + d->len, p + 2, n - 2);
                d->len += n - 2;
                if (p[1] & 0x40) {
                        size_t l = d->len - d->fu_len_at - 4;

                        d->au[d->fu_len_at] = (uint8_t)(l >> 24), d->au[d->fu_len_at + 1] = (uint8_t)(l >> 16);
                        d->au[d->fu_len_at + 2] = (uint8_t)(l >> 8), d->au[d->fu_len_at + 3] = (uint8_t)l;
                        d->in_fu = false;
                }
                break;
        default:
                if ((p[0] & 0x1f) >= 1 && (p[0] & 0x1f) <= 23)
                        nal_put(d, p, n);
        }
        if (marker)
                au_emit(c, d);
}

/* "a=control:" of each m= section, resolved against the request URL. */
static int sdp_tracks(const char *sdp, const char *base, char urls[][512], int max)
{
        int n = 0;
        bool in_media = false;

        for (const char *l = sdp; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
                size_t len = strcspn(l, "\r\n");

                if (!strncmp(l, "m=", 2))
                        in_media = true;
                else if (in_media && !strncmp(l, "a=control:", 10) && n < max) {
                        const char *v = l + 10;
                        size_t vl = len - 10;

                        if (!strncmp(v, "rtsp://", 7))
                                snprintf(urls[n], 512, "%.*s", (int)vl, v);
                        else
                                snprintf(urls[n], 512, "%s/%.*s", base, (int)vl, v);
                        n++;
                        in_media = false;
                }
        }
        return n;
}

static void *own_thread(void *arg)
{
        struct cam *c = arg;
        CURL *h = curl_easy_init();
        struct { char *buf; size_t len; } sdp = { 0 };
        char tracks[4][512], transport[64];
        struct depay d = { .au = malloc(AU_MAX) };
        uint8_t *buf = malloc(READ_BUF);
        size_t have = 0;
        curl_socket_t fd;
        CURLcode rc;
        int nt;

        curl_easy_setopt(h, CURLOPT_URL, c->url);
        curl_easy_setopt(h, CURLOPT_RTSP_STREAM_URI, c->url);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_cb);
        curl_easy_setopt(h, CURLOPT_RTSP_REQUEST, (long)CURL_RTSPREQ_OPTIONS);
        if ((rc = curl_easy_perform(h)) != CURLE_OK)
                goto fail;
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sdp_cb);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &sdp);
        curl_easy_setopt(h, CURLOPT_RTSP_REQUEST, (long)CURL_RTSPREQ_DESCRIBE);
        if ((rc = curl_easy_perform(h)) != CURLE_OK)
                goto fail;
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_cb);
        nt = sdp.buf ? sdp_tracks(sdp.buf, c->url, tracks, 4) : 0;
        for (int i = 0; i < nt; i++) {
                snprintf(transport, sizeof(transport), "RTP/AVP/TCP;unicast;interleaved=%d-%d", 2 * i, 2 * i + 1);
                curl_easy_setopt(h, CURLOPT_RTSP_STREAM_URI, tracks[i]);
                curl_easy_setopt(h, CURLOPT_RTSP_TRANSPORT, transport);
                curl_easy_setopt(h, CURLOPT_RTSP_REQUEST, (long)CURL_RTSPREQ_SETUP);
                if ((rc = curl_easy_perform(h)) != CURLE_OK)
                        goto fail;
        }
        curl_easy_setopt(h, CURLOPT_RTSP_STREAM_URI, c->url);
        curl_easy_setopt(h, CURLOPT_RANGE, "npt=0.000-");
        curl_easy_setopt(h, CURLOPT_RTSP_REQUEST, (long)CURL_RTSPREQ_PLAY);
        if ((rc = curl_easy_perform(h)) != CURLE_OK)
                goto fail;
        if (curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK || fd == CURL_SOCKET_BAD) {
                snprintf(c->err, sizeof(c->err), "%s: no socket after PLAY", c->url);
                goto out;
        }
        {
                struct timeval tv = { .tv_sec = 5 };

                fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK); /* libcurl's is non-blocking */
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        }
        atomic_fetch_add(&opened, 1);
        while (mono_us() < t_end_us) {
                ssize_t r = recv(fd, buf + have, READ_BUF - have, 0);
                size_t i = 0;

                if (r <= 0) {
                        snprintf(c->err, sizeof(c->err), "%s: recv: %s", c->url, r ? strerror(errno) : "closed");
                        break;
                }
                if (atomic_load(&started_all))
                        c->reads++;
                have += (size_t)r;
                while (i + 4 <= have) {
                        size_t len;

                        if (buf[i] != '$') { /* an RTSP reply (none expected while we only read): skipped */
                                i++;
                                continue;
                        }
                        len = (size_t)(buf[i + 2] << 8 | buf[i + 3]);
                        if (i + 4 + len > have)
                                break;
                        if (buf[i + 1] == 0)
                                rtp_video(c, &d, buf + i + 4, len);
                        i += 4 + len;
                }
                memmove(buf, buf + i, have - i);
                have -= i;
        }
        goto out;
fail:
        snprintf(c->err, sizeof(c->err), "%s: %s", c->url, curl_easy_strerror(rc));
        atomic_fetch_add(&opened, 1);
out:
        curl_easy_cleanup(h);
        free(sdp.buf);
        free(d.au);
        free(buf);
        return NULL;
}

static double cpu_s(void)
{
        struct rusage u;

        getrusage(RUSAGE_SELF, &u);
        return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec +
               u.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
        bool own;
        int n;
        struct cam *cams;
        double c0, w0, c1, w1;
        uint64_t frames = 0, bytes = 0, lost = 0, reads = 0;
        int failed = 0;

        if (argc < 4 || (strcmp(argv[1], "lavf") && strcmp(argv[1], "own"))) {
                fprintf(stderr, "usage: read_cost lavf|own SECONDS URL...\n");
                return 2;
        }
        own = !strcmp(argv[1], "own");
        window_s = atof(argv[2]);
        n = argc - 3;
        cams = calloc((size_t)n, sizeof(*cams));
        avformat_network_init();
        curl_global_init(CURL_GLOBAL_DEFAULT);
        t_end_us = INT64_MAX;
        for (int i = 0; i < n; i++) {
                cams[i].url = argv[3 + i];
                pthread_create(&cams[i].th, NULL, own ? own_thread : lavf_thread, &cams[i]);
        }
        while (atomic_load(&opened) < n)
                usleep(10000);
        sleep(2); /* past the first keyframes' bursts */
        c0 = cpu_s(), w0 = mono_us() / 1e6;
        t_end_us = mono_us() + (int64_t)(window_s * 1e6);
        atomic_store(&started_all, true);
        for (int i = 0; i < n; i++) {
                pthread_join(cams[i].th, NULL);
                if (cams[i].err[0]) {
                        fprintf(stderr, "%s\n", cams[i].err);
                        failed++;
                }
                frames += cams[i].frames, bytes += cams[i].bytes, lost += cams[i].lost, reads += cams[i].reads;
        }
        c1 = cpu_s(), w1 = mono_us() / 1e6;
        printf("reader=%s\ncameras=%d\nfailed=%d\nwindow_s=%.1f\nframes=%" PRIu64 "\nbytes=%" PRIu64
               "\nlost_packets=%" PRIu64 "\nreads=%" PRIu64 "\ncpu_core=%.3f\ncpu_core_per_camera=%.4f\n",
               argv[1], n, failed, w1 - w0, frames, bytes, lost, reads, (c1 - c0) / (w1 - w0),
               (c1 - c0) / (w1 - w0) / n);
        curl_global_cleanup();
        return failed ? 1 : 0;
}
