/* test_import_hf.c: Hugging Face folders written here (config.json,
 * tokenizer.json, tokenizer_config.json, safetensors in F32/F16/BF16, one
 * file or two shards with an index) converted to GGUF: the model loads and
 * its logits match a plain float forward of the same weights written in the
 * Hugging Face conventions (rotate-half RoPE on unpermuted rows), for llama,
 * qwen2 (biases, tied output) and qwen3 (Q/K norms, wide heads); the
 * tokenizer encodes as the merges say; bad folders are refused. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fp16.h"
#include "base/pool.h"
#include "base/rng.h"
#include "gguf/gguf.h"
#include "model/import_hf.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "ops/attention.h"
#include "ops/types.h"
#include "tokenizer/tokenizer.h"
#include "test.h"

static char tmp_dir[256];

/* ---- a model's weights in Hugging Face layout ---- */

struct spec {
    const char *model_type;
    int E, L, H, HKV, HD, F, V; /* V: embedding rows */
    int tok_vocab;              /* tokenizer.json entries (V may be larger) */
    bool bias, qk_norm, tied, spm;
    const char *dtype;          /* "F32", "F16", "BF16" */
    int shards;
    double theta, eps;
    bool llama3_tok;            /* byte-level BPE in the Llama 3 style (BOS by post-processor) */
};

struct wt {
    char name[96];
    int n_dims;
    int64_t shape[2]; /* HF order: [rows, cols] */
    float *v;         /* values as stored (rounded to the dtype) */
};

struct weights {
    int n;
    struct wt t[256];
};

static float round_dtype(float x, const char *dtype)
{
    if (!strcmp(dtype, "F16"))
        return f32_round_f16(x);
    if (!strcmp(dtype, "BF16"))
        return f32_round_bf16(x);
    return x;
}

static struct wt *add_w(struct weights *w, struct rng *r, const struct spec *s, const char *name,
                        int64_t rows, int64_t cols, bool norm)
{
    struct wt *t = &w->t[w->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    const int64_t n = rows * (cols ? cols : 1);
    t->v = malloc(sizeof(float) * (size_t)n);
    const float std = cols ? 0.7f / sqrtf((float)cols) : 0.1f;
    for (int64_t i = 0; i < n; i++)
        t->v[i] = round_dtype(norm ? 1.0f + 0.2f * rng_normal(r) : std * rng_normal(r), s->dtype);
    return t;
}

static const float *get_w(const struct weights *w, const char *fmt, int l)
{
    char name[96];
    snprintf(name, sizeof name, fmt, l);
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name))
            return w->t[i].v;
    return NULL;
}

static void make_weights(const struct spec *s, struct weights *w, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    w->n = 0;
    char n[96];
    const int Q = s->H * s->HD, KV = s->HKV * s->HD;
    add_w(w, &r, s, "model.embed_tokens.weight", s->V, s->E, false);
    for (int l = 0; l < s->L; l++) {
#define P(suffix) (snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix), n)
        add_w(w, &r, s, P("input_layernorm.weight"), s->E, 0, true);
        add_w(w, &r, s, P("self_attn.q_proj.weight"), Q, s->E, false);
        add_w(w, &r, s, P("self_attn.k_proj.weight"), KV, s->E, false);
        add_w(w, &r, s, P("self_attn.v_proj.weight"), KV, s->E, false);
        if (s->bias) {
            add_w(w, &r, s, P("self_attn.q_proj.bias"), Q, 0, false);
            add_w(w, &r, s, P("self_attn.k_proj.bias"), KV, 0, false);
            add_w(w, &r, s, P("self_attn.v_proj.bias"), KV, 0, false);
        }
        if (s->qk_norm) {
            add_w(w, &r, s, P("self_attn.q_norm.weight"), s->HD, 0, true);
            add_w(w, &r, s, P("self_attn.k_norm.weight"), s->HD, 0, true);
        }
        add_w(w, &r, s, P("self_attn.o_proj.weight"), s->E, Q, false);
        add_w(w, &r, s, P("post_attention_layernorm.weight"), s->E, 0, true);
        add_w(w, &r, s, P("mlp.gate_proj.weight"), s->F, s->E, false);
        add_w(w, &r, s, P("mlp.up_proj.weight"), s->F, s->E, false);
        add_w(w, &r, s, P("mlp.down_proj.weight"), s->E, s->F, false);
#undef P
    }
    add_w(w, &r, s, "model.norm.weight", s->E, 0, true);
    if (!s->tied)
        add_w(w, &r, s, "lm_head.weight", s->V, s->E, false);
}

static void free_weights(struct weights *w)
{
    for (int i = 0; i < w->n; i++)
        free(w->t[i].v);
    w->n = 0;
}

/* ---- writing the folder ---- */

