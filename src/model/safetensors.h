/*
 * safetensors.h: reading Hugging Face safetensors checkpoints, one file or
 * many shards named by model.safetensors.index.json. Each file is mapped
 * read-only; its JSON header is parsed and every tensor's dtype, shape and
 * byte range is checked against the file size before use.
 */
#ifndef PAGODA_MODEL_SAFETENSORS_H
#define PAGODA_MODEL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

enum st_dtype { ST_F32, ST_F16, ST_BF16, ST_OTHER };

struct st_tensor {
    char *name;
    enum st_dtype dtype;
    char dtype_name[16];   /* as in the file: "F32", "BF16", "I64", ... */
    int n_dims;            /* 0 for a scalar */
    int64_t shape[ST_MAX_DIMS]; /* outermost first, as in the file */
    int64_t n_elems;
    const void *data;      /* inside the mapping; not aligned in general */
    size_t nbytes;
    int file;              /* which shard holds it */
};

struct st_model {
    int n_tensors;
    struct st_tensor *tensors;
    /* private */
    int n_files;
    void **maps;
    size_t *sizes;
};

/* path is a .safetensors file or a folder holding either
 * model.safetensors.index.json (and its shards) or model.safetensors. */
int st_open(const char *path, struct st_model **out, char *err, size_t errlen);
void st_close(struct st_model *m);

const struct st_tensor *st_find(const struct st_model *m, const char *name);

/* All elements of an F32/F16/BF16 tensor as floats (dst holds n_elems). */
int st_read_f32(const struct st_tensor *t, float *dst, char *err, size_t errlen);

struct cJSON;
/* Reads and parses a JSON file of at most max_bytes; *out must be freed with
 * cJSON_Delete. */
int st_read_json(const char *path, size_t max_bytes, struct cJSON **out, char *err,
                 size_t errlen);

#endif
