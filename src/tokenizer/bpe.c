/*
 * bpe.c: byte-level BPE (tokenizer.ggml.model "gpt2"). Each pre-tokenized
 * word becomes one symbol per byte (GPT-2 maps every byte to a printable
 * character, so "Ġ" is a space); then the adjacent pair with the best
 * (lowest) merge rank is merged, leftmost first on ties, until no pair of
 * the word has a merge.
 */
#include <stdlib.h>
#include <string.h>

#include "pagoda.h"
#include "tokenizer/tok_internal.h"

/* GPT-2 keeps the printable bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) as
 * themselves and moves the other 68 to U+0100.. in byte order. */
static uint32_t byte_codepoint(uint8_t b)
{
    if (b <= 0x20)
        return 256u + b;
    if (b >= 0x7f && b <= 0xa0)
        return 256u + 33 + (b - 0x7fu);
    if (b == 0xad)
        return 256u + 67;
    return b;
}

int bpe_byte_char(uint8_t b, char out[2])
{
    uint32_t cp = byte_codepoint(b);
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xc0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
}

int bpe_char_byte(uint32_t cp)
{
    if ((cp >= 0x21 && cp <= 0x7e) || (cp >= 0xa1 && cp <= 0xac) || (cp >= 0xae && cp <= 0xff))
        return (int)cp;
    if (cp >= 256 && cp <= 256 + 32)
        return (int)(cp - 256);
    if (cp >= 256 + 33 && cp <= 256 + 66)
        return (int)(0x7f + cp - (256 + 33));
    if (cp == 256 + 67)
        return 0xad;
    return -1;
}

struct bpe_sym {
    int32_t id;
    int32_t prev, next; /* -1 at the ends */
};

struct bpe_pair {
    int32_t rank;
    int32_t left, right;     /* symbol indexes */
    int32_t left_id, right_id; /* what they held when the pair was queued */
};

struct bpe_scratch {
    struct bpe_sym *sym;
    size_t sym_cap;
    struct bpe_pair *heap;
    size_t heap_n, heap_cap;
    char *enc; /* the byte-encoded word, for whole-word lookups */
    size_t enc_cap;
};

static bool pair_less(const struct bpe_pair *a, const struct bpe_pair *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static int heap_push(struct bpe_scratch *s, struct bpe_pair p)
{
    if (s->heap_n == s->heap_cap) {
        size_t cap = s->heap_cap ? s->heap_cap * 2 : 64;
        struct bpe_pair *h = realloc(s->heap, cap * sizeof *h);
        if (!h)
            return PAGODA_ENOMEM;
        s->heap = h;
        s->heap_cap = cap;
    }
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_less(&p, &s->heap[parent]))
            break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = p;
    return 0;
}

static struct bpe_pair heap_pop(struct bpe_scratch *s)
{
    struct bpe_pair top = s->heap[0];
    struct bpe_pair last = s->heap[--s->heap_n];
    size_t i = 0, n = s->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && pair_less(&s->heap[c + 1], &s->heap[c]))
            c++;
        if (!pair_less(&s->heap[c], &last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n)
        s->heap[i] = last;
    return top;
}

static int queue_pair(const struct tokenizer *t, struct bpe_scratch *s, int32_t left,
                      int32_t right)
{
    if (left < 0 || right < 0)
        return 0;
    int32_t lid = s->sym[left].id, rid = s->sym[right].id, result;
    if (lid < 0 || rid < 0)
        return 0;
    int32_t rank = bpe_merge_find(t, lid, rid, &result);
    if (rank < 0)
        return 0;
    struct bpe_pair p = {rank, left, right, lid, rid};
    return heap_push(s, p);
}

static int encode_word(const struct tokenizer *t, struct bpe_scratch *s, const uint8_t *w,
                       size_t n, struct tok_ids *out)
{
    int rc;
    if (t->ignore_merges) {
        /* models trained that way take a whole word that is a token as is */
        if (s->enc_cap < 2 * n) {
            char *e = realloc(s->enc, 2 * n);
            if (!e)
                return PAGODA_ENOMEM;
            s->enc = e;
            s->enc_cap = 2 * n;
        }
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            m += (size_t)bpe_byte_char(w[i], s->enc + m);
        int32_t id = vocab_lookup(t, s->enc, m);
        if (id >= 0)
            return tok_ids_push(out, id);
    }
    if (s->sym_cap < n) {
        struct bpe_sym *sym = realloc(s->sym, n * sizeof *sym);
        if (!sym)
            return PAGODA_ENOMEM;
        s->sym = sym;
        s->sym_cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        s->sym[i].id = t->byte_tok[w[i]];
        s->sym[i].prev = (int32_t)i - 1;
        s->sym[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    s->heap_n = 0;
    for (size_t i = 1; i < n; i++)
        if ((rc = queue_pair(t, s, (int32_t)i - 1, (int32_t)i)) < 0)
            return rc;
    while (s->heap_n) {
        struct bpe_pair p = heap_pop(s);
        struct bpe_sym *l = &s->sym[p.left], *r = &s->sym[p.right];
        /* stale when either side has been merged since it was queued */
        if (l->id != p.left_id || r->id != p.right_id || l->next != p.right)
            continue;
        int32_t result;
        bpe_merge_find(t, p.left_id, p.right_id, &result);
        l->id = result;
        r->id = TOKEN_NONE - 1; /* dead: matches no queued pair */
        l->next = r->next;
        if (r->next >= 0)
            s->sym[r->next].prev = p.left;
        if ((rc = queue_pair(t, s, l->prev, p.left)) < 0 ||
            (rc = queue_pair(t, s, p.left, l->next)) < 0)
            return rc;
    }
    for (int32_t i = 0; i >= 0; i = s->sym[i].next)
        if (s->sym[i].id >= 0 && (rc = tok_ids_push(out, s->sym[i].id)) < 0)
            return rc; /* a byte without a token is dropped, as llama.cpp does */
    return 0;
}

int bpe_encode(const struct tokenizer *t, const char *text, size_t len, struct tok_ids *out)
{
    size_t *spans = NULL, n_words = 0;
    int rc = pretok_split(t->pre, text, len, &spans, &n_words);
    if (rc < 0)
        return rc;
    struct bpe_scratch s = {0};
    for (size_t w = 0; w < n_words && rc == 0; w++) {
        size_t off = spans[2 * w], n = spans[2 * w + 1];
        if (n)
            rc = encode_word(t, &s, (const uint8_t *)text + off, n, out);
    }
    free(s.sym);
    free(s.heap);
    free(s.enc);
    free(spans);
    return rc;
}
