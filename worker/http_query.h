/* http_query: the query parameters of /api/segments and /api/gaps, checked
 * and converted in one pure function (fuzzed by tests/fuzz/fuzz_http_query). */
#ifndef MWR_WORKER_HTTP_QUERY_H
#define MWR_WORKER_HTTP_QUERY_H

#include <stdbool.h>
#include <stdint.h>

#define HTTP_PAGE_DEFAULT 100
#define HTTP_PAGE_MAX 1000
#define HTTP_DEFAULT_AHEAD_US (86400 * INT64_C(1000000)) /* `to` defaults to a day after now */

struct http_query {
        const char *camera; /* NULL: every camera */
        int64_t from_us, to_us, limit, offset;
};

/* Any argument may be NULL (absent).  Returns NULL, or a message for a 400. */
const char *http_query_parse(const char *camera, const char *from, const char *to, const char *limit,
                             const char *offset, bool camera_required, int64_t now_us, struct http_query *q);

#endif
