/*
 * gemm_scalar_k.c: the portable kernels for the k-quant weight types (q2_K,
 * q3_K, q4_K, q5_K, q6_K) against q8_K activations, and the reference q8_K
 * activation converter. They define the numerics the SIMD files reproduce
 * bit for bit, which are those of the usual CPU inference path for these
 * files (its 256-bit kernels): a block's values are spread over eight lanes,
 * lane l taking the values whose index modulo 32 is 4l..4l+3; each lane gets
 * an exact integer sum of scale * code * activation, and per block the lane
 * is updated with one fused multiply-add, lane = fma(d, (float)sum, lane),
 * d = (activation scale) * (weight scale). Minimum terms (q2_K, q4_K, q5_K)
 * go through the activations' group sums with their own fused steps (see
 * each type). At the end the lanes are added as ((0+4)+(2+6))+((1+5)+(3+7)).
 * On these small random models a last-bit difference in a dot product is
 * enough to move an 8-bit activation code one step later, and logits by a
 * few hundredths, so the order is kept exactly.
 * Every (weight row, activation row) pair is computed by one function alone,
 * so results never depend on how many rows a call holds.
 */
#include <math.h>

#include "ops/kernels.h"
#include "ops/quants.h"

/* Unpacks the 6-bit scales and mins of q4_K / q5_K (8 groups of 32). */
static void kq_scales_mins(const uint8_t *p, int sc[8], int mn[8])
{
    for (int g = 0; g < 4; g++) {
        sc[g] = p[g] & 63;
        mn[g] = p[g + 4] & 63;
        sc[g + 4] = (p[g + 8] & 0x0F) | ((p[g] >> 6) << 4);
        mn[g + 4] = (p[g + 8] >> 4) | ((p[g + 4] >> 6) << 4);
    }
}

/* The 16 signed 6-bit scales of q3_K. */
static void kq_q3_scales(const uint8_t *p, int sc[16])
{
    for (int g = 0; g < 16; g++) {
        const int low = g < 8 ? (p[g] & 0x0F) : (p[g - 8] >> 4);
        const int high = (p[8 + g % 4] >> (2 * (g / 4))) & 3;
        sc[g] = (low | high << 4) - 32;
    }
}

/* The lanes of one block: lane[(e % 32) / 4] += sc[e / 16] * q[e] * a[e]. */
static void kq_lanes(const int8_t *q, const int sc[16], const int8_t *a, int32_t lane[8])
{
    for (int l = 0; l < 8; l++)
        lane[l] = 0;
    for (int e = 0; e < QK_K; e++)
        lane[(e % 32) / 4] += sc[e / 16] * q[e] * a[e];
}

static void kq_fma_lanes(float acc[8], float d, const int32_t lane[8])
{
    for (int l = 0; l < 8; l++)
        acc[l] = fmaf(d, (float)lane[l], acc[l]);
}

