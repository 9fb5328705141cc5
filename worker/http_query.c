/* http_query: see http_query.h. */
#include "worker/http_query.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/timefmt.h"

static bool parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
        char *end;
        long long v;

        if (!*s)
                return false;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno || *end || v < min || v > max)
                return false;
        *out = v;
        return true;
}

const char *http_query_parse(const char *camera, const char *from, const char *to, const char *limit,
                             const char *offset, bool camera_required, int64_t now_us, struct http_query *q)
{
        q->camera = camera;
        if (camera && (!*camera || strlen(camera) >= CONFIG_ID_MAX))
                return "camera: not a camera id";
        if (camera_required && !camera)
                return "camera is required";
        q->from_us = 0;
        q->to_us = now_us + HTTP_DEFAULT_AHEAD_US;
        if (from && timefmt_parse_us(from, &q->from_us) < 0)
                return "from: not RFC 3339 or unix seconds";
        if (to && timefmt_parse_us(to, &q->to_us) < 0)
                return "to: not RFC 3339 or unix seconds";
        if (q->from_us >= q->to_us)
                return "from must be before to";
        q->limit = HTTP_PAGE_DEFAULT;
        q->offset = 0;
        if (limit && !parse_int(limit, 1, HTTP_PAGE_MAX, &q->limit))
                return "limit: an integer in [1, 1000]";
        if (offset && !parse_int(offset, 0, INT32_MAX, &q->offset))
                return "offset: a non-negative integer";
        return NULL;
}
