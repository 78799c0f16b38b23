/*
 * scratch.h: one growing work buffer per thread, kept between calls and freed
 * with the thread, for kernels that prepare data on every call (a decode step
 * makes hundreds of them) and should not allocate each time.
 */
#ifndef PAGODA_BASE_SCRATCH_H
#define PAGODA_BASE_SCRATCH_H

#include <stddef.h>

/* At least bytes, 64-byte aligned, owned by the calling thread. The contents
 * do not survive the next call on the same thread, which may move the buffer:
 * a caller is done with one before it (or anything it calls) asks again.
 * NULL when out of memory. */
void *thread_scratch(size_t bytes);

#endif
