/* config: parse and validate the mwr JSON config with cJSON.  Every object is
 * checked against its list of known keys first, so a typo is an error that
 * names the key; then each key is read with a typed getter that names the
 * full key path on error.  Defaults follow docs/interface.md. */
#include "common/config.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

struct ctx {
        const char *name;
        char *err;
};

static int fail(struct ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct ctx *x, const char *fmt, ...)
{
        int n = snprintf(x->err, CONFIG_ERR_MAX, "%s: ", x->name);
        va_list ap;

        if (n < 0 || n >= CONFIG_ERR_MAX)
                return -EINVAL;
        va_start(ap, fmt);
        vsnprintf(x->err + n, CONFIG_ERR_MAX - (size_t)n, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

/* Every key of obj must be in keys (NULL-terminated). */
static int check_keys(struct ctx *x, const cJSON *obj, const char *where, const char *const *keys)
{
        const cJSON *it;

        if (!cJSON_IsObject(obj))
                return fail(x, "'%s' must be an object", where);
        cJSON_ArrayForEach(it, obj) {
                const char *const *k = keys;
                while (*k && strcmp(*k, it->string))
                        k++;
                if (!*k)
                        return fail(x, "unknown key '%s%s%s'", where[0] ? where : "", where[0] ? "." : "",
                                    it->string);
        }
        return 0;
}

static int get_string(struct ctx *x, const cJSON *obj, const char *where, const char *key, const char *def,
                      size_t max, char **out)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
        const char *s = def;

        if (v) {
                if (!cJSON_IsString(v))
                        return fail(x, "'%s%s%s' must be a string", where, where[0] ? "." : "", key);
                s = v->valuestring;
        }
        if (!s)
                return fail(x, "missing key '%s%s%s'", where, where[0] ? "." : "", key);
        if (s[0] == '\0' || strlen(s) >= max)
                return fail(x, "'%s%s%s' must be 1 to %zu characters", where, where[0] ? "." : "", key, max - 1);
        *out = strdup(s);
        return *out ? 0 : -ENOMEM;
}

/* A string key with no default: *out stays NULL when it is absent. */
static int get_opt_string(struct ctx *x, const cJSON *obj, const char *where, const char *key, size_t max,
                          char **out)
{
        if (!cJSON_GetObjectItemCaseSensitive(obj, key))
                return 0;
        return get_string(x, obj, where, key, NULL, max, out);
}

static int get_int(struct ctx *x, const cJSON *obj, const char *where, const char *key, long def, long min,
                   long max, long *out)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

        *out = def;
        if (!v)
                return 0;
        /* the range first: a double beyond long's is undefined behaviour to convert */
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= min && v->valuedouble <= max) ||
            v->valuedouble != (double)(long)v->valuedouble)
                return fail(x, "'%s%s%s' must be an integer in [%ld, %ld]", where, where[0] ? "." : "", key, min,
                            max);
        *out = (long)v->valuedouble;
        return 0;
}

static int get_bool(struct ctx *x, const cJSON *obj, const char *where, const char *key, bool def, bool *out)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

        *out = def;
        if (!v)
                return 0;
        if (!cJSON_IsBool(v))
                return fail(x, "'%s.%s' must be true or false", where, key);
        *out = cJSON_IsTrue(v);
        return 0;
}

static bool id_valid(const char *s)
{
        size_t l = strlen(s);

        if (l == 0 || l >= CONFIG_ID_MAX)
                return false;
        for (size_t i = 0; i < l; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
                      s[i] == '_' || s[i] == '-'))
                        return false;
        return true;
}

