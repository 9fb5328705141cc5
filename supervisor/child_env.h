/* child_env: the environment a worker is exec'ed with, built before fork so
 * the child only has to execve() it.  setenv() between fork and exec is not
 * async-signal-safe: it allocates and takes the environment's lock, which
 * another thread of the supervisor may have held at the fork.  The result is
 * the parent's environment without the variables systemd set for the
 * supervisor itself (CHILD_ENV_STRIPPED), plus the worker's own. */
#ifndef MWR_SUPERVISOR_CHILD_ENV_H
#define MWR_SUPERVISOR_CHILD_ENV_H

#include <stdint.h>
#include <sys/types.h>

/* Removed from the parent's environment, whatever their value. */
#define CHILD_ENV_STRIPPED { "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID" }

struct child_env {
        char **envp; /* NULL-terminated, for execve(); every string owned here */
        /* private: the "WATCHDOG_PID=" entry, with room for any pid, or NULL */
        char *watchdog_pid;
};

/* base (NULL-terminated, may be NULL; normally environ) without the
 * CHILD_ENV_STRIPPED variables, then NOTIFY_SOCKET=notify_socket and, if
 * watchdog_us is not 0, WATCHDOG_USEC=watchdog_us and WATCHDOG_PID (set it
 * in the child with child_env_set_pid).  Everything is copied: base is not
 * changed.  0 or -ENOMEM (ce is then empty). */
int child_env_build(struct child_env *ce, char *const *base, const char *notify_socket, uint64_t watchdog_us);

/* Write pid into WATCHDOG_PID (nothing without a watchdog).  Only stores
 * digits into memory built before the fork: async-signal-safe. */
void child_env_set_pid(struct child_env *ce, pid_t pid);

void child_env_free(struct child_env *ce);

#endif
