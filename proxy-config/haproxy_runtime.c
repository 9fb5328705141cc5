/* haproxy_runtime: one command per connection over haproxy's admin socket,
 * nonblocking so that one deadline (HAP_TIMEOUT_MS) bounds connect, write and
 * read together, and a wedged haproxy cannot stall the supervisor.  Server
 * admin states come from `show servers state` (srv_admin_state bits), not
 * from the `show stat` status text: a drained server whose check fails shows
 * "DOWN" there, and the supervisor must still see it as drained. */
#include "proxy-config/haproxy_runtime.h"
#include "proxy-config/haproxy_name.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/time_util.h"

#define HAP_COMMAND_MAX 1024    /* ours are < 200 bytes; haproxy's line limit is its bufsize */
#define HAP_BUF_INITIAL 4096    /* most answers ("\n", show info, two-server show stat) fit */
#define HAP_CONNECT_RETRY_MS 5  /* a full unix backlog answers EAGAIN, and poll cannot wait for room */
#define HAP_FIELD_MAX 128       /* one CSV field we keep; longer ones are cut (status) or refused (names) */
#define HAP_NAME_MAX 64         /* backend/server names we put in a command (haproxy's own limit is looser) */

/* srv_admin_state bits of haproxy 2.x (server-t.h): any of FMAINT, IMAINT,
 * RMAINT is maintenance; FDRAIN or IDRAIN is drain.  CMAINT alone (the
 * `disabled` keyword, kept after `state ready`) is not. */
#define SRV_ADMF_MAINT_MASK 0x23
#define SRV_ADMF_DRAIN_MASK 0x18

static void closep(int *fd)
{
        if (*fd >= 0)
                close(*fd);
}

static void freep(void *p)
{
        free(*(void **)p);
}

#define _cleanup_close_ __attribute__((cleanup(closep)))
#define _cleanup_free_ __attribute__((cleanup(freep)))

/* ---- transport ---------------------------------------------------------- */

/* Milliseconds left before deadline_us, rounded up so 1 µs left still polls. */
static int remaining_ms(int64_t deadline_us)
{
        int64_t left = deadline_us - now_mono_us();

        return left <= 0 ? 0 : (int)((left + USEC_PER_MSEC - 1) / USEC_PER_MSEC);
}

/* Waits until fd has events (or an error the next call will report). */
static int wait_fd(int fd, short events, int64_t deadline_us)
{
        for (;;) {
                struct pollfd p = { .fd = fd, .events = events };
                int ms = remaining_ms(deadline_us), n;

                if (ms == 0)
                        return -ETIMEDOUT;
                n = poll(&p, 1, ms);
                if (n > 0)
                        return 0;
                if (n < 0 && errno != EINTR)
                        return -errno;
        }
}

/* EPERM is what a unix socket answers for some LSM denials: same meaning. */
static int connect_errno(int e)
{
        return e == EPERM ? -EACCES : -e;
}

static int hap_connect(const char *path, int64_t deadline_us)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;
        int fd_ok, err = 0;
        socklen_t errlen = sizeof(err);

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, strlen(path) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        for (;;) {
                if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) == 0)
                        break;
                if (errno == EAGAIN) {
                        int ms = remaining_ms(deadline_us);
                        if (ms == 0)
                                return -ETIMEDOUT;
                        poll(NULL, 0, ms < HAP_CONNECT_RETRY_MS ? ms : HAP_CONNECT_RETRY_MS);
                        continue;
                }
                if (errno != EINPROGRESS && errno != EINTR)
                        return connect_errno(errno);
                /* In progress: the outcome is the socket's pending error. */
                if ((err = wait_fd(fd, POLLOUT, deadline_us)) < 0)
                        return err;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0)
                        return -errno;
                if (err)
                        return connect_errno(err);
                break;
        }
        fd_ok = fd;
        fd = -1;
        return fd_ok;
}

static int send_all(int fd, const char *buf, size_t len, int64_t deadline_us)
{
        size_t off = 0;
        int r;

        while (off < len) {
                ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
                if (n >= 0) {
                        off += (size_t)n;
                        continue;
                }
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN)
                        return -errno;
                if ((r = wait_fd(fd, POLLOUT, deadline_us)) < 0)
                        return r;
        }
        return 0;
}

/* Reads to EOF into a malloc'ed NUL-terminated buffer of at most
 * HAP_ANSWER_MAX bytes.  The buffer may grow to HAP_ANSWER_MAX + 2 so that
 * one byte past the cap is seen and refused. */
