/*
 * cmd_synth.c: `pagoda synth`: writes a llama, qwen2 or qwen3 GGUF model of
 * a real shape with seeded random weights (N(0, 0.02), norms 1) and the
 * tokenizer of another GGUF file, quantized with a preset's per-tensor mix.
 * Used to make benchmark models of any size without downloading them, and
 * models of each architecture's particulars (qwen2's Q/K/V biases, qwen3's
 * per-head Q/K norms and free head size, Llama 3's rope frequency factors)
 * to check the engine on. Keys and tensor names are those the usual
 * converter writes for each architecture, so other engines load the files.
 *
 * Every row has its own generator seeded from (seed, tensor, row), so the
 * file is byte-identical for a seed whatever the thread count. Weights are
 * generated and quantized row by row straight into each tensor's output
 * buffer: only the quantized model is ever held in memory.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/pool.h"
#include "base/rng.h"
#include "cli/cli.h"
#include "gguf/gguf.h"
#include "model/quant_recipe.h"
#include "ops/ops.h"
#include "ops/quants.h"
#include "ops/types.h"

#define SYNTH_STD 0.02f
/* Biases and per-head norm weights are drawn large enough that leaving one
 * out changes the logits visibly. */
#define SYNTH_BIAS_STD 0.5f
#define SYNTH_QK_NORM_STD 0.25f

enum synth_arch { SYNTH_LLAMA, SYNTH_QWEN2, SYNTH_QWEN3 };
static const char *const synth_arch_names[] = {"llama", "qwen2", "qwen3"};

/* What a tensor holds: a matrix of N(0, 0.02) rows or a 1-D vector. */
enum synth_fill { FILL_MATRIX, FILL_ONES, FILL_BIAS, FILL_QK_NORM, FILL_ROPE_FREQS };
#define SYNTH_CHUNK_ROWS 16 /* rows a thread takes at a time */

struct synth_opts {
    enum synth_arch arch;
    long long n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, ctx, threads;
    long long head_dim; /* 0 until parsed: then n_embd / n_head unless given */
    long long rope_orig_ctx;
    unsigned long long seed;
    double rope_theta, rms_eps, rope_factor;
    const char *vocab_from, *type, *out, *name;
    int tied, rope_llama3, rope_linear, head_dim_given;
};

struct synth_tensor {
    char name[64];
    int n_dims;
    int64_t ne[2]; /* ne[0] elements per row, ne[1] rows */
    enum synth_fill fill;
    int type;
    void *data;
    size_t nbytes;
};

static void synth_usage(FILE *f)
{
    fprintf(f,
            "usage: pagoda synth --arch llama|qwen2|qwen3 --n-embd N --n-layer L --n-head H\n"
            "                    --n-head-kv HK --n-ff F (--vocab-from FILE.gguf | --n-vocab V)\n"
            "                    [--head-dim D] [--type PRESET] [--seed S] [--ctx 2048]\n"
            "                    [--rope-theta T] [--rope-scaling linear|llama3 [--rope-factor 8]\n"
            "                    [--rope-orig-ctx 8192]] [--rms-eps E] [--tied] [--name NAME]\n"
            "                    [-t THREADS] -o OUT.gguf\n\n"
            "Writes a model of that shape with seeded random weights N(0, 0.02)\n"
            "(norm weights 1). qwen2 adds random Q/K/V biases; qwen3 adds per-head\n"
            "Q/K norm weights (random around 1) and takes --head-dim (llama too; the\n"
            "default is n_embd / n_head). --rope-scaling llama3 (llama only) writes\n"
            "Llama 3.1-style rope frequency factors (low/high frequency factors 1 and 4);\n"
            "--rope-scaling linear divides positions by the factor (rope.scaling.* keys).\n"
            "--vocab-from copies every tokenizer.* key of a GGUF file (a vocab-only\n"
            "file is enough) and sets the vocabulary size; --n-vocab alone writes no\n"
            "tokenizer. --tied leaves out output.weight (the token embedding is the\n"
            "output matrix). The same seed gives the same bytes.\n\npresets:");
    for (const char *const *p = quant_preset_names(); *p; p++)
        fprintf(f, " %s", *p);
    fprintf(f, "\n(default q4_k_m)\n");
}

