/*
 * cmd_bench_engine.c: `pagoda bench engine`: the serving engine without HTTP.
 * For each concurrency level C, C requests with distinct random prompts of
 * -p tokens arrive at once and each generates exactly -n tokens; we report
 * aggregate generation speed, time to first token, time per output token and
 * KV memory in use. --prefix N adds a prefix-cache check: a request whose
 * prompt shares N tokens with an earlier one should start much sooner.
 */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/rng.h"
#include "cli/cli.h"
#include "pagoda.h"

#define BE_MAX_LEVELS 16

struct be_req {
    double ttft, e2e, tpot;
    int n_gen;
    pagoda_finish finish;
    int done;
};

struct be_run {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending;
    struct be_req *reqs;
};

struct be_job {
    struct be_run *run;
    int idx;
};

static void be_event(void *user, const pagoda_event *ev)
{
    struct be_job *j = user;
    if (ev->type != PAGODA_EVENT_DONE)
        return;
    struct be_req *r = &j->run->reqs[j->idx];
    const pagoda_timings *t = &ev->timings;
    r->n_gen = t->n_generated;
    r->finish = ev->finish;
    r->ttft = t->t_first_token > 0 ? t->t_first_token - t->t_submit : 0;
    r->e2e = t->t_end - t->t_submit;
    r->tpot = t->n_generated > 1 ? (t->t_end - t->t_first_token) / (t->n_generated - 1) : 0;
    pthread_mutex_lock(&j->run->mu);
    r->done = 1;
    j->run->pending--;
    pthread_cond_broadcast(&j->run->cv);
    pthread_mutex_unlock(&j->run->mu);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *sorted, int n, double p)
{
    if (n <= 0)
        return 0;
    double k = p * (n - 1);
    int lo = (int)floor(k), hi = (int)ceil(k);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (k - lo);
}

static void be_usage(FILE *f)
{
    fprintf(f,
            "usage: pagoda bench engine [MODEL.gguf] [options]\n"
            "  --concurrency LIST  requests arriving at once per level (default 1,4,16,32,64)\n"
            "  -p, --prompt N      prompt tokens per request (default 128)\n"
            "  -n, --gen N         generated tokens per request (default 128)\n"
            "  --prefix N          also time a request sharing an N-token prefix (0: skip)\n"
            "  -t, --threads N     threads (default: all cores)\n"
            "  --kv-mem SIZE       KV pool (e.g. 2GiB; default a quarter of free memory)\n"
            "  --block-size N      KV block slots (default 16)\n"
            "  --batch-tokens N    token budget per step (default 512)\n"
            "  --seed N            prompt seed (default 1)\n"
            "  --json              one JSON object instead of the table\n");
}

static int parse_list(const char *s, int *out, int max, int *n)
{
    *n = 0;
    char buf[256];
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        long long v;
        if (*n >= max || cli_parse_int(t, 1, 4096, &v))
            return -1;
        out[(*n)++] = (int)v;
    }
    return *n ? 0 : -1;
}

static void fill_prompt(int32_t *p, int n, int n_vocab, int32_t bos, struct rng *r)
{
    for (int i = 0; i < n; i++)
        p[i] = (int32_t)(rng_next(r) % (uint64_t)(n_vocab - 1)) + 1;
    if (bos >= 0 && n > 0)
        p[0] = bos;
}

/* Submits count requests at once and waits for all; returns the wall time,
 * or -1 when a submission fails (those already in flight are aborted). */
