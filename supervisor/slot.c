/* slot: spawn, adopt and watch one worker (see slot.h).  Everything here
 * runs on the supervisor's sd-event loop; nothing blocks. */
#include "supervisor/slot.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/time_util.h"
#include "supervisor/child_env.h"

const char *slot_state_name(enum slot_state st)
{
        static const char *const names[] = { "stopped", "starting", "ready", "stopping" };

        return st <= SLOT_STOPPING ? names[st] : "?";
}

static void emit(struct slot *s, enum slot_event ev)
{
        if (s->fn)
                s->fn(s, ev, s->userdata);
}

/* One sd_notify datagram: newline-separated KEY=VALUE.  Only the slot's
 * own worker is listened to (SCM_CREDENTIALS); anything else is dropped. */
static int on_notify(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct slot *s = userdata;
        char buf[SLOT_NOTIFY_MAX + 1];
        union {
                struct cmsghdr h;
                uint8_t b[CMSG_SPACE(sizeof(struct ucred))];
        } ctl;
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof(ctl) };
        struct ucred *cred = NULL;
        ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        bool ready = false, status = false, stopping = false;

        if (n < 0)
                return 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
                    c->cmsg_len == CMSG_LEN(sizeof(struct ucred)))
                        cred = (struct ucred *)CMSG_DATA(c);
        if ((m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || !cred || s->pid <= 0 || cred->pid != s->pid)
                return 0;
        buf[n] = '\0';
        for (char *line = buf, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                if (strcmp(line, "READY=1") == 0) {
                        ready = true;
                        s->watchdog_mono_us = now_mono_us();
                } else if (strncmp(line, "STATUS=", 7) == 0) {
                        snprintf(s->status, sizeof(s->status), "%s", line + 7);
                        status = true;
                } else if (strcmp(line, "WATCHDOG=1") == 0) {
                        /* only this counts: a worker with a stuck recorder keeps
                         * sending STATUS but stops its watchdog pings */
                        s->watchdog_mono_us = now_mono_us();
                } else if (strcmp(line, "STOPPING=1") == 0) {
                        stopping = true;
                }
        }
        if (status)
                emit(s, SLOT_EV_STATUS);
        if (ready && s->state == SLOT_STARTING) {
                s->state = SLOT_READY;
                s->ready_mono_us = now_mono_us();
                emit(s, SLOT_EV_READY);
        }
        if (stopping && s->state != SLOT_STOPPING) {
                s->state = SLOT_STOPPING;
                emit(s, SLOT_EV_STOPPING);
        }
        return 0;
}

/* The pidfd turns readable when the process exits: reap it if it is ours. */
static int on_exit_fd(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct slot *s = userdata;
        siginfo_t si = { 0 };

        s->exit_status = -1;
        /* an adopted worker is still our child after a re-exec: reap it; if it
         * is not (a supervisor restart), waitid fails and the status is unknown */
        if (waitid((idtype_t)3 /* P_PIDFD */, (id_t)fd, &si, WEXITED | WNOHANG) == 0 && si.si_pid)
                s->exit_status = si.si_code == CLD_EXITED ? W_EXITCODE(si.si_status, 0) : si.si_status & 0x7f;
        slot_release(s);
        s->state = SLOT_STOPPED;
        emit(s, SLOT_EV_EXITED);
        return 0;
}

int slot_init(struct slot *s, int index, const char *name, uint16_t port, sd_event *e, const char *dir,
              slot_event_fn fn, void *userdata)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int one = 1, r;

        memset(s, 0, sizeof(*s));
        s->index = index;
        s->port = port;
        s->notify_fd = s->pidfd = -1;
        s->exit_status = -1;
        s->fn = fn;
        s->userdata = userdata;
        snprintf(s->name, sizeof(s->name), "%s", name);
        if (snprintf(s->notify_path, sizeof(s->notify_path), "%s/notify-%s.sock", dir, name) >=
            (int)sizeof(s->notify_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, s->notify_path, sizeof(s->notify_path));
        s->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (s->notify_fd < 0)
                return -errno;
        unlink(s->notify_path); /* a stale socket of a supervisor before us */
        if (bind(s->notify_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
            setsockopt(s->notify_fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0) {
                r = -errno;
                close(s->notify_fd);
                s->notify_fd = -1;
                return r;
        }
        chmod(s->notify_path, 0600); /* only the supervisor's user may send (workers run as it) */
        return sd_event_add_io(e, &s->notify_src, s->notify_fd, EPOLLIN, on_notify, s);
}

static int watch_exit(struct slot *s, sd_event *e)
{
        int r;

        s->pidfd = (int)syscall(SYS_pidfd_open, s->pid, 0);
        if (s->pidfd < 0)
                return -errno;
        r = sd_event_add_io(e, &s->exit_src, s->pidfd, EPOLLIN, on_exit_fd, s);
        if (r < 0) {
                close(s->pidfd);
                s->pidfd = -1;
        }
        return r;
}

/* exec failed: say so on stderr with async-signal-safe calls only (no
 * stdio, no strerror; glibc documents strerrordesc_np as AS-safe: it reads
 * a constant table), then exit. */
static _Noreturn void child_exec_failed(const char *binary, int err)
{
        static const char prefix[] = SD_ERR "supervisor: exec ";
        const char *desc = strerrordesc_np(err);
        const char *parts[] = { prefix, binary, ": ", desc ? desc : "unknown error", "\n" };
        char msg[PATH_MAX + 128];
        size_t len = 0;

        for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
                size_t l = strlen(parts[i]);

                if (l > sizeof(msg) - len)
                        l = sizeof(msg) - len;
                memcpy(msg + len, parts[i], l);
                len += l;
        }
        (void)!write(STDERR_FILENO, msg, len);
        _exit(127);
}

/* Between fork and exec: async-signal-safe calls only, as the supervisor has
 * threads and the child is a copy of just one of them (a lock another held
 * at the fork stays held forever).  env and argv were built before fork. */
static _Noreturn void child_exec(struct child_env *env, char *const argv[])
{
        sigset_t none;

        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL); /* the loop blocks signals: the worker must not */
        setsid();
        child_env_set_pid(env, getpid());
        syscall(SYS_close_range, 3U, ~0U, 0U);
        execve(argv[0], argv, env->envp);
        child_exec_failed(argv[0], errno);
}

