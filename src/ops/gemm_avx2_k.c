/*
 * gemm_avx2_k.c: AVX2 (+FMA) kernels for the k-quant weight types
 * (q2_K..q6_K) against q8_K activations, and a q8_K converter giving the
 * reference quantizer's bytes.
 *
 * The layout idea is the one of gemm_avx512_k.c on 256-bit vectors: a block's
 * 16 groups of 16 values are split into two halves of 8 groups; in each half
 * the weight codes (unsigned bytes) and the activations are rearranged so
 * that ymm lane L holds values of one group in all four of the half's
 * vectors: lane L gets group 2 * (L % 4) + L / 4 of the half. vpmaddubsw and
 * vpmaddwd then give each lane an exact integer dot of 16 codes with 16
 * activations, and one float step per half applies the group scales:
 * acc += dx * (ws * dot - wm * asum), ws the group's scale, wm its min (or
 * scale times the code offset of q3_K / q6_K), asum the activations' group sum.
 *
 * With one activation row each weight block is unpacked in registers and used
 * at once; with more, weight blocks are unpacked once per call into scratch,
 * activation blocks rearranged once, and a micro-kernel holds R x C
 * accumulators. Every pair gets the same instruction sequence in every path,
 * so results do not depend on the batch. Without scratch memory the call uses
 * the scalar kernels.
 */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernels.h"
#include "ops/quants.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

#define KQ_TILE_R 2
#define KQ_TILE_C 3
/* Up to this many activation rows skip the scratch copy of the weights. */
#define KQ_FEW_ROWS 2

struct kq256_w {
    uint8_t q[QK_K]; /* half h: vectors 4h..4h+3 */
    float ws[16];    /* half h: lanes 8h..8h+7 */
    float wm[16];
};

struct kq256_a {
    int8_t q[QK_K];
    float asum[16];
    float d;
    float pad[7];
};

/* s[q] holds values 32q..32q+31 of a half; afterwards s[g] lane 4j+q holds
 * dword g of what was 128-bit lane j of s[q]. */
ALWAYS_INLINE void kq_transpose(__m256i s[4])
{
    const __m256i a = _mm256_unpacklo_epi32(s[0], s[1]), b = _mm256_unpackhi_epi32(s[0], s[1]);
    const __m256i c = _mm256_unpacklo_epi32(s[2], s[3]), d = _mm256_unpackhi_epi32(s[2], s[3]);
    s[0] = _mm256_unpacklo_epi64(a, c);
    s[1] = _mm256_unpackhi_epi64(a, c);
    s[2] = _mm256_unpacklo_epi64(b, d);
    s[3] = _mm256_unpackhi_epi64(b, d);
}

/* A weight block unpacked in registers: half h in q[4h..4h+3], ws[h], wm[h]. */
struct kq_wv {
    __m256i q[8];
    __m256 ws[2], wm[2];
};

/* Lane L of a half holds its group 2 (L % 4) + L / 4. */
ALWAYS_INLINE __m256i kq_lane_group(void) { return _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7); }

/* 16 group values in natural order (two vectors of 8) to lane order, times f. */
ALWAYS_INLINE void kq_groups(__m256 out[2], __m256 g0, __m256 g1, __m256 f)
{
    const __m256i idx = kq_lane_group();
    out[0] = _mm256_mul_ps(_mm256_permutevar8x32_ps(g0, idx), f);
    out[1] = _mm256_mul_ps(_mm256_permutevar8x32_ps(g1, idx), f);
}

/* The same for 8 values of 32-value groups (q4_K, q5_K), already scaled:
 * group g covers 16-groups 2g and 2g+1, so half h takes g = 4h + (L % 4). */
ALWAYS_INLINE void kq_groups32(__m256 out[2], __m256 g)
{
    out[0] = _mm256_permutevar8x32_ps(g, _mm256_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3));
    out[1] = _mm256_permutevar8x32_ps(g, _mm256_setr_epi32(4, 5, 6, 7, 4, 5, 6, 7));
}

ALWAYS_INLINE __m256i kq_load32(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* f16 at p, broadcast. */
ALWAYS_INLINE __m256 kq_f16(const pg_f16 *p)
{
    return _mm256_set1_ps(_mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(*p))));
}

