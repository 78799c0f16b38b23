/*
 * bench_hw.c: the memory-bandwidth and int8-peak measurements (bench_hw.h).
 * The loops themselves live in the per-ISA files; this file sizes the work,
 * splits it over the pool and times it.
 */
#include "bench/bench_hw.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/cpu.h"
#include "base/err.h"

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(double *v, int n)
{
    if (n <= 0)
        return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

size_t bench_llc_bytes(void)
{
    long v = -1;
#if defined(_SC_LEVEL3_CACHE_SIZE)
    v = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
    if (v > 0)
        return (size_t)v;
    /* sysfs: index3 is the L3 on x86 Linux; sizes are like "32768K". */
    FILE *f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r");
    if (!f)
        return 0;
    char buf[32] = {0};
    size_t n = 0;
    if (fgets(buf, sizeof buf, f)) {
        char *end;
        unsigned long long x = strtoull(buf, &end, 10);
        if (*end == 'K')
            x <<= 10;
        else if (*end == 'M')
            x <<= 20;
        n = (size_t)x;
    }
    fclose(f);
    return n;
}

/* ---- memory bandwidth ---- */

struct read_job {
    float *buf;
    size_t n;       /* floats */
    int fill;       /* 1: write the buffer (first touch), 0: read it */
    float sums[256];
    int isa;
};

static float read_sum_scalar(const float *p, size_t n)
{
    float s[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            s[k] += p[i + k];
    for (; i < n; i++)
        s[0] += p[i];
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

static void read_worker(void *ctx, int ith, int nth)
{
    struct read_job *j = ctx;
    /* Slices in whole 64-float (256-byte) steps keep the vector loads aligned. */
    const size_t blocks = j->n / 64;
    const size_t b0 = blocks * (size_t)ith / (size_t)nth;
    const size_t b1 = blocks * (size_t)(ith + 1) / (size_t)nth;
    float *p = j->buf + b0 * 64;
    const size_t n = (b1 - b0) * 64;
    if (j->fill) {
        for (size_t i = 0; i < n; i++)
            p[i] = (float)(i & 7) * 0.125f;
        return;
    }
    float s;
#if defined(PAGODA_HAVE_X86)
    if (j->isa >= CPU_ISA_AVX512)
        s = bench_read_sum_avx512(p, n);
    else if (j->isa >= CPU_ISA_AVX2)
        s = bench_read_sum_avx2(p, n);
    else
#endif
        s = read_sum_scalar(p, n);
    if (ith < 256)
        j->sums[ith] = s;
}

/* Times reps passes of nth threads over the filled buffer into *out. */
static void membw_run(struct pool *pool, int nth, struct read_job *j, int reps, double *gbs,
                      struct membw_result *out)
{
    const size_t read_bytes = j->n / 64 * 64 * sizeof(float);
    pool_run_n(pool, nth, read_worker, j); /* warm-up: TLB, caches, threads awake */
    for (int r = 0; r < reps; r++) {
        const double t0 = clock_now();
        pool_run_n(pool, nth, read_worker, j);
        gbs[r] = (double)read_bytes / (clock_now() - t0) / 1e9;
    }
    out->threads = nth < pool_size(pool) ? nth : pool_size(pool);
    out->bytes = read_bytes;
    out->reps = reps;
    out->best_gbs = 0;
    for (int r = 0; r < reps; r++)
        if (gbs[r] > out->best_gbs)
            out->best_gbs = gbs[r];
    out->median_gbs = bench_median(gbs, reps);
    out->isa = j->isa >= CPU_ISA_AVX512 ? "avx512" : j->isa >= CPU_ISA_AVX2 ? "avx2" : "scalar";
}

int bench_membw(struct pool *pool, int n_threads, size_t bytes, int reps,
                struct membw_result *out, struct membw_result *one_out, char *err,
                size_t errlen)
{
    if (bytes < (1u << 20) || reps < 1 || n_threads < 1)
        return err_set(err, errlen, PAGODA_EINVAL, "membw: need at least 1 MiB and 1 repetition");
    bytes &= ~(size_t)4095;
    struct read_job *j = calloc(1, sizeof *j);
    double *gbs = calloc((size_t)reps, sizeof *gbs);
    if (!j || !gbs) {
        free(j), free(gbs);
        return err_set(err, errlen, PAGODA_ENOMEM, "membw: out of memory");
    }
    j->buf = aligned_alloc(4096, bytes);
    if (!j->buf) {
        free(j), free(gbs);
        return err_set(err, errlen, PAGODA_ENOMEM, "membw: cannot allocate %zu MB",
                       bytes >> 20);
    }
    j->n = bytes / sizeof(float);
    j->isa = (int)cpu_isa_get();
    j->fill = 1; /* first touch by the threads that will read */
    pool_run_n(pool, n_threads, read_worker, j);
    j->fill = 0;
    membw_run(pool, n_threads, j, reps, gbs, out);
    if (one_out)
        membw_run(pool, 1, j, reps, gbs, one_out);
    free(j->buf);
    free(j);
    free(gbs);
    return 0;
}

/* ---- int8 peak ---- */

typedef int64_t (*peak_loop_fn)(int64_t iters, int32_t *sink);

static int64_t peak_loop_scalar(int64_t iters, int32_t *sink)
{
    /* Eight independent int32 chains of int8 products: a floor for CPUs
     * without SIMD, not a peak. */
    uint32_t acc[8] = {1, 2, 3, 4, 5, 6, 7, 8}; /* unsigned: long runs wrap around */
    volatile int8_t av = 3, bv = -2;
    const int8_t a = av, b = bv;
    for (int64_t it = 0; it < iters; it++)
        for (int k = 0; k < 8; k++)
            acc[k] += (uint32_t)((int8_t)(a ^ (int8_t)acc[k]) * b);
    *sink = (int32_t)(acc[0] + acc[1] + acc[2] + acc[3] + acc[4] + acc[5] + acc[6] + acc[7]);
    return iters * 8 * 2;
}

struct peak_job {
    peak_loop_fn fn;
    int64_t iters;
    _Atomic int64_t ops;
    int32_t sink[256];
};

static void peak_worker(void *ctx, int ith, int nth)
{
    (void)nth;
    struct peak_job *j = ctx;
    int32_t s = 0;
    const int64_t ops = j->fn(j->iters, &s);
    atomic_fetch_add(&j->ops, ops);
    if (ith < 256)
        j->sink[ith] = s;
}

int bench_peak(struct pool *pool, int n_threads, double seconds, struct peak_result *out,
               char *err, size_t errlen)
{
    if (n_threads < 1 || !(seconds > 0))
        return err_set(err, errlen, PAGODA_EINVAL, "peak: bad thread count or duration");
    peak_loop_fn fn = peak_loop_scalar;
    const char *instr = "scalar int8 multiply-add";
#if defined(PAGODA_HAVE_X86)
    const struct cpu_features *f = cpu_features_get();
    const enum cpu_isa isa = cpu_isa_get();
    if (isa >= CPU_ISA_AVX512 && f->avx512vnni) {
        fn = bench_peak_loop_avx512;
        instr = "vpdpbusd zmm (avx512-vnni)";
    } else if (isa >= CPU_ISA_AVX2 && f->avxvnni) {
        fn = bench_peak_loop_avxvnni;
        instr = "vpdpbusd ymm (avx-vnni)";
    } else if (isa >= CPU_ISA_AVX2) {
        fn = bench_peak_loop_avx2;
        instr = "vpmaddubsw+vpmaddwd ymm (avx2)";
    }
#endif
    /* Calibrate on one thread: grow the count until a run takes >= 20 ms. */
    int32_t s;
    int64_t iters = 1000;
    double dt = 0;
    for (;;) {
        const double t0 = clock_now();
        fn(iters, &s);
        dt = clock_now() - t0;
        if (dt >= 0.02 || iters > ((int64_t)1 << 40))
            break;
        iters *= 4;
    }
    struct peak_job *j = calloc(1, sizeof *j);
    if (!j)
        return err_set(err, errlen, PAGODA_ENOMEM, "peak: out of memory");
    j->fn = fn;
    j->iters = (int64_t)((double)iters * seconds / dt) + 1;
    const double t0 = clock_now();
    pool_run_n(pool, n_threads, peak_worker, j);
    const double wall = clock_now() - t0;
    out->threads = n_threads < pool_size(pool) ? n_threads : pool_size(pool);
    out->seconds = wall;
    out->tops = (double)atomic_load(&j->ops) / wall / 1e12;
    out->instr = instr;
    free(j);
    return 0;
}