static void write_text(const char *dir, const char *name, const char *text)
{
    char p[1400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void write_json(const char *dir, const char *name, cJSON *j)
{
    char *s = cJSON_Print(j);
    write_text(dir, name, s);
    free(s);
    cJSON_Delete(j);
}

/* Tensors [first, last) of w into one safetensors file. */
static void write_safetensors(const char *path, const struct weights *w, int first, int last,
                              const char *dtype)
{
    const size_t es = strcmp(dtype, "F32") ? 2 : 4;
    cJSON *h = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(h, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    size_t off = 0;
    for (int i = first; i < last; i++) {
        const struct wt *t = &w->t[i];
        cJSON *d = cJSON_AddObjectToObject(h, t->name);
        cJSON_AddStringToObject(d, "dtype", dtype);
        cJSON *shape = cJSON_AddArrayToObject(d, "shape");
        for (int k = 0; k < t->n_dims; k++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[k]));
        const size_t n = (size_t)(t->shape[0] * (t->n_dims == 2 ? t->shape[1] : 1));
        cJSON *o = cJSON_AddArrayToObject(d, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + n * es)));
        off += n * es;
    }
    char *hs = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    size_t hl = strlen(hs);
    const size_t padded = (hl + 7) / 8 * 8;
    FILE *f = fopen(path, "wb");
    uint64_t len = padded;
    fwrite(&len, 8, 1, f);
    fwrite(hs, 1, hl, f);
    for (size_t k = hl; k < padded; k++)
        fputc(' ', f);
    free(hs);
    for (int i = first; i < last; i++) {
        const struct wt *t = &w->t[i];
        const size_t n = (size_t)(t->shape[0] * (t->n_dims == 2 ? t->shape[1] : 1));
        for (size_t k = 0; k < n; k++) {
            if (es == 4) {
                fwrite(&t->v[k], 4, 1, f);
            } else {
                const uint16_t b = !strcmp(dtype, "F16") ? f32_to_f16(t->v[k]) : f32_to_bf16(t->v[k]);
                fwrite(&b, 2, 1, f);
            }
        }
    }
    fclose(f);
}

#define SP "\xe2\x96\x81" /* the SentencePiece space */
#define GS "\xc4\xa0"     /* the byte-level BPE space */

/* The SPM-style vocabulary: specials, 256 byte tokens, letters, merged words. */
static const char *spm_pieces[] = {SP, "h", "e", "l", "o", "w", "r", "d", "ll", SP "h",
                                   SP "he", "llo", SP "hello", SP "w", "or", SP "wor",
                                   SP "worl", SP "world"};
static const char *spm_merges[] = {"l l",      SP " h",  SP "h e", "ll o",   SP "he llo",
                                   SP " w",    "o r",    SP "w or", SP "wor l", SP "worl d"};
#define SPM_FIRST 259
#define SPM_N (SPM_FIRST + (int)(sizeof spm_pieces / sizeof spm_pieces[0]))

/* GPT-2's printable stand-in of a byte. */
static int byte_char(int b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
        return b;
    int n = 0;
    for (int k = 0; k < b; k++)
        if (!((k >= 33 && k <= 126) || (k >= 161 && k <= 172) || (k >= 174 && k <= 255)))
            n++;
    return 256 + n;
}

static void utf8(int cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 63));
        out[2] = 0;
    }
}

static const char *bpe_words[] = {"he", "ll", "hell", "hello", GS "w", "or", GS "wor", GS "worl",
                                  GS "world"};
static const char *bpe_merges[][2] = {{"h", "e"},    {"l", "l"},       {"he", "ll"},
                                      {"hell", "o"}, {GS, "w"},        {"o", "r"},
                                      {GS "w", "or"}, {GS "wor", "l"}, {GS "worl", "d"}};
#define BPE_N (256 + (int)(sizeof bpe_words / sizeof bpe_words[0]))

static const char *chat_tmpl =
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}";

