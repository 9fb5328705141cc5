/* timefmt: the contract's time arguments and outputs.  T is RFC 3339
 * ("2026-11-23T10:00:00Z", optional fraction and +hh:mm offset) or unix
 * seconds, possibly fractional.  All values are µs since the epoch (UTC). */
#ifndef MWR_COMMON_TIMEFMT_H
#define MWR_COMMON_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

#define TIMEFMT_RFC3339_MAX 32

/* 0 or -EINVAL. */
int timefmt_parse_us(const char *s, int64_t *us);

/* "2026-11-23T10:00:00.123456Z" (the fraction only when not whole). */
void timefmt_rfc3339(int64_t us, char out[TIMEFMT_RFC3339_MAX]);

#endif
