/*
 * model.c: reading a model's hyper-parameters from GGUF metadata and binding
 * its tensors, with every shape and type checked so the forward pass can trust
 * them.
 */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "ops/types.h"

struct owned_list {
    size_t n, cap;
    void **ptrs;
};

static void *owned_alloc(struct model *m, size_t bytes)
{
    struct owned_list *o = m->owned;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 16;
        void **p = realloc(o->ptrs, cap * sizeof *p);
        if (!p)
            return NULL;
        o->ptrs = p;
        o->cap = cap;
    }
    void *mem = malloc(bytes ? bytes : 1);
    if (mem)
        o->ptrs[o->n++] = mem;
    return mem;
}

static int get_int_key(const struct gguf_file *g, const char *arch, const char *suffix,
                       int64_t lo, int64_t hi, bool required, int64_t dflt, int64_t *out,
                       char *err, size_t errlen)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t v;
    if (!gguf_get_int(g, key, &v)) {
        if (gguf_find_kv(g, key))
            return err_set(err, errlen, PAGODA_EFORMAT, "metadata %s is not an integer", key);
        if (required)
            return err_set(err, errlen, PAGODA_EFORMAT, "metadata %s is missing", key);
        v = dflt;
    }
    if (v < lo || v > hi)
        return err_set(err, errlen, PAGODA_EFORMAT, "metadata %s = %lld is out of range [%lld, %lld]",
                       key, (long long)v, (long long)lo, (long long)hi);
    *out = v;
    return 0;
}

static int get_float_key(const struct gguf_file *g, const char *arch, const char *suffix,
                         double dflt, double *out, char *err, size_t errlen)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    double v;
    if (!gguf_get_float(g, key, &v)) {
        if (gguf_find_kv(g, key))
            return err_set(err, errlen, PAGODA_EFORMAT, "metadata %s is not a number", key);
        v = dflt;
    }
    if (!isfinite(v))
        return err_set(err, errlen, PAGODA_EFORMAT, "metadata %s is not finite", key);
    *out = v;
    return 0;
}

static const struct gguf_tensor *find_tensorf(const struct gguf_file *g, const char *fmt, int i)
{
    char name[96];
    snprintf(name, sizeof name, fmt, i);
    return gguf_find_tensor(g, name);
}

static int check_shape(const struct gguf_tensor *t, int64_t ne0, int64_t ne1, char *err,
                       size_t errlen)
{
    int64_t want[4] = {ne0, ne1, 1, 1};
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        int64_t have = d < t->n_dims ? t->ne[d] : 1;
        if (have != want[d])
            return err_set(err, errlen, PAGODA_EFORMAT,
                           "tensor '%.*s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]",
                           (int)t->name.len, t->name.ptr, (long long)t->ne[0],
                           (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                           (long long)ne0, (long long)ne1);
    }
    return 0;
}

static int bind_matrix(const struct gguf_file *g, const char *fmt, int layer, int64_t ne0,
                       int64_t ne1, struct mm_weight *w, char *err, size_t errlen)
{
    const struct gguf_tensor *t = find_tensorf(g, fmt, layer);
    if (!t) {
        char name[96];
        snprintf(name, sizeof name, fmt, layer);
        return err_set(err, errlen, PAGODA_EFORMAT, "tensor '%s' is missing", name);
    }
    int rc = check_shape(t, ne0, ne1, err, errlen);
    if (rc)
        return rc;
    const struct type_traits *tr = type_traits_get(t->type);
    if (!tr || t->type == PG_TYPE_Q8_1 || t->type == PG_TYPE_Q8_K)
        return err_set(err, errlen, PAGODA_EUNSUPPORTED, "tensor '%.*s' has unsupported type %s",
                       (int)t->name.len, t->name.ptr, type_name(t->type));
    w->type = t->type;
    w->data = t->data;
    w->n = ne1;
    w->k = ne0;
    w->row_stride = type_row_size(t->type, ne0);
    return 0;
}

/* A 1-D vector as F32: points into the file when it is F32, else converted. */
static int bind_vector(struct model *m, const char *fmt, int layer, int64_t n, bool optional,
                       const float **out, char *err, size_t errlen)
{
    const struct gguf_tensor *t = find_tensorf(m->gguf, fmt, layer);
    *out = NULL;
    if (!t) {
        if (optional)
            return 0;
        char name[96];
        snprintf(name, sizeof name, fmt, layer);
        return err_set(err, errlen, PAGODA_EFORMAT, "tensor '%s' is missing", name);
    }
    int rc = check_shape(t, n, 1, err, errlen);
    if (rc)
        return rc;
    if (t->type == PG_TYPE_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        *out = t->data;
        return 0;
    }
    const struct type_traits *tr = type_traits_get(t->type);
    if (!tr || n % tr->block_size)
        return err_set(err, errlen, PAGODA_EUNSUPPORTED, "tensor '%.*s' has unsupported type %s",
                       (int)t->name.len, t->name.ptr, type_name(t->type));
    float *v = owned_alloc(m, sizeof(float) * (size_t)n);
    if (!v)
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    tr->to_float(t->data, v, n);
    *out = v;
    return 0;
}

