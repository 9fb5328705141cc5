/* libFuzzer target: the SEI parser the frame judge runs on recorded (possibly
 * corrupt) streams never crashes and always terminates the camera id. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "framecode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char cam[FRAMECODE_CAMERA_ID_MAX];
        uint32_t n;

        if (framecode_sei_parse(data, size, cam, &n) == 0 && strnlen(cam, sizeof(cam)) == sizeof(cam))
                abort();
        return 0;
}
