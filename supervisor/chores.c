/* chores: the supervisor's background writes (see chores.h). */
#include "supervisor/chores.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "proxy-config/haproxy_sync.h"
#include "supervisor/offload.h"

struct chores {
        const struct mwr_config *cfg;
        struct offload *off;     /* the database's rows, in order */
        struct offload *off_hap; /* haproxy's commands: a hung haproxy holds back no row */
        struct db *db; /* used on off's thread only */
        pthread_mutex_t hap_mu; /* held by a re-sync while it talks to haproxy */
        bool deploy_running;    /* under hap_mu */
        int active;             /* under hap_mu: what a re-sync makes haproxy say */
        bool sync_queued;       /* the loop's */
};

struct chores_deploy {
        int64_t id; /* written by the begin job, read by the finish job (same thread, in order) */
};

#define ERR_MAX 256

static char *dup_or_empty(const char *s)
{
        return strdup(s ? s : "");
}

/* ---- slot rows ---- */

struct slots_job {
        struct offload_job j;
        struct chores *c;
        struct db_slot rows[2];
        char *str[2][5];
        int e;
        char err[ERR_MAX];
};

static void slots_run(struct offload_job *oj)
{
        struct slots_job *sj = (struct slots_job *)oj;

        for (int i = 0; i < 2 && sj->e == 0; i++)
                if ((sj->e = db_slot_save(sj->c->db, &sj->rows[i])) < 0)
                        snprintf(sj->err, sizeof(sj->err), "slot %s: %s (%s)", sj->rows[i].name, strerror(-sj->e),
                                 db_errmsg(sj->c->db));
}

static void slots_done(struct offload_job *oj)
{
        struct slots_job *sj = (struct slots_job *)oj;

        if (sj->e < 0)
                log_warn("supervisor: saving the slots to the database: %s (the next change saves them again)",
                         sj->err);
        for (int i = 0; i < 2; i++)
                for (int k = 0; k < 5; k++)
                        free(sj->str[i][k]);
        free(sj);
}

void chores_save_slots(struct chores *c, const struct db_slot rows[2])
{
        struct slots_job *sj;
        bool ok = true;
        int e;

        if (!c->db)
                return;
        if (!(sj = calloc(1, sizeof(*sj)))) {
                log_warn("supervisor: saving the slots: out of memory");
                return;
        }
        sj->j = (struct offload_job){ .run = slots_run, .done = slots_done };
        sj->c = c;
        for (int i = 0; i < 2; i++) {
                const char *src[5] = { rows[i].name, rows[i].instance_id, rows[i].binary, rows[i].version,
                                       rows[i].state };

                for (int k = 0; k < 5; k++)
                        ok = (sj->str[i][k] = dup_or_empty(src[k])) && ok;
                sj->rows[i] = rows[i];
                sj->rows[i].name = sj->str[i][0];
                sj->rows[i].instance_id = sj->str[i][1];
                sj->rows[i].binary = sj->str[i][2];
                sj->rows[i].version = sj->str[i][3];
                sj->rows[i].state = sj->str[i][4];
        }
        if (!ok) {
                sj->e = -ENOMEM;
                snprintf(sj->err, sizeof(sj->err), "out of memory");
                slots_done(&sj->j);
                return;
        }
        if ((e = offload_submit(c->off, &sj->j)) < 0) {
                sj->e = e;
                snprintf(sj->err, sizeof(sj->err), "%s writes wait already (%s)", e == -EAGAIN ? "too many" : "no",
                         strerror(-e));
                slots_done(&sj->j);
        }
}

/* ---- deploy rows ---- */

struct deploy_job {
        struct offload_job j;
        struct chores *c;
        struct chores_deploy *d;
        bool finish; /* else begin */
        struct db_deploy row;
        char *from, *to, *binary, *version, *result, *reason;
        int e;
        char err[ERR_MAX];
};