static int parse_camera(struct ctx *x, struct mwr_config *c, const cJSON *cam, size_t i)
{
        static const char *const keys[] = { "id", "url", "enabled", "transport", "max_sessions",
                                            "auth_retry_max_seconds", NULL };
        struct config_camera *cc = &c->cameras[i];
        char where[32], *id = NULL, *transport = NULL;
        long max_sessions, auth_max;
        int r;

        snprintf(where, sizeof(where), "cameras[%zu]", i);
        if ((r = check_keys(x, cam, where, keys)) < 0 || (r = get_string(x, cam, where, "id", NULL, CONFIG_ID_MAX, &id)) < 0)
                goto out;
        if (!id_valid(id)) {
                r = fail(x, "'%s.id' must match [A-Za-z0-9_-]{1,%d}", where, CONFIG_ID_MAX - 1);
                goto out;
        }
        strcpy(cc->id, id);
        for (size_t j = 0; j < i; j++)
                if (!strcmp(c->cameras[j].id, id)) {
                        r = fail(x, "'%s.id' repeats camera id '%s'", where, id);
                        goto out;
                }
        if ((r = get_string(x, cam, where, "url", NULL, CONFIG_URL_MAX, &cc->url)) < 0)
                goto out;
        if (strncmp(cc->url, "rtsp://", 7) && strncmp(cc->url, "rtsps://", 8)) {
                r = fail(x, "'%s.url' must start with rtsp:// or rtsps://", where);
                goto out;
        }
        if ((r = get_bool(x, cam, where, "enabled", true, &cc->enabled)) < 0 ||
            (r = get_string(x, cam, where, "transport", "tcp", 8, &transport)) < 0 ||
            (r = get_int(x, cam, where, "max_sessions", 0, 0, 64, &max_sessions)) < 0 ||
            (r = get_int(x, cam, where, "auth_retry_max_seconds", 300, 1, 86400, &auth_max)) < 0)
                goto out;
        cc->max_sessions = (int)max_sessions;
        cc->auth_retry_max_s = (int)auth_max;
        if (!strcmp(transport, "tcp"))
                cc->transport = CONFIG_TRANSPORT_TCP;
        else if (!strcmp(transport, "udp"))
                cc->transport = CONFIG_TRANSPORT_UDP;
        else
                r = fail(x, "'%s.transport' must be \"tcp\" or \"udp\"", where);
out:
        free(id);
        free(transport);
        return r;
}

static int parse_cameras(struct ctx *x, struct mwr_config *c, const cJSON *root)
{
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "cameras"), *cam;
        int r;

        if (!arr)
                return fail(x, "missing key 'cameras'");
        if (!cJSON_IsArray(arr))
                return fail(x, "'cameras' must be an array");
        if (cJSON_GetArraySize(arr) > CONFIG_MAX_CAMERAS)
                return fail(x, "'cameras' has more than %d entries", CONFIG_MAX_CAMERAS);
        cJSON_ArrayForEach(cam, arr) {
                if ((r = parse_camera(x, c, cam, c->n_cameras)) < 0)
                        return r;
                c->n_cameras++;
        }
        return 0;
}

static int get_port(struct ctx *x, const cJSON *obj, const char *where, const char *key, long def, uint16_t *out)
{
        long v;
        int r = get_int(x, obj, where, key, def, 1, 65535, &v);

        *out = (uint16_t)v;
        return r;
}

