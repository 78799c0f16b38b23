/* pool.c: the persistent thread pool (see pool.h). */
#include "base/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/err.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* How long a worker spins for the next job before it sleeps (iterations of
 * a pause loop: roughly 50-100 microseconds). */
#define POOL_SPIN 20000
/* Spinning past this many pauses yields the core now and then: on a machine
 * with more runnable threads than cores, the thread we wait for may be the
 * one our spinning keeps off the core. */
#define POOL_SPIN_YIELD 2000
#define POOL_YIELD_EVERY 256

struct worker {
    struct pool *pool;
    int ith;
    pthread_t thread;
};

struct pool {
    int n_threads;
    struct worker *workers;

    pool_fn fn;
    void *ctx;
    int nth; /* threads taking part in the current job */

    _Atomic unsigned generation; /* bumped for each job */
    _Atomic int pending;         /* workers still in the current job */
    _Atomic int stop;
    _Atomic int sleepers;

    pthread_mutex_t mu;
    pthread_cond_t wake;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct pool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned gen = atomic_load_explicit(&p->generation, memory_order_acquire);
        int spins = 0;
        while (gen == seen && !atomic_load_explicit(&p->stop, memory_order_relaxed)) {
            if (++spins < POOL_SPIN) {
                CPU_RELAX();
                if (spins > POOL_SPIN_YIELD && spins % POOL_YIELD_EVERY == 0)
                    sched_yield();
            } else {
                pthread_mutex_lock(&p->mu);
                atomic_fetch_add(&p->sleepers, 1);
                while (atomic_load(&p->generation) == seen && !atomic_load(&p->stop))
                    pthread_cond_wait(&p->wake, &p->mu);
                atomic_fetch_sub(&p->sleepers, 1);
                pthread_mutex_unlock(&p->mu);
                spins = 0;
            }
            gen = atomic_load_explicit(&p->generation, memory_order_acquire);
        }
        if (atomic_load(&p->stop))
            return NULL;
        seen = gen;
        if (w->ith < p->nth)
            p->fn(p->ctx, w->ith, p->nth);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
}

int pool_cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

struct pool *pool_create(int n_threads, char *err, size_t errlen)
{
    if (n_threads <= 0)
        n_threads = pool_cpu_count();
    if (n_threads > 1024) {
        err_set(err, errlen, PAGODA_EINVAL, "thread count %d is too large (at most 1024)",
                n_threads);
        return NULL;
    }
    struct pool *p = calloc(1, sizeof *p);
    if (!p) {
        err_set(err, errlen, PAGODA_ENOMEM, "out of memory creating the thread pool");
        return NULL;
    }
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->workers = calloc((size_t)n_threads, sizeof *p->workers);
    if (!p->workers) {
        free(p);
        err_set(err, errlen, PAGODA_ENOMEM, "out of memory creating the thread pool");
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        p->workers[i].pool = p;
        p->workers[i].ith = i;
        if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]) != 0) {
            p->n_threads = i;
            pool_destroy(p);
            err_set(err, errlen, PAGODA_ENOMEM, "could not start worker thread %d", i);
            return NULL;
        }
    }
    return p;
}

void pool_destroy(struct pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++)
        pthread_join(p->workers[i].thread, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p->workers);
    free(p);
}

int pool_size(const struct pool *p)
{
    return p ? p->n_threads : 1;
}

void pool_run_n(struct pool *p, int n, pool_fn fn, void *ctx)
{
    if (!p || p->n_threads == 1 || n <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    if (n > p->n_threads)
        n = p->n_threads;
    p->fn = fn;
    p->ctx = ctx;
    p->nth = n;
    /* Every worker acknowledges every job (idle ones just count down), so the
     * generation each worker saw stays in step with the pool's. */
    atomic_store_explicit(&p->pending, p->n_threads - 1, memory_order_relaxed);
    atomic_fetch_add(&p->generation, 1); /* seq_cst: ordered before the sleepers load */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    fn(ctx, 0, n);
    for (unsigned spins = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0;) {
        CPU_RELAX();
        if (++spins > POOL_SPIN_YIELD && spins % POOL_YIELD_EVERY == 0)
            sched_yield();
    }
}

void pool_run(struct pool *p, pool_fn fn, void *ctx)
{
    pool_run_n(p, p ? p->n_threads : 1, fn, ctx);
}
