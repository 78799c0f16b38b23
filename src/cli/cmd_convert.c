/* cmd_convert.c: `pagoda convert`: a llama2.c checkpoint and tokenizer to GGUF. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "model/import_llama2c.h"

static void convert_usage(FILE *f)
{
    fprintf(f,
            "usage: pagoda convert --llama2c MODEL.bin --tokenizer TOKENIZER.bin -o OUT.gguf\n"
            "                      [--name NAME]\n"
            "\n"
            "Converts a llama2.c checkpoint (legacy or version 1 float32 export) and its\n"
            "tokenizer.bin into a llama-architecture GGUF file with F32 weights.\n"
            "\n"
            "  --llama2c FILE    the checkpoint (model.bin)\n"
            "  --tokenizer FILE  the llama2.c tokenizer (tokenizer.bin)\n"
            "  -o, --output FILE where to write the GGUF file\n"
            "  --name NAME       general.name (default: the checkpoint's file name)\n");
}

int cmd_convert(int argc, char **argv)
{
    const char *model = NULL, *tokenizer = NULL, *out = NULL, *name = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            convert_usage(stdout);
            return 0;
        }
        const char **slot = !strcmp(a, "--llama2c")                        ? &model
                            : !strcmp(a, "--tokenizer")                    ? &tokenizer
                            : (!strcmp(a, "-o") || !strcmp(a, "--output")) ? &out
                            : !strcmp(a, "--name")                         ? &name
                                                                           : NULL;
        if (!slot) {
            convert_usage(stderr);
            return cli_fail("convert: unknown argument '%s'", a);
        }
        if (i + 1 >= argc || !argv[i + 1][0])
            return cli_fail("convert: %s needs a value", a);
        *slot = argv[++i];
    }
    if (!model || !tokenizer || !out) {
        convert_usage(stderr);
        return cli_fail("convert: --llama2c, --tokenizer and -o are required");
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
