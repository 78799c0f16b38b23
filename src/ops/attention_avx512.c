/*
 * attention_avx512.c: the attention numeric steps (attention_impl.h) with
 * AVX-512 (head_dim % 16 == 0), the operations of the scalar steps in
 * attention.c in the same order: sixteen lanes over head_dim where the
 * order has 16-lane chains, eight positions per vector of doubles where it
 * adds in double; rows are blocked for register reuse, never regrouped.
 */
#include "ops/attention_impl.h"

#if defined(PAGODA_HAVE_X86)
#include <immintrin.h>
#include <math.h>

#include "base/fp16.h"
#include "ops/ops_simd.h"
#include "ops/simd_x86.h"
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

/* The 64-element steps of q · k (attention_impl.h) for 2 rows x 2
 * positions: four chains of fused multiply-adds per pair, combined as
 * (0 + 2) + (1 + 3), then the lanes by the tree of hsum16 (tree16). */
static void head_block2x2(const float *q, const float *k, int hd, int np, float *s)
{
    __m512 acc[4][4];
    for (int p = 0; p < 4; p++)
        for (int a = 0; a < 4; a++)
            acc[p][a] = _mm512_setzero_ps();
    for (int d0 = 0; d0 < np; d0 += 64)
        for (int a = 0; a < 4; a++) {
            const int d = d0 + a * 16;
            const __m512 q0 = _mm512_loadu_ps(q + d), q1 = _mm512_loadu_ps(q + (size_t)hd + d);
            const __m512 k0 = _mm512_loadu_ps(k + d), k1 = _mm512_loadu_ps(k + (size_t)hd + d);
            acc[0][a] = _mm512_fmadd_ps(q0, k0, acc[0][a]);
            acc[1][a] = _mm512_fmadd_ps(q0, k1, acc[1][a]);
            acc[2][a] = _mm512_fmadd_ps(q1, k0, acc[2][a]);
            acc[3][a] = _mm512_fmadd_ps(q1, k1, acc[3][a]);
        }
    __m512 v[4];
    for (int p = 0; p < 4; p++)
        v[p] = _mm512_add_ps(_mm512_add_ps(acc[p][0], acc[p][2]),
                             _mm512_add_ps(acc[p][1], acc[p][3]));
    /* hsum16 of all four at once: lanes i + (i+8) (quarters 0+2, 1+3 of
     * each pair of vectors), then i + (i+4) (a pair's two quarters), leaving
     * quarter p of g holding lanes 0-3 of pair p; then i + (i+2) and the
     * last pair inside each quarter. */
    const __m512 h01 = _mm512_add_ps(_mm512_shuffle_f32x4(v[0], v[1], 0x44),
                                     _mm512_shuffle_f32x4(v[0], v[1], 0xEE));
    const __m512 h23 = _mm512_add_ps(_mm512_shuffle_f32x4(v[2], v[3], 0x44),
                                     _mm512_shuffle_f32x4(v[2], v[3], 0xEE));
    const __m512 g = _mm512_add_ps(_mm512_shuffle_f32x4(h01, h23, 0x88),
                                   _mm512_shuffle_f32x4(h01, h23, 0xDD));
    const __m512 k2 = _mm512_add_ps(g, _mm512_shuffle_ps(g, g, _MM_SHUFFLE(1, 0, 3, 2)));
    const __m512 r = _mm512_add_ps(k2, _mm512_shuffle_ps(k2, k2, _MM_SHUFFLE(2, 3, 0, 1)));
    float h[16];
    _mm512_storeu_ps(h, r);
    s[0] = h[0];
    s[1] = h[4];
    s[ATTN_CHUNK] = h[8];
    s[ATTN_CHUNK + 1] = h[12];
}

/* Scores for all ATTN_CHUNK positions (those past n_pos read earlier or
 * zeroed scratch rows; the driver overwrites their scores): the 64-element
 * steps by blocks, then the remaining elements against a transposed copy of
 * K, eight positions per vector of doubles, one product at a time in order
 * as dot_scalar adds them. Rows are rounded up to a pair in the first part
 * (scratch rows again). */
static void scores_avx512(const float *q, int n_rows, const float *k, int n_pos, int hd,
                          float scale, float *s)
{
    (void)n_pos;
    const int np = hd & ~63, nt = hd - np;
    if (np > 0)
        for (int r = 0; r < n_rows; r += 2)
            for (int j = 0; j < ATTN_CHUNK; j += 2)
                head_block2x2(q + (size_t)r * hd, k + (size_t)j * hd, hd, np,
                              s + r * ATTN_CHUNK + j);
    float kt[64 * ATTN_CHUNK]; /* kt[d * ATTN_CHUNK + j] = k_j[np + d] */
    for (int j = 0; j < ATTN_CHUNK; j += 8)
        for (int d = 0; d < nt; d += 8)
            transpose8x8_ps(k + (size_t)j * hd + np + d, (size_t)hd, kt + d * ATTN_CHUNK + j,
                       ATTN_CHUNK);
    const __m512 sc = _mm512_set1_ps(scale);
    _Static_assert(ATTN_CHUNK == 32, "scores_avx512 keeps four vectors of eight positions");
    for (int r = 0; r < n_rows; r++) {
        float *sr = s + r * ATTN_CHUNK;
        const float *qr = q + (size_t)r * hd + np;
        __m512d acc[4];
        for (int g = 0; g < 4; g++)
            acc[g] = np > 0 ? _mm512_cvtps_pd(_mm256_loadu_ps(sr + 8 * g)) : _mm512_setzero_pd();
        for (int d = 0; d < nt; d++) {
            const __m256 qd = _mm256_set1_ps(qr[d]);
            const float *kd = kt + d * ATTN_CHUNK;
            for (int g = 0; g < 4; g++)
                acc[g] = _mm512_add_pd(
                    acc[g], _mm512_cvtps_pd(_mm256_mul_ps(qd, _mm256_loadu_ps(kd + 8 * g))));
        }
        const __m512 lo = _mm512_castps256_ps512(_mm512_cvtpd_ps(acc[0]));
        const __m512 v0 = _mm512_insertf32x8(lo, _mm512_cvtpd_ps(acc[1]), 1);
        const __m512 hi = _mm512_castps256_ps512(_mm512_cvtpd_ps(acc[2]));
        const __m512 v1 = _mm512_insertf32x8(hi, _mm512_cvtpd_ps(acc[3]), 1);
        _mm512_storeu_ps(sr, _mm512_mul_ps(v0, sc));
        _mm512_storeu_ps(sr + 16, _mm512_mul_ps(v1, sc));
    }
}

static void exp_shift_avx512(float *p, float max)
{
    ops_exp_shift_avx512(p, ATTN_CHUNK, max);
}

static double sum_avx512(const float *p, double sum)
{
    for (int j = 0; j < ATTN_CHUNK; j += 16)
        sum += (double)hsum16(_mm512_loadu_ps(p + j));
    return sum;
}

/* The same operations as probs_scalar: a multiply, F16 rounding (bit-exact
 * with the scalar conversion). */
static void probs_avx512(float *p, float inv, int round_f16)
{
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

const struct attn_isa attn_isa_avx512 = {row_to_f32_avx512, scores_avx512, exp_shift_avx512,
                                         sum_avx512,        probs_avx512,  accumulate_avx512};
#endif
