/*
 * gemm_avx512_k.c: AVX-512 (F/BW/VL/DQ + VNNI) kernels for the k-quant weight
 * types (q2_K..q6_K) against q8_K activations, and a q8_K converter giving
 * the reference quantizer's bytes.
 *
 * A 256-value block is 16 groups of 16 values, each group with one scale
 * (q4_K and q5_K groups of 32 count as two). Weight codes are unpacked to
 * unsigned bytes and both operands are laid out so that a zmm lane (four
 * bytes) holds values of one group in each of the block's four zmm: lane L
 * gets group 4 * (L % 4) + L / 4. Activations get there by a 4x4 transpose of
 * dwords in every 128-bit lane; q2_K..q5_K weights by a dword permute straight
 * from the packed bytes, q6_K by unpacking in order and the same transpose.
 * Four vpdpbusd then leave each lane an exact integer dot of 16 codes with 16
 * activations of one group, and one float step per block applies the group
 * scales: acc += dx * (ws * dot - wm * asum), ws the group's scale, wm its
 * min, asum the activations' group sum. Types whose codes carry an offset
 * instead of a min (q3_K: 4, q6_K: 32) start the integer dot at
 * -offset * asum and skip the wm term.
 *
 * With one activation row each weight block is unpacked in registers and used
 * at once. With more, a call unpacks each block of R weight rows once into a
 * scratch buffer and rearranges the activation blocks once; a micro-kernel
 * then keeps R x C pairs in registers (both operands of the integer dots in
 * registers too). Every pair goes through the same instruction sequence in
 * every path, so results do not depend on the batch. If the scratch cannot be
 * had the call falls back to the scalar kernels.
 */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernels.h"
#include "ops/quants.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

#define KQ_TILE_R 4
#define KQ_TILE_C 3
/* Up to KQ_FEW_PASSES passes of KQ_FEW_ROWS activation rows each unpack the
 * weights in registers, without the scratch copy. */
#define KQ_FEW_ROWS 4
#define KQ_FEW_PASSES 2

/* A weight block unpacked: codes in lane order, and per-lane scale and min. */
struct kq512_w {
    uint8_t q[QK_K];
    float ws[16];
    float wm[16];
};

/* The same in registers. */
struct kq_wv {
    __m512i q[4];
    __m512 ws, wm;
};

/* An activation block rearranged to match. For types with mins, asum holds
 * the group sums; for types with a code offset k (value = scale * (code - k)),
 * init holds -k * group sum, where the integer dots start. */
struct kq512_a {
    int8_t q[QK_K];
    union {
        float asum[16];
        int32_t init[16];
    } g;
    float d;
    float pad[15];
};

/* Lane L of the transposed layout holds group kq_lane_group[L]. */
ALWAYS_INLINE __m512i kq_lane_group(void)
{
    return _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
}

/* The same for 32-value groups (q4_K, q5_K): the group of lane L, halved. */
ALWAYS_INLINE __m512i kq_lane_group32(void)
{
    return _mm512_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6, 1, 3, 5, 7, 1, 3, 5, 7);
}

/* s[q] holds values 64q..64q+63 in order; afterwards s[g] lane 4j+q holds
 * dword g of what was lane j (128-bit) of s[q]. */
ALWAYS_INLINE void kq_transpose(__m512i s[4])
{
    const __m512i a = _mm512_unpacklo_epi32(s[0], s[1]), b = _mm512_unpackhi_epi32(s[0], s[1]);
    const __m512i c = _mm512_unpacklo_epi32(s[2], s[3]), d = _mm512_unpackhi_epi32(s[2], s[3]);
    s[0] = _mm512_unpacklo_epi64(a, c);
    s[1] = _mm512_unpackhi_epi64(a, c);
    s[2] = _mm512_unpacklo_epi64(b, d);
    s[3] = _mm512_unpackhi_epi64(b, d);
}

/* 32 bytes at p in both halves of a zmm. */
ALWAYS_INLINE __m512i kq_bcast32(const uint8_t *p)
{
    return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p));
}

/* Shift counts per 16-bit lane: lo for the low 256 bits, hi for the high. */
ALWAYS_INLINE __m512i kq_shifts(int lo, int hi)
{
    return _mm512_inserti64x4(_mm512_set1_epi16((short)lo), _mm256_set1_epi16((short)hi), 1);
}

