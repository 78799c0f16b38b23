/*
 * cli_model.c: what `run` and `chat` share before they generate: finding the
 * model (the default one from the cache when none is named), loading it with
 * its tokenizer, and choosing the context length.
 */
#include <stdio.h>
#include <string.h>

#include "base/paths.h"
#include "cli/cli.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

/* The longest context used when the user gives none: the model's own, capped so
 * the KV cache of a big-context model does not take gigabytes by surprise. */
#define CLI_DEFAULT_CTX 4096

int cli_model_path(const char *cmd, const char *path, char *out, size_t outlen)
{
    char err[512], dir[4096];
    if (path) {
        if (strlen(path) >= outlen)
            return cli_fail("%s: model path too long", cmd);
        strcpy(out, path);
        return 0;
    }
    if (paths_models_dir(dir, sizeof dir, err, sizeof err) ||
        paths_join(out, outlen, dir, "stories15M.gguf", err, sizeof err))
        return cli_fail("%s: %s", cmd, err);
    FILE *f = fopen(out, "rb");
    if (!f)
        return cli_fail("%s: no model given and the default model is not in the cache "
                        "(%s); run `pagoda pull default` first", cmd, out);
    fclose(f);
    return 0;
}

int cli_open_model(const char *cmd, const char *path, struct model **m, struct tokenizer **tok)
{
    char err[512], default_path[4096];
    *m = NULL;
    *tok = NULL;
    if (!path) {
        if (cli_model_path(cmd, NULL, default_path, sizeof default_path))
            return 1;
        path = default_path;
    }
    if (model_load(path, m, err, sizeof err))
        return cli_fail("%s: %s", cmd, err);
    if (tokenizer_load((*m)->gguf, tok, err, sizeof err)) {
        model_free(*m);
        *m = NULL;
        return cli_fail("%s: %s: %s", cmd, path, err);
    }
    if (tokenizer_n_vocab(*tok) > (*m)->hp.n_vocab) {
        cli_fail("%s: %s: the tokenizer has %d tokens but the model only %d", cmd, path,
                 tokenizer_n_vocab(*tok), (*m)->hp.n_vocab);
        tokenizer_free(*tok);
        model_free(*m);
        *tok = NULL;
        *m = NULL;
        return 1;
    }
    return 0;
}

long long cli_context(const struct model *m, long long requested)
{
    if (requested > 0)
        return requested;
    return m->hp.n_ctx_train < CLI_DEFAULT_CTX ? m->hp.n_ctx_train : CLI_DEFAULT_CTX;
}
