/*
 * bench_peak_avx512.c: the AVX-512 VNNI int8 peak loop: independent zmm
 * vpdpbusd accumulators, 64 multiply-adds (128 ops) per instruction.
 */
#include "bench/bench_hw.h"

#if defined(PAGODA_HAVE_X86)
#include <immintrin.h>

/* Sixteen accumulators, each its own dependency chain. The instruction is
 * written as inline assembly: with the intrinsic, compilers copy every
 * accumulator between registers (and the stack) each iteration, and the
 * loop would measure the copies. */
#define PEAK_ACC 16
#define DP(r) __asm__("vpdpbusd %2, %1, %0" : "+v"(r) : "v"(a), "v"(b))

int64_t bench_peak_loop_avx512(int64_t iters, int32_t *sink)
{
    const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
    __m512i c0 = _mm512_set1_epi32(0), c1 = _mm512_set1_epi32(1), c2 = _mm512_set1_epi32(2),
            c3 = _mm512_set1_epi32(3), c4 = _mm512_set1_epi32(4), c5 = _mm512_set1_epi32(5),
            c6 = _mm512_set1_epi32(6), c7 = _mm512_set1_epi32(7), c8 = _mm512_set1_epi32(8),
            c9 = _mm512_set1_epi32(9), c10 = _mm512_set1_epi32(10), c11 = _mm512_set1_epi32(11),
            c12 = _mm512_set1_epi32(12), c13 = _mm512_set1_epi32(13),
            c14 = _mm512_set1_epi32(14), c15 = _mm512_set1_epi32(15);
    for (int64_t it = 0; it < iters; it++) {
        DP(c0); DP(c1); DP(c2); DP(c3); DP(c4); DP(c5); DP(c6); DP(c7);
        DP(c8); DP(c9); DP(c10); DP(c11); DP(c12); DP(c13); DP(c14); DP(c15);
    }
    c0 = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3)),
                          _mm512_add_epi32(_mm512_add_epi32(c4, c5), _mm512_add_epi32(c6, c7)));
    c8 = _mm512_add_epi32(
        _mm512_add_epi32(_mm512_add_epi32(c8, c9), _mm512_add_epi32(c10, c11)),
        _mm512_add_epi32(_mm512_add_epi32(c12, c13), _mm512_add_epi32(c14, c15)));
    /* Lanes wrap around over long runs: sum them as unsigned. */
    uint32_t lanes[16], sum = 0;
    _mm512_storeu_si512(lanes, _mm512_add_epi32(c0, c8));
    for (int k = 0; k < 16; k++)
        sum += lanes[k];
    *sink = (int32_t)sum;
    return iters * PEAK_ACC * 128;
}

float bench_read_sum_avx512(const float *p, size_t n)
{
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
        a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
        a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
        a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    for (; i < n; i++)
        s += p[i];
    return s;
}
#endif
