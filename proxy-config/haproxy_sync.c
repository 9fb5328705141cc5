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

/* All of buf into fd: a short write goes on where it stopped, EINTR is
 * retried.  0 or -errno; a write that makes no progress and gives no reason
 * is -EIO rather than a loop. */
static int write_all(int fd, const char *buf, size_t len)
{
        while (len > 0) {
                ssize_t n = write(fd, buf, len);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -EIO;
                buf += n;
                len -= (size_t)n;
        }
        return 0;
}

/* Replace path by text: written to path.tmp, fsync'ed, then renamed over
 * path, so a reader (haproxy at its next start) sees the old file or the
 * whole new one.  On failure the temp file is removed, path is untouched
 * and err names the file, the step and the errno. */
static int state_file_replace(const char *path, const char *text, char *err, size_t errlen)
{
        char tmp[PATH_MAX + 8];
        const char *step = "open";
        int fd, e;

        if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
                snprintf(err, errlen, "%s: %s", path, strerror(ENAMETOOLONG));
                return -ENAMETOOLONG;
        }
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
        if (fd < 0) {
                e = -errno;
                goto fail;
        }
        step = "write";
        if ((e = write_all(fd, text, strlen(text))) == 0) {
                step = "fsync";
                e = fsync(fd) < 0 ? -errno : 0;
        }
        if (close(fd) < 0 && e == 0) {
                step = "close";
                e = -errno;
        }
        if (e == 0) {
                step = "rename";
                e = rename(tmp, path) < 0 ? -errno : 0;
        }
        if (e == 0)
                return 0;
fail:
        snprintf(err, errlen, "%s: %s: %s", tmp, step, strerror(-e));
        unlink(tmp);
        return e;
}

int haproxy_save_state(const struct mwr_config *cfg, char *err, size_t errlen)
{
        char path[PATH_MAX], *text = NULL;
        int e;

        if ((e = haproxy_cfg_state_path(cfg, path, sizeof(path))) < 0) {
                snprintf(err, errlen, "state file path: %s", strerror(-e));
                return e;
        }
        if ((e = hap_command(cfg->haproxy.socket, "show servers state", &text)) < 0) {
                snprintf(err, errlen, "%s: show servers state: %s", cfg->haproxy.socket, strerror(-e));
                return e;
        }
        e = state_file_replace(path, text, err, errlen);
        free(text);
        return e;
}
