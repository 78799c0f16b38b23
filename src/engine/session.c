/* session.c: single-sequence prefill and generation (see session.h). */
#include "engine/session.h"

#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "engine/stop.h"
#include "ops/types.h"

#define SESSION_CHUNK 256 /* prompt tokens per forward pass */
#define SESSION_BLOCK 16

struct session {
    const struct model *m;
    const struct tokenizer *tok;
    struct pool *pool;
    struct fwd_ctx *fc;
    struct kv_store kv;
    int32_t *blocks;
    int n_ctx;
    int32_t *tokens; /* [n_ctx] */
    int n_past;
    int32_t pos[SESSION_CHUNK];
    int32_t seq[SESSION_CHUNK];
    float *logits;   /* [n_vocab] of the last token fed */
    bool have_logits;
    bool has_pending;   /* a generated token not yet run through the model */
    int32_t pending;
    char *text;
    size_t text_len, text_cap;
};

void session_free(struct session *s)
{
    if (!s)
        return;
    fwd_ctx_free(s->fc);
    pool_destroy(s->pool);
    free(s->kv.data);
    free(s->blocks);
    free(s->tokens);
    free(s->logits);
    free(s->text);
    free(s);
}

int session_create(const struct model *m, const struct tokenizer *tok, int n_ctx, int n_threads,
                   struct session **out, char *err, size_t errlen)
{
    *out = NULL;
    if (n_ctx < 1)
        return err_set(err, errlen, PAGODA_EINVAL, "context must be at least 1 token");
    struct session *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    s->m = m;
    s->tok = tok;
    s->n_ctx = n_ctx;
    const struct model_hparams *hp = &m->hp;
    s->pool = pool_create(n_threads, err, errlen);
    if (!s->pool) {
        session_free(s);
        return PAGODA_ENOMEM;
    }
    s->fc = fwd_ctx_create(m, s->pool, SESSION_CHUNK, n_ctx, err, errlen);
    if (!s->fc) {
        session_free(s);
        return PAGODA_ENOMEM;
    }
    int rc = kv_store_layout(&s->kv, hp->n_layer, hp->n_head_kv, hp->head_dim, SESSION_BLOCK,
                             PG_TYPE_F16);
    if (rc) {
        session_free(s);
        return err_set(err, errlen, rc, "cannot lay out the KV cache");
    }
    s->kv.n_blocks = (n_ctx + SESSION_BLOCK - 1) / SESSION_BLOCK;
    s->kv.data = malloc(s->kv.block_bytes * (size_t)s->kv.n_blocks);
    s->blocks = malloc(sizeof(int32_t) * (size_t)s->kv.n_blocks);
    s->tokens = malloc(sizeof(int32_t) * (size_t)n_ctx);
    s->logits = malloc(sizeof(float) * (size_t)hp->n_vocab);
    if (!s->kv.data || !s->blocks || !s->tokens || !s->logits) {
        size_t mib = (s->kv.block_bytes * (size_t)s->kv.n_blocks) >> 20;
        session_free(s);
        return err_set(err, errlen, PAGODA_ENOMEM,
                       "out of memory for a context of %d tokens (%zu MiB of KV cache)", n_ctx, mib);
    }
    for (int64_t i = 0; i < s->kv.n_blocks; i++)
        s->blocks[i] = (int32_t)i;
    *out = s;
    return 0;
}

int session_n_ctx(const struct session *s) { return s->n_ctx; }
int session_n_past(const struct session *s) { return s->n_past; }
int32_t session_pending_token(const struct session *s) { return s->has_pending ? s->pending : -1; }
const int32_t *session_tokens(const struct session *s) { return s->tokens; }

static int feed_tokens(struct session *s, const int32_t *tokens, int n, char *err, size_t errlen);

int session_feed(struct session *s, const int32_t *tokens, int n, char *err, size_t errlen)
{
    if (n < 0)
        return err_set(err, errlen, PAGODA_EINVAL, "negative token count");
    if (!s->has_pending)
        return feed_tokens(s, tokens, n, err, errlen);
    /* The last generated token goes first: its K/V were never computed. */
    int32_t *all = malloc(sizeof(int32_t) * ((size_t)n + 1));
    if (!all)
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    all[0] = s->pending;
    memcpy(all + 1, tokens, sizeof(int32_t) * (size_t)n);
    int rc = feed_tokens(s, all, n + 1, err, errlen);
    if (rc == 0)
        s->has_pending = false;
    free(all);
    return rc;
}

static int feed_tokens(struct session *s, const int32_t *tokens, int n, char *err, size_t errlen)
{
    if (n < 0 || n > s->n_ctx - s->n_past)
        return err_set(err, errlen, PAGODA_ERANGE,
                       "%d more tokens do not fit: %d of the context's %d are used", n, s->n_past,
                       s->n_ctx);
    const int32_t *tables[1] = {s->blocks};
    for (int done = 0; done < n;) {
        int c = n - done < SESSION_CHUNK ? n - done : SESSION_CHUNK;
        for (int i = 0; i < c; i++) {
            s->tokens[s->n_past + i] = tokens[done + i];
            s->pos[i] = s->n_past + i;
            s->seq[i] = 0;
        }
        int32_t last = c - 1;
        bool final = done + c == n;
        struct fwd_batch b = {c, s->tokens + s->n_past, s->pos, s->seq, tables, final ? 1 : 0, &last};
        int rc = model_forward(s->m, s->fc, &s->kv, &b, s->logits, err, errlen);
        if (rc)
            return rc;
        s->n_past += c;
        done += c;
        s->have_logits = true;
    }
    return 0;
}

