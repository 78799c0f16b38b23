/*
 * gemm_avx512.c: AVX-512 (F/BW/VL/DQ + VNNI) kernels for the float weight
 * types and q4_0, q4_1, q5_0, q5_1, q8_0, and the activation converters to
 * q8_0, q8_1, f16 and bf16 (byte-identical to the reference quantizers).
 *
 * Block types take sixteen weight rows at a time, one per zmm lane, so
 * vpdpbusd with broadcast activation bytes gives every row's exact integer
 * block dot at once and one float multiply-add per block finishes it (see
 * the integer section). Float types keep R weight rows x C activation rows
 * of 16-lane sums in registers.
 *
 * Every (weight row, activation row) pair is computed by the same
 * instruction sequence whatever tile or lane it lands in (only k decides
 * the sequence), which is what keeps results independent of the batch.
 */
#include <immintrin.h>
#include <string.h>

#include "ops/kernels.h"
#include "ops/quants.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* Float tile; edges use 1-row and 1-column versions of the same code. */
#define TILE_R 4
#define TILE_C 4

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

/* ---- integer block kernels ----
 * Sixteen weight rows are one "panel": zmm lane r belongs to row r, and for
 * each block the panel holds 8 vectors, vector t carrying elements 4t..4t+3
 * of every row as unsigned bytes. vpdpbusd against activation dwords
 * broadcast to all lanes then yields each row's exact integer block dot in
 * its own lane, and the float step is per lane:
 *     acc = fma(dw * dx, (float)isum, acc)    (then fma(m, s, acc) for q4_1/q5_1)
 * block after block, exactly as for any other row or batch. For types with
 * an offset (q4_0 +8, q5_0 +16, q8_0 +128) the integer sums start at
 * -offset * (sum of the activation block), prepared once per activation
 * block for all panels. */

#define PANEL_LANES 16
#define SEG_BLOCKS 32 /* blocks unpacked at a time (a 20 KB buffer) */
#define ACT_GROUP 8   /* activation rows per pass over a segment */
#define ACT_CHUNK 64  /* activation rows whose block info is prepared at once */
#define MM_PREFETCH_AHEAD 512 /* bytes ahead in each weight row */

struct panel_block {
    __m512i q[8]; /* unsigned weights, vector t = elements 4t..4t+3 */
    __m512 d;     /* row scales */
    __m512 m;     /* row minimums (q4_1, q5_1) */
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

/* log2 of the weight offset, 0 for none. */
ALWAYS_INLINE int offset_shift(int type)
{
    switch (type) {
    case PG_TYPE_Q4_0: return 3;
    case PG_TYPE_Q5_0: return 4;
    case PG_TYPE_Q8_0: return 7;
    default: return 0;
    }
}

/* The low / high f16 of each dword as floats. */
ALWAYS_INLINE __m512 f16_low(__m512i v) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v)); }
ALWAYS_INLINE __m512 f16_high(__m512i v)
{
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(v, 16)));
}

/* 0x10 in byte i of a dword where bit i of the index's low 4 bits is set. */
ALWAYS_INLINE __m512i fifth_bit_lut(void)
{
    return _mm512_set_epi32(0x10101010, 0x10101000, 0x10100010, 0x10100000,
                            0x10001010, 0x10001000, 0x10000010, 0x10000000,
                            0x00101010, 0x00101000, 0x00100010, 0x00100000,
                            0x00001010, 0x00001000, 0x00000010, 0x00000000);
}

/* Where the panel's 16 rows are: either evenly spaced (row 4L+i at
 * b[L] + i*s, which x86 addressing takes without spare registers) or, for
 * matrices of fewer rows than lanes, one pointer per lane. */
struct panel_rows {
    const uint8_t *b[4];
    size_t s, s3;
    const uint8_t *p[16];
};

ALWAYS_INLINE const uint8_t *row_at(const struct panel_rows *pr, int strided, int r)
{
    if (!strided)
        return pr->p[r];
    const uint8_t *b = pr->b[r >> 2];
    switch (r & 3) {
    case 0: return b;
    case 1: return b + pr->s;
    case 2: return b + 2 * pr->s;
    default: return b + pr->s3;
    }
}

/* 16 bytes at rp[r] + off for the 16 rows, transposed: out[t] lane r holds
 * dword t of row r. Rows are loaded four to a zmm (row 4L+i in 128-bit lane
 * L of z[i]) so two rounds of unpacks leave lane order equal to row order. */
ALWAYS_INLINE void load_transpose_16x4(const struct panel_rows *pr, int strided, size_t off,
                                       __m512i out[4])
{
    __m512i z[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(const void *)(row_at(pr, strided, i) + off)));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(row_at(pr, strided, 4 + i) + off)), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(row_at(pr, strided, 8 + i) + off)), 2);
        z[i] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(row_at(pr, strided, 12 + i) + off)), 3);
    }
    const __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]), t1 = _mm512_unpackhi_epi32(z[0], z[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]), t3 = _mm512_unpackhi_epi32(z[2], z[3]);
    out[0] = _mm512_unpacklo_epi64(t0, t2);
    out[1] = _mm512_unpackhi_epi64(t0, t2);
    out[2] = _mm512_unpacklo_epi64(t1, t3);
    out[3] = _mm512_unpackhi_epi64(t1, t3);
}

