/*
 * test_attention.c: the paged KV store (layout, element types, writes) and
 * the tiled attention kernel. Results are checked against a float64 naive
 * attention, both on the values the store holds (the kernel's own rounding
 * only) and on the unrounded inputs (adding the KV type's storage error),
 * for many head sizes, GQA ratios, block sizes, shuffled block tables, every
 * ISA level and every KV type. Then bitwise batch invariance: a query's
 * output is the same alone, in prefill chunks of 1, 7 or 64, in a decode
 * batch, shuffled among other sequences' queries, and on 1, 2 or 3 threads;
 * and the same bits at every ISA level.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/rng.h"
#include "ops/attention.h"
#include "ops/quants.h"
#include "ops/types.h"
#include "pagoda.h"
#include "test.h"

#define MAX_SEQ 4

/* A KV store filled with random K/V for a few sequences whose blocks are
 * scattered through the pool. */
struct fixture {
    struct kv_store kv;
    int n_layer, layer, n_heads, n_seq;
    int len[MAX_SEQ];
    int32_t *tables[MAX_SEQ];
    float *kraw[MAX_SEQ], *vraw[MAX_SEQ]; /* [len][n_kv_heads * hd] as given to the store */
    float *kst[MAX_SEQ], *vst[MAX_SEQ];   /* the same as the store holds them */
    float *q[MAX_SEQ];                    /* [len][n_heads * hd] */
};

static void fixture_free(struct fixture *f)
{
    free(f->kv.data);
    for (int s = 0; s < f->n_seq; s++) {
        free(f->tables[s]);
        free(f->kraw[s]);
        free(f->vraw[s]);
        free(f->kst[s]);
        free(f->vst[s]);
        free(f->q[s]);
    }
}

static int fixture_init(struct fixture *f, uint64_t seed, int type, int hd, int n_kv, int group,
                        int bs, int n_seq, const int *len, float qscale)
{
    memset(f, 0, sizeof *f);
    f->n_layer = 2;
    f->layer = 1;
    f->n_heads = n_kv * group;
    f->n_seq = n_seq;
    if (kv_store_layout(&f->kv, f->n_layer, n_kv, hd, bs, type))
        return -1;
    int64_t total = 0;
    for (int s = 0; s < n_seq; s++) {
        f->len[s] = len[s];
        total += (len[s] + bs - 1) / bs;
    }
    f->kv.n_blocks = total + 3; /* a few blocks nobody owns */
    f->kv.data = malloc(f->kv.block_bytes * (size_t)f->kv.n_blocks);
    struct rng g;
    rng_seed(&g, seed);
    /* Garbage everywhere first: unwritten slots must never be read. */
    uint8_t *raw = f->kv.data;
    for (size_t i = 0; i < f->kv.block_bytes * (size_t)f->kv.n_blocks; i++)
        raw[i] = (uint8_t)(rng_next(&g) >> 56) | 0x7c; /* many NaN / inf patterns */
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)f->kv.n_blocks);
    for (int64_t i = 0; i < f->kv.n_blocks; i++)
        perm[i] = i;
    for (int64_t i = f->kv.n_blocks - 1; i > 0; i--) {
        int64_t k = (int64_t)(rng_next(&g) % (uint64_t)(i + 1));
        int64_t t = perm[i];
        perm[i] = perm[k];
        perm[k] = t;
    }
    int64_t next = 0;
    const size_t KV = (size_t)n_kv * hd, Q = (size_t)f->n_heads * hd;
    for (int s = 0; s < n_seq; s++) {
        const int nb = (len[s] + bs - 1) / bs;
        f->tables[s] = malloc(sizeof(int32_t) * (size_t)nb);
        for (int i = 0; i < nb; i++)
            f->tables[s][i] = (int32_t)perm[next++];
        f->kraw[s] = malloc(sizeof(float) * KV * (size_t)len[s]);
        f->vraw[s] = malloc(sizeof(float) * KV * (size_t)len[s]);
        f->q[s] = malloc(sizeof(float) * Q * (size_t)len[s]);
        for (size_t i = 0; i < KV * (size_t)len[s]; i++) {
            f->kraw[s][i] = rng_normal(&g);
            f->vraw[s][i] = rng_range(&g, -1.0f, 1.0f);
        }
        for (size_t i = 0; i < Q * (size_t)len[s]; i++)
            f->q[s][i] = qscale * rng_normal(&g);
        /* Store in uneven chunks, as prefill and decode would. */
        for (int p0 = 0; p0 < len[s];) {
            int n = 1 + (int)(rng_next(&g) % 40);
            if (n > len[s] - p0)
                n = len[s] - p0;
            int32_t pos[40], seq[40];
            for (int i = 0; i < n; i++) {
                pos[i] = p0 + i;
                seq[i] = s;
            }
            const struct attn_batch b = {n, pos, seq, (const int32_t *const *)f->tables};
            attn_store_kv(&f->kv, f->layer, &b, f->kraw[s] + (size_t)p0 * KV,
                          f->vraw[s] + (size_t)p0 * KV);
            p0 += n;
        }
        f->kst[s] = malloc(sizeof(float) * KV * (size_t)len[s]);
        f->vst[s] = malloc(sizeof(float) * KV * (size_t)len[s]);
        const to_float_fn to_float = type_traits_get(type)->to_float;
        for (int p = 0; p < len[s]; p++)
            for (int h = 0; h < n_kv; h++) {
                const int32_t blk = f->tables[s][p / bs];
                const size_t off = ((size_t)p * n_kv + h) * hd;
                to_float(kv_slot(&f->kv, blk, f->layer, 0, h, p % bs), f->kst[s] + off, hd);
                to_float(kv_slot(&f->kv, blk, f->layer, 1, h, p % bs), f->vst[s] + off, hd);
            }
    }
    free(perm);
    return 0;
}

