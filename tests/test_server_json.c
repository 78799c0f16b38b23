/*
 * test_server_json.c: the request parser and response builders of `pagoda
 * serve`, without an engine: every field of both endpoints maps to the
 * request, every wrong type or range is a 400 naming the field, random valid
 * requests round-trip, random damage never crashes, and built bodies are
 * valid JSON of OpenAI's shapes (also for broken UTF-8). Also the Prometheus
 * text of the metrics.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "server/server_json.h"
#include "server/server_metrics.h"
#include "test.h"

#define VOCAB 1000

static int parse(int chat, const char *body, struct srv_request *r, struct srv_error *e)
{
    memset(e, 0, sizeof *e);
    return srv_parse_request(chat, body, strlen(body), VOCAB, r, e);
}

static void test_completion_fields(void)
{
    struct srv_request r;
    struct srv_error e;
    const char *body =
        "{\"model\":\"m1\",\"prompt\":\"hello\",\"max_tokens\":7,\"temperature\":0.5,\"top_p\":0.9,"
        "\"top_k\":12,\"min_p\":0.2,\"presence_penalty\":-1.5,\"frequency_penalty\":1.25,"
        "\"repetition_penalty\":1.1,\"seed\":-3,\"stop\":[\"a\",\"bc\"],\"logit_bias\":{\"5\":-100,"
        "\"17\":2.5},\"logprobs\":3,\"n\":2,\"stream\":true,\"stream_options\":{\"include_usage\":true},"
        "\"ignore_eos\":true,\"user\":\"ignored\"}";
    CHECKF(parse(0, body, &r, &e) == 0, "%s", e.message);
    CHECK(r.chat == 0);
    CHECK(r.model && strcmp(r.model, "m1") == 0);
    CHECK(r.n_prompts == 1 && strcmp(r.prompts[0].text, "hello") == 0 && !r.prompts[0].ids);
    CHECK(r.max_tokens == 7);
    CHECK(fabsf(r.sampling.temperature - 0.5f) < 1e-6f);
    CHECK(fabsf(r.sampling.top_p - 0.9f) < 1e-6f);
    CHECK(r.sampling.top_k == 12);
    CHECK(fabsf(r.sampling.min_p - 0.2f) < 1e-6f);
    CHECK(fabsf(r.sampling.presence_penalty + 1.5f) < 1e-6f);
    CHECK(fabsf(r.sampling.frequency_penalty - 1.25f) < 1e-6f);
    CHECK(fabsf(r.sampling.repeat_penalty - 1.1f) < 1e-6f);
    CHECK(r.has_seed && r.sampling.seed == (uint64_t)-3);
    CHECK(r.n_stop == 2 && strcmp(r.stop[0], "a") == 0 && strcmp(r.stop[1], "bc") == 0);
    CHECK(r.n_bias == 2 && r.sampling.n_logit_bias == 2 && r.sampling.logit_bias == r.bias);
    CHECK(r.bias[0].token == 5 && isinf(r.bias[0].bias) && r.bias[0].bias < 0);
    CHECK(r.bias[1].token == 17 && fabsf(r.bias[1].bias - 2.5f) < 1e-6f);
    CHECK(r.logprobs == 1 && r.top_logprobs == 3);
    CHECK(r.n == 2 && r.stream == 1 && r.include_usage == 1 && r.ignore_eos == 1);
    srv_request_free(&r);

    /* Defaults: the engine's sampling, n 1, nothing else. */
    CHECK(parse(0, "{\"prompt\":\"x\"}", &r, &e) == 0);
    pagoda_sampling d;
    pagoda_sampling_default(&d);
    CHECK(r.model == NULL && r.max_tokens == 0 && r.n == 1 && !r.stream && !r.has_seed);
    CHECK(r.sampling.temperature == d.temperature && r.sampling.top_k == d.top_k);
    CHECK(r.n_stop == 0 && r.n_bias == 0 && r.logprobs == 0);
    srv_request_free(&r);

    /* max_completion_tokens wins over max_tokens; a lone stop string; null fields are absent. */
    CHECK(parse(0, "{\"prompt\":\"x\",\"max_tokens\":3,\"max_completion_tokens\":9,\"stop\":\"\\n\","
                   "\"temperature\":null,\"model\":null,\"logprobs\":0}",
                &r, &e) == 0);
    CHECK(r.max_tokens == 9 && r.n_stop == 1 && strcmp(r.stop[0], "\n") == 0);
    CHECK(r.sampling.temperature == d.temperature && r.model == NULL);
    CHECK(r.logprobs == 1 && r.top_logprobs == 0);
    srv_request_free(&r);
}

