/* control: control socket server on sd-event, and its client (control.h). */
#include "supervisor/control.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CONTROL_OUT_MAX (1024 * 1024) /* answers are small; a client that does not read is dropped */

struct control {
        int fd;
        char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
        sd_event *e;
        sd_event_source *src;
        control_cmd_fn fn;
        void *userdata;
        int clients;
};

struct control_conn {
        struct control *c;
        int fd;
        sd_event_source *src, *timer;
        char in[CONTROL_LINE_MAX + 1];
        size_t in_len;
        bool dispatched, closing, dead;
        char *out;
        size_t out_len;
        uid_t uid; /* SO_PEERCRED at accept; (uid_t)-1 when unknown */
        pid_t pid;
};

static void conn_free(struct control_conn *k)
{
        k->src = sd_event_source_disable_unref(k->src);
        k->timer = sd_event_source_disable_unref(k->timer);
        if (k->fd >= 0)
                close(k->fd);
        k->c->clients--;
        free(k->out);
        free(k);
}

/* Write what is queued; free the connection once closed and flushed. */
static void conn_flush(struct control_conn *k)
{
        while (k->out_len && !k->dead) {
                ssize_t n = send(k->fd, k->out, k->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        break;
                if (n <= 0) {
                        k->dead = true; /* the client went away: the command still runs to its end */
                        break;
                }
                memmove(k->out, k->out + n, k->out_len - (size_t)n);
                k->out_len -= (size_t)n;
        }
        if (k->dead)
                k->out_len = 0;
        if (k->closing && k->out_len == 0) {
                conn_free(k);
                return;
        }
        if (k->src)
                sd_event_source_set_io_events(k->src, k->dispatched ? (k->out_len ? EPOLLOUT : 0) : EPOLLIN);
}

int control_reply(struct control_conn *k, const char *fmt, ...)
{
        char line[4096];
        va_list ap;
        int n;
        char *o;

        va_start(ap, fmt);
        n = vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        if (n < 0)
                return -EINVAL;
        if ((size_t)n >= sizeof(line))
                n = sizeof(line) - 1;
        if (k->dead)
                return 0;
        if (k->out_len + (size_t)n > CONTROL_OUT_MAX) {
                k->dead = true;
                return -ENOBUFS;
        }
        o = realloc(k->out, k->out_len + (size_t)n);
        if (!o)
                return -ENOMEM;
        k->out = o;
        memcpy(k->out + k->out_len, line, (size_t)n);
        k->out_len += (size_t)n;
        conn_flush(k);
        return 0;
}

uid_t control_peer_uid(const struct control_conn *k)
{
        return k->uid;
}

pid_t control_peer_pid(const struct control_conn *k)
{
        return k->pid;
}

void control_close(struct control_conn *k)
{
        k->closing = true;
        conn_flush(k);
}

static int on_conn_timeout(sd_event_source *src, uint64_t usec, void *userdata)
{
        struct control_conn *k = userdata;

        if (!k->dispatched) {
                k->dispatched = true;
                control_reply(k, "error: no command within %llu s\n", CONTROL_TIMEOUT_US / 1000000ULL);
                control_close(k);
        }
        return 0;
}

static int on_conn_io(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct control_conn *k = userdata;
        char *nl;
        ssize_t n;

        if (k->dispatched) {
                /* epoll reports a hang-up whatever the events asked for: the
                 * client is gone (Ctrl-C of a deploy).  Stop listening, or
                 * this runs in a loop at a full core until the command ends;
                 * the command runs to its end, its replies go nowhere. */
                if (revents & (EPOLLHUP | EPOLLERR)) {
                        k->dead = true;
                        k->out_len = 0;
                        sd_event_source_set_enabled(k->src, SD_EVENT_OFF);
                        if (k->closing)
                                conn_free(k);
                        return 0;
                }
                conn_flush(k);
                return 0;
        }
        n = recv(fd, k->in + k->in_len, sizeof(k->in) - 1 - k->in_len, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n > 0)
                k->in_len += (size_t)n;
        k->in[k->in_len] = '\0';
        nl = memchr(k->in, '\n', k->in_len);
        if (!nl && n > 0 && k->in_len < sizeof(k->in) - 1)
                return 0; /* more to come */
        k->dispatched = true;
        k->timer = sd_event_source_disable_unref(k->timer);
        if (!nl || memchr(k->in, '\0', (size_t)(nl - k->in))) {
                control_reply(k, "error: a command is one line of at most %d bytes\n", CONTROL_LINE_MAX);
                control_close(k);
                return 0;
        }
        *nl = '\0';
        if (nl > k->in && nl[-1] == '\r')
                nl[-1] = '\0';
        sd_event_source_set_io_events(k->src, 0);
        k->c->fn(k, k->in, k->c->userdata);
        return 0;
}

static int on_accept(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct control *c = userdata;
        struct control_conn *k;
        int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (cfd < 0)
                return 0;
        if (c->clients >= CONTROL_CLIENTS_MAX || !(k = calloc(1, sizeof(*k)))) {
                static const char busy[] = "error: too many control clients\n";

                (void)!send(cfd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
                close(cfd);
                return 0;
        }
        k->c = c;
        k->fd = cfd;
        k->uid = (uid_t)-1;
        {
                struct ucred cred;
                socklen_t clen = sizeof(cred);

                if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0 && clen == sizeof(cred)) {
                        k->uid = cred.uid;
                        k->pid = cred.pid;
                }
        }
        c->clients++;
        if (sd_event_add_io(c->e, &k->src, cfd, EPOLLIN, on_conn_io, k) < 0 ||
            sd_event_add_time_relative(c->e, &k->timer, CLOCK_MONOTONIC, CONTROL_TIMEOUT_US, 0, on_conn_timeout,
                                       k) < 0)
                conn_free(k);
        return 0;
}

int control_listen(sd_event *e, const char *path, control_cmd_fn fn, void *userdata, struct control **out)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct control *c;
        mode_t old;
        int r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        snprintf(c->path, sizeof(c->path), "%s", path);
        memcpy(sa.sun_path, c->path, sizeof(c->path));
        c->e = e;
        c->fn = fn;
        c->userdata = userdata;
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (c->fd < 0) {
                r = -errno;
                free(c);
                return r;
        }
        unlink(path);
        old = umask(0117); /* 0660 from the start: never a moment world-accessible */
        r = bind(c->fd, (struct sockaddr *)&sa, sizeof(sa));
        umask(old);
        if (r < 0 || listen(c->fd, 16) < 0) {
                r = -errno;
                close(c->fd);
                free(c);
                return r;
        }
        if ((r = sd_event_add_io(e, &c->src, c->fd, EPOLLIN, on_accept, c)) < 0) {
                control_free(c);
                return r;
        }
        *out = c;
        return 0;
}

