/*
 * cmd_run.c: `pagoda run`: generate text from a prompt with one model and
 * stream it to stdout; a timing summary goes to stderr (or, with --json, one
 * JSON object to stdout at the end).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/paths.h"
#include "base/pool.h"
#include "cli/cli.h"
#include "engine/sampler.h"
#include "pagoda.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#define RUN_MAX_STOPS 16
#define RUN_CHUNK 256 /* prompt tokens per forward pass */

static volatile sig_atomic_t g_interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    g_interrupted = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: pagoda run [MODEL.gguf] -p TEXT [options]\n"
            "\n"
            "Generates a continuation of TEXT and streams it to stdout. Without MODEL it\n"
            "uses the default model (`pagoda pull default` fetches it).\n"
            "\n"
            "  -p, --prompt TEXT       the prompt (default: empty, i.e. start from BOS)\n"
            "  -n, --max-tokens N      tokens to generate (default 256)\n"
            "  --temp T                temperature; 0 = greedy (default 0.8)\n"
            "  --top-k K               keep the K most likely tokens (default 40; 0 = off)\n"
            "  --top-p P               nucleus sampling (default 0.95; 1 = off)\n"
            "  --min-p M               drop tokens below M x the top probability (default 0.05)\n"
            "  --repeat-penalty R      penalize recent tokens (default 1 = off)\n"
            "  --presence-penalty X    (default 0)\n"
            "  --frequency-penalty X   (default 0)\n"
            "  --penalty-last-n N      window of the penalties (default 64)\n"
            "  --seed S                random seed (default 0)\n"
            "  --stop TEXT             stop when TEXT appears (not printed); repeatable\n"
            "  --ignore-eos            keep generating past end-of-text tokens\n"
            "  --special               parse special tokens like <s> in the prompt\n"
            "  --no-bos                do not add BOS even if the model asks for it\n"
            "  --ctx N                 context length (default: the model's, at most 4096)\n"
            "  -t, --threads N         threads (default: all CPUs)\n"
            "  --json                  print one JSON object at the end instead of streaming\n");
}

struct run_opts {
    const char *model;
    const char *prompt;
    long long max_tokens;
    struct sampler_params sp;
    const char *stops[RUN_MAX_STOPS];
    int n_stops;
    int ignore_eos, special, no_bos, json;
    long long ctx, threads;
};

static int parse_args(int argc, char **argv, struct run_opts *o)
{
    memset(o, 0, sizeof *o);
    o->prompt = "";
    o->max_tokens = 256;
    sampler_params_default(&o->sp);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        double f;
        long long n;
#define NEED_VALUE()                                                                         \
    do {                                                                                     \
        if (!v)                                                                              \
            return cli_fail("run: %s needs a value", a);                                     \
        i++;                                                                                 \
    } while (0)
#define FLOAT_OPT(name, field)                                                               \
    if (!strcmp(a, name)) {                                                                  \
        NEED_VALUE();                                                                        \
        if (cli_parse_float(v, &f))                                                          \
            return cli_fail("run: %s wants a number, not '%s'", a, v);                      \
        field = (float)f;                                                                    \
        continue;                                                                            \
    }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 2;
        }
        if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            NEED_VALUE();
            o->prompt = v;
            continue;
        }
        if (!strcmp(a, "-n") || !strcmp(a, "--max-tokens")) {
            NEED_VALUE();
            if (cli_parse_int(v, 0, 1 << 24, &o->max_tokens))
                return cli_fail("run: %s wants a whole number >= 0, not '%s'", a, v);
            continue;
        }
        FLOAT_OPT("--temp", o->sp.temperature)
        FLOAT_OPT("--top-p", o->sp.top_p)
        FLOAT_OPT("--min-p", o->sp.min_p)
        FLOAT_OPT("--repeat-penalty", o->sp.repeat_penalty)
        FLOAT_OPT("--presence-penalty", o->sp.presence_penalty)
        FLOAT_OPT("--frequency-penalty", o->sp.frequency_penalty)
        if (!strcmp(a, "--top-k") || !strcmp(a, "--penalty-last-n") || !strcmp(a, "--seed")) {
            NEED_VALUE();
            long long lo = !strcmp(a, "--penalty-last-n") ? -1 : 0;
            if (cli_parse_int(v, lo, !strcmp(a, "--seed") ? INT64_MAX : (1 << 30), &n))
                return cli_fail("run: %s wants a whole number, not '%s'", a, v);
            if (!strcmp(a, "--top-k"))
                o->sp.top_k = (int)n;
            else if (!strcmp(a, "--penalty-last-n"))
                o->sp.penalty_last_n = (int)n;
            else
                o->sp.seed = (uint64_t)n;
            continue;
        }
        if (!strcmp(a, "--stop")) {
            NEED_VALUE();
            if (!*v)
                return cli_fail("run: --stop wants a non-empty text");
            if (o->n_stops == RUN_MAX_STOPS)
                return cli_fail("run: at most %d --stop texts", RUN_MAX_STOPS);
            o->stops[o->n_stops++] = v;
            continue;
        }
        if (!strcmp(a, "--ctx") || !strcmp(a, "-c")) {
            NEED_VALUE();
            if (cli_parse_int(v, 1, 1 << 24, &o->ctx))
                return cli_fail("run: %s wants a whole number >= 1, not '%s'", a, v);
            continue;
        }
        if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            NEED_VALUE();
            if (cli_parse_int(v, 1, 1024, &o->threads))
                return cli_fail("run: %s wants a thread count from 1 to 1024, not '%s'", a, v);
            continue;
        }
        if (!strcmp(a, "--ignore-eos")) { o->ignore_eos = 1; continue; }
        if (!strcmp(a, "--special")) { o->special = 1; continue; }
        if (!strcmp(a, "--no-bos")) { o->no_bos = 1; continue; }
        if (!strcmp(a, "--json")) { o->json = 1; continue; }
        if (a[0] == '-' && a[1])
            return cli_fail("run: unknown option '%s' (see pagoda run --help)", a);
        if (o->model)
            return cli_fail("run: more than one model given ('%s' and '%s')", o->model, a);
        o->model = a;
