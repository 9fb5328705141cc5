/* timeline: a camera frame's absolute time in µs since the Unix epoch.
 * Preferred source: the camera's RTCP sender reports, which libavformat turns
 * into start_time_realtime (the wall time of pts 0): two recorders of the same
 * camera then give the same frame the same time.  Fallback when no report
 * comes within TIMELINE_RTCP_WAIT_US: the receive clock, offset by the least
 * delay seen (receive time - media time) over the packets held meanwhile. */
#ifndef MWR_WORKER_TIMELINE_H
#define MWR_WORKER_TIMELINE_H

#include <stdbool.h>
#include <stdint.h>

#define TIMELINE_RTCP_WAIT_US (3 * INT64_C(1000000)) /* hold packets this long for a sender report */
/* A sender report this far from our clock is a camera without NTP (1970,
 * 2000, ...): its time would file footage in the wrong year, and retention
 * would delete it at once.  The receive clock is used instead. */
#define TIMELINE_RTCP_MAX_SKEW_US (300 * INT64_C(1000000))

enum timeline_source { TIMELINE_UNKNOWN, TIMELINE_RTCP, TIMELINE_RECEIVE };

struct timeline {
        enum timeline_source source;
        int64_t base_us;          /* camera time of media time 0 */
        int64_t first_recv_mono_us;
        int64_t min_delay_us;     /* receive: least (recv_real - media) seen */
        bool have_sample;
        bool rtcp_rejected;       /* a report came but was too far off */
};

void timeline_init(struct timeline *t);

/* Feed one received packet's media time and receive clocks; rtcp_base_us is
 * libavformat's start_time_realtime (INT64_MIN while unknown).  Returns true
 * once the timeline is known (then timeline_time_us works). */
bool timeline_observe(struct timeline *t, int64_t media_us, int64_t recv_real_us, int64_t recv_mono_us,
                      int64_t rtcp_base_us);

static inline int64_t timeline_time_us(const struct timeline *t, int64_t media_us)
{
        return t->base_us + media_us;
}

const char *timeline_source_name(enum timeline_source s);

#endif
