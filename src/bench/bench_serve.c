/*
 * bench_serve.c: the load generator of `pagoda bench serve`: the SSE parser,
 * prompt building (synthetic, exact in tokens with a tokenizer, or from a
 * JSONL dataset), one thread driving every concurrent stream through
 * libcurl's multi interface, and the reduction of per-request timings to the
 * figures of a concurrency level. Reports are written by bench_report.c.
 */
#include "bench/bench_serve.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/rng.h"
#include "tokenizer/tokenizer.h"

/* ------------------------------------------------------------------------
 * SSE parser
 * ------------------------------------------------------------------------ */

void sse_init(struct sse_parser *p)
{
    memset(p, 0, sizeof *p);
}

void sse_free(struct sse_parser *p)
{
    free(p->line);
    free(p->data);
    memset(p, 0, sizeof *p);
}

/* Grows *buf so it holds need bytes plus a NUL. */
static int sse_reserve(char **buf, size_t *cap, size_t need)
{
    if (need + 1 <= *cap)
        return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need + 1)
        c *= 2;
    char *nb = realloc(*buf, c);
    if (!nb)
        return PAGODA_ENOMEM;
    *buf = nb;
    *cap = c;
    return 0;
}

static int sse_dispatch(struct sse_parser *p, sse_event_fn fn, void *user)
{
    if (!p->has_data)
        return 0;
    size_t len = p->data_len;
    if (len && p->data[len - 1] == '\n')
        len--; /* the separator added after the last data line */
    p->data[len] = 0;
    p->has_data = 0;
    p->data_len = 0;
    return fn ? fn(user, p->data, len) : 0;
}

/* One complete line (without its end) is in p->line. */
static int sse_line(struct sse_parser *p, sse_event_fn fn, void *user)
{
    const char *l = p->line;
    size_t n = p->line_len;
    p->line_len = 0;
    if (n == 0)
        return sse_dispatch(p, fn, user);
    if (l[0] == ':')
        return 0;
    const char *colon = memchr(l, ':', n);
    size_t flen = colon ? (size_t)(colon - l) : n;
    if (flen != 4 || memcmp(l, "data", 4))
        return 0;
    const char *v = colon ? colon + 1 : l + n;
    if (v < l + n && *v == ' ')
        v++;
    size_t vlen = (size_t)(l + n - v);
    if (p->data_len + vlen + 1 > SSE_MAX_EVENT)
        return PAGODA_EFORMAT;
    if (sse_reserve(&p->data, &p->data_cap, p->data_len + vlen + 1))
        return PAGODA_ENOMEM;
    memcpy(p->data + p->data_len, v, vlen);
    p->data_len += vlen;
    p->data[p->data_len++] = '\n';
    p->has_data = 1;
    return 0;
}

int sse_feed(struct sse_parser *p, const char *bytes, size_t n, sse_event_fn fn, void *user)
{
    if (p->failed)
        return PAGODA_EFORMAT;
    size_t i = 0;
    while (i < n) {
        if (p->after_cr) {
            p->after_cr = 0;
            if (bytes[i] == '\n') {
                i++;
                continue;
            }
        }
        size_t j = i;
        while (j < n && bytes[j] != '\n' && bytes[j] != '\r')
            j++;
        size_t span = j - i;
        if (span) {
            if (p->line_len + span > SSE_MAX_EVENT) {
                p->failed = 1;
                return PAGODA_EFORMAT;
            }
            if (sse_reserve(&p->line, &p->line_cap, p->line_len + span)) {
                p->failed = 1;
                return PAGODA_ENOMEM;
            }
            memcpy(p->line + p->line_len, bytes + i, span);
            p->line_len += span;
        }
        if (j == n)
            break;
        p->after_cr = bytes[j] == '\r';
        i = j + 1;
        int rc = sse_line(p, fn, user);
        if (rc) {
            p->failed = 1;
            return rc;
        }
    }
    return 0;
}

int sse_finish(struct sse_parser *p, sse_event_fn fn, void *user)
{
    if (p->failed)
        return PAGODA_EFORMAT;
    int rc = 0;
    if (p->line_len)
        rc = sse_line(p, fn, user);
    if (!rc)
        rc = sse_dispatch(p, fn, user);
    p->after_cr = 0;
    if (rc)
        p->failed = 1;
    return rc;
}

/* ------------------------------------------------------------------------
 * statistics
 * ------------------------------------------------------------------------ */

double bench_percentile(const double *sorted, size_t n, double pct)
{
    if (n == 0)
        return 0;
    if (pct <= 0)
        return sorted[0];
    if (pct >= 100)
        return sorted[n - 1];
    double pos = pct / 100.0 * (double)(n - 1);
    size_t lo = (size_t)pos;
    if (lo >= n - 1)
        return sorted[n - 1];
    double frac = pos - (double)lo;
    return sorted[lo] + (sorted[lo + 1] - sorted[lo]) * frac;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void bench_dist_compute(struct bench_dist *d, double *v, size_t n)
{
    memset(d, 0, sizeof *d);
    d->n = (long long)n;
    if (n == 0)
        return;
    qsort(v, n, sizeof *v, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    d->mean = sum / (double)n * 1e3;
    d->median = bench_percentile(v, n, 50) * 1e3;
    d->p90 = bench_percentile(v, n, 90) * 1e3;
    d->p99 = bench_percentile(v, n, 99) * 1e3;
}

const char *bench_fail_name(int kind)
{
    static const char *names[BENCH_FAIL_COUNT] = {"connect", "http", "sse", "timeout", "dropped"};
    return kind >= 0 && kind < BENCH_FAIL_COUNT ? names[kind] : "?";
}

const char *bench_count_name(int sources, char *buf, size_t len)
{
    static const struct {
        int bit;
        const char *name;
    } names[] = {{BENCH_COUNT_USAGE, "usage"},
                 {BENCH_COUNT_TOKENIZER, "tokenizer"},
                 {BENCH_COUNT_CHUNKS, "chunks"}};
    if (!len)
        return buf;
    buf[0] = 0;
    size_t used = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!(sources & names[i].bit))
            continue;
        int w = snprintf(buf + used, len - used, "%s%s", used ? "+" : "", names[i].name);
        if (w < 0 || (size_t)w >= len - used)
            break;
        used += (size_t)w;
    }
    if (!used)
        snprintf(buf, len, "-");
    return buf;
}

