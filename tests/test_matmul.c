/*
 * test_matmul.c: the matmul driver and the float / 32-element block kernels
 * (f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0) at every ISA level the CPU
 * has: SIMD against the scalar kernels, the scalar kernels against a float64
 * dot of the dequantized operands, bitwise batch invariance (b, offsets,
 * weight row offsets, thread counts), the SIMD activation converters against
 * the reference quantizers byte for byte, and the error paths.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/pool.h"
#include "base/rng.h"
#include "ops/kernels.h"
#include "ops/matmul.h"
#include "ops/quants.h"
#include "ops/types.h"
#include "test.h"

static const int mm_types[] = {PG_TYPE_F32,  PG_TYPE_F16,  PG_TYPE_BF16, PG_TYPE_Q4_0,
                               PG_TYPE_Q4_1, PG_TYPE_Q5_0, PG_TYPE_Q5_1, PG_TYPE_Q8_0};
#define N_TYPES (int)(sizeof mm_types / sizeof mm_types[0])

static struct mm_ctx *ctx1, *ctx2; /* 1-thread and 2-thread pools */

static int run_mm(struct mm_ctx *ctx, int isa, int type, const void *w, int64_t n, int64_t k,
                  size_t stride, const float *x, int64_t b, float *y)
{
    char err[256] = "";
    cpu_isa_set((enum cpu_isa)isa);
    const struct mm_weight mw = {type, w, n, k, stride};
    int rc = matmul(ctx, &mw, x, b, y, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "matmul(%s, n=%lld, k=%lld, b=%lld): %s\n", type_name(type),
                (long long)n, (long long)k, (long long)b, err);
    return rc;
}

static void fill(struct rng *r, float *v, int64_t count, float mean)
{
    for (int64_t i = 0; i < count; i++)
        v[i] = mean + rng_normal(r);
}

/* Weight rows in the type (packed), their dequantized floats, and x rows. */
struct problem {
    int type;
    int64_t n, k, b;
    size_t row;
    uint8_t *wq;
    float *wf, *x;
};

static void problem_make(struct problem *p, struct rng *r, int type, int64_t n, int64_t k,
                         int64_t b)
{
    const struct type_traits *tt = type_traits_get(type);
    p->type = type;
    p->n = n;
    p->k = k;
    p->b = b;
    p->row = type_row_size(type, k);
    p->wq = malloc(p->row * (size_t)n);
    p->wf = malloc(sizeof(float) * (size_t)(n * k));
    p->x = malloc(sizeof(float) * (size_t)(b * k));
    float *src = malloc(sizeof(float) * (size_t)(n * k));
    /* q4_1 / q5_1 get rows off zero, so their minimum terms matter. */
    fill(r, src, n * k, (type == PG_TYPE_Q4_1 || type == PG_TYPE_Q5_1) ? 0.7f : 0.0f);
    fill(r, p->x, b * k, 0.1f);
    for (int64_t i = 0; i < n; i++) {
        tt->from_float_ref(src + i * k, p->wq + (size_t)i * p->row, k);
        tt->to_float(p->wq + (size_t)i * p->row, p->wf + i * k, k);
    }
    free(src);
}

static void problem_free(struct problem *p)
{
    free(p->wq);
    free(p->wf);
    free(p->x);
}

/* |m| * |s| summed over blocks: the part of a q4_1 / q5_1 dot that goes
 * through q8_1's f16 block sum, which the float64 reference does not round. */
static double min_term_mag(const struct problem *p, int64_t j, const uint8_t *xq)
{
    if (p->type != PG_TYPE_Q4_1 && p->type != PG_TYPE_Q5_1)
        return 0.0;
    const size_t wbs = type_traits_get(p->type)->type_size;
    double sum = 0.0;
    for (int64_t blk = 0; blk < p->k / 32; blk++) {
        pg_f16 m, s;
        memcpy(&m, p->wq + (size_t)j * p->row + (size_t)blk * wbs + 2, 2);
        memcpy(&s, xq + (size_t)blk * sizeof(block_q8_1) + 2, 2);
        sum += fabs((double)f16_to_f32(m)) * fabs((double)f16_to_f32(s));
    }
    return sum;
}