/* True when name is a tensor the model binds: anything else in the file
 * would be silently left out of the computation. */
static bool tensor_is_bound(struct gguf_str name, int n_layer)
{
    static const char *const global[] = {"token_embd.weight", "output_norm.weight",
                                          "output.weight", "rope_freqs.weight"};
    static const char *const per_layer[] = {
        "attn_norm.weight", "attn_q.weight",      "attn_k.weight",      "attn_v.weight",
        "attn_output.weight", "attn_q.bias",      "attn_k.bias",        "attn_v.bias",
        "attn_output.bias", "attn_q_norm.weight", "attn_k_norm.weight", "ffn_norm.weight",
        "ffn_gate.weight",  "ffn_up.weight",      "ffn_down.weight",    "ffn_gate.bias",
        "ffn_up.bias",      "ffn_down.bias"};
    for (size_t i = 0; i < sizeof global / sizeof global[0]; i++)
        if (gguf_str_eq(name, global[i]))
            return true;
    if (name.len < 6 || memcmp(name.ptr, "blk.", 4))
        return false;
    size_t at = 4;
    long layer = 0;
    while (at < name.len && at < 12 && name.ptr[at] >= '0' && name.ptr[at] <= '9')
        layer = layer * 10 + (name.ptr[at++] - '0');
    if (at == 4 || at >= name.len || name.ptr[at] != '.' || layer >= n_layer ||
        (name.ptr[4] == '0' && at > 5))
        return false;
    struct gguf_str rest = {name.len - at - 1, name.ptr + at + 1};
    for (size_t i = 0; i < sizeof per_layer / sizeof per_layer[0]; i++)
        if (gguf_str_eq(rest, per_layer[i]))
            return true;
    return false;
}

static int check_all_tensors_used(const struct gguf_file *g, const struct model_hparams *hp,
                                  char *err, size_t errlen)
{
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct gguf_tensor *t = &g->tensors[i];
        if (!tensor_is_bound(t->name, hp->n_layer))
            return err_set(err, errlen, PAGODA_EUNSUPPORTED,
                           "tensor '%.*s' is not part of a %s model pagoda can run",
                           (int)(t->name.len > 80 ? 80 : t->name.len), t->name.ptr,
                           hp->arch_name);
    }
    return 0;
}

