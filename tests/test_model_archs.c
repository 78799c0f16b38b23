/*
 * test_model_archs.c: the forward pass of each architecture against a plain
 * double-precision transformer written out here, on small F32 models with
 * random weights built in the test: llama (normal RoPE, rope frequency
 * factors, linear position scaling, attention-output and FFN biases), qwen2
 * (Q/K/V biases, NeoX RoPE, tied output) and qwen3 (per-head Q/K RMS norms,
 * head size other than n_embd / n_head, partial rotation). Every norm weight
 * and bias is random, so a step left out or applied in the wrong place shows.
 * Also: changing a qwen3 q_norm weight changes the logits, and files that
 * would be run wrongly (an unknown tensor, experts, YaRN) are refused.
 */
#include <stdint.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fp16.h"
#include "base/rng.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "ops/types.h"
#include "test.h"

static char tmpdir[512];

struct cfg {
    const char *label, *arch;
    int n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_layer;
    int rope_dims;        /* 0: whole head, no key written */
    bool tied, qkv_bias, out_ffn_bias, qk_norm, freq_factors;
    float rope_base, linear_factor; /* factor 0: no scaling keys */
    int n_prompt, n_steps;
};

/* One model's weights, kept in memory for the reference forward. */
struct weights {
    float *embd, *out, *out_norm, *freqs;
    struct layer_w {
        float *attn_norm, *wq, *wk, *wv, *wo, *bq, *bk, *bv, *bo, *q_norm, *k_norm;
        float *ffn_norm, *wg, *wu, *wd, *bg, *bu, *bd;
    } *l;
};

static float *rand_vec(struct rng *r, size_t n, float center, float spread)
{
    float *v = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++)
        v[i] = center + rng_range(r, -spread, spread);
    return v;
}

static float *rand_mat(struct rng *r, int rows, int cols)
{
    /* Variance 1 / cols keeps activations and logits of order 1. */
    return rand_vec(r, (size_t)rows * (size_t)cols, 0.0f, sqrtf(3.0f / (float)cols));
}

static void make_weights(const struct cfg *c, struct weights *w, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    const int E = c->n_embd, Q = c->n_head * c->head_dim, KV = c->n_head_kv * c->head_dim;
    const int F = c->n_ff, hd = c->head_dim;
    const int rd = c->rope_dims ? c->rope_dims : hd;
    w->embd = rand_vec(&r, (size_t)c->n_vocab * (size_t)E, 0.0f, 1.0f);
    w->out = c->tied ? NULL : rand_mat(&r, c->n_vocab, E);
    w->out_norm = rand_vec(&r, (size_t)E, 1.0f, 0.3f);
    w->freqs = c->freq_factors ? rand_vec(&r, (size_t)rd / 2, 4.0f, 3.0f) : NULL;
    w->l = calloc((size_t)c->n_layer, sizeof *w->l);
    for (int i = 0; i < c->n_layer; i++) {
        struct layer_w *l = &w->l[i];
        l->attn_norm = rand_vec(&r, (size_t)E, 1.0f, 0.3f);
        l->wq = rand_mat(&r, Q, E);
        l->wk = rand_mat(&r, KV, E);
        l->wv = rand_mat(&r, KV, E);
        l->wo = rand_mat(&r, E, Q);
        if (c->qkv_bias) {
            l->bq = rand_vec(&r, (size_t)Q, 0.0f, 0.8f);
            l->bk = rand_vec(&r, (size_t)KV, 0.0f, 0.8f);
            l->bv = rand_vec(&r, (size_t)KV, 0.0f, 0.8f);
        }
        if (c->qk_norm) {
            l->q_norm = rand_vec(&r, (size_t)hd, 1.0f, 0.5f);
            l->k_norm = rand_vec(&r, (size_t)hd, 1.0f, 0.5f);
        }
        l->ffn_norm = rand_vec(&r, (size_t)E, 1.0f, 0.3f);
        l->wg = rand_mat(&r, F, E);
        l->wu = rand_mat(&r, F, E);
        l->wd = rand_mat(&r, E, F);
        if (c->out_ffn_bias) {
            l->bo = rand_vec(&r, (size_t)E, 0.0f, 0.5f);
            l->bg = rand_vec(&r, (size_t)F, 0.0f, 0.5f);
            l->bu = rand_vec(&r, (size_t)F, 0.0f, 0.5f);
            l->bd = rand_vec(&r, (size_t)E, 0.0f, 0.5f);
        }
    }
}