/* The dword at rp[r] + off for the 16 rows (dword 0 of the transpose
 * above; reads 16 bytes per row). Gathers are slower on some cores. */
ALWAYS_INLINE __m512i load_dwords_16(const struct panel_rows *pr, int strided, size_t off)
{
    __m512i z[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(const void *)(row_at(pr, strided, i) + off)));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(row_at(pr, strided, 4 + i) + off)), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(row_at(pr, strided, 8 + i) + off)), 2);
        z[i] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(row_at(pr, strided, 12 + i) + off)), 3);
    }
    return _mm512_unpacklo_epi64(_mm512_unpacklo_epi32(z[0], z[1]), _mm512_unpacklo_epi32(z[2], z[3]));
}

/* Unpacks the block at byte offset off of the panel's 16 rows (lanes past
 * the last row read a real row and are never stored). */
ALWAYS_INLINE void panel_unpack(int type, const struct panel_rows *pr, int strided, size_t off,
                                struct panel_block *o)
{
    const __m512i nib = _mm512_set1_epi8(0x0F);
    const __m512i head = load_dwords_16(pr, strided, off); /* d, then m or other bytes */
    o->d = f16_low(head);
    if (has_min(type))
        o->m = f16_high(head);
    if (type == PG_TYPE_Q8_0) {
        load_transpose_16x4(pr, strided, off + 2, o->q);
        load_transpose_16x4(pr, strided, off + 18, o->q + 4);
#pragma GCC unroll 8
        for (int t = 0; t < 8; t++) /* w + 128 */
            o->q[t] = _mm512_xor_si512(o->q[t], _mm512_set1_epi8((char)0x80));
        return;
    }
    const int qs = type == PG_TYPE_Q4_0 ? 2 : type == PG_TYPE_Q4_1 ? 4 : type == PG_TYPE_Q5_0 ? 6 : 8;
    __m512i g[4];
    load_transpose_16x4(pr, strided, off + (size_t)qs, g);
#pragma GCC unroll 4
    for (int t = 0; t < 4; t++) {
        o->q[t] = _mm512_and_si512(g[t], nib);
        o->q[t + 4] = _mm512_and_si512(_mm512_srli_epi32(g[t], 4), nib);
    }
    if (type == PG_TYPE_Q5_0 || type == PG_TYPE_Q5_1) {
        const __m512i qh = load_dwords_16(pr, strided, off + (type == PG_TYPE_Q5_0 ? 2 : 4));
        const __m512i lut = fifth_bit_lut();
#pragma GCC unroll 8
        for (int t = 0; t < 8; t++) /* vpermd reads the low 4 bits of each index */
            o->q[t] = _mm512_or_si512(o->q[t],
                                      _mm512_permutexvar_epi32(_mm512_srli_epi32(qh, 4 * t), lut));
    }
}

/* What the float step needs of each activation block, computed once per
 * block and shared by every panel: offset * (sum of its bytes), its scale,
 * and (q8_1) its block sum. */
struct act_info {
    int32_t corr[ACT_CHUNK][SEG_BLOCKS];
    float d[ACT_CHUNK][SEG_BLOCKS];
    float s[ACT_CHUNK][SEG_BLOCKS];
};

ALWAYS_INLINE int32_t sum_bytes32(const uint8_t *p)
{
    /* sad against zero sums unsigned bytes: flip signs to x + 128 first. */
    const __m256i v = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)p),
                                       _mm256_set1_epi8((char)0x80));
    const __m256i s = _mm256_sad_epu8(v, _mm256_setzero_si256());
    const __m128i h = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    return (int32_t)(_mm_cvtsi128_si64(h) + _mm_extract_epi64(h, 1)) - 32 * 128;
}

ALWAYS_INLINE void act_info_fill(int type, const uint8_t *xb, int32_t *corr, float *d, float *s)
{
    const int qoff = has_min(type) ? 4 : 2;
    *corr = offset_shift(type) ? sum_bytes32(xb + qoff) * (1 << offset_shift(type)) : 0;
    *d = _cvtsh_ss(load_u16(xb));
    if (has_min(type))
        *s = _cvtsh_ss(load_u16(xb + 2));
}

/* C activation rows against nblk blocks of a panel; acc holds each
 * activation row's running per-row sums, corr/dx/sx its prepared block
 * info (struct act_info rows). The activation rows go through the 8
 * vpdpbusd steps side by side, so their chains overlap. */
