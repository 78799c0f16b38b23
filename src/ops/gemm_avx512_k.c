/*
 * gemm_avx512_k.c: AVX-512 (F/BW/VL, VNNI) kernels for the k-quant weight
 * types (q2_K..q6_K) against q8_K activations, and a q8_K converter giving
 * the reference quantizer's bytes.
 *
 * The numerics are the scalar kernels' (gemm_scalar_k.c), bit for bit: per
 * block and lane l (values 4l..4l+3 of each 32) one exact integer, the sum
 * of the group-scaled dots, then one fused multiply-add per lane. How the
 * integers are formed is free, and each path picks what runs fastest:
 *
 * - Few activation rows (kq_row): a weight block is unpacked two vectors at
 *   a time and used at once against up to KQ_C rows, the dots of the two
 *   vectors sharing each lane (see kq_block); q4_K / q5_K (up to seven
 *   rows) two blocks a step, so that the work on scales and d is shared
 *   (kq45_step).
 * - More rows (kt_gemm; from four, eight for q3_K..q5_K): weight rows
 *   unpacked once per call, tiles of two weight rows by four activation
 *   rows (see the tiles below).
 *
 * Every pair goes through the same instruction sequence whatever the rows
 * around it, so results do not depend on the batch.
 */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/scratch.h"
#include "ops/kernels.h"
#include "ops/gemm_k_x86.h"
#include "ops/quants.h"

#define KQ_C 8 /* activation rows per pass over a weight row */

/* 32 bytes at p in both halves. */
ALWAYS_INLINE __m512i bcast256(const void *p) { return _mm512_broadcast_i64x4(load256(p)); }

/* 16-bit shift counts: lo for the low 256 bits, hi for the high. */
ALWAYS_INLINE __m512i counts(int lo, int hi)
{
    return _mm512_inserti64x4(_mm512_set1_epi16((short)lo), _mm256_set1_epi16((short)hi), 1);
}


/* What kq_row needs of an activation block beyond its d, worked
 * out once per call rather than once per weight row. v: q2_K, q3_K, q6_K,
 * the code offset's share of each lane's dot (zero for q2_K); q4_K / q5_K,
 * the codes in the order their rows read them. a: the codes of the others.
 * gs: the 32-value group sums (q4_K, q5_K). */
struct kq_xp {
    __m512i v[4];
    __m512i a[4]; /* aligned (a q8_K block's codes are not; read from the
                   * block itself, q6_K rows ran 6% slower) */
    __m128i gs;
    float dn[2]; /* q4_K / q5_K: d and -d */
};

ALWAYS_INLINE void kq_xp_fill(int type, const block_q8_K *x, struct kq_xp *o)
{
    const __m512i off = _mm512_set1_epi8((char)kq_offset(type));
    for (int u = 0; u < 4; u++) {
        const __m512i a = _mm512_loadu_si512((const void *)(x->qs + 64 * u));
        if (type == PG_TYPE_Q2_K || type == PG_TYPE_Q3_K || type == PG_TYPE_Q6_K) {
            o->v[u] = kq_offset(type) ? _mm512_sub_epi32(_mm512_setzero_si512(),
                                                         _mm512_dpbusd_epi32(_mm512_setzero_si512(), off, a))
                                      : _mm512_setzero_si512();
            o->a[u] = a;
        }
    }
    if (type == PG_TYPE_Q4_K || type == PG_TYPE_Q5_K) {
        for (int p = 0; p < 2; p++) {
            const __m512i r01 = _mm512_loadu_si512((const void *)(x->qs + 128 * p));
            const __m512i r23 = _mm512_loadu_si512((const void *)(x->qs + 128 * p + 64));
            o->v[2 * p] = _mm512_shuffle_i64x2(r01, r23, 0x44);     /* runs 0, 2 */
            o->v[2 * p + 1] = _mm512_shuffle_i64x2(r01, r23, 0xEE); /* runs 1, 3 */
        }
        o->gs = kq_group_sums(x);
        o->dn[0] = x->d;
        o->dn[1] = -x->d;
    } else {
        o->gs = _mm_setzero_si128();
    }
}

/* The codes of pair p of a q6_K block: the low nibbles of ql[64p..] with
 * bits 0..1 (first 32 values) and 2..3 (next 32) of qh[32p..] on top, then
 * the high nibbles with bits 4..5 and 6..7. The top bits are shifted to
 * bits 4..5 of their own byte (a 16-bit shift by at most 4 keeps them
 * there) and put in with one bitwise select: 0xE4 takes the first operand's
 * bits where the third has them set, else the second's. */
ALWAYS_INLINE void kq_q6_pair_codes(const struct kq_blk *k, int p, __m512i *qa, __m512i *qb)
{
    const block_q6_K *w = (const block_q6_K *)(const void *)k->b;
    const __m512i l = _mm512_loadu_si512((const void *)(w->ql + 64 * p)), h = bcast256(w->qh + 32 * p);
    const __m512i m4 = _mm512_set1_epi8(0x0F), top = _mm512_set1_epi8(0x30);
    *qa = _mm512_ternarylogic_epi32(l, _mm512_and_si512(_mm512_sllv_epi16(h, counts(4, 2)), top), m4, 0xE4);
    *qb = _mm512_ternarylogic_epi32(_mm512_srli_epi16(l, 4), _mm512_and_si512(_mm512_srlv_epi16(h, counts(0, 2)), top),
                                    m4, 0xE4);
}

/* The codes of pair p of a q2_K block: two bits from qs[32p..], shifted by
 * 0 and 2 for the first vector's halves, 4 and 6 for the second's. */
ALWAYS_INLINE void kq_q2_pair_codes(const struct kq_blk *k, int p, __m512i *qa, __m512i *qb)
{
    const block_q2_K *w = (const block_q2_K *)(const void *)k->b;
    const __m512i l = bcast256(w->qs + 32 * p), m2 = _mm512_set1_epi8(3);
    *qa = _mm512_and_si512(_mm512_srlv_epi16(l, counts(0, 2)), m2);
    *qb = _mm512_and_si512(_mm512_srlv_epi16(l, counts(4, 6)), m2);
}

/* The codes of pair p of a q3_K block: two bits from qs[32p..] (shifted by
 * 0 and 2 for the first vector's halves, 4 and 6 for the second's) with the
 * high bit from hmask on top (bit 4p..4p+3 for the four 32-value runs),
 * each high bit shifted to bit 2 of its own byte (a 16-bit shift by at most
 * 5 keeps it there) and put in with one bitwise select, as for q6_K. */
