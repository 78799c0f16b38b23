/* test_quant_recipe.c: the per-tensor type mixes of the quantization presets:
 * layer rules, fallbacks for short rows, the byte totals of widely shared
 * files of known shapes, and (with the reference data) the exact types of a
 * Q4_K_M file made by the usual quantizer. */
#include <stdint.h>
#include <string.h>

#include "gguf/gguf.h"
#include "model/quant_recipe.h"
#include "ops/types.h"
#include "test.h"

struct shape {
    int64_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab;
    int tied;
};

/* Bytes of all tensors of a llama model of this shape under a preset. */
static double model_bytes(const struct shape *s, const char *preset)
{
    const struct quant_recipe_model m = {(int)s->n_layer, (int)(s->n_head / s->n_head_kv),
                                         s->tied != 0};
    const int64_t kv = s->n_embd / s->n_head * s->n_head_kv;
    struct {
        const char *name;
        int64_t ne0, ne1;
    } per_layer[] = {
        {"attn_q.weight", s->n_embd, s->n_embd},   {"attn_k.weight", s->n_embd, kv},
        {"attn_v.weight", s->n_embd, kv},          {"attn_output.weight", s->n_embd, s->n_embd},
        {"ffn_gate.weight", s->n_embd, s->n_ff},   {"ffn_up.weight", s->n_embd, s->n_ff},
        {"ffn_down.weight", s->n_ff, s->n_embd},
    };
    double total = 0;
    char name[96];
    int t = quant_recipe_type(preset, "token_embd.weight", 2, s->n_embd, &m);
    total += (double)type_row_size(t, s->n_embd) * s->n_vocab;
    if (!s->tied) {
        t = quant_recipe_type(preset, "output.weight", 2, s->n_embd, &m);
        total += (double)type_row_size(t, s->n_embd) * s->n_vocab;
    }
    for (int l = 0; l < s->n_layer; l++) {
        for (size_t k = 0; k < sizeof per_layer / sizeof per_layer[0]; k++) {
            snprintf(name, sizeof name, "blk.%d.%s", l, per_layer[k].name);
            t = quant_recipe_type(preset, name, 2, per_layer[k].ne0, &m);
            total += (double)type_row_size(t, per_layer[k].ne0) * per_layer[k].ne1;
        }
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        t = quant_recipe_type(preset, name, 1, s->n_embd, &m);
        total += 2.0 * type_row_size(t, s->n_embd);
    }
    total += (double)type_row_size(PG_TYPE_F32, s->n_embd);
    return total;
}

static void test_known_sizes(void)
{
    /* Two benchmark shapes and the tensor bytes of their files as the common
     * quantizer writes them (MB = 1e6 bytes). */
    const struct shape b1 = {2048, 16, 32, 8, 8192, 32000, 1};
    const struct shape b05 = {896, 24, 14, 2, 4864, 32000, 1};
    const struct {
        const struct shape *s;
        const char *preset;
        double mb;
    } cases[] = {
        {&b1, "f16", 2077}, {&b1, "q8_0", 1104}, {&b1, "q4_k_m", 638}, {&b1, "q4_0", 601},
        {&b05, "f16", 773}, {&b05, "q8_0", 411}, {&b05, "q4_k_m", 278}, {&b05, "q4_0", 232},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const double mb = model_bytes(cases[i].s, cases[i].preset) / 1e6;
        CHECKF(fabs(mb - cases[i].mb) <= 1.0, "%s n_embd %lld: %.1f MB, expected %.0f",
               cases[i].preset, (long long)cases[i].s->n_embd, mb, cases[i].mb);
    }
}

