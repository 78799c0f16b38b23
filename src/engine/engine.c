/*
 * engine.c: the serving engine behind include/pagoda.h. A driver thread owns
 * every sequence once it leaves the submission inbox and runs steps: each step
 * schedules (decodes first, then prompt chunks of running sequences, then new
 * admissions, within a token budget), runs one forward pass over the batch,
 * and samples, detokenizes and reports a token for every sequence whose
 * pending tokens were all computed. KV blocks come from kv_pool; full blocks
 * are registered in the prefix cache as they fill, and a sequence is
 * preempted (blocks freed, recomputed later) when a decode finds none free.
 *
 * Because the forward pass gives a row the same bits whatever else is in the
 * batch, a sequence's output does not depend on scheduling: batching, chunk
 * sizes, cache hits and preemption change only when its work is done.
 */
#include "pagoda.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/pool.h"
#include "engine/kv_pool.h"
#include "engine/sampler.h"
#include "engine/stop.h"
#include "model/model.h"
#include "model/quant_recipe.h"
#include "ops/attention.h"
#include "ops/types.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

#define ENGINE_DEFAULT_BLOCK 16
#define ENGINE_DEFAULT_BATCH 512
#define ENGINE_DEFAULT_RUNNING 64
#define ENGINE_DEFAULT_QUEUED 1024
#define ENGINE_DEFAULT_CTX 4096
#define ENGINE_RATE_WINDOW 64 /* steps remembered for the tokens/s figure */

struct seq {
    struct seq *live_next; /* engine's list of unfinished requests (under the lock) */
    struct seq *inbox_next;
    uint64_t id;
    pagoda_callback cb;
    void *user;
    atomic_int abort_requested;

    int32_t *tokens;  /* prompt then generated, capacity cap */
    int n_tokens, cap, n_prompt;
    int n_computed;   /* tokens whose K/V are in the blocks */
    int32_t *blocks;  /* block table, max_blocks entries */
    int n_blocks, max_blocks;
    uint64_t *hashes; /* chained hashes of the leading full blocks */
    int n_hashed;
    bool admitted_once;
    bool scheduled;   /* in the current step's batch */
    int chunk;        /* tokens it has in the current batch */

    int max_tokens;
    bool ignore_eos;
    bool logprobs;
    int top_logprobs;
    char *stops[PAGODA_MAX_STOPS];
    int n_stops;
    struct sampler *smp;
    pagoda_logit_bias *bias;
    struct tokenizer_stream *ts;
    char *text;
    size_t text_len, text_cap, shown;
    pagoda_timings tm;
};

struct pagoda_engine {
    pagoda_engine_options opt;
    struct model *model;
    struct tokenizer *tok;
    struct pool *pool;
    struct fwd_ctx *fc;
    struct kv_store kv;
    struct kv_pool *kp;
    int n_ctx;
    int n_vocab;

    char name[256];
    const char *chat_template;
    uint64_t n_params;
    uint64_t n_bytes;
    const char *file_type;

    pthread_t driver;
    bool driver_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
    uint64_t next_id;
    struct seq *live;
    struct seq *inbox_head, *inbox_tail;
    int n_inbox;
    int n_waiting_new; /* posted by the driver: waiting requests never admitted */
    pagoda_stats stats;

    /* driver-owned */
    struct seq **running;
    int n_running;
    struct seq **waiting;
    int n_waiting, cap_waiting;
    int32_t *b_tokens, *b_pos, *b_seq, *b_rows;
    const int32_t **b_tables;
    struct seq **b_row_seq;
    float *logits;
    float *lp_raw;
    int32_t *lp_top;
    float *lp_topv;
    double rate_t[ENGINE_RATE_WINDOW];
    uint64_t rate_n[ENGINE_RATE_WINDOW];
    int rate_i;
    int64_t peak_used;
    atomic_int reset_peak;
    uint64_t c_done, c_prompt, c_cached, c_generated, c_preempt, c_steps;
};

double pagoda_now(void) { return clock_now(); }

void pagoda_engine_options_default(pagoda_engine_options *o)
{
    memset(o, 0, sizeof *o);
    o->kv_mem_fraction = 0.25;
    o->prefix_cache = 1;
}

/* ---------------------------------------------------------------- sequences */

static void seq_free(struct seq *s)
{
    if (!s)
        return;
    free(s->tokens);
    free(s->blocks);
    free(s->hashes);
    for (int i = 0; i < s->n_stops; i++)
        free(s->stops[i]);
    sampler_free(s->smp);
    free(s->bias);
    tokenizer_stream_free(s->ts);
    free(s->text);
    free(s);
}

static void seq_release_blocks(pagoda_engine *e, struct seq *s)
{
    /* Tail blocks first, so the cache evicts a prefix's end before its start. */
    for (int i = s->n_blocks - 1; i >= 0; i--)
        kv_block_release(e->kp, s->blocks[i]);
    s->n_blocks = 0;
    s->n_computed = 0;
}

static void emit(struct seq *s, const pagoda_event *ev)
{
    if (s->cb)
        s->cb(s->user, ev);
}

static void live_remove(pagoda_engine *e, struct seq *s)
{
    pthread_mutex_lock(&e->mu);
    for (struct seq **l = &e->live; *l; l = &(*l)->live_next)
        if (*l == s) {
            *l = s->live_next;
            break;
        }
    pthread_mutex_unlock(&e->mu);
}

static void remove_from(struct seq **arr, int *n, struct seq *s)
{
    for (int i = 0; i < *n; i++)
        if (arr[i] == s) {
            memmove(arr + i, arr + i + 1, sizeof *arr * (size_t)(*n - i - 1));
            (*n)--;
            return;
        }
}

