/* www: the web UI's static files (www/ in the tree), compiled into the
 * worker by scripts/embed-www.py and served under /ui/. */
#ifndef MWR_WORKER_WWW_H
#define MWR_WORKER_WWW_H

#include <stddef.h>

struct www_file {
        const char *path; /* "/ui/timeline.html" */
        const char *type; /* Content-Type */
        const unsigned char *data;
        size_t len;
};

extern const struct www_file www_files[];
extern const size_t www_n_files;

/* The file for a request path: "/ui" and "/ui/" are index.html; NULL for
 * anything else not in the table (no path is ever read from disk). */
const struct www_file *www_find(const char *url);

#endif
