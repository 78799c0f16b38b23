/* test_ops.c: the row operations of ops.h against float64 references, on
 * random rows of many (odd) sizes, and their independence from other rows. */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/rng.h"
#include "ops/ops.h"
#include "ops/ops_simd.h"
#include "ops/quants.h"
#include "ops/types.h"
#include "test.h"

static const int64_t sizes[] = {1, 2, 3, 7, 16, 31, 64, 100, 255, 257, 1000, 2048, 4099};
#define N_SIZES (int)(sizeof sizes / sizeof sizes[0])

static float *rand_row(struct rng *r, int64_t n, float lo, float hi)
{
    float *v = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        v[i] = rng_range(r, lo, hi);
    return v;
}

static void test_rmsnorm(void)
{
    struct rng r;
    rng_seed(&r, 1);
    for (int s = 0; s < N_SIZES; s++) {
        const int64_t n = sizes[s];
        const float scale = s % 2 ? 3.0f : 0.01f;
        float *x = rand_row(&r, n, -scale, scale);
        float *w = rand_row(&r, n, 0.5f, 1.5f);
        float *y = malloc((size_t)n * sizeof(float));
        float *y0 = malloc((size_t)n * sizeof(float));
        const float eps = 1e-5f;
        op_rmsnorm(y, x, w, n, eps);
        op_rmsnorm(y0, x, NULL, n, eps);
        double ss = 0;
        for (int64_t i = 0; i < n; i++)
            ss += (double)x[i] * x[i];
        const double inv = 1.0 / sqrt(ss / (double)n + eps);
        double maxrel = 0, maxrel0 = 0;
        for (int64_t i = 0; i < n; i++) {
            const double ref0 = x[i] * inv, ref = ref0 * w[i];
            maxrel = fmax(maxrel, fabs(y[i] - ref) / (fabs(ref) + 1e-30));
            maxrel0 = fmax(maxrel0, fabs(y0[i] - ref0) / (fabs(ref0) + 1e-30));
        }
        CHECKF(maxrel < 4e-7 && maxrel0 < 3e-7, "n=%lld rel err %g / %g", (long long)n, maxrel,
               maxrel0);
        /* In place gives the same bits. */
        float *xi = malloc((size_t)n * sizeof(float));
        memcpy(xi, x, (size_t)n * sizeof(float));
        op_rmsnorm(xi, xi, w, n, eps);
        CHECK(memcmp(xi, y, (size_t)n * sizeof(float)) == 0);
        free(x), free(w), free(y), free(y0), free(xi);
    }
    /* eps dominates a zero row: the result is zero, not NaN. */
    float z[5] = {0}, zy[5];
    op_rmsnorm(zy, z, NULL, 5, 1e-6f);
    CHECK(zy[0] == 0.0f && zy[4] == 0.0f);
}

/* Reference rotation of one head in float64, angle theta_i = pos * base^(-2i/n_dims)
 * * freq_scale / factor_i. Returns the worst error relative to the tolerance. */
static double rope_check_head(const float *in, const float *out, int head_dim, int64_t pos,
                              const struct rope_params *p)
{
    const int half = p->n_dims / 2;
    double worst = 0;
    for (int i = 0; i < half; i++) {
        const double ff = p->freq_factors ? p->freq_factors[i] : 1.0;
        const double theta = (double)pos * pow(p->freq_base, -2.0 * i / p->n_dims) *
                             p->freq_scale / ff;
        const int i0 = p->neox ? i : 2 * i;
        const int i1 = p->neox ? i + half : 2 * i + 1;
        const double x0 = in[i0], x1 = in[i1];
        const double r0 = x0 * cos(theta) - x1 * sin(theta);
        const double r1 = x0 * sin(theta) + x1 * cos(theta);
        /* The angle is built in float by i + 1 roundings of a product: allow
         * a relative angle error growing with i, on top of float rounding. */
        const double angle_err = fabs(theta) * (2.0 * i + 6.0) * 6e-8 + 1e-7;
        const double tol = (fabs(x0) + fabs(x1)) * (angle_err + 1e-6) + 1e-7;
        worst = fmax(worst, fabs(out[i0] - r0) / tol);
        worst = fmax(worst, fabs(out[i1] - r1) / tol);
    }
    for (int i = p->n_dims; i < head_dim; i++)
        if (out[i] != in[i])
            worst = fmax(worst, 1e9); /* dimensions past n_dims must not move */
    return worst;
}