/* Naive attention in double for query (s, p, head h). stored: use the store's
 * values, the query rounded as the kernel does and, for F16, probabilities
 * rounded to F16 values; then tol[d] gets what a probability within 1e-5 of
 * an F16 rounding boundary (rounded the other way by float arithmetic) may
 * add to the difference. Else the raw inputs and exact probabilities. */
static void naive(const struct fixture *f, int s, int p, int h, int stored, float scale,
                  double *out, double *tol)
{
    const int hd = f->kv.head_dim, nkv = f->kv.n_kv_heads, kvh = h / (f->n_heads / nkv);
    const float *qr = f->q[s] + ((size_t)p * f->n_heads + h) * hd;
    double *sc = malloc(sizeof(double) * (size_t)(p + 1));
    double *q = malloc(sizeof(double) * (size_t)hd);
    for (int d = 0; d < hd; d++) {
        float v = qr[d];
        if (stored && f->kv.type == PG_TYPE_F16)
            v = f32_round_f16(v);
        else if (stored && f->kv.type == PG_TYPE_BF16)
            v = f32_round_bf16(v);
        q[d] = v;
    }
    double mx = -INFINITY;
    for (int j = 0; j <= p; j++) {
        const float *k = (stored ? f->kst[s] : f->kraw[s]) + ((size_t)j * nkv + kvh) * hd;
        double acc = 0;
        for (int d = 0; d < hd; d++)
            acc += q[d] * k[d];
        sc[j] = acc * scale;
        mx = sc[j] > mx ? sc[j] : mx;
    }
    double sum = 0;
    for (int j = 0; j <= p; j++) {
        sc[j] = exp(sc[j] - mx);
        sum += sc[j];
    }
    for (int d = 0; d < hd; d++) {
        out[d] = 0;
        if (tol)
            tol[d] = 0;
    }
    const int round_p = stored && f->kv.type == PG_TYPE_F16;
    for (int j = 0; j <= p; j++) {
        const float *v = (stored ? f->vst[s] : f->vraw[s]) + ((size_t)j * nkv + kvh) * hd;
        double w = sc[j] / sum, slack = 0;
        if (round_p) {
            slack = fabs((double)f32_round_f16((float)(w * (1 + 1e-5))) -
                         (double)f32_round_f16((float)(w * (1 - 1e-5))));
            w = f32_round_f16((float)w);
        }
        for (int d = 0; d < hd; d++) {
            out[d] += w * v[d];
            if (tol)
                tol[d] += slack * fabs(v[d]);
        }
    }
    free(sc);
    free(q);
}

