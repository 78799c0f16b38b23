/*
 * test_matmul_n.c: matmul_n, several weights over the same activations in
 * one pass, gives bitwise what separate matmul calls give, and what one
 * kernel call on all rows gives: mixed weight
 * types sharing an activation type (q4_K with q6_K, as Q4_K_M files mix
 * them; q4_0 with q8_0; f16 alone), odd row counts, batch sizes 1 to 70,
 * one and two threads, every ISA level. Also its argument checks.
 */
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/err.h"
#include "base/pool.h"
#include "base/rng.h"
#include "ops/kernels.h"
#include "ops/matmul.h"
#include "ops/types.h"
#include "test.h"

struct weight {
    struct mm_weight mw;
    uint8_t *data;
};

static void weight_make(struct weight *w, struct rng *r, int type, int64_t n, int64_t k)
{
    const struct type_traits *tt = type_traits_get(type);
    const size_t row = type_row_size(type, k);
    float *src = malloc(sizeof(float) * (size_t)k);
    w->data = malloc(row * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < k; j++)
            src[j] = 0.5f * rng_normal(r) + 0.05f;
        tt->from_float_ref(src, w->data + (size_t)i * row, k);
    }
    free(src);
    w->mw = (struct mm_weight){type, w->data, n, k, row};
}

static void check_group(struct mm_ctx *ctx, struct rng *r, const int *types, const int64_t *ns,
                        int nw, int64_t k, int64_t b)
{
    struct weight w[MM_MAX_PARTS];
    const struct mm_weight *ws[MM_MAX_PARTS];
    float *y_one[MM_MAX_PARTS], *y_all[MM_MAX_PARTS];
    float *x = malloc(sizeof(float) * (size_t)(b * k));
    for (int64_t i = 0; i < b * k; i++)
        x[i] = rng_normal(r);
    for (int i = 0; i < nw; i++) {
        weight_make(&w[i], r, types[i], ns[i], k);
        ws[i] = &w[i].mw;
        y_one[i] = malloc(sizeof(float) * (size_t)(b * ns[i]));
        y_all[i] = malloc(sizeof(float) * (size_t)(b * ns[i]));
        /* Poison: every output must be written. */
        for (int64_t j = 0; j < b * ns[i]; j++)
            y_all[i][j] = -12345.0f;
    }
    char err[256] = "";
    for (int i = 0; i < nw; i++)
        CHECKF(matmul(ctx, ws[i], x, b, y_one[i], err, sizeof err) == 0, "matmul: %s", err);
    CHECKF(matmul_n(ctx, ws, nw, x, b, y_all, err, sizeof err) == 0, "matmul_n: %s", err);
    for (int i = 0; i < nw; i++)
        CHECKF(memcmp(y_one[i], y_all[i], sizeof(float) * (size_t)(b * ns[i])) == 0,
               "%s part %d (n=%lld, k=%lld, b=%lld) differs from its own matmul",
               cpu_isa_name(cpu_isa_get()), i, (long long)ns[i], (long long)k, (long long)b);
    /* And both are what the kernel gives called once on all rows, with no
     * activation id: kernels that keep prepared activations from one chunk
     * to the next (same call id) must not change a bit, whatever the other
     * parts did with the thread's buffer in between. */
    const struct kernel_table *kt = kernels_get();
    const struct type_traits *tt = type_traits_get(types[0]);
    const size_t xq_row = type_row_size(tt->dot_type, k);
    uint8_t *xq = tt->dot_type == PG_TYPE_F32 ? NULL : malloc(xq_row * (size_t)b);
    for (int64_t i = 0; xq && i < b; i++)
        kt->act_quant[tt->dot_type](x + i * k, xq + (size_t)i * xq_row, k);
    for (int i = 0; i < nw; i++) {
        float *y_ref = malloc(sizeof(float) * (size_t)(b * ns[i]));
        const struct gemm_args a = {
            .k = k,
            .w = w[i].data,
            .w_stride = w[i].mw.row_stride,
            .n = ns[i],
            .x = xq ? xq : (const uint8_t *)x,
            .x_stride = xq ? xq_row : sizeof(float) * (size_t)k,
            .b = b,
            .y = y_ref,
            .y_stride = ns[i],
        };
        kt->gemm[types[i]](&a);
        CHECKF(memcmp(y_ref, y_all[i], sizeof(float) * (size_t)(b * ns[i])) == 0,
               "%s part %d (n=%lld, k=%lld, b=%lld) differs from one kernel call",
               cpu_isa_name(cpu_isa_get()), i, (long long)ns[i], (long long)k, (long long)b);
        free(y_ref);
    }
    free(xq);
    for (int i = 0; i < nw; i++) {
        free(w[i].data);
        free(y_one[i]);
        free(y_all[i]);
    }
    free(x);
}

