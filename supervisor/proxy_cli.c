/* proxy_cli: proxy-config and passwd.  The password is read from stdin (one
 * line; asked twice without echo on a terminal), hashed at once and wiped;
 * it is never printed or logged. */
#include "supervisor/proxy_cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "proxy-config/haproxy_cfg.h"
#include "proxy-config/haproxy_runtime.h"
#include "proxy-config/users.h"

#define EXIT_USAGE 2
#define RELOAD_WAIT_MS 10000 /* a reloaded haproxy's new worker answers within this */

static int load_users(const struct mwr_config *cfg, struct users *u)
{
        char err[512];
        int r;

        if (!cfg->auth.required) {
                u->v = NULL;
                u->n = 0;
                return 0;
        }
        if ((r = users_load(cfg->auth.users_file, u, err, sizeof(err))) < 0)
                fprintf(stderr, "mwr-supervisor: users file %s\n", err);
        return r;
}

static int render(const struct mwr_config *cfg, const struct users *u, FILE *f)
{
        const char *why = NULL;
        int r = haproxy_cfg_write(cfg, u, 0, f, &why);

        if (r < 0)
                fprintf(stderr, "mwr-supervisor proxy-config: %s: %s\n", cfg->path, why ? why : strerror(-r));
        return r;
}

int proxy_config_print(const struct mwr_config *cfg)
{
        struct users u;
        int r;

        if (load_users(cfg, &u) < 0)
                return EXIT_USAGE;
        if (!cfg->auth.required)
                fprintf(stderr, "mwr-supervisor proxy-config: warning: auth.required is false: the frontend "
                                "serves every camera to anyone who reaches it\n");
        r = render(cfg, &u, stdout);
        users_free(&u);
        if (r == -EINVAL)
                return EXIT_USAGE;
        return r < 0 || fflush(stdout) ? 1 : 0;
}

/* ---- passwd ------------------------------------------------------------------------- */

static int read_line(char *buf, size_t len, const char *prompt)
{
        bool tty = isatty(STDIN_FILENO);
        struct termios old, quiet;
        size_t n;
        int r = 0;

        if (tty) {
                fputs(prompt, stderr);
                if (tcgetattr(STDIN_FILENO, &old) == 0) {
                        quiet = old;
                        quiet.c_lflag &= ~(tcflag_t)ECHO;
                        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
                }
        }
        if (!fgets(buf, (int)len, stdin))
                r = -ENODATA;
        if (tty) {
                tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
                fputc('\n', stderr);
        }
        if (r < 0)
                return r;
        n = strlen(buf);
        if (n == len - 1 && buf[n - 1] != '\n')
                return -E2BIG;
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
                buf[--n] = '\0';
        return 0;
}

static int read_password(char pw[USER_PASSWORD_MAX])
{
        char again[USER_PASSWORD_MAX];
        int r;

        if ((r = read_line(pw, USER_PASSWORD_MAX, "Password: ")) < 0) {
                fprintf(stderr, "mwr-supervisor passwd: %s\n",
                        r == -E2BIG ? "the password is longer than 1023 bytes" : "no password on stdin");
                return r;
        }
        if (isatty(STDIN_FILENO)) {
                r = read_line(again, sizeof(again), "Again: ");
                if (r == 0 && strcmp(pw, again)) {
                        fprintf(stderr, "mwr-supervisor passwd: the two passwords differ\n");
                        r = -EINVAL;
                }
                explicit_bzero(again, sizeof(again));
        }
        return r;
}

/* "a,b,c" into list (pointers into s, which is cut); "all": NULL list. */
static int split_cameras(char *s, const char *list[CONFIG_MAX_CAMERAS], size_t *n)
{
        char *save = NULL;

        *n = 0;
        for (char *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (*n == CONFIG_MAX_CAMERAS)
                        return -E2BIG;
                list[(*n)++] = t;
        }
        return 0;
}

