/*
 * server_json.c: OpenAI request bodies into struct srv_request (every field
 * type- and range-checked, unknown fields ignored) and the response, stream
 * chunk and error bodies back out, with cJSON. Text going out is made valid
 * UTF-8 first (a lone token can be part of a character), so strict clients
 * never see a broken string.
 */
#include "server/server_json.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int srv_error_set(struct srv_error *e, int status, const char *param, const char *code,
                  const char *fmt, ...)
{
    e->status = status;
    e->type = status == 401   ? "authentication_error"
              : status >= 500 ? "server_error"
                              : "invalid_request_error";
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

/* ---- field readers: each returns 0 when absent (or null), 1 when read, -1 on error ---- */

static int get_number(const cJSON *o, const char *key, double lo, double hi, double *out,
                      struct srv_error *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v))
        return srv_error_set(e, 400, key, NULL, "'%s' must be a number", key);
    double d = v->valuedouble;
    if (!isfinite(d) || d < lo || d > hi)
        return srv_error_set(e, 400, key, NULL, "'%s' must be between %g and %g", key, lo, hi);
    *out = d;
    return 1;
}

static int is_integer(const cJSON *v, double lo, double hi)
{
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble == floor(v->valuedouble) &&
           v->valuedouble >= lo && v->valuedouble <= hi;
}

static int get_int(const cJSON *o, const char *key, long long lo, long long hi, long long *out,
                   struct srv_error *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble != floor(v->valuedouble))
        return srv_error_set(e, 400, key, NULL, "'%s' must be an integer", key);
    if (v->valuedouble < (double)lo || v->valuedouble > (double)hi)
        return srv_error_set(e, 400, key, NULL, "'%s' must be between %lld and %lld", key, lo, hi);
    *out = (long long)v->valuedouble;
    return 1;
}

static int get_bool(const cJSON *o, const char *key, int *out, struct srv_error *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsBool(v))
        return srv_error_set(e, 400, key, NULL, "'%s' must be true or false", key);
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return 1;
}

/* Token ids: a non-empty array of integers in [0, n_vocab). */
static int read_ids(const cJSON *a, int32_t n_vocab, const char *param, int32_t **ids, size_t *n,
                    struct srv_error *e)
{
    int count = cJSON_GetArraySize(a);
    if (count <= 0)
        return srv_error_set(e, 400, param, NULL, "'%s' must not be empty", param);
    int32_t *v = malloc((size_t)count * sizeof *v);
    if (!v)
        return srv_error_set(e, 500, NULL, NULL, "out of memory");
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, a)
    {
        if (!is_integer(it, 0, (double)n_vocab - 1)) {
            free(v);
            return srv_error_set(e, 400, param, NULL,
                                 "'%s' must hold token ids from 0 to %d", param, (int)n_vocab - 1);
        }
        v[i++] = (int32_t)it->valuedouble;
    }
    *ids = v;
    *n = i;
    return 0;
}

static int parse_prompt(const cJSON *root, int32_t n_vocab, struct srv_request *r,
                        struct srv_error *e)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (!p || cJSON_IsNull(p))
        return srv_error_set(e, 400, "prompt", NULL, "'prompt' is required");
    if (cJSON_IsString(p)) {
        r->prompts = calloc(1, sizeof *r->prompts);
        if (!r->prompts || !(r->prompts[0].text = dup_str(p->valuestring)))
            return srv_error_set(e, 500, NULL, NULL, "out of memory");
        r->n_prompts = 1;
        return 0;
    }
    if (!cJSON_IsArray(p))
        return srv_error_set(e, 400, "prompt", NULL,
                             "'prompt' must be a string, a list of strings or token ids");
    int count = cJSON_GetArraySize(p);
    if (count == 0)
        return srv_error_set(e, 400, "prompt", NULL, "'prompt' must not be empty");
    const cJSON *first = p->child;
    if (cJSON_IsNumber(first)) {
        r->prompts = calloc(1, sizeof *r->prompts);
        if (!r->prompts)
            return srv_error_set(e, 500, NULL, NULL, "out of memory");
        r->n_prompts = 1;
        return read_ids(p, n_vocab, "prompt", &r->prompts[0].ids, &r->prompts[0].n_ids, e);
    }
    if (count > SRV_MAX_PROMPTS)
        return srv_error_set(e, 400, "prompt", NULL, "at most %d prompts in one request",
                             SRV_MAX_PROMPTS);
    int strings = cJSON_IsString(first);
    if (!strings && !cJSON_IsArray(first))
        return srv_error_set(e, 400, "prompt", NULL,
                             "'prompt' must be a string, a list of strings or token ids");
    r->prompts = calloc((size_t)count, sizeof *r->prompts);
    if (!r->prompts)
        return srv_error_set(e, 500, NULL, NULL, "out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, p)
    {
        struct srv_prompt *sp = &r->prompts[r->n_prompts];
        if (strings) {
            if (!cJSON_IsString(it))
                return srv_error_set(e, 400, "prompt", NULL, "'prompt' mixes strings and other types");
            if (!(sp->text = dup_str(it->valuestring)))
                return srv_error_set(e, 500, NULL, NULL, "out of memory");
        } else {
            if (!cJSON_IsArray(it))
                return srv_error_set(e, 400, "prompt", NULL, "'prompt' mixes token lists and other types");
            if (read_ids(it, n_vocab, "prompt", &sp->ids, &sp->n_ids, e))
                return -1;
        }
        r->n_prompts++;
    }
    return 0;
}

