/*
 * gguf.h: reading and writing GGUF files (versions 2 and 3).
 *
 * The reader maps the file read-only and parses the header, every metadata
 * value (nested arrays included) and the tensor table, checking every count,
 * length and offset against the file size before it is used. Strings and
 * tensor data point into the mapping: they live as long as the gguf_file.
 * Strings are NOT NUL-terminated: use their len.
 *
 * The writer collects metadata and tensors and writes a file with GGUF's
 * alignment rules (general.alignment, default 32).
 */
#ifndef PAGODA_GGUF_H
#define PAGODA_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4

enum gguf_vtype {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
};

struct gguf_str {
    uint64_t len;
    const char *ptr; /* not NUL-terminated */
};

struct gguf_value {
    enum gguf_vtype type;
    union {
        uint8_t u8;
        int8_t i8;
        uint16_t u16;
        int16_t i16;
        uint32_t u32;
        int32_t i32;
        float f32;
        bool b;
        uint64_t u64;
        int64_t i64;
        double f64;
        struct gguf_str str;
        struct {
            enum gguf_vtype type; /* element type */
            uint64_t n;           /* element count */
            const void *data;     /* fixed-size elements: n packed little-endian values */
            struct gguf_value *items; /* strings and nested arrays: n parsed values */
        } arr;
    } v;
};

struct gguf_kv {
    struct gguf_str key;
    struct gguf_value value;
};

struct gguf_tensor {
    struct gguf_str name;
    int type;                    /* enum pg_type (ggml type id) */
    int n_dims;                  /* 1..GGUF_MAX_DIMS */
    int64_t ne[GGUF_MAX_DIMS];   /* elements per dimension, ne[0] innermost; unused dims 1 */
    uint64_t offset;             /* from the start of the data section */
    const void *data;            /* inside the mapping */
    size_t nbytes;
};

struct gguf_file {
    const uint8_t *base; /* the whole file */
    size_t size;
    uint32_t version;
    uint64_t n_kv;
    struct gguf_kv *kv;
    uint64_t n_tensors;
    struct gguf_tensor *tensors;
    size_t alignment;
    size_t data_offset; /* where tensor data starts */
    /* private */
    int owns_map;
    void *arena;
};

/* Opens and validates a file. On failure returns a negative status and a
 * message naming what is wrong and where (byte offset, key or tensor name). */
int gguf_open(const char *path, struct gguf_file **out, char *err, size_t errlen);

/* The same over bytes in memory (not copied: they must outlive the result). */
int gguf_open_memory(const void *data, size_t size, struct gguf_file **out, char *err,
                     size_t errlen);

void gguf_close(struct gguf_file *g);

/* Lookups return NULL / false when the key is absent or of an incompatible type. */
const struct gguf_kv *gguf_find_kv(const struct gguf_file *g, const char *key);
const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *g, const char *name);
/* Any integer type (and bool) whose value fits in int64. */
bool gguf_get_int(const struct gguf_file *g, const char *key, int64_t *out);
/* float32, float64, or any integer type. */
bool gguf_get_float(const struct gguf_file *g, const char *key, double *out);
bool gguf_get_bool(const struct gguf_file *g, const char *key, bool *out);
bool gguf_get_str(const struct gguf_file *g, const char *key, struct gguf_str *out);
/* An array value (any element type). */
const struct gguf_value *gguf_get_arr(const struct gguf_file *g, const char *key);

/* True when s equals the NUL-terminated c string. */
bool gguf_str_eq(struct gguf_str s, const char *c);
const char *gguf_vtype_name(enum gguf_vtype t);
/* Bytes of one element of a fixed-size type, 0 for string/array. */
size_t gguf_vtype_size(enum gguf_vtype t);

/* ---- writer ---- */

struct gguf_writer;

struct gguf_writer *gguf_writer_create(void);
void gguf_writer_free(struct gguf_writer *w);

/* Setting a key that is already set replaces its value (the key keeps its place).
 * Strings and arrays are copied. Return 0 or a negative status. */
int gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v);
int gguf_writer_set_u64(struct gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v);
int gguf_writer_set_bool(struct gguf_writer *w, const char *key, bool v);
int gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *v);
/* An array of fixed-size elements (n values of type t, packed little-endian). */
int gguf_writer_set_arr(struct gguf_writer *w, const char *key, enum gguf_vtype t,
                        const void *data, uint64_t n);
int gguf_writer_set_arr_str(struct gguf_writer *w, const char *key, const char *const *v,
                            uint64_t n);
/* Any parsed value (nested arrays included), e.g. copied from another file. */
int gguf_writer_set_value(struct gguf_writer *w, const char *key, const struct gguf_value *v);

/* Adds a tensor. data is NOT copied: it must stay valid until the write.
 * nbytes must equal type_row_size(type, ne[0]) * ne[1] * ne[2] * ne[3]. */
int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, int type, int n_dims,
                           const int64_t *ne, const void *data, size_t nbytes, char *err,
                           size_t errlen);

/* Writes the file (version 3) to path through a temporary file and rename. */
int gguf_writer_write(struct gguf_writer *w, const char *path, char *err, size_t errlen);

#endif
