/*
 * fuzz_server_request.c: a libFuzzer target for the request parser of
 * `pagoda serve`. The first byte picks the endpoint (completions, chat,
 * tokenize, detokenize); the rest is the body. Any input must either give a
 * request whose every field is within the documented limits, or a 4xx/5xx
 * error with a message and nothing left to free. Responses are then built
 * from what was parsed, so the builders see hostile text too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_VOCAB 32000

static void check_error(const struct srv_error *e)
{
    if (e->status < 400 || e->status > 599 || e->message[0] == '\0')
        __builtin_trap();
    char *s = srv_build_error(e);
    free(s);
}

static void check_request(const struct srv_request *r)
{
    if (r->n < 1 || r->n > SRV_MAX_N || r->n_stop < 0 || r->n_stop > PAGODA_MAX_STOPS ||
        r->top_logprobs < 0 || r->top_logprobs > PAGODA_MAX_TOP_LOGPROBS || r->max_tokens < 0 ||
        r->n_bias < 0 || r->n_bias > SRV_MAX_LOGIT_BIAS)
        __builtin_trap();
    if (r->chat ? r->n_msgs < 1 : r->n_prompts < 1 || r->n_prompts > SRV_MAX_PROMPTS)
        __builtin_trap();
    if (!r->chat && (size_t)r->n * r->n_prompts > SRV_MAX_CHOICES)
        __builtin_trap();
    for (size_t i = 0; i < r->n_prompts; i++) {
        const struct srv_prompt *p = &r->prompts[i];
        if (!p->text == !p->ids)
            __builtin_trap();
        for (size_t k = 0; p->ids && k < p->n_ids; k++)
            if (p->ids[k] < 0 || p->ids[k] >= FUZZ_VOCAB)
                __builtin_trap();
    }
    for (int i = 0; i < r->n_bias; i++)
        if (r->bias[i].token < 0 || r->bias[i].token >= FUZZ_VOCAB)
            __builtin_trap();
    for (int i = 0; i < r->n_stop; i++)
        if (!r->stop[i] || !r->stop[i][0])
            __builtin_trap();
    /* Echo the parsed text back through the builders. */
    struct srv_choice c;
    memset(&c, 0, sizeof c);
    for (size_t i = 0; i < r->n_msgs; i++)
        if (srv_choice_append(&c, r->msgs[i].content, strlen(r->msgs[i].content)))
            break;
    for (size_t i = 0; i < r->n_prompts; i++)
        if (r->prompts[i].text && srv_choice_append(&c, r->prompts[i].text, strlen(r->prompts[i].text)))
            break;
    struct srv_meta m = {r->chat, "id", 0, r->model ? r->model : "m", r->logprobs};
    struct srv_usage u = {1, 2};
    c.finish = PAGODA_FINISH_STOP;
    free(srv_build_response(&m, &c, 1, &u));
    free(srv_build_chunk(&m, 0, c.text, c.len, 1, PAGODA_FINISH_NONE, NULL, 0));
    srv_choice_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int kind = data[0] & 3;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    struct srv_error e;
    memset(&e, 0, sizeof e);
    if (kind <= 1) {
        struct srv_request r;
        if (srv_parse_request(kind, body, len, FUZZ_VOCAB, &r, &e) == 0) {
            check_request(&r);
            srv_request_free(&r);
        } else {
            check_error(&e);
        }
    } else if (kind == 2) {
        char *text;
        int a, p;
        if (srv_parse_tokenize(body, len, &text, &a, &p, &e) == 0) {
            if (!text)
                __builtin_trap();
            free(srv_build_content(text, strlen(text)));
            free(text);
        } else {
            check_error(&e);
        }
    } else {
        int32_t *ids;
        size_t n;
        if (srv_parse_detokenize(body, len, FUZZ_VOCAB, &ids, &n, &e) == 0) {
            for (size_t i = 0; i < n; i++)
                if (ids[i] < 0 || ids[i] >= FUZZ_VOCAB)
                    __builtin_trap();
            free(srv_build_tokens(ids, n));
            free(ids);
        } else {
            check_error(&e);
        }
    }
    return 0;
}
