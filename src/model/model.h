/*
 * model.h: a transformer bound to the tensors of a GGUF file, and its forward
 * pass over a flat batch of tokens that may belong to many sequences.
 *
 * Supported: `llama` (Llama 2/3, Mistral, TinyLlama, SmolLM), `qwen2`
 * (Q/K/V biases, NeoX RoPE) and `qwen3` (per-head Q/K RMS norm, NeoX RoPE),
 * with GQA, tied or separate output, any weight type, mixed per tensor, and
 * the optional attention-output and FFN biases a llama file may carry. A
 * file holding any tensor the model would not use is refused rather than run
 * without it.
 * Weights stay in the mapped file; only small norm/bias vectors in a type
 * other than F32 are converted into memory the model owns.
 */
#ifndef PAGODA_MODEL_H
#define PAGODA_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "base/pool.h"
#include "gguf/gguf.h"
#include "ops/attention.h"
#include "ops/matmul.h"
#include "ops/ops.h"

enum model_arch { ARCH_LLAMA, ARCH_QWEN2, ARCH_QWEN3 };

struct model_hparams {
    enum model_arch arch;
    char arch_name[32];
    int n_vocab;
    int n_ctx_train;
    int n_embd;
    int n_layer;
    int n_head;
    int n_head_kv;
    int head_dim;     /* per head, for Q, K and V */
    int n_ff;
    int n_expert;     /* mixture-of-experts files are refused: always 0 */
    float rms_eps;
    float rope_base;
    float rope_scale; /* linear position scaling: 1 / factor */
    int rope_dims;
    bool rope_neox;
};

struct model_layer {
    const float *attn_norm;             /* [n_embd] */
    struct mm_weight wq, wk, wv, wo;    /* [n_head*hd, n_embd] ... [n_embd, n_head*hd] */
    const float *bq, *bk, *bv;          /* qwen2 biases (optional in llama), else NULL */
    const float *bo;                    /* [n_embd] or NULL */
    const float *q_norm, *k_norm;       /* qwen3: [head_dim], else NULL */
    const float *ffn_norm;              /* [n_embd] */
    struct mm_weight w_gate, w_up, w_down; /* [n_ff, n_embd] x2, [n_embd, n_ff] */
    const float *b_gate, *b_up, *b_down;   /* optional FFN biases, else NULL */
};

struct model {
    struct gguf_file *gguf;
    struct model_hparams hp;
    int embd_type;               /* token_embd.weight: type, rows of n_embd */
    const void *embd_data;
    size_t embd_row_stride;
    const float *output_norm;    /* [n_embd] */
    struct mm_weight output;     /* [n_vocab, n_embd]; token_embd when tied */
    const float *rope_freq_factors; /* [rope_dims/2] or NULL */
    struct model_layer *layers;  /* [n_layer] */
    void *owned;                 /* converted vectors, freed with the model */
};

/* Opens a GGUF file and binds the model's tensors, checking every shape. */
int model_load(const char *path, struct model **out, char *err, size_t errlen);
/* Binds a model to an already open file; the model takes ownership of g. */
int model_from_gguf(struct gguf_file *g, struct model **out, char *err, size_t errlen);
void model_free(struct model *m);

/* One forward pass: n_tokens tokens with their positions and sequences. The K/V of
 * every token is stored at its position in its sequence's blocks; each token
 * attends to positions 0..pos of its sequence. Logits are produced for the
 * n_logits batch rows listed in logit_rows. */
struct fwd_batch {
    int n_tokens;
    const int32_t *tokens;
    const int32_t *pos;
    const int32_t *seq;
    const int32_t *const *block_tables;
    int n_logits;
    const int32_t *logit_rows;
};

/* Activation buffers for batches of up to max_tokens tokens reaching up to
 * max_pos positions. One per driver thread. */
struct fwd_ctx;

struct fwd_ctx *fwd_ctx_create(const struct model *m, struct pool *pool, int max_tokens,
                               int max_pos, char *err, size_t errlen);
void fwd_ctx_free(struct fwd_ctx *c);

/* logits: [n_logits][n_vocab]. Returns 0 or a negative status. */
int model_forward(const struct model *m, struct fwd_ctx *c, const struct kv_store *kv,
                  const struct fwd_batch *b, float *logits, char *err, size_t errlen);

#endif
