/* haproxy_sync: see haproxy_sync.h. */
#include "proxy-config/haproxy_sync.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy-config/haproxy_cfg.h"
#include "proxy-config/haproxy_runtime.h"

int haproxy_sync(const struct mwr_config *cfg, int active, bool *changed, char *err, size_t errlen)
{
        struct hap_server srv[4];
        size_t n = 0;
        int e;

        if (changed)
                *changed = false;
        if ((e = hap_show_servers(cfg->haproxy.socket, cfg->haproxy.backend, srv, 4, &n)) < 0) {
                snprintf(err, errlen, "%s: %s", cfg->haproxy.socket, strerror(-e));
                return e;
        }
        for (int i = 0; i < 2; i++) {
                enum hap_admin want = i == active ? HAP_READY : HAP_MAINT;

                for (size_t k = 0; k < n; k++) {
                        if (strcmp(srv[k].name, cfg->haproxy.servers[i]) != 0 || srv[k].admin == (int)want)
                                continue;
                        if ((e = hap_set_state(cfg->haproxy.socket, cfg->haproxy.backend, srv[k].name, want, err,
                                               errlen)) < 0)
                                return e;
                        if (changed)
                                *changed = true;
                }
        }
        return 0;
}

int haproxy_save_state(const struct mwr_config *cfg, char *err, size_t errlen)
{
        char path[PATH_MAX], tmp[PATH_MAX + 8], *text = NULL;
        size_t len;
        int fd, e;

        if ((e = haproxy_cfg_state_path(cfg, path, sizeof(path))) < 0) {
                snprintf(err, errlen, "state file path: %s", strerror(-e));
                return e;
        }
        if ((e = hap_command(cfg->haproxy.socket, "show servers state", &text)) < 0) {
                snprintf(err, errlen, "%s: show servers state: %s", cfg->haproxy.socket, strerror(-e));
                return e;
        }
        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        len = strlen(text);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
        e = fd < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) < 0 ? -errno : 0;
        if (fd >= 0 && close(fd) < 0 && e == 0)
                e = -errno;
        if (e == 0 && rename(tmp, path) < 0)
                e = -errno;
        free(text);
        if (e < 0) {
                snprintf(err, errlen, "%s: %s", path, strerror(-e));
                unlink(tmp);
        }
        return e;
}
