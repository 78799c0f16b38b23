/* test_quantize.c: whole-file quantization. The error of every type on random
 * rows and on the real tensors of the reference model is no larger than the
 * reference quantizer's (whose files are in the reference data); the preset's
 * per-tensor types, metadata and file type are written; the result loads; and
 * the bytes do not depend on the thread count. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/pool.h"
#include "base/rng.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "model/quant_recipe.h"
#include "model/quantize.h"
#include "ops/quants.h"
#include "ops/types.h"
#include "test.h"

static char tmp_dir[512];

/* A file of the reference models folder (the folder is known to exist). */
static const char *ref_model(const char *name)
{
    static char buf[8320];
    snprintf(buf, sizeof buf, "%s/models/%s", test_reference_dir(), name);
    return buf;
}

static void tmp_path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", tmp_dir, name);
}

/* Sum of squared differences between x and its round trip through type. */
static double roundtrip_sse(int type, const float *x, int64_t rows, int64_t ne0)
{
    const size_t rs = type_row_size(type, ne0);
    uint8_t *q = malloc(rs * (size_t)rows);
    float *y = malloc(sizeof(float) * (size_t)ne0);
    double sse = 0;
    quantize_rows(type, x, q, rows, ne0);
    for (int64_t r = 0; r < rows; r++) {
        type_traits_get(type)->to_float(q + (size_t)r * rs, y, ne0);
        for (int64_t i = 0; i < ne0; i++) {
            const double d = (double)y[i] - x[r * ne0 + i];
            sse += d * d;
        }
    }
    free(q);
    free(y);
    return sse;
}

/* A tensor of a file dequantized to a new float array. */
static float *tensor_floats(const struct gguf_tensor *t)
{
    const int64_t ne0 = t->ne[0], rows = t->ne[1] * t->ne[2] * t->ne[3];
    float *f = malloc(sizeof(float) * (size_t)(ne0 * rows));
    const size_t rs = type_row_size(t->type, ne0);
    for (int64_t r = 0; r < rows; r++)
        type_traits_get(t->type)->to_float((const uint8_t *)t->data + (size_t)r * rs,
                                           f + r * ne0, ne0);
    return f;
}

static const int all_types[] = {PG_TYPE_F16,  PG_TYPE_BF16, PG_TYPE_Q8_0, PG_TYPE_Q4_0,
                                PG_TYPE_Q4_1, PG_TYPE_Q5_0, PG_TYPE_Q5_1, PG_TYPE_Q2_K,
                                PG_TYPE_Q3_K, PG_TYPE_Q4_K, PG_TYPE_Q5_K, PG_TYPE_Q6_K};
#define N_TYPES (int)(sizeof all_types / sizeof all_types[0])

/* Random rows (normal, with a few large outliers as real weights have) of
 * many lengths: the relative RMS error of each type stays within what its bit
 * width gives, and more bits never give more error. The bounds are those the
 * reference quantizer meets on the same kind of data. */
