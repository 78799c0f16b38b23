/*
 * cmd_quantize.c: `pagoda quantize IN.gguf OUT.gguf TYPE`: rewrites a model
 * with a preset's per-tensor weight types, with a progress bar on a terminal.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/pool.h"
#include "cli/cli.h"
#include "model/quant_recipe.h"
#include "model/quantize.h"
#include "ops/types.h"

struct qz_bar {
    int last; /* permille last drawn, -1 before the first */
};

static void quantize_usage(FILE *f)
{
    fprintf(f, "usage: pagoda quantize IN.gguf OUT.gguf TYPE [--threads N]\n\n"
               "Writes OUT.gguf with the weights of IN.gguf in TYPE, choosing each tensor's\n"
               "type the usual way for that preset (e.g. q4_k_m keeps the output matrix and\n"
               "some attn_v/ffn_down in q6_K). Every metadata key is kept.\n\n"
               "types: q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k_m q4_k_s q4_k_m q5_k_m q6_k bf16 f16\n"
               "also:");
    for (const char *const *p = quant_preset_names(); *p; p++)
        if (!strstr(" q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k_m q4_k_s q4_k_m q5_k_m q6_k bf16 f16 ",
                    *p) ||
            strchr(*p, '-'))
            fprintf(f, " %s", *p);
    fprintf(f, "\n");
}

static void draw_bar(void *user, uint64_t done, uint64_t total, const char *tensor)
{
    struct qz_bar *b = user;
    const int permille = total ? (int)(done * 1000 / total) : 1000;
    if (permille == b->last)
        return;
    b->last = permille;
    const int width = 30, fill = permille * width / 1000;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r[%s] %5.1f%% %-32.32s", bar, permille / 10.0, tensor);
    if (done >= total)
        fprintf(stderr, "\n");
    fflush(stderr);
}

int cmd_quantize(int argc, char **argv)
{
    const char *pos[3] = {NULL, NULL, NULL};
    int n_pos = 0;
    long long threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            quantize_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            if (i + 1 >= argc || cli_parse_int(argv[i + 1], 1, 1024, &threads))
                return cli_fail("quantize: %s needs a thread count in [1, 1024]", a);
            i++;
            continue;
        }
        if (a[0] == '-' && a[1]) {
            quantize_usage(stderr);
            return cli_fail("quantize: unknown option '%s'", a);
        }
        if (n_pos == 3) {
            quantize_usage(stderr);
            return cli_fail("quantize: unexpected argument '%s'", a);
        }
        pos[n_pos++] = a;
    }
    if (n_pos < 3) {
        quantize_usage(stderr);
        return cli_fail("quantize: IN.gguf, OUT.gguf and TYPE are required");
    }
    if (!quant_preset_valid(pos[2]))
        return cli_fail("quantize: unknown type '%s' (expected one of q8_0 q4_0 q4_1 q5_0 q5_1 "
                        "q2_k q3_k_m q4_k_s q4_k_m q5_k_m q6_k bf16 f16; see --help)",
                        pos[2]);
    if (!strcmp(pos[0], pos[1]))
        return cli_fail("quantize: OUT.gguf must differ from IN.gguf");

    char err[512] = "";
    struct pool *pool = pool_create((int)threads, err, sizeof err);
    if (!pool)
        return cli_fail("quantize: %s", err);
    struct qz_bar bar = {-1};
    const struct quantize_params p = {
        .preset = pos[2],
        .pool = pool,
        .progress = isatty(STDERR_FILENO) ? draw_bar : NULL,
        .progress_user = &bar,
    };
    struct quantize_stats st;
    const double t0 = clock_now();
    int rc = quantize_file(pos[0], pos[1], &p, &st, err, sizeof err);
    const int n_threads = pool_size(pool);
    pool_destroy(pool);
    if (rc < 0)
        return cli_fail("quantize: %s", err);
    printf("wrote %s: %s, %d tensors, %.2f MB -> %.2f MB in %.2f s (%d threads)\n  types:",
           pos[1], pos[2], st.n_tensors, st.in_bytes / 1e6, st.out_bytes / 1e6,
           clock_now() - t0, n_threads);
    for (int k = 0; k < PG_TYPE_COUNT; k++)
        if (st.type_count[k])
            printf(" %s x%d", type_name(k), st.type_count[k]);
    printf("\n");
    if (st.n_requantized)
        printf("  note: %d tensors were already quantized in the input; requantizing loses "
               "more accuracy than quantizing from f32/f16/bf16\n",
               st.n_requantized);
    return 0;
}