/* content: a string, null, or a list of {"type":"text","text":...} parts (joined). */
static int message_content(const cJSON *c, char **out, struct srv_error *e)
{
    if (!c || cJSON_IsNull(c)) {
        *out = dup_str("");
    } else if (cJSON_IsString(c)) {
        *out = dup_str(c->valuestring);
    } else if (cJSON_IsArray(c)) {
        size_t total = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, c)
        {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(it, "type");
            const cJSON *text = cJSON_GetObjectItemCaseSensitive(it, "text");
            if (!cJSON_IsObject(it) || !cJSON_IsString(type))
                return srv_error_set(e, 400, "messages", NULL,
                                     "each content part must be an object with a 'type'");
            if (strcmp(type->valuestring, "text") != 0)
                return srv_error_set(e, 400, "messages", NULL,
                                     "content parts of type '%.64s' are not supported",
                                     type->valuestring);
            if (!cJSON_IsString(text))
                return srv_error_set(e, 400, "messages", NULL, "a text part needs a string 'text'");
            total += strlen(text->valuestring);
        }
        char *s = malloc(total + 1);
        if (!s)
            return srv_error_set(e, 500, NULL, NULL, "out of memory");
        size_t at = 0;
        cJSON_ArrayForEach(it, c)
        {
            const char *t = cJSON_GetObjectItemCaseSensitive(it, "text")->valuestring;
            size_t l = strlen(t);
            memcpy(s + at, t, l);
            at += l;
        }
        s[at] = '\0';
        *out = s;
    } else {
        return srv_error_set(e, 400, "messages", NULL,
                             "message content must be a string or a list of text parts");
    }
    if (!*out)
        return srv_error_set(e, 500, NULL, NULL, "out of memory");
    return 0;
}

static int parse_messages(const cJSON *root, struct srv_request *r, struct srv_error *e)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!m || cJSON_IsNull(m))
        return srv_error_set(e, 400, "messages", NULL, "'messages' is required");
    if (!cJSON_IsArray(m))
        return srv_error_set(e, 400, "messages", NULL, "'messages' must be a list");
    int count = cJSON_GetArraySize(m);
    if (count == 0)
        return srv_error_set(e, 400, "messages", NULL, "'messages' must not be empty");
    if (count > SRV_MAX_MESSAGES)
        return srv_error_set(e, 400, "messages", NULL, "at most %d messages", SRV_MAX_MESSAGES);
    r->msgs = calloc((size_t)count, sizeof *r->msgs);
    if (!r->msgs)
        return srv_error_set(e, 500, NULL, NULL, "out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, m)
    {
        if (!cJSON_IsObject(it))
            return srv_error_set(e, 400, "messages", NULL, "each message must be an object");
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(it, "role");
        if (!cJSON_IsString(role))
            return srv_error_set(e, 400, "messages", NULL, "each message needs a string 'role'");
        const char *rs = role->valuestring;
        /* "developer" is the newer name of the system role. */
        if (strcmp(rs, "developer") == 0)
            rs = "system";
        if (strcmp(rs, "system") != 0 && strcmp(rs, "user") != 0 && strcmp(rs, "assistant") != 0)
            return srv_error_set(e, 400, "messages", NULL,
                                 "role '%.64s' is not supported (system, user, assistant)", rs);
        char *content = NULL;
        if (message_content(cJSON_GetObjectItemCaseSensitive(it, "content"), &content, e))
            return -1;
        pagoda_chat_message *pm = &r->msgs[r->n_msgs++];
        pm->content = content;
        if (!(pm->role = dup_str(rs)))
            return srv_error_set(e, 500, NULL, NULL, "out of memory");
    }
    return 0;
}

