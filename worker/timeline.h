/* timeline: the camera time (µs since the Unix epoch) of every packet of one
 * RTSP session, per stream (video, audio).  The rule (docs/worker.md, "Camera
 * time"):
 *   1. RTCP first.  libavformat stamps a packet with the camera's clock from
 *      that stream's last sender report (AV_PKT_DATA_PRFT).  prft - pts is
 *      the same offset B for every stream of a session, whatever the server
 *      put in PLAY's Range (libavformat adds the npt to pts, and it is not in
 *      B) -- so B is learned from those stamps, and camera time = pts + B.
 *      For H.264/H.265 libavformat's parser hands each packet's stamp to the
 *      access unit before it (prft_lags): the stamp is paired with the next
 *      packet.  A stamp taken across a 32-bit RTP wrap is off by 2^32 ticks
 *      (libavformat subtracts the timestamps as 64-bit numbers): folded.
 *   2. Packets are held until every stream has a report or `wait_us` passed
 *      since the first packet (reports come every 1-5 s; a late first one is
 *      common).  Nothing is lost meanwhile.  A stream that starts only after
 *      that is placed by the receive clock (rule 3).
 *   3. Without a report by then: the receive clock, offset by the least delay
 *      seen (receive time - media time; for audio, - the packet's length too:
 *      a packet is sent after its last sample).  Per stream.
 *   4. RTCP and the receive clock further apart than TIMELINE_RTCP_MAX_SKEW_US
 *      (a camera clock that is off): the receive clock decides where footage
 *      is filed, the reports still keep the streams in sync with each other.
 *   5. A stream whose pts step when its own first report arrives (libavformat
 *      rebases a second stream onto the first one's report) keeps its time
 *      continuous: the step is measured and absorbed.  Audio: its packets
 *      follow on (the step is where the next one should have been).  Video
 *      (B-frames make decode order irregular in pts): the step modulo a
 *      frame is exact (both sides lie on one frame grid), and the whole
 *      frames are those that make the frames before and after it one run
 *      without a frame twice or a hole (TIMELINE_SYNC_PACKETS on each side;
 *      the receive clock cannot tell: the first packets come out of
 *      libavformat's probe buffer late).
 *   6. Within a session the offsets never change afterwards: a recording is
 *      continuous in time.  (Timestamp jumps end the session: recorder.c.)
 * Pure computation: the caller gives the clocks. */
#ifndef MWR_WORKER_TIMELINE_H
#define MWR_WORKER_TIMELINE_H

#include <stdbool.h>
#include <stdint.h>

#define TIMELINE_MAX_STREAMS 2
#define TIMELINE_RTCP_WAIT_US (6 * INT64_C(1000000))   /* cameras report every 1-5 s */
/* Further apart than this, RTCP and our clock disagree about where footage
 * belongs: a camera whose clock is off (no NTP, drifted) would file it
 * seconds to years away.  Then our clock decides. */
#define TIMELINE_RTCP_MAX_SKEW_US (2 * INT64_C(1000000))
#define TIMELINE_OBS_MAX 64   /* RTCP stamps kept to take the median of */
#define TIMELINE_SYNC_PACKETS 8 /* video on each side of its first report, to size its step (> a B-frame run) */
#define TIMELINE_STEP_MAX_FRAMES 150 /* whole frames searched for the step (6 s at 25 fps) */

enum timeline_source { TIMELINE_UNKNOWN, TIMELINE_RTCP, TIMELINE_RECEIVE };

/* What a stream is, for the rules above. */
struct timeline_stream_cfg {
        bool prft_lags;    /* H.264/H.265 through libavformat's parser */
        bool audio;        /* a packet is sent after its last sample */
        int64_t wrap_us;   /* 2^32 RTP ticks in µs (0: no folding) */
};

/* One received packet.  Times in µs; INT64_MIN when unknown. */
struct timeline_packet {
        int stream;        /* 0 .. n_streams-1 */
        int64_t pts_us, dts_us, dur_us; /* media time (libavformat), dur 0 if unknown */
        int64_t prft_us;   /* the RTCP stamp (AV_PKT_DATA_PRFT wallclock) */
        int64_t recv_real_us, recv_mono_us;
};

struct timeline_stream {
        struct timeline_stream_cfg cfg;
        bool seen, synced, jump_known;
        int64_t last_pts_us, last_dts_us, last_dur_us, frame_us;
        int64_t pending_prft_us;  /* prft_lags: the previous packet's stamp */
        int64_t jump_us;          /* pts step at this stream's first report */
        /* least recv - media before and after its first report (each in its own pts domain) */
        int64_t pre_delay_us, post_delay_us;
        bool have_pre_delay, have_post_delay;
        int n_pre, n_post;           /* pts noted on each side (post: at most TIMELINE_SYNC_PACKETS) */
        int64_t pre_pts[TIMELINE_SYNC_PACKETS];  /* ring: the last video pts before the report */
        int64_t post_pts[TIMELINE_SYNC_PACKETS]; /* the first after it */
        int64_t off_us[2];        /* camera - media: [0] before its first report, [1] after */
};

struct timeline {
        enum timeline_source source;
        int n_streams;
        struct timeline_stream st[TIMELINE_MAX_STREAMS];
        int64_t wait_us, first_recv_mono_us;
        bool have_first;
        int64_t obs[TIMELINE_OBS_MAX];
        int n_obs;
        int64_t rtcp_base_us;     /* B, when learned */
        int64_t base_us;          /* the offset of streams with reports: B, or B moved onto our clock */
        int64_t skew_us;          /* B - receive offset of the reference stream */
        bool rtcp_rejected;       /* skew over TIMELINE_RTCP_MAX_SKEW_US */
        bool rtcp_late;           /* decided without a report on some stream */
};

void timeline_init(struct timeline *t, int n_streams, const struct timeline_stream_cfg *cfg, int64_t wait_us);

/* Feed one packet (in arrival order).  Returns its epoch: which of its
 * stream's offsets applies to it (hold it with the packet). */
int timeline_observe(struct timeline *t, const struct timeline_packet *p);

/* Decides when it can (see the rules); `force` decides now with what is
 * known (the hold buffer is full, the session ends).  True once known. */
bool timeline_decide(struct timeline *t, int64_t now_mono_us, bool force);

static inline int64_t timeline_time_us(const struct timeline *t, int stream, int epoch, int64_t media_us)
{
        return media_us + t->st[stream].off_us[epoch];
}

const char *timeline_source_name(enum timeline_source s);

#endif
