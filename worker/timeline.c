/* timeline: camera time for one session's packets; the rules are in
 * timeline.h.  Every stream keeps its least receive delay before and after
 * its own first report, and where its pts stepped there; the RTCP offset B
 * is the median of the stamps of all streams (they share it). */
#include "worker/timeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define JUMP_NOISE_US 1000 /* pts are RTP-exact: a smaller "step" is rounding */

void timeline_init(struct timeline *t, int n_streams, const struct timeline_stream_cfg *cfg, int64_t wait_us)
{
        memset(t, 0, sizeof(*t));
        t->source = TIMELINE_UNKNOWN;
        t->n_streams = n_streams < TIMELINE_MAX_STREAMS ? n_streams : TIMELINE_MAX_STREAMS;
        t->wait_us = wait_us;
        for (int i = 0; i < t->n_streams; i++) {
                struct timeline_stream *s = &t->st[i];

                s->cfg = cfg[i];
                s->last_pts_us = s->last_dts_us = s->pending_prft_us = INT64_MIN;
        }
}

/* v moved by whole RTP wraps to lie nearest ref. */
static int64_t fold(int64_t v, int64_t ref, int64_t wrap_us)
{
        if (wrap_us <= 0)
                return v;
        return v - (int64_t)llround((double)(v - ref) / (double)wrap_us) * wrap_us;
}

static int64_t packet_len_us(const struct timeline_stream *s, const struct timeline_packet *p)
{
        return p->dur_us > 0 ? p->dur_us : s->frame_us;
}

/* The stream's least delay in the domain of the pts it gets now. */
static int64_t stream_delay(const struct timeline_stream *s)
{
        if (s->synced && s->have_post_delay)
                return s->post_delay_us;
        return s->synced && s->jump_known ? s->pre_delay_us - s->jump_us : s->pre_delay_us;
}

static int64_t noise_free(int64_t jump)
{
        return jump >= -JUMP_NOISE_US && jump <= JUMP_NOISE_US ? 0 : jump;
}

/* Holes in the frames before the report, moved by `shift`, and those after
 * it, on the grid of frame f (INT32_MAX when a frame would be there twice,
 * or the two sides would be out of order): one run has the fewest; the
 * smallest such step wins a tie. */
static int run_defects(const struct timeline_stream *s, int64_t shift, int64_t f)
{
        int64_t key[2 * TIMELINE_SYNC_PACKETS] = { 0 }, lo = INT64_MAX, hi = INT64_MIN;
        int n = 0, pre = s->n_pre < TIMELINE_SYNC_PACKETS ? s->n_pre : TIMELINE_SYNC_PACKETS;
        int post = s->n_post < TIMELINE_SYNC_PACKETS ? s->n_post : TIMELINE_SYNC_PACKETS, dups = 0;

        int64_t pre_lo = INT64_MAX, pre_hi = INT64_MIN, post_lo = INT64_MAX, post_hi = INT64_MIN;

        for (int i = 0; i < pre; i++) {
                key[n] = (int64_t)llround((double)(s->pre_pts[i] + shift) / (double)f);
                pre_lo = key[n] < pre_lo ? key[n] : pre_lo;
                pre_hi = key[n] > pre_hi ? key[n] : pre_hi;
                n++;
        }
        for (int i = 0; i < post; i++) {
                key[n] = (int64_t)llround((double)s->post_pts[i] / (double)f);
                post_lo = key[n] < post_lo ? key[n] : post_lo;
                post_hi = key[n] > post_hi ? key[n] : post_hi;
                n++;
        }
        /* frames sent before the report are shown before most sent after it:
         * B-frames reorder a few, never a whole run */
        if (pre_hi >= post_hi || pre_lo >= post_lo)
                return INT32_MAX;
        for (int i = 0; i < n; i++) {
                lo = key[i] < lo ? key[i] : lo;
                hi = key[i] > hi ? key[i] : hi;
                for (int j = 0; j < i; j++)
                        dups += key[i] == key[j];
        }
        if (dups)
                return INT32_MAX; /* a frame twice: never one run */
        return (int)((hi - lo + 1) - n); /* holes */
}

/* Video's step (rule 5): exact modulo a frame, the whole frames from the
 * run before and after it. */
