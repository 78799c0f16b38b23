/*
 * pagoda.h: the public interface of pagoda, an LLM inference engine and server.
 *
 * Functions that can fail return a pagoda_status (0 on success, negative on
 * failure) and write a message the caller can print into a caller-owned buffer
 * (char *err, size_t errlen). Nothing in the library exits the process.
 */
#ifndef PAGODA_H
#define PAGODA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PAGODA_VERSION "0.1.0"

typedef enum pagoda_status {
    PAGODA_OK = 0,
    PAGODA_EINVAL = -1,      /* a bad argument or flag */
    PAGODA_EIO = -2,         /* a file or socket could not be read or written */
    PAGODA_EFORMAT = -3,     /* input is malformed (corrupt file, bad JSON, ...) */
    PAGODA_ENOMEM = -4,      /* an allocation failed */
    PAGODA_EUNSUPPORTED = -5,/* well-formed but not something pagoda handles */
    PAGODA_ERANGE = -6,      /* a value is outside what the caller allowed */
    PAGODA_EBUSY = -7,       /* the engine's queue is full: try again later */
    PAGODA_ENOTFOUND = -8,   /* no such request (or model, file, ...) */
    PAGODA_ESHUTDOWN = -9,   /* the engine is stopping and takes no more work */
} pagoda_status;

/* A short, static English name of a status ("invalid argument", ...). */
const char *pagoda_status_str(int status);

/* The library version string. */
const char *pagoda_version(void);

/* ------------------------------------------------------------------------
 * Engine: many sequences generating at once on one model.
 *
 * A driver thread owned by the engine runs steps: each step is one forward
 * pass over a batch holding one decode token of every running sequence and
 * prompt chunks of waiting ones (continuous batching, chunked prefill). KV
 * memory is a pool of fixed-size blocks; full blocks are shared between
 * sequences with the same prefix (prefix cache). pagoda_submit and
 * pagoda_abort may be called from any thread. Callbacks run on the driver
 * thread: they must return quickly and must not call pagoda_engine_free.
 * ------------------------------------------------------------------------ */

typedef struct pagoda_engine pagoda_engine;

typedef enum pagoda_kv_type {
    PAGODA_KV_F16 = 0,
    PAGODA_KV_BF16 = 1,
    PAGODA_KV_Q8_0 = 2,
} pagoda_kv_type;

typedef struct pagoda_engine_options {
    const char *model_path;  /* GGUF file */
    int n_threads;           /* 0: one per core */
    int n_ctx;               /* most tokens one sequence holds; 0: the model's, at most 4096 */
    uint64_t kv_mem_bytes;   /* KV pool budget; 0: kv_mem_fraction of available memory */
    double kv_mem_fraction;  /* used when kv_mem_bytes is 0 (default 0.25) */
    pagoda_kv_type kv_type;  /* default F16 */
    int block_size;          /* token slots per KV block; 0: default */
    int batch_tokens;        /* token budget of one step; 0: default */
    int prefill_chunk;       /* most prompt tokens of one sequence in one step; 0: batch_tokens */
    int max_running;         /* most sequences in one step; 0: default */
    int max_queued;          /* most requests waiting to start; 0: default; beyond: PAGODA_EBUSY */
    int prefix_cache;        /* 1 (default): reuse cached full blocks; 0: off */
} pagoda_engine_options;

/* Fills the defaults (every field zero except kv_mem_fraction and prefix_cache). */
void pagoda_engine_options_default(pagoda_engine_options *o);

/* Loads the model, sizes the KV pool and starts the driver thread. */
int pagoda_engine_create(const pagoda_engine_options *o, pagoda_engine **out, char *err,
                         size_t errlen);

/* Aborts every request (each gets its final PAGODA_EVENT_DONE with
 * PAGODA_FINISH_ABORT), stops the driver thread and frees everything. */
void pagoda_engine_free(pagoda_engine *e);

