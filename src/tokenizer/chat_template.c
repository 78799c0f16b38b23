/*
 * chat_template.c: the built-in chat formats: names, recognition of a Jinja
 * chat template by its markers, and rendering a conversation into prompt
 * text. The output of each format follows llama.cpp's built-in templates
 * byte for byte (see chat_template.h for the BOS/EOS contract).
 */
#include "tokenizer/chat_template.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"

/* ---- names ---- */

static const char *const chat_kind_names[CHAT_TEMPLATE_COUNT_] = {
    [CHAT_TEMPLATE_LLAMA3] = "llama3",
    [CHAT_TEMPLATE_LLAMA4] = "llama4",
    [CHAT_TEMPLATE_CHATML] = "chatml",
    [CHAT_TEMPLATE_LLAMA2] = "llama2",
    [CHAT_TEMPLATE_LLAMA2_SYS] = "llama2-sys",
    [CHAT_TEMPLATE_LLAMA2_SYS_BOS] = "llama2-sys-bos",
    [CHAT_TEMPLATE_LLAMA2_SYS_STRIP] = "llama2-sys-strip",
    [CHAT_TEMPLATE_MISTRAL_V1] = "mistral-v1",
    [CHAT_TEMPLATE_MISTRAL_V3] = "mistral-v3",
    [CHAT_TEMPLATE_MISTRAL_V3_TEKKEN] = "mistral-v3-tekken",
    [CHAT_TEMPLATE_MISTRAL_V7] = "mistral-v7",
    [CHAT_TEMPLATE_MISTRAL_V7_TEKKEN] = "mistral-v7-tekken",
    [CHAT_TEMPLATE_GEMMA] = "gemma",
    [CHAT_TEMPLATE_ZEPHYR] = "zephyr",
    [CHAT_TEMPLATE_PHI3] = "phi3",
};

static const struct {
    const char *alias;
    enum chat_template_kind kind;
} chat_aliases[] = {
    {"qwen", CHAT_TEMPLATE_CHATML},      {"qwen2", CHAT_TEMPLATE_CHATML},
    {"qwen2.5", CHAT_TEMPLATE_CHATML},   {"yi", CHAT_TEMPLATE_CHATML},
    {"hermes", CHAT_TEMPLATE_CHATML},    {"llama-3", CHAT_TEMPLATE_LLAMA3},
    {"llama3.1", CHAT_TEMPLATE_LLAMA3},  {"llama3.2", CHAT_TEMPLATE_LLAMA3},
    {"llama-2", CHAT_TEMPLATE_LLAMA2},   {"mistral", CHAT_TEMPLATE_LLAMA2},
    {"gemma2", CHAT_TEMPLATE_GEMMA},     {"gemma-2", CHAT_TEMPLATE_GEMMA},
    {"phi-3", CHAT_TEMPLATE_PHI3},
};

const char *chat_template_name(enum chat_template_kind k)
{
    if ((int)k < 0 || k >= CHAT_TEMPLATE_COUNT_)
        return "unknown";
    return chat_kind_names[k];
}

/* Name lookup over len bytes, so detect() can try a template text that is
 * not NUL-terminated. */
static int chat_lookup_name(const char *name, size_t len, enum chat_template_kind *out)
{
    for (int k = 0; k < CHAT_TEMPLATE_COUNT_; k++) {
        if (strlen(chat_kind_names[k]) == len && memcmp(chat_kind_names[k], name, len) == 0) {
            *out = (enum chat_template_kind)k;
            return 0;
        }
    }
    for (size_t i = 0; i < sizeof chat_aliases / sizeof chat_aliases[0]; i++) {
        if (strlen(chat_aliases[i].alias) == len &&
            memcmp(chat_aliases[i].alias, name, len) == 0) {
            *out = chat_aliases[i].kind;
            return 0;
        }
    }
    return PAGODA_EUNSUPPORTED;
}

int chat_template_from_name(const char *name, enum chat_template_kind *out)
{
    if (!name || !out)
        return PAGODA_EINVAL;
    return chat_lookup_name(name, strlen(name), out);
}

/* ---- detection ---- */

struct chat_text {
    const char *p;
    size_t len;
};

static bool chat_has(struct chat_text t, const char *needle)
{
    size_t nl = strlen(needle);
    if (nl == 0)
        return true;
    if (nl > t.len)
        return false;
    for (size_t i = 0; i + nl <= t.len; i++) {
        if (t.p[i] == needle[0] && memcmp(t.p + i, needle, nl) == 0)
            return true;
    }
    return false;
}