/* Ends a request: frees its blocks, reports DONE, frees it. */
static void seq_finish(pagoda_engine *e, struct seq *s, pagoda_finish why, const char *error)
{
    seq_release_blocks(e, s);
    remove_from(e->running, &e->n_running, s);
    remove_from(e->waiting, &e->n_waiting, s);
    live_remove(e, s);
    s->tm.t_end = clock_now();
    e->c_done++;
    pagoda_event ev = {0};
    ev.type = PAGODA_EVENT_DONE;
    ev.id = s->id;
    ev.user = s->user;
    ev.token = -1;
    ev.text = "";
    ev.finish = why;
    ev.error = error;
    ev.timings = s->tm;
    emit(s, &ev);
    seq_free(s);
}

static int text_append(struct seq *s, const char *p, size_t n)
{
    if (s->text_len + n + 1 > s->text_cap) {
        size_t cap = (s->text_len + n + 1) * 2;
        char *t = realloc(s->text, cap);
        if (!t)
            return -1;
        s->text = t;
        s->text_cap = cap;
    }
    memcpy(s->text + s->text_len, p, n);
    s->text_len += n;
    s->text[s->text_len] = '\0';
    return 0;
}

/* How much of the text may be shown (never less than what already was). */
static size_t seq_stop_scan(struct seq *s, bool *hit)
{
    size_t safe = stop_scan(s->text, &s->text_len, s->shown, (const char *const *)s->stops,
                            s->n_stops, hit);
    return safe < s->shown ? s->shown : safe;
}

/* ---------------------------------------------------------------- blocks */

static void kv_copy_block(pagoda_engine *e, int32_t dst, int32_t src)
{
    memcpy((uint8_t *)e->kv.data + (size_t)dst * e->kv.block_bytes,
           (const uint8_t *)e->kv.data + (size_t)src * e->kv.block_bytes, e->kv.block_bytes);
}

/* Makes blocks cover positions [n_computed, n_computed + want), copying a
 * shared block that would be written. Returns how many of those tokens are
 * covered (fewer when the pool runs dry). */
static int seq_reserve(pagoda_engine *e, struct seq *s, int want)
{
    const int bs = e->kv.block_size;
    const int first = s->n_computed / bs;
    if (first < s->n_blocks && kv_block_shared(e->kp, s->blocks[first])) {
        int32_t id = kv_block_alloc(e->kp);
        if (id < 0)
            return 0;
        kv_copy_block(e, id, s->blocks[first]);
        kv_block_release(e->kp, s->blocks[first]);
        s->blocks[first] = id;
    }
    const int need = (s->n_computed + want + bs - 1) / bs;
    while (s->n_blocks < need && s->n_blocks < s->max_blocks) {
        int32_t id = kv_block_alloc(e->kp);
        if (id < 0)
            break;
        s->blocks[s->n_blocks++] = id;
    }
    int covered = s->n_blocks * bs - s->n_computed;
    return covered < want ? (covered > 0 ? covered : 0) : want;
}

/* Takes the cached blocks matching the start of the sequence's tokens. The
 * last token is always computed again, for its logits. */
static void seq_match_prefix(pagoda_engine *e, struct seq *s)
{
    const int bs = e->kv.block_size;
    s->n_hashed = 0;
    if (!e->opt.prefix_cache)
        return;
    uint64_t parent = 0;
    while ((s->n_blocks + 1) * bs <= s->n_tokens) {
        const int32_t *t = s->tokens + (size_t)s->n_blocks * (size_t)bs;
        uint64_t h = kv_block_hash(parent, t, bs);
        int32_t id = kv_prefix_lookup(e->kp, h, parent, t);
        if (id < 0)
            break;
        s->blocks[s->n_blocks] = id;
        s->hashes[s->n_blocks] = h;
        s->n_blocks++;
        s->n_hashed = s->n_blocks;
        parent = h;
    }
    s->n_computed = s->n_blocks * bs;
    if (s->n_computed >= s->n_tokens)
        s->n_computed = s->n_tokens - 1;
}

/* Registers blocks that became full since the last step. */
static void seq_register_blocks(pagoda_engine *e, struct seq *s)
{
    if (!e->opt.prefix_cache)
        return;
    const int bs = e->kv.block_size;
    while ((s->n_hashed + 1) * bs <= s->n_computed) {
        const int k = s->n_hashed;
        const uint64_t parent = k ? s->hashes[k - 1] : 0;
        const int32_t *t = s->tokens + (size_t)k * (size_t)bs;
        s->hashes[k] = kv_block_hash(parent, t, bs);
        kv_block_register(e->kp, s->blocks[k], s->hashes[k], parent, t);
        s->n_hashed++;
    }
}

static void seq_preempt(pagoda_engine *e, struct seq *s)
{
    seq_register_blocks(e, s);
    seq_release_blocks(e, s);
    s->n_hashed = 0;
    remove_from(e->running, &e->n_running, s);
    memmove(e->waiting + 1, e->waiting, sizeof *e->waiting * (size_t)e->n_waiting);
    e->waiting[0] = s;
    e->n_waiting++;
    s->tm.n_preempted++;
    e->c_preempt++;
}

/* ---------------------------------------------------------------- sampling */

