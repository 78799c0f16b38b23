/*
 * test_engine.c: the serving engine through its public API, on the random-weight
 * reference models (their near-tied logits expose any numeric drift). A
 * request's tokens must be identical whether it runs alone, batched with 31
 * others, with prefill chunks of 1, 7, 64 or 512 tokens, after a prefix-cache
 * hit, or after preemption; greedy and seeded sampling alike. A stress run
 * aborts requests at random in a small pool and checks every request ends once
 * and every block comes back.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/rng.h"
#include "pagoda.h"
#include "test.h"

#define MAX_GEN 64

/* Under the sanitizers everything runs several times slower: the same checks
 * run on fewer and shorter requests there. */
#if defined(__SANITIZE_ADDRESS__)
#define SLOW_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLOW_BUILD 1
#endif
#endif
#ifndef SLOW_BUILD
#define SLOW_BUILD 0
#endif

struct result {
    int32_t tokens[MAX_GEN];
    int n;
    char text[4096];
    size_t text_len;
    int n_done;
    int n_token_events;
    pagoda_finish finish;
    pagoda_timings tm;
    int bad_order; /* an event after DONE */
};

struct collector {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending;
    int block_first_ms; /* sleep in the first callback (to hold the driver) */
};

struct job {
    struct collector *c;
    struct result *r;
};

static void on_event(void *user, const pagoda_event *ev)
{
    struct job *j = user;
    struct result *r = j->r;
    const int ms = __atomic_exchange_n(&j->c->block_first_ms, 0, __ATOMIC_SEQ_CST);
    if (ms)
        usleep((useconds_t)ms * 1000);
    if (r->n_done)
        r->bad_order = 1;
    if (ev->type == PAGODA_EVENT_TOKEN) {
        if (r->n < MAX_GEN)
            r->tokens[r->n++] = ev->token;
        r->n_token_events++;
        if (r->text_len + ev->text_len < sizeof r->text) {
            memcpy(r->text + r->text_len, ev->text, ev->text_len);
            r->text_len += ev->text_len;
        }
        return;
    }
    r->finish = ev->finish;
    r->tm = ev->timings;
    pthread_mutex_lock(&j->c->mu);
    r->n_done++;
    j->c->pending--;
    pthread_cond_broadcast(&j->c->cv);
    pthread_mutex_unlock(&j->c->mu);
}

struct spec {
    int32_t prompt[600];
    int n_prompt;
    int max_tokens;
    float temperature;
    uint64_t seed;
};

static char model_path[4200];
static pagoda_kv_type kv_type = PAGODA_KV_F16;

static int utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        int k = p[i] < 0x80 ? 0 : (p[i] >> 5) == 6 ? 1 : (p[i] >> 4) == 14 ? 2 : (p[i] >> 3) == 30 ? 3 : -1;
        if (k < 0 || i + (size_t)k >= n + (k ? 0 : 1))
            return 0;
        for (int j = 1; j <= k; j++)
            if ((p[i + (size_t)j] & 0xC0) != 0x80)
                return 0;
        i += (size_t)k + 1;
    }
    return 1;
}

static pagoda_engine *engine_open(int max_running, int batch_tokens, int chunk, uint64_t kv_mem,
                                  int prefix_cache, int block_size)
{
    pagoda_engine_options o;
    pagoda_engine_options_default(&o);
    o.model_path = model_path;
    o.n_threads = 2;
    o.n_ctx = 512;
    o.max_running = max_running;
    o.batch_tokens = batch_tokens;
    o.prefill_chunk = chunk;
    o.kv_mem_bytes = kv_mem ? kv_mem : (64u << 20);
    o.prefix_cache = prefix_cache;
    o.block_size = block_size;
    o.kv_type = kv_type;
    pagoda_engine *e;
    char err[512];
    if (pagoda_engine_create(&o, &e, err, sizeof err)) {
        fprintf(stderr, "engine: %s\n", err);
        return NULL;
    }
    return e;
}

