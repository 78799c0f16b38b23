/*
 * bench_peak_avx2.c: the AVX2-level loops of the hardware benchmarks: a
 * streaming read of a buffer with 256-bit loads, and int8 dot-product peak
 * loops (AVX-VNNI vpdpbusd on ymm; plain AVX2 vpmaddubsw + vpmaddwd). The
 * peak loops keep independent accumulators in registers so the multiply
 * units, not dependency chains, set the pace.
 */
#include "bench/bench_hw.h"

#if defined(PAGODA_HAVE_X86)
#include <immintrin.h>

float bench_read_sum_avx2(const float *p, size_t n)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    __m256 a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
        a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
        a4 = _mm256_add_ps(a4, _mm256_load_ps(p + i + 32));
        a5 = _mm256_add_ps(a5, _mm256_load_ps(p + i + 40));
        a6 = _mm256_add_ps(a6, _mm256_load_ps(p + i + 48));
        a7 = _mm256_add_ps(a7, _mm256_load_ps(p + i + 56));
    }
    a0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                       _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    float lanes[8];
    _mm256_storeu_ps(lanes, a0);
    float s = 0;
    for (int k = 0; k < 8; k++)
        s += lanes[k];
    for (; i < n; i++)
        s += p[i];
    return s;
}

/* Twelve accumulators, each its own dependency chain (named variables: an
 * array makes compilers shuffle them through the stack every iteration). */
#define PEAK_ACC 12
#define ACC_DECL                                                                             \
    __m256i c0 = _mm256_set1_epi32(0), c1 = _mm256_set1_epi32(1), c2 = _mm256_set1_epi32(2),  \
            c3 = _mm256_set1_epi32(3), c4 = _mm256_set1_epi32(4), c5 = _mm256_set1_epi32(5),  \
            c6 = _mm256_set1_epi32(6), c7 = _mm256_set1_epi32(7), c8 = _mm256_set1_epi32(8),  \
            c9 = _mm256_set1_epi32(9), c10 = _mm256_set1_epi32(10), c11 = _mm256_set1_epi32(11)
#define ACC_ALL(OP)                                                                          \
    OP(c0); OP(c1); OP(c2); OP(c3); OP(c4); OP(c5); OP(c6); OP(c7); OP(c8); OP(c9); OP(c10); \
    OP(c11)
#define ACC_SUM                                                                              \
    _mm256_add_epi32(                                                                        \
        _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3)), \
                         _mm256_add_epi32(_mm256_add_epi32(c4, c5), _mm256_add_epi32(c6, c7))), \
        _mm256_add_epi32(_mm256_add_epi32(c8, c9), _mm256_add_epi32(c10, c11)))

int64_t bench_peak_loop_avx2(int64_t iters, int32_t *sink)
{
    const __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(-2);
    const __m256i ones = _mm256_set1_epi16(1);
    /* Eight chains: each step needs two temporaries, and 16 ymm registers
     * must hold them all. */
    __m256i c0 = _mm256_set1_epi32(0), c1 = _mm256_set1_epi32(1), c2 = _mm256_set1_epi32(2),
            c3 = _mm256_set1_epi32(3), c4 = _mm256_set1_epi32(4), c5 = _mm256_set1_epi32(5),
            c6 = _mm256_set1_epi32(6), c7 = _mm256_set1_epi32(7);
    /* The xor ties each product to its accumulator so it cannot be hoisted
     * out of the loop. */
#define MADD(r)                                                                              \
    r = _mm256_add_epi32(r, _mm256_madd_epi16(_mm256_maddubs_epi16(a, _mm256_xor_si256(b, r)), \
                                              ones))
    for (int64_t it = 0; it < iters; it++) {
        MADD(c0); MADD(c1); MADD(c2); MADD(c3); MADD(c4); MADD(c5); MADD(c6); MADD(c7);
    }
    const __m256i s = _mm256_add_epi32(
        _mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3)),
        _mm256_add_epi32(_mm256_add_epi32(c4, c5), _mm256_add_epi32(c6, c7)));
    *sink = _mm256_extract_epi32(s, 0);
    /* 32 int8 multiply-adds per sequence, 2 ops each. */
    return iters * 8 * 64;
}

__attribute__((target("avx2,avxvnni"))) int64_t bench_peak_loop_avxvnni(int64_t iters,
                                                                          int32_t *sink)
{
    const __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(-2);
    ACC_DECL;
    /* Inline assembly: with the intrinsic, compilers copy the accumulators
     * between registers every iteration. */
#define VNNI(r) __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(r) : "x"(a), "x"(b))
    for (int64_t it = 0; it < iters; it++) {
        ACC_ALL(VNNI);
    }
    *sink = _mm256_extract_epi32(ACC_SUM, 0);
    /* 32 multiply-adds per ymm vpdpbusd, 2 ops each. */
    return iters * PEAK_ACC * 64;
}
#endif