void bench_level_compute(struct bench_level *lv, const struct bench_result *res, size_t n,
                         double *itl, size_t n_itl, double duration_s)
{
    double *ttft = malloc((n ? n : 1) * sizeof *ttft);
    double *tpot = malloc((n ? n : 1) * sizeof *tpot);
    double *e2e = malloc((n ? n : 1) * sizeof *e2e);
    size_t nt = 0, np = 0;
    lv->completed = 0;
    lv->input_tokens = lv->output_tokens = lv->chunks = 0;
    lv->count_sources = 0;
    for (size_t i = 0; i < n; i++) {
        const struct bench_result *r = &res[i];
        if (!r->ok) {
            if (r->fail >= 0 && r->fail < BENCH_FAIL_COUNT)
                lv->failed[r->fail]++;
            continue;
        }
        lv->completed++;
        lv->input_tokens += r->input_tokens;
        lv->output_tokens += r->output_tokens;
        lv->chunks += r->chunks;
        lv->count_sources |= r->count_source;
        if (ttft && e2e) {
            ttft[nt] = r->ttft;
            e2e[nt] = r->e2e;
            nt++;
        }
        if (tpot && r->output_tokens > 1)
            tpot[np++] = (r->e2e - r->ttft) / (double)(r->output_tokens - 1);
    }
    lv->failed_total = 0;
    for (int k = 0; k < BENCH_FAIL_COUNT; k++)
        lv->failed_total += lv->failed[k];
    lv->duration_s = duration_s;
    if (duration_s > 0) {
        lv->req_per_s = (double)lv->completed / duration_s;
        lv->out_tok_per_s = (double)lv->output_tokens / duration_s;
        lv->total_tok_per_s = (double)(lv->input_tokens + lv->output_tokens) / duration_s;
    } else {
        lv->req_per_s = lv->out_tok_per_s = lv->total_tok_per_s = 0;
    }
    bench_dist_compute(&lv->ttft, ttft, ttft ? nt : 0);
    bench_dist_compute(&lv->e2e, e2e, e2e ? nt : 0);
    bench_dist_compute(&lv->tpot, tpot, tpot ? np : 0);
    bench_dist_compute(&lv->itl, itl, itl ? n_itl : 0);
    free(ttft);
    free(tpot);
    free(e2e);
}

/* ------------------------------------------------------------------------
 * small buffers and helpers
 * ------------------------------------------------------------------------ */

struct buf {
    char *p;
    size_t len, cap;
};