static int parse_stop(const cJSON *root, struct srv_request *r, struct srv_error *e)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (!s || cJSON_IsNull(s))
        return 0;
    const cJSON *one = NULL;
    if (cJSON_IsString(s)) {
        one = s;
    } else if (!cJSON_IsArray(s)) {
        return srv_error_set(e, 400, "stop", NULL, "'stop' must be a string or a list of strings");
    } else if (cJSON_GetArraySize(s) > PAGODA_MAX_STOPS) {
        return srv_error_set(e, 400, "stop", NULL, "at most %d stop strings", PAGODA_MAX_STOPS);
    }
    const cJSON *it = one ? one : s->child;
    for (; it; it = one ? NULL : it->next) {
        if (!cJSON_IsString(it))
            return srv_error_set(e, 400, "stop", NULL, "'stop' must be a string or a list of strings");
        size_t l = strlen(it->valuestring);
        if (l == 0 || l > SRV_MAX_STOP_LEN)
            return srv_error_set(e, 400, "stop", NULL, "stop strings must be 1 to %d bytes",
                                 SRV_MAX_STOP_LEN);
        if (!(r->stop[r->n_stop] = dup_str(it->valuestring)))
            return srv_error_set(e, 500, NULL, NULL, "out of memory");
        r->n_stop++;
    }
    return 0;
}

static int parse_logit_bias(const cJSON *root, int32_t n_vocab, struct srv_request *r,
                            struct srv_error *e)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "logit_bias");
    if (!b || cJSON_IsNull(b))
        return 0;
    if (!cJSON_IsObject(b))
        return srv_error_set(e, 400, "logit_bias", NULL,
                             "'logit_bias' must map token ids to numbers");
    int count = cJSON_GetArraySize(b);
    if (count > SRV_MAX_LOGIT_BIAS)
        return srv_error_set(e, 400, "logit_bias", NULL, "at most %d logit_bias entries",
                             SRV_MAX_LOGIT_BIAS);
    if (count == 0)
        return 0;
    r->bias = calloc((size_t)count, sizeof *r->bias);
    if (!r->bias)
        return srv_error_set(e, 500, NULL, NULL, "out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, b)
    {
        const char *k = it->string ? it->string : "";
        char *end;
        long long id = 0;
        int digits = k[0] >= '0' && k[0] <= '9' && strlen(k) <= 10;
        if (digits)
            id = strtoll(k, &end, 10);
        if (!digits || *end || id < 0 || id >= n_vocab)
            return srv_error_set(e, 400, "logit_bias", NULL,
                                 "logit_bias keys must be token ids from 0 to %d", (int)n_vocab - 1);
        if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || it->valuedouble < -100 ||
            it->valuedouble > 100)
            return srv_error_set(e, 400, "logit_bias", NULL,
                                 "logit_bias values must be numbers from -100 to 100");
        r->bias[r->n_bias].token = (int32_t)id;
        /* -100 is how OpenAI clients ban a token. */
        r->bias[r->n_bias].bias = it->valuedouble <= -100 ? -INFINITY : (float)it->valuedouble;
        r->n_bias++;
    }
    r->sampling.logit_bias = r->bias;
    r->sampling.n_logit_bias = r->n_bias;
    return 0;
}