typedef struct pagoda_model_info {
    const char *name;          /* general.name, else the file's base name */
    const char *arch;          /* "llama", "qwen2", ... */
    const char *chat_template; /* format name ("chatml", "llama3", ...), NULL when unknown */
    int32_t n_vocab;
    int32_t n_ctx;             /* the engine's per-sequence context */
    int32_t n_ctx_train;
    int32_t bos, eos;          /* -1 when the model has none */
    int add_bos;               /* prompts start with BOS */
    uint64_t n_params;
    uint64_t n_bytes;          /* bytes of all tensors */
    const char *file_type;     /* general.file_type as "Q4_K_M", "F16", ...; NULL when absent */
} pagoda_model_info;

void pagoda_engine_model_info(const pagoda_engine *e, pagoda_model_info *info);

/* Text to token ids. *out is malloc'd (caller frees), *n ids long.
 * add_special adds BOS/EOS as the model says; parse_special turns control
 * token texts ("<|im_end|>") into those tokens. */
int pagoda_tokenize(const pagoda_engine *e, const char *text, size_t len, int add_special,
                    int parse_special, int32_t **out, size_t *n, char *err, size_t errlen);

/* Token ids to text (malloc'd, NUL-terminated, *len bytes). Ids out of range
 * fail with PAGODA_EINVAL. special: render control tokens as their text. */
int pagoda_detokenize(const pagoda_engine *e, const int32_t *ids, size_t n, int special,
                      char **out, size_t *len, char *err, size_t errlen);

/* The bytes one token adds where it stands inside a text (malloc'd,
 * NUL-terminated, *len bytes): unlike detokenizing it alone, a SentencePiece
 * token keeps its leading space, so the pieces of a continuation add up to
 * its text (what logprobs report per token). A byte token gives its one
 * byte. Ids out of range fail with PAGODA_EINVAL. */
int pagoda_token_piece(const pagoda_engine *e, int32_t id, int special, char **out, size_t *len,
                       char *err, size_t errlen);

typedef struct pagoda_chat_message {
    const char *role;    /* "system", "user", "assistant" */
    const char *content;
} pagoda_chat_message;

/* Renders messages with the model's chat template (or template_name when
 * not NULL) into a prompt string (malloc'd). add_generation_prompt opens
 * the assistant's turn. */
int pagoda_chat_prompt(const pagoda_engine *e, const char *template_name,
                       const pagoda_chat_message *msgs, size_t n, int add_generation_prompt,
                       char **out, size_t *len, char *err, size_t errlen);

typedef struct pagoda_logit_bias {
    int32_t token;
    float bias;          /* added to the logit; -INFINITY bans the token */
} pagoda_logit_bias;

typedef struct pagoda_sampling {
    float temperature;       /* <= 0: greedy */
    int top_k;               /* <= 0: off */
    float top_p;             /* >= 1: off */
    float min_p;             /* <= 0: off */
    float repeat_penalty;    /* 1: off */
    float presence_penalty;  /* 0: off */
    float frequency_penalty; /* 0: off */
    int penalty_last_n;      /* window for the penalties; -1: all tokens */
    uint64_t seed;           /* same seed, same request: same tokens, alone or batched */
    const pagoda_logit_bias *logit_bias;
    int n_logit_bias;
} pagoda_sampling;

/* Defaults: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, penalties
 * off (window 64), seed 0. */
void pagoda_sampling_default(pagoda_sampling *s);

#define PAGODA_MAX_STOPS 16
#define PAGODA_MAX_TOP_LOGPROBS 20

typedef enum pagoda_event_type {
    PAGODA_EVENT_TOKEN = 1, /* one generated token */
    PAGODA_EVENT_DONE = 2,  /* the request ended; always the last event, exactly once */
} pagoda_event_type;

typedef enum pagoda_finish {
    PAGODA_FINISH_NONE = 0,
    PAGODA_FINISH_STOP = 1,   /* an end-of-generation token or a stop string */
    PAGODA_FINISH_LENGTH = 2, /* max_tokens or the context is full */
    PAGODA_FINISH_ABORT = 3,  /* pagoda_abort or engine shutdown */
    PAGODA_FINISH_ERROR = 4,  /* see error */
} pagoda_finish;

