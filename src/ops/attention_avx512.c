/*
 * attention_avx512.c: the attention numeric steps (attention_impl.h) with
 * AVX-512, sixteen lanes over head_dim (head_dim % 16 == 0). A dot product
 * is one chain of fused multiply-adds over head_dim in order, then a fixed
 * horizontal sum; rows are blocked for register reuse, never regrouped.
 */
#include "ops/attention_impl.h"

#if defined(PAGODA_HAVE_X86)
#include <immintrin.h>
#include <math.h>

#include "base/fp16.h"
#include "ops/ops_simd.h"
#include "ops/types.h"

static inline float hsum16(__m512 v)
{
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

static void row_to_f32_avx512(int type, const void *src, float *dst, int hd)
{
    if (type == PG_TYPE_Q8_0) {
        const block_q8_0 *blk = src;
        for (int i = 0; i < hd / QK8_0; i++) {
            const __m512 d = _mm512_set1_ps(f16_to_f32(blk[i].d));
            for (int e = 0; e < QK8_0; e += 16) {
                const __m128i q8 = _mm_loadu_si128((const __m128i *)(blk[i].qs + e));
                const __m512 qf = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q8));
                _mm512_storeu_ps(dst + i * QK8_0 + e, _mm512_mul_ps(d, qf));
            }
        }
        return;
    }
    const uint16_t *s16 = src;
    if (type == PG_TYPE_BF16) {
        for (int d = 0; d < hd; d += 16) {
            const __m512i w =
                _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(s16 + d)));
            _mm512_storeu_ps(dst + d, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
        }
        return;
    }
    for (int d = 0; d < hd; d += 16)
        _mm512_storeu_ps(dst + d,
                         _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(s16 + d))));
}

/* Scores of 4 rows x 4 positions. Each of the 16 accumulators is one chain
 * of fused multiply-adds over head_dim; a transposing tree then sums the 16
 * lanes of every accumulator at once, and the tree treats every accumulator
 * alike: lanes l, l+4, l+8, l+12 as (l + (l+8)) + ((l+4) + (l+12)), then
 * those four as (0 + 2) + (1 + 3). So a score's bits do not depend on which
 * rows and positions share its block. Accumulator i = position * 4 + row
 * ends in lane row * 4 + position. */
static void score_block4x4(const float *q, const float *k, int hd, float scale, float *s)
{
    __m512 acc[16];
    for (int i = 0; i < 16; i++)
        acc[i] = _mm512_setzero_ps();
    for (int d = 0; d < hd; d += 16) {
        __m512 qv[4];
        for (int r = 0; r < 4; r++)
            qv[r] = _mm512_loadu_ps(q + (size_t)r * hd + d);
        for (int j = 0; j < 4; j++) {
            const __m512 kv = _mm512_loadu_ps(k + (size_t)j * hd + d);
            for (int r = 0; r < 4; r++)
                acc[j * 4 + r] = _mm512_fmadd_ps(qv[r], kv, acc[j * 4 + r]);
        }
    }
    __m512 c[8], dq[4], e[2];
    for (int i = 0; i < 8; i++)
        c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(acc[2 * i], acc[2 * i + 1], 0x44),
                             _mm512_shuffle_f32x4(acc[2 * i], acc[2 * i + 1], 0xEE));
    for (int i = 0; i < 4; i++)
        dq[i] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0x88),
                              _mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0xDD));
    for (int i = 0; i < 2; i++)
        e[i] = _mm512_add_ps(_mm512_unpacklo_ps(dq[2 * i], dq[2 * i + 1]),
                             _mm512_unpackhi_ps(dq[2 * i], dq[2 * i + 1]));
    const __m512 lo = _mm512_castpd_ps(
        _mm512_unpacklo_pd(_mm512_castps_pd(e[0]), _mm512_castps_pd(e[1])));
    const __m512 hi = _mm512_castpd_ps(
        _mm512_unpackhi_pd(_mm512_castps_pd(e[0]), _mm512_castps_pd(e[1])));
    const __m512 sum = _mm512_mul_ps(_mm512_add_ps(lo, hi), _mm512_set1_ps(scale));
    _mm_storeu_ps(s, _mm512_extractf32x4_ps(sum, 0));
    _mm_storeu_ps(s + ATTN_CHUNK, _mm512_extractf32x4_ps(sum, 1));
    _mm_storeu_ps(s + 2 * ATTN_CHUNK, _mm512_extractf32x4_ps(sum, 2));
    _mm_storeu_ps(s + 3 * ATTN_CHUNK, _mm512_extractf32x4_ps(sum, 3));
}

