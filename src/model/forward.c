/*
 * forward.c: the transformer forward pass over a flat batch of tokens.
 *
 * It reads top to bottom like the model it computes: embed, then per layer
 * RMSNorm, Q/K/V projections (+ biases, + per-head norms), RoPE, K/V stored in
 * the paged cache, attention, output projection and residual, RMSNorm, SwiGLU
 * FFN and residual; last the final norm and the output projection for the rows
 * that want logits. Every step treats tokens independently except attention,
 * which reads only the token's own sequence, so a token's result never depends
 * on the rest of the batch.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "model/model.h"
#include "ops/types.h"

struct fwd_ctx {
    struct pool *pool;
    struct mm_ctx *mm;
    int max_tokens;
    int max_pos;
    float *x;     /* [T][n_embd] residual stream */
    float *xn;    /* [T][max(n_embd, q_dim)] normed input / projection output */
    float *q;     /* [T][n_head * head_dim] */
    float *k;     /* [T][n_head_kv * head_dim] */
    float *v;
    float *att;   /* [T][n_head * head_dim] */
    float *gate;  /* [T][n_ff] */
    float *up;
    float *attn_scratch;
    size_t scratch_per_thread;
};

void fwd_ctx_free(struct fwd_ctx *c)
{
    if (!c)
        return;
    mm_ctx_free(c->mm);
    free(c->x);
    free(c->xn);
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->att);
    free(c->gate);
    free(c->up);
    free(c->attn_scratch);
    free(c);
}

struct fwd_ctx *fwd_ctx_create(const struct model *m, struct pool *pool, int max_tokens,
                               int max_pos, char *err, size_t errlen)
{
    if (max_tokens < 1 || max_pos < 1) {
        err_set(err, errlen, PAGODA_EINVAL, "batch size and context must be positive");
        return NULL;
    }
    struct fwd_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
        return NULL;
    }
    const struct model_hparams *hp = &m->hp;
    c->pool = pool;
    c->max_tokens = max_tokens;
    c->max_pos = max_pos;
    const size_t T = (size_t)max_tokens;
    const size_t E = (size_t)hp->n_embd, Q = (size_t)hp->n_head * (size_t)hp->head_dim,
                 KV = (size_t)hp->n_head_kv * (size_t)hp->head_dim, F = (size_t)hp->n_ff;
    c->scratch_per_thread = attn_scratch_floats(hp->head_dim);
    c->x = malloc(sizeof(float) * T * E);
    c->xn = malloc(sizeof(float) * T * (E > Q ? E : Q));
    c->q = malloc(sizeof(float) * T * Q);
    c->k = malloc(sizeof(float) * T * KV);
    c->v = malloc(sizeof(float) * T * KV);
    c->att = malloc(sizeof(float) * T * Q);
    c->gate = malloc(sizeof(float) * T * F);
    c->up = malloc(sizeof(float) * T * F);
    c->attn_scratch = malloc(sizeof(float) * c->scratch_per_thread * (size_t)pool_size(pool));
    c->mm = mm_ctx_create(pool, err, errlen);
    if (!c->x || !c->xn || !c->q || !c->k || !c->v || !c->att || !c->gate || !c->up ||
        !c->attn_scratch || !c->mm) {
        fwd_ctx_free(c);
        err_set(err, errlen, PAGODA_ENOMEM, "out of memory for activations (%d tokens)", max_tokens);
        return NULL;
    }
    return c;
}

static void add_bias(float *x, const float *bias, int rows, int n)
{
    if (!bias)
        return;
    for (int r = 0; r < rows; r++)
        op_add(x + (size_t)r * n, bias, n);
}

/* True when the weights convert their activations to one type, so one
 * matmul_n call can serve them all. */
static bool mm_same_dot(const struct mm_weight *const *w, int n)
{
    const struct type_traits *t0 = type_traits_get(w[0]->type);
    for (int i = 1; i < n; i++) {
        const struct type_traits *t = type_traits_get(w[i]->type);
        if (!t0 || !t || t->dot_type != t0->dot_type || w[i]->k != w[0]->k)
            return false;
    }
    return t0 != NULL;
}

static void norm_heads(float *x, const float *w, int rows, int n_heads, int hd, float eps)
{
    if (!w)
        return;
    for (int r = 0; r < rows * n_heads; r++)
        op_rmsnorm(x + (size_t)r * hd, x + (size_t)r * hd, w, hd, eps);
}