static void test_random_errors(void)
{
    /* Relative RMS error bounds for N(0,1) rows with outliers. */
    const struct {
        int type;
        double bound;
    } bounds[] = {
        {PG_TYPE_F16, 0.0004},  {PG_TYPE_BF16, 0.003}, {PG_TYPE_Q8_0, 0.009},
        {PG_TYPE_Q6_K, 0.035},  {PG_TYPE_Q5_1, 0.06},  {PG_TYPE_Q5_0, 0.07},
        {PG_TYPE_Q5_K, 0.06},   {PG_TYPE_Q4_1, 0.12},  {PG_TYPE_Q4_0, 0.14},
        {PG_TYPE_Q4_K, 0.12},   {PG_TYPE_Q3_K, 0.25},  {PG_TYPE_Q2_K, 0.45},
    };
    const int64_t lens[] = {256, 512, 768, 2304, 4096};
    struct rng g;
    rng_seed(&g, 1234);
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int64_t ne0 = lens[li], rows = 7;
        float *x = malloc(sizeof(float) * (size_t)(ne0 * rows));
        double ss = 0;
        for (int64_t i = 0; i < ne0 * rows; i++) {
            x[i] = rng_normal(&g) * (rng_uniform(&g) < 0.002f ? 8.0f : 1.0f);
            ss += (double)x[i] * x[i];
        }
        for (size_t k = 0; k < sizeof bounds / sizeof bounds[0]; k++) {
            const double rel = sqrt(roundtrip_sse(bounds[k].type, x, rows, ne0) / ss);
            CHECKF(rel < bounds[k].bound, "%s ne0 %lld: relative rms error %.5f >= %.5f",
                   type_name(bounds[k].type), (long long)ne0, rel, bounds[k].bound);
        }
        /* More bits, less error. */
        const int ladder[] = {PG_TYPE_Q2_K, PG_TYPE_Q3_K, PG_TYPE_Q4_K, PG_TYPE_Q5_K,
                              PG_TYPE_Q6_K, PG_TYPE_Q8_0, PG_TYPE_F16};
        double prev = INFINITY;
        for (size_t k = 0; k < sizeof ladder / sizeof ladder[0]; k++) {
            const double e = roundtrip_sse(ladder[k], x, rows, ne0);
            CHECKF(e < prev, "%s error %g not below the previous type's %g", type_name(ladder[k]),
                   e, prev);
            prev = e;
        }
        free(x);
    }
    /* The smooth test signal the reference quantizer's own tests use (0.1 + 2 cos(i + k)),
     * with their limits on sqrt(sum of squared errors) / n. */
    const int64_t n = 4096;
    float *x = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        x[i] = 0.1f + 2.0f * cosf((float)i + 0.0f);
    for (int k = 0; k < N_TYPES; k++) {
        const int t = all_types[k];
        const double lim = t == PG_TYPE_Q2_K ? 0.0075 : t == PG_TYPE_Q3_K ? 0.0040 : 0.002;
        const double e = sqrt(roundtrip_sse(t, x, 1, n)) / n;
        CHECKF(e < lim, "%s: error %.6f on the cosine signal >= %.4f", type_name(t), e, lim);
    }
    free(x);
}

/* The reference model's F32 tensors quantized here against the same tensors
 * quantized by the reference tool (the tiny-llama-<type> files): per tensor,
 * our squared error must not exceed theirs. */
static void test_real_errors(void)
{
    const char *f32 = ref_model("tiny-llama-f32.gguf");
    char err[512];
    struct gguf_file *gf = NULL;
    if (gguf_open(f32, &gf, err, sizeof err)) {
        CHECKF(0, "%s", err);
        return;
    }
    const char *names[] = {"f16",  "bf16",   "q8_0",   "q4_0",   "q4_1",   "q5_0", "q5_1",
                           "q2_k", "q3_k_s", "q4_k_s", "q5_k_s", "q6_k",   "q4_k_m"};
    for (size_t f = 0; f < sizeof names / sizeof names[0]; f++) {
        char rel[8320];
        snprintf(rel, sizeof rel, "%s/models/tiny-llama-%s.gguf", test_reference_dir(), names[f]);
        struct gguf_file *gr = NULL;
        if (gguf_open(rel, &gr, err, sizeof err)) {
            CHECKF(0, "%s", err);
            continue;
        }
        int compared = 0, identical = 0;
        for (uint64_t i = 0; i < gr->n_tensors; i++) {
            const struct gguf_tensor *tr = &gr->tensors[i];
            if (tr->n_dims != 2 || tr->type == PG_TYPE_F32)
                continue;
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)tr->name.len, tr->name.ptr);
            const struct gguf_tensor *t0 = gguf_find_tensor(gf, name);
            CHECKF(t0 && t0->type == PG_TYPE_F32, "%s: no F32 %s", rel, name);
            if (!t0)
                continue;
            const int64_t ne0 = t0->ne[0], rows = t0->ne[1];
            float *x = tensor_floats(t0);
            float *yr = tensor_floats(tr);
            double sse_ref = 0;
            for (int64_t k = 0; k < ne0 * rows; k++) {
                const double d = (double)yr[k] - x[k];
                sse_ref += d * d;
            }
            const double sse = roundtrip_sse(tr->type, x, rows, ne0);
            CHECKF(sse <= sse_ref * (1.0 + 1e-6) + 1e-12,
                   "%s %s (%s): squared error %.6g > reference %.6g", rel, name,
                   type_name(tr->type), sse, sse_ref);
            /* Byte-identical tensors are counted for the log. */
            const size_t nb = type_row_size(tr->type, ne0) * (size_t)rows;
            uint8_t *q = malloc(nb);
            quantize_rows(tr->type, x, q, rows, ne0);
            identical += nb == tr->nbytes && !memcmp(q, tr->data, nb);
            compared++;
            free(q);
            free(x);
            free(yr);
        }
        CHECKF(compared >= 14, "%s: only %d tensors compared", rel, compared);
        printf("tiny-llama-%-8s %2d tensors: error <= reference, %d byte-identical\n", names[f], compared, identical);
        gguf_close(gr);
    }
    gguf_close(gf);
}

