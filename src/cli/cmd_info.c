/*
 * cmd_info.c: `pagoda info FILE.gguf`: what a GGUF file holds and what it
 * needs to run. Prints the header, the architecture's hyper-parameters, the
 * tokenizer, the tensor table and totals (bytes by type, parameter count,
 * weights plus KV cache per 1k tokens of context); `--kv` adds every metadata
 * entry (arrays summarized), `--json` prints the same as one JSON object.
 * Keys a file lacks print as "-" (null in JSON): vocabulary-only files work.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "gguf/gguf.h"
#include "model/quant_recipe.h"
#include "ops/types.h"

#define INFO_ARRAY_ITEMS 6 /* array items shown in a summary */
#define INFO_STR_MAX 96    /* bytes of a string shown in text output */

static const char info_usage[] = "usage: pagoda info [--kv] [--json] FILE.gguf";

/* ---- small string builder (truncates, never fails) ---- */

struct sb {
    char buf[1024];
    size_t n;
};

static void sb_add(struct sb *s, const char *p, size_t n)
{
    if (s->n >= sizeof s->buf - 1)
        return;
    if (n > sizeof s->buf - 1 - s->n)
        n = sizeof s->buf - 1 - s->n;
    memcpy(s->buf + s->n, p, n);
    s->n += n;
    s->buf[s->n] = '\0';
}

static void sb_printf(struct sb *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sb *s, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_add(s, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A string from the file, quoted, control bytes escaped, cut at max bytes. */
static void sb_quoted(struct sb *s, struct gguf_str str, size_t max)
{
    sb_add(s, "\"", 1);
    size_t n = str.len < max ? (size_t)str.len : max;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)str.ptr[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_add(s, e, 2);
        } else if (c < 32 || c == 127) {
            if (c == '\n')
                sb_add(s, "\\n", 2);
            else if (c == '\t')
                sb_add(s, "\\t", 2);
            else
                sb_printf(s, "\\x%02x", c);
        } else {
            sb_add(s, (const char *)&c, 1);
        }
    }
    sb_add(s, "\"", 1);
    if (str.len > n)
        sb_add(s, "...", 3);
}

/* One fixed-size element of a packed little-endian array. */
static struct gguf_value array_elem(const struct gguf_value *a, uint64_t i)
{
    struct gguf_value v;
    memset(&v, 0, sizeof v);
    v.type = a->v.arr.type;
    size_t esz = gguf_vtype_size(a->v.arr.type);
    const unsigned char *p = (const unsigned char *)a->v.arr.data + i * esz;
    uint64_t raw = 0;
    for (size_t b = 0; b < esz; b++)
        raw |= (uint64_t)p[b] << (8 * b);
    switch (v.type) {
    case GGUF_TYPE_UINT8: v.v.u8 = (uint8_t)raw; break;
    case GGUF_TYPE_INT8: v.v.i8 = (int8_t)(uint8_t)raw; break;
    case GGUF_TYPE_UINT16: v.v.u16 = (uint16_t)raw; break;
    case GGUF_TYPE_INT16: v.v.i16 = (int16_t)(uint16_t)raw; break;
    case GGUF_TYPE_UINT32: v.v.u32 = (uint32_t)raw; break;
    case GGUF_TYPE_INT32: v.v.i32 = (int32_t)(uint32_t)raw; break;
    case GGUF_TYPE_BOOL: v.v.b = raw != 0; break;
    case GGUF_TYPE_UINT64: v.v.u64 = raw; break;
    case GGUF_TYPE_INT64: v.v.i64 = (int64_t)raw; break;
    case GGUF_TYPE_FLOAT32: {
        uint32_t u = (uint32_t)raw;
        memcpy(&v.v.f32, &u, 4);
        break;
    }
    case GGUF_TYPE_FLOAT64: memcpy(&v.v.f64, &raw, 8); break;
    default: break;
    }
    return v;
}

