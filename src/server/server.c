/*
 * server.c: `pagoda serve`'s HTTP layer on libmicrohttpd, one thread per
 * connection. It routes and authenticates requests, turns a completions or
 * chat body into engine requests (one per prompt and choice), and answers
 * either at once when every choice is done or as server-sent events.
 *
 * The engine's callback runs on its driver thread and only copies each event
 * into the connection's queue (mutex + condition variable); the connection's
 * own thread turns events into JSON. A streamed response blocks in its reader
 * until events arrive. When the client goes away, libmicrohttpd frees the
 * response: the free callback aborts the sequences still running, so their
 * KV blocks come back at once, and waits for their final events before the
 * connection state can go.
 */
#include "server/server.h"

#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/rng.h"
#include "server/server_json.h"
#include "server/server_metrics.h"

struct server {
    pagoda_engine *e;
    pagoda_model_info info;
    struct srv_options opt;
    char *host, *api_key, *alias, *chat_template;
    char bos_text[64];       /* the BOS token's text, "" when none */
    struct MHD_Daemon *d;
    int port;
    struct srv_metrics metrics;
    long long created;
    pthread_mutex_t mu;
    struct conn *live;       /* requests with engine work, for shutdown aborts */
    int active;              /* requests being handled */
    atomic_int stopping;
    uint64_t next_rid;
    uint64_t seed_state;
};

/* A copy of one engine event, queued for the connection's thread. */
struct ev {
    struct ev *next;
    int index;
    pagoda_event_type type;
    int32_t token;
    char *text;
    size_t text_len;
    float logprob;
    int n_top;
    int32_t top_tokens[PAGODA_MAX_TOP_LOGPROBS];
    float top_logprobs[PAGODA_MAX_TOP_LOGPROBS];
    pagoda_finish finish;
    pagoda_timings tm;
    int embedded;            /* the sub's own DONE slot, not malloc'd */
    char error[160];
};

struct conn;

struct sub {
    struct conn *c;
    int index;
    uint64_t id;
    int done;
    struct ev done_ev;       /* the final event needs no allocation, so it is never lost */
};

enum route {
    ROUTE_NONE,
    ROUTE_HEALTH,
    ROUTE_MODELS,
    ROUTE_MODEL,
    ROUTE_METRICS,
    ROUTE_COMPLETIONS,
    ROUTE_CHAT,
    ROUTE_TOKENIZE,
    ROUTE_DETOKENIZE,
};

struct conn {
    struct server *s;
    struct conn *live_next, *live_prev;
    int in_live;
    atomic_int refs;
    uint64_t rid;
    char method[16];
    char path[96];
    enum route route;
    double t0;
    int status;
    int answered;            /* a response is queued */
    char *body;
    size_t body_len, body_cap;
    int body_too_big;

    /* generation */
    struct srv_request req;
    int have_req;
    struct srv_meta meta;
    char id[48];
    struct sub *subs;
    int n_subs, n_done;
    struct srv_choice *choices;
    long long prompt_tokens, gen_tokens;
    char error[256];
    int any_abort;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct ev *head, *tail;

    /* streaming */
    int stream;
    int gone;                /* the client left before the end */
    int finished;            /* [DONE] is in out */
    char *out;
    size_t out_len, out_off, out_cap;
};

/* ---- small helpers ---- */