/* Seeds one row's generator from the model seed, the tensor and the row. */
static void row_rng(struct rng *r, uint64_t seed, int tensor, int64_t row)
{
    uint64_t x = seed ^ 0x7061676f64617379ull;
    uint64_t a = rng_splitmix64(&x);
    x = a ^ ((uint64_t)(uint32_t)tensor << 40) ^ (uint64_t)row;
    rng_seed(r, rng_splitmix64(&x));
}

/* Fills v with n normal values of the given standard deviation (Box-Muller,
 * both values of each pair used). */
static void fill_normal(struct rng *r, float *v, int64_t n, float std)
{
    const float two_pi = 6.28318530717958647692f;
    int64_t i = 0;
    while (i < n) {
        const float u1 = ((float)(rng_next(r) >> 40) + 1.0f) * (1.0f / 16777217.0f);
        const float u2 = (float)(rng_next(r) >> 40) * (1.0f / 16777216.0f);
        const float m = std * sqrtf(-2.0f * logf(u1));
        float sn, cs;
        sincosf(two_pi * u2, &sn, &cs);
        v[i++] = m * cs;
        if (i < n)
            v[i++] = m * sn;
    }
}

struct synth_job {
    const struct synth_tensor *t;
    int index;
    uint64_t seed;
    size_t row_size;
    float **scratch; /* one row of ne[0] floats per thread */
    _Atomic int64_t next_row;
};

static void synth_worker(void *ctx, int ith, int nth)
{
    (void)nth;
    struct synth_job *job = ctx;
    const struct synth_tensor *t = job->t;
    float *row = job->scratch[ith];
    for (;;) {
        const int64_t r0 = atomic_fetch_add(&job->next_row, SYNTH_CHUNK_ROWS);
        if (r0 >= t->ne[1])
            break;
        const int64_t r1 = r0 + SYNTH_CHUNK_ROWS < t->ne[1] ? r0 + SYNTH_CHUNK_ROWS : t->ne[1];
        for (int64_t r = r0; r < r1; r++) {
            struct rng g;
            row_rng(&g, job->seed, job->index, r);
            fill_normal(&g, row, t->ne[0], SYNTH_STD);
            quantize_rows(t->type, row, (uint8_t *)t->data + (size_t)r * job->row_size, 1,
                          t->ne[0]);
        }
    }
}

