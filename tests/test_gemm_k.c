/*
 * test_gemm_k.c: the k-quant matmul kernels (q2_K..q6_K weights against q8_K
 * activations) at every ISA level this CPU has: scalar against a float64 dot
 * of the dequantized operands, SIMD against scalar, bitwise batch invariance
 * (a pair's result must not depend on the rows around it in a call), and the
 * SIMD q8_K converters against the reference bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/rng.h"
#include "ops/kernels.h"
#include "ops/quants.h"
#include "test.h"

enum { LEVELS = 3 };

static struct kernel_table tables[LEVELS];
static int n_levels;

static void build_tables(void)
{
    const int max = (int)cpu_isa_max();
    for (int l = 0; l < LEVELS && l <= max; l++) {
        memset(&tables[l], 0, sizeof tables[l]);
        kernels_scalar_k_init(&tables[l]);
#if defined(PAGODA_HAVE_X86)
        if (l >= CPU_ISA_AVX2)
            kernels_avx2_k_init(&tables[l]);
        if (l >= CPU_ISA_AVX512)
            kernels_avx512_k_init(&tables[l]);
#endif
        n_levels = l + 1;
    }
}

/* Weights with varied row scales and some outliers, so scales and mins of
 * every size show up; some rows get an all-zero block. */
static void fill_weights(struct rng *r, float *w, int64_t n, int64_t k)
{
    for (int64_t j = 0; j < n; j++) {
        const float scale = 0.02f * (1.0f + 4.0f * rng_uniform(r));
        const float shift = (j % 3 == 0) ? 0.01f * rng_range(r, -1.0f, 1.0f) : 0.0f;
        for (int64_t i = 0; i < k; i++) {
            float v = scale * rng_normal(r) + shift;
            if (rng_uniform(r) < 0.01f)
                v *= 8.0f;
            w[j * k + i] = v;
        }
        if (j % 5 == 1)
            memset(w + j * k + (j % (k / 256)) * 256, 0, 256 * sizeof(float));
    }
}

static void fill_acts(struct rng *r, float *x, int64_t b, int64_t k)
{
    for (int64_t i = 0; i < b; i++) {
        const float scale = 0.1f + 3.0f * rng_uniform(r);
        for (int64_t kk = 0; kk < k; kk++)
            x[i * k + kk] = scale * rng_normal(r);
        if (i % 7 == 3) /* a zero block: d = 0, sums 0 */
            memset(x + i * k + (i % (k / 256)) * 256, 0, 256 * sizeof(float));
    }
}

static void run_gemm(gemm_fn fn, int64_t k, const uint8_t *w, size_t ws, int64_t n,
                     const uint8_t *x, size_t xs, int64_t b, float *y, int64_t ys)
{
    const struct gemm_args a = {.k = k, .w = w, .w_stride = ws, .n = n, .x = x,
                                .x_stride = xs, .b = b, .y = y, .y_stride = ys};
    fn(&a);
}

