/*
 * tokenize.c: tokenizer_encode. The text is first cut around special tokens
 * written in it (user-defined ones always, control ones when the caller
 * asks), longest token first as llama.cpp does; the plain-text fragments in
 * between go to the SPM or BPE encoder, and BOS/EOS are added as the model
 * says.
 */
#include <stdlib.h>
#include <string.h>

#include "pagoda.h"
#include "tokenizer/tok_internal.h"

struct frag {
    int32_t tok; /* >= 0: a special token; TOKEN_NONE: text [off, off+len) */
    size_t off, len;
};

struct frag_list {
    struct frag *v;
    size_t n, cap;
};

static int frag_push(struct frag_list *l, int32_t tok, size_t off, size_t len)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct frag *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return PAGODA_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (struct frag){tok, off, len};
    return 0;
}

static bool eligible(const struct tokenizer *t, int32_t id, bool parse_special)
{
    const struct tok_entry *e = &t->tok[id];
    if (!(e->flags & TOKF_SPECIAL_CACHE))
        return false;
    return parse_special || e->type == TOKEN_TYPE_USER_DEFINED;
}

/* The special tokens that occur somewhere in text, longest first. Scanning
 * once with the first-byte filter keeps this cheap for vocabularies with
 * thousands of user-defined tokens. */
static int find_present(const struct tokenizer *t, const char *text, size_t len,
                        bool parse_special, int32_t **out, size_t *n_out)
{
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    for (size_t pos = 0; pos < len; pos++) {
        uint8_t c = (uint8_t)text[pos];
        if (!(t->special_first[c >> 3] & (1u << (c & 7))))
            continue;
        for (int32_t k = 0; k < t->n_special_lens; k++) {
            uint32_t l = t->special_lens[k];
            if (l > len - pos)
                continue;
            int32_t id = vocab_lookup(t, text + pos, l);
            if (id < 0 || !eligible(t, id, parse_special))
                continue;
            size_t j = 0;
            while (j < n && ids[j] != id)
                j++;
            if (j < n)
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 8;
                int32_t *v = realloc(ids, cap * sizeof *v);
                if (!v) {
                    free(ids);
                    return PAGODA_ENOMEM;
                }
                ids = v;
            }
            ids[n++] = id;
        }
    }
    tok_sort_specials(t, ids, n);
    *out = ids;
    *n_out = n;
    return 0;
}

static int partition(const struct tokenizer *t, const char *text, size_t len, bool parse_special,
                     struct frag_list *frags)
{
    int rc = frag_push(frags, TOKEN_NONE, 0, len);
    if (rc < 0 || t->n_specials == 0)
        return rc;
    int32_t *present;
    size_t n_present;
    if ((rc = find_present(t, text, len, parse_special, &present, &n_present)) < 0)
        return rc;
    struct frag_list next = {0};
    for (size_t k = 0; k < n_present && rc == 0; k++) {
        int32_t id = present[k];
        const char *s = t->text + t->tok[id].off;
        size_t sl = t->tok[id].len;
        next.n = 0;
        for (size_t i = 0; i < frags->n && rc == 0; i++) {
            struct frag f = frags->v[i];
            if (f.tok >= 0) {
                rc = frag_push(&next, f.tok, 0, 0);
                continue;
            }
            size_t at = f.off, end = f.off + f.len;
            while (rc == 0) {
                const char *hit = end - at >= sl ? memmem(text + at, end - at, s, sl) : NULL;
                if (!hit)
                    break;
                size_t h = (size_t)(hit - text);
                if (h > at)
                    rc = frag_push(&next, TOKEN_NONE, at, h - at);
                if (rc == 0)
                    rc = frag_push(&next, id, 0, 0);
                at = h + sl;
            }
            if (rc == 0 && at < end)
                rc = frag_push(&next, TOKEN_NONE, at, end - at);
        }
        struct frag_list tmp = *frags;
        *frags = next;
        next = tmp;
    }
    free(next.v);
    free(present);
    return rc;
}

int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, bool add_special,
                     bool parse_special, int32_t *out, size_t max, size_t *n)
{
    *n = 0;
    if (!t || (!text && len) || (!out && max))
        return PAGODA_EINVAL;
    struct frag_list frags = {0};
    struct tok_ids ids = {0};
    int rc = 0;
    if (len)
        rc = partition(t, text, len, parse_special, &frags);
    if (rc == 0 && add_special && t->add_bos)
        rc = tok_ids_push(&ids, t->bos);
    bool prev_special = true; /* SPM: a text fragment after a special token gets the space */
    for (size_t i = 0; i < frags.n && rc == 0; i++) {
        const struct frag *f = &frags.v[i];
        if (f->tok >= 0) {
            rc = tok_ids_push(&ids, f->tok);
            prev_special = true;
        } else if (t->kind == TOKENIZER_SPM) {
            rc = spm_encode(t, text + f->off, f->len, t->add_space_prefix && prev_special, &ids);
            prev_special = false;
        } else {
            rc = bpe_encode(t, text + f->off, f->len, &ids);
        }
    }
    if (rc == 0 && add_special && t->add_eos)
        rc = tok_ids_push(&ids, t->eos);
    free(frags.v);
    if (rc < 0) {
        free(ids.v);
        return rc;
    }
    *n = ids.n;
    size_t k = ids.n < max ? ids.n : max;
    if (k)
        memcpy(out, ids.v, k * sizeof *out);
    free(ids.v);
    return ids.n > max ? PAGODA_ERANGE : 0;
}