static void write_tokenizer(const char *dir, const struct spec *s)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON *cfg = cJSON_CreateObject();
    if (s->spm) {
        cJSON_AddTrueToObject(model, "byte_fallback");
        cJSON_AddStringToObject(model, "unk_token", "<unk>");
        const char *sp[3] = {"<unk>", "<s>", "</s>"};
        for (int i = 0; i < 3; i++) {
            cJSON_AddNumberToObject(vocab, sp[i], i);
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "id", i);
            cJSON_AddStringToObject(a, "content", sp[i]);
            cJSON_AddTrueToObject(a, "special");
            cJSON_AddItemToArray(added, a);
        }
        for (int b = 0; b < 256; b++) {
            char t[8];
            snprintf(t, sizeof t, "<0x%02X>", b);
            cJSON_AddNumberToObject(vocab, t, 3 + b);
        }
        for (int i = SPM_FIRST; i < SPM_N; i++)
            cJSON_AddNumberToObject(vocab, spm_pieces[i - SPM_FIRST], i);
        for (size_t i = 0; i < sizeof spm_merges / sizeof spm_merges[0]; i++)
            cJSON_AddItemToArray(merges, cJSON_CreateString(spm_merges[i]));
        cJSON *norm = cJSON_AddObjectToObject(root, "normalizer");
        cJSON_AddStringToObject(norm, "type", "Sequence");
        cJSON *ns = cJSON_AddArrayToObject(norm, "normalizers");
        cJSON *pre = cJSON_CreateObject();
        cJSON_AddStringToObject(pre, "type", "Prepend");
        cJSON_AddStringToObject(pre, "prepend", SP);
        cJSON_AddItemToArray(ns, pre);
        cJSON_AddStringToObject(cfg, "bos_token", "<s>");
        cJSON *eos = cJSON_AddObjectToObject(cfg, "eos_token");
        cJSON_AddStringToObject(eos, "content", "</s>");
        cJSON_AddTrueToObject(cfg, "add_bos_token");
        cJSON_AddFalseToObject(cfg, "add_eos_token");
    } else {
        for (int b = 0; b < 256; b++) {
            char t[4];
            utf8(byte_char(b), t);
            cJSON_AddNumberToObject(vocab, t, b);
        }
        for (int i = 256; i < BPE_N; i++)
            cJSON_AddNumberToObject(vocab, bpe_words[i - 256], i);
        for (size_t i = 0; i < sizeof bpe_merges / sizeof bpe_merges[0]; i++) {
            /* Both merge spellings occur in the wild. */
            if (i % 2) {
                char m[64];
                snprintf(m, sizeof m, "%s %s", bpe_merges[i][0], bpe_merges[i][1]);
                cJSON_AddItemToArray(merges, cJSON_CreateString(m));
            } else {
                cJSON *pair = cJSON_CreateArray();
                cJSON_AddItemToArray(pair, cJSON_CreateString(bpe_merges[i][0]));
                cJSON_AddItemToArray(pair, cJSON_CreateString(bpe_merges[i][1]));
                cJSON_AddItemToArray(merges, pair);
            }
        }
        const char *sp3[3] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
        const char *l3[3] = {"<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"};
        const char *const *sp = s->llama3_tok ? l3 : sp3;
        for (int i = 0; i < 3; i++) {
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "id", BPE_N + i);
            cJSON_AddStringToObject(a, "content", sp[i]);
            cJSON_AddTrueToObject(a, "special");
            cJSON_AddItemToArray(added, a);
        }
        cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
        cJSON_AddStringToObject(pre, "type", "Sequence");
        cJSON *ps = cJSON_AddArrayToObject(pre, "pretokenizers");
        cJSON *split = cJSON_CreateObject();
        cJSON_AddStringToObject(split, "type", "Split");
        cJSON *pat = cJSON_AddObjectToObject(split, "pattern");
        cJSON_AddStringToObject(pat, "Regex",
                                s->llama3_tok
                                    ? "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
                                      "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
                                      "\\s+(?!\\S)|\\s+"
                                    : "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
                                      "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
                                      "\\s+(?!\\S)|\\s+");
        cJSON_AddItemToArray(ps, split);
        cJSON *bl = cJSON_CreateObject();
        cJSON_AddStringToObject(bl, "type", "ByteLevel");
        cJSON_AddFalseToObject(bl, "use_regex");
        cJSON_AddItemToArray(ps, bl);
        if (s->llama3_tok) {
            /* BOS comes from the post-processor (nested in a sequence), the
             * chat template from its own file. */
            cJSON *pp = cJSON_AddObjectToObject(root, "post_processor");
            cJSON_AddStringToObject(pp, "type", "Sequence");
            cJSON *procs = cJSON_AddArrayToObject(pp, "processors");
            cJSON *bl2 = cJSON_CreateObject();
            cJSON_AddStringToObject(bl2, "type", "ByteLevel");
            cJSON_AddItemToArray(procs, bl2);
            cJSON *tp = cJSON_CreateObject();
            cJSON_AddStringToObject(tp, "type", "TemplateProcessing");
            cJSON *single = cJSON_AddArrayToObject(tp, "single");
            cJSON *first = cJSON_CreateObject();
            cJSON *stok = cJSON_AddObjectToObject(first, "SpecialToken");
            cJSON_AddStringToObject(stok, "id", "<|begin_of_text|>");
            cJSON_AddItemToArray(single, first);
            cJSON_AddItemToArray(procs, tp);
            cJSON_AddStringToObject(cfg, "bos_token", "<|begin_of_text|>");
            cJSON_AddStringToObject(cfg, "eos_token", "<|eot_id|>");
            write_text(dir, "chat_template.jinja", chat_tmpl);
        } else {
            cJSON_AddNullToObject(cfg, "bos_token");
            cJSON_AddStringToObject(cfg, "eos_token", "<|im_end|>");
            cJSON_AddStringToObject(cfg, "pad_token", "<|endoftext|>");
            cJSON_AddFalseToObject(cfg, "add_bos_token");
            cJSON_AddStringToObject(cfg, "chat_template", chat_tmpl);
        }
    }
    write_json(dir, "tokenizer.json", root);
    write_json(dir, "tokenizer_config.json", cfg);
}

