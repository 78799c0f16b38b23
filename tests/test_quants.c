/*
 * test_quants.c: the type table and every reference quantize/dequantize.
 *
 * Without files: traits and names, hand-made blocks that pin the rounding
 * rules, random round trips (several distributions and lengths) against a
 * stated error bound per type, all-zero and one-huge-value blocks, and
 * quantize_rows. With the reference models: q4_0/q4_1/q5_0/q5_1/q8_0 give the
 * files' bytes exactly; the k-quants err no more than the files' own
 * quantizer and in fact give the same bytes; every tensor of every file
 * dequantizes to within its type's error of the f32 model.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fp16.h"
#include "base/rng.h"
#include "gguf/gguf.h"
#include "ops/quants.h"
#include "ops/types.h"
#include "test.h"

static const int all_types[] = {
    PG_TYPE_F32,  PG_TYPE_F16,  PG_TYPE_BF16, PG_TYPE_Q4_0, PG_TYPE_Q4_1,
    PG_TYPE_Q5_0, PG_TYPE_Q5_1, PG_TYPE_Q8_0, PG_TYPE_Q8_1, PG_TYPE_Q2_K,
    PG_TYPE_Q3_K, PG_TYPE_Q4_K, PG_TYPE_Q5_K, PG_TYPE_Q6_K, PG_TYPE_Q8_K,
};
#define N_TYPES ((int)(sizeof all_types / sizeof all_types[0]))

/* sqrt(mean((a-b)^2)) / sqrt(mean(a^2)), in double. */
static double rel_rmse(const float *ref, const float *got, int64_t n)
{
    double se = 0.0, s2 = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double d = (double)got[i] - (double)ref[i];
        se += d * d;
        s2 += (double)ref[i] * ref[i];
    }
    return s2 > 0.0 ? sqrt(se / s2) : sqrt(se);
}

static double rmse(const float *ref, const float *got, int64_t n)
{
    double se = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double d = (double)got[i] - (double)ref[i];
        se += d * d;
    }
    return sqrt(se / (double)n);
}

static int all_finite(const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i]))
            return 0;
    }
    return 1;
}

/* Quantizes then dequantizes n values with type's reference pair. */
static void round_trip(int type, const float *x, float *y, int64_t n)
{
    const struct type_traits *t = type_traits_get(type);
    void *q = malloc(type_row_size(type, n));
    t->from_float_ref(x, q, n);
    t->to_float(q, y, n);
    free(q);
}

/* ---- traits ---- */

