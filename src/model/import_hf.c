/*
 * import_hf.c: Hugging Face model folders to GGUF (see import_hf.h). The
 * weights are read through the safetensors reader, renamed, permuted where
 * the GGUF llama layout needs it, and written in the requested preset's
 * per-tensor types. The tokenizer is rebuilt from tokenizer.json: merges
 * become SentencePiece-style scores for byte-fallback (llama) vocabularies
 * and stay merges for byte-level BPE ones.
 */
#include "model/import_hf.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "gguf/gguf.h"
#include "model/quant_recipe.h"
#include "model/quantize.h"
#include "model/safetensors.h"
#include "ops/types.h"

#define HF_MAX_JSON ((size_t)256 << 20)

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

/* ---- config.json ---- */

static int json_int(const cJSON *root, const char *key, bool required, int64_t dflt, int64_t lo,
                    int64_t hi, int *out, char *err, size_t errlen)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    double v = (double)dflt;
    if (j && !cJSON_IsNull(j)) {
        if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble))
            return err_set(err, errlen, PAGODA_EFORMAT, "config.json: %s is not an integer", key);
        v = j->valuedouble;
    } else if (required) {
        return err_set(err, errlen, PAGODA_EFORMAT, "config.json: %s is missing", key);
    }
    if (v < (double)lo || v > (double)hi)
        return err_set(err, errlen, PAGODA_EFORMAT, "config.json: %s = %g is out of range [%lld, %lld]",
                       key, v, (long long)lo, (long long)hi);
    *out = (int)v;
    return 0;
}

static int json_num(const cJSON *root, const char *key, double dflt, double lo, double hi,
                    double *out, char *err, size_t errlen)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    double v = dflt;
    if (j && !cJSON_IsNull(j)) {
        if (!cJSON_IsNumber(j))
            return err_set(err, errlen, PAGODA_EFORMAT, "config.json: %s is not a number", key);
        v = j->valuedouble;
    }
    if (!(v >= lo && v <= hi))
        return err_set(err, errlen, PAGODA_EFORMAT, "config.json: %s = %g is out of range", key, v);
    *out = v;
    return 0;
}

static int parse_rope_scaling(const cJSON *root, struct hf_config *c, char *err, size_t errlen)
{
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (!rs || cJSON_IsNull(rs))
        return 0;
    if (!cJSON_IsObject(rs))
        return err_set(err, errlen, PAGODA_EFORMAT, "config.json: rope_scaling is not an object");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!cJSON_IsString(t))
        t = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!cJSON_IsString(t))
        return err_set(err, errlen, PAGODA_EFORMAT, "config.json: rope_scaling has no type");
    const char *type = t->valuestring;
    if (!strcmp(type, "default"))
        return 0;
    int rc;
    if (!strcmp(type, "linear")) {
        if ((rc = json_num(rs, "factor", -1, 1e-3, 1e6, &c->rope_linear, err, errlen)))
            return rc;
        return 0;
    }
    if (!strcmp(type, "llama3")) {
        c->rope_llama3 = true;
        if ((rc = json_num(rs, "factor", -1, 1e-3, 1e6, &c->l3_factor, err, errlen)) ||
            (rc = json_num(rs, "low_freq_factor", -1, 1e-6, 1e6, &c->l3_low, err, errlen)) ||
            (rc = json_num(rs, "high_freq_factor", -1, 1e-6, 1e6, &c->l3_high, err, errlen)) ||
            (rc = json_num(rs, "original_max_position_embeddings", -1, 1, 1e9, &c->l3_orig_ctx,
                           err, errlen)))
            return rc;
        if (c->l3_high <= c->l3_low)
            return err_set(err, errlen, PAGODA_EFORMAT,
                           "config.json: rope_scaling high_freq_factor must exceed low_freq_factor");
        return 0;
    }
    return err_set(err, errlen, PAGODA_EUNSUPPORTED,
                   "config.json: rope_scaling type '%.32s' is not supported (linear, llama3)", type);
}

