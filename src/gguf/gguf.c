/*
 * gguf.c: the GGUF reader and writer. The reader treats the file as hostile:
 * every count, length, offset and shape is checked against the bytes that are
 * left before it is used, with overflow-safe arithmetic, and every allocation
 * is bounded by the size of the file. Parsed values live in one arena per file
 * (freed by gguf_close); strings and tensor data point into the mapping.
 * The writer keeps copies of metadata in its own arena and writes version 3.
 */
#include "gguf/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "ops/types.h"

/* Deeper nesting than this is certainly hostile; real files use depth 1. */
#define GGUF_MAX_DEPTH 8

/* Smallest encodings, used to reject counts that cannot fit in what is left. */
#define GGUF_MIN_KV_BYTES 13     /* key length + empty key + type + one byte value */
#define GGUF_MIN_TENSOR_BYTES 32 /* name length + n_dims + one dim + type + offset */
#define GGUF_MIN_ARRAY_BYTES 12  /* element type + count */
#define GGUF_MIN_STRING_BYTES 8  /* length */

/* ------------------------------------------------------------------------ */
/* arena: many small allocations, one free                                   */

struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

struct arena {
    struct arena_block *head; /* every block, newest first */
    struct arena_block *cur;  /* the block small allocations come from */
};

#define ARENA_BLOCK_BYTES (64u * 1024u)

static void *arena_alloc(struct arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    if (a->cur && a->cur->cap - a->cur->used >= n) {
        void *p = a->cur->data + a->cur->used;
        a->cur->used += n;
        return p;
    }
    size_t cap = n > ARENA_BLOCK_BYTES ? n : ARENA_BLOCK_BYTES;
    if (cap > SIZE_MAX - sizeof(struct arena_block))
        return NULL;
    struct arena_block *b = malloc(sizeof *b + cap);
    if (!b)
        return NULL;
    b->next = a->head;
    b->used = n;
    b->cap = cap;
    a->head = b;
    /* A big allocation gets a block of its own; keep filling the current one. */
    if (cap == ARENA_BLOCK_BYTES || !a->cur)
        a->cur = b;
    return b->data;
}

/* n elements of size sz, or NULL on overflow or exhaustion. */
static void *arena_array(struct arena *a, uint64_t n, size_t sz)
{
    if (sz && n > SIZE_MAX / sz)
        return NULL;
    return arena_alloc(a, (size_t)n * sz);
}

static void arena_free(struct arena *a)
{
    struct arena_block *b = a->head;
    while (b) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = a->cur = NULL;
}

/* ------------------------------------------------------------------------ */
/* names and sizes                                                           */

const char *gguf_vtype_name(enum gguf_vtype t)
{
    static const char *const names[GGUF_TYPE_COUNT] = {
        "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool",
        "str", "arr", "u64", "i64", "f64",
    };
    if ((unsigned)t >= GGUF_TYPE_COUNT)
        return "unknown";
    return names[t];
}

size_t gguf_vtype_size(enum gguf_vtype t)
{
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

bool gguf_str_eq(struct gguf_str s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}

static uint64_t hash_bytes(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}

/* A name from the file made safe to print in one line: at most 64 bytes,
 * anything outside printable ASCII shown as '?'. */
static const char *printable(struct gguf_str s, char *buf, size_t cap)
{
    size_t n = s.len < 64 ? (size_t)s.len : 64;
    if (n > cap - 4)
        n = cap - 4;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        buf[i] = (c >= 32 && c < 127 && c != '\'') ? (char)c : '?';
    }
    size_t end = n;
    if (s.len > n) {
        memcpy(buf + n, "...", 3);
        end += 3;
    }
    buf[end] = '\0';
    return buf;
}

/* ------------------------------------------------------------------------ */
/* reader                                                                    */

/* Open-addressing index of names (keys or tensor names): slot holds idx + 1. */
struct name_index {
    size_t *slots;
    size_t mask;
};

struct gguf_private {
    struct gguf_file file; /* first, so a gguf_file * is this struct */
    struct arena arena;
    struct name_index kv_index, tensor_index;
};

struct reader {
    const uint8_t *base;
    size_t size;
    size_t pos;
    struct arena *arena;
    char *err;
    size_t errlen;
    /* What is being read, for messages. */
    const char *what; /* "metadata key" or "tensor" or NULL (header) */
    uint64_t index;
    struct gguf_str name;
};

static int rd_fail(struct reader *r, int code, const char *fmt, ...) PG_PRINTF(3, 4);

static int rd_fail(struct reader *r, int code, const char *fmt, ...)
{
    if (!r->err || r->errlen == 0)
        return code;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->what && r->name.ptr) {
        char nb[80];
        err_set(r->err, r->errlen, code, "%s %llu ('%s'): %s", r->what,
                (unsigned long long)r->index, printable(r->name, nb, sizeof nb), msg);
    } else if (r->what) {
        err_set(r->err, r->errlen, code, "%s %llu: %s", r->what,
                (unsigned long long)r->index, msg);
    } else {
        err_set(r->err, r->errlen, code, "%s", msg);
    }
    return code;
}

static int rd_need(struct reader *r, size_t n, const char *what)
{
    if (r->size - r->pos < n)
        return rd_fail(r, PAGODA_EFORMAT,
                       "%s (%zu bytes) at byte %zu runs past the end of the file (size %zu)",
                       what, n, r->pos, r->size);
    return 0;
}

