/*
 * gemm_avx512_k.c: AVX-512 (F/BW/VL/DQ + VNNI) kernels for the k-quant weight
 * types (q2_K..q6_K) against q8_K activations, and a q8_K converter giving
 * the reference quantizer's bytes.
 *
 * q2_K, q3_K, q6_K: a 256-value block is 16 groups of 16 values, each group
 * with one scale. Weight codes are unpacked to unsigned bytes and both
 * operands are laid out so that a zmm lane (four bytes) holds values of one
 * group in each of the block's four zmm: lane L gets group 4 * (L % 4) + L / 4.
 * Activations get there by a 4x4 transpose of dwords in every 128-bit lane;
 * q2_K and q3_K weights by a dword permute straight from the packed bytes,
 * q6_K by unpacking in order and the same transpose. Four vpdpbusd then leave
 * each lane an exact integer dot of 16 codes with 16 activations of one
 * group, and one float step per block applies the group scales:
 * acc += dx * (ws * dot - wm * asum), ws the group's scale, wm its min, asum
 * the activations' group sum. Types whose codes carry an offset instead of a
 * min (q3_K: 4, q6_K: 32) start the integer dot at -offset * asum and skip
 * the wm term.
 *
 * q4_K, q5_K: groups are 32 values, so a step takes two blocks in eight zmm,
 * one group of one block per lane, and one float step serves both blocks
 * (see "two blocks per step" below). The float step costs about as much as
 * the integer dots it follows, so halving it is most of the speed.
 *
 * With one to KQ_FEW_ROWS activation rows each weight block is unpacked in
 * registers and used at once. With more, a call unpacks each block of R
 * weight rows once into a scratch buffer and rearranges the activation
 * blocks once; a micro-kernel then keeps R x C pairs in registers (both
 * operands of the integer dots in registers too). Every pair goes through
 * the same instruction sequence in every path, so results do not depend on
 * the batch. If the scratch cannot be had the call falls back to the scalar
 * kernels.
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernels.h"
#include "ops/quants.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

#define KQ_TILE_R 4
#define KQ_TILE_C 3
/* Up to KQ_FEW_ROWS activation rows take the weights unpacked in registers,
 * without the scratch copy: q4_K and q5_K in one pass (one accumulator per
 * row), the other types in passes of four rows. */
#define KQ_FEW_ROWS 8

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

/* d * scale (lanes 0-7) and dmin * min (lanes 8-15) of the eight 32-value
 * groups of q4_K and q5_K, from the block's d, dmin and 12 scale bytes
 * (16 bytes are read; the last 4 belong to the codes that follow). Low 6 bits
 * of scales / mins 0-3 sit in bytes 0-3 / 4-7; the low 4 bits of 4-7 in
 * bytes 8-11 (scales low nibble, mins high), their top 2 bits in the top of
 * bytes 0-3 / 4-7. */
ALWAYS_INLINE __m512 kq_scales_q45(const uint8_t *dd, const uint8_t *scales)
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
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v)), dm);
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
            for (int c = 0; c < C; c++) {
                av[c] = _mm512_load_si512((const void *)(a[c * nb + ib].q + 64 * g));
                __asm__("" : "+v"(av[c])); /* in a register, as in kq2_tile */
            }
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

/* ---- rearranged activations, kept per thread ----
 *
 * The matmul driver gives every chunk of weight rows the same activations
 * (the same x_id): a thread that takes many chunks rearranges them for the
 * micro-kernel once instead of once per chunk. One slot per layout. */

enum { KQ_LAYOUT_Q2, KQ_LAYOUT_Q3, KQ_LAYOUT_Q6, KQ_LAYOUT_PAIRS, KQ_LAYOUTS };

struct kq_act_cache {
    uint64_t id;
    const uint8_t *x;
    int64_t b, k;
    size_t cap;
    uint8_t *buf;
};

static pthread_key_t kq_cache_key;
static pthread_once_t kq_cache_once = PTHREAD_ONCE_INIT;
static int kq_cache_ok;

static void kq_cache_free(void *p)
{
    struct kq_act_cache *c = p;
    for (int i = 0; i < KQ_LAYOUTS; i++)
        free(c[i].buf);
    free(c);
}

