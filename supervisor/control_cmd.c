/* control_cmd: see control_cmd.h. */
#include "supervisor/control_cmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *parse_binary(const char *s, size_t len, char *out)
{
        if (len == 1 && s[0] == '-') {
                out[0] = '\0';
                return NULL;
        }
        if (len == 0 || len >= PATH_MAX || s[0] != '/')
                return "BINARY must be an absolute path or -";
        for (size_t i = 0; i < len; i++)
                if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
                        return "BINARY must not contain spaces or control characters";
        memcpy(out, s, len);
        out[len] = '\0';
        return NULL;
}

static const char *parse_seconds(const char *s, size_t len, int *out)
{
        char buf[8], *end;
        long v;

        if (len == 0 || len >= sizeof(buf))
                return "seconds must be an integer in -1..3600";
        memcpy(buf, s, len);
        buf[len] = '\0';
        errno = 0;
        v = strtol(buf, &end, 10);
        if (errno || *end || v < -1 || v > 3600)
                return "seconds must be an integer in -1..3600";
        *out = (int)v;
        return NULL;
}

/* The next space-separated word: [*w, *w + *len). */
static bool word(const char **p, const char **w, size_t *len)
{
        while (**p == ' ')
                (*p)++;
        *w = *p;
        while (**p && **p != ' ')
                (*p)++;
        *len = (size_t)(*p - *w);
        return *len > 0;
}

const char *ctl_cmd_parse(const char *line, struct ctl_cmd *out)
{
        const char *p = line, *w, *err;
        size_t n;

        *out = (struct ctl_cmd){ .overlap_s = -1, .health_s = -1 };
        if (!word(&p, &w, &n))
                return "empty command";
        if (n == 6 && !memcmp(w, "status", 6))
                out->kind = CTL_STATUS;
        else if (n == 7 && !memcmp(w, "metrics", 7))
                out->kind = CTL_METRICS;
        else if (n == 8 && !memcmp(w, "rollback", 8))
                out->kind = CTL_ROLLBACK;
        else if (n == 6 && !memcmp(w, "deploy", 6)) {
                out->kind = CTL_DEPLOY;
                if (!word(&p, &w, &n))
                        return "usage: deploy BINARY|- OVERLAP_S HEALTH_S";
                if ((err = parse_binary(w, n, out->binary)))
                        return err;
                if (!word(&p, &w, &n) || (err = parse_seconds(w, n, &out->overlap_s)))
                        return "usage: deploy BINARY|- OVERLAP_S HEALTH_S (seconds in -1..3600)";
                if (!word(&p, &w, &n) || (err = parse_seconds(w, n, &out->health_s)))
                        return "usage: deploy BINARY|- OVERLAP_S HEALTH_S (seconds in -1..3600)";
        } else if (n == 7 && !memcmp(w, "upgrade", 7)) {
                out->kind = CTL_UPGRADE;
                if (!word(&p, &w, &n))
                        return "usage: upgrade BINARY|-";
                if ((err = parse_binary(w, n, out->binary)))
                        return err;
        } else {
                return "unknown command (status, metrics, deploy, rollback, upgrade)";
        }
        if (word(&p, &w, &n))
                return "unexpected words after the command";
        return NULL;
}

const char *ctl_kind_name(enum ctl_kind kind)
{
        switch (kind) {
        case CTL_STATUS:
                return "status";
        case CTL_METRICS:
                return "metrics";
        case CTL_ROLLBACK:
                return "rollback";
        case CTL_DEPLOY:
                return "deploy";
        case CTL_UPGRADE:
                return "upgrade";
        }
        return "?";
}

const char *ctl_cmd_permit(enum ctl_kind kind, uid_t peer, uid_t service, char *msg, size_t len)
{
        if (kind == CTL_STATUS || kind == CTL_METRICS)
                return NULL;
        if (peer != CTL_UID_UNKNOWN && (peer == 0 || peer == service))
                return NULL;
        if (peer == CTL_UID_UNKNOWN)
                snprintf(msg, len, "%s refused: the caller's uid could not be read (only uid %u or root may %s)",
                         ctl_kind_name(kind), (unsigned)service, ctl_kind_name(kind));
        else
                snprintf(msg, len, "%s refused: uid %u is neither the service user (uid %u) nor root",
                         ctl_kind_name(kind), (unsigned)peer, (unsigned)service);
        return msg;
}