static void test_traits(void)
{
    static const struct {
        int type;
        const char *name;
        int block;
        size_t size;
        int dot;
    } want[] = {
        {PG_TYPE_F32, "f32", 1, 4, PG_TYPE_F32},
        {PG_TYPE_F16, "f16", 1, 2, PG_TYPE_F16},
        {PG_TYPE_BF16, "bf16", 1, 2, PG_TYPE_BF16},
        {PG_TYPE_Q4_0, "q4_0", 32, 18, PG_TYPE_Q8_0},
        {PG_TYPE_Q4_1, "q4_1", 32, 20, PG_TYPE_Q8_1},
        {PG_TYPE_Q5_0, "q5_0", 32, 22, PG_TYPE_Q8_0},
        {PG_TYPE_Q5_1, "q5_1", 32, 24, PG_TYPE_Q8_1},
        {PG_TYPE_Q8_0, "q8_0", 32, 34, PG_TYPE_Q8_0},
        {PG_TYPE_Q8_1, "q8_1", 32, 36, PG_TYPE_Q8_1},
        {PG_TYPE_Q2_K, "q2_K", 256, 84, PG_TYPE_Q8_K},
        {PG_TYPE_Q3_K, "q3_K", 256, 110, PG_TYPE_Q8_K},
        {PG_TYPE_Q4_K, "q4_K", 256, 144, PG_TYPE_Q8_K},
        {PG_TYPE_Q5_K, "q5_K", 256, 176, PG_TYPE_Q8_K},
        {PG_TYPE_Q6_K, "q6_K", 256, 210, PG_TYPE_Q8_K},
        {PG_TYPE_Q8_K, "q8_K", 256, 292, PG_TYPE_Q8_K},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct type_traits *t = type_traits_get(want[i].type);
        CHECKF(t != NULL, "type %d", want[i].type);
        if (!t)
            continue;
        CHECKF(strcmp(t->name, want[i].name) == 0, "%s vs %s", t->name, want[i].name);
        CHECK(strcmp(type_name(want[i].type), want[i].name) == 0);
        CHECKF(t->block_size == want[i].block, "%s block %d", t->name, t->block_size);
        CHECKF(t->type_size == want[i].size, "%s size %zu", t->name, t->type_size);
        CHECKF((int)t->dot_type == want[i].dot, "%s dot %d", t->name, (int)t->dot_type);
        CHECK(t->quantized == (want[i].block > 1));
        CHECK(t->to_float != NULL && t->from_float_ref != NULL);
        CHECK(type_from_name(want[i].name) == want[i].type);
        /* Names match either case. */
        char upper[16];
        snprintf(upper, sizeof upper, "%s", want[i].name);
        for (char *c = upper; *c; c++)
            *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
        CHECKF(type_from_name(upper) == want[i].type, "%s", upper);
        CHECK(type_row_size(want[i].type, 3 * (int64_t)want[i].block) == 3 * want[i].size);
        if (want[i].block > 1) {
            CHECK(type_row_size(want[i].type, want[i].block + 1) == 0);
            CHECK(type_row_size(want[i].type, want[i].block / 2) == 0);
        }
    }
    const int unsupported[] = {-1, 4, 5, 16, 17, 29, 31, 1000};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        CHECK(type_traits_get(unsupported[i]) == NULL);
        CHECK(strcmp(type_name(unsupported[i]), "unknown") == 0);
        CHECK(type_row_size(unsupported[i], 256) == 0);
    }
    CHECK(type_from_name("q4_2") == -1);
    CHECK(type_from_name("") == -1);
    CHECK(type_from_name(NULL) == -1);
    CHECK(type_from_name("q4_0 ") == -1);
    CHECK(type_row_size(PG_TYPE_F32, 7) == 28);
    CHECK(type_row_size(PG_TYPE_Q4_K, 4096) == 16 * 144);
    CHECK(type_row_size(PG_TYPE_Q8_0, -32) == 0);
}

/* ---- hand-made blocks: the rounding rules ---- */

