/* mwr-supervisor: the daemon (`run`) and the operator's client commands
 * that talk to it over its control socket (`status`, `deploy`, `rollback`),
 * plus `proxy-config`, which prints the haproxy.cfg for an mwr config.
 * Exit 0 on success, 1 on a runtime failure, 2 on bad usage or config. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/config.h"
#include "proxy-config/haproxy_cfg.h"
#include "supervisor/control.h"
#include "supervisor/daemon.h"
#include "supervisor/proxy_cli.h"

#define EXIT_USAGE 2
#define DEFAULT_CONFIG "/etc/mwr/mwr.json"

struct args {
        const char *cmd, *config, *binary;
        bool json;
        int overlap_s, health_timeout_s;
};

static void usage(FILE *f)
{
        fprintf(f, "usage: mwr-supervisor run --config FILE\n"
                   "       mwr-supervisor status [--json] [--config FILE]\n"
                   "       mwr-supervisor metrics [--config FILE]   (Prometheus text; also on supervisor.metrics_port)\n"
                   "       mwr-supervisor deploy [--binary PATH] [--overlap S] [--health-timeout S] [--config FILE]\n"
                   "       mwr-supervisor rollback [--config FILE]\n"
                   "       mwr-supervisor upgrade [--binary PATH] [--config FILE]   (re-exec; workers keep running)\n"
                   "       mwr-supervisor proxy-config --config FILE\n"
                   "       mwr-supervisor passwd [--role viewer|admin] [--cameras ID,ID|all] [--delete] [--config FILE] USER\n"
                   "                     (password on stdin; rewrites haproxy.config_file and reloads haproxy)\n"
                   "FILE defaults to " DEFAULT_CONFIG ".\n");
}

static int parse_seconds(const char *flag, const char *v, int *out)
{
        char *end;
        long n = strtol(v, &end, 10);

        if (*end || n < 0 || n > 3600) {
                fprintf(stderr, "mwr-supervisor: %s must be 0..3600 seconds, got '%s'\n", flag, v);
                return -EINVAL;
        }
        *out = (int)n;
        return 0;
}

static int args_parse(int argc, char **argv, struct args *a)
{
        static const struct option lo[] = { { "config", required_argument, NULL, 'c' },
                                            { "binary", required_argument, NULL, 'b' },
                                            { "overlap", required_argument, NULL, 'o' },
                                            { "health-timeout", required_argument, NULL, 't' },
                                            { "json", no_argument, NULL, 'j' },
                                            { "help", no_argument, NULL, 'h' },
                                            { "version", no_argument, NULL, 'V' },
                                            { 0 } };
        int c;

        *a = (struct args){ .config = DEFAULT_CONFIG, .overlap_s = -1, .health_timeout_s = -1 };
        if (argc >= 2 && argv[1][0] != '-') {
                a->cmd = argv[1];
                argv++;
                argc--;
        }
        while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
                switch (c) {
                case 'c': a->config = optarg; break;
                case 'b': a->binary = optarg; break;
                case 'o':
                        if (parse_seconds("--overlap", optarg, &a->overlap_s) < 0)
                                return -EINVAL;
                        break;
                case 't':
                        if (parse_seconds("--health-timeout", optarg, &a->health_timeout_s) < 0)
                                return -EINVAL;
                        break;
                case 'j': a->json = true; break;
                case 'h': usage(stdout); exit(0);
                case 'V': printf("mwr-supervisor %s (%s)\n", MWR_VERSION, MWR_COMMIT); exit(0);
                default: usage(stderr); return -EINVAL;
                }
        }
        if (!a->cmd) {
                usage(stderr);
                return -EINVAL;
        }
        if (optind < argc) {
                fprintf(stderr, "mwr-supervisor %s: unexpected argument '%s'\n", a->cmd, argv[optind]);
                return -EINVAL;
        }
        if (strcmp(a->cmd, "run") && strcmp(a->cmd, "status") && strcmp(a->cmd, "deploy") &&
            strcmp(a->cmd, "rollback") && strcmp(a->cmd, "proxy-config") && strcmp(a->cmd, "upgrade") &&
            strcmp(a->cmd, "metrics")) {
                fprintf(stderr,
                        "mwr-supervisor: unknown command '%s' (run, status, metrics, deploy, rollback, upgrade, "
                        "proxy-config, passwd)\n",
                        a->cmd);
                return -EINVAL;
        }
        return 0;
}

/* status: the daemon's JSON as is (--json) or as a short table. */
static int cmd_status(const struct mwr_config *cfg, const struct args *a)
{
        char path[] = "/tmp/mwr-status-XXXXXX", buf[65536];
        int fd = mkstemp(path), r;
        ssize_t n;
        cJSON *j, *ret;

        if (fd < 0) {
                perror("mwr-supervisor status: temp file");
                return 1;
        }
        unlink(path);
        r = control_call(cfg->control_socket, "status", fd, NULL, 0);
        if (r < 0) {
                fprintf(stderr, "mwr-supervisor status: %s: %s (is the supervisor running?)\n", cfg->control_socket,
                        strerror(-r));
                close(fd);
                return 1;
        }
        n = pread(fd, buf, sizeof(buf) - 1, 0);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        if (a->json || r != 0) {
                fputs(buf, r ? stderr : stdout);
                return r;
        }
        j = cJSON_Parse(buf);
        if (!j) {
                fprintf(stderr, "mwr-supervisor status: unreadable answer: %.200s\n", buf);
                return 1;
        }
        printf("supervisor pid %d, version %s, active slot %s, %s standby, %d restarts, %d failovers%s\n",
               (int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "pid")),
               cJSON_GetStringValue(cJSON_GetObjectItem(j, "version")),
               cJSON_GetStringValue(cJSON_GetObjectItem(j, "active")),
               cJSON_GetStringValue(cJSON_GetObjectItem(j, "standby")),
               (int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "restarts")),
               (int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "failovers")),
               cJSON_IsTrue(cJSON_GetObjectItem(j, "crash_loop")) ? ", CRASH LOOP" : "");
        if ((ret = cJSON_GetObjectItem(j, "standby_retention")))
                printf("  standby retention %.0f s: %.0f duplicate segments (%.1f MB) deleted in %.0f runs (%.0f "
                       "failed); one copy before %s\n",
                       cJSON_GetNumberValue(cJSON_GetObjectItem(ret, "seconds")),
                       cJSON_GetNumberValue(cJSON_GetObjectItem(ret, "deleted_segments")),
                       cJSON_GetNumberValue(cJSON_GetObjectItem(ret, "deleted_bytes")) / 1e6,
                       cJSON_GetNumberValue(cJSON_GetObjectItem(ret, "runs")),
                       cJSON_GetNumberValue(cJSON_GetObjectItem(ret, "failures")),
                       cJSON_GetStringValue(cJSON_GetObjectItem(ret, "one_copy_before")) ?: "(not yet)");
        for (cJSON *s = cJSON_GetObjectItem(j, "slots")->child; s; s = s->next)
                printf("  slot %-3s %-8s %-7s pid %-7d port %-5d up %8.1f s  %s  %s\n",
                       cJSON_GetStringValue(cJSON_GetObjectItem(s, "slot")),
                       cJSON_GetStringValue(cJSON_GetObjectItem(s, "state")),
                       cJSON_IsTrue(cJSON_GetObjectItem(s, "active")) ? "ACTIVE"
                       : !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(s, "role")) ?: "", "standby") ? "standby"
                                                                                                      : "",
                       (int)cJSON_GetNumberValue(cJSON_GetObjectItem(s, "pid")),
                       (int)cJSON_GetNumberValue(cJSON_GetObjectItem(s, "port")),
                       cJSON_GetNumberValue(cJSON_GetObjectItem(s, "uptime")),
                       cJSON_GetStringValue(cJSON_GetObjectItem(s, "binary")),
                       cJSON_GetStringValue(cJSON_GetObjectItem(s, "status")));
        cJSON_Delete(j);
        return 0;
}

