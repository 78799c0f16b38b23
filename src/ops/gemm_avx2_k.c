/*
 * gemm_avx2_k.c: AVX2 (+FMA) kernels for the k-quant weight types
 * (q2_K..q6_K) against q8_K activations, and a q8_K converter giving the
 * reference quantizer's bytes.
 *
 * The numerics are the scalar kernels' (gemm_scalar_k.c), bit for bit: a
 * ymm of 32 consecutive values of a block, unsigned weight codes times
 * signed activations (vpmaddubsw; no pair can saturate), the code offset of
 * q3_K / q6_K taken back in the same 16-bit sums, then vpmaddwd with the
 * values' 16-group scales leaves in lane l the exact sum over values 4l..4l+3
 * of each 32; the block's eight such vectors add up to the eight lane sums,
 * and each block ends with one fused multiply-add per lane.
 *
 * A weight block is unpacked one 32-value vector at a time and used at once
 * against up to KQ_C activation rows, so an unpacked vector is shared by
 * those rows. Every pair goes through the same instruction sequence whatever
 * the rows around it, so results do not depend on the batch.
 */
#include <immintrin.h>
#include <string.h>

#include "ops/kernels.h"
#include "ops/gemm_k_x86.h"
#include "ops/quants.h"

#define KQ_C 4 /* activation rows per pass over a weight row */

/* Per 16-bit lane: the scale of the lane's two values in vector v, from the
 * 16 scales as 16-bit values (s16): scale 2v in the low 128 bits, 2v + 1 in
 * the high. */
ALWAYS_INLINE __m256i kq_scale_vec(__m256i s16, int v)
{
    const int lo = 2 * v, hi = 2 * v + 1;
    /* Two calls with literal selectors: the operand must be an immediate. */
    const __m256i half = v < 4 ? _mm256_permute2x128_si256(s16, s16, 0x00)
                               : _mm256_permute2x128_si256(s16, s16, 0x11);
    const __m256i pick = _mm256_setr_epi8(
        (char)(2 * (lo % 8)), (char)(2 * (lo % 8) + 1), (char)(2 * (lo % 8)), (char)(2 * (lo % 8) + 1),
        (char)(2 * (lo % 8)), (char)(2 * (lo % 8) + 1), (char)(2 * (lo % 8)), (char)(2 * (lo % 8) + 1),
        (char)(2 * (lo % 8)), (char)(2 * (lo % 8) + 1), (char)(2 * (lo % 8)), (char)(2 * (lo % 8) + 1),
        (char)(2 * (lo % 8)), (char)(2 * (lo % 8) + 1), (char)(2 * (lo % 8)), (char)(2 * (lo % 8) + 1),
        (char)(2 * (hi % 8)), (char)(2 * (hi % 8) + 1), (char)(2 * (hi % 8)), (char)(2 * (hi % 8) + 1),
        (char)(2 * (hi % 8)), (char)(2 * (hi % 8) + 1), (char)(2 * (hi % 8)), (char)(2 * (hi % 8) + 1),
        (char)(2 * (hi % 8)), (char)(2 * (hi % 8) + 1), (char)(2 * (hi % 8)), (char)(2 * (hi % 8) + 1),
        (char)(2 * (hi % 8)), (char)(2 * (hi % 8) + 1), (char)(2 * (hi % 8)), (char)(2 * (hi % 8) + 1));
    return _mm256_shuffle_epi8(half, pick);
}

