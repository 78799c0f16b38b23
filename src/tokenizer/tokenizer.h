/*
 * tokenizer.h: text <-> token ids for a model, built from its GGUF metadata
 * alone (tokenizer.ggml.*). Two kinds are supported:
 *   - "llama": SentencePiece-style (scores, U+2581 for spaces, a leading
 *     space, merges by best score, byte fallback to <0xXX> tokens);
 *   - "gpt2":  byte-level BPE (merge ranks, a pre-tokenizer of Unicode
 *     regexes chosen by tokenizer.ggml.pre).
 * A loaded tokenizer copies what it needs: it does not keep the gguf_file.
 * It is read-only after loading, so any number of threads may encode and
 * decode with it at once.
 */
#ifndef PAGODA_TOKENIZER_H
#define PAGODA_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gguf_file;
struct tokenizer;

enum tokenizer_kind {
    TOKENIZER_SPM = 1, /* tokenizer.ggml.model "llama" */
    TOKENIZER_BPE = 2, /* tokenizer.ggml.model "gpt2" */
};

/* tokenizer.ggml.token_type values. */
enum token_type {
    TOKEN_TYPE_UNDEFINED = 0,
    TOKEN_TYPE_NORMAL = 1,
    TOKEN_TYPE_UNKNOWN = 2,
    TOKEN_TYPE_CONTROL = 3,
    TOKEN_TYPE_USER_DEFINED = 4,
    TOKEN_TYPE_UNUSED = 5,
    TOKEN_TYPE_BYTE = 6,
};

#define TOKEN_NONE (-1)

/* Builds a tokenizer from g's metadata, checking every array's type and
 * length and every special token id. On failure returns a negative
 * pagoda_status and a message naming the key at fault. */
int tokenizer_load(const struct gguf_file *g, struct tokenizer **out, char *err, size_t errlen);
void tokenizer_free(struct tokenizer *t);

/* Encodes len bytes of text (any bytes; need not be valid UTF-8 nor
 * NUL-terminated). add_special adds BOS/EOS as the metadata says.
 * parse_special lets control tokens written in the text (e.g. "<s>") become
 * those tokens; without it they are plain text. User-defined tokens are
 * always matched as whole pieces first, as the model's own tokenizer does.
 * Writes up to max ids to out and the total into *n. Returns 0, or
 * PAGODA_ERANGE when max is too small (then *n is the size needed and out
 * holds the first max ids), PAGODA_ENOMEM, or PAGODA_EINVAL. */
int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, bool add_special,
                     bool parse_special, int32_t *out, size_t max, size_t *n);

/* The bytes token id stands for (not NUL-terminated, length in *len; they
 * live as long as t). Control and unknown tokens give their text only when
 * special is true, an empty piece otherwise. NULL for an id out of range. */
const char *tokenizer_token_to_piece(const struct tokenizer *t, int32_t id, bool special,
                                     size_t *len);

/* The token's text as stored in the vocabulary (e.g. "\xe2\x96\x81the",
 * "Ġthe", "<0x0A>"), or NULL for an id out of range. */
const char *tokenizer_token_text(const struct tokenizer *t, int32_t id, size_t *len);

/* Token id of an exact vocabulary text, or TOKEN_NONE. */
int32_t tokenizer_find(const struct tokenizer *t, const char *text, size_t len);

/* Decodes a whole sequence into out (cap bytes; *n gets the total length,
 * also when it does not fit, then PAGODA_ERANGE). The leading space an SPM
 * tokenizer adds is removed again at the start and after special tokens,
 * so decode(encode(x)) == x. Ids out of range give PAGODA_EINVAL. */
int tokenizer_decode(const struct tokenizer *t, const int32_t *ids, size_t n_ids, bool special,
                     char *out, size_t cap, size_t *n);

enum tokenizer_kind tokenizer_kind(const struct tokenizer *t);
int32_t tokenizer_n_vocab(const struct tokenizer *t);
enum token_type tokenizer_token_type(const struct tokenizer *t, int32_t id);
float tokenizer_token_score(const struct tokenizer *t, int32_t id);
/* Special token ids, TOKEN_NONE when the model has none. */
int32_t tokenizer_bos(const struct tokenizer *t);
int32_t tokenizer_eos(const struct tokenizer *t);
int32_t tokenizer_eot(const struct tokenizer *t);
int32_t tokenizer_unk(const struct tokenizer *t);
int32_t tokenizer_pad(const struct tokenizer *t);
bool tokenizer_add_bos(const struct tokenizer *t);
bool tokenizer_add_eos(const struct tokenizer *t);
bool tokenizer_add_space_prefix(const struct tokenizer *t);
/* The pre-tokenizer name in use ("gpt-2", "llama-bpe", ...; "" for SPM). */
const char *tokenizer_pre_name(const struct tokenizer *t);
/* True for tokens that end generation (EOS, EOT, EOM and the end-of-turn
 * tokens models mark by name, such as <|im_end|> or <|eot_id|>). */
bool tokenizer_is_eog(const struct tokenizer *t, int32_t id);

/* ---- incremental detokenizer (streaming) ----
 * Turns tokens into text one at a time and never hands out a broken UTF-8
 * sequence: the bytes of a character split across tokens are held back until
 * it is complete. Bytes that can never form a character come out as U+FFFD,
 * so everything handed out is valid UTF-8. */
struct tokenizer_stream;

/* at_start: the tokens begin a text (strip the SPM leading space of the
 * first piece); false when they continue a prompt. special: render control
 * tokens as their text. Returns 0, PAGODA_ENOMEM. */
int tokenizer_stream_create(const struct tokenizer *t, bool special, bool at_start,
                            struct tokenizer_stream **out);
/* Adds one token. *text and *len receive the bytes now complete (possibly none);
 * they stay valid until the next call on s. PAGODA_EINVAL for a bad id. */
int tokenizer_stream_push(struct tokenizer_stream *s, int32_t id, const char **text, size_t *len);
/* Ends the stream: bytes still held back come out (an unfinished character
 * as U+FFFD) and s is ready for a new text. */
int tokenizer_stream_flush(struct tokenizer_stream *s, const char **text, size_t *len);
void tokenizer_stream_free(struct tokenizer_stream *s);

#endif
