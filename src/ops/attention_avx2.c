/*
 * attention_avx2.c: the attention numeric steps (attention_impl.h) with AVX2,
 * FMA and F16C, eight lanes over head_dim (head_dim % 8 == 0). A dot product
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

static inline float hsum8(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

static void row_to_f32_avx2(int type, const void *src, float *dst, int hd)
{
    if (type == PG_TYPE_Q8_0) {
        const block_q8_0 *blk = src;
        for (int i = 0; i < hd / QK8_0; i++) {
            const __m256 d = _mm256_set1_ps(f16_to_f32(blk[i].d));
            for (int e = 0; e < QK8_0; e += 8) {
                const __m128i q8 = _mm_loadl_epi64((const __m128i *)(blk[i].qs + e));
                const __m256 qf = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8));
                _mm256_storeu_ps(dst + i * QK8_0 + e, _mm256_mul_ps(d, qf));
            }
        }
        return;
    }
    const uint16_t *s16 = src;
    if (type == PG_TYPE_BF16) {
        for (int d = 0; d < hd; d += 8) {
            const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s16 + d)));
            _mm256_storeu_ps(dst + d, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
        }
        return;
    }
    for (int d = 0; d < hd; d += 8)
        _mm256_storeu_ps(dst + d, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s16 + d))));
}

/* Scores of 2 rows x 4 positions. Each of the 8 accumulators is one chain of
 * fused multiply-adds over head_dim; horizontal adds then sum the lanes of
 * all 8 at once, every accumulator by the same tree ((0+1) + (2+3)) +
 * ((4+5) + (6+7)), so a score's bits do not depend on which rows and
 * positions share its block. Accumulator i = row * 4 + position ends in lane i. */
static void score_block2x4(const float *q, const float *k, int hd, float scale, float *s)
{
    __m256 acc[8];
    for (int i = 0; i < 8; i++)
        acc[i] = _mm256_setzero_ps();
    for (int d = 0; d < hd; d += 8) {
        const __m256 q0 = _mm256_loadu_ps(q + d), q1 = _mm256_loadu_ps(q + (size_t)hd + d);
        for (int j = 0; j < 4; j++) {
            const __m256 kv = _mm256_loadu_ps(k + (size_t)j * hd + d);
            acc[j] = _mm256_fmadd_ps(q0, kv, acc[j]);
            acc[4 + j] = _mm256_fmadd_ps(q1, kv, acc[4 + j]);
        }
    }
    const __m256 s0 = _mm256_hadd_ps(acc[0], acc[1]), s1 = _mm256_hadd_ps(acc[2], acc[3]);
    const __m256 s2 = _mm256_hadd_ps(acc[4], acc[5]), s3 = _mm256_hadd_ps(acc[6], acc[7]);
    const __m256 t0 = _mm256_hadd_ps(s0, s1), t1 = _mm256_hadd_ps(s2, s3);
    const __m256 sum = _mm256_add_ps(_mm256_permute2f128_ps(t0, t1, 0x20),
                                     _mm256_permute2f128_ps(t0, t1, 0x31));
    const __m256 sc = _mm256_mul_ps(sum, _mm256_set1_ps(scale));
    _mm_storeu_ps(s, _mm256_castps256_ps128(sc));
    _mm_storeu_ps(s + ATTN_CHUNK, _mm256_extractf128_ps(sc, 1));
}

/* Rows and positions are rounded up to whole 2 x 4 blocks: the extra ones
 * read scratch rows of the tile (zeroed or earlier data) and their scores,
 * which the driver overwrites or ignores, never mix into real ones. */
static void scores_avx2(const float *q, int n_rows, const float *k, int n_pos, int hd,
                        float scale, float *s)
{
    for (int r = 0; r < n_rows; r += 2)
        for (int j = 0; j < n_pos; j += 4)
            score_block2x4(q + (size_t)r * hd, k + (size_t)j * hd, hd, scale,
                           s + r * ATTN_CHUNK + j);
}