static int parse_fields(const cJSON *root, int chat, int32_t n_vocab, struct srv_request *r,
                        struct srv_error *e)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (model && !cJSON_IsNull(model)) {
        if (!cJSON_IsString(model))
            return srv_error_set(e, 400, "model", NULL, "'model' must be a string");
        if (!(r->model = dup_str(model->valuestring)))
            return srv_error_set(e, 500, NULL, NULL, "out of memory");
    }
    if (chat ? parse_messages(root, r, e) : parse_prompt(root, n_vocab, r, e))
        return -1;

    long long iv;
    double dv;
    int rc;
    if ((rc = get_int(root, "max_tokens", 1, 1000000000, &iv, e)) < 0)
        return -1;
    if (rc)
        r->max_tokens = (int)iv;
    if ((rc = get_int(root, "max_completion_tokens", 1, 1000000000, &iv, e)) < 0)
        return -1;
    if (rc)
        r->max_tokens = (int)iv;
    if ((rc = get_number(root, "temperature", 0, 2, &dv, e)) < 0)
        return -1;
    if (rc)
        r->sampling.temperature = (float)dv;
    if ((rc = get_number(root, "top_p", 0, 1, &dv, e)) < 0)
        return -1;
    if (rc)
        r->sampling.top_p = (float)dv;
    if ((rc = get_int(root, "top_k", 0, 1000000000, &iv, e)) < 0)
        return -1;
    if (rc)
        r->sampling.top_k = (int)iv;
    if ((rc = get_number(root, "min_p", 0, 1, &dv, e)) < 0)
        return -1;
    if (rc)
        r->sampling.min_p = (float)dv;
    if ((rc = get_number(root, "presence_penalty", -2, 2, &dv, e)) < 0)
        return -1;
    if (rc)
        r->sampling.presence_penalty = (float)dv;
    if ((rc = get_number(root, "frequency_penalty", -2, 2, &dv, e)) < 0)
        return -1;
    if (rc)
        r->sampling.frequency_penalty = (float)dv;
    if ((rc = get_number(root, "repetition_penalty", 0.01, 10, &dv, e)) < 0)
        return -1;
    if (rc)
        r->sampling.repeat_penalty = (float)dv;
    /* Integers beyond 2^53 are not exact in JSON numbers as cJSON reads them. */
    if ((rc = get_int(root, "seed", -9007199254740991LL, 9007199254740991LL, &iv, e)) < 0)
        return -1;
    if (rc) {
        r->sampling.seed = (uint64_t)iv;
        r->has_seed = 1;
    }
    if ((rc = get_int(root, "n", 1, SRV_MAX_N, &iv, e)) < 0)
        return -1;
    if (rc)
        r->n = (int)iv;
    if (r->n * (long long)(chat ? 1 : r->n_prompts) > SRV_MAX_CHOICES)
        return srv_error_set(e, 400, "n", NULL, "at most %d choices in one request", SRV_MAX_CHOICES);
    if (get_bool(root, "stream", &r->stream, e) < 0 || get_bool(root, "ignore_eos", &r->ignore_eos, e) < 0)
        return -1;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so))
            return srv_error_set(e, 400, "stream_options", NULL, "'stream_options' must be an object");
        if (get_bool(so, "include_usage", &r->include_usage, e) < 0)
            return srv_error_set(e, 400, "stream_options", NULL,
                                 "'stream_options.include_usage' must be true or false");
    }
    if (chat) {
        if (get_bool(root, "logprobs", &r->logprobs, e) < 0)
            return -1;
        if ((rc = get_int(root, "top_logprobs", 0, PAGODA_MAX_TOP_LOGPROBS, &iv, e)) < 0)
            return -1;
        if (rc) {
            if (!r->logprobs)
                return srv_error_set(e, 400, "top_logprobs", NULL,
                                     "'top_logprobs' needs 'logprobs' set to true");
            r->top_logprobs = (int)iv;
        }
    } else {
        /* completions: logprobs is the number of alternatives to list. */
        if ((rc = get_int(root, "logprobs", 0, SRV_MAX_COMPLETIONS_LOGPROBS, &iv, e)) < 0)
            return -1;
        if (rc) {
            r->logprobs = 1;
            r->top_logprobs = (int)iv;
        }
        int echo = 0;
        if (get_bool(root, "echo", &echo, e) < 0)
            return -1;
        if (echo)
            return srv_error_set(e, 400, "echo", NULL, "'echo' is not supported");
        const cJSON *suffix = cJSON_GetObjectItemCaseSensitive(root, "suffix");
        if (suffix && !cJSON_IsNull(suffix))
            return srv_error_set(e, 400, "suffix", NULL, "'suffix' is not supported");
    }
    if (parse_stop(root, r, e) || parse_logit_bias(root, n_vocab, r, e))
        return -1;
    return 0;
}