static int submit(pagoda_engine *e, const struct spec *sp, struct job *j, uint64_t *id)
{
    pagoda_request rq;
    memset(&rq, 0, sizeof rq);
    rq.prompt = sp->prompt;
    rq.n_prompt = (size_t)sp->n_prompt;
    rq.max_tokens = sp->max_tokens;
    pagoda_sampling_default(&rq.sampling);
    rq.sampling.temperature = sp->temperature;
    rq.sampling.seed = sp->seed;
    rq.ignore_eos = 1;
    rq.callback = on_event;
    rq.user = j;
    char err[512];
    int rc = pagoda_submit(e, &rq, id, err, sizeof err);
    if (rc)
        fprintf(stderr, "submit: %s\n", err);
    return rc;
}

static void wait_all(struct collector *c)
{
    pthread_mutex_lock(&c->mu);
    while (c->pending > 0)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

/* Runs n requests, all submitted at once, and waits for them. */
static int run_all(pagoda_engine *e, const struct spec *sp, int n, struct result *res)
{
    struct collector c = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    struct job *jobs = calloc((size_t)n, sizeof *jobs);
    memset(res, 0, sizeof *res * (size_t)n);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        jobs[i] = (struct job){&c, &res[i]};
        pthread_mutex_lock(&c.mu);
        c.pending++;
        pthread_mutex_unlock(&c.mu);
        uint64_t id;
        if (submit(e, &sp[i], &jobs[i], &id)) {
            pthread_mutex_lock(&c.mu);
            c.pending--;
            pthread_mutex_unlock(&c.mu);
            failed++;
        }
    }
    wait_all(&c);
    free(jobs);
    return failed;
}

static int same(const struct result *a, const struct result *b)
{
    return a->n == b->n && !memcmp(a->tokens, b->tokens, sizeof(int32_t) * (size_t)a->n) &&
           a->finish == b->finish;
}

static int count_same(const struct result *a, const struct result *b, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += same(&a[i], &b[i]) && !a[i].bad_order && !b[i].bad_order && a[i].n_done == 1 &&
             b[i].n_done == 1;
    return k;
}

static void check_pool_empty(pagoda_engine *e, const char *what)
{
    pagoda_stats st;
    /* Stats are posted after each step; the last DONE may come just before
     * (on a loaded machine, well before). */
    for (int i = 0; i < 2500; i++) {
        pagoda_engine_stats(e, &st);
        if (st.kv_blocks_used == 0 && st.running == 0)
            break;
        usleep(2000);
    }
    CHECKF(st.kv_blocks_used == 0 && st.running == 0 && st.waiting == 0,
           "%s: %lld blocks still used, %d running, %d waiting", what,
           (long long)st.kv_blocks_used, st.running, st.waiting);
    CHECKF(st.kv_blocks_used + st.kv_blocks_cached + st.kv_blocks_free == st.kv_blocks_total,
           "%s: block counts do not add up", what);
}

static void make_specs(struct spec *sp, int n, int n_vocab, uint64_t seed, float temp,
                       int max_prompt)
{
    struct rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        sp[i].n_prompt = 1 + (int)(rng_next(&r) % (uint64_t)max_prompt);
        sp[i].prompt[0] = 1;
        for (int k = 1; k < sp[i].n_prompt; k++)
            sp[i].prompt[k] = (int32_t)(rng_next(&r) % (uint64_t)n_vocab);
        sp[i].max_tokens = 4 + (int)(rng_next(&r) % 28);
        sp[i].temperature = temp;
        sp[i].seed = 1000 + (uint64_t)i;
    }
}