ALWAYS_INLINE void kq_q3_pair_codes(const struct kq_blk *k, int p, __m512i *qa, __m512i *qb)
{
    const block_q3_K *w = (const block_q3_K *)(const void *)k->b;
    const __m512i l = bcast256(w->qs + 32 * p), h = bcast256(w->hmask);
    const __m512i m2 = _mm512_set1_epi8(3), b2 = _mm512_set1_epi8(4);
    const __m512i ha = p ? _mm512_srlv_epi16(h, counts(2, 3)) : _mm512_sllv_epi16(h, counts(2, 1));
    const __m512i hb = p ? _mm512_srlv_epi16(h, counts(4, 5)) : _mm512_srlv_epi16(h, counts(0, 1));
    *qa = _mm512_ternarylogic_epi32(_mm512_srlv_epi16(l, counts(0, 2)), _mm512_and_si512(ha, b2), m2, 0xE4);
    *qb = _mm512_ternarylogic_epi32(_mm512_srlv_epi16(l, counts(4, 6)), _mm512_and_si512(hb, b2), m2, 0xE4);
}

/* The codes of pair p of a q2_K, q3_K or q6_K block. */
ALWAYS_INLINE void kq_pair_codes(int type, const struct kq_blk *k, int p, __m512i *qa, __m512i *qb)
{
    if (type == PG_TYPE_Q2_K)
        kq_q2_pair_codes(k, p, qa, qb);
    else if (type == PG_TYPE_Q3_K)
        kq_q3_pair_codes(k, p, qa, qb);
    else
        kq_q6_pair_codes(k, p, qa, qb);
}

/* For pair p of a q2_K, q3_K or q6_K block: per 32-bit lane, the scale of the
 * second vector's lane in the lower 16 bits and of the first's in the
 * upper. Sixteen-value groups: lane l of vector u has group 4u + l / 4. */
ALWAYS_INLINE __m512i kq_pair_scales16(const struct kq_blk *k, int p)
{
    const short a = (short)(8 * p), b = (short)(8 * p + 4);
#define KQ_Q(c) (short)(a + (c)), (short)(b + (c)), (short)(a + (c)), (short)(b + (c))
    const __m512i idx = _mm512_set_epi16(KQ_Q(3), KQ_Q(3), KQ_Q(2), KQ_Q(2), KQ_Q(1), KQ_Q(1), KQ_Q(0), KQ_Q(0));
#undef KQ_Q
    return _mm512_permutexvar_epi16(idx, _mm512_castsi256_si512(k->s16));
}

/* q2_K, q3_K and q6_K rows take their 64-value vectors in pairs: the dots
 * of the first vector's lanes go to the upper 16 bits of a 32-bit lane, the
 * second's to the lower (every four-value dot fits 16 bits), and one
 * vpdpwssd applies both group scales. Three multiplies per 128 values
 * instead of four; see the tiles below for why that counts. The dots start
 * from the code offset's share (kq_xp.v; zero for q2_K), so they are the
 * exact dots of the signed values. Pair p is values 128p..128p+127, two
 * vectors in value order. (q4_K / q5_K do the same in kq45_step.)
 *
 * Block i of a q2_K, q3_K or q6_K weight row against C activation rows
 * (x[c], prepared in xp[c * nb + i]). */
ALWAYS_INLINE void kq_block(int type, int C, const uint8_t *w, const block_q8_K *const *x,
                            const struct kq_xp *xp, int64_t nb, int64_t i, __m256 acc[], __m128 accm[],
                            float mins[])
{
    const size_t wbs = kq_block_size(type);
    struct kq_blk k;
    kq_prefetch_ahead(w + (size_t)i * wbs, wbs);
    kq_prep(type, w + (size_t)i * wbs, &k);
    __m512i sum[KQ_C];
#pragma GCC unroll 8
    for (int c = 0; c < C; c++)
        sum[c] = _mm512_setzero_si512();
#pragma GCC unroll 2
    for (int p = 0; p < 2; p++) {
        __m512i qa, qb;
        kq_pair_codes(type, &k, p, &qa, &qb);
        const __m512i sp = kq_pair_scales16(&k, p);
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) {
            const struct kq_xp *e = &xp[c * nb + i];
            const __m512i aa = _mm512_load_si512((const void *)&e->a[2 * p]);
            const __m512i ab = _mm512_load_si512((const void *)&e->a[2 * p + 1]);
            const __m512i sa = _mm512_load_si512((const void *)&e->v[2 * p]);
            const __m512i sb = _mm512_load_si512((const void *)&e->v[2 * p + 1]);
            /* The lower halves from the second dot, as they are:
             * added instead, a negative one would borrow from the
             * upper. */
            const __m512i two = _mm512_mask_blend_epi16(
                0x55555555u, _mm512_slli_epi32(_mm512_dpbusd_epi32(sa, qa, aa), 16),
                _mm512_dpbusd_epi32(sb, qb, ab));
            sum[c] = _mm512_dpwssd_epi32(sum[c], two, sp);
        }
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) {
        const __m256i s8 = _mm256_add_epi32(_mm512_castsi512_si256(sum[c]), _mm512_extracti64x4_epi64(sum[c], 1));
        kq_block_step(type, s8, &x[c][i], &k, _mm_setzero_si128(), &acc[c], &accm[c], &mins[c]);
    }
}

/* ---- q4_K / q5_K, few activation rows: two blocks a step ----
 *
 * The same integers and float steps as kq_block, with the per-block work
 * that does not touch the codes shared by two blocks: their scale bytes
 * are unpacked in one 256-bit pass, their d and dmin converted and
 * multiplied by the activations' in one 128-bit step, and the minimum
 * terms of both made by one vpmaddwd. With one activation row that work
 * was a third of the time.
 *
 * Lanes of a pair's 32-bit dot: the second vector's dot in the upper 16
 * bits, the first's in the lower (kq_block has them the other way round).
 * For q4_K the second vector's codes stay in the high nibbles, so its dot
 * comes out sixteen times too large, and shifting it by 12 instead of 16
 * puts it in place: one instruction less per pair. */

/* For pair p of a q4_K / q5_K block whose scale bytes are in every 128-bit
 * quarter of smb: per 32-bit lane, the scales of the pair's two vectors'
 * lanes, the second vector's in the upper 16 bits (second_high) or in the
 * lower. Lanes 0..7 of the first vector have run 4p, lanes 8..15 run 4p + 2;
 * of the second, runs 4p + 1 and 4p + 3. */