static const struct gguf_value *array_item(const struct gguf_value *a, uint64_t i,
                                           struct gguf_value *tmp)
{
    if (gguf_vtype_size(a->v.arr.type)) {
        *tmp = array_elem(a, i);
        return tmp;
    }
    return &a->v.arr.items[i];
}

/* The element type of an array, nested ones included: "arr[arr[str]]". */
static void sb_array_type(struct sb *s, const struct gguf_value *v)
{
    sb_printf(s, "arr[");
    if (v->v.arr.type == GGUF_TYPE_ARRAY && v->v.arr.n > 0)
        sb_array_type(s, &v->v.arr.items[0]);
    else
        sb_printf(s, "%s", gguf_vtype_name(v->v.arr.type));
    sb_printf(s, "]");
}

/* The shortest decimal form that reads back as the same float. */
static void fmt_f32(char *buf, size_t cap, float f)
{
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, cap, "%.*g", digits, (double)f);
        if (strtof(buf, NULL) == f)
            return;
    }
}

static void sb_value(struct sb *s, const struct gguf_value *v, int depth)
{
    if (s->n >= sizeof s->buf - 1)
        return; /* full: a deeply nested array would otherwise cost 6^depth calls */
    switch (v->type) {
    case GGUF_TYPE_UINT8: sb_printf(s, "%u", v->v.u8); break;
    case GGUF_TYPE_INT8: sb_printf(s, "%d", v->v.i8); break;
    case GGUF_TYPE_UINT16: sb_printf(s, "%u", v->v.u16); break;
    case GGUF_TYPE_INT16: sb_printf(s, "%d", v->v.i16); break;
    case GGUF_TYPE_UINT32: sb_printf(s, "%" PRIu32, v->v.u32); break;
    case GGUF_TYPE_INT32: sb_printf(s, "%" PRId32, v->v.i32); break;
    case GGUF_TYPE_UINT64: sb_printf(s, "%" PRIu64, v->v.u64); break;
    case GGUF_TYPE_INT64: sb_printf(s, "%" PRId64, v->v.i64); break;
    case GGUF_TYPE_FLOAT32: {
        char fb[32];
        fmt_f32(fb, sizeof fb, v->v.f32);
        sb_printf(s, "%s", fb);
        break;
    }
    case GGUF_TYPE_FLOAT64: sb_printf(s, "%.17g", v->v.f64); break;
    case GGUF_TYPE_BOOL: sb_printf(s, "%s", v->v.b ? "true" : "false"); break;
    case GGUF_TYPE_STRING: sb_quoted(s, v->v.str, INFO_STR_MAX); break;
    case GGUF_TYPE_ARRAY: {
        uint64_t n = v->v.arr.n;
        if (depth == 0) {
            sb_array_type(s, v);
            sb_printf(s, " %" PRIu64 ": ", n);
        }
        sb_printf(s, "[");
        uint64_t show = n < INFO_ARRAY_ITEMS ? n : INFO_ARRAY_ITEMS;
        for (uint64_t i = 0; i < show; i++) {
            struct gguf_value tmp;
            if (i)
                sb_printf(s, ", ");
            sb_value(s, array_item(v, i, &tmp), depth + 1);
        }
        if (n > show)
            sb_printf(s, ", ...");
        sb_printf(s, "]");
        break;
    }
    default: sb_printf(s, "?"); break;
    }
}

/* ---- JSON ---- */