ALWAYS_INLINE void panel_pass(int type, int C, const struct panel_block *pb, int64_t nblk,
                              const uint8_t *const *xr, const int32_t (*corr)[SEG_BLOCKS],
                              const float (*dx)[SEG_BLOCKS], const float (*sx)[SEG_BLOCKS],
                              __m512 *acc)
{
    const size_t xbs = has_min(type) ? sizeof(block_q8_1) : sizeof(block_q8_0);
    const int qoff = has_min(type) ? 4 : 2;
    for (int64_t j = 0; j < nblk; j++) {
        const struct panel_block *p = pb + j;
        __m512i is[ACT_GROUP], is2[ACT_GROUP];
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) {
            is[c] = _mm512_set1_epi32(-corr[c][j]);
            is2[c] = _mm512_setzero_si512();
        }
#pragma GCC unroll 8
        for (int t = 0; t < 8; t++) {
            const __m512i q = p->q[t];
#pragma GCC unroll 8
            for (int c = 0; c < C; c++) {
                const __m512i xv = _mm512_set1_epi32((int)load_u32(xr[c] + (size_t)j * xbs + qoff + 4 * t));
                /* One activation row alone gets two chains (the sums are exact
                 * integers, so splitting them changes nothing). */
                if (C < 4 && (t & 1))
                    is2[c] = _mm512_dpbusd_epi32(is2[c], q, xv);
                else
                    is[c] = _mm512_dpbusd_epi32(is[c], q, xv);
            }
        }
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) {
            const __m512i v = C < 4 ? _mm512_add_epi32(is[c], is2[c]) : is[c];
            acc[c] = _mm512_fmadd_ps(_mm512_mul_ps(p->d, _mm512_set1_ps(dx[c][j])),
                                     _mm512_cvtepi32_ps(v), acc[c]);
            if (has_min(type))
                acc[c] = _mm512_fmadd_ps(p->m, _mm512_set1_ps(sx[c][j]), acc[c]);
        }
    }
}

ALWAYS_INLINE void panel_group(int type, int C, const struct gemm_args *a, int64_t r0,
                               __mmask16 out_rows, int64_t c0, const struct act_info *ai,
                               int64_t ci, const struct panel_block *pb, int64_t j0, int64_t nblk)
{
    const size_t xbs = has_min(type) ? sizeof(block_q8_1) : sizeof(block_q8_0);
    const uint8_t *xr[ACT_GROUP];
    __m512 acc[ACT_GROUP];
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) {
        xr[c] = a->x + (size_t)(c0 + c) * a->x_stride + (size_t)j0 * xbs;
        /* Later segments continue from the sums stored in y. */
        acc[c] = j0 == 0 ? _mm512_setzero_ps()
                         : _mm512_maskz_loadu_ps(out_rows, a->y + (c0 + c) * a->y_stride + r0);
    }
    panel_pass(type, C, pb, nblk, xr, ai->corr + ci, ai->d + ci, ai->s + ci, acc);
#pragma GCC unroll 8
    for (int c = 0; c < C; c++)
        _mm512_mask_storeu_ps(a->y + (c0 + c) * a->y_stride + r0, out_rows, acc[c]);
}

ALWAYS_INLINE void prefetch_rows(const struct panel_rows *pr, int strided, size_t off)
{
    /* Sixteen rows at once are more streams than the hardware prefetchers
     * follow well. */
#pragma GCC unroll 16
    for (int r = 0; r < PANEL_LANES; r++)
        _mm_prefetch((const char *)(row_at(pr, strided, r) + off + MM_PREFETCH_AHEAD), _MM_HINT_T0);
}

/* One activation row, two blocks at a time, reading each row straight: the
 * 16 rows' exact integer block sums come from one vpdpbusd per row (q8_0;
 * the 4-bit types take two rows per zmm, rowwise_sums_q4) and a transposing
 * add tree, instead of transposing the weights first. The sums
 * are the same integers and the float step below is panel_pass's, so every
 * result is bitwise what the transposed path gives. Weights of a block pair
 * sit in a zmm as [j | j+1] (q8_0) or [lo j | lo j+1 | hi j | hi j+1] (4-bit);
 * the activations are arranged to match once per pair for all 16 rows. */
ALWAYS_INLINE int rowwise_type(int type)
{
    return type == PG_TYPE_Q4_0 || type == PG_TYPE_Q4_1 || type == PG_TYPE_Q8_0;
}

ALWAYS_INLINE __m512i rowwise_weights(int type, const uint8_t *w, size_t wbs)
{
    if (type == PG_TYPE_Q8_0) {
        const __m512i v = _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)(w + 2))),
            _mm256_loadu_si256((const __m256i *)(const void *)(w + wbs + 2)), 1);
        return _mm512_xor_si512(v, _mm512_set1_epi8((char)0x80));
    }
    const size_t qo = type == PG_TYPE_Q4_0 ? 2 : 4;
    const __m256i v = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(w + qo))),
        _mm_loadu_si128((const __m128i *)(const void *)(w + wbs + qo)), 1);
    const __m256i nib = _mm256_set1_epi8(0x0F);
    const __m256i lo = _mm256_and_si256(v, nib);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

