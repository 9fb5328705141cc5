/* health: `GET /health` against a worker through libcurl's multi_socket
 * interface, with curl's sockets and its one timer mapped onto sd-event io and
 * time sources (see health.h).  A checker owns a curl multi handle, at most
 * one easy handle (the running check) and the sd-event sources curl asked
 * for; when no check runs it owns no io source and its timer is off.  The
 * result callback runs last, after everything is released, so it may start
 * the next check or free the checker. */
#include "supervisor/health.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "common/time_util.h"

/* One transfer: the easy handle and the body kept so far. */
struct xfer {
        CURL *easy;
        int64_t start_us; /* CLOCK_MONOTONIC */
        size_t len;
        bool too_big;     /* the write callback refused more than HEALTH_BODY_MAX */
        char buf[HEALTH_BODY_MAX];
};

struct health_checker {
        sd_event *event;
        CURLM *multi;
        sd_event_source *timer; /* curl's timeout, off when curl wants none */
        health_cb cb;           /* set while a check runs */
        void *userdata;
        int loop_error;         /* an sd-event call failed inside a curl callback */
        struct xfer xfer;       /* xfer.easy != NULL while a check runs */
};

/* curl_global_init() is not guaranteed thread-safe, and the CLI and the
 * daemon both get here first through this module: the one piece of global
 * state, written once under curl_once. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init_once(void)
{
        curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int health_global_init(void)
{
        pthread_once(&curl_once, curl_init_once);
        return curl_init_result == CURLE_OK ? 0 : -EIO;
}

/* ---- one transfer, shared by the async and the blocking check ------------ */

static size_t xfer_write(char *data, size_t size, size_t n, void *userdata)
{
        struct xfer *x = userdata;
        size_t add = size * n;

        if (add > HEALTH_BODY_MAX - x->len) {
                x->too_big = true;
                return 0; /* CURLE_WRITE_ERROR: stop reading what we would not keep */
        }
        memcpy(x->buf + x->len, data, add);
        x->len += add;
        return add;
}

static long timeout_ms_of(uint64_t timeout_us)
{
        uint64_t ms = timeout_us / 1000 + (timeout_us % 1000 != 0); /* never round down to curl's 0 = none */

        return ms > LONG_MAX ? LONG_MAX : (long)ms;
}

/* A fresh easy handle for GET url.  Plain http only, no redirects, no proxy
 * (http_proxy in the environment must not reroute a loopback check), and a
 * new connection every time: the check proves the worker still accepts, and
 * no idle socket outlives it. */
static int xfer_open(struct xfer *x, const char *url, uint64_t timeout_us)
{
        long ms = timeout_ms_of(timeout_us);
        CURL *e;

        if (!url || timeout_us == 0)
                return -EINVAL;
        e = curl_easy_init();
        if (!e)
                return -ENOMEM;
        if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http") != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_PROXY, "") != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, ms) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ms) != CURLE_OK ||
            /* a Content-Length over the cap fails before the body is read */
            curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)HEALTH_BODY_MAX) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, xfer_write) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_WRITEDATA, x) != CURLE_OK) {
                curl_easy_cleanup(e);
                return -EINVAL; /* a URL curl refuses, or out of memory */
        }
        x->easy = e;
        x->start_us = now_mono_us();
        x->len = 0;
        x->too_big = false;
        return 0;
}

static void xfer_close(struct xfer *x)
{
        curl_easy_cleanup(x->easy);
        x->easy = NULL;
}

/* CURLcode to the errors health.h promises; curl's own text is not kept. */
static int xfer_errno(const struct xfer *x, CURLcode cc)
{
        switch (cc) {
        case CURLE_OK:
                return 0;
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_FILESIZE_EXCEEDED:
                return -E2BIG;
        case CURLE_WRITE_ERROR:
                return x->too_big ? -E2BIG : -EIO;
        default:
                return -EIO;
        }
}