static int parse_opts(int argc, char **argv, struct synth_opts *o)
{
    memset(o, 0, sizeof *o);
    o->ctx = 2048;
    o->seed = 42;
    o->rope_theta = 10000.0;
    o->rms_eps = 1e-5;
    o->type = "q4_k_m";
    o->n_head_kv = -1;
    o->n_vocab = -1;
    o->threads = 0;
    o->rope_factor = 8.0;
    o->rope_orig_ctx = 8192;
    const char *rope_scaling = NULL;
    const char *arch = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            synth_usage(stdout);
            return 2;
        }
        if (!strcmp(a, "--tied")) {
            o->tied = 1;
            continue;
        }
        if (i + 1 >= argc)
            return cli_fail("synth: %s needs a value (see pagoda synth --help)", a);
        const char *v = argv[++i];
        struct {
            const char *flag;
            long long *dst, lo, hi;
        } ints[] = {
            {"--n-embd", &o->n_embd, 1, 1 << 16},   {"--n-layer", &o->n_layer, 1, 4096},
            {"--n-head", &o->n_head, 1, 4096},      {"--n-head-kv", &o->n_head_kv, 1, 4096},
            {"--n-ff", &o->n_ff, 1, 1 << 20},       {"--n-vocab", &o->n_vocab, 1, 1 << 24},
            {"--ctx", &o->ctx, 1, 1 << 24},         {"-t", &o->threads, 1, 1024},
            {"--threads", &o->threads, 1, 1024},    {"--head-dim", &o->head_dim, 2, 4096},
            {"--rope-orig-ctx", &o->rope_orig_ctx, 1, 1 << 24},
        };
        int done = 0;
        for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
            if (strcmp(a, ints[k].flag))
                continue;
            if (cli_parse_int(v, ints[k].lo, ints[k].hi, ints[k].dst))
                return cli_fail("synth: %s must be an integer in [%lld, %lld], got '%s'", a,
                                ints[k].lo, ints[k].hi, v);
            done = 1;
            if (!strcmp(a, "--head-dim"))
                o->head_dim_given = 1;
        }
        if (done)
            continue;
        if (!strcmp(a, "--seed")) {
            long long s;
            if (cli_parse_int(v, 0, INT64_MAX, &s))
                return cli_fail("synth: --seed must be a non-negative integer, got '%s'", v);
            o->seed = (unsigned long long)s;
        } else if (!strcmp(a, "--rope-theta")) {
            if (cli_parse_float(v, &o->rope_theta) || !(o->rope_theta > 1.0) ||
                o->rope_theta > 1e12)
                return cli_fail("synth: --rope-theta must be a number in (1, 1e12], got '%s'",
                                v);
        } else if (!strcmp(a, "--rms-eps")) {
            if (cli_parse_float(v, &o->rms_eps) || !(o->rms_eps > 0.0) || o->rms_eps >= 1.0)
                return cli_fail("synth: --rms-eps must be a number in (0, 1), got '%s'", v);
        } else if (!strcmp(a, "--rope-factor")) {
            if (cli_parse_float(v, &o->rope_factor) || !(o->rope_factor >= 1.0) ||
                o->rope_factor > 1e6)
                return cli_fail("synth: --rope-factor must be a number in [1, 1e6], got '%s'", v);
        } else if (!strcmp(a, "--rope-scaling")) {
            rope_scaling = v;
        } else if (!strcmp(a, "--arch")) {
            arch = v;
        } else if (!strcmp(a, "--vocab-from")) {
            o->vocab_from = v;
        } else if (!strcmp(a, "--type")) {
            o->type = v;
        } else if (!strcmp(a, "--name")) {
            o->name = v;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            o->out = v;
        } else {
            return cli_fail("synth: unknown option '%s' (see pagoda synth --help)", a);
        }
    }
    if (!arch)
        return cli_fail("synth: --arch is required (llama, qwen2 or qwen3)");
    int found = 0;
    for (int k = 0; k < 3; k++)
        if (!strcmp(arch, synth_arch_names[k])) {
            o->arch = (enum synth_arch)k;
            found = 1;
        }
    if (!found)
        return cli_fail("synth: unsupported --arch '%s' (llama, qwen2 or qwen3)", arch);
    if (rope_scaling) {
        if (!strcmp(rope_scaling, "llama3"))
            o->rope_llama3 = 1;
        else if (!strcmp(rope_scaling, "linear"))
            o->rope_linear = 1;
        else if (strcmp(rope_scaling, "none"))
            return cli_fail("synth: unsupported --rope-scaling '%s' (none, linear or llama3)",
                            rope_scaling);
    }
    if (o->rope_llama3 && o->arch != SYNTH_LLAMA)
        return cli_fail("synth: --rope-scaling llama3 needs --arch llama");
    /* The qwen2 layout sizes Q by n_embd in common loaders. */
    if (o->head_dim_given && o->arch == SYNTH_QWEN2)
        return cli_fail("synth: --head-dim needs --arch llama or qwen3");
    const struct {
        long long v;
        const char *flag;
    } req[] = {{o->n_embd, "--n-embd"}, {o->n_layer, "--n-layer"}, {o->n_head, "--n-head"},
               {o->n_ff, "--n-ff"}};
    for (size_t k = 0; k < sizeof req / sizeof req[0]; k++)
        if (req[k].v <= 0)
            return cli_fail("synth: %s is required", req[k].flag);
    if (o->n_head_kv < 0)
        o->n_head_kv = o->n_head;
    if (!o->out)
        return cli_fail("synth: -o OUT.gguf is required");
    if (!o->vocab_from && o->n_vocab < 0)
        return cli_fail("synth: --vocab-from FILE.gguf (or --n-vocab V) is required");
    if (!o->head_dim_given) {
        if (o->n_embd % o->n_head)
            return cli_fail("synth: --n-embd %lld is not a multiple of --n-head %lld (or give "
                            "--head-dim)",
                            o->n_embd, o->n_head);
        o->head_dim = o->n_embd / o->n_head;
    }
    if (o->head_dim % 2)
        return cli_fail("synth: head size %lld must be even for RoPE", o->head_dim);
    if (o->n_head * o->head_dim > (1 << 20))
        return cli_fail("synth: n_head x head size %lld is too large", o->n_head * o->head_dim);
    if (o->n_head_kv > o->n_head)
        return cli_fail("synth: --n-head-kv %lld exceeds --n-head %lld", o->n_head_kv,
                        o->n_head);
    if (o->n_head % o->n_head_kv)
        return cli_fail("synth: --n-head %lld is not a multiple of --n-head-kv %lld", o->n_head,
                        o->n_head_kv);
    if (!quant_preset_valid(o->type))
        return cli_fail("synth: unknown --type '%s' (see pagoda synth --help)", o->type);
    return 0;
}