static void test_rounding_rules(void)
{
    float x[QK_K];

    /* q4_0: the extreme value -8 gives d = 1 exactly; codes are x + 8 rounded
     * half up (+0.5 -> 9, -0.5 -> 8, 7.5 -> 16 clamped to 15). */
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j % 16) - 8.0f;
    x[16] = 0.5f;
    x[17] = -0.5f;
    x[18] = 7.5f;
    x[19] = 2.25f;
    block_q4_0 b40;
    quantize_row_q4_0_ref(x, &b40, 32);
    CHECK(f16_to_f32(b40.d) == 1.0f);
    for (int j = 0; j < 16; j++)
        CHECKF((b40.qs[j] & 0x0F) == j, "q4_0 code %d = %d", j, b40.qs[j] & 0x0F);
    CHECK((b40.qs[0] >> 4) == 9);
    CHECK((b40.qs[1] >> 4) == 8);
    CHECK((b40.qs[2] >> 4) == 15);
    CHECK((b40.qs[3] >> 4) == 10);
    /* A positive extreme flips the sign of d. */
    for (int j = 0; j < 32; j++)
        x[j] = 0.25f * (float)(j - 8);
    quantize_row_q4_0_ref(x, &b40, 32);
    CHECK(f16_to_f32(b40.d) == -23 * 0.25f / 8);

    /* q8_0: amax 127 gives d = 1; roundf sends halves away from zero. */
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j * 4 - 62);
    x[0] = 127.0f;
    x[1] = 2.5f;
    x[2] = -2.5f;
    x[3] = -127.0f;
    block_q8_0 b80;
    quantize_row_q8_0_ref(x, &b80, 32);
    CHECK(f16_to_f32(b80.d) == 1.0f);
    CHECK(b80.qs[0] == 127 && b80.qs[1] == 3 && b80.qs[2] == -3 && b80.qs[3] == -127);
    for (int j = 4; j < 32; j++)
        CHECK(b80.qs[j] == j * 4 - 62);

    /* On random blocks, every q8_0 code is roundf of x / d (d before f16 storage). */
    struct rng r;
    rng_seed(&r, 0x5eed0004);
    int mismatches = 0;
    for (int rep = 0; rep < 200; rep++) {
        float xr[32];
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) {
            xr[j] = rng_normal(&r) * (rep % 2 ? 1e-3f : 50.0f);
            amax = fabsf(xr[j]) > amax ? fabsf(xr[j]) : amax;
        }
        block_q8_0 br;
        quantize_row_q8_0_ref(xr, &br, 32);
        const float d = amax / 127, id = 1.0f / d;
        for (int j = 0; j < 32; j++)
            mismatches += br.qs[j] != (int)roundf(xr[j] * id);
    }
    CHECKF(mismatches == 0, "%d q8_0 codes differ from roundf", mismatches);

    /* q8_1: same codes, s = d * sum(codes). */
    block_q8_1 b81;
    quantize_row_q8_1_ref(x, &b81, 32);
    int sum = 0;
    for (int j = 0; j < 32; j++) {
        CHECK(b81.qs[j] == b80.qs[j]);
        sum += b81.qs[j];
    }
    CHECK(f16_to_f32(b81.s) == f32_round_f16((float)sum));

    /* q8_K: the extreme value maps to -127 and ties go to even. */
    for (int j = 0; j < QK_K; j++)
        x[j] = (float)((j * 7) % 200 - 100);
    x[5] = 127.0f;
    x[6] = 2.5f;
    x[7] = 3.5f;
    x[8] = -2.5f;
    block_q8_K b8k;
    quantize_row_q8_K_ref(x, &b8k, QK_K);
    CHECK(b8k.d == -1.0f);
    CHECK(b8k.qs[5] == -127 && b8k.qs[6] == -2 && b8k.qs[7] == -4 && b8k.qs[8] == 2);
    for (int g = 0; g < QK_K / 16; g++) {
        int s = 0;
        for (int j = 0; j < 16; j++)
            s += b8k.qs[16 * g + j];
        CHECKF(b8k.bsums[g] == s, "bsum %d", g);
    }

    /* q4_1: min 0, max 15 -> d = 1, m = 0; codes round half up. */
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j % 16);
    x[20] = 3.5f;
    block_q4_1 b41;
    quantize_row_q4_1_ref(x, &b41, 32);
    CHECK(f16_to_f32(b41.d) == 1.0f && f16_to_f32(b41.m) == 0.0f);
    CHECK((b41.qs[4] >> 4) == 4);
    CHECK((b41.qs[5] >> 4) == 5);

    /* q5_0: -16 gives d = 1; bit 4 of element j lands in qh bit j. */
    for (int j = 0; j < 32; j++)
        x[j] = (float)j - 16.0f;
    block_q5_0 b50;
    quantize_row_q5_0_ref(x, &b50, 32);
    CHECK(f16_to_f32(b50.d) == 1.0f);
    const uint32_t qh50 = (uint32_t)b50.qh[0] | (uint32_t)b50.qh[1] << 8 |
                          (uint32_t)b50.qh[2] << 16 | (uint32_t)b50.qh[3] << 24;
    CHECK(qh50 == 0xFFFF0000u);
    for (int j = 0; j < 16; j++)
        CHECK(b50.qs[j] == (uint8_t)(j | (j << 4)));
    float y[QK_K];
    dequantize_row_q5_0(&b50, y, 32);
    for (int j = 0; j < 32; j++)
        CHECK(y[j] == x[j]);

    /* q5_1: min -1, max 30 -> d = 1 exactly. */
    for (int j = 0; j < 32; j++)
        x[j] = (float)j - 1.0f;
    block_q5_1 b51;
    quantize_row_q5_1_ref(x, &b51, 32);
    CHECK(f16_to_f32(b51.d) == 1.0f && f16_to_f32(b51.m) == -1.0f);
    dequantize_row_q5_1(&b51, y, 32);
    for (int j = 0; j < 32; j++)
        CHECK(y[j] == x[j]);

    /* Small integer grids the k-quants can represent exactly come back exactly. */
    for (int j = 0; j < QK_K; j++)
        x[j] = (float)((j * 5) % 32 - 16);
    for (int g = 0; g < QK_K / 16; g++)
        x[16 * g] = -32.0f; /* every group of 16 holds the extreme */
    round_trip(PG_TYPE_Q6_K, x, y, QK_K);
    CHECKF(rel_rmse(x, y, QK_K) == 0.0, "q6_K integer grid %g", rel_rmse(x, y, QK_K));
    for (int j = 0; j < QK_K; j++)
        x[j] = (float)((j * 7) % 32);
    for (int g = 0; g < QK_K / 32; g++) {
        x[32 * g] = 0.0f;
        x[32 * g + 1] = 31.0f;
    }
    round_trip(PG_TYPE_Q5_K, x, y, QK_K);
    CHECKF(rel_rmse(x, y, QK_K) < 1e-3, "q5_K integer grid %g", rel_rmse(x, y, QK_K));
}