static bool body_says_recording(const char *buf, size_t len)
{
        cJSON *root = cJSON_ParseWithLength(buf, len);
        bool yes = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "recording"));

        cJSON_Delete(root);
        return yes;
}

static void xfer_result(const struct xfer *x, int error, struct health_result *r)
{
        long status = 0;
        size_t n = x->len < sizeof(r->body) - 1 ? x->len : sizeof(r->body) - 1;

        memset(r, 0, sizeof(*r));
        if (x->easy && curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
                r->status = (int)status;
        r->error = error;
        /* only a body that arrived whole is parsed */
        r->all_recording = error == 0 && body_says_recording(x->buf, x->len);
        memcpy(r->body, x->buf, n);
        r->body[n] = '\0';
        r->elapsed_us = (uint64_t)(now_mono_us() - x->start_us);
}

/* ---- curl's sockets and timer on sd-event ---------------------------------- */

static void check_finish(struct health_checker *h, int error)
{
        struct health_result r;
        health_cb cb = h->cb;
        void *userdata = h->userdata;

        xfer_result(&h->xfer, error, &r);
        health_checker_cancel(h);
        cb(h, &r, userdata); /* last: h may be reused or freed in there */
}

/* After every socket_action: report the check if curl says it is done, or
 * fail it if the loop could not follow curl's wishes (it would hang). */
static void check_progress(struct health_checker *h)
{
        CURLMsg *m;
        int left;

        if (!h->xfer.easy)
                return;
        if (h->loop_error < 0) {
                check_finish(h, -EIO);
                return;
        }
        while ((m = curl_multi_info_read(h->multi, &left))) {
                char *owner = NULL;

                if (m->msg != CURLMSG_DONE)
                        continue;
                curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &owner);
                if (owner == (char *)h) {
                        check_finish(h, xfer_errno(&h->xfer, m->data.result));
                        return; /* m is stale and h may be gone */
                }
        }
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct health_checker *h = userdata;
        int flags = 0, running;

        if (revents & EPOLLIN)
                flags |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                flags |= CURL_CSELECT_OUT;
        if (revents & (EPOLLERR | EPOLLHUP))
                flags |= CURL_CSELECT_ERR;
        if (curl_multi_socket_action(h->multi, fd, flags, &running) != CURLM_OK)
                h->loop_error = -EIO;
        check_progress(h);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct health_checker *h = userdata;
        int running;

        if (curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running) != CURLM_OK)
                h->loop_error = -EIO;
        check_progress(h);
        return 0;
}

/* CURLMOPT_SOCKETFUNCTION: one io source per socket, kept as curl's socketp.
 * curl says REMOVE before it closes the socket, so the source goes first. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
        struct health_checker *h = userp;
        sd_event_source *s = socketp;
        uint32_t events = 0;
        int r;

        if (what == CURL_POLL_REMOVE) {
                sd_event_source_disable_unref(s);
                return 0;
        }
        if (what & CURL_POLL_IN)
                events |= EPOLLIN;
        if (what & CURL_POLL_OUT)
                events |= EPOLLOUT;
        if (s) {
                r = sd_event_source_set_io_events(s, events);
        } else {
                r = sd_event_add_io(h->event, &s, fd, events, on_io, h);
                if (r >= 0 && curl_multi_assign(h->multi, fd, s) != CURLM_OK) {
                        sd_event_source_disable_unref(s);
                        r = -ENOMEM;
                }
        }
        if (r < 0)
                h->loop_error = r;
        return 0;
}

/* CURLMOPT_TIMERFUNCTION: -1 stops the timer, anything else (re)arms it.
 * Never socket_action from here: 0 arms a timer that is already due and
 * fires on the next loop iteration.  curl calls again only when its deadline
 * changes, so a timer that fired before that deadline would never be re-armed
 * and the check would hang; the delay comes in whole ms, so arm 1 ms late. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
        struct health_checker *h = userp;
        int64_t at_us;
        int r;

        if (timeout_ms < 0) {
                r = sd_event_source_set_enabled(h->timer, SD_EVENT_OFF);
        } else {
                at_us = now_mono_us() + (timeout_ms > 0 ? timeout_ms + 1 : 0) * USEC_PER_MSEC;
                r = sd_event_source_set_time(h->timer, (uint64_t)at_us);
                if (r >= 0)
                        r = sd_event_source_set_enabled(h->timer, SD_EVENT_ONESHOT);
        }
        if (r < 0)
                h->loop_error = r;
        return 0;
}

/* ---- the API -------------------------------------------------------------- */