/* 127.0.0.0/8 or ::1; anything else (a name included) is not known to be. */
static bool loopback(const char *addr)
{
        struct in_addr a4;
        struct in6_addr a6;

        if (inet_pton(AF_INET, addr, &a4) == 1)
                return (ntohl(a4.s_addr) >> 24) == 127;
        return inet_pton(AF_INET6, addr, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

static int parse_worker(struct ctx *x, struct mwr_config *c, const cJSON *root)
{
        static const char *const keys[] = { "binary", "bind", "ports", "allow_remote", NULL };
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(root, "worker"), *ports;
        cJSON *empty = NULL;
        int r;

        if (!w)
                w = empty = cJSON_CreateObject();
        c->worker.ports[0] = 8080;
        c->worker.ports[1] = 8081;
        if ((r = check_keys(x, w, "worker", keys)) < 0 ||
            (r = get_string(x, w, "worker", "binary", "/opt/mwr/current/bin/mwr-worker", PATH_MAX, &c->worker.binary)) < 0 ||
            (r = get_string(x, w, "worker", "bind", "127.0.0.1", 64, &c->worker.bind)) < 0 ||
            (r = get_bool(x, w, "worker", "allow_remote", false, &c->worker.allow_remote)) < 0)
                goto out;
        if (!loopback(c->worker.bind) && !c->worker.allow_remote) {
                r = fail(x, "'worker.bind' %s is not a loopback address: a worker serves footage to anyone who "
                            "reaches it, without a password (haproxy is the door). Set 'worker.allow_remote' true "
                            "to bind it anyway",
                         c->worker.bind);
                goto out;
        }
        ports = cJSON_GetObjectItemCaseSensitive(w, "ports");
        if (ports) {
                if (!cJSON_IsArray(ports) || cJSON_GetArraySize(ports) != 2) {
                        r = fail(x, "'worker.ports' must be an array of two ports");
                        goto out;
                }
                for (int i = 0; i < 2; i++) {
                        const cJSON *p = cJSON_GetArrayItem(ports, i);
                        if (!cJSON_IsNumber(p) || !(p->valuedouble >= 1 && p->valuedouble <= 65535) ||
                            p->valuedouble != (double)(int)p->valuedouble) {
                                r = fail(x, "'worker.ports[%d]' must be a port in [1, 65535]", i);
                                goto out;
                        }
                        c->worker.ports[i] = (uint16_t)p->valuedouble;
                }
                if (c->worker.ports[0] == c->worker.ports[1])
                        r = fail(x, "'worker.ports' must be two different ports");
        }
out:
        cJSON_Delete(empty);
        return r;
}

static int parse_haproxy(struct ctx *x, struct mwr_config *c, const cJSON *root)
{
        static const char *const keys[] = { "socket",      "backend",     "servers",       "frontend_port",
                                            "stats_port",  "bind",        "tls_cert",      "plain_http",
                                            "socket_user", "config_file", "master_socket", "run_as", NULL };
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(root, "haproxy"), *servers;
        cJSON *empty = NULL;
        static const char *const def_servers[2] = { "a", "b" };
        int r;

        if (!h)
                h = empty = cJSON_CreateObject();
        if ((r = check_keys(x, h, "haproxy", keys)) < 0 ||
            (r = get_string(x, h, "haproxy", "socket", "/run/mwr/haproxy.sock", 108, &c->haproxy.socket)) < 0 ||
            (r = get_string(x, h, "haproxy", "backend", "mwr", 64, &c->haproxy.backend)) < 0 ||
            (r = get_port(x, h, "haproxy", "frontend_port", 8000, &c->haproxy.frontend_port)) < 0 ||
            (r = get_port(x, h, "haproxy", "stats_port", 8404, &c->haproxy.stats_port)) < 0 ||
            (r = get_string(x, h, "haproxy", "bind", c->worker.bind, 64, &c->haproxy.bind)) < 0 ||
            (r = get_opt_string(x, h, "haproxy", "tls_cert", PATH_MAX, &c->haproxy.tls_cert)) < 0 ||
            (r = get_bool(x, h, "haproxy", "plain_http", false, &c->haproxy.plain_http)) < 0 ||
            (r = get_string(x, h, "haproxy", "socket_user", "mwr", 64, &c->haproxy.socket_user)) < 0 ||
            (r = get_string(x, h, "haproxy", "run_as", "haproxy", 64, &c->haproxy.run_as)) < 0 ||
            (r = get_opt_string(x, h, "haproxy", "config_file", PATH_MAX, &c->haproxy.config_file)) < 0 ||
            (r = get_opt_string(x, h, "haproxy", "master_socket", 108, &c->haproxy.master_socket)) < 0)
                goto out;
        servers = cJSON_GetObjectItemCaseSensitive(h, "servers");
        if (servers && (!cJSON_IsArray(servers) || cJSON_GetArraySize(servers) != 2)) {
                r = fail(x, "'haproxy.servers' must be an array of two names");
                goto out;
        }
        for (int i = 0; i < 2; i++) {
                const cJSON *s = servers ? cJSON_GetArrayItem(servers, i) : NULL;
                const char *name = s ? (cJSON_IsString(s) ? s->valuestring : NULL) : def_servers[i];
                if (!name || !id_valid(name)) {
                        r = fail(x, "'haproxy.servers[%d]' must be a name matching [A-Za-z0-9_-]+", i);
                        goto out;
                }
                if (!(c->haproxy.servers[i] = strdup(name))) {
                        r = -ENOMEM;
                        goto out;
                }
        }
        /* one server each, and hot standby's "<name>_backstop" beside them */
        for (int i = 0; i < 2; i++) {
                const char *a = c->haproxy.servers[i], *b = c->haproxy.servers[1 - i];
                size_t n = strlen(a);

                if (!strcmp(a, b) || (!strncmp(b, a, n) && !strcmp(b + n, "_backstop"))) {
                        r = fail(x, "'haproxy.servers' must be two names, neither the other's plus \"_backstop\"");
                        goto out;
                }
        }
out:
        cJSON_Delete(empty);
        return r;
}

static int parse_deploy_disk(struct ctx *x, struct mwr_config *c, const cJSON *root)
{
        static const char *const dkeys[] = { "overlap_seconds", "health_timeout_seconds", "stop_timeout_seconds", NULL };
        static const char *const skeys[] = { "min_free_mb", "max_total_gb", "retention_days", "require_mountpoint",
                                             NULL };
        static const char *const vkeys[] = { "metrics_port", "standby", "standby_retention_seconds", NULL };
        const cJSON *sv = cJSON_GetObjectItemCaseSensitive(root, "supervisor");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "deploy");
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "disk");
        cJSON *empty = cJSON_CreateObject();
        long v1, v2, v3;
        int r;

        if (!empty)
                return -ENOMEM;
        if ((r = check_keys(x, d ? d : empty, "deploy", dkeys)) < 0 ||
            (r = get_int(x, d ? d : empty, "deploy", "overlap_seconds", 30, 0, 3600, &v1)) < 0 ||
            (r = get_int(x, d ? d : empty, "deploy", "health_timeout_seconds", 30, 1, 3600, &v2)) < 0 ||
            (r = get_int(x, d ? d : empty, "deploy", "stop_timeout_seconds", 45, 1, 3600, &v3)) < 0)
                goto out;
        c->deploy.overlap_seconds = (int)v1;
        c->deploy.health_timeout_seconds = (int)v2;
        c->deploy.stop_timeout_seconds = (int)v3;
        if ((r = check_keys(x, s ? s : empty, "disk", skeys)) < 0 ||
            (r = get_int(x, s ? s : empty, "disk", "min_free_mb", 512, 0, 1L << 30, &v1)) < 0 ||
            (r = get_int(x, s ? s : empty, "disk", "max_total_gb", 0, 0, 1L << 20, &v2)) < 0 ||
            (r = get_int(x, s ? s : empty, "disk", "retention_days", 0, 0, 36500, &v3)) < 0)
                goto out;
        c->disk.min_free_bytes = (uint64_t)v1 << 20;
        c->disk.max_total_bytes = (uint64_t)v2 << 30;
        c->disk.retention_days = (int)v3;
        if ((r = get_bool(x, s ? s : empty, "disk", "require_mountpoint", false, &c->disk.require_mountpoint)) < 0)
                goto out;
        if ((r = check_keys(x, sv ? sv : empty, "supervisor", vkeys)) < 0 ||
            (r = get_int(x, sv ? sv : empty, "supervisor", "metrics_port", 0, 0, 65535, &v1)) < 0 ||
            (r = get_int(x, sv ? sv : empty, "supervisor", "standby_retention_seconds", 86400, 0, 366L * 86400,
                         &v2)) < 0)
                goto out;
        c->supervisor.metrics_port = (uint16_t)v1;
        c->supervisor.standby_retention_s = (int)v2;
        {
                char *standby = NULL;

                if ((r = get_string(x, sv ? sv : empty, "supervisor", "standby", "cold", 8, &standby)) < 0)
                        goto out;
                if (!strcmp(standby, "hot"))
                        c->supervisor.hot_standby = true;
                else if (strcmp(standby, "cold"))
                        r = fail(x, "'supervisor.standby' must be \"cold\" or \"hot\"");
                free(standby);
        }
out:
        cJSON_Delete(empty);
        return r;
}

