/*
 * gemm_avx2.c: AVX2 + FMA + F16C kernels for the float weight types and
 * q4_0, q4_1, q5_0, q5_1, q8_0, and the activation converters to q8_0, q8_1,
 * f16 and bf16 (byte-identical to the reference quantizers).
 *
 * Block types take one block per ymm. Nibble types multiply unsigned weight
 * bytes with signed activation bytes (maddubs; no pair can saturate) and take
 * the offset back with maddubs(offset, activations), computed once per
 * activation block; q8_0 uses |w| times x with w's sign. Each of the 8 lanes
 * then holds an exact integer dot of four elements and gets (dw*dx) * isum
 * added in float. A micro-kernel keeps R weight rows x C activation rows in
 * registers; every pair runs the same instruction sequence whatever tile it
 * lands in, so results do not depend on the batch. Where the CPU has
 * AVX-VNNI, single activation rows get the same integers from vpdpbusd.
 */
#include <immintrin.h>
#include <string.h>

#include "base/cpu.h"
#include "ops/kernels.h"
#include "ops/quants.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* 16 ymm registers: 2 weight rows x 4 activation rows of sums plus the
 * unpacked operands just fit; a single activation row goes 4 weight rows
 * at a time. */
#define TILE_R 2
#define TILE_C 4
#define TILE_R1 4
#define ACC_R 4

ALWAYS_INLINE uint16_t load_u16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

ALWAYS_INLINE uint32_t load_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

ALWAYS_INLINE float f16_load(const uint8_t *p) { return _cvtsh_ss(load_u16(p)); }

ALWAYS_INLINE __m256i load_nibbles(const uint8_t *p)
{
    const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    const __m256i t = _mm256_set_m128i(_mm_srli_epi16(v, 4), v);
    return _mm256_and_si256(t, _mm256_set1_epi8(0x0F));
}

/* 0x10 in byte j where bit j of qh is set. */
ALWAYS_INLINE __m256i fifth_bits(uint32_t qh)
{
    const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000LL, 0x0101010101010101LL,
                                            0x0202020202020202LL, 0x0303030303030303LL);
    const __m256i bits = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    __m256i t = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), shuf);
    t = _mm256_cmpeq_epi8(_mm256_and_si256(t, bits), bits);
    return _mm256_and_si256(t, _mm256_set1_epi8(0x10));
}

struct wblk {
    __m256i q; /* unsigned bytes (nibble types) or |w| (q8_0) */
    __m256i s; /* q8_0: the weights themselves, for their signs */
    __m256 d;
    __m256 m;  /* minimum in lane 0 (q4_1, q5_1) */
};

struct xblk {
    __m256i q;
    __m256i corr; /* maddubs(offset, x): the offset's share of each pair sum */
    __m256 d;
    __m256 s;     /* q8_1 block sum in lane 0 */
};

ALWAYS_INLINE size_t w_block_size(int type)
{
    switch (type) {
    case PG_TYPE_Q4_0: return sizeof(block_q4_0);
    case PG_TYPE_Q4_1: return sizeof(block_q4_1);
    case PG_TYPE_Q5_0: return sizeof(block_q5_0);
    case PG_TYPE_Q5_1: return sizeof(block_q5_1);
    default: return sizeof(block_q8_0);
    }
}

ALWAYS_INLINE int has_min(int type) { return type == PG_TYPE_Q4_1 || type == PG_TYPE_Q5_1; }

ALWAYS_INLINE int w_offset(int type)
{
    return type == PG_TYPE_Q4_0 ? 8 : type == PG_TYPE_Q5_0 ? 16 : 0;
}

ALWAYS_INLINE __m256 lane0(float v) { return _mm256_setr_ps(v, 0, 0, 0, 0, 0, 0, 0); }

/* The float step of one pair and block: lane = fma(dw*dx, sum, lane); the
 * minimum term of q4_1 / q5_1 goes to its own chain (lane 0 of mins), added
 * after the lanes, as the reference path keeps it. */
ALWAYS_INLINE void pair_step(int type, __m256 dd, __m256i is, const __m256 *wm, const __m256 *xs,
                             __m256 *acc, __m256 *mins)
{
    *acc = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(is), *acc);
    if (has_min(type))
        *mins = _mm256_fmadd_ps(*wm, *xs, *mins);
}

ALWAYS_INLINE float pair_result(int type, __m256 acc, __m256 mins)
{
    __m128 s = _mm_add_ps(_mm256_extractf128_ps(acc, 1), _mm256_castps256_ps128(acc));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    float r = _mm_cvtss_f32(s);
    if (has_min(type))
        r += _mm256_cvtss_f32(mins);
    return r;
}

