/*
 * scratch.c: work buffers (scratch.h): large ones on 2 MiB pages where the
 * system gives them, and the per-thread buffer, held through a pthread key
 * so that it is freed when its thread exits.
 */
#include "base/scratch.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

/* Below this, a buffer comes from malloc: rounding it up to a 2 MiB page
 * would waste more than its cache behaviour is worth. */
#define PAGE_BUF_MIN_LARGE (64 * 1024)
#define PAGE_BUF_HUGE ((size_t)2 << 20)

/* 2 MiB-aligned anonymous memory, asked to be backed by huge pages; NULL
 * when the mapping fails or the system has no such request. */
static void *map_huge(size_t bytes)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    /* Map one page more and trim, so the start falls on a 2 MiB boundary:
     * a huge page can only back an aligned range. */
    uint8_t *raw = mmap(NULL, bytes + PAGE_BUF_HUGE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    uint8_t *p = (uint8_t *)(((uintptr_t)raw + PAGE_BUF_HUGE - 1) & ~(uintptr_t)(PAGE_BUF_HUGE - 1));
    if (p > raw)
        munmap(raw, (size_t)(p - raw));
    const size_t tail = (size_t)(raw + bytes + PAGE_BUF_HUGE - (p + bytes));
    if (tail)
        munmap(p + bytes, tail);
    madvise(p, bytes, MADV_HUGEPAGE); /* a request: without it, 4 KiB pages */
    return p;
#else
    (void)bytes;
    return NULL;
#endif
}

static void unmap_huge(void *p, size_t bytes)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    munmap(p, bytes);
#else
    (void)p, (void)bytes; /* map_huge never maps here */
#endif
}

void page_buf_release(struct page_buf *b)
{
    if (b->mapped)
        unmap_huge(b->p, b->cap);
    else
        free(b->p);
    *b = (struct page_buf){0};
}

int page_buf_reserve(struct page_buf *b, size_t bytes)
{
    if (b->p && bytes <= b->cap)
        return 0;
    if (bytes < 64)
        bytes = 64;
    /* The new buffer is made while the old one still stands, so a grown
     * buffer never comes back at the old address (callers that kept data
     * there tell by the pointer whether it is still theirs). */
    struct page_buf nb = {0};
    if (bytes >= PAGE_BUF_MIN_LARGE && bytes <= SIZE_MAX - 2 * PAGE_BUF_HUGE) {
        nb.cap = (bytes + PAGE_BUF_HUGE - 1) / PAGE_BUF_HUGE * PAGE_BUF_HUGE;
        nb.p = map_huge(nb.cap);
        nb.mapped = nb.p != NULL;
    }
    if (!nb.p && bytes <= SIZE_MAX - 63) {
        nb.cap = (bytes + 63) / 64 * 64;
        nb.p = aligned_alloc(64, nb.cap);
    }
    page_buf_release(b);
    if (!nb.p)
        return -1;
    *b = nb;
    return 0;
}

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void scratch_buf_free(void *v)
{
    struct page_buf *b = v;
    if (b)
        page_buf_release(b);
    free(b);
}

static _Thread_local uint64_t scratch_calls;

uint64_t thread_scratch_calls(void) { return scratch_calls; }

static void scratch_key_init(void) { scratch_key_ok = pthread_key_create(&scratch_key, scratch_buf_free) == 0; }

void *thread_scratch(size_t bytes)
{
    scratch_calls++;
    pthread_once(&scratch_once, scratch_key_init);
    if (!scratch_key_ok)
        return NULL;
    struct page_buf *b = pthread_getspecific(scratch_key);
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b || pthread_setspecific(scratch_key, b) != 0) {
            free(b);
            return NULL;
        }
    }
    return page_buf_reserve(b, bytes) == 0 ? b->p : NULL;
}
