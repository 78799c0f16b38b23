/*
 * attention.c: paged causal attention over an F16 KV store (see attention.h).
 *
 * The arithmetic follows the usual non-fused CPU formulation so logits stay
 * close to the files' reference implementation: the query is rounded to F16
 * before the dot products with F16 keys (accumulated in F32), the scores are
 * scaled and soft-maxed in F32 (the sum in double), and the probabilities are
 * rounded to F16 before they weight the F16 values.
 */
#include "ops/attention.h"

#include <math.h>
#include <string.h>

#include "base/cpu.h"
#include "base/fp16.h"
#include "ops/attention_impl.h"

void kv_store_layout(struct kv_store *kv, int n_layer, int n_kv_heads, int head_dim,
                     int block_size)
{
    kv->n_layer = n_layer;
    kv->n_kv_heads = n_kv_heads;
    kv->head_dim = head_dim;
    kv->block_size = block_size;
    kv->block_bytes = (size_t)n_layer * 2 * (size_t)n_kv_heads * (size_t)block_size *
                      (size_t)head_dim * sizeof(uint16_t);
}

size_t attn_scratch_floats(int64_t n_pos, int head_dim)
{
    return (size_t)n_pos + 2 * (size_t)head_dim + 32;
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
            uint16_t *kd = kv_slot(kv, block, layer, 0, h, slot);
            uint16_t *vd = kv_slot(kv, block, layer, 1, h, slot);
            const float *ks = k + ((size_t)t * nkv + h) * hd;
            const float *vs = v + ((size_t)t * nkv + h) * hd;
            for (int d = 0; d < hd; d++) {
                kd[d] = f32_to_f16(ks[d]);
                vd[d] = f32_to_f16(vs[d]);
            }
        }
    }
}

/* Softmax of scores[0..n) in place, probabilities rounded to F16 values. */
void attn_softmax_f16(float *scores, int64_t n)
{
    float max = -INFINITY;
    for (int64_t j = 0; j < n; j++)
        max = scores[j] > max ? scores[j] : max;
    double sum = 0.0;
    for (int64_t j = 0; j < n; j++) {
        float e = expf(scores[j] - max);
        scores[j] = e;
        sum += (double)e;
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t j = 0; j < n; j++)
        scores[j] = f32_round_f16(scores[j] * inv);
}

static void attn_head_scalar(const struct attn_head_args *a)
{
    const struct kv_store *kv = a->kv;
    const int hd = kv->head_dim, bs = kv->block_size;
    float *qr = a->scratch;
    float *scores = a->scratch + hd;
    for (int d = 0; d < hd; d++)
        qr[d] = f32_round_f16(a->q[d]);
    const int64_t n = (int64_t)a->pos + 1;
    for (int64_t j = 0; j < n; j++) {
        const uint16_t *kr = kv_slot(kv, a->block_table[j / bs], a->layer, 0, a->kv_head,
                                     (int)(j % bs));
        float s = 0.0f;
        for (int d = 0; d < hd; d++)
            s += qr[d] * f16_to_f32(kr[d]);
        scores[j] = s * a->scale;
    }
    attn_softmax_f16(scores, n);
    float *out = a->out;
    memset(out, 0, sizeof(float) * (size_t)hd);
    for (int64_t j = 0; j < n; j++) {
        const uint16_t *vr = kv_slot(kv, a->block_table[j / bs], a->layer, 1, a->kv_head,
                                     (int)(j % bs));
        const float p = scores[j];
        for (int d = 0; d < hd; d++)
            out[d] += p * f16_to_f32(vr[d]);
    }
}

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
    attn_head_fn head;
};

static void attn_worker(void *ctx, int ith, int nth)
{
    const struct attn_job *j = ctx;
    const int hd = j->kv->head_dim;
    const int group = j->n_heads / j->kv->n_kv_heads;
    const int64_t items = (int64_t)j->b->n_tokens * j->n_heads;
    struct attn_head_args a;
    a.kv = j->kv;
    a.layer = j->layer;
    a.scale = j->scale;
    a.scratch = j->scratch + (size_t)ith * j->scratch_per_thread;
    for (int64_t it = ith; it < items; it += nth) {
        const int t = (int)(it / j->n_heads);
        const int h = (int)(it % j->n_heads);
        a.kv_head = h / group;
        a.pos = j->b->pos[t];
        a.block_table = j->b->block_tables[j->b->seq[t]];
        a.q = j->q + ((size_t)t * j->n_heads + h) * hd;
        a.out = j->out + ((size_t)t * j->n_heads + h) * hd;
        j->head(&a);
    }
}

void attn_forward(struct pool *pool, const struct kv_store *kv, int layer,
                  const struct attn_batch *b, int n_heads, float scale, const float *q,
                  float *out, float *scratch, size_t scratch_per_thread)
{
    struct attn_job job = {kv, layer, b, n_heads, scale, q, out, scratch, scratch_per_thread,
                           attn_head_scalar};
#if defined(PAGODA_HAVE_X86)
    if (cpu_isa_get() >= CPU_ISA_AVX2 && kv->head_dim % 8 == 0)
        job.head = attn_head_avx2;
#endif
    int64_t items = (int64_t)b->n_tokens * n_heads;
    int nth = pool_size(pool);
    if (items < nth)
        nth = (int)items;
    pool_run_n(pool, nth, attn_worker, &job);
}