static void test_rope(void)
{
    struct rng r;
    rng_seed(&r, 2);
    const int64_t positions[] = {0, 1, 2, 7, 100, 511, 4095, 8191, 32768, 65535, 100000};
    const struct {
        int head_dim, n_dims, n_heads;
        float base;
    } shapes[] = {
        {64, 64, 4, 10000.0f}, {128, 128, 3, 500000.0f}, {8, 8, 5, 10000.0f},
        {80, 32, 2, 10000.0f}, {96, 64, 3, 1000000.0f}, {2, 2, 1, 10000.0f},
    };
    const float scales[] = {1.0f, 0.25f};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int hd = shapes[si].head_dim, nh = shapes[si].n_heads;
        for (int neox = 0; neox < 2; neox++) {
            for (int fs = 0; fs < 2; fs++) {
                for (size_t pi = 0; pi < sizeof positions / sizeof positions[0]; pi++) {
                    const int64_t pos = positions[pi];
                    struct rope_params p = {shapes[si].n_dims, shapes[si].base, scales[fs], NULL,
                                            neox};
                    float *in = rand_row(&r, (int64_t)hd * nh, -2.0f, 2.0f);
                    float *x = malloc((size_t)hd * nh * sizeof(float));
                    memcpy(x, in, (size_t)hd * nh * sizeof(float));
                    op_rope(x, nh, hd, pos, &p);
                    double worst = 0;
                    for (int h = 0; h < nh; h++)
                        worst = fmax(worst, rope_check_head(in + h * hd, x + h * hd, hd, pos, &p));
                    CHECKF(worst <= 1.0, "rope hd=%d n_dims=%d neox=%d scale=%g pos=%lld: %g x tol",
                           hd, p.n_dims, neox, (double)p.freq_scale, (long long)pos, worst);
                    /* Each head alone gives the same bits as all heads at once. */
                    int same = 1;
                    for (int h = 0; h < nh; h++) {
                        float one[256];
                        memcpy(one, in + h * hd, (size_t)hd * sizeof(float));
                        op_rope(one, 1, hd, pos, &p);
                        same &= memcmp(one, x + h * hd, (size_t)hd * sizeof(float)) == 0;
                    }
                    CHECK(same);
                    /* A rotation keeps each pair's length. */
                    if (pos == 100000 && nh > 0) {
                        const int half = p.n_dims / 2;
                        double worst_len = 0;
                        for (int i = 0; i < half; i++) {
                            const int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
                            const double l0 = hypot(in[a], in[b]), l1 = hypot(x[a], x[b]);
                            worst_len = fmax(worst_len, fabs(l0 - l1) / (l0 + 1e-30));
                        }
                        CHECK(worst_len < 1e-5);
                    }
                    free(in), free(x);
                }
            }
        }
    }

    /* The two layouts rotate different pairs: on the same input they differ. */
    float a[16], b[16];
    for (int i = 0; i < 16; i++)
        a[i] = b[i] = rng_range(&r, -1, 1);
    struct rope_params pn = {16, 10000.0f, 1.0f, NULL, 0}, px = {16, 10000.0f, 1.0f, NULL, 1};
    op_rope(a, 1, 16, 3, &pn);
    op_rope(b, 1, 16, 3, &px);
    CHECK(memcmp(a, b, sizeof a) != 0);
    /* Position 0 is the identity. */
    float c[16], d[16];
    for (int i = 0; i < 16; i++)
        c[i] = d[i] = rng_range(&r, -1, 1);
    op_rope(c, 1, 16, 0, &pn);
    CHECK(memcmp(c, d, sizeof c) == 0);
}

