/* control_cmd: the control protocol's commands, parsed and checked in one
 * pure function (fuzzed by tests/fuzz/fuzz_control_cmd.c).  A line is
 *   status | metrics | rollback | deploy BINARY|- OVERLAP_S HEALTH_S | upgrade BINARY|-
 * with BINARY an absolute path without spaces or control characters and
 * the seconds in -1..3600 (-1: from the config). */
#ifndef MWR_SUPERVISOR_CONTROL_CMD_H
#define MWR_SUPERVISOR_CONTROL_CMD_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum ctl_kind { CTL_STATUS, CTL_METRICS, CTL_ROLLBACK, CTL_DEPLOY, CTL_UPGRADE };

struct ctl_cmd {
        enum ctl_kind kind;
        char binary[PATH_MAX]; /* "" : the default (configured worker / our own binary) */
        int overlap_s, health_s;
};

/* NULL, or a message for an "error: ..." answer. */
const char *ctl_cmd_parse(const char *line, struct ctl_cmd *out);

#define CTL_UID_UNKNOWN ((uid_t)-1) /* the peer's credentials could not be read */

/* Who may run what.  status and metrics: anyone who can open the socket
 * (its mode decides that).  deploy, rollback and upgrade start a program
 * as the service user, so only the service user itself (service) or root
 * may ask for them; group membership is not enough.  NULL when peer may,
 * else the reason, written into msg. */
const char *ctl_cmd_permit(enum ctl_kind kind, uid_t peer, uid_t service, char *msg, size_t len);
const char *ctl_kind_name(enum ctl_kind kind);

#endif
