/* daemon: the supervisor's event loop and restart policy (see daemon.h).
 * Events come from the slots (READY, exit), timers (restart backoff,
 * watchdog scan), signals and the control socket; each handler decides from
 * the slot's state what to do next, and saves the slots to the DB. */
#include "supervisor/daemon.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "common/fsutil.h"
#include "common/log.h"
#include "common/time_util.h"
#include "common/timefmt.h"
#include "db/db.h"
#include "supervisor/chores.h"
#include "supervisor/control.h"
#include "supervisor/control_cmd.h"
#include "supervisor/deploy.h"
#include "supervisor/metrics.h"
#include "supervisor/slot.h"
#include "supervisor/standby_retention.h"

#define SUP_SCAN_US (1000000ULL) /* watchdog and stop-timeout scan */

struct sup {
        const struct mwr_config *cfg;
        sd_event *e;
        struct db *db;           /* reads on the loop (start, status); writes go through chores */
        struct chores *chores;
        struct control *ctl;
        struct slot slots[2];
        int active;              /* index of the slot that takes traffic */
        sd_event_source *restart_timer, *scan_timer;
        struct restart_policy restart;
        unsigned restarts;
        bool stopping, ready_sent;
        uint64_t stop_deadline_mono_us;
        int64_t started_real_us;
        struct deploy *deploy; /* the one running, if any */
        bool deploy_over;      /* it has ended: freed from the loop (a defer, else the next scan) */
        unsigned scans;
        struct sup_metrics m;          /* counters; rendered once a second */
        struct metrics_server *metrics;
        uint64_t crash_pending_mono_us; /* the active worker died here; READY ends the recovery */
        char hap_error[256];   /* the last haproxy sync error logged: logged again only when it changes */
        char mwr_tool[PATH_MAX];
        const char *self_exe;
        char reexec[PATH_MAX]; /* set: the loop ends and main re-executes this */
        /* hot standby (supervisor.standby "hot"): the other slot records too */
        bool hot;
        sd_event_source *standby_timer;  /* the standby's restart backoff */
        struct restart_policy standby_restart;
        uint64_t failover_mono_us;       /* a failover's haproxy switch under way since */
        char rollback_binary[PATH_MAX];  /* hot: what the last deploy replaced */
        struct standby_retention *retention; /* hot: deletes the second copy once it is old */
        struct {                         /* hot: a deploy waiting for the standby to stop */
                bool on;
                char binary[PATH_MAX];   /* "" : the configured one */
                int overlap_s, health_s;
                struct control_conn *k;
                uint64_t deadline_mono_us; /* SIGKILL the standby after this */
        } pending;
};

static void start_deploy(struct sup *s, const char *binary, int overlap_s, int health_s, struct control_conn *k);

static void save(struct sup *s)
{
        struct db_slot rows[2];

        for (int i = 0; i < 2; i++) {
                struct slot *sl = &s->slots[i];

                rows[i] = (struct db_slot){ .name = sl->name, .port = sl->port, .pid = sl->pid,
                                            .instance_id = sl->name, .binary = sl->binary, .version = sl->version,
                                            .state = slot_state_name(sl->state), .active = i == s->active,
                                            .started_us = sl->started_real_us, .updated_us = now_real_us() };
        }
        if (s->chores)
                chores_save_slots(s->chores, rows);
}

static bool in_crash_loop(const struct sup *s)
{
        return restart_policy_in_loop(&s->restart, now_mono_us());
}

static void notify_status(struct sup *s)
{
        const struct slot *a = &s->slots[s->active], *b = &s->slots[1 - s->active];

        if (s->hot)
                sd_notifyf(0, "STATUS=active %s pid %d %s, standby %s pid %d %s, %u restarts%s", a->name, (int)a->pid,
                           slot_state_name(a->state), b->name, (int)b->pid, slot_state_name(b->state), s->restarts,
                           in_crash_loop(s) ? ", CRASH LOOP" : "");
        else
                sd_notifyf(0, "STATUS=active %s pid %d %s, %u restarts%s", a->name, (int)a->pid,
                           slot_state_name(a->state), s->restarts, in_crash_loop(s) ? ", CRASH LOOP" : "");
}

static int spawn_active(struct sup *s)
{
        struct slot *a = &s->slots[s->active];
        int e = slot_spawn(a, s->e, s->cfg->worker.binary, s->cfg->path, SUP_WORKER_WATCHDOG_US);

        if (e < 0)
                log_err("supervisor: starting worker %s (%s): %s", a->name, s->cfg->worker.binary, strerror(-e));
        else
                log_info("supervisor: worker %s started, pid %d, port %u", a->name, (int)a->pid, a->port);
        save(s);
        notify_status(s);
        return e;
}

static int on_restart_timer(sd_event_source *src, uint64_t usec, void *userdata)
{
        struct sup *s = userdata;

        s->restart_timer = sd_event_source_disable_unref(s->restart_timer);
        if (!s->stopping && s->slots[s->active].pid <= 0 && spawn_active(s) < 0 &&
            sd_event_add_time_relative(s->e, &s->restart_timer, CLOCK_MONOTONIC, SUP_RESTART_BACKOFF_MAX_US, 0,
                                       on_restart_timer, s) < 0)
                log_err("supervisor: cannot arm the restart timer of worker %s: it restarts at the next scan",
                        s->slots[s->active].name);
        return 0;
}

