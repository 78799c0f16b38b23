/*
 * cmd_tokenize.c: `pagoda tokenize`: shows how a model's tokenizer splits a
 * text (ids and the bytes of each token) or, with --decode, turns a list of
 * ids back into text.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "gguf/gguf.h"
#include "pagoda.h"
#include "tokenizer/tokenizer.h"

static void tokenize_usage(FILE *f)
{
    fprintf(f,
            "usage: pagoda tokenize MODEL.gguf [--ids] [--no-bos] [--special] TEXT\n"
            "       pagoda tokenize MODEL.gguf [--special] --decode ID,ID,...\n\n"
            "Prints the tokens of TEXT, one per line: id, the token's bytes (escaped)\n"
            "and its vocabulary text. --ids prints only the ids on one line.\n"
            "--no-bos adds no BOS/EOS even when the model asks for them.\n"
            "--special lets control tokens written in TEXT (such as <s>) be parsed,\n"
            "and shows them when decoding. --decode prints the text of the ids.\n");
}

/* Prints bytes with quotes, escaping what a terminal would not show. */
static void print_quoted(const char *s, size_t n)
{
    putchar('\'');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\t')
            fputs("\\t", stdout);
        else if (c == '\\' || c == '\'')
            printf("\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    putchar('\'');
}

static int parse_ids(const char *s, int32_t n_vocab, int32_t **out, size_t *n_out)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids)
        return -1;
    size_t n = 0;
    const char *p = s;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char buf[32];
        long long v;
        if (len == 0 || len >= sizeof buf) {
            free(ids);
            return -1;
        }
        memcpy(buf, p, len);
        buf[len] = 0;
        if (cli_parse_int(buf, 0, (long long)n_vocab - 1, &v) != 0) {
            free(ids);
            return -1;
        }
        ids[n++] = (int32_t)v;
        if (!comma)
            break;
        p = comma + 1;
        if (!*p) { /* a trailing comma */
            free(ids);
            return -1;
        }
    }
    *out = ids;
    *n_out = n;
    return 0;
}

static int decode_ids(const struct tokenizer *t, const char *list, bool special)
{
    int32_t *ids;
    size_t n;
    if (parse_ids(list, tokenizer_n_vocab(t), &ids, &n) != 0)
        return cli_fail("--decode: '%s' is not a list of ids in 0..%d separated by commas",
                        list, tokenizer_n_vocab(t) - 1);
    size_t need = 0;
    tokenizer_decode(t, ids, n, special, NULL, 0, &need);
    char *text = malloc(need + 1);
    size_t got;
    int rc = text ? tokenizer_decode(t, ids, n, special, text, need, &got) : PAGODA_ENOMEM;
    if (rc == 0) {
        fwrite(text, 1, got, stdout);
        putchar('\n');
    }
    free(text);
    free(ids);
    return rc == 0 ? 0 : cli_fail("decoding failed: %s", pagoda_status_str(rc));
}

static int encode_text(const struct tokenizer *t, const char *text, bool add_special,
                       bool special, bool ids_only)
{
    size_t len = strlen(text), n = 0;
    tokenizer_encode(t, text, len, add_special, special, NULL, 0, &n);
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids)
        return cli_fail("out of memory");
    int rc = tokenizer_encode(t, text, len, add_special, special, ids, n, &n);
    if (rc != 0) {
        free(ids);
        return cli_fail("tokenizing failed: %s", pagoda_status_str(rc));
    }
    if (ids_only) {
        for (size_t i = 0; i < n; i++)
            printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
    } else {
        for (size_t i = 0; i < n; i++) {
            size_t pl, tl;
            const char *piece = tokenizer_token_to_piece(t, ids[i], true, &pl);
            const char *vt = tokenizer_token_text(t, ids[i], &tl);
            printf("%8d  ", ids[i]);
            print_quoted(piece, pl);
            printf("  ");
            print_quoted(vt, tl);
            putchar('\n');
        }
        printf("%zu tokens\n", n);
    }
    free(ids);
    return 0;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *text = NULL, *decode = NULL;
    bool ids_only = false, no_bos = false, special = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            tokenize_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--ids")) {
            ids_only = true;
        } else if (!strcmp(a, "--no-bos")) {
            no_bos = true;
        } else if (!strcmp(a, "--special")) {
            special = true;
        } else if (!strcmp(a, "--decode")) {
            if (++i >= argc)
                return cli_fail("--decode needs a list of ids such as 1,2,3");
            decode = argv[i];
        } else if (!strcmp(a, "--")) {
            if (i + 1 < argc && !text && model) {
                text = argv[++i];
                continue;
            }
            tokenize_usage(stderr);
            return 1;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "pagoda: tokenize: unknown option '%s'\n\n", a);
            tokenize_usage(stderr);
            return 1;
        } else if (!model) {
            model = a;
        } else if (!text) {
            text = a;
        } else {
            return cli_fail("tokenize: one text only (quote it): extra argument '%s'", a);
        }
    }
    if (!model || (!text && !decode) || (text && decode)) {
        tokenize_usage(stderr);
        return 1;
    }
    char err[512];
    struct gguf_file *g = NULL;
    struct tokenizer *t = NULL;
    if (gguf_open(model, &g, err, sizeof err) != 0)
        return cli_fail("%s: %s", model, err);
    int rc = tokenizer_load(g, &t, err, sizeof err);
    gguf_close(g);
    if (rc != 0)
        return cli_fail("%s: %s", model, err);
    rc = decode ? decode_ids(t, decode, special)
                : encode_text(t, text, !no_bos, special, ids_only);
    tokenizer_free(t);
    return rc;
}
