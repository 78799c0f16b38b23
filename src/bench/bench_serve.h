/*
 * bench_serve.h: the load generator behind `pagoda bench serve`. It drives
 * streaming requests against any OpenAI-compatible server (/v1/completions or
 * /v1/chat/completions) from one thread with libcurl's multi interface,
 * timestamps every content chunk of the SSE stream, and reduces the results
 * of each concurrency level to throughput and latency distributions (TTFT,
 * TPOT, ITL, E2E) with every failure counted by kind. bench_report.c turns a
 * finished bench_report into a table, JSON or an SVG chart.
 */
#ifndef PAGODA_BENCH_SERVE_H
#define PAGODA_BENCH_SERVE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct tokenizer;

/* ---- SSE parser ----
 * Bytes may arrive split anywhere (inside a line, between \r and \n). Lines
 * end with \n, \r\n or \r; "data:" lines are joined with \n into one event,
 * which is handed out at the blank line that ends it. Comments (":...") and
 * other fields (event, id, retry) are skipped. A line or event longer than
 * SSE_MAX_EVENT bytes is an error. */
#define SSE_MAX_EVENT (1 << 20)

/* Called once per event with its data (NUL-terminated, len bytes). A
 * non-zero return stops the parser and is returned by sse_feed. */
typedef int (*sse_event_fn)(void *user, const char *data, size_t len);

struct sse_parser {
    char *line; /* the unfinished line */
    size_t line_len, line_cap;
    char *data; /* the data of the unfinished event */
    size_t data_len, data_cap;
    int has_data; /* a data: line was seen since the last dispatch */
    int after_cr; /* the last byte was \r: a following \n ends nothing */
    int failed;
};

void sse_init(struct sse_parser *p);
void sse_free(struct sse_parser *p);
/* Parses n more bytes. Returns 0, the callback's non-zero value, or
 * PAGODA_EFORMAT (line too long) / PAGODA_ENOMEM; after an error the parser
 * refuses more input. */
int sse_feed(struct sse_parser *p, const char *bytes, size_t n, sse_event_fn fn, void *user);
/* The stream ended: an event not closed by a blank line is dispatched (as
 * browsers drop it, servers should not rely on it, but we count what came).
 * Returns as sse_feed. */
int sse_finish(struct sse_parser *p, sse_event_fn fn, void *user);

/* ---- statistics ---- */

/* The value at percentile pct (0..100) of n sorted values, interpolating
 * linearly between neighbours (numpy's default). 0 when n is 0. */
double bench_percentile(const double *sorted, size_t n, double pct);

struct bench_dist {
    long long n;
    double mean, median, p90, p99; /* milliseconds */
};

/* Sorts v in place and fills d (values in seconds, d in milliseconds). */
void bench_dist_compute(struct bench_dist *d, double *v, size_t n);

enum bench_fail {
    BENCH_FAIL_CONNECT = 0, /* connection refused, name not resolved */
    BENCH_FAIL_HTTP,        /* a non-2xx status, or an error object in the stream */
    BENCH_FAIL_SSE,         /* malformed SSE or JSON, or a stream without tokens */
    BENCH_FAIL_TIMEOUT,     /* --timeout reached */
    BENCH_FAIL_DROPPED,     /* the connection closed before the stream ended */
    BENCH_FAIL_COUNT
};

/* "connect", "http", "sse", "timeout", "dropped". */
const char *bench_fail_name(int kind);

/* How output tokens were counted. */
enum bench_count {
    BENCH_COUNT_USAGE = 1,     /* the server's usage.completion_tokens */
    BENCH_COUNT_TOKENIZER = 2, /* re-tokenizing the text with --tokenizer */
    BENCH_COUNT_CHUNKS = 4,    /* one token per content chunk */
};

/* What one finished request measured; times in seconds from its start. */
struct bench_result {
    int ok;
    int fail;  /* enum bench_fail when !ok */
    double ttft, e2e;
    long long input_tokens, output_tokens, chunks;
    int count_source; /* enum bench_count */
};

#define BENCH_MAX_LEVELS 16
#define BENCH_ERRMSG 200