static uint64_t le_get(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int rd_u32(struct reader *r, uint32_t *v, const char *what)
{
    int rc = rd_need(r, 4, what);
    if (rc)
        return rc;
    *v = (uint32_t)le_get(r->base + r->pos, 4);
    r->pos += 4;
    return 0;
}

static int rd_u64(struct reader *r, uint64_t *v, const char *what)
{
    int rc = rd_need(r, 8, what);
    if (rc)
        return rc;
    *v = le_get(r->base + r->pos, 8);
    r->pos += 8;
    return 0;
}

static int rd_str(struct reader *r, struct gguf_str *s, const char *what)
{
    size_t at = r->pos;
    uint64_t len;
    int rc = rd_u64(r, &len, what);
    if (rc)
        return rc;
    if (len > r->size - r->pos)
        return rd_fail(r, PAGODA_EFORMAT,
                       "%s length %llu at byte %zu runs past the end of the file (size %zu)",
                       what, (unsigned long long)len, at, r->size);
    s->len = len;
    s->ptr = (const char *)r->base + r->pos;
    r->pos += (size_t)len;
    return 0;
}

/* Rejects a count of elements whose smallest encoding cannot fit in what is
 * left, before anything is allocated for it. */
static int rd_count_fits(struct reader *r, uint64_t n, size_t min_bytes, size_t at,
                         const char *what)
{
    if (n > (r->size - r->pos) / min_bytes)
        return rd_fail(r, PAGODA_EFORMAT,
                       "%s %llu at byte %zu cannot fit in the %zu bytes left in the file",
                       what, (unsigned long long)n, at, r->size - r->pos);
    return 0;
}

static int rd_value(struct reader *r, enum gguf_vtype type, struct gguf_value *out, int depth);

static int rd_array(struct reader *r, struct gguf_value *out, int depth)
{
    if (depth > GGUF_MAX_DEPTH)
        return rd_fail(r, PAGODA_EFORMAT, "arrays nested deeper than %d at byte %zu",
                       GGUF_MAX_DEPTH, r->pos);
    uint32_t et;
    size_t at = r->pos;
    int rc = rd_u32(r, &et, "array element type");
    if (rc)
        return rc;
    if (et >= GGUF_TYPE_COUNT)
        return rd_fail(r, PAGODA_EFORMAT, "unknown array element type %u at byte %zu", et, at);
    at = r->pos;
    uint64_t n;
    if ((rc = rd_u64(r, &n, "array length")))
        return rc;
    out->v.arr.type = (enum gguf_vtype)et;
    out->v.arr.n = n;
    out->v.arr.data = NULL;
    out->v.arr.items = NULL;
    size_t esz = gguf_vtype_size((enum gguf_vtype)et);
    if (esz) {
        if (n > (r->size - r->pos) / esz)
            return rd_fail(r, PAGODA_EFORMAT,
                           "array of %llu %s values at byte %zu runs past the end of the "
                           "file (size %zu)",
                           (unsigned long long)n, gguf_vtype_name((enum gguf_vtype)et), at,
                           r->size);
        const uint8_t *p = r->base + r->pos;
        if (et == GGUF_TYPE_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (p[i] > 1)
                    return rd_fail(r, PAGODA_EFORMAT, "bool array item %llu at byte %zu is %u",
                                   (unsigned long long)i, r->pos + (size_t)i, p[i]);
        out->v.arr.data = p;
        r->pos += (size_t)n * esz;
        return 0;
    }
    size_t min = et == GGUF_TYPE_STRING ? GGUF_MIN_STRING_BYTES : GGUF_MIN_ARRAY_BYTES;
    if ((rc = rd_count_fits(r, n, min, at, "array length")))
        return rc;
    if (n == 0)
        return 0;
    struct gguf_value *items = arena_array(r->arena, n, sizeof *items);
    if (!items)
        return rd_fail(r, PAGODA_ENOMEM, "out of memory for an array of %llu items",
                       (unsigned long long)n);
    out->v.arr.items = items;
    for (uint64_t i = 0; i < n; i++)
        if ((rc = rd_value(r, (enum gguf_vtype)et, &items[i], depth + 1)))
            return rc;
    return 0;
}

static int rd_value(struct reader *r, enum gguf_vtype type, struct gguf_value *out, int depth)
{
    memset(out, 0, sizeof *out);
    out->type = type;
    if (type == GGUF_TYPE_STRING)
        return rd_str(r, &out->v.str, "string");
    if (type == GGUF_TYPE_ARRAY)
        return rd_array(r, out, depth);
    size_t sz = gguf_vtype_size(type);
    size_t at = r->pos;
    int rc = rd_need(r, sz, gguf_vtype_name(type));
    if (rc)
        return rc;
    uint64_t raw = le_get(r->base + r->pos, sz);
    r->pos += sz;
    switch (type) {
    case GGUF_TYPE_UINT8: out->v.u8 = (uint8_t)raw; break;
    case GGUF_TYPE_INT8: out->v.i8 = (int8_t)(uint8_t)raw; break;
    case GGUF_TYPE_UINT16: out->v.u16 = (uint16_t)raw; break;
    case GGUF_TYPE_INT16: out->v.i16 = (int16_t)(uint16_t)raw; break;
    case GGUF_TYPE_UINT32: out->v.u32 = (uint32_t)raw; break;
    case GGUF_TYPE_INT32: out->v.i32 = (int32_t)(uint32_t)raw; break;
    case GGUF_TYPE_UINT64: out->v.u64 = raw; break;
    case GGUF_TYPE_INT64: out->v.i64 = (int64_t)raw; break;
    case GGUF_TYPE_FLOAT32: {
        uint32_t u = (uint32_t)raw;
        memcpy(&out->v.f32, &u, 4);
        break;
    }
    case GGUF_TYPE_FLOAT64: memcpy(&out->v.f64, &raw, 8); break;
    case GGUF_TYPE_BOOL:
        if (raw > 1)
            return rd_fail(r, PAGODA_EFORMAT, "bool value %u at byte %zu is neither 0 nor 1",
                           (unsigned)raw, at);
        out->v.b = raw != 0;
        break;
    default:
        return rd_fail(r, PAGODA_EFORMAT, "unknown value type %d at byte %zu", (int)type, at);
    }
    return 0;
}

static int index_init(struct arena *a, struct name_index *ix, uint64_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    ix->slots = arena_array(a, cap, sizeof *ix->slots);
    if (!ix->slots)
        return PAGODA_ENOMEM;
    memset(ix->slots, 0, cap * sizeof *ix->slots);
    ix->mask = cap - 1;
    return 0;
}

/* Looks name up among names[] (stride bytes apart, each starting with a
 * gguf_str). Returns the index or -1; with insert_idx >= 0, inserts when absent. */
static long long index_find(const struct name_index *ix, const void *names, size_t stride,
                            const char *p, size_t n, long long insert_idx)
{
    if (!ix->slots)
        return -1;
    size_t h = (size_t)hash_bytes(p, n) & ix->mask;
    for (;;) {
        size_t s = ix->slots[h];
        if (s == 0) {
            if (insert_idx >= 0)
                ix->slots[h] = (size_t)insert_idx + 1;
            return -1;
        }
        const struct gguf_str *k =
            (const struct gguf_str *)((const char *)names + (s - 1) * stride);
        if (k->len == n && (n == 0 || memcmp(k->ptr, p, n) == 0))
            return (long long)(s - 1);
        h = (h + 1) & ix->mask;
    }
}

static int rd_header(struct reader *r, struct gguf_file *g)
{
    uint32_t version;
    int rc;
    if (r->size < 4 || (le_get(r->base, 4) != GGUF_MAGIC))
        return rd_fail(r, PAGODA_EFORMAT, "not a GGUF file (no \"GGUF\" magic at byte 0)");
    r->pos = 4;
    if ((rc = rd_u32(r, &version, "version")))
        return rc;
    if (version == 1)
        return rd_fail(r, PAGODA_EUNSUPPORTED,
                       "GGUF version 1 is not supported (only versions 2 and 3); "
                       "convert the file again with a current tool");
    if (version != 2 && version != 3) {
        if ((version & 0xffff) == 0 && (version >> 24) >= 1 && (version >> 24) <= 3)
            return rd_fail(r, PAGODA_EUNSUPPORTED,
                           "big-endian GGUF files are not supported (version field %#x)",
                           version);
        return rd_fail(r, PAGODA_EUNSUPPORTED,
                       "GGUF version %u is not supported (only versions 2 and 3)", version);
    }
    g->version = version;
    uint64_t n_tensors, n_kv;
    if ((rc = rd_u64(r, &n_tensors, "tensor count")))
        return rc;
    if ((rc = rd_u64(r, &n_kv, "metadata count")))
        return rc;
    if (n_kv > (r->size - r->pos) / GGUF_MIN_KV_BYTES)
        return rd_fail(r, PAGODA_EFORMAT,
                       "metadata count %llu at byte 16 cannot fit in the %zu bytes left "
                       "in the file",
                       (unsigned long long)n_kv, r->size - r->pos);
    size_t left = r->size - r->pos - (size_t)n_kv * GGUF_MIN_KV_BYTES;
    if (n_tensors > left / GGUF_MIN_TENSOR_BYTES)
        return rd_fail(r, PAGODA_EFORMAT,
                       "tensor count %llu at byte 8 cannot fit in the %zu bytes left in "
                       "the file",
                       (unsigned long long)n_tensors, r->size - r->pos);
    g->n_kv = n_kv;
    g->n_tensors = n_tensors;
    return 0;
}

static int rd_kvs(struct reader *r, struct gguf_private *pv)
{
    struct gguf_file *g = &pv->file;
    int rc;
    g->kv = arena_array(r->arena, g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    if (!g->kv || index_init(r->arena, &pv->kv_index, g->n_kv))
        return rd_fail(r, PAGODA_ENOMEM, "out of memory for %llu metadata entries",
                       (unsigned long long)g->n_kv);
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    r->what = "metadata key";
    for (uint64_t i = 0; i < g->n_kv; i++) {
        struct gguf_kv *kv = &g->kv[i];
        r->index = i;
        r->name.ptr = NULL;
        if ((rc = rd_str(r, &kv->key, "key")))
            return rc;
        r->name = kv->key;
        if (index_find(&pv->kv_index, g->kv, sizeof *g->kv, kv->key.ptr, (size_t)kv->key.len,
                       (long long)i) >= 0)
            return rd_fail(r, PAGODA_EFORMAT, "duplicate key at byte %zu",
                           r->pos - (size_t)kv->key.len - 8);
        uint32_t t;
        size_t at = r->pos;
        if ((rc = rd_u32(r, &t, "value type")))
            return rc;
        if (t >= GGUF_TYPE_COUNT)
            return rd_fail(r, PAGODA_EFORMAT, "unknown value type %u at byte %zu", t, at);
        if ((rc = rd_value(r, (enum gguf_vtype)t, &kv->value, 1)))
            return rc;
        if (gguf_str_eq(kv->key, "general.alignment")) {
            if (t != GGUF_TYPE_UINT32)
                return rd_fail(r, PAGODA_EFORMAT, "general.alignment has type %s, not u32",
                               gguf_vtype_name((enum gguf_vtype)t));
            uint32_t a = kv->value.v.u32;
            if (a == 0 || (a & (a - 1)) != 0)
                return rd_fail(r, PAGODA_EFORMAT,
                               "general.alignment %u is not a power of two", a);
            g->alignment = a;
        }
    }
    r->what = NULL;
    return 0;
}

static int rd_tensor_infos(struct reader *r, struct gguf_private *pv)
{
    struct gguf_file *g = &pv->file;
    int rc;
    g->tensors = arena_array(r->arena, g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    if (!g->tensors || index_init(r->arena, &pv->tensor_index, g->n_tensors))
        return rd_fail(r, PAGODA_ENOMEM, "out of memory for %llu tensors",
                       (unsigned long long)g->n_tensors);
    r->what = "tensor";
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        struct gguf_tensor *t = &g->tensors[i];
        memset(t, 0, sizeof *t);
        r->index = i;
        r->name.ptr = NULL;
        if ((rc = rd_str(r, &t->name, "name")))
            return rc;
        r->name = t->name;
        if (index_find(&pv->tensor_index, g->tensors, sizeof *g->tensors, t->name.ptr,
                       (size_t)t->name.len, (long long)i) >= 0)
            return rd_fail(r, PAGODA_EFORMAT, "duplicate tensor name at byte %zu",
                           r->pos - (size_t)t->name.len - 8);
        uint32_t n_dims;
        size_t at = r->pos;
        if ((rc = rd_u32(r, &n_dims, "dimension count")))
            return rc;
        if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
            return rd_fail(r, PAGODA_EFORMAT, "dimension count %u at byte %zu is not in 1..%d",
                           n_dims, at, GGUF_MAX_DIMS);
        t->n_dims = (int)n_dims;
        for (int d = 0; d < GGUF_MAX_DIMS; d++)
            t->ne[d] = 1;
        for (uint32_t d = 0; d < n_dims; d++) {
            uint64_t ne;
            at = r->pos;
            if ((rc = rd_u64(r, &ne, "dimension")))
                return rc;
            if (ne > (uint64_t)INT64_MAX)
                return rd_fail(r, PAGODA_EFORMAT, "dimension %u at byte %zu is negative", d,
                               at);
            t->ne[d] = (int64_t)ne;
        }
        uint32_t type;
        at = r->pos;
        if ((rc = rd_u32(r, &type, "type")))
            return rc;
        if (type > (uint32_t)INT32_MAX || !type_traits_get((int)type))
            return rd_fail(r, PAGODA_EUNSUPPORTED, "unsupported tensor type %u at byte %zu",
                           type, at);
        t->type = (int)type;
        if ((rc = rd_u64(r, &t->offset, "data offset")))
            return rc;
    }
    r->what = NULL;
    return 0;
}

/* Bytes of a tensor's data, or a negative status when its shape is not
 * representable or not a whole number of blocks. */
static int tensor_nbytes(int type, const int64_t ne[GGUF_MAX_DIMS], size_t *out, char *why,
                         size_t whylen)
{
    const struct type_traits *tt = type_traits_get(type);
    if (!tt)
        return err_set(why, whylen, PAGODA_EUNSUPPORTED, "unsupported type %d", type);
    int64_t nel = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        if (ne[d] < 0)
            return err_set(why, whylen, PAGODA_EFORMAT, "dimension %d is negative", d);
        if (ne[d] != 0 && nel > INT64_MAX / ne[d])
            return err_set(why, whylen, PAGODA_EFORMAT,
                           "shape [%lld, %lld, %lld, %lld] has more than 2^63 elements",
                           (long long)ne[0], (long long)ne[1], (long long)ne[2],
                           (long long)ne[3]);
        nel *= ne[d];
    }
    if (ne[0] % tt->block_size != 0)
        return err_set(why, whylen, PAGODA_EFORMAT,
                       "row length %lld is not a multiple of the %s block size %d",
                       (long long)ne[0], tt->name, tt->block_size);
    uint64_t blocks = (uint64_t)(ne[0] / tt->block_size);
    if (tt->type_size && blocks > SIZE_MAX / tt->type_size)
        return err_set(why, whylen, PAGODA_EFORMAT, "row of %lld elements is too large",
                       (long long)ne[0]);
    size_t bytes = ne[0] ? type_row_size(type, ne[0]) : 0;
    if (ne[0] && bytes == 0)
        return err_set(why, whylen, PAGODA_EFORMAT, "row of %lld %s elements has no size",
                       (long long)ne[0], tt->name);
    for (int d = 1; d < GGUF_MAX_DIMS; d++) {
        if (ne[d] != 0 && bytes > SIZE_MAX / (uint64_t)ne[d])
            return err_set(why, whylen, PAGODA_EFORMAT, "data size overflows");
        bytes *= (size_t)ne[d];
    }
    *out = bytes;
    return 0;
}

static int rd_tensor_data(struct reader *r, struct gguf_file *g)
{
    /* The data section starts at the next multiple of the alignment. A file
     * without tensors may end before that point. */
    size_t pos = r->pos;
    size_t pad = (g->alignment - pos % g->alignment) % g->alignment;
    if (pad > r->size - pos) {
        if (g->n_tensors > 0)
            return rd_fail(r, PAGODA_EFORMAT,
                           "tensor data section (aligned to %zu) would start at byte %zu, "
                           "past the end of the file (size %zu)",
                           g->alignment, pos + pad, r->size);
        pad = r->size - pos;
    }
    g->data_offset = pos + pad;
    size_t data_size = r->size - g->data_offset;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        struct gguf_tensor *t = &g->tensors[i];
        char why[200], nb[80];
        int rc = tensor_nbytes(t->type, t->ne, &t->nbytes, why, sizeof why);
        if (rc)
            return err_set(r->err, r->errlen, rc, "tensor %llu ('%s'): %s",
                           (unsigned long long)i, printable(t->name, nb, sizeof nb), why);
        if (t->offset % g->alignment != 0)
            return err_set(r->err, r->errlen, PAGODA_EFORMAT,
                           "tensor %llu ('%s'): data offset %llu is not a multiple of the "
                           "alignment %zu",
                           (unsigned long long)i, printable(t->name, nb, sizeof nb),
                           (unsigned long long)t->offset, g->alignment);
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return err_set(r->err, r->errlen, PAGODA_EFORMAT,
                           "tensor '%s' data [offset %llu, %zu bytes) runs past the end of "
                           "the file (size %zu, data section at byte %zu)",
                           printable(t->name, nb, sizeof nb), (unsigned long long)t->offset,
                           t->nbytes, r->size, g->data_offset);
        t->data = r->base + g->data_offset + t->offset;
    }
    return 0;
}

static int parse(const void *data, size_t size, struct gguf_file **out, char *err,
                 size_t errlen)
{
    *out = NULL;
    if (!data && size)
        return err_set(err, errlen, PAGODA_EINVAL, "no data");
    struct gguf_private *pv = calloc(1, sizeof *pv);
    if (!pv)
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    struct gguf_file *g = &pv->file;
    g->base = data;
    g->size = size;
    g->arena = pv;
    struct reader r = {.base = data, .size = size, .arena = &pv->arena, .err = err,
                       .errlen = errlen};
    int rc = rd_header(&r, g);
    if (!rc)
        rc = rd_kvs(&r, pv);
    if (!rc)
        rc = rd_tensor_infos(&r, pv);
    if (!rc)
        rc = rd_tensor_data(&r, g);
    if (rc) {
        arena_free(&pv->arena);
        free(pv);
        return rc;
    }
    *out = g;
    return 0;
}

int gguf_open_memory(const void *data, size_t size, struct gguf_file **out, char *err,
                     size_t errlen)
{
    if (!out)
        return err_set(err, errlen, PAGODA_EINVAL, "no result pointer");
    return parse(data, size, out, err, errlen);
}

int gguf_open(const char *path, struct gguf_file **out, char *err, size_t errlen)
{
    if (!out || !path)
        return err_set(err, errlen, PAGODA_EINVAL, "no path or result pointer");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, errlen, PAGODA_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return err_set(err, errlen, PAGODA_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(err, errlen, PAGODA_EIO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return err_set(err, errlen, PAGODA_EFORMAT, "%s: not a GGUF file (it is empty)", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return err_set(err, errlen, PAGODA_ERANGE, "%s: too large to map", path);
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED)
        return err_set(err, errlen, PAGODA_EIO, "%s: cannot map: %s", path, strerror(e));
    int rc = parse(map, size, out, err, errlen);
    if (rc) {
        munmap(map, size);
        err_prefix(err, errlen, "%s", path);
        return rc;
    }
    (*out)->owns_map = 1;
    return 0;
}

void gguf_close(struct gguf_file *g)
{
    if (!g)
        return;
    struct gguf_private *pv = g->arena;
    if (g->owns_map && g->base)
        munmap((void *)g->base, g->size);
    arena_free(&pv->arena);
    free(pv);
}

/* ------------------------------------------------------------------------ */
/* lookups                                                                   */

const struct gguf_kv *gguf_find_kv(const struct gguf_file *g, const char *key)
{
    if (!g || !key)
        return NULL;
    const struct gguf_private *pv = g->arena;
    long long i = index_find(&pv->kv_index, g->kv, sizeof *g->kv, key, strlen(key), -1);
    return i < 0 ? NULL : &g->kv[i];
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *g, const char *name)
{
    if (!g || !name)
        return NULL;
    const struct gguf_private *pv = g->arena;
    long long i =
        index_find(&pv->tensor_index, g->tensors, sizeof *g->tensors, name, strlen(name), -1);
    return i < 0 ? NULL : &g->tensors[i];
}

bool gguf_get_int(const struct gguf_file *g, const char *key, int64_t *out)
{
    const struct gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv)
        return false;
    const struct gguf_value *v = &kv->value;
    int64_t x;
    switch (v->type) {
    case GGUF_TYPE_UINT8: x = v->v.u8; break;
    case GGUF_TYPE_INT8: x = v->v.i8; break;
    case GGUF_TYPE_UINT16: x = v->v.u16; break;
    case GGUF_TYPE_INT16: x = v->v.i16; break;
    case GGUF_TYPE_UINT32: x = v->v.u32; break;
    case GGUF_TYPE_INT32: x = v->v.i32; break;
    case GGUF_TYPE_INT64: x = v->v.i64; break;
    case GGUF_TYPE_BOOL: x = v->v.b; break;
    case GGUF_TYPE_UINT64:
        if (v->v.u64 > (uint64_t)INT64_MAX)
            return false;
        x = (int64_t)v->v.u64;
        break;
    default: return false;
    }
    if (out)
        *out = x;
    return true;
}

bool gguf_get_float(const struct gguf_file *g, const char *key, double *out)
{
    const struct gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv)
        return false;
    double x;
    switch (kv->value.type) {
    case GGUF_TYPE_FLOAT32: x = kv->value.v.f32; break;
    case GGUF_TYPE_FLOAT64: x = kv->value.v.f64; break;
    case GGUF_TYPE_UINT64: x = (double)kv->value.v.u64; break;
    case GGUF_TYPE_BOOL: return false;
    default: {
        int64_t i;
        if (!gguf_get_int(g, key, &i))
            return false;
        x = (double)i;
    }
    }
    if (out)
        *out = x;
    return true;
}

bool gguf_get_bool(const struct gguf_file *g, const char *key, bool *out)
{
    const struct gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv || kv->value.type != GGUF_TYPE_BOOL)
        return false;
    if (out)
        *out = kv->value.v.b;
    return true;
}

