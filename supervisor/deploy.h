/* deploy: the blue-green switch as an explicit state machine on the
 * supervisor's event loop.  Steps (each one progress line to the client):
 *   validate (--version, --check-config) -> spawn in the free slot ->
 *   READY -> GET /health "healthy" -> haproxy: new ready, old drain ->
 *   overlap (both record) -> old's sessions to 0 -> old maint ->
 *   SIGTERM old (SIGKILL after stop_timeout) -> mwr dedup over the
 *   handover window -> done.
 * Any failure before the old worker is stopped puts traffic back on the
 * old worker, stops the new one and ends "failed: reason"; the old worker
 * records throughout.  Timers and child processes only: nothing blocks
 * except haproxy runtime commands (local socket, 2 s cap each); its row
 * in the database is written in the background (supervisor/chores.h). */
#ifndef MWR_SUPERVISOR_DEPLOY_H
#define MWR_SUPERVISOR_DEPLOY_H

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "common/config.h"
#include "supervisor/chores.h"
#include "supervisor/control.h"
#include "supervisor/slot.h"

#define DEPLOY_HEALTH_RETRY_US (500 * 1000ULL)
#define DEPLOY_DRAIN_MAX_US (10 * 1000000ULL) /* old server's sessions to reach 0 */
#define DEPLOY_CHECK_TIMEOUT_US (10 * 1000000ULL) /* --version / --check-config */
#define DEPLOY_DEDUP_TIMEOUT_US (120 * 1000000ULL)
#define DEPLOY_HAPROXY_TIMEOUT_US (10 * 1000000ULL) /* a step's haproxy commands (each capped at 2 s) */
#define DEPLOY_WINDOW_MARGIN_US (30 * 1000000ULL) /* handover window: new start - margin .. old stop + margin */

struct deploy;

struct deploy_result {
        bool ok;
        double duration_s;
        bool continuity_checked;
        double frames, duplicate_frames, gaps; /* over the handover window, from mwr dedup */
};

/* What a deploy needs from the daemon.  slots and *active are the
 * daemon's; the deploy changes *active when traffic moves. */
struct deploy_env {
        sd_event *e;
        const struct mwr_config *cfg;
        struct chores *chores; /* the deploy's row in the database */
        struct slot *slots; /* [2] */
        int *active;
        char mwr_tool[4096]; /* the `mwr` binary for dedup, "" to skip */
        void (*changed)(void *ud); /* save + STATUS */
        void *ud;
};

/* Start a deploy of binary (NULL: the configured worker binary) with the
 * given overlap and health timeout (-1: from the config).  conn (may be
 * NULL) gets the progress lines and is closed at the end.  -EBUSY if one
 * runs.  done(ok) is called at the end, after the last line. */
int deploy_start(struct deploy **out, const struct deploy_env *env, const char *binary, int overlap_s,
                 int health_timeout_s, struct control_conn *conn, void (*done)(void *ud, bool ok), void *ud);

/* The slot's event, while a deploy runs (the daemon forwards them).  True
 * when the deploy took care of it (the daemon's restart policy then stays
 * out: a new worker dying mid-deploy means rollback, not restart). */
bool deploy_on_slot(struct deploy *d, struct slot *s, enum slot_event ev);

const struct deploy_result *deploy_get_result(const struct deploy *d);
void deploy_free(struct deploy *d);

#endif