static void test_rules(void)
{
    const struct quant_recipe_model m16 = {16, 4, false};
    char name[64];
    /* Q4_K_M: attn_v and ffn_down in Q6_K in layers 0, 1, 4, 7, 10, 13, 14, 15 of 16. */
    int more[16] = {0};
    for (int l = 0; l < 16; l++)
        more[l] = l < 2 || l >= 14 || (l - 2) % 3 == 2;
    for (int l = 0; l < 16; l++) {
        snprintf(name, sizeof name, "blk.%d.attn_v.weight", l);
        const int tv = quant_recipe_type("q4_k_m", name, 2, 2048, &m16);
        snprintf(name, sizeof name, "blk.%d.ffn_down.weight", l);
        const int td = quant_recipe_type("q4_k_m", name, 2, 8192, &m16);
        snprintf(name, sizeof name, "blk.%d.attn_q.weight", l);
        const int tq = quant_recipe_type("Q4_K_M", name, 2, 2048, &m16);
        CHECKF(tv == (more[l] ? PG_TYPE_Q6_K : PG_TYPE_Q4_K), "attn_v layer %d: %s", l,
               type_name(tv));
        CHECKF(td == (more[l] ? PG_TYPE_Q6_K : PG_TYPE_Q4_K), "ffn_down layer %d: %s", l,
               type_name(td));
        CHECK(tq == PG_TYPE_Q4_K);
    }
    CHECK(quant_recipe_type("q4_k_m", "output.weight", 2, 2048, &m16) == PG_TYPE_Q6_K);
    CHECK(quant_recipe_type("q4_k_m", "token_embd.weight", 2, 2048, &m16) == PG_TYPE_Q4_K);
    CHECK(quant_recipe_type("q4_k_m", "blk.0.attn_norm.weight", 1, 2048, &m16) == PG_TYPE_F32);
    CHECK(quant_recipe_type("q4_k_m", "output_norm.weight", 1, 2048, &m16) == PG_TYPE_F32);
    /* Tied: the embedding is the output matrix and gets its type. */
    const struct quant_recipe_model tied = {16, 4, true};
    CHECK(quant_recipe_type("q4_k_m", "token_embd.weight", 2, 2048, &tied) == PG_TYPE_Q6_K);
    CHECK(quant_recipe_type("q4_0", "token_embd.weight", 2, 2048, &tied) == PG_TYPE_Q6_K);
    CHECK(quant_recipe_type("q8_0", "token_embd.weight", 2, 2048, &tied) == PG_TYPE_Q8_0);
    CHECK(quant_recipe_type("q4_0", "output.weight", 2, 2048, &m16) == PG_TYPE_Q6_K);
    CHECK(quant_recipe_type("q4_0", "blk.3.ffn_down.weight", 2, 8192, &m16) == PG_TYPE_Q4_0);
    /* Rows that are not whole super-blocks fall back. */
    CHECK(quant_recipe_type("q4_k_m", "blk.3.attn_q.weight", 2, 896, &m16) == PG_TYPE_Q5_0);
    CHECK(quant_recipe_type("q4_k_m", "blk.0.attn_v.weight", 2, 896, &m16) == PG_TYPE_Q8_0);
    CHECK(quant_recipe_type("q5_k_m", "blk.3.attn_q.weight", 2, 896, &m16) == PG_TYPE_Q5_1);
    CHECK(quant_recipe_type("q3_k_m", "blk.3.ffn_up.weight", 2, 896, &m16) == PG_TYPE_Q4_0);
    CHECK(quant_recipe_type("q4_k_m", "output.weight", 2, 896, &m16) == PG_TYPE_Q8_0);
    CHECK(quant_recipe_type("q4_0", "blk.3.attn_q.weight", 2, 100, &m16) == PG_TYPE_F16);
    CHECK(quant_recipe_type("q4_k_m", "blk.3.attn_q.weight", 2, 100, &m16) == PG_TYPE_F16);
    /* Other mixes. */
    CHECK(quant_recipe_type("q2_k", "blk.5.attn_v.weight", 2, 2048, &m16) == PG_TYPE_Q4_K);
    const struct quant_recipe_model mha = {16, 1, false};
    CHECK(quant_recipe_type("q2_k", "blk.5.attn_v.weight", 2, 2048, &mha) == PG_TYPE_Q3_K);
    CHECK(quant_recipe_type("q2_k", "blk.5.ffn_down.weight", 2, 8192, &m16) == PG_TYPE_Q3_K);
    CHECK(quant_recipe_type("q2_k", "blk.5.ffn_up.weight", 2, 2048, &m16) == PG_TYPE_Q2_K);
    CHECK(quant_recipe_type("q3_k_m", "blk.1.attn_v.weight", 2, 2048, &m16) == PG_TYPE_Q5_K);
    CHECK(quant_recipe_type("q3_k_m", "blk.2.attn_v.weight", 2, 2048, &m16) == PG_TYPE_Q4_K);
    CHECK(quant_recipe_type("q3_k_m", "blk.0.ffn_down.weight", 2, 8192, &m16) == PG_TYPE_Q5_K);
    CHECK(quant_recipe_type("q3_k_m", "blk.9.ffn_down.weight", 2, 8192, &m16) == PG_TYPE_Q4_K);
    CHECK(quant_recipe_type("q3_k_m", "blk.9.attn_output.weight", 2, 2048, &m16) ==
          PG_TYPE_Q4_K);
    CHECK(quant_recipe_type("q4_k_s", "blk.3.attn_v.weight", 2, 2048, &m16) == PG_TYPE_Q5_K);
    CHECK(quant_recipe_type("q4_k_s", "blk.4.attn_v.weight", 2, 2048, &m16) == PG_TYPE_Q4_K);
    CHECK(quant_recipe_type("q4_k_s", "blk.1.ffn_down.weight", 2, 8192, &m16) == PG_TYPE_Q5_K);
    CHECK(quant_recipe_type("q4_k_s", "blk.2.ffn_down.weight", 2, 8192, &m16) == PG_TYPE_Q4_K);
    CHECK(quant_recipe_type("q5_k_m", "blk.0.attn_v.weight", 2, 2048, &m16) == PG_TYPE_Q6_K);
    CHECK(quant_recipe_type("q5_k_m", "blk.5.attn_v.weight", 2, 2048, &m16) == PG_TYPE_Q5_K);
    CHECK(quant_recipe_type("q6_k", "blk.5.attn_v.weight", 2, 2048, &m16) == PG_TYPE_Q6_K);
    /* Float and pure presets: every matrix in one type. */
    CHECK(quant_recipe_type("f16", "output.weight", 2, 2048, &m16) == PG_TYPE_F16);
    CHECK(quant_recipe_type("bf16", "token_embd.weight", 2, 2048, &tied) == PG_TYPE_BF16);
    CHECK(quant_recipe_type("f32", "blk.0.ffn_up.weight", 2, 2048, &m16) == PG_TYPE_F32);
    CHECK(quant_recipe_type("q4_k-pure", "output.weight", 2, 2048, &m16) == PG_TYPE_Q4_K);
    CHECK(quant_recipe_type("q4_k-pure", "blk.0.attn_v.weight", 2, 2048, &m16) == PG_TYPE_Q4_K);
    CHECK(quant_recipe_type("q4_0-pure", "token_embd.weight", 2, 2048, &tied) == PG_TYPE_Q4_0);
    CHECK(quant_recipe_type("q6_k-pure", "blk.0.attn_v.weight", 2, 896, &m16) == PG_TYPE_Q8_0);
    /* Names and file types. */
    CHECK(quant_recipe_type("q4_k_x", "output.weight", 2, 2048, &m16) == -1);
    CHECK(!quant_preset_valid("q7_0") && !quant_preset_valid(NULL) && quant_preset_valid("Q8_0"));
    CHECK(quant_preset_file_type("q4_k_m") == 15 && quant_preset_file_type("f16") == 1 &&
          quant_preset_file_type("q8_0") == 7 && quant_preset_file_type("bf16") == 32);
    int n = 0, all_valid = 1;
    for (const char *const *p = quant_preset_names(); *p; p++, n++)
        all_valid &= quant_preset_valid(*p) && quant_preset_file_type(*p) >= 0;
    CHECK(n >= 17 && all_valid);
}