static void test_prompt_forms(void)
{
    struct srv_request r;
    struct srv_error e;
    CHECK(parse(0, "{\"prompt\":[\"a\",\"\",\"ccc\"]}", &r, &e) == 0);
    CHECK(r.n_prompts == 3 && strcmp(r.prompts[2].text, "ccc") == 0 && r.prompts[1].text[0] == 0);
    srv_request_free(&r);
    CHECK(parse(0, "{\"prompt\":[1,2,999]}", &r, &e) == 0);
    CHECK(r.n_prompts == 1 && r.prompts[0].n_ids == 3 && r.prompts[0].ids[2] == 999);
    srv_request_free(&r);
    CHECK(parse(0, "{\"prompt\":[[1],[4,5,6]]}", &r, &e) == 0);
    CHECK(r.n_prompts == 2 && r.prompts[1].n_ids == 3 && r.prompts[1].ids[0] == 4 && r.prompts[0].ids[0] == 1);
    srv_request_free(&r);
}

static void test_chat_fields(void)
{
    struct srv_request r;
    struct srv_error e;
    const char *body =
        "{\"messages\":[{\"role\":\"developer\",\"content\":\"be brief\"},{\"role\":\"user\","
        "\"content\":[{\"type\":\"text\",\"text\":\"one \"},{\"type\":\"text\",\"text\":\"two\"}]},"
        "{\"role\":\"assistant\",\"content\":null},{\"role\":\"user\",\"content\":\"\xc3\xa9t\xc3\xa9\"}],"
        "\"logprobs\":true,\"top_logprobs\":4,\"max_completion_tokens\":11}";
    CHECKF(parse(1, body, &r, &e) == 0, "%s", e.message);
    CHECK(r.chat == 1 && r.n_msgs == 4);
    CHECK(strcmp(r.msgs[0].role, "system") == 0 && strcmp(r.msgs[0].content, "be brief") == 0);
    CHECK(strcmp(r.msgs[1].role, "user") == 0 && strcmp(r.msgs[1].content, "one two") == 0);
    CHECK(strcmp(r.msgs[2].role, "assistant") == 0 && r.msgs[2].content[0] == 0);
    CHECK(strcmp(r.msgs[3].content, "\xc3\xa9t\xc3\xa9") == 0);
    CHECK(r.logprobs == 1 && r.top_logprobs == 4 && r.max_tokens == 11);
    srv_request_free(&r);
}

struct bad_case {
    int chat;
    const char *body;
    const char *param; /* NULL: none expected */
};