int hf_parse_config(const char *json, struct hf_config *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    cJSON *root = cJSON_Parse(json);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return err_set(err, errlen, PAGODA_EFORMAT, "config.json is not a JSON object");
    }
    int rc = 0;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!cJSON_IsString(mt) || strlen(mt->valuestring) >= sizeof c->model_type) {
        rc = err_set(err, errlen, PAGODA_EFORMAT, "config.json: model_type is missing");
        goto done;
    }
    strcpy(c->model_type, mt->valuestring);
    if (!strcmp(mt->valuestring, "llama") || !strcmp(mt->valuestring, "mistral")) {
        strcpy(c->arch, "llama");
    } else if (!strcmp(mt->valuestring, "qwen2") || !strcmp(mt->valuestring, "qwen3")) {
        strcpy(c->arch, mt->valuestring);
    } else {
        rc = err_set(err, errlen, PAGODA_EUNSUPPORTED,
                     "config.json: model_type '%s' is not supported (llama, mistral, qwen2, qwen3)",
                     c->model_type);
        goto done;
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (cJSON_IsString(act) && strcmp(act->valuestring, "silu")) {
        rc = err_set(err, errlen, PAGODA_EUNSUPPORTED, "config.json: hidden_act '%.32s' (silu expected)",
                     act->valuestring);
        goto done;
    }
    if ((rc = json_int(root, "hidden_size", true, 0, 1, 1 << 20, &c->n_embd, err, errlen)) ||
        (rc = json_int(root, "num_hidden_layers", true, 0, 1, 4096, &c->n_layer, err, errlen)) ||
        (rc = json_int(root, "num_attention_heads", true, 0, 1, 4096, &c->n_head, err, errlen)) ||
        (rc = json_int(root, "num_key_value_heads", false, c->n_head, 1, c->n_head, &c->n_head_kv,
                       err, errlen)) ||
        (rc = json_int(root, "intermediate_size", true, 0, 1, 1 << 22, &c->n_ff, err, errlen)) ||
        (rc = json_int(root, "vocab_size", true, 0, 1, 1 << 24, &c->n_vocab, err, errlen)) ||
        (rc = json_int(root, "max_position_embeddings", false, 4096, 1, 1 << 30, &c->n_ctx, err,
                       errlen)))
        goto done;
    const int dflt_hd = c->n_embd % c->n_head == 0 ? c->n_embd / c->n_head : 0;
    if ((rc = json_int(root, "head_dim", dflt_hd == 0, dflt_hd, 2, 4096, &c->head_dim, err, errlen)) ||
        (rc = json_num(root, "rms_norm_eps", 1e-6, 1e-12, 1.0, &c->rms_eps, err, errlen)) ||
        (rc = json_num(root, "rope_theta", 10000.0, 1.0 + 1e-9, 1e12, &c->rope_theta, err, errlen)) ||
        (rc = parse_rope_scaling(root, c, err, errlen)))
        goto done;
    if (c->n_head % c->n_head_kv) {
        rc = err_set(err, errlen, PAGODA_EFORMAT,
                     "config.json: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                     c->n_head, c->n_head_kv);
        goto done;
    }
    if (c->head_dim % 2) {
        rc = err_set(err, errlen, PAGODA_EFORMAT, "config.json: head size %d is odd", c->head_dim);
        goto done;
    }
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    c->tied = cJSON_IsTrue(tie);
done:
    cJSON_Delete(root);
    return rc;
}

/* ---- a string -> id table (vocabularies have up to ~10^6 entries) ---- */

struct str_map {
    size_t cap;        /* power of two */
    int32_t *slot;     /* id + 1, 0 when empty */
    char *const *keys; /* keys[id] */
};

static uint64_t str_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static int map_init(struct str_map *m, char *const *keys, int n)
{
    m->cap = 16;
    while (m->cap < (size_t)n * 2)
        m->cap *= 2;
    m->keys = keys;
    m->slot = calloc(m->cap, sizeof *m->slot);
    if (!m->slot)
        return -1;
    for (int i = 0; i < n; i++) {
        size_t k = str_hash(keys[i], strlen(keys[i])) & (m->cap - 1);
        while (m->slot[k])
            k = (k + 1) & (m->cap - 1);
        m->slot[k] = i + 1;
    }
    return 0;
}

static int map_find(const struct str_map *m, const char *s, size_t n)
{
    size_t k = str_hash(s, n) & (m->cap - 1);
    while (m->slot[k]) {
        const char *key = m->keys[m->slot[k] - 1];
        if (strlen(key) == n && !memcmp(key, s, n))
            return m->slot[k] - 1;
        k = (k + 1) & (m->cap - 1);
    }
    return -1;
}

/* ---- tokenizer.json / tokenizer_config.json ---- */

struct hf_vocab {
    int n;
    char **tokens;
    float *scores;
    int32_t *types;
    char **merges;
    int n_merges;
    bool spm; /* byte-fallback vocabulary: tokenizer.ggml.model "llama" */
    const char *pre;
    bool add_space_prefix;
};

static void vocab_free(struct hf_vocab *v)
{
    for (int i = 0; v->tokens && i < v->n; i++)
        free(v->tokens[i]);
    free(v->tokens);
    free(v->scores);
    free(v->types);
    for (int i = 0; v->merges && i < v->n_merges; i++)
        free(v->merges[i]);
    free(v->merges);
}

static int set_token(struct hf_vocab *v, int id, const char *text, int type, char *err,
                     size_t errlen)
{
    if (id < 0 || id >= v->n)
        return err_set(err, errlen, PAGODA_EFORMAT,
                       "tokenizer.json: token '%.40s' has id %d outside the model's %d rows",
                       text, id, v->n);
    if (v->tokens[id] && strcmp(v->tokens[id], text))
        return err_set(err, errlen, PAGODA_EFORMAT, "tokenizer.json: id %d is both '%.40s' and '%.40s'",
                       id, v->tokens[id], text);
    if (!v->tokens[id] && !(v->tokens[id] = strdup(text)))
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    v->types[id] = type;
    return 0;
}

static bool is_byte_token(const char *s)
{
    return strlen(s) == 6 && !strncmp(s, "<0x", 3) && s[5] == '>' &&
           strchr("0123456789ABCDEF", s[3]) && strchr("0123456789ABCDEF", s[4]);
}

/* The pre-tokenizer name of a byte-level BPE tokenizer, from its regex. */
static const char *detect_pre(const cJSON *tok)
{
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(tok, "pre_tokenizer");
    if (!pt || cJSON_IsNull(pt))
        return "default";
    char *s = cJSON_PrintUnformatted(pt);
    if (!s)
        return "default";
    const char *name = "default";
    if (strstr(s, "p{N}{1,3}"))
        name = "llama-bpe";
    else if (strstr(s, "(?i:'s|'t|'re|'ve|'m|'ll|'d)") && strstr(s, "p{N}|"))
        name = "qwen2";
    else if (strstr(s, "\"ByteLevel\"") && strstr(s, "\"use_regex\":true"))
        name = "gpt-2";
    free(s);
    return name;
}

/* A special-token entry of tokenizer_config.json: a string or {"content": ...}. */
static const char *token_content(const cJSON *j)
{
    if (cJSON_IsString(j))
        return j->valuestring;
    if (cJSON_IsObject(j)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "content");
        if (cJSON_IsString(c))
            return c->valuestring;
    }
    return NULL;
}