static void write_folder(const char *dir, const struct spec *s, const struct weights *w)
{
    mkdir(dir, 0755);
    cJSON *c = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(c, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("ForCausalLM"));
    cJSON_AddStringToObject(c, "model_type", s->model_type);
    cJSON_AddStringToObject(c, "hidden_act", "silu");
    cJSON_AddNumberToObject(c, "hidden_size", s->E);
    cJSON_AddNumberToObject(c, "num_hidden_layers", s->L);
    cJSON_AddNumberToObject(c, "num_attention_heads", s->H);
    cJSON_AddNumberToObject(c, "num_key_value_heads", s->HKV);
    if (s->HD != s->E / s->H)
        cJSON_AddNumberToObject(c, "head_dim", s->HD);
    cJSON_AddNumberToObject(c, "intermediate_size", s->F);
    cJSON_AddNumberToObject(c, "vocab_size", s->V);
    cJSON_AddNumberToObject(c, "max_position_embeddings", 256);
    cJSON_AddNumberToObject(c, "rms_norm_eps", s->eps);
    cJSON_AddNumberToObject(c, "rope_theta", s->theta);
    cJSON_AddBoolToObject(c, "tie_word_embeddings", s->tied);
    cJSON_AddNullToObject(c, "rope_scaling");
    cJSON_AddStringToObject(c, "torch_dtype", "float32");
    write_json(dir, "config.json", c);
    write_tokenizer(dir, s);
    char p[1400];
    if (s->shards <= 1) {
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        write_safetensors(p, w, 0, w->n, s->dtype);
        return;
    }
    cJSON *idx = cJSON_CreateObject();
    cJSON_AddObjectToObject(idx, "metadata");
    cJSON *map = cJSON_AddObjectToObject(idx, "weight_map");
    const int half = w->n / 2;
    const char *files[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    for (int k = 0; k < 2; k++) {
        const int a = k ? half : 0, b = k ? w->n : half;
        snprintf(p, sizeof p, "%s/%s", dir, files[k]);
        write_safetensors(p, w, a, b, s->dtype);
        for (int i = a; i < b; i++)
            cJSON_AddStringToObject(map, w->t[i].name, files[k]);
    }
    write_json(dir, "model.safetensors.index.json", idx);
}

/* ---- the plain forward pass in Hugging Face conventions ---- */

static void matvec(const float *W, const double *x, double *y, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        double s = 0;
        for (int c = 0; c < cols; c++)
            s += (double)W[(size_t)r * cols + c] * x[c];
        y[r] = s;
    }
}

static void rmsnorm(const double *x, const float *w, double *y, int n, double eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    const double sc = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++)
        y[i] = x[i] * sc * w[i];
}

static void rope_half(double *v, int hd, int pos, double theta)
{
    const int half = hd / 2;
    for (int i = 0; i < half; i++) {
        const double a = pos * pow(theta, -2.0 * i / hd);
        const double x0 = v[i], x1 = v[i + half];
        v[i] = x0 * cos(a) - x1 * sin(a);
        v[i + half] = x1 * cos(a) + x0 * sin(a);
    }
}

