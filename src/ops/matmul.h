/*
 * matmul.h: y = x · Wᵀ for a weight matrix W [n × k] in any supported type
 * and activations x [b × k] in F32, giving y [b × n] in F32. Activations are
 * first converted to the weight type's dot type (Q8 blocks for quantized
 * weights) so integer dot products do the work; the work is split across the
 * pool's threads by weight rows. Results do not depend on b, on the other
 * rows of x, or on the thread count (see kernels.h).
 */
#ifndef PAGODA_OPS_MATMUL_H
#define PAGODA_OPS_MATMUL_H

#include <stddef.h>
#include <stdint.h>

#include "base/pool.h"

struct mm_weight {
    int type;          /* enum pg_type */
    const void *data;  /* first row (usually inside the mmap'd GGUF file) */
    int64_t n;         /* rows (outputs) */
    int64_t k;         /* columns (inputs); a multiple of the type's block size */
    size_t row_stride; /* bytes between rows; type_row_size(type, k) when packed */
};

/* Reusable state for matmuls: the pool and a scratch buffer for converted
 * activations that grows as needed. One context per thread that issues matmuls. */
struct mm_ctx;

struct mm_ctx *mm_ctx_create(struct pool *pool, char *err, size_t errlen);
void mm_ctx_free(struct mm_ctx *ctx);

/* y[i*n + j] = sum_k x[i*k + kk] * W[j][kk] for i < b, j < n.
 * Returns 0, or a negative status (unsupported type, bad shape, no memory). */
int matmul(struct mm_ctx *ctx, const struct mm_weight *w, const float *x, int64_t b, float *y,
           char *err, size_t errlen);

#define MM_MAX_PARTS 4

/* Several matmuls of the same activations at once (Q, K and V; gate and up):
 * y[i] = x · w[i]ᵀ for i < nw. The activations are converted once and all
 * weights' rows share one parallel pass, so threads wait once instead of nw
 * times. The weights need the same k and activation (dot) type; each y[i]
 * equals what matmul() gives. */
int matmul_n(struct mm_ctx *ctx, const struct mm_weight *const *w, int nw, const float *x,
             int64_t b, float *const *y, char *err, size_t errlen);

#endif