static int read_vocab(const cJSON *tok, struct hf_vocab *v, int n_vocab, char *err, size_t errlen)
{
    memset(v, 0, sizeof *v);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tok, "model");
    const cJSON *mtype = cJSON_GetObjectItemCaseSensitive(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(model) || !cJSON_IsString(mtype))
        return err_set(err, errlen, PAGODA_EFORMAT, "tokenizer.json: no model.type");
    if (strcmp(mtype->valuestring, "BPE"))
        return err_set(err, errlen, PAGODA_EUNSUPPORTED,
                       "tokenizer.json: model type '%.32s' is not supported (BPE only)",
                       mtype->valuestring);
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges))
        return err_set(err, errlen, PAGODA_EFORMAT, "tokenizer.json: model.vocab or model.merges missing");
    v->spm = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback"));
    v->n = n_vocab;
    v->tokens = calloc((size_t)n_vocab, sizeof *v->tokens);
    v->scores = calloc((size_t)n_vocab, sizeof *v->scores);
    v->types = calloc((size_t)n_vocab, sizeof *v->types);
    if (!v->tokens || !v->scores || !v->types)
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    int rc;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || !e->string)
            return err_set(err, errlen, PAGODA_EFORMAT, "tokenizer.json: bad vocab entry");
        const int type = v->spm && is_byte_token(e->string) ? TT_BYTE : TT_NORMAL;
        if ((rc = set_token(v, e->valueint, e->string, type, err, errlen)))
            return rc;
    }
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(tok, "added_tokens");
    cJSON *a;
    cJSON_ArrayForEach(a, added)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(a, "content");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(content))
            return err_set(err, errlen, PAGODA_EFORMAT, "tokenizer.json: bad added_tokens entry");
        const bool special = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "special"));
        int type = special ? TT_CONTROL : TT_USER;
        if (cJSON_IsString(unk) && !strcmp(unk->valuestring, content->valuestring))
            type = TT_UNKNOWN;
        if (v->spm && is_byte_token(content->valuestring))
            type = TT_BYTE;
        if ((rc = set_token(v, id->valueint, content->valuestring, type, err, errlen)))
            return rc;
    }
    /* Rows of the embedding beyond the tokenizer's vocabulary. */
    for (int i = 0; i < v->n; i++)
        if (!v->tokens[i]) {
            char pad[32];
            snprintf(pad, sizeof pad, "[PAD%d]", i);
            if ((rc = set_token(v, i, pad, TT_UNUSED, err, errlen)))
                return rc;
        }
    struct str_map map;
    if (map_init(&map, v->tokens, v->n))
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    if (cJSON_IsString(unk)) {
        const int id = map_find(&map, unk->valuestring, strlen(unk->valuestring));
        if (id >= 0)
            v->types[id] = TT_UNKNOWN;
    }
    const int n_merges = cJSON_GetArraySize(merges);
    v->merges = calloc((size_t)n_merges + 1, sizeof *v->merges);
    if (!v->merges) {
        free(map.slot);
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    }
    bool *scored = calloc((size_t)v->n, sizeof *scored);
    rc = scored ? 0 : err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    int rank = 0;
    cJSON_ArrayForEach(a, merges)
    {
        if (rc)
            break;
        /* "left right", or ["left", "right"] in newer files. */
        const char *l = NULL, *r = NULL;
        char *joined = NULL;
        if (cJSON_IsString(a)) {
            joined = strdup(a->valuestring);
        } else if (cJSON_IsArray(a) && cJSON_GetArraySize(a) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(a, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(a, 1))) {
            l = cJSON_GetArrayItem(a, 0)->valuestring;
            r = cJSON_GetArrayItem(a, 1)->valuestring;
            joined = malloc(strlen(l) + strlen(r) + 2);
            if (joined)
                sprintf(joined, "%s %s", l, r);
        } else {
            rc = err_set(err, errlen, PAGODA_EFORMAT, "tokenizer.json: merge %d is malformed", rank);
            break;
        }
        if (!joined) {
            rc = err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
            break;
        }
        char *sp = strchr(joined, ' ');
        if (!sp || sp == joined || !sp[1] || strchr(sp + 1, ' ')) {
            rc = err_set(err, errlen, PAGODA_EFORMAT, "tokenizer.json: merge '%.40s' is not two tokens",
                         joined);
            free(joined);
            break;
        }
        if (v->spm) {
            /* SentencePiece ranks pieces by score: the earlier a merge, the
             * higher the score of the piece it makes. */
            char *cat = malloc(strlen(joined));
            if (cat) {
                const size_t nl = (size_t)(sp - joined), nr = strlen(sp + 1);
                memcpy(cat, joined, nl);
                memcpy(cat + nl, sp + 1, nr);
                const int id = map_find(&map, cat, nl + nr);
                if (id >= 0 && !scored[id]) {
                    scored[id] = true;
                    v->scores[id] = -(float)(rank + 1);
                }
                free(cat);
            }
            free(joined);
        } else {
            v->merges[v->n_merges++] = joined;
        }
        rank++;
    }
    if (!rc && v->spm) {
        /* Multi-character pieces no merge makes rank after every merge. */
        for (int i = 0; i < v->n; i++) {
            const unsigned char c0 = (unsigned char)v->tokens[i][0];
            const size_t clen = c0 < 0x80 ? 1 : c0 < 0xE0 ? 2 : c0 < 0xF0 ? 3 : 4;
            if (!scored[i] && v->types[i] == TT_NORMAL && strlen(v->tokens[i]) > clen)
                v->scores[i] = -(float)(rank + 1 + i);
        }
    }
    free(scored);
    free(map.slot);
    if (rc)
        return rc;
    if (v->spm) {
        /* The usual "prepend ▁" normalizer or metaspace pre-tokenizer. */
        char *s = cJSON_PrintUnformatted(tok);
        v->add_space_prefix = s && (strstr(s, "\"Prepend\"") ||
                                    strstr(s, "\"prepend_scheme\":\"always\"") ||
                                    strstr(s, "\"prepend_scheme\":\"first\"") ||
                                    strstr(s, "\"add_prefix_space\":true"));
        free(s);
        v->pre = NULL;
    } else {
        v->pre = detect_pre(tok);
    }
    return 0;
}