ALWAYS_INLINE __m512i kq45_pair_scales(__m512i smb, int p, int second_high)
{
    const char r = (char)(4 * p), lo = second_high ? 0 : 1, hi = second_high ? 1 : 0;
#define KQ_Q(r) -1, (char)((r) + hi), -1, (char)((r) + lo)
    const __m512i idx = _mm512_set_epi8(KQ_Q(r + 2), KQ_Q(r + 2), KQ_Q(r + 2), KQ_Q(r + 2), KQ_Q(r + 2),
                                        KQ_Q(r + 2), KQ_Q(r + 2), KQ_Q(r + 2), KQ_Q(r), KQ_Q(r), KQ_Q(r), KQ_Q(r),
                                        KQ_Q(r), KQ_Q(r), KQ_Q(r), KQ_Q(r));
#undef KQ_Q
    return _mm512_shuffle_epi8(smb, idx);
}

/* The codes of pair p of a q4_K / q5_K block as one 64-byte load of them
 * gives: the low nibbles (runs 4p, 4p + 2) and the high (4p + 1, 4p + 3),
 * q5_K's fifth bits on top. Bit j of qh[i] is the fifth bit of value i of
 * run j; a 16-bit shift by at most 4 keeps bit 4 of each byte within its
 * byte, and the select 0xE4 takes the first operand's bits where the third
 * has them set, else the second's. */
ALWAYS_INLINE void kq45_pair_codes(int type, const uint8_t *b, int p, __m512i *qa, __m512i *qb)
{
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    if (type == PG_TYPE_Q4_K) {
        const __m512i l = _mm512_loadu_si512((const void *)(((const block_q4_K *)(const void *)b)->qs + 64 * p));
        *qa = _mm512_and_si512(l, m4);
        *qb = _mm512_and_si512(_mm512_srli_epi16(l, 4), m4);
        return;
    }
    const block_q5_K *w = (const block_q5_K *)(const void *)b;
    const __m512i l = _mm512_loadu_si512((const void *)(w->qs + 64 * p));
    const __m512i h = bcast256(w->qh), b4 = _mm512_set1_epi8(0x10);
    const __m512i ha = p ? _mm512_srlv_epi16(h, counts(0, 2)) : _mm512_sllv_epi16(h, counts(4, 2));
    const __m512i hb = p ? _mm512_srlv_epi16(h, counts(1, 3)) : _mm512_sllv_epi16(h, counts(3, 1));
    *qa = _mm512_ternarylogic_epi32(l, _mm512_and_si512(ha, b4), m4, 0xE4);
    *qb = _mm512_ternarylogic_epi32(_mm512_srli_epi16(l, 4), _mm512_and_si512(hb, b4), m4, 0xE4);
}

/* Block h (0 or 1) of the step at block i: its lane sums against the C rows. */
ALWAYS_INLINE void kq45_block(int type, int C, const uint8_t *b, __m512i smb, const struct kq_xp *xp, int64_t nb,
                              int64_t i, __m512i sum[])
{
#pragma GCC unroll 8
    for (int c = 0; c < C; c++)
        sum[c] = _mm512_setzero_si512();
#pragma GCC unroll 2
    for (int p = 0; p < 2; p++) {
        const __m512i sp = kq45_pair_scales(smb, p, 1);
        __m512i qa, qb;
        if (type == PG_TYPE_Q4_K) {
            const __m512i l = _mm512_loadu_si512((const void *)(((const block_q4_K *)(const void *)b)->qs + 64 * p));
            qa = _mm512_and_si512(l, _mm512_set1_epi8(0x0F));
            qb = _mm512_andnot_si512(_mm512_set1_epi8(0x0F), l); /* 16 times the codes */
        } else {
            kq45_pair_codes(type, b, p, &qa, &qb);
        }
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) {
            const struct kq_xp *e = &xp[c * nb + i];
            const __m512i db = _mm512_dpbusd_epi32(_mm512_setzero_si512(), qb, e->v[2 * p + 1]);
            const __m512i hi = type == PG_TYPE_Q4_K ? _mm512_slli_epi32(db, 12) : _mm512_slli_epi32(db, 16);
            const __m512i two = _mm512_mask_blend_epi16(0x55555555u, hi,
                                                        _mm512_dpbusd_epi32(_mm512_setzero_si512(), qa, e->v[2 * p]));
            sum[c] = _mm512_dpwssd_epi32(sum[c], two, sp);
        }
    }
}

/* Blocks i and i + 1 (NB = 2) or block i alone (NB = 1) of one weight row
 * against C activation rows. */
ALWAYS_INLINE void kq45_step(int type, int C, int NB, const uint8_t *w, const struct kq_xp *xp, int64_t nb,
                             int64_t i, __m256 acc[], __m128 accm[], float mins[])
{
    const size_t wbs = kq_block_size(type);
    const uint8_t *b0 = w + (size_t)i * wbs, *b1 = NB == 2 ? b0 + wbs : b0;
    kq_prefetch_ahead(b0, (size_t)NB * wbs);
    const block_q4_K *h0 = (const block_q4_K *)(const void *)b0, *h1 = (const block_q4_K *)(const void *)b1;
    const __m256i sm2 = kq_q45_scales_x2(
        _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)h0->scales)),
                                _mm_loadu_si128((const __m128i *)(const void *)h1->scales), 1));
    const __m256i m16 = _mm256_unpackhi_epi8(sm2, _mm256_setzero_si256());
    uint32_t dw[2];
    memcpy(&dw[0], b0, 4); /* d, dmin */
    memcpy(&dw[1], b1, 4);
    const __m128 dk = _mm_cvtph_ps(_mm_setr_epi32((int)dw[0], (int)dw[1], 0, 0));
    __m128 dd[KQ_C];
    __m256i mi[KQ_C];
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) {
        const struct kq_xp *e0 = &xp[c * nb + i], *e1 = NB == 2 ? e0 + 1 : e0;
        const __m128i dx = _mm_unpacklo_epi64(_mm_loadl_epi64((const __m128i *)(const void *)e0->dn),
                                              _mm_loadl_epi64((const __m128i *)(const void *)e1->dn));
        /* d and -dmin of each block times the activation's d, as the
         * reference multiplies them. */
        dd[c] = _mm_mul_ps(_mm_castsi128_ps(dx), dk);
        mi[c] = _mm256_madd_epi16(m16, _mm256_inserti128_si256(_mm256_castsi128_si256(e0->gs), e1->gs, 1));
    }
    const __m512i sz = _mm512_castsi256_si512(sm2);
