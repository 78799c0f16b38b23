/*
 * test_llama2c.c: llama2.c checkpoint and tokenizer import. Writes small
 * checkpoints with seeded random weights in both layouts (legacy and version
 * 1, shared and separate classifier, grouped-query attention, odd sizes) and
 * tokenizers in both spellings, converts them, reads the GGUF back and checks
 * every tensor bit for bit and every metadata key. Then rebuilds a llama2.c
 * tokenizer from the Llama 2 SentencePiece vocabulary of the reference data and
 * checks that the import gives that vocabulary back exactly. Malformed inputs
 * must be refused with a message. With PAGODA_TEST_STORIES15M naming a pulled
 * stories15M.gguf, its vocabulary is checked against the reference as well.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/rng.h"
#include "gguf/gguf.h"
#include "model/import_llama2c.h"
#include "ops/types.h"
#include "test.h"

static char tmpdir[256];

/* ---- a growing byte buffer ---- */

struct buf {
    uint8_t *p;
    size_t n, cap;
};

static void buf_put(struct buf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void buf_i32(struct buf *b, int32_t v) { buf_put(b, &v, 4); }
static void buf_f32(struct buf *b, float v) { buf_put(b, &v, 4); }

static void write_file(const char *path, const struct buf *b)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b->p, 1, b->n, f) != b->n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

/* ---- a synthetic model ---- */

struct case_cfg {
    const char *label;
    int dim, hidden, layers, heads, kv_heads, vocab, seq;
    bool shared, v1;
    int tok_style; /* 0: older export (raw bytes), 1: newer (<0xXX>), 2: no byte tokens */
};

struct weights {
    float *emb, *rms_att, *wq, *wk, *wv, *wo, *rms_ffn, *w1, *w2, *w3, *rms_final, *wcls;
    size_t n_emb, n_rms, n_wq, n_wk, n_w1;
};

static float *rand_floats(struct rng *r, size_t n)
{
    float *p = malloc(n * sizeof *p + 4);
    for (size_t i = 0; i < n; i++)
        p[i] = rng_normal(r) * 0.5f;
    return p;
}

static void weights_make(struct weights *w, const struct case_cfg *c, struct rng *r)
{
    size_t D = (size_t)c->dim, F = (size_t)c->hidden, L = (size_t)c->layers;
    size_t KV = (size_t)c->kv_heads * (D / (size_t)c->heads);
    w->n_emb = (size_t)c->vocab * D;
    w->n_rms = L * D;
    w->n_wq = L * D * D;
    w->n_wk = L * D * KV;
    w->n_w1 = L * F * D;
    w->emb = rand_floats(r, w->n_emb);
    w->rms_att = rand_floats(r, w->n_rms);
    w->wq = rand_floats(r, w->n_wq);
    w->wk = rand_floats(r, w->n_wk);
    w->wv = rand_floats(r, w->n_wk);
    w->wo = rand_floats(r, w->n_wq);
    w->rms_ffn = rand_floats(r, w->n_rms);
    w->w1 = rand_floats(r, w->n_w1);
    w->w2 = rand_floats(r, w->n_w1);
    w->w3 = rand_floats(r, w->n_w1);
    w->rms_final = rand_floats(r, D);
    w->wcls = c->shared ? NULL : rand_floats(r, w->n_emb);
}

static void weights_free(struct weights *w)
{
    float *all[] = {w->emb, w->rms_att, w->wq, w->wk, w->wv, w->wo,
                    w->rms_ffn, w->w1, w->w2, w->w3, w->rms_final, w->wcls};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]);
}

