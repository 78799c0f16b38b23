/*
 * quant_recipe.c: the per-tensor type choices of the quantization presets
 * (see quant_recipe.h). A preset has a base type; the mixed presets then
 * raise a few sensitive tensors (output, attn_v, ffn_down, attn_output) by
 * layer position, and every choice is finally made to fit the row length.
 */
#include "model/quant_recipe.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ops/types.h"

enum preset_id {
    P_F32, P_F16, P_BF16, P_Q8_0, P_Q4_0, P_Q4_1, P_Q5_0, P_Q5_1,
    P_Q2_K, P_Q3_K_S, P_Q3_K_M, P_Q3_K_L, P_Q4_K_S, P_Q4_K_M, P_Q5_K_S, P_Q5_K_M, P_Q6_K,
};

struct preset {
    const char *name;
    int id;         /* enum preset_id; the rules for mixed presets key on it */
    int base;       /* enum pg_type most matrices get */
    int file_type;  /* general.file_type */
    bool pure;      /* every matrix in base, no per-tensor rules */
};

static const struct preset presets[] = {
    {"f32", P_F32, PG_TYPE_F32, 0, false},
    {"f16", P_F16, PG_TYPE_F16, 1, false},
    {"bf16", P_BF16, PG_TYPE_BF16, 32, false},
    {"q8_0", P_Q8_0, PG_TYPE_Q8_0, 7, false},
    {"q4_0", P_Q4_0, PG_TYPE_Q4_0, 2, false},
    {"q4_1", P_Q4_1, PG_TYPE_Q4_1, 3, false},
    {"q5_0", P_Q5_0, PG_TYPE_Q5_0, 8, false},
    {"q5_1", P_Q5_1, PG_TYPE_Q5_1, 9, false},
    {"q2_k", P_Q2_K, PG_TYPE_Q2_K, 10, false},
    {"q3_k_s", P_Q3_K_S, PG_TYPE_Q3_K, 11, false},
    {"q3_k_m", P_Q3_K_M, PG_TYPE_Q3_K, 12, false},
    {"q3_k_l", P_Q3_K_L, PG_TYPE_Q3_K, 13, false},
    {"q4_k_s", P_Q4_K_S, PG_TYPE_Q4_K, 14, false},
    {"q4_k_m", P_Q4_K_M, PG_TYPE_Q4_K, 15, false},
    {"q5_k_s", P_Q5_K_S, PG_TYPE_Q5_K, 16, false},
    {"q5_k_m", P_Q5_K_M, PG_TYPE_Q5_K, 17, false},
    {"q6_k", P_Q6_K, PG_TYPE_Q6_K, 18, false},
    {"f32-pure", P_F32, PG_TYPE_F32, 0, true},
    {"f16-pure", P_F16, PG_TYPE_F16, 1, true},
    {"bf16-pure", P_BF16, PG_TYPE_BF16, 32, true},
    {"q8_0-pure", P_Q8_0, PG_TYPE_Q8_0, 7, true},
    {"q4_0-pure", P_Q4_0, PG_TYPE_Q4_0, 2, true},
    {"q4_1-pure", P_Q4_1, PG_TYPE_Q4_1, 3, true},
    {"q5_0-pure", P_Q5_0, PG_TYPE_Q5_0, 8, true},
    {"q5_1-pure", P_Q5_1, PG_TYPE_Q5_1, 9, true},
    {"q2_k-pure", P_Q2_K, PG_TYPE_Q2_K, 10, true},
    {"q3_k-pure", P_Q3_K_S, PG_TYPE_Q3_K, 11, true},
    {"q4_k-pure", P_Q4_K_S, PG_TYPE_Q4_K, 14, true},
    {"q5_k-pure", P_Q5_K_S, PG_TYPE_Q5_K, 16, true},
    {"q6_k-pure", P_Q6_K, PG_TYPE_Q6_K, 18, true},
};
#define N_PRESETS (sizeof presets / sizeof presets[0])