/* Writes a JSON string: valid UTF-8 passes through, invalid bytes become U+FFFD. */
static void json_str(FILE *f, const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    fputc('"', f);
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            fprintf(f, "\\%c", c);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
            i++;
        } else if (c < 0x80) {
            fputc(c, f);
            i++;
        } else {
            size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
            bool ok = len && c <= 0xf4 && i + len <= n && !(c == 0xc0 || c == 0xc1);
            for (size_t k = 1; ok && k < len; k++)
                ok = (s[i + k] & 0xc0) == 0x80;
            if (ok && len == 3) {
                unsigned cp = ((c & 0xfu) << 12) | ((s[i + 1] & 0x3fu) << 6);
                ok = cp >= 0x800 && !(cp >= 0xd800 && cp <= 0xdfff);
            }
            if (ok && len == 4) {
                unsigned cp = ((c & 0x7u) << 18) | ((s[i + 1] & 0x3fu) << 12);
                ok = cp >= 0x10000 && cp <= 0x10ffff;
            }
            if (ok) {
                fwrite(s + i, 1, len, f);
                i += len;
            } else {
                fputs("\xef\xbf\xbd", f);
                i++;
            }
        }
    }
    fputc('"', f);
}

static void json_gstr(FILE *f, struct gguf_str s)
{
    json_str(f, s.ptr, (size_t)s.len);
}

static void json_cstr(FILE *f, const char *s)
{
    json_str(f, s, strlen(s));
}

static void json_double(FILE *f, double d, int digits)
{
    if (isfinite(d))
        fprintf(f, "%.*g", digits, d);
    else
        fputs("null", f);
}

static void json_value(FILE *f, const struct gguf_value *v, int depth)
{
    switch (v->type) {
    case GGUF_TYPE_UINT8: fprintf(f, "%u", v->v.u8); break;
    case GGUF_TYPE_INT8: fprintf(f, "%d", v->v.i8); break;
    case GGUF_TYPE_UINT16: fprintf(f, "%u", v->v.u16); break;
    case GGUF_TYPE_INT16: fprintf(f, "%d", v->v.i16); break;
    case GGUF_TYPE_UINT32: fprintf(f, "%" PRIu32, v->v.u32); break;
    case GGUF_TYPE_INT32: fprintf(f, "%" PRId32, v->v.i32); break;
    case GGUF_TYPE_UINT64: fprintf(f, "%" PRIu64, v->v.u64); break;
    case GGUF_TYPE_INT64: fprintf(f, "%" PRId64, v->v.i64); break;
    case GGUF_TYPE_FLOAT32:
        if (isfinite(v->v.f32)) {
            char fb[32];
            fmt_f32(fb, sizeof fb, v->v.f32);
            fputs(fb, f);
        } else {
            fputs("null", f);
        }
        break;
    case GGUF_TYPE_FLOAT64: json_double(f, v->v.f64, 17); break;
    case GGUF_TYPE_BOOL: fputs(v->v.b ? "true" : "false", f); break;
    case GGUF_TYPE_STRING: json_gstr(f, v->v.str); break;
    case GGUF_TYPE_ARRAY: {
        uint64_t n = v->v.arr.n;
        uint64_t show = n < INFO_ARRAY_ITEMS ? n : INFO_ARRAY_ITEMS;
        if (depth >= 3)
            show = 0; /* keep nested summaries small */
        fprintf(f, "{\"element_type\": \"%s\", \"length\": %" PRIu64 ", \"first\": [",
                gguf_vtype_name(v->v.arr.type), n);
        for (uint64_t i = 0; i < show; i++) {
            struct gguf_value tmp;
            if (i)
                fputs(", ", f);
            json_value(f, array_item(v, i, &tmp), depth + 1);
        }
        fputs("]}", f);
        break;
    }
    default: fputs("null", f); break;
    }
}

/* ---- what the file says ---- */

enum hp_kind { HP_INT, HP_FLOAT };

struct hparam {
    const char *suffix; /* after "<arch>." */
    const char *label;
    enum hp_kind kind;
};

