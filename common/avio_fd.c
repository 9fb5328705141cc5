/* avio_fd: see avio_fd.h. */
#include "common/avio_fd.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavutil/error.h>
#include <libavutil/mem.h>

static int fd_write(void *opaque, uint8_t *buf, int size) /* const from FFmpeg 6.1 */
{
        int fd = *(const int *)opaque;
        int done = 0;

        while (done < size) {
                ssize_t n = write(fd, buf + done, (size_t)(size - done));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return AVERROR(errno);
                done += (int)n;
        }
        return size;
}

static int64_t fd_seek(void *opaque, int64_t offset, int whence)
{
        int fd = *(const int *)opaque;
        struct stat st;
        off_t r;

        if (whence == AVSEEK_SIZE)
                return fstat(fd, &st) < 0 ? AVERROR(errno) : st.st_size;
        r = lseek(fd, offset, whence & ~AVSEEK_FORCE);
        return r < 0 ? AVERROR(errno) : r;
}

int avio_fd_open(int *fd, size_t buffer_size, AVIOContext **out)
{
        uint8_t *buf = av_malloc(buffer_size);

        *out = buf ? avio_alloc_context(buf, (int)buffer_size, 1, fd, NULL, fd_write, fd_seek) : NULL;
        if (!*out) {
                av_free(buf);
                return AVERROR(ENOMEM);
        }
        return 0;
}

void avio_fd_close(AVIOContext **pb)
{
        if (!*pb)
                return;
        avio_flush(*pb);
        av_freep(&(*pb)->buffer);
        avio_context_free(pb);
}
