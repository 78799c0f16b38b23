/*
 * test_gguf.c: the GGUF reader and writer. Round trips of every value type,
 * nested arrays, alignments and tensor types; many corrupt files (each must
 * fail with the right status and a message, never crash); and every reference
 * GGUF file read, written back and compared. With PAGODA_FUZZ_SEEDS set, it
 * only writes small valid files into that folder as a fuzzing seed corpus.
 */
#include <dirent.h>
#include <stdint.h>
#include <unistd.h>

#include "base/rng.h"
#include "gguf/gguf.h"
#include "ops/types.h"
#include "pagoda.h"
#include "test.h"

static char tmpdir[512];

static const char *tmp_path(const char *name)
{
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

/* ---- values ---- */

static bool value_equal(const struct gguf_value *a, const struct gguf_value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case GGUF_TYPE_UINT8: return a->v.u8 == b->v.u8;
    case GGUF_TYPE_INT8: return a->v.i8 == b->v.i8;
    case GGUF_TYPE_UINT16: return a->v.u16 == b->v.u16;
    case GGUF_TYPE_INT16: return a->v.i16 == b->v.i16;
    case GGUF_TYPE_UINT32: return a->v.u32 == b->v.u32;
    case GGUF_TYPE_INT32: return a->v.i32 == b->v.i32;
    case GGUF_TYPE_UINT64: return a->v.u64 == b->v.u64;
    case GGUF_TYPE_INT64: return a->v.i64 == b->v.i64;
    case GGUF_TYPE_BOOL: return a->v.b == b->v.b;
    case GGUF_TYPE_FLOAT32: return !memcmp(&a->v.f32, &b->v.f32, 4);
    case GGUF_TYPE_FLOAT64: return !memcmp(&a->v.f64, &b->v.f64, 8);
    case GGUF_TYPE_STRING:
        return a->v.str.len == b->v.str.len &&
               (a->v.str.len == 0 || !memcmp(a->v.str.ptr, b->v.str.ptr, a->v.str.len));
    case GGUF_TYPE_ARRAY: {
        if (a->v.arr.type != b->v.arr.type || a->v.arr.n != b->v.arr.n)
            return false;
        size_t esz = gguf_vtype_size(a->v.arr.type);
        if (esz)
            return a->v.arr.n == 0 || !memcmp(a->v.arr.data, b->v.arr.data, a->v.arr.n * esz);
        for (uint64_t i = 0; i < a->v.arr.n; i++)
            if (!value_equal(&a->v.arr.items[i], &b->v.arr.items[i]))
                return false;
        return true;
    }
    default: return false;
    }
}

/* ---- a file built with the writer: every value type and a few tensors ---- */

struct sample_tensor {
    const char *name;
    int type;
    int n_dims;
    int64_t ne[4];
    unsigned char *data;
    size_t nbytes;
};

static struct sample_tensor sample_tensors[] = {
    {"tok_embd.weight", PG_TYPE_F32, 2, {7, 5, 1, 1}, NULL, 0},
    {"blk.0.attn_q.weight", PG_TYPE_Q8_0, 2, {64, 3, 1, 1}, NULL, 0},
    {"blk.0.ffn_down.weight", PG_TYPE_Q4_K, 2, {256, 2, 1, 1}, NULL, 0},
    {"blk.0.attn_norm.weight", PG_TYPE_F16, 1, {33, 1, 1, 1}, NULL, 0},
    {"empty", PG_TYPE_F32, 3, {4, 0, 2, 1}, NULL, 0},
    {"cube", PG_TYPE_BF16, 4, {3, 2, 2, 2}, NULL, 0},
};
#define N_SAMPLE (sizeof sample_tensors / sizeof sample_tensors[0])

static void sample_fill(struct rng *r)
{
    for (size_t i = 0; i < N_SAMPLE; i++) {
        struct sample_tensor *t = &sample_tensors[i];
        t->nbytes = type_row_size(t->type, t->ne[0]) * (size_t)(t->ne[1] * t->ne[2] * t->ne[3]);
        free(t->data);
        t->data = malloc(t->nbytes + 1);
        for (size_t b = 0; b < t->nbytes; b++)
            t->data[b] = (unsigned char)rng_next(r);
    }
}