/* Serializes a checkpoint exactly as llama2.c's export.py lays it out. */
static void checkpoint_bytes(struct buf *b, const struct case_cfg *c, const struct weights *w,
                             struct rng *r)
{
    size_t D = (size_t)c->dim, hs = D / (size_t)c->heads;
    if (c->v1) {
        buf_i32(b, (int32_t)LLAMA2C_MAGIC);
        buf_i32(b, 1);
    }
    int32_t h[7] = {c->dim, c->hidden, c->layers, c->heads, c->kv_heads, c->vocab, c->seq};
    if (!c->v1 && !c->shared)
        h[5] = -h[5];
    for (int i = 0; i < 7; i++)
        buf_i32(b, h[i]);
    if (c->v1) {
        uint8_t flag = c->shared ? 1 : 0;
        buf_put(b, &flag, 1);
        while (b->n < LLAMA2C_V1_HEADER_SIZE) {
            uint8_t z = 0;
            buf_put(b, &z, 1);
        }
        buf_put(b, w->rms_att, w->n_rms * 4);
        buf_put(b, w->rms_ffn, w->n_rms * 4);
        buf_put(b, w->rms_final, D * 4);
        buf_put(b, w->emb, w->n_emb * 4);
        buf_put(b, w->wq, w->n_wq * 4);
        buf_put(b, w->wk, w->n_wk * 4);
        buf_put(b, w->wv, w->n_wk * 4);
        buf_put(b, w->wo, w->n_wq * 4);
        buf_put(b, w->w1, w->n_w1 * 4);
        buf_put(b, w->w2, w->n_w1 * 4);
        buf_put(b, w->w3, w->n_w1 * 4);
    } else {
        buf_put(b, w->emb, w->n_emb * 4);
        buf_put(b, w->rms_att, w->n_rms * 4);
        buf_put(b, w->wq, w->n_wq * 4);
        buf_put(b, w->wk, w->n_wk * 4);
        buf_put(b, w->wv, w->n_wk * 4);
        buf_put(b, w->wo, w->n_wq * 4);
        buf_put(b, w->rms_ffn, w->n_rms * 4);
        buf_put(b, w->w1, w->n_w1 * 4);
        buf_put(b, w->w2, w->n_w1 * 4);
        buf_put(b, w->w3, w->n_w1 * 4);
        buf_put(b, w->rms_final, D * 4);
        /* freq_cis_real, freq_cis_imag: the importer must skip them. */
        for (size_t i = 0; i < (size_t)c->seq * hs; i++)
            buf_f32(b, rng_normal(r));
    }
    if (!c->shared)
        buf_put(b, w->wcls, w->n_emb * 4);
}

/* ---- a synthetic tokenizer ---- */

struct vocab_expect {
    int n;
    char **text;  /* GGUF form */
    float *score;
    int32_t *type;
};

static void vocab_expect_free(struct vocab_expect *v)
{
    for (int i = 0; i < v->n; i++)
        free(v->text[i]);
    free(v->text);
    free(v->score);
    free(v->type);
}

static char *strdup_(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    memcpy(d, s, n + 1);
    return d;
}

/* llama2.c's spelling of a piece: U+2581 back to ' '. */
static void put_llama2c_piece(struct buf *b, float score, const char *gguf_text, int type)
{
    struct buf t = {0};
    if (type == LLAMA2C_TOKEN_CONTROL) {
        buf_put(&t, "\n", 1);
        buf_put(&t, gguf_text, strlen(gguf_text));
        buf_put(&t, "\n", 1);
    } else {
        for (const char *p = gguf_text; *p;) {
            if ((uint8_t)p[0] == 0xE2 && (uint8_t)p[1] == 0x96 && (uint8_t)p[2] == 0x81) {
                buf_put(&t, " ", 1);
                p += 3;
            } else {
                buf_put(&t, p++, 1);
            }
        }
    }
    buf_f32(b, score);
    buf_i32(b, (int32_t)t.n);
    if (t.n)
        buf_put(b, t.p, t.n);
    free(t.p);
}

/* Random pieces of letters, U+2581, and a two-byte character. */
static char *random_piece(struct rng *r, int i)
{
    static const char *parts[] = {"a", "b", "q", "z", "\xe2\x96\x81", "\xc3\xa9", "X", "7", ".",
                                  "<", ">"};
    char buf[64];
    size_t n = 0;
    int len = 1 + (int)(rng_next(r) % 5);
    for (int k = 0; k < len; k++) {
        const char *s = parts[rng_next(r) % (sizeof parts / sizeof parts[0])];
        memcpy(buf + n, s, strlen(s));
        n += strlen(s);
    }
    /* a suffix keeps every piece distinct */
    n += (size_t)snprintf(buf + n, sizeof buf - n, "%d", i);
    buf[n] = '\0';
    return strdup_(buf);
}