/* Families llama.cpp knows that pagoda has no built-in format for; found so
 * the error can say what the template is instead of only "unknown". Each
 * entry needs all of its markers. */
struct chat_family {
    const char *name;
    const char *marker[3];
};

/* Checked (as llama.cpp does) after zephyr and before gemma. */
static const struct chat_family chat_families_mid[] = {
    {"monarch", {"bos_token + message['role']", NULL, NULL}},
};

/* Checked after gemma and before llama3. */
static const struct chat_family chat_families_late[] = {
    {"orion", {"'\\n\\nAssistant: ' + eos_token", NULL, NULL}},
    {"openchat", {"GPT4 Correct ", NULL, NULL}},
    {"vicuna", {"USER: ", "ASSISTANT: ", NULL}},
    {"deepseek", {"### Instruction:", "<|EOT|>", NULL}},
    {"command-r", {"<|START_OF_TURN_TOKEN|>", "<|USER_TOKEN|>", NULL}},
};

/* Checked after llama3 and before llama4. */
static const struct chat_family chat_families_last[] = {
    {"chatglm3", {"[gMASK]sop", NULL, NULL}},
    {"minicpm", {"<\xe7\x94\xa8\xe6\x88\xb7>", NULL, NULL}},
    {"deepseek2", {"'Assistant: ' + message['content'] + eos_token", NULL, NULL}},
    {"deepseek3",
     {"<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>", "<\xef\xbd\x9cUser\xef\xbd\x9c>",
      "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"}},
    {"exaone", {"[|system|]", "[|assistant|]", "[|endofturn|]"}},
    {"rwkv-world", {"rwkv-world", NULL, NULL}},
    {"granite", {"<|start_of_role|>", NULL, NULL}},
    {"gigachat", {"additional_special_tokens[0] + message['content']", NULL, NULL}},
    {"megrez", {"<|role_start|>", NULL, NULL}},
    {"bailing", {"<role>ASSISTANT</role>", "'HUMAN'", NULL}},
};

/* Checked after llama4. */
static const struct chat_family chat_families_newer[] = {
    {"dots1", {"<|endofuserprompt|>", NULL, NULL}},
    {"hunyuan-moe", {"<|extra_0|>", "<|extra_4|>", NULL}},
    {"gpt-oss", {"<|start|>", "<|channel|>", NULL}},
    {"hunyuan-dense", {"<\xef\xbd\x9chy_Assistant\xef\xbd\x9c>", NULL, NULL}},
    {"kimi-k2", {"<|im_assistant|>assistant<|im_middle|>", NULL, NULL}},
    {"seed-oss", {"<seed:bos>", NULL, NULL}},
};

static const char *chat_match_family(struct chat_text t, const struct chat_family *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bool all = true;
        for (int m = 0; m < 3 && f[i].marker[m]; m++)
            all = all && chat_has(t, f[i].marker[m]);
        if (all)
            return f[i].name;
    }
    return NULL;
}

static int chat_unsupported_family(const char *family, char *err, size_t errlen)
{
    return err_set(err, errlen, PAGODA_EUNSUPPORTED,
                   "chat template looks like the %s format, which is not built in "
                   "(choose one by name: llama3, chatml, llama2, mistral-v3, gemma, ...)",
                   family);
}

/* The template's first bytes (at most 60), printable, for the "unknown"
 * message. buf must hold 4 bytes per source byte plus 4. */
static void chat_quote_start(struct chat_text t, char *buf)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, n = t.len < 60 ? t.len : 60;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t.p[i];
        if (c == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        } else {
            buf[o++] = (char)c; /* UTF-8 passes through */
        }
    }
    if (n < t.len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
}

