/*
 * test_chat_template.c: the built-in chat formats: exact prompts for every
 * format (one user message, system + user, a multi-turn conversation, with and
 * without the generation prompt), recognition of real Jinja chat templates,
 * errors for unknown templates and bad conversations, content kept byte for
 * byte, and the prefix property on random conversations.
 */
#include <stdbool.h>
#include <stdint.h>

#include "base/rng.h"
#include "gguf/gguf.h"
#include "pagoda.h"
#include "test.h"
#include "tokenizer/chat_template.h"

#define NMSG(a) (sizeof(a) / sizeof((a)[0]))

/* Renders and compares with want; prints both on a mismatch. */
static void expect_prompt(enum chat_template_kind k, const struct chat_message *m, size_t n,
                          bool gen, const char *bos, const char *eos, const char *want, int line)
{
    char err[256] = "";
    char *out = NULL;
    size_t len = 0;
    int rc = chat_template_apply(k, m, n, gen, bos, eos, &out, &len, err, sizeof err);
    CHECKF(rc == 0, "line %d %s: rc %d: %s", line, chat_template_name(k), rc, err);
    if (rc == 0) {
        bool same = out && len == strlen(want) && memcmp(out, want, len) == 0 &&
                    out[len] == '\0';
        CHECKF(same, "line %d %s gen=%d:\n  got  [%s]\n  want [%s]", line,
               chat_template_name(k), (int)gen, out ? out : "(null)", want);
    }
    free(out);
}
#define EXPECT(k, m, gen, want) expect_prompt(k, m, NMSG(m), gen, NULL, NULL, want, __LINE__)

/* Expects a failure with code and a message containing needle; *out stays NULL. */
static void expect_fail(enum chat_template_kind k, const struct chat_message *m, size_t n,
                        int code, const char *needle, int line)
{
    char err[256] = "";
    char *out = (char *)1;
    size_t len = 99;
    int rc = chat_template_apply(k, m, n, true, NULL, NULL, &out, &len, err, sizeof err);
    CHECKF(rc == code, "line %d %s: rc %d, want %d (%s)", line, chat_template_name(k), rc, code,
           err);
    CHECKF(out == NULL && len == 0, "line %d: output not cleared on failure", line);
    CHECKF(strstr(err, needle) != NULL, "line %d: message [%s] lacks [%s]", line, err, needle);
    if (rc == 0)
        free(out);
}

static void expect_detect(const char *jinja, enum chat_template_kind want, int line)
{
    char err[256] = "";
    enum chat_template_kind k = CHAT_TEMPLATE_COUNT_;
    int rc = chat_template_detect(jinja, strlen(jinja), &k, err, sizeof err);
    CHECKF(rc == 0 && k == want, "line %d: detect rc %d kind %s, want %s (%s)", line, rc,
           chat_template_name(k), chat_template_name(want), err);
}

static void expect_detect_fail(const char *jinja, size_t len, const char *needle, int line)
{
    char err[256] = "";
    enum chat_template_kind k = CHAT_TEMPLATE_COUNT_;
    int rc = chat_template_detect(jinja, len, &k, err, sizeof err);
    CHECKF(rc == PAGODA_EUNSUPPORTED, "line %d: detect rc %d (kind %s), want unsupported", line,
           rc, chat_template_name(k));
    CHECKF(strstr(err, needle) != NULL, "line %d: message [%s] lacks [%s]", line, err, needle);
}

/* What add_generation_prompt appends, per format. */
static const char *gen_suffix(enum chat_template_kind k)
{
    switch (k) {
    case CHAT_TEMPLATE_LLAMA3: return "<|start_header_id|>assistant<|end_header_id|>\n\n";
    case CHAT_TEMPLATE_LLAMA4: return "<|header_start|>assistant<|header_end|>\n\n";
    case CHAT_TEMPLATE_CHATML: return "<|im_start|>assistant\n";
    case CHAT_TEMPLATE_GEMMA: return "<start_of_turn>model\n";
    case CHAT_TEMPLATE_ZEPHYR:
    case CHAT_TEMPLATE_PHI3: return "<|assistant|>\n";
    default: return "";
    }
}

/* ---- the same conversation in every format ---- */

static const struct chat_message conv[] = {
    {"system", "You are a helpful assistant"},
    {"user", "Hello"},
    {"assistant", "Hi there"},
    {"user", "Who are you"},
    {"assistant", "   I am an assistant   "},
    {"user", "Another question"},
};

/* llama.cpp's llama_chat_apply_template gives these for conv with the
 * generation prompt. */