/* Opens the vocabulary file and returns its token count through n_tokens. */
static int open_vocab(const char *path, struct gguf_file **out, long long *n_tokens)
{
    char err[512];
    struct gguf_file *g = NULL;
    if (gguf_open(path, &g, err, sizeof err) < 0)
        return cli_fail("synth: --vocab-from: %s", err);
    const struct gguf_value *tokens = gguf_get_arr(g, "tokenizer.ggml.tokens");
    if (!tokens || tokens->v.arr.type != GGUF_TYPE_STRING || tokens->v.arr.n == 0 ||
        tokens->v.arr.n > (1u << 24)) {
        gguf_close(g);
        return cli_fail("synth: %s has no usable tokenizer.ggml.tokens array", path);
    }
    *n_tokens = (long long)tokens->v.arr.n;
    *out = g;
    return 0;
}

/* Copies every tokenizer.* key of the vocabulary file. */
static int copy_vocab(struct gguf_writer *w, const struct gguf_file *g, const char *path)
{
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const struct gguf_kv *kv = &g->kv[i];
        if (kv->key.len < 10 || kv->key.len > 255 || memcmp(kv->key.ptr, "tokenizer.", 10))
            continue;
        char key[256];
        memcpy(key, kv->key.ptr, kv->key.len);
        key[kv->key.len] = 0;
        if (gguf_writer_set_value(w, key, &kv->value) < 0)
            return cli_fail("synth: cannot copy %s from %s", key, path);
    }
    return 0;
}

