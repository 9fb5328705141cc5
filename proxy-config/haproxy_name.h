/* haproxy_name: the one rule for a backend or server name, shared by the
 * config generator (what we write into haproxy.cfg) and the runtime client
 * (what we paste into a command): [A-Za-z0-9_.:-]+, so no space, '/', ';',
 * '#' or newline can change what haproxy parses. */
#ifndef MWR_PROXY_CONFIG_HAPROXY_NAME_H
#define MWR_PROXY_CONFIG_HAPROXY_NAME_H

#include <stdbool.h>
#include <string.h>

static inline bool haproxy_name_ok(const char *s)
{
        if (!s || !*s)
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      strchr("_.:-", *s)))
                        return false;
        return true;
}

#endif