static void report_token(pagoda_engine *e, struct seq *s, float *row)
{
    pagoda_event ev = {0};
    ev.type = PAGODA_EVENT_TOKEN;
    ev.id = s->id;
    ev.user = s->user;
    if (s->logprobs || s->top_logprobs) {
        /* Log-probabilities of the model's own distribution, before sampling
         * changes the logits. */
        memcpy(e->lp_raw, row, sizeof(float) * (size_t)e->n_vocab);
        float mx = -INFINITY;
        for (int i = 0; i < e->n_vocab; i++)
            if (e->lp_raw[i] > mx)
                mx = e->lp_raw[i];
        double sum = 0;
        for (int i = 0; i < e->n_vocab; i++)
            sum += exp((double)e->lp_raw[i] - mx);
        const float lse = mx + (float)log(sum);
        int n = 0;
        for (int i = 0; i < e->n_vocab && s->top_logprobs; i++) {
            const float v = e->lp_raw[i];
            if (n == s->top_logprobs && v <= e->lp_topv[n - 1])
                continue;
            int j = n < s->top_logprobs ? n++ : n - 1;
            while (j > 0 && e->lp_topv[j - 1] < v) {
                e->lp_topv[j] = e->lp_topv[j - 1];
                e->lp_top[j] = e->lp_top[j - 1];
                j--;
            }
            e->lp_topv[j] = v;
            e->lp_top[j] = i;
        }
        for (int i = 0; i < n; i++)
            e->lp_topv[i] -= lse;
        ev.n_top = n;
        ev.top_tokens = e->lp_top;
        ev.top_logprobs = e->lp_topv;
        ev.logprob = 0; /* set below, once the token is known */
        const int32_t tok = sampler_sample(s->smp, row, s->tokens, s->n_tokens);
        ev.token = tok;
        ev.logprob = e->lp_raw[tok] - lse;
    } else {
        ev.token = sampler_sample(s->smp, row, s->tokens, s->n_tokens);
    }
    const int32_t tok = ev.token;
    s->tokens[s->n_tokens++] = tok;
    s->tm.n_generated++;
    e->c_generated++;
    if (s->tm.n_generated == 1)
        s->tm.t_first_token = clock_now();

    pagoda_finish finish = PAGODA_FINISH_NONE;
    bool hit = false;
    size_t safe = s->shown;
    const bool eog = !s->ignore_eos && tokenizer_is_eog(e->tok, tok);
    if (!eog) {
        const char *piece;
        size_t plen;
        if (tokenizer_stream_push(s->ts, tok, &piece, &plen) == 0 && plen &&
            text_append(s, piece, plen)) {
            seq_finish(e, s, PAGODA_FINISH_ERROR, "out of memory");
            return;
        }
        safe = seq_stop_scan(s, &hit);
        if (hit)
            finish = PAGODA_FINISH_STOP;
    } else {
        finish = PAGODA_FINISH_STOP;
    }
    if (!finish && (s->tm.n_generated >= s->max_tokens || s->n_tokens >= s->cap))
        finish = PAGODA_FINISH_LENGTH;
    if (finish && !hit) {
        /* Nothing more comes: text held back for a possible stop string or
         * an unfinished character goes out now. */
        const char *piece;
        size_t plen;
        if (tokenizer_stream_flush(s->ts, &piece, &plen) == 0 && plen)
            text_append(s, piece, plen);
        seq_stop_scan(s, &hit);
        if (hit)
            finish = PAGODA_FINISH_STOP;
        safe = s->text_len;
    }
    ev.text = s->text + s->shown;
    ev.text_len = safe - s->shown;
    s->shown = safe;
    ev.timings = s->tm;
    emit(s, &ev);
    if (finish)
        seq_finish(e, s, finish, NULL);
}

/* ---------------------------------------------------------------- steps */

static void schedule(struct seq *s, int c, int *n_batch)
{
    s->scheduled = true;
    s->chunk = c;
    *n_batch += c;
}