int srv_parse_request(int chat, const char *body, size_t len, int32_t n_vocab,
                      struct srv_request *r, struct srv_error *e)
{
    memset(r, 0, sizeof *r);
    r->chat = chat;
    r->n = 1;
    pagoda_sampling_default(&r->sampling);
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root)
        return srv_error_set(e, 400, NULL, NULL, "the body is not valid JSON");
    int rc;
    if (!cJSON_IsObject(root))
        rc = srv_error_set(e, 400, NULL, NULL, "the body must be a JSON object");
    else
        rc = parse_fields(root, chat, n_vocab, r, e);
    cJSON_Delete(root);
    if (rc)
        srv_request_free(r);
    return rc;
}

void srv_request_free(struct srv_request *r)
{
    free(r->model);
    for (size_t i = 0; i < r->n_prompts; i++) {
        free(r->prompts[i].text);
        free(r->prompts[i].ids);
    }
    free(r->prompts);
    for (size_t i = 0; r->msgs && i < r->n_msgs; i++) {
        free((char *)r->msgs[i].role);
        free((char *)r->msgs[i].content);
    }
    free(r->msgs);
    for (int i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    free(r->bias);
    memset(r, 0, sizeof *r);
}

int srv_parse_tokenize(const char *body, size_t len, char **text, int *add_special,
                       int *parse_special, struct srv_error *e)
{
    *text = NULL;
    *add_special = 0;
    *parse_special = 1;
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root)
        return srv_error_set(e, 400, NULL, NULL, "the body is not valid JSON");
    int rc = 0;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "content");
    if (!cJSON_IsObject(root))
        rc = srv_error_set(e, 400, NULL, NULL, "the body must be a JSON object");
    else if (!cJSON_IsString(c))
        rc = srv_error_set(e, 400, "content", NULL, "'content' must be a string");
    else if (get_bool(root, "add_special", add_special, e) < 0 ||
             get_bool(root, "parse_special", parse_special, e) < 0)
        rc = -1;
    else if (!(*text = dup_str(c->valuestring)))
        rc = srv_error_set(e, 500, NULL, NULL, "out of memory");
    cJSON_Delete(root);
    return rc;
}

int srv_parse_detokenize(const char *body, size_t len, int32_t n_vocab, int32_t **ids,
                         size_t *n, struct srv_error *e)
{
    *ids = NULL;
    *n = 0;
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root)
        return srv_error_set(e, 400, NULL, NULL, "the body is not valid JSON");
    int rc = 0;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "tokens");
    if (!cJSON_IsObject(root))
        rc = srv_error_set(e, 400, NULL, NULL, "the body must be a JSON object");
    else if (!cJSON_IsArray(t))
        rc = srv_error_set(e, 400, "tokens", NULL, "'tokens' must be a list of token ids");
    else if (cJSON_GetArraySize(t) > 0)
        rc = read_ids(t, n_vocab, "tokens", ids, n, e);
    cJSON_Delete(root);
    return rc;
}

/* ---- building ---- */

/* Copies s[0..len) as a NUL-terminated string of valid UTF-8: each byte that
 * does not start a complete, shortest-form sequence becomes U+FFFD, and NUL
 * bytes are dropped (cJSON strings end at NUL). */