/* Bytes of v with bit set: add 'add' to those of x. */
ALWAYS_INLINE __m256i kq_add_if(__m256i x, __m256i v, int bit, int add)
{
    const __m256i b = _mm256_set1_epi8((char)bit);
    const __m256i on = _mm256_cmpeq_epi8(_mm256_and_si256(v, b), b);
    return _mm256_add_epi8(x, _mm256_and_si256(on, _mm256_set1_epi8((char)add)));
}

/* s[0..7] hold values 32s..32s+31 in order; rearranged in place. */
ALWAYS_INLINE void kq_codes(struct kq_wv *o)
{
    kq_transpose(o->q);
    kq_transpose(o->q + 4);
}

/* ws / wm of q4_K and q5_K from the block's d, dmin and 12 scale bytes
 * (16 bytes are read; the last 4 belong to the codes that follow). Low 6 bits
 * of scales / mins 0-3 sit in bytes 0-3 / 4-7; the low 4 bits of 4-7 in
 * bytes 8-11 (scales low nibble, mins high), their top 2 bits in the top of
 * bytes 0-3 / 4-7. */
ALWAYS_INLINE void kq_scales_q45(struct kq_wv *o, const pg_f16 *dd, const uint8_t *scales)
{
    const __m128i x = _mm_loadu_si128((const __m128i *)scales);
    const __m128i lo =
        _mm_shuffle_epi8(x, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
    const __m128i hi =
        _mm_shuffle_epi8(x, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
    /* Bytes: scales 0-7, then mins 0-7. */
    __m128i v = _mm_and_si128(_mm_srlv_epi32(lo, _mm_setr_epi32(0, 0, 0, 4)),
                              _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
    v = _mm_or_si128(v, _mm_and_si128(_mm_srli_epi32(hi, 2), _mm_set1_epi32(0x30303030)));
    const __m256 sc = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)), kq_f16(dd));
    const __m256 mn = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(v, 8))),
                                    kq_f16(dd + 1));
    kq_groups32(o->ws, sc);
    kq_groups32(o->wm, mn);
}

/* 16 signed scales, code offset 'offset' (q3_K: 4, q6_K: 32). */
ALWAYS_INLINE void kq_scales_signed(struct kq_wv *o, __m128i sc8, const pg_f16 *d, float offset)
{
    const __m256 g0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc8));
    const __m256 g1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc8, 8)));
    kq_groups(o->ws, g0, g1, kq_f16(d));
    for (int h = 0; h < 2; h++)
        o->wm[h] = _mm256_mul_ps(o->ws[h], _mm256_set1_ps(offset));
}

/* ---- unpacking one weight block per type; q[v] gets values 32v..32v+31 ---- */

ALWAYS_INLINE struct kq_wv kq_unpack_q2_K(const uint8_t *src)
{
    const block_q2_K *b = (const block_q2_K *)src;
    const __m256i m3 = _mm256_set1_epi8(3);
    struct kq_wv o;
    for (int v = 0; v < 8; v++)
        o.q[v] = _mm256_and_si256(
            _mm256_srli_epi16(kq_load32(b->qs + 32 * (v / 4)), 2 * (v % 4)), m3);
    kq_codes(&o);
    const __m128i raw = _mm_loadu_si128((const __m128i *)b->scales);
    const __m128i lo = _mm_and_si128(raw, _mm_set1_epi8(15));
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(15));
    kq_groups(o.ws, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo)),
              _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8))), kq_f16(&b->d));
    kq_groups(o.wm, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi)),
              _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8))), kq_f16(&b->dmin));
    return o;
}

/* The 16 signed 6-bit scales of q3_K as bytes. Low 4 bits: scales 0-7 in
 * the low nibbles of bytes 0-7, 8-15 in their high nibbles; top 2 bits: bit
 * pair j / 4 of byte 8 + j % 4. The 16 bytes read end with the block's d, so
 * they stay inside it. */