static const char *const conv_want[CHAT_TEMPLATE_COUNT_] = {
    [CHAT_TEMPLATE_LLAMA3] =
        "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    [CHAT_TEMPLATE_LLAMA4] =
        "<|header_start|>system<|header_end|>\n\nYou are a helpful assistant<|eot|>"
        "<|header_start|>user<|header_end|>\n\nHello<|eot|>"
        "<|header_start|>assistant<|header_end|>\n\nHi there<|eot|>"
        "<|header_start|>user<|header_end|>\n\nWho are you<|eot|>"
        "<|header_start|>assistant<|header_end|>\n\nI am an assistant<|eot|>"
        "<|header_start|>user<|header_end|>\n\nAnother question<|eot|>"
        "<|header_start|>assistant<|header_end|>\n\n",
    [CHAT_TEMPLATE_CHATML] =
        "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n"
        "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n"
        "<|im_start|>user\nWho are you<|im_end|>\n"
        "<|im_start|>assistant\n   I am an assistant   <|im_end|>\n"
        "<|im_start|>user\nAnother question<|im_end|>\n<|im_start|>assistant\n",
    [CHAT_TEMPLATE_LLAMA2] = "[INST] You are a helpful assistant\nHello [/INST]Hi there</s>"
                             "[INST] Who are you [/INST]   I am an assistant   </s>"
                             "[INST] Another question [/INST]",
    [CHAT_TEMPLATE_LLAMA2_SYS] =
        "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>"
        "[INST] Who are you [/INST]   I am an assistant   </s>[INST] Another question [/INST]",
    [CHAT_TEMPLATE_LLAMA2_SYS_BOS] =
        "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>"
        "<s>[INST] Who are you [/INST]   I am an assistant   </s>"
        "<s>[INST] Another question [/INST]",
    [CHAT_TEMPLATE_LLAMA2_SYS_STRIP] =
        "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>"
        "[INST] Who are you [/INST]I am an assistant</s>[INST] Another question [/INST]",
    [CHAT_TEMPLATE_MISTRAL_V1] =
        " [INST] You are a helpful assistant\n\nHello [/INST] Hi there</s>"
        " [INST] Who are you [/INST]    I am an assistant   </s> [INST] Another question [/INST]",
    [CHAT_TEMPLATE_MISTRAL_V3] =
        "[INST] You are a helpful assistant\n\nHello[/INST] Hi there</s>"
        "[INST] Who are you[/INST] I am an assistant</s>[INST] Another question[/INST]",
    [CHAT_TEMPLATE_MISTRAL_V3_TEKKEN] =
        "[INST]You are a helpful assistant\n\nHello[/INST]Hi there</s>"
        "[INST]Who are you[/INST]   I am an assistant   </s>[INST]Another question[/INST]",
    [CHAT_TEMPLATE_MISTRAL_V7] =
        "[SYSTEM_PROMPT] You are a helpful assistant[/SYSTEM_PROMPT][INST] Hello[/INST] Hi "
        "there</s>[INST] Who are you[/INST]    I am an assistant   </s>"
        "[INST] Another question[/INST]",
    [CHAT_TEMPLATE_MISTRAL_V7_TEKKEN] =
        "[SYSTEM_PROMPT]You are a helpful assistant[/SYSTEM_PROMPT][INST]Hello[/INST]Hi "
        "there</s>[INST]Who are you[/INST]   I am an assistant   </s>"
        "[INST]Another question[/INST]",
    [CHAT_TEMPLATE_GEMMA] =
        "<start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n"
        "<start_of_turn>model\nHi there<end_of_turn>\n<start_of_turn>user\nWho are "
        "you<end_of_turn>\n<start_of_turn>model\nI am an assistant<end_of_turn>\n"
        "<start_of_turn>user\nAnother question<end_of_turn>\n<start_of_turn>model\n",
    [CHAT_TEMPLATE_ZEPHYR] =
        "<|system|>\nYou are a helpful assistant<|endoftext|>\n<|user|>\nHello<|endoftext|>\n"
        "<|assistant|>\nHi there<|endoftext|>\n<|user|>\nWho are you<|endoftext|>\n"
        "<|assistant|>\n   I am an assistant   <|endoftext|>\n<|user|>\nAnother "
        "question<|endoftext|>\n<|assistant|>\n",
    [CHAT_TEMPLATE_PHI3] =
        "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n"
        "<|assistant|>\nHi there<|end|>\n<|user|>\nWho are you<|end|>\n"
        "<|assistant|>\n   I am an assistant   <|end|>\n<|user|>\nAnother question<|end|>\n"
        "<|assistant|>\n",
};

static void test_conversation(void)
{
    for (int k = 0; k < CHAT_TEMPLATE_COUNT_; k++) {
        CHECKF(conv_want[k] != NULL, "no expected prompt for %s", chat_template_name(k));
        if (!conv_want[k])
            continue;
        expect_prompt(k, conv, NMSG(conv), true, NULL, NULL, conv_want[k], __LINE__);
        /* Without the generation prompt: the same text minus its suffix. */
        const char *suf = gen_suffix(k);
        size_t wl = strlen(conv_want[k]), sl = strlen(suf);
        CHECK(wl > sl && strcmp(conv_want[k] + wl - sl, suf) == 0);
        char want[2048];
        CHECK(wl - sl < sizeof want);
        memcpy(want, conv_want[k], wl - sl);
        want[wl - sl] = '\0';
        expect_prompt(k, conv, NMSG(conv), false, NULL, NULL, want, __LINE__);
    }
}

/* ---- small conversations, format by format ---- */

