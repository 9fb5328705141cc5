/* libFuzzer target: the HTTP query parser (/api/segments, /api/gaps), the
 * time parser under it and the playlist/media path parsers never crash, and
 * what they accept is in bounds.  The first field is also tried as a path.
 * Input: up to five NUL-separated fields camera, from, to, limit, offset;
 * a missing field is an absent parameter. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/http_query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *buf = malloc(size + 1), *f[5] = { NULL };
        struct http_query q;
        size_t n = 0, start = 0;

        if (!buf)
                return 0;
        memcpy(buf, data, size);
        buf[size] = '\0';
        for (size_t i = 0; i <= size && n < 5; i++)
                if (buf[i] == '\0') {
                        f[n++] = buf + start;
                        start = i + 1;
                }
        if (f[0]) {
                char id[32];
                int64_t seg, job_part;
                uint64_t off, len;
                bool whole;

                if (http_path_playlist(f[0], id, sizeof(id)) && (strlen(id) == 0 || strlen(id) >= sizeof(id)))
                        abort();
                if (http_path_media(f[0], &seg, &off, &len, &whole) && (seg < 1 || (!whole && len == 0)))
                        abort();
                if (http_path_camera_media(f[0], id, sizeof(id), &seg, &off, &len, &whole) &&
                    (strlen(id) == 0 || seg < 1 || (!whole && len == 0)))
                        abort();
                if (http_path_export(f[0], id, sizeof(id), &seg, &job_part) &&
                    (strlen(id) == 0 || seg < 0 || job_part < 0 || job_part > EXPORT_PARTS_MAX_URL ||
                     (job_part && !seg)))
                        abort();
        }
        if (!http_query_parse(f[0], f[1], f[2], f[3], f[4], size % 2, INT64_C(1795540000000000), &q)) {
                if (q.limit < 1 || q.limit > HTTP_PAGE_MAX || q.offset < 0 || q.from_us >= q.to_us)
                        abort();
        }
        free(buf);
        return 0;
}