/* One step. Returns false when there was nothing it could do. */
static bool engine_step(pagoda_engine *e)
{
    const int budget_max = e->opt.batch_tokens;
    const int chunk_max = e->opt.prefill_chunk;
    int n_batch = 0;
    const uint64_t preempted_before = e->c_preempt;

    for (int i = 0; i < e->n_running; i++)
        e->running[i]->scheduled = false;

    /* Aborts first: their blocks are free for this step. */
    for (int i = e->n_running - 1; i >= 0; i--)
        if (atomic_load(&e->running[i]->abort_requested))
            seq_finish(e, e->running[i], PAGODA_FINISH_ABORT, NULL);
    for (int i = e->n_waiting - 1; i >= 0; i--)
        if (atomic_load(&e->waiting[i]->abort_requested))
            seq_finish(e, e->waiting[i], PAGODA_FINISH_ABORT, NULL);

    /* 1. decodes, oldest first; when blocks run out the newest sequence yields. */
    for (int i = 0; i < e->n_running && n_batch < budget_max; i++) {
        struct seq *s = e->running[i];
        if (s->n_tokens - s->n_computed != 1)
            continue;
        bool self = false;
        while (seq_reserve(e, s, 1) < 1) {
            struct seq *v = e->running[e->n_running - 1];
            seq_preempt(e, v);
            if (v == s) {
                self = true;
                break;
            }
        }
        if (self)
            break; /* every later sequence is gone too */
        schedule(s, 1, &n_batch);
    }
    /* 2. prompt chunks of running sequences. */
    for (int i = 0; i < e->n_running && n_batch < budget_max; i++) {
        struct seq *s = e->running[i];
        if (s->scheduled || s->n_tokens - s->n_computed <= 1)
            continue;
        int c = s->n_tokens - s->n_computed;
        if (c > budget_max - n_batch)
            c = budget_max - n_batch;
        if (c > chunk_max)
            c = chunk_max;
        c = seq_reserve(e, s, c);
        if (c > 0)
            schedule(s, c, &n_batch);
    }
    /* 3. admissions, first come first served (preempted ones are at the front);
     * none in a step that had to preempt, or the pool would thrash. */
    while (e->c_preempt == preempted_before && e->n_waiting > 0 && e->n_running < e->opt.max_running && n_batch < budget_max) {
        struct seq *s = e->waiting[0];
        seq_match_prefix(e, s);
        int c = s->n_tokens - s->n_computed;
        if (c > budget_max - n_batch)
            c = budget_max - n_batch;
        if (c > chunk_max)
            c = chunk_max;
        c = seq_reserve(e, s, c);
        if (c < 1) {
            seq_release_blocks(e, s);
            s->n_hashed = 0;
            break;
        }
        if (!s->admitted_once) {
            s->admitted_once = true;
            s->tm.n_cached = s->n_computed;
            e->c_prompt += (uint64_t)s->n_prompt;
            e->c_cached += (uint64_t)s->n_computed;
        }
        memmove(e->waiting, e->waiting + 1, sizeof *e->waiting * (size_t)(e->n_waiting - 1));
        e->n_waiting--;
        e->running[e->n_running++] = s;
        schedule(s, c, &n_batch);
    }

    if (n_batch == 0) {
        if (e->n_running > 0) {
            /* Prompts hold the pool and none can grow: let the newest go. */
            seq_preempt(e, e->running[e->n_running - 1]);
            return true;
        }
        return false;
    }

    struct kv_pool_counts kc;
    kv_pool_counts(e->kp, &kc);
    if (atomic_exchange(&e->reset_peak, 0))
        e->peak_used = 0;
    if (kc.used > e->peak_used) {
        e->peak_used = kc.used;
        /* Posted at once: a caller may read it as soon as its requests end. */
        pthread_mutex_lock(&e->mu);
        e->stats.kv_blocks_used_peak = e->peak_used;
        pthread_mutex_unlock(&e->mu);
    }

    /* Build the batch in running order. */
    int t = 0, n_rows = 0;
    for (int i = 0; i < e->n_running; i++) {
        struct seq *s = e->running[i];
        if (!s->scheduled)
            continue;
        e->b_tables[i] = s->blocks;
        for (int k = 0; k < s->chunk; k++) {
            e->b_tokens[t] = s->tokens[s->n_computed + k];
            e->b_pos[t] = s->n_computed + k;
            e->b_seq[t] = i;
            t++;
        }
        if (s->n_computed + s->chunk == s->n_tokens) {
            e->b_rows[n_rows] = t - 1;
            e->b_row_seq[n_rows] = s;
            n_rows++;
        }
    }
    struct fwd_batch b = {t, e->b_tokens, e->b_pos, e->b_seq,
                          (const int32_t *const *)e->b_tables, n_rows, e->b_rows};
    char err[256];
    int rc = model_forward(e->model, e->fc, &e->kv, &b, e->logits, err, sizeof err);
    e->c_steps++;
    if (rc) {
        for (int i = e->n_running - 1; i >= 0; i--)
            if (e->running[i]->scheduled)
                seq_finish(e, e->running[i], PAGODA_FINISH_ERROR, err);
        return true;
    }
    for (int i = 0; i < e->n_running; i++) {
        struct seq *s = e->running[i];
        if (!s->scheduled)
            continue;
        s->n_computed += s->chunk;
        seq_register_blocks(e, s);
    }
    for (int r = 0; r < n_rows; r++)
        report_token(e, e->b_row_seq[r], e->logits + (size_t)r * (size_t)e->n_vocab);
    return true;
}

static void post_stats(pagoda_engine *e)
{
    struct kv_pool_counts kc;
    kv_pool_counts(e->kp, &kc);
    pagoda_stats st = {0};
    st.running = e->n_running;
    int new_waiting = 0;
    for (int i = 0; i < e->n_waiting; i++)
        new_waiting += !e->waiting[i]->admitted_once;
    st.block_size = e->kv.block_size;
    st.n_threads = pool_size(e->pool);
    st.kv_blocks_total = kc.total;
    st.kv_blocks_used = kc.used;
    st.kv_blocks_cached = kc.cached;
    st.kv_blocks_free = kc.free;
    st.kv_blocks_used_peak = e->peak_used;
    st.kv_bytes = (uint64_t)e->kv.block_bytes * (uint64_t)e->kv.n_blocks;
    for (int i = 0; i < e->n_running; i++) {
        st.kv_tokens += e->running[i]->n_computed;
        st.kv_slots += (int64_t)e->running[i]->n_blocks * e->kv.block_size;
    }
    st.requests_done = e->c_done;
    st.prompt_tokens = e->c_prompt;
    st.prompt_tokens_cached = e->c_cached;
    st.generated_tokens = e->c_generated;
    st.preemptions = e->c_preempt;
    st.steps = e->c_steps;
    st.prefix_hit_rate = e->c_prompt ? (double)e->c_cached / (double)e->c_prompt : 0;
    const double now = clock_now();
    e->rate_i = (e->rate_i + 1) % ENGINE_RATE_WINDOW;
    e->rate_t[e->rate_i] = now;
    e->rate_n[e->rate_i] = e->c_generated;
    /* Over the oldest remembered step within the last 5 seconds. */
    int oldest = e->rate_i;
    for (int k = 1; k < ENGINE_RATE_WINDOW; k++) {
        int j = (e->rate_i - k + ENGINE_RATE_WINDOW) % ENGINE_RATE_WINDOW;
        if (e->rate_t[j] <= 0 || now - e->rate_t[j] > 5.0)
            break;
        oldest = j;
    }
    if (oldest != e->rate_i && now > e->rate_t[oldest])
        st.gen_tokens_per_s =
            (double)(e->c_generated - e->rate_n[oldest]) / (now - e->rate_t[oldest]);
    pthread_mutex_lock(&e->mu);
    st.waiting = e->n_waiting + e->n_inbox;
    e->n_waiting_new = new_waiting;
    e->stats = st;
    pthread_mutex_unlock(&e->mu);
}

static bool take_inbox(pagoda_engine *e)
{
    /* Called with the lock held. */
    bool any = false;
    while (e->inbox_head) {
        struct seq *s = e->inbox_head;
        e->inbox_head = s->inbox_next;
        if (e->n_waiting == e->cap_waiting)
            break; /* cannot happen: capacity is max_queued + max_running */
        e->waiting[e->n_waiting++] = s;
        e->n_inbox--;
        any = true;
    }
    if (!e->inbox_head)
        e->inbox_tail = NULL;
    return any;
}