static void tokenizer_make(struct buf *b, struct vocab_expect *v, const struct case_cfg *c,
                           struct rng *r)
{
    int n = c->vocab;
    v->n = n;
    v->text = calloc((size_t)n, sizeof *v->text);
    v->score = malloc((size_t)n * sizeof *v->score);
    v->type = malloc((size_t)n * sizeof *v->type);
    buf_i32(b, 17);
    for (int i = 0; i < n; i++) {
        int type = LLAMA2C_TOKEN_NORMAL;
        float score = i < 3 ? 0.0f : -(float)i + rng_uniform(r);
        char name[16];
        if (i == 0) {
            v->text[i] = strdup_("<unk>");
            type = LLAMA2C_TOKEN_UNKNOWN;
        } else if (i == 1 || i == 2) {
            v->text[i] = strdup_(i == 1 ? "<s>" : "</s>");
            type = LLAMA2C_TOKEN_CONTROL;
        } else if (c->tok_style != 2 && i < 259) {
            snprintf(name, sizeof name, "<0x%02X>", i - 3);
            v->text[i] = strdup_(name);
            type = LLAMA2C_TOKEN_BYTE;
            score = 0.0f;
        } else {
            v->text[i] = random_piece(r, i);
        }
        v->score[i] = score;
        v->type[i] = type;
        if (type == LLAMA2C_TOKEN_BYTE && c->tok_style == 0) {
            /* The older export wrote byte XX as the character U+00XX. */
            unsigned byte = (unsigned)(i - 3);
            uint8_t u[2];
            int ul = byte < 0x80 ? 1 : 2;
            if (byte < 0x80) {
                u[0] = (uint8_t)byte;
            } else {
                u[0] = (uint8_t)(0xC0 | (byte >> 6));
                u[1] = (uint8_t)(0x80 | (byte & 0x3F));
            }
            buf_f32(b, score);
            buf_i32(b, ul);
            buf_put(b, u, (size_t)ul);
        } else {
            put_llama2c_piece(b, score, v->text[i], type);
        }
    }
}

/* ---- checking a converted file ---- */

static bool kv_u32(const struct gguf_file *g, const char *key, uint32_t want)
{
    const struct gguf_kv *kv = gguf_find_kv(g, key);
    return kv && kv->value.type == GGUF_TYPE_UINT32 && kv->value.v.u32 == want;
}

static bool kv_f32(const struct gguf_file *g, const char *key, float want)
{
    const struct gguf_kv *kv = gguf_find_kv(g, key);
    return kv && kv->value.type == GGUF_TYPE_FLOAT32 && kv->value.v.f32 == want;
}

static bool kv_str(const struct gguf_file *g, const char *key, const char *want)
{
    struct gguf_str s;
    return gguf_get_str(g, key, &s) && gguf_str_eq(s, want);
}

static void check_tensor(const struct gguf_file *g, const char *name, int n_dims, int64_t ne0,
                         int64_t ne1, const float *want)
{
    const struct gguf_tensor *t = gguf_find_tensor(g, name);
    CHECKF(t != NULL, "tensor %s missing", name);
    if (!t)
        return;
    CHECKF(t->type == PG_TYPE_F32 && t->n_dims == n_dims && t->ne[0] == ne0 &&
               t->ne[1] == (n_dims == 2 ? ne1 : 1),
           "%s: type %d dims %d ne %lld x %lld", name, t->type, t->n_dims, (long long)t->ne[0],
           (long long)t->ne[1]);
    size_t n = (size_t)ne0 * (size_t)(n_dims == 2 ? ne1 : 1);
    CHECKF(t->nbytes == n * 4 && memcmp(t->data, want, n * 4) == 0, "%s: data differ", name);
}