/* ws / wm of q4_K and q5_K from the block's d, dmin and 12 scale bytes
 * (16 bytes are read; the last 4 belong to the codes that follow). Low 6 bits
 * of scales / mins 0-3 sit in bytes 0-3 / 4-7; the low 4 bits of 4-7 in
 * bytes 8-11 (scales low nibble, mins high), their top 2 bits in the top of
 * bytes 0-3 / 4-7. */
ALWAYS_INLINE void kq_scales_q45(struct kq_wv *o, const uint8_t *dd, const uint8_t *scales)
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
    uint32_t dbits;
    memcpy(&dbits, dd, 4);
    /* d for the 8 scales, dmin for the 8 mins. */
    const __m512 dm = _mm512_permutexvar_ps(
        _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
        _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi32_si128((int)dbits))));
    const __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v)), dm);
    const __m512i idx = kq_lane_group32();
    o->ws = _mm512_permutexvar_ps(idx, f);
    o->wm = _mm512_permutexvar_ps(_mm512_add_epi32(idx, _mm512_set1_epi32(8)), f);
}

/* ws for 16 signed scales (q3_K, q6_K: the offset goes through init). */
ALWAYS_INLINE void kq_scales_signed(struct kq_wv *o, __m128i sc8, pg_f16 d)
{
    const __m512 v = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sc8));
    o->ws = _mm512_mul_ps(_mm512_permutexvar_ps(kq_lane_group(), v), _mm512_set1_ps(_cvtsh_ss(d)));
    o->wm = _mm512_setzero_ps();
}

/* ---- unpacking one weight block per type ----
 *
 * q2_K..q5_K gather each lane's dword straight from the packed bytes with a
 * dword permute (lane L holds group G = 4a + b, a = L % 4, b = L / 4), then
 * shift per lane to its bit field; q6_K unpacks in value order and transposes. */

/* A dword index, shift or byte mask per lane from F(a, b), lane L = 4b + a. */
#define KQ_LANES(F)                                                                      \
    _mm512_setr_epi32(F(0, 0), F(1, 0), F(2, 0), F(3, 0), F(0, 1), F(1, 1), F(2, 1),     \
                      F(3, 1), F(0, 2), F(1, 2), F(2, 2), F(3, 2), F(0, 3), F(1, 3),     \
                      F(2, 3), F(3, 3))
/* Bit n set in every byte of the dword. */
#define KQ_REP(n) ((int)(0x01010101u << (n)))
/* q2_K / q3_K: value 16G + 4g + i sits in half a / 2, bit pair
 * t = 2 (a % 2) + b / 2, byte 16 (b % 2) + 4g + i of the half; q3_K's high
 * bit is bit 4 (a / 2) + t of hmask byte 16 (b % 2) + 4g + i. */
#define KQ_Q2_IDX(a, b) (8 * ((a) / 2) + 4 * ((b) % 2))
#define KQ_Q2_SH(a, b) (2 * (2 * ((a) % 2) + (b) / 2))
#define KQ_HIDX(a, b) (4 * ((b) % 2))
#define KQ_Q3_HBIT(a, b) KQ_REP(4 * ((a) / 2) + 2 * ((a) % 2) + (b) / 2)
/* q4_K / q5_K: value 16G + 4g + i is in group s = G / 2 of 32, byte
 * 32 (s / 2) + 16 (G % 2) + 4g + i, high nibble when s is odd; q5_K's bit 4
 * is bit s of qh byte 16 (G % 2) + 4g + i. */
#define KQ_Q4_IDX(a, b) (8 * (a) + 4 * ((b) % 2))
#define KQ_Q4_SH(a, b) (4 * ((b) / 2))
#define KQ_Q5_HBIT(a, b) KQ_REP(2 * (a) + (b) / 2)