ALWAYS_INLINE __m512i rowwise_acts(int type, const uint8_t *xb, size_t xbs)
{
    const size_t qo = type == PG_TYPE_Q4_1 ? 4 : 2;
    const __m256i x0 = _mm256_loadu_si256((const __m256i *)(const void *)(xb + qo));
    const __m256i x1 = _mm256_loadu_si256((const __m256i *)(const void *)(xb + xbs + qo));
    const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(x0), x1, 1);
    if (type == PG_TYPE_Q8_0)
        return v;
    /* [x0 lo16, x0 hi16, x1 lo16, x1 hi16] -> [x0 lo, x1 lo, x0 hi, x1 hi] */
    return _mm512_shuffle_i64x2(v, v, 0xD8);
}

/* Sums of lane groups for 16 rows: p[r] holds row r's 16 partial sums; out0
 * gets each row's sum for block j, out1 for block j+1. */
ALWAYS_INLINE void rowwise_reduce(int type, const __m512i p[16], __m512i *out0, __m512i *out1)
{
    __m512i t[8], u[4];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        t[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(p[2 * i], p[2 * i + 1]),
                                _mm512_unpackhi_epi32(p[2 * i], p[2 * i + 1]));
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        u[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(t[2 * i], t[2 * i + 1]),
                                _mm512_unpackhi_epi64(t[2 * i], t[2 * i + 1]));
    /* 128-bit chunk c of u[i] now holds rows 4i..4i+3 summed over chunk c. */
    __m512i w1, w2;
    if (type == PG_TYPE_Q8_0) { /* chunks 0,1: block j; 2,3: block j+1 */
        w1 = _mm512_add_epi32(_mm512_shuffle_i32x4(u[0], u[1], 0x88), _mm512_shuffle_i32x4(u[0], u[1], 0xDD));
        w2 = _mm512_add_epi32(_mm512_shuffle_i32x4(u[2], u[3], 0x88), _mm512_shuffle_i32x4(u[2], u[3], 0xDD));
    } else { /* chunks 0,2: block j; 1,3: block j+1 */
        w1 = _mm512_add_epi32(_mm512_shuffle_i32x4(u[0], u[1], 0x44), _mm512_shuffle_i32x4(u[0], u[1], 0xEE));
        w2 = _mm512_add_epi32(_mm512_shuffle_i32x4(u[2], u[3], 0x44), _mm512_shuffle_i32x4(u[2], u[3], 0xEE));
    }
    /* w1: [j rows 0-3, j+1 rows 0-3, j rows 4-7, j+1 rows 4-7]; w2 likewise for 8-15. */
    *out0 = _mm512_shuffle_i32x4(w1, w2, 0x88);
    *out1 = _mm512_shuffle_i32x4(w1, w2, 0xDD);
}

ALWAYS_INLINE __m128i load_16(const uint8_t *p)
{
    return _mm_loadu_si128((const __m128i *)(const void *)p);
}

/* The 4-bit types' exact block sums for 16 rows, two rows per zmm: [row r
 * block j | j+1 | row r+1 block j | j+1], low nibbles against the blocks'
 * first 16 activations and high nibbles against the last 16, so each 128-bit
 * chunk sums one (row, block) in four lanes. Half the unpacking of one row
 * per zmm, and a shorter add tree. */
ALWAYS_INLINE void rowwise_sums_q4(int type, int strided, const struct panel_rows *pr, size_t off,
                                   size_t wbs, const uint8_t *xb, size_t xbs, __m512i *out0,
                                   __m512i *out1)
{
    const size_t qo = type == PG_TYPE_Q4_0 ? 2 : 4;
    const __m256i x0 = _mm256_loadu_si256((const __m256i *)(const void *)(xb + qo));
    const __m256i x1 = _mm256_loadu_si256((const __m256i *)(const void *)(xb + xbs + qo));
    /* [x0 lo16, x1 lo16] twice, and the same for the high 16. */
    const __m256i xl = _mm256_permute2x128_si256(x0, x1, 0x20);
    const __m256i xh = _mm256_permute2x128_si256(x0, x1, 0x31);
    const __m512i xlo = _mm512_inserti64x4(_mm512_castsi256_si512(xl), xl, 1);
    const __m512i xhi = _mm512_inserti64x4(_mm512_castsi256_si512(xh), xh, 1);
    const __m512i nib = _mm512_set1_epi8(0x0F);
    __m512i p[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        const uint8_t *w0 = row_at(pr, strided, 2 * i) + off;
        const uint8_t *w1 = row_at(pr, strided, 2 * i + 1) + off;
        _mm_prefetch((const char *)(w0 + MM_PREFETCH_AHEAD), _MM_HINT_T0);
        _mm_prefetch((const char *)(w1 + MM_PREFETCH_AHEAD), _MM_HINT_T0);
        __m512i v = _mm512_castsi128_si512(load_16(w0 + qo));
        v = _mm512_inserti32x4(v, load_16(w0 + wbs + qo), 1);
        v = _mm512_inserti32x4(v, load_16(w1 + qo), 2);
        v = _mm512_inserti32x4(v, load_16(w1 + wbs + qo), 3);
        const __m512i lo = _mm512_and_si512(v, nib);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
        p[i] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xlo), hi, xhi);
    }
    /* Chunk c of p[i] is row 2i + c / 2, block j + c % 2. Two rounds of
     * unpack-and-add leave chunk c, lane q of u[m] the sum for p[4m + q]. */
    __m512i t[4], u[2];
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++)
        t[k] = _mm512_add_epi32(_mm512_unpacklo_epi32(p[2 * k], p[2 * k + 1]),
                                _mm512_unpackhi_epi32(p[2 * k], p[2 * k + 1]));