/* ---- random round trips ---- */

enum dist { DIST_NORMAL, DIST_UNIFORM, DIST_POSITIVE, DIST_OUTLIERS, DIST_COUNT };
static const char *const dist_names[] = {"normal", "uniform", "positive", "outliers"};

static void fill(struct rng *r, enum dist d, float *x, int64_t n)
{
    const float scale = rng_range(r, 0.01f, 3.0f); /* vary the magnitude too */
    for (int64_t i = 0; i < n; i++) {
        float v;
        switch (d) {
        case DIST_NORMAL: v = rng_normal(r); break;
        case DIST_UNIFORM: v = rng_range(r, -1.0f, 1.0f); break;
        case DIST_POSITIVE: v = rng_range(r, 0.5f, 2.0f); break;
        default:
            v = rng_normal(r);
            if (rng_uniform(r) < 0.01f)
                v *= 30.0f;
            break;
        }
        x[i] = v * scale;
    }
}

/* The largest relative RMSE (vs the data's RMS) allowed per type: for
 * normal, uniform and all-positive rows, and for rows with outliers (1% of
 * values 30x larger), which stretch their block's scale and cost every other
 * value in the block precision. A uniform b-bit code over a block's range has
 * an RMSE near range / (2^b sqrt(12)); the bounds sit about 25% above what
 * these quantizers reach here (printed by the test). */
static double round_trip_bound(int type, int outliers)
{
    switch (type) {
    case PG_TYPE_F32: return 0.0;
    case PG_TYPE_F16: return 4e-4;  /* 2^-11 relative rounding at most */
    case PG_TYPE_BF16: return outliers ? 4e-3 : 2.5e-3;
    case PG_TYPE_Q8_0: return outliers ? 0.017 : 0.007;
    case PG_TYPE_Q8_1: return outliers ? 0.017 : 0.007;
    case PG_TYPE_Q8_K: return outliers ? 0.040 : 0.009; /* one scale per 256 */
    case PG_TYPE_Q6_K: return outliers ? 0.042 : 0.023;
    case PG_TYPE_Q5_1: return outliers ? 0.090 : 0.050;
    case PG_TYPE_Q5_K: return outliers ? 0.065 : 0.045;
    case PG_TYPE_Q5_0: return outliers ? 0.110 : 0.055;
    case PG_TYPE_Q4_1: return outliers ? 0.180 : 0.100;
    case PG_TYPE_Q4_K: return outliers ? 0.130 : 0.100;
    case PG_TYPE_Q4_0: return outliers ? 0.210 : 0.120;
    case PG_TYPE_Q3_K: return outliers ? 0.200 : 0.200;
    case PG_TYPE_Q2_K: return outliers ? 0.380 : 0.380;
    default: return 0.0;
    }
}

