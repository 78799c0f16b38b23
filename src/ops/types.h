/*
 * types.h: the tensor element types pagoda reads and writes. Ids and block
 * layouts are GGUF's (ggml's type numbers), so real files load as they are.
 * Each type has traits: block size, bytes per block, its scalar reference
 * quantize/dequantize, and the type activations are converted to before a dot
 * product with it (its "dot type").
 */
#ifndef PAGODA_OPS_TYPES_H
#define PAGODA_OPS_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/fp16.h"

enum pg_type {
    PG_TYPE_F32 = 0,
    PG_TYPE_F16 = 1,
    PG_TYPE_Q4_0 = 2,
    PG_TYPE_Q4_1 = 3,
    PG_TYPE_Q5_0 = 6,
    PG_TYPE_Q5_1 = 7,
    PG_TYPE_Q8_0 = 8,
    PG_TYPE_Q8_1 = 9,
    PG_TYPE_Q2_K = 10,
    PG_TYPE_Q3_K = 11,
    PG_TYPE_Q4_K = 12,
    PG_TYPE_Q5_K = 13,
    PG_TYPE_Q6_K = 14,
    PG_TYPE_Q8_K = 15,
    PG_TYPE_BF16 = 30,
    PG_TYPE_COUNT = 31, /* one past the largest id (ids in between are unsupported) */
};

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256
#define K_SCALE_SIZE 12

/* Block layouts, byte for byte as in GGUF files. */
typedef struct { pg_f16 d; uint8_t qs[QK4_0 / 2]; } block_q4_0;
typedef struct { pg_f16 d, m; uint8_t qs[QK4_1 / 2]; } block_q4_1;
typedef struct { pg_f16 d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; } block_q5_0;
typedef struct { pg_f16 d, m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; } block_q5_1;
typedef struct { pg_f16 d; int8_t qs[QK8_0]; } block_q8_0;
typedef struct { pg_f16 d, s; int8_t qs[QK8_1]; } block_q8_1; /* s = d * sum(qs) */
typedef struct {
    uint8_t scales[QK_K / 16]; /* 4-bit scale | 4-bit min per 16 */
    uint8_t qs[QK_K / 4];
    pg_f16 d, dmin;
} block_q2_K;
typedef struct {
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[12]; /* 16 scales of 6 bits */
    pg_f16 d;
} block_q3_K;
typedef struct {
    pg_f16 d, dmin;
    uint8_t scales[K_SCALE_SIZE]; /* 8 scales + 8 mins of 6 bits */
    uint8_t qs[QK_K / 2];
} block_q4_K;
typedef struct {
    pg_f16 d, dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
} block_q5_K;
typedef struct {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    pg_f16 d;
} block_q6_K;
typedef struct {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16]; /* sums of qs in groups of 16 */
} block_q8_K;

_Static_assert(sizeof(block_q4_0) == 18, "q4_0 layout");
_Static_assert(sizeof(block_q4_1) == 20, "q4_1 layout");
_Static_assert(sizeof(block_q5_0) == 22, "q5_0 layout");
_Static_assert(sizeof(block_q5_1) == 24, "q5_1 layout");
_Static_assert(sizeof(block_q8_0) == 34, "q8_0 layout");
_Static_assert(sizeof(block_q8_1) == 36, "q8_1 layout");
_Static_assert(sizeof(block_q2_K) == 84, "q2_K layout");
_Static_assert(sizeof(block_q3_K) == 110, "q3_K layout");
_Static_assert(sizeof(block_q4_K) == 144, "q4_K layout");
_Static_assert(sizeof(block_q5_K) == 176, "q5_K layout");
_Static_assert(sizeof(block_q6_K) == 210, "q6_K layout");
_Static_assert(sizeof(block_q8_K) == 292, "q8_K layout");

typedef void (*to_float_fn)(const void *src, float *dst, int64_t n);
typedef void (*from_float_fn)(const float *src, void *dst, int64_t n);

struct type_traits {
    const char *name;      /* "q4_K", as GGUF tools print it */
    int block_size;        /* elements per block (1 for plain floats) */
    size_t type_size;      /* bytes per block */
    bool quantized;
    to_float_fn to_float;  /* dequantize a row of n elements (n % block_size == 0) */
    from_float_fn from_float_ref; /* scalar reference quantize of a row */
    enum pg_type dot_type; /* what activations become before a dot product */
};

/* Traits of a type, or NULL when the id is not one pagoda supports. */
const struct type_traits *type_traits_get(int type);

/* The type's name, or "unknown" (never NULL). */
const char *type_name(int type);

/* The type with this name (case-insensitive, "q4_k" or "Q4_K"), or -1. */
int type_from_name(const char *name);

/* Bytes of one row of n elements; 0 when n is not a multiple of the block size
 * or the type is unsupported. */
size_t type_row_size(int type, int64_t n);

#endif
