/*
 * server_json.h: the JSON side of `pagoda serve`, with no engine and no
 * sockets: parsing and validating OpenAI-style request bodies into plain
 * structs, and building the response, stream chunk and error bodies. Every
 * byte of a body is untrusted; a parse either fills the struct or fills a
 * srv_error saying which field is wrong, never both.
 */
#ifndef PAGODA_SERVER_JSON_H
#define PAGODA_SERVER_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "pagoda.h"

#define SRV_MAX_PROMPTS 64   /* prompts in one completions request */
#define SRV_MAX_N 16         /* choices per prompt */
#define SRV_MAX_CHOICES 128  /* prompts x n */
#define SRV_MAX_MESSAGES 4096
#define SRV_MAX_LOGIT_BIAS 1024
#define SRV_MAX_STOP_LEN 512
#define SRV_MAX_COMPLETIONS_LOGPROBS 5

/* One error the client sees: HTTP status and OpenAI's error object. */
struct srv_error {
    int status;         /* 400, 401, 404, ... */
    const char *type;   /* "invalid_request_error", ... (static) */
    const char *code;   /* NULL or a static code ("model_not_found", ...) */
    char param[64];     /* the offending field, "" when none */
    char message[320];
};

/* Fills e (status 400 invalid_request_error unless changed after) and returns -1. */
int srv_error_set(struct srv_error *e, int status, const char *param, const char *code,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* A completions prompt: text (tokenized later) or token ids, one of them. */
struct srv_prompt {
    char *text;
    int32_t *ids;
    size_t n_ids;
};

struct srv_request {
    int chat;                   /* 1: /v1/chat/completions, 0: /v1/completions */
    char *model;                /* NULL when not given */
    struct srv_prompt *prompts; /* completions: at least one */
    size_t n_prompts;
    pagoda_chat_message *msgs;  /* chat: at least one; role and content malloc'd */
    size_t n_msgs;
    int max_tokens;             /* 0: not given */
    pagoda_sampling sampling;   /* engine defaults, then the given fields */
    int has_seed;
    char *stop[PAGODA_MAX_STOPS];
    int n_stop;
    pagoda_logit_bias *bias;
    int n_bias;
    int logprobs;               /* report logprobs */
    int top_logprobs;           /* alternatives per token */
    int n;                      /* choices per prompt, >= 1 */
    int stream;
    int include_usage;
    int ignore_eos;
};

/* Parses a /v1/completions (chat = 0) or /v1/chat/completions (chat = 1) body.
 * Token ids (prompt ids, logit_bias keys) must be below n_vocab. Returns 0, or
 * -1 with e filled (then r holds nothing to free). */
int srv_parse_request(int chat, const char *body, size_t len, int32_t n_vocab,
                      struct srv_request *r, struct srv_error *e);
void srv_request_free(struct srv_request *r);

/* /tokenize: {"content": "...", "add_special": bool, "parse_special": bool}. */
int srv_parse_tokenize(const char *body, size_t len, char **text, int *add_special,
                       int *parse_special, struct srv_error *e);
/* /detokenize: {"tokens": [ids...]}; ids below n_vocab. *ids malloc'd. */
int srv_parse_detokenize(const char *body, size_t len, int32_t n_vocab, int32_t **ids,
                         size_t *n, struct srv_error *e);

/* One generated token's log-probabilities, with the texts of the tokens. */
struct srv_logprob {
    char *text;
    size_t text_len;
    float logprob;
    int n_top;
    char *top_text[PAGODA_MAX_TOP_LOGPROBS];
    size_t top_len[PAGODA_MAX_TOP_LOGPROBS];
    float top_logprob[PAGODA_MAX_TOP_LOGPROBS];
};

/* What one choice produced. */
struct srv_choice {
    char *text;
    size_t len, cap;
    pagoda_finish finish;
    struct srv_logprob *lp;
    size_t n_lp, cap_lp;
};

struct srv_usage {
    long long prompt_tokens, completion_tokens;
};

/* Identity of a response, shared by its chunks. */
struct srv_meta {
    int chat;
    const char *id;       /* "cmpl-..." / "chatcmpl-..." */
    long long created;    /* Unix seconds */
    const char *model;
    int logprobs;         /* include logprobs objects */
};

/* The whole body of a non-streaming response (malloc'd), NULL when out of memory. */
char *srv_build_response(const struct srv_meta *m, const struct srv_choice *c, size_t n,
                         const struct srv_usage *u);
/* One stream chunk's JSON (without "data: "). text may be NULL (no content);
 * role_first adds the chat delta role; finish NONE writes null. lp (may be
 * NULL) is the logprobs of the text in this chunk. */
char *srv_build_chunk(const struct srv_meta *m, int index, const char *text, size_t len,
                      int role_first, pagoda_finish finish, const struct srv_logprob *lp,
                      size_t n_lp);
/* The last chunk with usage and no choices. */
char *srv_build_usage_chunk(const struct srv_meta *m, const struct srv_usage *u);
/* GET /v1/models: the one model this server has; GET /v1/models/{id}: that model. */
char *srv_build_models(const char *alias, long long created, const pagoda_model_info *info);
char *srv_build_model(const char *alias, long long created, const pagoda_model_info *info);
/* /tokenize and /detokenize answers: {"tokens":[...]} and {"content":"..."}. */
char *srv_build_tokens(const int32_t *ids, size_t n);
char *srv_build_content(const char *text, size_t len);
/* {"error":{...}} */
char *srv_build_error(const struct srv_error *e);

/* "stop"/"length"/... for a finish reason (abort and error give "abort"/"error"). */
const char *srv_finish_str(pagoda_finish f);

/* Choice helpers: append text; push a logprob entry (copied). Return -1 on ENOMEM. */
int srv_choice_append(struct srv_choice *c, const char *text, size_t len);
int srv_choice_push_lp(struct srv_choice *c, const struct srv_logprob *lp);
void srv_choice_free(struct srv_choice *c);
void srv_logprob_free(struct srv_logprob *lp);

#endif