static int read_hparams(const struct gguf_file *g, struct model_hparams *hp, char *err,
                        size_t errlen)
{
    struct gguf_str arch;
    if (!gguf_get_str(g, "general.architecture", &arch))
        return err_set(err, errlen, PAGODA_EFORMAT, "metadata general.architecture is missing");
    if (arch.len >= sizeof hp->arch_name)
        return err_set(err, errlen, PAGODA_EUNSUPPORTED, "unsupported architecture (name too long)");
    memcpy(hp->arch_name, arch.ptr, arch.len);
    hp->arch_name[arch.len] = '\0';
    const char *a = hp->arch_name;
    if (!strcmp(a, "llama") || !strcmp(a, "mistral"))
        hp->arch = ARCH_LLAMA;
    else if (!strcmp(a, "qwen2"))
        hp->arch = ARCH_QWEN2;
    else if (!strcmp(a, "qwen3"))
        hp->arch = ARCH_QWEN3;
    else
        return err_set(err, errlen, PAGODA_EUNSUPPORTED,
                       "unsupported architecture '%s' (pagoda runs llama, mistral, qwen2, qwen3)", a);
    hp->rope_neox = hp->arch != ARCH_LLAMA;

    int64_t v;
    int rc;
#define INTKEY(field, suffix, lo, hi, req, dflt)                                             \
    do {                                                                                     \
        rc = get_int_key(g, a, suffix, lo, hi, req, dflt, &v, err, errlen);                  \
        if (rc)                                                                              \
            return rc;                                                                       \
        hp->field = (int)v;                                                                  \
    } while (0)
    INTKEY(n_embd, "embedding_length", 1, 1 << 20, true, 0);
    INTKEY(n_layer, "block_count", 1, 4096, true, 0);
    INTKEY(n_ff, "feed_forward_length", 1, 1 << 22, true, 0);
    INTKEY(n_head, "attention.head_count", 1, 4096, true, 0);
    INTKEY(n_head_kv, "attention.head_count_kv", 1, hp->n_head, false, hp->n_head);
    INTKEY(n_ctx_train, "context_length", 1, 1 << 30, false, 4096);
    INTKEY(n_expert, "expert_count", 0, 1 << 16, false, 0);
    if (hp->n_expert > 0)
        return err_set(err, errlen, PAGODA_EUNSUPPORTED,
                       "mixture-of-experts models (%s.expert_count = %d) are not supported", a,
                       hp->n_expert);
    if (hp->n_head % hp->n_head_kv)
        return err_set(err, errlen, PAGODA_EFORMAT, "head_count %d is not a multiple of head_count_kv %d",
                       hp->n_head, hp->n_head_kv);
    int dflt_hd = hp->n_embd % hp->n_head == 0 ? hp->n_embd / hp->n_head : 0;
    INTKEY(head_dim, "attention.key_length", 1, 4096, dflt_hd == 0, dflt_hd);
    rc = get_int_key(g, a, "attention.value_length", 1, 4096, false, hp->head_dim, &v, err, errlen);
    if (rc)
        return rc;
    if (v != hp->head_dim)
        return err_set(err, errlen, PAGODA_EUNSUPPORTED, "key length %d differs from value length %lld",
                       hp->head_dim, (long long)v);
    INTKEY(rope_dims, "rope.dimension_count", 2, hp->head_dim, false, hp->head_dim);
    if (hp->rope_dims % 2)
        return err_set(err, errlen, PAGODA_EFORMAT, "rope.dimension_count %d is odd", hp->rope_dims);
#undef INTKEY
    double f;
    if ((rc = get_float_key(g, a, "attention.layer_norm_rms_epsilon", 1e-5, &f, err, errlen)))
        return rc;
    if (f <= 0 || f > 1)
        return err_set(err, errlen, PAGODA_EFORMAT, "rms epsilon %g is out of range", f);
    hp->rms_eps = (float)f;
    if ((rc = get_float_key(g, a, "rope.freq_base", 10000.0, &f, err, errlen)))
        return rc;
    if (f <= 1)
        return err_set(err, errlen, PAGODA_EFORMAT, "rope.freq_base %g is out of range", f);
    hp->rope_base = (float)f;
    /* A scaling factor divides every position unless the type says another
     * scheme: an absent type means linear, and "none" with a factor is still
     * read as linear, as llama.cpp reads these keys. Llama 3's scaling lives
     * in the rope_freqs tensor, not in these keys. */
    hp->rope_scale = 1.0f;
    char key[128];
    struct gguf_str st = {0, ""};
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    if (gguf_find_kv(g, key) && !gguf_get_str(g, key, &st))
        return err_set(err, errlen, PAGODA_EFORMAT, "metadata %s is not a string", key);
    bool typed = gguf_find_kv(g, key) != NULL;
    if (typed && !gguf_str_eq(st, "none") && !gguf_str_eq(st, "linear") &&
        !gguf_str_eq(st, "llama3"))
        return err_set(err, errlen, PAGODA_EUNSUPPORTED, "rope scaling '%.*s' is not supported",
                       (int)st.len, st.ptr);
    snprintf(key, sizeof key, "%s.rope.scaling.factor", a);
    const char *factor_key = gguf_find_kv(g, key) ? "rope.scaling.factor" : "rope.scale_linear";
    if ((rc = get_float_key(g, a, factor_key, 0.0, &f, err, errlen)))
        return rc;
    if (f < 0 || (f > 0 && f < 1e-6) || f > 1e6)
        return err_set(err, errlen, PAGODA_EFORMAT, "rope scaling factor %g is out of range", f);
    if (f > 0 && !(typed && gguf_str_eq(st, "llama3")))
        hp->rope_scale = (float)(1.0 / f);
    return 0;
}

