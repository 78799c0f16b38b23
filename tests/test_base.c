/* test_base.c: fp16/bf16 conversions, the thread pool, CPU detection, errors. */
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "base/cpu.h"
#include "base/err.h"
#include "base/fp16.h"
#include "base/pool.h"
#include "base/rng.h"
#include "base/scratch.h"
#include "test.h"

#if defined(PAGODA_HAVE_X86)
#include <immintrin.h>
__attribute__((target("f16c"))) static uint16_t hw_f32_to_f16(float f)
{
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}
__attribute__((target("f16c"))) static float hw_f16_to_f32(uint16_t h)
{
    return _cvtsh_ss(h);
}
#endif

static void test_f16(void)
{
    /* Every half value survives the trip through float. */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = f16_to_f32((pg_f16)h);
        uint16_t back = f32_to_f16(f);
        bool is_nan = ((h & 0x7c00) == 0x7c00) && (h & 0x3ff);
        if (is_nan ? !isnan(f) : back != h)
            bad++;
    }
    CHECKF(bad == 0, "%d half values do not round-trip", bad);
    CHECK(f16_to_f32(0x3c00) == 1.0f);
    CHECK(f16_to_f32(0xc000) == -2.0f);
    CHECK(f32_to_f16(65504.0f) == 0x7bff);
    CHECK(f32_to_f16(1e6f) == 0x7c00);       /* overflow to inf */
    CHECK(f32_to_f16(1e-10f) == 0x0000);     /* underflow to zero */
    CHECK(f32_to_f16(5.9604645e-8f) == 0x0001); /* smallest subnormal */
    /* Ties go to even: 1 + 2^-11 sits halfway between 1 and the next half. */
    CHECK(f32_to_f16(1.0f + 0x1.0p-11f) == 0x3c00);
    CHECK(f32_to_f16(1.0f + 3 * 0x1.0p-11f) == 0x3c02);
#if defined(PAGODA_HAVE_X86)
    if (cpu_features_get()->f16c) {
        struct rng r;
        rng_seed(&r, 7);
        int mismatch = 0;
        for (int i = 0; i < 1000000; i++) {
            uint32_t bits = (uint32_t)rng_next(&r);
            float f = fp32_from_bits(bits);
            if (isnan(f))
                continue;
            if (hw_f32_to_f16(f) != f32_to_f16(f))
                mismatch++;
        }
        CHECKF(mismatch == 0, "%d floats convert differently from F16C", mismatch);
        for (uint32_t h = 0; h < 65536; h++) {
            float a = hw_f16_to_f32((uint16_t)h), b = f16_to_f32((pg_f16)h);
            if (!(isnan(a) && isnan(b)) && fp32_bits(a) != fp32_bits(b))
                mismatch++;
        }
        CHECKF(mismatch == 0, "%d halves widen differently from F16C", mismatch);
    }
#endif
}

static void test_bf16(void)
{
    CHECK(f32_to_bf16(1.0f) == 0x3f80);
    CHECK(bf16_to_f32(0x3f80) == 1.0f);
    /* Halfway cases round to even. */
    CHECK(f32_to_bf16(fp32_from_bits(0x3f808000u)) == 0x3f80);
    CHECK(f32_to_bf16(fp32_from_bits(0x3f818000u)) == 0x3f82);
    CHECK(f32_to_bf16(fp32_from_bits(0x3f808001u)) == 0x3f81);
    CHECK(isnan(bf16_to_f32(f32_to_bf16(NAN))));
    struct rng r;
    rng_seed(&r, 3);
    int bad = 0;
    for (int i = 0; i < 100000; i++) {
        float f = rng_normal(&r) * 100.0f;
        float g = f32_round_bf16(f);
        if (fabsf(g - f) > fabsf(f) * (1.0f / 256.0f))
            bad++;
    }
    CHECK(bad == 0);
}

struct pool_job {
    _Atomic long hits[64];
    _Atomic long total;
};

static void pool_job_fn(void *ctx, int ith, int nth)
{
    struct pool_job *j = ctx;
    atomic_fetch_add(&j->hits[ith], 1);
    atomic_fetch_add(&j->total, nth);
}

static void test_pool(void)
{
    char err[256];
    for (int n = 1; n <= 4; n++) {
        struct pool *p = pool_create(n, err, sizeof err);
        CHECK(p != NULL);
        if (!p)
            continue;
        CHECK(pool_size(p) == n);
        struct pool_job job;
        memset(&job, 0, sizeof job);
        const int rounds = n <= 2 ? 20000 : 500;
        for (int i = 0; i < rounds; i++)
            pool_run(p, pool_job_fn, &job);
        for (int t = 0; t < n; t++)
            CHECKF(job.hits[t] == rounds, "thread %d ran %ld of %d jobs", t, (long)job.hits[t],
                   rounds);
        CHECK(job.total == (long)rounds * n * n);
        /* Fewer threads than the pool has: the others must stay out. */
        memset(&job, 0, sizeof job);
        for (int i = 0; i < 1000; i++)
            pool_run_n(p, 1, pool_job_fn, &job);
        CHECK(job.hits[0] == 1000);
        for (int t = 1; t < n; t++)
            CHECK(job.hits[t] == 0);
        /* Jobs after the workers have gone to sleep still run. */
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
        memset(&job, 0, sizeof job);
        pool_run(p, pool_job_fn, &job);
        CHECK(job.total == (long)n * n);
        pool_destroy(p);
    }
    CHECK(pool_create(100000, err, sizeof err) == NULL && err[0]);
    struct pool_job job;
    memset(&job, 0, sizeof job);
    pool_run(NULL, pool_job_fn, &job);
    CHECK(job.hits[0] == 1 && job.total == 1);
}