#pragma GCC unroll 2
    for (int h = 0; h < NB; h++) {
        __m512i sum[KQ_C];
        /* Selectors are immediates: one literal call per block. */
        const __m512i szh = h ? _mm512_shuffle_i64x2(sz, sz, 0x55) : _mm512_shuffle_i64x2(sz, sz, 0x00);
        kq45_block(type, C, h ? b1 : b0, szh, xp, nb, i + h, sum);
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) {
            const __m128i m = h ? _mm256_extracti128_si256(mi[c], 1) : _mm256_castsi256_si128(mi[c]);
            const __m128 dmin = h ? _mm_permute_ps(dd[c], 0xFF) : _mm_permute_ps(dd[c], 0x55);
            if (type == PG_TYPE_Q4_K) {
                accm[c] = _mm_fmadd_ps(dmin, _mm_cvtepi32_ps(m), accm[c]);
            } else {
                __m128i t = _mm_add_epi32(m, _mm_srli_si128(m, 8));
                t = _mm_add_epi32(t, _mm_srli_si128(t, 4));
                mins[c] = _mm_cvtss_f32(_mm_fmadd_ss(dmin, _mm_cvtepi32_ps(t), _mm_set_ss(mins[c])));
            }
            const __m256i s8 = _mm256_add_epi32(_mm512_castsi512_si256(sum[c]), _mm512_extracti64x4_epi64(sum[c], 1));
            const __m256 d = _mm256_broadcastss_ps(h ? _mm_movehl_ps(dd[c], dd[c]) : dd[c]);
            acc[c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s8), acc[c]);
        }
    }
}

/* One weight row against C activation rows (x[c], prepared in
 * xp[c * nb + i]), all nb blocks; q4_K / q5_K two blocks a step. */
ALWAYS_INLINE void kq_row(int type, int C, const uint8_t *w, const block_q8_K *const *x,
                          const struct kq_xp *xp, int64_t nb, float *out[])
{
    __m256 acc[KQ_C];
    __m128 accm[KQ_C];
    float mins[KQ_C];
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) {
        acc[c] = _mm256_setzero_ps();
        accm[c] = _mm_setzero_ps();
        mins[c] = 0.0f;
    }
    int64_t i = 0;
    if (type == PG_TYPE_Q4_K || type == PG_TYPE_Q5_K) {
        for (; i + 2 <= nb; i += 2)
            kq45_step(type, C, 2, w, xp, nb, i, acc, accm, mins);
        if (i < nb)
            kq45_step(type, C, 1, w, xp, nb, i, acc, accm, mins);
    } else {
        for (; i < nb; i++)
            kq_block(type, C, w, x, xp, nb, i, acc, accm, mins);
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; c++)
        *out[c] = kq_pair_result(type, acc[c], accm[c], mins[c]);
}

ALWAYS_INLINE void kq_gemm(int type, const struct gemm_args *a)
{
    const int64_t nb = a->k / QK_K;
    struct kq_xp *xp = thread_scratch((size_t)KQ_C * (size_t)nb * sizeof(struct kq_xp));
    if (!xp) { /* no memory for the scratch: the scalar kernels need none */
        const struct kernel_table *kt = kernels_for_isa(CPU_ISA_SCALAR);
        kt->gemm[type](a);
        return;
    }
    for (int64_t c0 = 0; c0 < a->b; c0 += KQ_C) {
        const int C = a->b - c0 < KQ_C ? (int)(a->b - c0) : KQ_C;
        const block_q8_K *x[KQ_C];
        for (int c = 0; c < C; c++) {
            x[c] = (const block_q8_K *)(const void *)(a->x + (size_t)(c0 + c) * a->x_stride);
            for (int64_t i = 0; i < nb; i++)
                kq_xp_fill(type, &x[c][i], &xp[c * nb + i]);
        }
        for (int64_t j = 0; j < a->n; j++) {
            const uint8_t *w = a->w + (size_t)j * a->w_stride;
            float *out[KQ_C];
            for (int c = 0; c < C; c++)
                out[c] = a->y + (c0 + c) * a->y_stride + j;
            switch (C) {
            case 8: kq_row(type, 8, w, x, xp, nb, out); break;
            case 7: kq_row(type, 7, w, x, xp, nb, out); break;
            case 6: kq_row(type, 6, w, x, xp, nb, out); break;
            case 5: kq_row(type, 5, w, x, xp, nb, out); break;
            case 4: kq_row(type, 4, w, x, xp, nb, out); break;
            case 3: kq_row(type, 3, w, x, xp, nb, out); break;
            case 2: kq_row(type, 2, w, x, xp, nb, out); break;
            default: kq_row(type, 1, w, x, xp, nb, out); break;
            }
        }
    }
}

/* ---- k-quants with four or more activation rows (q3_K: eight): tiles ----
 *
 * The same integers and float steps as kq_row, arranged for reuse. Each
 * weight row is unpacked once per call into a scratch row and each group of
 * four activation rows is prepared once; a micro-kernel then takes two
 * weight rows against four activation rows. Multiplies of every kind share
 * one 512-bit port here, so the kernel is arranged to issue as few as it
 * can: three per 128 values, where a dot and a scaling per 64 take four.
 *
 * The activations enter as unsigned bytes (codes + 128) and the weight
 * codes as the signed side (q3_K's and q6_K's with their offsets of 4 and
 * 32 taken off), so vpdpbusd gives each 32-bit lane the exact dot of four
 * codes with four activations plus 128 times the codes' sum. Every such dot
 * fits 16 bits, so the dots of two vectors can share one 32-bit lane, and
 * one vpdpwssd multiplies each by its group scale and adds both to the
 * block's lane sum. The 128 times the scaled code sums is a property of the
 * weights alone: it is taken off once per block, as the lane sums' starting
 * value.
 *
 * q2_K, q4_K and q5_K dots are never negative: the first vector's dot,
 * shifted to the upper half, is the starting value of the second's, which
 * fills the lower half. q3_K and q6_K dots can be negative, which that
 * would carry into the upper half; vpackssdw puts them together instead
 * (kt_packed). It pairs neighbouring lanes, so for those types both sides
 * are stored with the four-value units of each pair of vectors interleaved
 * (kt_idx_a/b): the two units a lane of the packed vector multiplies then
 * belong to the same lane of the reference order, and lane sums keep their
 * place. (vpackssdw is the slower of the two here, so the others keep the
 * shift.)
 *
 * At a block's end the two 256-bit halves of a lane sum are added (exact
 * integers), two pairs share one zmm for the fused multiply-add, and four
 * pairs share one for the minimum step (q4_K: four lanes a pair; q5_K: one
 * exact integer a pair, in all four). q2_K's minimum step is in the lanes,
 * before the d step, as in kq_block_step. */

#define KT_R 2 /* weight rows per micro-kernel */
#define KT_C 4 /* activation rows per micro-kernel */

struct kt_w {
    __m512i q[4];  /* signed codes of vectors 2p, 2p + 1 (interleaved for kt_packed types) */
    __m512i sp[2]; /* the scale of each 16-bit dot of pair p, as the micro-kernel
                    * places them */
    __m512i corr;  /* -128 times the scaled code sums, per lane */
    __m512i mins;  /* q4_K, q5_K: the 8 mins as 16-bit values, four times;
                    * q2_K: the 16 mins as 16-bit values, twice */
    float d, dmin;
    float pad[14];
};