static int set_meta(struct gguf_writer *w, const struct synth_opts *o)
{
    const char *arch = synth_arch_names[o->arch];
    char name[128];
    if (o->name)
        snprintf(name, sizeof name, "%s", o->name);
    else
        snprintf(name, sizeof name, "synth-%s-%lldx%lld-%s", arch, o->n_embd, o->n_layer,
                 o->type);
    int rc = 0;
    char key[96];
#define ARCH_KEY(suffix) (snprintf(key, sizeof key, "%s.%s", arch, (suffix)), key)
    rc |= gguf_writer_set_str(w, "general.architecture", arch);
    rc |= gguf_writer_set_str(w, "general.name", name);
    rc |= gguf_writer_set_u32(w, "general.file_type", (uint32_t)quant_preset_file_type(o->type));
    rc |= gguf_writer_set_u32(w, "general.quantization_version", 2);
    rc |= gguf_writer_set_u32(w, ARCH_KEY("context_length"), (uint32_t)o->ctx);
    rc |= gguf_writer_set_u32(w, ARCH_KEY("embedding_length"), (uint32_t)o->n_embd);
    rc |= gguf_writer_set_u32(w, ARCH_KEY("block_count"), (uint32_t)o->n_layer);
    rc |= gguf_writer_set_u32(w, ARCH_KEY("feed_forward_length"), (uint32_t)o->n_ff);
    rc |= gguf_writer_set_u32(w, ARCH_KEY("attention.head_count"), (uint32_t)o->n_head);
    rc |= gguf_writer_set_u32(w, ARCH_KEY("attention.head_count_kv"), (uint32_t)o->n_head_kv);
    rc |= gguf_writer_set_f32(w, ARCH_KEY("rope.freq_base"), (float)o->rope_theta);
    /* The llama converter also writes the rotated size and the vocabulary
     * size; the qwen ones leave them to their defaults (the whole head, the
     * token count). */
    if (o->arch == SYNTH_LLAMA)
        rc |= gguf_writer_set_u32(w, ARCH_KEY("rope.dimension_count"), (uint32_t)o->head_dim);
    rc |= gguf_writer_set_f32(w, ARCH_KEY("attention.layer_norm_rms_epsilon"), (float)o->rms_eps);
    if (o->arch == SYNTH_LLAMA)
        rc |= gguf_writer_set_u32(w, ARCH_KEY("vocab_size"), (uint32_t)o->n_vocab);
    /* A head size that is not n_embd / n_head is declared, as converters do
     * when the model's config names one (always for qwen3). */
    if (o->head_dim_given || o->arch == SYNTH_QWEN3) {
        rc |= gguf_writer_set_u32(w, ARCH_KEY("attention.key_length"), (uint32_t)o->head_dim);
        rc |= gguf_writer_set_u32(w, ARCH_KEY("attention.value_length"), (uint32_t)o->head_dim);
    }
    if (o->rope_linear) {
        rc |= gguf_writer_set_str(w, ARCH_KEY("rope.scaling.type"), "linear");
        rc |= gguf_writer_set_f32(w, ARCH_KEY("rope.scaling.factor"), (float)o->rope_factor);
    }
#undef ARCH_KEY
    return rc ? cli_fail("synth: cannot set metadata") : 0;
}

/* Most tensors one model can have: see list_tensors. */
static size_t max_tensors(const struct synth_opts *o)
{
    return (size_t)o->n_layer * 14 + 4;
}

/* The model's tensors in file order; returns the count. Llama 3's rope
 * frequency factors come first, as the converter writes them. */
