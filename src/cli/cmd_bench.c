/*
 * cmd_bench.c: `pagoda bench membw|peak|kernels`: the hardware ceilings
 * (memory read bandwidth, int8 dot-product peak) and each weight type's
 * matmul speed as a fraction of them, measured in the same run. Prints a
 * table, or JSON with --json.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/clock.h"
#include "base/cpu.h"
#include "base/pool.h"
#include "bench/bench_hw.h"
#include "cli/cli.h"
#include "ops/types.h"

struct bench_opts {
    const char *what;
    int threads;
    int json;
    long long size_mb;   /* membw buffer; 0: default */
    long long reps;      /* membw repetitions; 0: default */
    long long mv_mb;     /* kernels matvec weights; 0: default */
    long long gemm_n;    /* kernels GEMM weight rows; 0: default */
    double seconds;      /* per measurement */
    int types[PG_TYPE_COUNT];
    int n_types;
};

static const int default_types[] = {
    PG_TYPE_F32,  PG_TYPE_F16,  PG_TYPE_BF16, PG_TYPE_Q8_0, PG_TYPE_Q4_0,
    PG_TYPE_Q4_1, PG_TYPE_Q5_0, PG_TYPE_Q5_1, PG_TYPE_Q2_K, PG_TYPE_Q3_K,
    PG_TYPE_Q4_K, PG_TYPE_Q5_K, PG_TYPE_Q6_K,
};

static void bench_usage(FILE *f)
{
    fprintf(f,
            "usage: pagoda bench membw|peak|kernels|engine|serve [-t THREADS] [--json]\n"
            "  membw    read bandwidth of a large buffer, all threads and 1 thread\n"
            "           [--size MB (default 1024)] [--reps N (default 10)]\n"
            "  peak     int8 dot-product peak (VNNI vpdpbusd, or AVX2), all threads and 1\n"
            "           [--seconds S (default 0.5)]\n"
            "  kernels  matvec GB/s (%% of membw) and GEMM GOP/s at b=32 and b=512 (%% of\n"
            "           peak) for each weight type, with membw and peak measured first\n"
            "           [--types f32,q4_0,...] [--mv-size MB (>= 64)] [--gemm-rows N (4096)]\n"
            "           [--seconds S per measurement (0.25)]\n"
            "  engine   prompt and generation speed of a model, alone or serving many\n"
            "           requests at once (pagoda bench engine --help)\n"
            "  serve    throughput and latency of an OpenAI-compatible server under load\n"
            "           (pagoda bench serve --help)\n"
            "--json prints the results as one JSON object instead of a table.\n");
}

/* Fills o->types from a comma-separated list; returns 0, or -1 with the
 * offending name in bad. */
static int parse_types(const char *list, struct bench_opts *o, char *bad, size_t badlen)
{
    char buf[512];
    snprintf(bad, badlen, "%s", list);
    if (strlen(list) >= sizeof buf)
        return -1;
    strcpy(buf, list);
    o->n_types = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        const int t = type_from_name(tok);
        if (t < 0 || !type_traits_get(t) || t == PG_TYPE_Q8_1 || t == PG_TYPE_Q8_K) {
            snprintf(bad, badlen, "%s", tok);
            return -1;
        }
        if (o->n_types >= PG_TYPE_COUNT)
            return -1;
        o->types[o->n_types++] = t;
    }
    return o->n_types ? 0 : -1;
}