/* The active worker died without being asked to: restart it as the policy
 * says (supervisor/restart_policy.h). */
static void schedule_restart(struct sup *s, const struct slot *a)
{
        uint64_t now = now_mono_us(), delay = restart_policy_crash(&s->restart, now, now - a->started_mono_us);
        unsigned recent = restart_policy_recent(&s->restart, now);

        if (!s->crash_pending_mono_us)
                s->crash_pending_mono_us = now;
        if (recent >= SUP_CRASH_LOOP_COUNT)
                log_err("supervisor: worker %s is in a crash loop (%u crashes within %llu s); retrying every %.1f s",
                        a->name, recent, SUP_CRASH_LOOP_WINDOW_US / 1000000ULL, (double)delay / 1e6);
        s->restarts++;
        s->restart_timer = sd_event_source_disable_unref(s->restart_timer);
        if (delay == 0) {
                if (spawn_active(s) == 0)
                        return;
                delay = restart_policy_spawn_failed(&s->restart);
        }
        if (sd_event_add_time_relative(s->e, &s->restart_timer, CLOCK_MONOTONIC, delay, 0, on_restart_timer, s) < 0)
                log_err("supervisor: cannot arm the restart timer of worker %s: it restarts at the next scan",
                        a->name);
}

/* ---- hot standby ---------------------------------------------------------------------- */

/* The standby runs what the active runs (a deploy replaces both). */
static const char *standby_binary(const struct sup *s)
{
        const struct slot *a = &s->slots[s->active];

        return a->binary[0] ? a->binary : s->cfg->worker.binary;
}

static bool standby_wanted(const struct sup *s)
{
        return s->hot && !s->stopping && !s->deploy && !s->pending.on && !s->reexec[0];
}

static int on_standby_timer(sd_event_source *src, uint64_t usec, void *userdata);

static void spawn_standby(struct sup *s)
{
        struct slot *b = &s->slots[1 - s->active];
        const char *bin = standby_binary(s); /* the active's, never b's own: the spawn rewrites b->binary */
        int e;

        if (!standby_wanted(s) || b->pid > 0)
                return;
        if ((e = slot_spawn(b, s->e, bin, s->cfg->path, SUP_WORKER_WATCHDOG_US)) < 0) {
                log_err("supervisor: starting standby worker %s (%s): %s", b->name, bin, strerror(-e));
                if (!s->standby_timer &&
                    sd_event_add_time_relative(s->e, &s->standby_timer, CLOCK_MONOTONIC,
                                               restart_policy_spawn_failed(&s->standby_restart), 0, on_standby_timer,
                                               s) < 0)
                        log_err("supervisor: cannot arm the standby's restart timer: it starts at the next scan");
        } else {
                log_info("supervisor: standby worker %s started, pid %d, port %u", b->name, (int)b->pid, b->port);
        }
        save(s);
        notify_status(s);
}

static int on_standby_timer(sd_event_source *src, uint64_t usec, void *userdata)
{
        struct sup *s = userdata;

        s->standby_timer = sd_event_source_disable_unref(s->standby_timer);
        spawn_standby(s);
        return 0;
}

/* The standby died unasked (or the active's slot became the standby by a
 * failover): start it again as the standby's own restart policy says. */
static void schedule_standby(struct sup *s, uint64_t lived_us)
{
        uint64_t now = now_mono_us(), delay = restart_policy_crash(&s->standby_restart, now, lived_us);

        s->standby_timer = sd_event_source_disable_unref(s->standby_timer);
        if (delay == 0) {
                spawn_standby(s);
                return;
        }
        if (sd_event_add_time_relative(s->e, &s->standby_timer, CLOCK_MONOTONIC, delay, 0, on_standby_timer, s) < 0)
                log_err("supervisor: cannot arm the standby's restart timer: it starts at the next scan");
}

static void proxy_sync(struct sup *s);

/* The active worker died and the standby records: the standby takes the
 * traffic now (haproxy is switched at once, in the background), and the
 * dead slot comes back as the standby.  Nothing is lost: the standby's copy
 * covers what the dead worker had not written. */
static void failover(struct sup *s, struct slot *dead)
{
        struct slot *b = &s->slots[1 - dead->index];

        s->active = b->index;
        s->restarts++;
        s->m.failovers++;
        s->failover_mono_us = now_mono_us();
        restart_policy_crash(&s->restart, s->failover_mono_us, s->failover_mono_us - dead->started_mono_us);
        log_notice("supervisor: failover: worker %s died; standby %s (pid %d) takes the traffic, %s restarts as the "
                   "standby",
                   dead->name, b->name, (int)b->pid, dead->name);
        proxy_sync(s);
        save(s);
        schedule_standby(s, now_mono_us() - dead->started_mono_us);
}

/* hot: a deploy was waiting for the standby to stop; it can start now. */
static void start_pending_deploy(struct sup *s)
{
        char binary[PATH_MAX];
        struct control_conn *k = s->pending.k;

        snprintf(binary, sizeof(binary), "%s", s->pending.binary);
        s->pending.on = false;
        s->pending.k = NULL;
        if (k)
                control_reply(k, "standby %s stopped: deploying into it\n", s->slots[1 - s->active].name);
        start_deploy(s, binary[0] ? binary : NULL, s->pending.overlap_s, s->pending.health_s, k);
        if (!s->deploy)
                spawn_standby(s); /* the deploy did not start: the standby comes back */
}