static void free_weights(const struct cfg *c, struct weights *w)
{
    free(w->embd);
    free(w->out);
    free(w->out_norm);
    free(w->freqs);
    for (int i = 0; i < c->n_layer; i++) {
        struct layer_w *l = &w->l[i];
        float *all[] = {l->attn_norm, l->wq, l->wk, l->wv, l->wo, l->bq, l->bk, l->bv, l->bo,
                        l->q_norm, l->k_norm, l->ffn_norm, l->wg, l->wu, l->wd, l->bg, l->bu,
                        l->bd};
        for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
            free(all[k]);
    }
    free(w->l);
}

/* What to write besides the model itself, to check refusals. */
enum extra { EXTRA_NONE, EXTRA_UNKNOWN_TENSOR, EXTRA_EXPERTS, EXTRA_YARN };

static int write_model(const struct cfg *c, const struct weights *w, enum extra extra,
                       const char *path)
{
    struct gguf_writer *g = gguf_writer_create();
    char key[128], err[256];
    const char *a = c->arch;
#define KEY(s) (snprintf(key, sizeof key, "%s.%s", a, (s)), key)
    int rc = 0;
    rc |= gguf_writer_set_str(g, "general.architecture", a);
    rc |= gguf_writer_set_u32(g, KEY("context_length"), 256);
    rc |= gguf_writer_set_u32(g, KEY("embedding_length"), (uint32_t)c->n_embd);
    rc |= gguf_writer_set_u32(g, KEY("block_count"), (uint32_t)c->n_layer);
    rc |= gguf_writer_set_u32(g, KEY("feed_forward_length"), (uint32_t)c->n_ff);
    rc |= gguf_writer_set_u32(g, KEY("attention.head_count"), (uint32_t)c->n_head);
    rc |= gguf_writer_set_u32(g, KEY("attention.head_count_kv"), (uint32_t)c->n_head_kv);
    rc |= gguf_writer_set_f32(g, KEY("rope.freq_base"), c->rope_base);
    rc |= gguf_writer_set_f32(g, KEY("attention.layer_norm_rms_epsilon"), 1e-6f);
    if (c->head_dim * c->n_head != c->n_embd) {
        rc |= gguf_writer_set_u32(g, KEY("attention.key_length"), (uint32_t)c->head_dim);
        rc |= gguf_writer_set_u32(g, KEY("attention.value_length"), (uint32_t)c->head_dim);
    }
    if (c->rope_dims)
        rc |= gguf_writer_set_u32(g, KEY("rope.dimension_count"), (uint32_t)c->rope_dims);
    if (c->linear_factor > 0)
        rc |= gguf_writer_set_f32(g, KEY("rope.scaling.factor"), c->linear_factor);
    if (extra == EXTRA_EXPERTS)
        rc |= gguf_writer_set_u32(g, KEY("expert_count"), 4);
    if (extra == EXTRA_YARN)
        rc |= gguf_writer_set_str(g, KEY("rope.scaling.type"), "yarn");
#undef KEY
    CHECK(rc == 0);

    const int E = c->n_embd, Q = c->n_head * c->head_dim, KV = c->n_head_kv * c->head_dim;
    const int F = c->n_ff, hd = c->head_dim;
    const int rd = c->rope_dims ? c->rope_dims : hd;
    char name[48];
#define ADD(data, e0, e1, ...)                                                               \
    do {                                                                                     \
        if (data) {                                                                          \
            snprintf(name, sizeof name, __VA_ARGS__);                                        \
            const int64_t ne_[2] = {(e0), (e1)};                                             \
            rc |= gguf_writer_add_tensor(g, name, PG_TYPE_F32, (e1) > 1 ? 2 : 1, ne_, (data), \
                                         sizeof(float) * (size_t)(e0) * (size_t)(e1), err,    \
                                         sizeof err);                                        \
        }                                                                                    \
    } while (0)
    ADD(w->embd, E, c->n_vocab, "token_embd.weight");
    ADD(w->freqs, rd / 2, 1, "rope_freqs.weight");
    for (int i = 0; i < c->n_layer; i++) {
        const struct layer_w *l = &w->l[i];
        ADD(l->attn_norm, E, 1, "blk.%d.attn_norm.weight", i);
        ADD(l->wq, E, Q, "blk.%d.attn_q.weight", i);
        ADD(l->wk, E, KV, "blk.%d.attn_k.weight", i);
        ADD(l->wv, E, KV, "blk.%d.attn_v.weight", i);
        ADD(l->bq, Q, 1, "blk.%d.attn_q.bias", i);
        ADD(l->bk, KV, 1, "blk.%d.attn_k.bias", i);
        ADD(l->bv, KV, 1, "blk.%d.attn_v.bias", i);
        ADD(l->q_norm, hd, 1, "blk.%d.attn_q_norm.weight", i);
        ADD(l->k_norm, hd, 1, "blk.%d.attn_k_norm.weight", i);
        ADD(l->wo, Q, E, "blk.%d.attn_output.weight", i);
        ADD(l->bo, E, 1, "blk.%d.attn_output.bias", i);
        ADD(l->ffn_norm, E, 1, "blk.%d.ffn_norm.weight", i);
        ADD(l->wg, E, F, "blk.%d.ffn_gate.weight", i);
        ADD(l->wu, E, F, "blk.%d.ffn_up.weight", i);
        ADD(l->wd, F, E, "blk.%d.ffn_down.weight", i);
        ADD(l->bg, F, 1, "blk.%d.ffn_gate.bias", i);
        ADD(l->bu, F, 1, "blk.%d.ffn_up.bias", i);
        ADD(l->bd, E, 1, "blk.%d.ffn_down.bias", i);
    }
    ADD(w->out_norm, E, 1, "output_norm.weight");
    ADD(w->out, E, c->n_vocab, "output.weight");
    if (extra == EXTRA_UNKNOWN_TENSOR)
        ADD(w->out_norm, E, 1, "blk.0.attn_norm_2.weight");
#undef ADD
    CHECKF(rc == 0, "%s: %s", c->label, err);
    rc = gguf_writer_write(g, path, err, sizeof err);
    CHECKF(rc == 0, "%s: %s", c->label, err);
    gguf_writer_free(g);
    return rc;
}

