/* test_sampler.c: token selection: greedy, filters, penalties, bias, seeds. */
#include "engine/sampler.h"
#include "test.h"

#define NV 8

static int32_t sample_once(const struct sampler_params *p, const float *logits_in,
                           const int32_t *hist, int nh)
{
    char err[128];
    struct sampler *s = sampler_create(p, NV, err, sizeof err);
    if (!s)
        return -1;
    float l[NV];
    memcpy(l, logits_in, sizeof l);
    int32_t t = sampler_sample(s, l, hist, nh);
    sampler_free(s);
    return t;
}

int main(void)
{
    const float base[NV] = {1.0f, 3.0f, 2.5f, 3.0f, -1.0f, 0.5f, 2.9f, -4.0f};
    struct sampler_params p;
    sampler_params_default(&p);
    char err[128];

    /* Greedy: the first of the tied maxima. */
    p.temperature = 0;
    CHECK(sample_once(&p, base, NULL, 0) == 1);
    CHECK(sampler_argmax(base, NV) == 1);

    /* top_k = 1 is greedy at any temperature and seed. */
    sampler_params_default(&p);
    p.top_k = 1;
    p.temperature = 5;
    for (uint64_t seed = 0; seed < 20; seed++) {
        p.seed = seed;
        CHECK(sample_once(&p, base, NULL, 0) == 1);
    }

    /* At temperature 1 without filters the draws follow the softmax. */
    sampler_params_default(&p);
    p.top_k = 0;
    p.top_p = 1;
    p.min_p = 0;
    p.temperature = 1;
    p.seed = 1234;
    struct sampler *s = sampler_create(&p, NV, err, sizeof err);
    CHECK(s != NULL);
    int counts[NV] = {0};
    const int draws = 40000;
    for (int i = 0; i < draws; i++) {
        float l[NV];
        memcpy(l, base, sizeof l);
        counts[sampler_sample(s, l, NULL, 0)]++;
    }
    sampler_free(s);
    double z = 0;
    for (int i = 0; i < NV; i++)
        z += exp(base[i]);
    for (int i = 0; i < NV; i++) {
        double want = exp(base[i]) / z * draws;
        double sd = sqrt(want) + 1;
        CHECKF(fabs(counts[i] - want) < 5 * sd, "token %d drawn %d times, expected %.0f", i,
               counts[i], want);
    }

    /* Same seed, same sequence of draws. */
    p.seed = 99;
    struct sampler *a = sampler_create(&p, NV, err, sizeof err);
    struct sampler *b = sampler_create(&p, NV, err, sizeof err);
    int same = 1;
    for (int i = 0; i < 200; i++) {
        float l1[NV], l2[NV];
        memcpy(l1, base, sizeof l1);
        memcpy(l2, base, sizeof l2);
        same &= sampler_sample(a, l1, NULL, 0) == sampler_sample(b, l2, NULL, 0);
    }
    CHECK(same);
    sampler_free(a);
    sampler_free(b);

    /* min_p: only tokens within log(min_p) of the top survive. */
    sampler_params_default(&p);
    p.top_k = 0;
    p.top_p = 1;
    p.temperature = 1;
    p.min_p = 0.85f; /* exp(-0.1625): keeps logits >= ~2.84: ids 1, 3, 6 */
    for (uint64_t seed = 0; seed < 200; seed++) {
        p.seed = seed;
        int32_t t = sample_once(&p, base, NULL, 0);
        CHECKF(t == 1 || t == 3 || t == 6, "min_p let token %d through", t);
    }
    /* top_p: the smallest prefix reaching p. */
    p.min_p = 0;
    p.top_p = 0.3f; /* ids 1 and 3 carry ~0.26 each: two tokens */
    for (uint64_t seed = 0; seed < 200; seed++) {
        p.seed = seed;
        int32_t t = sample_once(&p, base, NULL, 0);
        CHECKF(t == 1 || t == 3, "top_p let token %d through", t);
    }

    /* Penalties and bias move greedy choices. */
    sampler_params_default(&p);
    p.temperature = 0;
    int32_t hist[3] = {1, 3, 3};
    p.repeat_penalty = 1.5f; /* 3.0 -> 2.0 for ids 1 and 3 */
    CHECK(sample_once(&p, base, hist, 3) == 6);
    p.repeat_penalty = 1;
    p.frequency_penalty = 0.05f; /* id 1: 2.95, id 3: 2.9 */
    CHECK(sample_once(&p, base, hist, 3) == 1);
    p.frequency_penalty = 0;
    p.presence_penalty = 1;
    p.penalty_last_n = 1; /* only the last token (3) counts */
    CHECK(sample_once(&p, base, hist, 3) == 1);
    p.presence_penalty = 0;
    struct logit_bias ban[2] = {{1, -INFINITY}, {3, -INFINITY}};
    p.bias = ban;
    p.n_bias = 2;
    CHECK(sample_once(&p, base, NULL, 0) == 6);
    struct logit_bias boost = {7, 10.0f};
    p.bias = &boost;
    p.n_bias = 1;
    CHECK(sample_once(&p, base, NULL, 0) == 7);

    /* Bad parameters are refused with a message. */
    sampler_params_default(&p);
    p.temperature = -1;
    CHECK(sampler_create(&p, NV, err, sizeof err) == NULL && strstr(err, "temperature"));
    sampler_params_default(&p);
    p.top_p = 1.5f;
    CHECK(sampler_params_check(&p, NV, err, sizeof err) != 0);
    sampler_params_default(&p);
    struct logit_bias out_of_range = {NV, 1.0f};
    p.bias = &out_of_range;
    p.n_bias = 1;
    CHECK(sampler_params_check(&p, NV, err, sizeof err) != 0 && strstr(err, "vocabulary"));
    TEST_END();
}
