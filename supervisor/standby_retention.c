#include "supervisor/standby_retention.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/time_util.h"
#include "common/timefmt.h"
#include "supervisor/tool_run.h"

#define SR_RUN_TIMEOUT_US (INT64_C(600) * 1000000) /* one run; killed after */

struct standby_retention {
        sd_event *e;
        sd_event_source *timer;
        struct tool_run tool;
        char mwr_tool[PATH_MAX], config[PATH_MAX];
        int64_t retention_us, margin_us, period_us;
        int64_t run_to_us, run_started_mono_us;
        struct sr_stats st;
};

int sr_window(int64_t now_real_us, int64_t retention_us, int64_t done_to_us, int64_t margin_us, int64_t *from,
              int64_t *to)
{
        *to = now_real_us - retention_us;
        *from = done_to_us ? done_to_us - margin_us : *to - SR_BACKLOG_US;
        if (done_to_us && *to <= done_to_us)
                return -EAGAIN;
        return 0;
}

static void run_done(void *ud, int status)
{
        struct standby_retention *r = ud;
        cJSON *j = cJSON_Parse(r->tool.out), *cams = j ? cJSON_GetObjectItem(j, "cameras") : NULL;
        uint64_t segs = 0, bytes = 0;
        char t[TIMEFMT_RFC3339_MAX];

        r->st.runs++;
        if (status != 0 || !cams) {
                r->st.failures++;
                log_warn("standby retention: mwr dedup --delete exited with %d (retried next time): %.300s", status,
                         tool_run_says(&r->tool));
                cJSON_Delete(j);
                return;
        }
        if (r->tool.err_len) /* it went on: files it could not see keep their rows */
                log_warn("standby retention: mwr dedup --delete: %.500s", r->tool.err);
        for (cJSON *c = cams->child; c; c = c->next) {
                double n = cJSON_GetNumberValue(cJSON_GetObjectItem(c, "deleted_segments"));
                double b = cJSON_GetNumberValue(cJSON_GetObjectItem(c, "deleted_bytes"));

                if (n > 0) {
                        segs += (uint64_t)n;
                        bytes += (uint64_t)b;
                        log_info("standby retention: %s: deleted %.0f duplicate segments (%.1f MB)",
                                 cJSON_GetStringValue(cJSON_GetObjectItem(c, "camera")), n, b / 1e6);
                }
        }
        cJSON_Delete(j);
        r->st.deleted_segments += segs;
        r->st.deleted_bytes += bytes;
        r->st.done_to_us = r->run_to_us;
        timefmt_rfc3339(r->run_to_us, t);
        log_notice("standby retention: one copy kept of everything recorded before %s: %" PRIu64
                   " segments (%.1f MB) deleted in %.1f s",
                   t, segs, (double)bytes / 1e6, (double)(now_mono_us() - r->run_started_mono_us) / 1e6);
}

static int on_timer(sd_event_source *src, uint64_t usec, void *userdata)
{
        struct standby_retention *r = userdata;
        char from[32], to[32];
        char *argv[] = { r->mwr_tool, "dedup", "--config", r->config, "--from", from, "--to", to, "--json",
                         "--delete", NULL };
        int64_t lo, hi;
        int e;

        sd_event_source_set_time_relative(r->timer, (uint64_t)r->period_us);
        sd_event_source_set_enabled(r->timer, SD_EVENT_ONESHOT);
        if (r->tool.pid > 0) {
                if (now_mono_us() - r->run_started_mono_us > SR_RUN_TIMEOUT_US) {
                        log_warn("standby retention: mwr dedup ran for more than %d s: killed",
                                 (int)(SR_RUN_TIMEOUT_US / 1000000));
                        tool_run_kill(&r->tool, "ran too long");
                }
                return 0;
        }
        if (sr_window(now_real_us(), r->retention_us, r->st.done_to_us, r->margin_us, &lo, &hi) < 0)
                return 0;
        snprintf(from, sizeof(from), "%.6f", (double)lo / 1e6);
        snprintf(to, sizeof(to), "%.6f", (double)hi / 1e6);
        r->run_to_us = hi;
        r->run_started_mono_us = now_mono_us();
        if ((e = tool_run_start(&r->tool, r->e, argv, run_done, r)) < 0) {
                r->st.runs++;
                r->st.failures++;
                log_warn("standby retention: cannot run %s: %s", r->mwr_tool, strerror(-e));
        }
        return 0;
}

int standby_retention_start(sd_event *e, const char *mwr_tool, const char *config_path, int retention_s,
                            int segment_seconds, struct standby_retention **out)
{
        struct standby_retention *r = calloc(1, sizeof(*r));
        int64_t period;
        int rc;

        if (!r)
                return -ENOMEM;
        r->e = e;
        tool_run_init(&r->tool);
        snprintf(r->mwr_tool, sizeof(r->mwr_tool), "%s", mwr_tool);
        snprintf(r->config, sizeof(r->config), "%s", config_path);
        r->retention_us = (int64_t)retention_s * USEC_PER_SEC;
        /* a segment runs to the keyframe after segment_seconds: four of them, at least a minute */
        r->margin_us = (int64_t)(segment_seconds * 4 > 60 ? segment_seconds * 4 : 60) * USEC_PER_SEC;
        period = r->retention_us / 4;
        r->period_us = period < 2 * USEC_PER_SEC ? 2 * USEC_PER_SEC : period > 300 * USEC_PER_SEC ? 300 * USEC_PER_SEC
                                                                                                  : period;
        if ((rc = sd_event_add_time_relative(e, &r->timer, CLOCK_MONOTONIC, (uint64_t)r->period_us, 100000, on_timer,
                                             r)) < 0) {
                free(r);
                return rc;
        }
        *out = r;
        return 0;
}

void standby_retention_free(struct standby_retention *r)
{
        if (!r)
                return;
        tool_run_abort(&r->tool);
        r->timer = sd_event_source_disable_unref(r->timer);
        free(r);
}

const struct sr_stats *standby_retention_stats(const struct standby_retention *r)
{
        return &r->st;
}