static int buf_add(struct buf *b, const char *s, size_t n)
{
    if (sse_reserve(&b->p, &b->cap, b->len + n))
        return PAGODA_ENOMEM;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

struct dvec {
    double *v;
    size_t n, cap;
};

static int dvec_push(struct dvec *d, double x)
{
    if (d->n == d->cap) {
        size_t c = d->cap ? d->cap * 2 : 64;
        double *nv = realloc(d->v, c * sizeof *nv);
        if (!nv)
            return PAGODA_ENOMEM;
        d->v = nv;
        d->cap = c;
    }
    d->v[d->n++] = x;
    return 0;
}

/* Copies up to cap-1 bytes of s into out with control bytes made '?' so the
 * text stays on one printable line. */
static void printable(char *out, size_t cap, const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        out[k++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    if (cap)
        out[k] = 0;
}

/* Tokens of text as the tokenizer counts them (no BOS/EOS), or -1. */
static long long count_tokens(const struct tokenizer *tok, const char *text, size_t len)
{
    size_t n = 0;
    int rc = tokenizer_encode(tok, text, len, false, false, NULL, 0, &n);
    if (rc != 0 && rc != PAGODA_ERANGE)
        return -1;
    return (long long)n;
}

/* ------------------------------------------------------------------------
 * prompts
 * ------------------------------------------------------------------------ */

/* Common English words: most are one token in any tokenizer, so a prompt of
 * them is close to its word count in tokens even without a tokenizer. */
static const char *const plain_words[] = {
    "the",   "of",    "and",   "to",    "in",    "is",    "was",   "that",  "for",   "on",
    "are",   "with",  "as",    "his",   "they",  "be",    "at",    "one",   "have",  "this",
    "from",  "or",    "had",   "by",    "word",  "but",   "what",  "some",  "we",    "can",
    "out",   "other", "were",  "all",   "there", "when",  "up",    "use",   "your",  "how",
    "said",  "an",    "each",  "she",   "which", "do",    "their", "time",  "if",    "will",
    "way",   "about", "many",  "then",  "them",  "would", "write", "like",  "so",    "these",
    "her",   "long",  "make",  "thing", "see",   "him",   "two",   "has",   "look",  "more",
    "day",   "could", "go",    "come",  "did",   "my",    "sound", "no",    "most",  "people",
    "over",  "know",  "water", "than",  "call",  "first", "who",   "may",   "down",  "side",
    "been",  "now",   "find",  "any",   "new",   "work",  "part",  "take",  "get",   "place",
    "made",  "live",  "where", "after", "back",  "little", "only", "round", "man",   "year",
    "came",  "show",  "every", "good",  "me",    "give",  "our",   "under", "name",  "very",
};
#define N_PLAIN_WORDS (sizeof plain_words / sizeof plain_words[0])

struct prompt {
    cJSON *value;       /* a string (completions) or a messages array (chat) */
    long long tokens;   /* exact with a tokenizer, else an estimate */
};

struct prompt_src {
    const struct bench_serve_options *o;
    /* synthetic words: each with its leading space */
    char **words;
    size_t n_words;
    double words_per_token; /* without a tokenizer */
    /* with a tokenizer: ids of plain letter pieces to draw prompts from */
    int32_t *ids;
    size_t n_ids;
    /* dataset */
    struct prompt *lines;
    size_t n_lines;
    long long n_exact, n_approx; /* prompts made so far by exactness */
};

/* A vocabulary entry of 1-12 lowercase letters, with or without the word
 * start mark ("\xe2\x96\x81" in SentencePiece, "\xc4\xa0" in byte-level BPE). */
static int is_letter_piece(const char *s, size_t len)
{
    size_t k = 0;
    if (len > 3 && (unsigned char)s[0] == 0xe2 && (unsigned char)s[1] == 0x96 &&
        (unsigned char)s[2] == 0x81)
        k = 3;
    else if (len > 2 && (unsigned char)s[0] == 0xc4 && (unsigned char)s[1] == 0xa0)
        k = 2;
    if (len - k < 1 || len - k > 12)
        return 0;
    for (size_t i = k; i < len; i++)
        if (!islower((unsigned char)s[i]))
            return 0;
    return 1;
}

static int words_add(struct prompt_src *ps, const char *w, size_t len, size_t *cap)
{
    if (ps->n_words == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        char **nw = realloc(ps->words, c * sizeof *nw);
        if (!nw)
            return PAGODA_ENOMEM;
        ps->words = nw;
        *cap = c;
    }
    char *s = malloc(len + 2);
    if (!s)
        return PAGODA_ENOMEM;
    s[0] = ' ';
    memcpy(s + 1, w, len);
    s[len + 1] = 0;
    ps->words[ps->n_words++] = s;
    return 0;
}

/* The plain words, and with a tokenizer the ids of its letter pieces
 * (every normal token when it has too few of those). */
static int words_init(struct prompt_src *ps)
{
    size_t cap = 0;
    for (size_t i = 0; i < N_PLAIN_WORDS; i++)
        if (words_add(ps, plain_words[i], strlen(plain_words[i]), &cap))
            return PAGODA_ENOMEM;
    const struct tokenizer *tok = ps->o->tok;
    if (!tok)
        return 0;
    int32_t nv = tokenizer_n_vocab(tok);
    ps->ids = malloc((size_t)(nv > 0 ? nv : 1) * sizeof *ps->ids);
    if (!ps->ids)
        return PAGODA_ENOMEM;
    for (int pass = 0; pass < 2 && ps->n_ids < 16; pass++) {
        ps->n_ids = 0;
        for (int32_t id = 0; id < nv; id++) {
            size_t len;
            const char *t = tokenizer_token_text(tok, id, &len);
            if (t && tokenizer_token_type(tok, id) == TOKEN_TYPE_NORMAL &&
                (pass == 1 || is_letter_piece(t, len)))
                ps->ids[ps->n_ids++] = id;
        }
    }
    return 0;
}

/* Text of n random words (the first without its leading space). */
static int words_text(const struct prompt_src *ps, struct rng *g, size_t n, struct buf *b)
{
    b->len = 0;
    if (buf_add(b, "", 0))
        return PAGODA_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *w = ps->words[rng_next(g) % ps->n_words];
        if (i == 0)
            w++;
        if (buf_add(b, w, strlen(w)))
            return PAGODA_ENOMEM;
    }
    return 0;
}

/* Text of n token ids into b (NUL-terminated). */
static int ids_text(const struct tokenizer *tok, const int32_t *ids, size_t n, struct buf *b)
{
    size_t len = 0;
    int rc = tokenizer_decode(tok, ids, n, false, b->p, b->cap, &len);
    if (rc == PAGODA_ERANGE || (rc == 0 && len + 1 > b->cap)) {
        if (sse_reserve(&b->p, &b->cap, len))
            return PAGODA_ENOMEM;
        rc = tokenizer_decode(tok, ids, n, false, b->p, b->cap, &len);
    }
    if (rc)
        return rc;
    b->len = len;
    b->p[len] = 0;
    return 0;
}

/* A prompt of exactly target tokens: random pieces are decoded to text and
 * the text encoded again, which may merge or split them; the encoding is cut
 * or extended and the round repeated until the count holds (a few rounds).
 * Leaves the closest text found in b; returns its token count, or < 0. */
static long long synth_exact(const struct prompt_src *ps, struct rng *g, long long target,
                             struct buf *b, int *exact)
{
    const struct tokenizer *tok = ps->o->tok;
    size_t cap = (size_t)target * 2 + 64;
    int32_t *ids = malloc(cap * sizeof *ids), *enc = malloc(cap * sizeof *enc);
    long long best = -1;
    size_t n = (size_t)target;
    *exact = 0;
    if (!ids || !enc)
        goto out;
    for (size_t i = 0; i < n; i++)
        ids[i] = ps->ids[rng_next(g) % ps->n_ids];
    struct buf keep = {0};
    for (int round = 0; round < 32; round++) {
        if (ids_text(tok, ids, n, b))
            break;
        size_t m = 0;
        int rc = tokenizer_encode(tok, b->p, b->len, false, false, enc, cap, &m);
        if (rc && rc != PAGODA_ERANGE)
            break;
        long long diff = (long long)m - target;
        if (best < 0 || llabs(diff) < llabs(best - target)) {
            best = (long long)m;
            keep.len = 0;
            if (buf_add(&keep, b->p, b->len)) {
                best = -1;
                break;
            }
        }
        if (diff == 0) {
            *exact = 1;
            break;
        }
        /* cut the encoding, or keep it all and add random pieces */
        n = m < cap ? m : cap;
        memcpy(ids, enc, n * sizeof *ids);
        if ((long long)n > target)
            n = (size_t)target;
        else
            while ((long long)n < target)
                ids[n++] = ps->ids[rng_next(g) % ps->n_ids];
    }
    if (best >= 0) {
        b->len = 0;
        if (buf_add(b, keep.p, keep.len))
            best = -1;
    }
    free(keep.p);
out:
    free(ids);
    free(enc);
    return best;
}

/* The synthetic prompt number idx: random words, adjusted with the tokenizer
 * until it is exactly input_len tokens (a few rounds at most). */
static int prompt_synth(struct prompt_src *ps, long long idx, struct prompt *out)
{
    const struct bench_serve_options *o = ps->o;
    struct rng g;
    rng_seed(&g, o->seed * 0x9e3779b97f4a7c15ull + (uint64_t)idx + 1);
    struct buf b = {0};
    long long target = o->input_len;
    long long tokens = target;
    int exact = 0;
    if (o->tok && ps->n_ids) {
        tokens = synth_exact(ps, &g, target, &b, &exact);
        if (tokens < 0) {
            free(b.p);
            return PAGODA_ENOMEM;
        }
    } else {
        size_t n = (size_t)llround((double)target * ps->words_per_token);
        if (words_text(ps, &g, n ? n : 1, &b)) {
            free(b.p);
            return PAGODA_ENOMEM;
        }
    }
    if (!b.p)
        return PAGODA_ENOMEM;
    cJSON *text = cJSON_CreateString(b.p);
    free(b.p);
    if (!text)
        return PAGODA_ENOMEM;
    if (o->chat) {
        cJSON *msgs = cJSON_CreateArray(), *m = cJSON_CreateObject();
        if (!msgs || !m || !cJSON_AddStringToObject(m, "role", "user")) {
            cJSON_Delete(msgs);
            cJSON_Delete(m);
            cJSON_Delete(text);
            return PAGODA_ENOMEM;
        }
        cJSON_AddItemToObject(m, "content", text);
        cJSON_AddItemToArray(msgs, m);
        text = msgs;
    }
    out->value = text;
    out->tokens = tokens;
    if (exact)
        ps->n_exact++;
    else
        ps->n_approx++;
    return 0;
}

/* The text whose tokens a prompt value has: the string, or the messages'
 * contents joined (the chat template adds more on the server). */
static int prompt_text(const cJSON *v, struct buf *b)
{
    b->len = 0;
    if (buf_add(b, "", 0))
        return PAGODA_ENOMEM;
    if (cJSON_IsString(v))
        return buf_add(b, v->valuestring, strlen(v->valuestring));
    const cJSON *m;
    cJSON_ArrayForEach(m, v)
    {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (cJSON_IsString(c) && (buf_add(b, c->valuestring, strlen(c->valuestring)) ||
                                  buf_add(b, "\n", 1)))
            return PAGODA_ENOMEM;
    }
    return 0;
}

#define DATASET_MAX_BYTES (1ll << 30)
#define DATASET_MAX_LINES 10000000

static int dataset_load(struct prompt_src *ps, char *err, size_t errlen)
{
    const struct bench_serve_options *o = ps->o;
    FILE *f = fopen(o->dataset, "rb");
    if (!f)
        return err_set(err, errlen, PAGODA_EIO, "cannot open dataset %s", o->dataset);
    size_t cap = 0, lcap = 0;
    char *line = NULL;
    long long lineno = 0, total = 0;
    ssize_t got;
    int rc = 0;
    struct buf tb = {0};
    while ((got = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        total += got;
        if (total > DATASET_MAX_BYTES || lineno > DATASET_MAX_LINES) {
            rc = err_set(err, errlen, PAGODA_ERANGE, "%s: larger than the limit (1 GiB, %d lines)",
                         o->dataset, DATASET_MAX_LINES);
            break;
        }
        size_t len = (size_t)got;
        while (len && isspace((unsigned char)line[len - 1]))
            len--;
        size_t s = 0;
        while (s < len && isspace((unsigned char)line[s]))
            s++;
        if (s == len)
            continue;
        cJSON *j = cJSON_ParseWithLength(line + s, len - s);
        if (!cJSON_IsObject(j)) {
            cJSON_Delete(j);
            rc = err_set(err, errlen, PAGODA_EFORMAT, "%s:%lld: not a JSON object", o->dataset,
                         lineno);
            break;
        }
        cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "prompt");
        cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "messages");
        cJSON *value = NULL;
        if (cJSON_IsString(p)) {
            value = cJSON_DetachItemViaPointer(j, p);
            if (o->chat) {
                cJSON *msgs = cJSON_CreateArray(), *msg = cJSON_CreateObject();
                if (!msgs || !msg || !cJSON_AddStringToObject(msg, "role", "user")) {
                    cJSON_Delete(msgs);
                    cJSON_Delete(msg);
                    cJSON_Delete(value);
                    value = NULL;
                } else {
                    cJSON_AddItemToObject(msg, "content", value);
                    cJSON_AddItemToArray(msgs, msg);
                    value = msgs;
                }
            }
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) > 0) {
            if (!o->chat) {
                cJSON_Delete(j);
                rc = err_set(err, errlen, PAGODA_EINVAL,
                             "%s:%lld: \"messages\" needs --chat", o->dataset, lineno);
                break;
            }
            const cJSON *e;
            int good = 1;
            cJSON_ArrayForEach(e, m)
            {
                if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "role")) ||
                    !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "content")))
                    good = 0;
            }
            if (!good) {
                cJSON_Delete(j);
                rc = err_set(err, errlen, PAGODA_EFORMAT,
                             "%s:%lld: each message needs string \"role\" and \"content\"",
                             o->dataset, lineno);
                break;
            }
            value = cJSON_DetachItemViaPointer(j, m);
        } else {
            cJSON_Delete(j);
            rc = err_set(err, errlen, PAGODA_EFORMAT,
                         "%s:%lld: needs a \"prompt\" string or a \"messages\" array", o->dataset,
                         lineno);
            break;
        }
        cJSON_Delete(j);
        if (!value) {
            rc = err_set(err, errlen, PAGODA_ENOMEM, "out of memory reading %s", o->dataset);
            break;
        }
        if (ps->n_lines == cap) {
            size_t c = cap ? cap * 2 : 64;
            struct prompt *nl = realloc(ps->lines, c * sizeof *nl);
            if (!nl) {
                cJSON_Delete(value);
                rc = err_set(err, errlen, PAGODA_ENOMEM, "out of memory reading %s", o->dataset);
                break;
            }
            ps->lines = nl;
            cap = c;
        }
        struct prompt *pr = &ps->lines[ps->n_lines++];
        pr->value = value;
        pr->tokens = -1;
        if (prompt_text(value, &tb) == 0) {
            if (o->tok)
                pr->tokens = count_tokens(o->tok, tb.p, tb.len);
            if (pr->tokens < 0)
                pr->tokens = (long long)(tb.len / 4); /* a rough English average */
        }
    }
    free(line);
    free(tb.p);
    if (!rc && ferror(f))
        rc = err_set(err, errlen, PAGODA_EIO, "error reading %s", o->dataset);
    fclose(f);
    if (!rc && ps->n_lines == 0)
        rc = err_set(err, errlen, PAGODA_EFORMAT, "%s: no prompts", o->dataset);
    return rc;
}

