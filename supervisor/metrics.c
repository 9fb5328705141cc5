/* metrics: see metrics.h. */
#include "supervisor/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct metrics_server {
        struct MHD_Daemon *d;
        pthread_mutex_t lock; /* guards text */
        char *text;
};

char *sup_metrics_text(const struct sup_metrics *m)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        if (!f)
                return NULL;
        fprintf(f, "# HELP mwr_supervisor_worker_restarts_total Unplanned restarts of the active worker (crash, "
                   "kill, watchdog).\n# TYPE mwr_supervisor_worker_restarts_total counter\n"
                   "mwr_supervisor_worker_restarts_total %llu\n",
                (unsigned long long)m->restarts);
        fprintf(f, "# HELP mwr_supervisor_recovery_seconds Time from a worker's death to its replacement's READY.\n"
                   "# TYPE mwr_supervisor_recovery_seconds summary\n"
                   "mwr_supervisor_recovery_seconds_sum %.3f\nmwr_supervisor_recovery_seconds_count %llu\n"
                   "# HELP mwr_supervisor_last_recovery_seconds The last recovery's time (0: none yet).\n"
                   "# TYPE mwr_supervisor_last_recovery_seconds gauge\nmwr_supervisor_last_recovery_seconds %.3f\n",
                m->recovery_s_sum, (unsigned long long)m->recoveries, m->last_recovery_s);
        fprintf(f, "# HELP mwr_supervisor_hot_standby 1 when both slots record all the time (supervisor.standby hot).\n"
                   "# TYPE mwr_supervisor_hot_standby gauge\nmwr_supervisor_hot_standby %d\n"
                   "# HELP mwr_supervisor_failovers_total Times the standby took the traffic from an active worker "
                   "that died.\n# TYPE mwr_supervisor_failovers_total counter\nmwr_supervisor_failovers_total %llu\n"
                   "# HELP mwr_supervisor_failover_seconds From the active's death to haproxy sending to the standby.\n"
                   "# TYPE mwr_supervisor_failover_seconds summary\n"
                   "mwr_supervisor_failover_seconds_sum %.3f\nmwr_supervisor_failover_seconds_count %llu\n"
                   "# HELP mwr_supervisor_last_failover_seconds The last failover's time (0: none yet).\n"
                   "# TYPE mwr_supervisor_last_failover_seconds gauge\nmwr_supervisor_last_failover_seconds %.3f\n",
                m->hot_standby, (unsigned long long)m->failovers, m->failover_s_sum,
                (unsigned long long)m->failovers_timed, m->last_failover_s);
        fprintf(f, "# HELP mwr_supervisor_standby_retention_runs_total Runs of mwr dedup --delete over footage older "
                   "than supervisor.standby_retention_seconds, by result.\n"
                   "# TYPE mwr_supervisor_standby_retention_runs_total counter\n"
                   "mwr_supervisor_standby_retention_runs_total{result=\"ok\"} %llu\n"
                   "mwr_supervisor_standby_retention_runs_total{result=\"failed\"} %llu\n"
                   "# HELP mwr_supervisor_standby_retention_deleted_segments_total Segments deleted because the "
                   "other copy holds every frame of them.\n"
                   "# TYPE mwr_supervisor_standby_retention_deleted_segments_total counter\n"
                   "mwr_supervisor_standby_retention_deleted_segments_total %llu\n"
                   "# HELP mwr_supervisor_standby_retention_deleted_bytes_total Bytes of those segments.\n"
                   "# TYPE mwr_supervisor_standby_retention_deleted_bytes_total counter\n"
                   "mwr_supervisor_standby_retention_deleted_bytes_total %llu\n",
                (unsigned long long)(m->retention_runs - m->retention_failures),
                (unsigned long long)m->retention_failures, (unsigned long long)m->retention_deleted_segments,
                (unsigned long long)m->retention_deleted_bytes);
        fprintf(f, "# HELP mwr_supervisor_crash_loop 1 while the active worker keeps dying.\n"
                   "# TYPE mwr_supervisor_crash_loop gauge\nmwr_supervisor_crash_loop %d\n",
                m->crash_loop);
        fprintf(f, "# HELP mwr_supervisor_slot_up 1 when the slot has a worker process.\n"
                   "# TYPE mwr_supervisor_slot_up gauge\n");
        for (int i = 0; i < 2; i++)
                fprintf(f, "mwr_supervisor_slot_up{slot=\"%s\"} %d\n", m->slots[i].name, m->slots[i].up);
        fprintf(f, "# HELP mwr_supervisor_slot_active 1 for the slot that takes the traffic.\n"
                   "# TYPE mwr_supervisor_slot_active gauge\n");
        for (int i = 0; i < 2; i++)
                fprintf(f, "mwr_supervisor_slot_active{slot=\"%s\"} %d\n", m->slots[i].name, m->slots[i].active);
        fprintf(f, "# HELP mwr_supervisor_slot_ready 1 when the slot's worker said READY (recording) and has not "
                   "stopped since.\n"
                   "# TYPE mwr_supervisor_slot_ready gauge\n");
        for (int i = 0; i < 2; i++)
                fprintf(f, "mwr_supervisor_slot_ready{slot=\"%s\"} %d\n", m->slots[i].name, m->slots[i].ready);
        fprintf(f, "# HELP mwr_supervisor_deploys_total Deploys since the supervisor started, by result.\n"
                   "# TYPE mwr_supervisor_deploys_total counter\n"
                   "mwr_supervisor_deploys_total{result=\"ok\"} %llu\n"
                   "mwr_supervisor_deploys_total{result=\"failed\"} %llu\n",
                (unsigned long long)m->deploys_ok, (unsigned long long)m->deploys_failed);
        if (m->have_deploy)
                fprintf(f, "# HELP mwr_supervisor_last_deploy_seconds Duration of the last deploy (restart).\n"
                           "# TYPE mwr_supervisor_last_deploy_seconds gauge\nmwr_supervisor_last_deploy_seconds %.3f\n"
                           "# HELP mwr_supervisor_last_deploy_ok 1 when the last deploy succeeded, 0 when it failed.\n"
                           "# TYPE mwr_supervisor_last_deploy_ok gauge\nmwr_supervisor_last_deploy_ok %d\n"
                           "# HELP mwr_supervisor_last_handover_overlap_ratio Duplicate frames / frames in the "
                           "last handover window (the overlap both instances recorded).\n"
                           "# TYPE mwr_supervisor_last_handover_overlap_ratio gauge\n"
                           "mwr_supervisor_last_handover_overlap_ratio %.4f\n"
                           "# HELP mwr_supervisor_last_handover_gaps Gaps in the last handover window (0 expected).\n"
                           "# TYPE mwr_supervisor_last_handover_gaps gauge\nmwr_supervisor_last_handover_gaps %.0f\n",
                        m->last_deploy_s, m->last_deploy_ok, m->last_overlap_ratio, m->last_handover_gaps);
        fprintf(f, "# HELP mwr_supervisor_uptime_seconds Seconds since the supervisor started.\n"
                   "# TYPE mwr_supervisor_uptime_seconds gauge\nmwr_supervisor_uptime_seconds %.3f\n", m->uptime_s);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
        struct metrics_server *s = cls;
        struct MHD_Response *r;
        enum MHD_Result ret;
        char *copy;
        int code = 200;

        if (strcmp(method, "GET") || strcmp(url, "/metrics")) {
                copy = strdup("only GET /metrics\n");
                code = 404;
        } else {
                pthread_mutex_lock(&s->lock);
                copy = strdup(s->text ? s->text : "");
                pthread_mutex_unlock(&s->lock);
        }
        if (!copy)
                return MHD_NO;
        r = MHD_create_response_from_buffer(strlen(copy), copy, MHD_RESPMEM_MUST_FREE);
        if (!r) {
                free(copy);
                return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4");
        ret = MHD_queue_response(c, (unsigned)code, r);
        MHD_destroy_response(r);
        return ret;
}

int metrics_server_start(const char *bind, uint16_t port, struct metrics_server **out)
{
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
        struct metrics_server *s;

        if (inet_pton(AF_INET, bind, &sa.sin_addr) != 1)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        pthread_mutex_init(&s->lock, NULL);
        s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, port, NULL, NULL, handler, s,
                                MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT, 16U,
                                MHD_OPTION_CONNECTION_TIMEOUT, 10U, MHD_OPTION_END);
        if (!s->d) {
                pthread_mutex_destroy(&s->lock);
                free(s);
                return -EADDRINUSE;
        }
        *out = s;
        return 0;
}

void metrics_server_set(struct metrics_server *s, char *text)
{
        char *old;

        if (!s) {
                free(text);
                return;
        }
        pthread_mutex_lock(&s->lock);
        old = s->text;
        s->text = text;
        pthread_mutex_unlock(&s->lock);
        free(old);
}

void metrics_server_stop(struct metrics_server *s)
{
        if (!s)
                return;
        MHD_stop_daemon(s->d);
        pthread_mutex_destroy(&s->lock);
        free(s->text);
        free(s);
}
