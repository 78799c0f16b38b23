/*
 * attention.h: causal multi-head attention (GQA) reading K and V through block
 * tables from a paged KV store. The store is a flat array of fixed-size
 * blocks; which blocks a sequence owns is the engine's business, this layer
 * only reads and writes them. Inside a block the layout is
 *   [layer][K or V][kv head][slot][row of head_dim elements]
 * so one head's keys for a block are contiguous. A row is stored as F16
 * (default), BF16 or Q8_0 (half the bytes of F16; head_dim a multiple of 32).
 *
 * For a query at position p, attention covers positions 0..p of its sequence
 * in order; the result depends only on that query and those K/V values, never
 * on other queries handled in the same call or on the thread count (batch
 * invariance). See attention.c for the exact per-query arithmetic.
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
    int type;           /* element type: PG_TYPE_F16, PG_TYPE_BF16 or PG_TYPE_Q8_0 */
    size_t row_bytes;   /* bytes of one head's K or V row (type_row_size of head_dim) */
    int64_t n_blocks;
    size_t block_bytes; /* bytes of one block (all layers, K and V) */
    void *data;         /* n_blocks * block_bytes bytes */
};

/* Fills the geometry fields, type, row_bytes and block_bytes; data and
 * n_blocks are the caller's. Returns 0, PAGODA_EINVAL for a non-positive
 * size, or PAGODA_EUNSUPPORTED for a type other than the three above or Q8_0
 * with head_dim not a multiple of 32 (kv is then left unusable). */
int kv_store_layout(struct kv_store *kv, int n_layer, int n_kv_heads, int head_dim,
                    int block_size, int type);

/* Pointer to the K (which = 0) or V (1) row of one slot (row_bytes bytes). */
static inline void *kv_slot(const struct kv_store *kv, int64_t block, int layer, int which,
                            int kv_head, int slot)
{
    size_t row = (((size_t)layer * 2 + (size_t)which) * (size_t)kv->n_kv_heads +
                  (size_t)kv_head) * (size_t)kv->block_size + (size_t)slot;
    return (uint8_t *)kv->data + (size_t)block * kv->block_bytes + row * kv->row_bytes;
}

/* One attention call covers n_tokens queries, each of one sequence. */
struct attn_batch {
    int n_tokens;
    const int32_t *pos;                  /* [n_tokens] position of each query */
    const int32_t *seq;                  /* [n_tokens] index into block_tables */
    const int32_t *const *block_tables;  /* per sequence: block ids by position / block_size */
};

/* Stores the K and V rows of every token of the batch for one layer (F32 in,
 * rounded or quantized to kv->type with the reference rounding, so the same
 * input always gives the same bytes): k and v are [n_tokens][n_kv_heads * head_dim]. */
void attn_store_kv(const struct kv_store *kv, int layer, const struct attn_batch *b,
                   const float *k, const float *v);

/* out[t] = softmax(q[t]·Kᵀ · scale) · V over positions 0..pos[t] of seq[t],
 * for n_heads query heads sharing n_kv_heads KV heads. q and out are
 * [n_tokens][n_heads * head_dim]. Queries of one sequence that are adjacent
 * in the batch are processed together in tiles, so each K/V row is read once
 * per tile; tiles are spread over the pool. scratch must hold
 * scratch_per_thread >= attn_scratch_floats(head_dim) floats per pool thread. */
void attn_forward(struct pool *pool, const struct kv_store *kv, int layer,
                  const struct attn_batch *b, int n_heads, float scale, const float *q,
                  float *out, float *scratch, size_t scratch_per_thread);

/* Floats of scratch one thread needs (independent of the context length). */
size_t attn_scratch_floats(int head_dim);

#endif