bool gguf_get_str(const struct gguf_file *g, const char *key, struct gguf_str *out)
{
    const struct gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv || kv->value.type != GGUF_TYPE_STRING)
        return false;
    if (out)
        *out = kv->value.v.str;
    return true;
}

const struct gguf_value *gguf_get_arr(const struct gguf_file *g, const char *key)
{
    const struct gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv || kv->value.type != GGUF_TYPE_ARRAY)
        return NULL;
    return &kv->value;
}

/* ------------------------------------------------------------------------ */
/* writer                                                                    */

struct writer_tensor {
    struct gguf_str name;
    int type;
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    const void *data;
    size_t nbytes;
};

struct gguf_writer {
    struct arena arena; /* keys, names and value copies */
    struct gguf_kv *kv; /* malloc'd, grows */
    size_t n_kv, cap_kv;
    struct writer_tensor *tensors; /* malloc'd, grows */
    size_t n_tensors, cap_tensors;
};

struct gguf_writer *gguf_writer_create(void)
{
    return calloc(1, sizeof(struct gguf_writer));
}

void gguf_writer_free(struct gguf_writer *w)
{
    if (!w)
        return;
    arena_free(&w->arena);
    free(w->kv);
    free(w->tensors);
    free(w);
}

static int copy_str(struct arena *a, struct gguf_str *dst, const char *p, uint64_t n)
{
    if (n >= SIZE_MAX)
        return PAGODA_ENOMEM;
    char *c = arena_alloc(a, (size_t)n + 1);
    if (!c)
        return PAGODA_ENOMEM;
    if (n)
        memcpy(c, p, (size_t)n);
    c[n] = '\0';
    dst->ptr = c;
    dst->len = n;
    return 0;
}

