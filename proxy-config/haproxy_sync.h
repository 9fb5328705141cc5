/* haproxy_sync: make haproxy's admin states match the supervisor's idea of
 * the active slot (active ready, the other in maint), and save haproxy's
 * server states to the state file the generated config loads, so a
 * restarted or reloaded haproxy comes back with the same slot active. */
#ifndef MWR_PROXY_CONFIG_HAPROXY_SYNC_H
#define MWR_PROXY_CONFIG_HAPROXY_SYNC_H

#include <stdbool.h>
#include <stddef.h>

#include "common/config.h"

/* Set what differs; *changed (may be NULL) tells whether anything did.
 * 0, or a negative errno from the runtime client with the reason in err. */
int haproxy_sync(const struct mwr_config *cfg, int active, bool *changed, char *err, size_t errlen);

/* `show servers state` into haproxy_cfg_state_path() (temp file + rename). */
int haproxy_save_state(const struct mwr_config *cfg, char *err, size_t errlen);

#endif
