/*
 * gemm_k_x86.h: what the AVX2 and AVX-512 k-quant kernels share: unpacking a
 * block's scales, mins and d into 128/256-bit registers, block sizes and code
 * offsets, and the eight-lane sum in the reference order. Included by
 * gemm_avx2_k.c and gemm_avx512_k.c only, so it is compiled with their ISA
 * flags (everything here needs AVX2 and F16C at most).
 */
#ifndef PAGODA_OPS_GEMM_K_X86_H
#define PAGODA_OPS_GEMM_K_X86_H

#include <immintrin.h>
#include <string.h>

#include "ops/quants.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE __m256i load256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* The 16 signed 6-bit scales of q3_K as bytes (0..15), offset removed. */
ALWAYS_INLINE __m128i kq_q3_scales(const uint8_t *p)
{
    uint32_t a[3];
    memcpy(a, p, 12);
    const uint32_t m4 = 0x0f0f0f0fu, m2 = 0x03030303u;
    const __m128i v = _mm_setr_epi32((int)((a[0] & m4) | ((a[2] & m2) << 4)),
                                     (int)((a[1] & m4) | (((a[2] >> 2) & m2) << 4)),
                                     (int)(((a[0] >> 4) & m4) | (((a[2] >> 4) & m2) << 4)),
                                     (int)(((a[1] >> 4) & m4) | (((a[2] >> 6) & m2) << 4)));
    return _mm_sub_epi8(v, _mm_set1_epi8(32));
}

/* Scales (bytes 0..7) and mins (bytes 8..15) of q4_K / q5_K from their 12
 * packed bytes, for the blocks whose 16 bytes from the packed ones on are in
 * each 128-bit half of v (two blocks at once where a kernel takes two). */
ALWAYS_INLINE __m256i kq_q45_scales_x2(__m256i v)
{
#define KQ_B(...) _mm256_broadcastsi128_si256(_mm_setr_epi8(__VA_ARGS__))
    /* Per output byte: the byte holding its low bits, and the byte whose
     * top two bits are its bits 4..5 (scales and mins 4..7 only). */
    const __m256i low = _mm256_shuffle_epi8(v, KQ_B(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
    const __m256i top = _mm256_shuffle_epi8(v, KQ_B(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
    const __m256i a = _mm256_and_si256(low, KQ_B(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0));
    const __m256i b = _mm256_and_si256(_mm256_srli_epi16(low, 4),
                                       KQ_B(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15));
    const __m256i c = _mm256_and_si256(_mm256_srli_epi16(top, 2), _mm256_set1_epi8(0x30));
#undef KQ_B
    return _mm256_or_si256(_mm256_or_si256(a, b), c);
}

/* The same for one block, from the packed bytes at p. Sixteen bytes are
 * read: a block's codes follow. */
ALWAYS_INLINE __m128i kq_q45_scales(const uint8_t *p)
{
    const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    return _mm256_castsi256_si128(kq_q45_scales_x2(_mm256_castsi128_si256(v)));
}

/* Rows are short streams the hardware prefetchers pick up late: the
 * few-row kernels ask for the bytes of the blocks they take this far
 * ahead, across the end of the row into the next. */
#define KQ_PREFETCH_AHEAD 2048

/* Asks for the cache lines of the n weight bytes KQ_PREFETCH_AHEAD past b. */
ALWAYS_INLINE void kq_prefetch_ahead(const uint8_t *b, size_t n)
{
    for (size_t o = 0; o < n; o += 64)
        _mm_prefetch((const char *)b + KQ_PREFETCH_AHEAD + o, _MM_HINT_T0);
}

/* One weight block, its scales unpacked for the code vectors. */
struct kq_blk {
    const uint8_t *b;
    __m256i s16; /* 16 scales as 16-bit values (16-value groups) */
    __m128i m16; /* q4_K / q5_K: 8 mins as 16-bit values */
    __m256i mq2; /* q2_K: 16 mins as 16-bit values */
    __m128i sm;  /* q4_K / q5_K: scales and mins as bytes */
    float d, dmin;
};

ALWAYS_INLINE void kq_prep(int type, const uint8_t *b, struct kq_blk *o)
{
    o->b = b;
    switch (type) {
    case PG_TYPE_Q2_K: {
        const block_q2_K *w = (const block_q2_K *)(const void *)b;
        const __m128i sm = _mm_loadu_si128((const __m128i *)(const void *)w->scales);
        o->s16 = _mm256_cvtepu8_epi16(_mm_and_si128(sm, _mm_set1_epi8(0x0F)));
        o->mq2 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sm, 4), _mm_set1_epi8(0x0F)));
        o->d = _cvtsh_ss(w->d);
        o->dmin = _cvtsh_ss(w->dmin);
        break;
    }
    case PG_TYPE_Q3_K: {
        const block_q3_K *w = (const block_q3_K *)(const void *)b;
        o->s16 = _mm256_cvtepi8_epi16(kq_q3_scales(w->scales));
        o->d = _cvtsh_ss(w->d);
        break;
    }
    case PG_TYPE_Q4_K:
    case PG_TYPE_Q5_K: {
        /* q4_K and q5_K share the head: d, dmin, 12 scale bytes. */
        const block_q4_K *w = (const block_q4_K *)(const void *)b;
        const __m128i sm = kq_q45_scales(w->scales);
        o->sm = sm;
        /* Each 32-value scale serves two 16-value groups. */
        o->s16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(sm, sm));
        o->m16 = _mm_cvtepu8_epi16(_mm_srli_si128(sm, 8));
        o->d = _cvtsh_ss(w->d);
        o->dmin = _cvtsh_ss(w->dmin);
        break;
    }
    default: {
        const block_q6_K *w = (const block_q6_K *)(const void *)b;
        o->s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)w->scales));
        o->d = _cvtsh_ss(w->d);
        break;
    }
    }
}