static int list_tensors(const struct synth_opts *o, struct synth_tensor *t)
{
    const int64_t e = o->n_embd, q = o->head_dim * o->n_head, kv = o->head_dim * o->n_head_kv,
                  ff = o->n_ff, nv = o->n_vocab, hd = o->head_dim;
    int n = 0;
#define ADD(nd, fl, e0, e1, ...)                                                             \
    do {                                                                                     \
        snprintf(t[n].name, sizeof t[n].name, __VA_ARGS__);                                  \
        t[n].n_dims = (nd);                                                                  \
        t[n].fill = (fl);                                                                    \
        t[n].ne[0] = (e0);                                                                   \
        t[n].ne[1] = (e1);                                                                   \
        n++;                                                                                 \
    } while (0)
    if (o->rope_llama3)
        ADD(1, FILL_ROPE_FREQS, hd / 2, 1, "rope_freqs.weight");
    ADD(2, FILL_MATRIX, e, nv, "token_embd.weight");
    for (int l = 0; l < o->n_layer; l++) {
        ADD(1, FILL_ONES, e, 1, "blk.%d.attn_norm.weight", l);
        ADD(2, FILL_MATRIX, e, q, "blk.%d.attn_q.weight", l);
        ADD(2, FILL_MATRIX, e, kv, "blk.%d.attn_k.weight", l);
        ADD(2, FILL_MATRIX, e, kv, "blk.%d.attn_v.weight", l);
        if (o->arch == SYNTH_QWEN2) {
            ADD(1, FILL_BIAS, q, 1, "blk.%d.attn_q.bias", l);
            ADD(1, FILL_BIAS, kv, 1, "blk.%d.attn_k.bias", l);
            ADD(1, FILL_BIAS, kv, 1, "blk.%d.attn_v.bias", l);
        }
        if (o->arch == SYNTH_QWEN3) {
            ADD(1, FILL_QK_NORM, hd, 1, "blk.%d.attn_q_norm.weight", l);
            ADD(1, FILL_QK_NORM, hd, 1, "blk.%d.attn_k_norm.weight", l);
        }
        ADD(2, FILL_MATRIX, q, e, "blk.%d.attn_output.weight", l);
        ADD(1, FILL_ONES, e, 1, "blk.%d.ffn_norm.weight", l);
        ADD(2, FILL_MATRIX, e, ff, "blk.%d.ffn_gate.weight", l);
        ADD(2, FILL_MATRIX, e, ff, "blk.%d.ffn_up.weight", l);
        ADD(2, FILL_MATRIX, ff, e, "blk.%d.ffn_down.weight", l);
    }
    ADD(1, FILL_ONES, e, 1, "output_norm.weight");
    if (!o->tied)
        ADD(2, FILL_MATRIX, e, nv, "output.weight");
#undef ADD
    return n;
}

/* Fills a 1-D F32 tensor; random ones draw from their own seeded generator. */
static void fill_vector(const struct synth_opts *o, const struct synth_tensor *t, int index)
{
    float *f = t->data;
    const int64_t n = t->ne[0];
    struct rng g;
    row_rng(&g, o->seed, index, 0);
    switch (t->fill) {
    case FILL_BIAS:
        fill_normal(&g, f, n, SYNTH_BIAS_STD);
        break;
    case FILL_QK_NORM:
        fill_normal(&g, f, n, SYNTH_QK_NORM_STD);
        for (int64_t k = 0; k < n; k++)
            f[k] += 1.0f;
        break;
    case FILL_ROPE_FREQS:
        /* Llama 3.1's low and high frequency factors. */
        op_rope_llama3_factors(f, (int)o->head_dim, (float)o->rope_theta, (float)o->rope_factor,
                               1.0f, 4.0f, (int)o->rope_orig_ctx);
        break;
    default:
        for (int64_t k = 0; k < n; k++)
            f[k] = 1.0f;
        break;
    }
}

