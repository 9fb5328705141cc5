/* avio_fd: a libavformat output context that writes to a file descriptor
 * the caller owns, with a buffer of the caller's size.  avio_open() gives a
 * file a 1 MB buffer per context (a third of the worker's memory per camera
 * before this) and opens the path again; here the fd is the one already
 * created (O_EXCL, locked) and the buffer fits one write of a fragment. */
#ifndef MWR_COMMON_AVIO_FD_H
#define MWR_COMMON_AVIO_FD_H

#include <stddef.h>

#include <libavformat/avio.h>

/* *fd must stay valid (and unchanged) while the context lives.  0 or
 * AVERROR(ENOMEM). */
int avio_fd_open(int *fd, size_t buffer_size, AVIOContext **out);

/* Flush and free the context and its buffer (NULL-safe); the fd stays open. */
void avio_fd_close(AVIOContext **pb);

#endif
