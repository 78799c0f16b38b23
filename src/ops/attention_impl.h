/* attention_impl.h: what attention.c shares with its per-ISA head kernels. */
#ifndef PAGODA_OPS_ATTENTION_IMPL_H
#define PAGODA_OPS_ATTENTION_IMPL_H

#include "ops/attention.h"

/* One query head against its KV head over positions 0..pos. */
struct attn_head_args {
    const struct kv_store *kv;
    int layer;
    int kv_head;
    int32_t pos;
    const int32_t *block_table;
    float scale;
    const float *q; /* head_dim floats */
    float *out;     /* head_dim floats */
    float *scratch; /* attn_scratch_floats(pos + 1) floats */
};

typedef void (*attn_head_fn)(const struct attn_head_args *a);

void attn_softmax_f16(float *scores, int64_t n);

#if defined(PAGODA_HAVE_X86)
void attn_head_avx2(const struct attn_head_args *a);
#endif

#endif
