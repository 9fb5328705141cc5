/* control: the supervisor's control socket (unix stream, mode 0660).  One
 * command per connection: the client writes one line of at most
 * CONTROL_LINE_MAX bytes, the daemon answers with text lines and closes.
 * A longer or unterminated command gets "error: ..." and the connection is
 * closed; it never affects the daemon.  A long command (deploy) writes
 * progress lines as it goes, so the connection stays open until it ends. */
#ifndef MWR_SUPERVISOR_CONTROL_H
#define MWR_SUPERVISOR_CONTROL_H

#include <stddef.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#define CONTROL_LINE_MAX 1024
#define CONTROL_TIMEOUT_US (5 * 1000000ULL) /* to send the command line */
#define CONTROL_CLIENTS_MAX 8

struct control;
struct control_conn;

/* Called with the command line (no newline).  Answer with control_reply()
 * (any number of times) and end with control_close(); the handler may keep
 * conn and finish later (deploy). */
typedef void (*control_cmd_fn)(struct control_conn *conn, const char *line, void *userdata);

int control_listen(sd_event *e, const char *path, control_cmd_fn fn, void *userdata, struct control **out);
void control_free(struct control *c);

/* Queue text for the client (best effort: a client that went away is
 * dropped quietly).  0 or -ENOBUFS when the client does not read. */
int control_reply(struct control_conn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void control_close(struct control_conn *conn);

/* The connecting process's uid and pid (SO_PEERCRED, read at accept), or
 * (uid_t)-1 / 0 when the kernel would not say. */
uid_t control_peer_uid(const struct control_conn *conn);
pid_t control_peer_pid(const struct control_conn *conn);

/* Client side: send line to the daemon at path and copy its answer to out
 * (stdout) as it arrives.  Returns 1 if the last line was "failed..." or
 * "error...", 0 otherwise, or a negative errno when the daemon cannot be
 * reached.  last (may be NULL) gets the last line, to tell a finished
 * command ("... ok: ...") from a daemon that went away in the middle. */
int control_call(const char *path, const char *line, int out_fd, char *last, size_t last_len);

#endif
