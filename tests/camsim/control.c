/* camsim control protocol parser; see control.h for the grammar.  Tokens are
 * separated by spaces or tabs; a trailing '\r' is ignored so telnet works. */
#include "control.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOKENS 4

static int fail(char *err, size_t errlen, const char *msg)
{
        snprintf(err, errlen, "%s", msg);
        return -EINVAL;
}

static int split(char *buf, char *tok[MAX_TOKENS])
{
        int n = 0;

        for (char *save = NULL, *t = strtok_r(buf, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
                if (n == MAX_TOKENS)
                        return -E2BIG;
                tok[n++] = t;
        }
        return n;
}

static int parse_camera(const char *s, struct camsim_cmd *cmd, char *err, size_t errlen)
{
        size_t l = strlen(s);

        if (l >= CAMSIM_CAMERA_ID_MAX)
                return fail(err, errlen, "camera id too long");
        for (size_t i = 0; i < l; i++)
                if (!(s[i] >= '0' && s[i] <= '9') && !(s[i] >= 'a' && s[i] <= 'z') &&
                    !(s[i] >= 'A' && s[i] <= 'Z') && s[i] != '_' && s[i] != '-')
                        return fail(err, errlen, "camera id has a character outside [A-Za-z0-9_-]");
        strcpy(cmd->camera, strcmp(s, "all") ? s : "");
        return 0;
}

int camsim_cmd_parse(const char *line, size_t len, struct camsim_cmd *cmd, char *err, size_t errlen)
{
        char buf[CAMSIM_CMD_LINE_MAX + 1];
        char *tok[MAX_TOKENS], *end;
        int n, r;

        if (len > CAMSIM_CMD_LINE_MAX) {
                snprintf(err, errlen, "line longer than %d bytes", CAMSIM_CMD_LINE_MAX);
                return -E2BIG;
        }
        if (memchr(line, '\0', len))
                return fail(err, errlen, "NUL byte in command");
        memcpy(buf, line, len);
        buf[len] = '\0';
        memset(cmd, 0, sizeof(*cmd));
        n = split(buf, tok);
        if (n <= 0)
                return fail(err, errlen, n == 0 ? "empty command" : "too many arguments");

        if (!strcmp(tok[0], "status")) {
                if (n != 1)
                        return fail(err, errlen, "usage: status");
                cmd->kind = CAMSIM_CMD_STATUS;
                return 0;
        }
        if (!strcmp(tok[0], "drop")) {
                if (n > 2)
                        return fail(err, errlen, "usage: drop [CAM|all]");
                cmd->kind = CAMSIM_CMD_DROP;
                return n == 2 ? parse_camera(tok[1], cmd, err, errlen) : 0;
        }
        if (!strcmp(tok[0], "sessions")) {
                if (n > 2)
                        return fail(err, errlen, "usage: sessions [CAM|all]");
                cmd->kind = CAMSIM_CMD_SESSIONS;
                return n == 2 ? parse_camera(tok[1], cmd, err, errlen) : 0;
        }
        if (!strcmp(tok[0], "outage")) {
                if (n != 3)
                        return fail(err, errlen, "usage: outage CAM|all SECONDS");
                cmd->kind = CAMSIM_CMD_OUTAGE;
                errno = 0;
                cmd->seconds = strtod(tok[2], &end);
                if (errno || *end || !isfinite(cmd->seconds) || cmd->seconds <= 0 ||
                    cmd->seconds > CAMSIM_OUTAGE_MAX_S)
                        return fail(err, errlen, "SECONDS must be a number in (0, 3600]");
                r = parse_camera(tok[1], cmd, err, errlen);
                return r;
        }
        if (!strcmp(tok[0], "corrupt")) {
                unsigned long v;

                if (n != 3)
                        return fail(err, errlen, "usage: corrupt CAM|all FRAMES");
                cmd->kind = CAMSIM_CMD_CORRUPT;
                errno = 0;
                v = strtoul(tok[2], &end, 10);
                if (errno || *end || tok[2][0] == '-' || v == 0 || v > CAMSIM_CORRUPT_MAX_FRAMES)
                        return fail(err, errlen, "FRAMES must be an integer in [1, 100000]");
                cmd->frames = (unsigned)v;
                return parse_camera(tok[1], cmd, err, errlen);
        }
        return fail(err, errlen, "unknown command (outage, drop, corrupt, status, sessions)");
}