static void *driver_main(void *arg)
{
    pagoda_engine *e = arg;
    int idle_rounds = 0;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->stopping && !e->inbox_head && e->n_running == 0 && e->n_waiting == 0)
            pthread_cond_wait(&e->cv, &e->mu);
        if (e->stopping) {
            take_inbox(e);
            pthread_mutex_unlock(&e->mu);
            break;
        }
        take_inbox(e);
        pthread_mutex_unlock(&e->mu);
        bool progress = engine_step(e);
        post_stats(e);
        if (!progress) {
            /* Only aborted or waiting work that cannot start yet: do not spin. */
            if (++idle_rounds > 2)
                usleep(1000);
        } else {
            idle_rounds = 0;
        }
    }
    while (e->n_running > 0)
        seq_finish(e, e->running[e->n_running - 1], PAGODA_FINISH_ABORT, NULL);
    while (e->n_waiting > 0)
        seq_finish(e, e->waiting[e->n_waiting - 1], PAGODA_FINISH_ABORT, NULL);
    post_stats(e);
    return NULL;
}

/* ---------------------------------------------------------------- creation */

static uint64_t mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
                fclose(f);
                return (uint64_t)kb * 1024;
            }
        fclose(f);
    }
    long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : (uint64_t)1 << 30;
}

void pagoda_engine_free(pagoda_engine *e)
{
    if (!e)
        return;
    if (e->driver_started) {
        pthread_mutex_lock(&e->mu);
        e->stopping = true;
        pthread_cond_broadcast(&e->cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->driver, NULL);
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->cv);
    }
    kv_pool_free(e->kp);
    free(e->kv.data);
    fwd_ctx_free(e->fc);
    pool_destroy(e->pool);
    tokenizer_free(e->tok);
    model_free(e->model);
    free(e->running);
    free(e->waiting);
    free(e->b_tokens);
    free(e->b_pos);
    free(e->b_seq);
    free(e->b_rows);
    free(e->b_tables);
    free(e->b_row_seq);
    free(e->logits);
    free(e->lp_raw);
    free(e->lp_top);
    free(e->lp_topv);
    free(e);
}

static void engine_describe_model(pagoda_engine *e, const char *path)
{
    const struct gguf_file *g = e->model->gguf;
    struct gguf_str s;
    if (gguf_get_str(g, "general.name", &s) && s.len > 0) {
        size_t n = s.len < sizeof e->name - 1 ? s.len : sizeof e->name - 1;
        memcpy(e->name, s.ptr, n);
        e->name[n] = '\0';
    } else {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        snprintf(e->name, sizeof e->name, "%s", base);
        char *dot = strrchr(e->name, '.');
        if (dot && !strcmp(dot, ".gguf"))
            *dot = '\0';
    }
    enum chat_template_kind k;
    char err[256];
    if (gguf_get_str(g, "tokenizer.chat_template", &s) &&
        chat_template_detect(s.ptr, s.len, &k, err, sizeof err) == 0)
        e->chat_template = chat_template_name(k);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        uint64_t n = 1;
        for (int d = 0; d < g->tensors[i].n_dims; d++)
            n *= (uint64_t)g->tensors[i].ne[d];
        e->n_params += n;
        e->n_bytes += g->tensors[i].nbytes;
    }
    int64_t ft;
    if (gguf_get_int(g, "general.file_type", &ft))
        e->file_type = quant_file_type_name(ft);
}