static void kq_cache_init(void) { kq_cache_ok = pthread_key_create(&kq_cache_key, kq_cache_free) == 0; }

/* The slot for a layout if this call's activations may be cached there (it
 * then holds `bytes` of room), else NULL. *hit: it already holds them. */
static struct kq_act_cache *kq_cache_slot(const struct gemm_args *ga, int layout, size_t bytes,
                                          int *hit)
{
    *hit = 0;
    if (!ga->x_id)
        return NULL;
    pthread_once(&kq_cache_once, kq_cache_init);
    if (!kq_cache_ok)
        return NULL;
    struct kq_act_cache *c = pthread_getspecific(kq_cache_key);
    if (!c) {
        c = calloc(KQ_LAYOUTS, sizeof *c);
        if (!c || pthread_setspecific(kq_cache_key, c)) {
            free(c);
            return NULL;
        }
    }
    struct kq_act_cache *e = &c[layout];
    if (e->id == ga->x_id && e->x == ga->x && e->b == ga->b && e->k == ga->k) {
        *hit = 1;
        return e;
    }
    if (e->cap < bytes) {
        uint8_t *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (!p)
            return NULL;
        free(e->buf);
        e->buf = p;
        e->cap = bytes;
    }
    e->id = 0; /* filled by the caller, then claimed */
    return e;
}

static void kq_cache_claim(struct kq_act_cache *e, const struct gemm_args *ga)
{
    e->id = ga->x_id;
    e->x = ga->x;
    e->b = ga->b;
    e->k = ga->k;
}

/* A few activation rows (C <= 4): each weight block is unpacked
 * into registers and used at once (the tile path would write it out and read
 * it back for too few uses). */
