/*
 * kv_pool.c: block reference counts, the free stack, the prefix-cache hash
 * table and the LRU list of cached blocks (see kv_pool.h). All O(1) except
 * hash lookups, which walk one short bucket chain.
 */
#include "engine/kv_pool.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "base/err.h"

#define NIL (-1)

struct kv_pool {
    int64_t n_blocks;
    int block_size;
    int32_t *ref;
    bool *registered;
    uint64_t *hash;
    uint64_t *parent;
    int32_t *tokens;      /* [n_blocks][block_size]: content of registered blocks */
    int32_t *hnext;       /* bucket chains */
    int32_t *buckets;
    uint64_t bucket_mask;
    int32_t *lru_prev, *lru_next; /* cached blocks, oldest at lru_head */
    int32_t lru_head, lru_tail;
    int32_t *free_stack;
    int64_t n_free, n_cached, n_used;
};

void kv_pool_free(struct kv_pool *p)
{
    if (!p)
        return;
    free(p->ref);
    free(p->registered);
    free(p->hash);
    free(p->parent);
    free(p->tokens);
    free(p->hnext);
    free(p->buckets);
    free(p->lru_prev);
    free(p->lru_next);
    free(p->free_stack);
    free(p);
}

int kv_pool_create(int64_t n_blocks, int block_size, struct kv_pool **out, char *err,
                   size_t errlen)
{
    *out = NULL;
    if (n_blocks < 1 || n_blocks > INT32_MAX / 2 || block_size < 1 || block_size > 4096)
        return err_set(err, errlen, PAGODA_EINVAL, "KV pool of %lld blocks of %d slots",
                       (long long)n_blocks, block_size);
    struct kv_pool *p = calloc(1, sizeof *p);
    if (!p)
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    p->n_blocks = n_blocks;
    p->block_size = block_size;
    uint64_t nb = 1;
    while (nb < (uint64_t)n_blocks * 2)
        nb <<= 1;
    p->bucket_mask = nb - 1;
    const size_t n = (size_t)n_blocks;
    p->ref = calloc(n, sizeof *p->ref);
    p->registered = calloc(n, sizeof *p->registered);
    p->hash = calloc(n, sizeof *p->hash);
    p->parent = calloc(n, sizeof *p->parent);
    p->tokens = calloc(n * (size_t)block_size, sizeof *p->tokens);
    p->hnext = malloc(n * sizeof *p->hnext);
    p->buckets = malloc((size_t)nb * sizeof *p->buckets);
    p->lru_prev = malloc(n * sizeof *p->lru_prev);
    p->lru_next = malloc(n * sizeof *p->lru_next);
    p->free_stack = malloc(n * sizeof *p->free_stack);
    if (!p->ref || !p->registered || !p->hash || !p->parent || !p->tokens || !p->hnext ||
        !p->buckets || !p->lru_prev || !p->lru_next || !p->free_stack) {
        kv_pool_free(p);
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory for %lld KV blocks",
                       (long long)n_blocks);
    }
    for (uint64_t i = 0; i < nb; i++)
        p->buckets[i] = NIL;
    /* Low ids come out first, which keeps a fresh pool's memory compact. */
    for (int64_t i = 0; i < n_blocks; i++) {
        p->free_stack[i] = (int32_t)(n_blocks - 1 - i);
        p->hnext[i] = p->lru_prev[i] = p->lru_next[i] = NIL;
    }
    p->n_free = n_blocks;
    p->lru_head = p->lru_tail = NIL;
    *out = p;
    return 0;
}

static void lru_remove(struct kv_pool *p, int32_t id)
{
    int32_t a = p->lru_prev[id], b = p->lru_next[id];
    if (a != NIL)
        p->lru_next[a] = b;
    else
        p->lru_head = b;
    if (b != NIL)
        p->lru_prev[b] = a;
    else
        p->lru_tail = a;
    p->lru_prev[id] = p->lru_next[id] = NIL;
    p->n_cached--;
}

