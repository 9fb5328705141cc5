/* control_cmd: see control_cmd.h. */
#include "supervisor/control_cmd.h"

#include <errno.h>
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
