/*
 * attention_impl.h: what attention.c's tile driver shares with the per-ISA
 * pieces (attention_avx2.c, attention_avx512.c). The driver owns the order
 * of work; each ISA supplies the numeric steps below, every one with the
 * same float operations in the same order as the scalar code. Every step treats
 * each query row on its own with a fixed sequence of operations, so how many
 * rows a call handles, or which, never changes a row's bits.
 */
#ifndef PAGODA_OPS_ATTENTION_IMPL_H
#define PAGODA_OPS_ATTENTION_IMPL_H

#include <stdint.h>

#include "ops/attention.h"

/* KV positions per step of a pass. Steps start at multiples of this
 * absolute position, so a query sees the same steps in any batch; a step
 * holds whole runs of the sum's 16 positions. */
#define ATTN_CHUNK 32
/* Query rows (token, head pairs sharing one KV head) per tile. */
#define ATTN_TILE_ROWS 16
/* Steps of ATTN_TILE_ROWS rows whose scores, then exponentials, a tile keeps
 * between its passes (ATTN_TILE_ROWS * ATTN_CHUNK floats each; 256 KiB in
 * all); a tile of fewer rows keeps proportionally more steps. */
#define ATTN_CACHE_CHUNKS 128

struct attn_isa {
    /* One stored K/V row (type kv->type, hd elements) to floats; exact. */
    void (*row_to_f32)(int type, const void *src, float *dst, int hd);
    /* s[r * ATTN_CHUNK + j] = (q_r · k_j) * scale for r < n_rows, j < n_pos;
     * q_r = q + r * hd, k_j = k + j * hd. The dot product: for the first
     * np = hd rounded down to 64 elements, four 16-lane accumulators, lane l
     * of accumulator a taking d0 + 16a + l for d0 = 0, 64, .. < np in fused
     * multiply-adds; then (a0 + a2) + (a1 + a3) and its 16 lanes summed by
     * the tree of `sum` below, converted to double; then each q[d] * k[d],
     * d = np..hd-1, rounded to float and added in double in order; the total
     * rounded to float, then times scale. Entries j >= n_pos, up to
     * ATTN_CHUNK, may be written with anything; rows are read from q and k
     * as far as ATTN_TILE_ROWS and ATTN_CHUNK (the driver keeps them
     * finite). */
    void (*scores)(const float *q, int n_rows, const float *k, int n_pos, int hd, float scale,
                   float *s);
    /* p[j] = exp(p[j] - max) for all ATTN_CHUNK entries (-inf gives 0). */
    void (*exp_shift)(float *p, float max);
    /* sum + the ATTN_CHUNK entries of p: each run of 16 summed in float by
     * the tree of a 512-bit horizontal add (lane i + lane i+8, then i + i+4,
     * i + i+2, the last pair), the runs added to sum in double in order. */
    double (*sum)(const float *p, double sum);
    /* p[j] = p[j] * inv for all ATTN_CHUNK entries, rounded to an F16 value
     * when round_f16. */
    void (*probs)(float *p, float inv, int round_f16);
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