/* (1) and (2): every ISA's result against the scalar kernels, and the
 * scalar kernels against a float64 dot of what they multiply. */
static void check_accuracy(const struct problem *p, int isa_max)
{
    const struct type_traits *tt = type_traits_get(p->type);
    const struct type_traits *dt = type_traits_get(tt->dot_type);
    const size_t xrow = type_row_size(tt->dot_type, p->k);
    uint8_t *xq = malloc(xrow);
    float *xd = malloc(sizeof(float) * (size_t)p->k);
    float *y0 = malloc(sizeof(float) * (size_t)(p->n * p->b));
    float *y1 = malloc(sizeof(float) * (size_t)(p->n * p->b));
    if (run_mm(ctx2, CPU_ISA_SCALAR, p->type, p->wq, p->n, p->k, p->row, p->x, p->b, y0) != 0) {
        CHECK(0);
        goto out;
    }
    int bad_ref = 0;
    double worst_ref = 0.0;
    for (int64_t i = 0; i < p->b; i++) {
        /* The activations as the kernels see them (the scalar table's
         * converter, which every ISA's must match byte for byte). */
        kernels_for_isa(CPU_ISA_SCALAR)->act_quant[tt->dot_type](p->x + i * p->k, xq, p->k);
        dt->to_float(xq, xd, p->k);
        for (int64_t j = 0; j < p->n; j++) {
            double dot = 0.0, mag = 0.0;
            for (int64_t kk = 0; kk < p->k; kk++) {
                dot += (double)p->wf[j * p->k + kk] * (double)xd[kk];
                mag += fabs((double)p->wf[j * p->k + kk] * (double)xd[kk]);
            }
            const double tol = 1e-5 * mag + min_term_mag(p, j, xq) * (1.0 / 1024) + 1e-30;
            const double e = fabs((double)y0[i * p->n + j] - dot);
            if (e / tol > worst_ref)
                worst_ref = e / tol;
            if (e > tol)
                bad_ref++;
        }
    }
    CHECKF(bad_ref == 0, "%s k=%lld b=%lld: %d scalar results off the float64 dot (worst %.2f x tol)",
           tt->name, (long long)p->k, (long long)p->b, bad_ref, worst_ref);

    for (int isa = CPU_ISA_AVX2; isa <= isa_max; isa++) {
        if (run_mm(ctx2, isa, p->type, p->wq, p->n, p->k, p->row, p->x, p->b, y1) != 0) {
            CHECK(0);
            continue;
        }
        int bad = 0;
        double worst = 0.0;
        for (int64_t i = 0; i < p->b; i++) {
            for (int64_t j = 0; j < p->n; j++) {
                double mag = 0.0;
                for (int64_t kk = 0; kk < p->k; kk++)
                    mag += fabs((double)p->wf[j * p->k + kk] * (double)p->x[i * p->k + kk]);
                const double tol = 1e-5 * mag + 1e-30;
                const double e = fabs((double)y1[i * p->n + j] - (double)y0[i * p->n + j]);
                if (e / tol > worst)
                    worst = e / tol;
                if (e > tol)
                    bad++;
            }
        }
        CHECKF(bad == 0, "%s %s k=%lld b=%lld: %d results off scalar (worst %.2f x tol)",
               cpu_isa_name((enum cpu_isa)isa), tt->name, (long long)p->k, (long long)p->b, bad,
               worst);
        /* q4_1 and q5_1 follow the scalar kernels' float order at every
         * level: the same bits. */
        if (p->type == PG_TYPE_Q4_1 || p->type == PG_TYPE_Q5_1) {
            int diff = 0;
            for (int64_t i = 0; i < p->n * p->b; i++)
                diff += memcmp(&y1[i], &y0[i], sizeof(float)) != 0;
            CHECKF(diff == 0, "%s %s k=%lld b=%lld: %d results not the scalar kernel's bits",
                   cpu_isa_name((enum cpu_isa)isa), tt->name, (long long)p->k, (long long)p->b,
                   diff);
        }
    }
out:
    free(xq);
    free(xd);
    free(y0);
    free(y1);
}