static const struct hparam hparams[] = {
    {"context_length", "context length", HP_INT},
    {"embedding_length", "embedding length", HP_INT},
    {"block_count", "layers", HP_INT},
    {"feed_forward_length", "feed forward length", HP_INT},
    {"attention.head_count", "heads", HP_INT},
    {"attention.head_count_kv", "kv heads", HP_INT},
    {"attention.key_length", "key length", HP_INT},
    {"attention.value_length", "value length", HP_INT},
    {"rope.freq_base", "rope freq base", HP_FLOAT},
    {"rope.dimension_count", "rope dimensions", HP_INT},
    {"attention.layer_norm_rms_epsilon", "rms norm epsilon", HP_FLOAT},
    {"vocab_size", "vocab size", HP_INT},
};
#define N_HPARAMS (sizeof hparams / sizeof hparams[0])

struct info {
    const struct gguf_file *g;
    char arch[64]; /* "" when absent */
    int64_t n_layer, n_embd, n_head, n_head_kv_total, head_k, head_v, n_vocab;
    bool have_kv_cache;
    uint64_t kv_bytes_1k;
    uint64_t weight_bytes;
    uint64_t n_params;
    uint64_t type_bytes[PG_TYPE_COUNT];
    uint64_t type_count[PG_TYPE_COUNT];
};

static const struct gguf_kv *arch_kv(const struct info *in, const char *suffix)
{
    if (!in->arch[0])
        return NULL;
    char key[192];
    snprintf(key, sizeof key, "%s.%s", in->arch, suffix);
    return gguf_find_kv(in->g, key);
}

static bool arch_int(const struct info *in, const char *suffix, int64_t *out)
{
    if (!in->arch[0])
        return false;
    char key[192];
    snprintf(key, sizeof key, "%s.%s", in->arch, suffix);
    return gguf_get_int(in->g, key, out);
}

/* Sum over layers of an integer that is either one value or one per layer. */
static bool per_layer_sum(const struct info *in, const char *suffix, int64_t *sum)
{
    int64_t v;
    if (arch_int(in, suffix, &v)) {
        if (v < 0 || v > (1 << 30))
            return false;
        *sum = v * in->n_layer;
        return true;
    }
    const struct gguf_kv *kv = arch_kv(in, suffix);
    if (!kv || kv->value.type != GGUF_TYPE_ARRAY || kv->value.v.arr.n != (uint64_t)in->n_layer ||
        !gguf_vtype_size(kv->value.v.arr.type) || kv->value.v.arr.type == GGUF_TYPE_FLOAT32 ||
        kv->value.v.arr.type == GGUF_TYPE_FLOAT64)
        return false;
    int64_t s = 0;
    for (uint64_t i = 0; i < kv->value.v.arr.n; i++) {
        struct gguf_value e = array_elem(&kv->value, i);
        int64_t x;
        switch (e.type) {
        case GGUF_TYPE_UINT8: x = e.v.u8; break;
        case GGUF_TYPE_INT8: x = e.v.i8; break;
        case GGUF_TYPE_UINT16: x = e.v.u16; break;
        case GGUF_TYPE_INT16: x = e.v.i16; break;
        case GGUF_TYPE_UINT32: x = e.v.u32; break;
        case GGUF_TYPE_INT32: x = e.v.i32; break;
        case GGUF_TYPE_INT64: x = e.v.i64; break;
        case GGUF_TYPE_UINT64: x = e.v.u64 > (1u << 30) ? -1 : (int64_t)e.v.u64; break;
        default: x = -1; break;
        }
        if (x < 0 || x > (1 << 30))
            return false;
        s += x;
    }
    *sum = s;
    return true;
}

