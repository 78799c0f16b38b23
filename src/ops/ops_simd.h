/*
 * ops_simd.h: the exponential shared by the scalar and SIMD paths of ops.c,
 * and the SIMD entry points (ops_avx2.c, ops_avx512.c).
 *
 * Every path computes exp with the same sequence of correctly rounded
 * operations (fused multiply-adds, an exact power-of-two scaling), so a value
 * gets the same bits whichever path, vector lane or scalar tail handles it:
 * results never depend on the ISA, the row length or where an element sits
 * in the row.
 */
#ifndef PAGODA_OPS_OPS_SIMD_H
#define PAGODA_OPS_OPS_SIMD_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* exp(x) = 2^n * exp(b), n = round(x / ln 2), b = x - n ln 2 (|b| <= ln2 / 2),
 * exp(b) from a degree-5 polynomial evaluated in Estrin form. This is the
 * exponential of the reference CPU implementation's vector SiLU and softmax
 * (its AVX-512 form, step for step), so activations and attention weights
 * round as they do there: a last-bit difference in them can move an 8-bit
 * activation code downstream. Error below 2 ulp. */
#define OPS_EXP_SHIFTER 0x1.8p23f  /* adding it rounds to an integer */
#define OPS_LOG2E 0x1.715476p+0f
#define OPS_LN2_HI 0x1.62e4p-1f    /* ln 2, high bits */
#define OPS_LN2_LO 0x1.7f7d1cp-20f /* ln 2 - OPS_LN2_HI */
#define OPS_EXP_C1 0x1.ffffecp-1f
#define OPS_EXP_C2 0x1.fffdb6p-2f
#define OPS_EXP_C3 0x1.555e66p-3f
#define OPS_EXP_C4 0x1.573e2ep-5f
#define OPS_EXP_C5 0x1.0e4020p-7f
/* |n| above this: the result is 0 or +inf without computing it. */
#define OPS_EXP_NMAX 192.0f

static inline float ops_pow2i(int e) /* 2^e for -126 <= e <= 127 */
{
    const uint32_t bits = (uint32_t)(e + 127) << 23;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* exp(x); exactly the same bits as the SIMD versions. */
static inline float ops_expf(float x)
{
    const float n = fmaf(x, OPS_LOG2E, OPS_EXP_SHIFTER) - OPS_EXP_SHIFTER;
    if (n != n)
        return n;
    if (!(fabsf(n) <= OPS_EXP_NMAX))
        return n > 0.0f ? INFINITY : 0.0f;
    const float b = fmaf(-n, OPS_LN2_LO, fmaf(-n, OPS_LN2_HI, x));
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(OPS_EXP_C5, b, OPS_EXP_C4), u, fmaf(OPS_EXP_C3, b, OPS_EXP_C2)),
                         u, fmaf(OPS_EXP_C1, b, 1.0f));
    /* j * 2^n in two exact-range steps: the first product is exact (both
     * halves of n are at most 96 in size), the second rounds once, so the
     * result is j * 2^n correctly rounded, subnormal or overflowing alike. */
    const int ni = (int)n, n1 = ni / 2;
    return (j * ops_pow2i(n1)) * ops_pow2i(ni - n1);
}

/* silu(x) = x / (1 + exp(-x)), with -x computed as 0 - x. */
static inline float ops_silu(float x)
{
    return x / (1.0f + ops_expf(0.0f - x));
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
