/* segment: a segment's file and row; see segment.h. */
#include "worker/segment.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/fsutil.h"
#include "common/log.h"
#include "common/time_util.h"
#include "worker/fmp4_repair.h"

static int segment_path(const struct segment_ctx *c, int64_t start_us, int64_t num, char *out, size_t outlen)
{
        time_t secs = (time_t)(start_us / USEC_PER_SEC);
        struct tm tm;
        char dir[PATH_MAX];
        int n, e;

        gmtime_r(&secs, &tm);
        n = snprintf(dir, sizeof(dir), "%s/%s/%04d-%02d-%02d", c->storage_dir, c->camera_id, tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday);
        if (n < 0 || (size_t)n >= sizeof(dir))
                return -ENAMETOOLONG;
        if ((e = fs_mkdir_p(dir)) < 0)
                return e;
        n = snprintf(out, outlen, "%s/%s_%" PRId64 "_%s_%" PRId64 ".mp4", dir, c->camera_id, start_us / 1000,
                     c->instance_id, num);
        return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

/* Sends the row as of the last flushed fragment, with its frame index. */
static void segment_publish(struct segment *s, struct index_writer *iw, const char *status)
{
        const uint8_t *blob = NULL;
        size_t len = 0;

        s->info.frames = s->flushed_frames;
        s->info.keyframes = s->flushed_keyframes;
        s->info.end_us = s->flushed_end_us;
        if (s->w) {
                s->info.fragments = segment_writer_fragments(s->w);
                s->info.bytes = segment_writer_bytes(s->w);
        }
        s->info.status = status;
        fi_encoder_data(&s->fi, &blob, &len);
        index_writer_segment_update(iw, s->ref, &s->info, blob, len);
}

static void segment_mark_flushed(struct segment *s)
{
        s->flushed_frames = s->frames;
        s->flushed_keyframes = s->keyframes;
        s->flushed_end_us = s->end_us;
}

int segment_flush(struct segment *s, struct index_writer *iw)
{
        int e = segment_writer_flush(s->w);

        if (e < 0)
                return e;
        if (s->frames == s->flushed_frames)
                return 0;
        segment_mark_flushed(s);
        segment_publish(s, iw, "recording");
        return 0;
}

int segment_add_frame(struct segment *s, const struct fi_frame *f, int64_t end_us)
{
        int e = fi_encoder_add(&s->fi, f);

        s->frames++;
        s->keyframes += f->key;
        if (end_us > s->end_us)
                s->end_us = end_us;
        return e;
}

/* After a failed write the file is the truth: cut it back to its last whole
 * fragment and take frames, end and index from what is really there, so the
 * row never counts a frame the file does not hold. */
static void segment_reread(struct segment *s)
{
        struct fmp4_scan scan;
        struct fmp4_frames fr = { 0 };
        struct fi_encoder fi;

        s->flushed_frames = s->flushed_keyframes = 0;
        s->flushed_end_us = s->info.start_us;
        s->info.fragments = 0;
        fi_encoder_init(&fi);
        if (fmp4_truncate(s->info.path, &scan) == 0) {
                s->info.bytes = scan.file_size;
                s->info.fragments = scan.fragments;
                if (fmp4_read_frames(s->info.path, &fi, &fr) == 0 && fr.frames > 0) {
                        s->flushed_frames = fr.frames;
                        s->flushed_keyframes = fr.keyframes;
                        s->flushed_end_us = s->info.start_us + fr.end_offset_us;
                }
        }
        fi_encoder_free(&s->fi);
        s->fi = fi; /* moved: fi_encoder holds no pointer to itself */
}

int segment_close(struct segment *s, const struct segment_ctx *c, const char *why)
{
        int e;

        if (!s)
                return 0;
        e = segment_writer_flush(s->w);
        if (e == 0)
                segment_mark_flushed(s);
        s->info.fragments = segment_writer_fragments(s->w);
        s->info.bytes = segment_writer_bytes(s->w);
        if (e == 0) {
                e = segment_writer_close(s->w, &s->info.bytes);
        } else {
                segment_writer_abort(s->w);
                segment_reread(s);
        }
        s->w = NULL;
        /* no whole fragment made it (e.g. ENOSPC before the first): no footage */
        segment_publish(s, c->iw, e == 0 ? "complete" : s->flushed_frames > 0 ? "partial" : "corrupt");
        if (e < 0)
                log_err("camera %s: segment %s closed with error (%s) after %" PRId64 " frames (%s)", c->camera_id,
                        s->info.path, strerror(-e), s->info.frames, why);
        seg_ref_release(s->ref);
        fi_encoder_free(&s->fi);
        free(s->params);
        free(s);
        return e;
}

int segment_open(struct segment **out, const struct segment_ctx *c, int64_t start_us,
                 const struct segment_stream *streams, int n_streams, const struct segment_desc *d,
                 const uint8_t *params, size_t params_len)
{
        struct segment *s = calloc(1, sizeof(*s));
        int e;

        if (!s || (params_len && !(s->params = malloc(params_len)))) {
                free(s);
                return -ENOMEM;
        }
        if (params_len)
                memcpy(s->params, params, params_len);
        s->params_len = params_len;
        for (;;) {
                int64_t num = (*c->next_num)++;

                e = segment_path(c, start_us, num, s->info.path, sizeof(s->info.path));
                if (e == 0)
                        e = segment_writer_open(&s->w, s->info.path, streams, n_streams);
                if (e != -EEXIST) {
                        s->info.segment_num = num;
                        break;
                }
        }
        if (e < 0) {
                log_err("camera %s: cannot create segment %s: %s", c->camera_id, s->info.path, strerror(-e));
                free(s->params);
                free(s);
                return e;
        }
        snprintf(s->info.camera_id, sizeof(s->info.camera_id), "%s", c->camera_id);
        snprintf(s->info.instance_id, sizeof(s->info.instance_id), "%s", c->instance_id);
        snprintf(s->info.video_codec, sizeof(s->info.video_codec), "%s", d->video_codec);
        snprintf(s->info.audio_codec, sizeof(s->info.audio_codec), "%s", d->audio_codec ? d->audio_codec : "");
        s->info.width = d->width;
        s->info.height = d->height;
        s->info.start_us = s->info.end_us = start_us;
        s->info.status = "recording";
        s->info.time_source = d->time_source;
        s->info.clock_offset_us = start_us - now_real_us(); /* camera clock vs ours, incl. latency */
        s->frag_start_us = start_us;
        s->flushed_end_us = s->end_us = start_us;
        fi_encoder_init(&s->fi);
        s->ref = index_writer_segment_begin(c->iw, &s->info);
        *out = s;
        return 0;
}
