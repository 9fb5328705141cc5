/* coverage: what the web timeline draws for one camera over a range, from
 * the segment rows alone (no frame index is read, so a day of 10 s
 * segments is one indexed range scan): each instance's copy as spans of
 * recorded time, their union, and every hole in the union longer than
 * COVERAGE_JOIN_US with the reason the gap ledger gives for it. */
#ifndef MWR_WORKER_COVERAGE_H
#define MWR_WORKER_COVERAGE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "db/db.h"

#define COVERAGE_JOIN_US INT64_C(500000)                /* closer than this: one span */
#define COVERAGE_RANGE_MAX_US (INT64_C(48) * 3600 * 1000000) /* a request covers at most 48 h */
#define COVERAGE_SEGMENTS_MAX 200000                    /* rows read for one answer */
#define COVERAGE_COPIES_MAX 16                          /* instances shown apart */

/* {camera, from, to, from_us, to_us, segments, copies:[{instance_id,
 * spans:[[start_us, end_us]...]}], coverage:[[start_us, end_us]...],
 * gaps:[{start_us, end_us, start, end, seconds, reason, detail,
 * instance_id}]}; spans are clipped to [from_us, to_us).  0, -EINVAL (bad
 * range), -E2BIG (more rows than COVERAGE_SEGMENTS_MAX), -ENOMEM, or a DB
 * error (db_errmsg).  err says what, for the client. */
int coverage_json(struct db *db, const char *camera, int64_t from_us, int64_t to_us, cJSON **out, char *err,
                  size_t errlen);

#endif