/* logits: [n][V] after each of the n tokens. */
static void ref_forward(const struct spec *s, const struct weights *w, const int32_t *tok, int n,
                        double *logits)
{
    const int E = s->E, HD = s->HD, Q = s->H * HD, KV = s->HKV * HD, F = s->F;
    double *x = calloc((size_t)n * E, sizeof *x), *h = malloc(sizeof(double) * (size_t)(E > F ? E : F) * 4);
    double *q = malloc(sizeof(double) * (size_t)n * Q), *k = malloc(sizeof(double) * (size_t)n * KV);
    double *v = malloc(sizeof(double) * (size_t)n * KV), *att = malloc(sizeof(double) * (size_t)Q);
    double *g = malloc(sizeof(double) * (size_t)F), *u = malloc(sizeof(double) * (size_t)F);
    double *o = malloc(sizeof(double) * (size_t)(E > Q ? E : Q)), *sc = malloc(sizeof(double) * (size_t)n);
    const float *emb = get_w(w, "model.embed_tokens.weight", 0);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < E; i++)
            x[(size_t)t * E + i] = emb[(size_t)tok[t] * E + i];
    for (int l = 0; l < s->L; l++) {
        const float *bq = get_w(w, "model.layers.%d.self_attn.q_proj.bias", l);
        const float *bk = get_w(w, "model.layers.%d.self_attn.k_proj.bias", l);
        const float *bv = get_w(w, "model.layers.%d.self_attn.v_proj.bias", l);
        const float *qn = get_w(w, "model.layers.%d.self_attn.q_norm.weight", l);
        const float *kn = get_w(w, "model.layers.%d.self_attn.k_norm.weight", l);
        for (int t = 0; t < n; t++) {
            rmsnorm(x + (size_t)t * E, get_w(w, "model.layers.%d.input_layernorm.weight", l), h, E, s->eps);
            matvec(get_w(w, "model.layers.%d.self_attn.q_proj.weight", l), h, q + (size_t)t * Q, Q, E);
            matvec(get_w(w, "model.layers.%d.self_attn.k_proj.weight", l), h, k + (size_t)t * KV, KV, E);
            matvec(get_w(w, "model.layers.%d.self_attn.v_proj.weight", l), h, v + (size_t)t * KV, KV, E);
            for (int i = 0; bq && i < Q; i++)
                q[(size_t)t * Q + i] += bq[i];
            for (int i = 0; bk && i < KV; i++)
                k[(size_t)t * KV + i] += bk[i];
            for (int i = 0; bv && i < KV; i++)
                v[(size_t)t * KV + i] += bv[i];
            for (int hh = 0; hh < s->H; hh++) {
                double *qh = q + (size_t)t * Q + hh * HD;
                if (qn) {
                    double tmp[512];
                    rmsnorm(qh, qn, tmp, HD, s->eps);
                    memcpy(qh, tmp, sizeof(double) * HD);
                }
                rope_half(qh, HD, t, s->theta);
            }
            for (int hh = 0; hh < s->HKV; hh++) {
                double *kh = k + (size_t)t * KV + hh * HD;
                if (kn) {
                    double tmp[512];
                    rmsnorm(kh, kn, tmp, HD, s->eps);
                    memcpy(kh, tmp, sizeof(double) * HD);
                }
                rope_half(kh, HD, t, s->theta);
            }
        }
        for (int t = 0; t < n; t++) {
            for (int hh = 0; hh < s->H; hh++) {
                const int kvh = hh / (s->H / s->HKV);
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j <= t; j++) {
                    double d = 0;
                    for (int i = 0; i < HD; i++)
                        d += q[(size_t)t * Q + hh * HD + i] * k[(size_t)j * KV + kvh * HD + i];
                    sc[j] = d / sqrt((double)HD);
                    mx = sc[j] > mx ? sc[j] : mx;
                }
                for (int j = 0; j <= t; j++)
                    sum += (sc[j] = exp(sc[j] - mx));
                for (int i = 0; i < HD; i++) {
                    double a = 0;
                    for (int j = 0; j <= t; j++)
                        a += sc[j] / sum * v[(size_t)j * KV + kvh * HD + i];
                    att[hh * HD + i] = a;
                }
            }
            matvec(get_w(w, "model.layers.%d.self_attn.o_proj.weight", l), att, o, E, Q);
            double *xt = x + (size_t)t * E;
            for (int i = 0; i < E; i++)
                xt[i] += o[i];
            rmsnorm(xt, get_w(w, "model.layers.%d.post_attention_layernorm.weight", l), h, E, s->eps);
            matvec(get_w(w, "model.layers.%d.mlp.gate_proj.weight", l), h, g, F, E);
            matvec(get_w(w, "model.layers.%d.mlp.up_proj.weight", l), h, u, F, E);
            for (int i = 0; i < F; i++)
                g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
            matvec(get_w(w, "model.layers.%d.mlp.down_proj.weight", l), g, o, E, F);
            for (int i = 0; i < E; i++)
                xt[i] += o[i];
        }
    }
    const float *out = s->tied ? emb : get_w(w, "lm_head.weight", 0);
    for (int t = 0; t < n; t++) {
        rmsnorm(x + (size_t)t * E, get_w(w, "model.norm.weight", 0), h, E, s->eps);
        matvec(out, h, logits + (size_t)t * s->V, s->V, E);
    }
    free(x); free(h); free(q); free(k); free(v); free(att); free(g); free(u); free(o); free(sc);
}

/* The converted model's logits after each token; returns 0 or a status. */
static int gguf_forward(const char *path, const int32_t *tok, int n, float *logits, int *n_vocab)
{
    char err[512];
    struct model *m = NULL;
    int rc = model_load(path, &m, err, sizeof err);
    CHECKF(rc == 0, "%s", err);
    if (rc)
        return rc;
    *n_vocab = m->hp.n_vocab;
    const int bs = 16, max_pos = 64;
    struct pool *pool = pool_create(2, err, sizeof err);
    struct fwd_ctx *fc = fwd_ctx_create(m, pool, max_pos, max_pos, err, sizeof err);
    struct kv_store kv;
    kv_store_layout(&kv, m->hp.n_layer, m->hp.n_head_kv, m->hp.head_dim, bs, PG_TYPE_F16);
    kv.n_blocks = max_pos / bs;
    kv.data = malloc(kv.block_bytes * (size_t)kv.n_blocks);
    int32_t blocks[4] = {2, 0, 3, 1};
    const int32_t *tables[1] = {blocks};
    int32_t pos[64], seq[64] = {0}, rows[64];
    for (int i = 0; i < n; i++)
        pos[i] = rows[i] = i;
    struct fwd_batch b = {n, tok, pos, seq, tables, n, rows};
    rc = model_forward(m, fc, &kv, &b, logits, err, sizeof err);
    CHECKF(rc == 0, "%s", err);
    free(kv.data);
    fwd_ctx_free(fc);
    pool_destroy(pool);
    model_free(m);
    return rc;
}