static void deploy_run(struct offload_job *oj)
{
        struct deploy_job *dj = (struct deploy_job *)oj;

        if (!dj->finish)
                dj->e = db_deploy_begin(dj->c->db, &dj->row, &dj->d->id);
        else if (dj->d->id)
                dj->e = db_deploy_finish(dj->c->db, dj->d->id, dj->result, dj->reason, dj->row.finished_us);
        if (dj->e < 0)
                snprintf(dj->err, sizeof(dj->err), "%s (%s)", strerror(-dj->e), db_errmsg(dj->c->db));
}

static void deploy_job_free(struct deploy_job *dj)
{
        free(dj->from);
        free(dj->to);
        free(dj->binary);
        free(dj->version);
        free(dj->result);
        free(dj->reason);
        free(dj);
}

static void deploy_done(struct offload_job *oj)
{
        struct deploy_job *dj = (struct deploy_job *)oj;

        if (dj->e < 0)
                log_warn("deploy: recording the %s in the database: %s", dj->finish ? "result" : "start", dj->err);
        if (dj->finish)
                free(dj->d);
        deploy_job_free(dj);
}

static struct deploy_job *deploy_job_new(struct chores *c, struct chores_deploy *d, bool finish)
{
        struct deploy_job *dj = calloc(1, sizeof(*dj));

        if (!dj)
                return NULL;
        dj->j = (struct offload_job){ .run = deploy_run, .done = deploy_done };
        dj->c = c;
        dj->d = d;
        dj->finish = finish;
        return dj;
}

struct chores_deploy *chores_deploy_begin(struct chores *c, const struct db_deploy *row)
{
        struct chores_deploy *d;
        struct deploy_job *dj;

        if (!c->db || !(d = calloc(1, sizeof(*d))))
                return NULL;
        if (!(dj = deploy_job_new(c, d, false))) {
                free(d);
                return NULL;
        }
        dj->row = *row;
        dj->row.from_slot = dj->from = dup_or_empty(row->from_slot);
        dj->row.to_slot = dj->to = dup_or_empty(row->to_slot);
        dj->row.binary = dj->binary = dup_or_empty(row->binary);
        dj->row.version = dj->version = dup_or_empty(row->version);
        if (!dj->from || !dj->to || !dj->binary || !dj->version || offload_submit(c->off, &dj->j) < 0) {
                log_warn("deploy: cannot queue recording its start in the database: it goes unrecorded");
                deploy_job_free(dj);
                free(d);
                return NULL;
        }
        return d;
}

void chores_deploy_finish(struct chores *c, struct chores_deploy *d, const char *result, const char *reason,
                          int64_t finished_us)
{
        struct deploy_job *dj;

        if (!d)
                return;
        if ((dj = deploy_job_new(c, d, true)))
                dj->row.finished_us = finished_us;
        if (!dj || !(dj->result = dup_or_empty(result)) || !(dj->reason = dup_or_empty(reason)) ||
            offload_submit(c->off, &dj->j) < 0) {
                /* d may still be written by its begin job: it is left, not freed */
                log_warn("deploy: cannot queue recording its result (%s) in the database", result);
                if (dj)
                        deploy_job_free(dj);
                return;
        }
}

/* ---- haproxy ---- */

struct sync_job {
        struct offload_job j;
        struct chores *c;
        bool sync, save_state, skipped, changed;
        void (*done)(void *ud, int e, bool changed, int active, const char *err);
        void *ud;
        int e, active; /* the active slot haproxy was set to */
        char err[ERR_MAX];
};

static void sync_run(struct offload_job *oj)
{
        struct sync_job *sj = (struct sync_job *)oj;
        struct chores *c = sj->c;

        pthread_mutex_lock(&c->hap_mu);
        if (sj->sync && c->deploy_running)
                sj->skipped = true; /* the deploy owns haproxy now */
        else if (sj->sync)
                sj->e = haproxy_sync(c->cfg, sj->active = c->active, &sj->changed, sj->err, sizeof(sj->err));
        pthread_mutex_unlock(&c->hap_mu);
        if (!sj->skipped && sj->e == 0 && (sj->changed || sj->save_state))
                sj->e = haproxy_save_state(c->cfg, sj->err, sizeof(sj->err));
}