static enum chat_template_kind chat_detect_inst(struct chat_text t)
{
    if (chat_has(t, "[SYSTEM_PROMPT]"))
        return CHAT_TEMPLATE_MISTRAL_V7;
    /* Mistral's official templates: v1 writes its system message with a
     * leading " [INST] ", v3 and v3-tekken know tool calls. */
    if (chat_has(t, "' [INST] ' + system_message") || chat_has(t, "[AVAILABLE_TOOLS]")) {
        if (chat_has(t, " [INST]"))
            return CHAT_TEMPLATE_MISTRAL_V1;
        if (chat_has(t, "\"[INST]\""))
            return CHAT_TEMPLATE_MISTRAL_V3_TEKKEN;
        return CHAT_TEMPLATE_MISTRAL_V3;
    }
    if (chat_has(t, "content.strip()"))
        return CHAT_TEMPLATE_LLAMA2_SYS_STRIP;
    if (chat_has(t, "bos_token + '[INST]"))
        return CHAT_TEMPLATE_LLAMA2_SYS_BOS;
    if (chat_has(t, "<<SYS>>"))
        return CHAT_TEMPLATE_LLAMA2_SYS;
    return CHAT_TEMPLATE_LLAMA2;
}

int chat_template_detect(const char *jinja_text, size_t len, enum chat_template_kind *out,
                         char *err, size_t errlen)
{
    if (!jinja_text || !out)
        return err_set(err, errlen, PAGODA_EINVAL, "chat template: NULL argument");
    struct chat_text t = {jinja_text, len};
    if (len == 0)
        return err_set(err, errlen, PAGODA_EUNSUPPORTED, "chat template is empty");
    if (chat_lookup_name(jinja_text, len, out) == 0)
        return 0;

    const char *family = NULL;
    if (chat_has(t, "<|im_start|>")) {
        if (chat_has(t, "<|im_sep|>"))
            return chat_unsupported_family("phi4", err, errlen);
        if (chat_has(t, "<end_of_utterance>"))
            return chat_unsupported_family("smolvlm", err, errlen);
        *out = CHAT_TEMPLATE_CHATML;
        return 0;
    }
    if ((len >= 7 && memcmp(jinja_text, "mistral", 7) == 0) || chat_has(t, "[INST]")) {
        *out = chat_detect_inst(t);
        return 0;
    }
    if (chat_has(t, "<|assistant|>") && chat_has(t, "<|end|>")) {
        *out = CHAT_TEMPLATE_PHI3;
        return 0;
    }
    if (chat_has(t, "[gMASK]<sop>"))
        return chat_unsupported_family("chatglm4", err, errlen);
    if (chat_has(t, "<|assistant|>") && chat_has(t, "<|user|>"))
        return chat_unsupported_family(chat_has(t, "</s>") ? "falcon3" : "glmedge", err,
                                       errlen);
    if (chat_has(t, "<|{{ item['role'] }}|>") && chat_has(t, "<|begin_of_image|>"))
        return chat_unsupported_family("glmedge", err, errlen);
    if (chat_has(t, "<|user|>") && chat_has(t, "<|endoftext|>")) {
        *out = CHAT_TEMPLATE_ZEPHYR;
        return 0;
    }
    family = chat_match_family(t, chat_families_mid,
                               sizeof chat_families_mid / sizeof chat_families_mid[0]);
    if (family)
        return chat_unsupported_family(family, err, errlen);
    if (chat_has(t, "<start_of_turn>")) {
        *out = CHAT_TEMPLATE_GEMMA;
        return 0;
    }
    family = chat_match_family(t, chat_families_late,
                               sizeof chat_families_late / sizeof chat_families_late[0]);
    if (family)
        return chat_unsupported_family(family, err, errlen);
    if (chat_has(t, "<|start_header_id|>") && chat_has(t, "<|end_header_id|>")) {
        *out = CHAT_TEMPLATE_LLAMA3;
        return 0;
    }
    family = chat_match_family(t, chat_families_last,
                               sizeof chat_families_last / sizeof chat_families_last[0]);
    if (family)
        return chat_unsupported_family(family, err, errlen);
    if (chat_has(t, "<|header_start|>") && chat_has(t, "<|header_end|>")) {
        *out = CHAT_TEMPLATE_LLAMA4;
        return 0;
    }
    family = chat_match_family(t, chat_families_newer,
                               sizeof chat_families_newer / sizeof chat_families_newer[0]);
    if (family)
        return chat_unsupported_family(family, err, errlen);

    char head[60 * 4 + 4];
    chat_quote_start(t, head);
    return err_set(err, errlen, PAGODA_EUNSUPPORTED,
                   "unrecognised chat template (%zu bytes, none of the known markers such as "
                   "<|im_start|>, [INST], <start_of_turn>, <|start_header_id|>); it begins \"%s\"",
                   len, head);
}

/* ---- rendering ---- */

/* A growing NUL-terminated string; after the first failed allocation every
 * append is a no-op and failed stays set. */
