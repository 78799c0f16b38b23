/*
 * cmd_bench_engine.c: `pagoda bench engine`: the engine without HTTP, two ways.
 * Without --concurrency it runs single-sequence tests named as llama-bench
 * names them: ppP (a P-token prompt in one go) and tgN (N tokens generated
 * one at a time from an empty context), each repeated -r times after an
 * untimed warm-up, reported as mean ± standard deviation of tokens/s.
 * With --concurrency, for each level C, C requests with distinct random
 * prompts of -p tokens arrive at once and each generates exactly -n tokens;
 * we report aggregate generation speed, time to first token, time per output
 * token and KV memory in use. --prefix N adds a prefix-cache check: a request
 * whose prompt shares N tokens with an earlier one should start much sooner.
 */
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/cpu.h"
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
            "Single-sequence tests (without --concurrency):\n"
            "  -p, --prompt LIST   ppP tests: a P-token prompt in one go (default 512; 0: none)\n"
            "  -n, --gen LIST      tgN tests: N tokens from an empty context (default 128; 0: none)\n"
            "  -r, --reps N        timed repetitions of each test (default 3)\n"
            "  --no-warmup         skip the untimed run before each test\n"
            "  -o, --output md|json  a table (default) or a JSON array\n"
            "Serving (many requests at once):\n"
            "  --concurrency LIST  requests arriving at once per level (e.g. 1,4,16,32,64)\n"
            "  -p, --prompt N      prompt tokens per request (default 128)\n"
            "  -n, --gen N         generated tokens per request (default 128)\n"
            "  --prefix N          also time a request sharing an N-token prefix (0: skip)\n"
            "Both:\n"
            "  -t, --threads N     threads (default: all cores)\n"
            "  --kv-mem SIZE       KV pool (e.g. 2GiB; default a quarter of free memory)\n"
            "  --block-size N      KV block slots (default 16)\n"
            "  --batch-tokens N    token budget per step (default 512)\n"
            "  --seed N            prompt seed (default 1)\n"
            "  --json              JSON instead of the table (same as -o json)\n");
}