/* Checks a caller's value is well formed (types known, pointers present,
 * nesting bounded) before it is copied. */
static int value_check(const struct gguf_value *v, int depth)
{
    if ((unsigned)v->type >= GGUF_TYPE_COUNT)
        return PAGODA_EINVAL;
    if (v->type == GGUF_TYPE_STRING)
        return v->v.str.len && !v->v.str.ptr ? PAGODA_EINVAL : 0;
    if (v->type != GGUF_TYPE_ARRAY)
        return 0;
    if (depth > GGUF_MAX_DEPTH || (unsigned)v->v.arr.type >= GGUF_TYPE_COUNT)
        return PAGODA_EINVAL;
    size_t esz = gguf_vtype_size(v->v.arr.type);
    if (esz) {
        if (v->v.arr.n && !v->v.arr.data)
            return PAGODA_EINVAL;
        if (v->v.arr.n > SIZE_MAX / esz)
            return PAGODA_ERANGE;
        return 0;
    }
    if (v->v.arr.n && !v->v.arr.items)
        return PAGODA_EINVAL;
    for (uint64_t i = 0; i < v->v.arr.n; i++) {
        if (v->v.arr.items[i].type != v->v.arr.type)
            return PAGODA_EINVAL;
        int rc = value_check(&v->v.arr.items[i], depth + 1);
        if (rc)
            return rc;
    }
    return 0;
}