/* ---- the reference: one token at a time, in double ---- */

static void ref_matvec(const float *wm, const double *x, int rows, int cols, double *y)
{
    for (int r = 0; r < rows; r++) {
        double s = 0;
        for (int k = 0; k < cols; k++)
            s += (double)wm[(size_t)r * (size_t)cols + (size_t)k] * x[k];
        y[r] = s;
    }
}

static void ref_rmsnorm(double *y, const double *x, const float *wt, int n)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    const double s = 1.0 / sqrt(ss / n + 1e-6);
    for (int i = 0; i < n; i++)
        y[i] = x[i] * s * wt[i];
}

static void ref_bias(double *y, const float *b, int n)
{
    for (int i = 0; b && i < n; i++)
        y[i] += b[i];
}

static void ref_rope(const struct cfg *c, const struct weights *w, double *v, int pos)
{
    const int hd = c->head_dim, rd = c->rope_dims ? c->rope_dims : hd, half = rd / 2;
    const bool neox = strcmp(c->arch, "llama") != 0;
    const double scale = c->linear_factor > 0 ? 1.0 / c->linear_factor : 1.0;
    for (int i = 0; i < half; i++) {
        double th = pos * pow(c->rope_base, -2.0 * i / rd) * scale;
        if (w->freqs)
            th /= w->freqs[i];
        const int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
        const double x0 = v[a], x1 = v[b];
        v[a] = x0 * cos(th) - x1 * sin(th);
        v[b] = x0 * sin(th) + x1 * cos(th);
    }
}