static void test_errors(void)
{
    static const struct bad_case cases[] = {
        {0, "", NULL},
        {0, "{", NULL},
        {0, "{\"prompt\":\"x\"", NULL},
        {0, "[1,2]", NULL},
        {0, "\"just a string\"", NULL},
        {0, "{}", "prompt"},
        {0, "{\"prompt\":null}", "prompt"},
        {0, "{\"prompt\":5}", "prompt"},
        {0, "{\"prompt\":[]}", "prompt"},
        {0, "{\"prompt\":[\"a\",3]}", "prompt"},
        {0, "{\"prompt\":[1,\"a\"]}", "prompt"},
        {0, "{\"prompt\":[1,1000]}", "prompt"},
        {0, "{\"prompt\":[-1]}", "prompt"},
        {0, "{\"prompt\":[1.5]}", "prompt"},
        {0, "{\"prompt\":[[1],[]]}", "prompt"},
        {0, "{\"prompt\":[[1],\"a\"]}", "prompt"},
        {0, "{\"prompt\":[{}]}", "prompt"},
        {0, "{\"prompt\":\"x\",\"model\":3}", "model"},
        {0, "{\"prompt\":\"x\",\"max_tokens\":0}", "max_tokens"},
        {0, "{\"prompt\":\"x\",\"max_tokens\":-4}", "max_tokens"},
        {0, "{\"prompt\":\"x\",\"max_tokens\":2.5}", "max_tokens"},
        {0, "{\"prompt\":\"x\",\"max_tokens\":\"5\"}", "max_tokens"},
        {0, "{\"prompt\":\"x\",\"max_completion_tokens\":0}", "max_completion_tokens"},
        {0, "{\"prompt\":\"x\",\"temperature\":2.01}", "temperature"},
        {0, "{\"prompt\":\"x\",\"temperature\":-0.1}", "temperature"},
        {0, "{\"prompt\":\"x\",\"temperature\":\"hot\"}", "temperature"},
        {0, "{\"prompt\":\"x\",\"top_p\":1.5}", "top_p"},
        {0, "{\"prompt\":\"x\",\"top_k\":-1}", "top_k"},
        {0, "{\"prompt\":\"x\",\"top_k\":1.5}", "top_k"},
        {0, "{\"prompt\":\"x\",\"min_p\":2}", "min_p"},
        {0, "{\"prompt\":\"x\",\"presence_penalty\":3}", "presence_penalty"},
        {0, "{\"prompt\":\"x\",\"frequency_penalty\":-2.5}", "frequency_penalty"},
        {0, "{\"prompt\":\"x\",\"repetition_penalty\":0}", "repetition_penalty"},
        {0, "{\"prompt\":\"x\",\"seed\":1.5}", "seed"},
        {0, "{\"prompt\":\"x\",\"seed\":1e300}", "seed"},
        {0, "{\"prompt\":\"x\",\"n\":0}", "n"},
        {0, "{\"prompt\":\"x\",\"n\":17}", "n"},
        {0, "{\"prompt\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\"],\"n\":16}", "n"},
        {0, "{\"prompt\":\"x\",\"stream\":1}", "stream"},
        {0, "{\"prompt\":\"x\",\"stream_options\":true}", "stream_options"},
        {0, "{\"prompt\":\"x\",\"stream_options\":{\"include_usage\":\"yes\"}}", "stream_options"},
        {0, "{\"prompt\":\"x\",\"ignore_eos\":\"no\"}", "ignore_eos"},
        {0, "{\"prompt\":\"x\",\"stop\":5}", "stop"},
        {0, "{\"prompt\":\"x\",\"stop\":\"\"}", "stop"},
        {0, "{\"prompt\":\"x\",\"stop\":[\"a\",7]}", "stop"},
        {0, "{\"prompt\":\"x\",\"stop\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\","
            "\"11\",\"12\",\"13\",\"14\",\"15\",\"16\",\"17\"]}",
         "stop"},
        {0, "{\"prompt\":\"x\",\"logit_bias\":[1]}", "logit_bias"},
        {0, "{\"prompt\":\"x\",\"logit_bias\":{\"abc\":1}}", "logit_bias"},
        {0, "{\"prompt\":\"x\",\"logit_bias\":{\"1000\":1}}", "logit_bias"},
        {0, "{\"prompt\":\"x\",\"logit_bias\":{\"-1\":1}}", "logit_bias"},
        {0, "{\"prompt\":\"x\",\"logit_bias\":{\"3\":101}}", "logit_bias"},
        {0, "{\"prompt\":\"x\",\"logit_bias\":{\"3\":\"1\"}}", "logit_bias"},
        {0, "{\"prompt\":\"x\",\"logprobs\":6}", "logprobs"},
        {0, "{\"prompt\":\"x\",\"logprobs\":true}", "logprobs"},
        {0, "{\"prompt\":\"x\",\"echo\":true}", "echo"},
        {0, "{\"prompt\":\"x\",\"suffix\":\"y\"}", "suffix"},
        {1, "{}", "messages"},
        {1, "{\"messages\":[]}", "messages"},
        {1, "{\"messages\":{}}", "messages"},
        {1, "{\"messages\":[\"hi\"]}", "messages"},
        {1, "{\"messages\":[{\"content\":\"hi\"}]}", "messages"},
        {1, "{\"messages\":[{\"role\":\"tool\",\"content\":\"hi\"}]}", "messages"},
        {1, "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", "messages"},
        {1, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", "messages"},
        {1, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}", "messages"},
        {1, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"logprobs\":3}", "logprobs"},
        {1, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"top_logprobs\":2}", "top_logprobs"},
        {1, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"logprobs\":true,\"top_logprobs\":21}",
         "top_logprobs"},
        {1, "{\"prompt\":\"completions field on chat\"}", "messages"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct srv_request r;
        struct srv_error e;
        int rc = parse(cases[i].chat, cases[i].body, &r, &e);
        CHECKF(rc == -1, "case %zu accepted: %s", i, cases[i].body);
        if (rc != -1) {
            srv_request_free(&r);
            continue;
        }
        CHECKF(e.status == 400, "case %zu: status %d", i, e.status);
        CHECKF(e.message[0] != 0, "case %zu: no message", i);
        CHECKF(strcmp(e.param, cases[i].param ? cases[i].param : "") == 0, "case %zu: param '%s' want '%s'",
               i, e.param, cases[i].param ? cases[i].param : "");
        CHECK(r.prompts == NULL && r.msgs == NULL && r.model == NULL && r.n_stop == 0);
    }
}

/* Random valid requests: what goes in comes out. */
static void test_random_roundtrip(void)
{
    struct rng g;
    rng_seed(&g, 12345);
    for (int it = 0; it < 300; it++) {
        cJSON *o = cJSON_CreateObject();
        int chat = (int)(rng_next(&g) & 1);
        int n_items = 1 + (int)(rng_next(&g) % 7);
        int32_t want_ids[8];
        if (chat) {
            cJSON *m = cJSON_AddArrayToObject(o, "messages");
            for (int i = 0; i < n_items; i++) {
                cJSON *x = cJSON_CreateObject();
                cJSON_AddStringToObject(x, "role", i % 2 ? "assistant" : "user");
                char t[32];
                snprintf(t, sizeof t, "msg %d %u", i, (unsigned)(rng_next(&g) % 1000));
                cJSON_AddStringToObject(x, "content", t);
                cJSON_AddItemToArray(m, x);
            }
        } else {
            cJSON *p = cJSON_AddArrayToObject(o, "prompt");
            for (int i = 0; i < n_items; i++) {
                want_ids[i] = (int32_t)(rng_next(&g) % VOCAB);
                cJSON_AddItemToArray(p, cJSON_CreateNumber(want_ids[i]));
            }
        }
        float temp = rng_range(&g, 0, 2), top_p = rng_uniform(&g);
        int top_k = (int)(rng_next(&g) % 200), max_tokens = 1 + (int)(rng_next(&g) % 5000);
        int n = 1 + (int)(rng_next(&g) % SRV_MAX_N);
        long long seed = (long long)(rng_next(&g) % 2000000) - 1000000;
        int n_stop = (int)(rng_next(&g) % 5);
        cJSON_AddNumberToObject(o, "temperature", temp);
        cJSON_AddNumberToObject(o, "top_p", top_p);
        cJSON_AddNumberToObject(o, "top_k", top_k);
        cJSON_AddNumberToObject(o, "max_tokens", max_tokens);
        cJSON_AddNumberToObject(o, "n", n);
        cJSON_AddNumberToObject(o, "seed", (double)seed);
        cJSON *stops = cJSON_AddArrayToObject(o, "stop");
        for (int i = 0; i < n_stop; i++) {
            char t[16];
            snprintf(t, sizeof t, "s%d", i * 7 + 1);
            cJSON_AddItemToArray(stops, cJSON_CreateString(t));
        }
        int tok = (int)(rng_next(&g) % VOCAB);
        cJSON *lb = cJSON_AddObjectToObject(o, "logit_bias");
        char key[16];
        snprintf(key, sizeof key, "%d", tok);
        float bias = rng_range(&g, -50, 50);
        cJSON_AddNumberToObject(lb, key, bias);
        char *body = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);

        struct srv_request r;
        struct srv_error e;
        int rc = parse(chat, body, &r, &e);
        CHECKF(rc == 0, "iteration %d: %s: %s", it, e.message, body);
        if (rc == 0) {
            CHECK(fabsf(r.sampling.temperature - temp) < 1e-5f && fabsf(r.sampling.top_p - top_p) < 1e-5f);
            CHECK(r.sampling.top_k == top_k && r.max_tokens == max_tokens && r.n == n);
            CHECK((long long)r.sampling.seed == seed && r.n_stop == n_stop);
            CHECK(r.n_bias == 1 && r.bias[0].token == tok && fabsf(r.bias[0].bias - bias) < 1e-4f);
            if (chat) {
                CHECK(r.n_msgs == (size_t)n_items && strncmp(r.msgs[n_items - 1].content, "msg ", 4) == 0);
            } else {
                int same = r.n_prompts == 1 && r.prompts[0].n_ids == (size_t)n_items;
                for (int i = 0; same && i < n_items; i++)
                    same = r.prompts[0].ids[i] == want_ids[i];
                CHECK(same);
            }
            srv_request_free(&r);
        }
        free(body);
    }
}

/* Random damage to valid bodies: parse or fail cleanly, never both. */
static void test_random_damage(void)
{
    static const char *seeds[] = {
        "{\"prompt\":[[1,2],[3]],\"stop\":[\"a\"],\"logit_bias\":{\"4\":1},\"n\":2,\"logprobs\":2}",
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}],"
        "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"top_logprobs\":1,\"logprobs\":true}",
    };
    struct rng g;
    rng_seed(&g, 777);
    int ok = 0, bad = 0;
    for (int it = 0; it < 4000; it++) {
        int chat = it & 1;
        const char *s = seeds[chat];
        size_t len = strlen(s);
        char buf[512];
        memcpy(buf, s, len);
        int edits = 1 + (int)(rng_next(&g) % 4);
        for (int k = 0; k < edits; k++) {
            size_t at = rng_next(&g) % len;
            static const char alphabet[] = "{}[]\",:0123456789-.eEtrufalsn \\x\x80\xff";
            buf[at] = alphabet[rng_next(&g) % (sizeof alphabet - 1)];
        }
        size_t cut = rng_next(&g) % 4 == 0 ? rng_next(&g) % len : len;
        struct srv_request r;
        struct srv_error e;
        memset(&e, 0, sizeof e);
        /* Not NUL-terminated: the parser must respect the length. */
        char *body = malloc(cut ? cut : 1);
        memcpy(body, buf, cut);
        int rc = srv_parse_request(chat, body, cut, VOCAB, &r, &e);
        free(body);
        if (rc == 0) {
            ok++;
            CHECK(chat ? r.n_msgs >= 1 : r.n_prompts >= 1);
            srv_request_free(&r);
        } else {
            bad++;
            if (e.status != 400 || !e.message[0])
                CHECKF(0, "iteration %d: status %d message '%s'", it, e.status, e.message);
        }
    }
    CHECK(ok > 0 && bad > 0);
}

