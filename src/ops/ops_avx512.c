/*
 * ops_avx512.c: AVX-512 paths of the exponential-heavy row operations,
 * sixteen floats at a time, operation for operation the same as ops_expf
 * (ops_simd.h), so results match the scalar and AVX2 paths bit for bit.
 */
#include "ops/ops_simd.h"

#if defined(PAGODA_HAVE_X86)
#include <immintrin.h>

static inline __m512 exp16(__m512 x)
{
    const __m512 lo = _mm512_set1_ps(OPS_EXP_LO), hi = _mm512_set1_ps(OPS_EXP_HI);
    const __m512 xc = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(OPS_LOG2E)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-OPS_LN2_HI), xc);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(-OPS_LN2_LO), r);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(OPS_EXP_C6), r, _mm512_set1_ps(OPS_EXP_C5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(OPS_EXP_C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(OPS_EXP_C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(OPS_EXP_C2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    const __m512i bits =
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    __m512 res = _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
    res = _mm512_mask_mov_ps(res, _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ),
                             _mm512_set1_ps(INFINITY));
    const __mmask16 below = _mm512_cmp_ps_mask(x, lo, _CMP_NGE_UQ); /* x < lo, or NaN */
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    res = _mm512_mask_mov_ps(res, below, _mm512_setzero_ps());
    return _mm512_mask_mov_ps(res, nan, x);
}

int64_t ops_swiglu_avx512(float *gate, const float *up, int64_t n)
{
    const __m512 one = _mm512_set1_ps(1.0f), sign = _mm512_set1_ps(-0.0f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 g = _mm512_loadu_ps(gate + i);
        const __m512 e = exp16(_mm512_xor_ps(g, sign));
        const __m512 s = _mm512_div_ps(g, _mm512_add_ps(one, e));
        _mm512_storeu_ps(gate + i, _mm512_mul_ps(s, _mm512_loadu_ps(up + i)));
    }
    return i;
}

int64_t ops_exp_shift_avx512(float *x, int64_t n, float max)
{
    const __m512 m = _mm512_set1_ps(max);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(x + i, exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), m)));
    return i;
}
#endif
