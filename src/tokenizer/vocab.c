/*
 * vocab.c: loading a tokenizer from GGUF metadata (tokenizer.ggml.*): the
 * vocabulary with scores and token types, BPE merges, special token ids and
 * the add-BOS/EOS/space-prefix flags with the defaults each model kind
 * implies, plus the text -> id table and the accessors of tokenizer.h.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "gguf/gguf.h"
#include "tokenizer/tok_internal.h"

#define KEY_PREFIX "tokenizer.ggml."

uint64_t tok_hash(const char *s, size_t n)
{
    /* FNV-1a, then a final mix so the low bits index well */
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

int32_t vocab_lookup(const struct tokenizer *t, const char *s, size_t n)
{
    uint32_t i = (uint32_t)tok_hash(s, n) & t->map_mask;
    for (;;) {
        int32_t id = t->map[i];
        if (id < 0)
            return TOKEN_NONE;
        const struct tok_entry *e = &t->tok[id];
        if (e->len == n && memcmp(t->text + e->off, s, n) == 0)
            return id;
        i = (i + 1) & t->map_mask;
    }
}

int tok_ids_push(struct tok_ids *a, int32_t id)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 256;
        int32_t *v = realloc(a->v, cap * sizeof *v);
        if (!v)
            return PAGODA_ENOMEM;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = id;
    return 0;
}

static uint32_t pow2_at_least(uint64_t n)
{
    uint32_t p = 16;
    while (p < n)
        p <<= 1;
    return p;
}

/* A special token id from metadata: absent keeps *id (the kind's default);
 * -1 or 0xFFFFFFFF (how converters write "none") clears it; anything else
 * must be a valid id. */
static int read_special_id(const struct gguf_file *g, const char *name, int32_t n_vocab,
                           int32_t *id, char *err, size_t errlen)
{
    char key[96];
    snprintf(key, sizeof key, KEY_PREFIX "%s", name);
    const struct gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv)
        return 0;
    int64_t v;
    if (!gguf_get_int(g, key, &v))
        return err_set(err, errlen, PAGODA_EFORMAT, "%s: expected an integer, found %s", key,
                       gguf_vtype_name(kv->value.type));
    if (v == -1 || v == 0xFFFFFFFFll) {
        *id = TOKEN_NONE;
        return 0;
    }
    if (v < 0 || v >= n_vocab)
        return err_set(err, errlen, PAGODA_EFORMAT, "%s = %lld is outside the vocabulary (0..%d)",
                       key, (long long)v, n_vocab - 1);
    *id = (int32_t)v;
    return 0;
}

static int read_flag(const struct gguf_file *g, const char *key, bool *flag, char *err,
                     size_t errlen)
{
    const struct gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv)
        return 0;
    if (!gguf_get_bool(g, key, flag))
        return err_set(err, errlen, PAGODA_EFORMAT, "%s: expected a bool, found %s", key,
                       gguf_vtype_name(kv->value.type));
    return 0;
}

/* An array key of the given element type, or NULL with a message. */
static const struct gguf_value *read_array(const struct gguf_file *g, const char *key,
                                           enum gguf_vtype want, enum gguf_vtype alt,
                                           char *err, size_t errlen, int *rc)
{
    const struct gguf_kv *kv = gguf_find_kv(g, key);
    *rc = 0;
    if (!kv)
        return NULL;
    const struct gguf_value *v = &kv->value;
    if (v->type != GGUF_TYPE_ARRAY || (v->v.arr.type != want && v->v.arr.type != alt)) {
        *rc = err_set(err, errlen, PAGODA_EFORMAT, "%s: expected an array of %s, found %s%s",
                      key, gguf_vtype_name(want),
                      v->type == GGUF_TYPE_ARRAY ? "an array of " : "",
                      gguf_vtype_name(v->type == GGUF_TYPE_ARRAY ? v->v.arr.type : v->type));
        return NULL;
    }
    return v;
}

