/* libFuzzer target: the camsim control line parser never crashes, and a
 * parsed command always satisfies the documented bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "camsim/control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct camsim_cmd c;
        char err[128];

        if (camsim_cmd_parse((const char *)data, size, &c, err, sizeof(err)) == 0) {
                if (strlen(c.camera) >= CAMSIM_CAMERA_ID_MAX)
                        abort();
                if (c.kind == CAMSIM_CMD_OUTAGE && !(c.seconds > 0 && c.seconds <= CAMSIM_OUTAGE_MAX_S))
                        abort();
                if (c.kind == CAMSIM_CMD_CORRUPT && (c.frames == 0 || c.frames > CAMSIM_CORRUPT_MAX_FRAMES))
                        abort();
                /* status and sessions carry nothing but (sessions) a camera */
                if ((c.kind == CAMSIM_CMD_STATUS || c.kind == CAMSIM_CMD_SESSIONS) && (c.seconds != 0 || c.frames != 0))
                        abort();
                if (c.kind == CAMSIM_CMD_STATUS && c.camera[0])
                        abort();
                if (c.kind > CAMSIM_CMD_SESSIONS)
                        abort();
        }
        return 0;
}