static void test_small(void)
{
    static const struct chat_message one[] = {{"user", "Hi!"}};
    static const struct chat_message sys[] = {{"system", "Be brief."}, {"user", "Hi!"}};
    static const struct {
        enum chat_template_kind k;
        const char *one; /* without generation prompt */
        const char *sys; /* with it */
    } cases[] = {
        {CHAT_TEMPLATE_LLAMA3, "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>",
         "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
         "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
         "<|start_header_id|>assistant<|end_header_id|>\n\n"},
        {CHAT_TEMPLATE_LLAMA4, "<|header_start|>user<|header_end|>\n\nHi!<|eot|>",
         "<|header_start|>system<|header_end|>\n\nBe brief.<|eot|>"
         "<|header_start|>user<|header_end|>\n\nHi!<|eot|>"
         "<|header_start|>assistant<|header_end|>\n\n"},
        {CHAT_TEMPLATE_CHATML, "<|im_start|>user\nHi!<|im_end|>\n",
         "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
         "<|im_start|>assistant\n"},
        {CHAT_TEMPLATE_LLAMA2, "[INST] Hi! [/INST]", "[INST] Be brief.\nHi! [/INST]"},
        {CHAT_TEMPLATE_LLAMA2_SYS, "[INST] Hi! [/INST]",
         "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi! [/INST]"},
        {CHAT_TEMPLATE_LLAMA2_SYS_BOS, "[INST] Hi! [/INST]",
         "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi! [/INST]"},
        {CHAT_TEMPLATE_LLAMA2_SYS_STRIP, "[INST] Hi! [/INST]",
         "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi! [/INST]"},
        {CHAT_TEMPLATE_MISTRAL_V1, " [INST] Hi! [/INST]", " [INST] Be brief.\n\nHi! [/INST]"},
        {CHAT_TEMPLATE_MISTRAL_V3, "[INST] Hi![/INST]", "[INST] Be brief.\n\nHi![/INST]"},
        {CHAT_TEMPLATE_MISTRAL_V3_TEKKEN, "[INST]Hi![/INST]", "[INST]Be brief.\n\nHi![/INST]"},
        {CHAT_TEMPLATE_MISTRAL_V7, "[INST] Hi![/INST]",
         "[SYSTEM_PROMPT] Be brief.[/SYSTEM_PROMPT][INST] Hi![/INST]"},
        {CHAT_TEMPLATE_MISTRAL_V7_TEKKEN, "[INST]Hi![/INST]",
         "[SYSTEM_PROMPT]Be brief.[/SYSTEM_PROMPT][INST]Hi![/INST]"},
        {CHAT_TEMPLATE_GEMMA, "<start_of_turn>user\nHi!<end_of_turn>\n",
         "<start_of_turn>user\nBe brief.\n\nHi!<end_of_turn>\n<start_of_turn>model\n"},
        {CHAT_TEMPLATE_ZEPHYR, "<|user|>\nHi!<|endoftext|>\n",
         "<|system|>\nBe brief.<|endoftext|>\n<|user|>\nHi!<|endoftext|>\n<|assistant|>\n"},
        {CHAT_TEMPLATE_PHI3, "<|user|>\nHi!<|end|>\n",
         "<|system|>\nBe brief.<|end|>\n<|user|>\nHi!<|end|>\n<|assistant|>\n"},
    };
    CHECK(NMSG(cases) == CHAT_TEMPLATE_COUNT_);
    for (size_t i = 0; i < NMSG(cases); i++) {
        enum chat_template_kind k = cases[i].k;
        EXPECT(k, one, false, cases[i].one);
        char want[256];
        snprintf(want, sizeof want, "%s%s", cases[i].one, gen_suffix(k));
        EXPECT(k, one, true, want);
        EXPECT(k, sys, true, cases[i].sys);
    }

    /* A lone system message renders as the start of a conversation (gemma
     * holds it back for the first user turn). */
    static const struct chat_message lone[] = {{"system", "S"}};
    EXPECT(CHAT_TEMPLATE_MISTRAL_V1, lone, false, " [INST] S\n\n");
    EXPECT(CHAT_TEMPLATE_LLAMA2_SYS, lone, false, "[INST] <<SYS>>\nS\n<</SYS>>\n\n");
    EXPECT(CHAT_TEMPLATE_GEMMA, lone, false, "");
    EXPECT(CHAT_TEMPLATE_CHATML, lone, false, "<|im_start|>system\nS<|im_end|>\n");

    /* The model's own BOS/EOS texts, where the format writes them. */
    static const struct chat_message three[] = {
        {"user", "a"}, {"assistant", "b"}, {"user", "c"}};
    expect_prompt(CHAT_TEMPLATE_LLAMA2_SYS_BOS, three, 3, true, "<BOS>", "<EOS>",
                  "[INST] a [/INST]b<EOS><BOS>[INST] c [/INST]", __LINE__);
    expect_prompt(CHAT_TEMPLATE_LLAMA2, three, 3, true, "<BOS>", "<EOS>",
                  "[INST] a [/INST]b<EOS>[INST] c [/INST]", __LINE__);
    expect_prompt(CHAT_TEMPLATE_MISTRAL_V3, three, 3, true, "<BOS>", "<EOS>",
                  "[INST] a[/INST] b<EOS>[INST] c[/INST]", __LINE__);
    expect_prompt(CHAT_TEMPLATE_MISTRAL_V7, three, 3, false, "<BOS>", "<EOS>",
                  "[INST] a[/INST] b<EOS>[INST] c[/INST]", __LINE__);
    /* No format writes BOS at the start: the tokenizer adds it. */
    expect_prompt(CHAT_TEMPLATE_LLAMA3, three, 3, false, "<|begin_of_text|>", "<|eot_id|>",
                  "<|start_header_id|>user<|end_header_id|>\n\na<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\nb<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nc<|eot_id|>",
                  __LINE__);
    expect_prompt(CHAT_TEMPLATE_GEMMA, three, 3, true, "<bos>", "<eos>",
                  "<start_of_turn>user\na<end_of_turn>\n<start_of_turn>model\nb<end_of_turn>\n"
                  "<start_of_turn>user\nc<end_of_turn>\n<start_of_turn>model\n",
                  __LINE__);

    /* Formats without turn rules take any order, system anywhere. */
    static const struct chat_message free_order[] = {
        {"user", "u1"}, {"user", "u2"}, {"system", "s"}, {"assistant", "a"}, {"assistant", "b"}};
    EXPECT(CHAT_TEMPLATE_CHATML, free_order, false,
           "<|im_start|>user\nu1<|im_end|>\n<|im_start|>user\nu2<|im_end|>\n"
           "<|im_start|>system\ns<|im_end|>\n<|im_start|>assistant\na<|im_end|>\n"
           "<|im_start|>assistant\nb<|im_end|>\n");
    EXPECT(CHAT_TEMPLATE_MISTRAL_V7, free_order, true,
           "[INST] u1[/INST][INST] u2[/INST][SYSTEM_PROMPT] s[/SYSTEM_PROMPT] a</s> b</s>");
}

/* ---- content: empty, special characters, whitespace ---- */

