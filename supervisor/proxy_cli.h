/* proxy_cli: the commands that write haproxy's side of mwr — `proxy-config`
 * (print the haproxy.cfg of a config and its users file) and `passwd` (add or
 * change a user in auth.users_file, then re-sync haproxy: rewrite
 * haproxy.config_file and reload haproxy through haproxy.master_socket, a
 * reload that drops no connection). */
#ifndef MWR_SUPERVISOR_PROXY_CLI_H
#define MWR_SUPERVISOR_PROXY_CLI_H

#include "common/config.h"

/* 0, 1 (runtime failure) or 2 (the config or users file is unusable). */
int proxy_config_print(const struct mwr_config *cfg);

/* `mwr-supervisor passwd [--config F] [--role viewer|admin] [--cameras a,b|all]
 * [--delete] USER`, password on stdin.  argv[0] is "passwd". */
int passwd_main(int argc, char **argv, const char *default_config);

#endif