ALWAYS_INLINE struct kq_wv kq_unpack_q2_K(const uint8_t *src)
{
    const block_q2_K *b = (const block_q2_K *)src;
    const __m512i qs = _mm512_loadu_si512((const void *)b->qs);
    const __m512i idx = KQ_LANES(KQ_Q2_IDX), sh = KQ_LANES(KQ_Q2_SH);
    const __m512i m3 = _mm512_set1_epi8(3);
    struct kq_wv o;
    for (int g = 0; g < 4; g++) {
        const __m512i v = _mm512_permutexvar_epi32(_mm512_add_epi32(idx, _mm512_set1_epi32(g)), qs);
        o.q[g] = _mm512_and_si512(_mm512_srlv_epi32(v, sh), m3);
    }
    const __m512i raw = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)b->scales));
    const __m512i grp = kq_lane_group();
    const __m512 sc = _mm512_cvtepi32_ps(_mm512_and_si512(raw, _mm512_set1_epi32(15)));
    const __m512 mn = _mm512_cvtepi32_ps(_mm512_srli_epi32(raw, 4));
    o.ws = _mm512_mul_ps(_mm512_permutexvar_ps(grp, sc), _mm512_set1_ps(_cvtsh_ss(b->d)));
    o.wm = _mm512_mul_ps(_mm512_permutexvar_ps(grp, mn), _mm512_set1_ps(_cvtsh_ss(b->dmin)));
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
    const __m512i qs = _mm512_loadu_si512((const void *)b->qs);
    const __m512i hm = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)b->hmask));
    const __m512i idx = KQ_LANES(KQ_Q2_IDX), sh = KQ_LANES(KQ_Q2_SH);
    const __m512i hidx = KQ_LANES(KQ_HIDX), hbit = KQ_LANES(KQ_Q3_HBIT);
    const __m512i m3 = _mm512_set1_epi8(3), four = _mm512_set1_epi8(4);
    struct kq_wv o;
    for (int g = 0; g < 4; g++) {
        const __m512i gv = _mm512_set1_epi32(g);
        const __m512i v = _mm512_permutexvar_epi32(_mm512_add_epi32(idx, gv), qs);
        const __m512i low = _mm512_and_si512(_mm512_srlv_epi32(v, sh), m3);
        const __m512i h = _mm512_permutexvar_epi32(_mm512_add_epi32(hidx, gv), hm);
        o.q[g] = _mm512_mask_add_epi8(low, _mm512_test_epi8_mask(h, hbit), low, four);
    }
    const __m128i sc = kq_q3_scales(b->scales);
    kq_scales_signed(&o, sc, b->d);
    return o;
}

/* The low four bits of q4_K / q5_K codes. */
ALWAYS_INLINE void kq_nibbles(struct kq_wv *o, const uint8_t *qs)
{
    const __m512i p0 = _mm512_loadu_si512((const void *)qs);
    const __m512i p1 = _mm512_loadu_si512((const void *)(qs + 64));
    const __m512i idx = KQ_LANES(KQ_Q4_IDX), sh = KQ_LANES(KQ_Q4_SH);
    const __m512i m4 = _mm512_set1_epi8(15);
    for (int g = 0; g < 4; g++) {
        const __m512i gi = _mm512_add_epi32(idx, _mm512_set1_epi32(g));
        const __m512i v = _mm512_permutex2var_epi32(p0, gi, p1);
        o->q[g] = _mm512_and_si512(_mm512_srlv_epi32(v, sh), m4);
    }
}

ALWAYS_INLINE struct kq_wv kq_unpack_q4_K(const uint8_t *src)
{
    const block_q4_K *b = (const block_q4_K *)src;
    struct kq_wv o;
    kq_nibbles(&o, b->qs);
    kq_scales_q45(&o, src, b->scales);
    return o;
}

ALWAYS_INLINE struct kq_wv kq_unpack_q5_K(const uint8_t *src)
{
    const block_q5_K *b = (const block_q5_K *)src;
    struct kq_wv o;
    kq_nibbles(&o, b->qs);
    const __m512i qh = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)b->qh));
    const __m512i hidx = KQ_LANES(KQ_HIDX), hbit = KQ_LANES(KQ_Q5_HBIT);
    const __m512i sixteen = _mm512_set1_epi8(16);
    for (int g = 0; g < 4; g++) {
        const __m512i h =
            _mm512_permutexvar_epi32(_mm512_add_epi32(hidx, _mm512_set1_epi32(g)), qh);
        o.q[g] = _mm512_mask_add_epi8(o.q[g], _mm512_test_epi8_mask(h, hbit), o.q[g], sixteen);
    }
    kq_scales_q45(&o, src, b->scales);
    return o;
}