/* The id of a special token named in tokenizer_config.json, or -1. */
static int special_id(const cJSON *cfg, const char *key, const struct str_map *map)
{
    const char *s = token_content(cJSON_GetObjectItemCaseSensitive(cfg, key));
    return s ? map_find(map, s, strlen(s)) : -1;
}

static int write_tokenizer(struct gguf_writer *w, const char *dir, int n_vocab, char *err,
                           size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    cJSON *tok = NULL, *cfg = NULL;
    int rc = st_read_json(path, HF_MAX_JSON, &tok, err, errlen);
    if (rc)
        return rc;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (access(path, F_OK) == 0 && (rc = st_read_json(path, HF_MAX_JSON, &cfg, err, errlen))) {
        cJSON_Delete(tok);
        return rc;
    }
    struct hf_vocab v;
    struct str_map map = {0};
    char *tmpl_file = NULL;
    if ((rc = read_vocab(tok, &v, n_vocab, err, errlen)))
        goto done;
    if (map_init(&map, v.tokens, v.n)) {
        rc = err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
        goto done;
    }
    int bos = special_id(cfg, "bos_token", &map), eos = special_id(cfg, "eos_token", &map);
    const int unk = special_id(cfg, "unk_token", &map), pad = special_id(cfg, "pad_token", &map);
    if (v.spm && bos < 0 && !cJSON_GetObjectItemCaseSensitive(cfg, "bos_token"))
        bos = map_find(&map, "<s>", 3);
    if (v.spm && eos < 0 && !cJSON_GetObjectItemCaseSensitive(cfg, "eos_token"))
        eos = map_find(&map, "</s>", 4);
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
    const cJSON *ae = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
    bool add_bos = cJSON_IsBool(ab) ? cJSON_IsTrue(ab) : v.spm;
    const bool add_eos = cJSON_IsTrue(ae) && eos >= 0;
    if (!cJSON_IsBool(ab)) {
        /* A template post-processor that starts with a special token adds it. */
        const cJSON *pp = cJSON_GetObjectItemCaseSensitive(tok, "post_processor");
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
        const cJSON *procs = cJSON_GetObjectItemCaseSensitive(pp, "processors");
        for (const cJSON *q = procs ? procs->child : NULL; !single && q; q = q->next)
            single = cJSON_GetObjectItemCaseSensitive(q, "single");
        const cJSON *first = cJSON_GetArrayItem(single, 0);
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(first, "SpecialToken");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(st, "id");
        if (cJSON_IsString(id)) {
            const int b = map_find(&map, id->valuestring, strlen(id->valuestring));
            if (b >= 0) {
                add_bos = true;
                if (bos < 0)
                    bos = b;
            }
        }
    }
    if (bos < 0)
        add_bos = false;
    const char *tmpl = NULL;
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    if (cJSON_IsString(ct)) {
        tmpl = ct->valuestring;
    } else if (cJSON_IsArray(ct)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, ct)
        {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
            const cJSON *tt = cJSON_GetObjectItemCaseSensitive(e, "template");
            if (cJSON_IsString(tt) && (!tmpl || (cJSON_IsString(nm) && !strcmp(nm->valuestring, "default"))))
                tmpl = tt->valuestring;
        }
    } else {
        snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
        FILE *f = fopen(path, "rb");
        if (f) {
            tmpl_file = calloc(1, (1 << 20) + 1);
            if (tmpl_file && fread(tmpl_file, 1, 1 << 20, f) > 0)
                tmpl = tmpl_file;
            fclose(f);
        }
    }

    rc |= gguf_writer_set_str(w, "tokenizer.ggml.model", v.spm ? "llama" : "gpt2");
    if (!v.spm)
        rc |= gguf_writer_set_str(w, "tokenizer.ggml.pre", v.pre);
    rc |= gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v.tokens,
                                  (uint64_t)v.n);
    if (v.spm)
        rc |= gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, v.scores,
                                  (uint64_t)v.n);
    rc |= gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, v.types,
                              (uint64_t)v.n);
    if (!v.spm)
        rc |= gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v.merges,
                                      (uint64_t)v.n_merges);
    if (bos >= 0)
        rc |= gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
    if (eos >= 0)
        rc |= gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
    if (unk >= 0)
        rc |= gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)unk);
    else if (v.spm) {
        for (int i = 0; i < v.n; i++)
            if (v.types[i] == TT_UNKNOWN) {
                rc |= gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)i);
                break;
            }
    }
    if (pad >= 0)
        rc |= gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)pad);
    rc |= gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", add_bos);
    rc |= gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", add_eos);
    if (v.spm)
        rc |= gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", v.add_space_prefix);
    if (tmpl)
        rc |= gguf_writer_set_str(w, "tokenizer.chat_template", tmpl);
    if (rc)
        rc = err_set(err, errlen, PAGODA_ENOMEM, "cannot set tokenizer metadata");