int pagoda_engine_create(const pagoda_engine_options *o, pagoda_engine **out, char *err,
                         size_t errlen)
{
    *out = NULL;
    if (!o || !o->model_path)
        return err_set(err, errlen, PAGODA_EINVAL, "no model file given");
    pagoda_engine *e = calloc(1, sizeof *e);
    if (!e)
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    e->opt = *o;
    pagoda_engine_options *op = &e->opt;
    op->model_path = NULL;
    if (op->n_threads < 0 || op->n_threads > 1024)
        goto bad_opt;
    if (op->n_ctx < 0 || op->block_size < 0 || op->block_size > 1024 || op->batch_tokens < 0 ||
        op->prefill_chunk < 0 || op->max_running < 0 || op->max_queued < 0 ||
        op->kv_mem_fraction < 0 || op->kv_mem_fraction > 0.95)
        goto bad_opt;
    int kv_type;
    switch (op->kv_type) {
    case PAGODA_KV_F16: kv_type = PG_TYPE_F16; break;
    case PAGODA_KV_BF16: kv_type = PG_TYPE_BF16; break;
    case PAGODA_KV_Q8_0: kv_type = PG_TYPE_Q8_0; break;
    default: {
        const int fail = err_set(err, errlen, PAGODA_EINVAL, "unknown KV type %d", (int)op->kv_type);
        pagoda_engine_free(e);
        return fail;
    }
    }
    if (!op->block_size)
        op->block_size = ENGINE_DEFAULT_BLOCK;
    if (!op->batch_tokens)
        op->batch_tokens = ENGINE_DEFAULT_BATCH;
    if (!op->prefill_chunk || op->prefill_chunk > op->batch_tokens)
        op->prefill_chunk = op->batch_tokens;
    if (!op->max_running)
        op->max_running = ENGINE_DEFAULT_RUNNING;
    if (!op->max_queued)
        op->max_queued = ENGINE_DEFAULT_QUEUED;
    if (op->kv_mem_fraction == 0)
        op->kv_mem_fraction = 0.25;

    int rc = model_load(o->model_path, &e->model, err, errlen);
    if (rc) {
        pagoda_engine_free(e);
        return rc;
    }
    if ((rc = tokenizer_load(e->model->gguf, &e->tok, err, errlen))) {
        err_prefix(err, errlen, "%s", o->model_path);
        pagoda_engine_free(e);
        return rc;
    }
    const struct model_hparams *hp = &e->model->hp;
    if (tokenizer_n_vocab(e->tok) > hp->n_vocab) {
        const int fail = err_set(err, errlen, PAGODA_EFORMAT,
                       "%s: the tokenizer has %d tokens but the model only %d", o->model_path,
                       tokenizer_n_vocab(e->tok), hp->n_vocab);
        pagoda_engine_free(e);
        return fail;
    }
    e->n_vocab = hp->n_vocab;
    e->n_ctx = op->n_ctx ? op->n_ctx
                         : (hp->n_ctx_train < ENGINE_DEFAULT_CTX ? hp->n_ctx_train
                                                                  : ENGINE_DEFAULT_CTX);
    if (e->n_ctx < 2) {
        const int fail = err_set(err, errlen, PAGODA_EINVAL, "a context of %d tokens is too small",
                       e->n_ctx);
        pagoda_engine_free(e);
        return fail;
    }
    engine_describe_model(e, o->model_path);

    if ((rc = kv_store_layout(&e->kv, hp->n_layer, hp->n_head_kv, hp->head_dim, op->block_size,
                              kv_type))) {
        const int fail = err_set(err, errlen, rc, "KV type %s does not suit heads of %d values%s",
                       type_name(kv_type), hp->head_dim,
                       kv_type == PG_TYPE_Q8_0 ? " (Q8_0 needs a multiple of 32)" : "");
        pagoda_engine_free(e);
        return fail;
    }
    uint64_t budget = op->kv_mem_bytes;
    if (!budget)
        budget = (uint64_t)((double)mem_available() * op->kv_mem_fraction);
    int64_t n_blocks = (int64_t)(budget / e->kv.block_bytes);
    const int64_t per_seq = (e->n_ctx + op->block_size - 1) / op->block_size;
    if (n_blocks < per_seq) {
        const int fail = err_set(err, errlen, PAGODA_ERANGE,
                       "a KV budget of %llu bytes holds %lld blocks of %d tokens (%zu bytes "
                       "each), fewer than one full context of %d tokens needs (%lld)",
                       (unsigned long long)budget, (long long)n_blocks, op->block_size,
                       e->kv.block_bytes, e->n_ctx, (long long)per_seq);
        pagoda_engine_free(e);
        return fail;
    }
    if (n_blocks > INT32_MAX / 4)
        n_blocks = INT32_MAX / 4;
    e->kv.n_blocks = n_blocks;
    e->kv.data = malloc((size_t)n_blocks * e->kv.block_bytes);
    if (!e->kv.data) {
        const int fail = err_set(err, errlen, PAGODA_ENOMEM, "out of memory for %llu bytes of KV cache",
                       (unsigned long long)((uint64_t)n_blocks * e->kv.block_bytes));
        pagoda_engine_free(e);
        return fail;
    }
    if ((rc = kv_pool_create(n_blocks, op->block_size, &e->kp, err, errlen))) {
        pagoda_engine_free(e);
        return rc;
    }
    e->pool = pool_create(op->n_threads, err, errlen);
    if (!e->pool) {
        pagoda_engine_free(e);
        return PAGODA_ENOMEM;
    }
    e->fc = fwd_ctx_create(e->model, e->pool, op->batch_tokens, e->n_ctx, err, errlen);
    if (!e->fc) {
        pagoda_engine_free(e);
        return PAGODA_ENOMEM;
    }
    const size_t R = (size_t)op->max_running, B = (size_t)op->batch_tokens;
    e->cap_waiting = op->max_queued + op->max_running;
    e->running = calloc(R, sizeof *e->running);
    e->waiting = calloc((size_t)e->cap_waiting, sizeof *e->waiting);
    e->b_tokens = malloc(B * sizeof(int32_t));
    e->b_pos = malloc(B * sizeof(int32_t));
    e->b_seq = malloc(B * sizeof(int32_t));
    e->b_rows = malloc(R * sizeof(int32_t));
    e->b_tables = calloc(R, sizeof *e->b_tables);
    e->b_row_seq = calloc(R, sizeof *e->b_row_seq);
    e->logits = malloc(R * (size_t)e->n_vocab * sizeof(float));
    e->lp_raw = malloc((size_t)e->n_vocab * sizeof(float));
    e->lp_top = malloc(PAGODA_MAX_TOP_LOGPROBS * sizeof(int32_t));
    e->lp_topv = malloc(PAGODA_MAX_TOP_LOGPROBS * sizeof(float));
    if (!e->running || !e->waiting || !e->b_tokens || !e->b_pos || !e->b_seq || !e->b_rows ||
        !e->b_tables || !e->b_row_seq || !e->logits || !e->lp_raw || !e->lp_top || !e->lp_topv) {
        const int fail = err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
        pagoda_engine_free(e);
        return fail;
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    post_stats(e);
    if (pthread_create(&e->driver, NULL, driver_main, e)) {
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->cv);
        const int fail = err_set(err, errlen, PAGODA_ENOMEM, "cannot start the engine's thread");
        pagoda_engine_free(e);
        return fail;
    }
    e->driver_started = true;
    *out = e;
    return 0;

bad_opt:;
    const int fail = err_set(err, errlen, PAGODA_EINVAL, "engine options out of range");
    pagoda_engine_free(e);
    return fail;
}

/* ---------------------------------------------------------------- requests */