/* Rows and positions are rounded up to whole 4 x 4 blocks: the extra ones
 * read scratch rows of the tile (zeroed or earlier data) and their scores,
 * which the driver overwrites or ignores, never mix into real ones. */
static void scores_avx512(const float *q, int n_rows, const float *k, int n_pos, int hd,
                          float scale, float *s)
{
    for (int r = 0; r < n_rows; r += 4)
        for (int j = 0; j < n_pos; j += 4)
            score_block4x4(q + (size_t)r * hd, k + (size_t)j * hd, hd, scale,
                           s + r * ATTN_CHUNK + j);
}

static float exp_sum_avx512(float *p, float max)
{
    _Static_assert(ATTN_CHUNK == 32, "exp_sum_avx512 sums two vectors");
    ops_exp_shift_avx512(p, ATTN_CHUNK, max);
    return hsum16(_mm512_add_ps(_mm512_loadu_ps(p), _mm512_loadu_ps(p + 16)));
}

/* The same operations as probs_scalar: exp, a multiply, F16 rounding
 * (bit-exact with the scalar conversion). */
static void probs_avx512(float *p, float max, float inv, int round_f16)
{
    ops_exp_shift_avx512(p, ATTN_CHUNK, max);
    const __m512 iv = _mm512_set1_ps(inv);
    for (int j = 0; j < ATTN_CHUNK; j += 16) {
        __m512 e = _mm512_mul_ps(_mm512_loadu_ps(p + j), iv);
        if (round_f16)
            e = _mm512_cvtph_ps(_mm512_cvtps_ph(e, _MM_FROUND_TO_NEAREST_INT));
        _mm512_storeu_ps(p + j, e);
    }
}

/* acc[0..W*16) of R rows (R = 1 or 2): p_j * v_j added for j < n[r] in
 * order; the rows of a pair share the V loads while both are active. */
static inline __attribute__((always_inline)) void acc_block(float *acc, int hd, int R,
                                                            const float *p, const int *n,
                                                            const float *v, int W)
{
    __m512 a[2][4];
    for (int r = 0; r < R; r++)
        for (int w = 0; w < W; w++)
            a[r][w] = _mm512_loadu_ps(acc + (size_t)r * hd + w * 16);
    const int both = R == 2 ? (n[0] < n[1] ? n[0] : n[1]) : n[0];
    int j = 0;
    for (; j < both; j++) {
        const float *vj = v + (size_t)j * hd;
        __m512 vv[4];
        for (int w = 0; w < W; w++)
            vv[w] = _mm512_loadu_ps(vj + w * 16);
        for (int r = 0; r < R; r++) {
            const __m512 pj = _mm512_set1_ps(p[r * ATTN_CHUNK + j]);
            for (int w = 0; w < W; w++)
                a[r][w] = _mm512_fmadd_ps(pj, vv[w], a[r][w]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int jr = j; jr < n[r]; jr++) {
            const __m512 pj = _mm512_set1_ps(p[r * ATTN_CHUNK + jr]);
            for (int w = 0; w < W; w++)
                a[r][w] = _mm512_fmadd_ps(pj, _mm512_loadu_ps(v + (size_t)jr * hd + w * 16),
                                          a[r][w]);
        }
    for (int r = 0; r < R; r++)
        for (int w = 0; w < W; w++)
            _mm512_storeu_ps(acc + (size_t)r * hd + w * 16, a[r][w]);
}

static void accumulate_avx512(float *acc, int n_rows, const float *p, const int *n,
                            const float *v, int hd)
{
    for (int r = 0; r < n_rows; r += 2) {
        float *ar = acc + (size_t)r * hd;
        const float *pr = p + r * ATTN_CHUNK;
        int d = 0;
        if (r + 2 <= n_rows) {
            for (; d + 64 <= hd; d += 64)
                acc_block(ar + d, hd, 2, pr, n + r, v + d, 4);
            for (; d < hd; d += 16)
                acc_block(ar + d, hd, 2, pr, n + r, v + d, 1);
        } else {
            for (; d + 64 <= hd; d += 64)
                acc_block(ar + d, hd, 1, pr, n + r, v + d, 4);
            for (; d < hd; d += 16)
                acc_block(ar + d, hd, 1, pr, n + r, v + d, 1);
        }
    }
}

const struct attn_isa attn_isa_avx512 = {row_to_f32_avx512, scores_avx512, exp_sum_avx512, probs_avx512,
                                       accumulate_avx512};
#endif