static const struct preset *preset_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < N_PRESETS; i++)
        if (!strcasecmp(name, presets[i].name))
            return &presets[i];
    return NULL;
}

static const char *const preset_names[] = {
    "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k_s", "q3_k_m",
    "q3_k_l", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k", "f32-pure", "f16-pure",
    "bf16-pure", "q8_0-pure", "q4_0-pure", "q4_1-pure", "q5_0-pure", "q5_1-pure", "q2_k-pure",
    "q3_k-pure", "q4_k-pure", "q5_k-pure", "q6_k-pure", NULL,
};
_Static_assert(sizeof preset_names / sizeof preset_names[0] == N_PRESETS + 1,
               "one name per preset");

const char *const *quant_preset_names(void)
{
    return preset_names;
}

bool quant_preset_valid(const char *name)
{
    return preset_find(name) != NULL;
}

int quant_preset_file_type(const char *name)
{
    const struct preset *p = preset_find(name);
    return p ? p->file_type : -1;
}

static bool ends_with(const char *s, const char *suffix)
{
    const size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && !strcmp(s + ls - lx, suffix);
}

/* The layer of a "blk.N." tensor, or -1. */
static int layer_of(const char *name)
{
    if (strncmp(name, "blk.", 4))
        return -1;
    char *end;
    long v = strtol(name + 4, &end, 10);
    if (end == name + 4 || *end != '.' || v < 0 || v > 1000000)
        return -1;
    return (int)v;
}

/* The layers that get more bits in the mixed K presets: the first and last
 * eighth, and every third layer in between. */
static bool use_more_bits(int layer, int n_layers)
{
    return layer < n_layers / 8 || layer >= 7 * n_layers / 8 ||
           (layer - n_layers / 8) % 3 == 2;
}

/* A type that holds rows of ne0 elements, close to t in size and quality. */
static int fit_row(int t, int64_t ne0)
{
    const struct type_traits *tt = type_traits_get(t);
    if (tt && ne0 % tt->block_size == 0)
        return t;
    int fb = PG_TYPE_F16;
    switch (t) {
    case PG_TYPE_Q2_K:
    case PG_TYPE_Q3_K: fb = PG_TYPE_Q4_0; break; /* 4.5 bits, blocks of 32 */
    case PG_TYPE_Q4_K: fb = PG_TYPE_Q5_0; break;
    case PG_TYPE_Q5_K: fb = PG_TYPE_Q5_1; break;
    case PG_TYPE_Q6_K: fb = PG_TYPE_Q8_0; break;
    default: break;
    }
    const struct type_traits *ft = type_traits_get(fb);
    if (ft && ne0 % ft->block_size == 0)
        return fb;
    return PG_TYPE_F16;
}