static void invariance(int n_vocab, float temp, const char *label)
{
    enum { N = 32 };
    static struct spec sp[N];
    static struct result solo[N], got[N];
    make_specs(sp, N, n_vocab, temp > 0 ? 7 : 3, temp, SLOW_BUILD ? 100 : 300);

    /* Alone: one request at a time in a fresh engine with no prefix cache. */
    pagoda_engine *e = engine_open(1, 512, 0, 0, 0, 16);
    CHECK(e != NULL);
    if (!e)
        return;
    for (int i = 0; i < N; i++)
        run_all(e, &sp[i], 1, &solo[i]);
    pagoda_engine_free(e);
    int full = 0;
    for (int i = 0; i < N; i++)
        full += solo[i].n == sp[i].max_tokens && solo[i].finish == PAGODA_FINISH_LENGTH;
    CHECKF(full == N, "%s: %d of %d solo runs generated max_tokens", label, full, N);

    /* Batched, with several prefill chunk sizes. */
    const int chunks[] = {1, 7, 64, 512};
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        e = engine_open(64, 512, chunks[c], 0, 1, 16);
        CHECK(e != NULL);
        if (!e)
            return;
        CHECK(run_all(e, sp, N, got) == 0);
        int k = count_same(solo, got, N);
        CHECKF(k == N, "%s: batched with chunk %d: %d of %d match the solo runs", label,
               chunks[c], k, N);
        check_pool_empty(e, "batched");
        /* Everything again: now every prompt is in the prefix cache. */
        CHECK(run_all(e, sp, N, got) == 0);
        k = count_same(solo, got, N);
        int cached = 0;
        for (int i = 0; i < N; i++)
            cached += got[i].tm.n_cached > 0 || sp[i].n_prompt < 16;
        CHECKF(k == N, "%s: prefix-cache rerun (chunk %d): %d of %d match", label, chunks[c], k,
               N);
        CHECKF(cached == N, "%s: %d of %d prompts found their prefix cached", label, cached, N);
        check_pool_empty(e, "cached");
        pagoda_engine_free(e);
    }

    /* A pool too small for everyone: preemption and recomputation. Block
     * size 8 and about 3 contexts' worth of blocks. */
    e = engine_open(32, 128, 0, 0, 1, 8);
    pagoda_engine_free(e);
    {
        pagoda_engine_options o;
        pagoda_engine_options_default(&o);
        o.model_path = model_path;
        o.n_threads = 2;
        o.n_ctx = 512;
        o.block_size = 8;
        o.kv_type = kv_type;
        o.batch_tokens = 128;
        o.max_running = 32;
        /* The bytes of 200 blocks: ask the engine how big a block is. */
        char err[512];
        CHECK(pagoda_engine_create(&o, &e, err, sizeof err) == 0);
        pagoda_stats st;
        pagoda_engine_stats(e, &st);
        const uint64_t block_bytes = st.kv_bytes / (uint64_t)st.kv_blocks_total;
        pagoda_engine_free(e);
        /* 64 blocks hold one whole context, the least the engine accepts. */
        o.kv_mem_bytes = block_bytes * (SLOW_BUILD ? 70 : 200);
        CHECK(pagoda_engine_create(&o, &e, err, sizeof err) == 0);
        CHECK(run_all(e, sp, N, got) == 0);
        pagoda_engine_stats(e, &st);
        int k = count_same(solo, got, N);
        CHECKF(k == N, "%s: small pool: %d of %d match the solo runs", label, k, N);
        CHECKF(st.preemptions > 0, "%s: the small pool never preempted", label);
        int re = 0;
        for (int i = 0; i < N; i++)
            re += got[i].tm.n_preempted > 0;
        printf("%s: small pool: %llu preemptions over %d requests\n", label,
               (unsigned long long)st.preemptions, re);
        check_pool_empty(e, "small pool");
        pagoda_engine_free(e);
    }
}

/* Shared prefixes: a request whose prompt extends a finished one reuses its blocks. */
static void prefix_sharing(int n_vocab)
{
    static struct spec a, b;
    static struct result ra, rb, solo_b;
    struct rng r;
    rng_seed(&r, 11);
    a.n_prompt = 200;
    for (int i = 0; i < a.n_prompt; i++)
        a.prompt[i] = (int32_t)(rng_next(&r) % (uint64_t)n_vocab);
    b = a;
    b.n_prompt = 260;
    for (int i = 200; i < b.n_prompt; i++)
        b.prompt[i] = (int32_t)(rng_next(&r) % (uint64_t)n_vocab);
    a.max_tokens = b.max_tokens = 12;
    pagoda_engine *e = engine_open(8, 512, 0, 0, 0, 16);
    run_all(e, &b, 1, &solo_b);
    pagoda_engine_free(e);
    e = engine_open(8, 512, 0, 0, 1, 16);
    run_all(e, &a, 1, &ra);
    run_all(e, &b, 1, &rb);
    CHECKF(rb.tm.n_cached == 192, "second request reused %d prompt tokens (expected 192)",
           rb.tm.n_cached);
    CHECK(same(&rb, &solo_b));
    pagoda_stats st;
    pagoda_engine_stats(e, &st);
    CHECK(st.prompt_tokens == 460 && st.prompt_tokens_cached == 192);
    CHECK(st.prefix_hit_rate > 0.4 && st.prefix_hit_rate < 0.42);
    check_pool_empty(e, "prefix");
    CHECK(st.kv_blocks_cached > 0);
    pagoda_engine_free(e);
}