done:
    free(tmpl_file);
    free(map.slot);
    vocab_free(&v);
    cJSON_Delete(tok);
    cJSON_Delete(cfg);
    return rc;
}

/* ---- weights ---- */

struct hf_tensor {
    char gguf[96];
    char hf[128];
    int n_dims;     /* 1 or 2 */
    int64_t ne0, ne1; /* GGUF order: ne0 = HF's last dimension */
    int permute;    /* heads whose rows are reordered for interleaved RoPE, 0: none */
    bool optional;
};

/* HF stores each head's rotary pairs as (i, i + d/2); the GGUF llama layout
 * interleaves them as (2i, 2i + 1). Rows move, columns stay. */
static void permute_rows(const float *src, float *dst, int64_t rows, int64_t ne0, int heads)
{
    const int64_t hd = rows / heads, half = hd / 2;
    for (int64_t h = 0; h < heads; h++)
        for (int64_t i = 0; i < 2; i++)
            for (int64_t j = 0; j < half; j++)
                memcpy(dst + (h * hd + 2 * j + i) * ne0, src + (h * hd + i * half + j) * ne0,
                       sizeof(float) * (size_t)ne0);
}

static int list_tensors(const struct hf_config *c, const struct st_model *st,
                        struct hf_tensor *t)
{
    const int64_t E = c->n_embd, Q = (int64_t)c->n_head * c->head_dim,
                  KV = (int64_t)c->n_head_kv * c->head_dim, F = c->n_ff;
    const bool llama = !strcmp(c->arch, "llama"), qwen3 = !strcmp(c->arch, "qwen3");
    const struct st_tensor *emb = st_find(st, "model.embed_tokens.weight");
    const int64_t V = emb && emb->n_dims == 2 ? emb->shape[0] : c->n_vocab;
    int n = 0;
#define ADD(nd, e0, e1, perm, opt, gname, hname)                                             \
    do {                                                                                     \
        snprintf(t[n].gguf, sizeof t[n].gguf, "%s", gname);                                  \
        snprintf(t[n].hf, sizeof t[n].hf, "%s", hname);                                      \
        t[n].n_dims = (nd);                                                                  \
        t[n].ne0 = (e0);                                                                     \
        t[n].ne1 = (e1);                                                                     \
        t[n].permute = (perm);                                                               \
        t[n].optional = (opt);                                                               \
        n++;                                                                                 \
    } while (0)
    ADD(2, E, V, 0, false, "token_embd.weight", "model.embed_tokens.weight");
    char g[96], h[128];
    for (int l = 0; l < c->n_layer; l++) {
        const struct {
            const char *g, *h;
            int nd;
            int64_t e0, e1;
            int perm;
            bool opt;
        } per[] = {
            {"attn_norm.weight", "input_layernorm.weight", 1, E, 1, 0, false},
            {"attn_q.weight", "self_attn.q_proj.weight", 2, E, Q, llama ? c->n_head : 0, false},
            {"attn_k.weight", "self_attn.k_proj.weight", 2, E, KV, llama ? c->n_head_kv : 0, false},
            {"attn_v.weight", "self_attn.v_proj.weight", 2, E, KV, 0, false},
            {"attn_output.weight", "self_attn.o_proj.weight", 2, Q, E, 0, false},
            {"attn_q.bias", "self_attn.q_proj.bias", 1, Q, 1, llama ? c->n_head : 0, true},
            {"attn_k.bias", "self_attn.k_proj.bias", 1, KV, 1, llama ? c->n_head_kv : 0, true},
            {"attn_v.bias", "self_attn.v_proj.bias", 1, KV, 1, 0, true},
            {"attn_q_norm.weight", "self_attn.q_norm.weight", 1, c->head_dim, 1, 0, !qwen3},
            {"attn_k_norm.weight", "self_attn.k_norm.weight", 1, c->head_dim, 1, 0, !qwen3},
            {"ffn_norm.weight", "post_attention_layernorm.weight", 1, E, 1, 0, false},
            {"ffn_gate.weight", "mlp.gate_proj.weight", 2, E, F, 0, false},
            {"ffn_up.weight", "mlp.up_proj.weight", 2, E, F, 0, false},
            {"ffn_down.weight", "mlp.down_proj.weight", 2, F, E, 0, false},
        };
        for (size_t k = 0; k < sizeof per / sizeof per[0]; k++) {
            snprintf(g, sizeof g, "blk.%d.%s", l, per[k].g);
            snprintf(h, sizeof h, "model.layers.%d.%s", l, per[k].h);
            ADD(per[k].nd, per[k].e0, per[k].e1, per[k].perm, per[k].opt, g, h);
        }
    }
    ADD(1, E, 1, 0, false, "output_norm.weight", "model.norm.weight");
    ADD(2, E, V, 0, c->tied, "output.weight", "lm_head.weight");
#undef ADD
    return n;
}