#pragma GCC unroll 2
    for (int m = 0; m < 2; m++)
        u[m] = _mm512_add_epi32(_mm512_unpacklo_epi64(t[2 * m], t[2 * m + 1]),
                                _mm512_unpackhi_epi64(t[2 * m], t[2 * m + 1]));
    /* Row R = 8m + 2q + c / 2 is lane 16m + 4c + q of the pair (u[0], u[1]). */
    *out0 = _mm512_permutex2var_epi32(
        u[0], _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 16, 24, 17, 25, 18, 26, 19, 27), u[1]);
    *out1 = _mm512_permutex2var_epi32(
        u[0], _mm512_setr_epi32(4, 12, 5, 13, 6, 14, 7, 15, 20, 28, 21, 29, 22, 30, 23, 31), u[1]);
}

ALWAYS_INLINE void rowwise_pair(int type, int strided, const struct panel_rows *pr, size_t off,
                                size_t wbs, const uint8_t *xb, size_t xbs, int32_t corr0,
                                int32_t corr1, float dx0, float dx1, float sx0, float sx1,
                                __m512 *acc)
{
    /* Scales (and minimums) of the 16 rows, as the transposed path reads them. */
    const __m512i head0 = load_dwords_16(pr, strided, off);
    const __m512i head1 = load_dwords_16(pr, strided, off + wbs);
    __m512i s0, s1;
    if (type == PG_TYPE_Q8_0) {
        const __m512i xv = rowwise_acts(type, xb, xbs);
        __m512i p[16];
#pragma GCC unroll 16
        for (int r = 0; r < PANEL_LANES; r++) {
            const uint8_t *w = row_at(pr, strided, r) + off;
            _mm_prefetch((const char *)(w + MM_PREFETCH_AHEAD), _MM_HINT_T0);
            p[r] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), rowwise_weights(type, w, wbs), xv);
        }
        rowwise_reduce(type, p, &s0, &s1);
    } else {
        rowwise_sums_q4(type, strided, pr, off, wbs, xb, xbs, &s0, &s1);
    }
    s0 = _mm512_sub_epi32(s0, _mm512_set1_epi32(corr0));
    s1 = _mm512_sub_epi32(s1, _mm512_set1_epi32(corr1));
    *acc = _mm512_fmadd_ps(_mm512_mul_ps(f16_low(head0), _mm512_set1_ps(dx0)), _mm512_cvtepi32_ps(s0), *acc);
    if (has_min(type))
        *acc = _mm512_fmadd_ps(f16_high(head0), _mm512_set1_ps(sx0), *acc);
    *acc = _mm512_fmadd_ps(_mm512_mul_ps(f16_low(head1), _mm512_set1_ps(dx1)), _mm512_cvtepi32_ps(s1), *acc);
    if (has_min(type))
        *acc = _mm512_fmadd_ps(f16_high(head1), _mm512_set1_ps(sx1), *acc);
}

/* One activation row: no reuse, so each block is unpacked into registers
 * and used at once (the same arithmetic as the batched path). */
ALWAYS_INLINE void panel_run_one(int type, int strided, const struct gemm_args *a,
                                 const struct panel_rows *pr, int64_t base, __mmask16 rows_out,
                                 const struct act_info *ai)
{
    const size_t wbs = w_block_size(type);
    const size_t xbs = has_min(type) ? sizeof(block_q8_1) : sizeof(block_q8_0);
    const int64_t nb = a->k / 32;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t j = 0; j < nb;) {
        const size_t off = (size_t)j * wbs;
        if (ai && rowwise_type(type) && j + 1 < nb) {
            const int32_t *corr = &ai->corr[0][0];
            const float *dx = &ai->d[0][0], *sx = &ai->s[0][0];
            rowwise_pair(type, strided, pr, off, wbs, a->x + (size_t)j * xbs, xbs, corr[j],
                         corr[j + 1], dx[j], dx[j + 1], sx[j], sx[j + 1], &acc);
            j += 2;
            continue;
        }
        if (((off + wbs) ^ off) & 64) /* once per cache line */
            prefetch_rows(pr, strided, off);
        struct panel_block blk;
        panel_unpack(type, pr, strided, off, &blk);
        const uint8_t *xb = a->x + (size_t)j * xbs;
        int32_t corr[1][SEG_BLOCKS];
        float dx[1][SEG_BLOCKS], sx[1][SEG_BLOCKS];
        if (ai) { /* prepared for the whole row, blocks in a flat run */
            corr[0][0] = (&ai->corr[0][0])[j];
            dx[0][0] = (&ai->d[0][0])[j];
            sx[0][0] = (&ai->s[0][0])[j];
        } else {
            act_info_fill(type, xb, &corr[0][0], &dx[0][0], &sx[0][0]);
        }
        panel_pass(type, 1, &blk, 1, &xb, corr, dx, sx, &acc);
        j++;
    }
    _mm512_mask_storeu_ps(a->y + base, rows_out, acc);
}