/* Converts the folder to type and compares every position's logits. */
static void check_logits(const char *dir, const struct spec *s, const struct weights *w,
                         const char *type, double tol, const char *what)
{
    char out[1400];
    snprintf(out, sizeof out, "%s.%s.gguf", dir, type);
    char err[512] = "";
    struct hf_convert_opts o = {type, NULL, NULL};
    struct hf_config c;
    int rc = hf_convert(dir, out, &o, &c, err, sizeof err);
    CHECKF(rc == 0, "%s %s: %s", what, type, err);
    if (rc)
        return;
    CHECK(c.n_layer == s->L && c.head_dim == s->HD && c.n_head_kv == s->HKV);
    const int n = 7;
    int32_t tok[7];
    for (int i = 0; i < n; i++)
        tok[i] = (int32_t)((i * 37 + 5) % s->V);
    float *got = malloc(sizeof(float) * (size_t)n * s->V);
    double *want = malloc(sizeof(double) * (size_t)n * s->V);
    int nv = 0;
    if (gguf_forward(out, tok, n, got, &nv) == 0) {
        CHECK(nv == s->V);
        ref_forward(s, w, tok, n, want);
        double worst = 0, span = 0;
        for (int i = 0; i < n * s->V; i++) {
            worst = fmax(worst, fabs(got[i] - want[i]));
            span = fmax(span, fabs(want[i]));
        }
        CHECKF(worst <= tol, "%s %s: worst logit difference %.5f > %.5f (|logit| up to %.2f)",
               what, type, worst, tol, span);
        CHECKF(span > 0.5, "%s: logits too small to tell anything (%.3f)", what, span);
        printf("%-30s %-7s worst logit difference %.5f (logits up to %.2f)\n", what, type, worst,
               span);
    }
    free(got);
    free(want);
    unlink(out);
}

static void check_tokenizer(const char *dir, const struct spec *s)
{
    char out[1400], err[512] = "";
    snprintf(out, sizeof out, "%s.tok.gguf", dir);
    struct hf_convert_opts o = {"f16", "tok-test", NULL};
    CHECKF(hf_convert(dir, out, &o, NULL, err, sizeof err) == 0, "%s", err);
    struct gguf_file *g = NULL;
    if (gguf_open(out, &g, err, sizeof err)) {
        CHECKF(0, "%s", err);
        return;
    }
    struct gguf_str str;
    CHECK(gguf_get_str(g, "general.name", &str) && gguf_str_eq(str, "tok-test"));
    int64_t ft;
    CHECK(gguf_get_int(g, "general.file_type", &ft) && ft == 1);
    struct tokenizer *t = NULL;
    int rc = tokenizer_load(g, &t, err, sizeof err);
    CHECKF(rc == 0, "%s", err);
    if (rc) {
        gguf_close(g);
        return;
    }
    CHECK(tokenizer_n_vocab(t) == s->V);
    int32_t ids[32];
    size_t n = 0;
    const char *text = "hello world!";
    rc = tokenizer_encode(t, text, strlen(text), true, false, ids, 32, &n);
    CHECK(rc == 0);
    if (s->spm) {
        /* BOS, the two merged words, then '!' by byte fallback. */
        CHECKF(n == 4 && ids[0] == 1 && ids[1] == SPM_FIRST + 12 && ids[2] == SPM_FIRST + 17 &&
                   ids[3] == 3 + '!',
               "spm ids: n=%zu %d %d %d %d", n, ids[0], ids[1], ids[2], ids[3]);
        CHECK(tokenizer_bos(t) == 1 && tokenizer_eos(t) == 2 && tokenizer_add_bos(t));
        CHECK(tokenizer_unk(t) == 0);
        CHECK(tokenizer_add_space_prefix(t));
        CHECK(tokenizer_token_type(t, 3 + 'A') == TOKEN_TYPE_BYTE);
        CHECK(tokenizer_token_type(t, 1) == TOKEN_TYPE_CONTROL);
        /* Earlier merges score higher. */
        CHECK(tokenizer_token_score(t, SPM_FIRST + 8) > tokenizer_token_score(t, SPM_FIRST + 17));
    } else if (s->llama3_tok) {
        CHECKF(n == 4 && ids[0] == BPE_N && ids[1] == 256 + 3 && ids[2] == 256 + 8 && ids[3] == '!',
               "llama3 ids: n=%zu %d %d %d %d", n, ids[0], ids[1], ids[2], ids[3]);
        CHECK(tokenizer_add_bos(t) && tokenizer_bos(t) == BPE_N && tokenizer_eos(t) == BPE_N + 2);
        CHECK(strcmp(tokenizer_pre_name(t), "llama-bpe") == 0);
        CHECK(gguf_get_str(g, "tokenizer.chat_template", &str) && gguf_str_eq(str, chat_tmpl));
    } else {
        CHECKF(n == 3 && ids[0] == 256 + 3 && ids[1] == 256 + 8 && ids[2] == '!' ,
               "bpe ids: n=%zu %d %d %d", n, ids[0], ids[1], ids[2]);
        CHECK(!tokenizer_add_bos(t));
        CHECK(tokenizer_eos(t) == BPE_N + 2 && tokenizer_pad(t) == BPE_N);
        CHECK(strcmp(tokenizer_pre_name(t), "qwen2") == 0);
        CHECK(tokenizer_token_type(t, BPE_N + 1) == TOKEN_TYPE_CONTROL);
        CHECK(tokenizer_token_type(t, s->V - 1) == TOKEN_TYPE_UNUSED);
        CHECK(gguf_get_str(g, "tokenizer.chat_template", &str) && gguf_str_eq(str, chat_tmpl));
        /* Special tokens in text, when asked for. */
        const char *sp = "<|im_start|>hello";
        rc = tokenizer_encode(t, sp, strlen(sp), false, true, ids, 32, &n);
        CHECK(rc == 0 && n == 2 && ids[0] == BPE_N + 1 && ids[1] == 256 + 3);
    }
    tokenizer_free(t);
    gguf_close(g);
    unlink(out);
}

