/* child_env: see child_env.h.  Everything but child_env_set_pid runs in the
 * parent; child_env_set_pid runs between fork and exec and must stay
 * async-signal-safe (no allocation, no locks, no stdio). */
#include "supervisor/child_env.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WATCHDOG_PID_PREFIX "WATCHDOG_PID="
#define PID_DIGITS_MAX 20 /* any 64-bit value: the digits are written without knowing pid_t's width */
#define ADDED_MAX 3       /* NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID */

/* "NAME=value" (or a bare "NAME") is one of the stripped variables. */
static bool stripped(const char *entry)
{
        static const char *const names[] = CHILD_ENV_STRIPPED;
        size_t len = strcspn(entry, "=");

        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                if (strlen(names[i]) == len && strncmp(entry, names[i], len) == 0)
                        return true;
        return false;
}

/* Append one formatted entry; the caller sized envp. */
static __attribute__((format(printf, 3, 4))) int push(struct child_env *ce, size_t *n, const char *fmt, ...)
{
        va_list ap;
        char *s;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        ce->envp[(*n)++] = s;
        return 0;
}

/* WATCHDOG_PID=0 until the child writes its own pid over it. */
static int push_watchdog_pid(struct child_env *ce, size_t *n)
{
        char *s = calloc(1, sizeof(WATCHDOG_PID_PREFIX) + PID_DIGITS_MAX);

        if (!s)
                return -ENOMEM;
        memcpy(s, WATCHDOG_PID_PREFIX "0", sizeof(WATCHDOG_PID_PREFIX "0"));
        ce->watchdog_pid = s;
        ce->envp[(*n)++] = s;
        return 0;
}

int child_env_build(struct child_env *ce, char *const *base, const char *notify_socket, uint64_t watchdog_us)
{
        size_t n = 0, cap = ADDED_MAX + 1;
        int e = 0;

        ce->watchdog_pid = NULL;
        for (size_t i = 0; base && base[i]; i++)
                cap++;
        ce->envp = calloc(cap, sizeof(*ce->envp));
        if (!ce->envp)
                return -ENOMEM;
        for (size_t i = 0; e == 0 && base && base[i]; i++)
                if (!stripped(base[i]))
                        e = push(ce, &n, "%s", base[i]);
        if (e == 0)
                e = push(ce, &n, "NOTIFY_SOCKET=%s", notify_socket);
        if (e == 0 && watchdog_us)
                e = push(ce, &n, "WATCHDOG_USEC=%llu", (unsigned long long)watchdog_us);
        if (e == 0 && watchdog_us)
                e = push_watchdog_pid(ce, &n);
        if (e < 0)
                child_env_free(ce);
        return e;
}

void child_env_set_pid(struct child_env *ce, pid_t pid)
{
        char digits[PID_DIGITS_MAX], *out;
        unsigned long long v = pid > 0 ? (unsigned long long)pid : 0;
        size_t k = 0;

        if (!ce->watchdog_pid)
                return;
        do {
                digits[k++] = (char)('0' + v % 10);
                v /= 10;
        } while (v && k < sizeof(digits));
        out = ce->watchdog_pid + sizeof(WATCHDOG_PID_PREFIX) - 1;
        while (k)
                *out++ = digits[--k];
        *out = '\0';
}

void child_env_free(struct child_env *ce)
{
        for (size_t i = 0; ce->envp && ce->envp[i]; i++)
                free(ce->envp[i]);
        free(ce->envp);
        ce->envp = NULL;
        ce->watchdog_pid = NULL;
}