static void info_compute(struct info *in)
{
    const struct gguf_file *g = in->g;
    struct gguf_str arch;
    if (gguf_get_str(g, "general.architecture", &arch) && arch.len > 0 &&
        arch.len < sizeof in->arch && !memchr(arch.ptr, '\0', (size_t)arch.len)) {
        memcpy(in->arch, arch.ptr, (size_t)arch.len);
        in->arch[arch.len] = '\0';
    }
    in->n_layer = in->n_embd = in->n_head = in->n_head_kv_total = -1;
    in->head_k = in->head_v = in->n_vocab = -1;
    arch_int(in, "block_count", &in->n_layer);
    arch_int(in, "embedding_length", &in->n_embd);
    arch_int(in, "attention.head_count", &in->n_head);
    if (!arch_int(in, "vocab_size", &in->n_vocab)) {
        const struct gguf_value *tok = gguf_get_arr(g, "tokenizer.ggml.tokens");
        if (tok)
            in->n_vocab = (int64_t)tok->v.arr.n;
    }
    /* Head sizes: key_length / value_length when given, else n_embd / n_head. */
    int64_t hd = in->n_embd > 0 && in->n_head > 0 ? in->n_embd / in->n_head : -1;
    if (!arch_int(in, "attention.key_length", &in->head_k))
        in->head_k = hd;
    if (!arch_int(in, "attention.value_length", &in->head_v))
        in->head_v = in->head_k == hd ? hd : in->head_k;
    if (in->n_layer > 0 && in->n_layer < (1 << 20)) {
        if (!per_layer_sum(in, "attention.head_count_kv", &in->n_head_kv_total))
            if (!per_layer_sum(in, "attention.head_count", &in->n_head_kv_total))
                in->n_head_kv_total = -1;
    }
    if (in->n_head_kv_total >= 0 && in->head_k > 0 && in->head_v > 0 &&
        in->head_k < (1 << 20) && in->head_v < (1 << 20) && in->n_head_kv_total < (1ll << 30)) {
        /* K and V rows in F16 for 1024 tokens. */
        in->kv_bytes_1k = (uint64_t)in->n_head_kv_total *
                          (uint64_t)(in->head_k + in->head_v) * 2u * 1024u;
        in->have_kv_cache = true;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct gguf_tensor *t = &g->tensors[i];
        in->weight_bytes += t->nbytes;
        uint64_t nel = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++)
            nel *= (uint64_t)t->ne[d];
        in->n_params += nel;
        if (t->type >= 0 && t->type < PG_TYPE_COUNT) {
            in->type_bytes[t->type] += t->nbytes;
            in->type_count[t->type]++;
        }
    }
}

static const char *human_bytes(uint64_t b, char *buf, size_t cap)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, cap, "%" PRIu64 " B", b);
    else
        snprintf(buf, cap, "%.2f %s", v, units[u]);
    return buf;
}

static const char *human_count(uint64_t n, char *buf, size_t cap)
{
    if (n >= 1000000000ull)
        snprintf(buf, cap, "%.2fB", (double)n / 1e9);
    else if (n >= 1000000ull)
        snprintf(buf, cap, "%.2fM", (double)n / 1e6);
    else if (n >= 1000ull)
        snprintf(buf, cap, "%.1fK", (double)n / 1e3);
    else
        snprintf(buf, cap, "%" PRIu64, n);
    return buf;
}

/* A metadata value for the summary: its text, or "-" when absent. */
static void text_kv(const char *label, const struct gguf_kv *kv)
{
    struct sb s = {.n = 0};
    s.buf[0] = '\0';
    if (kv)
        sb_value(&s, &kv->value, 0);
    printf("  %-22s %s\n", label, kv ? s.buf : "-");
}

static void print_shape(FILE *f, const struct gguf_tensor *t)
{
    fputc('[', f);
    for (int d = 0; d < t->n_dims; d++)
        fprintf(f, "%s%" PRId64, d ? ", " : "", t->ne[d]);
    fputc(']', f);
}

