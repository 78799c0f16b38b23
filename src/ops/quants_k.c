/*
 * quants_k.c: scalar reference quantize/dequantize of the k-quants (q2_K,
 * q3_K, q4_K, q5_K, q6_K): super-blocks of 256 values split into sub-blocks of
 * 16 or 32, each with its own small integer scale (and min), the scales
 * themselves quantized against one f16 super-scale.
 *
 * The sub-block searches follow GGUF's reference quantizer without importance
 * weights: a symmetric scale refined by least squares over a sweep of trial
 * scales (q6_K), an iterative per-element refinement (q3_K), and a scale+min
 * least-squares fit over a sweep (q2_K, q4_K, q5_K). The arithmetic is done in
 * the same order, so the output is the same.
 */
#include "ops/quants.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

/* Byte-exact results need every product rounded on its own: no fused
 * multiply-add contraction, whatever the compiler's mode (GCC contracts in
 * its GNU dialects, clang within expressions). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* Below this a group counts as all zero (no scale can be found for it). */
#define KQ_GROUP_EPS 1e-15f

/* Round to nearest, ties to even, for |v| < 2^22: adding 1.5 * 2^23 pushes
 * the fraction out of the mantissa, whose low bits then hold the integer. */
static inline int kq_round(float v)
{
    const float t = v + 12582912.0f;
    int32_t bits;
    memcpy(&bits, &t, sizeof bits);
    return (bits & 0x007fffff) - 0x00400000;
}