ALWAYS_INLINE void load_w(int type, const uint8_t *b, struct wblk *o)
{
    o->d = _mm256_set1_ps(f16_load(b));
    switch (type) {
    case PG_TYPE_Q4_0:
        o->q = load_nibbles(b + 2);
        break;
    case PG_TYPE_Q4_1:
        o->q = load_nibbles(b + 4);
        o->m = lane0(f16_load(b + 2));
        break;
    case PG_TYPE_Q5_0:
        o->q = _mm256_or_si256(load_nibbles(b + 6), fifth_bits(load_u32(b + 2)));
        break;
    case PG_TYPE_Q5_1:
        o->q = _mm256_or_si256(load_nibbles(b + 8), fifth_bits(load_u32(b + 4)));
        o->m = lane0(f16_load(b + 2));
        break;
    default:
        o->s = _mm256_loadu_si256((const __m256i *)(const void *)(b + 2));
        o->q = _mm256_abs_epi8(o->s);
        break;
    }
}

ALWAYS_INLINE void load_x(int type, const uint8_t *b, struct xblk *o)
{
    o->d = _mm256_set1_ps(f16_load(b));
    if (has_min(type)) {
        o->q = _mm256_loadu_si256((const __m256i *)(const void *)(b + 4));
        o->s = lane0(f16_load(b + 2));
    } else {
        o->q = _mm256_loadu_si256((const __m256i *)(const void *)(b + 2));
        if (w_offset(type))
            o->corr = _mm256_maddubs_epi16(_mm256_set1_epi8((char)w_offset(type)), o->q);
    }
}