/* Unsigned codes of values 32v..32v+31. */
ALWAYS_INLINE __m256i kq_codes(int type, const struct kq_blk *k, int v)
{
    const __m256i m2 = _mm256_set1_epi8(3), m4 = _mm256_set1_epi8(0x0F);
    switch (type) {
    case PG_TYPE_Q2_K: {
        const block_q2_K *w = (const block_q2_K *)(const void *)k->b;
        return _mm256_and_si256(_mm256_srli_epi16(load256(w->qs + 32 * (v / 4)), 2 * (v % 4)), m2);
    }
    case PG_TYPE_Q3_K: {
        const block_q3_K *w = (const block_q3_K *)(const void *)k->b;
        const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(load256(w->qs + 32 * (v / 4)), 2 * (v % 4)), m2);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(load256(w->hmask), v), _mm256_set1_epi8(1));
        return _mm256_or_si256(lo, _mm256_slli_epi16(hi, 2));
    }
    case PG_TYPE_Q4_K: {
        const block_q4_K *w = (const block_q4_K *)(const void *)k->b;
        return _mm256_and_si256(_mm256_srli_epi16(load256(w->qs + 32 * (v / 2)), 4 * (v % 2)), m4);
    }
    case PG_TYPE_Q5_K: {
        const block_q5_K *w = (const block_q5_K *)(const void *)k->b;
        const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(load256(w->qs + 32 * (v / 2)), 4 * (v % 2)), m4);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(load256(w->qh), v), _mm256_set1_epi8(1));
        return _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
    }
    default: {
        const block_q6_K *w = (const block_q6_K *)(const void *)k->b;
        const int h = v / 4, t = v % 4;
        const __m256i lo = _mm256_and_si256(
            _mm256_srli_epi16(load256(w->ql + 64 * h + 32 * (t & 1)), 4 * (t / 2)), m4);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(load256(w->qh + 32 * h), 2 * t), m2);
        return _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
    }
    }
}

/* One weight row against C activation rows (x[c]), all nb blocks. */
ALWAYS_INLINE void kq_row(int type, int C, const uint8_t *w, const block_q8_K *const *x,
                          int64_t nb, float *out[])
{
    const size_t wbs = kq_block_size(type);
    __m256 acc[KQ_C];
    __m128 accm[KQ_C];
    float mins[KQ_C];
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) {
        acc[c] = _mm256_setzero_ps();
        accm[c] = _mm_setzero_ps();
        mins[c] = 0.0f;
    }
    for (int64_t i = 0; i < nb; i++) {
        struct kq_blk k;
        kq_prefetch_ahead(w + (size_t)i * wbs, wbs);
        kq_prep(type, w + (size_t)i * wbs, &k);
        __m256i sum[KQ_C];
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            sum[c] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int v = 0; v < 8; v++) {
            const __m256i q = kq_codes(type, &k, v);
            const __m256i sc = kq_scale_vec(k.s16, v);
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                const __m256i a = load256(x[c][i].qs + 32 * v);
                __m256i p = _mm256_maddubs_epi16(q, a);
                if (kq_offset(type))
                    p = _mm256_sub_epi16(p, _mm256_maddubs_epi16(_mm256_set1_epi8((char)kq_offset(type)), a));
                sum[c] = _mm256_add_epi32(sum[c], _mm256_madd_epi16(sc, p));
            }
        }
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const __m128i gs = type == PG_TYPE_Q4_K || type == PG_TYPE_Q5_K ? kq_group_sums(&x[c][i])
                                                                           : _mm_setzero_si128();
            kq_block_step(type, sum[c], &x[c][i], &k, gs, &acc[c], &accm[c], &mins[c]);
        }
    }
#pragma GCC unroll 4
    for (int c = 0; c < C; c++)
        *out[c] = kq_pair_result(type, acc[c], accm[c], mins[c]);
}

ALWAYS_INLINE void kq_gemm(int type, const struct gemm_args *a)
{
    const int64_t nb = a->k / QK_K;
    for (int64_t c0 = 0; c0 < a->b; c0 += KQ_C) {
        const int C = a->b - c0 < KQ_C ? (int)(a->b - c0) : KQ_C;
        const block_q8_K *x[KQ_C];
        for (int c = 0; c < C; c++)
            x[c] = (const block_q8_K *)(const void *)(a->x + (size_t)(c0 + c) * a->x_stride);
        for (int64_t j = 0; j < a->n; j++) {
            const uint8_t *w = a->w + (size_t)j * a->w_stride;
            float *out[KQ_C];
            for (int c = 0; c < C; c++)
                out[c] = a->y + (c0 + c) * a->y_stride + j;
            switch (C) {
            case 4: kq_row(type, 4, w, x, nb, out); break;
            case 3: kq_row(type, 3, w, x, nb, out); break;
            case 2: kq_row(type, 2, w, x, nb, out); break;
            default: kq_row(type, 1, w, x, nb, out); break;
            }
        }
    }
}

