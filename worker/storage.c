/* storage: see storage.h.  Cheap enough to run before every deletion. */
#include "worker/storage.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

static int fail(int e, const char *dir, const char *what, char *why, size_t len)
{
        snprintf(why, len, "%s: %s", dir, what ? what : strerror(e));
        return -e;
}

/* dir's filesystem differs from its parent's, or dir is "/". */
static int mount_point(const char *dir, const struct stat *st, char *why, size_t len)
{
        char parent[PATH_MAX];
        struct stat pst;

        if (snprintf(parent, sizeof(parent), "%s/..", dir) >= (int)sizeof(parent))
                return fail(ENAMETOOLONG, dir, NULL, why, len);
        if (stat(parent, &pst) < 0)
                return fail(errno, dir, NULL, why, len);
        if (pst.st_dev == st->st_dev && pst.st_ino != st->st_ino)
                return fail(ENODEV, dir, "not a mount point (disk.require_mountpoint): is the disk mounted?", why,
                            len);
        return 0;
}

int storage_probe(const char *dir, bool require_mountpoint, uint64_t *free_bytes, char *why, size_t len)
{
        struct statvfs vfs;
        struct stat st;
        int e;

        *free_bytes = 0;
        if (stat(dir, &st) < 0)
                return fail(errno, dir, NULL, why, len);
        if (!S_ISDIR(st.st_mode))
                return fail(ENOTDIR, dir, NULL, why, len);
        if (require_mountpoint && (e = mount_point(dir, &st, why, len)) < 0)
                return e;
        if (statvfs(dir, &vfs) < 0)
                return fail(errno, dir, NULL, why, len);
        *free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
        snprintf(why, len, "%s: ok", dir);
        return 0;
}
