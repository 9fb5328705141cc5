/* restart_policy: when to restart a worker that died without being asked
 * to (s6-supervise's throttle, as data): at once the first time, then with
 * doubling backoff (0.5 s .. SUP_RESTART_BACKOFF_MAX_US) while it keeps
 * dying young; a worker that lived SUP_RESTART_STABLE_US starts over at
 * once.  A crash loop is SUP_CRASH_LOOP_COUNT crashes within the last
 * SUP_CRASH_LOOP_WINDOW_US: reported, never given up on.  Pure: the caller
 * gives the clock. */
#ifndef MWR_SUPERVISOR_RESTART_POLICY_H
#define MWR_SUPERVISOR_RESTART_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#define SUP_RESTART_BACKOFF_MIN_US 500000ULL
#define SUP_RESTART_BACKOFF_MAX_US (5 * 1000000ULL)
#define SUP_RESTART_STABLE_US (10 * 1000000ULL) /* up this long: the next crash restarts at once again */
#define SUP_CRASH_LOOP_COUNT 5                  /* crashes within SUP_CRASH_LOOP_WINDOW_US: a crash loop */
#define SUP_CRASH_LOOP_WINDOW_US (60 * 1000000ULL)

struct restart_policy {
        uint64_t crash_mono_us[SUP_CRASH_LOOP_COUNT]; /* ring of the last crashes */
        unsigned crashes;                             /* in all (the ring's write position) */
        uint64_t backoff_us;
};

/* A crash at `now` of a worker that lived `lived_us`: the delay before its
 * restart (0: at once). */
uint64_t restart_policy_crash(struct restart_policy *p, uint64_t now, uint64_t lived_us);

/* A restart at once failed to start the worker: wait this long instead. */
uint64_t restart_policy_spawn_failed(struct restart_policy *p);

/* Crashes within the window before now. */
unsigned restart_policy_recent(const struct restart_policy *p, uint64_t now);
bool restart_policy_in_loop(const struct restart_policy *p, uint64_t now);

#endif
