/* probe: `mwr-worker --config FILE --probe-cameras` asks every enabled
 * camera for its streams (DESCRIBE, SETUP, PLAY, a second of packets) and
 * prints one line each: "camera cam1: ok: h264 1920x1080, aac" or "camera
 * cam1: auth_failed: DESCRIBE answered 401 Unauthorized".  The URL is read
 * from the config, so scripts (pre-start-check.sh) never put credentials on
 * a command line where `ps` shows them; lines show it redacted. */
#ifndef MWR_WORKER_PROBE_H
#define MWR_WORKER_PROBE_H

#include <stdio.h>

#include "common/config.h"

#define PROBE_TIMEOUT_US (5 * INT64_C(1000000)) /* per camera, everything included */

/* The number of cameras that did not answer with a stream. */
int probe_cameras(const struct mwr_config *cfg, FILE *out);

#endif