static void test_content(void)
{
    static const char special[] =
        "He said \"hi\" & 'bye' <b>{{ x }}</b> {% if %}\n\tline two\\n "
        "\xc3\xbcn\xc3\xaf" "c\xc3\xb8"
        "d\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x99\x82 [INST] <|im_end|>";
    const struct chat_message sp[] = {{"user", special}};
    char want[1024];
    snprintf(want, sizeof want, "<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n",
             special);
    EXPECT(CHAT_TEMPLATE_CHATML, sp, true, want);
    snprintf(want, sizeof want, "[INST] %s [/INST]", special);
    EXPECT(CHAT_TEMPLATE_LLAMA2_SYS, sp, true, want);
    snprintf(want, sizeof want, "<|start_header_id|>user<|end_header_id|>\n\n%s<|eot_id|>",
             special);
    EXPECT(CHAT_TEMPLATE_LLAMA3, sp, false, want);
    snprintf(want, sizeof want, "<start_of_turn>user\n%s<end_of_turn>\n", special);
    EXPECT(CHAT_TEMPLATE_GEMMA, sp, false, want);

    /* Empty contents are allowed everywhere. */
    static const struct chat_message empty[] = {{"user", ""}, {"assistant", ""}, {"user", ""}};
    EXPECT(CHAT_TEMPLATE_CHATML, empty, true,
           "<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n<|im_end|>\n"
           "<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n");
    EXPECT(CHAT_TEMPLATE_LLAMA2, empty, true, "[INST]  [/INST]</s>[INST]  [/INST]");
    EXPECT(CHAT_TEMPLATE_MISTRAL_V3_TEKKEN, empty, true, "[INST][/INST]</s>[INST][/INST]");
    EXPECT(CHAT_TEMPLATE_LLAMA3, empty, false,
           "<|start_header_id|>user<|end_header_id|>\n\n<|eot_id|>"
           "<|start_header_id|>assistant<|end_header_id|>\n\n<|eot_id|>"
           "<|start_header_id|>user<|end_header_id|>\n\n<|eot_id|>");
    /* An empty (or all-blank) system text adds nothing to gemma's user turn. */
    static const struct chat_message blank_sys[] = {{"system", " \n "}, {"user", "Q"}};
    EXPECT(CHAT_TEMPLATE_GEMMA, blank_sys, false, "<start_of_turn>user\nQ<end_of_turn>\n");

    /* Surrounding whitespace: trimmed only where the model's template trims. */
    static const struct chat_message ws[] = {{"system", "\n sys \t"},
                                             {"user", "  two\n\nlines \n"}};
    EXPECT(CHAT_TEMPLATE_LLAMA3, ws, false,
           "<|start_header_id|>system<|end_header_id|>\n\nsys<|eot_id|>"
           "<|start_header_id|>user<|end_header_id|>\n\ntwo\n\nlines<|eot_id|>");
    EXPECT(CHAT_TEMPLATE_GEMMA, ws, false,
           "<start_of_turn>user\nsys\n\ntwo\n\nlines<end_of_turn>\n");
    EXPECT(CHAT_TEMPLATE_CHATML, ws, false,
           "<|im_start|>system\n\n sys \t<|im_end|>\n"
           "<|im_start|>user\n  two\n\nlines \n<|im_end|>\n");
    EXPECT(CHAT_TEMPLATE_LLAMA2_SYS_STRIP, ws, false,
           "[INST] <<SYS>>\nsys\n<</SYS>>\n\ntwo\n\nlines [/INST]");
    EXPECT(CHAT_TEMPLATE_LLAMA2_SYS, ws, false,
           "[INST] <<SYS>>\n\n sys \t\n<</SYS>>\n\n  two\n\nlines \n [/INST]");
}

/* ---- errors ---- */

