/* haproxy_runtime: a client of HAProxy's runtime API (the admin unix socket).
 * One command per connection, as haproxy 2.6 closes after answering in
 * non-interactive mode: connect, write "cmd\n", read to EOF (bounded in
 * size and time).  haproxy answers errors as text, so those lines are
 * mapped to negative errno here; callers never parse raw answers. */
#ifndef MWR_PROXY_CONFIG_HAPROXY_RUNTIME_H
#define MWR_PROXY_CONFIG_HAPROXY_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#define HAP_ANSWER_MAX (256 * 1024) /* `show stat` of two servers is ~2 KB */
#define HAP_TIMEOUT_MS 2000          /* connect + write + read of one command */

enum hap_admin { HAP_READY, HAP_DRAIN, HAP_MAINT };

struct hap_server {
        char name[64];
        int admin;      /* enum hap_admin as haproxy reports it (srv_admin_state / stat "status") */
        char status[32];  /* show stat "status": UP, DOWN, MAINT, DRAIN, NOLB, "UP 1/3", ... */
        int64_t scur;     /* current sessions */
        int64_t stot;     /* total sessions */
        int check_ok;     /* 1 if the last health check passed (status starts with UP or DRAIN) */
};

/* Send cmd (no newline), the answer (NUL-terminated, malloc'ed) in *answer
 * if not NULL.  -ENOENT/-ECONNREFUSED/-EACCES: socket missing, haproxy down,
 * no permission; -ETIMEDOUT; -E2BIG answer too long; -EINVAL cmd empty,
 * too long or with a newline.  haproxy's own failure lines are mapped too
 * (*answer then NULL): "No such backend/server/proxy." -ENOENT,
 * "Permission denied" -EACCES, "Unknown command" -EOPNOTSUPP. */
int hap_command(const char *socket_path, const char *cmd, char **answer);

/* `set server BACKEND/SERVER state ready|drain|maint`: 0 when haproxy
 * answers the empty line of success; -ENOENT no such backend/server,
 * -EPROTO any other answer (err, if not NULL, gets its first line). */
int hap_set_state(const char *socket_path, const char *backend, const char *server, enum hap_admin state,
                  char *err, size_t errlen);

/* The backend's servers from `show stat` (CSV): up to max into out, *n set.
 * -ENOENT if the backend has no server rows; -EPROTO unparsable.  admin is
 * taken from `show servers state` (srv_admin_state), a second command: the
 * status text says "DOWN" for a drained server whose check fails. */
int hap_show_servers(const char *socket_path, const char *backend, struct hap_server *out, size_t max, size_t *n);

/* Convenience: one server's row.  -ENOENT if absent. */
int hap_server_get(const char *socket_path, const char *backend, const char *server, struct hap_server *out);

#endif
