/* libFuzzer target: the config parser never crashes or leaks on any input,
 * and whatever it accepts satisfies the documented bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char err[CONFIG_ERR_MAX];
        struct mwr_config *c = NULL;

        if (config_parse((const char *)data, size, "fuzz.json", &c, err) == 0) {
                if (c->n_cameras > CONFIG_MAX_CAMERAS || c->segment_seconds < 1 || !c->storage_dir)
                        abort();
                for (size_t i = 0; i < c->n_cameras; i++)
                        if (strlen(c->cameras[i].id) >= CONFIG_ID_MAX || !c->cameras[i].url)
                                abort();
                config_free(c);
        } else if (strncmp(err, "fuzz.json: ", 11) != 0) {
                abort(); /* every error names the file */
        }
        return 0;
}