/* A call over the listed queries (sequence, position); out is [n][n_heads * hd]. */
static void run_queries(struct pool *pool, const struct fixture *f, int n, const int32_t *seq,
                        const int32_t *pos, float scale, float *out)
{
    const int hd = f->kv.head_dim;
    const size_t Q = (size_t)f->n_heads * hd;
    float *q = malloc(sizeof(float) * Q * (size_t)n);
    for (int i = 0; i < n; i++)
        memcpy(q + (size_t)i * Q, f->q[seq[i]] + (size_t)pos[i] * Q, sizeof(float) * Q);
    const size_t per = attn_scratch_floats(hd);
    float *scratch = malloc(sizeof(float) * per * (size_t)pool_size(pool));
    const struct attn_batch b = {n, pos, seq, (const int32_t *const *)f->tables};
    attn_forward(pool, &f->kv, f->layer, &b, f->n_heads, scale, q, out, scratch, per);
    free(scratch);
    free(q);
}

/* Every query of every sequence, in sequence order, in one call. */
static float *run_all(struct pool *pool, const struct fixture *f, float scale, int *n_out)
{
    int n = 0;
    for (int s = 0; s < f->n_seq; s++)
        n += f->len[s];
    int32_t *seq = malloc(sizeof(int32_t) * (size_t)n), *pos = malloc(sizeof(int32_t) * (size_t)n);
    n = 0;
    for (int s = 0; s < f->n_seq; s++)
        for (int p = 0; p < f->len[s]; p++) {
            seq[n] = s;
            pos[n++] = p;
        }
    float *out = malloc(sizeof(float) * (size_t)n * f->n_heads * f->kv.head_dim);
    run_queries(pool, f, n, seq, pos, scale, out);
    free(seq);
    free(pos);
    *n_out = n;
    return out;
}

static const int kv_types[3] = {PG_TYPE_F16, PG_TYPE_BF16, PG_TYPE_Q8_0};

static void test_layout(void)
{
    struct kv_store kv;
    CHECK(kv_store_layout(&kv, 2, 4, 64, 16, PG_TYPE_F16) == 0);
    CHECK(kv.row_bytes == 128 && kv.type == PG_TYPE_F16);
    CHECK(kv.block_bytes == (size_t)2 * 2 * 4 * 16 * 128);
    const size_t f16 = kv.block_bytes;
    CHECK(kv_store_layout(&kv, 2, 4, 64, 16, PG_TYPE_BF16) == 0 && kv.block_bytes == f16);
    CHECK(kv_store_layout(&kv, 2, 4, 64, 16, PG_TYPE_Q8_0) == 0);
    CHECK(kv.row_bytes == 68 && kv.block_bytes * 100 <= f16 * 54);
    CHECK(kv_store_layout(&kv, 2, 4, 80, 16, PG_TYPE_Q8_0) == PAGODA_EUNSUPPORTED);
    CHECK(kv_store_layout(&kv, 2, 4, 96, 16, PG_TYPE_Q8_0) == 0 && kv.row_bytes == 102);
    CHECK(kv_store_layout(&kv, 2, 4, 64, 16, PG_TYPE_Q4_0) == PAGODA_EUNSUPPORTED);
    CHECK(kv_store_layout(&kv, 2, 4, 64, 16, PG_TYPE_F32) == PAGODA_EUNSUPPORTED);
    CHECK(kv_store_layout(&kv, 2, 4, 64, 16, 99) == PAGODA_EUNSUPPORTED);
    CHECK(kv_store_layout(&kv, 0, 4, 64, 16, PG_TYPE_F16) == PAGODA_EINVAL);
    CHECK(kv_store_layout(&kv, 2, 4, 64, 0, PG_TYPE_F16) == PAGODA_EINVAL);
    CHECK(kv_store_layout(&kv, 2, -1, 64, 16, PG_TYPE_F16) == PAGODA_EINVAL);
}

