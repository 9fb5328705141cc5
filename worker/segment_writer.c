/* segment_writer: fragmented MP4 through libavformat (see segment_writer.h).
 * Timestamps are rebased so the segment starts at 0; a DTS that does not
 * increase (cameras do send those) is nudged forward by one tick and counted
 * instead of making the muxer fail. */
#include "worker/segment_writer.h"

#include "common/avio_fd.h"
#include "common/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavutil/opt.h>

struct segment_writer {
        AVFormatContext *oc;
        int fd; /* we write through it; holds flock(LOCK_SH): recovery leaves the file alone */
        char *path;
        int map[64]; /* input stream index -> output stream index, -1 if unused */
        int64_t last_dts[SEGMENT_MAX_STREAMS], last_pts[SEGMENT_MAX_STREAMS];
        int64_t reorder_us[SEGMENT_MAX_STREAMS], frame_us[SEGMENT_MAX_STREAMS]; /* B-frame video, else 0 */
        AVRational in_tb[SEGMENT_MAX_STREAMS]; /* packets' own time base, per output stream */
        int pending;  /* packets in the fragment being built */
        int fragments;
        int dts_fixes;
        int error;    /* first error, negative errno */
};

/* 64 KB of output buffer per camera (common/avio_fd.h says why not 1 MB). */
#define SEGMENT_IO_BUFFER (64 * 1024)

static int av_to_errno(int e)
{
        if (e == AVERROR_EOF)
                return -EPIPE;
        return e < 0 && e > -4096 ? e : -EIO; /* AVERROR(e) is -e for errno values */
}

static int fail(struct segment_writer *w, int r)
{
        if (w->error == 0)
                w->error = r;
        return r;
}

int segment_writer_open(struct segment_writer **out, const char *path, const struct segment_stream *streams,
                        int n_streams)
{
        struct segment_writer *w;
        AVDictionary *opts = NULL;
        int fd, r;

        if (n_streams < 1 || n_streams > SEGMENT_MAX_STREAMS)
                return -EINVAL;
        /* reserve the name: a clock step or a reused instance id never overwrites;
         * O_EXCL also means the file is new, so its mode is FS_FILE_MODE or less */
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, FS_FILE_MODE);
        if (fd < 0)
                return -errno;
        if (flock(fd, LOCK_SH | LOCK_NB) < 0) {
                r = -errno;
                close(fd);
                unlink(path);
                return r;
        }
        w = calloc(1, sizeof(*w));
        if (!w || !(w->path = strdup(path))) {
                free(w);
                close(fd);
                unlink(path);
                return -ENOMEM;
        }
        w->fd = fd;
        memset(w->map, -1, sizeof(w->map));
        r = avformat_alloc_output_context2(&w->oc, NULL, "mp4", path);
        if (r < 0)
                goto err;
        for (int i = 0; i < n_streams; i++) {
                const struct segment_stream *is = &streams[i];
                AVStream *os = avformat_new_stream(w->oc, NULL);

                if (!os || is->in_index < 0 || is->in_index >= 64) {
                        r = AVERROR(ENOMEM);
                        goto err;
                }
                if ((r = avcodec_parameters_copy(os->codecpar, is->par)) < 0)
                        goto err;
                os->codecpar->codec_tag = 0;
                os->time_base = is->time_base;
                w->map[is->in_index] = os->index;
                w->last_dts[i] = w->last_pts[i] = INT64_MIN;
                w->in_tb[i] = is->time_base;
                if (is->par->codec_type == AVMEDIA_TYPE_VIDEO && is->frame_us > 0 &&
                    (is->par->video_delay > 0 || is->reorder > 0)) {
                        w->reorder_us[i] = (is->reorder > is->par->video_delay ? is->reorder : is->par->video_delay) *
                                           is->frame_us;
                        w->frame_us[i] = is->frame_us;
                }
                /* FLAC in MP4 is standard; Debian's ffmpeg 5.1 still calls it experimental */
                if (is->par->codec_id == AV_CODEC_ID_FLAC)
                        w->oc->strict_std_compliance = FF_COMPLIANCE_EXPERIMENTAL;
        }
        if ((r = avio_fd_open(&w->fd, SEGMENT_IO_BUFFER, &w->oc->pb)) < 0)
                goto err;
        /* frag_custom: we cut fragments; delay_moov: SPS/PPS may come in-band */
        av_dict_set(&opts, "movflags", "+frag_custom+empty_moov+default_base_moof+delay_moov", 0);
        r = avformat_write_header(w->oc, &opts);
        av_dict_free(&opts);
        if (r < 0)
                goto err;
        *out = w;
        return 0;
err:
        r = av_to_errno(r);
        segment_writer_abort(w);
        unlink(path);
        return r;
}