/* Hundreds of requests in a small pool, some aborted at random. */
static void stress(int n_vocab)
{
    enum { N = SLOW_BUILD ? 120 : 300 };
    static struct spec sp[N];
    static struct result solo[N], got[N];
    static struct job jobs[N];
    static uint64_t ids[N];
    make_specs(sp, N, n_vocab, 99, 0, SLOW_BUILD ? 60 : 120);
    pagoda_engine *e = engine_open(1, 512, 0, 0, 0, 16);
    for (int i = 0; i < N; i++)
        run_all(e, &sp[i], 1, &solo[i]);
    pagoda_engine_free(e);

    pagoda_engine_options o;
    pagoda_engine_options_default(&o);
    o.model_path = model_path;
    o.n_threads = 2;
    o.n_ctx = 512;
    o.block_size = 16;
    o.batch_tokens = 96;
    o.max_running = 48;
    char err[512];
    CHECK(pagoda_engine_create(&o, &e, err, sizeof err) == 0);
    pagoda_stats st;
    pagoda_engine_stats(e, &st);
    const uint64_t block_bytes = st.kv_bytes / (uint64_t)st.kv_blocks_total;
    pagoda_engine_free(e);
    o.kv_mem_bytes = block_bytes * 60;
    CHECK(pagoda_engine_create(&o, &e, err, sizeof err) == 0);

    struct collector c = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    struct rng r;
    rng_seed(&r, 5);
    int aborted[N] = {0}, n_abort_ok = 0, submitted = 0;
    memset(got, 0, sizeof got);
    for (int i = 0; i < N; i++) {
        jobs[i] = (struct job){&c, &got[i]};
        pthread_mutex_lock(&c.mu);
        c.pending++;
        pthread_mutex_unlock(&c.mu);
        if (submit(e, &sp[i], &jobs[i], &ids[i])) {
            pthread_mutex_lock(&c.mu);
            c.pending--;
            pthread_mutex_unlock(&c.mu);
            continue;
        }
        submitted++;
        /* Abort an earlier request now and then, while things run. */
        if (rng_next(&r) % 4 == 0) {
            int k = (int)(rng_next(&r) % (uint64_t)(i + 1));
            if (!aborted[k] && pagoda_abort(e, ids[k]) == 0) {
                aborted[k] = 1;
                n_abort_ok++;
            }
        }
        if (rng_next(&r) % 8 == 0)
            usleep(2000);
    }
    wait_all(&c);
    CHECK(submitted == N);
    int ended_once = 0, match = 0, aborted_ended = 0;
    for (int i = 0; i < N; i++) {
        ended_once += got[i].n_done == 1 && !got[i].bad_order;
        if (got[i].finish == PAGODA_FINISH_ABORT) {
            aborted_ended++;
            /* What it produced before the abort is a prefix of the solo run. */
            match += got[i].n <= solo[i].n &&
                     !memcmp(got[i].tokens, solo[i].tokens, sizeof(int32_t) * (size_t)got[i].n);
        } else {
            match += same(&got[i], &solo[i]);
        }
    }
    CHECKF(ended_once == N, "stress: %d of %d requests ended exactly once", ended_once, N);
    CHECKF(match == N, "stress: %d of %d outputs match the solo runs", match, N);
    CHECKF(aborted_ended <= n_abort_ok && aborted_ended > 0,
           "stress: %d aborted of %d abort calls", aborted_ended, n_abort_ok);
    CHECKF(pagoda_abort(e, ids[0]) == PAGODA_ENOTFOUND, "abort of a finished request");
    pagoda_engine_stats(e, &st);
    printf("stress: %d requests, %d aborted, %llu preemptions, %llu steps\n", N, aborted_ended,
           (unsigned long long)st.preemptions, (unsigned long long)st.steps);
    check_pool_empty(e, "stress");
    pagoda_engine_free(e);
}