static int recv_all(int fd, int64_t deadline_us, char **out)
{
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap = 0;
        int r;

        for (;;) {
                ssize_t n;

                if (len + 1 >= cap) {
                        size_t ncap = cap ? cap * 2 : HAP_BUF_INITIAL;
                        char *nbuf;
                        if (ncap > HAP_ANSWER_MAX + 2)
                                ncap = HAP_ANSWER_MAX + 2;
                        if (!(nbuf = realloc(buf, ncap)))
                                return -ENOMEM;
                        buf = nbuf;
                        cap = ncap;
                }
                n = recv(fd, buf + len, cap - 1 - len, 0);
                if (n == 0)
                        break;
                if (n > 0) {
                        len += (size_t)n;
                        if (len > HAP_ANSWER_MAX)
                                return -E2BIG;
                        continue;
                }
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN)
                        return -errno;
                if ((r = wait_fd(fd, POLLIN, deadline_us)) < 0)
                        return r;
        }
        buf[len] = '\0';
        *out = buf;
        buf = NULL;
        return 0;
}

static int cmd_valid(const char *cmd)
{
        size_t len;

        if (!cmd || !*cmd)
                return -EINVAL;
        len = strnlen(cmd, HAP_COMMAND_MAX + 1);
        if (len > HAP_COMMAND_MAX || strpbrk(cmd, "\r\n"))
                return -EINVAL;
        return 0;
}

/* The raw answer to cmd, whatever haproxy says. */
static int hap_exchange(const char *socket_path, const char *cmd, char **answer)
{
        char line[HAP_COMMAND_MAX + 2];
        int64_t deadline_us = now_mono_us() + HAP_TIMEOUT_MS * USEC_PER_MSEC;
        _cleanup_close_ int fd = -1;
        int r;

        if (!socket_path)
                return -EINVAL;
        if ((r = cmd_valid(cmd)) < 0)
                return r;
        snprintf(line, sizeof(line), "%s\n", cmd);
        if ((fd = hap_connect(socket_path, deadline_us)) < 0)
                return fd;
        /* No shutdown(SHUT_WR) after the line: haproxy answers a
         * non-interactive client and then closes; EOF marks the end. */
        if ((r = send_all(fd, line, strlen(line), deadline_us)) < 0)
                return r;
        return recv_all(fd, deadline_us, answer);
}

/* ---- answers ------------------------------------------------------------- */

struct hap_error {
        const char *prefix;
        int err;
};

/* The failure lines of haproxy 2.6 we give a meaning; anything else is
 * either an answer or, for a command with a known success text, -EPROTO. */
static const struct hap_error hap_errors[] = {
        { "No such backend.", -ENOENT },   /* set server, from cli_find_server */
        { "No such server.", -ENOENT },
        { "No such proxy.", -ENOENT },     /* show stat <proxy> ... */
        { "Can't find backend.", -ENOENT }, /* show servers state <backend> */
        { "Permission denied", -EACCES },  /* command above the socket's level */
        { "Unknown command", -EOPNOTSUPP },
};

static int answer_errno(const char *answer)
{
        for (size_t i = 0; i < sizeof(hap_errors) / sizeof(hap_errors[0]); i++)
                if (!strncmp(answer, hap_errors[i].prefix, strlen(hap_errors[i].prefix)))
                        return hap_errors[i].err;
        return 0;
}

int hap_command(const char *socket_path, const char *cmd, char **answer)
{
        _cleanup_free_ char *ans = NULL;
        int r;

        if (answer)
                *answer = NULL;
        if ((r = hap_exchange(socket_path, cmd, &ans)) < 0)
                return r;
        if ((r = answer_errno(ans)) < 0)
                return r;
        if (answer) {
                *answer = ans;
                ans = NULL;
        }
        return 0;
}

/* A name we may paste into a command (haproxy_name.h), and not too long. */
static bool name_valid(const char *s)
{
        return haproxy_name_ok(s) && strnlen(s, HAP_NAME_MAX) < HAP_NAME_MAX;
}

/* Copies the first line of answer into err. */
static void first_line(const char *answer, char *err, size_t errlen)
{
        if (err && errlen)
                snprintf(err, errlen, "%.*s", (int)strcspn(answer, "\n"), answer);
}

int hap_set_state(const char *socket_path, const char *backend, const char *server, enum hap_admin state,
                  char *err, size_t errlen)
{
        static const char *const words[] = { [HAP_READY] = "ready", [HAP_DRAIN] = "drain", [HAP_MAINT] = "maint" };
        _cleanup_free_ char *ans = NULL;
        char cmd[HAP_COMMAND_MAX];
        int r;

        if (err && errlen)
                err[0] = '\0';
        if ((unsigned)state > HAP_MAINT || !name_valid(backend) || !name_valid(server))
                return -EINVAL;
        snprintf(cmd, sizeof(cmd), "set server %s/%s state %s", backend, server, words[state]);
        if ((r = hap_exchange(socket_path, cmd, &ans)) < 0)
                return r;
        /* Success is an empty line; no answer at all is not success. */
        if (ans[0] == '\n' && ans[strspn(ans, "\n")] == '\0')
                return 0;
        first_line(ans, err, errlen);
        r = answer_errno(ans);
        return r < 0 ? r : -EPROTO;
}