static void prompt_src_free(struct prompt_src *ps)
{
    for (size_t i = 0; i < ps->n_words; i++)
        free(ps->words[i]);
    free(ps->words);
    free(ps->ids);
    for (size_t i = 0; i < ps->n_lines; i++)
        cJSON_Delete(ps->lines[i].value);
    free(ps->lines);
}

/* Prompts of one level, made on demand and kept so a second server gets
 * the same ones. Dataset prompts are shared, not copied. */
struct prompt_set {
    struct prompt_src *src;
    long long base; /* global index of the first */
    struct prompt *p;
    size_t n, cap;
    size_t used; /* highest index asked for, plus one */
};

static const struct prompt *prompt_get(struct prompt_set *s, size_t i)
{
    struct prompt_src *ps = s->src;
    if (i + 1 > s->used)
        s->used = i + 1;
    if (ps->n_lines)
        return &ps->lines[(size_t)((s->base + (long long)i) % (long long)ps->n_lines)];
    while (s->n <= i) {
        if (s->n == s->cap) {
            size_t c = s->cap ? s->cap * 2 : 64;
            struct prompt *np = realloc(s->p, c * sizeof *np);
            if (!np)
                return NULL;
            s->p = np;
            s->cap = c;
        }
        if (prompt_synth(ps, s->base + (long long)s->n, &s->p[s->n]))
            return NULL;
        s->n++;
    }
    return &s->p[i];
}

static void prompt_set_free(struct prompt_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        cJSON_Delete(s->p[i].value);
    free(s->p);
    s->p = NULL;
    s->n = s->cap = s->used = 0;
}

/* ------------------------------------------------------------------------
 * blocking side requests: the model list and /tokenize
 * ------------------------------------------------------------------------ */

static size_t collect_write(char *ptr, size_t size, size_t nmemb, void *user)
{
    struct buf *b = user;
    size_t n = size * nmemb;
    if (b->len + n > (1u << 22) || buf_add(b, ptr, n))
        return 0;
    return n;
}

/* One request with a short timeout; the body (NUL-terminated) in *out.
 * Returns the HTTP status, or -1 when there was no response. */
static long side_request(const char *url, const char *post, struct curl_slist *hdrs,
                         struct buf *out)
{
    CURL *h = curl_easy_init();
    if (!h)
        return -1;
    out->len = 0;
    buf_add(out, "", 0);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    if (post) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, post);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(post));
    }
    long status = -1;
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    return status;
}