static void test_errors(void)
{
    static const struct chat_message bad_role[] = {{"user", "a"}, {"tool", "b"}};
    static const struct chat_message upper_role[] = {{"User", "a"}};
    static const struct chat_message null_role[] = {{NULL, "a"}};
    static const struct chat_message null_content[] = {{"user", NULL}};
    for (int k = 0; k < CHAT_TEMPLATE_COUNT_; k++) {
        expect_fail(k, bad_role, 2, PAGODA_EINVAL, "tool", __LINE__);
        expect_fail(k, bad_role, 2, PAGODA_EINVAL, "message 1", __LINE__);
        expect_fail(k, upper_role, 1, PAGODA_EINVAL, "User", __LINE__);
        expect_fail(k, null_role, 1, PAGODA_EINVAL, "no role", __LINE__);
        expect_fail(k, null_content, 1, PAGODA_EINVAL, "no content", __LINE__);
        expect_fail(k, bad_role, 0, PAGODA_EINVAL, "no messages", __LINE__);
        expect_fail(k, NULL, 3, PAGODA_EINVAL, "no messages", __LINE__);
    }
    expect_fail((enum chat_template_kind)CHAT_TEMPLATE_COUNT_, bad_role, 1, PAGODA_EUNSUPPORTED,
                "unknown", __LINE__);
    expect_fail((enum chat_template_kind)-1, bad_role, 1, PAGODA_EUNSUPPORTED, "unknown",
                __LINE__);
    char *out = NULL;
    size_t len = 0;
    CHECK(chat_template_apply(CHAT_TEMPLATE_CHATML, bad_role, 1, true, NULL, NULL, NULL, &len,
                              NULL, 0) == PAGODA_EINVAL);
    CHECK(chat_template_apply(CHAT_TEMPLATE_CHATML, bad_role, 1, true, NULL, NULL, &out, NULL,
                              NULL, 0) == PAGODA_EINVAL);
    /* A NULL err buffer is fine. */
    CHECK(chat_template_apply(CHAT_TEMPLATE_CHATML, bad_role, 2, true, NULL, NULL, &out, &len,
                              NULL, 0) == PAGODA_EINVAL);

    /* Turn rules of the formats that need them. */
    static const struct chat_message two_users[] = {{"user", "a"}, {"user", "b"}};
    static const struct chat_message starts_assistant[] = {{"assistant", "a"}, {"user", "b"}};
    static const struct chat_message late_system[] = {
        {"user", "a"}, {"assistant", "b"}, {"system", "c"}, {"user", "d"}};
    static const struct chat_message sys_then_assistant[] = {{"system", "s"}, {"assistant", "a"}};
    static const struct chat_message two_systems[] = {
        {"system", "s"}, {"system", "t"}, {"user", "u"}};
    static const enum chat_template_kind strict[] = {
        CHAT_TEMPLATE_LLAMA2,     CHAT_TEMPLATE_LLAMA2_SYS,       CHAT_TEMPLATE_LLAMA2_SYS_BOS,
        CHAT_TEMPLATE_LLAMA2_SYS_STRIP, CHAT_TEMPLATE_MISTRAL_V1, CHAT_TEMPLATE_MISTRAL_V3,
        CHAT_TEMPLATE_MISTRAL_V3_TEKKEN, CHAT_TEMPLATE_GEMMA};
    for (size_t i = 0; i < NMSG(strict); i++) {
        enum chat_template_kind k = strict[i];
        expect_fail(k, two_users, 2, PAGODA_EINVAL, "alternate", __LINE__);
        expect_fail(k, two_users, 2, PAGODA_EINVAL, chat_template_name(k), __LINE__);
        expect_fail(k, starts_assistant, 2, PAGODA_EINVAL, "message 0", __LINE__);
        expect_fail(k, late_system, 4, PAGODA_EINVAL, "message 2", __LINE__);
        expect_fail(k, sys_then_assistant, 2, PAGODA_EINVAL, "followed by a user", __LINE__);
        expect_fail(k, two_systems, 3, PAGODA_EINVAL, "followed by a user", __LINE__);
    }
    static const enum chat_template_kind lax[] = {
        CHAT_TEMPLATE_LLAMA3, CHAT_TEMPLATE_LLAMA4,           CHAT_TEMPLATE_CHATML,
        CHAT_TEMPLATE_MISTRAL_V7, CHAT_TEMPLATE_MISTRAL_V7_TEKKEN, CHAT_TEMPLATE_ZEPHYR,
        CHAT_TEMPLATE_PHI3};
    for (size_t i = 0; i < NMSG(lax); i++) {
        char *o = NULL;
        size_t l = 0;
        int rc = chat_template_apply(lax[i], late_system, 4, true, NULL, NULL, &o, &l, NULL, 0);
        CHECKF(rc == 0 && o && l == strlen(o), "%s rejected a free order",
               chat_template_name(lax[i]));
        free(o);
    }
}

/* ---- names ---- */

static void test_names(void)
{
    for (int k = 0; k < CHAT_TEMPLATE_COUNT_; k++) {
        enum chat_template_kind got = CHAT_TEMPLATE_COUNT_;
        const char *name = chat_template_name(k);
        CHECKF(chat_template_from_name(name, &got) == 0 && got == (enum chat_template_kind)k,
               "name %s does not round-trip", name);
        for (int j = 0; j < k; j++)
            CHECK(strcmp(name, chat_template_name(j)) != 0);
        /* A bare name is also accepted where a Jinja text is expected. */
        got = CHAT_TEMPLATE_COUNT_;
        CHECK(chat_template_detect(name, strlen(name), &got, NULL, 0) == 0 &&
              got == (enum chat_template_kind)k);
    }
    static const struct {
        const char *name;
        enum chat_template_kind kind;
    } alias[] = {{"qwen", CHAT_TEMPLATE_CHATML},   {"qwen2", CHAT_TEMPLATE_CHATML},
                 {"llama3", CHAT_TEMPLATE_LLAMA3}, {"mistral", CHAT_TEMPLATE_LLAMA2},
                 {"gemma2", CHAT_TEMPLATE_GEMMA},  {"mistral-v7", CHAT_TEMPLATE_MISTRAL_V7}};
    for (size_t i = 0; i < NMSG(alias); i++) {
        enum chat_template_kind got = CHAT_TEMPLATE_COUNT_;
        CHECKF(chat_template_from_name(alias[i].name, &got) == 0 && got == alias[i].kind,
               "alias %s", alias[i].name);
    }
    enum chat_template_kind got;
    CHECK(chat_template_from_name("Llama3", &got) == PAGODA_EUNSUPPORTED);
    CHECK(chat_template_from_name("", &got) == PAGODA_EUNSUPPORTED);
    CHECK(chat_template_from_name("chatml ", &got) == PAGODA_EUNSUPPORTED);
    CHECK(chat_template_from_name(NULL, &got) == PAGODA_EINVAL);
    CHECK(chat_template_from_name("chatml", NULL) == PAGODA_EINVAL);
    CHECK(strcmp(chat_template_name((enum chat_template_kind)CHAT_TEMPLATE_COUNT_), "unknown") ==
          0);
    CHECK(strcmp(chat_template_name((enum chat_template_kind)-3), "unknown") == 0);
}

/* ---- recognising real chat templates ---- */

/* Excerpts of the chat templates published with these models (Jinja source as
 * stored in tokenizer.chat_template). */
static const char tmpl_llama3[] =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | "
    "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% "
    "endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
static const char tmpl_llama31[] =
    "{{- bos_token }}\n{%- if custom_tools is defined %}\n    {%- set tools = custom_tools %}\n"
    "{%- endif %}\n{%- if not tools_in_user_message is defined %}\n"
    "{#- System message + builtin tools #}\n"
    "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n"
    "{%- if builtin_tools is defined or tools is not none %}\n"
    "    {{- \"Environment: ipython\\n\" }}\n{%- endif %}\n"
    "{{- \"Cutting Knowledge Date: December 2023\\n\" }}\n"
    "{{- \"Today Date: \" + date_string + \"\\n\\n\" }}\n";