/* Per block and tile of four activation rows. */
struct kt_a {
    __m512 dpair[2]; /* d of rows 0, 1 (eight lanes each), then rows 2, 3 */
    __m512 dneg;     /* q4_K, q5_K: -d of rows 0..3, four lanes each */
    __m512i gs;      /* q4_K, q5_K: the 32-value group sums of rows 0..3 as 16-bit values */
    __m512i bs2[2];  /* q2_K: the 16-value group sums of rows 0, 1, then 2, 3 */
    __m512i xv[KT_C][4]; /* codes + 128 as unsigned bytes, laid out as kt_w.q */
};

/* Four-value units of vectors 2p (indices 0..15) and 2p + 1 (16..31) in the
 * two interleaved vectors: packed, 32-bit lane s of the result multiplies
 * units s of both, so lane s keeps its place. */
ALWAYS_INLINE __m512i kt_idx_a(void)
{
    return _mm512_setr_epi32(0, 16, 1, 17, 4, 20, 5, 21, 8, 24, 9, 25, 12, 28, 13, 29);
}
ALWAYS_INLINE __m512i kt_idx_b(void)
{
    return _mm512_setr_epi32(2, 18, 3, 19, 6, 22, 7, 23, 10, 26, 11, 27, 14, 30, 15, 31);
}

ALWAYS_INLINE int kt_has_mins(int type) { return type == PG_TYPE_Q4_K || type == PG_TYPE_Q5_K; }

/* Types whose dots can be negative (a code offset): packed with vpackssdw. */
ALWAYS_INLINE int kt_packed(int type) { return type == PG_TYPE_Q3_K || type == PG_TYPE_Q6_K; }

/* q4_K / q5_K blocks in the order of their codes (as kq45_step reads them):
 * vector 2p holds the low nibbles of the pair's 64 code bytes, 32-value runs
 * 4p and 4p + 2, vector 2p + 1 the high nibbles, runs 4p + 1 and 4p + 3; the
 * activations are laid out to match (kt_prep_tile). A lane still covers
 * values 4l..4l+3 of its run, so the block's lane sums are the reference's
 * once the two 256-bit halves are added, as for the other types. Against
 * unpacking in value order this saves the per-vector shifts, the scale
 * permutes and the 32-bit multiplies of the code sums: half the work. */
ALWAYS_INLINE void kt_unpack_q45(int type, const uint8_t *b, struct kt_w *o)
{
    const block_q4_K *w = (const block_q4_K *)(const void *)b; /* q5_K: the same head */
    const __m128i sm = kq_q45_scales(w->scales);
    const __m512i smb = _mm512_broadcast_i32x4(sm), one = _mm512_set1_epi8(1);
    __m512i cs = _mm512_setzero_si512();
    for (int p = 0; p < 2; p++) {
        __m512i qa, qb;
        kq45_pair_codes(type, b, p, &qa, &qb);
        /* The micro-kernel puts vector 2p's dot in the upper half. */
        const __m512i sp = kq45_pair_scales(smb, p, 0);
        /* The scaled code sums, the same way the micro-kernel makes its dots. */
        const __m512i sa = _mm512_dpbusd_epi32(_mm512_setzero_si512(), one, qa);
        const __m512i two = _mm512_dpbusd_epi32(_mm512_slli_epi32(sa, 16), one, qb);
        cs = _mm512_dpwssd_epi32(cs, two, sp);
        _mm512_store_si512((void *)&o->q[2 * p], qa);
        _mm512_store_si512((void *)&o->q[2 * p + 1], qb);
        _mm512_store_si512((void *)&o->sp[p], sp);
    }
    _mm512_store_si512((void *)&o->corr, _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(cs, 7)));
    _mm512_store_si512((void *)&o->mins, _mm512_broadcast_i32x4(_mm_cvtepu8_epi16(_mm_srli_si128(sm, 8))));
    o->d = _cvtsh_ss(w->d);
    o->dmin = _cvtsh_ss(w->dmin);
}

/* Unpacks the nb blocks of row, fetching ahead the same blocks of the row
 * ahead bytes further on: spread out, the requests keep flowing where a
 * burst of a whole row's at once would wait on the miss buffers. They go to
 * L2: the activation tiles pass through L1 before those rows are used. */
static void kt_unpack_row(int type, const uint8_t *row, int64_t nb, size_t ahead, struct kt_w *o)
{
    const size_t wbs = kq_block_size(type);
    const __m512i ia = kt_idx_a(), ib = kt_idx_b();
    for (int64_t i = 0; i < nb; i++, o++) {
        struct kq_blk k;
        const uint8_t *b = row + (size_t)i * wbs;
        for (size_t l = 0; l < wbs; l += 64)
            _mm_prefetch((const char *)((uintptr_t)b + ahead + l), _MM_HINT_T1);
        if (type == PG_TYPE_Q4_K || type == PG_TYPE_Q5_K) {
            kt_unpack_q45(type, b, o);
            continue;
        }
        kq_prep(type, b, &k);
        __m512i q[4], sc[4];
        /* Lane l of vector u covers values 64u + 4l..4l+3: group 4u + l / 4
         * of sixteen values. The scales as signed 32-bit values. */
        const __m512i s32 = _mm512_cvtepi16_epi32(k.s16);
        __m512i cs = _mm512_setzero_si512();
        for (int u = 0; u < 4; u++) {
            if (u % 2 == 0)
                kq_pair_codes(type, &k, u / 2, &q[u], &q[u + 1]);
            if (kq_offset(type))
                q[u] = _mm512_sub_epi8(q[u], _mm512_set1_epi8((char)kq_offset(type)));
            const __m512i idx = _mm512_setr_epi32(4 * u, 4 * u, 4 * u, 4 * u, 4 * u + 1, 4 * u + 1,
                                                  4 * u + 1, 4 * u + 1, 4 * u + 2, 4 * u + 2,
                                                  4 * u + 2, 4 * u + 2, 4 * u + 3, 4 * u + 3,
                                                  4 * u + 3, 4 * u + 3);
            sc[u] = _mm512_permutexvar_epi32(idx, s32);
            const __m512i qsum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(1), q[u]);
            cs = _mm512_add_epi32(cs, _mm512_mullo_epi32(qsum, sc[u]));
        }
        _mm512_store_si512((void *)&o->corr, _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(cs, 7)));
        for (int p = 0; p < 2; p++) {
            const __m512i q0 = q[2 * p], q1 = q[2 * p + 1], s0 = sc[2 * p], s1 = sc[2 * p + 1];
            if (kt_packed(type)) {
                _mm512_store_si512((void *)&o->q[2 * p], _mm512_permutex2var_epi32(q0, ia, q1));
                _mm512_store_si512((void *)&o->q[2 * p + 1], _mm512_permutex2var_epi32(q0, ib, q1));
                _mm512_store_si512((void *)&o->sp[p], _mm512_packs_epi32(_mm512_permutex2var_epi32(s0, ia, s1),
                                                                         _mm512_permutex2var_epi32(s0, ib, s1)));
            } else {
                _mm512_store_si512((void *)&o->q[2 * p], q0);
                _mm512_store_si512((void *)&o->q[2 * p + 1], q1);
                _mm512_store_si512((void *)&o->sp[p], _mm512_or_si512(_mm512_slli_epi32(s0, 16), s1));
            }
        }
        if (kt_has_mins(type))
            _mm512_store_si512((void *)&o->mins, _mm512_broadcast_i32x4(k.m16));
        if (type == PG_TYPE_Q2_K)
            _mm512_store_si512((void *)&o->mins, _mm512_broadcast_i64x4(k.mq2));
        o->d = k.d;
        o->dmin = kt_has_mins(type) || type == PG_TYPE_Q2_K ? k.dmin : 0.0f;
    }
}

