/*
 * attention.c: the paged KV store's layout and writes, and the tiled
 * attention driver with its scalar numeric steps (attention.h).
 *
 * One query row (a token and a query head) computes its attention weights
 * operation for operation as the non-fused attention of the files'
 * reference implementation does on a 16-lane CPU: its logits move visibly
 * with the last bits of those weights on small models, because each weight
 * is rounded to F16 before it meets V and a last-bit change in the weight's
 * float value flips that rounding. So:
 *  - the query is rounded to the KV element type when that is F16 or BF16
 *    (as a dot product of stored keys with a same-typed query would be);
 *  - a score is q · k_j in the order of the reference's single-token dot
 *    product (attention_impl.h: 64-element steps in 16-lane chains, the
 *    rest added in double), rounded to float, times scale. Its prompt
 *    batches use another order (one 16-lane chain over head_dim); a query
 *    here must get the same bits in any batch, so only one can be followed,
 *    and the single-token one lands closer to its logits on the reference
 *    models (worst top-10 difference 0.059 against 0.090);
 *  - m = the maximum score over positions 0..pos;
 *  - e_j = exp(s_j - m) with ops_expf (the reference's vector exponential);
 *    the sum runs over runs of 16 positions starting at multiples of 16,
 *    each run summed in float by the tree of a 512-bit horizontal add and
 *    added to a double total in order (positions past pos count as 0);
 *  - inv = (float)(1.0 / total), computed in double; p_j = e_j * inv,
 *    rounded to an F16 value when the store is F16 (the probabilities meet
 *    F16 values as F16 there);
 *  - the output is the sum of p_j * v_j, j in order, in fused multiply-adds
 *    (the reference groups this sum in lanes, by the same two orders as the
 *    scores; not followed here).
 * The maximum must be known before the first exponential and the total
 * before the first probability, so a tile makes three passes over steps of
 * ATTN_CHUNK positions: scores and maximum; exponentials and their sum;
 * probabilities and V. A cache of ATTN_TILE_ROWS * ATTN_CACHE_CHUNKS rows of
 * a step keeps the scores, then exponentials, of the first steps between
 * passes (4096 positions for a tile of 16 rows, 32768 for one or two); later
 * steps recompute them (the same bits), so their scores are computed three
 * times. Work memory is one tile plus that cache whatever the context length.
 * The ISA (attention_impl.h) decides only how these operations are spread
 * over vector lanes, never their order, so every ISA level gives the same
 * bits, and a query's result does not depend on which queries share its
 * tile, its call or its thread. Tiles only decide how often each K/V row is
 * read: once per tile of up to ATTN_TILE_ROWS rows instead of once per row.
 */
#include "ops/attention.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "base/cpu.h"
#include "base/fp16.h"
#include "ops/attention_impl.h"
#include "ops/ops_simd.h"
#include "ops/quants.h"
#include "ops/types.h"
#include "pagoda.h"

int kv_store_layout(struct kv_store *kv, int n_layer, int n_kv_heads, int head_dim,
                    int block_size, int type)
{
    memset(kv, 0, sizeof *kv);
    if (n_layer < 1 || n_kv_heads < 1 || head_dim < 1 || block_size < 1)
        return PAGODA_EINVAL;
    if (type != PG_TYPE_F16 && type != PG_TYPE_BF16 && type != PG_TYPE_Q8_0)
        return PAGODA_EUNSUPPORTED;
    const size_t row = type_row_size(type, head_dim);
    if (row == 0) /* Q8_0 needs whole 32-element blocks */
        return PAGODA_EUNSUPPORTED;
    kv->n_layer = n_layer;
    kv->n_kv_heads = n_kv_heads;
    kv->head_dim = head_dim;
    kv->block_size = block_size;
    kv->type = type;
    kv->row_bytes = row;
    kv->block_bytes = (size_t)n_layer * 2 * (size_t)n_kv_heads * (size_t)block_size * row;
    return 0;
}

size_t attn_scratch_floats(int head_dim)
{
    const size_t hd = (size_t)head_dim;
    return (2 * (size_t)ATTN_CHUNK + 2 * (size_t)ATTN_TILE_ROWS) * hd +
           (size_t)ATTN_TILE_ROWS * ATTN_CHUNK * (1 + ATTN_CACHE_CHUNKS) + 16;
}

