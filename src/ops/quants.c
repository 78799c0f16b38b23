/*
 * quants.c: scalar reference quantize/dequantize for the plain float types
 * (f32, f16, bf16), the 32-element block types (q4_0, q4_1, q5_0, q5_1, q8_0,
 * q8_1), q8_K, and quantize_rows(). The k-quants are in quants_k.c.
 *
 * The weight quantizers round exactly as GGUF's reference tools do (scale from
 * the block's extreme value, one f32 reciprocal, truncation after adding a
 * half), so the same floats give the same bytes. q8_0, q8_1 and q8_K are also
 * the per-token activation quantizers: they stay plain loops.
 */
#include "ops/quants.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* Byte-exact results need every product rounded on its own: no fused
 * multiply-add contraction, whatever the compiler's mode (GCC contracts in
 * its GNU dialects, clang within expressions). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* The value of largest magnitude in x[0..n), keeping its sign; the first one
 * wins a tie, so the scale's sign is deterministic. */
static float quant_signed_absmax(const float *x, int n)
{
    float amax = 0.0f, vmax = 0.0f;
    for (int j = 0; j < n; j++) {
        const float a = fabsf(x[j]);
        if (a > amax) {
            amax = a;
            vmax = x[j];
        }
    }
    return vmax;
}

static void quant_min_max(const float *x, int n, float *lo, float *hi)
{
    float mn = FLT_MAX, mx = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < mn)
            mn = x[j];
        if (x[j] > mx)
            mx = x[j];
    }
    *lo = mn;
    *hi = mx;
}

/* ---- plain floats ---- */

void quantize_row_f32_ref(const float *x, void *y, int64_t n)
{
    memmove(y, x, (size_t)n * sizeof(float));
}

void dequantize_row_f32(const void *x, float *y, int64_t n)
{
    memmove(y, x, (size_t)n * sizeof(float));
}

void quantize_row_f16_ref(const float *x, void *y, int64_t n)
{
    pg_f16 *out = y;
    for (int64_t i = 0; i < n; i++)
        out[i] = f32_to_f16(x[i]);
}

void dequantize_row_f16(const void *x, float *y, int64_t n)
{
    const pg_f16 *in = x;
    for (int64_t i = 0; i < n; i++)
        y[i] = f16_to_f32(in[i]);
}

void quantize_row_bf16_ref(const float *x, void *y, int64_t n)
{
    pg_bf16 *out = y;
    for (int64_t i = 0; i < n; i++)
        out[i] = f32_to_bf16(x[i]);
}

void dequantize_row_bf16(const void *x, float *y, int64_t n)
{
    const pg_bf16 *in = x;
    for (int64_t i = 0; i < n; i++)
        y[i] = bf16_to_f32(in[i]);
}

/* ---- 4-bit and 5-bit, 32 per block ----
 * Element j of a block goes to the low nibble of byte j, element j+16 to the
 * high nibble; for 5 bits, bit 4 of element j goes to bit j of qh. */