#undef FLOAT_OPT
#undef NEED_VALUE
    }
    return 0;
}

/* Output with stop strings: text that might be the start of a stop string is
 * held back until it is known not to be one. */
struct text_out {
    char *buf;   /* generated text so far */
    size_t len, cap;
    size_t sent; /* bytes already written to stdout */
    int stream;
};

static int text_append(struct text_out *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        size_t cap = (t->len + n + 1) * 2;
        char *b = realloc(t->buf, cap);
        if (!b)
            return -1;
        t->buf = b;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
    return 0;
}

/* Returns 1 when a stop string has appeared (the text is cut before it). */
static int text_check_stops(struct text_out *t, const struct run_opts *o, int final)
{
    size_t safe = t->len;
    for (int i = 0; i < o->n_stops; i++) {
        const char *hit = strstr(t->buf, o->stops[i]);
        if (hit) {
            t->len = (size_t)(hit - t->buf);
            t->buf[t->len] = '\0';
            return 1;
        }
        if (!final) {
            /* Hold back the longest tail that is a prefix of this stop string. */
            size_t sl = strlen(o->stops[i]);
            for (size_t k = sl - 1; k > 0; k--) {
                if (k <= t->len && !memcmp(t->buf + t->len - k, o->stops[i], k)) {
                    if (t->len - k < safe)
                        safe = t->len - k;
                    break;
                }
            }
        }
    }
    if (t->stream && safe > t->sent) {
        fwrite(t->buf + t->sent, 1, safe - t->sent, stdout);
        fflush(stdout);
        t->sent = safe;
    }
    return 0;
}

static void text_flush(struct text_out *t)
{
    if (t->stream && t->len > t->sent) {
        fwrite(t->buf + t->sent, 1, t->len - t->sent, stdout);
        t->sent = t->len;
    }
    if (t->stream)
        fflush(stdout);
}