/* (3): a row of y is the same bits whatever else is in the call. */
static void check_invariance(const struct problem *p, int isa)
{
    const int64_t n = p->n, k = p->k, b = p->b;
    float *full = malloc(sizeof(float) * (size_t)(n * b));
    float *part = malloc(sizeof(float) * (size_t)(n * b));
    int bad = 0;
    if (run_mm(ctx2, isa, p->type, p->wq, n, k, p->row, p->x, b, full) != 0) {
        CHECK(0);
        goto out;
    }
    /* Each activation row alone, on one thread. */
    for (int64_t i = 0; i < b; i++) {
        if (run_mm(ctx1, isa, p->type, p->wq, n, k, p->row, p->x + i * k, 1, part) != 0)
            bad++;
        else if (memcmp(part, full + i * n, sizeof(float) * (size_t)n) != 0)
            bad++;
    }
    /* Sub-batches at odd offsets, on two threads. */
    for (int64_t off = 1; off + 3 <= b; off += 7) {
        const int64_t len = b - off < 5 ? b - off : 5;
        if (run_mm(ctx2, isa, p->type, p->wq, n, k, p->row, p->x + off * k, len, part) != 0)
            bad++;
        else if (memcmp(part, full + off * n, sizeof(float) * (size_t)(n * len)) != 0)
            bad++;
    }
    /* Weight rows starting at an offset, so pairs land in other tiles. */
    for (int64_t r0 = 1; r0 < 4 && r0 < n; r0++) {
        const int64_t nn = n - r0;
        if (run_mm(ctx1, isa, p->type, p->wq + (size_t)r0 * p->row, nn, k, p->row, p->x, b,
                   part) != 0) {
            bad++;
            continue;
        }
        for (int64_t i = 0; i < b; i++)
            if (memcmp(part + i * nn, full + i * n + r0, sizeof(float) * (size_t)nn) != 0)
                bad++;
    }
    CHECKF(bad == 0, "%s %s k=%lld b=%lld: %d batch-invariance mismatches",
           cpu_isa_name((enum cpu_isa)isa), type_name(p->type), (long long)k, (long long)b, bad);
out:
    free(full);
    free(part);
}

/* The SIMD activation converters give the reference bytes, ties included. */
static void check_act_quant(struct rng *r, int isa_max)
{
    static const int dots[] = {PG_TYPE_F16, PG_TYPE_BF16, PG_TYPE_Q8_0, PG_TYPE_Q8_1};
    const struct kernel_table *ref = kernels_for_isa(CPU_ISA_SCALAR);
    enum { K = 32 * 9 };
    float x[K];
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < K; i++)
            x[i] = rng_normal(r) * (round % 3 == 0 ? 1e-3f : round % 3 == 1 ? 1.0f : 300.0f);
        if (round == 0) {
            /* A block with d == 1 exactly, full of halves: roundf's ties. */
            for (int i = 0; i < 32; i++)
                x[i] = (float)(i % 2 ? -1 : 1) * ((float)(i * 4) + 0.5f);
            x[31] = 127.0f;
            /* An all-zero block, and tiny values for f16 subnormals. */
            for (int i = 32; i < 64; i++)
                x[i] = 0.0f;
            for (int i = 64; i < 96; i++)
                x[i] = (float)(i - 80) * 1e-7f;
        }
        for (int isa = CPU_ISA_AVX2; isa <= isa_max; isa++) {
            const struct kernel_table *kt = kernels_for_isa(isa);
            for (size_t t = 0; t < sizeof dots / sizeof dots[0]; t++) {
                const int d = dots[t];
                /* Lengths that leave a SIMD tail for the plain float types. */
                const int64_t len = type_traits_get(d)->block_size == 1 ? K - 7 : K;
                uint8_t a[K * 4], b[K * 4];
                memset(a, 0xAA, sizeof a);
                memset(b, 0xAA, sizeof b);
                ref->act_quant[d](x, a, len);
                kt->act_quant[d](x, b, len);
                CHECKF(memcmp(a, b, sizeof a) == 0, "%s act_quant %s round %d differs",
                       cpu_isa_name((enum cpu_isa)isa), type_name(d), round);
            }
        }
    }
}

