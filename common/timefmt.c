/* timefmt: see timefmt.h.  No locale, no TZ: timegm and gmtime_r only. */
#include "common/timefmt.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define USEC 1000000LL
#define UNIX_MAX_S 253402300799LL /* 9999-12-31T23:59:59Z */

static int parse_unix(const char *s, int64_t *us)
{
        char *end;
        double v;

        errno = 0;
        v = strtod(s, &end);
        if (errno || *end || end == s || !isfinite(v) || v < 0 || v > (double)UNIX_MAX_S)
                return -EINVAL;
        *us = (int64_t)llround(v * (double)USEC);
        return 0;
}

int timefmt_parse_us(const char *s, int64_t *us)
{
        struct tm tm = { 0 };
        int64_t frac = 0, scale = USEC, off_s = 0;
        const char *p;
        time_t t;

        if (!s || !*s)
                return -EINVAL;
        if (!strchr(s, 'T') && !strchr(s, 't'))
                return parse_unix(s, us);
        p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!p)
                return -EINVAL;
        if (*p == '.') {
                p++;
                if (!isdigit((unsigned char)*p))
                        return -EINVAL;
                for (; isdigit((unsigned char)*p); p++)
                        if (scale > 1) {
                                scale /= 10;
                                frac += (*p - '0') * scale;
                        }
        }
        if (*p == 'Z' || *p == 'z') {
                p++;
        } else if (*p == '+' || *p == '-') {
                int hh, mm, n = 0;
                if (sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &n) != 2 || n != 5 || hh > 23 || mm > 59)
                        return -EINVAL;
                off_s = (hh * 3600 + mm * 60) * (*p == '+' ? 1 : -1);
                p += 6;
        } else {
                return -EINVAL;
        }
        if (*p)
                return -EINVAL;
        t = timegm(&tm);
        if (t == (time_t)-1 || t < 0)
                return -EINVAL;
        *us = ((int64_t)t - off_s) * USEC + frac;
        return 0;
}

void timefmt_rfc3339(int64_t us, char out[TIMEFMT_RFC3339_MAX])
{
        time_t t = (time_t)(us / USEC);
        int64_t frac = us % USEC;
        struct tm tm;
        size_t n;

        if (frac < 0) {
                frac += USEC;
                t--;
        }
        gmtime_r(&t, &tm);
        n = strftime(out, TIMEFMT_RFC3339_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
        if (frac)
                snprintf(out + n, TIMEFMT_RFC3339_MAX - n, ".%06lldZ", (long long)frac);
        else
                snprintf(out + n, TIMEFMT_RFC3339_MAX - n, "Z");
}
