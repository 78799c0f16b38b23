/*
 * ops.c: the row-wise operations of a transformer forward pass (RMS norm,
 * RoPE, gated activations, softmax, row lookup, residual add) on F32 rows.
 *
 * The arithmetic follows the reference CPU implementation that GGUF models
 * are usually checked against: the RMS norm sums squares in double, RoPE
 * builds each angle by repeated float multiplication from the position, and
 * softmax sums exponentials in double. Each result depends only on its own
 * row, so a row gives the same bits whatever else is processed with it.
 * The exponentials (SwiGLU, softmax) have AVX2 and AVX-512 paths that give
 * the same bits as the scalar one (ops_simd.h).
 */
#include "ops/ops.h"

#include <math.h>
#include <string.h>

#include "base/cpu.h"
#include "ops/ops_simd.h"
#include "ops/types.h"
#include "pagoda.h"

void op_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps)
{
    if (n <= 0)
        return;
    /* Squares are rounded to float before the double sum, as the reference
     * does; summing exact squares would differ in the last bits. */
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / (double)n);
    const float scale = 1.0f / sqrtf(mean + eps);
    /* Scale first, then the weight: two float roundings, like a norm op
     * followed by a separate multiply. */
    if (w) {
        for (int64_t i = 0; i < n; i++)
            y[i] = (x[i] * scale) * w[i];
    } else {
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] * scale;
    }
}

/* Largest n_dims the on-stack angle table handles; real models use <= 256. */
#define ROPE_MAX_DIMS 1024

/* Parameters a model loader has not validated (n_dims odd, above head_dim or
 * ROPE_MAX_DIMS) leave x unchanged rather than read out of bounds. */
void op_rope(float *x, int n_heads, int head_dim, int64_t pos, const struct rope_params *p)
{
    const int n_dims = p->n_dims;
    if (n_dims <= 0 || n_dims > head_dim || n_dims % 2 || n_dims > ROPE_MAX_DIMS)
        return;
    float cs[ROPE_MAX_DIMS / 2], sn[ROPE_MAX_DIMS / 2];
    const int half = n_dims / 2;

    /* theta_i = pos * base^(-2i/n_dims), built by repeated multiplication in
     * float from the position: the same rounding the reference accumulates,
     * which matters at long positions (theta of 1e5 has an ulp near 0.008). */
    const float theta_scale = powf(p->freq_base, -2.0f / (float)n_dims);
    float theta = (float)pos;
    for (int i = 0; i < half; i++) {
        const float ff = p->freq_factors ? p->freq_factors[i] : 1.0f;
        const float t = p->freq_scale * (theta / ff);
        cs[i] = cosf(t);
        sn[i] = sinf(t);
        theta *= theta_scale;
    }

    /* Each rotated value is one product rounded, then a fused multiply-add
     * of the other: the rounding the reference gets when its compiler fuses
     * these expressions (as it does on FMA hardware). */
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (int64_t)h * head_dim;
        if (p->neox) {
            for (int i = 0; i < half; i++) {
                const float x0 = v[i], x1 = v[i + half];
                v[i] = fmaf(x0, cs[i], -(x1 * sn[i]));
                v[i + half] = fmaf(x0, sn[i], x1 * cs[i]);
            }
        } else {
            for (int i = 0; i < half; i++) {
                const float x0 = v[2 * i], x1 = v[2 * i + 1];
                v[2 * i] = fmaf(x0, cs[i], -(x1 * sn[i]));
                v[2 * i + 1] = fmaf(x0, sn[i], x1 * cs[i]);
            }
        }
    }
}

void op_rope_llama3_factors(float *factors, int n_dims, float freq_base, float factor,
                            float low_freq_factor, float high_freq_factor,
                            int original_context)
{
    /* Wavelengths shorter than original_context / high_freq_factor keep their
     * frequency, longer than original_context / low_freq_factor are divided
     * by factor, and the band between is blended smoothly. */
    const double pi = 3.14159265358979323846;
    const double low_wavelen = (double)original_context / low_freq_factor;
    const double high_wavelen = (double)original_context / high_freq_factor;
    for (int i = 0; i < n_dims / 2; i++) {
        const double freq = 1.0 / pow((double)freq_base, (double)(2 * i) / (double)n_dims);
        const double wavelen = 2.0 * pi / freq;
        double f;
        if (wavelen < high_wavelen) {
            f = 1.0;
        } else if (wavelen > low_wavelen) {
            f = factor;
        } else if (high_freq_factor != low_freq_factor) {
            const double smooth = ((double)original_context / wavelen - low_freq_factor) /
                                  ((double)high_freq_factor - low_freq_factor);
            f = 1.0 / ((1.0 - smooth) / factor + smooth);
        } else {
            f = factor; /* an empty band: only its edge lands here */
        }
        factors[i] = (float)f;
    }
}

float op_silu(float x)
{
    return ops_silu(x);
}

float op_gelu(float x)
{
    const float sqrt_2_over_pi = 0.79788456080286535587989211986876f;
    const float coef_a = 0.044715f;
    return 0.5f * x * (1.0f + tanhf(sqrt_2_over_pi * x * (1.0f + coef_a * x * x)));
}

void op_swiglu(float *gate, const float *up, int64_t n)
{
    int64_t i = 0;
#if defined(PAGODA_HAVE_X86)
    const enum cpu_isa isa = cpu_isa_get();
    if (isa >= CPU_ISA_AVX512)
        i = ops_swiglu_avx512(gate, up, n);
    else if (isa >= CPU_ISA_AVX2)
        i = ops_swiglu_avx2(gate, up, n);
#endif
    for (; i < n; i++)
        gate[i] = ops_silu(gate[i]) * up[i];
}

void op_geglu(float *gate, const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        gate[i] = op_gelu(gate[i]) * up[i];
}

float op_softmax(float *x, int64_t n)
{
    if (n <= 0)
        return -INFINITY;
    float max = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (x[i] > max)
            max = x[i];
    if (max == -INFINITY) {
        /* Every entry masked: no distribution exists; leave zeros. */
        for (int64_t i = 0; i < n; i++)
            x[i] = 0.0f;
        return -INFINITY;
    }
    int64_t done = 0;
#if defined(PAGODA_HAVE_X86)
    const enum cpu_isa isa = cpu_isa_get();
    if (isa >= CPU_ISA_AVX512)
        done = ops_exp_shift_avx512(x, n, max);
    else if (isa >= CPU_ISA_AVX2)
        done = ops_exp_shift_avx2(x, n, max);
#endif
    for (int64_t i = done; i < n; i++)
        x[i] = ops_expf(x[i] - max);
    /* The sum runs in order whatever path made the exponentials. */
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)x[i];
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++)
        x[i] *= inv;
    return max + (float)log(sum);
}

int op_get_row(float *dst, int type, const void *data, size_t row_stride, int64_t ne0,
               int64_t row)
{
    const struct type_traits *tt = type_traits_get(type);
    if (!tt || !tt->to_float || ne0 <= 0 || row < 0 || ne0 % tt->block_size)
        return PAGODA_EINVAL;
    const uint8_t *src = (const uint8_t *)data + (size_t)row * row_stride;
    if (type == PG_TYPE_F32)
        memcpy(dst, src, (size_t)ne0 * sizeof(float));
    else
        tt->to_float(src, dst, ne0);
    return 0;
}

void op_add(float *x, const float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] += y[i];
}