static void lru_push(struct kv_pool *p, int32_t id)
{
    p->lru_prev[id] = p->lru_tail;
    p->lru_next[id] = NIL;
    if (p->lru_tail != NIL)
        p->lru_next[p->lru_tail] = id;
    else
        p->lru_head = id;
    p->lru_tail = id;
    p->n_cached++;
}

static void unregister(struct kv_pool *p, int32_t id)
{
    int32_t *link = &p->buckets[p->hash[id] & p->bucket_mask];
    while (*link != NIL && *link != id)
        link = &p->hnext[*link];
    if (*link == id)
        *link = p->hnext[id];
    p->hnext[id] = NIL;
    p->registered[id] = false;
}

int32_t kv_block_alloc(struct kv_pool *p)
{
    int32_t id;
    if (p->n_free > 0) {
        id = p->free_stack[--p->n_free];
    } else if (p->lru_head != NIL) {
        id = p->lru_head;
        lru_remove(p, id);
        unregister(p, id);
    } else {
        return -1;
    }
    p->ref[id] = 1;
    p->n_used++;
    return id;
}

void kv_block_ref(struct kv_pool *p, int32_t id)
{
    if (p->ref[id]++ == 0) {
        lru_remove(p, id); /* only registered blocks sit unreferenced outside the free stack */
        p->n_used++;
    }
}

void kv_block_release(struct kv_pool *p, int32_t id)
{
    if (p->ref[id] <= 0)
        return;
    if (--p->ref[id] > 0)
        return;
    p->n_used--;
    if (p->registered[id])
        lru_push(p, id);
    else
        p->free_stack[p->n_free++] = id;
}

int32_t kv_block_refs(const struct kv_pool *p, int32_t id) { return p->ref[id]; }

bool kv_block_shared(const struct kv_pool *p, int32_t id)
{
    return p->ref[id] > 1 || p->registered[id];
}

uint64_t kv_block_hash(uint64_t parent, const int32_t *tokens, int block_size)
{
    return XXH3_64bits_withSeed(tokens, sizeof(int32_t) * (size_t)block_size, parent);
}

static int32_t find(const struct kv_pool *p, uint64_t hash, uint64_t parent, const int32_t *tokens)
{
    for (int32_t id = p->buckets[hash & p->bucket_mask]; id != NIL; id = p->hnext[id])
        if (p->hash[id] == hash && p->parent[id] == parent &&
            !memcmp(p->tokens + (size_t)id * (size_t)p->block_size, tokens,
                    sizeof(int32_t) * (size_t)p->block_size))
            return id;
    return NIL;
}

bool kv_block_register(struct kv_pool *p, int32_t id, uint64_t hash, uint64_t parent,
                       const int32_t *tokens)
{
    if (p->registered[id] || find(p, hash, parent, tokens) != NIL)
        return false;
    p->registered[id] = true;
    p->hash[id] = hash;
    p->parent[id] = parent;
    memcpy(p->tokens + (size_t)id * (size_t)p->block_size, tokens,
           sizeof(int32_t) * (size_t)p->block_size);
    int32_t *b = &p->buckets[hash & p->bucket_mask];
    p->hnext[id] = *b;
    *b = id;
    return true;
}

int32_t kv_prefix_lookup(struct kv_pool *p, uint64_t hash, uint64_t parent, const int32_t *tokens)
{
    int32_t id = find(p, hash, parent, tokens);
    if (id != NIL)
        kv_block_ref(p, id);
    return id;
}

void kv_pool_counts(const struct kv_pool *p, struct kv_pool_counts *c)
{
    c->total = p->n_blocks;
    c->used = p->n_used;
    c->cached = p->n_cached;
    c->free = p->n_free;
}

void kv_pool_clear_cache(struct kv_pool *p)
{
    while (p->lru_head != NIL) {
        int32_t id = p->lru_head;
        lru_remove(p, id);
        unregister(p, id);
        p->free_stack[p->n_free++] = id;
    }
}
