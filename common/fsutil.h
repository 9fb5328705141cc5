/* fsutil: small file-system helpers both daemons use, and the modes of what
 * mwr creates: nothing for others, whatever the umask (which can only take
 * bits away).  docs/security.md lists them. */
#ifndef MWR_COMMON_FSUTIL_H
#define MWR_COMMON_FSUTIL_H

#define FS_DIR_MODE 0750  /* storage, camera and day directories, the runtime dir */
#define FS_FILE_MODE 0640 /* segments, exports, state files: the group may read */

/* mkdir -p; what it creates is FS_DIR_MODE, what exists is left alone (it may
 * be /var or an admin's).  0 or -errno. */
int fs_mkdir_p(const char *path);

#endif