static void check_vocab_arrays(const struct gguf_file *g, const struct vocab_expect *v,
                               const char *label)
{
    const struct gguf_value *toks = gguf_get_arr(g, "tokenizer.ggml.tokens");
    const struct gguf_value *sc = gguf_get_arr(g, "tokenizer.ggml.scores");
    const struct gguf_value *ty = gguf_get_arr(g, "tokenizer.ggml.token_type");
    CHECKF(toks && toks->v.arr.type == GGUF_TYPE_STRING && toks->v.arr.n == (uint64_t)v->n,
           "%s: tokens array", label);
    CHECKF(sc && sc->v.arr.type == GGUF_TYPE_FLOAT32 && sc->v.arr.n == (uint64_t)v->n,
           "%s: scores array", label);
    CHECKF(ty && ty->v.arr.type == GGUF_TYPE_INT32 && ty->v.arr.n == (uint64_t)v->n,
           "%s: token_type array", label);
    if (!toks || !sc || !ty || toks->v.arr.n != (uint64_t)v->n || sc->v.arr.n != (uint64_t)v->n ||
        ty->v.arr.n != (uint64_t)v->n)
        return;
    int bad_text = 0, bad_score = 0, bad_type = 0;
    for (int i = 0; i < v->n; i++) {
        float s;
        int32_t t;
        memcpy(&s, (const uint8_t *)sc->v.arr.data + 4 * (size_t)i, 4);
        memcpy(&t, (const uint8_t *)ty->v.arr.data + 4 * (size_t)i, 4);
        if (!gguf_str_eq(toks->v.arr.items[i].v.str, v->text[i]) && bad_text++ < 3)
            fprintf(stderr, "%s: token %d is '%.*s', want '%s'\n", label, i,
                    (int)toks->v.arr.items[i].v.str.len, toks->v.arr.items[i].v.str.ptr,
                    v->text[i]);
        if (s != v->score[i])
            bad_score++;
        if (t != v->type[i] && bad_type++ < 3)
            fprintf(stderr, "%s: token %d type %d, want %d\n", label, i, t, v->type[i]);
    }
    CHECKF(bad_text == 0, "%s: %d tokens differ", label, bad_text);
    CHECKF(bad_score == 0, "%s: %d scores differ", label, bad_score);
    CHECKF(bad_type == 0, "%s: %d token types differ", label, bad_type);
}

