/*
 * bench_kernels.c: the speed of each weight type's matmul (bench_hw.h):
 * a matrix-vector product on a matrix far larger than the caches (so it is
 * read from memory, as in decoding), and GEMMs at 32 and 512 activation rows
 * (as in batched decoding and prefill). The weights are a few hundred
 * quantized random rows tiled over the whole matrix: the kernels' speed does
 * not depend on the values, and quantizing hundreds of MB would take longer
 * than the measurement. Also the attention kernel's time for one layer of a
 * prefill and of a decode step over a paged KV store.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/rng.h"
#include "bench/bench_hw.h"
#include "ops/attention.h"
#include "ops/kernels.h"
#include "ops/matmul.h"
#include "ops/quants.h"
#include "ops/types.h"

#define BENCH_K 4096        /* reduction length of every benchmark matrix */
#define BENCH_SRC_ROWS 256  /* distinct quantized rows tiled over the matrix */
#define BENCH_MAX_REPS 25

/* Runs y = x W^T until max_seconds have passed (at least 3 times after a
 * warm-up, or just the warm-up when it alone takes that long) and returns
 * the median seconds. */
static int time_matmul(struct mm_ctx *mm, const struct mm_weight *w, const float *x, int64_t b,
                       float *y, double max_seconds, double *median, char *err, size_t errlen)
{
    double t[BENCH_MAX_REPS];
    int n = 0;
    double spent = 0;
    const double w0 = clock_now();
    int rc = matmul(mm, w, x, b, y, err, errlen); /* warm-up: scratch, page faults */
    if (rc < 0)
        return rc;
    const double warm = clock_now() - w0;
    if (warm > max_seconds) {
        /* Slow kernel: the warm-up run is the one measurement (page faults
         * and scratch growth are small next to it). */
        *median = warm;
        return 0;
    }
    while (n < BENCH_MAX_REPS) {
        if (n >= 3 && spent >= max_seconds)
            break;
        const double t0 = clock_now();
        if ((rc = matmul(mm, w, x, b, y, err, errlen)) < 0)
            return rc;
        t[n] = clock_now() - t0;
        spent += t[n++];
    }
    *median = bench_median(t, n);
    return 0;
}

int bench_kernel_type(struct pool *pool, int type, void *wbuf, size_t wbuf_bytes,
                      int64_t gemm_n, int64_t gemm_k, double max_seconds,
                      struct kernel_result *out, char *err, size_t errlen)
{
    const struct type_traits *tt = type_traits_get(type);
    if (!tt)
        return err_set(err, errlen, PAGODA_EUNSUPPORTED, "type %d is not supported", type);
    if (gemm_k != BENCH_K)
        return err_set(err, errlen, PAGODA_EINVAL, "the GEMM reduction length must be %d",
                       BENCH_K);
    const int64_t k = BENCH_K;
    const size_t rs = type_row_size(type, k);
    const int64_t n = (int64_t)(wbuf_bytes / rs) / 64 * 64;
    if (n < gemm_n || n < BENCH_SRC_ROWS)
        return err_set(err, errlen, PAGODA_EINVAL, "%s: a %zu MB buffer is too small",
                       tt->name, wbuf_bytes >> 20);
    const size_t total = rs * (size_t)n;

    int rc = 0;
    uint8_t *wdata = wbuf;
    float *src = malloc((size_t)BENCH_SRC_ROWS * k * sizeof(float));
    float *x = malloc((size_t)512 * k * sizeof(float));
    /* Outputs: n floats for the matvec, 512 rows of gemm_n for the GEMMs. */
    float *y = malloc((size_t)(n > 512 * gemm_n ? n : 512 * gemm_n) * sizeof(float));
    struct mm_ctx *mm = NULL;
    if (!src || !x || !y) {
        rc = err_set(err, errlen, PAGODA_ENOMEM, "%s: out of memory", tt->name);
        goto done;
    }
    struct rng g;
    rng_seed(&g, 1234 + (uint64_t)type);
    for (int64_t i = 0; i < BENCH_SRC_ROWS * k; i++)
        src[i] = rng_range(&g, -1.0f, 1.0f);
    for (int64_t i = 0; i < 512 * k; i++)
        x[i] = rng_range(&g, -1.0f, 1.0f);
    if (quantize_rows(type, src, wdata, BENCH_SRC_ROWS, k) != rs * BENCH_SRC_ROWS) {
        rc = err_set(err, errlen, PAGODA_EUNSUPPORTED, "%s: cannot quantize", tt->name);
        goto done;
    }
    const size_t tile = rs * BENCH_SRC_ROWS;
    for (size_t off = tile; off < total; off += tile)
        memcpy(wdata + off, wdata, total - off < tile ? total - off : tile);

    if (!(mm = mm_ctx_create(pool, err, errlen))) {
        rc = PAGODA_ENOMEM;
        goto done;
    }
    memset(out, 0, sizeof *out);
    out->type = type;
    out->isa = kernels_get()->isa[type] ? kernels_get()->isa[type] : "?";
    out->mv_n = n;
    out->mv_k = k;
    out->mv_bytes = (double)total;
    out->gemm_n = gemm_n;
    out->gemm_k = k;

    struct mm_weight w = {type, wdata, n, k, rs};
    double sec;
    if ((rc = time_matmul(mm, &w, x, 1, y, max_seconds, &sec, err, errlen)) < 0)
        goto done;
    out->mv_gbs = (double)total / sec / 1e9;