static void test_rope_llama3(void)
{
    /* Llama 3.1 defaults: factor 8, low 1, high 4, original context 8192. */
    const int n_dims = 128;
    const float base = 500000.0f, factor = 8.0f, lo = 1.0f, hi = 4.0f;
    const int ctx = 8192;
    float f[64];
    op_rope_llama3_factors(f, n_dims, base, factor, lo, hi, ctx);
    int n_one = 0, n_factor = 0, n_mid = 0, bad = 0;
    for (int i = 0; i < n_dims / 2; i++) {
        const double freq = pow(base, -2.0 * i / n_dims);
        const double wavelen = 2 * M_PI / freq;
        double ref;
        if (wavelen < ctx / hi) {
            ref = 1.0;
            n_one++;
        } else if (wavelen > ctx / lo) {
            ref = factor;
            n_factor++;
        } else {
            const double smooth = (ctx / wavelen - lo) / (hi - lo);
            ref = 1.0 / ((1 - smooth) / factor + smooth);
            n_mid++;
        }
        if (fabs(f[i] - ref) > 1e-6 * ref)
            bad++;
        if (i > 0 && f[i] < f[i - 1])
            bad++; /* factors never decrease with the wavelength */
    }
    CHECKF(bad == 0, "%d llama3 factors off", bad);
    CHECK(n_one > 0 && n_factor > 0 && n_mid > 0);
    CHECK(f[0] == 1.0f && f[63] == factor);

    /* RoPE with the factors divides each angle by its factor. */
    struct rng r;
    rng_seed(&r, 3);
    const int64_t positions[] = {0, 5, 1000, 8191, 70000, 100000};
    for (size_t pi = 0; pi < sizeof positions / sizeof positions[0]; pi++) {
        for (int neox = 0; neox < 2; neox++) {
            struct rope_params p = {n_dims, base, 1.0f, f, neox};
            float *in = rand_row(&r, 2 * n_dims, -1, 1);
            float x[256];
            memcpy(x, in, sizeof x);
            op_rope(x, 2, n_dims, positions[pi], &p);
            const double w = fmax(rope_check_head(in, x, n_dims, positions[pi], &p),
                                  rope_check_head(in + n_dims, x + n_dims, n_dims,
                                                  positions[pi], &p));
            CHECKF(w <= 1.0, "llama3 rope pos=%lld neox=%d: %g x tol",
                   (long long)positions[pi], neox, w);
            free(in);
        }
    }
}

static double silu_ref(double x) { return x / (1.0 + exp(-x)); }
static double gelu_ref(double x)
{
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * x * (1.0 + 0.044715 * x * x)));
}

static void test_activations(void)
{
    struct rng r;
    rng_seed(&r, 4);
    for (int s = 0; s < N_SIZES; s++) {
        const int64_t n = sizes[s];
        float *g = rand_row(&r, n, -20.0f, 20.0f);
        float *u = rand_row(&r, n, -3.0f, 3.0f);
        float *sw = malloc((size_t)n * sizeof(float)), *ge = malloc((size_t)n * sizeof(float));
        memcpy(sw, g, (size_t)n * sizeof(float));
        memcpy(ge, g, (size_t)n * sizeof(float));
        op_swiglu(sw, u, n);
        op_geglu(ge, u, n);
        double e1 = 0;
        for (int64_t i = 0; i < n; i++) {
            const double r1 = silu_ref(g[i]) * u[i];
            e1 = fmax(e1, fabs(sw[i] - r1) / (fabs(r1) + 1e-30));
        }
        CHECKF(e1 < 1e-5, "swiglu n=%lld rel err %g", (long long)n, e1);
        double a2 = 0;
        for (int64_t i = 0; i < n; i++) {
            const double r2 = gelu_ref(g[i]) * u[i];
            /* 1 + tanh cancels for x << 0: allow an ulp of 1 times |x u|. */
            const double tol = 1e-5 * fabs(r2) + 2.4e-7 * fabs(g[i]) * fabs(u[i]) + 1e-30;
            a2 = fmax(a2, fabs(ge[i] - r2) / tol);
        }
        CHECKF(a2 <= 1.0, "geglu n=%lld err %g x tol", (long long)n, a2);
        free(g), free(u), free(sw), free(ge);
    }
    /* Scalar forms and their edges. */
    CHECK(op_silu(0.0f) == 0.0f);
    CHECK(fabs(op_silu(1.0f) - silu_ref(1.0)) < 1e-7);
    CHECK(op_silu(-100.0f) > -1e-30f && op_silu(-100.0f) <= 0.0f);
    CHECK(op_silu(100.0f) == 100.0f);
    CHECK(op_gelu(0.0f) == 0.0f);
    CHECK(fabs(op_gelu(1.0f) - gelu_ref(1.0)) < 1e-7);
    CHECK(fabs(op_gelu(-1.5f) - gelu_ref(-1.5)) < 1e-7);
    CHECK(op_gelu(50.0f) == 50.0f);
    CHECK(!isnan(op_silu(-1e30f)) && !isnan(op_gelu(-1e30f)));
}

