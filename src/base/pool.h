/*
 * pool.h: one persistent pool of worker threads. pool_run() hands the same
 * function to n threads (the caller is thread 0) and returns when all are done.
 * Workers spin briefly on a new job (a decode step issues hundreds of small
 * jobs per token), then sleep on a condition variable.
 */
#ifndef PAGODA_BASE_POOL_H
#define PAGODA_BASE_POOL_H

#include <stddef.h>

struct pool;

typedef void (*pool_fn)(void *ctx, int ith, int nth);

/* Creates a pool of n_threads threads in all (the caller counts as one, so
 * n_threads - 1 workers are started). n_threads <= 0 means the number of CPUs.
 * Returns NULL and fills err on failure. */
struct pool *pool_create(int n_threads, char *err, size_t errlen);

/* Stops and joins the workers. NULL is fine. */
void pool_destroy(struct pool *p);

/* Threads in the pool, the caller included. */
int pool_size(const struct pool *p);

/* Runs fn(ctx, ith, nth) for ith = 0..nth-1 on nth threads, nth = the pool size,
 * and waits for all. Must not be called from inside a job or from two threads
 * at once. A NULL pool runs fn(ctx, 0, 1) on the caller. */
void pool_run(struct pool *p, pool_fn fn, void *ctx);

/* The same with at most n threads (small jobs are cheaper on fewer threads). */
void pool_run_n(struct pool *p, int n, pool_fn fn, void *ctx);

/* The number of CPUs this process may run on. */
int pool_cpu_count(void);

#endif
