/* chores: what the supervisor writes down and tells haproxy in the
 * background (supervisor/offload.h): the slot rows and deploy rows (its own
 * SQLite connection, so a database another process keeps locked delays the
 * rows, never the loop), and on a second thread the periodic haproxy
 * re-sync and the haproxy state file (a hung haproxy delays no row).  Each call copies what it is given and returns at once; failures are
 * logged from the loop, naming what was not saved.
 *
 * haproxy has two writers: the background re-sync and a deploy's own
 * commands (on the loop).  chores_deploy_running() fences them: once it
 * returns, no re-sync runs until the deploy ends, and a re-sync that starts
 * later uses the active slot the deploy left. */
#ifndef MWR_SUPERVISOR_CHORES_H
#define MWR_SUPERVISOR_CHORES_H

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "common/config.h"
#include "db/db.h"

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
 * the loop with the result (err: the reason when e < 0).  Not queued while
 * one is still under way (returns false). */
bool chores_proxy_sync(struct chores *c, int active, bool save_state,
                       void (*done)(void *ud, int e, bool changed, const char *err), void *ud);

/* The haproxy state file only (after a deploy). */
void chores_proxy_save_state(struct chores *c);

/* The fence (see above).  running=true may wait for a re-sync under way
 * (its runtime commands are capped at 2 s each). */
void chores_deploy_running(struct chores *c, bool running, int active);

/* Anything else that needs the database: fn(db, ctx) on the background
 * thread (db is NULL without a database), after everything queued before
 * it (so a read sees those writes), then done(ctx) on the loop.  fn must
 * touch only what ctx owns.  False (nothing is called) if it cannot be
 * queued. */
bool chores_with_db(struct chores *c, void (*fn)(struct db *db, void *ctx), void (*done)(void *ctx), void *ctx);

#endif
