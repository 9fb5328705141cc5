/* haproxy_cfg: the complete haproxy.cfg for an mwr config
 * (`mwr-supervisor proxy-config`): frontend on haproxy.frontend_port,
 * backend haproxy.backend with servers haproxy.servers[0..1] on
 * worker.bind:worker.ports[0..1] checked with `GET /health`, stats page on
 * stats_port, admin runtime socket at haproxy.socket (the service user's), and a
 * server-state file next to the socket so a reload keeps the active slot.
 * With supervisor.standby "hot" the two workers are also backup servers
 * ("<name>_backstop"): haproxy's own failover while no supervisor runs. */
#ifndef MWR_PROXY_CONFIG_HAPROXY_CFG_H
#define MWR_PROXY_CONFIG_HAPROXY_CFG_H

#include <stdio.h>

#include "common/config.h"

struct users;

#define HAP_BACKSTOP_SUFFIX "_backstop"

/* The server-state file haproxy.cfg names: "<dir of haproxy.socket>/haproxy.state". */
int haproxy_cfg_state_path(const struct mwr_config *cfg, char *out, size_t len);

/* Writes the config text to f.  active: 0 or 1, the server that takes
 * traffic when haproxy starts without a state file (the other starts in
 * maint).  users: auth.users_file as read (proxy-config/users.h), rendered
 * as the userlist, the roles and the camera lists (NULL only with
 * auth.required false).  0 or -EIO; -EINVAL (nothing written) when active is
 * not 0/1, a value is not one plain haproxy word (space, '#', quote,
 * '$'...), the two server names are equal, two of the four ports coincide,
 * or the frontend has neither haproxy.tls_cert nor haproxy.plain_http.
 * *why (may be NULL) names the reason of a failure. */
int haproxy_cfg_write(const struct mwr_config *cfg, const struct users *users, int active, FILE *f,
                      const char **why);

#endif
