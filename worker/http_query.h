/* http_query: the query parameters of /api/segments and /api/gaps, checked
 * and converted in one pure function (fuzzed by tests/fuzz/fuzz_http_query). */
#ifndef MWR_WORKER_HTTP_QUERY_H
#define MWR_WORKER_HTTP_QUERY_H

#include <stdbool.h>
#include <stddef.h>
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

#define HTTP_PLAYLIST_DEFAULT_US (3600 * INT64_C(1000000)) /* from defaults to an hour before to */
#define HTTP_PLAYLIST_MAX_US (6 * 3600 * INT64_C(1000000))

/* "/api/cameras/{id}/playlist.m3u8": true and id copied (id_len bytes with
 * the NUL) when url is that and id is a valid camera id. */
bool http_path_playlist(const char *url, char *id, size_t id_len);
/* "/api/cameras/ID/exports" (*job 0: start one), ".../exports/N" (*part
 * 0: its status) or ".../exports/N/K.mp4" (its part K): true, with camera
 * copied as in http_path_playlist. */
#define EXPORT_PARTS_MAX_URL 64
bool http_path_export(const char *url, char *camera, size_t camera_len, int64_t *job, int64_t *part);
/* "/api/cameras/ID" + leaf (e.g. "/coverage"): ID as in http_path_playlist. */
bool http_path_camera_leaf(const char *url, const char *leaf, char *id, size_t id_len);

/* Bytes of a segment file, named so HLS clients see a media extension:
 *   /api/segments/{id}/media.mp4         the whole file (*whole set)
 *   /api/segments/{id}/{offset}-{len}.mp4 or .m4s   a byte range (len > 0)
 * True when url is one of them, with *id, *off, *len set. */
bool http_path_media(const char *url, int64_t *id, uint64_t *off, uint64_t *len, bool *whole);

/* The same below a camera, as the playlist names them (so a proxy sees the
 * camera in the path): /api/cameras/{camera}/segments/{id}/...; the segment
 * must be that camera's. */
bool http_path_camera_media(const char *url, char *camera, size_t camera_len, int64_t *id, uint64_t *off,
                            uint64_t *len, bool *whole);

#endif