/* ---- `show stat` and `show servers state` tables -------------------------- */

/* Next field of the line [*cur, eol) up to sep, unquoted ("a""b" is a"b)
 * into buf (cut to buflen - 1).  Returns the field's full length. */
static size_t next_field(const char **cur, const char *eol, char sep, char *buf, size_t buflen)
{
        const char *p = *cur;
        size_t n = 0;
        bool quoted = p < eol && *p == '"';

        if (quoted)
                p++;
        for (; p < eol; p++) {
                if (quoted && *p == '"') {
                        if (p + 1 < eol && p[1] == '"') {
                                p++;
                        } else {
                                quoted = false;
                                continue;
                        }
                } else if (!quoted && *p == sep) {
                        p++;
                        break;
                }
                if (n + 1 < buflen)
                        buf[n] = *p;
                n++;
        }
        buf[n + 1 < buflen ? n : buflen - 1] = '\0';
        *cur = p;
        return n;
}

enum { COL_PX, COL_SV, COL_SCUR, COL_STOT, COL_STATUS, COL_ADMIN, COL_N };

/* Column indexes of the names wanted (NULL: not wanted) in a header line,
 * -EPROTO if one is missing. */
static int header_columns(const char *line, const char *eol, char sep, const char *const want[COL_N],
                          int col[COL_N])
{
        char f[HAP_FIELD_MAX];

        for (int k = 0; k < COL_N; k++)
                col[k] = -1;
        for (int i = 0; line < eol; i++) {
                next_field(&line, eol, sep, f, sizeof(f));
                for (int k = 0; k < COL_N; k++)
                        if (want[k] && !strcmp(f, want[k]))
                                col[k] = i;
        }
        for (int k = 0; k < COL_N; k++)
                if (want[k] && col[k] < 0)
                        return -EPROTO;
        return 0;
}

/* The wanted fields of one row; -EPROTO if one is missing or a name is cut. */
static int row_fields(const char *line, const char *eol, char sep, const int col[COL_N],
                      char out[COL_N][HAP_FIELD_MAX])
{
        char scratch[HAP_FIELD_MAX];
        int found = 0, wanted = 0;

        for (int k = 0; k < COL_N; k++) {
                out[k][0] = '\0';
                wanted += col[k] >= 0;
        }
        for (int i = 0; line < eol && found < wanted; i++) {
                int k = 0;
                while (k < COL_N && col[k] != i)
                        k++;
                if (k == COL_N) {
                        next_field(&line, eol, sep, scratch, sizeof(scratch));
                        continue;
                }
                if (next_field(&line, eol, sep, out[k], HAP_FIELD_MAX) >= HAP_FIELD_MAX && k != COL_STATUS)
                        return -EPROTO;
                found++;
        }
        return found == wanted ? 0 : -EPROTO;
}

static int parse_count(const char *s, int64_t *out)
{
        char *end;

        if (!*s) { /* haproxy leaves a counter empty when it does not apply */
                *out = 0;
                return 0;
        }
        errno = 0;
        *out = strtoll(s, &end, 10);
        return errno || *end ? -EPROTO : 0;
}

/* The brief's fallback when `show servers state` has no row for a server. */
static int admin_from_status(const char *status)
{
        if (!strncmp(status, "MAINT", 5))
                return HAP_MAINT;
        if (!strncmp(status, "DRAIN", 5))
                return HAP_DRAIN;
        return HAP_READY;
}

static int check_ok_from_status(const char *status)
{
        return !strncmp(status, "UP", 2) || !strncmp(status, "DRAIN", 5) || !strncmp(status, "no check", 8);
}

/* Cursor over the lines of an answer; empty lines are skipped. */
static bool next_line(const char **cur, const char **line, const char **eol)
{
        while (**cur == '\n')
                (*cur)++;
        if (!**cur)
                return false;
        *line = *cur;
        *eol = *line + strcspn(*line, "\n");
        *cur = **eol ? *eol + 1 : *eol;
        return true;
}

struct collect {
        const char *backend, *only; /* only: one server's name, or NULL for all */
        struct hap_server *out;
        size_t max, n;
};

