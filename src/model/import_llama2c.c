/*
 * import_llama2c.c: llama2.c checkpoints and tokenizers to GGUF.
 *
 * The weights are written as they are (F32, no copy): llama2.c's matrices are
 * stored row-major as (out, in), which is GGUF's ne = {in, out}. No Q/K row
 * permutation is needed: llama2.c's run.c rotates adjacent pairs (q[2i],
 * q[2i+1]) of each head by pos * 10000^(-2i/head_size), which is exactly the
 * llama family's "normal" RoPE that GGUF llama files assume. (Converters from
 * Hugging Face permute because HF stores the rotate-half layout instead.)
 */
#include "model/import_llama2c.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "gguf/gguf.h"
#include "ops/types.h"

/* Generous bounds that keep every size computation far from overflow. */
#define LLAMA2C_MAX_DIM (1 << 20)
#define LLAMA2C_MAX_LAYERS 4096
#define LLAMA2C_MAX_VOCAB (1 << 24)
#define LLAMA2C_MAX_SEQ (1 << 24)

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "llama2.c files and GGUF are little-endian; this importer maps them as they are"
#endif

static int32_t rd_i32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static float rd_f32(const uint8_t *p)
{
    float v;
    memcpy(&v, p, 4);
    return v;
}

/* ---- checkpoint layout ---- */

/* Where each weight group starts, in floats from the end of the header. Each
 * per-layer group holds n_layers equal slices. */
struct llama2c_layout {
    uint64_t emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, wcls;
    uint64_t total; /* floats in all, freq_cis tables of the legacy layout included */
};

static uint64_t layout_take(uint64_t *cursor, uint64_t n)
{
    uint64_t at = *cursor;
    *cursor += n;
    return at;
}

static void llama2c_layout_of(const struct llama2c_config *c, struct llama2c_layout *lo)
{
    uint64_t D = (uint64_t)c->dim, F = (uint64_t)c->hidden_dim, L = (uint64_t)c->n_layers;
    uint64_t V = (uint64_t)c->vocab_size, hs = D / (uint64_t)c->n_heads;
    uint64_t KV = (uint64_t)c->n_kv_heads * hs;
    uint64_t cls = c->shared_classifier ? 0 : V * D;
    uint64_t cur = 0;
    memset(lo, 0, sizeof *lo);
    if (c->format == LLAMA2C_FORMAT_LEGACY) {
        lo->emb = layout_take(&cur, V * D);
        lo->rms_att = layout_take(&cur, L * D);
        lo->wq = layout_take(&cur, L * D * D);
        lo->wk = layout_take(&cur, L * D * KV);
        lo->wv = layout_take(&cur, L * D * KV);
        lo->wo = layout_take(&cur, L * D * D);
        lo->rms_ffn = layout_take(&cur, L * D);
        lo->w1 = layout_take(&cur, L * F * D);
        lo->w2 = layout_take(&cur, L * D * F);
        lo->w3 = layout_take(&cur, L * F * D);
        lo->rms_final = layout_take(&cur, D);
        /* freq_cis_real and freq_cis_imag, (seq_len, head_size / 2) each: unused. */
        layout_take(&cur, (uint64_t)c->seq_len * hs);
        lo->wcls = layout_take(&cur, cls);
    } else {
        lo->rms_att = layout_take(&cur, L * D);
        lo->rms_ffn = layout_take(&cur, L * D);
        lo->rms_final = layout_take(&cur, D);
        lo->emb = layout_take(&cur, V * D);
        lo->wq = layout_take(&cur, L * D * D);
        lo->wk = layout_take(&cur, L * D * KV);
        lo->wv = layout_take(&cur, L * D * KV);
        lo->wo = layout_take(&cur, L * D * D);
        lo->w1 = layout_take(&cur, L * F * D);
        lo->w2 = layout_take(&cur, L * D * F);
        lo->w3 = layout_take(&cur, L * F * D);
        lo->wcls = layout_take(&cur, cls);
    }
    lo->total = cur;
}

static int check_range(const char *what, int v, int hi, char *err, size_t errlen)
{
    if (v <= 0 || v > hi)
        return err_set(err, errlen, PAGODA_EFORMAT,
                       "llama2.c checkpoint: %s = %d is outside 1..%d", what, v, hi);
    return PAGODA_OK;
}