static float kq_lanes_sum(const float acc[8])
{
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

/* Sums of the activations over the eight groups of 32. */
static void kq_sums32(const block_q8_K *x, int s[8])
{
    for (int g = 0; g < 8; g++)
        s[g] = x->bsums[2 * g] + x->bsums[2 * g + 1];
}

static float dot_q2_K(const block_q2_K *w, const block_q8_K *x, int64_t nb)
{
    float acc[8] = {0};
    for (int64_t i = 0; i < nb; i++) {
        int8_t q[QK_K];
        int sc[16];
        for (int e = 0; e < QK_K; e++)
            q[e] = (int8_t)((w[i].qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3);
        for (int g = 0; g < 16; g++)
            sc[g] = w[i].scales[g] & 0x0F;
        const float d = x[i].d * f16_to_f32(w[i].d);
        const float dmin = -x[i].d * f16_to_f32(w[i].dmin);
        /* Minimums first: lane l holds groups 2l and 2l+1. */
        int32_t lane[8];
        for (int l = 0; l < 8; l++)
            lane[l] = (w[i].scales[2 * l] >> 4) * x[i].bsums[2 * l] +
                      (w[i].scales[2 * l + 1] >> 4) * x[i].bsums[2 * l + 1];
        kq_fma_lanes(acc, dmin, lane);
        kq_lanes(q, sc, x[i].qs, lane);
        kq_fma_lanes(acc, d, lane);
    }
    return kq_lanes_sum(acc);
}

static float dot_q3_K(const block_q3_K *w, const block_q8_K *x, int64_t nb)
{
    float acc[8] = {0};
    for (int64_t i = 0; i < nb; i++) {
        int8_t q[QK_K];
        int sc[16];
        kq_q3_scales(w[i].scales, sc);
        for (int e = 0; e < QK_K; e++) {
            const int s = (e % 128) / 32;
            const int low = (w[i].qs[32 * (e / 128) + e % 32] >> (2 * s)) & 3;
            const int high = (w[i].hmask[e % 32] >> (4 * (e / 128) + s)) & 1;
            q[e] = (int8_t)(low + 4 * high - 4);
        }
        int32_t lane[8];
        kq_lanes(q, sc, x[i].qs, lane);
        kq_fma_lanes(acc, x[i].d * f16_to_f32(w[i].d), lane);
    }
    return kq_lanes_sum(acc);
}

/* Codes of q4_K (hbits NULL) and q5_K: 32-value groups, the low nibbles
 * of 32 bytes then their high nibbles. */
static void kq_q45_codes(const uint8_t *qs, const uint8_t *hbits, int8_t q[QK_K])
{
    for (int e = 0; e < QK_K; e++) {
        int v = (qs[32 * (e / 64) + e % 32] >> (4 * ((e % 64) / 32))) & 0x0F;
        if (hbits)
            v |= ((hbits[e % 32] >> (e / 32)) & 1) << 4;
        q[e] = (int8_t)v;
    }
}

static float dot_q4_K(const block_q4_K *w, const block_q8_K *x, int64_t nb)
{
    float acc[8] = {0}, accm[4] = {0};
    for (int64_t i = 0; i < nb; i++) {
        int8_t q[QK_K];
        int sc8[8], mn[8], sc[16], s32[8];
        kq_scales_mins(w[i].scales, sc8, mn);
        for (int g = 0; g < 16; g++)
            sc[g] = sc8[g / 2];
        kq_q45_codes(w[i].qs, NULL, q);
        kq_sums32(&x[i], s32);
        const float d = x[i].d * f16_to_f32(w[i].d);
        const float dmin = -x[i].d * f16_to_f32(w[i].dmin);
        /* Minimums in four lanes of their own, lane k taking groups 2k, 2k+1. */
        for (int k = 0; k < 4; k++)
            accm[k] = fmaf(dmin, (float)(mn[2 * k] * s32[2 * k] + mn[2 * k + 1] * s32[2 * k + 1]),
                           accm[k]);
        int32_t lane[8];
        kq_lanes(q, sc, x[i].qs, lane);
        kq_fma_lanes(acc, d, lane);
    }
    return kq_lanes_sum(acc) + ((accm[0] + accm[2]) + (accm[1] + accm[3]));
}

static float dot_q5_K(const block_q5_K *w, const block_q8_K *x, int64_t nb)
{
    float acc[8] = {0}, mins = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int8_t q[QK_K];
        int sc8[8], mn[8], sc[16], s32[8];
        kq_scales_mins(w[i].scales, sc8, mn);
        for (int g = 0; g < 16; g++)
            sc[g] = sc8[g / 2];
        kq_q45_codes(w[i].qs, w[i].qh, q);
        kq_sums32(&x[i], s32);
        const float d = x[i].d * f16_to_f32(w[i].d);
        const float dmin = -x[i].d * f16_to_f32(w[i].dmin);
        /* Minimums: one exact integer per block, one fused step. */
        int32_t m = 0;
        for (int g = 0; g < 8; g++)
            m += mn[g] * s32[g];
        mins = fmaf(dmin, (float)m, mins);
        int32_t lane[8];
        kq_lanes(q, sc, x[i].qs, lane);
        kq_fma_lanes(acc, d, lane);
    }
    return kq_lanes_sum(acc) + mins;
}

static float dot_q6_K(const block_q6_K *w, const block_q8_K *x, int64_t nb)
{
    float acc[8] = {0};
    for (int64_t i = 0; i < nb; i++) {
        int8_t q[QK_K];
        int sc[16];
        for (int e = 0; e < QK_K; e++) {
            const int h = e / 128, t = (e % 128) / 32, l = e % 32;
            const int low = (w[i].ql[64 * h + 32 * (t & 1) + l] >> (4 * (t / 2))) & 0x0F;
            const int high = (w[i].qh[32 * h + l] >> (2 * t)) & 3;
            q[e] = (int8_t)((low | high << 4) - 32);
        }
        for (int g = 0; g < 16; g++)
            sc[g] = w[i].scales[g];
        int32_t lane[8];
        kq_lanes(q, sc, x[i].qs, lane);
        kq_fma_lanes(acc, x[i].d * f16_to_f32(w[i].d), lane);
    }
    return kq_lanes_sum(acc);
}

#define KQ_GEMM(name, wtype)                                                             \
    static void gemm_##name(const struct gemm_args *a)                                   \
    {                                                                                    \
        const int64_t nb = a->k / QK_K;                                                  \
        for (int64_t i = 0; i < a->b; i++) {                                             \
            const block_q8_K *x = (const block_q8_K *)(a->x + (size_t)i * a->x_stride);  \
            for (int64_t j = 0; j < a->n; j++)                                           \
                a->y[i * a->y_stride + j] =                                              \
                    dot_##name((const wtype *)(a->w + (size_t)j * a->w_stride), x, nb);  \
        }                                                                                \
    }

KQ_GEMM(q2_K, block_q2_K)
KQ_GEMM(q3_K, block_q3_K)
KQ_GEMM(q4_K, block_q4_K)
KQ_GEMM(q5_K, block_q5_K)
KQ_GEMM(q6_K, block_q6_K)

void kernels_scalar_k_init(struct kernel_table *t)
{
    t->gemm[PG_TYPE_Q2_K] = gemm_q2_K;
    t->gemm[PG_TYPE_Q3_K] = gemm_q3_K;
    t->gemm[PG_TYPE_Q4_K] = gemm_q4_K;
    t->gemm[PG_TYPE_Q5_K] = gemm_q5_K;
    t->gemm[PG_TYPE_Q6_K] = gemm_q6_K;
    for (int type = PG_TYPE_Q2_K; type <= PG_TYPE_Q6_K; type++)
        t->isa[type] = "scalar";
    t->act_quant[PG_TYPE_Q8_K] = quantize_row_q8_K_ref;
}