#define HEALTH_TIMER_ACCURACY_US 1000 /* sd-event's default of 250 ms would stretch a 300 ms timeout */

int health_checker_new(sd_event *e, struct health_checker **out)
{
        struct health_checker *h;
        int r;

        if (!e || !out)
                return -EINVAL;
        r = health_global_init();
        if (r < 0)
                return r;
        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->event = sd_event_ref(e);
        h->multi = curl_multi_init();
        if (!h->multi) {
                r = -ENOMEM;
                goto err;
        }
        if (curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
            curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h) != CURLM_OK ||
            curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
            curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h) != CURLM_OK) {
                r = -EIO;
                goto err;
        }
        r = sd_event_add_time(e, &h->timer, CLOCK_MONOTONIC, 0, HEALTH_TIMER_ACCURACY_US, on_timer, h);
        if (r < 0)
                goto err;
        r = sd_event_source_set_enabled(h->timer, SD_EVENT_OFF);
        if (r < 0)
                goto err;
        *out = h;
        return 0;
err:
        health_checker_free(h);
        return r;
}

void health_checker_free(struct health_checker *h)
{
        if (!h)
                return;
        health_checker_cancel(h);
        if (h->multi)
                curl_multi_cleanup(h->multi);
        sd_event_source_disable_unref(h->timer);
        sd_event_unref(h->event);
        free(h);
}

int health_check_start(struct health_checker *h, const char *url, uint64_t timeout_us, health_cb cb, void *userdata)
{
        CURLMcode mc;
        int r;

        if (!h || !cb)
                return -EINVAL;
        if (h->xfer.easy)
                return -EBUSY;
        r = xfer_open(&h->xfer, url, timeout_us);
        if (r < 0)
                return r;
        curl_easy_setopt(h->xfer.easy, CURLOPT_PRIVATE, (void *)h);
        h->cb = cb;
        h->userdata = userdata;
        h->loop_error = 0;
        /* curl answers with a 0 ms timer: the transfer starts from the loop */
        mc = curl_multi_add_handle(h->multi, h->xfer.easy);
        r = mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : mc != CURLM_OK ? -EIO : h->loop_error;
        if (r < 0) {
                health_checker_cancel(h);
                return r;
        }
        return 0;
}

/* Drops the running check, if any: removing the handle makes curl close its
 * socket (REMOVE frees the io source) and stop the timer. */
void health_checker_cancel(struct health_checker *h)
{
        if (!h || !h->xfer.easy)
                return;
        curl_multi_remove_handle(h->multi, h->xfer.easy);
        xfer_close(&h->xfer);
        h->cb = NULL;
        h->userdata = NULL;
        h->loop_error = 0;
}

/* Fills *r in every case (a URL or timeout refused before the transfer is
 * error -EINVAL, status 0) and returns r->error. */
int health_check_blocking(const char *url, uint64_t timeout_us, struct health_result *r)
{
        struct xfer *x;
        int err;

        memset(r, 0, sizeof(*r));
        err = health_global_init();
        x = err < 0 ? NULL : calloc(1, sizeof(*x)); /* 64 KB: not on the stack */
        if (!x) {
                r->error = err < 0 ? err : -ENOMEM;
                return r->error;
        }
        err = xfer_open(x, url, timeout_us);
        if (err < 0) {
                r->error = err;
        } else {
                err = xfer_errno(x, curl_easy_perform(x->easy));
                xfer_result(x, err, r);
                xfer_close(x);
        }
        free(x);
        return r->error;
}