ALWAYS_INLINE __m256i pair_isum(int type, const struct wblk *w, const struct xblk *x)
{
    __m256i p;
    if (type == PG_TYPE_Q8_0) {
        p = _mm256_maddubs_epi16(w->q, _mm256_sign_epi8(x->q, w->s));
    } else {
        p = _mm256_maddubs_epi16(w->q, x->q);
        if (w_offset(type))
            p = _mm256_sub_epi16(p, x->corr);
    }
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

ALWAYS_INLINE void qtile(int type, int R, int C, const struct gemm_args *a, int64_t r0,
                         int64_t c0)
{
    const size_t wbs = w_block_size(type);
    const size_t xbs = has_min(type) ? sizeof(block_q8_1) : sizeof(block_q8_0);
    const int64_t nb = a->k / 32;
    const uint8_t *wr[ACC_R], *xr[TILE_C];
    __m256 acc[ACC_R][TILE_C], mins[ACC_R][TILE_C];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        wr[r] = a->w + (size_t)(r0 + r) * a->w_stride;
#pragma GCC unroll 4
    for (int c = 0; c < C; c++)
        xr[c] = a->x + (size_t)(c0 + c) * a->x_stride;
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            acc[r][c] = _mm256_setzero_ps();
            mins[r][c] = _mm256_setzero_ps();
        }
    for (int64_t j = 0; j < nb; j++) {
        /* One activation row streams its weight rows once: each row is a
         * short stream the hardware prefetchers pick up late, so the next
         * tile's rows are fetched while this one runs (past the matrix this
         * reads nothing: prefetches never fault). Into L2: fetches of
         * several rows into L1 hold its few miss buffers (one thread read
         * q8_0 at 16 GB/s that way, at 24 into L2). */
        if (C == 1 && (((size_t)j * wbs + wbs) ^ ((size_t)j * wbs)) & 64)
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                _mm_prefetch((const char *)((uintptr_t)wr[r] + (size_t)j * wbs +
                                            (size_t)R * a->w_stride),
                             _MM_HINT_T1);
        struct wblk W[ACC_R];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            load_w(type, wr[r] + (size_t)j * wbs, &W[r]);
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            struct xblk X;
            load_x(type, xr[c] + (size_t)j * xbs, &X);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                pair_step(type, _mm256_mul_ps(W[r].d, X.d), pair_isum(type, &W[r], &X), &W[r].m,
                          &X.s, &acc[r][c], &mins[r][c]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            a->y[(c0 + c) * a->y_stride + r0 + r] = pair_result(type, acc[r][c], mins[r][c]);
}

/* Full 2 x 4 tiles, then leftover activation rows one at a time against 4
 * weight rows at a time; every pair is computed the same way in any tile. */
#define GEMM_TILED(name, tile_fn, type)                                                     \
    static void name(const struct gemm_args *a)                                             \
    {                                                                                       \
        const int64_t bc = a->b / TILE_C * TILE_C;                                          \
        const int64_t nr = a->n / TILE_R * TILE_R, nr1 = a->n / TILE_R1 * TILE_R1;          \
        for (int64_t c = 0; c < bc; c += TILE_C) {                                          \
            for (int64_t r = 0; r < nr; r += TILE_R)                                        \
                tile_fn(type, TILE_R, TILE_C, a, r, c);                                     \
            for (int64_t r = nr; r < a->n; r++)                                             \
                tile_fn(type, 1, TILE_C, a, r, c);                                          \
        }                                                                                   \
        for (int64_t c = bc; c < a->b; c++) {                                               \
            for (int64_t r = 0; r < nr1; r += TILE_R1)                                      \
                tile_fn(type, TILE_R1, 1, a, r, c);                                         \
            for (int64_t r = nr1; r < a->n; r++)                                            \
                tile_fn(type, 1, 1, a, r, c);                                               \
        }                                                                                   \
    }

GEMM_TILED(gemm_q4_0_avx2, qtile, PG_TYPE_Q4_0)
GEMM_TILED(gemm_q4_1_avx2, qtile, PG_TYPE_Q4_1)
GEMM_TILED(gemm_q5_0_avx2, qtile, PG_TYPE_Q5_0)
GEMM_TILED(gemm_q5_1_avx2, qtile, PG_TYPE_Q5_1)
GEMM_TILED(gemm_q8_0_avx2, qtile, PG_TYPE_Q8_0)

/* ---- leftover activation rows (all of them at b = 1) with AVX-VNNI ----
 * Where the CPU has AVX-VNNI, each lane's integer sum comes from one
 * vpdpbusd of the unsigned weights (q8_0: w + 128) with the activation
 * bytes, started at minus the offset's share (offset times the sum of the
 * lane's four activations, once per block for all the tile's rows). Those
 * are the integers pair_isum gives and the float step is qtile's, so the
 * results are bitwise the same as the maddubs path. */

#define VNNI_INLINE static inline __attribute__((always_inline, target("avxvnni")))

ALWAYS_INLINE int vnni_offset(int type) { return type == PG_TYPE_Q8_0 ? 128 : w_offset(type); }

VNNI_INLINE void qtile1_vnni(int type, int R, const struct gemm_args *a, int64_t r0, int64_t c)
{
    const size_t wbs = w_block_size(type);
    const size_t xbs = has_min(type) ? sizeof(block_q8_1) : sizeof(block_q8_0);
    const int64_t nb = a->k / 32;
    const uint8_t *wr[ACC_R];
    const uint8_t *xr = a->x + (size_t)c * a->x_stride;
    __m256 acc[ACC_R], mins[ACC_R];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        wr[r] = a->w + (size_t)(r0 + r) * a->w_stride;
        acc[r] = _mm256_setzero_ps();
        mins[r] = _mm256_setzero_ps();
    }
    for (int64_t j = 0; j < nb; j++) {
        const size_t off = (size_t)j * wbs;
        /* the next tile's rows, as in qtile */
        if (((off + wbs) ^ off) & 64)
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                _mm_prefetch((const char *)((uintptr_t)wr[r] + off + (size_t)R * a->w_stride),
                             _MM_HINT_T1);
        struct xblk X;
        load_x(type, xr + (size_t)j * xbs, &X);
        __m256i init = _mm256_setzero_si256();
        if (vnni_offset(type))
            init = _mm256_sub_epi32(
                init, _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(),
                                              _mm256_set1_epi8((char)vnni_offset(type)), X.q));
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            struct wblk W;
            __m256i q;
            if (type == PG_TYPE_Q8_0) {
                W.d = _mm256_set1_ps(f16_load(wr[r] + off));
                q = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)(wr[r] + off + 2)),
                                     _mm256_set1_epi8((char)0x80));
            } else {
                load_w(type, wr[r] + off, &W);
                q = W.q;
            }
            const __m256i is = _mm256_dpbusd_avx_epi32(init, q, X.q);
            pair_step(type, _mm256_mul_ps(W.d, X.d), is, &W.m, &X.s, &acc[r], &mins[r]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        a->y[c * a->y_stride + r0 + r] = pair_result(type, acc[r], mins[r]);
    }
}