static const char tmpl_qwen2[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\nYou are a helpful assistant<|im_end|>\n' }}{% endif %}{{'<|im_start|>' "
    "+ message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if "
    "add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
static const char tmpl_qwen25[] =
    "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == "
    "'system' %}\n        {{- messages[0]['content'] }}\n    {%- else %}\n        {{- 'You are "
    "Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n    {%- endif %}\n"
    "    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user "
    "query.\" }}\n";
static const char tmpl_llama2_chat[] =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set "
    "system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% "
    "set system_message = false %}{% endif %}{% for message in loop_messages %}{% if "
    "(message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation "
    "roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == "
    "0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
    "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] "
    "%}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() "
    "+ ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + "
    "eos_token }}{% endif %}{% endfor %}";
static const char tmpl_llama2_sys_bos[] =
    "{%- for idx in range(0, messages|length) -%}\n{%- if messages[idx]['role'] == 'user' -%}\n"
    "{%- if idx > 1 -%}\n{{- bos_token + '[INST] ' + messages[idx]['content'] + ' [/INST]' -}}\n"
    "{%- else -%}\n{{- messages[idx]['content'] + ' [/INST]' -}}\n{%- endif -%}\n"
    "{% elif messages[idx]['role'] == 'system' %}\n"
    "{{- '[INST] <<SYS>>\\n' + messages[idx]['content'] + '\\n<</SYS>>\\n\\n' -}}\n";
static const char tmpl_llama2_sys[] =
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ '[INST] <<SYS>>\\n' + "
    "message['content'] + '\\n<</SYS>>\\n\\n' }}{% elif message['role'] == 'user' %}{{ "
    "message['content'] + ' [/INST]' }}{% endif %}{% endfor %}";
static const char tmpl_mistral_v02[] =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ "
    "'[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ "
    "message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles "
    "are supported!') }}{% endif %}{% endfor %}";
static const char tmpl_mistral_v1[] =
    "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = "
    "messages[0]['content'] %}\n    {%- set loop_messages = messages[1:] %}\n{%- else %}\n"
    "    {%- set loop_messages = messages %}\n{%- endif %}\n\n{{- bos_token }}\n"
    "{%- for message in loop_messages %}\n    {%- if message['role'] == 'user' %}\n"
    "        {%- if loop.first and system_message is defined %}\n"
    "            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' "
    "}}\n        {%- else %}\n            {{- ' [INST] ' + message['content'] + ' [/INST]' }}\n";
static const char tmpl_mistral_v3[] =
    "{%- for message in loop_messages %}\n    {%- if message[\"role\"] == \"user\" %}\n"
    "        {%- if tools is not none and (message == user_messages[-1]) %}\n"
    "            {{- \"[AVAILABLE_TOOLS] [\" }}\n        {%- endif %}\n"
    "        {%- if loop.last and system_message is defined %}\n"
    "            {{- \"[INST] \" + system_message + \"\\n\\n\" + message[\"content\"] + "
    "\"[/INST]\" }}\n        {%- else %}\n"
    "            {{- \"[INST] \" + message[\"content\"] + \"[/INST]\" }}\n";
static const char tmpl_mistral_tekken[] =
    "{%- for message in loop_messages %}\n    {%- if message[\"role\"] == \"user\" %}\n"
    "        {%- if tools is not none and (message == user_messages[-1]) %}\n"
    "            {{- \"[AVAILABLE_TOOLS][\" }}\n        {%- endif %}\n"
    "        {%- if loop.last and system_message is defined %}\n"
    "            {{- \"[INST]\" + system_message + \"\\n\\n\" + message[\"content\"] + "
    "\"[/INST]\" }}\n        {%- else %}\n"
    "            {{- \"[INST]\" + message[\"content\"] + \"[/INST]\" }}\n";
static const char tmpl_mistral_v7[] =
    "{%- set today = strftime_now(\"%Y-%m-%d\") %}\n{{- bos_token }}\n"
    "{{- '[SYSTEM_PROMPT]' + system_message + '[/SYSTEM_PROMPT]' }}\n"
    "{%- for message in loop_messages %}\n    {%- if message['role'] == 'user' %}\n"
    "        {{- '[INST]' + message['content'] + '[/INST]' }}\n";
static const char tmpl_gemma[] =
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not "
    "supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}"
    "{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ "
    "'<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% "
    "endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";
static const char tmpl_phi3[] =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}"
    "{{'<|user|>' + '\n' + message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}"
    "{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\n'}}"
    "{% endif %}{% endfor %}";
static const char tmpl_zephyr[] =
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\n' + "
    "message['content'] + '<|endoftext|>\n' }}{% else %}{{ '<|' + message['role'] + '|>\n' + "
    "message['content'] + '<|endoftext|>\n' }}{% endif %}{% endfor %}";
static const char tmpl_llama4[] =
    "{{- bos_token }}\n{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- set system_message = messages[0]['content']|trim %}\n"
    "{{- \"<|header_start|>system<|header_end|>\\n\\n\" }}\n"
    "{%- for message in messages %}\n"
    "    {{- '<|header_start|>' + message['role'] + '<|header_end|>\\n\\n' }}\n"
    "    {{- message['content'] | trim + '<|eot|>' }}\n";
static const char tmpl_gpt_oss[] =
    "{{- \"<|start|>system<|message|>\" }}{{- \"# Valid channels: analysis, commentary, "
    "final. Channel must be included for every message.\" }}{{- \"<|end|>\" }}"
    "{{- '<|start|>assistant<|channel|>final<|message|>' + message.content + '<|end|>' }}";
static const char tmpl_chatglm4[] =
    "[gMASK]<sop>{% for item in messages %}{% if item['role'] == 'system' %}<|system|>\n"
    "{{ item['content'] }}{% elif item['role'] == 'user' %}<|user|>\n{{ item['content'] }}"
    "{% elif item['role'] == 'assistant' %}<|assistant|>\n{{ item['content'] }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";