static int parse_list(const char *s, int lo, int hi, int *out, int max, int *n)
{
    *n = 0;
    char buf[256];
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        long long v;
        if (*n >= max || cli_parse_int(t, lo, hi, &v))
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

/* Starts the engine for either mode; Ctrl-C then ends the run early. */
static int be_open(pagoda_engine_options *o, const char *path, pagoda_engine **e,
                   pagoda_model_info *mi)
{
    char err[512];
    o->model_path = path;
    if (pagoda_engine_create(o, e, err, sizeof err))
        return cli_fail("bench engine: %s", err);
    signal(SIGINT, cli_on_sigint);
    pagoda_engine_model_info(*e, mi);
    return 0;
}

/* ---- single-sequence tests (ppP, tgN) ---- */

struct bt_test {
    int n_prompt, n_gen; /* one of them is 0 */
    double *ts;          /* tokens/s of each repetition */
    double *ns;          /* nanoseconds of each repetition */
    double avg, sd;
};

/* Runs one repetition: a ppP test submits a P-token prompt for one token and
 * times its first token; a tgN test submits one token and times N forward
 * passes (each generated token but the last is fed back). */
static int bt_once(pagoda_engine *e, const pagoda_model_info *mi, const struct bt_test *t,
                   struct rng *r, double *secs, char *err, size_t errlen)
{
    const int n = t->n_prompt ? t->n_prompt : 1;
    int32_t *prompt = malloc(sizeof(int32_t) * (size_t)n);
    if (!prompt) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    fill_prompt(prompt, n, mi->n_vocab, mi->bos, r);
    struct be_req req;
    int64_t peak;
    int32_t *pp[1] = {prompt};
    int np[1] = {n};
    const double wall =
        be_round(e, pp, np, 1, t->n_prompt ? 1 : t->n_gen, &req, &peak, err, errlen);
    free(prompt);
    if (wall < 0)
        return -1;
    if (req.finish == PAGODA_FINISH_ABORT || req.finish == PAGODA_FINISH_ERROR) {
        snprintf(err, errlen, "the request did not finish");
        return -1;
    }
    *secs = t->n_prompt ? req.ttft : req.e2e;
    return 0;
}

static void bt_print_md_row(const pagoda_model_info *mi, const char *isa, int threads,
                            const struct bt_test *t)
{
    char name[160], test[32];
    /* The file type joins the name unless the name already says it. */
    const char *ft = mi->file_type;
    for (const char *p = mi->name; ft && *p; p++) {
        size_t k = 0;
        while (ft[k] && tolower((unsigned char)p[k]) == tolower((unsigned char)ft[k]))
            k++;
        if (!ft[k])
            ft = NULL;
    }
    snprintf(name, sizeof name, "%s%s%s", mi->name, ft ? " " : "", ft ? ft : "");
    for (char *c = name; *c; c++)
        if (*c == '|' || (unsigned char)*c < 0x20)
            *c = ' '; /* keep the table a table */
    if (t->n_prompt)
        snprintf(test, sizeof test, "pp%d", t->n_prompt);
    else
        snprintf(test, sizeof test, "tg%d", t->n_gen);
    const double np = (double)mi->n_params;
    const char unit = np >= 1e9 ? 'B' : np >= 1e6 ? 'M' : 'K';
    const double scaled = np / (np >= 1e9 ? 1e9 : np >= 1e6 ? 1e6 : 1e3);
    printf("| %-30s | %9.2f MiB | %7.2f %c | %-7s | %7d | %10s | %12.2f ± %6.2f |\n", name,
           (double)mi->n_bytes / 1048576.0, scaled, unit, isa, threads, test, t->avg, t->sd);
    fflush(stdout);
}

static int bt_emit_json(const pagoda_model_info *mi, const char *path, const char *isa,
                        int threads, int batch_tokens, const struct bt_test *tests, int n_tests,
                        int reps)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; arr && i < n_tests; i++) {
        const struct bt_test *t = &tests[i];
        char test[32];
        if (t->n_prompt)
            snprintf(test, sizeof test, "pp%d", t->n_prompt);
        else
            snprintf(test, sizeof test, "tg%d", t->n_gen);
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(arr, o))
            break;
        cJSON_AddStringToObject(o, "model_filename", path);
        cJSON_AddStringToObject(o, "model_name", mi->name);
        cJSON_AddStringToObject(o, "arch", mi->arch);
        if (mi->file_type)
            cJSON_AddStringToObject(o, "file_type", mi->file_type);
        else
            cJSON_AddNullToObject(o, "file_type");
        cJSON_AddNumberToObject(o, "model_size", (double)mi->n_bytes);
        cJSON_AddNumberToObject(o, "model_n_params", (double)mi->n_params);
        cJSON_AddStringToObject(o, "isa", isa);
        cJSON_AddNumberToObject(o, "n_threads", threads);
        cJSON_AddNumberToObject(o, "n_batch", batch_tokens);
        cJSON_AddStringToObject(o, "test", test);
        cJSON_AddNumberToObject(o, "n_prompt", t->n_prompt);
        cJSON_AddNumberToObject(o, "n_gen", t->n_gen);
        cJSON_AddNumberToObject(o, "avg_ts", t->avg);
        cJSON_AddNumberToObject(o, "stddev_ts", t->sd);
        cJSON *ts = cJSON_AddArrayToObject(o, "samples_ts");
        cJSON *ns = cJSON_AddArrayToObject(o, "samples_ns");
        for (int k = 0; ts && ns && k < reps; k++) {
            cJSON_AddItemToArray(ts, cJSON_CreateNumber(t->ts[k]));
            cJSON_AddItemToArray(ns, cJSON_CreateNumber(t->ns[k]));
        }
    }
    char *text = arr ? cJSON_Print(arr) : NULL;
    cJSON_Delete(arr);
    if (!text)
        return cli_fail("bench engine: out of memory");
    printf("%s\n", text);
    free(text);
    return 0;
}