static char *dup_or_null(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static void server_log(struct server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void server_log(struct server *s, const char *fmt, ...)
{
    if (!s->opt.log)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "pagoda: serve: %s\n", line);
}

static uint64_t next_seed(struct server *s)
{
    /* a clock-seeded stream: unseeded requests (and response ids) all differ */
    pthread_mutex_lock(&s->mu);
    uint64_t z = rng_splitmix64(&s->seed_state);
    pthread_mutex_unlock(&s->mu);
    return z;
}

static int route_is_get(enum route r);

static enum MHD_Result send_body(struct conn *c, struct MHD_Connection *mc, int status,
                                 const char *type, char *body, const char *retry_after)
{
    if (!body) {
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                                  "\"param\":null,\"code\":null}}";
        status = 500;
        body = dup_or_null(oom);
        if (!body)
            return MHD_NO;
        type = "application/json";
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    if (retry_after)
        MHD_add_response_header(r, "Retry-After", retry_after);
    if (status == 405)
        MHD_add_response_header(r, "Allow",
                                route_is_get(c->route)
                                    ? "GET"
                                    : "POST");
    if (status == 401)
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    if (atomic_load(&c->s->stopping))
        MHD_add_response_header(r, "Connection", "close");
    enum MHD_Result ret = MHD_queue_response(mc, (unsigned)status, r);
    MHD_destroy_response(r);
    c->status = status;
    c->answered = 1;
    return ret;
}

static enum MHD_Result send_json(struct conn *c, struct MHD_Connection *mc, int status, char *body)
{
    return send_body(c, mc, status, "application/json", body, NULL);
}

static enum MHD_Result send_error(struct conn *c, struct MHD_Connection *mc, const struct srv_error *e)
{
    return send_body(c, mc, e->status, "application/json", srv_build_error(e),
                     e->status == 503 ? "1" : NULL);
}

static enum MHD_Result fail(struct conn *c, struct MHD_Connection *mc, int status, const char *param,
                            const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static enum MHD_Result fail(struct conn *c, struct MHD_Connection *mc, int status, const char *param,
                            const char *code, const char *fmt, ...)
{
    struct srv_error e;
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    srv_error_set(&e, status, param, code, "%s", msg);
    return send_error(c, mc, &e);
}

/* ---- connection lifetime ---- */

static void free_events(struct ev *ev)
{
    while (ev) {
        struct ev *n = ev->next;
        free(ev->text);
        if (!ev->embedded)
            free(ev);
        ev = n;
    }
}

static void conn_release(struct conn *c)
{
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    struct server *s = c->s;
    double ms = (pagoda_now() - c->t0) * 1000.0;
    if (c->status) {
        srv_metrics_request(&s->metrics, c->status);
        server_log(s, "req %" PRIu64 " %s %s %d prompt=%lld gen=%lld %.1fms%s", c->rid, c->method,
                   c->path, c->status, c->prompt_tokens, c->gen_tokens, ms,
                   c->gone ? " (client gone, aborted)" : "");
    }
    pthread_mutex_lock(&s->mu);
    if (c->in_live) {
        if (c->live_prev)
            c->live_prev->live_next = c->live_next;
        else
            s->live = c->live_next;
        if (c->live_next)
            c->live_next->live_prev = c->live_prev;
    }
    s->active--;
    pthread_mutex_unlock(&s->mu);
    free_events(c->head);
    if (c->have_req)
        srv_request_free(&c->req);
    for (int i = 0; c->choices && i < c->n_subs; i++)
        srv_choice_free(&c->choices[i]);
    free(c->choices);
    free(c->subs);
    free(c->body);
    free(c->out);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

/* Driver thread: copy and queue, nothing more. */
static void on_engine_event(void *user, const pagoda_event *e)
{
    struct sub *sb = user;
    struct conn *c = sb->c;
    struct ev *ev;
    if (e->type == PAGODA_EVENT_DONE) {
        ev = &sb->done_ev;
        memset(ev, 0, sizeof *ev);
        ev->embedded = 1;
        if (e->error)
            snprintf(ev->error, sizeof ev->error, "%s", e->error);
    } else if (!(ev = calloc(1, sizeof *ev))) {
        return; /* out of memory: this token's text is lost, the request goes on */
    }
    ev->index = sb->index;
    ev->type = e->type;
    ev->token = e->token;
    ev->logprob = e->logprob;
    ev->finish = e->finish;
    ev->tm = e->timings;
    if (e->type == PAGODA_EVENT_TOKEN && e->text_len) {
        ev->text = malloc(e->text_len);
        if (ev->text) {
            memcpy(ev->text, e->text, e->text_len);
            ev->text_len = e->text_len;
        }
    }
    int nt = e->n_top < 0 ? 0 : e->n_top > PAGODA_MAX_TOP_LOGPROBS ? PAGODA_MAX_TOP_LOGPROBS : e->n_top;
    if (nt && e->top_tokens && e->top_logprobs) {
        memcpy(ev->top_tokens, e->top_tokens, (size_t)nt * sizeof *ev->top_tokens);
        memcpy(ev->top_logprobs, e->top_logprobs, (size_t)nt * sizeof *ev->top_logprobs);
        ev->n_top = nt;
    }
    pthread_mutex_lock(&c->mu);
    if (c->tail)
        c->tail->next = ev;
    else
        c->head = ev;
    c->tail = ev;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Takes every queued event, waiting until there is one. */
static struct ev *take_events(struct conn *c)
{
    pthread_mutex_lock(&c->mu);
    while (!c->head)
        pthread_cond_wait(&c->cv, &c->mu);
    struct ev *ev = c->head;
    c->head = c->tail = NULL;
    pthread_mutex_unlock(&c->mu);
    return ev;
}

static void out_append(struct conn *c, const char *s, size_t n)
{
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 1024;
        while (cap < c->out_len + n)
            cap *= 2;
        char *o = realloc(c->out, cap);
        if (!o)
            return;
        c->out = o;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, s, n);
    c->out_len += n;
}

static void out_event(struct conn *c, char *json)
{
    if (!json)
        return;
    out_append(c, "data: ", 6);
    out_append(c, json, strlen(json));
    out_append(c, "\n\n", 2);
    free(json);
}

/* Fills lp with the texts of ev's token and alternatives; returns 0 or -1. */
static int event_logprob(struct server *s, const struct ev *ev, struct srv_logprob *lp)
{
    memset(lp, 0, sizeof *lp);
    lp->logprob = ev->logprob;
    char err[128];
    /* Pieces as they stand in the text, so that a client adding up the
     * tokens gets the text back (" upon", not "upon"). */
    if (pagoda_token_piece(s->e, ev->token, 1, &lp->text, &lp->text_len, err, sizeof err))
        return -1;
    lp->n_top = ev->n_top;
    for (int k = 0; k < ev->n_top; k++) {
        lp->top_logprob[k] = ev->top_logprobs[k];
        if (pagoda_token_piece(s->e, ev->top_tokens[k], 1, &lp->top_text[k], &lp->top_len[k], err,
                               sizeof err)) {
            lp->n_top = k;
            srv_logprob_free(lp);
            return -1;
        }
    }
    return 0;
}

static void account_done(struct conn *c, int index)
{
    if (!c->subs[index].done) {
        c->subs[index].done = 1;
        c->n_done++;
    }
}

/* Applies one event on the connection's thread. */
static void handle_event(struct conn *c, struct ev *ev)
{
    struct server *s = c->s;
    if (ev->index < 0 || ev->index >= c->n_subs)
        return;
    struct srv_choice *ch = &c->choices[ev->index];
    if (ev->type == PAGODA_EVENT_TOKEN) {
        struct srv_logprob lp;
        int have_lp = c->req.logprobs && event_logprob(s, ev, &lp) == 0;
        if (c->stream) {
            if (!c->gone && (ev->text_len || have_lp))
                out_event(c, srv_build_chunk(&c->meta, ev->index, ev->text ? ev->text : "",
                                             ev->text_len, 0, PAGODA_FINISH_NONE,
                                             have_lp ? &lp : NULL, have_lp ? 1 : 0));
        } else {
            if (ev->text_len)
                srv_choice_append(ch, ev->text, ev->text_len);
            if (have_lp)
                srv_choice_push_lp(ch, &lp);
        }
        if (have_lp)
            srv_logprob_free(&lp);
        return;
    }
    ch->finish = ev->finish;
    c->gen_tokens += ev->tm.n_generated;
    if (ev->finish == PAGODA_FINISH_ABORT)
        c->any_abort = 1;
    if (ev->finish == PAGODA_FINISH_ERROR && !c->error[0])
        snprintf(c->error, sizeof c->error, "%s", ev->error[0] ? ev->error : "generation failed");
    srv_metrics_sequence(&s->metrics, &ev->tm, ev->finish == PAGODA_FINISH_ABORT);
    account_done(c, ev->index);
    if (c->stream && !c->gone)
        out_event(c, srv_build_chunk(&c->meta, ev->index, NULL, 0, 0, ev->finish, NULL, 0));
}

static void handle_events(struct conn *c)
{
    struct ev *list = take_events(c);
    for (struct ev *ev = list; ev; ev = ev->next)
        handle_event(c, ev);
    free_events(list);
}

static void abort_all(struct conn *c)
{
    for (int i = 0; i < c->n_subs; i++)
        if (!c->subs[i].done)
            pagoda_abort(c->s->e, c->subs[i].id);
}

static struct srv_usage conn_usage(const struct conn *c)
{
    struct srv_usage u = {c->prompt_tokens, c->gen_tokens};
    return u;
}

/* ---- streaming ---- */

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct conn *c = cls;
    for (;;) {
        if (c->out_off < c->out_len) {
            size_t n = c->out_len - c->out_off;
            if (n > max)
                n = max;
            memcpy(buf, c->out + c->out_off, n);
            c->out_off += n;
            if (c->out_off == c->out_len)
                c->out_off = c->out_len = 0;
            return (ssize_t)n;
        }
        if (c->finished)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (c->n_done == c->n_subs) {
            if (c->req.include_usage) {
                struct srv_usage u = conn_usage(c);
                out_event(c, srv_build_usage_chunk(&c->meta, &u));
            }
            out_append(c, "data: [DONE]\n\n", 14);
            c->finished = 1;
            continue;
        }
        handle_events(c);
    }
}

static void stream_free(void *cls)
{
    struct conn *c = cls;
    if (c->n_done < c->n_subs) {
        c->gone = 1;
        abort_all(c);
        while (c->n_done < c->n_subs)
            handle_events(c);
    }
    conn_release(c);
}

/* ---- handlers ---- */

static int check_model(struct conn *c, struct MHD_Connection *mc, const char *model)
{
    struct server *s = c->s;
    if (!model || !model[0] || strcmp(model, s->alias) == 0 ||
        (s->info.name && strcmp(model, s->info.name) == 0))
        return 0;
    fail(c, mc, 404, "model", "model_not_found", "the model '%.128s' does not exist (this server has '%.128s')",
         model, s->alias);
    return -1;
}

/* Tokenizes the prompt(s); fills ids/n per prompt. Returns 0 or -1 after answering. */
static int build_prompts(struct conn *c, struct MHD_Connection *mc, int32_t ***ids, size_t **n,
                         size_t *n_prompts)
{
    struct server *s = c->s;
    char err[256];
    size_t np = c->req.chat ? 1 : c->req.n_prompts;
    *ids = calloc(np, sizeof **ids);
    *n = calloc(np, sizeof **n);
    *n_prompts = np;
    if (!*ids || !*n) {
        fail(c, mc, 500, NULL, NULL, "out of memory");
        return -1;
    }
    if (c->req.chat) {
        char *text = NULL;
        size_t len = 0;
        int rc = pagoda_chat_prompt(s->e, s->chat_template, c->req.msgs, c->req.n_msgs, 1, &text,
                                    &len, err, sizeof err);
        if (rc) {
            fail(c, mc, 400, "messages", NULL, "%s%s", err,
                 rc == PAGODA_EUNSUPPORTED && !s->chat_template ? " (the server can be given a chat template)" : "");
            return -1;
        }
        /* A template that writes BOS itself must not get a second one. */
        size_t bl = strlen(s->bos_text);
        int add_bos = !(bl && len >= bl && memcmp(text, s->bos_text, bl) == 0);
        rc = pagoda_tokenize(s->e, text, len, add_bos, 1, &(*ids)[0], &(*n)[0], err, sizeof err);
        free(text);
        if (rc) {
            fail(c, mc, 400, "messages", NULL, "%s", err);
            return -1;
        }
    } else {
        for (size_t i = 0; i < np; i++) {
            const struct srv_prompt *p = &c->req.prompts[i];
            if (p->ids) {
                (*ids)[i] = malloc(p->n_ids * sizeof(int32_t));
                if (!(*ids)[i]) {
                    fail(c, mc, 500, NULL, NULL, "out of memory");
                    return -1;
                }
                memcpy((*ids)[i], p->ids, p->n_ids * sizeof(int32_t));
                (*n)[i] = p->n_ids;
            } else if (pagoda_tokenize(s->e, p->text, strlen(p->text), 1, 1, &(*ids)[i], &(*n)[i],
                                       err, sizeof err)) {
                fail(c, mc, 400, "prompt", NULL, "%s", err);
                return -1;
            }
        }
    }
    for (size_t i = 0; i < np; i++) {
        const char *param = c->req.chat ? "messages" : "prompt";
        if ((*n)[i] == 0) {
            fail(c, mc, 400, param, NULL, "the prompt has no tokens");
            return -1;
        }
        if ((*n)[i] >= (size_t)s->info.n_ctx) {
            fail(c, mc, 400, param, "context_length_exceeded",
                 "the prompt has %zu tokens but the context holds %d (and needs room for one more)",
                 (*n)[i], (int)s->info.n_ctx);
            return -1;
        }
    }
    return 0;
}

static void free_prompts(int32_t **ids, size_t *n, size_t np)
{
    for (size_t i = 0; ids && i < np; i++)
        free(ids[i]);
    free(ids);
    free(n);
}

static enum MHD_Result handle_generate(struct conn *c, struct MHD_Connection *mc)
{
    struct server *s = c->s;
    struct srv_error e;
    if (srv_parse_request(c->route == ROUTE_CHAT, c->body ? c->body : "", c->body_len,
                          s->info.n_vocab, &c->req, &e))
        return send_error(c, mc, &e);
    c->have_req = 1;
    if (check_model(c, mc, c->req.model))
        return MHD_YES;
    int32_t **ids = NULL;
    size_t *n = NULL, np = 0;
    if (build_prompts(c, mc, &ids, &n, &np)) {
        free_prompts(ids, n, np);
        return MHD_YES;
    }
    c->n_subs = (int)np * c->req.n;
    c->subs = calloc((size_t)c->n_subs, sizeof *c->subs);
    c->choices = calloc((size_t)c->n_subs, sizeof *c->choices);
    if (!c->subs || !c->choices) {
        free_prompts(ids, n, np);
        c->n_subs = 0;
        return fail(c, mc, 500, NULL, NULL, "out of memory");
    }
    for (size_t i = 0; i < np; i++)
        c->prompt_tokens += (long long)n[i];

    pthread_mutex_lock(&s->mu);
    uint64_t rid = c->rid;
    c->in_live = 1;
    c->live_next = s->live;
    if (s->live)
        s->live->live_prev = c;
    s->live = c;
    pthread_mutex_unlock(&s->mu);
    snprintf(c->id, sizeof c->id, "%s-%016" PRIx64 "%04" PRIx64, c->req.chat ? "chatcmpl" : "cmpl",
             next_seed(s), rid & 0xFFFF);
    c->meta.chat = c->req.chat;
    c->meta.id = c->id;
    c->meta.created = (long long)time(NULL);
    c->meta.model = s->alias;
    c->meta.logprobs = c->req.logprobs;
    c->stream = c->req.stream;

    int submitted = 0, rc = 0;
    char err[256] = "";
    uint64_t base_seed = c->req.has_seed ? c->req.sampling.seed : 0;
    for (int k = 0; k < c->n_subs; k++) {
        size_t pi = (size_t)(k / c->req.n);
        int choice = k % c->req.n;
        struct sub *sb = &c->subs[k];
        sb->c = c;
        sb->index = k;
        pagoda_request r;
        memset(&r, 0, sizeof r);
        r.prompt = ids[pi];
        r.n_prompt = n[pi];
        int room = s->info.n_ctx - (int)n[pi];
        int want = c->req.max_tokens > 0 ? c->req.max_tokens : c->req.chat ? room : 16;
        r.max_tokens = want < room ? want : room;
        r.sampling = c->req.sampling;
        r.sampling.seed = c->req.has_seed ? base_seed + (uint64_t)choice : next_seed(s);
        for (int j = 0; j < c->req.n_stop; j++)
            r.stop[j] = c->req.stop[j];
        r.n_stop = c->req.n_stop;
        r.ignore_eos = c->req.ignore_eos;
        r.logprobs = c->req.logprobs;
        r.top_logprobs = c->req.top_logprobs;
        r.callback = on_engine_event;
        r.user = sb;
        if (atomic_load(&s->stopping))
            rc = PAGODA_ESHUTDOWN;
        else
            rc = pagoda_submit(s->e, &r, &sb->id, err, sizeof err);
        if (rc)
            break;
        submitted++;
    }
    free_prompts(ids, n, np);
    if (rc) {
        /* Take back what went in; the rest never gets a callback. */
        for (int k = submitted; k < c->n_subs; k++)
            c->subs[k].done = 1;
        c->n_done = c->n_subs - submitted;
        abort_all(c);
        while (c->n_done < c->n_subs)
            handle_events(c);
        c->gen_tokens = 0;
        switch (rc) {
        case PAGODA_EBUSY:
            return fail(c, mc, 503, NULL, "server_busy", "the server is busy; retry later (%s)", err);
        case PAGODA_ESHUTDOWN:
            return fail(c, mc, 503, NULL, "shutting_down", "the server is shutting down");
        case PAGODA_ERANGE:
            return fail(c, mc, 400, c->req.chat ? "messages" : "prompt", "context_length_exceeded",
                        "%s", err);
        case PAGODA_EINVAL:
            return fail(c, mc, 400, NULL, NULL, "%s", err);
        default:
            return fail(c, mc, 500, NULL, NULL, "%s", err);
        }
    }

    if (c->stream) {
        if (c->req.chat)
            for (int k = 0; k < c->n_subs; k++)
                out_event(c, srv_build_chunk(&c->meta, k, "", 0, 1, PAGODA_FINISH_NONE, NULL, 0));
        atomic_fetch_add(&c->refs, 1); /* held by the response until stream_free */
        struct MHD_Response *r =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, c, stream_free);
        if (!r) {
            stream_free(c);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        MHD_add_response_header(r, "X-Accel-Buffering", "no");
        enum MHD_Result ret = MHD_queue_response(mc, 200, r);
        MHD_destroy_response(r);
        c->status = 200;
        c->answered = 1;
        return ret;
    }

    while (c->n_done < c->n_subs)
        handle_events(c);
    if (c->error[0])
        return fail(c, mc, 500, NULL, NULL, "%s", c->error);
    if (c->any_abort)
        return fail(c, mc, 503, NULL, "shutting_down", "the request was aborted: the server is stopping");
    struct srv_usage u = conn_usage(c);
    return send_json(c, mc, 200, srv_build_response(&c->meta, c->choices, (size_t)c->n_subs, &u));
}

static enum MHD_Result handle_models(struct conn *c, struct MHD_Connection *mc)
{
    if (c->route == ROUTE_MODEL) {
        const char *id = c->path + strlen("/v1/models/");
        if (strcmp(id, c->s->alias) != 0)
            return fail(c, mc, 404, "model", "model_not_found", "the model '%.128s' does not exist", id);
        return send_json(c, mc, 200, srv_build_model(c->s->alias, c->s->created, &c->s->info));
    }
    return send_json(c, mc, 200, srv_build_models(c->s->alias, c->s->created, &c->s->info));
}

static enum MHD_Result handle_tokenize(struct conn *c, struct MHD_Connection *mc)
{
    struct server *s = c->s;
    struct srv_error e;
    char *text;
    int add_special, parse_special;
    if (srv_parse_tokenize(c->body ? c->body : "", c->body_len, &text, &add_special, &parse_special, &e))
        return send_error(c, mc, &e);
    int32_t *ids = NULL;
    size_t n = 0;
    char err[256];
    int rc = pagoda_tokenize(s->e, text, strlen(text), add_special, parse_special, &ids, &n, err,
                             sizeof err);
    free(text);
    if (rc)
        return fail(c, mc, 400, "content", NULL, "%s", err);
    char *body = srv_build_tokens(ids, n);
    free(ids);
    return send_json(c, mc, 200, body);
}

static enum MHD_Result handle_detokenize(struct conn *c, struct MHD_Connection *mc)
{
    struct server *s = c->s;
    struct srv_error e;
    int32_t *ids;
    size_t n;
    if (srv_parse_detokenize(c->body ? c->body : "", c->body_len, s->info.n_vocab, &ids, &n, &e))
        return send_error(c, mc, &e);
    char *text = NULL, err[256];
    size_t len = 0;
    int rc = n ? pagoda_detokenize(s->e, ids, n, 0, &text, &len, err, sizeof err) : 0;
    free(ids);
    if (rc)
        return fail(c, mc, 400, "tokens", NULL, "%s", err);
    char *body = srv_build_content(text ? text : "", len);
    free(text);
    return send_json(c, mc, 200, body);
}

static enum MHD_Result handle_metrics(struct conn *c, struct MHD_Connection *mc)
{
    pagoda_stats st;
    pagoda_engine_stats(c->s->e, &st);
    char *body = srv_metrics_render(&c->s->metrics, &st);
    if (!body)
        return send_json(c, mc, 500, NULL);
    return send_body(c, mc, 200, "text/plain; version=0.0.4; charset=utf-8", body, NULL);
}

static enum route find_route(const char *url)
{
    static const struct {
        const char *path;
        enum route r;
    } routes[] = {
        {"/health", ROUTE_HEALTH},         {"/v1/health", ROUTE_HEALTH},
        {"/v1/models", ROUTE_MODELS},      {"/metrics", ROUTE_METRICS},
        {"/v1/completions", ROUTE_COMPLETIONS}, {"/v1/chat/completions", ROUTE_CHAT},
        {"/tokenize", ROUTE_TOKENIZE},     {"/detokenize", ROUTE_DETOKENIZE},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(url, routes[i].path) == 0)
            return routes[i].r;
    if (strncmp(url, "/v1/models/", 11) == 0 && url[11])
        return ROUTE_MODEL;
    return ROUTE_NONE;
}

static int route_is_get(enum route r)
{
    return r == ROUTE_HEALTH || r == ROUTE_MODELS || r == ROUTE_MODEL || r == ROUTE_METRICS;
}

/* Constant-time comparison so the key cannot be guessed byte by byte from timing. */
static int key_matches(const char *given, const char *want)
{
    size_t gl = strlen(given), wl = strlen(want);
    unsigned char diff = (unsigned char)(gl != wl);
    for (size_t i = 0; i < wl; i++)
        diff |= (unsigned char)(want[i] ^ (i < gl ? given[i] : 0));
    return diff == 0;
}

static int authorized(struct server *s, struct MHD_Connection *mc)
{
    if (!s->api_key)
        return 1;
    const char *h = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return 0;
    h += 7;
    while (*h == ' ')
        h++;
    return key_matches(h, s->api_key);
}

/* First call for a request: routing, method, key and size checks, before any body. */
static enum MHD_Result precheck(struct conn *c, struct MHD_Connection *mc, const char *method)
{
    struct server *s = c->s;
    if (atomic_load(&s->stopping))
        return fail(c, mc, 503, NULL, "shutting_down", "the server is shutting down");
    if (c->route == ROUTE_NONE)
        return fail(c, mc, 404, NULL, "not_found", "no such endpoint: %s %.80s", method, c->path);
    int want_get = route_is_get(c->route);
    int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (want_get ? !is_get : strcmp(method, "POST") != 0)
        return fail(c, mc, 405, NULL, "method_not_allowed", "%s is not allowed on %.80s (use %s)",
                    method, c->path, want_get ? "GET" : "POST");
    if (c->route != ROUTE_HEALTH && !authorized(s, mc))
        return fail(c, mc, 401, NULL, "invalid_api_key", "a valid API key is required (Authorization: Bearer KEY)");
    const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(cl, &end, 10);
        if (errno || *end || v > s->opt.max_body)
            return fail(c, mc, 413, NULL, "request_too_large", "the body is larger than %zu bytes",
                        s->opt.max_body);
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct server *s = cls;
    struct conn *c = *con_cls;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c)
            return MHD_NO;
        c->s = s;
        atomic_init(&c->refs, 1);
        pthread_mutex_init(&c->mu, NULL);
        pthread_cond_init(&c->cv, NULL);
        c->t0 = pagoda_now();
        snprintf(c->method, sizeof c->method, "%s", method);
        snprintf(c->path, sizeof c->path, "%s", url);
        c->route = find_route(url);
        pthread_mutex_lock(&s->mu);
        c->rid = ++s->next_rid;
        s->active++;
        pthread_mutex_unlock(&s->mu);
        *con_cls = c;
        return precheck(c, mc, method);
    }
    if (c->answered) {
        *upload_data_size = 0; /* an early error: drop the body */
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (c->body_too_big || c->body_len + n > s->opt.max_body) {
            c->body_too_big = 1;
            return MHD_YES;
        }
        if (c->body_len + n + 1 > c->body_cap) {
            size_t cap = c->body_cap ? c->body_cap : 4096;
            while (cap < c->body_len + n + 1)
                cap *= 2;
            char *b = realloc(c->body, cap);
            if (!b)
                return MHD_NO;
            c->body = b;
            c->body_cap = cap;
        }
        memcpy(c->body + c->body_len, upload_data, n);
        c->body_len += n;
        c->body[c->body_len] = '\0';
        return MHD_YES;
    }
    if (c->body_too_big)
        return fail(c, mc, 413, NULL, "request_too_large", "the body is larger than %zu bytes",
                    s->opt.max_body);
    switch (c->route) {
    case ROUTE_HEALTH:
        return send_json(c, mc, 200, dup_or_null("{\"status\":\"ok\"}"));
    case ROUTE_MODELS:
    case ROUTE_MODEL:
        return handle_models(c, mc);
    case ROUTE_METRICS:
        return handle_metrics(c, mc);
    case ROUTE_TOKENIZE:
        return handle_tokenize(c, mc);
    case ROUTE_DETOKENIZE:
        return handle_detokenize(c, mc);
    case ROUTE_COMPLETIONS:
    case ROUTE_CHAT:
        return handle_generate(c, mc);
    default:
        return fail(c, mc, 404, NULL, "not_found", "no such endpoint");
    }
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)mc;
    (void)toe;
    struct conn *c = *con_cls;
    *con_cls = NULL;
    if (c)
        conn_release(c);
}