int pagoda_submit(pagoda_engine *e, const pagoda_request *r, uint64_t *id, char *err,
                  size_t errlen)
{
    if (id)
        *id = 0;
    if (!e || !r)
        return err_set(err, errlen, PAGODA_EINVAL, "no engine or request");
    if (!r->prompt || r->n_prompt < 1)
        return err_set(err, errlen, PAGODA_EINVAL, "the prompt is empty");
    if (r->max_tokens < 1)
        return err_set(err, errlen, PAGODA_EINVAL, "max_tokens must be at least 1 (got %d)",
                       r->max_tokens);
    if (r->n_stop < 0 || r->n_stop > PAGODA_MAX_STOPS)
        return err_set(err, errlen, PAGODA_EINVAL, "at most %d stop strings", PAGODA_MAX_STOPS);
    if (r->top_logprobs < 0 || r->top_logprobs > PAGODA_MAX_TOP_LOGPROBS)
        return err_set(err, errlen, PAGODA_EINVAL, "top_logprobs must be within 0..%d",
                       PAGODA_MAX_TOP_LOGPROBS);
    for (size_t i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= e->n_vocab)
            return err_set(err, errlen, PAGODA_EINVAL,
                           "prompt token %d at %zu is outside the vocabulary (%d)", r->prompt[i],
                           i, e->n_vocab);
    if (r->n_prompt >= (size_t)e->n_ctx)
        return err_set(err, errlen, PAGODA_ERANGE,
                       "the prompt has %zu tokens; the context holds %d, so at most %d can be "
                       "a prompt", r->n_prompt, e->n_ctx, e->n_ctx - 1);
    if (r->n_prompt + (size_t)r->max_tokens > (size_t)e->n_ctx)
        return err_set(err, errlen, PAGODA_ERANGE,
                       "prompt (%zu tokens) plus max_tokens (%d) exceeds the context of %d "
                       "tokens", r->n_prompt, r->max_tokens, e->n_ctx);
    const int cap = (int)r->n_prompt + r->max_tokens;
    const int bs = e->kv.block_size;
    const int max_blocks = (cap + bs - 1) / bs;
    if (max_blocks > e->kv.n_blocks)
        return err_set(err, errlen, PAGODA_ERANGE,
                       "prompt plus max_tokens (%d tokens) exceeds the whole KV pool (%lld "
                       "tokens)", cap, (long long)(e->kv.n_blocks * bs));
    struct sampler_params sp;
    sampler_params_default(&sp);
    const pagoda_sampling *q = &r->sampling;
    sp.temperature = q->temperature;
    sp.top_k = q->top_k;
    sp.top_p = q->top_p;
    sp.min_p = q->min_p;
    sp.repeat_penalty = q->repeat_penalty;
    sp.presence_penalty = q->presence_penalty;
    sp.frequency_penalty = q->frequency_penalty;
    sp.penalty_last_n = q->penalty_last_n;
    sp.seed = q->seed;
    if (q->n_logit_bias < 0 || (q->n_logit_bias > 0 && !q->logit_bias))
        return err_set(err, errlen, PAGODA_EINVAL, "bad logit bias list");

    struct seq *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    if (q->n_logit_bias > 0) {
        s->bias = malloc(sizeof *s->bias * (size_t)q->n_logit_bias);
        if (!s->bias) {
            seq_free(s);
            return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
        }
        memcpy(s->bias, q->logit_bias, sizeof *s->bias * (size_t)q->n_logit_bias);
        /* pagoda_logit_bias and struct logit_bias have the same layout. */
        sp.bias = (const struct logit_bias *)s->bias;
        sp.n_bias = q->n_logit_bias;
    }
    if (sampler_params_check(&sp, e->n_vocab, err, errlen)) {
        seq_free(s);
        return PAGODA_EINVAL; /* PAGODA_ERANGE is kept for "can never fit" */
    }
    s->smp = sampler_create(&sp, e->n_vocab, err, errlen);
    s->cap = cap;
    s->n_prompt = (int)r->n_prompt;
    s->n_tokens = (int)r->n_prompt;
    s->max_blocks = max_blocks;
    s->max_tokens = r->max_tokens;
    s->tokens = malloc(sizeof(int32_t) * (size_t)cap);
    s->blocks = malloc(sizeof(int32_t) * (size_t)max_blocks);
    s->hashes = malloc(sizeof(uint64_t) * (size_t)max_blocks);
    if (!s->smp || !s->tokens || !s->blocks || !s->hashes ||
        tokenizer_stream_create(e->tok, false, r->n_prompt == 1, &s->ts) || text_append(s, "", 0)) {
        seq_free(s);
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    }
    memcpy(s->tokens, r->prompt, sizeof(int32_t) * r->n_prompt);
    for (int i = 0; i < r->n_stop; i++) {
        if (!r->stop[i] || !r->stop[i][0]) {
            seq_free(s);
            return err_set(err, errlen, PAGODA_EINVAL, "stop string %d is empty", i);
        }
        if (!(s->stops[s->n_stops++] = strdup(r->stop[i]))) {
            seq_free(s);
            return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
        }
    }
    s->ignore_eos = r->ignore_eos != 0;
    s->logprobs = r->logprobs != 0;
    s->top_logprobs = r->top_logprobs;
    s->cb = r->callback;
    s->user = r->user;
    s->tm.t_submit = clock_now();
    s->tm.n_prompt = (int32_t)r->n_prompt;

    pthread_mutex_lock(&e->mu);
    if (e->stopping) {
        pthread_mutex_unlock(&e->mu);
        seq_free(s);
        return err_set(err, errlen, PAGODA_ESHUTDOWN, "the engine is shutting down");
    }
    if (e->n_inbox + e->n_waiting_new >= e->opt.max_queued) {
        int q_now = e->n_inbox + e->n_waiting_new;
        pthread_mutex_unlock(&e->mu);
        seq_free(s);
        return err_set(err, errlen, PAGODA_EBUSY, "%d requests are already waiting", q_now);
    }
    s->id = ++e->next_id;
    s->live_next = e->live;
    e->live = s;
    if (e->inbox_tail)
        e->inbox_tail->inbox_next = s;
    else
        e->inbox_head = s;
    e->inbox_tail = s;
    e->n_inbox++;
    if (id)
        *id = s->id;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

int pagoda_abort(pagoda_engine *e, uint64_t id)
{
    int rc = PAGODA_ENOTFOUND;
    pthread_mutex_lock(&e->mu);
    for (struct seq *s = e->live; s; s = s->live_next)
        if (s->id == id) {
            if (!atomic_exchange(&s->abort_requested, 1))
                rc = 0;
            break;
        }
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return rc;
}

void pagoda_engine_reset_peak(pagoda_engine *e)
{
    pthread_mutex_lock(&e->mu);
    atomic_store(&e->reset_peak, 1);
    e->stats.kv_blocks_used_peak = e->stats.kv_blocks_used;
    pthread_mutex_unlock(&e->mu);
}

void pagoda_engine_stats(pagoda_engine *e, pagoda_stats *s)
{
    pthread_mutex_lock(&e->mu);
    *s = e->stats;
    s->waiting = e->stats.waiting > e->n_inbox ? e->stats.waiting : e->n_inbox;
    pthread_mutex_unlock(&e->mu);
}

/* ---------------------------------------------------------------- model */

void pagoda_engine_model_info(const pagoda_engine *e, pagoda_model_info *info)
{
    memset(info, 0, sizeof *info);
    info->name = e->name;
    info->arch = e->model->hp.arch_name;
    info->chat_template = e->chat_template;
    info->n_vocab = e->n_vocab;
    info->n_ctx = e->n_ctx;
    info->n_ctx_train = e->model->hp.n_ctx_train;
    info->bos = tokenizer_bos(e->tok);
    info->eos = tokenizer_eos(e->tok);
    info->add_bos = tokenizer_add_bos(e->tok);
    info->n_params = e->n_params;
    info->n_bytes = e->n_bytes;
    info->file_type = e->file_type;
}

int pagoda_tokenize(const pagoda_engine *e, const char *text, size_t len, int add_special,
                    int parse_special, int32_t **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (!text && len)
        return err_set(err, errlen, PAGODA_EINVAL, "no text");
    size_t cap = len + 8, got = 0;
    for (int tries = 0; tries < 2; tries++) {
        int32_t *ids = malloc(sizeof(int32_t) * cap);
        if (!ids)
            return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
        int rc = tokenizer_encode(e->tok, text ? text : "", len, add_special != 0,
                                  parse_special != 0, ids, cap, &got);
        if (rc == 0) {
            *out = ids;
            *n = got;
            return 0;
        }
        free(ids);
        if (rc != PAGODA_ERANGE)
            return err_set(err, errlen, rc, "cannot tokenize the text (%s)",
                           pagoda_status_str(rc));
        cap = got + 1;
    }
    return err_set(err, errlen, PAGODA_ENOMEM, "cannot tokenize the text");
}

int pagoda_detokenize(const pagoda_engine *e, const int32_t *ids, size_t n, int special,
                      char **out, size_t *len, char *err, size_t errlen)
{
    *out = NULL;
    *len = 0;
    size_t cap = n * 8 + 16, got = 0;
    for (int tries = 0; tries < 2; tries++) {
        char *buf = malloc(cap + 1);
        if (!buf)
            return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
        int rc = tokenizer_decode(e->tok, ids, n, special != 0, buf, cap, &got);
        if (rc == 0) {
            buf[got] = '\0';
            *out = buf;
            *len = got;
            return 0;
        }
        free(buf);
        if (rc != PAGODA_ERANGE)
            return err_set(err, errlen, rc, "token ids outside the vocabulary (%d)", e->n_vocab);
        cap = got + 1;
    }
    return err_set(err, errlen, PAGODA_ENOMEM, "cannot detokenize");
}

int pagoda_token_piece(const pagoda_engine *e, int32_t id, int special, char **out, size_t *len,
                       char *err, size_t errlen)
{
    *out = NULL;
    *len = 0;
    size_t n = 0;
    const char *p = tokenizer_token_to_piece(e->tok, id, special != 0, &n);
    if (!p)
        return err_set(err, errlen, PAGODA_EINVAL, "token id %d outside the vocabulary (%d)", (int)id,
                       e->n_vocab);
    char *buf = malloc(n + 1);
    if (!buf)
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    memcpy(buf, p, n);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

int pagoda_chat_prompt(const pagoda_engine *e, const char *template_name,
                       const pagoda_chat_message *msgs, size_t n, int add_generation_prompt,
                       char **out, size_t *len, char *err, size_t errlen)
{
    *out = NULL;
    *len = 0;
    enum chat_template_kind k;
    const char *name = template_name ? template_name : e->chat_template;
    if (!name)
        return err_set(err, errlen, PAGODA_EUNSUPPORTED,
                       "the model has no chat template pagoda knows; name one");
    if (chat_template_from_name(name, &k))
        return err_set(err, errlen, PAGODA_EUNSUPPORTED, "unknown chat template '%s'", name);
    char bos[128] = "<s>", eos[128] = "</s>";
    size_t l;
    const char *t;
    if (tokenizer_bos(e->tok) >= 0 && (t = tokenizer_token_text(e->tok, tokenizer_bos(e->tok), &l)) &&
        l < sizeof bos) {
        memcpy(bos, t, l);
        bos[l] = '\0';
    }
    if (tokenizer_eos(e->tok) >= 0 && (t = tokenizer_token_text(e->tok, tokenizer_eos(e->tok), &l)) &&
        l < sizeof eos) {
        memcpy(eos, t, l);
        eos[l] = '\0';
    }
    /* pagoda_chat_message and struct chat_message have the same layout. */
    return chat_template_apply(k, (const struct chat_message *)msgs, n, add_generation_prompt != 0,
                               bos, eos, out, len, err, errlen);
}