static int value_copy(struct arena *a, struct gguf_value *dst, const struct gguf_value *src)
{
    *dst = *src;
    if (src->type == GGUF_TYPE_STRING)
        return copy_str(a, &dst->v.str, src->v.str.ptr, src->v.str.len);
    if (src->type != GGUF_TYPE_ARRAY)
        return 0;
    dst->v.arr.data = NULL;
    dst->v.arr.items = NULL;
    size_t esz = gguf_vtype_size(src->v.arr.type);
    if (esz) {
        size_t bytes = (size_t)src->v.arr.n * esz;
        void *p = arena_alloc(a, bytes);
        if (!p)
            return PAGODA_ENOMEM;
        if (bytes)
            memcpy(p, src->v.arr.data, bytes);
        dst->v.arr.data = p;
        return 0;
    }
    if (src->v.arr.n == 0)
        return 0;
    struct gguf_value *items = arena_array(a, src->v.arr.n, sizeof *items);
    if (!items)
        return PAGODA_ENOMEM;
    for (uint64_t i = 0; i < src->v.arr.n; i++) {
        int rc = value_copy(a, &items[i], &src->v.arr.items[i]);
        if (rc)
            return rc;
    }
    dst->v.arr.items = items;
    return 0;
}

int gguf_writer_set_value(struct gguf_writer *w, const char *key, const struct gguf_value *v)
{
    if (!w || !key || !v)
        return PAGODA_EINVAL;
    int rc = value_check(v, 1);
    if (rc)
        return rc;
    struct gguf_value copy;
    if ((rc = value_copy(&w->arena, &copy, v)))
        return rc;
    for (size_t i = 0; i < w->n_kv; i++)
        if (gguf_str_eq(w->kv[i].key, key)) {
            w->kv[i].value = copy;
            return 0;
        }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? 2 * w->cap_kv : 32;
        struct gguf_kv *kv = realloc(w->kv, cap * sizeof *kv);
        if (!kv)
            return PAGODA_ENOMEM;
        w->kv = kv;
        w->cap_kv = cap;
    }
    struct gguf_kv *kv = &w->kv[w->n_kv];
    if ((rc = copy_str(&w->arena, &kv->key, key, strlen(key))))
        return rc;
    kv->value = copy;
    w->n_kv++;
    return 0;
}

int gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v)
{
    struct gguf_value x = {.type = GGUF_TYPE_UINT32, .v.u32 = v};
    return gguf_writer_set_value(w, key, &x);
}

int gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v)
{
    struct gguf_value x = {.type = GGUF_TYPE_INT32, .v.i32 = v};
    return gguf_writer_set_value(w, key, &x);
}

int gguf_writer_set_u64(struct gguf_writer *w, const char *key, uint64_t v)
{
    struct gguf_value x = {.type = GGUF_TYPE_UINT64, .v.u64 = v};
    return gguf_writer_set_value(w, key, &x);
}

int gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v)
{
    struct gguf_value x = {.type = GGUF_TYPE_FLOAT32, .v.f32 = v};
    return gguf_writer_set_value(w, key, &x);
}

int gguf_writer_set_bool(struct gguf_writer *w, const char *key, bool v)
{
    struct gguf_value x = {.type = GGUF_TYPE_BOOL, .v.b = v};
    return gguf_writer_set_value(w, key, &x);
}

int gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *v)
{
    if (!v)
        return PAGODA_EINVAL;
    struct gguf_value x = {.type = GGUF_TYPE_STRING, .v.str = {strlen(v), v}};
    return gguf_writer_set_value(w, key, &x);
}

int gguf_writer_set_arr(struct gguf_writer *w, const char *key, enum gguf_vtype t,
                        const void *data, uint64_t n)
{
    if (gguf_vtype_size(t) == 0)
        return PAGODA_EINVAL;
    if (t == GGUF_TYPE_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (((const uint8_t *)data)[i] > 1)
                return PAGODA_EINVAL;
    struct gguf_value x = {.type = GGUF_TYPE_ARRAY};
    x.v.arr.type = t;
    x.v.arr.n = n;
    x.v.arr.data = data;
    return gguf_writer_set_value(w, key, &x);
}

int gguf_writer_set_arr_str(struct gguf_writer *w, const char *key, const char *const *v,
                            uint64_t n)
{
    if (!w || !key || (n && !v))
        return PAGODA_EINVAL;
    /* Build the value in the arena directly: the strings are copied once. */
    struct gguf_value x = {.type = GGUF_TYPE_ARRAY};
    x.v.arr.type = GGUF_TYPE_STRING;
    x.v.arr.n = n;
    if (n) {
        struct gguf_value *items = arena_array(&w->arena, n, sizeof *items);
        if (!items)
            return PAGODA_ENOMEM;
        for (uint64_t i = 0; i < n; i++) {
            if (!v[i])
                return PAGODA_EINVAL;
            items[i].type = GGUF_TYPE_STRING;
            items[i].v.str.ptr = v[i];
            items[i].v.str.len = strlen(v[i]);
        }
        x.v.arr.items = items;
    }
    return gguf_writer_set_value(w, key, &x);
}

int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, int type, int n_dims,
                           const int64_t *ne, const void *data, size_t nbytes, char *err,
                           size_t errlen)
{
    if (!w || !name || !ne)
        return err_set(err, errlen, PAGODA_EINVAL, "add tensor: missing argument");
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return err_set(err, errlen, PAGODA_EINVAL, "tensor '%s': dimension count %d not in 1..%d",
                       name, n_dims, GGUF_MAX_DIMS);
    struct writer_tensor t = {.type = type, .n_dims = n_dims, .data = data, .nbytes = nbytes};
    for (int d = 0; d < GGUF_MAX_DIMS; d++)
        t.ne[d] = d < n_dims ? ne[d] : 1;
    size_t want;
    char why[200];
    int rc = tensor_nbytes(type, t.ne, &want, why, sizeof why);
    if (rc)
        return err_set(err, errlen, PAGODA_EINVAL, "tensor '%s': %s", name, why);
    if (want != nbytes)
        return err_set(err, errlen, PAGODA_EINVAL,
                       "tensor '%s': %zu bytes given, its shape and type need %zu", name,
                       nbytes, want);
    if (nbytes && !data)
        return err_set(err, errlen, PAGODA_EINVAL, "tensor '%s': no data", name);
    size_t len = strlen(name);
    for (size_t i = 0; i < w->n_tensors; i++)
        if (w->tensors[i].name.len == len && !memcmp(w->tensors[i].name.ptr, name, len))
            return err_set(err, errlen, PAGODA_EINVAL, "tensor '%s' added twice", name);
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? 2 * w->cap_tensors : 64;
        struct writer_tensor *nt = realloc(w->tensors, cap * sizeof *nt);
        if (!nt)
            return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
        w->tensors = nt;
        w->cap_tensors = cap;
    }
    if (copy_str(&w->arena, &t.name, name, len))
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    w->tensors[w->n_tensors++] = t;
    return 0;
}

