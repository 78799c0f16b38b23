/*
 * attention_impl.h: what attention.c's tile driver shares with the per-ISA
 * pieces (attention_avx2.c, attention_avx512.c). The driver owns the order
 * of work; each ISA supplies the four numeric steps below. Every step treats
 * each query row on its own with a fixed sequence of operations, so how many
 * rows a call handles, or which, never changes a row's bits.
 */
#ifndef PAGODA_OPS_ATTENTION_IMPL_H
#define PAGODA_OPS_ATTENTION_IMPL_H

#include <stdint.h>

#include "ops/attention.h"

/* KV positions per online-softmax step. Steps start at multiples of this
 * absolute position, so a query sees the same steps in any batch. */
#define ATTN_CHUNK 32
/* Query rows (token, head pairs sharing one KV head) per tile. */
#define ATTN_TILE_ROWS 16
/* Steps whose scores a tile keeps from its first pass for its second
 * (ATTN_TILE_ROWS * ATTN_CHUNK floats each; 128 KiB in all). */
#define ATTN_CACHE_CHUNKS 64

struct attn_isa {
    /* One stored K/V row (type kv->type, hd elements) to floats; exact. */
    void (*row_to_f32)(int type, const void *src, float *dst, int hd);
    /* s[r * ATTN_CHUNK + j] = (q_r · k_j) * scale for r < n_rows, j < n_pos;
     * q_r = q + r * hd, k_j = k + j * hd. */
    void (*scores)(const float *q, int n_rows, const float *k, int n_pos, int hd, float scale,
                   float *s);
    /* p[j] = exp(p[j] - max) for all ATTN_CHUNK entries (-inf gives 0);
     * returns their sum. */
    float (*exp_sum)(float *p, float max);
    /* p[j] = exp(p[j] - max) * inv for all ATTN_CHUNK entries, rounded to an
     * F16 value when round_f16; the same bits on every ISA. */
    void (*probs)(float *p, float max, float inv, int round_f16);
    /* For each row r < n_rows, for j = 0..n[r)-1 in order: acc_r += p_r[j] * v_j;
     * acc_r = acc + r * hd, p_r = p + r * ATTN_CHUNK, v_j = v + j * hd. */
    void (*accumulate)(float *acc, int n_rows, const float *p, const int *n, const float *v,
                       int hd);
};

#if defined(PAGODA_HAVE_X86)
/* Valid when head_dim % 8 == 0 (AVX2) / % 16 == 0 (AVX-512). */
extern const struct attn_isa attn_isa_avx2;
extern const struct attn_isa attn_isa_avx512;
#endif

#endif