static void test_softmax(void)
{
    struct rng r;
    rng_seed(&r, 5);
    for (int s = 0; s < N_SIZES; s++) {
        const int64_t n = sizes[s];
        float *x = rand_row(&r, n, -30.0f, 30.0f);
        /* A few masked entries (not all). */
        if (n > 3)
            x[1] = x[n - 1] = -INFINITY;
        float *p = malloc((size_t)n * sizeof(float));
        memcpy(p, x, (size_t)n * sizeof(float));
        const float lse = op_softmax(p, n);
        double mx = -INFINITY;
        for (int64_t i = 0; i < n; i++)
            mx = fmax(mx, x[i]);
        double sum = 0;
        for (int64_t i = 0; i < n; i++)
            sum += exp((double)x[i] - mx);
        const double lse_ref = mx + log(sum);
        CHECKF(fabs(lse - lse_ref) < 1e-5 * (fabs(lse_ref) + 1), "lse n=%lld %g vs %g",
               (long long)n, (double)lse, lse_ref);
        double err = 0, total = 0;
        for (int64_t i = 0; i < n; i++) {
            const double ref = exp((double)x[i] - lse_ref);
            err = fmax(err, fabs(p[i] - ref) / (ref + 1e-37));
            total += p[i];
        }
        /* x - max rounds to an ulp of |x| (2e-6 at 30): exp carries it. */
        CHECKF(err < 5e-6, "softmax n=%lld rel err %g", (long long)n, err);
        CHECK(fabs(total - 1.0) < 1e-5);
        if (n > 3)
            CHECK(p[1] == 0.0f && p[n - 1] == 0.0f);
        free(x), free(p);
    }
    /* Large logits do not overflow. */
    float big[3] = {1000.0f, 999.0f, -1000.0f};
    const float l = op_softmax(big, 3);
    CHECK(fabs(l - (1000.0 + log(1 + exp(-1.0)))) < 1e-3);
    CHECK(big[2] == 0.0f && fabs(big[0] - 1 / (1 + exp(-1.0))) < 1e-6);
    /* All masked: zeros and -inf, no NaN. */
    float m[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    CHECK(op_softmax(m, 4) == -INFINITY);
    CHECK(m[0] == 0.0f && m[3] == 0.0f);
}

static void test_get_row(void)
{
    struct rng r;
    rng_seed(&r, 6);
    const int types[] = {PG_TYPE_F32,  PG_TYPE_F16,  PG_TYPE_BF16, PG_TYPE_Q8_0, PG_TYPE_Q4_0,
                         PG_TYPE_Q4_1, PG_TYPE_Q5_0, PG_TYPE_Q5_1, PG_TYPE_Q2_K, PG_TYPE_Q3_K,
                         PG_TYPE_Q4_K, PG_TYPE_Q5_K, PG_TYPE_Q6_K};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const int t = types[ti];
        const struct type_traits *tt = type_traits_get(t);
        CHECK(tt != NULL);
        if (!tt)
            continue;
        const int64_t ne0 = tt->block_size == 256 ? 512 : (tt->block_size == 1 ? 37 : 96);
        const int64_t rows = 7;
        float *src = rand_row(&r, ne0 * rows, -1.0f, 1.0f);
        const size_t rs = type_row_size(t, ne0);
        /* Rows padded apart, as in a strided view. */
        const size_t stride = rs + 16;
        uint8_t *q = calloc((size_t)rows, stride);
        for (int64_t i = 0; i < rows; i++)
            CHECK(quantize_rows(t, src + i * ne0, q + i * stride, 1, ne0) == rs);
        float got[512], ref[512];
        int same = 1;
        double err = 0;
        for (int64_t i = 0; i < rows; i++) {
            CHECK(op_get_row(got, t, q, stride, ne0, i) == 0);
            tt->to_float(q + i * stride, ref, ne0);
            same &= memcmp(got, ref, (size_t)ne0 * sizeof(float)) == 0;
            for (int64_t j = 0; j < ne0; j++)
                err = fmax(err, fabs(got[j] - src[i * ne0 + j]));
        }
        CHECKF(same, "%s: op_get_row differs from the type's dequantizer", tt->name);
        /* A loose bound: even 2-bit blocks stay within half the range. */
        CHECKF(err < (t == PG_TYPE_F32 ? 1e-30 : 0.5), "%s: max error %g", tt->name, err);
        if (t == PG_TYPE_F32)
            CHECK(err == 0);
        free(src), free(q);
    }
    float dst[64];
    CHECK(op_get_row(dst, 4, dst, 0, 32, 0) < 0);  /* unsupported type id */
    CHECK(op_get_row(dst, 999, dst, 0, 32, 0) < 0);
    CHECK(op_get_row(dst, PG_TYPE_Q4_0, dst, 0, 33, 0) < 0); /* not whole blocks */
    CHECK(op_get_row(dst, PG_TYPE_F32, dst, 0, 0, 0) < 0);
}