static void run_case(const struct spec *s, const char *what, uint64_t seed, bool tokenizer)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", tmp_dir, what);
    struct weights *w = calloc(1, sizeof *w);
    make_weights(s, w, seed);
    write_folder(dir, s, w);
    const double tol = !strcmp(s->dtype, "F32") ? 0.01 : 0.02;
    check_logits(dir, s, w, "f32", tol, what);
    if (tokenizer)
        check_tokenizer(dir, s);
    free_weights(w);
    free(w);
}

/* Other weight types: the model still loads and tracks the float logits. */
static void run_types(const struct spec *s, const char *what)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", tmp_dir, what);
    struct weights *w = calloc(1, sizeof *w);
    make_weights(s, w, 99);
    write_folder(dir, s, w);
    check_logits(dir, s, w, "f16", 0.03, what);
    check_logits(dir, s, w, "bf16", 0.15, what);
    check_logits(dir, s, w, "q8_0", 0.15, what);
    check_logits(dir, s, w, "q4_k_m", 0.75, what);
    free_weights(w);
    free(w);
}

static void expect_fail(const char *dir, const char *what, const char *needle)
{
    char out[1400], err[512] = "";
    snprintf(out, sizeof out, "%s/bad.gguf", tmp_dir);
    struct hf_convert_opts o = {"f32", NULL, NULL};
    const int rc = hf_convert(dir, out, &o, NULL, err, sizeof err);
    CHECKF(rc < 0, "%s: accepted", what);
    CHECKF(strstr(err, needle) != NULL, "%s: message '%s' lacks '%s'", what, err, needle);
    CHECKF(access(out, F_OK) != 0, "%s: wrote a file", what);
}

static void edit_config(const char *dir, const char *key, cJSON *value)
{
    char p[1400];
    snprintf(p, sizeof p, "%s/config.json", dir);
    char *text = test_read_file(p, NULL);
    cJSON *c = cJSON_Parse(text);
    free(text);
    cJSON_DeleteItemFromObject(c, key);
    if (value)
        cJSON_AddItemToObject(c, key, value);
    write_json(dir, "config.json", c);
}

