/* fsutil: see fsutil.h. */
#include "common/fsutil.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

int fs_mkdir_p(const char *path)
{
        char tmp[PATH_MAX];
        size_t len = strlen(path);

        if (len == 0 || len >= sizeof(tmp))
                return -ENAMETOOLONG;
        memcpy(tmp, path, len + 1);
        for (char *p = tmp + 1; *p; p++)
                if (*p == '/') {
                        *p = '\0';
                        if (mkdir(tmp, FS_DIR_MODE) < 0 && errno != EEXIST)
                                return -errno;
                        *p = '/';
                }
        if (mkdir(tmp, FS_DIR_MODE) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}