static bool all_stopped(const struct sup *s)
{
        return s->slots[0].pid <= 0 && s->slots[1].pid <= 0;
}

/* READY=1 to our own manager, once: when the active worker records. */
static void notify_ready_once(struct sup *s)
{
        if (s->ready_sent)
                return;
        sd_notify(0, "READY=1");
        s->ready_sent = true;
}

static void on_slot(struct slot *sl, enum slot_event ev, void *userdata)
{
        struct sup *s = userdata;

        if (s->deploy && !s->stopping && deploy_on_slot(s->deploy, sl, ev)) {
                if (ev == SLOT_EV_READY && sl->index == s->active)
                        notify_ready_once(s);
                save(s);
                notify_status(s);
                return;
        }
        switch (ev) {
        case SLOT_EV_READY:
                log_info("supervisor: worker %s (pid %d) ready after %.2f s", sl->name, (int)sl->pid,
                         (double)(sl->ready_mono_us - sl->started_mono_us) / 1e6);
                if (sl->index == s->active)
                        notify_ready_once(s);
                if (sl->index == s->active && s->crash_pending_mono_us) {
                        s->m.last_recovery_s = (double)(now_mono_us() - (int64_t)s->crash_pending_mono_us) / 1e6;
                        s->m.recovery_s_sum += s->m.last_recovery_s;
                        s->m.recoveries++;
                        s->crash_pending_mono_us = 0;
                        log_notice("supervisor: recovered: worker %s records again %.2f s after the crash", sl->name,
                                   s->m.last_recovery_s);
                }
                break;
        case SLOT_EV_EXITED:
                if (sl->exit_status >= 0 && WIFSIGNALED(sl->exit_status))
                        log_warn("supervisor: worker %s killed by signal %d", sl->name, WTERMSIG(sl->exit_status));
                else if (sl->exit_status >= 0)
                        log_info("supervisor: worker %s exited with %d", sl->name, WEXITSTATUS(sl->exit_status));
                else
                        log_warn("supervisor: worker %s (adopted) is gone", sl->name);
                if (s->stopping) {
                        if (all_stopped(s))
                                sd_event_exit(s->e, 0);
                } else if (s->pending.on && sl->index != s->active) {
                        start_pending_deploy(s);
                } else if (sl->index == s->active && !sl->stop_requested) {
                        if (s->hot && s->slots[1 - sl->index].state == SLOT_READY)
                                failover(s, sl);
                        else
                                schedule_restart(s, sl);
                } else if (sl->index != s->active && s->hot && !sl->stop_requested) {
                        schedule_standby(s, now_mono_us() - sl->started_mono_us);
                }
                break;
        case SLOT_EV_STATUS:
        case SLOT_EV_STOPPING:
                break;
        }
        save(s);
        notify_status(s);
}

static char *render_metrics(struct sup *s)
{
        s->m.restarts = s->restarts;
        s->m.hot_standby = s->hot;
        if (s->retention) {
                const struct sr_stats *st = standby_retention_stats(s->retention);

                s->m.retention_runs = st->runs;
                s->m.retention_failures = st->failures;
                s->m.retention_deleted_segments = st->deleted_segments;
                s->m.retention_deleted_bytes = st->deleted_bytes;
        }
        s->m.crash_loop = in_crash_loop(s) && s->crash_pending_mono_us;
        s->m.uptime_s = (double)(now_real_us() - s->started_real_us) / 1e6;
        for (int i = 0; i < 2; i++) {
                s->m.slots[i].name = s->slots[i].name;
                s->m.slots[i].up = s->slots[i].pid > 0;
                s->m.slots[i].active = i == s->active;
                s->m.slots[i].ready = s->slots[i].state == SLOT_READY;
        }
        return sup_metrics_text(&s->m);
}

/* haproxy must send traffic to the active slot only: after a haproxy
 * restart without a state file, or a hand edit, put it right, and keep the
 * state file current so a reload starts right.  Every few seconds, in the
 * background (a hung haproxy holds each command up to 2 s). */
static void proxy_synced(void *ud, int e, bool changed, int active, const char *err)
{
        struct sup *s = ud;

        if (e == 0 && s->failover_mono_us && active == s->active) {
                s->m.last_failover_s = (double)(now_mono_us() - s->failover_mono_us) / 1e6;
                s->m.failover_s_sum += s->m.last_failover_s;
                s->m.failovers_timed++;
                s->failover_mono_us = 0;
                log_notice("supervisor: failover: haproxy sends to %s, %.3f s after %s died", s->slots[active].name,
                           s->m.last_failover_s, s->slots[1 - active].name);
        }
        if (e < 0) {
                if (strcmp(err, s->hap_error) != 0)
                        log_warn("supervisor: haproxy: %s (recording is not affected; retrying)", err);
                snprintf(s->hap_error, sizeof(s->hap_error), "%s", err);
                return;
        }
        if (s->hap_error[0])
                log_notice("supervisor: haproxy reachable again");
        s->hap_error[0] = '\0';
        if (changed)
                log_notice("supervisor: haproxy re-synced: %s ready, %s maint", s->slots[s->active].name,
                           s->slots[1 - s->active].name);
}

static void proxy_sync(struct sup *s)
{
        chores_proxy_sync(s->chores, s->active, s->hap_error[0] || s->scans <= SUP_HAPROXY_SYNC_SCANS, proxy_synced,
                          s);
}

