/*
 * gemm_scalar.c: the portable kernels for the float weight types (f32, f16,
 * bf16) and the 32-element block types (q4_0, q4_1, q5_0, q5_1, q8_0), and
 * the reference activation converters. These define the numerics the SIMD
 * files must approach: for block types an exact integer dot per block, then
 * one float multiply-add per block in block order; for float types eight
 * running sums picked by element index, added pairwise at the end.
 * Every (weight row, activation row) pair is computed by the same function
 * alone, so results never depend on how many rows a call holds.
 */
#include <math.h>
#include <string.h>

#include "ops/kernels.h"
#include "ops/quants.h"

/* ---- float weights: eight lanes keyed by kk % 8, so a compiler may
 * vectorize without changing any lane's order of additions ---- */

static float lanes_sum8(const float *acc)
{
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static float dot_f32(const float *w, const float *x, int64_t k)
{
    float acc[8] = {0};
    int64_t kk = 0;
    for (; kk + 8 <= k; kk += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += w[kk + l] * x[kk + l];
    for (int l = 0; kk + l < k; l++)
        acc[l] += w[kk + l] * x[kk + l];
    return lanes_sum8(acc);
}

static float dot_f16(const pg_f16 *w, const pg_f16 *x, int64_t k)
{
    float acc[8] = {0};
    int64_t kk = 0;
    for (; kk + 8 <= k; kk += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += f16_to_f32(w[kk + l]) * f16_to_f32(x[kk + l]);
    for (int l = 0; kk + l < k; l++)
        acc[l] += f16_to_f32(w[kk + l]) * f16_to_f32(x[kk + l]);
    return lanes_sum8(acc);
}

static float dot_bf16(const pg_bf16 *w, const pg_bf16 *x, int64_t k)
{
    float acc[8] = {0};
    int64_t kk = 0;
    for (; kk + 8 <= k; kk += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += bf16_to_f32(w[kk + l]) * bf16_to_f32(x[kk + l]);
    for (int l = 0; kk + l < k; l++)
        acc[l] += bf16_to_f32(w[kk + l]) * bf16_to_f32(x[kk + l]);
    return lanes_sum8(acc);
}

/* ---- block types ----
 * q4_0: an exact integer dot per block, then sum = fma(dw*dx, isum, sum). */

static float dot_q4_0(const block_q4_0 *w, const block_q8_0 *x, int64_t nb)
{
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int isum = 0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            isum += ((w[i].qs[j] & 0x0F) - 8) * x[i].qs[j];
            isum += ((w[i].qs[j] >> 4) - 8) * x[i].qs[j + QK4_0 / 2];
        }
        sum = fmaf(f16_to_f32(w[i].d) * f16_to_f32(x[i].d), (float)isum, sum);
    }
    return sum;
}

/* The other block types keep eight lanes, lane l taking elements 4l..4l+3
 * of every block: an exact integer sum per lane and block, then
 * lane = fma(dw*dx, (float)sum, lane) block after block, and the lanes added
 * as ((0+4)+(2+6))+((1+5)+(3+7)) at the end. That is the order of the usual
 * CPU inference path's 256-bit kernels for these types; q4_0 above follows
 * the same path's repacked q4_0 layout, which finishes each block's sum
 * before its float step. The minimum terms of q4_1 / q5_1 run in a separate
 * fused chain added last. On small models a last-bit difference in a dot
 * moves a later 8-bit activation code and logits by a few hundredths, so the
 * order is kept exactly. */

static void lanes_block(float acc[8], float d, const int32_t lane[8])
{
    for (int l = 0; l < 8; l++)
        acc[l] = fmaf(d, (float)lane[l], acc[l]);
}

static float lanes_hsum8(const float acc[8])
{
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

static float dot_q4_1(const block_q4_1 *w, const block_q8_1 *x, int64_t nb)
{
    float acc[8] = {0}, mins = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int32_t lane[8] = {0};
        for (int j = 0; j < QK4_1 / 2; j++) {
            lane[j / 4] += (w[i].qs[j] & 0x0F) * x[i].qs[j];
            lane[4 + j / 4] += (w[i].qs[j] >> 4) * x[i].qs[j + QK4_1 / 2];
        }
        mins = fmaf(f16_to_f32(w[i].m), f16_to_f32(x[i].s), mins);
        lanes_block(acc, f16_to_f32(w[i].d) * f16_to_f32(x[i].d), lane);
    }
    return lanes_hsum8(acc) + mins;
}

static uint32_t load_qh(const uint8_t *qh)
{
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

/* q5_0 and q5_1 codes (0..31) of one block. */
static void q5_codes(const uint8_t *qs, const uint8_t *qhp, int q[32])
{
    const uint32_t qh = load_qh(qhp);
    for (int j = 0; j < 16; j++) {
        q[j] = (qs[j] & 0x0F) | (int)((qh >> j) & 1) << 4;
        q[j + 16] = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
    }
}

static float dot_q5_0(const block_q5_0 *w, const block_q8_0 *x, int64_t nb)
{
    float acc[8] = {0};
    for (int64_t i = 0; i < nb; i++) {
        int q[32];
        int32_t lane[8] = {0};
        q5_codes(w[i].qs, w[i].qh, q);
        for (int j = 0; j < QK5_0; j++)
            lane[j / 4] += (q[j] - 16) * x[i].qs[j];
        lanes_block(acc, f16_to_f32(w[i].d) * f16_to_f32(x[i].d), lane);
    }
    return lanes_hsum8(acc);
}

static float dot_q5_1(const block_q5_1 *w, const block_q8_1 *x, int64_t nb)
{
    float acc[8] = {0}, mins = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int q[32];
        int32_t lane[8] = {0};
        q5_codes(w[i].qs, w[i].qh, q);
        for (int j = 0; j < QK5_1; j++)
            lane[j / 4] += q[j] * x[i].qs[j];
        mins = fmaf(f16_to_f32(w[i].m), f16_to_f32(x[i].s), mins);
        lanes_block(acc, f16_to_f32(w[i].d) * f16_to_f32(x[i].d), lane);
    }
    return lanes_hsum8(acc) + mins;
}

static float dot_q8_0(const block_q8_0 *w, const block_q8_0 *x, int64_t nb)
{
    float acc[8] = {0};
    for (int64_t i = 0; i < nb; i++) {
        int32_t lane[8] = {0};
        for (int j = 0; j < QK8_0; j++)
            lane[j / 4] += w[i].qs[j] * x[i].qs[j];
        lanes_block(acc, f16_to_f32(w[i].d) * f16_to_f32(x[i].d), lane);
    }
    return lanes_hsum8(acc);
}

/* One weight row against every activation row while the row is in cache. */
#define GEMM_SCALAR(name, wtype, xtype, dotfn, count)                                        \
    static void name(const struct gemm_args *a)                                              \
    {                                                                                        \
        for (int64_t j = 0; j < a->n; j++) {                                                 \
            const wtype *w = (const wtype *)(const void *)(a->w + (size_t)j * a->w_stride);  \
            for (int64_t i = 0; i < a->b; i++) {                                             \
                const xtype *x = (const xtype *)(const void *)(a->x + (size_t)i * a->x_stride); \
                a->y[i * a->y_stride + j] = dotfn(w, x, count);                              \
            }                                                                                \
        }                                                                                    \
    }

GEMM_SCALAR(gemm_f32_scalar, float, float, dot_f32, a->k)
GEMM_SCALAR(gemm_f16_scalar, pg_f16, pg_f16, dot_f16, a->k)
GEMM_SCALAR(gemm_bf16_scalar, pg_bf16, pg_bf16, dot_bf16, a->k)
GEMM_SCALAR(gemm_q4_0_scalar, block_q4_0, block_q8_0, dot_q4_0, a->k / QK4_0)
GEMM_SCALAR(gemm_q4_1_scalar, block_q4_1, block_q8_1, dot_q4_1, a->k / QK4_1)
GEMM_SCALAR(gemm_q5_0_scalar, block_q5_0, block_q8_0, dot_q5_0, a->k / QK5_0)
GEMM_SCALAR(gemm_q5_1_scalar, block_q5_1, block_q8_1, dot_q5_1, a->k / QK5_1)
GEMM_SCALAR(gemm_q8_0_scalar, block_q8_0, block_q8_0, dot_q8_0, a->k / QK8_0)

void kernels_scalar_init(struct kernel_table *t)
{
    static const struct {
        enum pg_type type;
        gemm_fn fn;
    } gemms[] = {
        {PG_TYPE_F32, gemm_f32_scalar},   {PG_TYPE_F16, gemm_f16_scalar},
        {PG_TYPE_BF16, gemm_bf16_scalar}, {PG_TYPE_Q4_0, gemm_q4_0_scalar},
        {PG_TYPE_Q4_1, gemm_q4_1_scalar}, {PG_TYPE_Q5_0, gemm_q5_0_scalar},
        {PG_TYPE_Q5_1, gemm_q5_1_scalar}, {PG_TYPE_Q8_0, gemm_q8_0_scalar},
    };
    for (size_t i = 0; i < sizeof gemms / sizeof gemms[0]; i++) {
        t->gemm[gemms[i].type] = gemms[i].fn;
        t->isa[gemms[i].type] = "scalar";
    }
    t->act_quant[PG_TYPE_F32] = quantize_row_f32_ref;
    t->act_quant[PG_TYPE_F16] = quantize_row_f16_ref;
    t->act_quant[PG_TYPE_BF16] = quantize_row_bf16_ref;
    t->act_quant[PG_TYPE_Q8_0] = quantize_row_q8_0_act;
    t->act_quant[PG_TYPE_Q8_1] = quantize_row_q8_1_act;
}