static void set_all_types(struct gguf_writer *w, struct rng *r)
{
    struct gguf_value v;
    memset(&v, 0, sizeof v);
    v.type = GGUF_TYPE_UINT8; v.v.u8 = 200; CHECK(gguf_writer_set_value(w, "t.u8", &v) == 0);
    v.type = GGUF_TYPE_INT8; v.v.i8 = -100; CHECK(gguf_writer_set_value(w, "t.i8", &v) == 0);
    v.type = GGUF_TYPE_UINT16; v.v.u16 = 60000; CHECK(gguf_writer_set_value(w, "t.u16", &v) == 0);
    v.type = GGUF_TYPE_INT16; v.v.i16 = -30000; CHECK(gguf_writer_set_value(w, "t.i16", &v) == 0);
    CHECK(gguf_writer_set_u32(w, "t.u32", 4000000000u) == 0);
    CHECK(gguf_writer_set_i32(w, "t.i32", -2000000000) == 0);
    CHECK(gguf_writer_set_f32(w, "t.f32", rng_normal(r)) == 0);
    CHECK(gguf_writer_set_bool(w, "t.bool", true) == 0);
    CHECK(gguf_writer_set_str(w, "t.str", "héllo wörld") == 0);
    CHECK(gguf_writer_set_str(w, "t.empty_str", "") == 0);
    CHECK(gguf_writer_set_u64(w, "t.u64", 0xfedcba9876543210ull) == 0);
    v.type = GGUF_TYPE_INT64; v.v.i64 = -1234567890123ll;
    CHECK(gguf_writer_set_value(w, "t.i64", &v) == 0);
    v.type = GGUF_TYPE_FLOAT64; v.v.f64 = 3.14159265358979;
    CHECK(gguf_writer_set_value(w, "t.f64", &v) == 0);

    /* A fixed-size array of every fixed type, random content, odd lengths. */
    static const enum gguf_vtype fixed[] = {
        GGUF_TYPE_UINT8, GGUF_TYPE_INT8, GGUF_TYPE_UINT16, GGUF_TYPE_INT16, GGUF_TYPE_UINT32,
        GGUF_TYPE_INT32, GGUF_TYPE_FLOAT32, GGUF_TYPE_BOOL, GGUF_TYPE_UINT64, GGUF_TYPE_INT64,
        GGUF_TYPE_FLOAT64};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        size_t n = 1 + i * 7, esz = gguf_vtype_size(fixed[i]);
        unsigned char buf[1024];
        for (size_t b = 0; b < n * esz; b++)
            buf[b] = fixed[i] == GGUF_TYPE_BOOL ? (unsigned char)(rng_next(r) & 1)
                                                : (unsigned char)rng_next(r);
        char key[64];
        snprintf(key, sizeof key, "arr.%s", gguf_vtype_name(fixed[i]));
        CHECK(gguf_writer_set_arr(w, key, fixed[i], buf, n) == 0);
    }
    CHECK(gguf_writer_set_arr(w, "arr.empty_u32", GGUF_TYPE_UINT32, NULL, 0) == 0);
    const char *words[] = {"", "a", "bc", "déf", "<s>", "\xe2\x96\x81the"};
    CHECK(gguf_writer_set_arr_str(w, "arr.str", words, 6) == 0);
    CHECK(gguf_writer_set_arr_str(w, "arr.empty_str", NULL, 0) == 0);

    /* arr[arr[arr[str]]], with an empty inner array, and arr[arr[f32]]. */
    struct gguf_value leaves[3], mid[2], outer, fl[2], flo;
    float fdata[5] = {1.5f, -2.25f, rng_normal(r), rng_normal(r), 0.0f};
    for (int i = 0; i < 3; i++) {
        memset(&leaves[i], 0, sizeof leaves[i]);
        leaves[i].type = GGUF_TYPE_STRING;
        leaves[i].v.str.ptr = words[i + 2];
        leaves[i].v.str.len = strlen(words[i + 2]);
    }
    memset(mid, 0, sizeof mid);
    mid[0].type = mid[1].type = GGUF_TYPE_ARRAY;
    mid[0].v.arr.type = GGUF_TYPE_STRING; mid[0].v.arr.n = 3; mid[0].v.arr.items = leaves;
    mid[1].v.arr.type = GGUF_TYPE_STRING; mid[1].v.arr.n = 0;
    struct gguf_value midarr[1];
    memset(midarr, 0, sizeof midarr);
    midarr[0].type = GGUF_TYPE_ARRAY;
    midarr[0].v.arr.type = GGUF_TYPE_ARRAY; midarr[0].v.arr.n = 2; midarr[0].v.arr.items = mid;
    memset(&outer, 0, sizeof outer);
    outer.type = GGUF_TYPE_ARRAY;
    outer.v.arr.type = GGUF_TYPE_ARRAY; outer.v.arr.n = 1; outer.v.arr.items = midarr;
    CHECK(gguf_writer_set_value(w, "nest.str3", &outer) == 0);
    memset(fl, 0, sizeof fl);
    fl[0].type = fl[1].type = GGUF_TYPE_ARRAY;
    fl[0].v.arr.type = GGUF_TYPE_FLOAT32; fl[0].v.arr.n = 5; fl[0].v.arr.data = fdata;
    fl[1].v.arr.type = GGUF_TYPE_FLOAT32; fl[1].v.arr.n = 2; fl[1].v.arr.data = fdata + 3;
    memset(&flo, 0, sizeof flo);
    flo.type = GGUF_TYPE_ARRAY;
    flo.v.arr.type = GGUF_TYPE_ARRAY; flo.v.arr.n = 2; flo.v.arr.items = fl;
    CHECK(gguf_writer_set_value(w, "nest.f32", &flo) == 0);

    /* A badly formed value is refused. */
    struct gguf_value bad = outer;
    bad.v.arr.type = GGUF_TYPE_STRING; /* items are arrays, not strings */
    CHECK(gguf_writer_set_value(w, "bad", &bad) < 0);
    bad.type = (enum gguf_vtype)77;
    CHECK(gguf_writer_set_value(w, "bad", &bad) < 0);
    unsigned char twos[2] = {0, 2};
    CHECK(gguf_writer_set_arr(w, "bad", GGUF_TYPE_BOOL, twos, 2) < 0);
    CHECK(gguf_writer_set_arr(w, "bad", GGUF_TYPE_STRING, twos, 1) < 0);
}

static struct gguf_writer *sample_writer(struct rng *r, uint32_t alignment, bool tensors)
{
    struct gguf_writer *w = gguf_writer_create();
    CHECK(w != NULL);
    CHECK(gguf_writer_set_str(w, "general.architecture", "llama") == 0);
    if (alignment)
        CHECK(gguf_writer_set_u32(w, "general.alignment", alignment) == 0);
    set_all_types(w, r);
    if (tensors) {
        char err[256];
        for (size_t i = 0; i < N_SAMPLE; i++) {
            struct sample_tensor *t = &sample_tensors[i];
            int rc = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data,
                                            t->nbytes, err, sizeof err);
            CHECKF(rc == 0, "%s", err);
        }
        /* Wrong byte count, duplicate, bad type, partial block: refused. */
        struct sample_tensor *t = &sample_tensors[1];
        CHECK(gguf_writer_add_tensor(w, "x", t->type, 2, t->ne, t->data, t->nbytes - 1, err,
                                     sizeof err) < 0 && err[0]);
        CHECK(gguf_writer_add_tensor(w, t->name, t->type, 2, t->ne, t->data, t->nbytes, err,
                                     sizeof err) < 0 && strstr(err, "twice"));
        CHECK(gguf_writer_add_tensor(w, "y", 4, 2, t->ne, t->data, t->nbytes, err,
                                     sizeof err) < 0);
        int64_t odd[2] = {33, 3};
        CHECK(gguf_writer_add_tensor(w, "z", PG_TYPE_Q8_0, 2, odd, t->data, t->nbytes, err,
                                     sizeof err) < 0 && strstr(err, "block"));
        CHECK(gguf_writer_add_tensor(w, "z", PG_TYPE_Q8_0, 5, odd, t->data, t->nbytes, err,
                                     sizeof err) < 0);
    }
    return w;
}