ALWAYS_INLINE __m128i kq_q3_scales(const uint8_t *scales)
{
    const __m128i x = _mm_srli_si128(_mm_loadu_si128((const __m128i *)(scales - 2)), 2);
    const __m128i lo = _mm_shuffle_epi32(x, 0x44); /* dwords 0, 1, 0, 1 */
    const __m128i hi = _mm_shuffle_epi32(x, 0xAA); /* dword 2 everywhere */
    const __m128i l4 = _mm_and_si128(_mm_srlv_epi32(lo, _mm_setr_epi32(0, 0, 4, 4)),
                                     _mm_set1_epi32(0x0f0f0f0f));
    const __m128i h2 = _mm_srlv_epi32(_mm_sllv_epi32(hi, _mm_setr_epi32(4, 2, 0, 0)),
                                      _mm_setr_epi32(0, 0, 0, 2));
    const __m128i v = _mm_or_si128(l4, _mm_and_si128(h2, _mm_set1_epi32(0x30303030)));
    return _mm_sub_epi8(v, _mm_set1_epi8(32));
}

ALWAYS_INLINE struct kq_wv kq_unpack_q3_K(const uint8_t *src)
{
    const block_q3_K *b = (const block_q3_K *)src;
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m256i hm = kq_load32(b->hmask);
    struct kq_wv o;
    for (int v = 0; v < 8; v++) {
        const __m256i low =
            _mm256_and_si256(_mm256_srli_epi16(kq_load32(b->qs + 32 * (v / 4)), 2 * (v % 4)), m3);
        o.q[v] = kq_add_if(low, hm, 1 << v, 4);
    }
    kq_codes(&o);
    const __m128i sc = kq_q3_scales(b->scales);
    kq_scales_signed(&o, sc, &b->d, 4.0f);
    return o;
}

ALWAYS_INLINE struct kq_wv kq_unpack_q4_K(const uint8_t *src)
{
    const block_q4_K *b = (const block_q4_K *)src;
    const __m256i m4 = _mm256_set1_epi8(15);
    struct kq_wv o;
    for (int p = 0; p < 4; p++) {
        const __m256i v = kq_load32(b->qs + 32 * p);
        o.q[2 * p] = _mm256_and_si256(v, m4);
        o.q[2 * p + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    }
    kq_codes(&o);
    kq_scales_q45(&o, &b->d, b->scales);
    return o;
}

ALWAYS_INLINE struct kq_wv kq_unpack_q5_K(const uint8_t *src)
{
    const block_q5_K *b = (const block_q5_K *)src;
    const __m256i m4 = _mm256_set1_epi8(15);
    const __m256i hb = kq_load32(b->qh);
    struct kq_wv o;
    for (int p = 0; p < 4; p++) {
        const __m256i v = kq_load32(b->qs + 32 * p);
        o.q[2 * p] = kq_add_if(_mm256_and_si256(v, m4), hb, 1 << (2 * p), 16);
        o.q[2 * p + 1] =
            kq_add_if(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), hb, 1 << (2 * p + 1), 16);
    }
    kq_codes(&o);
    kq_scales_q45(&o, &b->d, b->scales);
    return o;
}

ALWAYS_INLINE struct kq_wv kq_unpack_q6_K(const uint8_t *src)
{
    const block_q6_K *b = (const block_q6_K *)src;
    const __m256i m4 = _mm256_set1_epi8(15), m30 = _mm256_set1_epi8(0x30);
    struct kq_wv o;
    for (int h = 0; h < 2; h++) {
        const __m256i l0 = kq_load32(b->ql + 64 * h), l1 = kq_load32(b->ql + 64 * h + 32);
        const __m256i qh = kq_load32(b->qh + 32 * h);
        /* High bits of quarter t at bit 2t of the qh byte go to bits 4-5. */
        o.q[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(l0, m4),
                                         _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
        o.q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                         _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
        o.q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                         _mm256_and_si256(qh, m30));
        o.q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                         _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
    }
    kq_codes(&o);
    kq_scales_signed(&o, _mm_loadu_si128((const __m128i *)b->scales), &b->d, 32.0f);
    return o;
}