static void sync_done(struct offload_job *oj)
{
        struct sync_job *sj = (struct sync_job *)oj;

        if (sj->sync)
                sj->c->sync_queued = false;
        if (sj->done && !sj->skipped)
                sj->done(sj->ud, sj->e, sj->changed, sj->active, sj->err);
        else if (!sj->done && sj->e < 0)
                log_warn("supervisor: saving haproxy's server state: %s", sj->err);
        free(sj);
}

static bool sync_submit(struct chores *c, bool sync, bool save_state,
                        void (*done)(void *ud, int e, bool changed, int active, const char *err), void *ud)
{
        struct sync_job *sj = calloc(1, sizeof(*sj));

        if (!sj)
                return false;
        *sj = (struct sync_job){ .j = { .run = sync_run, .done = sync_done }, .c = c, .sync = sync,
                                 .save_state = save_state, .done = done, .ud = ud };
        if (offload_submit(c->off_hap, &sj->j) < 0) {
                free(sj);
                return false;
        }
        return true;
}

bool chores_proxy_sync(struct chores *c, int active, bool save_state,
                       void (*done)(void *ud, int e, bool changed, int active, const char *err), void *ud)
{
        /* a sync queued and not yet run uses the newest active slot */
        pthread_mutex_lock(&c->hap_mu);
        c->active = active;
        pthread_mutex_unlock(&c->hap_mu);
        if (c->sync_queued)
                return false;
        if (!sync_submit(c, true, save_state, done, ud))
                return false;
        c->sync_queued = true;
        return true;
}

void chores_proxy_save_state(struct chores *c)
{
        if (!sync_submit(c, false, true, NULL, NULL))
                log_warn("supervisor: cannot queue saving haproxy's server state");
}

struct fence_job {
        struct offload_job j;
        struct chores *c;
        bool running;
        int active;
};

static void fence_set(struct chores *c, bool running, int active)
{
        pthread_mutex_lock(&c->hap_mu);
        c->deploy_running = running;
        c->active = active;
        pthread_mutex_unlock(&c->hap_mu);
}

static void fence_run(struct offload_job *oj)
{
        struct fence_job *fj = (struct fence_job *)oj;

        fence_set(fj->c, fj->running, fj->active);
}

static void fence_done(struct offload_job *oj)
{
        free(oj);
}

void chores_deploy_running(struct chores *c, bool running, int active)
{
        struct fence_job *fj = calloc(1, sizeof(*fj));

        if (fj) {
                *fj = (struct fence_job){ .j = { .run = fence_run, .done = fence_done }, .c = c, .running = running,
                                          .active = active };
                if (offload_submit(c->off_hap, &fj->j) == 0)
                        return;
                free(fj);
        }
        /* not queued: set it here (waits for a re-sync under way, if any) */
        log_warn("supervisor: cannot queue the deploy's haproxy fence; setting it on the loop");
        fence_set(c, running, active);
}

struct chores_hap {
        struct offload_job j;
        const struct mwr_config *cfg;
        struct chores_hap_op ops[CHORES_HAP_OPS_MAX];
        size_t n;
        bool stop_on_error;
        void (*done)(void *ud, const struct chores_hap_op *ops, size_t n); /* NULL: forgotten */
        void *ud;
};

