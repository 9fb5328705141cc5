/* storage: is the storage directory there to write into?  A dangling link,
 * an unmounted or vanished disk, a failing statvfs: "unavailable", which
 * means nothing may be deleted (a missing file proves nothing) and nothing
 * recorded until it is back.  With disk.require_mountpoint the directory
 * must be a mount point of its own, so an unmounted disk never fills the
 * root filesystem. */
#ifndef MWR_WORKER_STORAGE_H
#define MWR_WORKER_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 0 with the bytes free to us, or -errno with the reason in why
 * ("<dir>: No such file or directory", "<dir>: not a mount point"). */
int storage_probe(const char *dir, bool require_mountpoint, uint64_t *free_bytes, char *why, size_t len);

#endif