static void check_errors(void)
{
    char err[256];
    float x[64] = {1}, y[8];
    uint8_t w[1024] = {0};
    struct mm_weight mw = {PG_TYPE_Q4_0, w, 2, 64, type_row_size(PG_TYPE_Q4_0, 64)};
    CHECK(matmul(ctx1, &mw, x, 1, y, err, sizeof err) == 0);
    mw.type = 4; /* an id GGUF retired */
    err[0] = 0;
    CHECK(matmul(ctx1, &mw, x, 1, y, err, sizeof err) < 0 && err[0] != 0);
    mw.type = 99;
    CHECK(matmul(ctx1, &mw, x, 1, y, err, sizeof err) < 0);
    mw.type = -1;
    CHECK(matmul(ctx1, &mw, x, 1, y, err, sizeof err) < 0);
    mw.type = PG_TYPE_Q8_1; /* an activation type, not a weight type */
    CHECK(matmul(ctx1, &mw, x, 1, y, err, sizeof err) < 0);
    mw.type = PG_TYPE_Q4_0;
    mw.k = 48;
    err[0] = 0;
    CHECK(matmul(ctx1, &mw, x, 1, y, err, sizeof err) < 0 && strstr(err, "block") != NULL);
    mw.k = 0;
    CHECK(matmul(ctx1, &mw, x, 1, y, err, sizeof err) < 0);
    mw.k = 64;
    mw.row_stride = type_row_size(PG_TYPE_Q4_0, 64) - 1;
    CHECK(matmul(ctx1, &mw, x, 1, y, err, sizeof err) < 0);
    mw.row_stride = type_row_size(PG_TYPE_Q4_0, 64) + 1; /* misaligned f16 scales */
    CHECK(matmul(ctx1, &mw, x, 1, y, err, sizeof err) < 0);
    mw.row_stride = type_row_size(PG_TYPE_Q4_0, 64);
    CHECK(matmul(ctx1, &mw, x, -1, y, err, sizeof err) < 0);
    mw.n = -3;
    CHECK(matmul(ctx1, &mw, x, 1, y, err, sizeof err) < 0);
    mw.n = 2;
    CHECK(matmul(ctx1, &mw, NULL, 1, y, err, sizeof err) < 0);
    CHECK(matmul(NULL, &mw, x, 1, y, err, sizeof err) < 0);
    CHECK(matmul(ctx1, NULL, x, 1, y, err, sizeof err) < 0);
    /* Nothing to do is not an error. */
    CHECK(matmul(ctx1, &mw, x, 0, y, err, sizeof err) == 0);
    mw.n = 0;
    CHECK(matmul(ctx1, &mw, x, 1, y, err, sizeof err) == 0);
}

/* A padded row stride (rows not packed) reads the same values. */
static void check_stride(struct rng *r, int isa_max)
{
    struct problem p;
    problem_make(&p, r, PG_TYPE_Q4_0, 9, 96, 3);
    const size_t stride = p.row + 14;
    uint8_t *wide = calloc(9, stride);
    for (int i = 0; i < 9; i++)
        memcpy(wide + (size_t)i * stride, p.wq + (size_t)i * p.row, p.row);
    float a[27], b[27];
    for (int isa = CPU_ISA_SCALAR; isa <= isa_max; isa++) {
        CHECK(run_mm(ctx2, isa, p.type, p.wq, 9, 96, p.row, p.x, 3, a) == 0);
        CHECK(run_mm(ctx2, isa, p.type, wide, 9, 96, stride, p.x, 3, b) == 0);
        CHECK(memcmp(a, b, sizeof a) == 0);
    }
    free(wide);
    problem_free(&p);
}