static double be_round(pagoda_engine *e, int32_t **prompts, const int *n_prompt, int count,
                       int n_gen, struct be_req *reqs, int64_t *kv_peak, char *err, size_t errlen)
{
    struct be_run run = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, reqs};
    struct be_job *jobs = calloc((size_t)count, sizeof *jobs);
    uint64_t *ids = calloc((size_t)count, sizeof *ids);
    if (!jobs || !ids) {
        free(jobs);
        free(ids);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memset(reqs, 0, sizeof *reqs * (size_t)count);
    pagoda_engine_reset_peak(e);
    const double t0 = pagoda_now();
    int submitted = 0, failed = 0;
    for (int i = 0; i < count; i++) {
        jobs[i] = (struct be_job){&run, i};
        pagoda_request rq;
        memset(&rq, 0, sizeof rq);
        rq.prompt = prompts[i];
        rq.n_prompt = (size_t)n_prompt[i];
        rq.max_tokens = n_gen;
        pagoda_sampling_default(&rq.sampling);
        rq.sampling.temperature = 0;
        rq.ignore_eos = 1;
        rq.callback = be_event;
        rq.user = &jobs[i];
        pthread_mutex_lock(&run.mu);
        run.pending++;
        pthread_mutex_unlock(&run.mu);
        if (pagoda_submit(e, &rq, &ids[i], err, errlen)) {
            pthread_mutex_lock(&run.mu);
            run.pending--;
            pthread_mutex_unlock(&run.mu);
            failed = 1;
            break;
        }
        submitted++;
    }
    bool aborted = false;
    pthread_mutex_lock(&run.mu);
    while (run.pending > 0) {
        if ((cli_interrupted || failed) && !aborted) {
            pthread_mutex_unlock(&run.mu);
            for (int i = 0; i < submitted; i++)
                pagoda_abort(e, ids[i]);
            aborted = true;
            pthread_mutex_lock(&run.mu);
            continue;
        }
        pthread_mutex_unlock(&run.mu);
        usleep(2000);
        pthread_mutex_lock(&run.mu);
    }
    pthread_mutex_unlock(&run.mu);
    free(jobs);
    free(ids);
    pagoda_stats st;
    pagoda_engine_stats(e, &st);
    *kv_peak = st.kv_blocks_used_peak;
    return failed ? -1 : pagoda_now() - t0;
}

