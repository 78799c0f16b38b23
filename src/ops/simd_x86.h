/*
 * simd_x86.h: small AVX2-level helpers shared by the AVX2 and AVX-512 kernel
 * files. Included by *_avx2*.c and *_avx512*.c files only, so it is compiled
 * with their ISA flags.
 */
#ifndef PAGODA_OPS_SIMD_X86_H
#define PAGODA_OPS_SIMD_X86_H

#include <immintrin.h>
#include <stddef.h>

/* An 8 x 8 block of floats transposed: dst[i * dstride + r] = src[r * sstride + i]. */
static inline void transpose8x8_ps(const float *src, size_t sstride, float *dst, size_t dstride)
{
    __m256 t[8], u[8];
    for (int r = 0; r < 8; r += 2) {
        const __m256 a = _mm256_loadu_ps(src + (size_t)r * sstride);
        const __m256 b = _mm256_loadu_ps(src + (size_t)(r + 1) * sstride);
        t[r] = _mm256_unpacklo_ps(a, b);
        t[r + 1] = _mm256_unpackhi_ps(a, b);
    }
    for (int h = 0; h < 8; h += 4) {
        u[h] = _mm256_shuffle_ps(t[h], t[h + 2], 0x44);
        u[h + 1] = _mm256_shuffle_ps(t[h], t[h + 2], 0xEE);
        u[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0x44);
        u[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        _mm256_storeu_ps(dst + (size_t)i * dstride, _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
        _mm256_storeu_ps(dst + (size_t)(i + 4) * dstride,
                         _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
    }
}

#endif