static void run_case(const struct case_cfg *c, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    struct weights w;
    weights_make(&w, c, &r);
    struct buf mb = {0}, tb = {0};
    checkpoint_bytes(&mb, c, &w, &r);
    struct vocab_expect v;
    tokenizer_make(&tb, &v, c, &r);

    char mpath[512], tpath[512], opath[512];
    snprintf(mpath, sizeof mpath, "%s/%s.bin", tmpdir, c->label);
    snprintf(tpath, sizeof tpath, "%s/%s-tok.bin", tmpdir, c->label);
    snprintf(opath, sizeof opath, "%s/%s.gguf", tmpdir, c->label);
    write_file(mpath, &mb);
    write_file(tpath, &tb);

    char err[512] = "";
    struct llama2c_config cfg;
    int rc = llama2c_convert_files(mpath, tpath, NULL, opath, &cfg, err, sizeof err);
    CHECKF(rc == 0, "%s: convert failed: %s", c->label, err);
    if (rc == 0) {
        CHECK(cfg.format == (c->v1 ? LLAMA2C_FORMAT_V1 : LLAMA2C_FORMAT_LEGACY));
        CHECK(cfg.shared_classifier == c->shared && cfg.vocab_size == c->vocab);
        CHECK(cfg.dim == c->dim && cfg.hidden_dim == c->hidden && cfg.n_layers == c->layers);
        CHECK(cfg.n_heads == c->heads && cfg.n_kv_heads == c->kv_heads && cfg.seq_len == c->seq);
        CHECK(cfg.file_size == mb.n);
    }
    struct gguf_file *g = NULL;
    rc = rc ? rc : gguf_open(opath, &g, err, sizeof err);
    CHECKF(g != NULL, "%s: cannot read the output back: %s", c->label, err);
    if (g) {
        int64_t D = c->dim, F = c->hidden, V = c->vocab;
        int64_t KV = (int64_t)c->kv_heads * (D / c->heads);
        CHECKF(kv_str(g, "general.architecture", "llama"), "%s: arch", c->label);
        CHECKF(kv_str(g, "general.name", c->label), "%s: name from the file name", c->label);
        CHECK(kv_u32(g, "general.file_type", 0));
        CHECK(kv_u32(g, "llama.context_length", (uint32_t)c->seq));
        CHECK(kv_u32(g, "llama.embedding_length", (uint32_t)c->dim));
        CHECK(kv_u32(g, "llama.block_count", (uint32_t)c->layers));
        CHECK(kv_u32(g, "llama.feed_forward_length", (uint32_t)c->hidden));
        CHECK(kv_u32(g, "llama.attention.head_count", (uint32_t)c->heads));
        CHECK(kv_u32(g, "llama.attention.head_count_kv", (uint32_t)c->kv_heads));
        CHECK(kv_u32(g, "llama.rope.dimension_count", (uint32_t)(c->dim / c->heads)));
        CHECK(kv_u32(g, "llama.vocab_size", (uint32_t)c->vocab));
        CHECK(kv_f32(g, "llama.rope.freq_base", 10000.0f));
        CHECK(kv_f32(g, "llama.attention.layer_norm_rms_epsilon", 1e-5f));
        CHECK(kv_str(g, "tokenizer.ggml.model", "llama"));
        CHECK(kv_u32(g, "tokenizer.ggml.bos_token_id", 1));
        CHECK(kv_u32(g, "tokenizer.ggml.eos_token_id", 2));
        CHECK(kv_u32(g, "tokenizer.ggml.unknown_token_id", 0));
        bool b = false;
        CHECK(gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b) && b);
        CHECK(gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b) && !b);
        check_vocab_arrays(g, &v, c->label);

        uint64_t want_tensors = 2 + 9 * (uint64_t)c->layers + (c->shared ? 0 : 1);
        CHECKF(g->n_tensors == want_tensors, "%s: %llu tensors, want %llu", c->label,
               (unsigned long long)g->n_tensors, (unsigned long long)want_tensors);
        check_tensor(g, "token_embd.weight", 2, D, V, w.emb);
        check_tensor(g, "output_norm.weight", 1, D, 1, w.rms_final);
        if (c->shared)
            CHECKF(gguf_find_tensor(g, "output.weight") == NULL, "%s: shared output", c->label);
        else
            check_tensor(g, "output.weight", 2, D, V, w.wcls);
        for (int l = 0; l < c->layers; l++) {
            char name[64];
            size_t L = (size_t)l;
#define T(suffix, nd, a, bb, arr, per)                                                      \
    snprintf(name, sizeof name, "blk.%d." suffix ".weight", l);                            \
    check_tensor(g, name, nd, a, bb, (arr) + L * (size_t)(per))
            T("attn_norm", 1, D, 1, w.rms_att, D);
            T("attn_q", 2, D, D, w.wq, D * D);
            T("attn_k", 2, D, KV, w.wk, D * KV);
            T("attn_v", 2, D, KV, w.wv, D * KV);
            T("attn_output", 2, D, D, w.wo, D * D);
            T("ffn_norm", 1, D, 1, w.rms_ffn, D);
            T("ffn_gate", 2, D, F, w.w1, F * D);
            T("ffn_down", 2, F, D, w.w2, F * D);
            T("ffn_up", 2, D, F, w.w3, F * D);
#undef T
        }
        gguf_close(g);
    }

    /* The same bytes with one float too few or too many are refused. */
    struct llama2c_config bad;
    CHECKF(llama2c_parse_config(mb.p, mb.n - 4, &bad, err, sizeof err) == PAGODA_EFORMAT,
           "%s: short file accepted", c->label);
    uint8_t *longer = malloc(mb.n + 4);
    memcpy(longer, mb.p, mb.n);
    memset(longer + mb.n, 0x3f, 4);
    CHECKF(llama2c_parse_config(longer, mb.n + 4, &bad, err, sizeof err) == PAGODA_EFORMAT,
           "%s: long file accepted", c->label);
    free(longer);
    /* A tokenizer with a token more or less than the model's vocabulary is refused. */
    struct llama2c_vocab lv;
    CHECK(llama2c_parse_tokenizer(tb.p, tb.n, c->vocab + 1, &lv, err, sizeof err) ==
          PAGODA_EFORMAT);
    CHECK(llama2c_parse_tokenizer(tb.p, tb.n, c->vocab - 1, &lv, err, sizeof err) ==
          PAGODA_EFORMAT);
    CHECK(llama2c_parse_tokenizer(tb.p, tb.n - 1, c->vocab, &lv, err, sizeof err) ==
          PAGODA_EFORMAT);

    unlink(mpath);
    unlink(tpath);
    unlink(opath);
    free(mb.p);
    free(tb.p);
    vocab_expect_free(&v);
    weights_free(&w);
}

/* ---- malformed headers ---- */

static int parse_header(const int32_t *h7, bool v1, int32_t version, uint8_t flag, char *err,
                        size_t errlen)
{
    uint8_t b[LLAMA2C_V1_HEADER_SIZE + 64] = {0};
    size_t at = 0;
    if (v1) {
        uint32_t m = LLAMA2C_MAGIC;
        memcpy(b, &m, 4);
        memcpy(b + 4, &version, 4);
        at = 8;
    }
    memcpy(b + at, h7, 28);
    if (v1)
        b[36] = flag;
    struct llama2c_config c;
    return llama2c_parse_config(b, sizeof b, &c, err, errlen);
}