static void gemm_q2_K_avx2(const struct gemm_args *a) { kq_gemm(PG_TYPE_Q2_K, a); }
static void gemm_q3_K_avx2(const struct gemm_args *a) { kq_gemm(PG_TYPE_Q3_K, a); }
static void gemm_q4_K_avx2(const struct gemm_args *a) { kq_gemm(PG_TYPE_Q4_K, a); }
static void gemm_q5_K_avx2(const struct gemm_args *a) { kq_gemm(PG_TYPE_Q5_K, a); }
static void gemm_q6_K_avx2(const struct gemm_args *a) { kq_gemm(PG_TYPE_Q6_K, a); }

/* ---- q8_K activations: the reference quantizer's bytes ---- */

static void quantize_row_q8_K_avx2(const float *x, void *y, int64_t n)
{
    block_q8_K *out = y;
    const int64_t nb = n / QK_K;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        __m256 amax = _mm256_setzero_ps();
        for (int j = 0; j < QK_K; j += 8)
            amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float m = _mm_cvtss_f32(m4);
        if (m == 0.0f) {
            memset(&out[i], 0, sizeof out[i]);
            continue;
        }
        /* The first value of that magnitude gives the sign, as the
         * reference's strict comparison does. */
        float vmax = 0.0f;
        const __m256 mv = _mm256_set1_ps(m);
        for (int j = 0; j < QK_K; j += 8) {
            const __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j));
            const __m256 e = _mm256_cmp_ps(a, mv, _CMP_EQ_OQ);
            const int k = _mm256_movemask_ps(e);
            if (k) {
                vmax = x[j + __builtin_ctz((unsigned)k)];
                break;
            }
        }
        const float iscale = -127.0f / vmax;
        const __m256 is = _mm256_set1_ps(iscale);
        const __m256i top = _mm256_set1_epi32(127);
        for (int g = 0; g < 16; g++) {
            const __m256i q0 = _mm256_min_epi32(
                _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16 * g), is)), top);
            const __m256i q1 = _mm256_min_epi32(
                _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16 * g + 8), is)), top);
            /* Codes lie in -127..127, so saturating packs keep them. */
            const __m256i p = _mm256_permute4x64_epi64(_mm256_packs_epi32(q0, q1), 0xD8);
            const __m128i b =
                _mm_packs_epi16(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
            _mm_storeu_si128((__m128i *)(out[i].qs + 16 * g), b);
            __m256i s = _mm256_add_epi32(q0, q1);
            __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            s4 = _mm_add_epi32(s4, _mm_srli_si128(s4, 8));
            s4 = _mm_add_epi32(s4, _mm_srli_si128(s4, 4));
            out[i].bsums[g] = (int16_t)_mm_cvtsi128_si32(s4);
        }
        out[i].d = 1.0f / iscale;
    }
}
void kernels_avx2_k_init(struct kernel_table *t)
{
    t->gemm[PG_TYPE_Q2_K] = gemm_q2_K_avx2;
    t->gemm[PG_TYPE_Q3_K] = gemm_q3_K_avx2;
    t->gemm[PG_TYPE_Q4_K] = gemm_q4_K_avx2;
    t->gemm[PG_TYPE_Q5_K] = gemm_q5_K_avx2;
    t->gemm[PG_TYPE_Q6_K] = gemm_q6_K_avx2;
    for (int type = PG_TYPE_Q2_K; type <= PG_TYPE_Q6_K; type++)
        t->isa[type] = "avx2";
    t->act_quant[PG_TYPE_Q8_K] = quantize_row_q8_K_avx2;
}