static int parse_auth(struct ctx *x, struct mwr_config *c, const cJSON *root)
{
        static const char *const keys[] = { "users_file", "required", NULL };
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "auth");
        cJSON *empty = NULL;
        int r;

        if (!a)
                a = empty = cJSON_CreateObject();
        if (!a)
                return -ENOMEM;
        if ((r = check_keys(x, a, "auth", keys)) == 0 &&
            (r = get_string(x, a, "auth", "users_file", "/var/lib/mwr/users.json", PATH_MAX, &c->auth.users_file)) == 0)
                r = get_bool(x, a, "auth", "required", true, &c->auth.required);
        cJSON_Delete(empty);
        return r;
}

static int parse_root(struct ctx *x, struct mwr_config *c, const cJSON *root)
{
        static const char *const keys[] = { "storage_dir", "db_path", "segment_seconds", "cameras", "worker",
                                            "haproxy", "deploy", "control_socket", "disk", "supervisor", "auth", NULL };
        long seg;
        int r;

        if ((r = check_keys(x, root, "", keys)) < 0 ||
            (r = get_string(x, root, "", "storage_dir", NULL, PATH_MAX, &c->storage_dir)) < 0 ||
            (r = get_string(x, root, "", "db_path", NULL, PATH_MAX, &c->db_path)) < 0 ||
            (r = get_int(x, root, "", "segment_seconds", 10, 1, 3600, &seg)) < 0 ||
            (r = get_string(x, root, "", "control_socket", "/run/mwr/supervisor.sock", 108, &c->control_socket)) < 0 ||
            (r = parse_cameras(x, c, root)) < 0 || (r = parse_worker(x, c, root)) < 0 ||
            (r = parse_haproxy(x, c, root)) < 0 || (r = parse_deploy_disk(x, c, root)) < 0 ||
            (r = parse_auth(x, c, root)) < 0)
                return r;
        c->segment_seconds = (int)seg;
        return 0;
}