/* One segment of one panel against activation rows c0..c0+cn-1. */
ALWAYS_INLINE void panel_run_seg(int type, int strided, const struct gemm_args *a,
                                 const struct panel_rows *pr, int64_t base, __mmask16 rows_out,
                                 int64_t j0, int64_t nblk, int64_t c0, int64_t cn,
                                 const struct act_info *ai, struct panel_block *pb)
{
    const size_t wbs = w_block_size(type);
    for (int64_t j = 0; j < nblk; j++) {
        const size_t off = (size_t)(j0 + j) * wbs;
        if (((off + wbs) ^ off) & 64)
            prefetch_rows(pr, strided, off);
        panel_unpack(type, pr, strided, off, &pb[j]);
    }
    int64_t c = 0;
    for (; c + ACT_GROUP <= cn; c += ACT_GROUP)
        panel_group(type, ACT_GROUP, a, base, rows_out, c0 + c, ai, c, pb, j0, nblk);
    if (cn - c >= 4) {
        panel_group(type, 4, a, base, rows_out, c0 + c, ai, c, pb, j0, nblk);
        c += 4;
    }
    if (cn - c >= 2) {
        panel_group(type, 2, a, base, rows_out, c0 + c, ai, c, pb, j0, nblk);
        c += 2;
    }
    if (cn - c >= 1)
        panel_group(type, 1, a, base, rows_out, c0 + c, ai, c, pb, j0, nblk);
}

/* Walks the panels: evenly spaced ones while n allows (the last one slides
 * back to end at row n and stores only its new rows; a lane computes the
 * same way wherever it sits), else one panel with per-lane pointers. */
#define FOR_EACH_PANEL(type, a, CALL)                                                        \
    do {                                                                                    \
        struct panel_rows pr_;                                                              \
        memset(&pr_, 0, sizeof pr_);                                                        \
        if ((a)->n < PANEL_LANES) {                                                         \
            for (int r_ = 0; r_ < PANEL_LANES; r_++)                                        \
                pr_.p[r_] = (a)->w + (size_t)(r_ < (a)->n ? r_ : 0) * (a)->w_stride;        \
            CALL(0, &pr_, (int64_t)0, (__mmask16)((1u << (a)->n) - 1));                     \
        } else {                                                                            \
            pr_.s = (a)->w_stride;                                                          \
            pr_.s3 = 3 * (a)->w_stride;                                                     \
            for (int64_t r0_ = 0; r0_ < (a)->n; r0_ += PANEL_LANES) {                       \
                const int64_t base_ = r0_ + PANEL_LANES <= (a)->n ? r0_ : (a)->n - PANEL_LANES; \
                const __mmask16 out_ = (__mmask16)(0xFFFFu & ~((1u << (r0_ - base_)) - 1)); \
                for (int g_ = 0; g_ < 4; g_++)                                              \
                    pr_.b[g_] = (a)->w + (size_t)(base_ + 4 * g_) * (a)->w_stride;          \
                CALL(1, &pr_, base_, out_);                                                 \
            }                                                                               \
        }                                                                                   \
    } while (0)