static void test_tokenize_bodies(void)
{
    struct srv_error e;
    char *text;
    int add, parse_sp;
    const char *b = "{\"content\":\"hi there\",\"add_special\":true,\"parse_special\":false}";
    CHECK(srv_parse_tokenize(b, strlen(b), &text, &add, &parse_sp, &e) == 0);
    CHECK(text && strcmp(text, "hi there") == 0 && add == 1 && parse_sp == 0);
    free(text);
    b = "{\"content\":3}";
    CHECK(srv_parse_tokenize(b, strlen(b), &text, &add, &parse_sp, &e) == -1 && strcmp(e.param, "content") == 0);
    b = "{\"content\":\"x\",\"add_special\":1}";
    CHECK(srv_parse_tokenize(b, strlen(b), &text, &add, &parse_sp, &e) == -1 &&
          strcmp(e.param, "add_special") == 0 && text == NULL);
    int32_t *ids;
    size_t n;
    b = "{\"tokens\":[5,0,999]}";
    CHECK(srv_parse_detokenize(b, strlen(b), VOCAB, &ids, &n, &e) == 0 && n == 3 && ids[0] == 5 && ids[2] == 999);
    free(ids);
    b = "{\"tokens\":[]}";
    CHECK(srv_parse_detokenize(b, strlen(b), VOCAB, &ids, &n, &e) == 0 && n == 0);
    b = "{\"tokens\":[1000]}";
    CHECK(srv_parse_detokenize(b, strlen(b), VOCAB, &ids, &n, &e) == -1 && strcmp(e.param, "tokens") == 0);
    b = "{\"tokens\":\"1\"}";
    CHECK(srv_parse_detokenize(b, strlen(b), VOCAB, &ids, &n, &e) == -1);
    b = "nope";
    CHECK(srv_parse_detokenize(b, strlen(b), VOCAB, &ids, &n, &e) == -1 && e.status == 400);
}