static int line_of(const char *text, const char *pos)
{
        int line = 1;

        for (const char *p = text; p < pos && *p; p++)
                line += *p == '\n';
        return line;
}

int config_parse(const char *text, size_t len, const char *name, struct mwr_config **out, char err[CONFIG_ERR_MAX])
{
        struct ctx x = { .name = name, .err = err };
        const char *end = NULL;
        struct mwr_config *c;
        cJSON *root;
        int r;

        err[0] = '\0';
        root = cJSON_ParseWithLengthOpts(text, len, &end, false);
        if (!root) {
                const char *e = cJSON_GetErrorPtr();
                if (!e || e < text || e > text + len)
                        e = end ? end : text;
                return fail(&x, "line %d: JSON syntax error", line_of(text, e));
        }
        c = calloc(1, sizeof(*c));
        if (!c || !(c->path = strdup(name))) {
                free(c);
                cJSON_Delete(root);
                return -ENOMEM;
        }
        if (!cJSON_IsObject(root))
                r = fail(&x, "the top level must be a JSON object");
        else
                r = parse_root(&x, c, root);
        cJSON_Delete(root);
        if (r < 0) {
                if (r == -ENOMEM)
                        snprintf(err, CONFIG_ERR_MAX, "%s: out of memory", name);
                config_free(c);
                return r;
        }
        *out = c;
        return 0;
}

int config_load(const char *path, struct mwr_config **out, char err[CONFIG_ERR_MAX])
{
        struct stat st;
        char *text;
        ssize_t n;
        int fd, r;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                snprintf(err, CONFIG_ERR_MAX, "%s: %s", path, strerror(-r));
                return r;
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > CONFIG_FILE_MAX_BYTES) {
                snprintf(err, CONFIG_ERR_MAX, "%s: not a regular file of at most %d bytes", path, CONFIG_FILE_MAX_BYTES);
                close(fd);
                return -EINVAL;
        }
        text = malloc((size_t)st.st_size + 1);
        if (!text) {
                close(fd);
                return -ENOMEM;
        }
        n = read(fd, text, (size_t)st.st_size);
        r = n < 0 ? -errno : 0;
        close(fd);
        if (r == 0 && n != st.st_size)
                r = -EIO;
        if (r < 0) {
                snprintf(err, CONFIG_ERR_MAX, "%s: %s", path, strerror(-r));
                free(text);
                return r;
        }
        text[n] = '\0';
        r = config_parse(text, (size_t)n, path, out, err);
        free(text);
        return r;
}

void config_free(struct mwr_config *c)
{
        if (!c)
                return;
        for (size_t i = 0; i < CONFIG_MAX_CAMERAS; i++)
                free(c->cameras[i].url);
        free(c->path);
        free(c->storage_dir);
        free(c->db_path);
        free(c->worker.binary);
        free(c->worker.bind);
        free(c->haproxy.socket);
        free(c->haproxy.backend);
        free(c->haproxy.servers[0]);
        free(c->haproxy.servers[1]);
        free(c->haproxy.bind);
        free(c->haproxy.tls_cert);
        free(c->haproxy.socket_user);
        free(c->haproxy.run_as);
        free(c->haproxy.config_file);
        free(c->haproxy.master_socket);
        free(c->auth.users_file);
        free(c->control_socket);
        free(c);
}

const struct config_camera *config_camera_find(const struct mwr_config *c, const char *id)
{
        for (size_t i = 0; i < c->n_cameras; i++)
                if (!strcmp(c->cameras[i].id, id))
                        return &c->cameras[i];
        return NULL;
}

/* The authority ends at the first '/', '?' or '#'; its user-info runs to
 * the LAST '@' in it, as libavformat's av_url_split() reads it (a raw '@'
 * in a password is part of the password). */
void config_url_redact(const char *url, char *out, size_t outlen)
{
        const char *scheme = strstr(url, "://");
        const char *host = scheme ? scheme + 3 : url;
        const char *end = host + strcspn(host, "/?#");
        const char *at = NULL;

        for (const char *p = host; p < end; p++)
                if (*p == '@')
                        at = p;
        if (at)
                snprintf(out, outlen, "%.*s***%s", (int)(host - url), url, at);
        else
                snprintf(out, outlen, "%s", url);
}
