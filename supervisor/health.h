/* health: asynchronous `GET /health` checks with libcurl's multi interface
 * driven by an sd-event loop, so the supervisor's loop never blocks on a
 * worker that is slow to answer.  One check at a time per health_checker. */
#ifndef MWR_SUPERVISOR_HEALTH_H
#define MWR_SUPERVISOR_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#define HEALTH_BODY_MAX (64 * 1024)

struct health_result {
        int status;        /* HTTP status, 0 if none (connect error, timeout) */
        int error;         /* 0 or a negative errno: -ECONNREFUSED, -ETIMEDOUT, -E2BIG (body), -EIO */
        bool all_recording; /* body is JSON with "recording": true (every enabled camera recording) */
        char body[512];    /* first bytes of the body, NUL-terminated, for messages */
        uint64_t elapsed_us;
};

struct health_checker;

typedef void (*health_cb)(struct health_checker *h, const struct health_result *r, void *userdata);

int health_checker_new(sd_event *e, struct health_checker **out);
void health_checker_free(struct health_checker *h);

/* Start GET url (e.g. "http://127.0.0.1:8080/health") with a timeout; cb
 * is called exactly once from the event loop with the result, unless
 * health_checker_cancel() or _free() comes first.  -EBUSY if a check runs. */
int health_check_start(struct health_checker *h, const char *url, uint64_t timeout_us, health_cb cb, void *userdata);
void health_checker_cancel(struct health_checker *h);

/* The same, synchronously (for the CLI commands, not for the daemon's loop). */
int health_check_blocking(const char *url, uint64_t timeout_us, struct health_result *r);

#endif