static int stat_row(struct collect *c, char f[COL_N][HAP_FIELD_MAX])
{
        struct hap_server *s;
        int r;

        if (!strcmp(f[COL_SV], "FRONTEND") || !strcmp(f[COL_SV], "BACKEND") || strcmp(f[COL_PX], c->backend) ||
            (c->only && strcmp(f[COL_SV], c->only)))
                return 0;
        if (c->n == c->max)
                return 0; /* "up to max": the rest is not reported */
        s = &c->out[c->n];
        memset(s, 0, sizeof(*s));
        if (strlen(f[COL_SV]) >= sizeof(s->name))
                return -EPROTO;
        memcpy(s->name, f[COL_SV], strlen(f[COL_SV]) + 1);
        snprintf(s->status, sizeof(s->status), "%s", f[COL_STATUS]);
        s->admin = admin_from_status(f[COL_STATUS]);
        s->check_ok = check_ok_from_status(f[COL_STATUS]);
        if ((r = parse_count(f[COL_SCUR], &s->scur)) < 0 || (r = parse_count(f[COL_STOT], &s->stot)) < 0)
                return r;
        c->n++;
        return 0;
}

/* `show stat` CSV: a "# pxname,svname,..." header, then one row per line. */
static int parse_stat(const char *answer, struct collect *c)
{
        static const char *const want[COL_N] = { [COL_PX] = "pxname", [COL_SV] = "svname", [COL_SCUR] = "scur",
                                                 [COL_STOT] = "stot", [COL_STATUS] = "status" };
        char f[COL_N][HAP_FIELD_MAX];
        const char *cur = answer, *line, *eol;
        int col[COL_N], r;

        if (!next_line(&cur, &line, &eol) || strncmp(line, "# ", 2))
                return -EPROTO;
        if ((r = header_columns(line + 2, eol, ',', want, col)) < 0)
                return r;
        while (next_line(&cur, &line, &eol))
                if ((r = row_fields(line, eol, ',', col, f)) < 0 || (r = stat_row(c, f)) < 0)
                        return r;
        return 0;
}

/* `show servers state`: a version line ("1"), a "# be_id be_name ..."
 * header, then space-separated rows.  Sets the exact admin state of the
 * servers already collected. */
static int parse_servers_state(const char *answer, struct collect *c)
{
        static const char *const want[COL_N] = { [COL_PX] = "be_name", [COL_SV] = "srv_name",
                                                 [COL_ADMIN] = "srv_admin_state" };
        char f[COL_N][HAP_FIELD_MAX];
        const char *cur = answer, *line, *eol;
        int col[COL_N], r;
        bool header = false;

        while (!header && next_line(&cur, &line, &eol))
                header = !strncmp(line, "# ", 2);
        if (!header || (r = header_columns(line + 2, eol, ' ', want, col)) < 0)
                return -EPROTO;
        while (next_line(&cur, &line, &eol)) {
                char *end;
                long bits;

                if ((r = row_fields(line, eol, ' ', col, f)) < 0)
                        return r;
                if (strcmp(f[COL_PX], c->backend))
                        continue;
                bits = strtol(f[COL_ADMIN], &end, 10);
                if (!f[COL_ADMIN][0] || *end || bits < 0)
                        return -EPROTO;
                for (size_t i = 0; i < c->n; i++)
                        if (!strcmp(c->out[i].name, f[COL_SV]))
                                c->out[i].admin = (bits & SRV_ADMF_MAINT_MASK)   ? HAP_MAINT
                                                  : (bits & SRV_ADMF_DRAIN_MASK) ? HAP_DRAIN
                                                                                 : HAP_READY;
        }
        return 0;
}

/* Two commands, each under its own HAP_TIMEOUT_MS: `show stat` for the
 * counters and status, `show servers state` for the admin state. */
static int servers_collect(const char *socket_path, struct collect *c)
{
        _cleanup_free_ char *stat = NULL, *state = NULL;
        char cmd[HAP_COMMAND_MAX];
        int r;

        if (!name_valid(c->backend) || (c->only && !name_valid(c->only)))
                return -EINVAL;
        /* type 4 = servers only, -1 = all of them */
        snprintf(cmd, sizeof(cmd), "show stat %s 4 -1", c->backend);
        if ((r = hap_command(socket_path, cmd, &stat)) < 0 || (r = parse_stat(stat, c)) < 0)
                return r;
        if (c->n == 0)
                return -ENOENT;
        snprintf(cmd, sizeof(cmd), "show servers state %s", c->backend);
        if ((r = hap_command(socket_path, cmd, &state)) < 0)
                return r;
        return parse_servers_state(state, c);
}

int hap_show_servers(const char *socket_path, const char *backend, struct hap_server *out, size_t max, size_t *n)
{
        struct collect c = { .backend = backend, .out = out, .max = max };
        int r;

        *n = 0;
        if (!out || max == 0)
                return -EINVAL;
        if ((r = servers_collect(socket_path, &c)) < 0)
                return r;
        *n = c.n;
        return 0;
}

int hap_server_get(const char *socket_path, const char *backend, const char *server, struct hap_server *out)
{
        struct collect c = { .backend = backend, .only = server, .out = out, .max = 1 };

        if (!server)
                return -EINVAL;
        return servers_collect(socket_path, &c);
}
