/*
 * ops_avx2.c: AVX2 + FMA paths of the exponential-heavy row operations
 * (SwiGLU, softmax's exponentials), eight floats at a time. They repeat
 * ops_expf (ops_simd.h) operation for operation, so every element gets the
 * bits the scalar path would give it.
 */
#include "ops/ops_simd.h"

#if defined(PAGODA_HAVE_X86)
#include <immintrin.h>

/* 2^e for integer-valued e in [-126, 127]. */
static inline __m256 pow2i8(__m256 e)
{
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(e), _mm256_set1_epi32(127)), 23));
}

static inline __m256 exp8(__m256 x)
{
    const __m256 shifter = _mm256_set1_ps(OPS_EXP_SHIFTER);
    const __m256 n =
        _mm256_sub_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(OPS_LOG2E), shifter), shifter);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(OPS_LN2_LO),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(OPS_LN2_HI), x));
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 hi = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_set1_ps(OPS_EXP_C5), b, _mm256_set1_ps(OPS_EXP_C4)), u,
        _mm256_fmadd_ps(_mm256_set1_ps(OPS_EXP_C3), b, _mm256_set1_ps(OPS_EXP_C2)));
    const __m256 j =
        _mm256_fmadd_ps(hi, u, _mm256_fmadd_ps(_mm256_set1_ps(OPS_EXP_C1), b, _mm256_set1_ps(1.0f)));
    /* j * 2^n as ops_expf: an exact product by 2^(n/2) (truncated), then one
     * rounding by the rest. Lanes with |n| > OPS_EXP_NMAX get meaningless
     * exponent bits here and are replaced below; NaN lanes stay NaN through j. */
    const __m256 n1 = _mm256_round_ps(_mm256_mul_ps(n, _mm256_set1_ps(0.5f)),
                                      _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 res = _mm256_mul_ps(_mm256_mul_ps(j, pow2i8(n1)), pow2i8(_mm256_sub_ps(n, n1)));
    const __m256 far = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), n),
                                     _mm256_set1_ps(OPS_EXP_NMAX), _CMP_GT_OQ);
    if (!_mm256_movemask_ps(far))
        return res;
    const __m256 inf_or_0 = _mm256_and_ps(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_GT_OQ),
                                          _mm256_set1_ps(INFINITY));
    return _mm256_blendv_ps(res, inf_or_0, far);
}

int64_t ops_swiglu_avx2(float *gate, const float *up, int64_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
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
