/* disk_guard: keeps the storage under its limits, from the main thread once
 * a second.  Deletes the oldest finished segments (file, then row) when free
 * space is under disk.min_free_mb, when they are older than retention_days or
 * when all segments exceed max_total_gb.  When nothing more can be freed it
 * raises `full`: recorders then close their segments and drop packets, and
 * resume by themselves once space is back (with DISK_RESUME_MARGIN above the
 * floor, so they do not flap).  A recorder that hits ENOSPC raises it too. */
#ifndef MWR_WORKER_DISK_GUARD_H
#define MWR_WORKER_DISK_GUARD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"

#define DISK_RESUME_MARGIN (8u << 20)    /* bytes above the floor before recording resumes: ~4 s of 16 cameras */
#define DISK_DELETE_BATCH 64             /* segments looked at per deletion round */

struct disk_guard;

struct disk_state {
        atomic_bool full;               /* read by every recorder before it writes */
        _Atomic uint64_t free_bytes;
        _Atomic uint64_t deleted_segments;
        _Atomic uint64_t deleted_bytes;
};

int disk_guard_new(const struct mwr_config *cfg, struct disk_guard **out);
void disk_guard_free(struct disk_guard *g);
/* The config the limits come from, after a reload. */
void disk_guard_set_config(struct disk_guard *g, const struct mwr_config *cfg);
void disk_guard_tick(struct disk_guard *g);
struct disk_state *disk_guard_state(struct disk_guard *g);

#endif
