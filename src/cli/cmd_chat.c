/*
 * cmd_chat.c: `pagoda chat`: an interactive conversation in the terminal with
 * the model's chat template. The whole conversation stays in one session, so
 * each turn only computes its new tokens. Ctrl-C stops a reply; at the prompt
 * it (or end of input) ends the program.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "model/model.h"
#include "pagoda.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

#define CHAT_MAX_MESSAGES 4096

static void usage(FILE *f)
{
    fprintf(f,
            "usage: pagoda chat [MODEL.gguf] [options]\n"
            "\n"
            "Talk with an instruction-tuned model. Type a message and press Enter; Ctrl-C\n"
            "stops a reply; Ctrl-D (or Ctrl-C at the prompt) ends. /reset starts over.\n"
            "Without MODEL it uses the default model (`pagoda pull default` fetches it).\n"
            "\n"
            "  --template NAME     chat format (llama3, llama2, chatml/qwen, mistral-v1, mistral-v3,\n"
            "                      mistral-v7, gemma, phi3, zephyr, ...); default: read from the model\n"
            "  --system TEXT       a system message\n"
            "  -n, --max-tokens N  longest reply (default 1024)\n"
            "  --temp T --top-k K --top-p P --min-p M --seed S --repeat-penalty R\n"
            "  --ctx N             context length (default: the model's, at most 4096)\n"
            "  -t, --threads N     threads (default: all CPUs)\n");
}

struct chat_opts {
    const char *model, *template_name, *system;
    long long max_tokens, ctx, threads;
    struct sampler_params sp;
};

static int parse_args(int argc, char **argv, struct chat_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_tokens = 1024;
    sampler_params_default(&o->sp);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double f;
        long long n;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 2;
        }
        bool takes_value = !strcmp(a, "--template") || !strcmp(a, "--system") || !strcmp(a, "-n") ||
                           !strcmp(a, "--max-tokens") || !strcmp(a, "--temp") || !strcmp(a, "--top-k") ||
                           !strcmp(a, "--top-p") || !strcmp(a, "--min-p") || !strcmp(a, "--seed") ||
                           !strcmp(a, "--repeat-penalty") || !strcmp(a, "--ctx") || !strcmp(a, "-t") ||
                           !strcmp(a, "--threads");
        if (takes_value) {
            if (!v)
                return cli_fail("chat: %s needs a value", a);
            i++;
        }
        if (!strcmp(a, "--template"))
            o->template_name = v;
        else if (!strcmp(a, "--system"))
            o->system = v;
        else if (!strcmp(a, "-n") || !strcmp(a, "--max-tokens")) {
            if (cli_parse_int(v, 1, 1 << 24, &o->max_tokens))
                return cli_fail("chat: %s wants a whole number >= 1, not '%s'", a, v);
        } else if (!strcmp(a, "--ctx")) {
            if (cli_parse_int(v, 1, 1 << 24, &o->ctx))
                return cli_fail("chat: --ctx wants a whole number >= 1, not '%s'", v);
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (cli_parse_int(v, 1, 1024, &o->threads))
                return cli_fail("chat: %s wants a thread count from 1 to 1024, not '%s'", a, v);
        } else if (!strcmp(a, "--top-k") || !strcmp(a, "--seed")) {
            if (cli_parse_int(v, 0, !strcmp(a, "--seed") ? INT64_MAX : (1 << 30), &n))
                return cli_fail("chat: %s wants a whole number, not '%s'", a, v);
            if (!strcmp(a, "--top-k"))
                o->sp.top_k = (int)n;
            else
                o->sp.seed = (uint64_t)n;
        } else if (takes_value) {
            if (cli_parse_float(v, &f))
                return cli_fail("chat: %s wants a number, not '%s'", a, v);
            if (!strcmp(a, "--temp"))
                o->sp.temperature = (float)f;
            else if (!strcmp(a, "--top-p"))
                o->sp.top_p = (float)f;
            else if (!strcmp(a, "--min-p"))
                o->sp.min_p = (float)f;
            else
                o->sp.repeat_penalty = (float)f;
        } else if (a[0] == '-' && a[1]) {
            return cli_fail("chat: unknown option '%s' (see pagoda chat --help)", a);
        } else if (o->model) {
            return cli_fail("chat: more than one model given");
        } else {
            o->model = a;
        }
    }
    return 0;
}

static char *token_text_dup(const struct tokenizer *tok, int32_t id)
{
    if (id < 0)
        return NULL;
    size_t len;
    const char *t = tokenizer_token_text(tok, id, &len);
    if (!t)
        return NULL;
    char *s = malloc(len + 1);
    if (s) {
        memcpy(s, t, len);
        s[len] = '\0';
    }
    return s;
}

int cmd_chat(int argc, char **argv)
{
    struct chat_opts o;
    int prc = parse_args(argc, argv, &o);
    if (prc)
        return prc == 2 ? 0 : prc;
    char err[512];
    struct model *m = NULL;
    struct tokenizer *tok = NULL;
    struct session *sess = NULL;
    struct sampler *smp = NULL;
    struct chat_message *msgs = NULL;
    char *bos_text = NULL, *eos_text = NULL, *prompt = NULL, *line = NULL;
    int32_t *ids = NULL;
    size_t n_msgs = 0, ids_cap = 0, line_cap = 0;
    int rc = 1;

    if (cli_open_model("chat", o.model, &m, &tok))
        goto done;
    enum chat_template_kind kind;
    if (o.template_name) {
        if (chat_template_from_name(o.template_name, &kind)) {
            cli_fail("chat: unknown template '%s' (see pagoda chat --help)", o.template_name);
            goto done;
        }
    } else {
        struct gguf_str tmpl;
        if (!gguf_get_str(m->gguf, "tokenizer.chat_template", &tmpl)) {
            cli_fail("chat: %s has no chat template; pick one with --template (e.g. chatml, llama3)",
                     o.model ? o.model : "the default model");
            goto done;
        }
        if (chat_template_detect(tmpl.ptr, (size_t)tmpl.len, &kind, err, sizeof err)) {
            cli_fail("chat: %s; pick a format with --template", err);
            goto done;
        }
    }
    const struct model_hparams *hp = &m->hp;
    long long ctx = cli_context(m, o.ctx);
    if (session_create(m, tok, (int)ctx, (int)o.threads, &sess, err, sizeof err) ||
        !(smp = sampler_create(&o.sp, hp->n_vocab, err, sizeof err))) {
        cli_fail("chat: %s", err);
        goto done;
    }
    bos_text = token_text_dup(tok, tokenizer_bos(tok));
    eos_text = token_text_dup(tok, tokenizer_eot(tok) >= 0 ? tokenizer_eot(tok) : tokenizer_eos(tok));
    msgs = calloc(CHAT_MAX_MESSAGES, sizeof *msgs);
    if (!msgs) {
        cli_fail("chat: out of memory");
        goto done;
    }
    if (o.system)
        msgs[n_msgs++] = (struct chat_message){"system", strdup(o.system)};
    fprintf(stderr, "pagoda chat: %s, template %s, context %lld. Ctrl-C stops a reply, Ctrl-D ends.\n",
            hp->arch_name, chat_template_name(kind), ctx);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cli_on_sigint; /* no SA_RESTART: a read at the prompt returns */
    sigaction(SIGINT, &sa, NULL);
    for (;;) {
        cli_interrupted = 0;
        fputs("\n> ", stdout);
        fflush(stdout);
        ssize_t got = getline(&line, &line_cap, stdin);
        if (got < 0 || cli_interrupted)
            break;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = '\0';
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit"))
            break;
        if (!strcmp(line, "/reset")) {
            for (size_t i = o.system ? 1 : 0; i < n_msgs; i++)
                free((char *)msgs[i].content);
            n_msgs = o.system ? 1 : 0;
            fputs("(conversation cleared)\n", stdout);
            continue;
        }
        if (n_msgs + 2 > CHAT_MAX_MESSAGES) {
            fputs("(the conversation is too long; /reset to start over)\n", stdout);
            continue;
        }
        msgs[n_msgs++] = (struct chat_message){"user", strdup(line)};
        size_t plen;
        free(prompt);
        prompt = NULL;
        if (chat_template_apply(kind, msgs, n_msgs, true, bos_text, eos_text, &prompt, &plen, err,
                                sizeof err)) {
            fprintf(stderr, "pagoda: %s\n", err);
            free((char *)msgs[--n_msgs].content);
            continue;
        }
        size_t n_ids = 0;
        int erc;
        while ((erc = tokenizer_encode(tok, prompt, plen, true, true, ids, ids_cap, &n_ids)) ==
               PAGODA_ERANGE) {
            int32_t *bigger = realloc(ids, sizeof(int32_t) * (n_ids + 16));
            if (!bigger)
                break;
            ids = bigger;
            ids_cap = n_ids + 16;
        }
        if (erc || n_ids == 0) {
            fprintf(stderr, "pagoda: cannot tokenize the conversation\n");
            free((char *)msgs[--n_msgs].content);
            continue;
        }
        if ((long long)n_ids + 1 >= ctx) {
            fprintf(stderr, "pagoda: the conversation (%zu tokens) no longer fits the context of %lld; "
                            "/reset to start over\n", n_ids, ctx);
            free((char *)msgs[--n_msgs].content);
            continue;
        }
        if (session_sync(sess, ids, (int)n_ids, err, sizeof err)) {
            fprintf(stderr, "pagoda: %s\n", err);
            free((char *)msgs[--n_msgs].content);
            continue;
        }
        struct gen_params gp = {0};
        gp.max_tokens = (int)o.max_tokens;
        gp.on_text = cli_print_text;
        gp.cancel = &cli_interrupted;
        struct gen_result res;
        if (session_generate(sess, smp, &gp, &res, err, sizeof err)) {
            fprintf(stderr, "\npagoda: %s\n", err);
            free((char *)msgs[--n_msgs].content);
            continue;
        }
        if (!strcmp(res.finish, "cancelled"))
            fputs(" [stopped]", stdout);
        fputc('\n', stdout);
        msgs[n_msgs++] = (struct chat_message){"assistant", strndup(res.text, res.text_len)};
    }
    fputc('\n', stdout);
    rc = 0;
done:
    signal(SIGINT, SIG_DFL);
    for (size_t i = 0; msgs && i < n_msgs; i++)
        free((char *)msgs[i].content);
    free(msgs);
    free(line);
    free(ids);
    free(prompt);
    free(bos_text);
    free(eos_text);
    sampler_free(smp);
    session_free(sess);
    tokenizer_free(tok);
    model_free(m);
    return rc;
}
