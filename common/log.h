/* log: one line per event on stderr with the sd-daemon priority prefix
 * ("<3>" error ... "<7>" debug) so journald files it; no private log files.
 * Log once, where the context is (camera id, file name, command). */
#ifndef MWR_COMMON_LOG_H
#define MWR_COMMON_LOG_H

#include <stdio.h>
#include <systemd/sd-daemon.h>

#define log_at(prio, fmt, ...) fprintf(stderr, prio fmt "\n", ##__VA_ARGS__)
#define log_err(fmt, ...) log_at(SD_ERR, fmt, ##__VA_ARGS__)
#define log_warn(fmt, ...) log_at(SD_WARNING, fmt, ##__VA_ARGS__)
#define log_notice(fmt, ...) log_at(SD_NOTICE, fmt, ##__VA_ARGS__)
#define log_info(fmt, ...) log_at(SD_INFO, fmt, ##__VA_ARGS__)
#define log_debug(fmt, ...) log_at(SD_DEBUG, fmt, ##__VA_ARGS__)

#endif
