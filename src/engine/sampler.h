/*
 * sampler.h: picking the next token from logits. Greedy when the temperature
 * is 0; otherwise logit bias, repetition / presence / frequency penalties over
 * a window of recent tokens, top-k, top-p, min-p, temperature, then a draw
 * from a generator seeded per request, so the same seed and the same request
 * give the same tokens, alone or batched.
 */
#ifndef PAGODA_ENGINE_SAMPLER_H
#define PAGODA_ENGINE_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "base/rng.h"

struct logit_bias {
    int32_t token;
    float bias; /* added to the logit; -INFINITY bans the token */
};

struct sampler_params {
    float temperature;       /* <= 0: greedy */
    int top_k;               /* <= 0: off */
    float top_p;             /* >= 1: off */
    float min_p;             /* <= 0: off */
    float repeat_penalty;    /* 1: off; > 1 discourages tokens seen in the window */
    float presence_penalty;  /* 0: off; subtracted once per seen token */
    float frequency_penalty; /* 0: off; subtracted per occurrence */
    int penalty_last_n;      /* window of recent tokens the penalties look at; -1 = all */
    uint64_t seed;
    const struct logit_bias *bias;
    int n_bias;
};

/* Defaults: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, penalties off,
 * window 64, seed 0. */
void sampler_params_default(struct sampler_params *p);

/* Checks ranges (and bias token ids against n_vocab). */
int sampler_params_check(const struct sampler_params *p, int n_vocab, char *err, size_t errlen);

struct sampler;

struct sampler *sampler_create(const struct sampler_params *p, int n_vocab, char *err,
                               size_t errlen);
void sampler_free(struct sampler *s);

/* Picks a token from logits (n_vocab floats; modified in place). history holds
 * the tokens so far (prompt and generated), for the penalties. Ties go to the
 * lowest id. */
int32_t sampler_sample(struct sampler *s, float *logits, const int32_t *history,
                       int64_t n_history);

/* The index of the largest value (the lowest index among equals). */
int32_t sampler_argmax(const float *logits, int n);

#endif