/* Logits of every position of tokens[0..n) into logits[n][n_vocab]. K and V
 * are rounded to F16 as the engine's cache stores them. */
static void ref_forward(const struct cfg *c, const struct weights *w, const int32_t *tokens,
                        int n, double *logits)
{
    const int E = c->n_embd, H = c->n_head, HKV = c->n_head_kv, hd = c->head_dim;
    const int Q = H * hd, KV = HKV * hd, F = c->n_ff, L = c->n_layer;
    double *x = malloc(sizeof(double) * (size_t)E), *xn = malloc(sizeof(double) * (size_t)E);
    double *q = malloc(sizeof(double) * (size_t)Q), *att = malloc(sizeof(double) * (size_t)Q);
    double *o = malloc(sizeof(double) * (size_t)E), *sc = malloc(sizeof(double) * (size_t)n);
    double *g = malloc(sizeof(double) * (size_t)F), *u = malloc(sizeof(double) * (size_t)F);
    double *kc = malloc(sizeof(double) * (size_t)L * (size_t)n * (size_t)KV);
    double *vc = malloc(sizeof(double) * (size_t)L * (size_t)n * (size_t)KV);
    for (int p = 0; p < n; p++) {
        for (int i = 0; i < E; i++)
            x[i] = w->embd[(size_t)tokens[p] * (size_t)E + (size_t)i];
        for (int il = 0; il < L; il++) {
            const struct layer_w *l = &w->l[il];
            double *k = kc + ((size_t)il * (size_t)n + (size_t)p) * (size_t)KV;
            double *v = vc + ((size_t)il * (size_t)n + (size_t)p) * (size_t)KV;
            ref_rmsnorm(xn, x, l->attn_norm, E);
            ref_matvec(l->wq, xn, Q, E, q);
            ref_matvec(l->wk, xn, KV, E, k);
            ref_matvec(l->wv, xn, KV, E, v);
            ref_bias(q, l->bq, Q);
            ref_bias(k, l->bk, KV);
            ref_bias(v, l->bv, KV);
            for (int h = 0; h < H; h++) {
                if (l->q_norm)
                    ref_rmsnorm(q + h * hd, q + h * hd, l->q_norm, hd);
                ref_rope(c, w, q + h * hd, p);
            }
            for (int h = 0; h < HKV; h++) {
                if (l->k_norm)
                    ref_rmsnorm(k + h * hd, k + h * hd, l->k_norm, hd);
                ref_rope(c, w, k + h * hd, p);
            }
            for (int i = 0; i < KV; i++) {
                k[i] = f32_round_f16((float)k[i]);
                v[i] = f32_round_f16((float)v[i]);
            }
            for (int h = 0; h < H; h++) {
                const int kh = h / (H / HKV);
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j <= p; j++) {
                    const double *kj = kc + ((size_t)il * (size_t)n + (size_t)j) * (size_t)KV;
                    double s = 0;
                    for (int d = 0; d < hd; d++)
                        s += q[h * hd + d] * kj[kh * hd + d];
                    sc[j] = s / sqrt((double)hd);
                    mx = sc[j] > mx ? sc[j] : mx;
                }
                for (int j = 0; j <= p; j++)
                    sum += (sc[j] = exp(sc[j] - mx));
                for (int d = 0; d < hd; d++) {
                    double s = 0;
                    for (int j = 0; j <= p; j++)
                        s += sc[j] * vc[((size_t)il * (size_t)n + (size_t)j) * (size_t)KV +
                                        (size_t)(kh * hd + d)];
                    att[h * hd + d] = s / sum;
                }
            }
            ref_matvec(l->wo, att, E, Q, o);
            ref_bias(o, l->bo, E);
            for (int i = 0; i < E; i++)
                x[i] += o[i];
            ref_rmsnorm(xn, x, l->ffn_norm, E);
            ref_matvec(l->wg, xn, F, E, g);
            ref_matvec(l->wu, xn, F, E, u);
            ref_bias(g, l->bg, F);
            ref_bias(u, l->bu, F);
            for (int i = 0; i < F; i++)
                g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
            ref_matvec(l->wd, g, E, F, o);
            ref_bias(o, l->bd, E);
            for (int i = 0; i < E; i++)
                x[i] += o[i];
        }
        ref_rmsnorm(xn, x, w->out_norm, E);
        ref_matvec(w->out ? w->out : w->embd, xn, c->n_vocab, E,
                   logits + (size_t)p * (size_t)c->n_vocab);
    }
    free(x);
    free(xn);
    free(q);
    free(att);
    free(o);
    free(sc);
    free(g);
    free(u);
    free(kc);
    free(vc);
}

