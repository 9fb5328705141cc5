/* users: the users file, read and written with cJSON; passwords hashed with
 * libxcrypt (crypt_gensalt_rn draws the salt from the kernel's random pool). */
#include "proxy-config/users.h"

#include <cJSON.h>
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const role_names[] = { [USER_VIEWER] = "viewer", [USER_ADMIN] = "admin" };

bool users_name_ok(const char *name)
{
        size_t l = strlen(name);

        if (l == 0 || l >= USER_NAME_MAX)
                return false;
        for (size_t i = 0; i < l; i++) {
                char ch = name[i];
                bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
                if (!alnum && (i == 0 || !strchr("_.-", ch))) /* haproxy reads "-x" as an option */
                        return false;
        }
        return true;
}

const char *users_role_name(enum user_role r)
{
        return role_names[r];
}

int users_role_parse(const char *s, enum user_role *out)
{
        for (int i = 0; i < 2; i++)
                if (!strcmp(s, role_names[i])) {
                        *out = (enum user_role)i;
                        return 0;
                }
        return -EINVAL;
}

/* crypt(3)'s alphabet, and the "$id$" form: what haproxy's userlist reads
 * back as one word. */
static bool hash_ok(const char *h)
{
        if (h[0] != '$' || strlen(h) >= USER_HASH_MAX)
                return false;
        return strspn(h, "$./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") == strlen(h);
}

static bool camera_id_ok(const char *s)
{
        size_t l = strlen(s);

        return l > 0 && l < CONFIG_ID_MAX &&
               strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == l;
}

static int set_cameras(struct user *u, const char *const *cams, size_t n, char *err, size_t errlen)
{
        u->all_cameras = !cams;
        u->n_cameras = 0;
        if (!cams)
                return 0;
        if (n > CONFIG_MAX_CAMERAS) {
                snprintf(err, errlen, "user %s: more than %d cameras", u->name, CONFIG_MAX_CAMERAS);
                return -EINVAL;
        }
        for (size_t i = 0; i < n; i++) {
                if (!camera_id_ok(cams[i])) {
                        snprintf(err, errlen, "user %s: '%.40s' is not a camera id ([A-Za-z0-9_-]{1,31})", u->name,
                                 cams[i]);
                        return -EINVAL;
                }
                snprintf(u->cameras[u->n_cameras++], CONFIG_ID_MAX, "%s", cams[i]);
        }
        return 0;
}

static int parse_user(const cJSON *j, size_t i, struct user *u, const char *path, char *err, size_t errlen)
{
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(j, "role");
        const cJSON *hash = cJSON_GetObjectItemCaseSensitive(j, "hash");
        const cJSON *cams = cJSON_GetObjectItemCaseSensitive(j, "cameras"), *c;
        const char *list[CONFIG_MAX_CAMERAS] = { NULL };
        size_t n = 0;

        if (!cJSON_IsString(name) || !users_name_ok(name->valuestring)) {
                snprintf(err, errlen, "%s: users[%zu]: 'name' must match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}", path, i);
                return -EINVAL;
        }
        snprintf(u->name, sizeof(u->name), "%s", name->valuestring);
        if (!cJSON_IsString(role) || users_role_parse(role->valuestring, &u->role) < 0) {
                snprintf(err, errlen, "%s: user %s: 'role' must be \"viewer\" or \"admin\"", path, u->name);
                return -EINVAL;
        }
        if (!cJSON_IsString(hash) || !hash_ok(hash->valuestring)) {
                snprintf(err, errlen, "%s: user %s: 'hash' must be a crypt(3) hash such as $6$... (set it with "
                         "mwr-supervisor passwd)", path, u->name);
                return -EINVAL;
        }
        snprintf(u->hash, sizeof(u->hash), "%s", hash->valuestring);
        if (cams) {
                if (!cJSON_IsArray(cams) || cJSON_GetArraySize(cams) > CONFIG_MAX_CAMERAS) {
                        snprintf(err, errlen, "%s: user %s: 'cameras' must be an array of at most %d ids", path,
                                 u->name, CONFIG_MAX_CAMERAS);
                        return -EINVAL;
                }
                cJSON_ArrayForEach(c, cams) {
                        if (!cJSON_IsString(c)) {
                                snprintf(err, errlen, "%s: user %s: 'cameras' must hold strings", path, u->name);
                                return -EINVAL;
                        }
                        list[n++] = c->valuestring;
                }
        }
        if (set_cameras(u, cams ? list : NULL, n, err, errlen) < 0) {
                char why[256];
                snprintf(why, sizeof(why), "%s", err);
                snprintf(err, errlen, "%s: %s", path, why);
                return -EINVAL;
        }
        return 0;
}