static void check_sample(const struct gguf_file *g, size_t alignment, bool tensors)
{
    int64_t i;
    double d;
    bool b;
    struct gguf_str s;
    CHECK(g->version == 3);
    CHECK(g->alignment == alignment);
    CHECK(g->data_offset % alignment == 0 || !tensors);
    CHECK(gguf_get_int(g, "t.u8", &i) && i == 200);
    CHECK(gguf_get_int(g, "t.i8", &i) && i == -100);
    CHECK(gguf_get_int(g, "t.u16", &i) && i == 60000);
    CHECK(gguf_get_int(g, "t.i16", &i) && i == -30000);
    CHECK(gguf_get_int(g, "t.u32", &i) && i == 4000000000ll);
    CHECK(gguf_get_int(g, "t.i32", &i) && i == -2000000000);
    CHECK(gguf_get_int(g, "t.i64", &i) && i == -1234567890123ll);
    CHECK(gguf_get_int(g, "t.bool", &i) && i == 1);
    CHECK(!gguf_get_int(g, "t.u64", &i)); /* does not fit in int64 */
    CHECK(!gguf_get_int(g, "t.f32", &i));
    CHECK(!gguf_get_int(g, "t.str", &i));
    CHECK(!gguf_get_int(g, "no.such.key", &i));
    CHECK(gguf_get_float(g, "t.f64", &d) && d == 3.14159265358979);
    CHECK(gguf_get_float(g, "t.u64", &d) && d == (double)0xfedcba9876543210ull);
    CHECK(gguf_get_float(g, "t.i16", &d) && d == -30000.0);
    CHECK(!gguf_get_float(g, "t.str", &d));
    CHECK(gguf_get_bool(g, "t.bool", &b) && b);
    CHECK(!gguf_get_bool(g, "t.u8", &b));
    CHECK(gguf_get_str(g, "t.str", &s) && gguf_str_eq(s, "héllo wörld"));
    CHECK(gguf_get_str(g, "t.empty_str", &s) && s.len == 0);
    CHECK(gguf_get_str(g, "general.architecture", &s) && gguf_str_eq(s, "llama"));
    CHECK(!gguf_get_str(g, "t.u8", &s));
    CHECK(gguf_get_arr(g, "t.str") == NULL);
    const struct gguf_value *a = gguf_get_arr(g, "arr.str");
    CHECK(a && a->v.arr.type == GGUF_TYPE_STRING && a->v.arr.n == 6);
    if (a && a->v.arr.n == 6) {
        CHECK(a->v.arr.items[0].v.str.len == 0);
        CHECK(gguf_str_eq(a->v.arr.items[3].v.str, "déf"));
        CHECK(gguf_str_eq(a->v.arr.items[5].v.str, "\xe2\x96\x81the"));
    }
    a = gguf_get_arr(g, "arr.empty_str");
    CHECK(a && a->v.arr.n == 0 && a->v.arr.type == GGUF_TYPE_STRING);
    a = gguf_get_arr(g, "arr.empty_u32");
    CHECK(a && a->v.arr.n == 0 && a->v.arr.type == GGUF_TYPE_UINT32);
    a = gguf_get_arr(g, "arr.f64");
    CHECK(a && a->v.arr.type == GGUF_TYPE_FLOAT64 && a->v.arr.n == 71);
    a = gguf_get_arr(g, "nest.str3");
    CHECK(a && a->v.arr.type == GGUF_TYPE_ARRAY && a->v.arr.n == 1);
    if (a && a->v.arr.n == 1) {
        const struct gguf_value *m = &a->v.arr.items[0];
        CHECK(m->type == GGUF_TYPE_ARRAY && m->v.arr.type == GGUF_TYPE_ARRAY && m->v.arr.n == 2);
        if (m->v.arr.n == 2) {
            CHECK(m->v.arr.items[0].v.arr.n == 3 && m->v.arr.items[1].v.arr.n == 0);
            CHECK(m->v.arr.items[0].v.arr.type == GGUF_TYPE_STRING);
            if (m->v.arr.items[0].v.arr.n == 3)
                CHECK(gguf_str_eq(m->v.arr.items[0].v.arr.items[1].v.str, "déf"));
        }
    }
    a = gguf_get_arr(g, "nest.f32");
    CHECK(a && a->v.arr.n == 2);
    if (a && a->v.arr.n == 2) {
        float f[2];
        memcpy(f, a->v.arr.items[0].v.arr.data, 8);
        CHECK(f[0] == 1.5f && f[1] == -2.25f && a->v.arr.items[1].v.arr.n == 2);
    }
    CHECK(gguf_find_kv(g, "bad") == NULL);
    CHECK(g->n_tensors == (tensors ? N_SAMPLE : 0));
    if (!tensors)
        return;
    for (size_t k = 0; k < N_SAMPLE; k++) {
        const struct sample_tensor *st = &sample_tensors[k];
        const struct gguf_tensor *t = gguf_find_tensor(g, st->name);
        CHECKF(t != NULL, "%s", st->name);
        if (!t)
            continue;
        CHECK(t == &g->tensors[k]);
        CHECK(t->type == st->type && t->n_dims == st->n_dims);
        CHECK(!memcmp(t->ne, st->ne, sizeof t->ne));
        CHECK(t->nbytes == st->nbytes);
        CHECK(t->offset % alignment == 0);
        CHECK(((const unsigned char *)t->data - g->base) % alignment == 0);
        CHECK(t->nbytes == 0 || !memcmp(t->data, st->data, st->nbytes));
    }
    CHECK(gguf_find_tensor(g, "nope") == NULL);
    CHECK(gguf_find_tensor(g, "tok_embd.weigh") == NULL);
}