/* The store writes exactly the reference rounding / quantization. */
static void test_store(void)
{
    for (int ti = 0; ti < 3; ti++) {
        struct fixture f;
        const int len[2] = {37, 5};
        CHECK(fixture_init(&f, 11 + ti, kv_types[ti], 64, 3, 2, 8, 2, len, 1.0f) == 0);
        const int hd = 64, nkv = 3;
        const size_t rb = f.kv.row_bytes;
        uint8_t *want = malloc(rb);
        int bad = 0;
        for (int s = 0; s < 2; s++)
            for (int p = 0; p < len[s]; p++)
                for (int h = 0; h < nkv; h++)
                    for (int which = 0; which < 2; which++) {
                        const float *src = (which ? f.vraw[s] : f.kraw[s]) +
                                           ((size_t)p * nkv + h) * hd;
                        if (kv_types[ti] == PG_TYPE_Q8_0) {
                            quantize_row_q8_0_ref(src, want, hd);
                        } else {
                            uint16_t *w16 = (uint16_t *)want;
                            for (int d = 0; d < hd; d++)
                                w16[d] = kv_types[ti] == PG_TYPE_F16 ? f32_to_f16(src[d])
                                                                     : f32_to_bf16(src[d]);
                        }
                        const void *got = kv_slot(&f.kv, f.tables[s][p / 8], f.layer, which, h,
                                                  p % 8);
                        bad += memcmp(got, want, rb) != 0;
                    }
        CHECKF(bad == 0, "%s: %d rows differ from the reference rounding", type_name(kv_types[ti]),
               bad);
        free(want);
        fixture_free(&f);
    }
}

/* Worst errors of one configuration against the two naive references. */
static void check_accuracy(struct pool *pool, int isa, int type, int hd, int group, int bs,
                           uint64_t seed)
{
    const int n_kv = 2, len[3] = {1, 45, 133};
    struct fixture f;
    if (fixture_init(&f, seed, type, hd, n_kv, group, bs, 3, len, 1.5f) != 0) {
        CHECKF(0, "fixture hd %d %s", hd, type_name(type));
        return;
    }
    const float scale = 1.0f / sqrtf((float)hd);
    int n;
    float *out = run_all(pool, &f, scale, &n);
    double *ref = malloc(sizeof(double) * (size_t)hd), *tol = malloc(sizeof(double) * (size_t)hd);
    double err_stored = 0, err_raw = 0;
    int row = 0, finite = 1;
    for (int s = 0; s < f.n_seq; s++)
        for (int p = 0; p < f.len[s]; p++, row++) {
            /* Every position of the short sequences, a sample of the long one. */
            if (f.len[s] > 50 && p % 5 != 0 && p < f.len[s] - 3)
                continue;
            for (int h = 0; h < f.n_heads; h++) {
                const float *o = out + ((size_t)row * f.n_heads + h) * hd;
                naive(&f, s, p, h, 1, scale, ref, tol);
                for (int d = 0; d < hd; d++) {
                    finite &= isfinite(o[d]);
                    double e = fabs(o[d] - ref[d]) - tol[d];
                    err_stored = e > err_stored ? e : err_stored;
                }
                naive(&f, s, p, h, 0, scale, ref, NULL);
                for (int d = 0; d < hd; d++) {
                    double e = fabs(o[d] - ref[d]);
                    err_raw = e > err_raw ? e : err_raw;
                }
            }
        }
    /* Storage error: F16 keeps 11 bits, BF16 8, Q8_0 about 7 per block. */
    const double tol_raw = type == PG_TYPE_F16 ? 2e-3 : type == PG_TYPE_BF16 ? 2e-2 : 3e-2;
    CHECKF(finite && err_stored < 1e-5 && err_raw < tol_raw,
           "isa %s %s hd %d group %d bs %d: error %.3g vs stored values, %.3g vs raw (finite %d)",
           cpu_isa_name((enum cpu_isa)isa), type_name(type), hd, group, bs, err_stored, err_raw,
           finite);
    if (getenv("PAGODA_TEST_VERBOSE"))
        printf("isa %-6s %-4s hd %3d group %d bs %2d: err stored %.3g raw %.3g\n",
               cpu_isa_name((enum cpu_isa)isa), type_name(type), hd, group, bs, err_stored,
               err_raw);
    free(ref);
    free(tol);
    free(out);
    fixture_free(&f);
}

