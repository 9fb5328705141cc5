/* offload: the supervisor's blocking chores (SQLite writes, haproxy runtime
 * commands, the state file's fsync) run on a thread of their own, in the
 * order they were asked for, so the event loop (and the WATCHDOG=1 it sends)
 * never waits on a locked database or a hung haproxy.  A job's run() is
 * called on that thread; its done() back on the loop (an eventfd in the
 * sd-event loop), and done() frees the job.  A job owns copies of what it
 * needs: nothing of the loop's may be read from run(). */
#ifndef MWR_SUPERVISOR_OFFLOAD_H
#define MWR_SUPERVISOR_OFFLOAD_H

#include <stddef.h>

#include <systemd/sd-event.h>

#define OFFLOAD_MAX_JOBS 256 /* queued and not run yet: beyond this a job is refused */

struct offload;

struct offload_job {
        void (*run)(struct offload_job *j);  /* the offload thread */
        void (*done)(struct offload_job *j); /* the loop; frees j */
        struct offload_job *next;            /* the queue's */
};

/* 0, -ENOMEM, or a negative errno from eventfd/pthread/sd-event. */
int offload_new(sd_event *e, struct offload **out);

/* Queues j.  -EAGAIN when OFFLOAD_MAX_JOBS wait already (j is not taken:
 * the caller frees it), -ESHUTDOWN after offload_free began. */
int offload_submit(struct offload *o, struct offload_job *j);

/* Jobs queued or running, not yet done on the loop. */
size_t offload_pending(const struct offload *o);

/* Runs what is queued (on the thread, to the end), calls every done() left,
 * joins the thread.  NULL is fine. */
void offload_free(struct offload *o);

#endif