static void test_add(void)
{
    struct rng r;
    rng_seed(&r, 7);
    for (int s = 0; s < N_SIZES; s++) {
        const int64_t n = sizes[s];
        float *x = rand_row(&r, n, -5, 5), *y = rand_row(&r, n, -5, 5);
        float *x0 = malloc((size_t)n * sizeof(float));
        memcpy(x0, x, (size_t)n * sizeof(float));
        op_add(x, y, n);
        int ok = 1;
        for (int64_t i = 0; i < n; i++)
            ok &= x[i] == x0[i] + y[i];
        CHECK(ok);
        free(x), free(y), free(x0);
    }
}

/* Rows processed inside a large batch, at any offset, give the bits they give alone. */
static void test_row_independence(void)
{
    struct rng r;
    rng_seed(&r, 8);
    const int64_t n = 1027, rows = 9;
    float *batch = rand_row(&r, n * rows, -4, 4), *up = rand_row(&r, n * rows, -4, 4);
    float *w = rand_row(&r, n, 0.5f, 1.5f);
    float *norm_b = malloc((size_t)(n * rows) * sizeof(float));
    float *sw_b = malloc((size_t)(n * rows) * sizeof(float));
    float *sm_b = malloc((size_t)(n * rows) * sizeof(float));
    memcpy(sw_b, batch, (size_t)(n * rows) * sizeof(float));
    memcpy(sm_b, batch, (size_t)(n * rows) * sizeof(float));
    for (int64_t i = 0; i < rows; i++) {
        op_rmsnorm(norm_b + i * n, batch + i * n, w, n, 1e-6f);
        op_swiglu(sw_b + i * n, up + i * n, n);
        op_softmax(sm_b + i * n, n);
    }
    int same = 1;
    for (int64_t i = 0; i < rows; i++) {
        /* Alone, in a buffer with a different alignment. */
        float *buf = malloc((size_t)(n + 3) * sizeof(float)), *one = buf + 1 + i % 3;
        memcpy(one, batch + i * n, (size_t)n * sizeof(float));
        float out[1027];
        op_rmsnorm(out, one, w, n, 1e-6f);
        same &= memcmp(out, norm_b + i * n, sizeof out) == 0;
        op_swiglu(one, up + i * n, n);
        same &= memcmp(one, sw_b + i * n, sizeof out) == 0;
        memcpy(one, batch + i * n, (size_t)n * sizeof(float));
        op_softmax(one, n);
        same &= memcmp(one, sm_b + i * n, sizeof out) == 0;
        free(buf);
    }
    CHECK(same);
    free(batch), free(up), free(w), free(norm_b), free(sw_b), free(sm_b);
}