static void test_accuracy(struct pool *pool, int isa)
{
    static const int hds[5] = {64, 80, 128, 40, 96};
    static const int groups[3] = {1, 4, 8};
    static const int bss[3] = {16, 7, 64};
    int cfg = 0;
    for (int hi = 0; hi < 5; hi++)
        for (int gi = 0; gi < 3; gi++)
            for (int ti = 0; ti < 3; ti++, cfg++) {
                const int hd = hds[hi], type = kv_types[ti];
                if (type == PG_TYPE_Q8_0 && hd % 32)
                    continue;
                if (hi >= 3 && gi != 1) /* the odd head sizes: one GQA ratio */
                    continue;
                check_accuracy(pool, isa, type, hd, groups[gi], bss[cfg % 3],
                               1000 + (uint64_t)cfg);
            }
}

/* Output rows of `want` (one row per query in sequence order) for the listed queries. */
static int same_rows(const float *got, const float *want, const struct fixture *f, int n,
                     const int32_t *seq, const int32_t *pos)
{
    const size_t Q = (size_t)f->n_heads * f->kv.head_dim;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        int row = pos[i];
        for (int s = 0; s < seq[i]; s++)
            row += f->len[s];
        bad += memcmp(got + (size_t)i * Q, want + (size_t)row * Q, sizeof(float) * Q) != 0;
    }
    return bad;
}

static void test_invariance(struct pool *pools[3], int isa, int type, int hd, int group, int bs,
                            uint64_t seed)
{
    const int len[4] = {200, 77, 9, 130};
    struct fixture f;
    if (fixture_init(&f, seed, type, hd, 2, group, bs, 4, len, 2.0f) != 0) {
        CHECKF(0, "fixture hd %d %s", hd, type_name(type));
        return;
    }
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t Q = (size_t)f.n_heads * hd;
    const char *tag = cpu_isa_name((enum cpu_isa)isa);
    int n_all;
    /* Reference: each sequence alone in one prefill call, on 1 thread. */
    float *want = malloc(sizeof(float) * Q * 416);
    float *got = malloc(sizeof(float) * Q * 416);
    int32_t seq[416], pos[416];
    for (int s = 0, row = 0; s < 4; s++) {
        for (int p = 0; p < len[s]; p++) {
            seq[p] = s;
            pos[p] = p;
        }
        run_queries(pools[0], &f, len[s], seq, pos, scale, want + (size_t)row * Q);
        row += len[s];
    }
    /* All sequences in one call, 1 / 2 / 3 threads. */
    for (int pi = 0; pi < 3; pi++) {
        float *all = run_all(pools[pi], &f, scale, &n_all);
        CHECKF(memcmp(all, want, sizeof(float) * Q * (size_t)n_all) == 0,
               "%s %s hd %d: all sequences in one call on %d threads differ from alone", tag,
               type_name(type), hd, pool_size(pools[pi]));
        free(all);
    }
    /* Prefill in chunks of 1, 7, 64 (each chunk its own call), 1 and 2 threads. */
    static const int chunks[3] = {1, 7, 64};
    for (int ci = 0; ci < 3; ci++)
        for (int pi = 0; pi < 2; pi++) {
            int bad = 0;
            for (int s = 0; s < 4; s++)
                /* Decoding (chunks of 1): the last positions only, calls are many. */
                for (int p0 = ci == 0 && len[s] > 24 ? len[s] - 24 : 0; p0 < len[s];
                     p0 += chunks[ci]) {
                    int n = len[s] - p0 < chunks[ci] ? len[s] - p0 : chunks[ci];
                    for (int i = 0; i < n; i++) {
                        seq[i] = s;
                        pos[i] = p0 + i;
                    }
                    run_queries(pools[pi], &f, n, seq, pos, scale, got);
                    bad += same_rows(got, want, &f, n, seq, pos);
                }
            CHECKF(bad == 0, "%s %s hd %d: chunks of %d on %d threads: %d queries differ", tag,
                   type_name(type), hd, chunks[ci], pool_size(pools[pi]), bad);
        }
    /* Continuous batching: a prefill chunk of one sequence with one decode
     * token of each other, and every query shuffled into random order. */
    struct rng g;
    rng_seed(&g, seed ^ 0x5eed);
    for (int pi = 0; pi < 3; pi++) {
        int bad = 0;
        for (int round = 0; round < 6; round++) {
            int n = 0;
            const int s0 = round % 4, c0 = (int)(rng_next(&g) % (uint64_t)len[s0]);
            const int cn = 1 + (int)(rng_next(&g) % 40);
            for (int p = c0; p < len[s0] && p < c0 + cn; p++) {
                seq[n] = s0;
                pos[n++] = p;
            }
            for (int s = 0; s < 4; s++)
                if (s != s0) {
                    seq[n] = s;
                    pos[n++] = (int)(rng_next(&g) % (uint64_t)len[s]);
                }
            run_queries(pools[pi], &f, n, seq, pos, scale, got);
            bad += same_rows(got, want, &f, n, seq, pos);
        }
        n_all = 0;
        for (int s = 0; s < 4; s++)
            for (int p = 0; p < len[s]; p++) {
                seq[n_all] = s;
                pos[n_all++] = p;
            }
        for (int i = n_all - 1; i > 0; i--) {
            int k = (int)(rng_next(&g) % (uint64_t)(i + 1));
            int32_t ts = seq[i], tp = pos[i];
            seq[i] = seq[k];
            pos[i] = pos[k];
            seq[k] = ts;
            pos[k] = tp;
        }
        run_queries(pools[pi], &f, n_all, seq, pos, scale, got);
        bad += same_rows(got, want, &f, n_all, seq, pos);
        CHECKF(bad == 0, "%s %s hd %d: mixed / shuffled batches on %d threads: %d queries differ",
               tag, type_name(type), hd, pool_size(pools[pi]), bad);
    }
    free(want);
    free(got);
    fixture_free(&f);
}