ALWAYS_INLINE void kq_gemv(const struct gemm_args *ga, const struct kq512_a *ad, int64_t nb,
                           size_t ts, kq_unpack_fn unpack, int koff, int C)
{
    for (int64_t j = 0; j < ga->n; j++) {
        const uint8_t *row = ga->w + (size_t)j * ga->w_stride;
        __m512 acc[4];
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
    const int few = ga->b <= KQ_FEW_ROWS;
    if (act_rows > ga->b || few) /* the few-rows path takes them in one pass */
        act_rows = ga->b;
    /* Many rows: all of them rearranged once per thread and call. */
    int hit = 0;
    struct kq_act_cache *cache =
        few ? NULL
            : kq_cache_slot(ga, ki, (size_t)ga->b * (size_t)nb * sizeof(struct kq512_a), &hit);
    const size_t wbytes = few ? 0 : (size_t)KQ_TILE_R * (size_t)nb * sizeof(struct kq512_w);
    const size_t abytes = cache ? 0 : (size_t)act_rows * (size_t)nb * sizeof(struct kq512_a);
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

    if (cache && !hit) {
        struct kq512_a *all = (struct kq512_a *)cache->buf;
        for (int64_t i = 0; i < ga->b; i++) {
            const block_q8_K *x = (const block_q8_K *)(ga->x + (size_t)i * ga->x_stride);
            for (int64_t ib = 0; ib < nb; ib++)
                kq_prep_act(x + ib, all + i * nb + ib, koff);
        }
        kq_cache_claim(cache, ga);
    }

    for (int64_t i0 = 0; i0 < ga->b; i0 += act_rows) {
        const int64_t nrows = ga->b - i0 < act_rows ? ga->b - i0 : act_rows;
        if (cache) {
            ad = (struct kq512_a *)cache->buf + i0 * nb;
        } else {
            for (int64_t i = 0; i < nrows; i++) {
                const block_q8_K *x =
                    (const block_q8_K *)(ga->x + (size_t)(i0 + i) * ga->x_stride);
                for (int64_t ib = 0; ib < nb; ib++)
                    kq_prep_act(x + ib, ad + i * nb + ib, koff);
            }
        }
        if (few) {
            /* In passes of up to four rows: with more, the accumulators and
             * the float step's operands no longer fit in registers. */
            for (int64_t c0 = 0; c0 < ga->b; c0 += 4) {
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
KQ_GEMM(q6_K, PG_TYPE_Q6_K, 32, 2)

/* ---- q4_K and q5_K: two blocks per step ----
 *
 * Their scales and mins cover 32 values, so two blocks have 16 groups, one
 * per zmm lane: a step takes blocks 2u and 2u + 1 as eight zmm, lane L
 * holding group L % 8 of block L / 8 and vector j its values 4j..4j+3.
 * Eight vpdpbusd then leave each lane the exact dot of a whole group, and
 * one float step applies the scales of both blocks, half the float work per
 * block of the layout above. An odd last block is paired with a zero block
 * (codes, scales and activations all zero), which adds exact zeros. */

struct kq2_w {
    uint8_t q[2 * QK_K];
    float ws[16];
    float wm[16];
};

struct kq2_wv {
    __m512i q[8];
    __m512 ws, wm;
};

/* Activations for a step: codes in the same layout, per-lane group sums and
 * the block scale of each lane. */
struct kq2_a {
    int8_t q[2 * QK_K];
    float asum[16];
    float d[16];
};

/* Stands in for the missing partner of an odd last block. */
static const _Alignas(64) uint8_t kq2_zero_block[sizeof(block_q5_K)];

/* The low four bits of two blocks' codes. Code i of 32-value group g is
 * nibble g % 2 of byte 32 (g / 2) + i, so vector j, lane L wants dword
 * 8 (g / 2) + j of the block's 32, shifted by 4 (g % 2). Gathering each
 * block's dwords with j < 4 into one zmm and those with j >= 4 into another
 * first lets one two-table permute per vector serve both blocks. */
ALWAYS_INLINE void kq2_nibbles(struct kq2_wv *o, const uint8_t *qa, const uint8_t *qb)
{
    const __m512i a0 = _mm512_loadu_si512((const void *)qa);
    const __m512i a1 = _mm512_loadu_si512((const void *)(qa + 64));
    const __m512i b0 = _mm512_loadu_si512((const void *)qb);
    const __m512i b1 = _mm512_loadu_si512((const void *)(qb + 64));
    /* Dwords 0-3, 8-11, 16-19, 24-27, and the same plus 4: dword 8c + j
     * lands at 4c + j % 4. */
    const __m512i alo = _mm512_shuffle_i32x4(a0, a1, _MM_SHUFFLE(2, 0, 2, 0));
    const __m512i ahi = _mm512_shuffle_i32x4(a0, a1, _MM_SHUFFLE(3, 1, 3, 1));
    const __m512i blo = _mm512_shuffle_i32x4(b0, b1, _MM_SHUFFLE(2, 0, 2, 0));
    const __m512i bhi = _mm512_shuffle_i32x4(b0, b1, _MM_SHUFFLE(3, 1, 3, 1));
    const __m512i base =
        _mm512_setr_epi32(0, 0, 4, 4, 8, 8, 12, 12, 16, 16, 20, 20, 24, 24, 28, 28);
    const __m512i sh = _mm512_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4);
    const __m512i m4 = _mm512_set1_epi8(15);
    for (int j = 0; j < 4; j++) {
        const __m512i idx = _mm512_add_epi32(base, _mm512_set1_epi32(j));
        const __m512i lo = _mm512_permutex2var_epi32(alo, idx, blo);
        const __m512i hi = _mm512_permutex2var_epi32(ahi, idx, bhi);
        o->q[j] = _mm512_and_si512(_mm512_srlv_epi32(lo, sh), m4);
        o->q[j + 4] = _mm512_and_si512(_mm512_srlv_epi32(hi, sh), m4);
    }
}

/* Both blocks' scales in lane order: block a's groups, then block b's
 * (q5_K starts with the same d, dmin and scales as q4_K). */
ALWAYS_INLINE void kq2_scales(struct kq2_wv *o, const uint8_t *a, const uint8_t *b)
{
    const block_q4_K *ba = (const block_q4_K *)a, *bb = (const block_q4_K *)b;
    const __m512 fa = kq_scales_q45(a, ba->scales), fb = kq_scales_q45(b, bb->scales);
    o->ws = _mm512_permutex2var_ps(
        fa, _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23), fb);
    o->wm = _mm512_permutex2var_ps(
        fa, _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31), fb);
}

ALWAYS_INLINE struct kq2_wv kq2_unpack_q4_K(const uint8_t *a, const uint8_t *b)
{
    struct kq2_wv o;
    kq2_nibbles(&o, ((const block_q4_K *)a)->qs, ((const block_q4_K *)b)->qs);
    kq2_scales(&o, a, b);
    return o;
}

/* q5_K's fifth bit of code i of group g is bit g of qh byte i: vector j
 * wants qh dword j of the lane's block, bit L % 8 of each byte. */
ALWAYS_INLINE struct kq2_wv kq2_unpack_q5_K(const uint8_t *a, const uint8_t *b)
{
    const block_q5_K *ba = (const block_q5_K *)a, *bb = (const block_q5_K *)b;
    struct kq2_wv o;
    kq2_nibbles(&o, ba->qs, bb->qs);
    const __m512i qh = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)ba->qh)),
        _mm256_loadu_si256((const __m256i *)bb->qh), 1);
    const __m512i hbase = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 8, 8, 8, 8, 8, 8, 8, 8);
    const __m512i hbit = _mm512_setr_epi32(KQ_REP(0), KQ_REP(1), KQ_REP(2), KQ_REP(3),
                                           KQ_REP(4), KQ_REP(5), KQ_REP(6), KQ_REP(7),
                                           KQ_REP(0), KQ_REP(1), KQ_REP(2), KQ_REP(3),
                                           KQ_REP(4), KQ_REP(5), KQ_REP(6), KQ_REP(7));
    const __m512i sixteen = _mm512_set1_epi8(16);
    for (int j = 0; j < 8; j++) {
        const __m512i h =
            _mm512_permutexvar_epi32(_mm512_add_epi32(hbase, _mm512_set1_epi32(j)), qh);
        o.q[j] = _mm512_mask_add_epi8(o.q[j], _mm512_test_epi8_mask(h, hbit), o.q[j], sixteen);
    }
    kq2_scales(&o, a, b);
    return o;
}