/* The mixed-preset rules for one matrix (before fitting the row length). */
static int mixed_type(const struct preset *p, const char *name, int64_t ne0,
                      const struct quant_recipe_model *m)
{
    const int n = m && m->n_layers > 0 ? m->n_layers : 1;
    const int gqa = m && m->n_gqa > 0 ? m->n_gqa : 1;
    const bool tied = m && m->tied_output;
    int layer = layer_of(name);
    if (layer < 0 || layer >= n)
        layer = 0;
    int t = p->base;

    if (!strcmp(name, "output.weight") || (tied && !strcmp(name, "token_embd.weight"))) {
        /* The output matrix decides every logit: Q6_K unless the preset is
         * Q8_0, or Q8_0 when rows do not split into super-blocks. */
        if (ne0 % QK_K != 0)
            return PG_TYPE_Q8_0;
        return t == PG_TYPE_Q8_0 ? PG_TYPE_Q8_0 : PG_TYPE_Q6_K;
    }
    if (!strcmp(name, "token_embd.weight"))
        return t;

    if (strstr(name, "attn_v.weight")) {
        switch (p->id) {
        case P_Q2_K: t = gqa >= 4 ? PG_TYPE_Q4_K : PG_TYPE_Q3_K; break;
        case P_Q3_K_M: t = layer < 2 ? PG_TYPE_Q5_K : PG_TYPE_Q4_K; break;
        case P_Q3_K_L: t = PG_TYPE_Q5_K; break;
        case P_Q4_K_M:
        case P_Q5_K_M:
            if (use_more_bits(layer, n))
                t = PG_TYPE_Q6_K;
            break;
        case P_Q4_K_S:
            if (layer < 4)
                t = PG_TYPE_Q5_K;
            break;
        default: break;
        }
    } else if (strstr(name, "ffn_down")) {
        switch (p->id) {
        case P_Q2_K: t = PG_TYPE_Q3_K; break;
        case P_Q3_K_M: t = layer < n / 16 ? PG_TYPE_Q5_K : PG_TYPE_Q4_K; break;
        case P_Q3_K_L: t = PG_TYPE_Q5_K; break;
        case P_Q4_K_M:
        case P_Q5_K_M:
            if (use_more_bits(layer, n))
                t = PG_TYPE_Q6_K;
            break;
        case P_Q4_K_S:
            if (layer < n / 8)
                t = PG_TYPE_Q5_K;
            break;
        default: break;
        }
    } else if (strstr(name, "attn_output.weight")) {
        switch (p->id) {
        case P_Q2_K: t = PG_TYPE_Q3_K; break;
        case P_Q3_K_M: t = PG_TYPE_Q4_K; break;
        case P_Q3_K_L: t = PG_TYPE_Q5_K; break;
        default: break;
        }
    } else if (strstr(name, "attn_qkv.weight")) {
        switch (p->id) {
        case P_Q3_K_M:
        case P_Q3_K_L: t = PG_TYPE_Q4_K; break;
        case P_Q4_K_M: t = PG_TYPE_Q5_K; break;
        case P_Q5_K_M: t = PG_TYPE_Q6_K; break;
        default: break;
        }
    }
    return t;
}

int quant_recipe_type(const char *preset, const char *name, int n_dims, int64_t ne0,
                      const struct quant_recipe_model *m)
{
    const struct preset *p = preset_find(preset);
    if (!p)
        return -1;
    if (!name || n_dims < 2 || !ends_with(name, "weight") || ne0 <= 0)
        return PG_TYPE_F32;
    const struct type_traits *bt = type_traits_get(p->base);
    /* Float presets and pure presets put every matrix in the base type; only
     * quantized mixed presets apply the per-tensor rules. */
    int t = p->base;
    if (!p->pure && bt && bt->quantized)
        t = mixed_type(p, name, ne0, m);
    return fit_row(t, ne0);
}

const char *quant_file_type_name(long long file_type)
{
    static const char *const names[] = {
        [0] = "F32",      [1] = "F16",      [2] = "Q4_0",     [3] = "Q4_1",
        [7] = "Q8_0",     [8] = "Q5_0",     [9] = "Q5_1",     [10] = "Q2_K",
        [11] = "Q3_K_S",  [12] = "Q3_K_M",  [13] = "Q3_K_L",  [14] = "Q4_K_S",
        [15] = "Q4_K_M",  [16] = "Q5_K_S",  [17] = "Q5_K_M",  [18] = "Q6_K",
        [19] = "IQ2_XXS", [20] = "IQ2_XS",  [21] = "Q2_K_S",  [22] = "IQ3_XS",
        [23] = "IQ3_XXS", [24] = "IQ1_S",   [25] = "IQ4_NL",  [26] = "IQ3_S",
        [27] = "IQ3_M",   [28] = "IQ2_S",   [29] = "IQ2_M",   [30] = "IQ4_XS",
        [31] = "IQ1_M",   [32] = "BF16",    [36] = "TQ1_0",   [37] = "TQ2_0",
    };
    file_type &= ~1024LL; /* the "guessed" flag */
    if (file_type < 0 || file_type >= (long long)(sizeof names / sizeof names[0]))
        return NULL;
    return names[file_type];
}
