/* rtsp_error: why a camera's RTSP session failed, in words an operator can
 * act on.  libavformat turns the camera's answer into an AVERROR and drops
 * the status code (453 becomes "4XX Client Error, but not one of
 * 40{0,1,3,4}", 461 "Protocol not supported"); it does log "method SETUP
 * failed: 453 Not Enough Bandwidth" though.  rtsp_log_install() catches
 * that line (and rtpdec's "RTP: missed N packets") for the session whose
 * AVFormatContext.opaque is a struct rtsp_log; the rest is pure. */
#ifndef MWR_WORKER_RTSP_ERROR_H
#define MWR_WORKER_RTSP_ERROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the camera said, as libavformat logged it (status 0: nothing). */
struct rtsp_answer {
        char method[16];
        int status;
        char reason[96];
};

/* The kinds, for /health, /api/cameras and the backoff. */
#define RTSP_ERR_AUTH "auth_failed"                     /* 401: wrong user or password */
#define RTSP_ERR_SESSION_LIMIT "session_limit"          /* 453, or 403 naming a user/session limit */
#define RTSP_ERR_FORBIDDEN "forbidden"                  /* other 403 */
#define RTSP_ERR_NOT_FOUND "not_found"                  /* 404: no such stream */
#define RTSP_ERR_TRANSPORT "unsupported_transport"      /* 461 */
#define RTSP_ERR_RTSP "rtsp_error"                      /* any other RTSP status */
#define RTSP_ERR_UNREACHABLE "unreachable"              /* no RTSP answer: refused, no route, timed out */
#define RTSP_ERR_STREAM "stream_error"                  /* answered, but no usable stream */
#define RTSP_ERR_ENDED "connection_ended"               /* the session ran, then ended */

/* One session's share of libavformat's log; point the RTSP context's
 * opaque at it before avformat_open_input(). */
struct rtsp_log {
        struct rtsp_answer answer; /* the last refused request */
        _Atomic uint64_t *rtp_lost; /* if not NULL: RTP sequence gaps are added here */
};

/* Installs the process's libavformat log callback (once, before any
 * session): it fills the struct rtsp_log of the session it logs for and
 * passes everything else on as libav does.  The refusal line is not passed
 * on: the caller says it, once, naming the camera. */
void rtsp_log_install(void);

/* Parses libavformat's "method %s failed: %d%s" line (fmt's arguments
 * already formatted into line).  False if it is not that line. */
bool rtsp_answer_parse(const char *line, struct rtsp_answer *out);

/* The kind (one of RTSP_ERR_*) and a text: "DESCRIBE answered 401
 * Unauthorized" when the camera answered, else what averr_text says.
 * `opened`: the session got as far as reading packets. */
const char *rtsp_error_describe(const struct rtsp_answer *a, int averr, const char *averr_text, bool opened,
                                char *text, size_t len);

#endif