static char *utf8_clean(const char *s, size_t len)
{
    char *d = malloc(len * 3 + 1);
    if (!d)
        return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned c = p[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        int good = n > 0 && i + n <= len;
        for (size_t k = 1; good && k < n; k++)
            good = (p[i + k] & 0xC0) == 0x80;
        if (good && n > 1) {
            unsigned cp = c & (0x7F >> n);
            for (size_t k = 1; k < n; k++)
                cp = (cp << 6) | (p[i + k] & 0x3F);
            good = !(n == 2 && cp < 0x80) && !(n == 3 && cp < 0x800) && !(n == 4 && cp < 0x10000) &&
                   cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
        }
        if (!good) {
            memcpy(d + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
            continue;
        }
        if (c != 0) {
            memcpy(d + o, p + i, n);
            o += n;
        }
        i += n;
    }
    d[o] = '\0';
    return d;
}

static cJSON *text_item(const char *s, size_t len)
{
    char *c = utf8_clean(s ? s : "", s ? len : 0);
    if (!c)
        return NULL;
    cJSON *v = cJSON_CreateString(c);
    free(c);
    return v;
}

/* Adds key: text to o; returns 0 or -1. */
static int add_text(cJSON *o, const char *key, const char *s, size_t len)
{
    cJSON *v = text_item(s, len);
    if (!v)
        return -1;
    cJSON_AddItemToObject(o, key, v);
    return 0;
}

const char *srv_finish_str(pagoda_finish f)
{
    switch (f) {
    case PAGODA_FINISH_STOP:
        return "stop";
    case PAGODA_FINISH_LENGTH:
        return "length";
    case PAGODA_FINISH_ABORT:
        return "abort";
    case PAGODA_FINISH_ERROR:
        return "error";
    default:
        return NULL;
    }
}

static void add_finish(cJSON *o, pagoda_finish f)
{
    const char *s = srv_finish_str(f);
    if (s)
        cJSON_AddStringToObject(o, "finish_reason", s);
    else
        cJSON_AddNullToObject(o, "finish_reason");
}

static cJSON *bytes_array(const char *s, size_t len)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < len; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((unsigned char)s[i]));
    return a;
}

/* Chat: {"content":[{"token","logprob","bytes","top_logprobs":[...]}...]}.
 * Completions: {"tokens","token_logprobs","top_logprobs","text_offset"}. */
static cJSON *logprobs_object(int chat, const struct srv_logprob *lp, size_t n, size_t text_base)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    if (chat) {
        cJSON *content = cJSON_AddArrayToObject(o, "content");
        for (size_t i = 0; content && i < n; i++) {
            cJSON *t = cJSON_CreateObject();
            cJSON_AddItemToArray(content, t);
            add_text(t, "token", lp[i].text, lp[i].text_len);
            cJSON_AddNumberToObject(t, "logprob", lp[i].logprob);
            cJSON_AddItemToObject(t, "bytes", bytes_array(lp[i].text, lp[i].text_len));
            cJSON *top = cJSON_AddArrayToObject(t, "top_logprobs");
            for (int k = 0; top && k < lp[i].n_top; k++) {
                cJSON *a = cJSON_CreateObject();
                cJSON_AddItemToArray(top, a);
                add_text(a, "token", lp[i].top_text[k], lp[i].top_len[k]);
                cJSON_AddNumberToObject(a, "logprob", lp[i].top_logprob[k]);
                cJSON_AddItemToObject(a, "bytes", bytes_array(lp[i].top_text[k], lp[i].top_len[k]));
            }
        }
        return o;
    }
    cJSON *tokens = cJSON_AddArrayToObject(o, "tokens");
    cJSON *tlp = cJSON_AddArrayToObject(o, "token_logprobs");
    cJSON *top = cJSON_AddArrayToObject(o, "top_logprobs");
    cJSON *off = cJSON_AddArrayToObject(o, "text_offset");
    size_t at = text_base;
    for (size_t i = 0; tokens && tlp && top && off && i < n; i++) {
        cJSON_AddItemToArray(tokens, text_item(lp[i].text, lp[i].text_len));
        cJSON_AddItemToArray(tlp, cJSON_CreateNumber(lp[i].logprob));
        cJSON *m = cJSON_CreateObject();
        cJSON_AddItemToArray(top, m);
        for (int k = 0; m && k < lp[i].n_top; k++) {
            char *key = utf8_clean(lp[i].top_text[k], lp[i].top_len[k]);
            if (key && !cJSON_GetObjectItemCaseSensitive(m, key))
                cJSON_AddNumberToObject(m, key, lp[i].top_logprob[k]);
            free(key);
        }
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)at));
        at += lp[i].text_len;
    }
    return o;
}

static cJSON *meta_object(const struct srv_meta *m, const char *object)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "id", m->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)m->created);
    cJSON_AddStringToObject(o, "model", m->model);
    return o;
}

