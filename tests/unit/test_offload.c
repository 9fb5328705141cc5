/* Unit tests of supervisor/offload.c: jobs run in order on the thread,
 * done() comes back on the loop, a full queue refuses, and free runs what
 * is left. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "supervisor/offload.h"

struct job {
        struct offload_job j;
        int n;
        int *ran, *n_ran, *done_order, *n_done;
        pthread_t runner;
        sem_t *gate; /* run() says it started, then waits on it, when set */
};

static sem_t started;

static void run(struct offload_job *oj)
{
        struct job *j = (struct job *)oj;

        if (j->gate) {
                sem_post(&started);
                sem_wait(j->gate);
        }
        j->runner = pthread_self();
        j->ran[(*j->n_ran)++] = j->n;
}

static void done(struct offload_job *oj)
{
        struct job *j = (struct job *)oj;

        assert_false(pthread_equal(j->runner, pthread_self())); /* ran elsewhere, done here */
        j->done_order[(*j->n_done)++] = j->n;
        free(j);
}

static struct job *job_new(int n, int *ran, int *n_ran, int *order, int *n_done, sem_t *gate)
{
        struct job *j = calloc(1, sizeof(*j));

        assert_non_null(j);
        *j = (struct job){ .j = { .run = run, .done = done }, .n = n, .ran = ran, .n_ran = n_ran,
                           .done_order = order, .n_done = n_done, .gate = gate };
        return j;
}

static void test_jobs_run_in_order_and_come_back_on_the_loop(void **state)
{
        sd_event *e;
        struct offload *o;
        int ran[8], n_ran = 0, order[8], n_done = 0;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(offload_new(e, &o), 0);
        for (int i = 0; i < 8; i++)
                assert_int_equal(offload_submit(o, &job_new(i, ran, &n_ran, order, &n_done, NULL)->j), 0);
        while (n_done < 8)
                assert_true(sd_event_run(e, 5000000) >= 0);
        assert_int_equal(offload_pending(o), 0);
        for (int i = 0; i < 8; i++) {
                assert_int_equal(ran[i], i);
                assert_int_equal(order[i], i);
        }
        offload_free(o);
        sd_event_unref(e);
}

static void test_a_full_queue_refuses_and_free_runs_what_is_left(void **state)
{
        sd_event *e;
        struct offload *o;
        static int ran[OFFLOAD_MAX_JOBS + 2], order[OFFLOAD_MAX_JOBS + 2];
        int n_ran = 0, n_done = 0;
        sem_t gate;
        struct job *extra;

        assert_int_equal(sem_init(&gate, 0, 0), 0);
        assert_int_equal(sem_init(&started, 0, 0), 0);
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(offload_new(e, &o), 0);
        /* the first job holds the thread: the rest wait in the queue */
        assert_int_equal(offload_submit(o, &job_new(0, ran, &n_ran, order, &n_done, &gate)->j), 0);
        sem_wait(&started);
        for (int i = 1; i <= OFFLOAD_MAX_JOBS; i++)
                assert_int_equal(offload_submit(o, &job_new(i, ran, &n_ran, order, &n_done, NULL)->j), 0);
        extra = job_new(-1, ran, &n_ran, order, &n_done, NULL);
        assert_int_equal(offload_submit(o, &extra->j), -EAGAIN);
        free(extra);
        assert_int_equal(offload_pending(o), OFFLOAD_MAX_JOBS + 1);
        sem_post(&gate);
        offload_free(o); /* runs them all, and every done() */
        assert_int_equal(n_ran, OFFLOAD_MAX_JOBS + 1);
        assert_int_equal(n_done, OFFLOAD_MAX_JOBS + 1);
        for (int i = 0; i < n_done; i++)
                assert_int_equal(order[i], i);
        sd_event_unref(e);
        sem_destroy(&gate);
        sem_destroy(&started);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_jobs_run_in_order_and_come_back_on_the_loop),
                cmocka_unit_test(test_a_full_queue_refuses_and_free_runs_what_is_left),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