/* must_finish: the command ends with an "ok: ..." line when it worked;
 * anything else (the daemon killed in the middle) is a failure. */
static int cmd_forward(const struct mwr_config *cfg, const char *line, bool must_finish)
{
        char last[512] = "";
        int r = control_call(cfg->control_socket, line, STDOUT_FILENO, last, sizeof(last));

        if (r < 0) {
                fprintf(stderr, "mwr-supervisor: %s: %s (is the supervisor running?)\n", cfg->control_socket,
                        strerror(-r));
                return 1;
        }
        if (r == 0 && must_finish && strncmp(last, "ok:", 3) != 0 && !strstr(last, "] ok: ")) {
                fprintf(stderr, "mwr-supervisor: the supervisor went away before '%.40s' finished; "
                                "see mwr-supervisor status\n", line);
                return 1;
        }
        return r;
}

/* binary --version, no shell: its exit status (or -1). */
static int run_version(const char *binary)
{
        int st;
        pid_t pid = fork();

        if (pid < 0)
                return -1;
        if (pid == 0) {
                int devnull = open("/dev/null", O_WRONLY);

                dup2(devnull, 1);
                dup2(devnull, 2);
                execl(binary, binary, "--version", (char *)NULL);
                _exit(127);
        }
        if (waitpid(pid, &st, 0) < 0)
                return -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The new supervisor binary must run before the daemon execs it. */
static int cmd_upgrade(const struct mwr_config *cfg, const struct args *a)
{
        char line[CONTROL_LINE_MAX];
        int r;

        if (a->binary) {
                if (strpbrk(a->binary, " \n'") || a->binary[0] != '/') {
                        fprintf(stderr, "mwr-supervisor upgrade: --binary must be an absolute path without spaces\n");
                        return EXIT_USAGE;
                }
                if ((r = run_version(a->binary)) != 0) {
                        fprintf(stderr, "mwr-supervisor upgrade: %s --version failed (%d): not re-executing\n",
                                a->binary, r);
                        return 1;
                }
        }
        snprintf(line, sizeof(line), "upgrade %s", a->binary ? a->binary : "-");
        return cmd_forward(cfg, line, true);
}

int main(int argc, char **argv)
{
        struct mwr_config *cfg;
        struct args a;
        char err[CONFIG_ERR_MAX], line[CONTROL_LINE_MAX];
        int rc;

        if (argc >= 2 && !strcmp(argv[1], "passwd"))
                return passwd_main(argc - 1, argv + 1, DEFAULT_CONFIG);
        if (args_parse(argc, argv, &a) < 0)
                return EXIT_USAGE;
        if (config_load(a.config, &cfg, err) < 0) {
                fprintf(stderr, "mwr-supervisor: %s\n", err);
                return EXIT_USAGE;
        }
        if (!strcmp(a.cmd, "run")) {
                char self[PATH_MAX];
                ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

                self[n > 0 ? n : 0] = '\0';
                /* a package upgrade replaces the file: re-exec by path, not /proc/self/exe */
                if (n > 0 && strlen(self) > 10 && !strcmp(self + strlen(self) - 10, " (deleted)"))
                        self[strlen(self) - 10] = '\0';
                rc = daemon_run(cfg, self);
        } else if (!strcmp(a.cmd, "status")) {
                rc = cmd_status(cfg, &a);
        } else if (!strcmp(a.cmd, "proxy-config")) {
                rc = proxy_config_print(cfg);
        } else if (!strcmp(a.cmd, "metrics")) {
                rc = cmd_forward(cfg, "metrics", false);
        } else if (!strcmp(a.cmd, "upgrade")) {
                rc = cmd_upgrade(cfg, &a);
        } else if (!strcmp(a.cmd, "rollback")) {
                rc = cmd_forward(cfg, "rollback", true);
        } else {
                if (a.binary && strpbrk(a.binary, " \n")) {
                        fprintf(stderr, "mwr-supervisor deploy: --binary must not contain spaces\n");
                        config_free(cfg);
                        return EXIT_USAGE;
                }
                snprintf(line, sizeof(line), "deploy %s %d %d", a.binary ? a.binary : "-", a.overlap_s,
                         a.health_timeout_s);
                rc = cmd_forward(cfg, line, true);
        }
        config_free(cfg);
        return rc;
}
