/*
 * quantize.c: a GGUF model rewritten with a preset's per-tensor types. The
 * input stays mapped; tensors whose type does not change point into it, the
 * others are converted row by row (dequantized to float first when the input
 * is not F32) into buffers held until the file is written.
 */
#include "model/quantize.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "gguf/gguf.h"
#include "model/quant_recipe.h"
#include "ops/quants.h"

#define QZ_CHUNK_ROWS 8               /* rows a thread claims at a time */
#define QZ_SLAB_ELEMS ((int64_t)1 << 22) /* elements between progress reports */
#define QZ_MAX_NAME 256

struct qz_job {
    const void *src;
    size_t src_row_size;
    to_float_fn to_float;  /* NULL when the input rows are F32 already */
    void *dst;
    size_t dst_row_size;
    int dst_type;
    int64_t ne0;
    int64_t row0, row1;    /* this slab */
    float **scratch;       /* one row per thread; NULL for aligned F32 input */
    _Atomic int64_t next;
};

static void qz_worker(void *ctx, int ith, int nth)
{
    (void)nth;
    struct qz_job *j = ctx;
    float *row = j->scratch ? j->scratch[ith] : NULL;
    for (;;) {
        const int64_t r0 = atomic_fetch_add(&j->next, QZ_CHUNK_ROWS);
        if (r0 >= j->row1)
            break;
        const int64_t r1 = r0 + QZ_CHUNK_ROWS < j->row1 ? r0 + QZ_CHUNK_ROWS : j->row1;
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *s = (const uint8_t *)j->src + (size_t)r * j->src_row_size;
            const float *x = (const float *)(const void *)s;
            if (row && (j->to_float || ((uintptr_t)s % sizeof(float)) != 0)) {
                if (j->to_float)
                    j->to_float(s, row, j->ne0);
                else
                    memcpy(row, s, (size_t)j->ne0 * sizeof(float));
                x = row;
            }
            quantize_rows(j->dst_type, x, (uint8_t *)j->dst + (size_t)r * j->dst_row_size, 1,
                          j->ne0);
        }
    }
}

void quantize_rows_pool(struct pool *pool, int type, const float *src, void *dst, int64_t rows,
                        int64_t ne0)
{
    /* Aligned F32 input rows need no scratch: the workers read them in place. */
    struct qz_job job = {
        .src = src,
        .src_row_size = (size_t)ne0 * sizeof(float),
        .dst = dst,
        .dst_row_size = type_row_size(type, ne0),
        .dst_type = type,
        .ne0 = ne0,
        .row0 = 0,
        .row1 = rows,
        .scratch = NULL,
    };
    atomic_store(&job.next, 0);
    if (job.dst_row_size && rows > 0)
        pool_run(pool, qz_worker, &job);
}

/* The recipe's view of the model, from the metadata. */
static void recipe_model(const struct gguf_file *g, struct quant_recipe_model *m)
{
    m->n_layers = 1;
    m->n_gqa = 1;
    m->tied_output = gguf_find_tensor(g, "output.weight") == NULL;
    struct gguf_str arch;
    if (!gguf_get_str(g, "general.architecture", &arch) || arch.len > 64)
        return;
    char key[128];
    int64_t v, hkv;
    snprintf(key, sizeof key, "%.*s.block_count", (int)arch.len, arch.ptr);
    if (gguf_get_int(g, key, &v) && v > 0 && v < 100000)
        m->n_layers = (int)v;
    snprintf(key, sizeof key, "%.*s.attention.head_count", (int)arch.len, arch.ptr);
    if (!gguf_get_int(g, key, &v) || v <= 0)
        return;
    snprintf(key, sizeof key, "%.*s.attention.head_count_kv", (int)arch.len, arch.ptr);
    if (gguf_get_int(g, key, &hkv) && hkv > 0 && v % hkv == 0)
        m->n_gqa = (int)(v / hkv);
}

static int copy_metadata(struct gguf_writer *w, const struct gguf_file *g, int file_type,
                         bool quantized, char *err, size_t errlen)
{
    char key[QZ_MAX_NAME];
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const struct gguf_kv *kv = &g->kv[i];
        if (kv->key.len >= sizeof key)
            return err_set(err, errlen, PAGODA_EUNSUPPORTED, "metadata key of %llu bytes is too long",
                           (unsigned long long)kv->key.len);
        memcpy(key, kv->key.ptr, kv->key.len);
        key[kv->key.len] = 0;
        if (!strcmp(key, "general.file_type") || !strcmp(key, "general.quantization_version"))
            continue;
        if (gguf_writer_set_value(w, key, &kv->value) < 0)
            return err_set(err, errlen, PAGODA_ENOMEM, "cannot copy metadata %s", key);
    }
    int rc = gguf_writer_set_u32(w, "general.file_type", (uint32_t)file_type);
    if (!rc && quantized)
        rc = gguf_writer_set_u32(w, "general.quantization_version", 2);
    return rc < 0 ? err_set(err, errlen, PAGODA_ENOMEM, "cannot set metadata") : 0;
}

int quantize_file(const char *in_path, const char *out_path, const struct quantize_params *p,
                  struct quantize_stats *stats, char *err, size_t errlen)
{
    struct quantize_stats local;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    if (!p || !quant_preset_valid(p->preset))
        return err_set(err, errlen, PAGODA_EINVAL, "unknown quantization type '%s'",
                       p && p->preset ? p->preset : "(null)");