/* Buffered output that remembers the first failure. */
struct out {
    FILE *f;
    uint64_t pos;
    int failed;
};

static void out_bytes(struct out *o, const void *p, size_t n)
{
    if (o->failed || n == 0)
        return;
    if (fwrite(p, 1, n, o->f) != n)
        o->failed = errno ? errno : EIO;
    o->pos += n;
}

static void out_le(struct out *o, uint64_t v, size_t n)
{
    uint8_t b[8];
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    out_bytes(o, b, n);
}

static void out_str(struct out *o, struct gguf_str s)
{
    out_le(o, s.len, 8);
    out_bytes(o, s.ptr, (size_t)s.len);
}

static void out_pad(struct out *o, size_t align)
{
    static const uint8_t zeros[256];
    size_t pad = (size_t)((align - o->pos % align) % align);
    while (pad) {
        size_t n = pad < sizeof zeros ? pad : sizeof zeros;
        out_bytes(o, zeros, n);
        pad -= n;
    }
}

static void out_value(struct out *o, const struct gguf_value *v)
{
    switch (v->type) {
    case GGUF_TYPE_STRING: out_str(o, v->v.str); return;
    case GGUF_TYPE_ARRAY: {
        out_le(o, (uint32_t)v->v.arr.type, 4);
        out_le(o, v->v.arr.n, 8);
        size_t esz = gguf_vtype_size(v->v.arr.type);
        if (esz) {
            out_bytes(o, v->v.arr.data, (size_t)v->v.arr.n * esz);
        } else {
            for (uint64_t i = 0; i < v->v.arr.n; i++) {
                if (v->v.arr.type == GGUF_TYPE_STRING)
                    out_str(o, v->v.arr.items[i].v.str);
                else
                    out_value(o, &v->v.arr.items[i]);
            }
        }
        return;
    }
    case GGUF_TYPE_UINT8: out_le(o, v->v.u8, 1); return;
    case GGUF_TYPE_INT8: out_le(o, (uint8_t)v->v.i8, 1); return;
    case GGUF_TYPE_BOOL: out_le(o, v->v.b ? 1 : 0, 1); return;
    case GGUF_TYPE_UINT16: out_le(o, v->v.u16, 2); return;
    case GGUF_TYPE_INT16: out_le(o, (uint16_t)v->v.i16, 2); return;
    case GGUF_TYPE_UINT32: out_le(o, v->v.u32, 4); return;
    case GGUF_TYPE_INT32: out_le(o, (uint32_t)v->v.i32, 4); return;
    case GGUF_TYPE_FLOAT32: {
        uint32_t u;
        memcpy(&u, &v->v.f32, 4);
        out_le(o, u, 4);
        return;
    }
    case GGUF_TYPE_UINT64: out_le(o, v->v.u64, 8); return;
    case GGUF_TYPE_INT64: out_le(o, (uint64_t)v->v.i64, 8); return;
    case GGUF_TYPE_FLOAT64: {
        uint64_t u;
        memcpy(&u, &v->v.f64, 8);
        out_le(o, u, 8);
        return;
    }
    default: return;
    }
}