int llama2c_parse_config(const void *data, size_t size, struct llama2c_config *cfg, char *err,
                         size_t errlen)
{
    const uint8_t *p = data;
    memset(cfg, 0, sizeof *cfg);
    if (size < 28)
        return err_set(err, errlen, PAGODA_EFORMAT,
                       "llama2.c checkpoint: %zu bytes is too short for a header", size);
    size_t at = 0;
    uint32_t magic;
    memcpy(&magic, p, 4);
    if (magic == LLAMA2C_MAGIC) {
        if (size < LLAMA2C_V1_HEADER_SIZE)
            return err_set(err, errlen, PAGODA_EFORMAT,
                           "llama2.c checkpoint: %zu bytes is too short for a version header",
                           size);
        int32_t version = rd_i32(p + 4);
        if (version == 2)
            return err_set(err, errlen, PAGODA_EUNSUPPORTED,
                           "llama2.c checkpoint: version 2 (int8) is not supported; export "
                           "the model with --version 1 (float32)");
        if (version != 1)
            return err_set(err, errlen, PAGODA_EUNSUPPORTED,
                           "llama2.c checkpoint: unknown version %d", (int)version);
        cfg->format = LLAMA2C_FORMAT_V1;
        at = 8;
    } else {
        cfg->format = LLAMA2C_FORMAT_LEGACY;
    }
    int32_t h[7];
    for (int i = 0; i < 7; i++)
        h[i] = rd_i32(p + at + 4 * (size_t)i);
    cfg->dim = h[0];
    cfg->hidden_dim = h[1];
    cfg->n_layers = h[2];
    cfg->n_heads = h[3];
    cfg->n_kv_heads = h[4];
    cfg->seq_len = h[6];
    if (cfg->format == LLAMA2C_FORMAT_LEGACY) {
        /* The legacy layout flags a separate classifier with a negative vocab_size. */
        cfg->shared_classifier = h[5] > 0;
        cfg->vocab_size = h[5] > 0 ? h[5] : (h[5] == INT32_MIN ? 0 : -h[5]);
        cfg->header_size = 28;
    } else {
        uint8_t shared = p[36];
        if (shared > 1)
            return err_set(err, errlen, PAGODA_EFORMAT,
                           "llama2.c checkpoint: shared_classifier flag is %u, not 0 or 1",
                           shared);
        cfg->shared_classifier = shared == 1;
        cfg->vocab_size = h[5];
        cfg->header_size = LLAMA2C_V1_HEADER_SIZE;
    }
    int rc;
    if ((rc = check_range("dim", cfg->dim, LLAMA2C_MAX_DIM, err, errlen)) < 0 ||
        (rc = check_range("hidden_dim", cfg->hidden_dim, LLAMA2C_MAX_DIM, err, errlen)) < 0 ||
        (rc = check_range("n_layers", cfg->n_layers, LLAMA2C_MAX_LAYERS, err, errlen)) < 0 ||
        (rc = check_range("n_heads", cfg->n_heads, cfg->dim, err, errlen)) < 0 ||
        (rc = check_range("n_kv_heads", cfg->n_kv_heads, cfg->n_heads, err, errlen)) < 0 ||
        (rc = check_range("vocab_size", cfg->vocab_size, LLAMA2C_MAX_VOCAB, err, errlen)) < 0 ||
        (rc = check_range("seq_len", cfg->seq_len, LLAMA2C_MAX_SEQ, err, errlen)) < 0)
        return rc;
    if (cfg->dim % cfg->n_heads != 0)
        return err_set(err, errlen, PAGODA_EFORMAT,
                       "llama2.c checkpoint: dim %d is not a multiple of n_heads %d", cfg->dim,
                       cfg->n_heads);
    if ((cfg->dim / cfg->n_heads) % 2 != 0)
        return err_set(err, errlen, PAGODA_EFORMAT,
                       "llama2.c checkpoint: head size %d is odd (RoPE rotates pairs)",
                       cfg->dim / cfg->n_heads);
    if (cfg->n_heads % cfg->n_kv_heads != 0)
        return err_set(err, errlen, PAGODA_EFORMAT,
                       "llama2.c checkpoint: n_heads %d is not a multiple of n_kv_heads %d",
                       cfg->n_heads, cfg->n_kv_heads);
    struct llama2c_layout lo;
    llama2c_layout_of(cfg, &lo);
    uint64_t want = (uint64_t)cfg->header_size + lo.total * 4;
    if (want > SIZE_MAX)
        return err_set(err, errlen, PAGODA_ERANGE,
                       "llama2.c checkpoint: %llu bytes of weights do not fit in memory",
                       (unsigned long long)want);
    cfg->file_size = (size_t)want;
    if (want != size)
        return err_set(err, errlen, PAGODA_EFORMAT,
                       "llama2.c checkpoint: the header (dim %d, hidden %d, %d layers, %d/%d "
                       "heads, vocab %d, seq %d, %s classifier) implies %llu bytes, the data "
                       "has %zu",
                       cfg->dim, cfg->hidden_dim, cfg->n_layers, cfg->n_heads, cfg->n_kv_heads,
                       cfg->vocab_size, cfg->seq_len,
                       cfg->shared_classifier ? "shared" : "separate",
                       (unsigned long long)want, size);
    return PAGODA_OK;
}

