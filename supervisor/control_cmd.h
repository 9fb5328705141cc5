/* control_cmd: the control protocol's commands, parsed and checked in one
 * pure function (fuzzed by tests/fuzz/fuzz_control_cmd.c).  A line is
 *   status | metrics | rollback | deploy BINARY|- OVERLAP_S HEALTH_S | upgrade BINARY|-
 * with BINARY an absolute path without spaces or control characters and
 * the seconds in -1..3600 (-1: from the config). */
#ifndef MWR_SUPERVISOR_CONTROL_CMD_H
#define MWR_SUPERVISOR_CONTROL_CMD_H

#include <limits.h>
#include <stdbool.h>

enum ctl_kind { CTL_STATUS, CTL_METRICS, CTL_ROLLBACK, CTL_DEPLOY, CTL_UPGRADE };

struct ctl_cmd {
        enum ctl_kind kind;
        char binary[PATH_MAX]; /* "" : the default (configured worker / our own binary) */
        int overlap_s, health_s;
};

/* NULL, or a message for an "error: ..." answer. */
const char *ctl_cmd_parse(const char *line, struct ctl_cmd *out);

#endif