typedef struct kq2_wv (*kq2_unpack_fn)(const uint8_t *a, const uint8_t *b);

/* Step u of a row: blocks 2u and 2u + 1 (or the zero block past the end). */
ALWAYS_INLINE struct kq2_wv kq2_unpack_step(kq2_unpack_fn unpack, const uint8_t *row,
                                            int64_t u, int64_t nb, size_t ts)
{
    const uint8_t *a = row + (size_t)(2 * u) * ts;
    const uint8_t *b = 2 * u + 1 < nb ? a + ts : kq2_zero_block;
    return unpack(a, b);
}

/* An activation block's codes for one half of a step: lane g of vector j
 * (g < 8) gets dword 8g + j, gathered as in kq2_nibbles (the upper lanes
 * repeat the lower ones). */
ALWAYS_INLINE void kq2_act_half(const int8_t *qs, __m512i v[8])
{
    const __m512i z0 = _mm512_loadu_si512((const void *)qs);
    const __m512i z1 = _mm512_loadu_si512((const void *)(qs + 64));
    const __m512i z2 = _mm512_loadu_si512((const void *)(qs + 128));
    const __m512i z3 = _mm512_loadu_si512((const void *)(qs + 192));
    /* Dword 8g + j lands at 4 (g % 4) + j % 4 of the first table (g < 4) or
     * the second. */
    const __m512i lo0 = _mm512_shuffle_i32x4(z0, z1, _MM_SHUFFLE(2, 0, 2, 0));
    const __m512i hi0 = _mm512_shuffle_i32x4(z0, z1, _MM_SHUFFLE(3, 1, 3, 1));
    const __m512i lo1 = _mm512_shuffle_i32x4(z2, z3, _MM_SHUFFLE(2, 0, 2, 0));
    const __m512i hi1 = _mm512_shuffle_i32x4(z2, z3, _MM_SHUFFLE(3, 1, 3, 1));
    const __m512i base =
        _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
    for (int j = 0; j < 4; j++) {
        const __m512i idx = _mm512_add_epi32(base, _mm512_set1_epi32(j));
        v[j] = _mm512_permutex2var_epi32(lo0, idx, lo1);
        v[j + 4] = _mm512_permutex2var_epi32(hi0, idx, hi1);
    }
}