static void kv_store_row(int type, const float *src, void *dst, int hd)
{
    if (type == PG_TYPE_Q8_0) {
        quantize_row_q8_0_ref(src, dst, hd);
        return;
    }
    uint16_t *d16 = dst;
    if (type == PG_TYPE_BF16)
        for (int d = 0; d < hd; d++)
            d16[d] = f32_to_bf16(src[d]);
    else
        for (int d = 0; d < hd; d++)
            d16[d] = f32_to_f16(src[d]);
}

void attn_store_kv(const struct kv_store *kv, int layer, const struct attn_batch *b,
                   const float *k, const float *v)
{
    const int hd = kv->head_dim, nkv = kv->n_kv_heads, bs = kv->block_size;
    for (int t = 0; t < b->n_tokens; t++) {
        const int32_t pos = b->pos[t];
        const int32_t block = b->block_tables[b->seq[t]][pos / bs];
        const int slot = pos % bs;
        for (int h = 0; h < nkv; h++) {
            const size_t off = ((size_t)t * nkv + h) * hd;
            kv_store_row(kv->type, k + off, kv_slot(kv, block, layer, 0, h, slot), hd);
            kv_store_row(kv->type, v + off, kv_slot(kv, block, layer, 1, h, slot), hd);
        }
    }
}

/* ---- scalar numeric steps ---- */

static void row_to_f32_scalar(int type, const void *src, float *dst, int hd)
{
    if (type == PG_TYPE_Q8_0) {
        const block_q8_0 *blk = src;
        for (int i = 0; i < hd / QK8_0; i++) {
            const float d = f16_to_f32(blk[i].d);
            for (int e = 0; e < QK8_0; e++)
                dst[i * QK8_0 + e] = d * (float)blk[i].qs[e];
        }
        return;
    }
    const uint16_t *s16 = src;
    if (type == PG_TYPE_BF16)
        for (int d = 0; d < hd; d++)
            dst[d] = bf16_to_f32(s16[d]);
    else
        for (int d = 0; d < hd; d++)
            dst[d] = f16_to_f32(s16[d]);
}

/* The sum of 16 lanes by the tree of a 512-bit horizontal add: lane i with
 * lane i + 8, then i with i + 4, then i with i + 2, then the last pair. */
static float tree16(const float *a)
{
    float h[8], g[4];
    for (int i = 0; i < 8; i++)
        h[i] = a[i] + a[i + 8];
    for (int i = 0; i < 4; i++)
        g[i] = h[i] + h[i + 4];
    return (g[0] + g[2]) + (g[1] + g[3]);
}

/* q · k in the score order (attention_impl.h): whole 64-element steps as
 * four 16-lane chains of fused multiply-adds, the chains combined as
 * (0 + 2) + (1 + 3) and the lanes by tree16; then each remaining product,
 * rounded to float, added in double in order. */