static const char *str_at(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_builders(void)
{
    struct srv_meta m = {1, "chatcmpl-1", 1700000000, "tiny", 1};
    struct srv_choice ch[2];
    memset(ch, 0, sizeof ch);
    CHECK(srv_choice_append(&ch[0], "Hello", 5) == 0 && srv_choice_append(&ch[0], " w\"o\nrld", 8) == 0);
    CHECK(ch[0].len == 13 && strcmp(ch[0].text, "Hello w\"o\nrld") == 0);
    /* broken UTF-8: a lone continuation byte, a cut 3-byte sequence, an overlong NUL */
    CHECK(srv_choice_append(&ch[1], "a\x80" "b\xe2\x82" "c\xc0\x80", 8) == 0);
    ch[0].finish = PAGODA_FINISH_STOP;
    ch[1].finish = PAGODA_FINISH_LENGTH;
    struct srv_logprob lp = {0};
    lp.text = (char *)"Hel";
    lp.text_len = 3;
    lp.logprob = -0.25f;
    lp.n_top = 2;
    lp.top_text[0] = (char *)"Hel";
    lp.top_len[0] = 3;
    lp.top_logprob[0] = -0.25f;
    lp.top_text[1] = (char *)"\xff";
    lp.top_len[1] = 1;
    lp.top_logprob[1] = -3;
    CHECK(srv_choice_push_lp(&ch[0], &lp) == 0);
    struct srv_usage u = {12, 34};
    char *s = srv_build_response(&m, ch, 2, &u);
    cJSON *o = s ? cJSON_Parse(s) : NULL;
    CHECKF(o != NULL, "response is not JSON: %s", s ? s : "(null)");
    if (o) {
        CHECK(str_at(o, "id") && strcmp(str_at(o, "id"), "chatcmpl-1") == 0);
        CHECK(strcmp(str_at(o, "object"), "chat.completion") == 0 && strcmp(str_at(o, "model"), "tiny") == 0);
        CHECK(cJSON_GetObjectItem(o, "created")->valuedouble == 1700000000);
        const cJSON *c = cJSON_GetObjectItem(o, "choices");
        CHECK(cJSON_GetArraySize(c) == 2);
        const cJSON *c0 = cJSON_GetArrayItem(c, 0), *c1 = cJSON_GetArrayItem(c, 1);
        const cJSON *msg = cJSON_GetObjectItem(c0, "message");
        CHECK(strcmp(str_at(msg, "role"), "assistant") == 0 && strcmp(str_at(msg, "content"), "Hello w\"o\nrld") == 0);
        CHECK(strcmp(str_at(c0, "finish_reason"), "stop") == 0 && strcmp(str_at(c1, "finish_reason"), "length") == 0);
        CHECK(cJSON_GetObjectItem(c1, "index")->valueint == 1);
        CHECK(strcmp(str_at(cJSON_GetObjectItem(c1, "message"), "content"),
                     "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd" "c\xef\xbf\xbd\xef\xbf\xbd") == 0);
        const cJSON *lpc = cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "logprobs"), "content");
        CHECK(cJSON_GetArraySize(lpc) == 1);
        const cJSON *t0 = cJSON_GetArrayItem(lpc, 0);
        CHECK(strcmp(str_at(t0, "token"), "Hel") == 0 && cJSON_GetObjectItem(t0, "logprob")->valuedouble == -0.25);
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(t0, "bytes")) == 3);
        const cJSON *top = cJSON_GetObjectItem(t0, "top_logprobs");
        CHECK(cJSON_GetArraySize(top) == 2 && cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(top, 1), "bytes"), 0)->valueint == 255);
        const cJSON *us = cJSON_GetObjectItem(o, "usage");
        CHECK(cJSON_GetObjectItem(us, "prompt_tokens")->valueint == 12);
        CHECK(cJSON_GetObjectItem(us, "completion_tokens")->valueint == 34);
        CHECK(cJSON_GetObjectItem(us, "total_tokens")->valueint == 46);
        cJSON_Delete(o);
    }
    free(s);

    /* completions shape with the legacy logprobs object */
    m.chat = 0;
    m.id = "cmpl-2";
    s = srv_build_response(&m, ch, 1, &u);
    o = s ? cJSON_Parse(s) : NULL;
    CHECK(o != NULL);
    if (o) {
        const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0);
        CHECK(strcmp(str_at(o, "object"), "text_completion") == 0 && strcmp(str_at(c0, "text"), "Hello w\"o\nrld") == 0);
        const cJSON *l = cJSON_GetObjectItem(c0, "logprobs");
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(l, "tokens")) == 1);
        CHECK(cJSON_GetArrayItem(cJSON_GetObjectItem(l, "token_logprobs"), 0)->valuedouble == -0.25);
        CHECK(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(l, "top_logprobs"), 0), "Hel") != NULL);
        CHECK(cJSON_GetArrayItem(cJSON_GetObjectItem(l, "text_offset"), 0)->valueint == 0);
        cJSON_Delete(o);
    }
    free(s);

    /* chunks */
    m.chat = 1;
    m.logprobs = 0;
    s = srv_build_chunk(&m, 3, "", 0, 1, PAGODA_FINISH_NONE, NULL, 0);
    CHECK(s && strcmp(s, "{\"id\":\"cmpl-2\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
                         "\"model\":\"tiny\",\"choices\":[{\"index\":3,\"delta\":{\"role\":\"assistant\","
                         "\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}") == 0);
    free(s);
    s = srv_build_chunk(&m, 0, NULL, 0, 0, PAGODA_FINISH_LENGTH, NULL, 0);
    CHECK(s && strstr(s, "\"delta\":{}") && strstr(s, "\"finish_reason\":\"length\""));
    free(s);
    m.chat = 0;
    s = srv_build_chunk(&m, 1, "tok", 3, 0, PAGODA_FINISH_NONE, NULL, 0);
    CHECK(s && strstr(s, "\"object\":\"text_completion\"") && strstr(s, "\"text\":\"tok\"") &&
          strstr(s, "\"finish_reason\":null"));
    free(s);
    s = srv_build_usage_chunk(&m, &u);
    CHECK(s && strstr(s, "\"choices\":[]") && strstr(s, "\"total_tokens\":46"));
    free(s);

    struct srv_error e;
    srv_error_set(&e, 404, "model", "model_not_found", "no model '%s'", "x\"y");
    s = srv_build_error(&e);
    o = s ? cJSON_Parse(s) : NULL;
    CHECK(o != NULL);
    if (o) {
        const cJSON *er = cJSON_GetObjectItem(o, "error");
        CHECK(strcmp(str_at(er, "message"), "no model 'x\"y'") == 0);
        CHECK(strcmp(str_at(er, "type"), "invalid_request_error") == 0);
        CHECK(strcmp(str_at(er, "param"), "model") == 0 && strcmp(str_at(er, "code"), "model_not_found") == 0);
        cJSON_Delete(o);
    }
    free(s);
    srv_error_set(&e, 401, NULL, NULL, "key");
    s = srv_build_error(&e);
    CHECK(s && strstr(s, "\"param\":null") && strstr(s, "\"code\":null") && strcmp(e.type, "authentication_error") == 0);
    free(s);

    pagoda_model_info info = {0};
    info.arch = "llama";
    info.n_ctx = 256;
    s = srv_build_models("my\"model", 5, &info);
    o = s ? cJSON_Parse(s) : NULL;
    CHECK(o && strcmp(str_at(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "data"), 0), "id"), "my\"model") == 0);
    cJSON_Delete(o);
    free(s);
    s = srv_build_model("tiny", 5, &info);
    CHECK(s && strncmp(s, "{\"id\":\"tiny\",\"object\":\"model\",\"created\":5,", 42) == 0 && strstr(s, "\"n_ctx\":256"));
    free(s);
    int32_t ids[3] = {1, 22, 333};
    s = srv_build_tokens(ids, 3);
    CHECK(s && strcmp(s, "{\"tokens\":[1,22,333]}") == 0);
    free(s);
    s = srv_build_content("a\nb\xff", 4);
    CHECK(s && strcmp(s, "{\"content\":\"a\\nb\xef\xbf\xbd\"}") == 0);
    free(s);
    srv_choice_free(&ch[0]);
    srv_choice_free(&ch[1]);
    CHECK(ch[0].text == NULL && ch[0].n_lp == 0);
}

