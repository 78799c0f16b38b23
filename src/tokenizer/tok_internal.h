/*
 * tok_internal.h: the tokenizer's private layout, shared by the files of
 * src/tokenizer/ (vocab.c loads it, spm.c / bpe.c / pretok.c encode,
 * tokenize.c splits out special tokens, detok.c turns ids back into text).
 */
#ifndef PAGODA_TOK_INTERNAL_H
#define PAGODA_TOK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"

/* Per-token flags. */
#define TOKF_SPECIAL_CACHE 0x01 /* control, user-defined or unknown: matched whole */
#define TOKF_HIDDEN 0x02        /* control or unknown: empty piece unless asked */
#define TOKF_EOG 0x04

struct tok_entry {
    uint32_t off;  /* into tokenizer.text */
    uint32_t len;
    uint32_t piece_off; /* into tokenizer.pieces */
    uint32_t piece_len;
    float score;
    uint8_t type;  /* enum token_type */
    uint8_t flags; /* TOKF_* */
};

/* A growable array of ids used while encoding. */
struct tok_ids {
    int32_t *v;
    size_t n, cap;
};
int tok_ids_push(struct tok_ids *a, int32_t id);

/* Compiled pre-tokenizer: regexes applied one after the other, each one
 * splitting every piece the previous left into matches and the gaps between. */
struct pretok;
/* pre: the tokenizer.ggml.pre name. Sets *ignore_merges / *add_bos_default
 * as the model family expects. Returns 0 or a negative status. */
int pretok_create(const char *pre, struct pretok **out, bool *ignore_merges,
                  bool *add_bos_default, char *err, size_t errlen);
void pretok_free(struct pretok *p);
/* Splits text into words: (offset, length) pairs in *spans (2 entries per
 * word, caller frees). Returns 0 or a negative status. */
int pretok_split(const struct pretok *p, const char *text, size_t len, size_t **spans,
                 size_t *n_words);

struct merge_slot {
    uint64_t key;   /* left id << 32 | right id; 0 marks an empty slot (key+1 is stored) */
    int32_t rank;
    int32_t result;
};

struct tokenizer {
    enum tokenizer_kind kind;
    int32_t n_vocab;
    struct tok_entry *tok;
    char *text;   /* every token's text, back to back */
    char *pieces; /* every token's decoded bytes */

    /* text -> id: open addressing, table size a power of two */
    int32_t *map;
    uint32_t map_mask;

    /* BPE merges: (left id, right id) -> rank, merged id */
    struct merge_slot *merges;
    uint32_t merge_mask;
    struct pretok *pre;
    char pre_name[64];
    bool ignore_merges;

    /* SPM: token of each byte (<0xXX>); BPE: token of each byte's character */
    int32_t byte_tok[256];

    /* special tokens matched whole in the input, longest first */
    int32_t *specials;
    int32_t n_specials;
    uint8_t special_first[32]; /* bitmap of their first bytes */
    uint32_t *special_lens;    /* distinct lengths, descending */
    int32_t n_special_lens;

    bool add_bos, add_eos, add_space_prefix;
    int32_t bos, eos, eot, eom, unk, pad, sep;
};

uint64_t tok_hash(const char *s, size_t n);
int32_t vocab_lookup(const struct tokenizer *t, const char *s, size_t n);

/* Appends the SPM tokens of one text fragment (already without special tokens). */
int spm_encode(const struct tokenizer *t, const char *text, size_t len, bool space_prefix,
               struct tok_ids *out);
/* Appends the BPE tokens of one text fragment. */
int bpe_encode(const struct tokenizer *t, const char *text, size_t len, struct tok_ids *out);
/* Looks up a merge: returns its rank and sets *result, or -1. */
int32_t bpe_merge_find(const struct tokenizer *t, int32_t left, int32_t right, int32_t *result);

/* GPT-2's byte <-> character table. Fills the UTF-8 of byte b's character
 * into out (2 bytes at most) and returns its length. */
int bpe_byte_char(uint8_t b, char out[2]);
/* The byte a character stands for, or -1 when it is not in the table. */
int bpe_char_byte(uint32_t cp);

/* Sorts special token ids longest text first, then by id. */
void tok_sort_specials(const struct tokenizer *t, int32_t *ids, size_t n);

/* The byte of a "<0xXX>" token text, or -1 for any other text. */
int tok_parse_hex_byte(const char *s, size_t n);

/* Builds every token's decoded piece (vocab.c calls it at load time). */
int detok_build_pieces(struct tokenizer *t, char *err, size_t errlen);

/* Length of the UTF-8 sequence a lead byte starts (1 for a stray byte). */
static inline size_t tok_utf8_len(uint8_t c)
{
    static const uint8_t lut[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lut[c >> 4];
}

#endif
