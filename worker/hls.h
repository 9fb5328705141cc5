/* hls: an HLS VOD playlist (RFC 8216, version 7, fMP4) over a camera's
 * continuity timeline.  Every segment file is a complete fragmented MP4, so
 * the playlist addresses its init section (EXT-X-MAP) and its fragments by
 * byte range through /api/segments/{id}/{OFFSET}-{LENGTH}.m4s.  A new file
 * restarts its timestamps at 0, so each file begins with
 * EXT-X-DISCONTINUITY and EXT-X-PROGRAM-DATE-TIME (its piece's camera time):
 * where footage is missing, the date jumps by the gap, which players show as
 * the gap it is. */
#ifndef MWR_WORKER_HLS_H
#define MWR_WORKER_HLS_H

#include <stddef.h>

#include "continuity/loader.h"
#include "continuity/timeline.h"

/* The playlist of r (built from in) as a malloc'ed string in *out; media
 * URIs start with prefix (e.g. "/api/segments/").  0, -ENOMEM, or the
 * error of a segment file that cannot be read (reason in err). */
int hls_playlist(const struct tl_input *in, const struct tl_result *r, const char *prefix, char **out, char *err,
                 size_t errlen);

#endif