/* Once a second: kill a worker whose watchdog expired (its exit restarts
 * it) and, while stopping, SIGKILL what outlived stop_timeout_seconds. */
static int on_scan(sd_event_source *src, uint64_t usec, void *userdata)
{
        struct sup *s = userdata;
        uint64_t now = now_mono_us();

        if (s->deploy && s->deploy_over) { /* its defer could not be added */
                deploy_free(s->deploy);
                s->deploy = NULL;
        }
        for (int i = 0; i < 2; i++) {
                struct slot *sl = &s->slots[i];

                if (sl->pid <= 0)
                        continue;
                if (s->stopping && now > s->stop_deadline_mono_us) {
                        log_warn("supervisor: worker %s still running %d s after SIGTERM: SIGKILL", sl->name,
                                 s->cfg->deploy.stop_timeout_seconds);
                        slot_kill(sl, SIGKILL);
                } else if (!s->stopping && sl->state == SLOT_READY &&
                           now - sl->watchdog_mono_us > SUP_WORKER_WATCHDOG_US) {
                        /* adopted workers too: their pings reach the socket we bound at their path */
                        log_err("supervisor: worker %s (pid %d) sent nothing for %.0f s: killing it", sl->name,
                                (int)sl->pid, (double)(now - sl->watchdog_mono_us) / 1e6);
                        slot_kill(sl, SIGKILL);
                }
        }
        if (s->pending.on && s->slots[1 - s->active].pid > 0 && now > s->pending.deadline_mono_us) {
                log_warn("supervisor: standby %s still running %d s after SIGTERM: SIGKILL",
                         s->slots[1 - s->active].name, s->cfg->deploy.stop_timeout_seconds);
                slot_kill(&s->slots[1 - s->active], SIGKILL);
                s->pending.deadline_mono_us = UINT64_MAX;
        }
        if (standby_wanted(s) && !s->standby_timer && s->slots[1 - s->active].pid <= 0)
                spawn_standby(s); /* a start whose timer could not be armed, or one after a deploy */
        /* a restart whose timer could not be armed happens here */
        if (!s->stopping && !s->deploy && !s->restart_timer && s->slots[s->active].pid <= 0 &&
            s->crash_pending_mono_us)
                spawn_active(s);
        if ((++s->scans % SUP_HAPROXY_SYNC_SCANS == 0 || s->failover_mono_us) && !s->stopping && !s->deploy)
                proxy_sync(s);
        if (s->metrics)
                metrics_server_set(s->metrics, render_metrics(s));
        /* a time source fires once: re-arm it (set_time alone leaves it off) */
        if (sd_event_source_set_time(src, now + SUP_SCAN_US) < 0 ||
            sd_event_source_set_enabled(src, SD_EVENT_ONESHOT) < 0) {
                /* without its scan the supervisor restarts nothing: let systemd restart it */
                log_err("supervisor: cannot re-arm the scan timer: exiting");
                return sd_event_exit(sd_event_source_get_event(src), 1);
        }
        return 0;
}

static int on_stop_signal(sd_event_source *src, const struct signalfd_siginfo *si, void *userdata)
{
        struct sup *s = userdata;

        if (s->stopping)
                return 0;
        s->stopping = true;
        deploy_free(s->deploy); /* workers are stopped below, whatever the deploy had started */
        s->deploy = NULL;
        s->stop_deadline_mono_us = now_mono_us() + (uint64_t)s->cfg->deploy.stop_timeout_seconds * 1000000ULL;
        s->restart_timer = sd_event_source_disable_unref(s->restart_timer);
        s->standby_timer = sd_event_source_disable_unref(s->standby_timer);
        if (s->pending.on && s->pending.k) {
                control_reply(s->pending.k, "failed: the supervisor is stopping\n");
                control_close(s->pending.k);
        }
        s->pending.on = false;
        s->pending.k = NULL;
        sd_notify(0, "STOPPING=1\nSTATUS=stopping the workers");
        log_notice("supervisor: signal %u: stopping the workers", si->ssi_signo);
        for (int i = 0; i < 2; i++)
                if (s->slots[i].pid > 0)
                        slot_kill(&s->slots[i], SIGTERM);
        if (all_stopped(s))
                sd_event_exit(s->e, 0);
        return 0;
}

/* ---- deploys ------------------------------------------------------------------------- */

static void changed(void *ud)
{
        struct sup *s = ud;

        save(s);
        notify_status(s);
}

static int free_deploy(sd_event_source *src, void *userdata)
{
        struct sup *s = userdata;

        deploy_free(s->deploy);
        s->deploy = NULL;
        s->deploy_over = false;
        sd_event_source_disable_unref(src);
        spawn_standby(s); /* hot: the replaced slot comes back as the standby, on the active's binary */
        return 0;
}

