/*
 * spm.c: SentencePiece-style encoding (tokenizer.ggml.model "llama"), as
 * llama.cpp does it: spaces become U+2581, a leading one is added, the text
 * starts as one symbol per UTF-8 character, and the adjacent pair whose
 * concatenation is the best-scoring token is merged (leftmost first on
 * ties) until no pair forms a token. A symbol that is not a token is spelled
 * with byte tokens <0xXX>.
 */
#include <stdlib.h>
#include <string.h>

#include "pagoda.h"
#include "tokenizer/tok_internal.h"

struct spm_sym {
    uint32_t off, n; /* bytes in the escaped text; n == 0 once merged away */
    int32_t prev, next;
};

struct spm_pair {
    float score;
    int32_t left, right;
    uint32_t size; /* bytes of the pair when queued */
};

struct spm_work {
    const struct tokenizer *t;
    const char *buf;
    struct spm_sym *sym;
    struct spm_pair *heap;
    size_t heap_n, heap_cap;
};

static bool pair_better(const struct spm_pair *a, const struct spm_pair *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int heap_push(struct spm_work *w, struct spm_pair p)
{
    if (w->heap_n == w->heap_cap) {
        size_t cap = w->heap_cap ? w->heap_cap * 2 : 64;
        struct spm_pair *h = realloc(w->heap, cap * sizeof *h);
        if (!h)
            return PAGODA_ENOMEM;
        w->heap = h;
        w->heap_cap = cap;
    }
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_better(&p, &w->heap[parent]))
            break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = p;
    return 0;
}

static struct spm_pair heap_pop(struct spm_work *w)
{
    struct spm_pair top = w->heap[0];
    struct spm_pair last = w->heap[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && pair_better(&w->heap[c + 1], &w->heap[c]))
            c++;
        if (!pair_better(&w->heap[c], &last))
            break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n)
        w->heap[i] = last;
    return top;
}

static int try_pair(struct spm_work *w, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return 0;
    const struct spm_sym *l = &w->sym[left], *r = &w->sym[right];
    uint32_t size = l->n + r->n;
    int32_t id = vocab_lookup(w->t, w->buf + l->off, size);
    if (id < 0)
        return 0;
    struct spm_pair p = {w->t->tok[id].score, left, right, size};
    return heap_push(w, p);
}

/* Length of the valid UTF-8 character at s, or 1 for a byte that does not
 * start one: a stray byte must not swallow the escaped space after it,
 * or byte fallback would spell that space as the bytes of U+2581. */
static size_t utf8_char_len(const uint8_t *s, size_t n)
{
    size_t l = tok_utf8_len(s[0]);
    if (l == 1 || l > n)
        return 1;
    for (size_t i = 1; i < l; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 1;
    return l;
}

static int emit_symbol(const struct tokenizer *t, const char *s, size_t n, struct tok_ids *out)
{
    int32_t id = vocab_lookup(t, s, n);
    if (id >= 0)
        return tok_ids_push(out, id);
    for (size_t i = 0; i < n; i++) {
        int32_t b = t->byte_tok[(uint8_t)s[i]];
        if (b < 0)
            b = t->unk; /* a vocabulary without byte tokens */
        if (b >= 0) {
            int rc = tok_ids_push(out, b);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int spm_encode(const struct tokenizer *t, const char *text, size_t len, bool space_prefix,
               struct tok_ids *out)
{
    static const char esc[3] = {'\xe2', '\x96', '\x81'}; /* U+2581 */
    size_t cap = 3 * (len + 1);
    if (len > (SIZE_MAX - 3) / 3 || cap > 0xffffffffu)
        return PAGODA_EINVAL;
    char *buf = malloc(cap);
    struct spm_sym *sym = malloc((len + 1) * sizeof *sym);
    if (!buf || !sym) {
        free(buf);
        free(sym);
        return PAGODA_ENOMEM;
    }
    size_t n = 0;
    if (space_prefix) {
        memcpy(buf, esc, 3);
        n = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(buf + n, esc, 3);
            n += 3;
        } else {
            buf[n++] = text[i];
        }
    }
    int32_t n_sym = 0;
    for (size_t off = 0; off < n;) {
        size_t l = utf8_char_len((const uint8_t *)buf + off, n - off);
        sym[n_sym].off = (uint32_t)off;
        sym[n_sym].n = (uint32_t)l;
        sym[n_sym].prev = n_sym - 1;
        off += l;
        sym[n_sym].next = off < n ? n_sym + 1 : -1;
        n_sym++;
    }

    struct spm_work w = {t, buf, sym, NULL, 0, 0};
    int rc = 0;
    for (int32_t i = 1; i < n_sym && rc == 0; i++)
        rc = try_pair(&w, i - 1, i);
    while (w.heap_n && rc == 0) {
        struct spm_pair p = heap_pop(&w);
        struct spm_sym *l = &sym[p.left], *r = &sym[p.right];
        /* stale when either side has changed since the pair was queued */
        if (l->n == 0 || r->n == 0 || l->n + r->n != p.size)
            continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            sym[r->next].prev = p.left;
        rc = try_pair(&w, l->prev, p.left);
        if (rc == 0)
            rc = try_pair(&w, p.left, l->next);
    }
    for (int32_t i = n_sym ? 0 : -1; i >= 0 && rc == 0; i = sym[i].next)
        rc = emit_symbol(t, buf + sym[i].off, sym[i].n, out);
    free(w.heap);
    free(sym);
    free(buf);
    return rc;
}