int main(void)
{
    char err[256];
    struct pool *pool1 = pool_create(1, err, sizeof err);
    struct pool *pool2 = pool_create(2, err, sizeof err);
    CHECK(pool1 && pool2);
    ctx1 = mm_ctx_create(pool1, err, sizeof err);
    ctx2 = mm_ctx_create(pool2, err, sizeof err);
    CHECK(ctx1 && ctx2);
    if (!ctx1 || !ctx2)
        TEST_END();

    const int isa_max = (int)cpu_isa_max();
    printf("ISA levels: scalar..%s\n", cpu_isa_name((enum cpu_isa)isa_max));
    /* The SIMD tables really hold SIMD kernels for these types. */
    for (int isa = CPU_ISA_AVX2; isa <= isa_max; isa++)
        for (int t = 0; t < N_TYPES; t++)
            CHECKF(strcmp(kernels_for_isa(isa)->isa[mm_types[t]], "scalar") != 0,
                   "%s table has no SIMD %s kernel", cpu_isa_name((enum cpu_isa)isa),
                   type_name(mm_types[t]));

    struct rng r;
    rng_seed(&r, 20240601);
    static const int64_t bs[] = {1, 2, 3, 5, 8, 17, 32, 64, 100};
    static const int64_t ks_block[] = {32, 64, 96, 256, 544};
    static const int64_t ks_float[] = {1, 7, 32, 100, 257};
    for (int t = 0; t < N_TYPES; t++) {
        const int type = mm_types[t];
        const int blocky = type_traits_get(type)->block_size > 1;
        for (int ki = 0; ki < 5; ki++) {
            const int64_t k = blocky ? ks_block[ki] : ks_float[ki];
            for (size_t bi = 0; bi < sizeof bs / sizeof bs[0]; bi++) {
                /* Odd row counts; big batches only with short rows to stay fast. */
                const int64_t b = bs[bi];
                if (b * k > 100 * 256)
                    continue;
                const int64_t n = (ki + bi) % 2 ? 13 : 37;
                struct problem p;
                problem_make(&p, &r, type, n, k, b);
                check_accuracy(&p, isa_max);
                if (b >= 3 && bi % 2 == 0)
                    for (int isa = CPU_ISA_SCALAR; isa <= isa_max; isa++)
                        check_invariance(&p, isa);
                problem_free(&p);
            }
        }
    }
    /* Fewer weight rows than any kernel takes at a time. */
    for (int t = 0; t < N_TYPES; t++)
        for (int64_t n = 1; n <= 3; n++)
            for (int64_t b = 1; b <= 2; b++) {
                struct problem p;
                problem_make(&p, &r, mm_types[t], n, 96, b);
                check_accuracy(&p, isa_max);
                problem_free(&p);
            }
    /* Enough weight rows and activations for several chunks and activation
     * tiles on two threads. */
    for (int t = 0; t < N_TYPES; t++) {
        struct problem p;
        problem_make(&p, &r, mm_types[t], 203, 1056, 70);
        for (int isa = CPU_ISA_SCALAR; isa <= isa_max; isa++)
            check_invariance(&p, isa);
        problem_free(&p);
    }
    /* Long rows: several activation tiles per call where the kernels take
     * the driver's tiles (AVX2), all rows at once where they ask for them. */
    {
        struct problem p;
        problem_make(&p, &r, PG_TYPE_Q4_0, 21, 8192, 48);
        for (int isa = CPU_ISA_SCALAR; isa <= isa_max; isa++)
            check_invariance(&p, isa);
        problem_free(&p);
        /* Rows of more blocks than one segment of row-group activations. */
        problem_make(&p, &r, PG_TYPE_Q4_0, 17, 2049 * 32, 3);
        check_invariance(&p, isa_max);
        problem_free(&p);
    }
    /* Single-row kernels that take several blocks of a row at once and the
     * activation row in segments: rows of several segments plus a few
     * blocks, and short rows of 1..7 blocks past whole groups. */
    for (int t = 0; t < N_TYPES; t++) {
        const int type = mm_types[t];
        if (type_traits_get(type)->block_size == 1)
            continue;
        struct problem p;
        problem_make(&p, &r, type, 35, (1027 + 2 * t) * 32, 3);
        check_accuracy(&p, isa_max);
        for (int isa = CPU_ISA_SCALAR; isa <= isa_max; isa++)
            check_invariance(&p, isa);
        problem_free(&p);
        for (int64_t nb = 5; nb <= 11; nb += 3) {
            problem_make(&p, &r, type, 16 + t, nb * 32, 4);
            check_accuracy(&p, isa_max);
            check_invariance(&p, isa_max);
            problem_free(&p);
        }
    }
    check_act_quant(&r, isa_max);
    check_stride(&r, isa_max);
    check_errors();
    cpu_isa_set((enum cpu_isa)isa_max);

    mm_ctx_free(ctx1);
    mm_ctx_free(ctx2);
    pool_destroy(pool1);
    pool_destroy(pool2);
    TEST_END();
}
