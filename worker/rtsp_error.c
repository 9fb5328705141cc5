/* rtsp_error: see rtsp_error.h. */
#include "worker/rtsp_error.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <stdarg.h>
#include <stdatomic.h>

#include <libavformat/avformat.h>
#include <libavutil/error.h>

bool rtsp_answer_parse(const char *line, struct rtsp_answer *out)
{
        static const char head[] = "method ";
        const char *p = line, *sp;
        size_t n;
        int status, used = 0;

        if (strncmp(p, head, sizeof(head) - 1))
                return false;
        p += sizeof(head) - 1;
        if (!(sp = strchr(p, ' ')) || (n = (size_t)(sp - p)) == 0 || n >= sizeof(out->method) ||
            strncmp(sp, " failed: ", 9))
                return false;
        if (sscanf(sp + 9, "%3d%n", &status, &used) != 1 || status < 100 || status > 999)
                return false;
        memcpy(out->method, p, n);
        out->method[n] = '\0';
        out->status = status;
        p = sp + 9 + used;
        while (*p == ' ')
                p++;
        snprintf(out->reason, sizeof(out->reason), "%s", p);
        n = strlen(out->reason);
        while (n > 0 && isspace((unsigned char)out->reason[n - 1]))
                out->reason[--n] = '\0';
        return true;
}

/* Dahua: 403 "online user amount has reached the threshold"; others say
 * "session limit", "too many users", "max connections". */
static bool names_a_limit(const char *reason)
{
        static const char *const words[] = { "limit", "threshold", "too many", "maximum", "max ", "session", NULL };

        for (int i = 0; words[i]; i++)
                if (strcasestr(reason, words[i]))
                        return true;
        return false;
}

const char *rtsp_error_describe(const struct rtsp_answer *a, int averr, const char *averr_text, bool opened,
                                char *text, size_t len)
{
        if (a && a->status > 0) {
                snprintf(text, len, "%s answered %d%s%s", a->method, a->status, a->reason[0] ? " " : "", a->reason);
                switch (a->status) {
                case 401:
                        return RTSP_ERR_AUTH;
                case 453:
                        return RTSP_ERR_SESSION_LIMIT;
                case 403:
                        return names_a_limit(a->reason) ? RTSP_ERR_SESSION_LIMIT : RTSP_ERR_FORBIDDEN;
                case 404:
                        return RTSP_ERR_NOT_FOUND;
                case 461:
                        return RTSP_ERR_TRANSPORT;
                default:
                        return RTSP_ERR_RTSP;
                }
        }
        snprintf(text, len, "%s", averr_text);
        if (averr == AVERROR_HTTP_UNAUTHORIZED)
                return RTSP_ERR_AUTH;
        if (opened)
                return RTSP_ERR_ENDED;
        if (averr == AVERROR(ECONNREFUSED) || averr == AVERROR(EHOSTUNREACH) || averr == AVERROR(ENETUNREACH) ||
            averr == AVERROR(ETIMEDOUT) || averr == AVERROR_EXIT || averr == AVERROR(ECONNRESET))
                return RTSP_ERR_UNREACHABLE;
        return RTSP_ERR_STREAM;
}

static void log_cb(void *avcl, int level, const char *fmt, va_list vl)
{
        const AVClass *c = avcl ? *(const AVClass *const *)avcl : NULL;
        struct rtsp_log *l = c && fmt && !strcmp(c->class_name, "AVFormatContext") ? ((AVFormatContext *)avcl)->opaque
                                                                                  : NULL;

        if (l && !strcmp(fmt, "method %s failed: %d%s\n")) {
                char line[256];
                va_list copy;

                va_copy(copy, vl);
                vsnprintf(line, sizeof(line), fmt, copy);
                va_end(copy);
                if (rtsp_answer_parse(line, &l->answer))
                        return;
        }
        if (l && l->rtp_lost && !strcmp(fmt, "RTP: missed %d packets\n")) {
                va_list copy;
                int n;

                va_copy(copy, vl);
                n = va_arg(copy, int);
                va_end(copy);
                if (n > 0)
                        atomic_fetch_add(l->rtp_lost, (uint64_t)n);
        }
        av_log_default_callback(avcl, level, fmt, vl);
}

void rtsp_log_install(void)
{
        av_log_set_callback(log_cb);
}