static void hap_run(struct offload_job *oj)
{
        struct chores_hap *h = (struct chores_hap *)oj;
        const char *sock = h->cfg->haproxy.socket, *be = h->cfg->haproxy.backend;
        bool failed = false;

        for (size_t i = 0; i < h->n; i++) {
                struct chores_hap_op *op = &h->ops[i];
                struct hap_server srv[4];

                if (failed && h->stop_on_error) {
                        op->e = -ECANCELED;
                        continue;
                }
                switch (op->kind) {
                case CHORES_HAP_SHOW:
                        op->e = hap_show_servers(sock, be, srv, 4, &op->n_servers);
                        break;
                case CHORES_HAP_SET:
                        op->e = hap_set_state(sock, be, op->server, op->state, op->err, sizeof(op->err));
                        break;
                case CHORES_HAP_GET:
                        op->e = hap_server_get(sock, be, op->server, &op->srv);
                        break;
                }
                if (op->e < 0 && !op->err[0])
                        snprintf(op->err, sizeof(op->err), "%s", strerror(-op->e));
                failed = failed || op->e < 0;
        }
}

static void hap_done(struct offload_job *oj)
{
        struct chores_hap *h = (struct chores_hap *)oj;

        if (h->done)
                h->done(h->ud, h->ops, h->n);
        free(h);
}

struct chores_hap *chores_haproxy(struct chores *c, const struct chores_hap_op *ops, size_t n, bool stop_on_error,
                                  void (*done)(void *ud, const struct chores_hap_op *ops, size_t n), void *ud)
{
        struct chores_hap *h;

        if (n > CHORES_HAP_OPS_MAX || !(h = calloc(1, sizeof(*h))))
                return NULL;
        h->j = (struct offload_job){ .run = hap_run, .done = hap_done };
        h->cfg = c->cfg;
        h->n = n;
        h->stop_on_error = stop_on_error;
        h->done = done;
        h->ud = ud;
        for (size_t i = 0; i < n; i++) {
                h->ops[i] = ops[i];
                h->ops[i].e = 0;
                h->ops[i].err[0] = '\0';
        }
        if (offload_submit(c->off_hap, &h->j) < 0) {
                free(h);
                return NULL;
        }
        return h;
}

void chores_haproxy_forget(struct chores_hap *h)
{
        if (h)
                h->done = NULL;
}

struct db_job {
        struct offload_job j;
        struct chores *c;
        void (*fn)(struct db *db, void *ctx);
        void (*done)(void *ctx);
        void *ctx;
};

static void db_job_run(struct offload_job *oj)
{
        struct db_job *dj = (struct db_job *)oj;

        dj->fn(dj->c->db, dj->ctx);
}

static void db_job_done(struct offload_job *oj)
{
        struct db_job *dj = (struct db_job *)oj;

        dj->done(dj->ctx);
        free(dj);
}

bool chores_with_db(struct chores *c, void (*fn)(struct db *db, void *ctx), void (*done)(void *ctx), void *ctx)
{
        struct db_job *dj = calloc(1, sizeof(*dj));

        if (!dj)
                return false;
        *dj = (struct db_job){ .j = { .run = db_job_run, .done = db_job_done }, .c = c, .fn = fn, .done = done,
                               .ctx = ctx };
        if (offload_submit(c->off, &dj->j) < 0) {
                free(dj);
                return false;
        }
        return true;
}

/* ---- life ---- */

int chores_new(sd_event *e, const struct mwr_config *cfg, struct chores **out)
{
        struct chores *c = calloc(1, sizeof(*c));
        int r;

        if (!c)
                return -ENOMEM;
        c->cfg = cfg;
        pthread_mutex_init(&c->hap_mu, NULL);
        if (cfg->db_path && cfg->db_path[0] && (r = db_open(cfg->db_path, &c->db)) < 0)
                goto fail;
        if ((r = offload_new(e, &c->off)) < 0)
                goto fail;
        if ((r = offload_new(e, &c->off_hap)) < 0)
                goto fail;
        *out = c;
        return 0;
fail:
        offload_free(c->off);
        db_close(c->db);
        pthread_mutex_destroy(&c->hap_mu);
        free(c);
        return r;
}

void chores_free(struct chores *c)
{
        if (!c)
                return;
        offload_free(c->off_hap);
        offload_free(c->off);
        db_close(c->db);
        pthread_mutex_destroy(&c->hap_mu);
        free(c);
}