static int parse_users(const char *text, const char *path, struct users *out, char *err, size_t errlen)
{
        cJSON *root = cJSON_Parse(text);
        const cJSON *arr = root ? cJSON_GetObjectItemCaseSensitive(root, "users") : NULL, *j;
        size_t i = 0;
        int r = 0;

        if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) > USERS_MAX) {
                snprintf(err, errlen, "%s: not a users file: a JSON object with \"users\": [...] of at most %d",
                         path, USERS_MAX);
                cJSON_Delete(root);
                return -EINVAL;
        }
        out->v = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof(*out->v));
        if (!out->v) {
                cJSON_Delete(root);
                return -ENOMEM;
        }
        cJSON_ArrayForEach(j, arr) {
                if ((r = parse_user(j, i, &out->v[i], path, err, errlen)) < 0)
                        break;
                for (size_t k = 0; k < i; k++)
                        if (!strcmp(out->v[k].name, out->v[i].name)) {
                                snprintf(err, errlen, "%s: user %s is there twice", path, out->v[i].name);
                                r = -EINVAL;
                        }
                if (r < 0)
                        break;
                out->n = ++i;
        }
        cJSON_Delete(root);
        if (r < 0)
                users_free(out);
        return r;
}

int users_load(const char *path, struct users *out, char *err, size_t errlen)
{
        struct stat st;
        char *text;
        ssize_t n;
        int fd, r;

        out->v = NULL;
        out->n = 0;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT)
                        return 0;
                r = -errno;
                snprintf(err, errlen, "%s: %s", path, strerror(-r));
                return r;
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > USERS_FILE_MAX_BYTES) {
                snprintf(err, errlen, "%s: not a regular file of at most %d bytes", path, USERS_FILE_MAX_BYTES);
                close(fd);
                return -EINVAL;
        }
        if (!(text = malloc((size_t)st.st_size + 1))) {
                close(fd);
                return -ENOMEM;
        }
        n = read(fd, text, (size_t)st.st_size);
        r = n < 0 ? -errno : n != st.st_size ? -EIO : 0;
        close(fd);
        if (r < 0) {
                snprintf(err, errlen, "%s: %s", path, strerror(-r));
                free(text);
                return r;
        }
        text[n] = '\0';
        r = parse_users(text, path, out, err, errlen);
        free(text);
        return r;
}

/* The rename is durable only once the directory is on disk too. */
static int fsync_dir_of(const char *path)
{
        char dir[4096];
        const char *slash = strrchr(path, '/');
        int fd, r = 0;

        snprintf(dir, sizeof(dir), "%.*s", slash ? (slash == path ? 1 : (int)(slash - path)) : 1, slash ? path : ".");
        if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
                return -errno;
        if (fsync(fd) < 0)
                r = -errno;
        close(fd);
        return r;
}

static char *render(const struct users *u)
{
        cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "users");
        char *text = NULL;

        if (!arr)
                goto out;
        for (size_t i = 0; i < u->n; i++) {
                cJSON *j = cJSON_CreateObject(), *cams;
                if (!j || !cJSON_AddItemToArray(arr, j) || !cJSON_AddStringToObject(j, "name", u->v[i].name) ||
                    !cJSON_AddStringToObject(j, "role", users_role_name(u->v[i].role)))
                        goto out;
                if (!u->v[i].all_cameras) {
                        if (!(cams = cJSON_AddArrayToObject(j, "cameras")))
                                goto out;
                        for (size_t k = 0; k < u->v[i].n_cameras; k++)
                                if (!cJSON_AddItemToArray(cams, cJSON_CreateString(u->v[i].cameras[k])))
                                        goto out;
                }
                if (!cJSON_AddStringToObject(j, "hash", u->v[i].hash))
                        goto out;
        }
        text = cJSON_Print(root);