/* ---- lifetime ---- */

int server_start(pagoda_engine *e, const struct srv_options *o, struct server **out, char *err,
                 size_t errlen)
{
    *out = NULL;
    if (!o->alias || !o->alias[0])
        return err_set(err, errlen, PAGODA_EINVAL, "the model needs a name (alias)");
    if (o->port < 0 || o->port > 65535)
        return err_set(err, errlen, PAGODA_EINVAL, "port %d is out of range", o->port);
    struct server *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    s->e = e;
    s->opt = *o;
    if (!s->opt.max_body)
        s->opt.max_body = 8u << 20;
    s->host = dup_or_null(o->host ? o->host : "127.0.0.1");
    s->alias = dup_or_null(o->alias);
    s->api_key = o->api_key && o->api_key[0] ? dup_or_null(o->api_key) : NULL;
    s->chat_template = dup_or_null(o->chat_template);
    pagoda_engine_model_info(e, &s->info);
    if (s->info.bos >= 0) {
        char *bt = NULL, tmp[64];
        size_t bl = 0;
        if (pagoda_detokenize(e, &s->info.bos, 1, 1, &bt, &bl, tmp, sizeof tmp) == 0 && bl < sizeof s->bos_text)
            memcpy(s->bos_text, bt, bl + 1);
        free(bt);
    }
    srv_metrics_init(&s->metrics);
    pthread_mutex_init(&s->mu, NULL);
    atomic_init(&s->stopping, 0);
    s->created = (long long)time(NULL);
    s->seed_state = (uint64_t)(pagoda_now() * 1e9) ^ ((uint64_t)getpid() << 32);

    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof port, "%d", o->port);
    int gai = s->host ? getaddrinfo(s->host, port, &hints, &ai) : EAI_MEMORY;
    if (gai || !ai) {
        err_set(err, errlen, PAGODA_EINVAL, "cannot use host '%s': %s", o->host ? o->host : "127.0.0.1",
                gai_strerror(gai));
        if (ai)
            freeaddrinfo(ai);
        server_stop(s, 0);
        return PAGODA_EINVAL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
                     MHD_USE_ITC;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_request, s,
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)512,
                            MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->d) {
        err_set(err, errlen, PAGODA_EIO, "cannot listen on %s:%d (%s)", s->host, o->port,
                errno ? strerror(errno) : "address in use?");
        server_stop(s, 0);
        return PAGODA_EIO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : o->port;
    *out = s;
    return 0;
}