static void errors_and_text(int n_vocab)
{
    pagoda_engine *e = engine_open(1, 64, 0, 0, 1, 16);
    CHECK(e != NULL);
    if (!e)
        return;
    pagoda_model_info mi;
    pagoda_engine_model_info(e, &mi);
    CHECK(mi.n_vocab == n_vocab && mi.n_ctx == 512 && mi.name && mi.arch);
    struct job j;
    struct result res;
    struct collector c = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    j = (struct job){&c, &res};
    uint64_t id;
    char err[512];
    pagoda_request rq;
    memset(&rq, 0, sizeof rq);
    pagoda_sampling_default(&rq.sampling);
    rq.callback = on_event;
    rq.user = &j;
    int32_t prompt[600];
    for (int i = 0; i < 600; i++)
        prompt[i] = 1 + i % 50;
    rq.prompt = prompt;
    rq.n_prompt = 512;
    rq.max_tokens = 1;
    CHECK(pagoda_submit(e, &rq, &id, err, sizeof err) == PAGODA_ERANGE);
    rq.n_prompt = 500;
    rq.max_tokens = 13;
    CHECK(pagoda_submit(e, &rq, &id, err, sizeof err) == PAGODA_ERANGE);
    CHECK(strstr(err, "context") != NULL);
    rq.n_prompt = 10;
    rq.max_tokens = 0;
    CHECK(pagoda_submit(e, &rq, &id, err, sizeof err) == PAGODA_EINVAL);
    rq.max_tokens = 4;
    prompt[3] = n_vocab;
    CHECK(pagoda_submit(e, &rq, &id, err, sizeof err) == PAGODA_EINVAL);
    prompt[3] = -1;
    CHECK(pagoda_submit(e, &rq, &id, err, sizeof err) == PAGODA_EINVAL);
    prompt[3] = 4;
    rq.sampling.temperature = 0;
    rq.sampling.top_p = -1;
    CHECK(pagoda_submit(e, &rq, &id, err, sizeof err) == PAGODA_EINVAL);
    pagoda_sampling_default(&rq.sampling);
    rq.sampling.temperature = 0;
    CHECK(pagoda_abort(e, 12345) == PAGODA_ENOTFOUND);

    /* Text events concatenate to the detokenized tokens; logprobs are sane. */
    rq.max_tokens = 24;
    rq.ignore_eos = 1;
    rq.logprobs = 1;
    rq.top_logprobs = 5;
    memset(&res, 0, sizeof res);
    c.pending = 1;
    CHECK(pagoda_submit(e, &rq, &id, err, sizeof err) == 0);
    wait_all(&c);
    CHECK(res.n == 24 && res.finish == PAGODA_FINISH_LENGTH && res.n_token_events == 24);
    char *text;
    size_t len;
    CHECK(pagoda_detokenize(e, res.tokens, (size_t)res.n, 0, &text, &len, err, sizeof err) == 0);
    /* The stream hands out only whole UTF-8 characters (random tokens can
     * form broken ones, which it replaces), so it equals the decoded text
     * wherever that is valid UTF-8. */
    CHECK(utf8_valid(res.text, res.text_len));
    if (utf8_valid(text, len))
        CHECKF(len == res.text_len && !memcmp(text, res.text, len),
               "streamed text differs (%zu vs %zu)", res.text_len, len);
    free(text);
    CHECK(res.tm.t_first_token >= res.tm.t_submit && res.tm.t_end >= res.tm.t_first_token);
    CHECK(res.tm.n_prompt == 10 && res.tm.n_generated == 24);

    /* A stop string cut from that text ends a rerun there. */
    char streamed[4096];
    size_t slen = res.text_len;
    memcpy(streamed, res.text, slen);
    size_t at = slen / 2;
    while (at + 3 < slen && !((unsigned char)streamed[at] < 0x80 &&
                              (unsigned char)streamed[at + 1] < 0x80 &&
                              (unsigned char)streamed[at + 2] < 0x80))
        at++;
    CHECK(at + 3 < slen);
    if (at + 3 < slen) {
        char stop[8];
        memcpy(stop, streamed + at, 3);
        stop[3] = '\0';
        const char *first = memmem(streamed, slen, stop, 3);
        size_t want = (size_t)(first - streamed);
        rq.stop[0] = stop;
        rq.n_stop = 1;
        memset(&res, 0, sizeof res);
        c.pending = 1;
        CHECK(pagoda_submit(e, &rq, &id, err, sizeof err) == 0);
        wait_all(&c);
        CHECKF(res.finish == PAGODA_FINISH_STOP && res.text_len == want &&
                   !memcmp(res.text, streamed, want),
               "stop string '%s': finish %d, %zu bytes (want %zu)", stop, res.finish,
               res.text_len, want);
        rq.n_stop = 0;
    }

    /* Queue limit: hold the driver in a callback and overfill the queue. */
    pagoda_engine_free(e);
    pagoda_engine_options o;
    pagoda_engine_options_default(&o);
    o.model_path = model_path;
    o.n_ctx = 512;
    o.kv_mem_bytes = 64u << 20;
    o.max_running = 1;
    o.max_queued = 3;
    CHECK(pagoda_engine_create(&o, &e, err, sizeof err) == 0);
    struct result many[8];
    struct job mj[8];
    memset(many, 0, sizeof many);
    c.pending = 0;
    __atomic_store_n(&c.block_first_ms, 300, __ATOMIC_SEQ_CST);
    int busy = 0, ok = 0;
    rq.max_tokens = 2;
    rq.logprobs = 0;
    rq.top_logprobs = 0;
    for (int i = 0; i < 8; i++) {
        mj[i] = (struct job){&c, &many[i]};
        rq.user = &mj[i];
        pthread_mutex_lock(&c.mu);
        c.pending++;
        pthread_mutex_unlock(&c.mu);
        int rc = pagoda_submit(e, &rq, &id, err, sizeof err);
        if (rc) {
            pthread_mutex_lock(&c.mu);
            c.pending--;
            pthread_mutex_unlock(&c.mu);
        }
        busy += rc == PAGODA_EBUSY;
        ok += rc == 0;
        /* The first request must be running, holding the driver in its first
         * callback, before the rest arrive: then exactly max_queued wait. */
        for (int t = 0; i == 0 && t < 10000 && __atomic_load_n(&c.block_first_ms, __ATOMIC_SEQ_CST); t++)
            usleep(1000);
    }
    CHECKF(busy > 0 && ok >= 4, "queue limit: %d accepted, %d busy", ok, busy);
    wait_all(&c);
    /* Freeing an engine with work in flight aborts it. */
    memset(many, 0, sizeof many);
    c.pending = 0;
    rq.max_tokens = 200;
    for (int i = 0; i < 3; i++) {
        mj[i] = (struct job){&c, &many[i]};
        rq.user = &mj[i];
        c.pending++;
        CHECK(pagoda_submit(e, &rq, &id, err, sizeof err) == 0);
    }
    pagoda_engine_free(e);
    for (int i = 0; i < 3; i++)
        CHECK(many[i].n_done == 1 && many[i].finish == PAGODA_FINISH_ABORT);
}

