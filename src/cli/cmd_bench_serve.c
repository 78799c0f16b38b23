/*
 * cmd_bench_serve.c: `pagoda bench serve`: flags, Ctrl-C and the progress
 * bar around the load generator in bench/bench_serve.c, then the report as
 * tables on stdout and optionally JSON and SVG files.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench_serve.h"
#include "cli/cli.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: pagoda bench serve --url http://HOST:PORT [options]\n"
            "Streams requests to an OpenAI-compatible server at each concurrency level and\n"
            "reports throughput and latency (TTFT, TPOT, ITL, E2E); failures are counted.\n"
            "  --url URL            the server (a trailing /v1 is accepted)\n"
            "  --compare URL2       run the same schedule against a second server too\n"
            "  --model NAME         model to ask for (default: first of /v1/models)\n"
            "  --concurrency LIST   comma-separated levels (default 1,8,32,64)\n"
            "  --requests N         requests per level (default 4 x concurrency, >= 8)\n"
            "  --duration S         or: keep sending for S seconds per level\n"
            "  --rate R             Poisson arrivals at R requests/s (default: all at once)\n"
            "  --input-len N        prompt tokens of synthetic prompts (default 128)\n"
            "  --output-len N       max_tokens, with ignore_eos (default 128)\n"
            "  --dataset FILE       JSONL prompts: {\"prompt\": ...} or {\"messages\": [...]}\n"
            "  --chat               use /v1/chat/completions (default /v1/completions)\n"
            "  --api-key KEY        sent as Authorization: Bearer KEY\n"
            "  --tokenizer GGUF     exact prompt lengths, and counting when usage is absent\n"
            "  --json FILE          write the report as JSON ('-': stdout, tables to stderr)\n"
            "  --svg FILE           write throughput and TTFT against concurrency as SVG\n"
            "  --timeout S          per request (default 600)\n"
            "  --seed N             prompts and arrival times (default 1)\n");
}

static int parse_levels(const char *s, struct bench_serve_options *o)
{
    char buf[256];
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    o->n_levels = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        long long v;
        if (o->n_levels >= BENCH_MAX_LEVELS || cli_parse_int(t, 1, 4096, &v))
            return -1;
        o->concurrency[o->n_levels++] = (int)v;
    }
    return o->n_levels ? 0 : -1;
}

struct bar {
    int on;
    int shown;
};

static void on_progress(void *user, const struct bench_progress *p)
{
    struct bar *b = user;
    if (!b->on)
        return;
    char total[32] = "";
    if (p->total >= 0)
        snprintf(total, sizeof total, "/%lld", p->total);
    fprintf(stderr, "\r\033[K[%c c=%d] %lld%s done, %lld failed, %.1f tok/s, %.1f s",
            p->server ? 'B' : 'A', p->concurrency, p->done, total, p->failed, p->out_tok_per_s,
            p->elapsed_s);
    fflush(stderr);
    b->shown = 1;
}

static int write_file(const char *path, const struct bench_report *r, int svg)
{
    char err[256];
    FILE *f = strcmp(path, "-") ? fopen(path, "w") : stdout;
    if (!f)
        return cli_fail("bench serve: cannot write %s", path);
    int rc = svg ? bench_report_svg(r, f, err, sizeof err) : bench_report_json(r, f, err, sizeof err);
    if (f != stdout) {
        if (fclose(f) && !rc)
            return cli_fail("bench serve: cannot write %s", path);
    } else {
        fflush(stdout);
    }
    if (rc)
        return cli_fail("bench serve: %s: %s", path, err);
    return 0;
}

int cmd_bench_serve(int argc, char **argv)
{
    struct bench_serve_options o;
    memset(&o, 0, sizeof o);
    o.input_len = 128;
    o.output_len = 128;
    o.timeout_s = 600;
    o.seed = 1;
    parse_levels("1,8,32,64", &o);
    const char *json = NULL, *svg = NULL, *tok_path = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--chat")) {
            o.chat = 1;
            continue;
        }
        if (i + 1 >= argc) {
            usage(stderr);
            return cli_fail("bench serve: %s needs a value (or is unknown)", a);
        }
        const char *v = argv[++i];
        long long n;
        double d;
        if (!strcmp(a, "--url")) {
            o.url = v;
        } else if (!strcmp(a, "--compare")) {
            o.url2 = v;
        } else if (!strcmp(a, "--model")) {
            o.model = v;
        } else if (!strcmp(a, "--api-key")) {
            o.api_key = v;
        } else if (!strcmp(a, "--dataset")) {
            o.dataset = v;
        } else if (!strcmp(a, "--tokenizer")) {
            tok_path = v;
        } else if (!strcmp(a, "--json")) {
            json = v;
        } else if (!strcmp(a, "--svg")) {
            svg = v;
        } else if (!strcmp(a, "--concurrency")) {
            if (parse_levels(v, &o))
                return cli_fail("bench serve: --concurrency wants up to %d levels in 1..4096, "
                                "comma-separated: %s", BENCH_MAX_LEVELS, v);
        } else if (!strcmp(a, "--requests")) {
            if (cli_parse_int(v, 1, 10000000, &n))
                return cli_fail("bench serve: --requests wants 1..10000000: %s", v);
            o.requests = n;
        } else if (!strcmp(a, "--input-len") || !strcmp(a, "--output-len")) {
            if (cli_parse_int(v, 1, 1000000, &n))
                return cli_fail("bench serve: %s wants 1..1000000: %s", a, v);
            *(a[2] == 'i' ? &o.input_len : &o.output_len) = (int)n;
        } else if (!strcmp(a, "--seed")) {
            if (cli_parse_int(v, 0, 9007199254740991ll, &n))
                return cli_fail("bench serve: --seed wants a non-negative integer: %s", v);
            o.seed = (uint64_t)n;
        } else if (!strcmp(a, "--duration") || !strcmp(a, "--rate") || !strcmp(a, "--timeout")) {
            if (cli_parse_float(v, &d) || !(d > 0) || d > 86400)
                return cli_fail("bench serve: %s wants a number in (0, 86400]: %s", a, v);
            if (a[2] == 'd')
                o.duration_s = d;
            else if (a[2] == 'r')
                o.rate = d;
            else
                o.timeout_s = d;
        } else {
            usage(stderr);
            return cli_fail("bench serve: unknown flag %s", a);
        }
    }
    if (!o.url) {
        usage(stderr);
        return cli_fail("bench serve: --url is required");
    }
    if (o.requests > 0 && o.duration_s > 0)
        return cli_fail("bench serve: give --requests or --duration, not both");

    char err[512];
    struct tokenizer *tok = NULL;
    if (tok_path) {
        struct gguf_file *g = NULL;
        if (gguf_open(tok_path, &g, err, sizeof err))
            return cli_fail("bench serve: %s: %s", tok_path, err);
        int rc = tokenizer_load(g, &tok, err, sizeof err);
        gguf_close(g);
        if (rc)
            return cli_fail("bench serve: %s: %s", tok_path, err);
        o.tok = tok;
    }

    struct bar bar = {isatty(2), 0};
    o.on_progress = on_progress;
    o.progress_user = &bar;
    cli_interrupted = 0;
    o.stop = &cli_interrupted;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cli_on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);

    struct bench_report *r = calloc(1, sizeof *r);
    if (!r) {
        tokenizer_free(tok);
        sigaction(SIGINT, &old, NULL);
        return cli_fail("bench serve: out of memory");
    }
    int rc = bench_serve_run(&o, r, err, sizeof err);
    sigaction(SIGINT, &old, NULL);
    if (bar.shown)
        fprintf(stderr, "\r\033[K");
    tokenizer_free(tok);
    if (rc) {
        free(r);
        return cli_fail("bench serve: %s", err);
    }

    FILE *tf = json && !strcmp(json, "-") ? stderr : stdout;
    bench_report_table(r, tf);
    fflush(tf);
    int out = 0;
    if (json && write_file(json, r, 0))
        out = 1;
    if (svg && write_file(svg, r, 1))
        out = 1;

    long long completed = 0, attempted = 0;
    for (int s = 0; s < r->n_servers; s++)
        for (int li = 0; li < r->servers[s].n_levels; li++) {
            completed += r->servers[s].levels[li].completed;
            attempted += r->servers[s].levels[li].completed + r->servers[s].levels[li].failed_total;
        }
    int interrupted = r->interrupted;
    free(r);
    if (interrupted) {
        fprintf(stderr, "pagoda: bench serve: interrupted\n");
        return 130;
    }
    if (!out && attempted > 0 && completed == 0)
        return cli_fail("bench serve: no request succeeded (see Failures)");
    return out;
}
