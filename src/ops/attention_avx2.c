/*
 * attention_avx2.c: the attention numeric steps (attention_impl.h) with AVX2,
 * FMA and F16C (head_dim % 8 == 0), the operations of the scalar steps in
 * attention.c in the same order: a 16-lane chain as two vectors of eight,
 * four positions per vector of doubles where the order adds in double; rows
 * are blocked for register reuse, never regrouped.
 */
#include "ops/attention_impl.h"

#if defined(PAGODA_HAVE_X86)
#include <immintrin.h>
#include <math.h>

#include "base/fp16.h"
#include "ops/ops_simd.h"
#include "ops/simd_x86.h"
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

/* The 64-element steps of q · k (attention_impl.h) for one row and one
 * position: four 16-lane chains of fused multiply-adds as lanes 0-7 and
 * 8-15, combined as (0 + 2) + (1 + 3), then lanes 0-7 plus 8-15 and hsum8:
 * the tree of tree16. */
static float head_dot(const float *q, const float *k, int np)
{
    __m256 acc[4][2];
    for (int a = 0; a < 4; a++)
        acc[a][0] = acc[a][1] = _mm256_setzero_ps();
    for (int d0 = 0; d0 < np; d0 += 64)
        for (int a = 0; a < 4; a++)
            for (int h = 0; h < 2; h++) {
                const int d = d0 + a * 16 + h * 8;
                acc[a][h] = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(k + d),
                                            acc[a][h]);
            }
    __m256 v[2];
    for (int h = 0; h < 2; h++)
        v[h] = _mm256_add_ps(_mm256_add_ps(acc[0][h], acc[2][h]),
                             _mm256_add_ps(acc[1][h], acc[3][h]));
    return hsum8(_mm256_add_ps(v[0], v[1]));
}

/* Scores for all ATTN_CHUNK positions (those past n_pos read earlier or
 * zeroed scratch rows; the driver overwrites their scores): the 64-element
 * steps per pair, then the remaining elements against a transposed copy of
 * K, four positions per vector of doubles, one product at a time in order
 * as dot_scalar adds them. */
static void scores_avx2(const float *q, int n_rows, const float *k, int n_pos, int hd,
                        float scale, float *s)
{
    (void)n_pos;
    const int np = hd & ~63, nt = hd - np;
    if (np > 0)
        for (int r = 0; r < n_rows; r++)
            for (int j = 0; j < ATTN_CHUNK; j++)
                s[r * ATTN_CHUNK + j] = head_dot(q + (size_t)r * hd, k + (size_t)j * hd, np);
    float kt[64 * ATTN_CHUNK]; /* kt[d * ATTN_CHUNK + j] = k_j[np + d] */
    for (int j = 0; j < ATTN_CHUNK; j += 8)
        for (int d = 0; d < nt; d += 8)
            transpose8x8_ps(k + (size_t)j * hd + np + d, (size_t)hd, kt + d * ATTN_CHUNK + j,
                       ATTN_CHUNK);
    const __m256 sc = _mm256_set1_ps(scale);
    _Static_assert(ATTN_CHUNK == 32, "scores_avx2 keeps eight vectors of four positions");
    for (int r = 0; r < n_rows; r++) {
        float *sr = s + r * ATTN_CHUNK;
        const float *qr = q + (size_t)r * hd + np;
        __m256d acc[8];
        for (int g = 0; g < 8; g++)
            acc[g] = np > 0 ? _mm256_cvtps_pd(_mm_loadu_ps(sr + 4 * g)) : _mm256_setzero_pd();
        for (int d = 0; d < nt; d++) {
            const __m256 qd = _mm256_set1_ps(qr[d]);
            for (int g = 0; g < 4; g++) {
                const __m256 pr = _mm256_mul_ps(qd, _mm256_loadu_ps(kt + d * ATTN_CHUNK + 8 * g));
                acc[2 * g] = _mm256_add_pd(acc[2 * g], _mm256_cvtps_pd(_mm256_castps256_ps128(pr)));
                acc[2 * g + 1] =
                    _mm256_add_pd(acc[2 * g + 1], _mm256_cvtps_pd(_mm256_extractf128_ps(pr, 1)));
            }
        }
        for (int g = 0; g < 4; g++) {
            const __m256 v =
                _mm256_set_m128(_mm256_cvtpd_ps(acc[2 * g + 1]), _mm256_cvtpd_ps(acc[2 * g]));
            _mm256_storeu_ps(sr + 8 * g, _mm256_mul_ps(v, sc));
        }
    }
}

static void exp_shift_avx2(float *p, float max)
{
    ops_exp_shift_avx2(p, ATTN_CHUNK, max);
}

/* Lanes 0-7 plus lanes 8-15, then hsum8: the tree of sum_avx512. */
static double sum_avx2(const float *p, double sum)
{
    for (int j = 0; j < ATTN_CHUNK; j += 16)
        sum += (double)hsum8(_mm256_add_ps(_mm256_loadu_ps(p + j), _mm256_loadu_ps(p + j + 8)));
    return sum;
}

/* The same operations as probs_scalar: a multiply, F16 rounding through
 * F16C (bit-exact with the scalar conversion). */
static void probs_avx2(float *p, float inv, int round_f16)
{
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

const struct attn_isa attn_isa_avx2 = {row_to_f32_avx2, scores_avx2, exp_shift_avx2,
                                       sum_avx2,        probs_avx2,  accumulate_avx2};
#endif