static inline int kq_clamp(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Symmetric codes in [-nmax, nmax) for n values, weighted by x^2: try the
 * scale that sends the extreme value to -nmax and 18 neighbours of it, keep
 * the one whose least-squares scale explains the most of the weighted signal.
 * Writes codes + nmax to L and returns the scale (0 for an all-zero group). */
static float kq_fit_symmetric(int n, int nmax, const float *x, int8_t *L)
{
    float amax = 0.0f, vmax = 0.0f;
    for (int i = 0; i < n; i++) {
        const float a = fabsf(x[i]);
        if (a > amax) {
            amax = a;
            vmax = x[i];
        }
    }
    if (amax < KQ_GROUP_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -nmax / vmax;
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = kq_clamp(kq_round(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int step = -9; step <= 9; step++) {
        if (step == 0)
            continue;
        iscale = -((float)nmax + 0.1f * (float)step) / vmax;
        sumlx = suml2 = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = kq_clamp(kq_round(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        /* sumlx^2/suml2 is the weighted energy this scale captures. */
        if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + kq_clamp(kq_round(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Symmetric 3-bit codes (nmax 4) for n values: start from the extreme-value
 * scale, then move single codes to the value the current least-squares scale
 * asks for whenever that raises the captured energy (up to 5 passes). Writes
 * codes + nmax to L and returns the least-squares scale. */
static float kq_fit_q3(int n, int nmax, const float *x, int8_t *L)
{
    float amax = 0.0f, vmax = 0.0f;
    for (int i = 0; i < n; i++) {
        const float a = fabsf(x[i]);
        if (a > amax) {
            amax = a;
            vmax = x[i];
        }
    }
    if (amax < KQ_GROUP_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    const float iscale = -nmax / vmax;
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = kq_clamp(kq_round(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            if (slx <= 0.0f)
                continue;
            float sl2 = suml2 - w * (float)L[i] * (float)L[i];
            const int nl = kq_clamp(kq_round(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (nl == L[i])
                continue;
            slx += w * x[i] * (float)nl;
            sl2 += w * (float)nl * (float)nl;
            if (sl2 > 0.0f && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)nl;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (!changed)
            break;
    }
    for (int i = 0; i < n; i++)
        L[i] = (int8_t)(L[i] + nmax);
    return sumlx / suml2;
}

/* Asymmetric codes in [0, nmax] for n values with weights w: x ~ scale*L - min.
 * Starts from the full [min(x,0), max(x)] range, then tries nstep+1 scales
 * (nmax + rmin + rdelta*k over the range) and for each solves the weighted
 * least-squares scale and offset (the offset kept <= 0), keeping the fit with
 * the smallest weighted error (absolute when use_mad, else squared).
 * Returns the scale; *neg_min gets the (non-negative) min to subtract. */
static float kq_fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                              float *neg_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                              bool use_mad)
{
    float lo = x[0], hi = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < lo)
            lo = x[i];
        if (x[i] > hi)
            hi = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (lo > 0.0f)
        lo = 0.0f;
    if (hi == lo) {
        memset(L, 0, (size_t)n);
        *neg_min = -lo;
        return 0.0f;
    }
    float iscale = (float)nmax / (hi - lo);
    float scale = 1.0f / iscale;
    float best_err = 0.0f;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)kq_clamp(kq_round(iscale * (x[i] - lo)), 0, nmax);
        float diff = scale * (float)L[i] + lo - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_err += w[i] * diff;
    }
    for (int step = 0; step <= nstep; step++) {
        iscale = (rmin + rdelta * (float)step + (float)nmax) / (hi - lo);
        float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = kq_clamp(kq_round(iscale * (x[i] - lo)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * (float)l;
            sum_l2 += w[i] * (float)l * (float)l;
            sum_xl += w[i] * (float)l * x[i];
        }
        const float det = sum_w * sum_l2 - sum_l * sum_l;
        if (!(det > 0.0f))
            continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
        if (this_min > 0.0f) {
            this_min = 0.0f;
            this_scale = sum_xl / sum_l2;
        }
        float err = 0.0f;
        for (int i = 0; i < n; i++) {
            float diff = this_scale * (float)Laux[i] + this_min - x[i];
            diff = use_mad ? fabsf(diff) : diff * diff;
            err += w[i] * diff;
        }
        if (err < best_err) {
            memcpy(L, Laux, (size_t)n);
            best_err = err;
            scale = this_scale;
            lo = this_min;
        }
    }
    *neg_min = -lo;
    return scale;
}

/* q4_K / q5_K keep 8 six-bit scales and 8 six-bit mins in 12 bytes: the
 * first four of each whole in bytes 0..7, the last four split into a low
 * nibble (bytes 8..11) and two high bits (the top of bytes 0..7). */
static void kq_get_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *mn)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4));
        *mn = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

static void kq_put_scale_min(int j, uint8_t *q, uint8_t sc, uint8_t mn)
{
    if (j < 4) {
        q[j] = sc;
        q[j + 4] = mn;
    } else {
        q[j + 4] = (uint8_t)((sc & 0x0F) | ((mn & 0x0F) << 4));
        q[j - 4] |= (uint8_t)((sc >> 4) << 6);
        q[j] |= (uint8_t)((mn >> 4) << 6);
    }
}

/* Packs 256 2-bit codes: byte l of each 32-byte half holds codes l, l+32,
 * l+64, l+96 of that 128-value half, lowest bits first. */
static void kq_pack_2bit(const uint8_t *L, uint8_t *qs)
{
    for (int h = 0; h < QK_K; h += 128) {
        for (int l = 0; l < 32; l++) {
            qs[h / 4 + l] = (uint8_t)(L[h + l] | (L[h + l + 32] << 2) | (L[h + l + 64] << 4) |
                                      (L[h + l + 96] << 6));
        }
    }
}

/* ---- q2_K: 16 groups of 16, 2-bit codes, 4-bit scale and min per group ---- */

void quantize_row_q2_K_ref(const float *x, void *y, int64_t n)
{
    block_q2_K *out = y;
    const int64_t nb = n / QK_K;
    uint8_t L[QK_K], Laux[16];
    float w[16], scales[QK_K / 16], mins[QK_K / 16];

    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        block_q2_K *b = &out[i];
        float max_scale = 0.0f, max_min = 0.0f;
        for (int g = 0; g < QK_K / 16; g++) {
            for (int l = 0; l < 16; l++)
                w[l] = fabsf(x[16 * g + l]);
            scales[g] = kq_fit_scale_min(16, 3, x + 16 * g, w, L + 16 * g, &mins[g], Laux,
                                         -0.5f, 0.1f, 15, true);
            if (scales[g] > max_scale)
                max_scale = scales[g];
            if (mins[g] > max_min)
                max_min = mins[g];
        }
        if (max_scale > 0.0f) {
            const float iscale = 15.0f / max_scale;
            for (int g = 0; g < QK_K / 16; g++)
                b->scales[g] = (uint8_t)kq_round(iscale * scales[g]);
            b->d = f32_to_f16(max_scale / 15.0f);
        } else {
            memset(b->scales, 0, sizeof b->scales);
            b->d = f32_to_f16(0.0f);
        }
        if (max_min > 0.0f) {
            const float iscale = 15.0f / max_min;
            for (int g = 0; g < QK_K / 16; g++)
                b->scales[g] |= (uint8_t)(kq_round(iscale * mins[g]) << 4);
            b->dmin = f32_to_f16(max_min / 15.0f);
        } else {
            b->dmin = f32_to_f16(0.0f);
        }
        /* Re-quantize against the scales as stored, rounding included. */
        const float d_all = f16_to_f32(b->d), m_all = f16_to_f32(b->dmin);
        for (int g = 0; g < QK_K / 16; g++) {
            const float d = d_all * (float)(b->scales[g] & 0x0F);
            if (d == 0.0f)
                continue;
            const float dm = m_all * (float)(b->scales[g] >> 4);
            for (int l = 0; l < 16; l++)
                L[16 * g + l] = (uint8_t)kq_clamp(kq_round((x[16 * g + l] + dm) / d), 0, 3);
        }
        kq_pack_2bit(L, b->qs);
    }
}

void dequantize_row_q2_K(const void *x, float *y, int64_t n)
{
    const block_q2_K *in = x;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = f16_to_f32(in[i].d), dmin = f16_to_f32(in[i].dmin);
        for (int k = 0; k < QK_K; k++) {
            /* Value k sits in half h, byte (k % 32) of it, bit pair (k / 32) % 4. */
            const int h = k / 128, l = k % 32, shift = 2 * ((k / 32) % 4);
            const uint8_t sc = in[i].scales[k / 16];
            const int q = (in[i].qs[32 * h + l] >> shift) & 3;
            y[k] = d * (float)(sc & 0x0F) * (float)q - dmin * (float)(sc >> 4);
        }
        y += QK_K;
    }
}

/* ---- q3_K: 16 groups of 16, 3-bit codes (2 low bits + a high-bit mask),
 * 6-bit signed scale per group ---- */

static int kq_q3_get_scale(const uint8_t *s, int g)
{
    const int low = g < 8 ? (s[g] & 0x0F) : (s[g - 8] >> 4);
    const int high = (s[8 + g % 4] >> (2 * (g / 4))) & 3;
    return (low | high << 4) - 32;
}

void quantize_row_q3_K_ref(const float *x, void *y, int64_t n)
{
    block_q3_K *out = y;
    const int64_t nb = n / QK_K;
    int8_t L[QK_K];
    float scales[QK_K / 16];

    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        block_q3_K *b = &out[i];
        float max_scale = 0.0f, amax = 0.0f;
        for (int g = 0; g < QK_K / 16; g++) {
            scales[g] = kq_fit_q3(16, 4, x + 16 * g, L + 16 * g);
            const float a = fabsf(scales[g]);
            if (a > amax) {
                amax = a;
                max_scale = scales[g];
            }
        }
        memset(b->scales, 0, sizeof b->scales);
        if (max_scale != 0.0f) {
            const float iscale = -32.0f / max_scale;
            for (int g = 0; g < QK_K / 16; g++) {
                /* The rounded value goes through int8 first, as the files' tool does. */
                const int8_t r = (int8_t)kq_round(iscale * scales[g]);
                const int l = kq_clamp(r, -32, 31) + 32;
                if (g < 8)
                    b->scales[g] = (uint8_t)(l & 0x0F);
                else
                    b->scales[g - 8] |= (uint8_t)((l & 0x0F) << 4);
                b->scales[8 + g % 4] |= (uint8_t)((l >> 4) << (2 * (g / 4)));
            }
            b->d = f32_to_f16(1.0f / iscale);
        } else {
            b->d = f32_to_f16(0.0f);
        }
        const float d_all = f16_to_f32(b->d);
        for (int g = 0; g < QK_K / 16; g++) {
            const float d = d_all * (float)kq_q3_get_scale(b->scales, g);
            if (d == 0.0f)
                continue;
            for (int l = 0; l < 16; l++)
                L[16 * g + l] = (int8_t)(kq_clamp(kq_round(x[16 * g + l] / d), -4, 3) + 4);
        }
        /* Bit 2 of code k goes to hmask[k % 32], bit k / 32. */
        memset(b->hmask, 0, sizeof b->hmask);
        uint8_t low[QK_K];
        for (int k = 0; k < QK_K; k++) {
            if (L[k] > 3)
                b->hmask[k % 32] |= (uint8_t)(1u << (k / 32));
            low[k] = (uint8_t)(L[k] & 3);
        }
        kq_pack_2bit(low, b->qs);
    }
}

void dequantize_row_q3_K(const void *x, float *y, int64_t n)
{
    const block_q3_K *in = x;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d_all = f16_to_f32(in[i].d);
        int sc[QK_K / 16];
        for (int g = 0; g < QK_K / 16; g++)
            sc[g] = kq_q3_get_scale(in[i].scales, g);
        for (int k = 0; k < QK_K; k++) {
            const int h = k / 128, l = k % 32, shift = 2 * ((k / 32) % 4);
            int q = (in[i].qs[32 * h + l] >> shift) & 3;
            if (!(in[i].hmask[l] & (1u << (k / 32))))
                q -= 4;
            y[k] = d_all * (float)sc[k / 16] * (float)q;
        }
        y += QK_K;
    }
}

/* ---- q4_K / q5_K: 8 groups of 32, 4- or 5-bit codes, 6-bit scale and min ---- */

/* The common part: fit every group of block x, store d, dmin and the packed
 * scales, and return the final codes (0..nmax) in L. */
static void kq_quantize_scale_min_block(const float *x, int nmax, float rmin, int nstep,
                                        pg_f16 *d_out, pg_f16 *dmin_out, uint8_t *packed,
                                        uint8_t *L)
{
    uint8_t Laux[32];
    float w[32], scales[QK_K / 32], mins[QK_K / 32];
    float max_scale = 0.0f, max_min = 0.0f;
    for (int g = 0; g < QK_K / 32; g++) {
        const float *xg = x + 32 * g;
        float sum_x2 = 0.0f;
        for (int l = 0; l < 32; l++)
            sum_x2 += xg[l] * xg[l];
        /* Weight by magnitude plus the group's RMS: large values matter more,
         * small ones still count. */
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            w[l] = av_x + fabsf(xg[l]);
        scales[g] = kq_fit_scale_min(32, nmax, xg, w, L + 32 * g, &mins[g], Laux, rmin, 0.1f,
                                     nstep, false);
        if (scales[g] > max_scale)
            max_scale = scales[g];
        if (mins[g] > max_min)
            max_min = mins[g];
    }
    const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
    memset(packed, 0, K_SCALE_SIZE);
    for (int g = 0; g < QK_K / 32; g++) {
        /* Rounded values pass through uint8 before the clamp, as in the files' tool. */
        uint8_t ls = (uint8_t)kq_round(inv_scale * scales[g]);
        uint8_t lm = (uint8_t)kq_round(inv_min * mins[g]);
        ls = ls > 63 ? 63 : ls;
        lm = lm > 63 ? 63 : lm;
        kq_put_scale_min(g, packed, ls, lm);
    }
    *d_out = f32_to_f16(max_scale / 63.0f);
    *dmin_out = f32_to_f16(max_min / 63.0f);

    const float d_all = f16_to_f32(*d_out), m_all = f16_to_f32(*dmin_out);
    for (int g = 0; g < QK_K / 32; g++) {
        uint8_t sc, mn;
        kq_get_scale_min(g, packed, &sc, &mn);
        const float d = d_all * (float)sc;
        if (d == 0.0f)
            continue;
        const float dm = m_all * (float)mn;
        for (int l = 0; l < 32; l++)
            L[32 * g + l] = (uint8_t)kq_clamp(kq_round((x[32 * g + l] + dm) / d), 0, nmax);
    }
}

void quantize_row_q4_K_ref(const float *x, void *y, int64_t n)
{
    block_q4_K *out = y;
    const int64_t nb = n / QK_K;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        block_q4_K *b = &out[i];
        kq_quantize_scale_min_block(x, 15, -1.0f, 20, &b->d, &b->dmin, b->scales, L);
        /* Byte l of each 32-byte chunk: code l of a 64-value pair low, l+32 high. */
        for (int c = 0; c < QK_K / 64; c++) {
            for (int l = 0; l < 32; l++)
                b->qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + l + 32] << 4));
        }
    }
}