static void test_bad_headers(void)
{
    char err[512];
    struct {
        int32_t h[7];
        bool v1;
        int32_t version;
        uint8_t flag;
        int want;
    } cases[] = {
        {{8, 16, 1, 2, 1, 4, 4}, true, 2, 1, PAGODA_EUNSUPPORTED},
        {{8, 16, 1, 2, 1, 4, 4}, true, 7, 1, PAGODA_EUNSUPPORTED},
        {{8, 16, 1, 2, 1, 4, 4}, true, 1, 2, PAGODA_EFORMAT},
        {{0, 16, 1, 2, 1, 4, 4}, false, 0, 0, PAGODA_EFORMAT},
        {{-8, 16, 1, 2, 1, 4, 4}, false, 0, 0, PAGODA_EFORMAT},
        {{9, 16, 1, 2, 1, 4, 4}, false, 0, 0, PAGODA_EFORMAT},  /* dim % heads */
        {{6, 16, 1, 2, 1, 4, 4}, false, 0, 0, PAGODA_EFORMAT},  /* odd head size */
        {{12, 16, 1, 3, 2, 4, 4}, false, 0, 0, PAGODA_EFORMAT}, /* heads % kv */
        {{8, 16, 1, 2, 3, 4, 4}, false, 0, 0, PAGODA_EFORMAT},  /* kv > heads */
        {{8, 16, 1, 2, 0, 4, 4}, false, 0, 0, PAGODA_EFORMAT},
        {{8, 16, 1, 2, 1, INT32_MIN, 4}, false, 0, 0, PAGODA_EFORMAT},
        {{8, 16, 1, 2, 1, -4, 4}, true, 1, 1, PAGODA_EFORMAT},
        {{8, 16, 0, 2, 1, 4, 4}, false, 0, 0, PAGODA_EFORMAT},
        {{8, 16, 1, 2, 1, 4, 0}, false, 0, 0, PAGODA_EFORMAT},
        {{1 << 30, 1 << 30, 4000, 2, 1, 1 << 24, 1 << 24}, false, 0, 0, PAGODA_EFORMAT},
        /* well-formed but the data is not the size it implies */
        {{8, 16, 1, 2, 1, 4, 4}, false, 0, 0, PAGODA_EFORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = '\0';
        int rc = parse_header(cases[i].h, cases[i].v1, cases[i].version, cases[i].flag, err,
                              sizeof err);
        CHECKF(rc == cases[i].want && err[0], "bad header case %zu: rc %d (%s)", i, rc, err);
    }
    struct llama2c_config c;
    CHECK(llama2c_parse_config("abc", 3, &c, err, sizeof err) == PAGODA_EFORMAT);
    uint32_t m = LLAMA2C_MAGIC;
    uint8_t shortv1[40] = {0};
    memcpy(shortv1, &m, 4);
    CHECK(llama2c_parse_config(shortv1, sizeof shortv1, &c, err, sizeof err) == PAGODA_EFORMAT);
}

static void test_bad_tokenizers(void)
{
    char err[512];
    struct llama2c_vocab v;
    struct buf b = {0};
    buf_i32(&b, 10);
    const char *p[3] = {"<unk>", "\n<s>\n", "\n</s>\n"};
    for (int i = 0; i < 3; i++) {
        buf_f32(&b, 0.0f);
        buf_i32(&b, (int32_t)strlen(p[i]));
        buf_put(&b, p[i], strlen(p[i]));
    }
    CHECK(llama2c_parse_tokenizer(b.p, b.n, 3, &v, err, sizeof err) == 0);
    CHECK(v.n_tokens == 3 && !strcmp(v.tokens[1], "<s>") && v.types[2] == LLAMA2C_TOKEN_CONTROL);
    CHECK(v.max_token_length == 10);
    llama2c_vocab_free(&v);
    CHECK(llama2c_parse_tokenizer(b.p, b.n, -1, &v, err, sizeof err) == 0 && v.n_tokens == 3);
    llama2c_vocab_free(&v);
    CHECK(llama2c_parse_tokenizer(b.p, 2, 3, &v, err, sizeof err) == PAGODA_EFORMAT);
    CHECK(llama2c_parse_tokenizer(b.p, 8, 3, &v, err, sizeof err) == PAGODA_EFORMAT);
    /* fewer than three tokens */
    CHECK(llama2c_parse_tokenizer(b.p, 4 + 8 + 5, -1, &v, err, sizeof err) == PAGODA_EFORMAT);

    struct buf c = {0};
    buf_put(&c, b.p, b.n);
    buf_f32(&c, 0.0f);
    buf_i32(&c, 1000); /* longer than what is left */
    buf_put(&c, "ab", 2);
    CHECK(llama2c_parse_tokenizer(c.p, c.n, -1, &v, err, sizeof err) == PAGODA_EFORMAT);
    CHECK(strstr(err, "length") != NULL);
    c.n = b.n;
    buf_f32(&c, 0.0f);
    buf_i32(&c, -1);
    CHECK(llama2c_parse_tokenizer(c.p, c.n, -1, &v, err, sizeof err) == PAGODA_EFORMAT);
    c.n = b.n;
    buf_f32(&c, NAN);
    buf_i32(&c, 1);
    buf_put(&c, "x", 1);
    CHECK(llama2c_parse_tokenizer(c.p, c.n, -1, &v, err, sizeof err) == PAGODA_EFORMAT);
    struct buf d = {0};
    buf_i32(&d, -3);
    buf_put(&d, b.p + 4, b.n - 4);
    CHECK(llama2c_parse_tokenizer(d.p, d.n, -1, &v, err, sizeof err) == PAGODA_EFORMAT);
    free(b.p);
    free(c.p);
    free(d.p);

    /* files: a missing file and an empty one are named in the message */
    char empty[512], out[512];
    snprintf(empty, sizeof empty, "%s/empty.bin", tmpdir);
    snprintf(out, sizeof out, "%s/never.gguf", tmpdir);
    FILE *f = fopen(empty, "wb");
    if (f)
        fclose(f);
    CHECK(llama2c_convert_files(empty, empty, NULL, out, NULL, err, sizeof err) < 0);
    CHECK(strstr(err, "empty.bin") != NULL);
    CHECK(llama2c_convert_files("/nonexistent/m.bin", empty, NULL, out, NULL, err, sizeof err) ==
          PAGODA_EIO);
    CHECK(access(out, F_OK) != 0);
    unlink(empty);
}

/* ---- the Llama 2 vocabulary ---- */

/* Loads a vocabulary (tokens, scores, types) out of a GGUF file. */
static int vocab_from_gguf(const struct gguf_file *g, struct vocab_expect *v)
{
    const struct gguf_value *toks = gguf_get_arr(g, "tokenizer.ggml.tokens");
    const struct gguf_value *sc = gguf_get_arr(g, "tokenizer.ggml.scores");
    const struct gguf_value *ty = gguf_get_arr(g, "tokenizer.ggml.token_type");
    if (!toks || !sc || !ty || toks->v.arr.type != GGUF_TYPE_STRING ||
        sc->v.arr.type != GGUF_TYPE_FLOAT32 || ty->v.arr.type != GGUF_TYPE_INT32 ||
        sc->v.arr.n != toks->v.arr.n || ty->v.arr.n != toks->v.arr.n)
        return -1;
    int n = (int)toks->v.arr.n;
    v->n = n;
    v->text = calloc((size_t)n, sizeof *v->text);
    v->score = malloc((size_t)n * sizeof *v->score);
    v->type = malloc((size_t)n * sizeof *v->type);
    for (int i = 0; i < n; i++) {
        struct gguf_str s = toks->v.arr.items[i].v.str;
        v->text[i] = malloc(s.len + 1);
        memcpy(v->text[i], s.ptr, s.len);
        v->text[i][s.len] = '\0';
        memcpy(&v->score[i], (const uint8_t *)sc->v.arr.data + 4 * (size_t)i, 4);
        memcpy(&v->type[i], (const uint8_t *)ty->v.arr.data + 4 * (size_t)i, 4);
    }
    return 0;
}

/* Writes a vocabulary as llama2.c's tokenizer.bin in either spelling. */
static void tokenizer_from_vocab(struct buf *b, const struct vocab_expect *v, bool older)
{
    buf_i32(b, 27);
    for (int i = 0; i < v->n; i++) {
        unsigned byte;
        if (older && v->type[i] == LLAMA2C_TOKEN_BYTE && sscanf(v->text[i], "<0x%2X>", &byte) == 1) {
            uint8_t u[2];
            int ul = byte < 0x80 ? 1 : 2;
            u[0] = byte < 0x80 ? (uint8_t)byte : (uint8_t)(0xC0 | (byte >> 6));
            u[1] = (uint8_t)(0x80 | (byte & 0x3F));
            buf_f32(b, v->score[i]);
            buf_i32(b, ul);
            buf_put(b, u, (size_t)ul);
        } else {
            put_llama2c_piece(b, v->score[i], v->text[i], v->type[i]);
        }
    }
}

static void test_llama_vocab(const char *ref_dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/vocab/ggml-vocab-llama-spm.gguf", ref_dir);
    struct gguf_file *g = NULL;
    char err[512] = "";
    CHECKF(gguf_open(path, &g, err, sizeof err) == 0, "%s: %s", path, err);
    if (!g)
        return;
    struct vocab_expect ref;
    CHECK(vocab_from_gguf(g, &ref) == 0);
    gguf_close(g);
    CHECK(ref.n == 32000);

    for (int older = 1; older >= 0; older--) {
        struct buf tb = {0};
        tokenizer_from_vocab(&tb, &ref, older);
        /* A tiny model around it so the whole conversion runs. */
        struct case_cfg c = {"llama-vocab", 8, 12, 1, 2, 1, ref.n, 4, true, false, 0};
        struct rng r;
        rng_seed(&r, 99);
        struct weights w;
        weights_make(&w, &c, &r);
        struct buf mb = {0};
        checkpoint_bytes(&mb, &c, &w, &r);
        char opath[512];
        snprintf(opath, sizeof opath, "%s/llama-vocab.gguf", tmpdir);
        int rc = llama2c_convert(mb.p, mb.n, tb.p, tb.n, "vocab", opath, NULL, err, sizeof err);
        CHECKF(rc == 0, "convert with the Llama 2 vocabulary: %s", err);
        struct gguf_file *out = NULL;
        if (rc == 0 && gguf_open(opath, &out, err, sizeof err) == 0) {
            check_vocab_arrays(out, &ref, older ? "llama-spm (older spelling)"
                                                : "llama-spm (newer spelling)");
            gguf_close(out);
        } else {
            CHECKF(0, "cannot read back: %s", err);
        }
        unlink(opath);
        free(mb.p);
        free(tb.p);
        weights_free(&w);
    }

    /* A pulled stories15M.gguf, when the caller names one. */
    const char *pulled = getenv("PAGODA_TEST_STORIES15M");
    if (pulled && *pulled) {
        struct gguf_file *s = NULL;
        CHECKF(gguf_open(pulled, &s, err, sizeof err) == 0, "%s: %s", pulled, err);
        if (s) {
            check_vocab_arrays(s, &ref, "stories15M");
            CHECK(kv_u32(s, "llama.embedding_length", 288));
            CHECK(kv_u32(s, "llama.block_count", 6));
            CHECK(kv_u32(s, "llama.attention.head_count", 6));
            CHECK(kv_u32(s, "llama.attention.head_count_kv", 6));
            CHECK(kv_u32(s, "llama.feed_forward_length", 768));
            CHECK(kv_u32(s, "llama.context_length", 256));
            CHECK(kv_u32(s, "llama.rope.dimension_count", 48));
            CHECK(s->n_tensors == 56 && gguf_find_tensor(s, "output.weight") == NULL);
            gguf_close(s);
            printf("checked %s against the Llama 2 vocabulary\n", pulled);
        }
    }
    vocab_expect_free(&ref);
}

int main(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/pagoda-llama2c-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    static const struct case_cfg cases[] = {
        /* label, dim, hidden, layers, heads, kv, vocab, seq, shared, v1, tokenizer style */
        {"legacy_shared", 48, 70, 3, 6, 2, 300, 17, true, false, 0},
        {"legacy_sep", 40, 37, 2, 4, 4, 263, 9, false, false, 1},
        {"v1_shared", 24, 65, 1, 2, 1, 301, 33, true, true, 1},
        {"v1_sep", 64, 96, 2, 8, 2, 259, 5, false, true, 0},
        {"tiny_vocab", 16, 32, 1, 1, 1, 37, 3, true, false, 2},
        {"v1_tiny_sep", 20, 11, 3, 5, 5, 41, 2, false, true, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i], 1000 + i);
    test_bad_headers();
    test_bad_tokenizers();
    const char *ref = test_reference_dir();
    if (ref)
        test_llama_vocab(ref);
    else
        printf("reference data absent: the Llama 2 vocabulary check is skipped\n");
    rmdir(tmpdir);
    TEST_END();
}