ALWAYS_INLINE struct kq_wv kq_unpack_q6_K(const uint8_t *src)
{
    const block_q6_K *b = (const block_q6_K *)src;
    const __m512i m4 = _mm512_set1_epi8(15), m30 = _mm512_set1_epi8(0x30);
    struct kq_wv o;
    for (int h = 0; h < 2; h++) {
        const __m512i l = _mm512_loadu_si512((const void *)(b->ql + 64 * h));
        const __m512i qh = kq_bcast32(b->qh + 32 * h);
        const __m512i lo = _mm512_and_si512(l, m4);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(l, 4), m4);
        /* The two high bits of quarter t sit at bit 2t of the qh byte; they
         * go to bits 4-5. */
        const __m512i h01 = _mm512_and_si512(_mm512_sllv_epi16(qh, kq_shifts(4, 2)), m30);
        const __m512i h23 = _mm512_and_si512(_mm512_srlv_epi16(qh, kq_shifts(0, 2)), m30);
        o.q[2 * h] = _mm512_or_si512(lo, h01);
        o.q[2 * h + 1] = _mm512_or_si512(hi, h23);
    }
    kq_transpose(o.q);
    kq_scales_signed(&o, _mm_loadu_si128((const __m128i *)b->scales), b->d);
    return o;
}

ALWAYS_INLINE void kq_store_w(struct kq512_w *o, const struct kq_wv *v, int koff)
{
    for (int g = 0; g < 4; g++)
        _mm512_store_si512((void *)(o->q + 64 * g), v->q[g]);
    _mm512_store_ps(o->ws, v->ws);
    if (!koff)
        _mm512_store_ps(o->wm, v->wm);
}

/* ---- activations ---- */

ALWAYS_INLINE void kq_prep_act(const block_q8_K *x, struct kq512_a *o, int koff)
{
    __m512i s[4];
    for (int q = 0; q < 4; q++)
        s[q] = _mm512_loadu_si512((const void *)(x->qs + 64 * q));
    kq_transpose(s);
    for (int g = 0; g < 4; g++)
        _mm512_store_si512((void *)(o->q + 64 * g), s[g]);
    const __m512i sums = _mm512_permutexvar_epi32(
        kq_lane_group(), _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)x->bsums)));
    if (koff)
        _mm512_store_si512((void *)o->g.init, _mm512_mullo_epi32(sums, _mm512_set1_epi32(-koff)));
    else
        _mm512_store_ps(o->g.asum, _mm512_cvtepi32_ps(sums));
    o->d = x->d;
}

/* ---- one pair's arithmetic, the same in every path ---- */

/* Where a pair's integer dots start. */
ALWAYS_INLINE __m512i kq_start(const struct kq512_a *ab, int koff)
{
    return koff ? _mm512_load_si512((const void *)ab->g.init) : _mm512_setzero_si512();
}

/* One block's float step: acc += dx * (ws * dot - wm * asum). */
ALWAYS_INLINE __m512 kq_finish(__m512 acc, __m512i s, __m512 ws, __m512 wm,
                               const struct kq512_a *ab, int koff)
{
    __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(s), ws);
    if (!koff)
        t = _mm512_fnmadd_ps(_mm512_load_ps(ab->g.asum), wm, t);
    return _mm512_fmadd_ps(t, _mm512_set1_ps(ab->d), acc);
}

/* ---- the micro-kernel ---- */

/* y[c * ys + r] for R weight rows (w + r * nb) and C activation rows
 * (a + c * nb): per block, all R x C integer dots with both operands in
 * registers, then the float step per pair; one sum of 16 lanes at the end. */
ALWAYS_INLINE void kq_tile(const struct kq512_w *w, const struct kq512_a *a, int64_t nb, int R,
                           int C, int koff, float *y, int64_t ys)
{
    __m512 acc[KQ_TILE_R][KQ_TILE_C];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            acc[r][c] = _mm512_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        __m512i s[KQ_TILE_R][KQ_TILE_C];
        for (int c = 0; c < C; c++) {
            const __m512i s0 = kq_start(a + c * nb + ib, koff);
            for (int r = 0; r < R; r++)
                s[r][c] = s0;
        }
        for (int g = 0; g < 4; g++) {
            __m512i av[KQ_TILE_C];
            for (int c = 0; c < C; c++)
                av[c] = _mm512_load_si512((const void *)(a[c * nb + ib].q + 64 * g));
            for (int r = 0; r < R; r++) {
                const __m512i wv = _mm512_load_si512((const void *)(w[r * nb + ib].q + 64 * g));
                for (int c = 0; c < C; c++)
                    s[r][c] = _mm512_dpbusd_epi32(s[r][c], wv, av[c]);
            }
        }
        for (int r = 0; r < R; r++) {
            const struct kq512_w *wb = w + r * nb + ib;
            const __m512 ws = _mm512_load_ps(wb->ws);
            const __m512 wm = koff ? _mm512_setzero_ps() : _mm512_load_ps(wb->wm);
            for (int c = 0; c < C; c++)
                acc[r][c] = kq_finish(acc[r][c], s[r][c], ws, wm, a + c * nb + ib, koff);
        }
    }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            y[c * ys + r] = _mm512_reduce_add_ps(acc[r][c]);
}

