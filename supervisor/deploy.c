/* deploy: the blue-green state machine (see deploy.h).  One state per step,
 * and one table, actions[state][event] (after the steps), says what each
 * event does in each state: every callback (timer, child exit, health
 * answer, haproxy answer, slot event) only records its payload and calls
 * dispatch().  An empty cell: the event does not matter in that state.
 * Nothing here waits: children are watched by pidfd, /health is asked by
 * sd-event's curl, haproxy's commands run on chores' haproxy thread. */
#include "supervisor/deploy.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/time_util.h"
#include "proxy-config/haproxy_runtime.h"
#include "supervisor/daemon.h"
#include "supervisor/health.h"
#include "supervisor/tool_run.h"


enum dstate {
        D_CHECK_HAPROXY, /* haproxy asked for the backend's servers */
        D_VERSION,
        D_CHECK_CONFIG,
        D_WAIT_READY,
        D_HEALTH,
        D_SWITCH,    /* haproxy told: new ready, old drain */
        D_OVERLAP,
        D_DRAIN,     /* waiting to ask for the old server's sessions */
        D_DRAIN_ASK, /* asked */
        D_MAINT,     /* haproxy told: old maint */
        D_STOP_OLD,
        D_DEDUP,
        D_UNSWITCH, /* failed after the switch: haproxy told old ready, new maint */
        D_ROLLBACK, /* waiting for the new worker to be gone */
        D_END,
        D_COUNT,
};

/* What can happen to a deploy.  Payloads are in struct deploy. */
enum devent {
        E_CHILD_EXIT, /* the step's child process ended: child_status */
        E_TIMER,      /* the state's timer */
        E_HEALTH,     /* the new worker's /health answered: healthy, last_health */
        E_HAPROXY,    /* haproxy's commands are done: hap_ops */
        E_NEW_READY,  /* the new worker sent READY=1 */
        E_NEW_EXITED, /* the new worker's process ended */
        E_OLD_EXITED, /* the old worker's process ended */
        E_COUNT,
};

struct deploy {
        struct deploy_env env;
        enum dstate state;
        int from, to; /* slot indexes */
        char binary[PATH_MAX], version[64], reason[512];
        int overlap_s, health_timeout_s;
        struct control_conn *conn;
        void (*done)(void *ud, bool ok);
        void *ud;
        sd_event_source *timer;
        struct health_checker *hc;
        struct tool_run child;
        int64_t t0_mono_us, deadline_mono_us;
        int64_t t0_real_us, new_ready_real_us, old_stop_real_us;
        struct chores_deploy *rec; /* its row in the database */
        struct chores_hap *hap;    /* the haproxy call waited for */
        bool switched;
        int child_status; /* E_CHILD_EXIT: exit code, 128+signal, -1 unknown */
        bool healthy;     /* E_HEALTH */
        char last_health[256];
        char cameras_why[512]; /* E_HEALTH: the cameras that keep it from healthy, and why */
        int standby;           /* E_HEALTH: cameras another instance holds (one-session cameras) */
        struct chores_hap_op hap_ops[CHORES_HAP_OPS_MAX]; /* E_HAPROXY */
        struct deploy_result res;
};

