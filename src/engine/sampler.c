/* sampler.c: token selection (see sampler.h). */
#include "engine/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "pagoda.h"

struct candidate {
    int32_t id;
    float logit;
};

struct sampler {
    struct sampler_params p;
    struct logit_bias *bias;
    int n_vocab;
    struct rng rng;
    struct candidate *cand; /* [n_vocab] */
    uint16_t *counts;       /* [n_vocab] occurrences in the penalty window */
};

void sampler_params_default(struct sampler_params *p)
{
    memset(p, 0, sizeof *p);
    p->temperature = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->penalty_last_n = 64;
}

int sampler_params_check(const struct sampler_params *p, int n_vocab, char *err, size_t errlen)
{
    if (!(p->temperature >= 0 && p->temperature <= 100))
        return err_set(err, errlen, PAGODA_ERANGE, "temperature %g is out of range [0, 100]",
                       (double)p->temperature);
    if (!(p->top_p >= 0 && p->top_p <= 1))
        return err_set(err, errlen, PAGODA_ERANGE, "top_p %g is out of range [0, 1]", (double)p->top_p);
    if (!(p->min_p >= 0 && p->min_p <= 1))
        return err_set(err, errlen, PAGODA_ERANGE, "min_p %g is out of range [0, 1]", (double)p->min_p);
    if (!(p->repeat_penalty > 0 && p->repeat_penalty <= 10))
        return err_set(err, errlen, PAGODA_ERANGE, "repetition penalty %g is out of range (0, 10]",
                       (double)p->repeat_penalty);
    if (!(p->presence_penalty >= -2 && p->presence_penalty <= 2))
        return err_set(err, errlen, PAGODA_ERANGE, "presence penalty %g is out of range [-2, 2]",
                       (double)p->presence_penalty);
    if (!(p->frequency_penalty >= -2 && p->frequency_penalty <= 2))
        return err_set(err, errlen, PAGODA_ERANGE, "frequency penalty %g is out of range [-2, 2]",
                       (double)p->frequency_penalty);
    if (p->top_k < 0)
        return err_set(err, errlen, PAGODA_ERANGE, "top_k %d is negative", p->top_k);
    if (p->penalty_last_n < -1)
        return err_set(err, errlen, PAGODA_ERANGE, "penalty window %d is out of range", p->penalty_last_n);
    if (p->n_bias < 0 || (p->n_bias > 0 && !p->bias))
        return err_set(err, errlen, PAGODA_EINVAL, "bad logit bias list");
    for (int i = 0; i < p->n_bias; i++) {
        if (p->bias[i].token < 0 || p->bias[i].token >= n_vocab)
            return err_set(err, errlen, PAGODA_ERANGE, "logit bias token %d is outside the vocabulary (%d)",
                           p->bias[i].token, n_vocab);
        if (isnan(p->bias[i].bias))
            return err_set(err, errlen, PAGODA_ERANGE, "logit bias of token %d is not a number",
                           p->bias[i].token);
    }
    return 0;
}

struct sampler *sampler_create(const struct sampler_params *p, int n_vocab, char *err,
                               size_t errlen)
{
    if (n_vocab < 1) {
        err_set(err, errlen, PAGODA_EINVAL, "empty vocabulary");
        return NULL;
    }
    if (sampler_params_check(p, n_vocab, err, errlen))
        return NULL;
    struct sampler *s = calloc(1, sizeof *s);
    if (!s) {
        err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
        return NULL;
    }
    s->p = *p;
    s->n_vocab = n_vocab;
    s->cand = malloc(sizeof *s->cand * (size_t)n_vocab);
    s->counts = calloc((size_t)n_vocab, sizeof *s->counts);
    if (p->n_bias > 0) {
        s->bias = malloc(sizeof *s->bias * (size_t)p->n_bias);
        if (s->bias)
            memcpy(s->bias, p->bias, sizeof *s->bias * (size_t)p->n_bias);
    }
    s->p.bias = s->bias;
    if (!s->cand || !s->counts || (p->n_bias > 0 && !s->bias)) {
        sampler_free(s);
        err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
        return NULL;
    }
    rng_seed(&s->rng, p->seed);
    return s;
}

void sampler_free(struct sampler *s)
{
    if (!s)
        return;
    free(s->cand);
    free(s->counts);
    free(s->bias);
    free(s);
}

int32_t sampler_argmax(const float *logits, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best])
            best = i;
    return best;
}