static int map_insert(struct tokenizer *t, int32_t id)
{
    const struct tok_entry *e = &t->tok[id];
    uint32_t i = (uint32_t)tok_hash(t->text + e->off, e->len) & t->map_mask;
    while (t->map[i] >= 0) {
        const struct tok_entry *o = &t->tok[t->map[i]];
        if (o->len == e->len && memcmp(t->text + o->off, t->text + e->off, e->len) == 0)
            return t->map[i];
        i = (i + 1) & t->map_mask;
    }
    t->map[i] = id;
    return -1;
}

static int load_vocab(struct tokenizer *t, const struct gguf_file *g, char *err, size_t errlen)
{
    int rc;
    const struct gguf_value *toks =
        read_array(g, KEY_PREFIX "tokens", GGUF_TYPE_STRING, GGUF_TYPE_STRING, err, errlen, &rc);
    if (rc)
        return rc;
    if (!toks)
        return err_set(err, errlen, PAGODA_EFORMAT, "no " KEY_PREFIX "tokens in the file");
    uint64_t n = toks->v.arr.n;
    if (n == 0 || n > 0x7fffffff)
        return err_set(err, errlen, PAGODA_EFORMAT, KEY_PREFIX "tokens has %llu entries",
                       (unsigned long long)n);
    t->n_vocab = (int32_t)n;

    const struct gguf_value *scores = read_array(g, KEY_PREFIX "scores", GGUF_TYPE_FLOAT32,
                                                 GGUF_TYPE_INT32, err, errlen, &rc);
    if (rc)
        return rc;
    if (scores && scores->v.arr.n != n)
        return err_set(err, errlen, PAGODA_EFORMAT, KEY_PREFIX "scores has %llu entries, "
                       KEY_PREFIX "tokens %llu", (unsigned long long)scores->v.arr.n,
                       (unsigned long long)n);
    const struct gguf_value *types = read_array(g, KEY_PREFIX "token_type", GGUF_TYPE_INT32,
                                                GGUF_TYPE_UINT32, err, errlen, &rc);
    if (rc)
        return rc;
    if (types && types->v.arr.n != n)
        return err_set(err, errlen, PAGODA_EFORMAT, KEY_PREFIX "token_type has %llu entries, "
                       KEY_PREFIX "tokens %llu", (unsigned long long)types->v.arr.n,
                       (unsigned long long)n);

    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++)
        total += toks->v.arr.items[i].v.str.len;
    if (total >= 0xffffffffull)
        return err_set(err, errlen, PAGODA_EFORMAT, KEY_PREFIX "tokens: %llu bytes of text",
                       (unsigned long long)total);

    t->tok = calloc(n, sizeof *t->tok);
    t->text = malloc(total + 1);
    t->map_mask = pow2_at_least(n * 2) - 1;
    t->map = malloc(((size_t)t->map_mask + 1) * sizeof *t->map);
    if (!t->tok || !t->text || !t->map)
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory for %llu tokens",
                       (unsigned long long)n);
    memset(t->map, 0xff, ((size_t)t->map_mask + 1) * sizeof *t->map);

    uint32_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        struct gguf_str s = toks->v.arr.items[i].v.str;
        struct tok_entry *e = &t->tok[i];
        memcpy(t->text + off, s.ptr, s.len);
        e->off = off;
        e->len = (uint32_t)s.len;
        off += (uint32_t)s.len;
        e->type = TOKEN_TYPE_NORMAL;
        if (scores) {
            const uint8_t *p = (const uint8_t *)scores->v.arr.data + 4 * i;
            if (scores->v.arr.type == GGUF_TYPE_FLOAT32) {
                memcpy(&e->score, p, 4);
            } else {
                int32_t v;
                memcpy(&v, p, 4);
                e->score = (float)v;
            }
        }
        if (types) {
            int32_t v;
            memcpy(&v, (const uint8_t *)types->v.arr.data + 4 * i, 4);
            if (v < TOKEN_TYPE_UNDEFINED || v > TOKEN_TYPE_BYTE)
                return err_set(err, errlen, PAGODA_EFORMAT,
                               KEY_PREFIX "token_type[%llu] = %d is not a token type (0..6)",
                               (unsigned long long)i, v);
            e->type = (uint8_t)v;
        }
        if (e->len == 0)
            continue; /* can never be matched; decodes to nothing */
        int dup = map_insert(t, (int32_t)i);
        if (dup >= 0)
            return err_set(err, errlen, PAGODA_EFORMAT,
                           KEY_PREFIX "tokens: '%.*s' appears twice (ids %d and %llu)",
                           (int)(e->len > 40 ? 40 : e->len), t->text + e->off, dup,
                           (unsigned long long)i);
    }
    t->text[off] = 0;
    return 0;
}

