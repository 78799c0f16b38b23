/*
 * import_llama2c.h: reading llama2.c checkpoints (model.bin) and tokenizers
 * (tokenizer.bin) and writing them as a llama-architecture GGUF file.
 *
 * Checkpoints come in two float32 layouts: the legacy one (a header of seven
 * int32, a negative vocab_size meaning a separate classifier) and version 1
 * ("ak42" magic, a 256-byte header, weights grouped differently). Both are
 * validated against the file size before a weight is touched. The int8
 * version 2 layout is refused with a message.
 *
 * Tokenizers: int32 max_token_length, then per token a float score, an int32
 * length and the bytes. Pieces are turned back into SentencePiece form ("▁"
 * for spaces, "<0xXX>" for byte tokens, "<s>" and "</s>" without the newlines
 * llama2.c adds) so the vocabulary is the one the model was trained with.
 */
#ifndef PAGODA_MODEL_IMPORT_LLAMA2C_H
#define PAGODA_MODEL_IMPORT_LLAMA2C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LLAMA2C_MAGIC 0x616b3432u /* "ak42" little-endian */
#define LLAMA2C_V1_HEADER_SIZE 256

enum llama2c_format {
    LLAMA2C_FORMAT_LEGACY = 0,
    LLAMA2C_FORMAT_V1 = 1,
};

/* GGUF's token types (tokenizer.ggml.token_type). */
enum llama2c_token_type {
    LLAMA2C_TOKEN_NORMAL = 1,
    LLAMA2C_TOKEN_UNKNOWN = 2,
    LLAMA2C_TOKEN_CONTROL = 3,
    LLAMA2C_TOKEN_BYTE = 6,
};

struct llama2c_config {
    int dim;        /* embedding width */
    int hidden_dim; /* feed-forward width */
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int vocab_size; /* always positive here */
    int seq_len;    /* trained context length */
    bool shared_classifier; /* the output matrix is the token embedding */
    enum llama2c_format format;
    size_t header_size;  /* bytes before the first weight */
    size_t file_size;    /* what the header implies; equals the real size */
};

/* Parses a checkpoint's header and checks that the size of the data matches
 * the shapes it declares exactly. */
int llama2c_parse_config(const void *data, size_t size, struct llama2c_config *cfg, char *err,
                         size_t errlen);

struct llama2c_vocab {
    int n_tokens;
    int max_token_length; /* as the file states it */
    char **tokens;        /* n_tokens NUL-terminated pieces in GGUF form */
    float *scores;        /* n_tokens */
    int32_t *types;       /* n_tokens, enum llama2c_token_type */
};

/* Parses a tokenizer.bin. n_tokens >= 0 demands exactly that many tokens
 * (the model's vocab_size); -1 reads tokens until the data ends. On success
 * *out owns its arrays (free with llama2c_vocab_free). */
int llama2c_parse_tokenizer(const void *data, size_t size, int n_tokens,
                            struct llama2c_vocab *out, char *err, size_t errlen);
void llama2c_vocab_free(struct llama2c_vocab *v);

/* Converts a checkpoint and tokenizer held in memory into a GGUF file at
 * out_path (written through a temporary file and a rename). name becomes
 * general.name. cfg_out, if not NULL, receives the checkpoint's shape. */
int llama2c_convert(const void *model, size_t model_size, const void *tokenizer,
                    size_t tokenizer_size, const char *name, const char *out_path,
                    struct llama2c_config *cfg_out, char *err, size_t errlen);

/* The same from files (mapped, not copied). A NULL name is taken from the
 * checkpoint's file name without its extension. */
int llama2c_convert_files(const char *model_path, const char *tokenizer_path, const char *name,
                          const char *out_path, struct llama2c_config *cfg_out, char *err,
                          size_t errlen);

#endif