static int check_shape(const struct hf_tensor *t, const struct st_tensor *s, char *err,
                       size_t errlen)
{
    const bool ok = t->n_dims == 1 ? (s->n_dims == 1 && s->shape[0] == t->ne0)
                                   : (s->n_dims == 2 && s->shape[0] == t->ne1 && s->shape[1] == t->ne0);
    if (ok)
        return 0;
    return t->n_dims == 1
               ? err_set(err, errlen, PAGODA_EFORMAT, "tensor '%s' should have shape [%lld]",
                         t->hf, (long long)t->ne0)
               : err_set(err, errlen, PAGODA_EFORMAT, "tensor '%s' should have shape [%lld, %lld]",
                         t->hf, (long long)t->ne1, (long long)t->ne0);
}

/* llama3 RoPE scaling as per-frequency divisors (rope_freqs.weight). */
static void llama3_factors(const struct hf_config *c, float *out)
{
    const int n = c->head_dim / 2;
    const double low_wl = c->l3_orig_ctx / c->l3_low, high_wl = c->l3_orig_ctx / c->l3_high;
    for (int i = 0; i < n; i++) {
        const double freq = 1.0 / pow(c->rope_theta, 2.0 * i / c->head_dim);
        const double wl = 2.0 * M_PI / freq;
        double f;
        if (wl < high_wl) {
            f = 1.0;
        } else if (wl > low_wl) {
            f = c->l3_factor;
        } else {
            const double smooth = (c->l3_orig_ctx / wl - c->l3_low) / (c->l3_high - c->l3_low);
            f = 1.0 / ((1.0 - smooth) / c->l3_factor + smooth);
        }
        out[i] = (float)f;
    }
}