static void test_metrics(void)
{
    struct srv_metrics m;
    srv_metrics_init(&m);
    srv_metrics_request(&m, 200);
    srv_metrics_request(&m, 200);
    srv_metrics_request(&m, 404);
    srv_metrics_request(&m, 99); /* ignored */
    pagoda_timings t = {0};
    t.t_submit = 10;
    t.t_first_token = 10.03;
    t.t_end = 10.53;
    t.n_prompt = 7;
    t.n_generated = 11;
    srv_metrics_sequence(&m, &t, 0);
    t.t_first_token = 12;
    t.t_end = 12;
    t.n_generated = 1;
    srv_metrics_sequence(&m, &t, 1);
    pagoda_stats st = {0};
    st.running = 3;
    st.kv_blocks_used = 5;
    st.kv_blocks_free = 7;
    st.prefix_hit_rate = 0.5;
    char *s = srv_metrics_render(&m, &st);
    CHECK(s != NULL);
    if (s) {
        CHECK(strstr(s, "# TYPE pagoda_requests_total counter\n") != NULL);
        CHECK(strstr(s, "pagoda_requests_total{status=\"200\"} 2\n") != NULL);
        CHECK(strstr(s, "pagoda_requests_total{status=\"404\"} 1\n") != NULL);
        CHECK(strstr(s, "status=\"99\"") == NULL);
        CHECK(strstr(s, "pagoda_prompt_tokens_total 14\n") && strstr(s, "pagoda_generated_tokens_total 12\n"));
        CHECK(strstr(s, "pagoda_sequences_aborted_total 1\n") != NULL);
        /* TTFT 0.03 and 2.0: cumulative buckets */
        CHECK(strstr(s, "pagoda_time_to_first_token_seconds_bucket{le=\"0.025\"} 0\n") != NULL);
        CHECK(strstr(s, "pagoda_time_to_first_token_seconds_bucket{le=\"0.05\"} 1\n") != NULL);
        CHECK(strstr(s, "pagoda_time_to_first_token_seconds_bucket{le=\"2.5\"} 2\n") != NULL);
        CHECK(strstr(s, "pagoda_time_to_first_token_seconds_bucket{le=\"+Inf\"} 2\n") != NULL);
        CHECK(strstr(s, "pagoda_time_to_first_token_seconds_count 2\n") != NULL);
        /* TPOT: (0.5 s / 10 tokens) = 0.05, only the first sequence */
        CHECK(strstr(s, "pagoda_time_per_output_token_seconds_bucket{le=\"0.025\"} 0\n") != NULL);
        CHECK(strstr(s, "pagoda_time_per_output_token_seconds_bucket{le=\"0.075\"} 1\n") != NULL);
        CHECK(strstr(s, "pagoda_time_per_output_token_seconds_count 1\n") != NULL);
        CHECK(strstr(s, "pagoda_sequences_running 3\n") && strstr(s, "pagoda_kv_blocks_used 5\n") &&
              strstr(s, "pagoda_kv_blocks_free 7\n") && strstr(s, "pagoda_prefix_cache_hit_rate 0.5"));
        /* every sample line belongs to a family announced by HELP and TYPE */
        int lines = 0, orphans = 0;
        for (char *line = s; *line;) {
            char *nl = strchr(line, '\n');
            if (!nl)
                break;
            if (line[0] != '#') {
                char name[128];
                size_t k = strcspn(line, "{ ");
                snprintf(name, sizeof name, "# TYPE %.*s ", (int)k, line);
                char *b = strstr(name, "_bucket ");
                if (!b)
                    b = strstr(name, "_sum ");
                if (!b)
                    b = strstr(name, "_count ");
                if (b && strstr(s, "histogram")) {
                    *b = ' ';
                    b[1] = 0;
                }
                if (!strstr(s, name))
                    orphans++;
                lines++;
            }
            line = nl + 1;
        }
        CHECK(lines > 30 && orphans == 0);
        free(s);
    }
    srv_metrics_destroy(&m);
}

int main(void)
{
    test_completion_fields();
    test_prompt_forms();
    test_chat_fields();
    test_errors();
    test_random_roundtrip();
    test_random_damage();
    test_tokenize_bodies();
    test_builders();
    test_metrics();
    TEST_END();
}