static bool files_equal(const char *a, const char *b)
{
    size_t la = 0, lb = 0;
    char *x = test_read_file(a, &la), *y = test_read_file(b, &lb);
    const bool eq = x && y && la == lb && !memcmp(x, y, la);
    free(x);
    free(y);
    return eq;
}

/* quantize_file on the reference F32 model: the Q4_K_M types equal the
 * reference tool's file, every metadata key is kept, the file type is set,
 * the result loads, and 1 or 3 threads write the same bytes. */
static void test_reference_file(void)
{
    const char *src = ref_model("tiny-llama-f32.gguf");
    char in[8320];
    snprintf(in, sizeof in, "%s", src);
    char err[512];
    struct pool *pool = pool_create(3, err, sizeof err);
    CHECK(pool != NULL);
    const char *presets[] = {"q4_k_m", "q5_1", "q3_k_m", "q2_k", "bf16"};
    for (size_t k = 0; k < sizeof presets / sizeof presets[0]; k++) {
        char o1[600], o3[600];
        tmp_path(o1, sizeof o1, "one.gguf");
        tmp_path(o3, sizeof o3, "three.gguf");
        struct quantize_params p = {.preset = presets[k]};
        struct quantize_stats st1, st3;
        int rc = quantize_file(in, o1, &p, &st1, err, sizeof err);
        CHECKF(rc == 0, "%s: %s", presets[k], err);
        p.pool = pool;
        rc = quantize_file(in, o3, &p, &st3, err, sizeof err);
        CHECKF(rc == 0, "%s: %s", presets[k], err);
        CHECKF(files_equal(o1, o3), "%s: 1 and 3 threads wrote different bytes", presets[k]);
        CHECK(st1.n_tensors == st3.n_tensors && st1.out_bytes == st3.out_bytes);
        CHECK(st1.out_bytes < st1.in_bytes);

        struct gguf_file *gi = NULL, *go = NULL;
        CHECK(gguf_open(in, &gi, err, sizeof err) == 0);
        CHECKF(gguf_open(o1, &go, err, sizeof err) == 0, "%s", err);
        if (!gi || !go) {
            gguf_close(gi);
            gguf_close(go);
            continue;
        }
        int64_t ft = -1;
        CHECK(gguf_get_int(go, "general.file_type", &ft) &&
              ft == quant_preset_file_type(presets[k]));
        CHECK(go->n_tensors == gi->n_tensors);
        /* Every input key is in the output with the same type. */
        for (uint64_t i = 0; i < gi->n_kv; i++) {
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)gi->kv[i].key.len, gi->kv[i].key.ptr);
            const struct gguf_kv *kv = gguf_find_kv(go, key);
            CHECKF(kv && kv->value.type == gi->kv[i].value.type, "%s: key %s lost", presets[k],
                   key);
        }
        const struct gguf_value *toks_in = gguf_get_arr(gi, "tokenizer.ggml.tokens");
        const struct gguf_value *toks_out = gguf_get_arr(go, "tokenizer.ggml.tokens");
        CHECK(toks_in && toks_out && toks_in->v.arr.n == toks_out->v.arr.n);
        if (!strcmp(presets[k], "q4_k_m")) {
            struct gguf_file *gr = NULL;
            CHECK(gguf_open(ref_model("tiny-llama-q4_k_m.gguf"), &gr, err,
                            sizeof err) == 0);
            for (uint64_t i = 0; gr && i < gr->n_tensors; i++) {
                char name[128];
                snprintf(name, sizeof name, "%.*s", (int)gr->tensors[i].name.len,
                         gr->tensors[i].name.ptr);
                const struct gguf_tensor *t = gguf_find_tensor(go, name);
                CHECKF(t && t->type == gr->tensors[i].type, "q4_k_m %s: type %s, reference %s",
                       name, t ? type_name(t->type) : "missing", type_name(gr->tensors[i].type));
            }
            gguf_close(gr);
        }
        gguf_close(gi);
        gguf_close(go);
        struct model *m = NULL;
        rc = model_load(o1, &m, err, sizeof err);
        CHECKF(rc == 0, "%s output does not load: %s", presets[k], err);
        model_free(m);
        unlink(o1);
        unlink(o3);
    }
    pool_destroy(pool);
}

