/* hls: playlist text from a timeline and the files' fragment maps (see hls.h). */
#include "worker/hls.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fmp4_index.h"
#include "common/timefmt.h"

/* A piece is whole GOPs and every keyframe starts a fragment, so a piece is
 * whole fragments. */
static int64_t frag_us(const struct fmp4_index *ix, size_t k)
{
        return (int64_t)((double)ix->frags[k].first_pts * 1e6 / ix->timescale);
}

/* Fragments of one file whose first sample is shown within [lo, hi) µs of
 * the segment's start.  The first fragment begins with the segment's first
 * frame: measuring from it cancels an edit list's shift (B-frames). */
static void emit_fragments(FILE *f, const struct fmp4_index *ix, int64_t seg_id, const char *prefix, int64_t lo,
                           int64_t hi, int64_t first_frame_us, double *max_dur, size_t *listed,
                           int64_t *first_frag_us)
{
        for (size_t k = 0; k < ix->n_frags; k++) {
                const struct fmp4_fragment *fr = &ix->frags[k];
                int64_t at = frag_us(ix, k) - frag_us(ix, 0) + first_frame_us;
                double dur = (double)fr->duration / ix->timescale;

                if (at < lo || at >= hi)
                        continue;
                if (*listed == 0)
                        *first_frag_us = at;
                if (dur > *max_dur)
                        *max_dur = dur;
                fprintf(f, "#EXTINF:%.3f,\n%s%" PRId64 "/%" PRIu64 "-%" PRIu64 ".m4s\n", dur, prefix, seg_id,
                        fr->offset, fr->size);
                (*listed)++;
        }
}

int hls_playlist(const struct tl_input *in, const struct tl_result *r, const char *prefix, char **out, char *err,
                 size_t errlen)
{
        struct fmp4_index ix = { 0 };
        size_t ix_seg = SIZE_MAX, len = 0, hole = 0;
        char *body = NULL, t1[TIMEFMT_RFC3339_MAX], t2[TIMEFMT_RFC3339_MAX];
        double max_dur = 1.0;
        bool any = false;
        FILE *f = open_memstream(&body, &len);
        int e = 0;

        *out = NULL;
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < r->n_pieces; i++) {
                const struct tl_piece *p = &r->pieces[i];
                const struct tl_segment *s = &in->segs[p->seg];
                int64_t lo = s->frames[p->first].t_us - s->start_us - r->frame_us / 2;
                int64_t hi = p->end_us + p->shift_us - s->start_us - r->frame_us / 2;
                size_t listed = 0;
                int64_t first_us = 0;
                char *chunk = NULL;
                size_t chunk_len = 0;
                FILE *cf;

                for (; hole < r->n_holes && r->holes[hole].start_us <= p->start_us; hole++) {
                        timefmt_rfc3339(r->holes[hole].start_us, t1);
                        timefmt_rfc3339(r->holes[hole].end_us, t2);
                        fprintf(f, "## gap %s .. %s (%.3f s)\n", t1, t2,
                                (double)(r->holes[hole].end_us - r->holes[hole].start_us) / 1e6);
                }
                if (ix_seg != p->seg) {
                        fmp4_index_free(&ix);
                        ix_seg = SIZE_MAX;
                        e = fmp4_index_read(s->path, &ix);
                        if (e == -EBADMSG && s->recording) { /* no fragment written yet: nothing to list */
                                e = 0;
                                continue;
                        }
                        if (e < 0) {
                                snprintf(err, errlen, "%s: %s", s->path,
                                         e == -EBADMSG ? "not a fragmented MP4" : strerror(-e));
                                break;
                        }
                        ix_seg = p->seg;
                }
                /* the fragments first, so the date can be that of the first one listed */
                cf = open_memstream(&chunk, &chunk_len);
                if (!cf) {
                        e = -ENOMEM;
                        break;
                }
                if (ix.n_frags && ix.timescale)
                        emit_fragments(cf, &ix, s->id, prefix, lo, hi, s->frames[0].t_us - s->start_us, &max_dur,
                                       &listed, &first_us);
                fclose(cf);
                if (listed) {
                        timefmt_rfc3339(s->start_us + first_us - p->shift_us, t1);
                        if (any)
                                fputs("#EXT-X-DISCONTINUITY\n", f);
                        fprintf(f, "#EXT-X-PROGRAM-DATE-TIME:%s\n", t1);
                        fprintf(f, "#EXT-X-MAP:URI=\"%s%" PRId64 "/0-%" PRIu64 ".mp4\"\n", prefix, s->id,
                                ix.init_size);
                        fputs(chunk, f);
                        any = true;
                }
                free(chunk);
        }
        fmp4_index_free(&ix);
        if (fclose(f) != 0 && e == 0)
                e = -ENOMEM;
        if (e == 0) {
                char *head = NULL;

                if (asprintf(&head,
                             "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:%d\n#EXT-X-PLAYLIST-TYPE:VOD\n"
                             "#EXT-X-MEDIA-SEQUENCE:0\n%s#EXT-X-ENDLIST\n",
                             (int)ceil(max_dur), body ? body : "") < 0)
                        e = -ENOMEM;
                else
                        *out = head;
        }
        free(body);
        return e;
}