typedef struct pagoda_timings {
    double t_submit;       /* seconds, monotonic clock */
    double t_first_token;  /* 0 until the first token */
    double t_end;          /* 0 until done */
    int32_t n_prompt;      /* prompt tokens */
    int32_t n_cached;      /* prompt tokens found in the prefix cache (not recomputed) */
    int32_t n_generated;   /* generated tokens so far (the stop token included) */
    int32_t n_preempted;   /* times the sequence was preempted and recomputed */
} pagoda_timings;

typedef struct pagoda_event {
    pagoda_event_type type;
    uint64_t id;
    void *user;
    /* PAGODA_EVENT_TOKEN: */
    int32_t token;
    const char *text;      /* text that became final with this token (may be empty;
                              held back while it could begin a stop string); valid
                              during the callback only */
    size_t text_len;
    float logprob;         /* log-probability of token (only when logprobs was asked) */
    int n_top;             /* entries in top_tokens/top_logprobs */
    const int32_t *top_tokens;
    const float *top_logprobs;
    /* PAGODA_EVENT_DONE: */
    pagoda_finish finish;
    const char *error;     /* PAGODA_FINISH_ERROR: what went wrong */
    pagoda_timings timings;
} pagoda_event;

typedef void (*pagoda_callback)(void *user, const pagoda_event *ev);

typedef struct pagoda_request {
    const int32_t *prompt;   /* copied; at least one token */
    size_t n_prompt;
    int max_tokens;          /* >= 1; capped by the context */
    pagoda_sampling sampling;
    const char *stop[PAGODA_MAX_STOPS]; /* stop strings (copied), not part of the output */
    int n_stop;
    int ignore_eos;          /* keep going past end-of-generation tokens */
    int logprobs;            /* report each token's logprob */
    int top_logprobs;        /* 0..PAGODA_MAX_TOP_LOGPROBS alternatives per token */
    pagoda_callback callback;
    void *user;
} pagoda_request;

/* Queues a request. *id identifies it for pagoda_abort. Fails at once with
 * PAGODA_EINVAL (bad parameters), PAGODA_ERANGE (prompt + max_tokens can never
 * fit: longer than the context or the whole KV pool), PAGODA_EBUSY (queue
 * full) or PAGODA_ESHUTDOWN; then no callback ever runs for it. On success
 * the callback gets tokens and then exactly one PAGODA_EVENT_DONE. */
int pagoda_submit(pagoda_engine *e, const pagoda_request *r, uint64_t *id, char *err,
                  size_t errlen);

/* Ends a request at once and frees its KV blocks; its DONE event carries
 * PAGODA_FINISH_ABORT. PAGODA_ENOTFOUND when it is unknown or already done. */
int pagoda_abort(pagoda_engine *e, uint64_t id);

typedef struct pagoda_stats {
    int32_t running;            /* sequences holding KV blocks */
    int32_t waiting;            /* queued or preempted */
    int32_t block_size;
    int32_t n_threads;          /* threads a forward pass runs on */
    int64_t kv_blocks_total;
    int64_t kv_blocks_used;     /* referenced by a sequence */
    int64_t kv_blocks_cached;   /* unreferenced, holding a cached prefix (reusable) */
    int64_t kv_blocks_free;     /* neither */
    int64_t kv_blocks_used_peak;/* most blocks used at once since creation or the last
                                   pagoda_engine_reset_peak */
    uint64_t kv_bytes;          /* memory of the whole pool */
    int64_t kv_tokens;          /* tokens held by running sequences */
    int64_t kv_slots;           /* slots of the blocks they hold (>= kv_tokens) */
    uint64_t requests_done;
    uint64_t prompt_tokens;     /* prompt tokens of admitted requests */
    uint64_t prompt_tokens_cached; /* of which found in the prefix cache */
    uint64_t generated_tokens;
    uint64_t preemptions;
    uint64_t steps;
    double prefix_hit_rate;     /* prompt_tokens_cached / prompt_tokens */
    double gen_tokens_per_s;    /* over the last few seconds */
} pagoda_stats;

void pagoda_engine_stats(pagoda_engine *e, pagoda_stats *s);
/* Restarts kv_blocks_used_peak from the blocks in use now. */
void pagoda_engine_reset_peak(pagoda_engine *e);

/* Monotonic clock in seconds (the clock of pagoda_timings). */
double pagoda_now(void);

#ifdef __cplusplus
}
#endif

#endif
