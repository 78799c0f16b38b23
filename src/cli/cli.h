/*
 * cli.h: the `pagoda` subcommands. Each takes the arguments after its name
 * (argv[0] is the subcommand) and returns the process exit code; only the
 * command-line layer prints usage or exits.
 */
#ifndef PAGODA_CLI_H
#define PAGODA_CLI_H

#include <stddef.h>

int cmd_info(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_rm(int argc, char **argv);
/* `pagoda bench serve` and `pagoda bench engine` (argv[0] is "serve"/"engine"). */
int cmd_bench_serve(int argc, char **argv);
int cmd_bench_engine(int argc, char **argv);

/* Prints "pagoda: <msg>" to stderr and returns 1 (the exit code for a failed command). */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Set by cli_on_sigint: generation loops poll it so Ctrl-C stops a reply. */
extern volatile int cli_interrupted;
void cli_on_sigint(int sig);
/* Writes generated text to stdout at once (a session's on_text callback). */
int cli_print_text(void *user, const char *text, size_t len);

struct model;
struct tokenizer;
/* Loads the model at path (the cached default model when path is NULL) and
 * its tokenizer. On failure prints one "pagoda: <cmd>: ..." line and returns 1. */
int cli_open_model(const char *cmd, const char *path, struct model **m, struct tokenizer **tok);
/* The context length to use: requested when > 0, else the model's, at most 4096. */
long long cli_context(const struct model *m, long long requested);

/* Parses a whole decimal integer within [lo, hi]; returns 0 or -1. */
int cli_parse_int(const char *s, long long lo, long long hi, long long *out);
/* Parses a byte count: digits with an optional K/M/G/T suffix, binary (KiB,
 * MiB, GiB, TiB, or a bare K/M/G/T) or decimal (KB, MB, GB, TB); returns 0 or -1. */
int cli_parse_size(const char *s, unsigned long long *out);
/* The model file to use: path when given, else the cached default model
 * (with a message saying how to get it when it is missing). Returns 0, or 1
 * after printing "pagoda: <cmd>: ...". */
int cli_model_path(const char *cmd, const char *path, char *out, size_t outlen);
/* Parses a finite float; returns 0 or -1. */
int cli_parse_float(const char *s, double *out);

#endif
