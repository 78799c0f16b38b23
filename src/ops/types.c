/*
 * types.c: the table of element types (block geometry, reference
 * quantize/dequantize, dot partner) and the lookups by id and by name.
 * The conversions themselves live in quants.c and quants_k.c.
 */
#include "ops/types.h"

#include <strings.h>

#include "ops/quants.h"

static const struct type_traits type_table[PG_TYPE_COUNT] = {
    [PG_TYPE_F32] = {"f32", 1, sizeof(float), false, dequantize_row_f32, quantize_row_f32_ref,
                     PG_TYPE_F32},
    [PG_TYPE_F16] = {"f16", 1, sizeof(pg_f16), false, dequantize_row_f16, quantize_row_f16_ref,
                     PG_TYPE_F16},
    [PG_TYPE_BF16] = {"bf16", 1, sizeof(pg_bf16), false, dequantize_row_bf16,
                      quantize_row_bf16_ref, PG_TYPE_BF16},
    [PG_TYPE_Q4_0] = {"q4_0", QK4_0, sizeof(block_q4_0), true, dequantize_row_q4_0,
                      quantize_row_q4_0_ref, PG_TYPE_Q8_0},
    [PG_TYPE_Q4_1] = {"q4_1", QK4_1, sizeof(block_q4_1), true, dequantize_row_q4_1,
                      quantize_row_q4_1_ref, PG_TYPE_Q8_1},
    [PG_TYPE_Q5_0] = {"q5_0", QK5_0, sizeof(block_q5_0), true, dequantize_row_q5_0,
                      quantize_row_q5_0_ref, PG_TYPE_Q8_0},
    [PG_TYPE_Q5_1] = {"q5_1", QK5_1, sizeof(block_q5_1), true, dequantize_row_q5_1,
                      quantize_row_q5_1_ref, PG_TYPE_Q8_1},
    [PG_TYPE_Q8_0] = {"q8_0", QK8_0, sizeof(block_q8_0), true, dequantize_row_q8_0,
                      quantize_row_q8_0_ref, PG_TYPE_Q8_0},
    [PG_TYPE_Q8_1] = {"q8_1", QK8_1, sizeof(block_q8_1), true, dequantize_row_q8_1,
                      quantize_row_q8_1_ref, PG_TYPE_Q8_1},
    [PG_TYPE_Q2_K] = {"q2_K", QK_K, sizeof(block_q2_K), true, dequantize_row_q2_K,
                      quantize_row_q2_K_ref, PG_TYPE_Q8_K},
    [PG_TYPE_Q3_K] = {"q3_K", QK_K, sizeof(block_q3_K), true, dequantize_row_q3_K,
                      quantize_row_q3_K_ref, PG_TYPE_Q8_K},
    [PG_TYPE_Q4_K] = {"q4_K", QK_K, sizeof(block_q4_K), true, dequantize_row_q4_K,
                      quantize_row_q4_K_ref, PG_TYPE_Q8_K},
    [PG_TYPE_Q5_K] = {"q5_K", QK_K, sizeof(block_q5_K), true, dequantize_row_q5_K,
                      quantize_row_q5_K_ref, PG_TYPE_Q8_K},
    [PG_TYPE_Q6_K] = {"q6_K", QK_K, sizeof(block_q6_K), true, dequantize_row_q6_K,
                      quantize_row_q6_K_ref, PG_TYPE_Q8_K},
    [PG_TYPE_Q8_K] = {"q8_K", QK_K, sizeof(block_q8_K), true, dequantize_row_q8_K,
                      quantize_row_q8_K_ref, PG_TYPE_Q8_K},
};

const struct type_traits *type_traits_get(int type)
{
    if (type < 0 || type >= PG_TYPE_COUNT || type_table[type].name == NULL)
        return NULL;
    return &type_table[type];
}

const char *type_name(int type)
{
    const struct type_traits *t = type_traits_get(type);
    return t ? t->name : "unknown";
}

int type_from_name(const char *name)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < PG_TYPE_COUNT; i++) {
        if (type_table[i].name && strcasecmp(type_table[i].name, name) == 0)
            return i;
    }
    return -1;
}

size_t type_row_size(int type, int64_t n)
{
    const struct type_traits *t = type_traits_get(type);
    if (t == NULL || n < 0 || n % t->block_size != 0)
        return 0;
    /* Refuse sizes whose byte count would not fit a size_t. */
    const uint64_t blocks = (uint64_t)(n / t->block_size);
    if (blocks > SIZE_MAX / t->type_size)
        return 0;
    return (size_t)blocks * t->type_size;
}