static void step(struct deploy *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int arm(struct deploy *d, uint64_t in_us);
static void fail(struct deploy *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool dispatch(struct deploy *d, enum devent ev);

/* One progress line: to the client and to the log. */
static void step(struct deploy *d, const char *fmt, ...)
{
        char line[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        log_info("deploy: %s", line);
        if (d->conn)
                control_reply(d->conn, "[%6.1f s] %s\n", (double)(now_mono_us() - d->t0_mono_us) / 1e6, line);
}

static struct slot *old_slot(struct deploy *d)
{
        return &d->env.slots[d->from];
}

static struct slot *new_slot(struct deploy *d)
{
        return &d->env.slots[d->to];
}

static const char *hap_sock(const struct deploy *d)
{
        return d->env.cfg->haproxy.socket;
}

static const char *backend(const struct deploy *d)
{
        return d->env.cfg->haproxy.backend;
}

/* ---- haproxy ------------------------------------------------------------------------------ */

static void on_haproxy(void *ud, const struct chores_hap_op *ops, size_t n)
{
        struct deploy *d = ud;

        d->hap = NULL;
        memcpy(d->hap_ops, ops, n * sizeof(*ops));
        dispatch(d, E_HAPROXY);
}

static struct chores_hap_op hap_op(enum chores_hap_kind kind, const char *server, enum hap_admin state)
{
        struct chores_hap_op op = { .kind = kind, .state = state };

        snprintf(op.server, sizeof(op.server), "%s", server);
        return op;
}

/* Sends ops to haproxy (E_HAPROXY when done, E_TIMER after
 * DEPLOY_HAPROXY_TIMEOUT_US); a call still waited for is forgotten.  0, or
 * a negative errno with every op's result set to it (the caller goes on as
 * if haproxy had failed them). */
static int hap_send(struct deploy *d, const struct chores_hap_op *ops, size_t n, bool stop_on_error)
{
        int e = 0;

        chores_haproxy_forget(d->hap);
        if (!(d->hap = chores_haproxy(d->env.chores, ops, n, stop_on_error, on_haproxy, d)))
                e = -ENOMEM;
        else if ((e = arm(d, DEPLOY_HAPROXY_TIMEOUT_US)) < 0) {
                chores_haproxy_forget(d->hap); /* it still runs; nothing waits for it */
                d->hap = NULL;
        }
        for (size_t i = 0; i < n; i++) {
                d->hap_ops[i] = (struct chores_hap_op){ .e = e < 0 ? e : -ETIMEDOUT };
                snprintf(d->hap_ops[i].err, sizeof(d->hap_ops[i].err), "%s",
                         e < 0 ? strerror(-e) : "no answer in time");
        }
        return e;
}

/* The call is over (answered, or E_TIMER: its ops keep e = -ETIMEDOUT):
 * no longer waited for, its timer off. */
static void hap_over(struct deploy *d)
{
        chores_haproxy_forget(d->hap);
        d->hap = NULL;
        if (d->timer)
                sd_event_source_set_enabled(d->timer, SD_EVENT_OFF);
}

/* ---- timers and child processes ------------------------------------------------------ */

static int on_timer(sd_event_source *src, uint64_t usec, void *userdata);

/* The state's timer: E_TIMER in in_us.  0 or a negative errno (the
 * caller fails the deploy: a step without its timer could wait forever). */
static int arm(struct deploy *d, uint64_t in_us)
{
        int r;

        if (!d->timer)
                return sd_event_add_time_relative(d->env.e, &d->timer, CLOCK_MONOTONIC, in_us, 1000, on_timer, d);
        if ((r = sd_event_source_set_time_relative(d->timer, in_us)) < 0)
                return r;
        return sd_event_source_set_enabled(d->timer, SD_EVENT_ONESHOT);
}

static void on_child_done(void *ud, int status)
{
        struct deploy *d = ud;

        d->child_status = status;
        dispatch(d, E_CHILD_EXIT);
}

/* Run argv with stdout (d->child.out) and stderr captured; E_CHILD_EXIT gets
 * the exit code (128+signal, -1 unknown).  The deploy's timer bounds it. */
static int child_run(struct deploy *d, char *const argv[], uint64_t timeout_us)
{
        int r = tool_run_start(&d->child, d->env.e, argv, on_child_done, d);

        if (r < 0)
                return r;
        if ((r = arm(d, timeout_us)) < 0)
                tool_run_abort(&d->child);
        return r;
}

/* ---- the end ---------------------------------------------------------------------------- */

static void finish(struct deploy *d, bool ok)
{
        d->state = D_END;
        d->res.ok = ok;
        d->res.duration_s = (double)(now_mono_us() - d->t0_mono_us) / 1e6;
        d->timer = sd_event_source_disable_unref(d->timer);
        chores_deploy_finish(d->env.chores, d->rec, ok ? "ok" : "failed", ok ? "" : d->reason, now_real_us());
        d->rec = NULL;
        if (ok)
                step(d, "ok: slot %s (pid %d, %s) records and takes the traffic; deploy took %.1f s",
                     new_slot(d)->name, (int)new_slot(d)->pid, d->version,
                     (double)(now_mono_us() - d->t0_mono_us) / 1e6);
        else if (d->conn)
                control_reply(d->conn, "failed: %s\n", d->reason);
        if (!ok)
                log_err("deploy failed: %s", d->reason);
        if (d->conn)
                control_close(d->conn);
        d->conn = NULL;
        d->env.changed(d->env.ud);
        d->done(d->ud, ok);
}

/* Traffic back to the old worker, the new one stopped; then finish(false)
 * once it is gone.  The old worker recorded all along. */
static void rollback_stop_new(struct deploy *d);

static void fail(struct deploy *d, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
        va_end(ap);
        step(d, "FAILED: %s; rolling back", d->reason);
        health_checker_cancel(d->hc);
        tool_run_abort(&d->child);
        if (d->switched) {
                struct chores_hap_op ops[2] = { hap_op(CHORES_HAP_SET, old_slot(d)->name, HAP_READY),
                                                hap_op(CHORES_HAP_SET, new_slot(d)->name, HAP_MAINT) };
                int e;

                d->state = D_UNSWITCH;
                if ((e = hap_send(d, ops, 2, false)) == 0)
                        return;
                step(d, "haproxy: cannot send the rollback: %s", strerror(-e));
                *d->env.active = d->from;
                d->switched = false;
        }
        rollback_stop_new(d);
}

/* D_UNSWITCH's answer */
static void a_unswitched(struct deploy *d)
{
        hap_over(d);
        if (d->hap_ops[0].e < 0)
                step(d, "haproxy: cannot put %s back to ready: %s", old_slot(d)->name, d->hap_ops[0].err);
        if (d->hap_ops[1].e < 0)
                step(d, "haproxy: cannot put %s in maint: %s", new_slot(d)->name, d->hap_ops[1].err);
        *d->env.active = d->from;
        d->switched = false;
        step(d, "traffic back on slot %s", old_slot(d)->name);
        rollback_stop_new(d);
}

/* the traffic is on the old worker: the new one goes */
static void rollback_stop_new(struct deploy *d)
{
        struct slot *n = new_slot(d);

        if (n->pid > 0) {
                d->state = D_ROLLBACK;
                /* without a timer to escalate, SIGKILL at once */
                slot_kill(n, arm(d, (uint64_t)d->env.cfg->deploy.stop_timeout_seconds * 1000000ULL) < 0 ? SIGKILL
                                                                                                       : SIGTERM);
                return;
        }
        finish(d, false);
}

/* Arms the state's timer or fails the deploy. */
static void arm_or_fail(struct deploy *d, uint64_t in_us)
{
        int e = arm(d, in_us);

        if (e < 0)
                fail(d, "cannot arm the deploy's timer: %s", strerror(-e));
}

/* ---- the steps: the table's actions ------------------------------------------------- */

static void a_run_version(struct deploy *d);

/* D_CHECK_HAPROXY's answer */
static void a_haproxy_checked(struct deploy *d)
{
        const struct chores_hap_op *r = &d->hap_ops[0];

        hap_over(d);
        if (r->e < 0) {
                fail(d, "haproxy runtime socket %s: %s (is haproxy running with the generated config?)",
                     hap_sock(d), strerror(-r->e));
                return;
        }
        step(d, "haproxy: backend %s has %zu servers", backend(d), r->n_servers);
        a_run_version(d);
}

/* validate: `binary --version`, then `binary --check-config` */
static void a_run_version(struct deploy *d)
{
        char *argv[] = { d->binary, "--version", NULL };
        int e;

        d->state = D_VERSION;
        if ((e = child_run(d, argv, DEPLOY_CHECK_TIMEOUT_US)) < 0)
                fail(d, "cannot run %s: %s", d->binary, strerror(-e));
}

static void a_version_done(struct deploy *d)
{
        char *argv[] = { d->binary, "--config", d->env.cfg->path, "--check-config", NULL };
        char *nl;
        int e;

        if (d->child_status != 0) {
                fail(d, "%s --version exited with %d: %.200s", d->binary, d->child_status, tool_run_says(&d->child));
                return;
        }
        if ((nl = strchr(d->child.out, '\n')))
                *nl = '\0';
        snprintf(d->version, sizeof(d->version), "%.63s", d->child.out);
        step(d, "binary %s: %s", d->binary, d->version);
        d->state = D_CHECK_CONFIG;
        if ((e = child_run(d, argv, DEPLOY_CHECK_TIMEOUT_US)) < 0)
                fail(d, "cannot run %s: %s", d->binary, strerror(-e));
}

/* the config is accepted: spawn the new worker, wait for READY */
static void a_check_config_done(struct deploy *d)
{
        struct slot *n = new_slot(d);
        int e;

        if (d->child_status != 0) {
                fail(d, "%s --check-config exited with %d: %.300s", d->binary, d->child_status,
                     tool_run_says(&d->child));
                return;
        }
        step(d, "config %s accepted by the new binary", d->env.cfg->path);
        if ((e = slot_spawn(n, d->env.e, d->binary, d->env.cfg->path, SUP_WORKER_WATCHDOG_US)) < 0) {
                fail(d, "starting %s in slot %s: %s", d->binary, n->name, strerror(-e));
                return;
        }
        snprintf(n->version, sizeof(n->version), "%s", d->version);
        d->env.changed(d->env.ud);
        step(d, "slot %s started: pid %d, port %u; waiting for READY (up to %d s)", n->name, (int)n->pid,
             (unsigned)n->port, d->health_timeout_s);
        d->state = D_WAIT_READY;
        d->deadline_mono_us = now_mono_us() + (int64_t)d->health_timeout_s * 1000000;
        arm_or_fail(d, (uint64_t)d->health_timeout_s * 1000000ULL);
}

/* a validation step's child overran its time: killed, its exit ends the step */
static void a_child_timeout(struct deploy *d)
{
        if (d->child.pid <= 0)
                return;
        tool_run_kill(&d->child, "timed out");
}

static void a_no_ready(struct deploy *d)
{
        const char *st = new_slot(d)->status;

        fail(d, "slot %s sent no READY within %d s%s%s", new_slot(d)->name, d->health_timeout_s,
             st[0] ? "; its status: " : "", st);
}

static void on_health(struct health_checker *h, const struct health_result *r, void *userdata)
{
        struct deploy *d = userdata;
        cJSON *j;

        d->healthy = false;
        d->cameras_why[0] = '\0';
        d->standby = 0;
        if ((j = cJSON_Parse(r->body))) { /* 503 has the same JSON */
                const cJSON *st = cJSON_GetObjectItem(j, "status"), *cams = cJSON_GetObjectItem(j, "cameras");
                const cJSON *errs = cJSON_GetObjectItem(j, "camera_errors"), *c;
                size_t used = 0;

                d->healthy = r->status == 200 && cJSON_IsString(st) && strcmp(st->valuestring, "healthy") == 0;
                /* name each camera that neither records nor stands by, with the camera's own reason */
                for (c = cams ? cams->child : NULL; c && used < sizeof(d->cameras_why); c = c->next) {
                        const char *state = cJSON_GetStringValue(c), *why = cJSON_GetStringValue(
                                                                          cJSON_GetObjectItem(errs, c->string));
                        int n;

                        d->standby += state && !strcmp(state, "standby");
                        if (!state || !strcmp(state, "recording") || !strcmp(state, "standby"))
                                continue;
                        n = snprintf(d->cameras_why + used, sizeof(d->cameras_why) - used, "%scamera %s %s",
                                     used ? ", " : "", c->string, why ? why : state);
                        used += n > 0 ? (size_t)n : 0;
                }
                cJSON_Delete(j);
        }
        snprintf(d->last_health, sizeof(d->last_health), "HTTP %d %s%.150s", r->status,
                 r->error ? strerror(-r->error) : "", r->body);
        dispatch(d, E_HEALTH);
}

/* GET /health of the new worker (at most 2 s, and never past the deadline) */
static void a_health_check(struct deploy *d)
{
        char url[128];
        uint64_t left = d->deadline_mono_us > now_mono_us() ? (uint64_t)(d->deadline_mono_us - now_mono_us()) : 1;
        int e;

        snprintf(url, sizeof(url), "http://%s:%u/health", d->env.cfg->worker.bind, (unsigned)new_slot(d)->port);
        if ((e = health_check_start(d->hc, url, left < 2000000 ? left : 2000000, on_health, d)) < 0)
                fail(d, "health check of %s: %s", url, strerror(-e));
}

static void a_ready(struct deploy *d)
{
        struct slot *n = new_slot(d);

        d->new_ready_real_us = now_real_us();
        step(d, "slot %s READY after %.1f s", n->name, (double)(now_mono_us() - n->started_mono_us) / 1e6);
        d->state = D_HEALTH;
        a_health_check(d);
}

/* healthy: new ready, old drain -- the switch (errors before it change
 * nothing); else ask again until the deadline */
static void a_health_answer(struct deploy *d)
{
        struct chores_hap_op ops[2] = { hap_op(CHORES_HAP_SET, new_slot(d)->name, HAP_READY),
                                        hap_op(CHORES_HAP_SET, old_slot(d)->name, HAP_DRAIN) };
        int e;

        if (!d->healthy) {
                if (now_mono_us() >= d->deadline_mono_us)
                        fail(d, "slot %s not healthy within %d s%s%s (last answer: %s)", new_slot(d)->name,
                             d->health_timeout_s, d->cameras_why[0] ? ": " : "", d->cameras_why, d->last_health);
                else
                        arm_or_fail(d, DEPLOY_HEALTH_RETRY_US);
                return;
        }
        step(d, "slot %s healthy: every enabled camera recording%s (%s)", new_slot(d)->name,
             d->standby ? ", or standing by for a one-session camera (handed over when the old worker stops)" : "",
             d->last_health);
        d->state = D_SWITCH;
        d->switched = true; /* from here a failure puts the old worker back, whatever haproxy did */
        if ((e = hap_send(d, ops, 2, true)) < 0)
                fail(d, "haproxy: cannot send the switch: %s", strerror(-e));
}

/* D_SWITCH's answer (or its timeout) */
static void a_switched(struct deploy *d)
{
        const struct chores_hap_op *r = d->hap_ops;

        hap_over(d);
        if (r[0].e < 0) {
                fail(d, "haproxy refused %s/%s ready: %s (%s)", backend(d), new_slot(d)->name, r[0].err,
                     strerror(-r[0].e));
                return;
        }
        if (r[1].e < 0) {
                fail(d, "haproxy refused %s/%s drain: %s (%s)", backend(d), old_slot(d)->name, r[1].err,
                     strerror(-r[1].e));
                return;
        }
        *d->env.active = d->to;
        d->env.changed(d->env.ud);
        step(d, "haproxy: %s ready, %s drain: traffic on slot %s; both record for %d s", new_slot(d)->name,
             old_slot(d)->name, new_slot(d)->name, d->overlap_s);
        d->state = D_OVERLAP;
        arm_or_fail(d, (uint64_t)d->overlap_s * 1000000ULL);
}

static void a_new_died(struct deploy *d)
{
        fail(d, "the new worker (slot %s) exited (status %d) during the deploy", new_slot(d)->name,
             new_slot(d)->exit_status);
}

/* before the switch (or after a rollback) the old worker has the traffic:
 * it comes back at once */
static void a_old_restart(struct deploy *d)
{
        struct slot *s = old_slot(d);
        int e = slot_spawn(s, d->env.e, s->binary[0] ? s->binary : d->env.cfg->worker.binary, d->env.cfg->path,
                           SUP_WORKER_WATCHDOG_US);

        step(d, "slot %s (the old worker) exited during the deploy; restarted: %s", s->name,
             e < 0 ? strerror(-e) : "ok");
}

static void a_drain_ask(struct deploy *d);

static void a_overlap_done(struct deploy *d)
{
        step(d, "overlap done; waiting for slot %s's sessions to end", old_slot(d)->name);
        d->deadline_mono_us = now_mono_us() + (int64_t)DEPLOY_DRAIN_MAX_US;
        a_drain_ask(d);
}

static void old_gone(struct deploy *d);
static void a_drain_answer(struct deploy *d);
static void a_maint_done(struct deploy *d);

/* the old server's sessions to 0 (or DEPLOY_DRAIN_MAX_US), then maint and SIGTERM */
static void a_drain_ask(struct deploy *d)
{
        struct chores_hap_op op = hap_op(CHORES_HAP_GET, old_slot(d)->name, HAP_READY);

        d->state = D_DRAIN_ASK;
        if (hap_send(d, &op, 1, false) < 0)
                a_drain_answer(d); /* not asked: go on as if it failed */
}

static void a_drain_answer(struct deploy *d)
{
        const struct chores_hap_op *r = &d->hap_ops[0];
        struct chores_hap_op op = hap_op(CHORES_HAP_SET, old_slot(d)->name, HAP_MAINT);

        hap_over(d);
        if (r->e == 0 && r->srv.scur > 0 && now_mono_us() < d->deadline_mono_us) {
                d->state = D_DRAIN;
                arm_or_fail(d, 200000);
                return;
        }
        if (r->e < 0)
                step(d, "haproxy: reading %s's sessions: %s (going on)", old_slot(d)->name, strerror(-r->e));
        else if (r->srv.scur > 0)
                step(d, "slot %s still has %lld sessions after %llu s (going on)", old_slot(d)->name,
                     (long long)r->srv.scur, DEPLOY_DRAIN_MAX_US / 1000000ULL);
        d->state = D_MAINT;
        if (hap_send(d, &op, 1, false) < 0)
                a_maint_done(d); /* not sent: go on as if it failed */
}

/* D_MAINT's answer: the old worker is stopped */
static void a_maint_done(struct deploy *d)
{
        hap_over(d);
        if (d->hap_ops[0].e < 0)
                step(d, "haproxy: %s maint: %s (going on: traffic is on %s)", old_slot(d)->name, d->hap_ops[0].err,
                     new_slot(d)->name);
        else
                step(d, "haproxy: %s maint", old_slot(d)->name);
        d->state = D_STOP_OLD;
        if (old_slot(d)->pid <= 0) {
                old_gone(d);
                return;
        }
        slot_kill(old_slot(d), SIGTERM);
        step(d, "SIGTERM to slot %s (pid %d)", old_slot(d)->name, (int)old_slot(d)->pid);
        if (arm(d, (uint64_t)d->env.cfg->deploy.stop_timeout_seconds * 1000000ULL) < 0)
                slot_kill(old_slot(d), SIGKILL); /* no timer to escalate with */
}

static void a_old_kill(struct deploy *d)
{
        step(d, "slot %s still running %d s after SIGTERM: SIGKILL", old_slot(d)->name,
             d->env.cfg->deploy.stop_timeout_seconds);
        slot_kill(old_slot(d), SIGKILL);
}

static void a_old_stopped(struct deploy *d)
{
        struct slot *s = old_slot(d);

        step(d, "slot %s stopped (%s)", s->name,
             s->exit_status == 0 ? "exit 0" : s->exit_status < 0 ? "status unknown" : "abnormal exit");
        old_gone(d);
}

/* the old worker is gone: `mwr dedup` over the handover window */
static void old_gone(struct deploy *d)
{
        char from[32], to[32];
        char *argv[] = { d->env.mwr_tool, "dedup", "--config", d->env.cfg->path, "--from", from, "--to", to, "--json",
                         NULL };
        int64_t lo, hi;
        int e;

        d->old_stop_real_us = now_real_us();
        lo = d->new_ready_real_us - (int64_t)DEPLOY_WINDOW_MARGIN_US;
        hi = d->old_stop_real_us + (int64_t)DEPLOY_WINDOW_MARGIN_US;
        d->state = D_DEDUP;
        if (!d->env.mwr_tool[0]) {
                step(d, "continuity check skipped: no mwr tool next to the supervisor");
                finish(d, true);
                return;
        }
        snprintf(from, sizeof(from), "%.6f", (double)lo / 1e6);
        snprintf(to, sizeof(to), "%.6f", (double)hi / 1e6);
        if ((e = child_run(d, argv, DEPLOY_DEDUP_TIMEOUT_US)) < 0) {
                step(d, "continuity check: cannot run %s: %s", d->env.mwr_tool, strerror(-e));
                finish(d, true);
        }
}

static void a_dedup_kill(struct deploy *d)
{
        tool_run_kill(&d->child, "timed out"); /* its exit ends the step */
}

static void a_dedup_done(struct deploy *d)
{
        cJSON *j = cJSON_Parse(d->child.out), *cams;
        double frames = 0, dups = 0, gaps = 0;
        int n = 0;

        if (d->child_status != 0 || !j || !(cams = cJSON_GetObjectItem(j, "cameras"))) {
                step(d, "continuity check failed (exit %d): %.300s", d->child_status, tool_run_says(&d->child));
        } else {
                for (cJSON *c = cams->child; c; c = c->next, n++) {
                        double g = cJSON_GetNumberValue(cJSON_GetObjectItem(c, "gaps"));

                        frames += cJSON_GetNumberValue(cJSON_GetObjectItem(c, "frames"));
                        dups += cJSON_GetNumberValue(cJSON_GetObjectItem(c, "duplicate_frames"));
                        gaps += g;
                        if (g > 0)
                                step(d, "WARNING: camera %s has %.0f gaps in the handover window",
                                     cJSON_GetStringValue(cJSON_GetObjectItem(c, "camera")), g);
                }
                d->res.continuity_checked = true;
                d->res.frames = frames;
                d->res.duplicate_frames = dups;
                d->res.gaps = gaps;
                step(d, "continuity over the handover window: %d cameras, %.0f frames, %.0f duplicates marked, "
                        "%.0f gaps",
                     n, frames, dups, gaps);
        }
        cJSON_Delete(j);
        finish(d, true);
}

static void a_new_kill(struct deploy *d)
{
        slot_kill(new_slot(d), SIGKILL);
}

static void a_rolled_back(struct deploy *d)
{
        step(d, "slot %s stopped", new_slot(d)->name);
        finish(d, false);
}

/* Not the deploy's: the new worker has the traffic, the daemon's restart
 * policy applies.  Never called; dispatch() compares against it. */
static void a_daemon(struct deploy *d)
{
}

/* ---- the table -------------------------------------------------------------------------- */

typedef void action_fn(struct deploy *d);

static action_fn *const actions[D_COUNT][E_COUNT] = {
        [D_CHECK_HAPROXY] = { [E_HAPROXY] = a_haproxy_checked, [E_TIMER] = a_haproxy_checked,
                              [E_OLD_EXITED] = a_old_restart },
        [D_VERSION] = { [E_CHILD_EXIT] = a_version_done, [E_TIMER] = a_child_timeout,
                        [E_OLD_EXITED] = a_old_restart },
        [D_CHECK_CONFIG] = { [E_CHILD_EXIT] = a_check_config_done, [E_TIMER] = a_child_timeout,
                             [E_OLD_EXITED] = a_old_restart },
        [D_WAIT_READY] = { [E_NEW_READY] = a_ready, [E_TIMER] = a_no_ready, [E_NEW_EXITED] = a_new_died,
                           [E_OLD_EXITED] = a_old_restart },
        [D_HEALTH] = { [E_HEALTH] = a_health_answer, [E_TIMER] = a_health_check, [E_NEW_EXITED] = a_new_died,
                       [E_OLD_EXITED] = a_old_restart },
        /* switched (or on the way): the traffic is on the new worker; the old one only has to stop */
        [D_SWITCH] = { [E_HAPROXY] = a_switched, [E_TIMER] = a_switched, [E_NEW_EXITED] = a_new_died,
                       [E_OLD_EXITED] = a_old_restart },
        [D_OVERLAP] = { [E_TIMER] = a_overlap_done, [E_NEW_EXITED] = a_new_died },
        [D_DRAIN] = { [E_TIMER] = a_drain_ask, [E_NEW_EXITED] = a_new_died },
        [D_DRAIN_ASK] = { [E_HAPROXY] = a_drain_answer, [E_TIMER] = a_drain_answer, [E_NEW_EXITED] = a_new_died },
        [D_MAINT] = { [E_HAPROXY] = a_maint_done, [E_TIMER] = a_maint_done, [E_NEW_EXITED] = a_new_died },
        [D_STOP_OLD] = { [E_OLD_EXITED] = a_old_stopped, [E_TIMER] = a_old_kill, [E_NEW_EXITED] = a_daemon },
        [D_DEDUP] = { [E_CHILD_EXIT] = a_dedup_done, [E_TIMER] = a_dedup_kill, [E_NEW_EXITED] = a_daemon },
        /* failed: the traffic is back on the old worker, the new one on its way out */
        [D_UNSWITCH] = { [E_HAPROXY] = a_unswitched, [E_TIMER] = a_unswitched, [E_OLD_EXITED] = a_old_restart },
        [D_ROLLBACK] = { [E_NEW_EXITED] = a_rolled_back, [E_TIMER] = a_new_kill, [E_OLD_EXITED] = a_old_restart },
        [D_END] = { [E_NEW_READY] = a_daemon, [E_NEW_EXITED] = a_daemon, [E_OLD_EXITED] = a_daemon },
};

/* The one way an event reaches the deploy.  False: not the deploy's (the
 * daemon handles it). */
static bool dispatch(struct deploy *d, enum devent ev)
{
        action_fn *a = actions[d->state][ev];

        if (a == a_daemon)
                return false;
        if (a)
                a(d);
        return true;
}

static int on_timer(sd_event_source *src, uint64_t usec, void *userdata)
{
        dispatch(userdata, E_TIMER);
        return 0;
}

bool deploy_on_slot(struct deploy *d, struct slot *s, enum slot_event ev)
{
        bool is_new;

        if (!d || d->state == D_END)
                return false;
        is_new = s == new_slot(d);
        if (ev == SLOT_EV_EXITED)
                return dispatch(d, is_new ? E_NEW_EXITED : E_OLD_EXITED);
        if (ev == SLOT_EV_READY && is_new)
                return dispatch(d, E_NEW_READY);
        return true; /* STATUS, STOPPING, the old worker's READY: nothing to do */
}

/* ---- the start ---------------------------------------------------------------------------- */

int deploy_start(struct deploy **out, const struct deploy_env *env, const char *binary, int overlap_s,
                 int health_timeout_s, struct control_conn *conn, void (*done)(void *ud, bool ok), void *ud)
{
        struct deploy *d = calloc(1, sizeof(*d));
        struct chores_hap_op show = { .kind = CHORES_HAP_SHOW };
        struct db_deploy row;
        int e;

        if (!d)
                return -ENOMEM;
        d->env = *env;
        tool_run_init(&d->child);
        d->conn = conn;
        d->done = done;
        d->ud = ud;
        d->from = *env->active;
        d->to = 1 - d->from;
        d->overlap_s = overlap_s >= 0 ? overlap_s : env->cfg->deploy.overlap_seconds;
        d->health_timeout_s = health_timeout_s > 0 ? health_timeout_s : env->cfg->deploy.health_timeout_seconds;
        d->t0_mono_us = now_mono_us();
        d->t0_real_us = now_real_us();
        snprintf(d->binary, sizeof(d->binary), "%s", binary ? binary : env->cfg->worker.binary);
        if ((e = health_checker_new(env->e, &d->hc)) < 0) {
                free(d);
                return e;
        }
        *out = d;
        step(d, "deploy %s into slot %s (slot %s keeps recording), overlap %d s", d->binary, new_slot(d)->name,
             old_slot(d)->name, d->overlap_s);
        row = (struct db_deploy){ .started_us = d->t0_real_us, .from_slot = old_slot(d)->name,
                                  .to_slot = new_slot(d)->name, .binary = d->binary, .version = "" };
        d->rec = chores_deploy_begin(env->chores, &row);
        d->state = D_CHECK_HAPROXY;
        if (new_slot(d)->pid > 0) {
                fail(d, "slot %s is not free (pid %d)", new_slot(d)->name, (int)new_slot(d)->pid);
                return 0;
        }
        /* haproxy must be there before anything starts: no switch without it */
        if ((e = hap_send(d, &show, 1, false)) < 0)
                fail(d, "haproxy: cannot ask for backend %s's servers: %s", backend(d), strerror(-e));
        return 0;
}

const struct deploy_result *deploy_get_result(const struct deploy *d)
{
        return &d->res;
}

void deploy_free(struct deploy *d)
{
        if (!d)
                return;
        if (d->rec) /* not ended: the supervisor stops */
                chores_deploy_finish(d->env.chores, d->rec, "failed", "the supervisor stopped during the deploy",
                                     now_real_us());
        chores_haproxy_forget(d->hap);
        health_checker_free(d->hc);
        tool_run_abort(&d->child);
        d->timer = sd_event_source_disable_unref(d->timer);
        free(d);
}