static void print_text(const struct info *in, const char *path, bool all_kv)
{
    const struct gguf_file *g = in->g;
    char hb[64], hc[64];
    printf("file                     %s\n", path);
    printf("  %-22s %u\n", "gguf version", g->version);
    printf("  %-22s %zu (%s)\n", "file size", g->size, human_bytes(g->size, hb, sizeof hb));
    printf("  %-22s %zu\n", "alignment", g->alignment);
    printf("  %-22s %" PRIu64 "\n", "metadata entries", g->n_kv);
    printf("  %-22s %" PRIu64 "\n", "tensors", g->n_tensors);
    printf("  %-22s %zu\n", "tensor data at byte", g->data_offset);

    printf("model\n");
    text_kv("name", gguf_find_kv(g, "general.name"));
    text_kv("architecture", gguf_find_kv(g, "general.architecture"));
    int64_t ft;
    const char *ftn = gguf_get_int(g, "general.file_type", &ft) ? quant_file_type_name(ft) : NULL;
    if (ftn)
        printf("  %-22s %" PRId64 " (%s)\n", "file type", ft, ftn);
    else
        text_kv("file type", gguf_find_kv(g, "general.file_type"));
    for (size_t i = 0; i < N_HPARAMS; i++)
        text_kv(hparams[i].label, arch_kv(in, hparams[i].suffix));
    if (in->head_k > 0)
        printf("  %-22s %" PRId64 "\n", "head dimension", in->head_k);
    else
        printf("  %-22s -\n", "head dimension");

    printf("tokenizer\n");
    text_kv("model", gguf_find_kv(g, "tokenizer.ggml.model"));
    text_kv("pre-tokenizer", gguf_find_kv(g, "tokenizer.ggml.pre"));
    if (in->n_vocab >= 0)
        printf("  %-22s %" PRId64 "\n", "tokens", in->n_vocab);
    else
        printf("  %-22s -\n", "tokens");
    const struct gguf_value *merges = gguf_get_arr(g, "tokenizer.ggml.merges");
    if (merges)
        printf("  %-22s %" PRIu64 "\n", "merges", merges->v.arr.n);
    else
        printf("  %-22s -\n", "merges");
    text_kv("bos id", gguf_find_kv(g, "tokenizer.ggml.bos_token_id"));
    text_kv("eos id", gguf_find_kv(g, "tokenizer.ggml.eos_token_id"));
    text_kv("add bos", gguf_find_kv(g, "tokenizer.ggml.add_bos_token"));
    const struct gguf_kv *tmpl = gguf_find_kv(g, "tokenizer.chat_template");
    printf("  %-22s %s\n", "chat template", tmpl ? "yes" : "-");

    if (all_kv) {
        printf("metadata\n");
        for (uint64_t i = 0; i < g->n_kv; i++) {
            const struct gguf_kv *kv = &g->kv[i];
            struct sb k = {.n = 0}, v = {.n = 0};
            k.buf[0] = v.buf[0] = '\0';
            size_t kn = kv->key.len < 80 ? (size_t)kv->key.len : 80;
            for (size_t c = 0; c < kn; c++) {
                char ch = kv->key.ptr[c];
                sb_add(&k, (ch >= 32 && ch < 127) ? &ch : "?", 1);
            }
            sb_value(&v, &kv->value, 0);
            printf("  %-40s %-5s %s\n", k.buf,
                   kv->value.type == GGUF_TYPE_ARRAY ? "arr" : gguf_vtype_name(kv->value.type),
                   v.buf);
        }
    }

    printf("tensors\n");
    if (g->n_tensors)
        printf("  %-5s %-40s %-6s %-26s %12s\n", "#", "name", "type", "shape", "bytes");
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct gguf_tensor *t = &g->tensors[i];
        struct sb nm = {.n = 0};
        nm.buf[0] = '\0';
        for (size_t c = 0; c < t->name.len && c < 96; c++) {
            char ch = t->name.ptr[c];
            sb_add(&nm, (ch >= 32 && ch < 127) ? &ch : "?", 1);
        }
        char shape[96];
        int o = 0;
        o += snprintf(shape + o, sizeof shape - (size_t)o, "[");
        for (int d = 0; d < t->n_dims && o < (int)sizeof shape; d++)
            o += snprintf(shape + o, sizeof shape - (size_t)o, "%s%" PRId64, d ? ", " : "",
                          t->ne[d]);
        if (o < (int)sizeof shape)
            snprintf(shape + o, sizeof shape - (size_t)o, "]");
        printf("  %-5" PRIu64 " %-40s %-6s %-26s %12zu\n", i, nm.buf, type_name(t->type), shape,
               t->nbytes);
    }

    printf("totals\n");
    for (int ty = 0; ty < PG_TYPE_COUNT; ty++)
        if (in->type_count[ty])
            printf("  %-22s %" PRIu64 " tensors, %" PRIu64 " bytes (%s)\n", type_name(ty),
                   in->type_count[ty], in->type_bytes[ty],
                   human_bytes(in->type_bytes[ty], hb, sizeof hb));
    printf("  %-22s %" PRIu64 " (%s)\n", "parameters", in->n_params,
           human_count(in->n_params, hc, sizeof hc));
    printf("  %-22s %" PRIu64 " (%s)\n", "weights", in->weight_bytes,
           human_bytes(in->weight_bytes, hb, sizeof hb));
    if (in->have_kv_cache) {
        printf("  %-22s %" PRIu64 " (%s)\n", "kv cache per 1k tokens", in->kv_bytes_1k,
               human_bytes(in->kv_bytes_1k, hb, sizeof hb));
        printf("  %-22s %" PRIu64 " (%s)\n", "memory for 1k context",
               in->weight_bytes + in->kv_bytes_1k,
               human_bytes(in->weight_bytes + in->kv_bytes_1k, hb, sizeof hb));
    } else {
        printf("  %-22s -\n", "kv cache per 1k tokens");
        printf("  %-22s -\n", "memory for 1k context");
    }
}