int segment_writer_write(struct segment_writer *w, const AVPacket *pkt, int in_index, int64_t pts_offset_us)
{
        int oi = in_index >= 0 && in_index < 64 ? w->map[in_index] : -1;
        AVStream *os;
        AVPacket *p;
        int64_t pts, dts;
        int r;

        if (w->error)
                return w->error;
        if (oi < 0)
                return -EINVAL;
        os = w->oc->streams[oi];
        /* the muxer may have chosen another time base (audio: 1/sample rate) */
        pts = av_rescale_q(pts_offset_us, AV_TIME_BASE_Q, os->time_base);
        if (w->reorder_us[oi] > 0) {
                /* B-frames: RTP carries no decode time, and libavformat's guess
                 * for the packets it read while probing the stream is the pts,
                 * which a B-frame after its reference cannot follow (its pts
                 * was bumped: the frame shown at the wrong time).  Our own: the
                 * segment's keyframe decodes the reorder delay before it is
                 * shown, each frame one spacing later, never after its pts. */
                int64_t step = av_rescale_q(w->frame_us[oi], AV_TIME_BASE_Q, os->time_base);

                if (w->last_dts[oi] == INT64_MIN)
                        dts = pts - av_rescale_q(w->reorder_us[oi], AV_TIME_BASE_Q, os->time_base);
                else if (pts == w->last_pts[oi])
                        dts = w->last_dts[oi] + 1; /* a packet of the same picture (SEI split off) */
                else
                        dts = pts < w->last_dts[oi] + step ? pts : w->last_dts[oi] + step;
        } else {
                dts = pkt->dts != AV_NOPTS_VALUE && pkt->pts != AV_NOPTS_VALUE
                              ? pts - av_rescale_q(pkt->pts - pkt->dts, w->in_tb[oi], os->time_base)
                              : pts;
        }
        if (w->last_dts[oi] != INT64_MIN && dts <= w->last_dts[oi]) {
                dts = w->last_dts[oi] + 1;
                if (pts < dts)
                        pts = dts;
                w->dts_fixes++;
        }
        w->last_dts[oi] = dts;
        w->last_pts[oi] = pts;

        p = av_packet_clone(pkt);
        if (!p)
                return fail(w, -ENOMEM);
        p->stream_index = oi;
        p->pts = pts;
        p->dts = dts;
        p->duration = av_rescale_q(pkt->duration, w->in_tb[oi], os->time_base);
        p->pos = -1;
        r = av_write_frame(w->oc, p);
        av_packet_free(&p);
        if (r < 0)
                return fail(w, av_to_errno(r));
        w->pending++;
        return 0;
}

int segment_writer_flush(struct segment_writer *w)
{
        int r;

        if (w->error)
                return w->error;
        if (w->pending == 0)
                return 0;
        r = av_write_frame(w->oc, NULL); /* frag_custom: ends the fragment */
        /* delay_moov: the first flush writes only the moov and keeps the
         * samples; flush again so the first fragment ends here too (every
         * keyframe must begin a fragment: playlists cut there) */
        if (r >= 0 && w->fragments == 0)
                r = av_write_frame(w->oc, NULL);
        if (r < 0)
                return fail(w, av_to_errno(r));
        avio_flush(w->oc->pb);
        if (w->oc->pb->error < 0)
                return fail(w, av_to_errno(w->oc->pb->error));
        w->pending = 0;
        w->fragments++;
        return 0;
}

int segment_writer_close(struct segment_writer *w, int64_t *bytes)
{
        struct stat st;
        int r;

        segment_writer_flush(w);
        if (w->error == 0) {
                r = av_write_trailer(w->oc);
                if (r < 0)
                        fail(w, av_to_errno(r));
        }
        if (w->oc->pb) {
                avio_flush(w->oc->pb);
                if (w->oc->pb->error < 0)
                        fail(w, av_to_errno(w->oc->pb->error));
                avio_fd_close(&w->oc->pb);
        }
        if (fsync(w->fd) < 0)
                fail(w, -errno);
        if (fstat(w->fd, &st) == 0)
                *bytes = st.st_size; /* with the trailer, unlike avio_tell before it */
        r = w->error;
        segment_writer_abort(w);
        return r;
}

void segment_writer_abort(struct segment_writer *w)
{
        if (!w)
                return;
        if (w->oc) {
                avio_fd_close(&w->oc->pb);
                avformat_free_context(w->oc);
        }
        if (w->fd >= 0)
                close(w->fd);
        free(w->path);
        free(w);
}

int64_t segment_writer_bytes(const struct segment_writer *w)
{
        return w->oc && w->oc->pb ? avio_tell(w->oc->pb) : 0;
}

int segment_writer_fragments(const struct segment_writer *w)
{
        return w->fragments;
}

int segment_writer_dts_fixes(const struct segment_writer *w)
{
        return w->dts_fixes;
}