static void deploy_done(void *ud, bool ok)
{
        struct sup *s = ud;
        const struct deploy_result *r = deploy_get_result(s->deploy);

        s->deploy_over = true;
        s->m.have_deploy = true;
        s->m.last_deploy_ok = ok;
        s->m.last_deploy_s = r->duration_s;
        if (ok)
                s->m.deploys_ok++;
        else
                s->m.deploys_failed++;
        if (r->continuity_checked) {
                s->m.last_overlap_ratio = r->frames > 0 ? r->duplicate_frames / r->frames : 0;
                s->m.last_handover_gaps = r->gaps;
        }
        chores_deploy_running(s->chores, false, s->active);
        chores_proxy_save_state(s->chores);
        if (s->hot && ok) /* the stopped slot restarts on the new binary: remember what to roll back to */
                snprintf(s->rollback_binary, sizeof(s->rollback_binary), "%s", s->slots[1 - s->active].binary);
        /* freed from the loop, not from inside the deploy's own call stack; without
         * a defer source the next scan frees it */
        if (sd_event_add_defer(s->e, NULL, free_deploy, s) < 0)
                log_warn("supervisor: cannot schedule freeing the finished deploy; the next scan does it");
        sd_notifyf(0, "STATUS=deploy %s; active %s", ok ? "done" : "FAILED, rolled back",
                   s->slots[s->active].name);
}

static void start_deploy(struct sup *s, const char *binary, int overlap_s, int health_s, struct control_conn *k)
{
        struct deploy_env env = { .e = s->e, .cfg = s->cfg, .chores = s->chores, .slots = s->slots,
                                  .active = &s->active, .changed = changed, .ud = s };
        int e;

        if (s->deploy || s->stopping || s->pending.on) {
                if (k) {
                        control_reply(k, "failed: %s\n", s->stopping ? "the supervisor is stopping"
                                                                     : "a deploy is already running");
                        control_close(k);
                }
                return;
        }
        if (s->slots[s->active].pid <= 0) {
                if (k) {
                        control_reply(k, "failed: the active worker (slot %s) is not running; it restarts by "
                                         "itself, deploy again once it records\n",
                                      s->slots[s->active].name);
                        control_close(k);
                }
                return;
        }
        if (s->hot) /* the deploy takes the standby's slot: no restart of it meanwhile */
                s->standby_timer = sd_event_source_disable_unref(s->standby_timer);
        if (s->hot && s->slots[1 - s->active].pid > 0) {
                /* hot: the new binary goes into the standby's slot; the active records meanwhile */
                struct slot *b = &s->slots[1 - s->active];

                s->pending.on = true;
                snprintf(s->pending.binary, sizeof(s->pending.binary), "%s", binary ? binary : "");
                s->pending.overlap_s = overlap_s;
                s->pending.health_s = health_s;
                s->pending.k = k;
                s->pending.deadline_mono_us =
                        now_mono_us() + (uint64_t)s->cfg->deploy.stop_timeout_seconds * 1000000ULL;
                sd_notify(0, "STATUS=deploying: stopping the standby");
                log_notice("supervisor: deploy: stopping standby %s (pid %d) to deploy into its slot; %s records",
                           b->name, (int)b->pid, s->slots[s->active].name);
                if (k)
                        control_reply(k, "hot standby: stopping standby %s (pid %d) to deploy into its slot; "
                                         "%s keeps recording\n",
                                      b->name, (int)b->pid, s->slots[s->active].name);
                slot_kill(b, SIGTERM);
                return;
        }
        snprintf(env.mwr_tool, sizeof(env.mwr_tool), "%s", s->mwr_tool);
        sd_notify(0, "STATUS=deploying");
        chores_deploy_running(s->chores, true, s->active); /* no background re-sync from here */
        if ((e = deploy_start(&s->deploy, &env, binary, overlap_s, health_s, k, deploy_done, s)) < 0) {
                chores_deploy_running(s->chores, false, s->active);
                if (k) {
                        control_reply(k, "failed: cannot start the deploy: %s\n", strerror(-e));
                        control_close(k);
                }
        }
}

/* Self-upgrade: end the loop with the state saved; daemon_run's caller
 * closes everything and execs path, whose image adopts the workers. */
static const char *request_reexec(struct sup *s, const char *path)
{
        if (s->deploy)
                return "a deploy is running";
        if (s->stopping)
                return "the supervisor is stopping";
        if (access(path, X_OK) < 0)
                return "binary not executable";
        snprintf(s->reexec, sizeof(s->reexec), "%s", path);
        save(s);
        sd_notifyf(0, "STATUS=re-executing %s", path);
        log_notice("supervisor: re-executing %s; workers keep recording", path);
        sd_event_exit(s->e, 0);
        return NULL;
}

static int on_upgrade_signal(const sd_event_source *src, const struct signalfd_siginfo *si, void *userdata)
{
        struct sup *s = userdata;
        const char *why = request_reexec(s, s->self_exe);

        if (why)
                log_warn("supervisor: SIGUSR2: not re-executing: %s", why);
        return 0;
}

static int on_reload_signal(sd_event_source *src, const struct signalfd_siginfo *si, void *userdata)
{
        struct sup *s = userdata;

        log_notice("supervisor: SIGHUP: deploying %s", s->cfg->worker.binary);
        start_deploy(s, NULL, -1, -1, NULL);
        return 0;
}

/* The mwr tool next to our own binary runs the continuity check. */
static void find_mwr_tool(struct sup *s)
{
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

        s->mwr_tool[0] = '\0';
        if (n <= 0)
                return;
        self[n] = '\0';
        snprintf(s->mwr_tool, sizeof(s->mwr_tool), "%s/mwr", dirname(self));
        if (access(s->mwr_tool, X_OK) < 0)
                s->mwr_tool[0] = '\0';
}

/* ---- control commands ---------------------------------------------------------------- */