/* ---- the engine's side ---- */

/* Runs the prompt as one batch (logits for every row), then the remaining
 * tokens one at a time; returns 0 and fills logits[n][n_vocab]. */
static int engine_forward(const char *path, const int32_t *tokens, int n_prompt, int n,
                          float *logits, char *err, size_t errlen)
{
    struct model *m = NULL;
    int rc = model_load(path, &m, err, errlen);
    if (rc)
        return rc;
    const int bs = 16, max_pos = 64;
    struct pool *pool = pool_create(2, err, errlen);
    struct fwd_ctx *fc = pool ? fwd_ctx_create(m, pool, max_pos, max_pos, err, errlen) : NULL;
    struct kv_store kv;
    kv_store_layout(&kv, m->hp.n_layer, m->hp.n_head_kv, m->hp.head_dim, bs, PG_TYPE_F16);
    kv.n_blocks = max_pos / bs;
    kv.data = malloc(kv.block_bytes * (size_t)kv.n_blocks);
    int32_t blocks[4] = {2, 0, 3, 1};
    const int32_t *tables[1] = {blocks};
    int32_t pos[64], seq[64] = {0}, rows[64];
    for (int i = 0; i < n; i++) {
        pos[i] = i;
        rows[i] = i;
    }
    rc = fc ? 0 : -1;
    if (!rc) {
        struct fwd_batch b = {n_prompt, tokens, pos, seq, tables, n_prompt, rows};
        rc = model_forward(m, fc, &kv, &b, logits, err, errlen);
    }
    for (int i = n_prompt; !rc && i < n; i++) {
        struct fwd_batch b = {1, tokens + i, pos + i, seq, tables, 1, rows};
        rc = model_forward(m, fc, &kv, &b, logits + (size_t)i * (size_t)m->hp.n_vocab, err,
                           errlen);
    }
    free(kv.data);
    fwd_ctx_free(fc);
    pool_destroy(pool);
    model_free(m);
    return rc;
}