static void kt_prep_tile(int type, const block_q8_K *const x[KT_C], int64_t nb, struct kt_a *o)
{
    const __m512i flip = _mm512_set1_epi8((char)0x80), ia = kt_idx_a(), ib = kt_idx_b();
    for (int64_t i = 0; i < nb; i++, o++) {
        const __m256 d0 = _mm256_set1_ps(x[0][i].d), d1 = _mm256_set1_ps(x[1][i].d);
        const __m256 d2 = _mm256_set1_ps(x[2][i].d), d3 = _mm256_set1_ps(x[3][i].d);
        o->dpair[0] = _mm512_insertf32x8(_mm512_castps256_ps512(d0), d1, 1);
        o->dpair[1] = _mm512_insertf32x8(_mm512_castps256_ps512(d2), d3, 1);
        for (int c = 0; c < KT_C; c++)
            for (int p = 0; p < 2; p++) {
                const __m512i v0 = _mm512_xor_si512(_mm512_loadu_si512((const void *)(x[c][i].qs + 128 * p)), flip);
                const __m512i v1 = _mm512_xor_si512(_mm512_loadu_si512((const void *)(x[c][i].qs + 128 * p + 64)), flip);
                if (kt_packed(type)) {
                    o->xv[c][2 * p] = _mm512_permutex2var_epi32(v0, ia, v1);
                    o->xv[c][2 * p + 1] = _mm512_permutex2var_epi32(v0, ib, v1);
                } else if (kt_has_mins(type)) { /* runs 4p, 4p + 2, then 4p + 1, 4p + 3 */
                    o->xv[c][2 * p] = _mm512_shuffle_i64x2(v0, v1, 0x44);
                    o->xv[c][2 * p + 1] = _mm512_shuffle_i64x2(v0, v1, 0xEE);
                } else {
                    o->xv[c][2 * p] = v0;
                    o->xv[c][2 * p + 1] = v1;
                }
            }
        if (type == PG_TYPE_Q2_K)
            for (int p = 0; p < 2; p++)
                o->bs2[p] = _mm512_inserti64x4(_mm512_castsi256_si512(load256(x[2 * p][i].bsums)),
                                               load256(x[2 * p + 1][i].bsums), 1);
        if (kt_has_mins(type)) {
            o->dneg = _mm512_setr_ps(-x[0][i].d, -x[0][i].d, -x[0][i].d, -x[0][i].d,
                                     -x[1][i].d, -x[1][i].d, -x[1][i].d, -x[1][i].d,
                                     -x[2][i].d, -x[2][i].d, -x[2][i].d, -x[2][i].d,
                                     -x[3][i].d, -x[3][i].d, -x[3][i].d, -x[3][i].d);
            __m128i g[KT_C];
            for (int c = 0; c < KT_C; c++) {
                const __m256i bs = load256(x[c][i].bsums);
                g[c] = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
            }
            const __m256i lo = _mm256_inserti128_si256(_mm256_castsi128_si256(g[0]), g[1], 1);
            const __m256i hi = _mm256_inserti128_si256(_mm256_castsi128_si256(g[2]), g[3], 1);
            o->gs = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
        }
    }
}

/* The float sums of a weight row pair against a tile, kept between the
 * block ranges a micro-kernel call takes. */
struct kt_state {
    __m512 acc[KT_R][2], accm[KT_R];
};

/* R weight rows (w + r * nb) against the four activation rows of one tile
 * (prepared in t), blocks i0..i1-1: from zero or from st, and then into st
 * or, after the last block, into y[c * ys + r]. */
