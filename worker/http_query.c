/* http_query: see http_query.h. */
#include "worker/http_query.h"

#include <errno.h>
#include <stdio.h>
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

static bool id_char(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* url is /api/cameras/ID... with ID a camera id shorter than id_len: ID's
 * start (its length in *n), else NULL. */
static const char *camera_path(const char *url, size_t id_len, size_t *n)
{
        static const char head[] = "/api/cameras/";

        if (strncmp(url, head, sizeof(head) - 1) != 0)
                return NULL;
        url += sizeof(head) - 1;
        for (*n = 0; id_char(url[*n]);)
                (*n)++;
        if (*n == 0 || *n >= id_len || *n >= CONFIG_ID_MAX)
                return NULL;
        return url;
}

bool http_path_camera_leaf(const char *url, const char *leaf, char *id, size_t id_len)
{
        size_t n;

        if (!(url = camera_path(url, id_len, &n)) || strcmp(url + n, leaf) != 0)
                return false;
        memcpy(id, url, n);
        id[n] = '\0';
        return true;
}

bool http_path_playlist(const char *url, char *id, size_t id_len)
{
        return http_path_camera_leaf(url, "/playlist.m3u8", id, id_len);
}

/* digits at *s into *v (at most 19 of them), advancing *s */
static bool take_num(const char **s, int64_t min, int64_t max, int64_t *v)
{
        char num[20];
        size_t n = 0;

        while ((*s)[n] >= '0' && (*s)[n] <= '9' && n < sizeof(num) - 1) {
                num[n] = (*s)[n];
                n++;
        }
        num[n] = '\0';
        *s += n;
        return n > 0 && parse_int(num, min, max, v);
}

bool http_path_media(const char *url, int64_t *id, uint64_t *off, uint64_t *len, bool *whole)
{
        static const char head[] = "/api/segments/";
        int64_t o, n;

        *whole = false;
        *off = *len = 0;
        if (strncmp(url, head, sizeof(head) - 1) != 0)
                return false;
        url += sizeof(head) - 1;
        if (!take_num(&url, 1, INT64_MAX, id) || *url++ != '/')
                return false;
        if (strcmp(url, "media.mp4") == 0) {
                *whole = true;
                return true;
        }
        if (!take_num(&url, 0, INT64_MAX, &o) || *url++ != '-' || !take_num(&url, 1, INT32_MAX, &n) ||
            (strcmp(url, ".mp4") != 0 && strcmp(url, ".m4s") != 0))
                return false;
        *off = (uint64_t)o;
        *len = (uint64_t)n;
        return true;
}

bool http_path_camera_media(const char *url, char *camera, size_t camera_len, int64_t *id, uint64_t *off,
                            uint64_t *len, bool *whole)
{
        char rest[128];
        size_t n;

        if (!(url = camera_path(url, camera_len, &n)) || strncmp(url + n, "/segments/", 10) != 0)
                return false;
        /* the rest is the by-id form's own tail: one parser for both */
        if ((size_t)snprintf(rest, sizeof(rest), "/api%s", url + n) >= sizeof(rest) ||
            !http_path_media(rest, id, off, len, whole))
                return false;
        memcpy(camera, url, n);
        camera[n] = '\0';
        return true;
}

bool http_path_export(const char *url, char *camera, size_t camera_len, int64_t *job, int64_t *part)
{
        static const char leaf[] = "/exports";
        const char *s;
        size_t n;

        if (!(s = camera_path(url, camera_len, &n)) || strncmp(s + n, leaf, sizeof(leaf) - 1) != 0)
                return false;
        memcpy(camera, s, n);
        camera[n] = '\0';
        s += n + sizeof(leaf) - 1;
        *job = *part = 0;
        if (!*s)
                return true;
        if (*s++ != '/' || !take_num(&s, 1, INT64_MAX, job))
                return false;
        if (!*s)
                return true;
        if (*s++ != '/' || !take_num(&s, 1, EXPORT_PARTS_MAX_URL, part))
                return false;
        return strcmp(s, ".mp4") == 0;
}
