/* timeline: choose the time source for one camera connection; see timeline.h. */
#include "worker/timeline.h"

void timeline_init(struct timeline *t)
{
        *t = (struct timeline){ .source = TIMELINE_UNKNOWN };
}

bool timeline_observe(struct timeline *t, int64_t media_us, int64_t recv_real_us, int64_t recv_mono_us,
                      int64_t rtcp_base_us)
{
        int64_t delay = recv_real_us - media_us;

        if (t->source != TIMELINE_UNKNOWN)
                return true;
        if (!t->have_sample || delay < t->min_delay_us)
                t->min_delay_us = delay;
        if (!t->have_sample)
                t->first_recv_mono_us = recv_mono_us;
        t->have_sample = true;
        if (rtcp_base_us != INT64_MIN && (rtcp_base_us + media_us - recv_real_us > TIMELINE_RTCP_MAX_SKEW_US ||
                                          recv_real_us - (rtcp_base_us + media_us) > TIMELINE_RTCP_MAX_SKEW_US)) {
                t->rtcp_rejected = true;
                t->source = TIMELINE_RECEIVE;
                t->base_us = t->min_delay_us;
        } else if (rtcp_base_us != INT64_MIN) {
                t->source = TIMELINE_RTCP;
                t->base_us = rtcp_base_us;
        } else if (recv_mono_us - t->first_recv_mono_us >= TIMELINE_RTCP_WAIT_US) {
                t->source = TIMELINE_RECEIVE;
                t->base_us = t->min_delay_us;
        }
        return t->source != TIMELINE_UNKNOWN;
}

const char *timeline_source_name(enum timeline_source s)
{
        return s == TIMELINE_RTCP ? "rtcp" : "receive";
}
