/* haproxy_cfg: renders the haproxy.cfg of an mwr config as text.  The file is
 * generated, never edited, so each non-obvious line carries a comment in the
 * output saying why it is there.  Every value is checked to be one plain
 * haproxy word before anything is written: haproxy would split a value with a
 * space, cut it at '#' or expand "$" in quotes, and a silently different
 * config is worse than a refused one. */
#include "proxy-config/haproxy_cfg.h"
#include "proxy-config/haproxy_name.h"

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

static int cfg_check(const struct mwr_config *cfg, int active, const char *state_path)
{
        if (active != 0 && active != 1)
                return -EINVAL;
        if (!word_ok(cfg->haproxy.socket) || !word_ok(state_path) || !word_ok(cfg->worker.bind) ||
            !haproxy_name_ok(cfg->haproxy.backend) || !haproxy_name_ok(cfg->haproxy.servers[0]) ||
            !haproxy_name_ok(cfg->haproxy.servers[1]))
                return -EINVAL;
        if (!strcmp(cfg->haproxy.servers[0], cfg->haproxy.servers[1]) || !ports_distinct(cfg))
                return -EINVAL;
        return 0;
}

static void write_global(const struct mwr_config *cfg, const char *state_path, FILE *f)
{
        fprintf(f, "global\n"
                   "        # The supervisor switches traffic over this socket: level admin for\n"
                   "        # `set server ... state`, mode 660 for owner and group only, expose-fd\n"
                   "        # listeners so a reloaded haproxy takes the bound ports over without\n"
                   "        # refusing a connection.\n"
                   "        stats socket %s mode 660 level admin expose-fd listeners\n"
                   "        # The supervisor dumps `show servers state` here before a reload; read\n"
                   "        # back at start, it keeps the active slot instead of the one below.\n"
                   "        server-state-file %s\n\n",
                cfg->haproxy.socket, state_path);
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

static void write_frontend(const struct mwr_config *cfg, const char *front, FILE *f)
{
        fprintf(f, "frontend mwr_front\n"
                   "        bind %s\n"
                   "        default_backend %s\n\n",
                front, cfg->haproxy.backend);
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
        fputc('\n', f);
}

static void write_stats(const char *stats, FILE *f)
{
        fprintf(f, "listen stats\n"
                   "        bind %s\n"
                   "        stats enable\n"
                   "        stats uri /stats\n"
                   "        # The page reloads itself, fast enough to watch a switch happen.\n"
                   "        stats refresh 2s\n",
                stats);
}

/* Errors of the fprintf calls stick in the stream: checked once, after a
 * flush, so a full disk shows up here and not at the caller's fclose. */
int haproxy_cfg_write(const struct mwr_config *cfg, int active, FILE *f)
{
        char state_path[4096], front[ADDR_MAX], stats[ADDR_MAX], addr[2][ADDR_MAX];
        int r;

        if ((r = haproxy_cfg_state_path(cfg, state_path, sizeof(state_path))) < 0 ||
            (r = cfg_check(cfg, active, state_path)) < 0)
                return r;
        if ((r = format_addr(cfg->worker.bind, cfg->haproxy.frontend_port, front, sizeof(front))) < 0 ||
            (r = format_addr(cfg->worker.bind, cfg->haproxy.stats_port, stats, sizeof(stats))) < 0 ||
            (r = format_addr(cfg->worker.bind, cfg->worker.ports[0], addr[0], sizeof(addr[0]))) < 0 ||
            (r = format_addr(cfg->worker.bind, cfg->worker.ports[1], addr[1], sizeof(addr[1]))) < 0)
                return r;

        fputs("# haproxy.cfg for mwr, generated by `mwr-supervisor proxy-config`: edit the mwr\n"
              "# config and regenerate rather than editing this file.\n",
              f);
        write_global(cfg, state_path, f);
        write_defaults(f);
        write_frontend(cfg, front, f);
        write_backend(cfg, active, addr, f);
        write_stats(stats, f);
        if (fflush(f) != 0 || ferror(f))
                return -EIO;
        return 0;
}
