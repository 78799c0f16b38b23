/*
 * bench_hw.h: measurements of what the hardware can do, the ceilings every
 * kernel is judged against: read bandwidth from memory (the decode ceiling)
 * and the int8 dot-product peak (the prefill ceiling), plus the speed of each
 * weight type's matmul as a fraction of those, measured in the same run.
 */
#ifndef PAGODA_BENCH_HW_H
#define PAGODA_BENCH_HW_H

#include <stddef.h>
#include <stdint.h>

#include "base/pool.h"

struct membw_result {
    int threads;
    size_t bytes;       /* buffer read per repetition */
    int reps;
    double median_gbs;  /* GB = 1e9 bytes */
    double best_gbs;
    const char *isa;    /* the load width used: "avx512", "avx2" or "scalar" */
};

/* Reads a buffer of `bytes` with the first n_threads threads of pool (each a
 * slice), reps times after one warm-up pass; then, when one_out is not NULL,
 * the same with one thread. The buffer is allocated, filled and freed here.
 * Returns 0 or a negative status. */
int bench_membw(struct pool *pool, int n_threads, size_t bytes, int reps,
                struct membw_result *out, struct membw_result *one_out, char *err,
                size_t errlen);

struct peak_result {
    int threads;
    double tops;       /* 1e12 int8 ops per second, a multiply-add counted as 2 */
    double seconds;    /* measured time */
    const char *instr; /* "vpdpbusd zmm (avx512-vnni)", ... */
};

/* Runs the best int8 dot-product loop the CPU has on n_threads threads of
 * pool for about `seconds`. Returns 0 or a negative status. */
int bench_peak(struct pool *pool, int n_threads, double seconds, struct peak_result *out,
               char *err, size_t errlen);

struct kernel_result {
    int type;            /* enum pg_type */
    const char *isa;     /* which ISA's kernel ran */
    int64_t mv_n, mv_k;  /* matvec shape */
    double mv_bytes;     /* weight bytes read per matvec */
    double mv_gbs;       /* median GB/s of weight bytes */
    double gemm_gops[2]; /* median GOP/s at b = 32 and b = 512 (0: not run) */
    int64_t gemm_n, gemm_k;
};

/* The matvec and GEMM speed of one weight type. The weights live in the
 * caller's buffer wbuf (64-byte aligned, reused across types so its pages are
 * touched once): the matvec matrix (rows of k = 4096) fills as much of its
 * wbuf_bytes as whole 64-row groups allow; the GEMMs use its first gemm_n
 * rows (gemm_k must be 4096). Each measurement repeats until about
 * max_seconds. Returns 0 or a negative status. */
int bench_kernel_type(struct pool *pool, int type, void *wbuf, size_t wbuf_bytes,
                      int64_t gemm_n, int64_t gemm_k, double max_seconds,
                      struct kernel_result *out, char *err, size_t errlen);

struct attn_bench_result {
    int kv_type;                 /* enum pg_type of the KV store */
    int n_heads, n_kv_heads, head_dim;
    int prefill_tokens;          /* one sequence's prompt in one call */
    int decode_pos;              /* one token attending to positions 0..decode_pos */
    double prefill_ms, decode_ms; /* median wall time of one layer's attention */
};

/* Times attn_forward on random K/V (32 heads, 8 KV heads, head_dim 64, KV
 * type kv_type): a 512-token prefill and a decode step at position 1024.
 * Each repeats until about max_seconds. Returns 0 or a negative status. */
int bench_attention(struct pool *pool, int kv_type, double max_seconds,
                    struct attn_bench_result *out, char *err, size_t errlen);

/* Sorts v and returns its median (0 for n = 0). */
double bench_median(double *v, int n);

/* Bytes of the last-level cache (0 if unknown). */
size_t bench_llc_bytes(void);

/* ISA-specific loops (bench_peak_avx2.c / bench_peak_avx512.c). Each peak
 * loop returns the int8 ops it performed; sink defeats dead-code removal. */
#if defined(PAGODA_HAVE_X86)
float bench_read_sum_avx2(const float *p, size_t n);
float bench_read_sum_avx512(const float *p, size_t n);
int64_t bench_peak_loop_avx2(int64_t iters, int32_t *sink);
int64_t bench_peak_loop_avxvnni(int64_t iters, int32_t *sink);
int64_t bench_peak_loop_avx512(int64_t iters, int32_t *sink);
#endif

#endif