static void test_errors(void)
{
    const struct spec s = {"llama", 32, 1, 2, 2, 16, 32, SPM_N, SPM_N, false, false, false, true,
                           "F32", 1, 10000, 1e-5, false};
    char dir[1024], p[1200];
    snprintf(dir, sizeof dir, "%s/bad", tmp_dir);
    struct weights *w = calloc(1, sizeof *w);
    make_weights(&s, w, 5);
    write_folder(dir, &s, w);
    expect_fail(tmp_dir, "no config", "config.json");
    edit_config(dir, "model_type", cJSON_CreateString("gpt_neox"));
    expect_fail(dir, "unknown model type", "gpt_neox");
    edit_config(dir, "model_type", cJSON_CreateString("llama"));
    edit_config(dir, "num_key_value_heads", cJSON_CreateNumber(3));
    expect_fail(dir, "kv heads above heads", "num_key_value_heads");
    edit_config(dir, "num_key_value_heads", cJSON_CreateNumber(2));
    edit_config(dir, "intermediate_size", cJSON_CreateNumber(48));
    expect_fail(dir, "shape differs from config", "mlp.gate_proj.weight");
    edit_config(dir, "intermediate_size", cJSON_CreateNumber(32));
    cJSON *rs = cJSON_CreateObject();
    cJSON_AddStringToObject(rs, "type", "yarn");
    edit_config(dir, "rope_scaling", rs);
    expect_fail(dir, "unsupported rope scaling", "yarn");
    edit_config(dir, "rope_scaling", NULL);

    /* A safetensors file whose last tensor runs past the end. */
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    size_t len = 0;
    char *bytes = test_read_file(p, &len);
    FILE *f = fopen(p, "wb");
    fwrite(bytes, 1, len - 4, f);
    fclose(f);
    expect_fail(dir, "truncated safetensors", "data_offsets");
    /* A header length beyond the file. */
    f = fopen(p, "wb");
    uint64_t huge = (uint64_t)len * 2;
    fwrite(&huge, 8, 1, f);
    fwrite(bytes + 8, 1, len - 8, f);
    fclose(f);
    expect_fail(dir, "header length", "header length");
    /* A tensor with an extra element in its shape. */
    char *hdr = strstr(bytes + 8, "\"shape\":[32,32]");
    if (hdr) {
        memcpy(hdr, "\"shape\":[32,33]", 15);
        f = fopen(p, "wb");
        fwrite(bytes, 1, len, f);
        fclose(f);
        expect_fail(dir, "shape vs byte range", "bytes for");
    }
    free(bytes);
    /* An extra tensor the model has no place for. */
    w->t[w->n].v = NULL;
    struct wt extra = {"model.layers.0.mlp.extra.weight", 1, {4, 0}, NULL};
    extra.v = calloc(4, sizeof(float));
    w->t[w->n++] = extra;
    write_safetensors(p, w, 0, w->n, "F32");
    expect_fail(dir, "unknown tensor", "mlp.extra.weight");
    /* An index naming a shard outside the folder, then one missing a tensor. */
    w->n--;
    free(extra.v);
    write_safetensors(p, w, 0, w->n, "F32");
    write_text(dir, "model.safetensors.index.json",
               "{\"weight_map\": {\"model.norm.weight\": \"../model.safetensors\"}}");
    expect_fail(dir, "shard outside the folder", "file name");
    write_text(dir, "model.safetensors.index.json",
               "{\"weight_map\": {\"model.nope.weight\": \"model.safetensors\"}}");
    expect_fail(dir, "index names a tensor the shard lacks", "model.nope.weight");
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    unlink(p);
    /* Tokenizer ids beyond the embedding. */
    write_text(dir, "tokenizer.json",
               "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 999}, \"merges\": []}}");
    expect_fail(dir, "token id out of range", "999");
    write_text(dir, "tokenizer.json", "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}");
    expect_fail(dir, "unigram tokenizer", "Unigram");
    free_weights(w);
    free(w);

    /* The safetensors reader on its own. */
    struct st_model *m = NULL;
    char err[256];
    snprintf(p, sizeof p, "%s/missing.safetensors", tmp_dir);
    CHECK(st_open(p, &m, err, sizeof err) < 0 && m == NULL);
}

int main(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/pagoda-import-hf-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmp_dir)) {
        fprintf(stderr, "cannot create a temporary folder\n");
        return 1;
    }
    /* llama (mistral-like GQA), F32, one file, SPM vocabulary, separate output. */
    const struct spec llama = {"llama", 64, 2, 4, 2, 16, 96, SPM_N + 5, SPM_N, false, false,
                               false, true, "F32", 1, 10000, 1e-5, false};
    run_case(&llama, "llama-f32", 1, true);
    /* mistral naming, F16 weights in two shards. */
    const struct spec mistral = {"mistral", 64, 2, 8, 2, 8, 64, SPM_N, SPM_N, false, false,
                                 false, true, "F16", 2, 1000000, 1e-6, false};
    run_case(&mistral, "mistral-f16-sharded", 2, false);
    /* qwen2: biases, tied output, BF16, two shards, byte-level BPE vocabulary. */
    const struct spec qwen2 = {"qwen2", 64, 2, 4, 2, 16, 128, BPE_N + 7, BPE_N + 3, true, false,
                               true, false, "BF16", 2, 1000000, 1e-6, false};
    run_case(&qwen2, "qwen2-bf16-sharded", 3, true);
    /* qwen3: per-head Q/K norms, head size above n_embd / n_head. */
    const struct spec qwen3 = {"qwen3", 48, 2, 4, 2, 32, 80, BPE_N + 3, BPE_N + 3, false, true,
                               false, false, "F32", 1, 1000000, 1e-6, false};
    run_case(&qwen3, "qwen3-f32", 4, false);
    /* A Llama 3 style vocabulary on a llama model. */
    const struct spec llama3 = {"llama", 64, 1, 4, 1, 16, 64, BPE_N + 3, BPE_N + 3, false, false,
                                true, false, "BF16", 1, 500000, 1e-5, true};
    run_case(&llama3, "llama3-bf16", 6, true);
    /* Quantized and half-precision outputs (rows of 256 for the K types). */
    const struct spec wide = {"llama", 256, 2, 4, 2, 64, 256, SPM_N, SPM_N, false, false, false,
                              true, "F32", 1, 10000, 1e-5, false};
    run_types(&wide, "llama-types");
    test_errors();
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_dir);
    TEST_END();
}