/* ---- tokenizer ---- */

void llama2c_vocab_free(struct llama2c_vocab *v)
{
    if (!v)
        return;
    if (v->tokens)
        for (int i = 0; i < v->n_tokens; i++)
            free(v->tokens[i]);
    free(v->tokens);
    free(v->scores);
    free(v->types);
    memset(v, 0, sizeof *v);
}

/* One token as the file stores it. */
struct raw_piece {
    const uint8_t *bytes;
    int32_t len;
};

/* The UTF-8 form of code point b (< 256): how the older tokenizer export wrote
 * byte-fallback token <0xXX> (as the character U+00XX). Returns the length. */
static int utf8_of_byte(unsigned b, uint8_t out[2])
{
    if (b < 0x80) {
        out[0] = (uint8_t)b;
        return 1;
    }
    out[0] = (uint8_t)(0xC0 | (b >> 6));
    out[1] = (uint8_t)(0x80 | (b & 0x3F));
    return 2;
}

static bool piece_is(const struct raw_piece *r, const char *s)
{
    size_t n = strlen(s);
    return (size_t)r->len == n && memcmp(r->bytes, s, n) == 0;
}

static bool is_hex(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

/* "<0xXX>": a byte token as SentencePiece names it (and newer exports keep it). */
static bool piece_is_byte_name(const struct raw_piece *r)
{
    const uint8_t *b = r->bytes;
    return r->len == 6 && b[0] == '<' && b[1] == '0' && b[2] == 'x' && is_hex(b[3]) &&
           is_hex(b[4]) && b[5] == '>';
}

/* True when ids 3..258 hold the 256 bytes in the older export's spelling, which
 * is where SentencePiece's byte fallback puts them. Decided for the whole
 * block so a vocabulary without byte tokens is never misread. */
static bool has_raw_byte_block(const struct raw_piece *raw, int n)
{
    if (n < 259)
        return false;
    for (unsigned b = 0; b < 256; b++) {
        uint8_t u[2];
        int ul = utf8_of_byte(b, u);
        const struct raw_piece *r = &raw[3 + b];
        if (r->len != ul || memcmp(r->bytes, u, (size_t)ul) != 0)
            return false;
    }
    return true;
}

static char *dup_cstr(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

/* A normal piece with llama2.c's spaces turned back into SentencePiece's U+2581. */
static char *spm_piece(const struct raw_piece *r)
{
    size_t spaces = 0;
    for (int32_t i = 0; i < r->len; i++)
        spaces += r->bytes[i] == ' ';
    char *d = malloc((size_t)r->len + 2 * spaces + 1);
    if (!d)
        return NULL;
    size_t o = 0;
    for (int32_t i = 0; i < r->len; i++) {
        if (r->bytes[i] == ' ') {
            d[o++] = (char)0xE2;
            d[o++] = (char)0x96;
            d[o++] = (char)0x81;
        } else {
            d[o++] = (char)r->bytes[i];
        }
    }
    d[o] = '\0';
    return d;
}

int llama2c_parse_tokenizer(const void *data, size_t size, int n_tokens,
                            struct llama2c_vocab *out, char *err, size_t errlen)
{
    const uint8_t *p = data;
    memset(out, 0, sizeof *out);
    if (size < 4)
        return err_set(err, errlen, PAGODA_EFORMAT, "llama2.c tokenizer: %zu bytes is too short",
                       size);
    int32_t max_len = rd_i32(p);
    if (max_len < 0)
        return err_set(err, errlen, PAGODA_EFORMAT,
                       "llama2.c tokenizer: max_token_length %d is negative", (int)max_len);
    /* First pass: count the entries and check every length against the data. */
    size_t at = 4;
    int count = 0;
    while (at < size) {
        if (size - at < 8)
            return err_set(err, errlen, PAGODA_EFORMAT,
                           "llama2.c tokenizer: token %d is cut off at byte %zu", count, at);
        int32_t len = rd_i32(p + at + 4);
        float score = rd_f32(p + at);
        if (len < 0 || (size_t)len > size - at - 8)
            return err_set(err, errlen, PAGODA_EFORMAT,
                           "llama2.c tokenizer: token %d at byte %zu has length %d beyond the "
                           "data",
                           count, at, (int)len);
        if (!isfinite(score))
            return err_set(err, errlen, PAGODA_EFORMAT,
                           "llama2.c tokenizer: token %d has a non-finite score", count);
        if (count == LLAMA2C_MAX_VOCAB)
            return err_set(err, errlen, PAGODA_EFORMAT,
                           "llama2.c tokenizer: more than %d tokens", LLAMA2C_MAX_VOCAB);
        at += 8 + (size_t)len;
        count++;
    }
    if (n_tokens >= 0 && count != n_tokens)
        return err_set(err, errlen, PAGODA_EFORMAT,
                       "llama2.c tokenizer: it holds %d tokens but the model's vocab_size is %d",
                       count, n_tokens);
    if (count < 3)
        return err_set(err, errlen, PAGODA_EFORMAT,
                       "llama2.c tokenizer: %d tokens; <unk>, <s> and </s> at least are needed",
                       count);

    struct raw_piece *raw = malloc((size_t)count * sizeof *raw);
    out->tokens = calloc((size_t)count, sizeof *out->tokens);
    out->scores = malloc((size_t)count * sizeof *out->scores);
    out->types = malloc((size_t)count * sizeof *out->types);
    out->n_tokens = count;
    out->max_token_length = max_len;
    if (!raw || !out->tokens || !out->scores || !out->types) {
        free(raw);
        llama2c_vocab_free(out);
        return err_set(err, errlen, PAGODA_ENOMEM, "llama2.c tokenizer: out of memory");
    }
    at = 4;
    for (int i = 0; i < count; i++) {
        out->scores[i] = rd_f32(p + at);
        raw[i].len = rd_i32(p + at + 4);
        raw[i].bytes = p + at + 8;
        at += 8 + (size_t)raw[i].len;
    }

    bool raw_bytes = has_raw_byte_block(raw, count);
    for (int i = 0; i < count; i++) {
        const struct raw_piece *r = &raw[i];
        char *text;
        int32_t type = LLAMA2C_TOKEN_NORMAL;
        if (raw_bytes && i >= 3 && i < 259) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", (unsigned)(i - 3));
            text = dup_cstr(name);
            type = LLAMA2C_TOKEN_BYTE;
        } else if (piece_is_byte_name(r)) {
            text = spm_piece(r);
            type = LLAMA2C_TOKEN_BYTE;
        } else if (piece_is(r, "\n<s>\n") || piece_is(r, "<s>")) {
            text = dup_cstr("<s>");
            type = LLAMA2C_TOKEN_CONTROL;
        } else if (piece_is(r, "\n</s>\n") || piece_is(r, "</s>")) {
            text = dup_cstr("</s>");
            type = LLAMA2C_TOKEN_CONTROL;
        } else if (piece_is(r, "<unk>")) {
            text = dup_cstr("<unk>");
            type = LLAMA2C_TOKEN_UNKNOWN;
        } else {
            text = spm_piece(r);
        }
        if (!text) {
            free(raw);
            llama2c_vocab_free(out);
            return err_set(err, errlen, PAGODA_ENOMEM, "llama2.c tokenizer: out of memory");
        }
        out->tokens[i] = text;
        out->types[i] = type;
    }
    free(raw);
    return PAGODA_OK;
}

/* ---- GGUF output ---- */

static int add_f32(struct gguf_writer *w, const char *name, int n_dims, int64_t ne0, int64_t ne1,
                   const uint8_t *weights, uint64_t at_floats, char *err, size_t errlen)
{
    int64_t ne[2] = {ne0, ne1};
    size_t n = (size_t)ne0 * (size_t)(n_dims == 2 ? ne1 : 1);
    return gguf_writer_add_tensor(w, name, PG_TYPE_F32, n_dims, ne, weights + at_floats * 4,
                                  n * sizeof(float), err, errlen);
}

static int llama2c_add_tensors(struct gguf_writer *w, const struct llama2c_config *c,
                               const uint8_t *weights, char *err, size_t errlen)
{
    struct llama2c_layout lo;
    llama2c_layout_of(c, &lo);
    int64_t D = c->dim, F = c->hidden_dim, V = c->vocab_size;
    int64_t KV = (int64_t)c->n_kv_heads * (D / c->n_heads);
    char name[64];
    int rc = add_f32(w, "token_embd.weight", 2, D, V, weights, lo.emb, err, errlen);
    for (int l = 0; rc == 0 && l < c->n_layers; l++) {
        uint64_t L = (uint64_t)l;
        struct {
            const char *suffix;
            int n_dims;
            int64_t ne0, ne1;
            uint64_t at;
        } t[] = {
            {"attn_norm", 1, D, 1, lo.rms_att + L * (uint64_t)D},
            {"attn_q", 2, D, D, lo.wq + L * (uint64_t)(D * D)},
            {"attn_k", 2, D, KV, lo.wk + L * (uint64_t)(D * KV)},
            {"attn_v", 2, D, KV, lo.wv + L * (uint64_t)(D * KV)},
            {"attn_output", 2, D, D, lo.wo + L * (uint64_t)(D * D)},
            {"ffn_norm", 1, D, 1, lo.rms_ffn + L * (uint64_t)D},
            {"ffn_gate", 2, D, F, lo.w1 + L * (uint64_t)(F * D)}, /* w1 */
            {"ffn_up", 2, D, F, lo.w3 + L * (uint64_t)(F * D)},   /* w3 */
            {"ffn_down", 2, F, D, lo.w2 + L * (uint64_t)(D * F)}, /* w2 */
        };
        for (size_t k = 0; rc == 0 && k < sizeof t / sizeof t[0]; k++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, t[k].suffix);
            rc = add_f32(w, name, t[k].n_dims, t[k].ne0, t[k].ne1, weights, t[k].at, err,
                         errlen);
        }
    }
    if (rc == 0)
        rc = add_f32(w, "output_norm.weight", 1, D, 1, weights, lo.rms_final, err, errlen);
    /* A shared classifier is left out: readers fall back to token_embd.weight. */
    if (rc == 0 && !c->shared_classifier)
        rc = add_f32(w, "output.weight", 2, D, V, weights, lo.wcls, err, errlen);
    return rc;
}