int gguf_writer_write(struct gguf_writer *w, const char *path, char *err, size_t errlen)
{
    if (!w || !path)
        return err_set(err, errlen, PAGODA_EINVAL, "write: missing argument");
    size_t align = GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (!gguf_str_eq(w->kv[i].key, "general.alignment"))
            continue;
        const struct gguf_value *v = &w->kv[i].value;
        if (v->type != GGUF_TYPE_UINT32 || v->v.u32 == 0 || (v->v.u32 & (v->v.u32 - 1)))
            return err_set(err, errlen, PAGODA_EINVAL,
                           "%s: general.alignment must be a u32 power of two", path);
        align = v->v.u32;
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp)
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    struct out o = {.f = fopen(tmp, "wb")};
    if (!o.f) {
        int rc = err_set(err, errlen, PAGODA_EIO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    setvbuf(o.f, NULL, _IOFBF, 1 << 20);
    errno = 0;

    out_le(&o, GGUF_MAGIC, 4);
    out_le(&o, 3, 4);
    out_le(&o, w->n_tensors, 8);
    out_le(&o, w->n_kv, 8);
    for (size_t i = 0; i < w->n_kv; i++) {
        out_str(&o, w->kv[i].key);
        out_le(&o, (uint32_t)w->kv[i].value.type, 4);
        out_value(&o, &w->kv[i].value);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const struct writer_tensor *t = &w->tensors[i];
        out_str(&o, t->name);
        out_le(&o, (uint32_t)t->n_dims, 4);
        for (int d = 0; d < t->n_dims; d++)
            out_le(&o, (uint64_t)t->ne[d], 8);
        out_le(&o, (uint32_t)t->type, 4);
        out_le(&o, off, 8);
        off += t->nbytes;
        off += (align - off % align) % align;
    }
    /* A file without tensors ends after its metadata, as vocabulary files do. */
    if (w->n_tensors)
        out_pad(&o, align);
    for (size_t i = 0; i < w->n_tensors; i++) {
        out_bytes(&o, w->tensors[i].data, w->tensors[i].nbytes);
        out_pad(&o, align);
    }

    int failed = o.failed;
    if (!failed && fflush(o.f) != 0)
        failed = errno ? errno : EIO;
    if (!failed && fsync(fileno(o.f)) != 0)
        failed = errno ? errno : EIO;
    if (fclose(o.f) != 0 && !failed)
        failed = errno ? errno : EIO;
    if (!failed && rename(tmp, path) != 0)
        failed = errno ? errno : EIO;
    int rc = 0;
    if (failed) {
        rc = err_set(err, errlen, PAGODA_EIO, "%s: cannot write: %s", path, strerror(failed));
        unlink(tmp);
    }
    free(tmp);
    return rc;
}