int main(void)
{
    char err[256];
    struct pool *pool1 = pool_create(1, err, sizeof err);
    struct pool *pool2 = pool_create(2, err, sizeof err);
    struct mm_ctx *ctx1 = pool1 ? mm_ctx_create(pool1, err, sizeof err) : NULL;
    struct mm_ctx *ctx2 = pool2 ? mm_ctx_create(pool2, err, sizeof err) : NULL;
    CHECK(ctx1 && ctx2);
    if (!ctx1 || !ctx2)
        TEST_END();
    struct rng r;
    rng_seed(&r, 77);
    static const struct {
        int types[3];
        int nw;
        int64_t k;
    } groups[] = {
        {{PG_TYPE_Q4_K, PG_TYPE_Q4_K, PG_TYPE_Q6_K}, 3, 512},
        {{PG_TYPE_Q6_K, PG_TYPE_Q4_K, PG_TYPE_Q5_K}, 3, 256},
        {{PG_TYPE_Q4_0, PG_TYPE_Q8_0, PG_TYPE_Q5_0}, 3, 96},
        {{PG_TYPE_F16, PG_TYPE_F16, 0}, 2, 100},
        {{PG_TYPE_F32, PG_TYPE_F32, 0}, 2, 33},
    };
    static const int64_t bs[] = {1, 3, 6, 8, 17, 70};
    const int isa_max = (int)cpu_isa_max();
    for (int isa = CPU_ISA_SCALAR; isa <= isa_max; isa++) {
        cpu_isa_set((enum cpu_isa)isa);
        for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++)
            for (size_t bi = 0; bi < sizeof bs / sizeof bs[0]; bi++) {
                const int64_t ns[3] = {37 + 16 * (int64_t)bi, 13, 300 + (int64_t)g};
                check_group(bi % 2 ? ctx2 : ctx1, &r, groups[g].types, ns, groups[g].nw,
                            groups[g].k, bs[bi]);
            }
    }
    cpu_isa_set((enum cpu_isa)isa_max);

    /* Argument checks: mismatched k or activation type, too many weights. */
    struct weight a, b, c;
    weight_make(&a, &r, PG_TYPE_Q4_K, 16, 256);
    weight_make(&b, &r, PG_TYPE_Q4_K, 16, 512);
    weight_make(&c, &r, PG_TYPE_Q8_0, 16, 256);
    float x[512], y0[16], y1[16];
    for (int i = 0; i < 512; i++)
        x[i] = rng_normal(&r);
    float *ys[MM_MAX_PARTS + 1] = {y0, y1, y0, y1, y0};
    const struct mm_weight *ab[2] = {&a.mw, &b.mw}, *ac[2] = {&a.mw, &c.mw};
    const struct mm_weight *many[MM_MAX_PARTS + 1] = {&a.mw, &a.mw, &a.mw, &a.mw, &a.mw};
    CHECK(matmul_n(ctx1, ab, 2, x, 1, ys, err, sizeof err) == PAGODA_EINVAL &&
          strstr(err, "same k"));
    CHECK(matmul_n(ctx1, ac, 2, x, 1, ys, err, sizeof err) == PAGODA_EINVAL);
    CHECK(matmul_n(ctx1, many, MM_MAX_PARTS + 1, x, 1, ys, err, sizeof err) == PAGODA_EINVAL);
    CHECK(matmul_n(ctx1, many, 0, x, 1, ys, err, sizeof err) == PAGODA_EINVAL);
    free(a.data);
    free(b.data);
    free(c.data);
    mm_ctx_free(ctx1);
    mm_ctx_free(ctx2);
    pool_destroy(pool1);
    pool_destroy(pool2);
    TEST_END();
}
