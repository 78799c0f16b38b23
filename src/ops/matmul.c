/*
 * matmul.c: the matmul driver (matmul.h) and the kernel tables (kernels.h).
 * A matmul converts the activation rows once into the context's scratch, in
 * the weight type's dot type, then hands chunks of weight rows to the pool's
 * threads; each thread runs the kernel over its rows and all activation rows,
 * one activation tile at a time so the tile stays in cache while its weights
 * go by. Which thread or tile a (weight row, activation row) pair lands in
 * never changes its value: the kernels compute every pair the same way.
 */
#include "ops/matmul.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/err.h"
#include "base/scratch.h"
#include "ops/kernels.h"
#include "ops/types.h"

/* ---- kernel tables, one per ISA level, each built once ---- */

static struct kernel_table kernel_tables[3];
static pthread_once_t kernel_once[3] = {PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT,
                                        PTHREAD_ONCE_INIT};

/* A level's table: the scalar kernels, then each SIMD level up to it
 * overwriting the entries it implements. */
static void kernels_build(struct kernel_table *t, int isa)
{
    memset(t, 0, sizeof *t);
    kernels_scalar_init(t);
    kernels_scalar_k_init(t);
#if defined(PAGODA_HAVE_X86)
    if (isa >= CPU_ISA_AVX2) {
        kernels_avx2_init(t);
        kernels_avx2_k_init(t);
    }
    if (isa >= CPU_ISA_AVX512) {
        kernels_avx512_init(t);
        kernels_avx512_k_init(t);
    }
#else
    (void)isa;
#endif
}

static void kernels_build_scalar(void) { kernels_build(&kernel_tables[0], CPU_ISA_SCALAR); }
static void kernels_build_avx2(void) { kernels_build(&kernel_tables[1], CPU_ISA_AVX2); }
static void kernels_build_avx512(void) { kernels_build(&kernel_tables[2], CPU_ISA_AVX512); }

const struct kernel_table *kernels_for_isa(int isa)
{
    const int max = (int)cpu_isa_max();
    if (isa < CPU_ISA_SCALAR)
        isa = CPU_ISA_SCALAR;
    if (isa > max)
        isa = max;
    static void (*const builders[3])(void) = {kernels_build_scalar, kernels_build_avx2,
                                              kernels_build_avx512};
    pthread_once(&kernel_once[isa], builders[isa]);
    return &kernel_tables[isa];
}

const struct kernel_table *kernels_get(void)
{
    return kernels_for_isa((int)cpu_isa_get());
}

/* ---- context ---- */

struct mm_ctx {
    struct pool *pool;
    struct page_buf act; /* converted activation rows */
};

struct mm_ctx *mm_ctx_create(struct pool *pool, char *err, size_t errlen)
{
    struct mm_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        err_set(err, errlen, PAGODA_ENOMEM, "out of memory creating a matmul context");
        return NULL;
    }
    ctx->pool = pool;
    return ctx;
}

void mm_ctx_free(struct mm_ctx *ctx)
{
    if (!ctx)
        return;
    page_buf_release(&ctx->act);
    free(ctx);
}

static int mm_scratch_reserve(struct mm_ctx *ctx, size_t bytes, char *err, size_t errlen)
{
    if (page_buf_reserve(&ctx->act, bytes))
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory for %zu bytes of activations",
                       bytes);
    return 0;
}

/* ---- the parallel parts ---- */

/* Scratch bytes an activation tile should take, so it stays in L2 while
 * a thread's weight rows pass it. */
#define MM_ACT_TILE_BYTES (192 * 1024)
/* Weight bytes a chunk should at most take: a chunk is re-read from cache
 * once per activation tile. */
#define MM_CHUNK_BYTES (256 * 1024)
/* Below this many multiply-adds one thread is faster than waking others. */
#define MM_MIN_PARALLEL_MACS (1 << 17)

/* One weight matrix of a job: its kernel, rows and output, and where its
 * chunks start in the job's chunk numbering. */
struct mm_part {
    gemm_fn gemm;
    const uint8_t *w;
    size_t w_stride;
    int64_t n;
    float *y;
    int64_t chunk_rows, first_chunk, n_chunks;
};

struct mm_job {
    act_quant_fn act_quant;
    const float *x; /* f32 activations [b × k] */
    int64_t k, b;
    uint8_t *xq; /* converted activations */
    size_t xq_stride;
    int64_t act_tile;
    struct mm_part part[MM_MAX_PARTS];
    int n_parts;
    int64_t n_chunks;
    _Atomic int64_t next_chunk;
    uint64_t act_id; /* this call's activations, for the kernels (gemm_args) */
};

/* Numbers the calls' converted activations: unique in the process. */
static _Atomic uint64_t mm_act_ids;

