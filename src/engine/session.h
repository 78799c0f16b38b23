/*
 * session.h: one sequence generating on one model, as `pagoda run` and
 * `pagoda chat` use it: a contiguous KV cache for up to n_ctx tokens, chunked
 * prefill, and a generation loop that samples, detokenizes incrementally and
 * watches stop strings across token boundaries. Chat keeps the session across
 * turns, so earlier turns are never recomputed.
 */
#ifndef PAGODA_ENGINE_SESSION_H
#define PAGODA_ENGINE_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/sampler.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#define SESSION_MAX_STOPS 16

struct session;

/* n_ctx: tokens of context (KV memory is allocated for all of them). */
int session_create(const struct model *m, const struct tokenizer *tok, int n_ctx, int n_threads,
                   struct session **out, char *err, size_t errlen);
void session_free(struct session *s);

int session_n_ctx(const struct session *s);
/* Tokens held so far (prompt and generated). */
int session_n_past(const struct session *s);
const int32_t *session_tokens(const struct session *s);
/* The last generated token when it has not been run through the model yet
 * (it is, first thing, by the next session_feed), else -1. */
int32_t session_pending_token(const struct session *s);

/* Appends tokens and runs them through the model (in chunks), leaving the
 * logits of the last one for the next generation. */
int session_feed(struct session *s, const int32_t *tokens, int n, char *err, size_t errlen);

/* Makes the session hold exactly tokens[0..n): keeps the longest common
 * prefix with what it holds (its K/V are reused), drops the rest and feeds the
 * remainder (at least the last token, for fresh logits). n must be >= 1. */
int session_sync(struct session *s, const int32_t *tokens, int n, char *err, size_t errlen);

struct gen_params {
    int max_tokens;
    bool ignore_eos;
    const char *stops[SESSION_MAX_STOPS];
    int n_stops;
    /* Called with text as it becomes final (held back while it might start a
     * stop string); return nonzero to stop. May be NULL. */
    int (*on_text)(void *user, const char *text, size_t len);
    void *user;
    volatile int *cancel; /* set nonzero (e.g. from a signal handler) to stop */
};

struct gen_result {
    int n_tokens;          /* generated (the stop/EOS token included) */
    const char *finish;    /* "stop", "length", "cancelled" */
    char *text;            /* all text produced, stop string excluded (owned by s) */
    size_t text_len;
    double seconds;
};

/* Generates after what was fed. Needs a prior session_feed. */
int session_generate(struct session *s, struct sampler *smp, const struct gen_params *p,
                     struct gen_result *r, char *err, size_t errlen);

#endif
