/* daemon: `mwr-supervisor run`.  One sd-event loop owns two worker slots
 * (supervisor/slot.h), keeps the active one running (restart at once after
 * a crash, then with capped backoff; a crash loop is reported, never given
 * up on), kills a worker whose watchdog expires, answers the control socket
 * and speaks sd_notify to systemd (READY when the active worker is ready,
 * STATUS, WATCHDOG, STOPPING).  Slot state is saved in the DB so that a
 * restarted supervisor adopts running workers instead of starting new
 * ones.  SIGTERM/SIGINT stop the workers gracefully, then the daemon. */
#ifndef MWR_SUPERVISOR_DAEMON_H
#define MWR_SUPERVISOR_DAEMON_H

#include "common/config.h"
#include "supervisor/restart_policy.h"

#define SUP_WORKER_WATCHDOG_US (10 * 1000000ULL) /* a worker silent this long is hung: killed, restarted */
#define SUP_HAPROXY_SYNC_SCANS 3 /* haproxy's admin states checked every 3 s */

/* Runs until SIGTERM/SIGINT; returns the exit code.  self_exe: this
 * binary's path, re-executed by SIGUSR2 or `upgrade` (workers keep running:
 * they stay our children across exec and are adopted from the DB). */
int daemon_run(const struct mwr_config *cfg, const char *self_exe);

#endif