static void video_jump_estimate(struct timeline_stream *s)
{
        int64_t f = s->frame_us, phase, best = 0;
        int best_defects = INT32_MAX - 1;

        s->jump_known = true;
        s->jump_us = 0;
        if (s->n_pre == 0 || s->n_post == 0 || f <= 0)
                return; /* nothing before the report to place, or no grid */
        phase = ((s->post_pts[0] - s->pre_pts[(s->n_pre - 1) % TIMELINE_SYNC_PACKETS]) % f + f) % f;
        for (int k = 0; k <= TIMELINE_STEP_MAX_FRAMES; k++) /* the smallest step that makes one run */
                for (int sign = 1; sign >= -1; sign -= 2) {
                        int64_t shift = phase + sign * k * f;
                        int d = run_defects(s, shift, f);

                        if (d < best_defects) {
                                best_defects = d;
                                best = shift;
                        }
                        if (k == 0)
                                break;
                }
        s->jump_us = noise_free(best);
}

static void stream_finalize(struct timeline *t, struct timeline_stream *s)
{
        if (s->synced && !s->jump_known)
                video_jump_estimate(s);
        if (t->source != TIMELINE_UNKNOWN)
                s->off_us[1] = s->off_us[0] - s->jump_us; /* decided before: stay continuous */
}

/* The stream's first report: packet p is the first in the reports' pts
 * domain.  Audio: how far its time stepped from where the stream was going
 * (packets follow on).  Video: later, from more packets. */
static void stream_sync(struct timeline *t, struct timeline_stream *s, const struct timeline_packet *p)
{
        int64_t spacing = s->last_dur_us > 0 ? s->last_dur_us : s->frame_us;

        s->synced = true;
        if (s->cfg.audio) {
                /* without a spacing yet (the stream's second packet) a step cannot be told */
                s->jump_us = s->seen && spacing > 0 && s->last_pts_us != INT64_MIN
                                     ? noise_free(p->pts_us - (s->last_pts_us + spacing))
                                     : 0;
                s->jump_known = true;
        }
        if (t->source != TIMELINE_UNKNOWN)
                stream_finalize(t, s); /* a report after the decision: not waited for */
}

/* Continuity bookkeeping: last times and the stream's packet spacing (the
 * least seen: a step or a lost packet only makes one spacing longer). */
static void stream_note(struct timeline_stream *s, const struct timeline_packet *p)
{
        int64_t prev = s->cfg.audio ? s->last_pts_us : s->last_dts_us;
        int64_t cur = s->cfg.audio ? p->pts_us : p->dts_us;

        if (prev != INT64_MIN && cur != INT64_MIN && cur - prev >= JUMP_NOISE_US && cur - prev < 1000000 &&
            (s->frame_us == 0 || cur - prev < s->frame_us))
                s->frame_us = cur - prev;
        s->last_pts_us = p->pts_us;
        s->last_dts_us = p->dts_us;
        s->last_dur_us = p->dur_us;
        s->seen = true;
}

/* The packet's receive delay, and for the step its pts (only a real one:
 * a parser's first frame may have none, and its dts is a guess). */
static void stream_delay_note(struct timeline_stream *s, int64_t pts, int64_t delay)
{
        if (s->synced) {
                if (pts != INT64_MIN && s->n_post < TIMELINE_SYNC_PACKETS)
                        s->post_pts[s->n_post++] = pts;
                if (!s->have_post_delay || delay < s->post_delay_us)
                        s->post_delay_us = delay;
                s->have_post_delay = true;
        } else {
                if (pts != INT64_MIN)
                        s->pre_pts[s->n_pre++ % TIMELINE_SYNC_PACKETS] = pts;
                if (!s->have_pre_delay || delay < s->pre_delay_us)
                        s->pre_delay_us = delay;
                s->have_pre_delay = true;
        }
}