static const char tmpl_command_r[] =
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] "
    "%}{% set system_message = messages[0]['content'] %}{% endif %}{% for message in "
    "loop_messages %}{% if message['role'] == 'user' %}{{ "
    "'<|START_OF_TURN_TOKEN|><|USER_TOKEN|>' + content.strip() + '<|END_OF_TURN_TOKEN|>' }}";
static const char tmpl_phi4[] =
    "{% for message in messages %}{% if (message['role'] == 'system') %}{{'<|im_start|>system"
    "<|im_sep|>' + message['content'] + '<|im_end|>'}}{% endif %}{% endfor %}";
static const char tmpl_deepseek3[] =
    "{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}{%- if message['role'] == "
    "'user' %}{{'<\xef\xbd\x9cUser\xef\xbd\x9c>' + message['content']}}{%- endif %}{%- if "
    "message['role'] == 'assistant' %}{{'<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>' + "
    "message['content'] + '<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>'}}";

static void test_detect(void)
{
    expect_detect(tmpl_llama3, CHAT_TEMPLATE_LLAMA3, __LINE__);
    expect_detect(tmpl_llama31, CHAT_TEMPLATE_LLAMA3, __LINE__);
    expect_detect(tmpl_qwen2, CHAT_TEMPLATE_CHATML, __LINE__);
    expect_detect(tmpl_qwen25, CHAT_TEMPLATE_CHATML, __LINE__);
    expect_detect(tmpl_llama2_chat, CHAT_TEMPLATE_LLAMA2_SYS_STRIP, __LINE__);
    expect_detect(tmpl_llama2_sys_bos, CHAT_TEMPLATE_LLAMA2_SYS_BOS, __LINE__);
    expect_detect(tmpl_llama2_sys, CHAT_TEMPLATE_LLAMA2_SYS, __LINE__);
    expect_detect(tmpl_mistral_v02, CHAT_TEMPLATE_LLAMA2, __LINE__);
    expect_detect(tmpl_mistral_v1, CHAT_TEMPLATE_MISTRAL_V1, __LINE__);
    expect_detect(tmpl_mistral_v3, CHAT_TEMPLATE_MISTRAL_V3, __LINE__);
    expect_detect(tmpl_mistral_tekken, CHAT_TEMPLATE_MISTRAL_V3_TEKKEN, __LINE__);
    expect_detect(tmpl_mistral_v7, CHAT_TEMPLATE_MISTRAL_V7, __LINE__);
    expect_detect(tmpl_gemma, CHAT_TEMPLATE_GEMMA, __LINE__);
    expect_detect(tmpl_phi3, CHAT_TEMPLATE_PHI3, __LINE__);
    expect_detect(tmpl_zephyr, CHAT_TEMPLATE_ZEPHYR, __LINE__);
    expect_detect(tmpl_llama4, CHAT_TEMPLATE_LLAMA4, __LINE__);
    expect_detect_fail(tmpl_gpt_oss, strlen(tmpl_gpt_oss), "gpt-oss", __LINE__);
    expect_detect_fail(tmpl_chatglm4, strlen(tmpl_chatglm4), "chatglm4", __LINE__);

    /* Known families without a built-in format are named. */
    expect_detect_fail(tmpl_command_r, strlen(tmpl_command_r), "command-r", __LINE__);
    expect_detect_fail(tmpl_phi4, strlen(tmpl_phi4), "phi4", __LINE__);
    expect_detect_fail(tmpl_deepseek3, strlen(tmpl_deepseek3), "deepseek3", __LINE__);
    static const char glm[] = "{{ '<|user|>\n' + m }}{{ '<|assistant|>\n' }}";
    expect_detect_fail(glm, strlen(glm), "glmedge", __LINE__);
    /* Unknown: the message quotes how the template begins. */
    static const char unknown[] = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n"
                                  "{% endfor %}{{ 'ASSISTANT>' }}";
    expect_detect_fail(unknown, strlen(unknown), "it begins \"{% for m in messages %}", __LINE__);
    expect_detect_fail(unknown, strlen(unknown), "...", __LINE__);
    expect_detect_fail("{{ x }}\n\x01", 9, "{{ x }}\\n\\x01\"", __LINE__);
    expect_detect_fail("", 0, "empty", __LINE__);
    /* Only len bytes are read: a marker past the end does not count. */
    expect_detect_fail(tmpl_qwen2, 20, "unrecognised", __LINE__);
    expect_detect_fail("chatmlx", 7, "unrecognised", __LINE__);
    enum chat_template_kind k = CHAT_TEMPLATE_COUNT_;
    CHECK(chat_template_detect("chatmlx", 6, &k, NULL, 0) == 0 && k == CHAT_TEMPLATE_CHATML);
    CHECK(chat_template_detect("<|im_start|>", 12, &k, NULL, 0) == 0 &&
          k == CHAT_TEMPLATE_CHATML);
    CHECK(chat_template_detect("mistral-ish", 11, &k, NULL, 0) == 0 && k == CHAT_TEMPLATE_LLAMA2);
    CHECK(chat_template_detect(NULL, 3, &k, NULL, 0) == PAGODA_EINVAL);
    CHECK(chat_template_detect("x", 1, NULL, NULL, 0) == PAGODA_EINVAL);
}