static void json_kv_field(FILE *f, const char *name, const struct gguf_kv *kv, bool comma)
{
    fprintf(f, "    \"%s\": ", name);
    if (kv)
        json_value(f, &kv->value, 0);
    else
        fputs("null", f);
    fputs(comma ? ",\n" : "\n", f);
}

static void json_int_field(FILE *f, const char *name, int64_t v, bool comma)
{
    if (v >= 0)
        fprintf(f, "    \"%s\": %" PRId64 "%s\n", name, v, comma ? "," : "");
    else
        fprintf(f, "    \"%s\": null%s\n", name, comma ? "," : "");
}

static void print_json(const struct info *in, const char *path, bool all_kv)
{
    const struct gguf_file *g = in->g;
    FILE *f = stdout;
    fputs("{\n  \"file\": ", f);
    json_cstr(f, path);
    fprintf(f, ",\n  \"version\": %u,\n  \"size\": %zu,\n  \"alignment\": %zu,\n", g->version,
            g->size, g->alignment);
    fprintf(f, "  \"data_offset\": %zu,\n  \"n_kv\": %" PRIu64 ",\n  \"n_tensors\": %" PRIu64
               ",\n", g->data_offset, g->n_kv, g->n_tensors);
    fputs("  \"model\": {\n", f);
    json_kv_field(f, "name", gguf_find_kv(g, "general.name"), true);
    json_kv_field(f, "architecture", gguf_find_kv(g, "general.architecture"), true);
    json_kv_field(f, "file_type", gguf_find_kv(g, "general.file_type"), true);
    for (size_t i = 0; i < N_HPARAMS; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s", hparams[i].suffix);
        for (char *c = name; *c; c++)
            if (*c == '.')
                *c = '_';
        json_kv_field(f, name, arch_kv(in, hparams[i].suffix), true);
    }
    json_int_field(f, "head_dim", in->head_k, false);
    fputs("  },\n  \"tokenizer\": {\n", f);
    json_kv_field(f, "model", gguf_find_kv(g, "tokenizer.ggml.model"), true);
    json_kv_field(f, "pre", gguf_find_kv(g, "tokenizer.ggml.pre"), true);
    json_int_field(f, "tokens", in->n_vocab, true);
    const struct gguf_value *merges = gguf_get_arr(g, "tokenizer.ggml.merges");
    json_int_field(f, "merges", merges ? (int64_t)merges->v.arr.n : -1, true);
    json_kv_field(f, "bos_id", gguf_find_kv(g, "tokenizer.ggml.bos_token_id"), true);
    json_kv_field(f, "eos_id", gguf_find_kv(g, "tokenizer.ggml.eos_token_id"), false);
    fputs("  },\n", f);
    if (all_kv) {
        fputs("  \"metadata\": [\n", f);
        for (uint64_t i = 0; i < g->n_kv; i++) {
            fputs("    {\"key\": ", f);
            json_gstr(f, g->kv[i].key);
            fprintf(f, ", \"type\": \"%s\", \"value\": ", gguf_vtype_name(g->kv[i].value.type));
            json_value(f, &g->kv[i].value, 0);
            fputs(i + 1 < g->n_kv ? "},\n" : "}\n", f);
        }
        fputs("  ],\n", f);
    }
    fputs("  \"tensors\": [\n", f);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct gguf_tensor *t = &g->tensors[i];
        fputs("    {\"name\": ", f);
        json_gstr(f, t->name);
        fprintf(f, ", \"type\": \"%s\", \"shape\": ", type_name(t->type));
        print_shape(f, t);
        fprintf(f, ", \"bytes\": %zu, \"offset\": %" PRIu64 "}%s\n", t->nbytes, t->offset,
                i + 1 < g->n_tensors ? "," : "");
    }
    fputs("  ],\n  \"totals\": {\n    \"by_type\": {", f);
    bool first = true;
    for (int ty = 0; ty < PG_TYPE_COUNT; ty++)
        if (in->type_count[ty]) {
            fprintf(f, "%s\"%s\": {\"tensors\": %" PRIu64 ", \"bytes\": %" PRIu64 "}",
                    first ? "" : ", ", type_name(ty), in->type_count[ty], in->type_bytes[ty]);
            first = false;
        }
    fprintf(f, "},\n    \"parameters\": %" PRIu64 ",\n    \"weight_bytes\": %" PRIu64 ",\n",
            in->n_params, in->weight_bytes);
    if (in->have_kv_cache)
        fprintf(f, "    \"kv_cache_bytes_per_1k\": %" PRIu64
                   ",\n    \"memory_bytes_1k_context\": %" PRIu64 "\n",
                in->kv_bytes_1k, in->weight_bytes + in->kv_bytes_1k);
    else
        fputs("    \"kv_cache_bytes_per_1k\": null,\n    \"memory_bytes_1k_context\": null\n",
              f);
    fputs("  }\n}\n", f);
}