static float exp_sum_avx2(float *p, float max)
{
    _Static_assert(ATTN_CHUNK == 32, "exp_sum_avx2 sums four vectors");
    ops_exp_shift_avx2(p, ATTN_CHUNK, max);
    const __m256 a = _mm256_add_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8));
    const __m256 b = _mm256_add_ps(_mm256_loadu_ps(p + 16), _mm256_loadu_ps(p + 24));
    return hsum8(_mm256_add_ps(a, b));
}

/* The same operations as probs_scalar: exp, a multiply, F16 rounding through
 * F16C (bit-exact with the scalar conversion). */
static void probs_avx2(float *p, float max, float inv, int round_f16)
{
    ops_exp_shift_avx2(p, ATTN_CHUNK, max);
    const __m256 iv = _mm256_set1_ps(inv);
    for (int j = 0; j < ATTN_CHUNK; j += 8) {
        __m256 e = _mm256_mul_ps(_mm256_loadu_ps(p + j), iv);
        if (round_f16)
            e = _mm256_cvtph_ps(_mm256_cvtps_ph(e, _MM_FROUND_TO_NEAREST_INT));
        _mm256_storeu_ps(p + j, e);
    }
}

/* acc[0..W*8) of R rows (R = 1 or 2): p_j * v_j added for j < n[r] in
 * order; the rows of a pair share the V loads while both are active. */
static inline __attribute__((always_inline)) void acc_block(float *acc, int hd, int R,
                                                            const float *p, const int *n,
                                                            const float *v, int W)
{
    __m256 a[2][4];
    for (int r = 0; r < R; r++)
        for (int w = 0; w < W; w++)
            a[r][w] = _mm256_loadu_ps(acc + (size_t)r * hd + w * 8);
    const int both = R == 2 ? (n[0] < n[1] ? n[0] : n[1]) : n[0];
    int j = 0;
    for (; j < both; j++) {
        const float *vj = v + (size_t)j * hd;
        __m256 vv[4];
        for (int w = 0; w < W; w++)
            vv[w] = _mm256_loadu_ps(vj + w * 8);
        for (int r = 0; r < R; r++) {
            const __m256 pj = _mm256_set1_ps(p[r * ATTN_CHUNK + j]);
            for (int w = 0; w < W; w++)
                a[r][w] = _mm256_fmadd_ps(pj, vv[w], a[r][w]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int jr = j; jr < n[r]; jr++) {
            const __m256 pj = _mm256_set1_ps(p[r * ATTN_CHUNK + jr]);
            for (int w = 0; w < W; w++)
                a[r][w] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(v + (size_t)jr * hd + w * 8),
                                          a[r][w]);
        }
    for (int r = 0; r < R; r++)
        for (int w = 0; w < W; w++)
            _mm256_storeu_ps(acc + (size_t)r * hd + w * 8, a[r][w]);
}

static void accumulate_avx2(float *acc, int n_rows, const float *p, const int *n,
                            const float *v, int hd)
{
    for (int r = 0; r < n_rows; r += 2) {
        float *ar = acc + (size_t)r * hd;
        const float *pr = p + r * ATTN_CHUNK;
        int d = 0;
        if (r + 2 <= n_rows) {
            for (; d + 32 <= hd; d += 32)
                acc_block(ar + d, hd, 2, pr, n + r, v + d, 4);
            for (; d < hd; d += 8)
                acc_block(ar + d, hd, 2, pr, n + r, v + d, 1);
        } else {
            for (; d + 32 <= hd; d += 32)
                acc_block(ar + d, hd, 1, pr, n + r, v + d, 4);
            for (; d < hd; d += 8)
                acc_block(ar + d, hd, 1, pr, n + r, v + d, 1);
        }
    }
}

const struct attn_isa attn_isa_avx2 = {row_to_f32_avx2, scores_avx2, exp_sum_avx2, probs_avx2,
                                       accumulate_avx2};
#endif