static int parse_opts(int argc, char **argv, struct bench_opts *o)
{
    memset(o, 0, sizeof *o);
    if (argc < 2) {
        bench_usage(stderr);
        return 1;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        bench_usage(stdout);
        return 2;
    }
    o->what = argv[1];
    if (strcmp(o->what, "membw") && strcmp(o->what, "peak") && strcmp(o->what, "kernels"))
        return cli_fail("bench: unknown benchmark '%s' (membw, peak, kernels, engine or serve)",
                        o->what);
    o->seconds = -1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            o->json = 1;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            bench_usage(stdout);
            return 2;
        }
        if (i + 1 >= argc)
            return cli_fail("bench: %s needs a value (see pagoda bench --help)", a);
        const char *v = argv[++i];
        long long n;
        if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (cli_parse_int(v, 1, 1024, &n))
                return cli_fail("bench: -t must be an integer in [1, 1024], got '%s'", v);
            o->threads = (int)n;
        } else if (!strcmp(a, "--size")) {
            if (cli_parse_int(v, 1, 1 << 20, &o->size_mb))
                return cli_fail("bench: --size must be MB in [1, 1048576], got '%s'", v);
        } else if (!strcmp(a, "--mv-size")) {
            /* 64 MB holds the 4096 x 4096 F32 GEMM matrix. */
            if (cli_parse_int(v, 64, 1 << 20, &o->mv_mb))
                return cli_fail("bench: --mv-size must be MB in [64, 1048576], got '%s'", v);
        } else if (!strcmp(a, "--gemm-rows")) {
            if (cli_parse_int(v, 64, 65536, &o->gemm_n) || o->gemm_n % 64)
                return cli_fail("bench: --gemm-rows must be a multiple of 64 in [64, 65536], "
                                "got '%s'", v);
        } else if (!strcmp(a, "--reps")) {
            if (cli_parse_int(v, 1, 1000, &o->reps))
                return cli_fail("bench: --reps must be an integer in [1, 1000], got '%s'", v);
        } else if (!strcmp(a, "--seconds")) {
            if (cli_parse_float(v, &o->seconds) || !(o->seconds > 0) || o->seconds > 600)
                return cli_fail("bench: --seconds must be in (0, 600], got '%s'", v);
        } else if (!strcmp(a, "--types")) {
            char bad[64];
            if (parse_types(v, o, bad, sizeof bad))
                return cli_fail("bench: --types: '%s' is not a weight type (f32 f16 bf16 q8_0 "
                                "q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k q5_k q6_k)", bad);
        } else {
            return cli_fail("bench: unknown option '%s' (see pagoda bench --help)", a);
        }
    }
    if (!o->n_types) {
        o->n_types = (int)(sizeof default_types / sizeof default_types[0]);
        memcpy(o->types, default_types, sizeof default_types);
    }
    return 0;
}

static void print_membw_json(const struct membw_result *r, int n)
{
    printf("\"membw\": [");
    for (int i = 0; i < n; i++)
        printf("%s{\"threads\": %d, \"bytes\": %zu, \"reps\": %d, \"median_gbs\": %.2f, "
               "\"best_gbs\": %.2f, \"loads\": \"%s\"}",
               i ? ", " : "", r[i].threads, r[i].bytes, r[i].reps, r[i].median_gbs,
               r[i].best_gbs, r[i].isa);
    printf("]");
}

static void print_peak_json(const struct peak_result *r, int n)
{
    printf("\"peak\": [");
    for (int i = 0; i < n; i++)
        printf("%s{\"threads\": %d, \"tops\": %.4f, \"seconds\": %.3f, \"instr\": \"%s\"}",
               i ? ", " : "", r[i].threads, r[i].tops, r[i].seconds, r[i].instr);
    printf("]");
}