/* Activation blocks a and b (b NULL: zeros) into a step's layout: vector j,
 * lane L gets dword 8 (L % 8) + j of block L / 8; a 32-group's sum is the
 * sum of its two 16-value sums. */
static void kq2_prep_act(const block_q8_K *a, const block_q8_K *b, struct kq2_a *o)
{
    __m512i va[8], vb[8];
    kq2_act_half(a->qs, va);
    if (b)
        kq2_act_half(b->qs, vb);
    for (int j = 0; j < 8; j++)
        _mm512_store_si512((void *)(o->q + 64 * j),
                           b ? _mm512_mask_blend_epi32(0xFF00, va[j], vb[j])
                             : _mm512_maskz_mov_epi32(0x00FF, va[j]));
    /* 16-value sums in pairs: a's in the low half, b's in the high. */
    const __m512i sa = _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)a->bsums));
    const __m512i sb = b ? _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)b->bsums))
                         : _mm512_setzero_si512();
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512i sums = _mm512_add_epi32(_mm512_permutex2var_epi32(sa, even, sb),
                                          _mm512_permutex2var_epi32(sa, odd, sb));
    _mm512_store_ps(o->asum, _mm512_cvtepi32_ps(sums));
    _mm512_store_ps(o->d, _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(a->d),
                                               _mm512_set1_ps(b ? b->d : 0.0f)));
}

static void kq2_prep_row(const block_q8_K *x, int64_t nb, struct kq2_a *o)
{
    for (int64_t u = 0; 2 * u < nb; u++)
        kq2_prep_act(x + 2 * u, 2 * u + 1 < nb ? x + 2 * u + 1 : NULL, o + u);
}

/* The float step of one pair: acc += d * (ws * dot - wm * asum). */
ALWAYS_INLINE __m512 kq2_finish(__m512 acc, __m512i s, __m512 ws, __m512 wm,
                                const struct kq2_a *ab)
{
    __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(s), ws);
    t = _mm512_fnmadd_ps(_mm512_load_ps(ab->asum), wm, t);
    return _mm512_fmadd_ps(t, _mm512_load_ps(ab->d), acc);
}

/* y[c * ys + r] for R unpacked weight rows (w + r * nu) and C activation
 * rows (a + c * nu), as kq_tile. */
ALWAYS_INLINE void kq2_tile(const struct kq2_w *w, const struct kq2_a *a, int64_t nu, int R,
                            int C, float *y, int64_t ys)
{
    __m512 acc[KQ_TILE_R][KQ_TILE_C];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            acc[r][c] = _mm512_setzero_ps();
    for (int64_t u = 0; u < nu; u++) {
        __m512i s[KQ_TILE_R][KQ_TILE_C];
        for (int r = 0; r < R; r++)
            for (int c = 0; c < C; c++)
                s[r][c] = _mm512_setzero_si512();
        for (int j = 0; j < 8; j++) {
            __m512i av[KQ_TILE_C];
            for (int c = 0; c < C; c++) {
                av[c] = _mm512_load_si512((const void *)(a[c * nu + u].q + 64 * j));
                /* Held in a register: folded into each vpdpbusd instead, the
                 * loads would outnumber what the load ports can do. */
                __asm__("" : "+v"(av[c]));
            }
            for (int r = 0; r < R; r++) {
                const __m512i wv = _mm512_load_si512((const void *)(w[r * nu + u].q + 64 * j));
                for (int c = 0; c < C; c++)
                    s[r][c] = _mm512_dpbusd_epi32(s[r][c], wv, av[c]);
            }
        }
        for (int r = 0; r < R; r++) {
            const struct kq2_w *wb = w + r * nu + u;
            const __m512 ws = _mm512_load_ps(wb->ws), wm = _mm512_load_ps(wb->wm);
            for (int c = 0; c < C; c++)
                acc[r][c] = kq2_finish(acc[r][c], s[r][c], ws, wm, a + c * nu + u);
        }
    }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            y[c * ys + r] = _mm512_reduce_add_ps(acc[r][c]);
}