static int llama2c_add_metadata(struct gguf_writer *w, const struct llama2c_config *c,
                                const struct llama2c_vocab *v, const char *name)
{
    int rc = 0;
    rc = rc ? rc : gguf_writer_set_str(w, "general.architecture", "llama");
    rc = rc ? rc : gguf_writer_set_str(w, "general.name", name);
    rc = rc ? rc : gguf_writer_set_u32(w, "general.file_type", 0); /* all F32 */
    rc = rc ? rc : gguf_writer_set_u32(w, "llama.context_length", (uint32_t)c->seq_len);
    rc = rc ? rc : gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)c->dim);
    rc = rc ? rc : gguf_writer_set_u32(w, "llama.block_count", (uint32_t)c->n_layers);
    rc = rc ? rc : gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)c->hidden_dim);
    rc = rc ? rc : gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads);
    rc = rc ? rc
            : gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
    rc = rc ? rc
            : gguf_writer_set_u32(w, "llama.rope.dimension_count",
                                  (uint32_t)(c->dim / c->n_heads));
    /* llama2.c hard-codes both in run.c and model.py. */
    rc = rc ? rc : gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f);
    rc = rc ? rc : gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    rc = rc ? rc : gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)c->vocab_size);
    rc = rc ? rc : gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    rc = rc ? rc
            : gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens",
                                      (const char *const *)v->tokens, (uint64_t)v->n_tokens);
    rc = rc ? rc
            : gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, v->scores,
                                  (uint64_t)v->n_tokens);
    rc = rc ? rc
            : gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, v->types,
                                  (uint64_t)v->n_tokens);
    /* run.c's fixed ids, which are SentencePiece's for Llama 2. */
    rc = rc ? rc : gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    rc = rc ? rc : gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    rc = rc ? rc : gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    rc = rc ? rc : gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    rc = rc ? rc : gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false);
    return rc;
}