/* The shared exponential: accurate over the whole float range, exact edges. */
static void test_expf(void)
{
    double worst = 0;
    int bad_edges = 0;
    for (float x = -87.0f; x <= 88.0f; x += 0.00731f) {
        const double ref = exp((double)x);
        worst = fmax(worst, fabs(ops_expf(x) - ref) / ref);
    }
    CHECKF(worst < 3e-7, "ops_expf rel err %g", worst);
    bad_edges += ops_expf(0.0f) != 1.0f;
    bad_edges += ops_expf(-INFINITY) != 0.0f;
    bad_edges += ops_expf(-1000.0f) != 0.0f;
    /* Results below FLT_MIN are subnormal, rounded once, not flushed. */
    bad_edges += fabs((double)ops_expf(-87.5f) - exp(-87.5)) > 1.5e-45;
    bad_edges += fabs((double)ops_expf(-100.0f) - exp(-100.0)) > 1.5e-45;
    bad_edges += !isinf(ops_expf(89.0f)) || !isinf(ops_expf(INFINITY));
    bad_edges += !isnan(ops_expf(NAN));
    bad_edges += !(ops_expf(88.0f) < FLT_MAX && ops_expf(88.0f) > 1e38f);
    bad_edges += !(ops_expf(88.7f) < FLT_MAX && ops_expf(88.7f) > 3.3e38f);
    CHECK(bad_edges == 0);

    /* The SIMD paths give the scalar bits across the whole range, edges
     * (overflow, subnormal results, infinities, NaN) included. */
    enum { N = 4096 + 5 };
    static float xs[N], g[N], one[N];
    for (int i = 0; i < N; i++) {
        xs[i] = -210.0f + 420.0f * (float)i / (float)N;
        one[i] = 1.0f;
    }
    xs[0] = INFINITY, xs[1] = -INFINITY, xs[2] = NAN, xs[3] = 0.0f, xs[4] = -0.0f;
    const enum cpu_isa saved = cpu_isa_get();
    for (int isa = CPU_ISA_SCALAR; isa <= (int)cpu_isa_max(); isa++) {
        cpu_isa_set((enum cpu_isa)isa);
        memcpy(g, xs, sizeof g);
        op_swiglu(g, one, N);
        int diff = 0;
        for (int i = 0; i < N; i++) {
            const float want = ops_silu(xs[i]);
            diff += memcmp(&g[i], &want, sizeof want) != 0 && !(isnan(g[i]) && isnan(want));
        }
        CHECKF(diff == 0, "isa %d: %d silu values differ from the scalar path", isa, diff);
        for (int i = 0; i < N; i++)
            g[i] = xs[i] - 100.0f;
        op_softmax(g + 5, N - 5); /* the shifted exponential of each path */
        CHECK(isfinite(g[N - 1]) && g[N - 1] > 0.0f && g[5] == 0.0f);
    }
    cpu_isa_set(saved);
}

/* Every ISA path gives the scalar path's bits, for every row length. */
static void test_isa_paths(void)
{
    struct rng r;
    rng_seed(&r, 9);
    const enum cpu_isa saved = cpu_isa_get();
    const int64_t n_max = 1000;
    float *g = rand_row(&r, n_max, -30.0f, 30.0f), *u = rand_row(&r, n_max, -3.0f, 3.0f);
    /* Edges inside the vectors too. */
    g[3] = 0.0f, g[17] = -100.0f, g[18] = 100.0f, g[40] = -87.2f, g[41] = 87.9f;
    g[42] = -INFINITY, g[43] = 89.5f;
    float *ref = malloc(n_max * sizeof(float)), *got = malloc(n_max * sizeof(float));
    int same = 1, n_isa = 0;
    for (int64_t n = 1; n <= n_max; n += (n < 40 ? 1 : 97)) {
        for (int kind = 0; kind < 2; kind++) {
            for (int isa = CPU_ISA_SCALAR; isa <= (int)cpu_isa_max(); isa++) {
                cpu_isa_set((enum cpu_isa)isa);
                float *dst = isa == CPU_ISA_SCALAR ? ref : got;
                memcpy(dst, g, (size_t)n * sizeof(float));
                if (kind == 0)
                    op_swiglu(dst, u, n);
                else
                    op_softmax(dst, n);
                if (isa != CPU_ISA_SCALAR) {
                    n_isa++;
                    if (memcmp(ref, got, (size_t)n * sizeof(float))) {
                        same = 0;
                        fprintf(stderr, "%s n=%lld differs on %s\n", kind ? "softmax" : "swiglu",
                                (long long)n, cpu_isa_name((enum cpu_isa)isa));
                    }
                }
            }
        }
    }
    cpu_isa_set(saved);
    CHECK(same);
    if (cpu_isa_max() == CPU_ISA_SCALAR)
        CHECK(n_isa == 0);
    else
        CHECK(n_isa > 0);
    free(g), free(u), free(ref), free(got);
}

int main(void)
{
    test_expf();
    test_isa_paths();
    test_rmsnorm();
    test_rope();
    test_rope_llama3();
    test_activations();
    test_softmax();
    test_get_row();
    test_add();
    test_row_independence();
    TEST_END();
}
