/* http: the worker's HTTP API on libmicrohttpd (one internal polling thread,
 * bounded connections, per-connection memory and an idle timeout).  Handlers
 * read a status snapshot through a callback and the index through a read-only
 * DB connection of their own: recording never waits on HTTP.
 *   GET /health  /api/health  /metrics  /api/cameras
 *   GET /api/segments?camera=&from=&to=&limit=&offset=   /api/gaps?...
 *   GET /api/cameras/{id}/playlist.m3u8?from=&to=   (HLS VOD, worker/hls.h)
 *   GET /api/segments/{id}/{offset}-{length}.m4s   (bytes of a segment file; media.mp4: all)
 *   GET /api/cameras/{id}/segments/{sid}/...          (the same, as playlists name them)
 * Behind haproxy, X-Mwr-User names who asks (logged in an "audit:" line for
 * every footage request) and X-Mwr-Cameras the cameras that user may see. */
#ifndef MWR_WORKER_HTTP_H
#define MWR_WORKER_HTTP_H

#include <stddef.h>

#include "worker/status.h"

#define HTTP_MAX_CONNECTIONS 64
#define HTTP_THREADS 4 /* a long request (playlist, media) holds one; /health gets another */
#define HTTP_CONNECTION_TIMEOUT_S 10   /* idle or slow (slowloris) connections are closed */
#define HTTP_CONNECTION_MEMORY (32 * 1024) /* request line + headers per connection */
#define HTTP_DB_BUSY_TIMEOUT_MS 200        /* a locked DB answers /health in time, as "unhealthy" */
#define HTTP_AUDIT_FIELD 72                /* longest user, address, request or range in an audit line */

typedef void (*http_snapshot_fn)(void *ctx, struct status_snapshot *out);

struct http_server;

int http_start(struct http_server **out, const char *bind, int port, const char *db_path, const char *storage_dir,
               http_snapshot_fn fn, void *ctx, char *err, size_t errlen);
void http_stop(struct http_server *h);

#endif
