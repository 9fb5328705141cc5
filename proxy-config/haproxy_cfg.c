/* haproxy_cfg: renders the haproxy.cfg of an mwr config as text.  The file is
 * generated, never edited, so each non-obvious line carries a comment in the
 * output saying why it is there.  Every value is checked to be one plain
 * haproxy word before anything is written: haproxy would split a value with a
 * space, cut it at '#' or expand "$" in quotes, and a silently different
 * config is worse than a refused one. */
#include "proxy-config/haproxy_cfg.h"
#include "proxy-config/haproxy_name.h"
#include "proxy-config/users.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define STATE_FILE_NAME "haproxy.state"
#define ADDR_MAX 128 /* "[" + worker.bind (< 64) + "]:" + port */

/* A value haproxy reads back as the same single word, unquoted. */
static bool word_ok(const char *s)
{
        if (!s || !*s)
                return false;
        for (; *s; s++)
                if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f || strchr("#\"'\\$;", *s))
                        return false;
        return true;
}

int haproxy_cfg_state_path(const struct mwr_config *cfg, char *out, size_t len)
{
        const char *sock = cfg->haproxy.socket, *slash = strrchr(sock, '/');
        int n;

        if (!slash)
                n = snprintf(out, len, "./%s", STATE_FILE_NAME);
        else if (slash == sock) /* "/haproxy.sock": no "//haproxy.state" */
                n = snprintf(out, len, "/%s", STATE_FILE_NAME);
        else
                n = snprintf(out, len, "%.*s/%s", (int)(slash - sock), sock, STATE_FILE_NAME);
        if (n < 0)
                return -EINVAL;
        return (size_t)n < len ? 0 : -ENAMETOOLONG;
}

/* "addr:port", with an IPv6 address in brackets so its colons are not
 * mistaken for the port separator. */
static int format_addr(const char *host, unsigned port, char *out, size_t len)
{
        int n = snprintf(out, len, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);

        return n >= 0 && (size_t)n < len ? 0 : -EINVAL;
}

/* Two listeners on one port would not fail: haproxy binds with SO_REUSEPORT,
 * so the kernel would share connections between them (or a worker would fail
 * to bind its port).  Refuse instead. */
static bool ports_distinct(const struct mwr_config *cfg)
{
        const unsigned p[4] = { cfg->haproxy.frontend_port, cfg->haproxy.stats_port, cfg->worker.ports[0],
                                cfg->worker.ports[1] };

        for (int i = 0; i < 4; i++)
                for (int j = i + 1; j < 4; j++)
                        if (p[i] == p[j])
                                return false;
        return true;
}

static bool opt_word_ok(const char *s)
{
        return !s || word_ok(s);
}

static int cfg_check(const struct mwr_config *cfg, const struct users *users, int active, const char *state_path,
                     const char **why)
{
        *why = "a value is not one plain haproxy word (space, '#', quote, '$', ';' or '\\')";
        if (active != 0 && active != 1)
                return -EINVAL;
        if (!word_ok(cfg->haproxy.socket) || !word_ok(state_path) || !word_ok(cfg->worker.bind) ||
            !word_ok(cfg->haproxy.bind) || !opt_word_ok(cfg->haproxy.tls_cert) ||
            !opt_word_ok(cfg->haproxy.socket_user) || !word_ok(cfg->haproxy.run_as) || !haproxy_name_ok(cfg->haproxy.backend) ||
            !haproxy_name_ok(cfg->haproxy.servers[0]) || !haproxy_name_ok(cfg->haproxy.servers[1]))
                return -EINVAL;
        *why = "the two haproxy.servers are one name, or two of the frontend, stats and worker ports coincide";
        if (!strcmp(cfg->haproxy.servers[0], cfg->haproxy.servers[1]) || !ports_distinct(cfg))
                return -EINVAL;
        *why = "the frontend serves footage: set haproxy.tls_cert (a PEM with certificate and key), or "
               "haproxy.plain_http true to serve it unencrypted";
        if (!cfg->haproxy.tls_cert && !cfg->haproxy.plain_http)
                return -EINVAL;
        *why = "haproxy.tls_cert and haproxy.plain_http are both set: choose one";
        if (cfg->haproxy.tls_cert && cfg->haproxy.plain_http)
                return -EINVAL;
        *why = "auth.required is true but no users file was read";
        if (cfg->auth.required && !users)
                return -EINVAL;
        *why = NULL;
        return 0;
}