/* Queries far into a long sequence: past the steps whose scores a tile of
 * 16 rows keeps between its passes (a call of many queries), within those
 * of a tile of 4 (one query per call), so both ways of getting them are
 * exercised and must agree with each other and with the naive result. */
static void test_long(struct pool *pools[3], int isa, int type, uint64_t seed)
{
    const int len[2] = {4200, 6}, hd = 64;
    struct fixture f;
    if (fixture_init(&f, seed, type, hd, 1, 4, 16, 2, len, 1.0f) != 0) {
        CHECKF(0, "long fixture %s", type_name(type));
        return;
    }
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t Q = (size_t)f.n_heads * hd;
    enum { NQ = 48 };
    int32_t seq[NQ], pos[NQ];
    int n = 0;
    for (int p = 4080; p < 4122; p++) {
        seq[n] = 0;
        pos[n++] = p;
    }
    seq[n] = 0;
    pos[n++] = 1000;
    seq[n] = 0;
    pos[n++] = 4199;
    for (int p = 0; p < 4; p++) {
        seq[n] = 1;
        pos[n++] = p + 2;
    }
    float *want = malloc(sizeof(float) * Q * NQ), *got = malloc(sizeof(float) * Q * NQ);
    for (int i = 0; i < n; i++)
        run_queries(pools[0], &f, 1, seq + i, pos + i, scale, want + (size_t)i * Q);
    for (int pi = 0; pi < 3; pi++) {
        run_queries(pools[pi], &f, n, seq, pos, scale, got);
        CHECKF(memcmp(got, want, sizeof(float) * Q * (size_t)n) == 0,
               "%s %s long: one call on %d threads differs from one query per call",
               cpu_isa_name((enum cpu_isa)isa), type_name(type), pool_size(pools[pi]));
    }
    int bad = 0;
    for (int i = 0; i < n; i += 7) {
        const int c = n - i < 7 ? n - i : 7;
        run_queries(pools[1], &f, c, seq + i, pos + i, scale, got);
        bad += memcmp(got, want + (size_t)i * Q, sizeof(float) * Q * (size_t)c) != 0;
    }
    CHECKF(bad == 0, "%s %s long: chunks of 7 differ", cpu_isa_name((enum cpu_isa)isa),
           type_name(type));
    double *ref = malloc(sizeof(double) * (size_t)hd), *tol = malloc(sizeof(double) * (size_t)hd);
    double err = 0;
    for (int i = 0; i < n; i += 5)
        for (int h = 0; h < f.n_heads; h++) {
            naive(&f, seq[i], pos[i], h, 1, scale, ref, tol);
            for (int d = 0; d < hd; d++) {
                double e = fabs(want[((size_t)i * f.n_heads + h) * hd + d] - ref[d]) - tol[d];
                err = e > err ? e : err;
            }
        }
    CHECKF(err < 1e-5, "%s %s long: error %.3g vs stored values", cpu_isa_name((enum cpu_isa)isa),
           type_name(type), err);
    free(ref);
    free(tol);
    free(want);
    free(got);
    fixture_free(&f);
}