int cmd_run(int argc, char **argv)
{
    struct run_opts o;
    int prc = parse_args(argc, argv, &o);
    if (prc)
        return prc == 2 ? 0 : prc;
    char err[512];
    char default_path[4096];
    if (!o.model) {
        char dir[4096];
        if (paths_models_dir(dir, sizeof dir, err, sizeof err) ||
            paths_join(default_path, sizeof default_path, dir, "stories15M.gguf", err, sizeof err))
            return cli_fail("run: %s", err);
        FILE *f = fopen(default_path, "rb");
        if (!f)
            return cli_fail("run: no model given and the default model is not in the cache "
                            "(%s); run `pagoda pull default` first", default_path);
        fclose(f);
        o.model = default_path;
    }

    double t0 = clock_now();
    struct model *m = NULL;
    struct tokenizer *tok = NULL;
    struct pool *pool = NULL;
    struct fwd_ctx *fc = NULL;
    struct sampler *smp = NULL;
    struct tokenizer_stream *stream = NULL;
    struct kv_store kv = {0};
    int32_t *tokens = NULL, *blocks = NULL, *pos = NULL, *seq = NULL;
    float *logits = NULL;
    struct text_out out = {0};
    int rc = 1;

    if (model_load(o.model, &m, err, sizeof err)) {
        cli_fail("run: %s", err);
        goto done;
    }
    if (tokenizer_load(m->gguf, &tok, err, sizeof err)) {
        cli_fail("run: %s: %s", o.model, err);
        goto done;
    }
    const struct model_hparams *hp = &m->hp;
    if (tokenizer_n_vocab(tok) > hp->n_vocab) {
        cli_fail("run: %s: the tokenizer has %d tokens but the model only %d", o.model,
                 tokenizer_n_vocab(tok), hp->n_vocab);
        goto done;
    }
    long long ctx = o.ctx ? o.ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);

    /* Prompt. */
    size_t n_prompt = 0;
    size_t cap = strlen(o.prompt) + 16;
    tokens = malloc(sizeof(int32_t) * (size_t)(cap + (size_t)o.max_tokens + 1));
    if (!tokens) {
        cli_fail("run: out of memory");
        goto done;
    }
    bool add_special = !o.no_bos;
    int erc = tokenizer_encode(tok, o.prompt, strlen(o.prompt), add_special, o.special != 0,
                               tokens, cap, &n_prompt);
    if (erc) {
        cli_fail("run: cannot tokenize the prompt (%s)", pagoda_status_str(erc));
        goto done;
    }
    if (n_prompt == 0) {
        /* Nothing to condition on: start from BOS as the model would. */
        int32_t bos = tokenizer_bos(tok);
        if (bos < 0) {
            cli_fail("run: the prompt is empty and the model has no BOS token");
            goto done;
        }
        tokens[n_prompt++] = bos;
    }
    if ((long long)n_prompt >= ctx) {
        cli_fail("run: the prompt has %zu tokens, more than the context of %lld allows "
                 "(use --ctx to raise it, at most the memory you have)", n_prompt, ctx);
        goto done;
    }
    long long max_new = o.max_tokens;
    if ((long long)n_prompt + max_new > ctx)
        max_new = ctx - (long long)n_prompt;

    pool = pool_create((int)o.threads, err, sizeof err);
    if (!pool) {
        cli_fail("run: %s", err);
        goto done;
    }
    const int bs = 16;
    int chunk = RUN_CHUNK;
    fc = fwd_ctx_create(m, pool, chunk, (int)ctx, err, sizeof err);
    smp = sampler_create(&o.sp, hp->n_vocab, err, sizeof err);
    if (!fc || !smp) {
        cli_fail("run: %s", err);
        goto done;
    }
    kv_store_layout(&kv, hp->n_layer, hp->n_head_kv, hp->head_dim, bs);
    kv.n_blocks = (ctx + bs - 1) / bs;
    kv.data = malloc(kv.block_bytes * (size_t)kv.n_blocks);
    blocks = malloc(sizeof(int32_t) * (size_t)kv.n_blocks);
    pos = malloc(sizeof(int32_t) * (size_t)chunk);
    seq = calloc((size_t)chunk, sizeof(int32_t));
    logits = malloc(sizeof(float) * (size_t)hp->n_vocab);
    if (!kv.data || !blocks || !pos || !seq || !logits) {
        cli_fail("run: out of memory for a context of %lld tokens", ctx);
        goto done;
    }
    for (int64_t i = 0; i < kv.n_blocks; i++)
        blocks[i] = (int32_t)i;
    const int32_t *tables[1] = {blocks};
    if (tokenizer_stream_create(tok, false, true, &stream)) {
        cli_fail("run: out of memory");
        goto done;
    }
    out.stream = !o.json;
    double t_load = clock_now() - t0;

    if (out.stream && *o.prompt) {
        fputs(o.prompt, stdout);
        fflush(stdout);
    }
    signal(SIGINT, on_sigint);
    /* Prefill in chunks; only the last prompt token needs logits. */
    double t1 = clock_now();
    for (size_t done_n = 0; done_n < n_prompt;) {
        int n = (int)(n_prompt - done_n < (size_t)chunk ? n_prompt - done_n : (size_t)chunk);
        for (int i = 0; i < n; i++)
            pos[i] = (int32_t)(done_n + (size_t)i);
        int32_t last = n - 1;
        bool final = done_n + (size_t)n == n_prompt;
        struct fwd_batch b = {n, tokens + done_n, pos, seq, tables, final ? 1 : 0, &last};
        if (model_forward(m, fc, &kv, &b, logits, err, sizeof err)) {
            cli_fail("run: %s", err);
            goto done;
        }
        done_n += (size_t)n;
    }
    double t_prompt = clock_now() - t1;

    const char *finish = "length";
    long long n_gen = 0;
    double t2 = clock_now();
    while (n_gen < max_new) {
        if (g_interrupted) {
            finish = "interrupted";
            break;
        }
        int32_t next = sampler_sample(smp, logits, tokens, (int64_t)n_prompt + n_gen);
        tokens[n_prompt + (size_t)n_gen] = next;
        n_gen++;
        if (!o.ignore_eos && tokenizer_is_eog(tok, next)) {
            finish = "stop";
            break;
        }
        const char *piece;
        size_t plen;
        if (tokenizer_stream_push(stream, next, &piece, &plen) == 0 && plen &&
            text_append(&out, piece, plen)) {
            cli_fail("run: out of memory");
            goto done;
        }
        if (text_check_stops(&out, &o, 0)) {
            finish = "stop";
            break;
        }
        if (n_gen == max_new)
            break;
        int32_t p = (int32_t)(n_prompt + (size_t)n_gen - 1), zero = 0;
        struct fwd_batch b = {1, &tokens[p], &p, seq, tables, 1, &zero};
        if (model_forward(m, fc, &kv, &b, logits, err, sizeof err)) {
            cli_fail("run: %s", err);
            goto done;
        }
    }
    double t_gen = clock_now() - t2;
    if (strcmp(finish, "stop") != 0 || !o.n_stops) {
        const char *piece;
        size_t plen;
        if (tokenizer_stream_flush(stream, &piece, &plen) == 0 && plen)
            text_append(&out, piece, plen);
        if (text_check_stops(&out, &o, 1))
            finish = "stop";
    }
    text_flush(&out);
    signal(SIGINT, SIG_DFL);

    if (o.json) {
        cJSON *j = cJSON_CreateObject();
        cJSON *pt = cJSON_AddArrayToObject(j, "prompt_tokens");
        for (size_t i = 0; i < n_prompt; i++)
            cJSON_AddItemToArray(pt, cJSON_CreateNumber(tokens[i]));
        cJSON *gt = cJSON_AddArrayToObject(j, "tokens");
        for (long long i = 0; i < n_gen; i++)
            cJSON_AddItemToArray(gt, cJSON_CreateNumber(tokens[n_prompt + (size_t)i]));
        cJSON_AddStringToObject(j, "text", out.buf ? out.buf : "");
        cJSON_AddStringToObject(j, "finish_reason", finish);
        cJSON *tm = cJSON_AddObjectToObject(j, "timings");
        cJSON_AddNumberToObject(tm, "load_s", t_load);
        cJSON_AddNumberToObject(tm, "prompt_s", t_prompt);
        cJSON_AddNumberToObject(tm, "prompt_tokens_per_s", t_prompt > 0 ? (double)n_prompt / t_prompt : 0);
        cJSON_AddNumberToObject(tm, "generate_s", t_gen);
        cJSON_AddNumberToObject(tm, "generated_tokens_per_s", t_gen > 0 ? (double)n_gen / t_gen : 0);
        char *s = cJSON_PrintUnformatted(j);
        if (s)
            printf("%s\n", s);
        free(s);
        cJSON_Delete(j);
    } else {
        fputc('\n', stdout);
        fprintf(stderr,
                "\nload %.3f s | prompt %zu tokens, %.1f tok/s | generated %lld tokens, %.1f tok/s | %s\n",
                t_load, n_prompt, t_prompt > 0 ? (double)n_prompt / t_prompt : 0.0, n_gen,
                t_gen > 0 ? (double)n_gen / t_gen : 0.0, finish);
    }
    rc = 0;
done:
    free(out.buf);
    tokenizer_stream_free(stream);
    free(logits);
    free(seq);
    free(pos);
    free(blocks);
    free(kv.data);
    sampler_free(smp);
    fwd_ctx_free(fc);
    pool_destroy(pool);
    free(tokens);
    tokenizer_free(tok);
    model_free(m);
    return rc;
}
