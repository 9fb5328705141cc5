/* users: who may pass haproxy's door — the users file (`auth.users_file`),
 * JSON the supervisor's `passwd` writes and `proxy-config` renders into
 * haproxy's userlist.  It holds SHA-512-crypt hashes, never a password, and
 * is written whole (temp file, fsync, rename) with mode 0600.
 *   {"users": [{"name": "alice", "role": "viewer", "cameras": ["cam1"],
 *               "hash": "$6$..."}]}
 * "cameras" absent: every camera.  Roles: viewer (footage and the API),
 * admin (also the stats page and /metrics). */
#ifndef MWR_PROXY_USERS_H
#define MWR_PROXY_USERS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/config.h"

#define USERS_MAX 256
#define USERS_FILE_MAX_BYTES (4 << 20)
#define USER_NAME_MAX 65 /* [A-Za-z0-9][A-Za-z0-9_.-]{0,63} */
#define USER_HASH_MAX 256
#define USER_PASSWORD_MAX 1024

enum user_role { USER_VIEWER, USER_ADMIN };

struct user {
        char name[USER_NAME_MAX];
        enum user_role role;
        bool all_cameras; /* no "cameras" list: every camera, present and future */
        size_t n_cameras;
        char cameras[CONFIG_MAX_CAMERAS][CONFIG_ID_MAX];
        char hash[USER_HASH_MAX];
};

struct users {
        struct user *v;
        size_t n;
};

bool users_name_ok(const char *name);
const char *users_role_name(enum user_role r);
int users_role_parse(const char *s, enum user_role *out);

/* A missing file is an empty list (0).  Errors name the file and the entry. */
int users_load(const char *path, struct users *out, char *err, size_t errlen);

/* Written whole, 0600 whatever the umask; the old file's owner is kept
 * when we are root, so a root `passwd` does not lock the service out. */
int users_save(const char *path, const struct users *u, char *err, size_t errlen);

/* Add the user or replace its role, cameras and password.  cams == NULL:
 * every camera.  The password is hashed here (SHA-512-crypt, random salt). */
int users_set(struct users *u, const char *name, enum user_role role, const char *const *cams, size_t n_cams,
              const char *password, char *err, size_t errlen);

/* 0, or -ENOENT when there is no such user. */
int users_remove(struct users *u, const char *name);

/* "$6$<salt>$<hash>" of password in out. */
int users_hash(const char *password, char out[USER_HASH_MAX]);

void users_free(struct users *u);

#endif