static void write_global(const struct mwr_config *cfg, const char *state_path, FILE *f)
{
        fprintf(f, "global\n"
                   "        # The supervisor switches traffic over this socket: level admin for\n"
                   "        # `set server ... state`, owned by the service user and for it alone\n"
                   "        # (level admin can disable every server), expose-fd listeners so a\n"
                   "        # reloaded haproxy takes the bound ports over without refusing a\n"
                   "        # connection.\n"
                   "        stats socket %s mode %s level admin%s%s expose-fd listeners\n"
                   "        # The supervisor dumps `show servers state` here before a reload; read\n"
                   "        # back at start, it keeps the active slot instead of the one below.\n"
                   "        server-state-file %s\n"
                   "        # Sockets, certificate and state file are opened as root; then haproxy\n"
                   "        # serves as this user (haproxy.run_as).\n"
                   "        user %s\n"
                   "        group %s\n\n",
                cfg->haproxy.socket, cfg->haproxy.socket_user ? "600" : "660",
                cfg->haproxy.socket_user ? " user " : "", cfg->haproxy.socket_user ? cfg->haproxy.socket_user : "",
                state_path, cfg->haproxy.run_as, cfg->haproxy.run_as);
}

static void write_defaults(FILE *f)
{
        fputs("defaults\n"
              "        mode http\n"
              "        # Loopback connects are instant; 2s only bounds a wedged worker.\n"
              "        timeout connect 2s\n"
              "        timeout client 30s\n"
              "        timeout server 30s\n"
              "        # A client gets 10s to send its request headers (slow clients hold no slot longer).\n"
              "        timeout http-request 10s\n"
              "        # Server states from the state file win over `disabled` below when it exists.\n"
              "        load-server-state-from-file global\n\n",
              f);
}

/* "acl NAME var(txn.user) -m str u1 u2 ...": the users for whom pred holds
 * (an ACL with no pattern would be a config error: always_false instead). */
static void write_user_acl(FILE *f, const char *name, const struct users *u, bool (*pred)(const struct user *))
{
        size_t n = 0;

        fprintf(f, "        acl %s", name);
        for (size_t i = 0; i < u->n; i++)
                if (pred(&u->v[i]))
                        fprintf(f, n++ ? " %s" : " var(txn.user) -m str %s", u->v[i].name);
        fputs(n ? "\n" : " always_false\n", f);
}

static bool is_admin(const struct user *u)
{
        return u->role == USER_ADMIN;
}

static bool sees_all(const struct user *u)
{
        return u->all_cameras;
}

/* One basic-auth check per request (a SHA-512-crypt costs ~1 ms): the user
 * name lands in txn.user, and every later rule reads the variable. */
static void write_auth(FILE *f)
{
        fputs("        # Every request names a user of auth.users_file with its password: the\n"
              "        # name is kept in txn.user (one crypt per request), else 401.\n"
              "        http-request set-var(txn.user) http_auth_group(mwr_users)\n"
              "        http-request auth realm mwr unless { var(txn.user) -m found }\n",
              f);
}

static void write_bind(const struct mwr_config *cfg, const char *addr, FILE *f)
{
        if (cfg->haproxy.tls_cert)
                fprintf(f, "        bind %s ssl crt %s\n", addr, cfg->haproxy.tls_cert);
        else
                fprintf(f, "        # haproxy.plain_http: footage and passwords cross the network unencrypted.\n"
                           "        bind %s\n",
                        addr);
}

