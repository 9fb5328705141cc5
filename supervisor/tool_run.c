#include "supervisor/tool_run.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

void tool_run_init(struct tool_run *t)
{
        *t = (struct tool_run){ .pidfd = -1, .out_fd = -1, .err_fd = -1 };
}

static void reset(struct tool_run *t)
{
        t->exit_src = sd_event_source_disable_unref(t->exit_src);
        t->out_src = sd_event_source_disable_unref(t->out_src);
        t->err_src = sd_event_source_disable_unref(t->err_src);
        if (t->pidfd >= 0)
                close(t->pidfd);
        if (t->out_fd >= 0)
                close(t->out_fd);
        if (t->err_fd >= 0)
                close(t->err_fd);
        t->pidfd = t->out_fd = t->err_fd = -1;
        t->pid = 0;
}

/* Reads what fd has into buf up to max, and drops the rest; false at EOF. */
static bool drain(int fd, char *buf, size_t *len, size_t max)
{
        char sink[4096];

        for (;;) {
                bool full = *len >= max;
                ssize_t n = full ? read(fd, sink, sizeof(sink)) : read(fd, buf + *len, max - *len);

                if (n == 0) {
                        buf[*len] = '\0';
                        return false;
                }
                if (n < 0) {
                        buf[*len] = '\0';
                        return errno == EAGAIN || errno == EINTR;
                }
                if (!full)
                        *len += (size_t)n;
        }
}

static int on_out(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct tool_run *t = userdata;

        if (!drain(fd, t->out, &t->out_len, TOOL_OUT_MAX))
                t->out_src = sd_event_source_disable_unref(t->out_src);
        return 0;
}

static int on_err(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct tool_run *t = userdata;

        if (!drain(fd, t->err, &t->err_len, TOOL_ERR_MAX))
                t->err_src = sd_event_source_disable_unref(t->err_src);
        return 0;
}

static int on_pidfd(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct tool_run *t = userdata;
        siginfo_t si = { 0 };
        int status = -1;

        if (waitid((idtype_t)3 /* P_PIDFD */, (id_t)fd, &si, WEXITED | WNOHANG) == 0 && si.si_pid)
                status = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
        drain(t->out_fd, t->out, &t->out_len, TOOL_OUT_MAX);
        drain(t->err_fd, t->err, &t->err_len, TOOL_ERR_MAX);
        reset(t);
        t->done(t->ud, status);
        return 0;
}

int tool_run_start(struct tool_run *t, sd_event *e, char *const argv[], void (*done)(void *ud, int status),
                   void *ud)
{
        int po[2], pe[2], r;
        pid_t pid;

        if (t->pid > 0)
                return -EBUSY;
        t->out_len = t->err_len = 0;
        t->out[0] = t->err[0] = '\0';
        t->done = done;
        t->ud = ud;
        if (pipe2(po, O_CLOEXEC | O_NONBLOCK) < 0)
                return -errno;
        if (pipe2(pe, O_CLOEXEC | O_NONBLOCK) < 0) {
                r = -errno;
                close(po[0]);
                close(po[1]);
                return r;
        }
        pid = fork();
        if (pid < 0) {
                r = -errno;
                close(po[0]);
                close(po[1]);
                close(pe[0]);
                close(pe[1]);
                return r;
        }
        if (pid == 0) {
                sigset_t none;
                int devnull = open("/dev/null", O_RDONLY);

                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                dup2(devnull, 0);
                dup2(po[1], 1);
                dup2(pe[1], 2);
                fcntl(1, F_SETFL, 0);
                fcntl(2, F_SETFL, 0);
                execv(argv[0], argv);
                fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
                _exit(127);
        }
        close(po[1]);
        close(pe[1]);
        t->pid = pid;
        t->out_fd = po[0];
        t->err_fd = pe[0];
        t->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (t->pidfd < 0 || sd_event_add_io(e, &t->exit_src, t->pidfd, EPOLLIN, on_pidfd, t) < 0 ||
            sd_event_add_io(e, &t->out_src, t->out_fd, EPOLLIN, on_out, t) < 0 ||
            sd_event_add_io(e, &t->err_src, t->err_fd, EPOLLIN, on_err, t) < 0) {
                tool_run_abort(t);
                return -EIO;
        }
        return 0;
}

void tool_run_kill(struct tool_run *t, const char *why)
{
        if (t->pid <= 0)
                return;
        kill(t->pid, SIGKILL);
        t->err_len = (size_t)snprintf(t->err, sizeof(t->err), "killed: %s", why);
        if (t->err_len > TOOL_ERR_MAX)
                t->err_len = TOOL_ERR_MAX;
}

const char *tool_run_says(const struct tool_run *t)
{
        return t->err_len ? t->err : t->out;
}

void tool_run_abort(struct tool_run *t)
{
        if (t->pid > 0) {
                kill(t->pid, SIGKILL);
                waitpid(t->pid, NULL, 0);
        }
        reset(t);
}