typedef void (*kq_tile_fn)(const struct kq512_w *, const struct kq512_a *, int64_t, float *,
                           int64_t);

#define KQ_TILE_FN(R, C, K)                                                              \
    static void kq_tile_##R##_##C##_##K(const struct kq512_w *w, const struct kq512_a *a, \
                                        int64_t nb, float *y, int64_t ys)                \
    {                                                                                    \
        kq_tile(w, a, nb, R, C, K, y, ys);                                               \
    }
#define KQ_TILE_ROW(R, K) KQ_TILE_FN(R, 1, K) KQ_TILE_FN(R, 2, K) KQ_TILE_FN(R, 3, K)
KQ_TILE_ROW(1, 0) KQ_TILE_ROW(2, 0) KQ_TILE_ROW(3, 0) KQ_TILE_ROW(4, 0)
KQ_TILE_ROW(1, 4) KQ_TILE_ROW(2, 4) KQ_TILE_ROW(3, 4) KQ_TILE_ROW(4, 4)
KQ_TILE_ROW(1, 32) KQ_TILE_ROW(2, 32) KQ_TILE_ROW(3, 32) KQ_TILE_ROW(4, 32)

#define KQ_TILES(K)                                                                      \
    {{kq_tile_1_1_##K, kq_tile_1_2_##K, kq_tile_1_3_##K},                                \
     {kq_tile_2_1_##K, kq_tile_2_2_##K, kq_tile_2_3_##K},                                \
     {kq_tile_3_1_##K, kq_tile_3_2_##K, kq_tile_3_3_##K},                                \
     {kq_tile_4_1_##K, kq_tile_4_2_##K, kq_tile_4_3_##K}}
/* By code offset: none (mins), 4 (q3_K), 32 (q6_K). */
static const kq_tile_fn kq_tiles[3][KQ_TILE_R][KQ_TILE_C] = {KQ_TILES(0), KQ_TILES(4),
                                                             KQ_TILES(32)};

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

typedef struct kq_wv (*kq_unpack_fn)(const uint8_t *src);

/* A few activation rows (C <= KQ_FEW_ROWS): each weight block is unpacked
 * into registers and used at once (the tile path would write it out and read
 * it back for too few uses). */
ALWAYS_INLINE void kq_gemv(const struct gemm_args *ga, const struct kq512_a *ad, int64_t nb,
                           size_t ts, kq_unpack_fn unpack, int koff, int C)
{
    for (int64_t j = 0; j < ga->n; j++) {
        const uint8_t *row = ga->w + (size_t)j * ga->w_stride;
        __m512 acc[KQ_FEW_ROWS];
        for (int c = 0; c < C; c++)
            acc[c] = _mm512_setzero_ps();
        for (int64_t ib = 0; ib < nb; ib++) {
            const uint8_t *blk = row + (size_t)ib * ts;
            for (size_t off = 0; off < ts; off += 64)
                _mm_prefetch((const char *)blk + KQ_PREFETCH_BYTES + off, _MM_HINT_T0);
            const struct kq_wv v = unpack(blk);
            for (int c = 0; c < C; c++) {
                const struct kq512_a *ab = ad + c * nb + ib;
                __m512i s = kq_start(ab, koff);
                for (int g = 0; g < 4; g++)
                    s = _mm512_dpbusd_epi32(s, v.q[g],
                                            _mm512_load_si512((const void *)(ab->q + 64 * g)));
                acc[c] = kq_finish(acc[c], s, v.ws, v.wm, ab, koff);
            }
        }
        for (int c = 0; c < C; c++)
            ga->y[c * ga->y_stride + j] = _mm512_reduce_add_ps(acc[c]);
    }
}

ALWAYS_INLINE void kq_gemm(const struct gemm_args *ga, int type, size_t ts, kq_unpack_fn unpack,
                           int koff, int ki)
{
    const int64_t nb = ga->k / QK_K;
    if (nb <= 0 || ga->n <= 0 || ga->b <= 0)
        return;
    int64_t act_rows = (int64_t)(KQ_ACT_BYTES / ((size_t)nb * sizeof(struct kq512_a)));
    act_rows = act_rows < KQ_TILE_C ? KQ_TILE_C : act_rows / KQ_TILE_C * KQ_TILE_C;
    const int few = ga->b <= KQ_FEW_PASSES * KQ_FEW_ROWS;
    if (act_rows > ga->b || few) /* the few-rows path takes them in one pass */
        act_rows = ga->b;
    const size_t wbytes = few ? 0 : (size_t)KQ_TILE_R * (size_t)nb * sizeof(struct kq512_w);
    const size_t abytes = (size_t)act_rows * (size_t)nb * sizeof(struct kq512_a);
    /* Decode issues many calls with one or a few activation rows: their
     * scratch is small enough for the stack. */
    _Alignas(64) uint8_t local[KQ_STACK_BYTES];
    const size_t need = (wbytes + abytes + 63) / 64 * 64;
    uint8_t *buf = need <= sizeof local ? local : aligned_alloc(64, need);
    if (!buf) {
        kq_scalar_fallback(ga, type);
        return;
    }
    struct kq512_w *wd = (struct kq512_w *)buf;
    struct kq512_a *ad = (struct kq512_a *)(buf + wbytes);

    for (int64_t i0 = 0; i0 < ga->b; i0 += act_rows) {
        const int64_t nrows = ga->b - i0 < act_rows ? ga->b - i0 : act_rows;
        for (int64_t i = 0; i < nrows; i++) {
            const block_q8_K *x = (const block_q8_K *)(ga->x + (size_t)(i0 + i) * ga->x_stride);
            for (int64_t ib = 0; ib < nb; ib++)
                kq_prep_act(x + ib, ad + i * nb + ib, koff);
        }
        if (few) {
            for (int64_t c0 = 0; c0 < ga->b; c0 += KQ_FEW_ROWS) {
                struct gemm_args part = *ga;
                part.y = ga->y + c0 * ga->y_stride;
                const struct kq512_a *pa = ad + c0 * nb;
                switch (ga->b - c0) {
                case 1: kq_gemv(&part, pa, nb, ts, unpack, koff, 1); break;
                case 2: kq_gemv(&part, pa, nb, ts, unpack, koff, 2); break;
                case 3: kq_gemv(&part, pa, nb, ts, unpack, koff, 3); break;
                default: kq_gemv(&part, pa, nb, ts, unpack, koff, 4); break;
                }
            }
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
                    kq_store_w(wd + r * nb + ib, &v, koff);
                }
            }
            for (int64_t c0 = 0; c0 < nrows; c0 += KQ_TILE_C) {
                const int C = nrows - c0 < KQ_TILE_C ? (int)(nrows - c0) : KQ_TILE_C;
                kq_tiles[ki][R - 1][C - 1](wd, ad + c0 * nb, nb,
                                           ga->y + (i0 + c0) * ga->y_stride + j0, ga->y_stride);
            }
        }
    }
    if (buf != local)
        free(buf);
}

#define KQ_GEMM(name, TYPE, KOFF, KI)                                                    \
    static void gemm_##name##_avx512(const struct gemm_args *a)                          \
    {                                                                                    \
        kq_gemm(a, TYPE, sizeof(block_##name), kq_unpack_##name, KOFF, KI);              \
    }
KQ_GEMM(q2_K, PG_TYPE_Q2_K, 0, 0)
KQ_GEMM(q3_K, PG_TYPE_Q3_K, 4, 1)
KQ_GEMM(q4_K, PG_TYPE_Q4_K, 0, 0)
KQ_GEMM(q5_K, PG_TYPE_Q5_K, 0, 0)
KQ_GEMM(q6_K, PG_TYPE_Q6_K, 32, 2)

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
    for (int type = PG_TYPE_Q2_K; type <= PG_TYPE_Q6_K; type++)
        t->isa[type] = "avx512";
    t->act_quant[PG_TYPE_Q8_K] = quantize_row_q8_K_avx512;
}