/* The reference Q4_K_M file: every tensor has the type the recipe gives. */
static void test_reference_file(void)
{
    const char *dir = test_reference_dir();
    if (!dir)
        return;
    char path[8192];
    snprintf(path, sizeof path, "%s/models/tiny-llama-q4_k_m.gguf", dir);
    char err[256];
    struct gguf_file *g = NULL;
    CHECKF(gguf_open(path, &g, err, sizeof err) == 0, "%s", err);
    if (!g)
        return;
    int64_t n_layer = 0, n_head = 0, n_head_kv = 0;
    CHECK(gguf_get_int(g, "llama.block_count", &n_layer));
    CHECK(gguf_get_int(g, "llama.attention.head_count", &n_head));
    CHECK(gguf_get_int(g, "llama.attention.head_count_kv", &n_head_kv));
    const struct quant_recipe_model m = {(int)n_layer, n_head_kv ? (int)(n_head / n_head_kv) : 1,
                                         gguf_find_tensor(g, "output.weight") == NULL};
    int bad = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct gguf_tensor *t = &g->tensors[i];
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        const int want = quant_recipe_type("q4_k_m", name, t->n_dims, t->ne[0], &m);
        if (want != t->type) {
            fprintf(stderr, "%s: file has %s, recipe gives %s\n", name, type_name(t->type),
                    type_name(want));
            bad++;
        }
    }
    CHECK(bad == 0 && g->n_tensors > 0);
    gguf_close(g);
}

int main(void)
{
    test_known_sizes();
    test_rules();
    test_reference_file();
    TEST_END();
}