int cmd_bench(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "serve"))
        return cmd_bench_serve(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "engine"))
        return cmd_bench_engine(argc - 1, argv + 1);
    struct bench_opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc == 2 ? 0 : rc;

    char err[512];
    struct pool *pool = pool_create(o.threads, err, sizeof err);
    if (!pool)
        return cli_fail("bench: %s", err);
    const int nt = pool_size(pool);
    char cpu[512];
    cpu_features_describe(cpu, sizeof cpu);
    const double t_start = clock_now();
    if (o.json)
        printf("{\"bench\": \"%s\", \"threads\": %d, \"isa\": \"%s\", \"cpu\": \"%s\", ",
               o.what, nt, cpu_isa_name(cpu_isa_get()), cpu);
    else
        printf("cpu: %s\nisa: %s, threads: %d\n", cpu, cpu_isa_name(cpu_isa_get()), nt);
    fflush(stdout);

    const int kernels = !strcmp(o.what, "kernels");
    struct membw_result bw[2];
    int n_bw = 0;
    if (!strcmp(o.what, "membw") || kernels) {
        const size_t bytes = (size_t)(o.size_mb ? o.size_mb : (kernels ? 512 : 1024)) << 20;
        const int reps = (int)(o.reps ? o.reps : (kernels ? 5 : 10));
        const int one = !kernels && nt > 1;
        if ((rc = bench_membw(pool, nt, bytes, reps, &bw[0], one ? &bw[1] : NULL, err,
                              sizeof err)) < 0)
            goto fail;
        n_bw = one ? 2 : 1;
        if (o.json) {
            print_membw_json(bw, n_bw);
            printf(", ");
        } else {
            printf("\nmemory read bandwidth (%zu MiB buffer, %s loads, %d reps):\n", bytes >> 20,
                   bw[0].isa, reps);
            printf("  threads  median GB/s  best GB/s\n");
            for (int i = 0; i < n_bw; i++)
                printf("  %7d  %11.1f  %9.1f\n", bw[i].threads, bw[i].median_gbs,
                       bw[i].best_gbs);
        }
        fflush(stdout);
    }

    struct peak_result pk[2];
    int n_pk = 0;
    if (!strcmp(o.what, "peak") || kernels) {
        const double sec = o.seconds > 0 && !kernels ? o.seconds : (kernels ? 0.3 : 0.5);
        if ((rc = bench_peak(pool, nt, sec, &pk[n_pk], err, sizeof err)) < 0)
            goto fail;
        n_pk++;
        if (!kernels && nt > 1) {
            if ((rc = bench_peak(pool, 1, sec, &pk[n_pk], err, sizeof err)) < 0)
                goto fail;
            n_pk++;
        }
        if (o.json) {
            print_peak_json(pk, n_pk);
            printf(", ");
        } else {
            printf("\nint8 dot-product peak (%s, a multiply-add = 2 ops):\n", pk[0].instr);
            printf("  threads  TOP/s\n");
            for (int i = 0; i < n_pk; i++)
                printf("  %7d  %6.4f\n", pk[i].threads, pk[i].tops);
        }
        fflush(stdout);
    }

    if (kernels) {
        size_t llc = bench_llc_bytes();
        /* At least 4x the last-level cache so the matvec streams from memory;
         * capped because some virtual machines report implausible L3 sizes. */
        size_t target = (size_t)256 << 20;
        if (4 * llc > target)
            target = 4 * llc;
        if (target > ((size_t)512 << 20))
            target = (size_t)512 << 20;
        if (o.mv_mb)
            target = (size_t)o.mv_mb << 20;
        const double sec = o.seconds > 0 ? o.seconds : 0.25;
        const int64_t gemm_n = o.gemm_n ? o.gemm_n : 4096, gemm_k = 4096;
        if (o.json) {
            printf("\"llc_bytes\": %zu, \"kernels\": [", llc);
        } else {
            printf("\nkernels: matvec (b=1) on ~%zu MB of weights (L3 reported: %zu MB), "
                   "k=4096; GEMM %lldx%lld at b=32 and b=512\n",
                   target >> 20, llc >> 20, (long long)gemm_n, (long long)gemm_k);
            printf("  %-5s %-7s %9s %8s %6s %11s %6s %11s %6s\n", "type", "isa", "matvec MB",
                   "GB/s", "%bw", "b=32 GOP/s", "%peak", "b=512 GOP/s", "%peak");
        }
        fflush(stdout);
        void *wbuf = aligned_alloc(64, target);
        if (!wbuf) {
            rc = -1;
            snprintf(err, sizeof err, "cannot allocate %zu MB of weights", target >> 20);
            goto fail;
        }
        int first = 1;
        for (int i = 0; i < o.n_types; i++) {
            struct kernel_result kr;
            if (bench_kernel_type(pool, o.types[i], wbuf, target, gemm_n, gemm_k, sec, &kr,
                                  err, sizeof err) < 0) {
                fprintf(stderr, "pagoda: bench: %s: %s\n", type_name(o.types[i]), err);
                continue;
            }
            const double pbw = 100.0 * kr.mv_gbs / bw[0].median_gbs;
            const double pp0 = 100.0 * kr.gemm_gops[0] / (pk[0].tops * 1e3);
            const double pp1 = 100.0 * kr.gemm_gops[1] / (pk[0].tops * 1e3);
            if (o.json) {
                printf("%s{\"type\": \"%s\", \"isa\": \"%s\", \"matvec_n\": %lld, "
                       "\"matvec_k\": %lld, \"matvec_bytes\": %.0f, \"matvec_gbs\": %.2f, "
                       "\"matvec_pct_membw\": %.1f, \"gemm_n\": %lld, \"gemm_k\": %lld, "
                       "\"gemm32_gops\": %.2f, \"gemm32_pct_peak\": %.2f, "
                       "\"gemm512_gops\": %.2f, \"gemm512_pct_peak\": %.2f}",
                       first ? "" : ", ", type_name(kr.type), kr.isa, (long long)kr.mv_n,
                       (long long)kr.mv_k, kr.mv_bytes, kr.mv_gbs, pbw, (long long)kr.gemm_n,
                       (long long)kr.gemm_k, kr.gemm_gops[0], pp0, kr.gemm_gops[1], pp1);
            } else {
                printf("  %-5s %-7s %9.0f %8.1f %5.0f%% %11.1f %5.1f%% %11.1f %5.1f%%\n",
                       type_name(kr.type), kr.isa, kr.mv_bytes / 1e6, kr.mv_gbs, pbw,
                       kr.gemm_gops[0], pp0, kr.gemm_gops[1], pp1);
            }
            first = 0;
            fflush(stdout);
        }
        free(wbuf);
        if (o.json)
            printf("], \"attention\": [");
        else
            printf("\nattention, one layer (32 heads, 8 KV heads, head_dim 64): 512-token "
                   "prefill, decode at position 1024\n  %-5s %11s %10s\n", "kv", "prefill ms",
                   "decode ms");
        const int kv_types[] = {PG_TYPE_F16, PG_TYPE_BF16, PG_TYPE_Q8_0};
        for (int i = 0; i < 3; i++) {
            struct attn_bench_result ar;
            if (bench_attention(pool, kv_types[i], sec, &ar, err, sizeof err) < 0) {
                fprintf(stderr, "pagoda: bench: attention: %s\n", err);
                continue;
            }
            if (o.json)
                printf("%s{\"kv_type\": \"%s\", \"prefill_tokens\": %d, \"prefill_ms\": %.3f, "
                       "\"decode_pos\": %d, \"decode_ms\": %.4f}",
                       i ? ", " : "", type_name(kv_types[i]), ar.prefill_tokens, ar.prefill_ms,
                       ar.decode_pos, ar.decode_ms);
            else
                printf("  %-5s %11.2f %10.3f\n", type_name(kv_types[i]), ar.prefill_ms,
                       ar.decode_ms);
            fflush(stdout);
        }
        if (o.json)
            printf("], ");
    }
    if (o.json)
        printf("\"seconds\": %.1f}\n", clock_now() - t_start);
    else
        printf("\n(%.1f s)\n", clock_now() - t_start);
    pool_destroy(pool);
    return 0;

fail:
    if (o.json)
        printf("\"error\": \"see stderr\"}\n");
    pool_destroy(pool);
    return cli_fail("bench: %s", err);
}
