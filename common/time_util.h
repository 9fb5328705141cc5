/* time_util: one unit for time, microseconds in int64_t, with the clock in
 * the name.  Monotonic and realtime are never mixed silently. */
#ifndef MWR_COMMON_TIME_UTIL_H
#define MWR_COMMON_TIME_UTIL_H

#include <stdint.h>
#include <time.h>

#define USEC_PER_SEC INT64_C(1000000)
#define USEC_PER_MSEC INT64_C(1000)

static inline int64_t clock_us(clockid_t id)
{
        struct timespec ts;

        clock_gettime(id, &ts);
        return (int64_t)ts.tv_sec * USEC_PER_SEC + ts.tv_nsec / 1000;
}

static inline int64_t now_mono_us(void) { return clock_us(CLOCK_MONOTONIC); }
/* The same clock, read from the last tick (up to a few ms behind): for
 * deadlines checked thousands of times a second. */
static inline int64_t now_mono_coarse_us(void) { return clock_us(CLOCK_MONOTONIC_COARSE); }
static inline int64_t now_real_us(void) { return clock_us(CLOCK_REALTIME); }

#endif
