/* fmp4_repair: see fmp4_repair.h.  Frame hashes are computed over the NAL
 * payloads (common/payload_hash), so a frame read back from MP4 hashes as it
 * did when it arrived over RTSP. */
#include "worker/fmp4_repair.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavformat/avformat.h>

#include "common/payload_hash.h"

#define BOX(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))
#define DEFAULT_FRAME_US 40000

static uint64_t be(const uint8_t *p, int n)
{
        uint64_t v = 0;

        for (int i = 0; i < n; i++)
                v = v << 8 | p[i];
        return v;
}

int fmp4_scan(const char *path, struct fmp4_scan *out)
{
        struct stat st;
        int64_t off = 0, moof_end = -1;
        int fd = open(path, O_RDONLY | O_CLOEXEC), e = 0;

        memset(out, 0, sizeof(*out));
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0) {
                e = -errno;
                goto out;
        }
        out->file_size = st.st_size;
        while (off + 8 <= st.st_size) {
                uint8_t h[16];
                uint64_t size;
                uint32_t type;
                ssize_t n = pread(fd, h, sizeof(h), off);

                if (n < 8)
                        break;
                size = be(h, 4);
                type = (uint32_t)be(h + 4, 4);
                if (size == 1) {
                        if (n < 16)
                                break;
                        size = be(h + 8, 8);
                }
                if (size < 8 || size > (uint64_t)(st.st_size - off))
                        break; /* size 0 (to EOF), garbage, or cut short */
                if (type == BOX('m', 'o', 'o', 'f')) {
                        moof_end = off + (int64_t)size;
                } else if (type == BOX('m', 'd', 'a', 't') && moof_end == off) {
                        out->fragments++;
                        out->complete_end = off + (int64_t)size;
                        moof_end = -1;
                } else if (moof_end < 0) {
                        out->has_moov |= type == BOX('m', 'o', 'o', 'v');
                        out->complete_end = off + (int64_t)size;
                } else {
                        break; /* a moof not followed by its mdat */
                }
                off += (int64_t)size;
        }
out:
        close(fd);
        return e;
}

int fmp4_truncate(const char *path, struct fmp4_scan *out)
{
        int e = fmp4_scan(path, out);

        if (e < 0)
                return e;
        if (out->complete_end < out->file_size && truncate(path, out->complete_end) < 0)
                return -errno;
        out->file_size = out->complete_end;
        return 0;
}

int fmp4_read_frames(const char *path, struct fi_encoder *fi, struct fmp4_frames *out)
{
        AVFormatContext *ic = NULL;
        AVPacket *pkt = av_packet_alloc();
        const AVStream *st;
        int v, nls, e;

        memset(out, 0, sizeof(*out));
        if (!pkt)
                return -ENOMEM;
        e = avformat_open_input(&ic, path, NULL, NULL);
        if (e < 0 || (e = avformat_find_stream_info(ic, NULL)) < 0 ||
            (v = av_find_best_stream(ic, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0)) < 0) {
                e = -EBADMSG;
                goto out;
        }
        st = ic->streams[v];
        nls = payload_nal_length_size(st->codecpar->extradata, (size_t)st->codecpar->extradata_size,
                                      st->codecpar->codec_id == AV_CODEC_ID_HEVC);
        while (av_read_frame(ic, pkt) >= 0) {
                if (pkt->stream_index == v && pkt->pts != AV_NOPTS_VALUE &&
                    payload_has_picture(pkt->data, (size_t)pkt->size, nls, st->codecpar->codec_id == AV_CODEC_ID_HEVC)) {
                        int64_t t = av_rescale_q(pkt->pts, st->time_base, AV_TIME_BASE_Q);
                        int64_t dur = pkt->duration > 0 ? av_rescale_q(pkt->duration, st->time_base, AV_TIME_BASE_Q)
                                                        : DEFAULT_FRAME_US;
                        struct fi_frame f = { .offset_us = (uint64_t)t, .key = pkt->flags & AV_PKT_FLAG_KEY };

                        f.hash = fi_hash_truncate(payload_hash(pkt->data, (size_t)pkt->size, nls, &f.size));
                        if (fi_encoder_add(fi, &f) == 0) {
                                out->frames++;
                                out->keyframes += f.key;
                                if (t + dur > out->end_offset_us)
                                        out->end_offset_us = t + dur;
                        }
                }
                av_packet_unref(pkt);
        }
        e = 0;
out:
        avformat_close_input(&ic);
        av_packet_free(&pkt);
        return e;
}