int cmd_bench_engine(int argc, char **argv)
{
    const char *model = NULL;
    int levels[BE_MAX_LEVELS] = {1, 4, 16, 32, 64}, n_levels = 5;
    long long n_prompt = 128, n_gen = 128, prefix = 0, seed = 1;
    pagoda_engine_options o;
    pagoda_engine_options_default(&o);
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long x;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            be_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (a[0] != '-') {
            if (model)
                return cli_fail("bench engine: more than one model given");
            model = a;
        } else if (!v) {
            return cli_fail("bench engine: %s needs a value", a);
        } else if (!strcmp(a, "--concurrency")) {
            if (parse_list(v, levels, BE_MAX_LEVELS, &n_levels))
                return cli_fail("bench engine: bad --concurrency '%s' (e.g. 1,8,32)", v);
            i++;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (cli_parse_int(v, 1, 1 << 20, &n_prompt))
                return cli_fail("bench engine: bad prompt length '%s'", v);
            i++;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--gen")) {
            if (cli_parse_int(v, 1, 1 << 20, &n_gen))
                return cli_fail("bench engine: bad generation length '%s'", v);
            i++;
        } else if (!strcmp(a, "--prefix")) {
            if (cli_parse_int(v, 0, 1 << 20, &prefix))
                return cli_fail("bench engine: bad --prefix '%s'", v);
            i++;
        } else if (!strcmp(a, "--seed")) {
            if (cli_parse_int(v, 0, 1LL << 40, &seed))
                return cli_fail("bench engine: bad --seed '%s'", v);
            i++;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (cli_parse_int(v, 1, 1024, &x))
                return cli_fail("bench engine: bad thread count '%s'", v);
            o.n_threads = (int)x;
            i++;
        } else if (!strcmp(a, "--block-size")) {
            if (cli_parse_int(v, 1, 1024, &x))
                return cli_fail("bench engine: bad block size '%s'", v);
            o.block_size = (int)x;
            i++;
        } else if (!strcmp(a, "--batch-tokens")) {
            if (cli_parse_int(v, 1, 1 << 16, &x))
                return cli_fail("bench engine: bad batch token budget '%s'", v);
            o.batch_tokens = (int)x;
            i++;
        } else if (!strcmp(a, "--kv-mem")) {
            unsigned long long bytes;
            if (cli_parse_size(v, &bytes))
                return cli_fail("bench engine: bad size '%s' (e.g. 512MiB, 4GiB)", v);
            o.kv_mem_bytes = bytes;
            i++;
        } else {
            return cli_fail("bench engine: unknown option '%s' (see --help)", a);
        }
    }
    char path[4096];
    if (cli_model_path("bench engine", model, path, sizeof path))
        return 1;
    int max_level = 1;
    for (int i = 0; i < n_levels; i++)
        max_level = levels[i] > max_level ? levels[i] : max_level;
    long long need_ctx = n_prompt + n_gen;
    if (prefix + 16 + n_gen > need_ctx)
        need_ctx = prefix + 16 + n_gen;
    o.n_ctx = (int)need_ctx;
    o.model_path = path;
    if (max_level > 64)
        o.max_running = max_level;
    char err[512];
    pagoda_engine *e;
    if (pagoda_engine_create(&o, &e, err, sizeof err))
        return cli_fail("bench engine: %s", err);
    signal(SIGINT, cli_on_sigint);
    pagoda_model_info mi;
    pagoda_engine_model_info(e, &mi);
    pagoda_stats st0;
    pagoda_engine_stats(e, &st0);
    const double block_mib =
        (double)st0.kv_bytes / (double)st0.kv_blocks_total / (1024.0 * 1024.0);
    if (!json)
        printf("model: %s (%s), prompt %lld, generate %lld, KV pool %.0f MiB in %lld blocks of "
               "%d\n\n%5s %8s %10s %10s %9s %9s %9s %9s %10s %6s\n",
               mi.name, mi.arch, n_prompt, n_gen, (double)st0.kv_bytes / 1048576.0,
               (long long)st0.kv_blocks_total, st0.block_size, "conc", "wall_s", "gen_tok/s",
               "tot_tok/s", "ttft_mean", "ttft_p50", "ttft_p99", "tpot_ms", "kv_peak_MiB",
               "preem");
    else
        printf("{\"model\": \"%s\", \"prompt\": %lld, \"gen\": %lld, \"levels\": [", mi.name,
               n_prompt, n_gen);
    struct rng r;
    rng_seed(&r, (uint64_t)seed);
    int rc = 0;
    for (int li = 0; li < n_levels && !cli_interrupted; li++) {
        const int C = levels[li];
        int32_t **prompts = calloc((size_t)C, sizeof *prompts);
        int *np = calloc((size_t)C, sizeof *np);
        struct be_req *reqs = calloc((size_t)C, sizeof *reqs);
        double *v = calloc((size_t)C, sizeof *v);
        if (!prompts || !np || !reqs || !v)
            return cli_fail("bench engine: out of memory");
        for (int i = 0; i < C; i++) {
            prompts[i] = malloc(sizeof(int32_t) * (size_t)n_prompt);
            if (!prompts[i])
                return cli_fail("bench engine: out of memory");
            fill_prompt(prompts[i], (int)n_prompt, mi.n_vocab, mi.bos, &r);
            np[i] = (int)n_prompt;
        }
        pagoda_stats s0, s1;
        pagoda_engine_stats(e, &s0);
        int64_t kv_peak = 0;
        double wall = be_round(e, prompts, np, C, (int)n_gen, reqs, &kv_peak, err, sizeof err);
        pagoda_engine_stats(e, &s1);
        if (wall < 0) {
            rc = cli_fail("bench engine: %s", err);
            break;
        }
        long long gen = 0;
        double tpot = 0;
        for (int i = 0; i < C; i++) {
            gen += reqs[i].n_gen;
            tpot += reqs[i].tpot;
            v[i] = reqs[i].ttft;
        }
        qsort(v, (size_t)C, sizeof *v, cmp_double);
        double ttft_mean = 0;
        for (int i = 0; i < C; i++)
            ttft_mean += v[i] / C;
        const double gen_rate = gen / wall, tot_rate = (gen + (double)C * n_prompt) / wall;
        const double kv_mib = (double)kv_peak * block_mib;
        const unsigned long long preempt = (unsigned long long)(s1.preemptions - s0.preemptions);
        if (json)
            printf("%s{\"concurrency\": %d, \"wall_s\": %.3f, \"gen_tok_s\": %.2f, "
                   "\"total_tok_s\": %.2f, \"ttft_mean_s\": %.4f, \"ttft_p50_s\": %.4f, "
                   "\"ttft_p99_s\": %.4f, \"tpot_ms\": %.2f, \"kv_peak_mib\": %.3f, "
                   "\"preemptions\": %llu}",
                   li ? ", " : "", C, wall, gen_rate, tot_rate, ttft_mean, pct(v, C, 0.5),
                   pct(v, C, 0.99), 1000 * tpot / C, kv_mib, preempt);
        else
            printf("%5d %8.2f %10.1f %10.1f %9.3f %9.3f %9.3f %9.1f %10.1f %6llu\n", C, wall,
                   gen_rate, tot_rate, ttft_mean, pct(v, C, 0.5), pct(v, C, 0.99),
                   1000 * tpot / C, kv_mib, preempt);
        fflush(stdout);
        for (int i = 0; i < C; i++)
            free(prompts[i]);
        free(prompts);
        free(np);
        free(reqs);
        free(v);
    }
    if (rc == 0 && prefix > 0 && !cli_interrupted) {
        /* Two requests sharing `prefix` tokens, then 16 of their own. */
        const int n = (int)prefix + 16;
        int32_t *a = malloc(sizeof(int32_t) * (size_t)n), *b = malloc(sizeof(int32_t) * (size_t)n);
        if (!a || !b)
            return cli_fail("bench engine: out of memory");
        fill_prompt(a, n, mi.n_vocab, mi.bos, &r);
        memcpy(b, a, sizeof(int32_t) * (size_t)prefix);
        for (int i = (int)prefix; i < n; i++)
            b[i] = (int32_t)(rng_next(&r) % (uint64_t)(mi.n_vocab - 1)) + 1;
        struct be_req ra, rb;
        int64_t peak = 0;
        int32_t *pa[1] = {a}, *pb[1] = {b};
        int nn[1] = {n};
        if (be_round(e, pa, nn, 1, 4, &ra, &peak, err, sizeof err) < 0 ||
            be_round(e, pb, nn, 1, 4, &rb, &peak, err, sizeof err) < 0) {
            rc = cli_fail("bench engine: %s", err);
        } else if (json) {
            printf("], \"prefix\": {\"shared_tokens\": %lld, \"ttft_first_s\": %.4f, "
                   "\"ttft_second_s\": %.4f, \"speedup\": %.1f}",
                   prefix, ra.ttft, rb.ttft, rb.ttft > 0 ? ra.ttft / rb.ttft : 0);
        } else {
            printf("\nprefix cache: %lld shared tokens: first request's TTFT %.3f s, second's "
                   "%.3f s (%.1fx sooner)\n",
                   prefix, ra.ttft, rb.ttft, rb.ttft > 0 ? ra.ttft / rb.ttft : 0);
        }
        free(a);
        free(b);
    } else if (json) {
        printf("]");
    }
    if (json)
        printf("}\n");
    pagoda_engine_free(e);
    if (cli_interrupted)
        fprintf(stderr, "pagoda: bench engine: interrupted\n");
    return rc;
}