static void write_frontend(const struct mwr_config *cfg, const struct users *u, const char *front, FILE *f)
{
        fputs("frontend mwr_front\n", f);
        write_bind(cfg, front, f);
        fputs("        # Who asks is the worker's to log (the audit line); a client never says it.\n"
              "        http-request del-header X-Mwr-User\n"
              "        http-request del-header X-Mwr-Cameras\n"
              "        http-request set-header X-Mwr-Client %[src]\n",
              f);
        if (!cfg->auth.required) {
                fputs("        # auth.required false: anyone who reaches this port gets every camera.\n", f);
        } else {
                write_auth(f);
                write_user_acl(f, "mwr_admin", u, is_admin);
                write_user_acl(f, "mwr_all_cameras", u, sees_all);
                fputs("        # Prometheus' view of the worker is the admin's.\n"
                      "        http-request deny deny_status 403 if { path /metrics } !mwr_admin\n"
                      "        # The camera a path names (/api/cameras/{id}/...): a user with a camera\n"
                      "        # list gets only those, compared as sent (an escaped id matches none).\n"
                      "        http-request set-var(txn.cam) path,field(4,/) if { path_beg /api/cameras/ }\n",
                      f);
                for (size_t i = 0; i < u->n; i++) {
                        if (u->v[i].all_cameras)
                                continue;
                        fprintf(f, "        http-request deny deny_status 403 if { var(txn.user) -m str %s } "
                                   "{ var(txn.cam) -m found }",
                                u->v[i].name);
                        if (u->v[i].n_cameras) {
                                fputs(" !{ var(txn.cam) -m str", f);
                                for (size_t k = 0; k < u->v[i].n_cameras; k++)
                                        fprintf(f, " %s", u->v[i].cameras[k]);
                                fputs(" }", f);
                        }
                        fputc('\n', f);
                }
                fputs("        # The worker checks what a path does not show (media by segment id,\n"
                      "        # ?camera= queries) against the same list, and logs who asked.\n"
                      "        http-request set-header X-Mwr-User %[var(txn.user)]\n"
                      "        http-request set-header X-Mwr-Cameras * if mwr_all_cameras\n",
                      f);
                for (size_t i = 0; i < u->n; i++) {
                        if (u->v[i].all_cameras)
                                continue;
                        fputs("        http-request set-header X-Mwr-Cameras ", f);
                        if (!u->v[i].n_cameras)
                                fputc(',', f); /* no camera at all */
                        for (size_t k = 0; k < u->v[i].n_cameras; k++)
                                fprintf(f, "%s%s", k ? "," : "", u->v[i].cameras[k]);
                        fprintf(f, " if { var(txn.user) -m str %s }\n", u->v[i].name);
                }
        }
        fprintf(f, "        default_backend %s\n\n", cfg->haproxy.backend);
}

static void write_userlist(const struct users *u, FILE *f)
{
        fputs("# auth.users_file, rendered: SHA-512-crypt hashes, never a password.\n"
              "userlist mwr_users\n",
              f);
        for (size_t i = 0; i < u->n; i++)
                fprintf(f, "        user %s password %s\n", u->v[i].name, u->v[i].hash);
        fputc('\n', f);
}