static void add_usage(cJSON *o, const struct srv_usage *u)
{
    cJSON *us = cJSON_AddObjectToObject(o, "usage");
    if (!us)
        return;
    cJSON_AddNumberToObject(us, "prompt_tokens", (double)u->prompt_tokens);
    cJSON_AddNumberToObject(us, "completion_tokens", (double)u->completion_tokens);
    cJSON_AddNumberToObject(us, "total_tokens", (double)(u->prompt_tokens + u->completion_tokens));
}

static char *print_and_free(cJSON *o)
{
    if (!o)
        return NULL;
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

char *srv_build_response(const struct srv_meta *m, const struct srv_choice *c, size_t n,
                         const struct srv_usage *u)
{
    cJSON *o = meta_object(m, m->chat ? "chat.completion" : "text_completion");
    cJSON *choices = o ? cJSON_AddArrayToObject(o, "choices") : NULL;
    if (!choices) {
        cJSON_Delete(o);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        cJSON *ch = cJSON_CreateObject();
        if (!ch)
            break;
        cJSON_AddItemToArray(choices, ch);
        cJSON_AddNumberToObject(ch, "index", (double)i);
        if (m->chat) {
            cJSON *msg = cJSON_AddObjectToObject(ch, "message");
            if (msg) {
                cJSON_AddStringToObject(msg, "role", "assistant");
                add_text(msg, "content", c[i].text, c[i].len);
            }
        } else {
            add_text(ch, "text", c[i].text, c[i].len);
        }
        if (m->logprobs)
            cJSON_AddItemToObject(ch, "logprobs", logprobs_object(m->chat, c[i].lp, c[i].n_lp, 0));
        else
            cJSON_AddNullToObject(ch, "logprobs");
        add_finish(ch, c[i].finish);
    }
    add_usage(o, u);
    return print_and_free(o);
}

char *srv_build_chunk(const struct srv_meta *m, int index, const char *text, size_t len,
                      int role_first, pagoda_finish finish, const struct srv_logprob *lp,
                      size_t n_lp)
{
    cJSON *o = meta_object(m, m->chat ? "chat.completion.chunk" : "text_completion");
    cJSON *choices = o ? cJSON_AddArrayToObject(o, "choices") : NULL;
    cJSON *ch = cJSON_CreateObject();
    if (!choices || !ch) {
        cJSON_Delete(o);
        cJSON_Delete(ch);
        return NULL;
    }
    cJSON_AddItemToArray(choices, ch);
    cJSON_AddNumberToObject(ch, "index", index);
    if (m->chat) {
        cJSON *d = cJSON_AddObjectToObject(ch, "delta");
        if (d && role_first)
            cJSON_AddStringToObject(d, "role", "assistant");
        if (d && text)
            add_text(d, "content", text, len);
    } else {
        add_text(ch, "text", text, text ? len : 0);
    }
    if (m->logprobs && lp && n_lp)
        cJSON_AddItemToObject(ch, "logprobs", logprobs_object(m->chat, lp, n_lp, 0));
    else
        cJSON_AddNullToObject(ch, "logprobs");
    add_finish(ch, finish);
    return print_and_free(o);
}

char *srv_build_usage_chunk(const struct srv_meta *m, const struct srv_usage *u)
{
    cJSON *o = meta_object(m, m->chat ? "chat.completion.chunk" : "text_completion");
    if (!o || !cJSON_AddArrayToObject(o, "choices")) {
        cJSON_Delete(o);
        return NULL;
    }
    add_usage(o, u);
    return print_and_free(o);
}

static cJSON *model_object(const char *alias, long long created, const pagoda_model_info *info)
{
    cJSON *m = cJSON_CreateObject();
    if (!m)
        return NULL;
    add_text(m, "id", alias, strlen(alias));
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)created);
    cJSON_AddStringToObject(m, "owned_by", "pagoda");
    cJSON *meta = cJSON_AddObjectToObject(m, "meta");
    if (meta) {
        if (info->arch)
            add_text(meta, "arch", info->arch, strlen(info->arch));
        cJSON_AddNumberToObject(meta, "n_ctx", info->n_ctx);
        cJSON_AddNumberToObject(meta, "n_ctx_train", info->n_ctx_train);
        cJSON_AddNumberToObject(meta, "n_vocab", info->n_vocab);
        cJSON_AddNumberToObject(meta, "n_params", (double)info->n_params);
    }
    return m;
}

