/*
 * attention.h: causal multi-head attention (GQA) reading K and V through block
 * tables from a paged KV store. The store is a flat array of fixed-size
 * blocks; which blocks a sequence owns is the engine's business, this layer
 * only reads and writes them. Inside a block the layout is
 *   [layer][K or V][kv head][slot][head_dim]
 * so one head's keys for a block are contiguous. KV elements are F16.
 *
 * For a query at position p, attention covers positions 0..p of its sequence
 * in order; the result depends only on that query and those K/V values, never
 * on other queries handled in the same call (batch invariance).
 */
#ifndef PAGODA_OPS_ATTENTION_H
#define PAGODA_OPS_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#include "base/pool.h"

struct kv_store {
    int n_layer;
    int n_kv_heads;
    int head_dim;
    int block_size;     /* token slots per block */
    int64_t n_blocks;
    size_t block_bytes; /* bytes of one block (all layers, K and V) */
    uint16_t *data;     /* n_blocks * block_bytes bytes of F16 */
};

/* Fills the geometry fields and block_bytes; data and n_blocks are the caller's. */
void kv_store_layout(struct kv_store *kv, int n_layer, int n_kv_heads, int head_dim,
                     int block_size);

/* Pointer to the K (which = 0) or V (1) row of one slot. */
static inline uint16_t *kv_slot(const struct kv_store *kv, int64_t block, int layer, int which,
                                int kv_head, int slot)
{
    size_t per_head = (size_t)kv->block_size * (size_t)kv->head_dim;
    size_t off = ((((size_t)layer * 2 + (size_t)which) * (size_t)kv->n_kv_heads +
                   (size_t)kv_head) * per_head) + (size_t)slot * (size_t)kv->head_dim;
    return (uint16_t *)((uint8_t *)kv->data + (size_t)block * kv->block_bytes) + off;
}

/* One attention call covers n_tokens queries, each of one sequence. */
struct attn_batch {
    int n_tokens;
    const int32_t *pos;                  /* [n_tokens] position of each query */
    const int32_t *seq;                  /* [n_tokens] index into block_tables */
    const int32_t *const *block_tables;  /* per sequence: block ids by position / block_size */
};

/* Stores the K and V rows of every token of the batch for one layer (F32 in,
 * rounded to F16): k and v are [n_tokens][n_kv_heads * head_dim]. */
void attn_store_kv(const struct kv_store *kv, int layer, const struct attn_batch *b,
                   const float *k, const float *v);

/* out[t] = softmax(q[t]·Kᵀ · scale) · V over positions 0..pos[t] of seq[t],
 * for n_heads query heads sharing n_kv_heads KV heads. q and out are
 * [n_tokens][n_heads * head_dim]. Work is split over the pool by (token, head).
 * scratch must hold attn_scratch_floats(max_pos + 1) floats per pool thread. */
void attn_forward(struct pool *pool, const struct kv_store *kv, int layer,
                  const struct attn_batch *b, int n_heads, float scale, const float *q,
                  float *out, float *scratch, size_t scratch_per_thread);

/* Floats of scratch one thread needs for queries reaching n_pos positions. */
size_t attn_scratch_floats(int64_t n_pos, int head_dim);

#endif
