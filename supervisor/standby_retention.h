/* standby_retention: a hot standby records every camera twice.  Once both
 * copies are older than supervisor.standby_retention_seconds, one goes:
 * on a timer the supervisor runs `mwr dedup --delete` over the stretch that
 * has come of age since the last run, and mwr deletes the segments whose
 * every frame is in the copy the timeline uses (continuity/timeline.h,
 * `covered`).  What only one copy holds is never deleted.  The child runs
 * off the loop (tool_run.h); a failed run is retried over the same stretch. */
#ifndef MWR_SUPERVISOR_STANDBY_RETENTION_H
#define MWR_SUPERVISOR_STANDBY_RETENTION_H

#include <stdint.h>

#include <systemd/sd-event.h>

/* After a supervisor start, footage this much older than the retention is
 * looked at once (what came of age while no supervisor ran); older than
 * that is left to the disk guard. */
#define SR_BACKLOG_US (INT64_C(24) * 3600 * 1000000)

struct sr_stats {
        uint64_t runs, failures;
        uint64_t deleted_segments, deleted_bytes;
        int64_t done_to_us; /* everything recorded before this has been judged (0: nothing yet) */
};

/* The next stretch [*from, *to): up to now - retention, from where the last
 * run ended less margin_us (segments are judged only wholly inside a
 * stretch, so stretches overlap by more than a segment), or the backlog
 * after a start.  0, or -EAGAIN when nothing new has come of age. */
int sr_window(int64_t now_real_us, int64_t retention_us, int64_t done_to_us, int64_t margin_us, int64_t *from,
              int64_t *to);

struct standby_retention;

/* Every period (a quarter of the retention, 2 s .. 5 min) from now on.
 * mwr_tool and config_path are copied.  0 or a negative errno. */
int standby_retention_start(sd_event *e, const char *mwr_tool, const char *config_path, int retention_s,
                            int segment_seconds, struct standby_retention **out);
/* A run under way is killed.  NULL is fine. */
void standby_retention_free(struct standby_retention *r);
const struct sr_stats *standby_retention_stats(const struct standby_retention *r);

#endif