static void run_case(const struct cfg *c, uint64_t seed)
{
    char path[640];
    snprintf(path, sizeof path, "%s/%s.gguf", tmpdir, c->label);
    struct weights w;
    make_weights(c, &w, seed);
    if (write_model(c, &w, EXTRA_NONE, path)) {
        free_weights(c, &w);
        return;
    }
    const int n = c->n_prompt + c->n_steps, V = c->n_vocab;
    int32_t tokens[64];
    struct rng r;
    rng_seed(&r, seed ^ 0x5eed);
    for (int i = 0; i < n; i++)
        tokens[i] = (int32_t)(rng_next(&r) % (uint64_t)V);
    float *got = malloc(sizeof(float) * (size_t)n * (size_t)V);
    double *want = malloc(sizeof(double) * (size_t)n * (size_t)V);
    char err[512];
    int rc = engine_forward(path, tokens, c->n_prompt, n, got, err, sizeof err);
    CHECKF(rc == 0, "%s: %s", c->label, err);
    if (rc == 0) {
        ref_forward(c, &w, tokens, n, want);
        double worst = 0, span = 0;
        for (size_t i = 0; i < (size_t)n * (size_t)V; i++) {
            worst = fmax(worst, fabs(got[i] - want[i]));
            span = fmax(span, fabs(want[i]));
        }
        printf("%-14s %2d positions, logits up to %.2f, worst difference %.2e\n", c->label, n,
               span, worst);
        CHECKF(span > 1.0, "%s: logits too small to tell anything (%.3f)", c->label, span);
        CHECKF(worst < 2e-3 * fmax(span, 1.0), "%s: worst logit difference %.3e", c->label,
               worst);
    }

    if (c->qk_norm) {
        /* One q_norm weight of the last layer changed: the logits must move. */
        float *q_norm = w.l[c->n_layer - 1].q_norm;
        q_norm[1] *= 1.75f;
        char path2[700];
        snprintf(path2, sizeof path2, "%s/%s-qnorm.gguf", tmpdir, c->label);
        float *got2 = malloc(sizeof(float) * (size_t)n * (size_t)V);
        if (!write_model(c, &w, EXTRA_NONE, path2)) {
            rc = engine_forward(path2, tokens, c->n_prompt, n, got2, err, sizeof err);
            CHECKF(rc == 0, "%s: %s", c->label, err);
            double moved = 0;
            for (size_t i = 0; rc == 0 && i < (size_t)n * (size_t)V; i++)
                moved = fmax(moved, fabs(got2[i] - got[i]));
            printf("%-14s a changed q_norm weight moves the logits by up to %.3f\n", c->label,
                   moved);
            CHECKF(moved > 1e-2, "%s: q_norm change moved the logits by only %.2e", c->label,
                   moved);
            unlink(path2);
        }
        free(got2);
    }

    /* Files this engine would run wrongly are refused with a reason. */
    static const struct {
        enum extra e;
        const char *says;
    } refusals[] = {{EXTRA_UNKNOWN_TENSOR, "attn_norm_2"},
                    {EXTRA_EXPERTS, "experts"},
                    {EXTRA_YARN, "yarn"}};
    for (size_t k = 0; k < sizeof refusals / sizeof refusals[0]; k++) {
        char path3[700];
        snprintf(path3, sizeof path3, "%s/%s-bad.gguf", tmpdir, c->label);
        if (write_model(c, &w, refusals[k].e, path3))
            continue;
        struct model *m = NULL;
        rc = model_load(path3, &m, err, sizeof err);
        CHECKF(rc == PAGODA_EUNSUPPORTED && !m && strstr(err, refusals[k].says),
               "%s: expected a refusal naming '%s', got %d: %s", c->label, refusals[k].says, rc,
               rc ? err : "loaded");
        model_free(m);
        unlink(path3);
    }
    unlink(path);
    free(got);
    free(want);
    free_weights(c, &w);
}

int main(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/pagoda-archs-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    static const struct cfg cases[] = {
        /* label, arch, E, H, HKV, hd, F, V, L, rope dims, tied, qkv bias, out/ffn bias,
         * qk norm, freq factors, base, linear factor, prompt, steps */
        {"llama", "llama", 64, 4, 2, 16, 96, 97, 2, 16, false, false, true, false, true,
         500000.0f, 0.0f, 9, 4},
        {"llama_linear", "llama", 48, 6, 6, 8, 40, 61, 1, 0, true, true, false, false, false,
         10000.0f, 4.0f, 5, 3},
        {"qwen2", "qwen2", 48, 6, 2, 8, 80, 101, 2, 0, true, true, false, false, false,
         1000000.0f, 0.0f, 11, 3},
        {"qwen3", "qwen3", 64, 4, 1, 24, 72, 89, 3, 0, false, false, false, true, false,
         1000000.0f, 0.0f, 7, 5},
        {"qwen3_partial", "qwen3", 40, 2, 2, 32, 56, 53, 2, 12, true, false, false, true,
         false, 10000.0f, 0.0f, 17, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i], 7000 + i);
    rmdir(tmpdir);
    TEST_END();
}
