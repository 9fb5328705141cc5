/* camsim control protocol: one command per line on a loopback TCP port.
 *   outage CAM|all SECONDS   stop sending frames for SECONDS (camera outage)
 *   drop [CAM|all]           close the RTSP sessions of CAM (default: all)
 *   corrupt CAM|all FRAMES   send the next FRAMES frames with garbage payload
 *   status                   one line of JSON
 *   sessions [CAM|all]       one line of JSON: each camera's RTSP session counters and
 *                            its last CAMSIM_SESSION_EVENTS_MAX session events
 * The parser is pure (no I/O) so it can be unit tested and fuzzed. */
#ifndef MWR_CAMSIM_CONTROL_H
#define MWR_CAMSIM_CONTROL_H

#include <stddef.h>

#define CAMSIM_CMD_LINE_MAX 256      /* longer lines are refused */
#define CAMSIM_CAMERA_ID_MAX 32
#define CAMSIM_OUTAGE_MAX_S 3600.0
#define CAMSIM_CORRUPT_MAX_FRAMES 100000u
#define CAMSIM_SESSION_EVENTS_MAX 100 /* per camera, the newest; older ones are forgotten */

enum camsim_cmd_kind {
        CAMSIM_CMD_OUTAGE,
        CAMSIM_CMD_DROP,
        CAMSIM_CMD_CORRUPT,
        CAMSIM_CMD_STATUS,
        CAMSIM_CMD_SESSIONS,
};

struct camsim_cmd {
        enum camsim_cmd_kind kind;
        char camera[CAMSIM_CAMERA_ID_MAX]; /* "" means every camera (drop, sessions: the default) */
        double seconds;                    /* outage */
        unsigned frames;                   /* corrupt */
};

/* Parse one line (no newline; len bytes, need not be NUL-terminated).
 * 0 on success; -EINVAL with a reason in err otherwise, -E2BIG when too long. */
int camsim_cmd_parse(const char *line, size_t len, struct camsim_cmd *cmd, char *err, size_t errlen);

#endif