int main(void)
{
    const char *ref = test_reference_dir();
    if (!ref)
        return TEST_SKIP_EXIT;
    snprintf(model_path, sizeof model_path, "%s/models/tiny-llama-q8_0.gguf", ref);
    FILE *f = fopen(model_path, "rb");
    if (!f) {
        printf("SKIP: %s is missing\n", model_path);
        return TEST_SKIP_EXIT;
    }
    fclose(f);
    pagoda_engine *e = engine_open(1, 64, 0, 0, 1, 16);
    CHECK(e != NULL);
    if (!e)
        TEST_END();
    pagoda_model_info mi;
    pagoda_engine_model_info(e, &mi);
    const int n_vocab = mi.n_vocab;
    pagoda_engine_free(e);

    errors_and_text(n_vocab);
    prefix_sharing(n_vocab);
    invariance(n_vocab, 0, "greedy");
    invariance(n_vocab, 0.9f, "seeded");
    stress(n_vocab);
    /* KV in BF16 and Q8_0: the same guarantees hold for every KV type. */
    kv_type = PAGODA_KV_BF16;
    if (!SLOW_BUILD)
        invariance(n_vocab, 0, "greedy, bf16 KV");
    kv_type = PAGODA_KV_Q8_0;
    invariance(n_vocab, 0.9f, "seeded, q8_0 KV");
    kv_type = PAGODA_KV_F16;

    /* Another family (qwen2: biases, NeoX rope), F16 weights. */
    snprintf(model_path, sizeof model_path, "%s/models/tiny-qwen2-f16.gguf", ref);
    e = SLOW_BUILD ? NULL : engine_open(1, 64, 0, 0, 1, 16);
    if (e) {
        pagoda_engine_model_info(e, &mi);
        pagoda_engine_free(e);
        invariance(mi.n_vocab, 0, "qwen2 greedy");
    }
    TEST_END();
}