int llama2c_convert(const void *model, size_t model_size, const void *tokenizer,
                    size_t tokenizer_size, const char *name, const char *out_path,
                    struct llama2c_config *cfg_out, char *err, size_t errlen)
{
    struct llama2c_config cfg;
    int rc = llama2c_parse_config(model, model_size, &cfg, err, errlen);
    if (rc < 0)
        return rc;
    struct llama2c_vocab vocab;
    rc = llama2c_parse_tokenizer(tokenizer, tokenizer_size, cfg.vocab_size, &vocab, err, errlen);
    if (rc < 0)
        return rc;
    struct gguf_writer *w = gguf_writer_create();
    if (!w) {
        llama2c_vocab_free(&vocab);
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    }
    rc = llama2c_add_metadata(w, &cfg, &vocab, name && *name ? name : "llama2c");
    if (rc < 0)
        err_set(err, errlen, rc, "cannot set GGUF metadata: %s", pagoda_status_str(rc));
    if (rc == 0)
        rc = llama2c_add_tensors(w, &cfg, (const uint8_t *)model + cfg.header_size, err, errlen);
    if (rc == 0)
        rc = gguf_writer_write(w, out_path, err, errlen);
    gguf_writer_free(w);
    llama2c_vocab_free(&vocab);
    if (rc == 0 && cfg_out)
        *cfg_out = cfg;
    return rc;
}