static void mm_convert_worker(void *arg, int ith, int nth)
{
    struct mm_job *job = arg;
    const int64_t i0 = job->b * ith / nth, i1 = job->b * (ith + 1) / nth;
    for (int64_t i = i0; i < i1; i++)
        job->act_quant(job->x + i * job->k, job->xq + (size_t)i * job->xq_stride, job->k);
}

static void mm_gemm_chunk(const struct mm_job *job, int64_t chunk)
{
    int p = 0;
    while (p + 1 < job->n_parts && chunk >= job->part[p + 1].first_chunk)
        p++;
    const struct mm_part *pt = &job->part[p];
    const int64_t r0 = (chunk - pt->first_chunk) * pt->chunk_rows;
    const int64_t r1 = r0 + pt->chunk_rows < pt->n ? r0 + pt->chunk_rows : pt->n;
    for (int64_t t0 = 0; t0 < job->b; t0 += job->act_tile) {
        const int64_t tb = job->b - t0 < job->act_tile ? job->b - t0 : job->act_tile;
        const struct gemm_args a = {
            .k = job->k,
            .w = pt->w + (size_t)r0 * pt->w_stride,
            .w_stride = pt->w_stride,
            .n = r1 - r0,
            .x = job->xq + (size_t)t0 * job->xq_stride,
            .x_stride = job->xq_stride,
            .b = tb,
            .y = pt->y + t0 * pt->n + r0,
            .y_stride = pt->n,
            .act_id = job->act_id,
        };
        pt->gemm(&a);
    }
}

static void mm_gemm_worker(void *arg, int ith, int nth)
{
    struct mm_job *job = arg;
    /* Each thread starts on its own chunk, then takes whatever is left. */
    for (int64_t c = ith; c < job->n_chunks;
         c = atomic_fetch_add_explicit(&job->next_chunk, 1, memory_order_relaxed))
        mm_gemm_chunk(job, c);
    (void)nth;
}

/* Kernels work on up to 16 weight rows at a time (and 4 activation rows):
 * chunks and tiles in those multiples waste no lanes. */
static int64_t round_down(int64_t v, int64_t m) { return v < m ? m : v / m * m; }

/* Checks one weight against the kernels and the activations' shape. */
static int mm_check(const struct mm_weight *w, int64_t b, const struct kernel_table *kt,
                    const struct type_traits **ttp, char *err, size_t errlen)
{
    if (!w)
        return err_set(err, errlen, PAGODA_EINVAL, "matmul: no weight");
    const struct type_traits *tt = type_traits_get(w->type);
    if (!tt || !kt->gemm[w->type] || !kt->act_quant[tt->dot_type])
        return err_set(err, errlen, PAGODA_EUNSUPPORTED, "matmul: weight type %d (%s) has no kernel",
                       w->type, type_name(w->type));
    if (w->n < 0 || w->k <= 0 || b < 0)
        return err_set(err, errlen, PAGODA_EINVAL,
                       "matmul: bad shape (n=%lld, k=%lld, b=%lld)", (long long)w->n,
                       (long long)w->k, (long long)b);
    if (w->k % tt->block_size != 0)
        return err_set(err, errlen, PAGODA_EINVAL,
                       "matmul: k=%lld is not a multiple of %s's block size %d",
                       (long long)w->k, tt->name, tt->block_size);
    const size_t w_row = type_row_size(w->type, w->k);
    const size_t xq_row = type_row_size(tt->dot_type, w->k);
    if (w_row == 0 || xq_row == 0)
        return err_set(err, errlen, PAGODA_EINVAL, "matmul: k=%lld is too large",
                       (long long)w->k);
    if (w->row_stride < w_row)
        return err_set(err, errlen, PAGODA_EINVAL,
                       "matmul: row stride %zu is less than a %s row of %lld (%zu bytes)",
                       w->row_stride, tt->name, (long long)w->k, w_row);
    /* Kernels read block scales as f16 and floats as floats: rows must be
     * aligned for those (GGUF aligns tensor data far more). */
    const size_t align = w->type == PG_TYPE_F32 ? 4 : 2;
    if (w->row_stride % align != 0 || (uintptr_t)w->data % align != 0)
        return err_set(err, errlen, PAGODA_EINVAL,
                       "matmul: %s rows must start at multiples of %zu bytes", tt->name, align);
    if (w->n > 0 && b > 0 && !w->data)
        return err_set(err, errlen, PAGODA_EINVAL, "matmul: missing weight");
    *ttp = tt;
    return 0;
}