int cmd_synth(int argc, char **argv)
{
    struct synth_opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc == 2 ? 0 : rc;

    const double t0 = clock_now();
    struct gguf_writer *w = gguf_writer_create();
    if (!w)
        return cli_fail("synth: out of memory");
    struct synth_tensor *tensors = NULL;
    struct pool *pool = NULL;
    struct gguf_file *vocab = NULL;
    float **scratch = NULL;
    int n_tensors = 0, n_threads = 0;
    char err[512];

    if (o.vocab_from) {
        long long n_tokens = 0;
        if ((rc = open_vocab(o.vocab_from, &vocab, &n_tokens)))
            goto done;
        if (o.n_vocab >= 0 && o.n_vocab != n_tokens) {
            rc = cli_fail("synth: --n-vocab %lld differs from the %lld tokens of %s", o.n_vocab,
                          n_tokens, o.vocab_from);
            goto done;
        }
        o.n_vocab = n_tokens;
    }
    /* The model's own keys first, then the tokenizer's, as in converted files. */
    if ((rc = set_meta(w, &o)) || (vocab && (rc = copy_vocab(w, vocab, o.vocab_from))))
        goto done;

    tensors = calloc(max_tensors(&o), sizeof *tensors);
    if (!tensors) {
        rc = cli_fail("synth: out of memory");
        goto done;
    }
    n_tensors = list_tensors(&o, tensors);
    const struct quant_recipe_model qm = {(int)o.n_layer, (int)(o.n_head / o.n_head_kv),
                                          o.tied != 0};
    size_t total = 0;
    int64_t max_ne0 = 0;
    for (int i = 0; i < n_tensors; i++) {
        struct synth_tensor *t = &tensors[i];
        t->type = t->fill == FILL_MATRIX
                      ? quant_recipe_type(o.type, t->name, t->n_dims, t->ne[0], &qm)
                      : PG_TYPE_F32;
        const size_t rs = type_row_size(t->type, t->ne[0]);
        if (t->type < 0 || rs == 0) {
            rc = cli_fail("synth: no type for %s", t->name);
            goto done;
        }
        t->nbytes = rs * (size_t)t->ne[1];
        total += t->nbytes;
        if (t->ne[0] > max_ne0)
            max_ne0 = t->ne[0];
    }

    pool = pool_create((int)o.threads, err, sizeof err);
    if (!pool) {
        rc = cli_fail("synth: %s", err);
        goto done;
    }
    n_threads = pool_size(pool);
    scratch = calloc((size_t)n_threads, sizeof *scratch);
    for (int i = 0; scratch && i < n_threads; i++)
        if (!(scratch[i] = malloc((size_t)max_ne0 * sizeof(float))))
            break;
    if (!scratch || !scratch[n_threads - 1]) {
        rc = cli_fail("synth: out of memory");
        goto done;
    }

    int type_count[PG_TYPE_COUNT] = {0};
    for (int i = 0; i < n_tensors; i++) {
        struct synth_tensor *t = &tensors[i];
        t->data = malloc(t->nbytes ? t->nbytes : 1);
        if (!t->data) {
            rc = cli_fail("synth: out of memory for %s (%zu bytes; %.1f MB in all)", t->name,
                          t->nbytes, total / 1e6);
            goto done;
        }
        if (t->fill != FILL_MATRIX) {
            fill_vector(&o, t, i);
        } else {
            struct synth_job job = {t, i, o.seed, type_row_size(t->type, t->ne[0]), scratch, 0};
            pool_run(pool, synth_worker, &job);
        }
        type_count[t->type]++;
        if (gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes,
                                   err, sizeof err) < 0) {
            rc = cli_fail("synth: %s", err);
            goto done;
        }
    }
    if (gguf_writer_write(w, o.out, err, sizeof err) < 0) {
        rc = cli_fail("synth: %s", err);
        goto done;
    }
    printf("wrote %s: %s n_embd %lld, %lld layers, %lld/%lld heads of %lld, n_ff %lld, "
           "vocab %lld, %s, %d tensors, %.1f MB in %.1f s (%d threads)\n  types:",
           o.out, synth_arch_names[o.arch], o.n_embd, o.n_layer, o.n_head, o.n_head_kv,
           o.head_dim, o.n_ff, o.n_vocab, o.type, n_tensors, total / 1e6, clock_now() - t0,
           n_threads);
    for (int k = 0; k < PG_TYPE_COUNT; k++)
        if (type_count[k])
            printf(" %s x%d", type_name(k), type_count[k]);
    printf("\n");

done:
    if (tensors)
        for (int i = 0; i < n_tensors; i++)
            free(tensors[i].data);
    free(tensors);
    if (scratch)
        for (int i = 0; i < n_threads; i++)
            free(scratch[i]);
    free(scratch);
    pool_destroy(pool);
    gguf_close(vocab);
    gguf_writer_free(w);
    return rc;
}