static int write_haproxy_cfg(const struct mwr_config *cfg, const struct users *u)
{
        char tmp[4096 + 16];
        FILE *f;
        int fd, r;

        snprintf(tmp, sizeof(tmp), "%s.tmp", cfg->haproxy.config_file);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
        if (fd < 0 || fchmod(fd, 0640) < 0 || !(f = fdopen(fd, "w"))) {
                r = -errno;
                if (fd >= 0)
                        close(fd);
                fprintf(stderr, "mwr-supervisor passwd: %s: %s\n", tmp, strerror(-r));
                return r;
        }
        r = render(cfg, u, f);
        if (r == 0 && (fflush(f) || fsync(fileno(f)) < 0))
                r = -errno;
        if (fclose(f) && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, cfg->haproxy.config_file) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                fprintf(stderr, "mwr-supervisor passwd: %s: %s\n", cfg->haproxy.config_file, strerror(-r));
        }
        return r;
}

static long haproxy_pid(const char *sock)
{
        char *ans = NULL, *p;
        long pid = -1;

        if (hap_command(sock, "show info", &ans) == 0 && ans && (p = strstr(ans, "\nPid: ")))
                pid = strtol(p + 6, NULL, 10);
        free(ans);
        return pid;
}

static uint64_t mono_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* haproxy's master re-executes with the new file; the old worker finishes
 * the connections it holds, the listening sockets pass to the new one.  Done
 * when a worker with another pid answers the admin socket. */
static int reload_haproxy(const struct mwr_config *cfg)
{
        long before = haproxy_pid(cfg->haproxy.socket), now = before;
        uint64_t deadline = mono_ms() + RELOAD_WAIT_MS;
        int r = hap_command(cfg->haproxy.master_socket, "reload", NULL);

        if (r == -ENOENT || r == -ECONNREFUSED) {
                fprintf(stderr, "mwr-supervisor passwd: haproxy is not running (%s: %s): it reads %s when it "
                                "starts\n",
                        cfg->haproxy.master_socket, strerror(-r), cfg->haproxy.config_file);
                return 0;
        }
        if (r < 0 && r != -EPROTO) {
                fprintf(stderr, "mwr-supervisor passwd: haproxy master socket %s: %s: reload it by hand\n",
                        cfg->haproxy.master_socket, strerror(-r));
                return r;
        }
        while (mono_ms() < deadline && (now = haproxy_pid(cfg->haproxy.socket)) == before)
                usleep(50 * 1000);
        if (now == before || now < 0) {
                fprintf(stderr, "mwr-supervisor passwd: haproxy did not come back with a new worker within %d s "
                                "(is %s valid? `haproxy -c -f` says)\n",
                        RELOAD_WAIT_MS / 1000, cfg->haproxy.config_file);
                return -ETIMEDOUT;
        }
        fprintf(stderr, "mwr-supervisor passwd: haproxy reloaded with %s (worker pid %ld)\n",
                cfg->haproxy.config_file, now);
        return 0;
}

static void passwd_usage(FILE *f)
{
        fputs("usage: mwr-supervisor passwd [--config FILE] [--role viewer|admin] [--cameras ID,ID|all] USER\n"
              "       mwr-supervisor passwd [--config FILE] --delete USER\n"
              "The password is read from stdin. A new user is a viewer of every camera unless told.\n",
              f);
}

struct passwd_args {
        const char *config, *role, *user;
        char *cameras;
        bool delete;
};

static int passwd_args_parse(int argc, char **argv, const char *default_config, struct passwd_args *a)
{
        static const struct option lo[] = { { "config", required_argument, NULL, 'c' },
                                            { "role", required_argument, NULL, 'r' },
                                            { "cameras", required_argument, NULL, 'm' },
                                            { "delete", no_argument, NULL, 'd' },
                                            { "help", no_argument, NULL, 'h' },
                                            { 0 } };
        int c;

        *a = (struct passwd_args){ .config = default_config };
        optind = 1;
        while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
                switch (c) {
                case 'c': a->config = optarg; break;
                case 'r': a->role = optarg; break;
                case 'm': a->cameras = optarg; break;
                case 'd': a->delete = true; break;
                case 'h': passwd_usage(stdout); exit(0);
                default: passwd_usage(stderr); return -EINVAL;
                }
        }
        if (optind != argc - 1 || (a->delete && (a->role || a->cameras))) {
                passwd_usage(stderr);
                return -EINVAL;
        }
        a->user = argv[optind];
        return 0;
}

