/*
 * cpu.h: what the processor can do, read once at start-up, and which SIMD
 * level pagoda's kernels use. PAGODA_ISA=scalar|avx2|avx512 in the
 * environment lowers the level (never raises it past what the CPU has), so
 * tests and benchmarks can run every path on one machine.
 */
#ifndef PAGODA_BASE_CPU_H
#define PAGODA_BASE_CPU_H

#include <stdbool.h>

struct cpu_features {
    bool sse3, ssse3, fma, f16c, avx, avx2, bmi2;
    bool avx512f, avx512bw, avx512vl, avx512dq, avx512vnni, avx512bf16;
    bool avxvnni;
};

enum cpu_isa {
    CPU_ISA_SCALAR = 0,
    CPU_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C */
    CPU_ISA_AVX512 = 2, /* AVX-512 F/BW/VL/DQ + VNNI */
};

/* The features of this CPU (and of the OS: AVX state must be enabled). */
const struct cpu_features *cpu_features_get(void);

/* The best ISA level the kernels may use, after the PAGODA_ISA override. */
enum cpu_isa cpu_isa_get(void);

/* Forces the ISA level (clamped to what the CPU has); for tests and benches.
 * Returns the level actually in force. Not thread-safe: call before work starts. */
enum cpu_isa cpu_isa_set(enum cpu_isa isa);

/* The highest level the CPU supports, ignoring overrides. */
enum cpu_isa cpu_isa_max(void);

const char *cpu_isa_name(enum cpu_isa isa);

/* A one-line description of the features, for `pagoda info` and benches. */
void cpu_features_describe(char *buf, unsigned len);

#endif