ALWAYS_INLINE void gemm_panels(int type, const struct gemm_args *a)
{
    struct act_info ai;
    if (a->b == 1) {
        /* The row's block info once for all panels, when it fits. */
        const int64_t nb1 = a->k / 32;
        const int fits = nb1 <= ACT_CHUNK * SEG_BLOCKS;
        const size_t xbs1 = has_min(type) ? sizeof(block_q8_1) : sizeof(block_q8_0);
        for (int64_t j = 0; fits && j < nb1; j++)
            act_info_fill(type, a->x + (size_t)j * xbs1, &(&ai.corr[0][0])[j], &(&ai.d[0][0])[j],
                          &(&ai.s[0][0])[j]);
        const struct act_info *aip = fits ? &ai : NULL;
#define RUN_ONE(strided, pr, base, out)                                                      \
    do {                                                                                    \
        if (strided)                                                                        \
            panel_run_one(type, 1, a, pr, base, out, aip);                                  \
        else                                                                                \
            panel_run_one(type, 0, a, pr, base, out, aip);                                  \
    } while (0)
        FOR_EACH_PANEL(type, a, RUN_ONE);
#undef RUN_ONE
        return;
    }
    const size_t xbs = has_min(type) ? sizeof(block_q8_1) : sizeof(block_q8_0);
    const int64_t nb = a->k / 32;
    struct panel_block pb[SEG_BLOCKS];
    for (int64_t j0 = 0; j0 < nb; j0 += SEG_BLOCKS) {
        const int64_t nblk = nb - j0 < SEG_BLOCKS ? nb - j0 : SEG_BLOCKS;
        for (int64_t c0 = 0; c0 < a->b; c0 += ACT_CHUNK) {
            const int64_t cn = a->b - c0 < ACT_CHUNK ? a->b - c0 : ACT_CHUNK;
            for (int64_t c = 0; c < cn; c++)
                for (int64_t j = 0; j < nblk; j++)
                    act_info_fill(type, a->x + (size_t)(c0 + c) * a->x_stride + (size_t)(j0 + j) * xbs,
                                  &ai.corr[c][j], &ai.d[c][j], &ai.s[c][j]);
#define RUN_SEG(strided, pr, base, out)                                                      \
    do {                                                                                    \
        if (strided)                                                                        \
            panel_run_seg(type, 1, a, pr, base, out, j0, nblk, c0, cn, &ai, pb);            \
        else                                                                                \
            panel_run_seg(type, 0, a, pr, base, out, j0, nblk, c0, cn, &ai, pb);            \
    } while (0)
            FOR_EACH_PANEL(type, a, RUN_SEG);
#undef RUN_SEG
        }
    }
}

static void gemm_q4_0_avx512(const struct gemm_args *a) { gemm_panels(PG_TYPE_Q4_0, a); }
static void gemm_q4_1_avx512(const struct gemm_args *a) { gemm_panels(PG_TYPE_Q4_1, a); }
static void gemm_q5_0_avx512(const struct gemm_args *a) { gemm_panels(PG_TYPE_Q5_0, a); }
static void gemm_q5_1_avx512(const struct gemm_args *a) { gemm_panels(PG_TYPE_Q5_1, a); }
static void gemm_q8_0_avx512(const struct gemm_args *a) { gemm_panels(PG_TYPE_Q8_0, a); }

/* Float kernels: full R x C tiles, then leftover activation rows one at a
 * time, then leftover weight rows one at a time. */
#define GEMM_TILED(name, tile_fn, type)                                                     \
    static void name(const struct gemm_args *a)                                             \
    {                                                                                       \
        const int64_t n4 = a->n / TILE_R * TILE_R, b4 = a->b / TILE_C * TILE_C;             \
        for (int64_t r = 0; r < n4; r += TILE_R) {                                          \
            for (int64_t c = 0; c < b4; c += TILE_C)                                        \
                tile_fn(type, TILE_R, TILE_C, a, r, c);                                     \
            for (int64_t c = b4; c < a->b; c++)                                             \
                tile_fn(type, TILE_R, 1, a, r, c);                                          \
        }                                                                                   \
        for (int64_t r = n4; r < a->n; r++) {                                               \
            for (int64_t c = 0; c < b4; c += TILE_C)                                        \
                tile_fn(type, 1, TILE_C, a, r, c);                                          \
            for (int64_t c = b4; c < a->b; c++)                                             \
                tile_fn(type, 1, 1, a, r, c);                                               \
        }                                                                                   \
    }

/* ---- float kernels: 16 lanes keyed by element index mod 16 ---- */

ALWAYS_INLINE __m512 load_float16(int type, const uint8_t *row, int64_t kk, __mmask16 m, int full)
{
    switch (type) {
    case PG_TYPE_F32: {
        const float *p = (const float *)(const void *)row + kk;
        return full ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
    }
    case PG_TYPE_F16: {
        const uint16_t *p = (const uint16_t *)(const void *)row + kk;
        const __m256i h = full ? _mm256_loadu_si256((const __m256i *)(const void *)p)
                               : _mm256_maskz_loadu_epi16(m, p);
        return _mm512_cvtph_ps(h);
    }
    default: { /* bf16: the top half of an f32 */
        const uint16_t *p = (const uint16_t *)(const void *)row + kk;
        const __m256i h = full ? _mm256_loadu_si256((const __m256i *)(const void *)p)
                               : _mm256_maskz_loadu_epi16(m, p);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    }
}

ALWAYS_INLINE void ftile_step(int type, int R, int C, const uint8_t *const *wr,
                              const uint8_t *const *xr, int64_t kk, __mmask16 m, int full,
                              __m512 acc[TILE_R][TILE_C])
{
    __m512 W[TILE_R];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        W[r] = load_float16(type, wr[r], kk, m, full);
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) {
        const __m512 x = load_float16(type, xr[c], kk, m, full);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            acc[r][c] = _mm512_fmadd_ps(W[r], x, acc[r][c]);
    }
}