static void test_round_trip(void)
{
    struct rng r;
    rng_seed(&r, 42);
    sample_fill(&r);
    struct {
        uint32_t align; /* 0: not set */
        bool tensors;
    } cases[] = {{0, true}, {64, true}, {0, false}, {1, true}, {4096, true}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        rng_seed(&r, 7 + c);
        struct gguf_writer *w = sample_writer(&r, cases[c].align, cases[c].tensors);
        char err[256] = "";
        char path[1024];
        snprintf(path, sizeof path, "%s", tmp_path("rt.gguf"));
        CHECKF(gguf_writer_write(w, path, err, sizeof err) == 0, "%s", err);
        gguf_writer_free(w);
        CHECK(access(tmp_path("rt.gguf.tmp"), F_OK) != 0);
        struct gguf_file *g = NULL;
        int rc = gguf_open(path, &g, err, sizeof err);
        CHECKF(rc == 0, "%s", err);
        if (!rc) {
            check_sample(g, cases[c].align ? cases[c].align : 32, cases[c].tensors);
            /* The file is exactly as long as its last tensor's padded end. */
            if (cases[c].tensors)
                CHECK(g->size % g->alignment == 0);
            /* The same bytes read from memory give the same result. */
            struct gguf_file *m = NULL;
            CHECK(gguf_open_memory(g->base, g->size, &m, err, sizeof err) == 0);
            if (m) {
                CHECK(m->n_kv == g->n_kv && m->n_tensors == g->n_tensors);
                for (uint64_t k = 0; k < m->n_kv && k < g->n_kv; k++)
                    CHECK(value_equal(&m->kv[k].value, &g->kv[k].value));
                gguf_close(m);
            }
            gguf_close(g);
        }
        unlink(path);
    }
}

static void test_replace_in_place(void)
{
    struct gguf_writer *w = gguf_writer_create();
    CHECK(gguf_writer_set_u32(w, "a", 1) == 0);
    CHECK(gguf_writer_set_str(w, "b", "two") == 0);
    CHECK(gguf_writer_set_u32(w, "c", 3) == 0);
    CHECK(gguf_writer_set_str(w, "a", "one") == 0); /* new type, same place */
    CHECK(gguf_writer_set_u32(w, "c", 33) == 0);
    char err[256] = "";
    char path[1024];
    snprintf(path, sizeof path, "%s", tmp_path("replace.gguf"));
    CHECKF(gguf_writer_write(w, path, err, sizeof err) == 0, "%s", err);
    gguf_writer_free(w);
    struct gguf_file *g = NULL;
    CHECKF(gguf_open(path, &g, err, sizeof err) == 0, "%s", err);
    if (g) {
        CHECK(g->n_kv == 3);
        CHECK(gguf_str_eq(g->kv[0].key, "a") && g->kv[0].value.type == GGUF_TYPE_STRING);
        CHECK(gguf_str_eq(g->kv[0].value.v.str, "one"));
        CHECK(gguf_str_eq(g->kv[2].key, "c") && g->kv[2].value.v.u32 == 33);
        CHECK(g->n_tensors == 0);
        gguf_close(g);
    }
    unlink(path);

    /* A bad general.alignment is refused at write time. */
    w = gguf_writer_create();
    CHECK(gguf_writer_set_u32(w, "general.alignment", 48) == 0);
    CHECK(gguf_writer_write(w, path, err, sizeof err) == PAGODA_EINVAL && err[0]);
    CHECK(access(path, F_OK) != 0);
    gguf_writer_free(w);
    /* An unwritable path fails cleanly. */
    w = gguf_writer_create();
    CHECK(gguf_writer_write(w, "/nonexistent-dir/x.gguf", err, sizeof err) == PAGODA_EIO);
    CHECK(strstr(err, "nonexistent") != NULL);
    gguf_writer_free(w);
}

/* ---- hand-made files for the corrupt cases ---- */

struct buf {
    unsigned char *p;
    size_t n, cap;
};

