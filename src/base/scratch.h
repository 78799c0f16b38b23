/*
 * scratch.h: work buffers for kernels. One growing buffer per thread, kept
 * between calls and freed with the thread, for kernels that prepare data on
 * every call (a decode step makes hundreds of them) and should not allocate
 * each time; and the growable buffer type behind it.
 */
#ifndef PAGODA_BASE_SCRATCH_H
#define PAGODA_BASE_SCRATCH_H

#include <stddef.h>
#include <stdint.h>

/* A buffer that grows on demand. From 64 KiB on it is mapped on 2 MiB
 * boundaries and asks the system for huge pages (Linux: madvise; it may
 * say no, and nothing else changes). Why: kernels sweep these buffers many
 * times per call, and with 4 KiB pages two threads running the same GEMM
 * side by side were not alike: in some runs one of them ran at half speed
 * for the whole run (which thread and which CPU varied from run to run).
 * With 2 MiB pages every run gave both threads full speed. */
struct page_buf {
    void *p;
    size_t cap;
    int mapped; /* p is a mapping (else from aligned_alloc) */
};

/* Makes b hold at least bytes, 64-byte aligned; the contents are not kept
 * when it grows, and a grown buffer is never at the old address. 0, or -1
 * when out of memory (b is then empty). */
int page_buf_reserve(struct page_buf *b, size_t bytes);
void page_buf_release(struct page_buf *b);

/* At least bytes, 64-byte aligned, owned by the calling thread. A caller is
 * done with the buffer before it (or anything it calls) asks again: the next
 * call may move it. The contents survive a call that returns the same
 * pointer, so a caller that asked last (see thread_scratch_calls) may use
 * what it left there. NULL when out of memory. */
void *thread_scratch(size_t bytes);

/* How many times the calling thread has called thread_scratch: a caller that
 * finds the count one past the one it saw after its own last call knows that
 * nobody else has asked for the buffer since. */
uint64_t thread_scratch_calls(void);

#endif