struct bench_level {
    int concurrency;
    long long sent, completed, failed_total, cancelled;
    long long failed[BENCH_FAIL_COUNT];
    char first_error[BENCH_FAIL_COUNT][BENCH_ERRMSG];
    double duration_s;
    long long input_tokens, output_tokens, chunks;
    double req_per_s, out_tok_per_s, total_tok_per_s;
    int count_sources; /* OR of enum bench_count over successful requests */
    struct bench_dist ttft, tpot, itl, e2e;
};

/* Fills the throughput and latency figures of lv from n results (failures
 * included: they are counted, not measured), the inter-chunk gaps of the
 * successful requests (seconds; sorted in place) and the wall time. The
 * failure counts and first errors already in lv are kept and added to. */
void bench_level_compute(struct bench_level *lv, const struct bench_result *res, size_t n,
                         double *itl, size_t n_itl, double duration_s);

/* "usage", "tokenizer", "chunks", a '+'-joined mix, or "-" for none. */
const char *bench_count_name(int sources, char *buf, size_t len);

#define BENCH_MAX_SERVERS 2
#define BENCH_MAX_NOTES 8

struct bench_server {
    char url[512];
    char model[256];
    int n_levels;
    struct bench_level levels[BENCH_MAX_LEVELS];
};

struct bench_report {
    int n_servers;
    struct bench_server servers[BENCH_MAX_SERVERS];
    /* the schedule, echoed into the JSON */
    char endpoint[32]; /* "completions" or "chat/completions" */
    int input_len, output_len;
    long long requests; /* per level; 0 with --duration */
    double duration_s, rate; /* 0: not given / all at once */
    uint64_t seed;
    char prompts[160]; /* where prompts came from and how exact their lengths are */
    int n_notes;
    char notes[BENCH_MAX_NOTES][200];
    int interrupted;
};

/* ---- the run ---- */

struct bench_progress {
    int server;      /* 0 or 1 */
    int concurrency;
    long long done, failed, total; /* total is -1 with --duration */
    double elapsed_s, out_tok_per_s;
};

struct bench_serve_options {
    const char *url;     /* base URL: http://host:port (a trailing /v1 is accepted) */
    const char *url2;    /* --compare, or NULL */
    const char *model;   /* NULL: the first id of GET /v1/models, if any */
    const char *api_key; /* NULL: no Authorization header */
    int concurrency[BENCH_MAX_LEVELS];
    int n_levels;
    long long requests; /* per level; 0: --duration decides (or 4 x concurrency, at least 8) */
    double duration_s;  /* > 0: keep sending for this long per level */
    double rate;        /* > 0: Poisson arrivals at this many requests/s */
    int input_len, output_len;
    int chat;
    double timeout_s; /* per request */
    uint64_t seed;
    const char *dataset;         /* JSONL with "prompt" or "messages", or NULL */
    const struct tokenizer *tok; /* exact synthetic prompts and re-counting, or NULL */
    volatile int *stop;          /* set (by a signal handler) to stop early */
    void (*on_progress)(void *user, const struct bench_progress *p);
    void *progress_user;
};

/* Runs every level against url (and url2, alternating level by level) and
 * fills r. Failed requests are counted in r, not reported as an error; an
 * error return means the run could not be set up (bad option, unreadable
 * dataset, out of memory). When *stop becomes non-zero the run ends and r
 * holds what was measured, with r->interrupted set. */
int bench_serve_run(const struct bench_serve_options *o, struct bench_report *r, char *err,
                    size_t errlen);

/* ---- reports (bench_report.c) ---- */

/* The human-readable tables: servers, throughput, latency (ms), failures,
 * and with two servers a ratio row (second / first) per level. */
void bench_report_table(const struct bench_report *r, FILE *f);
/* The whole report as one JSON object; returns 0 or PAGODA_EIO / PAGODA_ENOMEM. */
int bench_report_json(const struct bench_report *r, FILE *f, char *err, size_t errlen);
/* A standalone SVG: output tok/s and median TTFT against concurrency, one
 * line per server. Returns 0 or PAGODA_EIO. */
int bench_report_svg(const struct bench_report *r, FILE *f, char *err, size_t errlen);

#endif
