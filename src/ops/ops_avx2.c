/*
 * ops_avx2.c: AVX2 + FMA paths of the exponential-heavy row operations
 * (SwiGLU, softmax's exponentials), eight floats at a time. They repeat
 * ops_expf (ops_simd.h) operation for operation, so every element gets the
 * bits the scalar path would give it.
 */
#include "ops/ops_simd.h"

#if defined(PAGODA_HAVE_X86)
#include <immintrin.h>

static inline __m256 exp8(__m256 x)
{
    const __m256 lo = _mm256_set1_ps(OPS_EXP_LO), hi = _mm256_set1_ps(OPS_EXP_HI);
    const __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(OPS_LOG2E)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-OPS_LN2_HI), xc);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(-OPS_LN2_LO), r);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(OPS_EXP_C6), r, _mm256_set1_ps(OPS_EXP_C5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(OPS_EXP_C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(OPS_EXP_C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(OPS_EXP_C2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i bits =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 res = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
    res = _mm256_blendv_ps(res, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
    const __m256 below = _mm256_cmp_ps(x, lo, _CMP_NGE_UQ); /* x < lo, or NaN */
    const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    return _mm256_blendv_ps(res, _mm256_blendv_ps(_mm256_setzero_ps(), x, nan), below);
}

int64_t ops_swiglu_avx2(float *gate, const float *up, int64_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 e = exp8(_mm256_xor_ps(g, sign));
        const __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, e));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
    }
    return i;
}

int64_t ops_exp_shift_avx2(float *x, int64_t n, float max)
{
    const __m256 m = _mm256_set1_ps(max);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), m)));
    return i;
}
#endif