void quantize_row_q4_0_ref(const float *x, void *y, int64_t n)
{
    block_q4_0 *out = y;
    const int64_t nb = n / QK4_0;
    for (int64_t i = 0; i < nb; i++, x += QK4_0) {
        /* The extreme value maps to -8, the one code with no positive twin. */
        const float d = quant_signed_absmax(x, QK4_0) / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        out[i].d = f32_to_f16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const float v0 = x[j] * id;
            const float v1 = x[j + QK4_0 / 2] * id;
            /* +8.5 then truncation: round half up on codes 0..16, 16 clamps to 15. */
            int q0 = (int8_t)(v0 + 8.5f), q1 = (int8_t)(v1 + 8.5f);
            q0 = q0 > 15 ? 15 : q0;
            q1 = q1 > 15 ? 15 : q1;
            out[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void dequantize_row_q4_0(const void *x, float *y, int64_t n)
{
    const block_q4_0 *in = x;
    const int64_t nb = n / QK4_0;
    for (int64_t i = 0; i < nb; i++, y += QK4_0) {
        const float d = f16_to_f32(in[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            y[j] = (float)((in[i].qs[j] & 0x0F) - 8) * d;
            y[j + QK4_0 / 2] = (float)((in[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void quantize_row_q4_1_ref(const float *x, void *y, int64_t n)
{
    block_q4_1 *out = y;
    const int64_t nb = n / QK4_1;
    for (int64_t i = 0; i < nb; i++, x += QK4_1) {
        float mn, mx;
        quant_min_max(x, QK4_1, &mn, &mx);
        const float d = (mx - mn) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        out[i].d = f32_to_f16(d);
        out[i].m = f32_to_f16(mn);
        for (int j = 0; j < QK4_1 / 2; j++) {
            const float v0 = (x[j] - mn) * id;
            const float v1 = (x[j + QK4_1 / 2] - mn) * id;
            int q0 = (int8_t)(v0 + 0.5f), q1 = (int8_t)(v1 + 0.5f);
            q0 = q0 > 15 ? 15 : q0;
            q1 = q1 > 15 ? 15 : q1;
            out[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void dequantize_row_q4_1(const void *x, float *y, int64_t n)
{
    const block_q4_1 *in = x;
    const int64_t nb = n / QK4_1;
    for (int64_t i = 0; i < nb; i++, y += QK4_1) {
        const float d = f16_to_f32(in[i].d);
        const float m = f16_to_f32(in[i].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            y[j] = (float)(in[i].qs[j] & 0x0F) * d + m;
            y[j + QK4_1 / 2] = (float)(in[i].qs[j] >> 4) * d + m;
        }
    }
}

static void quant_store_qh(uint8_t qh[4], uint32_t bits)
{
    for (int b = 0; b < 4; b++)
        qh[b] = (uint8_t)(bits >> (8 * b));
}

static uint32_t quant_load_qh(const uint8_t qh[4])
{
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 |
           (uint32_t)qh[3] << 24;
}

void quantize_row_q5_0_ref(const float *x, void *y, int64_t n)
{
    block_q5_0 *out = y;
    const int64_t nb = n / QK5_0;
    for (int64_t i = 0; i < nb; i++, x += QK5_0) {
        const float d = quant_signed_absmax(x, QK5_0) / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        out[i].d = f32_to_f16(d);
        uint32_t high = 0;
        for (int j = 0; j < QK5_0 / 2; j++) {
            const float v0 = x[j] * id;
            const float v1 = x[j + QK5_0 / 2] * id;
            int q0 = (int8_t)(v0 + 16.5f), q1 = (int8_t)(v1 + 16.5f);
            q0 = q0 > 31 ? 31 : q0;
            q1 = q1 > 31 ? 31 : q1;
            out[i].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            high |= (uint32_t)((q0 >> 4) & 1) << j;
            high |= (uint32_t)((q1 >> 4) & 1) << (j + QK5_0 / 2);
        }
        quant_store_qh(out[i].qh, high);
    }
}

void dequantize_row_q5_0(const void *x, float *y, int64_t n)
{
    const block_q5_0 *in = x;
    const int64_t nb = n / QK5_0;
    for (int64_t i = 0; i < nb; i++, y += QK5_0) {
        const float d = f16_to_f32(in[i].d);
        const uint32_t high = quant_load_qh(in[i].qh);
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int q0 = (in[i].qs[j] & 0x0F) | (int)((high >> j) & 1) << 4;
            const int q1 = (in[i].qs[j] >> 4) | (int)((high >> (j + QK5_0 / 2)) & 1) << 4;
            y[j] = (float)(q0 - 16) * d;
            y[j + QK5_0 / 2] = (float)(q1 - 16) * d;
        }
    }
}

void quantize_row_q5_1_ref(const float *x, void *y, int64_t n)
{
    block_q5_1 *out = y;
    const int64_t nb = n / QK5_1;
    for (int64_t i = 0; i < nb; i++, x += QK5_1) {
        float mn, mx;
        quant_min_max(x, QK5_1, &mn, &mx);
        const float d = (mx - mn) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        out[i].d = f32_to_f16(d);
        out[i].m = f32_to_f16(mn);
        uint32_t high = 0;
        for (int j = 0; j < QK5_1 / 2; j++) {
            const float v0 = (x[j] - mn) * id;
            const float v1 = (x[j + QK5_1 / 2] - mn) * id;
            /* Codes land in 0..31 by construction; the mask keeps stray bits
             * (a rounding step past 31) out of the neighbouring fields. */
            const int q0 = (uint8_t)(v0 + 0.5f), q1 = (uint8_t)(v1 + 0.5f);
            out[i].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            high |= (uint32_t)((q0 >> 4) & 1) << j;
            high |= (uint32_t)((q1 >> 4) & 1) << (j + QK5_1 / 2);
        }
        quant_store_qh(out[i].qh, high);
    }
}

void dequantize_row_q5_1(const void *x, float *y, int64_t n)
{
    const block_q5_1 *in = x;
    const int64_t nb = n / QK5_1;
    for (int64_t i = 0; i < nb; i++, y += QK5_1) {
        const float d = f16_to_f32(in[i].d);
        const float m = f16_to_f32(in[i].m);
        const uint32_t high = quant_load_qh(in[i].qh);
        for (int j = 0; j < QK5_1 / 2; j++) {
            const int q0 = (in[i].qs[j] & 0x0F) | (int)((high >> j) & 1) << 4;
            const int q1 = (in[i].qs[j] >> 4) | (int)((high >> (j + QK5_1 / 2)) & 1) << 4;
            y[j] = (float)q0 * d + m;
            y[j + QK5_1 / 2] = (float)q1 * d + m;
        }
    }
}

/* ---- 8-bit, 32 per block ---- */

/* roundf (halves away from zero) for the small values of an 8-bit code,
 * without a library call: truncate, then step once if the (exact) remainder
 * reaches a half. Equal to roundf for every float of magnitude below 2^31. */
static inline int quant_round_away(float v)
{
    int t = (int)v;
    const float frac = v - (float)t;
    if (frac >= 0.5f)
        t++;
    else if (frac <= -0.5f)
        t--;
    return t;
}

/* Round to nearest, ties to even, for |v| < 2^22: adding 1.5 * 2^23 pushes
 * the fraction out of the mantissa, whose low bits then hold the integer. */
static inline int quant_round_even(float v)
{
    const float t = v + 12582912.0f;
    int32_t bits;
    memcpy(&bits, &t, sizeof bits);
    return (bits & 0x007fffff) - 0x00400000;
}

static float quant_absmax(const float *x, int n)
{
    float amax = 0.0f;
    for (int j = 0; j < n; j++) {
        const float a = fabsf(x[j]);
        amax = a > amax ? a : amax;
    }
    return amax;
}

void quantize_row_q8_0_ref(const float *x, void *y, int64_t n)
{
    block_q8_0 *out = y;
    const int64_t nb = n / QK8_0;
    for (int64_t i = 0; i < nb; i++, x += QK8_0) {
        const float d = quant_absmax(x, QK8_0) / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        out[i].d = f32_to_f16(d);
        for (int j = 0; j < QK8_0; j++)
            out[i].qs[j] = (int8_t)quant_round_away(x[j] * id);
    }
}

void dequantize_row_q8_0(const void *x, float *y, int64_t n)
{
    const block_q8_0 *in = x;
    const int64_t nb = n / QK8_0;
    for (int64_t i = 0; i < nb; i++, y += QK8_0) {
        const float d = f16_to_f32(in[i].d);
        for (int j = 0; j < QK8_0; j++)
            y[j] = (float)in[i].qs[j] * d;
    }
}

void quantize_row_q8_1_ref(const float *x, void *y, int64_t n)
{
    block_q8_1 *out = y;
    const int64_t nb = n / QK8_1;
    for (int64_t i = 0; i < nb; i++, x += QK8_1) {
        const float d = quant_absmax(x, QK8_1) / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int j = 0; j < QK8_1; j++) {
            out[i].qs[j] = (int8_t)quant_round_away(x[j] * id);
            sum += out[i].qs[j];
        }
        out[i].d = f32_to_f16(d);
        /* s carries the block sum for the min term of q4_1/q5_1 dots; it uses
         * the unrounded d, as the files' tools do. */
        out[i].s = f32_to_f16((float)sum * d);
    }
}

void dequantize_row_q8_1(const void *x, float *y, int64_t n)
{
    const block_q8_1 *in = x;
    const int64_t nb = n / QK8_1;
    for (int64_t i = 0; i < nb; i++, y += QK8_1) {
        const float d = f16_to_f32(in[i].d);
        for (int j = 0; j < QK8_1; j++)
            y[j] = (float)in[i].qs[j] * d;
    }
}

/* ---- 8-bit activations, 32 per block ----
 * The activation side of a q8_0/q8_1 dot follows the SIMD rounding of the
 * usual CPU inference path rather than the file quantizer above: the
 * multiplier is 127/max in one division (not the reciprocal of max/127, which
 * can differ in the last bit) and codes round to nearest with ties to even
 * (the hardware rounding mode). Models are checked against that path, and an
 * activation one code away moves a logit measurably on small models. */

static void quant_block_q8_act(const float *x, int8_t *qs, float *d_out, int *sum_out)
{
    const float amax = quant_absmax(x, QK8_0);
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < QK8_0; j++) {
        qs[j] = (int8_t)quant_round_even(x[j] * id);
        sum += qs[j];
    }
    *d_out = amax / 127;
    *sum_out = sum;
}

void quantize_row_q8_0_act(const float *x, void *y, int64_t n)
{
    block_q8_0 *out = y;
    for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        float d;
        int sum;
        quant_block_q8_act(x, out[i].qs, &d, &sum);
        out[i].d = f32_to_f16(d);
    }
}

void quantize_row_q8_1_act(const float *x, void *y, int64_t n)
{
    block_q8_1 *out = y;
    for (int64_t i = 0; i < n / QK8_1; i++, x += QK8_1) {
        float d;
        int sum;
        quant_block_q8_act(x, out[i].qs, &d, &sum);
        out[i].d = f32_to_f16(d);
        out[i].s = f32_to_f16((float)sum * d);
    }
}

/* ---- 8-bit, 256 per block (partner of the k-quants) ---- */

void quantize_row_q8_K_ref(const float *x, void *y, int64_t n)
{
    block_q8_K *out = y;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        const float vmax = quant_signed_absmax(x, QK_K);
        if (vmax == 0.0f) {
            memset(&out[i], 0, sizeof out[i]);
            continue;
        }
        /* The extreme value maps to -127 (not -128) so codes stay symmetric. */
        const float iscale = -127.0f / vmax;
        for (int j = 0; j < QK_K; j++) {
            const int q = quant_round_even(iscale * x[j]);
            out[i].qs[j] = (int8_t)(q > 127 ? 127 : q);
        }
        for (int g = 0; g < QK_K / 16; g++) {
            int sum = 0;
            for (int j = 0; j < 16; j++)
                sum += out[i].qs[16 * g + j];
            out[i].bsums[g] = (int16_t)sum;
        }
        out[i].d = 1.0f / iscale;
    }
}

void dequantize_row_q8_K(const void *x, float *y, int64_t n)
{
    const block_q8_K *in = x;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++, y += QK_K) {
        for (int j = 0; j < QK_K; j++)
            y[j] = in[i].d * (float)in[i].qs[j];
    }
}

/* ---- rows ---- */

size_t quantize_rows(int type, const float *src, void *dst, int64_t n_rows, int64_t n_per_row)
{
    const struct type_traits *t = type_traits_get(type);
    const size_t row_size = type_row_size(type, n_per_row);
    if (t == NULL || row_size == 0 || n_rows < 0)
        return 0;
    uint8_t *out = dst;
    for (int64_t r = 0; r < n_rows; r++)
        t->from_float_ref(src + r * n_per_row, out + (size_t)r * row_size, n_per_row);
    return (size_t)n_rows * row_size;
}