/* The template stored in a real GGUF vocabulary (skipped without the data). */
static void test_detect_gguf(void)
{
    const char *dir = test_reference_dir();
    if (!dir) {
        fprintf(stderr, "skipping the GGUF chat_template check\n");
        return;
    }
    char path[4096 + 64];
    snprintf(path, sizeof path, "%s/vocab/ggml-vocab-phi-3.gguf", dir);
    struct gguf_file *g = NULL;
    char err[256];
    int rc = gguf_open(path, &g, err, sizeof err);
    CHECKF(rc == 0, "%s", err);
    if (rc != 0)
        return;
    struct gguf_str s;
    CHECK(gguf_get_str(g, "tokenizer.chat_template", &s));
    enum chat_template_kind k = CHAT_TEMPLATE_COUNT_;
    rc = chat_template_detect(s.ptr, (size_t)s.len, &k, err, sizeof err);
    CHECKF(rc == 0 && k == CHAT_TEMPLATE_PHI3, "rc %d kind %s: %s", rc, chat_template_name(k),
           err);
    gguf_close(g);
}

/* ---- random conversations ---- */

static void random_content(struct rng *r, char *buf, size_t cap)
{
    static const char *const pieces[] = {
        "a", "Zq", " ", "  ", "\n", "\t", "\"", "'", "\\", "{{", "}}", "<s>", "</s>", "[INST]",
        "\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x99\x82", "0", "x y", "\r\n"};
    size_t n = rng_next(r) % 9, o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = pieces[rng_next(r) % NMSG(pieces)];
        size_t l = strlen(p);
        if (o + l + 1 > cap)
            break;
        memcpy(buf + o, p, l);
        o += l;
    }
    buf[o] = '\0';
}

static bool trims_all(enum chat_template_kind k)
{
    return k == CHAT_TEMPLATE_LLAMA3 || k == CHAT_TEMPLATE_LLAMA4 || k == CHAT_TEMPLATE_GEMMA ||
           k == CHAT_TEMPLATE_LLAMA2_SYS_STRIP;
}

static size_t trimmed(const char *s, const char **start)
{
    size_t n = strlen(s), b = 0;
    while (b < n && strchr(" \t\n\v\f\r", s[b]))
        b++;
    while (n > b && strchr(" \t\n\v\f\r", s[n - 1]))
        n--;
    *start = s + b;
    return n - b;
}

static bool contains_n(const char *hay, size_t hl, const char *needle, size_t nl)
{
    if (nl == 0)
        return true;
    for (size_t i = 0; i + nl <= hl; i++)
        if (memcmp(hay + i, needle, nl) == 0)
            return true;
    return false;
}

static void test_random(void)
{
    struct rng r;
    rng_seed(&r, 20261125);
    enum { MAXM = 9 };
    static char text[MAXM][64];
    for (int k = 0; k < CHAT_TEMPLATE_COUNT_; k++) {
        bool strict = k != CHAT_TEMPLATE_LLAMA3 && k != CHAT_TEMPLATE_LLAMA4 &&
                      k != CHAT_TEMPLATE_CHATML && k != CHAT_TEMPLATE_MISTRAL_V7 &&
                      k != CHAT_TEMPLATE_MISTRAL_V7_TEKKEN && k != CHAT_TEMPLATE_ZEPHYR &&
                      k != CHAT_TEMPLATE_PHI3;
        int bad = 0;
        for (int iter = 0; iter < 150; iter++) {
            struct chat_message m[MAXM];
            size_t n = 1 + rng_next(&r) % MAXM;
            bool sys = rng_next(&r) % 2;
            static const char *const roles[] = {"system", "user", "assistant"};
            for (size_t i = 0; i < n; i++) {
                random_content(&r, text[i], sizeof text[i]);
                m[i].content = text[i];
                size_t turn = i - (sys ? 1 : 0);
                if (strict)
                    m[i].role = (sys && i == 0) ? "system" : (turn % 2 ? "assistant" : "user");
                else
                    m[i].role = roles[rng_next(&r) % 3];
            }
            char *prev = NULL, *full = NULL, *gen = NULL;
            size_t prev_len = 0, full_len = 0, gen_len = 0;
            int rc1 = chat_template_apply(k, m, n, false, NULL, NULL, &full, &full_len, NULL, 0);
            int rc2 = chat_template_apply(k, m, n, true, NULL, NULL, &gen, &gen_len, NULL, 0);
            int rc3 = n > 1 ? chat_template_apply(k, m, n - 1, false, NULL, NULL, &prev, &prev_len,
                                                  NULL, 0)
                            : 0;
            bool ok = rc1 == 0 && rc2 == 0 && rc3 == 0;
            if (ok) {
                ok = full_len == strlen(full) && gen_len == strlen(gen);
                /* Prefix property, and the generation prompt only appends. */
                if (prev)
                    ok = ok && prev_len <= full_len && memcmp(prev, full, prev_len) == 0;
                ok = ok && full_len <= gen_len && memcmp(full, gen, full_len) == 0;
                const char *suf = gen_suffix(k);
                ok = ok && strcmp(gen + full_len, suf) == 0;
                /* Every content is in the prompt, trimmed only where the format trims. */
                for (size_t i = 0; i < n && ok; i++) {
                    /* gemma holds a system text back until a user turn comes. */
                    if (k == CHAT_TEMPLATE_GEMMA && n == 1)
                        break;
                    const char *c = m[i].content;
                    size_t cl = strlen(c);
                    if (trims_all(k) ||
                        (k == CHAT_TEMPLATE_MISTRAL_V3 && strcmp(m[i].role, "assistant") == 0))
                        cl = trimmed(c, &c);
                    ok = contains_n(full, full_len, c, cl);
                }
            }
            if (!ok && bad++ < 3)
                fprintf(stderr, "%s: random conversation %d (n=%zu) failed (rc %d %d %d)\n",
                        chat_template_name(k), iter, n, rc1, rc2, rc3);
            CHECK(ok);
            free(prev);
            free(full);
            free(gen);
        }
    }
}

int main(void)
{
    test_conversation();
    test_small();
    test_content();
    test_errors();
    test_names();
    test_detect();
    test_detect_gguf();
    test_random();
    TEST_END();
}