/* The first model id of GET /v1/models into out; 0 or -1. */
static int probe_model(const char *base, struct curl_slist *hdrs, char *out, size_t outlen)
{
    char url[640];
    snprintf(url, sizeof url, "%s/v1/models", base);
    struct buf b = {0};
    long st = side_request(url, NULL, hdrs, &b);
    int rc = -1;
    if (st >= 200 && st < 300 && b.p) {
        cJSON *j = cJSON_Parse(b.p);
        cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "data");
        cJSON *id = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(d, 0), "id");
        if (cJSON_IsString(id) && strlen(id->valuestring) < outlen) {
            strcpy(out, id->valuestring);
            rc = 0;
        }
        cJSON_Delete(j);
    }
    free(b.p);
    return rc;
}

/* Tokens of text by the server's /tokenize (llama-server and vLLM both
 * have one), or -1. */
static long long probe_tokenize(const char *base, const char *model, struct curl_slist *hdrs,
                                const char *text)
{
    char url[640];
    snprintf(url, sizeof url, "%s/tokenize", base);
    cJSON *req = cJSON_CreateObject();
    if (!req)
        return -1;
    cJSON_AddStringToObject(req, "content", text);
    cJSON_AddStringToObject(req, "prompt", text);
    cJSON_AddFalseToObject(req, "add_special");
    if (model && *model)
        cJSON_AddStringToObject(req, "model", model);
    char *body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    if (!body)
        return -1;
    struct buf b = {0};
    long st = side_request(url, body, hdrs, &b);
    free(body);
    long long n = -1;
    if (st >= 200 && st < 300 && b.p) {
        cJSON *j = cJSON_Parse(b.p);
        cJSON *count = cJSON_GetObjectItemCaseSensitive(j, "count");
        cJSON *toks = cJSON_GetObjectItemCaseSensitive(j, "tokens");
        if (cJSON_IsNumber(count) && count->valuedouble >= 0)
            n = (long long)count->valuedouble;
        else if (cJSON_IsArray(toks))
            n = cJSON_GetArraySize(toks);
        cJSON_Delete(j);
    }
    free(b.p);
    return n;
}

/* ------------------------------------------------------------------------
 * the streaming requests
 * ------------------------------------------------------------------------ */

struct req {
    CURL *h;
    int busy;
    char *body;
    struct sse_parser sse;
    const struct prompt *prompt;
    double t_start, t_first, t_last;
    long long chunks, events;
    long long usage_prompt, usage_completion; /* -1: not sent */
    int saw_done, saw_finish;
    int fail; /* -1 or enum bench_fail decided while streaming */
    char msg[BENCH_ERRMSG];
    long status;
    struct buf errbody; /* the start of a non-2xx body */
    struct buf text;    /* generated text, kept only to re-count with a tokenizer */
    struct dvec gaps;   /* seconds between content chunks */
    char curl_err[CURL_ERROR_SIZE];
    int chat, keep_text;
};

static void req_fail(struct req *r, int kind, const char *fmt, const char *detail, size_t dlen)
{
    if (r->fail >= 0)
        return;
    r->fail = kind;
    char d[120];
    printable(d, sizeof d, detail ? detail : "", detail ? dlen : 0);
    snprintf(r->msg, sizeof r->msg, fmt, d);
}

static int req_on_event(void *user, const char *data, size_t len)
{
    struct req *r = user;
    r->events++;
    if (r->saw_done)
        return 0; /* nothing is expected after [DONE]; ignore it */
    if (len == 6 && !memcmp(data, "[DONE]", 6)) {
        r->saw_done = 1;
        return 0;
    }
    cJSON *j = cJSON_ParseWithLength(data, len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        req_fail(r, BENCH_FAIL_SSE, "event is not a JSON object: %s", data, len < 80 ? len : 80);
        return 1;
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (e && !cJSON_IsNull(e)) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
        const char *s = cJSON_IsString(m) ? m->valuestring : cJSON_IsString(e) ? e->valuestring : "";
        req_fail(r, BENCH_FAIL_HTTP, "error in stream: %s", s, strlen(s));
        cJSON_Delete(j);
        return 1;
    }
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
    const cJSON *c0 = cJSON_GetArrayItem(choices, 0);
    if (c0) {
        const cJSON *content;
        if (r->chat)
            content = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(c0, "delta"), "content");
        else
            content = cJSON_GetObjectItemCaseSensitive(c0, "text");
        if (cJSON_IsString(content) && content->valuestring[0]) {
            double now = clock_now();
            if (r->chunks == 0)
                r->t_first = now;
            else if (dvec_push(&r->gaps, now - r->t_last))
                goto oom;
            r->t_last = now;
            r->chunks++;
            if (r->keep_text &&
                buf_add(&r->text, content->valuestring, strlen(content->valuestring)))
                goto oom;
        } else if (content && !cJSON_IsString(content) && !cJSON_IsNull(content)) {
            req_fail(r, BENCH_FAIL_SSE, "content is not a string%s", NULL, 0);
            cJSON_Delete(j);
            return 1;
        }
        const cJSON *fr = cJSON_GetObjectItemCaseSensitive(c0, "finish_reason");
        if (cJSON_IsString(fr))
            r->saw_finish = 1;
    } else if (choices && !cJSON_IsArray(choices)) {
        req_fail(r, BENCH_FAIL_SSE, "\"choices\" is not an array%s", NULL, 0);
        cJSON_Delete(j);
        return 1;
    }
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "usage");
    if (cJSON_IsObject(u)) {
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(u, "completion_tokens");
        const cJSON *pt = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens");
        if (cJSON_IsNumber(ct) && ct->valuedouble >= 0 && ct->valuedouble < 1e12)
            r->usage_completion = (long long)ct->valuedouble;
        if (cJSON_IsNumber(pt) && pt->valuedouble >= 0 && pt->valuedouble < 1e12)
            r->usage_prompt = (long long)pt->valuedouble;
    }
    cJSON_Delete(j);
    return 0;
oom:
    cJSON_Delete(j);
    req_fail(r, BENCH_FAIL_SSE, "out of memory%s", NULL, 0);
    return 1;
}

static size_t req_write(char *ptr, size_t size, size_t nmemb, void *user)
{
    struct req *r = user;
    size_t n = size * nmemb;
    if (r->status == 0)
        curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &r->status);
    if (r->status < 200 || r->status >= 300) {
        if (r->errbody.len < 160)
            buf_add(&r->errbody, ptr, n < 160 ? n : 160);
        return n;
    }
    int rc = sse_feed(&r->sse, ptr, n, req_on_event, r);
    if (rc) {
        if (rc == PAGODA_EFORMAT)
            req_fail(r, BENCH_FAIL_SSE, "SSE line longer than 1 MiB%s", NULL, 0);
        else
            req_fail(r, BENCH_FAIL_SSE, "malformed stream%s", NULL, 0);
        return 0; /* abort the transfer */
    }
    return n;
}