ALWAYS_INLINE void kt_micro(int type, int R, const struct kt_w *w, int64_t nb, int64_t i0,
                            int64_t i1, const struct kt_a *t, struct kt_state *st, float *y,
                            int64_t ys)
{
    __m512 acc[KT_R][2], accm[KT_R];
    for (int r = 0; r < R; r++) {
        if (i0 == 0) {
            acc[r][0] = acc[r][1] = accm[r] = _mm512_setzero_ps();
        } else {
            acc[r][0] = st->acc[r][0], acc[r][1] = st->acc[r][1], accm[r] = st->accm[r];
        }
    }
    for (int64_t i = i0; i < i1; i++) {
        __m512i s[KT_R][KT_C];
        for (int r = 0; r < R; r++) {
            const __m512i c0 = _mm512_load_si512((const void *)&w[r * nb + i].corr);
            for (int c = 0; c < KT_C; c++)
                s[r][c] = c0;
        }
#pragma GCC unroll 2
        for (int p = 0; p < 2; p++) {
            __m512i a[KT_C], b[KT_C];
            for (int c = 0; c < KT_C; c++) {
                a[c] = _mm512_load_si512((const void *)&t[i].xv[c][2 * p]);
                b[c] = _mm512_load_si512((const void *)&t[i].xv[c][2 * p + 1]);
                /* Held in registers: folded into every instruction instead,
                 * the loads would outnumber what the load ports can do. */
                __asm__("" : "+v"(a[c]), "+v"(b[c]));
            }
            for (int r = 0; r < R; r++) {
                const struct kt_w *wb = w + r * nb + i;
                __m512i qa = _mm512_load_si512((const void *)&wb->q[2 * p]);
                __m512i qb = _mm512_load_si512((const void *)&wb->q[2 * p + 1]);
                __m512i sp = _mm512_load_si512((const void *)&wb->sp[p]);
                __asm__("" : "+v"(qa), "+v"(qb), "+v"(sp));
                for (int c = 0; c < KT_C; c++) {
                    const __m512i da = _mm512_dpbusd_epi32(_mm512_setzero_si512(), a[c], qa);
                    const __m512i two = kt_packed(type)
                        ? _mm512_packs_epi32(da, _mm512_dpbusd_epi32(_mm512_setzero_si512(), b[c], qb))
                        : _mm512_dpbusd_epi32(_mm512_slli_epi32(da, 16), b[c], qb);
                    s[r][c] = _mm512_dpwssd_epi32(s[r][c], two, sp);
                }
            }
        }
        for (int r = 0; r < R; r++) {
            const struct kt_w *wb = w + r * nb + i;
            const __m512 dw = _mm512_set1_ps(wb->d);
            for (int p = 0; p < 2; p++) {
                if (type == PG_TYPE_Q2_K) /* its minimum step comes first, in the lanes */
                    acc[r][p] = _mm512_fmadd_ps(_mm512_mul_ps(t[i].dpair[p], _mm512_set1_ps(-wb->dmin)),
                                                _mm512_cvtepi32_ps(_mm512_madd_epi16(wb->mins, t[i].bs2[p])),
                                                acc[r][p]);
                const __m512i lo = _mm512_shuffle_i64x2(s[r][2 * p], s[r][2 * p + 1], 0x44);
                const __m512i hi = _mm512_shuffle_i64x2(s[r][2 * p], s[r][2 * p + 1], 0xEE);
                acc[r][p] = _mm512_fmadd_ps(_mm512_mul_ps(t[i].dpair[p], dw),
                                            _mm512_cvtepi32_ps(_mm512_add_epi32(lo, hi)), acc[r][p]);
            }
            if (kt_has_mins(type)) {
                __m512i m = _mm512_madd_epi16(wb->mins, t[i].gs);
                if (type == PG_TYPE_Q5_K) {
                    /* q5_K: one exact integer per pair and block, in every
                     * lane of the pair's four. */
                    m = _mm512_add_epi32(m, _mm512_shuffle_epi32(m, _MM_PERM_BADC));
                    m = _mm512_add_epi32(m, _mm512_shuffle_epi32(m, _MM_PERM_CDAB));
                }
                accm[r] = _mm512_fmadd_ps(_mm512_mul_ps(t[i].dneg, _mm512_set1_ps(wb->dmin)),
                                          _mm512_cvtepi32_ps(m), accm[r]);
            }
        }
    }
    if (i1 < nb) {
        for (int r = 0; r < R; r++)
            st->acc[r][0] = acc[r][0], st->acc[r][1] = acc[r][1], st->accm[r] = accm[r];
        return;
    }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < KT_C; c++) {
            const __m512 a2 = acc[r][c / 2];
            float v = kq_hsum8(c % 2 ? _mm512_extractf32x8_ps(a2, 1) : _mm512_castps512_ps256(a2));
            if (kt_has_mins(type)) {
                __m128 m;
                switch (c) {
                case 0: m = _mm512_extractf32x4_ps(accm[r], 0); break;
                case 1: m = _mm512_extractf32x4_ps(accm[r], 1); break;
                case 2: m = _mm512_extractf32x4_ps(accm[r], 2); break;
                default: m = _mm512_extractf32x4_ps(accm[r], 3); break;
                }
                if (type == PG_TYPE_Q4_K) {
                    m = _mm_add_ps(m, _mm_movehl_ps(m, m));
                    m = _mm_add_ss(m, _mm_movehdup_ps(m));
                }
                v += _mm_cvtss_f32(m);
            }
            y[c * ys + r] = v;
        }
}

/* With many activation rows, what one sweep reads for each weight row pair
 * is kept to a share of a core's L2: the prepared activations of a chunk of
 * tiles, and the unpacked weight rows swept against them. */
#define KT_ACT_BYTES (384 * 1024)
#define KT_W_BYTES (192 * 1024)
/* Blocks a micro-kernel call takes: the weight row pair's share (about
 * 9 KiB) stays in L1 while the tiles pass, however long the rows. */
#define KT_SPAN 8

/* What this thread's scratch buffer holds tiles of, from its last kt_gemm
 * (one act_id fixes k and the row stride; x and b pick the driver's
 * activation tile). */
struct kt_prepared {
    uint64_t act_id, calls; /* gemm_args.act_id; thread_scratch_calls() after asking */
    const void *buf;
    const uint8_t *x;
    int64_t b;
    int type;
};
static _Thread_local struct kt_prepared kt_last;

