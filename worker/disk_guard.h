/* disk_guard: keeps the storage under its limits, on a thread of its own.
 * Each tick (a second; faster while behind) it first asks whether the
 * storage is there at all (storage.h): when it is not, nothing is deleted
 * and recording pauses as `unavailable` until it is back.  Then it deletes
 * the oldest finished segments (file, then row: a row goes only once its
 * file is known gone) when they are older than retention_days, when all
 * segments exceed max_total_gb, or when free space is under min_free_mb;
 * at most DISK_TICK_BUDGET_US of work a tick, so a sweep of a large archive
 * is spread out and never starves the index writer.  When nothing more can
 * be freed it raises `full`: recorders then close their segments and drop
 * packets, and resume by themselves once space is back (with
 * DISK_RESUME_MARGIN above the floor, so they do not flap).  A recorder
 * that hits ENOSPC raises it too.  In the background it also indexes
 * segment files without a row in every day directory older than
 * yesterday (recovery does the two recent days at start), a bounded number
 * a tick. */
#ifndef MWR_WORKER_DISK_GUARD_H
#define MWR_WORKER_DISK_GUARD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"

#define DISK_RESUME_MARGIN (8u << 20)   /* bytes above the floor before recording resumes: ~4 s of 16 cameras */
#define DISK_DELETE_BATCH 64            /* segments looked at per deletion round */
#define DISK_TICK_BUDGET_US (200 * 1000) /* work a tick; then the DB is left to the index writer a while */
#define DISK_WALK_BUDGET 256            /* directory entries the orphan walk looks at a tick */

struct disk_guard;

struct disk_state {
        atomic_bool full;        /* recording paused: read by every recorder before it writes */
        atomic_bool unavailable; /* ... because the storage is not there (full is set too) */
        _Atomic uint64_t free_bytes;
        _Atomic uint64_t deleted_segments;
        _Atomic uint64_t deleted_bytes;
        _Atomic uint64_t unavailable_events; /* times the storage went away */
        _Atomic uint64_t adopted_files;      /* files without a row indexed by the walk */
        _Atomic uint64_t ticks;              /* the guard thread's heartbeat */
};

/* Opens the guard's DB connection and runs the first tick in the caller
 * (so the worker starts knowing the storage state); disk_guard_start then
 * runs the thread. */
int disk_guard_new(const struct mwr_config *cfg, struct disk_guard **out);
int disk_guard_start(struct disk_guard *g);
void disk_guard_free(struct disk_guard *g); /* stops the thread */
/* The limits after a reload (copied: cfg may be freed after the call). */
void disk_guard_set_config(struct disk_guard *g, const struct mwr_config *cfg);
/* Asks for a recovery pass (stale 'recording' rows) at the next tick. */
void disk_guard_recover(struct disk_guard *g, const char *instance_id);
struct disk_state *disk_guard_state(struct disk_guard *g);
/* The storage's state for /health: "ok", "full", "unavailable"; why names the dir. */
void disk_guard_why(struct disk_guard *g, char *why, size_t len);

#endif