static void write_backend(const struct mwr_config *cfg, int active, char addr[2][ADDR_MAX], FILE *f)
{
        fprintf(f, "backend %s\n"
                   "        # A worker takes traffic only while its /health answers 200\n"
                   "        # (healthy or degraded; 503 otherwise).\n"
                   "        option httpchk GET /health\n"
                   "        http-check expect status 200\n"
                   "        # Checked every second, out after 2 failures, back after 1 success:\n"
                   "        # a dead worker leaves rotation within about 2s.\n"
                   "        default-server inter 1s fall 2 rise 1\n"
                   "        # A request that meets a stopping worker (refused, closed without an\n"
                   "        # answer, 503) is retried, and redispatch sends the retry to the other\n"
                   "        # server: a switch fails no request.\n"
                   "        retry-on conn-failure empty-response 503\n"
                   "        retries 3\n"
                   "        option redispatch\n",
                cfg->haproxy.backend);
        for (int i = 0; i < 2; i++) {
                if (i == active)
                        fprintf(f, "        # %s: the active slot when haproxy starts without a state file.\n",
                                cfg->haproxy.servers[i]);
                else
                        fprintf(f, "        # %s: starts in maint (disabled); the supervisor makes it ready for a deploy.\n",
                                cfg->haproxy.servers[i]);
                fprintf(f, "        server %s %s check%s\n", cfg->haproxy.servers[i], addr[i],
                        i == active ? "" : " disabled");
        }
        if (cfg->supervisor.hot_standby) {
                fputs("        # Hot standby, haproxy's own backstop: the same two workers as backups,\n"
                      "        # used only while neither server above can take traffic (the active\n"
                      "        # died while no supervisor ran, the standby is in maint). Then the first\n"
                      "        # whose /health answers 200 does, until a supervisor switches again.\n",
                      f);
                for (int i = 0; i < 2; i++)
                        fprintf(f, "        server %s" HAP_BACKSTOP_SUFFIX " %s check backup\n",
                                cfg->haproxy.servers[i], addr[i]);
        }
        fputc('\n', f);
}

static void write_stats(const struct mwr_config *cfg, const struct users *u, const char *stats, FILE *f)
{
        fputs("listen stats\n", f);
        write_bind(cfg, stats, f);
        if (cfg->auth.required) {
                write_auth(f);
                write_user_acl(f, "mwr_admin", u, is_admin);
                fputs("        # The stats page can see every server: admins only.\n"
                      "        http-request deny deny_status 403 unless mwr_admin\n",
                      f);
        }
        fputs("        stats enable\n"
              "        stats uri /stats\n"
              "        # The page reloads itself, fast enough to watch a switch happen.\n"
              "        stats refresh 2s\n",
              f);
}

/* Errors of the fprintf calls stick in the stream: checked once, after a
 * flush, so a full disk shows up here and not at the caller's fclose. */
int haproxy_cfg_write(const struct mwr_config *cfg, const struct users *users, int active, FILE *f,
                      const char **why)
{
        char state_path[4096], front[ADDR_MAX], stats[ADDR_MAX], addr[2][ADDR_MAX];
        const char *dummy;
        int r;

        if (!why)
                why = &dummy;
        *why = "a path is too long";
        if ((r = haproxy_cfg_state_path(cfg, state_path, sizeof(state_path))) < 0 ||
            (r = cfg_check(cfg, users, active, state_path, why)) < 0)
                return r;
        *why = "an address is too long";
        if ((r = format_addr(cfg->haproxy.bind, cfg->haproxy.frontend_port, front, sizeof(front))) < 0 ||
            (r = format_addr(cfg->haproxy.bind, cfg->haproxy.stats_port, stats, sizeof(stats))) < 0 ||
            (r = format_addr(cfg->worker.bind, cfg->worker.ports[0], addr[0], sizeof(addr[0]))) < 0 ||
            (r = format_addr(cfg->worker.bind, cfg->worker.ports[1], addr[1], sizeof(addr[1]))) < 0)
                return r;

        fputs("# haproxy.cfg for mwr, generated by `mwr-supervisor proxy-config`: edit the mwr\n"
              "# config and regenerate rather than editing this file.\n",
              f);
        write_global(cfg, state_path, f);
        write_defaults(f);
        if (cfg->auth.required)
                write_userlist(users, f);
        write_frontend(cfg, users, front, f);
        write_backend(cfg, active, addr, f);
        write_stats(cfg, users, stats, f);
        *why = "cannot write the text";
        if (fflush(f) != 0 || ferror(f))
                return -EIO;
        *why = NULL;
        return 0;
}
