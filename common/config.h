/* config: the one JSON config file of mwr (docs/interface.md), parsed once
 * into an immutable struct.  Unknown keys, wrong types and out-of-range values
 * are errors whose message names the file, the key path and, for syntax
 * errors, the line.  Every string in the struct is owned by it. */
#ifndef MWR_COMMON_CONFIG_H
#define MWR_COMMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_FILE_MAX_BYTES (1 << 20) /* a config larger than 1 MiB is refused */
#define CONFIG_MAX_CAMERAS 64
#define CONFIG_ID_MAX 32 /* camera ids: [A-Za-z0-9_-]{1,31} */
#define CONFIG_URL_MAX 1024
#define CONFIG_ERR_MAX 512

enum config_transport { CONFIG_TRANSPORT_TCP, CONFIG_TRANSPORT_UDP };

struct config_camera {
        char id[CONFIG_ID_MAX];
        char *url;
        bool enabled;
        enum config_transport transport;
        int max_sessions;     /* RTSP sessions the camera allows (0: no limit known) */
        int auth_retry_max_s; /* a refused login is retried at most this far apart */
};

struct mwr_config {
        char *path; /* the file it came from */
        char *storage_dir;
        char *db_path;
        int segment_seconds;
        struct config_camera cameras[CONFIG_MAX_CAMERAS];
        size_t n_cameras;
        struct {
                char *binary;
                char *bind;
                uint16_t ports[2];
                bool allow_remote; /* a bind address that is not loopback is refused without it */
        } worker;
        struct {
                char *socket;
                char *backend;
                char *servers[2];
                uint16_t frontend_port, stats_port;
                char *bind;         /* the frontend's and stats page's address (default: worker.bind) */
                char *tls_cert;     /* PEM (certificate + key) the frontend serves TLS with; NULL: none */
                bool plain_http;    /* plain HTTP on the frontend: only when the config says so */
                char *socket_user;  /* owner of the admin socket (NULL: whoever runs haproxy) */
                char *run_as;       /* haproxy's `user`/`group` once its sockets are open */
                char *config_file;  /* where `passwd` rewrites haproxy.cfg (NULL: not managed) */
                char *master_socket; /* haproxy's master CLI, to reload it after `passwd` (NULL: none) */
        } haproxy;
        struct {
                char *users_file; /* users, roles, cameras and password hashes (supervisor/users.h) */
                bool required;    /* false: the frontend asks no password (explicit opt-out) */
        } auth;
        struct {
                int overlap_seconds, health_timeout_seconds, stop_timeout_seconds;
        } deploy;
        char *control_socket;
        struct {
                uint64_t min_free_bytes;  /* below this, oldest segments are deleted */
                uint64_t max_total_bytes; /* 0: no limit */
                int retention_days;       /* 0: keep forever */
                bool require_mountpoint;  /* storage_dir must be a mount point: never fill the root fs */
        } disk;
        struct {
                uint16_t metrics_port; /* 0: no HTTP metrics (mwr-supervisor metrics still works) */
                bool hot_standby;      /* "standby": "hot": both slots record all the time */
                int standby_retention_s; /* hot: one of two copies is deleted once this old (0: never) */
        } supervisor;
};

/* Parse path.  0, or -errno with a one-line reason in err (naming the file,
 * and the key or line).  -EINVAL for content errors, -ENOENT etc. for I/O. */
int config_load(const char *path, struct mwr_config **out, char err[CONFIG_ERR_MAX]);

/* The same from a string already in memory (name is used in messages). */
int config_parse(const char *text, size_t len, const char *name, struct mwr_config **out,
                 char err[CONFIG_ERR_MAX]);

void config_free(struct mwr_config *c);

const struct config_camera *config_camera_find(const struct mwr_config *c, const char *id);

/* url with any user:password@ replaced by "***@", for logs and the DB. */
void config_url_redact(const char *url, char *out, size_t outlen);

#endif