static void put(struct buf *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void put_u8(struct buf *b, uint8_t v) { put(b, &v, 1); }
static void put_u32(struct buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(struct buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(struct buf *b, const char *s)
{
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void put_pad(struct buf *b, size_t a)
{
    while (b->n % a)
        put_u8(b, 0);
}
static void put_header(struct buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    put_u32(b, GGUF_MAGIC);
    put_u32(b, version);
    put_u64(b, n_tensors);
    put_u64(b, n_kv);
}
static void put_tensor_info(struct buf *b, const char *name, uint32_t n_dims,
                            const uint64_t *ne, uint32_t type, uint64_t off)
{
    put_str(b, name);
    put_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++)
        put_u64(b, ne[i]);
    put_u32(b, type);
    put_u64(b, off);
}

/* Opens b and expects failure with code, a non-empty message, and (when
 * given) a piece of text in it. */
static void expect_fail(struct buf *b, int code, const char *text, int line)
{
    struct gguf_file *g = NULL;
    char err[512] = "";
    int rc = gguf_open_memory(b->p, b->n, &g, err, sizeof err);
    CHECKF(rc == code, "line %d: got %d (%s), want %d", line, rc, err, code);
    CHECKF(err[0] != '\0' && !strchr(err, '\n'), "line %d: message '%s'", line, err);
    if (text)
        CHECKF(strstr(err, text) != NULL, "line %d: '%s' not in '%s'", line, text, err);
    CHECK(g == NULL);
    if (g)
        gguf_close(g);
    free(b->p);
    memset(b, 0, sizeof *b);
}
#define EXPECT_FAIL(b, code, text) expect_fail(b, code, text, __LINE__)

/* A small valid file: version v, two kv, two F32 tensors; the last tensor
 * ends exactly at the end of the file, so every shorter prefix is invalid. */
static void small_valid(struct buf *b, uint32_t version)
{
    uint64_t ne0[2] = {4, 2}, ne1[1] = {8};
    put_header(b, version, 2, 3);
    put_str(b, "general.architecture");
    put_u32(b, GGUF_TYPE_STRING);
    put_str(b, "llama");
    put_str(b, "tokenizer.ggml.tokens");
    put_u32(b, GGUF_TYPE_ARRAY);
    put_u32(b, GGUF_TYPE_STRING);
    put_u64(b, 3);
    put_str(b, "<s>");
    put_str(b, "");
    put_str(b, "abc");
    put_str(b, "nest");
    put_u32(b, GGUF_TYPE_ARRAY);
    put_u32(b, GGUF_TYPE_ARRAY);
    put_u64(b, 1);
    put_u32(b, GGUF_TYPE_INT16);
    put_u64(b, 2);
    put_u32(b, 0xfffe0001u);
    put_tensor_info(b, "a", 2, ne0, PG_TYPE_F32, 0);
    put_tensor_info(b, "b", 1, ne1, PG_TYPE_F32, 32);
    put_pad(b, 32);
    for (int i = 0; i < 16; i++)
        put_u32(b, 0x3f800000u + (uint32_t)i);
}

static void test_valid_hand_made(void)
{
    for (uint32_t version = 2; version <= 3; version++) {
        struct buf b = {0};
        small_valid(&b, version);
        struct gguf_file *g = NULL;
        char err[256] = "";
        int rc = gguf_open_memory(b.p, b.n, &g, err, sizeof err);
        CHECKF(rc == 0, "%s", err);
        if (g) {
            CHECK(g->version == version && g->n_kv == 3 && g->n_tensors == 2);
            const struct gguf_tensor *t = gguf_find_tensor(g, "b");
            CHECK(t && t->nbytes == 32 && (const unsigned char *)t->data + 32 == b.p + b.n);
            const struct gguf_value *n = gguf_get_arr(g, "nest");
            CHECK(n && n->v.arr.items[0].v.arr.type == GGUF_TYPE_INT16);
            gguf_close(g);
        }
        free(b.p);
    }
}

static void test_truncation(void)
{
    struct buf b = {0};
    small_valid(&b, 3);
    int bad = 0;
    for (size_t len = 0; len < b.n; len++) {
        /* A copy of exactly len bytes, so ASan sees any read past the end. */
        unsigned char *p = malloc(len ? len : 1);
        memcpy(p, b.p, len);
        struct gguf_file *g = NULL;
        char err[512] = "";
        int rc = gguf_open_memory(p, len, &g, err, sizeof err);
        if (rc != PAGODA_EFORMAT || !err[0] || g)
            bad++;
        if (g)
            gguf_close(g);
        free(p);
    }
    CHECKF(bad == 0, "%d truncations not rejected", bad);
    free(b.p);

    /* The writer's sample file: every prefix that cuts into metadata or tensor
     * data fails; cutting only the final padding leaves a valid file. */
    struct rng r;
    rng_seed(&r, 3);
    sample_fill(&r);
    struct gguf_writer *w = sample_writer(&r, 0, true);
    char err[512] = "", path[1024];
    snprintf(path, sizeof path, "%s", tmp_path("trunc.gguf"));
    CHECKF(gguf_writer_write(w, path, err, sizeof err) == 0, "%s", err);
    gguf_writer_free(w);
    struct gguf_file *g = NULL;
    CHECKF(gguf_open(path, &g, err, sizeof err) == 0, "%s", err);
    if (!g)
        return;
    size_t end = g->data_offset;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        size_t e = (size_t)((const unsigned char *)g->tensors[i].data - g->base) +
                   g->tensors[i].nbytes;
        end = e > end ? e : end;
    }
    CHECK(end < g->size && g->size - end < g->alignment);
    bad = 0;
    int good = 0;
    for (size_t len = 0; len < g->size; len++) {
        unsigned char *p = malloc(len ? len : 1);
        memcpy(p, g->base, len);
        struct gguf_file *t = NULL;
        err[0] = '\0';
        int rc = gguf_open_memory(p, len, &t, err, sizeof err);
        if (len < end && (rc >= 0 || !err[0]))
            bad++;
        if (len >= end && rc == 0 && t->n_tensors == N_SAMPLE)
            good++;
        gguf_close(t);
        free(p);
    }
    CHECKF(bad == 0, "%d truncations of the sample not rejected", bad);
    CHECK(good == (int)(g->size - end));
    gguf_close(g);
    unlink(path);
}

static void test_corrupt(void)
{
    struct buf b = {0};
    uint64_t ne[4] = {32, 2, 1, 1};

    put_u32(&b, 0x46554746u);
    put_u32(&b, 3);
    put_u64(&b, 0);
    put_u64(&b, 0);
    EXPECT_FAIL(&b, PAGODA_EFORMAT, "not a GGUF file");

    put_header(&b, 1, 0, 0);
    EXPECT_FAIL(&b, PAGODA_EUNSUPPORTED, "version 1");
    put_header(&b, 4, 0, 0);
    EXPECT_FAIL(&b, PAGODA_EUNSUPPORTED, "version 4");
    put_header(&b, 0x03000000u, 0, 0);
    EXPECT_FAIL(&b, PAGODA_EUNSUPPORTED, "big-endian");

    put_header(&b, 3, 0, UINT64_MAX);
    EXPECT_FAIL(&b, PAGODA_EFORMAT, "metadata count");
    put_header(&b, 3, 1ull << 60, 0);
    EXPECT_FAIL(&b, PAGODA_EFORMAT, "tensor count");
    put_header(&b, 3, 1000, 1);
    put_str(&b, "k");
    put_u32(&b, GGUF_TYPE_UINT8);
    put_u8(&b, 1);
    EXPECT_FAIL(&b, PAGODA_EFORMAT, "tensor count");

    /* Huge key length, huge string value length. */
    put_header(&b, 3, 0, 1);
    put_u64(&b, 99999999);
    put(&b, "abcdefgh", 8);
    EXPECT_FAIL(&b, PAGODA_EFORMAT, "key length 99999999 at byte 24");
    put_header(&b, 3, 0, 1);
    put_str(&b, "tokenizer.ggml.model");
    put_u32(&b, GGUF_TYPE_STRING);
    put_u64(&b, UINT64_MAX);
    put(&b, "llama", 5);
    EXPECT_FAIL(&b, PAGODA_EFORMAT, "metadata key 0 ('tokenizer.ggml.model'): string length");

    /* Huge array lengths for each kind of element. */
    enum gguf_vtype ets[] = {GGUF_TYPE_UINT8, GGUF_TYPE_FLOAT64, GGUF_TYPE_STRING,
                             GGUF_TYPE_ARRAY};
    for (size_t i = 0; i < 4; i++) {
        uint64_t ns[] = {UINT64_MAX, 1ull << 61, 1000};
        for (size_t j = 0; j < 3; j++) {
            put_header(&b, 3, 0, 1);
            put_str(&b, "tokenizer.ggml.tokens");
            put_u32(&b, GGUF_TYPE_ARRAY);
            put_u32(&b, ets[i]);
            put_u64(&b, ns[j]);
            put_u64(&b, 0);
            EXPECT_FAIL(&b, PAGODA_EFORMAT, "tokenizer.ggml.tokens");
        }
    }
    /* Arrays of arrays deeper than the cap. */
    put_header(&b, 3, 0, 1);
    put_str(&b, "deep");
    put_u32(&b, GGUF_TYPE_ARRAY);
    for (int d = 0; d < 20; d++) {
        put_u32(&b, GGUF_TYPE_ARRAY);
        put_u64(&b, 1);
    }
    put_u32(&b, GGUF_TYPE_UINT8);
    put_u64(&b, 0);
    EXPECT_FAIL(&b, PAGODA_EFORMAT, "nested");

    /* Unknown value types, bad bool. */
    put_header(&b, 3, 0, 1);
    put_str(&b, "k");
    put_u32(&b, 13);
    put_u64(&b, 0);
    EXPECT_FAIL(&b, PAGODA_EFORMAT, "unknown value type 13");
    put_header(&b, 3, 0, 1);
    put_str(&b, "k");
    put_u32(&b, GGUF_TYPE_ARRAY);
    put_u32(&b, 0x80000000u);
    put_u64(&b, 0);
    EXPECT_FAIL(&b, PAGODA_EFORMAT, "element type");
    put_header(&b, 3, 0, 1);
    put_str(&b, "k");
    put_u32(&b, GGUF_TYPE_BOOL);
    put_u8(&b, 2);
    put_u64(&b, 0);
    EXPECT_FAIL(&b, PAGODA_EFORMAT, "bool");

    /* Duplicate key. */
    put_header(&b, 3, 0, 2);
    put_str(&b, "general.name");
    put_u32(&b, GGUF_TYPE_UINT8);
    put_u8(&b, 1);
    put_str(&b, "general.name");
    put_u32(&b, GGUF_TYPE_UINT8);
    put_u8(&b, 2);
    EXPECT_FAIL(&b, PAGODA_EFORMAT, "metadata key 1 ('general.name'): duplicate key");

    /* general.alignment: not a power of two, zero, wrong type. */
    uint32_t aligns[] = {0, 48};
    for (int i = 0; i < 2; i++) {
        put_header(&b, 3, 0, 1);
        put_str(&b, "general.alignment");
        put_u32(&b, GGUF_TYPE_UINT32);
        put_u32(&b, aligns[i]);
        put_u64(&b, 0);
        EXPECT_FAIL(&b, PAGODA_EFORMAT, "power of two");
    }
    put_header(&b, 3, 0, 1);
    put_str(&b, "general.alignment");
    put_u32(&b, GGUF_TYPE_UINT64);
    put_u64(&b, 32);
    put_u64(&b, 0);
    EXPECT_FAIL(&b, PAGODA_EFORMAT, "u32");

    /* Tensors: misaligned offset, bad types, bad dims, ne overflow, range. */
#define ONE_TENSOR(name, nd, nev, type, off, data_bytes)                                       \
    do {                                                                                      \
        put_header(&b, 3, 1, 0);                                                              \
        put_tensor_info(&b, name, nd, nev, type, off);                                        \
        put_pad(&b, 32);                                                                      \
        for (size_t k_ = 0; k_ < (data_bytes); k_++)                                          \
            put_u8(&b, (uint8_t)k_);                                                          \
    } while (0)
    ONE_TENSOR("t", 2, ne, PG_TYPE_F32, 16, 512);
    EXPECT_FAIL(&b, PAGODA_EFORMAT, "not a multiple of the alignment");
    ONE_TENSOR("t", 2, ne, 99, 0, 512);
    EXPECT_FAIL(&b, PAGODA_EUNSUPPORTED, "type 99");
    ONE_TENSOR("t", 2, ne, 4, 0, 512); /* an id ggml retired */
    EXPECT_FAIL(&b, PAGODA_EUNSUPPORTED, "type 4");
    ONE_TENSOR("t", 2, ne, 0xffffffffu, 0, 512);
    EXPECT_FAIL(&b, PAGODA_EUNSUPPORTED, "type");
    ONE_TENSOR("t", 0, ne, PG_TYPE_F32, 0, 512);
    EXPECT_FAIL(&b, PAGODA_EFORMAT, "dimension count 0");
    uint64_t ne5[5] = {32, 2, 1, 1, 1};
    ONE_TENSOR("t", 5, ne5, PG_TYPE_F32, 0, 512);
    EXPECT_FAIL(&b, PAGODA_EFORMAT, "dimension count 5");
    uint64_t big[4] = {1ull << 32, 1ull << 32, 1, 1};
    ONE_TENSOR("t", 2, big, PG_TYPE_F32, 0, 64);
    EXPECT_FAIL(&b, PAGODA_EFORMAT, "2^63");
    uint64_t big2[4] = {1ull << 62, 1, 1, 1};
    ONE_TENSOR("t", 1, big2, PG_TYPE_F32, 0, 64);
    EXPECT_FAIL(&b, PAGODA_EFORMAT, NULL);
    uint64_t neg[4] = {UINT64_MAX, 1, 1, 1};
    ONE_TENSOR("t", 1, neg, PG_TYPE_F32, 0, 64);
    EXPECT_FAIL(&b, PAGODA_EFORMAT, "negative");
    uint64_t part[4] = {48, 1, 1, 1};
    ONE_TENSOR("t", 1, part, PG_TYPE_Q4_0, 0, 64);
    EXPECT_FAIL(&b, PAGODA_EFORMAT, "block size 32");
    ONE_TENSOR("blk.0.attn_q.weight", 2, ne, PG_TYPE_F32, 0, 255);
    EXPECT_FAIL(&b, PAGODA_EFORMAT, "tensor 'blk.0.attn_q.weight' data [offset 0, 256 bytes)");
    ONE_TENSOR("t", 2, ne, PG_TYPE_F32, 1ull << 63, 256);
    EXPECT_FAIL(&b, PAGODA_EFORMAT, "runs past the end");
    ONE_TENSOR("t", 2, ne, PG_TYPE_F32, UINT64_MAX - 31, 256);
    EXPECT_FAIL(&b, PAGODA_EFORMAT, NULL);
    /* Data section start past the end of the file. */
    put_header(&b, 3, 1, 0);
    put_tensor_info(&b, "t", 1, ne, PG_TYPE_F32, 0);
    EXPECT_FAIL(&b, PAGODA_EFORMAT, "data section");

    /* Duplicate tensor name. */
    put_header(&b, 3, 2, 0);
    put_tensor_info(&b, "w", 1, ne, PG_TYPE_F32, 0);
    put_tensor_info(&b, "w", 1, ne, PG_TYPE_F32, 128);
    put_pad(&b, 32);
    for (int i = 0; i < 256; i++)
        put_u8(&b, 1);
    EXPECT_FAIL(&b, PAGODA_EFORMAT, "tensor 1 ('w'): duplicate tensor name");

    /* Names with unprintable bytes are printed safely. */
    put_header(&b, 3, 0, 2);
    put_str(&b, "a\nb");
    put_u32(&b, GGUF_TYPE_UINT8);
    put_u8(&b, 1);
    put_str(&b, "a\nb");
    put_u32(&b, GGUF_TYPE_UINT8);
    put_u8(&b, 1);
    EXPECT_FAIL(&b, PAGODA_EFORMAT, "'a?b'");

    /* Overlapping tensors are allowed; zero tensors with a short tail too. */
    put_header(&b, 3, 2, 0);
    put_tensor_info(&b, "x", 1, ne, PG_TYPE_F32, 0);
    put_tensor_info(&b, "y", 1, ne, PG_TYPE_F32, 0);
    put_pad(&b, 32);
    for (int i = 0; i < 128; i++)
        put_u8(&b, 1);
    struct gguf_file *g = NULL;
    CHECK(gguf_open_memory(b.p, b.n, &g, NULL, 0) == 0);
    gguf_close(g);
    free(b.p);
    memset(&b, 0, sizeof b);
    put_header(&b, 3, 0, 1);
    put_str(&b, "k");
    put_u32(&b, GGUF_TYPE_UINT8);
    put_u8(&b, 1);
    g = NULL;
    CHECK(gguf_open_memory(b.p, b.n, &g, NULL, 0) == 0);
    CHECK(g && g->data_offset <= g->size);
    gguf_close(g);
    free(b.p);

    /* Files: missing, empty, a directory. */
    char err[512] = "";
    CHECK(gguf_open(tmp_path("missing.gguf"), &g, err, sizeof err) == PAGODA_EIO);
    CHECK(strstr(err, "missing.gguf") != NULL);
    FILE *f = fopen(tmp_path("empty.gguf"), "wb");
    fclose(f);
    CHECK(gguf_open(tmp_path("empty.gguf"), &g, err, sizeof err) == PAGODA_EFORMAT);
    CHECK(strstr(err, "empty") != NULL);
    unlink(tmp_path("empty.gguf"));
    CHECK(gguf_open(tmpdir, &g, err, sizeof err) < 0 && err[0]);
    CHECK(gguf_open_memory(NULL, 0, &g, err, sizeof err) == PAGODA_EFORMAT);
}

/* ---- the reference files: read, write back, compare ---- */

static int round_trip_file(const char *path, const char *name, int *identical)
{
    char err[512] = "";
    struct gguf_file *g = NULL;
    int rc = gguf_open(path, &g, err, sizeof err);
    CHECKF(rc == 0, "%s", err);
    if (rc)
        return -1;
    struct gguf_writer *w = gguf_writer_create();
    for (uint64_t i = 0; i < g->n_kv; i++) {
        char key[512];
        snprintf(key, sizeof key, "%.*s", (int)g->kv[i].key.len, g->kv[i].key.ptr);
        CHECKF(gguf_writer_set_value(w, key, &g->kv[i].value) == 0, "%s: %s", name, key);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct gguf_tensor *t = &g->tensors[i];
        char tn[512];
        snprintf(tn, sizeof tn, "%.*s", (int)t->name.len, t->name.ptr);
        rc = gguf_writer_add_tensor(w, tn, t->type, t->n_dims, t->ne, t->data, t->nbytes, err,
                                    sizeof err);
        CHECKF(rc == 0, "%s: %s", name, err);
    }
    char out[1024];
    snprintf(out, sizeof out, "%s", tmp_path("copy.gguf"));
    rc = gguf_writer_write(w, out, err, sizeof err);
    CHECKF(rc == 0, "%s: %s", name, err);
    gguf_writer_free(w);
    struct gguf_file *c = NULL;
    rc = gguf_open(out, &c, err, sizeof err);
    CHECKF(rc == 0, "%s: %s", name, err);
    if (c) {
        CHECK(c->n_kv == g->n_kv && c->n_tensors == g->n_tensors);
        CHECK(c->alignment == g->alignment);
        int kv_bad = 0, t_bad = 0;
        for (uint64_t i = 0; i < c->n_kv && i < g->n_kv; i++)
            if (c->kv[i].key.len != g->kv[i].key.len ||
                memcmp(c->kv[i].key.ptr, g->kv[i].key.ptr, c->kv[i].key.len) ||
                !value_equal(&c->kv[i].value, &g->kv[i].value))
                kv_bad++;
        for (uint64_t i = 0; i < c->n_tensors && i < g->n_tensors; i++) {
            const struct gguf_tensor *a = &g->tensors[i], *b = &c->tensors[i];
            if (a->name.len != b->name.len || memcmp(a->name.ptr, b->name.ptr, a->name.len) ||
                a->type != b->type || a->n_dims != b->n_dims ||
                memcmp(a->ne, b->ne, sizeof a->ne) || a->nbytes != b->nbytes ||
                memcmp(a->data, b->data, a->nbytes))
                t_bad++;
        }
        CHECKF(kv_bad == 0 && t_bad == 0, "%s: %d kv and %d tensors differ", name, kv_bad,
               t_bad);
        *identical = c->size == g->size && !memcmp(c->base, g->base, g->size);
        if (g->version != 3)
            *identical = 0;
        gguf_close(c);
    }
    printf("  %-34s v%u %4llu kv %4llu tensors %9zu bytes: written back %s\n", name,
           g->version, (unsigned long long)g->n_kv, (unsigned long long)g->n_tensors, g->size,
           *identical ? "byte-identical" : "equal (bytes differ)");
    gguf_close(g);
    unlink(out);
    return 0;
}

static int test_reference_files(void)
{
    const char *ref = test_reference_dir();
    if (!ref)
        return 0;
    char refdir[4096];
    snprintf(refdir, sizeof refdir, "%s", ref);
    const char *subs[] = {"models", "vocab"};
    int files = 0, identical_count = 0;
    for (int s = 0; s < 2; s++) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/%s", refdir, subs[s]);
        DIR *d = opendir(dir);
        CHECKF(d != NULL, "cannot list %s", dir);
        if (!d)
            continue;
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t n = strlen(e->d_name);
            if (n < 5 || strcmp(e->d_name + n - 5, ".gguf"))
                continue;
            char path[4500];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            int identical = 0;
            if (round_trip_file(path, e->d_name, &identical) == 0) {
                files++;
                identical_count += identical;
            }
        }
        closedir(d);
    }
    printf("reference files: %d read and written back, %d byte-identical\n", files,
           identical_count);
    CHECK(files >= 20);
    return 1;
}