static int be_tests(pagoda_engine_options *o, const char *path, const int *pp, int n_pp,
                    const int *tg, int n_tg, int reps, int warmup, int json, uint64_t seed)
{
    int max_ctx = 1;
    for (int i = 0; i < n_pp; i++)
        max_ctx = pp[i] + 1 > max_ctx ? pp[i] + 1 : max_ctx; /* and its one token */
    for (int i = 0; i < n_tg; i++)
        max_ctx = tg[i] + 1 > max_ctx ? tg[i] + 1 : max_ctx;
    o->n_ctx = max_ctx;
    o->prefix_cache = 0; /* every repetition computes its whole prompt */
    char err[512];
    pagoda_engine *e;
    pagoda_model_info mi;
    if (be_open(o, path, &e, &mi))
        return 1;
    pagoda_stats st;
    pagoda_engine_stats(e, &st);
    const char *isa = cpu_isa_name(cpu_isa_get());
    const int batch_tokens = o->batch_tokens ? o->batch_tokens : 512;
    struct bt_test *tests = calloc((size_t)(n_pp + n_tg), sizeof *tests);
    if (!tests) {
        pagoda_engine_free(e);
        return cli_fail("bench engine: out of memory");
    }
    int n_tests = 0;
    for (int i = 0; i < n_pp; i++)
        if (pp[i] > 0)
            tests[n_tests++].n_prompt = pp[i];
    for (int i = 0; i < n_tg; i++)
        if (tg[i] > 0)
            tests[n_tests++].n_gen = tg[i];
    if (!json)
        printf("| %-30s | %13s | %9s | %-7s | %7s | %10s | %21s |\n"
               "| %.30s | %.13s | %.9s | %.7s | %.7s | %.10s | %.21s |\n",
               "model", "size", "params", "isa", "threads", "test", "t/s",
               "------------------------------", "------------:", "--------:", "-------",
               "------:", "---------:", "--------------------:");
    fflush(stdout);
    struct rng r;
    rng_seed(&r, seed);
    int rc = 0;
    for (int i = 0; i < n_tests && !rc && !cli_interrupted; i++) {
        struct bt_test *t = &tests[i];
        t->ts = calloc((size_t)reps, sizeof *t->ts);
        t->ns = calloc((size_t)reps, sizeof *t->ns);
        if (!t->ts || !t->ns) {
            rc = cli_fail("bench engine: out of memory");
            break;
        }
        double secs;
        if (warmup && bt_once(e, &mi, t, &r, &secs, err, sizeof err)) {
            rc = cli_fail("bench engine: %s", err);
            break;
        }
        const int n_tok = t->n_prompt ? t->n_prompt : t->n_gen;
        for (int k = 0; k < reps && !rc && !cli_interrupted; k++) {
            if (bt_once(e, &mi, t, &r, &secs, err, sizeof err))
                rc = cli_fail("bench engine: %s", err);
            else {
                t->ns[k] = secs * 1e9;
                t->ts[k] = secs > 0 ? n_tok / secs : 0;
            }
        }
        if (rc || cli_interrupted)
            break;
        for (int k = 0; k < reps; k++)
            t->avg += t->ts[k] / reps;
        for (int k = 0; k < reps && reps > 1; k++)
            t->sd += (t->ts[k] - t->avg) * (t->ts[k] - t->avg) / (reps - 1);
        t->sd = sqrt(t->sd);
        if (!json)
            bt_print_md_row(&mi, isa, st.n_threads, t);
    }
    if (!rc && !cli_interrupted && json)
        rc = bt_emit_json(&mi, path, isa, st.n_threads, batch_tokens, tests, n_tests, reps);
    for (int i = 0; i < n_tests; i++) {
        free(tests[i].ts);
        free(tests[i].ns);
    }
    free(tests);
    pagoda_engine_free(e);
    if (cli_interrupted) {
        fprintf(stderr, "pagoda: bench engine: interrupted\n");
        return 130;
    }
    return rc;
}

/* ---- serving ---- */

