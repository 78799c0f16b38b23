/*
 * quant_recipe.h: which weight type each tensor of a llama-family model gets
 * under a quantization preset ("q4_k_m", "q8_0", "q4_k-pure", ...). The mixes
 * are the usual GGUF ones, so a file pagoda writes has the same tensor types
 * (and size) as the widely shared files of that name: Q4_K_M keeps the output
 * in Q6_K and gives attn_v and ffn_down Q6_K in the first and last eighth of
 * the layers and in every third layer between; norms stay F32.
 */
#ifndef PAGODA_MODEL_QUANT_RECIPE_H
#define PAGODA_MODEL_QUANT_RECIPE_H

#include <stdbool.h>
#include <stdint.h>

/* What the recipe needs to know of the model besides the tensor itself. */
struct quant_recipe_model {
    int n_layers;     /* blocks in the model */
    int n_gqa;        /* n_head / n_head_kv (1 without grouped-query attention) */
    bool tied_output; /* no output.weight: token_embd doubles as the output matrix */
};

/* The preset names, NULL-terminated: mixed presets first, then the
 * "<type>-pure" ones that put every matrix in one type. */
const char *const *quant_preset_names(void);

/* True when name (case-insensitive) is a preset. */
bool quant_preset_valid(const char *name);

/* The general.file_type value a file of this preset declares, or -1. */
int quant_preset_file_type(const char *name);

/* The usual name of a general.file_type value ("Q4_K_M"), or NULL when the
 * value is unknown. */
const char *quant_file_type_name(long long file_type);

/* The type (enum pg_type) a tensor gets under a preset, or -1 for an unknown
 * preset. name is the GGUF tensor name ("blk.3.attn_v.weight"); n_dims and
 * ne0 (elements per row) its shape. 1-D tensors and tensors not named
 * "*.weight" stay F32. When ne0 is not a multiple of the chosen type's block
 * size, the type falls back the usual way (q4_K -> q5_0, q5_K -> q5_1,
 * q6_K -> q8_0, q2_K/q3_K -> q4_0, then f16), so the result always holds
 * rows of ne0 elements. */
int quant_recipe_type(const char *preset, const char *name, int n_dims, int64_t ne0,
                      const struct quant_recipe_model *m);

#endif