static int load_merges(struct tokenizer *t, const struct gguf_file *g, char *err, size_t errlen)
{
    int rc;
    const struct gguf_value *m =
        read_array(g, KEY_PREFIX "merges", GGUF_TYPE_STRING, GGUF_TYPE_STRING, err, errlen, &rc);
    if (rc)
        return rc;
    if (!m)
        return err_set(err, errlen, PAGODA_EFORMAT,
                       "a gpt2 tokenizer needs " KEY_PREFIX "merges, and there is none");
    uint64_t n = m->v.arr.n;
    if (n > 0x7fffffff)
        return err_set(err, errlen, PAGODA_EFORMAT, KEY_PREFIX "merges has %llu entries",
                       (unsigned long long)n);
    t->merge_mask = pow2_at_least(n * 2 + 1) - 1;
    t->merges = calloc((size_t)t->merge_mask + 1, sizeof *t->merges);
    if (!t->merges)
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory for %llu merges",
                       (unsigned long long)n);
    char *buf = NULL;
    size_t bufcap = 0;
    for (uint64_t i = 0; i < n; i++) {
        struct gguf_str s = m->v.arr.items[i].v.str;
        /* "left right": the separator is the first space after the first byte,
         * so a left part that is itself a space still parses */
        const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
        if (!sp) {
            free(buf);
            return err_set(err, errlen, PAGODA_EFORMAT,
                           KEY_PREFIX "merges[%llu] = '%.*s' is not two tokens separated by a "
                           "space", (unsigned long long)i, (int)(s.len > 40 ? 40 : s.len), s.ptr);
        }
        size_t ll = (size_t)(sp - s.ptr), rl = s.len - ll - 1;
        int32_t left = vocab_lookup(t, s.ptr, ll);
        int32_t right = vocab_lookup(t, sp + 1, rl);
        if (ll + rl > bufcap) {
            bufcap = (ll + rl) * 2;
            char *nb = realloc(buf, bufcap);
            if (!nb) {
                free(buf);
                return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
            }
            buf = nb;
        }
        memcpy(buf, s.ptr, ll);
        memcpy(buf + ll, sp + 1, rl);
        int32_t result = vocab_lookup(t, buf, ll + rl);
        /* A merge whose parts or result are not tokens can never apply to
         * symbols that are tokens; the vocabularies we know have none. */
        if (left < 0 || right < 0 || result < 0)
            continue;
        uint64_t key = ((uint64_t)(uint32_t)left << 32 | (uint32_t)right) + 1;
        uint32_t h = (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & t->merge_mask;
        while (t->merges[h].key && t->merges[h].key != key)
            h = (h + 1) & t->merge_mask;
        if (t->merges[h].key == key)
            continue; /* repeated pair: the first (best) rank stands */
        t->merges[h].key = key;
        t->merges[h].rank = (int32_t)i;
        t->merges[h].result = result;
    }
    free(buf);
    return 0;
}

int32_t bpe_merge_find(const struct tokenizer *t, int32_t left, int32_t right, int32_t *result)
{
    uint64_t key = ((uint64_t)(uint32_t)left << 32 | (uint32_t)right) + 1;
    uint32_t h = (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & t->merge_mask;
    for (;;) {
        const struct merge_slot *s = &t->merges[h];
        if (!s->key)
            return -1;
        if (s->key == key) {
            *result = s->result;
            return s->rank;
        }
        h = (h + 1) & t->merge_mask;
    }
}

/* Tokens that end a turn, found by their text as model families name them. */
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
    "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>",
};
static const char *const eot_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|end_of_text|>", "<EOT>", "_<EOT>", "<end_of_utterance>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>",
};