static cJSON *status_json(const struct sup *s)
{
        cJSON *root = cJSON_CreateObject(), *slots = cJSON_AddArrayToObject(root, "slots");
        char t[TIMEFMT_RFC3339_MAX];
        uint64_t now = now_mono_us();

        cJSON_AddStringToObject(root, "version", MWR_VERSION);
        cJSON_AddNumberToObject(root, "pid", getpid());
        cJSON_AddStringToObject(root, "binary", s->self_exe ? s->self_exe : "");
        cJSON_AddStringToObject(root, "active", s->slots[s->active].name);
        cJSON_AddNumberToObject(root, "restarts", s->restarts);
        cJSON_AddBoolToObject(root, "crash_loop", in_crash_loop(s));
        cJSON_AddStringToObject(root, "standby", s->hot ? "hot" : "cold");
        cJSON_AddNumberToObject(root, "failovers", (double)s->m.failovers);
        if (s->retention) {
                const struct sr_stats *st = standby_retention_stats(s->retention);
                cJSON *r = cJSON_AddObjectToObject(root, "standby_retention");

                cJSON_AddNumberToObject(r, "seconds", s->cfg->supervisor.standby_retention_s);
                cJSON_AddNumberToObject(r, "runs", (double)st->runs);
                cJSON_AddNumberToObject(r, "failures", (double)st->failures);
                cJSON_AddNumberToObject(r, "deleted_segments", (double)st->deleted_segments);
                cJSON_AddNumberToObject(r, "deleted_bytes", (double)st->deleted_bytes);
                if (st->done_to_us) {
                        timefmt_rfc3339(st->done_to_us, t);
                        cJSON_AddStringToObject(r, "one_copy_before", t);
                }
        }
        for (int i = 0; i < 2; i++) {
                const struct slot *sl = &s->slots[i];
                cJSON *o = cJSON_CreateObject();

                cJSON_AddStringToObject(o, "slot", sl->name);
                cJSON_AddStringToObject(o, "state", slot_state_name(sl->state));
                cJSON_AddBoolToObject(o, "active", i == s->active);
                /* active: takes the traffic; standby: records too (hot); spare: idle or a deploy's new worker */
                cJSON_AddStringToObject(o, "role", i == s->active ? "active" : s->hot ? "standby" : "spare");
                cJSON_AddNumberToObject(o, "pid", sl->pid);
                cJSON_AddNumberToObject(o, "port", sl->port);
                cJSON_AddStringToObject(o, "instance_id", sl->name);
                cJSON_AddStringToObject(o, "binary", sl->binary);
                cJSON_AddStringToObject(o, "version", sl->version);
                cJSON_AddBoolToObject(o, "adopted", sl->adopted);
                cJSON_AddStringToObject(o, "status", sl->status);
                cJSON_AddNumberToObject(o, "uptime", sl->pid > 0 ? (double)(now - sl->started_mono_us) / 1e6 : 0);
                if (sl->started_real_us) {
                        timefmt_rfc3339(sl->started_real_us, t);
                        cJSON_AddStringToObject(o, "started", t);
                }
                cJSON_AddItemToArray(slots, o);
        }
        return root;
}

static int deploy_row(const struct db_deploy *d, void *ctx)
{
        cJSON *o = cJSON_CreateObject();
        char t[TIMEFMT_RFC3339_MAX];

        cJSON_AddNumberToObject(o, "id", (double)d->id);
        timefmt_rfc3339(d->started_us, t);
        cJSON_AddStringToObject(o, "started", t);
        cJSON_AddStringToObject(o, "from", d->from_slot);
        cJSON_AddStringToObject(o, "to", d->to_slot);
        cJSON_AddStringToObject(o, "binary", d->binary);
        cJSON_AddStringToObject(o, "result", d->result);
        cJSON_AddStringToObject(o, "reason", d->reason);
        cJSON_AddItemToArray(ctx, o);
        return 0;
}

/* status: the slots as the loop knows them, the deploys from the database
 * read in the background after the rows queued before (a deploy's result
 * is there once its client has seen it end). */
struct status_req {
        cJSON *root, *deploys;
        struct control_conn *k;
};

static void status_read(struct db *db, void *ctx)
{
        struct status_req *q = ctx;

        if (db)
                db_deploys_recent(db, 20, deploy_row, q->deploys);
}

static void status_send(void *ctx)
{
        struct status_req *q = ctx;
        char *text = cJSON_PrintUnformatted(q->root);

        control_reply(q->k, "%s\n", text ? text : "{}");
        control_close(q->k);
        free(text);
        cJSON_Delete(q->root);
        free(q);
}

static void status_reply(struct sup *s, struct control_conn *k)
{
        struct status_req *q = calloc(1, sizeof(*q));

        if (q && (q->root = status_json(s)) && (q->deploys = cJSON_AddArrayToObject(q->root, "deploys"))) {
                q->k = k;
                if (chores_with_db(s->chores, status_read, status_send, q))
                        return;
        }
        control_reply(k, "error: out of memory building the status\n");
        control_close(k);
        if (q)
                cJSON_Delete(q->root);
        free(q);
}