    struct gguf_file *g = NULL;
    int rc = gguf_open(in_path, &g, err, errlen);
    if (rc) {
        err_prefix(err, errlen, "%s", in_path);
        return rc;
    }
    struct gguf_writer *w = gguf_writer_create();
    void **bufs = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *bufs);
    const int nth = p->pool ? pool_size(p->pool) : 1;
    float **scratch = calloc((size_t)nth, sizeof *scratch);
    if (!w || !bufs || !scratch) {
        rc = err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
        goto done;
    }

    struct quant_recipe_model qm;
    recipe_model(g, &qm);
    int *types = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *types);
    if (!types) {
        rc = err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
        goto done;
    }
    /* Types first: the metadata says whether anything is quantized, and the
     * progress total is known before any work starts. */
    int64_t max_ne0 = 1;
    bool any_quant = false;
    uint64_t total = 0;
    char name[QZ_MAX_NAME];
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct gguf_tensor *t = &g->tensors[i];
        if (t->name.len >= sizeof name) {
            rc = err_set(err, errlen, PAGODA_EUNSUPPORTED, "tensor name of %llu bytes is too long",
                         (unsigned long long)t->name.len);
            goto done_types;
        }
        memcpy(name, t->name.ptr, t->name.len);
        name[t->name.len] = 0;
        const struct type_traits *src = type_traits_get(t->type);
        if (!src || !src->to_float) {
            rc = err_set(err, errlen, PAGODA_EUNSUPPORTED, "tensor '%s' has unsupported type %s",
                         name, type_name(t->type));
            goto done_types;
        }
        types[i] = quant_recipe_type(p->preset, name, t->n_dims, t->ne[0], &qm);
        if (types[i] < 0 || type_row_size(types[i], t->ne[0]) == 0) {
            rc = err_set(err, errlen, PAGODA_EUNSUPPORTED, "no type fits tensor '%s' (row of %lld)",
                         name, (long long)t->ne[0]);
            goto done_types;
        }
        const struct type_traits *dst = type_traits_get(types[i]);
        any_quant |= dst->quantized;
        if (types[i] != t->type && t->ne[0] > max_ne0)
            max_ne0 = t->ne[0];
        total += t->nbytes;
    }
    for (int k = 0; k < nth; k++)
        if (!(scratch[k] = malloc((size_t)max_ne0 * sizeof(float)))) {
            rc = err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
            goto done_types;
        }
    if ((rc = copy_metadata(w, g, quant_preset_file_type(p->preset), any_quant, err, errlen)))
        goto done_types;

    uint64_t done_bytes = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct gguf_tensor *t = &g->tensors[i];
        memcpy(name, t->name.ptr, t->name.len);
        name[t->name.len] = 0;
        const int64_t ne0 = t->ne[0];
        const int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
        const int type = types[i];
        const void *data = t->data;
        size_t nbytes = t->nbytes;
        if (type != t->type) {
            const size_t drs = type_row_size(type, ne0);
            nbytes = drs * (size_t)rows;
            if (!(bufs[i] = malloc(nbytes ? nbytes : 1))) {
                rc = err_set(err, errlen, PAGODA_ENOMEM, "out of memory for tensor '%s' (%zu bytes)",
                             name, nbytes);
                goto done_types;
            }
            if (type_traits_get(t->type)->quantized)
                stats->n_requantized++;
            struct qz_job job = {
                .src = t->data,
                .src_row_size = type_row_size(t->type, ne0),
                .to_float = t->type == PG_TYPE_F32 ? NULL : type_traits_get(t->type)->to_float,
                .dst = bufs[i],
                .dst_row_size = drs,
                .dst_type = type,
                .ne0 = ne0,
                .scratch = scratch,
            };
            const int64_t slab = QZ_SLAB_ELEMS / ne0 > 0 ? QZ_SLAB_ELEMS / ne0 : 1;
            for (int64_t r = 0; r < rows; r += slab) {
                job.row0 = r;
                job.row1 = r + slab < rows ? r + slab : rows;
                atomic_store(&job.next, job.row0);
                pool_run(p->pool, qz_worker, &job);
                if (p->progress && job.row1 < rows)
                    p->progress(p->progress_user,
                                done_bytes + (uint64_t)((double)t->nbytes * job.row1 / rows), total,
                                name);
            }
            data = bufs[i];
        }
        if ((rc = gguf_writer_add_tensor(w, name, type, t->n_dims, t->ne, data, nbytes, err,
                                         errlen)))
            goto done_types;
        stats->n_tensors++;
        stats->in_bytes += t->nbytes;
        stats->out_bytes += nbytes;
        stats->type_count[type]++;
        done_bytes += t->nbytes;
        if (p->progress)
            p->progress(p->progress_user, done_bytes, total, name);
    }
    rc = gguf_writer_write(w, out_path, err, errlen);

done_types:
    free(types);
done:
    if (bufs)
        for (uint64_t i = 0; i < g->n_tensors; i++)
            free(bufs[i]);
    free(bufs);
    if (scratch)
        for (int k = 0; k < nth; k++)
            free(scratch[k]);
    free(scratch);
    gguf_writer_free(w);
    gguf_close(g);
    return rc;
}
