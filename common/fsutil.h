/* fsutil: small file-system helpers both daemons use. */
#ifndef MWR_COMMON_FSUTIL_H
#define MWR_COMMON_FSUTIL_H

/* mkdir -p with mode 0755.  0 or -errno. */
int fs_mkdir_p(const char *path);

#endif