typedef void (*kq2_tile_fn)(const struct kq2_w *, const struct kq2_a *, int64_t, float *,
                            int64_t);

#define KQ2_TILE_FN(R, C)                                                                \
    static void kq2_tile_##R##_##C(const struct kq2_w *w, const struct kq2_a *a, int64_t nu, \
                                   float *y, int64_t ys)                                 \
    {                                                                                    \
        kq2_tile(w, a, nu, R, C, y, ys);                                                 \
    }
#define KQ2_TILE_ROW(R) KQ2_TILE_FN(R, 1) KQ2_TILE_FN(R, 2) KQ2_TILE_FN(R, 3)
KQ2_TILE_ROW(1) KQ2_TILE_ROW(2) KQ2_TILE_ROW(3) KQ2_TILE_ROW(4)
static const kq2_tile_fn kq2_tiles[KQ_TILE_R][KQ_TILE_C] = {
    {kq2_tile_1_1, kq2_tile_1_2, kq2_tile_1_3},
    {kq2_tile_2_1, kq2_tile_2_2, kq2_tile_2_3},
    {kq2_tile_3_1, kq2_tile_3_2, kq2_tile_3_3},
    {kq2_tile_4_1, kq2_tile_4_2, kq2_tile_4_3}};

/* A few activation rows: each step is unpacked into registers and used at
 * once, as kq_gemv. */
ALWAYS_INLINE void kq2_gemv(const struct gemm_args *ga, const struct kq2_a *ad, int64_t nb,
                            size_t ts, kq2_unpack_fn unpack, int C)
{
    const int64_t nu = (nb + 1) / 2;
    for (int64_t j = 0; j < ga->n; j++) {
        const uint8_t *row = ga->w + (size_t)j * ga->w_stride;
        __m512 acc[KQ_FEW_ROWS];
        for (int c = 0; c < C; c++)
            acc[c] = _mm512_setzero_ps();
        for (int64_t u = 0; u < nu; u++) {
            const uint8_t *blk = row + (size_t)(2 * u) * ts;
            for (size_t off = 0; off < 2 * ts; off += 64)
                _mm_prefetch((const char *)blk + KQ_PREFETCH_BYTES + off, _MM_HINT_T0);
            const struct kq2_wv v = kq2_unpack_step(unpack, row, u, nb, ts);
            for (int c = 0; c < C; c++) {
                const struct kq2_a *ab = ad + c * nu + u;
                __m512i s = _mm512_setzero_si512();
                for (int g = 0; g < 8; g++)
                    s = _mm512_dpbusd_epi32(s, v.q[g],
                                            _mm512_load_si512((const void *)(ab->q + 64 * g)));
                acc[c] = kq2_finish(acc[c], s, v.ws, v.wm, ab);
            }
        }
        for (int c = 0; c < C; c++)
            ga->y[c * ga->y_stride + j] = _mm512_reduce_add_ps(acc[c]);
    }
}