ALWAYS_INLINE void kq_store_w(struct kq256_w *o, const struct kq_wv *v)
{
    for (int i = 0; i < 8; i++)
        _mm256_store_si256((__m256i *)(o->q + 32 * i), v->q[i]);
    for (int h = 0; h < 2; h++) {
        _mm256_store_ps(o->ws + 8 * h, v->ws[h]);
        _mm256_store_ps(o->wm + 8 * h, v->wm[h]);
    }
}

/* ---- activations ---- */

ALWAYS_INLINE void kq_prep_act(const block_q8_K *x, struct kq256_a *o)
{
    __m256i s[8];
    for (int v = 0; v < 8; v++)
        s[v] = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * v));
    kq_transpose(s);
    kq_transpose(s + 4);
    for (int v = 0; v < 8; v++)
        _mm256_store_si256((__m256i *)(o->q + 32 * v), s[v]);
    const __m128i b0 = _mm_loadu_si128((const __m128i *)x->bsums);
    const __m128i b1 = _mm_loadu_si128((const __m128i *)(x->bsums + 8));
    const __m256i idx = kq_lane_group();
    _mm256_store_ps(o->asum,
                    _mm256_permutevar8x32_ps(_mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(b0)), idx));
    _mm256_store_ps(o->asum + 8,
                    _mm256_permutevar8x32_ps(_mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(b1)), idx));
    o->d = x->d;
}

/* ---- the micro-kernel ---- */

/* Integer dots of four code vectors with four activation vectors. With codes
 * below 32 four vpmaddubsw results fit in 16 bits together (4 * 2 * 31 * 128);
 * q6_K codes (below 64) allow two. */
ALWAYS_INLINE __m256i kq_dot4(const __m256i w[4], const int8_t *a, int wide)
{
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i p0 = _mm256_maddubs_epi16(w[0], _mm256_load_si256((const __m256i *)a));
    __m256i p1 = _mm256_maddubs_epi16(w[1], _mm256_load_si256((const __m256i *)(a + 32)));
    __m256i p2 = _mm256_maddubs_epi16(w[2], _mm256_load_si256((const __m256i *)(a + 64)));
    __m256i p3 = _mm256_maddubs_epi16(w[3], _mm256_load_si256((const __m256i *)(a + 96)));
    if (wide)
        return _mm256_add_epi32(_mm256_madd_epi16(_mm256_add_epi16(p0, p1), ones),
                                _mm256_madd_epi16(_mm256_add_epi16(p2, p3), ones));
    return _mm256_madd_epi16(_mm256_add_epi16(_mm256_add_epi16(p0, p1), _mm256_add_epi16(p2, p3)),
                             ones);
}

ALWAYS_INLINE float kq_hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* One half block's float step for a pair, the same in every path:
 * acc += dx * (ws * float(dot) - wm * asum). */
ALWAYS_INLINE __m256 kq_finish(__m256 acc, __m256i s, __m256 ws, __m256 wm,
                               const struct kq256_a *ab, int h)
{
    __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(s), ws);
    t = _mm256_fnmadd_ps(_mm256_load_ps(ab->asum + 8 * h), wm, t);
    return _mm256_fmadd_ps(t, _mm256_set1_ps(ab->d), acc);
}