ALWAYS_INLINE void kt_gemm(int type, const struct gemm_args *a)
{
    const int64_t nb = a->k / QK_K;
    const int64_t tiles = a->b / KT_C;
    const size_t wrow = (size_t)nb * sizeof(struct kt_w), arow = (size_t)nb * sizeof(struct kt_a);
    const int64_t chunk = KT_ACT_BYTES / arow > 1 ? (int64_t)(KT_ACT_BYTES / arow) : 1;
    /* Weight rows unpacked at a time: two (they stay in L1) while all tiles
     * fit one chunk; else as many as the budget holds, each then serving
     * every chunk. */
    int64_t group = KT_R;
    if (tiles > chunk) {
        group = (int64_t)(KT_W_BYTES / wrow) / KT_R * KT_R;
        if (group < KT_R)
            group = KT_R;
        if (group > a->n)
            group = (a->n + KT_R - 1) / KT_R * KT_R;
    }
    const size_t wbytes = (size_t)group * wrow;
    const size_t abytes = (size_t)tiles * arow;
    const size_t sbytes = (size_t)(tiles < chunk ? tiles : chunk) * sizeof(struct kt_state);
    uint8_t *buf = thread_scratch(abytes + wbytes + sbytes);
    const uint64_t calls = thread_scratch_calls();
    if (!buf) { /* no memory: the row-at-a-time path asks for far less */
        kq_gemm(type, a);
        return;
    }
    /* The tiles first: where they lie does not depend on the weight rows. */
    struct kt_a *ta = (struct kt_a *)buf;
    struct kt_w *w = (struct kt_w *)(buf + abytes);
    struct kt_state *st = (struct kt_state *)(buf + abytes + wbytes);
    /* The driver hands a thread several chunks of weight rows against the
     * same activations: the tiles of the previous chunk are still there if
     * nobody took the buffer since (about 4% of a b = 32 GEMM). */
    const struct kt_prepared *lp = &kt_last;
    const int kept = a->act_id != 0 && lp->act_id == a->act_id && lp->calls + 1 == calls &&
                     lp->buf == buf && lp->x == a->x && lp->b == a->b && lp->type == type;
    for (int64_t t = 0; !kept && t < tiles; t++) {
        const block_q8_K *x[KT_C];
        for (int c = 0; c < KT_C; c++)
            x[c] = (const block_q8_K *)(const void *)(a->x + (size_t)(KT_C * t + c) * a->x_stride);
        kt_prep_tile(type, x, nb, ta + t * nb);
    }
    kt_last = (struct kt_prepared){
        .act_id = a->act_id, .calls = calls, .buf = buf, .x = a->x, .b = a->b, .type = type};
    for (int64_t j0 = 0; j0 < a->n; j0 += group) {
        const int64_t gn = a->n - j0 < group ? a->n - j0 : group;
        for (int64_t r = 0; r < gn; r++) {
            const uint8_t *row = a->w + (size_t)(j0 + r) * a->w_stride;
            /* The rows two pairs on stream in while these are used (one
             * pair on, weights from memory came too late at eight to
             * thirty-two activation rows: q6_K 177 against 195 GOP/s). */
            kt_unpack_row(type, row, nb, (size_t)(2 * KT_R) * a->w_stride, w + r * nb);
        }
        for (int64_t t0 = 0; t0 < tiles; t0 += chunk) {
            const int64_t t1 = tiles - t0 < chunk ? tiles : t0 + chunk;
            for (int64_t jr = 0; jr < gn; jr += KT_R)
                for (int64_t i0 = 0; i0 < nb; i0 += KT_SPAN) {
                    const int64_t i1 = nb - i0 < KT_SPAN ? nb : i0 + KT_SPAN;
                    for (int64_t t = t0; t < t1; t++) {
                        float *y = a->y + KT_C * t * a->y_stride + j0 + jr;
                        if (gn - jr >= KT_R)
                            kt_micro(type, KT_R, w + jr * nb, nb, i0, i1, ta + t * nb, st + (t - t0), y,
                                     a->y_stride);
                        else
                            kt_micro(type, 1, w + jr * nb, nb, i0, i1, ta + t * nb, st + (t - t0), y,
                                     a->y_stride);
                    }
                }
        }
    }
    if (tiles * KT_C < a->b) { /* the last rows, one weight row at a time (buf is done with) */
        struct gemm_args rest = *a;
        rest.x = a->x + (size_t)(tiles * KT_C) * a->x_stride;
        rest.b = a->b - tiles * KT_C;
        rest.y = a->y + tiles * KT_C * a->y_stride;
        kq_gemm(type, &rest);
    }
}

/* The tiles from this many activation rows: one tile does not pay for
 * q3_K's unpacking, and q4_K / q5_K rows two blocks at a time run four to
 * seven activation rows faster than one tile (one thread, k = 4096, b = 4:
 * 164 against 123 GOP/s for q4_K, 123 against 114 for q5_K). */
ALWAYS_INLINE int64_t kt_min_rows(int type)
{
    return type == PG_TYPE_Q3_K || type == PG_TYPE_Q4_K || type == PG_TYPE_Q5_K ? 2 * KT_C : KT_C;
}

ALWAYS_INLINE void k_gemm(int type, const struct gemm_args *a)
{
    if (a->b >= kt_min_rows(type))
        kt_gemm(type, a);
    else
        kq_gemm(type, a);
}

static void gemm_q2_K_avx512(const struct gemm_args *a) { k_gemm(PG_TYPE_Q2_K, a); }
static void gemm_q3_K_avx512(const struct gemm_args *a) { k_gemm(PG_TYPE_Q3_K, a); }
static void gemm_q4_K_avx512(const struct gemm_args *a) { k_gemm(PG_TYPE_Q4_K, a); }
static void gemm_q5_K_avx512(const struct gemm_args *a) { k_gemm(PG_TYPE_Q5_K, a); }
static void gemm_q6_K_avx512(const struct gemm_args *a) { k_gemm(PG_TYPE_Q6_K, a); }

/* ---- q8_K activations: the reference quantizer's bytes ---- */

static void quantize_row_q8_K_avx512(const float *x, void *y, int64_t n)
{
    block_q8_K *out = y;
    const int64_t nb = n / QK_K;
    const __m512 sign = _mm512_set1_ps(-0.0f);
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        __m512 v[16];
        __m512 amax = _mm512_setzero_ps();
        for (int j = 0; j < 16; j++) {
            v[j] = _mm512_loadu_ps(x + 16 * j);
            amax = _mm512_max_ps(amax, _mm512_andnot_ps(sign, v[j]));
        }
        const float m = _mm512_reduce_max_ps(amax);
        if (m == 0.0f) {
            memset(&out[i], 0, sizeof out[i]);
            continue;
        }
        /* The first value of that magnitude gives the sign, as the
         * reference's strict comparison does. */
        float vmax = 0.0f;
        const __m512 mv = _mm512_set1_ps(m);
        for (int j = 0; j < 16; j++) {
            const __mmask16 k = _mm512_cmp_ps_mask(_mm512_andnot_ps(sign, v[j]), mv, _CMP_EQ_OQ);
            if (k) {
                vmax = x[16 * j + __builtin_ctz(k)];
                break;
            }
        }
        const float iscale = -127.0f / vmax;
        const __m512 is = _mm512_set1_ps(iscale);
        const __m512i top = _mm512_set1_epi32(127);
        for (int j = 0; j < 16; j++) {
            const __m512i q = _mm512_min_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v[j], is)), top);
            _mm_storeu_si128((__m128i *)(out[i].qs + 16 * j), _mm512_cvtepi32_epi8(q));
            out[i].bsums[j] = (int16_t)_mm512_reduce_add_epi32(q);
        }
        out[i].d = 1.0f / iscale;
    }
}
void kernels_avx512_k_init(struct kernel_table *t)
{
    t->gemm[PG_TYPE_Q2_K] = gemm_q2_K_avx512;
    t->gemm[PG_TYPE_Q3_K] = gemm_q3_K_avx512;
    t->gemm[PG_TYPE_Q4_K] = gemm_q4_K_avx512;
    t->gemm[PG_TYPE_Q5_K] = gemm_q5_K_avx512;
    t->gemm[PG_TYPE_Q6_K] = gemm_q6_K_avx512;
    /* kt_gemm keeps its sweeps in L2 by itself: given all the activation
     * rows at once it unpacks each weight row once. */
    for (int type = PG_TYPE_Q2_K; type <= PG_TYPE_Q6_K; type++) {
        t->isa[type] = "avx512";
        t->act_tile[type] = ACT_TILE_ALL;
    }
    t->act_quant[PG_TYPE_Q8_K] = quantize_row_q8_K_avx512;
}
