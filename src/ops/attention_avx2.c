/* attention_avx2.c: the attention head kernel with F16C conversions and FMA. */
#include <immintrin.h>
#include <string.h>

#include "base/fp16.h"
#include "ops/attention_impl.h"

static inline float hsum256(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

void attn_head_avx2(const struct attn_head_args *a)
{
    const struct kv_store *kv = a->kv;
    const int hd = kv->head_dim, bs = kv->block_size;
    float *qr = a->scratch;
    float *scores = a->scratch + hd;
    for (int d = 0; d < hd; d += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(a->q + d), _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_ps(qr + d, _mm256_cvtph_ps(h));
    }
    const int64_t n = (int64_t)a->pos + 1;
    for (int64_t j = 0; j < n; j++) {
        const uint16_t *kr = kv_slot(kv, a->block_table[j / bs], a->layer, 0, a->kv_head,
                                     (int)(j % bs));
        __m256 acc = _mm256_setzero_ps();
        for (int d = 0; d < hd; d += 8) {
            __m256 k8 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(kr + d)));
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(qr + d), k8, acc);
        }
        scores[j] = hsum256(acc) * a->scale;
    }
    attn_softmax_f16(scores, n);
    float *out = a->out;
    memset(out, 0, sizeof(float) * (size_t)hd);
    for (int64_t j = 0; j < n; j++) {
        const uint16_t *vr = kv_slot(kv, a->block_table[j / bs], a->layer, 1, a->kv_head,
                                     (int)(j % bs));
        const __m256 p = _mm256_set1_ps(scores[j]);
        for (int d = 0; d < hd; d += 8) {
            __m256 v8 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(vr + d)));
            _mm256_storeu_ps(out + d, _mm256_fmadd_ps(p, v8, _mm256_loadu_ps(out + d)));
        }
    }
}