static void req_reset(struct req *r)
{
    sse_free(&r->sse);
    free(r->body);
    r->body = NULL;
    r->busy = 0;
    r->prompt = NULL;
    r->chunks = r->events = 0;
    r->usage_prompt = r->usage_completion = -1;
    r->saw_done = r->saw_finish = 0;
    r->fail = -1;
    r->msg[0] = 0;
    r->status = 0;
    r->errbody.len = 0;
    r->text.len = 0;
    r->gaps.n = 0;
    r->curl_err[0] = 0;
}

static void req_free(struct req *r)
{
    if (r->h)
        curl_easy_cleanup(r->h);
    sse_free(&r->sse);
    free(r->body);
    free(r->errbody.p);
    free(r->text.p);
    free(r->gaps.v);
}

/* Everything shared by the requests of a run. */
struct run {
    const struct bench_serve_options *o;
    struct bench_report *rep;
    struct curl_slist *hdrs;
    char base[2][512];
    char endpoint[2][600];
};

static char *req_body(const struct run *run, int server, const struct prompt *p)
{
    const struct bench_serve_options *o = run->o;
    cJSON *b = cJSON_CreateObject();
    if (!b)
        return NULL;
    const char *model = run->rep->servers[server].model;
    if (*model)
        cJSON_AddStringToObject(b, "model", model);
    cJSON_AddItemReferenceToObject(b, o->chat ? "messages" : "prompt", p->value);
    cJSON_AddNumberToObject(b, "max_tokens", o->output_len);
    cJSON_AddTrueToObject(b, "ignore_eos");
    cJSON_AddTrueToObject(b, "stream");
    cJSON *so = cJSON_AddObjectToObject(b, "stream_options");
    if (so)
        cJSON_AddTrueToObject(so, "include_usage");
    char *s = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    return s;
}

static int req_start(const struct run *run, int server, struct req *r, const struct prompt *p,
                     CURLM *m)
{
    req_reset(r);
    r->prompt = p;
    r->chat = run->o->chat;
    r->keep_text = run->o->tok != NULL;
    r->body = req_body(run, server, p);
    if (!r->body)
        return PAGODA_ENOMEM;
    if (!r->h && !(r->h = curl_easy_init()))
        return PAGODA_ENOMEM;
    CURL *h = r->h;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, run->endpoint[server]);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(r->body));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, run->hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, req_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_PRIVATE, r);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->curl_err);
    long ms = (long)(run->o->timeout_s * 1000.0);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ms > 0 ? ms : 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ms > 0 && ms < 30000 ? ms : 30000L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    r->t_start = clock_now();
    if (curl_multi_add_handle(m, h) != CURLM_OK)
        return PAGODA_ENOMEM;
    r->busy = 1;
    return 0;
}

/* Decides how request r ended (curl's code cc) and fills res. */
static void req_finish(const struct run *run, struct req *r, CURLcode cc, struct bench_result *res)
{
    double now = clock_now();
    memset(res, 0, sizeof *res);
    if (r->status == 0)
        curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &r->status);
    if (r->fail < 0) {
        bool http_bad = r->status != 0 && (r->status < 200 || r->status >= 300);
        if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
            cc == CURLE_COULDNT_RESOLVE_PROXY) {
            req_fail(r, BENCH_FAIL_CONNECT, "%s",
                     r->curl_err[0] ? r->curl_err : curl_easy_strerror(cc),
                     strlen(r->curl_err[0] ? r->curl_err : curl_easy_strerror(cc)));
        } else if (cc == CURLE_OPERATION_TIMEDOUT) {
            req_fail(r, BENCH_FAIL_TIMEOUT, "%s", r->curl_err, strlen(r->curl_err));
        } else if (http_bad) {
            char m[BENCH_ERRMSG];
            snprintf(m, sizeof m, "HTTP %ld: %%s", r->status);
            req_fail(r, BENCH_FAIL_HTTP, m, r->errbody.p, r->errbody.len);
        } else if (cc != CURLE_OK) {
            const char *e = r->curl_err[0] ? r->curl_err : curl_easy_strerror(cc);
            req_fail(r, BENCH_FAIL_DROPPED, "%s", e, strlen(e));
        } else if (sse_finish(&r->sse, req_on_event, r) && r->fail < 0) {
            req_fail(r, BENCH_FAIL_SSE, "malformed stream at its end%s", NULL, 0);
        } else if (r->fail < 0 && r->events == 0) {
            req_fail(r, BENCH_FAIL_SSE, "the response has no SSE events%s", NULL, 0);
        } else if (r->fail < 0 && !r->saw_done && !r->saw_finish) {
            req_fail(r, BENCH_FAIL_DROPPED, "stream ended without [DONE]%s", NULL, 0);
        } else if (r->fail < 0 && r->chunks == 0) {
            req_fail(r, BENCH_FAIL_SSE, "stream had no content%s", NULL, 0);
        }
    }
    if (r->fail >= 0) {
        res->ok = 0;
        res->fail = r->fail;
        return;
    }
    res->ok = 1;
    res->ttft = r->t_first - r->t_start;
    res->e2e = now - r->t_start;
    res->chunks = r->chunks;
    if (r->usage_completion >= 0) {
        res->output_tokens = r->usage_completion;
        res->count_source = BENCH_COUNT_USAGE;
    } else {
        long long n = run->o->tok ? count_tokens(run->o->tok, r->text.p ? r->text.p : "",
                                                 r->text.len)
                                  : -1;
        if (n >= 0) {
            res->output_tokens = n;
            res->count_source = BENCH_COUNT_TOKENIZER;
        } else {
            res->output_tokens = r->chunks;
            res->count_source = BENCH_COUNT_CHUNKS;
        }
    }
    res->input_tokens = r->usage_prompt >= 0 ? r->usage_prompt : r->prompt->tokens;
}

/* ------------------------------------------------------------------------
 * one level against one server
 * ------------------------------------------------------------------------ */

struct rvec {
    struct bench_result *v;
    size_t n, cap;
};

static int rvec_push(struct rvec *d, const struct bench_result *x)
{
    if (d->n == d->cap) {
        size_t c = d->cap ? d->cap * 2 : 64;
        struct bench_result *nv = realloc(d->v, c * sizeof *nv);
        if (!nv)
            return PAGODA_ENOMEM;
        d->v = nv;
        d->cap = c;
    }
    d->v[d->n++] = *x;
    return 0;
}

#define DURATION_MAX_REQUESTS 1000000

static int run_level(struct run *run, int server, int li, struct prompt_set *ps,
                     struct bench_level *lv, char *err, size_t errlen)
{
    const struct bench_serve_options *o = run->o;
    const int conc = o->concurrency[li];
    long long total = o->requests;
    if (total <= 0 && o->duration_s <= 0)
        total = conc * 4 > 8 ? conc * 4 : 8;
    const bool by_time = total <= 0;
    const long long cap_requests = by_time ? DURATION_MAX_REQUESTS : total;

