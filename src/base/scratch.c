/*
 * scratch.c: the per-thread work buffer (scratch.h), held through a pthread
 * key so that it is freed when its thread exits.
 */
#include "base/scratch.h"

#include <pthread.h>
#include <stdlib.h>

struct scratch_buf {
    void *p;
    size_t cap;
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void scratch_buf_free(void *v)
{
    struct scratch_buf *b = v;
    if (b)
        free(b->p);
    free(b);
}

static void scratch_key_init(void) { scratch_key_ok = pthread_key_create(&scratch_key, scratch_buf_free) == 0; }

void *thread_scratch(size_t bytes)
{
    pthread_once(&scratch_once, scratch_key_init);
    if (!scratch_key_ok)
        return NULL;
    struct scratch_buf *b = pthread_getspecific(scratch_key);
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b || pthread_setspecific(scratch_key, b) != 0) {
            free(b);
            return NULL;
        }
    }
    if (bytes > b->cap || !b->p) {
        const size_t cap = (bytes + 63) / 64 * 64;
        void *p = aligned_alloc(64, cap ? cap : 64);
        if (!p)
            return NULL;
        free(b->p);
        b->p = p;
        b->cap = cap ? cap : 64;
    }
    return b->p;
}