static void apply_penalties(struct sampler *s, float *logits, const int32_t *history,
                            int64_t n_history)
{
    const struct sampler_params *p = &s->p;
    if (p->repeat_penalty == 1.0f && p->presence_penalty == 0.0f && p->frequency_penalty == 0.0f)
        return;
    int64_t start = 0;
    if (p->penalty_last_n >= 0 && n_history > p->penalty_last_n)
        start = n_history - p->penalty_last_n;
    for (int64_t i = start; i < n_history; i++)
        if (history[i] >= 0 && history[i] < s->n_vocab && s->counts[history[i]] < UINT16_MAX)
            s->counts[history[i]]++;
    for (int64_t i = start; i < n_history; i++) {
        int32_t t = history[i];
        if (t < 0 || t >= s->n_vocab || s->counts[t] == 0)
            continue;
        float l = logits[t];
        /* The repetition penalty shrinks a logit toward "less likely" whatever its sign. */
        if (p->repeat_penalty != 1.0f)
            l = l > 0 ? l / p->repeat_penalty : l * p->repeat_penalty;
        l -= (float)s->counts[t] * p->frequency_penalty + p->presence_penalty;
        logits[t] = l;
        s->counts[t] = 0; /* each token once; also leaves counts zeroed for next time */
    }
}

static int cmp_candidate(const void *a, const void *b)
{
    const struct candidate *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit > y->logit ? -1 : 1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

/* Restores a heap whose top is the candidate that sorts last. */
static void heap_sift_down(struct candidate *h, int n, int i)
{
    for (;;) {
        int w = i, l = 2 * i + 1, r = l + 1;
        if (l < n && cmp_candidate(&h[l], &h[w]) > 0)
            w = l;
        if (r < n && cmp_candidate(&h[r], &h[w]) > 0)
            w = r;
        if (w == i)
            return;
        struct candidate t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

int32_t sampler_sample(struct sampler *s, float *logits, const int32_t *history,
                       int64_t n_history)
{
    const struct sampler_params *p = &s->p;
    const int n = s->n_vocab;
    for (int i = 0; i < p->n_bias; i++)
        logits[p->bias[i].token] += p->bias[i].bias;
    apply_penalties(s, logits, history, n_history);
    if (p->temperature <= 0.0f)
        return sampler_argmax(logits, n);

    /* Candidates sorted by logit (ties by id): the filters then cut a prefix. */
    int m = 0;
    for (int i = 0; i < n; i++)
        if (logits[i] > -INFINITY)
            s->cand[m++] = (struct candidate){i, logits[i]};
    if (m == 0)
        return sampler_argmax(logits, n);
    if (p->top_k > 0 && p->top_k < m) {
        /* The k best through a heap of the k kept so far, worst on top: a
         * full sort costs milliseconds per token at 32k+ vocabularies, which
         * adds up when one thread samples for a whole batch. The order is
         * total (logit, then id), so this equals sorting everything. */
        const int k = p->top_k;
        struct candidate *h = s->cand;
        for (int i = k / 2 - 1; i >= 0; i--)
            heap_sift_down(h, k, i);
        for (int j = k; j < m; j++)
            if (cmp_candidate(&s->cand[j], &h[0]) < 0) {
                h[0] = s->cand[j];
                heap_sift_down(h, k, 0);
            }
        m = k;
        qsort(s->cand, (size_t)m, sizeof *s->cand, cmp_candidate);
    } else {
        qsort(s->cand, (size_t)m, sizeof *s->cand, cmp_candidate);
    }
    /* Probabilities at temperature 1 for top-p and min-p, as is usual. */
    const float max = s->cand[0].logit;
    double sum = 0;
    for (int i = 0; i < m; i++)
        sum += exp((double)(s->cand[i].logit - max));
    if (p->min_p > 0.0f) {
        /* Keep tokens whose probability is at least min_p times the top one's. */
        const double floor_logit = (double)max + log((double)p->min_p);
        int keep = 1;
        while (keep < m && (double)s->cand[keep].logit >= floor_logit)
            keep++;
        if (keep < m) {
            m = keep;
            sum = 0;
            for (int i = 0; i < m; i++)
                sum += exp((double)(s->cand[i].logit - max));
        }
    }
    if (p->top_p < 1.0f) {
        double acc = 0;
        int keep = m;
        for (int i = 0; i < m; i++) {
            acc += exp((double)(s->cand[i].logit - max)) / sum;
            if (acc >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
        m = keep;
    }
    /* Temperature, then a draw. */
    const double inv_t = 1.0 / p->temperature;
    double total = 0;
    for (int i = 0; i < m; i++)
        total += exp((double)(s->cand[i].logit - max) * inv_t);
    double r = (double)(rng_next(&s->rng) >> 11) * (1.0 / 9007199254740992.0) * total;
    for (int i = 0; i < m; i++) {
        r -= exp((double)(s->cand[i].logit - max) * inv_t);
        if (r < 0)
            return s->cand[i].id;
    }
    return s->cand[m - 1].id;
}

/* The public form of the defaults (include/pagoda.h). */
void pagoda_sampling_default(pagoda_sampling *s)
{
    struct sampler_params p;
    sampler_params_default(&p);
    memset(s, 0, sizeof *s);
    s->temperature = p.temperature;
    s->top_k = p.top_k;
    s->top_p = p.top_p;
    s->min_p = p.min_p;
    s->repeat_penalty = p.repeat_penalty;
    s->presence_penalty = p.presence_penalty;
    s->frequency_penalty = p.frequency_penalty;
    s->penalty_last_n = p.penalty_last_n;
    s->seed = p.seed;
}