/* Each pool thread writes its own pattern into its scratch, then checks it
 * is still there: buffers are per thread. */
static void scratch_job_fn(void *arg, int ith, int nth)
{
    (void)nth;
    atomic_int *bad = arg;
    for (int round = 0; round < 50; round++) {
        const size_t n = (size_t)(64 + 997 * round);
        uint8_t *p = thread_scratch(n);
        if (!p || ((uintptr_t)p & 63)) {
            atomic_fetch_add(bad, 1);
            return;
        }
        memset(p, ith + 1, n);
        uint8_t *q = thread_scratch(n / 2); /* smaller: the same buffer, untouched */
        if (q != p)
            atomic_fetch_add(bad, 1);
        for (size_t i = 0; i < n; i++)
            if (p[i] != (uint8_t)(ith + 1)) {
                atomic_fetch_add(bad, 1);
                break;
            }
    }
}

static void test_scratch(void)
{
    char err[256];
    struct pool *p = pool_create(4, err, sizeof err);
    CHECK(p != NULL);
    if (!p)
        return;
    atomic_int bad = 0;
    for (int i = 0; i < 20; i++)
        pool_run(p, scratch_job_fn, &bad);
    CHECKF(bad == 0, "%d scratch checks failed", (int)bad);
    pool_destroy(p);
    CHECK(thread_scratch(0) != NULL);
}

/* Small and large buffers: aligned, the size asked for, kept while smaller
 * sizes are asked, writable to the last byte; large ones (mapped on 2 MiB
 * boundaries where the system has the call) too. */
static void test_page_buf(void)
{
    static const size_t sizes[] = {1, 100, 65535, 65536, 300000, (size_t)3 << 20, ((size_t)5 << 20) + 1};
    struct page_buf b = {0};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        const size_t n = sizes[i];
        if (i % 2 == 0) /* from empty; otherwise growing the last one */
            page_buf_release(&b);
        const size_t before = b.cap;
        CHECK(page_buf_reserve(&b, n) == 0);
        if (!b.p)
            return;
        CHECKF(((uintptr_t)b.p & 63) == 0 && b.cap >= n, "size %zu: p %p cap %zu", n, b.p, b.cap);
        if (b.mapped)
            CHECKF(((uintptr_t)b.p & (((uintptr_t)2 << 20) - 1)) == 0, "size %zu: mapped at %p", n, b.p);
#if defined(__linux__)
        if (n > before) /* a new buffer: mapped exactly when large */
            CHECKF(b.mapped == (n >= 65536), "size %zu: mapped %d", n, b.mapped);
#endif
        uint8_t *p = b.p;
        memset(p, (int)i + 1, n);
        CHECK(page_buf_reserve(&b, n / 2 + 1) == 0 && b.p == p);
        CHECK(p[0] == (uint8_t)(i + 1) && p[n - 1] == (uint8_t)(i + 1));
    }
    page_buf_release(&b);
    CHECK(b.p == NULL && b.cap == 0 && b.mapped == 0);
    page_buf_release(&b); /* twice: nothing happens */
    CHECK(page_buf_reserve(&b, 0) == 0 && b.p != NULL);
    page_buf_release(&b);
}

static void test_cpu_and_err(void)
{
    enum cpu_isa max = cpu_isa_max();
    CHECK(cpu_isa_set(CPU_ISA_SCALAR) == CPU_ISA_SCALAR);
    CHECK(cpu_isa_get() == CPU_ISA_SCALAR);
    CHECK(cpu_isa_set(CPU_ISA_AVX512) == max);
    char buf[256];
    cpu_features_describe(buf, sizeof buf);
    CHECK(strstr(buf, "kernels:") != NULL);

    char err[64];
    CHECK(err_set(err, sizeof err, PAGODA_EFORMAT, "bad %d", 7) == PAGODA_EFORMAT);
    CHECK(!strcmp(err, "bad 7"));
    err_prefix(err, sizeof err, "file %s", "x.gguf");
    CHECK(!strcmp(err, "file x.gguf: bad 7"));
    char tiny[8];
    err_set(tiny, sizeof tiny, PAGODA_EIO, "a very long message");
    CHECK(strlen(tiny) == 7);
    CHECK(err_set(NULL, 0, PAGODA_EIO, "dropped") == PAGODA_EIO);
    CHECK(strcmp(pagoda_status_str(PAGODA_ENOMEM), "out of memory") == 0);
}

int main(void)
{
    test_f16();
    test_bf16();
    test_pool();
    test_scratch();
    test_page_buf();
    test_cpu_and_err();
    TEST_END();
}