int timeline_observe(struct timeline *t, const struct timeline_packet *p)
{
        struct timeline_stream *s;
        int64_t media, stamp;
        bool first;

        if (p->stream < 0 || p->stream >= t->n_streams)
                return 0;
        s = &t->st[p->stream];
        media = p->pts_us != INT64_MIN ? p->pts_us : p->dts_us;
        if (s->cfg.prft_lags) { /* this packet's stamp belongs to the next one */
                stamp = s->pending_prft_us;
                s->pending_prft_us = p->prft_us;
        } else {
                stamp = p->prft_us;
        }
        if (media == INT64_MIN)
                return s->synced;
        if (!t->have_first) {
                t->first_recv_mono_us = p->recv_mono_us;
                t->have_first = true;
        }
        first = !s->seen;
        if (stamp != INT64_MIN && p->pts_us != INT64_MIN && !s->synced)
                stream_sync(t, s, p);
        stream_delay_note(s, p->pts_us, p->recv_real_us - media - (s->cfg.audio ? packet_len_us(s, p) : 0));
        if (first && t->source != TIMELINE_UNKNOWN) /* a stream that starts after the decision */
                s->off_us[0] = s->off_us[1] = s->synced && t->n_obs > 0 ? t->base_us : stream_delay(s);
        if (stamp != INT64_MIN && p->pts_us != INT64_MIN && t->n_obs < TIMELINE_OBS_MAX)
                t->obs[t->n_obs++] = fold(stamp - p->pts_us, stream_delay(s), s->cfg.wrap_us);
        stream_note(s, p);
        return s->synced;
}

static int cmp_i64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

        return (x > y) - (x < y);
}

static int64_t obs_median(const struct timeline *t)
{
        int64_t v[TIMELINE_OBS_MAX];

        memcpy(v, t->obs, sizeof(v[0]) * (size_t)t->n_obs);
        qsort(v, (size_t)t->n_obs, sizeof(v[0]), cmp_i64);
        return v[t->n_obs / 2];
}

/* The stream that judges RTCP against the receive clock: video if it has a
 * report, else the first that has one. */
static const struct timeline_stream *reference_stream(const struct timeline *t)
{
        for (int i = 0; i < t->n_streams; i++)
                if (t->st[i].synced)
                        return &t->st[i];
        return NULL;
}

/* Every stream of the session has its report (also one that has sent
 * nothing yet: its first packets would have nothing to be placed by), and
 * video that had packets before it has enough after it to size the step. */
static bool all_ready(const struct timeline *t)
{
        for (int i = 0; i < t->n_streams; i++) {
                const struct timeline_stream *s = &t->st[i];

                if (!s->synced || (!s->cfg.audio && s->n_pre > 0 && s->n_post < TIMELINE_SYNC_PACKETS))
                        return false;
        }
        return true;
}

bool timeline_decide(struct timeline *t, int64_t now_mono_us, bool force)
{
        const struct timeline_stream *ref;
        int64_t base = 0;

        if (t->source != TIMELINE_UNKNOWN)
                return true;
        if (!t->have_first)
                return false;
        if (!force && !all_ready(t) && now_mono_us - t->first_recv_mono_us < t->wait_us)
                return false;
        for (int i = 0; i < t->n_streams; i++)
                stream_finalize(t, &t->st[i]);
        ref = reference_stream(t);
        if (t->n_obs > 0 && ref) {
                t->rtcp_base_us = obs_median(t);
                t->skew_us = t->rtcp_base_us - stream_delay(ref);
                t->rtcp_rejected = t->skew_us > TIMELINE_RTCP_MAX_SKEW_US || t->skew_us < -TIMELINE_RTCP_MAX_SKEW_US;
                /* rejected: our clock places the footage, the reports still sync the streams */
                base = t->rtcp_rejected ? stream_delay(ref) : t->rtcp_base_us;
                t->source = t->rtcp_rejected ? TIMELINE_RECEIVE : TIMELINE_RTCP;
                t->base_us = base;
        } else {
                t->source = TIMELINE_RECEIVE;
        }
        for (int i = 0; i < t->n_streams; i++) {
                struct timeline_stream *s = &t->st[i];

                if (s->synced && t->n_obs > 0) {
                        s->off_us[1] = base;
                        s->off_us[0] = base + s->jump_us;
                } else {
                        s->off_us[0] = s->off_us[1] = stream_delay(s);
                        t->rtcp_late |= s->seen && t->n_obs > 0;
                }
        }
        return true;
}

const char *timeline_source_name(enum timeline_source s)
{
        return s == TIMELINE_RTCP ? "rtcp" : s == TIMELINE_RECEIVE ? "receive" : "unknown";
}