/* Writes a small llama model with random F32 weights whose rows (96, 160)
 * are not multiples of 256, so the K presets must fall back; bias and
 * 1-D tensors in F16 too. */
static int write_random_model(const char *path, uint64_t seed)
{
    const int E = 96, L = 3, H = 3, HKV = 1, F = 160, V = 67, hd = E / H;
    struct gguf_writer *w = gguf_writer_create();
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "general.name", "random");
    gguf_writer_set_u32(w, "general.file_type", 0);
    gguf_writer_set_u32(w, "llama.context_length", 128);
    gguf_writer_set_u32(w, "llama.embedding_length", E);
    gguf_writer_set_u32(w, "llama.block_count", L);
    gguf_writer_set_u32(w, "llama.feed_forward_length", F);
    gguf_writer_set_u32(w, "llama.attention.head_count", H);
    gguf_writer_set_u32(w, "llama.attention.head_count_kv", HKV);
    gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    struct {
        char name[64];
        int64_t ne0, ne1;
        int f16;
    } t[64];
    int n = 0;
#define T(e0, e1, h, ...)                                                                    \
    do {                                                                                     \
        snprintf(t[n].name, sizeof t[n].name, __VA_ARGS__);                                  \
        t[n].ne0 = (e0);                                                                     \
        t[n].ne1 = (e1);                                                                     \
        t[n].f16 = (h);                                                                      \
        n++;                                                                                 \
    } while (0)
    T(E, V, 0, "token_embd.weight");
    for (int l = 0; l < L; l++) {
        T(E, 1, 1, "blk.%d.attn_norm.weight", l);
        T(E, E, l == 1, "blk.%d.attn_q.weight", l);
        T(E, HKV * hd, 0, "blk.%d.attn_k.weight", l);
        T(E, HKV * hd, 0, "blk.%d.attn_v.weight", l);
        T(E, E, 0, "blk.%d.attn_output.weight", l);
        T(E, 1, 0, "blk.%d.ffn_norm.weight", l);
        T(E, F, 0, "blk.%d.ffn_gate.weight", l);
        T(E, F, 0, "blk.%d.ffn_up.weight", l);
        T(F, E, 0, "blk.%d.ffn_down.weight", l);
    }
    T(E, 1, 0, "output_norm.weight");
    T(E, V, 0, "output.weight");
#undef T
    struct rng g;
    rng_seed(&g, seed);
    void *bufs[64];
    int rc = 0;
    char err[256];
    for (int i = 0; i < n; i++) {
        const int64_t cnt = t[i].ne0 * t[i].ne1;
        float *x = malloc(sizeof(float) * (size_t)cnt);
        for (int64_t k = 0; k < cnt; k++)
            x[k] = t[i].ne1 == 1 ? 1.0f + 0.1f * rng_normal(&g) : 0.05f * rng_normal(&g);
        const int type = t[i].f16 ? PG_TYPE_F16 : PG_TYPE_F32;
        const size_t nb = type_row_size(type, t[i].ne0) * (size_t)t[i].ne1;
        bufs[i] = malloc(nb);
        quantize_rows(type, x, bufs[i], t[i].ne1, t[i].ne0);
        free(x);
        const int64_t ne[2] = {t[i].ne0, t[i].ne1};
        rc |= gguf_writer_add_tensor(w, t[i].name, type, t[i].ne1 == 1 ? 1 : 2, ne, bufs[i], nb,
                                     err, sizeof err);
    }
    rc |= gguf_writer_write(w, path, err, sizeof err);
    for (int i = 0; i < n; i++)
        free(bufs[i]);
    gguf_writer_free(w);
    return rc;
}

/* Every preset the command offers on a model with short rows: types follow
 * the recipe, each tensor's error is what its type gives, the result loads;
 * a requantized input is counted; bad inputs give errors. */