int slot_spawn(struct slot *s, sd_event *e, const char *binary, const char *config, uint64_t watchdog_us)
{
        char port[8];
        char *const argv[] = { (char *)binary, "--config", (char *)config, "--instance-id", s->name,
                               "--port", port, NULL };
        struct child_env env;
        pid_t pid;
        int r;

        if (s->pid > 0)
                return -EBUSY;
        snprintf(port, sizeof(port), "%u", (unsigned)s->port);
        if ((r = child_env_build(&env, environ, s->notify_path, watchdog_us)) < 0)
                return r;
        pid = fork();
        if (pid == 0)
                child_exec(&env, argv);
        r = pid < 0 ? -errno : 0;
        child_env_free(&env);
        if (r < 0)
                return r;
        s->pid = pid;
        s->adopted = false;
        s->stop_requested = false;
        s->state = SLOT_STARTING;
        s->status[0] = '\0';
        s->started_mono_us = s->watchdog_mono_us = now_mono_us();
        s->ready_mono_us = 0;
        s->started_real_us = now_real_us();
        snprintf(s->binary, sizeof(s->binary), "%s", binary);
        if ((r = watch_exit(s, e)) < 0) { /* cannot watch it: do not leave it unwatched */
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                s->pid = 0;
                s->state = SLOT_STOPPED;
        }
        return r;
}

int slot_adopt(struct slot *s, sd_event *e, pid_t pid, const char *binary)
{
        int r;

        s->pid = pid;
        s->adopted = true;
        s->stop_requested = false;
        s->state = SLOT_READY; /* it was, when the previous supervisor saved it; health checks tell */
        s->started_mono_us = s->ready_mono_us = s->watchdog_mono_us = now_mono_us();
        snprintf(s->binary, sizeof(s->binary), "%s", binary);
        if ((r = watch_exit(s, e)) < 0) {
                s->pid = 0;
                s->state = SLOT_STOPPED;
        }
        return r;
}

int slot_kill(struct slot *s, int sig)
{
        if (s->pid <= 0)
                return -ESRCH;
        if (sig == SIGTERM) {
                s->stop_requested = true;
                if (s->state != SLOT_STOPPED)
                        s->state = SLOT_STOPPING;
        }
        /* the pidfd makes the signal go to this process even if the pid was reused */
        if (s->pidfd >= 0 ? syscall(SYS_pidfd_send_signal, s->pidfd, sig, NULL, 0) < 0 : kill(s->pid, sig) < 0)
                return -errno;
        return 0;
}

void slot_release(struct slot *s)
{
        s->exit_src = sd_event_source_disable_unref(s->exit_src);
        if (s->pidfd >= 0)
                close(s->pidfd);
        s->pidfd = -1;
        s->pid = 0;
}

void slot_close(struct slot *s)
{
        slot_release(s);
        s->notify_src = sd_event_source_disable_unref(s->notify_src);
        if (s->notify_fd >= 0) {
                close(s->notify_fd);
                unlink(s->notify_path);
        }
        s->notify_fd = -1;
}

bool slot_pid_is_worker(pid_t pid, const char *instance_id)
{
        char path[64], buf[4096];
        const char *arg, *prev = "";
        ssize_t n;
        bool worker = false, id = false;
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return false;
        buf[n] = '\0';
        for (arg = buf; arg < buf + n; arg += strlen(arg) + 1) {
                const char *base = strrchr(arg, '/');

                if (arg == buf)
                        worker = strcmp(base ? base + 1 : arg, "mwr-worker") == 0;
                if (strcmp(prev, "--instance-id") == 0 && strcmp(arg, instance_id) == 0)
                        id = true;
                prev = arg;
        }
        return worker && id;
}