static int be_serving(pagoda_engine_options *o, const char *path, const int *levels,
                      int n_levels, long long n_prompt, long long n_gen, long long prefix,
                      uint64_t seed, int json)
{
    int max_level = 1;
    for (int i = 0; i < n_levels; i++)
        max_level = levels[i] > max_level ? levels[i] : max_level;
    long long need_ctx = n_prompt + n_gen;
    if (prefix + 16 + n_gen > need_ctx)
        need_ctx = prefix + 16 + n_gen;
    o->n_ctx = (int)need_ctx;
    if (max_level > 64)
        o->max_running = max_level;
    char err[512];
    pagoda_engine *e;
    pagoda_model_info mi;
    if (be_open(o, path, &e, &mi))
        return 1;
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
    else {
        /* The name comes from the file: let cJSON escape it. */
        cJSON *name = cJSON_CreateString(mi.name);
        char *quoted = name ? cJSON_PrintUnformatted(name) : NULL;
        cJSON_Delete(name);
        if (!quoted) {
            pagoda_engine_free(e);
            return cli_fail("bench engine: out of memory");
        }
        printf("{\"model\": %s, \"prompt\": %lld, \"gen\": %lld, \"levels\": [", quoted,
               n_prompt, n_gen);
        free(quoted);
    }
    struct rng r;
    rng_seed(&r, seed);
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

int cmd_bench_engine(int argc, char **argv)
{
    const char *model = NULL;
    int levels[BE_MAX_LEVELS], n_levels = 0;
    int pp[BE_MAX_LEVELS] = {512}, n_pp = 1, tg[BE_MAX_LEVELS] = {128}, n_tg = 1;
    int pp_given = 0, tg_given = 0, reps_given = 0, warmup = 1;
    long long prefix = 0, seed = 1, reps = 3;
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
        } else if (!strcmp(a, "--no-warmup")) {
            warmup = 0;
        } else if (a[0] != '-') {
            if (model)
                return cli_fail("bench engine: more than one model given");
            model = a;
        } else if (!v) {
            return cli_fail("bench engine: %s needs a value", a);
        } else if (!strcmp(a, "--concurrency")) {
            if (parse_list(v, 1, 4096, levels, BE_MAX_LEVELS, &n_levels))
                return cli_fail("bench engine: bad --concurrency '%s' (e.g. 1,8,32)", v);
            i++;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (parse_list(v, 0, 1 << 20, pp, BE_MAX_LEVELS, &n_pp))
                return cli_fail("bench engine: bad prompt length '%s' (e.g. 512 or 128,512)", v);
            pp_given = 1;
            i++;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--gen")) {
            if (parse_list(v, 0, 1 << 20, tg, BE_MAX_LEVELS, &n_tg))
                return cli_fail("bench engine: bad generation length '%s' (e.g. 128 or 32,128)",
                                v);
            tg_given = 1;
            i++;
        } else if (!strcmp(a, "-r") || !strcmp(a, "--reps")) {
            if (cli_parse_int(v, 1, 1000, &reps))
                return cli_fail("bench engine: bad repetition count '%s'", v);
            reps_given = 1;
            i++;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!strcmp(v, "json"))
                json = 1;
            else if (!strcmp(v, "md"))
                json = 0;
            else
                return cli_fail("bench engine: bad output format '%s' (md or json)", v);
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
    if (n_levels == 0 && prefix == 0) {
        int any = 0;
        for (int i = 0; i < n_pp; i++)
            any |= pp[i] > 0;
        for (int i = 0; i < n_tg; i++)
            any |= tg[i] > 0;
        if (!any)
            return cli_fail("bench engine: no test to run (-p and -n are both 0)");
        return be_tests(&o, path, pp, n_pp, tg, n_tg, (int)reps, warmup, json, (uint64_t)seed);
    }
    if (reps_given)
        return cli_fail("bench engine: -r applies to the ppP/tgN tests, not to --concurrency");
    if (n_levels == 0) { /* --prefix alone: one request at a time */
        levels[0] = 1;
        n_levels = 1;
    }
    if (n_pp > 1 || n_tg > 1 || (pp_given && pp[0] < 1) || (tg_given && tg[0] < 1))
        return cli_fail("bench engine: with --concurrency, -p and -n take one length of at "
                        "least 1");
    return be_serving(&o, path, levels, n_levels, pp_given ? pp[0] : 128,
                      tg_given ? tg[0] : 128, prefix, (uint64_t)seed, json);
}
