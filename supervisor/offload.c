/* offload: one thread for the supervisor's blocking chores (see offload.h). */
#include "supervisor/offload.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"

struct offload {
        pthread_mutex_t mu;
        pthread_cond_t cv;
        pthread_t thread;
        bool stopping;
        struct offload_job *todo, *todo_tail; /* for the thread */
        struct offload_job *done, *done_tail; /* run, for the loop */
        size_t queued, pending;
        int efd;
        sd_event_source *src;
};

static void push(struct offload_job **head, struct offload_job **tail, struct offload_job *j)
{
        j->next = NULL;
        if (*tail)
                (*tail)->next = j;
        else
                *head = j;
        *tail = j;
}

static struct offload_job *pop(struct offload_job **head, struct offload_job **tail)
{
        struct offload_job *j = *head;

        if (j && !(*head = j->next))
                *tail = NULL;
        return j;
}

static void *worker(void *arg)
{
        struct offload *o = arg;
        uint64_t one = 1;

        pthread_mutex_lock(&o->mu);
        for (;;) {
                struct offload_job *j;

                while (!o->todo && !o->stopping)
                        pthread_cond_wait(&o->cv, &o->mu);
                if (!(j = pop(&o->todo, &o->todo_tail)))
                        break; /* stopping, and nothing left */
                o->queued--;
                pthread_mutex_unlock(&o->mu);
                j->run(j);
                pthread_mutex_lock(&o->mu);
                push(&o->done, &o->done_tail, j);
                /* an eventfd write cannot block here (the counter is far from full) */
                if (write(o->efd, &one, sizeof(one)) < 0)
                        log_warn("supervisor: offload: eventfd: %m");
        }
        pthread_mutex_unlock(&o->mu);
        return NULL;
}

/* done() of every job run so far, on the loop. */
static void collect(struct offload *o)
{
        for (;;) {
                struct offload_job *j;

                pthread_mutex_lock(&o->mu);
                j = pop(&o->done, &o->done_tail);
                if (j)
                        o->pending--;
                pthread_mutex_unlock(&o->mu);
                if (!j)
                        return;
                j->done(j);
        }
}

static int on_event(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        uint64_t n;

        if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
                log_warn("supervisor: offload: eventfd: %m");
        collect(userdata);
        return 0;
}

int offload_new(sd_event *e, struct offload **out)
{
        struct offload *o = calloc(1, sizeof(*o));
        int r;

        if (!o)
                return -ENOMEM;
        pthread_mutex_init(&o->mu, NULL);
        pthread_cond_init(&o->cv, NULL);
        if ((o->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
                r = -errno;
                goto fail;
        }
        if ((r = sd_event_add_io(e, &o->src, o->efd, EPOLLIN, on_event, o)) < 0)
                goto fail;
        if ((r = -pthread_create(&o->thread, NULL, worker, o)) < 0)
                goto fail;
        *out = o;
        return 0;
fail:
        sd_event_source_disable_unref(o->src);
        if (o->efd >= 0)
                close(o->efd);
        pthread_cond_destroy(&o->cv);
        pthread_mutex_destroy(&o->mu);
        free(o);
        return r;
}

int offload_submit(struct offload *o, struct offload_job *j)
{
        int r = 0;

        pthread_mutex_lock(&o->mu);
        if (o->stopping)
                r = -ESHUTDOWN;
        else if (o->queued >= OFFLOAD_MAX_JOBS)
                r = -EAGAIN;
        else {
                push(&o->todo, &o->todo_tail, j);
                o->queued++;
                o->pending++;
                pthread_cond_signal(&o->cv);
        }
        pthread_mutex_unlock(&o->mu);
        return r;
}

size_t offload_pending(const struct offload *o)
{
        size_t n;

        pthread_mutex_lock((pthread_mutex_t *)&o->mu);
        n = o->pending;
        pthread_mutex_unlock((pthread_mutex_t *)&o->mu);
        return n;
}

void offload_free(struct offload *o)
{
        if (!o)
                return;
        pthread_mutex_lock(&o->mu);
        o->stopping = true;
        pthread_cond_signal(&o->cv);
        pthread_mutex_unlock(&o->mu);
        pthread_join(o->thread, NULL);
        collect(o);
        sd_event_source_disable_unref(o->src);
        close(o->efd);
        pthread_cond_destroy(&o->cv);
        pthread_mutex_destroy(&o->mu);
        free(o);
}