/* GEMM_TILED with the leftover activation rows through qtile1_vnni. */
#define GEMM_TILED_VNNI(name, type)                                                         \
    __attribute__((target("avxvnni"))) static void name(const struct gemm_args *a)          \
    {                                                                                       \
        const int64_t bc = a->b / TILE_C * TILE_C;                                          \
        const int64_t nr = a->n / TILE_R * TILE_R, nr1 = a->n / TILE_R1 * TILE_R1;          \
        for (int64_t c = 0; c < bc; c += TILE_C) {                                          \
            for (int64_t r = 0; r < nr; r += TILE_R)                                        \
                qtile(type, TILE_R, TILE_C, a, r, c);                                       \
            for (int64_t r = nr; r < a->n; r++)                                             \
                qtile(type, 1, TILE_C, a, r, c);                                            \
        }                                                                                   \
        for (int64_t c = bc; c < a->b; c++) {                                               \
            for (int64_t r = 0; r < nr1; r += TILE_R1)                                      \
                qtile1_vnni(type, TILE_R1, a, r, c);                                        \
            for (int64_t r = nr1; r < a->n; r++)                                            \
                qtile1_vnni(type, 1, a, r, c);                                              \
        }                                                                                   \
    }

GEMM_TILED_VNNI(gemm_q4_0_avx2_vnni, PG_TYPE_Q4_0)
GEMM_TILED_VNNI(gemm_q4_1_avx2_vnni, PG_TYPE_Q4_1)
GEMM_TILED_VNNI(gemm_q5_0_avx2_vnni, PG_TYPE_Q5_0)
GEMM_TILED_VNNI(gemm_q5_1_avx2_vnni, PG_TYPE_Q5_1)
GEMM_TILED_VNNI(gemm_q8_0_avx2_vnni, PG_TYPE_Q8_0)

/* ---- float kernels: 8 lanes keyed by element index mod 8 ---- */

ALWAYS_INLINE __m256 load_float8(int type, const uint8_t *p)
{
    switch (type) {
    case PG_TYPE_F32:
        return _mm256_loadu_ps((const float *)(const void *)p);
    case PG_TYPE_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
    default:
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)p)), 16));
    }
}

ALWAYS_INLINE size_t float_size(int type) { return type == PG_TYPE_F32 ? 4 : 2; }

ALWAYS_INLINE void ftile(int type, int R, int C, const struct gemm_args *a, int64_t r0,
                         int64_t c0)
{
    const size_t es = float_size(type);
    const uint8_t *wr[ACC_R], *xr[TILE_C];
    __m256 acc[ACC_R][TILE_C];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        wr[r] = a->w + (size_t)(r0 + r) * a->w_stride;
#pragma GCC unroll 4
    for (int c = 0; c < C; c++)
        xr[c] = a->x + (size_t)(c0 + c) * a->x_stride;
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            acc[r][c] = _mm256_setzero_ps();
    const int64_t k8 = a->k / 8 * 8;
    for (int64_t kk = 0; kk < k8; kk += 8) {
        __m256 W[ACC_R];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            W[r] = load_float8(type, wr[r] + (size_t)kk * es);
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const __m256 x = load_float8(type, xr[c] + (size_t)kk * es);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                acc[r][c] = _mm256_fmadd_ps(W[r], x, acc[r][c]);
        }
    }
    if (k8 < a->k) {
        /* The last few elements, zero-padded to a full vector. */
        const size_t tail = (size_t)(a->k - k8) * es;
        __m256 W[ACC_R];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            uint8_t buf[32] = {0};
            memcpy(buf, wr[r] + (size_t)k8 * es, tail);
            W[r] = load_float8(type, buf);
        }
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            uint8_t buf[32] = {0};
            memcpy(buf, xr[c] + (size_t)k8 * es, tail);
            const __m256 x = load_float8(type, buf);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                acc[r][c] = _mm256_fmadd_ps(W[r], x, acc[r][c]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const __m256 v = acc[r][c];
            __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
            s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            s = _mm_add_ss(s, _mm_movehdup_ps(s));
            a->y[(c0 + c) * a->y_stride + r0 + r] = _mm_cvtss_f32(s);
        }
}

GEMM_TILED(gemm_f32_avx2, ftile, PG_TYPE_F32)
GEMM_TILED(gemm_f16_avx2, ftile, PG_TYPE_F16)
GEMM_TILED(gemm_bf16_avx2, ftile, PG_TYPE_BF16)

/* ---- activation converters ---- */

/* 8 floats to the nearest integer, ties to even (fixed here, not taken from
 * the rounding mode in force). */
