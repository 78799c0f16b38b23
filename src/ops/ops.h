/*
 * ops.h: the element-wise and row-wise operations of a transformer forward
 * pass, on F32 rows. Each has a scalar reference and, where it pays, a SIMD
 * path chosen at run time; results of the SIMD path for a row never depend on
 * which other rows are processed with it.
 */
#ifndef PAGODA_OPS_OPS_H
#define PAGODA_OPS_OPS_H

#include <stddef.h>
#include <stdint.h>

/* y = x / sqrt(mean(x^2) + eps) * w, for one row of n (y may alias x; w may be NULL). */
void op_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps);

/* RoPE parameters of a model. freq_factors (llama3 scaling) may be NULL. */
struct rope_params {
    int n_dims;          /* rotated dimensions per head (<= head_dim) */
    float freq_base;     /* theta, e.g. 10000 */
    float freq_scale;    /* linear scaling: 1 / factor (1 = none) */
    const float *freq_factors; /* n_dims/2 divisors of each frequency, or NULL */
    int neox;            /* 0: pairs (2i, 2i+1) (llama); 1: pairs (i, i + n_dims/2) (NeoX, qwen2) */
};

/* Rotates n_heads heads of head_dim floats at position pos, in place. */
void op_rope(float *x, int n_heads, int head_dim, int64_t pos, const struct rope_params *p);

/* Llama 3.1-style frequency factors for rope scaling ("rope_type": "llama3"):
 * fills n_dims/2 factors. */
void op_rope_llama3_factors(float *factors, int n_dims, float freq_base, float factor,
                            float low_freq_factor, float high_freq_factor,
                            int original_context);

/* gate[i] = silu(gate[i]) * up[i] (SwiGLU) / gelu(gate[i]) * up[i] (GeGLU, tanh form). */
void op_swiglu(float *gate, const float *up, int64_t n);
void op_geglu(float *gate, const float *up, int64_t n);
float op_silu(float x);
float op_gelu(float x);

/* In-place softmax of a row; returns the log of the sum of exp (logsumexp). */
float op_softmax(float *x, int64_t n);

/* Copies row `row` of a matrix in any supported type, ne0 elements, to F32. */
int op_get_row(float *dst, int type, const void *data, size_t row_stride, int64_t ne0,
               int64_t row);

/* x[i] += y[i]. */
void op_add(float *x, const float *y, int64_t n);

#endif