int matmul_n(struct mm_ctx *ctx, const struct mm_weight *const *w, int nw, const float *x,
             int64_t b, float *const *y, char *err, size_t errlen)
{
    if (!ctx || nw < 1 || nw > MM_MAX_PARTS)
        return err_set(err, errlen, PAGODA_EINVAL, "matmul: no context or %d weights", nw);
    const struct kernel_table *kt = kernels_get();
    const struct type_traits *tt = NULL;
    int64_t n_total = 0;
    for (int i = 0; i < nw; i++) {
        const struct type_traits *ti = NULL;
        int rc = mm_check(w[i], b, kt, &ti, err, errlen);
        if (rc)
            return rc;
        if (i > 0 && (w[i]->k != w[0]->k || ti->dot_type != tt->dot_type))
            return err_set(err, errlen, PAGODA_EINVAL,
                           "matmul: weights of one call need the same k and activation type");
        tt = ti;
        n_total += w[i]->n;
    }
    const int64_t k = w[0]->k;
    const size_t xq_row = type_row_size(tt->dot_type, k);
    if (n_total == 0 || b == 0)
        return 0;
    if (!x)
        return err_set(err, errlen, PAGODA_EINVAL, "matmul: missing input");
    for (int i = 0; i < nw; i++)
        if (w[i]->n > 0 && !y[i])
            return err_set(err, errlen, PAGODA_EINVAL, "matmul: missing output");
    if ((uint64_t)b > SIZE_MAX / xq_row)
        return err_set(err, errlen, PAGODA_ENOMEM, "matmul: %lld activation rows are too many",
                       (long long)b);

    struct mm_job job = {
        .act_quant = kt->act_quant[tt->dot_type],
        .x = x,
        .k = k,
        .b = b,
        .xq_stride = xq_row,
        .act_id = atomic_fetch_add_explicit(&mm_act_ids, 1, memory_order_relaxed) + 1,
    };

    const int pool_threads = pool_size(ctx->pool);
    const double macs = (double)n_total * (double)k * (double)b;
    int nth = macs < MM_MIN_PARALLEL_MACS ? 1 : pool_threads;

    if (tt->dot_type == PG_TYPE_F32) {
        job.xq = (uint8_t *)(uintptr_t)x; /* already in the dot type: read in place */
    } else {
        int rc = mm_scratch_reserve(ctx, (size_t)b * xq_row, err, errlen);
        if (rc < 0)
            return rc;
        job.xq = ctx->act.p;
        /* Converting a row costs about as much as one weight row's dot with
         * it, so only many rows are worth spreading. */
        const int conv_threads = b >= 8 ? nth : 1;
        pool_run_n(ctx->pool, conv_threads, mm_convert_worker, &job);
    }

    /* The parts share one activation tiling: the smallest any kernel asks. */
    size_t tile_bytes = 0;
    for (int i = 0; i < nw; i++) {
        const size_t t = kt->act_tile[w[i]->type] ? kt->act_tile[w[i]->type] : MM_ACT_TILE_BYTES;
        tile_bytes = i == 0 || t < tile_bytes ? t : tile_bytes;
    }
    int64_t tile = (int64_t)(tile_bytes / xq_row);
    job.act_tile = tile >= b ? b : round_down(tile, 8);
    /* Chunks: about four per thread, for load balance on a busy machine,
     * and small enough to stay in cache across activation tiles. Finer
     * chunks balance better but cost single-row decode a fifth of its speed:
     * each chunk's first rows start cold and its last ones prefetch rows
     * another chunk reads. */
    for (int i = 0; i < nw; i++) {
        struct mm_part *pt = &job.part[job.n_parts];
        if (w[i]->n == 0)
            continue;
        const size_t w_row = type_row_size(w[i]->type, k);
        int64_t rows = w[i]->n / ((int64_t)nth * 4);
        const int64_t cap_rows = (int64_t)(MM_CHUNK_BYTES / w_row);
        if (b > job.act_tile && rows > cap_rows)
            rows = cap_rows;
        pt->gemm = kt->gemm[w[i]->type];
        pt->w = w[i]->data;
        pt->w_stride = w[i]->row_stride;
        pt->n = w[i]->n;
        pt->y = y[i];
        pt->chunk_rows = round_down(rows, 16);
        pt->n_chunks = (pt->n + pt->chunk_rows - 1) / pt->chunk_rows;
        pt->first_chunk = job.n_chunks;
        job.n_chunks += pt->n_chunks;
        job.n_parts++;
    }
    if (job.n_chunks < nth)
        nth = (int)job.n_chunks;
    atomic_init(&job.next_chunk, nth);
    pool_run_n(ctx->pool, nth, mm_gemm_worker, &job);
    return 0;
}

int matmul(struct mm_ctx *ctx, const struct mm_weight *w, const float *x, int64_t b, float *y,
           char *err, size_t errlen)
{
    const struct mm_weight *ws[1] = {w};
    float *ys[1] = {y};
    return matmul_n(ctx, ws, 1, x, b, ys, err, errlen);
}