static void test_round_trips(void)
{
    struct rng r;
    rng_seed(&r, 0x5eed0001);
    const int blocks[] = {1, 2, 3, 5, 16};
    double worst_d[PG_TYPE_COUNT][DIST_COUNT] = {{0}};
    double worst_plain[PG_TYPE_COUNT] = {0};
    for (int ti = 0; ti < N_TYPES; ti++) {
        const int type = all_types[ti];
        const struct type_traits *t = type_traits_get(type);
        const int bs = t->block_size == 1 ? 32 : t->block_size;
        for (int d = 0; d < DIST_COUNT; d++) {
            for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; bi++) {
                const int64_t n = (int64_t)bs * blocks[bi] + (t->block_size == 1 ? 3 : 0);
                float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
                fill(&r, (enum dist)d, x, n);
                round_trip(type, x, y, n);
                const double e = rel_rmse(x, y, n);
                if (e > worst_d[type][d])
                    worst_d[type][d] = e;
                if (d != DIST_OUTLIERS && e > worst_plain[type])
                    worst_plain[type] = e;
                CHECKF(all_finite(y, n), "%s %s n=%lld: non-finite output", t->name,
                       dist_names[d], (long long)n);
                const double bound = round_trip_bound(type, d == DIST_OUTLIERS);
                CHECKF(e <= bound, "%s %s n=%lld: rel rmse %.5f > %.5f", t->name,
                       dist_names[d], (long long)n, e, bound);
                free(x);
                free(y);
            }
        }
    }
    printf("round trip, worst relative RMSE: %s %s %s (bound) | %s (bound)\n", dist_names[0],
           dist_names[1], dist_names[2], dist_names[3]);
    for (int ti = 0; ti < N_TYPES; ti++) {
        const int ty = all_types[ti];
        printf("  %-5s %.5f %.5f %.5f (%.4f) | %.5f (%.4f)\n", type_name(ty), worst_d[ty][0],
               worst_d[ty][1], worst_d[ty][2], round_trip_bound(ty, 0), worst_d[ty][3],
               round_trip_bound(ty, 1));
    }
    /* More bits, less error: the orderings that must hold. */
    CHECK(worst_plain[PG_TYPE_Q8_0] < worst_plain[PG_TYPE_Q5_0]);
    CHECK(worst_plain[PG_TYPE_Q5_0] < worst_plain[PG_TYPE_Q4_0]);
    CHECK(worst_plain[PG_TYPE_Q5_1] < worst_plain[PG_TYPE_Q4_1]);
    CHECK(worst_plain[PG_TYPE_Q6_K] < worst_plain[PG_TYPE_Q5_K]);
    CHECK(worst_plain[PG_TYPE_Q5_K] < worst_plain[PG_TYPE_Q4_K]);
    CHECK(worst_plain[PG_TYPE_Q4_K] < worst_plain[PG_TYPE_Q3_K]);
    CHECK(worst_plain[PG_TYPE_Q3_K] < worst_plain[PG_TYPE_Q2_K]);
}

/* A block of zeros stays zeros; a block with one huge value keeps it and stays
 * finite everywhere (huge = 3e4, inside f16's range, which holds the scales). */
static void test_degenerate_blocks(void)
{
    struct rng r;
    rng_seed(&r, 0x5eed0002);
    for (int ti = 0; ti < N_TYPES; ti++) {
        const int type = all_types[ti];
        const struct type_traits *t = type_traits_get(type);
        const int64_t n = t->block_size == 1 ? 64 : 2 * t->block_size;
        float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);

        memset(x, 0, (size_t)n * sizeof *x);
        round_trip(type, x, y, n);
        int zeros = 1;
        for (int64_t i = 0; i < n; i++)
            zeros &= y[i] == 0.0f;
        CHECKF(zeros, "%s: zeros do not come back as zeros", t->name);

        for (int sign = -1; sign <= 1; sign += 2) {
            for (int64_t i = 0; i < n; i++)
                x[i] = 0.1f * rng_normal(&r);
            const int64_t at = (int64_t)(rng_uniform(&r) * (float)n);
            x[at] = (float)sign * 3e4f;
            round_trip(type, x, y, n);
            CHECKF(all_finite(y, n), "%s: huge value gives non-finite output", t->name);
            CHECKF(fabsf(y[at] - x[at]) <= 0.1f * fabsf(x[at]), "%s: huge %g came back %g",
                   t->name, x[at], y[at]);
        }

        /* One block all zero next to a normal one: the normal block is unaffected. */
        for (int64_t i = 0; i < n; i++)
            x[i] = i < n / 2 ? 0.0f : rng_normal(&r);
        round_trip(type, x, y, n);
        CHECKF(all_finite(y, n), "%s: mixed zero block non-finite", t->name);
        for (int64_t i = 0; i < n / 2; i++)
            CHECK(y[i] == 0.0f);
        free(x);
        free(y);
    }
}