void dequantize_row_q4_K(const void *x, float *y, int64_t n)
{
    const block_q4_K *in = x;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = f16_to_f32(in[i].d), dmin = f16_to_f32(in[i].dmin);
        for (int g = 0; g < QK_K / 32; g++) {
            uint8_t sc, mn;
            kq_get_scale_min(g, in[i].scales, &sc, &mn);
            const float dl = d * (float)sc, ml = dmin * (float)mn;
            const uint8_t *q = in[i].qs + 32 * (g / 2);
            const int shift = 4 * (g % 2);
            for (int l = 0; l < 32; l++)
                y[l] = dl * (float)((q[l] >> shift) & 0x0F) - ml;
            y += 32;
        }
    }
}

void quantize_row_q5_K_ref(const float *x, void *y, int64_t n)
{
    block_q5_K *out = y;
    const int64_t nb = n / QK_K;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        block_q5_K *b = &out[i];
        kq_quantize_scale_min_block(x, 31, -0.5f, 15, &b->d, &b->dmin, b->scales, L);
        /* As q4_K for the low 4 bits; bit 4 of code k goes to qh[k % 32], bit k / 32. */
        memset(b->qh, 0, sizeof b->qh);
        for (int k = 0; k < QK_K; k++) {
            if (L[k] > 15)
                b->qh[k % 32] |= (uint8_t)(1u << (k / 32));
        }
        for (int c = 0; c < QK_K / 64; c++) {
            for (int l = 0; l < 32; l++)
                b->qs[32 * c + l] =
                    (uint8_t)((L[64 * c + l] & 0x0F) | ((L[64 * c + l + 32] & 0x0F) << 4));
        }
    }
}