static void test_random_model(void)
{
    char in[600], out[600], out2[600];
    tmp_path(in, sizeof in, "random.gguf");
    tmp_path(out, sizeof out, "random-q.gguf");
    tmp_path(out2, sizeof out2, "random-qq.gguf");
    CHECK(write_random_model(in, 77) == 0);
    const char *presets[] = {"q8_0",   "q4_0",   "q4_1",   "q5_0",   "q5_1", "q2_k", "q3_k_m",
                             "q4_k_s", "q4_k_m", "q5_k_m", "q6_k",   "bf16", "f16"};
    char err[512];
    struct gguf_file *gi = NULL;
    CHECK(gguf_open(in, &gi, err, sizeof err) == 0);
    if (!gi)
        return;
    const struct quant_recipe_model qm = {3, 3, false};
    for (size_t k = 0; k < sizeof presets / sizeof presets[0]; k++) {
        struct quantize_params p = {.preset = presets[k]};
        struct quantize_stats st;
        int rc = quantize_file(in, out, &p, &st, err, sizeof err);
        CHECKF(rc == 0, "%s: %s", presets[k], err);
        CHECK(st.n_requantized == 0);
        struct gguf_file *go = NULL;
        CHECKF(gguf_open(out, &go, err, sizeof err) == 0, "%s", err);
        if (!go)
            continue;
        for (uint64_t i = 0; i < gi->n_tensors; i++) {
            const struct gguf_tensor *a = &gi->tensors[i];
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)a->name.len, a->name.ptr);
            const struct gguf_tensor *b = gguf_find_tensor(go, name);
            CHECKF(b != NULL, "%s: %s missing", presets[k], name);
            if (!b)
                continue;
            const int want = quant_recipe_type(presets[k], name, a->n_dims, a->ne[0], &qm);
            CHECKF(b->type == want, "%s %s: type %s, recipe %s", presets[k], name,
                   type_name(b->type), type_name(want));
            CHECK(b->ne[0] == a->ne[0] && b->ne[1] == a->ne[1] && b->n_dims == a->n_dims);
            float *x = tensor_floats(a), *y = tensor_floats(b);
            const int64_t cnt = a->ne[0] * a->ne[1];
            double sse = 0, ss = 0;
            for (int64_t e = 0; e < cnt; e++) {
                sse += ((double)y[e] - x[e]) * ((double)y[e] - x[e]);
                ss += (double)x[e] * x[e];
            }
            /* Exactly the type's own round trip of the input values. */
            double direct = b->type == a->type ? 0 : roundtrip_sse(b->type, x, a->ne[1], a->ne[0]);
            CHECKF(fabs(sse - direct) <= 1e-9 * ss, "%s %s: error %g, direct round trip %g",
                   presets[k], name, sse, direct);
            CHECKF(sqrt(sse / ss) < 0.5, "%s %s: relative error %g", presets[k], name,
                   sqrt(sse / ss));
            free(x);
            free(y);
        }
        gguf_close(go);
        struct model *m = NULL;
        rc = model_load(out, &m, err, sizeof err);
        CHECKF(rc == 0, "%s: %s", presets[k], err);
        model_free(m);
    }
    /* Requantizing a quantized file works and says so. */
    struct quantize_params p = {.preset = "q4_0"};
    struct quantize_stats st;
    CHECK(quantize_file(in, out, &p, &st, err, sizeof err) == 0);
    p.preset = "Q8_0";
    CHECK(quantize_file(out, out2, &p, &st, err, sizeof err) == 0);
    CHECK(st.n_requantized > 10);
    /* Errors. */
    p.preset = "q4_k_x";
    CHECK(quantize_file(in, out, &p, NULL, err, sizeof err) == PAGODA_EINVAL);
    CHECK(strstr(err, "q4_k_x") != NULL);
    p.preset = "q4_0";
    char missing[600];
    tmp_path(missing, sizeof missing, "missing.gguf");
    CHECK(quantize_file(missing, out, &p, NULL, err, sizeof err) < 0);
    CHECK(strstr(err, "missing.gguf") != NULL);
    gguf_close(gi);
    unlink(in);
    unlink(out);
    unlink(out2);
}

int main(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/pagoda-quantize-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmp_dir)) {
        fprintf(stderr, "cannot create a temporary folder\n");
        return 1;
    }
    test_random_errors();
    test_random_model();
    const bool have_ref = test_reference_dir() != NULL;
    if (have_ref) {
        test_real_errors();
        test_reference_file();
    }
    rmdir(tmp_dir);
    TEST_END();
}