static void test_quantize_rows(void)
{
    struct rng r;
    rng_seed(&r, 0x5eed0003);
    const int64_t rows = 5;
    for (int ti = 0; ti < N_TYPES; ti++) {
        const int type = all_types[ti];
        const struct type_traits *t = type_traits_get(type);
        const int64_t per_row = t->block_size == 1 ? 37 : 3 * (int64_t)t->block_size;
        const size_t row_size = type_row_size(type, per_row);
        float *x = malloc((size_t)(rows * per_row) * sizeof *x);
        uint8_t *a = malloc(rows * row_size), *b = malloc(rows * row_size);
        fill(&r, DIST_NORMAL, x, rows * per_row);
        CHECK(quantize_rows(type, x, a, rows, per_row) == rows * row_size);
        for (int64_t i = 0; i < rows; i++)
            t->from_float_ref(x + i * per_row, b + i * row_size, per_row);
        CHECKF(memcmp(a, b, rows * row_size) == 0, "%s: rows differ from row-by-row",
               t->name);
        /* The reference quantizers are deterministic. */
        CHECK(quantize_rows(type, x, b, rows, per_row) == rows * row_size);
        CHECK(memcmp(a, b, rows * row_size) == 0);
        if (t->block_size > 1)
            CHECK(quantize_rows(type, x, a, rows, per_row + 1) == 0);
        free(x);
        free(a);
        free(b);
    }
    float x1[32] = {1};
    uint8_t out[64];
    CHECK(quantize_rows(4, x1, out, 1, 32) == 0);
    CHECK(quantize_rows(PG_TYPE_Q8_0, x1, out, 0, 32) == 0);
    /* f16 / bf16 store what the conversions give, bit for bit. */
    struct rng r2;
    rng_seed(&r2, 7);
    float xs[257], ys[257];
    for (int i = 0; i < 257; i++)
        xs[i] = rng_normal(&r2) * 100.0f;
    round_trip(PG_TYPE_F16, xs, ys, 257);
    int same = 1;
    for (int i = 0; i < 257; i++)
        same &= ys[i] == f32_round_f16(xs[i]);
    CHECK(same);
    round_trip(PG_TYPE_BF16, xs, ys, 257);
    same = 1;
    for (int i = 0; i < 257; i++)
        same &= ys[i] == f32_round_bf16(xs[i]);
    CHECK(same);
}

/* ---- against the reference models ---- */

static struct gguf_file *open_model(const char *dir, const char *type)
{
    char path[4096], err[256];
    snprintf(path, sizeof path, "%s/models/tiny-llama-%s.gguf", dir, type);
    struct gguf_file *g = NULL;
    if (gguf_open(path, &g, err, sizeof err) < 0) {
        fprintf(stderr, "cannot open %s: %s\n", path, err);
        return NULL;
    }
    return g;
}

static int64_t tensor_elems(const struct gguf_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++)
        n *= t->ne[d];
    return n;
}

static const struct gguf_tensor *f32_twin(const struct gguf_file *f32, const struct gguf_tensor *t)
{
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
    const struct gguf_tensor *s = gguf_find_tensor(f32, name);
    if (!s || s->type != PG_TYPE_F32 || tensor_elems(s) != tensor_elems(t) || s->ne[0] != t->ne[0])
        return NULL;
    return s;
}