ALWAYS_INLINE void kq2_gemm(const struct gemm_args *ga, int type, size_t ts,
                            kq2_unpack_fn unpack)
{
    const int64_t nb = ga->k / QK_K;
    if (nb <= 0 || ga->n <= 0 || ga->b <= 0)
        return;
    const int64_t nu = (nb + 1) / 2;
    int64_t act_rows = (int64_t)(KQ_ACT_BYTES / ((size_t)nu * sizeof(struct kq2_a)));
    act_rows = act_rows < KQ_TILE_C ? KQ_TILE_C : act_rows / KQ_TILE_C * KQ_TILE_C;
    const int few = ga->b <= KQ_FEW_ROWS;
    if (act_rows > ga->b || few)
        act_rows = ga->b;
    /* Many rows: all of them rearranged once per thread and call. */
    int hit = 0;
    struct kq_act_cache *cache =
        few ? NULL
            : kq_cache_slot(ga, KQ_LAYOUT_PAIRS,
                            (size_t)ga->b * (size_t)nu * sizeof(struct kq2_a), &hit);
    const size_t wbytes = few ? 0 : (size_t)KQ_TILE_R * (size_t)nu * sizeof(struct kq2_w);
    const size_t abytes = cache ? 0 : (size_t)act_rows * (size_t)nu * sizeof(struct kq2_a);
    _Alignas(64) uint8_t local[KQ_STACK_BYTES];
    const size_t need = (wbytes + abytes + 63) / 64 * 64;
    uint8_t *buf = need <= sizeof local ? local : aligned_alloc(64, need);
    if (!buf) {
        kq_scalar_fallback(ga, type);
        return;
    }
    struct kq2_w *wd = (struct kq2_w *)buf;
    struct kq2_a *ad = (struct kq2_a *)(buf + wbytes);

    if (cache && !hit) {
        for (int64_t i = 0; i < ga->b; i++)
            kq2_prep_row((const block_q8_K *)(ga->x + (size_t)i * ga->x_stride), nb,
                         (struct kq2_a *)cache->buf + i * nu);
        kq_cache_claim(cache, ga);
    }

    for (int64_t i0 = 0; i0 < ga->b; i0 += act_rows) {
        const int64_t nrows = ga->b - i0 < act_rows ? ga->b - i0 : act_rows;
        if (cache)
            ad = (struct kq2_a *)cache->buf + i0 * nu;
        else
            for (int64_t i = 0; i < nrows; i++)
                kq2_prep_row((const block_q8_K *)(ga->x + (size_t)(i0 + i) * ga->x_stride), nb,
                             ad + i * nu);
        if (few) {
            switch (ga->b) {
            case 1: kq2_gemv(ga, ad, nb, ts, unpack, 1); break;
            case 2: kq2_gemv(ga, ad, nb, ts, unpack, 2); break;
            case 3: kq2_gemv(ga, ad, nb, ts, unpack, 3); break;
            case 4: kq2_gemv(ga, ad, nb, ts, unpack, 4); break;
            case 5: kq2_gemv(ga, ad, nb, ts, unpack, 5); break;
            case 6: kq2_gemv(ga, ad, nb, ts, unpack, 6); break;
            case 7: kq2_gemv(ga, ad, nb, ts, unpack, 7); break;
            default: kq2_gemv(ga, ad, nb, ts, unpack, 8); break;
            }
            break;
        }
        for (int64_t j0 = 0; j0 < ga->n; j0 += KQ_TILE_R) {
            const int R = ga->n - j0 < KQ_TILE_R ? (int)(ga->n - j0) : KQ_TILE_R;
            for (int r = 0; r < R; r++) {
                const uint8_t *row = ga->w + (size_t)(j0 + r) * ga->w_stride;
                const uint8_t *next = row + (size_t)KQ_TILE_R * ga->w_stride;
                for (int64_t u = 0; u < nu; u++) {
                    for (size_t off = 0; off < 2 * ts; off += 64)
                        _mm_prefetch((const char *)next + (size_t)(2 * u) * ts + off, _MM_HINT_T1);
                    const struct kq2_wv v = kq2_unpack_step(unpack, row, u, nb, ts);
                    struct kq2_w *o = wd + r * nu + u;
                    for (int g = 0; g < 8; g++)
                        _mm512_store_si512((void *)(o->q + 64 * g), v.q[g]);
                    _mm512_store_ps(o->ws, v.ws);
                    _mm512_store_ps(o->wm, v.wm);
                }
            }
            for (int64_t c0 = 0; c0 < nrows; c0 += KQ_TILE_C) {
                const int C = nrows - c0 < KQ_TILE_C ? (int)(nrows - c0) : KQ_TILE_C;
                kq2_tiles[R - 1][C - 1](wd, ad + c0 * nu, nu,
                                        ga->y + (i0 + c0) * ga->y_stride + j0, ga->y_stride);
            }
        }
    }
    if (buf != local)
        free(buf);
}

static void gemm_q4_K_avx512(const struct gemm_args *a)
{
    kq2_gemm(a, PG_TYPE_Q4_K, sizeof(block_q4_K), kq2_unpack_q4_K);
}

static void gemm_q5_K_avx512(const struct gemm_args *a)
{
    kq2_gemm(a, PG_TYPE_Q5_K, sizeof(block_q5_K), kq2_unpack_q5_K);
}

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