static void test_type(int type, int64_t k, int64_t n, uint64_t seed)
{
    /* 1..8 rows take the in-register paths (one accumulator per row), 9 and
     * up the tiled one. */
    static const int64_t bs[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 32, 64, 100};
    const int64_t bmax = k > 8192 ? 20 : 100;
    const struct type_traits *tt = type_traits_get(type);
    const size_t wrow = type_row_size(type, k), xrow = type_row_size(PG_TYPE_Q8_K, k);
    struct rng r;
    rng_seed(&r, seed);

    float *wf = malloc(sizeof(float) * (size_t)(n * k));
    float *xf = malloc(sizeof(float) * (size_t)(bmax * k));
    uint8_t *wq = malloc(wrow * (size_t)n);
    uint8_t *xq = malloc(xrow * (size_t)bmax);
    double *wd = malloc(sizeof(double) * (size_t)(n * k));
    double *xd = malloc(sizeof(double) * (size_t)(bmax * k));
    float *tmp = malloc(sizeof(float) * (size_t)k);
    double *ref = malloc(sizeof(double) * (size_t)(bmax * n));
    double *mag = malloc(sizeof(double) * (size_t)(bmax * n));
    float *y0 = malloc(sizeof(float) * (size_t)(bmax * n));
    float *y1 = malloc(sizeof(float) * (size_t)(bmax * n));
    float *ys = malloc(sizeof(float) * (size_t)(bmax * n));

    fill_weights(&r, wf, n, k);
    fill_acts(&r, xf, bmax, k);
    CHECK(quantize_rows(type, wf, wq, n, k) == wrow * (size_t)n);
    CHECK(quantize_rows(PG_TYPE_Q8_K, xf, xq, bmax, k) == xrow * (size_t)bmax);
    for (int64_t j = 0; j < n; j++) {
        tt->to_float(wq + (size_t)j * wrow, tmp, k);
        for (int64_t i = 0; i < k; i++)
            wd[j * k + i] = tmp[i];
    }
    for (int64_t j = 0; j < bmax; j++) {
        dequantize_row_q8_K(xq + (size_t)j * xrow, tmp, k);
        for (int64_t i = 0; i < k; i++)
            xd[j * k + i] = tmp[i];
    }
    for (int64_t i = 0; i < bmax; i++) {
        for (int64_t j = 0; j < n; j++) {
            double s = 0, m = 0;
            for (int64_t kk = 0; kk < k; kk++) {
                s += wd[j * k + kk] * xd[i * k + kk];
                m += fabs(wd[j * k + kk] * xd[i * k + kk]);
            }
            ref[i * n + j] = s;
            mag[i * n + j] = m;
        }
    }

    /* Scalar: close to the exact dot of what the blocks hold. */
    run_gemm(tables[0].gemm[type], k, wq, wrow, n, xq, xrow, bmax, ys, n);
    double worst = 0;
    for (int64_t i = 0; i < bmax * n; i++) {
        const double e = fabs(ys[i] - ref[i]) / (mag[i] + 1e-30);
        if (e > worst)
            worst = e;
    }
    CHECKF(worst < 1e-6, "%s k=%lld scalar vs float64: relative error %.3g", tt->name,
           (long long)k, worst);

    for (int l = 0; l < n_levels; l++) {
        gemm_fn fn = tables[l].gemm[type];
        const char *isa = tables[l].isa[type];
        CHECK(fn != NULL);
        if (!fn)
            continue;
        /* The whole batch at once, then SIMD against scalar. */
        run_gemm(fn, k, wq, wrow, n, xq, xrow, bmax, y0, n);
        /* Every level follows the scalar kernels' order of float steps, so
         * the bits agree, not just the values. */
        int differ = 0;
        for (int64_t i = 0; i < bmax * n; i++)
            differ += memcmp(&y0[i], &ys[i], sizeof(float)) != 0;
        CHECKF(differ == 0, "%s %s k=%lld: %d of %lld results differ from scalar", tt->name, isa,
               (long long)k, differ, (long long)(bmax * n));

        /* Sub-batches and sub-ranges of weight rows at various offsets must
         * reproduce the same bits. */
        int mismatches = 0;
        for (size_t bi = 0; bi < sizeof bs / sizeof bs[0]; bi++) {
            const int64_t b = bs[bi];
            if (b > bmax)
                continue;
            for (int rep = 0; rep < 2; rep++) {
                const int64_t i0 = (int64_t)(rng_next(&r) % (uint64_t)(bmax - b + 1));
                const int64_t nn = rep == 0 ? n : 1 + (int64_t)(rng_next(&r) % (uint64_t)n);
                const int64_t j0 = (int64_t)(rng_next(&r) % (uint64_t)(n - nn + 1));
                for (int64_t i = 0; i < b * nn; i++)
                    y1[i] = NAN;
                run_gemm(fn, k, wq + (size_t)j0 * wrow, wrow, nn, xq + (size_t)i0 * xrow, xrow,
                         b, y1, nn);
                for (int64_t i = 0; i < b; i++)
                    for (int64_t j = 0; j < nn; j++)
                        if (memcmp(&y1[i * nn + j], &y0[(i0 + i) * n + j0 + j], sizeof(float)))
                            mismatches++;
            }
        }
        CHECKF(mismatches == 0, "%s %s k=%lld: %d results changed with the batch", tt->name, isa,
               (long long)k, mismatches);

        /* Row strides that break vector alignment (blocks keep their own) and a
         * wider output must not matter. */
        const size_t wpad = wrow + 14, xpad = xrow + 36;
        uint8_t *wp = malloc(wpad * (size_t)n), *xp = malloc(xpad * 9);
        const int64_t x0 = bmax - 9 < 20 ? bmax - 9 : 20;
        float *yp = malloc(sizeof(float) * (size_t)(9 * (n + 3)));
        for (int64_t j = 0; j < n; j++)
            memcpy(wp + (size_t)j * wpad, wq + (size_t)j * wrow, wrow);
        for (int64_t i = 0; i < 9; i++)
            memcpy(xp + (size_t)i * xpad, xq + (size_t)(x0 + i) * xrow, xrow);
        run_gemm(fn, k, wp, wpad, n, xp, xpad, 9, yp, n + 3);
        mismatches = 0;
        for (int64_t i = 0; i < 9; i++)
            for (int64_t j = 0; j < n; j++)
                if (memcmp(&yp[i * (n + 3) + j], &y0[(x0 + i) * n + j], sizeof(float)))
                    mismatches++;
        CHECKF(mismatches == 0, "%s %s k=%lld: %d results changed with strides", tt->name, isa,
               (long long)k, mismatches);
        free(wp), free(xp), free(yp);
    }

    free(wf), free(xf), free(wq), free(xq), free(wd), free(xd), free(tmp);
    free(ref), free(mag), free(y0), free(y1), free(ys);
}