/* Quantizing the f32 model gives the quantized file's bytes. */
static void test_exact_files(const char *dir, struct gguf_file *f32)
{
    static const struct {
        const char *file;
        int type;
    } files[] = {
        {"q4_0", PG_TYPE_Q4_0}, {"q4_1", PG_TYPE_Q4_1}, {"q5_0", PG_TYPE_Q5_0},
        {"q5_1", PG_TYPE_Q5_1}, {"q8_0", PG_TYPE_Q8_0},
    };
    for (size_t fi = 0; fi < sizeof files / sizeof files[0]; fi++) {
        struct gguf_file *g = open_model(dir, files[fi].file);
        CHECKF(g != NULL, "%s", files[fi].file);
        if (!g)
            continue;
        int compared = 0, identical = 0;
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const struct gguf_tensor *t = &g->tensors[i];
            if (t->type != files[fi].type)
                continue;
            const struct gguf_tensor *s = f32_twin(f32, t);
            CHECKF(s != NULL, "%s: %.*s has no f32 twin", files[fi].file, (int)t->name.len,
                   t->name.ptr);
            if (!s)
                continue;
            const int64_t n = tensor_elems(t);
            const size_t bytes = type_row_size(t->type, t->ne[0]) * (size_t)(n / t->ne[0]);
            CHECK(bytes == t->nbytes);
            uint8_t *q = malloc(bytes);
            CHECK(quantize_rows(t->type, s->data, q, n / t->ne[0], t->ne[0]) == bytes);
            compared++;
            if (memcmp(q, t->data, bytes) == 0) {
                identical++;
            } else {
                size_t at = 0;
                while (at < bytes && q[at] == ((const uint8_t *)t->data)[at])
                    at++;
                fprintf(stderr, "%s: %.*s differs first at byte %zu\n", files[fi].file,
                        (int)t->name.len, t->name.ptr, at);
            }
            free(q);
        }
        printf("%s: %d of %d tensors byte-identical\n", files[fi].file, identical, compared);
        CHECKF(compared > 0 && identical == compared, "%s: %d of %d identical", files[fi].file,
               identical, compared);
        gguf_close(g);
    }
}

/* k-quants: our round trip errs no more than the file's (x1.001), per tensor. */
static void test_kquant_files(const char *dir, struct gguf_file *f32)
{
    static const char *const files[] = {"q2_k", "q3_k_s", "q4_k_s", "q5_k_s", "q6_k", "q4_k_m"};
    for (size_t fi = 0; fi < sizeof files / sizeof files[0]; fi++) {
        struct gguf_file *g = open_model(dir, files[fi]);
        CHECKF(g != NULL, "%s", files[fi]);
        if (!g)
            continue;
        int compared = 0, identical = 0;
        double worst_ratio = 0.0;
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const struct gguf_tensor *t = &g->tensors[i];
            if (t->type < PG_TYPE_Q2_K || t->type > PG_TYPE_Q6_K)
                continue;
            const struct gguf_tensor *s = f32_twin(f32, t);
            CHECKF(s != NULL, "%s: %.*s has no f32 twin", files[fi], (int)t->name.len,
                   t->name.ptr);
            if (!s)
                continue;
            const struct type_traits *tt = type_traits_get(t->type);
            const int64_t n = tensor_elems(t);
            const size_t bytes = type_row_size(t->type, t->ne[0]) * (size_t)(n / t->ne[0]);
            uint8_t *q = malloc(bytes);
            float *ours = malloc((size_t)n * sizeof(float));
            float *theirs = malloc((size_t)n * sizeof(float));
            quantize_rows(t->type, s->data, q, n / t->ne[0], t->ne[0]);
            tt->to_float(q, ours, n);
            tt->to_float(t->data, theirs, n);
            const double e_ours = rmse(s->data, ours, n), e_theirs = rmse(s->data, theirs, n);
            const double ratio = e_theirs > 0 ? e_ours / e_theirs : 0.0;
            worst_ratio = ratio > worst_ratio ? ratio : worst_ratio;
            CHECKF(e_ours <= e_theirs * 1.001, "%s %.*s (%s): rmse %.6g vs file %.6g", files[fi],
                   (int)t->name.len, t->name.ptr, tt->name, e_ours, e_theirs);
            compared++;
            identical += memcmp(q, t->data, bytes) == 0;
            free(q);
            free(ours);
            free(theirs);
        }
        printf("%s: %d k-quant tensors, %d byte-identical, worst rmse ratio ours/file %.6f\n",
               files[fi], compared, identical, worst_ratio);
        CHECK(compared > 0);
        /* The searches do their arithmetic in the files' tool's order, so even
         * the k-quant bytes come out the same. */
        CHECKF(identical == compared, "%s: %d of %d k-quant tensors byte-identical", files[fi],
               identical, compared);
        gguf_close(g);
    }
}

