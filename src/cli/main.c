/* main.c: the `pagoda` executable: picks a subcommand and runs it. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "pagoda.h"

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
};

static const struct command commands[] = {
    {"run", cmd_run, "generate text from a prompt (streams to stdout)"},
    {"chat", cmd_chat, "talk with a model using its chat template"},
    {"serve", cmd_serve, "serve a model over an OpenAI-compatible HTTP API"},
    {"info", cmd_info, "show a GGUF model: architecture, tensors, memory needs"},
    {"synth", cmd_synth, "write a model of real shape with seeded random weights"},
    {"bench", cmd_bench, "measure memory bandwidth, int8 peak and kernel speed"},
    {"tokenize", cmd_tokenize, "show how a model's tokenizer splits text (and back)"},
    {"convert", cmd_convert, "convert a llama2.c checkpoint or a Hugging Face model to GGUF"},
    {"quantize", cmd_quantize, "rewrite a GGUF model's weights in another type"},
    {"pull", cmd_pull, "fetch a model into the local cache (`pull default`, `pull hf://...`)"},
    {"list", cmd_list, "show the models in the local cache"},
    {"rm", cmd_rm, "remove a model from the local cache"},
};

static void usage(FILE *f)
{
    fprintf(f, "pagoda %s: LLM inference on any CPU\n\nusage: pagoda <command> [args]\n\n",
            PAGODA_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n`pagoda <command> --help` shows a command's options.\n");
}

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("pagoda: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

volatile int cli_interrupted;

void cli_on_sigint(int sig)
{
    (void)sig;
    cli_interrupted = 1;
}

int cli_print_text(void *user, const char *text, size_t len)
{
    (void)user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

int cli_parse_int(const char *s, long long lo, long long hi, long long *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_size(const char *s, unsigned long long *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || end == s || !(v >= 0) || !isfinite(v))
        return -1;
    static const struct {
        const char *suffix;
        double mult;
    } units[] = {
        {"", 1},           {"B", 1},          {"K", 1024.0},         {"KiB", 1024.0},
        {"KB", 1e3},       {"M", 1048576.0},  {"MiB", 1048576.0},    {"MB", 1e6},
        {"G", 1073741824.0}, {"GiB", 1073741824.0}, {"GB", 1e9},    {"T", 1099511627776.0},
        {"TiB", 1099511627776.0}, {"TB", 1e12},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcmp(end, units[i].suffix)) {
            double b = v * units[i].mult;
            if (b >= 18446744073709551615.0)
                return -1;
            *out = (unsigned long long)b;
            return 0;
        }
    return -1;
}

int cli_parse_float(const char *s, double *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 1 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("pagoda %s\n", PAGODA_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "pagoda: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 1;
}