static void find_eog(struct tokenizer *t)
{
    if (t->eot == TOKEN_NONE) {
        for (size_t k = 0; k < sizeof eot_texts / sizeof eot_texts[0] && t->eot < 0; k++) {
            int32_t id = vocab_lookup(t, eot_texts[k], strlen(eot_texts[k]));
            if (id >= 0)
                t->eot = id;
        }
    }
    if (t->eom == TOKEN_NONE)
        t->eom = vocab_lookup(t, "<|eom_id|>", 10);
    for (size_t k = 0; k < sizeof eog_texts / sizeof eog_texts[0]; k++) {
        int32_t id = vocab_lookup(t, eog_texts[k], strlen(eog_texts[k]));
        if (id < 0)
            continue;
        t->tok[id].flags |= TOKF_EOG;
        /* an end-of-turn token is a control token even when the converter
         * forgot to say so: ordinary text must never produce it */
        if (t->tok[id].type == TOKEN_TYPE_NORMAL)
            t->tok[id].type = TOKEN_TYPE_CONTROL;
    }
    int32_t ends[3] = {t->eos, t->eot, t->eom};
    for (int k = 0; k < 3; k++)
        if (ends[k] >= 0)
            t->tok[ends[k]].flags |= TOKF_EOG;
}

static bool special_before(const struct tokenizer *t, int32_t x, int32_t y)
{
    uint32_t lx = t->tok[x].len, ly = t->tok[y].len;
    return lx != ly ? lx > ly : x < y;
}

void tok_sort_specials(const struct tokenizer *t, int32_t *ids, size_t n)
{
    /* bottom-up merge sort through a scratch copy; insertion sort when short
     * or when the scratch cannot be had (the order is then still right) */
    int32_t *tmp = n > 32 ? malloc(n * sizeof *tmp) : NULL;
    if (!tmp) {
        for (size_t i = 1; i < n; i++) {
            int32_t v = ids[i];
            size_t j = i;
            while (j > 0 && special_before(t, v, ids[j - 1])) {
                ids[j] = ids[j - 1];
                j--;
            }
            ids[j] = v;
        }
        return;
    }
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t a = lo, b = mid, k = lo;
            while (a < mid && b < hi)
                tmp[k++] = special_before(t, ids[b], ids[a]) ? ids[b++] : ids[a++];
            while (a < mid)
                tmp[k++] = ids[a++];
            while (b < hi)
                tmp[k++] = ids[b++];
        }
        memcpy(ids, tmp, n * sizeof *ids);
    }
    free(tmp);
}

static int build_specials(struct tokenizer *t, char *err, size_t errlen)
{
    int32_t n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        struct tok_entry *e = &t->tok[id];
        if (e->type == TOKEN_TYPE_CONTROL || e->type == TOKEN_TYPE_UNKNOWN)
            e->flags |= TOKF_HIDDEN;
        if ((e->type == TOKEN_TYPE_CONTROL || e->type == TOKEN_TYPE_UNKNOWN ||
             e->type == TOKEN_TYPE_USER_DEFINED) && e->len > 0) {
            e->flags |= TOKF_SPECIAL_CACHE;
            n++;
        }
    }
    t->n_specials = n;
    if (!n)
        return 0;
    t->specials = malloc((size_t)n * sizeof *t->specials);
    t->special_lens = malloc((size_t)n * sizeof *t->special_lens);
    if (!t->specials || !t->special_lens)
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (t->tok[id].flags & TOKF_SPECIAL_CACHE)
            t->specials[n++] = id;
    tok_sort_specials(t, t->specials, (size_t)n);
    for (int32_t k = 0; k < n; k++) {
        const struct tok_entry *e = &t->tok[t->specials[k]];
        uint8_t c = (uint8_t)t->text[e->off];
        t->special_first[c >> 3] |= (uint8_t)(1u << (c & 7));
        if (t->n_special_lens == 0 || t->special_lens[t->n_special_lens - 1] != e->len)
            t->special_lens[t->n_special_lens++] = e->len;
    }
    return 0;
}