int session_sync(struct session *s, const int32_t *tokens, int n, char *err, size_t errlen)
{
    if (n < 1)
        return err_set(err, errlen, PAGODA_EINVAL, "nothing to feed");
    int held = s->n_past + (s->has_pending ? 1 : 0);
    int common = 0;
    while (common < held && common < n) {
        int32_t t = common < s->n_past ? s->tokens[common] : s->pending;
        if (t != tokens[common])
            break;
        common++;
    }
    if (common >= n)
        common = n - 1; /* re-run the last token to get its logits */
    if (common > s->n_past)
        common = s->n_past; /* the pending token has no K/V yet */
    s->n_past = common;
    s->has_pending = false;
    s->have_logits = false;
    return feed_tokens(s, tokens + common, n - common, err, errlen);
}

static int text_reserve(struct session *s, size_t more)
{
    if (s->text_len + more + 1 <= s->text_cap)
        return 0;
    size_t cap = (s->text_len + more + 1) * 2;
    char *t = realloc(s->text, cap);
    if (!t)
        return -1;
    s->text = t;
    s->text_cap = cap;
    return 0;
}

int session_generate(struct session *s, struct sampler *smp, const struct gen_params *p,
                     struct gen_result *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    if (!s->have_logits)
        return err_set(err, errlen, PAGODA_EINVAL, "nothing was fed to generate from");
    struct tokenizer_stream *ts;
    if (tokenizer_stream_create(s->tok, false, s->n_past == 1, &ts))
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    s->text_len = 0;
    if (text_reserve(s, 64)) {
        tokenizer_stream_free(ts);
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    }
    s->text[0] = '\0';
    size_t shown = 0;
    const char *finish = "length";
    const int32_t *tables[1] = {s->blocks};
    int rc = 0;
    double t0 = clock_now();
    bool stopped = false;
    while (r->n_tokens < p->max_tokens) {
        if (p->cancel && *p->cancel) {
            finish = "cancelled";
            break;
        }
        if (s->n_past >= s->n_ctx) {
            finish = "length";
            break;
        }
        int32_t next = sampler_sample(smp, s->logits, s->tokens, s->n_past);
        r->n_tokens++;
        if (!p->ignore_eos && tokenizer_is_eog(s->tok, next)) {
            finish = "stop";
            stopped = true; /* the end token stays in the context for a next turn */
        }
        if (!stopped) {
            const char *piece;
            size_t plen;
            if (tokenizer_stream_push(ts, next, &piece, &plen) == 0 && plen) {
                if (text_reserve(s, plen)) {
                    rc = err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
                    break;
                }
                memcpy(s->text + s->text_len, piece, plen);
                s->text_len += plen;
                s->text[s->text_len] = '\0';
            }
            bool hit;
            size_t safe = stop_scan(s->text, &s->text_len, shown, p->stops, p->n_stops, &hit);
            if (safe > shown && p->on_text && p->on_text(p->user, s->text + shown, safe - shown))
                finish = "cancelled", stopped = true;
            shown = safe > shown ? safe : shown;
            if (hit)
                finish = "stop", stopped = true;
        }
        /* Feed the token so the cache holds everything generated. */
        int32_t pos = s->n_past, zero = 0;
        s->tokens[pos] = next;
        if (stopped || r->n_tokens == p->max_tokens) {
            /* Its K/V are not needed now: the next feed runs it first. */
            s->pending = next;
            s->has_pending = true;
            s->have_logits = false;
            break;
        }
        struct fwd_batch b = {1, &s->tokens[pos], &pos, s->seq, tables, 1, &zero};
        s->seq[0] = 0;
        if ((rc = model_forward(s->m, s->fc, &s->kv, &b, s->logits, err, errlen)))
            break;
        s->n_past++;
    }
    if (rc == 0 && !stopped) {
        const char *piece;
        size_t plen;
        if (tokenizer_stream_flush(ts, &piece, &plen) == 0 && plen && text_reserve(s, plen) == 0) {
            memcpy(s->text + s->text_len, piece, plen);
            s->text_len += plen;
            s->text[s->text_len] = '\0';
        }
        bool hit;
        stop_scan(s->text, &s->text_len, shown, p->stops, p->n_stops, &hit);
        if (hit)
            finish = "stop";
        if (s->text_len > shown && p->on_text)
            p->on_text(p->user, s->text + shown, s->text_len - shown);
    }
    tokenizer_stream_free(ts);
    r->finish = finish;
    r->text = s->text;
    r->text_len = s->text_len;
    r->seconds = clock_now() - t0;
    return rc;
}