out:
        cJSON_Delete(root);
        return text;
}

int users_save(const char *path, const struct users *u, char *err, size_t errlen)
{
        char tmp[4096 + 16];
        char *text = render(u);
        struct stat old;
        bool had = stat(path, &old) == 0;
        int fd, r = 0;
        size_t len;

        if (!text)
                return -ENOMEM;
        len = strlen(text);
        if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
                free(text);
                return -ENAMETOOLONG;
        }
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                r = -errno;
        else {
                /* 0600 whatever the umask, and whatever mode a stale temp file had */
                if (fchmod(fd, 0600) < 0 || (had && geteuid() == 0 && fchown(fd, old.st_uid, old.st_gid) < 0))
                        r = -errno;
                if (r == 0 && ((size_t)write(fd, text, len) != len || write(fd, "\n", 1) != 1))
                        r = -EIO;
                if (r == 0 && fsync(fd) < 0)
                        r = -errno;
                if (close(fd) < 0 && r == 0)
                        r = -errno;
                if (r == 0 && rename(tmp, path) < 0)
                        r = -errno;
                if (r < 0)
                        unlink(tmp);
        }
        free(text);
        if (r == 0)
                r = fsync_dir_of(path);
        if (r < 0)
                snprintf(err, errlen, "%s: %s", path, strerror(-r));
        return r;
}

int users_hash(const char *password, char out[USER_HASH_MAX])
{
        char setting[CRYPT_GENSALT_OUTPUT_SIZE];
        struct crypt_data *cd;
        int r = 0;

        if (!crypt_gensalt_rn("$6$", 0, NULL, 0, setting, sizeof(setting)))
                return -errno ? -errno : -EIO;
        if (!(cd = calloc(1, sizeof(*cd))))
                return -ENOMEM;
        if (!crypt_rn(password, setting, cd, sizeof(*cd)) || cd->output[0] != '$')
                r = -EIO;
        else if (snprintf(out, USER_HASH_MAX, "%s", cd->output) >= USER_HASH_MAX)
                r = -ENAMETOOLONG;
        explicit_bzero(cd, sizeof(*cd)); /* it held the password */
        free(cd);
        return r;
}

int users_set(struct users *u, const char *name, enum user_role role, const char *const *cams, size_t n_cams,
              const char *password, char *err, size_t errlen)
{
        struct user nu = { .role = role };
        size_t i;
        int r;

        if (!users_name_ok(name)) {
                snprintf(err, errlen, "user name '%.64s' must match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name);
                return -EINVAL;
        }
        snprintf(nu.name, sizeof(nu.name), "%s", name);
        if (!password[0]) {
                snprintf(err, errlen, "user %s: an empty password is refused", name);
                return -EINVAL;
        }
        if ((r = set_cameras(&nu, cams, n_cams, err, errlen)) < 0)
                return r;
        if ((r = users_hash(password, nu.hash)) < 0) {
                snprintf(err, errlen, "user %s: cannot hash the password: %s", name, strerror(-r));
                return r;
        }
        for (i = 0; i < u->n && strcmp(u->v[i].name, name); i++)
                ;
        if (i == u->n) {
                struct user *v;
                if (u->n >= USERS_MAX) {
                        snprintf(err, errlen, "the users file holds %d users already", USERS_MAX);
                        return -ENOSPC;
                }
                if (!(v = realloc(u->v, (u->n + 1) * sizeof(*v))))
                        return -ENOMEM;
                u->v = v;
                u->n++;
        }
        u->v[i] = nu;
        return 0;
}

int users_remove(struct users *u, const char *name)
{
        for (size_t i = 0; i < u->n; i++)
                if (!strcmp(u->v[i].name, name)) {
                        memmove(&u->v[i], &u->v[i + 1], (u->n - i - 1) * sizeof(*u->v));
                        u->n--;
                        return 0;
                }
        return -ENOENT;
}

void users_free(struct users *u)
{
        free(u->v);
        u->v = NULL;
        u->n = 0;
}