static void on_command(struct control_conn *k, const char *line, void *userdata)
{
        struct sup *s = userdata;
        struct ctl_cmd c;
        const char *bad = ctl_cmd_parse(line, &c), *why;
        char *text, refused[160];

        if (bad) {
                control_reply(k, "error: %s\n", bad);
                control_close(k);
                return;
        }
        if ((bad = ctl_cmd_permit(c.kind, control_peer_uid(k), geteuid(), refused, sizeof(refused)))) {
                log_warn("supervisor: control socket: %s (pid %d)", bad, (int)control_peer_pid(k));
                control_reply(k, "error: %s\n", bad);
                control_close(k);
                return;
        }
        switch (c.kind) {
        case CTL_STATUS:
                status_reply(s, k);
                return; /* answered once the deploys are read */
        case CTL_METRICS:
                text = render_metrics(s);
                control_reply(k, "%s", text ? text : "");
                free(text);
                break;
        case CTL_UPGRADE:
                if ((why = request_reexec(s, c.binary[0] ? c.binary : s->self_exe)))
                        control_reply(k, "failed: %s\n", why);
                else
                        control_reply(k, "ok: re-executing %s (pid %d stays; workers keep recording)\n",
                                      c.binary[0] ? c.binary : s->self_exe, (int)getpid());
                break;
        case CTL_ROLLBACK: {
                const struct slot *other = &s->slots[1 - s->active];

                if (s->hot && !s->rollback_binary[0]) {
                        control_reply(k, "failed: nothing to roll back to (no deploy since the supervisor started; "
                                         "deploy --binary the old worker)\n");
                        break;
                }
                if (!s->hot && !other->binary[0]) {
                        control_reply(k, "failed: nothing to roll back to (slot %s never ran)\n", other->name);
                        break;
                }
                snprintf(c.binary, sizeof(c.binary), "%s", s->hot ? s->rollback_binary : other->binary);
                start_deploy(s, c.binary, -1, -1, k);
                return; /* the deploy closes k when it ends */
        }
        case CTL_DEPLOY:
                start_deploy(s, c.binary[0] ? c.binary : NULL, c.overlap_s, c.health_s, k);
                return;
        }
        control_close(k);
}

/* ---- start ------------------------------------------------------------------------------ */

struct adopt_ctx {
        struct sup *s;
};

static int adopt_row(const struct db_slot *row, void *ctx)
{
        struct sup *s = ((struct adopt_ctx *)ctx)->s;

        for (int i = 0; i < 2; i++) {
                struct slot *sl = &s->slots[i];

                if (strcmp(sl->name, row->name) != 0)
                        continue;
                if (row->active)
                        s->active = i;
                snprintf(sl->version, sizeof(sl->version), "%s", row->version);
                if (row->pid > 0 && slot_pid_is_worker((pid_t)row->pid, sl->name) &&
                    slot_adopt(sl, s->e, (pid_t)row->pid, row->binary) == 0) {
                        sl->started_real_us = row->started_us;
                        log_notice("supervisor: adopted worker %s, pid %d", sl->name, (int)sl->pid);
                }
        }
        return 0;
}

static int finish_running(const struct db_deploy *d, void *ctx)
{
        int64_t *ids = ctx;

        if (strcmp(d->result, "running") == 0 && ids[0] < 16)
                ids[1 + ids[0]++] = d->id;
        return 0;
}

/* A deploy interrupted by our own restart (SIGKILL, crash, host reboot of
 * the supervisor only): whatever it had started in the non-active slot is
 * stopped (the active slot records and has the traffic), and its row says
 * why.  The haproxy re-sync then sets the non-active server to maint. */
static void end_interrupted(struct sup *s)
{
        struct slot *other = &s->slots[1 - s->active];
        int64_t ids[17] = { 0 };

        if (other->pid > 0 && s->slots[s->active].pid > 0 && !s->hot) {
                log_notice("supervisor: slot %s (pid %d) was left running by an interrupted deploy: stopping it",
                           other->name, (int)other->pid);
                slot_kill(other, SIGTERM);
        }
        db_deploys_recent(s->db, 16, finish_running, ids);
        for (int64_t i = 0; i < ids[0]; i++)
                db_deploy_finish(s->db, ids[1 + i], "failed", "the supervisor restarted during the deploy",
                                 now_real_us());
}

static int run_dir(const struct mwr_config *cfg, char *out, size_t len)
{
        char tmp[PATH_MAX];

        snprintf(tmp, sizeof(tmp), "%s", cfg->control_socket);
        snprintf(out, len, "%s", dirname(tmp));
        return fs_mkdir_p(out);
}

/* The operator writes the config; we cannot choose its mode, but we can say
 * when every user of the host may read it. */
static void warn_world_readable(const char *path, const char *what)
{
        struct stat st;

        if (stat(path, &st) == 0 && (st.st_mode & 0007))
                log_warn("supervisor: %s is readable by every user of this host (mode %04o) and %s: "
                         "chmod 0640 it (group mwr for the people who may read it)",
                         path, (unsigned)(st.st_mode & 07777), what);
}

