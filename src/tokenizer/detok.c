/*
 * detok.c: token ids back to bytes. Every token's bytes are worked out once
 * at load time (SPM: U+2581 -> space, <0xXX> -> that byte; BPE: GPT-2's
 * character -> byte table), so decoding is concatenation plus the removal
 * of the space an SPM tokenizer puts in front of a text. The streaming
 * detokenizer also holds back the bytes of an unfinished UTF-8 character.
 */
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "tokenizer/tok_internal.h"

/* Decodes one UTF-8 character at s (n bytes available): its length, with
 * the code point in *cp, or 0 when s does not start a valid character. */
static size_t utf8_decode(const uint8_t *s, size_t n, uint32_t *cp)
{
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len = c >= 0xf8 ? 0 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    if (!len || len > n)
        return 0;
    uint32_t v = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[len] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

static size_t piece_of(const struct tokenizer *t, int32_t id, char *out)
{
    const struct tok_entry *e = &t->tok[id];
    const char *s = t->text + e->off;
    size_t n = e->len, m = 0;
    int byte;
    switch (e->type) {
    case TOKEN_TYPE_CONTROL:
    case TOKEN_TYPE_UNKNOWN:
    case TOKEN_TYPE_USER_DEFINED:
        memcpy(out, s, n);
        return n;
    case TOKEN_TYPE_BYTE:
        if ((byte = tok_parse_hex_byte(s, n)) >= 0) {
            out[0] = (char)byte;
            return 1;
        }
        break; /* not of the <0xXX> form: read it as a normal token */
    case TOKEN_TYPE_NORMAL:
        break;
    default: /* unused and undefined tokens stand for nothing */
        return 0;
    }
    if (t->kind == TOKENIZER_SPM) {
        for (size_t i = 0; i < n;) {
            if (i + 3 <= n && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                out[m++] = ' ';
                i += 3;
            } else {
                out[m++] = s[i++];
            }
        }
        return m;
    }
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = utf8_decode((const uint8_t *)s + i, n - i, &cp);
        int b = l ? bpe_char_byte(cp) : -1;
        if (b >= 0) {
            out[m++] = (char)b;
            i += l;
        } else {
            /* not one of the 256 byte characters: keep the text as it is */
            size_t k = l ? l : 1;
            memcpy(out + m, s + i, k);
            m += k;
            i += k;
        }
    }
    return m;
}

int detok_build_pieces(struct tokenizer *t, char *err, size_t errlen)
{
    size_t total = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        total += t->tok[id].len; /* a piece is never longer than its text */
    t->pieces = malloc(total + 1);
    if (!t->pieces)
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory for token pieces");
    size_t off = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        size_t n = piece_of(t, id, t->pieces + off);
        t->tok[id].piece_off = (uint32_t)off;
        t->tok[id].piece_len = (uint32_t)n;
        off += n;
    }
    return 0;
}

const char *tokenizer_token_to_piece(const struct tokenizer *t, int32_t id, bool special,
                                     size_t *len)
{
    if (id < 0 || id >= t->n_vocab)
        return NULL;
    const struct tok_entry *e = &t->tok[id];
    *len = (!special && (e->flags & TOKF_HIDDEN)) ? 0 : e->piece_len;
    return t->pieces + e->piece_off;
}

/* The bytes of one token in a sequence, applying the SPM space removal:
 * *strip says whether a leading space is to go, and is updated. */
static const char *next_piece(const struct tokenizer *t, int32_t id, bool special, bool *strip,
                              size_t *len)
{
    const char *p = tokenizer_token_to_piece(t, id, special, len);
    if (t->tok[id].flags & TOKF_SPECIAL_CACHE) {
        *strip = t->add_space_prefix;
        return p;
    }
    if (*strip && *len && p[0] == ' ') {
        p++;
        (*len)--;
    }
    *strip = false;
    return p;
}