static int set_model_meta(struct gguf_writer *w, const struct hf_config *c, int64_t n_vocab,
                          const char *name, const char *preset, bool quantized)
{
    char k[96];
    const char *a = c->arch;
    int rc = 0;
    rc |= gguf_writer_set_str(w, "general.architecture", a);
    rc |= gguf_writer_set_str(w, "general.name", name);
    rc |= gguf_writer_set_u32(w, "general.file_type", (uint32_t)quant_preset_file_type(preset));
    if (quantized)
        rc |= gguf_writer_set_u32(w, "general.quantization_version", 2);
#define U32(suffix, v)                                                                       \
    do {                                                                                     \
        snprintf(k, sizeof k, "%s.%s", a, suffix);                                           \
        rc |= gguf_writer_set_u32(w, k, (uint32_t)(v));                                      \
    } while (0)
#define F32(suffix, v)                                                                       \
    do {                                                                                     \
        snprintf(k, sizeof k, "%s.%s", a, suffix);                                           \
        rc |= gguf_writer_set_f32(w, k, (float)(v));                                         \
    } while (0)
    U32("vocab_size", n_vocab);
    U32("context_length", c->n_ctx);
    U32("embedding_length", c->n_embd);
    U32("block_count", c->n_layer);
    U32("feed_forward_length", c->n_ff);
    U32("attention.head_count", c->n_head);
    U32("attention.head_count_kv", c->n_head_kv);
    F32("rope.freq_base", c->rope_theta);
    F32("attention.layer_norm_rms_epsilon", c->rms_eps);
    U32("rope.dimension_count", c->head_dim);
    if (c->head_dim * c->n_head != c->n_embd) {
        U32("attention.key_length", c->head_dim);
        U32("attention.value_length", c->head_dim);
    }
    if (c->rope_linear > 0) {
        snprintf(k, sizeof k, "%s.rope.scaling.type", a);
        rc |= gguf_writer_set_str(w, k, "linear");
        F32("rope.scaling.factor", c->rope_linear);
    }
#undef U32
#undef F32
    return rc;
}

int hf_convert(const char *dir, const char *out_path, const struct hf_convert_opts *o,
               struct hf_config *cfg_out, char *err, size_t errlen)
{
    const char *preset = o && o->type ? o->type : "f16";
    if (!quant_preset_valid(preset))
        return err_set(err, errlen, PAGODA_EINVAL, "unknown weight type '%s'", preset);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *cj = NULL;
    int rc = st_read_json(path, (size_t)1 << 20, &cj, err, errlen);
    if (rc)
        return rc;
    char *text = cJSON_PrintUnformatted(cj);
    cJSON_Delete(cj);
    struct hf_config c;
    rc = text ? hf_parse_config(text, &c, err, errlen)
              : err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    free(text);
    if (rc)
        return rc;
    if (cfg_out)
        *cfg_out = c;

    struct st_model *st = NULL;
    if ((rc = st_open(dir, &st, err, errlen)))
        return rc;
    struct gguf_writer *w = gguf_writer_create();
    const int max_t = c.n_layer * 14 + 4;
    struct hf_tensor *tl = calloc((size_t)max_t, sizeof *tl);
    void **bufs = calloc((size_t)max_t + 1, sizeof *bufs);
    bool *used = calloc((size_t)st->n_tensors + 1, sizeof *used);
    float *f = NULL, *g = NULL;
    if (!w || !tl || !bufs || !used) {
        rc = err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
        goto done;
    }
    const int n = list_tensors(&c, st, tl);
    const int64_t n_vocab = tl[0].ne1;
    if (n_vocab < 1 || n_vocab > (1 << 24)) {
        rc = err_set(err, errlen, PAGODA_EFORMAT, "model.embed_tokens.weight has a bad shape");
        goto done;
    }
    /* Every tensor of the checkpoint must be one we place (or a known leftover). */
    for (int i = 0; i < n; i++) {
        const struct st_tensor *s = st_find(st, tl[i].hf);
        if (s)
            used[s - st->tensors] = true;
    }
    for (int i = 0; i < st->n_tensors; i++)
        if (!used[i] && !strstr(st->tensors[i].name, "rotary_emb.inv_freq") &&
            !(c.tied && !strcmp(st->tensors[i].name, "lm_head.weight"))) {
            rc = err_set(err, errlen, PAGODA_EUNSUPPORTED, "tensor '%.100s' has no place in a %s model",
                         st->tensors[i].name, c.model_type);
            goto done;
        }

