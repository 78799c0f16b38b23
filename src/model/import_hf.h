/*
 * import_hf.h: converting a Hugging Face model folder (config.json,
 * tokenizer.json, tokenizer_config.json, safetensors in F32/F16/BF16, one
 * file or sharded) of the llama, mistral, qwen2 or qwen3 families to a GGUF
 * file the way GGUF files of those models are laid out: GGUF tensor names,
 * Q/K rows of llama-family models permuted for interleaved RoPE, the
 * tokenizer as tokenizer.ggml.* (SentencePiece-style llama vocabularies with
 * byte fallback, or byte-level BPE with merges and a pre-tokenizer name),
 * special tokens and the chat template.
 */
#ifndef PAGODA_MODEL_IMPORT_HF_H
#define PAGODA_MODEL_IMPORT_HF_H

#include <stdbool.h>

#include "base/pool.h"

struct hf_config {
    char arch[16];        /* GGUF architecture: "llama" (also for mistral), "qwen2", "qwen3" */
    char model_type[32];  /* config.json's model_type */
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx;
    double rms_eps, rope_theta;
    double rope_linear;   /* linear RoPE scaling factor, 0 when none */
    bool rope_llama3;     /* llama3 frequency scaling (writes rope_freqs.weight) */
    double l3_factor, l3_low, l3_high, l3_orig_ctx;
    bool tied;            /* no lm_head: the embedding is the output matrix */
};

/* Parses config.json text. */
int hf_parse_config(const char *json, struct hf_config *c, char *err, size_t errlen);

struct hf_convert_opts {
    const char *type;  /* a quant_recipe preset for the weights: "f16" (default), "bf16",
                          "f32", "q8_0", "q4_k_m", ... */
    const char *name;  /* general.name; NULL: the folder's name */
    struct pool *pool; /* for quantizing; NULL: the calling thread */
};

/* Converts the folder dir to out_path (through a temporary file and rename).
 * cfg_out, when not NULL, receives the parsed config. */
int hf_convert(const char *dir, const char *out_path, const struct hf_convert_opts *o,
               struct hf_config *cfg_out, char *err, size_t errlen);

#endif
