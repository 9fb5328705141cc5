/* tool_run: one short-lived helper process of the supervisor (`binary
 * --version`, `mwr dedup`), watched on the event loop: its pidfd says when
 * it ended, its stdout (up to TOOL_OUT_MAX bytes) and stderr (up to
 * TOOL_ERR_MAX) are collected apart, so a warning never spoils the JSON a
 * tool prints, and done() is called once with its exit status.  Output past
 * the caps is read and dropped: a chatty child never blocks on a full pipe.
 * Nothing waits; a deadline is the caller's timer. */
#ifndef MWR_SUPERVISOR_TOOL_RUN_H
#define MWR_SUPERVISOR_TOOL_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#define TOOL_OUT_MAX 65536
#define TOOL_ERR_MAX 4096

struct tool_run {
        pid_t pid; /* 0: none running */
        int pidfd, out_fd, err_fd;
        sd_event_source *exit_src, *out_src, *err_src;
        char out[TOOL_OUT_MAX + 1]; /* its stdout, NUL-terminated */
        size_t out_len;
        char err[TOOL_ERR_MAX + 1]; /* its stderr, NUL-terminated */
        size_t err_len;
        /* its exit code, 128 + the signal that killed it, or -1 unknown */
        void (*done)(void *ud, int status);
        void *ud;
};

/* Before first use: no process, no fds. */
void tool_run_init(struct tool_run *t);

/* Starts argv[0] with argv, stdin /dev/null, stdout and stderr captured, an
 * empty signal mask.  0, or a negative errno (nothing is running then). */
int tool_run_start(struct tool_run *t, sd_event *e, char *const argv[], void (*done)(void *ud, int status),
                   void *ud);

/* SIGKILL; its exit still comes to done().  What stderr holds is then
 * "killed: <why>". */
void tool_run_kill(struct tool_run *t, const char *why);

/* What to quote when it failed: its stderr if it wrote any, else stdout. */
const char *tool_run_says(const struct tool_run *t);

/* SIGKILL, reaped at once, done() never called: for teardown. */
void tool_run_abort(struct tool_run *t);

#endif
