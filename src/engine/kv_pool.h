/*
 * kv_pool.h: the engine's KV block bookkeeping. Blocks are reference-counted;
 * a full block whose tokens are known can be registered under a chained hash
 * (its parent block's hash and its own token ids), so a later sequence with
 * the same prefix reuses it. Unreferenced registered blocks stay cached, in
 * least-recently-released order, until an allocation needs them. The K/V bytes
 * themselves live in a struct kv_store; this layer only hands out block ids.
 */
#ifndef PAGODA_ENGINE_KV_POOL_H
#define PAGODA_ENGINE_KV_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kv_pool;

int kv_pool_create(int64_t n_blocks, int block_size, struct kv_pool **out, char *err,
                   size_t errlen);
void kv_pool_free(struct kv_pool *p);

/* A free block with one reference (evicting the least recently cached block
 * when none is free), or -1 when every block is referenced. */
int32_t kv_block_alloc(struct kv_pool *p);
void kv_block_ref(struct kv_pool *p, int32_t id);
/* Drops one reference; at zero the block becomes free, or cached if registered. */
void kv_block_release(struct kv_pool *p, int32_t id);
int32_t kv_block_refs(const struct kv_pool *p, int32_t id);
/* True when the block must not be written in place (shared, or registered in
 * the prefix cache): the writer copies it first. */
bool kv_block_shared(const struct kv_pool *p, int32_t id);

/* The chained hash of a full block: parent is the previous block's hash (0 for
 * the first block), tokens its block_size ids. */
uint64_t kv_block_hash(uint64_t parent, const int32_t *tokens, int block_size);

/* Registers a full block's content. Returns false (and changes nothing) when
 * another block already holds the same content. */
bool kv_block_register(struct kv_pool *p, int32_t id, uint64_t hash, uint64_t parent,
                       const int32_t *tokens);

/* The block holding exactly this content, with a new reference taken, or -1. */
int32_t kv_prefix_lookup(struct kv_pool *p, uint64_t hash, uint64_t parent,
                         const int32_t *tokens);

struct kv_pool_counts {
    int64_t total, used, cached, free;
};
void kv_pool_counts(const struct kv_pool *p, struct kv_pool_counts *c);

/* Drops every cached (unreferenced) block from the prefix cache. */
void kv_pool_clear_cache(struct kv_pool *p);

#endif
