/*
 * kernels.h: the narrow interface between the matmul driver and the per-ISA
 * kernel files (gemm_scalar.c, gemm_avx2*.c, gemm_avx512*.c). Each ISA file
 * fills the entries it implements in a kernel table; the driver starts from
 * the scalar table and lets each higher ISA the CPU has overwrite entries.
 *
 * The batch-invariance contract: y for one (weight row, activation row) pair
 * must be bitwise the same whatever n, b and the row offsets a call is given,
 * so a kernel's reduction order over k may depend only on k and the ISA,
 * never on how many rows it handles at once.
 */
#ifndef PAGODA_OPS_KERNELS_H
#define PAGODA_OPS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "ops/types.h"

struct gemm_args {
    int64_t k;         /* elements per row: the reduction length */
    const uint8_t *w;  /* first weight row, in the weight type */
    size_t w_stride;   /* bytes between weight rows */
    int64_t n;         /* weight rows to do */
    const uint8_t *x;  /* first activation row, already in the weight's dot type */
    size_t x_stride;   /* bytes between activation rows */
    int64_t b;         /* activation rows to do */
    float *y;          /* y[i * y_stride + j] = dot(activation row i, weight row j) */
    int64_t y_stride;  /* floats between output rows */
    /* Nonzero: names these activation rows for the whole of one matmul, so a
     * kernel called on several chunks of its weight rows may keep what it
     * prepared from them (same act_id, x and b: the same bytes). 0: no such
     * promise. */
    uint64_t act_id;
};

typedef void (*gemm_fn)(const struct gemm_args *a);

/* Converts a row of n floats to a dot type (q8_0, q8_1, q8_K, f16, bf16, f32).
 * Must give the same bytes as the reference quantizer of that type. */
typedef void (*act_quant_fn)(const float *x, void *y, int64_t n);

struct kernel_table {
    gemm_fn gemm[PG_TYPE_COUNT];            /* by weight type */
    act_quant_fn act_quant[PG_TYPE_COUNT];  /* by dot type */
    const char *isa[PG_TYPE_COUNT];         /* which ISA filled gemm[type] */
    /* Activation bytes one call should take at most (0: the driver's
     * default, which keeps a tile in cache while weights go by; kernels
     * that block for the caches themselves ask for more). */
    size_t act_tile[PG_TYPE_COUNT];
};

/* The act_tile of kernels that want every activation row of a matmul in one
 * call: 512 rows of k = 14336 in q8_K; the driver splits only beyond that. */
#define ACT_TILE_ALL ((size_t)8 << 20)

void kernels_scalar_init(struct kernel_table *t);   /* float and q4_0..q8_0 types */
void kernels_scalar_k_init(struct kernel_table *t); /* q2_K..q6_K */
#if defined(PAGODA_HAVE_X86)
void kernels_avx2_init(struct kernel_table *t);      /* float and q4_0..q8_0 types */
void kernels_avx2_k_init(struct kernel_table *t);    /* q2_K..q6_K */
void kernels_avx512_init(struct kernel_table *t);
void kernels_avx512_k_init(struct kernel_table *t);
#endif

/* The table for the ISA level in force (cpu_isa_get()), built once. */
const struct kernel_table *kernels_get(void);

/* The table for a given level (clamped to what the CPU has); for tests. */
const struct kernel_table *kernels_for_isa(int isa);

#endif
