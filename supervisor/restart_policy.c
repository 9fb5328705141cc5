/* restart_policy: see restart_policy.h. */
#include "supervisor/restart_policy.h"

unsigned restart_policy_recent(const struct restart_policy *p, uint64_t now)
{
        unsigned n = 0;

        for (int i = 0; i < SUP_CRASH_LOOP_COUNT; i++)
                n += p->crash_mono_us[i] && now - p->crash_mono_us[i] < SUP_CRASH_LOOP_WINDOW_US;
        return n;
}

bool restart_policy_in_loop(const struct restart_policy *p, uint64_t now)
{
        return restart_policy_recent(p, now) >= SUP_CRASH_LOOP_COUNT;
}

uint64_t restart_policy_crash(struct restart_policy *p, uint64_t now, uint64_t lived_us)
{
        p->crash_mono_us[p->crashes++ % SUP_CRASH_LOOP_COUNT] = now;
        if (lived_us >= SUP_RESTART_STABLE_US)
                p->backoff_us = 0;
        else
                p->backoff_us = p->backoff_us ? p->backoff_us * 2 : SUP_RESTART_BACKOFF_MIN_US;
        if (p->backoff_us > SUP_RESTART_BACKOFF_MAX_US)
                p->backoff_us = SUP_RESTART_BACKOFF_MAX_US;
        return p->backoff_us;
}

uint64_t restart_policy_spawn_failed(struct restart_policy *p)
{
        if (p->backoff_us < SUP_RESTART_BACKOFF_MIN_US)
                p->backoff_us = SUP_RESTART_BACKOFF_MIN_US;
        return p->backoff_us;
}
