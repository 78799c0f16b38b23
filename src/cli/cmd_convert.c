/* cmd_convert.c: `pagoda convert`: a Hugging Face model folder, or a
 * llama2.c checkpoint and tokenizer, to GGUF. */
#include <stdio.h>
#include <string.h>

#include "base/pool.h"
#include "cli/cli.h"
#include "model/import_hf.h"
#include "model/import_llama2c.h"
#include "model/quant_recipe.h"

static void convert_usage(FILE *f)
{
    fprintf(f,
            "usage: pagoda convert HF_DIR -o OUT.gguf [--type f16|bf16|f32|q8_0|q4_k_m]\n"
            "                      [--name NAME] [--threads N]\n"
            "       pagoda convert --llama2c MODEL.bin --tokenizer TOKENIZER.bin -o OUT.gguf\n"
            "                      [--name NAME]\n"
            "\n"
            "HF_DIR is a Hugging Face model folder of the llama, mistral, qwen2 or qwen3\n"
            "family: config.json, tokenizer.json, tokenizer_config.json and the weights\n"
            "in model.safetensors or shards listed by model.safetensors.index.json\n"
            "(F32, F16 or BF16). --type picks the weight types (default f16; any preset\n"
            "of `pagoda quantize` works).\n"
            "\n"
            "With --llama2c: converts a llama2.c checkpoint (legacy or version 1 float32\n"
            "export) and its tokenizer.bin into a llama-architecture GGUF file with F32\n"
            "weights.\n"
            "\n"
            "  --llama2c FILE    the checkpoint (model.bin)\n"
            "  --tokenizer FILE  the llama2.c tokenizer (tokenizer.bin)\n"
            "  -o, --output FILE where to write the GGUF file\n"
            "  --name NAME       general.name (default: the folder or checkpoint name)\n");
}

static int convert_hf(const char *dir, const char *out, const char *type, const char *name,
                      const char *threads)
{
    long long nt = 0;
    if (threads && cli_parse_int(threads, 1, 1024, &nt))
        return cli_fail("convert: --threads must be an integer in [1, 1024], got '%s'", threads);
    if (!quant_preset_valid(type))
        return cli_fail("convert: unknown --type '%s' (f16, bf16, f32, q8_0, q4_k_m, ...)", type);
    char err[512] = "";
    struct pool *pool = pool_create((int)nt, err, sizeof err);
    if (!pool)
        return cli_fail("convert: %s", err);
    const struct hf_convert_opts o = {type, name, pool};
    struct hf_config c;
    int rc = hf_convert(dir, out, &o, &c, err, sizeof err);
    pool_destroy(pool);
    if (rc < 0)
        return cli_fail("convert: %s", err);
    printf("wrote %s: %s (%s), n_embd %d, %d layers, %d heads (%d kv), head size %d, ff %d, "
           "context %d, %s\n",
           out, c.arch, c.model_type, c.n_embd, c.n_layer, c.n_head, c.n_head_kv, c.head_dim,
           c.n_ff, c.n_ctx, type);
    return 0;
}

int cmd_convert(int argc, char **argv)
{
    const char *model = NULL, *tokenizer = NULL, *out = NULL, *name = NULL, *hf_dir = NULL,
               *type = NULL, *threads = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            convert_usage(stdout);
            return 0;
        }
        if (a[0] != '-' && !hf_dir) {
            hf_dir = a;
            continue;
        }
        const char **slot = !strcmp(a, "--llama2c")                        ? &model
                            : !strcmp(a, "--tokenizer")                    ? &tokenizer
                            : (!strcmp(a, "-o") || !strcmp(a, "--output")) ? &out
                            : !strcmp(a, "--name")                         ? &name
                            : !strcmp(a, "--type")                         ? &type
                            : (!strcmp(a, "-t") || !strcmp(a, "--threads")) ? &threads
                                                                           : NULL;
        if (!slot) {
            convert_usage(stderr);
            return cli_fail("convert: unknown argument '%s'", a);
        }
        if (i + 1 >= argc || !argv[i + 1][0])
            return cli_fail("convert: %s needs a value", a);
        *slot = argv[++i];
    }
    if (hf_dir) {
        if (model || tokenizer)
            return cli_fail("convert: give either HF_DIR or --llama2c, not both");
        if (!out)
            return cli_fail("convert: -o OUT.gguf is required");
        return convert_hf(hf_dir, out, type ? type : "f16", name, threads);
    }
    if (type || threads)
        return cli_fail("convert: --type and --threads apply to Hugging Face folders only");
    if (!model || !tokenizer || !out) {
        convert_usage(stderr);
        return cli_fail("convert: HF_DIR (or --llama2c and --tokenizer) and -o OUT.gguf are required");
    }
    char err[512] = "";
    struct llama2c_config c;
    int rc = llama2c_convert_files(model, tokenizer, name, out, &c, err, sizeof err);
    if (rc < 0)
        return cli_fail("convert: %s", err);
    printf("wrote %s: llama, dim %d, %d layers, %d heads (%d kv), ff %d, vocab %d, context %d, "
           "%s classifier, %s format\n",
           out, c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.hidden_dim, c.vocab_size,
           c.seq_len, c.shared_classifier ? "shared" : "separate",
           c.format == LLAMA2C_FORMAT_V1 ? "version 1" : "legacy");
    return 0;
}
