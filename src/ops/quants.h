/*
 * quants.h: scalar reference quantize and dequantize for every block type.
 * Quantizers follow GGUF's reference rounding, so for q4_0, q4_1, q5_0, q5_1
 * and q8_0 they give the same bytes as the files' own tools; the k-quant
 * quantizers search scales the same way, so their error is no larger.
 * n (elements in the row) must be a multiple of the type's block size.
 */
#ifndef PAGODA_OPS_QUANTS_H
#define PAGODA_OPS_QUANTS_H

#include <stdint.h>

#include "ops/types.h"

void quantize_row_q4_0_ref(const float *x, void *y, int64_t n);
void quantize_row_q4_1_ref(const float *x, void *y, int64_t n);
void quantize_row_q5_0_ref(const float *x, void *y, int64_t n);
void quantize_row_q5_1_ref(const float *x, void *y, int64_t n);
void quantize_row_q8_0_ref(const float *x, void *y, int64_t n);
void quantize_row_q8_1_ref(const float *x, void *y, int64_t n);
void quantize_row_q2_K_ref(const float *x, void *y, int64_t n);
void quantize_row_q3_K_ref(const float *x, void *y, int64_t n);
void quantize_row_q4_K_ref(const float *x, void *y, int64_t n);
void quantize_row_q5_K_ref(const float *x, void *y, int64_t n);
void quantize_row_q6_K_ref(const float *x, void *y, int64_t n);
void quantize_row_q8_K_ref(const float *x, void *y, int64_t n);
void quantize_row_f16_ref(const float *x, void *y, int64_t n);
void quantize_row_bf16_ref(const float *x, void *y, int64_t n);
void quantize_row_f32_ref(const float *x, void *y, int64_t n);
/* The activation quantizers of q8_0/q8_1 dots (127/max, ties to even). */
void quantize_row_q8_0_act(const float *x, void *y, int64_t n);
void quantize_row_q8_1_act(const float *x, void *y, int64_t n);

void dequantize_row_q4_0(const void *x, float *y, int64_t n);
void dequantize_row_q4_1(const void *x, float *y, int64_t n);
void dequantize_row_q5_0(const void *x, float *y, int64_t n);
void dequantize_row_q5_1(const void *x, float *y, int64_t n);
void dequantize_row_q8_0(const void *x, float *y, int64_t n);
void dequantize_row_q8_1(const void *x, float *y, int64_t n);
void dequantize_row_q2_K(const void *x, float *y, int64_t n);
void dequantize_row_q3_K(const void *x, float *y, int64_t n);
void dequantize_row_q4_K(const void *x, float *y, int64_t n);
void dequantize_row_q5_K(const void *x, float *y, int64_t n);
void dequantize_row_q6_K(const void *x, float *y, int64_t n);
void dequantize_row_q8_K(const void *x, float *y, int64_t n);
void dequantize_row_f16(const void *x, float *y, int64_t n);
void dequantize_row_bf16(const void *x, float *y, int64_t n);
void dequantize_row_f32(const void *x, float *y, int64_t n);

/* Quantizes n_rows rows of n_per_row floats of src into dst (rows packed) with
 * the reference quantizer of type; returns the bytes written, 0 if the type
 * cannot hold rows of that length. */
size_t quantize_rows(int type, const float *src, void *dst, int64_t n_rows, int64_t n_per_row);

#endif