int daemon_run(const struct mwr_config *cfg, const char *self_exe)
{
        struct sup s = { .cfg = cfg, .started_real_us = now_real_us(), .self_exe = self_exe,
                         .hot = cfg->supervisor.hot_standby };
        struct adopt_ctx ac = { &s };
        char dir[PATH_MAX];
        sigset_t mask;
        int e, rc = 1;

        if ((e = run_dir(cfg, dir, sizeof(dir))) < 0) {
                log_err("supervisor: %s: %s", dir, strerror(-e));
                return 1;
        }
        warn_world_readable(cfg->path, "holds the cameras' passwords");
        if (cfg->auth.required)
                warn_world_readable(cfg->auth.users_file, "holds the users' password hashes");
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGUSR2);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);
        if ((e = sd_event_new(&s.e)) < 0)
                goto out;
        if ((e = db_open(cfg->db_path, &s.db)) < 0) {
                log_err("supervisor: %s: %s", cfg->db_path, strerror(-e));
                goto out;
        }
        if ((e = chores_new(s.e, cfg, &s.chores)) < 0) {
                log_err("supervisor: background writer (database %s): %s", cfg->db_path, strerror(-e));
                goto out;
        }
        for (int i = 0; i < 2; i++)
                if ((e = slot_init(&s.slots[i], i, cfg->haproxy.servers[i], cfg->worker.ports[i], s.e, dir, on_slot,
                                   &s)) < 0) {
                        log_err("supervisor: notify socket of slot %s in %s: %s", cfg->haproxy.servers[i], dir,
                                strerror(-e));
                        goto out;
                }
        if ((e = control_listen(s.e, cfg->control_socket, on_command, &s, &s.ctl)) < 0) {
                log_err("supervisor: control socket %s: %s", cfg->control_socket, strerror(-e));
                goto out;
        }
        if ((e = sd_event_add_signal(s.e, NULL, SIGTERM, on_stop_signal, &s)) < 0 ||
            (e = sd_event_add_signal(s.e, NULL, SIGINT, on_stop_signal, &s)) < 0 ||
            (e = sd_event_add_signal(s.e, NULL, SIGHUP, on_reload_signal, &s)) < 0 || /* reload = deploy */
            (e = sd_event_add_signal(s.e, NULL, SIGUSR2, (sd_event_signal_handler_t)on_upgrade_signal, &s)) < 0) {
                log_err("supervisor: signal handlers: %s", strerror(-e));
                goto out;
        }
        find_mwr_tool(&s);
        if (s.hot && cfg->supervisor.standby_retention_s > 0) {
                if (!s.mwr_tool[0])
                        log_warn("supervisor: no mwr tool next to the supervisor: both hot-standby copies are kept "
                                 "(supervisor.standby_retention_seconds cannot apply)");
                else if ((e = standby_retention_start(s.e, s.mwr_tool, cfg->path, cfg->supervisor.standby_retention_s,
                                                      cfg->segment_seconds, &s.retention)) < 0)
                        log_warn("supervisor: standby retention timer: %s (both copies are kept)", strerror(-e));
        }
        if (cfg->supervisor.metrics_port &&
            (e = metrics_server_start(cfg->worker.bind, cfg->supervisor.metrics_port, &s.metrics)) < 0)
                log_warn("supervisor: metrics on %s:%u: %s (going on without)", cfg->worker.bind,
                         (unsigned)cfg->supervisor.metrics_port, strerror(-e));
        if ((e = sd_event_add_time_relative(s.e, &s.scan_timer, CLOCK_MONOTONIC, SUP_SCAN_US, 0, on_scan, &s)) < 0) {
                log_err("supervisor: scan timer: %s", strerror(-e));
                goto out;
        }
        if ((e = sd_event_set_watchdog(s.e, true)) < 0)
                log_warn("supervisor: systemd watchdog: %s (going on without)", strerror(-e));
        db_slots_each(s.db, adopt_row, &ac);
        if (s.hot && s.slots[s.active].pid <= 0 && s.slots[1 - s.active].pid > 0) {
                /* hot: the active died with us; the standby we adopted takes the traffic */
                log_notice("supervisor: active slot %s is gone; adopted standby %s takes the traffic",
                           s.slots[s.active].name, s.slots[1 - s.active].name);
                s.active = 1 - s.active;
                s.m.failovers++;
                s.failover_mono_us = now_mono_us();
        }
        end_interrupted(&s);
        if (s.slots[s.active].pid > 0)
                notify_ready_once(&s); /* adopted: it was recording */
        else if (spawn_active(&s) < 0)
                schedule_restart(&s, &s.slots[s.active]);
        spawn_standby(&s);
        save(&s);
        notify_status(&s);
        log_notice("mwr-supervisor %s: active slot %s%s, control socket %s", MWR_VERSION, s.slots[s.active].name,
                   s.hot ? " (hot standby: both slots record)" : "", cfg->control_socket);
        e = sd_event_loop(s.e);
        rc = e < 0 ? 1 : 0;
        save(&s);
        if (!s.reexec[0])
                log_notice("supervisor: stopped");
out:
        standby_retention_free(s.retention);
        chores_free(s.chores); /* the last rows are written here, and the last answers queued */
        for (int i = 0; i < 2; i++)
                slot_close(&s.slots[i]);
        s.restart_timer = sd_event_source_disable_unref(s.restart_timer);
        s.standby_timer = sd_event_source_disable_unref(s.standby_timer);
        s.scan_timer = sd_event_source_disable_unref(s.scan_timer);
        control_free(s.ctl);
        metrics_server_stop(s.metrics);
        db_close(s.db);
        sd_event_unref(s.e);
        if (s.reexec[0]) {
                /* same pid: systemd keeps us as the main process, the workers
                 * stay our children; every fd is O_CLOEXEC */
                execl(s.reexec, s.reexec, "run", "--config", cfg->path, (char *)NULL);
                log_err("supervisor: exec %s: %s; exiting so the service manager restarts us (workers keep "
                        "recording and are adopted)",
                        s.reexec, strerror(errno));
                return 1;
        }
        return rc;
}