    const struct quant_recipe_model qm = {c.n_layer, c.n_head / c.n_head_kv, c.tied ||
                                          !st_find(st, "lm_head.weight")};
    bool quantized = false;
    for (int i = 0; i < n; i++) {
        const int ty = quant_recipe_type(preset, tl[i].gguf, tl[i].n_dims, tl[i].ne0, &qm);
        quantized |= ty >= 0 && type_traits_get(ty)->quantized;
    }
    /* The default name is the folder's own name. */
    char name[256];
    snprintf(name, sizeof name, "%s", dir);
    size_t nl = strlen(name);
    while (nl > 1 && name[nl - 1] == '/')
        name[--nl] = 0;
    const char *base = strrchr(name, '/');
    if (base && base[1])
        memmove(name, base + 1, strlen(base + 1) + 1);
    if (o && o->name)
        snprintf(name, sizeof name, "%s", o->name);
    if (set_model_meta(w, &c, n_vocab, name, preset, quantized)) {
        rc = err_set(err, errlen, PAGODA_ENOMEM, "cannot set metadata");
        goto done;
    }
    if ((rc = write_tokenizer(w, dir, (int)n_vocab, err, errlen)))
        goto done;

    int nb = 0;
    for (int i = 0; i < n; i++) {
        const struct hf_tensor *t = &tl[i];
        const struct st_tensor *s = st_find(st, t->hf);
        if (!s || (i == n - 1 && c.tied)) {
            if (t->optional)
                continue;
            rc = err_set(err, errlen, PAGODA_EFORMAT, "tensor '%s' is missing", t->hf);
            goto done;
        }
        if ((rc = check_shape(t, s, err, errlen)))
            goto done;
        const size_t cnt = (size_t)(t->ne0 * t->ne1);
        free(f);
        free(g);
        f = malloc(sizeof(float) * cnt);
        g = t->permute ? malloc(sizeof(float) * cnt) : NULL;
        if (!f || (t->permute && !g)) {
            rc = err_set(err, errlen, PAGODA_ENOMEM, "out of memory for '%s'", t->hf);
            goto done;
        }
        if ((rc = st_read_f32(s, f, err, errlen)))
            goto done;
        const float *src = f;
        if (t->permute) {
            const int64_t rows = t->n_dims == 2 ? t->ne1 : t->ne0, cols = t->n_dims == 2 ? t->ne0 : 1;
            if (rows % (2 * t->permute)) {
                rc = err_set(err, errlen, PAGODA_EFORMAT, "tensor '%s': %lld rows for %d heads",
                             t->hf, (long long)rows, t->permute);
                goto done;
            }
            permute_rows(f, g, rows, cols, t->permute);
            src = g;
        }
        const int ty = quant_recipe_type(preset, t->gguf, t->n_dims, t->ne0, &qm);
        const size_t bytes = ty < 0 ? 0 : type_row_size(ty, t->ne0) * (size_t)t->ne1;
        if (!bytes || !(bufs[nb] = malloc(bytes))) {
            rc = err_set(err, errlen, PAGODA_ENOMEM, "cannot store '%s' as %s", t->gguf,
                         type_name(ty));
            goto done;
        }
        quantize_rows_pool(o ? o->pool : NULL, ty, src, bufs[nb], t->ne1, t->ne0);
        const int64_t ne[2] = {t->ne0, t->ne1};
        if ((rc = gguf_writer_add_tensor(w, t->gguf, ty, t->n_dims, ne, bufs[nb], bytes, err,
                                         errlen)))
            goto done;
        nb++;
        if (i == 0 && c.rope_llama3) {
            /* After the embedding, as converted llama3 files have it. */
            float *rf = malloc(sizeof(float) * (size_t)(c.head_dim / 2));
            if (!rf) {
                rc = err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
                goto done;
            }
            llama3_factors(&c, rf);
            bufs[nb++] = rf;
            const int64_t rne[1] = {c.head_dim / 2};
            if ((rc = gguf_writer_add_tensor(w, "rope_freqs.weight", PG_TYPE_F32, 1, rne, rf,
                                             sizeof(float) * (size_t)rne[0], err, errlen)))
                goto done;
        }
    }
    rc = gguf_writer_write(w, out_path, err, errlen);
done:
    free(f);
    free(g);
    if (bufs)
        for (int i = 0; i < max_t + 1; i++)
            free(bufs[i]);
    free(bufs);
    free(tl);
    free(used);
    gguf_writer_free(w);
    st_close(st);
    return rc;
}