ALWAYS_INLINE __m256i round_even_epi32(__m256 v)
{
    return _mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

ALWAYS_INLINE float quant_block_q8(const float *x, int8_t *qs, int *sum)
{
    const __m256 sign_bit = _mm256_set1_ps(-0.0f);
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int i = 0; i < 4; i++) {
        v[i] = _mm256_loadu_ps(x + 8 * i);
        amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign_bit, v[i]));
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    /* As quantize_row_q8_0_act: 127/max in one division, ties to even. */
    const float amax_s = _mm_cvtss_f32(m);
    const float d = amax_s / 127;
    const float id = amax_s != 0.0f ? 127.0f / amax_s : 0.0f;
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int i = 0; i < 4; i++)
        q[i] = round_even_epi32(_mm256_mul_ps(v[i], vid));
    const __m256i s32 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    *sum = _mm_cvtsi128_si32(s);
    /* The packs interleave 128-bit lanes; the permute puts bytes back in order. */
    const __m256i p16a = _mm256_packs_epi32(q[0], q[1]);
    const __m256i p16b = _mm256_packs_epi32(q[2], q[3]);
    const __m256i p8 = _mm256_packs_epi16(p16a, p16b);
    const __m256i ordered = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)(void *)qs, ordered);
    return d;
}

static void quantize_row_q8_0_avx2(const float *x, void *y, int64_t n)
{
    block_q8_0 *out = y;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int sum;
        const float d = quant_block_q8(x + i * QK8_0, out[i].qs, &sum);
        out[i].d = f32_to_f16(d);
    }
}

static void quantize_row_q8_1_avx2(const float *x, void *y, int64_t n)
{
    block_q8_1 *out = y;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        int sum;
        const float d = quant_block_q8(x + i * QK8_1, out[i].qs, &sum);
        out[i].d = f32_to_f16(d);
        out[i].s = f32_to_f16((float)sum * d);
    }
}

static void quantize_row_f16_avx2(const float *x, void *y, int64_t n)
{
    uint16_t *out = y;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(void *)(out + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        out[i] = f32_to_f16(x[i]);
}

ALWAYS_INLINE __m256i bf16_round8(__m256 v)
{
    const __m256i u = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i r = _mm256_srli_epi32(
        _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
    /* NaN: signed compare is fine, both sides are below 2^31. */
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                           _mm256_set1_epi32(0x7f800000));
    const __m256i q = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(64));
    return _mm256_blendv_epi8(r, q, nan);
}

static void quantize_row_bf16_avx2(const float *x, void *y, int64_t n)
{
    uint16_t *out = y;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i a = bf16_round8(_mm256_loadu_ps(x + i));
        const __m256i b = bf16_round8(_mm256_loadu_ps(x + i + 8));
        const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), _MM_SHUFFLE(3, 1, 2, 0));
        _mm256_storeu_si256((__m256i *)(void *)(out + i), p);
    }
    for (; i < n; i++)
        out[i] = f32_to_bf16(x[i]);
}

void kernels_avx2_init(struct kernel_table *t)
{
    static const struct {
        enum pg_type type;
        gemm_fn fn;
    } gemms[] = {
        {PG_TYPE_F32, gemm_f32_avx2},   {PG_TYPE_F16, gemm_f16_avx2},
        {PG_TYPE_BF16, gemm_bf16_avx2}, {PG_TYPE_Q4_0, gemm_q4_0_avx2},
        {PG_TYPE_Q4_1, gemm_q4_1_avx2}, {PG_TYPE_Q5_0, gemm_q5_0_avx2},
        {PG_TYPE_Q5_1, gemm_q5_1_avx2}, {PG_TYPE_Q8_0, gemm_q8_0_avx2},
    };
    for (size_t i = 0; i < sizeof gemms / sizeof gemms[0]; i++) {
        t->gemm[gemms[i].type] = gemms[i].fn;
        t->isa[gemms[i].type] = "avx2";
    }
    if (cpu_features_get()->avxvnni) {
        t->gemm[PG_TYPE_Q4_0] = gemm_q4_0_avx2_vnni;
        t->gemm[PG_TYPE_Q4_1] = gemm_q4_1_avx2_vnni;
        t->gemm[PG_TYPE_Q5_0] = gemm_q5_0_avx2_vnni;
        t->gemm[PG_TYPE_Q5_1] = gemm_q5_1_avx2_vnni;
        t->gemm[PG_TYPE_Q8_0] = gemm_q8_0_avx2_vnni;
    }
    t->act_quant[PG_TYPE_F16] = quantize_row_f16_avx2;
    t->act_quant[PG_TYPE_BF16] = quantize_row_bf16_avx2;
    t->act_quant[PG_TYPE_Q8_0] = quantize_row_q8_0_avx2;
    t->act_quant[PG_TYPE_Q8_1] = quantize_row_q8_1_avx2;
}
