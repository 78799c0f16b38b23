/* cpu.c: CPU feature detection (cpuid + xgetbv) and the kernel ISA level. */
#include "base/cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(PAGODA_HAVE_X86)
#include <cpuid.h>
#endif

static struct cpu_features g_features;
static int g_detected;
static enum cpu_isa g_isa_max;
static enum cpu_isa g_isa;

#if defined(PAGODA_HAVE_X86)
static unsigned long long read_xcr0(void)
{
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}
#endif

static void detect(void)
{
    struct cpu_features f;
    memset(&f, 0, sizeof f);
#if defined(PAGODA_HAVE_X86)
    unsigned a, b, c, d;
    unsigned max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf >= 1) {
        __cpuid_count(1, 0, a, b, c, d);
        f.sse3 = c & (1u << 0);
        f.ssse3 = c & (1u << 9);
        f.fma = c & (1u << 12);
        bool osxsave = c & (1u << 27);
        f.avx = c & (1u << 28);
        f.f16c = c & (1u << 29);
        unsigned long long xcr0 = osxsave ? read_xcr0() : 0;
        bool ymm_ok = (xcr0 & 0x6) == 0x6;
        bool zmm_ok = (xcr0 & 0xe6) == 0xe6;
        if (!ymm_ok)
            f.avx = f.fma = f.f16c = false;
        if (max_leaf >= 7) {
            __cpuid_count(7, 0, a, b, c, d);
            f.avx2 = ymm_ok && (b & (1u << 5));
            f.bmi2 = b & (1u << 8);
            f.avx512f = zmm_ok && (b & (1u << 16));
            f.avx512dq = zmm_ok && (b & (1u << 17));
            f.avx512bw = zmm_ok && (b & (1u << 30));
            f.avx512vl = zmm_ok && (b & (1u << 31));
            f.avx512vnni = zmm_ok && (c & (1u << 11));
            __cpuid_count(7, 1, a, b, c, d);
            f.avxvnni = ymm_ok && (a & (1u << 4));
            f.avx512bf16 = zmm_ok && (a & (1u << 5));
        }
    }
#endif
    g_features = f;
    g_isa_max = CPU_ISA_SCALAR;
    if (f.avx2 && f.fma && f.f16c)
        g_isa_max = CPU_ISA_AVX2;
    if (g_isa_max == CPU_ISA_AVX2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq &&
        f.avx512vnni)
        g_isa_max = CPU_ISA_AVX512;
    g_isa = g_isa_max;
    const char *env = getenv("PAGODA_ISA");
    if (env && *env) {
        enum cpu_isa want = g_isa_max;
        if (!strcmp(env, "scalar"))
            want = CPU_ISA_SCALAR;
        else if (!strcmp(env, "avx2"))
            want = CPU_ISA_AVX2;
        else if (!strcmp(env, "avx512"))
            want = CPU_ISA_AVX512;
        else
            fprintf(stderr, "pagoda: ignoring PAGODA_ISA=%s (want scalar, avx2 or avx512)\n", env);
        g_isa = want < g_isa_max ? want : g_isa_max;
    }
    g_detected = 1;
}

const struct cpu_features *cpu_features_get(void)
{
    if (!g_detected)
        detect();
    return &g_features;
}

enum cpu_isa cpu_isa_get(void)
{
    if (!g_detected)
        detect();
    return g_isa;
}

enum cpu_isa cpu_isa_max(void)
{
    if (!g_detected)
        detect();
    return g_isa_max;
}

enum cpu_isa cpu_isa_set(enum cpu_isa isa)
{
    if (!g_detected)
        detect();
    g_isa = isa < g_isa_max ? isa : g_isa_max;
    return g_isa;
}

const char *cpu_isa_name(enum cpu_isa isa)
{
    switch (isa) {
    case CPU_ISA_SCALAR: return "scalar";
    case CPU_ISA_AVX2: return "avx2";
    case CPU_ISA_AVX512: return "avx512";
    }
    return "?";
}

void cpu_features_describe(char *buf, unsigned len)
{
    const struct cpu_features *f = cpu_features_get();
    snprintf(buf, len, "%s%s%s%s%s%s%s%s%s%s(kernels: %s)", f->avx2 ? "avx2 " : "",
             f->fma ? "fma " : "", f->f16c ? "f16c " : "", f->avx512f ? "avx512f " : "",
             f->avx512bw ? "avx512bw " : "", f->avx512vl ? "avx512vl " : "",
             f->avx512vnni ? "avx512vnni " : "", f->avx512bf16 ? "avx512bf16 " : "",
             f->avxvnni ? "avxvnni " : "", (f->avx2 || f->avx512f) ? "" : "no simd ",
             cpu_isa_name(cpu_isa_get()));
}