/* Every tensor of every file dequantizes to within its type's error of the
 * f32 model (RMSE relative to the tensor's RMS; the weights are random normal,
 * so these sit a little above the round-trip numbers for normal data). */
static double file_tolerance(int type)
{
    switch (type) {
    case PG_TYPE_F32: return 0.0;
    case PG_TYPE_F16: return 5e-4;
    case PG_TYPE_BF16: return 3e-3;
    case PG_TYPE_Q8_0: return 0.008;
    case PG_TYPE_Q6_K: return 0.02;
    case PG_TYPE_Q5_0: return 0.05;
    case PG_TYPE_Q5_1: return 0.045;
    case PG_TYPE_Q5_K: return 0.04;
    case PG_TYPE_Q4_0: return 0.10;
    case PG_TYPE_Q4_1: return 0.09;
    case PG_TYPE_Q4_K: return 0.08;
    case PG_TYPE_Q3_K: return 0.17;
    case PG_TYPE_Q2_K: return 0.35;
    default: return -1.0;
    }
}

static void test_file_dequant(const char *dir, struct gguf_file *f32)
{
    static const char *const files[] = {"f32",    "f16",    "bf16",   "q8_0", "q4_0",
                                        "q4_1",   "q5_0",   "q5_1",   "q2_k", "q3_k_s",
                                        "q4_k_s", "q5_k_s", "q6_k",   "q4_k_m"};
    double worst[PG_TYPE_COUNT];
    for (int i = 0; i < PG_TYPE_COUNT; i++)
        worst[i] = -1.0;
    for (size_t fi = 0; fi < sizeof files / sizeof files[0]; fi++) {
        struct gguf_file *g = open_model(dir, files[fi]);
        CHECKF(g != NULL, "%s", files[fi]);
        if (!g)
            continue;
        int checked = 0;
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const struct gguf_tensor *t = &g->tensors[i];
            const struct type_traits *tt = type_traits_get(t->type);
            CHECKF(tt != NULL, "%s: tensor type %d unsupported", files[fi], t->type);
            if (!tt)
                continue;
            const struct gguf_tensor *s = f32_twin(f32, t);
            CHECK(s != NULL);
            if (!s)
                continue;
            const int64_t n = tensor_elems(t);
            float *y = malloc((size_t)n * sizeof *y);
            tt->to_float(t->data, y, n);
            const double e = rel_rmse(s->data, y, n);
            if (e > worst[t->type])
                worst[t->type] = e;
            CHECKF(all_finite(y, n), "%s %.*s: non-finite", files[fi], (int)t->name.len,
                   t->name.ptr);
            CHECKF(e <= file_tolerance(t->type), "%s %.*s (%s): rel rmse %.5f > %.5f",
                   files[fi], (int)t->name.len, t->name.ptr, tt->name, e,
                   file_tolerance(t->type));
            free(y);
            checked++;
        }
        CHECK(checked == (int)g->n_tensors);
        gguf_close(g);
    }
    printf("reference files, worst relative RMSE of dequantized tensors:\n");
    for (int i = 0; i < PG_TYPE_COUNT; i++) {
        if (worst[i] >= 0.0)
            printf("  %-5s %.5f (tolerance %.4f)\n", type_name(i), worst[i], file_tolerance(i));
    }
}

int main(void)
{
    test_traits();
    test_rounding_rules();
    test_round_trips();
    test_degenerate_blocks();
    test_quantize_rows();

    const char *dir = test_reference_dir();
    if (dir) {
        struct gguf_file *f32 = open_model(dir, "f32");
        CHECK(f32 != NULL);
        if (f32) {
            test_exact_files(dir, f32);
            test_kquant_files(dir, f32);
            test_file_dequant(dir, f32);
            gguf_close(f32);
        }
    } else {
        printf("reference data absent: file tests skipped\n");
    }
    TEST_END();
}
