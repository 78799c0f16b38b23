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
#include "cli/cli.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "pagoda.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#define RUN_MAX_STOPS SESSION_MAX_STOPS

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

int cmd_run(int argc, char **argv)
{
    struct run_opts o;
    int prc = parse_args(argc, argv, &o);
    if (prc)
        return prc == 2 ? 0 : prc;
    char err[512];
    double t0 = clock_now();
    struct model *m = NULL;
    struct tokenizer *tok = NULL;
    struct session *sess = NULL;
    struct sampler *smp = NULL;
    int32_t *tokens = NULL;
    int rc = 1;

    if (cli_open_model("run", o.model, &m, &tok))
        goto done;
    const struct model_hparams *hp = &m->hp;
    long long ctx = cli_context(m, o.ctx);

    size_t n_prompt = 0;
    size_t cap = strlen(o.prompt) + 16;
    tokens = malloc(sizeof(int32_t) * cap);
    if (!tokens) {
        cli_fail("run: out of memory");
        goto done;
    }
    int erc = tokenizer_encode(tok, o.prompt, strlen(o.prompt), !o.no_bos, o.special != 0,
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
                 "(use --ctx to raise it)", n_prompt, ctx);
        goto done;
    }
    if (session_create(m, tok, (int)ctx, (int)o.threads, &sess, err, sizeof err)) {
        cli_fail("run: %s", err);
        goto done;
    }
    smp = sampler_create(&o.sp, hp->n_vocab, err, sizeof err);
    if (!smp) {
        cli_fail("run: %s", err);
        goto done;
    }
    double t_load = clock_now() - t0;

    if (!o.json && *o.prompt) {
        fputs(o.prompt, stdout);
        fflush(stdout);
    }
    signal(SIGINT, cli_on_sigint);
    double t1 = clock_now();
    if (session_feed(sess, tokens, (int)n_prompt, err, sizeof err)) {
        cli_fail("run: %s", err);
        goto done;
    }
    double t_prompt = clock_now() - t1;

    struct gen_params gp = {0};
    gp.max_tokens = (int)o.max_tokens;
    gp.ignore_eos = o.ignore_eos != 0;
    for (int i = 0; i < o.n_stops; i++)
        gp.stops[i] = o.stops[i];
    gp.n_stops = o.n_stops;
    gp.on_text = o.json ? NULL : cli_print_text;
    gp.cancel = &cli_interrupted;
    struct gen_result res;
    if (session_generate(sess, smp, &gp, &res, err, sizeof err)) {
        cli_fail("run: %s", err);
        goto done;
    }
    signal(SIGINT, SIG_DFL);
    const int32_t *all = session_tokens(sess);

    if (o.json) {
        cJSON *j = cJSON_CreateObject();
        cJSON *pt = cJSON_AddArrayToObject(j, "prompt_tokens");
        for (size_t i = 0; i < n_prompt; i++)
            cJSON_AddItemToArray(pt, cJSON_CreateNumber(tokens[i]));
        cJSON *gt = cJSON_AddArrayToObject(j, "tokens");
        int n_held = session_n_past(sess) - (int)n_prompt;
        for (int i = 0; i < res.n_tokens; i++)
            cJSON_AddItemToArray(gt, cJSON_CreateNumber(i < n_held ? all[n_prompt + (size_t)i]
                                                                   : session_pending_token(sess)));
        cJSON_AddStringToObject(j, "text", res.text ? res.text : "");
        cJSON_AddStringToObject(j, "finish_reason", res.finish);
        cJSON *tm = cJSON_AddObjectToObject(j, "timings");
        cJSON_AddNumberToObject(tm, "load_s", t_load);
        cJSON_AddNumberToObject(tm, "prompt_s", t_prompt);
        cJSON_AddNumberToObject(tm, "prompt_tokens_per_s", t_prompt > 0 ? (double)n_prompt / t_prompt : 0);
        cJSON_AddNumberToObject(tm, "generate_s", res.seconds);
        cJSON_AddNumberToObject(tm, "generated_tokens_per_s",
                                res.seconds > 0 ? (double)res.n_tokens / res.seconds : 0);
        char *js = cJSON_PrintUnformatted(j);
        if (js)
            printf("%s\n", js);
        free(js);
        cJSON_Delete(j);
    } else {
        fputc('\n', stdout);
        fprintf(stderr,
                "\nload %.3f s | prompt %zu tokens, %.1f tok/s | generated %d tokens, %.1f tok/s | %s\n",
                t_load, n_prompt, t_prompt > 0 ? (double)n_prompt / t_prompt : 0.0, res.n_tokens,
                res.seconds > 0 ? (double)res.n_tokens / res.seconds : 0.0, res.finish);
    }
    rc = 0;
done:
    sampler_free(smp);
    session_free(sess);
    free(tokens);
    tokenizer_free(tok);
    model_free(m);
    return rc;
}