int server_port(const struct server *s)
{
    return s->port;
}

void server_stop(struct server *s, double grace)
{
    if (!s)
        return;
    atomic_store(&s->stopping, 1);
    if (s->d) {
        MHD_socket fd = MHD_quiesce_daemon(s->d);
        if (fd != MHD_INVALID_SOCKET)
            close(fd);
        double t_end = pagoda_now() + grace;
        for (;;) {
            pthread_mutex_lock(&s->mu);
            int busy = s->live != NULL;
            pthread_mutex_unlock(&s->mu);
            if (!busy || pagoda_now() >= t_end)
                break;
            usleep(20000);
        }
        pthread_mutex_lock(&s->mu);
        int n_abort = 0;
        for (struct conn *c = s->live; c; c = c->live_next)
            for (int i = 0; i < c->n_subs; i++)
                if (pagoda_abort(s->e, c->subs[i].id) == 0)
                    n_abort++;
        pthread_mutex_unlock(&s->mu);
        if (n_abort)
            server_log(s, "aborted %d sequences still running after %.1fs", n_abort, grace);
        MHD_stop_daemon(s->d);
    }
    srv_metrics_destroy(&s->metrics);
    pthread_mutex_destroy(&s->mu);
    free(s->host);
    free(s->alias);
    free(s->api_key);
    free(s->chat_template);
    free(s);
}