/* The SIMD q8_K converters must write the reference's bytes, including for
 * all-zero blocks, ties between +m and -m, and tiny or huge magnitudes. */
static void test_q8_K_convert(void)
{
    const int64_t k = 256 * 12;
    float *x = malloc(sizeof(float) * (size_t)k);
    const size_t row = type_row_size(PG_TYPE_Q8_K, k);
    uint8_t *a = malloc(row), *b = malloc(row);
    struct rng r;
    rng_seed(&r, 77);
    for (int rep = 0; rep < 40; rep++) {
        for (int64_t i = 0; i < k; i++) {
            const int blk = (int)(i / 256);
            float scale = blk % 4 == 0 ? 1e-20f : blk % 4 == 1 ? 1e20f : (float)(rep + 1);
            x[i] = scale * rng_normal(&r);
            if (rep % 3 == 0 && rng_uniform(&r) < 0.3f)
                x[i] = roundf(x[i] * 4) / 4; /* exact halves: rounding ties */
        }
        memset(x + 256 * 2, 0, 256 * sizeof(float)); /* a zero block */
        x[256 * 3 + 17] = 5e3f, x[256 * 3 + 200] = -5e3f; /* a +m/-m tie */
        x[256 * 5 + 30] = -7e3f, x[256 * 5 + 31] = 7e3f;
        memset(a, 0xAB, row);
        quantize_row_q8_K_ref(x, a, k);
        for (int l = 1; l < n_levels; l++) {
            memset(b, 0xCD, row);
            tables[l].act_quant[PG_TYPE_Q8_K](x, b, k);
            CHECKF(memcmp(a, b, row) == 0, "q8_K converter at level %d differs (rep %d)", l, rep);
        }
    }
    free(x), free(a), free(b);
}

int main(void)
{
    build_tables();
    printf("levels: %d (max %s)\n", n_levels, cpu_isa_name(cpu_isa_max()));
    static const int types[] = {PG_TYPE_Q2_K, PG_TYPE_Q3_K, PG_TYPE_Q4_K, PG_TYPE_Q5_K,
                                PG_TYPE_Q6_K};
    /* The last k makes the activation scratch hold fewer rows than some
     * batches: rows then go in several passes. */
    static const int64_t ks[] = {256, 512, 2304, 4096, 36864};
    static const int64_t ns[] = {7, 13, 5, 3, 2};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
            test_type(types[t], ks[ki], ns[ki], 1000 + 17 * t + ki);
    test_q8_K_convert();

    /* The driver's tables hold these kernels. */
    for (int l = 0; l < n_levels; l++) {
        const struct kernel_table *kt = kernels_for_isa(l);
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
            CHECK(kt->gemm[types[t]] == tables[l].gemm[types[t]]);
        CHECK(kt->act_quant[PG_TYPE_Q8_K] == tables[l].act_quant[PG_TYPE_Q8_K]);
    }
    TEST_END();
}
