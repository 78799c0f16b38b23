/*
 * ops_simd.h: the exponential shared by the scalar and SIMD paths of ops.c,
 * and the SIMD entry points (ops_avx2.c, ops_avx512.c).
 *
 * Every path computes exp with the same sequence of correctly rounded
 * operations (multiply, round to nearest even, fused multiply-adds, exponent
 * insertion), so a value gets the same bits whichever path, vector lane or
 * scalar tail handles it: results never depend on the ISA, the row length
 * or where an element sits in the row.
 */
#ifndef PAGODA_OPS_OPS_SIMD_H
#define PAGODA_OPS_OPS_SIMD_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Inputs beyond these give 0 and +inf; inside, 2^n stays a normal float. */
#define OPS_EXP_LO (-87.0f)
#define OPS_EXP_HI 88.0f
#define OPS_LOG2E 1.44269504088896341f
#define OPS_LN2_HI 0.693145751953125f      /* ln 2 with its low bits cleared */
#define OPS_LN2_LO 1.428606765330187045e-06f
/* Taylor coefficients 1/k! for k = 6..2 (the k = 1, 0 terms are exact 1). */
#define OPS_EXP_C6 1.38888888888888894e-03f
#define OPS_EXP_C5 8.33333333333333322e-03f
#define OPS_EXP_C4 4.16666666666666644e-02f
#define OPS_EXP_C3 1.66666666666666657e-01f
#define OPS_EXP_C2 0.5f

/* exp(x) within about 2 ulp; exactly the same bits as the SIMD versions. */
static inline float ops_expf(float x)
{
    if (!(x >= OPS_EXP_LO)) /* also NaN -> 0, -inf -> 0 */
        return x != x ? x : 0.0f;
    if (x > OPS_EXP_HI)
        return INFINITY;
    const float n = nearbyintf(x * OPS_LOG2E);
    float r = fmaf(n, -OPS_LN2_HI, x);
    r = fmaf(n, -OPS_LN2_LO, r);
    float p = fmaf(OPS_EXP_C6, r, OPS_EXP_C5);
    p = fmaf(p, r, OPS_EXP_C4);
    p = fmaf(p, r, OPS_EXP_C3);
    p = fmaf(p, r, OPS_EXP_C2);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    const uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

/* silu(x) = x / (1 + exp(-x)). */
static inline float ops_silu(float x)
{
    return x / (1.0f + ops_expf(-x));
}

#if defined(PAGODA_HAVE_X86)
/* Each handles the largest prefix of whole vectors and returns its length;
 * the caller finishes the tail with the scalar functions above. */
int64_t ops_swiglu_avx2(float *gate, const float *up, int64_t n);
int64_t ops_swiglu_avx512(float *gate, const float *up, int64_t n);
/* x[i] = exp(x[i] - max). */
int64_t ops_exp_shift_avx2(float *x, int64_t n, float max);
int64_t ops_exp_shift_avx512(float *x, int64_t n, float max);
#endif

#endif