    memset(lv, 0, sizeof *lv);
    lv->concurrency = conc;

    CURLM *m = curl_multi_init();
    struct req *slots = calloc((size_t)conc, sizeof *slots);
    struct rvec res = {0};
    struct dvec itl = {0};
    int rc = 0;
    if (!m || !slots) {
        rc = err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
        goto out;
    }
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)conc + 4);
    for (int i = 0; i < conc; i++)
        req_reset(&slots[i]);

    /* Prompts are made before the clock starts, so making them does not
     * delay reading the streams (with --duration, more are made as needed). */
    if (!prompt_get(ps, (size_t)(by_time ? 4 * conc : total) - 1)) {
        rc = err_set(err, errlen, PAGODA_ENOMEM, "out of memory making prompts");
        goto out;
    }

    /* The arrival schedule depends only on the seed and the level, so both
     * servers of --compare get the same one. */
    struct rng g;
    rng_seed(&g, o->seed ^ (0x5bd1e995ull * (uint64_t)(li + 1)));
    const double t0 = clock_now();
    double next_arrival = t0;
    double deadline;
    if (by_time)
        deadline = t0 + o->duration_s + o->timeout_s + 5;
    else
        deadline = t0 + ((double)total / conc + 1) * (o->timeout_s + 1) + 5 +
                   (o->rate > 0 ? (double)total / o->rate * 10 + 60 : 0);
    long long sent = 0, inflight = 0, done = 0, failed = 0;
    double last_end = t0, last_progress = 0;
    int stopped = 0;

    for (;;) {
        double now = clock_now();
        if (o->stop && *o->stop) {
            stopped = 1;
            break;
        }
        if (now > deadline)
            break; /* what is still open is counted as timed out below */
        bool more = sent < cap_requests && (!by_time || now - t0 < o->duration_s);
        while (more && inflight < conc && now >= next_arrival) {
            struct req *r = NULL;
            for (int i = 0; i < conc && !r; i++)
                if (!slots[i].busy)
                    r = &slots[i];
            const struct prompt *p = prompt_get(ps, (size_t)sent);
            if (!r || !p || req_start(run, server, r, p, m)) {
                rc = err_set(err, errlen, PAGODA_ENOMEM, "out of memory starting a request");
                goto out;
            }
            sent++;
            inflight++;
            if (o->rate > 0) {
                double u = (double)(rng_next(&g) >> 11) * (1.0 / 9007199254740992.0);
                next_arrival += -log(1.0 - u) / o->rate;
            }
            now = clock_now();
            more = sent < cap_requests && (!by_time || now - t0 < o->duration_s);
        }
        if (!more && inflight == 0)
            break;
        int running = 0;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left = 0;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct req *r = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            CURLcode cc = msg->data.result;
            curl_multi_remove_handle(m, msg->easy_handle);
            if (!r)
                continue;
            struct bench_result br;
            req_finish(run, r, cc, &br);
            if (br.ok) {
                for (size_t k = 0; k < r->gaps.n; k++)
                    if (dvec_push(&itl, r->gaps.v[k])) {
                        rc = err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
                        goto out;
                    }
            } else {
                failed++;
                if (!lv->first_error[br.fail][0])
                    snprintf(lv->first_error[br.fail], BENCH_ERRMSG, "%s", r->msg);
            }
            if (rvec_push(&res, &br)) {
                rc = err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
                goto out;
            }
            r->busy = 0;
            inflight--;
            done++;
            last_end = clock_now();
        }
        now = clock_now();
        if (o->on_progress && now - last_progress >= 0.2) {
            last_progress = now;
            long long chunks = 0;
            for (size_t k = 0; k < res.n; k++)
                chunks += res.v[k].ok ? res.v[k].output_tokens : 0;
            for (int i = 0; i < conc; i++)
                chunks += slots[i].busy ? slots[i].chunks : 0;
            struct bench_progress pr = {server,  conc, done, failed, by_time ? -1 : total,
                                        now - t0, now > t0 ? (double)chunks / (now - t0) : 0};
            o->on_progress(o->progress_user, &pr);
        }
        double wait = 0.1;
        more = sent < cap_requests && (!by_time || now - t0 < o->duration_s);
        if (more && inflight < conc)
            wait = next_arrival - now < wait ? next_arrival - now : wait;
        if (by_time && more && t0 + o->duration_s - now < wait)
            wait = t0 + o->duration_s - now;
        if (wait > 0)
            curl_multi_poll(m, NULL, 0, (int)(wait * 1000) + 1, NULL);
    }

    /* Requests still open: cancelled by Ctrl-C, or past the level's bound. */
    for (int i = 0; i < conc; i++) {
        struct req *r = &slots[i];
        if (!r->busy)
            continue;
        curl_multi_remove_handle(m, r->h);
        r->busy = 0;
        if (stopped) {
            lv->cancelled++;
            continue;
        }
        struct bench_result br = {0};
        br.fail = BENCH_FAIL_TIMEOUT;
        if (!lv->first_error[BENCH_FAIL_TIMEOUT][0])
            snprintf(lv->first_error[BENCH_FAIL_TIMEOUT], BENCH_ERRMSG,
                     "the level ran past its time bound");
        if (rvec_push(&res, &br)) {
            rc = err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
            goto out;
        }
    }
    lv->sent = sent;
    if (stopped && done == 0)
        last_end = clock_now();
    bench_level_compute(lv, res.v, res.n, itl.v, itl.n, last_end - t0);

out:
    if (slots) {
        for (int i = 0; i < conc; i++) {
            if (slots[i].busy && m)
                curl_multi_remove_handle(m, slots[i].h);
            req_free(&slots[i]);
        }
    }
    free(slots);
    if (m)
        curl_multi_cleanup(m);
    free(res.v);
    free(itl.v);
    return rc;
}

/* ------------------------------------------------------------------------
 * the whole run
 * ------------------------------------------------------------------------ */

/* Copies url into base without a trailing '/' or "/v1". */
static int base_url(const char *url, char *base, size_t cap, char *err, size_t errlen)
{
    if (!url || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)))
        return err_set(err, errlen, PAGODA_EINVAL, "URL must start with http:// or https://: %s",
                       url ? url : "(none)");
    size_t n = strlen(url);
    if (n + 1 > cap || n > 480)
        return err_set(err, errlen, PAGODA_EINVAL, "URL too long");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= ' ' || (unsigned char)url[i] >= 0x7f)
            return err_set(err, errlen, PAGODA_EINVAL, "URL has a space or control byte");
    memcpy(base, url, n + 1);
    while (n > 8 && base[n - 1] == '/')
        base[--n] = 0;
    if (n > 11 && !strcmp(base + n - 3, "/v1"))
        base[n -= 3] = 0;
    return 0;
}

