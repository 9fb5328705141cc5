/* libFuzzer target: the supervisor's control command parser never crashes,
 * and what it accepts is in bounds (a binary is absolute and has no
 * spaces or control characters, seconds are in -1..3600). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/control_cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *line = malloc(size + 1);
        struct ctl_cmd c;

        if (!line)
                return 0;
        memcpy(line, data, size);
        line[size] = '\0';
        if (!ctl_cmd_parse(line, &c)) {
                if (c.overlap_s < -1 || c.overlap_s > 3600 || c.health_s < -1 || c.health_s > 3600)
                        abort();
                if (c.binary[0] && c.binary[0] != '/')
                        abort();
                for (const char *p = c.binary; *p; p++)
                        if ((unsigned char)*p <= ' ')
                                abort();
        }
        free(line);
        return 0;
}