char *srv_build_models(const char *alias, long long created, const pagoda_model_info *info)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *data = o ? cJSON_AddArrayToObject(o, "data") : NULL;
    cJSON *m = model_object(alias, created, info);
    if (!data || !m) {
        cJSON_Delete(o);
        cJSON_Delete(m);
        return NULL;
    }
    cJSON_AddStringToObject(o, "object", "list");
    cJSON_AddItemToArray(data, m);
    return print_and_free(o);
}

char *srv_build_model(const char *alias, long long created, const pagoda_model_info *info)
{
    return print_and_free(model_object(alias, created, info));
}

char *srv_build_tokens(const int32_t *ids, size_t n)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *a = o ? cJSON_AddArrayToObject(o, "tokens") : NULL;
    if (!a) {
        cJSON_Delete(o);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
    return print_and_free(o);
}

char *srv_build_content(const char *text, size_t len)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || add_text(o, "content", text, len)) {
        cJSON_Delete(o);
        return NULL;
    }
    return print_and_free(o);
}

char *srv_build_error(const struct srv_error *e)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *er = o ? cJSON_AddObjectToObject(o, "error") : NULL;
    if (!er) {
        cJSON_Delete(o);
        return NULL;
    }
    add_text(er, "message", e->message, strlen(e->message));
    cJSON_AddStringToObject(er, "type", e->type ? e->type : "invalid_request_error");
    if (e->param[0])
        add_text(er, "param", e->param, strlen(e->param));
    else
        cJSON_AddNullToObject(er, "param");
    if (e->code)
        cJSON_AddStringToObject(er, "code", e->code);
    else
        cJSON_AddNullToObject(er, "code");
    return print_and_free(o);
}

/* ---- choices ---- */

int srv_choice_append(struct srv_choice *c, const char *text, size_t len)
{
    if (c->len + len + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 64;
        while (cap < c->len + len + 1)
            cap *= 2;
        char *t = realloc(c->text, cap);
        if (!t)
            return -1;
        c->text = t;
        c->cap = cap;
    }
    memcpy(c->text + c->len, text, len);
    c->len += len;
    c->text[c->len] = '\0';
    return 0;
}

static char *dup_mem(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        if (n)
            memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

int srv_choice_push_lp(struct srv_choice *c, const struct srv_logprob *lp)
{
    if (c->n_lp == c->cap_lp) {
        size_t cap = c->cap_lp ? c->cap_lp * 2 : 16;
        struct srv_logprob *t = realloc(c->lp, cap * sizeof *t);
        if (!t)
            return -1;
        c->lp = t;
        c->cap_lp = cap;
    }
    struct srv_logprob *d = &c->lp[c->n_lp];
    memset(d, 0, sizeof *d);
    d->logprob = lp->logprob;
    d->text_len = lp->text_len;
    d->n_top = lp->n_top < 0 ? 0 : lp->n_top > PAGODA_MAX_TOP_LOGPROBS ? PAGODA_MAX_TOP_LOGPROBS : lp->n_top;
    int bad = !(d->text = dup_mem(lp->text, lp->text_len));
    for (int k = 0; k < d->n_top; k++) {
        d->top_len[k] = lp->top_len[k];
        d->top_logprob[k] = lp->top_logprob[k];
        bad |= !(d->top_text[k] = dup_mem(lp->top_text[k], lp->top_len[k]));
    }
    if (bad) {
        srv_logprob_free(d);
        return -1;
    }
    c->n_lp++;
    return 0;
}

void srv_logprob_free(struct srv_logprob *lp)
{
    free(lp->text);
    lp->text = NULL;
    for (int k = 0; k < lp->n_top && k < PAGODA_MAX_TOP_LOGPROBS; k++) {
        free(lp->top_text[k]);
        lp->top_text[k] = NULL;
    }
}

void srv_choice_free(struct srv_choice *c)
{
    free(c->text);
    for (size_t i = 0; i < c->n_lp; i++)
        srv_logprob_free(&c->lp[i]);
    free(c->lp);
    memset(c, 0, sizeof *c);
}