/* ---- files ---- */

struct mapped {
    void *data;
    size_t size;
};

static int map_file(const char *path, struct mapped *m, char *err, size_t errlen)
{
    m->data = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, errlen, PAGODA_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return err_set(err, errlen, PAGODA_EIO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(err, errlen, PAGODA_EIO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return err_set(err, errlen, PAGODA_EFORMAT, "%s: empty file", path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return err_set(err, errlen, PAGODA_EIO, "%s: cannot map: %s", path, strerror(e));
    m->data = p;
    m->size = (size_t)st.st_size;
    return PAGODA_OK;
}

static void unmap_file(struct mapped *m)
{
    if (m->data)
        munmap(m->data, m->size);
    m->data = NULL;
}

/* The file's base name without its last extension ("out/stories15M.bin" -> "stories15M"). */
static void stem_of(const char *path, char *buf, size_t buflen)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(buf, buflen, "%s", base);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf)
        *dot = '\0';
    if (!buf[0])
        snprintf(buf, buflen, "llama2c");
}

int llama2c_convert_files(const char *model_path, const char *tokenizer_path, const char *name,
                          const char *out_path, struct llama2c_config *cfg_out, char *err,
                          size_t errlen)
{
    struct mapped m, t;
    int rc = map_file(model_path, &m, err, errlen);
    if (rc < 0)
        return rc;
    rc = map_file(tokenizer_path, &t, err, errlen);
    if (rc < 0) {
        unmap_file(&m);
        return rc;
    }
    char stem[256];
    if (!name)
        stem_of(model_path, stem, sizeof stem);
    rc = llama2c_convert(m.data, m.size, t.data, t.size, name ? name : stem, out_path, cfg_out,
                         err, errlen);
    if (rc < 0 && rc != PAGODA_EIO) {
        /* Say which input was wrong; the checker's messages name the part. */
        const char *which = strstr(err ? err : "", "tokenizer") ? tokenizer_path : model_path;
        if (err && strncmp(err, "llama2.c", 8) == 0)
            err_prefix(err, errlen, "%s", which);
    }
    unmap_file(&t);
    unmap_file(&m);
    return rc;
}