void dequantize_row_q5_K(const void *x, float *y, int64_t n)
{
    const block_q5_K *in = x;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = f16_to_f32(in[i].d), dmin = f16_to_f32(in[i].dmin);
        for (int g = 0; g < QK_K / 32; g++) {
            uint8_t sc, mn;
            kq_get_scale_min(g, in[i].scales, &sc, &mn);
            const float dl = d * (float)sc, ml = dmin * (float)mn;
            const uint8_t *q = in[i].qs + 32 * (g / 2);
            const int shift = 4 * (g % 2);
            for (int l = 0; l < 32; l++) {
                const int hi = (in[i].qh[l] >> g) & 1;
                y[l] = dl * (float)(((q[l] >> shift) & 0x0F) | hi << 4) - ml;
            }
            y += 32;
        }
    }
}

/* ---- q6_K: 16 groups of 16, 6-bit codes (4 low + 2 high bits), int8 scales ---- */

void quantize_row_q6_K_ref(const float *x, void *y, int64_t n)
{
    block_q6_K *out = y;
    const int64_t nb = n / QK_K;
    int8_t L[QK_K];
    float scales[QK_K / 16];

    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        block_q6_K *b = &out[i];
        float max_scale = 0.0f, max_abs = 0.0f;
        for (int g = 0; g < QK_K / 16; g++) {
            scales[g] = kq_fit_symmetric(16, 32, x + 16 * g, L + 16 * g);
            const float a = fabsf(scales[g]);
            if (a > max_abs) {
                max_abs = a;
                max_scale = scales[g];
            }
        }
        if (max_abs < KQ_GROUP_EPS) {
            memset(b, 0, sizeof *b);
            continue;
        }
        const float iscale = -128.0f / max_scale;
        b->d = f32_to_f16(1.0f / iscale);
        for (int g = 0; g < QK_K / 16; g++) {
            const int s = kq_round(iscale * scales[g]);
            b->scales[g] = (int8_t)(s > 127 ? 127 : s);
        }
        const float d_all = f16_to_f32(b->d);
        for (int g = 0; g < QK_K / 16; g++) {
            const float d = d_all * (float)b->scales[g];
            if (d == 0.0f)
                continue;
            for (int l = 0; l < 16; l++)
                L[16 * g + l] = (int8_t)(kq_clamp(kq_round(x[16 * g + l] / d), -32, 31) + 32);
        }
        /* Per 128-value half: ql byte l holds codes l (low) and l+64 (high nibble),
         * ql byte l+32 codes l+32 and l+96; qh byte l the top two bits of all four. */
        for (int h = 0; h < QK_K / 128; h++) {
            const int8_t *Lh = L + 128 * h;
            uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
            for (int l = 0; l < 32; l++) {
                ql[l] = (uint8_t)((Lh[l] & 0x0F) | ((Lh[l + 64] & 0x0F) << 4));
                ql[l + 32] = (uint8_t)((Lh[l + 32] & 0x0F) | ((Lh[l + 96] & 0x0F) << 4));
                qh[l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) |
                                  ((Lh[l + 64] >> 4) << 4) | ((Lh[l + 96] >> 4) << 6));
            }
        }
    }
}

void dequantize_row_q6_K(const void *x, float *y, int64_t n)
{
    const block_q6_K *in = x;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = f16_to_f32(in[i].d);
        for (int k = 0; k < QK_K; k++) {
            const int h = k / 128, r = k % 128, quarter = r / 32, l = r % 32;
            const uint8_t lbyte = in[i].ql[64 * h + l + 32 * (quarter & 1)];
            const int low = quarter < 2 ? (lbyte & 0x0F) : (lbyte >> 4);
            const int high = (in[i].qh[32 * h + l] >> (2 * quarter)) & 3;
            y[k] = d * (float)in[i].scales[k / 16] * (float)((low | high << 4) - 32);
        }
        y += QK_K;
    }
}
