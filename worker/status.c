/* status: the health rules (see status.h).  Pure apart from /proc reads. */
#include "worker/status.h"

#include <stdio.h>
#include <string.h>

void status_evaluate(struct status_snapshot *s, int64_t *ready_since_real_us)
{
        size_t standby = 0;
        bool all, any;

        s->running = 0;
        for (size_t i = 0; i < s->n_cameras; i++) {
                s->running += s->cameras[i].recording;
                standby += s->cameras[i].standby;
        }
        /* a camera another instance of ours holds is recorded: this one is ready to take it */
        all = s->running + standby == s->n_cameras;
        any = s->running > 0 || s->n_cameras == 0;
        if (!*ready_since_real_us && ((all && s->n_cameras > 0) || (any && s->uptime_us >= STATUS_START_TIMEOUT_US) ||
                                      s->n_cameras == 0))
                *ready_since_real_us = s->now_real_us;
        s->ready_since_real_us = *ready_since_real_us;

        s->reason = s->disk_unavailable ? "storage_unavailable"
                  : s->disk_full        ? "disk_full"
                  : s->storage_error    ? "write_error"
                  : !s->db_ok           ? "database_error"
                                        : "";
        if (*s->reason)
                s->status = "unhealthy";
        else if (!*ready_since_real_us)
                s->status = "starting";
        else if (all)
                s->status = "healthy";
        else if (any)
                s->status = "degraded";
        else
                s->status = "unhealthy";
        s->http_code = !strcmp(s->status, "healthy") || !strcmp(s->status, "degraded") ? 200 : 503;
}

void status_read_process(uint64_t *rss_bytes, int *threads)
{
        char line[256];
        FILE *f = fopen("/proc/self/status", "re");
        unsigned long v;

        *rss_bytes = 0;
        *threads = 0;
        if (!f)
                return;
        while (fgets(line, sizeof(line), f)) {
                if (sscanf(line, "VmRSS: %lu kB", &v) == 1)
                        *rss_bytes = (uint64_t)v * 1024;
                else if (sscanf(line, "Threads: %lu", &v) == 1)
                        *threads = (int)v;
        }
        fclose(f);
}