/* The change itself: role and cameras kept from the old entry unless told. */
static int apply(struct users *u, const struct passwd_args *a, char *err, size_t errlen)
{
        const struct user *old = NULL;
        const char *list[CONFIG_MAX_CAMERAS];
        enum user_role role = USER_VIEWER;
        char pw[USER_PASSWORD_MAX];
        size_t n = 0;
        bool all = true;
        int r;

        if (a->delete) {
                if (users_remove(u, a->user) == 0)
                        return 0;
                snprintf(err, errlen, "no user %s", a->user);
                return -ENOENT;
        }
        for (size_t i = 0; i < u->n; i++)
                if (!strcmp(u->v[i].name, a->user))
                        old = &u->v[i];
        if (a->role && users_role_parse(a->role, &role) < 0) {
                snprintf(err, errlen, "--role must be viewer or admin, not '%s'", a->role);
                return -EINVAL;
        }
        if (!a->role && old)
                role = old->role;
        if (a->cameras && strcmp(a->cameras, "all")) {
                all = false;
                if (split_cameras(a->cameras, list, &n) < 0) {
                        snprintf(err, errlen, "--cameras names more than %d cameras", CONFIG_MAX_CAMERAS);
                        return -EINVAL;
                }
        } else if (!a->cameras && old && !old->all_cameras) {
                all = false;
                for (size_t i = 0; i < old->n_cameras; i++)
                        list[n++] = old->cameras[i];
        }
        if ((r = read_password(pw)) < 0)
                return r == -ENODATA || r == -E2BIG ? -EINVAL : r;
        r = users_set(u, a->user, role, all ? NULL : list, n, pw, err, errlen);
        explicit_bzero(pw, sizeof(pw));
        return r;
}

int passwd_main(int argc, char **argv, const char *default_config)
{
        struct passwd_args a;
        struct mwr_config *cfg;
        struct users u;
        char err[CONFIG_ERR_MAX];
        int r, rc = 0;

        if (passwd_args_parse(argc, argv, default_config, &a) < 0)
                return EXIT_USAGE;
        if (config_load(a.config, &cfg, err) < 0) {
                fprintf(stderr, "mwr-supervisor: %s\n", err);
                return EXIT_USAGE;
        }
        if (users_load(cfg->auth.users_file, &u, err, sizeof(err)) < 0) {
                fprintf(stderr, "mwr-supervisor passwd: %s\n", err);
                config_free(cfg);
                return EXIT_USAGE;
        }
        if ((r = apply(&u, &a, err, sizeof(err))) < 0) {
                if (err[0] && r != -ENODATA)
                        fprintf(stderr, "mwr-supervisor passwd: %s\n", err);
                rc = r == -ENOENT || r == -EINVAL ? EXIT_USAGE : 1;
        } else if (users_save(cfg->auth.users_file, &u, err, sizeof(err)) < 0) {
                fprintf(stderr, "mwr-supervisor passwd: %s\n", err);
                rc = 1;
        } else {
                fprintf(stderr, "mwr-supervisor passwd: %s %s in %s (%zu users)\n", a.user,
                        a.delete ? "removed" : "set", cfg->auth.users_file, u.n);
                if (!cfg->haproxy.config_file)
                        fprintf(stderr, "mwr-supervisor passwd: haproxy.config_file is not set: regenerate "
                                        "haproxy.cfg (mwr-supervisor proxy-config) and reload haproxy\n");
                else if (write_haproxy_cfg(cfg, &u) < 0)
                        rc = 1;
                else if (!cfg->haproxy.master_socket)
                        fprintf(stderr, "mwr-supervisor passwd: %s rewritten; haproxy.master_socket is not set: "
                                        "reload haproxy (systemctl reload haproxy)\n",
                                cfg->haproxy.config_file);
                else if (reload_haproxy(cfg) < 0)
                        rc = 1;
        }
        users_free(&u);
        config_free(cfg);
        return rc;
}