int tok_parse_hex_byte(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0'
              : c >= 'A' && c <= 'F' ? c - 'A' + 10
              : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static void build_byte_tokens(struct tokenizer *t)
{
    for (int b = 0; b < 256; b++) {
        t->byte_tok[b] = TOKEN_NONE;
        if (t->kind == TOKENIZER_SPM) {
            char hex[7];
            snprintf(hex, sizeof hex, "<0x%02X>", b);
            int32_t id = vocab_lookup(t, hex, 6);
            if (id < 0) {
                char one = (char)b;
                id = vocab_lookup(t, &one, 1);
            }
            t->byte_tok[b] = id;
        } else {
            char c[2];
            int n = bpe_byte_char((uint8_t)b, c);
            t->byte_tok[b] = vocab_lookup(t, c, (size_t)n);
        }
    }
}

int tokenizer_load(const struct gguf_file *g, struct tokenizer **out, char *err, size_t errlen)
{
    *out = NULL;
    struct gguf_str model;
    if (!gguf_find_kv(g, KEY_PREFIX "model"))
        return err_set(err, errlen, PAGODA_EFORMAT, "no " KEY_PREFIX "model in the file");
    if (!gguf_get_str(g, KEY_PREFIX "model", &model))
        return err_set(err, errlen, PAGODA_EFORMAT, KEY_PREFIX "model is not a string");

    struct tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    int rc;
    bool add_bos = false, add_eos = false;
    if (gguf_str_eq(model, "llama")) {
        t->kind = TOKENIZER_SPM;
        add_bos = true;
        t->add_space_prefix = true;
    } else if (gguf_str_eq(model, "gpt2")) {
        t->kind = TOKENIZER_BPE;
    } else {
        rc = err_set(err, errlen, PAGODA_EUNSUPPORTED,
                     "tokenizer model '%.*s' is not supported (only 'llama' and 'gpt2')",
                     (int)(model.len > 40 ? 40 : model.len), model.ptr);
        goto fail;
    }

    if ((rc = load_vocab(t, g, err, errlen)) < 0)
        goto fail;

    if (t->kind == TOKENIZER_BPE) {
        struct gguf_str pre = {0, ""};
        if (gguf_find_kv(g, KEY_PREFIX "pre") && !gguf_get_str(g, KEY_PREFIX "pre", &pre)) {
            rc = err_set(err, errlen, PAGODA_EFORMAT, KEY_PREFIX "pre is not a string");
            goto fail;
        }
        if (pre.len >= sizeof t->pre_name) {
            rc = err_set(err, errlen, PAGODA_EUNSUPPORTED, KEY_PREFIX "pre '%.40s...' is unknown",
                         pre.ptr);
            goto fail;
        }
        memcpy(t->pre_name, pre.ptr, pre.len);
        t->pre_name[pre.len] = 0;
        if (strlen(t->pre_name) != pre.len) {
            rc = err_set(err, errlen, PAGODA_EFORMAT, KEY_PREFIX "pre holds a NUL byte");
            goto fail;
        }
        if ((rc = pretok_create(t->pre_name, &t->pre, &t->ignore_merges, &add_bos, err,
                                errlen)) < 0)
            goto fail;
        if ((rc = load_merges(t, g, err, errlen)) < 0)
            goto fail;
    }

    /* defaults as llama.cpp has them for each kind, then the file's values */
    int32_t nv = t->n_vocab;
    if (t->kind == TOKENIZER_SPM) {
        t->bos = nv > 1 ? 1 : TOKEN_NONE;
        t->eos = nv > 2 ? 2 : TOKEN_NONE;
        t->unk = 0;
    } else {
        t->bos = nv > 11 ? 11 : TOKEN_NONE;
        t->eos = nv > 11 ? 11 : TOKEN_NONE;
        t->unk = TOKEN_NONE;
    }
    t->eot = t->eom = t->pad = t->sep = TOKEN_NONE;
    static const struct {
        const char *key;
        size_t field;
    } ids[] = {
        {"bos_token_id", offsetof(struct tokenizer, bos)},
        {"eos_token_id", offsetof(struct tokenizer, eos)},
        {"eot_token_id", offsetof(struct tokenizer, eot)},
        {"eom_token_id", offsetof(struct tokenizer, eom)},
        {"unknown_token_id", offsetof(struct tokenizer, unk)},
        {"padding_token_id", offsetof(struct tokenizer, pad)},
        {"seperator_token_id", offsetof(struct tokenizer, sep)},
    };
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        int32_t *field = (int32_t *)((char *)t + ids[k].field);
        if ((rc = read_special_id(g, ids[k].key, nv, field, err, errlen)) < 0)
            goto fail;
    }
    if ((rc = read_flag(g, KEY_PREFIX "add_bos_token", &add_bos, err, errlen)) < 0 ||
        (rc = read_flag(g, KEY_PREFIX "add_eos_token", &add_eos, err, errlen)) < 0 ||
        (rc = read_flag(g, KEY_PREFIX "add_space_prefix", &t->add_space_prefix, err, errlen)) < 0)
        goto fail;
    t->add_bos = add_bos;
    t->add_eos = add_eos;
    if (t->add_bos && t->bos == TOKEN_NONE) {
        rc = err_set(err, errlen, PAGODA_EFORMAT,
                     KEY_PREFIX "add_bos_token is true but the model has no BOS token");
        goto fail;
    }
    if (t->add_eos && t->eos == TOKEN_NONE) {
        rc = err_set(err, errlen, PAGODA_EFORMAT,
                     KEY_PREFIX "add_eos_token is true but the model has no EOS token");
        goto fail;
    }

    find_eog(t);
    if ((rc = build_specials(t, err, errlen)) < 0)
        goto fail;
    build_byte_tokens(t);
    if ((rc = detok_build_pieces(t, err, errlen)) < 0)
        goto fail;
    *out = t;
    return 0;
fail:
    tokenizer_free(t);
    return rc;
}