    struct mm_weight wg = {type, wdata, gemm_n, k, rs};
    const int64_t bs[2] = {32, 512};
    for (int i = 0; i < 2; i++) {
        if ((rc = time_matmul(mm, &wg, x, bs[i], y, max_seconds, &sec, err, errlen)) < 0)
            goto done;
        out->gemm_gops[i] = 2.0 * (double)gemm_n * (double)k * (double)bs[i] / sec / 1e9;
    }

done:
    mm_ctx_free(mm);
    free(src);
    free(x);
    free(y);
    return rc;
}

/* One attention call for n tokens at positions pos0.. of one sequence,
 * repeated until max_seconds; median seconds. */
static double time_attention(struct pool *pool, const struct kv_store *kv, const int32_t *table,
                             int n, int pos0, int n_heads, const float *q, float *out,
                             float *scratch, size_t per_thread, double max_seconds)
{
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)n), *seq = calloc((size_t)n, sizeof(int32_t));
    if (!pos || !seq) {
        free(pos);
        free(seq);
        return -1;
    }
    for (int i = 0; i < n; i++)
        pos[i] = pos0 + i;
    const int32_t *tables[1] = {table};
    const struct attn_batch b = {n, pos, seq, tables};
    const float scale = 1.0f / sqrtf((float)kv->head_dim);
    attn_forward(pool, kv, 0, &b, n_heads, scale, q, out, scratch, per_thread); /* warm-up */
    double t[BENCH_MAX_REPS], spent = 0;
    int reps = 0;
    while (reps < BENCH_MAX_REPS && (reps < 3 || spent < max_seconds)) {
        const double t0 = clock_now();
        attn_forward(pool, kv, 0, &b, n_heads, scale, q, out, scratch, per_thread);
        t[reps] = clock_now() - t0;
        spent += t[reps++];
    }
    free(pos);
    free(seq);
    return bench_median(t, reps);
}

int bench_attention(struct pool *pool, int kv_type, double max_seconds,
                    struct attn_bench_result *out, char *err, size_t errlen)
{
    enum { H = 32, HKV = 8, HD = 64, BS = 16, PREFILL = 512, DECODE_POS = 1024 };
    const int n_pos = DECODE_POS + 1, n_blocks = (n_pos + BS - 1) / BS;
    struct kv_store kv;
    if (kv_store_layout(&kv, 1, HKV, HD, BS, kv_type))
        return err_set(err, errlen, PAGODA_EUNSUPPORTED, "attention: KV type %s is not supported",
                       type_name(kv_type));
    kv.n_blocks = n_blocks;
    kv.data = malloc(kv.block_bytes * (size_t)n_blocks);
    int32_t *table = malloc(sizeof(int32_t) * (size_t)n_blocks);
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)n_pos), *seq = calloc((size_t)n_pos, 4);
    float *k = malloc(sizeof(float) * (size_t)n_pos * HKV * HD);
    float *v = malloc(sizeof(float) * (size_t)n_pos * HKV * HD);
    float *q = malloc(sizeof(float) * PREFILL * H * HD);
    float *o = malloc(sizeof(float) * PREFILL * H * HD);
    const size_t per_thread = attn_scratch_floats(HD);
    float *scratch = malloc(sizeof(float) * per_thread * (size_t)pool_size(pool));
    int rc = 0;
    if (!kv.data || !table || !pos || !seq || !k || !v || !q || !o || !scratch) {
        rc = err_set(err, errlen, PAGODA_ENOMEM, "attention: out of memory");
        goto done;
    }
    struct rng g;
    rng_seed(&g, 4321);
    for (int i = 0; i < n_blocks; i++) /* scattered blocks, as a busy pool has them */
        table[i] = (int32_t)((i * 37 + 11) % n_blocks);
    for (int i = 0; i < n_pos; i++)
        pos[i] = i;
    for (size_t i = 0; i < (size_t)n_pos * HKV * HD; i++) {
        k[i] = rng_normal(&g);
        v[i] = rng_range(&g, -1.0f, 1.0f);
    }
    for (size_t i = 0; i < (size_t)PREFILL * H * HD; i++)
        q[i] = rng_normal(&g);
    const int32_t *tables[1] = {table};
    const struct attn_batch all = {n_pos, pos, seq, tables};
    attn_store_kv(&kv, 0, &all, k, v);

    memset(out, 0, sizeof *out);
    out->kv_type = kv_type;
    out->n_heads = H;
    out->n_kv_heads = HKV;
    out->head_dim = HD;
    out->prefill_tokens = PREFILL;
    out->decode_pos = DECODE_POS;
    const double tp = time_attention(pool, &kv, table, PREFILL, 0, H, q, o, scratch, per_thread,
                                     max_seconds);
    const double td = time_attention(pool, &kv, table, 1, DECODE_POS, H, q, o, scratch,
                                     per_thread, max_seconds);
    if (tp < 0 || td < 0) {
        rc = err_set(err, errlen, PAGODA_ENOMEM, "attention: out of memory");
        goto done;
    }
    out->prefill_ms = tp * 1e3;
    out->decode_ms = td * 1e3;
done:
    free(kv.data);
    free(table);
    free(pos);
    free(seq);
    free(k);
    free(v);
    free(q);
    free(o);
    free(scratch);
    return rc;
}