static void add_note(struct bench_report *r, const char *fmt, ...) PG_PRINTF(2, 3);
static void add_note(struct bench_report *r, const char *fmt, ...)
{
    if (r->n_notes >= BENCH_MAX_NOTES)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->notes[r->n_notes++], sizeof r->notes[0], fmt, ap);
    va_end(ap);
}

static int check_options(const struct bench_serve_options *o, char *err, size_t errlen)
{
    if (o->n_levels < 1 || o->n_levels > BENCH_MAX_LEVELS)
        return err_set(err, errlen, PAGODA_EINVAL, "between 1 and %d concurrency levels",
                       BENCH_MAX_LEVELS);
    for (int i = 0; i < o->n_levels; i++)
        if (o->concurrency[i] < 1 || o->concurrency[i] > 4096)
            return err_set(err, errlen, PAGODA_EINVAL, "concurrency must be in 1..4096");
    if (o->input_len < 1 || o->input_len > 1000000 || o->output_len < 1 ||
        o->output_len > 1000000)
        return err_set(err, errlen, PAGODA_EINVAL, "lengths must be in 1..1000000");
    if (o->requests < 0 || o->requests > 10000000)
        return err_set(err, errlen, PAGODA_EINVAL, "requests must be in 1..10000000");
    if (!(o->duration_s >= 0 && o->duration_s <= 86400) || !(o->rate >= 0 && o->rate <= 1e6) ||
        !(o->timeout_s > 0 && o->timeout_s <= 86400))
        return err_set(err, errlen, PAGODA_EINVAL, "duration, rate or timeout out of range");
    if (o->requests > 0 && o->duration_s > 0)
        return err_set(err, errlen, PAGODA_EINVAL, "give --requests or --duration, not both");
    return 0;
}

int bench_serve_run(const struct bench_serve_options *o, struct bench_report *r, char *err,
                    size_t errlen)
{
    memset(r, 0, sizeof *r);
    int rc = check_options(o, err, errlen);
    if (rc)
        return rc;
    struct run run = {0};
    run.o = o;
    run.rep = r;
    r->n_servers = o->url2 ? 2 : 1;
    const char *urls[2] = {o->url, o->url2};
    for (int s = 0; s < r->n_servers; s++) {
        char b[sizeof run.base[0]];
        if ((rc = base_url(urls[s], b, sizeof b, err, errlen)))
            return rc;
        memcpy(run.base[s], b, sizeof b);
        snprintf(run.endpoint[s], sizeof run.endpoint[s], "%s/v1/%s", b,
                 o->chat ? "chat/completions" : "completions");
        snprintf(r->servers[s].url, sizeof r->servers[s].url, "%s", b);
    }
    snprintf(r->endpoint, sizeof r->endpoint, "%s", o->chat ? "chat/completions" : "completions");
    r->input_len = o->input_len;
    r->output_len = o->output_len;
    r->requests = o->requests;
    r->duration_s = o->duration_s;
    r->rate = o->rate;
    r->seed = o->seed;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return err_set(err, errlen, PAGODA_EIO, "libcurl could not start");
    struct prompt_src src = {0};
    src.o = o;
    src.words_per_token = 1.0;
    struct prompt_set set = {0};
    set.src = &src;

    struct curl_slist *h = NULL, *h2;
    char auth[600];
    const char *hdr[] = {"Content-Type: application/json", "Accept: text/event-stream",
                         "Expect:"};
    for (size_t i = 0; i < sizeof hdr / sizeof hdr[0]; i++) {
        if (!(h2 = curl_slist_append(h, hdr[i])))
            goto oom;
        h = h2;
    }
    if (o->api_key) {
        if (strlen(o->api_key) > 500 || strpbrk(o->api_key, "\r\n")) {
            rc = err_set(err, errlen, PAGODA_EINVAL, "bad API key");
            goto out;
        }
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", o->api_key);
        if (!(h2 = curl_slist_append(h, auth)))
            goto oom;
        h = h2;
    }
    run.hdrs = h;

    for (int s = 0; s < r->n_servers; s++) {
        if (o->model) {
            snprintf(r->servers[s].model, sizeof r->servers[s].model, "%s", o->model);
        } else if (probe_model(run.base[s], h, r->servers[s].model,
                               sizeof r->servers[s].model)) {
            add_note(r, "%s: no model from /v1/models; requests name none", run.base[s]);
        }
    }

    if (o->dataset) {
        if ((rc = dataset_load(&src, err, errlen)))
            goto out;
        snprintf(r->prompts, sizeof r->prompts, "dataset %s (%zu prompts; lengths %s)",
                 o->dataset, src.n_lines, o->tok ? "by --tokenizer" : "estimated");
    } else {
        if (words_init(&src))
            goto oom;
        if (!o->tok) {
            /* Calibrate the word count once with the server's /tokenize. */
            struct rng g;
            rng_seed(&g, o->seed + 12345);
            struct buf b = {0};
            size_t nw = (size_t)o->input_len;
            if (words_text(&src, &g, nw, &b)) {
                free(b.p);
                goto oom;
            }
            long long n = probe_tokenize(run.base[0], r->servers[0].model, h, b.p);
            free(b.p);
            if (n > 0) {
                src.words_per_token = (double)nw / (double)n;
                snprintf(r->prompts, sizeof r->prompts,
                         "synthetic, ~%d tokens (word count calibrated by the server's "
                         "/tokenize: %.3f words/token)",
                         o->input_len, src.words_per_token);
            } else {
                snprintf(r->prompts, sizeof r->prompts,
                         "synthetic, ~%d tokens (approximate: one word taken as one token; "
                         "give --tokenizer for exact lengths)",
                         o->input_len);
            }
        }
    }

    long long base = 0;
    for (int li = 0; li < o->n_levels; li++) {
        set.base = base;
        for (int s = 0; s < r->n_servers; s++) {
            struct bench_level *lv = &r->servers[s].levels[li];
            if ((rc = run_level(&run, s, li, &set, lv, err, errlen)))
                goto out;
            r->servers[s].n_levels = li + 1;
            if (o->stop && *o->stop)
                break;
        }
        base += (long long)set.used; /* the next level gets new prompts */
        prompt_set_free(&set);
        if (o->stop && *o->stop) {
            r->interrupted = 1;
            break;
        }
    }
    if (!o->dataset && o->tok)
        snprintf(r->prompts, sizeof r->prompts,
                 "synthetic, %d tokens by --tokenizer (%lld exact, %lld closest possible)",
                 o->input_len, src.n_exact, src.n_approx);
    goto out;
oom:
    rc = err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
out:
    prompt_set_free(&set);
    prompt_src_free(&src);
    curl_slist_free_all(h);
    curl_global_cleanup();
    return rc;
}