static float dot_scalar(const float *q, const float *k, int hd)
{
    const int np = hd & ~63;
    double sum = 0.0;
    if (np > 0) {
        float acc[4][16] = {{0}};
        for (int d0 = 0; d0 < np; d0 += 64)
            for (int a = 0; a < 4; a++)
                for (int l = 0; l < 16; l++)
                    acc[a][l] = fmaf(q[d0 + a * 16 + l], k[d0 + a * 16 + l], acc[a][l]);
        for (int l = 0; l < 16; l++)
            acc[0][l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
        sum = (double)tree16(acc[0]);
    }
    for (int d = np; d < hd; d++)
        sum += (double)(q[d] * k[d]);
    return (float)sum;
}

static void scores_scalar(const float *q, int n_rows, const float *k, int n_pos, int hd,
                          float scale, float *s)
{
    for (int r = 0; r < n_rows; r++)
        for (int j = 0; j < n_pos; j++)
            s[r * ATTN_CHUNK + j] = dot_scalar(q + (size_t)r * hd, k + (size_t)j * hd, hd) * scale;
}

static void exp_shift_scalar(float *p, float max)
{
    for (int j = 0; j < ATTN_CHUNK; j++)
        p[j] = ops_expf(p[j] - max);
}

static double sum_scalar(const float *p, double sum)
{
    for (int j = 0; j < ATTN_CHUNK; j += 16)
        sum += (double)tree16(p + j);
    return sum;
}

static void probs_scalar(float *p, float inv, int round_f16)
{
    for (int j = 0; j < ATTN_CHUNK; j++) {
        const float e = p[j] * inv;
        p[j] = round_f16 ? f32_round_f16(e) : e;
    }
}

static void accumulate_scalar(float *acc, int n_rows, const float *p, const int *n,
                              const float *v, int hd)
{
    for (int r = 0; r < n_rows; r++) {
        float *a = acc + (size_t)r * hd;
        for (int j = 0; j < n[r]; j++) {
            const float pj = p[r * ATTN_CHUNK + j];
            const float *vj = v + (size_t)j * hd;
            for (int d = 0; d < hd; d++)
                a[d] = fmaf(pj, vj[d], a[d]);
        }
    }
}

static const struct attn_isa attn_isa_scalar = {row_to_f32_scalar, scores_scalar, exp_shift_scalar,
                                                sum_scalar, probs_scalar, accumulate_scalar};

/* ---- the tile driver ---- */

struct attn_job {
    const struct kv_store *kv;
    int layer;
    const struct attn_batch *b;
    int n_heads;
    float scale;
    const float *q;
    float *out;
    float *scratch;
    size_t scratch_per_thread;
    const struct attn_isa *isa;
    int group;           /* query heads per KV head */
    int heads_per_unit;  /* query heads of one KV head in a tile */
    int head_parts;      /* ceil(group / heads_per_unit) */
    int tokens_per_tile;
    int64_t n_units;     /* tiles * n_kv_heads * head_parts */
    atomic_llong next;   /* next unit to hand out */
};

/* Tokens in the tile starting at t0: the run of adjacent tokens of one
 * sequence, at most max_tokens. */
static int tile_len(const struct attn_batch *b, int t0, int max_tokens)
{
    if (t0 >= b->n_tokens)
        return 0;
    int n = 1;
    while (n < max_tokens && t0 + n < b->n_tokens && b->seq[t0 + n] == b->seq[t0])
        n++;
    return n;
}

static int64_t count_tiles(const struct attn_batch *b, int max_tokens)
{
    int64_t n = 0;
    for (int t = 0; t < b->n_tokens; t += tile_len(b, t, max_tokens))
        n++;
    return n;
}

/* Tokens t0..t0+n_tok of one sequence against KV head kvh, query heads h0..h1. */
static void attn_tile(const struct attn_job *j, int t0, int n_tok, int kvh, int h0, int h1,
                      float *scratch)
{
    const struct kv_store *kv = j->kv;
    const struct attn_batch *b = j->b;
    const struct attn_isa *isa = j->isa;
    const int hd = kv->head_dim, bs = kv->block_size, nh = h1 - h0;
    const int n_rows = n_tok * nh;

    /* Rows by decreasing position, so the rows still active at a step are a prefix. */
    int order[ATTN_TILE_ROWS];
    for (int i = 0; i < n_tok; i++) {
        int k = i;
        while (k > 0 && b->pos[order[k - 1]] < b->pos[t0 + i]) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = t0 + i;
    }
    int32_t pos[ATTN_TILE_ROWS];
    float *outp[ATTN_TILE_ROWS];
    float m[ATTN_TILE_ROWS], inv[ATTN_TILE_ROWS];
    double l[ATTN_TILE_ROWS];
    int nv[ATTN_TILE_ROWS];

    float *kbuf = scratch;
    float *vbuf = kbuf + (size_t)ATTN_CHUNK * hd;
    float *qbuf = vbuf + (size_t)ATTN_CHUNK * hd;
    float *acc = qbuf + (size_t)ATTN_TILE_ROWS * hd;
    float *s = acc + (size_t)ATTN_TILE_ROWS * hd;
    float *cache = s + (size_t)ATTN_TILE_ROWS * ATTN_CHUNK;

    for (int i = 0; i < n_tok; i++) {
        const int t = order[i];
        for (int k = 0; k < nh; k++) {
            const int r = i * nh + k;
            const size_t off = ((size_t)t * j->n_heads + (size_t)(h0 + k)) * hd;
            const float *qs = j->q + off;
            float *qd = qbuf + (size_t)r * hd;
            if (kv->type == PG_TYPE_F16)
                for (int d = 0; d < hd; d++)
                    qd[d] = f32_round_f16(qs[d]);
            else if (kv->type == PG_TYPE_BF16)
                for (int d = 0; d < hd; d++)
                    qd[d] = f32_round_bf16(qs[d]);
            else
                memcpy(qd, qs, sizeof(float) * (size_t)hd);
            pos[r] = b->pos[t];
            outp[r] = j->out + off;
            m[r] = -INFINITY;
            l[r] = 0.0;
        }
    }
    memset(acc, 0, sizeof(float) * (size_t)n_rows * hd);

    const int32_t *table = b->block_tables[b->seq[t0]];
    const int32_t max_pos = pos[0];
    const int round_f16 = kv->type == PG_TYPE_F16;
    /* The cache holds steps of this tile's rows (a pair at least: SIMD
     * score blocks may write one row past the last), so a tile of few rows
     * (decoding) keeps many more steps. */
    const int cache_rows = (n_rows + 1) & ~1;
    const int cache_chunks = ATTN_TILE_ROWS * ATTN_CACHE_CHUNKS / cache_rows;
    /* Pass 0: scores and their maximum; pass 1: exponentials and their sum;
     * pass 2: probabilities times V. Cached steps keep their scores from
     * pass 0 and their exponentials from pass 1; others recompute them. */
    for (int pass = 0; pass < 3; pass++) {
        int active = n_rows;
        for (int32_t c0 = 0; c0 <= max_pos; c0 += ATTN_CHUNK) {
            const int nt = max_pos + 1 - c0 < ATTN_CHUNK ? max_pos + 1 - c0 : ATTN_CHUNK;
            const int ci = c0 / ATTN_CHUNK;
            const int cached = ci < cache_chunks;
            float *sc = cached ? cache + (size_t)ci * cache_rows * ATTN_CHUNK : s;
            const int need_scores = pass == 0 || !cached;
            for (int jj = 0; jj < nt; jj++) {
                const int32_t p = c0 + jj;
                const int64_t blk = table[p / bs];
                if (need_scores)
                    isa->row_to_f32(kv->type, kv_slot(kv, blk, j->layer, 0, kvh, p % bs),
                                    kbuf + (size_t)jj * hd, hd);
                if (pass == 2)
                    isa->row_to_f32(kv->type, kv_slot(kv, blk, j->layer, 1, kvh, p % bs),
                                    vbuf + (size_t)jj * hd, hd);
            }
            while (active > 0 && pos[active - 1] < c0)
                active--;
            if (need_scores) {
                isa->scores(qbuf, active, kbuf, nt, hd, j->scale, sc);
                for (int r = 0; r < active; r++) {
                    const int n = pos[r] + 1 - c0 < ATTN_CHUNK ? pos[r] + 1 - c0 : ATTN_CHUNK;
                    for (int jj = n; jj < ATTN_CHUNK; jj++)
                        sc[r * ATTN_CHUNK + jj] = -INFINITY;
                }
            }
            for (int r = 0; r < active; r++) {
                float *sr = sc + r * ATTN_CHUNK;
                const int n = pos[r] + 1 - c0 < ATTN_CHUNK ? pos[r] + 1 - c0 : ATTN_CHUNK;
                if (pass == 0) {
                    for (int jj = 0; jj < n; jj++)
                        m[r] = sr[jj] > m[r] ? sr[jj] : m[r];
                } else if (pass == 1) {
                    isa->exp_shift(sr, m[r]);
                    l[r] = isa->sum(sr, l[r]);
                } else {
                    if (!cached)
                        isa->exp_shift(sr, m[r]);
                    isa->probs(sr, inv[r], round_f16);
                    nv[r] = n;
                }
            }
            if (pass == 2)
                isa->accumulate(acc, active, sc, nv, vbuf, hd);
        }
        if (pass == 1)
            for (int r = 0; r < n_rows; r++)
                inv[r] = (float)(1.0 / l[r]);
    }
    for (int r = 0; r < n_rows; r++)
        memcpy(outp[r], acc + (size_t)r * hd, sizeof(float) * (size_t)hd);
}

static void attn_worker(void *ctx, int ith, int nth)
{
    struct attn_job *j = ctx;
    (void)nth;
    float *scratch = j->scratch + (size_t)ith * j->scratch_per_thread;
    /* SIMD score blocks may read tile rows past the real ones: keep them
     * ordinary numbers (no NaN or subnormal stalls). The score cache is
     * only read where the first pass wrote it. */
    const size_t hd = (size_t)j->kv->head_dim;
    memset(scratch, 0,
           sizeof(float) * ((2 * (size_t)ATTN_CHUNK + 2 * (size_t)ATTN_TILE_ROWS) * hd +
                            (size_t)ATTN_TILE_ROWS * ATTN_CHUNK));
    const int64_t per_tile = (int64_t)j->kv->n_kv_heads * j->head_parts;
    /* Units are handed out in increasing order, so each thread walks the
     * tiles forward once. */
    int64_t ti = 0;
    int t0 = 0;
    int len = tile_len(j->b, 0, j->tokens_per_tile);
    for (;;) {
        const int64_t u = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (u >= j->n_units)
            break;
        for (; ti < u / per_tile; ti++) {
            t0 += len;
            len = tile_len(j->b, t0, j->tokens_per_tile);
        }
        const int sub = (int)(u % per_tile);
        const int kvh = sub / j->head_parts, part = sub % j->head_parts;
        const int h0 = kvh * j->group + part * j->heads_per_unit;
        const int hend = (kvh + 1) * j->group;
        const int h1 = h0 + j->heads_per_unit < hend ? h0 + j->heads_per_unit : hend;
        attn_tile(j, t0, len, kvh, h0, h1, scratch);
    }
}

static const struct attn_isa *attn_isa_pick(int head_dim)
{
#if defined(PAGODA_HAVE_X86)
    const enum cpu_isa isa = cpu_isa_get();
    if (isa >= CPU_ISA_AVX512 && head_dim % 16 == 0)
        return &attn_isa_avx512;
    if (isa >= CPU_ISA_AVX2 && head_dim % 8 == 0)
        return &attn_isa_avx2;
#else
    (void)head_dim;
#endif
    return &attn_isa_scalar;
}

void attn_forward(struct pool *pool, const struct kv_store *kv, int layer,
                  const struct attn_batch *b, int n_heads, float scale, const float *q,
                  float *out, float *scratch, size_t scratch_per_thread)
{
    if (b->n_tokens < 1)
        return;
    struct attn_job job;
    struct attn_job *j = &job;
    memset(j, 0, sizeof *j);
    j->kv = kv;
    j->layer = layer;
    j->b = b;
    j->n_heads = n_heads;
    j->scale = scale;
    j->q = q;
    j->out = out;
    j->scratch = scratch;
    j->scratch_per_thread = scratch_per_thread;
    j->isa = attn_isa_pick(kv->head_dim);
    j->group = n_heads / kv->n_kv_heads;
    const int nth = pool_size(pool);
    /* Tile shape changes only how often K/V rows are read, never a row's
     * result: split the query heads finer when there are few tiles (decoding
     * a handful of sequences) so every thread gets work. */
    int hpu = j->group < ATTN_TILE_ROWS ? j->group : ATTN_TILE_ROWS;
    for (;;) {
        j->heads_per_unit = hpu;
        j->head_parts = (j->group + hpu - 1) / hpu;
        j->tokens_per_tile = ATTN_TILE_ROWS / hpu;
        j->n_units = count_tiles(b, j->tokens_per_tile) * kv->n_kv_heads * j->head_parts;
        if (hpu == 1 || j->n_units >= 2 * (int64_t)nth)
            break;
        hpu = (hpu + 1) / 2;
    }
    atomic_init(&j->next, 0);
    const int n = j->n_units < nth ? (int)j->n_units : nth;
    pool_run_n(pool, n, attn_worker, j);
}