int model_forward(const struct model *m, struct fwd_ctx *c, const struct kv_store *kv,
                  const struct fwd_batch *b, float *logits, char *err, size_t errlen)
{
    const struct model_hparams *hp = &m->hp;
    const int T = b->n_tokens;
    if (T < 1 || T > c->max_tokens)
        return err_set(err, errlen, PAGODA_EINVAL, "batch of %d tokens (at most %d)", T, c->max_tokens);
    for (int t = 0; t < T; t++) {
        if (b->tokens[t] < 0 || b->tokens[t] >= hp->n_vocab)
            return err_set(err, errlen, PAGODA_EINVAL, "token id %d is outside the vocabulary (%d)",
                           b->tokens[t], hp->n_vocab);
        if (b->pos[t] < 0 || b->pos[t] >= c->max_pos)
            return err_set(err, errlen, PAGODA_EINVAL, "position %d is outside the context (%d)",
                           b->pos[t], c->max_pos);
    }
    if (b->n_logits < 0 || b->n_logits > T)
        return err_set(err, errlen, PAGODA_EINVAL, "%d logit rows for a batch of %d", b->n_logits, T);
    for (int r = 0; r < b->n_logits; r++)
        if (b->logit_rows[r] < 0 || b->logit_rows[r] >= T)
            return err_set(err, errlen, PAGODA_EINVAL, "logit row %d is outside the batch", b->logit_rows[r]);

    const int E = hp->n_embd, hd = hp->head_dim, F = hp->n_ff;
    const int Q = hp->n_head * hd, KV = hp->n_head_kv * hd;
    const float eps = hp->rms_eps;
    const struct rope_params rope = {hp->rope_dims, hp->rope_base, hp->rope_scale,
                                     m->rope_freq_factors, hp->rope_neox ? 1 : 0};
    const struct attn_batch ab = {T, b->pos, b->seq, b->block_tables};
    const float scale = 1.0f / sqrtf((float)hd);
    int rc;

    for (int t = 0; t < T; t++)
        if ((rc = op_get_row(c->x + (size_t)t * E, m->embd_type, m->embd_data, m->embd_row_stride,
                             E, b->tokens[t])))
            return err_set(err, errlen, rc, "cannot read embedding type %s", type_name(m->embd_type));

#define MATMUL(w, in, out)                                                                   \
    do {                                                                                     \
        if ((rc = matmul(c->mm, &(w), (in), T, (out), err, errlen)))                        \
            return rc;                                                                       \
    } while (0)
    /* Matmuls of the same input go together when their activation types
     * agree (one conversion, one wait); otherwise one by one. */
#define MATMUL_GROUP(nw, ws, in, ys)                                                         \
    do {                                                                                     \
        if (mm_same_dot(ws, nw)) {                                                           \
            if ((rc = matmul_n(c->mm, ws, nw, (in), T, ys, err, errlen)))                   \
                return rc;                                                                   \
        } else {                                                                             \
            for (int i_ = 0; i_ < nw; i_++)                                                  \
                MATMUL(*ws[i_], in, ys[i_]);                                                 \
        }                                                                                    \
    } while (0)
#define MATMUL2(w0, w1, in, y0, y1)                                                          \
    do {                                                                                     \
        const struct mm_weight *ws_[2] = {&(w0), &(w1)};                                     \
        float *ys_[2] = {(y0), (y1)};                                                        \
        MATMUL_GROUP(2, ws_, in, ys_);                                                       \
    } while (0)
#define MATMUL3(w0, w1, w2, in, y0, y1, y2)                                                  \
    do {                                                                                     \
        const struct mm_weight *ws_[3] = {&(w0), &(w1), &(w2)};                              \
        float *ys_[3] = {(y0), (y1), (y2)};                                                  \
        MATMUL_GROUP(3, ws_, in, ys_);                                                       \
    } while (0)

    for (int il = 0; il < hp->n_layer; il++) {
        const struct model_layer *l = &m->layers[il];

        for (int t = 0; t < T; t++)
            op_rmsnorm(c->xn + (size_t)t * E, c->x + (size_t)t * E, l->attn_norm, E, eps);
        MATMUL3(l->wq, l->wk, l->wv, c->xn, c->q, c->k, c->v);
        add_bias(c->q, l->bq, T, Q);
        add_bias(c->k, l->bk, T, KV);
        add_bias(c->v, l->bv, T, KV);
        norm_heads(c->q, l->q_norm, T, hp->n_head, hd, eps);
        norm_heads(c->k, l->k_norm, T, hp->n_head_kv, hd, eps);
        for (int t = 0; t < T; t++) {
            op_rope(c->q + (size_t)t * Q, hp->n_head, hd, b->pos[t], &rope);
            op_rope(c->k + (size_t)t * KV, hp->n_head_kv, hd, b->pos[t], &rope);
        }
        attn_store_kv(kv, il, &ab, c->k, c->v);
        attn_forward(c->pool, kv, il, &ab, hp->n_head, scale, c->q, c->att, c->attn_scratch,
                     c->scratch_per_thread);
        MATMUL(l->wo, c->att, c->xn);
        add_bias(c->xn, l->bo, T, E);
        op_add(c->x, c->xn, (int64_t)T * E);

        for (int t = 0; t < T; t++)
            op_rmsnorm(c->xn + (size_t)t * E, c->x + (size_t)t * E, l->ffn_norm, E, eps);
        MATMUL2(l->w_gate, l->w_up, c->xn, c->gate, c->up);
        add_bias(c->gate, l->b_gate, T, F);
        add_bias(c->up, l->b_up, T, F);
        op_swiglu(c->gate, c->up, (int64_t)T * F);
        MATMUL(l->w_down, c->gate, c->xn);
        add_bias(c->xn, l->b_down, T, E);
        op_add(c->x, c->xn, (int64_t)T * E);
    }
#undef MATMUL3
#undef MATMUL2
#undef MATMUL_GROUP
#undef MATMUL

    if (b->n_logits > 0) {
        for (int r = 0; r < b->n_logits; r++)
            op_rmsnorm(c->xn + (size_t)r * E, c->x + (size_t)b->logit_rows[r] * E, m->output_norm,
                       E, eps);
        if ((rc = matmul(c->mm, &m->output, c->xn, b->n_logits, logits, err, errlen)))
            return rc;
    }
    return 0;
}
