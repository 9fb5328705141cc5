/* slot: one worker process (slot A or B) as the supervisor sees it.  The
 * worker gets a notify socket of its own (NOTIFY_SOCKET, a datagram socket
 * the supervisor binds at a fixed path, so a restarted supervisor can bind
 * it again and keep hearing an adopted worker) and is watched through a
 * pidfd, which also works for a worker the supervisor did not fork.  The
 * slot reports READY, STATUS, WATCHDOG, STOPPING and exit to its owner
 * through one callback; restart policy is the owner's. */
#ifndef MWR_SUPERVISOR_SLOT_H
#define MWR_SUPERVISOR_SLOT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/un.h>

#include <systemd/sd-event.h>

#define SLOT_NOTIFY_MAX 4096 /* one sd_notify datagram; longer ones are dropped */

enum slot_state { SLOT_STOPPED, SLOT_STARTING, SLOT_READY, SLOT_STOPPING };

enum slot_event { SLOT_EV_READY, SLOT_EV_STATUS, SLOT_EV_STOPPING, SLOT_EV_EXITED };

struct slot;
typedef void (*slot_event_fn)(struct slot *s, enum slot_event ev, void *userdata);

struct slot {
        int index;          /* 0: A, 1: B */
        char name[32];      /* haproxy server name, also the worker's instance id */
        uint16_t port;
        char binary[PATH_MAX];
        char version[64];   /* first line of `binary --version` */
        enum slot_state state;
        pid_t pid;
        bool adopted;       /* not our child: no exit status */
        bool stop_requested;
        int exit_status;    /* wait status of the last exit, -1 unknown */
        char status[512];   /* last STATUS= */
        uint64_t started_mono_us, ready_mono_us, watchdog_mono_us;
        int64_t started_real_us;
        /* private */
        char notify_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
        int notify_fd, pidfd;
        sd_event_source *notify_src, *exit_src;
        slot_event_fn fn;
        void *userdata;
};

/* Bind the slot's notify socket at dir/notify-NAME.sock (replacing a stale
 * one) and watch it on e.  0 or a negative errno. */
int slot_init(struct slot *s, int index, const char *name, uint16_t port, sd_event *e, const char *dir,
              slot_event_fn fn, void *userdata);

/* fork + exec binary --config config --instance-id NAME --port PORT with
 * NOTIFY_SOCKET and WATCHDOG_USEC (0: none) set (the environment is built
 * before the fork, see child_env.h); the child runs in a session of its own
 * so a terminal's ^C or the supervisor's end does not reach it.  0 or a
 * negative errno. */
int slot_spawn(struct slot *s, sd_event *e, const char *binary, const char *config, uint64_t watchdog_us);

/* Watch a running worker this supervisor did not fork (after a restart). */
int slot_adopt(struct slot *s, sd_event *e, pid_t pid, const char *binary);

/* Signal the worker; SIGTERM also marks the stop as requested. */
int slot_kill(struct slot *s, int sig);

/* Stop watching (the process, if any, keeps running). */
void slot_release(struct slot *s);
void slot_close(struct slot *s);

const char *slot_state_name(enum slot_state st);

/* True if pid runs mwr-worker with --instance-id instance_id (/proc). */
bool slot_pid_is_worker(pid_t pid, const char *instance_id);

#endif