/* y[c * ys + r] for R weight rows and C activation rows. */
ALWAYS_INLINE void kq_tile(const struct kq256_w *w, const struct kq256_a *a, int64_t nb, int R,
                           int C, int wide, float *y, int64_t ys)
{
    __m256 acc[KQ_TILE_R][KQ_TILE_C];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            acc[r][c] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        for (int r = 0; r < R; r++) {
            const struct kq256_w *wb = w + r * nb + ib;
            for (int h = 0; h < 2; h++) {
                __m256i q[4];
                for (int g = 0; g < 4; g++)
                    q[g] = _mm256_load_si256((const __m256i *)(wb->q + 128 * h + 32 * g));
                const __m256 ws = _mm256_load_ps(wb->ws + 8 * h);
                const __m256 wm = _mm256_load_ps(wb->wm + 8 * h);
                for (int c = 0; c < C; c++) {
                    const struct kq256_a *ab = a + c * nb + ib;
                    const __m256i s = kq_dot4(q, ab->q + 128 * h, wide);
                    acc[r][c] = kq_finish(acc[r][c], s, ws, wm, ab, h);
                }
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            y[c * ys + r] = kq_hsum(acc[r][c]);
}

typedef void (*kq_tile_fn)(const struct kq256_w *, const struct kq256_a *, int64_t, float *,
                           int64_t);

#define KQ_TILE_FN(R, C, W)                                                              \
    static void kq_tile_##R##_##C##_##W(const struct kq256_w *w, const struct kq256_a *a, \
                                        int64_t nb, float *y, int64_t ys)                \
    {                                                                                    \
        kq_tile(w, a, nb, R, C, W, y, ys);                                               \
    }
KQ_TILE_FN(1, 1, 0) KQ_TILE_FN(1, 2, 0) KQ_TILE_FN(1, 3, 0)
KQ_TILE_FN(2, 1, 0) KQ_TILE_FN(2, 2, 0) KQ_TILE_FN(2, 3, 0)
KQ_TILE_FN(1, 1, 1) KQ_TILE_FN(1, 2, 1) KQ_TILE_FN(1, 3, 1)
KQ_TILE_FN(2, 1, 1) KQ_TILE_FN(2, 2, 1) KQ_TILE_FN(2, 3, 1)

static const kq_tile_fn kq_tiles[2][KQ_TILE_R][KQ_TILE_C] = {
    {{kq_tile_1_1_0, kq_tile_1_2_0, kq_tile_1_3_0}, {kq_tile_2_1_0, kq_tile_2_2_0, kq_tile_2_3_0}},
    {{kq_tile_1_1_1, kq_tile_1_2_1, kq_tile_1_3_1}, {kq_tile_2_1_1, kq_tile_2_2_1, kq_tile_2_3_1}},
};

typedef struct kq_wv (*kq_unpack_fn)(const uint8_t *src);

static void kq_scalar_fallback(const struct gemm_args *ga, int type)
{
    struct kernel_table t;
    memset(&t, 0, sizeof t);
    kernels_scalar_k_init(&t);
    t.gemm[type](ga);
}

/* Scratch up to this size is taken on the stack. */
#define KQ_STACK_BYTES (24 * 1024)
/* Activation rows rearranged per pass: bounded so they stay in L2. */
#define KQ_ACT_BYTES (320 * 1024)
/* How far ahead the few-rows path prefetches weights. */
#define KQ_PREFETCH_BYTES 2048

/* A few activation rows (C <= KQ_FEW_ROWS): each weight block is unpacked
 * into registers and used at once. */
ALWAYS_INLINE void kq_gemv(const struct gemm_args *ga, const struct kq256_a *ad, int64_t nb,
                           size_t ts, kq_unpack_fn unpack, int wide, int C)
{
    for (int64_t j = 0; j < ga->n; j++) {
        const uint8_t *row = ga->w + (size_t)j * ga->w_stride;
        __m256 acc[KQ_FEW_ROWS];
        for (int c = 0; c < C; c++)
            acc[c] = _mm256_setzero_ps();
        for (int64_t ib = 0; ib < nb; ib++) {
            const uint8_t *blk = row + (size_t)ib * ts;
            for (size_t off = 0; off < ts; off += 64)
                _mm_prefetch((const char *)blk + KQ_PREFETCH_BYTES + off, _MM_HINT_T0);
            const struct kq_wv v = unpack(blk);
            for (int c = 0; c < C; c++) {
                const struct kq256_a *ab = ad + c * nb + ib;
                for (int h = 0; h < 2; h++)
                    acc[c] = kq_finish(acc[c], kq_dot4(v.q + 4 * h, ab->q + 128 * h, wide),
                                       v.ws[h], v.wm[h], ab, h);
            }
        }
        for (int c = 0; c < C; c++)
            ga->y[c * ga->y_stride + j] = kq_hsum(acc[c]);
    }
}

ALWAYS_INLINE void kq_gemm(const struct gemm_args *ga, int type, size_t ts, kq_unpack_fn unpack,
                           int wide)
{
    const int64_t nb = ga->k / QK_K;
    if (nb <= 0 || ga->n <= 0 || ga->b <= 0)
        return;
    int64_t act_rows = (int64_t)(KQ_ACT_BYTES / ((size_t)nb * sizeof(struct kq256_a)));
    act_rows = act_rows < KQ_TILE_C ? KQ_TILE_C : act_rows / KQ_TILE_C * KQ_TILE_C;
    const int few = ga->b <= KQ_FEW_ROWS;
    if (act_rows > ga->b || few) /* the few-rows path takes them in one pass */
        act_rows = ga->b;
    const size_t wbytes = few ? 0 : (size_t)KQ_TILE_R * (size_t)nb * sizeof(struct kq256_w);
    const size_t abytes = (size_t)act_rows * (size_t)nb * sizeof(struct kq256_a);
    /* Decode issues many calls with one or a few activation rows: their
     * scratch is small enough for the stack. */
    _Alignas(64) uint8_t local[KQ_STACK_BYTES];
    const size_t need = (wbytes + abytes + 63) / 64 * 64;
    uint8_t *buf = need <= sizeof local ? local : aligned_alloc(64, need);
    if (!buf) {
        kq_scalar_fallback(ga, type);
        return;
    }
    struct kq256_w *wd = (struct kq256_w *)buf;
    struct kq256_a *ad = (struct kq256_a *)(buf + wbytes);

    for (int64_t i0 = 0; i0 < ga->b; i0 += act_rows) {
        const int64_t nrows = ga->b - i0 < act_rows ? ga->b - i0 : act_rows;
        for (int64_t i = 0; i < nrows; i++) {
            const block_q8_K *x = (const block_q8_K *)(ga->x + (size_t)(i0 + i) * ga->x_stride);
            for (int64_t ib = 0; ib < nb; ib++)
                kq_prep_act(x + ib, ad + i * nb + ib);
        }
        if (few) {
            if (ga->b == 1)
                kq_gemv(ga, ad, nb, ts, unpack, wide, 1);
            else
                kq_gemv(ga, ad, nb, ts, unpack, wide, 2);
            break;
        }
        for (int64_t j0 = 0; j0 < ga->n; j0 += KQ_TILE_R) {
            const int R = ga->n - j0 < KQ_TILE_R ? (int)(ga->n - j0) : KQ_TILE_R;
            for (int r = 0; r < R; r++) {
                const uint8_t *row = ga->w + (size_t)(j0 + r) * ga->w_stride;
                /* The next tile's rows are fetched to L2 meanwhile: the tile
                 * below takes long enough that no prefetcher would. */
                const uint8_t *next = row + (size_t)KQ_TILE_R * ga->w_stride;
                for (int64_t ib = 0; ib < nb; ib++) {
                    for (size_t off = 0; off < ts; off += 64)
                        _mm_prefetch((const char *)next + (size_t)ib * ts + off, _MM_HINT_T1);
                    const struct kq_wv v = unpack(row + (size_t)ib * ts);
                    kq_store_w(wd + r * nb + ib, &v);
                }
            }
            for (int64_t c0 = 0; c0 < nrows; c0 += KQ_TILE_C) {
                const int C = nrows - c0 < KQ_TILE_C ? (int)(nrows - c0) : KQ_TILE_C;
                kq_tiles[wide][R - 1][C - 1](wd, ad + c0 * nb, nb,
                                             ga->y + (i0 + c0) * ga->y_stride + j0, ga->y_stride);
            }
        }
    }
    if (buf != local)
        free(buf);
}

#define KQ_GEMM(name, TYPE, WIDE)                                                        \
    static void gemm_##name##_avx2(const struct gemm_args *a)                            \
    {                                                                                    \
        kq_gemm(a, TYPE, sizeof(block_##name), kq_unpack_##name, WIDE);                  \
    }
KQ_GEMM(q2_K, PG_TYPE_Q2_K, 0)
KQ_GEMM(q3_K, PG_TYPE_Q3_K, 0)
KQ_GEMM(q4_K, PG_TYPE_Q4_K, 0)
KQ_GEMM(q5_K, PG_TYPE_Q5_K, 0)
KQ_GEMM(q6_K, PG_TYPE_Q6_K, 1)

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