ALWAYS_INLINE int kq_offset(int type)
{
    return type == PG_TYPE_Q3_K ? 4 : type == PG_TYPE_Q6_K ? 32 : 0;
}

ALWAYS_INLINE size_t kq_block_size(int type)
{
    switch (type) {
    case PG_TYPE_Q2_K: return sizeof(block_q2_K);
    case PG_TYPE_Q3_K: return sizeof(block_q3_K);
    case PG_TYPE_Q4_K: return sizeof(block_q4_K);
    case PG_TYPE_Q5_K: return sizeof(block_q5_K);
    default: return sizeof(block_q6_K);
    }
}

ALWAYS_INLINE float kq_hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The 32-value group sums of an activation block as eight 16-bit values. */
ALWAYS_INLINE __m128i kq_group_sums(const block_q8_K *x)
{
    const __m256i bs = load256(x->bsums);
    return _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
}

/* A block's float steps for one (weight row, activation row) pair, given the
 * eight exact lane sums s8 and, for q4_K / q5_K, the activation's group sums:
 * the minimum chain of the type (q2_K: in the lanes, before the d step; q4_K:
 * four lanes of its own; q5_K: one exact integer), then lane = fma(d, sum, lane). */
ALWAYS_INLINE void kq_block_step(int type, __m256i s8, const block_q8_K *x, const struct kq_blk *k,
                                 __m128i gs, __m256 *acc, __m128 *accm, float *mins)
{
    const float d = x->d * k->d;
    if (type == PG_TYPE_Q2_K) {
        const __m256i m = _mm256_madd_epi16(k->mq2, load256(x->bsums));
        *acc = _mm256_fmadd_ps(_mm256_set1_ps(-x->d * k->dmin), _mm256_cvtepi32_ps(m), *acc);
    } else if (type == PG_TYPE_Q4_K || type == PG_TYPE_Q5_K) {
        const __m128i m = _mm_madd_epi16(k->m16, gs);
        const float dmin = -x->d * k->dmin;
        if (type == PG_TYPE_Q4_K) {
            *accm = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(m), *accm);
        } else {
            __m128i t = _mm_add_epi32(m, _mm_srli_si128(m, 8));
            t = _mm_add_epi32(t, _mm_srli_si128(t, 4));
            const __m128 r = _mm_fmadd_ss(_mm_set_ss(dmin), _mm_set_ss((float)_mm_cvtsi128_si32(t)),
                                          _mm_set_ss(*mins));
            *mins = _mm_cvtss_f32(r);
        }
    }
    *acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(s8), *acc);
}

/* A pair's result: the lanes in the reference order, then the minimum chain. */
ALWAYS_INLINE float kq_pair_result(int type, __m256 acc, __m128 accm, float mins)
{
    float r = kq_hsum8(acc);
    if (type == PG_TYPE_Q4_K) {
        __m128 m = _mm_add_ps(accm, _mm_movehl_ps(accm, accm));
        m = _mm_add_ss(m, _mm_movehdup_ps(m));
        r += _mm_cvtss_f32(m);
    } else if (type == PG_TYPE_Q5_K) {
        r += mins;
    }
    return r;
}

#endif