/* ---- seeds for the fuzzer ---- */

static int write_seeds(const char *dir)
{
    struct rng r;
    rng_seed(&r, 1);
    sample_fill(&r);
    char err[256], path[1024];
    int n = 0;
    struct {
        uint32_t align;
        bool tensors;
    } cases[] = {{0, true}, {64, true}, {0, false}};
    for (size_t c = 0; c < 3; c++) {
        struct gguf_writer *w = sample_writer(&r, cases[c].align, cases[c].tensors);
        snprintf(path, sizeof path, "%s/writer-%zu.gguf", dir, c);
        if (gguf_writer_write(w, path, err, sizeof err) == 0)
            n++;
        else
            fprintf(stderr, "%s\n", err);
        gguf_writer_free(w);
    }
    for (uint32_t v = 2; v <= 3; v++) {
        struct buf b = {0};
        small_valid(&b, v);
        snprintf(path, sizeof path, "%s/small-v%u.gguf", dir, v);
        FILE *f = fopen(path, "wb");
        if (f && fwrite(b.p, 1, b.n, f) == b.n)
            n++;
        if (f)
            fclose(f);
        free(b.p);
    }
    printf("wrote %d seed files into %s\n", n, dir);
    return n == 5 ? 0 : 1;
}

int main(void)
{
    const char *seeds = getenv("PAGODA_FUZZ_SEEDS");
    if (seeds && *seeds)
        return write_seeds(seeds);
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/pagoda-gguf-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_replace_in_place();
    test_valid_hand_made();
    test_truncation();
    test_corrupt();
    int ran_ref = test_reference_files();
    for (size_t i = 0; i < N_SAMPLE; i++)
        free(sample_tensors[i].data);
    rmdir(tmpdir);
    if (!ran_ref)
        printf("reference data absent: reference round trips skipped\n");
    TEST_END();
}
