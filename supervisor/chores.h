/* chores: what the supervisor writes down and tells haproxy in the
 * background (supervisor/offload.h): the slot rows and deploy rows (its own
 * SQLite connection, so a database another process keeps locked delays the
 * rows, never the loop), and on a second thread the periodic haproxy
 * re-sync and the haproxy state file (a hung haproxy delays no row).  Each call copies what it is given and returns at once; failures are
 * logged from the loop, naming what was not saved.
 *
 * haproxy has two writers, both on the haproxy thread: the background
 * re-sync and a deploy's own commands (chores_haproxy()).
 * chores_deploy_running() fences them: it is queued like the rest, so a
 * re-sync queued after it is skipped until the deploy ends, and one queued
 * later uses the active slot the deploy left. */
#ifndef MWR_SUPERVISOR_CHORES_H
#define MWR_SUPERVISOR_CHORES_H

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "common/config.h"
#include "db/db.h"
#include "proxy-config/haproxy_runtime.h"

struct chores;

/* Opens its own DB connection to cfg->db_path (NULL db_path: no rows).
 * 0, or a negative errno (the connection, the thread). */
int chores_new(sd_event *e, const struct mwr_config *cfg, struct chores **out);

/* Does what is queued (the last slot rows are written before this returns),
 * then frees.  NULL is fine. */
void chores_free(struct chores *c);

/* Both slot rows, as they are now. */
void chores_save_slots(struct chores *c, const struct db_slot rows[2]);

/* A deploy's row: begun now, finished later.  The handle ties the two (the
 * row's id is known on the background thread only); NULL if it could not
 * be queued, which chores_deploy_finish() takes too. */
struct chores_deploy *chores_deploy_begin(struct chores *c, const struct db_deploy *row);
void chores_deploy_finish(struct chores *c, struct chores_deploy *d, const char *result, const char *reason,
                          int64_t finished_us);

/* haproxy as the active slot says, and its state file; done() is called on
 * the loop with the result (err: the reason when e < 0; active: the slot
 * haproxy was set to).  Not queued while one is still under way (returns
 * false); one queued and not yet run takes the new active slot. */
bool chores_proxy_sync(struct chores *c, int active, bool save_state,
                       void (*done)(void *ud, int e, bool changed, int active, const char *err), void *ud);

/* The haproxy state file only (after a deploy). */
void chores_proxy_save_state(struct chores *c);

/* The fence (see above).  Queued: returns at once. */
void chores_deploy_running(struct chores *c, bool running, int active);

/* A deploy's haproxy runtime commands, run in order on the haproxy thread
 * after what is queued there (each capped at HAP_TIMEOUT_MS).  The caller
 * fills kind, server and state; the results come back in the same array. */
enum chores_hap_kind {
        CHORES_HAP_SHOW,  /* hap_show_servers: n_servers */
        CHORES_HAP_SET,   /* hap_set_state(server, state): err */
        CHORES_HAP_GET,   /* hap_server_get(server): srv */
};

#define CHORES_HAP_OPS_MAX 2

struct chores_hap_op {
        enum chores_hap_kind kind;
        char server[64];
        enum hap_admin state;
        int e; /* 0 or a negative errno */
        char err[256];
        struct hap_server srv;
        size_t n_servers;
};

struct chores_hap; /* a call under way */

/* Runs ops[0..n) (n <= CHORES_HAP_OPS_MAX; with stop_on_error the rest is
 * skipped after a failure and keeps e = -ECANCELED), then done(ud, ops, n)
 * on the loop.  NULL (nothing is called) if it cannot be queued. */
struct chores_hap *chores_haproxy(struct chores *c, const struct chores_hap_op *ops, size_t n, bool stop_on_error,
                                  void (*done)(void *ud, const struct chores_hap_op *ops, size_t n), void *ud);

/* The caller no longer waits: done() is not called (the commands still run). */
void chores_haproxy_forget(struct chores_hap *h);

/* Anything else that needs the database: fn(db, ctx) on the background
 * thread (db is NULL without a database), after everything queued before
 * it (so a read sees those writes), then done(ctx) on the loop.  fn must
 * touch only what ctx owns.  False (nothing is called) if it cannot be
 * queued. */
bool chores_with_db(struct chores *c, void (*fn)(struct db *db, void *ctx), void (*done)(void *ctx), void *ctx);

#endif