struct chat_buf {
    char *p;
    size_t len, cap;
    bool failed;
};

static void chat_put_n(struct chat_buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            if (cap > SIZE_MAX / 2) {
                b->failed = true;
                return;
            }
            cap *= 2;
        }
        char *np = realloc(b->p, cap);
        if (!np) {
            b->failed = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void chat_put(struct chat_buf *b, const char *s)
{
    chat_put_n(b, s, strlen(s));
}

static bool chat_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Appends s without its leading and trailing ASCII whitespace. */
static void chat_put_trimmed(struct chat_buf *b, const char *s)
{
    size_t n = strlen(s), start = 0;
    while (start < n && chat_is_space(s[start]))
        start++;
    while (n > start && chat_is_space(s[n - 1]))
        n--;
    chat_put_n(b, s + start, n - start);
}

enum chat_role { CHAT_ROLE_SYSTEM, CHAT_ROLE_USER, CHAT_ROLE_ASSISTANT };

static bool chat_folds_system(enum chat_template_kind k)
{
    switch (k) {
    case CHAT_TEMPLATE_LLAMA2:
    case CHAT_TEMPLATE_LLAMA2_SYS:
    case CHAT_TEMPLATE_LLAMA2_SYS_BOS:
    case CHAT_TEMPLATE_LLAMA2_SYS_STRIP:
    case CHAT_TEMPLATE_MISTRAL_V1:
    case CHAT_TEMPLATE_MISTRAL_V3:
    case CHAT_TEMPLATE_MISTRAL_V3_TEKKEN:
    case CHAT_TEMPLATE_GEMMA:
        return true;
    default:
        return false;
    }
}

/* Checks every message and fills roles[] (n entries). */
static int chat_validate(enum chat_template_kind k, const struct chat_message *msgs, size_t n,
                         enum chat_role *roles, char *err, size_t errlen)
{
    const char *name = chat_template_name(k);
    for (size_t i = 0; i < n; i++) {
        const char *r = msgs[i].role;
        if (!r)
            return err_set(err, errlen, PAGODA_EINVAL, "chat message %zu has no role", i);
        if (!msgs[i].content)
            return err_set(err, errlen, PAGODA_EINVAL, "chat message %zu (%s) has no content", i,
                           r);
        if (strcmp(r, "system") == 0)
            roles[i] = CHAT_ROLE_SYSTEM;
        else if (strcmp(r, "user") == 0)
            roles[i] = CHAT_ROLE_USER;
        else if (strcmp(r, "assistant") == 0)
            roles[i] = CHAT_ROLE_ASSISTANT;
        else
            return err_set(err, errlen, PAGODA_EINVAL,
                           "chat message %zu has role \"%.40s\"; expected system, user or "
                           "assistant",
                           i, r);
    }
    if (!chat_folds_system(k))
        return 0;
    size_t first = 0;
    if (roles[0] == CHAT_ROLE_SYSTEM) {
        /* A lone system message is allowed (it renders as the start of a
         * conversation), so prompts can be built up one message at a time. */
        if (n >= 2 && roles[1] != CHAT_ROLE_USER)
            return err_set(err, errlen, PAGODA_EINVAL,
                           "%s chat: the system message must be followed by a user message",
                           name);
        first = 1;
    }
    for (size_t i = first; i < n; i++) {
        enum chat_role want = ((i - first) % 2 == 0) ? CHAT_ROLE_USER : CHAT_ROLE_ASSISTANT;
        if (roles[i] == CHAT_ROLE_SYSTEM)
            return err_set(err, errlen, PAGODA_EINVAL,
                           "%s chat: message %zu is a system message; only the first message "
                           "may be one",
                           name, i);
        if (roles[i] != want)
            return err_set(err, errlen, PAGODA_EINVAL,
                           "%s chat: message %zu is %s but turns must alternate user/assistant "
                           "starting with user",
                           name, i, msgs[i].role);
    }
    return 0;
}

static void chat_render_llama2(struct chat_buf *b, enum chat_template_kind k,
                               const struct chat_message *msgs, const enum chat_role *roles,
                               size_t n, const char *bos, const char *eos)
{
    bool sys_block = k != CHAT_TEMPLATE_LLAMA2;
    bool bos_in_history = k == CHAT_TEMPLATE_LLAMA2_SYS_BOS;
    bool strip = k == CHAT_TEMPLATE_LLAMA2_SYS_STRIP;
    /* The first "[INST] " is written up front; BOS there is the tokenizer's. */
    bool in_turn = true;
    chat_put(b, "[INST] ");
    for (size_t i = 0; i < n; i++) {
        if (!in_turn) {
            in_turn = true;
            if (bos_in_history)
                chat_put(b, bos);
            chat_put(b, "[INST] ");
        }
        if (roles[i] == CHAT_ROLE_SYSTEM && sys_block)
            chat_put(b, "<<SYS>>\n");
        if (strip)
            chat_put_trimmed(b, msgs[i].content);
        else
            chat_put(b, msgs[i].content);
        if (roles[i] == CHAT_ROLE_SYSTEM) {
            chat_put(b, sys_block ? "\n<</SYS>>\n\n" : "\n");
        } else if (roles[i] == CHAT_ROLE_USER) {
            chat_put(b, " [/INST]");
        } else {
            chat_put(b, eos);
            in_turn = false;
        }
    }
}

static void chat_render_mistral(struct chat_buf *b, enum chat_template_kind k,
                                const struct chat_message *msgs, const enum chat_role *roles,
                                size_t n, const char *eos)
{
    const char *lead = k == CHAT_TEMPLATE_MISTRAL_V1 ? " " : "";
    const char *trail = k == CHAT_TEMPLATE_MISTRAL_V3_TEKKEN ? "" : " ";
    bool trim_assistant = k == CHAT_TEMPLATE_MISTRAL_V3;
    bool in_turn = false;
    for (size_t i = 0; i < n; i++) {
        if (!in_turn) {
            chat_put(b, lead);
            chat_put(b, "[INST]");
            chat_put(b, trail);
            in_turn = true;
        }
        if (roles[i] == CHAT_ROLE_SYSTEM) {
            chat_put(b, msgs[i].content);
            chat_put(b, "\n\n");
        } else if (roles[i] == CHAT_ROLE_USER) {
            chat_put(b, msgs[i].content);
            chat_put(b, lead);
            chat_put(b, "[/INST]");
        } else {
            chat_put(b, trail);
            if (trim_assistant)
                chat_put_trimmed(b, msgs[i].content);
            else
                chat_put(b, msgs[i].content);
            chat_put(b, eos);
            in_turn = false;
        }
    }
}

static void chat_render_gemma(struct chat_buf *b, const struct chat_message *msgs,
                              const enum chat_role *roles, size_t n, bool add_gen)
{
    /* Gemma has no system turn: its text opens the next user turn. */
    const char *system = NULL;
    for (size_t i = 0; i < n; i++) {
        if (roles[i] == CHAT_ROLE_SYSTEM) {
            system = msgs[i].content;
            continue;
        }
        chat_put(b, "<start_of_turn>");
        chat_put(b, roles[i] == CHAT_ROLE_ASSISTANT ? "model" : "user");
        chat_put(b, "\n");
        if (system && roles[i] == CHAT_ROLE_USER) {
            size_t before = b->len;
            chat_put_trimmed(b, system);
            if (b->len != before)
                chat_put(b, "\n\n");
            system = NULL;
        }
        chat_put_trimmed(b, msgs[i].content);
        chat_put(b, "<end_of_turn>\n");
    }
    if (add_gen)
        chat_put(b, "<start_of_turn>model\n");
}

int chat_template_apply(enum chat_template_kind k, const struct chat_message *msgs, size_t n,
                        bool add_generation_prompt, const char *bos_text, const char *eos_text,
                        char **out, size_t *out_len, char *err, size_t errlen)
{
    if (!out || !out_len)
        return err_set(err, errlen, PAGODA_EINVAL, "chat template: NULL output argument");
    *out = NULL;
    *out_len = 0;
    if ((int)k < 0 || k >= CHAT_TEMPLATE_COUNT_)
        return err_set(err, errlen, PAGODA_EUNSUPPORTED, "chat template kind %d is unknown",
                       (int)k);
    if (!msgs || n == 0)
        return err_set(err, errlen, PAGODA_EINVAL, "%s chat: no messages",
                       chat_template_name(k));
    const char *bos = bos_text ? bos_text : "<s>";
    const char *eos = eos_text ? eos_text : "</s>";

    enum chat_role *roles = n <= SIZE_MAX / sizeof *roles ? malloc(n * sizeof *roles) : NULL;
    if (!roles)
        return err_set(err, errlen, PAGODA_ENOMEM, "chat template: out of memory");
    int rc = chat_validate(k, msgs, n, roles, err, errlen);
    if (rc < 0) {
        free(roles);
        return rc;
    }

    struct chat_buf b = {0};
    chat_put(&b, ""); /* so an empty prompt is still a string */
    switch (k) {
    case CHAT_TEMPLATE_LLAMA3:
    case CHAT_TEMPLATE_LLAMA4: {
        bool v3 = k == CHAT_TEMPLATE_LLAMA3;
        const char *head = v3 ? "<|start_header_id|>" : "<|header_start|>";
        const char *head_end = v3 ? "<|end_header_id|>\n\n" : "<|header_end|>\n\n";
        for (size_t i = 0; i < n; i++) {
            chat_put(&b, head);
            chat_put(&b, msgs[i].role);
            chat_put(&b, head_end);
            chat_put_trimmed(&b, msgs[i].content);
            chat_put(&b, v3 ? "<|eot_id|>" : "<|eot|>");
        }
        if (add_generation_prompt) {
            chat_put(&b, head);
            chat_put(&b, "assistant");
            chat_put(&b, head_end);
        }
        break;
    }
    case CHAT_TEMPLATE_CHATML:
        for (size_t i = 0; i < n; i++) {
            chat_put(&b, "<|im_start|>");
            chat_put(&b, msgs[i].role);
            chat_put(&b, "\n");
            chat_put(&b, msgs[i].content);
            chat_put(&b, "<|im_end|>\n");
        }
        if (add_generation_prompt)
            chat_put(&b, "<|im_start|>assistant\n");
        break;
    case CHAT_TEMPLATE_LLAMA2:
    case CHAT_TEMPLATE_LLAMA2_SYS:
    case CHAT_TEMPLATE_LLAMA2_SYS_BOS:
    case CHAT_TEMPLATE_LLAMA2_SYS_STRIP:
        chat_render_llama2(&b, k, msgs, roles, n, bos, eos);
        break;
    case CHAT_TEMPLATE_MISTRAL_V1:
    case CHAT_TEMPLATE_MISTRAL_V3:
    case CHAT_TEMPLATE_MISTRAL_V3_TEKKEN:
        chat_render_mistral(&b, k, msgs, roles, n, eos);
        break;
    case CHAT_TEMPLATE_MISTRAL_V7:
    case CHAT_TEMPLATE_MISTRAL_V7_TEKKEN: {
        const char *sp = k == CHAT_TEMPLATE_MISTRAL_V7 ? " " : "";
        for (size_t i = 0; i < n; i++) {
            if (roles[i] == CHAT_ROLE_SYSTEM) {
                chat_put(&b, "[SYSTEM_PROMPT]");
                chat_put(&b, sp);
                chat_put(&b, msgs[i].content);
                chat_put(&b, "[/SYSTEM_PROMPT]");
            } else if (roles[i] == CHAT_ROLE_USER) {
                chat_put(&b, "[INST]");
                chat_put(&b, sp);
                chat_put(&b, msgs[i].content);
                chat_put(&b, "[/INST]");
            } else {
                chat_put(&b, sp);
                chat_put(&b, msgs[i].content);
                chat_put(&b, eos);
            }
        }
        break;
    }
    case CHAT_TEMPLATE_GEMMA:
        chat_render_gemma(&b, msgs, roles, n, add_generation_prompt);
        break;
    case CHAT_TEMPLATE_ZEPHYR:
    case CHAT_TEMPLATE_PHI3: {
        const char *end = k == CHAT_TEMPLATE_ZEPHYR ? "<|endoftext|>\n" : "<|end|>\n";
        for (size_t i = 0; i < n; i++) {
            chat_put(&b, "<|");
            chat_put(&b, msgs[i].role);
            chat_put(&b, "|>\n");
            chat_put(&b, msgs[i].content);
            chat_put(&b, end);
        }
        if (add_generation_prompt)
            chat_put(&b, "<|assistant|>\n");
        break;
    }
    case CHAT_TEMPLATE_COUNT_:
        break;
    }
    free(roles);
    if (b.failed) {
        free(b.p);
        return err_set(err, errlen, PAGODA_ENOMEM, "chat template: out of memory");
    }
    *out = b.p;
    *out_len = b.len;
    return 0;
}
