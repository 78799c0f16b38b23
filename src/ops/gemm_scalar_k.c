/*
 * gemm_scalar_k.c: the portable kernels for the k-quant weight types (q2_K,
 * q3_K, q4_K, q5_K, q6_K) against q8_K activations, and the reference q8_K
 * activation converter. They define the numerics the SIMD files approach:
 * per 256-value block an exact integer dot per group (scale times codes dot
 * activations, the mins or code offsets taken back through the activation
 * group sums), then one float update per block, in block order.
 * Every (weight row, activation row) pair is computed by one function alone,
 * so results never depend on how many rows a call holds.
 */
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

static float dot_q2_K(const block_q2_K *w, const block_q8_K *x, int64_t nb)
{
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int32_t isum = 0, imin = 0;
        for (int g = 0; g < 16; g++) {
            /* Group g: half g / 8, bit pair (g / 2) % 4, bytes 16 * (g % 2) on. */
            const uint8_t *q = w[i].qs + 32 * (g / 8) + 16 * (g % 2);
            const int shift = 2 * ((g / 2) % 4);
            const int8_t *a = x[i].qs + 16 * g;
            int32_t dot = 0;
            for (int l = 0; l < 16; l++)
                dot += ((q[l] >> shift) & 3) * a[l];
            isum += (w[i].scales[g] & 0x0F) * dot;
            imin += (w[i].scales[g] >> 4) * x[i].bsums[g];
        }
        const float d = x[i].d * f16_to_f32(w[i].d), dm = x[i].d * f16_to_f32(w[i].dmin);
        sum += d * (float)isum - dm * (float)imin;
    }
    return sum;
}

static float dot_q3_K(const block_q3_K *w, const block_q8_K *x, int64_t nb)
{
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int sc[16];
        kq_q3_scales(w[i].scales, sc);
        int32_t isum = 0;
        for (int g = 0; g < 16; g++) {
            const int off = 16 * (g % 2);
            const uint8_t *q = w[i].qs + 32 * (g / 8) + off;
            const uint8_t *hm = w[i].hmask + off;
            const int shift = 2 * ((g / 2) % 4), hbit = g / 2;
            const int8_t *a = x[i].qs + 16 * g;
            /* Codes as 0..7 (a missing high bit means -4), the offset taken
             * back through the group's activation sum. */
            int32_t dot = 0;
            for (int l = 0; l < 16; l++)
                dot += (((q[l] >> shift) & 3) | (((hm[l] >> hbit) & 1) << 2)) * a[l];
            isum += sc[g] * (dot - 4 * x[i].bsums[g]);
        }
        const float d = x[i].d * f16_to_f32(w[i].d);
        sum += d * (float)isum;
    }
    return sum;
}

static float dot_q4_K(const block_q4_K *w, const block_q8_K *x, int64_t nb)
{
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int sc[8], mn[8];
        kq_scales_mins(w[i].scales, sc, mn);
        int32_t isum = 0, imin = 0;
        for (int g = 0; g < 8; g++) {
            const uint8_t *q = w[i].qs + 32 * (g / 2);
            const int shift = 4 * (g % 2);
            const int8_t *a = x[i].qs + 32 * g;
            int32_t dot = 0;
            for (int l = 0; l < 32; l++)
                dot += ((q[l] >> shift) & 0x0F) * a[l];
            isum += sc[g] * dot;
            imin += mn[g] * (x[i].bsums[2 * g] + x[i].bsums[2 * g + 1]);
        }
        const float d = x[i].d * f16_to_f32(w[i].d), dm = x[i].d * f16_to_f32(w[i].dmin);
        sum += d * (float)isum - dm * (float)imin;
    }
    return sum;
}

static float dot_q5_K(const block_q5_K *w, const block_q8_K *x, int64_t nb)
{
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int sc[8], mn[8];
        kq_scales_mins(w[i].scales, sc, mn);
        int32_t isum = 0, imin = 0;
        for (int g = 0; g < 8; g++) {
            const uint8_t *q = w[i].qs + 32 * (g / 2);
            const int shift = 4 * (g % 2);
            const int8_t *a = x[i].qs + 32 * g;
            int32_t dot = 0;
            for (int l = 0; l < 32; l++)
                dot += (((q[l] >> shift) & 0x0F) | (((w[i].qh[l] >> g) & 1) << 4)) * a[l];
            isum += sc[g] * dot;
            imin += mn[g] * (x[i].bsums[2 * g] + x[i].bsums[2 * g + 1]);
        }
        const float d = x[i].d * f16_to_f32(w[i].d), dm = x[i].d * f16_to_f32(w[i].dmin);
        sum += d * (float)isum - dm * (float)imin;
    }
    return sum;
}

static float dot_q6_K(const block_q6_K *w, const block_q8_K *x, int64_t nb)
{
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int32_t isum = 0;
        for (int g = 0; g < 16; g++) {
            /* Group g: half h, quarter t of it, bytes 16 * (g % 2) on. */
            const int h = g / 8, t = (g / 2) % 4, off = 16 * (g % 2);
            const uint8_t *ql = w[i].ql + 64 * h + 32 * (t & 1) + off;
            const uint8_t *qh = w[i].qh + 32 * h + off;
            const int lshift = t < 2 ? 0 : 4;
            const int8_t *a = x[i].qs + 16 * g;
            int32_t dot = 0;
            for (int l = 0; l < 16; l++)
                dot += (((ql[l] >> lshift) & 0x0F) | (((qh[l] >> (2 * t)) & 3) << 4)) * a[l];
            isum += w[i].scales[g] * (dot - 32 * x[i].bsums[g]);
        }
        const float d = x[i].d * f16_to_f32(w[i].d);
        sum += d * (float)isum;
    }
    return sum;
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