int tokenizer_decode(const struct tokenizer *t, const int32_t *ids, size_t n_ids, bool special,
                     char *out, size_t cap, size_t *n)
{
    *n = 0;
    if (!t || (!ids && n_ids) || (!out && cap))
        return PAGODA_EINVAL;
    bool strip = t->add_space_prefix;
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return PAGODA_EINVAL;
        size_t len;
        const char *p = next_piece(t, ids[i], special, &strip, &len);
        if (total < cap) {
            size_t k = len < cap - total ? len : cap - total;
            if (k)
                memcpy(out + total, p, k);
        }
        total += len;
    }
    *n = total;
    return total > cap ? PAGODA_ERANGE : 0;
}

/* ---- streaming ---- */

struct tokenizer_stream {
    const struct tokenizer *t;
    bool special;
    bool at_start;
    bool strip;
    uint8_t pend[4]; /* the start of a character not yet complete */
    size_t n_pend;
    char *buf;
    size_t cap;
};

int tokenizer_stream_create(const struct tokenizer *t, bool special, bool at_start,
                            struct tokenizer_stream **out)
{
    struct tokenizer_stream *s = calloc(1, sizeof *s);
    if (!s)
        return PAGODA_ENOMEM;
    s->t = t;
    s->special = special;
    s->at_start = at_start;
    s->strip = at_start && t->add_space_prefix;
    *out = s;
    return 0;
}

void tokenizer_stream_free(struct tokenizer_stream *s)
{
    if (!s)
        return;
    free(s->buf);
    free(s);
}

static const char replacement[3] = {'\xef', '\xbf', '\xbd'}; /* U+FFFD */

/* Could s[0..n) still grow into a valid character? (n < its full length) */
static bool utf8_incomplete(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    size_t len = c >= 0xf5 ? 0 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
    if (!len || n >= len)
        return false;
    for (size_t i = 1; i < n; i++) {
        uint8_t lo = 0x80, hi = 0xbf;
        if (i == 1) {
            /* second-byte limits that rule out overlongs, surrogates and > U+10FFFF */
            if (c == 0xe0)
                lo = 0xa0;
            else if (c == 0xed)
                hi = 0x9f;
            else if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f;
        }
        if (s[i] < lo || s[i] > hi)
            return false;
    }
    return true;
}

int tokenizer_stream_push(struct tokenizer_stream *s, int32_t id, const char **text, size_t *len)
{
    *text = s->buf ? s->buf : "";
    *len = 0;
    if (id < 0 || id >= s->t->n_vocab)
        return PAGODA_EINVAL;
    size_t plen;
    const char *p = next_piece(s->t, id, s->special, &s->strip, &plen);
    size_t in_n = s->n_pend + plen;
    if (in_n == 0)
        return 0; /* an empty piece: nothing to hand out */
    /* worst case every byte becomes U+FFFD; the input is staged at the end */
    size_t need = 3 * in_n + in_n;
    if (need > s->cap) {
        char *b = realloc(s->buf, need);
        if (!b)
            return PAGODA_ENOMEM;
        s->buf = b;
        s->cap = need;
    }
    uint8_t *in = (uint8_t *)s->buf + 3 * in_n;
    memcpy(in, s->pend, s->n_pend);
    memcpy(in + s->n_pend, p, plen);
    s->n_pend = 0;
    size_t o = 0;
    for (size_t i = 0; i < in_n;) {
        uint32_t cp;
        size_t l = utf8_decode(in + i, in_n - i, &cp);
        if (l) {
            memmove(s->buf + o, in + i, l);
            o += l;
            i += l;
        } else if (utf8_incomplete(in + i, in_n - i)) {
            s->n_pend = in_n - i;
            memcpy(s->pend, in + i, s->n_pend);
            break;
        } else {
            memcpy(s->buf + o, replacement, 3);
            o += 3;
            i++;
        }
    }
    *text = s->buf;
    *len = o;
    return 0;
}

int tokenizer_stream_flush(struct tokenizer_stream *s, const char **text, size_t *len)
{
    if (s->cap < 3) {
        char *b = realloc(s->buf, 16);
        if (!b)
            return PAGODA_ENOMEM;
        s->buf = b;
        s->cap = 16;
    }
    *len = 0;
    if (s->n_pend) {
        memcpy(s->buf, replacement, 3);
        *len = 3;
    }
    *text = s->buf;
    s->n_pend = 0;
    s->strip = s->at_start && s->t->add_space_prefix;
    return 0;
}
