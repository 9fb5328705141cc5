/* loader: a camera's segments over a time range, with their frame indexes,
 * read from the DB into the timeline's input (continuity/timeline.h), and
 * the timeline's verdicts written back (overlap_status). */
#ifndef MWR_CONTINUITY_LOADER_H
#define MWR_CONTINUITY_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "continuity/timeline.h"
#include "db/db.h"

/* A time range is read with this much more on both sides, so the GOP or
 * segment that holds `from` is complete. */
#define TL_LOAD_MARGIN_US (INT64_C(120) * 1000000)

struct tl_input {
        struct tl_segment *segs;
        size_t n, cap;
        /* per segment, owned here */
        char **status;   /* recording | complete | partial | corrupt */
        char **overlap;  /* as stored */
        int64_t *end_us;
        size_t bad_index; /* segments skipped: no or unreadable frame index */
};

/* Segments of camera overlapping [from_us, to_us) +- TL_LOAD_MARGIN_US,
 * with every frame's absolute time.  Corrupt segments are left out, as are
 * rows whose frame index is missing or unreadable (counted in bad_index).
 * 0 or a negative errno (the DB's message in db_errmsg). */
int tl_load(struct db *db, const char *camera, int64_t from_us, int64_t to_us, struct tl_input *in);
void tl_input_free(struct tl_input *in);

/* Store the timeline's overlap verdict of every segment that lies entirely
 * inside [from_us, to_us) and is not being recorded, where it differs from
 * the stored one.  *changed (may be NULL) counts the rows written. */
int tl_store_overlap(struct db *db, const struct tl_input *in, const struct tl_result *r, int64_t from_us,
                     int64_t to_us, size_t *changed);

/* Why the timeline has hole h: the gap ledger's row that overlaps it most
 * (camera_down, disk_full, ...); else "crash" after a segment left partial,
 * "packet_loss" inside a GOP, or "unknown".  Copied into reason. */
int tl_hole_reason(struct db *db, const char *camera, const struct tl_input *in, const struct tl_hole *h,
                   char *reason, size_t len);

#endif
