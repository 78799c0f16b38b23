/*
 * cmd_serve.c: `pagoda serve`: loads a model into the engine and serves it
 * over the OpenAI-compatible HTTP API until SIGINT or SIGTERM, then shuts
 * down gracefully (stop accepting, let requests finish within --grace
 * seconds, abort the rest) and exits 0.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "pagoda.h"
#include "server/server.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: pagoda serve [MODEL.gguf] [options]\n"
            "\n"
            "Serves MODEL (default: the cached default model) over an OpenAI-compatible\n"
            "HTTP API: POST /v1/completions, /v1/chat/completions, /tokenize, /detokenize;\n"
            "GET /v1/models, /health, /metrics. Stops on SIGINT/SIGTERM.\n"
            "\n"
            "  --host ADDR             address to listen on (default 127.0.0.1)\n"
            "  --port N                port (default 8080; 0 = any free port)\n"
            "  --api-key KEY           require 'Authorization: Bearer KEY' (also $PAGODA_API_KEY)\n"
            "  --alias NAME            model name clients use (default: the file's base name)\n"
            "  --chat-template NAME    chat format to use instead of the model's own\n"
            "  --ctx N                 most tokens per sequence (default: the model's, at most 4096)\n"
            "  --kv-mem SIZE           KV cache memory, e.g. 512MiB, 4GiB (default: 1/4 of free memory)\n"
            "  --kv-type T             KV cache type: f16, bf16, q8_0 (default f16)\n"
            "  -t, --threads N         threads (default: all CPUs)\n"
            "  --batch-tokens N        token budget of one engine step\n"
            "  --block-size N          token slots per KV block\n"
            "  --max-running N         most sequences generating at once\n"
            "  --max-queued N          most requests waiting; beyond, 503 (default 1024)\n"
            "  --no-prefix-cache       do not reuse the KV blocks of shared prompt prefixes\n"
            "  --max-body SIZE         largest request body (default 8MiB)\n"
            "  --grace SECONDS         on shutdown, time given to requests in flight (default 10)\n"
            "  --quiet                 no per-request log lines\n");
}

/* The file name without directories and without ".gguf". */
static void base_name(const char *path, char *out, size_t outlen)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, b, n);
    out[n] = '\0';
    if (n > 5 && strcmp(out + n - 5, ".gguf") == 0)
        out[n - 5] = '\0';
}