int model_from_gguf(struct gguf_file *g, struct model **out, char *err, size_t errlen)
{
    *out = NULL;
    struct model *m = calloc(1, sizeof *m);
    struct owned_list *o = calloc(1, sizeof *o);
    if (!m || !o) {
        free(m);
        free(o);
        gguf_close(g);
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    }
    m->gguf = g;
    m->owned = o;
    struct model_hparams *hp = &m->hp;
    int rc = read_hparams(g, hp, err, errlen);
    if (rc)
        goto fail;

    const struct gguf_tensor *te = gguf_find_tensor(g, "token_embd.weight");
    if (!te) {
        rc = err_set(err, errlen, PAGODA_EFORMAT, "tensor 'token_embd.weight' is missing");
        goto fail;
    }
    if (te->n_dims != 2 || te->ne[0] != hp->n_embd || te->ne[1] < 1 || te->ne[1] > (1 << 24)) {
        rc = err_set(err, errlen, PAGODA_EFORMAT,
                     "tensor 'token_embd.weight' has shape [%lld, %lld], expected [%d, n_vocab]",
                     (long long)te->ne[0], (long long)te->ne[1], hp->n_embd);
        goto fail;
    }
    hp->n_vocab = (int)te->ne[1];
    if ((rc = bind_matrix(g, "token_embd.weight", 0, hp->n_embd, hp->n_vocab, &m->output, err, errlen)))
        goto fail;
    m->embd_type = m->output.type;
    m->embd_data = m->output.data;
    m->embd_row_stride = m->output.row_stride;
    if (gguf_find_tensor(g, "output.weight") &&
        (rc = bind_matrix(g, "output.weight", 0, hp->n_embd, hp->n_vocab, &m->output, err, errlen)))
        goto fail;
    if ((rc = bind_vector(m, "output_norm.weight", 0, hp->n_embd, false, &m->output_norm, err, errlen)))
        goto fail;
    if ((rc = bind_vector(m, "rope_freqs.weight", 0, hp->rope_dims / 2, true,
                          &m->rope_freq_factors, err, errlen)))
        goto fail;

    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) {
        rc = err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
        goto fail;
    }
    const int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim,
                  KV = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff;
    for (int i = 0; i < hp->n_layer; i++) {
        struct model_layer *l = &m->layers[i];
        if ((rc = bind_vector(m, "blk.%d.attn_norm.weight", i, E, false, &l->attn_norm, err, errlen)) ||
            (rc = bind_matrix(g, "blk.%d.attn_q.weight", i, E, Q, &l->wq, err, errlen)) ||
            (rc = bind_matrix(g, "blk.%d.attn_k.weight", i, E, KV, &l->wk, err, errlen)) ||
            (rc = bind_matrix(g, "blk.%d.attn_v.weight", i, E, KV, &l->wv, err, errlen)) ||
            (rc = bind_matrix(g, "blk.%d.attn_output.weight", i, Q, E, &l->wo, err, errlen)) ||
            (rc = bind_vector(m, "blk.%d.attn_q.bias", i, Q, true, &l->bq, err, errlen)) ||
            (rc = bind_vector(m, "blk.%d.attn_k.bias", i, KV, true, &l->bk, err, errlen)) ||
            (rc = bind_vector(m, "blk.%d.attn_v.bias", i, KV, true, &l->bv, err, errlen)) ||
            (rc = bind_vector(m, "blk.%d.attn_output.bias", i, E, true, &l->bo, err, errlen)) ||
            (rc = bind_vector(m, "blk.%d.attn_q_norm.weight", i, hp->head_dim,
                              hp->arch != ARCH_QWEN3, &l->q_norm, err, errlen)) ||
            (rc = bind_vector(m, "blk.%d.attn_k_norm.weight", i, hp->head_dim,
                              hp->arch != ARCH_QWEN3, &l->k_norm, err, errlen)) ||
            (rc = bind_vector(m, "blk.%d.ffn_norm.weight", i, E, false, &l->ffn_norm, err, errlen)) ||
            (rc = bind_matrix(g, "blk.%d.ffn_gate.weight", i, E, F, &l->w_gate, err, errlen)) ||
            (rc = bind_matrix(g, "blk.%d.ffn_up.weight", i, E, F, &l->w_up, err, errlen)) ||
            (rc = bind_matrix(g, "blk.%d.ffn_down.weight", i, F, E, &l->w_down, err, errlen)) ||
            (rc = bind_vector(m, "blk.%d.ffn_gate.bias", i, F, true, &l->b_gate, err, errlen)) ||
            (rc = bind_vector(m, "blk.%d.ffn_up.bias", i, F, true, &l->b_up, err, errlen)) ||
            (rc = bind_vector(m, "blk.%d.ffn_down.bias", i, E, true, &l->b_down, err, errlen)))
            goto fail;
    }
    if ((rc = check_all_tensors_used(g, hp, err, errlen)))
        goto fail;
    *out = m;
    return 0;
fail:
    model_free(m);
    return rc;
}

int model_load(const char *path, struct model **out, char *err, size_t errlen)
{
    struct gguf_file *g;
    *out = NULL;
    int rc = gguf_open(path, &g, err, errlen);
    if (rc)
        return rc;
    rc = model_from_gguf(g, out, err, errlen);
    if (rc)
        err_prefix(err, errlen, "%s", path);
    return rc;
}

void model_free(struct model *m)
{
    if (!m)
        return;
    struct owned_list *o = m->owned;
    if (o) {
        for (size_t i = 0; i < o->n; i++)
            free(o->ptrs[i]);
        free(o->ptrs);
        free(o);
    }
    free(m->layers);
    gguf_close(m->gguf);
    free(m);
}
