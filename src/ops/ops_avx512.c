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
    const __m512 shifter = _mm512_set1_ps(OPS_EXP_SHIFTER);
    const __m512 n =
        _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(OPS_LOG2E), shifter), shifter);
    const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(OPS_LN2_LO),
                                      _mm512_fnmadd_ps(n, _mm512_set1_ps(OPS_LN2_HI), x));
    const __m512 u = _mm512_mul_ps(b, b);
    const __m512 hi = _mm512_fmadd_ps(
        _mm512_fmadd_ps(_mm512_set1_ps(OPS_EXP_C5), b, _mm512_set1_ps(OPS_EXP_C4)), u,
        _mm512_fmadd_ps(_mm512_set1_ps(OPS_EXP_C3), b, _mm512_set1_ps(OPS_EXP_C2)));
    const __m512 j =
        _mm512_fmadd_ps(hi, u, _mm512_fmadd_ps(_mm512_set1_ps(OPS_EXP_C1), b, _mm512_set1_ps(1.0f)));
    const __m512 res = _mm512_scalef_ps(j, n); /* j * 2^n, rounded once */
    const __mmask16 far =
        _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(OPS_EXP_NMAX), _CMP_GT_OQ);
    if (!far)
        return res;
    const __m512 inf_or_0 = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(n, _mm512_setzero_ps(), _CMP_GT_OQ),
                                                 _mm512_setzero_ps(), _mm512_set1_ps(INFINITY));
    return _mm512_mask_blend_ps(far, res, inf_or_0);
}

int64_t ops_swiglu_avx512(float *gate, const float *up, int64_t n)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 g = _mm512_loadu_ps(gate + i);
        const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
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