int cmd_serve(int argc, char **argv)
{
    const char *model = NULL, *host = "127.0.0.1", *api_key = getenv("PAGODA_API_KEY");
    const char *alias = NULL, *chat_template = NULL;
    long long port = 8080, ctx = 0, threads = 0, batch = 0, block = 0, running = 0, queued = 0;
    unsigned long long kv_mem = 0, max_body = 8ull << 20;
    double grace = 10;
    int kv_type = PAGODA_KV_F16, prefix_cache = 1, quiet = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--no-prefix-cache")) {
            prefix_cache = 0;
            continue;
        }
        if (!strcmp(a, "--quiet")) {
            quiet = 1;
            continue;
        }
        if (a[0] != '-') {
            if (model)
                return cli_fail("serve: more than one model given ('%s', '%s')", model, a);
            model = a;
            continue;
        }
        static const char *const with_value[] = {
            "--host", "--api-key", "--alias", "--chat-template", "--port", "--ctx", "-c",
            "-t", "--threads", "--batch-tokens", "--block-size", "--max-running",
            "--max-queued", "--kv-mem", "--max-body", "--kv-type", "--grace"};
        int known = 0;
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
            known |= !strcmp(a, with_value[k]);
        if (!known)
            return cli_fail("serve: unknown option '%s' (see `pagoda serve --help`)", a);
        if (i + 1 >= argc)
            return cli_fail("serve: %s needs a value (see `pagoda serve --help`)", a);
        const char *v = argv[++i];
        long long *iv = NULL;
        long long lo = 1, hi = 1 << 30;
        if (!strcmp(a, "--host"))
            host = v;
        else if (!strcmp(a, "--api-key"))
            api_key = v;
        else if (!strcmp(a, "--alias")) {
            if (!v[0])
                return cli_fail("serve: --alias must not be empty");
            alias = v;
        } else if (!strcmp(a, "--chat-template"))
            chat_template = v;
        else if (!strcmp(a, "--port")) {
            iv = &port;
            lo = 0;
            hi = 65535;
        } else if (!strcmp(a, "--ctx") || !strcmp(a, "-c"))
            iv = &ctx;
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            iv = &threads;
            hi = 1024;
        } else if (!strcmp(a, "--batch-tokens"))
            iv = &batch;
        else if (!strcmp(a, "--block-size")) {
            iv = &block;
            hi = 4096;
        } else if (!strcmp(a, "--max-running"))
            iv = &running;
        else if (!strcmp(a, "--max-queued"))
            iv = &queued;
        else if (!strcmp(a, "--kv-mem")) {
            if (cli_parse_size(v, &kv_mem) || kv_mem == 0)
                return cli_fail("serve: --kv-mem wants a size like 512MiB or 4GiB, not '%s'", v);
        } else if (!strcmp(a, "--max-body")) {
            if (cli_parse_size(v, &max_body) || max_body == 0 || max_body > (1ull << 32))
                return cli_fail("serve: --max-body wants a size from 1 byte to 4GiB, not '%s'", v);
        } else if (!strcmp(a, "--kv-type")) {
            if (!strcmp(v, "f16"))
                kv_type = PAGODA_KV_F16;
            else if (!strcmp(v, "bf16"))
                kv_type = PAGODA_KV_BF16;
            else if (!strcmp(v, "q8_0"))
                kv_type = PAGODA_KV_Q8_0;
            else
                return cli_fail("serve: --kv-type must be f16, bf16 or q8_0, not '%s'", v);
        } else if (!strcmp(a, "--grace")) {
            if (cli_parse_float(v, &grace) || grace < 0 || grace > 86400)
                return cli_fail("serve: --grace wants seconds from 0 to 86400, not '%s'", v);
        } else
            return cli_fail("serve: unknown option '%s' (see `pagoda serve --help`)", a);
        if (iv && cli_parse_int(v, lo, hi, iv))
            return cli_fail("serve: %s wants a whole number from %lld to %lld, not '%s'", a, lo, hi, v);
    }

    char path[4096], name[256], err[512];
    if (cli_model_path("serve", model, path, sizeof path))
        return 1;
    if (!alias) {
        base_name(path, name, sizeof name);
        alias = name;
    }

    pagoda_engine_options eo;
    pagoda_engine_options_default(&eo);
    eo.model_path = path;
    eo.n_threads = (int)threads;
    eo.n_ctx = (int)ctx;
    eo.kv_mem_bytes = kv_mem;
    eo.kv_type = (pagoda_kv_type)kv_type;
    eo.block_size = (int)block;
    eo.batch_tokens = (int)batch;
    eo.max_running = (int)running;
    eo.max_queued = (int)queued;
    eo.prefix_cache = prefix_cache;

    /* Every thread started from here on inherits the blocked signals: only
     * this thread sees SIGINT/SIGTERM, and a client hanging up never raises SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t stop_set, old_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_set, &old_set);

    pagoda_engine *e = NULL;
    if (pagoda_engine_create(&eo, &e, err, sizeof err)) {
        pthread_sigmask(SIG_SETMASK, &old_set, NULL);
        return cli_fail("serve: %s", err);
    }
    struct srv_options so = {
        .host = host,
        .port = (int)port,
        .api_key = api_key,
        .alias = alias,
        .chat_template = chat_template,
        .max_body = (size_t)max_body,
        .log = !quiet,
    };
    struct server *srv = NULL;
    if (server_start(e, &so, &srv, err, sizeof err)) {
        pagoda_engine_free(e);
        pthread_sigmask(SIG_SETMASK, &old_set, NULL);
        return cli_fail("serve: %s", err);
    }
    pagoda_model_info info;
    pagoda_engine_model_info(e, &info);
    fprintf(stderr, "pagoda: serve: model '%s' (%s, context %d) as '%s'\n", info.name ? info.name : "?",
            info.arch ? info.arch : "?", (int)info.n_ctx, alias);
    fprintf(stderr, "listening on http://%s%s%s:%d\n", strchr(host, ':') ? "[" : "", host,
            strchr(host, ':') ? "]" : "", server_port(srv));
    fflush(stderr);

    int sig = 0;
    sigwait(&stop_set, &sig);
    fprintf(stderr, "pagoda: serve: %s: stopping (grace %.1fs)\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
            grace);
    server_stop(srv, grace);
    pagoda_engine_free(e);
    pthread_sigmask(SIG_SETMASK, &old_set, NULL);
    fprintf(stderr, "pagoda: serve: stopped\n");
    return 0;
}