int cmd_info(int argc, char **argv)
{
    bool all_kv = false, json = false;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("%s\n\nShows a GGUF file: header, architecture and hyper-parameters,\n"
                   "tokenizer, tensors, and the memory a run needs.\n\n"
                   "  --kv    also list every metadata entry (arrays summarized)\n"
                   "  --json  print one JSON object instead of text\n",
                   info_usage);
            return 0;
        } else if (!strcmp(a, "--kv")) {
            all_kv = true;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (a[0] == '-' && a[1] != '\0') {
            return cli_fail("info: unknown option '%s' (%s)", a, info_usage);
        } else if (path) {
            return cli_fail("info: more than one file given (%s)", info_usage);
        } else {
            path = a;
        }
    }
    if (!path)
        return cli_fail("info: no file given (%s)", info_usage);

    struct gguf_file *g = NULL;
    char err[512];
    if (gguf_open(path, &g, err, sizeof err) != 0)
        return cli_fail("info: %s", err);
    struct info in;
    memset(&in, 0, sizeof in);
    in.g = g;
    info_compute(&in);
    if (json)
        print_json(&in, path, all_kv);
    else
        print_text(&in, path, all_kv);
    gguf_close(g);
    if (fflush(stdout) != 0 || ferror(stdout))
        return cli_fail("info: cannot write the output");
    return 0;
}