void tokenizer_free(struct tokenizer *t)
{
    if (!t)
        return;
    free(t->tok);
    free(t->text);
    free(t->pieces);
    free(t->map);
    free(t->merges);
    pretok_free(t->pre);
    free(t->specials);
    free(t->special_lens);
    free(t);
}

static bool valid_id(const struct tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab;
}

int32_t tokenizer_find(const struct tokenizer *t, const char *text, size_t len)
{
    return vocab_lookup(t, text, len);
}

const char *tokenizer_token_text(const struct tokenizer *t, int32_t id, size_t *len)
{
    if (!valid_id(t, id))
        return NULL;
    *len = t->tok[id].len;
    return t->text + t->tok[id].off;
}

enum tokenizer_kind tokenizer_kind(const struct tokenizer *t) { return t->kind; }
int32_t tokenizer_n_vocab(const struct tokenizer *t) { return t->n_vocab; }
int32_t tokenizer_bos(const struct tokenizer *t) { return t->bos; }
int32_t tokenizer_eos(const struct tokenizer *t) { return t->eos; }
int32_t tokenizer_eot(const struct tokenizer *t) { return t->eot; }
int32_t tokenizer_unk(const struct tokenizer *t) { return t->unk; }
int32_t tokenizer_pad(const struct tokenizer *t) { return t->pad; }
bool tokenizer_add_bos(const struct tokenizer *t) { return t->add_bos; }
bool tokenizer_add_eos(const struct tokenizer *t) { return t->add_eos; }
bool tokenizer_add_space_prefix(const struct tokenizer *t) { return t->add_space_prefix; }
const char *tokenizer_pre_name(const struct tokenizer *t) { return t->pre_name; }

enum token_type tokenizer_token_type(const struct tokenizer *t, int32_t id)
{
    return valid_id(t, id) ? (enum token_type)t->tok[id].type : TOKEN_TYPE_UNDEFINED;
}

float tokenizer_token_score(const struct tokenizer *t, int32_t id)
{
    return valid_id(t, id) ? t->tok[id].score : 0.0f;
}

bool tokenizer_is_eog(const struct tokenizer *t, int32_t id)
{
    return valid_id(t, id) && (t->tok[id].flags & TOKF_EOG);
}
