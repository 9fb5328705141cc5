/* metrics: the supervisor's Prometheus text (the plan's §8.2: restarts and
 * recovery time, deploy duration and failures, the handover's overlap and
 * gaps) and an optional HTTP listener (supervisor.metrics_port) serving it.
 * The event loop renders the text once a second and hands it over; the
 * listener's thread only copies the latest text under a lock. */
#ifndef MWR_SUPERVISOR_METRICS_H
#define MWR_SUPERVISOR_METRICS_H

#include <stdbool.h>
#include <stdint.h>

struct sup_metrics {
        uint64_t restarts, recoveries;
        bool hot_standby;
        uint64_t failovers;      /* hot standby: the standby took the traffic from a dead active */
        uint64_t failovers_timed; /* of which haproxy was switched (the summary's count) */
        double last_failover_s, failover_s_sum; /* the active's death to haproxy sending to the standby */
        /* hot: supervisor.standby_retention_seconds deleting the second copy */
        uint64_t retention_runs, retention_failures, retention_deleted_segments, retention_deleted_bytes;
        double last_recovery_s, recovery_s_sum;
        bool crash_loop;
        struct {
                const char *name;
                bool up, active, ready;
        } slots[2];
        uint64_t deploys_ok, deploys_failed;
        double last_deploy_s;
        bool last_deploy_ok, have_deploy;
        double last_overlap_ratio; /* duplicate frames / frames over the last handover window */
        double last_handover_gaps;
        double uptime_s;
};

/* malloc'ed Prometheus text exposition, NULL on ENOMEM. */
char *sup_metrics_text(const struct sup_metrics *m);

struct metrics_server;

/* Listen on bind:port (loopback unless configured otherwise).  0 or a negative errno. */
int metrics_server_start(const char *bind, uint16_t port, struct metrics_server **out);
/* Replace the text served (takes text). */
void metrics_server_set(struct metrics_server *s, char *text);
void metrics_server_stop(struct metrics_server *s);

#endif