void control_free(struct control *c)
{
        if (!c)
                return;
        c->src = sd_event_source_disable_unref(c->src);
        close(c->fd);
        unlink(c->path);
        free(c);
}

int control_call(const char *path, const char *line, int out_fd, char *last_out, size_t last_len)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char buf[4096], last[512] = "", cur[512];
        size_t cur_len = 0;
        int fd, r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, strlen(path));
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
            send(fd, line, strlen(line), MSG_NOSIGNAL) < 0 || send(fd, "\n", 1, MSG_NOSIGNAL) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        shutdown(fd, SHUT_WR);
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                if (out_fd >= 0)
                        (void)!write(out_fd, buf, (size_t)n);
                for (ssize_t i = 0; i < n; i++) { /* the last complete line is the verdict */
                        if (buf[i] == '\n') {
                                cur[cur_len] = '\0';
                                memcpy(last, cur, cur_len + 1);
                                cur_len = 0;
                        } else if (cur_len < sizeof(cur) - 1) {
                                cur[cur_len++] = buf[i];
                        }
                }
        }
        close(fd);
        if (last_out && last_len)
                snprintf(last_out, last_len, "%s", last);
        return strncmp(last, "failed", 6) == 0 || strncmp(last, "error", 5) == 0 ? 1 : 0;
}