/* Every ISA level gives the scalar code's bits: the same order of float
 * operations everywhere (head sizes below, at and past the 64-element steps
 * of the score dot product, a sequence past the score cache). */
static void test_isa_agree(struct pool *pool)
{
    static const struct {
        int type, hd, group, bs, len0;
    } cfg[] = {
        {PG_TYPE_F16, 32, 2, 16, 300},  {PG_TYPE_F16, 64, 4, 16, 130},
        {PG_TYPE_F16, 80, 1, 7, 90},    {PG_TYPE_F16, 128, 2, 32, 70},
        {PG_TYPE_F16, 112, 1, 5, 40},   {PG_TYPE_F16, 40, 3, 9, 100},
        {PG_TYPE_F16, 24, 2, 4, 50},    {PG_TYPE_F16, 20, 1, 8, 33},
        {PG_TYPE_BF16, 96, 2, 16, 120}, {PG_TYPE_Q8_0, 32, 4, 16, 200},
        {PG_TYPE_Q8_0, 160, 1, 3, 45},  {PG_TYPE_F16, 32, 1, 64, 4200},
    };
    const enum cpu_isa saved = cpu_isa_get();
    const int isa_max = (int)cpu_isa_max();
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        const int len[2] = {cfg[c].len0, 17};
        struct fixture f;
        if (fixture_init(&f, 900 + c, cfg[c].type, cfg[c].hd, 2, cfg[c].group, cfg[c].bs, 2,
                         len, 2.0f) != 0) {
            CHECKF(0, "isa fixture %zu", c);
            continue;
        }
        const float scale = 1.0f / sqrtf((float)cfg[c].hd);
        int n = 0;
        cpu_isa_set(CPU_ISA_SCALAR);
        float *want = run_all(pool, &f, scale, &n);
        for (int isa = 1; isa <= isa_max; isa++) {
            cpu_isa_set((enum cpu_isa)isa);
            float *got = run_all(pool, &f, scale, &n);
            CHECKF(memcmp(got, want, sizeof(float) * (size_t)n * f.n_heads * cfg[c].hd) == 0,
                   "%s %s hd %d: differs from scalar", cpu_isa_name((enum cpu_isa)isa),
                   type_name(cfg[c].type), cfg[c].hd);
            free(got);
        }
        free(want);
        fixture_free(&f);
    }
    cpu_isa_set(saved);
}

int main(void)
{
    char err[256];
    struct pool *pools[3];
    for (int i = 0; i < 3; i++) {
        pools[i] = pool_create(i + 1, err, sizeof err);
        if (!pools[i]) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
    }
    test_layout();
    test_store();
    const enum cpu_isa saved = cpu_isa_get();
    const int isa_max = (int)cpu_isa_max();
    for (int isa = 0; isa <= isa_max; isa++) {
        cpu_isa_set((enum cpu_isa)isa);
        test_accuracy(pools[1], isa);
        for (int ti = 0; ti < 3; ti++) {
            test_invariance(pools, isa, kv_types[ti], 64, 4, 16, 77 + (uint64_t)ti);
            test_invariance(pools, isa, kv_types[ti], 96, 1, 7, 91 + (uint64_t)ti);
        }
        test_invariance(pools, isa, PG_TYPE_F16, 80, 8, 32, 123);
        test_invariance(pools, isa, PG_TYPE_BF16, 40, 2, 5, 321);
        test_long(pools, isa, PG_TYPE_F16, 555);
        test_long(pools, isa, PG_TYPE_Q8_0, 556);
    }
    cpu_isa_set(saved);
    test_isa_agree(pools[1]);
    for (int i = 0; i < 3; i++)
        pool_destroy(pools[i]);
    TEST_END();
}
