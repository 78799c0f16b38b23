/*
 * quantize.h: rewriting a whole GGUF model with the weight types of a
 * quantization preset (see quant_recipe.h). Every metadata key is carried
 * over; general.file_type and general.quantization_version are set for the
 * preset. Rows are quantized in parallel over a pool, each row on its own,
 * so the output bytes do not depend on the thread count.
 */
#ifndef PAGODA_MODEL_QUANTIZE_H
#define PAGODA_MODEL_QUANTIZE_H

#include <stdint.h>

#include "base/pool.h"
#include "ops/types.h"

/* Called on the calling thread as work completes: done and total count the
 * input tensor bytes processed (done == total once at the end). */
typedef void (*quantize_progress_fn)(void *user, uint64_t done, uint64_t total,
                                     const char *tensor);

struct quantize_params {
    const char *preset;          /* a quant_recipe preset name, e.g. "q4_k_m" */
    struct pool *pool;           /* NULL: quantize on the calling thread */
    quantize_progress_fn progress; /* may be NULL */
    void *progress_user;
};

struct quantize_stats {
    int n_tensors;
    int n_requantized;           /* tensors that were already quantized in the input */
    uint64_t in_bytes, out_bytes; /* tensor data only */
    int type_count[PG_TYPE_COUNT]; /* output tensors per type */
};

/* Reads in_path, writes out_path (through a temporary file and rename).
 * stats may be NULL. Returns 0 or a negative pagoda_status with err set. */
int quantize_file(const char *in_path, const char *out_path, const struct quantize_params *p,
                  struct quantize_stats *stats, char *err, size_t errlen);

/* rows rows of ne0 floats quantized to type into dst (rows packed), spread
 * over pool (NULL: the calling thread). The bytes equal quantize_rows'. */
void quantize_rows_pool(struct pool *pool, int type, const float *src, void *dst, int64_t rows,
                        int64_t ne0);

#endif