ALWAYS_INLINE void ftile(int type, int R, int C, const struct gemm_args *a, int64_t r0,
                         int64_t c0)
{
    const uint8_t *wr[TILE_R], *xr[TILE_C];
    __m512 acc[TILE_R][TILE_C];
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
            acc[r][c] = _mm512_setzero_ps();
    int64_t kk = 0;
    for (; kk + 16 <= a->k; kk += 16)
        ftile_step(type, R, C, wr, xr, kk, 0xFFFF, 1, acc);
    if (kk < a->k)
        ftile_step(type, R, C, wr, xr, kk, (__mmask16)((1u << (a->k - kk)) - 1), 0, acc);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            a->y[(c0 + c) * a->y_stride + r0 + r] = _mm512_reduce_add_ps(acc[r][c]);
}

GEMM_TILED(gemm_f32_avx512, ftile, PG_TYPE_F32)
GEMM_TILED(gemm_f16_avx512, ftile, PG_TYPE_F16)
GEMM_TILED(gemm_bf16_avx512, ftile, PG_TYPE_BF16)

/* ---- activation converters ---- */

/* 16 floats to the nearest integer, ties to even (fixed here, not taken
 * from the rounding mode in force). */
ALWAYS_INLINE __m512i round_even_epi32(__m512 v)
{
    return _mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

/* One block of 32: stores the quantized bytes, returns d, and the sum of
 * the bytes in *sum. */
ALWAYS_INLINE float quant_block_q8(const float *x, int8_t *qs, int *sum)
{
    const __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
    /* As quantize_row_q8_0_act: 127/max in one division, ties to even. */
    const float d = amax / 127;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    const __m512 vid = _mm512_set1_ps(id);
    const __m512i q0 = round_even_epi32(_mm512_mul_ps(x0, vid));
    const __m512i q1 = round_even_epi32(_mm512_mul_ps(x1, vid));
    _mm_storeu_si128((__m128i *)(void *)qs, _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128((__m128i *)(void *)(qs + 16), _mm512_cvtepi32_epi8(q1));
    *sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    return d;
}

static void quantize_row_q8_0_avx512(const float *x, void *y, int64_t n)
{
    block_q8_0 *out = y;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int sum;
        const float d = quant_block_q8(x + i * QK8_0, out[i].qs, &sum);
        out[i].d = f32_to_f16(d);
    }
}

static void quantize_row_q8_1_avx512(const float *x, void *y, int64_t n)
{
    block_q8_1 *out = y;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        int sum;
        const float d = quant_block_q8(x + i * QK8_1, out[i].qs, &sum);
        out[i].d = f32_to_f16(d);
        out[i].s = f32_to_f16((float)sum * d);
    }
}

static void quantize_row_f16_avx512(const float *x, void *y, int64_t n)
{
    uint16_t *out = y;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(void *)(out + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        out[i] = f32_to_f16(x[i]);
}

static void quantize_row_bf16_avx512(const float *x, void *y, int64_t n)
{
    uint16_t *out = y;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512i u = _mm512_castps_si512(_mm512_loadu_ps(x + i));
        /* Round to nearest even on the integer bits, as f32_to_bf16 does;
         * NaNs stay quiet NaNs. */
        const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
        const __m512i r = _mm512_srli_epi32(
            _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
        const __mmask16 nan = _mm512_cmpgt_epu32_mask(
            _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
        const __m512i q = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(64));
        _mm256_storeu_si256((__m256i *)(void *)(out + i),
                            _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, r, q)));
    }
    for (; i < n; i++)
        out[i] = f32_to_bf16(x[i]);
}

void kernels_avx512_init(struct kernel_table *t)
{
    static const struct {
        enum pg_type type;
        gemm_fn fn;
    } gemms[] = {
        {PG_TYPE_F32, gemm_f32_avx512},   {PG_TYPE_F16, gemm_f16_avx512},
        {PG_TYPE_BF16, gemm_bf16_avx512}, {PG_TYPE_Q4_0, gemm_q4_0_avx512},
        {PG_TYPE_Q4_1, gemm_q4_1_avx512}, {PG_TYPE_Q5_0, gemm_q5_0_avx512},
        {PG_TYPE_Q5_1, gemm_q5_1_avx512}, {PG_TYPE_Q8_0, gemm_q8_0_avx512},
    };
    for (size_t i = 0; i < sizeof gemms / sizeof gemms[0]; i++) {
        t->gemm[gemms[i].type] = gemms[i].fn;
        t->isa[gemms[i].type] = "avx512";
    }
    t->act_quant[PG_TYPE_F16] = quantize_row_f16_avx512;
    t->act_quant[PG_TYPE_BF16] = quantize_row_bf16_avx512;
    t->act_quant[PG_TYPE_Q8_0] = quantize_row_q8_0_avx512;
    t->act_quant[PG_TYPE_Q8_1] = quantize_row_q8_1_avx512;
}
